//! Security headers.

use std::time::Duration;

use ragi::{Headers, Receiver, Scope, SendEvent, Sender};
use ragi_tools::middleware::forwarded::ForwardedHeaders;
use ragi_tools::middleware::security_headers::{FrameOptions, Hsts, SecurityHeaders};
use ragi_tools::test::{TestClient, WsConnect};
use ragi_tools::{AppExt, Stack};

use super::support::{answering, probe};

#[tokio::test]
async fn defaults_over_http_have_no_hsts() {
    let (app, _) = probe();
    let client = TestClient::new(app.layer(SecurityHeaders::new()));
    let res = client.get("/").send().await;
    assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(res.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        res.header("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    assert_eq!(res.header("strict-transport-security"), None);
    assert_eq!(res.header("content-security-policy"), None);
}

#[tokio::test]
async fn hsts_only_over_https() {
    let (app, _) = probe();
    let client = TestClient::new(app.layer(SecurityHeaders::new())).https();
    let res = client.get("/").send().await;
    assert_eq!(
        res.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    let custom = SecurityHeaders::new().hsts(
        Hsts::new(Duration::from_secs(63_072_000))
            .include_subdomains()
            .preload(),
    );
    let (app, _) = probe();
    let res = TestClient::new(app.layer(custom))
        .https()
        .get("/")
        .send()
        .await;
    assert_eq!(
        res.header("strict-transport-security"),
        Some("max-age=63072000; includeSubDomains; preload")
    );
    let (app, _) = probe();
    let res = TestClient::new(app.layer(SecurityHeaders::new().no_hsts()))
        .https()
        .get("/")
        .send()
        .await;
    assert_eq!(res.header("strict-transport-security"), None);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_scheme_decides() {
    let stack = || {
        let (app, _) = probe();
        Stack::new()
            .enable(ForwardedHeaders::new())
            .enable(SecurityHeaders::new())
            .run(app)
    };
    let res = TestClient::new(stack())
        .get("/")
        .header("x-forwarded-proto", "https")
        .send()
        .await;
    assert!(res.header("strict-transport-security").is_some());
    // From an untrusted peer the header means nothing.
    let res = TestClient::new(stack())
        .client_addr("203.0.113.9:4000".parse::<std::net::SocketAddr>().unwrap())
        .get("/")
        .header("x-forwarded-proto", "https")
        .send()
        .await;
    assert!(res.header("strict-transport-security").is_none());
}

#[tokio::test]
async fn the_app_wins_and_nothing_is_duplicated() {
    let app = answering(
        200,
        Headers::new()
            .with("X-Frame-Options", "SAMEORIGIN")
            .with("content-security-policy", "default-src *")
            .with("strict-transport-security", "max-age=0"),
    );
    let cfg = SecurityHeaders::new().content_security_policy("default-src 'self'");
    let res = TestClient::new(app.layer(cfg))
        .https()
        .get("/")
        .send()
        .await;
    for (name, want) in [
        ("x-frame-options", "SAMEORIGIN"),
        ("content-security-policy", "default-src *"),
        ("strict-transport-security", "max-age=0"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(res.headers().get_all(name).count(), 1, "{name}");
        assert_eq!(res.header(name), Some(want), "{name}");
    }
}

#[tokio::test]
async fn every_header_is_configurable() {
    let cfg = SecurityHeaders::new()
        .content_security_policy("default-src 'self'")
        .content_security_policy_report_only("script-src 'none'")
        .frame_options(FrameOptions::SameOrigin)
        .referrer_policy("no-referrer")
        .content_type_options(false)
        .header("Permissions-Policy", "geolocation=()");
    let (app, _) = probe();
    let res = TestClient::new(app.layer(cfg)).get("/").send().await;
    assert_eq!(
        res.header("content-security-policy"),
        Some("default-src 'self'")
    );
    assert_eq!(
        res.header("content-security-policy-report-only"),
        Some("script-src 'none'")
    );
    assert_eq!(res.header("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(res.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(res.header("x-content-type-options"), None);
    assert_eq!(res.header("permissions-policy"), Some("geolocation=()"));

    let cfg = SecurityHeaders::new()
        .no_frame_options()
        .no_referrer_policy();
    let (app, _) = probe();
    let res = TestClient::new(app.layer(cfg)).get("/").send().await;
    assert_eq!(res.header("x-frame-options"), None);
    assert_eq!(res.header("referrer-policy"), None);
    let (app, _) = probe();
    let res = TestClient::new(app.layer(SecurityHeaders::empty()))
        .get("/")
        .send()
        .await;
    assert_eq!(res.header("x-content-type-options"), None);
}

#[tokio::test]
async fn sse_heads_websocket_denials_and_failures_get_them() {
    let (app, _) = probe();
    let client = TestClient::new(app.layer(SecurityHeaders::new())).https();
    let stream = client.sse("/events").connect().await.stream();
    assert_eq!(stream.headers().get_str("x-frame-options"), Some("DENY"));
    assert!(stream.headers().contains("strict-transport-security"));

    // A WebSocket accept (101) gets none; a denial gets them.
    let ws = client.websocket("/ws").connect().await.accepted();
    assert!(!ws.headers().contains("x-frame-options"));
    let denying = |_s: Scope, _rx: Receiver, send: Sender| async move {
        send.send(SendEvent::HttpResponseStart {
            status: 403,
            headers: Headers::new(),
        })
        .await?;
        send.send(SendEvent::HttpResponseBody {
            body: "no".into(),
            more: false,
        })
        .await?;
        Ok(())
    };
    let client = TestClient::new(denying.layer(SecurityHeaders::new())).https();
    match client.websocket("/ws").connect().await {
        WsConnect::Denied(res) => {
            assert_eq!(res.status(), 403);
            assert_eq!(res.header("x-frame-options"), Some("DENY"));
            assert!(res.header("strict-transport-security").is_some());
        }
        other => panic!("{other:?}"),
    }

    let failing = |_s: Scope, _rx: Receiver, _tx: Sender| async move {
        Err::<(), ragi::AppError>("boom".into())
    };
    let res = TestClient::new(failing.layer(SecurityHeaders::new()))
        .get("/")
        .send()
        .await;
    assert_eq!(res.status(), 500);
    assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
}
