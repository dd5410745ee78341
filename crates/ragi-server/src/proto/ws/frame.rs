//! Frame-level pieces of RFC 6455: opcodes (§5.2), masking (§5.3), the server's frame header
//! and close codes (§7.4).

use bytes::{BufMut, BytesMut};

/// Continuation frame.
pub(crate) const OP_CONTINUATION: u8 = 0x0;
/// First frame of a text message.
pub(crate) const OP_TEXT: u8 = 0x1;
/// First frame of a binary message.
pub(crate) const OP_BINARY: u8 = 0x2;
/// Close.
pub(crate) const OP_CLOSE: u8 = 0x8;
/// Ping.
pub(crate) const OP_PING: u8 = 0x9;
/// Pong.
pub(crate) const OP_PONG: u8 = 0xA;

/// Largest payload of a control frame (§5.5).
pub(crate) const MAX_CONTROL_PAYLOAD: usize = 125;

/// Whether `opcode` is one RFC 6455 defines; the others are reserved and fail the connection.
pub(crate) fn known_opcode(opcode: u8) -> bool {
    matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    )
}

/// Whether a peer may put `code` in a close frame (RFC 6455 §7.4, as the Autobahn testsuite
/// reads it): 1000–1003 and 1007–1011 are defined, 3000–4999 belong to libraries and apps.
/// 1004 is reserved, 1005/1006/1015 are only for reporting and must never be sent, and
/// 1012–2999 and everything outside 1000–4999 are unassigned.
pub(crate) fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// XORs `data` with the masking key, `offset` being the position of `data[0]` in the frame's
/// payload (only its remainder modulo 4 matters). Masking is its own inverse.
///
/// Works on 8-byte words (the compiler vectorises the loop); only the last 0–7 bytes go one by
/// one.
pub(crate) fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = mask;
    key.rotate_left(offset & 3);
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Appends a server frame header: FIN set, RSV1 as given, no mask, the shortest length form.
pub(crate) fn put_header(out: &mut BytesMut, opcode: u8, rsv1: bool, len: usize) {
    let b0 = 0x80 | if rsv1 { 0x40 } else { 0 } | opcode;
    if len < 126 {
        out.reserve(2 + len);
        out.put_u8(b0);
        out.put_u8(len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.reserve(4 + len);
        out.put_u8(b0);
        out.put_u8(126);
        out.put_u16(len as u16);
    } else {
        out.reserve(10 + len);
        out.put_u8(b0);
        out.put_u8(127);
        out.put_u64(len as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_bytewise(data: &mut [u8], mask: [u8; 4], offset: usize) {
        for (i, b) in data.iter_mut().enumerate() {
            *b ^= mask[(offset + i) % 4];
        }
    }

    #[test]
    fn mask_matches_the_bytewise_definition_at_every_offset_and_length() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..=255u8).cycle().take(67).collect();
        for offset in 0..8 {
            for len in 0..data.len() {
                let mut fast = data[..len].to_vec();
                let mut slow = data[..len].to_vec();
                apply_mask(&mut fast, mask, offset);
                mask_bytewise(&mut slow, mask, offset);
                assert_eq!(fast, slow, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_at_once() {
        let mask = [1, 2, 3, 4];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, mask, 0);
        let mut pieces = data.clone();
        let mut at = 0;
        for step in [1, 3, 7, 2, 13, 8, 66] {
            let end = (at + step).min(pieces.len());
            apply_mask(&mut pieces[at..end], mask, at);
            at = end;
        }
        assert_eq!(whole, pieces);
    }

    #[test]
    fn close_codes_per_rfc_6455_section_7_4() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(valid_close_code(code), "{code}");
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!valid_close_code(code), "{code}");
        }
    }

    #[test]
    fn header_uses_the_shortest_length_form() {
        let mut out = BytesMut::new();
        put_header(&mut out, OP_TEXT, false, 125);
        assert_eq!(&out[..], [0x81, 125]);
        out.clear();
        put_header(&mut out, OP_BINARY, true, 126);
        assert_eq!(&out[..], [0xc2, 126, 0, 126]);
        out.clear();
        put_header(&mut out, OP_BINARY, false, 65535);
        assert_eq!(&out[..], [0x82, 126, 0xff, 0xff]);
        out.clear();
        put_header(&mut out, OP_BINARY, false, 65536);
        assert_eq!(&out[..], [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn opcodes() {
        for op in 0..16u8 {
            assert_eq!(
                known_opcode(op),
                matches!(op, 0 | 1 | 2 | 8 | 9 | 10),
                "{op}"
            );
        }
    }
}
