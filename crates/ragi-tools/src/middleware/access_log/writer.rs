//! Where access-log lines go: a [`LogSink`]. [`LineWriter`] writes to any `io::Write` from its
//! own thread behind a bounded queue, so that a slow disk or a blocked pipe never holds a
//! request up; [`Capture`] keeps lines in memory (tests).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

/// Takes finished log lines. Called on the request path (from the connection object's
/// callbacks), so it must not block: queue, hand off, or drop.
pub trait LogSink: Send + Sync + 'static {
    /// One line, ending with `\n`.
    fn write_line(&self, line: String);
}

impl<F: Fn(String) + Send + Sync + 'static> LogSink for F {
    fn write_line(&self, line: String) {
        self(line)
    }
}

/// The default capacity of a [`LineWriter`]'s queue, in lines.
pub const DEFAULT_QUEUE: usize = 4096;

/// Writes lines to an `io::Write` (stdout by default) from a thread of its own, behind a
/// bounded queue. A line that finds the queue full is **dropped and counted** (see
/// [`dropped`](Self::dropped)), and a warning is logged once per run of drops: the request that
/// produced it never waits for the writer.
///
/// The thread starts with the first line and ends when the last handle on the writer is
/// dropped, after writing what is queued; it flushes whenever the queue runs empty.
pub struct LineWriter {
    queue: usize,
    target: Mutex<Option<Box<dyn Write + Send>>>,
    tx: OnceLock<SyncSender<String>>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    written: AtomicU64,
    dropped: AtomicU64,
    /// Whether the current run of drops was reported.
    reported: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for LineWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineWriter")
            .field("queue", &self.queue)
            .field("written", &self.written())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl LineWriter {
    /// A writer to `target` with a queue of [`DEFAULT_QUEUE`] lines.
    pub fn new(target: impl Write + Send + 'static) -> Self {
        Self {
            queue: DEFAULT_QUEUE,
            target: Mutex::new(Some(Box::new(target))),
            tx: OnceLock::new(),
            stats: Arc::default(),
        }
    }

    /// A writer to standard output.
    pub fn stdout() -> Self {
        Self::new(std::io::stdout())
    }

    /// Holds at most `lines` lines waiting for the writer (at least 1).
    pub fn queue(mut self, lines: usize) -> Self {
        self.queue = lines.max(1);
        self
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.stats.written.load(Ordering::Acquire)
    }

    /// Lines dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Acquire)
    }

    fn sender(&self) -> Option<&SyncSender<String>> {
        if let Some(tx) = self.tx.get() {
            return Some(tx);
        }
        let target = self
            .target
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        let (tx, rx) = sync_channel(self.queue);
        let stats = self.stats.clone();
        let spawned = std::thread::Builder::new()
            .name("ragi-access-log".into())
            .spawn(move || run(target, rx, stats));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "access log: cannot start the writer thread; lines are dropped");
            return None;
        }
        let _ = self.tx.set(tx);
        self.tx.get()
    }
}

fn run(mut target: Box<dyn Write + Send>, rx: Receiver<String>, stats: Arc<Stats>) {
    while let Ok(line) = rx.recv() {
        let mut batch = vec![line];
        batch.extend(rx.try_iter());
        for line in &batch {
            if let Err(e) = target.write_all(line.as_bytes()) {
                tracing::warn!(error = %e, "access log: write failed");
            } else {
                stats.written.fetch_add(1, Ordering::AcqRel);
            }
        }
        let _ = target.flush();
    }
    let _ = target.flush();
}

impl LogSink for LineWriter {
    fn write_line(&self, line: String) {
        let Some(tx) = self.sender() else {
            self.stats.dropped.fetch_add(1, Ordering::AcqRel);
            return;
        };
        match tx.try_send(line) {
            Ok(()) => self.stats.reported.store(false, Ordering::Release),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let n = self.stats.dropped.fetch_add(1, Ordering::AcqRel) + 1;
                if !self.stats.reported.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        dropped = n,
                        queue = self.queue,
                        "access log: the writer is behind; lines are dropped"
                    );
                }
            }
        }
    }
}

/// Keeps lines in memory, in order: for tests and for apps that show recent requests. Cheap
/// to clone; clones share the lines.
#[derive(Clone, Default)]
pub struct Capture {
    inner: Arc<(Mutex<Vec<String>>, Condvar)>,
    added: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("lines", &self.len())
            .finish()
    }
}

impl Capture {
    /// An empty capture.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lines so far (without their `\n`).
    pub fn lines(&self) -> Vec<String> {
        self.lock()
            .iter()
            .map(|l| l.trim_end_matches('\n').to_owned())
            .collect()
    }

    /// How many lines there are.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes and returns the lines so far.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lock())
            .into_iter()
            .map(|l| l.trim_end_matches('\n').to_owned())
            .collect()
    }

    /// Waits (blocking the thread, at most `timeout` of real time) until there are at least
    /// `n` lines; returns whether there are.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let guard = self.lock();
        let (guard, _) = self
            .inner
            .1
            .wait_timeout_while(guard, timeout, |l| l.len() < n)
            .unwrap_or_else(|e| e.into_inner());
        guard.len() >= n
    }

    /// Waits until there are at least `n` lines and returns them (no time limit of its own:
    /// wrap it in a timeout).
    pub async fn wait_lines(&self, n: usize) -> Vec<String> {
        loop {
            let added = self.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if self.len() >= n {
                return self.lines();
            }
            added.await;
        }
    }
}

impl LogSink for Capture {
    fn write_line(&self, line: String) {
        self.lock().push(line);
        self.inner.1.notify_all();
        self.added.notify_waiters();
    }
}

impl Write for Capture {
    /// Takes whole lines (a write is one or more lines, as [`LineWriter`] writes them).
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        for line in text.split_inclusive('\n') {
            self.write_line(line.to_owned());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
