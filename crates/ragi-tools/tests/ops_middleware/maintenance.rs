//! Maintenance mode: 503 + Retry-After, the allow-list (paths, segment prefixes, client
//! blocks, a predicate), switched at run time, WebSocket and SSE refused in their framing.

use std::net::SocketAddr;
use std::time::Duration;

use ragi_tools::middleware::maintenance::Maintenance;
use ragi_tools::prelude::*;
use ragi_tools::test::{TestClient, WsConnect};

use super::support::{hello, ws_echo};

#[tokio::test]
async fn switched_at_run_time() {
    let m = Maintenance::new().retry_after(Duration::from_millis(120_500));
    let switch = m.switch();
    let c = TestClient::new(hello().layer(m));
    assert_eq!(c.get("/").send().await.text(), "hello");

    switch.enable();
    let res = c.get("/").send().await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.header("retry-after"), Some("121"));
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(
        res.json::<serde_json::Value>()["error"],
        "down for maintenance"
    );
    let text = c.get("/").header("accept", "text/plain").send().await;
    assert_eq!(text.text(), "down for maintenance\n");

    switch.set_retry_after(Duration::from_secs(30));
    assert_eq!(c.get("/").send().await.header("retry-after"), Some("30"));

    switch.disable();
    assert_eq!(c.get("/").send().await.status(), 200);
}

#[tokio::test]
async fn the_allow_list() {
    let m = Maintenance::new()
        .enabled(true)
        .message("back soon")
        .allow_path("/healthz")
        .allow_prefix("/admin/")
        .allow_client("10.0.0.0/8")
        .allow_client("2001:db8::/32")
        .allow_if(|s| s.headers.contains("x-staff"));
    let app = hello().layer(m);
    let c = TestClient::new(app.clone());
    assert_eq!(c.get("/healthz").send().await.status(), 200);
    assert_eq!(
        c.get("/healthz/deep").send().await.status(),
        503,
        "exact path only"
    );
    assert_eq!(c.get("/admin").send().await.status(), 200);
    assert_eq!(c.get("/admin/users").send().await.status(), 200);
    assert_eq!(
        c.get("/administrator").send().await.status(),
        503,
        "segments, not strings"
    );
    let res = c.get("/").send().await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.json::<serde_json::Value>()["error"], "back soon");
    assert_eq!(c.get("/").header("x-staff", "1").send().await.status(), 200);

    let office = TestClient::new(app.clone()).client_addr(SocketAddr::from(([10, 1, 2, 3], 9)));
    assert_eq!(office.get("/").send().await.status(), 200);
    let mapped = TestClient::new(app.clone())
        .client_addr(SocketAddr::new("::ffff:10.9.9.9".parse().unwrap(), 9));
    assert_eq!(
        mapped.get("/").send().await.status(),
        200,
        "IPv4-mapped IPv6"
    );
    let v6 = TestClient::new(app.clone())
        .client_addr(SocketAddr::new("2001:db8:1::7".parse().unwrap(), 9));
    assert_eq!(v6.get("/").send().await.status(), 200);
    let other = TestClient::new(app).client_addr(SocketAddr::from(([11, 0, 0, 1], 9)));
    assert_eq!(other.get("/").send().await.status(), 503);
}

#[tokio::test]
async fn websocket_and_sse_are_refused_before_they_start() {
    let m = Maintenance::new().enabled(true);
    let c = TestClient::new(ws_echo().layer(m.clone()));
    match c.websocket("/ws").connect().await {
        WsConnect::Denied(res) => {
            assert_eq!(res.status(), 503);
            assert_eq!(res.header("retry-after"), Some("300"));
        }
        other => panic!("denied: {}", other.status()),
    }
    let c = TestClient::new(
        ragi_tools::sse::handler(|cx: ragi_tools::SseContext| async move { cx.send("x").await })
            .layer(m.clone()),
    );
    assert_eq!(c.sse("/e").connect().await.declined().status(), 503);

    // Sessions opened before the switch go on.
    let off = Maintenance::new();
    let switch = off.switch();
    let c = TestClient::new(ws_echo().layer(off));
    let mut ws = c.websocket("/ws").connect().await.accepted();
    switch.enable();
    ws.send_text("still here").await.unwrap();
    assert_eq!(ws.receive_text().await.unwrap(), "still here");
}

#[test]
#[should_panic(expected = "not a prefix length for 10.0.0.0: \"40\"")]
fn a_bad_block_is_named() {
    let _ = Maintenance::new().allow_client("10.0.0.0/40");
}
