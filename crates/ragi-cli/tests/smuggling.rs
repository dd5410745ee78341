//! Request smuggling and framing (issue 14): every vector is sent in one write with an
//! innocent request pipelined behind it. A refused vector gets its error status and the
//! connection closes: neither the smuggled part nor the innocent request is answered (the
//! response is the only one on the wire). The lenient-but-safe cases are served, and so is
//! the request behind them, each exactly once.

mod support;

use std::time::Duration;

use support::*;

/// The innocent request: a path the probe answers 404 with a body naming nothing else.
const INNOCENT: &str = "GET /innocent HTTP/1.1\r\nHost: h\r\n\r\n";
/// A request the smuggled bytes could form: it must never be answered.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n";

/// Sends `vector` + the innocent request in one write; expects one `status` response, then
/// the close, and nothing more.
fn refused(s: &Server, name: &str, vector: &str, status: u16) {
    let mut c = s.connect();
    c.send(format!("{vector}{INNOCENT}"));
    let r = c
        .read_response_timeout(false, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("{name}: no response: {e}"));
    assert_eq!(r.status, status, "{name}: {r}");
    r.assert_connection_close();
    let (rest, _) = c.expect_close(Duration::from_secs(3));
    assert!(
        rest.is_empty(),
        "{name}: something more was answered: \"{}\"",
        show(&rest)
    );
}

/// Sends `vector` + the innocent request in one write; expects the vector's answer
/// (`status`), then the innocent request's 404, and nothing else.
fn accepted(s: &Server, name: &str, vector: &str, status: u16) {
    let mut c = s.connect();
    c.send(format!("{vector}{INNOCENT}"));
    let r = c.read_response();
    assert_eq!(r.status, status, "{name}: {r}");
    let innocent = c.read_response();
    assert_eq!(
        innocent.status, 404,
        "{name}: the request behind: {innocent}"
    );
    c.expect_silence(Duration::from_millis(200));
}

#[test]
fn smuggling_vectors_are_refused_and_nothing_behind_them_is_answered() {
    let s = Server::start(&[]);
    let te = |v: &str| format!("POST / HTTP/1.1\r\nHost: h\r\n{v}\r\n\r\n0\r\n\r\n{SMUGGLED}");
    let cl = |v: &str| format!("POST / HTTP/1.1\r\nHost: h\r\n{v}\r\n\r\nhello{SMUGGLED}");
    let cases: Vec<(&str, String, u16)> = vec![
        // CL.TE and TE.CL: both framings at once.
        (
            "CL.TE",
            format!(
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX{SMUGGLED}"
            ),
            400,
        ),
        (
            "TE.CL",
            format!(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n{SMUGGLED}"
            ),
            400,
        ),
        // Transfer-Encoding obfuscations.
        ("TE xchunked", te("Transfer-Encoding: xchunked"), 501),
        ("TE space before colon", te("Transfer-Encoding : chunked"), 400),
        ("TE chunked, identity", te("Transfer-Encoding: chunked, identity"), 400),
        (
            "two TE fields",
            te("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"),
            400,
        ),
        ("TE obs-fold", te("Transfer-Encoding:\r\n chunked"), 400),
        (
            "TE with CL, upper case",
            format!(
                "POST / HTTP/1.1\r\nHost: h\r\nTRANSFER-ENCODING: CHUNKED\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
            400,
        ),
        // Content-Length: duplicated and malformed.
        ("CL +5", cl("Content-Length: +5"), 400),
        ("CL negative", cl("Content-Length: -5"), 400),
        ("CL hex", cl("Content-Length: 0x5"), 400),
        ("CL list", cl("Content-Length: 5, 5"), 400),
        ("CL two values", cl("Content-Length: 5\r\nContent-Length: 6"), 400),
        ("CL two equal fields", cl("Content-Length: 5\r\nContent-Length: 5"), 400),
        // Header syntax.
        ("obs-fold", cl("Content-Length: 5\r\nX-Folded: a\r\n b"), 400),
        (
            "bare CR in a value",
            format!("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n{SMUGGLED}"),
            400,
        ),
        (
            "NUL in a value",
            format!("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n{SMUGGLED}"),
            400,
        ),
        (
            "a line without a colon",
            format!("GET / HTTP/1.1\r\nHost: h\r\nNoColonHere\r\n\r\n{SMUGGLED}"),
            400,
        ),
        (
            "two spaces in the request line",
            format!("GET  / HTTP/1.1\r\nHost: h\r\n\r\n{SMUGGLED}"),
            400,
        ),
        (
            "HTTP/1.0 with Transfer-Encoding",
            format!(
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
            400,
        ),
        (
            "duplicate Host",
            format!("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n{SMUGGLED}"),
            400,
        ),
        // Chunk framing.
        (
            "chunk size overflow",
            format!(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n{SMUGGLED}"
            ),
            400,
        ),
        (
            "chunk size 0x prefix",
            format!(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n{SMUGGLED}"
            ),
            400,
        ),
        (
            "chunk data without its CRLF",
            format!(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello0\r\n\r\n{SMUGGLED}"
            ),
            400,
        ),
        (
            "bare LF in chunk framing",
            format!(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n{SMUGGLED}"
            ),
            400,
        ),
    ];
    for (name, vector, status) in &cases {
        refused(&s, name, vector, *status);
    }
    eprintln!("{} vectors refused", cases.len());
}

/// Lenient but safe: bare LF line ends in the head (RFC 9112 §2.2 lets a server accept
/// them) and chunk extensions are served, exactly once each, with the request behind them.
#[test]
fn lenient_but_safe_cases_are_served() {
    let s = Server::start(&[]);
    accepted(
        &s,
        "bare LF line ends",
        "POST / HTTP/1.1\nHost: h\nContent-Length: 5\n\nhello",
        200,
    );
    accepted(
        &s,
        "chunk extensions",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value;x=\"q s\"\r\nhello\r\n0;end\r\n\r\n",
        200,
    );
    accepted(
        &s,
        "leading zeros in Content-Length",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 005\r\n\r\nhello",
        200,
    );
}
