//! `WsBroadcast` through the test client: fan-out, echo, slow consumers, departures.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ragi::{DisconnectReason, Message as WsMessage};
use ragi_tools::channels::{Layer, MemoryLayer, Message, Overflow};
use ragi_tools::pubsub::WsBroadcast;
use ragi_tools::router::Router;
use ragi_tools::test::{TestClient, TestError, TestWebSocket};
use serde_json::Value;

use super::support::{until, until_within, within};

fn setup(
    configure: impl FnOnce(WsBroadcast) -> WsBroadcast,
) -> (MemoryLayer, WsBroadcast, TestClient) {
    let memory = MemoryLayer::new();
    let layer: Layer = Arc::new(memory.clone());
    let app = configure(WsBroadcast::new(layer));
    let router = Router::new().mount("/rooms", app.clone());
    (memory, app, TestClient::new(router))
}

async fn join(client: &TestClient, topic: &str) -> TestWebSocket {
    client
        .websocket(&format!("/rooms/{topic}"))
        .connect()
        .await
        .accepted()
}

/// Fifty clients of one topic: a server-side broadcast reaches each of them, in order; a
/// client's message reaches every other client and not itself; another topic hears nothing.
#[tokio::test]
async fn messages_fan_out_to_every_client_of_the_topic() {
    let (memory, rooms, client) = setup(|b| b);
    let mut clients = Vec::new();
    for _ in 0..50 {
        clients.push(join(&client, "lobby").await);
    }
    let mut elsewhere = join(&client, "other").await;
    assert_eq!(memory.hub().group_len("lobby"), 50);
    for n in 0..10 {
        rooms
            .broadcast("lobby", Message::text(format!("m{n}")))
            .await
            .unwrap();
    }
    for ws in &mut clients {
        for n in 0..10 {
            assert_eq!(ws.receive_text().await.unwrap(), format!("m{n}"));
        }
    }
    clients[0].send_text("from 0").await.unwrap();
    clients[0]
        .send_bytes(Bytes::from_static(b"\x00\x01"))
        .await
        .unwrap();
    for ws in &mut clients[1..] {
        assert_eq!(ws.receive_text().await.unwrap(), "from 0");
        assert_eq!(
            ws.receive().await.unwrap(),
            WsMessage::Binary(Bytes::from_static(b"\x00\x01"))
        );
    }
    // The sender does not get its own messages back (echo_self is off by default).
    rooms
        .broadcast("lobby", Message::text("after"))
        .await
        .unwrap();
    assert_eq!(clients[0].receive_text().await.unwrap(), "after");
    // The other topic heard none of it.
    rooms
        .broadcast("other", Message::text("only here"))
        .await
        .unwrap();
    assert_eq!(elsewhere.receive_text().await.unwrap(), "only here");
}

#[tokio::test]
async fn echo_self_sends_the_senders_messages_back() {
    let (_m, _rooms, client) = setup(|b| b.echo_self(true));
    let mut a = join(&client, "t").await;
    let mut b = join(&client, "t").await;
    a.send_text("hi").await.unwrap();
    assert_eq!(a.receive_text().await.unwrap(), "hi");
    assert_eq!(b.receive_text().await.unwrap(), "hi");
}

/// A client that stops reading: the publisher and the other clients go on at full speed; its
/// own queue stays bounded; when it reads again it gets a gap notice (how many it lost) and
/// the newest messages.
#[tokio::test]
async fn a_client_that_does_not_read_delays_nobody_and_learns_what_it_lost() {
    let (_m, rooms, client) = setup(|b| b.capacity(4));
    let mut slow = join(&client, "feed").await;
    let mut fast = join(&client, "feed").await;
    slow.stall();
    for n in 0..200 {
        within(
            "a broadcast (it never waits for a subscriber)",
            rooms.broadcast("feed", Message::text(n.to_string())),
        )
        .await
        .unwrap();
        assert_eq!(fast.receive_text().await.unwrap(), n.to_string());
    }
    slow.resume();
    // What the app had in hand when the client stalled comes first, then the gap, then the
    // four newest; every message is either received or counted as missed.
    let mut received = Vec::new();
    let mut missed = 0;
    while received.last().map(String::as_str) != Some("199") {
        let text = slow.receive_text().await.unwrap();
        match serde_json::from_str::<Value>(&text) {
            Ok(v) if v["type"] == "gap" => {
                assert_eq!(v["reason"], "queue_overflow");
                missed += v["missed"].as_u64().unwrap();
            }
            _ => received.push(text),
        }
    }
    assert!(
        received.len() <= 4 + 1,
        "more than the bound queued: {received:?}"
    );
    assert_eq!(received.len() as u64 + missed, 200);
    assert_eq!(
        received[received.len() - 4..],
        ["196", "197", "198", "199"].map(String::from)
    );
}

/// Under `Overflow::Close` the slow client is closed with 1013 at once (it need not read for
/// that), and leaves the topic; the others go on.
#[tokio::test]
async fn the_close_policy_closes_the_slow_client_with_1013() {
    let (memory, rooms, client) = setup(|b| b.capacity(4).overflow(Overflow::Close));
    let mut slow = join(&client, "feed").await;
    let mut fast = join(&client, "feed").await;
    slow.stall();
    for n in 0..20 {
        rooms
            .broadcast("feed", Message::text(n.to_string()))
            .await
            .unwrap();
        assert_eq!(fast.receive_text().await.unwrap(), n.to_string());
    }
    until("the slow client left the topic", || {
        memory.hub().group_len("feed") == 1
    })
    .await;
    match slow.receive().await {
        Err(TestError::Closed { code, reason }) => {
            assert_eq!((code, reason.as_str()), (1013, "queue_overflow"))
        }
        other => panic!("{other:?}"),
    }
    assert!(slow.wait_app().await.error().is_none());
}

/// The client leaving removes its subscription at once, from the connection object.
#[tokio::test]
async fn a_client_that_leaves_is_unsubscribed_at_once() {
    let (memory, rooms, client) = setup(|b| b);
    let mut a = join(&client, "t").await;
    let mut b = join(&client, "t").await;
    assert_eq!(memory.hub().group_len("t"), 2);
    a.disconnect_with(DisconnectReason::ClientClosed);
    // No wait: the connection object's callback removed it before `disconnect` returned.
    assert_eq!(memory.hub().group_len("t"), 1);
    assert_eq!(memory.hub().subscriptions(), 1);
    rooms
        .broadcast("t", Message::text("still here"))
        .await
        .unwrap();
    assert_eq!(b.receive_text().await.unwrap(), "still here");
    b.close(1000, "bye").await;
    until("the second client is unsubscribed", || {
        memory.hub().subscriptions() == 0
    })
    .await;
}

/// A topic comes from the path (or the route), else the fixed topic; bad ones are 404; a
/// plain GET is 426.
#[tokio::test]
async fn topics_and_other_requests() {
    let memory = MemoryLayer::new();
    let layer: Layer = Arc::new(memory.clone());
    let fixed = WsBroadcast::new(layer.clone()).topic("main");
    let by_param = WsBroadcast::new(layer);
    let router = Router::new()
        .mount("/fixed", fixed)
        .websocket("/t/{topic}", by_param);
    let client = TestClient::new(router);
    let _a = client.websocket("/fixed").connect().await.accepted();
    assert_eq!(memory.hub().group_len("main"), 1);
    let _b = client.websocket("/t/news").connect().await.accepted();
    assert_eq!(memory.hub().group_len("news"), 1);
    let denied = client.websocket("/fixed/a%20b").connect().await;
    assert_eq!(denied.status(), 404);
    let plain = client.get("/fixed").send().await;
    assert_eq!(plain.status(), 426);
}

/// Keep-alive: a client that stops answering pings is gone (`keepalive_timeout`) and leaves
/// the topic.
#[tokio::test(start_paused = true)]
async fn a_silent_client_times_out_and_leaves() {
    let (memory, _rooms, client) =
        setup(|b| b.keepalive(Duration::from_secs(20), Duration::from_secs(10)));
    let ws = join(&client, "t").await;
    ws.set_auto_pong(false);
    // Paused clock: the 30 s of the scenario pass at once.
    until_within(
        "the keep-alive dropped the client",
        Duration::from_secs(60),
        || memory.hub().group_len("t") == 0,
    )
    .await;
    assert_eq!(
        ws.connection().disconnect_reason(),
        Some(DisconnectReason::KeepaliveTimeout)
    );
}
