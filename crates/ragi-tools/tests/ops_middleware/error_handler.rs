//! The error handler: errors and panics before the head become 500 (the development page only
//! in development mode), client errors pass as they are, a failure after the head aborts, a
//! departed client gets nothing.

use ragi::{DisconnectReason, Headers, Receiver, Scope, SendEvent, Sender};
use ragi_tools::middleware::error_handler::ErrorHandler;
use ragi_tools::middleware::request_id::SetRequestId;
use ragi_tools::prelude::*;
use ragi_tools::test::{TestClient, WsConnect};

#[derive(Debug)]
struct Root;
impl std::fmt::Display for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("disk full")
    }
}
impl std::error::Error for Root {}

#[derive(Debug)]
struct Outer(Root);
impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("saving <the> report")
    }
}
impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

fn failing() -> impl ragi::App {
    |_s: Scope, _rx: Receiver, _send: Sender| async move { Err(Box::new(Outer(Root)) as ragi::AppError) }
}

fn panicking() -> impl ragi::App {
    |_s: Scope, _rx: Receiver, _send: Sender| async move {
        if true {
            panic!("index out of bounds: the len is 3 but the index is 7");
        }
        Ok(())
    }
}

#[tokio::test]
async fn production_says_nothing_of_the_error() {
    let c = TestClient::new(failing().layer(ErrorHandler::new()));
    let res = c.get("/report").header("cookie", "s=secret").send().await;
    assert_eq!(res.status(), 500);
    assert_eq!(
        res.json::<serde_json::Value>(),
        serde_json::json!({ "error": "Internal Server Error" })
    );
    assert!(
        res.app_error().is_none(),
        "handled: the app call ended well"
    );

    let res = TestClient::new(panicking().layer(ErrorHandler::new()))
        .get("/")
        .header("accept", "text/plain")
        .send()
        .await;
    assert_eq!(res.status(), 500);
    assert_eq!(res.text(), "Internal Server Error\n");
}

#[tokio::test]
async fn development_shows_the_error_and_the_request() {
    let app = Stack::new()
        .enable(SetRequestId::new().generator(|| "rid-9".into()))
        .enable(ErrorHandler::new().development(true))
        .run(failing());
    let c = TestClient::new(app);
    let res = c
        .get("/report?x=1")
        .header("accept", "text/html")
        .header("cookie", "s=secret")
        .header("authorization", "Bearer secret")
        .header("x-trace", "<b>")
        .send()
        .await;
    assert_eq!(res.status(), 500);
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    let page = res.text();
    assert!(page.contains("<h1>The app failed</h1>"), "{page}");
    assert!(
        page.contains("saving &lt;the&gt; report"),
        "escaped: {page}"
    );
    assert!(
        page.contains("<li><pre>disk full</pre></li>"),
        "the cause: {page}"
    );
    assert!(page.contains("rid-9"));
    assert!(page.contains("/report") && page.contains("x=1"));
    assert!(page.contains("&lt;b&gt;"), "header values escaped");
    assert!(!page.contains("secret"), "credentials redacted: {page}");

    let res = c.get("/").header("accept", "*/*").send().await;
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(res
        .text()
        .starts_with("500 The app failed: saving <the> report\n  caused by: disk full\n"));

    let res = TestClient::new(panicking().layer(ErrorHandler::new().development(true)))
        .get("/")
        .send()
        .await;
    assert!(res
        .text()
        .starts_with("500 The app panicked: index out of bounds: the len is 3 but the index is 7"));
}

#[tokio::test]
async fn a_client_error_passes_as_it_is() {
    let app = |_s: Scope, _rx: Receiver, _send: Sender| async move {
        Err(Error::not_found()
            .with_header("x-why", "gone")
            .into_app_error())
    };
    let res = TestClient::new(app.layer(ErrorHandler::new()))
        .get("/")
        .send()
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.header("x-why"), Some("gone"));
}

#[tokio::test]
async fn a_failure_after_the_head_aborts() {
    let app = |_s: Scope, _rx: Receiver, send: Sender| async move {
        send.send(SendEvent::response_start(200, Headers::new()))
            .await?;
        send.send(SendEvent::body_chunk("half")).await?;
        if true {
            panic!("midway");
        }
        Ok(())
    };
    let res = TestClient::new(app.layer(ErrorHandler::new().development(true)))
        .get("/")
        .send()
        .await;
    assert!(res.is_aborted(), "never a 500 patched into a started body");
    assert_eq!(res.status(), 200);
    assert_eq!(res.text(), "half");
    assert!(res.violations().is_empty(), "no second head was sent");
}

#[tokio::test]
async fn an_app_that_answers_nothing_is_a_failure() {
    let silent = |_s: Scope, _rx: Receiver, _send: Sender| async move { Ok(()) };
    let res = TestClient::new(silent.layer(ErrorHandler::new().development(true)))
        .get("/")
        .send()
        .await;
    assert_eq!(res.status(), 500);
    assert!(res
        .text()
        .contains("the app returned without sending a response"));
}

#[tokio::test]
async fn a_departed_client_gets_nothing() {
    let app = |scope: Scope, _rx: Receiver, send: Sender| async move {
        let _ = scope.connection().disconnected().await;
        // The app notices on its next send and fails with the reason.
        send.send(SendEvent::response_start(200, Headers::new()))
            .await?;
        Ok(())
    };
    let c = TestClient::new(app.layer(ErrorHandler::new()));
    let req = c.get("/");
    let leave = req.disconnect_handle();
    let pending = tokio::spawn(req.send());
    leave.disconnect(DisconnectReason::ClientClosed);
    let res = pending.await.unwrap();
    res.wait_app().await;
    assert!(res.events().is_empty());
    assert!(res.app_error().is_none());
}

#[tokio::test]
async fn a_websocket_app_that_fails_before_accept_is_denied_with_500() {
    let c = TestClient::new(panicking().layer(ErrorHandler::new()));
    match c.websocket("/ws").connect().await {
        WsConnect::Denied(res) => assert_eq!(res.status(), 500),
        other => panic!("a denial: {}", other.status()),
    }
}

#[tokio::test]
async fn a_custom_page() {
    let layer = ErrorHandler::new().render(|scope, f| {
        Response::text(format!("sorry ({}, panicked: {})", scope.path, f.panicked)).with_status(500)
    });
    let res = TestClient::new(panicking().layer(layer))
        .get("/p")
        .send()
        .await;
    assert_eq!(res.text(), "sorry (/p, panicked: true)");
}
