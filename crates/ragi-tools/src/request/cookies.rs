//! The request's cookies (the `Cookie` header, RFC 6265 §5.4), read tolerantly.
//!
//! ```
//! use ragi_tools::prelude::*;
//!
//! async fn whoami(cx: HttpContext) -> Result<Response, Error> {
//!     // Every context (HTTP, WebSocket, SSE) has them: `Context::cookies` / `cookie`.
//!     let theme = cx.cookie("theme").unwrap_or_else(|| "light".to_owned());
//!     let all = cx.cookies(); // serialises as a JSON object
//!     Ok(Response::json(&serde_json::json!({ "theme": theme, "cookies": all })))
//! }
//! # let _ = whoami;
//! ```
//!
//! The rules, RFC 6265 made tolerant of what browsers and scripts send:
//!
//! * every `Cookie` header counts, in order (HTTP/2 clients may split the cookies into one
//!   header per pair); pairs are separated by `;`, with any spaces or tabs around them;
//! * a pair is `name=value`; the name must be a token, the value is taken as sent, without the
//!   double quotes around it if it has them (no other decoding: percent-encoding or base64 is
//!   the app's convention, not the protocol's);
//! * **the first occurrence of a name wins** (browsers send the cookie with the longest path
//!   first);
//! * invalid pairs are skipped and the others kept: no `=`, an empty or non-token name, a
//!   control character in the value, text that is not UTF-8.

use ragi::Headers;

/// The cookies of a request: `name → value`, first occurrence of a name kept, in the order
/// the client sent them. See the [module documentation](self).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cookies {
    pairs: Vec<(String, String)>,
}

impl Cookies {
    /// The cookies of every `Cookie` header in `headers`.
    pub fn from_headers(headers: &Headers) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for value in headers.get_all("cookie") {
            for (name, value) in parse(value) {
                if !pairs.iter().any(|(n, _)| n == name) {
                    pairs.push((name.to_owned(), value.to_owned()));
                }
            }
        }
        Self { pairs }
    }

    /// The cookies of one `Cookie` header value.
    pub fn parse(header: &[u8]) -> Self {
        Self::from_headers(&Headers::new().with("cookie", header.to_vec()))
    }

    /// The value of cookie `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether cookie `name` was sent.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every `(name, value)`, in the order sent.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// How many cookies there are.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// A JSON object (or any serde map) `{name: value}`.
impl serde::Serialize for Cookies {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.pairs.len()))?;
        for (n, v) in &self.pairs {
            map.serialize_entry(n, v)?;
        }
        map.end()
    }
}

/// The value of cookie `name` in `headers` (the first occurrence), without building the map.
pub(crate) fn cookie(headers: &Headers, name: &str) -> Option<String> {
    headers
        .get_all("cookie")
        .flat_map(|v| parse(v))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_space(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_space(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// The valid `(name, value)` pairs of one `Cookie` header value, in order (duplicates kept).
pub fn parse(header: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    header.split(|&b| b == b';').filter_map(|pair| {
        let pair = trim(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        let name = trim(&pair[..eq]);
        let mut value = trim(&pair[eq + 1..]);
        if name.is_empty() || !name.iter().all(|&b| ragi::headers::is_token_byte(b)) {
            return None;
        }
        if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
            value = &value[1..value.len() - 1];
        }
        if value.iter().any(|&b| b < 0x20 || b == 0x7f) {
            return None;
        }
        Some((
            std::str::from_utf8(name).ok()?,
            std::str::from_utf8(value).ok()?,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(h: &[u8]) -> Vec<(&str, &str)> {
        parse(h).collect()
    }

    #[test]
    fn plain_and_spaced() {
        assert_eq!(pairs(b"a=1; b=2"), [("a", "1"), ("b", "2")]);
        assert_eq!(pairs(b"a=1;b=2"), [("a", "1"), ("b", "2")]);
        assert_eq!(pairs(b"  a = 1 ;\tb=2 ;  "), [("a", "1"), ("b", "2")]);
        assert_eq!(pairs(b""), []);
        assert_eq!(pairs(b";;"), []);
    }

    #[test]
    fn quoted_values_lose_their_quotes() {
        assert_eq!(pairs(b"a=\"x y\"; b=\"\""), [("a", "x y"), ("b", "")]);
        assert_eq!(pairs(b"a=\"unbalanced"), [("a", "\"unbalanced")]);
        assert_eq!(pairs(b"a=\""), [("a", "\"")]);
    }

    #[test]
    fn values_keep_equals_signs_and_are_not_decoded() {
        assert_eq!(pairs(b"t=YWJj==; u=%41"), [("t", "YWJj=="), ("u", "%41")]);
        assert_eq!(pairs(b"e="), [("e", "")]);
    }

    #[test]
    fn invalid_pairs_are_skipped() {
        assert_eq!(
            pairs(b"noeq; =v; a b=1; c\x01=2; d=x\x01; e=\xFF; f=ok; (g)=1"),
            [("f", "ok")]
        );
    }

    #[test]
    fn first_occurrence_wins_across_headers() {
        let h = Headers::new()
            .with("cookie", "a=1; b=2; a=3")
            .with("x", "y")
            .with("cookie", "b=4; c=5");
        let c = Cookies::from_headers(&h);
        assert_eq!(
            c.iter().collect::<Vec<_>>(),
            [("a", "1"), ("b", "2"), ("c", "5")]
        );
        assert_eq!(c.get("a"), Some("1"));
        assert_eq!(cookie(&h, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&h, "c").as_deref(), Some("5"));
        assert_eq!(cookie(&h, "z"), None);
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"a":"1","b":"2","c":"5"}"#
        );
    }
}
