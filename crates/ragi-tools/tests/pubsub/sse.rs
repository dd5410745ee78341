//! `SsePubSub` through the test client.

use std::sync::Arc;

use ragi::{DisconnectReason, ScopeKind};
use ragi_tools::channels::{Layer, MemoryLayer, Message, Overflow};
use ragi_tools::pubsub::SsePubSub;
use ragi_tools::router::Router;
use ragi_tools::test::{SseStream, TestClient, TestError};
use serde_json::Value;

use super::support::until;

fn setup(configure: impl FnOnce(SsePubSub) -> SsePubSub) -> (MemoryLayer, SsePubSub, TestClient) {
    let memory = MemoryLayer::new();
    let layer: Layer = Arc::new(memory.clone());
    let app = configure(SsePubSub::new(layer));
    let client = TestClient::new(Router::new().mount("/feeds", app.clone()));
    (memory, app, client)
}

async fn subscribe(client: &TestClient, topic: &str) -> SseStream {
    client
        .sse(&format!("/feeds/{topic}"))
        .connect()
        .await
        .stream()
}

/// Every subscriber of a topic gets each message as an event, with its event name and id;
/// both framings (an `sse` scope and a plain GET) alike.
#[tokio::test]
async fn each_message_is_an_event_for_every_subscriber() {
    let (memory, feeds, client) = setup(|f| f);
    let mut streams = Vec::new();
    for i in 0..20 {
        let mut b = client.sse("/feeds/news");
        if i % 2 == 1 {
            b = b.kind(ScopeKind::Http); // `curl -N`: the app frames the stream itself
        }
        streams.push(b.connect().await.stream());
    }
    assert_eq!(memory.hub().group_len("news"), 20);
    feeds.publish("news", Message::text("plain")).await.unwrap();
    feeds
        .publish(
            "news",
            Message::json(&serde_json::json!({"n": 1}))
                .unwrap()
                .with_event("update")
                .with_id("7"),
        )
        .await
        .unwrap();
    feeds
        .publish("news", Message::binary(&b"not \xff text"[..]))
        .await
        .unwrap(); // skipped: not UTF-8
    feeds
        .publish("news", Message::binary(&b"utf-8 bytes"[..]))
        .await
        .unwrap();
    for s in &mut streams {
        let e = s.next_event().await.unwrap();
        assert_eq!((e.event.as_deref(), e.data.as_str()), (None, "plain"));
        let e = s.next_event().await.unwrap();
        assert_eq!(e.event.as_deref(), Some("update"));
        assert_eq!(e.id.as_deref(), Some("7"));
        assert_eq!(e.json::<Value>().unwrap()["n"], 1);
        assert_eq!(s.next_event().await.unwrap().data, "utf-8 bytes");
        assert_eq!(
            s.headers().get_str("content-type"),
            Some("text/event-stream")
        );
    }
}

/// A subscriber whose client stalls: the others get every event; it gets a `gap` event saying
/// how many it lost, then the newest.
#[tokio::test]
async fn a_stalled_subscriber_gets_a_gap_event() {
    let (_m, feeds, client) = setup(|f| f.capacity(3));
    let mut slow = subscribe(&client, "t").await;
    let mut fast = subscribe(&client, "t").await;
    slow.stall();
    for n in 0..50 {
        feeds
            .publish("t", Message::text(n.to_string()))
            .await
            .unwrap();
        assert_eq!(fast.next_event().await.unwrap().data, n.to_string());
    }
    slow.resume();
    let mut got = Vec::new();
    let mut missed = 0;
    while got.last().map(String::as_str) != Some("49") {
        let e = slow.next_event().await.unwrap();
        if e.event.as_deref() == Some("gap") {
            let v: Value = e.json().unwrap();
            assert_eq!(
                (v["type"].as_str(), v["topic"].as_str()),
                (Some("gap"), Some("t"))
            );
            assert_eq!(v["reason"], "queue_overflow");
            missed += v["missed"].as_u64().unwrap();
        } else {
            got.push(e.data);
        }
    }
    assert!(missed > 0);
    assert_eq!(got.len() as u64 + missed, 50);
    assert!(got.len() <= 3 + 1, "{got:?}");
}

/// Under `Overflow::Close` a stalled subscriber's stream ends (the browser reconnects) and it
/// leaves the topic at once.
#[tokio::test]
async fn the_close_policy_ends_the_stream() {
    let (memory, feeds, client) = setup(|f| f.capacity(2).overflow(Overflow::Close));
    let mut slow = subscribe(&client, "t").await;
    let mut fast = subscribe(&client, "t").await;
    slow.stall();
    for n in 0..10 {
        feeds
            .publish("t", Message::text(n.to_string()))
            .await
            .unwrap();
        assert_eq!(fast.next_event().await.unwrap().data, n.to_string());
    }
    until("the slow subscriber left", || {
        memory.hub().group_len("t") == 1
    })
    .await;
    slow.resume();
    loop {
        match slow.next_event().await {
            Ok(_) => continue,
            Err(TestError::Ended) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// The client leaving unsubscribes it at once; the handler ends with the reason.
#[tokio::test]
async fn a_subscriber_that_leaves_is_removed_at_once() {
    let (memory, _feeds, client) = setup(|f| f);
    let mut s = subscribe(&client, "t").await;
    assert_eq!(memory.hub().group_len("t"), 1);
    assert!(s.disconnect(DisconnectReason::ClientClosed));
    assert_eq!(memory.hub().group_len("t"), 0);
    assert_eq!(memory.hub().subscriptions(), 0);
    assert!(s.response().violations().is_empty());
}

/// `Last-Event-ID`: the in-memory layer has no history, so the stream starts with a `gap`
/// event (`no_history`) — the seam where a layer with history replays instead.
#[tokio::test]
async fn a_resume_without_history_starts_with_a_gap() {
    let (_m, feeds, client) = setup(|f| f);
    let mut s = client
        .sse("/feeds/t")
        .last_event_id("41")
        .connect()
        .await
        .stream();
    let e = s.next_event().await.unwrap();
    assert_eq!(e.event.as_deref(), Some("gap"));
    assert_eq!(e.json::<Value>().unwrap()["reason"], "no_history");
    feeds.publish("t", Message::text("next")).await.unwrap();
    assert_eq!(s.next_event().await.unwrap().data, "next");
}

#[tokio::test]
async fn bad_topics_are_404() {
    let (_m, _feeds, client) = setup(|f| f);
    let r = client.sse("/feeds/a%2Fb").connect().await.declined();
    assert_eq!(r.status(), 404);
    let r = client.sse("/feeds").connect().await.declined();
    assert_eq!(r.status(), 404, "no topic and no fixed one");
}

#[tokio::test]
async fn a_retry_hint_comes_first_and_a_fixed_topic_serves_the_bare_path() {
    let memory = MemoryLayer::new();
    let layer: Layer = Arc::new(memory.clone());
    let feed = SsePubSub::new(layer)
        .topic("main")
        .group_prefix("feed.")
        .retry(std::time::Duration::from_millis(2500));
    let client = TestClient::new(Router::new().mount("/live", feed.clone()));
    let mut s = client.sse("/live").connect().await.stream();
    let e = s.next_event().await.unwrap();
    assert_eq!((e.event.as_deref(), e.retry), (Some("retry"), Some(2500)));
    assert_eq!(memory.hub().group_len("feed.main"), 1);
    assert_eq!(feed.group_for("main").as_deref(), Some("feed.main"));
    feed.publish("main", Message::text("hello")).await.unwrap();
    assert_eq!(s.next_event().await.unwrap().data, "hello");
    assert!(feed.publish("bad topic", Message::text("x")).await.is_err());
}
