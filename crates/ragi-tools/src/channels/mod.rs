//! Channel layers: messages between the connections of one process, or of many.
//!
//! A WebSocket session or an event stream that should hear what others publish — a chat
//! room, a live feed, a job's progress — **subscribes**: it gets a process-specific channel
//! with its own bounded queue, joins **groups**, and reads deliveries while it also watches
//! its client. Anyone holding the layer **sends** to a channel or a group.
//!
//! ```
//! use std::sync::Arc;
//! use ragi_tools::channels::{ChannelLayer, Delivery, Layer, MemoryLayer, Message, SubscribeOptions};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let layer: Layer = Arc::new(MemoryLayer::new()); // the embedded default
//! # let connection = ragi::Connection::detached();
//! let mut sub = layer
//!     .subscribe(SubscribeOptions::new().group("news").bind(&connection))
//!     .await?;
//! layer.group_send("news", Message::json(&serde_json::json!({"headline": "ragi 0.1"}))?).await?;
//! match sub.recv().await {
//!     Some(Delivery::Message(m)) => assert_eq!(m.as_str(), Some(r#"{"headline":"ragi 0.1"}"#)),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), ragi_tools::channels::ChannelError>(())
//! # }).unwrap();
//! ```
//!
//! # The model
//!
//! The API is Django Channels' (`send`, `group_add`, `group_discard`, `group_send`, the
//! process-specific channel names `specific.<process>!<n>`), the storage model is not: a
//! channel is a subscription's **in-memory queue in the process that holds it**, and group
//! membership is kept per process ([`Hub`]). A distributed backend (Redis, issue 13) carries
//! each send to the processes that have members and fans it out there in memory — the shape
//! of Django's `RedisPubSubChannelLayer`, Phoenix.PubSub and Socket.IO's Redis adapter —
//! with their weak points made strong:
//!
//! * **Bounded queues, a documented slow-consumer policy.** Each subscription holds at most
//!   [`SubscribeOptions::capacity`] messages. When a message arrives at a full queue, the
//!   subscriber's [`Overflow`] policy applies to **that subscriber only**:
//!   [`DropOldest`](Overflow::DropOldest) (the default) drops its oldest message and puts a
//!   [`Gap`] in its place; [`Close`](Overflow::Close) ends its subscription
//!   ([`Ended::SlowConsumer`]) and frees the queue. A send never waits for a subscriber, so a
//!   client that does not read delays neither the publisher nor the other subscribers.
//! * **Loss is never silent.** A subscription yields [`Delivery::Gap`] where messages may
//!   have been lost: its own overflow, a backend that lost its connection and reconnected
//!   ([`Hub::gap_all`]), a resume the backend cannot honour. The apps turn a gap into
//!   something the client can act on (the chat sends `{"type": "gap"}`, the SSE apps a
//!   `gap` event).
//! * **Failures are errors, never hangs.** Every [`ChannelLayer`] operation completes or
//!   fails within a bounded time; publishing while a backend is down fails with
//!   [`ChannelErrorKind::Unavailable`] (a 503 when a handler returns it with `?`).
//! * **Unsubscribe on drop, and on departure.** Dropping a [`Subscription`] leaves its groups
//!   at once. Bound to a connection object ([`SubscribeOptions::bind`]), it is removed the
//!   moment the client leaves — from the connection's `on_disconnect`, not when the handler
//!   gets round to it — and ends with [`Ended::ClientLeft`] and the reason.
//! * **No membership expiry.** Membership lives and dies with the subscription (Django drops
//!   members 24 h after `group_add`, connected or not).
//!
//! Delivery is at-most-once and in order per sender: a message for a channel or group with no
//! subscriber is dropped. A group send costs O(members) — a reference-count increment of the
//! shared [`Message`] per member, no allocation per member.
//!
//! # Waiting on the client and the channel
//!
//! [`Subscription::recv`] is cancel safe; [`select`] waits on a client future and a
//! subscription at once, and [`ChannelReceiver`] is PAGI's `$receive` wrapper. See
//! [`receive`](mod@receive).
//!
//! # Presence
//!
//! [`Presence`] (beside the layer, async and backend-neutral too) tracks who is in a topic
//! through which connections, and the reason of the last leave; [`MemoryPresence`] is the
//! in-memory default. See [`presence`](mod@presence).
//!
//! # Writing a backend
//!
//! Implement [`ChannelLayer`] around a [`Hub`]: open subscriptions with [`Hub::open`] (and
//! subscribe upstream to the groups it names as having their first local member, as
//! [`Hub::add`] does for a later `group_add`),
//! publish upstream on `send`/`group_send` with a timeout, hand what arrives to
//! [`Hub::deliver`] / [`Hub::deliver_group`], call [`Hub::gap_all`] when the upstream
//! connection drops, and unsubscribe upstream from the groups [`HubHooks::groups_emptied`]
//! names. [`Message::encode`] / [`Message::decode`] give a wire form.

mod error;
pub mod hub;
mod memory;
mod message;
mod name;
pub mod presence;
pub mod receive;
mod subscription;

use std::sync::Arc;

use ragi::BoxFuture;

pub(crate) use error::into_error;
pub use error::ChannelError;
pub use error::ChannelErrorKind;
pub use hub::{Hub, HubHooks};
pub use memory::MemoryLayer;
pub use message::{Message, MessageKind, MAX_LABEL_LEN};
pub use name::{process_of, validate_channel, validate_group, MAX_NAME_LEN};
pub use presence::{MemberState, MemoryPresence, Presence, PresenceChange};
pub use receive::{select, ChannelReceiver, Incoming};
pub use subscription::{
    Delivery, Ended, Gap, GapReason, Overflow, SubscribeOptions, Subscription, DEFAULT_CAPACITY,
};

/// A channel layer shared by every app of a server: `Arc<dyn ChannelLayer>`.
pub type Layer = Arc<dyn ChannelLayer>;

/// A channel layer: async and backend-neutral. See the [module documentation](self).
///
/// Every operation completes or fails within a bounded time; none waits on a subscriber.
/// Names follow [`validate_group`] and [`validate_channel`]; a bad one is
/// [`ChannelErrorKind::InvalidName`].
pub trait ChannelLayer: Send + Sync + 'static {
    /// The part of this process's channel names before the `!` (`specific.<id>`): a backend
    /// routes a [`send`](Self::send) to the process it names.
    fn process_prefix(&self) -> &str;

    /// Opens a subscription: a new process-specific channel with a bounded queue, joined to
    /// `options`' groups before any message of theirs can be missed, bound to a connection
    /// if one is given. Fails (at once) when the backend cannot subscribe.
    fn subscribe(
        &self,
        options: SubscribeOptions,
    ) -> BoxFuture<'_, Result<Subscription, ChannelError>>;

    /// Sends `message` to the channel `channel` (a subscription's
    /// [`name`](Subscription::name), in any process). Dropped if nobody holds it.
    fn send<'a>(
        &'a self,
        channel: &'a str,
        message: Message,
    ) -> BoxFuture<'a, Result<(), ChannelError>>;

    /// Adds `channel`, a live subscription of **this** process, to `group` (a no-op if it is
    /// a member already). [`ChannelErrorKind::UnknownChannel`] for any other channel.
    fn group_add<'a>(
        &'a self,
        group: &'a str,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<(), ChannelError>>;

    /// Removes `channel` from `group` (a no-op if it is not a member).
    fn group_discard<'a>(
        &'a self,
        group: &'a str,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<(), ChannelError>>;

    /// Sends `message` to every member of `group`, in every process. Never waits for a
    /// subscriber: each full queue applies its own [`Overflow`] policy.
    fn group_send<'a>(
        &'a self,
        group: &'a str,
        message: Message,
    ) -> BoxFuture<'a, Result<(), ChannelError>>;

    /// Closes the layer: every subscription of this process ends
    /// ([`Ended::LayerClosed`]) after delivering what it has queued. The default does
    /// nothing.
    fn close(&self) {}
}

impl<L: ChannelLayer + ?Sized> ChannelLayer for Arc<L> {
    fn process_prefix(&self) -> &str {
        (**self).process_prefix()
    }

    fn subscribe(
        &self,
        options: SubscribeOptions,
    ) -> BoxFuture<'_, Result<Subscription, ChannelError>> {
        (**self).subscribe(options)
    }

    fn send<'a>(
        &'a self,
        channel: &'a str,
        message: Message,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        (**self).send(channel, message)
    }

    fn group_add<'a>(
        &'a self,
        group: &'a str,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        (**self).group_add(group, channel)
    }

    fn group_discard<'a>(
        &'a self,
        group: &'a str,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        (**self).group_discard(group, channel)
    }

    fn group_send<'a>(
        &'a self,
        group: &'a str,
        message: Message,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        (**self).group_send(group, message)
    }

    fn close(&self) {
        (**self).close()
    }
}
