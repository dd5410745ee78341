//! The chat (the `ragi demo` chat API) through the test client: messages, presence with the
//! reason from the connection objects, the members list, the SSE + POST fallback, slow
//! consumers, and every refusal.

use std::sync::Arc;
use std::time::Duration;

use ragi::DisconnectReason;
use ragi_tools::channels::{Layer, MemoryLayer, MemoryPresence, Overflow};
use ragi_tools::pubsub::Chat;
use ragi_tools::router::Router;
use ragi_tools::test::{SseStream, TestClient, TestError, TestWebSocket};
use serde_json::{json, Value};

fn app(configure: impl FnOnce(Chat) -> Chat) -> (Chat, TestClient) {
    let chat = configure(Chat::new());
    // Mounted as `ragi demo` mounts it.
    let router = Router::new().mount("/api/chat", chat.clone());
    (chat, TestClient::new(router))
}

async fn ws(client: &TestClient, room: &str, nick: &str) -> TestWebSocket {
    client
        .websocket(&format!("/api/chat/{room}/ws"))
        .query("nick", nick)
        .connect()
        .await
        .accepted()
}

async fn sse(client: &TestClient, room: &str, nick: &str) -> SseStream {
    client
        .sse(&format!("/api/chat/{room}/events"))
        .query("nick", nick)
        .connect()
        .await
        .stream()
}

async fn next(ws: &mut TestWebSocket) -> Value {
    ws.receive_json().await.unwrap()
}

async fn members(client: &TestClient, room: &str) -> Value {
    let r = client
        .get(&format!("/api/chat/{room}/members"))
        .send()
        .await;
    assert_eq!(r.status(), 200);
    r.json()
}

fn presence(nick: &str, online: bool, reason: Option<&str>) -> Value {
    json!({"type": "presence", "room": "lobby", "nick": nick, "online": online, "reason": reason})
}

/// Two WebSocket participants: each sees the other arrive, their messages (with the demo's
/// shapes), and the other leave with the reason of its connection object.
#[tokio::test]
async fn two_participants_chat_and_see_each_other_leave() {
    let (_chat, client) = app(|c| c);
    let mut ann = ws(&client, "lobby", "ann").await;
    assert_eq!(next(&mut ann).await, presence("ann", true, None));
    let mut bob = ws(&client, "lobby", "bob").await;
    assert_eq!(next(&mut ann).await, presence("bob", true, None));
    assert_eq!(next(&mut bob).await, presence("bob", true, None));

    ann.send_json(&json!({"text": "hi bob"})).await.unwrap();
    for c in [&mut ann, &mut bob] {
        let m = next(c).await;
        assert_eq!(m["type"], "message");
        assert_eq!(
            (m["room"].as_str(), m["nick"].as_str()),
            (Some("lobby"), Some("ann"))
        );
        assert_eq!(m["text"], "hi bob");
        assert!(m["at"].as_u64().unwrap() > 1_600_000_000_000);
    }
    // A `nick` field in a frame is ignored: the session's nick is used.
    bob.send_json(&json!({"nick": "mallory", "text": "hi"}))
        .await
        .unwrap();
    assert_eq!(next(&mut ann).await["nick"], "bob");

    assert_eq!(
        members(&client, "lobby").await,
        json!([
            {"nick": "ann", "online": true, "left_reason": null},
            {"nick": "bob", "online": true, "left_reason": null}
        ])
    );

    // Bob's connection drops (no close frame): Ann sees it with the connection's reason.
    bob.disconnect_with(DisconnectReason::ClientClosed);
    assert_eq!(
        next(&mut ann).await,
        presence("bob", false, Some("client_closed"))
    );
    assert_eq!(
        members(&client, "lobby").await[1],
        json!({"nick": "bob", "online": false, "left_reason": "client_closed"})
    );
    // Another room saw none of it.
    assert_eq!(members(&client, "elsewhere").await, json!([]));
}

/// The reason is the connection object's, whatever it is: a clean close frame, a write
/// timeout, a keep-alive timeout.
#[tokio::test]
async fn leaves_carry_the_connection_objects_reason() {
    let (_chat, client) = app(|c| c);
    let mut watcher = ws(&client, "lobby", "watcher").await;
    next(&mut watcher).await;
    for (nick, how) in [
        ("closer", None),
        ("stuck", Some(DisconnectReason::WriteTimeout)),
    ] {
        let mut p = ws(&client, "lobby", nick).await;
        assert_eq!(next(&mut watcher).await, presence(nick, true, None));
        match &how {
            None => p.close(1000, "bye").await, // the browser's "leave": a close frame
            Some(r) => {
                p.disconnect_with(r.clone());
            }
        }
        let reason = how.map_or_else(|| "client_closed".to_owned(), |r| r.as_str().to_owned());
        assert_eq!(
            next(&mut watcher).await,
            presence(nick, false, Some(&reason))
        );
    }
}

/// A participant that stops answering pings is gone with `keepalive_timeout` (paused clock:
/// the 30 s pass at once).
#[tokio::test(start_paused = true)]
async fn a_vanished_participant_leaves_with_keepalive_timeout() {
    let chat = Chat::new().ws_keepalive(Some((Duration::from_secs(20), Duration::from_secs(10))));
    // Reads wait up to 60 s of the paused clock: the ping, then the pong's deadline.
    let client =
        TestClient::new(Router::new().mount("/api/chat", chat)).timeout(Duration::from_secs(60));
    let mut ann = ws(&client, "lobby", "ann").await;
    next(&mut ann).await;
    let ghost = ws(&client, "lobby", "ghost").await;
    next(&mut ann).await;
    ghost.set_auto_pong(false);
    assert_eq!(
        next(&mut ann).await,
        presence("ghost", false, Some("keepalive_timeout"))
    );
}

/// The SSE + POST fallback shares the rooms: an SSE participant is present, hears WebSocket
/// messages as `message` events and presence as `presence` events, posts with POST, and its
/// departure is seen with its reason.
#[tokio::test]
async fn the_sse_fallback_shares_the_rooms() {
    let (_chat, client) = app(|c| c);
    let mut ann = ws(&client, "lobby", "ann").await;
    next(&mut ann).await;
    let mut bob = sse(&client, "lobby", "bob").await;
    assert_eq!(next(&mut ann).await, presence("bob", true, None));
    let e = bob.next_event().await.unwrap();
    assert_eq!(e.event.as_deref(), Some("presence"));
    assert_eq!(e.json::<Value>().unwrap(), presence("bob", true, None));

    ann.send_json(&json!({"text": "over ws"})).await.unwrap();
    let e = bob.next_event().await.unwrap();
    assert_eq!(e.event, None, "messages are default (`message`) events");
    let m: Value = e.json().unwrap();
    assert_eq!(
        (m["nick"].as_str(), m["text"].as_str()),
        (Some("ann"), Some("over ws"))
    );

    let r = client
        .post("/api/chat/lobby/messages")
        .json(&json!({"nick": "bob", "text": "over post"}))
        .send()
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>()["text"], "over post");
    next(&mut ann).await; // ann's own message first
    let m = next(&mut ann).await;
    assert_eq!(
        (m["nick"].as_str(), m["text"].as_str()),
        (Some("bob"), Some("over post"))
    );
    let e = bob.next_event().await.unwrap();
    assert_eq!(e.json::<Value>().unwrap()["text"], "over post");

    assert!(bob.disconnect(DisconnectReason::ClientClosed)); // EventSource.close()
    assert_eq!(
        next(&mut ann).await,
        presence("bob", false, Some("client_closed"))
    );
    assert_eq!(
        members(&client, "lobby").await,
        json!([
            {"nick": "ann", "online": true, "left_reason": null},
            {"nick": "bob", "online": false, "left_reason": "client_closed"}
        ])
    );
}

/// One nick through two connections (a tab over WebSocket, another over SSE) stays online
/// until the last one leaves; the room sees one event each way.
#[tokio::test]
async fn a_nick_with_two_connections_leaves_with_the_last() {
    let (_chat, client) = app(|c| c);
    let mut watcher = ws(&client, "lobby", "w").await;
    next(&mut watcher).await;
    let mut tab1 = ws(&client, "lobby", "ann").await;
    assert_eq!(next(&mut watcher).await, presence("ann", true, None));
    let mut tab2 = sse(&client, "lobby", "ann").await;
    tab1.disconnect_with(DisconnectReason::ClientClosed);
    // No event for the first; the next one the watcher sees is the second tab's message.
    client
        .post("/api/chat/lobby/messages")
        .json(&json!({"nick": "ann", "text": "still here"}))
        .send()
        .await;
    assert_eq!(next(&mut watcher).await["text"], "still here");
    assert_eq!(members(&client, "lobby").await[1]["online"], true);
    tab2.disconnect(DisconnectReason::ReadError);
    assert_eq!(
        next(&mut watcher).await,
        presence("ann", false, Some("read_error"))
    );
}

/// A slow participant under `Overflow::Close` is closed with 1013 (`queue_overflow`) and
/// leaves with that reason; the room goes on. Under the default, it gets a `gap` instead.
#[tokio::test]
async fn slow_participants() {
    let (_chat, client) = app(|c| c.capacity(4).overflow(Overflow::Close));
    let mut ann = ws(&client, "lobby", "ann").await;
    next(&mut ann).await;
    let mut slow = ws(&client, "lobby", "slow").await;
    next(&mut ann).await;
    slow.stall();
    // The room goes on; somewhere among its messages, the slow one is seen leaving.
    let mut texts = Vec::new();
    let mut left = None;
    for n in 0..10 {
        ann.send_json(&json!({"text": format!("m{n}")}))
            .await
            .unwrap();
        loop {
            let v = next(&mut ann).await;
            if v["type"] == "presence" {
                left = Some(v);
                continue;
            }
            texts.push(v["text"].as_str().unwrap().to_owned());
            break;
        }
    }
    assert_eq!(texts, (0..10).map(|n| format!("m{n}")).collect::<Vec<_>>());
    let left = match left {
        Some(v) => v,
        None => next(&mut ann).await,
    };
    assert_eq!(left, presence("slow", false, Some("queue_overflow")));
    // The close frame is not held back by the stall.
    let close = loop {
        match slow.receive().await {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(&close, TestError::Closed { code: 1013, reason } if reason == "queue_overflow"),
        "{close:?}"
    );

    let (_chat, client) = app(|c| c.capacity(4));
    let mut ann = ws(&client, "lobby", "ann").await;
    next(&mut ann).await;
    let mut slow = ws(&client, "lobby", "slow").await;
    next(&mut ann).await;
    slow.stall();
    for n in 0..10 {
        ann.send_json(&json!({"text": format!("m{n}")}))
            .await
            .unwrap();
        next(&mut ann).await;
    }
    slow.resume();
    let mut saw_gap = false;
    loop {
        let v = next(&mut slow).await;
        if v["type"] == "gap" {
            assert_eq!(
                (v["room"].as_str(), v["reason"].as_str()),
                (Some("lobby"), Some("queue_overflow"))
            );
            saw_gap = true;
        }
        if v["text"] == "m9" {
            break;
        }
    }
    assert!(saw_gap);
    assert_eq!(members(&client, "lobby").await[1]["online"], true);
}

/// Every refusal, with the status or close code the API documents.
#[tokio::test]
async fn refusals() {
    let (_chat, client) = app(|c| c.max_text(10));
    // Rooms and nicks: 400, on every endpoint.
    for path in [
        "/api/chat/bad.room/ws?nick=a",
        "/api/chat/lobby/ws",
        "/api/chat/lobby/ws?nick=",
    ] {
        assert_eq!(
            client.websocket(path).connect().await.status(),
            400,
            "{path}"
        );
    }
    let long = "n".repeat(33);
    for path in [
        "/api/chat/a%20b/events?nick=a".to_owned(),
        format!("/api/chat/lobby/events?nick={long}"),
        "/api/chat/lobby/events?nick=a%0Ab".to_owned(),
    ] {
        let r = client.sse(&path).connect().await.declined();
        assert_eq!(r.status(), 400, "{path}");
    }
    let post = |body: &'static str, ctype: &'static str| {
        client
            .post("/api/chat/lobby/messages")
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    assert_eq!(
        post(r#"{"nick": "a", "text": "x"}"#, "application/json")
            .await
            .status(),
        202
    );
    assert_eq!(
        post(r#"{"nick": "a", "text": "x""#, "application/json")
            .await
            .status(),
        400
    );
    assert_eq!(
        post(r#"{"nick": "a"}"#, "application/json").await.status(),
        422
    );
    assert_eq!(
        post(r#"{"nick": "a", "text": ""}"#, "application/json")
            .await
            .status(),
        422
    );
    assert_eq!(
        post(
            r#"{"nick": "a", "text": "01234567890"}"#,
            "application/json"
        )
        .await
        .status(),
        422,
        "over max_text"
    );
    assert_eq!(
        post(r#"{"nick": "", "text": "x"}"#, "application/json")
            .await
            .status(),
        400
    );
    assert_eq!(
        post(r#"{"nick": "a", "text": "x"}"#, "text/plain")
            .await
            .status(),
        415
    );
    let big = client
        .post("/api/chat/lobby/messages")
        .json(&json!({"nick": "a", "text": "x".repeat(20_000)}))
        .send()
        .await;
    assert_eq!(big.status(), 413);
    let r = client.get("/api/chat/lobby/messages").send().await;
    assert_eq!((r.status(), r.header("allow")), (405, Some("POST")));
    let r = client.post("/api/chat/lobby/members").send().await;
    assert_eq!(r.status(), 405);
    for path in [
        "/api/chat/lobby",
        "/api/chat/lobby/nope",
        "/api/chat/lobby/ws/x",
    ] {
        assert_eq!(client.get(path).send().await.status(), 404, "{path}");
    }
    assert_eq!(
        client
            .websocket("/api/chat/lobby/events?nick=a")
            .connect()
            .await
            .status(),
        404
    );
    assert_eq!(
        client
            .get("/api/chat/lobby/ws?nick=a")
            .send()
            .await
            .status(),
        426
    );

    // Frames: binary → 1003; malformed JSON or a bad text → 1008. The leave says
    // `protocol_error`.
    let mut w = ws(&client, "lobby", "w").await;
    next(&mut w).await;
    for (frame, code) in [
        (None, 1003u16),
        (Some("{"), 1008),
        (Some(r#"{"text": ""}"#), 1008),
    ] {
        let mut p = ws(&client, "lobby", "p").await;
        next(&mut w).await;
        match frame {
            None => p.send_bytes(vec![1u8]).await.unwrap(),
            Some(t) => p.send_text(t).await.unwrap(),
        }
        let end = loop {
            match p.receive().await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert!(
            matches!(end, TestError::Closed { code: c, .. } if c == code),
            "{end:?}"
        );
        assert_eq!(
            next(&mut w).await,
            presence("p", false, Some("protocol_error"))
        );
    }
}

/// A chat on shared backends: two chat apps (as two processes would be, with a Redis layer
/// and presence) share rooms and presence.
#[tokio::test]
async fn two_chats_on_one_layer_and_presence_share_the_rooms() {
    let layer: Layer = Arc::new(MemoryLayer::new());
    let shared = Arc::new(MemoryPresence::new());
    let one = TestClient::new(Chat::with_backends(layer.clone(), shared.clone()));
    let two = TestClient::new(Chat::with_backends(layer, shared));
    let mut ann = one
        .websocket("/lobby/ws?nick=ann")
        .connect()
        .await
        .accepted();
    next(&mut ann).await;
    let mut bob = two
        .websocket("/lobby/ws?nick=bob")
        .connect()
        .await
        .accepted();
    assert_eq!(next(&mut ann).await, presence("bob", true, None));
    next(&mut bob).await;
    bob.send_json(&json!({"text": "across"})).await.unwrap();
    assert_eq!(next(&mut ann).await["text"], "across");
    let r = one.get("/lobby/members").send().await;
    assert_eq!(r.json::<Value>().as_array().unwrap().len(), 2);
    drop(bob); // the client vanishes
    assert_eq!(
        next(&mut ann).await,
        presence("bob", false, Some("client_closed"))
    );
}

/// The room's endpoints on their own, in a router with a `{room}` parameter.
#[tokio::test]
async fn the_endpoints_work_in_a_router_with_a_room_parameter() {
    let chat = Chat::new();
    let router = Router::new()
        .websocket("/r/{room}/socket", chat.websocket_app())
        .sse("/r/{room}/feed", chat.events_app())
        .mount("/r/{room}/post", chat.messages_app())
        .mount("/r/{room}/who", chat.members_app());
    let client = TestClient::new(router);
    let mut ann = client
        .websocket("/r/x/socket?nick=ann")
        .connect()
        .await
        .accepted();
    next(&mut ann).await;
    let mut feed = client.sse("/r/x/feed?nick=bob").connect().await.stream();
    next(&mut ann).await;
    feed.next_event().await.unwrap();
    let r = client
        .post("/r/x/post")
        .json(&json!({"nick": "bob", "text": "hey"}))
        .send()
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(next(&mut ann).await["text"], "hey");
    let who: Value = client.get("/r/x/who").send().await.json();
    assert_eq!(who.as_array().unwrap().len(), 2);
}
