//! The pub/sub apps on one in-memory channel layer: a chat with presence, SSE feeds, a
//! WebSocket broadcast and an echo, served by ragi-server.
//!
//! ```text
//! cargo run -p ragi-tools --example pubsub -- --listen 127.0.0.1:8000
//!
//! curl -N http://127.0.0.1:8000/feeds/clock                 # a tick every second
//! curl -N http://127.0.0.1:8000/feeds/news &                 # then publish to it:
//! curl -d 'hello' http://127.0.0.1:8000/publish/news
//!
//! websocat 'ws://127.0.0.1:8000/api/chat/lobby/ws?nick=ann'  # type {"text": "hi"}
//! curl -N 'http://127.0.0.1:8000/api/chat/lobby/events?nick=bob'
//! curl -H 'content-type: application/json' -d '{"nick": "bob", "text": "hi ann"}' \
//!      http://127.0.0.1:8000/api/chat/lobby/messages
//! curl http://127.0.0.1:8000/api/chat/lobby/members         # who is here, who left and why
//!
//! websocat ws://127.0.0.1:8000/rooms/lobby                   # in two terminals
//! websocat ws://127.0.0.1:8000/echo
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ragi::ReceiveEvent;
use ragi_tools::channels::{Layer, MemoryLayer, MemoryPresence, Message};
use ragi_tools::pubsub::{Chat, SsePubSub, WsBroadcast, WsEcho};
use ragi_tools::router::{Route, Router};
use ragi_tools::{handler, Context, Error, HttpContext, Response};

/// `POST /publish/{topic}`: the body, as text, to every subscriber of the feed.
fn publisher(feeds: SsePubSub) -> impl ragi::App {
    handler(move |mut cx: HttpContext| {
        let feeds = feeds.clone();
        async move {
            let topic = cx.param("topic").ok_or_else(Error::not_found)?;
            let mut body = Vec::new();
            loop {
                match cx.receive().await {
                    ReceiveEvent::Request { body: piece, more } => {
                        body.extend_from_slice(&piece);
                        if body.len() > 64 * 1024 {
                            return Err(Error::body_too_large(64 * 1024));
                        }
                        if !more {
                            break;
                        }
                    }
                    ReceiveEvent::Disconnect { reason } => return Err(Error::disconnected(reason)),
                    _ => {}
                }
            }
            let text = String::from_utf8(body).map_err(|_| Error::bad_request("not UTF-8"))?;
            feeds.publish(&topic, Message::text(text)).await?;
            Ok::<_, Error>(Response::empty(202))
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen: SocketAddr = "127.0.0.1:8000".parse()?;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let v = args.next().ok_or("--listen needs an address")?;
                listen = v
                    .parse()
                    .map_err(|e| format!("--listen {v:?}: not an address ({e})"))?;
            }
            other => return Err(format!("unknown argument {other:?} (try --listen ADDR)").into()),
        }
    }

    // One layer for everything: a message published anywhere reaches every app's clients.
    let layer: Layer = Arc::new(MemoryLayer::new());
    let feeds = SsePubSub::new(layer.clone()).keepalive(Duration::from_secs(15));
    let chat = Chat::with_backends(layer.clone(), Arc::new(MemoryPresence::new()));
    let app = Router::new()
        .mount("/api/chat", chat)
        .mount("/feeds", feeds.clone())
        .mount("/rooms", WsBroadcast::new(layer.clone()))
        .mount("/echo", WsEcho::through(layer))
        .route(
            "/publish/{topic}",
            Route::new().on_app(http::Method::POST, publisher(feeds.clone())),
        );

    // A clock feed.
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for n in 0u64.. {
            tick.tick().await;
            let _ = feeds
                .publish(
                    "clock",
                    Message::text(format!("tick {n}")).with_id(n.to_string()),
                )
                .await;
        }
    });

    let server = ragi_server::Server::new(ragi_server::Config::default())
        .listen(listen)
        .handle_signals(true)
        .bind()
        .await?;
    println!("listening on http://{}", server.local_addrs()[0]);
    server.serve(app).await?;
    Ok(())
}
