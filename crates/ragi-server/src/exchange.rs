//! One HTTP exchange as the driver and the app share it.
//!
//! The connection driver owns the socket; the app runs beside it (inline for its first poll,
//! then in its own task). They meet here, behind one short lock:
//!
//! * request body pieces flow driver → app, read ahead into a bounded queue
//!   ([`Config::read_ahead`](crate::Config::read_ahead)); the app taking pieces wakes the driver
//!   when the queue drains, so the driver resumes reading;
//! * response bytes flow app → driver through a [`ResponseEncoder`] into an [`OutQueue`];
//!   `send` waits while more than the high watermark is unwritten, until it falls below the
//!   low watermark;
//! * the end: the driver records a disconnect (the [`Connection`](ragi::Connection) object first,
//!   then the `Disconnect` event for `receive`), the app records its return.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use ragi::{
    AppResult, Body, BoxFuture, Connection, ConnectionControl, DisconnectReason, ReceiveEvent,
    SendError, SendEvent, SendSink, SharedReceiveSource, TrySendError,
};
use tokio::sync::Notify;

use crate::lifecycle::ConnShared;
use crate::proto::h1::response::{OutQueue, ResponseContext, ResponseEncoder};

/// The lock the driver and the app share an exchange behind.
///
/// Every section under it is a few field updates: no waiting, no callback, no allocation that
/// grows with input (the encoder moves the app's buffers, it does not copy them). For sections
/// that short a spin lock fits, and its release is a plain store where `std::sync::Mutex` needs
/// a second atomic read-modify-write to look for sleepers. On a pipelined hello-world that is
/// six fewer atomic instructions per request, about 4 % of the server's CPU. Contention is
/// rare (the app and the driver on two threads touching one exchange at once); a waiter
/// yields its thread rather than burning it.
type ShortLock<T> = spin::mutex::SpinMutex<T, spin::relax::Yield>;
type ShortGuard<'a, T> = spin::mutex::SpinMutexGuard<'a, T>;

/// An exchange's state as [`Exchange::state`] gives it to the driver.
pub(crate) enum StateRef<'a> {
    /// The driver holds the only handle: no lock.
    Alone(&'a mut ExState),
    /// Under the lock.
    Locked(ShortGuard<'a, ExState>),
}

impl std::ops::Deref for StateRef<'_> {
    type Target = ExState;

    fn deref(&self) -> &ExState {
        match self {
            StateRef::Alone(st) => st,
            StateRef::Locked(st) => st,
        }
    }
}

impl std::ops::DerefMut for StateRef<'_> {
    fn deref_mut(&mut self) -> &mut ExState {
        match self {
            StateRef::Alone(st) => st,
            StateRef::Locked(st) => st,
        }
    }
}

/// How the app's call ended.
#[derive(Debug, Clone)]
pub(crate) enum AppOutcome {
    Returned,
    Failed(String),
}

pub(crate) struct ExState {
    // Request body, driver → app.
    pub(crate) body: VecDeque<Bytes>,
    pub(crate) body_buffered: usize,
    /// Every body byte has been queued.
    pub(crate) body_complete: bool,
    final_delivered: bool,
    recv_waker: Option<Waker>,
    /// The request has `expect: 100-continue` and no `100 Continue` was sent yet.
    pub(crate) expect_continue: bool,
    /// The app asked for body bytes (time to send `100 Continue`).
    pub(crate) continue_wanted: bool,
    /// Set once the exchange ended abnormally (step 5 of the spec's order).
    pub(crate) disconnect: Option<DisconnectReason>,
    // Response, app → driver.
    pub(crate) enc: ResponseEncoder,
    pub(crate) out: OutQueue,
    /// Response bytes given to the driver and not yet written to the socket.
    pub(crate) unflushed: usize,
    pub(crate) app: Option<AppOutcome>,
    /// Above the high watermark since the last drain (the `transport` hysteresis).
    above_high: bool,
}

impl ExState {
    fn new(
        out: OutQueue,
        enc: ResponseEncoder,
        body_complete: bool,
        expect_continue: bool,
    ) -> Self {
        Self {
            body: VecDeque::new(),
            body_buffered: 0,
            body_complete,
            final_delivered: false,
            recv_waker: None,
            expect_continue: expect_continue && !body_complete,
            continue_wanted: false,
            disconnect: None,
            enc,
            out,
            unflushed: 0,
            app: None,
            above_high: false,
        }
    }

    /// Makes this state what [`ExState::new`] makes, for the next request, keeping the
    /// allocations (body queue, output buffer) and the encoder's server header.
    fn reset(&mut self, ctx: ResponseContext, body_complete: bool, expect_continue: bool) {
        // `clear` of an empty queue is an out-of-line call on every request: skipped.
        if !self.body.is_empty() {
            self.body.clear();
        }
        self.body_buffered = 0;
        self.body_complete = body_complete;
        self.final_delivered = false;
        self.recv_waker = None;
        self.expect_continue = expect_continue && !body_complete;
        self.continue_wanted = false;
        self.disconnect = None;
        self.enc.renew(ctx);
        if !self.out.is_empty() {
            self.out.clear();
        }
        self.unflushed = 0;
        self.app = None;
        self.above_high = false;
    }
}

pub(crate) struct Exchange {
    pub(crate) conn: Arc<ConnShared>,
    pub(crate) control: ConnectionControl,
    st: ShortLock<ExState>,
    room: Notify,
    /// `transport` extension callbacks.
    hooks: crate::shared::TransportHooks,
    /// The app is being polled inline by the driver, which will look at the exchange right
    /// after; senders need not wake it.
    inline: std::sync::atomic::AtomicBool,
    /// The app returned `Ok` from its inline poll: [`AppOutcome::Returned`] without the lock
    /// (the usual end; any other outcome is in [`ExState::app`]).
    returned: std::sync::atomic::AtomicBool,
    /// The request has no body: its one `Request` event (empty, final) needs no lock.
    no_body: bool,
    /// That event was delivered. Only the scope's one `Receiver` polls, so a load and a store
    /// (no read-modify-write) cannot deliver it twice.
    no_body_delivered: std::sync::atomic::AtomicBool,
    read_ahead: usize,
    high_water: usize,
    low_water: usize,
}

impl Exchange {
    pub(crate) fn new(
        out: OutQueue,
        conn: Arc<ConnShared>,
        control: ConnectionControl,
        enc: ResponseEncoder,
        body_complete: bool,
        expect_continue: bool,
        cfg: &crate::Config,
    ) -> Arc<Self> {
        Arc::new(Self {
            conn,
            control,
            st: ShortLock::new(ExState::new(out, enc, body_complete, expect_continue)),
            room: Notify::new(),
            hooks: Default::default(),
            inline: std::sync::atomic::AtomicBool::new(false),
            returned: std::sync::atomic::AtomicBool::new(false),
            no_body: body_complete,
            no_body_delivered: std::sync::atomic::AtomicBool::new(false),
            read_ahead: cfg.read_ahead,
            high_water: cfg.write_high_water,
            low_water: cfg.write_low_water.min(cfg.write_high_water),
        })
    }

    /// Readies a finished exchange that nothing else refers to any more for the next request
    /// of its connection, as [`Exchange::new`] would make it, and returns that request's
    /// connection object. The allocations stay: the exchange, its output buffer, its body
    /// queue, and the connection object when the app kept no handle of it.
    pub(crate) fn reuse(
        &mut self,
        ctx: ResponseContext,
        body_complete: bool,
        expect_continue: bool,
    ) -> Connection {
        let connection = self.control.reuse().unwrap_or_else(|| {
            let (connection, control) = Connection::pair();
            self.control = control;
            connection
        });
        self.st.get_mut().reset(ctx, body_complete, expect_continue);
        self.hooks.clear();
        *self.inline.get_mut() = false;
        *self.returned.get_mut() = false;
        self.no_body = body_complete;
        *self.no_body_delivered.get_mut() = false;
        connection
    }

    /// The exchange itself when `arc` is its only handle: [`Arc::get_mut`] without the
    /// compare-and-swap that `get_mut` spends on locking out `Weak` upgrades. The driver asks up
    /// to three times per request ([`Exchange::state`] once the app is done, when the response
    /// is written, and to recycle the exchange for the next request); each of those atomic
    /// read-modify-writes cost a few nanoseconds.
    ///
    /// Nothing makes a `Weak<Exchange>` (no `Arc::downgrade` of one anywhere in this crate,
    /// and the type is private to it), so the strong count alone says who can reach it.
    #[allow(unsafe_code)]
    pub(crate) fn unique(arc: &mut Arc<Exchange>) -> Option<&mut Exchange> {
        if Arc::strong_count(arc) != 1 {
            return None;
        }
        debug_assert_eq!(Arc::weak_count(arc), 0, "Exchange is never downgraded");
        // Pairs with the `Release` decrement of every other handle's drop (the count we read
        // was written by the last of them): their uses of the exchange happen before ours.
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        // SAFETY: the strong count is 1 and that handle is `arc`, which we borrow mutably, so
        // no other `Arc` exists and no `&Exchange` derived from `arc` is alive; no `Weak`
        // exists (see above), so no other thread can make a new handle either: this is the
        // only reference for as long as the borrow of `arc` lasts. The fence above makes every
        // earlier access by other threads happen before ours. `Arc::as_ptr` points at the
        // value inside the allocation, with the provenance of the `Arc`'s own pointer (the one
        // `Arc::get_mut` writes through).
        Some(unsafe { &mut *Arc::as_ptr(arc).cast_mut() })
    }

    /// The state, without locking: nothing else holds the exchange.
    pub(crate) fn state_mut(&mut self) -> &mut ExState {
        self.st.get_mut()
    }

    /// The state for the driver: borrowed outright when its handle is the only one left (the
    /// app finished in its inline poll and dropped `send`, `receive` and the scope: the usual
    /// short request), else under the lock.
    pub(crate) fn state(arc: &mut Arc<Exchange>) -> StateRef<'_> {
        // Asked first, so that the borrow of `arc` is not held across both branches; a count
        // of 1 cannot rise behind our back (nobody else has a handle to clone).
        if Arc::strong_count(arc) == 1 {
            let ex = Exchange::unique(arc).expect("a count of 1 stays 1");
            StateRef::Alone(ex.st.get_mut())
        } else {
            StateRef::Locked(arc.st.lock())
        }
    }

    /// Whether the app returned `Ok` from its inline poll.
    pub(crate) fn returned_inline(&self) -> bool {
        self.returned.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn lock(&self) -> ShortGuard<'_, ExState> {
        self.st.lock()
    }

    /// Whether the body queue has room for more read-ahead.
    pub(crate) fn wants_body(&self) -> bool {
        self.lock().body_buffered < self.read_ahead
    }

    /// Queues a body piece for the app.
    pub(crate) fn push_body(&self, data: Bytes, complete: bool) {
        let waker = {
            let mut st = self.lock();
            st.body_buffered += data.len();
            if !data.is_empty() {
                st.body.push_back(data);
            }
            st.body_complete |= complete;
            st.recv_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Ends the exchange abnormally: the connection object first (steps 1–4), then the
    /// `Disconnect` event (step 5), then wakes everyone waiting.
    pub(crate) fn disconnect(&self, reason: DisconnectReason) -> bool {
        if !self.control.disconnect(reason.clone()) {
            return false;
        }
        let waker = {
            let mut st = self.lock();
            st.disconnect = Some(reason);
            st.recv_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        self.room.notify_waiters();
        true
    }

    /// The driver wrote `n` of this exchange's bytes.
    pub(crate) fn written(&self, n: usize) {
        let (wake, drained) = {
            let mut st = self.lock();
            let before = st.unflushed;
            st.unflushed = st.unflushed.saturating_sub(n);
            let drained = st.above_high && st.unflushed <= self.low_water;
            if drained {
                st.above_high = false;
            }
            (
                before > self.low_water && st.unflushed <= self.low_water,
                drained,
            )
        };
        if wake {
            self.room.notify_waiters();
        }
        if drained {
            self.hooks.fire(false);
        }
    }

    fn wake_driver(&self) {
        if !self.inline.load(std::sync::atomic::Ordering::Relaxed) {
            self.conn.wake.notify_one();
        }
    }

    /// How the app's call ended, if it did, given the state and
    /// [`returned_inline`](Self::returned_inline).
    pub(crate) fn outcome(returned_inline: bool, st: &ExState) -> Option<AppOutcome> {
        match &st.app {
            Some(outcome) => Some(outcome.clone()),
            None => returned_inline.then_some(AppOutcome::Returned),
        }
    }

    pub(crate) fn finish_app(&self, outcome: AppOutcome) {
        self.lock().app = Some(outcome);
        self.conn.wake.notify_one();
    }

    async fn send_event(&self, event: SendEvent) -> Result<(), SendError> {
        // Backpressure with hysteresis: above the high watermark, wait until below the low one.
        let mut limit = self.high_water;
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            {
                let st = self.lock();
                if let Some(r) = &st.disconnect {
                    return Err(SendError::disconnected(r.clone()));
                }
                if st.unflushed <= limit || matches!(event, SendEvent::ResponseStart { .. }) {
                    break;
                }
                notified.as_mut().enable();
            }
            limit = self.low_water;
            notified.await;
        }
        if let SendEvent::ResponseBody {
            body:
                Body::File {
                    path,
                    offset,
                    length,
                },
            more,
        } = event
        {
            return self.send_file(path, offset, length, more).await;
        }
        self.send_now(event)
    }

    /// Applies one event under the lock (no waiting).
    fn send_now(&self, event: SendEvent) -> Result<(), SendError> {
        self.apply(event, false).map_err(|e| match e {
            TrySendError::Failed(e) => e,
            TrySendError::WouldWait(_) => unreachable!("apply without a room check never waits"),
        })
    }

    /// Applies one event under one lock. With `check_room`, a body piece above the high
    /// watermark is given back instead (the caller waits for room).
    fn apply(&self, event: SendEvent, check_room: bool) -> Result<(), TrySendError> {
        let mut guard = self.lock();
        let st = &mut *guard;
        if let Some(r) = &st.disconnect {
            return Err(SendError::disconnected(r.clone()).into());
        }
        if check_room
            && st.unflushed > self.high_water
            && !matches!(event, SendEvent::ResponseStart { .. })
        {
            return Err(TrySendError::WouldWait(event));
        }
        let before = st.out.len();
        match event {
            SendEvent::ResponseStart {
                status,
                headers,
                trailers,
            } => {
                st.enc.start(status, headers, trailers)?;
                self.control.set_response_started();
                return Ok(());
            }
            SendEvent::ResponseBody {
                body: Body::Bytes(data),
                more,
            } => {
                st.enc.body(data, more, &mut st.out)?;
            }
            SendEvent::ResponseTrailers { headers } => {
                st.enc.trailers(headers, &mut st.out)?;
            }
            SendEvent::FullFlush => {
                st.enc.flush_head(&mut st.out)?;
            }
            other => {
                return Err(SendError::invalid_event(format!(
                    "{} is not valid in an http scope",
                    other.name()
                ))
                .into());
            }
        }
        let added = st.out.len() - before;
        st.unflushed += added;
        let high = !st.above_high && st.unflushed > self.high_water;
        if high {
            st.above_high = true;
        }
        drop(guard);
        self.wake_driver();
        if high {
            self.hooks.fire(true);
        }
        Ok(())
    }

    async fn send_file(
        &self,
        path: std::path::PathBuf,
        offset: u64,
        length: Option<u64>,
        more: bool,
    ) -> Result<(), SendError> {
        crate::shared::send_file(&path, offset, length, more, |event| {
            Box::pin(self.send_event(event))
        })
        .await
    }
}

/// The exchange's outgoing buffer, as the `transport` extension shows it.
impl ragi::TransportState for Exchange {
    fn buffered_amount(&self) -> usize {
        self.lock().unflushed
    }

    fn high_water(&self) -> usize {
        self.high_water
    }

    fn low_water(&self) -> usize {
        self.low_water
    }

    fn on_high_water(&self, callback: Box<dyn Fn() + Send + Sync>) {
        self.hooks.on_high_water(callback);
    }

    fn on_drain(&self, callback: Box<dyn Fn() + Send + Sync>) {
        self.hooks.on_drain(callback);
    }
}

/// The exchange is the `receive` side of its http scope.
impl SharedReceiveSource for Exchange {
    fn poll_receive(&self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        use std::sync::atomic::Ordering;
        let ex = self;
        if ex.no_body && !ex.no_body_delivered.load(Ordering::Acquire) {
            ex.no_body_delivered.store(true, Ordering::Release);
            return Poll::Ready(ReceiveEvent::Request {
                body: Bytes::new(),
                more: false,
            });
        }
        let mut st = ex.lock();
        if st.expect_continue && !st.continue_wanted {
            st.continue_wanted = true;
            ex.wake_driver();
        }
        if let Some(piece) = st.body.pop_front() {
            let was_full = st.body_buffered >= ex.read_ahead;
            st.body_buffered -= piece.len();
            let more = !(st.body.is_empty() && st.body_complete);
            st.final_delivered = !more;
            if was_full {
                ex.wake_driver();
            }
            return Poll::Ready(ReceiveEvent::Request { body: piece, more });
        }
        if st.body_complete && !st.final_delivered && !ex.no_body {
            st.final_delivered = true;
            return Poll::Ready(ReceiveEvent::Request {
                body: Bytes::new(),
                more: false,
            });
        }
        if let Some(r) = &st.disconnect {
            return Poll::Ready(ReceiveEvent::Disconnect { reason: r.clone() });
        }
        st.recv_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The exchange is the `send` side of its http scope.
impl SendSink for Exchange {
    fn send(&self, event: SendEvent) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(self.send_event(event))
    }

    fn try_send(&self, event: SendEvent) -> Result<(), TrySendError> {
        // Files are read in pieces, with waiting: the async path.
        if matches!(
            event,
            SendEvent::ResponseBody {
                body: Body::File { .. },
                ..
            }
        ) {
            return Err(TrySendError::WouldWait(event));
        }
        self.apply(event, true)
    }
}

/// Polls an app call once; a panic is a failure, with its message. Both protocols use it, for
/// the inline first poll and in the app's task.
pub(crate) fn poll_app(
    fut: &mut BoxFuture<'static, AppResult>,
    cx: &mut Context<'_>,
) -> Poll<AppOutcome> {
    Pin::new(&mut crate::shared::CatchUnwind(fut))
        .poll(cx)
        .map(|r| match r {
            Ok(Ok(())) => AppOutcome::Returned,
            Ok(Err(e)) => AppOutcome::Failed(e.to_string()),
            Err(panic) => AppOutcome::Failed(panic),
        })
}

/// Runs an app call: polled once inline (a fast app answers without a task switch, and
/// pipelined answers coalesce into one write), then, if it is not finished, in its own task so
/// that the driver goes on watching the socket. Panics become [`AppOutcome::Failed`].
pub(crate) fn run_app(ex: &Arc<Exchange>, mut fut: BoxFuture<'static, AppResult>) {
    ex.inline.store(true, std::sync::atomic::Ordering::Relaxed);
    let first = poll_app(&mut fut, &mut Context::from_waker(Waker::noop()));
    ex.inline.store(false, std::sync::atomic::Ordering::Relaxed);
    let outcome = match first {
        Poll::Pending => {
            ex.lock().enc.forget_arrival();
            let conn = ex.conn.clone();
            conn.task_started();
            let ex = ex.clone();
            tokio::spawn(async move {
                let id = conn.id.clone();
                let task = AppTask { fut, ex: Some(ex) };
                crate::shared::panics::OnConn { id, fut: task }.await;
                conn.task_done();
            });
            return;
        }
        Poll::Ready(outcome) => outcome,
    };
    // Inline: the driver steps right after this returns; no wake-up needed.
    match outcome {
        AppOutcome::Returned => ex
            .returned
            .store(true, std::sync::atomic::Ordering::Release),
        outcome => ex.lock().app = Some(outcome),
    }
}

struct AppTask {
    fut: BoxFuture<'static, AppResult>,
    ex: Option<Arc<Exchange>>,
}

impl Future for AppTask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let Poll::Ready(outcome) = poll_app(&mut this.fut, cx) else {
            return Poll::Pending;
        };
        if let Some(ex) = this.ex.take() {
            ex.finish_app(outcome);
        }
        Poll::Ready(())
    }
}
