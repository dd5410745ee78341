//! Trait-based HTTP endpoints, through the test client: dispatch by verb, 405 with `Allow`,
//! HEAD through `get`, automatic OPTIONS, alone and in a router.

use http::Method;
use ragi_tools::endpoint::{endpoint, HttpEndpoint};
use ragi_tools::prelude::*;
use ragi_tools::test::TestClient;
use serde_json::{json, Value};

struct Users {
    greeting: &'static str,
}

impl HttpEndpoint for Users {
    const ALLOW: &'static [Method] = &[Method::GET, Method::POST, Method::PATCH];

    async fn get(&self, cx: HttpContext) -> HandlerResult {
        Ok(Response::json(&json!({
            "greeting": self.greeting,
            "id": cx.param("id"),
            "method": cx.method().as_str(),
        })))
    }

    async fn post(&self, _cx: HttpContext) -> HandlerResult {
        Ok((201, "created").into_response())
    }

    // PATCH is listed but not implemented: a 405 (and an error in the log).
}

#[tokio::test]
async fn an_endpoint_dispatches_by_verb() {
    let c = TestClient::new(endpoint(Users { greeting: "hi" }));
    let r = c.get("/").send().await;
    assert_eq!(r.json::<Value>()["greeting"], "hi");
    let r = c.post("/").send().await;
    assert_eq!((r.status(), r.text().as_str()), (201, "created"));

    let r = c.head("/").send().await;
    assert_eq!((r.status(), r.text().as_str()), (200, ""));
    assert_eq!(r.header("content-type"), Some("application/json"));

    for m in [Method::PUT, Method::DELETE, Method::PATCH, Method::TRACE] {
        let r = c.request(m.clone(), "/").send().await;
        assert_eq!(r.status(), 405, "{m}");
        assert_eq!(
            r.header("allow"),
            Some("GET, HEAD, POST, PATCH, OPTIONS"),
            "{m}"
        );
    }
    let r = c.options("/").send().await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST, PATCH, OPTIONS"));

    // An `sse` scope (a client that also accepts an event stream) is still a GET to it.
    let r = c
        .get("/")
        .header("accept", "application/json, text/event-stream")
        .send()
        .await;
    assert_eq!(r.json::<Value>()["method"], "GET");
}

struct Options;

impl HttpEndpoint for Options {
    const ALLOW: &'static [Method] = &[Method::GET, Method::HEAD, Method::OPTIONS];

    async fn get(&self, _cx: HttpContext) -> HandlerResult {
        Ok("body".into_response())
    }

    async fn head(&self, _cx: HttpContext) -> HandlerResult {
        Ok(Response::new(200).header("x-own-head", "1"))
    }

    async fn options(&self, _cx: HttpContext) -> HandlerResult {
        Ok((200, "my options").into_response())
    }
}

#[tokio::test]
async fn listed_head_and_options_are_the_endpoints_own() {
    let c = TestClient::new(endpoint(Options));
    assert_eq!(c.head("/").send().await.header("x-own-head"), Some("1"));
    assert_eq!(c.options("/").send().await.text(), "my options");
}

#[tokio::test]
async fn an_endpoint_in_a_router_joins_its_table() {
    let app = Router::new()
        .endpoint("/users/{id}", Users { greeting: "routed" })
        .delete("/users/{id}", |_cx: HttpContext| async { "deleted" });
    let c = TestClient::new(app);
    let v: Value = c.get("/users/7").send().await.json();
    assert_eq!(
        (v["greeting"].as_str(), v["id"].as_str()),
        (Some("routed"), Some("7"))
    );
    assert_eq!(c.delete("/users/7").send().await.text(), "deleted");
    let r = c.put("/users/7").send().await;
    assert_eq!(r.status(), 405);
    assert_eq!(
        r.header("allow"),
        Some("GET, HEAD, POST, PATCH, DELETE, OPTIONS")
    );
    let r = c.options("/users/7").send().await;
    assert_eq!(
        (r.status(), r.header("allow")),
        (204, Some("GET, HEAD, POST, PATCH, DELETE, OPTIONS"))
    );
}
