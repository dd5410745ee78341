//! `h2_frames`: the HTTP/2 inbound frame check (`h2_check`) in front of the `h2` crate.
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | mode: bit 0: raw bytes (0) or frames built from the input (1) |
//! | 1–2 | seed of the split points |
//! | 3.. | raw: the bytes after the client preface; built: per frame a type, flags, a stream id (one of a few), a length and its payload |
//!
//! The check sees the preface and the bytes all at once, in random pieces and (short inputs)
//! byte by byte, as reads from a socket. It checks that nothing panics; that every split
//! finds the same violation code (or none), the same client GOAWAY and the same ended
//! streams; that the bytes let through are never fewer across a split than all at once, and
//! never beyond the input; that nothing is scanned after a violation (the connection reads no
//! more); and that the ended-stream set stays sorted, disjoint, odd and bounded.

use ragi_server::__fuzz::h2::FrameCheck;

use crate::harness::Rng;
use crate::Target;

/// The target.
pub const TARGET: Target = Target {
    name: "h2_frames",
    run,
    seeds,
};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the check made of a stream.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    violation: Option<u32>,
    goaway: bool,
    off: bool,
    ended: Vec<(u32, u32)>,
    max_opened: u32,
}

/// Scans `input` in pieces; returns the verdict and how many bytes were let through.
fn scan(input: &[u8], mut piece: impl FnMut() -> usize) -> (Verdict, usize) {
    let mut check = FrameCheck::default();
    let mut at = 0;
    let mut passed = input.len();
    let mut goaway = false;
    while at < input.len() {
        let end = (at + piece().max(1)).min(input.len());
        let r = check.scan(&input[at..end]);
        goaway |= check.take_goaway();
        if let Err(keep) = r {
            assert!(keep <= end - at, "kept {keep} of {}", end - at);
            assert!(check.violation().is_some(), "an error without a code");
            passed = at + keep;
            break;
        }
        at = end;
    }
    let ended = check.ended().to_vec();
    assert!(ended.len() <= 256, "{} ranges", ended.len());
    for (i, &(a, b)) in ended.iter().enumerate() {
        assert!(a % 2 == 1 && b % 2 == 1 && a <= b, "{ended:?}");
        if i > 0 {
            assert!(ended[i - 1].1 + 2 < a, "not sorted and apart: {ended:?}");
        }
    }
    let verdict = Verdict {
        violation: check.violation(),
        goaway,
        off: check.is_off(),
        ended,
        max_opened: check.max_opened(),
    };
    (verdict, passed)
}

/// Builds frames from the input: type, flags, stream, length, payload.
fn frames(mut body: &[u8]) -> Vec<u8> {
    const STREAMS: [u32; 8] = [0, 1, 3, 5, 7, 2, 0x7fff_ffff, 101];
    let mut out = Vec::new();
    while let Some((&[ty, flags, stream, len], rest)) = body.split_first_chunk::<4>() {
        let len = usize::from(len).min(rest.len());
        let stream = STREAMS[usize::from(stream & 7)] | (u32::from(stream >> 7) << 31);
        out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        out.push(ty % 11);
        out.push(flags);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(&rest[..len]);
        body = &rest[len..];
    }
    out
}

/// The target: see the [module docs](self).
pub fn run(data: &[u8]) {
    let Some((&[mode, s0, s1], body)) = data.split_first_chunk::<3>() else {
        return;
    };
    let mut input = PREFACE.to_vec();
    if mode & 1 == 0 {
        input.extend_from_slice(body);
    } else {
        input.extend_from_slice(&frames(body));
    }
    let (whole, whole_passed) = scan(&input, || usize::MAX);
    let mut rng = Rng::new(u64::from(u16::from_le_bytes([s0, s1])));
    let (pieces, pieces_passed) = scan(&input, || 1 + rng.below(40));
    assert_eq!(whole, pieces, "split in pieces");
    // A violation withholds the offending frame: in one read, from its start; across reads,
    // from the read it is found in (what passed before cannot be taken back).
    assert!(whole_passed <= pieces_passed && pieces_passed <= input.len());
    if input.len() <= 1024 {
        let (bytes, bytes_passed) = scan(&input, || 1);
        assert_eq!(whole, bytes, "byte by byte");
        assert!(whole_passed <= bytes_passed);
    }
}

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.push(ty);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Seeds: a request's frames (RFC 7541 C.3 header blocks), and each violation the check
/// answers: odd SETTINGS length, an ACK with a payload, a window above 2^31-1, short PING,
/// RST_STREAM, WINDOW_UPDATE, PRIORITY and GOAWAY, a bad HPACK index, DATA after END_STREAM.
pub fn seeds() -> Vec<Vec<u8>> {
    let get = [0x82, 0x86, 0x84, 0x41, 0x0f]
        .iter()
        .copied()
        .chain(*b"www.example.com")
        .collect::<Vec<u8>>();
    let streams: Vec<Vec<u8>> = vec![
        [
            frame(4, 0, 0, &[0, 3, 0, 0, 0, 100]),
            frame(4, 1, 0, &[]),
            frame(1, 0x5, 1, &get),
            frame(1, 0x4, 3, &get[..3]),
            frame(0, 0x1, 3, b"body"),
            frame(8, 0, 0, &[0, 0, 1, 0]),
            frame(6, 0, 0, &[0; 8]),
            frame(3, 0, 5, &[0, 0, 0, 8]),
            frame(7, 0, 0, &[0, 0, 0, 5, 0, 0, 0, 0]),
        ]
        .concat(),
        frame(4, 0, 0, &[0, 3, 0, 0, 0]),
        frame(4, 1, 0, &[0; 6]),
        frame(4, 0, 0, &[0, 4, 0x80, 0, 0, 0]),
        frame(6, 0, 0, &[0; 7]),
        frame(3, 0, 1, &[0; 3]),
        frame(8, 0, 1, &[0; 5]),
        frame(2, 0, 1, &[0; 4]),
        frame(7, 0, 0, &[0; 7]),
        frame(1, 0x5, 1, &[0x80 | 70]),
        [frame(1, 0x4, 1, &[0x82]), frame(9, 0x4, 1, &[0xff])].concat(),
        [frame(1, 0x5, 1, &get), frame(0, 0, 1, b"late")].concat(),
        [
            frame(1, 0x4, 1, &get),
            frame(3, 0, 1, &[0, 0, 0, 8]),
            frame(0, 0, 1, b"x"),
        ]
        .concat(),
    ];
    let mut seeds = Vec::new();
    for (i, s) in streams.into_iter().enumerate() {
        let mut seed = vec![0, i as u8, 0];
        seed.extend_from_slice(&s);
        seeds.push(seed);
    }
    // Built mode: a HEADERS, a DATA and a bad PING.
    seeds.push(vec![
        1, 1, 0, 1, 5, 1, 2, 0x82, 0x86, 0, 1, 1, 1, b'x', 6, 0, 0, 3, 1, 2, 3,
    ]);
    seeds
}
