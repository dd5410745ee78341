//! The tower adapter with a real axum `Router`, in-process: the events it sends, the client
//! leaving at scripted moments.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::routing::{get, post};
use axum::{Extension, Router};
use bytes::Bytes;
use ragi::{Connection, DisconnectReason, ReceiveEvent, ScopeKind, SendEvent};
use support::session::{scope, Session};
use tokio::sync::mpsc;

struct DropGuard(mpsc::UnboundedSender<&'static str>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        let _ = self.0.send("dropped");
    }
}

fn app(log: mpsc::UnboundedSender<&'static str>, polls: Arc<AtomicUsize>) -> impl ragi::App {
    let log2 = log.clone();
    let router = Router::new()
        .route(
            "/stream",
            get(move || {
                let guard = DropGuard(log.clone());
                let polls = polls.clone();
                async move {
                    let s = futures_util::stream::unfold(guard, move |g| {
                        let polls = polls.clone();
                        async move {
                            let n = polls.fetch_add(1, Ordering::SeqCst);
                            if n >= 2 {
                                // After two pieces the body waits (a slow generator).
                                std::future::pending::<()>().await;
                            }
                            Some((Ok::<_, Infallible>(Bytes::from(format!("piece {n}\n"))), g))
                        }
                    });
                    Body::from_stream(s)
                }
            }),
        )
        .route(
            "/read",
            post(move |req: Request| {
                let log = log2.clone();
                async move {
                    let r = axum::body::to_bytes(req.into_body(), 1 << 20).await;
                    let _ = log.send(if r.is_err() {
                        "body failed"
                    } else {
                        "body read"
                    });
                    "read"
                }
            }),
        )
        .route(
            "/conn",
            get(|Extension(conn): Extension<Connection>| async move {
                format!("connected={}", conn.is_connected())
            }),
        );
    ragi_tools::tower::service(router)
}

#[tokio::test]
async fn the_response_body_is_dropped_unpolled_when_the_client_leaves() {
    let (tx, mut log) = mpsc::unbounded_channel();
    let polls = Arc::new(AtomicUsize::new(0));
    let mut s = Session::start(app(tx, polls.clone()), scope(ScopeKind::Http, "/stream"));
    s.no_body();
    assert!(matches!(
        s.next().await,
        SendEvent::ResponseStart { status: 200, .. }
    ));
    for i in 0..2 {
        match s.next().await {
            SendEvent::ResponseBody { body, more: true } => {
                assert_eq!(body, ragi::Body::Bytes(format!("piece {i}\n").into()))
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        log.try_recv().is_err(),
        "the body is alive while the client is"
    );
    s.leave(DisconnectReason::ClientClosed);
    assert_eq!(log.recv().await, Some("dropped"));
    let (events, r) = s.finish().await;
    r.unwrap();
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(polls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_client_that_leaves_mid_body_fails_the_request_body() {
    let (tx, mut log) = mpsc::unbounded_channel();
    let mut sc = scope(ScopeKind::Http, "/read");
    sc.method = http::Method::POST;
    let s = Session::start(app(tx, Arc::default()), sc);
    s.push(ReceiveEvent::Request {
        body: Bytes::from_static(b"half"),
        more: true,
    });
    s.leave(DisconnectReason::ClientTimeout);
    assert_eq!(log.recv().await, Some("body failed"));
    let (events, r) = s.finish().await;
    r.unwrap();
    assert!(
        events.is_empty(),
        "nothing is sent to a departed client: {events:?}"
    );
}

#[tokio::test]
async fn a_whole_body_is_one_final_piece_and_the_connection_is_an_extension() {
    let (tx, _log) = mpsc::unbounded_channel();
    let s = Session::start(app(tx, Arc::default()), scope(ScopeKind::Http, "/conn"));
    s.no_body();
    let (events, r) = s.finish().await;
    r.unwrap();
    assert!(matches!(
        &events[0],
        SendEvent::ResponseStart { status: 200, headers, trailers: false }
            if headers.get_str("content-length") == Some("14")
    ));
    assert_eq!(events[1], SendEvent::body("connected=true"));
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn an_sse_scope_answers_through_the_decline_pair() {
    let (tx, _log) = mpsc::unbounded_channel();
    let mut sc = scope(ScopeKind::Sse, "/conn");
    sc.headers
        .push("accept", "application/json, text/event-stream");
    let s = Session::start(app(tx, Arc::default()), sc);
    s.no_body();
    let (events, r) = s.finish().await;
    r.unwrap();
    assert!(matches!(
        events[0],
        SendEvent::HttpResponseStart { status: 200, .. }
    ));
    assert_eq!(
        events[1],
        SendEvent::HttpResponseBody {
            body: Bytes::from_static(b"connected=true"),
            more: false
        }
    );
}
