//! Temporary files for uploads, removed when they are dropped and, at the latest, when the
//! request ends (response delivered, or client gone).
//!
//! Two mechanisms, so that no path leaks a file:
//!
//! * a drop guard: dropping a [`TempFile`] removes its file (also while a panic unwinds, and
//!   when a cancelled handler future is dropped);
//! * the request's spool: every file is registered, and the connection object's
//!   `on_complete` and `on_disconnect` callbacks remove what is still registered, so a file
//!   kept alive past the request (moved into a task, leaked) is still removed when the
//!   request ends. A file created after that moment is removed at once and reported as the
//!   client's departure.
//!
//! [`TempFile::persist`] takes a file out of both, to keep it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ragi::{Connection, DisconnectReason};

use crate::Error;

/// The temporary files of one request.
#[derive(Clone, Debug)]
pub(crate) struct Spool {
    inner: Arc<Mutex<Files>>,
}

#[derive(Debug, Default)]
struct Files {
    paths: Vec<PathBuf>,
    /// The request ended: nothing may be added.
    ended: Option<Option<DisconnectReason>>,
}

impl Files {
    fn end(&mut self, reason: Option<DisconnectReason>) {
        if self.ended.is_none() {
            self.ended = Some(reason);
        }
        for path in self.paths.drain(..) {
            remove(&path);
        }
    }
}

fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not remove an upload's temporary file")
        }
    }
}

fn lock(m: &Mutex<Files>) -> std::sync::MutexGuard<'_, Files> {
    // A panic while the lock was held left a list of paths: still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Spool {
    /// The spool of the request whose connection object is `conn`.
    pub(crate) fn new(conn: &Connection) -> Self {
        let inner = Arc::new(Mutex::new(Files::default()));
        let on_gone = inner.clone();
        conn.on_disconnect(move |reason| lock(&on_gone).end(Some(reason.clone())));
        let on_done = inner.clone();
        conn.on_complete(move || lock(&on_done).end(None));
        Self { inner }
    }

    /// A new empty file in `dir` (the system's temporary directory when `None`), registered.
    pub(crate) async fn create(
        &self,
        dir: Option<&Path>,
    ) -> Result<(tokio::fs::File, TempFile), Error> {
        let dir = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let (file, path) = tokio::task::spawn_blocking(move || create_unique(&dir))
            .await
            .map_err(|e| Error::internal(format!("creating an upload's temporary file: {e}")))?
            .map_err(|e| Error::internal(format!("creating an upload's temporary file: {e}")))?;
        let mut files = lock(&self.inner);
        if let Some(ended) = &files.ended {
            let reason = ended.clone();
            drop(files);
            remove(&path);
            return Err(match reason {
                Some(r) => Error::disconnected(r),
                None => {
                    Error::internal("an upload's temporary file was created after the response")
                }
            });
        }
        files.paths.push(path.clone());
        drop(files);
        let temp = TempFile {
            path,
            spool: Some(self.inner.clone()),
        };
        Ok((tokio::fs::File::from_std(file), temp))
    }
}

/// Creates a file that did not exist, readable and writable by this user only.
fn create_unique(dir: &Path) -> std::io::Result<(std::fs::File, PathBuf)> {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut last = None;
    for _ in 0..16 {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // RandomState is seeded randomly per process (and per instance).
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        let name = format!("ragi-upload-{}-{n}-{:016x}", std::process::id(), h.finish());
        let path = dir.join(name);
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        match opts.open(&path) {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary file name")))
}

/// An upload spooled to disk: removed when dropped, and when its request ends, unless
/// [`persist`](Self::persist)ed.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    spool: Option<Arc<Mutex<Files>>>,
}

impl TempFile {
    /// Where the file is (while it exists).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the file is gone when its request ended: an error carrying the client's reason
    /// after a departure, else an internal error naming the request's end (or `e`).
    pub(crate) fn error(&self, e: std::io::Error) -> Error {
        let ended = self.spool.as_ref().and_then(|s| lock(s).ended.clone());
        match ended {
            Some(Some(reason)) => Error::disconnected(reason),
            Some(None) => Error::internal(
                "the request ended and its temporary files were removed (persist() keeps one)",
            ),
            None => Error::internal(format!("reading an upload's temporary file: {e}")),
        }
    }

    /// The error of [`error`](Self::error) when the request already ended.
    pub(crate) fn spool_ended(&self) -> Option<Error> {
        let ended = self.spool.as_ref().is_some_and(|s| lock(s).ended.is_some());
        ended.then(|| self.error(std::io::Error::from(std::io::ErrorKind::NotFound)))
    }

    fn unregister(&mut self) {
        if let Some(spool) = self.spool.take() {
            lock(&spool).paths.retain(|p| *p != self.path);
        }
    }

    /// Moves the file to `to` (a rename; a copy when `to` is on another file system) and
    /// keeps it: it is no longer removed by this value or by the end of the request.
    pub async fn persist(mut self, to: impl AsRef<Path>) -> std::io::Result<()> {
        let to = to.as_ref().to_path_buf();
        if tokio::fs::rename(&self.path, &to).await.is_err() {
            tokio::fs::copy(&self.path, &to).await?;
        }
        // Renamed or copied: this value's drop removes only what is left at the old path.
        self.unregister();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        self.unregister();
        remove(&self.path);
    }
}
