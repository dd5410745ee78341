//! The tower adapter with a real axum `Router`, served by `ragi-server` over real sockets.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::sse::{Event as AxumEvent, Sse};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use futures_util::stream;
use http_body_util::StreamBody;
use ragi::{Connection, DisconnectReason};
use ragi_tools::tower::{ClientAddr, RootPath};
use support::{serve, within, Client};
use tokio::sync::mpsc;

/// Signals when dropped.
struct DropGuard(Option<mpsc::UnboundedSender<()>>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

fn router(
    entered: mpsc::UnboundedSender<()>,
    seen: mpsc::UnboundedSender<DisconnectReason>,
    dropped: mpsc::UnboundedSender<()>,
    polls: Arc<AtomicUsize>,
) -> Router {
    Router::new()
        .route("/hello", get(|| async { "Hello, World!" }))
        .route(
            "/json",
            post(|Json(v): Json<serde_json::Value>| async move {
                Json(serde_json::json!({ "you_sent": v }))
            }),
        )
        .route(
            "/whoami",
            get(
                |Extension(ClientAddr(addr)): Extension<ClientAddr>,
                 Extension(RootPath(root)): Extension<RootPath>,
                 req: Request| async move {
                    format!(
                        "{} {} {:?} root={root:?}",
                        addr.ip(),
                        req.uri(),
                        req.version()
                    )
                },
            ),
        )
        // Streams the request body back piece by piece.
        .route(
            "/echo",
            post(
                |req: Request| async move { Body::from_stream(req.into_body().into_data_stream()) },
            ),
        )
        // Waits for the client to leave, through the connection object.
        .route(
            "/wait",
            get(move |Extension(conn): Extension<Connection>| {
                let (seen, entered) = (seen.clone(), entered.clone());
                async move {
                    let _ = entered.send(());
                    let reason = conn.disconnected().await;
                    let _ = seen.send(reason);
                    "never seen"
                }
            }),
        )
        // An endless body; its stream reports when it is dropped.
        .route(
            "/endless",
            get(move || {
                let guard = DropGuard(Some(dropped.clone()));
                let polls = polls.clone();
                async move {
                    let s = stream::unfold((guard, 0u64), move |(g, i)| {
                        let polls = polls.clone();
                        async move {
                            polls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            Some((
                                Ok::<_, Infallible>(Bytes::from(format!("line {i}\n"))),
                                (g, i + 1),
                            ))
                        }
                    });
                    Body::from_stream(s)
                }
            }),
        )
        .route(
            "/trailers",
            get(|| async {
                let frames = stream::iter(vec![
                    Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(b"body"))),
                    Ok(http_body::Frame::trailers({
                        let mut t = http::HeaderMap::new();
                        t.insert("grpc-status", "0".parse().unwrap());
                        t
                    })),
                ]);
                Body::new(StreamBody::new(frames))
            }),
        )
        .route(
            "/sse",
            get(|| async {
                let events = stream::iter(
                    (0..3).map(|i| Ok::<_, Infallible>(AxumEvent::default().data(format!("n{i}")))),
                );
                Sse::new(events)
            }),
        )
}

struct Fixture {
    server: support::Running,
    entered: mpsc::UnboundedReceiver<()>,
    seen: mpsc::UnboundedReceiver<DisconnectReason>,
    dropped: mpsc::UnboundedReceiver<()>,
    polls: Arc<AtomicUsize>,
}

async fn start() -> Fixture {
    let (entered_tx, entered) = mpsc::unbounded_channel();
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let (dropped_tx, dropped) = mpsc::unbounded_channel();
    let polls = Arc::new(AtomicUsize::new(0));
    let app = ragi_tools::tower::service(router(entered_tx, seen_tx, dropped_tx, polls.clone()));
    Fixture {
        server: serve(app).await,
        entered,
        seen,
        dropped,
        polls,
    }
}

async fn exchange(f: &Fixture, request: &str) -> String {
    let mut c = Client::connect(f.server.addr).await;
    c.send(request.as_bytes()).await;
    String::from_utf8_lossy(&c.read_to_end().await).into_owned()
}

#[tokio::test]
async fn an_axum_router_answers_through_ragi() {
    let f = start().await;
    let r = exchange(
        &f,
        "GET /hello HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.to_ascii_lowercase().contains("content-length: 13"), "{r}");
    assert!(r.ends_with("\r\n\r\nHello, World!"), "{r}");

    let body = r#"{"a":[1,2]}"#;
    let r = exchange(
        &f,
        &format!(
            "POST /json HTTP/1.1\r\nhost: t\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(r.ends_with(r#"{"you_sent":{"a":[1,2]}}"#), "{r}");

    let r = exchange(
        &f,
        "GET /whoami?x=%20 HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(
        r.ends_with("127.0.0.1 /whoami?x=%20 HTTP/1.1 root=\"\""),
        "{r}"
    );

    let r = exchange(
        &f,
        "GET /nope HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");

    let r = exchange(
        &f,
        "HEAD /hello HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.to_ascii_lowercase().contains("content-length: 13"), "{r}");
    assert!(r.ends_with("\r\n\r\n"), "HEAD has no body: {r}");
}

#[tokio::test]
async fn request_and_response_bodies_stream_both_ways() {
    let f = start().await;
    let mut c = Client::connect(f.server.addr).await;
    c.send(b"POST /echo HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        .await;
    // The first piece comes back before the client sends the second.
    let at = c.read_until(0, b"first").await;
    c.send(b"6\r\nsecond\r\n").await;
    let at = c.read_until(at, b"second").await;
    c.send(b"0\r\n\r\n").await;
    c.read_until(at, b"0\r\n\r\n").await;
}

#[tokio::test]
async fn an_axum_handler_sees_the_client_leave_through_the_connection_extension() {
    let mut f = start().await;
    let mut c = Client::connect(f.server.addr).await;
    c.send(b"GET /wait HTTP/1.1\r\nhost: t\r\n\r\n").await;
    within("the handler to run", f.entered.recv())
        .await
        .unwrap();
    assert!(
        f.seen.try_recv().is_err(),
        "the handler saw no departure yet"
    );
    drop(c);
    let reason = within("the handler to see the departure", f.seen.recv())
        .await
        .unwrap();
    assert_eq!(reason, DisconnectReason::ClientClosed);
}

#[tokio::test]
async fn a_streaming_body_is_dropped_when_the_client_leaves() {
    let mut f = start().await;
    let mut c = Client::connect(f.server.addr).await;
    c.send(b"GET /endless HTTP/1.1\r\nhost: t\r\n\r\n").await;
    c.read_until(0, b"line 3\n").await;
    drop(c);
    within("the body to be dropped", f.dropped.recv())
        .await
        .unwrap();
    // An endless stream ends only by being dropped; it was polled for each line seen.
    assert!(f.polls.load(Ordering::SeqCst) >= 4);
}

#[tokio::test]
async fn trailers_pass_when_the_client_asks_for_them() {
    let f = start().await;
    let r = exchange(
        &f,
        "GET /trailers HTTP/1.1\r\nhost: t\r\nte: trailers\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let lower = r.to_ascii_lowercase();
    assert!(lower.contains("transfer-encoding: chunked"), "{r}");
    assert!(
        lower.ends_with("4\r\nbody\r\n0\r\ngrpc-status: 0\r\n\r\n"),
        "{r}"
    );
    // Without `te: trailers` the body comes whole and the trailers are dropped.
    let r = exchange(
        &f,
        "GET /trailers HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(!r.contains("grpc-status"), "{r}");
    assert!(r.ends_with("\r\n4\r\nbody\r\n0\r\n\r\n"), "{r}");
}

#[tokio::test]
async fn an_sse_scope_is_served_as_a_streaming_response() {
    let f = start().await;
    let r = exchange(
        &f,
        "GET /sse HTTP/1.1\r\nhost: t\r\naccept: text/event-stream\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{r}"
    );
    for i in 0..3 {
        assert!(r.contains(&format!("data: n{i}\n\n")), "{r}");
    }
}

#[tokio::test]
async fn a_websocket_handshake_is_denied_with_501() {
    let f = start().await;
    let url = format!("ws://{}/hello", f.server.addr);
    match within("connect", tokio_tungstenite::connect_async(url)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 501);
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}
