//! The lifecycle listener, the address filter and per-connection handles
//! (`close_after_current_response`), through a real server on loopback.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ragi::{Connection, DisconnectReason};
use ragi_server::{AddressFilter, Config, Server};
use support::*;

fn server_with(rec: &Recorder) -> Server {
    Server::new(Config::default()).lifecycle(rec.clone())
}

/// accepted then closed, exactly once each per connection, in order; the counters match what the
/// client sent and received; ids increase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_then_closed_once_with_matching_counters() {
    let rec = Recorder::new();
    let srv = TestServer::start(server_with(&rec), hello_app()).await;

    // Connection 1: two keep-alive requests, then the client closes between requests.
    let mut c1 = srv.connect().await;
    c1.get("/a").await;
    let r = c1.read_response().await;
    assert_eq!(r.status, 200);
    assert!(!r.closes());
    c1.send(b"POST /b HTTP/1.1\r\nhost: test\r\ncontent-length: 3\r\n\r\nabc")
        .await;
    let r = c1.read_response().await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    assert!(
        c1.buf.is_empty(),
        "unexpected extra bytes: {}",
        show(&c1.buf)
    );
    let (sent1, received1) = (c1.sent, c1.received);
    let a1 = rec.wait_accepted(0).await;
    drop(c1);
    let closed1 = rec.wait_closed(a1.id.get()).await;

    // Connection 2: one request with `connection: close`; the server closes.
    let mut c2 = srv.connect().await;
    c2.send(b"GET /c HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .await;
    let r = c2.read_response().await;
    assert_eq!(r.status, 200);
    assert!(r.closes(), "connection: close expected: {}", show(&r.raw));
    let (rest, end) = c2.read_to_end(T).await;
    assert!(rest.is_empty(), "bytes after the response: {}", show(&rest));
    assert_eq!(end, End::Eof);
    let (sent2, received2) = (c2.sent, c2.received);
    let a2 = rec.wait_accepted(1).await;
    drop(c2);
    let closed2 = rec.wait_closed(a2.id.get()).await;

    assert!(
        a2.id.get() > a1.id.get(),
        "ids increase: {} then {}",
        a1.id,
        a2.id
    );
    assert_eq!(a1.peer.ip().to_string(), "127.0.0.1");
    assert_eq!(a1.local, srv.addr);

    assert_eq!(closed1.requests, 2);
    assert_eq!(closed1.bytes_in, sent1, "bytes_in of connection 1");
    assert_eq!(closed1.bytes_out, received1, "bytes_out of connection 1");
    assert_eq!(closed2.requests, 1);
    assert_eq!(closed2.bytes_in, sent2, "bytes_in of connection 2");
    assert_eq!(closed2.bytes_out, received2, "bytes_out of connection 2");
    assert_eq!(
        closed2.reason, None,
        "a server close after a `connection: close` exchange is clean"
    );

    // Exactly one accepted and one closed per connection, accepted first.
    let notices = rec.notices();
    for id in [a1.id.get(), a2.id.get()] {
        let mine: Vec<&str> = notices
            .iter()
            .filter_map(|n| match n {
                Notice::Accepted(a) if a.id.get() == id => Some("accepted"),
                Notice::Closed(c) if c.id.get() == id => Some("closed"),
                Notice::Upgraded(u) if u.id.get() == id => Some("upgraded"),
                _ => None,
            })
            .collect();
        assert_eq!(mine, ["accepted", "closed"], "notices of connection {id}");
    }
    srv.stop(T).await;
    assert_eq!(
        rec.notices().len(),
        4,
        "no notice after the end: {:#?}",
        rec.notices()
    );
}

/// The documented meaning of `Closed::reason`: a FIN from the client ends the connection with
/// `client_closed`, between requests too (who closed is worth knowing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_between_requests_is_client_closed() {
    let rec = Recorder::new();
    let srv = TestServer::start(server_with(&rec), hello_app()).await;
    let mut c = srv.connect().await;
    c.get("/").await;
    assert_eq!(c.read_response().await.status, 200);
    let a = rec.wait_accepted(0).await;
    c.shutdown_write().await;
    let (rest, end) = c.read_to_end(T).await;
    assert!(rest.is_empty());
    assert_ne!(end, End::Timeout);
    let closed = rec.wait_closed(a.id.get()).await;
    assert_eq!(closed.requests, 1);
    assert_eq!(
        closed.reason,
        Some(DisconnectReason::ClientClosed),
        "Closed::reason is documented as client_closed when the client's FIN ended it"
    );
    srv.stop(T).await;
}

/// Ids are unique and increase over many concurrent connections; each gets exactly one pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_unique_and_increasing() {
    let rec = Recorder::new();
    let srv = TestServer::start(server_with(&rec), hello_app()).await;
    let mut clients = Vec::new();
    let mut peers = Vec::new();
    for _ in 0..8 {
        let mut c = srv.connect().await;
        peers.push(c.stream.local_addr().unwrap());
        c.get("/").await;
        clients.push(c);
    }
    for c in &mut clients {
        assert_eq!(c.read_response().await.status, 200);
    }
    drop(clients);
    rec.wait_for(T, "8 closed notices", |log| {
        (log.iter()
            .filter(|n| matches!(n, Notice::Closed(_)))
            .count()
            == 8)
            .then_some(())
    })
    .await;
    // Ids follow the accept order (the `accepted` notices of different connections may come
    // in any order: each is given once that connection's protocol is known).
    let accepted = rec.accepted();
    let ids: Vec<u64> = peers
        .iter()
        .map(|p| {
            accepted
                .iter()
                .find(|a| a.peer == *p)
                .unwrap_or_else(|| panic!("no accepted notice for {p}"))
                .id
                .get()
        })
        .collect();
    assert_eq!(accepted.len(), 8);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids increase in accept order: {ids:?}"
    );
    let mut closed: Vec<u64> = rec.closed().iter().map(|c| c.id.get()).collect();
    closed.sort();
    let mut ids = ids;
    ids.sort();
    assert_eq!(closed, ids, "one closed per accepted id");
    srv.stop(T).await;
}

/// A listener returning Err at `accepted` drops the connection without a byte; no `closed`
/// follows; the app is never called; the server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_error_at_accepted_drops_the_connection_silently() {
    let seen = Arc::new(AtomicUsize::new(0));
    let rec = Recorder::new().on_accept({
        let seen = seen.clone();
        move |_| {
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                Err("refused by the test listener".into())
            } else {
                Ok(())
            }
        }
    });
    let calls = Arc::new(Mutex::new(Vec::<String>::new()));
    let app = http_app({
        let calls = calls.clone();
        move |scope, _rx, tx| {
            calls.lock().unwrap().push(scope.path.clone());
            async move { respond(&tx, 200, "hello").await }
        }
    });
    let srv = TestServer::start(server_with(&rec), app).await;

    let mut c1 = srv.connect().await;
    c1.get("/refused").await;
    c1.expect_closed_silently(T, "a connection refused by the listener")
        .await;
    let refused = rec.wait_accepted(0).await;

    // The server goes on: the next connection is served.
    let mut c2 = srv.connect().await;
    c2.get("/ok").await;
    assert_eq!(c2.read_response().await.status, 200);
    let a2 = rec.wait_accepted(1).await;
    drop(c2);
    rec.wait_closed(a2.id.get()).await;

    assert!(
        rec.closed().iter().all(|c| c.id != refused.id),
        "no closed notice for the refused connection: {:#?}",
        rec.notices()
    );
    assert_eq!(*calls.lock().unwrap(), ["/ok"], "the app saw only /ok");
    srv.stop(T).await;
    assert!(
        rec.closed().iter().all(|c| c.id != refused.id),
        "no closed notice for the refused connection, even at shutdown"
    );
}

/// A listener that panics at `closed` does not take the server down: later connections are
/// served, and graceful shutdown still completes promptly (the connection count was released).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_panicking_at_closed_does_not_take_the_server_down() {
    let rec = Recorder::new().panic_at_closed();
    let srv = TestServer::start(server_with(&rec), hello_app()).await;
    for i in 0..3 {
        let mut c = srv.connect().await;
        c.send(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
            .await;
        assert_eq!(c.read_response().await.status, 200, "connection {i}");
        let (_, end) = c.read_to_end(T).await;
        assert_eq!(end, End::Eof);
        let a = rec.wait_accepted(i).await;
        drop(c);
        rec.wait_closed(a.id.get()).await;
    }
    assert!(!srv.is_finished(), "serve() must still be running");
    // Shutdown must not wait for a connection whose close notice panicked.
    let t0 = Instant::now();
    srv.stop(Duration::from_secs(3)).await;
    assert!(t0.elapsed() < Duration::from_secs(3));
}

/// deny("127.0.0.1"): the connection is dropped without a byte, the listener is never told and
/// the app never called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_filter_deny_drops_before_an_id_is_given() {
    let rec = Recorder::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let app = http_app({
        let calls = calls.clone();
        move |_scope, _rx, tx| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { respond(&tx, 200, "hello").await }
        }
    });
    let server = server_with(&rec).address_filter(AddressFilter::new().deny("127.0.0.1").unwrap());
    let srv = TestServer::start(server, app).await;
    for _ in 0..2 {
        let mut c = srv.connect().await;
        c.get("/").await;
        c.expect_closed_silently(T, "a denied connection").await;
    }
    assert!(
        rec.notices().is_empty(),
        "listener told: {:#?}",
        rec.notices()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    srv.stop(T).await;
    assert!(
        rec.notices().is_empty(),
        "listener told: {:#?}",
        rec.notices()
    );
}

/// allow("127.0.0.0/8") lets loopback through (with the listener told as usual).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_filter_allow_network_passes() {
    let rec = Recorder::new();
    let server =
        server_with(&rec).address_filter(AddressFilter::new().allow("127.0.0.0/8").unwrap());
    let srv = TestServer::start(server, hello_app()).await;
    let mut c = srv.connect().await;
    c.get("/").await;
    let r = c.read_response().await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    let a = rec.wait_accepted(0).await;
    drop(c);
    let closed = rec.wait_closed(a.id.get()).await;
    assert_eq!(closed.requests, 1);
    srv.stop(T).await;
}

/// An allow list that does not match refuses, like a deny.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_filter_allow_other_network_refuses() {
    let rec = Recorder::new();
    let server =
        server_with(&rec).address_filter(AddressFilter::new().allow("10.0.0.0/8").unwrap());
    let srv = TestServer::start(server, hello_app()).await;
    let mut c = srv.connect().await;
    c.get("/").await;
    c.expect_closed_silently(T, "a connection outside the allow list")
        .await;
    assert!(rec.notices().is_empty());
    srv.stop(T).await;
}

// ---------------------------------------------------------------------------------------------
// close_after_current_response
// ---------------------------------------------------------------------------------------------

/// On an idle kept-alive connection: closed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_after_current_response_closes_an_idle_connection_at_once() {
    let rec = Recorder::new();
    let srv = TestServer::start(server_with(&rec), hello_app()).await;
    let mut c = srv.connect().await;
    c.get("/").await;
    let r = c.read_response().await;
    assert_eq!(r.status, 200);
    assert!(!r.closes());
    let a = rec.wait_accepted(0).await;
    assert!(!a.handle.is_completed());
    let t0 = Instant::now();
    a.handle
        .close_after_current_response(Duration::from_secs(30));
    c.expect_closed_silently(T, "an idle connection asked to close")
        .await;
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "closed at once, took {:?}",
        t0.elapsed()
    );
    within(T, "completed()", a.handle.completed()).await;
    let closed = rec.wait_closed(a.id.get()).await;
    assert_eq!(closed.requests, 1);
    srv.stop(T).await;
}

/// On a busy connection: the current response completes, carries `connection: close` (its head
/// was not sent yet when the close was asked), then the connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_after_current_response_lets_a_busy_response_finish_with_connection_close() {
    let rec = Recorder::new();
    let (started, started_rx) = Slot::<Connection>::new();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let go = Arc::new(Mutex::new(Some(go_rx)));
    let app = http_app(move |scope, _rx, tx| {
        let started = started.clone();
        let go = go.lock().unwrap().take();
        async move {
            started.fire(scope.connection().clone());
            if let Some(go) = go {
                let _ = tokio::time::timeout(T, go).await;
            }
            respond(&tx, 200, "finished").await
        }
    });
    let srv = TestServer::start(server_with(&rec), app).await;
    let mut c = srv.connect().await;
    c.get("/slow").await;
    let conn = within(T, "the app to start", started_rx).await.unwrap();
    let a = rec.wait_accepted(0).await;
    a.handle
        .close_after_current_response(Duration::from_secs(30));
    // The connection is busy: nothing is closed yet.
    c.expect_silence(ms(100), "a busy connection asked to close")
        .await;
    go_tx.send(()).unwrap();
    let r = c.read_response().await;
    assert_eq!((r.status, r.text().as_str()), (200, "finished"));
    let (rest, end) = c.read_to_end(T).await;
    assert!(rest.is_empty(), "bytes after the response: {}", show(&rest));
    assert_eq!(end, End::Eof, "the connection closes after the response");
    drop(c);
    within(T, "completed()", a.handle.completed()).await;
    assert!(conn.response_complete());
    assert_eq!(conn.disconnect_reason(), None);
    assert!(
        r.closes(),
        "the response must announce connection: close: {}",
        show(&r.raw)
    );
    srv.stop(T).await;
}

/// With a short timeout and an app that never finishes: the request's Connection ends with
/// `server_shutdown` at the deadline and the socket closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_after_current_response_aborts_at_the_timeout() {
    let rec = Recorder::new();
    let (started, started_rx) = Slot::<Connection>::new();
    let (ended, ended_rx) = Slot::<Option<DisconnectReason>>::new();
    let app = http_app(move |scope, _rx, _tx| {
        let (started, ended) = (started.clone(), ended.clone());
        async move {
            let conn = scope.connection().clone();
            started.fire(conn.clone());
            let r = tokio::time::timeout(Duration::from_secs(10), conn.disconnected()).await;
            ended.fire(r.ok());
            Ok(())
        }
    });
    let srv = TestServer::start(server_with(&rec), app).await;
    let mut c = srv.connect().await;
    c.get("/forever").await;
    let conn = within(T, "the app to start", started_rx).await.unwrap();
    let a = rec.wait_accepted(0).await;
    let t0 = Instant::now();
    a.handle.close_after_current_response(ms(200));
    c.expect_closed_silently(T, "a connection past its close deadline")
        .await;
    let took = t0.elapsed();
    assert!(took >= ms(190), "closed before the deadline: {took:?}");
    assert!(took < ms(1500), "closed long after the deadline: {took:?}");
    let reason = within(T, "the app's disconnected()", ended_rx)
        .await
        .unwrap();
    assert_eq!(reason, Some(DisconnectReason::ServerShutdown));
    assert_eq!(
        conn.disconnect_reason(),
        Some(DisconnectReason::ServerShutdown)
    );
    assert!(!conn.is_connected());
    within(T, "completed()", a.handle.completed()).await;
    let closed = rec.wait_closed(a.id.get()).await;
    assert_eq!(closed.reason, Some(DisconnectReason::ServerShutdown));
    srv.stop(T).await;
}
