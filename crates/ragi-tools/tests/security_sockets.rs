//! The security middleware over real sockets, served by `ragi-server`: HTTP/2's `:authority`
//! checked by the trusted-hosts middleware, WebSocket handshakes refused before accept as a
//! real client sees them, the real peer address behind forwarded headers, a redirect keeping
//! the raw path.

mod support;

#[path = "security/support.rs"]
mod probe;

use base64::Engine;
use futures_util::StreamExt;
use probe::probe;
use ragi_tools::middleware::auth::BasicAuth;
use ragi_tools::middleware::csrf::Csrf;
use ragi_tools::middleware::forwarded::ForwardedHeaders;
use ragi_tools::middleware::https_redirect::HttpsRedirect;
use ragi_tools::middleware::trusted_host::TrustedHosts;
use ragi_tools::{AppExt, Stack};
use serde_json::Value;
use support::{serve, within, Client};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

/// One HTTP/2 request (prior knowledge) with `:authority` = `authority`; status and body.
async fn h2_get(
    addr: std::net::SocketAddr,
    authority: &str,
    extra_host: Option<&str>,
) -> (u16, Vec<u8>) {
    let tcp = within("connect", tokio::net::TcpStream::connect(addr))
        .await
        .unwrap();
    let (mut client, conn) = within("h2 handshake", h2::client::handshake(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder().uri(format!("http://{authority}/"));
    if let Some(h) = extra_host {
        req = req.header("host", h);
    }
    let (resp, _) = client.send_request(req.body(()).unwrap(), true).unwrap();
    let resp = within("h2 response", resp).await.unwrap();
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while let Some(chunk) = within("h2 body", body.data()).await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    (status, got)
}

#[tokio::test]
async fn trusted_hosts_check_the_http2_authority() {
    let (app, calls) = probe();
    let server = serve(app.layer(TrustedHosts::new(["good.example"]).unwrap())).await;
    let port = server.addr.port();
    let (status, body) = h2_get(server.addr, &format!("good.example:{port}"), None).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["host"], format!("good.example:{port}"));
    let (status, _) = h2_get(server.addr, &format!("evil.example:{port}"), None).await;
    assert_eq!(status, 400);
    // A `host` field beside `:authority` does not smuggle a trusted name in.
    let (status, _) = h2_get(
        server.addr,
        &format!("evil.example:{port}"),
        Some("good.example"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(calls.get(), 1);
}

/// A WebSocket handshake to `path` with `headers`: the refusal's status and headers, or 101.
async fn ws_status(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> (u16, http::HeaderMap) {
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    for (n, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match within("connect", tokio_tungstenite::connect_async(req)).await {
        Ok((mut ws, response)) => {
            // The probe's first message says what it saw.
            let first = within("first message", ws.next()).await;
            assert!(
                matches!(first, Some(Ok(tungstenite::Message::Text(_)))),
                "{first:?}"
            );
            (response.status().as_u16(), response.headers().clone())
        }
        Err(tungstenite::Error::Http(response)) => {
            (response.status().as_u16(), response.headers().clone())
        }
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn websocket_handshakes_are_refused_before_accept_over_a_socket() {
    let (app, calls) = probe();
    let creds = base64::engine::general_purpose::STANDARD.encode("alice:pw");
    let app = Stack::new()
        .enable(TrustedHosts::new(["127.0.0.1", "localhost"]).unwrap())
        .enable(Csrf::new())
        .enable(BasicAuth::credentials("chat", [("alice", "pw")]))
        .run(app);
    let server = serve(app).await;
    let auth = format!("Basic {creds}");
    // No credentials: 401 with the challenge.
    let (status, headers) = ws_status(server.addr, &[]).await;
    assert_eq!(status, 401);
    assert_eq!(
        headers["www-authenticate"],
        r#"Basic realm="chat", charset="UTF-8""#
    );
    // A foreign origin: 403, even with credentials (cross-site WebSocket hijacking).
    let (status, _) = ws_status(
        server.addr,
        &[("origin", "https://evil.example"), ("authorization", &auth)],
    )
    .await;
    assert_eq!(status, 403);
    // A host that is not ours: 400.
    let (status, _) = ws_status(
        server.addr,
        &[("host", "evil.example"), ("authorization", &auth)],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(calls.get(), 0);
    // All well: 101.
    let origin = format!("http://{}", server.addr);
    let (status, _) = ws_status(
        server.addr,
        &[("origin", &origin), ("authorization", &auth)],
    )
    .await;
    assert_eq!(status, 101);
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn the_real_peer_decides_whom_to_believe() {
    // Loopback is trusted by default: the socket's peer is 127.0.0.1.
    let (app, _) = probe();
    let server = serve(app.layer(ForwardedHeaders::new())).await;
    let mut c = Client::connect(server.addr).await;
    c.send(
        b"GET / HTTP/1.1\r\nhost: t\r\nx-forwarded-for: 6.6.6.6, 198.51.100.9\r\nx-forwarded-proto: https\r\nconnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&c.read_to_end().await).into_owned();
    assert!(text.contains(r#""client":"198.51.100.9:0""#), "{text}");
    assert!(text.contains(r#""scheme":"https""#), "{text}");
    assert!(text.contains(r#""original_client":"127.0.0.1:"#), "{text}");

    // Trusting another network: the peer's headers are ignored.
    let (app, _) = probe();
    let server = serve(app.layer(ForwardedHeaders::trusting(["10.0.0.0/8"]).unwrap())).await;
    let mut c = Client::connect(server.addr).await;
    c.send(
        b"GET / HTTP/1.1\r\nhost: t\r\nx-forwarded-for: 198.51.100.9\r\nconnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&c.read_to_end().await).into_owned();
    assert!(text.contains(r#""client":"127.0.0.1:"#), "{text}");
    assert!(text.contains(r#""scheme":"http""#), "{text}");
}

#[tokio::test]
async fn a_redirect_keeps_the_raw_path_over_a_socket() {
    let (app, _) = probe();
    let server = serve(app.layer(HttpsRedirect::new())).await;
    let mut c = Client::connect(server.addr).await;
    c.send(b"PUT /a%2Fb/%7Euser?x=%20&y HTTP/1.1\r\nhost: shop.example:80\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi")
        .await;
    let text = String::from_utf8_lossy(&c.read_to_end().await).into_owned();
    assert!(text.starts_with("HTTP/1.1 307"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("location: https://shop.example/a%2fb/%7euser?x=%20&y\r\n"),
        "{text}"
    );
}
