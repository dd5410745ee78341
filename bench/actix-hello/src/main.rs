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

fn usage(msg: &str) -> ! {
    eprintln!("actix-hello: {msg}\nusage: actix-hello [--listen ADDR]");
    std::process::exit(2);
}

fn parse_args() -> String {
    let mut listen = String::from("127.0.0.1:8082");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--listen" {
            listen = args.next().unwrap_or_else(|| usage("--listen needs a value"));
        } else if let Some(v) = arg.strip_prefix("--listen=") {
            listen = v.to_string();
        } else if arg == "-h" || arg == "--help" {
            eprintln!("usage: actix-hello [--listen ADDR]");
            std::process::exit(0);
        } else {
            usage(&format!("unknown argument {arg:?}"));
        }
    }
    listen
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = parse_args();
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
