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

/// A panic's message, for logs and the error hook: the payload and, when the panic hook saw
/// it, where it was raised.
pub(crate) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    let what = if let Some(s) = p.downcast_ref::<&str>() {
        format!("the app panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("the app panicked: {s}")
    } else {
        "the app panicked".to_owned()
    };
    match panics::take_location() {
        Some(at) => format!("{what} (at {at})"),
        None => what,
    }
}

/// Panics in apps and hooks: contained, and logged once with the connection id.
///
/// Every place the server runs foreign code (an app's poll, a hook, a listener, a callback)
/// catches its panic; the connection goes on or ends as the spec says, and its slot is freed.
/// What remains is the log: Rust's default panic hook would print each panic without saying
/// which connection it was on, and the server's own line (500 answered, response aborted)
/// would say it a second time. So the server installs, once, a panic hook in front of the
/// one it finds:
///
/// * inside a catch that logs (the app's poll, the error hook, the lifecycle listener) it
///   only records where the panic was raised, for that log line;
/// * elsewhere on a thread running a connection (a callback of `on_disconnect`,
///   `on_complete` or `transport`, caught inside `ragi`) it logs the panic itself, with the
///   connection id;
/// * anywhere else it hands the panic to the hook it replaced.
pub(crate) mod panics {
    use std::cell::{Cell, RefCell};
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use crate::lifecycle::ConnId;

    thread_local! {
        /// The connection whose code runs on this thread now.
        static CONN: RefCell<Option<ConnId>> = const { RefCell::new(None) };
        /// Catches that will log a panic themselves, nested.
        static CATCHING: Cell<u32> = const { Cell::new(0) };
        /// Where the last panic such a catch will log was raised.
        static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    /// Installs the hook (once per process).
    pub(crate) fn install() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let location = info.location().map(|l| l.to_string());
                if CATCHING.with(Cell::get) > 0 {
                    LOCATION.with(|l| *l.borrow_mut() = location);
                    return;
                }
                let conn = CONN.with(|c| c.borrow().clone());
                match conn {
                    Some(id) => {
                        let payload = info.payload();
                        let what = payload
                            .downcast_ref::<&str>()
                            .copied()
                            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                            .unwrap_or("(no message)");
                        tracing::error!(
                            conn = %id,
                            location = location.as_deref().unwrap_or("?"),
                            "a callback panicked (contained): {what}"
                        );
                    }
                    None => previous(info),
                }
            }));
        });
    }

    /// Runs `f` as a catch that logs its panic itself (see the module docs).
    pub(crate) fn catching<R>(f: impl FnOnce() -> R) -> R {
        struct Guard;
        impl Drop for Guard {
            fn drop(&mut self) {
                CATCHING.with(|c| c.set(c.get() - 1));
            }
        }
        CATCHING.with(|c| c.set(c.get() + 1));
        let _guard = Guard;
        f()
    }

    /// Where the panic just caught was raised, if the hook saw it.
    pub(crate) fn take_location() -> Option<String> {
        LOCATION.with(|l| l.borrow_mut().take())
    }

    /// After a catch that caught nothing: a panic the hook saw inside it was caught deeper (a
    /// callback the app's code ran), and nobody logged it: log it now.
    pub(crate) fn log_swallowed() {
        if let Some(at) = take_location() {
            let conn = CONN.with(|c| c.borrow().clone());
            match conn {
                Some(id) => {
                    tracing::error!(conn = %id, location = %at, "a callback panicked (contained)")
                }
                None => tracing::error!(location = %at, "a callback panicked (contained)"),
            }
        }
    }

    /// A future whose polls run as connection `id`'s code.
    pub(crate) struct OnConn<F> {
        pub(crate) id: ConnId,
        pub(crate) fut: F,
    }

    impl<F: Future> Future for OnConn<F> {
        type Output = F::Output;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            // SAFETY: `fut` is structurally pinned: it is never moved out of `OnConn`, which
            // has no `Drop` and is not `Unpin` unless `F` is; `id` is never pinned.
            #[allow(unsafe_code)]
            let (id, fut) = unsafe {
                let this = self.get_unchecked_mut();
                (&this.id, Pin::new_unchecked(&mut this.fut))
            };
            let outer = CONN.with(|c| c.replace(Some(id.clone())));
            struct Restore(Option<ConnId>);
            impl Drop for Restore {
                fn drop(&mut self) {
                    let outer = self.0.take();
                    CONN.with(|c| *c.borrow_mut() = outer);
                }
            }
            let _restore = Restore(outer);
            fut.poll(cx)
        }
    }
}

/// Catches a panic of the wrapped future, with its message (and where it was raised).
pub(crate) struct CatchUnwind<F>(pub(crate) F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = &mut self.0;
        match panics::catching(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Pin::new(&mut *fut).poll(cx)
            }))
        }) {
            Ok(Poll::Pending) => {
                panics::log_swallowed();
                Poll::Pending
            }
            Ok(Poll::Ready(v)) => {
                panics::log_swallowed();
                Poll::Ready(Ok(v))
            }
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
