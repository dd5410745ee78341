//! Rate limits: keyed token buckets with the IETF `RateLimit-Policy` / `RateLimit` headers, a
//! concurrency limit whose slot is freed **the moment the client leaves**, and a WebSocket
//! message rate limit.
//!
//! ```
//! use std::time::Duration;
//! use ragi_tools::middleware::rate_limit::{ConcurrencyLimit, RateLimit, WsRateLimit};
//! use ragi_tools::{handler, HttpContext, Stack};
//!
//! async fn api(_cx: HttpContext) -> &'static str { "ok" }
//!
//! let app = Stack::new()
//!     // 100 requests a minute per client, all of them usable at once.
//!     .enable(RateLimit::new(100, Duration::from_secs(60)))
//!     // At most 64 requests in progress; the 65th waits up to 2 s for a slot, then 503.
//!     .enable(ConcurrencyLimit::new(64).wait(Duration::from_secs(2)))
//!     // 20 messages a second per WebSocket session (burst 40); beyond: close 1008.
//!     .enable(WsRateLimit::new(20, Duration::from_secs(1)).burst(40))
//!     .run(handler(api));
//! # let _ = app;
//! ```
//!
//! # Token buckets ([`RateLimit`])
//!
//! `RateLimit::new(q, w)` gives each **key** a bucket of `q` tokens refilled continuously at
//! `q / w` tokens a second; a request takes one token, and a request that finds none gets
//! **429** with `Retry-After` (whole seconds until a token is back, at least 1) and the app is
//! not called. WebSocket handshakes are refused before accept (the denial 429, or a close that
//! the server answers with 403) and SSE requests with the decline 429.
//!
//! * **The key** is the client's IP address as the scope has it, IPv6 addresses by their /64
//!   prefix (one subscriber gets a /64; [`ipv6_prefix`](RateLimit::ipv6_prefix) changes it);
//!   no address (a Unix socket) is one shared key. The address is `scope.client`, which the
//!   **forwarded-headers middleware** rewrites from trusted proxies: run that first. This layer
//!   never reads `X-Forwarded-For` itself (a client writes whatever it likes there).
//!   [`key`](RateLimit::key) takes any key function (a user id, an API key); returning `None`
//!   exempts the request.
//! * **Instances are isolated.** The buckets belong to the `RateLimit` value that made them:
//!   two `RateLimit::new(..)` never share a bucket, even with equal settings (PAGI keeps every
//!   limiter's buckets in one process-wide hash, so two limiters count each other's requests).
//!   Clones of one value, and every app one value wraps, share its buckets: that is how two
//!   routes share one budget.
//! * **The map is bounded.** Full buckets are swept every window (a full bucket carries no
//!   state: a new one is the same) and, should [`max_keys`](RateLimit::max_keys) (100 000 by
//!   default) still be reached, the least recently used eighth is forgotten.
//! * **Headers** on every response head (also on 429s), per
//!   [draft-ietf-httpapi-ratelimit-headers-10][draft] (the latest published revision, its
//!   syntax unchanged since -09):
//!   `RateLimit-Policy: "default";q=100;w=60` and `RateLimit: "default";r=42;t=1`, where `r`
//!   is the tokens left and `t` the whole seconds, rounded up, until the next one comes back.
//!   The policy name is [`policy`](RateLimit::policy)'s; [`headers`](RateLimit::headers)
//!   turns them off. No partition key (`pk`) is sent: the key is the client's address, which
//!   the draft says not to echo.
//!
//! The clock is tokio's, so tests run with a paused clock. A client that leaves has nothing to
//! give back: its token was spent when it arrived.
//!
//! # Concurrency ([`ConcurrencyLimit`])
//!
//! At most `n` exchanges in progress (globally, or per key with
//! [`per_client`](ConcurrencyLimit::per_client)). The slot is taken when the request arrives and
//! freed at the **first** of: the client leaving (the connection object's `on_disconnect`, so
//! an app that ignores the departure and runs on no longer holds it), the response delivered
//! whole (`on_complete`), or the app's call returning. A request that finds no slot gets 503
//! (429 per client) with `Retry-After`, at once or after waiting up to
//! [`wait`](ConcurrencyLimit::wait) for one; a client that leaves while it waits gives its place
//! up and nothing is sent. `RateLimit-Policy: "concurrency";q=64;qu="concurrent-requests"` and
//! `RateLimit: "concurrency";r=<free slots>` go on the response heads.
//!
//! # WebSocket messages ([`WsRateLimit`])
//!
//! Per session: `n` messages per window (a burst of [`burst`](WsRateLimit::burst)), optionally
//! a byte budget too ([`bytes`](WsRateLimit::bytes)). A message over the limit is either
//! **dropped** (the app never sees it; counted and logged) or **closes** the session with 1008
//! "rate limit exceeded" ([`Exceed`]; closing is the default): the close frame is sent, later
//! messages are discarded, and the app's next `receive` is the session's end. Either way a
//! [`WsRateLimited`] record (how many messages were refused) is in the stash. Messages are
//! counted as the app takes them from `receive` (a layer sees no arrival times): an app that
//! reads as fast as they come measures the client's rate; the server's bounded receive queue
//! (1000 messages, then 1008 `queue_overflow`) is what bounds a client when the app is slow.
//!
//! # References
//!
//! PAGI's `RateLimit`: token bucket (10/s, burst 20) keyed by `client[0]`, `X-RateLimit-*`
//! headers with an absolute reset, buckets in a module-global hash shared by every instance,
//! trimmed by half at 10 000 keys; its `WebSocket::RateLimit` closes with 1008 or drops (100
//! msg/s, 1 MiB/s, burst ×2, which ragi takes as its WebSocket defaults). tower's
//! `RateLimitLayer` is unkeyed and its state is per clone (tokio-rs/axum#2634); Starlette has
//! none. No reference frees a concurrency slot when the client leaves.
//!
//! [draft]: https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/10/

mod bucket;
mod concurrency;
mod websocket;

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, SendError, SendEvent, Sender};
use tokio::time::Instant;

pub use concurrency::ConcurrencyLimit;
pub use websocket::{Exceed, WsRateLimit, WsRateLimited};

use self::bucket::{ceil_secs, Buckets, Quota, Take};
use super::observe::{answer, client_ip, head_headers_mut, tap, Tap};
use crate::{Error, IntoResponse, Layer, SharedApp};

/// What a rate limit counts by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Key {
    /// An address (IPv6 ones as the configured prefix).
    Ip(IpAddr),
    /// Any other key: a user id, an API key, a route.
    Text(Arc<str>),
    /// Requests with no key of their own (no client address): all share this one.
    Unknown,
}

impl Key {
    /// The client's address of `scope`, an IPv6 address cut to its first `ipv6_prefix` bits;
    /// [`Key::Unknown`] when the scope has no client address.
    pub fn client(scope: &Scope, ipv6_prefix: u8) -> Key {
        match client_ip(scope) {
            Some(IpAddr::V6(a)) => Key::Ip(IpAddr::V6(mask_v6(a, ipv6_prefix))),
            Some(ip) => Key::Ip(ip),
            None => Key::Unknown,
        }
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Key::Text(Arc::from(s))
    }
}

impl From<String> for Key {
    fn from(s: String) -> Self {
        Key::Text(Arc::from(s))
    }
}

impl From<IpAddr> for Key {
    fn from(ip: IpAddr) -> Self {
        Key::Ip(ip)
    }
}

fn mask_v6(a: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let prefix = u32::from(prefix.min(128));
    let bits = u128::from(a);
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    Ipv6Addr::from(bits & mask)
}

pub(crate) type KeyFn = Arc<dyn Fn(&Scope) -> Option<Key> + Send + Sync>;

/// The scope kinds the limits apply to by default.
const LIMITED: [ScopeKind; 3] = [ScopeKind::Http, ScopeKind::Sse, ScopeKind::WebSocket];

/// `"name";q=…;w=…` etc. need the name as an sf-string: printable ASCII, `"` and `\` escaped.
fn sf_string(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push('"');
    for c in name.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// The keyed token-bucket limit. See the [module documentation](self).
#[derive(Clone)]
pub struct RateLimit {
    buckets: Arc<Buckets>,
    quota: u64,
    window: Duration,
    key: Option<KeyFn>,
    ipv6_prefix: u8,
    policy: Arc<str>,
    headers: bool,
    status: u16,
    kinds: Vec<ScopeKind>,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("quota", &self.quota)
            .field("window", &self.window)
            .field("policy", &self.policy)
            .field("keys", &self.buckets.len())
            .finish_non_exhaustive()
    }
}

impl RateLimit {
    /// `quota` requests per `window` per client, all usable at once, refilled continuously.
    ///
    /// # Panics
    ///
    /// When `quota` is 0 or `window` is zero.
    pub fn new(quota: u64, window: Duration) -> Self {
        assert!(
            quota > 0 && !window.is_zero(),
            "a rate limit needs a quota and a window"
        );
        Self {
            buckets: Arc::new(Self::make(quota, window, 100_000)),
            quota,
            window,
            key: None,
            ipv6_prefix: 64,
            policy: Arc::from("default"),
            headers: true,
            status: 429,
            kinds: LIMITED.to_vec(),
        }
    }

    fn make(quota: u64, window: Duration, max_keys: usize) -> Buckets {
        Buckets::new(
            Quota::per_window(quota, window),
            max_keys,
            window.max(Duration::from_secs(1)),
        )
    }

    /// Counts by `f`'s key; `None` exempts the request. The default is the client's address
    /// ([`Key::client`]).
    pub fn key(mut self, f: impl Fn(&Scope) -> Option<Key> + Send + Sync + 'static) -> Self {
        self.key = Some(Arc::new(f));
        self
    }

    /// IPv6 clients are counted by their first `bits` bits (64 by default; 128 for each
    /// address).
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits.min(128);
        self
    }

    /// The policy's name in the headers (`default`).
    pub fn policy(mut self, name: &str) -> Self {
        self.policy = Arc::from(name);
        self
    }

    /// Whether to send `RateLimit-Policy` and `RateLimit` (yes by default; `Retry-After` on a
    /// 429 is always sent).
    pub fn headers(mut self, on: bool) -> Self {
        self.headers = on;
        self
    }

    /// The status of a refusal (429 by default).
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// At most `n` keys have a bucket at once (100 000 by default). Starts this instance's
    /// buckets anew.
    pub fn max_keys(mut self, n: usize) -> Self {
        self.buckets = Arc::new(Self::make(self.quota, self.window, n));
        self
    }

    /// The scope kinds limited (`http`, `sse` and `websocket` by default).
    pub fn kinds(mut self, kinds: &[ScopeKind]) -> Self {
        self.kinds = kinds.to_vec();
        self
    }

    /// How many keys have a bucket now.
    pub fn tracked_keys(&self) -> usize {
        self.buckets.len()
    }

    fn policy_header(&self) -> String {
        let w = ceil_secs(self.window).max(1);
        format!("{};q={};w={w}", sf_string(&self.policy), self.quota)
    }

    fn limit_header(&self, remaining: u64, next: Duration) -> String {
        format!(
            "{};r={remaining};t={}",
            sf_string(&self.policy),
            ceil_secs(next)
        )
    }
}

impl Layer for RateLimit {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(RateLimitApp {
            cfg: self.clone(),
            inner,
        })
    }
}

struct RateLimitApp {
    cfg: RateLimit,
    inner: SharedApp,
}

impl App for RateLimitApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let cfg = &self.cfg;
        if !cfg.kinds.contains(&scope.kind) {
            return self.inner.call(scope, receive, send);
        }
        let key = match &cfg.key {
            Some(f) => f(&scope),
            None => Some(Key::client(&scope, cfg.ipv6_prefix)),
        };
        let Some(key) = key else {
            return self.inner.call(scope, receive, send);
        };
        match cfg.buckets.take(&key, Instant::now()) {
            Take::Granted { remaining, next } => {
                if !cfg.headers {
                    return self.inner.call(scope, receive, send);
                }
                let headers = vec![
                    (
                        Bytes::from_static(b"ratelimit-policy"),
                        Bytes::from(cfg.policy_header()),
                    ),
                    (
                        Bytes::from_static(b"ratelimit"),
                        Bytes::from(cfg.limit_header(remaining, next)),
                    ),
                ];
                let send = tap(send, AddHeaders(headers));
                self.inner.call(scope, receive, send)
            }
            Take::Refused { wait } => {
                let retry = ceil_secs(wait).max(1);
                tracing::debug!(key = ?key, retry_after = retry, "rate limit: refused");
                let mut e = Error::new(cfg.status, "too many requests")
                    .with_header("retry-after", retry.to_string());
                if cfg.headers {
                    e = e
                        .with_header("ratelimit-policy", cfg.policy_header())
                        .with_header("ratelimit", cfg.limit_header(0, wait));
                }
                answer(scope, send, e.into_response())
            }
        }
    }
}

/// Adds fixed headers to every response head.
pub(crate) struct AddHeaders(pub(crate) Vec<(Bytes, Bytes)>);

impl Tap for AddHeaders {
    type Note = ();

    fn before(&self, event: &mut SendEvent) -> Result<(), SendError> {
        if let Some(h) = head_headers_mut(event) {
            for (n, v) in &self.0 {
                h.push(n.clone(), v.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_keys_are_prefixes() {
        let a: Ipv6Addr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap();
        assert_eq!(
            mask_v6(a, 64),
            "2001:db8:1:2::".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(mask_v6(a, 128), a);
        assert_eq!(mask_v6(a, 0), Ipv6Addr::UNSPECIFIED);
    }

    #[test]
    fn policy_names_are_sf_strings() {
        assert_eq!(sf_string("default"), "\"default\"");
        assert_eq!(sf_string("a\"b\\c\n"), "\"a\\\"b\\\\c\"");
    }
}
