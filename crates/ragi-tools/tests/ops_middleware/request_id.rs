//! Request ids: generated, trusted only when allowed and well-formed, exactly one on the
//! response (PAGI appends a second), the same in the app, the log and WebSocket/SSE heads.

use std::net::SocketAddr;

use ragi::{Headers, Receiver, Scope, SendEvent, Sender};
use ragi_tools::middleware::access_log::Format;
use ragi_tools::middleware::request_id::{is_well_formed, RequestId, SetRequestId};
use ragi_tools::prelude::*;
use ragi_tools::test::{SseConnect, TestClient, WsConnect};
use ragi_tools::{sse, SseContext};

use super::support::{captured, one_json, ws_echo};

/// Answers with the id the app saw in the stash and in the request header, and sets an
/// `X-Request-ID` of its own (as an app that copies the id onto its response would).
fn echo_id() -> impl ragi::App {
    |scope: Scope, _rx: Receiver, send: Sender| async move {
        let stashed = RequestId::of(&scope)
            .map(|id| id.to_string())
            .unwrap_or_default();
        let header = scope
            .headers
            .get_str("x-request-id")
            .unwrap_or("")
            .to_owned();
        let n = scope.headers.get_all("x-request-id").count();
        send.send(SendEvent::response_start(
            200,
            Headers::new()
                .with("content-type", "application/json")
                .with("x-request-id", stashed.clone()),
        ))
        .await?;
        let body = serde_json::json!({ "stash": stashed, "header": header, "fields": n });
        send.send(SendEvent::body(body.to_string())).await?;
        Ok(())
    }
}

fn ids(res: &ragi_tools::test::TestResponse) -> Vec<String> {
    res.headers()
        .get_all("x-request-id")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[tokio::test]
async fn generated_when_absent_and_exactly_one_on_the_response() {
    let c = TestClient::new(echo_id().layer(SetRequestId::new()));
    let res = c.get("/").send().await;
    // The PAGI trap: the app set one too, and the layer must not append a second.
    let got = ids(&res);
    assert_eq!(got.len(), 1, "{got:?}");
    let id = &got[0];
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4", "a UUID v4: {id}");
    let seen: serde_json::Value = res.json();
    assert_eq!(seen["stash"], *id);
    assert_eq!(seen["header"], *id);
    assert_eq!(seen["fields"], 1);
    // A new id per request.
    let again = c.get("/").send().await;
    assert_ne!(ids(&again)[0], *id);
}

#[tokio::test]
async fn two_layers_make_one_id() {
    let app = echo_id()
        .layer(SetRequestId::new())
        .layer(SetRequestId::new());
    let res = TestClient::new(app).get("/").send().await;
    let got = ids(&res);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(res.json::<serde_json::Value>()["stash"], got[0]);
}

#[tokio::test]
async fn an_incoming_id_is_not_trusted_by_default() {
    let c = TestClient::new(echo_id().layer(SetRequestId::new()));
    let res = c
        .get("/")
        .header("x-request-id", "from-the-client")
        .send()
        .await;
    let got = ids(&res);
    assert_eq!(got.len(), 1);
    assert_ne!(got[0], "from-the-client");
    let seen: serde_json::Value = res.json();
    assert_eq!(seen["header"], got[0], "the request header was rewritten");
    assert_eq!(seen["fields"], 1);
}

#[tokio::test]
async fn a_trusted_incoming_id_is_used_only_when_well_formed() {
    let c = TestClient::new(echo_id().layer(SetRequestId::new().trust_incoming(true)));
    let res = c
        .get("/")
        .header("x-request-id", "abc-123.DEF:4")
        .send()
        .await;
    assert_eq!(ids(&res), vec!["abc-123.DEF:4"]);
    assert_eq!(res.json::<serde_json::Value>()["stash"], "abc-123.DEF:4");

    let long = "a".repeat(129);
    for bad in ["has space", "quote\"", "semi;colon", "", long.as_str()] {
        let res = c
            .get("/")
            .header("x-request-id", bad.to_owned())
            .send()
            .await;
        let got = ids(&res);
        assert_eq!(got.len(), 1);
        assert_ne!(got[0], bad, "{bad:?} must be replaced");
        assert!(is_well_formed(got[0].as_bytes(), 128));
    }
    // Two fields: ambiguous, replaced.
    let res = c
        .get("/")
        .header("x-request-id", "one")
        .header("x-request-id", "two")
        .send()
        .await;
    let got = ids(&res);
    assert_eq!(got.len(), 1);
    assert!(got[0] != "one" && got[0] != "two");
    assert_eq!(res.json::<serde_json::Value>()["fields"], 1);
}

#[tokio::test]
async fn trust_can_depend_on_the_client() {
    let layer = SetRequestId::new()
        .trust_if(|scope| scope.client.is_some_and(|c| c.ip().is_loopback()))
        .max_len(16);
    let app = echo_id().layer(layer);
    let proxy = TestClient::new(app.clone());
    let res = proxy.get("/").header("x-request-id", "edge-1").send().await;
    assert_eq!(ids(&res), vec!["edge-1"]);
    let res = proxy
        .get("/")
        .header("x-request-id", "seventeen-chars-x")
        .send()
        .await;
    assert_ne!(ids(&res)[0], "seventeen-chars-x", "longer than max_len");

    let outsider = TestClient::new(app).client_addr(SocketAddr::from(([203, 0, 113, 9], 4000)));
    let res = outsider
        .get("/")
        .header("x-request-id", "edge-1")
        .send()
        .await;
    assert_ne!(ids(&res)[0], "edge-1");
}

#[tokio::test]
async fn a_custom_generator_and_header() {
    let app = echo_id().layer(
        SetRequestId::new()
            .header("X-Correlation-ID")
            .generator(|| "fixed-1".to_owned()),
    );
    let res = TestClient::new(app).get("/").send().await;
    assert_eq!(res.header("x-correlation-id"), Some("fixed-1"));
    assert_eq!(res.json::<serde_json::Value>()["stash"], "fixed-1");
}

#[tokio::test]
async fn websocket_accept_and_sse_heads_carry_it() {
    async fn events(cx: SseContext) -> Result<(), Error> {
        let id = RequestId::of(cx.scope()).unwrap().to_string();
        cx.send(id).await
    }
    let ws = TestClient::new(ws_echo().layer(SetRequestId::new()));
    let WsConnect::Accepted(session) = ws.websocket("/ws").connect().await else {
        panic!("accepted")
    };
    let got: Vec<_> = session.headers().get_all("x-request-id").collect();
    assert_eq!(got.len(), 1, "{:?}", session.headers());

    let c = TestClient::new(sse::handler(events).layer(SetRequestId::new()));
    let SseConnect::Stream(mut s) = c.sse("/events").connect().await else {
        panic!("a stream")
    };
    let id = s.headers().get_str("x-request-id").unwrap().to_owned();
    assert_eq!(s.headers().get_all("x-request-id").count(), 1);
    assert_eq!(
        s.next_event().await.unwrap().data,
        id,
        "the app saw the same id"
    );

    // A declined SSE request (an HTTP handler answering an `sse` scope) too.
    async fn plain(_cx: HttpContext) -> &'static str {
        "not a stream"
    }
    let c = TestClient::new(handler(plain).layer(SetRequestId::new()));
    let res = c.sse("/x").connect().await.declined();
    assert_eq!(ids(&res).len(), 1);
}

#[tokio::test]
async fn the_access_log_has_the_same_id() {
    let (log, capture) = captured(Format::Json);
    let app = Stack::new()
        .enable(log)
        .enable(SetRequestId::new())
        .run(echo_id());
    let res = TestClient::new(app).get("/").send().await;
    let line = one_json(&capture);
    assert_eq!(line["request_id"], ids(&res)[0]);
}
