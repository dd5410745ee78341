//! WebSocket: handshake answers, messages, closes both ways, abrupt ends, keep-alive, limits.

use std::time::Duration;

use bytes::Bytes;
use ragi::{DisconnectReason, Headers, Message, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use ragi_tools::test::{AppOutcome, TestClient, TestError, WsConnect};
use serde_json::{json, Value};

use super::support::Seen;

fn accept(subprotocol: Option<&str>) -> SendEvent {
    SendEvent::WebSocketAccept {
        subprotocol: subprotocol.map(Into::into),
        headers: Headers::new().with("x-accepted", "yes"),
    }
}

/// Accepts (the first offered subprotocol), echoes, and notes how the session ended for it.
fn echo(seen: Seen) -> impl ragi::App {
    move |scope: Scope, mut rx: Receiver, send: Sender| {
        let s = seen.clone();
        async move {
            assert_eq!(rx.receive().await, ReceiveEvent::WebSocketConnect);
            let conn = scope.connection().clone();
            let c = s.clone();
            conn.on_disconnect(move |r| c.push(format!("on_disconnect {r}")));
            let c = s.clone();
            conn.on_complete(move || c.push("on_complete"));
            s.push(format!(
                "scope {} {} {:?} {} {}",
                scope.scheme,
                scope.path,
                scope.subprotocols,
                scope.extensions.websocket_http_response,
                scope.extensions.fullflush
            ));
            send.send(accept(scope.subprotocols.first().map(String::as_str)))
                .await?;
            loop {
                match rx.receive().await {
                    ReceiveEvent::WebSocketReceive(Message::Text(t)) if t == "close-me" => {
                        send.send(SendEvent::WebSocketClose {
                            code: 4000,
                            reason: "as asked".into(),
                        })
                        .await?;
                    }
                    ReceiveEvent::WebSocketReceive(Message::Text(t)) if t == "return" => {
                        return Ok(());
                    }
                    ReceiveEvent::WebSocketReceive(Message::Text(t)) if t == "fail" => {
                        return Err("failing on purpose".into());
                    }
                    ReceiveEvent::WebSocketReceive(m) => {
                        send.send(SendEvent::WebSocketSend(m)).await?;
                    }
                    ReceiveEvent::WebSocketDisconnect { code, reason } => {
                        s.push(format!("disconnect {code} {reason:?}"));
                        let r = send
                            .send(SendEvent::WebSocketSend(Message::Text("late".into())))
                            .await;
                        s.push(format!(
                            "late send: {:?}",
                            r.err().and_then(|e| e.disconnect_reason().cloned())
                        ));
                        return Ok(());
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }
}

#[tokio::test]
async fn accept_echo_and_client_close() {
    let seen = Seen::default();
    let client = TestClient::new(echo(seen.clone()));
    let mut ws = client
        .websocket("/ws?room=1")
        .subprotocols(["chat.v2", "chat.v1"])
        .header("origin", "http://testserver")
        .connect()
        .await
        .accepted();
    assert_eq!(ws.subprotocol(), Some("chat.v2"));
    assert_eq!(ws.headers().get_str("x-accepted"), Some("yes"));
    assert_eq!(
        ws.headers().get_str("sec-websocket-protocol"),
        Some("chat.v2")
    );
    assert!(ws.connection().response_started());

    ws.send_text("hello").await.unwrap();
    assert_eq!(ws.receive_text().await.unwrap(), "hello");
    ws.send_bytes(Bytes::from_static(b"\x00\x01"))
        .await
        .unwrap();
    assert_eq!(
        ws.receive_bytes().await.unwrap(),
        Bytes::from_static(b"\x00\x01")
    );
    ws.send_json(&json!({"a": 1})).await.unwrap();
    let v: Value = ws.receive_json().await.unwrap();
    assert_eq!(v["a"], 1);
    ws.send_text("text").await.unwrap();
    assert!(matches!(
        ws.receive_bytes().await,
        Err(TestError::Unexpected(m)) if m.contains("expected a binary message")
    ));

    ws.close(1001, "going away").await;
    assert_eq!(
        ws.receive().await,
        Err(TestError::Closed {
            code: 1001,
            reason: String::new()
        })
    );
    assert_eq!(ws.close_frame(), Some((1001, "")));
    assert!(matches!(
        ws.send_text("x").await,
        Err(TestError::Closed { .. })
    ));
    assert_eq!(ws.wait_app().await, AppOutcome::Returned);
    assert_eq!(
        ws.connection().disconnect_reason(),
        Some(DisconnectReason::ClientClosed)
    );
    assert_eq!(
        seen.get(),
        vec![
            "scope ws /ws [\"chat.v2\", \"chat.v1\"] true false",
            "on_disconnect client_closed",
            "disconnect 1001 \"going away\"",
            "late send: Some(ClientClosed)",
        ]
    );
}

#[tokio::test]
async fn a_client_close_without_reason_says_client_closed() {
    let seen = Seen::default();
    let client = TestClient::new(echo(seen.clone())).https();
    let mut ws = client.websocket("/ws").connect().await.accepted();
    ws.close(1000, "").await;
    ws.wait_app().await;
    let got = seen.get();
    assert!(got[0].starts_with("scope wss /ws []"));
    assert_eq!(got[2], "disconnect 1000 \"client_closed\"");
}

#[tokio::test]
async fn the_apps_close_is_answered_and_completes_the_session() {
    let seen = Seen::default();
    let client = TestClient::new(echo(seen.clone()));
    let mut ws = client.websocket("/ws").connect().await.accepted();
    ws.send_text("close-me").await.unwrap();
    assert_eq!(
        ws.receive().await,
        Err(TestError::Closed {
            code: 4000,
            reason: "as asked".into()
        })
    );
    assert_eq!(ws.close_frame(), Some((4000, "as asked")));
    ws.wait_app().await;
    assert!(ws.connection().is_completed());
    assert_eq!(
        seen.get()[1..],
        [
            "on_complete",
            "disconnect 4000 \"\"",
            "late send: Some(ClientClosed)"
        ]
    );
    // Closing afterwards changes nothing.
    ws.close(1000, "").await;
    assert!(ws.connection().is_completed());
}

#[tokio::test]
async fn dropping_or_disconnecting_is_abrupt() {
    let seen = Seen::default();
    let client = TestClient::new(echo(seen.clone()));
    let ws = client.websocket("/ws").connect().await.accepted();
    let conn = ws.connection().clone();
    drop(ws);
    assert_eq!(
        conn.disconnect_reason(),
        Some(DisconnectReason::ClientClosed)
    );
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    assert_eq!(
        seen.get()[1..],
        [
            "on_disconnect client_closed",
            "disconnect 1006 \"client_closed\"",
            "late send: Some(ClientClosed)"
        ]
    );

    let seen = Seen::default();
    let client = TestClient::new(echo(seen.clone()));
    let mut ws = client.websocket("/ws").connect().await.accepted();
    assert!(ws.disconnect_with(DisconnectReason::ReadError));
    assert!(!ws.disconnect());
    assert_eq!(ws.close_frame(), Some((1006, "read_error")));
    ws.wait_app().await;
    assert_eq!(seen.get()[2], "disconnect 1006 \"read_error\"");
}

#[tokio::test]
async fn the_app_returning_or_failing_closes_the_session() {
    let seen = Seen::default();
    let client = TestClient::new(echo(seen.clone()));
    let mut ws = client.websocket("/ws").connect().await.accepted();
    ws.send_text("return").await.unwrap();
    assert_eq!(
        ws.receive().await,
        Err(TestError::Closed {
            code: 1000,
            reason: String::new()
        })
    );
    assert!(ws.connection().is_completed());

    let mut ws = client.websocket("/ws").connect().await.accepted();
    ws.send_text("fail").await.unwrap();
    assert_eq!(
        ws.receive().await,
        Err(TestError::Closed {
            code: 1011,
            reason: "server error".into()
        })
    );
    assert_eq!(
        ws.connection().disconnect_reason(),
        Some(DisconnectReason::ServerError)
    );
    assert_eq!(
        ws.app_outcome(),
        AppOutcome::Failed("failing on purpose".into())
    );
}

#[tokio::test(start_paused = true)]
async fn a_receive_that_gets_nothing_times_out_clearly() {
    let seen = Seen::default();
    let client = TestClient::new(echo(seen)).timeout(Duration::from_secs(3));
    let mut ws = client
        .websocket("/chat")
        .query("a", "1")
        .connect()
        .await
        .accepted();
    let err = ws.receive().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "timed out after 3s waiting for a message from the app on WebSocket /chat?a=1"
    );
}

#[tokio::test]
async fn handshake_answers_other_than_accept() {
    let app = |scope: Scope, mut rx: Receiver, send: Sender| async move {
        rx.receive().await;
        match scope.path.as_str() {
            "/deny" => {
                send.send(SendEvent::HttpResponseStart {
                    status: 401,
                    headers: Headers::new()
                        .with("www-authenticate", "Bearer")
                        .with("set-cookie", "tried=1"),
                })
                .await?;
                send.send(SendEvent::HttpResponseBody {
                    body: "who ".into(),
                    more: true,
                })
                .await?;
                send.send(SendEvent::HttpResponseBody {
                    body: "are you?".into(),
                    more: false,
                })
                .await?;
            }
            "/close" => {
                send.send(SendEvent::WebSocketClose {
                    code: 4003,
                    reason: "no".into(),
                })
                .await?;
            }
            "/error" => return Err("refusing".into()),
            "/nothing" => {}
            "/half-denial" => {
                send.send(SendEvent::HttpResponseStart {
                    status: 400,
                    headers: Headers::new(),
                })
                .await?;
            }
            _ => unreachable!(),
        }
        Ok(())
    };
    let client = TestClient::new(app);
    let WsConnect::Denied(res) = client.websocket("/deny").connect().await else {
        panic!("expected a denial")
    };
    assert_eq!(res.status(), 401);
    assert_eq!(res.text(), "who are you?");
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    assert_eq!(res.header("content-length"), Some("12"));
    assert!(res.connection().is_completed());
    assert_eq!(client.cookie("tried").as_deref(), Some("1"));

    match client.websocket("/close").connect().await {
        WsConnect::ClosedBeforeAccept {
            code,
            reason,
            response,
        } => {
            assert_eq!((code, reason.as_str()), (4003, "no"));
            assert_eq!(response.status(), 403);
            assert!(response.connection().is_completed());
        }
        other => panic!("{other:?}"),
    }

    for path in ["/error", "/nothing", "/half-denial"] {
        let c = client.websocket(path).connect().await;
        assert_eq!(c.status(), 403, "{path}");
        let WsConnect::Failed(res) = c else {
            panic!("{path}")
        };
        assert_eq!(
            res.connection().disconnect_reason(),
            Some(DisconnectReason::ServerError)
        );
        if path == "/error" {
            assert_eq!(res.app_error().as_deref(), Some("refusing"));
        }
    }
}

#[tokio::test]
async fn events_out_of_place_are_refused() {
    let seen = Seen::default();
    let s = seen.clone();
    let app = move |_scope: Scope, mut rx: Receiver, send: Sender| {
        let s = s.clone();
        async move {
            rx.receive().await;
            for ev in [
                SendEvent::WebSocketSend(Message::Text("early".into())),
                accept(Some("not-offered")),
                SendEvent::response_start(200, Headers::new()),
                SendEvent::HttpResponseStart {
                    status: 101,
                    headers: Headers::new(),
                },
                SendEvent::WebSocketAccept {
                    subprotocol: None,
                    headers: Headers::new().with("x-bad", "a\r\nb"),
                },
                accept(None),
                accept(None),
                SendEvent::WebSocketClose {
                    code: 1006,
                    reason: String::new(),
                },
                SendEvent::WebSocketKeepalive {
                    interval: Duration::ZERO,
                    timeout: Duration::ZERO,
                },
            ] {
                let name = ev.name();
                let r = send.send(ev).await;
                s.push(format!(
                    "{name}: {}",
                    r.err().map_or("ok".into(), |e| e.to_string())
                ));
            }
            Ok(())
        }
    };
    let client = TestClient::new(app);
    let ws = client.websocket("/").connect().await.accepted();
    ws.wait_app().await;
    assert_eq!(
        seen.get(),
        vec![
            "WebSocketSend: invalid event: WebSocketSend is not valid before the handshake is answered",
            "WebSocketAccept: invalid event: subprotocol \"not-offered\" was not offered by the client",
            "ResponseStart: invalid event: ResponseStart is not valid before the handshake is answered",
            "HttpResponseStart: invalid event: a denial status must be 200-999 (not 101), got 101",
            "WebSocketAccept: invalid header \"x-bad\": value holds CR, LF or NUL",
            "WebSocketAccept: ok",
            "WebSocketAccept: invalid event: WebSocketAccept is not valid on an open WebSocket",
            "WebSocketClose: invalid event: close code 1006 may not be sent (RFC 6455 §7.4)",
            "WebSocketKeepalive: ok",
        ]
    );
    assert_eq!(ws.violations().len(), 7);
    assert_eq!(ws.events().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn keepalive_pings_are_answered_until_they_are_not() {
    let seen = Seen::default();
    let s = seen.clone();
    let app = move |_scope: Scope, mut rx: Receiver, send: Sender| {
        let s = s.clone();
        async move {
            rx.receive().await;
            send.send(accept(None)).await?;
            send.send(SendEvent::WebSocketKeepalive {
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(5),
            })
            .await?;
            let t0 = tokio::time::Instant::now();
            let ev = rx.receive().await;
            s.push(format!("{ev:?} after {:?}", t0.elapsed()));
            Ok(())
        }
    };
    let client = TestClient::new(app).timeout(Duration::from_secs(60));
    let mut ws = client.websocket("/").connect().await.accepted();
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(ws.pings(), 3);
    assert!(ws.connection().is_connected());
    ws.set_auto_pong(false);
    assert_eq!(
        ws.receive().await,
        Err(TestError::Closed {
            code: 1006,
            reason: "keepalive_timeout".into()
        })
    );
    ws.wait_app().await;
    assert_eq!(
        seen.get(),
        vec!["WebSocketDisconnect { code: 1006, reason: \"keepalive_timeout\" } after 45s"]
    );
    assert_eq!(
        ws.connection().disconnect_reason(),
        Some(DisconnectReason::KeepaliveTimeout)
    );
}

#[tokio::test]
async fn a_full_receive_queue_closes_with_1008() {
    let app = |_scope: Scope, mut rx: Receiver, send: Sender| async move {
        rx.receive().await;
        send.send(accept(None)).await?;
        // Never reads again.
        std::future::pending::<()>().await;
        Ok(())
    };
    let client = TestClient::new(app).ws_max_queue(2);
    let mut ws = client.websocket("/").connect().await.accepted();
    for i in 0..3 {
        ws.send_text(format!("{i}")).await.unwrap();
    }
    assert_eq!(
        ws.receive().await,
        Err(TestError::Closed {
            code: 1008,
            reason: "receive queue overflow".into()
        })
    );
    assert_eq!(
        ws.connection().disconnect_reason(),
        Some(DisconnectReason::QueueOverflow)
    );
}

/// A client that stops reading makes the app's message sends wait; resuming lets them
/// through in order; leaving fails a waiting send with the reason.
#[tokio::test]
async fn a_stalled_client_makes_sends_wait() {
    // Sends 0, 1, 2 when told "go", reporting each send's result.
    fn app(tx: tokio::sync::mpsc::UnboundedSender<Result<u32, String>>) -> impl ragi::App {
        move |_scope: Scope, mut rx: Receiver, send: Sender| {
            let tx = tx.clone();
            async move {
                let _ = rx.receive().await;
                send.send(accept(None)).await?;
                let _ = rx.receive().await; // "go"
                for n in 0..3u32 {
                    let r = send
                        .send(SendEvent::WebSocketSend(Message::Text(n.to_string())))
                        .await;
                    let _ = tx.send(
                        r.as_ref()
                            .map(|()| n)
                            .map_err(|e| format!("{:?}", e.disconnect_reason())),
                    );
                    r?;
                }
                while !matches!(rx.receive().await, ReceiveEvent::WebSocketDisconnect { .. }) {}
                Ok(())
            }
        }
    }
    let (tx, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let client = TestClient::new(app(tx));
    let mut ws = client.websocket("/").connect().await.accepted();
    ws.stall();
    ws.send_text("go").await.unwrap();
    // Nothing goes through while the client does not read.
    let quiet = tokio::time::timeout(Duration::from_millis(100), progress.recv()).await;
    assert!(
        quiet.is_err(),
        "a send went through a stalled client: {quiet:?}"
    );
    ws.resume();
    for n in 0..3 {
        assert_eq!(progress.recv().await.unwrap(), Ok(n));
        assert_eq!(ws.receive_text().await.unwrap(), n.to_string());
    }

    // Stalled, then gone: the waiting send fails with the reason.
    let (tx, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let client = TestClient::new(app(tx));
    let mut ws = client.websocket("/").connect().await.accepted();
    ws.stall();
    ws.send_text("go").await.unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(100), progress.recv()).await;
    assert!(quiet.is_err(), "{quiet:?}");
    ws.disconnect_with(DisconnectReason::WriteTimeout);
    assert_eq!(
        progress.recv().await.unwrap(),
        Err("Some(WriteTimeout)".to_owned())
    );
}
