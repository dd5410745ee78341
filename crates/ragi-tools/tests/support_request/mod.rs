//! Helpers shared by the request-side tests (`request_*.rs`).
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ragi::{App, DisconnectReason, ReceiveEvent, ReceiveSource, Receiver, Scope, Sender};
use ragi_tools::{Error, ErrorKind};
use tokio::sync::mpsc;

/// What a handler's reader returned, as the tests compare it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen<T> {
    /// The value.
    Ok(T),
    /// The error: status, kind, and the reason when the client left.
    Err(u16, ErrorKind, Option<DisconnectReason>),
}

impl<T> Seen<T> {
    pub fn of(r: &Result<T, Error>) -> Self
    where
        T: Clone,
    {
        match r {
            Ok(v) => Seen::Ok(v.clone()),
            Err(e) => Seen::Err(e.status(), e.kind(), e.disconnect_reason().cloned()),
        }
    }

    pub fn gone(reason: DisconnectReason) -> Self {
        Seen::Err(499, ErrorKind::Disconnected, Some(reason))
    }

    pub fn status(status: u16, kind: ErrorKind) -> Self {
        Seen::Err(status, kind, None)
    }
}

/// A channel for what the app saw, read with a bound.
pub struct Reports<T> {
    rx: mpsc::UnboundedReceiver<T>,
}

pub fn reports<T>() -> (mpsc::UnboundedSender<T>, Reports<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, Reports { rx })
}

impl<T> Reports<T> {
    /// The next report (waits at most 10 s, tokio's clock).
    pub async fn next(&mut self) -> T {
        match tokio::time::timeout(Duration::from_secs(10), self.rx.recv()).await {
            Ok(Some(v)) => v,
            Ok(None) => panic!("the app dropped its report channel without reporting"),
            Err(_) => panic!("timed out waiting for the app's report"),
        }
    }
}

/// Wraps `app` so that the test can tell how often the app polled `receive` (the server sends
/// `100 Continue` on the first poll; a body refused before any read is never polled).
pub fn counting_polls(app: impl App) -> (impl App, Arc<AtomicUsize>) {
    struct Counting {
        inner: Receiver,
        polls: Arc<AtomicUsize>,
    }
    impl ReceiveSource for Counting {
        fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            self.inner.poll_receive(cx)
        }
    }
    let polls = Arc::new(AtomicUsize::new(0));
    let seen = polls.clone();
    let app = Arc::new(app);
    let wrapped = move |scope: Scope, rx: Receiver, tx: Sender| {
        let rx = Receiver::new(Counting {
            inner: rx,
            polls: seen.clone(),
        });
        app.call(scope, rx, tx)
    };
    (wrapped, polls)
}

/// A fresh, empty directory for one test's temporary files (removed by [`Scratch`]'s drop).
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ragi-tools-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn files(&self) -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
