//! HTTPS redirect (toolkit-references §2.7).

use ragi::App;
use ragi_tools::middleware::forwarded::ForwardedHeaders;
use ragi_tools::middleware::https_redirect::HttpsRedirect;
use ragi_tools::test::{TestClient, WsConnect};
use ragi_tools::{AppExt, Stack};

use super::support::probe;

#[tokio::test]
async fn a_plain_request_is_sent_to_https_keeping_method_path_and_query() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(HttpsRedirect::new())).host("shop.example");
    let res = client
        .post("/a%2Fb/c%20d?x=%20y&z")
        .body("payload")
        .send()
        .await;
    assert_eq!(res.status(), 307, "307 keeps the method and the body");
    assert_eq!(
        res.header("location"),
        Some("https://shop.example/a%2Fb/c%20d?x=%20y&z")
    );
    let (app, _) = probe();
    let client = TestClient::new(app.layer(HttpsRedirect::new().permanent())).host("shop.example");
    let res = client.delete("/item/1").send().await;
    assert_eq!(res.status(), 308);
    assert_eq!(res.header("location"), Some("https://shop.example/item/1"));
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn https_requests_reach_the_app() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(HttpsRedirect::new())).https();
    assert_eq!(client.get("/").send().await.status(), 200);
    client.websocket("/ws").connect().await.accepted();
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn ports() {
    for (host, cfg, want) in [
        ("h.example:80", HttpsRedirect::new(), "https://h.example/p"),
        (
            "h.example:8080",
            HttpsRedirect::new(),
            "https://h.example:8080/p",
        ),
        (
            "h.example:8080",
            HttpsRedirect::new().https_port(8443),
            "https://h.example:8443/p",
        ),
        (
            "h.example",
            HttpsRedirect::new().https_port(443),
            "https://h.example/p",
        ),
        ("[::1]:80", HttpsRedirect::new(), "https://[::1]/p"),
    ] {
        let (app, _) = probe();
        let res = TestClient::new(app.layer(cfg))
            .host(host)
            .get("/p")
            .send()
            .await;
        assert_eq!(res.header("location"), Some(want), "{host}");
    }
}

#[tokio::test]
async fn the_root_path_is_kept() {
    let (app, _) = probe();
    let client = TestClient::new(app.layer(HttpsRedirect::new()))
        .host("h.example")
        .root_path("/my app");
    let res = client.get("/x").send().await;
    assert_eq!(res.header("location"), Some("https://h.example/my%20app/x"));
}

#[tokio::test]
async fn websocket_goes_to_wss_and_sse_is_declined_with_the_redirect() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(HttpsRedirect::new())).host("h.example");
    match client.websocket("/live?room=1").connect().await {
        WsConnect::Denied(res) => {
            assert_eq!(res.status(), 307);
            assert_eq!(res.header("location"), Some("wss://h.example/live?room=1"));
        }
        other => panic!("expected a redirect before accept, got {other:?}"),
    }
    let res = client.sse("/events").connect().await.declined();
    assert_eq!(res.status(), 307);
    assert_eq!(res.header("location"), Some("https://h.example/events"));
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn a_missing_host_is_400() {
    let app = |scope: ragi::Scope, rx: ragi::Receiver, tx: ragi::Sender| {
        let mut scope = scope;
        scope.headers.remove("host");
        let inner = probe().0.layer(HttpsRedirect::new());
        async move { inner.call(scope, rx, tx).await }
    };
    let res = TestClient::new(app).get("/").send().await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn behind_a_proxy_the_scheme_comes_from_the_forwarded_middleware() {
    let stack = || {
        let (app, _) = probe();
        Stack::new()
            .enable(ForwardedHeaders::new())
            .enable(HttpsRedirect::new())
            .run(app)
    };
    // The trusted proxy (loopback) says the client used https: no redirect loop.
    let res = TestClient::new(stack())
        .get("/")
        .header("x-forwarded-proto", "https")
        .send()
        .await;
    assert_eq!(res.status(), 200);
    let res = TestClient::new(stack())
        .get("/")
        .header("forwarded", "for=198.51.100.1;proto=https")
        .send()
        .await;
    assert_eq!(res.status(), 200);
    // The proxy says http: redirect.
    let res = TestClient::new(stack())
        .get("/")
        .header("x-forwarded-proto", "http")
        .send()
        .await;
    assert_eq!(res.status(), 307);
    // An untrusted peer claiming https is not believed.
    let res = TestClient::new(stack())
        .client_addr("203.0.113.1:5000".parse::<std::net::SocketAddr>().unwrap())
        .get("/")
        .header("x-forwarded-proto", "https")
        .send()
        .await;
    assert_eq!(res.status(), 307);
}
