//! Malformed HTTP/2, in the spirit of h2spec: hand-built frames over a raw socket to the
//! probe (h2c by prior knowledge). Each case checks the RFC 9113 error the server answers
//! with (GOAWAY or RST_STREAM code) and that the server goes on serving.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::Server;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const RST_STREAM: u8 = 3;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

const PROTOCOL_ERROR: u32 = 0x1;
const FLOW_CONTROL_ERROR: u32 = 0x3;
const STREAM_CLOSED: u32 = 0x5;
const FRAME_SIZE_ERROR: u32 = 0x6;
const COMPRESSION_ERROR: u32 = 0x9;

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// `GET {path}` with a literal `:path` and `:authority` (no dynamic table entries).
fn hold_block(path: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x04, path.len() as u8];
    b.extend_from_slice(path.as_bytes());
    b.extend_from_slice(&[0x01, 9]);
    b.extend_from_slice(b"localhost");
    b
}

/// `GET /` with HPACK static-table indexes and a literal `:authority`.
fn get_block() -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x84, 0x41, 9];
    b.extend_from_slice(b"localhost");
    b
}

/// What the server said about the error, or how the connection ended.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    GoAway(u32),
    /// A response head on a stream: the stream and the first byte of its header block
    /// (`0x88` is `:status 200`).
    Headers(u32, u8),
    Reset(u32, u32),
    Closed,
    Nothing,
}

/// Like [`exchange`], but reads past response heads: the server may answer a stream before it
/// reaches the frame that ends the connection.
fn error_answer(s: &Server, bytes: &[u8]) -> Answer {
    exchange_inner(s, bytes, false)
}

/// Opens an h2c connection, sends the preface and an empty SETTINGS, then `bytes`; reads
/// frames until a GOAWAY, a RST_STREAM, a response head, the close, or 3 s.
fn exchange(s: &Server, bytes: &[u8]) -> Answer {
    exchange_inner(s, bytes, true)
}

fn exchange_inner(s: &Server, bytes: &[u8], heads: bool) -> Answer {
    let mut tcp = TcpStream::connect(s.hostport()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend_from_slice(bytes);
    let _ = tcp.write_all(&out);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = Vec::new();
    loop {
        while buf.len() >= 9 {
            let len = ((buf[0] as usize) << 16) | ((buf[1] as usize) << 8) | buf[2] as usize;
            if buf.len() < 9 + len {
                break;
            }
            let (ty, stream) = (
                buf[3],
                u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff,
            );
            let p = &buf[9..9 + len];
            match ty {
                GOAWAY if len >= 8 => {
                    return Answer::GoAway(u32::from_be_bytes([p[4], p[5], p[6], p[7]]))
                }
                RST_STREAM if len == 4 => {
                    return Answer::Reset(stream, u32::from_be_bytes([p[0], p[1], p[2], p[3]]))
                }
                HEADERS if heads && stream != 0 && !p.is_empty() => {
                    return Answer::Headers(stream, p[0])
                }
                _ => {}
            }
            buf.drain(..9 + len);
        }
        if Instant::now() > deadline {
            return Answer::Nothing;
        }
        let mut chunk = [0u8; 16384];
        match tcp.read(&mut chunk) {
            Ok(0) => return Answer::Closed,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Answer::Closed,
        }
    }
}

fn still_serving(s: &Server) {
    let r = s.get("/");
    assert_eq!(r.status, 200, "the server stopped serving");
}

#[test]
fn data_on_an_idle_stream_is_a_protocol_error() {
    let s = Server::start(&[]);
    assert_eq!(
        exchange(&s, &frame(DATA, 0, 1, b"x")),
        Answer::GoAway(PROTOCOL_ERROR)
    );
    still_serving(&s);
}

#[test]
fn invalid_settings_values() {
    let s = Server::start(&[]);
    // ENABLE_PUSH = 2.
    let push = [0, 2, 0, 0, 0, 2];
    assert_eq!(
        exchange(&s, &frame(SETTINGS, 0, 0, &push)),
        Answer::GoAway(PROTOCOL_ERROR)
    );
    // INITIAL_WINDOW_SIZE above 2^31-1 (RFC 9113 §6.5.2).
    let window = [0, 4, 0x80, 0, 0, 0];
    assert_eq!(
        exchange(&s, &frame(SETTINGS, 0, 0, &window)),
        Answer::GoAway(FLOW_CONTROL_ERROR)
    );
    // MAX_FRAME_SIZE below 16 384.
    let small = [0, 5, 0, 0, 0x10, 0];
    assert_eq!(
        exchange(&s, &frame(SETTINGS, 0, 0, &small)),
        Answer::GoAway(PROTOCOL_ERROR)
    );
    // A SETTINGS frame whose length is not a multiple of 6 (RFC 9113 §6.5).
    assert_eq!(
        exchange(&s, &frame(SETTINGS, 0, 0, &[0, 1, 0])),
        Answer::GoAway(FRAME_SIZE_ERROR)
    );
    // A SETTINGS ACK with a payload (§6.5).
    assert_eq!(
        exchange(&s, &frame(SETTINGS, ACK, 0, &[0, 1, 0, 0, 0x10, 0])),
        Answer::GoAway(FRAME_SIZE_ERROR)
    );
    still_serving(&s);
}

#[test]
fn frames_of_the_wrong_length_are_frame_size_errors() {
    let s = Server::start(&[]);
    let open = frame(HEADERS, END_HEADERS, 1, &get_block());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // §6.7: PING is 8 octets.
        ("PING", frame(PING, 0, 0, &[0; 7])),
        // §6.4: RST_STREAM is 4 octets.
        (
            "RST_STREAM",
            [open.clone(), frame(RST_STREAM, 0, 1, &[0; 3])].concat(),
        ),
        // §6.9: WINDOW_UPDATE is 4 octets.
        (
            "WINDOW_UPDATE",
            frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0, 0]),
        ),
        // §6.3: PRIORITY is 5 octets (a stream error; answered as a connection error).
        ("PRIORITY", frame(PRIORITY, 0, 3, &[0; 4])),
        // §4.2: a GOAWAY too short for its mandatory fields.
        ("GOAWAY", frame(GOAWAY, 0, 0, &[0; 4])),
    ];
    for (what, bytes) in cases {
        assert_eq!(
            exchange(&s, &bytes),
            Answer::GoAway(FRAME_SIZE_ERROR),
            "{what}"
        );
    }
    still_serving(&s);
}

#[test]
fn oversized_frame_is_a_frame_size_error() {
    let s = Server::start(&[]);
    let big = vec![0u8; 16_385];
    let mut bytes = frame(HEADERS, END_HEADERS, 1, &get_block());
    bytes.extend(frame(DATA, 0, 1, &big));
    assert_eq!(exchange(&s, &bytes), Answer::GoAway(FRAME_SIZE_ERROR));
    still_serving(&s);
}

#[test]
fn hpack_decoding_errors_are_compression_errors() {
    let s = Server::start(&[]);
    // RFC 7541 decoding errors; RFC 9113 §4.3: a connection error COMPRESSION_ERROR.
    let blocks: Vec<(&str, Vec<u8>)> = vec![
        ("index 0", vec![0x80]),
        ("index beyond both tables", vec![0xff, 0xff, 0xff, 0x0f]),
        (
            "an integer over 5 octets",
            vec![0xff, 0xff, 0xff, 0xff, 0xff, 0x0f],
        ),
        (
            "table size update above SETTINGS_HEADER_TABLE_SIZE",
            vec![0x3f, 0xe2, 0x1f],
        ),
        (
            "table size update after a field",
            [get_block(), vec![0x20]].concat(),
        ),
        (
            "block ending inside a string",
            vec![0x82, 0x86, 0x84, 0x41, 9, b'l'],
        ),
        (
            "Huffman string with EOS",
            vec![0x82, 0x86, 0x84, 0x41, 0x84, 0xff, 0xff, 0xff, 0xff],
        ),
        (
            "Huffman padding not all ones",
            vec![0x82, 0x86, 0x84, 0x41, 0x81, 0x00],
        ),
    ];
    for (what, block) in blocks {
        assert_eq!(
            exchange(&s, &frame(HEADERS, END_HEADERS | END_STREAM, 1, &block)),
            Answer::GoAway(COMPRESSION_ERROR),
            "{what}: {block:x?}"
        );
    }
    // The same error in a CONTINUATION frame.
    let mut bytes = frame(HEADERS, END_STREAM, 1, &get_block());
    bytes.extend(frame(CONTINUATION, END_HEADERS, 1, &[0xbf, 0x7f]));
    assert_eq!(exchange(&s, &bytes), Answer::GoAway(COMPRESSION_ERROR));
    // A dynamic table entry used by a later request on the same connection is no error:
    // `x-a: 1` is added (index 62), then referred to.
    let mut bytes = frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &[get_block(), vec![0x40, 3, b'x', b'-', b'a', 1, b'1']].concat(),
    );
    bytes.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        3,
        // Stream 3's own `:authority` is 62 now; `x-a: 1` is 63.
        &[get_block(), vec![0x80 | 63]].concat(),
    ));
    let answer = exchange(&s, &bytes);
    assert!(matches!(answer, Answer::Headers(_, 0x88)), "{answer:?}");
    still_serving(&s);
}

#[test]
fn window_overflow_is_a_flow_control_error() {
    let s = Server::start(&[]);
    // The connection window starts at 65 535; adding 2^31-1 overflows it.
    let bytes = frame(WINDOW_UPDATE, 0, 0, &0x7fff_ffffu32.to_be_bytes());
    assert_eq!(exchange(&s, &bytes), Answer::GoAway(FLOW_CONTROL_ERROR));
    // A zero increment on the connection is a protocol error.
    let bytes = frame(WINDOW_UPDATE, 0, 0, &0u32.to_be_bytes());
    assert_eq!(exchange(&s, &bytes), Answer::GoAway(PROTOCOL_ERROR));
    still_serving(&s);
}

#[test]
fn continuation_flood_ends_the_connection() {
    let s = Server::start(&[]);
    // HEADERS without END_HEADERS, then CONTINUATION frames far past the 64 KiB header list.
    let mut bytes = frame(HEADERS, 0, 1, &get_block());
    let filler = {
        let mut f = vec![0x40, 3];
        f.extend_from_slice(b"x-a");
        f.push(0x7f);
        f.push(0x81);
        f.push(0x7f); // value length 127 + 128*127 = 16 383
        f.extend(std::iter::repeat_n(b'v', 16_383));
        f
    };
    for _ in 0..20 {
        bytes.extend(frame(
            CONTINUATION,
            0,
            1,
            &filler[..filler.len().min(16_384)],
        ));
    }
    let answer = exchange(&s, &bytes);
    assert!(
        matches!(
            answer,
            Answer::GoAway(_) | Answer::Closed | Answer::Reset(1, _)
        ),
        "a CONTINUATION flood was not stopped: {answer:?}"
    );
    still_serving(&s);
}

#[test]
fn priority_self_dependency_is_a_protocol_error() {
    let s = Server::start(&[]);
    // Stream 1 depends on itself (weight 16).
    let payload = [0, 0, 0, 1, 15];
    let answer = exchange(&s, &frame(PRIORITY, 0, 1, &payload));
    assert!(
        matches!(
            answer,
            Answer::Reset(1, PROTOCOL_ERROR) | Answer::GoAway(PROTOCOL_ERROR)
        ),
        "{answer:?}"
    );
    still_serving(&s);
}

#[test]
fn frames_on_a_stream_the_client_ended_are_stream_closed() {
    let s = Server::start(&[]);
    // DATA after END_STREAM (half-closed remote, or closed once the response went out):
    // RFC 9113 §5.1 names STREAM_CLOSED; the server answers it as a connection error.
    // (Stream 1 may be answered before the GOAWAY: it was processed.)
    let mut bytes = frame(HEADERS, END_HEADERS | END_STREAM, 1, &get_block());
    bytes.extend(frame(DATA, 0, 1, b"late"));
    assert_eq!(error_answer(&s, &bytes), Answer::GoAway(STREAM_CLOSED));
    // The same while the app still holds the stream open (/hold never answers).
    let mut bytes = frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &hold_block("/hold/sc1"),
    );
    bytes.extend(frame(DATA, END_STREAM, 1, b"late"));
    assert_eq!(exchange(&s, &bytes), Answer::GoAway(STREAM_CLOSED));
    // HEADERS after END_STREAM.
    let mut bytes = frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &hold_block("/hold/sc2"),
    );
    bytes.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &get_block()));
    assert_eq!(exchange(&s, &bytes), Answer::GoAway(STREAM_CLOSED));
    // DATA after the client's own RST_STREAM.
    let mut bytes = frame(HEADERS, END_HEADERS, 1, &hold_block("/hold/sc3"));
    bytes.extend(frame(RST_STREAM, 0, 1, &8u32.to_be_bytes()));
    bytes.extend(frame(DATA, 0, 1, b"late"));
    assert_eq!(exchange(&s, &bytes), Answer::GoAway(STREAM_CLOSED));
    // DATA on a stream the client keeps open is fine: the request is answered.
    let mut bytes = frame(HEADERS, END_HEADERS, 1, &get_block());
    bytes.extend(frame(DATA, END_STREAM, 1, b"body"));
    assert_eq!(exchange(&s, &bytes), Answer::Headers(1, 0x88));
    still_serving(&s);
}

#[test]
fn a_bad_preface_gets_an_http11_error_or_a_close() {
    let s = Server::start(&[]);
    let mut tcp = TcpStream::connect(s.hostport()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = tcp.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    // Not the preface, so an HTTP/1 request line whose version is HTTP/2.0: 505.
    assert!(got.is_empty() || text.starts_with("HTTP/1.1 505"), "{text}");
    still_serving(&s);
}

/// Reads frames until `stop` returns Some, the close, or 3 s.
fn read_frames<T>(
    tcp: &mut TcpStream,
    mut stop: impl FnMut(u8, u8, u32, &[u8]) -> Option<T>,
) -> Option<T> {
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = Vec::new();
    loop {
        while buf.len() >= 9 {
            let len = ((buf[0] as usize) << 16) | ((buf[1] as usize) << 8) | buf[2] as usize;
            if buf.len() < 9 + len {
                break;
            }
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            if let Some(t) = stop(buf[3], buf[4], stream, &buf[9..9 + len]) {
                return Some(t);
            }
            buf.drain(..9 + len);
        }
        if Instant::now() > deadline {
            return None;
        }
        let mut chunk = [0u8; 16384];
        match tcp.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
    }
}

#[test]
fn server_settings_advertise_the_limits() {
    let s = Server::start(&[]);
    let mut tcp = TcpStream::connect(s.hostport()).unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    tcp.write_all(&out).unwrap();
    let settings = read_frames(&mut tcp, |ty, flags, _, p| {
        (ty == SETTINGS && flags & 1 == 0).then(|| p.to_vec())
    })
    .expect("the server's SETTINGS");
    let value = |id: u16| {
        settings
            .chunks(6)
            .find(|c| u16::from_be_bytes([c[0], c[1]]) == id)
            .map(|c| u32::from_be_bytes([c[2], c[3], c[4], c[5]]))
    };
    assert_eq!(value(0x3), Some(100), "SETTINGS_MAX_CONCURRENT_STREAMS");
    assert_eq!(value(0x6), Some(65_536), "SETTINGS_MAX_HEADER_LIST_SIZE");
    assert_eq!(
        value(0x8),
        Some(1),
        "SETTINGS_ENABLE_CONNECT_PROTOCOL (extended CONNECT)"
    );
}

#[test]
fn streams_beyond_the_concurrency_limit_are_refused() {
    let s = Server::start(&[]);
    let mut tcp = TcpStream::connect(s.hostport()).unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    // 101 requests that the probe holds open (/hold/… never answers).
    for i in 0..101u32 {
        let path = format!("/hold/lim{i}");
        let mut block = vec![0x82, 0x86, 0x44, path.len() as u8];
        block.extend_from_slice(path.as_bytes());
        block.extend_from_slice(&[0x41, 9]);
        block.extend_from_slice(b"localhost");
        out.extend(frame(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, &block));
    }
    tcp.write_all(&out).unwrap();
    let refused = read_frames(&mut tcp, |ty, _, stream, p| {
        (ty == RST_STREAM || ty == GOAWAY).then(|| (ty, stream, p.to_vec()))
    })
    .expect("the 101st stream is refused");
    const REFUSED_STREAM: u32 = 0x7;
    let (ty, stream, p) = refused;
    assert_eq!(ty, RST_STREAM, "a stream error, not the connection: {p:x?}");
    assert_eq!(stream, 201);
    assert_eq!(u32::from_be_bytes([p[0], p[1], p[2], p[3]]), REFUSED_STREAM);
    // The first 100 reached the app; closing the connection ends them.
    s.wait_seen("lim99", Duration::from_secs(5));
    drop(tcp);
    let o = s.observed("lim0", 3000);
    assert!(o.reason.is_some(), "{o:?}");
    still_serving(&s);
}

#[test]
fn a_header_list_over_the_limit_is_refused() {
    let s = Server::start(&[]);
    // HEADERS + CONTINUATION carrying ~80 KiB of one header.
    let mut block = get_block();
    block.extend_from_slice(&[0x40, 3]);
    block.extend_from_slice(b"x-a");
    // Value length 80 000 as an HPACK integer with a 7-bit prefix: 127 + 79 873.
    let mut n = 80_000u32 - 127;
    block.push(0x7f);
    while n >= 128 {
        block.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    block.push(n as u8);
    block.extend(std::iter::repeat_n(b'v', 80_000));
    let mut bytes = Vec::new();
    let mut chunks = block.chunks(16_384).peekable();
    let first = chunks.next().unwrap();
    bytes.extend(frame(HEADERS, END_STREAM, 1, first));
    while let Some(c) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            END_HEADERS
        } else {
            0
        };
        bytes.extend(frame(CONTINUATION, flags, 1, c));
    }
    let answer = exchange(&s, &bytes);
    assert!(
        matches!(
            answer,
            Answer::Reset(1, _) | Answer::GoAway(_) | Answer::Closed
        ) || matches!(answer, Answer::Headers(1, first) if first != 0x88),
        "an 80 KiB header list was not refused: {answer:?}"
    );
    still_serving(&s);
}

#[test]
fn a_client_goaway_ends_every_open_stream_with_client_closed() {
    let s = Server::start(&[]);
    let mut tcp = TcpStream::connect(s.hostport()).unwrap();
    let peer = tcp.local_addr().unwrap().to_string();
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &hold_block("/hold/ga1"),
    ));
    out.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        3,
        &hold_block("/hold/ga2"),
    ));
    tcp.write_all(&out).unwrap();
    s.wait_seen("ga1", Duration::from_secs(5));
    s.wait_seen("ga2", Duration::from_secs(5));
    // GOAWAY: last stream 0 (the server pushes none), NO_ERROR.
    tcp.write_all(&frame(GOAWAY, 0, 0, &[0; 8])).unwrap();
    for tag in ["ga1", "ga2"] {
        let o = s.observed(tag, 3000);
        assert_eq!(o.reason.as_deref(), Some("client_closed"), "{tag}: {o:?}");
    }
    // Both streams are reset, and the server closes the connection.
    let mut resets = Vec::new();
    let closed = read_frames(&mut tcp, |ty, _, stream, _| {
        if ty == RST_STREAM {
            resets.push(stream);
        }
        None::<()>
    });
    assert!(closed.is_none());
    resets.sort_unstable();
    assert_eq!(resets, vec![1, 3]);
    let notice = s.wait_closed(&peer, Duration::from_secs(5));
    assert_eq!(
        notice.reason.as_deref(),
        Some("client_closed"),
        "{notice:?}"
    );
    assert_eq!(notice.requests, 2, "{notice:?}");
    still_serving(&s);
}
