//! Over real sockets with ragi-server: a client that closes its TCP connection is logged with
//! the reason and frees its concurrency slot while the app runs on; a timed-out streamed body
//! ends without the last chunk; a panicking app gets a 500 and the server serves on.

use std::sync::Arc;
use std::time::Duration;

use ragi::{Headers, Receiver, Scope, SendEvent, Sender};
use ragi_tools::middleware::access_log::Format;
use ragi_tools::middleware::error_handler::ErrorHandler;
use ragi_tools::middleware::rate_limit::ConcurrencyLimit;
use ragi_tools::middleware::timeout::Timeout;
use ragi_tools::prelude::*;
use tokio::sync::mpsc;

use super::support::captured;

#[path = "../support/mod.rs"]
mod net;

use net::{serve, within, Client};

const GET: &[u8] = b"GET /job HTTP/1.1\r\nhost: x\r\n\r\n";

/// Streams a first piece, then reports the departure (from a callback registered after the
/// middleware's) and keeps working until released, as an app that ignores its client would.
fn stubborn(
    tx: mpsc::UnboundedSender<&'static str>,
    release: Arc<tokio::sync::Semaphore>,
) -> impl ragi::App {
    move |scope: Scope, _rx: Receiver, send: Sender| {
        let (tx, release) = (tx.clone(), release.clone());
        async move {
            let gone = tx.clone();
            scope.connection().on_disconnect(move |_| {
                let _ = gone.send("client gone");
            });
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            send.send(SendEvent::body_chunk("working\n")).await?;
            send.send(SendEvent::FullFlush).await?;
            let _ = tx.send("started");
            let _permit = release.acquire().await;
            Ok(())
        }
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<&'static str>) -> &'static str {
    within("the app's report", rx.recv()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_is_logged_and_frees_its_slot() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (log, capture) = captured(Format::Json);
    let limit = ConcurrencyLimit::new(1);
    let app = Stack::new()
        .enable(log)
        .enable(limit.clone())
        .run(stubborn(tx, release.clone()));
    let server = serve(app).await;

    let mut first = Client::connect(server.addr).await;
    first.send(GET).await;
    first.read_until(0, b"working\n").await;
    assert_eq!(next(&mut rx).await, "started");

    let mut second = Client::connect(server.addr).await;
    second.send(GET).await;
    second.read_until(0, b"\r\n\r\n").await;
    assert!(
        second.text().starts_with("HTTP/1.1 503"),
        "{}",
        second.text()
    );
    assert!(second
        .text()
        .to_ascii_lowercase()
        .contains("retry-after: 1"));

    // The client closes its connection; the app keeps working.
    drop(first);
    assert_eq!(next(&mut rx).await, "client gone");
    assert_eq!(limit.in_use(), 0, "freed before the app's own callback ran");
    let mut third = Client::connect(server.addr).await;
    third.send(GET).await;
    third.read_until(0, b"working\n").await;
    assert!(third.text().starts_with("HTTP/1.1 200"));
    assert_eq!(next(&mut rx).await, "started");

    let lines = within("the log lines", capture.wait_lines(2)).await;
    let first_line: serde_json::Value = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["status"] == 200)
        .expect("the first request's line");
    assert_eq!(first_line["disconnect_reason"], "client_closed");
    assert_eq!(first_line["response_started"], true);
    assert_eq!(first_line["bytes"], 8);
    assert_eq!(first_line["client"], "127.0.0.1");
    assert!(
        lines.iter().any(|l| l.contains("\"status\":503")),
        "{lines:?}"
    );
    release.add_permits(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_stream_ends_without_its_last_chunk() {
    let ticker = |_s: Scope, _rx: Receiver, send: Sender| async move {
        send.send(SendEvent::response_start(200, Headers::new()))
            .await?;
        loop {
            send.send(SendEvent::body_chunk("tick\n")).await?;
            send.send(SendEvent::FullFlush).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let server = serve(ticker.layer(Timeout::new(Duration::from_millis(300)))).await;
    let mut c = Client::connect(server.addr).await;
    c.send(GET).await;
    let all = c.read_to_end().await;
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("tick\n"));
    assert!(!text.ends_with("0\r\n\r\n"), "aborted, not ended: {text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_app_gets_a_500_and_the_server_serves_on() {
    let flaky = |scope: Scope, _rx: Receiver, send: Sender| async move {
        if scope.path == "/boom" {
            panic!("boom");
        }
        send.send(SendEvent::response_start(200, Headers::new()))
            .await?;
        send.send(SendEvent::body("fine")).await?;
        Ok(())
    };
    let server = serve(flaky.layer(ErrorHandler::new())).await;
    let mut c = Client::connect(server.addr).await;
    c.send(b"GET /boom HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let end = c.read_until(0, b"}").await;
    assert!(c.text().starts_with("HTTP/1.1 500"), "{}", c.text());
    assert!(c.text().ends_with("{\"error\":\"Internal Server Error\"}"));
    // The same connection goes on.
    c.send(b"GET /ok HTTP/1.1\r\nhost: x\r\n\r\n").await;
    c.read_until(end, b"fine").await;
}
