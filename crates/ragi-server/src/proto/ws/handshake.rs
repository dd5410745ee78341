//! The opening handshake's key exchange (RFC 6455 §4.2): checking `sec-websocket-key` and
//! computing `sec-websocket-accept`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID RFC 6455 §1.3 appends to the client's key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `sec-websocket-accept` for a `sec-websocket-key`: base64(SHA-1(key + GUID)).
pub(crate) fn accept_key(sec_websocket_key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(sec_websocket_key);
    sha1.update(GUID);
    STANDARD.encode(sha1.finalize())
}

/// Whether `key` is a valid `sec-websocket-key`: the base64 of 16 bytes (24 characters,
/// padded, canonical).
pub(crate) fn valid_key(key: &[u8]) -> bool {
    // Room for base64's conservative output estimate (18 bytes for 24 characters).
    let mut decoded = [0u8; 18];
    key.len() == 24 && matches!(STANDARD.decode_slice(key, &mut decoded), Ok(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6455_example() {
        // §1.3 and §4.2.2.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
    }

    #[test]
    fn keys() {
        assert!(valid_key(b"AAAAAAAAAAAAAAAAAAAAAA=="));
        assert!(valid_key(b"/////////////////////w=="));
        // Wrong lengths.
        assert!(!valid_key(b""));
        assert!(!valid_key(b"AAAAAAAAAAAAAAAAAAAAAA="));
        assert!(!valid_key(b"AAAAAAAAAAAAAAAAAAAAAA==="));
        // 15 and 17 bytes.
        assert!(!valid_key(b"AAAAAAAAAAAAAAAAAAAA"));
        assert!(!valid_key(b"AAAAAAAAAAAAAAAAAAAAAAA="));
        // Not base64, missing padding, non-canonical trailing bits, whitespace.
        assert!(!valid_key(b"AAAAAAAAAAAAAAAAAAAAA!=="));
        assert!(!valid_key(b"AAAAAAAAAAAAAAAAAAAAAAAA"));
        assert!(!valid_key(b"AAAAAAAAAAAAAAAAAAAAAB=="));
        assert!(!valid_key(b" AAAAAAAAAAAAAAAAAAAAA=="));
    }
}
