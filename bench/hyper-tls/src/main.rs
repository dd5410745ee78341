//! Bare hyper 1.x HTTPS baseline: HTTP/1.1 over TLS (tokio-rustls with the
//! `ring` provider, ALPN `http/1.1` only), answering every request with `200
//! text/plain "Hello, World!"`. Keep-alive on, one single-threaded tokio
//! runtime, like hyper-hello.
//!
//! Usage: hyper-tls --tls-cert CERT.pem --tls-key KEY.pem [--listen ADDR]
//!        (default 127.0.0.1:8443)

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

static BODY: &[u8] = b"Hello, World!";
const USAGE: &str = "usage: hyper-tls --tls-cert CERT.pem --tls-key KEY.pem [--listen ADDR]";

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

struct Args {
    listen: SocketAddr,
    cert: String,
    key: String,
}

fn parse_args() -> Args {
    let mut listen = String::from("127.0.0.1:8443");
    let (mut cert, mut key) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--listen" => listen = value("--listen"),
            "--tls-cert" => cert = Some(value("--tls-cert")),
            "--tls-key" => key = Some(value("--tls-key")),
            "-h" | "--help" => {
                eprintln!("{USAGE}");
                std::process::exit(0);
            }
            _ => usage(&format!("unknown argument {arg:?}")),
        }
    }
    let listen = listen
        .parse()
        .unwrap_or_else(|e| usage(&format!("bad --listen address {listen:?}: {e}")));
    Args {
        listen,
        cert: cert.unwrap_or_else(|| usage("--tls-cert is required")),
        key: key.unwrap_or_else(|| usage("--tls-key is required")),
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("hyper-tls: {msg}\n{USAGE}");
    std::process::exit(2);
}

fn fail(msg: String) -> ! {
    eprintln!("hyper-tls: {msg}");
    std::process::exit(1);
}

fn tls_config(cert: &str, key: &str) -> Arc<rustls::ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap_or_else(|e| fail(format!("cannot read {cert}: {e}")))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| fail(format!("bad certificate in {cert}: {e}")));
    if certs.is_empty() {
        fail(format!("no certificate in {cert}"));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .unwrap_or_else(|e| fail(format!("cannot read key {key}: {e}")));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| fail(format!("rustls protocol versions: {e}")))
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap_or_else(|e| fail(format!("bad certificate/key pair: {e}")));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn main() {
    let args = parse_args();
    let config = tls_config(&args.cert, &args.key);
    let rt = bench_common::current_thread_runtime();
    rt.block_on(serve(args.listen, TlsAcceptor::from(config)));
}

async fn serve(addr: SocketAddr, acceptor: TlsAcceptor) {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => fail(format!("cannot bind {addr}: {e}")),
    };
    let local = listener.local_addr().expect("local_addr");
    eprintln!("listening on https://{local}");

    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hyper-tls: accept error: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let conn = http1::Builder::new()
                .keep_alive(true)
                .pipeline_flush(true)
                .serve_connection(TokioIo::new(tls), service_fn(hello));
            let _ = conn.await;
        });
    }
}
