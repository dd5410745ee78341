//! `Body::File`: a region of a file sent as the response body, in pieces, over a real socket.

use std::io::{Read, Write};
use std::time::Duration;

use ragi::{Body, Headers, Receiver, Scope, SendEvent, Sender};
use ragi_server::{Config, Server};

#[test]
fn a_file_region_is_sent_whole_and_exact() {
    let dir = std::env::temp_dir().join(format!("ragi-file-body-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("data.bin");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &content).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bound = rt
        .block_on(
            Server::new(Config::default())
                .listen("127.0.0.1:0".parse().unwrap())
                .bind(),
        )
        .unwrap();
    let addr = bound.local_addrs()[0];
    let shutdown = bound.shutdown_handle();
    let file = path.clone();
    let app = move |scope: Scope, _rx: Receiver, send: Sender| {
        let file = file.clone();
        async move {
            if scope.kind != ragi::ScopeKind::Http {
                return Err(ragi::UnsupportedScope(scope.kind).into());
            }
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            // 200 000 bytes from offset 1 000 (several 64 KiB pieces), then an empty region
            // that ends the body.
            send.send(SendEvent::ResponseBody {
                body: Body::File {
                    path: file.clone(),
                    offset: 1_000,
                    length: Some(200_000),
                },
                more: true,
            })
            .await?;
            send.send(SendEvent::ResponseBody {
                body: Body::File {
                    path: file,
                    offset: 300_000,
                    length: None,
                },
                more: false,
            })
            .await?;
            Ok(())
        }
    };
    rt.spawn(async move { bound.serve(app).await });

    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(raw.starts_with(b"HTTP/1.1 200 OK"));
    // De-chunk.
    let mut body = Vec::new();
    let mut rest = &raw[split..];
    loop {
        let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap(), 16).unwrap();
        rest = &rest[nl + 2..];
        if size == 0 {
            break;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
    assert_eq!(body.len(), 200_000);
    assert!(body == content[1_000..201_000], "the region's bytes differ");
    shutdown.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
