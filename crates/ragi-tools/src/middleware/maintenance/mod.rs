//! Maintenance mode: `503 Service Unavailable` with `Retry-After` for everyone but an
//! allow-list, switched on and off while the server runs.
//!
//! ```
//! use std::time::Duration;
//! use ragi_tools::middleware::maintenance::Maintenance;
//! use ragi_tools::{handler, AppExt, HttpContext};
//!
//! async fn site(_cx: HttpContext) -> &'static str { "welcome" }
//!
//! let maintenance = Maintenance::new()
//!     .allow_path("/healthz")          // probes still answered by the app
//!     .allow_prefix("/admin")          // /admin and /admin/…
//!     .allow_client("10.0.0.0/8")      // the office
//!     .retry_after(Duration::from_secs(600));
//! let switch = maintenance.switch();   // keep it: an admin route, a signal handler, …
//! let app = handler(site).layer(maintenance);
//!
//! switch.enable();                     // from now on: 503 + Retry-After: 600
//! assert!(switch.is_enabled());
//! switch.disable();
//! # let _ = app;
//! ```
//!
//! # Behaviour
//!
//! While the [`MaintenanceSwitch`] is on, an `http`, `sse` or `websocket` request that the
//! allow-list does not let through is answered with 503, `Retry-After` (300 s unless
//! [`retry_after`](Maintenance::retry_after) or [`MaintenanceSwitch::set_retry_after`] says
//! otherwise), `Cache-Control: no-store` and the message (JSON or text by `Accept`), without
//! calling the app: an SSE request gets the decline 503, a WebSocket handshake the denial 503
//! (or a close the server answers with 403) before accept. Sessions already open go on.
//!
//! The allow-list: exact paths ([`allow_path`](Maintenance::allow_path)), path prefixes on
//! segment boundaries ([`allow_prefix`](Maintenance::allow_prefix): `/admin` lets `/admin`
//! and `/admin/x` through, not `/administrator`), client addresses and CIDR blocks
//! ([`allow_client`](Maintenance::allow_client), IPv4 and IPv6; the client as the
//! forwarded-headers middleware left it, so run that first), and any predicate
//! ([`allow_if`](Maintenance::allow_if)). Paths are the scope's decoded `path`.
//!
//! The switch is an atomic flag shared by every clone of the layer and of the switch: reading
//! it costs one load per request. Nothing is held for a request, so a client that leaves frees
//! nothing.
//!
//! # References
//!
//! PAGI's `Maintenance` answers 503 with `Retry-After` and a page, with allowed IPs and paths
//! (prefix matches on strings, so `/admin` also allows `/administrator`) and a file or flag
//! to switch it; http scopes only. Starlette and tower-http have none. ragi matches prefixes
//! on segments, declines SSE and WebSocket requests in their framing, and switches at run
//! time through a handle.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, Sender};

use super::observe::{answer, ceil_secs, client_ip};
use crate::{Error, IntoResponse, Layer, SharedApp};

/// Turns maintenance mode on and off; cheap to clone, every clone is the same switch.
#[derive(Clone, Debug)]
pub struct MaintenanceSwitch {
    inner: Arc<SwitchState>,
}

#[derive(Debug)]
struct SwitchState {
    on: AtomicBool,
    retry_after: AtomicU64,
}

impl MaintenanceSwitch {
    /// Turns maintenance mode on.
    pub fn enable(&self) {
        self.set(true);
    }

    /// Turns maintenance mode off.
    pub fn disable(&self) {
        self.set(false);
    }

    /// Turns it on or off.
    pub fn set(&self, on: bool) {
        self.inner.on.store(on, Ordering::Release);
        tracing::info!(on, "maintenance mode");
    }

    /// Whether maintenance mode is on.
    pub fn is_enabled(&self) -> bool {
        self.inner.on.load(Ordering::Acquire)
    }

    /// Changes the `Retry-After` sent from now on (whole seconds, rounded up).
    pub fn set_retry_after(&self, d: Duration) {
        self.inner
            .retry_after
            .store(ceil_secs(d), Ordering::Release);
    }

    fn retry_after(&self) -> u64 {
        self.inner.retry_after.load(Ordering::Acquire)
    }
}

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("not an IP address: {addr:?}"))?;
        let net = net.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&b| b <= max)
                .ok_or_else(|| format!("not a prefix length for {addr}: {b:?}"))?,
        };
        Ok(Cidr { net, bits })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.bits))
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.bits))
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The maintenance-mode layer. See the [module documentation](self).
#[derive(Clone)]
pub struct Maintenance {
    switch: MaintenanceSwitch,
    paths: Vec<String>,
    prefixes: Vec<String>,
    clients: Vec<Cidr>,
    allow_if: Option<Arc<dyn Fn(&Scope) -> bool + Send + Sync>>,
    message: Arc<str>,
}

impl std::fmt::Debug for Maintenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maintenance")
            .field("enabled", &self.switch.is_enabled())
            .field("paths", &self.paths)
            .field("prefixes", &self.prefixes)
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

impl Default for Maintenance {
    fn default() -> Self {
        Self::new()
    }
}

impl Maintenance {
    /// Off, nothing allowed, `Retry-After: 300`.
    pub fn new() -> Self {
        Self {
            switch: MaintenanceSwitch {
                inner: Arc::new(SwitchState {
                    on: AtomicBool::new(false),
                    retry_after: AtomicU64::new(300),
                }),
            },
            paths: Vec::new(),
            prefixes: Vec::new(),
            clients: Vec::new(),
            allow_if: None,
            message: Arc::from("down for maintenance"),
        }
    }

    /// Starts on (`true`) or off.
    pub fn enabled(self, on: bool) -> Self {
        self.switch.inner.on.store(on, Ordering::Release);
        self
    }

    /// The switch of this layer (and of every app it wraps).
    pub fn switch(&self) -> MaintenanceSwitch {
        self.switch.clone()
    }

    /// Lets `path` through (exactly).
    pub fn allow_path(mut self, path: &str) -> Self {
        self.paths.push(path.to_owned());
        self
    }

    /// Lets `prefix` and the paths below it through (`/admin`: `/admin`, `/admin/…`).
    pub fn allow_prefix(mut self, prefix: &str) -> Self {
        self.prefixes.push(prefix.trim_end_matches('/').to_owned());
        self
    }

    /// Lets a client address or CIDR block through (`10.0.0.0/8`, `2001:db8::/32`, `::1`).
    ///
    /// # Panics
    ///
    /// When `cidr` is not an address or a block (the message names it).
    pub fn allow_client(mut self, cidr: &str) -> Self {
        match Cidr::parse(cidr) {
            Ok(c) => self.clients.push(c),
            Err(e) => panic!("Maintenance::allow_client: {e}"),
        }
        self
    }

    /// Lets the requests `f` picks through.
    pub fn allow_if(mut self, f: impl Fn(&Scope) -> bool + Send + Sync + 'static) -> Self {
        self.allow_if = Some(Arc::new(f));
        self
    }

    /// The `Retry-After` (whole seconds, rounded up).
    pub fn retry_after(self, d: Duration) -> Self {
        self.switch.set_retry_after(d);
        self
    }

    /// The message in the 503's body (`down for maintenance`).
    pub fn message(mut self, message: &str) -> Self {
        self.message = Arc::from(message);
        self
    }

    fn allows(&self, scope: &Scope) -> bool {
        let path = scope.path.as_str();
        if self.paths.iter().any(|p| p == path) {
            return true;
        }
        if self.prefixes.iter().any(|p| {
            p.is_empty()
                || path
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        }) {
            return true;
        }
        if let Some(ip) = client_ip(scope) {
            if self.clients.iter().any(|c| c.contains(ip)) {
                return true;
            }
        }
        self.allow_if.as_ref().is_some_and(|f| f(scope))
    }
}

impl Layer for Maintenance {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(MaintenanceApp {
            cfg: self.clone(),
            inner,
        })
    }
}

struct MaintenanceApp {
    cfg: Maintenance,
    inner: SharedApp,
}

impl App for MaintenanceApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let cfg = &self.cfg;
        if scope.kind == ScopeKind::Lifespan || !cfg.switch.is_enabled() || cfg.allows(&scope) {
            return self.inner.call(scope, receive, send);
        }
        let response = Error::new(503, cfg.message.to_string())
            .with_header("retry-after", cfg.switch.retry_after().to_string())
            .with_header("cache-control", "no-store")
            .into_response();
        answer(scope, send, response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.200.1.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!c.contains("2001:db9::1".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("ten").is_err());
    }
}
