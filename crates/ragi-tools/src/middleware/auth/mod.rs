//! Basic (RFC 7617) and Bearer (RFC 6750) authentication: the credentials checked by a
//! pluggable async verifier (or a static list, compared in constant time), the identity put in
//! the stash, the right challenge on a refusal — and WebSocket handshakes refused before
//! accept.
//!
//! ```
//! use ragi_tools::middleware::auth::{BasicAuth, BearerAuth, BearerError, Identity};
//! use ragi_tools::{handler, AppExt, Context, HttpContext};
//!
//! async fn admin(cx: HttpContext) -> String {
//!     let who = cx.stash().get::<Identity>().expect("set by the auth layer");
//!     format!("hello, {}", who.name())
//! }
//!
//! // Static credentials, compared in constant time:
//! let basic = BasicAuth::credentials("admin area", [("alice", "s3cret:with:colons")]);
//! let app = handler(admin).layer(basic);
//!
//! // Or any async check (a database, a JWT library):
//! let bearer = BearerAuth::new("api", |token: String| async move {
//!     match token.as_str() {
//!         "expired" => Err(BearerError::invalid_token("the token expired")),
//!         t if t.starts_with("tok-") => Ok(Identity::new(&t[4..])),
//!         _ => Err(BearerError::invalid_token("unknown token")),
//!     }
//! });
//! let api = handler(admin).layer(bearer);
//! # let _ = (app, api);
//! ```
//!
//! # Refusals
//!
//! | request | Basic | Bearer |
//! |---|---|---|
//! | no `Authorization` (or another scheme) | 401, `WWW-Authenticate: Basic realm="…", charset="UTF-8"` | 401, `WWW-Authenticate: Bearer realm="…"` (no error code: RFC 6750 §3.1) |
//! | malformed credentials (bad base64, no `:`, not UTF-8, two `Authorization` fields) | 401 with the challenge | 400, `error="invalid_request"` |
//! | refused by the verifier | 401 with the challenge | 401, `error="invalid_token"` and the verifier's `error_description` |
//! | verifier: [`BearerError::insufficient_scope`] | — | 403, `error="insufficient_scope"`, `scope="…"` |
//!
//! Never a 500: a verifier that has nothing to say refuses. The scheme name is matched
//! case-insensitively (`basic`, `BEARER`: RFC 9110 §11.1; tower-http's check is
//! case-sensitive). The Basic password may contain `:` (the split is at the first one); user
//! and password are UTF-8 (the challenge says `charset="UTF-8"`).
//!
//! # Scopes
//!
//! `http`, `sse` and `websocket` scopes are all checked; a refusal on an `sse` scope is the
//! decline pair, on a `websocket` scope the **denial pair before accept** (401 with the
//! challenge; a server without the denial extension answers 403). Browsers cannot set
//! `Authorization` on a WebSocket handshake: [`BearerAuth::query_token`] lets a token come in
//! the query (`?access_token=…`, RFC 6750 §2.3, off by default because URLs end up in logs).
//! PAGI's and tower-http's auth middleware check `http` scopes only, leaving WebSocket routes
//! open.
//!
//! # Identity
//!
//! On success the verifier's [`Identity`] is in `scope.stash` for the app, the logger and
//! later middleware. If the client leaves while the verifier runs, the verifier's future is
//! dropped and the app is not called.
//!
//! # Constant time
//!
//! [`BasicAuth::credentials`] and [`BearerAuth::tokens`] hash each candidate and each stored
//! secret with SHA-256 and compare the digests with `subtle`, visiting every stored entry, so
//! neither the position of a mismatch nor the length of a secret shows in the timing (PAGI
//! leaves this to the callback; tower-http compares with `==`). A verifier of your own must
//! do the same.

mod basic;
mod bearer;

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

pub use basic::{BasicAuth, BasicVerifier};
pub use bearer::{BearerAuth, BearerError, BearerVerifier, IntoBearerResult};

/// How the client authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthScheme {
    /// RFC 7617 Basic.
    Basic,
    /// RFC 6750 Bearer.
    Bearer,
}

/// Who the client is, as the verifier says (in `scope.stash` after a success).
#[derive(Clone)]
pub struct Identity {
    name: String,
    scheme: Option<AuthScheme>,
    extra: Option<Arc<dyn Any + Send + Sync>>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name)
            .field("scheme", &self.scheme)
            .field("extra", &self.extra.is_some())
            .finish()
    }
}

impl Identity {
    /// An identity called `name` (a user name, a subject).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            scheme: None,
            extra: None,
        }
    }

    /// The same identity carrying `value` (claims, roles, a user record).
    pub fn with<T: Any + Send + Sync>(mut self, value: T) -> Self {
        self.extra = Some(Arc::new(value));
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scheme it came with (set by the middleware).
    pub fn scheme(&self) -> Option<AuthScheme> {
        self.scheme
    }

    /// What [`with`](Self::with) attached, if it is a `T`.
    pub fn extra<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.extra.as_deref().and_then(|e| e.downcast_ref())
    }

    pub(crate) fn with_scheme(mut self, scheme: AuthScheme) -> Self {
        self.scheme = Some(scheme);
        self
    }
}

/// A stored secret: its SHA-256 digest.
#[derive(Clone)]
pub(crate) struct Secret([u8; 32]);

impl Secret {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        Secret(Sha256::digest(bytes).into())
    }

    /// Compares the digests in constant time.
    pub(crate) fn matches(&self, other: &Secret) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

/// The index of the entry for which `matches(entry)` holds, visiting every entry and
/// selecting without a branch on the secrets.
pub(crate) fn find_constant_time<T>(
    entries: &[T],
    matches: impl Fn(&T) -> subtle::Choice,
) -> Option<usize> {
    let mut found = subtle::Choice::from(0);
    let mut index = 0u32;
    for (i, e) in entries.iter().enumerate() {
        let ok = matches(e);
        index.conditional_assign(&(i as u32), ok);
        found |= ok;
    }
    bool::from(found).then_some(index as usize)
}

/// `"…"` with `"` and `\` escaped (a quoted-string).
pub(crate) fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        // Control characters cannot be sent in a header: drop them.
        if !c.is_control() {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// The credentials of `Authorization` for `scheme` (case-insensitive): `Ok(None)` when there
/// is no such header or it names another scheme, `Err` when it is malformed (two fields, not
/// text).
pub(crate) fn credentials<'a>(scope: &'a ragi::Scope, scheme: &str) -> Result<Option<&'a str>, ()> {
    let mut all = scope.headers.get_all("authorization");
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(());
    }
    let text = std::str::from_utf8(first).map_err(|_| ())?.trim();
    let (name, rest) = match text.split_once([' ', '\t']) {
        Some((n, r)) => (n, r.trim()),
        None => (text, ""),
    };
    if !name.eq_ignore_ascii_case(scheme) {
        return Ok(None);
    }
    Ok(Some(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_search_visits_every_entry_and_finds_the_match() {
        let stored: Vec<Secret> = ["alpha", "beta", "gamma"]
            .iter()
            .map(|s| Secret::new(s.as_bytes()))
            .collect();
        let visits = std::cell::Cell::new(0);
        let probe = Secret::new(b"alpha");
        let found = find_constant_time(&stored, |s| {
            visits.set(visits.get() + 1);
            s.matches(&probe)
        });
        assert_eq!(found, Some(0));
        // A match at the front does not stop the walk.
        assert_eq!(visits.get(), 3);
        let miss = Secret::new(b"alph");
        assert_eq!(find_constant_time(&stored, |s| s.matches(&miss)), None);
        // Different lengths compare as equal-length digests.
        assert_eq!(Secret::new(b"x").0.len(), Secret::new(&[7; 1000]).0.len());
    }

    #[test]
    fn realms_are_quoted() {
        assert_eq!(quoted(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(quoted("a\r\nb"), "\"ab\"");
    }
}
