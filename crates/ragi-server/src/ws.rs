//! WebSocket sessions: RFC 6455 over an upgraded HTTP/1.1 connection and RFC 8441 over an
//! HTTP/2 extended CONNECT stream, one code path for the app.
//!
//! The frame codec is sans-I/O ([`crate::proto::ws`]); this module owns the byte stream, the
//! app's events and the timers. A session is one future that does everything on one task:
//!
//! * it **polls the app** (the app's future lives inside the session, so an echo costs no task
//!   switch: a message read from the socket is handed to the app's `receive`, the app's `send`
//!   encodes the answer into the outgoing buffer, and the same poll writes it);
//! * it **always reads** the socket: incoming messages queue for the app (bounded, 1 000 by
//!   default; overflow closes with 1008 and reason `queue_overflow`), so a FIN or an RST is seen
//!   at once in every state, the handshake included;
//! * it **writes** the outgoing buffer; `send` waits above the high watermark until the buffer
//!   drains below the low one (the `transport` extension reports the amount and fires
//!   `on_high_water` / `on_drain`); a client that takes nothing for the write timeout ends the
//!   session with `write_timeout`;
//! * it runs the **timers**: keep-alive pings and their pong deadline (`WebSocketKeepalive`,
//!   1006 and reason `keepalive_timeout`), the idle timeout (`Config::ws_idle_timeout`: no data
//!   message either way), the wait for the client's close frame, and the linger after the
//!   server's FIN.
//!
//! If the session ends while the app is still running, the app moves to a task of its own (it
//! is never cancelled: its `receive` yields `WebSocketDisconnect` and its `send` fails).
//!
//! # How a session ends
//!
//! | what happened | close frame sent | app's `WebSocketDisconnect` | connection object |
//! |---|---|---|---|
//! | the app sent `WebSocketClose`, the client answered | the app's | the client's code and text | completed |
//! | the app returned | 1000 | 1000 | completed |
//! | the client sent a close frame | the same code back | its code (1005 if none) and text (else `client_closed`) | `client_closed` |
//! | TCP FIN / RST without a close frame | — | 1006, `client_closed` / `read_error` | same |
//! | frame violation / invalid UTF-8 | 1002 / 1007 | same code, `protocol_error` | `protocol_error` |
//! | message over the size limit | 1009 | 1009, `body_too_large` | `body_too_large` |
//! | receive queue overflow | 1008 | 1008, `queue_overflow` | `queue_overflow` |
//! | pong missing | — (TCP closed) | 1006, `keepalive_timeout` | `keepalive_timeout` |
//! | idle timeout | 1001 | 1001, `idle_timeout` | `idle_timeout` |
//! | graceful shutdown, `close_after_current_response` | 1001 | 1001, `server_shutdown` | `server_shutdown` |
//! | the app failed or panicked | 1011 | 1011, `server_error` | `server_error` |
//! | write stall / write error | — | 1006, `write_timeout` / `write_error` | same |
//!
//! Before `WebSocketAccept` the app may deny with `HttpResponseStart` + `HttpResponseBody`
//! (any status); `WebSocketClose`, an error or returning without an answer are answered 403.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use ragi::{
    AppResult, BoxFuture, ConnectionControl, DisconnectReason, Headers, Message, ReceiveEvent,
    ReceiveSource, Scope, SendError, SendEvent, SendSink, TransportState, TrySendError,
};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::lifecycle::{ConnShared, ErrorReport, Upgraded};
use crate::proto::ws::{self as codec, CodecConfig, Decoder, Encoder, Incoming};
use crate::server::{Phase, ServerShared};
use crate::shared::{CatchUnwind, TransportHooks};

/// How long the server waits for the client's close frame after sending its own.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// How long the server reads (and discards) after its FIN, so that the client gets the close
/// frame rather than a reset caused by its own unread bytes.
const LINGER: Duration = Duration::from_secs(2);
/// Bytes a client may send before the handshake is answered; beyond, the server stops reading
/// until it is.
const PRE_ACCEPT_LIMIT: usize = 64 * 1024;
/// How long a detected protocol violation waits for the app to take the messages that came
/// before it.
const FAILURE_GRACE: Duration = Duration::from_secs(1);
/// Bytes read per read call at least.
const READ_CHUNK: usize = 64 * 1024;
/// Rounds of work (app, read, write) one poll of a session does before it yields.
const ROUNDS_PER_POLL: u32 = 16;

// ----- the handshake ------------------------------------------------------------------------

/// Whether an HTTP/1.1 request asks for a WebSocket: `GET` with `upgrade: websocket` and a
/// `connection` header naming `upgrade`.
pub(crate) fn is_h1_upgrade(method: &http::Method, headers: &Headers) -> bool {
    method == http::Method::GET
        && headers
            .get_all("upgrade")
            .any(|v| has_token(v, b"websocket"))
        && headers
            .get_all("connection")
            .any(|v| has_token(v, b"upgrade"))
}

/// Whether a comma-separated header value contains `token` (case-insensitively).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// The subprotocols a handshake offers, in order.
pub(crate) fn offered_subprotocols(headers: &Headers) -> Vec<String> {
    let mut out = Vec::new();
    for v in headers.get_all("sec-websocket-protocol") {
        for t in v.split(|&b| b == b',') {
            let t = t.trim_ascii();
            if !t.is_empty() {
                if let Ok(s) = std::str::from_utf8(t) {
                    out.push(s.to_owned());
                }
            }
        }
    }
    out
}

/// Checks the HTTP/1.1 handshake's own fields (RFC 6455 §4.2.1). On success, the
/// `sec-websocket-accept` value; otherwise the status and extra header lines to answer with.
pub(crate) fn check_h1_handshake(headers: &Headers) -> Result<String, (u16, &'static [u8])> {
    let versions: Vec<&Bytes> = headers.get_all("sec-websocket-version").collect();
    if versions.len() != 1 || versions[0].trim_ascii() != b"13" {
        return Err((426, b"sec-websocket-version: 13\r\n"));
    }
    let keys: Vec<&Bytes> = headers.get_all("sec-websocket-key").collect();
    if keys.len() != 1 || !codec::valid_key(keys[0].trim_ascii()) {
        return Err((400, b""));
    }
    Ok(codec::accept_key(keys[0].trim_ascii()))
}

/// The byte stream of a session, and how its handshake is answered.
pub(crate) trait WsIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Answers the handshake with acceptance: appends the response to `out` (HTTP/1.1), or
    /// sends it on the stream (HTTP/2).
    fn accept(&mut self, headers: &Headers, out: &mut BytesMut) -> io::Result<()>;
    /// Answers the handshake with a denial; the session ends once `out` is written.
    fn deny(
        &mut self,
        status: u16,
        headers: &Headers,
        body: Bytes,
        out: &mut BytesMut,
    ) -> io::Result<()>;
}

/// An upgraded HTTP/1.1 connection (plain or TLS).
pub(crate) struct H1Io<S> {
    pub(crate) io: S,
    pub(crate) accept_key: String,
    pub(crate) server_header: Option<Bytes>,
}

impl<S> H1Io<S> {
    fn common(&self, out: &mut BytesMut, headers: &Headers) {
        for (n, v) in headers.iter() {
            out.extend_from_slice(n);
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        if let Some(s) = &self.server_header {
            if !headers.contains("server") {
                out.extend_from_slice(b"server: ");
                out.extend_from_slice(s);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> WsIo for H1Io<S> {
    fn accept(&mut self, headers: &Headers, out: &mut BytesMut) -> io::Result<()> {
        out.extend_from_slice(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ",
        );
        out.extend_from_slice(self.accept_key.as_bytes());
        out.extend_from_slice(b"\r\n");
        self.common(out, headers);
        out.extend_from_slice(b"\r\n");
        Ok(())
    }

    fn deny(
        &mut self,
        status: u16,
        headers: &Headers,
        body: Bytes,
        out: &mut BytesMut,
    ) -> io::Result<()> {
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
        let mut hs = headers.clone();
        hs.remove("content-length");
        hs.remove("transfer-encoding");
        hs.remove("connection");
        self.common(out, &hs);
        crate::date::with_date_line(|line| out.extend_from_slice(line));
        out.extend_from_slice(
            format!(
                "content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&body);
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for H1Io<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for H1Io<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

// ----- what the app and the driver share ----------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AppPhase {
    /// The handshake waits for the app's answer.
    Connecting,
    /// The app denied; the denial's body may still be coming.
    Denying,
    /// Accepted and open.
    Open,
    /// The app sent `WebSocketClose` (or the server closed): no more messages.
    Closed,
}

/// The handshake answer the app gave, for the driver to carry out.
enum Answer {
    /// The response headers (subprotocol and extension included) and the codec's settings.
    Accept {
        headers: Headers,
        config: CodecConfig,
    },
    Deny {
        status: u16,
        headers: Headers,
        body: Bytes,
    },
}

struct St {
    phase: AppPhase,
    connect_delivered: bool,
    inbox: VecDeque<Message>,
    /// The `WebSocketDisconnect` event's fields, once the session ended for the app.
    end: Option<(u16, String)>,
    /// Why `send` fails now.
    send_error: Option<DisconnectReason>,
    recv_waker: Option<Waker>,
    answer: Option<Answer>,
    /// A denial being collected: status, headers, body so far.
    deny: Option<(u16, Headers, BytesMut)>,
    encoder: Option<Encoder>,
    out: Outgoing,
    /// The app sent `WebSocketClose` (the frame is in `out`).
    app_closed: bool,
    /// The app sent a data message since the driver last looked (idle timer).
    app_sent: bool,
    keepalive: Option<(Duration, Duration)>,
    keepalive_changed: bool,
    /// `send` waits: the buffer rose above the high watermark and has not drained below the
    /// low one.
    blocked: bool,
    /// A send crossed the high watermark: run the callbacks after the lock.
    fire_high: bool,
    send_waiters: Vec<Waker>,
    driver_waker: Option<Waker>,
}

impl St {
    /// Runs `f` with the session's encoder (none before the handshake is answered) and the
    /// output's tail buffer.
    fn encode(&mut self, f: impl FnOnce(&mut Encoder, &mut BytesMut)) {
        if let Some(enc) = self.encoder.as_mut() {
            f(enc, &mut self.out.tail);
        }
    }
}

pub(crate) struct WsShared {
    st: Mutex<St>,
    hooks: TransportHooks,
    high: usize,
    low: usize,
    offered: Vec<String>,
    /// The client's `sec-websocket-extensions` values.
    offers: Vec<Bytes>,
    compression: bool,
    max_message: usize,
    /// The byte stream takes vectored writes: large payloads are queued, not copied.
    zero_copy: bool,
}

impl WsShared {
    fn lock(&self) -> MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn wake_driver(st: &mut St) {
    if let Some(w) = st.driver_waker.take() {
        w.wake();
    }
}

/// The app's `receive`.
struct WsSource(Arc<WsShared>);

impl ReceiveSource for WsSource {
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
        match &st.recv_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.recv_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// The app's `send`.
struct WsSink(Arc<WsShared>);

/// Close codes an app may send (RFC 6455 §7.4: not 1004–1006, 1015, nor unassigned ones).
fn app_close_code_ok(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

impl WsSink {
    /// Applies an event that needs no waiting (everything but a message while blocked).
    fn apply(&self, st: &mut St, event: SendEvent) -> Result<(), SendError> {
        match (st.phase, event) {
            (
                AppPhase::Connecting,
                SendEvent::WebSocketAccept {
                    subprotocol,
                    mut headers,
                },
            ) => {
                if let Some(p) = &subprotocol {
                    if !self.0.offered.iter().any(|o| o == p) {
                        return Err(SendError::invalid_event(format!(
                            "subprotocol {p:?} was not offered by the client"
                        )));
                    }
                }
                headers.validate().map_err(SendError::invalid_header)?;
                // Negotiated here, not in the driver: the app may send right after accepting,
                // before the driver runs, and its messages need the encoder.
                let deflate = if self.0.compression {
                    let offers: Vec<&[u8]> = self.0.offers.iter().map(|b| &b[..]).collect();
                    codec::negotiate(&offers)
                } else {
                    None
                };
                if let Some(p) = subprotocol {
                    headers.push("sec-websocket-protocol", p);
                }
                let params = deflate.map(|(params, value)| {
                    headers.push("sec-websocket-extensions", value);
                    params
                });
                let config = CodecConfig {
                    max_message_size: self.0.max_message,
                    deflate: params,
                };
                st.encoder = Some(Encoder::new(&config));
                st.phase = AppPhase::Open;
                st.answer = Some(Answer::Accept { headers, config });
                wake_driver(st);
                Ok(())
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
                Ok(())
            }
            (AppPhase::Connecting, SendEvent::WebSocketClose { .. }) => {
                st.phase = AppPhase::Closed;
                st.answer = Some(Answer::Deny {
                    status: 403,
                    headers: Headers::new(),
                    body: Bytes::new(),
                });
                wake_driver(st);
                Ok(())
            }
            (AppPhase::Denying, SendEvent::HttpResponseBody { body, more }) => {
                let (_, _, buf) = st.deny.as_mut().expect("denying");
                buf.extend_from_slice(&body);
                if !more {
                    let (status, headers, buf) = st.deny.take().expect("denying");
                    st.phase = AppPhase::Closed;
                    st.answer = Some(Answer::Deny {
                        status,
                        headers,
                        body: buf.freeze(),
                    });
                    wake_driver(st);
                }
                Ok(())
            }
            (_, SendEvent::WebSocketKeepalive { interval, timeout }) => {
                st.keepalive = (!interval.is_zero()).then_some((interval, timeout));
                st.keepalive_changed = true;
                wake_driver(st);
                Ok(())
            }
            (AppPhase::Open, SendEvent::WebSocketSend(msg)) => {
                if let Some(r) = &st.send_error {
                    return Err(SendError::disconnected(r.clone()));
                }
                let St {
                    encoder, out: o, ..
                } = &mut *st;
                let enc = encoder.as_mut().expect("open");
                if self.0.zero_copy {
                    if let Some(payload) = enc.message_owned(msg, &mut o.tail) {
                        o.push_bytes(payload);
                    }
                } else {
                    enc.message(&msg, &mut o.tail);
                }
                st.app_sent = true;
                self.after_queue(st);
                Ok(())
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
                st.encode(|enc, out| enc.close(code, &reason, out));
                st.phase = AppPhase::Closed;
                st.app_closed = true;
                wake_driver(st);
                Ok(())
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

    fn after_queue(&self, st: &mut St) {
        if !st.blocked && st.out.len() > self.0.high {
            st.blocked = true;
            // The callbacks run once the lock is released.
            st.fire_high = true;
        }
        wake_driver(st);
    }
}

/// Releases the lock, then runs the `on_high_water` callbacks if a send crossed the mark.
fn unlock_and_fire(sh: &WsShared, mut st: MutexGuard<'_, St>) {
    let fire = std::mem::take(&mut st.fire_high);
    drop(st);
    if fire {
        sh.hooks.fire(true);
    }
}

impl SendSink for WsSink {
    fn send(&self, event: SendEvent) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async move {
            let mut event = Some(event);
            std::future::poll_fn(|cx| {
                let mut st = self.0.lock();
                let is_msg = matches!(event, Some(SendEvent::WebSocketSend(_)));
                if is_msg && st.blocked && st.send_error.is_none() && st.phase == AppPhase::Open {
                    if !st.send_waiters.iter().any(|w| w.will_wake(cx.waker())) {
                        st.send_waiters.push(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                let r = self.apply(&mut st, event.take().expect("polled once more"));
                unlock_and_fire(&self.0, st);
                Poll::Ready(r)
            })
            .await
        })
    }

    fn try_send(&self, event: SendEvent) -> Result<(), TrySendError> {
        let mut st = self.0.lock();
        if st.blocked
            && st.send_error.is_none()
            && st.phase == AppPhase::Open
            && matches!(event, SendEvent::WebSocketSend(_))
        {
            return Err(TrySendError::WouldWait(event));
        }
        let r = self.apply(&mut st, event);
        unlock_and_fire(&self.0, st);
        r.map_err(TrySendError::Failed)
    }
}

impl TransportState for WsShared {
    fn buffered_amount(&self) -> usize {
        self.lock().out.len()
    }
    fn high_water(&self) -> usize {
        self.high
    }
    fn low_water(&self) -> usize {
        self.low
    }
    fn on_high_water(&self, callback: Box<dyn Fn() + Send + Sync>) {
        self.hooks.on_high_water(callback);
    }
    fn on_drain(&self, callback: Box<dyn Fn() + Send + Sync>) {
        self.hooks.on_drain(callback);
    }
}

/// The outgoing bytes of a session: frozen chunks (large payloads, sent without a copy) and
/// a tail where frame headers and small frames are encoded. In order: `chunks`, then `tail`.
#[derive(Default)]
struct Outgoing {
    chunks: VecDeque<Bytes>,
    chunks_len: usize,
    tail: BytesMut,
}

/// Most slices one vectored write takes.
const MAX_SLICES: usize = 16;

impl Outgoing {
    fn len(&self) -> usize {
        self.chunks_len + self.tail.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `b` after everything queued.
    fn push_bytes(&mut self, b: Bytes) {
        if !self.tail.is_empty() {
            let t = self.tail.split().freeze();
            self.chunks_len += t.len();
            self.chunks.push_back(t);
        }
        self.chunks_len += b.len();
        self.chunks.push_back(b);
    }

    /// Puts `b` before everything queued.
    fn prepend(&mut self, b: Bytes) {
        self.chunks_len += b.len();
        self.chunks.push_front(b);
    }

    /// Fills `out` with the first slices to write; returns how many.
    fn slices<'a>(&'a self, out: &mut [IoSlice<'a>; MAX_SLICES]) -> usize {
        let mut n = 0;
        for c in self.chunks.iter().take(MAX_SLICES - 1) {
            out[n] = IoSlice::new(c);
            n += 1;
        }
        if !self.tail.is_empty() && n < MAX_SLICES {
            out[n] = IoSlice::new(&self.tail);
            n += 1;
        }
        n
    }

    /// Drops `n` written bytes from the front.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                self.tail.advance(n);
                return;
            };
            if n < front.len() {
                front.advance(n);
                self.chunks_len -= n;
                return;
            }
            n -= front.len();
            self.chunks_len -= front.len();
            self.chunks.pop_front();
        }
    }
}

// ----- the session driver -------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the app's handshake answer.
    Connecting,
    /// Messages flow.
    Open,
    /// The server's close frame is queued or sent; waiting for the client's.
    CloseSent,
    /// Writing what is left, then FIN, then lingering until the client's EOF.
    Closing,
    /// Over.
    Done,
}

/// Where a session runs: the server, the connection, and (on HTTP/2) the stream.
pub(crate) struct SessionCtx {
    pub(crate) srv: Arc<ServerShared>,
    pub(crate) conn: Arc<ConnShared>,
    /// The client's address, for the `upgraded` notice.
    pub(crate) peer: std::net::SocketAddr,
    /// The HTTP/2 stream, for the `upgraded` notice.
    pub(crate) stream: Option<u32>,
    /// The request line (or `CONNECT path`), for the error hook.
    pub(crate) request_line: String,
}

/// What a finished session tells its connection.
pub(crate) struct SessionEnd {
    pub(crate) reason: Option<DisconnectReason>,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
}

/// A protocol violation found behind messages the app has not taken yet.
struct PendingFailure {
    code: u16,
    text: &'static str,
    reason: DisconnectReason,
    at: Instant,
}

struct Driver<T: WsIo> {
    io: T,
    sh: Arc<WsShared>,
    control: ConnectionControl,
    ctx: SessionCtx,
    app: Option<CatchUnwind<BoxFuture<'static, AppResult>>>,
    decoder: Option<Decoder>,
    rbuf: BytesMut,
    state: State,
    reason: Option<DisconnectReason>,
    read_eof: bool,
    fin_sent: bool,
    bytes_in: u64,
    bytes_out: u64,
    max_queue: usize,
    idle: Option<Duration>,
    write_timeout: Option<Duration>,
    last_data: Instant,
    keepalive: Option<(Duration, Duration)>,
    ping_due: Option<Instant>,
    pong_deadline: Option<Instant>,
    ping_count: u64,
    close_wait_until: Option<Instant>,
    linger_until: Option<Instant>,
    stall_start: Option<Instant>,
    pending_failure: Option<PendingFailure>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    armed: Option<Instant>,
}

/// Runs one WebSocket session: calls the app with `scope` (kind `websocket`, its connection
/// object already in it, `control` its other half), answers the handshake as the app decides,
/// and carries messages until the end. `rbuf` holds bytes that arrived after the handshake
/// request; `offers` are the `sec-websocket-extensions` values.
pub(crate) async fn run_session<T: WsIo>(
    io: T,
    mut scope: Scope,
    control: ConnectionControl,
    ctx: SessionCtx,
    offers: Vec<Bytes>,
    rbuf: BytesMut,
) -> SessionEnd {
    let cfg = &ctx.srv.cfg;
    let offered = scope.subprotocols.clone();
    let sh = Arc::new(WsShared {
        st: Mutex::new(St {
            phase: AppPhase::Connecting,
            connect_delivered: false,
            inbox: VecDeque::new(),
            end: None,
            send_error: None,
            recv_waker: None,
            answer: None,
            deny: None,
            encoder: None,
            out: Outgoing::default(),
            app_closed: false,
            app_sent: false,
            keepalive: None,
            keepalive_changed: false,
            blocked: false,
            fire_high: false,
            send_waiters: Vec::new(),
            driver_waker: None,
        }),
        hooks: TransportHooks::default(),
        high: cfg.write_high_water,
        low: cfg.write_low_water,
        offered,
        offers,
        compression: cfg.ws_compression,
        max_message: cfg.ws_max_message_size,
        zero_copy: io.is_write_vectored(),
    });
    scope.extensions.websocket_http_response = true;
    scope.extensions.server_state = Some(ctx.srv.server_state.clone());
    scope.extensions.transport = Some(ragi::Transport::new(sh.clone()));
    let app = ctx.srv.app.call(
        scope,
        ragi::Receiver::new(WsSource(sh.clone())),
        ragi::Sender::new(WsSink(sh.clone())),
    );
    let now = Instant::now();
    let mut d = Driver {
        io,
        sh,
        control,
        max_queue: cfg.ws_max_queue,
        idle: cfg.ws_idle_timeout,
        write_timeout: cfg.write_timeout,
        ctx,
        app: Some(CatchUnwind(app)),
        decoder: None,
        rbuf,
        state: State::Connecting,
        reason: None,
        read_eof: false,
        fin_sent: false,
        bytes_in: 0,
        bytes_out: 0,
        last_data: now,
        keepalive: None,
        ping_due: None,
        pong_deadline: None,
        ping_count: 0,
        close_wait_until: None,
        linger_until: None,
        stall_start: None,
        pending_failure: None,
        sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
        armed: None,
    };
    let conn = d.ctx.conn.clone();
    let mut phase = d.ctx.srv.phase.clone();
    if *phase.borrow_and_update() != Phase::Running {
        d.on_phase(*phase.borrow());
    }
    if conn.close_deadline().is_some() {
        d.on_close_request();
    }
    loop {
        enum Wake {
            Done,
            Notified,
            Phase(bool),
        }
        let wake = tokio::select! {
            biased;
            () = std::future::poll_fn(|cx| d.poll_session(cx)) => Wake::Done,
            _ = conn.wake.notified() => Wake::Notified,
            r = phase.changed() => Wake::Phase(r.is_ok()),
        };
        match wake {
            Wake::Done => break,
            Wake::Notified => {
                if conn.close_deadline().is_some() {
                    d.on_close_request();
                }
            }
            Wake::Phase(true) => {
                let p = *phase.borrow_and_update();
                d.on_phase(p);
            }
            Wake::Phase(false) => {}
        }
    }
    d.finish()
}

impl<T: WsIo> Driver<T> {
    fn poll_session(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut st = self.sh.lock();
            match &st.driver_waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => st.driver_waker = Some(cx.waker().clone()),
            }
        }
        let mut rounds = 0;
        loop {
            rounds += 1;
            if rounds > ROUNDS_PER_POLL {
                // Fair to the other sessions on this thread: come back after them.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let mut progress = false;
            progress |= self.poll_app(cx);
            progress |= self.take_answer();
            progress |= self.take_app_state();
            progress |= self.poll_read(cx);
            // The clock only when a failure waits (almost never).
            progress |=
                self.pending_failure.is_some() && self.check_pending_failure(Instant::now());
            progress |= self.poll_write(cx);
            if self.state == State::Done {
                return Poll::Ready(());
            }
            if progress {
                continue;
            }
            // Timers.
            let now = Instant::now();
            match self.deadline() {
                Some(at) if at <= now => {
                    self.on_timer(now);
                    continue;
                }
                Some(at) => {
                    if self.armed != Some(at) {
                        self.armed = Some(at);
                        self.sleep.as_mut().reset(at.into());
                    }
                    if self.sleep.as_mut().poll(cx).is_ready() {
                        self.armed = None;
                        continue;
                    }
                }
                None => self.armed = None,
            }
            return Poll::Pending;
        }
    }

    // ----- the app --------------------------------------------------------------------------

    /// Polls the app; returns whether it finished.
    fn poll_app(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(app) = self.app.as_mut() else {
            return false;
        };
        let outcome = match Pin::new(app).poll(cx) {
            Poll::Pending => return false,
            Poll::Ready(Ok(Ok(()))) => None,
            Poll::Ready(Ok(Err(e))) => Some(e.to_string()),
            Poll::Ready(Err(panic)) => Some(panic),
        };
        self.app = None;
        self.on_app_done(outcome);
        true
    }

    fn on_app_done(&mut self, failure: Option<String>) {
        if let Some(e) = &failure {
            tracing::warn!(conn = %self.ctx.conn.id, error = %e, "WebSocket app failed");
        }
        match self.state {
            State::Connecting => {
                let mut st = self.sh.lock();
                if st.answer.is_some() {
                    // The app answered, then returned: carry the answer out first.
                    drop(st);
                    self.take_answer();
                    if self.state == State::Open {
                        self.on_app_done(failure);
                    }
                    return;
                }
                // No answer (or a denial cut short): 403.
                st.phase = AppPhase::Closed;
                st.deny = None;
                drop(st);
                let aborted = failure.is_some();
                self.report(
                    failure.unwrap_or_else(|| "the app returned without answering".to_owned()),
                    aborted,
                );
                self.reason = Some(DisconnectReason::ServerError);
                self.deny(403, &Headers::new(), Bytes::new());
                self.control.disconnect(DisconnectReason::ServerError);
            }
            State::Open => {
                let app_closed = self.sh.lock().app_closed;
                if app_closed {
                    // The close frame is queued; `take_app_state` moves to CloseSent.
                    return;
                }
                match failure {
                    None => self.server_close(1000, "", None),
                    Some(e) => {
                        self.report(e, true);
                        self.server_close(
                            1011,
                            "server error",
                            Some(DisconnectReason::ServerError),
                        );
                    }
                }
            }
            _ => {
                if let Some(e) = failure {
                    self.report(e, true);
                }
            }
        }
    }

    fn report(&self, error: String, aborted: bool) {
        let Some(hook) = self.ctx.srv.error_hook.clone() else {
            return;
        };
        let report = ErrorReport {
            id: self.ctx.conn.id.clone(),
            request_line: self.ctx.request_line.clone(),
            error,
            aborted,
        };
        let conn = self.ctx.conn.clone();
        conn.task_started();
        tokio::spawn(async move {
            let fut = std::panic::AssertUnwindSafe(hook(report));
            if let Err(e) = CatchUnwind(Box::pin(fut)).await {
                tracing::error!(conn = %conn.id, error = %e, "the error hook panicked (contained)");
            }
            conn.task_done();
        });
    }

    // ----- the handshake --------------------------------------------------------------------

    /// Carries out the app's handshake answer, if it gave one.
    fn take_answer(&mut self) -> bool {
        if self.state != State::Connecting {
            return false;
        }
        let answer = self.sh.lock().answer.take();
        match answer {
            None => false,
            Some(Answer::Accept { headers, config }) => {
                // The response head goes before any message the app already sent.
                let mut st = self.sh.lock();
                let mut head = BytesMut::with_capacity(256);
                let r = self.io.accept(&headers, &mut head);
                st.out.prepend(head.freeze());
                drop(st);
                self.decoder = Some(Decoder::new(&config));
                self.control.set_response_started();
                if let Err(e) = r {
                    self.fail_io(DisconnectReason::WriteError, e);
                    return true;
                }
                self.state = State::Open;
                self.last_data = Instant::now();
                if let Some(l) = &self.ctx.srv.lifecycle {
                    let notice = Upgraded {
                        id: self.ctx.conn.id.clone(),
                        peer: self.ctx.peer,
                        protocol: "websocket".to_owned(),
                        stream: self.ctx.stream,
                    };
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        l.upgraded(&notice)
                    }));
                }
                true
            }
            Some(Answer::Deny {
                status,
                headers,
                body,
            }) => {
                self.deny(status, &headers, body);
                self.control.complete();
                true
            }
        }
    }

    fn deny(&mut self, status: u16, headers: &Headers, body: Bytes) {
        self.control.set_response_started();
        let mut st = self.sh.lock();
        st.phase = AppPhase::Closed;
        st.end = Some((1006, "denied".to_owned()));
        st.send_error = Some(DisconnectReason::ServerError);
        let mut out = std::mem::take(&mut st.out.tail);
        let r = self.io.deny(status, headers, body, &mut out);
        st.out.tail = out;
        if let Some(w) = st.recv_waker.take() {
            w.wake();
        }
        drop(st);
        if let Err(e) = r {
            self.fail_io(DisconnectReason::WriteError, e);
            return;
        }
        self.state = State::Closing;
    }

    /// Looks at what the app changed: a close it sent, keep-alive settings, data it sent.
    fn take_app_state(&mut self) -> bool {
        let mut st = self.sh.lock();
        if st.app_sent {
            st.app_sent = false;
            self.last_data = Instant::now();
        }
        if st.keepalive_changed {
            st.keepalive_changed = false;
            self.keepalive = st.keepalive;
            self.pong_deadline = None;
            self.ping_due = self.keepalive.map(|(i, _)| Instant::now() + i);
        }
        if st.app_closed && self.state == State::Open {
            drop(st);
            self.state = State::CloseSent;
            self.close_wait_until = Some(Instant::now() + CLOSE_WAIT);
            return true;
        }
        false
    }

    // ----- ending ---------------------------------------------------------------------------

    /// Ends the session for the app: `reason` None is a clean completion.
    fn end_for_app(&mut self, code: u16, text: String, reason: Option<DisconnectReason>) {
        let mut st = self.sh.lock();
        if st.end.is_some() {
            return;
        }
        st.end = Some((code, text));
        if st.phase != AppPhase::Closed {
            st.phase = AppPhase::Closed;
        }
        st.send_error = Some(reason.clone().unwrap_or(DisconnectReason::ClientClosed));
        let waiters = std::mem::take(&mut st.send_waiters);
        let recv = st.recv_waker.take();
        drop(st);
        for w in waiters {
            w.wake();
        }
        if let Some(w) = recv {
            w.wake();
        }
        match reason {
            Some(r) => {
                if self.reason.is_none() {
                    self.reason = Some(r.clone());
                }
                self.control.disconnect(r);
            }
            None => {
                self.control.complete();
            }
        }
    }

    /// The server closes: queues a close frame, ends the session for the app, waits for the
    /// client's close frame.
    fn server_close(&mut self, code: u16, text: &str, reason: Option<DisconnectReason>) {
        if !matches!(self.state, State::Open) {
            return;
        }
        {
            let mut st = self.sh.lock();
            st.encode(|enc, out| enc.close(code, text, out));
            st.app_closed = true;
        }
        let event_text = reason
            .as_ref()
            .map_or_else(String::new, |r| r.as_str().to_owned());
        self.end_for_app(code, event_text, reason);
        self.state = State::CloseSent;
        self.close_wait_until = Some(Instant::now() + CLOSE_WAIT);
    }

    /// A failure that ends the connection now: no close frame can go out.
    fn fail_io(&mut self, reason: DisconnectReason, e: io::Error) {
        tracing::debug!(conn = %self.ctx.conn.id, error = %e, %reason, "WebSocket I/O ended");
        self.end_for_app(1006, reason.as_str().to_owned(), Some(reason.clone()));
        if self.reason.is_none() {
            self.reason = Some(reason);
        }
        self.state = State::Done;
    }

    /// Ends the connection now without a close frame (1006).
    fn drop_now(&mut self, reason: DisconnectReason) {
        self.end_for_app(1006, reason.as_str().to_owned(), Some(reason.clone()));
        if self.reason.is_none() {
            self.reason = Some(reason);
        }
        self.state = State::Done;
    }

    /// Sends a close frame for a failure the server detected and closes after it.
    fn fail_protocol(&mut self, code: u16, text: &str, reason: DisconnectReason) {
        {
            let mut st = self.sh.lock();
            st.encode(|enc, out| enc.close(code, text, out));
            st.app_closed = true;
        }
        self.end_for_app(code, reason.as_str().to_owned(), Some(reason));
        self.begin_closing();
    }

    fn begin_closing(&mut self) {
        self.state = State::Closing;
        self.decoder = None;
    }

    fn on_phase(&mut self, phase: Phase) {
        match phase {
            Phase::Running => {}
            Phase::Draining => self.going_away(),
            Phase::Abort => {
                self.drop_now(DisconnectReason::ServerShutdown);
            }
        }
    }

    fn on_close_request(&mut self) {
        self.going_away();
        if let Some(at) = self.ctx.conn.close_deadline() {
            if Instant::now() >= at {
                self.drop_now(DisconnectReason::ServerShutdown);
            }
        }
    }

    /// Graceful shutdown or a requested close: 1001 to the client, `server_shutdown` to the app.
    fn going_away(&mut self) {
        match self.state {
            State::Open => self.server_close(
                1001,
                "server shutting down",
                Some(DisconnectReason::ServerShutdown),
            ),
            State::Connecting => {
                // Not accepted yet: refuse the handshake.
                self.sh.lock().answer = None;
                self.reason = Some(DisconnectReason::ServerShutdown);
                self.deny(503, &Headers::new(), Bytes::new());
                self.control.disconnect(DisconnectReason::ServerShutdown);
            }
            _ => {}
        }
    }

    // ----- reading --------------------------------------------------------------------------

    fn poll_read(&mut self, cx: &mut Context<'_>) -> bool {
        if self.read_eof || self.state == State::Done {
            return false;
        }
        if self.state == State::Connecting && self.rbuf.len() >= PRE_ACCEPT_LIMIT {
            return false;
        }
        let mut progress = false;
        // Decode what is already buffered (bytes that came with the handshake).
        if self.decoder.is_some() && !self.rbuf.is_empty() {
            progress |= self.decode();
        }
        for _ in 0..4 {
            if self.read_eof || self.state == State::Done {
                break;
            }
            if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 2 {
                self.rbuf.reserve(READ_CHUNK);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf) {
                Poll::Pending => break,
                Poll::Ready(Ok(0)) => {
                    self.read_eof = true;
                    self.on_eof();
                    return true;
                }
                Poll::Ready(Ok(n)) => {
                    self.bytes_in += n as u64;
                    progress = true;
                    match self.state {
                        State::Closing => self.rbuf.clear(),
                        State::Connecting => {
                            if self.rbuf.len() >= PRE_ACCEPT_LIMIT {
                                break;
                            }
                        }
                        _ => {
                            self.decode();
                        }
                    }
                }
                Poll::Ready(Err(e)) => {
                    self.read_eof = true;
                    match self.state {
                        State::Closing | State::Done => self.state = State::Done,
                        _ => self.fail_io(read_error_reason(&e), e),
                    }
                    return true;
                }
            }
        }
        progress
    }

    fn on_eof(&mut self) {
        match self.state {
            State::Connecting | State::Open => {
                self.drop_now(DisconnectReason::ClientClosed);
            }
            State::CloseSent => {
                // The client went without its close frame.
                self.drop_now(DisconnectReason::ClientClosed);
            }
            State::Closing => {
                if self.fin_sent || self.sh.lock().out.is_empty() {
                    self.state = State::Done;
                }
            }
            State::Done => {}
        }
    }

    /// Decodes buffered frames; returns whether anything happened.
    fn decode(&mut self) -> bool {
        let mut any = false;
        loop {
            if !matches!(self.state, State::Open | State::CloseSent) {
                if self.state == State::Closing {
                    self.rbuf.clear();
                }
                return any;
            }
            if self.pending_failure.is_some() {
                return any;
            }
            let Some(dec) = self.decoder.as_mut() else {
                return any;
            };
            let ev = match dec.decode(&mut self.rbuf) {
                Ok(Some(ev)) => ev,
                Ok(None) => return any,
                Err(e) => {
                    let reason = if e.code == 1009 {
                        DisconnectReason::BodyTooLarge
                    } else {
                        DisconnectReason::ProtocolError
                    };
                    tracing::debug!(conn = %self.ctx.conn.id, code = e.code, why = e.reason, "WebSocket protocol error");
                    if self.state == State::CloseSent {
                        // Already closing: just go.
                        self.begin_closing();
                    } else if !self.sh.lock().inbox.is_empty() {
                        // Messages that came before the violation are the app's: fail once
                        // it has taken them (and perhaps answered), or after a moment.
                        self.pending_failure = Some(PendingFailure {
                            code: e.code,
                            text: e.reason,
                            reason,
                            at: Instant::now() + FAILURE_GRACE,
                        });
                    } else {
                        self.fail_protocol(e.code, e.reason, reason);
                    }
                    return true;
                }
            };
            any = true;
            match ev {
                Incoming::Message(m) => {
                    if self.state != State::Open {
                        continue; // after our close frame, messages are dropped
                    }
                    self.last_data = Instant::now();
                    let mut st = self.sh.lock();
                    if st.inbox.len() >= self.max_queue {
                        drop(st);
                        self.fail_protocol(
                            1008,
                            "receive queue overflow",
                            DisconnectReason::QueueOverflow,
                        );
                        return true;
                    }
                    st.inbox.push_back(m);
                    if let Some(w) = st.recv_waker.take() {
                        w.wake();
                    }
                }
                Incoming::Ping(p) => {
                    if self.state == State::Open {
                        let mut st = self.sh.lock();
                        st.encode(|enc, out| enc.pong(&p, out));
                    }
                }
                Incoming::Pong(_) => {
                    self.pong_deadline = None;
                }
                Incoming::Close { code, reason } => {
                    if self.state == State::Open {
                        // The client closes: answer with the same code.
                        {
                            let mut st = self.sh.lock();
                            st.encode(|enc, out| enc.close(code.unwrap_or(1005), "", out));
                            st.app_closed = true;
                        }
                        let text = if reason.is_empty() {
                            DisconnectReason::ClientClosed.as_str().to_owned()
                        } else {
                            reason
                        };
                        self.end_for_app(
                            code.unwrap_or(1005),
                            text,
                            Some(DisconnectReason::ClientClosed),
                        );
                    } else {
                        // The answer to our close frame: a clean end.
                        self.end_for_app(code.unwrap_or(1005), reason, None);
                    }
                    self.begin_closing();
                    return true;
                }
            }
        }
    }

    /// Fails a pending violation once the app has taken the messages before it (or its grace
    /// ran out).
    fn check_pending_failure(&mut self, now: Instant) -> bool {
        let Some(p) = &self.pending_failure else {
            return false;
        };
        if self.state != State::Open {
            self.pending_failure = None;
            return false;
        }
        if now < p.at && !self.sh.lock().inbox.is_empty() {
            return false;
        }
        let p = self.pending_failure.take().expect("checked");
        self.fail_protocol(p.code, p.text, p.reason);
        true
    }

    // ----- writing --------------------------------------------------------------------------

    fn poll_write(&mut self, cx: &mut Context<'_>) -> bool {
        if self.state == State::Done {
            return false;
        }
        let mut progress = false;
        let mut drained = false;
        let mut failed = None;
        {
            let mut st = self.sh.lock();
            while !st.out.is_empty() {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let n = st.out.slices(&mut slices);
                let r = if n == 1 {
                    Pin::new(&mut self.io).poll_write(cx, &slices[0])
                } else {
                    Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n])
                };
                match r {
                    Poll::Ready(Ok(0)) => {
                        failed = Some(io::Error::from(io::ErrorKind::WriteZero));
                        break;
                    }
                    Poll::Ready(Ok(n)) => {
                        st.out.advance(n);
                        self.bytes_out += n as u64;
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => {
                        failed = Some(e);
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            if st.blocked && st.out.len() <= self.sh.low {
                st.blocked = false;
                drained = true;
                for w in std::mem::take(&mut st.send_waiters) {
                    w.wake();
                }
            }
            if st.out.is_empty() && st.out.tail.capacity() > 256 * 1024 {
                st.out.tail = BytesMut::new();
            }
        }
        if drained {
            self.sh.hooks.fire(false);
        }
        if let Some(e) = failed {
            match self.state {
                State::Closing => self.state = State::Done,
                _ => self.fail_io(DisconnectReason::WriteError, e),
            }
            return true;
        }
        let pending_out = !self.sh.lock().out.is_empty();
        let flushed = match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(e)) => {
                match self.state {
                    State::Closing => self.state = State::Done,
                    _ => self.fail_io(DisconnectReason::WriteError, e),
                }
                return true;
            }
            Poll::Pending => false,
        };
        if pending_out || !flushed {
            if progress || self.stall_start.is_none() {
                self.stall_start = Some(Instant::now());
            }
        } else {
            self.stall_start = None;
            if self.state == State::Closing && !self.fin_sent {
                match Pin::new(&mut self.io).poll_shutdown(cx) {
                    Poll::Ready(_) => {
                        self.fin_sent = true;
                        self.linger_until = Some(Instant::now() + LINGER);
                        if self.read_eof {
                            self.state = State::Done;
                        }
                        progress = true;
                    }
                    Poll::Pending => {}
                }
            }
        }
        progress
    }

    // ----- timers ---------------------------------------------------------------------------

    fn deadline(&self) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        let mut add = |t: Option<Instant>| {
            if let Some(t) = t {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        };
        if self.state == State::Open {
            add(self.pending_failure.as_ref().map(|p| p.at));
            add(self.ping_due);
            add(self.pong_deadline);
            add(self.idle.map(|i| self.last_data + i));
        }
        if self.state == State::CloseSent {
            add(self.close_wait_until);
        }
        if self.state == State::Closing && self.fin_sent {
            add(self.linger_until);
        }
        if let (Some(s), Some(w)) = (self.stall_start, self.write_timeout) {
            add(Some(s + w));
        }
        add(self.ctx.conn.close_deadline());
        best
    }

    fn on_timer(&mut self, now: Instant) {
        if let Some(at) = self.ctx.conn.close_deadline() {
            if now >= at {
                self.drop_now(DisconnectReason::ServerShutdown);
                return;
            }
        }
        if let (Some(s), Some(w)) = (self.stall_start, self.write_timeout) {
            if now >= s + w {
                match self.state {
                    State::Closing => self.state = State::Done,
                    _ => self.drop_now(DisconnectReason::WriteTimeout),
                }
                return;
            }
        }
        if self.check_pending_failure(now) {
            return;
        }
        match self.state {
            State::Open => {
                if self.pong_deadline.is_some_and(|t| now >= t) {
                    self.drop_now(DisconnectReason::KeepaliveTimeout);
                    return;
                }
                if let Some(i) = self.idle {
                    if now >= self.last_data + i {
                        self.server_close(
                            1001,
                            "idle timeout",
                            Some(DisconnectReason::IdleTimeout),
                        );
                        return;
                    }
                }
                if self.ping_due.is_some_and(|t| now >= t) {
                    if let Some((interval, timeout)) = self.keepalive {
                        self.ping_count += 1;
                        let payload = self.ping_count.to_be_bytes();
                        let mut st = self.sh.lock();
                        st.encode(|enc, out| enc.ping(&payload, out));
                        drop(st);
                        if self.pong_deadline.is_none() {
                            self.pong_deadline = Some(now + timeout);
                        }
                        self.ping_due = Some(now + interval);
                    } else {
                        self.ping_due = None;
                    }
                }
            }
            State::CloseSent => {
                if self.close_wait_until.is_some_and(|t| now >= t) {
                    // No close frame came back: close anyway.
                    self.begin_closing();
                }
            }
            State::Closing => {
                if self.linger_until.is_some_and(|t| now >= t) {
                    self.state = State::Done;
                }
            }
            State::Connecting | State::Done => {}
        }
    }

    fn finish(mut self) -> SessionEnd {
        if self.sh.lock().end.is_none() {
            // Ended by the server without a frame exchange (abort).
            let r = self.reason.clone().unwrap_or(DisconnectReason::ServerError);
            self.end_for_app(1006, r.as_str().to_owned(), Some(r));
        }
        if let Some(app) = self.app.take() {
            // The app outlives its session: it learns the end from `receive` and `send`.
            let conn = self.ctx.conn.clone();
            conn.task_started();
            tokio::spawn(async move {
                let _ = app.await;
                conn.task_done();
            });
        }
        SessionEnd {
            reason: self.reason,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
        }
    }
}

/// A read error's reason: on HTTP/2 a client's RST_STREAM is `client_closed`; any other
/// failure (a TCP reset, a TLS error, the HTTP/2 connection's loss) is `read_error`.
fn read_error_reason(e: &io::Error) -> DisconnectReason {
    match e.get_ref().and_then(|i| i.downcast_ref::<h2::Error>()) {
        Some(h) if h.is_reset() || h.is_remote() && h.is_go_away() => {
            DisconnectReason::ClientClosed
        }
        _ => DisconnectReason::ReadError,
    }
}

/// Serves a WebSocket session on an HTTP/1.1 connection the driver handed over; returns the
/// connection's `closed` facts.
pub(crate) async fn serve_h1_upgrade(
    up: crate::h1::Upgrade,
    srv: Arc<ServerShared>,
    conn: Arc<ConnShared>,
) -> crate::lifecycle::Closed {
    let crate::h1::Upgrade {
        io,
        tls,
        tls_info,
        rest,
        head,
        accept_key,
        requests,
        bytes_in,
        bytes_out,
        accepted_at,
        peer,
        local,
    } = up;
    let (connection, control) = ragi::Connection::pair();
    let mut scope = Scope::with_parts(
        ragi::ScopeKind::WebSocket,
        connection,
        srv.lifespan_state.clone(),
    );
    let request_line = String::from_utf8_lossy(head.request_line()).into_owned();
    scope.http_version = head.version;
    scope.path = ragi::scope::percent_decode(&head.raw_path);
    scope.method = head.method;
    scope.raw_path = head.raw_path;
    scope.query_string = head.query;
    scope.subprotocols = offered_subprotocols(&head.headers);
    let offers: Vec<Bytes> = head
        .headers
        .get_all("sec-websocket-extensions")
        .cloned()
        .collect();
    scope.headers = head.headers;
    scope.client = crate::net::known(peer);
    scope.server = crate::net::known(local);
    scope.scheme = if tls_info.is_some() { "wss" } else { "ws" };
    scope.extensions.tls = tls_info;
    let ctx = SessionCtx {
        srv: srv.clone(),
        conn: conn.clone(),
        peer,
        stream: None,
        request_line,
    };
    let server_header = srv.server_header.clone();
    let end = match tls {
        None => {
            let io = H1Io {
                io,
                accept_key,
                server_header,
            };
            run_session(io, scope, control, ctx, offers, rest).await
        }
        Some(session) => {
            let io = H1Io {
                io: crate::tls_io::TlsIo::new(io, *session, BytesMut::new()),
                accept_key,
                server_header,
            };
            run_session(io, scope, control, ctx, offers, rest).await
        }
    };
    crate::lifecycle::Closed {
        id: conn.id.clone(),
        peer,
        reason: end.reason,
        requests,
        bytes_in: bytes_in + end.bytes_in,
        bytes_out: bytes_out + end.bytes_out,
        duration: accepted_at.elapsed(),
        protocol: "websocket",
    }
}

// ----- RFC 8441: a WebSocket on an HTTP/2 stream --------------------------------------------

/// An extended CONNECT stream as the session's byte stream: DATA frames in, DATA frames out
/// (within the stream's flow-control window), END_STREAM as FIN, RST_STREAM as a reset.
pub(crate) struct H2Io {
    recv: h2::RecvStream,
    respond: Option<h2::server::SendResponse<Bytes>>,
    send: Option<h2::SendStream<Bytes>>,
    /// Received bytes not yet read.
    pending: Bytes,
    server_header: Option<Bytes>,
    /// END_STREAM went out (or the denial ended the stream).
    ended: bool,
}

impl H2Io {
    pub(crate) fn new(
        recv: h2::RecvStream,
        respond: h2::server::SendResponse<Bytes>,
        server_header: Option<Bytes>,
    ) -> Self {
        Self {
            recv,
            respond: Some(respond),
            send: None,
            pending: Bytes::new(),
            server_header,
            ended: false,
        }
    }

    fn response(&self, status: u16, headers: &Headers) -> io::Result<http::Response<()>> {
        let mut resp = http::Response::new(());
        *resp.status_mut() = http::StatusCode::from_u16(status)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let h = resp.headers_mut();
        for (n, v) in headers.iter() {
            let name = http::HeaderName::from_bytes(n)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            if matches!(
                name.as_str(),
                "connection" | "upgrade" | "keep-alive" | "transfer-encoding" | "content-length"
            ) {
                continue;
            }
            let value = http::HeaderValue::from_maybe_shared(v.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            h.append(name, value);
        }
        if let Some(s) = &self.server_header {
            if !h.contains_key(http::header::SERVER) {
                if let Ok(v) = http::HeaderValue::from_maybe_shared(s.clone()) {
                    h.insert(http::header::SERVER, v);
                }
            }
        }
        if let Ok(v) = crate::date::with_date(http::HeaderValue::from_bytes) {
            h.insert(http::header::DATE, v);
        }
        Ok(resp)
    }
}

fn h2_io_error(e: h2::Error) -> io::Error {
    io::Error::other(e)
}

impl WsIo for H2Io {
    fn accept(&mut self, headers: &Headers, _out: &mut BytesMut) -> io::Result<()> {
        let resp = self.response(200, headers)?;
        let mut respond = self.respond.take().ok_or(io::ErrorKind::NotConnected)?;
        let send = respond.send_response(resp, false).map_err(h2_io_error)?;
        self.send = Some(send);
        Ok(())
    }

    fn deny(
        &mut self,
        status: u16,
        headers: &Headers,
        body: Bytes,
        _out: &mut BytesMut,
    ) -> io::Result<()> {
        let mut resp = self.response(status, headers)?;
        resp.headers_mut().insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(body.len()),
        );
        let mut respond = self.respond.take().ok_or(io::ErrorKind::NotConnected)?;
        let mut send = respond
            .send_response(resp, body.is_empty())
            .map_err(h2_io_error)?;
        if !body.is_empty() {
            send.send_data(body, true).map_err(h2_io_error)?;
        }
        self.ended = true;
        Ok(())
    }
}

impl AsyncRead for H2Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pending.is_empty() {
            match this.recv.poll_data(cx) {
                Poll::Pending => {
                    // Before the answer, a reset shows only here.
                    if let Some(r) = this.respond.as_mut() {
                        if let Poll::Ready(Ok(reason)) = r.poll_reset(cx) {
                            return Poll::Ready(Err(io::Error::other(h2::Error::from(reason))));
                        }
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(h2_io_error(e))),
                Poll::Ready(Some(Ok(data))) => {
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    this.pending = data;
                }
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let Some(send) = self.send.as_mut() else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if let Poll::Ready(Ok(reason)) = send.poll_reset(cx) {
            return Poll::Ready(Err(io::Error::other(h2::Error::from(reason))));
        }
        if send.capacity() == 0 {
            send.reserve_capacity(buf.len().min(1 << 20));
            match send.poll_capacity(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(h2_io_error(e))),
                Poll::Ready(Some(Ok(0))) => return Poll::Pending,
                Poll::Ready(Some(Ok(_))) => {}
            }
        }
        let n = send.capacity().min(buf.len());
        if n == 0 {
            return Poll::Pending;
        }
        send.send_data(Bytes::copy_from_slice(&buf[..n]), false)
            .map_err(h2_io_error)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.ended {
            self.ended = true;
            if let Some(send) = self.send.as_mut() {
                let _ = send.send_data(Bytes::new(), true);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for H2Io {
    fn drop(&mut self) {
        // A session that ends without END_STREAM (an abort) resets the stream.
        if self.ended {
            return;
        }
        if let Some(send) = self.send.as_mut() {
            send.send_reset(h2::Reason::CANCEL);
        } else if let Some(respond) = self.respond.as_mut() {
            respond.send_reset(h2::Reason::CANCEL);
        }
    }
}
