//! `h1_chunked`: the request body decoders (`chunked` and `content-length`).
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | mode: bits 0–1: raw chunked (0, 1), content-length (2), round trip (3) |
//! | 1–2 | seed of the split points (and of the round trip's chunking) |
//! | 3.. | the body bytes (raw, content-length: the first 2 bytes are the length), or the round trip's script |
//!
//! **Raw** feeds the bytes to the chunked decoder all at once, in random pieces and (short
//! inputs) byte by byte. It checks that nothing panics or spins, that the three agree on the
//! data, on the end (done, error, or more needed) and on the bytes left behind a done body
//! (the next request's), and that no piece of data is empty.
//!
//! **Content-length** checks that exactly `min(n, input)` bytes come out, in order, and the
//! rest is left.
//!
//! **Round trip** reads the rest as a body, encodes it with random chunk sizes, chunk
//! extensions and trailer fields (all valid by RFC 9112 §7.1), appends a pipelined request,
//! and checks that the decoder gives back exactly the body, ends, and leaves the request.

use bytes::BytesMut;
use ragi_server::__fuzz::h1::{BodyDecoder, Decoded};

use crate::harness::Rng;
use crate::Target;

/// The target.
pub const TARGET: Target = Target {
    name: "h1_chunked",
    run,
    seeds,
};

/// What decoding some input came to: the data, how it ended, and what was left behind.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    data: Vec<u8>,
    end: End,
    left: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    Done,
    NeedMore,
    Error(&'static str),
}

fn decode(mut dec: BodyDecoder, input: &[u8], mut piece: impl FnMut() -> usize) -> Outcome {
    let mut buf = BytesMut::new();
    let mut data = Vec::new();
    let mut at = 0;
    loop {
        // Calls without progress: a livelock if unbounded.
        let mut idle = 0;
        loop {
            let before = buf.len();
            match dec.decode(&mut buf) {
                Ok(Decoded::Data(d)) => {
                    assert!(!d.is_empty(), "empty data");
                    data.extend_from_slice(&d);
                }
                Ok(Decoded::Done) => {
                    assert!(dec.is_done());
                    // Done sticks and takes nothing more.
                    let len = buf.len();
                    assert_eq!(dec.decode(&mut buf), Ok(Decoded::Done));
                    assert_eq!(buf.len(), len);
                    buf.extend_from_slice(&input[at..]);
                    return Outcome {
                        data,
                        end: End::Done,
                        left: buf.to_vec(),
                    };
                }
                Ok(Decoded::NeedMore) => break,
                Err(e) => {
                    return Outcome {
                        data,
                        end: End::Error(e),
                        left: Vec::new(),
                    }
                }
            }
            if buf.len() == before {
                idle += 1;
                assert!(idle < 4, "no progress");
            }
        }
        if at == input.len() {
            return Outcome {
                data,
                end: End::NeedMore,
                left: Vec::new(),
            };
        }
        let end = (at + piece().max(1)).min(input.len());
        buf.extend_from_slice(&input[at..end]);
        at = end;
    }
}

/// The target: see the [module docs](self).
pub fn run(data: &[u8]) {
    let Some((&[mode, s0, s1], body)) = data.split_first_chunk::<3>() else {
        return;
    };
    let seed = u64::from(u16::from_le_bytes([s0, s1]));
    match mode & 3 {
        0 | 1 => raw(body, seed),
        2 => length(body),
        _ => round_trip(body, seed),
    }
}

fn raw(body: &[u8], seed: u64) {
    // The error's wording may depend on how much was seen; that it is an error may not.
    let kind = |mut o: Outcome| {
        if let End::Error(_) = o.end {
            o.end = End::Error("");
        }
        o
    };
    let whole = kind(decode(BodyDecoder::chunked(), body, || usize::MAX));
    let mut rng = Rng::new(seed);
    let pieces = kind(decode(BodyDecoder::chunked(), body, || 1 + rng.below(32)));
    assert_eq!(whole, pieces, "split in pieces");
    if body.len() <= 2048 {
        let bytes = kind(decode(BodyDecoder::chunked(), body, || 1));
        assert_eq!(whole, bytes, "byte by byte");
    }
    if let End::Done = whole.end {
        // What is left is exactly what follows the body.
        assert!(body.ends_with(&whole.left));
    }
}

fn length(body: &[u8]) {
    let Some((&[a, b], rest)) = body.split_first_chunk::<2>() else {
        return;
    };
    let n = u64::from(u16::from_le_bytes([a, b]));
    let out = decode(BodyDecoder::length(n), rest, || 7);
    let take = (n as usize).min(rest.len());
    assert_eq!(out.data, &rest[..take]);
    if (rest.len() as u64) >= n {
        assert_eq!(out.end, End::Done);
        assert_eq!(out.left, &rest[take..]);
    } else {
        assert_eq!(out.end, End::NeedMore);
    }
}

fn round_trip(body: &[u8], seed: u64) {
    let mut rng = Rng::new(seed);
    let mut enc = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let most = if rng.below(3) == 0 { 8 } else { 300 };
        let n = (1 + rng.below(most)).min(body.len() - at);
        if rng.below(2) == 0 {
            enc.extend_from_slice(format!("{n:x}").as_bytes());
        } else {
            // Upper case and leading zeros are hex too.
            enc.extend_from_slice(format!("{:0w$X}", n, w = 1 + rng.below(6)).as_bytes());
        }
        match rng.below(5) {
            0 => enc.extend_from_slice(b";name=value"),
            1 => enc.extend_from_slice(b" ;a;b=\"q s\""),
            _ => {}
        }
        enc.extend_from_slice(b"\r\n");
        enc.extend_from_slice(&body[at..at + n]);
        enc.extend_from_slice(b"\r\n");
        at += n;
    }
    enc.extend_from_slice(b"0\r\n");
    if rng.below(3) == 0 {
        enc.extend_from_slice(b"X-Trailer: v\r\nChecksum:\tabc \r\n");
    }
    enc.extend_from_slice(b"\r\n");
    let next = b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
    enc.extend_from_slice(next);
    let out = decode(BodyDecoder::chunked(), &enc, || 1 + rng.below(64));
    assert_eq!(out.end, End::Done);
    assert_eq!(out.data, body);
    assert_eq!(out.left, next);
}

/// Seeds: valid bodies (extensions, trailers, upper-case sizes), broken framings (bare LF,
/// a size that overflows, a `0x` prefix, a missing CRLF, a control character in an extension,
/// a bad trailer), a content-length body, round-trip scripts.
pub fn seeds() -> Vec<Vec<u8>> {
    let raw: &[&[u8]] = &[
        b"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        b"3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
        b"5\nhello\n0\n\n",
        b"10000000000000000\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloX0\r\n\r\n",
        b"5;a=\x01\r\nhello\r\n0\r\n\r\n",
        b"0\r\nbad trailer\r\n\r\n",
        b"ffffffffffffffff\r\nab",
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
    ];
    let mut seeds = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let mut s = vec![0, i as u8, 0];
        s.extend_from_slice(r);
        seeds.push(s);
    }
    seeds.push([&[2u8, 0, 0, 5, 0][..], b"helloGET"].concat());
    seeds.push([&[3u8, 9, 0][..], b"a round trip body of some length"].concat());
    seeds.push([&[3u8, 1, 2][..], &[0u8; 700][..]].concat());
    seeds
}
