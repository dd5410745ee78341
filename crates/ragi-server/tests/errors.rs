//! App failures (the error hook, the 500 backstop, aborted responses) and the typed errors
//! `send` returns, through a real server on loopback.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ragi::{Connection, DisconnectReason, Headers, Message, SendEvent};
use ragi_server::lifecycle::ErrorReport;
use ragi_server::{Config, Server};
use support::*;
use tokio::sync::mpsc;

/// A server whose error hook forwards every report on a channel.
fn with_hook(server: Server) -> (Server, mpsc::UnboundedReceiver<ErrorReport>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = server.error_hook(move |r: ErrorReport| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(r);
        }
    });
    (server, rx)
}

/// The app panics before responding: 500 with `connection: close`; the hook is told the request
/// line and the error; the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_panic_before_responding_gives_500_and_the_hook_is_called() {
    let (server, mut reports) = with_hook(Server::new(Config::default()));
    let app = http_app(|scope, _rx, tx| async move {
        if scope.path == "/boom" {
            panic!("kaboom in the app");
        }
        respond(&tx, 200, "fine").await
    });
    let srv = TestServer::start(server, app).await;

    let mut c = srv.connect().await;
    c.get("/boom").await;
    let r = c.read_response().await;
    assert_eq!(r.status, 500, "{}", show(&r.raw));
    assert!(r.closes(), "connection: close expected: {}", show(&r.raw));
    let (rest, end) = c.read_to_end(T).await;
    assert!(rest.is_empty(), "bytes after the 500: {}", show(&rest));
    assert_eq!(end, End::Eof);

    let report = within(T, "the error hook", reports.recv()).await.unwrap();
    assert_eq!(report.request_line, "GET /boom HTTP/1.1");
    assert!(
        report.error.contains("kaboom in the app"),
        "the error names the panic: {:?}",
        report.error
    );
    assert!(!report.aborted, "a 500 answer is not an abort");

    // The server keeps serving.
    let mut c2 = srv.connect().await;
    c2.get("/ok").await;
    let r2 = c2.read_response().await;
    assert_eq!((r2.status, r2.text().as_str()), (200, "fine"));
    assert!(reports.try_recv().is_err(), "no report for a good request");
    drop(c);
    srv.stop(T).await;
}

/// The app returns Ok without responding: 500, and its Connection ends with `server_error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_returning_without_a_response_gives_500_server_error() {
    let (server, mut reports) = with_hook(Server::new(Config::default()));
    let (seen, seen_rx) = Slot::<Connection>::new();
    let app = http_app(move |scope, _rx, _tx| {
        let seen = seen.clone();
        async move {
            seen.fire(scope.connection().clone());
            Ok(())
        }
    });
    let srv = TestServer::start(server, app).await;
    let mut c = srv.connect().await;
    c.get("/nothing").await;
    let r = c.read_response().await;
    assert_eq!(r.status, 500);
    assert!(r.closes());
    let conn = within(T, "the app", seen_rx).await.unwrap();
    assert_eq!(
        conn.disconnect_reason(),
        Some(DisconnectReason::ServerError)
    );
    assert!(!conn.is_connected());
    assert!(!conn.response_complete());
    let report = within(T, "the error hook", reports.recv()).await.unwrap();
    assert_eq!(report.request_line, "GET /nothing HTTP/1.1");
    assert!(!report.aborted);
    drop(c);
    srv.stop(T).await;
}

/// Spec §3: `response_started()` is true once a response start was emitted "by anyone (app,
/// middleware, server backstop)" — the 500 backstop included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backstop_500_marks_the_response_started() {
    let (seen, seen_rx) = Slot::<Connection>::new();
    let app = http_app(move |scope, _rx, _tx| {
        let seen = seen.clone();
        async move {
            seen.fire(scope.connection().clone());
            Ok(())
        }
    });
    let srv = TestServer::start(Server::new(Config::default()), app).await;
    let mut c = srv.connect().await;
    c.get("/nothing").await;
    let r = c.read_response().await;
    assert_eq!(r.status, 500);
    let conn = within(T, "the app", seen_rx).await.unwrap();
    assert!(
        conn.response_started(),
        "the server's 500 is a response start emitted for this request"
    );
    drop(c);
    srv.stop(T).await;
}

/// The app starts a chunked response, sends a piece, then fails: the client sees the head and
/// the piece but no terminating chunk, and the connection closes; the hook says aborted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_failing_after_the_response_started_aborts_it() {
    let (server, mut reports) = with_hook(Server::new(Config::default()));
    let (seen, seen_rx) = Slot::<Connection>::new();
    let app = http_app(move |scope, _rx, tx| {
        let seen = seen.clone();
        async move {
            seen.fire(scope.connection().clone());
            tx.send(SendEvent::response_start(
                200,
                Headers::new().with("content-type", "text/plain"),
            ))
            .await?;
            tx.send(SendEvent::body_chunk("first-piece")).await?;
            Err("the app failed half-way".into())
        }
    });
    let srv = TestServer::start(server, app).await;
    let mut c = srv.connect().await;
    c.get("/half").await;
    let (data, end) = c.read_to_end(T).await;
    let text = String::from_utf8_lossy(&data).into_owned();
    assert_ne!(
        end,
        End::Timeout,
        "the connection must close: {}",
        show(&data)
    );
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n"),
        "the head reached the client: {}",
        show(&data)
    );
    assert!(
        text.to_ascii_lowercase()
            .contains("transfer-encoding: chunked\r\n"),
        "{}",
        show(&data)
    );
    assert!(
        text.contains("\r\n\r\nb\r\nfirst-piece\r\n"),
        "the piece reached the client: {}",
        show(&data)
    );
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "no terminating chunk on an aborted response: {}",
        show(&data)
    );
    let report = within(T, "the error hook", reports.recv()).await.unwrap();
    assert_eq!(report.request_line, "GET /half HTTP/1.1");
    assert!(report.aborted, "the report says aborted");
    assert!(
        report.error.contains("the app failed half-way"),
        "{:?}",
        report.error
    );
    let conn = within(T, "the app", seen_rx).await.unwrap();
    assert!(conn.response_started());
    assert!(!conn.response_complete());
    assert_eq!(
        conn.disconnect_reason(),
        Some(DisconnectReason::ServerError)
    );
    drop(c);
    srv.stop(T).await;
}

/// An async hook: the connection's `completed()` resolves only after the hook finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_waits_for_an_async_error_hook() {
    let rec = Recorder::new();
    let hook_done = Arc::new(AtomicBool::new(false));
    let hook_started = Arc::new(Mutex::new(None::<Instant>));
    let server = Server::new(Config::default())
        .lifecycle(rec.clone())
        .error_hook({
            let (hook_done, hook_started) = (hook_done.clone(), hook_started.clone());
            move |_r: ErrorReport| {
                let (hook_done, hook_started) = (hook_done.clone(), hook_started.clone());
                async move {
                    *hook_started.lock().unwrap() = Some(Instant::now());
                    tokio::time::sleep(ms(300)).await;
                    hook_done.store(true, Ordering::SeqCst);
                }
            }
        });
    let app = http_app(|_scope, _rx, _tx| async move {
        panic!("the app panics");
    });
    let srv = TestServer::start(server, app).await;
    let mut c = srv.connect().await;
    c.get("/boom").await;
    assert_eq!(c.read_response().await.status, 500);
    let (_, end) = c.read_to_end(T).await;
    assert_eq!(end, End::Eof);
    let a = rec.wait_accepted(0).await;
    assert!(
        !hook_done.load(Ordering::SeqCst),
        "the hook sleeps 300 ms; it cannot be done yet"
    );
    assert!(!a.handle.is_completed(), "the hook still runs");
    drop(c);
    within(T, "completed()", a.handle.completed()).await;
    assert!(
        hook_done.load(Ordering::SeqCst),
        "completed() resolved before the error hook finished"
    );
    let started = hook_started.lock().unwrap().expect("the hook ran");
    assert!(started.elapsed() >= ms(290));
    srv.stop(T).await;
}

// ---------------------------------------------------------------------------------------------
// send errors
// ---------------------------------------------------------------------------------------------

/// After the client's FIN, `send` fails with is_disconnected() and reason client_closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_after_client_fin_is_disconnected_client_closed() {
    let (started, started_rx) = Slot::<()>::new();
    let (result, result_rx) = Slot::new();
    let app = http_app(move |scope, _rx, tx| {
        let (started, result) = (started.clone(), result.clone());
        async move {
            let conn = scope.connection().clone();
            started.fire(());
            let seen = tokio::time::timeout(T, conn.disconnected()).await.ok();
            let start = tx
                .send(SendEvent::response_start(200, Headers::new()))
                .await;
            let body = tx.send(SendEvent::body("late")).await;
            result.fire((seen, start, body));
            Ok(())
        }
    });
    let srv = TestServer::start(Server::new(Config::default()), app).await;
    let mut c = srv.connect().await;
    c.get("/wait").await;
    within(T, "the app to start", started_rx).await.unwrap();
    c.shutdown_write().await;
    let (seen, start, body) = within(T, "the app's sends", result_rx).await.unwrap();
    assert_eq!(seen, Some(DisconnectReason::ClientClosed));
    for (what, r) in [("ResponseStart", start), ("ResponseBody", body)] {
        let e = r.expect_err(&format!("{what} after the client left must fail"));
        assert!(e.is_disconnected(), "{what}: {e}");
        assert_eq!(
            e.disconnect_reason(),
            Some(&DisconnectReason::ClientClosed),
            "{what}"
        );
        assert!(!e.is_invalid_event() && !e.is_invalid_header());
    }
    let (data, end) = c.read_to_end(T).await;
    assert!(
        data.is_empty(),
        "nothing reaches the client: {}",
        show(&data)
    );
    assert_ne!(end, End::Timeout);
    drop(c);
    srv.stop(T).await;
}

/// A header value with CR LF is refused with is_invalid_header() and never reaches the wire;
/// the app then sends a valid response, which the client gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_injection_is_refused_and_never_reaches_the_wire() {
    let (result, result_rx) = Slot::new();
    let app = http_app(move |_scope, _rx, tx| {
        let result = result.clone();
        async move {
            let bad_value = tx
                .send(SendEvent::response_start(
                    200,
                    Headers::new().with("x-evil", "a\r\nx-injected: yes"),
                ))
                .await;
            let bad_name = tx
                .send(SendEvent::response_start(
                    200,
                    Headers::new().with("x-evil\r\nx-injected", "yes"),
                ))
                .await;
            let nul = tx
                .send(SendEvent::response_start(
                    200,
                    Headers::new().with("x-evil", "a\0b"),
                ))
                .await;
            result.fire((bad_value, bad_name, nul));
            tx.send(SendEvent::response_start(
                200,
                Headers::new().with("x-good", "yes"),
            ))
            .await?;
            tx.send(SendEvent::body("clean")).await?;
            Ok(())
        }
    });
    let srv = TestServer::start(Server::new(Config::default()), app).await;
    let mut c = srv.connect().await;
    c.get("/").await;
    let r = c.read_response().await;
    let (bad_value, bad_name, nul) = within(T, "the app", result_rx).await.unwrap();
    for (what, res) in [
        ("CRLF in a value", bad_value),
        ("CRLF in a name", bad_name),
        ("NUL", nul),
    ] {
        let e = res.expect_err(what);
        assert!(e.is_invalid_header(), "{what}: {e}");
        assert!(!e.is_disconnected(), "{what}");
    }
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "clean"),
        "{}",
        show(&r.raw)
    );
    assert_eq!(r.header("x-good"), Some("yes"));
    let raw = String::from_utf8_lossy(&r.raw).to_ascii_lowercase();
    assert!(!raw.contains("x-injected"), "{}", show(&r.raw));
    assert!(!raw.contains("x-evil"), "{}", show(&r.raw));
    assert!(c.buf.is_empty(), "extra bytes: {}", show(&c.buf));
    drop(c);
    srv.stop(T).await;
}

/// A WebSocket event in an http scope is refused with is_invalid_event(); the exchange goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_event_in_an_http_scope_is_an_invalid_event() {
    let (result, result_rx) = Slot::new();
    let app = http_app(move |_scope, _rx, tx| {
        let result = result.clone();
        async move {
            let before = tx
                .send(SendEvent::WebSocketSend(Message::Text("hi".into())))
                .await;
            tx.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            let during = tx
                .send(SendEvent::WebSocketSend(Message::Text("hi".into())))
                .await;
            result.fire((before, during));
            tx.send(SendEvent::body("ok")).await?;
            Ok(())
        }
    });
    let srv = TestServer::start(Server::new(Config::default()), app).await;
    let mut c = srv.connect().await;
    c.get("/").await;
    let r = c.read_response().await;
    let (before, during) = within(T, "the app", result_rx).await.unwrap();
    for (what, res) in [("before the start", before), ("after the start", during)] {
        let e = res.expect_err(what);
        assert!(e.is_invalid_event(), "{what}: {e}");
        assert!(!e.is_disconnected() && !e.is_invalid_header(), "{what}");
    }
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    drop(c);
    srv.stop(T).await;
}
