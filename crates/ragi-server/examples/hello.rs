//! Hello, World! on ragi, with the connection object watching the client.
//!
//! `cargo run --example hello` then `curl http://127.0.0.1:8000/`.
//!
//! `run(app)` gives the binary the whole server command line: `--help` lists every option
//! with its environment variable (`--listen unix:/tmp/hello.sock`, `RAGI_LISTEN=…`,
//! `--config hello.toml`, `--tls-cert …`, `--log-level debug`, …).

use ragi::{Headers, Receiver, Scope, SendEvent, Sender};

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

fn main() -> std::process::ExitCode {
    // Flags, environment, config file, logs on stderr, signals, `listening on …`.
    ragi_server::run(app)
}
