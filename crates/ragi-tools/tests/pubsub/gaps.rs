//! Gaps and an unavailable backend, with a test backend that loses its connection: every
//! subscriber is told, publishing fails at once (never hangs), delivery resumes after.

use std::sync::Arc;

use ragi_tools::channels::{Layer, MemoryPresence, Message};
use ragi_tools::pubsub::{Chat, SsePubSub, WsBroadcast, WsEcho};
use ragi_tools::router::Router;
use ragi_tools::test::{TestClient, TestError};
use serde_json::{json, Value};

use super::support::{within, FlakyLayer};

struct Setup {
    flaky: FlakyLayer,
    client: TestClient,
    feeds: SsePubSub,
    rooms: WsBroadcast,
}

fn setup() -> Setup {
    let flaky = FlakyLayer::new();
    let layer: Layer = Arc::new(flaky.clone());
    let feeds = SsePubSub::new(layer.clone());
    let rooms = WsBroadcast::new(layer.clone());
    let chat = Chat::with_backends(layer.clone(), Arc::new(MemoryPresence::new()));
    let router = Router::new()
        .mount("/feeds", feeds.clone())
        .mount("/rooms", rooms.clone())
        .mount("/echo", WsEcho::through(layer))
        .mount("/api/chat", chat);
    Setup {
        flaky,
        client: TestClient::new(router),
        feeds,
        rooms,
    }
}

#[tokio::test]
async fn a_lost_backend_connection_reaches_every_kind_of_client_as_a_gap() {
    let s = setup();
    let mut feed = s.client.sse("/feeds/news").connect().await.stream();
    let mut room = s
        .client
        .websocket("/rooms/lobby")
        .connect()
        .await
        .accepted();
    let mut echo = s.client.websocket("/echo").connect().await.accepted();
    let mut chat_ws = s
        .client
        .websocket("/api/chat/lobby/ws?nick=ann")
        .connect()
        .await
        .accepted();
    let mut chat_sse = s
        .client
        .sse("/api/chat/lobby/events?nick=bob")
        .connect()
        .await
        .stream();
    // The chat's own presence events first.
    let v: Value = chat_ws.receive_json().await.unwrap();
    assert_eq!(
        (v["type"].as_str(), v["nick"].as_str()),
        (Some("presence"), Some("ann"))
    );
    let v: Value = chat_ws.receive_json().await.unwrap();
    assert_eq!(v["nick"], "bob");
    assert_eq!(
        chat_sse.next_event().await.unwrap().event.as_deref(),
        Some("presence")
    );

    s.flaky.lose_connection();

    let e = feed.next_event().await.unwrap();
    assert_eq!(e.event.as_deref(), Some("gap"));
    assert_eq!(
        e.json::<Value>().unwrap(),
        json!({"type": "gap", "topic": "news", "reason": "reconnected", "missed": null})
    );
    let v: Value = room.receive_json().await.unwrap();
    assert_eq!(
        v,
        json!({"type": "gap", "reason": "reconnected", "missed": null})
    );
    let v: Value = echo.receive_json().await.unwrap();
    assert_eq!(v["reason"], "reconnected");
    let v: Value = chat_ws.receive_json().await.unwrap();
    assert_eq!(
        v,
        json!({"type": "gap", "room": "lobby", "reason": "reconnected", "missed": null})
    );
    let e = chat_sse.next_event().await.unwrap();
    assert_eq!(e.event.as_deref(), Some("gap"));
    assert_eq!(e.json::<Value>().unwrap()["room"], "lobby");

    // While it is down, publishing fails at once: an error to the caller, a 503 to an HTTP
    // client, a 1013 close to a WebSocket client whose message could not be published.
    let err = within("a publish", s.feeds.publish("news", Message::text("x")))
        .await
        .unwrap_err();
    assert!(err.is_unavailable());
    let r = s
        .client
        .post("/api/chat/lobby/messages")
        .json(&json!({"nick": "bob", "text": "hello?"}))
        .send()
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    let sub = s.client.sse("/feeds/news").connect().await.declined();
    assert_eq!(sub.status(), 503, "a subscription the backend refuses");
    room.send_text("lost?").await.unwrap();
    match room.receive().await {
        Err(TestError::Closed { code, reason }) => {
            assert_eq!((code, reason.as_str()), (1013, "channel layer unavailable"))
        }
        other => panic!("{other:?}"),
    }

    // Back: delivery resumes.
    s.flaky.reconnect();
    s.feeds
        .publish("news", Message::text("back"))
        .await
        .unwrap();
    assert_eq!(feed.next_event().await.unwrap().data, "back");
    s.rooms
        .broadcast("lobby", Message::text("hi"))
        .await
        .unwrap();
    echo.send_text("ping").await.unwrap();
    assert_eq!(echo.receive_text().await.unwrap(), "ping");
    let r = s
        .client
        .post("/api/chat/lobby/messages")
        .json(&json!({"nick": "bob", "text": "back"}))
        .send()
        .await;
    assert_eq!(r.status(), 202);
    let v: Value = chat_ws.receive_json().await.unwrap();
    assert_eq!(
        (v["type"].as_str(), v["text"].as_str()),
        (Some("message"), Some("back"))
    );
}
