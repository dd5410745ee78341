//! Bare axum baseline for workload SSE: broadcast fan-out to Server-Sent Events subscribers,
//! with `axum::response::sse` and one `tokio::sync::broadcast` channel. The same routes and
//! design as `ragi-sse`:
//!
//! * `GET /events`: subscribe, then an `Sse` stream of a `: ready` comment followed by one
//!   event per broadcast message (the data only: no `event:` or `id:` field; no keep-alive).
//! * `POST /publish?n=N[&interval_us=U]` (or GET): broadcast N messages back to back (U µs
//!   apart when U > 0). Message i is `"SEQ TS"`: a sequence number counting from 0 over the
//!   server's life and the publish time in nanoseconds since the UNIX epoch, taken just before
//!   the broadcast. Answers `first=SEQ n=N receivers=R`.
//! * `GET /subscribers`: the number of subscribed streams (the channel's receiver count).
//! * `GET /`: `Hello, World!` (the harness's readiness check).
//!
//! Served with `axum::serve` (hyper-util, HTTP/1.1 only here), TCP_NODELAY on every accepted
//! socket. The runtime is chosen as ragi-cli chooses it: current-thread on one CPU.
//!
//! Usage: axum-sse [--listen ADDR]   (default 127.0.0.1:8085). Prints
//! `listening on http://ADDR` on stderr once bound.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast;

/// Slots of the broadcast channel (as in ragi-sse).
const CAPACITY: usize = 8192;

struct Hub {
    tx: broadcast::Sender<Arc<str>>,
    seq: AtomicU64,
}

#[derive(serde::Deserialize)]
struct PublishParams {
    n: Option<u64>,
    interval_us: Option<u64>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

async fn events(State(hub): State<Arc<Hub>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = hub.tx.subscribe();
    let ready = stream::once(async { Ok(Event::default().comment("ready")) });
    let messages = stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(data) => return Some((Ok(Event::default().data(&*data)), rx)),
                // The load generator sees the gap in the sequence numbers and reports it.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(ready.chain(messages))
}

async fn publish(State(hub): State<Arc<Hub>>, Query(p): Query<PublishParams>) -> String {
    let n = p.n.unwrap_or(1);
    let interval = Duration::from_micros(p.interval_us.unwrap_or(0));
    let first = hub.seq.fetch_add(n, Ordering::Relaxed);
    for i in 0..n {
        if i > 0 && !interval.is_zero() {
            tokio::time::sleep(interval).await;
        }
        let data: Arc<str> = format!("{} {}", first + i, now_ns()).into();
        let _ = hub.tx.send(data); // Err only when nobody is subscribed
    }
    format!(
        "first={first} n={n} receivers={}\n",
        hub.tx.receiver_count()
    )
}

async fn subscribers(State(hub): State<Arc<Hub>>) -> String {
    format!("{}\n", hub.tx.receiver_count())
}

fn main() {
    let addr = bench_common::listen_arg("axum-sse", "127.0.0.1:8085");
    let rt = bench_common::runtime();
    rt.block_on(serve(addr));
}

async fn serve(addr: SocketAddr) {
    let hub = Arc::new(Hub {
        tx: broadcast::channel(CAPACITY).0,
        seq: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/", get(|| async { "Hello, World!" }))
        .route("/events", get(events))
        .route("/subscribers", get(subscribers))
        .route("/publish", get(publish).post(publish))
        .with_state(hub);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("axum-sse: cannot bind {addr}: {e}");
            std::process::exit(1);
        }
    };
    let local = listener.local_addr().expect("local_addr");
    eprintln!("listening on http://{local}");
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("axum-sse: {e}");
        std::process::exit(1);
    }
}
