//! A subscription: one process-specific channel and its bounded queue, read by one task.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use ragi::{Connection, DisconnectReason};

use super::hub::Hub;
use super::Message;

/// What a subscriber does when its queue is full and another message arrives: the
/// **slow-consumer policy**. Either way the publisher never waits and the other subscribers
/// are not delayed; only this subscriber is affected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Overflow {
    /// Drop the oldest queued message to make room, and tell the subscriber: its next item is
    /// a [`Gap`] (reason [`GapReason::Overflow`], with the count of dropped messages) where
    /// the dropped messages were. The default: a live feed keeps going, and the loss is
    /// visible.
    #[default]
    DropOldest,
    /// End the subscription ([`Ended::SlowConsumer`]): the queue is freed at once and the
    /// subscriber's next read says so. The app closes the client's connection (a WebSocket
    /// with 1013 "try again later"); the client reconnects and catches up by other means.
    Close,
}

/// The default queue bound of a subscription, in messages.
pub const DEFAULT_CAPACITY: usize = 256;

/// How to open a subscription: its queue bound and slow-consumer policy, the groups it joins
/// at once, the connection it belongs to, and where to resume.
///
/// ```
/// use ragi_tools::channels::{Overflow, SubscribeOptions};
/// # let connection = ragi::Connection::detached();
/// let options = SubscribeOptions::new()
///     .capacity(64)
///     .overflow(Overflow::Close)
///     .group("chat.lobby")
///     .bind(&connection); // removed the moment this client leaves
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct SubscribeOptions {
    pub(crate) capacity: usize,
    pub(crate) overflow: Overflow,
    pub(crate) groups: Vec<String>,
    pub(crate) connection: Option<Connection>,
    pub(crate) resume_after: Option<String>,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl SubscribeOptions {
    /// [`DEFAULT_CAPACITY`] messages, [`Overflow::DropOldest`], no group, no connection.
    pub fn new() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            overflow: Overflow::DropOldest,
            groups: Vec::new(),
            connection: None,
            resume_after: None,
        }
    }

    /// The queue bound, in messages (at least 1).
    pub fn capacity(mut self, messages: usize) -> Self {
        self.capacity = messages.max(1);
        self
    }

    /// The slow-consumer policy.
    pub fn overflow(mut self, policy: Overflow) -> Self {
        self.overflow = policy;
        self
    }

    /// Joins `group` as the subscription opens (before any message can be missed).
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.groups.push(group.into());
        self
    }

    /// Ties the subscription to a client's connection object: the moment the client leaves,
    /// the subscription is removed from every group and ends with
    /// [`Ended::ClientLeft`] and the connection's reason — even while the app is busy
    /// elsewhere.
    pub fn bind(mut self, connection: &Connection) -> Self {
        self.connection = Some(connection.clone());
        self
    }

    /// Resume after the message with this id (an SSE client's `Last-Event-ID`). A backend
    /// with history (Redis Streams) replays what came after it; one without (the in-memory
    /// layer) cannot, so the subscription starts with a [`Gap`] of reason
    /// [`GapReason::NoHistory`]: the subscriber learns that it may have missed messages.
    pub fn resume_after(mut self, id: impl Into<String>) -> Self {
        self.resume_after = Some(id.into());
        self
    }

    /// The groups to join.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// The id to resume after, if any.
    pub fn resume_id(&self) -> Option<&str> {
        self.resume_after.as_deref()
    }

    /// The queue bound.
    pub fn queue_capacity(&self) -> usize {
        self.capacity
    }

    /// The slow-consumer policy.
    pub fn overflow_policy(&self) -> Overflow {
        self.overflow
    }
}

/// Why messages may have been lost.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GapReason {
    /// This subscriber's queue was full ([`Overflow::DropOldest`] dropped messages).
    Overflow,
    /// The backend lost its connection and reconnected; what was published meanwhile did not
    /// arrive.
    Reconnected,
    /// A resume was asked for ([`SubscribeOptions::resume_after`]) and the backend keeps no
    /// history to replay from.
    NoHistory,
    /// A backend's own reason.
    Other(Arc<str>),
}

impl GapReason {
    /// The reason's name: `queue_overflow`, `reconnected`, `no_history`, or the backend's.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Overflow => "queue_overflow",
            Self::Reconnected => "reconnected",
            Self::NoHistory => "no_history",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for GapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A delivery that says "messages may have been lost here". The subscription goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    reason: GapReason,
    missed: Option<u64>,
}

impl Gap {
    /// A gap for `reason`, count unknown.
    pub fn new(reason: GapReason) -> Self {
        Self {
            reason,
            missed: None,
        }
    }

    /// The backend reconnected ([`GapReason::Reconnected`]).
    pub fn reconnected() -> Self {
        Self::new(GapReason::Reconnected)
    }

    /// With the number of messages known to be lost.
    pub fn with_missed(mut self, n: u64) -> Self {
        self.missed = Some(n);
        self
    }

    /// Why.
    pub fn reason(&self) -> &GapReason {
        &self.reason
    }

    /// How many messages were lost, when known (always for [`GapReason::Overflow`]).
    pub fn missed(&self) -> Option<u64> {
        self.missed
    }

    /// Folds `other` (the same reason) into this gap.
    fn absorb(&mut self, other: &Gap) {
        self.missed = match (self.missed, other.missed) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }
}

/// One item of a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A message.
    Message(Message),
    /// Messages may have been lost at this point.
    Gap(Gap),
}

/// Why a subscription ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ended {
    /// The queue overflowed under [`Overflow::Close`].
    SlowConsumer,
    /// The connection it was bound to ended abnormally, for this reason.
    ClientLeft(DisconnectReason),
    /// The layer was closed (a server shutting down).
    LayerClosed,
}

impl Ended {
    /// The disconnect reason this end means for the client's connection: `queue_overflow`,
    /// the client's own reason, or `server_shutdown`.
    pub fn disconnect_reason(&self) -> DisconnectReason {
        match self {
            Self::SlowConsumer => DisconnectReason::QueueOverflow,
            Self::ClientLeft(r) => r.clone(),
            Self::LayerClosed => DisconnectReason::ServerShutdown,
        }
    }
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SlowConsumer => f.write_str("the subscriber was too slow (queue overflow)"),
            Self::ClientLeft(r) => write!(f, "the client left ({r})"),
            Self::LayerClosed => f.write_str("the channel layer was closed"),
        }
    }
}

// ------------------------------------------------------------------------------------------
// The queue

enum Slot {
    Message(Message),
    Gap(Gap),
}

/// The bounded queue of one subscription, shared by the hub (which pushes) and the
/// [`Subscription`] (which pops).
pub(crate) struct Queue {
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
    capacity: usize,
    overflow: Overflow,
    state: Mutex<QueueState>,
    /// Woken when the subscription ends.
    ended: tokio::sync::Notify,
}

struct QueueState {
    slots: VecDeque<Slot>,
    /// Messages in `slots` (gaps are not counted against the bound; adjacent ones merge).
    messages: usize,
    ended: Option<Ended>,
    /// Still in the hub's registry (cleared once, by the hub, under its write lock).
    pub(crate) registered: bool,
    /// The groups it is a member of (kept by the hub, under its write lock).
    pub(crate) groups: Vec<Arc<str>>,
    waker: Option<Waker>,
    /// Messages dropped by the overflow policy, over the subscription's life.
    dropped: u64,
}

/// What a push did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued (possibly after dropping the oldest).
    Queued,
    /// The queue overflowed under [`Overflow::Close`]: the subscription just ended; the
    /// caller removes it from the registry.
    Closed,
    /// The subscription had already ended; nothing was done.
    Ended,
}

impl Queue {
    pub(crate) fn new(id: u64, name: Arc<str>, capacity: usize, overflow: Overflow) -> Self {
        Self {
            id,
            name,
            capacity: capacity.max(1),
            overflow,
            state: Mutex::new(QueueState {
                // Grows to the bound as needed, then stays: no allocation per message.
                slots: VecDeque::with_capacity(capacity.clamp(1, 16)),
                messages: 0,
                ended: None,
                registered: true,
                groups: Vec::new(),
                waker: None,
                dropped: 0,
            }),
            ended: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `message`, applying the overflow policy. Never waits.
    pub(crate) fn push(&self, message: Message) -> Pushed {
        let (waker, outcome) = {
            let mut st = self.lock();
            if st.ended.is_some() {
                return Pushed::Ended;
            }
            let outcome = if st.messages < self.capacity {
                st.slots.push_back(Slot::Message(message));
                st.messages += 1;
                Pushed::Queued
            } else {
                match self.overflow {
                    Overflow::DropOldest => {
                        drop_oldest(&mut st);
                        st.slots.push_back(Slot::Message(message));
                        st.messages += 1;
                        Pushed::Queued
                    }
                    Overflow::Close => {
                        st.dropped += st.messages as u64 + 1;
                        end(&mut st, Ended::SlowConsumer);
                        Pushed::Closed
                    }
                }
            };
            (st.waker.take(), outcome)
        };
        if let Some(w) = waker {
            w.wake();
        }
        if outcome == Pushed::Closed {
            self.ended.notify_waiters();
        }
        outcome
    }

    /// Queues a gap after what is queued (merged with a gap of the same reason just before).
    pub(crate) fn push_gap(&self, gap: Gap) {
        let waker = {
            let mut st = self.lock();
            if st.ended.is_some() {
                return;
            }
            match st.slots.back_mut() {
                Some(Slot::Gap(last)) if last.reason == gap.reason => last.absorb(&gap),
                _ => st.slots.push_back(Slot::Gap(gap)),
            }
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Ends the subscription (first end wins): the queue is emptied, except after
    /// [`Ended::LayerClosed`], where what is queued is still delivered.
    pub(crate) fn end(&self, why: Ended) -> bool {
        let waker = {
            let mut st = self.lock();
            if st.ended.is_some() {
                return false;
            }
            end(&mut st, why);
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        self.ended.notify_waiters();
        true
    }

    /// Resolves with the end once there is one.
    async fn wait_ended(&self) -> Ended {
        loop {
            let notified = self.ended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(e) = self.lock().ended.clone() {
                return e;
            }
            notified.await;
        }
    }

    pub(crate) fn with_membership<R>(
        &self,
        f: impl FnOnce(&mut bool, &mut Vec<Arc<str>>) -> R,
    ) -> R {
        let mut st = self.lock();
        let st = &mut *st;
        f(&mut st.registered, &mut st.groups)
    }

    fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let mut st = self.lock();
        if let Some(slot) = st.slots.pop_front() {
            return Poll::Ready(Some(match slot {
                Slot::Message(m) => {
                    st.messages -= 1;
                    Delivery::Message(m)
                }
                Slot::Gap(g) => Delivery::Gap(g),
            }));
        }
        if st.ended.is_some() {
            return Poll::Ready(None);
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn try_pop(&self) -> Option<Delivery> {
        let mut st = self.lock();
        match st.slots.pop_front()? {
            Slot::Message(m) => {
                st.messages -= 1;
                Some(Delivery::Message(m))
            }
            Slot::Gap(g) => Some(Delivery::Gap(g)),
        }
    }
}

fn end(st: &mut QueueState, why: Ended) {
    if why != Ended::LayerClosed {
        st.slots = VecDeque::new();
        st.messages = 0;
    }
    st.ended = Some(why);
}

/// Removes the oldest message and records the loss where it was: a gap just before the
/// remaining messages (merged with an overflow gap already there).
fn drop_oldest(st: &mut QueueState) {
    let Some(at) = st.slots.iter().position(|s| matches!(s, Slot::Message(_))) else {
        return;
    };
    st.slots.remove(at);
    st.messages -= 1;
    st.dropped += 1;
    if at > 0 {
        if let Some(Slot::Gap(g)) = st.slots.get_mut(at - 1) {
            if g.reason == GapReason::Overflow {
                g.missed = Some(g.missed.unwrap_or(0) + 1);
                return;
            }
        }
    }
    st.slots
        .insert(at, Slot::Gap(Gap::new(GapReason::Overflow).with_missed(1)));
}

// ------------------------------------------------------------------------------------------
// The subscription

/// One subscriber: a process-specific channel with its bounded queue, made by
/// [`ChannelLayer::subscribe`](super::ChannelLayer::subscribe).
///
/// Read it with [`recv`](Self::recv) (cancel safe, so it goes in a `tokio::select!` beside
/// the client), as a [`Stream`](futures_core::Stream), or through
/// [`select`](super::select) / [`ChannelReceiver`](super::ChannelReceiver). It yields
/// messages and gaps in order, then `None` once it ended ([`ended`](Self::ended) says why).
///
/// **Dropping it unsubscribes**: the channel leaves every group at once and messages sent to
/// it are dropped. Bound to a connection ([`SubscribeOptions::bind`]), it is also removed the
/// moment the client leaves.
pub struct Subscription {
    queue: Arc<Queue>,
    hub: Hub,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.queue.lock();
        f.debug_struct("Subscription")
            .field("name", &self.queue.name)
            .field("queued", &st.messages)
            .field("capacity", &self.queue.capacity)
            .field("overflow", &self.queue.overflow)
            .field("ended", &st.ended)
            .finish()
    }
}

impl Subscription {
    pub(crate) fn new(queue: Arc<Queue>, hub: Hub) -> Self {
        Self { queue, hub }
    }

    /// The channel's name (`specific.<process>!<n>`): give it to others so they can
    /// [`send`](super::ChannelLayer::send) to this subscriber alone.
    pub fn name(&self) -> &str {
        &self.queue.name
    }

    /// The next delivery, or `None` once the subscription ended. Cancel safe.
    pub async fn recv(&mut self) -> Option<Delivery> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next delivery.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.queue.poll_pop(cx)
    }

    /// The next delivery if one is queued now.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        self.queue.try_pop()
    }

    /// Why the subscription ended, once it did.
    pub fn ended(&self) -> Option<Ended> {
        self.queue.lock().ended.clone()
    }

    /// Resolves when the subscription ends (at once if it did), without taking deliveries.
    /// Cancel safe. An app blocked sending to a slow client races its send against this, so
    /// a subscriber closed for falling behind is closed now, not after its client reads.
    pub async fn closed(&self) -> Ended {
        self.queue.wait_ended().await
    }

    /// Messages queued now.
    pub fn len(&self) -> usize {
        self.queue.lock().messages
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.lock().slots.is_empty()
    }

    /// The queue bound.
    pub fn capacity(&self) -> usize {
        self.queue.capacity
    }

    /// The slow-consumer policy.
    pub fn overflow(&self) -> Overflow {
        self.queue.overflow
    }

    /// Messages this subscriber lost to its overflow policy so far.
    pub fn dropped(&self) -> u64 {
        self.queue.lock().dropped
    }

    /// The groups it is a member of in this process.
    pub fn groups(&self) -> Vec<String> {
        self.queue
            .with_membership(|_, groups| groups.iter().map(|g| g.to_string()).collect())
    }

    /// Ends the subscription now (as dropping it would, but keeping the handle):
    /// [`Ended::ClientLeft`] with `reason`.
    pub fn close(&mut self, reason: DisconnectReason) {
        self.hub.end(&self.queue, Ended::ClientLeft(reason));
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(&self.queue);
    }
}

impl futures_core::Stream for Subscription {
    type Item = Delivery;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.get_mut().poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(capacity: usize, overflow: Overflow) -> Queue {
        Queue::new(1, Arc::from("specific.t!1"), capacity, overflow)
    }

    fn pop(q: &Queue) -> Option<Delivery> {
        q.try_pop()
    }

    fn msg(n: u32) -> Message {
        Message::text(n.to_string())
    }

    fn text(d: Option<Delivery>) -> String {
        match d {
            Some(Delivery::Message(m)) => m.as_str().unwrap().to_owned(),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn drop_oldest_keeps_the_newest_and_marks_the_loss_where_it_happened() {
        let q = q(3, Overflow::DropOldest);
        for n in 0..7 {
            assert_eq!(q.push(msg(n)), Pushed::Queued);
        }
        // 0..=3 dropped (4 messages), one merged gap before the three newest.
        match pop(&q) {
            Some(Delivery::Gap(g)) => {
                assert_eq!(g.reason(), &GapReason::Overflow);
                assert_eq!(g.missed(), Some(4));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(text(pop(&q)), "4");
        assert_eq!(text(pop(&q)), "5");
        assert_eq!(text(pop(&q)), "6");
        assert!(pop(&q).is_none());
        assert_eq!(q.lock().dropped, 4);
    }

    #[test]
    fn a_backend_gap_sits_after_what_was_queued_and_is_never_dropped() {
        let q = q(2, Overflow::DropOldest);
        q.push(msg(1));
        q.push_gap(Gap::reconnected());
        q.push_gap(Gap::reconnected()); // merged
        q.push(msg(2));
        q.push(msg(3)); // drops 1: the overflow gap goes where 1 was, before the reconnect gap
        let got: Vec<String> = std::iter::from_fn(|| pop(&q))
            .map(|d| match d {
                Delivery::Message(m) => m.as_str().unwrap().to_owned(),
                Delivery::Gap(g) => format!("gap:{}:{:?}", g.reason(), g.missed()),
            })
            .collect();
        assert_eq!(
            got,
            [
                "gap:queue_overflow:Some(1)",
                "gap:reconnected:None",
                "2",
                "3"
            ]
        );
    }

    #[test]
    fn close_policy_ends_the_subscription_and_frees_the_queue() {
        let q = q(2, Overflow::Close);
        assert_eq!(q.push(msg(1)), Pushed::Queued);
        assert_eq!(q.push(msg(2)), Pushed::Queued);
        assert_eq!(q.push(msg(3)), Pushed::Closed);
        assert_eq!(q.push(msg(4)), Pushed::Ended);
        assert!(pop(&q).is_none());
        assert_eq!(q.lock().ended, Some(Ended::SlowConsumer));
        assert_eq!(
            q.lock().slots.capacity(),
            0,
            "the queue's memory is released"
        );
        assert_eq!(
            Ended::SlowConsumer.disconnect_reason(),
            DisconnectReason::QueueOverflow
        );
    }

    #[test]
    fn layer_closed_delivers_what_is_queued_first() {
        let q = q(4, Overflow::DropOldest);
        q.push(msg(1));
        assert!(q.end(Ended::LayerClosed));
        assert!(!q.end(Ended::SlowConsumer), "the first end wins");
        assert_eq!(text(pop(&q)), "1");
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(q.poll_pop(&mut cx), Poll::Ready(None));
    }
}
