//! HTTP/1.1 basics of `ragi probe` over real sockets: framing, keep-alive, HTTP/1.0,
//! pipelining, chunked request bodies, HEAD, 100-continue, date/server headers, half-close.

mod support;

use std::thread;
use std::time::{Duration, Instant, SystemTime};

use support::*;

fn assert_date_header(r: &Response) {
    let date = r
        .header("date")
        .unwrap_or_else(|| panic!("response lacks a `date` header: {r}"));
    let t = httpdate::parse_http_date(date)
        .unwrap_or_else(|e| panic!("`date: {date}` is not an HTTP-date ({e})"));
    assert!(
        date.ends_with(" GMT") && date.len() == 29,
        "`date: {date}` is not IMF-fixdate"
    );
    let now = SystemTime::now();
    let skew = match now.duration_since(t) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    assert!(
        skew < Duration::from_secs(5),
        "`date: {date}` is {skew:?} away from now"
    );
}

#[test]
fn get_root_is_hello_world() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.send(get_req(&s.hostport(), "/", ""));
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.version, "HTTP/1.1", "{r}");
    assert_eq!(r.body, b"Hello, World!", "{r}");
    assert_eq!(r.header("content-length"), Some("13"), "{r}");
    assert!(
        r.header("content-type")
            .is_some_and(|v| v.starts_with("text/plain")),
        "content-type: {r}"
    );
    assert!(
        r.header("transfer-encoding").is_none(),
        "a known-length body must not be chunked: {r}"
    );
    assert!(
        !r.has_token("connection", "close"),
        "keep-alive is the HTTP/1.1 default: {r}"
    );
    // Nothing extra follows the 13 bytes.
    c.expect_silence(Duration::from_millis(200));
}

#[test]
fn date_and_server_headers_default() {
    let s = Server::start(&[]);
    let r = s.get("/");
    assert_date_header(&r);
    assert_eq!(r.header_all("server"), vec!["ragi"], "{r}");
    // Also on a 404 from the app and on a server-made 400.
    let r = s.get("/definitely-not-here");
    assert_eq!(r.status, 404, "{r}");
    assert_date_header(&r);
    assert_eq!(r.header("server"), Some("ragi"), "{r}");
    let mut c = s.connect();
    c.send("GET / HTTP/1.1\r\n\r\n"); // no Host → 400
    let r = c.read_response();
    assert_eq!(r.status, 400, "{r}");
    assert_date_header(&r);
    assert_eq!(
        r.header("server"),
        Some("ragi"),
        "server-made errors carry `server` too: {r}"
    );
}

#[test]
fn server_header_override() {
    let s = Server::start(&["--server-header", "probe-test/9.1"]);
    let r = s.get("/");
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.header_all("server"), vec!["probe-test/9.1"], "{r}");
    assert_date_header(&r);
}

#[test]
fn server_header_disabled_by_empty_string() {
    let s = Server::start(&["--server-header", ""]);
    let r = s.get("/");
    assert_eq!(r.status, 200, "{r}");
    assert!(
        r.header("server").is_none(),
        "empty --server-header must disable the header: {r}"
    );
    assert_date_header(&r);
}

#[test]
fn unknown_path_is_404() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.send(get_req(&s.hostport(), "/no/such/path", ""));
    let r = c.read_response();
    assert_eq!(r.status, 404, "{r}");
    // A 404 from the app is an ordinary response: the connection stays usable.
    c.send(get_req(&s.hostport(), "/", ""));
    let r2 = c.read_response();
    assert_eq!(
        (r2.status, r2.body.as_slice()),
        (200, &b"Hello, World!"[..]),
        "{r2}"
    );
}

#[test]
fn keep_alive_reuses_the_connection() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    let peer = c.local();
    for i in 0..3 {
        c.send(get_req(&s.hostport(), "/", ""));
        let r = c.read_response();
        assert_eq!(r.status, 200, "request {i}: {r}");
        assert!(!r.has_token("connection", "close"), "request {i}: {r}");
    }
    s.assert_not_closed(&peer);
    let ns = s.notices_for(&peer);
    assert_eq!(
        ns.iter().filter(|n| n.event == "accepted").count(),
        1,
        "one connection for 3 requests: {ns:#?}"
    );
    c.shutdown_write();
    let (rest, end) = c.expect_close(Duration::from_secs(3));
    assert!(
        rest.is_empty(),
        "unexpected bytes after FIN: \"{}\"",
        show(&rest)
    );
    assert_eq!(end, End::Eof);
    let closed = s.wait_closed(&peer, Duration::from_secs(3));
    assert_eq!(closed.requests, 3, "{closed:?}");
    assert_eq!(
        closed.reason.as_deref(),
        Some("client_closed"),
        "{closed:?}"
    );
}

/// The read buffer a connection keeps between small requests must take any head that
/// follows: one larger than the buffer, one split across writes, a body, and small ones again.
#[test]
fn kept_read_buffer_takes_heads_of_every_size() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    let h = s.hostport();
    let big = format!("x-fill: {}\r\n", "a".repeat(6000));
    for i in 0..40 {
        let extra = match i % 4 {
            1 => big.clone(),
            _ => String::new(),
        };
        let req = get_req(&h, "/", &extra);
        if i % 4 == 2 {
            // One head in three writes, the first well inside the buffer.
            let b = req.as_bytes();
            c.send(&b[..5]);
            thread::sleep(Duration::from_millis(2));
            c.send(&b[5..20]);
            thread::sleep(Duration::from_millis(2));
            c.send(&b[20..]);
        } else if i % 4 == 3 {
            c.send(format!(
                "POST /echo HTTP/1.1\r\nHost: {h}\r\ncontent-length: 3000\r\n\r\n{}",
                "b".repeat(3000)
            ));
            let r = c.read_response();
            assert_eq!(r.status, 200, "request {i}: {r}");
            assert_eq!(r.body.len(), 3000, "request {i}");
            continue;
        } else {
            c.send(req);
        }
        let r = c.read_response();
        assert_eq!(r.status, 200, "request {i}: {r}");
        assert_eq!(r.body, b"Hello, World!", "request {i}: {r}");
    }
}

#[test]
fn http10_closes_after_response() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    let peer = c.local();
    c.send("GET / HTTP/1.0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"Hello, World!"[..]),
        "{r}"
    );
    assert!(
        !r.is_chunked(),
        "no chunked framing towards an HTTP/1.0 client: {r}"
    );
    assert!(!r.has_token("connection", "keep-alive"), "{r}");
    let (rest, end) = c.expect_close(Duration::from_secs(3));
    assert!(
        rest.is_empty(),
        "bytes after the response: \"{}\"",
        show(&rest)
    );
    assert_eq!(end, End::Eof, "clean close expected");
    let closed = s.wait_closed(&peer, Duration::from_secs(3));
    assert_eq!(
        closed.reason, None,
        "clean close by the server after an HTTP/1.0 exchange: {closed:?}"
    );
    assert_eq!(closed.requests, 1, "{closed:?}");
}

#[test]
fn http10_keep_alive_is_honoured() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r}");
    assert!(
        r.has_token("connection", "keep-alive"),
        "an HTTP/1.0 keep-alive response must say so: {r}"
    );
    assert!(
        r.header("content-length").is_some(),
        "keep-alive with HTTP/1.0 needs a length: {r}"
    );
    c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r2 = c.read_response();
    assert_eq!(
        (r2.status, r2.body.as_slice()),
        (200, &b"Hello, World!"[..]),
        "{r2}"
    );
}

#[test]
fn http10_echo_is_not_chunked() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.send("POST /echo HTTP/1.0\r\nContent-Length: 11\r\n\r\nhello world");
    let (raw, _end) = c.expect_close(Duration::from_secs(5));
    let (r, used) = parse_response(&raw, false, true)
        .unwrap_or_else(|e| panic!("{e}: \"{}\"", show(&raw)))
        .unwrap_or_else(|| panic!("incomplete response: \"{}\"", show(&raw)));
    assert_eq!(r.status, 200, "{r}");
    assert!(
        !r.is_chunked(),
        "HTTP/1.0 must not get a chunked response: {r}"
    );
    assert_eq!(r.body, b"hello world", "{r}");
    assert_eq!(used, raw.len(), "trailing bytes after the response");
}

#[test]
fn connection_close_request_is_honoured() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    let peer = c.local();
    c.send(get_req(&s.hostport(), "/", "Connection: close\r\n"));
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r}");
    r.assert_connection_close();
    let (rest, end) = c.expect_close(Duration::from_secs(3));
    assert!(rest.is_empty());
    assert_eq!(end, End::Eof);
    let closed = s.wait_closed(&peer, Duration::from_secs(3));
    assert_eq!(
        closed.reason, None,
        "clean close after a `connection: close` exchange: {closed:?}"
    );
}

#[test]
fn pipelining_three_requests_in_one_write() {
    let s = Server::start(&[]);
    let h = s.hostport();
    let mut c = s.connect();
    let mut req = String::new();
    req += &format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: 3\r\n\r\none");
    req += &format!("GET /nope HTTP/1.1\r\nHost: {h}\r\n\r\n");
    req += &format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nthree\r\n0\r\n\r\n");
    c.send(req);
    let r1 = c.read_response();
    let r2 = c.read_response();
    let r3 = c.read_response();
    assert_eq!(
        (r1.status, r1.body_str().as_str()),
        (200, "one"),
        "first: {r1}"
    );
    assert_eq!(r2.status, 404, "second: {r2}");
    assert_eq!(
        (r3.status, r3.body_str().as_str()),
        (200, "three"),
        "third: {r3}"
    );
    c.expect_silence(Duration::from_millis(200));
}

#[test]
fn pipelining_slow_first_response_keeps_order() {
    let s = Server::start(&[]);
    let h = s.hostport();
    let mut c = s.connect();
    c.send(format!(
        "GET /stream/p1?chunks=5&bytes=3&interval_ms=40 HTTP/1.1\r\nHost: {h}\r\n\r\nGET / HTTP/1.1\r\nHost: {h}\r\n\r\n"
    ));
    let r1 = c.read_response();
    assert_eq!(r1.status, 200, "{r1}");
    assert!(
        r1.is_chunked(),
        "a stream of unknown length is chunked: {r1}"
    );
    assert_eq!(r1.body.len(), 15, "5 chunks × 3 bytes: {r1}");
    let r2 = c.read_response();
    assert_eq!(
        (r2.status, r2.body.as_slice()),
        (200, &b"Hello, World!"[..]),
        "{r2}"
    );
    let o = s.observed("p1", 2000);
    assert!(o.completed && o.reason.is_none(), "{o:?}");
}

#[test]
fn chunked_request_body_is_echoed_dechunked() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.send(format!(
        "POST /echo HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
        s.hostport()
    ));
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r}");
    assert!(
        r.is_chunked(),
        "echo streams: chunked response expected: {r}"
    );
    assert_eq!(r.body_str(), "hello worldabcdefghijklmnopqrstuvwxyz", "{r}");
}

#[test]
fn chunked_request_with_extensions_and_trailers() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.send(format!(
        "POST /echo HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n4;name=value\r\nabcd\r\n3;x\r\nefg\r\n0\r\nX-Trailer-One: 1\r\nX-Trailer-Two: two\r\n\r\n",
        s.hostport()
    ));
    let r = c.read_response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "abcdefg"), "{r}");
    // The trailer section was consumed exactly: the connection serves the next request.
    c.send(get_req(&s.hostport(), "/", ""));
    let r2 = c.read_response();
    assert_eq!(
        (r2.status, r2.body.as_slice()),
        (200, &b"Hello, World!"[..]),
        "{r2}"
    );
}

#[test]
fn head_has_headers_but_no_body() {
    let s = Server::start(&[]);
    let h = s.hostport();
    let mut c = s.connect();
    // HEAD then GET pipelined: a body after the HEAD response would corrupt the second parse.
    c.send(format!(
        "HEAD / HTTP/1.1\r\nHost: {h}\r\n\r\nGET / HTTP/1.1\r\nHost: {h}\r\n\r\n"
    ));
    let r1 = c.read_head_response();
    assert_eq!(r1.status, 200, "{r1}");
    if let Some(cl) = r1.header("content-length") {
        assert_eq!(
            cl, "13",
            "HEAD should announce the GET length if it announces one: {r1}"
        );
    }
    let r2 = c.read_response();
    assert_eq!(
        (r2.status, r2.body.as_slice()),
        (200, &b"Hello, World!"[..]),
        "second response after HEAD: {r2}"
    );
    c.expect_silence(Duration::from_millis(200));
}

#[test]
fn head_of_a_stream_writes_no_body() {
    let s = Server::start(&[]);
    let h = s.hostport();
    let mut c = s.connect();
    c.send(format!("HEAD /stream/hs?chunks=3&bytes=5&interval_ms=0 HTTP/1.1\r\nHost: {h}\r\n\r\nGET / HTTP/1.1\r\nHost: {h}\r\n\r\n"));
    let r1 = c.read_head_response();
    let r2 = c.read_response();
    assert_eq!(
        (r2.status, r2.body.as_slice()),
        (200, &b"Hello, World!"[..]),
        "after HEAD {r1}: {r2}"
    );
}

#[test]
fn expect_100_continue_when_app_reads_body() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.send(format!(
        "POST /echo HTTP/1.1\r\nHost: {}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        s.hostport()
    ));
    let interim = c.read_response();
    assert_eq!(
        interim.status, 100,
        "expected `HTTP/1.1 100 Continue` first: {interim}"
    );
    assert_eq!(interim.version, "HTTP/1.1", "{interim}");
    assert!(interim.body.is_empty());
    c.send("hello");
    let r = c.read_response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "hello"), "{r}");
}

#[test]
fn expect_100_continue_not_sent_when_app_does_not_read() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.send(format!(
        "POST /hold/nocont HTTP/1.1\r\nHost: {}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        s.hostport()
    ));
    let o = s.wait_seen("nocont", Duration::from_secs(5));
    assert_eq!(o.reason, None, "{o:?}");
    c.expect_silence(Duration::from_millis(500));
}

#[test]
fn echo_large_body_streams_while_uploading() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    let len = 4 * 1024 * 1024;
    let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut writer = c.stream.try_clone().unwrap();
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: {}\r\nContent-Length: {len}\r\n\r\n",
        s.hostport()
    );
    let body2 = body.clone();
    let t = thread::spawn(move || {
        use std::io::Write;
        writer
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        writer.write_all(head.as_bytes())?;
        writer.write_all(&body2)
    });
    let r = c
        .read_response_timeout(false, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    t.join().unwrap().expect("upload failed");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), len, "echoed length");
    assert!(r.body == body, "echoed bytes differ");
}

#[test]
fn stream_completes_and_is_observed_completed() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.send(get_req(
        &s.hostport(),
        "/stream/done?chunks=4&bytes=7&interval_ms=5",
        "",
    ));
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r}");
    assert!(r.is_chunked(), "{r}");
    assert_eq!(r.body.len(), 28, "{r}");
    let o = s.observed("done", 2000);
    assert_eq!(o.tag, "done");
    assert!(
        o.completed,
        "fully delivered stream must be completed: {o:?}"
    );
    assert_eq!(o.reason, None, "{o:?}");
}

#[test]
fn half_close_allowed_gets_full_response() {
    let s = Server::start(&["--allow-half-close"]);
    let mut c = s.connect();
    let peer = c.local();
    c.send(get_req(&s.hostport(), "/", ""));
    c.shutdown_write();
    let r = c
        .read_response_timeout(false, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("with --allow-half-close: {e}"));
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"Hello, World!"[..]),
        "{r}"
    );
    let (rest, _end) = c.expect_close(Duration::from_secs(3));
    assert!(rest.is_empty(), "\"{}\"", show(&rest));
    let closed = s.wait_closed(&peer, Duration::from_secs(3));
    assert_eq!(closed.requests, 1, "{closed:?}");
}

#[test]
fn half_close_allowed_with_slow_stream() {
    let s = Server::start(&["--allow-half-close"]);
    let mut c = s.connect();
    c.send(get_req(
        &s.hostport(),
        "/stream/hc?chunks=5&bytes=10&interval_ms=30",
        "",
    ));
    c.shutdown_write();
    let r = c
        .read_response_timeout(false, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.body.len(), 50, "{r}");
    let o = s.observed("hc", 2000);
    assert!(
        o.completed && o.reason.is_none(),
        "half-closed client got the full stream: {o:?}"
    );
}

#[test]
fn multiple_listeners_all_serve() {
    let s = Server::start(&["--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"]);
    assert_eq!(s.addrs.len(), 2);
    assert_ne!(s.addrs[0], s.addrs[1]);
    for a in s.addrs.clone() {
        let mut c = s.connect_to(a);
        c.send(get_req(&a.to_string(), "/", "Connection: close\r\n"));
        let r = c.read_response();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"Hello, World!"[..]),
            "listener {a}: {r}"
        );
    }
}

#[test]
fn keep_alive_many_sequential_requests_are_fast() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    let t = Instant::now();
    for _ in 0..200 {
        c.send(get_req(&s.hostport(), "/", ""));
        let r = c.read_response();
        assert_eq!(r.status, 200);
    }
    let el = t.elapsed();
    eprintln!("200 keep-alive requests took {el:?}");
    assert!(
        el < Duration::from_secs(5),
        "200 sequential keep-alive requests took {el:?} (Nagle/delayed-ACK stall?)"
    );
}

#[test]
fn large_stream_is_fully_delivered_to_a_reading_client() {
    // 256 chunks × 16 KiB = 4 MiB, read as fast as it comes.
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.send(get_req(
        &s.hostport(),
        "/stream/big?chunks=256&bytes=16384&interval_ms=0",
        "",
    ));
    let t = Instant::now();
    let r = c
        .read_response_timeout(false, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("4 MiB stream not delivered: {e}"));
    eprintln!("4 MiB stream took {:?}", t.elapsed());
    assert_eq!(r.body.len(), 256 * 16384);
    let o = s.observed("big", 3000);
    assert!(o.completed && o.reason.is_none(), "{o:?}");
}

#[test]
fn medium_echo_round_trip() {
    // 200 KiB: above the 64 KiB write-buffer high watermark.
    let s = Server::start(&[]);
    let mut c = s.connect();
    let body: Vec<u8> = (0..200 * 1024).map(|i| (i % 13) as u8 + b'a').collect();
    c.send(format!(
        "POST /echo HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        s.hostport(),
        body.len()
    ));
    c.send(&body);
    let r = c
        .read_response_timeout(false, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("200 KiB echo: {e}"));
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "echoed bytes differ");
}

#[test]
fn observed_unknown_tag_is_404_and_known_tag_has_shape() {
    let s = Server::start(&[]);
    let r = s.get("/observed/never-seen?wait_ms=0");
    assert_eq!(r.status, 404, "{r}");
    let mut c = s.connect();
    c.send(get_req(&s.hostport(), "/hold/shape", ""));
    let o = s.wait_seen("shape", Duration::from_secs(5));
    assert_eq!(
        (o.tag.as_str(), o.reason.as_deref(), o.after_ms, o.completed),
        ("shape", None, None, false),
        "{o:?}"
    );
    // wait_ms bounds the wait when nothing happens.
    let t = Instant::now();
    let o = s.observed("shape", 300);
    let el = t.elapsed();
    assert!(
        el >= Duration::from_millis(250) && el < Duration::from_secs(3),
        "wait_ms=300 answered after {el:?}"
    );
    assert_eq!(o.reason, None, "{o:?}");
    drop(c);
}
