//! The test client on the toolkit itself: handlers, errors, streaming writers.

use std::time::Duration;

use ragi::{DisconnectReason, Headers};
use ragi_tools::test::{Disconnect, TestClient};
use ragi_tools::{handler, Context, Error, HttpContext, Response};
use serde_json::Value;

use super::support::Seen;

#[tokio::test]
async fn a_handler_answers_every_http_family_scope() {
    async fn hello(cx: HttpContext) -> Result<Response, Error> {
        match cx.path() {
            "/hello" => Ok(Response::text("Hello, World!")),
            _ => Err(Error::not_found()),
        }
    }
    let client = TestClient::new(handler(hello));
    let res = client.get("/hello").send().await;
    assert_eq!((res.status(), res.text().as_str()), (200, "Hello, World!"));
    assert!(res.connection().is_completed());

    let res = client.head("/hello").send().await;
    assert_eq!((res.status(), res.text().as_str()), (200, ""));
    assert_eq!(res.header("content-length"), Some("13"));

    let res = client
        .get("/nope")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(res.status(), 404);
    let v: Value = res.json();
    assert!(v["error"].is_string());

    // An MCP-style POST that also accepts an event stream gets an `sse` scope; the handler
    // answers it through the decline pair, and the client sees an ordinary response.
    let res = client
        .post("/hello")
        .header("accept", "application/json, text/event-stream")
        .send()
        .await;
    assert_eq!((res.status(), res.text().as_str()), (200, "Hello, World!"));
    assert!(res.violations().is_empty());
    assert!(res.events().iter().any(|e| e.name() == "HttpResponseStart"));
}

#[tokio::test(start_paused = true)]
async fn a_body_writer_fails_with_the_reason_once_the_client_left() {
    let seen = Seen::default();
    let s = seen.clone();
    let app = handler(move |cx: HttpContext| {
        let s = s.clone();
        async move {
            let mut w = cx.stream(200, Headers::new()).await?;
            for i in 0.. {
                if let Err(e) = w.write(format!("token {i}\n")).await {
                    s.push(format!("write failed: {e}"));
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<_, Error>(())
        }
    });
    let client = TestClient::new(app);
    let res = client
        .get("/stream")
        .disconnect(Disconnect::AfterBytes(24), DisconnectReason::ClientClosed)
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text(), "token 0\ntoken 1\ntoken 2\n");
    assert_eq!(res.client_left(), Some(DisconnectReason::ClientClosed));
    res.wait_app().await;
    let got = seen.get();
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("client_closed"), "{got:?}");
}
