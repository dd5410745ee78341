//! Graceful shutdown through `ShutdownHandle::shutdown()`, on a real server on loopback.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ragi::{Connection, DisconnectReason};
use ragi_server::{Config, Server};
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A new connection is refused (or, if the kernel still completed the handshake, closed without
/// a byte and without being served).
async fn assert_not_served(addr: SocketAddr, what: &str) {
    match within(T, "connect", TcpStream::connect(addr)).await {
        Err(e) => assert!(is_refusal(&e), "{what}: unexpected connect error {e}"),
        Ok(mut s) => {
            let _ = s.write_all(b"GET /late HTTP/1.1\r\nhost: t\r\n\r\n").await;
            let mut c = Client::from_stream(s);
            c.expect_closed_silently(T, what).await;
        }
    }
}

/// An idle kept-alive connection is closed at once; serve() returns Ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_an_idle_keepalive_connection_at_once() {
    let rec = Recorder::new();
    let server = Server::new(Config::default()).lifecycle(rec.clone());
    let mut srv = TestServer::start(server, hello_app()).await;
    let mut c = srv.connect().await;
    c.get("/").await;
    let r = c.read_response().await;
    assert_eq!(r.status, 200);
    assert!(!r.closes());
    let a = rec.wait_accepted(0).await;
    let t0 = Instant::now();
    srv.shutdown.shutdown();
    c.expect_closed_silently(T, "an idle connection at shutdown")
        .await;
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "closed at once, took {:?}",
        t0.elapsed()
    );
    srv.join(T).await.expect("serve() returns Ok");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "serve() took {:?}",
        t0.elapsed()
    );
    let closed = rec.wait_closed(a.id.get()).await;
    assert_eq!(closed.requests, 1);
}

/// An in-flight request (the app sleeps 300 ms) completes with `connection: close`; new
/// connections are refused meanwhile; serve() returns Ok once the connection is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_in_flight_request_finish_with_connection_close() {
    let (started, started_rx) = Slot::<Connection>::new();
    let app = http_app(move |scope, _rx, tx| {
        let started = started.clone();
        async move {
            started.fire(scope.connection().clone());
            tokio::time::sleep(ms(300)).await;
            respond(&tx, 200, "finished").await
        }
    });
    let mut srv = TestServer::start(Server::new(Config::default()), app).await;
    let mut c = srv.connect().await;
    c.get("/slow").await;
    let conn = within(T, "the app to start", started_rx).await.unwrap();
    srv.shutdown.shutdown();
    let r = c.read_response().await;
    assert_eq!((r.status, r.text().as_str()), (200, "finished"));
    assert!(r.closes(), "connection: close expected: {}", show(&r.raw));
    let (rest, end) = c.read_to_end(T).await;
    assert!(rest.is_empty(), "{}", show(&rest));
    assert_eq!(end, End::Eof);
    assert!(conn.response_complete());
    assert_eq!(conn.disconnect_reason(), None);

    // The first connection is still open on the client's side, so the server is still
    // draining: a new connection must not be served.
    assert!(!srv.is_finished());
    assert_not_served(srv.addr, "a connection after shutdown started").await;

    drop(c);
    srv.join(T).await.expect("serve() returns Ok");
    assert_not_served(srv.addr, "a connection after serve() returned").await;
}

/// With shutdown_timeout = 300 ms and an app that never responds: the request's Connection ends
/// with server_shutdown at the deadline and serve() returns soon after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_deadline_aborts_a_request_that_never_finishes() {
    let rec = Recorder::new();
    let mut cfg = Config::default();
    cfg.shutdown_timeout = ms(300);
    let (started, started_rx) = Slot::<Connection>::new();
    let (ended, ended_rx) = Slot::<(Option<DisconnectReason>, Instant)>::new();
    let app = http_app(move |scope, _rx, _tx| {
        let (started, ended) = (started.clone(), ended.clone());
        async move {
            let conn = scope.connection().clone();
            started.fire(conn.clone());
            let r = tokio::time::timeout(Duration::from_secs(10), conn.disconnected()).await;
            ended.fire((r.ok(), Instant::now()));
            Ok(())
        }
    });
    let mut srv = TestServer::start(Server::new(cfg).lifecycle(rec.clone()), app).await;
    let mut c = srv.connect().await;
    c.get("/forever").await;
    let conn = within(T, "the app to start", started_rx).await.unwrap();
    let a = rec.wait_accepted(0).await;
    let t0 = Instant::now();
    srv.shutdown.shutdown();
    srv.join(T).await.expect("serve() returns Ok");
    let took = t0.elapsed();
    assert!(
        took >= ms(290),
        "serve() returned before the deadline: {took:?}"
    );
    assert!(
        took < ms(1300),
        "serve() must return within ~1 s after the deadline, took {took:?}"
    );
    let (reason, at) = within(T, "the app", ended_rx).await.unwrap();
    assert_eq!(reason, Some(DisconnectReason::ServerShutdown));
    assert!(
        at.duration_since(t0) >= ms(290),
        "aborted before the deadline"
    );
    assert_eq!(
        conn.disconnect_reason(),
        Some(DisconnectReason::ServerShutdown)
    );
    c.expect_closed_silently(T, "an aborted request").await;
    let closed = rec.wait_closed(a.id.get()).await;
    assert_eq!(closed.reason, Some(DisconnectReason::ServerShutdown));
}

/// A server with no connections stops at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_without_connections_returns_at_once() {
    let mut srv = TestServer::start(Server::new(Config::default()), hello_app()).await;
    let mut c = srv.connect().await;
    c.send(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        .await;
    assert_eq!(c.read_response().await.status, 200);
    drop(c);
    let t0 = Instant::now();
    srv.shutdown.shutdown();
    srv.shutdown.shutdown(); // idempotent
    srv.join(T).await.expect("serve() returns Ok");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
}
