//! Server-Sent Events: start a stream, send events, comments and keep-alives, close it, or
//! decline with an ordinary response — over an `sse` scope **and over a plain HTTP `GET`**.
//!
//! ```
//! use std::time::Duration;
//! use ragi_tools::{sse, Error, SseContext};
//! use ragi_tools::sse::Event;
//!
//! /// `{"n": i}` every 100 ms, resuming after the client's `Last-Event-ID`.
//! async fn ticks(cx: SseContext) -> Result<(), Error> {
//!     let first = cx.last_event_id().and_then(|id| id.parse::<u64>().ok()).map_or(0, |n| n + 1);
//!     cx.keepalive(Duration::from_secs(15)).await?;
//!     // Runs until the client leaves: then it returns `Error::disconnected(reason)`.
//!     cx.every(Duration::from_millis(100), |i| async move {
//!         let n = first + i;
//!         Ok(Some(Event::json(&serde_json::json!({ "n": n }))?.id(n)))
//!     })
//!     .await
//! }
//!
//! let app = sse::handler(ticks); // serves `sse` scopes and plain `GET`s alike
//! # fn is_app(_: impl ragi::App) {}
//! # is_app(app);
//! ```
//!
//! # Two framings, one handler
//!
//! A server makes an `sse` scope for a request whose `Accept` lists `text/event-stream`; there
//! the context sends the SSE events of the protocol (`SseStart`, `SseSend`, …) and the server
//! frames them. `curl -N http://host/events` sends no such `Accept`, so it arrives as an
//! `http` scope: then the context frames the stream itself, with the same rules — a
//! `ResponseStart` with `content-type: text/event-stream` and `cache-control: no-cache`, each
//! event, comment and keep-alive comment one body piece followed by `FullFlush` (where the
//! server offers it) so that it reaches the client at once, a keep-alive timer run by the
//! helper, and the end of the body on close. The handler cannot tell the difference (it may
//! ask [`SseContext::is_native`]).
//!
//! Framing rules (as `ragi-server`'s encoder): `event:`, one `data:` line per line of the data
//! (split on CR, LF and CRLF), `id:`, `retry:` (whole milliseconds) and a blank line; a CR or
//! LF in the event name, the id or a comment, or a NUL in the id, is refused with an error.
//!
//! # The stream's life
//!
//! * [`start`](SseContext::start) / [`start_with`](SseContext::start_with) (status, headers)
//!   sends the head at once; the first event starts the stream with 200 if the handler did not;
//! * [`send`](SseContext::send) an [`Event`] (event, data, id, retry), [`send_json`](SseContext::send_json),
//!   [`comment`](SseContext::comment), [`keepalive`](SseContext::keepalive) (a comment while the
//!   stream is quiet), and [`every`](SseContext::every), a periodic sender;
//! * [`close`](SseContext::close) ends the stream (idempotent);
//! * [`decline`](SseContext::decline), before the start, answers with any ordinary response
//!   instead (the decline pair `HttpResponseStart` + `HttpResponseBody` on an `sse` scope);
//! * every send fails with [`Error::disconnected`] carrying the reason once the client left;
//! * [`sender`](SseContext::sender) gives a cloneable [`SseSender`] for sending from other tasks.
//!
//! # What the adapters do with the handler's result
//!
//! [`handler`] and [`endpoint`] make apps. After the handler returns `Ok`, a stream still open
//! is closed (one never started is answered as an empty stream). An `Err` before the start is
//! the answer (a `401` from an auth check is declined with 401); the client's departure ends
//! quietly; any other error after the start aborts the response (the client sees a broken
//! stream, never a clean end, and reconnects). A `HEAD` request is answered with the stream's
//! head and no body, without calling the handler; a WebSocket or lifespan scope is declined
//! with [`UnsupportedScope`].

use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use ragi::{
    App, AppResult, BoxFuture, Connection, DisconnectReason, Headers, ReceiveEvent, Receiver,
    Scope, ScopeKind, SendEvent, Sender, UnsupportedScope,
};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::response::Responder;
use crate::{Context, Error, IntoResponse, Response};

/// One event: data, and optionally an event name, an id and a retry delay.
///
/// ```
/// use std::time::Duration;
/// use ragi_tools::sse::Event;
///
/// let e = Event::new("line one\nline two").event("update").id(7).retry(Duration::from_secs(3));
/// assert_eq!(&e.encode().unwrap()[..], b"event: update\ndata: line one\ndata: line two\nid: 7\nretry: 3000\n\n");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    inner: ragi::SseEvent,
}

impl Event {
    /// An event carrying `data`.
    pub fn new(data: impl Into<String>) -> Self {
        Self {
            inner: ragi::SseEvent {
                data: data.into(),
                ..Default::default()
            },
        }
    }

    /// An event whose data is `value` as JSON.
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, Error> {
        Ok(Self::new(
            serde_json::to_string(value).map_err(Error::internal)?,
        ))
    }

    /// Sets the event name (`event:`).
    pub fn event(mut self, name: impl Into<String>) -> Self {
        self.inner.event = Some(name.into());
        self
    }

    /// Sets the id (`id:`), which the client sends back as `Last-Event-ID` when it reconnects.
    pub fn id(mut self, id: impl std::fmt::Display) -> Self {
        self.inner.id = Some(id.to_string());
        self
    }

    /// Sets the reconnection delay (`retry:`, whole milliseconds).
    pub fn retry(mut self, delay: Duration) -> Self {
        self.inner.retry = Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Replaces the data.
    pub fn data(mut self, data: impl Into<String>) -> Self {
        self.inner.data = data.into();
        self
    }

    /// The event as the protocol's value.
    pub fn into_inner(self) -> ragi::SseEvent {
        self.inner
    }

    /// Checks the fields: no CR or LF in the event name or the id, no NUL in the id.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(name) = &self.inner.event {
            if name.contains(['\r', '\n']) {
                return Err(Error::internal("CR or LF in an SSE event name"));
            }
        }
        if let Some(id) = &self.inner.id {
            if id.contains(['\r', '\n', '\0']) {
                return Err(Error::internal("CR, LF or NUL in an SSE event id"));
            }
        }
        Ok(())
    }

    /// The event's wire form: `event:`, a `data:` line per line of the data (split on CR, LF
    /// and CRLF), `id:`, `retry:`, and a blank line.
    pub fn encode(&self) -> Result<Bytes, Error> {
        self.validate()?;
        let ev = &self.inner;
        let mut out = BytesMut::with_capacity(ev.data.len() + 32);
        if let Some(name) = &ev.event {
            out.put_slice(b"event: ");
            out.put_slice(name.as_bytes());
            out.put_u8(b'\n');
        }
        let mut rest = ev.data.as_str();
        loop {
            let (line, next) = match rest.find(['\r', '\n']) {
                Some(i) => {
                    let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                    (&rest[..i], Some(&rest[i + skip..]))
                }
                None => (rest, None),
            };
            out.put_slice(b"data: ");
            out.put_slice(line.as_bytes());
            out.put_u8(b'\n');
            match next {
                Some(n) => rest = n,
                None => break,
            }
        }
        if let Some(id) = &ev.id {
            out.put_slice(b"id: ");
            out.put_slice(id.as_bytes());
            out.put_u8(b'\n');
        }
        if let Some(retry) = ev.retry {
            out.put_slice(b"retry: ");
            out.put_slice(retry.to_string().as_bytes());
            out.put_u8(b'\n');
        }
        out.put_u8(b'\n');
        Ok(out.freeze())
    }
}

impl From<ragi::SseEvent> for Event {
    fn from(inner: ragi::SseEvent) -> Self {
        Self { inner }
    }
}

impl From<String> for Event {
    fn from(data: String) -> Self {
        Self::new(data)
    }
}

impl From<&str> for Event {
    fn from(data: &str) -> Self {
        Self::new(data)
    }
}

/// A comment's wire form: `: text` and a blank line.
fn encode_comment(comment: &str) -> Result<Bytes, Error> {
    if comment.contains(['\r', '\n']) {
        return Err(Error::internal("CR or LF in an SSE comment"));
    }
    Ok(Bytes::from(format!(": {comment}\n\n")))
}

/// How the stream reaches the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// An `sse` scope: the server frames the SSE events.
    Native,
    /// An `http` scope: the context frames the events into a `text/event-stream` body;
    /// `flush` when the server honours `FullFlush`.
    Http { flush: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Streaming,
    Declined,
    Closed,
}

struct Shared {
    send: Sender,
    framing: Framing,
    connection: Connection,
    responder: Responder,
    /// Serialises every send (the app's, other handles', the keep-alive timer's), so that the
    /// phase checked is the phase the event is sent in.
    phase: tokio::sync::Mutex<Phase>,
    /// Mirrors `phase` for synchronous readers.
    phase_now: Mutex<Phase>,
    /// Woken when the stream closes.
    closed: Notify,
    /// When the last piece went out (the helper's keep-alive sends only while quiet).
    last_sent: Mutex<Instant>,
    keepalive: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(k) = self.keepalive_slot().take() {
            k.abort();
        }
    }
}

impl Shared {
    fn keepalive_slot(&self) -> std::sync::MutexGuard<'_, Option<tokio::task::JoinHandle<()>>> {
        self.keepalive.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> Phase {
        *self.phase_now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, guard: &mut Phase, phase: Phase) {
        *guard = phase;
        *self.phase_now.lock().unwrap_or_else(|e| e.into_inner()) = phase;
        if phase == Phase::Closed || phase == Phase::Declined {
            if let Some(k) = self.keepalive_slot().take() {
                k.abort();
            }
            self.closed.notify_waiters();
        }
    }

    fn check_connected(&self) -> Result<(), Error> {
        match self.connection.disconnect_reason() {
            Some(r) => Err(Error::disconnected(r)),
            None => Ok(()),
        }
    }

    async fn emit(&self, event: SendEvent) -> Result<(), Error> {
        self.send.send(event).await.map_err(Error::from)
    }

    /// Sends the head (the lock held by the caller).
    async fn start_locked(
        &self,
        phase: &mut Phase,
        status: u16,
        mut headers: Headers,
    ) -> Result<(), Error> {
        match *phase {
            Phase::Idle => {}
            Phase::Streaming => return Err(Error::internal("the event stream already started")),
            Phase::Declined => return Err(Error::internal("the event stream was declined")),
            Phase::Closed => return Err(Error::internal("the event stream is closed")),
        }
        self.check_connected()?;
        match self.framing {
            Framing::Native => {
                self.emit(SendEvent::SseStart { status, headers }).await?;
            }
            Framing::Http { flush } => {
                if !headers.contains("content-type") {
                    headers.push("content-type", "text/event-stream");
                }
                if !headers.contains("cache-control") {
                    headers.push("cache-control", "no-cache");
                }
                self.emit(SendEvent::response_start(status, headers))
                    .await?;
                if flush {
                    self.emit(SendEvent::FullFlush).await?;
                }
            }
        }
        self.set(phase, Phase::Streaming);
        *self.last_sent.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Ok(())
    }

    async fn start(&self, status: u16, headers: Headers) -> Result<(), Error> {
        let mut phase = self.phase.lock().await;
        self.start_locked(&mut phase, status, headers).await
    }

    /// Sends one piece of the stream, starting it with 200 if needed. `native` is the event
    /// for an `sse` scope, `framed` its bytes for an `http` one.
    async fn piece(&self, native: SendEvent, framed: Bytes) -> Result<(), Error> {
        let mut phase = self.phase.lock().await;
        self.check_connected()?;
        match *phase {
            Phase::Idle => self.start_locked(&mut phase, 200, Headers::new()).await?,
            Phase::Streaming => {}
            Phase::Declined => return Err(Error::internal("send on a declined event stream")),
            Phase::Closed => return Err(Error::internal("send after the event stream closed")),
        }
        self.piece_locked(native, framed).await
    }

    async fn piece_locked(&self, native: SendEvent, framed: Bytes) -> Result<(), Error> {
        match self.framing {
            Framing::Native => self.emit(native).await?,
            Framing::Http { flush } => {
                self.emit(SendEvent::body_chunk(framed)).await?;
                if flush {
                    self.emit(SendEvent::FullFlush).await?;
                }
            }
        }
        *self.last_sent.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Ok(())
    }

    async fn send(&self, event: Event) -> Result<(), Error> {
        let bytes = match self.framing {
            Framing::Native => {
                event.validate()?;
                Bytes::new()
            }
            Framing::Http { .. } => event.encode()?,
        };
        self.piece(SendEvent::SseSend(event.into_inner()), bytes)
            .await
    }

    async fn comment(&self, comment: &str) -> Result<(), Error> {
        let bytes = encode_comment(comment)?;
        self.piece(
            SendEvent::SseComment {
                comment: comment.to_owned(),
            },
            bytes,
        )
        .await
    }

    async fn close(&self) -> Result<(), Error> {
        let mut phase = self.phase.lock().await;
        match *phase {
            Phase::Closed | Phase::Declined => return Ok(()),
            Phase::Idle | Phase::Streaming => {}
        }
        let was = *phase;
        self.set(&mut phase, Phase::Closed);
        if !self.connection.is_connected() {
            return Ok(()); // nothing to end: the client is gone
        }
        let result = match self.framing {
            Framing::Native => self.emit(SendEvent::SseClose { reason: None }).await,
            Framing::Http { .. } => {
                if was == Phase::Idle {
                    // Closed before it started: an empty event stream.
                    let headers = Headers::new()
                        .with("content-type", "text/event-stream")
                        .with("cache-control", "no-cache");
                    self.emit(SendEvent::response_start(200, headers)).await?;
                }
                self.emit(SendEvent::body(Bytes::new())).await
            }
        };
        match result {
            Err(e) if e.is_disconnected() => Ok(()),
            other => other,
        }
    }

    async fn decline(&self, response: Response) -> Result<(), Error> {
        let mut phase = self.phase.lock().await;
        match *phase {
            Phase::Idle => {}
            _ => {
                return Err(Error::internal(
                    "an event stream can be declined only before it starts",
                ))
            }
        }
        self.set(&mut phase, Phase::Declined);
        self.responder.send(response).await
    }

    async fn keepalive(self: &Arc<Self>, interval: Duration, comment: String) -> Result<(), Error> {
        let line = encode_comment(&comment)?;
        let phase = self.phase.lock().await;
        if matches!(*phase, Phase::Declined | Phase::Closed) {
            return Err(Error::internal("keep-alive on an event stream that ended"));
        }
        self.check_connected()?;
        if let Framing::Native = self.framing {
            return self
                .emit(SendEvent::SseKeepalive { interval, comment })
                .await;
        }
        drop(phase);
        let mut slot = self.keepalive_slot();
        if let Some(old) = slot.take() {
            old.abort();
        }
        if interval.is_zero() {
            return Ok(());
        }
        let weak = Arc::downgrade(self);
        *slot = Some(tokio::spawn(keepalive_timer(weak, interval, line)));
        Ok(())
    }

    async fn wait_closed(&self) -> Option<DisconnectReason> {
        loop {
            let notified = self.closed.notified();
            if matches!(self.now(), Phase::Closed | Phase::Declined) {
                return self.connection.disconnect_reason();
            }
            tokio::select! {
                _ = notified => {}
                r = self.connection.disconnected() => return Some(r),
            }
        }
    }
}

/// The helper's keep-alive on an `http` scope: a comment whenever the stream was quiet for
/// `interval`; ends with the stream or the client.
async fn keepalive_timer(shared: Weak<Shared>, interval: Duration, line: Bytes) {
    let mut due = Instant::now() + interval;
    loop {
        tokio::time::sleep_until(due).await;
        let Some(s) = shared.upgrade() else { return };
        let last = *s.last_sent.lock().unwrap_or_else(|e| e.into_inner());
        if last + interval > Instant::now() {
            due = last + interval;
            continue;
        }
        let phase = s.phase.lock().await;
        match *phase {
            Phase::Idle => {}
            Phase::Streaming => {
                if s.check_connected().is_err()
                    || s.piece_locked(SendEvent::FullFlush, line.clone())
                        .await
                        .is_err()
                {
                    return;
                }
            }
            Phase::Declined | Phase::Closed => return,
        }
        due = Instant::now() + interval;
    }
}

/// Sends on an event stream from anywhere; cheap to clone. Built by [`SseContext::sender`].
/// Every send fails with the disconnect reason once the client left.
#[derive(Clone)]
pub struct SseSender {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SseSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseSender")
            .field("framing", &self.shared.framing)
            .field("phase", &self.shared.now())
            .finish()
    }
}

impl SseSender {
    /// Sends `event` (starting the stream with 200 if it was not started).
    pub async fn send(&self, event: impl Into<Event>) -> Result<(), Error> {
        self.shared.send(event.into()).await
    }

    /// Sends an event whose data is `value` as JSON.
    pub async fn send_json<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        self.send(Event::json(value)?).await
    }

    /// Sends a comment line (clients ignore it).
    pub async fn comment(&self, comment: &str) -> Result<(), Error> {
        self.shared.comment(comment).await
    }

    /// Closes the stream (idempotent).
    pub async fn close(&self) -> Result<(), Error> {
        self.shared.close().await
    }

    /// Whether events can be sent: not declined or closed, and the client is there.
    pub fn is_open(&self) -> bool {
        matches!(self.shared.now(), Phase::Idle | Phase::Streaming)
            && self.shared.connection.is_connected()
    }

    /// Resolves when the stream ends: with the reason when the client left, `None` when the
    /// app closed (or declined) it.
    pub async fn closed(&self) -> Option<DisconnectReason> {
        self.shared.wait_closed().await
    }

    /// The stream's connection object.
    pub fn connection(&self) -> &Connection {
        &self.shared.connection
    }
}

/// The context of an event stream. See the [module documentation](self).
pub struct SseContext {
    scope: Scope,
    receive: Receiver,
    sender: SseSender,
}

impl std::fmt::Debug for SseContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseContext")
            .field("path", &self.scope.path)
            .field("framing", &self.sender.shared.framing)
            .field("phase", &self.sender.shared.now())
            .finish()
    }
}

impl Context for SseContext {
    fn scope(&self) -> &Scope {
        &self.scope
    }
}

impl SseContext {
    /// The context of an `sse` scope, or of an `http` one (framed by the context).
    pub fn new(scope: Scope, receive: Receiver, send: Sender) -> Self {
        let framing = match scope.kind {
            ScopeKind::Sse => Framing::Native,
            _ => Framing::Http {
                flush: scope.extensions.fullflush,
            },
        };
        let responder = Responder::new(&scope, send.clone());
        let shared = Arc::new(Shared {
            send,
            framing,
            connection: scope.connection().clone(),
            responder,
            phase: tokio::sync::Mutex::new(Phase::Idle),
            phase_now: Mutex::new(Phase::Idle),
            closed: Notify::new(),
            last_sent: Mutex::new(Instant::now()),
            keepalive: Mutex::new(None),
        });
        Self {
            scope,
            receive,
            sender: SseSender { shared },
        }
    }

    /// Whether the server frames the stream (an `sse` scope) rather than the context (a plain
    /// HTTP request).
    pub fn is_native(&self) -> bool {
        self.sender.shared.framing == Framing::Native
    }

    /// The `Last-Event-ID` the client sent when reconnecting.
    pub fn last_event_id(&self) -> Option<&str> {
        self.scope.headers.get_str("last-event-id")
    }

    /// A handle that sends on this stream from anywhere.
    pub fn sender(&self) -> SseSender {
        self.sender.clone()
    }

    /// Starts the stream: 200, `content-type: text/event-stream`, `cache-control: no-cache`.
    pub async fn start(&self) -> Result<(), Error> {
        self.start_with(200, Headers::new()).await
    }

    /// Starts the stream with `status` and extra `headers` (the content type and cache control
    /// are added unless given).
    pub async fn start_with(&self, status: u16, headers: Headers) -> Result<(), Error> {
        self.sender.shared.start(status, headers).await
    }

    /// Whether the stream started.
    pub fn is_started(&self) -> bool {
        !matches!(self.sender.shared.now(), Phase::Idle | Phase::Declined)
    }

    /// Whether events can be sent: not declined or closed, and the client is there.
    pub fn is_open(&self) -> bool {
        self.sender.is_open()
    }

    /// Sends `event` (anything that is an [`Event`]: a `&str` or `String` is its data),
    /// starting the stream with 200 if it was not started.
    pub async fn send(&self, event: impl Into<Event>) -> Result<(), Error> {
        self.sender.send(event).await
    }

    /// Sends an event whose data is `value` as JSON.
    pub async fn send_json<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        self.sender.send_json(value).await
    }

    /// Sends a comment line (`: text`).
    pub async fn comment(&self, comment: &str) -> Result<(), Error> {
        self.sender.comment(comment).await
    }

    /// Sends a `keepalive` comment whenever the stream was quiet for `interval` (zero turns
    /// it off). On an `sse` scope the server runs the timer; on a plain HTTP request the
    /// helper does.
    pub async fn keepalive(&self, interval: Duration) -> Result<(), Error> {
        self.keepalive_with(interval, "keepalive").await
    }

    /// [`keepalive`](Self::keepalive) with the comment `comment`.
    pub async fn keepalive_with(&self, interval: Duration, comment: &str) -> Result<(), Error> {
        self.sender
            .shared
            .keepalive(interval, comment.to_owned())
            .await
    }

    /// Calls `f(0)`, `f(1)`, … every `interval` (the first at once) and sends each event it
    /// returns, until `f` returns `Ok(None)` (then `Ok`; the stream stays open), `f` fails,
    /// the stream is closed (`Ok`), or the client leaves (`Error::disconnected` with the
    /// reason, at once, even between ticks). A tick that comes late delays the next ones.
    pub async fn every<F, Fut>(&self, interval: Duration, mut f: F) -> Result<(), Error>
    where
        F: FnMut(u64) -> Fut,
        Fut: Future<Output = Result<Option<Event>, Error>>,
    {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shared = &self.sender.shared;
        let connection = shared.connection.clone();
        for n in 0u64.. {
            tokio::select! {
                biased;
                r = connection.disconnected() => return Err(Error::disconnected(r)),
                _ = shared.wait_closed() => return Ok(()),
                _ = ticker.tick() => {}
            }
            match f(n).await? {
                Some(event) => self.send(event).await?,
                None => return Ok(()),
            }
        }
        Ok(())
    }

    /// Closes the stream (idempotent; nothing is sent once the client left).
    pub async fn close(&self) -> Result<(), Error> {
        self.sender.close().await
    }

    /// Before the start, answers with `response` instead of a stream: any status, headers and
    /// body (the decline pair on an `sse` scope, an ordinary response on a plain request).
    pub async fn decline(&self, response: impl IntoResponse) -> Result<(), Error> {
        self.sender.shared.decline(response.into_response()).await
    }

    /// Resolves when the stream ends: with the reason when the client left, `None` when the
    /// app closed or declined it.
    pub async fn closed(&self) -> Option<DisconnectReason> {
        self.sender.closed().await
    }

    /// The next raw event from the client (the request body's pieces, then `Disconnect` when
    /// the client leaves).
    pub async fn receive(&mut self) -> ReceiveEvent {
        self.receive.receive().await
    }
}

/// An SSE handler: an async function of the [`SseContext`].
pub trait SseHandler: Send + Sync + 'static {
    /// Handles one stream.
    fn call(&self, cx: SseContext) -> BoxFuture<'static, Result<(), Error>>;
}

impl<F, Fut> SseHandler for F
where
    F: Fn(SseContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
{
    fn call(&self, cx: SseContext) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(self(cx))
    }
}

/// The app that serves every event stream with `h`, on `sse` scopes and plain HTTP requests
/// alike. See the [module documentation](self).
pub fn handler<H: SseHandler>(h: H) -> SseApp<H> {
    SseApp { inner: Arc::new(h) }
}

/// An app made of an [`SseHandler`]; built by [`handler`].
pub struct SseApp<H> {
    inner: Arc<H>,
}

impl<H> Clone for SseApp<H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<H> std::fmt::Debug for SseApp<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SseApp")
    }
}

/// The context of a stream; answers `HEAD` and declines other scopes itself (`None`).
async fn stream(
    scope: Scope,
    receive: Receiver,
    send: Sender,
) -> Result<Option<SseContext>, ragi::AppError> {
    match scope.kind {
        ScopeKind::Sse => {}
        ScopeKind::Http if scope.method == http::Method::HEAD => {
            let responder = Responder::new(&scope, send);
            let head = Response::new(200)
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache");
            responder.complete(head).await?;
            return Ok(None);
        }
        ScopeKind::Http => {}
        other => return Err(UnsupportedScope(other).into()),
    }
    Ok(Some(SseContext::new(scope, receive, send)))
}

impl<H: SseHandler> App for SseApp<H> {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let h = self.inner.clone();
        Box::pin(async move {
            let Some(cx) = stream(scope, receive, send).await? else {
                return Ok(());
            };
            let shared = cx.sender.shared.clone();
            let result = h.call(cx).await;
            finish(&shared, result).await
        })
    }
}

/// Finishes a stream after its handler returned (see the module documentation).
async fn finish(shared: &Shared, result: Result<(), Error>) -> AppResult {
    let e = match result {
        Ok(()) => return shared.close().await.map_err(Error::into_app_error),
        Err(e) if e.is_disconnected() => {
            // Nothing to send; the keep-alive stops with the stream.
            let mut phase = shared.phase.lock().await;
            if matches!(*phase, Phase::Idle | Phase::Streaming) {
                shared.set(&mut phase, Phase::Closed);
            }
            return Ok(());
        }
        Err(e) => e,
    };
    let mut phase = shared.phase.lock().await;
    match *phase {
        Phase::Idle => {
            shared.set(&mut phase, Phase::Declined);
            drop(phase);
            shared.responder.complete(e.into_response()).await
        }
        Phase::Streaming | Phase::Closed | Phase::Declined => {
            let was = *phase;
            shared.set(&mut phase, Phase::Closed);
            if was == Phase::Streaming || e.status() >= 500 {
                e.log();
                return Err(e.into_app_error());
            }
            Ok(())
        }
    }
}

/// An SSE endpoint: a stream split into its events; [`endpoint`] makes one an app.
///
/// ```
/// use ragi::DisconnectReason;
/// use ragi_tools::{sse, Context, Error, SseContext, SseEndpoint};
///
/// struct Feed;
///
/// impl SseEndpoint for Feed {
///     async fn on_connect(&self, cx: &mut SseContext) -> Result<(), Error> {
///         if cx.header("authorization").is_none() {
///             return cx.decline((401, "log in first")).await;
///         }
///         cx.start().await?;
///         let tx = cx.sender(); // hand it to a broadcaster; the stream stays open
///         # let _ = tx;
///         Ok(())
///     }
///
///     async fn on_disconnect(&self, _cx: &mut SseContext, reason: Option<DisconnectReason>) {
///         tracing::info!(?reason, "feed ended");
///     }
/// }
///
/// let app = sse::endpoint(Feed);
/// # fn is_app(_: impl ragi::App) {}
/// # is_app(app);
/// ```
///
/// After `on_connect` returns `Ok`, a stream it did not decline stays open (started with 200
/// if it was not) until the client leaves or a [`SseSender`] closes it; then `on_disconnect`
/// runs once, with the reason when the client left and `None` when the app closed the
/// stream. An error from `on_connect` is handled as a handler's error (see the
/// [module documentation](self)); if it is the client's departure, `on_disconnect` still runs.
pub trait SseEndpoint: Send + Sync + 'static {
    /// The stream opens: start it (the default), send, or decline.
    fn on_connect(&self, cx: &mut SseContext) -> impl Future<Output = Result<(), Error>> + Send {
        cx.start()
    }

    /// The stream ended: `Some(reason)` when the client left, `None` when the app closed it.
    fn on_disconnect(
        &self,
        cx: &mut SseContext,
        reason: Option<DisconnectReason>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (cx, reason);
        async {}
    }
}

/// The app that serves every event stream with the endpoint `e`.
pub fn endpoint<E: SseEndpoint>(e: E) -> SseEndpointApp<E> {
    SseEndpointApp { inner: Arc::new(e) }
}

/// An app made of an [`SseEndpoint`]; built by [`endpoint`].
pub struct SseEndpointApp<E> {
    inner: Arc<E>,
}

impl<E> Clone for SseEndpointApp<E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<E> std::fmt::Debug for SseEndpointApp<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SseEndpointApp")
    }
}

impl<E: SseEndpoint> App for SseEndpointApp<E> {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let e = self.inner.clone();
        Box::pin(async move {
            let Some(mut cx) = stream(scope, receive, send).await? else {
                return Ok(());
            };
            let shared = cx.sender.shared.clone();
            match e.on_connect(&mut cx).await {
                Ok(()) => {}
                Err(err) if err.is_disconnected() => {
                    let reason = err.disconnect_reason().cloned();
                    let done = finish(&shared, Err(err)).await;
                    e.on_disconnect(&mut cx, reason).await;
                    return done;
                }
                Err(err) => return finish(&shared, Err(err)).await,
            }
            match shared.now() {
                Phase::Declined => return Ok(()),
                Phase::Idle => {
                    if let Err(err) = cx.start().await {
                        let reason = err.disconnect_reason().cloned();
                        let done = finish(&shared, Err(err)).await;
                        if reason.is_some() {
                            e.on_disconnect(&mut cx, reason).await;
                        }
                        return done;
                    }
                }
                Phase::Streaming | Phase::Closed => {}
            }
            let reason = cx.closed().await;
            e.on_disconnect(&mut cx, reason).await;
            finish(&shared, Ok(())).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: Option<&str>, data: &str, id: Option<&str>, retry: Option<u64>) -> Event {
        Event::from(ragi::SseEvent {
            event: event.map(Into::into),
            data: data.into(),
            id: id.map(Into::into),
            retry,
        })
    }

    #[test]
    fn events_are_framed_as_the_server_frames_them() {
        let b = ev(Some("tick"), "a\r\nb\rc\nd", Some("7"), Some(1500))
            .encode()
            .unwrap();
        assert_eq!(
            &b[..],
            b"event: tick\ndata: a\ndata: b\ndata: c\ndata: d\nid: 7\nretry: 1500\n\n"
        );
        assert_eq!(
            &ev(None, "", None, None).encode().unwrap()[..],
            b"data: \n\n"
        );
        assert_eq!(
            &ev(None, "x\n", None, None).encode().unwrap()[..],
            b"data: x\ndata: \n\n"
        );
        assert_eq!(
            &ev(None, "\r\n\r\n", None, None).encode().unwrap()[..],
            b"data: \ndata: \ndata: \n\n"
        );
        assert!(ev(Some("a\nb"), "x", None, None).encode().is_err());
        assert!(ev(Some("a\rb"), "x", None, None).encode().is_err());
        assert!(ev(None, "x", Some("1\r"), None).encode().is_err());
        assert!(ev(None, "x", Some("1\0"), None).encode().is_err());
        assert_eq!(&encode_comment("ping").unwrap()[..], b": ping\n\n");
        assert!(encode_comment("a\nb").is_err());
        assert_eq!(
            Event::new("x")
                .retry(Duration::from_millis(2500))
                .inner
                .retry,
            Some(2500)
        );
    }
}
