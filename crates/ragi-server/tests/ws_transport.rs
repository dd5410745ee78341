//! WebSocket backpressure through the `transport` extension: `send` waits above the high
//! watermark while the client does not read, `on_high_water` fires with the buffered amount,
//! and `on_drain` fires once the client catches up.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use ragi::{Headers, Message, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use ragi_server::{Config, Server};

#[test]
fn websocket_send_follows_the_watermarks() {
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
    const MESSAGES: usize = 512;
    let app = move |scope: Scope, mut receive: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            if scope.kind != ragi::ScopeKind::WebSocket {
                return Err(ragi::UnsupportedScope(scope.kind).into());
            }
            assert_eq!(receive.receive().await, ReceiveEvent::WebSocketConnect);
            let t = scope.extensions.transport.clone().expect("transport");
            let (t1, tx1) = (t.clone(), tx.clone());
            t.on_high_water(move || {
                let _ = tx1.send(("high", t1.buffered_amount()));
            });
            let (t2, tx2) = (t.clone(), tx.clone());
            t.on_drain(move || {
                let _ = tx2.send(("drain", t2.buffered_amount()));
            });
            send.send(SendEvent::WebSocketAccept {
                subprotocol: None,
                headers: Headers::new(),
            })
            .await?;
            let msg = Bytes::from(vec![b'x'; 32 * 1024]);
            for _ in 0..MESSAGES {
                send.send(SendEvent::WebSocketSend(Message::Binary(msg.clone())))
                    .await?;
                // Never far above the high watermark: send waited.
                let _ = tx.send(("sent", t.buffered_amount()));
            }
            // Wait for the client to leave.
            while !matches!(
                receive.receive().await,
                ReceiveEvent::WebSocketDisconnect { .. }
            ) {}
            Ok(())
        }
    };
    rt.spawn(async move { bound.serve(app).await });

    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    // Not reading: high water is reached, and sends stop short of the whole burst.
    let mut high = None;
    let mut sent = 0;
    while high.is_none() {
        match rx.recv_timeout(Duration::from_secs(10)).expect("events") {
            ("high", n) => high = Some(n),
            ("sent", n) => {
                sent += 1;
                assert!(n <= 64 * 1024 + 33 * 1024, "buffered {n}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(high.unwrap() > 64 * 1024, "{high:?}");
    assert!(sent < MESSAGES, "send did not wait: {sent} sent");
    // Read every message (a 4-byte frame header each): the buffer drains.
    let want = MESSAGES * (32 * 1024 + 4);
    let mut got = 0;
    let mut buf = vec![0u8; 256 * 1024];
    while got < want {
        let n = c.read(&mut buf).expect("read");
        assert!(n > 0, "the server closed after {got} bytes");
        got += n;
    }
    let drained = loop {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(("drain", n)) => break Some(n),
            Ok(_) => {}
            Err(_) => break None,
        }
    };
    let n = drained.expect("no drain call");
    assert!(n <= 16 * 1024, "buffered {n} at drain");
    shutdown.shutdown();
}

/// An app that fails before accepting gets its handshake answered 403; one that fails after
/// gets its session closed with 1011, reason `server_error` on the connection object.
#[test]
fn app_failures_are_403_before_accept_and_1011_after() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel::<Option<ragi::DisconnectReason>>();
    let bound = rt
        .block_on(
            Server::new(Config::default())
                .listen("127.0.0.1:0".parse().unwrap())
                .bind(),
        )
        .unwrap();
    let addr = bound.local_addrs()[0];
    let app = move |scope: Scope, mut receive: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            if scope.path == "/unsupported" {
                return Err(ragi::UnsupportedScope(scope.kind).into());
            }
            if scope.path == "/panic" {
                panic!("before accept");
            }
            let conn = scope.connection().clone();
            conn.on_disconnect(move |r| {
                let _ = tx.send(Some(r.clone()));
            });
            receive.receive().await;
            send.send(SendEvent::WebSocketAccept {
                subprotocol: None,
                headers: Headers::new(),
            })
            .await?;
            receive.receive().await; // the first message
            Err("the app gives up".into())
        }
    };
    rt.spawn(async move { bound.serve(app).await });
    let handshake = |path: &str| {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        c
    };
    for path in ["/unsupported", "/panic"] {
        let mut c = handshake(path);
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 403 "), "{path}: {text}");
    }
    let mut c = handshake("/ok");
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 101 "));
    // One masked text frame "hi".
    c.write_all(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2])
        .unwrap();
    let mut frame = [0u8; 4];
    c.read_exact(&mut frame).unwrap();
    assert_eq!(frame[0], 0x88, "a close frame");
    assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 1011);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        Some(ragi::DisconnectReason::ServerError)
    );
}
