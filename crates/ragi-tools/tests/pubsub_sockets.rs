//! The pub/sub apps over real sockets, served by `ragi-server`: the chat as `ragi demo` mounts
//! it (two WebSocket clients see each other's messages; one drops its TCP connection and the
//! other sees it gone with `client_closed`; the SSE + POST fallback shares the room), and a
//! broadcast client that does not read while the others are served at full speed.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;

use ragi_tools::channels::{Layer, MemoryLayer, Message, Overflow};
use ragi_tools::pubsub::{Chat, WsBroadcast};
use ragi_tools::router::Router;
use serde_json::{json, Value};
use support::{serve, within, Client};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMsg;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn demo_routes() -> Router {
    Router::new().mount("/api/chat", Chat::new())
}

async fn join(addr: std::net::SocketAddr, room: &str, nick: &str) -> Ws {
    let url = format!("ws://{addr}/api/chat/{room}/ws?nick={nick}");
    within("connect", tokio_tungstenite::connect_async(url))
        .await
        .unwrap()
        .0
}

/// The next JSON text frame (pings are answered by the client library).
async fn next(ws: &mut Ws) -> Value {
    within("a chat frame", async {
        loop {
            match ws.next().await {
                Some(Ok(WsMsg::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
                Some(Ok(WsMsg::Ping(_) | WsMsg::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    })
    .await
}

fn presence(nick: &str, online: bool, reason: Option<&str>) -> Value {
    json!({"type": "presence", "room": "lobby", "nick": nick, "online": online, "reason": reason})
}

/// A plain HTTP/1.1 request on a fresh connection; the response's body as JSON.
async fn http(addr: std::net::SocketAddr, request: &str) -> (u16, Value) {
    let mut c = Client::connect(addr).await;
    c.send(request.as_bytes()).await;
    let raw = c.read_to_end().await;
    let text = String::from_utf8(raw).unwrap();
    let status: u16 = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn two_websocket_clients_chat_and_a_dropped_connection_is_seen_gone() {
    let server = serve(demo_routes()).await;
    let mut ann = join(server.addr, "lobby", "ann").await;
    assert_eq!(next(&mut ann).await, presence("ann", true, None));
    let mut bob = join(server.addr, "lobby", "bob").await;
    assert_eq!(next(&mut ann).await, presence("bob", true, None));
    assert_eq!(next(&mut bob).await, presence("bob", true, None));

    ann.send(WsMsg::text(r#"{"nick": "ann", "text": "hello bob"}"#))
        .await
        .unwrap();
    bob.send(WsMsg::text(r#"{"text": "hello ann"}"#))
        .await
        .unwrap();
    for ws in [&mut ann, &mut bob] {
        let mut got: Vec<(String, String)> = Vec::new();
        for _ in 0..2 {
            let m = next(ws).await;
            assert_eq!(
                (m["type"].as_str(), m["room"].as_str()),
                (Some("message"), Some("lobby"))
            );
            got.push((
                m["nick"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap().to_owned(),
            ));
        }
        got.sort();
        assert_eq!(
            got,
            [
                ("ann".to_owned(), "hello bob".to_owned()),
                ("bob".to_owned(), "hello ann".to_owned())
            ]
        );
    }

    // Bob's TCP connection goes away without a close frame (a killed tab, a lost network
    // with a FIN): Ann sees him gone with the reason of his connection object.
    drop(bob); // the socket closes; no close frame is sent
    assert_eq!(
        next(&mut ann).await,
        presence("bob", false, Some("client_closed"))
    );
    let (status, members) = http(
        server.addr,
        "GET /api/chat/lobby/members HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        members,
        json!([
            {"nick": "ann", "online": true, "left_reason": null},
            {"nick": "bob", "online": false, "left_reason": "client_closed"}
        ])
    );

    // A clean leave (the page's "Leave" button: a close frame) is `client_closed` too.
    let mut cat = join(server.addr, "lobby", "cat").await;
    assert_eq!(next(&mut ann).await, presence("cat", true, None));
    next(&mut cat).await;
    cat.close(None).await.unwrap();
    assert_eq!(
        next(&mut ann).await,
        presence("cat", false, Some("client_closed"))
    );
}

#[tokio::test]
async fn the_sse_fallback_and_post_over_sockets() {
    let server = serve(demo_routes()).await;
    let mut ann = join(server.addr, "lobby", "ann").await;
    next(&mut ann).await;

    // An EventSource: `accept: text/event-stream` (an `sse` scope).
    let mut es = Client::connect(server.addr).await;
    es.send(
        b"GET /api/chat/lobby/events?nick=sam HTTP/1.1\r\nhost: t\r\naccept: text/event-stream\r\n\r\n",
    )
    .await;
    let at = es.read_until(0, b"event: presence\n").await;
    assert!(es.text().starts_with("HTTP/1.1 200"), "{}", es.text());
    assert!(es.text().contains("content-type: text/event-stream"));
    assert_eq!(next(&mut ann).await, presence("sam", true, None));

    // Sam posts; both see it (Sam as a default `message` event: a `data:` line alone).
    let body = r#"{"nick": "sam", "text": "via post"}"#;
    let (status, sent) = http(
        server.addr,
        &format!(
            "POST /api/chat/lobby/messages HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(sent["text"], "via post");
    let m = next(&mut ann).await;
    assert_eq!(
        (m["nick"].as_str(), m["text"].as_str()),
        (Some("sam"), Some("via post"))
    );
    let end = es.read_until(at, b"\"text\":\"via post\"").await;
    let event = &es.text()[at..end];
    assert!(
        !event.contains("event:") && event.contains("data: {\"type\":\"message\""),
        "{event:?}"
    );

    // Sam's connection drops: Ann sees it with `client_closed`.
    drop(es);
    assert_eq!(
        next(&mut ann).await,
        presence("sam", false, Some("client_closed"))
    );
}

/// A WebSocket client that stops reading (its socket buffers fill, then the server's sends to
/// it wait): the publisher and the other client go on at full speed; the slow one, under
/// `Overflow::Close`, finds a 1013 close after what was in flight.
#[tokio::test]
async fn a_client_that_does_not_read_does_not_delay_the_others() {
    let layer: Layer = Arc::new(MemoryLayer::new());
    let rooms = WsBroadcast::new(layer)
        .capacity(16)
        .overflow(Overflow::Close);
    let server = serve(Router::new().mount("/rooms", rooms.clone())).await;
    let url = format!("ws://{}/rooms/feed", server.addr);
    let mut slow: Ws = within("connect", tokio_tungstenite::connect_async(&url))
        .await
        .unwrap()
        .0;
    let mut fast: Ws = within("connect", tokio_tungstenite::connect_async(&url))
        .await
        .unwrap()
        .0;
    // 2000 × 16 KiB = 32 MiB: far more than the socket buffers hold for the slow client.
    // Each message is published, then read by the fast client, in turn: the publisher and
    // the fast client keep their pace while the slow one reads nothing.
    let payload = "x".repeat(16 * 1024);
    for n in 0..2000 {
        within(
            "a broadcast (it never waits for a subscriber)",
            rooms.broadcast("feed", Message::text(format!("{n:05}{payload}"))),
        )
        .await
        .unwrap();
        let got = within("the fast client's message", async {
            loop {
                match fast.next().await {
                    Some(Ok(WsMsg::Text(t))) => return t,
                    Some(Ok(WsMsg::Ping(_) | WsMsg::Pong(_))) => continue,
                    other => panic!("message {n}: {other:?}"),
                }
            }
        })
        .await;
        assert_eq!(&got.as_str()[..5], format!("{n:05}"));
    }
    // Now the slow client reads: what was in flight, then the close.
    let close = within("the slow client's close", async {
        loop {
            match slow.next().await {
                Some(Ok(WsMsg::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .expect("a close frame");
    assert_eq!(u16::from(close.code), 1013);
    assert_eq!(close.reason.as_str(), "queue_overflow");
}
