//! The multipart/form-data parser: sans-I/O, fed bytes as they arrive, yielding events.
//!
//! It knows the framing only (RFC 2046 §5.1.1, RFC 7578): delimiters, part headers, part
//! data. Sizes, counts, spooling and the client's departure are the business of the reader
//! above it ([`super::Multipart`]). Feed it any split of the body and it yields the same parts
//! (the fuzz entry point checks that).
//!
//! * A preamble before the first delimiter and an epilogue after the closing one are ignored.
//! * A delimiter is `CRLF--boundary` followed by `--` (the closing one) or by optional
//!   spaces/tabs (at most 256) and CRLF. `CRLF--boundary` followed by anything else is part of
//!   the data, as in Go's `mime/multipart`.
//! * Part headers end with an empty line; a block over the header limit, a line without `:`,
//!   a name that is not a token, or a missing `Content-Disposition: form-data; name=..` is
//!   malformed. A line that starts with a space or tab continues the previous one.
//! * The body must end with the closing delimiter.

use bytes::{Buf, Bytes, BytesMut};
use memchr::memmem::Finder;
use ragi::Headers;

use super::disposition::PartHead;

/// Longest run of transport padding (spaces, tabs) accepted after a delimiter.
const MAX_PADDING: usize = 256;

/// What the parser found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A part starts; its headers.
    Part(PartHead),
    /// Part data (never empty).
    Data(Bytes),
    /// The current part ended.
    PartEnd,
    /// The closing delimiter: no more parts.
    End,
}

/// Why a body is not multipart/form-data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ParseError(pub(crate) &'static str);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Preamble,
    Headers,
    Data,
    /// After the closing delimiter; `End` not yet yielded.
    Closing,
    Epilogue,
    Failed,
}

/// The result of looking for a delimiter in the buffer.
enum Scan {
    /// A delimiter at `at`, whose line ends at `after`; `last` for the closing one.
    Found { at: usize, after: usize, last: bool },
    /// None yet: `buf[..safe]` cannot hold the start of one.
    NeedMore { safe: usize },
}

/// See the [module documentation](self).
pub(crate) struct Parser {
    finder: Finder<'static>,
    delim_len: usize,
    buf: BytesMut,
    state: State,
    eof: bool,
    max_header: usize,
}

impl std::fmt::Debug for Parser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parser")
            .field("state", &self.state)
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl Parser {
    /// A parser for parts separated by `boundary`, with part header blocks of at most
    /// `max_header` bytes.
    pub(crate) fn new(boundary: &[u8], max_header: usize) -> Self {
        let mut delim = b"\r\n--".to_vec();
        delim.extend_from_slice(boundary);
        // The first delimiter may open the body without the CRLF before it: start as if one
        // had been read.
        let mut buf = BytesMut::with_capacity(8 * 1024);
        buf.extend_from_slice(b"\r\n");
        Self {
            delim_len: delim.len(),
            finder: Finder::new(&delim).into_owned(),
            buf,
            state: State::Preamble,
            eof: false,
            max_header,
        }
    }

    /// Adds bytes of the body.
    pub(crate) fn feed(&mut self, data: &[u8]) {
        if matches!(self.state, State::Epilogue | State::Closing | State::Failed) {
            return;
        }
        self.buf.extend_from_slice(data);
    }

    /// Says that the body ended.
    pub(crate) fn end_input(&mut self) {
        self.eof = true;
    }

    /// Whether the closing delimiter was seen.
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closing | State::Epilogue)
    }

    fn scan(&self) -> Scan {
        let buf = &self.buf[..];
        let mut from = 0;
        loop {
            let Some(i) = self.finder.find(&buf[from..]) else {
                let safe = buf.len().saturating_sub(self.delim_len - 1).max(from);
                return Scan::NeedMore { safe };
            };
            let at = from + i;
            let p = at + self.delim_len;
            let rest = &buf[p..];
            if rest.len() < 2 {
                return Scan::NeedMore { safe: at };
            }
            if rest.starts_with(b"--") {
                return Scan::Found {
                    at,
                    after: p + 2,
                    last: true,
                };
            }
            let pad = rest
                .iter()
                .take(MAX_PADDING + 1)
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
            if pad <= MAX_PADDING {
                match &rest[pad..] {
                    [b'\r', b'\n', ..] => {
                        return Scan::Found {
                            at,
                            after: p + pad + 2,
                            last: false,
                        }
                    }
                    [] | [b'\r'] => return Scan::NeedMore { safe: at },
                    _ => {}
                }
            }
            // Not a delimiter: data.
            from = at + 1;
        }
    }

    fn fail(&mut self, why: &'static str) -> Result<Option<Event>, ParseError> {
        self.state = State::Failed;
        self.buf = BytesMut::new();
        Err(ParseError(why))
    }

    /// The next event, `Ok(None)` when more input is needed (or, after `End`, never again
    /// anything), or the reason the body is malformed.
    pub(crate) fn next_event(&mut self) -> Result<Option<Event>, ParseError> {
        loop {
            match self.state {
                State::Failed => return Err(ParseError("malformed multipart body")),
                State::Epilogue => {
                    self.buf.clear();
                    return Ok(None);
                }
                State::Closing => {
                    self.state = State::Epilogue;
                    self.buf = BytesMut::new();
                    return Ok(Some(Event::End));
                }
                State::Preamble => match self.scan() {
                    Scan::Found { after, last, .. } => {
                        self.buf.advance(after);
                        self.state = if last { State::Closing } else { State::Headers };
                    }
                    Scan::NeedMore { safe } => {
                        self.buf.advance(safe);
                        if self.eof {
                            return self.fail("no multipart boundary in the body");
                        }
                        return Ok(None);
                    }
                },
                State::Headers => {
                    let block_len = if self.buf.starts_with(b"\r\n") {
                        Some(0)
                    } else {
                        memchr::memmem::find(&self.buf, b"\r\n\r\n").map(|i| i + 2)
                    };
                    let Some(len) = block_len else {
                        if self.buf.len() > self.max_header + 2 {
                            return self.fail("multipart part headers too large");
                        }
                        if self.eof {
                            return self.fail("multipart body ends inside part headers");
                        }
                        return Ok(None);
                    };
                    if len > self.max_header {
                        return self.fail("multipart part headers too large");
                    }
                    let block = self.buf.split_to(len);
                    self.buf.advance(2);
                    let headers = match parse_headers(&block) {
                        Some(h) => h,
                        None => return self.fail("malformed multipart part headers"),
                    };
                    let head = match PartHead::from_headers(headers) {
                        Ok(h) => h,
                        Err(why) => return self.fail(why),
                    };
                    self.state = State::Data;
                    return Ok(Some(Event::Part(head)));
                }
                State::Data => match self.scan() {
                    Scan::Found { at, after, last } => {
                        if at > 0 {
                            return Ok(Some(Event::Data(self.buf.split_to(at).freeze())));
                        }
                        self.buf.advance(after);
                        self.state = if last { State::Closing } else { State::Headers };
                        return Ok(Some(Event::PartEnd));
                    }
                    Scan::NeedMore { safe } => {
                        if safe > 0 {
                            return Ok(Some(Event::Data(self.buf.split_to(safe).freeze())));
                        }
                        if self.eof {
                            return self.fail("multipart body ends before its closing boundary");
                        }
                        return Ok(None);
                    }
                },
            }
        }
    }
}

/// Parses a part's header block (`name: value` lines, each ending in CRLF).
fn parse_headers(block: &[u8]) -> Option<Headers> {
    let mut lines: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for line in block.split(|&b| b == b'\n') {
        let line = match line {
            [] => continue,
            [l @ .., b'\r'] => l,
            _ => return None, // a bare LF
        };
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            let (_, value) = lines.last_mut()?;
            value.push(b' ');
            value.extend_from_slice(trim(line));
            continue;
        }
        let colon = line.iter().position(|&b| b == b':')?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| ragi::headers::is_token_byte(b)) {
            return None;
        }
        lines.push((name.to_ascii_lowercase(), trim(&line[colon + 1..]).to_vec()));
    }
    Some(lines.into_iter().collect())
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A part as the tests compare them.
    #[derive(Debug, PartialEq, Eq)]
    struct P {
        name: String,
        filename: Option<String>,
        data: Vec<u8>,
    }

    /// Parses `body` fed in pieces of `step` bytes.
    fn parse(boundary: &str, body: &[u8], step: usize) -> Result<Vec<P>, ParseError> {
        let mut p = Parser::new(boundary.as_bytes(), 1024);
        let mut parts = Vec::new();
        let mut fed = 0;
        let mut ended = false;
        loop {
            match p.next_event()? {
                Some(Event::Part(h)) => parts.push(P {
                    name: h.name().to_owned(),
                    filename: h.filename().map(str::to_owned),
                    data: Vec::new(),
                }),
                Some(Event::Data(d)) => {
                    assert!(!d.is_empty());
                    parts.last_mut().unwrap().data.extend_from_slice(&d)
                }
                Some(Event::PartEnd) => {}
                Some(Event::End) => ended = true,
                None if fed < body.len() => {
                    let n = step.min(body.len() - fed);
                    p.feed(&body[fed..fed + n]);
                    fed += n;
                }
                None if !p.eof => p.end_input(),
                None => break,
            }
        }
        assert!(ended);
        Ok(parts)
    }

    fn every_split(boundary: &str, body: &[u8]) -> Result<Vec<P>, ParseError> {
        let whole = parse(boundary, body, body.len().max(1));
        for step in 1..body.len().min(40) {
            assert_eq!(parse(boundary, body, step), whole, "step {step}");
        }
        whole
    }

    const FORM: &[u8] = b"preamble\r\n--XyZ\r\n\
        Content-Disposition: form-data; name=\"title\"\r\n\r\n\
        hello\r\n--XyZ\r\n\
        Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
        Content-Type: text/plain\r\n\r\n\
        line1\r\nline2\r\n--XyZ not\r\n--XyZZ\r\n\r\n--XyZ--\r\nepilogue";

    #[test]
    fn fields_files_and_false_delimiters() {
        let parts = every_split("XyZ", FORM).unwrap();
        assert_eq!(
            parts,
            [
                P {
                    name: "title".into(),
                    filename: None,
                    data: b"hello".to_vec()
                },
                P {
                    name: "file".into(),
                    filename: Some("a.txt".into()),
                    data: b"line1\r\nline2\r\n--XyZ not\r\n--XyZZ\r\n".to_vec()
                },
            ]
        );
    }

    #[test]
    fn first_delimiter_without_preamble_padding_and_empty_parts() {
        let body = b"--b \t\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n--b\r\n\
            content-disposition: form-data;\r\n name=\"b\"\r\n\r\nx\r\n--b--";
        let parts = every_split("b", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].data, b"");
        assert_eq!(parts[1].name, "b");
        assert_eq!(parts[1].data, b"x");
    }

    #[test]
    fn an_empty_form() {
        assert_eq!(every_split("b", b"--b--\r\n").unwrap(), []);
    }

    #[test]
    fn malformed_bodies() {
        let bad: &[(&[u8], &str)] = &[
            (b"", "no multipart boundary in the body"),
            (b"no boundary here", "no multipart boundary in the body"),
            (
                b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nabc",
                "multipart body ends before its closing boundary",
            ),
            (
                b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nabc\r\n--b\r\n",
                "multipart body ends inside part headers",
            ),
            (
                b"--b\r\nContent-Disposition: form-data\r\n\r\n\r\n--b--",
                "multipart part without a name",
            ),
            (
                b"--b\r\nX: y\r\n\r\n\r\n--b--",
                "multipart part without Content-Disposition: form-data",
            ),
            (
                b"--b\r\nbad header\r\n\r\n\r\n--b--",
                "malformed multipart part headers",
            ),
            (
                b"--b\r\nX\n: y\r\n\r\n\r\n--b--",
                "malformed multipart part headers",
            ),
        ];
        for (body, why) in bad {
            assert_eq!(
                parse("b", body, 3).unwrap_err(),
                ParseError(why),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn header_block_limit() {
        let mut body = b"--b\r\nContent-Disposition: form-data; name=a\r\nX: ".to_vec();
        body.extend(std::iter::repeat_n(b'v', 2000));
        body.extend_from_slice(b"\r\n\r\n\r\n--b--");
        assert_eq!(
            parse("b", &body, 100).unwrap_err(),
            ParseError("multipart part headers too large")
        );
    }

    /// A small deterministic fuzz: mutated forms parse to the same result however they are
    /// split, and never panic.
    #[test]
    fn mutated_bodies_are_split_independent() {
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut rand = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let pieces: [&[u8]; 6] = [
            b"\r\n--XyZ",
            b"\r\n",
            b"--",
            b"\r\n\r\n",
            b" ",
            b"name=\"q\"",
        ];
        for _ in 0..3000 {
            let mut body = FORM.to_vec();
            for _ in 0..1 + rand(4) {
                let at = rand(body.len() + 1);
                match rand(3) {
                    0 => body.insert(at, rand(256) as u8),
                    1 if at < body.len() => {
                        body.remove(at);
                    }
                    _ => {
                        let p = pieces[rand(pieces.len())];
                        body.splice(at..at, p.iter().copied());
                    }
                }
            }
            let whole = parse("XyZ", &body, body.len().max(1));
            for step in [1, 2, 3, 7, 13] {
                assert_eq!(
                    parse("XyZ", &body, step),
                    whole,
                    "step {step}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
    }

    #[test]
    fn data_is_yielded_while_it_streams() {
        // Data comes out before the part ends: the parser holds back at most a delimiter's
        // length.
        let mut p = Parser::new(b"bound", 1024);
        p.feed(b"--bound\r\nContent-Disposition: form-data; name=f\r\n\r\n");
        assert!(matches!(p.next_event(), Ok(Some(Event::Part(_)))));
        p.feed(&[b'x'; 100]);
        let Ok(Some(Event::Data(d))) = p.next_event() else {
            panic!()
        };
        assert_eq!(d.len(), 100 - (b"\r\n--bound".len() - 1));
        assert_eq!(p.next_event(), Ok(None));
    }
}
