//! Disconnect scripting: every point, any reason, and the spec's §3 order.

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ragi::{
    Connection, DisconnectReason, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender,
    SseEvent,
};
use ragi_tools::test::{AppOutcome, Disconnect, TestClient};

use super::support::Seen;

/// Registers what the spec's §3 order lets an app observe: two callbacks (in order) that note
/// whether the object already says "gone" and whether `disconnected()` is already resolved,
/// and a task that awaits `disconnected()`.
fn watch(conn: &Connection, seen: &Seen) {
    for i in 0..2 {
        let c = conn.clone();
        let s = seen.clone();
        conn.on_disconnect(move |r| {
            let fut = c.disconnected();
            let mut fut = std::pin::pin!(fut);
            let ready = matches!(
                fut.as_mut().poll(&mut Context::from_waker(Waker::noop())),
                Poll::Ready(_)
            );
            s.push(format!(
                "callback {i}: {r} connected={} reason={:?} future_ready={ready}",
                c.is_connected(),
                c.disconnect_reason().map(|r| r.to_string())
            ));
        });
    }
    let c = conn.clone();
    let s = seen.clone();
    conn.on_complete(move || s.push("complete"));
    let s = seen.clone();
    tokio::spawn(async move {
        let r = c.disconnected().await;
        s.push(format!("future: {r}"));
    });
}

/// Reads the body piece by piece, noting each piece and the connection's state, then answers
/// (noting what `send` said), then waits for one more event.
fn reader(seen: Seen) -> impl ragi::App {
    move |scope: Scope, mut rx: Receiver, send: Sender| {
        let s = seen.clone();
        async move {
            let conn = scope.connection().clone();
            watch(&conn, &s);
            loop {
                match rx.receive().await {
                    ReceiveEvent::Request { body, more } => {
                        s.push(format!(
                            "piece {:?} more={more} connected={}",
                            String::from_utf8_lossy(&body),
                            conn.is_connected()
                        ));
                        if !more {
                            break;
                        }
                    }
                    ReceiveEvent::Disconnect { reason } => {
                        s.push(format!("receive: disconnect {reason}"));
                        // Repeated on every later call.
                        let again = rx.receive().await;
                        s.push(format!("again: {again:?}"));
                        break;
                    }
                    other => panic!("{other:?}"),
                }
            }
            let r = send
                .send(SendEvent::response_start(200, Headers::new()))
                .await;
            let r2 = send.send(SendEvent::body("done")).await;
            s.push(format!(
                "send: {:?} {:?}",
                r.err().map(|e| e.disconnect_reason().cloned()),
                r2.err().map(|e| e.disconnect_reason().cloned())
            ));
            Ok(())
        }
    }
}

/// The lines but the `disconnected()` task's, whose place depends on the scheduler; asserts
/// that it ran with `reason`.
fn settled(seen: &Seen, reason: &str) -> Vec<String> {
    let got = seen.get();
    assert!(
        got.contains(&format!("future: {reason}")),
        "the disconnected() waiter saw {reason}: {got:?}"
    );
    got.into_iter()
        .filter(|l| !l.starts_with("future:"))
        .collect()
}

/// The §3 lines a client that left with `reason` produces, in order (the future's task runs
/// once the disconnecting code yields, so its line is checked apart).
fn gone_lines(reason: &str) -> Vec<String> {
    (0..2)
        .map(|i| {
            format!(
                "callback {i}: {reason} connected=false reason=Some({reason:?}) future_ready=true"
            )
        })
        .collect()
}

#[tokio::test]
async fn before_body_ends_the_request_before_any_body_byte() {
    let seen = Seen::default();
    let client = TestClient::new(reader(seen.clone()));
    let res = client
        .post("/up")
        .body("0123456789")
        .disconnect(Disconnect::BeforeBody, DisconnectReason::ClientClosed)
        .send()
        .await;
    assert_eq!(res.status(), 0, "no head reached the client");
    assert_eq!(res.client_left(), Some(DisconnectReason::ClientClosed));
    assert_eq!(res.wait_app().await, AppOutcome::Returned);
    let got = settled(&seen, "client_closed");
    let mut want = gone_lines("client_closed");
    want.extend([
        "receive: disconnect client_closed".to_owned(),
        "again: Disconnect { reason: ClientClosed }".to_owned(),
        "send: Some(Some(ClientClosed)) Some(Some(ClientClosed))".to_owned(),
    ]);
    assert_eq!(got, want);
}

#[tokio::test]
async fn before_body_on_a_request_without_body_still_delivers_its_end() {
    let seen = Seen::default();
    let s = seen.clone();
    let app = move |scope: Scope, mut rx: Receiver, _send: Sender| {
        let s = s.clone();
        async move {
            s.push(format!(
                "connected at start: {}",
                scope.connection().is_connected()
            ));
            s.push(format!("{:?}", rx.receive().await));
            s.push(format!("{:?}", rx.receive().await));
            Ok(())
        }
    };
    let client = TestClient::new(app);
    let res = client
        .get("/")
        .disconnect(Disconnect::BeforeBody, DisconnectReason::ReadError)
        .send()
        .await;
    res.wait_app().await;
    assert_eq!(
        seen.get(),
        vec![
            "connected at start: false",
            "Request { body: b\"\", more: false }",
            "Disconnect { reason: ReadError }",
        ]
    );
}

#[tokio::test]
async fn mid_body_sends_n_bytes_and_leaves_once_the_app_took_them() {
    let seen = Seen::default();
    let client = TestClient::new(reader(seen.clone()));
    let res = client
        .post("/up")
        .chunks(["abc", "defgh", "ij"])
        .disconnect(Disconnect::MidBody(5), DisconnectReason::ClientTimeout)
        .send()
        .await;
    assert_eq!(res.client_left(), Some(DisconnectReason::ClientTimeout));
    res.wait_app().await;
    let got = settled(&seen, "client_timeout");
    assert_eq!(got[0], "piece \"abc\" more=true connected=true");
    // The piece that reaches the 5th byte is cut there; the client leaves as the app takes it.
    assert_eq!(got[1..3], gone_lines("client_timeout")[..]);
    assert_eq!(got[3], "piece \"de\" more=true connected=false");
    assert!(got.contains(&"receive: disconnect client_timeout".to_owned()));
    assert_eq!(
        got.last().unwrap(),
        "send: Some(Some(ClientTimeout)) Some(Some(ClientTimeout))"
    );
    assert!(!got.iter().any(|l| l == "complete"));
}

#[tokio::test]
async fn mid_body_beyond_the_body_leaves_after_all_of_it_without_its_end() {
    let seen = Seen::default();
    let client = TestClient::new(reader(seen.clone()));
    let res = client
        .post("/up")
        .body("0123")
        .disconnect(Disconnect::MidBody(100), DisconnectReason::ClientClosed)
        .send()
        .await;
    res.wait_app().await;
    let got = settled(&seen, "client_closed");
    assert_eq!(got[2], "piece \"0123\" more=true connected=false");
    assert_eq!(got[3], "receive: disconnect client_closed");
}

#[tokio::test]
async fn after_response_start_fails_the_next_send() {
    let seen = Seen::default();
    let client = TestClient::new(reader(seen.clone()));
    let res = client
        .get("/")
        .disconnect(Disconnect::AfterResponseStart, DisconnectReason::WriteError)
        .send()
        .await;
    // The server holds the head until the first body piece: the client saw none.
    assert_eq!(res.status(), 0);
    assert_eq!(res.client_left(), Some(DisconnectReason::WriteError));
    res.wait_app().await;
    let got = settled(&seen, "write_error");
    assert_eq!(got.last().unwrap(), "send: None Some(Some(WriteError))");
    assert_eq!(res.events().len(), 1, "only the start was accepted");
    assert_eq!(res.send_log().len(), 2);
    assert!(
        res.violations().is_empty(),
        "a refusal for a gone client is no violation"
    );
}

#[tokio::test]
async fn after_bytes_leaves_once_n_body_bytes_arrived() {
    let seen = Seen::default();
    let s = seen.clone();
    let app = move |scope: Scope, _rx: Receiver, send: Sender| {
        let s = s.clone();
        async move {
            watch(scope.connection(), &s);
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            for i in 0..4 {
                let r = send.send(SendEvent::body_chunk("abcd")).await;
                s.push(format!("chunk {i}: {:?}", r.err().map(|e| e.to_string())));
            }
            Ok(())
        }
    };
    let client = TestClient::new(app);
    let res = client
        .get("/")
        .disconnect(Disconnect::AfterBytes(6), DisconnectReason::ClientClosed)
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text(), "abcdabcd");
    assert_eq!(res.client_left(), Some(DisconnectReason::ClientClosed));
    res.wait_app().await;
    let got = settled(&seen, "client_closed");
    assert_eq!(got[0], "chunk 0: None");
    assert_eq!(got[1..3], gone_lines("client_closed")[..]);
    assert_eq!(got[3], "chunk 1: None");
    assert_eq!(
        got[4],
        "chunk 2: Some(\"the client is gone (client_closed)\")"
    );
}

#[tokio::test(start_paused = true)]
async fn after_a_delay_on_the_paused_clock() {
    let seen = Seen::default();
    let s = seen.clone();
    let app = move |scope: Scope, _rx: Receiver, send: Sender| {
        let s = s.clone();
        async move {
            let t0 = tokio::time::Instant::now();
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            send.send(SendEvent::FullFlush).await?;
            let r = scope.connection().disconnected().await;
            s.push(format!("{r} after {:?}", t0.elapsed()));
            Ok(())
        }
    };
    let client = TestClient::new(app);
    let res = client
        .get("/")
        .disconnect(
            Disconnect::After(Duration::from_secs(3)),
            DisconnectReason::KeepaliveTimeout,
        )
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.client_left(), Some(DisconnectReason::KeepaliveTimeout));
    res.wait_app().await;
    assert_eq!(seen.get(), vec!["keepalive_timeout after 3s"]);
}

#[tokio::test]
async fn a_handle_leaves_on_demand_and_a_later_disconnect_still_reaches_receive() {
    let seen = Seen::default();
    let s = seen.clone();
    let app = move |scope: Scope, mut rx: Receiver, send: Sender| {
        let s = s.clone();
        async move {
            watch(scope.connection(), &s);
            let body = super::support::read_body(&mut rx).await.unwrap();
            s.push(format!("body {:?}", String::from_utf8_lossy(&body)));
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            send.send(SendEvent::body_chunk("head")).await?;
            // The body was consumed; the client's later departure still reaches receive.
            let ev = rx.receive().await;
            s.push(format!("later: {ev:?}"));
            Ok(())
        }
    };
    let client = TestClient::new(app);
    let req = client.post("/").body("payload");
    let handle = req.disconnect_handle();
    let mut stream = req.stream().await;
    assert_eq!(stream.next_chunk().await.unwrap().unwrap(), "head");
    let reason = DisconnectReason::extra("x-user-left").unwrap();
    assert!(handle.disconnect(reason.clone()));
    assert!(!handle.disconnect(DisconnectReason::ClientClosed), "once");
    assert_eq!(
        stream.next_chunk().await,
        Err(ragi_tools::test::TestError::Disconnected(reason.clone()))
    );
    assert_eq!(stream.connection().disconnect_reason(), Some(reason));
    let res = stream.collect().await;
    res.wait_app().await;
    let got = settled(&seen, "x-user-left");
    assert_eq!(got[0], "body \"payload\"");
    assert_eq!(got[1..3], gone_lines("x-user-left")[..]);
    assert!(got
        .contains(&"later: Disconnect { reason: Extra(ExtraReason(\"x-user-left\")) }".to_owned()));
}

#[tokio::test]
async fn a_handle_used_before_sending_leaves_at_once() {
    let seen = Seen::default();
    let client = TestClient::new(reader(seen.clone()));
    let req = client.post("/").body("abc");
    let handle = req.disconnect_handle();
    assert!(handle.disconnect(DisconnectReason::ServerShutdown));
    let res = req.send().await;
    assert_eq!(res.client_left(), Some(DisconnectReason::ServerShutdown));
    res.wait_app().await;
    assert!(seen
        .get()
        .contains(&"receive: disconnect server_shutdown".to_owned()));
}

#[tokio::test]
async fn the_stream_leaves_with_any_reason_and_only_before_the_end() {
    let app = |_scope: Scope, _rx: Receiver, send: Sender| async move {
        send.send(SendEvent::response_start(200, Headers::new()))
            .await?;
        send.send(SendEvent::body_chunk("a")).await?;
        let _ = scope_wait(&send).await;
        Ok(())
    };
    async fn scope_wait(_send: &Sender) {
        std::future::pending::<()>().await
    }
    let client = TestClient::new(app);
    let mut stream = client.get("/").stream().await;
    assert!(stream.disconnect(DisconnectReason::WriteTimeout));
    assert!(!stream.disconnect(DisconnectReason::ClientClosed));
    assert_eq!(
        stream.connection().disconnect_reason(),
        Some(DisconnectReason::WriteTimeout)
    );
    // Nothing more is read once the client left, not even what was already on its way.
    assert!(matches!(
        stream.next_chunk().await,
        Err(ragi_tools::test::TestError::Disconnected(
            DisconnectReason::WriteTimeout
        ))
    ));

    // After a complete response, leaving changes nothing: on_complete fired, not on_disconnect.
    let ok = |_scope: Scope, _rx: Receiver, send: Sender| async move {
        send.send(SendEvent::response_start(200, Headers::new()))
            .await?;
        send.send(SendEvent::body("x")).await?;
        Ok(())
    };
    let client = TestClient::new(ok);
    let req = client.get("/");
    let handle = req.disconnect_handle();
    let res = req.send().await;
    assert!(!handle.disconnect(DisconnectReason::ClientClosed));
    assert!(res.connection().is_completed());
    assert_eq!(res.connection().disconnect_reason(), None);
}

#[tokio::test]
async fn an_sse_stream_can_be_left_after_its_start_or_n_bytes() {
    let seen = Seen::default();
    let s = seen.clone();
    let app = move |scope: Scope, _rx: Receiver, send: Sender| {
        let s = s.clone();
        async move {
            watch(scope.connection(), &s);
            send.send(SendEvent::SseStart {
                status: 200,
                headers: Headers::new(),
            })
            .await?;
            for i in 0..3 {
                let r = send
                    .send(SendEvent::SseSend(SseEvent {
                        data: format!("{i}"),
                        ..Default::default()
                    }))
                    .await;
                s.push(format!("event {i}: {}", r.is_ok()));
            }
            Ok(())
        }
    };
    let client = TestClient::new(app);
    let mut sse = client
        .sse("/events")
        .disconnect(
            Disconnect::AfterResponseStart,
            DisconnectReason::ClientClosed,
        )
        .connect()
        .await
        .stream();
    // SseStart writes the head at once, so the client has it.
    assert_eq!(sse.status(), 200);
    assert!(sse.next_event().await.is_err());
    sse.response().connection().disconnected().await;
    tokio::task::yield_now().await;
    let got = settled(&seen, "client_closed");
    assert_eq!(got[..2], gone_lines("client_closed")[..]);
    let events: Vec<&String> = got.iter().filter(|l| l.starts_with("event")).collect();
    assert_eq!(
        events,
        ["event 0: false", "event 1: false", "event 2: false"]
    );

    let client = TestClient::new(app_events());
    let mut sse = client
        .sse("/events")
        .disconnect(Disconnect::AfterBytes(9), DisconnectReason::ClientClosed)
        .connect()
        .await
        .stream();
    // Each event is `data: N\n\n` (9 bytes): the first one reaches the client, then it leaves.
    assert_eq!(sse.next_event().await.unwrap().data, "0");
    assert_eq!(
        sse.next_event().await,
        Err(ragi_tools::test::TestError::Disconnected(
            DisconnectReason::ClientClosed
        ))
    );
}

fn app_events() -> impl ragi::App {
    |_scope: Scope, _rx: Receiver, send: Sender| async move {
        send.send(SendEvent::SseStart {
            status: 200,
            headers: Headers::new(),
        })
        .await?;
        for i in 0..3 {
            send.send(SendEvent::SseSend(SseEvent {
                data: format!("{i}"),
                ..Default::default()
            }))
            .await?;
        }
        Ok(())
    }
}
