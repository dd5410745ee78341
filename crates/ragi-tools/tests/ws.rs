//! The WebSocket helpers' rules, in-process: every event the app sends, every error it sees.

mod support;

use std::time::Duration;

use ragi::{DisconnectReason, Headers, Message, ReceiveEvent, ScopeKind, SendEvent};
use ragi_tools::ws::{self, CloseInfo};
use ragi_tools::{Context, Error, ErrorKind, Response, WsContext, WsEndpoint};
use support::session::{scope, Session};
use support::within;
use tokio::sync::mpsc;

fn ws_scope(protocols: &[&str]) -> ragi::Scope {
    let mut s = scope(ScopeKind::WebSocket, "/ws");
    s.subprotocols = protocols.iter().map(|p| p.to_string()).collect();
    s
}

fn text(t: &str) -> ReceiveEvent {
    ReceiveEvent::WebSocketReceive(Message::Text(t.into()))
}

#[tokio::test]
async fn accept_with_a_subprotocol_and_headers() {
    let app = ws::handler(|mut cx: WsContext| async move {
        assert_eq!(cx.subprotocols(), ["a", "b"]);
        cx.accept_with(Some("b".into()), Headers::new().with("x-hi", "1"))
            .await?;
        assert!(cx.is_accepted() && cx.is_open());
        cx.close().await
    });
    let mut s = Session::start(app, ws_scope(&["a", "b"]));
    match s.next().await {
        SendEvent::WebSocketAccept {
            subprotocol,
            headers,
        } => {
            assert_eq!(subprotocol.as_deref(), Some("b"));
            assert_eq!(headers.get_str("x-hi"), Some("1"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.next().await,
        SendEvent::WebSocketClose {
            code: 1000,
            reason: String::new()
        }
    );
    s.result().await.unwrap();
}

#[tokio::test]
async fn a_subprotocol_the_client_did_not_offer_is_refused_before_anything_is_sent() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = ws::handler(move |mut cx: WsContext| {
        let tx = tx.clone();
        async move {
            let e = cx.accept_subprotocol("c").await.unwrap_err();
            tx.send(e.to_string()).unwrap();
            Err(e)
        }
    });
    let mut s = Session::start(app, ws_scope(&["a"]));
    assert!(rx.recv().await.unwrap().contains("not offered"));
    // The handler's 500 denies the handshake.
    assert!(matches!(
        s.next().await,
        SendEvent::HttpResponseStart { status: 500, .. }
    ));
}

#[tokio::test]
async fn deny_with_any_status_headers_and_body() {
    let app = ws::handler(|mut cx: WsContext| async move {
        cx.deny(
            Response::text("go away")
                .with_status(429)
                .header("retry-after", "7"),
        )
        .await?;
        // Once denied, nothing else goes.
        assert!(cx.accept().await.is_err());
        assert!(cx.send_text("x").await.is_err());
        Ok(())
    });
    let (events, r) = Session::start(app, ws_scope(&[])).finish().await;
    r.unwrap();
    match &events[..] {
        [SendEvent::HttpResponseStart { status, headers }, SendEvent::HttpResponseBody { body, more: false }] =>
        {
            assert_eq!(*status, 429);
            assert_eq!(headers.get_str("retry-after"), Some("7"));
            assert_eq!(&body[..], b"go away");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_error_before_accept_is_the_denial() {
    let app = ws::handler(|_cx: WsContext| async move {
        Err(Error::new(401, "log in first").with_header("www-authenticate", "Bearer"))
    });
    let (events, r) = Session::start(app, ws_scope(&[])).finish().await;
    r.unwrap();
    match &events[..] {
        [SendEvent::HttpResponseStart { status, headers }, SendEvent::HttpResponseBody { body, .. }] =>
        {
            assert_eq!(*status, 401);
            assert_eq!(headers.get_str("www-authenticate"), Some("Bearer"));
            assert_eq!(&body[..], br#"{"error":"log in first"}"#);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn returning_without_an_answer_denies_with_403() {
    let app = ws::handler(|_cx: WsContext| async move { Ok(()) });
    let (events, r) = Session::start(app, ws_scope(&[])).finish().await;
    r.unwrap();
    assert!(matches!(
        events[0],
        SendEvent::HttpResponseStart { status: 403, .. }
    ));
}

#[tokio::test]
async fn without_the_denial_extension_a_denial_is_a_close_before_accept() {
    let app = ws::handler(|mut cx: WsContext| async move { cx.deny((401, "no")).await });
    let mut sc = ws_scope(&[]);
    sc.extensions.websocket_http_response = false;
    let (events, r) = Session::start(app, sc).finish().await;
    r.unwrap();
    assert_eq!(
        events,
        [SendEvent::WebSocketClose {
            code: 1000,
            reason: String::new()
        }]
    );
}

#[tokio::test]
async fn messages_both_ways_and_the_json_conveniences() {
    let app = ws::handler(|mut cx: WsContext| async move {
        cx.accept().await?;
        let t = cx.receive_text().await?;
        cx.send_text(format!("text {t}")).await?;
        let b = cx.receive_bytes().await?;
        cx.send_bytes(b).await?;
        let v: serde_json::Value = cx.receive_json().await?;
        cx.send_json(&serde_json::json!({ "got": v })).await?;
        // The stream of messages, until the session ends.
        let mut n = 0;
        {
            use futures_util::StreamExt;
            let mut messages = cx.messages();
            while let Some(m) = messages.next().await {
                n += 1;
                assert_eq!(m, Message::Text(format!("m{n}")));
            }
        }
        cx.send_text(format!("{n} more")).await
    });
    let mut s = Session::start(app, ws_scope(&[]));
    assert!(matches!(s.next().await, SendEvent::WebSocketAccept { .. }));
    s.push(text("hi"));
    assert_eq!(
        s.next().await,
        SendEvent::WebSocketSend(Message::Text("text hi".into()))
    );
    s.push(ReceiveEvent::WebSocketReceive(Message::Binary(
        bytes::Bytes::from_static(b"\x00\xff"),
    )));
    assert_eq!(
        s.next().await,
        SendEvent::WebSocketSend(Message::Binary(bytes::Bytes::from_static(b"\x00\xff")))
    );
    s.push(ReceiveEvent::WebSocketReceive(Message::Binary(
        bytes::Bytes::from_static(br#"[1,2]"#),
    )));
    assert_eq!(
        s.next().await,
        SendEvent::WebSocketSend(Message::Text(r#"{"got":[1,2]}"#.into()))
    );
    s.push(text("m1"));
    s.push(text("m2"));
    s.client_close(1000, "");
    // The session ended: the last send fails with the reason, the handler returns it, and
    // the adapter treats the departure as the normal end.
    let (events, r) = s.finish().await;
    r.unwrap();
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test]
async fn wrong_messages_close_the_session_with_a_code_for_them() {
    for (msg, code, kind) in [
        (
            ReceiveEvent::WebSocketReceive(Message::Binary(bytes::Bytes::from_static(b"x"))),
            1003,
            ErrorKind::UnsupportedMediaType,
        ),
        (text("{nope"), 1008, ErrorKind::MalformedBody),
        (text(r#""a string""#), 1008, ErrorKind::UnprocessableBody),
    ] {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let app = ws::handler(move |mut cx: WsContext| {
            let tx = tx.clone();
            async move {
                cx.accept().await?;
                let r = if code == 1003 {
                    cx.receive_text().await.map(|_| ())
                } else {
                    cx.receive_json::<Vec<u8>>().await.map(|_| ())
                };
                if let Err(e) = &r {
                    tx.send(e.kind()).unwrap();
                }
                r
            }
        });
        let mut s = Session::start(app, ws_scope(&[]));
        s.next().await;
        s.push(msg);
        match s.next().await {
            SendEvent::WebSocketClose { code: got, reason } => {
                assert_eq!(got, code, "{reason}");
                assert!(!reason.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(rx.recv().await.unwrap(), kind);
        s.result().await.unwrap();
    }
}

#[tokio::test]
async fn keepalive_and_close_with_code_and_reason() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = ws::handler(move |mut cx: WsContext| {
        let tx = tx.clone();
        async move {
            assert!(cx
                .keepalive(Duration::from_secs(1), Duration::from_secs(1))
                .await
                .is_err());
            cx.accept().await?;
            cx.keepalive(Duration::from_secs(20), Duration::from_secs(5))
                .await?;
            assert!(cx.close_with(1005, "").await.is_err(), "1005 is never sent");
            assert!(cx.close_with(4000, &"x".repeat(124)).await.is_err());
            cx.close_with(4000, "done").await?;
            cx.close_with(4000, "twice").await?; // idempotent: nothing more is sent
            let e = cx.send_text("late").await.unwrap_err();
            tx.send(e.to_string()).unwrap();
            let end = cx.wait_closed().await;
            let e = cx.send_text("later").await.unwrap_err();
            tx.send(format!("{end:?} {:?}", e.disconnect_reason()))
                .unwrap();
            Ok(())
        }
    });
    let mut s = Session::start(app, ws_scope(&[]));
    s.next().await;
    assert_eq!(
        s.next().await,
        SendEvent::WebSocketKeepalive {
            interval: Duration::from_secs(20),
            timeout: Duration::from_secs(5)
        }
    );
    assert_eq!(
        s.next().await,
        SendEvent::WebSocketClose {
            code: 4000,
            reason: "done".into()
        }
    );
    assert!(rx.recv().await.unwrap().contains("after the app closed"));
    s.answer_close(4000, "done");
    assert_eq!(
        rx.recv().await.unwrap(),
        r#"CloseInfo { code: 4000, reason: "done" } Some(ClientClosed)"#
    );
    let (events, r) = s.finish().await;
    r.unwrap();
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test]
async fn the_disconnect_code_and_reason_and_sends_after_the_end() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = ws::handler(move |mut cx: WsContext| {
        let tx = tx.clone();
        async move {
            cx.accept().await?;
            let sender = cx.sender();
            assert!(cx.receive().await.is_none());
            let info = cx.close_info().unwrap();
            let e = cx.send_text("x").await.unwrap_err();
            let e2 = sender.send_text("y").await.unwrap_err();
            let source = e.source().unwrap().downcast_ref::<CloseInfo>().cloned();
            tx.send((
                info,
                e.disconnect_reason().cloned(),
                e2.is_disconnected(),
                source,
            ))
            .unwrap();
            Err(e)
        }
    });
    let mut s = Session::start(app, ws_scope(&[]));
    s.next().await;
    s.leave(DisconnectReason::KeepaliveTimeout);
    let (info, reason, other_handle, source) = rx.recv().await.unwrap();
    assert_eq!(
        info,
        CloseInfo {
            code: 1006,
            reason: "keepalive_timeout".into()
        }
    );
    assert_eq!(reason, Some(DisconnectReason::KeepaliveTimeout));
    assert!(other_handle);
    assert_eq!(source, Some(info));
    // The departure is the normal end: the app returns Ok and sends nothing.
    let (events, r) = s.finish().await;
    r.unwrap();
    assert!(events.is_empty());
}

#[tokio::test]
async fn a_send_fails_at_once_when_the_connection_object_says_the_client_left() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = ws::handler(move |mut cx: WsContext| {
        let tx = tx.clone();
        async move {
            cx.accept().await?;
            // The disconnect event is queued but not read: the object already knows.
            tx.send(()).unwrap();
            let _ = cx.connection().disconnected().await;
            let e = cx.send_text("x").await.unwrap_err();
            assert_eq!(e.disconnect_reason(), Some(&DisconnectReason::WriteError));
            assert!(!cx.is_open());
            Ok(())
        }
    });
    let mut s = Session::start(app, ws_scope(&[]));
    s.next().await;
    rx.recv().await.unwrap();
    s.leave(DisconnectReason::WriteError);
    s.result().await.unwrap();
}

#[tokio::test]
async fn the_adapter_closes_an_open_session_and_fails_on_a_5xx() {
    let app = ws::handler(|mut cx: WsContext| async move { cx.accept().await });
    let (events, r) = Session::start(app, ws_scope(&[])).finish().await;
    r.unwrap();
    assert_eq!(
        events[1],
        SendEvent::WebSocketClose {
            code: 1000,
            reason: String::new()
        }
    );

    let app = ws::handler(|mut cx: WsContext| async move {
        cx.accept().await?;
        Err(Error::internal("database down"))
    });
    let (events, r) = Session::start(app, ws_scope(&[])).finish().await;
    assert!(r.is_err(), "the server closes with 1011, server_error");
    assert_eq!(events.len(), 1, "{events:?}");
}

#[tokio::test]
async fn other_scopes_get_426_or_are_declined() {
    let app = || ws::handler(|mut cx: WsContext| async move { cx.accept().await });
    let mut s = Session::start(app(), scope(ScopeKind::Http, "/ws"));
    match s.next().await {
        SendEvent::ResponseStart {
            status, headers, ..
        } => {
            assert_eq!(status, 426);
            assert_eq!(headers.get_str("upgrade"), Some("websocket"));
        }
        other => panic!("{other:?}"),
    }
    let mut s = Session::start(app(), scope(ScopeKind::Sse, "/ws"));
    assert!(matches!(
        s.next().await,
        SendEvent::HttpResponseStart { status: 426, .. }
    ));
    let (events, r) = Session::start(app(), scope(ScopeKind::Lifespan, "/"))
        .finish()
        .await;
    assert!(r.unwrap_err().is::<ragi::UnsupportedScope>());
    assert!(events.is_empty());
}

#[tokio::test]
async fn a_sender_handle_sends_from_another_task() {
    let app = ws::handler(|mut cx: WsContext| async move {
        cx.accept().await?;
        let tx = cx.sender();
        let pusher = tokio::spawn(async move {
            for i in 0..3 {
                tx.send_json(&i).await?;
            }
            Ok::<_, Error>(())
        });
        pusher.await.unwrap()?;
        cx.wait_closed().await;
        Ok(())
    });
    let mut s = Session::start(app, ws_scope(&[]));
    s.next().await;
    for i in 0..3 {
        assert_eq!(
            s.next().await,
            SendEvent::WebSocketSend(Message::Text(i.to_string()))
        );
    }
    s.client_close(1001, "going away");
    s.result().await.unwrap();
}

// ----- endpoints --------------------------------------------------------------------------

struct Echo {
    log: mpsc::UnboundedSender<String>,
}

impl WsEndpoint for Echo {
    async fn on_connect(&self, cx: &mut WsContext) -> Result<(), Error> {
        if cx.subprotocols().iter().any(|p| p == "deny") {
            return cx.deny((403, "denied")).await;
        }
        cx.accept().await
    }

    async fn on_message(&self, cx: &mut WsContext, message: Message) -> Result<(), Error> {
        match &message {
            Message::Text(t) if t == "bad" => Err(Error::bad_request("bad message")),
            Message::Text(t) if t == "boom" => Err(Error::internal("boom")),
            _ => cx.send(message).await,
        }
    }

    async fn on_disconnect(&self, _cx: &mut WsContext, code: u16, reason: &str) {
        self.log.send(format!("{code} {reason}")).unwrap();
    }
}

#[tokio::test]
async fn an_endpoint_dispatches_connect_messages_and_disconnect() {
    let (tx, mut log) = mpsc::unbounded_channel();
    let app = ws::endpoint(Echo { log: tx });

    let mut s = Session::start(app.clone(), ws_scope(&[]));
    assert!(matches!(s.next().await, SendEvent::WebSocketAccept { .. }));
    s.push(text("one"));
    assert_eq!(
        s.next().await,
        SendEvent::WebSocketSend(Message::Text("one".into()))
    );
    s.client_close(4001, "bye");
    s.result().await.unwrap();
    assert_eq!(
        within("on_disconnect", log.recv()).await.unwrap(),
        "4001 bye"
    );

    // Denied in on_connect: no on_disconnect.
    let (events, r) = Session::start(app.clone(), ws_scope(&["deny"]))
        .finish()
        .await;
    r.unwrap();
    assert!(matches!(
        events[0],
        SendEvent::HttpResponseStart { status: 403, .. }
    ));

    // A client error from on_message closes with 1008; on_disconnect gets the end.
    let mut s = Session::start(app.clone(), ws_scope(&[]));
    s.next().await;
    s.push(text("bad"));
    s.push(text("ignored after the close"));
    assert_eq!(
        s.next().await,
        SendEvent::WebSocketClose {
            code: 1008,
            reason: "bad message".into()
        }
    );
    s.answer_close(1008, "bad message");
    let (events, r) = s.finish().await;
    r.unwrap();
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(log.recv().await.unwrap(), "1008 bad message");

    // A server error: on_disconnect hears what the server sends (1011), the app fails.
    let mut s = Session::start(app, ws_scope(&[]));
    s.next().await;
    s.push(text("boom"));
    assert!(s.result().await.is_err());
    assert_eq!(log.recv().await.unwrap(), "1011 server_error");
}
