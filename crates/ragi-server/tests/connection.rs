//! The per-request Connection object and the request body (100-continue, the body limit), seen
//! through a real server on loopback.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use ragi::{Connection, DisconnectReason, Headers, ReceiveEvent, SendEvent};
use ragi_server::{Config, Server};
use support::*;
use tokio::sync::mpsc;

/// What an app observed, in order.
type Log = Arc<Mutex<Vec<String>>>;

fn log(l: &Log, s: impl Into<String>) {
    l.lock().unwrap().push(s.into());
}

/// A normal response: on_complete fires (once), on_disconnect never; the flags follow the
/// response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_complete_fires_for_a_normal_response_and_flags_follow() {
    let events: Log = Log::default();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<&'static str>();
    let (seen, seen_rx) = Slot::<Connection>::new();
    let app = http_app({
        let events = events.clone();
        move |scope, _rx, tx| {
            let (events, done_tx, seen) = (events.clone(), done_tx.clone(), seen.clone());
            async move {
                let conn = scope.connection().clone();
                seen.fire(conn.clone());
                let d = done_tx.clone();
                conn.on_complete(move || {
                    let _ = d.send("complete");
                });
                let d = done_tx.clone();
                conn.on_disconnect(move |_| {
                    let _ = d.send("disconnect");
                });
                log(
                    &events,
                    format!(
                        "initial started={} complete={}",
                        conn.response_started(),
                        conn.response_complete()
                    ),
                );
                tx.send(SendEvent::response_start(200, Headers::new()))
                    .await?;
                log(
                    &events,
                    format!(
                        "after start started={} complete={}",
                        conn.response_started(),
                        conn.response_complete()
                    ),
                );
                tx.send(SendEvent::body_chunk("part one, ")).await?;
                log(
                    &events,
                    format!(
                        "after chunk started={} complete={}",
                        conn.response_started(),
                        conn.response_complete()
                    ),
                );
                tx.send(SendEvent::body("part two")).await?;
                Ok(())
            }
        }
    });
    let srv = TestServer::start(Server::new(Config::default()), app).await;
    let mut c = srv.connect().await;
    c.get("/").await;
    let r = c.read_response().await;
    assert_eq!((r.status, r.text().as_str()), (200, "part one, part two"));
    assert_eq!(
        within(T, "a callback", done_rx.recv()).await,
        Some("complete")
    );
    let conn = within(T, "the app", seen_rx).await.unwrap();
    assert!(conn.response_started());
    assert!(conn.response_complete());
    assert!(conn.is_completed());
    assert!(
        conn.is_connected(),
        "a clean completion keeps is_connected() true"
    );
    assert_eq!(conn.disconnect_reason(), None);
    assert_eq!(
        *events.lock().unwrap(),
        [
            "initial started=false complete=false",
            "after start started=true complete=false",
            "after chunk started=true complete=false",
        ]
    );
    // The client leaves afterwards: that does not end this (completed) request again.
    drop(c);
    srv.stop(T).await;
    assert!(done_rx.try_recv().is_err(), "no second callback");
    assert_eq!(conn.disconnect_reason(), None);
    // A late registration after completion runs at once.
    let (late_tx, late_rx) = std::sync::mpsc::channel();
    conn.on_complete(move || late_tx.send(()).unwrap());
    assert!(late_rx.try_recv().is_ok());
}

/// The client closes while the app awaits `disconnected()`: it resolves with client_closed,
/// on_disconnect fires (not on_complete), in the documented order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_disconnect_fires_with_client_closed_while_the_app_awaits_disconnected() {
    let events: Log = Log::default();
    let (started, started_rx) = Slot::<Connection>::new();
    let (ended, ended_rx) = Slot::<Option<DisconnectReason>>::new();
    let app = http_app({
        let events = events.clone();
        move |scope, mut rx, _tx| {
            let (events, started, ended) = (events.clone(), started.clone(), ended.clone());
            async move {
                let conn = scope.connection().clone();
                for i in 0..2 {
                    let (e, c) = (events.clone(), conn.clone());
                    conn.on_disconnect(move |r| {
                        log(
                            &e,
                            format!("on_disconnect {i} {r} connected={}", c.is_connected()),
                        );
                    });
                }
                let e = events.clone();
                conn.on_complete(move || log(&e, "on_complete"));
                // The request has no body: take its one empty piece first.
                let first = rx.receive().await;
                log(&events, format!("{first:?}"));
                started.fire(conn.clone());
                let r = tokio::time::timeout(T, conn.disconnected()).await.ok();
                if let Some(r) = &r {
                    log(
                        &events,
                        format!("disconnected() {r} connected={}", conn.is_connected()),
                    );
                }
                let next = tokio::time::timeout(T, rx.receive()).await;
                log(&events, format!("receive {next:?}"));
                ended.fire(r);
                Ok(())
            }
        }
    });
    let srv = TestServer::start(Server::new(Config::default()), app).await;
    let mut c = srv.connect().await;
    c.get("/watch").await;
    let conn = within(T, "the app to start", started_rx).await.unwrap();
    assert!(conn.is_connected());
    assert_eq!(conn.disconnect_reason(), None);
    c.shutdown_write().await;
    let r = within(T, "the app", ended_rx).await.unwrap();
    assert_eq!(r, Some(DisconnectReason::ClientClosed));
    assert_eq!(
        conn.disconnect_reason(),
        Some(DisconnectReason::ClientClosed)
    );
    assert!(!conn.is_connected());
    assert!(!conn.response_started());
    assert!(!conn.response_complete());
    let ev = events.lock().unwrap().clone();
    assert_eq!(ev[0], "Request { body: b\"\", more: false }");
    // Callbacks in registration order, with is_connected() already false; nothing completes.
    let cbs: Vec<&String> = ev.iter().filter(|e| e.starts_with("on_")).collect();
    assert_eq!(
        cbs,
        [
            "on_disconnect 0 client_closed connected=false",
            "on_disconnect 1 client_closed connected=false"
        ]
    );
    assert!(
        ev.contains(&"disconnected() client_closed connected=false".to_owned()),
        "{ev:#?}"
    );
    assert_eq!(
        ev.last().unwrap(),
        "receive Ok(Disconnect { reason: ClientClosed })",
        "{ev:#?}"
    );
    let (data, end) = c.read_to_end(T).await;
    assert!(data.is_empty(), "{}", show(&data));
    assert_ne!(end, End::Timeout);
    srv.stop(T).await;
}

/// The body first (all of it, `more: false` last), then — after the client leaves — a
/// `Disconnect` event; `on_disconnect` has run by the time it arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_event_arrives_on_receive_after_the_body() {
    let events: Log = Log::default();
    let (body_read, body_read_rx) = Slot::<Connection>::new();
    let (ended, ended_rx) = Slot::<()>::new();
    let app = http_app({
        let events = events.clone();
        move |scope, mut rx, _tx| {
            let (events, body_read, ended) = (events.clone(), body_read.clone(), ended.clone());
            async move {
                let conn = scope.connection().clone();
                let e = events.clone();
                conn.on_disconnect(move |r| log(&e, format!("on_disconnect {r}")));
                let mut body = Vec::new();
                loop {
                    match tokio::time::timeout(T, rx.receive()).await {
                        Ok(ReceiveEvent::Request { body: b, more }) => {
                            body.extend_from_slice(&b);
                            if !more {
                                break;
                            }
                        }
                        other => {
                            log(&events, format!("unexpected {other:?}"));
                            break;
                        }
                    }
                }
                log(&events, format!("body {}", String::from_utf8_lossy(&body)));
                body_read.fire(conn.clone());
                for _ in 0..2 {
                    let next = tokio::time::timeout(T, rx.receive()).await;
                    log(&events, format!("receive {next:?}"));
                }
                ended.fire(());
                Ok(())
            }
        }
    });
    let srv = TestServer::start(Server::new(Config::default()), app).await;
    let mut c = srv.connect().await;
    c.send(b"POST /upload HTTP/1.1\r\nhost: t\r\ncontent-length: 11\r\n\r\nhello world")
        .await;
    let conn = within(T, "the app to read the body", body_read_rx)
        .await
        .unwrap();
    assert!(conn.is_connected());
    c.shutdown_write().await;
    within(T, "the app", ended_rx).await.unwrap();
    assert_eq!(
        *events.lock().unwrap(),
        [
            "body hello world",
            "on_disconnect client_closed",
            "receive Ok(Disconnect { reason: ClientClosed })",
            "receive Ok(Disconnect { reason: ClientClosed })",
        ],
        "the Disconnect event follows the body and repeats"
    );
    srv.stop(T).await;
}

// ---------------------------------------------------------------------------------------------
// The request body
// ---------------------------------------------------------------------------------------------

/// `Expect: 100-continue`: `100 Continue` is sent only once the app calls receive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_sent_when_the_app_first_reads() {
    let (asked, asked_rx) = Slot::<Instant>::new();
    let (got, got_rx) = Slot::<String>::new();
    let app = http_app(move |_scope, mut rx, tx| {
        let (asked, got) = (asked.clone(), got.clone());
        async move {
            // Create the condition: the app takes its time before reading.
            tokio::time::sleep(ms(200)).await;
            asked.fire(Instant::now());
            let mut body = Vec::new();
            loop {
                match tokio::time::timeout(T, rx.receive()).await {
                    Ok(ReceiveEvent::Request { body: b, more }) => {
                        body.extend_from_slice(&b);
                        if !more {
                            break;
                        }
                    }
                    other => return Err(format!("unexpected {other:?}").into()),
                }
            }
            let body = String::from_utf8_lossy(&body).into_owned();
            got.fire(body.clone());
            tx.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            tx.send(SendEvent::body(format!("got {body}"))).await?;
            Ok(())
        }
    });
    let srv = TestServer::start(Server::new(Config::default()), app).await;
    let mut c = srv.connect().await;
    c.send(b"POST /up HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n")
        .await;
    // Nothing before the app reads (it sleeps 200 ms first).
    c.expect_silence(ms(120), "before the app reads").await;
    let cont = c.read_response().await;
    let got_at = Instant::now();
    assert_eq!(cont.status, 100, "{}", show(&cont.raw));
    assert_eq!(cont.raw, b"HTTP/1.1 100 Continue\r\n\r\n");
    let asked_at = within(T, "the app to read", asked_rx).await.unwrap();
    assert!(
        got_at >= asked_at,
        "100 Continue arrived before the app called receive"
    );
    c.send(b"hello").await;
    let r = c.read_response().await;
    assert_eq!((r.status, r.text().as_str()), (200, "got hello"));
    assert_eq!(within(T, "the app", got_rx).await.unwrap(), "hello");
    srv.stop(T).await;
}

/// A chunked body crossing max_body_size: 413, and the app's Connection ends with
/// body_too_large (its receive yields the Disconnect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_the_limit_gives_413_body_too_large() {
    let mut cfg = Config::default();
    cfg.max_body_size = 1000;
    let (outcome, outcome_rx) = Slot::<(Connection, u64, String)>::new();
    let app = http_app(move |scope, mut rx, tx| {
        let outcome = outcome.clone();
        async move {
            let conn = scope.connection().clone();
            let mut n = 0u64;
            let last = loop {
                match tokio::time::timeout(T, rx.receive()).await {
                    Ok(ReceiveEvent::Request { body, more }) => {
                        n += body.len() as u64;
                        if !more {
                            break "the whole body".to_owned();
                        }
                    }
                    other => break format!("{other:?}"),
                }
            };
            outcome.fire((conn, n, last));
            tx.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            tx.send(SendEvent::body("accepted")).await?;
            Ok(())
        }
    });
    let srv = TestServer::start(Server::new(cfg), app).await;
    let mut c = srv.connect().await;
    let piece = Bytes::from(vec![b'x'; 600]);
    let mut req = b"POST /up HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    req.extend_from_slice(b"258\r\n");
    req.extend_from_slice(&piece);
    req.extend_from_slice(b"\r\n");
    c.send(&req).await;
    let mut more = b"258\r\n".to_vec();
    more.extend_from_slice(&piece);
    more.extend_from_slice(b"\r\n0\r\n\r\n");
    c.send(&more).await;
    let r = c.read_response().await;
    assert_eq!(r.status, 413, "{}", show(&r.raw));
    assert!(r.closes());
    let (rest, end) = c.read_to_end(T).await;
    assert!(rest.is_empty(), "{}", show(&rest));
    assert_eq!(end, End::Eof);
    let (conn, n, last) = within(T, "the app", outcome_rx).await.unwrap();
    assert!(n <= 1000, "the app got {n} bytes, more than the limit");
    assert_eq!(last, "Ok(Disconnect { reason: BodyTooLarge })");
    assert_eq!(
        conn.disconnect_reason(),
        Some(DisconnectReason::BodyTooLarge)
    );
    assert!(!conn.response_complete());
    drop(c);
    srv.stop(T).await;
}

/// A declared Content-Length over the limit: 413 and the app is never called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_length_over_the_limit_gives_413_without_calling_the_app() {
    let mut cfg = Config::default();
    cfg.max_body_size = 1000;
    let calls = Arc::new(Mutex::new(0));
    let app = http_app({
        let calls = calls.clone();
        move |_scope, _rx, tx| {
            *calls.lock().unwrap() += 1;
            async move { respond(&tx, 200, "called").await }
        }
    });
    let srv = TestServer::start(Server::new(cfg), app).await;
    let mut c = srv.connect().await;
    c.send(b"POST /up HTTP/1.1\r\nhost: t\r\ncontent-length: 1001\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status, 413);
    assert!(r.closes());
    assert_eq!(*calls.lock().unwrap(), 0);
    drop(c);
    srv.stop(T).await;
}

/// The server recycles a finished request's state for the next request of the connection
/// (when the app kept no handle of it): every request still gets a connection object that is
/// new and open, callbacks of earlier requests never fire again, and a handle an app kept
/// keeps showing its own request's end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_of_a_connection_gets_a_fresh_connection_object() {
    let events: Log = Log::default();
    let kept: Arc<Mutex<Vec<Connection>>> = Arc::default();
    let app = http_app({
        let (events, kept) = (events.clone(), kept.clone());
        move |scope, _rx, tx| {
            let (events, kept) = (events.clone(), kept.clone());
            async move {
                let n = scope.path.trim_start_matches('/').to_owned();
                let conn = scope.connection().clone();
                log(
                    &events,
                    format!(
                        "{n} fresh={}",
                        conn.is_connected()
                            && conn.disconnect_reason().is_none()
                            && !conn.is_completed()
                            && !conn.response_started()
                            && !conn.response_complete()
                    ),
                );
                let e = events.clone();
                let m = n.clone();
                conn.on_complete(move || log(&e, format!("{m} complete")));
                let e = events.clone();
                let m = n.clone();
                conn.on_disconnect(move |r| log(&e, format!("{m} disconnect {r}")));
                if let Some(t) = &scope.extensions.transport {
                    let e = events.clone();
                    let m = n.clone();
                    t.on_high_water(move || log(&e, format!("{m} high water")));
                    assert_eq!(t.buffered_amount(), 0);
                }
                if n == "keep" {
                    kept.lock().unwrap().push(conn);
                }
                respond(&tx, 200, "ok").await
            }
        }
    });
    let srv = TestServer::start(Server::new(Config::default()), app).await;
    let mut c = srv.connect().await;
    for path in ["/1", "/2", "/keep", "/3"] {
        c.get(path).await;
        assert_eq!(c.read_response().await.status, 200);
    }
    // Pipelined: several exchanges wait for one write, then all are recycled at once.
    let batch: Vec<u8> = (4..12)
        .flat_map(|i| format!("GET /{i} HTTP/1.1\r\nhost: x\r\n\r\n").into_bytes())
        .collect();
    c.send(&batch).await;
    for _ in 4..12 {
        assert_eq!(c.read_response().await.status, 200);
    }
    c.get("/12").await;
    assert_eq!(c.read_response().await.status, 200);
    drop(c);
    srv.stop(T).await;

    let events = events.lock().unwrap().clone();
    let names: Vec<String> = ["1", "2", "keep", "3"]
        .into_iter()
        .map(String::from)
        .chain((4..13).map(|i| i.to_string()))
        .collect();
    for n in &names {
        let mine: Vec<&str> = events
            .iter()
            .filter(|e| e.split(' ').next() == Some(n.as_str()))
            .map(|e| e.as_str())
            .collect();
        assert_eq!(
            mine,
            [format!("{n} fresh=true"), format!("{n} complete")],
            "{events:?}"
        );
    }
    let kept = kept.lock().unwrap();
    assert!(kept[0].is_completed() && kept[0].response_complete());
    assert_eq!(kept[0].disconnect_reason(), None);
}

/// Recycling under threads: apps answer either inline or from a task spawned on the other
/// worker thread, where `send`, `receive`, the connection object and the `transport`
/// extension are dropped. The driver reuses an exchange and its connection object only once
/// the last of those handles is gone, from whichever thread: every response carries its own
/// request's body, in order, every request's `on_complete` fires exactly once, and a `send`
/// kept past its request fails without touching the next request of the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recycling_is_right_when_handles_die_on_other_threads() {
    const CONNS: usize = 8;
    const BATCHES: usize = 20;
    const DEPTH: usize = 8;
    const SERIAL: usize = 10;
    let completed: Arc<Mutex<Vec<String>>> = Arc::default();
    type Kept = (Option<ragi::Sender>, Connection);
    let kept: Arc<Mutex<std::collections::HashMap<(usize, usize), Kept>>> = Arc::default();
    let wrong: Log = Log::default();
    let app = http_app({
        let (completed, kept, wrong) = (completed.clone(), kept.clone(), wrong.clone());
        move |scope, rx, tx| {
            let (completed, kept, wrong) = (completed.clone(), kept.clone(), wrong.clone());
            async move {
                let path = scope.path.clone();
                let parts: Vec<usize> = path[1..].split('-').map(|n| n.parse().unwrap()).collect();
                let (client, batch) = (parts[0], parts[1]);
                // One request at a time (batch 1000 on): each keeps its connection object, and
                // every other one its `send` too; the next request on the connection looks at
                // them first. That exchange is over and written; were it or its connection
                // object recycled while a kept handle lives, the next request would get it: the
                // kept `send` would answer for it, the kept object would be its own.
                let serial = batch >= 1000;
                if serial && batch > 1000 {
                    let stale = kept.lock().unwrap().remove(&(client, batch - 1));
                    let (stale, stale_conn) = stale.expect("kept by the request before");
                    if stale_conn.ptr_eq(scope.connection()) || !stale_conn.is_completed() {
                        log(
                            &wrong,
                            format!("{path}: a kept connection object was reused"),
                        );
                    }
                    if let Some(stale) = stale {
                        let start = SendEvent::response_start(299, Headers::new());
                        if stale.send(start).await.is_ok() {
                            log(&wrong, format!("{path}: a kept send was accepted"));
                        }
                        let body = SendEvent::body(Bytes::from_static(b"stale"));
                        if stale.send(body).await.is_ok() {
                            log(&wrong, format!("{path}: a kept body was accepted"));
                        }
                    }
                }
                if serial {
                    let tx = (batch % 2 == 0).then(|| tx.clone());
                    let conn = scope.connection().clone();
                    kept.lock().unwrap().insert((client, batch), (tx, conn));
                }
                let conn = scope.connection().clone();
                let p = path.clone();
                conn.on_complete(move || completed.lock().unwrap().push(p));
                let body = Bytes::from(format!("answer to {path}"));
                let answer = async move {
                    // Everything the request owns travels with the answer and dies with it.
                    let (_rx, _conn, _transport) = (rx, conn, scope.extensions.transport);
                    tx.send(SendEvent::response_start(200, Headers::new()))
                        .await?;
                    tx.send(SendEvent::body(body)).await
                };
                if path.ends_with('0') || path.ends_with('5') {
                    // Hands everything to another task (often on the other thread) and waits
                    // for it there; an app that returned first would get a 500.
                    tokio::spawn(answer).await.expect("the answer task")?;
                    Ok(())
                } else {
                    answer.await.map_err(Into::into)
                }
            }
        }
    });
    let srv = TestServer::start(Server::new(Config::default()), app).await;
    let mut clients = Vec::new();
    for c in 0..CONNS {
        let mut client = srv.connect().await;
        clients.push(tokio::spawn(async move {
            for b in 0..BATCHES {
                let paths: Vec<String> = (0..DEPTH).map(|i| format!("/{c}-{b}-{i}")).collect();
                let batch: Vec<u8> = paths
                    .iter()
                    .flat_map(|p| format!("GET {p} HTTP/1.1\r\nhost: x\r\n\r\n").into_bytes())
                    .collect();
                client.send(&batch).await;
                for p in &paths {
                    let r = client.read_response().await;
                    assert_eq!(r.status, 200);
                    assert_eq!(
                        String::from_utf8_lossy(&r.body),
                        format!("answer to {p}"),
                        "responses out of order or crossed"
                    );
                }
            }
            for b in 1000..1000 + SERIAL {
                let p = format!("/{c}-{b}-1");
                client.get(&p).await;
                let r = client.read_response().await;
                assert_eq!(r.status, 200, "{p}");
                assert_eq!(String::from_utf8_lossy(&r.body), format!("answer to {p}"));
            }
        }));
    }
    for c in clients {
        within(T * 4, "the clients", c).await.unwrap();
    }
    // Once the server has stopped, every response was written and its callbacks ran.
    srv.stop(T).await;
    let want = CONNS * (BATCHES * DEPTH + SERIAL);
    let mut seen = completed.lock().unwrap().clone();
    assert_eq!(seen.len(), want, "an on_complete fired twice or never");
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        want,
        "an on_complete fired for the wrong request"
    );
    assert!(
        wrong.lock().unwrap().is_empty(),
        "{:?}",
        wrong.lock().unwrap()
    );
}
