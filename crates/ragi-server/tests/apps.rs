//! Whole apps against a real server on loopback: lifespan, the server-state object, and
//! backpressure on a client that does not read.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ragi::{
    AppResult, BoxFuture, Connection, DisconnectReason, Headers, ReceiveEvent, Receiver, Scope,
    ScopeKind, SendError, SendEvent, Sender, State, UnsupportedScope,
};
use ragi_server::{Config, Server};
use support::*;

type Log = Arc<Mutex<Vec<String>>>;

fn log(l: &Log, s: impl Into<String>) {
    l.lock().unwrap().push(s.into());
}

struct Db(&'static str);

// ---------------------------------------------------------------------------------------------
// Lifespan
// ---------------------------------------------------------------------------------------------

/// StartupComplete with a value in scope.state: every http scope sees it (even a request that
/// arrived during start-up); Shutdown is delivered at shutdown and ShutdownComplete honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifespan_state_reaches_every_http_scope_and_shutdown_is_delivered() {
    let events: Log = Log::default();
    let app = {
        let events = events.clone();
        move |scope: Scope, mut rx: Receiver, tx: Sender| -> BoxFuture<'static, AppResult> {
            let events = events.clone();
            Box::pin(async move {
                match scope.kind {
                    ScopeKind::Lifespan => {
                        let first = tokio::time::timeout(T, rx.receive()).await?;
                        log(&events, format!("lifespan got {first:?}"));
                        // Create the condition: start-up takes a moment.
                        tokio::time::sleep(ms(200)).await;
                        scope.state.insert(Db("pool-1"));
                        tx.send(SendEvent::StartupComplete).await?;
                        log(&events, "startup complete sent");
                        let next =
                            tokio::time::timeout(Duration::from_secs(30), rx.receive()).await?;
                        log(&events, format!("lifespan got {next:?}"));
                        tx.send(SendEvent::ShutdownComplete).await?;
                        log(&events, "shutdown complete sent");
                        // Stay alive: only ShutdownComplete (not our return) may end the wait.
                        tokio::time::sleep(Duration::from_secs(20)).await;
                        Ok(())
                    }
                    ScopeKind::Http => {
                        let db = scope.state.get::<Db>().map_or("none", |d| d.0);
                        log(&events, format!("http {} sees {db}", scope.path));
                        tx.send(SendEvent::response_start(200, Headers::new()))
                            .await?;
                        tx.send(SendEvent::body(db)).await?;
                        Ok(())
                    }
                    k => Err(UnsupportedScope(k).into()),
                }
            })
        }
    };
    let mut cfg = Config::default();
    cfg.shutdown_timeout = Duration::from_secs(10);
    let mut srv = TestServer::start(Server::new(cfg), app).await;
    // Sent while the lifespan app is still starting up.
    let mut early = srv.connect().await;
    early.get("/early").await;
    let r = within(T, "the early response", early.read_response()).await;
    assert_eq!((r.status, r.text().as_str()), (200, "pool-1"));
    for path in ["/a", "/b"] {
        let mut c = srv.connect().await;
        c.get(path).await;
        let r = c.read_response().await;
        assert_eq!((r.status, r.text().as_str()), (200, "pool-1"), "{path}");
    }
    early.get("/again").await;
    assert_eq!(early.read_response().await.text(), "pool-1");
    drop(early);
    assert_eq!(
        events.lock().unwrap()[..2],
        ["lifespan got Startup", "startup complete sent"]
    );
    assert!(
        !events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("Shutdown")),
        "Shutdown before the server shut down: {:#?}",
        events.lock().unwrap()
    );
    let t0 = Instant::now();
    srv.shutdown.shutdown();
    srv.join(T).await.expect("serve() returns Ok");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "ShutdownComplete must end the wait (shutdown_timeout is 10 s), took {:?}",
        t0.elapsed()
    );
    let ev = events.lock().unwrap().clone();
    let http: Vec<&String> = ev.iter().filter(|e| e.starts_with("http")).collect();
    assert_eq!(http.len(), 4, "{ev:#?}");
    assert!(http.iter().all(|e| e.ends_with("sees pool-1")), "{ev:#?}");
    let tail: Vec<&str> = ev.iter().rev().take(2).rev().map(|s| s.as_str()).collect();
    assert_eq!(
        tail,
        ["lifespan got Shutdown", "shutdown complete sent"],
        "{ev:#?}"
    );
}

/// StartupFailed: serve() returns Err with is_startup_failed() and the message; nothing is
/// served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifespan_startup_failed_makes_serve_fail() {
    let http_calls = Arc::new(AtomicU64::new(0));
    let app = {
        let http_calls = http_calls.clone();
        move |scope: Scope, mut rx: Receiver, tx: Sender| -> BoxFuture<'static, AppResult> {
            let http_calls = http_calls.clone();
            Box::pin(async move {
                match scope.kind {
                    ScopeKind::Lifespan => {
                        let _ = tokio::time::timeout(T, rx.receive()).await?;
                        tx.send(SendEvent::StartupFailed {
                            message: "database unreachable".into(),
                        })
                        .await?;
                        Ok(())
                    }
                    _ => {
                        http_calls.fetch_add(1, Ordering::SeqCst);
                        respond(&tx, 200, "served").await
                    }
                }
            })
        }
    };
    let mut srv = TestServer::start(Server::new(Config::default()), app).await;
    let err = srv.join(T).await.expect_err("serve() must fail");
    assert!(err.is_startup_failed(), "{err}");
    assert_eq!(err.startup_message(), Some("database unreachable"));
    assert!(!err.is_bind() && !err.is_config());
    assert!(err.to_string().contains("database unreachable"), "{err}");
    // The listening socket is gone with the server.
    match tokio::time::timeout(T, tokio::net::TcpStream::connect(srv.addr)).await {
        Ok(Err(e)) => assert!(is_refusal(&e), "{e}"),
        Ok(Ok(s)) => {
            let mut c = Client::from_stream(s);
            c.expect_closed_silently(T, "a connection after start-up failed")
                .await;
        }
        Err(_) => panic!("connect timed out"),
    }
    assert_eq!(http_calls.load(Ordering::SeqCst), 0);
}

/// An app that declines lifespan (Err(UnsupportedScope)) is served anyway; so is one that
/// returns Ok without answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_without_lifespan_support_is_still_served() {
    for decline in [true, false] {
        let kinds: Log = Log::default();
        let app = {
            let kinds = kinds.clone();
            move |scope: Scope, _rx: Receiver, tx: Sender| -> BoxFuture<'static, AppResult> {
                let kinds = kinds.clone();
                Box::pin(async move {
                    log(&kinds, scope.kind.as_str());
                    match scope.kind {
                        ScopeKind::Http => respond(&tx, 200, "served").await,
                        k if decline => Err(UnsupportedScope(k).into()),
                        _ => Ok(()),
                    }
                })
            }
        };
        let srv = TestServer::start(Server::new(Config::default()), app).await;
        let mut c = srv.connect().await;
        c.get("/").await;
        let r = c.read_response().await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "served"),
            "decline={decline}"
        );
        drop(c);
        srv.stop(T).await;
        assert_eq!(
            *kinds.lock().unwrap(),
            ["lifespan", "http"],
            "decline={decline}"
        );
    }
}

/// BoundServer::server_state() is the very object every scope carries as
/// extensions.server_state (lifespan included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_state_is_one_object_shared_by_every_scope() {
    struct Marker(u32);
    let seen: Arc<Mutex<Vec<(ScopeKind, Option<State>)>>> = Arc::default();
    let app = {
        let seen = seen.clone();
        move |scope: Scope, mut rx: Receiver, tx: Sender| -> BoxFuture<'static, AppResult> {
            let seen = seen.clone();
            Box::pin(async move {
                seen.lock()
                    .unwrap()
                    .push((scope.kind, scope.extensions.server_state.clone()));
                match scope.kind {
                    ScopeKind::Lifespan => {
                        let _ = tokio::time::timeout(T, rx.receive()).await?;
                        tx.send(SendEvent::StartupComplete).await?;
                        let _ = tokio::time::timeout(Duration::from_secs(30), rx.receive()).await;
                        tx.send(SendEvent::ShutdownComplete).await?;
                        Ok(())
                    }
                    _ => {
                        let st = scope.extensions.server_state.clone().expect("server_state");
                        let n = st.get::<Marker>().map_or(0, |m| m.0);
                        st.insert(Marker(n + 1));
                        tx.send(SendEvent::response_start(200, Headers::new()))
                            .await?;
                        tx.send(SendEvent::body(n.to_string())).await?;
                        Ok(())
                    }
                }
            })
        }
    };
    let bound = TestServer::bind(Server::new(Config::default())).await;
    let state = bound.server_state().clone();
    state.insert(Marker(100));
    let srv = TestServer::serve(bound, app);
    assert!(srv.server_state.ptr_eq(&state));
    let mut bodies = Vec::new();
    let mut c1 = srv.connect().await;
    for _ in 0..2 {
        c1.get("/").await;
        bodies.push(c1.read_response().await.text());
    }
    let mut c2 = srv.connect().await;
    c2.get("/").await;
    bodies.push(c2.read_response().await.text());
    drop((c1, c2));
    srv.stop(T).await;
    assert_eq!(
        bodies,
        ["100", "101", "102"],
        "one object, shared across connections"
    );
    assert_eq!(state.get::<Marker>().map(|m| m.0), Some(103));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4, "one lifespan scope and three http scopes");
    assert_eq!(seen[0].0, ScopeKind::Lifespan);
    for (kind, st) in seen.iter() {
        let st = st
            .as_ref()
            .unwrap_or_else(|| panic!("{kind:?} scope without server_state"));
        assert!(
            st.ptr_eq(&state),
            "{kind:?} scope has another server_state object"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Backpressure
// ---------------------------------------------------------------------------------------------

const CHUNK: usize = 64 * 1024;
/// The app stops after this many chunks (256 MiB) if `send` never blocks.
const MAX_CHUNKS: u64 = 4096;

struct Streamer {
    sent: Arc<AtomicU64>,
    done: Slot<(Connection, Result<(), SendError>, Instant)>,
}

/// An app that streams 64 KiB chunks until `send` fails, counting completed sends.
fn streaming_app(s: Streamer) -> impl ragi::App {
    let Streamer { sent, done } = s;
    http_app(move |scope, _rx, tx| {
        let (sent, done) = (sent.clone(), done.clone());
        async move {
            let conn = scope.connection().clone();
            let chunk = Bytes::from(vec![b'z'; CHUNK]);
            let r = async {
                tx.send(SendEvent::response_start(200, Headers::new()))
                    .await?;
                for _ in 0..MAX_CHUNKS {
                    tx.send(SendEvent::body_chunk(chunk.clone())).await?;
                    sent.fetch_add(1, Ordering::SeqCst);
                }
                Ok(())
            }
            .await;
            done.fire((conn, r, Instant::now()));
            Ok(())
        }
    })
}

/// Waits (bounded) until the count of completed sends stays the same over a 500 ms window;
/// returns it.
async fn wait_stalled(sent: &AtomicU64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = sent.load(Ordering::SeqCst);
        // A measurement window, not synchronisation: does the count still grow?
        tokio::time::sleep(ms(500)).await;
        let after = sent.load(Ordering::SeqCst);
        if after == before && after > 0 {
            return after;
        }
        assert!(
            Instant::now() < deadline && after < MAX_CHUNKS,
            "send never blocked: {after} chunks of 64 KiB went out to a client that reads nothing"
        );
    }
}

/// A client that does not read: `send` blocks (the count stops growing, bounded), and resumes
/// when the client reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_blocks_on_a_client_that_does_not_read() {
    let sent = Arc::new(AtomicU64::new(0));
    let (done, done_rx) = Slot::new();
    let app = streaming_app(Streamer {
        sent: sent.clone(),
        done,
    });
    let srv = TestServer::start(Server::new(Config::default()), app).await;
    let mut c = srv.connect().await;
    c.get("/stream").await;
    let stalled = wait_stalled(&sent).await;
    let bytes = stalled * CHUNK as u64;
    eprintln!("send stalled after {stalled} chunks ({bytes} bytes)");
    assert!(
        bytes < 8 * 1024 * 1024,
        "send must block once the buffers are full; {bytes} bytes were accepted"
    );
    // Reading lets it go on.
    let mut read = 0u64;
    while read < 2 * bytes + 1024 * 1024 {
        match c.read_once(T).await {
            Ok(0) => panic!("EOF while streaming"),
            Ok(n) => read += n as u64,
            Err(e) => panic!("{e:?} while streaming"),
        }
        c.buf.clear();
    }
    assert!(
        sent.load(Ordering::SeqCst) > stalled,
        "send resumed once the client read"
    );
    // The client leaves: the app's send fails with a disconnect.
    drop(c);
    let (conn, r, _) = within(T, "the app to stop", done_rx).await.unwrap();
    let e = r.expect_err("send after the client left");
    assert!(e.is_disconnected(), "{e}");
    assert!(conn.disconnect_reason().is_some());
    srv.stop(T).await;
}

/// With write_timeout = 300 ms, a client that takes nothing ends the request with
/// write_timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_timeout_ends_a_request_whose_client_does_not_read() {
    let rec = Recorder::new();
    let mut cfg = Config::default();
    cfg.write_timeout = Some(ms(300));
    let sent = Arc::new(AtomicU64::new(0));
    let (done, done_rx) = Slot::new();
    let app = streaming_app(Streamer {
        sent: sent.clone(),
        done,
    });
    let srv = TestServer::start(Server::new(cfg).lifecycle(rec.clone()), app).await;
    let mut c = srv.connect().await;
    c.get("/stream").await;
    let t0 = Instant::now();
    let (conn, r, at) = within(T, "the write timeout", done_rx).await.unwrap();
    let e = r.expect_err("send must fail once the write timeout passed");
    assert!(e.is_disconnected(), "{e}");
    assert_eq!(e.disconnect_reason(), Some(&DisconnectReason::WriteTimeout));
    assert_eq!(
        conn.disconnect_reason(),
        Some(DisconnectReason::WriteTimeout)
    );
    assert!(at.duration_since(t0) >= ms(290), "ended before the timeout");
    assert!(
        sent.load(Ordering::SeqCst) < MAX_CHUNKS,
        "send never blocked"
    );
    let a = rec.wait_accepted(0).await;
    let closed = rec.wait_closed(a.id.get()).await;
    assert_eq!(closed.reason, Some(DisconnectReason::WriteTimeout));
    assert_eq!(closed.requests, 1);
    // The socket was closed: after what was in flight, the client sees the end.
    let (_, end) = c.read_to_end(T).await;
    assert_ne!(end, End::Timeout);
    srv.stop(T).await;
}

/// The request body reaches the app in order through receive (sanity check for the helpers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_app_round_trip() {
    let app = http_app(|_scope, mut rx, tx| async move {
        let mut body = Vec::new();
        loop {
            match tokio::time::timeout(T, rx.receive()).await? {
                ReceiveEvent::Request { body: b, more } => {
                    body.extend_from_slice(&b);
                    if !more {
                        break;
                    }
                }
                other => return Err(format!("unexpected {other:?}").into()),
            }
        }
        tx.send(SendEvent::response_start(200, Headers::new()))
            .await?;
        tx.send(SendEvent::body_chunk(Bytes::from(body))).await?;
        tx.send(SendEvent::body("!")).await?;
        Ok(())
    });
    let srv = TestServer::start(Server::new(Config::default()), app).await;
    let mut c = srv.connect().await;
    c.send(b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!((r.status, r.text().as_str()), (200, "abcde!"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    drop(c);
    srv.stop(T).await;
}
