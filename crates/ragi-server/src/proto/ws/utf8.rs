//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! A text message may be split anywhere — across fragments, across TCP reads, across inflate
//! output — and a split may fall inside a code point. [`Utf8Validator`] carries the 1–3 bytes
//! of such an unfinished code point from one piece to the next and reports an error as soon as
//! a byte makes the text invalid, however much of the message is still to come (what the
//! Autobahn testsuite grades "fail fast").
//!
//! The work is done by [`std::str::from_utf8`], which checks every byte as it goes: when the
//! input ends inside a code point whose bytes so far are a valid prefix, its error says so
//! (`error_len() == None`); any byte that cannot continue valid text (an overlong lead, a
//! surrogate, a code point past U+10FFFF, a stray continuation byte) is an error with
//! `error_len() == Some(_)` right there. So `E0 80` fails at once, `E0 A0` waits for its third
//! byte.

/// The bytes seen so far can never become valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidUtf8;

/// Validates text fed in pieces; see the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct Utf8Validator {
    /// The unfinished code point at the end of the input so far (`len` bytes of it).
    partial: [u8; 4],
    len: u8,
}

/// Number of bytes of the code point that starts with `lead` (a valid lead byte).
fn width(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

impl Utf8Validator {
    /// Validates the next piece of the text.
    pub(crate) fn feed(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.len > 0 {
            let have = usize::from(self.len);
            let take = (width(self.partial[0]) - have).min(input.len());
            self.partial[have..have + take].copy_from_slice(&input[..take]);
            match std::str::from_utf8(&self.partial[..have + take]) {
                Ok(_) => {
                    self.len = 0;
                    input = &input[take..];
                }
                Err(e) if e.error_len().is_none() => {
                    // Still unfinished: `take` was all of the input.
                    self.len = (have + take) as u8;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
        }
        match std::str::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let rest = &input[e.valid_up_to()..];
                self.partial[..rest.len()].copy_from_slice(rest);
                self.len = rest.len() as u8;
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Whether the text so far ends on a code point boundary (a message may end here).
    #[cfg(test)]
    pub(crate) fn is_complete(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` one byte at a time; returns how many bytes were accepted before the error.
    fn fail_position(bytes: &[u8]) -> Option<usize> {
        let mut v = Utf8Validator::default();
        bytes.iter().position(|b| v.feed(&[*b]).is_err())
    }

    #[test]
    fn valid_text_in_every_split() {
        let text = "κόσμε — ascii, 😀 and \u{10FFFF} end".as_bytes();
        for split in 0..=text.len() {
            for split2 in split..=text.len() {
                let mut v = Utf8Validator::default();
                v.feed(&text[..split]).unwrap();
                v.feed(&text[split..split2]).unwrap();
                v.feed(&text[split2..]).unwrap();
                assert!(v.is_complete());
            }
        }
    }

    #[test]
    fn byte_by_byte() {
        let text = "Hello-µ@ßöäüàá-UTF-8!! 𝄞".as_bytes();
        let mut v = Utf8Validator::default();
        for b in text {
            v.feed(&[*b]).unwrap();
        }
        assert!(v.is_complete());
    }

    #[test]
    fn unfinished_code_point_is_not_complete() {
        let mut v = Utf8Validator::default();
        v.feed(&[0xF0, 0x9F, 0x98]).unwrap();
        assert!(!v.is_complete());
        v.feed(&[0x80]).unwrap();
        assert!(v.is_complete());
    }

    #[test]
    fn fails_at_the_first_impossible_byte() {
        // Autobahn 6.3.x: "κόσμε" then ED A0 80 (a surrogate): fails at A0.
        let mut bad = "κόσμε".as_bytes().to_vec();
        let at = bad.len();
        bad.extend_from_slice(&[0xED, 0xA0, 0x80, b'e', b'd', b'i', b't', b'e', b'd']);
        assert_eq!(fail_position(&bad), Some(at + 1));
        // Overlong lead bytes, invalid leads, stray continuations: the very byte.
        assert_eq!(fail_position(&[b'a', 0xC0, 0x80]), Some(1));
        assert_eq!(fail_position(&[0xF5]), Some(0));
        assert_eq!(fail_position(&[0xFF]), Some(0));
        assert_eq!(fail_position(&[b'a', 0x80]), Some(1));
        // Overlong three/four byte forms and > U+10FFFF: the second byte.
        assert_eq!(fail_position(&[0xE0, 0x80, 0x80]), Some(1));
        assert_eq!(fail_position(&[0xF0, 0x80, 0x80, 0x80]), Some(1));
        assert_eq!(fail_position(&[0xF4, 0x90, 0x80, 0x80]), Some(1));
        // A lead byte followed by ASCII: the ASCII byte.
        assert_eq!(fail_position(&[0xE2, 0x82, b'x']), Some(2));
        // Valid prefixes wait.
        assert_eq!(fail_position(&[0xE0, 0xA0]), None);
        assert_eq!(fail_position(&[0xF4, 0x8F, 0xBF]), None);
    }

    #[test]
    fn fails_when_the_carried_code_point_is_broken_by_the_next_piece() {
        let mut v = Utf8Validator::default();
        v.feed(b"ok \xE2\x82").unwrap();
        assert_eq!(v.feed(b"\x41rest"), Err(InvalidUtf8));
        let mut v = Utf8Validator::default();
        v.feed(b"\xF0").unwrap();
        v.feed(b"\x9F").unwrap();
        assert_eq!(v.feed(b"\x98\xFF"), Err(InvalidUtf8));
    }
}
