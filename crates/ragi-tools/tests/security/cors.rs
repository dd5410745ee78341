//! CORS (toolkit-references §2.2).

use std::time::Duration;

use ragi::{Headers, Receiver, Scope, Sender};
use ragi_tools::middleware::cors::{Cors, CorsError};
use ragi_tools::test::TestClient;
use ragi_tools::AppExt;

use super::support::{answering, cors_headers, probe};

const APP: &str = "https://app.example";

fn cors() -> Cors {
    Cors::builder()
        .allow_origin(APP)
        .allow_methods(["GET", "POST", "DELETE"])
        .allow_headers(["x-token"])
        .expose_headers(["x-request-id"])
        .build()
        .unwrap()
}

#[tokio::test]
async fn no_origin_gets_no_cors_headers_but_a_vary() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(cors()));
    let res = client.get("/x").send().await;
    assert_eq!(res.status(), 200);
    assert_eq!(calls.get(), 1);
    assert!(
        cors_headers(res.headers()).is_empty(),
        "{:?}",
        res.headers()
    );
    // The answer depends on the origin: a cache must not hand this one to a cross-origin page.
    assert_eq!(res.header("vary"), Some("Origin"));

    // With any origin and no credentials the answer never depends on it: untouched.
    let (app, _) = probe();
    let client = TestClient::new(app.layer(Cors::permissive()));
    let res = client.get("/x").send().await;
    assert!(cors_headers(res.headers()).is_empty());
    assert_eq!(res.header("vary"), None);
}

#[tokio::test]
async fn a_valid_preflight_is_answered_without_the_app() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(cors()));
    let res = client
        .options("/things/1")
        .header("origin", APP)
        .header("access-control-request-method", "DELETE")
        .header("access-control-request-headers", "X-Token, content-type")
        .send()
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(calls.get(), 0, "a preflight never reaches the app");
    assert_eq!(res.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        res.header("access-control-allow-methods"),
        Some("GET, POST, DELETE")
    );
    let allowed = res.header("access-control-allow-headers").unwrap();
    assert!(
        allowed.contains("x-token") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert_eq!(res.header("access-control-max-age"), Some("600"));
    assert_eq!(res.header("access-control-allow-credentials"), None);
    assert_eq!(
        res.header("vary"),
        Some("Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
    );
    assert_eq!(res.headers().get_all("vary").count(), 1);
}

#[tokio::test]
async fn a_disallowed_origin_method_or_header_gets_400_without_cors_headers() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(cors()));
    let cases = [
        ("https://evil.example", "GET", "", "origin"),
        (APP, "PATCH", "", "method"),
        (APP, "POST", "x-token, x-other", "headers"),
    ];
    for (origin, method, headers, what) in cases {
        let mut req = client
            .options("/x")
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("accept", "text/plain");
        if !headers.is_empty() {
            req = req.header("access-control-request-headers", headers);
        }
        let res = req.send().await;
        assert_eq!(res.status(), 400, "{what}");
        assert!(res.text().contains(what), "{what}: {}", res.text());
        assert!(
            cors_headers(res.headers()).is_empty(),
            "{what}: {:?}",
            res.headers()
        );
    }
    assert_eq!(calls.get(), 0);
}

/// tower-http answers every OPTIONS as a preflight and never calls the app.
#[tokio::test]
async fn an_options_request_that_is_not_a_preflight_reaches_the_app() {
    let app = |scope: Scope, _rx: Receiver, send: Sender| async move {
        assert_eq!(scope.method, http::Method::OPTIONS);
        send.send(ragi::SendEvent::response_start(
            204,
            Headers::new().with("allow", "GET, OPTIONS"),
        ))
        .await?;
        send.send(ragi::SendEvent::body("")).await?;
        Ok(())
    };
    let client = TestClient::new(app.layer(cors()));
    // No Origin at all.
    let res = client.options("/x").send().await;
    assert_eq!(res.header("allow"), Some("GET, OPTIONS"));
    // An Origin but no Access-Control-Request-Method: an actual cross-origin OPTIONS.
    let res = client.options("/x").header("origin", APP).send().await;
    assert_eq!(res.header("allow"), Some("GET, OPTIONS"));
    assert_eq!(res.header("access-control-allow-origin"), Some(APP));
    // Access-Control-Request-Method without Origin: not a preflight either.
    let res = client
        .options("/x")
        .header("access-control-request-method", "GET")
        .send()
        .await;
    assert_eq!(res.header("allow"), Some("GET, OPTIONS"));
}

#[tokio::test]
async fn actual_requests_get_the_origin_expose_headers_and_one_vary() {
    let app = answering(
        200,
        Headers::new()
            .with("vary", "Accept-Encoding")
            .with("x-request-id", "r1")
            .with("access-control-allow-origin", "https://stale.example"),
    );
    let client = TestClient::new(app.layer(cors()));
    let res = client.post("/x").header("origin", APP).send().await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get_all("access-control-allow-origin").count(),
        1
    );
    assert_eq!(res.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        res.header("access-control-expose-headers"),
        Some("x-request-id")
    );
    assert_eq!(res.headers().get_all("vary").count(), 1);
    assert_eq!(res.header("vary"), Some("Accept-Encoding, Origin"));

    // A disallowed origin: the app answers and nothing is added (what the app set itself is
    // its own business); Vary all the same.
    let res = client
        .post("/x")
        .header("origin", "https://evil.example")
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://stale.example")
    );
    assert_eq!(res.header("vary"), Some("Accept-Encoding, Origin"));
}

#[tokio::test]
async fn credentials_never_go_with_a_star() {
    assert_eq!(
        Cors::builder()
            .allow_any_origin()
            .allow_credentials(true)
            .build()
            .unwrap_err(),
        CorsError::CredentialsWithAnyOrigin
    );
    let cors = Cors::builder()
        .allow_origin(APP)
        .allow_any_method()
        .allow_any_header()
        .allow_credentials(true)
        .build()
        .unwrap();
    let (app, _) = probe();
    let client = TestClient::new(app.layer(cors));
    let res = client.get("/x").header("origin", APP).send().await;
    assert_eq!(res.header("access-control-allow-origin"), Some(APP));
    assert_eq!(res.header("access-control-allow-credentials"), Some("true"));
    let res = client
        .options("/x")
        .header("origin", APP)
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "x-a, x-b")
        .send()
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(res.header("access-control-allow-origin"), Some(APP));
    assert_eq!(res.header("access-control-allow-credentials"), Some("true"));
    // Mirrored, never `*` (read literally with credentials).
    assert_eq!(res.header("access-control-allow-methods"), Some("PUT"));
    assert_eq!(res.header("access-control-allow-headers"), Some("x-a, x-b"));
    for (n, v) in res.headers().iter() {
        assert_ne!(&v[..], b"*", "{n:?}");
    }
}

#[tokio::test]
async fn any_origin_without_credentials_is_a_star() {
    let (app, _) = probe();
    let client = TestClient::new(app.layer(Cors::permissive()));
    let res = client
        .get("/x")
        .header("origin", "https://anyone.example")
        .send()
        .await;
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
    assert_eq!(res.header("vary"), None);
    let res = client
        .options("/x")
        .header("origin", "https://anyone.example")
        .header("access-control-request-method", "PATCH")
        .header("access-control-request-headers", "x-anything")
        .send()
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
    assert_eq!(res.header("access-control-allow-methods"), Some("*"));
    assert_eq!(res.header("access-control-allow-headers"), Some("*"));
}

#[tokio::test]
async fn the_null_origin_is_allowed_only_when_listed() {
    let wide = Cors::builder()
        .allow_origin("https://*.example.com")
        .allow_origin_regex(".*")
        .build()
        .unwrap();
    let (app, _) = probe();
    let client = TestClient::new(app.layer(wide));
    let res = client.get("/x").header("origin", "null").send().await;
    assert_eq!(res.header("access-control-allow-origin"), None);
    let res = client
        .options("/x")
        .header("origin", "null")
        .header("access-control-request-method", "GET")
        .send()
        .await;
    assert_eq!(res.status(), 400);

    let listed = Cors::builder().allow_origin("null").build().unwrap();
    let (app, _) = probe();
    let client = TestClient::new(app.layer(listed));
    let res = client.get("/x").header("origin", "null").send().await;
    assert_eq!(res.header("access-control-allow-origin"), Some("null"));
}

#[tokio::test]
async fn wildcard_and_regex_origins_match_the_whole_origin() {
    let cors = Cors::builder()
        .allow_origin("https://*.example.com")
        .allow_origin_regex(r"https://pr-\d+\.preview\.test")
        .build()
        .unwrap();
    let (app, _) = probe();
    let client = TestClient::new(app.layer(cors));
    for (origin, ok) in [
        ("https://a.example.com", true),
        ("https://a.b.example.com", true),
        ("https://example.com", false),
        ("https://a.example.com.evil.net", false),
        ("https://evilexample.com", false),
        ("http://a.example.com", false),
        ("https://pr-42.preview.test", true),
        ("https://pr-42.preview.test.evil.net", false),
        ("https://evil.net/https://pr-42.preview.test", false),
    ] {
        let res = client.get("/x").header("origin", origin).send().await;
        assert_eq!(
            res.header("access-control-allow-origin").is_some(),
            ok,
            "{origin}"
        );
    }
}

#[tokio::test]
async fn error_responses_carry_cors_headers() {
    // The app's own 401 and 500.
    for status in [401, 500] {
        let client = TestClient::new(answering(status, Headers::new()).layer(cors()));
        let res = client.get("/x").header("origin", APP).send().await;
        assert_eq!(res.status(), status);
        assert_eq!(
            res.header("access-control-allow-origin"),
            Some(APP),
            "{status}"
        );
    }
    // An app that fails before answering: the 500 comes from the middleware, with headers,
    // and the failure is still reported to the server.
    let failing = |_s: Scope, _rx: Receiver, _tx: Sender| async move {
        Err::<(), ragi::AppError>("database down".into())
    };
    let client = TestClient::new(failing.layer(cors()));
    let res = client.get("/x").header("origin", APP).send().await;
    assert_eq!(res.status(), 500);
    assert_eq!(res.header("access-control-allow-origin"), Some(APP));
    assert!(!res.text().contains("database"), "{}", res.text());
    assert!(res.app_error().unwrap().contains("database down"));
    // An app that panics: the same.
    let panicking = |_s: Scope, _rx: Receiver, _tx: Sender| async move {
        if true {
            panic!("boom");
        }
        Ok(())
    };
    let client = TestClient::new(panicking.layer(cors()));
    let res = client.get("/x").header("origin", APP).send().await;
    assert_eq!(res.status(), 500);
    assert_eq!(res.header("access-control-allow-origin"), Some(APP));
    assert!(res.app_error().is_some());
}

#[tokio::test]
async fn max_age_and_private_network() {
    let configured = Cors::builder()
        .allow_origin(APP)
        .max_age(Duration::from_secs(86400))
        .allow_private_network(true)
        .build()
        .unwrap();
    let (app, _) = probe();
    let client = TestClient::new(app.layer(configured));
    let res = client
        .options("/x")
        .header("origin", APP)
        .header("access-control-request-method", "GET")
        .header("access-control-request-private-network", "true")
        .send()
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(res.header("access-control-max-age"), Some("86400"));
    assert_eq!(
        res.header("access-control-allow-private-network"),
        Some("true")
    );
    assert!(res
        .header("vary")
        .unwrap()
        .contains("Access-Control-Request-Private-Network"));

    // Off by default.
    let (app, _) = probe();
    let client = TestClient::new(app.layer(cors()));
    let res = client
        .options("/x")
        .header("origin", APP)
        .header("access-control-request-method", "GET")
        .header("access-control-request-private-network", "true")
        .send()
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(res.header("access-control-allow-private-network"), None);
}

#[tokio::test]
async fn sse_streams_and_declines_carry_cors_headers() {
    let (app, _) = probe();
    let client = TestClient::new(app.layer(cors()));
    let stream = client
        .sse("/events")
        .header("origin", APP)
        .connect()
        .await
        .stream();
    assert_eq!(
        stream.headers().get_str("access-control-allow-origin"),
        Some(APP)
    );
    assert_eq!(stream.headers().get_str("vary"), Some("Origin"));

    // A preflight that arrives as an `sse` scope is answered with the decline pair.
    let res = client
        .options("/events")
        .header("accept", "text/event-stream")
        .header("origin", APP)
        .header("access-control-request-method", "GET")
        .send()
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(res.header("access-control-allow-origin"), Some(APP));
}

#[tokio::test]
async fn websocket_handshakes_pass_untouched() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(cors()));
    let ws = client
        .websocket("/ws")
        .header("origin", "https://evil.example")
        .connect()
        .await
        .accepted();
    assert_eq!(calls.get(), 1);
    assert!(cors_headers(ws.headers()).is_empty());
}
