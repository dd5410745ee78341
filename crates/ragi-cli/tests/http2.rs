//! The probe over HTTP/2 cleartext (prior knowledge), with the `h2` crate as the client:
//! the same answers as over HTTP/1.1, a client reset seen per stream, and lifecycle notices
//! that name the protocol.

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::Server;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn h2c_prior_knowledge_is_served_and_named_in_the_notices() {
    let s = Server::start(&[]);
    let addr = s.hostport();
    let peer = rt().block_on(async {
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let peer = tcp.local_addr().unwrap().to_string();
        let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
        let conn_task = tokio::spawn(conn);
        // GET / and POST / with a body: Hello, World! either way.
        for (method, body) in [("GET", ""), ("POST", "some body")] {
            let req = http::Request::builder()
                .method(method)
                .uri(format!("http://{addr}/"))
                .body(())
                .unwrap();
            let (resp, mut stream) = client.send_request(req, body.is_empty()).unwrap();
            if !body.is_empty() {
                stream.send_data(Bytes::from(body), true).unwrap();
            }
            let resp = tokio::time::timeout(Duration::from_secs(5), resp)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(resp.status(), 200);
            assert!(resp.headers().contains_key("date"));
            let mut recv = resp.into_body();
            let mut got = Vec::new();
            while let Some(chunk) = recv.data().await {
                let chunk = chunk.unwrap();
                let _ = recv.flow_control().release_capacity(chunk.len());
                got.extend_from_slice(&chunk);
            }
            assert_eq!(got, b"Hello, World!");
        }
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(5), conn_task).await;
        peer
    });
    let closed = s.wait_closed(&peer, Duration::from_secs(5));
    assert_eq!(closed.requests, 2, "{closed:?}");
    let all = s.get_json("/connections");
    // Both notices name h2: `accepted` comes once the preface was seen.
    for event in ["accepted", "closed"] {
        let entry = all
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["peer"] == peer.as_str() && n["event"] == event)
            .cloned()
            .unwrap_or_else(|| panic!("no {event} notice for {peer}"));
        assert_eq!(entry["protocol"], "h2", "{entry}");
        assert!(entry["tls"].is_null(), "{entry}");
    }
    // The connection that asked for /connections spoke HTTP/1.1, and its notice says so.
    let own = all
        .as_array()
        .unwrap()
        .iter()
        .rfind(|n| n["event"] == "accepted")
        .cloned()
        .expect("accepted notice");
    assert_eq!(own["protocol"], "http/1.1", "{own}");
}

#[test]
fn h2c_stream_reset_ends_only_that_stream() {
    let s = Server::start(&[]);
    let addr = s.hostport();
    rt().block_on(async {
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut client = client.ready().await.unwrap();
        let held = http::Request::builder()
            .uri(format!("http://{addr}/hold/h2a"))
            .body(())
            .unwrap();
        let (_held_resp, mut held_stream) = client.send_request(held, true).unwrap();
        let sibling = http::Request::builder()
            .uri(format!(
                "http://{addr}/stream/h2b?chunks=20&bytes=10&interval_ms=20"
            ))
            .body(())
            .unwrap();
        let mut client = client.ready().await.unwrap();
        let (sib_resp, _) = client.send_request(sibling, true).unwrap();
        // Let the held request reach the app, then reset only that stream.
        // A blocking wait on this (non-worker) thread: the runtime's workers drive the h2
        // connection, which was spawned onto them.
        s.wait_seen("h2a", Duration::from_secs(5));
        held_stream.send_reset(h2::Reason::CANCEL);
        let resp = tokio::time::timeout(Duration::from_secs(5), sib_resp)
            .await
            .unwrap()
            .unwrap();
        let mut body = resp.into_body();
        let mut n = 0;
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            n += chunk.len();
        }
        assert_eq!(n, 200, "the sibling stream completes");
    });
    let a = s.observed("h2a", 3000);
    assert_eq!(a.reason.as_deref(), Some("client_closed"), "{a:?}");
    assert!(a.after_ms.unwrap_or(f64::MAX) < 5000.0, "{a:?}");
    let b = s.observed("h2b", 3000);
    assert!(b.completed && b.reason.is_none(), "{b:?}");
}

/// One request over a fresh h2c connection; returns the status and the body.
fn h2_request(addr: &str, req: http::Request<()>, body: &'static [u8]) -> (u16, Vec<u8>) {
    rt().block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let (resp, mut stream) = client.send_request(req, body.is_empty()).unwrap();
        if !body.is_empty() {
            stream.send_data(Bytes::from_static(body), true).unwrap();
        }
        let resp = tokio::time::timeout(Duration::from_secs(5), resp)
            .await
            .unwrap()
            .unwrap();
        let status = resp.status().as_u16();
        let mut recv = resp.into_body();
        let mut got = Vec::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.unwrap();
            let _ = recv.flow_control().release_capacity(chunk.len());
            got.extend_from_slice(&chunk);
        }
        (status, got)
    })
}

fn log_line(s: &Server, what: &str, pred: impl Fn(&str) -> bool) -> String {
    support::poll_until_opt(Duration::from_secs(3), || {
        s.output_lines().into_iter().find(|l| pred(l))
    })
    .unwrap_or_else(|| panic!("no {what} line; output:\n{}", s.output_lines().join("\n")))
}

#[test]
fn the_access_log_has_http2_requests() {
    let s = Server::start(&["--access-log", "combined"]);
    let addr = s.hostport();
    let req = http::Request::builder()
        .uri(format!("http://{addr}/?h2log=1"))
        .header("referer", "http://ref.example/")
        .header("user-agent", "ragi-h2-test/1.0")
        .body(())
        .unwrap();
    assert_eq!(h2_request(&addr, req, b"").0, 200);
    let line = log_line(&s, "combined", |l| {
        l.contains("\"GET /?h2log=1 HTTP/2.0\" 200 13")
    });
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.ends_with("\"http://ref.example/\" \"ragi-h2-test/1.0\""),
        "{line}"
    );
    // A POST with a body, and a 404.
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/"))
        .body(())
        .unwrap();
    assert_eq!(h2_request(&addr, req, b"some body").0, 200);
    log_line(&s, "POST", |l| l.contains("\"POST / HTTP/2.0\" 200 13"));
    let req = http::Request::builder()
        .uri(format!("http://{addr}/nope-h2"))
        .body(())
        .unwrap();
    assert_eq!(h2_request(&addr, req, b"").0, 404);
    log_line(&s, "404", |l| l.contains("\"GET /nope-h2 HTTP/2.0\" 404 "));

    let s = Server::start(&["--access-log", "json"]);
    let addr = s.hostport();
    let req = http::Request::builder()
        .uri(format!("http://{addr}/?h2json=1"))
        .body(())
        .unwrap();
    assert_eq!(h2_request(&addr, req, b"").0, 200);
    let line = log_line(&s, "JSON", |l| l.contains("h2json"));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["request"], "GET /?h2json=1 HTTP/2.0", "{line}");
    assert_eq!(v["status"], 200, "{line}");
    assert_eq!(v["bytes"], 13, "{line}");
}
