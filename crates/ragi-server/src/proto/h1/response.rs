//! Responses: the head, body framing, trailers, and which events are valid when.
//!
//! A [`ResponseEncoder`] turns an exchange's `ResponseStart` / `ResponseBody` /
//! `ResponseTrailers` events into bytes. It holds the head back until the first body piece, so
//! that a response sent as one piece gets a `content-length` instead of chunked framing; a
//! response of unknown length is chunked for HTTP/1.1 clients and close-delimited for HTTP/1.0
//! ones. It refuses events out of order, bodies longer than their `content-length`, headers
//! with CR, LF or NUL, and 1xx statuses (the server sends `100 Continue` itself).

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use ragi::{Headers, HttpVersion, SendError};

use crate::date::{with_date, with_date_line_at};

/// Bytes waiting to be written, in order: small pieces are copied together, large ones are kept
/// as they are (written with `writev`).
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    scratch: BytesMut,
    pieces: VecDeque<Bytes>,
    len: usize,
}

/// Pieces at least this large are queued without copying.
const COPY_LIMIT: usize = 4096;

impl OutQueue {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            scratch: BytesMut::with_capacity(n),
            pieces: VecDeque::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the queue, keeping the copy buffer's memory.
    pub(crate) fn clear(&mut self) {
        self.scratch.clear();
        self.pieces.clear();
        self.len = 0;
    }

    pub(crate) fn put_slice(&mut self, b: &[u8]) {
        self.scratch.extend_from_slice(b);
        self.len += b.len();
    }

    pub(crate) fn put_bytes(&mut self, b: Bytes) {
        if b.len() < COPY_LIMIT {
            self.put_slice(&b);
        } else {
            self.seal();
            self.len += b.len();
            self.pieces.push_back(b);
        }
    }

    fn seal(&mut self) {
        if !self.scratch.is_empty() {
            self.pieces.push_back(self.scratch.split().freeze());
        }
    }

    /// Moves everything queued here to the back of `other`.
    pub(crate) fn move_to(&mut self, other: &mut OutQueue) {
        if self.len == 0 {
            return;
        }
        if self.pieces.is_empty() && other.pieces.is_empty() {
            other.scratch.extend_from_slice(&self.scratch);
            self.scratch.clear();
        } else {
            other.seal();
            self.seal();
            other.pieces.append(&mut self.pieces);
        }
        other.len += self.len;
        self.len = 0;
    }

    /// The front bytes when they are one contiguous piece (a plain `send` then beats `writev`).
    pub(crate) fn single(&self) -> Option<&[u8]> {
        match (self.pieces.len(), self.scratch.is_empty()) {
            (0, _) => Some(&self.scratch),
            (1, true) => self.pieces.front().map(|b| &b[..]),
            _ => None,
        }
    }

    /// Fills `out` with up to `out.len()` slices from the front; returns how many.
    pub(crate) fn fill_slices<'a>(&'a self, out: &mut [std::io::IoSlice<'a>]) -> usize {
        let mut n = 0;
        for p in self.pieces.iter() {
            if n == out.len() {
                return n;
            }
            out[n] = std::io::IoSlice::new(p);
            n += 1;
        }
        if n < out.len() && !self.scratch.is_empty() {
            out[n] = std::io::IoSlice::new(&self.scratch);
            n += 1;
        }
        n
    }

    /// Hands every queued piece, in order, to `f`, and empties the queue.
    pub(crate) fn drain_each(&mut self, mut f: impl FnMut(&[u8])) {
        for p in self.pieces.drain(..) {
            f(&p);
        }
        if !self.scratch.is_empty() {
            f(&self.scratch);
            self.scratch.clear();
        }
        self.len = 0;
    }

    /// Drops `n` written bytes from the front.
    pub(crate) fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            if let Some(front) = self.pieces.front_mut() {
                if n >= front.len() {
                    n -= front.len();
                    self.pieces.pop_front();
                } else {
                    let _ = front.split_to(n);
                    n = 0;
                }
            } else {
                // Moves the start; `split_to` would make the buffer shared (an allocation and
                // atomic counts) only to drop the front.
                bytes::Buf::advance(&mut self.scratch, n);
                n = 0;
            }
        }
        if self.len == 0 {
            self.scratch.clear();
        }
    }
}

/// How the response body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length {
        remaining: u64,
    },
    Chunked,
    CloseDelimited,
    /// HEAD, 204, 304: no body bytes are written whatever the app sends.
    NoBody,
}

#[derive(Debug)]
enum State {
    Init,
    /// `ResponseStart` arrived; the head is held until the first body piece.
    HeadPending {
        status: u16,
        headers: Headers,
        trailers: bool,
    },
    Body {
        framing: Framing,
        trailers: bool,
    },
    /// The body ended; trailers announced and awaited.
    AwaitTrailers,
    Done,
}

/// What the encoder knows of the request and the connection.
#[derive(Debug, Clone)]
pub(crate) struct ResponseContext {
    pub(crate) version: HttpVersion,
    pub(crate) head_request: bool,
    /// The connection closes after this response (the request asked, or the server decided).
    pub(crate) close: bool,
    /// When the request's bytes were read, while that is recent enough to date the response
    /// by (see [`crate::date::with_date_line_at`]); `None` reads the clock.
    pub(crate) arrived: Option<std::time::Instant>,
}

/// Encodes one response. See the [module documentation](self).
#[derive(Debug)]
pub(crate) struct ResponseEncoder {
    ctx: ResponseContext,
    /// The `server` header value (the server's, the same for every response); `None` to send
    /// none.
    server_header: Option<Bytes>,
    state: State,
    status: u16,
    body_bytes: u64,
}

fn invalid(why: impl Into<String>) -> SendError {
    SendError::invalid_event(why)
}

impl ResponseEncoder {
    pub(crate) fn new(ctx: ResponseContext, server_header: Option<Bytes>) -> Self {
        Self {
            ctx,
            server_header,
            state: State::Init,
            status: 0,
            body_bytes: 0,
        }
    }

    /// Makes this encoder the next response's, as [`ResponseEncoder::new`] would with the same
    /// server header.
    pub(crate) fn renew(&mut self, ctx: ResponseContext) {
        self.ctx = ctx;
        self.state = State::Init;
        self.status = 0;
        self.body_bytes = 0;
    }

    /// The response is no longer made right after its request arrived (the app went on in
    /// a task): its `date` comes from the clock.
    pub(crate) fn forget_arrival(&mut self) {
        self.ctx.arrived = None;
    }

    pub(crate) fn started(&self) -> bool {
        !matches!(self.state, State::Init)
    }

    /// Whether the head has been written to the queue.
    pub(crate) fn head_written(&self) -> bool {
        matches!(
            self.state,
            State::Body { .. } | State::AwaitTrailers | State::Done
        )
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    pub(crate) fn status(&self) -> u16 {
        self.status
    }

    pub(crate) fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Whether the connection must close after this response.
    pub(crate) fn will_close(&self) -> bool {
        self.ctx.close
    }

    /// Makes the response announce and perform a close (graceful shutdown, unread body). Only
    /// effective before the head is written; returns whether it was.
    pub(crate) fn force_close(&mut self) -> bool {
        if self.head_written() {
            return self.ctx.close;
        }
        self.ctx.close = true;
        true
    }

    /// `ResponseStart`.
    pub(crate) fn start(
        &mut self,
        status: u16,
        headers: Headers,
        trailers: bool,
    ) -> Result<(), SendError> {
        if !matches!(self.state, State::Init) {
            return Err(invalid("ResponseStart sent twice"));
        }
        if !(200..=999).contains(&status) {
            return Err(invalid(format!(
                "status {status} is not a final status (200-999)"
            )));
        }
        headers.validate().map_err(SendError::invalid_header)?;
        if let Some(cl) = headers.get("content-length") {
            if crate::proto::h1::request::parse_content_length(cl).is_none()
                || headers.get_all("content-length").count() > 1
            {
                return Err(invalid("invalid content-length header"));
            }
        }
        self.status = status;
        self.state = State::HeadPending {
            status,
            headers,
            trailers,
        };
        Ok(())
    }

    /// `ResponseBody`. Returns true when the response is complete.
    pub(crate) fn body(
        &mut self,
        data: Bytes,
        more: bool,
        out: &mut OutQueue,
    ) -> Result<bool, SendError> {
        match &self.state {
            State::Init => return Err(invalid("ResponseBody before ResponseStart")),
            State::AwaitTrailers | State::Done => {
                return Err(invalid("ResponseBody after the body ended"))
            }
            _ => {}
        }
        if let State::HeadPending { .. } = self.state {
            let whole = if more { None } else { Some(data.len() as u64) };
            self.write_head(whole, out)?;
        }
        let State::Body { framing, trailers } = &mut self.state else {
            unreachable!()
        };
        let trailers = *trailers;
        match framing {
            Framing::Length { remaining } => {
                if data.len() as u64 > *remaining {
                    return Err(invalid("response body longer than its content-length"));
                }
                *remaining -= data.len() as u64;
                let left = *remaining;
                self.body_bytes += data.len() as u64;
                if !data.is_empty() {
                    out.put_bytes(data);
                }
                if !more && left > 0 {
                    return Err(invalid("response body shorter than its content-length"));
                }
            }
            Framing::Chunked => {
                self.body_bytes += data.len() as u64;
                if !data.is_empty() {
                    let mut line = [0u8; 18];
                    let n = hex_line(data.len(), &mut line);
                    out.put_slice(&line[..n]);
                    out.put_bytes(data);
                    out.put_slice(b"\r\n");
                }
                if !more && !trailers {
                    out.put_slice(b"0\r\n\r\n");
                }
            }
            Framing::CloseDelimited => {
                self.body_bytes += data.len() as u64;
                if !data.is_empty() {
                    out.put_bytes(data);
                }
            }
            Framing::NoBody => {}
        }
        if more {
            return Ok(false);
        }
        if trailers {
            self.state = State::AwaitTrailers;
            Ok(false)
        } else {
            self.state = State::Done;
            Ok(true)
        }
    }

    /// `ResponseTrailers`. Returns true (the response is complete).
    pub(crate) fn trailers(
        &mut self,
        headers: Headers,
        out: &mut OutQueue,
    ) -> Result<bool, SendError> {
        match &self.state {
            State::HeadPending { trailers: true, .. } => {
                self.write_head(None, out)?;
                self.state = State::AwaitTrailers;
            }
            State::Body { trailers: true, .. } => {
                // The body was not ended explicitly; end it now.
                self.state = State::AwaitTrailers;
            }
            State::AwaitTrailers => {}
            _ => {
                return Err(invalid(
                    "ResponseTrailers without trailers: true, or out of order",
                ))
            }
        }
        headers.validate().map_err(SendError::invalid_header)?;
        if self.ctx.head_request || self.no_body_status() {
            self.state = State::Done;
            return Ok(true);
        }
        out.put_slice(b"0\r\n");
        for (n, v) in headers.iter() {
            out.put_slice(n);
            out.put_slice(b": ");
            out.put_slice(v);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        self.state = State::Done;
        Ok(true)
    }

    /// `FullFlush`: writes a held head now (chunked, since the length is unknown).
    pub(crate) fn flush_head(&mut self, out: &mut OutQueue) -> Result<(), SendError> {
        if let State::HeadPending { .. } = self.state {
            self.write_head(None, out)?;
        }
        Ok(())
    }

    fn no_body_status(&self) -> bool {
        self.status == 204 || self.status == 304
    }

    /// Writes the held head. `whole` is the body's length when it is known to be one piece.
    fn write_head(&mut self, whole: Option<u64>, out: &mut OutQueue) -> Result<(), SendError> {
        let State::HeadPending {
            status,
            headers,
            trailers,
        } = std::mem::replace(&mut self.state, State::Init)
        else {
            unreachable!("write_head without a pending head")
        };
        let declared = headers
            .get("content-length")
            .and_then(|v| crate::proto::h1::request::parse_content_length(v));
        let app_chunked = headers
            .get("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"));
        let framing = if self.ctx.head_request || status == 204 || status == 304 {
            Framing::NoBody
        } else if trailers && self.ctx.version == HttpVersion::Http11 {
            Framing::Chunked
        } else if let Some(n) = declared {
            Framing::Length { remaining: n }
        } else if let (Some(n), false) = (whole, app_chunked) {
            Framing::Length { remaining: n }
        } else if self.ctx.version == HttpVersion::Http11 {
            Framing::Chunked
        } else {
            self.ctx.close = true;
            Framing::CloseDelimited
        };
        let trailers = trailers && framing == Framing::Chunked;

        if status == 200 {
            out.put_slice(b"HTTP/1.1 200 OK\r\n");
        } else {
            let reason = http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Unknown");
            let code = [
                b'0' + (status / 100 % 10) as u8,
                b'0' + (status / 10 % 10) as u8,
                b'0' + (status % 10) as u8,
            ];
            out.put_slice(b"HTTP/1.1 ");
            out.put_slice(&code);
            out.put_slice(b" ");
            out.put_slice(reason.as_bytes());
            out.put_slice(b"\r\n");
        }
        let mut has_date = false;
        let mut has_server = false;
        let drop_length = framing == Framing::Chunked
            || (framing == Framing::NoBody && !self.ctx.head_request && status != 304);
        for (n, v) in headers.iter() {
            // By length first: most names need no comparison at all.
            match n.len() {
                4 => has_date |= n.eq_ignore_ascii_case(b"date"),
                6 => has_server |= n.eq_ignore_ascii_case(b"server"),
                // The server owns the connection's framing headers.
                10 if n.eq_ignore_ascii_case(b"connection")
                    || n.eq_ignore_ascii_case(b"keep-alive") =>
                {
                    continue
                }
                17 if n.eq_ignore_ascii_case(b"transfer-encoding") => continue,
                14 if drop_length && n.eq_ignore_ascii_case(b"content-length") => continue,
                _ => {}
            }
            out.put_slice(n);
            out.put_slice(b": ");
            out.put_slice(v);
            out.put_slice(b"\r\n");
        }
        if !has_date {
            with_date_line_at(self.ctx.arrived, |line| out.put_slice(line));
        }
        if let (false, Some(s)) = (has_server, &self.server_header) {
            out.put_slice(b"server: ");
            out.put_slice(s);
            out.put_slice(b"\r\n");
        }
        match framing {
            Framing::Length { remaining } if declared.is_none() => {
                let mut buf = itoa::Buffer::new();
                out.put_slice(b"content-length: ");
                out.put_slice(buf.format(remaining).as_bytes());
                out.put_slice(b"\r\n");
            }
            // HEAD: the length GET would have had; a 204 or 304 has none to state.
            Framing::NoBody
                if self.ctx.head_request
                    && declared.is_none()
                    && status != 204
                    && status != 304 =>
            {
                if let Some(n) = whole {
                    let mut buf = itoa::Buffer::new();
                    out.put_slice(b"content-length: ");
                    out.put_slice(buf.format(n).as_bytes());
                    out.put_slice(b"\r\n");
                }
            }
            Framing::Chunked => out.put_slice(b"transfer-encoding: chunked\r\n"),
            _ => {}
        }
        if self.ctx.close {
            out.put_slice(b"connection: close\r\n");
        } else if self.ctx.version == HttpVersion::Http10 {
            out.put_slice(b"connection: keep-alive\r\n");
        }
        out.put_slice(b"\r\n");
        self.state = State::Body { framing, trailers };
        Ok(())
    }
}

/// Writes `{len:x}\r\n` into `buf`; returns its length.
fn hex_line(len: usize, buf: &mut [u8; 18]) -> usize {
    let mut digits = [0u8; 16];
    let (mut n, mut i) = (len, 16);
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    let k = 16 - i;
    buf[..k].copy_from_slice(&digits[i..]);
    buf[k] = b'\r';
    buf[k + 1] = b'\n';
    k + 2
}

/// A complete server-made response (errors, 503 at capacity, the 500 backstop): a short
/// text body, `connection: close`, plus `extra` header lines (each ending in CRLF).
pub(crate) fn simple_response(
    status: u16,
    server_header: Option<&[u8]>,
    extra: &[u8],
    head_only: bool,
) -> Bytes {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let body = format!("{status} {reason}\n");
    let mut out = BytesMut::with_capacity(256);
    out.put_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    with_date(|d| {
        out.put_slice(b"date: ");
        out.put_slice(d);
        out.put_slice(b"\r\n");
    });
    if let Some(s) = server_header {
        out.put_slice(b"server: ");
        out.put_slice(s);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"content-type: text/plain; charset=utf-8\r\n");
    out.put_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    out.put_slice(extra);
    out.put_slice(b"connection: close\r\n\r\n");
    if !head_only {
        out.put_slice(body.as_bytes());
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(version: HttpVersion, head: bool) -> ResponseContext {
        ResponseContext {
            version,
            head_request: head,
            close: false,
            arrived: None,
        }
    }

    fn encoder(version: HttpVersion, head: bool) -> ResponseEncoder {
        ResponseEncoder::new(ctx(version, head), Some(Bytes::from_static(b"ragi")))
    }

    fn drain(q: &mut OutQueue) -> String {
        let mut v = [std::io::IoSlice::new(&[]); 64];
        let k = q.fill_slices(&mut v);
        let s: Vec<u8> = v[..k].iter().flat_map(|s| s.iter().copied()).collect();
        let n = q.len();
        q.advance(n);
        String::from_utf8(s).unwrap()
    }

    #[test]
    fn one_piece_gets_a_length() {
        let mut e = encoder(HttpVersion::Http11, false);
        let mut q = OutQueue::default();
        e.start(
            200,
            Headers::new().with("content-type", "text/plain"),
            false,
        )
        .unwrap();
        assert!(e.body(Bytes::from_static(b"Hello"), false, &mut q).unwrap());
        let s = drain(&mut q);
        assert!(
            s.starts_with("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ndate: "),
            "{s}"
        );
        assert!(
            s.contains("\r\nserver: ragi\r\ncontent-length: 5\r\n\r\nHello"),
            "{s}"
        );
    }

    #[test]
    fn streaming_is_chunked_and_trailers_follow() {
        let mut e = encoder(HttpVersion::Http11, false);
        let mut q = OutQueue::default();
        e.start(200, Headers::new(), true).unwrap();
        assert!(!e.body(Bytes::from_static(b"abc"), true, &mut q).unwrap());
        assert!(!e
            .body(Bytes::from_static(b"defghijklmnopqr"), false, &mut q)
            .unwrap());
        assert!(e
            .trailers(Headers::new().with("x-sum", "1"), &mut q)
            .unwrap());
        let s = drain(&mut q);
        assert!(s.contains("transfer-encoding: chunked\r\n\r\n3\r\nabc\r\nf\r\ndefghijklmnopqr\r\n0\r\nx-sum: 1\r\n\r\n"), "{s}");
    }

    #[test]
    fn http10_without_length_closes() {
        let mut e = encoder(HttpVersion::Http10, false);
        let mut q = OutQueue::default();
        e.start(200, Headers::new(), false).unwrap();
        e.body(Bytes::from_static(b"a"), true, &mut q).unwrap();
        assert!(e.will_close());
        assert!(drain(&mut q).contains("connection: close\r\n\r\na"));
    }

    #[test]
    fn head_writes_no_body() {
        let mut e = encoder(HttpVersion::Http11, true);
        let mut q = OutQueue::default();
        e.start(200, Headers::new(), false).unwrap();
        assert!(e.body(Bytes::from_static(b"Hello"), false, &mut q).unwrap());
        let s = drain(&mut q);
        assert!(s.ends_with("content-length: 5\r\n\r\n"), "{s}");
    }

    #[test]
    fn head_of_a_304_or_204_states_no_length() {
        for status in [204, 304] {
            let mut e = encoder(HttpVersion::Http11, true);
            let mut q = OutQueue::default();
            e.start(status, Headers::new().with("etag", "\"a\""), false)
                .unwrap();
            assert!(e.body(Bytes::new(), false, &mut q).unwrap());
            let s = drain(&mut q);
            assert!(!s.contains("content-length"), "{s}");
        }
    }

    #[test]
    fn bad_events_are_refused() {
        let mut q = OutQueue::default();
        let mut e = encoder(HttpVersion::Http11, false);
        assert!(e
            .body(Bytes::new(), false, &mut q)
            .unwrap_err()
            .is_invalid_event());
        assert!(e
            .start(100, Headers::new(), false)
            .unwrap_err()
            .is_invalid_event());
        assert!(e
            .start(200, Headers::new().with("x", "a\r\nb"), false)
            .unwrap_err()
            .is_invalid_header());
        e.start(200, Headers::new().with("content-length", "3"), false)
            .unwrap();
        assert!(e
            .start(200, Headers::new(), false)
            .unwrap_err()
            .is_invalid_event());
        assert!(e
            .body(Bytes::from_static(b"abcd"), true, &mut q)
            .unwrap_err()
            .is_invalid_event());
        assert!(drain(&mut q).is_empty() || !e.is_done());
    }

    #[test]
    fn out_queue_keeps_order_across_copied_and_shared_pieces() {
        let mut q = OutQueue::default();
        q.put_slice(b"head");
        q.put_bytes(Bytes::from(vec![b'x'; 5000]));
        q.put_slice(b"tail");
        assert_eq!(q.len(), 5008);
        q.advance(2);
        let s = drain(&mut q);
        assert!(s.starts_with("adxx") && s.ends_with("xtail") && s.len() == 5006);
    }
}
