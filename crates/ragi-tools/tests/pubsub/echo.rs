//! `WsEcho`, directly and through a layer; the PAGI-style receive wrapper on a raw app.

use std::sync::Arc;

use bytes::Bytes;
use ragi::{Headers, Message as WsMessage, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use ragi_tools::channels::{ChannelReceiver, Incoming, Layer, MemoryLayer, SubscribeOptions};
use ragi_tools::pubsub::WsEcho;
use ragi_tools::test::{TestClient, TestError};

use super::support::{until, FlakyLayer};

async fn echoes(client: &TestClient) {
    let mut ws = client.websocket("/echo").connect().await.accepted();
    for n in 0..5 {
        ws.send_text(format!("t{n}")).await.unwrap();
        ws.send_bytes(Bytes::from(vec![n])).await.unwrap();
    }
    for n in 0..5 {
        assert_eq!(ws.receive_text().await.unwrap(), format!("t{n}"));
        assert_eq!(ws.receive_bytes().await.unwrap(), Bytes::from(vec![n]));
    }
    ws.close(1000, "done").await;
    assert!(matches!(
        ws.receive().await,
        Err(TestError::Closed { code: 1000, .. })
    ));
    assert!(ws.wait_app().await.error().is_none());
}

#[tokio::test]
async fn echo_directly() {
    echoes(&TestClient::new(WsEcho::new())).await;
}

#[tokio::test]
async fn echo_through_the_layer() {
    let memory = MemoryLayer::new();
    echoes(&TestClient::new(WsEcho::through(Arc::new(memory.clone())))).await;
    until("the session's channel is gone", || {
        memory.hub().subscriptions() == 0
    })
    .await;
}

/// Through a backend that carries messages in their wire form (as a remote one would).
#[tokio::test]
async fn echo_through_a_wire_backend() {
    echoes(&TestClient::new(WsEcho::through(Arc::new(
        FlakyLayer::new(),
    ))))
    .await;
}

/// A raw app with `ChannelReceiver`: the client's events and the channel's deliveries from
/// one `receive`.
#[tokio::test]
async fn the_receive_wrapper_interleaves_client_and_channel() {
    let layer: Layer = Arc::new(MemoryLayer::new());
    let l = layer.clone();
    let app = move |scope: Scope, receive: Receiver, send: Sender| {
        let layer = l.clone();
        async move {
            let sub = layer
                .subscribe(SubscribeOptions::new().bind(scope.connection()))
                .await?;
            let name = sub.name().to_owned();
            let mut receive = ChannelReceiver::new(receive, sub);
            loop {
                match receive.receive().await {
                    Incoming::Client(ReceiveEvent::WebSocketConnect) => {
                        send.send(SendEvent::WebSocketAccept {
                            subprotocol: None,
                            headers: Headers::new(),
                        })
                        .await?;
                    }
                    // The client's text goes to our own channel…
                    Incoming::Client(ReceiveEvent::WebSocketReceive(WsMessage::Text(t))) => {
                        layer
                            .send(
                                &name,
                                ragi_tools::channels::Message::text(format!("via {t}")),
                            )
                            .await?;
                    }
                    Incoming::Client(_) => return Ok(()),
                    // …and comes back from it.
                    Incoming::Message(m) => {
                        let text = m.as_str().unwrap_or_default().to_owned();
                        send.send(SendEvent::WebSocketSend(WsMessage::Text(text)))
                            .await?;
                    }
                    Incoming::Gap(_) | Incoming::Ended(_) => return Ok(()),
                }
            }
        }
    };
    let client = TestClient::new(app);
    let mut ws = client.websocket("/").connect().await.accepted();
    ws.send_text("a").await.unwrap();
    assert_eq!(ws.receive_text().await.unwrap(), "via a");
}
