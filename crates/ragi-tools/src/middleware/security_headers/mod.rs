//! Security headers: HSTS (over https only), `Content-Security-Policy`,
//! `X-Content-Type-Options`, `X-Frame-Options`, `Referrer-Policy`, and any other fixed header.
//!
//! ```
//! use std::time::Duration;
//! use ragi_tools::middleware::security_headers::{FrameOptions, Hsts, SecurityHeaders};
//! use ragi_tools::{handler, AppExt, HttpContext};
//!
//! async fn page(_cx: HttpContext) -> &'static str { "hello" }
//!
//! let headers = SecurityHeaders::new()
//!     .hsts(Hsts::new(Duration::from_secs(63_072_000)).include_subdomains().preload())
//!     .content_security_policy("default-src 'self'")
//!     .frame_options(FrameOptions::SameOrigin)
//!     .referrer_policy("no-referrer")
//!     .header("permissions-policy", "geolocation=()");
//! let app = handler(page).layer(headers);
//! # let _ = app;
//! ```
//!
//! # Defaults
//!
//! | header | default |
//! |---|---|
//! | `Strict-Transport-Security` | `max-age=31536000; includeSubDomains`, **only when the scope's scheme is `https` or `wss`** (RFC 6797 §7.2: a browser ignores it over plain HTTP, and sending it there only misleads) |
//! | `X-Content-Type-Options` | `nosniff` |
//! | `X-Frame-Options` | `DENY` |
//! | `Referrer-Policy` | `strict-origin-when-cross-origin` |
//! | `Content-Security-Policy` | none: a policy is specific to the app (a default one breaks inline scripts); set one with [`content_security_policy`](SecurityHeaders::content_security_policy) |
//!
//! Each can be changed or turned off. Behind a TLS-terminating proxy the scheme comes from
//! the [`forwarded`](super::forwarded) middleware: place it outside this one.
//!
//! # The app wins
//!
//! A header the app set itself is never duplicated or overwritten: the app knows better for
//! that response (a page that must be framed sets its own `X-Frame-Options` or CSP). The
//! middleware only adds what is missing.
//!
//! # Scopes
//!
//! Every HTTP response head gets the headers: `http` responses, the head of an `sse` stream
//! and its decline response, a WebSocket handshake's denial response, and the 500 answered
//! when the app failed before answering. A WebSocket accept (101) gets none: these are
//! document policies, meaningless on an upgrade. Lifespan scopes pass through.
//!
//! # References
//!
//! PAGI's `SecurityHeaders` and helmet set similar defaults; PAGI's `HTTPSRedirect` adds HSTS
//! only on https responses, which is followed here. Starlette and tower-http ship no such
//! middleware (tower-http's `SetResponseHeader::if_not_present` is the "app wins" rule).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ragi::{App, AppResult, BoxFuture, Headers, Receiver, Scope, ScopeKind, Sender};

use super::security_support::{edit_heads, run_answering_failures};
use crate::{Layer, SharedApp};

/// `Strict-Transport-Security`: `max-age`, `includeSubDomains`, `preload`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hsts {
    max_age: Duration,
    include_subdomains: bool,
    preload: bool,
}

impl Hsts {
    /// `max-age` only.
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            include_subdomains: false,
            preload: false,
        }
    }

    /// Adds `includeSubDomains`.
    pub fn include_subdomains(mut self) -> Self {
        self.include_subdomains = true;
        self
    }

    /// Adds `preload` (for the browsers' preload lists, which also want a max-age of a year
    /// or more and `includeSubDomains`).
    pub fn preload(mut self) -> Self {
        self.preload = true;
        self
    }

    /// The header value.
    pub fn value(&self) -> String {
        let mut v = format!("max-age={}", self.max_age.as_secs());
        if self.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.preload {
            v.push_str("; preload");
        }
        v
    }
}

impl Default for Hsts {
    /// A year, with `includeSubDomains`.
    fn default() -> Self {
        Hsts::new(Duration::from_secs(31_536_000)).include_subdomains()
    }
}

/// `X-Frame-Options`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameOptions {
    /// `DENY`: never in a frame.
    Deny,
    /// `SAMEORIGIN`: only in frames of the same origin.
    SameOrigin,
}

/// The security-headers layer. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct SecurityHeaders {
    hsts: Option<Bytes>,
    always: Arc<Vec<(Bytes, Bytes)>>,
}

impl Default for SecurityHeaders {
    fn default() -> Self {
        Self::new()
    }
}

impl SecurityHeaders {
    /// The defaults (see the [module documentation](self)).
    pub fn new() -> Self {
        Self {
            hsts: Some(Bytes::from(Hsts::default().value())),
            always: Arc::new(vec![
                (
                    Bytes::from_static(b"x-content-type-options"),
                    Bytes::from_static(b"nosniff"),
                ),
                (
                    Bytes::from_static(b"x-frame-options"),
                    Bytes::from_static(b"DENY"),
                ),
                (
                    Bytes::from_static(b"referrer-policy"),
                    Bytes::from_static(b"strict-origin-when-cross-origin"),
                ),
            ]),
        }
    }

    /// No header at all; add each with the other methods.
    pub fn empty() -> Self {
        Self {
            hsts: None,
            always: Arc::new(Vec::new()),
        }
    }

    fn put(mut self, name: &'static str, value: Option<Bytes>) -> Self {
        let list = Arc::make_mut(&mut self.always);
        list.retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()));
        if let Some(v) = value {
            list.push((Bytes::from_static(name.as_bytes()), v));
        }
        self
    }

    /// The HSTS policy sent over https.
    pub fn hsts(mut self, hsts: Hsts) -> Self {
        self.hsts = Some(Bytes::from(hsts.value()));
        self
    }

    /// No HSTS.
    pub fn no_hsts(mut self) -> Self {
        self.hsts = None;
        self
    }

    /// `Content-Security-Policy: <policy>`.
    pub fn content_security_policy(self, policy: impl Into<Bytes>) -> Self {
        self.put("content-security-policy", Some(policy.into()))
    }

    /// `Content-Security-Policy-Report-Only: <policy>` (reports violations, blocks nothing).
    pub fn content_security_policy_report_only(self, policy: impl Into<Bytes>) -> Self {
        self.put("content-security-policy-report-only", Some(policy.into()))
    }

    /// `X-Frame-Options`.
    pub fn frame_options(self, options: FrameOptions) -> Self {
        let v = match options {
            FrameOptions::Deny => "DENY",
            FrameOptions::SameOrigin => "SAMEORIGIN",
        };
        self.put("x-frame-options", Some(Bytes::from_static(v.as_bytes())))
    }

    /// No `X-Frame-Options` (e.g. when a CSP `frame-ancestors` says it).
    pub fn no_frame_options(self) -> Self {
        self.put("x-frame-options", None)
    }

    /// `Referrer-Policy: <policy>`.
    pub fn referrer_policy(self, policy: impl Into<Bytes>) -> Self {
        self.put("referrer-policy", Some(policy.into()))
    }

    /// No `Referrer-Policy`.
    pub fn no_referrer_policy(self) -> Self {
        self.put("referrer-policy", None)
    }

    /// `X-Content-Type-Options: nosniff`, or none.
    pub fn content_type_options(self, nosniff: bool) -> Self {
        self.put(
            "x-content-type-options",
            nosniff.then(|| Bytes::from_static(b"nosniff")),
        )
    }

    /// Any other header, added unless the app set it (`Permissions-Policy`,
    /// `Cross-Origin-Opener-Policy`, …). A later call for the same name replaces it.
    ///
    /// # Panics
    ///
    /// When `name` or `value` is not a valid header (CR, LF, NUL, a separator in the name):
    /// a configuration error, caught where the layer is built.
    pub fn header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        let name: Bytes = Bytes::from(name.into().to_ascii_lowercase());
        let value: Bytes = value.into();
        if let Err(e) = ragi::validate_header(&name, &value) {
            panic!("SecurityHeaders::header: {e}");
        }
        let list = Arc::make_mut(&mut self.always);
        list.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        list.push((name, value));
        self
    }

    /// Adds what is missing to `headers` for a response over `scheme`.
    fn apply(&self, scheme: &str, headers: &mut Headers) {
        for (n, v) in self.always.iter() {
            let name = std::str::from_utf8(n).unwrap_or("");
            if !headers.contains(name) {
                headers.push(n.clone(), v.clone());
            }
        }
        if let Some(hsts) = &self.hsts {
            if matches!(scheme, "https" | "wss") && !headers.contains("strict-transport-security") {
                headers.push("strict-transport-security", hsts.clone());
            }
        }
    }
}

impl Layer for SecurityHeaders {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(SecurityHeadersApp {
            cfg: self.clone(),
            inner,
        })
    }
}

struct SecurityHeadersApp {
    cfg: SecurityHeaders,
    inner: SharedApp,
}

impl App for SecurityHeadersApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        if !matches!(
            scope.kind,
            ScopeKind::Http | ScopeKind::Sse | ScopeKind::WebSocket
        ) {
            return self.inner.call(scope, receive, send);
        }
        let cfg = self.cfg.clone();
        let scheme = scope.scheme;
        let started = Arc::new(AtomicBool::new(false));
        let send = edit_heads(send, started.clone(), move |_status, headers| {
            cfg.apply(scheme, headers)
        });
        run_answering_failures(&self.inner, scope, receive, send, started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_values() {
        assert_eq!(
            Hsts::default().value(),
            "max-age=31536000; includeSubDomains"
        );
        assert_eq!(
            Hsts::new(Duration::from_secs(60)).preload().value(),
            "max-age=60; preload"
        );
    }

    #[test]
    fn only_missing_headers_are_added_and_hsts_only_over_https() {
        let cfg = SecurityHeaders::new().content_security_policy("default-src 'self'");
        let mut h = Headers::new().with("X-Frame-Options", "SAMEORIGIN");
        cfg.apply("http", &mut h);
        assert_eq!(h.get_all("x-frame-options").count(), 1);
        assert_eq!(h.get_str("x-frame-options"), Some("SAMEORIGIN"));
        assert_eq!(h.get_str("x-content-type-options"), Some("nosniff"));
        assert!(!h.contains("strict-transport-security"));
        let mut h = Headers::new();
        cfg.apply("wss", &mut h);
        assert!(h.contains("strict-transport-security"));
        assert_eq!(
            h.get_str("content-security-policy"),
            Some("default-src 'self'")
        );
    }
}
