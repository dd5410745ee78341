//! Header lists: ordered, duplicates kept, byte values.
//!
//! Request headers arrive with lower-cased names, in the order the client sent them, duplicates
//! kept. Response headers are sent in the order the app gives them. Names are compared
//! case-insensitively. The server checks every header an app sends: a name or value holding
//! CR, LF or NUL, or a name with any control character or separator, is refused with an error
//! to the app and never reaches the wire ([`validate_header`]).
//!
//! ```
//! use ragi::Headers;
//!
//! let mut h = Headers::new();
//! h.push("content-type", "text/plain");
//! h.push("set-cookie", "a=1");
//! h.push("Set-Cookie", "b=2");
//! assert_eq!(h.get("Content-Type").unwrap(), "text/plain");
//! assert_eq!(h.get_all("set-cookie").count(), 2);
//! ```

use bytes::Bytes;

/// An ordered list of `(name, value)` pairs. See the [module documentation](self).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    list: Vec<(Bytes, Bytes)>,
}

impl Headers {
    /// An empty list.
    pub const fn new() -> Self {
        Self { list: Vec::new() }
    }

    /// An empty list with room for `n` pairs.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            list: Vec::with_capacity(n),
        }
    }

    /// Appends a pair (duplicates are kept).
    pub fn push(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.list.push((name.into(), value.into()));
    }

    /// Appends a pair; builder style.
    pub fn with(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.push(name, value);
        self
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.list
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The first value of `name` as UTF-8 text, if it is.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.list
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Removes every pair named `name`; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.list.len();
        self.list
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()));
        before - self.list.len()
    }

    /// Replaces every pair named `name` by one pair.
    pub fn set(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        let name = name.into();
        self.list.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.list.push((name, value.into()));
    }

    /// The pairs, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, (Bytes, Bytes)> {
        self.list.iter()
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The pairs as a vector.
    pub fn into_vec(self) -> Vec<(Bytes, Bytes)> {
        self.list
    }

    /// The first header that [`validate_header`] refuses, with the refusal.
    pub fn validate(&self) -> Result<(), InvalidHeader> {
        self.list
            .iter()
            .try_for_each(|(n, v)| validate_header(n, v))
    }
}

impl From<Vec<(Bytes, Bytes)>> for Headers {
    fn from(list: Vec<(Bytes, Bytes)>) -> Self {
        Self { list }
    }
}

impl<N: Into<Bytes>, V: Into<Bytes>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Self {
            list: iter
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        }
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a (Bytes, Bytes);
    type IntoIter = std::slice::Iter<'a, (Bytes, Bytes)>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

impl IntoIterator for Headers {
    type Item = (Bytes, Bytes);
    type IntoIter = std::vec::IntoIter<(Bytes, Bytes)>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.into_iter()
    }
}

/// Why a header was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidHeader {
    /// The offending name, lossily decoded.
    pub name: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl std::fmt::Display for InvalidHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid header {:?}: {}", self.name, self.problem)
    }
}

impl std::error::Error for InvalidHeader {}

const fn token_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric();
        i += 1;
    }
    let extra = b"!#$%&'*+-.^_`|~";
    let mut j = 0;
    while j < extra.len() {
        t[extra[j] as usize] = true;
        j += 1;
    }
    t
}

static TOKEN: [bool; 256] = token_table();

/// Bytes a header value may hold: everything but control characters (horizontal tab is fine).
const fn value_table() -> [bool; 256] {
    let mut t = [true; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = i == b'\t' as usize;
        i += 1;
    }
    t[0x7f] = false;
    t
}

static VALUE: [bool; 256] = value_table();

/// Whether every byte of `value` may appear in a header value; eight bytes at a time, byte by
/// byte only around a control character or a tab.
fn value_ok(value: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = value.chunks_exact(8);
    for c in &mut chunks {
        let x = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // Some byte below 0x20, or some byte equal to 0x7f (no false negatives).
        let below = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let del = x ^ (ONES * 0x7f);
        let del = del.wrapping_sub(ONES) & !del & HIGH;
        if (below | del) != 0 && !all_in(&VALUE, c) {
            return false;
        }
    }
    all_in(&VALUE, chunks.remainder())
}

/// Whether `table` admits every byte of `bytes` (no early exit: no branch per byte).
fn all_in(table: &[bool; 256], bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| ok & table[b as usize])
}

/// Whether `b` may appear in a header name (an RFC 9110 `tchar`).
pub fn is_token_byte(b: u8) -> bool {
    TOKEN[b as usize]
}

/// Checks one header: the name must be a non-empty token; the value must hold no CR, LF or NUL
/// (and no other control character but horizontal tab).
pub fn validate_header(name: &[u8], value: &[u8]) -> Result<(), InvalidHeader> {
    let err = |problem| InvalidHeader {
        name: String::from_utf8_lossy(name).into_owned(),
        problem,
    };
    if name.is_empty() {
        return Err(err("empty name"));
    }
    if !all_in(&TOKEN, name) {
        return Err(err(
            "name holds a control character, separator or non-ASCII byte",
        ));
    }
    if !value_ok(value) {
        if value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(err("value holds CR, LF or NUL"));
        }
        return Err(err("value holds a control character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_refuses_injection() {
        assert!(validate_header(b"x-ok", b"fine value\twith tab").is_ok());
        assert!(validate_header(b"x-bad", b"a\r\nset-cookie: evil").is_err());
        assert!(validate_header(b"x-bad", b"a\nb").is_err());
        assert!(validate_header(b"x-bad", b"a\0b").is_err());
        assert!(validate_header(b"x\r\nbad", b"v").is_err());
        assert!(validate_header(b"x bad", b"v").is_err());
        assert!(validate_header(b"x:bad", b"v").is_err());
        assert!(validate_header(b"x\x01", b"v").is_err());
        assert!(validate_header(b"", b"v").is_err());
    }

    #[test]
    fn every_byte_value_is_judged_at_every_position() {
        for b in 0..=255u8 {
            let ok = b == b'\t' || (b >= 0x20 && b != 0x7f);
            for len in [1, 7, 8, 9, 16, 17] {
                for at in 0..len {
                    let mut v = vec![b'a'; len];
                    v[at] = b;
                    assert_eq!(
                        validate_header(b"x", &v).is_ok(),
                        ok,
                        "{b:#x} at {at}/{len}"
                    );
                }
            }
        }
    }

    #[test]
    fn order_and_duplicates_are_kept() {
        let h: Headers = [("a", "1"), ("B", "2"), ("a", "3")].into_iter().collect();
        let v: Vec<_> = h.get_all("A").cloned().collect();
        assert_eq!(v, vec![Bytes::from("1"), Bytes::from("3")]);
        let mut h2 = h.clone();
        h2.set("a", "9");
        assert_eq!(h2.len(), 2);
        assert_eq!(h2.iter().last().unwrap().0, "a");
    }
}
