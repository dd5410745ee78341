//! One HTTP or SSE exchange as the test client plays the server: the app's `receive` and
//! `send`, the connection object's control, and the response the client sees.
//!
//! The rules are the server's (`ragi-server`'s `exchange.rs`, `proto/h1/response.rs` and
//! `sse.rs`), so an app that passes here behaves the same there:
//!
//! * `receive` yields the queued body pieces (the last with `more: false`), a request without
//!   a body one empty final piece, and once the client left a `Disconnect`, repeated;
//! * `send` takes `ResponseStart` (status 200–999, valid headers, one valid `content-length`
//!   at most), `ResponseBody` (not before the start, not after the end; not past a declared
//!   `content-length`, nor ending short of it), `ResponseTrailers` (only when announced),
//!   `FullFlush`; on an `sse` scope the SSE events, translated into those as the server's SSE
//!   sink does; anything else is an `invalid_event` error, and a bad header an
//!   `invalid_header` error; once the exchange ended, every event fails with the reason;
//! * the head reaches the client when the server would write it: with the first body piece,
//!   a `FullFlush` (an SSE start flushes), or trailers; a response in one piece gets a
//!   `content-length`; HEAD, 204 and 304 responses carry no body bytes;
//! * the app returning (or failing, or panicking) before its response completed gets the
//!   server's answer: a `500` when no head was written, else an aborted response; either way
//!   the connection object ends with `server_error`.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use ragi::{
    Body, BoxFuture, Connection, ConnectionControl, DisconnectReason, Headers, HttpVersion,
    ReceiveEvent, ScopeKind, SendError, SendEvent, SendSink, SharedReceiveSource, SseEvent,
    TrySendError,
};
use tokio::sync::{mpsc, Notify};

use super::body::{BodySpec, Step};
use super::disconnect::{Disconnect, Leave};
use super::record::{AppOutcome, Log};

/// What the client sees of the response, in order.
#[derive(Debug)]
pub(crate) enum ClientEvent {
    Head { status: u16, headers: Headers },
    Body(Bytes),
    Trailers(Headers),
    End(End),
}

/// How the response ended for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Fully delivered.
    Complete,
    /// Cut short: the app failed after the head was written.
    Aborted,
    /// The client left.
    Left(DisconnectReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length { remaining: u64 },
    Chunked,
    CloseDelimited,
    NoBody,
}

#[derive(Debug)]
enum Resp {
    Init,
    HeadPending {
        status: u16,
        headers: Headers,
        trailers: bool,
    },
    Body {
        framing: Framing,
        trailers: bool,
    },
    AwaitTrailers,
    Done,
}

impl Resp {
    fn head_written(&self) -> bool {
        matches!(self, Resp::Body { .. } | Resp::AwaitTrailers | Resp::Done)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SsePhase {
    Init,
    Streaming,
    Declined,
    Closed,
}

struct St {
    // The request body, client → app.
    body: VecDeque<Bytes>,
    body_complete: bool,
    /// The request has no body: its one empty final piece comes first, whatever happens.
    no_body_pending: bool,
    final_delivered: bool,
    recv_waker: Option<Waker>,
    /// Body bytes the app has taken.
    body_taken: u64,
    /// The exchange ended abnormally (the `Disconnect` event, step 5).
    disconnect: Option<DisconnectReason>,
    // The response, app → client.
    resp: Resp,
    status: u16,
    sse: SsePhase,
    keepalive: Option<tokio::task::AbortHandle>,
    /// Body bytes the client received.
    delivered: u64,
    to_client: Option<mpsc::UnboundedSender<ClientEvent>>,
    log: Log,
    app: AppOutcome,
    /// A scripted disconnect that has not happened yet.
    leave_at: Option<(Disconnect, DisconnectReason)>,
    /// How many body bytes the client sends before it leaves (`MidBody`).
    body_limit: Option<u64>,
}

/// One exchange. See the [module documentation](self).
pub(crate) struct Exchange {
    control: ConnectionControl,
    kind: ScopeKind,
    version: HttpVersion,
    head_request: bool,
    st: Mutex<St>,
    app_done: Notify,
}

/// What the request says about itself, for the exchange.
pub(crate) struct ExchangeSpec {
    pub(crate) kind: ScopeKind,
    pub(crate) version: HttpVersion,
    pub(crate) head_request: bool,
    pub(crate) body: BodySpec,
    pub(crate) leave_at: Option<(Disconnect, DisconnectReason)>,
}

fn invalid(why: impl Into<String>) -> SendError {
    SendError::invalid_event(why)
}

/// RFC 9110 `content-length`: digits only, at most 19 of them.
fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

impl Exchange {
    /// A new exchange, its connection object, and the client's end of the response.
    pub(crate) fn new(
        spec: ExchangeSpec,
    ) -> (
        Arc<Exchange>,
        Connection,
        mpsc::UnboundedReceiver<ClientEvent>,
    ) {
        let (connection, control) = Connection::pair();
        let (tx, rx) = mpsc::unbounded_channel();
        let no_body = matches!(spec.body, BodySpec::Empty);
        let body_limit = match spec.leave_at {
            Some((Disconnect::MidBody(n), _)) => Some(n),
            Some((Disconnect::BeforeBody, _)) => Some(0),
            _ => None,
        };
        let ex = Arc::new(Exchange {
            control,
            kind: spec.kind,
            version: spec.version,
            head_request: spec.head_request,
            st: Mutex::new(St {
                body: VecDeque::new(),
                body_complete: no_body,
                no_body_pending: no_body,
                final_delivered: false,
                recv_waker: None,
                body_taken: 0,
                disconnect: None,
                resp: Resp::Init,
                status: 0,
                sse: SsePhase::Init,
                keepalive: None,
                delivered: 0,
                to_client: Some(tx),
                log: Log::default(),
                app: AppOutcome::Running,
                leave_at: spec.leave_at,
                body_limit,
            }),
            app_done: Notify::new(),
        });
        (ex, connection, rx)
    }

    fn lock(&self) -> MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ----- the request body ---------------------------------------------------------------

    /// Starts the client's side once the app was called: queues the body (or runs its script
    /// in a task), and arms the scripted disconnect.
    pub(crate) fn start(self: &Arc<Self>, body: BodySpec) {
        let steps: Vec<Step> = match body {
            BodySpec::Empty => Vec::new(),
            BodySpec::Full(b) => vec![Step::Chunk(b)],
            BodySpec::Script(steps) => steps,
        };
        let total: u64 = steps
            .iter()
            .map(|s| match s {
                Step::Chunk(b) => b.len() as u64,
                Step::Pause(_) => 0,
            })
            .sum();
        // A client that is to leave mid-body sends what it has, at most.
        let (limit, leave_at) = {
            let mut st = self.lock();
            if let Some(l) = st.body_limit.as_mut() {
                *l = (*l).min(total);
            }
            (st.body_limit, st.leave_at.clone())
        };
        let leave_at = match leave_at {
            Some((Disconnect::MidBody(_), r)) if limit == Some(0) => {
                Some((Disconnect::BeforeBody, r))
            }
            other => other,
        };
        match leave_at {
            Some((Disconnect::After(d), reason)) => {
                let ex = Arc::downgrade(self);
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    if let Some(ex) = ex.upgrade() {
                        ex.leave(reason);
                    }
                });
            }
            Some((Disconnect::BeforeBody, reason)) => {
                self.lock().leave_at = None;
                self.leave(reason);
                return;
            }
            _ => {}
        }
        if steps.iter().any(|s| matches!(s, Step::Pause(_))) {
            let ex = self.clone();
            tokio::spawn(async move { ex.feed(steps, limit).await });
        } else if !steps.is_empty() {
            // Everything is here before the app's first poll, as the server reads ahead.
            let mut ready = std::pin::pin!(self.clone().feed(steps, limit));
            let done = ready.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            debug_assert!(done.is_ready(), "a body without pauses is fed at once");
        }
    }

    /// Feeds the body's steps, up to `limit` bytes when the client is to leave mid-body.
    async fn feed(self: Arc<Self>, steps: Vec<Step>, limit: Option<u64>) {
        let last_chunk = steps.iter().rposition(|s| matches!(s, Step::Chunk(_)));
        let ends_with_chunk = matches!(steps.last(), Some(Step::Chunk(_)));
        let mut sent = 0u64;
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                Step::Pause(d) => tokio::time::sleep(d).await,
                Step::Chunk(mut data) => {
                    if let Some(limit) = limit {
                        let room = limit.saturating_sub(sent);
                        if room == 0 {
                            return;
                        }
                        if (data.len() as u64) > room {
                            data.truncate(room as usize);
                        }
                        sent += data.len() as u64;
                        if !self.push_body(data, false) {
                            return;
                        }
                        continue;
                    }
                    let complete = ends_with_chunk && Some(i) == last_chunk;
                    if !self.push_body(data, complete) {
                        return;
                    }
                }
            }
        }
        if limit.is_none() && !ends_with_chunk {
            self.push_body(Bytes::new(), true);
        }
    }

    /// Queues a body piece for the app; false once the client is gone.
    fn push_body(&self, data: Bytes, complete: bool) -> bool {
        let waker = {
            let mut st = self.lock();
            if st.disconnect.is_some() {
                return false;
            }
            if !data.is_empty() {
                st.body.push_back(data);
            }
            st.body_complete |= complete;
            st.recv_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    // ----- the end ------------------------------------------------------------------------

    /// The client leaves: the connection object first (steps 1–4), then the `Disconnect`
    /// event (step 5), then the client's view ends.
    pub(crate) fn leave_now(&self, reason: DisconnectReason) -> bool {
        if !self.control.disconnect(reason.clone()) {
            return false;
        }
        let (waker, tx, keepalive) = {
            let mut st = self.lock();
            st.disconnect = Some(reason.clone());
            st.leave_at = None;
            (
                st.recv_waker.take(),
                st.to_client.take(),
                st.keepalive.take(),
            )
        };
        if let Some(w) = waker {
            w.wake();
        }
        if let Some(k) = keepalive {
            k.abort();
        }
        if let Some(tx) = tx {
            let _ = tx.send(ClientEvent::End(End::Left(reason)));
        }
        true
    }

    /// The server ends the exchange (the app failed): the connection object, then the
    /// `Disconnect` event.
    fn server_disconnect(&self, reason: DisconnectReason) {
        if !self.control.disconnect(reason.clone()) {
            return;
        }
        let (waker, keepalive) = {
            let mut st = self.lock();
            st.disconnect = Some(reason);
            (st.recv_waker.take(), st.keepalive.take())
        };
        if let Some(w) = waker {
            w.wake();
        }
        if let Some(k) = keepalive {
            k.abort();
        }
    }

    /// The app's call ended: record it, and answer for it as the server does when its
    /// response is not complete.
    pub(crate) fn app_finished(&self, outcome: AppOutcome) {
        let (done, head_written) = {
            let mut st = self.lock();
            st.app = outcome;
            (matches!(st.resp, Resp::Done), st.resp.head_written())
        };
        self.app_done.notify_waiters();
        if done || !self.control.is_open() {
            return;
        }
        self.server_disconnect(DisconnectReason::ServerError);
        let tx = self.lock().to_client.take();
        let Some(tx) = tx else { return };
        if head_written {
            let _ = tx.send(ClientEvent::End(End::Aborted));
            return;
        }
        self.control.set_response_started();
        let body = Bytes::from_static(b"500 Internal Server Error\n");
        let headers = Headers::new()
            .with("content-type", "text/plain; charset=utf-8")
            .with("content-length", body.len().to_string());
        self.lock().status = 500;
        let _ = tx.send(ClientEvent::Head {
            status: 500,
            headers,
        });
        if !self.head_request {
            let _ = tx.send(ClientEvent::Body(body));
        }
        let _ = tx.send(ClientEvent::End(End::Complete));
    }

    /// How the app's call has ended so far.
    pub(crate) fn app_outcome(&self) -> AppOutcome {
        self.lock().app.clone()
    }

    /// Waits for the app's call to end, at most `timeout`.
    pub(crate) async fn wait_app(&self, timeout: Duration) -> AppOutcome {
        let wait = async {
            loop {
                let notified = self.app_done.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let now = self.app_outcome();
                if now != AppOutcome::Running {
                    return now;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(AppOutcome::Running)
    }

    pub(crate) fn with_log<R>(&self, f: impl FnOnce(&Log) -> R) -> R {
        f(&self.lock().log)
    }

    /// Whether the exchange is over for the client (complete, aborted, or left).
    pub(crate) fn is_over(&self) -> bool {
        self.lock().to_client.is_none()
    }

    // ----- the response -------------------------------------------------------------------

    fn emit(st: &mut St, ev: ClientEvent) {
        if let Some(tx) = &st.to_client {
            let _ = tx.send(ev);
        }
    }

    /// Applies one HTTP-level event under the lock. Returns whether the response completed.
    fn apply_http(&self, st: &mut St, event: SendEvent) -> Result<bool, SendError> {
        if let Some(r) = &st.disconnect {
            return Err(SendError::disconnected(r.clone()));
        }
        match event {
            SendEvent::ResponseStart {
                status,
                headers,
                trailers,
            } => {
                if !matches!(st.resp, Resp::Init) {
                    return Err(invalid("ResponseStart sent twice"));
                }
                if !(200..=999).contains(&status) {
                    return Err(invalid(format!(
                        "status {status} is not a final status (200-999)"
                    )));
                }
                headers.validate().map_err(SendError::invalid_header)?;
                if let Some(cl) = headers.get("content-length") {
                    if parse_content_length(cl).is_none()
                        || headers.get_all("content-length").count() > 1
                    {
                        return Err(invalid("invalid content-length header"));
                    }
                }
                st.status = status;
                st.resp = Resp::HeadPending {
                    status,
                    headers,
                    trailers,
                };
                self.control.set_response_started();
                Ok(false)
            }
            SendEvent::ResponseBody {
                body: Body::Bytes(data),
                more,
            } => self.body(st, data, more),
            SendEvent::ResponseBody {
                body: Body::File { .. },
                ..
            } => unreachable!("files are read into pieces first"),
            SendEvent::ResponseTrailers { headers } => {
                match &st.resp {
                    Resp::HeadPending { trailers: true, .. } => {
                        self.write_head(st, None);
                        st.resp = Resp::AwaitTrailers;
                    }
                    Resp::Body { trailers: true, .. } => st.resp = Resp::AwaitTrailers,
                    Resp::AwaitTrailers => {}
                    _ => {
                        return Err(invalid(
                            "ResponseTrailers without trailers: true, or out of order",
                        ))
                    }
                }
                headers.validate().map_err(SendError::invalid_header)?;
                st.resp = Resp::Done;
                if !(self.head_request || st.status == 204 || st.status == 304) {
                    Self::emit(st, ClientEvent::Trailers(headers));
                }
                Ok(true)
            }
            SendEvent::FullFlush => {
                if let Resp::HeadPending { .. } = st.resp {
                    self.write_head(st, None);
                }
                Ok(false)
            }
            other => Err(invalid(format!(
                "{} is not valid in an http scope",
                other.name()
            ))),
        }
    }

    fn body(&self, st: &mut St, data: Bytes, more: bool) -> Result<bool, SendError> {
        match &st.resp {
            Resp::Init => return Err(invalid("ResponseBody before ResponseStart")),
            Resp::AwaitTrailers | Resp::Done => {
                return Err(invalid("ResponseBody after the body ended"))
            }
            _ => {}
        }
        if let Resp::HeadPending { .. } = st.resp {
            let whole = if more { None } else { Some(data.len() as u64) };
            self.write_head(st, whole);
        }
        let Resp::Body { framing, trailers } = &mut st.resp else {
            unreachable!("the head was written")
        };
        let trailers = *trailers;
        let deliver = match framing {
            Framing::Length { remaining } => {
                if data.len() as u64 > *remaining {
                    return Err(invalid("response body longer than its content-length"));
                }
                *remaining -= data.len() as u64;
                if !more && *remaining > 0 {
                    // The bytes go out; the response stays unfinished (as on the server).
                    if !data.is_empty() {
                        st.delivered += data.len() as u64;
                        Self::emit(st, ClientEvent::Body(data));
                    }
                    return Err(invalid("response body shorter than its content-length"));
                }
                true
            }
            Framing::Chunked | Framing::CloseDelimited => true,
            Framing::NoBody => false,
        };
        if deliver && !data.is_empty() {
            st.delivered += data.len() as u64;
            Self::emit(st, ClientEvent::Body(data));
        }
        if more {
            return Ok(false);
        }
        if trailers {
            st.resp = Resp::AwaitTrailers;
            Ok(false)
        } else {
            st.resp = Resp::Done;
            Ok(true)
        }
    }

    /// Writes the held head: picks the framing as the server does and shows the client the
    /// headers it would see (the app's, less the connection's framing fields, with the
    /// `content-length` the server adds).
    fn write_head(&self, st: &mut St, whole: Option<u64>) {
        let Resp::HeadPending {
            status,
            headers,
            trailers,
        } = std::mem::replace(&mut st.resp, Resp::Init)
        else {
            unreachable!("write_head without a pending head")
        };
        let declared = headers
            .get("content-length")
            .and_then(|v| parse_content_length(v));
        let app_chunked = headers
            .get("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"));
        let trailers_ok = self.version != HttpVersion::Http10;
        let framing = if self.head_request || status == 204 || status == 304 {
            Framing::NoBody
        } else if trailers && trailers_ok {
            Framing::Chunked
        } else if let Some(n) = declared {
            Framing::Length { remaining: n }
        } else if let (Some(n), false) = (whole, app_chunked) {
            Framing::Length { remaining: n }
        } else if self.version != HttpVersion::Http10 {
            Framing::Chunked
        } else {
            Framing::CloseDelimited
        };
        let trailers = trailers && framing == Framing::Chunked;
        let drop_length = framing == Framing::Chunked
            || (framing == Framing::NoBody && !self.head_request && status != 304);
        let mut seen = Headers::with_capacity(headers.len() + 1);
        for (n, v) in headers {
            let skip = n.eq_ignore_ascii_case(b"connection")
                || n.eq_ignore_ascii_case(b"keep-alive")
                || n.eq_ignore_ascii_case(b"transfer-encoding")
                || (drop_length && n.eq_ignore_ascii_case(b"content-length"));
            if !skip {
                seen.push(n, v);
            }
        }
        match framing {
            Framing::Length { remaining } if declared.is_none() => {
                seen.push("content-length", remaining.to_string());
            }
            // As the server: HEAD states GET's length; a 204 or 304 has none to state.
            Framing::NoBody
                if self.head_request && declared.is_none() && status != 204 && status != 304 =>
            {
                if let Some(n) = whole {
                    seen.push("content-length", n.to_string());
                }
            }
            _ => {}
        }
        st.resp = Resp::Body { framing, trailers };
        Self::emit(
            st,
            ClientEvent::Head {
                status,
                headers: seen,
            },
        );
    }

    /// After the response completed: the client has it all, the object completes.
    fn completed(&self) {
        let tx = self.lock().to_client.take();
        if let Some(tx) = tx {
            let _ = tx.send(ClientEvent::End(End::Complete));
        }
        self.control.complete();
    }

    /// Applies HTTP-level events (one app event's translation) in order.
    fn apply_all(&self, events: Vec<SendEvent>) -> Result<(), SendError> {
        for ev in events {
            let done = {
                let mut st = self.lock();
                self.apply_http(&mut st, ev)?
            };
            if done {
                self.completed();
            }
        }
        Ok(())
    }

    /// Sends a file region as body pieces of at most 64 KiB, as the server reads it.
    fn send_file(
        self: &Arc<Self>,
        path: &std::path::Path,
        offset: u64,
        length: Option<u64>,
        more: bool,
    ) -> Result<(), SendError> {
        use std::io::{Read, Seek, SeekFrom};
        let shown = path.display().to_string();
        let io_err = |e: std::io::Error| invalid(format!("cannot read {shown}: {e}"));
        let mut file = std::fs::File::open(path).map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        if offset > size {
            return Err(invalid("file offset beyond the end of the file"));
        }
        file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        let mut left = length.unwrap_or(size - offset).min(size - offset);
        if left == 0 {
            return self.apply_all(vec![SendEvent::ResponseBody {
                body: Body::Bytes(Bytes::new()),
                more,
            }]);
        }
        while left > 0 {
            let n = left.min(64 * 1024) as usize;
            let mut buf = vec![0u8; n];
            file.read_exact(&mut buf).map_err(io_err)?;
            left -= n as u64;
            self.apply_all(vec![SendEvent::ResponseBody {
                body: Body::Bytes(buf.into()),
                more: more || left > 0,
            }])?;
            self.check_leave();
        }
        Ok(())
    }

    /// A scripted disconnect whose moment came (on the app's side of the exchange).
    fn check_leave(&self) {
        let due = {
            let st = self.lock();
            match &st.leave_at {
                Some((Disconnect::AfterResponseStart, r)) if !matches!(st.resp, Resp::Init) => {
                    Some(r.clone())
                }
                Some((Disconnect::AfterBytes(n), r)) if st.delivered >= *n => Some(r.clone()),
                _ => None,
            }
        };
        if let Some(r) = due {
            self.leave_now(r);
        }
    }

    /// One event from the app: translated (SSE), applied, recorded.
    fn send_app_event(self: &Arc<Self>, event: SendEvent) -> Result<(), SendError> {
        let logged = event.clone();
        let r = self.dispatch(event);
        self.lock().log.record(logged, &r);
        self.check_leave();
        r
    }

    fn dispatch(self: &Arc<Self>, event: SendEvent) -> Result<(), SendError> {
        if self.kind == ScopeKind::Sse {
            if let SendEvent::SseKeepalive { interval, comment } = event {
                return self.start_keepalive(interval, comment);
            }
            let events = self.translate_sse(event)?;
            return self.apply_all(events);
        }
        match event {
            SendEvent::ResponseBody {
                body:
                    Body::File {
                        path,
                        offset,
                        length,
                    },
                more,
            } => {
                if let Some(r) = &self.lock().disconnect {
                    return Err(SendError::disconnected(r.clone()));
                }
                self.send_file(&path, offset, length, more)
            }
            other => self.apply_all(vec![other]),
        }
    }

    // ----- SSE ----------------------------------------------------------------------------

    /// The HTTP events for one SSE event, as the server's SSE sink makes them.
    fn translate_sse(&self, event: SendEvent) -> Result<Vec<SendEvent>, SendError> {
        let mut st = self.lock();
        let phase = st.sse;
        match (event, phase) {
            (SendEvent::SseClose { .. }, SsePhase::Closed) => Ok(Vec::new()),
            (other, SsePhase::Closed) => Err(invalid(format!("{} after SseClose", other.name()))),
            (
                SendEvent::SseStart {
                    status,
                    mut headers,
                },
                SsePhase::Init,
            ) => {
                headers.validate().map_err(SendError::invalid_header)?;
                if !headers.contains("content-type") {
                    headers.push("content-type", "text/event-stream");
                }
                if !headers.contains("cache-control") {
                    headers.push("cache-control", "no-cache");
                }
                st.sse = SsePhase::Streaming;
                Ok(vec![
                    SendEvent::response_start(status, headers),
                    SendEvent::FullFlush,
                ])
            }
            (SendEvent::HttpResponseStart { status, headers }, SsePhase::Init) => {
                st.sse = SsePhase::Declined;
                Ok(vec![SendEvent::response_start(status, headers)])
            }
            (SendEvent::HttpResponseBody { body, more }, SsePhase::Declined) => {
                if !more {
                    st.sse = SsePhase::Closed;
                }
                Ok(vec![SendEvent::ResponseBody {
                    body: Body::Bytes(body),
                    more,
                }])
            }
            (SendEvent::SseSend(ev), SsePhase::Streaming) => {
                Ok(vec![SendEvent::body_chunk(format_event(&ev)?)])
            }
            (SendEvent::SseComment { comment }, SsePhase::Streaming) => {
                Ok(vec![SendEvent::body_chunk(format_comment(&comment)?)])
            }
            (SendEvent::SseClose { .. }, SsePhase::Streaming | SsePhase::Init) => {
                st.sse = SsePhase::Closed;
                if let Some(k) = st.keepalive.take() {
                    k.abort();
                }
                if phase == SsePhase::Init {
                    let headers = Headers::new()
                        .with("content-type", "text/event-stream")
                        .with("cache-control", "no-cache");
                    return Ok(vec![
                        SendEvent::response_start(200, headers),
                        SendEvent::body(Bytes::new()),
                    ]);
                }
                Ok(vec![SendEvent::body(Bytes::new())])
            }
            (other, p) => Err(invalid(format!(
                "{} is not valid in an sse scope here ({p:?})",
                other.name()
            ))),
        }
    }

    /// `SseKeepalive`: a comment every `interval` while the stream is open (zero stops it).
    fn start_keepalive(
        self: &Arc<Self>,
        interval: Duration,
        comment: String,
    ) -> Result<(), SendError> {
        let line = format_comment(&comment)?;
        let mut st = self.lock();
        if let Some(old) = st.keepalive.take() {
            old.abort();
        }
        if interval.is_zero() || st.disconnect.is_some() {
            return Ok(());
        }
        let ex = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(ex) = ex.upgrade() else { return };
                let phase = ex.lock().sse;
                match phase {
                    SsePhase::Streaming => {
                        if ex
                            .apply_all(vec![SendEvent::body_chunk(line.clone())])
                            .is_err()
                        {
                            return;
                        }
                        ex.check_leave();
                    }
                    SsePhase::Init => {}
                    SsePhase::Declined | SsePhase::Closed => return,
                }
            }
        });
        st.keepalive = Some(task.abort_handle());
        Ok(())
    }
}

impl Leave for Exchange {
    fn leave(&self, reason: DisconnectReason) -> bool {
        self.leave_now(reason)
    }
}

/// `event:`, `data:` (one per line of the data), `id:`, `retry:` lines and a blank line.
pub(crate) fn format_event(ev: &SseEvent) -> Result<Bytes, SendError> {
    let has_newline = |s: &str| s.contains(['\r', '\n']);
    let mut out = String::with_capacity(ev.data.len() + 32);
    if let Some(name) = &ev.event {
        if has_newline(name) {
            return Err(invalid("CR or LF in an SSE event name"));
        }
        out.push_str("event: ");
        out.push_str(name);
        out.push('\n');
    }
    let data = ev.data.replace("\r\n", "\n").replace('\r', "\n");
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    if let Some(id) = &ev.id {
        if has_newline(id) || id.contains('\0') {
            return Err(invalid("CR, LF or NUL in an SSE id"));
        }
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    if let Some(retry) = ev.retry {
        out.push_str(&format!("retry: {retry}\n"));
    }
    out.push('\n');
    Ok(Bytes::from(out))
}

/// `: comment` and a blank line.
pub(crate) fn format_comment(comment: &str) -> Result<Bytes, SendError> {
    if comment.contains(['\r', '\n']) {
        return Err(invalid("CR or LF in an SSE comment"));
    }
    Ok(Bytes::from(format!(": {comment}\n\n")))
}

/// The exchange is the `receive` side of its scope.
impl SharedReceiveSource for Exchange {
    fn poll_receive(&self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        let mut st = self.lock();
        if st.no_body_pending {
            st.no_body_pending = false;
            st.final_delivered = true;
            return Poll::Ready(ReceiveEvent::Request {
                body: Bytes::new(),
                more: false,
            });
        }
        if let Some(piece) = st.body.pop_front() {
            let more = !(st.body.is_empty() && st.body_complete);
            st.final_delivered = !more;
            st.body_taken += piece.len() as u64;
            let due = match (&st.leave_at, st.body_limit) {
                (Some((Disconnect::MidBody(_), r)), Some(limit)) if st.body_taken >= limit => {
                    Some(r.clone())
                }
                _ => None,
            };
            drop(st);
            if let Some(r) = due {
                self.leave_now(r);
            }
            return Poll::Ready(ReceiveEvent::Request { body: piece, more });
        }
        if st.body_complete && !st.final_delivered {
            st.final_delivered = true;
            return Poll::Ready(ReceiveEvent::Request {
                body: Bytes::new(),
                more: false,
            });
        }
        if let Some(r) = &st.disconnect {
            return Poll::Ready(ReceiveEvent::Disconnect { reason: r.clone() });
        }
        st.recv_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The `send` side of an exchange's scope. Every event is applied at once (the test client's
/// buffer never fills), so `try_send` always decides.
pub(crate) struct Sink {
    pub(crate) ex: Arc<Exchange>,
}

impl SendSink for Sink {
    fn send(&self, event: SendEvent) -> BoxFuture<'_, Result<(), SendError>> {
        let r = self.ex.send_app_event(event);
        Box::pin(std::future::ready(r))
    }

    fn try_send(&self, event: SendEvent) -> Result<(), TrySendError> {
        self.ex.send_app_event(event).map_err(TrySendError::Failed)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // The app dropped its last `send` handle: no keep-alive without it (the server's SSE
        // sink stops its keep-alive task when dropped).
        if let Some(k) = self.ex.lock().keepalive.take() {
            k.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_framed_like_the_server() {
        let ev = SseEvent {
            event: Some("tick".into()),
            data: "a\r\nb\rc\nd".into(),
            id: Some("7".into()),
            retry: Some(1500),
        };
        assert_eq!(
            &format_event(&ev).unwrap()[..],
            b"event: tick\ndata: a\ndata: b\ndata: c\ndata: d\nid: 7\nretry: 1500\n\n"
        );
        assert!(format_comment("a\nb").is_err());
        assert_eq!(parse_content_length(b"12"), Some(12));
        assert_eq!(parse_content_length(b"+1"), None);
        assert_eq!(parse_content_length(b""), None);
    }
}
