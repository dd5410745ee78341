//! Bare hyper 1.x HTTP/2 baseline: answers every request with `200
//! text/plain "Hello, World!"`. Cleartext HTTP/2 with prior knowledge (h2c,
//! no Upgrade, no HTTP/1.1), one single-threaded tokio runtime, like
//! hyper-hello. Streams are spawned on that runtime through hyper-util's
//! `TokioExecutor`.
//!
//! Usage: hyper-h2 [--listen ADDR]   (default 127.0.0.1:8082)

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

static BODY: &[u8] = b"Hello, World!";

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

fn main() {
    let addr = bench_common::listen_arg("hyper-h2", "127.0.0.1:8082");
    let rt = bench_common::current_thread_runtime();
    rt.block_on(serve(addr));
}

async fn serve(addr: SocketAddr) {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hyper-h2: cannot bind {addr}: {e}");
            std::process::exit(1);
        }
    };
    let local = listener.local_addr().expect("local_addr");
    eprintln!("listening on http://{local}");

    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hyper-h2: accept error: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let conn = http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(hello));
            let _ = conn.await;
        });
    }
}
