//! Server-Timing: the total and the app's metrics in the head, a trailer for announced
//! trailers, the app's own field kept, switched off per request.

use std::time::Duration;

use ragi::{Headers, Receiver, Scope, SendEvent, Sender};
use ragi_tools::middleware::timing::{ServerTiming, Timing};
use ragi_tools::prelude::*;
use ragi_tools::test::TestClient;

use super::support::hello;

#[tokio::test(start_paused = true)]
async fn the_total_and_the_apps_metrics() {
    async fn show(cx: HttpContext) -> &'static str {
        let t = ServerTiming::of(cx.scope()).unwrap();
        {
            let _db = t.start("db");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        t.record_with("render", Duration::from_micros(1500), "templates");
        t.describe("cache", "miss");
        t.record("bad name", Duration::from_millis(1)); // not a token: skipped
        tokio::time::sleep(Duration::from_millis(70)).await;
        "shown"
    }
    let res = TestClient::new(handler(show).layer(Timing::new()))
        .get("/")
        .send()
        .await;
    assert_eq!(
        res.header("server-timing"),
        Some("db;dur=30, render;dur=1.5;desc=\"templates\", cache;desc=\"miss\", total;dur=100")
    );
}

#[tokio::test(start_paused = true)]
async fn announced_trailers_get_the_whole_duration() {
    let app = |_s: Scope, _rx: Receiver, send: Sender| async move {
        send.send(SendEvent::ResponseStart {
            status: 200,
            headers: Headers::new(),
            trailers: true,
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(40)).await;
        send.send(SendEvent::body_chunk("part")).await?;
        tokio::time::sleep(Duration::from_millis(60)).await;
        send.send(SendEvent::ResponseTrailers {
            headers: Headers::new().with("x-sum", "1"),
        })
        .await?;
        Ok(())
    };
    let res = TestClient::new(app.layer(Timing::new()))
        .get("/")
        .send()
        .await;
    assert_eq!(res.header("server-timing"), Some("total;dur=0"));
    let trailers = res.trailers().expect("trailers");
    assert_eq!(trailers.get_str("server-timing"), Some("total;dur=100"));
    assert_eq!(trailers.get_str("x-sum"), Some("1"));
}

#[tokio::test]
async fn the_apps_own_field_is_kept_and_requests_can_be_left_out() {
    let own = |_s: Scope, _rx: Receiver, send: Sender| async move {
        send.send(SendEvent::response_start(
            200,
            Headers::new().with("server-timing", "edge;dur=1"),
        ))
        .await?;
        send.send(SendEvent::body("")).await?;
        Ok(())
    };
    let res = TestClient::new(own.layer(Timing::new().total_name("app")))
        .get("/")
        .send()
        .await;
    let fields: Vec<_> = res.headers().get_all("server-timing").collect();
    assert_eq!(fields.len(), 2);
    assert_eq!(fields[0], "edge;dur=1");
    assert!(fields[1].starts_with(b"app;dur="), "{fields:?}");

    let only_internal = Timing::new().enable_if(|s| s.headers.contains("x-internal"));
    let c = TestClient::new(hello().layer(only_internal));
    assert!(c.get("/").send().await.header("server-timing").is_none());
    assert!(c
        .get("/")
        .header("x-internal", "1")
        .send()
        .await
        .header("server-timing")
        .is_some());
}
