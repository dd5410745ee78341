//! Shared by the middleware tests: small apps, a drop signal, a JSON log reader.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ragi::{Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use ragi_tools::middleware::access_log::{AccessLog, Capture, Format};
use tokio::sync::mpsc;

/// A shared list of what happened, in order.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    pub fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }

    pub fn get(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn contains(&self, s: &str) -> bool {
        self.get().iter().any(|x| x == s)
    }
}

/// Sends its tag on the channel when dropped before being defused.
pub struct DropSignal(pub Option<(mpsc::UnboundedSender<&'static str>, &'static str)>);

impl DropSignal {
    pub fn new(tx: &mpsc::UnboundedSender<&'static str>, tag: &'static str) -> Self {
        Self(Some((tx.clone(), tag)))
    }

    pub fn defuse(&mut self) {
        self.0 = None;
    }
}

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some((tx, tag)) = self.0.take() {
            let _ = tx.send(tag);
        }
    }
}

/// Waits (bounded, 5 s of the test's clock) for the next message.
pub async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a report within 5 s")
        .expect("a report")
}

/// A raw app answering `200 text/plain` with `body`.
pub async fn ok(_scope: Scope, _rx: Receiver, send: Sender, body: &'static str) -> ragi::AppResult {
    send.send(SendEvent::response_start(
        200,
        Headers::new().with("content-type", "text/plain"),
    ))
    .await?;
    send.send(SendEvent::body(body)).await?;
    Ok(())
}

/// A raw app that answers "hello".
pub fn hello() -> impl ragi::App {
    |s: Scope, r: Receiver, t: Sender| ok(s, r, t, "hello")
}

/// An access log to a capture in `format`.
pub fn captured(format: Format) -> (AccessLog, Capture) {
    let capture = Capture::new();
    (
        AccessLog::new().format(format).sink(capture.clone()),
        capture,
    )
}

/// The single JSON line of a capture.
pub fn one_json(capture: &Capture) -> serde_json::Value {
    let lines = capture.lines();
    assert_eq!(lines.len(), 1, "one line: {lines:#?}");
    serde_json::from_str(&lines[0]).expect("a JSON line")
}

/// A WebSocket app that accepts and echoes until the client leaves.
pub fn ws_echo() -> impl ragi::App {
    |_s: Scope, mut rx: Receiver, send: Sender| async move {
        let _connect = rx.receive().await;
        send.send(SendEvent::WebSocketAccept {
            subprotocol: None,
            headers: Headers::new(),
        })
        .await?;
        while let ReceiveEvent::WebSocketReceive(m) = rx.receive().await {
            send.send(SendEvent::WebSocketSend(m)).await?;
        }
        Ok(())
    }
}
