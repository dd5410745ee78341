//! Cancel on disconnect, through the test client: a marked route's handler future is dropped
//! the moment the client leaves and the reason is recorded in the stash; an unmarked one runs
//! on and sees the departure itself; the policy of a route, a group, a router, an enclosing
//! router, and the layer on any app.

use std::sync::Arc;
use std::time::Duration;

use ragi::{DisconnectReason, Receiver, Scope, Sender};
use ragi_tools::cancel::{CancelOnDisconnect, Cancelled};
use ragi_tools::prelude::*;
use ragi_tools::router::get;
use ragi_tools::test::{Disconnect, TestClient};
use ragi_tools::{handler, Handler};
use tokio::sync::mpsc;

/// What the handlers and the recording layer report.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// The handler's future was dropped while it waited.
    Dropped(&'static str),
    /// The handler ran until it saw the departure itself.
    SawLeave(&'static str, String),
    /// What the outer middleware read in the stash after the call returned.
    Recorded(Option<String>),
}

/// Sends `Dropped(tag)` when dropped before being defused.
struct DropSignal(Option<(mpsc::UnboundedSender<Seen>, &'static str)>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some((tx, tag)) = self.0.take() {
            let _ = tx.send(Seen::Dropped(tag));
        }
    }
}

/// A handler that waits for the client to leave (as a well-behaved long job would) and
/// reports which way it ended: dropped half-way, or run to its end.
fn long_job(tag: &'static str, tx: mpsc::UnboundedSender<Seen>) -> impl Handler {
    move |cx: HttpContext| {
        let tx = tx.clone();
        async move {
            let mut signal = DropSignal(Some((tx.clone(), tag)));
            let reason = cx.connection().disconnected().await;
            signal.0 = None; // reached the end: not dropped
            let _ = tx.send(Seen::SawLeave(tag, reason.to_string()));
            Err::<(), _>(Error::disconnected(reason))
        }
    }
}

/// A router layer that reports the stash's `Cancelled` record once the inner call returned.
fn record(tx: mpsc::UnboundedSender<Seen>) -> impl Layer {
    move |inner: SharedApp| -> SharedApp {
        let tx = tx.clone();
        Arc::new(move |scope: Scope, rx: Receiver, send: Sender| {
            let (tx, inner, kept) = (tx.clone(), inner.clone(), scope.clone());
            async move {
                let r = inner.call(scope, rx, send).await;
                let rec = kept.stash.get::<Cancelled>().map(|c| c.reason.to_string());
                let _ = tx.send(Seen::Recorded(rec));
                r
            }
        })
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the handler or the layer reported within 5 s")
        .expect("a report")
}

/// Sends a request that leaves 20 ms in, and returns once the client has left.
async fn leave(c: &TestClient, path: &str, reason: DisconnectReason) {
    let r = c
        .get(path)
        .disconnect(Disconnect::After(Duration::from_millis(20)), reason.clone())
        .send()
        .await;
    assert_eq!(r.client_left(), Some(reason));
}

#[tokio::test]
async fn a_marked_route_is_dropped_when_the_client_leaves_and_the_reason_is_recorded() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/cancel",
            get(long_job("cancel", tx.clone())).cancel_on_disconnect(true),
        )
        .get("/keep", long_job("keep", tx.clone()))
        .layer(record(tx.clone()));
    let c = TestClient::new(app);

    leave(&c, "/cancel", DisconnectReason::ClientClosed).await;
    let started = tokio::time::Instant::now();
    assert_eq!(next(&mut rx).await, Seen::Dropped("cancel"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "dropped at once"
    );
    assert_eq!(
        next(&mut rx).await,
        Seen::Recorded(Some("client_closed".into()))
    );

    // The default: the handler runs on, sees the departure, and nothing is recorded.
    leave(&c, "/keep", DisconnectReason::WriteTimeout).await;
    assert_eq!(
        next(&mut rx).await,
        Seen::SawLeave("keep", "write_timeout".into())
    );
    assert_eq!(next(&mut rx).await, Seen::Recorded(None));
}

#[tokio::test]
async fn a_route_that_finishes_is_not_affected() {
    let app = Router::new()
        .get("/quick", |_cx: HttpContext| async { "done" })
        .cancel_on_disconnect(true);
    let c = TestClient::new(app);
    let r = c.get("/quick").send().await;
    assert_eq!((r.status(), r.text().as_str()), (200, "done"));
    assert!(r.connection().is_completed());
}

#[tokio::test]
async fn router_group_and_route_settings_nest() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let nested = Router::new()
        .get("/inherits", long_job("nested-inherits", tx.clone()))
        .route(
            "/opts-out",
            get(long_job("nested-opts-out", tx.clone())).cancel_on_disconnect(false),
        );
    let app = Router::new()
        .get("/router", long_job("router", tx.clone()))
        .route(
            "/route-off",
            get(long_job("route-off", tx.clone())).cancel_on_disconnect(false),
        )
        .group("/g", |g| {
            g.get("/off", long_job("group-off", tx.clone()))
                .cancel_on_disconnect(false)
        })
        .mount("/nested", nested)
        .cancel_on_disconnect(true);
    let c = TestClient::new(app);
    for (path, want) in [
        ("/router", Seen::Dropped("router")),
        (
            "/route-off",
            Seen::SawLeave("route-off", "client_closed".into()),
        ),
        (
            "/g/off",
            Seen::SawLeave("group-off", "client_closed".into()),
        ),
        ("/nested/inherits", Seen::Dropped("nested-inherits")),
        (
            "/nested/opts-out",
            Seen::SawLeave("nested-opts-out", "client_closed".into()),
        ),
    ] {
        leave(&c, path, DisconnectReason::ClientClosed).await;
        assert_eq!(next(&mut rx).await, want, "{path}");
    }
}

#[tokio::test]
async fn the_layer_cancels_any_app() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = handler(long_job("layer", tx.clone()))
        .layer(CancelOnDisconnect)
        .layer(record(tx.clone()));
    let c = TestClient::new(app);
    leave(&c, "/", DisconnectReason::extra("x-gone").unwrap()).await;
    assert_eq!(next(&mut rx).await, Seen::Dropped("layer"));
    assert_eq!(next(&mut rx).await, Seen::Recorded(Some("x-gone".into())));
}
