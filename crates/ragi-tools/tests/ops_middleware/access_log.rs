//! The access log: the line's fields in each format, written when the exchange ends — at once
//! when the client leaves, with the reason, while the app still runs — a line per WebSocket and
//! SSE session, and a slow writer that never holds a request up.

use std::io::Write;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ragi::{DisconnectReason, Headers, Message, Receiver, Scope, SendEvent, Sender};
use ragi_tools::middleware::access_log::{AccessLog, Capture, Format, LineWriter};
use ragi_tools::middleware::request_id::SetRequestId;
use ragi_tools::middleware::timeout::Timeout;
use ragi_tools::prelude::*;
use ragi_tools::test::{Disconnect, TestClient, WsConnect};
use ragi_tools::{sse, SseContext};

use super::support::{captured, hello, one_json, ws_echo};

#[tokio::test]
async fn a_combined_line() {
    let (log, capture) = captured(Format::Combined);
    let app = Stack::new()
        .enable(log)
        .enable(SetRequestId::new().generator(|| "rid-1".into()))
        .run(hello());
    let c = TestClient::new(app);
    let res = c
        .get("/a%20b")
        .query("x", "1")
        .header("referer", "http://ref/\"q\"")
        .header("user-agent", "tester/1.0")
        .send()
        .await;
    assert_eq!(res.status(), 200);
    let lines = capture.lines();
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    let re = regex::Regex::new(
        r#"^127\.0\.0\.1 - - \[\d\d/\w\w\w/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET /a%20b\?x=1 HTTP/1\.1" 200 5 "http://ref/\\"q\\"" "tester/1\.0" rid=rid-1 dur=\d+\.\d{3}ms started=true reason=-$"#,
    )
    .unwrap();
    assert!(re.is_match(line), "{line}");
}

#[tokio::test]
async fn a_clf_line_has_no_referer() {
    let (log, capture) = captured(Format::Clf);
    TestClient::new(hello().layer(log))
        .post("/p")
        .body("abc")
        .send()
        .await;
    let line = &capture.lines()[0];
    assert!(
        line.contains("\"POST /p HTTP/1.1\" 200 5 rid=- dur="),
        "{line}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_json_line_with_an_exact_duration() {
    async fn slow(_cx: HttpContext) -> &'static str {
        tokio::time::sleep(Duration::from_millis(250)).await;
        "done"
    }
    let (log, capture) = captured(Format::Json);
    let app = Router::new().get("/users/{id}", slow).layer(log);
    let res = TestClient::new(app).get("/users/7").send().await;
    assert_eq!(res.status(), 200);
    let v = one_json(&capture);
    assert_eq!(v["method"], "GET");
    assert_eq!(v["target"], "/users/7");
    assert_eq!(v["kind"], "http");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes"], 4);
    assert_eq!(v["duration_ms"], 250.0);
    assert_eq!(v["route"], "/users/{id}");
    assert_eq!(v["client"], "127.0.0.1");
    assert_eq!(v["response_started"], true);
    assert!(v["disconnect_reason"].is_null());
    assert!(v["request_id"].is_null());
}

/// Streams a chunk, then waits for ever without looking at the connection (a badly behaved
/// app): the log must not wait for it.
fn stubborn(release: Arc<tokio::sync::Notify>) -> impl ragi::App {
    move |_s: Scope, _rx: Receiver, send: Sender| {
        let release = release.clone();
        async move {
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            send.send(SendEvent::body_chunk("0123456789")).await?;
            release.notified().await;
            Ok(())
        }
    }
}

#[tokio::test]
async fn a_client_that_leaves_is_logged_at_once_with_the_reason() {
    let release = Arc::new(tokio::sync::Notify::new());
    let (log, capture) = captured(Format::Json);
    let c = TestClient::new(stubborn(release.clone()).layer(log));
    let mut stream = c.get("/report").stream().await;
    assert_eq!(stream.next_chunk().await.unwrap().unwrap(), "0123456789");
    assert!(capture.is_empty(), "no line while the response runs");
    stream.disconnect(DisconnectReason::ClientClosed);
    // Written by the departure itself, while the app still waits.
    let v = one_json(&capture);
    assert_eq!(v["disconnect_reason"], "client_closed");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes"], 10);
    assert_eq!(v["response_started"], true);
    release.notify_one();
}

#[tokio::test]
async fn a_client_that_leaves_before_the_head_gets_499_in_clf() {
    let release = Arc::new(tokio::sync::Notify::new());
    let waits = {
        let release = release.clone();
        move |_s: Scope, _rx: Receiver, _send: Sender| {
            let release = release.clone();
            async move {
                release.notified().await;
                Ok(())
            }
        }
    };
    let (log, capture) = captured(Format::Combined);
    let c = TestClient::new(waits.layer(log));
    let req = c.get("/slow");
    let leave = req.disconnect_handle();
    let pending = tokio::spawn(req.send());
    leave.disconnect(DisconnectReason::ReadError);
    let res = pending.await.unwrap();
    assert_eq!(res.client_left(), Some(DisconnectReason::ReadError));
    let line = &capture.lines()[0];
    assert!(line.contains("\"GET /slow HTTP/1.1\" 499 0 "), "{line}");
    assert!(line.ends_with("started=false reason=read_error"), "{line}");
    release.notify_one();
}

#[tokio::test]
async fn an_app_without_a_response_is_logged_with_the_backstop() {
    let (log, capture) = captured(Format::Json);
    let silent = |_s: Scope, _rx: Receiver, _send: Sender| async move { Ok(()) };
    let res = TestClient::new(silent.layer(log)).get("/").send().await;
    assert_eq!(res.status(), 500);
    let v = one_json(&capture);
    assert_eq!(v["status"], 500);
    assert_eq!(v["disconnect_reason"], "server_error");
}

#[tokio::test]
async fn head_requests_count_no_body_bytes() {
    let (log, capture) = captured(Format::Json);
    TestClient::new(hello().layer(log)).head("/").send().await;
    assert_eq!(one_json(&capture)["bytes"], 0);
}

#[tokio::test]
async fn a_websocket_session_gets_one_line_at_its_end() {
    let (log, capture) = captured(Format::Json);
    let c = TestClient::new(ws_echo().layer(log));
    let WsConnect::Accepted(mut ws) = c.websocket("/chat").connect().await else {
        panic!("accepted")
    };
    ws.send_text("hi").await.unwrap();
    assert_eq!(ws.receive_text().await.unwrap(), "hi");
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    ws.receive().await.unwrap();
    assert!(capture.is_empty(), "no line while the session is open");
    ws.close(4000, "bye").await;
    ws.wait_app().await;
    let v = one_json(&capture);
    assert_eq!(v["kind"], "websocket");
    assert_eq!(v["status"], 101);
    assert_eq!(v["bytes"], 5);
    assert_eq!(v["bytes_in"], 5);
    assert_eq!(v["websocket"]["messages_in"], 2);
    assert_eq!(v["websocket"]["messages_out"], 2);
    assert_eq!(v["websocket"]["close_code"], 4000);
    assert_eq!(v["disconnect_reason"], "client_closed");

    // Combined: the WebSocket fields at the end.
    let (log, capture) = captured(Format::Combined);
    let c = TestClient::new(ws_echo().layer(log));
    let mut ws = c.websocket("/chat").connect().await.accepted();
    ws.send_text("x").await.unwrap();
    ws.receive_text().await.unwrap();
    drop(ws);
    let lines = tokio::time::timeout(Duration::from_secs(5), capture.wait_lines(1))
        .await
        .expect("the session's line");
    let line = &lines[0];
    assert!(line.contains("\"GET /chat HTTP/1.1\" 101 1 "), "{line}");
    assert!(line.ends_with("msgs_in=1 msgs_out=1 close=1006"), "{line}");
}

#[tokio::test]
async fn a_refused_websocket_is_logged_with_its_status() {
    let (log, capture) = captured(Format::Json);
    let refuse = |_s: Scope, mut rx: Receiver, send: Sender| async move {
        let _ = rx.receive().await;
        send.send(SendEvent::WebSocketClose {
            code: 1000,
            reason: String::new(),
        })
        .await?;
        Ok(())
    };
    let c = TestClient::new(refuse.layer(log));
    assert_eq!(c.websocket("/ws").connect().await.status(), 403);
    assert_eq!(one_json(&capture)["status"], 403);
}

#[tokio::test]
async fn an_sse_session_gets_one_line_at_its_end() {
    async fn two(cx: SseContext) -> Result<(), Error> {
        cx.send("a").await?;
        cx.send("bc").await?;
        cx.close().await
    }
    let (log, capture) = captured(Format::Json);
    let c = TestClient::new(sse::handler(two).layer(log));
    let mut s = c.sse("/events").connect().await.stream();
    assert_eq!(s.next_event().await.unwrap().data, "a");
    assert_eq!(s.next_event().await.unwrap().data, "bc");
    assert!(s.next_event().await.is_err(), "ended");
    let v = one_json(&capture);
    assert_eq!(v["kind"], "sse");
    assert_eq!(v["status"], 200);
    // "data: a\n\n" + "data: bc\n\n"
    assert_eq!(v["bytes"], 19);
    assert!(v["disconnect_reason"].is_null());
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_response_says_so() {
    async fn slow(_cx: HttpContext) -> &'static str {
        tokio::time::sleep(Duration::from_secs(60)).await;
        "late"
    }
    let (log, capture) = captured(Format::Json);
    let app = Stack::new()
        .enable(log)
        .enable(Timeout::new(Duration::from_secs(1)))
        .run(handler(slow));
    let res = TestClient::new(app).get("/").send().await;
    assert_eq!(res.status(), 503);
    let v = one_json(&capture);
    assert_eq!(v["timed_out"], true);
    assert_eq!(v["status"], 503);
    assert_eq!(v["duration_ms"], 1000.0);
}

#[tokio::test]
async fn skipped_scopes_and_lifespan_are_not_logged() {
    let (log, capture) = captured(Format::Json);
    let app = hello().layer(log.skip_if(|s| s.path == "/healthz"));
    let c = TestClient::new(app);
    c.get("/healthz").send().await;
    assert!(capture.is_empty());
    c.get("/").send().await;
    assert_eq!(capture.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_mid_body_departure_is_logged_with_the_bytes_read() {
    let (log, capture) = captured(Format::Json);
    let reader = |_s: Scope, mut rx: Receiver, _send: Sender| async move {
        loop {
            match rx.receive().await {
                ragi::ReceiveEvent::Request { more: true, .. } => {}
                _ => return Ok(()),
            }
        }
    };
    let c = TestClient::new(reader.layer(log));
    let res = c
        .post("/upload")
        .chunks_with_delay([vec![7u8; 40], vec![7u8; 60]], Duration::from_secs(1))
        .disconnect(
            Disconnect::After(Duration::from_millis(500)),
            DisconnectReason::ClientTimeout,
        )
        .send()
        .await;
    assert_eq!(res.client_left(), Some(DisconnectReason::ClientTimeout));
    let v = one_json(&capture);
    assert_eq!(v["disconnect_reason"], "client_timeout");
    assert_eq!(v["bytes_in"], 40);
    assert!(v["status"].is_null());
    assert_eq!(v["duration_ms"], 500.0);
}

/// A writer that blocks every write until released.
struct Gate {
    open: Arc<Mutex<bool>>,
    wake: std_mpsc::Receiver<()>,
    out: Capture,
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        while !*self.open.lock().unwrap() {
            // Bounded: the test opens the gate within a few seconds or fails.
            if self.wake.recv_timeout(Duration::from_secs(20)).is_err() {
                break;
            }
        }
        self.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_slow_writer_never_holds_a_request_up() {
    let open = Arc::new(Mutex::new(false));
    let (wake_tx, wake) = std_mpsc::channel();
    let out = Capture::new();
    let gate = Gate {
        open: open.clone(),
        wake,
        out: out.clone(),
    };
    let log = AccessLog::new()
        .format(Format::Clf)
        .line_writer(LineWriter::new(gate).queue(2));
    let c = TestClient::new(hello().layer(log.clone()));
    // The writer thread blocks on its first batch (none to three lines, as its start and
    // wake-ups fall); the queue holds two more; the rest are dropped, and every request is
    // answered at once all the same (a 2 s bound on each).
    for _ in 0..10 {
        let res = tokio::time::timeout(Duration::from_secs(2), c.get("/").send())
            .await
            .expect("answered while the writer is stuck");
        assert_eq!(res.status(), 200);
    }
    let dropped = log.dropped();
    assert!((5..=8).contains(&dropped), "dropped {dropped}");
    *open.lock().unwrap() = true;
    wake_tx.send(()).unwrap();
    let written = 10 - dropped as usize;
    assert!(
        out.wait_for(written, Duration::from_secs(5)),
        "the queued lines are written once the writer moves: {:?}",
        out.lines()
    );
    assert_eq!(out.len(), written);
}
