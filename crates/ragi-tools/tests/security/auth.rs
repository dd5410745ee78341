//! Basic and Bearer auth (toolkit-references §2.8).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use base64::Engine;
use ragi::DisconnectReason;
use ragi_tools::middleware::auth::{BasicAuth, BearerAuth, BearerError, Identity};
use ragi_tools::test::{TestClient, WsConnect};
use ragi_tools::AppExt;
use serde_json::Value;

use super::support::{json_of, probe};

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn basic() -> BasicAuth {
    BasicAuth::credentials(
        "Admin \"area\"",
        [("alice", "s3cret:with:colons"), ("jürgen", "pässwörd")],
    )
}

const CHALLENGE: &str = r#"Basic realm="Admin \"area\"", charset="UTF-8""#;

#[tokio::test]
async fn basic_refusals_are_401_with_the_challenge_never_500() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(basic()));
    let cases: Vec<Option<String>> = vec![
        None,
        Some("Basic".into()),
        Some("Basic !!!notbase64".into()),
        Some(format!("Basic {}", b64(b"no-colon"))),
        Some(format!("Basic {}", b64(b"alice:wrong"))),
        Some(format!("Basic {}", b64(b"alice:s3cret"))),
        Some(format!("Basic {}", b64(b"alice:s3cret:with:colonsX"))),
        Some(format!("Basic {}", b64(&[0xff, b':', 0xfe]))),
        Some(format!("Bearer {}", b64(b"alice:s3cret:with:colons"))),
    ];
    for auth in cases {
        let mut req = client.get("/admin");
        if let Some(a) = &auth {
            req = req.header("authorization", a.clone());
        }
        let res = req.send().await;
        assert_eq!(res.status(), 401, "{auth:?}");
        assert_eq!(res.header("www-authenticate"), Some(CHALLENGE), "{auth:?}");
    }
    // Two Authorization fields are malformed.
    let good = format!("Basic {}", b64(b"alice:s3cret:with:colons"));
    let res = client
        .get("/")
        .header("authorization", good.clone())
        .header("authorization", good)
        .send()
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn basic_accepts_any_case_colons_and_utf8_and_stashes_the_identity() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(basic()));
    for (scheme, creds, who) in [
        ("Basic", "alice:s3cret:with:colons", "alice"),
        ("basic", "alice:s3cret:with:colons", "alice"),
        ("BASIC", "jürgen:pässwörd", "jürgen"),
    ] {
        let res = client
            .get("/")
            .header(
                "authorization",
                format!("{scheme}  {}", b64(creds.as_bytes())),
            )
            .send()
            .await;
        assert_eq!(res.status(), 200, "{scheme} {creds}");
        assert_eq!(json_of(&res)["identity"], who);
    }
    assert_eq!(calls.get(), 3);
}

#[tokio::test]
async fn a_basic_verifier_is_async_and_pluggable() {
    let verifier = |user: String, password: String| async move {
        tokio::task::yield_now().await;
        (password == format!("{user}!")).then(|| Identity::new(user).with("admin".to_owned()))
    };
    let (app, _) = probe();
    let client = TestClient::new(app.layer(BasicAuth::new("r", verifier)));
    let res = client
        .get("/")
        .header("authorization", format!("Basic {}", b64(b"bob:bob!")))
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json_of(&res)["identity_extra"], "admin");
    let res = client
        .get("/")
        .header("authorization", format!("Basic {}", b64(b"bob:nope")))
        .send()
        .await;
    assert_eq!(res.status(), 401);
}

fn bearer() -> BearerAuth {
    BearerAuth::new("api", |token: String| async move {
        match token.as_str() {
            "expired" => Err(BearerError::invalid_token("the token expired")),
            "reader" => Err(BearerError::insufficient_scope("write")),
            t if t.starts_with("tok-") => Ok(Identity::new(&t[4..])),
            _ => Err(BearerError::InvalidToken { description: None }),
        }
    })
}

#[tokio::test]
async fn bearer_challenges_follow_rfc_6750() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(bearer()));
    for (auth, status, challenge) in [
        (None, 401, r#"Bearer realm="api""#),
        (Some("Basic abc"), 401, r#"Bearer realm="api""#),
        (
            Some("Bearer nope"),
            401,
            r#"Bearer realm="api", error="invalid_token""#,
        ),
        (
            Some("Bearer expired"),
            401,
            r#"Bearer realm="api", error="invalid_token", error_description="the token expired""#,
        ),
        (
            Some("Bearer reader"),
            403,
            r#"Bearer realm="api", error="insufficient_scope", scope="write""#,
        ),
        (
            Some("Bearer"),
            400,
            r#"Bearer realm="api", error="invalid_request""#,
        ),
        (
            Some("Bearer a b"),
            400,
            r#"Bearer realm="api", error="invalid_request""#,
        ),
    ] {
        let mut req = client.get("/api");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = req.send().await;
        assert_eq!(res.status(), status, "{auth:?}");
        assert_eq!(res.header("www-authenticate"), Some(challenge), "{auth:?}");
    }
    assert_eq!(calls.get(), 0);
    let res = client
        .get("/api")
        .header("authorization", "bearer tok-carol")
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json_of(&res)["identity"], "carol");
}

#[tokio::test]
async fn static_tokens_and_none_from_a_verifier() {
    let (app, _) = probe();
    let client = TestClient::new(app.layer(BearerAuth::tokens(
        "api",
        [("t-1", "svc-a"), ("t-2", "svc-b")],
    )));
    let res = client
        .get("/")
        .header("authorization", "Bearer t-2")
        .send()
        .await;
    assert_eq!(json_of(&res)["identity"], "svc-b");
    let res = client
        .get("/")
        .header("authorization", "Bearer t-3")
        .send()
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.header("www-authenticate"),
        Some(r#"Bearer realm="api", error="invalid_token""#)
    );
    // A verifier returning Option: None is invalid_token.
    let (app, _) = probe();
    let opt = BearerAuth::new("x", |t: String| async move {
        (t == "ok").then(|| Identity::new("u"))
    });
    let client = TestClient::new(app.layer(opt));
    assert_eq!(
        client
            .get("/")
            .header("authorization", "Bearer ok")
            .send()
            .await
            .status(),
        200
    );
    assert_eq!(
        client
            .get("/")
            .header("authorization", "Bearer ko")
            .send()
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn a_websocket_without_credentials_is_declined_with_401_before_accept() {
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(basic()));
    match client.websocket("/ws").connect().await {
        WsConnect::Denied(res) => {
            assert_eq!(res.status(), 401);
            assert_eq!(res.header("www-authenticate"), Some(CHALLENGE));
        }
        other => panic!("expected a 401 before accept, got {other:?}"),
    }
    assert_eq!(calls.get(), 0);
    let mut ws = client
        .websocket("/ws")
        .header(
            "authorization",
            format!("Basic {}", b64(b"alice:s3cret:with:colons")),
        )
        .connect()
        .await
        .accepted();
    let v: Value = ws.receive_json().await.unwrap();
    assert_eq!(v["identity"], "alice");

    // Bearer, with the token in the query for browsers.
    let (app, _) = probe();
    let client = TestClient::new(app.layer(bearer().query_token("access_token")));
    match client.websocket("/ws").connect().await {
        WsConnect::Denied(res) => {
            assert_eq!(res.status(), 401);
            assert_eq!(
                res.header("www-authenticate"),
                Some(r#"Bearer realm="api""#)
            );
        }
        other => panic!("{other:?}"),
    }
    match client.websocket("/ws?access_token=expired").connect().await {
        WsConnect::Denied(res) => {
            assert_eq!(res.status(), 401);
            assert!(res
                .header("www-authenticate")
                .unwrap()
                .contains("invalid_token"));
        }
        other => panic!("{other:?}"),
    }
    let mut ws = client
        .websocket("/ws?access_token=tok-dave")
        .connect()
        .await
        .accepted();
    let v: Value = ws.receive_json().await.unwrap();
    assert_eq!(v["identity"], "dave");
    // Without query_token the query is not read.
    let (app, _) = probe();
    let client = TestClient::new(app.layer(bearer()));
    assert_eq!(
        client
            .websocket("/ws?access_token=tok-dave")
            .connect()
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn an_sse_request_without_credentials_is_declined() {
    let (app, _) = probe();
    let client = TestClient::new(app.layer(bearer()));
    let res = client.sse("/events").connect().await.declined();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.header("www-authenticate"),
        Some(r#"Bearer realm="api""#)
    );
    let mut s = client
        .sse("/events")
        .header("authorization", "Bearer tok-erin")
        .connect()
        .await
        .stream();
    let v: Value = s.next_event().await.unwrap().json().unwrap();
    assert_eq!(v["identity"], "erin");
}

/// Drops its flag when the verifier's future is dropped.
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn the_verifier_is_dropped_when_the_client_leaves() {
    let dropped = Arc::new(AtomicBool::new(false));
    let started = Arc::new(tokio::sync::Notify::new());
    let (d, s) = (dropped.clone(), started.clone());
    let slow = BearerAuth::new("api", move |_t: String| {
        let flag = DropFlag(d.clone());
        let s = s.clone();
        async move {
            let _flag = flag;
            s.notify_one();
            std::future::pending::<Option<Identity>>().await
        }
    });
    let (app, calls) = probe();
    let client = TestClient::new(app.layer(slow));
    let req = client.get("/").header("authorization", "Bearer tok-x");
    let leave = req.disconnect_handle();
    let pending = tokio::spawn(req.send());
    started.notified().await;
    leave.disconnect(DisconnectReason::ClientClosed);
    let res = pending.await.unwrap();
    assert_eq!(res.client_left(), Some(DisconnectReason::ClientClosed));
    res.wait_app().await;
    assert!(
        dropped.load(Ordering::SeqCst),
        "the verifier's future was dropped"
    );
    assert_eq!(calls.get(), 0);
}
