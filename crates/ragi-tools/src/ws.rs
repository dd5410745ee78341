//! WebSocket sessions: accept or deny the handshake, send and receive messages, close, and
//! learn how the session ended.
//!
//! ```
//! use ragi::Message;
//! use ragi_tools::{ws, Error, WsContext};
//!
//! /// Echoes every message back until the client leaves.
//! async fn echo(mut cx: WsContext) -> Result<(), Error> {
//!     cx.accept().await?;
//!     while let Some(message) = cx.receive().await {
//!         cx.send(message).await?; // fails with the disconnect reason once the client left
//!     }
//!     // The session is over: the client's close code and reason (1006 when it just vanished).
//!     let end = cx.close_info().expect("ended");
//!     tracing::info!(code = end.code, reason = %end.reason, "session ended");
//!     Ok(())
//! }
//!
//! let app = ws::handler(echo); // a ragi::App: route it, serve it, or test it in-process
//! # fn is_app(_: impl ragi::App) {}
//! # is_app(app);
//! # let _ = Message::Text(String::new());
//! ```
//!
//! # The session, step by step
//!
//! A [`WsContext`] starts at the **handshake**. The handler answers it once:
//!
//! * [`accept`](WsContext::accept) (or [`accept_with`](WsContext::accept_with): a subprotocol
//!   the client offered, extra headers) opens the session;
//! * [`deny`](WsContext::deny) answers with any HTTP response — status, headers and body —
//!   through the `websocket.http.response` extension (a server without it answers 403);
//! * returning an [`Error`] before accepting denies with that error's response (a `401` from an
//!   auth check reaches the client as an HTTP 401); returning `Ok` without an answer is a 403.
//!
//! Once open, [`send`](WsContext::send), [`send_text`](WsContext::send_text),
//! [`send_bytes`](WsContext::send_bytes) and [`send_json`](WsContext::send_json) send messages;
//! [`receive`](WsContext::receive) (or the [`messages`](WsContext::messages) stream, or
//! [`receive_text`](WsContext::receive_text) / [`receive_json`](WsContext::receive_json)) reads
//! them; [`keepalive`](WsContext::keepalive) asks the server to ping; [`close`](WsContext::close)
//! ends the session with a code and a reason. [`sender`](WsContext::sender) gives a cloneable
//! [`WsSender`] for sending from other tasks while the handler waits for messages.
//!
//! When the session ends — the client closed, vanished, or answered the app's close —
//! `receive` yields `None`, [`close_info`](WsContext::close_info) holds the code and reason of
//! the `WebSocketDisconnect` event, and every later send fails with
//! [`Error::disconnected`] carrying the connection object's
//! [`DisconnectReason`] (and the [`CloseInfo`] as its source). A send also fails at once, with
//! the reason, when the connection object says the client left before the event was read.
//!
//! # What the adapters do with the handler's result
//!
//! [`handler`] and [`endpoint`] make apps. After the handler returns:
//!
//! | state | `Ok(())` | `Err(e)` |
//! |---|---|---|
//! | handshake not answered | denied with 403 | denied with `e`'s response (JSON or text by `Accept`) |
//! | open | closed with 1000 | `e` is the client's departure: nothing; a 4xx: closed with a code for it (415 → 1003, 413 → 1009, other 4xx → 1008) and `e`'s message; a 5xx: the app fails (logged; the server closes with 1011, `server_error`) |
//! | closed, denied or ended | nothing | as above; nothing is sent |
//!
//! A scope that is not a WebSocket handshake — a plain `GET` (or an `sse` scope) reaching a
//! WebSocket route — is answered **426 Upgrade Required** with `upgrade: websocket`, without
//! calling the handler. A lifespan scope is declined with
//! [`UnsupportedScope`].
//!
//! # Endpoints
//!
//! [`WsEndpoint`] splits a session into `on_connect` (accept or deny), `on_message` and
//! `on_disconnect` (with the code and reason); [`endpoint`] makes it an app.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use ragi::{
    App, AppResult, BoxFuture, Connection, DisconnectReason, Headers, Message, ReceiveEvent,
    ReceiveSource, Receiver, Scope, ScopeKind, SendError, SendEvent, Sender, UnsupportedScope,
};

use crate::response::Responder;
use crate::{Context, Error, ErrorKind, IntoResponse, Response};

/// How a WebSocket session ended: the code and reason of the `WebSocketDisconnect` event.
///
/// The code is the client's close code (1005 when its close frame had none), or 1006 when
/// the connection ended without a close frame; the reason is the close frame's text, or the
/// name of the disconnect reason (`client_closed`, `keepalive_timeout`, …) when no frame
/// carried one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code.
    pub code: u16,
    /// The close reason text.
    pub reason: String,
}

impl std::fmt::Display for CloseInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.reason.is_empty() {
            write!(f, "WebSocket session ended with {}", self.code)
        } else {
            write!(
                f,
                "WebSocket session ended with {} ({})",
                self.code, self.reason
            )
        }
    }
}

impl std::error::Error for CloseInfo {}

/// Where the session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before accept or deny.
    Handshake,
    /// Accepted.
    Open,
    /// The app sent its close; waiting for the client's answer.
    Closing,
    /// Denied (or closed before accept: answered 403).
    Denied,
}

struct State {
    phase: Phase,
    /// The `WebSocketDisconnect` seen (the session is over).
    ended: Option<CloseInfo>,
}

struct Shared {
    send: Sender,
    connection: Connection,
    subprotocols: Vec<String>,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The error of a send after the session ended.
    fn ended_error(&self, end: &CloseInfo) -> Error {
        let reason = self.connection.disconnect_reason().unwrap_or_else(|| {
            // The session ended without an abnormal end of the connection object (the client
            // answered the app's close): the reason text may name one; else a clean close.
            end.reason.parse().unwrap_or(DisconnectReason::ClientClosed)
        });
        Error::disconnected(reason).with_source(end.clone())
    }

    /// Whether a message may be sent now.
    fn check_open(&self, what: &str) -> Result<(), Error> {
        let st = self.lock();
        if let Some(end) = &st.ended {
            return Err(self.ended_error(end));
        }
        if let Some(r) = self.connection.disconnect_reason() {
            return Err(Error::disconnected(r));
        }
        match st.phase {
            Phase::Open => Ok(()),
            Phase::Handshake => Err(Error::internal(format!(
                "{what} before the WebSocket session was accepted"
            ))),
            Phase::Closing => Err(Error::internal(format!(
                "{what} after the app closed the WebSocket session"
            ))),
            Phase::Denied => Err(Error::internal(format!(
                "{what} on a WebSocket handshake that was denied"
            ))),
        }
    }

    fn map_send_error(&self, e: SendError) -> Error {
        match e.disconnect_reason() {
            Some(r) => {
                let err = Error::disconnected(r.clone());
                match &self.lock().ended {
                    Some(end) => err.with_source(end.clone()),
                    None => err,
                }
            }
            None => Error::internal(e),
        }
    }

    async fn emit(&self, event: SendEvent) -> Result<(), Error> {
        self.send
            .send(event)
            .await
            .map_err(|e| self.map_send_error(e))
    }

    async fn send_message(&self, message: Message) -> Result<(), Error> {
        self.check_open("a message sent")?;
        self.emit(SendEvent::WebSocketSend(message)).await
    }

    async fn close(&self, code: u16, reason: &str) -> Result<(), Error> {
        check_close(code, reason)?;
        let phase = {
            let mut st = self.lock();
            if st.ended.is_some() || !self.connection.is_connected() {
                // The session is over already: nothing to close.
                return Ok(());
            }
            let phase = st.phase;
            st.phase = match phase {
                Phase::Handshake | Phase::Denied => Phase::Denied,
                Phase::Open | Phase::Closing => Phase::Closing,
            };
            phase
        };
        if matches!(phase, Phase::Closing | Phase::Denied) {
            return Ok(());
        }
        match self
            .send
            .send(SendEvent::WebSocketClose {
                code,
                reason: reason.to_owned(),
            })
            .await
        {
            Ok(()) => Ok(()),
            // Gone meanwhile: the session is over, which is what a close asks for.
            Err(e) if e.is_disconnected() => Ok(()),
            Err(e) => Err(Error::internal(e)),
        }
    }
}

/// Whether `code` may be sent in a close frame (RFC 6455 §7.4) and `reason` fits in one.
fn check_close(code: u16, reason: &str) -> Result<(), Error> {
    let sendable = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !sendable {
        return Err(Error::internal(format!(
            "{code} is not a close code an endpoint may send"
        )));
    }
    if reason.len() > 123 {
        return Err(Error::internal(format!(
            "a close reason holds at most 123 bytes, not {}",
            reason.len()
        )));
    }
    Ok(())
}

/// The close code for a client error (4xx) that ends an open session.
fn close_code_for(e: &Error) -> u16 {
    match e.kind() {
        ErrorKind::UnsupportedMediaType => 1003,
        ErrorKind::BodyTooLarge => 1009,
        _ => 1008,
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The context of a WebSocket session. See the [module documentation](self).
pub struct WsContext {
    scope: Scope,
    receive: Receiver,
    responder: Responder,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("WsContext")
            .field("path", &self.scope.path)
            .field("phase", &st.phase)
            .field("ended", &st.ended)
            .finish()
    }
}

impl Context for WsContext {
    fn scope(&self) -> &Scope {
        &self.scope
    }
}

impl WsContext {
    /// The context of a WebSocket app call.
    pub fn new(scope: Scope, receive: Receiver, send: Sender) -> Self {
        let responder = Responder::new(&scope, send.clone());
        let shared = Arc::new(Shared {
            send,
            connection: scope.connection().clone(),
            subprotocols: scope.subprotocols.clone(),
            state: Mutex::new(State {
                phase: Phase::Handshake,
                ended: None,
            }),
        });
        Self {
            scope,
            receive,
            responder,
            shared,
        }
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn subprotocols(&self) -> &[String] {
        &self.shared.subprotocols
    }

    /// Accepts the session (no subprotocol, no extra header).
    pub async fn accept(&mut self) -> Result<(), Error> {
        self.accept_with(None, Headers::new()).await
    }

    /// Accepts the session with `subprotocol`, which must be one the client offered.
    pub async fn accept_subprotocol(&mut self, subprotocol: &str) -> Result<(), Error> {
        self.accept_with(Some(subprotocol.to_owned()), Headers::new())
            .await
    }

    /// Accepts the session choosing `subprotocol` (one the client offered) and adding
    /// `headers` to the handshake response. Fails if the handshake was already answered, or
    /// with the reason if the client left.
    pub async fn accept_with(
        &mut self,
        subprotocol: Option<String>,
        headers: Headers,
    ) -> Result<(), Error> {
        if let Some(p) = &subprotocol {
            if !self.shared.subprotocols.iter().any(|o| o == p) {
                return Err(Error::internal(format!(
                    "subprotocol {p:?} was not offered by the client (offered: {:?})",
                    self.shared.subprotocols
                )));
            }
        }
        self.answer_handshake()?;
        self.shared
            .emit(SendEvent::WebSocketAccept {
                subprotocol,
                headers,
            })
            .await?;
        self.shared.lock().phase = Phase::Open;
        Ok(())
    }

    /// Checks that the handshake is still unanswered and the client still there.
    fn answer_handshake(&self) -> Result<(), Error> {
        let st = self.shared.lock();
        if st.phase != Phase::Handshake || self.responder.is_started() {
            return Err(Error::internal(
                "the WebSocket handshake was already answered",
            ));
        }
        if let Some(end) = &st.ended {
            return Err(self.shared.ended_error(end));
        }
        match self.shared.connection.disconnect_reason() {
            Some(r) => Err(Error::disconnected(r)),
            None => Ok(()),
        }
    }

    /// Denies the handshake with `response`: any status, headers and body (the
    /// `websocket.http.response` extension; a server without it answers 403 and drops the
    /// rest). Errors render as JSON or text by the request's `Accept`, as on HTTP routes.
    pub async fn deny(&mut self, response: impl IntoResponse) -> Result<(), Error> {
        self.answer_handshake()?;
        self.shared.lock().phase = Phase::Denied;
        self.responder.send(response.into_response()).await
    }

    /// Whether the session was accepted (it may have ended since).
    pub fn is_accepted(&self) -> bool {
        matches!(self.shared.lock().phase, Phase::Open | Phase::Closing)
    }

    /// Whether messages can be sent: accepted, not closed, not ended, and the client is there.
    pub fn is_open(&self) -> bool {
        let st = self.shared.lock();
        st.phase == Phase::Open && st.ended.is_none() && self.shared.connection.is_connected()
    }

    /// How the session ended, once `receive` has seen the end.
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.shared.lock().ended.clone()
    }

    /// A handle that sends on this session from anywhere (another task, a broadcast loop).
    pub fn sender(&self) -> WsSender {
        WsSender {
            shared: self.shared.clone(),
        }
    }

    /// Sends `message`. Fails with the disconnect reason once the session ended or the client
    /// left; waits while the client is slow (backpressure).
    pub async fn send(&self, message: Message) -> Result<(), Error> {
        self.shared.send_message(message).await
    }

    /// Sends a text message.
    pub async fn send_text(&self, text: impl Into<String>) -> Result<(), Error> {
        self.send(Message::Text(text.into())).await
    }

    /// Sends a binary message.
    pub async fn send_bytes(&self, bytes: impl Into<Bytes>) -> Result<(), Error> {
        self.send(Message::Binary(bytes.into())).await
    }

    /// Sends `value` as JSON in a text message.
    pub async fn send_json<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        let text = serde_json::to_string(value).map_err(Error::internal)?;
        self.send_text(text).await
    }

    /// Asks the server to ping every `interval` and end the session (1006,
    /// `keepalive_timeout`) when a pong does not come within `timeout`. A zero interval turns
    /// pings off. Only on an open session.
    pub async fn keepalive(&self, interval: Duration, timeout: Duration) -> Result<(), Error> {
        self.shared.check_open("a keep-alive")?;
        self.shared
            .emit(SendEvent::WebSocketKeepalive { interval, timeout })
            .await
    }

    /// Closes the session with 1000 (normal closure). See [`close_with`](Self::close_with).
    pub async fn close(&self) -> Result<(), Error> {
        self.shared.close(1000, "").await
    }

    /// Closes the session with `code` and `reason` (at most 123 bytes). Before accept, the
    /// server answers the handshake with 403. Idempotent: closing a session that is closing,
    /// denied or over does nothing. `receive` yields `None` once the client answered (the
    /// server gives it 5 s); [`wait_closed`](Self::wait_closed) waits for that.
    pub async fn close_with(&self, code: u16, reason: &str) -> Result<(), Error> {
        self.shared.close(code, reason).await
    }

    /// The next message from the client; `None` once the session ended (then
    /// [`close_info`](Self::close_info) says how). Cancel safe.
    pub async fn receive(&mut self) -> Option<Message> {
        std::future::poll_fn(|cx| self.poll_message(cx)).await
    }

    fn poll_message(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Option<Message>> {
        if self.shared.lock().ended.is_some() {
            return Poll::Ready(None);
        }
        loop {
            let end = match self.receive.poll_receive(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(ReceiveEvent::WebSocketReceive(m)) => return Poll::Ready(Some(m)),
                Poll::Ready(ReceiveEvent::WebSocketDisconnect { code, reason }) => {
                    CloseInfo { code, reason }
                }
                Poll::Ready(ReceiveEvent::Disconnect { reason }) => CloseInfo {
                    code: 1006,
                    reason: reason.to_string(),
                },
                // `WebSocketConnect` (the handshake's first event) and anything else.
                Poll::Ready(_) => continue,
            };
            self.shared.lock().ended = Some(end);
            return Poll::Ready(None);
        }
    }

    /// The incoming messages as a stream; it ends when the session does.
    pub fn messages(&mut self) -> Messages<'_> {
        Messages { cx: self }
    }

    /// Waits for the end of the session, dropping any message still arriving (after
    /// [`close`](Self::close): the client's answer).
    pub async fn wait_closed(&mut self) -> CloseInfo {
        while self.receive().await.is_some() {}
        self.close_info().expect("the session ended")
    }

    fn ended_error(&self) -> Error {
        let st = self.shared.lock();
        match &st.ended {
            Some(end) => self.shared.ended_error(end),
            None => Error::disconnected(DisconnectReason::ClientClosed),
        }
    }

    /// The next message, which must be text: a binary one is a 415 error (closing the session
    /// with 1003 when returned from a handler). Fails with the disconnect reason once the
    /// session ended.
    pub async fn receive_text(&mut self) -> Result<String, Error> {
        match self.receive().await {
            Some(Message::Text(t)) => Ok(t),
            Some(Message::Binary(_)) => Err(Error::unsupported_media_type("a text message")),
            None => Err(self.ended_error()),
        }
    }

    /// The next message, which must be binary: a text one is a 415 error. Fails with the
    /// disconnect reason once the session ended.
    pub async fn receive_bytes(&mut self) -> Result<Bytes, Error> {
        match self.receive().await {
            Some(Message::Binary(b)) => Ok(b),
            Some(Message::Text(_)) => Err(Error::unsupported_media_type("a binary message")),
            None => Err(self.ended_error()),
        }
    }

    /// The next message (text or binary) parsed as JSON: malformed JSON is a 400 error, JSON
    /// of the wrong shape a 422 (both close the session with 1008 when returned from a
    /// handler). Fails with the disconnect reason once the session ended.
    pub async fn receive_json<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, Error> {
        let bytes = match self.receive().await {
            Some(Message::Text(t)) => Bytes::from(t),
            Some(Message::Binary(b)) => b,
            None => return Err(self.ended_error()),
        };
        serde_json::from_slice(&bytes).map_err(|e| json_error(e, &bytes))
    }
}

/// A JSON parse failure of `input` as the error it means: malformed (400) or of the wrong
/// shape (422). serde reports a shape error as soon as it meets one, before a syntax error
/// further on, so a shape error is checked against a syntax-only pass.
pub(crate) fn json_error(e: serde_json::Error, input: &[u8]) -> Error {
    use serde_json::error::Category;
    let syntax = |e: serde_json::Error| Error::malformed_body(format!("invalid JSON: {e}"));
    match e.classify() {
        Category::Data => match serde_json::from_slice::<serde::de::IgnoredAny>(input) {
            Err(s) => syntax(s),
            Ok(_) => Error::unprocessable(format!("unexpected JSON: {e}")),
        },
        Category::Syntax | Category::Eof => syntax(e),
        Category::Io => Error::internal(e),
    }
}

/// The incoming messages of a session as a [`Stream`](futures_core::Stream); built by
/// [`WsContext::messages`].
#[derive(Debug)]
pub struct Messages<'a> {
    cx: &'a mut WsContext,
}

impl futures_core::Stream for Messages<'_> {
    type Item = Message;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Message>> {
        self.cx.poll_message(cx)
    }
}

/// Sends on a WebSocket session from anywhere; cheap to clone. Built by
/// [`WsContext::sender`]. Every send fails with the disconnect reason once the session ended.
#[derive(Clone)]
pub struct WsSender {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WsSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsSender")
            .field("phase", &self.shared.lock().phase)
            .finish()
    }
}

impl WsSender {
    /// Sends `message`.
    pub async fn send(&self, message: Message) -> Result<(), Error> {
        self.shared.send_message(message).await
    }

    /// Sends a text message.
    pub async fn send_text(&self, text: impl Into<String>) -> Result<(), Error> {
        self.send(Message::Text(text.into())).await
    }

    /// Sends a binary message.
    pub async fn send_bytes(&self, bytes: impl Into<Bytes>) -> Result<(), Error> {
        self.send(Message::Binary(bytes.into())).await
    }

    /// Sends `value` as JSON in a text message.
    pub async fn send_json<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        let text = serde_json::to_string(value).map_err(Error::internal)?;
        self.send_text(text).await
    }

    /// Closes the session (see [`WsContext::close_with`]).
    pub async fn close_with(&self, code: u16, reason: &str) -> Result<(), Error> {
        self.shared.close(code, reason).await
    }

    /// Whether messages can be sent now.
    pub fn is_open(&self) -> bool {
        let st = self.shared.lock();
        st.phase == Phase::Open && st.ended.is_none() && self.shared.connection.is_connected()
    }

    /// The session's connection object.
    pub fn connection(&self) -> &Connection {
        &self.shared.connection
    }
}

/// A WebSocket handler: an async function of the [`WsContext`].
pub trait WsHandler: Send + Sync + 'static {
    /// Handles one session.
    fn call(&self, cx: WsContext) -> BoxFuture<'static, Result<(), Error>>;
}

impl<F, Fut> WsHandler for F
where
    F: Fn(WsContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
{
    fn call(&self, cx: WsContext) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(self(cx))
    }
}

/// The app that serves every WebSocket session with `h`. See the
/// [module documentation](self) for what happens with its result and with other scopes.
pub fn handler<H: WsHandler>(h: H) -> WsApp<H> {
    WsApp { inner: Arc::new(h) }
}

/// An app made of a [`WsHandler`]; built by [`handler`].
pub struct WsApp<H> {
    inner: Arc<H>,
}

impl<H> Clone for WsApp<H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<H> std::fmt::Debug for WsApp<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsApp")
    }
}

impl<H: WsHandler> App for WsApp<H> {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let h = self.inner.clone();
        Box::pin(async move {
            let cx = match session(scope, receive, send).await? {
                Some(cx) => cx,
                None => return Ok(()),
            };
            let (shared, responder) = (cx.shared.clone(), cx.responder.clone());
            let result = h.call(cx).await;
            finish(&shared, &responder, result).await
        })
    }
}

/// The context of a WebSocket scope; answers other scopes itself (`None`).
async fn session(
    scope: Scope,
    receive: Receiver,
    send: Sender,
) -> Result<Option<WsContext>, ragi::AppError> {
    match scope.kind {
        ScopeKind::WebSocket => Ok(Some(WsContext::new(scope, receive, send))),
        ScopeKind::Http | ScopeKind::Sse => {
            let responder = Responder::new(&scope, send);
            let response = Error::new(
                426,
                "this resource is a WebSocket endpoint: connect with a WebSocket client",
            )
            .with_header("upgrade", "websocket")
            .into_response();
            responder.complete(response).await?;
            Ok(None)
        }
        other => Err(UnsupportedScope(other).into()),
    }
}

/// Finishes a session after its handler returned (the table in the module documentation).
async fn finish(shared: &Shared, responder: &Responder, result: Result<(), Error>) -> AppResult {
    let (phase, ended) = {
        let st = shared.lock();
        (st.phase, st.ended.is_some())
    };
    if phase == Phase::Handshake && !responder.is_started() {
        let response = match result {
            Ok(()) => Response::new(403),
            Err(e) if e.is_disconnected() => return Ok(()),
            Err(e) => e.into_response(),
        };
        return responder.complete(response).await;
    }
    let e = match result {
        Ok(()) => {
            if phase == Phase::Open && !ended {
                shared
                    .close(1000, "")
                    .await
                    .map_err(Error::into_app_error)?;
            }
            return Ok(());
        }
        Err(e) if e.is_disconnected() => return Ok(()),
        Err(e) => e,
    };
    if e.status() >= 500 {
        e.log();
        return Err(e.into_app_error());
    }
    if phase == Phase::Open && !ended {
        let code = close_code_for(&e);
        shared
            .close(code, truncate(e.message(), 123))
            .await
            .map_err(Error::into_app_error)?;
    }
    Ok(())
}

/// A WebSocket endpoint: a session split into its events. See the
/// [module documentation](self); [`endpoint`] makes one an app.
///
/// ```
/// use ragi::Message;
/// use ragi_tools::{ws, Context, Error, WsContext, WsEndpoint};
///
/// struct Chat;
///
/// impl WsEndpoint for Chat {
///     async fn on_connect(&self, cx: &mut WsContext) -> Result<(), Error> {
///         if cx.header("authorization").is_none() {
///             return cx.deny((401, "log in first")).await; // an HTTP 401, before accept
///         }
///         cx.accept().await
///     }
///
///     async fn on_message(&self, cx: &mut WsContext, message: Message) -> Result<(), Error> {
///         cx.send(message).await
///     }
///
///     async fn on_disconnect(&self, _cx: &mut WsContext, code: u16, reason: &str) {
///         tracing::info!(code, reason, "left");
///     }
/// }
///
/// let app = ws::endpoint(Chat);
/// # fn is_app(_: impl ragi::App) {}
/// # is_app(app);
/// ```
///
/// One endpoint value serves every session (keep per-session data in the context's
/// [stash](crate::Context::stash)). `on_message` runs for each message in order while the
/// session is open; an error from it ends the session as a handler's error would (a 4xx
/// closes with a code for it, a 5xx fails the app). `on_disconnect` runs once when an
/// accepted session ends, with the code and reason of the end (after a 5xx from
/// `on_message`: 1011, `server_error`, what the server sends).
pub trait WsEndpoint: Send + Sync + 'static {
    /// The handshake: accept (the default) or deny.
    fn on_connect(&self, cx: &mut WsContext) -> impl Future<Output = Result<(), Error>> + Send {
        cx.accept()
    }

    /// One message from the client.
    fn on_message(
        &self,
        cx: &mut WsContext,
        message: Message,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The session ended with `code` and `reason`.
    fn on_disconnect(
        &self,
        cx: &mut WsContext,
        code: u16,
        reason: &str,
    ) -> impl Future<Output = ()> + Send {
        let _ = (cx, code, reason);
        async {}
    }
}

/// The app that serves every WebSocket session with the endpoint `e`.
pub fn endpoint<E: WsEndpoint>(e: E) -> WsEndpointApp<E> {
    WsEndpointApp { inner: Arc::new(e) }
}

/// An app made of a [`WsEndpoint`]; built by [`endpoint`].
pub struct WsEndpointApp<E> {
    inner: Arc<E>,
}

impl<E> Clone for WsEndpointApp<E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<E> std::fmt::Debug for WsEndpointApp<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsEndpointApp")
    }
}

impl<E: WsEndpoint> App for WsEndpointApp<E> {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let e = self.inner.clone();
        Box::pin(async move {
            let Some(mut cx) = session(scope, receive, send).await? else {
                return Ok(());
            };
            run_endpoint(&*e, &mut cx).await
        })
    }
}

async fn run_endpoint<E: WsEndpoint>(e: &E, cx: &mut WsContext) -> AppResult {
    let (shared, responder) = (cx.shared.clone(), cx.responder.clone());
    if let Err(err) = e.on_connect(cx).await {
        if !cx.is_accepted() || err.status() >= 500 {
            return finish(&shared, &responder, Err(err)).await;
        }
        // Accepted, then a client error or departure: close for it (done by `finish`) and
        // report the end below.
        finish(&shared, &responder, Err(err)).await?;
    }
    if !cx.is_accepted() {
        return finish(&shared, &responder, Ok(())).await;
    }
    while let Some(message) = cx.receive().await {
        if shared.lock().phase != Phase::Open {
            continue; // closing: the client's late messages are dropped
        }
        if let Err(err) = e.on_message(cx, message).await {
            if err.status() >= 500 && !err.is_disconnected() {
                e.on_disconnect(cx, 1011, "server_error").await;
                return finish(&shared, &responder, Err(err)).await;
            }
            finish(&shared, &responder, Err(err)).await?;
        }
    }
    let end = cx.wait_closed().await;
    e.on_disconnect(cx, end.code, &end.reason).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_and_reasons_are_checked() {
        assert!(check_close(1000, "").is_ok());
        assert!(check_close(4000, "bye").is_ok());
        for bad in [999, 1004, 1005, 1006, 1015, 2000, 5000] {
            assert!(check_close(bad, "").is_err(), "{bad}");
        }
        assert!(check_close(1000, &"x".repeat(123)).is_ok());
        assert!(check_close(1000, &"x".repeat(124)).is_err());
    }

    #[test]
    fn client_errors_map_to_close_codes() {
        assert_eq!(close_code_for(&Error::unsupported_media_type("x")), 1003);
        assert_eq!(close_code_for(&Error::body_too_large(1)), 1009);
        assert_eq!(close_code_for(&Error::malformed_body("x")), 1008);
        assert_eq!(close_code_for(&Error::new(401, "who")), 1008);
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
    }
}
