//! The concurrency limit: slots freed the moment the client leaves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, Sender};
use tokio::sync::Notify;

use super::bucket::ceil_secs;
use super::{sf_string, AddHeaders, Key, KeyFn, LIMITED};
use crate::middleware::observe::{answer, tap};
use crate::{Error, IntoResponse, Layer, SharedApp};

/// At most `n` exchanges in progress, globally or per key; a slot is freed the moment its
/// client leaves. See the [module documentation](super).
#[derive(Clone)]
pub struct ConcurrencyLimit {
    state: Arc<State>,
    key: Option<KeyFn>,
    wait: Duration,
    status: u16,
    retry_after: Duration,
    policy: Arc<str>,
    headers: bool,
    kinds: Vec<ScopeKind>,
}

impl std::fmt::Debug for ConcurrencyLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConcurrencyLimit")
            .field("max", &self.state.max)
            .field("in_use", &self.in_use())
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct State {
    max: usize,
    used: Mutex<HashMap<Key, usize>>,
    freed: Notify,
}

impl State {
    fn try_take(self: &Arc<Self>, key: &Key) -> Option<Arc<Slot>> {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let n = used.entry(key.clone()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Arc::new(Slot {
            state: self.clone(),
            key: key.clone(),
            freed: AtomicBool::new(false),
        }))
    }

    fn free_slots(&self, key: &Key) -> usize {
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        self.max - used.get(key).copied().unwrap_or(0).min(self.max)
    }
}

/// One slot, given back once: by the first of the client leaving, the response completing,
/// the call returning (or its future being dropped).
struct Slot {
    state: Arc<State>,
    key: Key,
    freed: AtomicBool,
}

impl Slot {
    fn free(&self) {
        if self.freed.swap(true, Ordering::AcqRel) {
            return;
        }
        {
            let mut used = self.state.used.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = used.get_mut(&self.key) {
                *n -= 1;
                if *n == 0 {
                    used.remove(&self.key);
                }
            }
        }
        self.state.freed.notify_waiters();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.free();
    }
}

/// Frees the slot when the call's future ends or is dropped.
struct CallGuard(Arc<Slot>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.free();
    }
}

impl ConcurrencyLimit {
    /// At most `max` exchanges in progress in all; no waiting: 503 at once when full.
    ///
    /// # Panics
    ///
    /// When `max` is 0.
    pub fn new(max: usize) -> Self {
        assert!(max > 0, "a concurrency limit needs at least one slot");
        Self {
            state: Arc::new(State {
                max,
                used: Mutex::new(HashMap::new()),
                freed: Notify::new(),
            }),
            key: None,
            wait: Duration::ZERO,
            status: 503,
            retry_after: Duration::from_secs(1),
            policy: Arc::from("concurrency"),
            headers: true,
            kinds: LIMITED.to_vec(),
        }
    }

    /// At most `max` per client address (IPv6 by /64) instead of in all; refusals are 429.
    pub fn per_client(self) -> Self {
        let mut s = self.key(|scope| Some(Key::client(scope, 64)));
        s.status = 429;
        s
    }

    /// At most `max` per key of `f` (`None`: not limited).
    pub fn key(mut self, f: impl Fn(&Scope) -> Option<Key> + Send + Sync + 'static) -> Self {
        self.key = Some(Arc::new(f));
        self
    }

    /// Waits up to `d` for a slot before refusing (0, the default: refuse at once).
    pub fn wait(mut self, d: Duration) -> Self {
        self.wait = d;
        self
    }

    /// The status of a refusal (503; 429 after [`per_client`](Self::per_client)).
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The `Retry-After` of a refusal (1 s).
    pub fn retry_after(mut self, d: Duration) -> Self {
        self.retry_after = d;
        self
    }

    /// The policy's name in the headers (`concurrency`).
    pub fn policy(mut self, name: &str) -> Self {
        self.policy = Arc::from(name);
        self
    }

    /// Whether to send `RateLimit-Policy` and `RateLimit` (yes by default).
    pub fn headers(mut self, on: bool) -> Self {
        self.headers = on;
        self
    }

    /// The scope kinds limited (`http`, `sse` and `websocket` by default).
    pub fn kinds(mut self, kinds: &[ScopeKind]) -> Self {
        self.kinds = kinds.to_vec();
        self
    }

    /// Slots in use now, all keys together.
    pub fn in_use(&self) -> usize {
        self.state
            .used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }

    fn policy_header(&self) -> String {
        format!(
            "{};q={};qu=\"concurrent-requests\"",
            sf_string(&self.policy),
            self.state.max
        )
    }
}

impl Layer for ConcurrencyLimit {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(ConcurrencyApp {
            cfg: Arc::new(self.clone()),
            inner,
        })
    }
}

struct ConcurrencyApp {
    cfg: Arc<ConcurrencyLimit>,
    inner: SharedApp,
}

impl App for ConcurrencyApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let cfg = self.cfg.clone();
        if !cfg.kinds.contains(&scope.kind) {
            return self.inner.call(scope, receive, send);
        }
        let key = match &cfg.key {
            Some(f) => f(&scope),
            None => Some(Key::Unknown),
        };
        let Some(key) = key else {
            return self.inner.call(scope, receive, send);
        };
        let inner = self.inner.clone();
        Box::pin(async move {
            let slot = match cfg.state.try_take(&key) {
                Some(slot) => slot,
                None => match wait_for_slot(&cfg, &key, &scope).await {
                    Wait::Got(slot) => slot,
                    Wait::Left => return Ok(()),
                    Wait::Full => {
                        tracing::debug!(key = ?key, "concurrency limit: refused");
                        let mut e = Error::new(cfg.status, "too many requests in progress")
                            .with_header(
                                "retry-after",
                                ceil_secs(cfg.retry_after).max(1).to_string(),
                            );
                        if cfg.headers {
                            e = e
                                .with_header("ratelimit-policy", cfg.policy_header())
                                .with_header(
                                    "ratelimit",
                                    format!("{};r=0", sf_string(&cfg.policy)),
                                );
                        }
                        return answer(scope, send, e.into_response()).await;
                    }
                },
            };
            // Freed by the first of: the client leaving, the response delivered, the call
            // ending.
            let connection = scope.connection();
            let on_leave = slot.clone();
            connection.on_disconnect(move |_| on_leave.free());
            let on_done = slot.clone();
            connection.on_complete(move || on_done.free());
            let guard = CallGuard(slot);
            let send = if cfg.headers {
                let free = cfg.state.free_slots(&key);
                tap(
                    send,
                    AddHeaders(vec![
                        (
                            Bytes::from_static(b"ratelimit-policy"),
                            Bytes::from(cfg.policy_header()),
                        ),
                        (
                            Bytes::from_static(b"ratelimit"),
                            Bytes::from(format!("{};r={free}", sf_string(&cfg.policy))),
                        ),
                    ]),
                )
            } else {
                send
            };
            let r = inner.call(scope, receive, send).await;
            drop(guard);
            r
        })
    }
}

enum Wait {
    Got(Arc<Slot>),
    Full,
    Left,
}

/// Waits up to the configured time for a slot; gives up when the client leaves.
async fn wait_for_slot(cfg: &ConcurrencyLimit, key: &Key, scope: &Scope) -> Wait {
    if cfg.wait.is_zero() {
        return Wait::Full;
    }
    let deadline = tokio::time::sleep(cfg.wait);
    tokio::pin!(deadline);
    let connection = scope.connection();
    loop {
        let freed = cfg.state.freed.notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        if let Some(slot) = cfg.state.try_take(key) {
            return Wait::Got(slot);
        }
        tokio::select! {
            () = &mut freed => {}
            () = &mut deadline => return Wait::Full,
            _ = connection.disconnected() => return Wait::Left,
        }
    }
}
