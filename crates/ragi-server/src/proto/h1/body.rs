//! Request bodies: the `content-length` and `chunked` decoders.
//!
//! [`BodyDecoder::decode`] takes bytes from the front of the connection's read buffer and
//! returns body data without copying it (the pieces are split off the buffer). Chunk
//! extensions are skipped; trailer fields are read, checked and dropped (ragi's receive events
//! carry no request trailers). Bare LF line ends and sizes that do not parse are refused:
//! leniency in chunk framing is how request smuggling starts.

use bytes::{Bytes, BytesMut};

/// Longest chunk-size line (size, extensions) we accept.
const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section we accept.
const MAX_TRAILERS: usize = 8192;

/// Decodes one request body.
#[derive(Debug)]
pub(crate) enum BodyDecoder {
    /// `remaining` bytes to go.
    Length { remaining: u64 },
    /// A chunked body in the given state.
    Chunked(Chunked),
    /// The body is complete.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunked {
    /// Reading the chunk-size line.
    Size,
    /// Reading `remaining` bytes of chunk data.
    Data { remaining: u64 },
    /// Reading the CRLF after chunk data.
    DataEnd,
    /// Reading the trailer section after the last chunk; `seen` bytes so far.
    Trailers { seen: usize },
}

/// What one call produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Body bytes (never empty).
    Data(Bytes),
    /// The input is used up; more bytes are needed.
    NeedMore,
    /// The body ended.
    Done,
}

/// The body's framing is broken; answer 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyError(pub(crate) &'static str);

impl BodyDecoder {
    pub(crate) fn length(n: u64) -> Self {
        if n == 0 {
            Self::Done
        } else {
            Self::Length { remaining: n }
        }
    }

    pub(crate) fn chunked() -> Self {
        Self::Chunked(Chunked::Size)
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Self::Done)
    }

    /// Takes what it can from the front of `buf`.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, BodyError> {
        loop {
            match self {
                Self::Done => return Ok(Decoded::Done),
                Self::Length { remaining } => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = (*remaining).min(buf.len() as u64) as usize;
                    *remaining -= n as u64;
                    let data = buf.split_to(n).freeze();
                    if *remaining == 0 {
                        *self = Self::Done;
                    }
                    return Ok(Decoded::Data(data));
                }
                Self::Chunked(state) => match *state {
                    Chunked::Size => {
                        let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                            if buf.len() > MAX_CHUNK_LINE {
                                return Err(BodyError("chunk size line too long"));
                            }
                            return Ok(Decoded::NeedMore);
                        };
                        // The same bound as without a line end: how the bytes were split
                        // must not decide.
                        if nl > MAX_CHUNK_LINE {
                            return Err(BodyError("chunk size line too long"));
                        }
                        if nl == 0 || buf[nl - 1] != b'\r' {
                            return Err(BodyError("chunk size line not ended by CRLF"));
                        }
                        let size = parse_chunk_size(&buf[..nl - 1])?;
                        let _ = buf.split_to(nl + 1);
                        *state = if size == 0 {
                            Chunked::Trailers { seen: 0 }
                        } else {
                            Chunked::Data { remaining: size }
                        };
                    }
                    Chunked::Data { remaining } => {
                        if buf.is_empty() {
                            return Ok(Decoded::NeedMore);
                        }
                        let n = remaining.min(buf.len() as u64) as usize;
                        let left = remaining - n as u64;
                        *state = if left == 0 {
                            Chunked::DataEnd
                        } else {
                            Chunked::Data { remaining: left }
                        };
                        return Ok(Decoded::Data(buf.split_to(n).freeze()));
                    }
                    Chunked::DataEnd => {
                        if buf.len() < 2 {
                            if buf.first().is_some_and(|&b| b != b'\r') {
                                return Err(BodyError("chunk data not followed by CRLF"));
                            }
                            return Ok(Decoded::NeedMore);
                        }
                        if &buf[..2] != b"\r\n" {
                            return Err(BodyError("chunk data not followed by CRLF"));
                        }
                        let _ = buf.split_to(2);
                        *state = Chunked::Size;
                    }
                    Chunked::Trailers { seen } => {
                        let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                            if seen + buf.len() > MAX_TRAILERS {
                                return Err(BodyError("trailer section too large"));
                            }
                            return Ok(Decoded::NeedMore);
                        };
                        if nl == 0 || buf[nl - 1] != b'\r' {
                            return Err(BodyError("trailer line not ended by CRLF"));
                        }
                        let line = buf.split_to(nl + 1);
                        if nl == 1 {
                            *self = Self::Done;
                            return Ok(Decoded::Done);
                        }
                        check_trailer_line(&line[..nl - 1])?;
                        let seen = seen + line.len();
                        if seen > MAX_TRAILERS {
                            return Err(BodyError("trailer section too large"));
                        }
                        *state = Chunked::Trailers { seen };
                    }
                },
            }
        }
    }
}

/// `1*HEXDIG [ chunk-ext ]`; the size must fit in 64 bits.
fn parse_chunk_size(line: &[u8]) -> Result<u64, BodyError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(BodyError("bad chunk size"));
    }
    if digits > 16 {
        return Err(BodyError("chunk size too large"));
    }
    let rest = &line[digits..];
    // After the size: optional whitespace, then `;` extensions, or nothing.
    let rest_trim: &[u8] = {
        let k = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        &rest[k..]
    };
    if !rest_trim.is_empty() && rest_trim[0] != b';' {
        return Err(BodyError("bad chunk size"));
    }
    if rest_trim.iter().any(|&b| b < 0x20 && b != b'\t') {
        return Err(BodyError("control character in chunk extension"));
    }
    let s = std::str::from_utf8(&line[..digits]).map_err(|_| BodyError("bad chunk size"))?;
    u64::from_str_radix(s, 16).map_err(|_| BodyError("bad chunk size"))
}

fn check_trailer_line(line: &[u8]) -> Result<(), BodyError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(BodyError("bad trailer field"))?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| ragi::headers::is_token_byte(b)) {
        return Err(BodyError("bad trailer field name"));
    }
    if line[colon + 1..]
        .iter()
        .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(BodyError("bad trailer field value"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns the body or the error.
    fn run(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), BodyError> {
        let mut d = BodyDecoder::chunked();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match d.decode(&mut buf)? {
                Decoded::Data(b) => out.extend_from_slice(&b),
                Decoded::Done => return Ok((out, buf.len())),
                Decoded::NeedMore => {
                    if fed >= input.len() {
                        panic!("ran out of input: {out:?}");
                    }
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_in_any_pieces() {
        let input = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in 1..input.len() {
            let (body, _) = run(input, step).unwrap();
            assert_eq!(body, b"hello world");
        }
        let (_, left) = run(input, input.len()).unwrap();
        assert_eq!(left, 4, "bytes after the body stay in the buffer");
    }

    #[test]
    fn bad_chunks_are_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"-5\r\n",
            b"11111111111111111\r\n",
            b"5 x\r\n",
            b"0\r\nbad trailer\r\n\r\n",
        ] {
            let mut d = BodyDecoder::chunked();
            let mut buf = BytesMut::from(bad);
            let mut r = Ok(Decoded::NeedMore);
            for _ in 0..10 {
                r = d.decode(&mut buf);
                if !matches!(r, Ok(Decoded::Data(_))) {
                    break;
                }
            }
            assert!(r.is_err(), "{:?} gave {r:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn length_body_stops_at_the_length() {
        let mut d = BodyDecoder::length(5);
        let mut buf = BytesMut::from(&b"helloGET"[..]);
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::Data(Bytes::from_static(b"hello")))
        );
        assert_eq!(d.decode(&mut buf), Ok(Decoded::Done));
        assert_eq!(&buf[..], b"GET");
    }
}
