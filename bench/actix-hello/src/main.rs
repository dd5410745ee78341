//! Bare actix-web 4 baseline: answers every request with `200 text/plain
//! "Hello, World!"`, with a single worker (`.workers(1)`), keep-alive on and
//! no keep-alive timer (so idle connections stay open for the idle-memory
//! measurement).
//!
//! Usage: actix-hello [--listen ADDR]   (default 127.0.0.1:8082)

use actix_web::http::KeepAlive;
use actix_web::{web, App, HttpResponse, HttpServer};

async fn hello() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain")
        .body("Hello, World!")
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = bench_common::listen_arg_raw("actix-hello", "127.0.0.1:8082");
    let server = HttpServer::new(|| App::new().default_service(web::to(hello)))
        .workers(1)
        .keep_alive(KeepAlive::Os)
        .max_connections(100_000)
        .disable_signals()
        .bind(&listen)
        .map_err(|e| {
            eprintln!("actix-hello: cannot bind {listen}: {e}");
            e
        })?;
    for addr in server.addrs() {
        eprintln!("listening on http://{addr}");
    }
    server.run().await
}
