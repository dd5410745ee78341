//! Access to the WebSocket codec for the fuzz crate (`fuzz/` at the repository root), behind
//! the cargo feature `fuzzing` and re-exported doc-hidden as `ragi_server::__fuzz`.
//!
//! Not an API: thin public wrappers over the crate-private codec, changed whenever it changes.

use bytes::{Bytes, BytesMut};

/// The negotiated permessage-deflate parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deflate {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server's window bits (8..=15).
    pub server_max_window_bits: u8,
    /// The client's window bits (8..=15).
    pub client_max_window_bits: u8,
}

impl From<Deflate> for super::DeflateParams {
    fn from(d: Deflate) -> Self {
        Self {
            server_no_context_takeover: d.server_no_context_takeover,
            client_no_context_takeover: d.client_no_context_takeover,
            server_max_window_bits: d.server_max_window_bits,
            client_max_window_bits: d.client_max_window_bits,
        }
    }
}

impl From<super::DeflateParams> for Deflate {
    fn from(d: super::DeflateParams) -> Self {
        Self {
            server_no_context_takeover: d.server_no_context_takeover,
            client_no_context_takeover: d.client_no_context_takeover,
            server_max_window_bits: d.server_max_window_bits,
            client_max_window_bits: d.client_max_window_bits,
        }
    }
}

fn config(max_message_size: usize, deflate: Option<Deflate>) -> super::CodecConfig {
    super::CodecConfig {
        max_message_size,
        deflate: deflate.map(Into::into),
    }
}

/// One event from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A complete message.
    Message(ragi::Message),
    /// A ping.
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// A close frame.
    Close {
        /// Its code, if any.
        code: Option<u16>,
        /// Its reason.
        reason: String,
    },
}

impl From<super::Incoming> for Incoming {
    fn from(i: super::Incoming) -> Self {
        match i {
            super::Incoming::Message(m) => Self::Message(m),
            super::Incoming::Ping(p) => Self::Ping(p),
            super::Incoming::Pong(p) => Self::Pong(p),
            super::Incoming::Close { code, reason } => Self::Close { code, reason },
        }
    }
}

/// A protocol error: the close code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    /// 1002, 1007 or 1009.
    pub code: u16,
    /// Why.
    pub reason: &'static str,
}

/// The server-side decoder.
#[derive(Debug)]
pub struct Decoder(super::Decoder);

impl Decoder {
    /// A decoder with this limit and, if negotiated, deflate.
    pub fn new(max_message_size: usize, deflate: Option<Deflate>) -> Self {
        Self(super::Decoder::new(&config(max_message_size, deflate)))
    }

    /// The next event, `Ok(None)` when more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, Error> {
        self.0
            .decode(buf)
            .map(|event| event.map(Into::into))
            .map_err(|e| Error {
                code: e.code,
                reason: e.reason,
            })
    }
}

/// The server-side encoder.
#[derive(Debug)]
pub struct Encoder(super::Encoder);

impl Encoder {
    /// An encoder that compresses when `deflate` is given.
    pub fn new(deflate: Option<Deflate>) -> Self {
        Self(super::Encoder::new(&config(
            super::DEFAULT_MAX_MESSAGE_SIZE,
            deflate,
        )))
    }

    /// Appends a message frame.
    pub fn message(&mut self, msg: &ragi::Message, out: &mut BytesMut) {
        self.0.message(msg, out);
    }

    /// Appends a ping frame.
    pub fn ping(&mut self, payload: &[u8], out: &mut BytesMut) {
        self.0.ping(payload, out);
    }

    /// Appends a pong frame.
    pub fn pong(&mut self, payload: &[u8], out: &mut BytesMut) {
        self.0.pong(payload, out);
    }

    /// Appends a close frame.
    pub fn close(&mut self, code: u16, reason: &str, out: &mut BytesMut) {
        self.0.close(code, reason, out);
    }
}

/// Masks (or unmasks) `data`, `offset` bytes into a payload.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    super::frame::apply_mask(data, mask, offset);
}

/// Whether a client may send this close code.
pub fn valid_close_code(code: u16) -> bool {
    super::frame::valid_close_code(code)
}

/// permessage-deflate negotiation.
pub fn negotiate(offers: &[&[u8]]) -> Option<(Deflate, String)> {
    super::negotiate(offers).map(|(params, response)| (params.into(), response))
}

/// `sec-websocket-accept` for a key.
pub fn accept_key(key: &[u8]) -> String {
    super::accept_key(key)
}

/// Whether a `sec-websocket-key` is valid.
pub fn valid_key(key: &[u8]) -> bool {
    super::valid_key(key)
}
