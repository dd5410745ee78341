//! Forwarded headers (toolkit-references §0.3, §2.7).

use std::net::SocketAddr;

use ragi_tools::middleware::forwarded::ForwardedHeaders;
use ragi_tools::test::TestClient;
use ragi_tools::AppExt;
use serde_json::Value;

use super::support::{json_of, probe};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

async fn seen(cfg: ForwardedHeaders, peer: &str, headers: &[(&str, &str)]) -> Value {
    let (app, _) = probe();
    let client = TestClient::new(app.layer(cfg)).client_addr(addr(peer));
    let mut req = client.get("/");
    for (n, v) in headers {
        req = req.header(n.to_string(), v.to_string());
    }
    let res = req.send().await;
    assert_eq!(res.status(), 200);
    json_of(&res)
}

#[tokio::test]
async fn an_untrusted_peer_is_not_believed() {
    let v = seen(
        ForwardedHeaders::new(),
        "203.0.113.9:4000",
        &[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=1.2.3.4;proto=https"),
        ],
    )
    .await;
    assert_eq!(v["client"], "203.0.113.9:4000");
    assert_eq!(v["scheme"], "http");
    assert_eq!(v["host"], "testserver");
    assert_eq!(v["original_client"], Value::Null);
}

/// PAGI's ReverseProxy takes the leftmost X-Forwarded-For, which the client writes.
#[tokio::test]
async fn the_client_is_found_right_to_left_not_leftmost() {
    let v = seen(
        ForwardedHeaders::new(),
        "127.0.0.1:40000",
        &[("x-forwarded-for", "6.6.6.6, 198.51.100.20")],
    )
    .await;
    assert_eq!(v["client"], "198.51.100.20:0");
    assert_eq!(v["original_client"], "127.0.0.1:40000");
    assert_eq!(v["proxies"], serde_json::json!(["127.0.0.1"]));
}

#[tokio::test]
async fn trusted_hops_are_skipped() {
    let cfg = ForwardedHeaders::trusting(["10.0.0.0/8"]).unwrap();
    // client → 10.0.0.7 (proxy) → 10.0.0.2 (proxy, our peer)
    let v = seen(
        cfg.clone(),
        "10.0.0.2:1000",
        &[("x-forwarded-for", "6.6.6.6, 203.0.113.5, 10.0.0.7")],
    )
    .await;
    assert_eq!(v["client"], "203.0.113.5:0");
    assert_eq!(v["proxies"], serde_json::json!(["10.0.0.2", "10.0.0.7"]));
    // Two header fields are one list.
    let (app, _) = probe();
    let client = TestClient::new(app.layer(cfg.clone())).client_addr(addr("10.0.0.2:1000"));
    let res = client
        .get("/")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-for", "203.0.113.5:7000, 10.0.0.7")
        .send()
        .await;
    assert_eq!(json_of(&res)["client"], "203.0.113.5:7000");
    // Every hop trusted: the leftmost is the client.
    let v = seen(
        cfg,
        "10.0.0.2:1000",
        &[("x-forwarded-for", "10.9.9.9, 10.0.0.7")],
    )
    .await;
    assert_eq!(v["client"], "10.9.9.9:0");
    assert_eq!(v["proxies"], serde_json::json!(["10.0.0.2", "10.0.0.7"]));
}

#[tokio::test]
async fn ipv6_networks_and_literals() {
    let cfg = ForwardedHeaders::trusting(["fd00::/8", "127.0.0.1"]).unwrap();
    let v = seen(
        cfg.clone(),
        "[fd00::2]:443",
        &[("x-forwarded-for", "2001:db8::1, fd00::9")],
    )
    .await;
    assert_eq!(v["client"], "[2001:db8::1]:0");
    let v = seen(
        cfg.clone(),
        "[fd00::2]:443",
        &[("x-forwarded-for", "[2001:db8::2]:8080")],
    )
    .await;
    assert_eq!(v["client"], "[2001:db8::2]:8080");
    // An IPv4-mapped peer is its IPv4 address.
    let v = seen(
        cfg,
        "[::ffff:127.0.0.1]:9000",
        &[("x-forwarded-for", "198.51.100.1")],
    )
    .await;
    assert_eq!(v["client"], "198.51.100.1:0");
}

#[tokio::test]
async fn rfc_7239_forwarded() {
    let v = seen(
        ForwardedHeaders::new(),
        "127.0.0.1:1",
        &[(
            "forwarded",
            r#"for="[2001:db8:cafe::17]:4711";proto=https;host=shop.example"#,
        )],
    )
    .await;
    assert_eq!(v["client"], "[2001:db8:cafe::17]:4711");
    assert_eq!(v["scheme"], "https");
    assert_eq!(v["host"], "shop.example");
    assert_eq!(v["hosts"], 1);
    assert_eq!(v["original_host"], "testserver");
    assert_eq!(v["original_scheme"], "http");
    // A spoofed element on the left, quoted commas, case-insensitive names.
    let v = seen(
        ForwardedHeaders::trusting(["10.0.0.0/8"]).unwrap(),
        "10.0.0.2:1",
        &[(
            "forwarded",
            r#"for=6.6.6.6;proto=http, For="198.51.100.7:55";Proto=HTTPS;host="a,b", for=10.1.1.1;proto=http"#,
        )],
    )
    .await;
    assert_eq!(v["client"], "198.51.100.7:55");
    assert_eq!(v["scheme"], "https");
    // `host="a,b"` is no host: the header is left alone.
    assert_eq!(v["host"], "testserver");
    // Forwarded wins over X-Forwarded-For.
    let v = seen(
        ForwardedHeaders::new(),
        "127.0.0.1:1",
        &[
            ("forwarded", "for=198.51.100.1"),
            ("x-forwarded-for", "198.51.100.2"),
        ],
    )
    .await;
    assert_eq!(v["client"], "198.51.100.1:0");
}

#[tokio::test]
async fn an_unknown_client_is_the_nearest_trusted_hop() {
    let cfg = ForwardedHeaders::trusting(["10.0.0.0/8"]).unwrap();
    let v = seen(
        cfg.clone(),
        "10.0.0.2:1",
        &[("forwarded", "for=6.6.6.6, for=unknown, for=10.0.0.7")],
    )
    .await;
    assert_eq!(v["client"], "10.0.0.7:0");
    let v = seen(
        cfg,
        "10.0.0.2:1",
        &[("x-forwarded-for", "6.6.6.6, _hidden")],
    )
    .await;
    assert_eq!(v["client"], "10.0.0.2:1");
}

#[tokio::test]
async fn proto_host_and_prefix() {
    let v = seen(
        ForwardedHeaders::new(),
        "127.0.0.1:1",
        &[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "Public.Example:8443"),
            ("x-forwarded-prefix", "/api/"),
        ],
    )
    .await;
    assert_eq!(v["scheme"], "https");
    assert_eq!(v["host"], "Public.Example:8443");
    assert_eq!(v["root_path"], "/api");
    assert_eq!(v["original_root_path"], "");
    // Values lined up with the hops from the right: the client-facing proxy's.
    let v = seen(
        ForwardedHeaders::trusting(["10.0.0.0/8"]).unwrap(),
        "10.0.0.2:1",
        &[
            ("x-forwarded-for", "198.51.100.1, 10.0.0.7"),
            ("x-forwarded-proto", "https, http"),
        ],
    )
    .await;
    assert_eq!(v["scheme"], "https");
    // Junk is ignored.
    let v = seen(
        ForwardedHeaders::new(),
        "127.0.0.1:1",
        &[
            ("x-forwarded-proto", "gopher"),
            ("x-forwarded-host", "a b"),
            ("x-forwarded-prefix", "no-slash"),
        ],
    )
    .await;
    assert_eq!(v["scheme"], "http");
    assert_eq!(v["host"], "testserver");
    assert_eq!(v["root_path"], "");
    // Prefix off.
    let v = seen(
        ForwardedHeaders::new().use_prefix(false),
        "127.0.0.1:1",
        &[("x-forwarded-prefix", "/api")],
    )
    .await;
    assert_eq!(v["root_path"], "");
}

#[tokio::test]
async fn websocket_and_sse_scopes_are_rewritten_too() {
    let (app, _) = probe();
    let client = TestClient::new(app.layer(ForwardedHeaders::new()));
    let mut ws = client
        .websocket("/ws")
        .header("x-forwarded-for", "6.6.6.6, 198.51.100.3")
        .header("x-forwarded-proto", "https")
        .connect()
        .await
        .accepted();
    let v: Value = ws.receive_json().await.unwrap();
    assert_eq!(v["client"], "198.51.100.3:0");
    assert_eq!(v["scheme"], "wss");
    let mut sse = client
        .sse("/events")
        .header("forwarded", "for=198.51.100.4;proto=https")
        .connect()
        .await
        .stream();
    let v: Value = sse.next_event().await.unwrap().json().unwrap();
    assert_eq!(v["client"], "198.51.100.4:0");
    assert_eq!(v["scheme"], "https");
}
