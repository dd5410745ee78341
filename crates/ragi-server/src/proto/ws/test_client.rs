//! The client's side, for the tests: masked frames built by hand, a reader of server frames,
//! and a driver that feeds a [`Decoder`] in pieces.

use bytes::BytesMut;

use super::frame::apply_mask;
use super::{Decoder, Incoming, ProtocolError};

/// The masking key of RFC 6455 §5.7's examples.
pub(crate) const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked frame: `b0` is the first byte as is (FIN, RSV, opcode), the length in its
/// shortest form.
pub(crate) fn raw(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![b0];
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
    out.extend_from_slice(&KEY);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], KEY, 0);
    out
}

/// A masked frame from its parts.
pub(crate) fn frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let b0 = if fin { 0x80 } else { 0 } | if rsv1 { 0x40 } else { 0 } | opcode;
    raw(b0, payload)
}

/// One frame the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerFrame {
    pub(crate) fin: bool,
    pub(crate) rsv1: bool,
    pub(crate) opcode: u8,
    pub(crate) payload: Vec<u8>,
}

/// Splits the server's bytes into frames; panics on a masked or truncated frame.
pub(crate) fn server_frames(mut bytes: &[u8]) -> Vec<ServerFrame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (b0, b1) = (bytes[0], bytes[1]);
        assert_eq!(b1 & 0x80, 0, "server frames are not masked");
        let (len, at) = match b1 & 0x7f {
            126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&bytes[2..10]);
                (u64::from_be_bytes(be) as usize, 10)
            }
            n => (usize::from(n), 2),
        };
        assert_eq!(b0 & 0x30, 0);
        frames.push(ServerFrame {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            opcode: b0 & 0x0f,
            payload: bytes[at..at + len].to_vec(),
        });
        bytes = &bytes[at + len..];
    }
    frames
}

/// Feeds `input` to `decoder` in pieces of `step` bytes; returns the events and the error
/// that stopped it, if any.
pub(crate) fn decode_all(
    decoder: &mut Decoder,
    input: &[u8],
    step: usize,
) -> (Vec<Incoming>, Option<ProtocolError>) {
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    for piece in input.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

/// Decodes `input` with a fresh decoder at every piece size from 1 to 16 and all at once;
/// asserts that they agree and returns the result.
pub(crate) fn decode_every_way(
    config: &super::CodecConfig,
    input: &[u8],
) -> (Vec<Incoming>, Option<ProtocolError>) {
    let whole = decode_all(&mut Decoder::new(config), input, input.len());
    for step in 1..=16 {
        let pieces = decode_all(&mut Decoder::new(config), input, step);
        assert_eq!(pieces, whole, "step {step}");
    }
    whole
}
