//! Lifespan: start-up, shut-down, state, failures, apps without lifespan.

use std::time::Duration;

use ragi::{ReceiveEvent, Receiver, Scope, ScopeKind, SendEvent, Sender, UnsupportedScope};
use ragi_tools::test::{TestClient, TestError};

use super::support::{respond, Seen};

struct Pool(&'static str);

fn app(seen: Seen, fail_startup: bool) -> impl ragi::App {
    move |scope: Scope, mut rx: Receiver, send: Sender| {
        let s = seen.clone();
        async move {
            if scope.kind == ScopeKind::Lifespan {
                loop {
                    match rx.receive().await {
                        ReceiveEvent::Startup if fail_startup => {
                            send.send(SendEvent::StartupFailed {
                                message: "no database".into(),
                            })
                            .await?;
                            return Ok(());
                        }
                        ReceiveEvent::Startup => {
                            scope.state.insert(Pool("db"));
                            s.push("startup");
                            // A non-lifespan event is refused in a lifespan scope.
                            let r = send.send(SendEvent::FullFlush).await;
                            s.push(format!(
                                "flush refused: {}",
                                r.unwrap_err().is_invalid_event()
                            ));
                            send.send(SendEvent::StartupComplete).await?;
                        }
                        ReceiveEvent::Shutdown => {
                            s.push("shutdown");
                            send.send(SendEvent::ShutdownComplete).await?;
                            return Ok(());
                        }
                        other => panic!("{other:?}"),
                    }
                }
            }
            let pool = scope.state.get::<Pool>().map_or("none", |p| p.0);
            respond(&send, 200, "text/plain", pool).await?;
            Ok(())
        }
    }
}

#[tokio::test]
async fn startup_state_reaches_every_scope_and_shutdown_runs() {
    let seen = Seen::default();
    let client = TestClient::new(app(seen.clone(), false));
    assert_eq!(client.lifespan_supported().await, None);
    assert_eq!(client.get("/").send().await.text(), "none");
    client.start().await.unwrap();
    assert_eq!(client.lifespan_supported().await, Some(true));
    assert_eq!(client.get("/").send().await.text(), "db");
    assert_eq!(client.state().get::<Pool>().unwrap().0, "db");
    client.stop().await.unwrap();
    // Stopping twice is harmless.
    client.stop().await.unwrap();
    assert_eq!(
        seen.get(),
        vec!["startup", "flush refused: true", "shutdown"]
    );
}

#[tokio::test]
async fn a_failed_startup_is_an_error_with_the_message() {
    let client = TestClient::new(app(Seen::default(), true));
    assert_eq!(
        client.start().await,
        Err(TestError::StartupFailed("no database".into()))
    );
}

#[tokio::test]
async fn an_app_without_lifespan_is_tolerated() {
    let plain = |scope: Scope, _rx: Receiver, send: Sender| async move {
        if scope.kind != ScopeKind::Http {
            return Err(UnsupportedScope(scope.kind).into());
        }
        respond(&send, 200, "text/plain", "ok").await?;
        Ok(())
    };
    let client = TestClient::new(plain);
    client.start().await.unwrap();
    assert_eq!(client.lifespan_supported().await, Some(false));
    assert_eq!(client.get("/").send().await.text(), "ok");
    client.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_silent_lifespan_times_out() {
    let silent = |_scope: Scope, _rx: Receiver, _send: Sender| async move {
        std::future::pending::<()>().await;
        Ok(())
    };
    let client = TestClient::new(silent).timeout(Duration::from_secs(2));
    let err = client.start().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "timed out after 2s waiting for the app's answer to lifespan Startup"
    );
}
