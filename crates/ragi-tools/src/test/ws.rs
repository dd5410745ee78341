//! WebSocket sessions: [`TestClient::websocket`](super::TestClient::websocket).
//!
//! The session follows the server's rules (`ragi-server`'s `ws.rs`):
//!
//! * the app's first `receive` is `WebSocketConnect`; it answers with `WebSocketAccept` (a
//!   subprotocol the client offered, if any), the denial pair `HttpResponseStart` (200–999,
//!   not 101) + `HttpResponseBody` (collected until `more: false`), or `WebSocketClose`, which
//!   the server answers with HTTP 403; an app that fails or returns without answering gets 403
//!   too, and its connection object ends with `server_error`;
//! * once open, `WebSocketSend` and `WebSocketClose` (codes 1000–1003, 1007–1014, 3000–4999)
//!   are valid, `WebSocketKeepalive` in any state; anything else is an `invalid_event` error;
//!   once the session ended every event fails with the reason;
//! * the client's close frame reaches the app as `WebSocketDisconnect` with its code and
//!   reason (`client_closed` when it had none) and ends the object with `client_closed`; the
//!   app's close frame is answered by the client at once with the same code (as browsers do),
//!   so the app's next `receive` is `WebSocketDisconnect` with that code and the object
//!   completes; an abrupt disconnect (dropping the [`TestWebSocket`]) is 1006 with the reason's
//!   name; the app returning closes with 1000 (completed), failing with 1011
//!   (`server_error`);
//! * the app's receive queue is bounded (1000 messages): one more closes with 1008 and
//!   `queue_overflow`;
//! * [`TestWebSocket::stall`] makes a client that does not read: the app's message sends
//!   wait until [`TestWebSocket::resume`] or the end of the session (a slow consumer);
//! * keep-alive pings are answered by the client unless [`TestWebSocket::set_auto_pong`] turns
//!   that off: then the session ends with 1006 and `keepalive_timeout` when the pong is due.
//!
//! ```
//! use ragi::{Message, ReceiveEvent, Receiver, Scope, Sender, SendEvent, Headers};
//! use ragi_tools::test::{TestClient, TestError};
//!
//! async fn echo(_: Scope, mut rx: Receiver, send: Sender) -> ragi::AppResult {
//!     let _connect = rx.receive().await;
//!     send.send(SendEvent::WebSocketAccept { subprotocol: None, headers: Headers::new() }).await?;
//!     while let ReceiveEvent::WebSocketReceive(m) = rx.receive().await {
//!         send.send(SendEvent::WebSocketSend(m)).await?;
//!     }
//!     Ok(())
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let client = TestClient::new(echo);
//! let mut ws = client.websocket("/ws").connect().await.accepted();
//! ws.send_text("hi").await.unwrap();
//! assert_eq!(ws.receive_text().await.unwrap(), "hi");
//! ws.close(1000, "bye").await;
//! assert!(matches!(ws.receive().await, Err(TestError::Closed { code: 1000, .. })));
//! # });
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ragi::{
    BoxFuture, Connection, ConnectionControl, DisconnectReason, Headers, Message, ReceiveEvent,
    ReceiveSource, Receiver, ScopeKind, SendError, SendEvent, SendSink, Sender, TrySendError,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, Notify};

use super::http::{append_query, split_target, ExchangeView, TestResponse};
use super::record::{AppOutcome, Log, Sent, Violation};
use super::{TestClient, TestError, TestTransport};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AppPhase {
    Connecting,
    Denying,
    Open,
    Closed,
}

/// What the client sees of the session.
#[derive(Debug)]
enum WsEvent {
    Accepted {
        subprotocol: Option<String>,
        headers: Headers,
    },
    Denied {
        status: u16,
        headers: Headers,
        body: Bytes,
    },
    /// HTTP 403: the app closed before accepting (its code and reason), or failed.
    Refused {
        close: Option<(u16, String)>,
    },
    Message(Message),
    /// A close frame from the server.
    Close {
        code: u16,
        reason: String,
    },
    /// The connection dropped without a close frame.
    Gone {
        reason: DisconnectReason,
    },
}

struct St {
    phase: AppPhase,
    connect_delivered: bool,
    inbox: VecDeque<Message>,
    /// The app's `WebSocketDisconnect`, once the session ended for it.
    end: Option<(u16, String)>,
    send_error: Option<DisconnectReason>,
    recv_waker: Option<Waker>,
    deny: Option<(u16, Headers, BytesMut)>,
    app_closed: bool,
    keepalive: Option<(Duration, Duration)>,
    keepalive_task: Option<tokio::task::AbortHandle>,
    auto_pong: bool,
    pings: u64,
    to_client: Option<mpsc::UnboundedSender<WsEvent>>,
    log: Log,
    app: AppOutcome,
    /// The client stopped reading: the app's sends wait ([`TestWebSocket::stall`]).
    stalled: bool,
}

/// One session, shared by the app's handles and the client.
struct Ws {
    control: ConnectionControl,
    offered: Vec<String>,
    max_queue: usize,
    st: Mutex<St>,
    app_done: Notify,
    /// Woken when the client reads again or the session ends.
    unstall: Notify,
}

/// What to do with the connection object once the session's lock is released.
enum Ctl {
    Nothing,
    Accepted,
    Denied,
    /// The app closed; the client answers with the same code.
    AppClosed(u16),
    Keepalive,
}

/// Close codes an app may send (RFC 6455 §7.4: not 1004–1006, 1015, nor unassigned ones).
fn app_close_code_ok(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

impl Ws {
    fn lock(&self) -> MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(st: &St, ev: WsEvent) {
        if let Some(tx) = &st.to_client {
            let _ = tx.send(ev);
        }
    }

    /// The handshake is answered with a denial (the app's, or the server's 403).
    fn deny_now(st: &mut St) {
        st.phase = AppPhase::Closed;
        st.end = Some((1006, "denied".to_owned()));
        st.send_error = Some(DisconnectReason::ServerError);
        if let Some(w) = st.recv_waker.take() {
            w.wake();
        }
    }

    fn apply(&self, st: &mut St, event: SendEvent) -> Result<Ctl, SendError> {
        match (st.phase, event) {
            (
                AppPhase::Connecting,
                SendEvent::WebSocketAccept {
                    subprotocol,
                    mut headers,
                },
            ) => {
                if let Some(p) = &subprotocol {
                    if !self.offered.iter().any(|o| o == p) {
                        return Err(SendError::invalid_event(format!(
                            "subprotocol {p:?} was not offered by the client"
                        )));
                    }
                }
                headers.validate().map_err(SendError::invalid_header)?;
                if let Some(p) = &subprotocol {
                    headers.push("sec-websocket-protocol", p.clone());
                }
                st.phase = AppPhase::Open;
                Self::emit(
                    st,
                    WsEvent::Accepted {
                        subprotocol,
                        headers,
                    },
                );
                Ok(Ctl::Accepted)
            }
            (AppPhase::Connecting, SendEvent::HttpResponseStart { status, headers }) => {
                if !(200..=999).contains(&status) || status == 101 {
                    return Err(SendError::invalid_event(format!(
                        "a denial status must be 200-999 (not 101), got {status}"
                    )));
                }
                headers.validate().map_err(SendError::invalid_header)?;
                st.phase = AppPhase::Denying;
                st.deny = Some((status, headers, BytesMut::new()));
                Ok(Ctl::Nothing)
            }
            (AppPhase::Connecting, SendEvent::WebSocketClose { code, reason }) => {
                Self::deny_now(st);
                Self::emit(
                    st,
                    WsEvent::Refused {
                        close: Some((code, reason)),
                    },
                );
                Ok(Ctl::Denied)
            }
            (AppPhase::Denying, SendEvent::HttpResponseBody { body, more }) => {
                let (_, _, buf) = st.deny.as_mut().expect("denying");
                buf.extend_from_slice(&body);
                if !more {
                    let (status, headers, buf) = st.deny.take().expect("denying");
                    Self::deny_now(st);
                    Self::emit(
                        st,
                        WsEvent::Denied {
                            status,
                            headers,
                            body: buf.freeze(),
                        },
                    );
                    return Ok(Ctl::Denied);
                }
                Ok(Ctl::Nothing)
            }
            (_, SendEvent::WebSocketKeepalive { interval, timeout }) => {
                st.keepalive = (!interval.is_zero()).then_some((interval, timeout));
                Ok(Ctl::Keepalive)
            }
            (AppPhase::Open, SendEvent::WebSocketSend(msg)) => {
                if let Some(r) = &st.send_error {
                    return Err(SendError::disconnected(r.clone()));
                }
                Self::emit(st, WsEvent::Message(msg));
                Ok(Ctl::Nothing)
            }
            (AppPhase::Open, SendEvent::WebSocketClose { code, reason }) => {
                if let Some(r) = &st.send_error {
                    return Err(SendError::disconnected(r.clone()));
                }
                if !app_close_code_ok(code) {
                    return Err(SendError::invalid_event(format!(
                        "close code {code} may not be sent (RFC 6455 §7.4)"
                    )));
                }
                st.phase = AppPhase::Closed;
                st.app_closed = true;
                Self::emit(st, WsEvent::Close { code, reason });
                Ok(Ctl::AppClosed(code))
            }
            (_, ev) => {
                if let Some(r) = &st.send_error {
                    return Err(SendError::disconnected(r.clone()));
                }
                let state = match st.phase {
                    AppPhase::Connecting => "before the handshake is answered",
                    AppPhase::Denying => "while a denial is sent",
                    AppPhase::Open => "on an open WebSocket",
                    AppPhase::Closed => "after the WebSocket closed",
                };
                Err(SendError::invalid_event(format!(
                    "{} is not valid {state}",
                    ev.name()
                )))
            }
        }
    }

    fn send_app_event(self: &Arc<Self>, event: SendEvent) -> Result<(), SendError> {
        let logged = event.clone();
        let r = {
            let mut st = self.lock();
            let r = self.apply(&mut st, event);
            let recorded = match &r {
                Ok(_) => Ok(()),
                Err(e) => Err(e.clone()),
            };
            st.log.record(logged, &recorded);
            r
        };
        match r? {
            Ctl::Nothing => {}
            Ctl::Accepted => self.control.set_response_started(),
            Ctl::Denied => {
                self.control.set_response_started();
                self.control.complete();
            }
            Ctl::AppClosed(code) => {
                // The client answers the close frame with the same code: a clean end.
                self.end_for_app(code, String::new(), None);
            }
            Ctl::Keepalive => self.restart_keepalive(),
        }
        Ok(())
    }

    /// Ends the session for the app: `reason` None is a clean completion.
    fn end_for_app(&self, code: u16, text: String, reason: Option<DisconnectReason>) {
        let (waker, task) = {
            let mut st = self.lock();
            if st.end.is_some() {
                return;
            }
            st.end = Some((code, text));
            st.phase = AppPhase::Closed;
            st.send_error = Some(reason.clone().unwrap_or(DisconnectReason::ClientClosed));
            (st.recv_waker.take(), st.keepalive_task.take())
        };
        self.unstall.notify_waiters();
        if let Some(w) = waker {
            w.wake();
        }
        if let Some(t) = task {
            t.abort();
        }
        match reason {
            Some(r) => {
                self.control.disconnect(r);
            }
            None => {
                self.control.complete();
            }
        }
    }

    /// The server closes with a frame (`code`, `text`) for a failure it detected.
    fn fail_protocol(&self, code: u16, text: &str, reason: DisconnectReason) {
        {
            let mut st = self.lock();
            if st.end.is_some() {
                return;
            }
            st.app_closed = true;
            Self::emit(
                &st,
                WsEvent::Close {
                    code,
                    reason: text.to_owned(),
                },
            );
        }
        self.end_for_app(code, reason.as_str().to_owned(), Some(reason));
    }

    /// The connection drops without a close frame (1006).
    fn drop_now(&self, reason: DisconnectReason) -> bool {
        {
            let st = self.lock();
            if st.end.is_some() {
                return false;
            }
            Self::emit(
                &st,
                WsEvent::Gone {
                    reason: reason.clone(),
                },
            );
        }
        self.end_for_app(1006, reason.as_str().to_owned(), Some(reason));
        true
    }

    fn app_finished(&self, outcome: AppOutcome) {
        let failure = outcome.error().map(str::to_owned);
        let phase = {
            let mut st = self.lock();
            st.app = outcome;
            st.phase
        };
        self.app_done.notify_waiters();
        match phase {
            AppPhase::Connecting | AppPhase::Denying => {
                // No answer (or a denial cut short): 403.
                {
                    let mut st = self.lock();
                    st.deny = None;
                    Self::deny_now(&mut st);
                    Self::emit(&st, WsEvent::Refused { close: None });
                }
                self.control.set_response_started();
                self.control.disconnect(DisconnectReason::ServerError);
            }
            AppPhase::Open => {
                let (code, text, reason) = match failure {
                    None => (1000, "", None),
                    Some(_) => (1011, "server error", Some(DisconnectReason::ServerError)),
                };
                {
                    let mut st = self.lock();
                    if st.app_closed || st.end.is_some() {
                        return;
                    }
                    st.app_closed = true;
                    Self::emit(
                        &st,
                        WsEvent::Close {
                            code,
                            reason: text.to_owned(),
                        },
                    );
                }
                let event_text = reason
                    .as_ref()
                    .map_or_else(String::new, |r: &DisconnectReason| r.as_str().to_owned());
                self.end_for_app(code, event_text, reason);
            }
            AppPhase::Closed => {}
        }
    }

    /// Whether a send must wait now (stalled, and the session has not ended).
    fn must_wait(&self) -> bool {
        let st = self.lock();
        st.stalled && st.end.is_none()
    }

    /// Waits until a send need not wait.
    async fn wait_unstalled(&self) {
        loop {
            let notified = self.unstall.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.must_wait() {
                return;
            }
            notified.await;
        }
    }

    fn restart_keepalive(self: &Arc<Self>) {
        let mut st = self.lock();
        if let Some(old) = st.keepalive_task.take() {
            old.abort();
        }
        let Some((interval, timeout)) = st.keepalive else {
            return;
        };
        if st.end.is_some() {
            return;
        }
        let ws = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(s) = ws.upgrade() else { return };
                {
                    let mut st = s.lock();
                    if st.end.is_some() {
                        return;
                    }
                    if st.phase != AppPhase::Open {
                        continue;
                    }
                    st.pings += 1;
                    if st.auto_pong {
                        continue;
                    }
                }
                drop(s);
                tokio::time::sleep(timeout).await;
                let Some(s) = ws.upgrade() else { return };
                if s.lock().auto_pong {
                    continue;
                }
                s.drop_now(DisconnectReason::KeepaliveTimeout);
                return;
            }
        });
        st.keepalive_task = Some(task.abort_handle());
    }
}

impl ExchangeView for Ws {
    fn sent(&self) -> Vec<Sent> {
        self.lock().log.sent.clone()
    }

    fn app_outcome(&self) -> AppOutcome {
        self.lock().app.clone()
    }

    fn wait_app(&self, timeout: Duration) -> BoxFuture<'_, AppOutcome> {
        Box::pin(async move {
            let wait = async {
                loop {
                    let notified = self.app_done.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    let now = self.lock().app.clone();
                    if now != AppOutcome::Running {
                        return now;
                    }
                    notified.await;
                }
            };
            tokio::time::timeout(timeout, wait)
                .await
                .unwrap_or(AppOutcome::Running)
        })
    }
}

/// The app's `receive`.
struct Source(Arc<Ws>);

impl ReceiveSource for Source {
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        let mut st = self.0.lock();
        if !st.connect_delivered {
            st.connect_delivered = true;
            return Poll::Ready(ReceiveEvent::WebSocketConnect);
        }
        if let Some(m) = st.inbox.pop_front() {
            return Poll::Ready(ReceiveEvent::WebSocketReceive(m));
        }
        if let Some((code, reason)) = &st.end {
            return Poll::Ready(ReceiveEvent::WebSocketDisconnect {
                code: *code,
                reason: reason.clone(),
            });
        }
        st.recv_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The app's `send`.
struct Sink(Arc<Ws>);

impl SendSink for Sink {
    fn send(&self, event: SendEvent) -> BoxFuture<'_, Result<(), SendError>> {
        if !(matches!(event, SendEvent::WebSocketSend(_)) && self.0.must_wait()) {
            return Box::pin(std::future::ready(self.0.send_app_event(event)));
        }
        Box::pin(async move {
            self.0.wait_unstalled().await;
            self.0.send_app_event(event)
        })
    }

    fn try_send(&self, event: SendEvent) -> Result<(), TrySendError> {
        if matches!(event, SendEvent::WebSocketSend(_)) && self.0.must_wait() {
            return Err(TrySendError::WouldWait(event));
        }
        self.0.send_app_event(event).map_err(TrySendError::Failed)
    }
}

/// A WebSocket handshake being built: [`TestClient::websocket`](super::TestClient::websocket).
#[must_use = "a handshake does nothing until it is sent"]
pub struct WebSocketBuilder {
    client: TestClient,
    target: String,
    query: Vec<(String, String)>,
    headers: Headers,
    subprotocols: Vec<String>,
    transport: Option<TestTransport>,
    timeout: Option<Duration>,
}

impl fmt::Debug for WebSocketBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketBuilder")
            .field("target", &self.target)
            .field("query", &self.query)
            .field("headers", &self.headers)
            .field("subprotocols", &self.subprotocols)
            .finish_non_exhaustive()
    }
}

/// The `sec-websocket-key` the test client sends (RFC 6455's sample nonce).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

impl WebSocketBuilder {
    pub(crate) fn new(client: TestClient, target: &str) -> Self {
        Self {
            client,
            target: target.to_owned(),
            query: Vec::new(),
            headers: Headers::new(),
            subprotocols: Vec::new(),
            transport: None,
            timeout: None,
        }
    }

    /// Adds a handshake request header.
    pub fn header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        let name: Bytes = name.into();
        self.headers
            .push(Bytes::from(name.to_ascii_lowercase()), value.into());
        self
    }

    /// Appends `key=value` to the query.
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// Offers these subprotocols, in order (`sec-websocket-protocol`).
    pub fn subprotocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subprotocols
            .extend(protocols.into_iter().map(Into::into));
        self
    }

    /// The `transport` extension the app sees.
    pub fn transport(mut self, transport: TestTransport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// How long the handshake and each `receive` wait (the client's timeout by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the handshake and waits for the app's answer.
    ///
    /// # Panics
    ///
    /// When the app does not answer within the timeout, with what it sent.
    pub async fn connect(self) -> WsConnect {
        let client = self.client;
        let timeout = self.timeout.unwrap_or(client.cfg.timeout);
        let (raw_path, query) = split_target(&self.target);
        let query = append_query(&query, &self.query);
        let mut own = Headers::new();
        for (n, v) in [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-key", KEY),
            ("sec-websocket-version", "13"),
        ] {
            if !self.headers.contains(n) {
                own.push(n, v);
            }
        }
        if !self.subprotocols.is_empty() {
            own.push("sec-websocket-protocol", self.subprotocols.join(", "));
        }
        for (n, v) in self.headers {
            own.push(n, v);
        }
        let headers = client.request_headers(own, &raw_path, client.cfg.https);
        let offered: Vec<String> = headers
            .get_all("sec-websocket-protocol")
            .flat_map(|v| {
                String::from_utf8_lossy(v)
                    .split(',')
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect();
        let (connection, control) = Connection::pair();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let ws = Arc::new(Ws {
            control,
            offered: offered.clone(),
            max_queue: client.cfg.ws_max_queue,
            st: Mutex::new(St {
                phase: AppPhase::Connecting,
                connect_delivered: false,
                inbox: VecDeque::new(),
                end: None,
                send_error: None,
                recv_waker: None,
                deny: None,
                app_closed: false,
                keepalive: None,
                keepalive_task: None,
                auto_pong: true,
                pings: 0,
                to_client: Some(tx),
                log: Log::default(),
                app: AppOutcome::Running,
                stalled: false,
            }),
            app_done: Notify::new(),
            unstall: Notify::new(),
        });
        let version = client.cfg.version;
        let mut scope = client.scope(ScopeKind::WebSocket, connection.clone(), version);
        let what = if query.is_empty() {
            format!("WebSocket {raw_path}")
        } else {
            format!("WebSocket {raw_path}?{query}")
        };
        scope.method = http::Method::GET;
        scope.path = ragi::scope::percent_decode(raw_path.as_bytes());
        scope.raw_path = Bytes::from(raw_path.clone());
        scope.query_string = Bytes::from(query);
        scope.headers = headers;
        scope.subprotocols = offered;
        scope.extensions.websocket_http_response = true;
        scope.extensions.transport = Some(self.transport.unwrap_or_default().extension());
        let fut = client.app.call(
            scope,
            Receiver::new(Source(ws.clone())),
            Sender::new(Sink(ws.clone())),
        );
        let app = tokio::spawn(fut);
        {
            let ws = ws.clone();
            tokio::spawn(async move {
                let r = app.await;
                ws.app_finished(AppOutcome::from_join(r));
            });
        }
        let answer = match tokio::time::timeout(timeout, rx.recv()).await {
            Ok(Some(a)) => a,
            Ok(None) => unreachable!("the session keeps its channel until it ends"),
            Err(_) => {
                let sent = ws.lock().log.summary();
                panic!(
                    "timed out after {timeout:?} waiting for the app's answer to the handshake \
                     of {what}; the app sent: {sent}; app: {:?}",
                    ws.lock().app
                );
            }
        };
        let view: Arc<dyn ExchangeView> = ws.clone();
        match answer {
            WsEvent::Accepted {
                subprotocol,
                headers,
            } => {
                client.store_cookies(&headers, &raw_path);
                WsConnect::Accepted(TestWebSocket {
                    ws,
                    rx,
                    subprotocol,
                    headers,
                    connection,
                    timeout,
                    what,
                    closed: None,
                })
            }
            WsEvent::Denied {
                status,
                mut headers,
                body,
            } => {
                headers.remove("content-length");
                headers.remove("transfer-encoding");
                headers.remove("connection");
                headers.push("content-length", body.len().to_string());
                client.store_cookies(&headers, &raw_path);
                WsConnect::Denied(TestResponse::from_parts(
                    status, headers, body, connection, view, timeout,
                ))
            }
            WsEvent::Refused { close } => {
                let response = TestResponse::from_parts(
                    403,
                    Headers::new().with("content-length", "0"),
                    Bytes::new(),
                    connection,
                    view,
                    timeout,
                );
                match close {
                    Some((code, reason)) => WsConnect::ClosedBeforeAccept {
                        code,
                        reason,
                        response,
                    },
                    None => WsConnect::Failed(response),
                }
            }
            other => unreachable!("{other:?} before the handshake answer"),
        }
    }
}

/// How a WebSocket handshake ended: [`WebSocketBuilder::connect`].
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum WsConnect {
    /// The app accepted: the session is open.
    Accepted(TestWebSocket),
    /// The app denied with its own response (the `websocket.http.response` pair).
    Denied(TestResponse),
    /// The app sent `WebSocketClose` before accepting; the server answered HTTP 403
    /// (`response`). `code` and `reason` are the app's close.
    ClosedBeforeAccept {
        /// The close code the app sent.
        code: u16,
        /// The close reason the app sent.
        reason: String,
        /// The server's 403.
        response: TestResponse,
    },
    /// The app failed, panicked, or returned without answering; the server answered HTTP 403
    /// and the connection object ended with `server_error` (`response.app_error()` says why).
    Failed(TestResponse),
}

impl WsConnect {
    /// The open session.
    ///
    /// # Panics
    ///
    /// When the handshake was not accepted, saying how it ended.
    pub fn accepted(self) -> TestWebSocket {
        match self {
            Self::Accepted(ws) => ws,
            Self::Denied(r) => panic!("the WebSocket was denied: {} {:?}", r.status(), r.text()),
            Self::ClosedBeforeAccept { code, reason, .. } => panic!(
                "the app closed the WebSocket before accepting it (code {code}, reason {reason:?})"
            ),
            Self::Failed(r) => panic!(
                "the WebSocket app failed before answering: {:?}",
                r.app_outcome()
            ),
        }
    }

    /// The status the client got: 101 when accepted, else the denial's or the server's 403.
    pub fn status(&self) -> u16 {
        match self {
            Self::Accepted(_) => 101,
            Self::Denied(r) | Self::Failed(r) => r.status(),
            Self::ClosedBeforeAccept { response, .. } => response.status(),
        }
    }
}

/// An open WebSocket session: [`WsConnect::Accepted`].
///
/// Dropping it is an abrupt disconnect: the app sees `WebSocketDisconnect` with 1006 and
/// `client_closed`, its connection object ends with `client_closed`
/// ([`disconnect_with`](Self::disconnect_with) picks another reason).
pub struct TestWebSocket {
    ws: Arc<Ws>,
    rx: mpsc::UnboundedReceiver<WsEvent>,
    subprotocol: Option<String>,
    headers: Headers,
    connection: Connection,
    timeout: Duration,
    what: String,
    /// The close the client saw (frame or drop).
    closed: Option<(u16, String)>,
}

impl fmt::Debug for TestWebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestWebSocket")
            .field("request", &self.what)
            .field("subprotocol", &self.subprotocol)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl TestWebSocket {
    /// The subprotocol the app chose.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// The headers of the app's acceptance (and `sec-websocket-protocol` when it chose one).
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The app's connection object for this session.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The close code and reason the client received, once it did (1006 and the reason's name
    /// when the session dropped without a close frame).
    pub fn close_frame(&self) -> Option<(u16, &str)> {
        self.closed.as_ref().map(|(c, r)| (*c, r.as_str()))
    }

    /// Every event the app has sent so far that was accepted.
    pub fn events(&self) -> Vec<SendEvent> {
        self.ws.lock().log.accepted()
    }

    /// The app's protocol violations so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.ws.lock().log.violations()
    }

    /// How the app's call has ended so far.
    pub fn app_outcome(&self) -> AppOutcome {
        self.ws.lock().app.clone()
    }

    /// Waits for the app's call to end (at most the timeout).
    pub async fn wait_app(&self) -> AppOutcome {
        ExchangeView::wait_app(&*self.ws, self.timeout).await
    }

    /// Whether the client answers the server's keep-alive pings (true by default). Turned
    /// off, the next ping goes unanswered and the session ends with 1006 and
    /// `keepalive_timeout` once the pong is due.
    pub fn set_auto_pong(&self, answer: bool) {
        self.ws.lock().auto_pong = answer;
    }

    /// How many keep-alive pings the server has sent.
    pub fn pings(&self) -> u64 {
        self.ws.lock().pings
    }

    /// The client stops reading: from now on each message the app sends waits (as under the
    /// server once the socket buffer is full) until [`resume`](Self::resume) or the session
    /// ends (then the waiting send fails with the reason). Close frames and keep-alive
    /// requests still go through; what was sent before stays readable.
    pub fn stall(&self) {
        self.ws.lock().stalled = true;
    }

    /// The client reads again: waiting sends go through.
    pub fn resume(&self) {
        self.ws.lock().stalled = false;
        self.ws.unstall.notify_waiters();
    }

    fn closed_error(&self) -> TestError {
        let (code, reason) = self
            .closed
            .clone()
            .or_else(|| {
                let st = self.ws.lock();
                st.end.clone()
            })
            .unwrap_or((1006, String::new()));
        TestError::Closed { code, reason }
    }

    /// Sends a message to the app.
    ///
    /// # Errors
    ///
    /// [`TestError::Closed`] once the session is closed (either side).
    pub async fn send(&mut self, message: Message) -> Result<(), TestError> {
        let overflow = {
            let mut st = self.ws.lock();
            if st.end.is_some() || st.app_closed || self.closed.is_some() {
                drop(st);
                return Err(self.closed_error());
            }
            if st.inbox.len() >= self.ws.max_queue {
                true
            } else {
                st.inbox.push_back(message);
                if let Some(w) = st.recv_waker.take() {
                    w.wake();
                }
                false
            }
        };
        if overflow {
            self.ws.fail_protocol(
                1008,
                "receive queue overflow",
                DisconnectReason::QueueOverflow,
            );
        }
        Ok(())
    }

    /// Sends a text message.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<(), TestError> {
        self.send(Message::Text(text.into())).await
    }

    /// Sends a binary message.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_bytes(&mut self, bytes: impl Into<Bytes>) -> Result<(), TestError> {
        self.send(Message::Binary(bytes.into())).await
    }

    /// Sends `value` as a JSON text message.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TestError> {
        let text = serde_json::to_string(value).expect("the value serializes to JSON");
        self.send_text(text).await
    }

    /// The next message from the app.
    ///
    /// # Errors
    ///
    /// [`TestError::Closed`] with the close code and reason once the session closed;
    /// [`TestError::Timeout`] when nothing comes in time.
    pub async fn receive(&mut self) -> Result<Message, TestError> {
        if self.closed.is_some() {
            return Err(self.closed_error());
        }
        let timeout = self.timeout;
        let ev = match tokio::time::timeout(timeout, self.rx.recv()).await {
            Ok(ev) => ev,
            Err(_) => {
                return Err(TestError::timeout(
                    format!("a message from the app on {}", self.what),
                    timeout,
                ))
            }
        };
        match ev {
            Some(WsEvent::Message(m)) => Ok(m),
            Some(WsEvent::Close { code, reason }) => {
                self.closed = Some((code, reason));
                Err(self.closed_error())
            }
            Some(WsEvent::Gone { reason }) => {
                self.closed = Some((1006, reason.as_str().to_owned()));
                Err(self.closed_error())
            }
            Some(other) => Err(TestError::Unexpected(format!(
                "unexpected session event {other:?}"
            ))),
            None => {
                if self.closed.is_none() {
                    self.closed = Some((1006, String::new()));
                }
                Err(self.closed_error())
            }
        }
    }

    /// The next message, which must be text.
    ///
    /// # Errors
    ///
    /// As [`receive`](Self::receive); [`TestError::Unexpected`] for a binary message.
    pub async fn receive_text(&mut self) -> Result<String, TestError> {
        match self.receive().await? {
            Message::Text(t) => Ok(t),
            Message::Binary(b) => Err(TestError::Unexpected(format!(
                "expected a text message on {}, got binary {b:?}",
                self.what
            ))),
        }
    }

    /// The next message, which must be binary.
    ///
    /// # Errors
    ///
    /// As [`receive`](Self::receive); [`TestError::Unexpected`] for a text message.
    pub async fn receive_bytes(&mut self) -> Result<Bytes, TestError> {
        match self.receive().await? {
            Message::Binary(b) => Ok(b),
            Message::Text(t) => Err(TestError::Unexpected(format!(
                "expected a binary message on {}, got text {t:?}",
                self.what
            ))),
        }
    }

    /// The next message parsed as JSON (text or binary).
    ///
    /// # Errors
    ///
    /// As [`receive`](Self::receive); [`TestError::Unexpected`] when it does not parse.
    pub async fn receive_json<T: DeserializeOwned>(&mut self) -> Result<T, TestError> {
        let m = self.receive().await?;
        let bytes: &[u8] = match &m {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        };
        serde_json::from_slice(bytes).map_err(|e| {
            TestError::Unexpected(format!(
                "the message on {} is not the JSON expected ({e}): {m:?}",
                self.what
            ))
        })
    }

    /// Closes the session from the client's side with `code` and `reason`: the app sees
    /// `WebSocketDisconnect` with them (`client_closed` as the reason when `reason` is empty)
    /// and its connection object ends with `client_closed`. If the app had already closed,
    /// this is the answer to its close (the client answers at once anyway): nothing changes.
    /// Later [`receive`](Self::receive)s fail with the server's answering close.
    pub async fn close(&mut self, code: u16, reason: &str) {
        let open = {
            let st = self.ws.lock();
            st.end.is_none() && !st.app_closed
        };
        if !open {
            return;
        }
        let text = if reason.is_empty() {
            DisconnectReason::ClientClosed.as_str().to_owned()
        } else {
            reason.to_owned()
        };
        {
            let mut st = self.ws.lock();
            st.app_closed = true;
            // The server answers with the same code.
            Ws::emit(
                &st,
                WsEvent::Close {
                    code,
                    reason: String::new(),
                },
            );
            st.to_client = None;
        }
        self.ws
            .end_for_app(code, text, Some(DisconnectReason::ClientClosed));
    }

    /// Drops the connection without a close frame (`client_closed`): see
    /// [`disconnect_with`](Self::disconnect_with).
    pub fn disconnect(&mut self) -> bool {
        self.disconnect_with(DisconnectReason::ClientClosed)
    }

    /// Drops the connection without a close frame: the app sees `WebSocketDisconnect` with
    /// 1006 and the reason's name, its connection object ends with `reason`. Returns false if
    /// the session had already ended.
    pub fn disconnect_with(&mut self, reason: DisconnectReason) -> bool {
        let dropped = self.ws.drop_now(reason.clone());
        if dropped && self.closed.is_none() {
            self.closed = Some((1006, reason.as_str().to_owned()));
        }
        dropped
    }
}

impl Drop for TestWebSocket {
    fn drop(&mut self) {
        self.ws.drop_now(DisconnectReason::ClientClosed);
    }
}
