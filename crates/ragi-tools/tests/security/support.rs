//! A probe app that reports what it saw, for every scope kind.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ragi::{
    App, Headers, Message, ReceiveEvent, Receiver, Scope, ScopeKind, SendEvent, Sender, SseEvent,
};
use ragi_tools::middleware::auth::Identity;
use ragi_tools::middleware::csrf::CsrfToken;
use ragi_tools::middleware::forwarded::OriginalRequest;
use serde_json::{json, Value};

/// How many times the app behind the middleware was called (lifespan scopes aside).
#[derive(Clone, Default)]
pub struct Calls(Arc<AtomicUsize>);

impl Calls {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the app saw of `scope` (and the body it read).
pub fn seen(scope: &Scope, body: &[u8]) -> Value {
    let identity = scope.stash.get::<Identity>();
    let original = scope.stash.get::<OriginalRequest>();
    json!({
        "kind": scope.kind.as_str(),
        "method": scope.method.as_str(),
        "scheme": scope.scheme,
        "client": scope.client.map(|c| c.to_string()),
        "host": scope.headers.get_str("host"),
        "hosts": scope.headers.get_all("host").count(),
        "root_path": scope.root_path,
        "path": scope.path,
        "raw_path": String::from_utf8_lossy(&scope.raw_path),
        "query": String::from_utf8_lossy(&scope.query_string),
        "identity": identity.as_ref().map(|i| i.name().to_owned()),
        "identity_extra": identity.as_ref().and_then(|i| i.extra::<String>().cloned()),
        "csrf": scope.stash.get::<CsrfToken>().map(|t| t.value().to_owned()),
        "original_client": original.as_ref().and_then(|o| o.client.map(|c| c.to_string())),
        "original_scheme": original.as_ref().map(|o| o.scheme),
        "original_host": original.as_ref().and_then(|o| o.host.as_ref().map(|h| String::from_utf8_lossy(h).into_owned())),
        "original_root_path": original.as_ref().map(|o| o.root_path.clone()),
        "proxies": original.as_ref().map(|o| o.proxies.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
        "body": String::from_utf8_lossy(body),
    })
}

/// Answers every scope kind with what it saw: http → 200 JSON (after reading the body); sse →
/// one event with the JSON; websocket → accept, one text message with the JSON, then echo
/// until the client leaves.
pub fn probe() -> (impl App, Calls) {
    let calls = Calls::default();
    let counter = calls.clone();
    let app = move |scope: Scope, mut rx: Receiver, send: Sender| {
        if scope.kind != ScopeKind::Lifespan {
            counter.0.fetch_add(1, Ordering::SeqCst);
        }
        async move {
            match scope.kind {
                ScopeKind::Http => {
                    let mut body = Vec::new();
                    loop {
                        match rx.receive().await {
                            ReceiveEvent::Request { body: b, more } => {
                                body.extend_from_slice(&b);
                                if !more {
                                    break;
                                }
                            }
                            ReceiveEvent::Disconnect { .. } => return Ok(()),
                            _ => {}
                        }
                    }
                    let text = seen(&scope, &body).to_string();
                    send.send(SendEvent::response_start(
                        200,
                        Headers::new().with("content-type", "application/json"),
                    ))
                    .await?;
                    send.send(SendEvent::body(text)).await?;
                }
                ScopeKind::Sse => {
                    send.send(SendEvent::SseStart {
                        status: 200,
                        headers: Headers::new(),
                    })
                    .await?;
                    let data = seen(&scope, b"").to_string();
                    send.send(SendEvent::SseSend(SseEvent {
                        data,
                        ..Default::default()
                    }))
                    .await?;
                    send.send(SendEvent::SseClose { reason: None }).await?;
                }
                ScopeKind::WebSocket => {
                    let _connect = rx.receive().await;
                    send.send(SendEvent::WebSocketAccept {
                        subprotocol: None,
                        headers: Headers::new(),
                    })
                    .await?;
                    send.send(SendEvent::WebSocketSend(Message::Text(
                        seen(&scope, b"").to_string(),
                    )))
                    .await?;
                    while let ReceiveEvent::WebSocketReceive(m) = rx.receive().await {
                        send.send(SendEvent::WebSocketSend(m)).await?;
                    }
                }
                _ => {}
            }
            Ok(())
        }
    };
    (app, calls)
}

/// An app answering every http request with `status`, `headers` and a short body.
pub fn answering(status: u16, headers: Headers) -> impl App {
    move |_scope: Scope, _rx: Receiver, send: Sender| {
        let headers = headers.clone();
        async move {
            send.send(SendEvent::response_start(status, headers))
                .await?;
            send.send(SendEvent::body("answer")).await?;
            Ok(())
        }
    }
}

/// The JSON body of a response.
pub fn json_of(res: &ragi_tools::test::TestResponse) -> Value {
    serde_json::from_slice(res.bytes()).unwrap_or_else(|e| panic!("{e}: {:?}", res.text()))
}

/// The header names of `h` that start with `access-control-`.
pub fn cors_headers(h: &Headers) -> Vec<String> {
    h.iter()
        .map(|(n, _)| String::from_utf8_lossy(n).to_ascii_lowercase())
        .filter(|n| n.starts_with("access-control-"))
        .collect()
}
