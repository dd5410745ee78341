//! Idle, keep-alive and request-read timeouts (write timeout: see disconnect.rs, state e).

mod support;

use std::time::{Duration, Instant};

use support::*;

#[test]
fn idle_timeout_closes_a_silent_connection() {
    let s = Server::start(&["--idle-timeout", "0.3"]);
    let mut c = s.connect();
    let peer = c.local();
    let t = Instant::now();
    let (bytes, end) = c.expect_close(Duration::from_secs(3));
    let el = t.elapsed();
    eprintln!("idle timeout 0.3 s: closed after {el:?} ({end:?})");
    assert!(
        bytes.is_empty(),
        "an idle timeout closes without a response, got \"{}\"",
        show(&bytes)
    );
    assert!(el >= Duration::from_millis(250), "closed too early: {el:?}");
    assert!(el < Duration::from_millis(2000), "closed too late: {el:?}");
    // A timed-out connection is reset (issue 14; `--no-reset-timedout-connection` gives a
    // FIN: see hardening.rs).
    assert_eq!(end, End::Reset, "an idle timeout resets the connection");
    let closed = s.wait_closed(&peer, Duration::from_secs(3));
    assert_eq!(closed.reason.as_deref(), Some("idle_timeout"), "{closed:?}");
    assert_eq!(closed.requests, 0, "{closed:?}");
    assert_eq!(closed.bytes_in, 0, "{closed:?}");
}

#[test]
fn idle_timeout_zero_is_off() {
    let s = Server::start(&["--idle-timeout", "0", "--request-timeout", "0.2"]);
    let mut c = s.connect();
    c.expect_silence(Duration::from_millis(800));
    c.send(get_req(&s.hostport(), "/", ""));
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r}");
}

#[test]
fn idle_timeout_does_not_apply_between_requests() {
    // A short idle timeout with a long keep-alive timeout: the kept-alive connection survives
    // past the idle timeout.
    let s = Server::start(&["--idle-timeout", "0.2", "--keepalive-timeout", "5"]);
    let mut c = s.connect();
    c.send(get_req(&s.hostport(), "/", ""));
    assert_eq!(c.read_response().status, 200);
    c.expect_silence(Duration::from_millis(600));
    c.send(get_req(&s.hostport(), "/", ""));
    assert_eq!(c.read_response().status, 200);
}

#[test]
fn keepalive_timeout_closes_between_requests() {
    let s = Server::start(&["--keepalive-timeout", "0.3", "--idle-timeout", "10"]);
    let mut c = s.connect();
    let peer = c.local();
    c.send(get_req(&s.hostport(), "/", ""));
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r}");
    let t = Instant::now();
    let (bytes, end) = c.expect_close(Duration::from_secs(3));
    let el = t.elapsed();
    eprintln!("keep-alive timeout 0.3 s: closed {el:?} after the response ({end:?})");
    assert!(bytes.is_empty(), "\"{}\"", show(&bytes));
    assert!(el >= Duration::from_millis(200), "closed too early: {el:?}");
    assert!(el < Duration::from_millis(2000), "closed too late: {el:?}");
    let closed = s.wait_closed(&peer, Duration::from_secs(3));
    assert_eq!(
        closed.reason.as_deref(),
        Some("keepalive_timeout"),
        "{closed:?}"
    );
    assert_eq!(closed.requests, 1, "{closed:?}");
}

#[test]
fn keepalive_timeout_zero_is_off() {
    let s = Server::start(&["--keepalive-timeout", "0", "--idle-timeout", "0.2"]);
    let mut c = s.connect();
    c.send(get_req(&s.hostport(), "/", ""));
    assert_eq!(c.read_response().status, 200);
    c.expect_silence(Duration::from_millis(700));
    c.send(get_req(&s.hostport(), "/", ""));
    assert_eq!(c.read_response().status, 200);
}

#[test]
fn request_timeout_mid_head_gives_408() {
    let s = Server::start(&["--request-timeout", "0.3"]);
    let mut c = s.connect();
    let peer = c.local();
    c.send(format!(
        "GET /hold/stall HTTP/1.1\r\nHost: {}\r\nX-Partial: yes\r\n",
        s.hostport()
    ));
    let t = Instant::now();
    let r = c
        .read_response_timeout(false, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("expected 408: {e}"));
    let el = t.elapsed();
    eprintln!("request timeout 0.3 s: 408 after {el:?}");
    assert_eq!(r.status, 408, "{r}");
    r.assert_connection_close();
    assert!(el >= Duration::from_millis(200), "408 too early: {el:?}");
    let (rest, _end) = c.expect_close(Duration::from_secs(3));
    assert!(rest.is_empty(), "\"{}\"", show(&rest));
    let closed = s.wait_closed(&peer, Duration::from_secs(3));
    assert_eq!(
        closed.reason.as_deref(),
        Some("client_timeout"),
        "{closed:?}"
    );
    s.assert_app_not_called("stall");
}

#[test]
fn request_timeout_mid_request_line_gives_408() {
    let s = Server::start(&["--request-timeout", "0.3", "--idle-timeout", "10"]);
    let mut c = s.connect();
    let peer = c.local();
    c.send("GET /hold/sta");
    let r = c
        .read_response_timeout(false, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("expected 408: {e}"));
    assert_eq!(r.status, 408, "{r}");
    r.assert_connection_close();
    c.expect_close(Duration::from_secs(3));
    let closed = s.wait_closed(&peer, Duration::from_secs(3));
    assert_eq!(
        closed.reason.as_deref(),
        Some("client_timeout"),
        "{closed:?}"
    );
}

#[test]
fn request_timeout_mid_body_closes_with_client_timeout() {
    let s = Server::start(&["--request-timeout", "0.3"]);
    let mut c = s.connect();
    let peer = c.local();
    c.send(format!(
        "POST /echo HTTP/1.1\r\nHost: {}\r\nContent-Length: 10\r\n\r\nhello",
        s.hostport()
    ));
    let t = Instant::now();
    let (bytes, end) = c.expect_close(Duration::from_secs(3));
    let el = t.elapsed();
    eprintln!(
        "body stall: closed after {el:?} ({end:?}), got \"{}\"",
        show(&bytes)
    );
    assert!(el >= Duration::from_millis(200), "closed too early: {el:?}");
    // Either a 408 (nothing was sent yet) or a started echo response that is cut short.
    let head_end = find(&bytes, b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or_else(|| panic!("no response head before the close: \"{}\"", show(&bytes)));
    let r = parse_head(&bytes[..head_end]).unwrap_or_else(|e| panic!("{e}"));
    match r.status {
        408 => r.assert_connection_close(),
        200 => match decode_chunked(&bytes[head_end..]) {
            Ok(Chunked::Partial { data }) => assert!(data.len() <= 5, "{data:?}"),
            other => panic!("a response to an incomplete body must not complete: {other:?}"),
        },
        s => panic!("unexpected status {s}: \"{}\"", show(&bytes)),
    }
    let closed = s.wait_closed(&peer, Duration::from_secs(3));
    assert_eq!(
        closed.reason.as_deref(),
        Some("client_timeout"),
        "{closed:?}"
    );
}

#[test]
fn slow_but_steady_client_is_not_a_stall() {
    // Request-read stall timer: bytes arriving every 100 ms keep a 0.3 s timeout from firing.
    let s = Server::start(&["--request-timeout", "0.3"]);
    let mut c = s.connect();
    c.send(format!(
        "POST /echo HTTP/1.1\r\nHost: {}\r\nContent-Length: 8\r\n\r\n",
        s.hostport()
    ));
    for b in b"abcdefgh" {
        // Pace the client; this wait is the behaviour under test, not synchronisation.
        std::thread::sleep(Duration::from_millis(100));
        c.send([*b]);
    }
    let r = c.read_response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "abcdefgh"), "{r}");
}
