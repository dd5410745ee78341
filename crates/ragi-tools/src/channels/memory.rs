//! The in-memory channel layer: one process, no backend, the embedded default.

use std::fmt;

use ragi::BoxFuture;

use super::{
    validate_channel, validate_group, ChannelError, ChannelLayer, Hub, Message, SubscribeOptions,
    Subscription,
};

/// The channel layer of one process: a [`Hub`] behind the [`ChannelLayer`] trait. Every
/// operation completes at once and never fails for want of a backend.
///
/// ```
/// use std::sync::Arc;
/// use ragi_tools::channels::{ChannelLayer, Delivery, Layer, MemoryLayer, Message, SubscribeOptions};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let layer: Layer = Arc::new(MemoryLayer::new());
/// let mut alice = layer.subscribe(SubscribeOptions::new().group("room.1")).await?;
/// let mut bob = layer.subscribe(SubscribeOptions::new().group("room.1")).await?;
///
/// layer.group_send("room.1", Message::text("hello, room")).await?;
/// layer.send(bob.name(), Message::text("psst, bob")).await?;
///
/// assert_eq!(alice.recv().await, Some(Delivery::Message(Message::text("hello, room"))));
/// assert_eq!(bob.recv().await, Some(Delivery::Message(Message::text("hello, room"))));
/// assert_eq!(bob.recv().await, Some(Delivery::Message(Message::text("psst, bob"))));
/// # Ok::<(), ragi_tools::channels::ChannelError>(())
/// # }).unwrap();
/// ```
///
/// Messages sent to a channel or group with no subscriber here are dropped (at-most-once
/// delivery, as a Redis `PUBLISH` nobody listens to). A resume id
/// ([`SubscribeOptions::resume_after`]) cannot be honoured without history: the subscription
/// starts with a [`Gap`](super::Gap) of reason [`NoHistory`](super::GapReason::NoHistory).
#[derive(Clone, Default)]
pub struct MemoryLayer {
    hub: Hub,
}

impl fmt::Debug for MemoryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLayer")
            .field("hub", &self.hub)
            .finish()
    }
}

impl MemoryLayer {
    /// A new, empty layer with a random process prefix.
    pub fn new() -> Self {
        Self { hub: Hub::new() }
    }

    /// A layer over an existing hub.
    pub fn with_hub(hub: Hub) -> Self {
        Self { hub }
    }

    /// The hub: the registry, for inspection (members of a group, live subscriptions).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }
}

fn ready<'a, T: Send + 'a>(v: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

impl ChannelLayer for MemoryLayer {
    fn process_prefix(&self) -> &str {
        self.hub.prefix()
    }

    fn subscribe(
        &self,
        options: SubscribeOptions,
    ) -> BoxFuture<'_, Result<Subscription, ChannelError>> {
        ready(self.hub.open(&options).map(|(sub, _)| {
            if options.resume_after.is_some() {
                self.hub.no_history(sub.name());
            }
            sub
        }))
    }

    fn send<'a>(
        &'a self,
        channel: &'a str,
        message: Message,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        ready(validate_channel(channel).map(|()| {
            self.hub.deliver(channel, &message);
        }))
    }

    fn group_add<'a>(
        &'a self,
        group: &'a str,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        ready(self.hub.add(group, channel).map(drop))
    }

    fn group_discard<'a>(
        &'a self,
        group: &'a str,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        ready(self.hub.discard(group, channel).map(drop))
    }

    fn group_send<'a>(
        &'a self,
        group: &'a str,
        message: Message,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        ready(validate_group(group).map(|()| {
            self.hub.deliver_group(group, &message);
        }))
    }

    fn close(&self) {
        self.hub.close_all();
    }
}
