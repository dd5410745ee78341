//! What several middleware share: watching the events an app sends ([`Tap`]), what one
//! exchange looked like from the outside ([`Observed`]: status, bytes, WebSocket messages and
//! close), and answering a scope before the app ([`answer`]).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ragi::{
    AppResult, Body, BoxFuture, DisconnectReason, Headers, Message, ReceiveEvent, Receiver, Scope,
    ScopeKind, SendError, SendEvent, SendSink, Sender, SseEvent,
};

use crate::response::Responder;
use crate::Response;

/// A middleware's look at each event an app sends: [`Tap::before`] may change or refuse it
/// before it goes on, [`Tap::after`] learns whether it went through.
pub(crate) trait Tap: Send + Sync + 'static {
    /// What `before` hands to `after` about the event.
    type Note: Send + 'static;

    /// Called before `event` goes on; an error refuses it (the app's `send` returns it).
    fn before(&self, event: &mut SendEvent) -> Result<Self::Note, SendError>;

    /// Called with the outcome of the event `before` let through.
    fn after(&self, _note: Self::Note, _result: &Result<(), SendError>) {}
}

struct Tapped<T> {
    inner: Sender,
    tap: T,
}

impl<T: Tap> SendSink for Tapped<T> {
    fn send(&self, mut event: SendEvent) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async move {
            let note = self.tap.before(&mut event)?;
            let r = self.inner.send(event).await;
            self.tap.after(note, &r);
            r
        })
    }
}

/// `send` with `tap` looking at every event.
pub(crate) fn tap<T: Tap>(send: Sender, tap: T) -> Sender {
    Sender::new(Tapped { inner: send, tap })
}

/// The status a head event carries: `ResponseStart`, the decline or denial `HttpResponseStart`,
/// `SseStart`, and 101 for a WebSocket accept.
pub(crate) fn head_status(event: &SendEvent) -> Option<u16> {
    match event {
        SendEvent::ResponseStart { status, .. }
        | SendEvent::HttpResponseStart { status, .. }
        | SendEvent::SseStart { status, .. } => Some(*status),
        SendEvent::WebSocketAccept { .. } => Some(101),
        _ => None,
    }
}

/// The headers of a head event (the ones [`head_status`] knows), to change them.
pub(crate) fn head_headers_mut(event: &mut SendEvent) -> Option<&mut Headers> {
    match event {
        SendEvent::ResponseStart { headers, .. }
        | SendEvent::HttpResponseStart { headers, .. }
        | SendEvent::SseStart { headers, .. }
        | SendEvent::WebSocketAccept { headers, .. } => Some(headers),
        _ => None,
    }
}

/// Answers `scope` with `response` in its framing (an HTTP response, the SSE decline pair, the
/// WebSocket denial pair), without calling any app.
pub(crate) fn answer(
    scope: Scope,
    send: Sender,
    response: Response,
) -> BoxFuture<'static, AppResult> {
    Box::pin(async move {
        match Responder::new(&scope, send).send(response).await {
            Ok(()) => Ok(()),
            // The client left: nothing to answer; the connection object says why.
            Err(e) if e.is_disconnected() => Ok(()),
            Err(e) => Err(e.into_app_error()),
        }
    })
}

/// The client's IP address, IPv4-mapped IPv6 addresses as IPv4.
pub(crate) fn client_ip(scope: &Scope) -> Option<IpAddr> {
    scope.client.map(|a| a.ip().to_canonical())
}

/// Whole seconds, rounded up (the `delay-seconds` of `Retry-After`).
pub(crate) fn ceil_secs(d: std::time::Duration) -> u64 {
    let s = d.as_secs();
    if d.subsec_nanos() > 0 {
        s.saturating_add(1)
    } else {
        s
    }
}

/// The size of `ev` framed on the wire (`event:`, `data:` lines, `id:`, `retry:`, blank line).
pub(crate) fn sse_event_len(ev: &SseEvent) -> u64 {
    let mut n = 1; // the blank line
    if let Some(e) = &ev.event {
        n += 8 + e.len();
    }
    let data = ev.data.replace("\r\n", "\n").replace('\r', "\n");
    for line in data.split('\n') {
        n += 7 + line.len();
    }
    if let Some(id) = &ev.id {
        n += 5 + id.len();
    }
    if let Some(r) = ev.retry {
        n += 8 + r.to_string().len();
    }
    n as u64
}

/// The body bytes an event carries to the client (file regions by their length; a region
/// to the end of its file by the file's size now).
pub(crate) fn body_len(event: &SendEvent) -> u64 {
    match event {
        SendEvent::ResponseBody { body, .. } => match body {
            Body::Bytes(b) => b.len() as u64,
            Body::File {
                length: Some(n), ..
            } => *n,
            Body::File {
                path,
                offset,
                length: None,
            } => std::fs::metadata(path)
                .map(|m| m.len().saturating_sub(*offset))
                .unwrap_or(0),
        },
        SendEvent::HttpResponseBody { body, .. } => body.len() as u64,
        SendEvent::SseSend(ev) => sse_event_len(ev),
        SendEvent::SseComment { comment } => 4 + comment.len() as u64,
        SendEvent::WebSocketSend(Message::Text(t)) => t.len() as u64,
        SendEvent::WebSocketSend(Message::Binary(b)) => b.len() as u64,
        _ => 0,
    }
}

/// One exchange seen from the outside of the app: what it answered and how much, and for a
/// WebSocket session its messages and how it closed. Filled by [`observe`].
#[derive(Debug)]
pub(crate) struct Observed {
    kind: ScopeKind,
    head_request: bool,
    status: AtomicU16,
    bytes: AtomicU64,
    bytes_in: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    accepted: AtomicBool,
    close: Mutex<Option<(u16, String)>>,
}

impl Observed {
    fn new(scope: &Scope) -> Self {
        Self {
            kind: scope.kind,
            head_request: scope.method == http::Method::HEAD,
            status: AtomicU16::new(0),
            bytes: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            messages_in: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
            accepted: AtomicBool::new(false),
            close: Mutex::new(None),
        }
    }

    /// The status the app (or a layer inside) answered with; `None` before any head.
    pub(crate) fn status(&self) -> Option<u16> {
        match self.status.load(Ordering::Acquire) {
            0 => None,
            s => Some(s),
        }
    }

    /// The status the client got: the app's, or the server's backstop when the app produced
    /// none and the exchange ended with `server_error` (500; 403 for a WebSocket handshake).
    pub(crate) fn final_status(&self, reason: Option<&DisconnectReason>) -> Option<u16> {
        self.status().or(match reason {
            Some(DisconnectReason::ServerError) if self.kind == ScopeKind::WebSocket => Some(403),
            Some(DisconnectReason::ServerError) => Some(500),
            _ => None,
        })
    }

    /// Body bytes accepted for the client (0 for HEAD; SSE events as framed; WebSocket message
    /// payloads).
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }

    /// Request body bytes (HTTP, SSE) or message payload bytes (WebSocket) the app received.
    pub(crate) fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Acquire)
    }

    /// WebSocket messages received and sent.
    pub(crate) fn messages(&self) -> (u64, u64) {
        (
            self.messages_in.load(Ordering::Acquire),
            self.messages_out.load(Ordering::Acquire),
        )
    }

    /// How a WebSocket session closed: the first close code and text seen either way.
    pub(crate) fn close(&self) -> Option<(u16, String)> {
        self.close.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_close(&self, code: u16, text: &str) {
        let mut c = self.close.lock().unwrap_or_else(|e| e.into_inner());
        if c.is_none() {
            *c = Some((code, text.to_owned()));
        }
    }

    fn on_receive(&self, ev: &ReceiveEvent) {
        match ev {
            ReceiveEvent::Request { body, .. } => {
                self.bytes_in.fetch_add(body.len() as u64, Ordering::AcqRel);
            }
            ReceiveEvent::WebSocketReceive(m) => {
                let n = match m {
                    Message::Text(t) => t.len(),
                    Message::Binary(b) => b.len(),
                };
                self.bytes_in.fetch_add(n as u64, Ordering::AcqRel);
                self.messages_in.fetch_add(1, Ordering::AcqRel);
            }
            ReceiveEvent::WebSocketDisconnect { code, reason } => self.set_close(*code, reason),
            _ => {}
        }
    }
}

/// What [`ObservedTap::before`] counted, undone if the event is refused.
pub(crate) struct Counted {
    status: Option<u16>,
    bytes: u64,
    message: bool,
}

/// The [`Tap`] that fills an [`Observed`].
struct ObservedTap(Arc<Observed>);

impl Tap for ObservedTap {
    type Note = Counted;

    fn before(&self, event: &mut SendEvent) -> Result<Counted, SendError> {
        let o = &self.0;
        // Counted before the event goes on: the server may complete the exchange (and the
        // access log write its line) before `send` returns.
        let mut status = head_status(event);
        if let SendEvent::WebSocketClose { code, reason } = event {
            if o.accepted.load(Ordering::Acquire) {
                o.set_close(*code, reason);
            } else {
                status = Some(403); // a close before accept is answered with 403
            }
        }
        if matches!(event, SendEvent::WebSocketAccept { .. }) {
            o.accepted.store(true, Ordering::Release);
        }
        let status = status.filter(|&s| {
            o.status
                .compare_exchange(0, s, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        });
        let head_body = o.head_request && o.kind == ScopeKind::Http;
        let bytes = if head_body { 0 } else { body_len(event) };
        o.bytes.fetch_add(bytes, Ordering::AcqRel);
        let message = matches!(event, SendEvent::WebSocketSend(_));
        if message {
            o.messages_out.fetch_add(1, Ordering::AcqRel);
        }
        Ok(Counted {
            status,
            bytes,
            message,
        })
    }

    fn after(&self, note: Counted, result: &Result<(), SendError>) {
        if result.is_ok() {
            return;
        }
        let o = &self.0;
        if let Some(s) = note.status {
            let _ = o
                .status
                .compare_exchange(s, 0, Ordering::AcqRel, Ordering::Acquire);
        }
        o.bytes.fetch_sub(note.bytes, Ordering::AcqRel);
        if note.message {
            o.messages_out.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Wraps `receive` and `send` of one exchange so that the returned [`Observed`] follows it.
pub(crate) fn observe(
    scope: &Scope,
    receive: Receiver,
    send: Sender,
) -> (Arc<Observed>, Receiver, Sender) {
    let o = Arc::new(Observed::new(scope));
    let seen = o.clone();
    let receive = receive.map(move |ev| {
        seen.on_receive(&ev);
        ev
    });
    let send = tap(send, ObservedTap(o.clone()));
    (o, receive, send)
}

/// `request line` parts: the method, the target (root path, raw path and query) and the
/// protocol (`HTTP/1.1`, `HTTP/2.0`).
pub(crate) fn request_target(scope: &Scope) -> String {
    let mut t = String::with_capacity(
        scope.root_path.len() + scope.raw_path.len() + 1 + scope.query_string.len(),
    );
    t.push_str(&scope.root_path);
    t.push_str(&String::from_utf8_lossy(&scope.raw_path));
    if !scope.query_string.is_empty() {
        t.push('?');
        t.push_str(&String::from_utf8_lossy(&scope.query_string));
    }
    t
}

/// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0`.
pub(crate) fn protocol(scope: &Scope) -> &'static str {
    match scope.http_version {
        ragi::HttpVersion::Http10 => "HTTP/1.0",
        ragi::HttpVersion::Http2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_sizes_match_the_encoding() {
        let ev = SseEvent {
            event: Some("tick".into()),
            data: "a\nb".into(),
            id: Some("7".into()),
            retry: Some(1500),
        };
        // "event: tick\ndata: a\ndata: b\nid: 7\nretry: 1500\n\n"
        assert_eq!(sse_event_len(&ev), 47);
    }
}
