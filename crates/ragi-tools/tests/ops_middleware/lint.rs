//! Lint: each rule caught in its scope kind, recorded in the stash, passed on or refused
//! (strict), the departed client's rules, and a clean app found clean.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ragi::{
    DisconnectReason, Headers, Message, ReceiveEvent, Receiver, Scope, SendEvent, Sender, SseEvent,
};
use ragi_tools::middleware::lint::{Lint, LintViolation, Rule};
use ragi_tools::prelude::*;
use ragi_tools::test::TestClient;

/// Runs `app` under the lint and returns the rules it broke.
#[derive(Clone, Default)]
struct Found(Arc<Mutex<Vec<LintViolation>>>);

impl Found {
    fn rules(&self) -> Vec<Rule> {
        self.0.lock().unwrap().iter().map(|v| v.rule).collect()
    }
    fn layer(&self) -> Lint {
        let me = self.clone();
        Lint::new().on_violation(move |_scope, v| me.0.lock().unwrap().push(v.clone()))
    }
}

/// Sends `events` in order, ignoring refusals, then returns.
fn sends(events: Vec<SendEvent>) -> impl ragi::App {
    move |_s: Scope, mut rx: Receiver, send: Sender| {
        let events = events.clone();
        async move {
            if _s.kind == ragi::ScopeKind::WebSocket {
                let _ = rx.receive().await;
            }
            for e in events {
                let _ = send.send(e).await;
            }
            Ok(())
        }
    }
}

/// `app`, reporting on `tx` once its call (the lint's end check included) returned.
fn signalled(app: SharedApp, tx: tokio::sync::mpsc::UnboundedSender<()>) -> impl ragi::App {
    move |s: Scope, r: Receiver, t: Sender| {
        let (app, tx) = (app.clone(), tx.clone());
        async move {
            let res = app.call(s, r, t).await;
            let _ = tx.send(());
            res
        }
    }
}

fn start() -> SendEvent {
    SendEvent::response_start(200, Headers::new())
}

async fn http_rules(events: Vec<SendEvent>) -> Vec<Rule> {
    let found = Found::default();
    let res = TestClient::new(sends(events).layer(found.layer()))
        .get("/")
        .send()
        .await;
    res.wait_app().await;
    found.rules()
}

#[tokio::test]
async fn http_rules_each() {
    assert_eq!(
        http_rules(vec![start(), SendEvent::body("x")]).await,
        vec![]
    );
    assert_eq!(
        http_rules(vec![start(), start(), SendEvent::body("")]).await,
        vec![Rule::SecondStart]
    );
    assert_eq!(
        http_rules(vec![SendEvent::body("x"), start(), SendEvent::body("")]).await,
        vec![Rule::BodyBeforeStart]
    );
    assert_eq!(
        http_rules(vec![start(), SendEvent::body("x"), SendEvent::body("y")]).await,
        vec![Rule::BodyAfterEnd]
    );
    assert_eq!(
        http_rules(vec![
            start(),
            SendEvent::body_chunk("x"),
            SendEvent::ResponseTrailers {
                headers: Headers::new()
            }
        ])
        .await,
        vec![Rule::TrailersNotAnnounced]
    );
    assert_eq!(
        http_rules(vec![
            SendEvent::response_start(200, Headers::new().with("content-length", "5")),
            SendEvent::body("abc")
        ])
        .await,
        vec![Rule::ContentLength]
    );
    assert_eq!(
        http_rules(vec![
            SendEvent::response_start(200, Headers::new().with("content-length", "2")),
            SendEvent::body("abc")
        ])
        .await,
        vec![Rule::ContentLength]
    );
    assert_eq!(
        http_rules(vec![SendEvent::response_start(103, Headers::new())]).await[0],
        Rule::InvalidStatus
    );
    assert_eq!(
        http_rules(vec![
            SendEvent::response_start(200, Headers::new().with("x-bad", "a\r\nb")),
            SendEvent::body("")
        ])
        .await[0],
        Rule::InvalidHeader
    );
    assert_eq!(
        http_rules(vec![
            SendEvent::SseSend(SseEvent::default()),
            start(),
            SendEvent::body("")
        ])
        .await,
        vec![Rule::WrongScopeKind]
    );
    assert_eq!(http_rules(vec![]).await, vec![Rule::MissingResponse]);
    assert_eq!(
        http_rules(vec![start(), SendEvent::body_chunk("x")]).await,
        vec![Rule::UnfinishedResponse]
    );
}

#[tokio::test]
async fn websocket_rules() {
    let accept = || SendEvent::WebSocketAccept {
        subprotocol: None,
        headers: Headers::new(),
    };
    let text = || SendEvent::WebSocketSend(Message::Text("x".into()));
    let rules = |events: Vec<SendEvent>| async move {
        let found = Found::default();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let c = TestClient::new(signalled(sends(events).layer(found.layer()), tx));
        let _session = c.websocket("/ws").subprotocols(["chat"]).connect().await;
        super::support::next(&mut rx).await;
        found.rules()
    };
    assert_eq!(
        rules(vec![text(), accept()]).await,
        vec![Rule::BeforeAccept]
    );
    assert_eq!(
        rules(vec![accept(), accept()]).await,
        vec![Rule::SecondStart]
    );
    assert_eq!(
        rules(vec![
            accept(),
            SendEvent::WebSocketClose {
                code: 1006,
                reason: String::new()
            }
        ])
        .await,
        vec![Rule::InvalidCloseCode]
    );
    assert_eq!(
        rules(vec![
            accept(),
            SendEvent::WebSocketClose {
                code: 1000,
                reason: String::new()
            },
            text()
        ])
        .await,
        vec![Rule::EventAfterClose]
    );
    assert_eq!(
        rules(vec![SendEvent::WebSocketAccept {
            subprotocol: Some("graphql".into()),
            headers: Headers::new()
        }])
        .await,
        vec![Rule::InvalidSubprotocol]
    );
    assert_eq!(
        rules(vec![SendEvent::ResponseStart {
            status: 200,
            headers: Headers::new(),
            trailers: false
        }])
        .await[0],
        Rule::WrongScopeKind
    );
    assert_eq!(rules(vec![]).await, vec![Rule::MissingResponse]);
}

#[tokio::test]
async fn sse_rules() {
    let rules = |events: Vec<SendEvent>| async move {
        let found = Found::default();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let c = TestClient::new(signalled(sends(events).layer(found.layer()), tx));
        let _stream = c.sse("/e").connect().await;
        super::support::next(&mut rx).await;
        found.rules()
    };
    let sse_start = || SendEvent::SseStart {
        status: 200,
        headers: Headers::new(),
    };
    let ev = |e: Option<&str>| {
        SendEvent::SseSend(SseEvent {
            event: e.map(str::to_owned),
            data: "d".into(),
            ..SseEvent::default()
        })
    };
    assert_eq!(
        rules(vec![
            sse_start(),
            ev(None),
            SendEvent::SseClose { reason: None }
        ])
        .await,
        vec![]
    );
    assert_eq!(rules(vec![ev(None)]).await[0], Rule::BodyBeforeStart);
    assert_eq!(
        rules(vec![sse_start(), sse_start()]).await,
        vec![Rule::SecondStart]
    );
    assert_eq!(
        rules(vec![
            sse_start(),
            SendEvent::SseClose { reason: None },
            ev(None)
        ])
        .await,
        vec![Rule::EventAfterClose]
    );
    assert_eq!(
        rules(vec![sse_start(), ev(Some("a\nb"))]).await,
        vec![Rule::InvalidSseField]
    );
    assert_eq!(
        rules(vec![sse_start(), SendEvent::body("x")]).await,
        vec![Rule::WrongScopeKind]
    );
}

#[tokio::test]
async fn strict_mode_refuses_the_event() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let app = move |_s: Scope, _rx: Receiver, send: Sender| {
        let seen = s2.clone();
        async move {
            send.send(start()).await?;
            let second = send.send(start()).await;
            seen.lock()
                .unwrap()
                .push(format!("{:?}", second.map_err(|e| e.is_invalid_event())));
            send.send(SendEvent::body("ok")).await?;
            Ok(())
        }
    };
    let res = TestClient::new(app.layer(Lint::new().strict(true)))
        .get("/")
        .send()
        .await;
    assert_eq!(res.text(), "ok");
    assert_eq!(seen.lock().unwrap().clone(), vec!["Err(true)"]);
    assert!(
        res.violations().is_empty(),
        "the server never saw the second start"
    );
}

#[tokio::test]
async fn the_departed_client_rules() {
    let found = Found::default();
    let app = |scope: Scope, mut rx: Receiver, send: Sender| async move {
        let _ = scope.connection().disconnected().await;
        let _ = send
            .send(SendEvent::response_start(200, Headers::new()))
            .await; // fails
        let _ = send
            .send(SendEvent::body_chunk(Bytes::from_static(b"x")))
            .await; // ignored it
        let mut disconnects = 0;
        while disconnects < 20 {
            match rx.receive().await {
                ReceiveEvent::Disconnect { .. } => disconnects += 1,
                ReceiveEvent::Request { more: false, .. } => {} // the empty body comes first
                other => panic!("{other:?}"),
            }
        }
        Ok(())
    };
    let c = TestClient::new(app.layer(found.layer()));
    let req = c.get("/");
    let leave = req.disconnect_handle();
    let pending = tokio::spawn(req.send());
    leave.disconnect(DisconnectReason::ClientClosed);
    let res = pending.await.unwrap();
    res.wait_app().await;
    assert_eq!(
        found.rules(),
        vec![Rule::IgnoredDisconnect, Rule::ReceiveAfterDisconnect],
        "and no MissingResponse: nothing was owed to a client that left"
    );
}

#[tokio::test]
async fn a_clean_toolkit_app_is_clean() {
    async fn hello(_cx: HttpContext) -> Json<serde_json::Value> {
        Json(serde_json::json!({ "ok": true }))
    }
    let found = Found::default();
    let app = Router::new().get("/", hello).layer(found.layer());
    let c = TestClient::new(app);
    c.get("/").send().await;
    c.head("/").send().await;
    c.get("/missing").send().await;
    c.post("/").send().await;
    assert_eq!(found.rules(), vec![]);
}
