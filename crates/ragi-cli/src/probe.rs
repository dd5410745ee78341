//! The probe app: for tests, benchmarks and anyone checking a deployment.
//!
//! Its paths and JSON fields are a public interface: later versions extend them and never
//! break them.
//!
//! | path | answer |
//! |---|---|
//! | any method `/` | 200 `text/plain` `Hello, World!` (a request body is read first) |
//! | any method `/hold/{tag}` | never reads the body, never responds; records how the request ended |
//! | any method `/echo` | 200, streams the request body back as it arrives |
//! | `GET /stream/{tag}?chunks=N&bytes=B&interval_ms=M` | N chunks of B bytes, M ms apart; records how it ended |
//! | `GET /observed/{tag}?wait_ms=W` | 200 JSON `{"tag", "reason", "after_ms", "completed"}`, waiting up to W ms for the request to end; 404 for an unknown tag |
//! | `GET /connections` | 200 JSON array of lifecycle notices, oldest first (at most `--notices`) |
//! | any method `/request` | 200 JSON: the request as the app sees it (`method`, `path`, `raw_path`, `query`, `http_version`, `host`, `headers`) |
//! | any method `/panic?when=W` | panics: `before` responding (500), `after` the response started (aborted), in an on_disconnect `callback` (held until the client leaves), in an on_`complete` callback (after a 200) |
//! | `GET /sse/{tag}?interval_ms=M&count=N&keepalive_ms=K` (`accept: text/event-stream`) | N events with ids 1..N, M ms apart (0: until the client leaves), a keep-alive comment every K ms; with `last-event-id: L`, ids L+1..N; recorded |
//! | WebSocket `/ws/echo[/{tag}]` and `/` | accepts and echoes text and binary messages; recorded when tagged |
//! | WebSocket `/ws/hold/{tag}` | accepts, then never reads; recorded |
//! | WebSocket `/ws/flood/{tag}?size=B` | accepts, then sends binary messages of B bytes (default 16 384) until the session ends; recorded |
//!
//! WebSocket routes take query options: `subprotocol=first` accepts the first subprotocol the
//! client offered; `keepalive_ms=I&pong_timeout_ms=T` starts server pings; `deny=STATUS`
//! denies the handshake with that status and body `denied`; `reject=1` sends `WebSocketClose`
//! before accepting (403); `close=CODE` closes right after accepting. For WebSocket tags,
//! `/observed` adds `ws_code` and `ws_reason`: the app's `WebSocketDisconnect` event.
//!
//! `after_ms` is the time from the arrival of the request head (when the app was called) to
//! the change of the connection object.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ragi::{
    AppResult, Connection, DisconnectReason, Headers, ReceiveEvent, Receiver, Scope, ScopeKind,
    SendEvent, Sender, UnsupportedScope,
};
use ragi_server::lifecycle::{Accepted, Closed, LifecycleListener, Upgraded};
use serde_json::json;
use tokio::sync::Notify;

#[derive(Clone, Debug)]
struct Outcome {
    reason: Option<DisconnectReason>,
    after_ms: f64,
    completed: bool,
}

struct Tag {
    outcome: Option<Outcome>,
    /// The `WebSocketDisconnect` event the app received.
    ws_close: Option<(u16, String)>,
}

/// What the probe remembers: tags and lifecycle notices.
pub struct Probe {
    tags: Mutex<HashMap<String, Tag>>,
    changed: Notify,
    notices: Mutex<std::collections::VecDeque<serde_json::Value>>,
    fail_startup: Option<String>,
    lifecycle: bool,
    /// Most lifecycle notices kept (the oldest dropped first).
    max_notices: usize,
}

impl Probe {
    /// A probe; `fail_startup` makes lifespan start-up fail with that message; `lifecycle`
    /// says whether its listener is installed (`/connections` answers 404 without it);
    /// `max_notices` bounds the lifecycle notices kept.
    pub fn new(fail_startup: Option<String>, lifecycle: bool, max_notices: usize) -> Self {
        Self {
            tags: Mutex::default(),
            changed: Notify::new(),
            notices: Mutex::default(),
            fail_startup,
            lifecycle,
            max_notices,
        }
    }

    fn record(self: &Arc<Self>, tag: &str, conn: &Connection) {
        let start = Instant::now();
        self.tags.lock().unwrap().insert(
            tag.to_owned(),
            Tag {
                outcome: None,
                ws_close: None,
            },
        );
        let (me, t) = (self.clone(), tag.to_owned());
        conn.on_disconnect(move |r| {
            me.set(
                &t,
                Outcome {
                    reason: Some(r.clone()),
                    after_ms: ms(start.elapsed()),
                    completed: false,
                },
            );
        });
        let (me, t) = (self.clone(), tag.to_owned());
        conn.on_complete(move || {
            me.set(
                &t,
                Outcome {
                    reason: None,
                    after_ms: ms(start.elapsed()),
                    completed: true,
                },
            );
        });
    }

    fn set(&self, tag: &str, o: Outcome) {
        if let Some(t) = self.tags.lock().unwrap().get_mut(tag) {
            if t.outcome.is_none() {
                t.outcome = Some(o);
            }
        }
        self.changed.notify_waiters();
    }

    async fn observed(&self, tag: &str, wait: Duration) -> Option<Option<Outcome>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.tags.lock().unwrap().get(tag) {
                None => return None,
                Some(Tag {
                    outcome: Some(o), ..
                }) => return Some(Some(o.clone())),
                Some(_) => {}
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Some(
                    self.tags
                        .lock()
                        .unwrap()
                        .get(tag)
                        .and_then(|t| t.outcome.clone()),
                );
            }
        }
    }

    fn set_ws_close(&self, tag: &str, code: u16, reason: String) {
        if let Some(t) = self.tags.lock().unwrap().get_mut(tag) {
            t.ws_close = Some((code, reason));
        }
        self.changed.notify_waiters();
    }

    fn ws_close(&self, tag: &str) -> Option<(u16, String)> {
        self.tags.lock().unwrap().get(tag)?.ws_close.clone()
    }

    fn notice(&self, v: serde_json::Value) {
        if self.max_notices == 0 {
            return;
        }
        let mut n = self.notices.lock().unwrap();
        if n.len() >= self.max_notices {
            n.pop_front();
        }
        n.push_back(v);
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// The probe's lifecycle listener: records every notice for `/connections`.
pub struct ProbeListener(pub Arc<Probe>, pub Mutex<HashMap<u64, serde_json::Value>>);

impl ProbeListener {
    /// A listener recording into `probe`.
    pub fn new(probe: Arc<Probe>) -> Self {
        Self(probe, Mutex::default())
    }
}

fn tls_json(tls: Option<&ragi::TlsInfo>) -> serde_json::Value {
    match tls {
        None => serde_json::Value::Null,
        Some(t) => json!({
            "version": t.version, "cipher": t.cipher, "alpn": t.alpn, "sni": t.sni,
            "client_subject": t.client_subject, "verification_error": t.verification_error,
        }),
    }
}

impl LifecycleListener for ProbeListener {
    fn accepted(&self, n: &Accepted) -> Result<(), ragi::AppError> {
        let tls = tls_json(n.tls.as_deref());
        self.1.lock().unwrap().insert(n.id.get(), tls.clone());
        self.0.notice(json!({
            "id": n.id.get(), "event": "accepted", "peer": n.peer.to_string(), "reason": null,
            "requests": 0, "bytes_in": 0, "bytes_out": 0, "protocol": n.protocol, "tls": tls,
        }));
        Ok(())
    }

    fn upgraded(&self, n: &Upgraded) {
        self.0.notice(json!({
            "id": n.id.get(), "event": "upgraded", "peer": n.peer.to_string(), "reason": null,
            "requests": 0, "bytes_in": 0, "bytes_out": 0, "protocol": n.protocol,
            "stream": n.stream,
        }));
    }

    fn closed(&self, n: &Closed) -> Result<(), ragi::AppError> {
        let tls = self
            .1
            .lock()
            .unwrap()
            .remove(&n.id.get())
            .unwrap_or(serde_json::Value::Null);
        self.0.notice(json!({
            "id": n.id.get(), "event": "closed", "peer": n.peer.to_string(),
            "protocol": n.protocol, "tls": tls,
            "reason": n.reason.as_ref().map(|r| r.as_str()),
            "requests": n.requests, "bytes_in": n.bytes_in, "bytes_out": n.bytes_out,
            "duration_ms": ms(n.duration),
        }));
        Ok(())
    }
}

fn query_param<T: std::str::FromStr>(scope: &Scope, name: &str) -> Option<T> {
    scope.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.parse().ok()).flatten()
    })
}

async fn respond(
    send: &Sender,
    status: u16,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> AppResult {
    send.send(SendEvent::response_start(
        status,
        Headers::with_capacity(1).with("content-type", content_type),
    ))
    .await?;
    send.send(SendEvent::body(body)).await?;
    Ok(())
}

/// Reads and drops the whole request body.
async fn read_all(receive: &mut Receiver) -> Result<Vec<u8>, DisconnectReason> {
    let mut body = Vec::new();
    loop {
        match receive.receive().await {
            ReceiveEvent::Request { body: b, more } => {
                body.extend_from_slice(&b);
                if !more {
                    return Ok(body);
                }
            }
            ReceiveEvent::Disconnect { reason } => return Err(reason),
            _ => {}
        }
    }
}

/// Lifespan: start-up completes (or fails with `--fail-startup`), shut-down completes.
async fn lifespan(probe: &Probe, mut receive: Receiver, send: Sender) -> AppResult {
    loop {
        match receive.receive().await {
            ReceiveEvent::Startup => match &probe.fail_startup {
                Some(message) => {
                    send.send(SendEvent::StartupFailed {
                        message: message.clone(),
                    })
                    .await?;
                    return Ok(());
                }
                None => send.send(SendEvent::StartupComplete).await?,
            },
            ReceiveEvent::Shutdown => {
                send.send(SendEvent::ShutdownComplete).await?;
                return Ok(());
            }
            _ => {}
        }
    }
}

/// The probe as an [`App`](ragi::App): `GET /` gets its own small future (the benchmarks'
/// route should measure the server, not the size of the probe's biggest route).
pub struct ProbeApp(pub Arc<Probe>);

impl ragi::App for ProbeApp {
    fn call(
        &self,
        scope: Scope,
        receive: Receiver,
        send: Sender,
    ) -> ragi::BoxFuture<'static, AppResult> {
        if scope.kind == ScopeKind::Http && scope.path == "/" && !scope.headers.contains("upgrade")
        {
            return Box::pin(hello(receive, send));
        }
        Box::pin(app(self.0.clone(), scope, receive, send))
    }
}

/// `/`: read the body, answer `Hello, World!`.
async fn hello(mut receive: Receiver, send: Sender) -> AppResult {
    if read_all(&mut receive).await.is_err() {
        return Ok(());
    }
    respond(&send, 200, "text/plain", "Hello, World!").await
}

/// `sse` scopes: `/sse/{tag}?interval_ms=M&count=N` sends N events with ids 1..N, M ms apart
/// (count 0: until the client leaves), recorded in `/observed`; `&keepalive_ms=K` adds a
/// `: keepalive` comment every K ms; other paths are declined with
/// an ordinary response (`/`: Hello, World!; otherwise 404).
async fn sse(probe: &Arc<Probe>, scope: Scope, send: Sender) -> AppResult {
    let Some(tag) = scope.path.strip_prefix("/sse/").filter(|t| !t.is_empty()) else {
        let (status, body) = if scope.path == "/" {
            (200, "Hello, World!")
        } else {
            (404, "Not Found")
        };
        send.send(SendEvent::HttpResponseStart {
            status,
            headers: Headers::new().with("content-type", "text/plain"),
        })
        .await?;
        send.send(SendEvent::HttpResponseBody {
            body: Bytes::from_static(body.as_bytes()),
            more: false,
        })
        .await?;
        return Ok(());
    };
    probe.record(tag, scope.connection());
    let count: u64 = query_param(&scope, "count").unwrap_or(10);
    let interval = Duration::from_millis(query_param(&scope, "interval_ms").unwrap_or(100));
    send.send(SendEvent::SseStart {
        status: 200,
        headers: Headers::new(),
    })
    .await?;
    if let Some(ms) = query_param::<u64>(&scope, "keepalive_ms") {
        let interval = Duration::from_millis(ms);
        send.send(SendEvent::SseKeepalive {
            interval,
            comment: "keepalive".into(),
        })
        .await?;
    }
    // A reconnecting client resumes after the last id it saw.
    let mut i: u64 = scope
        .headers
        .get_str("last-event-id")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while count == 0 || i < count {
        if i > 0 && !interval.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = scope.connection().disconnected() => return Ok(()),
            }
        }
        i += 1;
        let event = ragi::SseEvent {
            data: format!("event {i}"),
            id: Some(i.to_string()),
            ..Default::default()
        };
        if send.send(SendEvent::SseSend(event)).await.is_err() {
            return Ok(());
        }
    }
    let _ = send.send(SendEvent::SseClose { reason: None }).await;
    Ok(())
}

/// The probe app.
pub async fn app(
    probe: Arc<Probe>,
    mut scope: Scope,
    mut receive: Receiver,
    send: Sender,
) -> AppResult {
    if scope.kind == ScopeKind::Lifespan {
        return lifespan(&probe, receive, send).await;
    }
    if scope.kind == ScopeKind::Sse {
        return sse(&probe, scope, send).await;
    }
    if scope.kind == ScopeKind::WebSocket {
        return websocket(&probe, scope, receive, send).await;
    }
    if scope.kind != ScopeKind::Http {
        return Err(UnsupportedScope(scope.kind).into());
    }
    let path = std::mem::take(&mut scope.path);
    let rest = path.strip_prefix('/').unwrap_or(&path);
    let (first, tag) = match rest.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    match (first, tag) {
        ("", None) => {
            if read_all(&mut receive).await.is_err() {
                return Ok(());
            }
            respond(&send, 200, "text/plain", "Hello, World!").await
        }
        ("hold", Some(tag)) => {
            probe.record(tag, scope.connection());
            scope.connection().disconnected().await;
            Ok(())
        }
        ("echo", None) => {
            send.send(SendEvent::response_start(
                200,
                Headers::new().with("content-type", "application/octet-stream"),
            ))
            .await?;
            loop {
                match receive.receive().await {
                    ReceiveEvent::Request { body, more } => {
                        if more {
                            if !body.is_empty() {
                                send.send(SendEvent::body_chunk(body)).await?;
                            }
                        } else {
                            send.send(SendEvent::body(body)).await?;
                            return Ok(());
                        }
                    }
                    ReceiveEvent::Disconnect { .. } => return Ok(()),
                    _ => {}
                }
            }
        }
        ("stream", Some(tag)) => {
            probe.record(tag, scope.connection());
            let chunks: u64 = query_param(&scope, "chunks").unwrap_or(10);
            let bytes: usize = query_param(&scope, "bytes").unwrap_or(16);
            let interval = Duration::from_millis(query_param(&scope, "interval_ms").unwrap_or(100));
            let chunk = Bytes::from(vec![b'x'; bytes]);
            send.send(SendEvent::response_start(
                200,
                Headers::new().with("content-type", "application/octet-stream"),
            ))
            .await?;
            for i in 0..chunks {
                if i > 0 && !interval.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = scope.connection().disconnected() => return Ok(()),
                    }
                }
                if send
                    .send(SendEvent::body_chunk(chunk.clone()))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            let _ = send.send(SendEvent::body(Bytes::new())).await;
            Ok(())
        }
        ("observed", Some(tag)) => {
            let wait = Duration::from_millis(query_param(&scope, "wait_ms").unwrap_or(0));
            match probe.observed(tag, wait).await {
                None => {
                    respond(
                        &send,
                        404,
                        "application/json",
                        r#"{"error": "unknown tag"}"#,
                    )
                    .await
                }
                Some(o) => {
                    let mut v = match o {
                        Some(o) => json!({
                            "tag": tag, "reason": o.reason.as_ref().map(|r| r.as_str()),
                            "after_ms": o.after_ms, "completed": o.completed,
                        }),
                        None => {
                            json!({"tag": tag, "reason": null, "after_ms": null, "completed": false})
                        }
                    };
                    if let Some((code, reason)) = probe.ws_close(tag) {
                        v["ws_code"] = json!(code);
                        v["ws_reason"] = json!(reason);
                    }
                    respond(&send, 200, "application/json", v.to_string()).await
                }
            }
        }
        ("request", None) => {
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            let headers: Vec<serde_json::Value> = scope
                .headers
                .iter()
                .map(|(n, v)| json!([text(n), text(v)]))
                .collect();
            let v = json!({
                "method": scope.method.as_str(), "path": path, "raw_path": text(&scope.raw_path),
                "query": text(&scope.query_string), "http_version": scope.http_version.as_str(),
                "host": scope.headers.get_str("host"), "headers": headers,
            });
            respond(&send, 200, "application/json", v.to_string()).await
        }
        ("panic", None) => {
            let when = query_param::<String>(&scope, "when").unwrap_or_default();
            match when.as_str() {
                "after" => {
                    send.send(SendEvent::response_start(200, Headers::new()))
                        .await?;
                    send.send(SendEvent::body_chunk("started")).await?;
                    panic!("the probe panics after its response started");
                }
                "callback" => {
                    scope.connection().on_disconnect(|_| {
                        panic!("the probe's on_disconnect callback panics");
                    });
                    scope.connection().disconnected().await;
                    Ok(())
                }
                "complete" => {
                    scope.connection().on_complete(|| {
                        panic!("the probe's on_complete callback panics");
                    });
                    respond(&send, 200, "text/plain", "complete").await
                }
                _ => panic!("the probe panics before responding"),
            }
        }
        ("connections", None) if probe.lifecycle => {
            let list: Vec<serde_json::Value> =
                probe.notices.lock().unwrap().iter().cloned().collect();
            respond(
                &send,
                200,
                "application/json",
                serde_json::Value::Array(list).to_string(),
            )
            .await
        }
        _ => respond(&send, 404, "text/plain", "Not Found").await,
    }
}

/// `websocket` scopes: `/ws/echo[/{tag}]` and `/` echo, `/ws/hold/{tag}` accepts and never
/// reads; other paths are denied with 404. See the module documentation for the options.
async fn websocket(
    probe: &Arc<Probe>,
    scope: Scope,
    mut receive: Receiver,
    send: Sender,
) -> AppResult {
    let path = scope.path.as_str();
    let flood = path.strip_prefix("/ws/flood/").filter(|t| !t.is_empty());
    let (hold, tag) = if path == "/" || path == "/ws/echo" {
        (false, query_param::<String>(&scope, "tag"))
    } else if let Some(t) = flood {
        (false, Some(t.to_owned()))
    } else if let Some(t) = path.strip_prefix("/ws/echo/").filter(|t| !t.is_empty()) {
        (false, Some(t.to_owned()))
    } else if let Some(t) = path.strip_prefix("/ws/hold/").filter(|t| !t.is_empty()) {
        (true, Some(t.to_owned()))
    } else {
        send.send(SendEvent::HttpResponseStart {
            status: 404,
            headers: Headers::new().with("content-type", "text/plain"),
        })
        .await?;
        send.send(SendEvent::HttpResponseBody {
            body: Bytes::from_static(b"Not Found"),
            more: false,
        })
        .await?;
        return Ok(());
    };
    if let Some(tag) = &tag {
        probe.record(tag, scope.connection());
    }
    // The handshake: WebSocketConnect comes first.
    match receive.receive().await {
        ReceiveEvent::WebSocketConnect => {}
        _ => return Ok(()),
    }
    if let Some(status) = query_param::<u16>(&scope, "deny") {
        send.send(SendEvent::HttpResponseStart {
            status,
            headers: Headers::new().with("content-type", "text/plain"),
        })
        .await?;
        send.send(SendEvent::HttpResponseBody {
            body: Bytes::from_static(b"denied"),
            more: false,
        })
        .await?;
        return Ok(());
    }
    if query_param::<u8>(&scope, "reject").is_some() {
        send.send(SendEvent::WebSocketClose {
            code: 1000,
            reason: String::new(),
        })
        .await?;
        return Ok(());
    }
    let subprotocol = match query_param::<String>(&scope, "subprotocol").as_deref() {
        Some("first") => scope.subprotocols.first().cloned(),
        _ => None,
    };
    send.send(SendEvent::WebSocketAccept {
        subprotocol,
        headers: Headers::new(),
    })
    .await?;
    if let Some(ms) = query_param::<u64>(&scope, "keepalive_ms") {
        let timeout = query_param::<u64>(&scope, "pong_timeout_ms").unwrap_or(ms);
        send.send(SendEvent::WebSocketKeepalive {
            interval: Duration::from_millis(ms),
            timeout: Duration::from_millis(timeout),
        })
        .await?;
    }
    if let Some(code) = query_param::<u16>(&scope, "close") {
        send.send(SendEvent::WebSocketClose {
            code,
            reason: "probe closes".to_owned(),
        })
        .await?;
    }
    if hold {
        scope.connection().disconnected().await;
    }
    if flood.is_some() {
        let size = query_param::<usize>(&scope, "size").unwrap_or(16 * 1024);
        let msg = Bytes::from(vec![b'x'; size]);
        while send
            .send(SendEvent::WebSocketSend(ragi::Message::Binary(msg.clone())))
            .await
            .is_ok()
        {}
    }
    loop {
        match receive.receive().await {
            ReceiveEvent::WebSocketReceive(m) => {
                if hold {
                    continue;
                }
                // A send error means the session ended: the next receive says how.
                let _ = send.send(SendEvent::WebSocketSend(m)).await;
            }
            ReceiveEvent::WebSocketDisconnect { code, reason } => {
                if let Some(tag) = &tag {
                    probe.set_ws_close(tag, code, reason);
                }
                return Ok(());
            }
            _ => {}
        }
    }
}
