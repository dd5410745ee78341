//! The per-request connection object: is the client still there, and if not, why.
//!
//! Every HTTP request (every stream on HTTP/2), WebSocket session and SSE stream carries a
//! [`Connection`] in its scope. The server updates it the moment it learns that the client is
//! gone, in whatever state the exchange is: while the app awaits something unrelated, while the
//! request body sits unread, while a pipelined request waits, while a response streams. The app
//! reads it without touching its receive queue.
//!
//! # Lifecycle
//!
//! An object starts *open*. It ends exactly once, in one of two ways:
//!
//! * **completed** — the response was fully delivered. [`Connection::on_complete`] callbacks
//!   run; [`Connection::disconnect_reason`] stays `None`; [`Connection::disconnected`] never
//!   resolves.
//! * **disconnected** — the exchange ended abnormally. In this order: (1)
//!   [`Connection::is_connected`] turns false, (2) the reason is set, (3)
//!   [`Connection::disconnected`] resolves with it, (4) [`Connection::on_disconnect`] callbacks
//!   run in registration order, (5) the server queues a `Disconnect` event for `receive`.
//!
//! Exactly one of `on_complete` / `on_disconnect` fires. A callback registered after the end
//! it waits for runs at once; a callback that panics does not stop the others.
//!
//! # Example
//!
//! ```
//! use ragi::{Connection, DisconnectReason};
//!
//! # tokio_test_block_on(async {
//! let (conn, control) = Connection::pair();
//! assert!(conn.is_connected());
//!
//! let watcher = conn.clone();
//! let task = tokio::spawn(async move { watcher.disconnected().await });
//!
//! control.disconnect(DisconnectReason::ClientClosed);
//! assert!(!conn.is_connected());
//! assert_eq!(conn.disconnect_reason(), Some(DisconnectReason::ClientClosed));
//! assert_eq!(task.await.unwrap(), DisconnectReason::ClientClosed);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```
//!
//! # Cancel safety
//!
//! [`Connection::disconnected`] is cancel safe: dropping the future loses nothing; a new call
//! sees the same reason.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::DisconnectReason;

type DisconnectCallback = Box<dyn FnOnce(&DisconnectReason) + Send>;
type CompleteCallback = Box<dyn FnOnce() + Send>;

/// The state of one request (or stream, or session) as the server sees it. See the
/// [module documentation](self).
///
/// Cheap to clone; every clone sees the same state. `Send + Sync`.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

/// The server's side of a [`Connection`]: the only handle that can end it.
///
/// Apps receive the [`Connection`]; servers, test clients and protocol adapters keep this.
pub struct ConnectionControl {
    inner: Arc<Inner>,
}

struct Inner {
    connected: AtomicBool,
    response_started: AtomicBool,
    response_complete: AtomicBool,
    /// Held only for a few field updates (callbacks run, and are dropped, outside it), so a
    /// spin lock: its release is a plain store, where `std::sync::Mutex` needs another atomic
    /// read-modify-write. A waiter yields its thread.
    state: spin::mutex::SpinMutex<Shared, spin::relax::Yield>,
    notify: Notify,
}

enum Outcome {
    Open,
    Completed,
    Disconnected(DisconnectReason),
}

struct Shared {
    outcome: Outcome,
    /// Some `disconnected()` future registered interest (so an end must wake it).
    waiters: bool,
    on_disconnect: Vec<DisconnectCallback>,
    on_complete: Vec<CompleteCallback>,
}

impl Shared {
    /// An open object's state: no outcome, no waiter, no callback.
    fn open() -> Self {
        Self {
            outcome: Outcome::Open,
            waiters: false,
            on_disconnect: Vec::new(),
            on_complete: Vec::new(),
        }
    }
}

impl Inner {
    fn lock(&self) -> spin::mutex::SpinMutexGuard<'_, Shared> {
        self.state.lock()
    }

    /// The object itself when `arc` is its only handle: [`Arc::get_mut`] without the
    /// compare-and-swap that `get_mut` spends on locking out `Weak` upgrades (an atomic
    /// read-modify-write, a few nanoseconds, on every request of a recycling server).
    ///
    /// This module never makes a `Weak<Inner>` (nothing calls `Arc::downgrade` on it, and the
    /// `Arc` never leaves the module), so the strong count alone says who can reach the object.
    #[allow(unsafe_code)]
    fn unique(arc: &mut Arc<Inner>) -> Option<&mut Inner> {
        if Arc::strong_count(arc) != 1 {
            return None;
        }
        debug_assert_eq!(Arc::weak_count(arc), 0, "Inner is never downgraded");
        // Pairs with the `Release` decrement of every other handle's drop (the count we read
        // was written by the last of them): their uses of the object happen before ours.
        std::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: the strong count is 1 and that handle is `arc`, which we borrow mutably, so
        // no other `Arc` exists and no `&Inner` derived from `arc` is alive; no `Weak` exists
        // (see above), so no other thread can make a new handle either: this is the only
        // reference for as long as the borrow of `arc` lasts. The fence above makes every
        // earlier access by other threads happen before ours. `Arc::as_ptr` points at the
        // value inside the allocation, with the provenance of the `Arc`'s own pointer (the one
        // `Arc::get_mut` writes through).
        Some(unsafe { &mut *Arc::as_ptr(arc).cast_mut() })
    }
}

fn run_isolated(f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        // The panic message was already printed by the panic hook; go on with the others.
    }
}

impl Connection {
    /// A new open object and the control handle that ends it.
    pub fn pair() -> (Connection, ConnectionControl) {
        let inner = Arc::new(Inner {
            connected: AtomicBool::new(true),
            response_started: AtomicBool::new(false),
            response_complete: AtomicBool::new(false),
            state: spin::mutex::SpinMutex::new(Shared::open()),
            notify: Notify::new(),
        });
        (
            Connection {
                inner: inner.clone(),
            },
            ConnectionControl { inner },
        )
    }

    /// An object with no client behind it (lifespan scopes, tests): open forever.
    pub fn detached() -> Connection {
        Self::pair().0
    }

    /// Whether the client is still there. Synchronous and non-destructive; one-way: once false,
    /// never true again. Stays true after a clean completion.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// The reason of an abnormal end; `None` while open and after a clean completion.
    pub fn disconnect_reason(&self) -> Option<DisconnectReason> {
        if self.is_connected() {
            return None;
        }
        match &self.inner.lock().outcome {
            Outcome::Disconnected(r) => Some(r.clone()),
            _ => None,
        }
    }

    /// Whether the exchange completed cleanly (the response was fully delivered).
    pub fn is_completed(&self) -> bool {
        matches!(self.inner.lock().outcome, Outcome::Completed)
    }

    /// Resolves with the reason when the exchange ends abnormally; never resolves after a clean
    /// completion. Race-free: a waiter created before or after the end cannot miss it.
    pub async fn disconnected(&self) -> DisconnectReason {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            let completed = {
                let mut st = self.inner.lock();
                match &st.outcome {
                    Outcome::Disconnected(r) => return r.clone(),
                    Outcome::Completed => true,
                    Outcome::Open => {
                        // Register interest while the lock is held, so that an end recorded
                        // after we release it wakes this waiter (quinn's `closed()` pattern).
                        notified.as_mut().enable();
                        st.waiters = true;
                        false
                    }
                }
            };
            if completed {
                return std::future::pending().await;
            }
            notified.await;
        }
    }

    /// Calls `callback` with the reason when the exchange ends abnormally, in registration
    /// order. Registered after such an end: called at once. After a clean completion: never.
    pub fn on_disconnect<F>(&self, callback: F)
    where
        F: FnOnce(&DisconnectReason) + Send + 'static,
    {
        let mut st = self.inner.lock();
        match &st.outcome {
            Outcome::Open => st.on_disconnect.push(Box::new(callback)),
            Outcome::Completed => {}
            Outcome::Disconnected(r) => {
                let r = r.clone();
                drop(st);
                run_isolated(|| callback(&r));
            }
        }
    }

    /// Calls `callback` once the response was fully delivered. Registered after that: called
    /// at once. After an abnormal end: never.
    pub fn on_complete<F>(&self, callback: F)
    where
        F: FnOnce() + Send + 'static,
    {
        let mut st = self.inner.lock();
        match &st.outcome {
            Outcome::Open => st.on_complete.push(Box::new(callback)),
            Outcome::Disconnected(_) => {}
            Outcome::Completed => {
                drop(st);
                run_isolated(callback);
            }
        }
    }

    /// True once a response start was emitted for this request, by anyone (app, middleware,
    /// server backstop).
    pub fn response_started(&self) -> bool {
        self.inner.response_started.load(Ordering::Acquire)
    }

    /// True once the final body chunk or trailers were written.
    pub fn response_complete(&self) -> bool {
        self.inner.response_complete.load(Ordering::Acquire)
    }

    /// Whether two handles refer to the same object.
    pub fn ptr_eq(&self, other: &Connection) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl ConnectionControl {
    /// A [`Connection`] handle for this object.
    pub fn connection(&self) -> Connection {
        Connection {
            inner: self.inner.clone(),
        }
    }

    /// Ends the object abnormally with `reason`, following the documented order (steps 1–4;
    /// the caller queues the `Disconnect` event, step 5). Returns false, doing nothing, if the
    /// object had already ended (either way).
    pub fn disconnect(&self, reason: DisconnectReason) -> bool {
        let callbacks = {
            let mut st = self.inner.lock();
            if !matches!(st.outcome, Outcome::Open) {
                return false;
            }
            self.inner.connected.store(false, Ordering::Release);
            st.outcome = Outcome::Disconnected(reason.clone());
            let unused = std::mem::take(&mut st.on_complete);
            (std::mem::take(&mut st.on_disconnect), st.waiters, unused)
        };
        // The other kind's callbacks are dropped here, outside the lock: their drop may touch
        // this object.
        let (callbacks, waiters, _unused) = callbacks;
        if waiters {
            self.inner.notify.notify_waiters();
        }
        for cb in callbacks {
            run_isolated(|| cb(&reason));
        }
        true
    }

    /// Records that a response start was emitted.
    pub fn set_response_started(&self) {
        self.inner.response_started.store(true, Ordering::Release);
    }

    /// Records that the response was fully delivered and runs the `on_complete` callbacks.
    /// Returns false, doing nothing, if the object had already ended.
    pub fn complete(&self) -> bool {
        let callbacks = {
            let mut st = self.inner.lock();
            if !matches!(st.outcome, Outcome::Open) {
                return false;
            }
            self.inner.response_complete.store(true, Ordering::Release);
            st.outcome = Outcome::Completed;
            let unused = std::mem::take(&mut st.on_disconnect);
            (std::mem::take(&mut st.on_complete), st.waiters, unused)
        };
        let (callbacks, waiters, _unused) = callbacks;
        // Waiters of `disconnected()` re-check and park forever; wake them so they do.
        if waiters {
            self.inner.notify.notify_waiters();
        }
        for cb in callbacks {
            run_isolated(cb);
        }
        true
    }

    /// [`complete`](Self::complete) for a caller that owns the control outright: when no
    /// [`Connection`] handle is left, nobody can watch the change, and the object's lock is
    /// not needed (one atomic read-modify-write less per request).
    pub fn complete_owned(&mut self) -> bool {
        let Some(inner) = Inner::unique(&mut self.inner) else {
            return self.complete();
        };
        let st = inner.state.get_mut();
        if !matches!(st.outcome, Outcome::Open) {
            return false;
        }
        *inner.response_complete.get_mut() = true;
        st.outcome = Outcome::Completed;
        // No handle, so no `disconnected()` future is waiting.
        let callbacks = std::mem::take(&mut st.on_complete);
        if !st.on_disconnect.is_empty() {
            st.on_disconnect.clear();
        }
        for cb in callbacks {
            run_isolated(cb);
        }
        true
    }

    /// Whether the object is still open (neither completed nor disconnected).
    pub fn is_open(&self) -> bool {
        matches!(self.inner.lock().outcome, Outcome::Open)
    }

    /// Turns this control into the control of a new, open object and returns the object's
    /// first handle, when no [`Connection`] handle of the old object is left (nobody can tell
    /// the difference from [`Connection::pair`]); `None`, changing nothing, otherwise. A server
    /// that recycles its per-request state saves an allocation per request with it.
    pub fn reuse(&mut self) -> Option<Connection> {
        let inner = Inner::unique(&mut self.inner)?;
        *inner.connected.get_mut() = true;
        *inner.response_started.get_mut() = false;
        *inner.response_complete.get_mut() = false;
        // Field by field, not `Shared::open()`: assigning would drop the old state's vectors
        // on every request, and they are empty once an object has ended.
        let st = inner.state.get_mut();
        st.outcome = Outcome::Open;
        st.waiters = false;
        if !st.on_disconnect.is_empty() {
            st.on_disconnect.clear();
        }
        if !st.on_complete.is_empty() {
            st.on_complete.clear();
        }
        Some(self.connection())
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("connected", &self.is_connected())
            .field("reason", &self.disconnect_reason())
            .field("response_started", &self.response_started())
            .field("response_complete", &self.response_complete())
            .finish()
    }
}

impl fmt::Debug for ConnectionControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConnectionControl")
            .field(&self.connection())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;
    use std::time::Duration;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn is_connected_is_one_way() {
        let (conn, control) = Connection::pair();
        assert!(conn.is_connected());
        assert!(control.disconnect(DisconnectReason::ClientClosed));
        assert!(!conn.is_connected());
        // A second end, of either kind, changes nothing.
        assert!(!control.disconnect(DisconnectReason::ReadError));
        assert!(!control.complete());
        assert!(!conn.is_connected());
        assert_eq!(
            conn.disconnect_reason(),
            Some(DisconnectReason::ClientClosed)
        );
        assert!(!conn.response_complete());
    }

    #[test]
    fn clean_completion_has_no_reason() {
        let (conn, control) = Connection::pair();
        control.set_response_started();
        assert!(conn.response_started());
        assert!(control.complete());
        assert!(conn.is_connected());
        assert!(conn.response_complete());
        assert_eq!(conn.disconnect_reason(), None);
        assert!(!control.disconnect(DisconnectReason::ClientClosed));
        assert!(conn.is_connected());
    }

    #[test]
    fn exactly_one_of_complete_or_disconnect_fires() {
        for disconnect_first in [true, false] {
            let (conn, control) = Connection::pair();
            let completes = Arc::new(AtomicUsize::new(0));
            let disconnects = Arc::new(AtomicUsize::new(0));
            for _ in 0..3 {
                let c = completes.clone();
                conn.on_complete(move || {
                    c.fetch_add(1, Ordering::SeqCst);
                });
                let d = disconnects.clone();
                conn.on_disconnect(move |_| {
                    d.fetch_add(1, Ordering::SeqCst);
                });
            }
            if disconnect_first {
                control.disconnect(DisconnectReason::WriteError);
                control.complete();
            } else {
                control.complete();
                control.disconnect(DisconnectReason::WriteError);
            }
            // Late registrations follow the same rule.
            let c = completes.clone();
            conn.on_complete(move || {
                c.fetch_add(1, Ordering::SeqCst);
            });
            let d = disconnects.clone();
            conn.on_disconnect(move |_| {
                d.fetch_add(1, Ordering::SeqCst);
            });
            let (c, d) = (
                completes.load(Ordering::SeqCst),
                disconnects.load(Ordering::SeqCst),
            );
            if disconnect_first {
                assert_eq!((c, d), (0, 4));
            } else {
                assert_eq!((c, d), (4, 0));
            }
        }
    }

    #[test]
    fn late_registration_is_called_at_once_with_the_reason() {
        let (conn, control) = Connection::pair();
        control.disconnect(DisconnectReason::KeepaliveTimeout);
        let seen = Arc::new(Mutex::new(None));
        let s = seen.clone();
        conn.on_disconnect(move |r| *s.lock().unwrap() = Some(r.clone()));
        assert_eq!(
            *seen.lock().unwrap(),
            Some(DisconnectReason::KeepaliveTimeout)
        );
    }

    #[test]
    fn callbacks_run_in_order_and_a_panic_does_not_stop_the_others() {
        let (conn, control) = Connection::pair();
        let order = Arc::new(Mutex::new(Vec::new()));
        for i in 0..4 {
            let o = order.clone();
            conn.on_disconnect(move |r| {
                assert_eq!(*r, DisconnectReason::ClientClosed);
                if i == 1 {
                    panic!("callback {i} fails on purpose");
                }
                o.lock().unwrap().push(i);
            });
        }
        control.disconnect(DisconnectReason::ClientClosed);
        assert_eq!(*order.lock().unwrap(), vec![0, 2, 3]);

        let (conn, control) = Connection::pair();
        let ran = Arc::new(AtomicUsize::new(0));
        conn.on_complete(|| panic!("first completion callback fails on purpose"));
        let r = ran.clone();
        conn.on_complete(move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        control.complete();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn callbacks_see_the_state_already_changed() {
        let (conn, control) = Connection::pair();
        let c2 = conn.clone();
        let seen = Arc::new(Mutex::new(None));
        let s = seen.clone();
        conn.on_disconnect(move |_| {
            *s.lock().unwrap() = Some((c2.is_connected(), c2.disconnect_reason()));
        });
        control.disconnect(DisconnectReason::ReadError);
        assert_eq!(
            *seen.lock().unwrap(),
            Some((false, Some(DisconnectReason::ReadError)))
        );
    }

    #[test]
    fn the_future_resolves_with_the_reason_before_and_after() {
        rt().block_on(async {
            let (conn, control) = Connection::pair();
            let early = {
                let c = conn.clone();
                tokio::spawn(async move { c.disconnected().await })
            };
            tokio::task::yield_now().await;
            control.disconnect(DisconnectReason::WriteTimeout);
            assert_eq!(early.await.unwrap(), DisconnectReason::WriteTimeout);
            // Registered after the end: resolves at once.
            let late = tokio::time::timeout(Duration::from_secs(1), conn.disconnected()).await;
            assert_eq!(late.unwrap(), DisconnectReason::WriteTimeout);
        });
    }

    #[test]
    fn the_future_never_resolves_after_completion() {
        rt().block_on(async {
            let (conn, control) = Connection::pair();
            let waiter = {
                let c = conn.clone();
                tokio::spawn(async move { c.disconnected().await })
            };
            tokio::task::yield_now().await;
            control.complete();
            let r = tokio::time::timeout(Duration::from_millis(50), waiter).await;
            assert!(
                r.is_err(),
                "disconnected() resolved after a clean completion"
            );
        });
    }

    #[test]
    fn reuse_needs_the_last_handle_and_starts_over() {
        let (conn, mut control) = Connection::pair();
        conn.on_complete(|| {});
        control.set_response_started();
        control.complete();
        // A handle is left: no reuse, nothing changes.
        assert!(control.reuse().is_none());
        assert!(conn.response_complete());
        drop(conn);
        let fresh = control.reuse().expect("no handle left");
        assert!(fresh.is_connected() && control.is_open());
        assert!(!fresh.response_started() && !fresh.response_complete());
        assert_eq!(fresh.disconnect_reason(), None);
        // The renewed object ends like a new one, callbacks included.
        let seen = Arc::new(Mutex::new(None));
        let s = seen.clone();
        fresh.on_disconnect(move |r| *s.lock().unwrap() = Some(r.clone()));
        assert!(control.disconnect(DisconnectReason::ReadError));
        assert_eq!(*seen.lock().unwrap(), Some(DisconnectReason::ReadError));
        assert_eq!(fresh.disconnect_reason(), Some(DisconnectReason::ReadError));
    }

    #[test]
    fn complete_owned_ends_the_object_like_complete() {
        // With a handle left, it is `complete`: the handle sees the end.
        let (conn, mut control) = Connection::pair();
        let done = Arc::new(Mutex::new(0));
        let d = done.clone();
        conn.on_complete(move || *d.lock().unwrap() += 1);
        assert!(control.complete_owned());
        assert!(conn.response_complete() && !control.is_open());
        assert!(!control.complete_owned() && !control.complete());
        assert!(!control.disconnect(DisconnectReason::ReadError));
        assert_eq!(conn.disconnect_reason(), None);
        assert_eq!(*done.lock().unwrap(), 1);

        // With no handle left: callbacks registered earlier still run (once), the unused
        // `on_disconnect` ones never, and the object ends all the same.
        let (conn, mut control) = Connection::pair();
        let d = done.clone();
        conn.on_complete(move || *d.lock().unwrap() += 1);
        conn.on_complete(|| panic!("a panicking callback does not stop the others"));
        let d = done.clone();
        conn.on_complete(move || *d.lock().unwrap() += 10);
        let hit = Arc::new(Mutex::new(false));
        let h = hit.clone();
        conn.on_disconnect(move |_| *h.lock().unwrap() = true);
        drop(conn);
        assert!(control.complete_owned());
        assert!(!control.is_open());
        assert!(!control.complete_owned() && !control.complete());
        assert!(!control.disconnect(DisconnectReason::ReadError));
        assert_eq!(*done.lock().unwrap(), 12);
        assert!(!*hit.lock().unwrap());
        // And it is ready for reuse, open again.
        let fresh = control.reuse().expect("no handle left");
        assert!(fresh.is_connected() && control.is_open() && !fresh.response_complete());
    }

    #[test]
    fn many_racing_waiters_all_wake() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for _ in 0..200 {
                let (conn, control) = Connection::pair();
                let waiters: Vec<_> = (0..8)
                    .map(|_| {
                        let c = conn.clone();
                        tokio::spawn(async move { c.disconnected().await })
                    })
                    .collect();
                let t =
                    tokio::spawn(async move { control.disconnect(DisconnectReason::ReadError) });
                for w in waiters {
                    let r = tokio::time::timeout(Duration::from_secs(2), w).await;
                    assert_eq!(r.unwrap().unwrap(), DisconnectReason::ReadError);
                }
                t.await.unwrap();
            }
        });
    }
}
