//! The WebSocket message rate limit: per session, close 1008 or drop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ragi::{
    App, AppResult, BoxFuture, Message, ReceiveEvent, ReceiveSource, Receiver, Scope, ScopeKind,
    SendError, SendEvent, Sender,
};
use tokio::time::Instant;

use super::bucket::{Bucket, Quota, Take};
use crate::{Layer, SharedApp};

/// What to do with a message over the limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Exceed {
    /// Close the session with 1008 (policy violation) "rate limit exceeded" (the default).
    #[default]
    Close,
    /// Drop the message: the app never sees it; the session goes on.
    Drop,
}

/// The record in a WebSocket session's stash once its rate limit refused a message.
#[derive(Debug, Default)]
pub struct WsRateLimited {
    refused: AtomicU64,
}

impl WsRateLimited {
    /// Messages refused so far (dropped, or the one that closed the session and those after).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Acquire)
    }
}

/// A message rate limit per WebSocket session. See the [module documentation](super).
#[derive(Clone, Debug)]
pub struct WsRateLimit {
    messages: Quota,
    bytes: Option<Quota>,
    exceed: Exceed,
    close_code: u16,
    close_reason: Arc<str>,
}

impl Default for WsRateLimit {
    /// PAGI's defaults: 100 messages a second with a burst of 200, 1 MiB a second with a
    /// burst of 2 MiB, close with 1008.
    fn default() -> Self {
        Self::new(100, Duration::from_secs(1)).burst(200).bytes(
            1 << 20,
            Duration::from_secs(1),
            2 << 20,
        )
    }
}

impl WsRateLimit {
    /// `n` messages per `window` (burst `n`), no byte limit, close with 1008 beyond.
    ///
    /// # Panics
    ///
    /// When `n` is 0 or `window` is zero.
    pub fn new(n: u64, window: Duration) -> Self {
        assert!(
            n > 0 && !window.is_zero(),
            "a rate limit needs a quota and a window"
        );
        Self {
            messages: Quota::per_window(n, window),
            bytes: None,
            exceed: Exceed::Close,
            close_code: 1008,
            close_reason: Arc::from("rate limit exceeded"),
        }
    }

    /// Up to `burst` messages at once (the rate stays the same).
    pub fn burst(mut self, burst: u64) -> Self {
        self.messages.capacity = burst.max(1) as f64;
        self
    }

    /// Also at most `n` payload bytes per `window`, up to `burst` at once. A message larger
    /// than `burst` is always over the limit.
    pub fn bytes(mut self, n: u64, window: Duration, burst: u64) -> Self {
        let mut q = Quota::per_window(n.max(1), window.max(Duration::from_nanos(1)));
        q.capacity = burst.max(1) as f64;
        self.bytes = Some(q);
        self
    }

    /// What happens to a message over the limit.
    pub fn on_exceed(mut self, exceed: Exceed) -> Self {
        self.exceed = exceed;
        self
    }

    /// The close frame sent with [`Exceed::Close`] (1008, "rate limit exceeded").
    pub fn close_with(mut self, code: u16, reason: &str) -> Self {
        self.close_code = code;
        self.close_reason = Arc::from(reason);
        self
    }
}

impl Layer for WsRateLimit {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(WsRateLimitApp {
            cfg: self.clone(),
            inner,
        })
    }
}

struct WsRateLimitApp {
    cfg: WsRateLimit,
    inner: SharedApp,
}

impl App for WsRateLimitApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        if scope.kind != ScopeKind::WebSocket {
            return self.inner.call(scope, receive, send);
        }
        let now = Instant::now();
        let record = Arc::new(WsRateLimited::default());
        let source = Limited {
            inner: receive,
            messages: Bucket::full(&self.cfg.messages, now),
            bytes: self.cfg.bytes.map(|q| (q, Bucket::full(&q, now))),
            cfg: self.cfg.clone(),
            send: send.clone(),
            closing: None,
            closed: false,
            record: record.clone(),
            stash: scope.stash.clone(),
            path: scope.path.clone(),
        };
        self.inner.call(scope, Receiver::new(source), send)
    }
}

struct Limited {
    inner: Receiver,
    messages: Bucket,
    bytes: Option<(Quota, Bucket)>,
    cfg: WsRateLimit,
    send: Sender,
    closing: Option<BoxFuture<'static, Result<(), SendError>>>,
    closed: bool,
    record: Arc<WsRateLimited>,
    stash: ragi::Stash,
    path: String,
}

impl Limited {
    fn allows(&mut self, m: &Message) -> bool {
        let now = Instant::now();
        let len = match m {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
        } as f64;
        // Check both before taking from either, so a refused message costs nothing.
        let mut messages = self.messages;
        if !matches!(
            messages.take(&self.cfg.messages, now, 1.0),
            Take::Granted { .. }
        ) {
            return false;
        }
        if let Some((q, b)) = &mut self.bytes {
            let mut bytes = *b;
            if !matches!(bytes.take(q, now, len), Take::Granted { .. }) {
                return false;
            }
            *b = bytes;
        }
        self.messages = messages;
        true
    }

    fn refused(&mut self) {
        let n = self.record.refused.fetch_add(1, Ordering::AcqRel) + 1;
        if n == 1 {
            self.stash.insert_arc(self.record.clone());
        }
        match self.cfg.exceed {
            Exceed::Drop => {
                tracing::debug!(path = %self.path, refused = n, "WebSocket rate limit: message dropped");
            }
            Exceed::Close => {
                tracing::info!(
                    path = %self.path,
                    code = self.cfg.close_code,
                    "WebSocket rate limit exceeded: closing the session"
                );
                let send = self.send.clone();
                let close = SendEvent::WebSocketClose {
                    code: self.cfg.close_code,
                    reason: self.cfg.close_reason.to_string(),
                };
                self.closed = true;
                self.closing = Some(Box::pin(async move { send.send(close).await }));
            }
        }
    }
}

impl ReceiveSource for Limited {
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        loop {
            if let Some(f) = &mut self.closing {
                // The close frame goes out before the app hears anything more; a failure means
                // the session already ended, which the next event says.
                let _ = std::task::ready!(f.as_mut().poll(cx));
                self.closing = None;
            }
            let ev = std::task::ready!(self.inner.poll_receive(cx));
            match ev {
                ReceiveEvent::WebSocketReceive(m) => {
                    if self.closed {
                        self.record.refused.fetch_add(1, Ordering::AcqRel);
                        continue;
                    }
                    if self.allows(&m) {
                        return Poll::Ready(ReceiveEvent::WebSocketReceive(m));
                    }
                    self.refused();
                }
                other => return Poll::Ready(other),
            }
        }
    }
}
