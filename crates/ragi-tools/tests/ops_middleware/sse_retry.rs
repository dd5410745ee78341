//! SSE retry hints: on the first event of an `sse` scope, as a lone `retry:` block after the
//! head of a plain-HTTP event stream, with jitter; the app's own `retry` and other responses
//! left alone.

use std::time::Duration;

use ragi_tools::middleware::sse_retry::SseRetry;
use ragi_tools::prelude::*;
use ragi_tools::sse::{self, Event};
use ragi_tools::test::TestClient;
use ragi_tools::SseContext;

use super::support::hello;

async fn three(cx: SseContext) -> Result<(), Error> {
    cx.send("a").await?;
    cx.send("b").await?;
    cx.send(Event::new("c").retry(Duration::from_millis(250)))
        .await?;
    cx.close().await
}

#[tokio::test]
async fn the_first_event_of_an_sse_scope_carries_it() {
    let app = sse::handler(three).layer(SseRetry::new(Duration::from_secs(3)));
    let mut s = TestClient::new(app).sse("/e").connect().await.stream();
    let a = s.next_event().await.unwrap();
    assert_eq!((a.data.as_str(), a.retry), ("a", Some(3000)));
    let b = s.next_event().await.unwrap();
    assert_eq!(b.retry, None, "once is enough");
    assert_eq!(
        s.next_event().await.unwrap().retry,
        Some(250),
        "the app's own"
    );
}

#[tokio::test]
async fn the_apps_own_retry_wins() {
    async fn own(cx: SseContext) -> Result<(), Error> {
        cx.send(Event::new("x").retry(Duration::from_millis(10)))
            .await?;
        cx.send("y").await
    }
    let app = sse::handler(own).layer(SseRetry::new(Duration::from_secs(3)));
    let mut s = TestClient::new(app).sse("/e").connect().await.stream();
    assert_eq!(s.next_event().await.unwrap().retry, Some(10));
    assert_eq!(s.next_event().await.unwrap().retry, None);
}

#[tokio::test]
async fn a_plain_http_event_stream_gets_a_lone_retry_block() {
    let app = sse::handler(three).layer(SseRetry::new(Duration::from_secs(3)));
    let c = TestClient::new(app);
    // `curl -N`: no `Accept: text/event-stream`, so an http scope.
    let res = c.get("/e").send().await;
    assert_eq!(res.header("content-type"), Some("text/event-stream"));
    let body = res.text();
    assert!(body.starts_with("retry: 3000\n\ndata: a\n\n"), "{body:?}");
    assert!(!body.contains("data: a\nretry"), "{body:?}");
    // Read as a parser: the test client reports every block that had a field, so the lone
    // block shows up with its `retry` and no data line (a browser sets the delay from it and
    // dispatches nothing, a block without `data:` being no message).
    let mut s = c.get("/e").stream().await.into_sse();
    let hint = s.next_event().await.unwrap();
    assert_eq!((hint.data.as_str(), hint.retry), ("", Some(3000)));
    assert_eq!(s.next_event().await.unwrap().data, "a");
}

#[tokio::test]
async fn jitter_spreads_the_delay() {
    let layer = SseRetry::new(Duration::from_secs(1)).jitter(Duration::from_millis(500));
    let app = sse::handler(three).layer(layer);
    let c = TestClient::new(app);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let mut s = c.sse("/e").connect().await.stream();
        let r = s.next_event().await.unwrap().retry.unwrap();
        assert!((1000..=1500).contains(&r), "{r}");
        seen.insert(r);
    }
    assert!(seen.len() > 1, "spread: {seen:?}");
}

#[tokio::test]
async fn other_responses_are_left_alone() {
    let c = TestClient::new(hello().layer(SseRetry::new(Duration::from_secs(3))));
    assert_eq!(c.get("/").send().await.text(), "hello");
    async fn plain(_cx: HttpContext) -> &'static str {
        "no stream"
    }
    let c = TestClient::new(handler(plain).layer(SseRetry::new(Duration::from_secs(3))));
    let res = c.sse("/e").connect().await.declined();
    assert_eq!(res.text(), "no stream");
}
