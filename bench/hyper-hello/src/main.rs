//! Bare hyper 1.x baseline: answers every request with `200 text/plain
//! "Hello, World!"`. HTTP/1.1 only, keep-alive on, one single-threaded tokio
//! runtime (the benchmark pins the server to one core, so this is hyper's
//! best single-core configuration; it matches actix-hello's `.workers(1)`).
//!
//! Usage: hyper-hello [--listen ADDR]   (default 127.0.0.1:8081)
//!
//! With `HYPER_HELLO_TIMER=1` in the environment, connections get hyper's tokio timer and
//! with it hyper's default header read timeout (30 s): the like-for-like variant for
//! comparing with ragi, which keeps its own timeouts armed (`hyper-timer` in run.sh).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

static BODY: &[u8] = b"Hello, World!";

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

fn main() {
    let addr = bench_common::listen_arg("hyper-hello", "127.0.0.1:8081");
    let rt = bench_common::current_thread_runtime();
    rt.block_on(serve(addr));
}

async fn serve(addr: SocketAddr) {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hyper-hello: cannot bind {addr}: {e}");
            std::process::exit(1);
        }
    };
    let local = listener.local_addr().expect("local_addr");
    eprintln!("listening on http://{local}");

    let timer = std::env::var_os("HYPER_HELLO_TIMER").is_some_and(|v| v == "1");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE / ENFILE and friends: back off instead of dying.
                eprintln!("hyper-hello: accept error: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .keep_alive(true)
                // Coalesce the responses to pipelined requests into one write.
                .pipeline_flush(true);
            if timer {
                // hyper's header read timeout (30 s by default once a timer is set): what a
                // deployed hyper server keeps armed, as ragi keeps its own timeouts.
                builder.timer(TokioTimer::new());
            }
            let conn = builder.serve_connection(TokioIo::new(stream), service_fn(hello));
            let _ = conn.await;
        });
    }
}
