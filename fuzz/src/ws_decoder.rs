//! `ws_decoder`: the server's WebSocket decoder (and encoder, in round trips).
//!
//! An input's first three bytes choose the setup, the rest is the body:
//!
//! | byte | bits | meaning |
//! |---|---|---|
//! | 0 | 0 | permessage-deflate negotiated |
//! | 0 | 1 | no context takeover (both directions) |
//! | 0 | 2–3 | message limit: 16, 1000, 65536 bytes or 16 MiB |
//! | 0 | 4 | mode: raw bytes (0) or round trip (1) |
//! | 0 | 5–7 | window bits − 8 |
//! | 1–2 | | seed of the split points and fragmentation |
//!
//! **Raw mode** feeds the body to the server's decoder as client bytes, all at once, in random
//! pieces and (for short bodies) byte by byte. It checks that nothing panics or spins, that
//! the three agree on every event and on the error code, that every event keeps the codec's
//! promises (limits, close codes, nothing after a close, the error repeats), and that every
//! message decoded goes through the encoder and back unchanged.
//!
//! **Round-trip mode** reads the body as a script of messages, pings and a close; encodes them
//! with the server's encoder, turns the frames into a client's (masked, data frames cut into
//! random fragments with pings between), and checks the decoder returns exactly the script —
//! or the error the script calls for (a message over the limit: 1009; a close code we may
//! send but a client may not: 1002).

use bytes::{Bytes, BytesMut};
use ragi::Message;
use ragi_server::__fuzz::ws::{self, Decoder, Deflate, Encoder, Incoming};

use crate::harness::Rng;
use crate::Target;

/// The target.
pub const TARGET: Target = Target {
    name: "ws_decoder",
    run,
    seeds,
};

/// The setup an input's first bytes choose.
#[derive(Debug, Clone, Copy)]
struct Setup {
    deflate: Option<Deflate>,
    max: usize,
    round_trip: bool,
    seed: u64,
}

const LIMITS: [usize; 4] = [16, 1000, 65536, 16 * 1024 * 1024];

fn setup(data: &[u8]) -> Option<(Setup, &[u8])> {
    let (&[flags, s0, s1], body) = data.split_first_chunk::<3>()?;
    let no_context = flags & 2 != 0;
    let bits = 8 + (flags >> 5);
    let deflate = (flags & 1 != 0).then_some(Deflate {
        server_no_context_takeover: no_context,
        client_no_context_takeover: no_context,
        server_max_window_bits: bits,
        client_max_window_bits: bits,
    });
    Some((
        Setup {
            deflate,
            max: LIMITS[usize::from((flags >> 2) & 3)],
            round_trip: flags & 0x10 != 0,
            seed: u64::from(u16::from_le_bytes([s0, s1])),
        },
        body,
    ))
}

/// The target: see the [module docs](self).
pub fn run(data: &[u8]) {
    let Some((setup, body)) = setup(data) else {
        return;
    };
    if setup.round_trip {
        round_trip(&setup, body);
    } else {
        raw(&setup, body);
    }
}

/// Decodes `input` fed in pieces whose sizes `piece` chooses; returns the events and the
/// error code, after checking the per-call promises.
fn decode(
    setup: &Setup,
    input: &[u8],
    mut piece: impl FnMut() -> usize,
) -> (Vec<Incoming>, Option<u16>) {
    let mut decoder = Decoder::new(setup.max, setup.deflate);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let end = (at + piece().max(1)).min(input.len());
        buf.extend_from_slice(&input[at..end]);
        at = end;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(event)) => {
                    events.push(event);
                    // Every event takes at least a 6-byte frame header: no livelock.
                    assert!(
                        events.len() <= at / 6,
                        "{} events from {at} bytes",
                        events.len()
                    );
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(matches!(e.code, 1002 | 1007 | 1009), "{e:?}");
                    // The error sticks.
                    buf.extend_from_slice(&[0x81, 0x80, 0, 0, 0, 0]);
                    assert_eq!(decoder.decode(&mut buf), Err(e));
                    return (events, Some(e.code));
                }
            }
        }
    }
    (events, None)
}

/// Promises every decoded event keeps.
fn check_events(setup: &Setup, events: &[Incoming]) {
    for (i, event) in events.iter().enumerate() {
        match event {
            Incoming::Message(Message::Text(text)) => assert!(text.len() <= setup.max),
            Incoming::Message(Message::Binary(bytes)) => assert!(bytes.len() <= setup.max),
            Incoming::Ping(p) | Incoming::Pong(p) => assert!(p.len() <= 125),
            Incoming::Close { code, reason } => {
                assert_eq!(i + 1, events.len(), "nothing after a close");
                match code {
                    Some(code) => {
                        assert!(ws::valid_close_code(*code), "{code}");
                        assert!(reason.len() <= 123);
                    }
                    None => assert!(reason.is_empty()),
                }
            }
        }
    }
}

fn raw(setup: &Setup, body: &[u8]) {
    let whole = decode(setup, body, || usize::MAX);
    check_events(setup, &whole.0);
    let mut rng = Rng::new(setup.seed);
    let pieces = decode(setup, body, || 1 + rng.below(64));
    assert_eq!(whole, pieces, "all at once vs random pieces");
    if body.len() <= 2048 {
        assert_eq!(
            whole,
            decode(setup, body, || 1),
            "all at once vs byte by byte"
        );
    }
    // What came out goes back through the encoder unchanged.
    let messages: Vec<Message> = whole
        .0
        .into_iter()
        .filter_map(|e| match e {
            Incoming::Message(m) => Some(m),
            _ => None,
        })
        .collect();
    if !messages.is_empty() {
        let mut encoder = Encoder::new(setup.deflate);
        let mut wire = BytesMut::new();
        for m in &messages {
            encoder.message(m, &mut wire);
        }
        let mut rng = Rng::new(setup.seed ^ 0xABCD);
        let (client, _) = to_client(&wire, &mut rng);
        let (events, error) = decode(setup, &client, || 1 + rng.below(4096));
        assert_eq!(error, None);
        let again: Vec<Message> = events
            .into_iter()
            .filter_map(|e| match e {
                Incoming::Message(m) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(again, messages);
    }
}

/// One frame the server sent.
struct ServerFrame<'a> {
    b0: u8,
    payload: &'a [u8],
}

fn server_frames(mut bytes: &[u8]) -> Vec<ServerFrame<'_>> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (b0, b1) = (bytes[0], bytes[1]);
        assert_eq!(b1 & 0x80, 0, "server frames are unmasked");
        assert_ne!(b0 & 0x80, 0, "server frames are whole messages");
        let (len, at) = match b1 & 0x7f {
            126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&bytes[2..10]);
                (u64::from_be_bytes(be) as usize, 10)
            }
            n => (usize::from(n), 2),
        };
        frames.push(ServerFrame {
            b0,
            payload: &bytes[at..at + len],
        });
        bytes = &bytes[at + len..];
    }
    frames
}

/// A masked client frame.
fn client_frame(out: &mut Vec<u8>, b0: u8, payload: &[u8], rng: &mut Rng) {
    out.push(b0);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let key = (rng.next_u64() as u32).to_ne_bytes();
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    ws::apply_mask(&mut out[start..], key, 0);
}

/// The server's frames as a client would send them: masked, data frames cut into random
/// fragments with pings between. Returns the bytes and the pings added (in order, with the
/// index of the server frame they precede the end of).
fn to_client(server: &[u8], rng: &mut Rng) -> (Vec<u8>, Vec<Vec<Incoming>>) {
    let mut out = Vec::new();
    let mut added = Vec::new();
    for f in server_frames(server) {
        let mut pings = Vec::new();
        let opcode = f.b0 & 0x0f;
        if opcode & 0x8 != 0 || rng.below(2) == 0 {
            client_frame(&mut out, f.b0, f.payload, rng);
        } else {
            let mut rest = f.payload;
            let mut first = true;
            loop {
                let take = if rest.is_empty() {
                    0
                } else {
                    1 + rng.below(rest.len())
                };
                let last = take == rest.len() && rng.below(4) != 0;
                let b0 = if last { 0x80 } else { 0 } | if first { f.b0 & 0x4f } else { 0 };
                client_frame(&mut out, b0, &rest[..take], rng);
                rest = &rest[take..];
                first = false;
                if last {
                    break;
                }
                if rng.below(2) == 0 {
                    let payload = [rng.below(256) as u8; 3];
                    client_frame(&mut out, 0x89, &payload, rng);
                    pings.push(Incoming::Ping(Bytes::copy_from_slice(&payload)));
                }
            }
        }
        added.push(pings);
    }
    (out, added)
}

/// What the script asks for.
enum Step {
    Message(Message),
    Ping(Vec<u8>),
    Close(u16, String),
}

fn script(body: &[u8]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut at = 0;
    let mut take = |n: usize| {
        let s = &body[at.min(body.len())..(at + n).min(body.len())];
        at += n;
        s
    };
    loop {
        let Some(&op) = take(1).first() else {
            return steps;
        };
        let len = take(1).first().copied().map_or(0, usize::from);
        match op % 6 {
            0 => steps.push(Step::Message(Message::Text(
                String::from_utf8_lossy(take(len)).into_owned(),
            ))),
            1 => steps.push(Step::Message(Message::Binary(Bytes::copy_from_slice(
                take(len),
            )))),
            2 => {
                // A large, compressible message: up to 65 KiB of a short pattern (past the
                // 64 KiB limit, and past 16 bits of length).
                let pattern = take(3).to_vec();
                let size = (len + 1) * 260;
                let mut big = Vec::with_capacity(size);
                while !pattern.is_empty() && big.len() < size {
                    big.extend_from_slice(&pattern);
                }
                steps.push(Step::Message(Message::Binary(Bytes::from(big))));
            }
            3 => steps.push(Step::Message(Message::Text("é".repeat(len * 4)))),
            4 => steps.push(Step::Ping(take(len % 140).to_vec())),
            _ => {
                let code = take(2);
                let code = match code {
                    [hi, lo] => u16::from_be_bytes([*hi, *lo]) % 5100,
                    _ => 1000,
                };
                let reason = String::from_utf8_lossy(take(len)).into_owned();
                steps.push(Step::Close(code, reason));
                return steps;
            }
        }
    }
}

fn round_trip(setup: &Setup, body: &[u8]) {
    let steps = script(body);
    let mut encoder = Encoder::new(setup.deflate);
    let mut wire = BytesMut::new();
    // The events each step should give, and where the decoder should stop with which error.
    let mut expected: Vec<Incoming> = Vec::new();
    let mut expected_error = None;
    for step in &steps {
        match step {
            Step::Message(m) => encoder.message(m, &mut wire),
            Step::Ping(p) => encoder.ping(p, &mut wire),
            Step::Close(code, reason) => encoder.close(*code, reason, &mut wire),
        }
    }
    let mut rng = Rng::new(setup.seed);
    let (client, pings) = to_client(&wire, &mut rng);
    for (step, pings) in steps.iter().zip(pings) {
        match step {
            Step::Message(m) => {
                let len = match m {
                    Message::Text(t) => t.len(),
                    Message::Binary(b) => b.len(),
                };
                if len > setup.max {
                    // Some of this message's pings may come before the refusal.
                    expected_error = Some(1009);
                    break;
                }
                expected.extend(pings);
                expected.push(Incoming::Message(m.clone()));
            }
            Step::Ping(p) => expected.push(Incoming::Ping(Bytes::copy_from_slice(
                &p[..p.len().min(125)],
            ))),
            Step::Close(code, reason) => {
                let sendable =
                    (1000..=4999).contains(code) && !matches!(code, 1004 | 1005 | 1006 | 1015);
                if !sendable {
                    expected.push(Incoming::Close {
                        code: None,
                        reason: String::new(),
                    });
                } else if ws::valid_close_code(*code) {
                    let mut end = reason.len().min(123);
                    while !reason.is_char_boundary(end) {
                        end -= 1;
                    }
                    expected.push(Incoming::Close {
                        code: Some(*code),
                        reason: reason[..end].to_owned(),
                    });
                } else {
                    // Registered or reserved codes (1012–2999) we may send but a client
                    // may not.
                    expected_error = Some(1002);
                }
            }
        }
    }
    let (events, error) = decode(setup, &client, || 1 + rng.below(8192));
    // With an error, a fragmented message's pings may come before it is refused.
    if let Some(code) = expected_error {
        assert_eq!(error, Some(code));
        assert!(events.len() >= expected.len());
        assert_eq!(events[..expected.len()], expected[..]);
        assert!(events[expected.len()..]
            .iter()
            .all(|e| matches!(e, Incoming::Ping(_))));
    } else {
        assert_eq!(error, None);
        assert_eq!(events, expected);
    }
    check_events(setup, &events);
}

/// Hand-made inputs: the RFC examples and a few scripts, each under several setups.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut rng = Rng::new(7);
    let mut frames = |parts: &[(u8, &[u8])]| {
        let mut out = Vec::new();
        for (b0, payload) in parts {
            client_frame(&mut out, *b0, payload, &mut rng);
        }
        out
    };
    let bodies: Vec<(u8, Vec<u8>)> = vec![
        // RFC 6455 §5.7: masked "Hello", exactly as the RFC writes it.
        (
            0x00,
            vec![
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ],
        ),
        (
            0x00,
            frames(&[
                (0x01, b"Hel"),
                (0x89, b"ping"),
                (0x80, b"lo"),
                (0x82, &[0u8; 300]),
                (0x8a, b""),
                (0x88, &[0x03, 0xe8, b'o', b'k']),
            ]),
        ),
        (
            0x00,
            frames(&[(
                0x81,
                b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
            )]),
        ),
        // RFC 7692 §7.2.3: compressed, shared context, fragmented, stored, BFINAL, empty.
        (
            0x01,
            frames(&[
                (0xc1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]),
                (0xc1, &[0xf2, 0x00, 0x11, 0x00, 0x00]),
                (0x41, &[0xf2, 0x48, 0xcd]),
                (0x80, &[0xc9, 0xc9, 0x07, 0x00]),
                (
                    0xc1,
                    &[
                        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
                    ],
                ),
                (0xc1, &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]),
                (0xc2, &[0x00]),
            ]),
        ),
        // Round-trip scripts.
        (
            0x10,
            vec![
                0, 5, b'h', b'e', b'l', b'l', b'o', 1, 3, 1, 2, 3, 4, 4, b'p', b'i', b'n', b'g',
            ],
        ),
        (
            0x11,
            vec![
                2, 40, b'a', b'b', b'c', 3, 10, 0, 0, 5, 3, 0x03, 0xe9, b'b', b'y', b'e',
            ],
        ),
        (0x13, vec![2, 255, b'z', b'z', b'z', 1, 20, 0, 0, 0, 0]),
        (0x10, vec![5, 0, 0x03, 0xf4]),
    ];
    let mut seeds = Vec::new();
    for (flags, body) in bodies {
        for extra in [0x00, 0x04, 0x0c, 0xe0] {
            let mut seed = vec![flags | extra, 0x2a, 0x00];
            seed.extend_from_slice(&body);
            seeds.push(seed);
        }
    }
    seeds
}
