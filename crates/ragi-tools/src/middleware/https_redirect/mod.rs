//! HTTPS redirect: sends a plain-HTTP request to the same URL over https (a WebSocket
//! handshake to `wss`), keeping the method, the raw path and the query.
//!
//! ```
//! use ragi_tools::middleware::https_redirect::HttpsRedirect;
//! use ragi_tools::middleware::security_headers::SecurityHeaders;
//! use ragi_tools::{handler, HttpContext, Stack};
//!
//! async fn page(_cx: HttpContext) -> &'static str { "hello" }
//!
//! let app = Stack::new()
//!     .enable(HttpsRedirect::new().permanent())   // http://h/p?q → 308 https://h/p?q
//!     .enable(SecurityHeaders::new())             // HSTS on the https responses
//!     .run(handler(page));
//! # let _ = app;
//! ```
//!
//! # What it does
//!
//! * A scope whose scheme is `http` (`ws`) is answered with **307** (the default) or **308**
//!   ([`permanent`](HttpsRedirect::permanent)): both make the client repeat the same method
//!   with the same body — PAGI's default 301 lets a POST become a GET. The app is not called.
//! * `Location` is `https://` + the request's host + `root_path` + the **raw path** as it
//!   arrived (an encoded `%2F` stays encoded; PAGI rebuilds it from the decoded path) + `?` and
//!   the query as it arrived.
//! * **Ports**: `:80` is dropped; another port is kept (Starlette) unless
//!   [`https_port`](HttpsRedirect::https_port) names the https port (443 is then left out).
//! * **WebSocket**: a `ws` handshake is declined before accept with the same redirect to
//!   `wss://…` (the denial pair; a server without the denial extension answers 403). Browsers
//!   do not follow redirects of a WebSocket handshake, so the page must use `wss:` itself;
//!   the redirect tells other clients where to go.
//! * **SSE**: the redirect is the decline pair; `EventSource` follows it.
//! * A missing or malformed `Host` gets 400 (there is nowhere to redirect to). The host is
//!   taken as the client sent it: place [`trusted_host`](super::trusted_host) outside this
//!   middleware so that no redirect points at a host that is not yours.
//!
//! # HSTS
//!
//! This middleware never sends `Strict-Transport-Security`: over plain HTTP a browser ignores
//! it (RFC 6797 §8.1). The https responses carry it when the
//! [`security_headers`](super::security_headers) middleware runs (its default); once a
//! browser has seen it, it upgrades `http://` URLs itself and this redirect is only the first
//! visit's (and non-browsers') path.
//!
//! # Behind a proxy
//!
//! A TLS-terminating proxy talks plain HTTP to the server, so every scope says `http` and this
//! middleware would redirect forever. Place the [`forwarded`](super::forwarded) middleware
//! outside it: from a trusted proxy it sets the scheme from `X-Forwarded-Proto` (or
//! `Forwarded: proto=`), and only then does this middleware see `https`.

use std::sync::Arc;

use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, Sender};

use super::security_support::{encode_path, refuse, request_authority, Authority};
use crate::{Error, IntoResponse, Layer, Response, SharedApp};

/// The HTTPS-redirect layer. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct HttpsRedirect {
    status: u16,
    https_port: Option<u16>,
}

impl Default for HttpsRedirect {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpsRedirect {
    /// Redirects with 307 Temporary Redirect.
    pub fn new() -> Self {
        Self {
            status: 307,
            https_port: None,
        }
    }

    /// Redirects with 308 Permanent Redirect (browsers cache it).
    pub fn permanent(mut self) -> Self {
        self.status = 308;
        self
    }

    /// The port https is served on: every redirect goes there (443 is left out of the URL).
    pub fn https_port(mut self, port: u16) -> Self {
        self.https_port = Some(port);
        self
    }

    /// The URL `scope` is redirected to (its secure scheme), or why there is none.
    pub fn location(&self, scope: &Scope) -> Result<String, &'static str> {
        let authority = request_authority(scope)?;
        let scheme = if scope.kind == ScopeKind::WebSocket {
            "wss"
        } else {
            "https"
        };
        let port = match (self.https_port, authority.port) {
            (Some(443), _) | (None, None) | (None, Some(80)) => None,
            (Some(p), _) => Some(p),
            (None, Some(p)) => Some(p),
        };
        let host = Authority {
            host: authority.host,
            port,
        };
        let raw = String::from_utf8_lossy(&scope.raw_path);
        let path = if raw.starts_with('/') { &*raw } else { "/" };
        let mut url = format!("{scheme}://{host}{}{path}", encode_path(&scope.root_path));
        if !scope.query_string.is_empty() {
            url.push('?');
            url.push_str(&String::from_utf8_lossy(&scope.query_string));
        }
        Ok(url)
    }
}

impl Layer for HttpsRedirect {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(HttpsRedirectApp {
            cfg: self.clone(),
            inner,
        })
    }
}

struct HttpsRedirectApp {
    cfg: HttpsRedirect,
    inner: SharedApp,
}

impl App for HttpsRedirectApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let plain = match scope.kind {
            ScopeKind::Http | ScopeKind::Sse => scope.scheme == "http",
            ScopeKind::WebSocket => scope.scheme == "ws",
            _ => false,
        };
        if !plain {
            return self.inner.call(scope, receive, send);
        }
        let response = match self.cfg.location(&scope) {
            Ok(url) => Response::redirect_with(self.cfg.status, url),
            Err(why) => Error::new(400, why).into_response(),
        };
        refuse(&scope, send, response)
    }
}
