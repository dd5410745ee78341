//! The HTTP/1.1 connection driver: one task per connection that owns the socket.
//!
//! The driver reads ahead, parses heads and bodies ([`crate::proto::h1`]), starts one app call
//! per request ([`crate::exchange`]), writes what the app sends, and — the point of ragi —
//! keeps watching the socket in every state, so that the request's
//! [`Connection`](ragi::Connection) learns at once that the client left:
//!
//! * **reading ahead**: while the app works, the driver keeps reading the request body into a
//!   bounded queue (and, once the body is complete, pipelined bytes into its buffer), so a FIN
//!   (`client_closed`) or an RST (`read_error`) behind them is seen by the read itself;
//! * **watching without reading**: once the queue is full because the app does not read, the
//!   driver stops reading and asks the kernel instead. A FIN sets EPOLLRDHUP and an RST sets
//!   EPOLLERR/EPOLLHUP even while unread bytes are queued; tokio reports them as
//!   [`Ready::is_read_closed`](tokio::io::Ready::is_read_closed) and
//!   [`Ready::is_error`](tokio::io::Ready::is_error), and `SO_ERROR` tells an RST from a FIN.
//!   Plain readability is cleared (`try_io` returning `WouldBlock`) so that the next edge wakes
//!   the driver again;
//! * **writing**: a failed write ends the exchange with `write_error`; a client that takes no
//!   bytes for the write timeout ends it with `write_timeout`.
//!
//! **The physical limit.** A FIN queued behind body bytes that no longer fit in the server's
//! kernel receive window never leaves the client's machine, so no server can see it until it
//! reads; measured on loopback, a FIN behind up to ~100 KiB of unread body is seen at once, one
//! behind 200 KiB or more is not (the kernel's receive buffer is the bound, not ragi's
//! read-ahead). An RST is always seen: it needs no window.
//!
//! **Pipelining.** The next head is parsed only after the current response is fully queued,
//! so answers go out in order; bytes behind it are still read (up to the read-ahead size) so
//! that a FIN behind them is seen. A fast app answers within its first poll, inline, so the
//! answers to a burst of pipelined requests leave in one write.
//!
//! **Timers.** One timer per connection, re-armed by state: idle before the first request,
//! keep-alive between requests, read stall while a head or body is awaited, write stall while
//! output waits, the linger after a server-made close, and a requested close's deadline. Each
//! ends with the reason that names it.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::net::Stream;
use bytes::{Bytes, BytesMut};
use ragi::{Connection, DisconnectReason, Scope, ScopeKind};
use tokio::io::{Interest, Ready};
use tokio::sync::watch;

use crate::access_log::{self, AccessEntry};
use crate::exchange::{run_app, AppOutcome, Exchange};
use crate::lifecycle::{Closed, ConnShared, ErrorReport};
use crate::proto::h1::body::{BodyDecoder, Decoded};
use crate::proto::h1::request::{self, BodyFraming, Parsed, RequestHead};
use crate::proto::h1::response::{simple_response, OutQueue, ResponseContext, ResponseEncoder};
use crate::server::{Phase, ServerShared};
use crate::tls::TlsSession;

thread_local! {
    /// Where idle connections read their first bytes (see `Driver::on_ready`).
    static SCRATCH: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0u8; 16 * 1024].into_boxed_slice());
}

/// How long a server-made close keeps reading (and discarding) so that the client gets the
/// response instead of a reset caused by its own unread bytes.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes discarded while lingering or draining an unread body.
const DRAIN_LIMIT: u64 = 256 * 1024;
/// Most finished exchanges kept for reuse: enough for a burst of 8 pipelined requests, whose
/// exchanges all wait for the same write.
const SPARE_EXCHANGES: usize = 8;
/// The read buffer an idle connection's first read makes, kept between requests.
const SMALL_RBUF: usize = 1024;

struct Active {
    ex: Arc<Exchange>,
    decoder: BodyDecoder,
    body_received: u64,
    head_at: Instant,
    /// The request's head; its first `line_len` bytes are the request line (the error hook's).
    request_head: Bytes,
    line_len: usize,
    log: Option<Box<AccessEntry>>,
    head_request: bool,
    /// An SSE stream: told at once when graceful shutdown starts.
    sse: bool,
}

/// An exchange whose response is fully queued, waiting for its last byte to be written.
struct Pending {
    mark: u64,
    ex: Arc<Exchange>,
    log: Option<Box<AccessEntry>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closing {
    /// Write what is queued, send FIN, read and discard for a moment, then close.
    AfterFlush,
    /// Close now.
    Now,
}

#[derive(Clone, Copy, Debug)]
enum Timer {
    Idle,
    Keepalive,
    Read,
    Write,
    Linger,
    CloseRequest,
}

enum Wake {
    Io(io::Result<Ready>),
    Notified,
    Phase,
    Timer,
}

/// The waker the driver's kept futures (the phase's change notice, the timer) are polled with.
///
/// The driver's wait is hand-written so that a turn does not poll (and re-register) futures
/// whose registration still stands. But a registration stands only until its waker is called,
/// and that is not always when the future is ready: a `watch` receiver's `changed()` is woken
/// by a `send` that is still notifying when it registers (the value it already saw), and any
/// tokio future out of coop budget returns `Pending` with a wake-up instead of registering. A
/// turn that then skipped the future would never register it again: a lost wake-up (graceful
/// shutdown's abort missed, a timer that never fires). So the kept futures are polled with
/// this waker, which records that it was called before it wakes the task: the driver polls
/// them again exactly then.
#[derive(Default)]
struct KeptWaker {
    woken: std::sync::atomic::AtomicBool,
    task: std::sync::Mutex<Option<std::task::Waker>>,
}

impl KeptWaker {
    /// Wakes `waker` from now on.
    fn set_task(&self, waker: &std::task::Waker) {
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(waker.clone());
    }

    /// Whether the waker was called since the last time this said so.
    fn take(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.woken.load(Ordering::Relaxed) && self.woken.swap(false, Ordering::AcqRel)
    }
}

impl std::task::Wake for KeptWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Recorded before the task is woken: the poll that wake-up causes sees it.
        self.woken.store(true, std::sync::atomic::Ordering::SeqCst);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(w) = task {
            w.wake();
        }
    }
}

pub(crate) struct Driver {
    io: Stream,
    srv: Arc<ServerShared>,
    conn: Arc<ConnShared>,
    peer: SocketAddr,
    local: SocketAddr,
    /// A Unix-domain connection: no IP addresses for the scope.
    unix: bool,
    phase: watch::Receiver<Phase>,
    rbuf: BytesMut,
    /// `rbuf` is the small buffer an idle connection's first read made (at most
    /// [`SMALL_RBUF`]): it is kept between requests, while a larger one is given back.
    rbuf_small: bool,
    wq: OutQueue,
    queued_total: u64,
    written_total: u64,
    cur: Option<Active>,
    pending: std::collections::VecDeque<Pending>,
    /// Leftover request body to discard before the next head.
    draining: Option<BodyDecoder>,
    drained: u64,
    closing: Option<Closing>,
    fin_sent: bool,
    linger_until: Option<Instant>,
    read_eof: bool,
    /// Finished exchanges that nothing else refers to, ready for the next requests (see
    /// [`Exchange::reuse`]); at most [`SPARE_EXCHANGES`].
    spare: Vec<Arc<Exchange>>,
    /// Shutdown or a requested close found the connection idle and looked for bytes once.
    looked_on_close: bool,
    /// TLS: the session (plaintext in `rbuf`, ciphertext in `wq`) and its facts.
    tls: Option<Box<TlsSession>>,
    tls_info: Option<Arc<ragi::TlsInfo>>,
    /// Readability was cleared while watching without reading, though bytes may be queued:
    /// the next time reading is allowed, read without waiting for an edge that may never come
    /// (the client is blocked on our full receive window).
    readable_unknown: bool,
    write_blocked: bool,
    reason: Option<DisconnectReason>,
    requests: u64,
    bytes_in: u64,
    accepted_at: Instant,
    last_read: Instant,
    /// `last_read`, while the loop has not waited since that read: a response made now may be
    /// dated by it (see [`crate::date::with_date_line_at`]).
    fresh_read: Option<Instant>,
    /// When the current write stall began (output waiting, the socket not writable).
    stall_start: Option<Instant>,
    last_done: Instant,
    head_started: Option<Instant>,
    shutting_down: bool,
    /// The current minimum-rate window (see [`Config::min_request_rate`]): what is awaited
    /// (the request count, and whether a head, a body or a drain), since when, and `bytes_in`
    /// then.
    ///
    /// [`Config::min_request_rate`]: crate::Config::min_request_rate
    rate_window: Option<((u64, u8), Instant, u64)>,
    /// The connection timed out: reset it rather than close it gracefully (when configured).
    reset_on_close: bool,
    /// A WebSocket handshake arrived: once the output is written, the connection leaves this
    /// driver for [`crate::ws`].
    upgrade: Option<(RequestHead, String)>,
}

/// How an HTTP/1.1 connection left the driver.
pub(crate) enum H1End {
    /// It closed.
    Closed(Closed),
    /// It asked for a WebSocket: the session takes the socket from here.
    Upgrade(Box<Upgrade>),
}

/// A connection handed over to a WebSocket session.
pub(crate) struct Upgrade {
    pub(crate) io: Stream,
    pub(crate) tls: Option<Box<TlsSession>>,
    pub(crate) tls_info: Option<Arc<ragi::TlsInfo>>,
    /// Bytes (plaintext) that arrived after the handshake request.
    pub(crate) rest: BytesMut,
    pub(crate) head: RequestHead,
    pub(crate) accept_key: String,
    pub(crate) requests: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) accepted_at: Instant,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
}

impl Driver {
    pub(crate) fn new(
        io: Stream,
        srv: Arc<ServerShared>,
        conn: Arc<ConnShared>,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Self {
        let now = Instant::now();
        let phase = srv.phase.clone();
        Self {
            unix: matches!(io, Stream::Unix(_)),
            io,
            srv,
            conn,
            peer,
            local,
            phase,
            rbuf: BytesMut::new(),
            rbuf_small: false,
            wq: OutQueue::default(),
            queued_total: 0,
            written_total: 0,
            cur: None,
            pending: Default::default(),
            draining: None,
            drained: 0,
            closing: None,
            fin_sent: false,
            linger_until: None,
            read_eof: false,
            spare: Vec::new(),
            looked_on_close: false,
            tls: None,
            tls_info: None,
            readable_unknown: false,
            write_blocked: false,
            reason: None,
            requests: 0,
            bytes_in: 0,
            accepted_at: now,
            last_read: now,
            fresh_read: None,
            stall_start: None,
            last_done: now,
            head_started: None,
            shutting_down: false,
            rate_window: None,
            reset_on_close: false,
            upgrade: None,
        }
    }

    /// The driver of a TLS connection whose handshake is done; `early` is plaintext that arrived
    /// with the handshake's last flight, `info` its facts.
    pub(crate) fn with_tls(
        mut self,
        session: TlsSession,
        early: BytesMut,
        info: Arc<ragi::TlsInfo>,
    ) -> Self {
        self.tls_info = Some(info);
        self.tls = Some(Box::new(session));
        if !early.is_empty() {
            self.rbuf = early;
            self.head_started = Some(Instant::now());
        }
        self
    }

    /// Starts with `early`: bytes the protocol sniff read from a Unix-domain socket (see
    /// `sniff_h2_preface`).
    pub(crate) fn with_early(mut self, early: Bytes) -> Self {
        if !early.is_empty() {
            self.bytes_in += early.len() as u64;
            self.rbuf = BytesMut::from(&early[..]);
            self.head_started = Some(Instant::now());
        }
        self
    }

    /// Counts the idle timeout (and the connection's duration) from `at`: the moment the
    /// connection was accepted, before protocol detection.
    pub(crate) fn accepted_at(mut self, at: Instant) -> Self {
        self.accepted_at = at;
        self
    }

    /// Runs the connection to its end (the `closed` notice's facts) or to a WebSocket upgrade.
    pub(crate) async fn run(mut self) -> H1End {
        let mut sleep = Box::pin(tokio::time::sleep_until(tokio::time::Instant::now()));
        let mut armed: Option<Instant> = None;
        if *self.phase.borrow() != Phase::Running {
            self.on_phase();
        }
        // The phase's change notice and the timer are kept across turns and polled through
        // `kept`'s waker, so that a turn polls them only when that waker was called (or the
        // phase moved, or the timer was reset): see `KeptWaker`.
        let mut phase_wait = std::pin::pin!(Some(wait_phase(self.phase.clone())));
        let kept = Arc::new(KeptWaker::default());
        let kept_waker = std::task::Waker::from(kept.clone());
        // The task's waker as `kept` last stored it.
        let mut task_waker: Option<std::task::Waker> = None;
        let mut phase_dirty = true;
        let mut sleep_dirty = false;
        // The waker registered with the connection's `DriverWake` (see `poll_notified_with`).
        let mut wake_waker: Option<std::task::Waker> = None;
        loop {
            // Make every step possible without waiting.
            loop {
                let stepped = self.step();
                let wrote = self.flush();
                if !stepped && !wrote {
                    break;
                }
            }
            if self.closing == Some(Closing::Now) {
                break;
            }
            if self.upgrade.is_some()
                && self.closing.is_none()
                && self.wq.is_empty()
                && self.pending.is_empty()
            {
                break;
            }
            if self.closing == Some(Closing::AfterFlush) && self.wq.is_empty() && !self.fin_sent {
                self.fin_sent = true;
                let _ = shutdown_write(&self.io);
                self.linger_until = Some(Instant::now() + LINGER);
                if self.read_eof {
                    break;
                }
            }

            if self.readable_unknown && self.may_read() {
                self.read_direct();
                continue;
            }
            let interest = self.interest();
            self.update_rate_window();
            let deadline = self.deadline();

            // Re-arm only when the deadline moves earlier: a timer that fires early just
            // re-checks, which is cheaper than resetting it on every request.
            match (deadline, armed) {
                (Some((at, _)), Some(cur)) if cur <= at => {}
                (Some((at, _)), _) => {
                    armed = Some(at);
                    sleep.as_mut().reset(at.into());
                    sleep_dirty = true;
                }
                (None, _) => {}
            }
            self.fresh_read = None;
            // In this order: the socket, a wake-up, the phase, the timer. Hand-written rather
            // than `select!`, which builds (and registers, and drops) every future anew each turn.
            let wake = std::future::poll_fn(|cx| {
                if let Some(interest) = interest {
                    if let Poll::Ready(r) = self.poll_io(cx, interest) {
                        return Poll::Ready(Wake::Io(r));
                    }
                }
                if self
                    .conn
                    .wake
                    .poll_notified_with(cx, &mut wake_waker)
                    .is_ready()
                {
                    return Poll::Ready(Wake::Notified);
                }
                // The kept futures. Their waker wakes this task's current one.
                if !task_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    kept.set_task(cx.waker());
                    task_waker = Some(cx.waker().clone());
                }
                if kept.take() {
                    phase_dirty = true;
                    sleep_dirty = true;
                }
                let mut kept_cx = Context::from_waker(&kept_waker);
                // A shutdown phase: `self.phase` says whether it moved (one atomic load); the
                // kept `changed()` future is polled when it did, or when its waker was called
                // (a watch may wake it without a new value: a `send` still notifying, or no
                // coop budget left), so that it registers again.
                let moved = matches!(self.phase.has_changed(), Ok(true));
                if moved || phase_dirty {
                    phase_dirty = false;
                    while let Some(fut) = phase_wait.as_mut().as_pin_mut() {
                        match fut.poll(&mut kept_cx) {
                            Poll::Ready(Some(rx)) => phase_wait.set(Some(wait_phase(rx))),
                            // The sender is gone: the phase never changes again.
                            Poll::Ready(None) => phase_wait.set(None),
                            Poll::Pending => break,
                        }
                    }
                }
                if moved {
                    return Poll::Ready(Wake::Phase);
                }
                // The timer, likewise: polled after a reset or a call of its waker (it fired,
                // or it could not register for want of coop budget).
                if armed.is_some() && sleep_dirty {
                    sleep_dirty = false;
                    if sleep.as_mut().poll(&mut kept_cx).is_ready() {
                        return Poll::Ready(Wake::Timer);
                    }
                }
                Poll::Pending
            })
            .await;
            match wake {
                Wake::Io(Ok(ready)) => self.on_ready(ready),
                Wake::Io(Err(e)) => self.on_read_error(e),
                Wake::Notified => {}
                Wake::Phase => self.on_phase(),
                Wake::Timer => {
                    armed = None;
                    if let Some((at, which)) = self.deadline() {
                        if Instant::now() >= at {
                            self.on_timer(which);
                        }
                    }
                }
            }
        }
        self.finish()
    }

    /// Polls the socket for `interest` (see [`Driver::interest`]). Read and write readiness
    /// are polled through tokio's per-direction waker slots, which cost no registration per
    /// turn; the exact flags (closed, error) are asked for only when the driver watches without
    /// reading, the one state where it needs them.
    fn poll_io(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<Ready>> {
        let mut ready = Ready::EMPTY;
        if interest.is_writable() {
            match self.io.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => ready |= Ready::WRITABLE,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        if interest.is_readable() {
            match self.io.poll_read_ready(cx) {
                Poll::Ready(Ok(())) if self.may_read() => {
                    // The read itself tells data, FIN and RST apart.
                    ready |= Ready::READABLE;
                }
                Poll::Ready(Ok(())) => {
                    // Readable or read-closed: which one, and whether in error, tells a FIN or
                    // an RST behind unread bytes. The readiness is set, so this is immediate.
                    match self
                        .io
                        .poll_ready_once(cx, Interest::READABLE | Interest::ERROR)
                    {
                        Poll::Ready(Ok(r)) => ready |= r,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {}
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        if ready.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(Ok(ready))
        }
    }

    // ----- reading -------------------------------------------------------------------------

    /// Whether the driver reads the socket now (rather than only watching it).
    fn may_read(&self) -> bool {
        if self.read_eof {
            return false;
        }
        if self.closing.is_some() || self.draining.is_some() {
            return true;
        }
        let limit = self.srv.cfg.read_ahead;
        match &self.cur {
            Some(a) if !a.decoder.is_done() => self.rbuf.len() < limit && a.ex.wants_body(),
            Some(_) => self.rbuf.len() < limit,
            None => {
                self.rbuf.len()
                    <= self.srv.cfg.max_request_line + self.srv.cfg.max_header_size + 1024
            }
        }
    }

    fn interest(&self) -> Option<Interest> {
        let mut i: Option<Interest> = None;
        if !self.read_eof {
            i = Some(Interest::READABLE | Interest::ERROR);
        }
        if self.write_blocked && !self.wq.is_empty() {
            i = Some(i.map_or(Interest::WRITABLE, |i| i | Interest::WRITABLE));
        }
        i
    }

    fn on_ready(&mut self, ready: Ready) {
        if ready.is_writable() || ready.is_write_closed() {
            self.write_blocked = false;
        }
        if !(ready.is_readable() || ready.is_read_closed() || ready.is_error()) || self.read_eof {
            return;
        }
        if self.may_read() {
            let r = if self.tls.is_some() {
                self.read_tls(false)
            } else if self.rbuf.capacity() == 0 {
                // An idle connection holds no buffer: read into the thread's scratch buffer
                // and keep only what arrived.
                SCRATCH.with(|scratch| {
                    let mut scratch = scratch.borrow_mut();
                    let r = self.io.read_clearing(&mut scratch[..]);
                    if let Ok(n) = r {
                        self.rbuf = BytesMut::with_capacity(n.max(SMALL_RBUF));
                        self.rbuf.extend_from_slice(&scratch[..n]);
                        self.rbuf_small = n <= SMALL_RBUF;
                    }
                    r
                })
            } else {
                let spare = self.rbuf.capacity() - self.rbuf.len();
                if self.rbuf_small
                    && self.rbuf.is_empty()
                    && self.cur.is_none()
                    && self.draining.is_none()
                {
                    // Waiting for the next head in the small buffer: take back its consumed
                    // front (no allocation once the requests that pointed into it are gone).
                    if spare < SMALL_RBUF {
                        self.rbuf.reserve(SMALL_RBUF);
                    }
                } else if spare < 4096 {
                    self.rbuf.reserve(16 * 1024);
                    self.rbuf_small = false;
                }
                self.io.read_clearing_buf(&mut self.rbuf)
            };
            tracing::trace!(conn = %self.conn.id, ?ready, result = ?r.as_ref().map_err(|e| e.kind()), "read");
            match r {
                Ok(0) => self.on_eof(),
                Ok(n) => {
                    self.bytes_in += n as u64;
                    self.last_read = Instant::now();
                    self.fresh_read = Some(self.last_read);
                    if self.cur.is_none() && self.draining.is_none() && self.head_started.is_none()
                    {
                        self.head_started = Some(self.last_read);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.on_read_error(e),
            }
            return;
        }
        // Watching without reading: the buffer is full because the app does not read.
        tracing::trace!(conn = %self.conn.id, ?ready, "watch");
        if ready.is_error() || ready.is_read_closed() {
            match self.io.take_error() {
                Ok(Some(e)) => self.on_read_error(e),
                Err(e) => self.on_read_error(e),
                Ok(None) if ready.is_error() => {
                    self.on_read_error(io::ErrorKind::ConnectionReset.into())
                }
                Ok(None) => self.on_eof(),
            }
        } else {
            // Clear plain readability so that the next edge (data, FIN, RST) wakes us again.
            let _ = self.io.try_io(Interest::READABLE, || {
                Err::<(), _>(io::ErrorKind::WouldBlock.into())
            });
            self.readable_unknown = true;
        }
    }

    /// Reads with a plain `recv`, bypassing tokio's readiness cache: after watching without
    /// reading, tokio believes the socket is not readable (we cleared that to wait for the next
    /// edge), so its `try_read` would not even ask the kernel, while bytes may be queued and
    /// the client blocked on our full window. Used until the kernel says `WouldBlock`.
    fn read_direct(&mut self) {
        use std::io::Read;
        if self.tls.is_some() {
            match self.read_tls(true) {
                Ok(0) => {
                    self.readable_unknown = false;
                    self.on_eof();
                }
                Ok(n) => {
                    self.bytes_in += n as u64;
                    self.last_read = Instant::now();
                    self.fresh_read = Some(self.last_read);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable_unknown = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.readable_unknown = false;
                    self.on_read_error(e);
                }
            }
            return;
        }
        let mut buf = [0u8; 16 * 1024];
        let sock = socket2::SockRef::from(&self.io);
        let r = (&*sock).read(&mut buf);
        match r {
            Ok(0) => {
                self.readable_unknown = false;
                self.on_eof();
            }
            Ok(n) => {
                self.rbuf.extend_from_slice(&buf[..n]);
                // It may have grown: given back when idle.
                self.rbuf_small = false;
                self.bytes_in += n as u64;
                self.last_read = Instant::now();
                self.fresh_read = Some(self.last_read);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable_unknown = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                self.readable_unknown = false;
                self.on_read_error(e);
            }
        }
    }

    /// TLS: reads ciphertext (through tokio, or with a plain `recv` when `direct`), decrypts it
    /// into `rbuf`, and queues what the session must send back. Returns the ciphertext bytes
    /// read; `Ok(0)` for the end of the stream, a clean `close_notify` included.
    fn read_tls(&mut self, direct: bool) -> io::Result<usize> {
        use std::io::Read;
        let mut buf = [0u8; 16 * 1024];
        let n = if direct {
            (&*socket2::SockRef::from(&self.io)).read(&mut buf)?
        } else {
            self.io.read_clearing(&mut buf)?
        };
        if n == 0 {
            return Ok(0);
        }
        let tls = self.tls.as_mut().expect("a TLS connection");
        let fed = tls.feed(&buf[..n], &mut self.rbuf);
        self.rbuf_small = false;
        let peer_closed = tls.peer_closed();
        self.pump_tls();
        if let Err(e) = fed {
            // Send the alert rustls queued, as far as the socket takes it, then fail.
            self.flush();
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        if peer_closed {
            self.bytes_in += n as u64;
            return Ok(0);
        }
        Ok(n)
    }

    /// TLS: moves the session's pending ciphertext into the write queue.
    fn pump_tls(&mut self) {
        let Some(tls) = self.tls.as_mut() else { return };
        if tls.wants_write() {
            let mut v = Vec::new();
            if tls.write_tls_into(&mut v).is_ok() && !v.is_empty() {
                self.queued_total += v.len() as u64;
                self.wq.put_bytes(Bytes::from(v));
            }
        }
    }

    fn on_eof(&mut self) {
        self.read_eof = true;
        if self.closing.is_some() {
            if self.fin_sent || self.closing == Some(Closing::Now) {
                self.closing = Some(Closing::Now);
            }
            return;
        }
        let body_done = self.cur.as_ref().is_none_or(|a| a.decoder.is_done());
        if self.srv.cfg.allow_half_close
            && body_done
            && (self.cur.is_some() || !self.pending.is_empty())
        {
            // Answer what was asked, then close.
            if let Some(a) = &self.cur {
                a.ex.lock().enc.force_close();
            }
            return;
        }
        self.abort_all(DisconnectReason::ClientClosed);
        self.close_now(Some(DisconnectReason::ClientClosed));
    }

    fn on_read_error(&mut self, e: io::Error) {
        tracing::debug!(conn = %self.conn.id, error = %e, "read error");
        self.read_eof = true;
        let reason = DisconnectReason::ReadError;
        self.abort_all(reason.clone());
        self.close_now(Some(reason));
    }

    // ----- writing -------------------------------------------------------------------------

    /// Writes what it can; returns whether anything changed (bytes written, completions).
    fn flush(&mut self) -> bool {
        if self.write_blocked || self.wq.is_empty() || self.closing == Some(Closing::Now) {
            return false;
        }
        let mut progressed = false;
        while !self.wq.is_empty() {
            let r = match self.wq.single() {
                Some(one) => self.io.try_write(one),
                None => {
                    let mut slices = [IoSlice::new(&[]); 64];
                    let n = self.wq.fill_slices(&mut slices);
                    self.io.try_write_vectored(&slices[..n])
                }
            };
            match r {
                Ok(0) => {
                    self.on_write_error(io::ErrorKind::WriteZero.into());
                    return true;
                }
                Ok(n) => {
                    self.wq.advance(n);
                    self.written_total += n as u64;
                    self.stall_start = None;
                    progressed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.write_blocked = true;
                    if self.stall_start.is_none() {
                        self.stall_start = Some(Instant::now());
                    }
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.on_write_error(e);
                    return true;
                }
            }
        }
        if progressed {
            self.after_write();
        }
        progressed
    }

    fn after_write(&mut self) {
        let mut completed = false;
        while self
            .pending
            .front()
            .is_some_and(|p| p.mark <= self.written_total)
        {
            let mut p = self.pending.pop_front().expect("checked");
            // Nothing else holds the exchange any more (the usual case): no lock to take, and
            // the next request can have it.
            let unique = match Exchange::unique(&mut p.ex) {
                Some(ex) => {
                    ex.state_mut().unflushed = 0;
                    ex.control.complete_owned();
                    true
                }
                None => {
                    p.ex.lock().unflushed = 0;
                    p.ex.control.complete();
                    false
                }
            };
            if let Some(entry) = p.log {
                access_log::write(self.srv.cfg.access_log, *entry);
            }
            if unique && self.spare.len() < SPARE_EXCHANGES {
                self.spare.push(p.ex);
            }
            completed = true;
        }
        if completed {
            self.last_done = self.fresh_read.unwrap_or_else(Instant::now);
            if self.rbuf.is_empty()
                && self.cur.is_none()
                && self.draining.is_none()
                && !self.rbuf_small
            {
                // Idle between requests: give a large read buffer back (10 000 idle
                // connections should not hold 10 000 of them). A small one stays: allocating
                // it anew for each request cost more than the 1 KiB it holds.
                self.rbuf = BytesMut::new();
            }
        }
        if let Some(a) = &self.cur {
            let wq_len = self.wq.len();
            let released = {
                let st = a.ex.lock();
                st.unflushed.saturating_sub(st.out.len() + wq_len)
            };
            if released > 0 {
                a.ex.written(released);
            }
        }
    }

    fn on_write_error(&mut self, e: io::Error) {
        tracing::debug!(conn = %self.conn.id, error = %e, "write error");
        self.abort_all(DisconnectReason::WriteError);
        self.close_now(Some(DisconnectReason::WriteError));
    }

    fn queue(&mut self, bytes: Bytes) {
        if let Some(tls) = self.tls.as_mut() {
            let _ = tls.write_plaintext(&bytes);
            self.pump_tls();
            return;
        }
        self.queued_total += bytes.len() as u64;
        self.wq.put_bytes(bytes);
    }

    /// Queues an exchange's output (encrypted on TLS connections).
    fn queue_out(&mut self, out: &mut OutQueue) {
        if let Some(tls) = self.tls.as_mut() {
            out.drain_each(|piece| {
                let _ = tls.write_plaintext(piece);
            });
            self.pump_tls();
            return;
        }
        let n = out.len() as u64;
        out.move_to(&mut self.wq);
        self.queued_total += n;
    }

    // ----- the exchange's progress ----------------------------------------------------------

    /// Everything that can happen without waiting. Returns whether anything did.
    fn step(&mut self) -> bool {
        let mut any = false;
        loop {
            let p = self.step_once();
            any |= p;
            if !p || self.closing.is_some() {
                return any;
            }
        }
    }

    fn step_once(&mut self) -> bool {
        if self.upgrade.is_some() {
            return false;
        }
        if self.closing.is_some() {
            // Lingering: discard whatever arrives.
            if !self.rbuf.is_empty() {
                self.rbuf.clear();
            }
            return false;
        }
        if self.cur.is_some() {
            return self.step_active();
        }
        if let Some(dec) = &mut self.draining {
            let before = self.rbuf.len();
            let mut done = false;
            loop {
                match dec.decode(&mut self.rbuf) {
                    Ok(Decoded::Data(d)) => self.drained += d.len() as u64,
                    Ok(Decoded::Done) => {
                        done = true;
                        break;
                    }
                    Ok(Decoded::NeedMore) => break,
                    Err(_) => {
                        self.close_after_flush(Some(DisconnectReason::ProtocolError));
                        return true;
                    }
                }
            }
            if done {
                self.draining = None;
                return true;
            }
            if self.drained > DRAIN_LIMIT {
                self.close_after_flush(None);
                return true;
            }
            return self.rbuf.len() != before;
        }
        if self.shutting_down || self.conn.close_deadline().is_some() {
            // Bytes that arrived before the shutdown are a request in flight, even if this
            // driver has not read them yet (the connection may have just left protocol
            // detection): look once, then serve it with `connection: close`.
            if self.rbuf.is_empty() && !self.read_eof && !self.looked_on_close {
                self.looked_on_close = true;
                self.read_direct();
            }
            if self.rbuf.is_empty() || self.closing.is_some() {
                if self.wq.is_empty() && self.pending.is_empty() && self.closing.is_none() {
                    let reason = self
                        .shutting_down
                        .then_some(DisconnectReason::ServerShutdown);
                    self.close_now(reason);
                    return true;
                }
                return false;
            }
        }
        if self.read_eof || self.wq.len() >= self.srv.cfg.write_high_water {
            return false;
        }
        self.parse_next()
    }

    fn parse_next(&mut self) -> bool {
        let skip = request::leading_empty_lines(&self.rbuf);
        if skip > 0 {
            let _ = self.rbuf.split_to(skip);
        }
        if self.rbuf.is_empty() {
            self.head_started = None;
            return false;
        }
        if self.head_started.is_none() {
            self.head_started = Some(self.last_read);
        }
        match request::parse_head(&mut self.rbuf, &self.srv.limits) {
            Parsed::Partial => false,
            Parsed::Error(e) => {
                tracing::debug!(conn = %self.conn.id, status = e.status, why = e.why, "bad request");
                // A response to HEAD has no body, even an error response.
                let head = self.rbuf.starts_with(b"HEAD ");
                self.server_response(e.status, b"", head);
                self.close_after_flush(Some(DisconnectReason::ProtocolError));
                true
            }
            Parsed::Complete(head) => {
                self.head_started = None;
                self.dispatch(head);
                true
            }
        }
    }

    fn dispatch(&mut self, head: RequestHead) {
        // The head arrived with the last read; no need to ask the clock again.
        let now = self.last_read;
        self.requests += 1;
        if let BodyFraming::Length(n) = head.framing {
            if n > self.srv.cfg.max_body_size {
                // The app is never called.
                self.server_response(413, b"", head.method == http::Method::HEAD);
                self.close_after_flush(Some(DisconnectReason::BodyTooLarge));
                return;
            }
        }
        if head.framing == BodyFraming::Empty
            && head.version == ragi::HttpVersion::Http11
            && crate::ws::is_h1_upgrade(&head.method, &head.headers)
        {
            match crate::ws::check_h1_handshake(&head.headers) {
                Ok(key) => self.upgrade = Some((head, key)),
                Err((status, extra)) => {
                    self.server_response(status, extra, false);
                    self.close_after_flush(Some(DisconnectReason::ProtocolError));
                }
            }
            return;
        }
        let close = !head.keep_alive || self.shutting_down || self.conn.close_deadline().is_some();
        let head_request = head.method == http::Method::HEAD;
        let ctx = ResponseContext {
            version: head.version,
            head_request,
            close,
            arrived: self.fresh_read,
        };
        let decoder = match head.framing {
            BodyFraming::Empty => BodyDecoder::length(0),
            BodyFraming::Length(n) => BodyDecoder::length(n),
            BodyFraming::Chunked => BodyDecoder::chunked(),
        };
        let (ex, connection) = self.exchange(ctx, decoder.is_done(), head.expect_continue);
        let log = self
            .srv
            .cfg
            .access_log
            .map(|_| Box::new(AccessEntry::new(&head, self.peer, now)));
        let (request_head, line_len) = (head.head, head.line_len);

        let kind = if crate::sse::wants_event_stream(&head.headers) {
            ScopeKind::Sse
        } else {
            ScopeKind::Http
        };
        // Every handle below is a reference count update now and another when it is dropped;
        // the driver's own (`Active`) takes the exchange without one.
        let transport = ragi::Transport::new(ex.clone());
        let receiver = ragi::Receiver::from_arc(ex.clone());
        let sender = if kind == ScopeKind::Sse {
            let target = ex.clone();
            let end: crate::sse::EndStream = Box::new(move |reason| {
                // The driver sees the ended exchange and closes the connection.
                target.disconnect(reason);
                target.conn.wake.notify_one();
            });
            ragi::Sender::new(
                crate::sse::SseSink::new(ex.clone())
                    .with_idle_timeout(self.srv.cfg.sse_idle_timeout, end),
            )
        } else {
            ragi::Sender::from_arc(ex.clone())
        };
        let mut scope = Scope::with_parts(kind, connection, self.srv.lifespan_state.clone());
        scope.http_version = head.version;
        scope.path = ragi::scope::percent_decode(&head.raw_path);
        scope.method = head.method;
        scope.raw_path = head.raw_path;
        scope.query_string = head.query;
        scope.headers = head.headers;
        if !self.unix {
            scope.client = Some(self.peer);
            scope.server = Some(self.local);
        }
        scope.extensions.server_state = Some(self.srv.server_state.clone());
        scope.extensions.fullflush = true;
        scope.extensions.sse_http_response = kind == ScopeKind::Sse;
        scope.extensions.transport = Some(transport);
        if self.tls_info.is_some() {
            scope.scheme = "https";
            scope.extensions.tls = self.tls_info.clone();
        }

        // Feeding the body may end the exchange (too large) before the app's first poll; the app
        // is called all the same and sees the end, so keep a handle for that case.
        let keep = (!decoder.is_done()).then(|| ex.clone());
        self.cur = Some(Active {
            ex,
            decoder,
            body_received: 0,
            head_at: now,
            request_head,
            line_len,
            log,
            head_request,
            sse: kind == ScopeKind::Sse,
        });
        // Move whatever body bytes are already here before the app's first poll.
        self.feed_body();
        let fut = self.srv.app.call(scope, receiver, sender);
        let ex = self.cur.as_ref().map(|a| &a.ex).or(keep.as_ref());
        run_app(ex.expect("only a body can end the exchange"), fut);
    }

    /// The exchange of a new request and its connection object: a spare one when there is
    /// one, else a new one.
    fn exchange(
        &mut self,
        ctx: ResponseContext,
        body_complete: bool,
        expect_continue: bool,
    ) -> (Arc<Exchange>, Connection) {
        while let Some(mut ex) = self.spare.pop() {
            if let Some(m) = Exchange::unique(&mut ex) {
                let connection = m.reuse(ctx, body_complete, expect_continue);
                return (ex, connection);
            }
        }
        let enc = ResponseEncoder::new(ctx, self.srv.server_header.clone());
        let (connection, control) = Connection::pair();
        let ex = Exchange::new(
            OutQueue::with_capacity(512),
            self.conn.clone(),
            control,
            enc,
            body_complete,
            expect_continue,
            &self.srv.cfg,
        );
        (ex, connection)
    }

    /// Moves body bytes from the read buffer into the exchange's queue, up to the read-ahead.
    /// Returns whether anything moved.
    fn feed_body(&mut self) -> bool {
        let Some(a) = &mut self.cur else { return false };
        let mut moved = false;
        while !a.decoder.is_done() && a.ex.wants_body() {
            match a.decoder.decode(&mut self.rbuf) {
                Ok(Decoded::Data(d)) => {
                    a.body_received += d.len() as u64;
                    if a.body_received > self.srv.cfg.max_body_size {
                        self.body_too_large();
                        return true;
                    }
                    let done = a.decoder.is_done();
                    a.ex.push_body(d, done);
                    moved = true;
                }
                Ok(Decoded::Done) => {
                    a.ex.push_body(Bytes::new(), true);
                    moved = true;
                }
                Ok(Decoded::NeedMore) => break,
                Err(e) => {
                    tracing::debug!(conn = %self.conn.id, why = e.0, "bad request body");
                    self.fail_active(400, DisconnectReason::ProtocolError);
                    return true;
                }
            }
        }
        moved
    }

    fn body_too_large(&mut self) {
        self.fail_active(413, DisconnectReason::BodyTooLarge);
    }

    /// Ends the current exchange with `reason`: an error response with `status` if none
    /// started, else an abort.
    fn fail_active(&mut self, status: u16, reason: DisconnectReason) {
        let Some(a) = self.cur.take() else { return };
        let started =
            a.ex.control.connection().response_started() && a.ex.lock().enc.head_written();
        if !started {
            a.ex.control.set_response_started();
        }
        a.ex.disconnect(reason.clone());
        if started {
            self.close_now(Some(reason));
        } else {
            self.server_response(status, b"", a.head_request);
            self.close_after_flush(Some(reason));
        }
    }

    fn step_active(&mut self) -> bool {
        let mut progressed = self.feed_body();
        // Taken out while it is looked at (and put back unless it ended), so that the driver's
        // methods can run beside it without another handle on the exchange.
        let Some(mut a) = self.cur.take() else {
            return true;
        };
        if self.conn.close_deadline().is_some() {
            a.ex.lock().enc.force_close();
        }
        let returned_inline = a.ex.returned_inline();
        let mut st = Exchange::state(&mut a.ex);
        // Ended from outside the driver (an SSE stream's idle timeout): close the connection,
        // since a half-sent response cannot be finished.
        if let Some(reason) = st.disconnect.clone() {
            drop(st);
            self.close_after_flush(Some(reason));
            return true;
        }
        // 100 Continue, once, when the app first asks for the body and no response started.
        if st.expect_continue && st.continue_wanted {
            st.expect_continue = false;
            if !st.enc.head_written() && st.out.is_empty() {
                drop(st);
                self.queue(Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n"));
                st = Exchange::state(&mut a.ex);
                progressed = true;
            }
        }
        if !st.out.is_empty() {
            self.queue_out(&mut st.out);
            progressed = true;
        }
        if st.enc.is_done() {
            let close = st.enc.will_close();
            let continue_pending = st.expect_continue;
            if let Some(AppOutcome::Failed(e)) = &st.app {
                tracing::warn!(conn = %self.conn.id, error = %e, "app failed after its response completed");
            }
            let mut log = a.log;
            if let Some(entry) = &mut log {
                entry.finish(st.enc.status(), st.enc.body_bytes());
            }
            drop(st);
            self.pending.push_back(Pending {
                mark: self.queued_total,
                ex: a.ex,
                log,
            });
            if close || self.read_eof {
                self.close_after_flush(None);
            } else if !a.decoder.is_done() {
                if continue_pending {
                    // The client waits for 100 Continue before sending the body it announced.
                    self.close_after_flush(None);
                } else {
                    self.draining = Some(a.decoder);
                    self.drained = 0;
                }
            }
            return true;
        }
        let Some(outcome) = Exchange::outcome(returned_inline, &st) else {
            drop(st);
            self.cur = Some(a);
            return progressed;
        };
        // The app returned without completing its response.
        let started = st.enc.head_written();
        drop(st);
        let error = match outcome {
            AppOutcome::Failed(e) => e,
            AppOutcome::Returned => "the app returned without completing its response".to_owned(),
        };
        let ex = &a.ex;
        if !ex.control.is_open() {
            // Already ended elsewhere (an SSE idle timeout that the app saw first): the
            // response cannot be finished, so the connection closes.
            let reason = ex.control.connection().disconnect_reason();
            self.close_after_flush(reason);
            return true;
        }
        ex.disconnect(DisconnectReason::ServerError);
        if started {
            // Deliver what the app already sent, then close without ending the body.
            tracing::warn!(conn = %self.conn.id, %error, "response aborted");
            self.close_after_flush(Some(DisconnectReason::ServerError));
        } else {
            tracing::warn!(conn = %self.conn.id, %error, "app failed; answering 500");
            ex.control.set_response_started();
            self.server_response(500, b"", a.head_request);
            self.close_after_flush(Some(DisconnectReason::ServerError));
        }
        self.report_error(
            String::from_utf8_lossy(&a.request_head[..a.line_len]).into_owned(),
            error,
            started,
        );
        true
    }

    /// Every exchange not yet completed ends with `reason`.
    fn abort_all(&mut self, reason: DisconnectReason) {
        if let Some(a) = self.cur.take() {
            a.ex.disconnect(reason.clone());
            if let Some(mut entry) = a.log {
                let st = a.ex.lock();
                entry.finish(
                    if st.enc.started() { st.enc.status() } else { 0 },
                    st.enc.body_bytes(),
                );
                drop(st);
                access_log::write(self.srv.cfg.access_log, *entry);
            }
        }
        for p in self.pending.drain(..) {
            p.ex.disconnect(reason.clone());
        }
    }

    fn report_error(&self, request_line: String, error: String, aborted: bool) {
        let Some(hook) = self.srv.error_hook.clone() else {
            return;
        };
        let report = ErrorReport {
            id: self.conn.id.clone(),
            request_line,
            error,
            aborted,
        };
        let conn = self.conn.clone();
        conn.task_started();
        tokio::spawn(async move {
            let fut = std::panic::AssertUnwindSafe(hook(report));
            let id = conn.id.clone();
            let caught = crate::shared::panics::OnConn {
                id,
                fut: crate::shared::CatchUnwind(Box::pin(fut)),
            }
            .await;
            if let Err(e) = caught {
                tracing::error!(conn = %conn.id, error = %e, "the error hook panicked (contained)");
            }
            conn.task_done();
        });
    }

    fn server_response(&mut self, status: u16, extra: &[u8], head_only: bool) {
        let bytes = simple_response(status, self.srv.server_header.as_deref(), extra, head_only);
        self.queue(bytes);
    }

    fn close_after_flush(&mut self, reason: Option<DisconnectReason>) {
        if self.reason.is_none() {
            self.reason = reason;
        }
        if self.closing.is_none() {
            self.closing = Some(Closing::AfterFlush);
            if let Some(tls) = self.tls.as_mut() {
                tls.send_close_notify();
                self.pump_tls();
            }
        }
    }

    fn close_now(&mut self, reason: Option<DisconnectReason>) {
        if self.reason.is_none() {
            self.reason = reason;
        }
        self.closing = Some(Closing::Now);
    }

    // ----- timers, shutdown -----------------------------------------------------------------

    fn deadline(&self) -> Option<(Instant, Timer)> {
        let cfg = &self.srv.cfg;
        let mut best: Option<(Instant, Timer)> = None;
        let mut consider = |at: Option<Instant>, t: Timer| {
            if let Some(at) = at {
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, t));
                }
            }
        };
        let plus = |base: Instant, d: Option<Duration>| d.map(|d| base + d);
        if self.write_blocked && !self.wq.is_empty() {
            consider(
                self.stall_start.and_then(|s| plus(s, cfg.write_timeout)),
                Timer::Write,
            );
        }
        if let Some(l) = self.linger_until {
            consider(Some(l), Timer::Linger);
        }
        if self.closing.is_some() {
            return best;
        }
        consider(self.conn.close_deadline(), Timer::CloseRequest);
        // Bytes of a head or body arriving below the minimum rate (see `update_rate_window`).
        if let (Some((_, since, base)), Some(rate)) = (self.rate_window, cfg.min_request_rate) {
            let bought = Duration::from_secs_f64((self.bytes_in - base) as f64 / rate as f64);
            consider(
                Some(since + bought.max(cfg.min_request_rate_grace)),
                Timer::Read,
            );
        }
        if let Some(a) = &self.cur {
            if !a.decoder.is_done() && self.may_read() && !self.read_eof {
                consider(
                    plus(self.last_read.max(a.head_at), cfg.request_timeout),
                    Timer::Read,
                );
            }
        } else if self.draining.is_some() {
            consider(plus(self.last_read, cfg.request_timeout), Timer::Read);
        } else if self.pending.is_empty() && self.wq.is_empty() {
            if let Some(start) = self.head_started {
                let stall = plus(self.last_read, cfg.request_timeout);
                let whole = plus(start, cfg.request_head_timeout);
                consider(stall, Timer::Read);
                consider(whole, Timer::Read);
            } else if self.requests == 0 {
                consider(plus(self.accepted_at, cfg.idle_timeout), Timer::Idle);
            } else {
                consider(
                    plus(self.last_done, cfg.keepalive_timeout),
                    Timer::Keepalive,
                );
            }
        }
        best
    }

    /// Starts, keeps or ends the minimum-rate window: open while the driver waits for the
    /// bytes of a head, a body or a body it discards, and reads; a new one for each of them.
    fn update_rate_window(&mut self) {
        if self.srv.cfg.min_request_rate.is_none() || self.closing.is_some() || self.read_eof {
            self.rate_window = None;
            return;
        }
        let awaited = match &self.cur {
            Some(a) if !a.decoder.is_done() && self.may_read() => Some(1),
            Some(_) => None,
            None if self.draining.is_some() => Some(2),
            None if self.head_started.is_some()
                && self.pending.is_empty()
                && self.wq.is_empty() =>
            {
                Some(0)
            }
            None => None,
        };
        match awaited {
            None => self.rate_window = None,
            Some(what) => {
                let key = (self.requests, what);
                if self.rate_window.is_none_or(|(k, _, _)| k != key) {
                    self.rate_window = Some((key, Instant::now(), self.bytes_in));
                }
            }
        }
    }

    fn on_timer(&mut self, which: Timer) {
        // Every timer but the linger ends a connection that timed out.
        self.reset_on_close = !matches!(which, Timer::Linger) || self.reset_on_close;
        match which {
            Timer::Idle => self.close_now(Some(DisconnectReason::IdleTimeout)),
            Timer::Keepalive => self.close_now(Some(DisconnectReason::KeepaliveTimeout)),
            Timer::Read => {
                if self.cur.is_some() {
                    self.fail_active(408, DisconnectReason::ClientTimeout);
                } else if self.draining.is_some() {
                    self.close_now(Some(DisconnectReason::ClientTimeout));
                } else {
                    self.server_response(408, b"", false);
                    self.close_after_flush(Some(DisconnectReason::ClientTimeout));
                }
            }
            Timer::Write => {
                self.abort_all(DisconnectReason::WriteTimeout);
                self.close_now(Some(DisconnectReason::WriteTimeout));
            }
            Timer::Linger => self.closing = Some(Closing::Now),
            Timer::CloseRequest => {
                self.abort_all(DisconnectReason::ServerShutdown);
                self.close_now(Some(DisconnectReason::ServerShutdown));
            }
        }
    }

    fn on_phase(&mut self) {
        let phase = *self.phase.borrow_and_update();
        match phase {
            Phase::Running => {}
            Phase::Draining => {
                self.shutting_down = true;
                if let Some(a) = &self.cur {
                    if a.sse {
                        // An event stream never finishes by itself: tell it now (spec §5).
                        a.ex.disconnect(DisconnectReason::ServerShutdown);
                    } else {
                        a.ex.lock().enc.force_close();
                    }
                }
            }
            Phase::Abort => {
                self.shutting_down = true;
                self.reset_on_close = true;
                self.abort_all(DisconnectReason::ServerShutdown);
                self.close_now(Some(DisconnectReason::ServerShutdown));
            }
        }
    }

    fn finish(mut self) -> H1End {
        if let Some((head, accept_key)) = self.upgrade.take() {
            if self.closing.is_none() {
                return H1End::Upgrade(Box::new(Upgrade {
                    io: self.io,
                    tls: self.tls,
                    tls_info: self.tls_info,
                    rest: self.rbuf,
                    head,
                    accept_key,
                    requests: self.requests,
                    bytes_in: self.bytes_in,
                    bytes_out: self.written_total,
                    accepted_at: self.accepted_at,
                    peer: self.peer,
                    local: self.local,
                }));
            }
        }
        if self.cur.is_some() || !self.pending.is_empty() {
            let reason = self.reason.clone().unwrap_or(DisconnectReason::ServerError);
            self.abort_all(reason);
        }
        // A timed-out connection is reset: the kernel drops it and whatever it still holds
        // for the client at once. Not when the client closed cleanly meanwhile (a
        // `client_timeout` whose 408 it read) and nothing is left to send.
        if self.reset_on_close
            && self.srv.cfg.reset_timedout_connection
            && !(self.read_eof && self.wq.is_empty())
        {
            let _ = socket2::SockRef::from(&self.io).set_linger(Some(Duration::ZERO));
        }
        H1End::Closed(Closed {
            id: self.conn.id.clone(),
            peer: self.peer,
            reason: self.reason.clone(),
            requests: self.requests,
            bytes_in: self.bytes_in,
            bytes_out: self.written_total,
            duration: self.accepted_at.elapsed(),
            protocol: "http/1.1",
        })
    }
}

/// Resolves with the receiver when the phase changes; `None` when the sender is gone.
async fn wait_phase(mut rx: watch::Receiver<Phase>) -> Option<watch::Receiver<Phase>> {
    rx.changed().await.ok().map(|()| rx)
}

fn shutdown_write(io: &Stream) -> io::Result<()> {
    socket2::SockRef::from(io).shutdown(std::net::Shutdown::Write)
}

/// Runs a TLS handshake over the raw socket within `limit`. Returns the plaintext that arrived
/// with the client's last flight. On failure, the alert rustls queued is sent as far as the
/// socket takes it.
pub(crate) async fn tls_handshake(
    io: &Stream,
    session: &mut TlsSession,
    limit: Duration,
) -> Result<BytesMut, String> {
    let mut early = BytesMut::new();
    let run = async {
        loop {
            while session.wants_write() {
                let mut out = Vec::new();
                session
                    .write_tls_into(&mut out)
                    .map_err(|e| e.to_string())?;
                write_all(io, &out).await.map_err(|e| e.to_string())?;
            }
            if !session.is_handshaking() {
                return Ok::<(), String>(());
            }
            io.readable().await.map_err(|e| e.to_string())?;
            let mut buf = [0u8; 16 * 1024];
            match io.try_read(&mut buf) {
                Ok(0) => return Err("the client closed during the handshake".to_owned()),
                Ok(n) => {
                    if let Err(e) = session.feed(&buf[..n], &mut early) {
                        let mut out = Vec::new();
                        let _ = session.write_tls_into(&mut out);
                        let _ = io.try_write(&out);
                        return Err(e.to_string());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    match tokio::time::timeout(limit, run).await {
        Ok(Ok(())) => Ok(early),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("handshake timed out".to_owned()),
    }
}

async fn write_all(io: &Stream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        io.writable().await?;
        match io.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tokio future out of coop budget returns `Pending` without registering and calls its
    /// waker instead: through `KeptWaker` the driver learns it must poll it again.
    #[tokio::test]
    async fn a_kept_future_that_could_not_register_is_polled_again() {
        let kept = Arc::new(KeptWaker::default());
        let kept_waker = std::task::Waker::from(kept.clone());
        let mut sleep = Box::pin(tokio::time::sleep(Duration::from_millis(1)));
        let mut turns = 0;
        std::future::poll_fn(|cx| {
            turns += 1;
            kept.set_task(cx.waker());
            let mut kept_cx = Context::from_waker(&kept_waker);
            if turns == 1 {
                assert!(!kept.take());
                // Spend the task's budget.
                while tokio::task::coop::has_budget_remaining() {
                    let spend = std::pin::pin!(tokio::task::coop::consume_budget());
                    let _ = spend.poll(cx);
                }
                assert!(sleep.as_mut().poll(&mut kept_cx).is_pending());
                return Poll::Pending;
            }
            // Polled again because the kept waker was called (nothing else could wake us).
            if turns == 2 {
                assert!(kept.take(), "the kept waker was called");
            }
            sleep.as_mut().poll(&mut kept_cx)
        })
        .await;
        assert!(
            turns >= 3,
            "registered on the second turn, ready on a later one"
        );
    }
}
