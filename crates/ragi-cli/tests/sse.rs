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

#[test]
fn sse_idle_timeout_closes_the_http11_connection() {
    let s = Server::start(&["--sse-idle-timeout", "0.2"]);
    let mut c = s.connect();
    c.send(format!(
        "GET /sse/i1?count=0&interval_ms=5000 HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        s.hostport()
    ));
    s.wait_seen("i1", Duration::from_secs(5));
    let o = s.observed("i1", 3000);
    assert_eq!(o.reason.as_deref(), Some("idle_timeout"), "{o:?}");
    let after = o.after_ms.unwrap();
    assert!(
        (150.0..3000.0).contains(&after),
        "idle timeout 0.2 s fired after {after} ms"
    );
    // The server closes the connection (expect_close panics if it does not within 3 s).
    let (_, end) = c.expect_close(Duration::from_secs(3));
    assert!(
        matches!(end, support::End::Eof | support::End::Reset),
        "{end:?}"
    );
}

#[test]
fn sse_idle_timeout_resets_only_the_idle_http2_stream() {
    let s = Server::start(&["--sse-idle-timeout", "0.3"]);
    let addr = s.hostport();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (idle_err, sibling_len) = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut client = client.ready().await.unwrap();
        let idle = http::Request::builder()
            .uri(format!("http://{addr}/sse/i2?count=0&interval_ms=5000"))
            .header("accept", "text/event-stream")
            .body(())
            .unwrap();
        let (idle_resp, _) = client.send_request(idle, true).unwrap();
        let mut client = client.ready().await.unwrap();
        // A sibling that streams for ~1 s on the same connection.
        let sibling = http::Request::builder()
            .uri(format!(
                "http://{addr}/stream/i3?chunks=20&bytes=10&interval_ms=50"
            ))
            .body(())
            .unwrap();
        let (sib_resp, _) = client.send_request(sibling, true).unwrap();
        let idle_resp = tokio::time::timeout(Duration::from_secs(5), idle_resp)
            .await
            .unwrap()
            .unwrap();
        let mut idle_body = idle_resp.into_body();
        let idle_err = loop {
            match tokio::time::timeout(Duration::from_secs(5), idle_body.data())
                .await
                .unwrap()
            {
                Some(Ok(chunk)) => {
                    let _ = idle_body.flow_control().release_capacity(chunk.len());
                }
                Some(Err(e)) => break Some(e.reason()),
                None => break None,
            }
        };
        let sib = tokio::time::timeout(Duration::from_secs(5), sib_resp)
            .await
            .unwrap()
            .unwrap();
        let mut body = sib.into_body();
        let mut n = 0;
        while let Some(chunk) = body.data().await {
            let chunk: Bytes = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            n += chunk.len();
        }
        (idle_err, n)
    });
    assert_eq!(
        idle_err,
        Some(Some(h2::Reason::CANCEL)),
        "the idle stream is reset"
    );
    assert_eq!(sibling_len, 200, "the sibling stream completes");
    let o = s.observed("i2", 3000);
    assert_eq!(o.reason.as_deref(), Some("idle_timeout"), "{o:?}");
    let sib = s.observed("i3", 3000);
    assert!(sib.completed, "{sib:?}");
}

#[test]
fn last_event_id_resumes_the_stream() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.send(format!(
        "GET /sse/s9?count=4&interval_ms=1 HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nLast-Event-ID: 2\r\n\r\n",
        s.hostport()
    ));
    let r = c.read_response();
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        "data: event 3\nid: 3\n\ndata: event 4\nid: 4\n\n"
    );
}

/// `Accept: text/event-stream;q=0` says "anything but an event stream" (RFC 9110 §12.4.2): the
/// server makes a plain `http` scope, so the probe's HTTP side answers (its 404 for `/sse/...`),
/// where any q above zero gets the `sse` scope and the stream.
#[test]
fn an_accept_that_refuses_event_streams_makes_an_http_scope() {
    let s = Server::start(&[]);
    let get = |accept: &str| {
        let mut c = s.connect();
        c.send(format!(
            "GET /sse/q?count=1&interval_ms=1 HTTP/1.1\r\nHost: {}\r\nAccept: {accept}\r\n\r\n",
            s.hostport()
        ));
        c.read_response()
    };
    for accept in [
        "text/event-stream;q=0",
        "application/json, text/event-stream; q=0.000",
        "TEXT/EVENT-STREAM;Q=0",
    ] {
        let r = get(accept);
        assert_eq!(r.status, 404, "{accept}");
        assert_eq!(r.header("content-type"), Some("text/plain"), "{accept}");
        assert_eq!(r.body, b"Not Found", "{accept}");
    }
    for accept in [
        "text/event-stream",
        "application/json;q=0.9, text/event-stream;q=0.5",
    ] {
        let r = get(accept);
        assert_eq!(r.status, 200, "{accept}");
        assert_eq!(
            r.header("content-type"),
            Some("text/event-stream"),
            "{accept}"
        );
        assert_eq!(r.body, b"data: event 1\nid: 1\n\n", "{accept}");
    }
}
