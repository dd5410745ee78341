//! The WebSocket protocol core: RFC 6455 framing and RFC 7692 permessage-deflate, sans I/O.
//!
//! Nothing here touches a socket, a clock or a runtime. The session driver (`crate::ws`) owns
//! the connection: it reads bytes into a buffer and hands them to a [`Decoder`], which turns
//! them into [`Incoming`] events or a [`ProtocolError`]; it hands messages and control frames
//! to an [`Encoder`], which appends wire bytes to its output buffer. Keepalive timers, queues
//! and the close handshake's timing are the driver's.
//!
//! # Why our own codec
//!
//! The mainstream Rust WebSocket crates (tungstenite, fastwebsockets) have no
//! permessage-deflate, and ragi's session must own its byte stream anyway (one driver for an
//! upgraded HTTP/1.1 connection, TLS, and an HTTP/2 extended CONNECT stream, with detection
//! and backpressure of its own). So the framing, the UTF-8 and close-code rules and the
//! compression are written here, over `flate2` (zlib-rs backend, which takes window bits);
//! the codec is fuzzed (`fuzz/`, target `ws_decoder`) and passes the Autobahn testsuite in full.
//!
//! # How a session uses it
//!
//! 1. Handshake ([`handshake`]): check `sec-websocket-key` with [`valid_key`], answer with
//!    `sec-websocket-accept: {accept_key(key)}`; pass every `sec-websocket-extensions` value to
//!    [`negotiate`] and, if it returns `Some((params, header))`, answer with
//!    `sec-websocket-extensions: {header}` and put `Some(params)` in [`CodecConfig::deflate`].
//! 2. One [`Decoder`] and one [`Encoder`] per session, made from the same [`CodecConfig`].
//! 3. Reading: append what the socket gave to a `BytesMut` and call [`Decoder::decode`] until
//!    it returns `Ok(None)`; then read more, appending. What the decoder leaves in the buffer
//!    is untouched wire bytes (a frame it needs more of); what it consumed is gone.
//! 4. `Ping(p)` → `encoder.pong(&p, ..)`. `Close { code, reason }` → tell the app (code
//!    `None` is reported as 1005), answer with `encoder.close(code.unwrap_or(1005), "", ..)`
//!    (1005 becomes an empty close payload) and close the TCP connection; the decoder ignores
//!    anything after a close. `Err(e)` → `encoder.close(e.code, e.reason, ..)` and close; the
//!    decoder keeps returning the same error.
//!
//! # What the decoder refuses
//!
//! Each violation fails the connection with the close code in [`ProtocolError::code`]:
//!
//! | violation | code |
//! |---|---|
//! | RSV2/RSV3 set; RSV1 set other than on the first frame of a data message with deflate negotiated | 1002 |
//! | a reserved opcode (3–7, 11–15) | 1002 |
//! | a frame from the client without a mask | 1002 |
//! | a control frame longer than 125 bytes, or fragmented | 1002 |
//! | a continuation without a message, a new data frame inside a fragmented message | 1002 |
//! | a 64-bit length with the top bit set | 1002 |
//! | a close payload of 1 byte, or a close code RFC 6455 §7.4 does not allow | 1002 |
//! | a close reason or a text message that is not UTF-8 | 1007 |
//! | compressed data that does not inflate | 1007 |
//! | a message larger than [`CodecConfig::max_message_size`] (after inflating) | 1009 |
//!
//! Errors come as early as the bytes allow. Header rules are checked on the first two bytes.
//! An uncompressed message that would exceed the limit fails at the header of the frame that
//! crosses it, before its payload arrives; a compressed one fails the moment inflating passes
//! the limit, so a zip bomb costs at most `max_message_size + 1` bytes. Text is validated as
//! it arrives — across fragments, across partial frames (the arrived part of a frame is
//! unmasked and checked at once), across inflate output — and fails at the first byte that
//! can no longer start valid UTF-8 ([`utf8`]). Non-minimal length encodings are accepted.
//!
//! # Copies
//!
//! Unmasking happens in place, eight bytes at a time ([`frame::apply_mask`]). A binary message
//! in one uncompressed frame is never copied: the decoder waits until the whole frame is in
//! the buffer (growing it by doubling so the driver's reads stay amortised) and splits it off
//! as `Bytes`. A single-frame text message that is complete when decoded is validated in place
//! and copied once into its `String`. Fragmented, partially received or compressed messages
//! are assembled in a `Vec` (one copy, or the inflate output) that becomes the message without
//! another copy; text assembled this way is validated piece by piece for failing fast and once
//! more as a whole by `String::from_utf8` (`from_utf8_unchecked` would need `unsafe`, which the
//! project keeps to two proven lines: [`Exchange::unique`](crate::exchange::Exchange::unique)
//! and its twin in the interface crate's connection object). The driver's buffer
//! must therefore be allowed to hold one whole frame, up to `max_message_size + 14` bytes.
//!
//! # permessage-deflate
//!
//! See [`deflate`] for negotiation, window bits and memory. The encoder compresses every
//! message as one frame with RSV1 set; control frames are never compressed. The decoder
//! inflates each compressed message as its payload arrives, with the stripped `00 00 ff ff`
//! appended at its end.

pub(crate) mod deflate;
pub(crate) mod frame;
pub(crate) mod handshake;
pub(crate) mod utf8;

mod decode;
mod encode;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
#[cfg(test)]
mod test_client;

pub(crate) use decode::Decoder;
pub(crate) use deflate::{negotiate, DeflateParams};
pub(crate) use encode::Encoder;
pub(crate) use handshake::{accept_key, valid_key};

use bytes::Bytes;

/// The default (and specification's) message size limit: 16 MiB.
pub(crate) const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// What a session's codec needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CodecConfig {
    /// Largest message accepted, in bytes after inflating; inclusive. Default 16 MiB.
    pub max_message_size: usize,
    /// The negotiated permessage-deflate parameters, if any.
    pub deflate: Option<DeflateParams>,
}

impl Default for CodecConfig {
    fn default() -> Self {
        Self {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            deflate: None,
        }
    }
}

/// One event from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A complete message: reassembled, inflated, text validated.
    Message(ragi::Message),
    /// A ping with its payload (at most 125 bytes); answer with a pong carrying it.
    Ping(Bytes),
    /// A pong with its payload.
    Pong(Bytes),
    /// A valid close frame. `code` is `None` for an empty payload (the app sees 1005).
    Close {
        /// The close code, if the frame had one.
        code: Option<u16>,
        /// The reason (valid UTF-8, possibly empty).
        reason: String,
    },
}

/// The client broke the protocol: fail the connection with this close code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProtocolError {
    /// 1002 (protocol error), 1007 (invalid payload data) or 1009 (message too big).
    pub code: u16,
    /// A short reason, fit for the close frame.
    pub reason: &'static str,
}

impl ProtocolError {
    pub(crate) const fn protocol(reason: &'static str) -> Self {
        Self { code: 1002, reason }
    }

    pub(crate) const fn invalid_data(reason: &'static str) -> Self {
        Self { code: 1007, reason }
    }

    pub(crate) const fn too_big() -> Self {
        Self {
            code: 1009,
            reason: "message too big",
        }
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "websocket protocol error {}: {}", self.code, self.reason)
    }
}

impl std::error::Error for ProtocolError {}
