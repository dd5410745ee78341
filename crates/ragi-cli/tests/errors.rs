//! Server-made error responses for malformed requests (400, 501): each carries
//! `connection: close`, `date`, `server`, is followed by the close, never reaches the app
//! (checked with a `/hold/{tag}` target that `/observed` would know), and the connection's
//! closed notice is reported.

mod support;

use std::time::Duration;

use support::*;

/// Sends `raw` on a fresh connection and checks the server-made error response and the close.
/// `tag` is the `/hold/{tag}` target inside `raw` (if any): the app must not have seen it.
/// Returns the response and the closed notice.
fn expect_error(s: &Server, raw: &[u8], status: u16, tag: Option<&str>) -> (Response, Notice) {
    let mut c = s.connect();
    let peer = c.local();
    c.send(raw);
    let r = match c.read_response_timeout(false, Duration::from_secs(5)) {
        Ok(r) => r,
        Err(e) => panic!("request \"{}\": expected {status}, {e}", show(raw)),
    };
    assert_eq!(r.status, status, "request \"{}\" → {r}", show(raw));
    r.assert_connection_close();
    assert!(
        r.header("date").is_some(),
        "server-made {status} lacks `date`: {r}"
    );
    assert!(
        r.header("server").is_some(),
        "server-made {status} lacks `server`: {r}"
    );
    let (rest, end) = c.expect_close(Duration::from_secs(3));
    assert!(
        rest.is_empty(),
        "nothing may follow the {status} (the rest of the request must not be answered): \"{}\"",
        show(&rest)
    );
    eprintln!("[{status}] \"{}\" → close {end:?}", show_n(raw, 80));
    drop(c); // our close ends the server's lingering close at once
    let closed = s.wait_closed(&peer, Duration::from_secs(3));
    assert_lifecycle_pair(&peer, &s.notices_for(&peer));
    if let Some(tag) = tag {
        s.assert_app_not_called(tag);
    }
    (r, closed)
}

fn expect_400(s: &Server, raw: &[u8], tag: Option<&str>) {
    let (_r, closed) = expect_error(s, raw, 400, tag);
    assert_eq!(
        closed.reason.as_deref(),
        Some("protocol_error"),
        "a malformed request ends the connection with protocol_error: {closed:?}"
    );
}

#[test]
fn bad_request_line_is_400() {
    let s = Server::start(&[]);
    expect_400(&s, b"GARBAGE\r\n\r\n", None);
    expect_400(
        &s,
        b"GET /hold/rl1 HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        Some("rl1"),
    );
    expect_400(
        &s,
        b"GET /hold/rl2 HTTX/1.1\r\nHost: x\r\n\r\n",
        Some("rl2"),
    );
    expect_400(
        &s,
        b"GET\x00 /hold/rl3 HTTP/1.1\r\nHost: x\r\n\r\n",
        Some("rl3"),
    );
}

#[test]
fn bad_header_syntax_is_400() {
    let s = Server::start(&[]);
    expect_400(
        &s,
        b"GET /hold/hs1 HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n",
        Some("hs1"),
    );
}

#[test]
fn whitespace_before_colon_is_400() {
    let s = Server::start(&[]);
    expect_400(
        &s,
        b"GET /hold/hs2 HTTP/1.1\r\nHost: x\r\nX-Foo : bar\r\n\r\n",
        Some("hs2"),
    );
}

#[test]
fn header_name_with_bad_char_is_400() {
    let s = Server::start(&[]);
    expect_400(
        &s,
        b"GET /hold/hs3 HTTP/1.1\r\nHost: x\r\nX(Foo): bar\r\n\r\n",
        Some("hs3"),
    );
}

#[test]
fn missing_host_on_http11_is_400() {
    let s = Server::start(&[]);
    expect_400(
        &s,
        b"GET /hold/nohost HTTP/1.1\r\nAccept: */*\r\n\r\n",
        Some("nohost"),
    );
}

#[test]
fn invalid_content_length_is_400() {
    let s = Server::start(&[]);
    expect_400(
        &s,
        b"POST /hold/cl1 HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        Some("cl1"),
    );
    expect_400(
        &s,
        b"POST /hold/cl2 HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        Some("cl2"),
    );
    expect_400(
        &s,
        b"POST /hold/cl3 HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\nab",
        Some("cl3"),
    );
    expect_400(
        &s,
        b"POST /hold/cl4 HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        Some("cl4"),
    );
}

#[test]
fn duplicated_content_length_is_400() {
    let s = Server::start(&[]);
    expect_400(
        &s,
        b"POST /hold/dcl1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef",
        Some("dcl1"),
    );
    expect_400(
        &s,
        b"POST /hold/dcl2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nabcde",
        Some("dcl2"),
    );
}

#[test]
fn content_length_with_transfer_encoding_is_400() {
    let s = Server::start(&[]);
    expect_400(
        &s,
        b"POST /hold/clte HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n",
        Some("clte"),
    );
}

#[test]
fn chunked_not_last_is_400() {
    let s = Server::start(&[]);
    expect_400(
        &s,
        b"POST /hold/cnl HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nabcde\r\n0\r\n\r\n",
        Some("cnl"),
    );
}

#[test]
fn bad_chunk_size_is_400() {
    let s = Server::start(&[]);
    // The bad size is the first thing the body reader meets, sent together with the head.
    expect_400(&s, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", None);
}

#[test]
fn unknown_transfer_coding_is_501() {
    let s = Server::start(&[]);
    let (r, closed) = expect_error(
        &s,
        b"POST /hold/te501 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: x-unknown, chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n",
        501,
        Some("te501"),
    );
    eprintln!("501 for unknown coding: {r}; closed notice {closed:?}");
}

#[test]
fn connect_method_is_501() {
    let s = Server::start(&[]);
    let (r, closed) = expect_error(
        &s,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        501,
        None,
    );
    eprintln!("501 for CONNECT: {r}; closed notice {closed:?}");
}

#[test]
fn error_after_good_pipelined_request_keeps_the_good_answer() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    let peer = c.local();
    c.send(format!(
        "GET / HTTP/1.1\r\nHost: {}\r\n\r\nGET / HTTP/1.1\r\nbroken header\r\n\r\n",
        s.hostport()
    ));
    let r1 = c.read_response();
    assert_eq!(
        (r1.status, r1.body.as_slice()),
        (200, &b"Hello, World!"[..]),
        "{r1}"
    );
    let r2 = c.read_response();
    assert_eq!(r2.status, 400, "{r2}");
    r2.assert_connection_close();
    let (rest, _) = c.expect_close(Duration::from_secs(3));
    assert!(rest.is_empty());
    let closed = s.wait_closed(&peer, Duration::from_secs(3));
    // Whether the rejected request counts is not specified; the good one must.
    eprintln!(
        "requests counted with one good + one malformed request: {}",
        closed.requests
    );
    assert!(matches!(closed.requests, 1 | 2), "{closed:?}");
    assert_eq!(
        closed.reason.as_deref(),
        Some("protocol_error"),
        "{closed:?}"
    );
}

#[test]
fn server_keeps_serving_after_errors() {
    let s = Server::start(&[]);
    for raw in [
        &b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage-tls-hello\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
    ] {
        let mut c = s.connect();
        c.send(raw);
        match c.read_to_end(Duration::from_secs(5)) {
            Ok((bytes, _)) => {
                if !bytes.is_empty() {
                    let parsed = parse_response(&bytes, false, true);
                    assert!(
                        matches!(parsed, Ok(Some(_))),
                        "ill-formed answer to \"{}\": \"{}\"",
                        show(raw),
                        show(&bytes)
                    );
                }
            }
            Err(got) => panic!(
                "no close within 5 s for \"{}\" (got \"{}\")",
                show(raw),
                show(&got)
            ),
        }
    }
    let r = s.get("/");
    assert_eq!(r.status, 200, "{r}");
}
