//! Request ids: one `X-Request-ID` per request, the same in the app, the log, the trace and
//! the response.
//!
//! ```
//! use ragi_tools::middleware::request_id::{RequestId, SetRequestId};
//! use ragi_tools::prelude::*;
//!
//! async fn show(cx: HttpContext) -> String {
//!     // The id is in the stash for the handler (and for the access log and the trace).
//!     let id = RequestId::of(cx.scope()).expect("set by the layer");
//!     format!("request {}", id.as_str())
//! }
//!
//! let app = handler(show).layer(
//!     SetRequestId::new()
//!         // Keep the id a trusted front proxy put in the request (here: one on loopback).
//!         .trust_if(|scope| scope.client.is_some_and(|c| c.ip().is_loopback())),
//! );
//! # let _ = app;
//! ```
//!
//! # What it does
//!
//! For each `http`, `sse` and `websocket` scope:
//!
//! 1. **Chooses the id.** An id an outer `SetRequestId` already chose is kept (two layers never
//!    make two ids). Otherwise the request's own `X-Request-ID` is used only when the request
//!    is *trusted* ([`trust_incoming`](SetRequestId::trust_incoming) or
//!    [`trust_if`](SetRequestId::trust_if); **nobody by default**) and the value is
//!    *well-formed*: exactly one field, 1 to 128 bytes (see [`max_len`](SetRequestId::max_len)),
//!    each an ASCII letter, digit or one of `-_.:+/=@` ([`is_well_formed`]). Anything else is
//!    replaced by a fresh UUID v4 ([`new_id`], or your [`generator`](SetRequestId::generator)).
//! 2. **Shares it.** The id goes in the stash as [`RequestId`], and the request's header is
//!    rewritten to it (one field), so the app, a reverse proxy inside, the
//!    [access log](super::access_log) and the [trace](super::trace) all see the same value.
//! 3. **Answers with exactly one.** The response head gets exactly one `X-Request-ID` with the
//!    id, replacing any the app set: the `ResponseStart` of HTTP, the `HttpResponseStart` of an
//!    SSE decline or a WebSocket denial, the `SseStart` of an event stream and the headers of a
//!    `WebSocketAccept`.
//!
//! Lifespan scopes pass through untouched. Nothing is held across the exchange, so a client
//! that leaves frees nothing here; the id stays in the stash for the log line that records why
//! it left.
//!
//! # References
//!
//! PAGI's `RequestId` appends its header even when the app set one, so a response can carry two
//! (a regression test here proves one); it never trusts incoming ids and covers `http` scopes
//! only. tower-http's `SetRequestId` always trusts the incoming header and never validates it
//! (any length, any bytes reach the logs); its `PropagateRequestId` keeps the app's header when
//! there is one. ragi follows PAGI's default (incoming ids are not trusted) with an opt-in that
//! still validates, and makes the response, the stash and the log agree.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, SendError, SendEvent, Sender};

use super::observe::{head_headers_mut, tap, Tap};
use crate::{Layer, SharedApp};

/// The default header, lower-cased.
pub const HEADER: &str = "x-request-id";

/// The default longest accepted incoming id, in bytes.
pub const DEFAULT_MAX_LEN: usize = 128;

/// The request id of one exchange, in its stash. See the [module documentation](self).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// An id with this text.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of `scope`'s exchange, when a [`SetRequestId`] layer chose one.
    pub fn of(scope: &Scope) -> Option<Arc<RequestId>> {
        scope.stash.get::<RequestId>()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `id` is an acceptable incoming request id: 1 to `max_len` bytes, each an ASCII
/// letter, digit or one of `-_.:+/=@` (no spaces, quotes, separators or controls: the value
/// reaches log lines and other services' headers as it is).
pub fn is_well_formed(id: &[u8], max_len: usize) -> bool {
    !id.is_empty()
        && id.len() <= max_len
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(&b))
}

/// A fresh random UUID (version 4), lower-case hex: `3f2b8c1e-9d4a-4f6e-8b2a-1c7d5e9f0a3b`.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No system randomness (never seen on the platforms ragi runs on): still unique in this
        // process, from the clock and a counter.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        b[..8].copy_from_slice(&t.to_le_bytes());
        b[8..].copy_from_slice(&n.to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 9562 variant
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        s.push(HEX[(byte >> 4) as usize] as char);
        s.push(HEX[(byte & 15) as usize] as char);
    }
    s
}

type Generator = Arc<dyn Fn() -> String + Send + Sync>;
type Trust = Arc<dyn Fn(&Scope) -> bool + Send + Sync>;

/// The layer that gives every request an id. See the [module documentation](self).
#[derive(Clone)]
pub struct SetRequestId {
    header: Arc<str>,
    trust: Option<Trust>,
    max_len: usize,
    generator: Option<Generator>,
}

impl std::fmt::Debug for SetRequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetRequestId")
            .field("header", &self.header)
            .field("trusts_incoming", &self.trust.is_some())
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl Default for SetRequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl SetRequestId {
    /// `X-Request-ID`, incoming ids not trusted, UUID v4 ids, incoming ids up to 128 bytes.
    pub fn new() -> Self {
        Self {
            header: Arc::from(HEADER),
            trust: None,
            max_len: DEFAULT_MAX_LEN,
            generator: None,
        }
    }

    /// Uses `name` instead of `X-Request-ID` (e.g. `X-Correlation-ID`).
    ///
    /// # Panics
    ///
    /// When `name` is not a valid header name.
    pub fn header(mut self, name: &str) -> Self {
        assert!(
            ragi::validate_header(name.as_bytes(), b"").is_ok(),
            "not a header name: {name:?}"
        );
        self.header = Arc::from(name.to_ascii_lowercase());
        self
    }

    /// Uses a well-formed incoming id from every request (`true`), or from none (`false`, the
    /// default). Only for a server every request reaches through a proxy that sets or strips
    /// the header; otherwise prefer [`trust_if`](Self::trust_if).
    pub fn trust_incoming(mut self, trust: bool) -> Self {
        self.trust = trust.then(|| Arc::new(|_: &Scope| true) as Trust);
        self
    }

    /// Uses a well-formed incoming id from requests `f` trusts (e.g. those whose client, as
    /// the forwarded-headers middleware left it, is one of your proxies).
    pub fn trust_if(mut self, f: impl Fn(&Scope) -> bool + Send + Sync + 'static) -> Self {
        self.trust = Some(Arc::new(f));
        self
    }

    /// The longest incoming id accepted, in bytes (128 by default).
    pub fn max_len(mut self, n: usize) -> Self {
        self.max_len = n;
        self
    }

    /// Makes ids with `f` instead of [`new_id`]. An id `f` makes that is not well-formed
    /// ([`is_well_formed`]) is used all the same, but must be a valid header value.
    pub fn generator(mut self, f: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.generator = Some(Arc::new(f));
        self
    }

    /// The id for `scope`: an outer layer's, a trusted well-formed incoming one, or a new one.
    fn choose(&self, scope: &Scope) -> Arc<RequestId> {
        if let Some(id) = scope.stash.get::<RequestId>() {
            return id;
        }
        let mut incoming = scope.headers.get_all(&self.header);
        let id = match (incoming.next(), incoming.next()) {
            (Some(v), None)
                if is_well_formed(v, self.max_len)
                    && self.trust.as_ref().is_some_and(|t| t(scope)) =>
            {
                // Well-formed means ASCII.
                String::from_utf8_lossy(v).into_owned()
            }
            _ => match &self.generator {
                Some(g) => g(),
                None => new_id(),
            },
        };
        let id = Arc::new(RequestId::new(id));
        scope.stash.insert_arc(id.clone());
        id
    }
}

impl Layer for SetRequestId {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(RequestIdApp {
            cfg: self.clone(),
            inner,
        })
    }
}

struct RequestIdApp {
    cfg: SetRequestId,
    inner: SharedApp,
}

impl App for RequestIdApp {
    fn call(
        &self,
        mut scope: Scope,
        receive: Receiver,
        send: Sender,
    ) -> BoxFuture<'static, AppResult> {
        if scope.kind == ScopeKind::Lifespan {
            return self.inner.call(scope, receive, send);
        }
        let id = self.cfg.choose(&scope);
        let value = Bytes::copy_from_slice(id.as_str().as_bytes());
        let name = Bytes::copy_from_slice(self.cfg.header.as_bytes());
        scope.headers.set(name.clone(), value.clone());
        let send = tap(send, OneId { name, value });
        self.inner.call(scope, receive, send)
    }
}

/// Sets the one id field on every response head.
struct OneId {
    name: Bytes,
    value: Bytes,
}

impl Tap for OneId {
    type Note = ();

    fn before(&self, event: &mut SendEvent) -> Result<(), SendError> {
        if let Some(h) = head_headers_mut(event) {
            h.set(self.name.clone(), self.value.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v4() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        assert!(is_well_formed(id.as_bytes(), DEFAULT_MAX_LEN));
        assert_ne!(new_id(), id);
    }

    #[test]
    fn well_formed_ids() {
        assert!(is_well_formed(b"abc-123_x.y:z+/=@", 128));
        assert!(!is_well_formed(b"", 128));
        assert!(!is_well_formed(b"a b", 128));
        assert!(!is_well_formed(b"a\"b", 128));
        assert!(!is_well_formed(b"a;b", 128));
        assert!(!is_well_formed("é".as_bytes(), 128));
        assert!(is_well_formed(&[b'a'; 128], 128));
        assert!(!is_well_formed(&[b'a'; 129], 128));
    }
}
