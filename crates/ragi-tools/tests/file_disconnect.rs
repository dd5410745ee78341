//! A client that leaves in the middle of a large file: the reading stops, and the app sees why.
//!
//! ragi-server serves a 256 MiB file with `send_file`, once on an `http` scope (the server
//! reads the `Body::File` region) and once on an `sse` scope answered through the decline pair
//! (the toolkit's `BodyWriter` reads it). A raw client takes about 1 MiB and leaves (FIN, then
//! an abortive close). The app call must end with the connection object giving the reason,
//! and the process must have read far less than the file: `rchar` of `/proc/self/io` counts
//! every byte this process read, so reading on after the departure would show as the rest of
//! the file. This file holds one test so that no other test's reads share the counter.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ragi::{App, DisconnectReason, Receiver, Scope, ScopeKind, Sender};
use ragi_server::{Config, Server};
use ragi_tools::prelude::*;
use ragi_tools::response::send_file;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const BIG: u64 = 256 << 20;
const T: Duration = Duration::from_secs(10);

/// Bytes this process has read so far (Linux `/proc/self/io`).
fn rchar() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io (Linux)");
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("an rchar line")
}

/// How the test client leaves.
#[derive(Clone, Copy, Debug)]
enum Leave {
    /// `shutdown(SHUT_WR)`: a FIN, the socket kept open.
    Fin,
    /// An abortive close (`SO_LINGER` 0): an RST.
    Reset,
}

/// Requests `/big` (with `accept`), reads about 1 MiB, leaves; returns the bytes it got.
/// The socket comes back after a FIN (kept open until the app call ended).
async fn leave_mid_download(
    addr: SocketAddr,
    accept: &str,
    leave: Leave,
) -> (Option<TcpStream>, usize) {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(format!("GET /big HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut got = 0usize;
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while got < (1 << 20) {
        let n = tokio::time::timeout(T, c.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "the server closed early");
        if head.len() < 512 {
            head.extend_from_slice(&buf[..n.min(512)]);
        }
        got += n;
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains(&format!("content-length: {BIG}\r\n")),
        "{head}"
    );
    match leave {
        Leave::Fin => {
            c.shutdown().await.unwrap();
            (Some(c), got)
        }
        Leave::Reset => {
            // SO_LINGER 0: closing sends an RST.
            c.set_zero_linger().unwrap();
            drop(c);
            (None, got)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_stops_when_the_client_leaves() {
    let dir = std::env::temp_dir().join(format!("ragi-tools-leave-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big");
    {
        // Sparse: no disk blocks, and every read is counted all the same.
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(BIG).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
    }

    // The app: `send_file`, wrapped to report how each request's call ended.
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let root: PathBuf = dir.clone();
    let files = handler(move |cx: HttpContext| {
        let path = root.join(cx.path().trim_start_matches('/'));
        async move { send_file(&cx, path).await }
    });
    let app = move |scope: Scope, rx: Receiver, tx: Sender| {
        let files = files.clone();
        let done = done_tx.clone();
        async move {
            let kind = scope.kind;
            let connection = scope.connection().clone();
            let result = files.call(scope, rx, tx).await;
            if matches!(kind, ScopeKind::Http | ScopeKind::Sse) {
                let _ = done.send((kind, connection.disconnect_reason(), result.is_ok()));
            }
            result
        }
    };
    let bound = Server::new(Config::default())
        .listen("127.0.0.1:0".parse().unwrap())
        .bind()
        .await
        .unwrap();
    let addr = bound.local_addrs()[0];
    let shutdown = bound.shutdown_handle();
    tokio::spawn(bound.serve(app));

    for (accept, kind, leave) in [
        ("*/*", ScopeKind::Http, Leave::Fin),
        ("*/*", ScopeKind::Http, Leave::Reset),
        // An `sse` scope: the HTTP handler answers through the decline pair, and the
        // toolkit's BodyWriter reads the file itself.
        ("text/event-stream", ScopeKind::Sse, Leave::Fin),
        ("text/event-stream", ScopeKind::Sse, Leave::Reset),
    ] {
        let before = rchar();
        let (client, got) = leave_mid_download(addr, accept, leave).await;
        let (seen_kind, reason, ok) = tokio::time::timeout(T, done_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{kind:?}/{leave:?}: the app call did not end"))
            .unwrap();
        let read = rchar() - before;
        drop(client);
        assert_eq!(seen_kind, kind);
        // A departed client is not an app failure.
        assert!(ok, "{kind:?}/{leave:?}: the app call failed");
        match leave {
            Leave::Fin => assert_eq!(reason, Some(DisconnectReason::ClientClosed)),
            Leave::Reset => assert!(
                matches!(
                    reason,
                    Some(DisconnectReason::ReadError | DisconnectReason::WriteError)
                ),
                "{kind:?}: {reason:?}"
            ),
        }
        // The client got ~1 MiB; socket buffers hold a few more. Reading on after the
        // departure would read the rest of the 256 MiB.
        assert!(
            read < 64 << 20,
            "{kind:?}/{leave:?}: read {read} bytes of a {BIG}-byte file after the client took {got}"
        );
    }
    shutdown.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
