//! Server-Sent Events through the probe: the `sse` scope over HTTP/1.1 (chunked) and HTTP/2
//! (DATA frames), the event format, keep-alive comments, and the client leaving.

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::Server;

fn sse_get(s: &Server, path: &str) -> support::Response {
    let mut c = s.connect();
    c.send(format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        s.hostport()
    ));
    c.read_response()
}

#[test]
fn an_event_stream_over_http11() {
    let s = Server::start(&[]);
    let r = sse_get(&s, "/sse/s1?count=3&interval_ms=5");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        "data: event 1\nid: 1\n\ndata: event 2\nid: 2\n\ndata: event 3\nid: 3\n\n"
    );
    let o = s.observed("s1", 3000);
    assert!(o.completed && o.reason.is_none(), "{o:?}");
}

#[test]
fn keepalive_comments_fill_quiet_time() {
    let s = Server::start(&[]);
    let r = sse_get(&s, "/sse/s2?count=2&interval_ms=400&keepalive_ms=50");
    let text = String::from_utf8_lossy(&r.body);
    let between = text.split("id: 1\n\n").nth(1).unwrap_or("");
    assert!(between.matches(": keepalive\n\n").count() >= 2, "{text:?}");
    assert!(text.ends_with("data: event 2\nid: 2\n\n"), "{text:?}");
}

#[test]
fn a_client_leaving_an_endless_stream_is_seen() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.send(format!(
        "GET /sse/s3?count=0&interval_ms=20 HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        s.hostport()
    ));
    let _ = c.read_head_only(Duration::from_secs(5));
    s.wait_seen("s3", Duration::from_secs(5));
    c.shutdown_write();
    let o = s.observed("s3", 3000);
    assert_eq!(o.reason.as_deref(), Some("client_closed"), "{o:?}");
}

#[test]
fn other_paths_in_an_sse_scope_are_declined_with_a_plain_response() {
    let s = Server::start(&[]);
    let r = sse_get(&s, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Hello, World!");
    assert_eq!(sse_get(&s, "/nope").status, 404);
}

#[test]
fn an_event_stream_over_http2() {
    let s = Server::start(&[]);
    let addr = s.hostport();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (ctype, body) = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::builder()
            .uri(format!("http://{addr}/sse/s4?count=2&interval_ms=5"))
            .header("accept", "text/event-stream")
            .body(())
            .unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(5), resp)
            .await
            .unwrap()
            .unwrap();
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
        let mut recv = resp.into_body();
        let mut got = Vec::new();
        while let Some(chunk) = recv.data().await {
            let chunk: Bytes = chunk.unwrap();
            let _ = recv.flow_control().release_capacity(chunk.len());
            got.extend_from_slice(&chunk);
        }
        (ctype, got)
    });
    assert_eq!(ctype, "text/event-stream");
    assert_eq!(
        String::from_utf8_lossy(&body),
        "data: event 1\nid: 1\n\ndata: event 2\nid: 2\n\n"
    );
    let o = s.observed("s4", 3000);
    assert!(o.completed, "{o:?}");
}
