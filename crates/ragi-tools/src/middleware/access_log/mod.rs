//! The access log: one line per HTTP request and per WebSocket or SSE session, written when the
//! exchange ends — with the disconnect reason when it ended because the client left.
//!
//! ```
//! use ragi_tools::middleware::access_log::{AccessLog, Format};
//! use ragi_tools::middleware::request_id::SetRequestId;
//! use ragi_tools::{handler, HttpContext, Stack};
//!
//! async fn hello(_cx: HttpContext) -> &'static str { "Hello" }
//!
//! let app = Stack::new()
//!     .enable(SetRequestId::new())
//!     .enable(AccessLog::new().format(Format::Json)) // stdout, from a thread of its own
//!     .run(handler(hello));
//! # let _ = app;
//! ```
//!
//! A combined line (the default) and a JSON line for a client that left mid-response:
//!
//! ```text
//! 127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /report HTTP/1.1" 200 65536 "-" "curl/8.5.0" rid=3f2b8c1e-9d4a-4f6e-8b2a-1c7d5e9f0a3b dur=1204.112ms started=true reason=client_closed
//! {"time":"2000-10-10T13:55:36.000Z","client":"127.0.0.1","kind":"http","method":"GET","target":"/report","protocol":"HTTP/1.1","status":200,"bytes":65536,"bytes_in":0,"duration_ms":1204.112,"request_id":"3f2b8c1e-…","disconnect_reason":"client_closed","response_started":true,"route":"/report","referer":null,"user_agent":"curl/8.5.0"}
//! ```
//!
//! # What a line says
//!
//! [`AccessRecord`] has every field: client, method, target, protocol, status, response bytes
//! and request bytes, duration, request id (from [`SetRequestId`](super::request_id)), the
//! disconnect reason, `response_started`, the matched route, referer and user agent, whether
//! the [timeout](super::timeout) fired, and for a WebSocket session the messages each way and
//! the close code. [`Format::Clf`] and [`Format::Combined`] write the standard fields and then
//! `rid=… dur=…ms started=… reason=…` (and `msgs_in= msgs_out= close=` for a WebSocket);
//! when no response head reached the client their status is nginx's `499` (the reason says
//! why); [`Format::Json`] writes `null` there. [`Format::Custom`] renders the record your way.
//!
//! # When a line is written
//!
//! When the exchange ends, as the request's connection object reports it: the response was
//! delivered whole (`on_complete`) or the client left, timed out or was cut off
//! (`on_disconnect`, carrying the reason). So a client that leaves while the app still works is
//! logged **the moment it leaves**, with the status and bytes sent so far, whatever the app
//! does afterwards; an SSE session gets its line when the stream ends, a WebSocket session
//! when it ended and its app's call returned (at most a second after the end: the close code
//! reaches the app after the connection object has ended, and the line should carry it). An app
//! that answered nothing is logged with the server's backstop status (500, or 403 for a
//! WebSocket handshake) and `server_error`. Lifespan scopes are not logged, nor scopes that
//! [`skip_if`](AccessLog::skip_if) skips.
//!
//! # Never blocking a request
//!
//! Lines are rendered on the request path and handed to a [`LogSink`]. The default sink is a
//! [`LineWriter`] on stdout: a bounded queue ([`DEFAULT_QUEUE`] lines) in front of a thread of
//! its own that writes and flushes. When the writer falls behind (a blocked pipe, a slow disk)
//! and the queue is full, new lines are **dropped and counted** ([`AccessLog::dropped`]; a
//! warning is logged once per run of drops) rather than making requests wait: the log is the
//! one thing that can give way. [`AccessLog::writer`] takes any `io::Write`, and
//! [`AccessLog::sink`] any non-blocking sink (a [`Capture`] for tests, a channel, a closure).
//!
//! # Order
//!
//! Put it after the forwarded-headers middleware (so `client` is the real client), and outside
//! the layers that answer by themselves (error handler, timeout, rate limit, maintenance) so
//! that their answers are logged. The request id may come from a layer before or after it: the
//! log reads it from the stash when the line is written.
//!
//! # References
//!
//! PAGI's `AccessLog` writes when the app's call returns (a client that left is logged as
//! whatever the app did next, without a reason) and writes synchronously to its handle;
//! Starlette and tower-http have no access log (uvicorn and tower-http's `TraceLayer` log
//! through the logging framework, with no reason or bytes). ragi's line is written from the
//! connection object's end and carries the reason, bytes, duration, request id and
//! `response_started`, and the writing is off the request path.

mod format;
mod writer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use ragi::{
    App, AppResult, BoxFuture, DisconnectReason, Receiver, Scope, ScopeKind, Sender, Stash,
};
use tokio::time::Instant;

pub use format::{AccessRecord, Format, WebSocketSummary};
pub use writer::{Capture, LineWriter, LogSink, DEFAULT_QUEUE};

use super::observe::{observe, protocol, request_target, Observed};
use super::request_id::RequestId;
use super::timeout::TimedOut;
use crate::router::MatchedRoute;
use crate::{Layer, SharedApp};

/// The access-log layer. See the [module documentation](self).
#[derive(Clone)]
pub struct AccessLog {
    format: Format,
    sink: Arc<dyn LogSink>,
    writer: Option<Arc<LineWriter>>,
    skip: Option<Arc<dyn Fn(&Scope) -> bool + Send + Sync>>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("format", &self.format)
            .field("writer", &self.writer)
            .finish_non_exhaustive()
    }
}

impl Default for AccessLog {
    fn default() -> Self {
        Self::new()
    }
}

impl AccessLog {
    /// Combined format, to stdout through a [`LineWriter`].
    pub fn new() -> Self {
        let writer = Arc::new(LineWriter::stdout());
        Self {
            format: Format::Combined,
            sink: writer.clone(),
            writer: Some(writer),
            skip: None,
        }
    }

    /// Writes lines in `format`.
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Writes to `target` through a [`LineWriter`] (its own thread, a bounded queue).
    pub fn writer(self, target: impl std::io::Write + Send + 'static) -> Self {
        self.line_writer(LineWriter::new(target))
    }

    /// Writes through `writer` (e.g. one with another queue size).
    pub fn line_writer(mut self, writer: LineWriter) -> Self {
        let writer = Arc::new(writer);
        self.sink = writer.clone();
        self.writer = Some(writer);
        self
    }

    /// Hands lines to `sink` (which must not block).
    pub fn sink(mut self, sink: impl LogSink) -> Self {
        self.sink = Arc::new(sink);
        self.writer = None;
        self
    }

    /// Writes no line for the scopes `f` picks (health probes, say).
    pub fn skip_if(mut self, f: impl Fn(&Scope) -> bool + Send + Sync + 'static) -> Self {
        self.skip = Some(Arc::new(f));
        self
    }

    /// Lines the [`LineWriter`] dropped because it was behind (0 with another sink).
    pub fn dropped(&self) -> u64 {
        self.writer.as_ref().map_or(0, |w| w.dropped())
    }
}

impl Layer for AccessLog {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(AccessLogApp {
            cfg: Arc::new(self.clone()),
            inner,
        })
    }
}

struct AccessLogApp {
    cfg: Arc<AccessLog>,
    inner: SharedApp,
}

impl App for AccessLogApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        if scope.kind == ScopeKind::Lifespan || self.cfg.skip.as_ref().is_some_and(|f| f(&scope)) {
            return self.inner.call(scope, receive, send);
        }
        let (observed, receive, send) = observe(&scope, receive, send);
        let text = |name: &str| scope.headers.get_str(name).map(str::to_owned);
        let entry = Arc::new(Entry {
            cfg: self.cfg.clone(),
            time: SystemTime::now(),
            start: Instant::now(),
            client: scope.client,
            kind: scope.kind,
            method: scope.method.clone(),
            target: request_target(&scope),
            protocol: protocol(&scope),
            referer: text("referer"),
            user_agent: text("user-agent"),
            stash: scope.stash.clone(),
            observed,
            written: AtomicBool::new(false),
            app_done: AtomicBool::new(false),
            ended: std::sync::Mutex::new(None),
        });
        let connection = scope.connection();
        let done = entry.clone();
        connection.on_complete(move || done.end(None, true));
        let left = entry.clone();
        let watched = connection.clone();
        connection.on_disconnect(move |reason| {
            left.end(Some(reason.clone()), watched.response_started())
        });
        if entry.kind != ScopeKind::WebSocket {
            return self.inner.call(scope, receive, send);
        }
        // A WebSocket session's line waits for the app's call too (up to a grace period): the
        // close code reaches the app after the connection object has ended.
        let fut = self.inner.call(scope, receive, send);
        Box::pin(async move {
            let returned = AppReturned(entry);
            let r = fut.await;
            drop(returned);
            r
        })
    }
}

/// How long a WebSocket session's line waits for the app's call after the session ended.
const WEBSOCKET_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Tells the entry that the app's call is over (returned, or its future dropped).
struct AppReturned(Arc<Entry>);

impl Drop for AppReturned {
    fn drop(&mut self) {
        let e = &self.0;
        e.app_done.store(true, Ordering::Release);
        let ended = e.ended.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((reason, started)) = ended {
            e.write(reason, started);
        }
    }
}

/// What is known of an exchange until its line is written.
struct Entry {
    cfg: Arc<AccessLog>,
    time: SystemTime,
    start: Instant,
    client: Option<std::net::SocketAddr>,
    kind: ScopeKind,
    method: http::Method,
    target: String,
    protocol: &'static str,
    referer: Option<String>,
    user_agent: Option<String>,
    stash: Stash,
    observed: Arc<Observed>,
    written: AtomicBool,
    app_done: AtomicBool,
    ended: std::sync::Mutex<Option<(Option<DisconnectReason>, bool)>>,
}

impl Entry {
    /// The connection object ended: write now, or (a WebSocket session whose app is still
    /// running) when the app returns, at most [`WEBSOCKET_GRACE`] later.
    fn end(self: &Arc<Self>, reason: Option<DisconnectReason>, started: bool) {
        if self.kind != ScopeKind::WebSocket || self.app_done.load(Ordering::Acquire) {
            return self.write(reason, started);
        }
        *self.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some((reason, started));
        if self.app_done.load(Ordering::Acquire) {
            let ended = self.ended.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some((reason, started)) = ended {
                self.write(reason, started);
            }
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let me = self.clone();
                rt.spawn(async move {
                    tokio::time::sleep(WEBSOCKET_GRACE).await;
                    let ended = me.ended.lock().unwrap_or_else(|p| p.into_inner()).take();
                    if let Some((reason, started)) = ended {
                        me.write(reason, started);
                    }
                });
            }
            Err(_) => {
                let ended = self.ended.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some((reason, started)) = ended {
                    self.write(reason, started);
                }
            }
        }
    }

    fn write(&self, reason: Option<DisconnectReason>, response_started: bool) {
        if self.written.swap(true, Ordering::AcqRel) {
            return;
        }
        let o = &self.observed;
        let websocket = (self.kind == ScopeKind::WebSocket).then(|| {
            let (messages_in, messages_out) = o.messages();
            let close = o.close();
            WebSocketSummary {
                messages_in,
                messages_out,
                close_code: close.as_ref().map(|c| c.0),
                close_reason: close.map(|c| c.1).filter(|t| !t.is_empty()),
            }
        });
        let record = AccessRecord {
            time: self.time,
            client: self.client,
            kind: self.kind,
            method: self.method.clone(),
            target: self.target.clone(),
            protocol: self.protocol,
            status: o.final_status(reason.as_ref()),
            bytes: o.bytes(),
            bytes_in: o.bytes_in(),
            duration: self.start.elapsed(),
            request_id: self
                .stash
                .get::<RequestId>()
                .map(|id| Arc::from(id.as_str())),
            response_started,
            disconnect_reason: reason,
            route: self.stash.get::<MatchedRoute>().map(|r| r.pattern.clone()),
            referer: self.referer.clone(),
            user_agent: self.user_agent.clone(),
            timed_out: self.stash.get::<TimedOut>().is_some(),
            websocket,
        };
        self.cfg.sink.write_line(record.render(&self.cfg.format));
    }
}
