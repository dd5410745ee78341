//! Size and count limits: body (413), request line (414), header block and field count (431),
//! connections (503 with retry-after). Each: what the client sees, the close, the app never
//! being called, and the lifecycle notice.

mod support;

use std::time::Duration;

use support::*;

/// Sends `raw`, expects a server-made `status` with `connection: close` and the close.
fn expect_limit(s: &Server, raw: &[u8], status: u16) -> (Response, Notice) {
    let mut c = s.connect();
    let peer = c.local();
    c.send(raw);
    let r = c
        .read_response_timeout(false, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("expected {status} for \"{}\": {e}", show_n(raw, 120)));
    assert_eq!(r.status, status, "request \"{}\" → {r}", show_n(raw, 120));
    r.assert_connection_close();
    let (rest, end) = c.expect_close(Duration::from_secs(3));
    assert!(
        rest.is_empty(),
        "bytes after the {status}: \"{}\"",
        show(&rest)
    );
    let closed = s.wait_closed(&peer, Duration::from_secs(3));
    eprintln!("[{status}] close seen as {end:?}; closed notice {closed:?}");
    (r, closed)
}

// ----- body --------------------------------------------------------------------------------

#[test]
fn declared_body_over_limit_is_413_and_app_not_called() {
    let s = Server::start(&["--max-body-size", "1000"]);
    let raw = format!(
        "POST /hold/big HTTP/1.1\r\nHost: {}\r\nContent-Length: 1001\r\n\r\n",
        s.hostport()
    );
    let (_r, closed) = expect_limit(&s, raw.as_bytes(), 413);
    s.assert_app_not_called("big");
    assert_eq!(
        closed.reason.as_deref(),
        Some("body_too_large"),
        "{closed:?}"
    );
}

#[test]
fn body_at_limit_is_accepted() {
    let s = Server::start(&["--max-body-size", "1000"]);
    let mut c = s.connect();
    let body = vec![b'x'; 1000];
    c.send(format!(
        "POST /echo HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000\r\n\r\n",
        s.hostport()
    ));
    c.send(&body);
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body, body);
}

#[test]
fn chunked_body_crossing_limit_is_413() {
    let s = Server::start(&["--max-body-size", "1000"]);
    let mut c = s.connect();
    let peer = c.local();
    // One 2000-byte chunk: the limit is crossed before any body byte can reach the app.
    let mut raw = format!(
        "POST /echo HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n",
        s.hostport()
    )
    .into_bytes();
    raw.extend(vec![b'y'; 2000]);
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    c.send(&raw);
    let r = c
        .read_response_timeout(false, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 413, "{r}");
    r.assert_connection_close();
    let (rest, _end) = c.expect_close(Duration::from_secs(3));
    assert!(rest.is_empty(), "\"{}\"", show(&rest));
    let closed = s.wait_closed(&peer, Duration::from_secs(3));
    assert_eq!(
        closed.reason.as_deref(),
        Some("body_too_large"),
        "{closed:?}"
    );
}

#[test]
fn chunked_body_crossing_limit_in_small_chunks_is_413() {
    let s = Server::start(&["--max-body-size", "1000"]);
    let mut c = s.connect();
    let peer = c.local();
    let mut raw = format!(
        "POST /echo HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        s.hostport()
    )
    .into_bytes();
    for _ in 0..30 {
        raw.extend_from_slice(b"64\r\n");
        raw.extend(vec![b'z'; 100]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    c.send(&raw);
    // The echo app may already have started its response; then the response is cut short
    // (no terminating chunk). Otherwise 413. Either way: close, reason body_too_large, and no
    // more than 1000 body bytes echoed.
    let (bytes, end) = c.expect_close(Duration::from_secs(5));
    let r = parse_head(
        &bytes[..find(&bytes, b"\r\n\r\n")
            .map(|p| p + 4)
            .unwrap_or_else(|| panic!("no head: \"{}\"", show(&bytes)))],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "small chunks over the limit: {} {} then {end:?}",
        r.status, r.reason
    );
    match r.status {
        413 => r.assert_connection_close(),
        200 => {
            let body = &bytes[find(&bytes, b"\r\n\r\n").unwrap() + 4..];
            match decode_chunked(body) {
                Ok(Chunked::Partial { data }) => assert!(
                    data.len() <= 1000,
                    "echoed {} bytes over a 1000 limit",
                    data.len()
                ),
                Ok(Chunked::Complete { data, .. }) => panic!(
                    "an over-limit body was echoed as a complete response ({} bytes)",
                    data.len()
                ),
                Err(e) => panic!("bad chunked framing: {e}"),
            }
        }
        other => panic!("unexpected status {other}: \"{}\"", show(&bytes)),
    }
    let closed = s.wait_closed(&peer, Duration::from_secs(3));
    assert_eq!(
        closed.reason.as_deref(),
        Some("body_too_large"),
        "{closed:?}"
    );
}

#[test]
fn default_body_limit_is_10mb() {
    let s = Server::start(&[]);
    let raw = format!(
        "POST /hold/d10 HTTP/1.1\r\nHost: {}\r\nContent-Length: 10000001\r\n\r\n",
        s.hostport()
    );
    expect_limit(&s, raw.as_bytes(), 413);
    s.assert_app_not_called("d10");
    // Exactly 10 000 000 is allowed: the app is called.
    let mut c = s.connect();
    c.send(format!(
        "POST /hold/d10ok HTTP/1.1\r\nHost: {}\r\nContent-Length: 10000000\r\n\r\n",
        s.hostport()
    ));
    let o = s.wait_seen("d10ok", Duration::from_secs(5));
    assert_eq!(o.reason, None, "{o:?}");
    drop(c);
}

#[test]
fn expect_continue_with_too_large_body_gets_413_without_100() {
    let s = Server::start(&["--max-body-size", "100"]);
    let raw = format!(
        "POST /echo HTTP/1.1\r\nHost: {}\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
        s.hostport()
    );
    let (r, _closed) = expect_limit(&s, raw.as_bytes(), 413);
    assert_ne!(r.status, 100);
}

// ----- request line / headers --------------------------------------------------------------

#[test]
fn request_line_over_limit_is_414() {
    let s = Server::start(&["--max-header-size", "1024"]);
    let raw = format!(
        "GET /hold/rl414?{} HTTP/1.1\r\nHost: {}\r\n\r\n",
        "a".repeat(1100),
        s.hostport()
    );
    expect_limit(&s, raw.as_bytes(), 414);
    s.assert_app_not_called("rl414");
    // Under the limit is fine.
    let mut c = s.connect();
    c.send(format!(
        "GET /?{} HTTP/1.1\r\nHost: {}\r\n\r\n",
        "a".repeat(800),
        s.hostport()
    ));
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r}");
}

#[test]
fn request_line_over_default_8k_is_414() {
    let s = Server::start(&[]);
    let raw = format!(
        "GET /hold/rl8k?{} HTTP/1.1\r\nHost: {}\r\n\r\n",
        "b".repeat(9000),
        s.hostport()
    );
    expect_limit(&s, raw.as_bytes(), 414);
    s.assert_app_not_called("rl8k");
}

#[test]
fn request_line_over_limit_without_newline_is_414_early() {
    // The server must not wait for the end of an over-long request line.
    let s = Server::start(&["--max-header-size", "1024"]);
    let raw = format!("GET /{}", "c".repeat(4000));
    expect_limit(&s, raw.as_bytes(), 414);
}

#[test]
fn header_block_over_limit_is_431() {
    let s = Server::start(&["--max-header-size", "1024"]);
    let raw = format!(
        "GET /hold/hb431 HTTP/1.1\r\nHost: {}\r\nX-Big: {}\r\n\r\n",
        s.hostport(),
        "v".repeat(1100)
    );
    expect_limit(&s, raw.as_bytes(), 431);
    s.assert_app_not_called("hb431");
    // Many small fields adding up over the limit.
    let mut raw = format!("GET /hold/hb431b HTTP/1.1\r\nHost: {}\r\n", s.hostport());
    for i in 0..40 {
        raw += &format!("X-F{i}: {}\r\n", "w".repeat(30));
    }
    raw += "\r\n";
    expect_limit(&s, raw.as_bytes(), 431);
    s.assert_app_not_called("hb431b");
}

#[test]
fn header_block_over_default_8k_is_431() {
    let s = Server::start(&[]);
    let raw = format!(
        "GET /hold/hb8k HTTP/1.1\r\nHost: {}\r\nX-Big: {}\r\n\r\n",
        s.hostport(),
        "v".repeat(9000)
    );
    expect_limit(&s, raw.as_bytes(), 431);
    s.assert_app_not_called("hb8k");
    // 7000 bytes of header value is under the default.
    let r = {
        let mut c = s.connect();
        c.send(format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nX-Big: {}\r\n\r\n",
            s.hostport(),
            "v".repeat(7000)
        ));
        c.read_response()
    };
    assert_eq!(r.status, 200, "{r}");
}

#[test]
fn too_many_headers_is_431() {
    let s = Server::start(&["--max-headers", "5"]);
    // Host + 4 = 5 fields: fine.
    let mut c = s.connect();
    c.send(format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
        s.hostport()
    ));
    let r = c.read_response();
    assert_eq!(r.status, 200, "5 fields with --max-headers 5: {r}");
    // Host + 5 = 6 fields: 431.
    let raw = format!(
        "GET /hold/mh6 HTTP/1.1\r\nHost: {}\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n",
        s.hostport()
    );
    expect_limit(&s, raw.as_bytes(), 431);
    s.assert_app_not_called("mh6");
}

#[test]
fn default_max_headers_is_100() {
    let s = Server::start(&[]);
    let mut ok = format!("GET / HTTP/1.1\r\nHost: {}\r\n", s.hostport());
    for i in 0..99 {
        ok += &format!("X-{i}: v\r\n");
    }
    ok += "\r\n";
    let mut c = s.connect();
    c.send(&ok);
    let r = c.read_response();
    assert_eq!(r.status, 200, "100 fields must be accepted: {r}");
    let mut bad = format!("GET /hold/mh101 HTTP/1.1\r\nHost: {}\r\n", s.hostport());
    for i in 0..100 {
        bad += &format!("X-{i}: v\r\n");
    }
    bad += "\r\n";
    expect_limit(&s, bad.as_bytes(), 431);
    s.assert_app_not_called("mh101");
}

// ----- connections -------------------------------------------------------------------------

#[test]
fn max_connections_gives_503_with_retry_after() {
    let s = Server::start(&["--max-connections", "2"]);
    let h = s.hostport();
    // Two connections, each proven accepted by a served request, then kept open.
    let mut a = s.connect();
    a.send(get_req(&h, "/", ""));
    assert_eq!(a.read_response().status, 200);
    let mut b = s.connect();
    b.send(get_req(&h, "/", ""));
    assert_eq!(b.read_response().status, 200);

    // The third is over the limit.
    let mut c = s.connect();
    let c_peer = c.local();
    let _ = c.try_send(get_req(&h, "/", "").as_bytes());
    let r = c
        .read_response_timeout(false, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("third connection over --max-connections 2: expected 503, {e}"));
    assert_eq!(r.status, 503, "{r}");
    let ra = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("503 lacks retry-after: {r}"));
    assert!(
        !ra.is_empty()
            && (ra.bytes().all(|b| b.is_ascii_digit()) || httpdate::parse_http_date(ra).is_ok()),
        "retry-after {ra:?}"
    );
    r.assert_connection_close();
    let (rest, _end) = c.expect_close(Duration::from_secs(3));
    assert!(rest.is_empty(), "\"{}\"", show(&rest));
    drop(c);

    // The held connections are unaffected.
    a.send(get_req(&h, "/", ""));
    assert_eq!(
        a.read_response().status,
        200,
        "held connection a still served"
    );

    // Free a slot; a new connection is served again (the slot frees once the server sees FIN).
    let a_peer = a.local();
    a.shutdown_write();
    let _ = a.expect_close(Duration::from_secs(3));
    let r = poll_until(Duration::from_secs(3), "a slot to free up", || {
        let mut d = s.connect();
        let _ = d.try_send(get_req(&h, "/", "Connection: close\r\n").as_bytes());
        let r = d
            .read_response_timeout(false, Duration::from_secs(2))
            .ok()?;
        (r.status == 200).then_some(r)
    });
    assert_eq!(r.body, b"Hello, World!");
    // Only now is there a slot for the observer's own connections to /connections.
    let closed = s.wait_closed(&a_peer, Duration::from_secs(3));
    assert_eq!(
        closed.reason.as_deref(),
        Some("client_closed"),
        "{closed:?}"
    );
    eprintln!(
        "notices for the rejected connection {c_peer}: {:?}",
        s.notices_for(&c_peer)
    );
    drop(b);
}
