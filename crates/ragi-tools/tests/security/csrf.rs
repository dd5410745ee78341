//! CSRF (toolkit-references §2.5).

use ragi::{DisconnectReason, ReceiveEvent, Receiver, Scope, Sender};
use ragi_tools::middleware::csrf::{Csrf, CsrfTokens};
use ragi_tools::test::{TestClient, WsConnect};
use ragi_tools::AppExt;
use serde_json::Value;

use super::support::{json_of, probe};

async fn post_status(csrf: Csrf, headers: &[(&str, &str)]) -> u16 {
    let (app, _) = probe();
    let client = TestClient::new(app.layer(csrf));
    let mut req = client.post("/transfer").body("amount=1");
    for (n, v) in headers {
        req = req.header(n.to_string(), v.to_string());
    }
    req.send().await.status()
}

#[tokio::test]
async fn safe_methods_pass_and_cross_site_unsafe_requests_are_403() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(Csrf::new()));
    for m in [http::Method::GET, http::Method::HEAD, http::Method::OPTIONS] {
        let res = client
            .request(m.clone(), "/")
            .header("sec-fetch-site", "cross-site")
            .header("origin", "https://evil.example")
            .send()
            .await;
        assert_eq!(res.status(), 200, "{m}");
    }
    assert_eq!(calls.get(), 3);
    let res = client
        .post("/")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(calls.get(), 3, "the app is not called");
}

#[tokio::test]
async fn fetch_metadata_then_origin() {
    let c = Csrf::new;
    // Sec-Fetch-Site decides when present.
    assert_eq!(
        post_status(c(), &[("sec-fetch-site", "same-origin")]).await,
        200
    );
    assert_eq!(post_status(c(), &[("sec-fetch-site", "none")]).await, 200);
    assert_eq!(
        post_status(c(), &[("sec-fetch-site", "same-site")]).await,
        403
    );
    assert_eq!(
        post_status(c(), &[("sec-fetch-site", "cross-site")]).await,
        403
    );
    assert_eq!(
        post_status(
            c(),
            &[
                ("sec-fetch-site", "same-origin"),
                ("origin", "https://evil.example")
            ]
        )
        .await,
        200
    );
    // Without it: no Origin passes (not a browser); the same host passes; others do not.
    assert_eq!(post_status(c(), &[]).await, 200);
    assert_eq!(
        post_status(c(), &[("origin", "http://testserver")]).await,
        200
    );
    assert_eq!(
        post_status(c(), &[("origin", "https://TestServer")]).await,
        200
    );
    assert_eq!(
        post_status(c(), &[("origin", "http://testserver:8080")]).await,
        403
    );
    assert_eq!(
        post_status(c(), &[("origin", "https://evil.example")]).await,
        403
    );
    assert_eq!(post_status(c(), &[("origin", "null")]).await, 403);
    // A trusted origin passes either way.
    let trusting = || c().trust_origin("https://admin.example").unwrap();
    assert_eq!(
        post_status(trusting(), &[("origin", "https://admin.example")]).await,
        200
    );
    assert_eq!(
        post_status(
            trusting(),
            &[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://admin.example")
            ]
        )
        .await,
        200
    );
    assert!(c().trust_origin("admin.example").is_err());
    assert!(c().trust_origin("https://admin.example/path").is_err());
}

/// Cross-site WebSocket hijacking: no reference checks the handshake's Origin.
#[tokio::test]
async fn a_websocket_handshake_with_a_foreign_origin_is_refused_before_accept() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(Csrf::new()));
    for headers in [
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
        vec![
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ],
    ] {
        let mut b = client.websocket("/ws");
        for (n, v) in &headers {
            b = b.header(n.to_string(), v.to_string());
        }
        match b.connect().await {
            WsConnect::Denied(res) => assert_eq!(res.status(), 403, "{headers:?}"),
            other => panic!("{headers:?}: expected 403 before accept, got {other:?}"),
        }
    }
    assert_eq!(calls.get(), 0);
    client
        .websocket("/ws")
        .header("origin", "http://testserver")
        .connect()
        .await
        .accepted();
    client
        .websocket("/ws")
        .header("sec-fetch-site", "same-origin")
        .header("origin", "http://testserver")
        .connect()
        .await
        .accepted();
    // A non-browser client sends no Origin.
    client.websocket("/ws").connect().await.accepted();
    // Turned off, anything goes.
    let (app, _) = probe();
    TestClient::new(app.layer(Csrf::new().check_websockets(false)))
        .websocket("/ws")
        .header("origin", "https://evil.example")
        .connect()
        .await
        .accepted();
}

fn tokens() -> CsrfTokens {
    CsrfTokens::new([42u8; 32]).unwrap()
}

#[tokio::test]
async fn a_safe_request_gets_the_token_in_a_cookie_and_the_stash() {
    let (app, _) = probe();
    let client = TestClient::new(app.layer(Csrf::new().with_tokens(tokens())));
    let res = client.get("/form").send().await;
    let set = res.header("set-cookie").unwrap().to_owned();
    assert!(set.starts_with("csrf_token="), "{set}");
    assert!(
        set.contains("Path=/") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(
        !set.contains("Secure") && !set.contains("HttpOnly"),
        "{set}"
    );
    let token = client.cookie("csrf_token").unwrap();
    assert_eq!(json_of(&res)["csrf"], token.as_str());
    // The next safe request keeps the valid cookie: no new one.
    let res = client.get("/form").send().await;
    assert_eq!(res.header("set-cookie"), None);
    assert_eq!(json_of(&res)["csrf"], token.as_str());
    // Over https the cookie is Secure; HttpOnly on request.
    let (app, _) = probe();
    let res = TestClient::new(app.layer(Csrf::new().with_tokens(tokens().http_only(true))))
        .https()
        .get("/")
        .send()
        .await;
    let set = res.header("set-cookie").unwrap();
    assert!(
        set.contains("; Secure") && set.contains("; HttpOnly"),
        "{set}"
    );
}

#[tokio::test]
async fn unsafe_requests_need_the_token_in_the_header_or_the_form() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(Csrf::new().with_tokens(tokens())));
    // No cookie yet.
    assert_eq!(
        client
            .post("/")
            .header("x-csrf-token", "x")
            .send()
            .await
            .status(),
        403
    );
    client.get("/").send().await;
    let token = client.cookie("csrf_token").unwrap();
    // Cookie but no submitted token; a wrong one; a right one.
    assert_eq!(client.post("/").send().await.status(), 403);
    assert_eq!(
        client
            .post("/")
            .header("x-csrf-token", "nope")
            .send()
            .await
            .status(),
        403
    );
    let res = client
        .post("/")
        .header("x-csrf-token", token.clone())
        .send()
        .await;
    assert_eq!(res.status(), 200);
    // The form field; the app reads the same body.
    let res = client
        .post("/")
        .form(&[("amount", "10"), ("csrf_token", token.as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 200);
    let v: Value = json_of(&res);
    assert_eq!(v["body"], format!("amount=10&csrf_token={token}"));
    let res = client
        .post("/")
        .form(&[("amount", "10"), ("csrf_token", "forged")])
        .send()
        .await;
    assert_eq!(res.status(), 403);
    // Not a form and no header.
    let res = client
        .post("/")
        .json(&serde_json::json!({"csrf_token": token}))
        .send()
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(calls.get(), 1 + 2);
}

#[tokio::test]
async fn forged_and_rotated_cookies() {
    let (app, _) = probe();
    let other_key = CsrfTokens::new([9u8; 32]).unwrap();
    // A token signed with another key (a sibling subdomain tossing its own cookie).
    let client_other = TestClient::new(probe().0.layer(Csrf::new().with_tokens(other_key)));
    client_other.get("/").send().await;
    let foreign = client_other.cookie("csrf_token").unwrap();
    let client = TestClient::new(app.layer(Csrf::new().with_tokens(tokens())));
    client.set_cookie("csrf_token", &foreign);
    let res = client
        .post("/")
        .header("x-csrf-token", foreign.clone())
        .send()
        .await;
    assert_eq!(res.status(), 403);
    // Rotation: the old key still verifies.
    let rotated = CsrfTokens::new([1u8; 32]).unwrap().old_key([9u8; 32]);
    let client = TestClient::new(probe().0.layer(Csrf::new().with_tokens(rotated)));
    client.set_cookie("csrf_token", &foreign);
    let res = client
        .post("/")
        .header("x-csrf-token", foreign.clone())
        .send()
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn an_oversized_form_is_413() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(Csrf::new().with_tokens(tokens().max_form_size(16))));
    client.get("/").send().await;
    let res = client
        .post("/")
        .form(&[("big", "x".repeat(100).as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 413);
    assert_eq!(calls.get(), 1);
}

/// After the middleware read the form, the app's `receive()` still delivers the disconnect.
#[tokio::test]
async fn the_disconnect_still_reaches_the_app_after_the_form_was_read() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let read = std::sync::Arc::new(tokio::sync::Notify::new());
    let r = read.clone();
    let app = move |_scope: Scope, mut receive: Receiver, _send: Sender| {
        let (tx, r) = (tx.clone(), r.clone());
        async move {
            let first = receive.receive().await;
            r.notify_one();
            let second = receive.receive().await;
            let _ = tx.send((first, second));
            Ok(())
        }
    };
    let client = TestClient::new(app.layer(Csrf::new().with_tokens(tokens())));
    let (probe_app, _) = probe();
    let warm = TestClient::new(probe_app.layer(Csrf::new().with_tokens(tokens())));
    warm.get("/").send().await;
    let token = warm.cookie("csrf_token").unwrap();
    client.set_cookie("csrf_token", &token);
    let req = client
        .post("/")
        .form(&[("csrf_token", token.as_str()), ("a", "b")]);
    let leave = req.disconnect_handle();
    let pending = tokio::spawn(req.send());
    read.notified().await;
    leave.disconnect(DisconnectReason::ClientClosed);
    let (first, second) = rx.recv().await.unwrap();
    match first {
        ReceiveEvent::Request { body, more } => {
            assert!(!more);
            assert!(body.starts_with(b"csrf_token="));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        second,
        ReceiveEvent::Disconnect {
            reason: DisconnectReason::ClientClosed
        }
    );
    pending.await.unwrap();
}

#[tokio::test]
async fn a_client_leaving_while_the_form_is_read_ends_the_call() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(Csrf::new().with_tokens(tokens())));
    client.get("/").send().await;
    let token = client.cookie("csrf_token").unwrap();
    let res = client
        .post("/")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={token}&pad={}", "x".repeat(64)))
        .disconnect(
            ragi_tools::test::Disconnect::MidBody(10),
            DisconnectReason::ClientClosed,
        )
        .send()
        .await;
    assert_eq!(res.client_left(), Some(DisconnectReason::ClientClosed));
    res.wait_app().await;
    assert_eq!(calls.get(), 1, "only the GET reached the app");
}
