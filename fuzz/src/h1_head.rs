//! `h1_head`: the HTTP/1.1 request-head parser, as the connection driver calls it.
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | limits: bits 0–1 the request line (64, 256, 1024, 8192 bytes), 2–3 the header block (64, 512, 2048, 8192), 4–5 the field count (1, 4, 16, 100) |
//! | 1–2 | seed of the split points |
//! | 3.. | the bytes the client sent |
//!
//! Leading empty lines are skipped as the driver skips them, then the parser sees the bytes
//! all at once, and again as they would arrive in random pieces (each piece appended to the
//! buffer, the parser called after each, stopping at the first answer). The checks:
//!
//! * nothing panics; both answers are the same (the same head, or both an error; the status
//!   may differ when the bytes hold several faults): where a client's bytes happen to be split
//!   never decides between a request and a refusal;
//! * a head is a prefix of the input, taken from the buffer, and re-parsing just its bytes,
//!   or its bytes followed by anything, gives the same head (a pipelined request behind it
//!   cannot change it);
//! * a head keeps the parser's promises: a request line without CR or LF; lower-case token
//!   names; values without CR, LF, NUL or outer whitespace; one valid `host` on HTTP/1.1;
//!   framing that agrees with the fields (chunked only on HTTP/1.1, never with
//!   `content-length`; a length only from exactly one `content-length`); the keep-alive rule;
//!   a path that starts with `/` (or is `*`) and holds no `#`.

use bytes::BytesMut;
use ragi_server::__fuzz::h1::{self, Framing, Head, Parsed};

use crate::harness::Rng;
use crate::Target;

/// The target.
pub const TARGET: Target = Target {
    name: "h1_head",
    run,
    seeds,
};

#[derive(Clone, Copy)]
struct Limits {
    line: usize,
    block: usize,
    fields: usize,
}

fn limits(b: u8) -> Limits {
    Limits {
        line: [64, 256, 1024, 8192][usize::from(b & 3)],
        block: [64, 512, 2048, 8192][usize::from((b >> 2) & 3)],
        fields: [1, 4, 16, 100][usize::from((b >> 4) & 3)],
    }
}

fn parse(buf: &mut BytesMut, l: Limits) -> Parsed {
    h1::parse_head(buf, l.line, l.block, l.fields)
}

/// The target: see the [module docs](self).
pub fn run(data: &[u8]) {
    let Some((&[b0, s0, s1], input)) = data.split_first_chunk::<3>() else {
        return;
    };
    let l = limits(b0);
    let skip = h1::leading_empty_lines(input);
    assert!(input[..skip].iter().all(|&b| b == b'\r' || b == b'\n'));
    let input = &input[skip..];

    let mut whole = BytesMut::from(input);
    let answer = parse(&mut whole, l);

    // In pieces, as the driver would see them.
    let mut rng = Rng::new(u64::from(u16::from_le_bytes([s0, s1])));
    let mut buf = BytesMut::new();
    let mut at = 0;
    let mut pieces = Parsed::Partial;
    while at < input.len() {
        let most = if rng.below(4) == 0 { 4 } else { 64 };
        let n = 1 + rng.below(most);
        let end = (at + n).min(input.len());
        buf.extend_from_slice(&input[at..end]);
        at = end;
        pieces = parse(&mut buf, l);
        if !matches!(pieces, Parsed::Partial) {
            break;
        }
        // A partial answer leaves the buffer as it was.
        assert_eq!(&buf[..], &input[..at], "a partial parse changed the buffer");
    }
    // A head, or not, whatever the split. When the bytes hold several faults, which one is
    // seen first (and so the error status) may depend on how much had arrived.
    match (&answer, &pieces) {
        (Parsed::Error(_), Parsed::Error(_)) => {}
        _ => assert_eq!(
            answer, pieces,
            "the answer depends on how the bytes were split"
        ),
    }

    match &answer {
        Parsed::Partial => assert_eq!(&whole[..], input),
        Parsed::Error(status) => {
            assert!(
                matches!(status, 400 | 414 | 431 | 501 | 505),
                "status {status}"
            );
            assert_eq!(&whole[..], input, "an error took bytes");
        }
        Parsed::Complete(head) => {
            assert!(head.len <= input.len());
            assert_eq!(
                &whole[..],
                &input[head.len..],
                "the head's bytes were not taken"
            );
            check_head(head, &input[..head.len]);
            // Its bytes alone, and its bytes with anything behind: the same head.
            let mut alone = BytesMut::from(&input[..head.len]);
            assert_eq!(parse(&mut alone, l), answer);
            assert!(alone.is_empty());
            let tail: Vec<u8> = (0..rng.below(64)).map(|_| rng.below(256) as u8).collect();
            let mut behind = BytesMut::from(&input[..head.len]);
            behind.extend_from_slice(&tail);
            assert_eq!(parse(&mut behind, l), answer);
            assert_eq!(&behind[..], &tail[..]);
        }
    }
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn check_head(head: &Head, bytes: &[u8]) {
    assert!(bytes.ends_with(b"\n\n") || bytes.ends_with(b"\n\r\n"));
    assert!(!head.request_line.contains(&b'\n') && !head.request_line.contains(&b'\r'));
    assert!(bytes.starts_with(&head.request_line));
    assert!(!head.method.is_empty() && head.method.bytes().all(is_token));
    assert_ne!(head.method, "CONNECT");
    assert!(
        head.raw_path.starts_with(b"/") || &head.raw_path[..] == b"*",
        "path {:?}",
        head.raw_path
    );
    assert!(!head.raw_path.contains(&b'#') && !head.query.contains(&b'#'));
    let mut hosts = 0;
    let mut lengths = Vec::new();
    let mut te = false;
    let (mut close, mut keep) = (false, false);
    for (name, value) in &head.headers {
        assert!(
            !name.is_empty() && name.iter().all(|&b| is_token(b)),
            "{name:?}"
        );
        assert!(!name.iter().any(u8::is_ascii_uppercase), "{name:?}");
        assert!(
            !value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0),
            "{value:?}"
        );
        assert!(
            !value.starts_with(b" ")
                && !value.starts_with(b"\t")
                && !value.ends_with(b" ")
                && !value.ends_with(b"\t"),
            "{value:?}"
        );
        match &name[..] {
            b"host" => {
                hosts += 1;
                assert!(!value.is_empty());
            }
            b"content-length" => lengths.push(value.clone()),
            b"transfer-encoding" => {
                te |= value
                    .split(|&b| b == b',')
                    .any(|c| c.iter().any(|&b| b != b' ' && b != b'\t'))
            }
            b"connection" => {
                for t in value.split(|&b| b == b',') {
                    let t = t.trim_ascii();
                    close |= t.eq_ignore_ascii_case(b"close");
                    keep |= t.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            _ => {}
        }
    }
    assert!(hosts <= 1, "{hosts} hosts");
    if head.http11 {
        assert_eq!(hosts, 1, "HTTP/1.1 without one host");
    }
    assert!(lengths.len() <= 1, "{} content-lengths", lengths.len());
    match head.framing {
        Framing::Chunked => {
            assert!(head.http11 && te && lengths.is_empty());
        }
        Framing::Length(n) => {
            assert!(!te && n > 0);
            let v = std::str::from_utf8(&lengths[0]).expect("digits");
            assert_eq!(v.parse::<u64>().ok(), Some(n), "{v:?}");
        }
        Framing::Empty => {
            assert!(!te);
            if let Some(v) = lengths.first() {
                assert!(v.iter().all(|&b| b == b'0'), "{v:?}");
            }
        }
    }
    let keep_alive = if head.http11 { !close } else { keep && !close };
    assert_eq!(head.keep_alive, keep_alive);
}

/// Seeds: ordinary requests, every framing, the smuggling vectors of the suite in
/// `crates/ragi-cli/tests/smuggling.rs`, the version and target forms.
pub fn seeds() -> Vec<Vec<u8>> {
    let heads: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /a%20b?x=1&y HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
        b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"GET http://other.example/p?q HTTP/1.1\r\nHost: h\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.2\r\nHost: h\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        b"\r\n\r\nGET / HTTP/1.1\nHost: h\n\n",
        b"PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\tchunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 005\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: close, foo\r\nHost: [::1]:80\r\n\r\n",
    ];
    let mut seeds = Vec::new();
    for (i, head) in heads.iter().enumerate() {
        for setup in [0xff, 0x00, 0x15] {
            let mut seed = vec![setup, i as u8, 0];
            seed.extend_from_slice(head);
            seeds.push(seed);
        }
    }
    seeds
}
