//! A frame check on the inbound HTTP/2 byte stream, in front of the `h2` crate, for the
//! errors where RFC 9113 names a code the crate does not give (it answers all of them with
//! GOAWAY `PROTOCOL_ERROR`), and for the client's GOAWAY, which the crate does not report.
//!
//! [`Checked`] wraps the connection's I/O. Every read is walked frame by frame (the 9-byte
//! headers; payloads only of SETTINGS, HEADERS and CONTINUATION frames, which are small), and
//! before the bytes reach `h2`:
//!
//! | what the client sent | RFC 9113 | answer |
//! |---|---|---|
//! | SETTINGS whose length is not a multiple of 6, or an ACK with a payload | §6.5 | `FRAME_SIZE_ERROR` |
//! | SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1 | §6.5.2 | `FLOW_CONTROL_ERROR` |
//! | PING not 8 octets, RST_STREAM or WINDOW_UPDATE not 4, PRIORITY not 5, GOAWAY under 8 | §6.3, §6.4, §6.7, §6.9, §4.2 | `FRAME_SIZE_ERROR` |
//! | a header block that fails HPACK decoding (RFC 7541) | §4.3 | `COMPRESSION_ERROR` |
//! | DATA or HEADERS on a stream the client ended (END_STREAM or its RST_STREAM) | §5.1 | `STREAM_CLOSED` |
//!
//! Each is answered as a connection error: the offending frame (and whatever follows it) is
//! withheld from `h2`, [`Signals`] records the code, and the connection task ends the
//! connection with GOAWAY and that code. For the stream-closed case RFC 9113 §5.1 names a
//! stream error in the half-closed (remote) state and a connection error in the closed one;
//! §5.4.1 lets an endpoint treat any stream error as a connection error, and the connection
//! error also keeps connection-level flow control exact (the withheld DATA never reaches `h2`'s
//! accounting). Everything else is left to `h2`, which answers it with the right code already.
//!
//! To judge HPACK, the check keeps its own copy of the decoder's dynamic table — entry sizes
//! and name lengths only, never the strings — and walks every header block `h2` decodes, in
//! the same order, with the same limits (a 4096-octet table, integers of at most 5 octets).
//! Where `h2` would end the connection on a framing error before decoding (padding, stream 0,
//! a frame where a CONTINUATION must come), the check stops checking and lets `h2` answer.
//!
//! Cost: a steady-state request is one HEADERS frame of a few indexed fields, so the walk is
//! a few dozen instructions per frame; DATA payloads are skipped without being read.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use h2::Reason;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY_FLAG: u8 = 0x20;

/// The largest frame payload the server accepts (its SETTINGS_MAX_FRAME_SIZE, the default,
/// which `h2.rs` does not change); `h2` answers larger frames with `FRAME_SIZE_ERROR` itself.
const MAX_FRAME_SIZE: usize = 16_384;
/// The client preface, skipped before the first frame.
const PREFACE_LEN: u8 = 24;
/// The server's SETTINGS_HEADER_TABLE_SIZE (the default; `h2.rs` does not change it).
const HEADER_TABLE_SIZE: usize = 4096;
/// Undecoded header-block bytes kept across CONTINUATION frames before the check gives up
/// (`h2` allows five CONTINUATION frames without END_HEADERS, about 96 KiB).
const MAX_BLOCK_TAIL: usize = 128 * 1024;
/// Ranges of ended streams remembered; beyond, the oldest are forgotten (and `h2` judges
/// frames on them).
const MAX_ENDED_RANGES: usize = 256;

/// What the check tells the connection task.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    /// The RFC 9113 error code to end the connection with, plus one (0: none).
    violation: AtomicU32,
    /// The client sent GOAWAY.
    client_goaway: AtomicBool,
}

impl Signals {
    /// Whether anything was signalled since the last [`Signals::take_goaway`].
    pub(crate) fn pending(&self) -> bool {
        self.violation.load(Ordering::Acquire) != 0 || self.client_goaway.load(Ordering::Acquire)
    }

    /// The error code to end the connection with, once a violation was found.
    pub(crate) fn violation(&self) -> Option<Reason> {
        match self.violation.load(Ordering::Acquire) {
            0 => None,
            n => Some(Reason::from(n - 1)),
        }
    }

    /// Whether the client sent GOAWAY (reported once).
    pub(crate) fn take_goaway(&self) -> bool {
        self.client_goaway.swap(false, Ordering::AcqRel)
    }

    fn set_violation(&self, reason: Reason) {
        let _ = self.violation.compare_exchange(
            0,
            u32::from(reason) + 1,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    fn set_goaway(&self) {
        self.client_goaway.store(true, Ordering::Release);
    }
}

/// The connection's I/O with the frame check on its read side. Writes pass through.
pub(crate) struct Checked<T> {
    inner: T,
    check: FrameCheck,
    /// A violation was found: nothing more is read (the connection task ends the connection).
    stopped: bool,
}

impl<T> Checked<T> {
    pub(crate) fn new(inner: T, signals: Arc<Signals>) -> Self {
        Self {
            inner,
            check: FrameCheck::new(signals),
            stopped: false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Checked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.stopped {
            // The connection task learns of the violation when `h2` returns and ends the
            // connection; nothing more reaches `h2`.
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let this = &mut *self;
        std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        if new.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let scanned = this.check.scan(new);
        if std::mem::take(&mut this.check.raised) {
            // The connection task looks at the signals when it comes around.
            cx.waker().wake_by_ref();
        }
        match scanned {
            Ok(()) => Poll::Ready(Ok(())),
            Err(keep) => {
                this.stopped = true;
                buf.set_filled(before + keep);
                if keep == 0 {
                    Poll::Pending
                } else {
                    Poll::Ready(Ok(()))
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Checked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The frame currently passing.
#[derive(Clone, Copy, Default)]
struct Frame {
    ty: u8,
    flags: u8,
    stream: u32,
    len: usize,
    /// Payload bytes still to come.
    left: usize,
    /// The payload is collected for a check at its end.
    collect: bool,
}

/// The state of the walk over the inbound bytes.
struct FrameCheck {
    signals: Arc<Signals>,
    /// Preface bytes still to skip.
    preface: u8,
    head: [u8; 9],
    head_len: usize,
    /// A frame's payload is passing (its header was complete).
    in_frame: bool,
    frame: Frame,
    payload: Vec<u8>,
    /// The stream whose header block goes on in CONTINUATION frames.
    block: Option<u32>,
    hpack: HpackCheck,
    /// The highest stream id the client opened.
    max_opened: u32,
    ended: EndedStreams,
    /// The check gave up (`h2` ends the connection on what came): pass everything through.
    off: bool,
    /// A signal was raised since the last read: wake the connection task.
    raised: bool,
}

impl FrameCheck {
    fn new(signals: Arc<Signals>) -> Self {
        Self {
            signals,
            preface: PREFACE_LEN,
            head: [0; 9],
            head_len: 0,
            in_frame: false,
            frame: Frame::default(),
            payload: Vec::new(),
            block: None,
            hpack: HpackCheck::new(),
            max_opened: 0,
            ended: EndedStreams::default(),
            off: false,
            raised: false,
        }
    }

    /// Walks newly read bytes. `Err(n)`: a violation; only the first `n` bytes may reach `h2`
    /// (those before the offending frame), and the code is in the signals.
    fn scan(&mut self, bytes: &[u8]) -> Result<(), usize> {
        let mut i = 0;
        // Where the current frame started, relative to `bytes` (negative: in an earlier read).
        let mut frame_start: isize = -1;
        while i < bytes.len() && !self.off {
            if self.preface > 0 {
                let n = (self.preface as usize).min(bytes.len() - i);
                self.preface -= n as u8;
                i += n;
                continue;
            }
            if self.in_frame {
                // The rest of a payload that began in an earlier read.
                let n = self.frame.left.min(bytes.len() - i);
                if self.frame.collect {
                    self.payload.extend_from_slice(&bytes[i..i + n]);
                }
                self.frame.left -= n;
                i += n;
                if self.frame.left == 0 {
                    self.in_frame = false;
                    if self.frame.collect {
                        let payload = std::mem::take(&mut self.payload);
                        let r = self.on_payload(&payload);
                        self.payload = payload;
                        if let Err(reason) = r {
                            return Err(self.stop(reason, frame_start));
                        }
                    }
                }
                continue;
            }
            // A frame header: at once when it is all here (the common case), else gathered.
            let head = if self.head_len == 0 && bytes.len() - i >= 9 {
                frame_start = i as isize;
                let mut h = [0u8; 9];
                h.copy_from_slice(&bytes[i..i + 9]);
                i += 9;
                h
            } else {
                if self.head_len == 0 {
                    frame_start = i as isize;
                }
                let n = (9 - self.head_len).min(bytes.len() - i);
                self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[i..i + n]);
                self.head_len += n;
                i += n;
                if self.head_len < 9 {
                    break;
                }
                self.head_len = 0;
                self.head
            };
            let len =
                (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
            self.frame = Frame {
                ty: head[3],
                flags: head[4],
                stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
                len,
                left: len,
                collect: false,
            };
            if let Err(reason) = self.on_head() {
                return Err(self.stop(reason, frame_start));
            }
            if self.off {
                break;
            }
            if len <= bytes.len() - i {
                // The whole payload is here: checked in place.
                if self.frame.collect {
                    if let Err(reason) = self.on_payload(&bytes[i..i + len]) {
                        return Err(self.stop(reason, frame_start));
                    }
                }
                i += len;
            } else {
                self.in_frame = true;
                self.payload.clear();
            }
        }
        Ok(())
    }

    fn stop(&mut self, reason: Reason, frame_start: isize) -> usize {
        self.off = true;
        self.raised = true;
        self.signals.set_violation(reason);
        frame_start.max(0) as usize
    }

    /// Checks a frame header; decides whether its payload is collected.
    fn on_head(&mut self) -> Result<(), Reason> {
        let f = self.frame;
        if f.len > MAX_FRAME_SIZE {
            // `h2` answers FRAME_SIZE_ERROR.
            self.off = true;
            return Ok(());
        }
        if self.block.is_some() && f.ty != CONTINUATION {
            // `h2` answers PROTOCOL_ERROR: a CONTINUATION must come.
            self.off = true;
            return Ok(());
        }
        match f.ty {
            DATA => {
                if f.stream != 0 && self.ended.contains(f.stream) {
                    return Err(Reason::STREAM_CLOSED);
                }
                if f.flags & END_STREAM != 0 && f.stream != 0 && f.stream <= self.max_opened {
                    self.ended.insert(f.stream);
                }
            }
            HEADERS => {
                if f.stream == 0 || f.stream % 2 == 0 {
                    self.off = true;
                    return Ok(());
                }
                if self.ended.contains(f.stream) {
                    return Err(Reason::STREAM_CLOSED);
                }
                if f.stream > self.max_opened {
                    self.max_opened = f.stream;
                }
                if f.flags & END_STREAM != 0 {
                    self.ended.insert(f.stream);
                }
                self.frame.collect = true;
            }
            CONTINUATION => {
                if self.block != Some(f.stream) {
                    // `h2` answers PROTOCOL_ERROR.
                    self.off = true;
                    return Ok(());
                }
                self.frame.collect = true;
            }
            SETTINGS if f.stream == 0 => {
                if f.flags & ACK != 0 {
                    if f.len != 0 {
                        return Err(Reason::FRAME_SIZE_ERROR);
                    }
                } else if f.len % 6 != 0 {
                    return Err(Reason::FRAME_SIZE_ERROR);
                } else {
                    self.frame.collect = f.len > 0;
                }
            }
            PING if f.stream == 0 && f.len != 8 => return Err(Reason::FRAME_SIZE_ERROR),
            GOAWAY if f.stream == 0 => {
                if f.len < 8 {
                    return Err(Reason::FRAME_SIZE_ERROR);
                }
                self.signals.set_goaway();
                self.raised = true;
            }
            WINDOW_UPDATE if f.len != 4 => return Err(Reason::FRAME_SIZE_ERROR),
            RST_STREAM if f.stream != 0 => {
                if f.len != 4 {
                    return Err(Reason::FRAME_SIZE_ERROR);
                }
                if f.stream <= self.max_opened {
                    self.ended.insert(f.stream);
                }
            }
            PRIORITY if f.stream != 0 && f.len != 5 => return Err(Reason::FRAME_SIZE_ERROR),
            PUSH_PROMISE => {
                // A client may not push: `h2` answers PROTOCOL_ERROR.
                self.off = true;
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks a collected payload (SETTINGS, HEADERS, CONTINUATION).
    fn on_payload(&mut self, payload: &[u8]) -> Result<(), Reason> {
        let f = self.frame;
        match f.ty {
            SETTINGS => {
                for s in payload.chunks_exact(6) {
                    let id = u16::from_be_bytes([s[0], s[1]]);
                    let value = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
                    match id {
                        // ENABLE_PUSH, ENABLE_CONNECT_PROTOCOL: `h2` answers PROTOCOL_ERROR.
                        0x2 | 0x8 if value > 1 => return Ok(()),
                        0x4 if value > 0x7fff_ffff => return Err(Reason::FLOW_CONTROL_ERROR),
                        // MAX_FRAME_SIZE out of range: `h2` answers PROTOCOL_ERROR.
                        0x5 if !(16_384..=16_777_215).contains(&value) => return Ok(()),
                        _ => {}
                    }
                }
            }
            HEADERS => {
                // As `h2` loads it: padding length, priority, then the block fragment.
                let mut p = payload;
                let mut pad = 0;
                if f.flags & PADDED != 0 {
                    let Some((&n, rest)) = p.split_first() else {
                        self.off = true;
                        return Ok(());
                    };
                    pad = usize::from(n);
                    p = rest;
                }
                if f.flags & PRIORITY_FLAG != 0 {
                    if p.len() < 5 {
                        self.off = true;
                        return Ok(());
                    }
                    let dep = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff;
                    if dep == f.stream {
                        // `h2` resets the stream without decoding the block (and answers a
                        // CONTINUATION of it with PROTOCOL_ERROR): so does the check.
                        return Ok(());
                    }
                    p = &p[5..];
                }
                if pad > p.len() {
                    self.off = true;
                    return Ok(());
                }
                let fragment = &p[..p.len() - pad];
                let end = f.flags & END_HEADERS != 0;
                self.block = (!end).then_some(f.stream);
                let r = self.hpack.fragment(fragment, end);
                verdict(r, &mut self.off)?;
            }
            CONTINUATION => {
                let end = f.flags & END_HEADERS != 0;
                if end {
                    self.block = None;
                }
                let r = self.hpack.fragment(payload, end);
                verdict(r, &mut self.off)?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// What an HPACK check means for the connection: a decoding error is `COMPRESSION_ERROR`; a
/// block too long to follow turns the check off.
fn verdict(r: Result<(), HpackError>, off: &mut bool) -> Result<(), Reason> {
    match r {
        Ok(()) => Ok(()),
        Err(HpackError::Invalid) => Err(Reason::COMPRESSION_ERROR),
        Err(HpackError::TooLong) => {
            *off = true;
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ended streams
// ---------------------------------------------------------------------------------------------

/// Client stream ids (odd) whose client side ended, as sorted, disjoint, inclusive ranges of
/// odd ids: streams end roughly in order, so a long-lived connection keeps a handful.
#[derive(Default)]
struct EndedStreams {
    ranges: Vec<(u32, u32)>,
}

impl EndedStreams {
    fn contains(&self, id: u32) -> bool {
        let i = self.ranges.partition_point(|r| r.1 < id);
        self.ranges.get(i).is_some_and(|r| r.0 <= id)
    }

    fn insert(&mut self, id: u32) {
        if id % 2 == 0 {
            return;
        }
        // The common case: the next stream in order.
        if let Some(last) = self.ranges.last_mut() {
            if last.1.checked_add(2) == Some(id) {
                last.1 = id;
                return;
            }
        }
        let i = self.ranges.partition_point(|r| r.1 < id);
        if self.ranges.get(i).is_some_and(|r| r.0 <= id) {
            return;
        }
        let joins_left = i > 0 && self.ranges[i - 1].1 + 2 == id;
        let joins_right = self.ranges.get(i).is_some_and(|r| r.0 == id + 2);
        match (joins_left, joins_right) {
            (true, true) => {
                self.ranges[i - 1].1 = self.ranges[i].1;
                self.ranges.remove(i);
            }
            (true, false) => self.ranges[i - 1].1 = id,
            (false, true) => self.ranges[i].0 = id,
            (false, false) => {
                self.ranges.insert(i, (id, id));
                if self.ranges.len() > MAX_ENDED_RANGES {
                    self.ranges.remove(0);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HPACK (RFC 7541), checked without decoding into strings
// ---------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
enum HpackError {
    /// A decoding error (RFC 7541): `COMPRESSION_ERROR`.
    Invalid,
    /// More undecoded bytes than the check keeps.
    TooLong,
}

/// The names of the static table (RFC 7541 Appendix A), for their lengths.
const STATIC_NAMES: [&str; 61] = [
    ":authority",
    ":method",
    ":method",
    ":path",
    ":path",
    ":scheme",
    ":scheme",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "accept",
    "access-control-allow-origin",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-range",
    "content-type",
    "cookie",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "link",
    "location",
    "max-forwards",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "refresh",
    "retry-after",
    "server",
    "set-cookie",
    "strict-transport-security",
    "transfer-encoding",
    "user-agent",
    "vary",
    "via",
    "www-authenticate",
];

/// A shadow of the decoder's state: the dynamic table as (name length, entry size) pairs,
/// newest first, and the undecoded tail of a header block split across frames.
struct HpackCheck {
    table: VecDeque<(usize, usize)>,
    size: usize,
    max_size: usize,
    /// The current block has had no field yet (a size update may come).
    block_start: bool,
    tail: Vec<u8>,
}

/// Something needs more bytes than the fragment has.
struct Incomplete;

impl HpackCheck {
    fn new() -> Self {
        Self {
            table: VecDeque::new(),
            size: 0,
            max_size: HEADER_TABLE_SIZE,
            block_start: true,
            tail: Vec::new(),
        }
    }

    /// One fragment of a header block; `end`: the block's last.
    fn fragment(&mut self, fragment: &[u8], end: bool) -> Result<(), HpackError> {
        let r = if self.tail.is_empty() {
            self.decode(fragment).map(|used| {
                if used < fragment.len() {
                    self.tail.extend_from_slice(&fragment[used..]);
                }
            })
        } else {
            let mut buf = std::mem::take(&mut self.tail);
            buf.extend_from_slice(fragment);
            let r = self.decode(&buf);
            if let Ok(used) = r {
                buf.drain(..used);
            }
            self.tail = buf;
            r.map(|_| ())
        };
        let r = match r {
            // The block ends inside a representation.
            Ok(()) if end && !self.tail.is_empty() => Err(HpackError::Invalid),
            Ok(()) if self.tail.len() > MAX_BLOCK_TAIL => Err(HpackError::TooLong),
            r => r,
        };
        if end || r.is_err() {
            self.tail.clear();
            self.block_start = true;
        }
        r
    }

    /// Decodes the complete representations at the start of `b`; returns how many bytes they
    /// took (the rest is an incomplete one).
    fn decode(&mut self, b: &[u8]) -> Result<usize, HpackError> {
        let mut pos = 0;
        while pos < b.len() {
            // The common case first: an indexed field with a one-octet index.
            let first = b[pos];
            if first > 0x80 && first < 0xff {
                let index = usize::from(first & 0x7f);
                if index > 61 && index - 62 >= self.table.len() {
                    return Err(HpackError::Invalid);
                }
                self.block_start = false;
                pos += 1;
                continue;
            }
            match self.representation(&b[pos..]) {
                Ok(n) => pos += n,
                Err(Ok(Incomplete)) => break,
                Err(Err(e)) => return Err(e),
            }
        }
        Ok(pos)
    }

    /// One representation: the bytes it took, or why not.
    fn representation(&mut self, b: &[u8]) -> Result<usize, Result<Incomplete, HpackError>> {
        let first = b[0];
        if first & 0x80 != 0 {
            // Indexed header field.
            let (index, n) = int(b, 7)?;
            self.name_len(index)?;
            self.block_start = false;
            return Ok(n);
        }
        if first & 0xe0 == 0x20 {
            // Dynamic table size update: only at the start of a block, within the limit.
            let (size, n) = int(b, 5)?;
            if !self.block_start || size > HEADER_TABLE_SIZE {
                return Err(Err(HpackError::Invalid));
            }
            self.max_size = size;
            self.evict(0);
            return Ok(n);
        }
        // Literals: with incremental indexing (01), without (0000), never indexed (0001).
        let indexing = first & 0x40 != 0;
        let (index, mut pos) = int(b, if indexing { 6 } else { 4 })?;
        let name_len = if index == 0 {
            let (len, n) = string(&b[pos..])?;
            pos += n;
            len
        } else {
            self.name_len(index)?
        };
        let (value_len, n) = string(&b[pos..])?;
        pos += n;
        self.block_start = false;
        if indexing {
            let size = name_len + value_len + 32;
            self.evict(size);
            if self.size + size <= self.max_size {
                self.size += size;
                self.table.push_front((name_len, size));
            }
        }
        Ok(pos)
    }

    fn name_len(&self, index: usize) -> Result<usize, Result<Incomplete, HpackError>> {
        match index {
            0 => Err(Err(HpackError::Invalid)),
            1..=61 => Ok(STATIC_NAMES[index - 1].len()),
            _ => self
                .table
                .get(index - 62)
                .map(|e| e.0)
                .ok_or(Err(HpackError::Invalid)),
        }
    }

    /// Evicts entries until `room` more octets fit (or the table is empty).
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            match self.table.pop_back() {
                Some((_, s)) => self.size -= s,
                None => break,
            }
        }
    }
}

/// An HPACK integer with an `n`-bit prefix: its value and length. At most 5 octets, as `h2`
/// allows (beyond is a decoding error: RFC 7541 §5.1 lets a decoder limit integers).
fn int(b: &[u8], n: u8) -> Result<(usize, usize), Result<Incomplete, HpackError>> {
    let mask = (1u8 << n) - 1;
    let Some(&first) = b.first() else {
        return Err(Ok(Incomplete));
    };
    let mut value = usize::from(first & mask);
    if value < usize::from(mask) {
        return Ok((value, 1));
    }
    let mut shift = 0;
    for (i, &byte) in b.iter().enumerate().skip(1) {
        value += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
        if i + 1 == 5 {
            return Err(Err(HpackError::Invalid));
        }
    }
    Err(Ok(Incomplete))
}

/// A string literal: its decoded length and the octets it took.
fn string(b: &[u8]) -> Result<(usize, usize), Result<Incomplete, HpackError>> {
    let huffman = b.first().is_some_and(|&f| f & 0x80 != 0);
    let (len, n) = int(b, 7)?;
    let Some(raw) = b.get(n..n + len) else {
        return Err(Ok(Incomplete));
    };
    let decoded = if huffman {
        huffman_len(raw).ok_or(Err(HpackError::Invalid))?
    } else {
        len
    };
    Ok((decoded, n + len))
}

/// The lengths of the Huffman codes of octets 0–255 and EOS (RFC 7541 Appendix B).
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

/// The HPACK Huffman code is canonical: the codes of one length are consecutive, from
/// `FIRST[len]`, `COUNT[len]` of them, and EOS is the last code of length 30.
const COUNT: [u32; 31] = {
    let mut c = [0u32; 31];
    let mut s = 0;
    while s < 257 {
        c[CODE_LENGTHS[s] as usize] += 1;
        s += 1;
    }
    c
};
const FIRST: [u32; 31] = {
    let mut f = [0u32; 31];
    let mut code = 0u32;
    let mut len = 1;
    while len <= 30 {
        f[len] = code;
        code = (code + COUNT[len]) << 1;
        len += 1;
    }
    f
};

/// The decoded length of a Huffman-coded string; `None` for a decoding error (EOS in the
/// string, or padding longer than 7 bits or not all ones: RFC 7541 §5.2).
fn huffman_len(src: &[u8]) -> Option<usize> {
    let mut code = 0u32;
    let mut bits = 0usize;
    let mut n = 0;
    for &byte in src {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            bits += 1;
            if bits >= 5 {
                let offset = code.wrapping_sub(FIRST[bits]);
                if offset < COUNT[bits] {
                    if bits == 30 && offset == COUNT[30] - 1 {
                        return None;
                    }
                    n += 1;
                    code = 0;
                    bits = 0;
                }
            }
        }
    }
    (bits < 8 && code == (1u32 << bits) - 1).then_some(n)
}

/// The check for the fuzz crate (see [`crate::fuzz`]).
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz {
    use std::sync::Arc;

    /// The frame check over a client's byte stream (preface included).
    #[derive(Debug)]
    pub struct FrameCheck(super::FrameCheck, Arc<super::Signals>);

    impl Default for FrameCheck {
        fn default() -> Self {
            let signals = Arc::new(super::Signals::default());
            Self(super::FrameCheck::new(signals.clone()), signals)
        }
    }

    impl FrameCheck {
        /// Walks the next bytes. `Err(n)`: a violation; only the first `n` of them may pass.
        pub fn scan(&mut self, bytes: &[u8]) -> Result<(), usize> {
            self.0.scan(bytes)
        }

        /// The error code of the violation found, if any.
        pub fn violation(&self) -> Option<u32> {
            self.1.violation().map(u32::from)
        }

        /// Whether the client's GOAWAY was seen (reported once).
        pub fn take_goaway(&self) -> bool {
            self.1.take_goaway()
        }

        /// Whether the check gave up (`h2` judges what follows).
        pub fn is_off(&self) -> bool {
            self.0.off
        }

        /// The ended client streams, as sorted inclusive ranges of odd ids.
        pub fn ended(&self) -> &[(u32, u32)] {
            &self.0.ended.ranges
        }

        /// The highest client stream id opened.
        pub fn max_opened(&self) -> u32 {
            self.0.max_opened
        }
    }

    impl std::fmt::Debug for super::FrameCheck {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("FrameCheck").finish_non_exhaustive()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Codes from RFC 7541 Appendix B.
    #[test]
    fn the_huffman_code_is_canonical() {
        let code_of = |sym: usize| {
            let len = CODE_LENGTHS[sym];
            let rank = (0..sym).filter(|&s| CODE_LENGTHS[s] == len).count() as u32;
            (FIRST[len as usize] + rank, len)
        };
        assert_eq!(code_of(b'0' as usize), (0x0, 5));
        assert_eq!(code_of(b'a' as usize), (0x3, 5));
        assert_eq!(code_of(b' ' as usize), (0x14, 6));
        assert_eq!(code_of(b'!' as usize), (0x3f8, 10));
        assert_eq!(code_of(0), (0x1ff8, 13));
        assert_eq!(code_of(255), (0x3ffffee, 26));
        assert_eq!(code_of(10), (0x3ffffffc, 30));
        assert_eq!(code_of(256), (0x3fffffff, 30));
    }

    #[test]
    fn huffman_strings() {
        // RFC 7541 C.4.1: "www.example.com".
        assert_eq!(huffman_len(&hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")), Some(15));
        // C.4.2: "no-cache".
        assert_eq!(huffman_len(&hex("a8eb 1064 9cbf")), Some(8));
        // C.6.1: "Mon, 21 Oct 2013 20:13:21 GMT".
        assert_eq!(
            huffman_len(&hex(
                "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"
            )),
            Some(29)
        );
        assert_eq!(huffman_len(&[]), Some(0));
        // Padding of 8 ones, padding with a zero, EOS.
        assert_eq!(huffman_len(&[0xff]), None);
        assert_eq!(huffman_len(&hex("f1e3 c2e5 f23a 6ba0 ab90 f4fe")), None);
        assert_eq!(huffman_len(&[0xff, 0xff, 0xff, 0xfc]), None);
    }

    #[test]
    fn rfc7541_request_examples_decode_with_the_table() {
        let mut h = HpackCheck::new();
        // C.4.1–C.4.3 (Huffman), one connection.
        for block in [
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
            "8286 84be 5886 a8eb 1064 9cbf",
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        ] {
            assert_eq!(h.fragment(&hex(block), true), Ok(()), "{block}");
        }
        // The table as C.4.3 leaves it: 3 entries, 164 octets.
        assert_eq!(h.table.len(), 3);
        assert_eq!(h.size, 164);
        // Index 65 is beyond it.
        assert_eq!(h.fragment(&[0x80 | 65], true), Err(HpackError::Invalid));
        assert_eq!(h.fragment(&[0x80 | 64], true), Ok(()));
    }

    #[test]
    fn decoding_errors() {
        let bad: &[&[u8]] = &[
            &[0x80],                         // index 0
            &[0xff, 0xff, 0xff, 0x0f],       // index beyond the tables
            &[0xff, 0xff, 0xff, 0xff, 0xff], // an integer of more than 5 octets
            &[0x3f, 0xe2, 0x1f],             // size update above 4096
            &[0x82, 0x20],                   // size update after a field
            &[0x40, 0x03, b'a'],             // a block ending inside a string
            &[0x40, 0x81, 0xff, 0x00],       // a Huffman name that is all padding
        ];
        for b in bad {
            assert_eq!(
                HpackCheck::new().fragment(b, true),
                Err(HpackError::Invalid),
                "{b:x?}"
            );
        }
        // Split across fragments: fine until the block ends inside a representation.
        let mut h = HpackCheck::new();
        assert_eq!(h.fragment(&[0x40, 0x03, b'a'], false), Ok(()));
        assert_eq!(h.fragment(&[b'b', b'c', 0x01, b'x'], true), Ok(()));
        assert_eq!(h.table.len(), 1);
        assert_eq!(
            h.fragment(&[0x3f, 0xe2, 0x1f], false),
            Err(HpackError::Invalid)
        );
        // Size updates at the start, within the limit; the table shrinks.
        assert_eq!(h.fragment(&[0x20, 0x82], true), Ok(()));
        assert_eq!(h.table.len(), 0);
    }

    #[test]
    fn ended_streams_as_ranges() {
        let mut e = EndedStreams::default();
        for id in [1, 3, 7, 5, 11] {
            e.insert(id);
        }
        assert_eq!(e.ranges, vec![(1, 7), (11, 11)]);
        assert!(e.contains(5) && e.contains(11) && !e.contains(9) && !e.contains(13));
        e.insert(9);
        assert_eq!(e.ranges, vec![(1, 11)]);
        for id in (0..2 * MAX_ENDED_RANGES as u32 + 10).map(|i| 101 + 4 * i) {
            e.insert(id);
        }
        assert_eq!(e.ranges.len(), MAX_ENDED_RANGES);
        assert!(!e.contains(1));
    }

    fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn scan_all(bytes: &[u8], step: usize) -> (Result<(), usize>, Option<Reason>, usize) {
        let signals = Arc::new(Signals::default());
        let mut c = FrameCheck::new(signals.clone());
        let mut delivered = 0;
        for chunk in bytes.chunks(step) {
            match c.scan(chunk) {
                Ok(()) => delivered += chunk.len(),
                Err(keep) => {
                    delivered += keep;
                    return (Err(keep), signals.violation(), delivered);
                }
            }
        }
        (Ok(()), signals.violation(), delivered)
    }

    #[test]
    fn frames_are_followed_across_reads() {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(frame(SETTINGS, 0, 0, &[0, 4, 0, 1, 0, 0]));
        let get = [0x82, 0x86, 0x84, 0x41, 0x01, b'a'];
        bytes.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &get));
        bytes.extend(frame(HEADERS, END_HEADERS, 3, &get));
        bytes.extend(frame(DATA, END_STREAM, 3, b"body"));
        let good = bytes.len();
        bytes.extend(frame(DATA, 0, 1, b"late"));
        for step in [1, 2, 7, 9, 64, 4096] {
            let (r, v, delivered) = scan_all(&bytes, step);
            assert!(r.is_err(), "step {step}");
            assert_eq!(v, Some(Reason::STREAM_CLOSED), "step {step}");
            // Every good frame reached `h2`; of the late DATA frame at most part of its header
            // (the bytes that came before the header was complete).
            assert!(
                (good..good + 9).contains(&delivered),
                "step {step}: {delivered} of {good}"
            );
        }
    }

    #[test]
    fn settings_checks() {
        let run = |payload: &[u8], flags: u8| {
            let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            bytes.extend(frame(SETTINGS, flags, 0, payload));
            scan_all(&bytes, 4096).1
        };
        assert_eq!(run(&[0, 1, 0], 0), Some(Reason::FRAME_SIZE_ERROR));
        assert_eq!(
            run(&[0, 0, 0, 0, 0, 0], ACK),
            Some(Reason::FRAME_SIZE_ERROR)
        );
        assert_eq!(
            run(&[0, 4, 0x80, 0, 0, 0], 0),
            Some(Reason::FLOW_CONTROL_ERROR)
        );
        assert_eq!(run(&[0, 4, 0x7f, 0xff, 0xff, 0xff], 0), None);
        // ENABLE_PUSH = 2 first: `h2`'s PROTOCOL_ERROR.
        assert_eq!(run(&[0, 2, 0, 0, 0, 2, 0, 4, 0x80, 0, 0, 0], 0), None);
    }
}
