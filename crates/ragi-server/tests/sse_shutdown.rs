//! Graceful shutdown tells an SSE stream at once (reason `server_shutdown`), long before the
//! shutdown deadline, and the server then finishes promptly.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use ragi::{DisconnectReason, Headers, Receiver, Scope, ScopeKind, SendEvent, Sender};
use ragi_server::{Config, Server};

#[test]
fn shutdown_ends_an_event_stream_at_once() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<DisconnectReason>();
    let mut cfg = Config::default();
    cfg.shutdown_timeout = Duration::from_secs(10);
    let bound = rt
        .block_on(
            Server::new(cfg)
                .listen("127.0.0.1:0".parse().unwrap())
                .bind(),
        )
        .unwrap();
    let addr = bound.local_addrs()[0];
    let shutdown = bound.shutdown_handle();
    let app = move |scope: Scope, _rx: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            if scope.kind != ScopeKind::Sse {
                return Err(ragi::UnsupportedScope(scope.kind).into());
            }
            send.send(SendEvent::SseStart {
                status: 200,
                headers: Headers::new(),
            })
            .await?;
            let reason = scope.connection().disconnected().await;
            let _ = tx.send(reason);
            Ok(())
        }
    };
    let served = rt.spawn(async move { bound.serve(app).await });

    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0);
        head.extend_from_slice(&buf[..n]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200 OK"));

    let started = Instant::now();
    shutdown.shutdown();
    let reason = rx
        .recv_timeout(Duration::from_secs(3))
        .expect("the stream was not told");
    assert_eq!(reason, DisconnectReason::ServerShutdown);
    // The client sees the close; the server is done long before its 10 s deadline.
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), served).await })
        .expect("serve() did not return")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// The same over HTTP/2 (h2c): the SSE stream is told `server_shutdown` at once, the stream
/// ends, and the server finishes long before its deadline.
#[test]
fn shutdown_ends_an_http2_event_stream_at_once() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<DisconnectReason>();
    let mut cfg = Config::default();
    cfg.shutdown_timeout = Duration::from_secs(10);
    let bound = rt
        .block_on(
            Server::new(cfg)
                .listen("127.0.0.1:0".parse().unwrap())
                .bind(),
        )
        .unwrap();
    let addr = bound.local_addrs()[0];
    let shutdown = bound.shutdown_handle();
    let app = move |scope: Scope, _rx: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            if scope.kind != ScopeKind::Sse {
                return Err(ragi::UnsupportedScope(scope.kind).into());
            }
            send.send(SendEvent::SseStart {
                status: 200,
                headers: Headers::new(),
            })
            .await?;
            let reason = scope.connection().disconnected().await;
            let _ = tx.send(reason);
            Ok(())
        }
    };
    let served = rt.spawn(async move { bound.serve(app).await });
    let started = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut client = client.ready().await.unwrap();
        let req = http::Request::builder()
            .uri(format!("http://{addr}/events"))
            .header("accept", "text/event-stream")
            .body(())
            .unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(5), resp)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let started = Instant::now();
        shutdown.shutdown();
        // The stream ends (END_STREAM or a reset) well before the deadline.
        while let Some(Ok(chunk)) = tokio::time::timeout(Duration::from_secs(5), body.data())
            .await
            .expect("the stream ends in time")
        {
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        started
    });
    let reason = rx
        .recv_timeout(Duration::from_secs(3))
        .expect("the stream was not told");
    assert_eq!(reason, DisconnectReason::ServerShutdown);
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), served).await })
        .expect("serve() did not return")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
