//! Hello, World! on ragi, with the connection object watching the client.
//!
//! `cargo run --example hello` then `curl http://127.0.0.1:8000/`.

use ragi::{Headers, Receiver, Scope, SendEvent, Sender};
use ragi_server::{Config, Server};

async fn app(scope: Scope, _receive: Receiver, send: Sender) -> ragi::AppResult {
    // Know when the client leaves, without touching the receive queue.
    scope
        .connection()
        .on_disconnect(|reason| eprintln!("client left: {reason}"));
    send.send(SendEvent::response_start(
        200,
        Headers::new().with("content-type", "text/plain"),
    ))
    .await?;
    send.send(SendEvent::body("Hello, World!")).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), ragi_server::Error> {
    let server = Server::new(Config::default())
        .listen("127.0.0.1:8000".parse().unwrap())
        .handle_signals(true) // SIGTERM / SIGINT: graceful shutdown
        .bind()
        .await?;
    server.serve(app).await
}
