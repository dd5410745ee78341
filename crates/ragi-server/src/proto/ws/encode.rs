//! The server-side frame encoder: unmasked frames, every message in one frame.

use bytes::{BufMut, BytesMut};

use super::deflate::Deflater;
use super::frame::{
    put_header, MAX_CONTROL_PAYLOAD, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT,
};
use super::CodecConfig;

/// Compressed-message scratch space kept between messages; a larger one is dropped after use
/// so one big message does not pin its size for the rest of the session.
const KEEP_SCRATCH: usize = 64 * 1024;
/// Payloads at least this long are written from the app's buffer instead of being copied.
const ZERO_COPY_MIN: usize = 4096;

/// Encodes server frames (unmasked).
#[derive(Debug)]
pub(crate) struct Encoder {
    /// Present when permessage-deflate was negotiated.
    deflater: Option<Deflater>,
    /// Where a message is compressed before its header (which holds the length) is written.
    scratch: Vec<u8>,
}

impl Encoder {
    pub(crate) fn new(config: &CodecConfig) -> Self {
        Self {
            deflater: config.deflate.as_ref().map(Deflater::new),
            scratch: Vec::new(),
        }
    }

    /// Appends `msg` as one frame; compressed (RSV1) when deflate was negotiated.
    pub(crate) fn message(&mut self, msg: &ragi::Message, out: &mut BytesMut) {
        let (opcode, payload) = match msg {
            ragi::Message::Text(text) => (OP_TEXT, text.as_bytes()),
            ragi::Message::Binary(bytes) => (OP_BINARY, &bytes[..]),
        };
        match &mut self.deflater {
            Some(deflater) => {
                deflater.compress(payload, &mut self.scratch);
                put_header(out, opcode, true, self.scratch.len());
                out.extend_from_slice(&self.scratch);
                if self.scratch.capacity() > KEEP_SCRATCH {
                    self.scratch = Vec::new();
                }
            }
            None => {
                put_header(out, opcode, false, payload.len());
                out.extend_from_slice(payload);
            }
        }
    }

    /// Like [`Encoder::message`], but without copying a large uncompressed payload: the frame
    /// header goes to `out` and the payload comes back, to be written right after it.
    pub(crate) fn message_owned(
        &mut self,
        msg: ragi::Message,
        out: &mut BytesMut,
    ) -> Option<bytes::Bytes> {
        let len = match &msg {
            ragi::Message::Text(t) => t.len(),
            ragi::Message::Binary(b) => b.len(),
        };
        if self.deflater.is_some() || len < ZERO_COPY_MIN {
            self.message(&msg, out);
            return None;
        }
        let (opcode, payload) = match msg {
            ragi::Message::Text(text) => (OP_TEXT, bytes::Bytes::from(text)),
            ragi::Message::Binary(bytes) => (OP_BINARY, bytes),
        };
        put_header(out, opcode, false, payload.len());
        Some(payload)
    }

    /// Appends a ping. A payload longer than 125 bytes is cut to 125 (a control frame's limit).
    pub(crate) fn ping(&mut self, payload: &[u8], out: &mut BytesMut) {
        control(out, OP_PING, payload);
    }

    /// Appends a pong. A payload longer than 125 bytes is cut to 125.
    pub(crate) fn pong(&mut self, payload: &[u8], out: &mut BytesMut) {
        control(out, OP_PONG, payload);
    }

    /// Appends a close frame. The reason is cut to fit the 125-byte payload, on a character
    /// boundary. A code that must not be sent — 1005, 1006 and 1015 (RFC 6455 §7.4.1), 1004
    /// (reserved) and anything outside 1000–4999 — gives an empty payload instead (no code,
    /// no reason): `close(code.unwrap_or(1005), "", out)` echoes a client's close.
    pub(crate) fn close(&mut self, code: u16, reason: &str, out: &mut BytesMut) {
        if !sendable_close_code(code) {
            put_header(out, OP_CLOSE, false, 0);
            return;
        }
        let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let reason = &reason.as_bytes()[..end];
        put_header(out, OP_CLOSE, false, 2 + reason.len());
        out.put_u16(code);
        out.extend_from_slice(reason);
    }
}

/// Whether an endpoint may put `code` in a close frame it sends. Unlike what we accept from
/// a client, 1012–2999 pass: 1012–1014 are registered (service restart, try again later, bad
/// gateway) and the rest is the app's business.
fn sendable_close_code(code: u16) -> bool {
    (1000..=4999).contains(&code) && !matches!(code, 1004 | 1005 | 1006 | 1015)
}

fn control(out: &mut BytesMut, opcode: u8, payload: &[u8]) {
    let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
    put_header(out, opcode, false, payload.len());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ws::deflate::DeflateParams;
    use crate::proto::ws::frame::OP_CONTINUATION;
    use crate::proto::ws::test_client::{decode_all, frame, server_frames, ServerFrame};
    use crate::proto::ws::{Decoder, Incoming};
    use bytes::Bytes;
    use ragi::Message;

    #[test]
    fn message_owned_writes_the_same_bytes_as_message() {
        for m in messages() {
            let mut copied = BytesMut::new();
            Encoder::new(&CodecConfig::default()).message(&m, &mut copied);
            let mut owned = BytesMut::new();
            let tail = Encoder::new(&CodecConfig::default()).message_owned(m.clone(), &mut owned);
            let big = match &m {
                Message::Text(t) => t.len() >= ZERO_COPY_MIN,
                Message::Binary(b) => b.len() >= ZERO_COPY_MIN,
            };
            assert_eq!(tail.is_some(), big);
            if let Some(t) = tail {
                owned.extend_from_slice(&t);
            }
            assert_eq!(owned, copied);
        }
    }

    fn messages() -> Vec<Message> {
        let mut big = Vec::with_capacity(300_000);
        let mut state = 0x9e37_79b9u32;
        while big.len() < 300_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            // Half compressible words, half noise.
            if state % 2 == 0 {
                big.extend_from_slice(b"websocket ");
            } else {
                big.extend_from_slice(&state.to_le_bytes());
            }
        }
        vec![
            Message::Text("Hello".into()),
            Message::Text("Hello".into()),
            Message::Text(String::new()),
            Message::Binary(Bytes::new()),
            Message::Text("ünïcödé — 😀".repeat(100)),
            Message::Binary(Bytes::from(big)),
            Message::Binary(Bytes::from_static(&[0, 1, 2, 3, 255])),
            Message::Text(String::new()),
            Message::Text("the end".into()),
        ]
    }

    /// What a client would send for the server's frames: the same frames, masked, each data
    /// frame cut into `pieces` fragments with a ping between fragments.
    fn as_client(server: &[u8], pieces: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for f in server_frames(server) {
            if f.opcode & 0x8 != 0 || pieces <= 1 {
                out.extend(frame(f.fin, f.rsv1, f.opcode, &f.payload));
                continue;
            }
            let size = f.payload.len().div_ceil(pieces).max(1);
            let chunks: Vec<&[u8]> = if f.payload.is_empty() {
                vec![&[]]
            } else {
                f.payload.chunks(size).collect()
            };
            for (i, chunk) in chunks.iter().enumerate() {
                let first = i == 0;
                let last = i + 1 == chunks.len();
                let opcode = if first { f.opcode } else { OP_CONTINUATION };
                out.extend(frame(last, first && f.rsv1, opcode, chunk));
                if !last {
                    out.extend(frame(true, false, OP_PING, &[i as u8]));
                }
            }
        }
        out
    }

    fn round_trip(deflate: Option<DeflateParams>) {
        let config = CodecConfig {
            deflate,
            ..CodecConfig::default()
        };
        let mut encoder = Encoder::new(&config);
        let mut wire = BytesMut::new();
        for m in messages() {
            encoder.message(&m, &mut wire);
        }
        for f in server_frames(&wire) {
            assert!(f.fin);
            assert_eq!(f.rsv1, deflate.is_some());
        }
        for (pieces, step) in [(1, usize::MAX), (1, 1000), (3, 7), (2, 100_000)] {
            let input = as_client(&wire, pieces);
            let (events, error) = decode_all(&mut Decoder::new(&config), &input, step);
            assert_eq!(error, None);
            let got: Vec<Message> = events
                .into_iter()
                .filter_map(|e| match e {
                    Incoming::Message(m) => Some(m),
                    _ => None,
                })
                .collect();
            assert_eq!(got, messages(), "{deflate:?} pieces {pieces} step {step}");
        }
    }

    #[test]
    fn round_trip_without_deflate() {
        round_trip(None);
    }

    #[test]
    fn round_trip_with_deflate() {
        round_trip(Some(DeflateParams::default()));
        round_trip(Some(DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..DeflateParams::default()
        }));
        for bits in 8..=15 {
            round_trip(Some(DeflateParams {
                server_max_window_bits: bits,
                client_max_window_bits: bits,
                ..DeflateParams::default()
            }));
        }
    }

    #[test]
    fn compression_happens() {
        let config = CodecConfig {
            deflate: Some(DeflateParams::default()),
            ..CodecConfig::default()
        };
        let mut out = BytesMut::new();
        Encoder::new(&config).message(&Message::Text("a".repeat(10_000)), &mut out);
        assert!(out.len() < 100, "{}", out.len());
        // RFC 7692 §7.2.3.1 on the wire.
        let mut out = BytesMut::new();
        Encoder::new(&config).message(&Message::Text("Hello".into()), &mut out);
        assert_eq!(
            &out[..],
            [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
        );
    }

    #[test]
    fn control_frames_are_never_compressed() {
        let config = CodecConfig {
            deflate: Some(DeflateParams::default()),
            ..CodecConfig::default()
        };
        let mut e = Encoder::new(&config);
        let mut out = BytesMut::new();
        e.ping(b"ping", &mut out);
        e.pong(b"pong", &mut out);
        e.close(1000, "bye", &mut out);
        assert_eq!(
            server_frames(&out),
            [
                ServerFrame {
                    fin: true,
                    rsv1: false,
                    opcode: OP_PING,
                    payload: b"ping".to_vec()
                },
                ServerFrame {
                    fin: true,
                    rsv1: false,
                    opcode: OP_PONG,
                    payload: b"pong".to_vec()
                },
                ServerFrame {
                    fin: true,
                    rsv1: false,
                    opcode: OP_CLOSE,
                    payload: b"\x03\xe8bye".to_vec()
                },
            ]
        );
    }

    #[test]
    fn plain_frames_on_the_wire() {
        let mut e = Encoder::new(&CodecConfig::default());
        let mut out = BytesMut::new();
        e.message(&Message::Text("Hello".into()), &mut out);
        // RFC 6455 §5.7: a single-frame unmasked text message.
        assert_eq!(&out[..], [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        out.clear();
        e.message(&Message::Binary(Bytes::from(vec![0u8; 256])), &mut out);
        assert_eq!(&out[..4], [0x82, 0x7e, 0x01, 0x00]);
        out.clear();
        e.message(&Message::Binary(Bytes::from(vec![0u8; 65536])), &mut out);
        assert_eq!(&out[..10], [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(out.len(), 65536 + 10);
    }

    #[test]
    fn close_frames() {
        let mut e = Encoder::new(&CodecConfig::default());
        let close = |e: &mut Encoder, code, reason: &str| {
            let mut out = BytesMut::new();
            e.close(code, reason, &mut out);
            let frames = server_frames(&out);
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].opcode, OP_CLOSE);
            frames[0].payload.clone()
        };
        assert_eq!(close(&mut e, 1000, ""), [0x03, 0xe8]);
        assert_eq!(close(&mut e, 4000, "why"), b"\x0f\xa0why");
        // Codes that must never be sent: an empty payload.
        for code in [1005, 1006, 1015, 1004, 0, 999, 5000] {
            assert_eq!(close(&mut e, code, "reason"), b"", "{code}");
        }
        // Registered and app codes go out as they are.
        for code in [1012, 1013, 1014, 3000, 4999] {
            assert_eq!(close(&mut e, code, ""), code.to_be_bytes(), "{code}");
        }
        // A long reason is cut to 123 bytes, on a character boundary.
        let long = "x".repeat(200);
        assert_eq!(close(&mut e, 1000, &long).len(), 125);
        let euros = "€".repeat(50); // 3 bytes each: 41 fit in 123
        let payload = close(&mut e, 1001, &euros);
        assert_eq!(payload.len(), 2 + 123);
        assert_eq!(std::str::from_utf8(&payload[2..]).unwrap(), "€".repeat(41));
        let mixed = format!("{}ü", "x".repeat(122)); // ü would end at byte 124
        let payload = close(&mut e, 1000, &mixed);
        assert_eq!(&payload[2..], "x".repeat(122).as_bytes());
        // What the encoder sends, the decoder accepts.
        let mut out = BytesMut::new();
        e.close(1001, &euros, &mut out);
        let f = &server_frames(&out)[0];
        let (events, error) = decode_all(
            &mut Decoder::new(&CodecConfig::default()),
            &frame(true, false, OP_CLOSE, &f.payload),
            1,
        );
        assert_eq!(error, None);
        assert_eq!(
            events,
            [Incoming::Close {
                code: Some(1001),
                reason: "€".repeat(41)
            }]
        );
    }

    #[test]
    fn control_payloads_are_cut_to_125() {
        let mut e = Encoder::new(&CodecConfig::default());
        let mut out = BytesMut::new();
        e.ping(&[1u8; 200], &mut out);
        e.pong(&[2u8; 125], &mut out);
        let frames = server_frames(&out);
        assert_eq!(frames[0].payload, [1u8; 125]);
        assert_eq!(frames[1].payload, [2u8; 125]);
    }

    #[test]
    fn large_scratch_is_released() {
        let config = CodecConfig {
            deflate: Some(DeflateParams::default()),
            ..CodecConfig::default()
        };
        let mut e = Encoder::new(&config);
        let mut out = BytesMut::new();
        let noise: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        e.message(&Message::Binary(Bytes::from(noise)), &mut out);
        assert!(e.scratch.capacity() <= KEEP_SCRATCH);
    }
}
