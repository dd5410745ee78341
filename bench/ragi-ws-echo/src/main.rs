//! The ragi side of workload WS: a WebSocket echo app served by `ragi-server`.
//!
//! * `websocket` scope (any path): wait for `WebSocketConnect`, answer `WebSocketAccept`, then
//!   send every `WebSocketReceive(msg)` back as `WebSocketSend(msg)` until
//!   `WebSocketDisconnect`.
//! * `http` scope: `GET /` answers `200 Hello, World!`; a request that carries `upgrade` but
//!   arrived as `http` (a server build without WebSocket support) gets `426`, so the load
//!   generator's check reports "not a WebSocket server" instead of hanging.
//! * `lifespan`: start-up and shut-down complete.
//!
//! Server settings are `Config::default()` (what `ragi probe` runs with) apart from a short
//! shutdown timeout; no lifecycle listener (as `ragi probe --no-lifecycle`). The runtime is
//! chosen as ragi-cli chooses it: current-thread when only one CPU is available (taskset).
//!
//! Usage: ragi-ws-echo [--listen ADDR]   (default 127.0.0.1:8083). Prints
//! `listening on http://ADDR` on stderr once bound.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use ragi::{
    AppResult, Headers, ReceiveEvent, Receiver, Scope, ScopeKind, SendEvent, Sender,
    UnsupportedScope,
};
use ragi_server::{Config, Server};

async fn app(scope: Scope, receive: Receiver, send: Sender) -> AppResult {
    match scope.kind {
        ScopeKind::WebSocket => echo(receive, send).await,
        ScopeKind::Http => http(scope, receive, send).await,
        ScopeKind::Lifespan => lifespan(receive, send).await,
        other => Err(UnsupportedScope(other).into()),
    }
}

/// The echo loop. A failed send means the client is gone: the session is over, not an error.
async fn echo(mut receive: Receiver, send: Sender) -> AppResult {
    match receive.receive().await {
        ReceiveEvent::WebSocketConnect => {}
        _ => return Ok(()),
    }
    let accept = SendEvent::WebSocketAccept {
        subprotocol: None,
        headers: Headers::new(),
    };
    if send.send(accept).await.is_err() {
        return Ok(());
    }
    loop {
        let msg = match receive.receive().await {
            ReceiveEvent::WebSocketReceive(msg) => msg,
            ReceiveEvent::WebSocketDisconnect { .. } | ReceiveEvent::Disconnect { .. } => {
                return Ok(())
            }
            _ => continue,
        };
        if send.send(SendEvent::WebSocketSend(msg)).await.is_err() {
            return Ok(());
        }
    }
}

async fn http(scope: Scope, mut receive: Receiver, send: Sender) -> AppResult {
    // Read the (empty) request body first.
    loop {
        match receive.receive().await {
            ReceiveEvent::Request { more: true, .. } => {}
            ReceiveEvent::Request { more: false, .. } => break,
            _ => return Ok(()),
        }
    }
    let (status, body): (u16, &'static str) = if scope.headers.contains("upgrade") {
        (426, "this ragi-server build does not serve WebSocket\n")
    } else if scope.path == "/" {
        (200, "Hello, World!")
    } else {
        (404, "Not Found\n")
    };
    send.send(SendEvent::response_start(
        status,
        Headers::new().with("content-type", "text/plain"),
    ))
    .await?;
    send.send(SendEvent::body(Bytes::from_static(body.as_bytes())))
        .await?;
    Ok(())
}

async fn lifespan(mut receive: Receiver, send: Sender) -> AppResult {
    loop {
        match receive.receive().await {
            ReceiveEvent::Startup => send.send(SendEvent::StartupComplete).await?,
            ReceiveEvent::Shutdown => {
                send.send(SendEvent::ShutdownComplete).await?;
                return Ok(());
            }
            _ => {}
        }
    }
}

fn main() {
    let addr = bench_common::listen_arg("ragi-ws-echo", "127.0.0.1:8083");
    let rt = bench_common::runtime();
    if let Err(e) = rt.block_on(serve(addr)) {
        eprintln!("ragi-ws-echo: {e}");
        std::process::exit(1);
    }
}

async fn serve(addr: SocketAddr) -> Result<(), ragi_server::Error> {
    let mut cfg = Config::default();
    cfg.shutdown_timeout = Duration::from_secs(1);
    let bound = Server::new(cfg)
        .listen(addr)
        .handle_signals(true)
        .bind()
        .await?
        .on_ready(|addrs| {
            for a in addrs {
                eprintln!("listening on http://{a}");
            }
        });
    bound.serve(app).await
}

#[cfg(test)]
mod tests {
    //! The app against the ragi interface, without a server (ragi-server has no WebSocket
    //! support yet): scripted receive events in, recorded send events out.
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use ragi::{
        BoxFuture, Headers, Message, ReceiveEvent, ReceiveSource, Receiver, Scope, ScopeKind,
        SendError, SendEvent, SendSink, Sender,
    };

    struct Script(VecDeque<ReceiveEvent>);
    impl ReceiveSource for Script {
        fn poll_receive(&mut self, _cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
            match self.0.pop_front() {
                Some(e) => Poll::Ready(e),
                None => Poll::Pending,
            }
        }
    }

    #[derive(Clone, Default)]
    struct Record(Arc<Mutex<Vec<SendEvent>>>);
    impl SendSink for Record {
        fn send(&self, event: SendEvent) -> BoxFuture<'_, Result<(), SendError>> {
            self.0.lock().unwrap().push(event);
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn accepts_and_echoes_until_disconnect() {
        let bin = Message::Binary(Bytes::from_static(&[1, 2, 3]));
        let text = Message::Text("hi".into());
        let receive = Receiver::new(Script(VecDeque::from([
            ReceiveEvent::WebSocketConnect,
            ReceiveEvent::WebSocketReceive(bin.clone()),
            ReceiveEvent::WebSocketReceive(text.clone()),
            ReceiveEvent::WebSocketDisconnect {
                code: 1000,
                reason: String::new(),
            },
        ])));
        let record = Record::default();
        super::app(
            Scope::new(ScopeKind::WebSocket),
            receive,
            Sender::new(record.clone()),
        )
        .await
        .unwrap();
        let sent = record.0.lock().unwrap().clone();
        assert_eq!(
            sent,
            vec![
                SendEvent::WebSocketAccept {
                    subprotocol: None,
                    headers: Headers::new()
                },
                SendEvent::WebSocketSend(bin),
                SendEvent::WebSocketSend(text),
            ]
        );
    }
}
