//! Trusted hosts: refuses a request whose `Host` (HTTP/2's `:authority`) is not one of the
//! server's names, with 400 — the defence against DNS rebinding and host-header poisoning.
//!
//! ```
//! use ragi_tools::middleware::trusted_host::TrustedHosts;
//! use ragi_tools::{handler, AppExt, HttpContext};
//!
//! async fn page(_cx: HttpContext) -> &'static str { "hello" }
//!
//! let hosts = TrustedHosts::new([
//!     "example.com",        // any port
//!     "*.example.com",      // any subdomain (a.example.com, a.b.example.com), not the apex
//!     "localhost:8080",     // that port only
//!     "[::1]",              // an IPv6 literal
//! ])
//! .expect("valid host patterns");
//! let app = handler(page).layer(hosts);
//! # let _ = app;
//! ```
//!
//! # Matching
//!
//! * The host is read from the one `host` field of the scope. `ragi-server` puts HTTP/2's
//!   `:authority` there (replacing any `host` field) and an absolute-form request target's
//!   authority too, so every version is checked the same way. No host, two hosts, or a host
//!   that does not parse (a path, userinfo, spaces, an unbracketed IPv6 address, a port over
//!   65535) is refused.
//! * Names compare case-insensitively, with one trailing dot ignored (`Example.COM.` is
//!   `example.com`). IP literals compare as addresses (`[0:0::1]` is `[::1]`).
//! * **Ports**: a pattern without a port matches any port (and none); a pattern with a port
//!   matches that port only, and the scheme's default port counts as written
//!   (`example.com:443` matches `Host: example.com` over https). PAGI compares the whole
//!   `Host` string, so `example.com` refuses `example.com:8080`; Starlette drops the port with
//!   `split(":")`, which breaks IPv6 literals (Kludex/starlette#3357).
//! * **Wildcards**: `*.example.com` matches any subdomain at any depth, never the apex
//!   `example.com` (Starlette's rule); `*` alone matches every host (the check then only
//!   refuses malformed hosts). A `*` anywhere else is a configuration error.
//!
//! # Refusal
//!
//! 400 `invalid host header` (JSON or text by `Accept`), in the scope's framing: the decline
//! pair on an `sse` scope, and on a `websocket` scope the denial pair **before accept**. The
//! app is not called. With [`allow_missing_host`](TrustedHosts::allow_missing_host) an
//! HTTP/1.0 request without `Host` passes (ragi-server refuses an HTTP/1.1 one itself).
//!
//! Behind a proxy that sets `X-Forwarded-Host`, place the [`forwarded`](super::forwarded)
//! middleware outside this one: the rewritten host is checked.

use std::sync::Arc;

use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, Sender};

use super::security_support::{default_port, parse_authority, refuse, request_authority, HostName};
use crate::{Error, IntoResponse, Layer, SharedApp};

/// A host pattern that is not one, named by [`TrustedHosts::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidHostPattern(pub String);

impl std::fmt::Display for InvalidHostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid trusted host pattern {:?}: expected host[:port], [ipv6][:port], a leading \
             `*.` wildcard, or `*`",
            self.0
        )
    }
}

impl std::error::Error for InvalidHostPattern {}

#[derive(Clone, Debug)]
enum Pattern {
    Any,
    Exact(HostName, Option<u16>),
    /// `*.suffix`: the suffix with its leading dot.
    Subdomains(String, Option<u16>),
}

impl Pattern {
    fn parse(p: &str) -> Result<Pattern, InvalidHostPattern> {
        let bad = || InvalidHostPattern(p.to_owned());
        let t = p.trim();
        if t == "*" {
            return Ok(Pattern::Any);
        }
        if let Some(rest) = t.strip_prefix("*.") {
            let a = parse_authority(rest.as_bytes()).ok_or_else(bad)?;
            return match a.host {
                HostName::Name(n) if !rest.contains('*') => {
                    Ok(Pattern::Subdomains(format!(".{n}"), a.port))
                }
                _ => Err(bad()),
            };
        }
        if t.contains('*') {
            return Err(bad());
        }
        let a = parse_authority(t.as_bytes()).ok_or_else(bad)?;
        Ok(Pattern::Exact(a.host, a.port))
    }

    fn matches(&self, host: &HostName, port: u16) -> bool {
        let port_ok = |want: &Option<u16>| want.is_none_or(|p| p == port);
        match self {
            Pattern::Any => true,
            Pattern::Exact(h, p) => h == host && port_ok(p),
            Pattern::Subdomains(suffix, p) => match host {
                HostName::Name(n) => {
                    n.len() > suffix.len() && n.ends_with(suffix.as_str()) && port_ok(p)
                }
                HostName::Ip(_) => false,
            },
        }
    }
}

/// The trusted-hosts layer. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct TrustedHosts {
    patterns: Arc<Vec<Pattern>>,
    allow_missing: bool,
}

impl TrustedHosts {
    /// Trusts the hosts matching `patterns`; names the first pattern that is not one.
    pub fn new<I, S>(patterns: I) -> Result<Self, InvalidHostPattern>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let patterns = patterns
            .into_iter()
            .map(|p| Pattern::parse(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            patterns: Arc::new(patterns),
            allow_missing: false,
        })
    }

    /// Lets a request without any `Host` through (an HTTP/1.0 client); off by default.
    pub fn allow_missing_host(mut self, allow: bool) -> Self {
        self.allow_missing = allow;
        self
    }

    /// Whether the request's host is trusted.
    pub fn check(&self, scope: &Scope) -> Result<(), &'static str> {
        let a = match request_authority(scope) {
            Ok(a) => a,
            Err("missing host header") if self.allow_missing => return Ok(()),
            Err(e) => return Err(e),
        };
        let port = a.port.unwrap_or_else(|| default_port(scope.scheme));
        if self.patterns.iter().any(|p| p.matches(&a.host, port)) {
            Ok(())
        } else {
            Err("invalid host header")
        }
    }
}

impl Layer for TrustedHosts {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(TrustedHostsApp {
            cfg: self.clone(),
            inner,
        })
    }
}

struct TrustedHostsApp {
    cfg: TrustedHosts,
    inner: SharedApp,
}

impl App for TrustedHostsApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        if !matches!(
            scope.kind,
            ScopeKind::Http | ScopeKind::Sse | ScopeKind::WebSocket
        ) {
            return self.inner.call(scope, receive, send);
        }
        match self.cfg.check(&scope) {
            Ok(()) => self.inner.call(scope, receive, send),
            Err(why) => {
                tracing::debug!(host = ?scope.headers.get("host"), why, "host refused");
                refuse(&scope, send, Error::new(400, why).into_response())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_checked_when_built() {
        for bad in [
            "", "a b", "*.*.x", "a.*.x", "*x.com", "*.[::1]", "h:99999", "[::1",
        ] {
            assert!(TrustedHosts::new([bad]).is_err(), "{bad:?}");
        }
        assert!(TrustedHosts::new(["*", "*.a.com:8080", "[::1]:80", "1.2.3.4"]).is_ok());
    }
}
