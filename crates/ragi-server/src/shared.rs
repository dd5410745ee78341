//! What the HTTP/1.1 and HTTP/2 paths share: catching an app's (or hook's) panic, and reading
//! a `Body::File` region in pieces.

use std::fs::File;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use ragi::SendError;

/// A panic's message, for logs and the error hook.
pub(crate) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("the app panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("the app panicked: {s}")
    } else {
        "the app panicked".to_owned()
    }
}

/// Catches a panic of the wrapped future, with its message.
pub(crate) struct CatchUnwind<F>(pub(crate) F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Pin::new(&mut *fut).poll(cx)
        })) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(p) => Poll::Ready(Err(panic_message(&p))),
        }
    }
}

/// Pieces read from a region of a file, for `Body::File`: at most 64 KiB each, so that a large
/// file goes out under the same backpressure as any body.
pub(crate) struct FilePieces {
    file: File,
    left: u64,
    path: String,
}

impl FilePieces {
    /// `length` bytes of `path` from `offset` (to the end when `None`).
    pub(crate) fn open(path: &Path, offset: u64, length: Option<u64>) -> Result<Self, SendError> {
        let shown = path.display().to_string();
        let io_err =
            |e: std::io::Error| SendError::invalid_event(format!("cannot read {shown}: {e}"));
        let mut file = File::open(path).map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        if offset > size {
            return Err(SendError::invalid_event(
                "file offset beyond the end of the file",
            ));
        }
        file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        let left = length.unwrap_or(size - offset).min(size - offset);
        Ok(Self {
            file,
            left,
            path: shown,
        })
    }

    /// Whether the region is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// The next piece, and whether it is the last; `None` at the end.
    pub(crate) fn next_piece(&mut self) -> Result<Option<(Bytes, bool)>, SendError> {
        if self.left == 0 {
            return Ok(None);
        }
        let n = self.left.min(64 * 1024) as usize;
        let mut buf = vec![0u8; n];
        self.file
            .read_exact(&mut buf)
            .map_err(|e| SendError::invalid_event(format!("cannot read {}: {e}", self.path)))?;
        self.left -= n as u64;
        Ok(Some((Bytes::from(buf), self.left == 0)))
    }
}

type Callback = std::sync::Arc<dyn Fn() + Send + Sync>;

/// The `transport` extension's callbacks for one exchange or stream. The owner decides when
/// the buffer crosses a watermark (the hysteresis lives with its counter); this holds the
/// callbacks and runs them outside every lock, each isolated from the others' panics.
#[derive(Default)]
pub(crate) struct TransportHooks {
    high: std::sync::Mutex<Vec<Callback>>,
    drain: std::sync::Mutex<Vec<Callback>>,
}

impl TransportHooks {
    pub(crate) fn on_high_water(&self, callback: Box<dyn Fn() + Send + Sync>) {
        self.high
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(callback.into());
    }

    pub(crate) fn on_drain(&self, callback: Box<dyn Fn() + Send + Sync>) {
        self.drain
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(callback.into());
    }

    /// Forgets every callback (the exchange is recycled for another request).
    pub(crate) fn clear(&mut self) {
        for list in [&mut self.high, &mut self.drain] {
            let list = list.get_mut().unwrap_or_else(|e| e.into_inner());
            if !list.is_empty() {
                list.clear();
            }
        }
    }

    /// Runs the `on_high_water` (`high`) or `on_drain` callbacks.
    pub(crate) fn fire(&self, high: bool) {
        let list = if high { &self.high } else { &self.drain };
        let cbs: Vec<Callback> = list.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for cb in cbs {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb()));
        }
    }
}

/// Sends a `Body::File` region as body pieces through `send` (which applies backpressure),
/// the last piece carrying `more` as the app gave it.
pub(crate) async fn send_file<F, Fut>(
    path: &Path,
    offset: u64,
    length: Option<u64>,
    more: bool,
    mut send: F,
) -> Result<(), SendError>
where
    F: FnMut(ragi::SendEvent) -> Fut,
    Fut: Future<Output = Result<(), SendError>>,
{
    let body = |bytes: Bytes, more: bool| ragi::SendEvent::ResponseBody {
        body: ragi::Body::Bytes(bytes),
        more,
    };
    let mut pieces = FilePieces::open(path, offset, length)?;
    if pieces.is_empty() {
        return send(body(Bytes::new(), more)).await;
    }
    while let Some((piece, last)) = pieces.next_piece()? {
        send(body(piece, more || !last)).await?;
    }
    Ok(())
}
