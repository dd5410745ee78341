//! A `tracing` span per request, stream or session: method, path, route, status, request id —
//! and the disconnect reason the moment the client leaves.
//!
//! ```
//! use ragi_tools::middleware::{request_id::SetRequestId, trace::Trace};
//! use ragi_tools::{handler, HttpContext, Stack};
//!
//! async fn hello(_cx: HttpContext) -> &'static str {
//!     tracing::info!("inside the request's span"); // carries method, path, request id, …
//!     "Hello"
//! }
//!
//! let app = Stack::new()
//!     .enable(SetRequestId::new())
//!     .enable(Trace::new())
//!     .run(handler(hello));
//! # let _ = app;
//! ```
//!
//! # The span
//!
//! Named `request`, at [`INFO`](tracing::Level::INFO) unless [`level`](Trace::level) says
//! otherwise, entered whenever the app's future runs (so every event the app logs belongs to
//! it), with the fields:
//!
//! | field | value | recorded |
//! |---|---|---|
//! | `kind` | `http`, `sse`, `websocket` | at the start |
//! | `method`, `path` | the request's (path with root path and query) | at the start |
//! | `client` | the client's address | at the start |
//! | `request_id` | from [`SetRequestId`](super::request_id) | at the start if set, else at the head or the end |
//! | `route` | the matched route's pattern (a router inside) | at the head or the end |
//! | `status` | the response status (101 for an accepted WebSocket) | at the head |
//! | `disconnect_reason` | why the client left | **the moment it leaves**, from the connection object |
//!
//! and these events inside it: `client left` (INFO, with the reason) when the connection
//! object reports a departure, whatever the app is doing; `app failed` (WARN, with the error)
//! when the app returns an error; `finished` (at the span's level, with the status and the
//! duration in milliseconds) when the app's call returns.
//!
//! # References
//!
//! tower-http's `TraceLayer` makes a span per request with `on_request`/`on_response`/
//! `on_failure`/`on_eos` hooks and no notion of a departed client (a dropped connection just
//! drops the future, and nothing is recorded). PAGI and Starlette have no span middleware.
//! ragi records the reason from the connection object as it happens.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ragi::{
    App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, SendError, SendEvent, Sender, Stash,
};
use tokio::time::Instant;
use tracing::{field::Empty, Instrument, Level, Span};

use super::observe::{head_status, request_target, tap, Tap};
use super::request_id::RequestId;
use crate::router::MatchedRoute;
use crate::{Layer, SharedApp};

/// The layer. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Trace {
    level: Level,
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}

impl Trace {
    /// Spans at INFO.
    pub fn new() -> Self {
        Self { level: Level::INFO }
    }

    /// Spans (and the `finished` event) at `level`.
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }
}

impl Layer for Trace {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(TraceApp {
            level: self.level,
            inner,
        })
    }
}

struct TraceApp {
    level: Level,
    inner: SharedApp,
}

macro_rules! request_span {
    ($lvl:expr, $scope:expr, $path:expr) => {
        tracing::span!(
            $lvl,
            "request",
            kind = $scope.kind.as_str(),
            method = %$scope.method,
            path = %$path,
            client = $scope.client.map(|c| c.to_string()),
            request_id = Empty,
            route = Empty,
            status = Empty,
            disconnect_reason = Empty,
        )
    };
}

fn make_span(level: Level, scope: &Scope) -> Span {
    let path = request_target(scope);
    match level {
        Level::ERROR => request_span!(Level::ERROR, scope, path),
        Level::WARN => request_span!(Level::WARN, scope, path),
        Level::INFO => request_span!(Level::INFO, scope, path),
        Level::DEBUG => request_span!(Level::DEBUG, scope, path),
        _ => request_span!(Level::TRACE, scope, path),
    }
}

/// Records what the stash knows (request id, route) once each.
struct Fields {
    span: Span,
    stash: Stash,
    request_id: AtomicBool,
    route: AtomicBool,
}

impl Fields {
    fn fill(&self) {
        if !self.request_id.load(Ordering::Acquire) {
            if let Some(id) = self.stash.get::<RequestId>() {
                self.span.record("request_id", id.as_str());
                self.request_id.store(true, Ordering::Release);
            }
        }
        if !self.route.load(Ordering::Acquire) {
            if let Some(r) = self.stash.get::<MatchedRoute>() {
                self.span.record("route", &*r.pattern);
                self.route.store(true, Ordering::Release);
            }
        }
    }
}

struct RecordStatus(Arc<Fields>);

impl Tap for RecordStatus {
    type Note = ();

    fn before(&self, event: &mut SendEvent) -> Result<(), SendError> {
        if let Some(s) = head_status(event) {
            self.0.span.record("status", s);
            self.0.fill();
        }
        Ok(())
    }
}

macro_rules! event_at {
    ($lvl:expr, $($rest:tt)*) => {
        match $lvl {
            Level::ERROR => tracing::event!(Level::ERROR, $($rest)*),
            Level::WARN => tracing::event!(Level::WARN, $($rest)*),
            Level::INFO => tracing::event!(Level::INFO, $($rest)*),
            Level::DEBUG => tracing::event!(Level::DEBUG, $($rest)*),
            _ => tracing::event!(Level::TRACE, $($rest)*),
        }
    };
}

impl App for TraceApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        if scope.kind == ScopeKind::Lifespan {
            return self.inner.call(scope, receive, send);
        }
        let span = make_span(self.level, &scope);
        let fields = Arc::new(Fields {
            span: span.clone(),
            stash: scope.stash.clone(),
            request_id: AtomicBool::new(false),
            route: AtomicBool::new(false),
        });
        fields.fill();
        let watched = span.clone();
        scope.connection().on_disconnect(move |reason| {
            watched.record("disconnect_reason", reason.as_str());
            tracing::info!(parent: &watched, reason = reason.as_str(), "client left");
        });
        let send = tap(send, RecordStatus(fields.clone()));
        let status = scope.clone();
        let level = self.level;
        let start = Instant::now();
        let fut = self.inner.call(scope, receive, send);
        Box::pin(
            async move {
                let result = fut.await;
                fields.fill();
                if let Err(e) = &result {
                    tracing::warn!(error = %e, "app failed");
                }
                let connection = status.connection();
                let ms = start.elapsed().as_secs_f64() * 1000.0;
                event_at!(
                    level,
                    duration_ms = ms,
                    response_started = connection.response_started(),
                    client_left = connection.disconnect_reason().map(|r| r.to_string()),
                    "finished"
                );
                result
            }
            .instrument(span),
        )
    }
}
