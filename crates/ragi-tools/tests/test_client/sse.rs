//! SSE: typed events, comments and keep-alive, Last-Event-ID, declines, plain-http streams.

use std::time::Duration;

use ragi::{DisconnectReason, Headers, Receiver, Scope, ScopeKind, SendEvent, Sender, SseEvent};
use ragi_tools::test::{SseConnect, SseItem, SseMessage, TestClient, TestError};
use serde_json::Value;

use super::support::Seen;

fn event(event: Option<&str>, data: &str, id: Option<&str>, retry: Option<u64>) -> SseEvent {
    SseEvent {
        event: event.map(Into::into),
        data: data.into(),
        id: id.map(Into::into),
        retry,
    }
}

/// Streams `n` numbered events every 100 ms from after `last-event-id`, forever.
async fn counter(scope: Scope, _rx: Receiver, send: Sender) -> ragi::AppResult {
    let from: u64 = scope
        .headers
        .get_str("last-event-id")
        .and_then(|v| v.parse().ok())
        .map_or(0, |n: u64| n + 1);
    send.send(SendEvent::SseStart {
        status: 200,
        headers: Headers::new().with("x-stream", "1"),
    })
    .await?;
    for i in from.. {
        send.send(SendEvent::SseSend(event(
            None,
            &format!("{{\"n\": {i}}}"),
            Some(&i.to_string()),
            None,
        )))
        .await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn typed_events_resume_after_last_event_id() {
    let client = TestClient::new(counter);
    let mut sse = client
        .sse("/events")
        .last_event_id("41")
        .connect()
        .await
        .stream();
    assert_eq!(sse.status(), 200);
    assert_eq!(
        sse.headers().get_str("content-type"),
        Some("text/event-stream")
    );
    assert_eq!(sse.headers().get_str("cache-control"), Some("no-cache"));
    assert_eq!(sse.headers().get_str("x-stream"), Some("1"));
    for n in 42..45 {
        let ev = sse.next_event().await.unwrap();
        assert_eq!(ev.id.as_deref(), Some(n.to_string().as_str()));
        let v: Value = ev.json().unwrap();
        assert_eq!(v["n"], n);
    }
    assert_eq!(sse.last_event_id(), Some("44"));
    let conn = sse.connection().clone();
    assert!(sse.disconnect(DisconnectReason::ClientClosed));
    assert_eq!(
        conn.disconnect_reason(),
        Some(DisconnectReason::ClientClosed)
    );
    assert_eq!(
        sse.next_event().await,
        Err(TestError::Disconnected(DisconnectReason::ClientClosed))
    );
}

#[tokio::test(start_paused = true)]
async fn fields_comments_and_keepalive_comments() {
    let seen = Seen::default();
    let s = seen.clone();
    let app = move |scope: Scope, _rx: Receiver, send: Sender| {
        let s = s.clone();
        async move {
            let conn = scope.connection().clone();
            let s2 = s.clone();
            conn.on_disconnect(move |r| s2.push(format!("on_disconnect {r}")));
            send.send(SendEvent::SseStart {
                status: 200,
                headers: Headers::new(),
            })
            .await?;
            send.send(SendEvent::SseKeepalive {
                interval: Duration::from_secs(15),
                comment: "ka".into(),
            })
            .await?;
            send.send(SendEvent::SseSend(event(
                Some("tick"),
                "line1\nline2",
                Some("7"),
                Some(1500),
            )))
            .await?;
            send.send(SendEvent::SseComment {
                comment: "hello".into(),
            })
            .await?;
            let r = conn.disconnected().await;
            s.push(format!("app saw {r}"));
            Ok(())
        }
    };
    let client = TestClient::new(app);
    let mut sse = client
        .sse("/")
        .timeout(Duration::from_secs(20))
        .connect()
        .await
        .stream();
    assert_eq!(
        sse.next_item().await.unwrap(),
        SseItem::Event(SseMessage {
            event: Some("tick".into()),
            data: "line1\nline2".into(),
            id: Some("7".into()),
            retry: Some(1500),
        })
    );
    assert_eq!(
        sse.next_item().await.unwrap(),
        SseItem::Comment("hello".into())
    );
    // Keep-alive comments every 15 s (paused clock: no real wait).
    let t0 = tokio::time::Instant::now();
    assert_eq!(
        sse.next_item().await.unwrap(),
        SseItem::Comment("ka".into())
    );
    assert_eq!(
        sse.next_item().await.unwrap(),
        SseItem::Comment("ka".into())
    );
    assert_eq!(t0.elapsed(), Duration::from_secs(30));
    assert_eq!(sse.comments(), ["hello", "ka", "ka"]);
    assert_eq!(sse.response().received(), 55 + 9 + 6 + 6);
    // next_event skips comments, with the request's timeout.
    let err = sse.next_event().await.unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(
        err.to_string(),
        "timed out after 20s waiting for an SSE event from GET /"
    );
    drop(sse);
    tokio::task::yield_now().await;
    assert_eq!(
        seen.get(),
        vec!["on_disconnect client_closed", "app saw client_closed"]
    );
}

#[tokio::test]
async fn a_closed_stream_ends_and_completes() {
    let app = |_scope: Scope, _rx: Receiver, send: Sender| async move {
        send.send(SendEvent::SseStart {
            status: 200,
            headers: Headers::new(),
        })
        .await?;
        send.send(SendEvent::SseSend(event(None, "only", None, None)))
            .await?;
        send.send(SendEvent::SseClose {
            reason: Some("done".into()),
        })
        .await?;
        Ok(())
    };
    let client = TestClient::new(app);
    let mut sse = client.sse("/").connect().await.stream();
    assert_eq!(sse.next_event().await.unwrap().data, "only");
    assert_eq!(sse.next_event().await, Err(TestError::Ended));
    assert!(sse.connection().is_completed());

    // Closed before it started: an empty event stream.
    let app = |_scope: Scope, _rx: Receiver, send: Sender| async move {
        send.send(SendEvent::SseClose { reason: None }).await?;
        Ok(())
    };
    let client = TestClient::new(app);
    let mut sse = client.sse("/").connect().await.stream();
    assert_eq!(sse.status(), 200);
    assert_eq!(sse.next_item().await, Err(TestError::Ended));
}

#[tokio::test]
async fn declines_are_inspectable() {
    let app = |scope: Scope, _rx: Receiver, send: Sender| async move {
        if scope.path == "/fail" {
            return Err("no events for you".into());
        }
        send.send(SendEvent::HttpResponseStart {
            status: 403,
            headers: Headers::new()
                .with("content-type", "application/json")
                .with("set-cookie", "seen=1; Path=/"),
        })
        .await?;
        send.send(SendEvent::HttpResponseBody {
            body: "{\"error\":".into(),
            more: true,
        })
        .await?;
        send.send(SendEvent::HttpResponseBody {
            body: "\"forbidden\"}".into(),
            more: false,
        })
        .await?;
        Ok(())
    };
    let client = TestClient::new(app);
    let SseConnect::Declined(res) = client.sse("/events").connect().await else {
        panic!("expected a decline");
    };
    assert_eq!(res.status(), 403);
    let v: Value = res.json();
    assert_eq!(v["error"], "forbidden");
    assert!(res.connection().is_completed());
    assert_eq!(client.cookie("seen").as_deref(), Some("1"));

    let res = client.sse("/fail").connect().await.declined();
    assert_eq!(res.status(), 500);
    assert_eq!(res.app_error().as_deref(), Some("no events for you"));
    assert_eq!(
        res.connection().disconnect_reason(),
        Some(DisconnectReason::ServerError)
    );
}

/// An SSE route answering a plain `http` request frames the stream itself.
#[tokio::test]
async fn a_plain_http_event_stream_is_parsed_too() {
    let app = |scope: Scope, _rx: Receiver, send: Sender| async move {
        assert_eq!(scope.kind, ScopeKind::Http);
        send.send(SendEvent::response_start(
            200,
            Headers::new().with("content-type", "text/event-stream; charset=utf-8"),
        ))
        .await?;
        send.send(SendEvent::body_chunk(
            "id: 1\r\ndata: a\r\n\r\n: c\r\n\r\ndata: b",
        ))
        .await?;
        send.send(SendEvent::body_chunk("\n\n")).await?;
        std::future::pending::<()>().await;
        Ok(())
    };
    let client = TestClient::new(app);
    let mut sse = client
        .sse("/events")
        .kind(ScopeKind::Http)
        .connect()
        .await
        .stream();
    let a = sse.next_event().await.unwrap();
    assert_eq!((a.id.as_deref(), a.data.as_str()), (Some("1"), "a"));
    assert_eq!(sse.next_event().await.unwrap().data, "b");
    assert_eq!(sse.comments(), ["c"]);

    // The same through a plain GET's stream.
    let mut sse = client.get("/events").stream().await.into_sse();
    assert_eq!(sse.next_event().await.unwrap().data, "a");
}
