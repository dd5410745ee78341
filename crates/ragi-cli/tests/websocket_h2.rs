//! WebSocket over HTTP/2 (RFC 8441 extended CONNECT) through the probe, with the `h2` crate as
//! the client: the handshake, echo, the client's close, a stream reset with a sibling stream
//! that goes on, graceful shutdown with 1001; and SSE over HTTP/2 at shutdown.

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::Server;

const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn masked(opcode: u8, payload: &[u8]) -> Bytes {
    assert!(payload.len() < 126);
    let key = [1u8, 2, 3, 4];
    let mut f = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    Bytes::from(f)
}

/// Parses one unmasked server frame with a short payload: (opcode, payload).
fn parse(b: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if b.len() < 2 {
        return None;
    }
    let len = (b[1] & 0x7f) as usize;
    assert!(len < 126, "short frames only in these tests");
    (b.len() >= 2 + len).then(|| (b[0] & 0x0f, b[2..2 + len].to_vec(), 2 + len))
}

struct H2Ws {
    send: h2::SendStream<Bytes>,
    recv: h2::RecvStream,
    buf: Vec<u8>,
}

impl H2Ws {
    async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((op, p, n)) = parse(&self.buf) {
                self.buf.drain(..n);
                return Some((op, p));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.recv.data())
                .await
                .expect("a frame in time")?
                .ok()?;
            let _ = self.recv.flow_control().release_capacity(chunk.len());
            self.buf.extend_from_slice(&chunk);
        }
    }
}

async fn connect(addr: &str) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    // A first request makes sure the server's SETTINGS arrived.
    let mut client = client.ready().await.unwrap();
    let req = http::Request::builder()
        .uri(format!("http://{addr}/"))
        .body(())
        .unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    assert_eq!(resp.await.unwrap().status(), 200);
    assert!(
        client.is_extended_connect_protocol_enabled(),
        "the server advertises SETTINGS_ENABLE_CONNECT_PROTOCOL"
    );
    client
}

async fn open(
    client: &mut h2::client::SendRequest<Bytes>,
    addr: &str,
    path: &str,
) -> (http::StatusCode, Option<H2Ws>) {
    let mut req = http::Request::builder()
        .method("CONNECT")
        .uri(format!("http://{addr}{path}"))
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    req.extensions_mut()
        .insert(h2::ext::Protocol::from_static("websocket"));
    let mut c = client.clone().ready().await.unwrap();
    let (resp, send) = c.send_request(req, false).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), resp)
        .await
        .unwrap()
        .unwrap();
    let status = resp.status();
    if status != 200 {
        return (status, None);
    }
    (
        status,
        Some(H2Ws {
            send,
            recv: resp.into_body(),
            buf: Vec::new(),
        }),
    )
}

#[test]
fn echo_and_client_close_over_extended_connect() {
    let s = Server::start(&[]);
    let addr = s.hostport();
    rt().block_on(async {
        let mut client = connect(&addr).await;
        let (status, ws) = open(&mut client, &addr, "/ws/echo/h2e1").await;
        assert_eq!(status, 200);
        let mut ws = ws.unwrap();
        ws.send.send_data(masked(TEXT, b"over h2"), false).unwrap();
        assert_eq!(ws.frame().await, Some((TEXT, b"over h2".to_vec())));
        let mut close = 1000u16.to_be_bytes().to_vec();
        close.extend_from_slice(b"done");
        ws.send.send_data(masked(CLOSE, &close), false).unwrap();
        let (op, p) = ws.frame().await.expect("a close frame back");
        assert_eq!(op, CLOSE);
        assert_eq!(&p[..2], &1000u16.to_be_bytes());
    });
    let o = s.observed("h2e1", 3000);
    assert_eq!(o.reason.as_deref(), Some("client_closed"), "{o:?}");
    let all = s.get_json("/connections");
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|n| n["event"] == "upgraded" && n["protocol"] == "websocket"),
        "{all}"
    );
}

#[test]
fn a_reset_ends_only_that_websocket_stream() {
    let s = Server::start(&[]);
    let addr = s.hostport();
    let sibling = rt().block_on(async {
        let mut client = connect(&addr).await;
        let (_, ws) = open(&mut client, &addr, "/ws/hold/h2r1").await;
        let mut ws = ws.unwrap();
        // A sibling streaming response on the same connection.
        let mut c = client.clone().ready().await.unwrap();
        let req = http::Request::builder()
            .uri(format!(
                "http://{addr}/stream/h2r2?chunks=10&bytes=10&interval_ms=30"
            ))
            .body(())
            .unwrap();
        let (resp, _) = c.send_request(req, true).unwrap();
        ws.send.send_reset(h2::Reason::CANCEL);
        let mut body = resp.await.unwrap().into_body();
        let mut n = 0;
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            n += chunk.len();
        }
        n
    });
    let o = s.observed("h2r1", 3000);
    assert_eq!(o.reason.as_deref(), Some("client_closed"), "{o:?}");
    assert_eq!(sibling, 100, "the sibling stream completes");
    let o = s.observed("h2r2", 3000);
    assert!(o.completed, "{o:?}");
}

#[test]
fn denial_and_version_over_http2() {
    let s = Server::start(&[]);
    let addr = s.hostport();
    rt().block_on(async {
        let mut client = connect(&addr).await;
        let (status, _) = open(&mut client, &addr, "/ws/echo?deny=401").await;
        assert_eq!(status, 401);
        let (status, _) = open(&mut client, &addr, "/ws/echo?reject=1").await;
        assert_eq!(status, 403);
        // No sec-websocket-version: 426.
        let mut req = http::Request::builder()
            .method("CONNECT")
            .uri(format!("http://{addr}/ws/echo"))
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(h2::ext::Protocol::from_static("websocket"));
        let mut c = client.clone().ready().await.unwrap();
        let (resp, _) = c.send_request(req, false).unwrap();
        assert_eq!(resp.await.unwrap().status(), 426);
    });
}

#[test]
fn shutdown_closes_an_http2_websocket_with_1001_and_ends_sse_streams() {
    let mut s = Server::start(&["--shutdown-timeout", "5"]);
    let addr = s.hostport();
    let rt = rt();
    let (mut ws, mut sse) = rt.block_on(async {
        let mut client = connect(&addr).await;
        let (_, ws) = open(&mut client, &addr, "/ws/echo/h2s1").await;
        let mut c = client.clone().ready().await.unwrap();
        let req = http::Request::builder()
            .uri(format!("http://{addr}/sse/h2s2?count=0&interval_ms=50"))
            .header("accept", "text/event-stream")
            .body(())
            .unwrap();
        let (resp, _) = c.send_request(req, true).unwrap();
        let sse = resp.await.unwrap().into_body();
        (ws.unwrap(), sse)
    });
    s.wait_seen("h2s1", Duration::from_secs(5));
    s.wait_seen("h2s2", Duration::from_secs(5));
    s.sigterm();
    rt.block_on(async {
        let (op, p) = ws.frame().await.expect("a close frame");
        assert_eq!(op, CLOSE);
        assert_eq!(&p[..2], &1001u16.to_be_bytes());
        ws.send
            .send_data(masked(CLOSE, &1001u16.to_be_bytes()), false)
            .unwrap();
        // The SSE stream ends.
        while let Some(Ok(c)) = tokio::time::timeout(Duration::from_secs(5), sse.data())
            .await
            .expect("the SSE stream ends in time")
        {
            let _ = sse.flow_control().release_capacity(c.len());
        }
    });
    let status = s.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status:?}");
}
