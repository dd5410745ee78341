//! Health checks: liveness and readiness answered before the app, checks run concurrently and
//! bounded, failures reported, other methods refused, checks dropped when the prober leaves.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ragi::DisconnectReason;
use ragi_tools::middleware::health::Health;
use ragi_tools::prelude::*;
use ragi_tools::test::TestClient;
use tokio::sync::mpsc;

use super::support::{hello, next, DropSignal};

#[tokio::test]
async fn liveness_is_answered_before_the_app() {
    let c = TestClient::new(hello().layer(Health::new()));
    let res = c.get("/healthz").send().await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<serde_json::Value>(),
        serde_json::json!({ "status": "ok" })
    );
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let head = c.head("/healthz").send().await;
    assert_eq!(head.status(), 200);
    assert!(head.bytes().is_empty());
    let res = c.post("/healthz").send().await;
    assert_eq!(res.status(), 405);
    assert_eq!(res.header("allow"), Some("GET, HEAD"));
    assert_eq!(
        c.get("/").send().await.text(),
        "hello",
        "other paths reach the app"
    );
    assert_eq!(
        c.get("/readyz").send().await.status(),
        200,
        "no checks: ready"
    );
}

#[tokio::test(start_paused = true)]
async fn readiness_runs_every_check_concurrently() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let health = Health::new()
        .liveness_path("/live")
        .readiness_path("/ready")
        .check("db", move || {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<(), String>(())
            }
        })
        .check("cache", || async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<(), std::io::Error>(())
        });
    let c = TestClient::new(hello().layer(health));
    let start = tokio::time::Instant::now();
    let res = c.get("/ready").send().await;
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(300),
        "concurrently, not one after the other"
    );
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<serde_json::Value>(),
        serde_json::json!({ "status": "ok", "checks": { "db": { "status": "ok" }, "cache": { "status": "ok" } } })
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(c.get("/live").send().await.status(), 200);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "liveness runs no check");
    assert_eq!(c.get("/healthz").send().await.text(), "hello");
}

#[tokio::test(start_paused = true)]
async fn a_failing_or_slow_check_makes_it_unready() {
    let health = Health::new()
        .check("db", || async { Err::<(), _>("connection refused") })
        .check("queue", || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<(), String>(())
        })
        .check("disk", || async { Ok::<(), String>(()) })
        .check_timeout(Duration::from_secs(2));
    let c = TestClient::new(hello().layer(health));
    let start = tokio::time::Instant::now();
    let res = c.get("/readyz").send().await;
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(res.status(), 503);
    let v: serde_json::Value = res.json();
    assert_eq!(v["status"], "fail");
    assert_eq!(
        v["checks"]["db"],
        serde_json::json!({ "status": "fail", "error": "connection refused" })
    );
    assert_eq!(v["checks"]["queue"]["status"], "fail");
    assert_eq!(v["checks"]["queue"]["error"], "timed out after 2s");
    assert_eq!(v["checks"]["disk"]["status"], "ok");
}

#[tokio::test(start_paused = true)]
async fn a_prober_that_leaves_drops_the_checks() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let health = Health::new().check("slow", move || {
        let tx = tx.clone();
        async move {
            let mut signal = DropSignal::new(&tx, "check dropped");
            tokio::time::sleep(Duration::from_secs(3)).await;
            signal.defuse();
            Ok::<(), String>(())
        }
    });
    let c = TestClient::new(hello().layer(health));
    let res = c
        .get("/readyz")
        .disconnect(
            ragi_tools::test::Disconnect::After(Duration::from_secs(1)),
            DisconnectReason::ClientClosed,
        )
        .send()
        .await;
    assert_eq!(res.client_left(), Some(DisconnectReason::ClientClosed));
    assert_eq!(next(&mut rx).await, "check dropped");
    assert!(res.events().is_empty(), "nothing sent");
}
