//! Access to the sans-I/O cores for the fuzz crate (`fuzz/` at the repository root), behind the
//! cargo feature `fuzzing` and re-exported doc-hidden as `ragi_server::__fuzz`.
//!
//! Not an API: thin public wrappers over crate-private code, changed whenever it changes. One
//! module per fuzzed core; a new target adds its wrapper here.

pub use crate::proto::ws::fuzz as ws;

/// HTTP/1.1 request heads and bodies ([`crate::proto::h1`]).
pub mod h1 {
    use bytes::{Bytes, BytesMut};

    use crate::proto::h1::body;
    use crate::proto::h1::request::{self, BodyFraming, HeadLimits};

    /// How a request body is framed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Framing {
        /// No body.
        Empty,
        /// `content-length`.
        Length(u64),
        /// `transfer-encoding: chunked`.
        Chunked,
    }

    /// A parsed head, as the driver would use it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Head {
        /// The method.
        pub method: String,
        /// The path as received (no query).
        pub raw_path: Bytes,
        /// The query, without `?`.
        pub query: Bytes,
        /// HTTP/1.1 (else 1.0).
        pub http11: bool,
        /// The fields as the app sees them (names lower-cased).
        pub headers: Vec<(Bytes, Bytes)>,
        /// The body framing.
        pub framing: Framing,
        /// The connection may stay open after this exchange.
        pub keep_alive: bool,
        /// `expect: 100-continue`.
        pub expect_continue: bool,
        /// The request line, without its line end.
        pub request_line: Bytes,
        /// The whole head's length in bytes.
        pub len: usize,
    }

    /// The outcome of [`parse_head`].
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Parsed {
        /// More bytes are needed.
        Partial,
        /// A head; its bytes were taken from the buffer.
        Complete(Head),
        /// Refused with this status.
        Error(u16),
    }

    /// Parses a head at the front of `buf` with these limits.
    pub fn parse_head(
        buf: &mut BytesMut,
        max_request_line: usize,
        max_header_size: usize,
        max_headers: usize,
    ) -> Parsed {
        let limits = HeadLimits {
            max_request_line,
            max_header_size,
            max_headers,
        };
        match request::parse_head(buf, &limits) {
            request::Parsed::Partial => Parsed::Partial,
            request::Parsed::Error(e) => Parsed::Error(e.status),
            request::Parsed::Complete(h) => Parsed::Complete(Head {
                method: h.method.to_string(),
                raw_path: h.raw_path.clone(),
                query: h.query.clone(),
                http11: h.version == ragi::HttpVersion::Http11,
                headers: h
                    .headers
                    .iter()
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect(),
                framing: match h.framing {
                    BodyFraming::Empty => Framing::Empty,
                    BodyFraming::Length(n) => Framing::Length(n),
                    BodyFraming::Chunked => Framing::Chunked,
                },
                keep_alive: h.keep_alive,
                expect_continue: h.expect_continue,
                request_line: h.head.slice(..h.line_len),
                len: h.head.len(),
            }),
        }
    }

    /// Empty lines skipped before a request line.
    pub fn leading_empty_lines(buf: &[u8]) -> usize {
        request::leading_empty_lines(buf)
    }

    /// What one [`BodyDecoder::decode`] call produced.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Decoded {
        /// Body bytes (never empty).
        Data(Bytes),
        /// More input is needed.
        NeedMore,
        /// The body ended.
        Done,
    }

    /// The request body decoder.
    #[derive(Debug)]
    pub struct BodyDecoder(body::BodyDecoder);

    impl BodyDecoder {
        /// A `content-length: n` body.
        pub fn length(n: u64) -> Self {
            Self(body::BodyDecoder::length(n))
        }

        /// A chunked body.
        pub fn chunked() -> Self {
            Self(body::BodyDecoder::chunked())
        }

        /// Whether the body ended.
        pub fn is_done(&self) -> bool {
            self.0.is_done()
        }

        /// Takes what it can from the front of `buf`; `Err` is a framing error (400).
        pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, &'static str> {
            match self.0.decode(buf) {
                Ok(body::Decoded::Data(d)) => Ok(Decoded::Data(d)),
                Ok(body::Decoded::NeedMore) => Ok(Decoded::NeedMore),
                Ok(body::Decoded::Done) => Ok(Decoded::Done),
                Err(e) => Err(e.0),
            }
        }
    }
}

/// The HTTP/2 inbound frame check ([`crate::h2_check`]).
pub mod h2 {
    pub use crate::h2_check::fuzz::FrameCheck;
}

/// The SSE encoder ([`crate::sse`]).
pub mod sse {
    use bytes::Bytes;

    /// An event as `event:`/`data:`/`id:`/`retry:` lines and a blank line; `Err` when a field
    /// cannot be sent (CR or LF in a name or id, NUL in an id).
    pub fn format_event(event: &ragi::SseEvent) -> Result<Bytes, String> {
        crate::sse::format_event(event).map_err(|e| e.to_string())
    }

    /// A comment line and a blank line; `Err` when it holds CR or LF.
    pub fn format_comment(comment: &str) -> Result<Bytes, String> {
        crate::sse::format_comment(comment).map_err(|e| e.to_string())
    }
}
