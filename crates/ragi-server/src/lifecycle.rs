//! The server-wide connection lifecycle: the listener, the address filter, the error hook and
//! per-connection handles.
//!
//! A [`LifecycleListener`] is told of every connection's changes, in order per connection
//! (possibly concurrently across connections):
//!
//! 1. [`Accepted`] — after the TLS handshake where there is one, and once the protocol is known
//!    (ALPN over TLS; on a cleartext connection its first bytes, which say whether it starts
//!    with the HTTP/2 preface). Returning an error drops the connection without a byte; no
//!    `closed` follows.
//! 2. [`Upgraded`] — the connection (or an HTTP/2 stream) became a WebSocket.
//! 3. [`Closed`] — exactly once per accepted connection, with the reason and counters. Errors
//!    here are logged and swallowed.
//!
//! The [`AddressFilter`] runs before any of this, before an id is given. With no listener set,
//! the server builds no notices at all.
//!
//! ```
//! use ragi_server::lifecycle::{Accepted, Closed, LifecycleListener};
//!
//! struct Log;
//! impl LifecycleListener for Log {
//!     fn accepted(&self, n: &Accepted) -> Result<(), ragi::AppError> {
//!         println!("{} accepted from {}", n.id, n.peer);
//!         Ok(())
//!     }
//!     fn closed(&self, n: &Closed) -> Result<(), ragi::AppError> {
//!         println!("{} closed: {:?} after {} requests", n.id, n.reason, n.requests);
//!         Ok(())
//!     }
//! }
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use ragi::{AppError, BoxFuture, DisconnectReason, TlsInfo};
use tokio::sync::Notify;

/// A connection's id: unique within the server, increasing, short in logs (`c17`, or with a
/// server-chosen prefix).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    n: u64,
    prefix: Arc<str>,
}

impl ConnId {
    pub(crate) fn new(n: u64, prefix: Arc<str>) -> Self {
        Self { n, prefix }
    }

    /// The number.
    pub fn get(&self) -> u64 {
        self.n
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.prefix, self.n)
    }
}

/// A connection was accepted.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Accepted {
    /// Its id.
    pub id: ConnId,
    /// The client's address.
    pub peer: SocketAddr,
    /// The local address.
    pub local: SocketAddr,
    /// TLS facts, on TLS connections.
    pub tls: Option<Arc<TlsInfo>>,
    /// The protocol the connection speaks: `http/1.1` or `h2` (ALPN's choice over TLS; the
    /// HTTP/2 preface, or its absence, on a cleartext connection).
    pub protocol: &'static str,
    /// A handle on the connection: close it, await its end.
    pub handle: ConnectionHandle,
    /// The socket's path when the connection came through a Unix-domain socket (then `peer`
    /// and `local` are the unspecified address `0.0.0.0:0`: a Unix peer has no IP address).
    pub unix_path: Option<Arc<std::path::Path>>,
}

/// A connection (or HTTP/2 stream) became a WebSocket.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Upgraded {
    /// The connection's id.
    pub id: ConnId,
    /// The client's address.
    pub peer: SocketAddr,
    /// The new protocol, e.g. `websocket`.
    pub protocol: String,
    /// On HTTP/2, the stream that was upgraded.
    pub stream: Option<u32>,
}

/// A connection closed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Closed {
    /// Its id.
    pub id: ConnId,
    /// The client's address.
    pub peer: SocketAddr,
    /// Why it closed. `client_closed` when the client's FIN ended it (between requests too:
    /// who closed is worth knowing); `None` when the server closed it cleanly after a
    /// `connection: close` exchange.
    pub reason: Option<DisconnectReason>,
    /// Requests (streams on HTTP/2) it carried.
    pub requests: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// How long it was open.
    pub duration: Duration,
    /// The protocol it spoke: `http/1.1` or `h2`.
    pub protocol: &'static str,
}

/// Told of every connection's changes. See the [module documentation](self). Every method has
/// a default that does nothing.
pub trait LifecycleListener: Send + Sync + 'static {
    /// A connection was accepted. An error drops it without a byte.
    fn accepted(&self, notice: &Accepted) -> Result<(), AppError> {
        let _ = notice;
        Ok(())
    }

    /// A connection or stream was upgraded.
    fn upgraded(&self, notice: &Upgraded) {
        let _ = notice;
    }

    /// A connection closed. Errors are logged and swallowed.
    fn closed(&self, notice: &Closed) -> Result<(), AppError> {
        let _ = notice;
        Ok(())
    }
}

/// What the error hook is told: the server answered an app failure with an error response, or
/// aborted an exchange.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ErrorReport {
    /// The connection.
    pub id: ConnId,
    /// The request line, e.g. `GET /report HTTP/1.1`.
    pub request_line: String,
    /// What went wrong.
    pub error: String,
    /// True when the exchange was aborted (the response had started); false when the server
    /// answered with an error response.
    pub aborted: bool,
}

/// The error hook (manakai's `onexception`): may be async; the connection's
/// [`ConnectionHandle::completed`] waits for it.
pub type ErrorHook = Arc<dyn Fn(ErrorReport) -> BoxFuture<'static, ()> + Send + Sync>;

/// Allow / deny by client address, checked at accept before an id is given. An address is
/// refused if it matches a deny rule, or if allow rules exist and none matches.
#[derive(Clone, Debug, Default)]
pub struct AddressFilter {
    allow: Vec<(IpAddr, u8)>,
    deny: Vec<(IpAddr, u8)>,
}

impl AddressFilter {
    /// An empty filter: every address passes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows a network, `ip` or `ip/prefix`.
    pub fn allow(mut self, net: &str) -> Result<Self, crate::Error> {
        self.allow.push(parse_net(net)?);
        Ok(self)
    }

    /// Denies a network, `ip` or `ip/prefix`.
    pub fn deny(mut self, net: &str) -> Result<Self, crate::Error> {
        self.deny.push(parse_net(net)?);
        Ok(self)
    }

    /// Whether `addr` may connect.
    pub fn permits(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        if self.deny.iter().any(|n| in_net(addr, *n)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| in_net(addr, *n))
    }
}

fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_net(s: &str) -> Result<(IpAddr, u8), crate::Error> {
    let bad = || crate::Error::config(format!("not an address or network: {s:?}"));
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, p)) => (ip, Some(p.parse::<u8>().map_err(|_| bad())?)),
        None => (s, None),
    };
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    if prefix > max {
        return Err(bad());
    }
    Ok((canonical(ip), prefix))
}

fn in_net(addr: IpAddr, (net, prefix): (IpAddr, u8)) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Wakes a connection's driver: [`Notify::notify_one`] for a single waiter (a wake-up given
/// while nobody waits is kept for the next wait), made to be polled on every turn of the
/// driver's loop: a poll neither registers nor removes a waiter in a list, it compares the
/// stored waker.
#[derive(Default)]
pub(crate) struct DriverWake {
    /// A wake-up given and not yet taken.
    pending: AtomicBool,
    /// A waker is stored (a notifier must take and wake it).
    waiting: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl DriverWake {
    /// Wakes the waiter, or keeps the wake-up for the next wait.
    pub(crate) fn notify_one(&self) {
        // SeqCst on both flags: either this sees `waiting` set by a poll, or that poll's second
        // look at `pending` sees this wake-up.
        self.pending.store(true, Ordering::SeqCst);
        // Whoever clears `waiting` takes the waker: exactly one wake per registration.
        if self.waiting.load(Ordering::SeqCst) && self.waiting.swap(false, Ordering::SeqCst) {
            let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// Ready once a wake-up was given since the last one taken.
    pub(crate) fn poll_notified(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_notified_with(cx, &mut None)
    }

    /// [`DriverWake::poll_notified`] for a caller that polls on every turn of its loop:
    /// `mine` keeps the waker it registered last. While that registration stands (no
    /// notifier took it) and the waker is the same, a poll that finds no wake-up is two plain
    /// loads, no lock and no atomic read-modify-write.
    pub(crate) fn poll_notified_with(
        &self,
        cx: &mut Context<'_>,
        mine: &mut Option<Waker>,
    ) -> Poll<()> {
        if self.pending.load(Ordering::Relaxed) && self.pending.swap(false, Ordering::SeqCst) {
            self.waiting.store(false, Ordering::SeqCst);
            return Poll::Ready(());
        }
        // Still registered: a notifier that comes now finds `waiting` set and wakes us; one
        // that came since the load above cleared it, and we register below.
        if self.waiting.load(Ordering::SeqCst)
            && mine.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        {
            let mut slot = self.waker.lock().unwrap_or_else(|e| e.into_inner());
            match &mut *slot {
                Some(w) if w.will_wake(cx.waker()) => {}
                other => *other = Some(cx.waker().clone()),
            }
        }
        if !mine.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *mine = Some(cx.waker().clone());
        }
        self.waiting.store(true, Ordering::SeqCst);
        if self.pending.swap(false, Ordering::SeqCst) {
            self.waiting.store(false, Ordering::SeqCst);
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Waits for a wake-up (or takes the one kept). Cancel safe: a wake-up is taken only when
    /// this completes.
    pub(crate) async fn notified(&self) {
        std::future::poll_fn(|cx| self.poll_notified(cx)).await
    }
}

/// State shared by a connection's driver, its app tasks and its handles.
pub(crate) struct ConnShared {
    pub(crate) id: ConnId,
    /// Wakes the driver: app output, body consumed, close requested.
    pub(crate) wake: DriverWake,
    /// `close_after_current_response` was called: the abort deadline.
    pub(crate) close_request: Mutex<Option<Instant>>,
    pub(crate) close_requested: AtomicBool,
    /// Live app tasks and hooks, plus one for the driver while the socket is open.
    live: AtomicUsize,
    done: Notify,
}

impl ConnShared {
    pub(crate) fn new(id: ConnId) -> Arc<Self> {
        Arc::new(Self {
            id,
            wake: DriverWake::default(),
            close_request: Mutex::new(None),
            close_requested: AtomicBool::new(false),
            live: AtomicUsize::new(1),
            done: Notify::new(),
        })
    }

    /// A task (app, hook) starts; it must call [`ConnShared::task_done`].
    pub(crate) fn task_started(&self) {
        self.live.fetch_add(1, Ordering::AcqRel);
    }

    /// A task, or the driver, finished.
    pub(crate) fn task_done(&self) {
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_waiters();
        }
    }

    pub(crate) fn close_deadline(&self) -> Option<Instant> {
        if !self.close_requested.load(Ordering::Acquire) {
            return None;
        }
        *self.close_request.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A handle on one connection, given in the [`Accepted`] notice.
#[derive(Clone)]
pub struct ConnectionHandle {
    shared: Arc<ConnShared>,
}

impl ConnectionHandle {
    pub(crate) fn new(shared: Arc<ConnShared>) -> Self {
        Self { shared }
    }

    /// The connection's id.
    pub fn id(&self) -> &ConnId {
        &self.shared.id
    }

    /// Closes the connection now if it is idle, after its current response if it is busy, and
    /// aborts it (reason `server_shutdown`) if that response has not finished within `timeout`.
    pub fn close_after_current_response(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        {
            let mut c = self
                .shared
                .close_request
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            *c = Some(c.map_or(deadline, |d| d.min(deadline)));
        }
        self.shared.close_requested.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }

    /// Whether the connection is closed and every app task it started has finished.
    pub fn is_completed(&self) -> bool {
        self.shared.live.load(Ordering::Acquire) == 0
    }

    /// Resolves when the connection is closed and every app task (and error hook) it started
    /// has finished. Cancel safe.
    pub async fn completed(&self) {
        loop {
            let notified = self.shared.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_completed() {
                return;
            }
            notified.await;
        }
    }
}

impl fmt::Debug for ConnectionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionHandle")
            .field("id", &self.shared.id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_allow_and_deny() {
        let f = AddressFilter::new()
            .allow("127.0.0.0/8")
            .unwrap()
            .deny("127.0.0.2")
            .unwrap();
        assert!(f.permits("127.0.0.1".parse().unwrap()));
        assert!(!f.permits("127.0.0.2".parse().unwrap()));
        assert!(!f.permits("10.0.0.1".parse().unwrap()));
        assert!(f.permits("::ffff:127.0.0.1".parse().unwrap()));
        assert!(AddressFilter::new().allow("300.1.1.1").is_err());
        assert!(AddressFilter::new().permits("::1".parse().unwrap()));
    }

    /// Counts its wake-ups.
    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_kept_registration_is_woken_and_renewed_after_each_wake() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let w = DriverWake::default();
        let mut mine = None;
        // Registers; the next polls find the registration standing.
        assert!(w.poll_notified_with(&mut cx, &mut mine).is_pending());
        assert!(w.poll_notified_with(&mut cx, &mut mine).is_pending());
        assert!(w.poll_notified_with(&mut cx, &mut mine).is_pending());
        // A notifier takes the registration and wakes once.
        w.notify_one();
        w.notify_one();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(w.poll_notified_with(&mut cx, &mut mine).is_ready());
        // Registered anew on the next wait, so the next wake-up wakes again.
        assert!(w.poll_notified_with(&mut cx, &mut mine).is_pending());
        w.notify_one();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        // Another waker (the task moved): registered instead of the kept one.
        let other = Arc::new(Count(AtomicUsize::new(0)));
        let other_waker = Waker::from(other.clone());
        let mut other_cx = Context::from_waker(&other_waker);
        assert!(w.poll_notified_with(&mut other_cx, &mut mine).is_ready());
        assert!(w.poll_notified_with(&mut other_cx, &mut mine).is_pending());
        w.notify_one();
        assert_eq!(other.0.load(Ordering::SeqCst), 1);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn driver_wake_keeps_one_wake_up_and_wakes_a_waiter() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let w = DriverWake::default();
        // Given while nobody waits: kept (once) for the next wait.
        w.notify_one();
        w.notify_one();
        assert!(w.poll_notified(&mut cx).is_ready());
        assert!(w.poll_notified(&mut cx).is_pending());
        assert!(w.poll_notified(&mut cx).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        // Given while waiting: wakes the waiter once, and the next poll takes it.
        w.notify_one();
        w.notify_one();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(w.poll_notified(&mut cx).is_ready());
        // Taken: no waiter registered, so a wake-up is only kept.
        w.notify_one();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(w.poll_notified(&mut cx).is_ready());
    }
}
