//! WebSocket and SSE helpers over real sockets, served by `ragi-server`: what a client sees and
//! what the handler observed.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ragi_tools::sse::{self, Event};
use ragi_tools::{ws, Context, Error, SseContext, WsContext};
use support::{serve, within, Client};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::{self, protocol::frame::coding::CloseCode, Message as WsMsg};

/// An SSE handler that sends one event, waits for the test's go, sends more, then ticks until
/// the client leaves; it reports how it ended.
fn gated_stream(
    gate: Arc<Notify>,
    ended: mpsc::UnboundedSender<Result<(), Error>>,
) -> impl ragi::App {
    sse::handler(move |cx: SseContext| {
        let (gate, ended) = (gate.clone(), ended.clone());
        async move {
            let first = format!("one (after {:?})", cx.last_event_id());
            cx.send(Event::new(first).id(1)).await?;
            gate.notified().await;
            cx.send(Event::new("two\nlines").event("update")).await?;
            cx.comment("hi").await?;
            let r = cx
                .every(Duration::from_millis(20), |i| async move {
                    Ok(Some(Event::new(format!("tick {i}"))))
                })
                .await;
            let report = match &r {
                Ok(()) => Ok(()),
                Err(e) => Err(Error::disconnected(
                    e.disconnect_reason().cloned().expect("a departure"),
                )),
            };
            let _ = ended.send(report);
            r
        }
    })
}

async fn sse_session(accept: Option<&str>) {
    let gate = Arc::new(Notify::new());
    let (tx, mut ended) = mpsc::unbounded_channel();
    let server = serve(gated_stream(gate.clone(), tx)).await;
    let mut c = Client::connect(server.addr).await;
    let accept = accept
        .map(|a| format!("accept: {a}\r\n"))
        .unwrap_or_default();
    c.send(
        format!("GET /events HTTP/1.1\r\nhost: t\r\n{accept}last-event-id: 41\r\n\r\n").as_bytes(),
    )
    .await;
    // The first event arrives while the handler waits: nothing holds it back.
    let at = c
        .read_until(0, b"data: one (after Some(\"41\"))\nid: 1\n\n")
        .await;
    let head = c.text();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-type: text/event-stream"), "{head}");
    assert!(lower.contains("cache-control: no-cache"), "{head}");
    gate.notify_one();
    let at = c
        .read_until(at, b"event: update\ndata: two\ndata: lines\n\n")
        .await;
    let at = c.read_until(at, b": hi\n\n").await;
    c.read_until(at, b"data: tick 2\n\n").await;
    // The client leaves: the handler's periodic sender ends with the reason.
    drop(c);
    let r = within("the handler's end", ended.recv()).await.unwrap();
    let e = r.expect_err("the client left");
    assert!(e.is_disconnected());
    assert!(
        e.disconnect_reason().unwrap().is_client_side(),
        "{:?}",
        e.disconnect_reason()
    );
    drop(server);
}

#[tokio::test]
async fn an_sse_handler_frames_events_itself_for_a_plain_get() {
    // `curl -N http://host/events`: no `Accept: text/event-stream`, so an `http` scope.
    sse_session(None).await;
}

#[tokio::test]
async fn an_sse_handler_on_an_sse_scope_streams_the_same_events() {
    sse_session(Some("text/event-stream")).await;
}

#[tokio::test]
async fn an_sse_handler_declines_with_any_status_on_both_scope_kinds() {
    let app = sse::handler(|cx: SseContext| async move {
        if cx.header("authorization").is_none() {
            return cx.decline((401, "log in first")).await;
        }
        cx.send("hello").await
    });
    let server = serve(app).await;
    for accept in ["", "accept: text/event-stream\r\n"] {
        let mut c = Client::connect(server.addr).await;
        c.send(
            format!("GET /e HTTP/1.1\r\nhost: t\r\nconnection: close\r\n{accept}\r\n").as_bytes(),
        )
        .await;
        let all = String::from_utf8_lossy(&c.read_to_end().await).into_owned();
        assert!(all.starts_with("HTTP/1.1 401"), "{accept:?}: {all}");
        assert!(all.ends_with("log in first"), "{all}");
    }
}

/// Echoes text and binary; reports the close code and reason it saw.
fn echo(ended: mpsc::UnboundedSender<ws::CloseInfo>) -> impl ragi::App {
    ws::handler(move |mut cx: WsContext| {
        let ended = ended.clone();
        async move {
            let proto = cx.subprotocols().first().cloned();
            match proto {
                Some(p) => cx.accept_subprotocol(&p).await?,
                None => cx.accept().await?,
            }
            while let Some(m) = cx.receive().await {
                cx.send(m).await?;
            }
            let _ = ended.send(cx.close_info().unwrap());
            Ok(())
        }
    })
}

#[tokio::test]
async fn a_websocket_echo_over_a_socket() {
    let (tx, mut ended) = mpsc::unbounded_channel();
    let server = serve(echo(tx)).await;
    let url = format!("ws://{}/ws", server.addr);
    let mut req = tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "chat, other".parse().unwrap());
    let (mut client, response) = within("connect", tokio_tungstenite::connect_async(req))
        .await
        .unwrap();
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "chat"
    );
    client.send(WsMsg::text("hello")).await.unwrap();
    assert_eq!(
        within("echo", client.next()).await.unwrap().unwrap(),
        WsMsg::text("hello")
    );
    client
        .send(WsMsg::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        within("echo", client.next()).await.unwrap().unwrap(),
        WsMsg::binary(vec![0u8, 1, 2, 255])
    );
    client
        .close(Some(tungstenite::protocol::CloseFrame {
            code: CloseCode::Library(4001),
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    let end = within("the handler's end", ended.recv()).await.unwrap();
    assert_eq!(end.code, 4001);
    assert_eq!(end.reason, "bye");
}

#[tokio::test]
async fn a_websocket_denial_reaches_the_client_as_an_http_response() {
    let app = ws::handler(|mut cx: WsContext| async move {
        cx.deny(
            ragi_tools::Response::text("no entry")
                .with_status(401)
                .header("www-authenticate", "Bearer"),
        )
        .await
    });
    let server = serve(app).await;
    let url = format!("ws://{}/ws", server.addr);
    match within("connect", tokio_tungstenite::connect_async(url)).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            assert_eq!(
                response.headers().get("www-authenticate").unwrap(),
                "Bearer"
            );
            assert_eq!(response.body().as_deref(), Some(&b"no entry"[..]));
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn a_plain_get_to_a_websocket_handler_is_426() {
    let server = serve(ws::handler(
        |mut cx: WsContext| async move { cx.accept().await },
    ))
    .await;
    let mut c = Client::connect(server.addr).await;
    c.send(b"GET /ws HTTP/1.1\r\nhost: t\r\nconnection: close\r\naccept: text/plain\r\n\r\n")
        .await;
    let all = String::from_utf8_lossy(&c.read_to_end().await).into_owned();
    assert!(all.starts_with("HTTP/1.1 426"), "{all}");
    assert!(
        all.to_ascii_lowercase().contains("upgrade: websocket"),
        "{all}"
    );
}
