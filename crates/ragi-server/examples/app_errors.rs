//! What a failing app looks like from the outside: a 500 for the client, and a log line on
//! stderr with the connection id and the app's error, in plain text or JSON.
//!
//! `cargo run --example app_errors`, then:
//!
//! ```text
//! curl -i http://127.0.0.1:8000/fail      # the app returns an error
//! curl -i http://127.0.0.1:8000/invalid   # the app sends a body before the response start
//! curl -i http://127.0.0.1:8000/          # 200
//! ```
//!
//! and watch stderr (`--log-format json` for JSON lines).

use ragi::{Headers, Receiver, Scope, ScopeKind, SendEvent, Sender};

async fn app(scope: Scope, _receive: Receiver, send: Sender) -> ragi::AppResult {
    if scope.kind != ScopeKind::Http {
        return Err(ragi::UnsupportedScope(scope.kind).into());
    }
    match scope.path.as_str() {
        "/fail" => Err("the database is unreachable".into()),
        // An invalid event: `send` refuses it, and `?` makes that the app's error.
        "/invalid" => {
            send.send(SendEvent::body("no response start first"))
                .await?;
            Ok(())
        }
        _ => {
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            send.send(SendEvent::body("fine")).await?;
            Ok(())
        }
    }
}

fn main() -> std::process::ExitCode {
    ragi_server::Run::new(app)
        .name("app_errors")
        .version(env!("CARGO_PKG_VERSION"))
        .run()
}
