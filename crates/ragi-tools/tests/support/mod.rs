//! Helpers for the black-box socket tests: a real `ragi-server` on `127.0.0.1:0` and a raw TCP
//! client. Every wait is bounded.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use ragi::App;
use ragi_server::{Config, Server, ShutdownHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The bound of one network step.
pub const T: Duration = Duration::from_secs(5);

/// Awaits `fut` for at most [`T`], panicking with `what` otherwise.
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(T, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {T:?} waiting for {what}"),
    }
}

/// A server serving `app`; stops when dropped.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: ShutdownHandle,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.abort();
    }
}

pub async fn serve(app: impl App) -> Running {
    let bound = Server::new(Config::default())
        .listen("127.0.0.1:0".parse().unwrap())
        .bind()
        .await
        .expect("bind");
    let addr = bound.local_addrs()[0];
    let shutdown = bound.shutdown_handle();
    tokio::spawn(bound.serve(app));
    Running { addr, shutdown }
}

/// A raw HTTP/1.1 client that reads what arrives, as it arrives.
pub struct Client {
    pub stream: TcpStream,
    pub seen: Vec<u8>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = within("connect", TcpStream::connect(addr)).await.unwrap();
        Client {
            stream,
            seen: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads until `needle` is in what was read (after `from`); panics at EOF or timeout.
    pub async fn read_until(&mut self, from: usize, needle: &[u8]) -> usize {
        within(&format!("{:?}", String::from_utf8_lossy(needle)), async {
            loop {
                if let Some(i) = find(&self.seen[from..], needle) {
                    return from + i + needle.len();
                }
                let mut buf = [0u8; 4096];
                let n = self.stream.read(&mut buf).await.unwrap();
                assert!(
                    n > 0,
                    "EOF before {:?}; got {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&self.seen)
                );
                self.seen.extend_from_slice(&buf[..n]);
            }
        })
        .await
    }

    /// Reads to EOF.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        within("EOF", async {
            loop {
                let mut buf = [0u8; 4096];
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return self.seen.clone(),
                    Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub mod session;
