//! Protocol misuse by the app: refused with the server's errors, and listed.

use bytes::Bytes;
use ragi::{Headers, Message, Receiver, Scope, SendError, SendEvent, Sender, SseEvent};
use ragi_tools::test::TestClient;

use super::support::Seen;

/// Sends `events` in order, noting what each `send` returned; then answers 200 if it can.
fn sender(events: Vec<SendEvent>, seen: Seen) -> impl ragi::App {
    move |_scope: Scope, _rx: Receiver, send: Sender| {
        let (events, s) = (events.clone(), seen.clone());
        async move {
            for ev in events {
                let name = ev.name();
                let r = send.send(ev).await;
                s.push(format!("{name}: {}", describe(&r)));
            }
            Ok(())
        }
    }
}

fn describe(r: &Result<(), SendError>) -> String {
    match r {
        Ok(()) => "ok".to_owned(),
        Err(e) if e.is_invalid_event() => format!("invalid event ({e})"),
        Err(e) if e.is_invalid_header() => format!("invalid header ({e})"),
        Err(e) => format!("other ({e})"),
    }
}

fn start(status: u16) -> SendEvent {
    SendEvent::response_start(status, Headers::new())
}

async fn run(events: Vec<SendEvent>) -> (Vec<String>, ragi_tools::test::TestResponse) {
    let seen = Seen::default();
    let client = TestClient::new(sender(events, seen.clone()));
    let res = client.get("/").send().await;
    res.wait_app().await;
    (seen.get(), res)
}

#[tokio::test]
async fn a_second_start_a_body_out_of_place_and_bad_statuses_are_refused() {
    let (seen, res) = run(vec![
        SendEvent::body("early"),
        start(101),
        start(200),
        start(200),
        SendEvent::body("ok"),
        SendEvent::body("late"),
        SendEvent::ResponseTrailers {
            headers: Headers::new(),
        },
    ])
    .await;
    assert_eq!(
        seen,
        vec![
            "ResponseBody: invalid event (invalid event: ResponseBody before ResponseStart)",
            "ResponseStart: invalid event (invalid event: status 101 is not a final status (200-999))",
            "ResponseStart: ok",
            "ResponseStart: invalid event (invalid event: ResponseStart sent twice)",
            "ResponseBody: ok",
            "ResponseBody: invalid event (invalid event: ResponseBody after the body ended)",
            "ResponseTrailers: invalid event (invalid event: ResponseTrailers without trailers: true, or out of order)",
        ]
    );
    assert_eq!((res.status(), res.text().as_str()), (200, "ok"));
    let v: Vec<&str> = res.violations().iter().map(|v| v.event).collect();
    assert_eq!(
        v,
        vec![
            "ResponseBody",
            "ResponseStart",
            "ResponseStart",
            "ResponseBody",
            "ResponseTrailers"
        ]
    );
    assert!(res.violations()[0]
        .to_string()
        .contains("before ResponseStart"));
    assert_eq!(res.events().len(), 2);
    assert_eq!(res.send_log().len(), 7);
}

#[tokio::test]
async fn headers_with_cr_lf_nul_or_bad_names_never_reach_the_client() {
    let bad = [
        ("x-a", &b"1\r\nset-cookie: evil=1"[..]),
        ("x-a", b"a\nb"),
        ("x-a", b"a\0b"),
        ("bad name", b"v"),
    ];
    for (n, v) in bad {
        let (seen, res) = run(vec![SendEvent::response_start(
            200,
            Headers::new().with(n, Bytes::copy_from_slice(v)),
        )])
        .await;
        assert!(
            seen[0].starts_with("ResponseStart: invalid header"),
            "{seen:?}"
        );
        // Nothing started: the app returned without a response, so the server's 500.
        assert_eq!(res.status(), 500);
        assert!(res.headers().get("set-cookie").is_none());
        assert_eq!(res.violations().len(), 1);
        assert!(res.violations()[0].error.is_invalid_header());
    }
    // Trailers are checked too.
    let (seen, _) = run(vec![
        SendEvent::ResponseStart {
            status: 200,
            headers: Headers::new(),
            trailers: true,
        },
        SendEvent::body_chunk("x"),
        SendEvent::ResponseTrailers {
            headers: Headers::new().with("x-t", "a\rb"),
        },
    ])
    .await;
    assert!(seen[2].starts_with("ResponseTrailers: invalid header"));
}

#[tokio::test]
async fn content_length_is_held_to() {
    let cl = |n: &str| {
        SendEvent::response_start(200, Headers::new().with("content-length", n.to_owned()))
    };
    let (seen, res) = run(vec![cl("3"), SendEvent::body_chunk("abcd")]).await;
    assert_eq!(
        seen[1],
        "ResponseBody: invalid event (invalid event: response body longer than its content-length)"
    );
    assert!(res.is_aborted(), "the head went out; the app then returned");

    let (seen, res) = run(vec![cl("5"), SendEvent::body("abc")]).await;
    assert_eq!(
        seen[1],
        "ResponseBody: invalid event (invalid event: response body shorter than its content-length)"
    );
    assert_eq!(res.text(), "abc");
    assert!(res.is_aborted());

    let (seen, _) = run(vec![cl("x1")]).await;
    assert_eq!(
        seen[0],
        "ResponseStart: invalid event (invalid event: invalid content-length header)"
    );
    let (seen, _) = run(vec![SendEvent::response_start(
        200,
        Headers::new()
            .with("content-length", "1")
            .with("content-length", "1"),
    )])
    .await;
    assert!(seen[0].contains("invalid content-length header"));
}

#[tokio::test]
async fn events_of_other_scopes_are_refused() {
    let (seen, res) = run(vec![
        SendEvent::WebSocketSend(Message::Text("x".into())),
        SendEvent::SseSend(SseEvent::default()),
        SendEvent::HttpResponseStart {
            status: 200,
            headers: Headers::new(),
        },
        SendEvent::StartupComplete,
        SendEvent::FullFlush,
    ])
    .await;
    assert_eq!(
        seen,
        vec![
            "WebSocketSend: invalid event (invalid event: WebSocketSend is not valid in an http scope)",
            "SseSend: invalid event (invalid event: SseSend is not valid in an http scope)",
            "HttpResponseStart: invalid event (invalid event: HttpResponseStart is not valid in an http scope)",
            "StartupComplete: invalid event (invalid event: StartupComplete is not valid in an http scope)",
            // A flush with nothing to flush is fine, as on the server.
            "FullFlush: ok",
        ]
    );
    assert_eq!(res.violations().len(), 4);
}

#[tokio::test]
async fn sse_scopes_refuse_what_the_servers_sse_sink_refuses() {
    let seen = Seen::default();
    let events = vec![
        SendEvent::SseSend(SseEvent::default()),
        start(200),
        SendEvent::SseStart {
            status: 200,
            headers: Headers::new(),
        },
        SendEvent::HttpResponseStart {
            status: 200,
            headers: Headers::new(),
        },
        SendEvent::SseSend(SseEvent {
            event: Some("a\nb".into()),
            ..Default::default()
        }),
        SendEvent::SseSend(SseEvent {
            id: Some("1\r".into()),
            ..Default::default()
        }),
        SendEvent::SseComment {
            comment: "x\ny".into(),
        },
        SendEvent::SseClose { reason: None },
        SendEvent::SseClose { reason: None },
        SendEvent::SseComment {
            comment: "late".into(),
        },
    ];
    let client = TestClient::new(sender(events, seen.clone()));
    let mut sse = client.sse("/").connect().await.stream();
    assert_eq!(
        sse.next_event().await,
        Err(ragi_tools::test::TestError::Ended)
    );
    assert_eq!(
        seen.get(),
        vec![
            "SseSend: invalid event (invalid event: SseSend is not valid in an sse scope here (Init))",
            "ResponseStart: invalid event (invalid event: ResponseStart is not valid in an sse scope here (Init))",
            "SseStart: ok",
            "HttpResponseStart: invalid event (invalid event: HttpResponseStart is not valid in an sse scope here (Streaming))",
            "SseSend: invalid event (invalid event: CR or LF in an SSE event name)",
            "SseSend: invalid event (invalid event: CR, LF or NUL in an SSE id)",
            "SseComment: invalid event (invalid event: CR or LF in an SSE comment)",
            "SseClose: ok",
            "SseClose: ok",
            "SseComment: invalid event (invalid event: SseComment after SseClose)",
        ]
    );
    assert_eq!(sse.response().violations().len(), 7);
    assert!(sse.connection().is_completed());
}
