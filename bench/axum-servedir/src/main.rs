//! tower-http's `ServeDir` on axum: the baseline of the static-file benchmark
//! (`bench/static.sh`), configured as tower-http ships it (no precompressed variants, index
//! on directories), every path of the directory served at `/`.
//!
//! Served with `axum::serve` (hyper-util, HTTP/1.1 here), TCP_NODELAY on every accepted
//! socket; the runtime is chosen as ragi-cli chooses it (current-thread on one CPU).
//!
//! Usage: axum-servedir [--listen ADDR] DIR   (default 127.0.0.1:8086). Prints
//! `listening on http://ADDR` on stderr once bound.

use axum::serve::ListenerExt;
use axum::Router;
use tower_http::services::ServeDir;

fn main() {
    let mut listen = String::from("127.0.0.1:8086");
    let mut dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or_else(|| usage("--listen needs a value")),
            "-h" | "--help" => {
                eprintln!("usage: axum-servedir [--listen ADDR] DIR");
                std::process::exit(0);
            }
            _ if a.starts_with('-') => usage(&format!("unknown argument {a:?}")),
            _ => dir = Some(a),
        }
    }
    let dir = dir.unwrap_or_else(|| usage("DIR is missing"));
    let addr: std::net::SocketAddr = listen
        .parse()
        .unwrap_or_else(|e| usage(&format!("bad --listen {listen:?}: {e}")));
    let rt = bench_common::runtime();
    rt.block_on(async move {
        let app = Router::new().fallback_service(ServeDir::new(dir));
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("axum-servedir: cannot bind {addr}: {e}");
                std::process::exit(1);
            }
        };
        eprintln!("listening on http://{}", listener.local_addr().expect("local_addr"));
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("axum-servedir: {e}");
            std::process::exit(1);
        }
    });
}

fn usage(msg: &str) -> ! {
    eprintln!("axum-servedir: {msg}\nusage: axum-servedir [--listen ADDR] DIR");
    std::process::exit(2);
}
