//! `application/x-www-form-urlencoded` bodies: a strict check, then serde.
//!
//! Every byte string is a syntactically valid urlencoded form (WHATWG: a `%` that does not
//! start an escape is a literal `%`), so the only malformation is text that is not UTF-8 once
//! decoded, which [`form_urlencoded`] would replace with U+FFFD without a word; [`parse`]
//! refuses it instead (400). A well-formed form that does not fit the target type is 422.

use serde::de::DeserializeOwned;

use crate::Error;

/// Why a form body is malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormError {
    /// Which pair (0-based) was not UTF-8 after decoding.
    pub pair: usize,
}

impl std::fmt::Display for FormError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "form field {} is not UTF-8 once decoded", self.pair + 1)
    }
}

/// Decodes one name or value: `+` is a space, `%XX` a byte, any other `%` itself.
fn decode(raw: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < raw.len() => match (hex(raw[i + 1]), hex(raw[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// The decoded `(name, value)` pairs of a urlencoded body, in order; an error when one is not
/// UTF-8 once decoded. Empty pieces (`a=1&&b=2`) are skipped; a piece without `=` has an
/// empty value.
pub fn parse(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    body.split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty())
        .enumerate()
        .map(|(pair, piece)| {
            let (name, value) = match piece.iter().position(|&b| b == b'=') {
                Some(eq) => (&piece[..eq], &piece[eq + 1..]),
                None => (piece, &b""[..]),
            };
            let text = |raw| String::from_utf8(decode(raw)).map_err(|_| FormError { pair });
            Ok((text(name)?, text(value)?))
        })
        .collect()
}

/// A urlencoded body deserialised into `T`: 400 when it is not UTF-8 once decoded, 422 when
/// it does not fit `T`.
pub(crate) fn from_bytes<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    parse(body).map_err(|e| Error::malformed_body(format!("malformed form body: {e}")))?;
    serde_urlencoded::from_bytes(body)
        .map_err(|e| Error::unprocessable(format!("invalid form body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_form_urlencoded() {
        let cases: &[&[u8]] = &[
            b"a=1&b=x+y&c=%41%42&d",
            b"%=%&%4=%4g&%%41",
            b"&&a==b&",
            b"k=%E2%82%AC",
            b"x=%",
            b"x=%4",
            b"",
        ];
        for case in cases {
            let ours = parse(case).unwrap();
            let theirs: Vec<(String, String)> = form_urlencoded::parse(case)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(case));
        }
    }

    #[test]
    fn random_bodies_agree_with_form_urlencoded_when_utf8() {
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        let mut rand = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let alphabet = b"ab=&+%%0123456789ABCDEFcf\xC3\xA9\xFF ";
        for _ in 0..5000 {
            let body: Vec<u8> = (0..rand(24))
                .map(|_| alphabet[rand(alphabet.len())])
                .collect();
            let theirs: Vec<(String, String)> = form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            match parse(&body) {
                Ok(ours) => assert_eq!(ours, theirs, "{body:?}"),
                // Refused only when their decoding had to replace something.
                Err(_) => assert!(
                    theirs
                        .iter()
                        .any(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}')),
                    "{body:?}"
                ),
            }
        }
    }

    #[test]
    fn refuses_what_is_not_utf8_once_decoded() {
        assert_eq!(parse(b"a=1&b=%FF").unwrap_err(), FormError { pair: 1 });
        assert_eq!(parse(b"%C3=1").unwrap_err(), FormError { pair: 0 });
        assert_eq!(parse(b"a=\xFF").unwrap_err(), FormError { pair: 0 });
    }

    #[test]
    fn statuses() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct F {
            n: u32,
        }
        assert_eq!(from_bytes::<F>(b"n=7").unwrap().n, 7);
        assert_eq!(from_bytes::<F>(b"n=x").unwrap_err().status(), 422);
        assert_eq!(from_bytes::<F>(b"m=1").unwrap_err().status(), 422);
        assert_eq!(from_bytes::<F>(b"n=%FF").unwrap_err().status(), 400);
    }
}
