//! The SSE helpers' rules, in-process, on `sse` scopes (the server frames) and plain `http`
//! scopes (the context frames): every event the app sends, every error it sees.

mod support;

use std::time::Duration;

use bytes::Bytes;
use ragi::{Body, DisconnectReason, Headers, ScopeKind, SendEvent, SseEvent};
use ragi_tools::sse::{self, Event};
use ragi_tools::{Error, SseContext, SseEndpoint};
use support::session::{scope, Session};
use tokio::sync::mpsc;

fn chunk(s: &str) -> SendEvent {
    SendEvent::ResponseBody {
        body: Body::Bytes(Bytes::copy_from_slice(s.as_bytes())),
        more: true,
    }
}

fn end() -> SendEvent {
    SendEvent::ResponseBody {
        body: Body::Bytes(Bytes::new()),
        more: false,
    }
}

/// A handler that uses every sending helper once.
fn everything() -> impl ragi::App {
    sse::handler(|cx: SseContext| async move {
        cx.start_with(200, Headers::new().with("x-stream", "1"))
            .await?;
        cx.send(
            Event::new("a\r\nb")
                .event("e")
                .id(7)
                .retry(Duration::from_secs(2)),
        )
        .await?;
        cx.send_json(&serde_json::json!({ "n": 1 })).await?;
        cx.comment("note").await?;
        cx.close().await?;
        cx.close().await?; // idempotent
        assert!(cx.send("late").await.is_err());
        Ok(())
    })
}

#[tokio::test]
async fn on_an_sse_scope_the_server_frames_the_events() {
    let (events, r) = Session::start(everything(), scope(ScopeKind::Sse, "/e"))
        .finish()
        .await;
    r.unwrap();
    assert_eq!(
        events,
        [
            SendEvent::SseStart {
                status: 200,
                headers: Headers::new().with("x-stream", "1")
            },
            SendEvent::SseSend(SseEvent {
                event: Some("e".into()),
                data: "a\r\nb".into(),
                id: Some("7".into()),
                retry: Some(2000)
            }),
            SendEvent::SseSend(SseEvent {
                data: r#"{"n":1}"#.into(),
                ..Default::default()
            }),
            SendEvent::SseComment {
                comment: "note".into()
            },
            SendEvent::SseClose { reason: None },
        ]
    );
}

#[tokio::test]
async fn on_a_plain_get_the_context_frames_the_events_and_flushes_each() {
    let (events, r) = Session::start(everything(), scope(ScopeKind::Http, "/e"))
        .finish()
        .await;
    r.unwrap();
    let head = Headers::new()
        .with("x-stream", "1")
        .with("content-type", "text/event-stream")
        .with("cache-control", "no-cache");
    assert_eq!(
        events,
        [
            SendEvent::response_start(200, head),
            SendEvent::FullFlush,
            chunk("event: e\ndata: a\ndata: b\nid: 7\nretry: 2000\n\n"),
            SendEvent::FullFlush,
            chunk("data: {\"n\":1}\n\n"),
            SendEvent::FullFlush,
            chunk(": note\n\n"),
            SendEvent::FullFlush,
            end(),
        ]
    );
}

#[tokio::test]
async fn without_fullflush_nothing_asks_for_a_flush_and_the_first_send_starts_the_stream() {
    let app = sse::handler(|cx: SseContext| async move {
        assert!(!cx.is_native());
        cx.send("x").await
    });
    let mut sc = scope(ScopeKind::Http, "/e");
    sc.extensions.fullflush = false;
    let (events, r) = Session::start(app, sc).finish().await;
    r.unwrap();
    assert!(matches!(
        &events[0],
        SendEvent::ResponseStart { status: 200, headers, .. }
            if headers.get_str("content-type") == Some("text/event-stream")
    ));
    assert_eq!(events[1..], [chunk("data: x\n\n"), end()]);
}

#[tokio::test]
async fn fields_that_would_break_the_framing_are_refused() {
    for kind in [ScopeKind::Sse, ScopeKind::Http] {
        let app = sse::handler(|cx: SseContext| async move {
            assert!(cx.send(Event::new("x").event("a\nb")).await.is_err());
            assert!(cx.send(Event::new("x").id("1\r")).await.is_err());
            assert!(cx.send(Event::new("x").id("1\0")).await.is_err());
            assert!(cx.comment("a\rb").await.is_err());
            Ok(())
        });
        let (events, r) = Session::start(app, scope(kind, "/e")).finish().await;
        r.unwrap();
        // Nothing reached the client but the empty stream the adapter closes with.
        assert!(events.len() <= 2, "{kind:?}: {events:?}");
    }
}

#[tokio::test]
async fn decline_with_any_status_in_the_scope_s_own_family() {
    let app = || {
        sse::handler(|cx: SseContext| async move {
            cx.decline(
                ragi_tools::Response::text("slow down")
                    .with_status(429)
                    .header("retry-after", "3"),
            )
            .await?;
            assert!(cx.send("x").await.is_err());
            assert!(cx.start().await.is_err());
            Ok(())
        })
    };
    let (events, r) = Session::start(app(), scope(ScopeKind::Sse, "/e"))
        .finish()
        .await;
    r.unwrap();
    match &events[..] {
        [SendEvent::HttpResponseStart {
            status: 429,
            headers,
        }, SendEvent::HttpResponseBody { body, more: false }] => {
            assert_eq!(headers.get_str("retry-after"), Some("3"));
            assert_eq!(&body[..], b"slow down");
        }
        other => panic!("{other:?}"),
    }
    let (events, r) = Session::start(app(), scope(ScopeKind::Http, "/e"))
        .finish()
        .await;
    r.unwrap();
    assert!(matches!(
        events[0],
        SendEvent::ResponseStart { status: 429, .. }
    ));

    // Once started, a decline is refused.
    let app = sse::handler(|cx: SseContext| async move {
        cx.start().await?;
        assert!(cx.decline(Error::not_found()).await.is_err());
        Ok(())
    });
    let (events, r) = Session::start(app, scope(ScopeKind::Sse, "/e"))
        .finish()
        .await;
    r.unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
}

#[tokio::test]
async fn the_last_event_id_of_the_request() {
    let app = sse::handler(|cx: SseContext| async move {
        let id = cx.last_event_id().unwrap_or("none").to_owned();
        cx.send(Event::new(id)).await
    });
    let mut sc = scope(ScopeKind::Sse, "/e");
    sc.headers.push("last-event-id", "41");
    let (events, _) = Session::start(app, sc).finish().await;
    assert_eq!(
        events[1],
        SendEvent::SseSend(SseEvent {
            data: "41".into(),
            ..Default::default()
        })
    );
}

#[tokio::test]
async fn keepalive_on_an_sse_scope_is_the_server_s_timer() {
    let app = sse::handler(|cx: SseContext| async move {
        cx.keepalive(Duration::from_secs(15)).await?;
        cx.keepalive_with(Duration::from_secs(5), "ping").await
    });
    let (events, _) = Session::start(app, scope(ScopeKind::Sse, "/e"))
        .finish()
        .await;
    assert_eq!(
        events[..2],
        [
            SendEvent::SseKeepalive {
                interval: Duration::from_secs(15),
                comment: "keepalive".into()
            },
            SendEvent::SseKeepalive {
                interval: Duration::from_secs(5),
                comment: "ping".into()
            }
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn keepalive_on_a_plain_get_is_the_helper_s_timer_while_the_stream_is_quiet() {
    let (go_tx, go_rx) = mpsc::unbounded_channel::<()>();
    let go = std::sync::Arc::new(tokio::sync::Mutex::new(go_rx));
    let app = sse::handler(move |cx: SseContext| {
        let go = go.clone();
        async move {
            cx.start().await?;
            cx.keepalive(Duration::from_secs(10)).await?;
            let mut go = go.lock().await;
            go.recv().await; // t = 15 s: an event resets the quiet time
            cx.send("tick").await?;
            go.recv().await;
            Ok(())
        }
    });
    let t0 = tokio::time::Instant::now();
    let mut s = Session::start(app, scope(ScopeKind::Http, "/e"));
    assert!(matches!(
        s.next_within(Duration::from_secs(60)).await,
        SendEvent::ResponseStart { .. }
    ));
    assert_eq!(
        s.next_within(Duration::from_secs(60)).await,
        SendEvent::FullFlush
    );
    assert_eq!(
        s.next_within(Duration::from_secs(60)).await,
        chunk(": keepalive\n\n")
    );
    assert_eq!(t0.elapsed(), Duration::from_secs(10));
    assert_eq!(
        s.next_within(Duration::from_secs(60)).await,
        SendEvent::FullFlush
    );
    tokio::time::sleep_until(t0 + Duration::from_secs(15)).await;
    go_tx.send(()).unwrap();
    assert_eq!(
        s.next_within(Duration::from_secs(60)).await,
        chunk("data: tick\n\n")
    );
    assert_eq!(
        s.next_within(Duration::from_secs(60)).await,
        SendEvent::FullFlush
    );
    // The next keep-alive comes 10 s after the event, not 10 s after the last comment.
    assert_eq!(
        s.next_within(Duration::from_secs(60)).await,
        chunk(": keepalive\n\n")
    );
    assert_eq!(t0.elapsed(), Duration::from_secs(25));
    assert_eq!(
        s.next_within(Duration::from_secs(60)).await,
        SendEvent::FullFlush
    );
    go_tx.send(()).unwrap();
    // Closing stops the timer: the body ends and nothing follows.
    assert_eq!(s.next_within(Duration::from_secs(60)).await, end());
    s.result().await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(s.try_next().is_none());
}

#[tokio::test(start_paused = true)]
async fn every_sends_periodically_until_the_client_leaves_and_says_why() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = sse::handler(move |cx: SseContext| {
        let tx = tx.clone();
        async move {
            let r = cx
                .every(Duration::from_millis(100), |i| async move {
                    Ok(Some(Event::json(&serde_json::json!({ "n": i }))?.id(i)))
                })
                .await;
            tx.send(r.as_ref().map_err(|e| e.disconnect_reason().cloned()).err())
                .unwrap();
            // Every later send fails with the reason too.
            let e = cx.send("late").await.unwrap_err();
            assert_eq!(e.disconnect_reason(), Some(&DisconnectReason::ClientClosed));
            r
        }
    });
    let t0 = tokio::time::Instant::now();
    let mut s = Session::start(app, scope(ScopeKind::Sse, "/e"));
    assert!(matches!(
        s.next_within(Duration::from_secs(60)).await,
        SendEvent::SseStart { .. }
    ));
    for i in 0..3u64 {
        match s.next_within(Duration::from_secs(60)).await {
            SendEvent::SseSend(ev) => {
                assert_eq!(ev.id, Some(i.to_string()));
                assert_eq!(ev.data, format!("{{\"n\":{i}}}"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t0.elapsed(), Duration::from_millis(100 * i));
    }
    // Between two ticks, the client leaves: the sender returns at once, with the reason.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let left = tokio::time::Instant::now();
    s.leave(DisconnectReason::ClientClosed);
    assert_eq!(
        rx.recv().await.unwrap(),
        Some(Some(DisconnectReason::ClientClosed))
    );
    assert_eq!(left.elapsed(), Duration::ZERO);
    let (events, r) = s.finish().await;
    r.unwrap();
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn every_ends_when_its_function_says_so() {
    let app = sse::handler(|cx: SseContext| async move {
        cx.every(Duration::from_secs(1), |i| async move {
            Ok((i < 2).then(|| Event::new(i.to_string())))
        })
        .await?;
        cx.send("after").await
    });
    let (events, r) = Session::start(app, scope(ScopeKind::Sse, "/e"))
        .finish()
        .await;
    r.unwrap();
    let data: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            SendEvent::SseSend(ev) => Some(ev.data.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(data, ["0", "1", "after"]);
}

#[tokio::test]
async fn sends_fail_with_the_reason_once_the_client_left() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    for kind in [ScopeKind::Sse, ScopeKind::Http] {
        let tx = tx.clone();
        let app = sse::handler(move |cx: SseContext| {
            let tx = tx.clone();
            async move {
                cx.start().await?;
                let reason = cx.closed().await;
                let e = cx.send("x").await.unwrap_err();
                let c = cx.comment("x").await.unwrap_err();
                tx.send((reason, e.disconnect_reason().cloned(), c.is_disconnected()))
                    .unwrap();
                cx.close().await // nothing to close: Ok
            }
        });
        let mut s = Session::start(app, scope(kind, "/e"));
        s.next().await;
        s.leave(DisconnectReason::WriteTimeout);
        let (reason, e, c) = rx.recv().await.unwrap();
        assert_eq!(reason, Some(DisconnectReason::WriteTimeout));
        assert_eq!(e, Some(DisconnectReason::WriteTimeout));
        assert!(c);
        let (events, r) = s.finish().await;
        r.unwrap();
        assert!(
            events.iter().all(|e| e == &SendEvent::FullFlush),
            "{events:?}"
        );
    }
}

#[tokio::test]
async fn what_the_adapter_does_with_the_handler_s_result() {
    // Ok without a start: an empty stream.
    let app = || sse::handler(|_cx: SseContext| async move { Ok(()) });
    let (events, _) = Session::start(app(), scope(ScopeKind::Sse, "/e"))
        .finish()
        .await;
    assert_eq!(events, [SendEvent::SseClose { reason: None }]);
    let (events, _) = Session::start(app(), scope(ScopeKind::Http, "/e"))
        .finish()
        .await;
    assert!(matches!(
        events[0],
        SendEvent::ResponseStart { status: 200, .. }
    ));
    assert_eq!(events[1], end());

    // An error before the start is the answer: a decline with its status.
    let app = sse::handler(|_cx: SseContext| async move { Err(Error::new(403, "no")) });
    let (events, r) = Session::start(app, scope(ScopeKind::Sse, "/e"))
        .finish()
        .await;
    r.unwrap();
    assert!(matches!(
        events[0],
        SendEvent::HttpResponseStart { status: 403, .. }
    ));

    // A server error after the start aborts the response.
    let app = sse::handler(|cx: SseContext| async move {
        cx.send("x").await?;
        Err(Error::internal("lost the feed"))
    });
    let (events, r) = Session::start(app, scope(ScopeKind::Http, "/e"))
        .finish()
        .await;
    assert!(r.is_err());
    assert!(!events.contains(&end()), "never a clean end: {events:?}");

    // HEAD: the stream's head, no body, no handler call.
    let app = sse::handler(|_cx: SseContext| async move { panic!("not called for HEAD") });
    let mut sc = scope(ScopeKind::Http, "/e");
    sc.method = http::Method::HEAD;
    let (events, r) = Session::start(app, sc).finish().await;
    r.unwrap();
    assert!(matches!(
        &events[0],
        SendEvent::ResponseStart { status: 200, headers, .. }
            if headers.get_str("content-type") == Some("text/event-stream")
    ));

    // A WebSocket handshake is not an event stream.
    let app = sse::handler(|_cx: SseContext| async move { Ok(()) });
    let (_, r) = Session::start(app, scope(ScopeKind::WebSocket, "/e"))
        .finish()
        .await;
    assert!(r.unwrap_err().is::<ragi::UnsupportedScope>());
}

#[tokio::test]
async fn a_sender_handle_sends_from_another_task_and_can_close() {
    let app = sse::handler(|cx: SseContext| async move {
        let tx = cx.sender();
        tokio::spawn(async move {
            tx.send("from afar").await.unwrap();
            tx.close().await.unwrap();
        });
        assert_eq!(cx.closed().await, None, "closed by the app, not the client");
        assert!(!cx.is_open());
        Ok(())
    });
    let (events, r) = Session::start(app, scope(ScopeKind::Sse, "/e"))
        .finish()
        .await;
    r.unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[2], SendEvent::SseClose { reason: None });
}

// ----- endpoints --------------------------------------------------------------------------

struct Feed {
    log: mpsc::UnboundedSender<String>,
}

impl SseEndpoint for Feed {
    async fn on_connect(&self, cx: &mut SseContext) -> Result<(), Error> {
        match cx.last_event_id() {
            Some("deny") => cx.decline((401, "who")).await,
            Some("close") => {
                let tx = cx.sender();
                tokio::spawn(async move {
                    tx.send("bye").await.unwrap();
                    tx.close().await.unwrap();
                });
                Ok(())
            }
            _ => cx.send("hello").await,
        }
    }

    async fn on_disconnect(&self, _cx: &mut SseContext, reason: Option<DisconnectReason>) {
        self.log.send(format!("{reason:?}")).unwrap();
    }
}

#[tokio::test]
async fn an_endpoint_stays_open_until_the_end_and_reports_it() {
    let (tx, mut log) = mpsc::unbounded_channel();
    let app = sse::endpoint(Feed { log: tx });

    let mut s = Session::start(app.clone(), scope(ScopeKind::Sse, "/e"));
    assert!(matches!(s.next().await, SendEvent::SseStart { .. }));
    assert!(matches!(s.next().await, SendEvent::SseSend(_)));
    s.leave(DisconnectReason::ClientClosed);
    s.result().await.unwrap();
    assert_eq!(log.recv().await.unwrap(), "Some(ClientClosed)");

    let mut sc = scope(ScopeKind::Http, "/e");
    sc.headers.push("last-event-id", "close");
    let (events, r) = Session::start(app.clone(), sc).finish().await;
    r.unwrap();
    assert_eq!(log.recv().await.unwrap(), "None");
    assert_eq!(events.last(), Some(&end()));

    let mut sc = scope(ScopeKind::Sse, "/e");
    sc.headers.push("last-event-id", "deny");
    let (events, r) = Session::start(app, sc).finish().await;
    r.unwrap();
    assert!(matches!(
        events[0],
        SendEvent::HttpResponseStart { status: 401, .. }
    ));
    assert!(log.try_recv().is_err(), "a declined stream never opened");
}
