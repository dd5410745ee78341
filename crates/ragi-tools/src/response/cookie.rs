//! Cookies out: [`SetCookie`] builds one `Set-Cookie` field with every attribute, checked
//! before it is sent; [`Response::cookie`] adds it.
//!
//! ```
//! use std::time::Duration;
//! use ragi_tools::response::cookie::{SameSite, SetCookie};
//! use ragi_tools::Response;
//!
//! let r = Response::text("welcome")
//!     .cookie(
//!         SetCookie::new("session", "a1b2c3")
//!             .path("/")
//!             .http_only(true)
//!             .same_site(SameSite::Lax)
//!             .max_age(Duration::from_secs(3600)),
//!     )
//!     .cookie(SetCookie::new("theme", "dark mode;1")) // encoded: dark%20mode%3B1
//!     .cookie(SetCookie::removal("old").path("/"));   // Max-Age=0 and a past Expires
//!
//! let fields: Vec<_> = r.headers().get_all("set-cookie").collect();
//! assert_eq!(fields.len(), 3); // one field per cookie, never folded with commas
//! assert_eq!(fields[0], "session=a1b2c3; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax");
//! assert_eq!(fields[1], "theme=dark%20mode%3B1");
//! assert_eq!(fields[2], "old=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
//! ```
//!
//! The rules, and why:
//!
//! * **Name**: an RFC 6265 token (letters, digits, ``!#$%&'*+-.^_`|~``), not empty; anything
//!   else is an error.
//! * **Value**: [`SetCookie::new`] sends a value made only of RFC 6265 `cookie-octet`s as it
//!   is (tokens, ids, base64, signed values, `%` included), so the request side's cookie
//!   reader, which does not decode, gives back exactly what was set. A value holding any
//!   other byte (controls, space, `"`, `,`, `;`, `\`, non-ASCII) cannot go out as it is: it is
//!   then **percent-encoded whole, `%` included**, so that one percent-decoding
//!   (`percent_encoding::percent_decode_str`) restores it without ambiguity. Quoting would not
//!   help: a quoted cookie value admits the same octets as a bare one. (Python's
//!   `http.cookies`, under Starlette, writes backslash-octal escapes in quotes, which no
//!   browser decodes.) [`SetCookie::raw`] sends a value as given and refuses one that is not
//!   cookie-octets (optionally in double quotes).
//! * **Secure is implied**, not an error, where browsers require it: `SameSite=None`
//!   (Chrome and Firefox reject it without Secure), `Partitioned` (CHIPS), and the
//!   `__Secure-` / `__Host-` name prefixes. The intent of those settings is unambiguous, and
//!   browsers treat `http://localhost` as secure, so development keeps working.
//! * **Contradictions are errors**: a `__Host-` cookie with a `Domain` or a `Path` other
//!   than `/` (its `Path` defaults to `/`); a `Path` that does not start with `/` or holds a
//!   control character, `;` or non-ASCII; a `Domain` that is not an ASCII host name (use
//!   punycode); an attribute value over 1024 bytes or a name and value over 4096 bytes
//!   together (browsers drop such cookies silently; an error is better than a lost session).
//! * `Max-Age` is whole seconds; `Expires` is an IMF-fixdate. [`SetCookie::removal`] sets both
//!   to the past (`Max-Age=0`, `Expires` at 1970); give it the `Path` and `Domain` the cookie
//!   was set with, or the browser keeps the original.
//!
//! [`Response::cookie`] adds one `set-cookie` field per cookie; an invalid cookie turns the
//! response into a 500 whose logged cause names the problem ([`Response::try_cookie`] returns
//! the error instead).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use super::conditional::fmt_http_date;
use super::{IntoResponse, Response};
use crate::Error;

/// What is encoded once a value needs encoding: the bytes that are not RFC 6265
/// `cookie-octet`s, and `%` (non-ASCII is always encoded).
const NOT_COOKIE_OCTET: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

/// The longest attribute value browsers keep (RFC 6265bis §5.6).
const MAX_ATTRIBUTE: usize = 1024;
/// The longest name and value together browsers keep (RFC 6265bis §5.6).
const MAX_NAME_VALUE: usize = 4096;

/// The `SameSite` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SameSite {
    /// Sent only with same-site requests.
    Strict,
    /// Sent with same-site requests and top-level navigations to the site.
    Lax,
    /// Sent with cross-site requests too (implies `Secure`).
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// One `Set-Cookie` field. See the [module documentation](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetCookie {
    name: String,
    value: String,
    raw: bool,
    path: Option<String>,
    domain: Option<String>,
    max_age: Option<Duration>,
    expires: Option<SystemTime>,
    secure: bool,
    http_only: bool,
    same_site: Option<SameSite>,
    partitioned: bool,
}

/// Why a [`SetCookie`] cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieError {
    message: String,
}

impl fmt::Display for CookieError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CookieError {}

fn err(cookie: &str, problem: impl fmt::Display) -> CookieError {
    CookieError {
        message: format!("cookie {cookie:?}: {problem}"),
    }
}

/// `cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

fn has_prefix(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix)
}

impl SetCookie {
    /// A cookie `name` = `value`: sent as it is when it is made of cookie-octets, otherwise
    /// percent-encoded whole (see the [module documentation](self)).
    pub fn new(name: impl Into<String>, value: impl AsRef<str>) -> Self {
        let value = value.as_ref();
        let value = if value.bytes().all(is_cookie_octet) {
            value.to_owned()
        } else {
            utf8_percent_encode(value, NOT_COOKIE_OCTET).to_string()
        };
        Self::make(name.into(), value, false)
    }

    /// A cookie whose value is sent exactly as given: it must be RFC 6265 cookie-octets,
    /// optionally in double quotes, or sending it fails.
    pub fn raw(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self::make(name.into(), value.into(), true)
    }

    /// The field that removes cookie `name`: an empty value, `Max-Age=0` and an `Expires` in
    /// 1970. Give it the same `Path` and `Domain` the cookie was set with.
    pub fn removal(name: impl Into<String>) -> Self {
        Self::make(name.into(), String::new(), false)
            .max_age(Duration::ZERO)
            .expires(UNIX_EPOCH)
    }

    fn make(name: String, value: String, raw: bool) -> Self {
        Self {
            name,
            value,
            raw,
            path: None,
            domain: None,
            max_age: None,
            expires: None,
            secure: false,
            http_only: false,
            same_site: None,
            partitioned: false,
        }
    }

    /// `Path`: the cookie is sent for this path and below.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// `Domain`: the cookie is sent to this host and its subdomains (without it: this host
    /// only).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// `Max-Age` in whole seconds (the fraction is dropped); zero removes the cookie.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// `Expires`, as an IMF-fixdate (clamped to 1970..=9999).
    pub fn expires(mut self, at: SystemTime) -> Self {
        self.expires = Some(at);
        self
    }

    /// `Secure`: sent over HTTPS only (implied by `SameSite=None`, `Partitioned` and the
    /// `__Secure-` / `__Host-` prefixes).
    pub fn secure(mut self, on: bool) -> Self {
        self.secure = on;
        self
    }

    /// `HttpOnly`: hidden from scripts.
    pub fn http_only(mut self, on: bool) -> Self {
        self.http_only = on;
        self
    }

    /// `SameSite`.
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = Some(same_site);
        self
    }

    /// `Partitioned` (CHIPS: one cookie jar per top-level site; implies `Secure`).
    pub fn partitioned(mut self, on: bool) -> Self {
        self.partitioned = on;
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value as it will be sent.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether `Secure` will be sent (asked for, or implied).
    pub fn is_secure(&self) -> bool {
        self.secure
            || self.partitioned
            || self.same_site == Some(SameSite::None)
            || has_prefix(&self.name, "__Secure-")
            || has_prefix(&self.name, "__Host-")
    }

    /// The `Set-Cookie` field value, or why the cookie cannot be sent.
    pub fn to_header_value(&self) -> Result<String, CookieError> {
        let name = &self.name;
        if name.is_empty() {
            return Err(err(name, "the name is empty"));
        }
        if let Some(b) = name.bytes().find(|&b| !ragi::headers::is_token_byte(b)) {
            return Err(err(
                name,
                format_args!(
                    "the name holds {:?}, which is not a token character",
                    b as char
                ),
            ));
        }
        if self.raw {
            let v = self.value.as_bytes();
            let inner = match v {
                [b'"', inner @ .., b'"'] => inner,
                _ => v,
            };
            if !inner.iter().copied().all(is_cookie_octet) {
                return Err(err(
                    name,
                    "the raw value holds a byte that is not a cookie-octet (use SetCookie::new to \
                     percent-encode it)",
                ));
            }
        }
        if name.len() + self.value.len() > MAX_NAME_VALUE {
            return Err(err(
                name,
                format_args!(
                    "name and value are {} bytes; browsers drop cookies over {MAX_NAME_VALUE}",
                    name.len() + self.value.len()
                ),
            ));
        }
        let host = has_prefix(name, "__Host-");
        let mut path = self.path.as_deref();
        if host {
            if self.domain.is_some() {
                return Err(err(name, "a __Host- cookie may not have a Domain"));
            }
            match path {
                None => path = Some("/"),
                Some("/") => {}
                Some(_) => return Err(err(name, "a __Host- cookie must have Path=/")),
            }
        }
        let mut out = String::with_capacity(name.len() + self.value.len() + 64);
        out.push_str(name);
        out.push('=');
        out.push_str(&self.value);
        if let Some(p) = path {
            if !p.starts_with('/') {
                return Err(err(name, "the Path must start with '/'"));
            }
            if p.len() > MAX_ATTRIBUTE || !p.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b';')
            {
                return Err(err(
                    name,
                    "the Path must be at most 1024 printable ASCII bytes without ';' \
                     (percent-encode the rest)",
                ));
            }
            out.push_str("; Path=");
            out.push_str(p);
        }
        if let Some(d) = &self.domain {
            let bare = d.strip_prefix('.').unwrap_or(d);
            let ok = !bare.is_empty()
                && d.len() <= MAX_ATTRIBUTE
                && bare.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !ok {
                return Err(err(
                    name,
                    format_args!("the Domain {d:?} is not an ASCII host name (use punycode)"),
                ));
            }
            out.push_str("; Domain=");
            out.push_str(d);
        }
        if let Some(age) = self.max_age {
            out.push_str("; Max-Age=");
            out.push_str(&age.as_secs().to_string());
        }
        if let Some(at) = self.expires {
            out.push_str("; Expires=");
            out.push_str(&fmt_http_date(at));
        }
        if self.is_secure() {
            out.push_str("; Secure");
        }
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        if let Some(s) = self.same_site {
            out.push_str("; SameSite=");
            out.push_str(s.as_str());
        }
        if self.partitioned {
            out.push_str("; Partitioned");
        }
        Ok(out)
    }
}

impl Response {
    /// Adds a `Set-Cookie` field for `cookie` (one field per cookie, never folded). An invalid
    /// cookie makes the response a 500 whose logged cause names the problem; use
    /// [`Response::try_cookie`] to handle it.
    pub fn cookie(self, cookie: SetCookie) -> Response {
        match self.try_cookie(cookie) {
            Ok(r) => r,
            Err(e) => e.into_response(),
        }
    }

    /// Adds a `Set-Cookie` field for `cookie`, or says why it cannot be sent.
    pub fn try_cookie(mut self, cookie: SetCookie) -> Result<Response, Error> {
        let value = cookie.to_header_value().map_err(Error::internal)?;
        self.headers.push("set-cookie", value);
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(c: SetCookie) -> String {
        c.to_header_value().unwrap()
    }

    fn e(c: SetCookie) -> String {
        c.to_header_value().unwrap_err().to_string()
    }

    #[test]
    fn every_attribute_in_order() {
        let at = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let c = SetCookie::new("id", "42")
            .path("/app")
            .domain("example.com")
            .max_age(Duration::from_millis(7_999))
            .expires(at)
            .secure(true)
            .http_only(true)
            .same_site(SameSite::Strict)
            .partitioned(true);
        assert_eq!(
            v(c),
            "id=42; Path=/app; Domain=example.com; Max-Age=7; \
             Expires=Sun, 06 Nov 1994 08:49:37 GMT; Secure; HttpOnly; SameSite=Strict; Partitioned"
        );
        assert_eq!(v(SetCookie::new("a", "b")), "a=b");
        assert_eq!(v(SetCookie::new("a", "")), "a=");
        assert_eq!(
            v(SetCookie::new("a", "b").same_site(SameSite::Lax)),
            "a=b; SameSite=Lax"
        );
    }

    #[test]
    fn secure_is_implied_where_browsers_require_it() {
        assert_eq!(
            v(SetCookie::new("a", "b").same_site(SameSite::None)),
            "a=b; Secure; SameSite=None"
        );
        assert_eq!(
            v(SetCookie::new("a", "b").partitioned(true)),
            "a=b; Secure; Partitioned"
        );
        assert_eq!(
            v(SetCookie::new("a", "b")
                .same_site(SameSite::None)
                .secure(false)),
            "a=b; Secure; SameSite=None"
        );
        assert_eq!(v(SetCookie::new("__Secure-a", "b")), "__Secure-a=b; Secure");
        assert_eq!(
            v(SetCookie::new("__Host-a", "b")),
            "__Host-a=b; Path=/; Secure"
        );
        assert_eq!(
            v(SetCookie::new("__host-a", "b").path("/")),
            "__host-a=b; Path=/; Secure"
        );
        assert!(e(SetCookie::new("__Host-a", "b").path("/x")).contains("Path=/"));
        assert!(e(SetCookie::new("__Host-a", "b").domain("example.com")).contains("Domain"));
    }

    #[test]
    fn values_are_percent_encoded_where_needed() {
        assert_eq!(
            v(SetCookie::new("a", "x y;z,\"q\"\\%é\u{7f}")),
            "a=x%20y%3Bz%2C%22q%22%5C%25%C3%A9%7F"
        );
        // Cookie-octets go out unchanged, `%` included: base64, tokens, signed values, and
        // values someone already encoded.
        let b64 = "eyJhbGciOiJIUzI1NiJ9.e30=/+-_.!~*'()$&:<>?@[]^`{|}#%";
        assert_eq!(v(SetCookie::new("a", b64)), format!("a={b64}"));
        assert_eq!(v(SetCookie::new("a", "50%25")), "a=50%25");
        // Once encoding is needed, one decoding restores the value exactly.
        for original in ["a b%20c", "é%", "x;y", "\"q\""] {
            let sent = SetCookie::new("a", original).value().to_owned();
            assert!(sent.bytes().all(is_cookie_octet), "{sent}");
            let back = percent_encoding::percent_decode_str(&sent)
                .decode_utf8()
                .unwrap();
            assert_eq!(back, original);
        }
        assert_eq!(v(SetCookie::raw("a", "\"quoted\"")), "a=\"quoted\"");
        assert_eq!(v(SetCookie::raw("a", "50%")), "a=50%");
        assert!(e(SetCookie::raw("a", "x y")).contains("cookie-octet"));
        assert!(e(SetCookie::raw("a", "\"x\"y\"")).contains("cookie-octet"));
    }

    #[test]
    fn bad_names_and_attributes_are_named() {
        assert!(e(SetCookie::new("", "b")).contains("empty"));
        assert!(e(SetCookie::new("a b", "b")).contains("' '"));
        assert!(e(SetCookie::new("a=b", "b")).contains("'='"));
        assert!(e(SetCookie::new("a;", "b")).contains("';'"));
        assert!(e(SetCookie::new("a", "b").path("x")).contains("start with '/'"));
        assert!(e(SetCookie::new("a", "b").path("/x;y")).contains("Path"));
        assert!(e(SetCookie::new("a", "b").path("/\u{e9}")).contains("Path"));
        assert!(e(SetCookie::new("a", "b").domain("ex ample.com")).contains("Domain"));
        assert!(e(SetCookie::new("a", "b").domain("exämple.com")).contains("punycode"));
        assert!(e(SetCookie::new("a", "b").domain("a..b")).contains("Domain"));
        assert_eq!(
            v(SetCookie::new("a", "b").domain(".Example-1.com")),
            "a=b; Domain=.Example-1.com"
        );
        assert!(e(SetCookie::new("a", "x".repeat(4096))).contains("4096"));
        assert!(SetCookie::new("a", "x".repeat(4095))
            .to_header_value()
            .is_ok());
        assert!(
            e(SetCookie::new("a", "b").path(format!("/{}", "p".repeat(1024)))).contains("1024")
        );
    }

    #[test]
    fn removal_and_response_fields() {
        assert_eq!(
            v(SetCookie::removal("sid").path("/").domain("example.com")),
            "sid=; Path=/; Domain=example.com; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        );
        let r = Response::text("x")
            .cookie(SetCookie::new("a", "1"))
            .cookie(SetCookie::new("b", "2"));
        let all: Vec<_> = r.headers().get_all("set-cookie").cloned().collect();
        assert_eq!(all, ["a=1", "b=2"]);
        assert_eq!(r.status(), 200);
        let bad = Response::text("x").cookie(SetCookie::new("a b", "1"));
        assert_eq!(bad.status(), 500);
        assert!(bad.headers().get("set-cookie").is_none());
        let e = Response::text("x")
            .try_cookie(SetCookie::new("a b", "1"))
            .unwrap_err();
        assert!(e.source().unwrap().to_string().contains("token"));
    }
}
