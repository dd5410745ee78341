//! The response deadline, on a paused clock: 503 (or 504) before the head, an abort after it
//! (a streamed body included), the app's work dropped, later sends refused, the record in the
//! stash, work after a finished response left alone, a departed client answered nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ragi::{DisconnectReason, Headers, Receiver, Scope, ScopeKind, SendEvent, Sender};
use ragi_tools::middleware::timeout::{TimedOut, Timeout};
use ragi_tools::prelude::*;
use ragi_tools::test::TestClient;
use tokio::sync::mpsc;

use super::support::{next, DropSignal};

/// Wraps an app and reports the stash's `TimedOut` once the call returned.
fn recording(app: SharedApp, out: Arc<Mutex<Option<Option<TimedOut>>>>) -> impl ragi::App {
    move |scope: Scope, rx: Receiver, send: Sender| {
        let (app, out, kept) = (app.clone(), out.clone(), scope.clone());
        async move {
            let r = app.call(scope, rx, send).await;
            *out.lock().unwrap() = Some(kept.stash.get::<TimedOut>().map(|t| (*t).clone()));
            r
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_handler_gets_503_at_the_deadline_and_is_dropped() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let slow = move |_cx: HttpContext| {
        let tx = tx.clone();
        async move {
            let mut signal = DropSignal::new(&tx, "dropped");
            tokio::time::sleep(Duration::from_secs(60)).await;
            signal.defuse();
            "late"
        }
    };
    let out = Arc::new(Mutex::new(None));
    let app = recording(
        handler(slow).layer(Timeout::new(Duration::from_secs(2))),
        out.clone(),
    );
    let start = tokio::time::Instant::now();
    let res = TestClient::new(app).get("/").send().await;
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.json::<serde_json::Value>()["error"],
        "the response took too long"
    );
    assert_eq!(next(&mut rx).await, "dropped");
    res.wait_app().await;
    let rec = out
        .lock()
        .unwrap()
        .clone()
        .unwrap()
        .expect("TimedOut recorded");
    assert_eq!(rec.after, Duration::from_secs(2));
    assert!(!rec.response_started);
}

#[tokio::test(start_paused = true)]
async fn the_status_can_be_504() {
    async fn slow(_cx: HttpContext) -> &'static str {
        tokio::time::sleep(Duration::from_secs(60)).await;
        "late"
    }
    let app = handler(slow).layer(Timeout::new(Duration::from_secs(1)).status(504));
    assert_eq!(TestClient::new(app).get("/").send().await.status(), 504);
}

#[tokio::test(start_paused = true)]
async fn a_streamed_body_past_the_deadline_is_aborted() {
    let ticker = |_s: Scope, _rx: Receiver, send: Sender| async move {
        send.send(SendEvent::response_start(200, Headers::new()))
            .await?;
        for i in 0.. {
            send.send(SendEvent::body_chunk(format!("{i};"))).await?;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        Ok(())
    };
    let out = Arc::new(Mutex::new(None));
    let app = recording(
        ticker.layer(Timeout::new(Duration::from_secs(1))),
        out.clone(),
    );
    let res = TestClient::new(app).get("/").send().await;
    assert!(res.is_aborted(), "a truncated body is never a whole one");
    assert_eq!(res.text(), "0;1;2;");
    res.wait_app().await;
    let rec = out
        .lock()
        .unwrap()
        .clone()
        .unwrap()
        .expect("TimedOut recorded");
    assert!(rec.response_started);
}

#[tokio::test(start_paused = true)]
async fn sends_from_the_apps_tasks_fail_after_the_deadline() {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let spawner = move |_s: Scope, _rx: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            let late = send.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let r = late
                    .send(SendEvent::response_start(200, Headers::new()))
                    .await;
                let _ = tx.send(format!(
                    "{:?}",
                    r.map_err(|e| e.disconnect_reason().map(|r| r.to_string()))
                ));
            });
            std::future::pending::<()>().await;
            Ok(())
        }
    };
    let res = TestClient::new(spawner.layer(Timeout::new(Duration::from_secs(1))))
        .get("/")
        .send()
        .await;
    assert_eq!(res.status(), 503);
    assert_eq!(next(&mut rx).await, "Err(Some(\"x-response-timeout\"))");
}

#[tokio::test(start_paused = true)]
async fn a_finished_response_is_left_alone() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let after_work = move |_s: Scope, _rx: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            send.send(SendEvent::body("done")).await?;
            tokio::time::sleep(Duration::from_secs(3)).await; // clean-up after the response
            let _ = tx.send("clean-up finished");
            Ok(())
        }
    };
    let res = TestClient::new(after_work.layer(Timeout::new(Duration::from_secs(1))))
        .get("/")
        .send()
        .await;
    assert_eq!(res.text(), "done");
    assert_eq!(next(&mut rx).await, "clean-up finished");
    assert!(res.wait_app().await.error().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_departed_client_is_answered_nothing_but_the_work_still_stops() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let ignores = move |_cx: HttpContext| {
        let tx = tx.clone();
        async move {
            let mut signal = DropSignal::new(&tx, "dropped at the deadline");
            tokio::time::sleep(Duration::from_secs(60)).await;
            signal.defuse();
            "late"
        }
    };
    let c = TestClient::new(handler(ignores).layer(Timeout::new(Duration::from_secs(2))));
    let res = c
        .get("/")
        .disconnect(
            ragi_tools::test::Disconnect::After(Duration::from_millis(500)),
            DisconnectReason::ClientClosed,
        )
        .send()
        .await;
    assert_eq!(res.client_left(), Some(DisconnectReason::ClientClosed));
    let start = tokio::time::Instant::now();
    assert_eq!(next(&mut rx).await, "dropped at the deadline");
    assert_eq!(start.elapsed(), Duration::from_millis(1500));
    res.wait_app().await;
    assert!(res.events().is_empty());
}

#[tokio::test(start_paused = true)]
async fn event_streams_are_covered_only_when_asked() {
    async fn forever(cx: ragi_tools::SseContext) -> Result<(), Error> {
        cx.every(Duration::from_millis(400), |i| async move {
            Ok(Some(ragi_tools::sse::Event::new(i.to_string())))
        })
        .await
    }
    let c = TestClient::new(
        ragi_tools::sse::handler(forever).layer(Timeout::new(Duration::from_secs(1))),
    );
    let mut s = c.sse("/e").connect().await.stream();
    for i in 0..5 {
        assert_eq!(
            s.next_event().await.unwrap().data,
            i.to_string(),
            "past the deadline"
        );
    }
    let c = TestClient::new(
        ragi_tools::sse::handler(forever)
            .layer(Timeout::new(Duration::from_secs(1)).kinds(&[ScopeKind::Http, ScopeKind::Sse])),
    );
    let mut s = c.sse("/e").connect().await.stream();
    let mut got = 0;
    let end = loop {
        match s.next_event().await {
            Ok(_) => got += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(got, 3);
    assert!(
        matches!(end, ragi_tools::test::TestError::Aborted),
        "{end:?}"
    );
}
