//! The `transport` extension over a real socket: `on_high_water` when a client stops reading,
//! `on_drain` when it catches up, with the buffered amount visible.

use std::io::Read;
use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use ragi::{Headers, Receiver, Scope, SendEvent, Sender};
use ragi_server::{Config, Server};

#[test]
fn high_water_then_drain() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel::<(&'static str, usize)>();
    let bound = rt
        .block_on(
            Server::new(Config::default())
                .listen("127.0.0.1:0".parse().unwrap())
                .bind(),
        )
        .unwrap();
    let addr = bound.local_addrs()[0];
    let shutdown = bound.shutdown_handle();
    let app = move |scope: Scope, _rx: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            if scope.kind != ragi::ScopeKind::Http {
                return Err(ragi::UnsupportedScope(scope.kind).into());
            }
            let t = scope
                .extensions
                .transport
                .clone()
                .expect("the transport extension");
            assert!(t.high_water() > t.low_water());
            let (t1, tx1) = (t.clone(), tx.clone());
            t.on_high_water(move || {
                let _ = tx1.send(("high", t1.buffered_amount()));
            });
            let (t2, tx2) = (t.clone(), tx.clone());
            t.on_drain(move || {
                let _ = tx2.send(("drain", t2.buffered_amount()));
            });
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
            for _ in 0..1024 {
                send.send(SendEvent::body_chunk(chunk.clone())).await?;
            }
            send.send(SendEvent::body(Bytes::new())).await?;
            Ok(())
        }
    };
    rt.spawn(async move { bound.serve(app).await });

    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    // Not reading: the server's buffer rises above the high watermark.
    let (what, amount) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("no high-water call");
    assert_eq!(what, "high");
    assert!(amount > 64 * 1024, "buffered {amount} at high water");
    // Reading everything: it drains below the low watermark.
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    assert!(all.len() > 16 * 1024 * 1024, "got {} bytes", all.len());
    let (what, amount) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("no drain call");
    assert_eq!(what, "drain");
    assert!(amount <= 16 * 1024, "buffered {amount} at drain");
    shutdown.abort();
}
