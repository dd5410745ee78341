//! The ragi side of workload SSE: broadcast fan-out to Server-Sent Events subscribers, served
//! by `ragi-server`. The same routes and design as the `axum-sse` baseline:
//!
//! * `GET /events` with `accept: text/event-stream` (an `sse` scope): subscribe to one
//!   `tokio::sync::broadcast` channel, `SseStart`, an `SseComment` `ready`, then one `SseSend`
//!   per broadcast message (the data only: no `event:` or `id:` field) until the client leaves.
//! * `POST /publish?n=N[&interval_us=U]` (or GET): broadcast N messages back to back (U µs
//!   apart when U > 0). Message i is `"SEQ TS"`: a sequence number counting from 0 over the
//!   server's life and the publish time in nanoseconds since the UNIX epoch, taken just before
//!   the broadcast. Answers `first=SEQ n=N receivers=R`.
//! * `GET /subscribers`: the number of subscribed streams (the channel's receiver count).
//! * `GET /`: `Hello, World!` (the harness's readiness check).
//!
//! Settings are `Config::default()` (as `ragi probe`) with a short shutdown timeout, no
//! lifecycle listener; the runtime is chosen as ragi-cli chooses it (current-thread on one CPU).
//!
//! Usage: ragi-sse [--listen ADDR]   (default 127.0.0.1:8084). Prints
//! `listening on http://ADDR` on stderr once bound.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ragi::{
    AppResult, Headers, ReceiveEvent, Receiver, Scope, ScopeKind, SendEvent, Sender, SseEvent,
    UnsupportedScope,
};
use ragi_server::{Config, Server};
use tokio::sync::broadcast;

/// Slots of the broadcast channel: a burst of up to this many messages reaches a subscriber
/// that has not read any of it yet without loss (`Lagged`).
const CAPACITY: usize = 8192;

struct Hub {
    tx: broadcast::Sender<Arc<str>>,
    seq: AtomicU64,
}

fn query_param(query: Option<&str>, name: &str) -> Option<u64> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

async fn app(hub: Arc<Hub>, scope: Scope, receive: Receiver, send: Sender) -> AppResult {
    match scope.kind {
        ScopeKind::Sse => events(&hub, scope, receive, send).await,
        ScopeKind::Http => http(&hub, scope, receive, send).await,
        ScopeKind::Lifespan => lifespan(receive, send).await,
        other => Err(UnsupportedScope(other).into()),
    }
}

/// One subscriber. A failed send means the client is gone: not an error.
async fn events(hub: &Hub, scope: Scope, mut receive: Receiver, send: Sender) -> AppResult {
    if scope.path != "/events" {
        send.send(SendEvent::HttpResponseStart {
            status: 404,
            headers: Headers::new().with("content-type", "text/plain"),
        })
        .await?;
        send.send(SendEvent::HttpResponseBody {
            body: Bytes::from_static(b"Not Found\n"),
            more: false,
        })
        .await?;
        return Ok(());
    }
    let mut rx = hub.tx.subscribe();
    let start = SendEvent::SseStart {
        status: 200,
        headers: Headers::new(),
    };
    if send.send(start).await.is_err() {
        return Ok(());
    }
    let ready = SendEvent::SseComment {
        comment: "ready".into(),
    };
    if send.send(ready).await.is_err() {
        return Ok(());
    }
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(data) => {
                    let event = SseEvent { data: data.to_string(), ..Default::default() };
                    if send.send(SendEvent::SseSend(event)).await.is_err() {
                        return Ok(());
                    }
                }
                // The load generator sees the gap in the sequence numbers and reports it.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            ev = receive.receive() => {
                if let ReceiveEvent::Disconnect { .. } = ev {
                    return Ok(());
                }
            }
        }
    }
}

async fn http(hub: &Hub, scope: Scope, mut receive: Receiver, send: Sender) -> AppResult {
    loop {
        match receive.receive().await {
            ReceiveEvent::Request { more: true, .. } => {}
            ReceiveEvent::Request { more: false, .. } => break,
            _ => return Ok(()),
        }
    }
    let (status, body) = match scope.path.as_str() {
        "/" => (200, "Hello, World!".to_owned()),
        "/subscribers" => (200, format!("{}\n", hub.tx.receiver_count())),
        "/publish" => {
            let n = query_param(scope.query(), "n").unwrap_or(1);
            let interval =
                Duration::from_micros(query_param(scope.query(), "interval_us").unwrap_or(0));
            let first = publish(hub, n, interval).await;
            (
                200,
                format!(
                    "first={first} n={n} receivers={}\n",
                    hub.tx.receiver_count()
                ),
            )
        }
        _ => (404, "Not Found\n".to_owned()),
    };
    send.send(SendEvent::response_start(
        status,
        Headers::new().with("content-type", "text/plain"),
    ))
    .await?;
    send.send(SendEvent::body(body)).await?;
    Ok(())
}

/// Broadcasts `n` messages `"SEQ TS"`; returns the first SEQ.
async fn publish(hub: &Hub, n: u64, interval: Duration) -> u64 {
    let first = hub.seq.fetch_add(n, Ordering::Relaxed);
    for i in 0..n {
        if i > 0 && !interval.is_zero() {
            tokio::time::sleep(interval).await;
        }
        let data: Arc<str> = format!("{} {}", first + i, now_ns()).into();
        let _ = hub.tx.send(data); // Err only when nobody is subscribed
    }
    first
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
    let addr = bench_common::listen_arg("ragi-sse", "127.0.0.1:8084");
    let rt = bench_common::runtime();
    if let Err(e) = rt.block_on(serve(addr)) {
        eprintln!("ragi-sse: {e}");
        std::process::exit(1);
    }
}

async fn serve(addr: SocketAddr) -> Result<(), ragi_server::Error> {
    let hub = Arc::new(Hub {
        tx: broadcast::channel(CAPACITY).0,
        seq: AtomicU64::new(0),
    });
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
    bound
        .serve(move |scope: Scope, receive: Receiver, send: Sender| {
            app(hub.clone(), scope, receive, send)
        })
        .await
}
