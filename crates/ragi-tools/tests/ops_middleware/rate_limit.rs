//! Rate limits, on a paused clock: token buckets (burst, 429 + Retry-After, refill, the IETF
//! headers), keys and instances isolated (the references' shared-bucket trap), the key from
//! the scope's client only, a bounded key map; the concurrency slot freed the moment the client
//! leaves; the WebSocket message limit (close 1008 or drop).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ragi::{DisconnectReason, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use ragi_tools::middleware::rate_limit::{
    ConcurrencyLimit, Exceed, Key, RateLimit, WsRateLimit, WsRateLimited,
};
use ragi_tools::prelude::*;
use ragi_tools::test::{TestClient, WsConnect};
use tokio::sync::mpsc;

use super::support::{hello, next, ws_echo, DropSignal};

/// Counts the calls that reached it.
fn counting(n: Arc<AtomicUsize>) -> impl ragi::App {
    move |s: Scope, r: Receiver, t: Sender| {
        n.fetch_add(1, Ordering::SeqCst);
        super::support::ok(s, r, t, "ok")
    }
}

fn from(ip: [u8; 4]) -> SocketAddr {
    SocketAddr::from((ip, 5000))
}

#[tokio::test(start_paused = true)]
async fn a_burst_then_429_with_retry_after_then_refill() {
    let calls = Arc::new(AtomicUsize::new(0));
    let limit = RateLimit::new(3, Duration::from_secs(3)); // 1 token a second
    let c = TestClient::new(counting(calls.clone()).layer(limit));
    for left in [2, 1, 0] {
        let res = c.get("/").send().await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.header("ratelimit-policy"), Some("\"default\";q=3;w=3"));
        assert_eq!(
            res.header("ratelimit"),
            Some(format!("\"default\";r={left};t=1").as_str())
        );
    }
    let res = c.get("/").send().await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.header("retry-after"), Some("1"));
    assert_eq!(res.header("ratelimit"), Some("\"default\";r=0;t=1"));
    assert_eq!(
        res.json::<serde_json::Value>()["error"],
        "too many requests"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3, "the app was not called");

    tokio::time::advance(Duration::from_millis(999)).await;
    assert_eq!(c.get("/").send().await.status(), 429);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(c.get("/").send().await.status(), 200);
    tokio::time::advance(Duration::from_secs(10)).await;
    let res = c.get("/").send().await;
    assert_eq!(
        res.header("ratelimit"),
        Some("\"default\";r=2;t=1"),
        "full again"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_rounds_up_to_whole_seconds() {
    let limit = RateLimit::new(2, Duration::from_secs(5)); // a token every 2.5 s
    let c = TestClient::new(hello().layer(limit));
    c.get("/").send().await;
    c.get("/").send().await;
    let res = c.get("/").send().await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.header("retry-after"), Some("3"));
}

#[tokio::test(start_paused = true)]
async fn clients_have_their_own_buckets() {
    let limit = RateLimit::new(1, Duration::from_secs(60));
    let app = hello().layer(limit);
    let a = TestClient::new(app.clone()).client_addr(from([192, 0, 2, 1]));
    let b = TestClient::new(app.clone()).client_addr(from([192, 0, 2, 2]));
    assert_eq!(a.get("/").send().await.status(), 200);
    assert_eq!(a.get("/").send().await.status(), 429);
    assert_eq!(b.get("/").send().await.status(), 200);

    // IPv6 clients count by /64: a neighbour in the same /64 shares, another /64 does not.
    let v6 =
        |s: &str| TestClient::new(app.clone()).client_addr(SocketAddr::new(s.parse().unwrap(), 1));
    assert_eq!(v6("2001:db8:0:1::1").get("/").send().await.status(), 200);
    assert_eq!(v6("2001:db8:0:1::ffff").get("/").send().await.status(), 429);
    assert_eq!(v6("2001:db8:0:2::1").get("/").send().await.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn the_key_is_the_scopes_client_never_a_forwarded_header() {
    let limit = RateLimit::new(1, Duration::from_secs(60));
    let c = TestClient::new(hello().layer(limit));
    assert_eq!(
        c.get("/")
            .header("x-forwarded-for", "10.0.0.1")
            .send()
            .await
            .status(),
        200
    );
    // A client cannot buy a fresh bucket by writing another address in a header.
    let res = c
        .get("/")
        .header("x-forwarded-for", "10.0.0.2")
        .send()
        .await;
    assert_eq!(res.status(), 429);
    let res = c.get("/").header("forwarded", "for=10.0.0.3").send().await;
    assert_eq!(res.status(), 429);
}

#[tokio::test(start_paused = true)]
async fn instances_never_share_buckets() {
    // The references' trap: PAGI keeps every limiter's buckets in one process-wide hash.
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/a",
            ragi_tools::router::get(|_cx: HttpContext| async { "a" })
                .layer(RateLimit::new(2, Duration::from_secs(60))),
        )
        .route(
            "/b",
            ragi_tools::router::get(|_cx: HttpContext| async { "b" })
                .layer(RateLimit::new(2, Duration::from_secs(60))),
        );
    let c = TestClient::new(app);
    for _ in 0..2 {
        assert_eq!(c.get("/a").send().await.status(), 200);
    }
    assert_eq!(c.get("/a").send().await.status(), 429);
    for _ in 0..2 {
        assert_eq!(
            c.get("/b").send().await.status(),
            200,
            "/b has its own budget"
        );
    }
    assert_eq!(c.get("/b").send().await.status(), 429);

    // One instance on two apps: one budget, on purpose.
    let shared = RateLimit::new(2, Duration::from_secs(60));
    let x = TestClient::new(counting(calls.clone()).layer(shared.clone()));
    let y = TestClient::new(counting(calls.clone()).layer(shared.clone()));
    assert_eq!(x.get("/").send().await.status(), 200);
    assert_eq!(y.get("/").send().await.status(), 200);
    assert_eq!(x.get("/").send().await.status(), 429);
    assert_eq!(y.get("/").send().await.status(), 429);
    assert_eq!(shared.tracked_keys(), 1);
}

#[tokio::test(start_paused = true)]
async fn custom_keys_exemptions_policy_and_headers_off() {
    let limit = RateLimit::new(1, Duration::from_secs(60))
        .key(|s| s.headers.get_str("x-api-key").map(Key::from))
        .policy("per-key")
        .headers(false);
    let c = TestClient::new(hello().layer(limit));
    let res = c.get("/").header("x-api-key", "k1").send().await;
    assert_eq!(res.status(), 200);
    assert!(res.header("ratelimit").is_none());
    let res = c.get("/").header("x-api-key", "k1").send().await;
    assert_eq!(res.status(), 429);
    assert!(
        res.header("retry-after").is_some(),
        "Retry-After is always sent"
    );
    assert!(res.header("ratelimit").is_none());
    assert_eq!(
        c.get("/").header("x-api-key", "k2").send().await.status(),
        200
    );
    for _ in 0..5 {
        assert_eq!(c.get("/").send().await.status(), 200, "no key: not limited");
    }

    let named = RateLimit::new(5, Duration::from_millis(1500)).policy("burst");
    let res = TestClient::new(hello().layer(named)).get("/").send().await;
    assert_eq!(res.header("ratelimit-policy"), Some("\"burst\";q=5;w=2"));
}

#[tokio::test(start_paused = true)]
async fn the_key_map_is_bounded_and_swept() {
    let limit = RateLimit::new(1, Duration::from_secs(10)).max_keys(8);
    let app = hello().layer(limit.clone());
    for i in 0..50u8 {
        let c = TestClient::new(app.clone()).client_addr(from([10, 0, 0, i]));
        assert_eq!(c.get("/").send().await.status(), 200);
        assert!(limit.tracked_keys() <= 8, "{} keys", limit.tracked_keys());
    }
    // Once a window has passed, every bucket is full again and the next request sweeps them.
    tokio::time::advance(Duration::from_secs(11)).await;
    TestClient::new(app)
        .client_addr(from([10, 1, 0, 0]))
        .get("/")
        .send()
        .await;
    assert_eq!(limit.tracked_keys(), 1);
}

#[tokio::test(start_paused = true)]
async fn websocket_and_sse_requests_are_refused_in_their_framing() {
    let limit = RateLimit::new(1, Duration::from_secs(60));
    let c = TestClient::new(ws_echo().layer(limit));
    let mut ws = c.websocket("/ws").connect().await.accepted();
    assert_eq!(
        ws.headers().get_str("ratelimit"),
        Some("\"default\";r=0;t=60")
    );
    ws.send_text("x").await.unwrap();
    match c.websocket("/ws").connect().await {
        WsConnect::Denied(res) => {
            assert_eq!(res.status(), 429);
            assert!(res.header("retry-after").is_some());
        }
        other => panic!("denied before accept: {}", other.status()),
    }

    let limit = RateLimit::new(1, Duration::from_secs(60));
    let c = TestClient::new(
        ragi_tools::sse::handler(|cx: ragi_tools::SseContext| async move { cx.send("e").await })
            .layer(limit),
    );
    assert_eq!(c.sse("/e").connect().await.stream().status(), 200);
    let res = c.sse("/e").connect().await.declined();
    assert_eq!(res.status(), 429);
}

/// Holds its response until the client leaves, then keeps running until released (an app
/// that does not stop when its client goes).
fn hold(
    release: Arc<tokio::sync::Semaphore>,
    tx: mpsc::UnboundedSender<&'static str>,
) -> impl ragi::App {
    move |scope: Scope, _rx: Receiver, send: Sender| {
        let (release, tx) = (release.clone(), tx.clone());
        async move {
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            send.send(SendEvent::body_chunk("working")).await?;
            let _ = tx.send("started");
            let _ = scope.connection().disconnected().await;
            let _ = tx.send("client gone, still working");
            let _permit = release.acquire().await;
            let _ = tx.send("returned");
            Ok(())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_concurrency_slot_is_freed_the_moment_the_client_leaves() {
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let limit = ConcurrencyLimit::new(1);
    let c = TestClient::new(hold(release.clone(), tx).layer(limit.clone()));

    let mut first = c.get("/job").stream().await;
    assert_eq!(next(&mut rx).await, "started");
    assert_eq!(first.header("ratelimit"), Some("\"concurrency\";r=0"));
    assert_eq!(
        first.header("ratelimit-policy"),
        Some("\"concurrency\";q=1;qu=\"concurrent-requests\"")
    );
    assert_eq!(limit.in_use(), 1);

    let res = c.get("/job").send().await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.header("retry-after"), Some("1"));

    // The client leaves; the app runs on, but its slot is free at once.
    first.disconnect(DisconnectReason::ClientClosed);
    assert_eq!(limit.in_use(), 0, "freed by the departure itself");
    assert_eq!(next(&mut rx).await, "client gone, still working");
    let mut second = c.get("/job").stream().await;
    assert_eq!(second.status(), 200);
    assert_eq!(next(&mut rx).await, "started");
    assert_eq!(limit.in_use(), 1);

    release.add_permits(1);
    assert_eq!(next(&mut rx).await, "returned");
    assert_eq!(
        limit.in_use(),
        1,
        "the first app's return frees nothing twice"
    );
    second.disconnect(DisconnectReason::ClientClosed);
    assert_eq!(limit.in_use(), 0);
    release.add_permits(1);
}

#[tokio::test(start_paused = true)]
async fn a_queued_request_gets_the_freed_slot_or_gives_up() {
    async fn work(_cx: HttpContext) -> &'static str {
        tokio::time::sleep(Duration::from_secs(1)).await;
        "done"
    }
    let limit = ConcurrencyLimit::new(1).wait(Duration::from_secs(5));
    let c = TestClient::new(handler(work).layer(limit.clone()));
    let first = tokio::spawn(c.get("/").send());
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    let second = c.get("/").send().await;
    assert_eq!(second.status(), 200, "waited for the first to finish");
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(first.await.unwrap().status(), 200);

    // Queued longer than the wait: refused.
    let short = ConcurrencyLimit::new(1).wait(Duration::from_millis(300));
    let c = TestClient::new(handler(work).layer(short));
    let first = tokio::spawn(c.get("/").send());
    tokio::task::yield_now().await;
    assert_eq!(c.get("/").send().await.status(), 503);
    first.await.unwrap();

    // A client that leaves while queued: nothing sent, no slot taken.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let counted = Arc::new(AtomicUsize::new(0));
    let app = {
        let counted = counted.clone();
        move |cx: HttpContext| {
            let (tx, counted) = (tx.clone(), counted.clone());
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut signal = DropSignal::new(&tx, "ran");
                tokio::time::sleep(Duration::from_secs(1)).await;
                signal.defuse();
                let _ = cx;
                "done"
            }
        }
    };
    let limit = ConcurrencyLimit::new(1).wait(Duration::from_secs(10));
    let c = TestClient::new(handler(app).layer(limit.clone()));
    let first = tokio::spawn(c.get("/").send());
    tokio::task::yield_now().await;
    let queued = c.get("/");
    let leave = queued.disconnect_handle();
    let waiting = tokio::spawn(queued.send());
    tokio::task::yield_now().await;
    leave.disconnect(DisconnectReason::ClientClosed);
    let res = waiting.await.unwrap();
    assert_eq!(res.client_left(), Some(DisconnectReason::ClientClosed));
    assert_eq!(first.await.unwrap().status(), 200);
    assert_eq!(
        counted.load(Ordering::SeqCst),
        1,
        "the queued request never ran"
    );
    assert_eq!(limit.in_use(), 0);
    assert!(rx.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn a_per_client_concurrency_limit() {
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let limit = ConcurrencyLimit::new(1).per_client();
    let app = hold(release.clone(), tx).layer(limit.clone());
    let a = TestClient::new(app.clone()).client_addr(from([192, 0, 2, 1]));
    let b = TestClient::new(app).client_addr(from([192, 0, 2, 2]));
    let mut a1 = a.get("/").stream().await;
    assert_eq!(next(&mut rx).await, "started");
    assert_eq!(a.get("/").send().await.status(), 429);
    let mut b1 = b.get("/").stream().await;
    assert_eq!(b1.status(), 200);
    assert_eq!(limit.in_use(), 2);
    a1.disconnect(DisconnectReason::ClientClosed);
    b1.disconnect(DisconnectReason::ClientClosed);
    assert_eq!(limit.in_use(), 0);
    release.add_permits(2);
}

#[tokio::test(start_paused = true)]
async fn websocket_messages_over_the_limit_close_with_1008() {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let app = move |scope: Scope, mut r: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            let _ = r.receive().await;
            send.send(SendEvent::WebSocketAccept {
                subprotocol: None,
                headers: Headers::new(),
            })
            .await?;
            loop {
                match r.receive().await {
                    ReceiveEvent::WebSocketReceive(ragi::Message::Text(t)) => {
                        let _ = tx.send(t);
                    }
                    ReceiveEvent::WebSocketDisconnect { code, .. } => {
                        let refused = scope
                            .stash
                            .get::<WsRateLimited>()
                            .map_or(0, |r| r.refused());
                        let _ = tx.send(format!("end {code} refused {refused}"));
                        return Ok(());
                    }
                    _ => {}
                }
            }
        }
    };
    let limit = WsRateLimit::new(2, Duration::from_secs(1)).burst(3);
    let c = TestClient::new(app.layer(limit));
    let mut ws = c.websocket("/ws").connect().await.accepted();
    for i in 0..3 {
        ws.send_text(format!("m{i}")).await.unwrap();
    }
    for i in 0..3 {
        assert_eq!(next(&mut rx).await, format!("m{i}"));
    }
    ws.send_text("m3").await.unwrap(); // over the burst
    let _ = ws.send_text("m4").await; // may find the session closed already
    assert!(ws.receive().await.is_err(), "closed by the server");
    assert_eq!(
        ws.close_frame().map(|(c, r)| (c, r.to_owned())),
        Some((1008, "rate limit exceeded".to_owned()))
    );
    let end = next(&mut rx).await;
    assert!(end.starts_with("end 1008 refused "), "{end}");
}

#[tokio::test(start_paused = true)]
async fn websocket_messages_over_the_limit_can_be_dropped() {
    let limit = WsRateLimit::new(1, Duration::from_secs(1))
        .on_exceed(Exceed::Drop)
        .bytes(100, Duration::from_secs(1), 10);
    let c = TestClient::new(ws_echo().layer(limit));
    let mut ws = c.websocket("/ws").connect().await.accepted();
    ws.send_text("a").await.unwrap();
    assert_eq!(ws.receive_text().await.unwrap(), "a");
    ws.send_text("b").await.unwrap(); // no token: dropped (counted when the app takes it)
    tokio::task::yield_now().await; // the woken app takes it before the clock moves
    tokio::time::advance(Duration::from_secs(1)).await;
    ws.send_text("0123456789x").await.unwrap(); // 11 bytes > the byte burst: dropped
    ws.send_text("c").await.unwrap();
    assert_eq!(
        ws.receive_text().await.unwrap(),
        "c",
        "b and the long one were dropped"
    );
}
