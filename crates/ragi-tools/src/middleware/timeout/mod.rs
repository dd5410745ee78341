//! A deadline for the whole response — the head **and the streamed body** — not just for the
//! handler's first answer.
//!
//! ```
//! use std::time::Duration;
//! use ragi_tools::middleware::timeout::Timeout;
//! use ragi_tools::{handler, AppExt, HttpContext};
//!
//! async fn report(_cx: HttpContext) -> &'static str { "done" }
//!
//! // 30 s from the request's arrival to the last body byte; 503 if nothing was sent by then.
//! let app = handler(report).layer(Timeout::new(Duration::from_secs(30)));
//! # let _ = app;
//! ```
//!
//! # What happens at the deadline
//!
//! The clock starts when the layer is called. When the deadline passes before the response
//! ended:
//!
//! * the app's future is **dropped** (the work stops at its next suspension point), and every
//!   later `send` through the app's handles (a task it spawned, say) fails;
//! * **no response head yet**: the client gets `503 Service Unavailable` (or the status of
//!   [`status`](Timeout::status), e.g. 504) in the scope's framing (an SSE decline, a
//!   WebSocket denial);
//! * **the response had started**: it is **aborted** (the call returns an error: HTTP/1.1
//!   closes without the last chunk, HTTP/2 resets the stream), so the client can never take a
//!   truncated body for a whole one;
//! * **the client had already left**: nothing is sent; the work is still stopped;
//! * a [`TimedOut`] record goes in the stash (the [access log](super::access_log) shows
//!   `timeout=true`) and a warning is logged with the method and path.
//!
//! A response that ended in time is left alone: work the app does after its last byte is not
//! cut short. The deadline covers `http` scopes by default; SSE streams and WebSocket sessions
//! live long on purpose, and are covered only when [`kinds`](Timeout::kinds) says so.
//!
//! # References
//!
//! tower-http's `TimeoutLayer` bounds the handler's future only: a streamed body runs on
//! forever (tower-rs/tower-http#295, #574, #623); `RequestBodyTimeout` and the later
//! `DeadlineBody` (#688) cover bodies separately. PAGI's timeout is per `receive`. ragi's is one
//! deadline for the whole response, with the two outcomes (status before the head, abort after)
//! and the reason recorded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ragi::{
    App, AppResult, BoxFuture, DisconnectReason, Receiver, Scope, ScopeKind, SendError, SendEvent,
    Sender,
};

use super::observe::{answer, head_status, tap, Tap};
use crate::{Error, IntoResponse, Layer, SharedApp};

/// The record the [`Timeout`] layer leaves in the stash when the deadline ended a response.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimedOut {
    /// The deadline that passed.
    pub after: Duration,
    /// Whether the response had started (then it was aborted; otherwise answered with the
    /// timeout status, unless the client had left).
    pub response_started: bool,
}

/// The name of the reason later sends fail with once the deadline passed.
pub const REASON: &str = "x-response-timeout";

/// The layer. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Timeout {
    after: Duration,
    status: u16,
    kinds: Vec<ScopeKind>,
}

impl Timeout {
    /// A deadline of `after` for `http` responses, answered with 503 before the head.
    pub fn new(after: Duration) -> Self {
        Self {
            after,
            status: 503,
            kinds: vec![ScopeKind::Http],
        }
    }

    /// The status sent when the deadline passes before the head (503 by default; 504 when
    /// the app stands for an upstream).
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The scope kinds the deadline covers (`http` by default; add `sse` to bound event
    /// streams, `websocket` to bound sessions).
    pub fn kinds(mut self, kinds: &[ScopeKind]) -> Self {
        self.kinds = kinds.to_vec();
        self
    }
}

impl Layer for Timeout {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(TimeoutApp {
            cfg: self.clone(),
            inner,
        })
    }
}

struct TimeoutApp {
    cfg: Timeout,
    inner: SharedApp,
}

#[derive(Default)]
struct Progress {
    started: AtomicBool,
    finished: AtomicBool,
    closed: AtomicBool,
}

struct Watch(Arc<Progress>);

impl Tap for Watch {
    type Note = ();

    fn before(&self, event: &mut SendEvent) -> Result<(), SendError> {
        let p = &self.0;
        if p.closed.load(Ordering::Acquire) {
            return Err(SendError::disconnected(
                DisconnectReason::extra(REASON).expect("a valid extra reason"),
            ));
        }
        if head_status(event).is_some() || matches!(event, SendEvent::WebSocketClose { .. }) {
            p.started.store(true, Ordering::Release);
        }
        let last = match event {
            SendEvent::ResponseBody { more, .. } | SendEvent::HttpResponseBody { more, .. } => {
                !*more
            }
            SendEvent::ResponseTrailers { .. }
            | SendEvent::SseClose { .. }
            | SendEvent::WebSocketClose { .. } => true,
            _ => false,
        };
        if last {
            p.finished.store(true, Ordering::Release);
        }
        Ok(())
    }
}

impl App for TimeoutApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        if !self.cfg.kinds.contains(&scope.kind) {
            return self.inner.call(scope, receive, send);
        }
        let progress = Arc::new(Progress::default());
        let app_send = tap(send.clone(), Watch(progress.clone()));
        let kept = scope.clone();
        let fut = self.inner.call(scope, receive, app_send);
        let (after, status) = (self.cfg.after, self.cfg.status);
        Box::pin(async move {
            let mut fut = fut;
            let deadline = tokio::time::sleep(after);
            tokio::pin!(deadline);
            tokio::select! {
                biased;
                r = &mut fut => return r,
                () = &mut deadline => {}
            }
            if progress.finished.load(Ordering::Acquire) || kept.connection().is_completed() {
                // The response ended in time; what the app does afterwards is its own business.
                return fut.await;
            }
            progress.closed.store(true, Ordering::Release);
            drop(fut);
            let started = progress.started.load(Ordering::Acquire);
            kept.stash.insert(TimedOut {
                after,
                response_started: started,
            });
            let connection = kept.connection();
            tracing::warn!(
                method = %kept.method,
                path = %kept.path,
                after_ms = after.as_millis() as u64,
                response_started = started,
                client_left = connection.disconnect_reason().map(|r| r.to_string()),
                "response timed out; the app's work was dropped"
            );
            if !connection.is_connected() {
                return Ok(());
            }
            if started || connection.response_started() {
                return Err(format!("the response timed out after {after:?}; aborted").into());
            }
            let response = Error::new(status, "the response took too long").into_response();
            answer(kept, send, response).await
        })
    }
}
