//! SSE retry hints: tells every event-stream client how long to wait before reconnecting
//! (`retry:`), with optional jitter so that a restart is not followed by every client at once.
//!
//! ```
//! use std::time::Duration;
//! use ragi_tools::middleware::sse_retry::SseRetry;
//! use ragi_tools::{sse, AppExt, Error, SseContext};
//!
//! async fn feed(cx: SseContext) -> Result<(), Error> {
//!     cx.send("hello").await // goes out as `data: hello` + `retry: 3000..=5000`
//! }
//!
//! let app = sse::handler(feed).layer(
//!     SseRetry::new(Duration::from_secs(3)).jitter(Duration::from_secs(2)),
//! );
//! # let _ = app;
//! ```
//!
//! # Behaviour
//!
//! * On an **`sse` scope**, the first event (`SseSend`) the app sends gets `retry: <ms>`
//!   unless it carries its own; an app that sets `retry` itself is left alone from then on.
//!   (A `retry:` line alone cannot be sent as an event of the protocol: every event has a
//!   `data:` line, and a `data:` line dispatches a message; so the hint rides on the first
//!   event.)
//! * On an **`http` scope** answered with `content-type: text/event-stream` (an event stream
//!   over a plain `GET`, as [`SseContext`](crate::SseContext) frames it), a block holding only
//!   `retry: <ms>` is written right after the head, before any event: such a block sets the
//!   client's reconnection time and dispatches nothing.
//! * Other responses, declines and HEAD requests are untouched.
//!
//! With [`jitter`](SseRetry::jitter), each stream gets the base delay plus a random part up to
//! the jitter, so that clients cut off together (a deploy, a restart) come back spread out.
//! Nothing is held for a stream: a client that leaves frees nothing.
//!
//! # References
//!
//! PAGI's `SSE::Retry` sets `retry` on SSE events; Starlette's and tower-http's SSE helpers
//! take a `retry` per event and have no middleware. ragi adds the hint to plain-HTTP event
//! streams too, and jitter.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ragi::{
    App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, SendError, SendEvent, SendSink, Sender,
};

use crate::{Layer, SharedApp};

/// The layer. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct SseRetry {
    retry: Duration,
    jitter: Duration,
}

impl SseRetry {
    /// A reconnection delay of `retry` (whole milliseconds).
    pub fn new(retry: Duration) -> Self {
        Self {
            retry,
            jitter: Duration::ZERO,
        }
    }

    /// Adds a random part of up to `jitter` to each stream's delay.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    fn delay_ms(&self) -> u64 {
        let base = u64::try_from(self.retry.as_millis()).unwrap_or(u64::MAX);
        let jitter = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        if jitter == 0 {
            return base;
        }
        let mut b = [0u8; 8];
        let r = if getrandom::fill(&mut b).is_ok() {
            u64::from_le_bytes(b)
        } else {
            0
        };
        base.saturating_add(r % (jitter + 1))
    }
}

impl Layer for SseRetry {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(SseRetryApp {
            cfg: self.clone(),
            inner,
        })
    }
}

struct SseRetryApp {
    cfg: SseRetry,
    inner: SharedApp,
}

impl App for SseRetryApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let applies = match scope.kind {
            ScopeKind::Sse => true,
            ScopeKind::Http => scope.method != http::Method::HEAD,
            _ => false,
        };
        if !applies {
            return self.inner.call(scope, receive, send);
        }
        let send = Sender::new(RetrySink {
            inner: send,
            retry_ms: self.cfg.delay_ms(),
            done: AtomicBool::new(false),
        });
        self.inner.call(scope, receive, send)
    }
}

struct RetrySink {
    inner: Sender,
    retry_ms: u64,
    /// The hint went out, or the app gave its own, or the response is no event stream.
    done: AtomicBool,
}

fn is_event_stream(headers: &ragi::Headers) -> bool {
    headers.get_str("content-type").is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
    }) && !headers.contains("content-length")
}

impl SendSink for RetrySink {
    fn send(&self, event: SendEvent) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async move {
            if self.done.load(Ordering::Acquire) {
                return self.inner.send(event).await;
            }
            match event {
                SendEvent::SseSend(mut ev) => {
                    if ev.retry.is_none() {
                        ev.retry = Some(self.retry_ms);
                    }
                    let r = self.inner.send(SendEvent::SseSend(ev)).await;
                    if r.is_ok() {
                        self.done.store(true, Ordering::Release);
                    }
                    r
                }
                SendEvent::ResponseStart {
                    status,
                    headers,
                    trailers,
                } => {
                    let stream = status == 200 && is_event_stream(&headers);
                    self.done.store(true, Ordering::Release);
                    self.inner
                        .send(SendEvent::ResponseStart {
                            status,
                            headers,
                            trailers,
                        })
                        .await?;
                    if stream {
                        let hint = format!("retry: {}\n\n", self.retry_ms);
                        self.inner.send(SendEvent::body_chunk(hint)).await?;
                    }
                    Ok(())
                }
                SendEvent::HttpResponseStart { .. } => {
                    // A decline: no stream.
                    self.done.store(true, Ordering::Release);
                    self.inner.send(event).await
                }
                other => self.inner.send(other).await,
            }
        })
    }
}
