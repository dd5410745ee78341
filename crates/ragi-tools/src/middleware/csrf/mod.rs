//! CSRF protection: a token-free cross-origin check (Fetch Metadata, then `Origin`), an
//! optional signed double-submit token, and cross-site WebSocket handshakes refused.
//!
//! ```
//! use ragi_tools::middleware::csrf::{Csrf, CsrfToken, CsrfTokens};
//! use ragi_tools::{handler, AppExt, Context, HttpContext, Response};
//!
//! async fn form(cx: HttpContext) -> Response {
//!     // On a safe request the token is in the stash (and in the `csrf_token` cookie).
//!     let token = cx.stash().get::<CsrfToken>().expect("set by the CSRF layer");
//!     Response::html(format!(
//!         r#"<form method="post"><input type="hidden" name="{}" value="{}"><button>go</button></form>"#,
//!         token.field_name(), token.value()
//!     ))
//! }
//!
//! // Token-free: enough for browsers that send Sec-Fetch-Site or Origin (all current ones).
//! let app = handler(form).layer(Csrf::new().trust_origin("https://admin.example").unwrap());
//!
//! // With signed double-submit tokens as well (the key: 32 bytes or more, kept secret).
//! let key = [7u8; 32];
//! let tokens = CsrfTokens::new(&key).expect("a long enough key");
//! let app2 = handler(form).layer(Csrf::new().with_tokens(tokens));
//! # let _ = (app, app2);
//! ```
//!
//! # The cross-origin check (no token)
//!
//! Go 1.25's `CrossOriginProtection` and tower-http's `CsrfLayer` (Filippo Valsorda's
//! algorithm), in this order:
//!
//! 1. `GET`, `HEAD` and `OPTIONS` pass (they must not change state).
//! 2. `Sec-Fetch-Site: same-origin` or `none` (the user typed the URL) passes; any other value
//!    (`cross-site`, `same-site`) is refused unless the `Origin` is a trusted one.
//! 3. Without `Sec-Fetch-Site`: no `Origin` passes (not a browser, or a very old one); an
//!    `Origin` that is trusted, or whose host and port equal the request's `Host`, passes;
//!    anything else — `null` included — is refused.
//!
//! A refusal is **403** (`cross-origin request refused`) and the app is not called.
//!
//! # WebSocket handshakes
//!
//! A handshake is a `GET`, so the first rule would let it through — and a page on any site
//! can open a WebSocket to yours carrying the user's cookies (cross-site WebSocket hijacking).
//! Here a `websocket` scope goes through rules 2 and 3 regardless of the method: a handshake
//! with a foreign `Origin` (or `Sec-Fetch-Site: cross-site`) is **declined before accept with
//! 403** (the denial pair; a server without the denial extension answers 403 too). No
//! reference checks this.
//!
//! # Signed double-submit tokens ([`CsrfTokens`])
//!
//! The OWASP "signed double-submit cookie": a token is a random 32-byte nonce and an
//! HMAC-SHA-256 of it (and of an optional binding such as the session id,
//! [`CsrfTokens::bind`]) under the server's key, base64url-encoded. It travels twice:
//!
//! * in the cookie `csrf_token` (`Path=/; SameSite=Strict`, `Secure` over https/wss;
//!   readable by scripts unless [`CsrfTokens::http_only`], so that a single-page app can copy
//!   it into the header), set on a safe request when the client has no valid one;
//! * in the request: the `X-CSRF-Token` header, or the `csrf_token` field of an
//!   `application/x-www-form-urlencoded` body.
//!
//! An unsafe request passes the token check when the cookie's signature verifies (under the
//! current key or an older one, [`CsrfTokens::old_key`]) and the submitted token equals the
//! cookie — both compared in constant time. Otherwise: 403 `CSRF token missing or invalid`.
//! PAGI's tokens are neither signed nor bound, so a sibling subdomain that can set cookies
//! defeats them; a signed token cannot be forged without the key, and a bound one cannot be
//! replayed for another session.
//!
//! The current token is in the stash as [`CsrfToken`] (to render into forms).
//!
//! Reading the form field buffers the body (up to 1 MiB, [`CsrfTokens::max_form_size`]; more
//! is 413), then hands the same body to the app; the app's `receive()` still delivers the
//! disconnect afterwards. A client that leaves while the body is read ends the call: no app
//! runs for a request nobody waits for. `multipart/form-data` bodies are not parsed here:
//! send the header (or check [`CsrfToken`] in the app).
//!
//! # Defaults
//!
//! No trusted origin beyond the request's own; no tokens; WebSocket handshakes checked.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use hmac::{Hmac, Mac};
use http::Method;
use ragi::{
    App, AppResult, BoxFuture, ReceiveEvent, ReceiveSource, Receiver, Scope, ScopeKind, Sender,
};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::security_support::{
    edit_heads, header_text, parse_authority, refuse, request_authority,
};
use crate::{Error, IntoResponse, Layer, SharedApp};

type HmacSha256 = Hmac<Sha256>;

/// A trusted origin or key that cannot be right, named when the layer is built.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CsrfConfigError {
    /// Not `scheme://host[:port]`.
    InvalidOrigin(String),
    /// A signing key shorter than 32 bytes.
    ShortKey(usize),
}

impl std::fmt::Display for CsrfConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidOrigin(o) => write!(
                f,
                "CSRF: invalid trusted origin {o:?}: expected scheme://host[:port]"
            ),
            Self::ShortKey(n) => write!(
                f,
                "CSRF: the token key has {n} bytes; use 32 random bytes or more"
            ),
        }
    }
}

impl std::error::Error for CsrfConfigError {}

/// The CSRF token of this request (in the stash when [`CsrfTokens`] are on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsrfToken {
    value: String,
    field: Arc<str>,
    header: Arc<str>,
}

impl CsrfToken {
    /// The token, to put in a form field or the header.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The form field that carries it (`csrf_token`).
    pub fn field_name(&self) -> &str {
        &self.field
    }

    /// The header that carries it (`x-csrf-token`).
    pub fn header_name(&self) -> &str {
        &self.header
    }
}

/// The signed double-submit token option: [`Csrf::with_tokens`]. See the
/// [module documentation](self).
#[derive(Clone)]
pub struct CsrfTokens {
    keys: Vec<Arc<[u8]>>,
    cookie: Arc<str>,
    header: Arc<str>,
    field: Arc<str>,
    http_only: bool,
    max_form: usize,
    binding: Option<Arc<dyn Fn(&Scope) -> Option<Vec<u8>> + Send + Sync>>,
}

impl std::fmt::Debug for CsrfTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsrfTokens")
            .field("keys", &self.keys.len())
            .field("cookie", &self.cookie)
            .field("header", &self.header)
            .field("field", &self.field)
            .field("http_only", &self.http_only)
            .field("bound", &self.binding.is_some())
            .finish()
    }
}

impl CsrfTokens {
    /// Tokens signed with `key` (32 bytes or more).
    pub fn new(key: impl AsRef<[u8]>) -> Result<Self, CsrfConfigError> {
        let key = key.as_ref();
        if key.len() < 32 {
            return Err(CsrfConfigError::ShortKey(key.len()));
        }
        Ok(Self {
            keys: vec![key.into()],
            cookie: "csrf_token".into(),
            header: "x-csrf-token".into(),
            field: "csrf_token".into(),
            http_only: false,
            max_form: 1 << 20,
            binding: None,
        })
    }

    /// Also accepts tokens signed with an older key (rotation: new tokens use the first key).
    pub fn old_key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.keys.push(key.as_ref().into());
        self
    }

    /// The cookie's name (`csrf_token`).
    pub fn cookie_name(mut self, name: &str) -> Self {
        self.cookie = name.into();
        self
    }

    /// The request header's name (`x-csrf-token`).
    pub fn header_name(mut self, name: &str) -> Self {
        self.header = name.to_ascii_lowercase().into();
        self
    }

    /// The form field's name (`csrf_token`).
    pub fn field_name(mut self, name: &str) -> Self {
        self.field = name.into();
        self
    }

    /// Marks the cookie `HttpOnly` (the page then gets the token from the server, e.g. the
    /// rendered form, never from `document.cookie`).
    pub fn http_only(mut self, on: bool) -> Self {
        self.http_only = on;
        self
    }

    /// The largest form body read for the field (1 MiB); a larger one gets 413.
    pub fn max_form_size(mut self, bytes: usize) -> Self {
        self.max_form = bytes;
        self
    }

    /// Binds tokens to what `f` returns for the request (a session id): a token made for one
    /// binding does not verify under another.
    pub fn bind(mut self, f: impl Fn(&Scope) -> Option<Vec<u8>> + Send + Sync + 'static) -> Self {
        self.binding = Some(Arc::new(f));
        self
    }

    fn mac(key: &[u8], nonce: &[u8], binding: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(b"ragi-csrf-v1\0");
        mac.update(&(nonce.len() as u64).to_be_bytes());
        mac.update(nonce);
        mac.update(binding);
        mac
    }

    fn binding(&self, scope: &Scope) -> Vec<u8> {
        self.binding
            .as_ref()
            .and_then(|f| f(scope))
            .unwrap_or_default()
    }

    /// A fresh token for `scope`.
    fn issue(&self, scope: &Scope) -> String {
        let mut nonce = [0u8; 32];
        getrandom::fill(&mut nonce).expect("the operating system's random source");
        let tag = Self::mac(&self.keys[0], &nonce, &self.binding(scope))
            .finalize()
            .into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// Whether `token` carries a valid signature for `scope` (constant time per key).
    fn verifies(&self, token: &str, scope: &Scope) -> bool {
        let Some((n, t)) = token.split_once('.') else {
            return false;
        };
        let (Ok(nonce), Ok(tag)) = (URL_SAFE_NO_PAD.decode(n), URL_SAFE_NO_PAD.decode(t)) else {
            return false;
        };
        let binding = self.binding(scope);
        let mut ok = false;
        for key in &self.keys {
            ok |= Self::mac(key, &nonce, &binding).verify_slice(&tag).is_ok();
        }
        ok
    }

    /// The first cookie named like ours whose signature verifies.
    fn cookie_token(&self, scope: &Scope) -> Option<String> {
        scope
            .headers
            .get_all("cookie")
            .flat_map(|v| {
                String::from_utf8_lossy(v)
                    .split(';')
                    .filter_map(|pair| {
                        let (n, v) = pair.split_once('=')?;
                        (n.trim() == &*self.cookie).then(|| v.trim().trim_matches('"').to_owned())
                    })
                    .collect::<Vec<_>>()
            })
            .find(|t| self.verifies(t, scope))
    }

    fn set_cookie(&self, token: &str, scheme: &str) -> String {
        let mut c = format!("{}={token}; Path=/; SameSite=Strict", self.cookie);
        if matches!(scheme, "https" | "wss") {
            c.push_str("; Secure");
        }
        if self.http_only {
            c.push_str("; HttpOnly");
        }
        c
    }

    fn stash(&self, scope: &Scope, value: String) {
        scope.stash.insert(CsrfToken {
            value,
            field: self.field.clone(),
            header: self.header.clone(),
        });
    }
}

/// The CSRF layer. See the [module documentation](self).
#[derive(Clone, Debug, Default)]
pub struct Csrf {
    trusted: Arc<Vec<String>>,
    tokens: Option<Arc<CsrfTokens>>,
    websocket: bool,
}

impl Csrf {
    /// The cross-origin check alone, WebSocket handshakes included.
    pub fn new() -> Self {
        Self {
            trusted: Arc::new(Vec::new()),
            tokens: None,
            websocket: true,
        }
    }

    /// Lets requests from `origin` (`scheme://host[:port]`) through, cross-site as they are.
    pub fn trust_origin(mut self, origin: &str) -> Result<Self, CsrfConfigError> {
        let bad = || CsrfConfigError::InvalidOrigin(origin.to_owned());
        let (scheme, authority) = origin.split_once("://").ok_or_else(bad)?;
        if scheme.is_empty() || parse_authority(authority.as_bytes()).is_none() {
            return Err(bad());
        }
        Arc::make_mut(&mut self.trusted).push(origin.to_ascii_lowercase());
        Ok(self)
    }

    /// Also requires signed double-submit tokens on unsafe requests.
    pub fn with_tokens(mut self, tokens: CsrfTokens) -> Self {
        self.tokens = Some(Arc::new(tokens));
        self
    }

    /// Whether WebSocket handshakes are checked (on by default).
    pub fn check_websockets(mut self, on: bool) -> Self {
        self.websocket = on;
        self
    }

    fn trusted(&self, origin: Option<&str>) -> bool {
        origin.is_some_and(|o| self.trusted.iter().any(|t| t.eq_ignore_ascii_case(o)))
    }

    /// Whether the request comes from another origin (rules 2 and 3).
    fn is_cross_origin(&self, scope: &Scope) -> bool {
        let origin = scope.headers.get("origin").and_then(header_text);
        match scope.headers.get("sec-fetch-site").and_then(header_text) {
            Some(s) if s.eq_ignore_ascii_case("same-origin") || s.eq_ignore_ascii_case("none") => {
                false
            }
            Some(_) => !self.trusted(origin),
            None => match origin {
                None => false,
                Some(o) if self.trusted(Some(o)) => false,
                Some(o) => {
                    let theirs = o
                        .split_once("://")
                        .and_then(|(_, a)| parse_authority(a.as_bytes()));
                    match (theirs, request_authority(scope)) {
                        (Some(a), Ok(b)) => a != b,
                        _ => true,
                    }
                }
            },
        }
    }
}

impl Layer for Csrf {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(CsrfApp {
            cfg: self.clone(),
            inner,
        })
    }
}

struct CsrfApp {
    cfg: Csrf,
    inner: SharedApp,
}

fn is_safe(m: &Method) -> bool {
    *m == Method::GET || *m == Method::HEAD || *m == Method::OPTIONS
}

fn forbidden(message: &'static str) -> crate::Response {
    Error::new(403, message).into_response()
}

/// Yields `first`, then what `inner` yields.
struct Replay {
    first: Option<ReceiveEvent>,
    inner: Receiver,
}

impl ReceiveSource for Replay {
    fn poll_receive(&mut self, cx: &mut TaskContext<'_>) -> Poll<ReceiveEvent> {
        if let Some(e) = self.first.take() {
            return Poll::Ready(e);
        }
        self.inner.poll_receive(cx)
    }
}

fn is_form(scope: &Scope) -> bool {
    scope
        .headers
        .get("content-type")
        .and_then(header_text)
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

impl App for CsrfApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        match scope.kind {
            ScopeKind::WebSocket => {
                if self.cfg.websocket && self.cfg.is_cross_origin(&scope) {
                    tracing::debug!(origin = ?scope.headers.get("origin"), "cross-site WebSocket handshake refused");
                    return refuse(
                        &scope,
                        send,
                        forbidden("cross-origin WebSocket handshake refused"),
                    );
                }
                return self.inner.call(scope, receive, send);
            }
            ScopeKind::Http | ScopeKind::Sse => {}
            _ => return self.inner.call(scope, receive, send),
        }
        let safe = is_safe(&scope.method);
        if !safe && self.cfg.is_cross_origin(&scope) {
            return refuse(&scope, send, forbidden("cross-origin request refused"));
        }
        let Some(tokens) = self.cfg.tokens.clone() else {
            return self.inner.call(scope, receive, send);
        };
        let cookie = tokens.cookie_token(&scope);
        if safe {
            let (token, fresh) = match cookie {
                Some(t) => (t, false),
                None => (tokens.issue(&scope), true),
            };
            tokens.stash(&scope, token.clone());
            if !fresh {
                return self.inner.call(scope, receive, send);
            }
            let set = tokens.set_cookie(&token, scope.scheme);
            let send = edit_heads(send, Arc::new(AtomicBool::new(false)), move |_, headers| {
                headers.push("set-cookie", set.clone());
            });
            return self.inner.call(scope, receive, send);
        }
        let Some(cookie) = cookie else {
            return refuse(&scope, send, forbidden("CSRF token missing or invalid"));
        };
        let header = scope
            .headers
            .get(&tokens.header)
            .and_then(header_text)
            .map(str::to_owned);
        if let Some(submitted) = header {
            if !bool::from(submitted.as_bytes().ct_eq(cookie.as_bytes())) {
                return refuse(&scope, send, forbidden("CSRF token missing or invalid"));
            }
            tokens.stash(&scope, cookie);
            return self.inner.call(scope, receive, send);
        }
        if !is_form(&scope) {
            return refuse(&scope, send, forbidden("CSRF token missing or invalid"));
        }
        // The field: read the form, check it, hand the same body on.
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut receive = receive;
            let mut body = BytesMut::new();
            loop {
                match receive.receive().await {
                    ReceiveEvent::Request { body: piece, more } => {
                        if body.len() + piece.len() > tokens.max_form {
                            let r = Error::body_too_large(tokens.max_form as u64).into_response();
                            return refuse(&scope, send, r).await;
                        }
                        body.extend_from_slice(&piece);
                        if !more {
                            break;
                        }
                    }
                    // The client left mid-body: nobody waits for an answer.
                    ReceiveEvent::Disconnect { .. } => return Ok(()),
                    _ => {}
                }
            }
            let body: Bytes = body.freeze();
            let submitted = form_urlencoded::parse(&body)
                .find(|(k, _)| *k == *tokens.field)
                .map(|(_, v)| v.into_owned());
            let ok = submitted.is_some_and(|s| bool::from(s.as_bytes().ct_eq(cookie.as_bytes())));
            if !ok {
                return refuse(&scope, send, forbidden("CSRF token missing or invalid")).await;
            }
            tokens.stash(&scope, cookie);
            let replay = Receiver::new(Replay {
                first: Some(ReceiveEvent::Request { body, more: false }),
                inner: receive,
            });
            inner.call(scope, replay, send).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_signed_bound_and_rotated() {
        let key = [1u8; 32];
        let t = CsrfTokens::new(key).unwrap();
        let scope = Scope::new(ScopeKind::Http);
        let token = t.issue(&scope);
        assert!(t.verifies(&token, &scope));
        // Tampered nonce or tag.
        let (n, tag) = token.split_once('.').unwrap();
        let mut other = t.issue(&scope);
        other.truncate(other.find('.').unwrap());
        assert!(!t.verifies(&format!("{other}.{tag}"), &scope));
        assert!(!t.verifies(&format!("{n}.{}", &tag[1..]), &scope));
        assert!(!t.verifies("garbage", &scope));
        // Another key does not verify it; as an old key it does.
        let t2 = CsrfTokens::new([2u8; 32]).unwrap();
        assert!(!t2.verifies(&token, &scope));
        assert!(t2.clone().old_key(key).verifies(&token, &scope));
        // Bound tokens.
        let bound = CsrfTokens::new(key)
            .unwrap()
            .bind(|s| s.headers.get("x-session").map(|v| v.to_vec()));
        let mut s1 = Scope::new(ScopeKind::Http);
        s1.headers.push("x-session", "one");
        let mut s2 = Scope::new(ScopeKind::Http);
        s2.headers.push("x-session", "two");
        let tok = bound.issue(&s1);
        assert!(bound.verifies(&tok, &s1));
        assert!(!bound.verifies(&tok, &s2));
        assert_eq!(
            CsrfTokens::new([0u8; 16]).unwrap_err(),
            CsrfConfigError::ShortKey(16)
        );
    }
}
