//! An axum `Router` served by ragi-server, with ragi's connection object in every request.
//!
//! ```text
//! cargo run -p ragi-tools --example axum-on-ragi -- --listen 127.0.0.1:8000
//! curl http://127.0.0.1:8000/hello
//! curl -N http://127.0.0.1:8000/tokens      # Ctrl-C: the server logs why the body stopped
//! curl -N -H 'accept: text/event-stream' http://127.0.0.1:8000/tokens
//! ```
//!
//! WebSocket handshakes go to a ragi handler beside the router (the tower adapter cannot
//! upgrade a connection): `websocat ws://127.0.0.1:8000/ws` echoes.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use ragi::{App, Connection, Receiver, Scope, ScopeKind, Sender};
use ragi_tools::{ws, Error, WsContext};

/// A plain axum handler.
async fn hello() -> &'static str {
    "Hello from axum on ragi!\n"
}

/// A streaming body that stops when the client leaves: ragi drops it at once, and the handler
/// learns why through the connection object.
async fn tokens(Extension(conn): Extension<Connection>) -> Body {
    conn.on_disconnect(|reason| eprintln!("client left the token stream: {reason}"));
    let stream = futures_util::stream::unfold(0u64, |i| async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Some((
            Ok::<_, Infallible>(Bytes::from(format!("token {i}\n"))),
            i + 1,
        ))
    });
    Body::from_stream(stream)
}

/// A ragi WebSocket echo for the paths axum cannot serve.
async fn echo(mut cx: WsContext) -> Result<(), Error> {
    cx.accept().await?;
    while let Some(m) = cx.receive().await {
        cx.send(m).await?;
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    // Built before `run` starts the runtime: nothing here needs one.
    let router = Router::new()
        .route("/hello", get(hello))
        .route("/tokens", get(tokens));
    let axum_app = ragi_tools::tower::service(router);
    let ws_app = ws::handler(echo);
    // WebSocket scopes to ragi, everything else to axum. (The ragi-tools router does this
    // with routes: it takes any app.)
    let app = move |scope: Scope, receive: Receiver, send: Sender| match scope.kind {
        ScopeKind::WebSocket => ws_app.call(scope, receive, send),
        _ => axum_app.call(scope, receive, send),
    };

    // The server's whole command line: --listen, TLS, limits, RAGI_* variables, --config.
    ragi_server::run(app)
}
