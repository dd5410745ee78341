//! Bare tokio-tungstenite baseline for workload WS: a WebSocket echo server.
//!
//! Every TCP connection is handed to `tokio_tungstenite::accept_async` (any path is accepted),
//! and every text or binary message is sent straight back. The loop is the one of
//! tokio-tungstenite's own `echo-server` example: the stream half, filtered to data messages,
//! is `forward`ed into the sink half, so echoes that are ready together go out in one flush.
//! Pings are answered by tungstenite itself; a close frame ends the session.
//!
//! The runtime is chosen the way `ragi` (ragi-cli) chooses it: a current-thread runtime when
//! the process may run on one CPU only (pinned with taskset), else a multi-thread one.
//!
//! Usage: tungstenite-echo [--listen ADDR]   (default 127.0.0.1:8082). Prints
//! `listening on http://ADDR` on stderr once bound.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{future, StreamExt, TryStreamExt};
use tokio::net::TcpListener;

fn main() {
    let addr = bench_common::listen_arg("tungstenite-echo", "127.0.0.1:8082");
    let rt = bench_common::runtime();
    rt.block_on(serve(addr));
}

async fn serve(addr: SocketAddr) {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tungstenite-echo: cannot bind {addr}: {e}");
            std::process::exit(1);
        }
    };
    let local = listener.local_addr().expect("local_addr");
    eprintln!("listening on http://{local}");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("tungstenite-echo: accept error: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            let (write, read) = ws.split();
            let _ = read
                .try_filter(|m| future::ready(m.is_text() || m.is_binary()))
                .forward(write)
                .await;
        });
    }
}
