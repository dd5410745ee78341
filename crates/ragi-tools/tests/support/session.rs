//! An in-process session for one app call, standing in for the test client (`ragi_tools::test`,
//! not on main yet): the app runs in a task; the test pushes receive events, reads what the
//! app sends, and makes the client leave as the server would (spec §3 order: the connection
//! object ends first, then the disconnect event is queued; sends fail with the reason).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use ragi::{
    App, AppResult, BoxFuture, Connection, ConnectionControl, DisconnectReason, ReceiveEvent,
    ReceiveSource, Receiver, Scope, ScopeKind, SendError, SendEvent, SendSink, Sender,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::within;

/// A scope of `kind` for `path`, advertising what ragi-server advertises for it.
pub fn scope(kind: ScopeKind, path: &str) -> Scope {
    let mut s = Scope::new(kind);
    s.path = path.to_owned();
    s.raw_path = bytes::Bytes::copy_from_slice(path.as_bytes());
    s.extensions.fullflush = true;
    s.extensions.websocket_http_response = kind == ScopeKind::WebSocket;
    s.extensions.sse_http_response = kind == ScopeKind::Sse;
    if kind == ScopeKind::WebSocket {
        s.scheme = "ws";
    }
    s
}

struct Source {
    rx: mpsc::UnboundedReceiver<ReceiveEvent>,
    last: Option<ReceiveEvent>,
}

impl ReceiveSource for Source {
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        if let Some(end) = &self.last {
            return Poll::Ready(end.clone());
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(ev)) => {
                if matches!(
                    ev,
                    ReceiveEvent::Disconnect { .. } | ReceiveEvent::WebSocketDisconnect { .. }
                ) {
                    // Repeated on every later receive, as the server does.
                    self.last = Some(ev.clone());
                }
                Poll::Ready(ev)
            }
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

struct Sink {
    tx: mpsc::UnboundedSender<SendEvent>,
    gone: Arc<Mutex<Option<DisconnectReason>>>,
    control: Arc<ConnectionControl>,
}

impl SendSink for Sink {
    fn send(&self, event: SendEvent) -> BoxFuture<'_, Result<(), SendError>> {
        let r = self.deliver(event);
        Box::pin(async move { r })
    }
}

impl Sink {
    fn deliver(&self, event: SendEvent) -> Result<(), SendError> {
        if let Some(r) = self.gone.lock().unwrap().clone() {
            return Err(SendError::disconnected(r));
        }
        match &event {
            SendEvent::ResponseStart { .. }
            | SendEvent::HttpResponseStart { .. }
            | SendEvent::SseStart { .. } => self.control.set_response_started(),
            _ => {}
        }
        let last = matches!(
            &event,
            SendEvent::ResponseBody { more: false, .. }
                | SendEvent::HttpResponseBody { more: false, .. }
                | SendEvent::ResponseTrailers { .. }
                | SendEvent::SseClose { .. }
        );
        let _ = self.tx.send(event);
        if last {
            self.control.complete();
        }
        Ok(())
    }
}

/// One app call in progress.
pub struct Session {
    pub kind: ScopeKind,
    incoming: mpsc::UnboundedSender<ReceiveEvent>,
    events: mpsc::UnboundedReceiver<SendEvent>,
    gone: Arc<Mutex<Option<DisconnectReason>>>,
    control: Arc<ConnectionControl>,
    pub connection: Connection,
    task: Option<JoinHandle<AppResult>>,
}

impl Session {
    /// Calls `app` with `scope` (given a fresh connection object) in a task.
    pub fn start(app: impl App, scope: Scope) -> Session {
        let (connection, control) = Connection::pair();
        let control = Arc::new(control);
        let scope = scope.with_connection(connection.clone());
        let kind = scope.kind;
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let gone = Arc::new(Mutex::new(None));
        let receiver = Receiver::new(Source {
            rx: in_rx,
            last: None,
        });
        let sender = Sender::new(Sink {
            tx: out_tx,
            gone: gone.clone(),
            control: control.clone(),
        });
        if kind == ScopeKind::WebSocket {
            in_tx.send(ReceiveEvent::WebSocketConnect).unwrap();
        }
        let task = tokio::spawn(app.call(scope, receiver, sender));
        Session {
            kind,
            incoming: in_tx,
            events: out_rx,
            gone,
            control,
            connection,
            task: Some(task),
        }
    }

    /// Queues an event for the app's `receive`.
    pub fn push(&self, event: ReceiveEvent) {
        let _ = self.incoming.send(event);
    }

    /// A request without a body.
    pub fn no_body(&self) {
        self.push(ReceiveEvent::Request {
            body: bytes::Bytes::new(),
            more: false,
        });
    }

    /// The next event the app sent.
    pub async fn next(&mut self) -> SendEvent {
        within("the app's next event", self.events.recv())
            .await
            .expect("the app's sender is gone")
    }

    /// The next event within `bound` (under a paused clock: virtual time, which the runtime
    /// advances to the next timer when the app waits).
    pub async fn next_within(&mut self, bound: std::time::Duration) -> SendEvent {
        tokio::time::timeout(bound, self.events.recv())
            .await
            .expect("timed out waiting for the app's next event")
            .expect("the app's sender is gone")
    }

    /// The next event, if one was already sent.
    pub fn try_next(&mut self) -> Option<SendEvent> {
        self.events.try_recv().ok()
    }

    /// The client leaves with `reason` (WebSocket: without a close frame, 1006).
    pub fn leave(&self, reason: DisconnectReason) {
        *self.gone.lock().unwrap() = Some(reason.clone());
        self.control.disconnect(reason.clone());
        match self.kind {
            ScopeKind::WebSocket => self.push(ReceiveEvent::WebSocketDisconnect {
                code: 1006,
                reason: reason.to_string(),
            }),
            _ => self.push(ReceiveEvent::Disconnect { reason }),
        }
    }

    /// The WebSocket client sends a close frame (it is gone with `client_closed`).
    pub fn client_close(&self, code: u16, reason: &str) {
        *self.gone.lock().unwrap() = Some(DisconnectReason::ClientClosed);
        self.control.disconnect(DisconnectReason::ClientClosed);
        self.push(ReceiveEvent::WebSocketDisconnect {
            code,
            reason: reason.to_owned(),
        });
    }

    /// The WebSocket client answers the app's close: a clean end.
    pub fn answer_close(&self, code: u16, reason: &str) {
        *self.gone.lock().unwrap() = Some(DisconnectReason::ClientClosed);
        self.control.complete();
        self.push(ReceiveEvent::WebSocketDisconnect {
            code,
            reason: reason.to_owned(),
        });
    }

    /// What the app call returned.
    pub async fn result(&mut self) -> AppResult {
        let task = self.task.take().expect("result taken twice");
        within("the app to return", task)
            .await
            .expect("the app panicked")
    }

    /// Every event the app sent until it returned, and what it returned.
    pub async fn finish(mut self) -> (Vec<SendEvent>, AppResult) {
        let r = self.result().await;
        let mut out = Vec::new();
        while let Some(e) = self.try_next() {
            out.push(e);
        }
        (out, r)
    }
}
