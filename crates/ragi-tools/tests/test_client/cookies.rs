//! The cookie jar across HTTP, WebSocket and SSE requests.

use std::time::Duration;

use ragi::{Headers, Receiver, Scope, ScopeKind, SendEvent, Sender};
use ragi_tools::test::TestClient;

/// `/set?<set-cookie value>` sets a cookie; every scope kind answers with the `cookie` header
/// it received.
async fn app(scope: Scope, mut rx: Receiver, send: Sender) -> ragi::AppResult {
    let got = scope.headers.get_str("cookie").unwrap_or("").to_owned();
    match scope.kind {
        ScopeKind::WebSocket => {
            rx.receive().await;
            send.send(SendEvent::WebSocketAccept {
                subprotocol: None,
                headers: Headers::new(),
            })
            .await?;
            send.send(SendEvent::WebSocketSend(ragi::Message::Text(got)))
                .await?;
            let _ = rx.receive().await;
            Ok(())
        }
        ScopeKind::Sse => {
            send.send(SendEvent::SseStart {
                status: 200,
                headers: Headers::new(),
            })
            .await?;
            send.send(SendEvent::SseSend(ragi::SseEvent {
                data: got,
                ..Default::default()
            }))
            .await?;
            send.send(SendEvent::SseClose { reason: None }).await?;
            Ok(())
        }
        _ => {
            let mut headers = Headers::new();
            if scope.path.ends_with("/set") {
                let v = percent(scope.query().unwrap_or(""));
                headers.push("set-cookie", v);
            }
            send.send(SendEvent::response_start(200, headers)).await?;
            send.send(SendEvent::body(got)).await?;
            Ok(())
        }
    }
}

fn percent(q: &str) -> String {
    ragi::scope::percent_decode(q.as_bytes())
}

#[tokio::test(start_paused = true)]
async fn the_jar_follows_set_cookie_across_protocols() {
    let client = TestClient::new(app);
    let get = |path: &'static str| {
        let c = client.clone();
        async move { c.get(path).send().await.text() }
    };
    assert_eq!(get("/").await, "");
    get("/set?a=1;%20Path=/;%20HttpOnly;%20SameSite=Lax").await;
    get("/admin/set?b=2").await; // default path: /admin
    get("/set?s=3;%20Secure;%20Path=/").await;
    get("/set?t=4;%20Max-Age=60;%20Path=/").await;
    assert_eq!(get("/").await, "a=1; t=4");
    assert_eq!(get("/admin/x").await, "b=2; a=1; t=4");
    assert_eq!(client.cookie("b").as_deref(), Some("2"));
    assert_eq!(client.cookies().len(), 4);

    // WebSocket and SSE requests carry them too.
    let mut ws = client.websocket("/ws").connect().await.accepted();
    assert_eq!(ws.receive_text().await.unwrap(), "a=1; t=4");
    let mut sse = client.sse("/events").connect().await.stream();
    assert_eq!(sse.next_event().await.unwrap().data, "a=1; t=4");

    // Max-Age on tokio's clock; Max-Age=0 deletes; Secure only over https.
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(get("/").await, "a=1");
    get("/set?a=;%20Max-Age=0;%20Path=/").await;
    assert_eq!(get("/").await, "");
    let https = TestClient::new(app).https();
    https.set_cookie("s", "3");
    https.set_cookie("plain", "p");
    assert_eq!(https.get("/").send().await.text(), "s=3; plain=p");
    client.clear_cookies();
    assert!(client.cookies().is_empty());
    // A request's own cookie header wins over the jar.
    client.set_cookie("j", "1");
    assert_eq!(
        client
            .get("/")
            .header("cookie", "mine=1")
            .send()
            .await
            .text(),
        "mine=1"
    );
}
