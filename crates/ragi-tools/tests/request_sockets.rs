//! The request-body rules that only the network shows, over real sockets with ragi-server:
//! a declared Content-Length over the limit gets 413 and never `100 Continue`; a client that
//! leaves mid-upload leaves no temporary file and the app sees `client_closed`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ragi::DisconnectReason;
use ragi_server::{Config, Server, ShutdownHandle};
use ragi_tools::prelude::*;
use ragi_tools::request::multipart::MultipartLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(T, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Serves `app` on a free loopback port.
async fn serve(app: impl ragi::App) -> (SocketAddr, ShutdownHandle) {
    let bound = Server::new(Config::default())
        .listen("127.0.0.1:0".parse().unwrap())
        .bind()
        .await
        .expect("bind");
    let addr = bound.local_addrs()[0];
    let shutdown = bound.shutdown_handle();
    tokio::spawn(bound.serve(app));
    (addr, shutdown)
}

/// Reads until the server closes the connection (or `stop` says the bytes are enough).
async fn read_until(s: &mut TcpStream, stop: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if stop(&out) {
            return out;
        }
        match within("the server's bytes", s.read(&mut buf)).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn has_complete_response(b: &[u8]) -> bool {
    let text = String::from_utf8_lossy(b);
    let Some(head_end) = text.find("\r\n\r\n") else {
        return false;
    };
    // Skip interim responses.
    if text.starts_with("HTTP/1.1 100") {
        return has_complete_response(&b[head_end + 4..]);
    }
    let len = text[..head_end].lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-length:")
            .map(|v| v.trim().parse::<usize>().unwrap())
    });
    len.is_some_and(|n| b.len() >= head_end + 4 + n)
}

/// The app: JSON in, its size out; it reports each reader's outcome.
fn json_app(report: mpsc::UnboundedSender<Result<(), (u16, ErrorKind)>>) -> impl ragi::App {
    handler(move |mut cx: HttpContext| {
        let report = report.clone();
        async move {
            let r = cx.json::<serde_json::Value>().await;
            let _ = report.send(r.as_ref().map(|_| ()).map_err(|e| (e.status(), e.kind())));
            r.map(|v| Response::json(&serde_json::json!({ "got": v })))
        }
    })
}

#[tokio::test]
async fn a_declared_length_over_the_limit_gets_413_and_never_100_continue() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (addr, shutdown) = serve(json_app(tx)).await;

    // Over the 1 MiB JSON limit, announced and waiting for 100 Continue.
    let mut s = within("connect", TcpStream::connect(addr)).await.unwrap();
    s.write_all(
        b"POST /j HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
          Content-Length: 2000000\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let seen = read_until(&mut s, has_complete_response).await;
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert!(text.contains("\"error\""), "{text}");
    assert_eq!(
        within("the app's report", rx.recv()).await.unwrap(),
        Err((413, ErrorKind::BodyTooLarge))
    );
    // The client never sent the body; the server does not wait for it.
    let rest = read_until(&mut s, |_| false).await;
    assert!(!String::from_utf8_lossy(&rest).contains("100 Continue"));

    // The same request within the limit: 100 Continue comes (so the check above can fail),
    // then the body is read.
    let mut s = within("connect", TcpStream::connect(addr)).await.unwrap();
    s.write_all(
        b"POST /j HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
          Content-Length: 7\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let interim = read_until(&mut s, |b| b.windows(4).any(|w| w == b"\r\n\r\n")).await;
    assert!(
        String::from_utf8_lossy(&interim).starts_with("HTTP/1.1 100 Continue\r\n"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    s.write_all(b"{\"a\":1}").await.unwrap();
    let seen = read_until(&mut s, has_complete_response).await;
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.ends_with("{\"got\":{\"a\":1}}"), "{text}");
    assert_eq!(within("the app's report", rx.recv()).await.unwrap(), Ok(()));
    shutdown.shutdown();
}

/// A fresh, empty directory for one test's temporary files.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ragi-tools-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// Waits (bounded, re-checking) until `cond` holds.
async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

#[tokio::test]
async fn a_client_that_leaves_mid_upload_leaves_no_temp_file() {
    let dir = scratch_dir("sockets-upload");
    let limits = MultipartLimits {
        spool_threshold: 1024,
        temp_dir: Some(dir.clone()),
        ..MultipartLimits::default()
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = handler(move |mut cx: HttpContext| {
        let (tx, limits) = (tx.clone(), limits.clone());
        async move {
            let r = match cx.multipart_with(limits) {
                Ok(mp) => mp.collect().await.map(|f| f.len()),
                Err(e) => Err(e),
            };
            let _ = tx.send(
                r.as_ref()
                    .map(|n| *n)
                    .map_err(|e| (e.kind(), e.disconnect_reason().cloned())),
            );
            r.map(|n| format!("{n} parts"))
        }
    });
    let (addr, shutdown) = serve(app).await;

    let mut s = within("connect", TcpStream::connect(addr)).await.unwrap();
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=XX\r\n\
          Content-Length: 1000000\r\n\r\n\
          --XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"big.bin\"\r\n\r\n",
    )
    .await
    .unwrap();
    s.write_all(&[b'x'; 64 * 1024]).await.unwrap();
    // The file part is over the threshold: it is being spooled.
    wait_for("the temporary file", || entries(&dir).len() == 1).await;
    drop(s); // FIN mid-upload

    let r = within("the app's report", rx.recv()).await.unwrap();
    assert_eq!(
        r,
        Err((
            ErrorKind::Disconnected,
            Some(DisconnectReason::ClientClosed)
        ))
    );
    assert_eq!(entries(&dir), Vec::<PathBuf>::new());
    shutdown.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
