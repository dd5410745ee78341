//! The server-side frame decoder; the rules it enforces are listed in the [parent
//! module](super).

use bytes::{Buf, Bytes, BytesMut};

use super::deflate::{InflateError, Inflater};
use super::frame::{
    apply_mask, known_opcode, valid_close_code, MAX_CONTROL_PAYLOAD, OP_BINARY, OP_CLOSE,
    OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
};
use super::utf8::Utf8Validator;
use super::{CodecConfig, Incoming, ProtocolError};

/// Decodes the client's frames (which must be masked) into [`Incoming`] events.
#[derive(Debug)]
pub(crate) struct Decoder {
    max_message_size: usize,
    /// Present when permessage-deflate was negotiated.
    inflater: Option<Inflater>,
    /// The data message being assembled.
    message: Option<Assembly>,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// A close frame was decoded: later bytes are ignored.
    Closed,
    /// The connection is failed: every call returns this error.
    Failed(ProtocolError),
}

/// A data message arriving in pieces: fragmented, partially received or compressed.
#[derive(Debug)]
struct Assembly {
    text: bool,
    compressed: bool,
    /// The (inflated) message so far.
    data: Vec<u8>,
    utf8: Utf8Validator,
    /// How much of `data` the validator has seen.
    validated: usize,
    /// Whether any compressed payload byte arrived (an empty compressed message is legal).
    compressed_input: bool,
    /// The frame whose payload is being read, if its header was consumed.
    payload: Option<Payload>,
}

/// The unread rest of a data frame's payload.
#[derive(Debug)]
struct Payload {
    fin: bool,
    remaining: u64,
    mask: [u8; 4],
    /// Payload bytes read so far, modulo 4 (where the mask continues).
    offset: usize,
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    mask: [u8; 4],
    len: u64,
    /// Bytes the header takes on the wire.
    size: usize,
}

impl Decoder {
    pub(crate) fn new(config: &CodecConfig) -> Self {
        Self {
            max_message_size: config.max_message_size,
            inflater: config.deflate.as_ref().map(Inflater::new),
            message: None,
            state: State::Open,
        }
    }

    /// Consumes bytes from `buf` (may leave a partial frame in it, or consume partial payload
    /// for streaming validation) and returns the next complete event, `Ok(None)` when more
    /// bytes are needed.
    ///
    /// What stays in `buf` is untouched wire bytes: keep them and append what arrives next.
    /// Payload that was consumed has been unmasked, validated and kept (or inflated) by the
    /// decoder. After an [`Incoming::Close`] every later call empties `buf` and returns
    /// `Ok(None)`; after an error every later call returns the same error.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, ProtocolError> {
        match self.state {
            State::Open => {}
            State::Closed => {
                buf.clear();
                return Ok(None);
            }
            State::Failed(e) => return Err(e),
        }
        let result = self.next(buf);
        match &result {
            Err(e) => {
                self.state = State::Failed(*e);
                self.message = None;
            }
            Ok(Some(Incoming::Close { .. })) => {
                self.state = State::Closed;
                self.message = None;
            }
            Ok(_) => {}
        }
        result
    }

    fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, ProtocolError> {
        loop {
            if self.message.as_ref().is_some_and(|m| m.payload.is_some()) {
                match self.read_payload(buf)? {
                    Step::Event(event) => return Ok(Some(event)),
                    Step::NeedMore => return Ok(None),
                    Step::Continue => continue,
                }
            }
            let Some(header) = self.header(buf)? else {
                return Ok(None);
            };
            if header.opcode & 0x8 != 0 {
                return self.control(header, buf);
            }
            if let Some(event) = self.start_data_frame(header, buf)? {
                return Ok(Some(event));
            }
            if self.message.as_ref().is_none_or(|m| m.payload.is_none()) {
                // Waiting for the rest of a single-frame binary message.
                return Ok(None);
            }
        }
    }

    /// Parses and checks the header at the front of `buf` without consuming it. Each rule is
    /// checked as soon as the bytes it needs are there.
    fn header(&self, buf: &[u8]) -> Result<Option<Header>, ProtocolError> {
        let (b0, b1) = match buf {
            [b0, b1, ..] => (*b0, *b1),
            _ => return Ok(None),
        };
        let fin = b0 & 0x80 != 0;
        let rsv1 = b0 & 0x40 != 0;
        let opcode = b0 & 0x0f;
        let len7 = b1 & 0x7f;
        if b0 & 0x30 != 0 {
            return Err(ProtocolError::protocol("reserved bits set"));
        }
        if !known_opcode(opcode) {
            return Err(ProtocolError::protocol("reserved opcode"));
        }
        if rsv1 && (self.inflater.is_none() || !matches!(opcode, OP_TEXT | OP_BINARY)) {
            return Err(ProtocolError::protocol("reserved bit RSV1 set"));
        }
        if b1 & 0x80 == 0 {
            return Err(ProtocolError::protocol("unmasked client frame"));
        }
        if opcode & 0x8 != 0 {
            if !fin {
                return Err(ProtocolError::protocol("fragmented control frame"));
            }
            if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::protocol("control frame too long"));
            }
        } else if opcode == OP_CONTINUATION {
            if self.message.is_none() {
                return Err(ProtocolError::protocol("continuation without a message"));
            }
        } else if self.message.is_some() {
            return Err(ProtocolError::protocol(
                "new message inside a fragmented one",
            ));
        }
        let (len, at) = match len7 {
            126 => match buf.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
                None => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(b) => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(b);
                    let len = u64::from_be_bytes(be);
                    if len >> 63 != 0 {
                        return Err(ProtocolError::protocol("frame length with the top bit set"));
                    }
                    (len, 10)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        // Uncompressed data: the message size is known from the headers.
        if opcode & 0x8 == 0 {
            let compressed = match &self.message {
                Some(m) => m.compressed,
                None => rsv1,
            };
            let so_far = self.message.as_ref().map_or(0, |m| m.data.len()) as u64;
            if !compressed && so_far.saturating_add(len) > self.max_message_size as u64 {
                return Err(ProtocolError::too_big());
            }
        }
        let Some(key) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        Ok(Some(Header {
            fin,
            rsv1,
            opcode,
            mask: [key[0], key[1], key[2], key[3]],
            len,
            size: at + 4,
        }))
    }

    /// A control frame: waits for all of it (at most 139 bytes), then decodes it.
    fn control(
        &mut self,
        header: Header,
        buf: &mut BytesMut,
    ) -> Result<Option<Incoming>, ProtocolError> {
        let len = header.len as usize;
        if buf.len() < header.size + len {
            return Ok(None);
        }
        buf.advance(header.size);
        let mut payload = buf.split_to(len);
        apply_mask(&mut payload, header.mask, 0);
        Ok(Some(match header.opcode {
            OP_PING => Incoming::Ping(payload.freeze()),
            OP_PONG => Incoming::Pong(payload.freeze()),
            OP_CLOSE => close(&payload)?,
            _ => unreachable!("control opcodes are 8, 9 and 10"),
        }))
    }

    /// Starts a data frame whose header is at the front of `buf`. Returns the message when the
    /// frame is a whole uncompressed message already in `buf`; otherwise either consumes the
    /// header and sets up the payload for streaming, or (a single-frame binary message not
    /// all here yet) leaves everything in `buf` and waits.
    fn start_data_frame(
        &mut self,
        header: Header,
        buf: &mut BytesMut,
    ) -> Result<Option<Incoming>, ProtocolError> {
        let whole_message = header.fin && header.opcode != OP_CONTINUATION && !header.rsv1;
        if whole_message {
            // The header check bounded `len` by the message limit.
            let total = header.size + header.len as usize;
            if buf.len() >= total {
                buf.advance(header.size);
                let len = header.len as usize;
                apply_mask(&mut buf[..len], header.mask, 0);
                let message = if header.opcode == OP_TEXT {
                    let text = std::str::from_utf8(&buf[..len])
                        .map_err(|_| ProtocolError::invalid_data("text is not UTF-8"))?;
                    let text = String::from(text);
                    buf.advance(len);
                    ragi::Message::Text(text)
                } else {
                    ragi::Message::Binary(buf.split_to(len).freeze())
                };
                return Ok(Some(Incoming::Message(message)));
            }
            if header.opcode == OP_BINARY {
                // Zero-copy: wait for the whole frame. Grow the buffer by doubling (never by
                // the declared length: a header alone must not make us allocate 16 MiB).
                let missing = total - buf.len();
                buf.reserve(missing.min(buf.len().max(4096)));
                return Ok(None);
            }
        }
        buf.advance(header.size);
        if header.opcode != OP_CONTINUATION {
            self.message = Some(Assembly {
                text: header.opcode == OP_TEXT,
                compressed: header.rsv1,
                data: Vec::new(),
                utf8: Utf8Validator::default(),
                validated: 0,
                compressed_input: false,
                payload: None,
            });
        }
        if let Some(message) = &mut self.message {
            message.payload = Some(Payload {
                fin: header.fin,
                remaining: header.len,
                mask: header.mask,
                offset: 0,
            });
        }
        Ok(None)
    }

    /// Reads what has arrived of the current data frame's payload: unmasks it in place,
    /// inflates or copies it onto the message, validates new text.
    fn read_payload(&mut self, buf: &mut BytesMut) -> Result<Step, ProtocolError> {
        let max = self.max_message_size;
        let Some(message) = &mut self.message else {
            return Ok(Step::Continue);
        };
        let Some(payload) = &mut message.payload else {
            return Ok(Step::Continue);
        };
        let n = payload.remaining.min(buf.len() as u64) as usize;
        if n == 0 && payload.remaining > 0 {
            return Ok(Step::NeedMore);
        }
        let chunk = &mut buf[..n];
        apply_mask(chunk, payload.mask, payload.offset);
        payload.offset = (payload.offset + n) & 3;
        payload.remaining -= n as u64;
        let frame_done = payload.remaining == 0;
        let message_done = frame_done && payload.fin;
        if message.compressed {
            message.compressed_input |= n > 0;
            if let Some(inflater) = &mut self.inflater {
                inflater
                    .inflate(chunk, &mut message.data, max)
                    .map_err(|e| message.inflate_failed(e))?;
            }
        } else {
            // The header check made sure this fits the limit.
            message.data.extend_from_slice(chunk);
        }
        buf.advance(n);
        if !message_done {
            // Fail fast; the last piece is checked with the whole text below.
            message.validate()?;
        }
        if frame_done {
            message.payload = None;
        }
        if !message_done {
            return Ok(if frame_done {
                Step::Continue
            } else {
                Step::NeedMore
            });
        }
        let Some(mut message) = self.message.take() else {
            return Ok(Step::Continue);
        };
        if message.compressed {
            if let Some(inflater) = &mut self.inflater {
                inflater
                    .finish(&mut message.data, max, !message.compressed_input)
                    .map_err(|e| message.inflate_failed(e))?;
            }
        }
        let message = if message.text {
            let text = String::from_utf8(message.data)
                .map_err(|_| ProtocolError::invalid_data("text is not UTF-8"))?;
            ragi::Message::Text(text)
        } else {
            ragi::Message::Binary(Bytes::from(message.data))
        };
        Ok(Step::Event(Incoming::Message(message)))
    }

    /// Whether a data message is being assembled (tests).
    #[cfg(test)]
    pub(crate) fn in_message(&self) -> bool {
        self.message.is_some()
    }

    /// The inflater (tests: how far a zip bomb got).
    #[cfg(test)]
    pub(crate) fn inflater(&self) -> Option<&Inflater> {
        self.inflater.as_ref()
    }
}

impl Assembly {
    /// Validates the text that arrived since the last call (nothing for binary).
    fn validate(&mut self) -> Result<(), ProtocolError> {
        if self.text {
            self.utf8
                .feed(&self.data[self.validated..])
                .map_err(|_| ProtocolError::invalid_data("text is not UTF-8"))?;
        }
        self.validated = self.data.len();
        Ok(())
    }

    /// The connection's error for a failed inflate. A text message that went past the limit
    /// reports invalid text first if what was inflated already is: so the error does not
    /// depend on how the payload was split across reads.
    fn inflate_failed(&mut self, e: InflateError) -> ProtocolError {
        if e == InflateError::TooBig {
            if let Err(invalid) = self.validate() {
                return invalid;
            }
        }
        inflate_error(e)
    }
}

/// What reading payload produced.
enum Step {
    Event(Incoming),
    NeedMore,
    Continue,
}

fn inflate_error(e: InflateError) -> ProtocolError {
    match e {
        InflateError::TooBig => ProtocolError::too_big(),
        InflateError::Corrupt => ProtocolError::invalid_data("invalid compressed data"),
    }
}

/// Decodes a close frame's payload (unmasked).
fn close(payload: &[u8]) -> Result<Incoming, ProtocolError> {
    match payload {
        [] => Ok(Incoming::Close {
            code: None,
            reason: String::new(),
        }),
        [_] => Err(ProtocolError::protocol("close payload of one byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !valid_close_code(code) {
                return Err(ProtocolError::protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(reason)
                .map_err(|_| ProtocolError::invalid_data("close reason is not UTF-8"))?;
            Ok(Incoming::Close {
                code: Some(code),
                reason: reason.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ws::deflate::DeflateParams;
    use crate::proto::ws::frame::OP_CONTINUATION as CONT;
    use crate::proto::ws::test_client::{decode_all, decode_every_way, frame, raw, KEY};
    use ragi::Message;

    fn plain() -> CodecConfig {
        CodecConfig::default()
    }

    fn deflate() -> CodecConfig {
        CodecConfig {
            deflate: Some(DeflateParams::default()),
            ..CodecConfig::default()
        }
    }

    fn text(s: &str) -> Incoming {
        Incoming::Message(Message::Text(s.to_owned()))
    }

    fn binary(b: &[u8]) -> Incoming {
        Incoming::Message(Message::Binary(Bytes::copy_from_slice(b)))
    }

    /// The error `input` ends with (checked at every split).
    fn error(config: &CodecConfig, input: &[u8]) -> u16 {
        let (_, e) = decode_every_way(config, input);
        e.expect("an error").code
    }

    fn events(config: &CodecConfig, input: &[u8]) -> Vec<Incoming> {
        let (events, e) = decode_every_way(config, input);
        assert_eq!(e, None);
        events
    }

    fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
        frames.concat()
    }

    #[test]
    fn rfc_6455_section_5_7_examples() {
        // A single-frame masked text message.
        let hello = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(events(&plain(), &hello), [text("Hello")]);
        assert_eq!(frame(true, false, OP_TEXT, b"Hello"), hello);
        // A masked pong.
        let pong = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(
            events(&plain(), &pong),
            [Incoming::Pong(Bytes::from_static(b"Hello"))]
        );
        // The unmasked examples are server frames: a client must not send them.
        for unmasked in [
            &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f][..],
            &[0x01, 0x03, 0x48, 0x65, 0x6c],
            &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
        ] {
            assert_eq!(error(&plain(), unmasked), 1002);
        }
        // The fragmented "Hel" + "lo", masked.
        let fragmented = cat(&[
            frame(false, false, OP_TEXT, b"Hel"),
            frame(true, false, CONT, b"lo"),
        ]);
        assert_eq!(events(&plain(), &fragmented), [text("Hello")]);
        // 256 bytes (16-bit length) and 64 KiB (64-bit length) binary messages.
        for len in [256, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let f = frame(true, false, OP_BINARY, &payload);
            assert_eq!(f[1], if len == 256 { 0xfe } else { 0xff });
            let (got, e) = decode_all(&mut Decoder::new(&plain()), &f, 1000);
            assert_eq!((got, e), (vec![binary(&payload)], None));
        }
    }

    #[test]
    fn empty_messages_and_frames() {
        let input = cat(&[
            frame(true, false, OP_TEXT, b""),
            frame(true, false, OP_BINARY, b""),
            frame(false, false, OP_TEXT, b""),
            frame(false, false, CONT, b""),
            frame(true, false, CONT, b""),
            frame(true, false, OP_PING, b""),
        ]);
        assert_eq!(
            events(&plain(), &input),
            [
                text(""),
                binary(b""),
                text(""),
                Incoming::Ping(Bytes::new())
            ]
        );
    }

    #[test]
    fn fragments_with_control_frames_between() {
        let input = cat(&[
            frame(false, false, OP_TEXT, b"frag"),
            frame(true, false, OP_PING, b"p1"),
            frame(false, false, CONT, "mént".as_bytes()),
            frame(true, false, OP_PONG, b"p2"),
            frame(true, false, OP_PING, b""),
            frame(true, false, CONT, b"s"),
            frame(false, false, OP_BINARY, &[1, 2]),
            frame(true, false, OP_PING, b"p3"),
            frame(true, false, CONT, &[3]),
            frame(true, false, OP_CLOSE, &[0x03, 0xe8, b'b', b'y', b'e']),
        ]);
        assert_eq!(
            events(&plain(), &input),
            [
                Incoming::Ping(Bytes::from_static(b"p1")),
                Incoming::Pong(Bytes::from_static(b"p2")),
                Incoming::Ping(Bytes::new()),
                text("fragménts"),
                Incoming::Ping(Bytes::from_static(b"p3")),
                binary(&[1, 2, 3]),
                Incoming::Close {
                    code: Some(1000),
                    reason: "bye".into()
                },
            ]
        );
    }

    #[test]
    fn a_code_point_split_across_fragments() {
        let euro = "€".as_bytes();
        let input = cat(&[
            frame(false, false, OP_TEXT, &euro[..1]),
            frame(false, false, CONT, &euro[1..2]),
            frame(true, false, CONT, &euro[2..]),
        ]);
        assert_eq!(events(&plain(), &input), [text("€")]);
        // Ending the message inside the code point is invalid.
        let input = cat(&[
            frame(false, false, OP_TEXT, &euro[..1]),
            frame(true, false, CONT, &euro[1..2]),
        ]);
        assert_eq!(error(&plain(), &input), 1007);
    }

    #[test]
    fn reserved_bits() {
        for b0 in [0x81 | 0x40, 0x81 | 0x20, 0x81 | 0x10, 0x82 | 0x70] {
            assert_eq!(error(&plain(), &raw(b0, b"x")), 1002, "{b0:#x}");
        }
        // With deflate, RSV2/RSV3 are still reserved, RSV1 is only for a message's first frame.
        assert_eq!(error(&deflate(), &raw(0x81 | 0x20, b"x")), 1002);
        assert_eq!(error(&deflate(), &raw(0x81 | 0x10, b"x")), 1002);
        let rsv1_continuation = cat(&[
            frame(false, true, OP_TEXT, &[0xf2, 0x48]),
            frame(true, true, CONT, &[0xcd, 0xc9, 0xc9, 0x07, 0x00]),
        ]);
        assert_eq!(error(&deflate(), &rsv1_continuation), 1002);
        for op in [OP_PING, OP_PONG, OP_CLOSE] {
            assert_eq!(error(&deflate(), &frame(true, true, op, b"")), 1002);
        }
    }

    #[test]
    fn reserved_opcodes() {
        for op in [3, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
            assert_eq!(error(&plain(), &frame(true, false, op, b"")), 1002, "{op}");
            assert_eq!(
                error(&plain(), &frame(true, false, op, b"payload")),
                1002,
                "{op}"
            );
        }
    }

    #[test]
    fn errors_come_from_the_first_two_bytes() {
        let mut d = Decoder::new(&plain());
        // Unmasked, reserved opcode, control frame claiming a 16-bit length: no more bytes
        // needed to know.
        for two in [[0x81, 0x05], [0x83, 0x80], [0x89, 0xfe], [0x09, 0x80]] {
            let mut d2 = Decoder::new(&plain());
            assert_eq!(
                d2.decode(&mut BytesMut::from(&two[..])).unwrap_err().code,
                1002
            );
        }
        assert_eq!(d.decode(&mut BytesMut::from(&[0x81][..])), Ok(None));
    }

    #[test]
    fn control_frames() {
        // 125 bytes is the most a control frame carries.
        let max = [b'p'; 125];
        assert_eq!(
            events(&plain(), &frame(true, false, OP_PING, &max)),
            [Incoming::Ping(Bytes::copy_from_slice(&max))]
        );
        for op in [OP_PING, OP_PONG, OP_CLOSE] {
            assert_eq!(error(&plain(), &frame(true, false, op, &[b'p'; 126])), 1002);
            // Fragmented.
            assert_eq!(error(&plain(), &frame(false, false, op, b"")), 1002);
        }
    }

    #[test]
    fn continuation_and_fragmentation_order() {
        // Continuation without a message.
        assert_eq!(error(&plain(), &frame(true, false, CONT, b"x")), 1002);
        assert_eq!(error(&plain(), &frame(false, false, CONT, b"x")), 1002);
        // A message after a complete one, then a continuation.
        let input = cat(&[
            frame(true, false, OP_TEXT, b"a"),
            frame(true, false, CONT, b"b"),
        ]);
        let (got, e) = decode_every_way(&plain(), &input);
        assert_eq!((got, e.map(|e| e.code)), (vec![text("a")], Some(1002)));
        // A new data frame while a fragmented message is open.
        for op in [OP_TEXT, OP_BINARY] {
            let input = cat(&[
                frame(false, false, OP_TEXT, b"a"),
                frame(true, false, op, b"b"),
            ]);
            assert_eq!(error(&plain(), &input), 1002);
        }
    }

    #[test]
    fn length_with_the_top_bit_set() {
        let mut f = vec![0x82, 0xff];
        f.extend_from_slice(&(1u64 << 63).to_be_bytes());
        f.extend_from_slice(&KEY);
        assert_eq!(error(&plain(), &f), 1002);
        // Without the top bit but huge: too big.
        f[2] = 0x7f;
        assert_eq!(error(&plain(), &f), 1009);
    }

    #[test]
    fn non_minimal_lengths_are_accepted() {
        let mut f = vec![0x82, 0x80 | 126, 0, 3];
        f.extend_from_slice(&KEY);
        let mut payload = *b"abc";
        apply_mask(&mut payload, KEY, 0);
        f.extend_from_slice(&payload);
        assert_eq!(events(&plain(), &f), [binary(b"abc")]);
    }

    #[test]
    fn close_frames() {
        let close = |payload: &[u8]| frame(true, false, OP_CLOSE, payload);
        assert_eq!(
            events(&plain(), &close(b"")),
            [Incoming::Close {
                code: None,
                reason: String::new()
            }]
        );
        assert_eq!(error(&plain(), &close(&[0x03])), 1002);
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            let mut p = code.to_be_bytes().to_vec();
            p.extend_from_slice("fine ✓".as_bytes());
            assert_eq!(
                events(&plain(), &close(&p)),
                [Incoming::Close {
                    code: Some(code),
                    reason: "fine ✓".into()
                }]
            );
        }
        for code in [
            0u16, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000,
            65535,
        ] {
            assert_eq!(error(&plain(), &close(&code.to_be_bytes())), 1002, "{code}");
        }
        assert_eq!(
            error(
                &plain(),
                &close(&[
                    0x03, 0xe8, 0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5,
                    0xed, 0xa0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64
                ])
            ),
            1007
        );
    }

    #[test]
    fn nothing_after_close_and_errors_stick() {
        let mut d = Decoder::new(&plain());
        let mut buf = BytesMut::from(
            &cat(&[
                frame(true, false, OP_CLOSE, b""),
                frame(true, false, OP_TEXT, b"late"),
            ])[..],
        );
        assert!(matches!(
            d.decode(&mut buf),
            Ok(Some(Incoming::Close { .. }))
        ));
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(buf.is_empty());

        let mut d = Decoder::new(&plain());
        let mut buf = BytesMut::from(&raw(0x83, b"")[..]);
        let e = d.decode(&mut buf).unwrap_err();
        buf.extend_from_slice(&frame(true, false, OP_TEXT, b"ok"));
        assert_eq!(d.decode(&mut buf), Err(e));
    }

    #[test]
    fn invalid_utf8_text() {
        assert_eq!(
            error(&plain(), &frame(true, false, OP_TEXT, &[0xce, 0xba, 0xff])),
            1007
        );
        let fragmented = cat(&[
            frame(false, false, OP_TEXT, b"ok"),
            frame(true, false, CONT, &[0xc0, 0xaf]),
        ]);
        assert_eq!(error(&plain(), &fragmented), 1007);
        // Binary is not checked.
        assert_eq!(
            events(&plain(), &frame(true, false, OP_BINARY, &[0xff])),
            [binary(&[0xff])]
        );
    }

    #[test]
    fn invalid_utf8_fails_before_the_frame_is_complete() {
        // A 1000-byte text frame whose 11th byte breaks the text: the error comes with the
        // first bytes of payload, not after the other 990.
        let mut payload = vec![b'a'; 1000];
        payload[10] = 0xff;
        let f = frame(true, false, OP_TEXT, &payload);
        let header = f.len() - 1000;
        let mut d = Decoder::new(&plain());
        let mut buf = BytesMut::from(&f[..header + 8]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(d.in_message());
        buf.extend_from_slice(&f[header + 8..header + 12]);
        assert_eq!(d.decode(&mut buf).unwrap_err().code, 1007);

        // Also when the frame is a first fragment: before the message ends.
        let mut d = Decoder::new(&plain());
        let first = frame(false, false, OP_TEXT, &[b'a', 0xed, 0xa0, 0x80]);
        assert_eq!(
            d.decode(&mut BytesMut::from(&first[..])).unwrap_err().code,
            1007
        );

        // An unfinished code point at the end of what arrived waits.
        let f = frame(true, false, OP_TEXT, "ab€".as_bytes());
        let mut d = Decoder::new(&plain());
        let mut buf = BytesMut::from(&f[..f.len() - 1]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&f[f.len() - 1..]);
        assert_eq!(d.decode(&mut buf), Ok(Some(text("ab€"))));
    }

    #[test]
    fn a_whole_binary_frame_is_split_off_without_copying() {
        let payload = vec![7u8; 3000];
        let f = frame(true, false, OP_BINARY, &payload);
        let mut d = Decoder::new(&plain());
        let mut buf = BytesMut::with_capacity(f.len());
        buf.extend_from_slice(&f[..100]);
        // Not all here: nothing consumed, the buffer made room for more.
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), 100);
        buf.extend_from_slice(&f[100..]);
        let start = buf.as_ptr() as usize;
        let Ok(Some(Incoming::Message(Message::Binary(got)))) = d.decode(&mut buf) else {
            panic!("a message");
        };
        assert_eq!(got, payload);
        assert_eq!(
            got.as_ptr() as usize,
            start + 4 + 4,
            "the payload stayed where it was"
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn the_message_size_limit_is_inclusive() {
        let config = plain();
        assert_eq!(config.max_message_size, 16 * 1024 * 1024);
        let max = config.max_message_size;
        let payload = vec![0x5a; max];
        let f = frame(true, false, OP_BINARY, &payload);
        let mut d = Decoder::new(&config);
        let mut buf = BytesMut::from(&f[..]);
        let Ok(Some(Incoming::Message(Message::Binary(got)))) = d.decode(&mut buf) else {
            panic!("a message");
        };
        assert_eq!(got.len(), max);
        // One byte more fails at the header, before any payload arrives.
        let mut header = vec![0x82, 0xff];
        header.extend_from_slice(&(max as u64 + 1).to_be_bytes());
        header.extend_from_slice(&KEY);
        let mut d = Decoder::new(&config);
        assert_eq!(
            d.decode(&mut BytesMut::from(&header[..])).unwrap_err().code,
            1009
        );
    }

    #[test]
    fn fragments_count_toward_the_limit() {
        let config = CodecConfig {
            max_message_size: 10,
            ..plain()
        };
        let ok = cat(&[
            frame(false, false, OP_TEXT, b"12345"),
            frame(true, false, CONT, b"67890"),
        ]);
        assert_eq!(events(&config, &ok), [text("1234567890")]);
        let over = cat(&[
            frame(false, false, OP_BINARY, b"12345"),
            frame(true, false, CONT, b"678901"),
        ]);
        assert_eq!(error(&config, &over), 1009);
        // Control frames do not count.
        let with_ping = cat(&[
            frame(false, false, OP_BINARY, b"12345"),
            frame(true, false, OP_PING, b"123456789012"),
            frame(true, false, CONT, b"67890"),
        ]);
        assert_eq!(events(&config, &with_ping).len(), 2);
    }

    #[test]
    fn rfc_7692_examples() {
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        // §7.2.3.1: one compressed frame; the same message again (§7.2.3.2) with the shared
        // context; and the two-fragment form.
        let input = cat(&[
            frame(true, true, OP_TEXT, &hello),
            frame(true, true, OP_TEXT, &[0xf2, 0x00, 0x11, 0x00, 0x00]),
        ]);
        assert_eq!(events(&deflate(), &input), [text("Hello"), text("Hello")]);
        let fragmented = cat(&[
            frame(false, true, OP_TEXT, &[0xf2, 0x48, 0xcd]),
            frame(true, false, CONT, &[0xc9, 0xc9, 0x07, 0x00]),
        ]);
        assert_eq!(events(&deflate(), &fragmented), [text("Hello")]);
        // §7.2.3.3: a stored (no compression) block.
        let stored = frame(
            true,
            true,
            OP_TEXT,
            &[
                0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
            ],
        );
        assert_eq!(events(&deflate(), &stored), [text("Hello")]);
        // §7.2.3.4: BFINAL set.
        let bfinal = frame(
            true,
            true,
            OP_TEXT,
            &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
        );
        assert_eq!(
            events(&deflate(), &cat(&[bfinal.clone(), bfinal])),
            [text("Hello"), text("Hello")]
        );
        // §7.2.3.5: two deflate blocks in one message.
        let two = frame(
            true,
            true,
            OP_TEXT,
            &[
                0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
            ],
        );
        assert_eq!(events(&deflate(), &two), [text("Hello")]);
        // An uncompressed message on a deflate session.
        assert_eq!(
            events(&deflate(), &frame(true, false, OP_BINARY, b"raw")),
            [binary(b"raw")]
        );
    }

    #[test]
    fn empty_compressed_messages() {
        // §7.2.3.6: an empty message is `00`; a sender that sends no byte at all is accepted
        // too, and the context goes on undisturbed.
        let input = cat(&[
            frame(true, true, OP_TEXT, &[0x00]),
            frame(true, true, OP_BINARY, &[]),
            frame(
                true,
                true,
                OP_TEXT,
                &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            ),
            frame(true, true, OP_TEXT, &[]),
            frame(true, true, OP_TEXT, &[0xf2, 0x00, 0x11, 0x00, 0x00]),
        ]);
        assert_eq!(
            events(&deflate(), &input),
            [
                text(""),
                binary(b""),
                text("Hello"),
                text(""),
                text("Hello")
            ]
        );
    }

    #[test]
    fn client_no_context_takeover_resets_the_inflater() {
        let config = CodecConfig {
            deflate: Some(DeflateParams {
                client_no_context_takeover: true,
                ..DeflateParams::default()
            }),
            ..plain()
        };
        let hello = frame(
            true,
            true,
            OP_TEXT,
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        );
        assert_eq!(
            events(&config, &cat(&[hello.clone(), hello])),
            [text("Hello"), text("Hello")]
        );
        // A back-reference into the previous message has nothing to refer to.
        let input = cat(&[
            frame(
                true,
                true,
                OP_TEXT,
                &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            ),
            frame(true, true, OP_TEXT, &[0xf2, 0x00, 0x11, 0x00, 0x00]),
        ]);
        assert_eq!(error(&config, &input), 1007);
    }

    #[test]
    fn corrupt_compressed_data() {
        assert_eq!(
            error(
                &deflate(),
                &frame(true, true, OP_BINARY, &[0xff, 0xff, 0xff])
            ),
            1007
        );
    }

    /// Client-side compression for the tests: raw deflate, sync flush, tail stripped.
    fn compress(data: &[u8]) -> Vec<u8> {
        use flate2::{Compress, Compression, FlushCompress};
        let mut c = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(data.len() + 1024);
        c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
        out.truncate(out.len() - 4);
        out
    }

    #[test]
    fn compressed_size_limit_is_inclusive() {
        let config = CodecConfig {
            max_message_size: 1000,
            ..deflate()
        };
        let ok = frame(true, true, OP_BINARY, &compress(&[b'x'; 1000]));
        assert_eq!(events(&config, &ok), [binary(&[b'x'; 1000])]);
        let over = frame(true, true, OP_BINARY, &compress(&[b'x'; 1001]));
        assert_eq!(error(&config, &over), 1009);
    }

    #[test]
    fn a_zip_bomb_stops_at_the_limit() {
        let config = CodecConfig {
            max_message_size: 64 * 1024,
            ..deflate()
        };
        let bomb = compress(&vec![0u8; 4 << 20]);
        assert!(bomb.len() < 8 * 1024, "{}", bomb.len());
        let mut d = Decoder::new(&config);
        let mut buf = BytesMut::from(&frame(true, true, OP_BINARY, &bomb)[..]);
        assert_eq!(d.decode(&mut buf).unwrap_err().code, 1009);
        let inflated = d.inflater().unwrap().total_out();
        assert!(inflated <= 64 * 1024 + 1, "inflated {inflated}");
    }

    #[test]
    fn invalid_text_beats_too_big_at_every_split() {
        // Whether the payload comes in one read (inflated past the limit at once) or byte by
        // byte (the bad byte seen first), the error is the same.
        let config = CodecConfig {
            max_message_size: 100,
            ..deflate()
        };
        let mut bad = vec![b'a'; 50];
        bad.push(0xff);
        bad.extend_from_slice(&[b'a'; 500]);
        assert_eq!(
            error(&config, &frame(true, true, OP_TEXT, &compress(&bad))),
            1007
        );
        let good = [b'a'; 501];
        assert_eq!(
            error(&config, &frame(true, true, OP_TEXT, &compress(&good))),
            1009
        );
    }

    #[test]
    fn invalid_compressed_text_fails_fast() {
        // The first fragment already inflates to invalid text: the error comes before the
        // message ends.
        let mut d = Decoder::new(&deflate());
        let mut bad = b"fine so far ".to_vec();
        bad.push(0xc0);
        bad.push(0x80);
        let first = frame(false, true, OP_TEXT, &compress(&bad));
        assert_eq!(
            d.decode(&mut BytesMut::from(&first[..])).unwrap_err().code,
            1007
        );
    }

    #[test]
    fn compressed_fragments_and_interleaved_pings() {
        let text_bytes = "compressed, fragmented, with pings between: ünïcödé ".repeat(20);
        let compressed = compress(text_bytes.as_bytes());
        let third = compressed.len() / 3;
        let input = cat(&[
            frame(false, true, OP_TEXT, &compressed[..third]),
            frame(true, false, OP_PING, b"1"),
            frame(false, false, CONT, &compressed[third..2 * third]),
            frame(true, false, OP_PONG, b"2"),
            frame(true, false, CONT, &compressed[2 * third..]),
        ]);
        assert_eq!(
            events(&deflate(), &input),
            [
                Incoming::Ping(Bytes::from_static(b"1")),
                Incoming::Pong(Bytes::from_static(b"2")),
                text(&text_bytes)
            ]
        );
    }
}
