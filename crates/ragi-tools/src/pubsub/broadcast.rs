//! WebSocket broadcast: what one client of a topic sends, every client of the topic receives.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use ragi_tools::channels::{Layer, MemoryLayer, Message};
//! use ragi_tools::pubsub::WsBroadcast;
//!
//! let layer: Layer = Arc::new(MemoryLayer::new());
//! // Mounted at /rooms: ws://host/rooms/lobby joins the topic "lobby".
//! let rooms = WsBroadcast::new(layer)
//!     .echo_self(true) // senders get their own messages too
//!     .keepalive(Duration::from_secs(20), Duration::from_secs(10));
//!
//! # async fn announce(rooms: WsBroadcast) -> Result<(), ragi_tools::channels::ChannelError> {
//! rooms.broadcast("lobby", Message::text("the server says hi")).await?; // from server code
//! # Ok(()) }
//! # fn is_app(_: impl ragi::App) {}
//! # is_app(rooms);
//! ```
//!
//! # Behaviour
//!
//! The handshake is accepted once the subscription is open (a layer that cannot subscribe
//! denies it with 503). Text stays text and binary stays binary. By default a sender does not
//! receive its own messages (PAGI-Tools' `echo_self` default); messages are recognised by
//! their origin, so this holds across processes. A gap reaches the client as a text message
//! `{"type": "gap", "reason", "missed"}` ([`GapAction`] changes that). A subscriber that falls
//! behind under [`Overflow::Close`] is closed with 1013 (try again later) and
//! `queue_overflow`; a publish the layer refuses (its backend is down) closes the sender's
//! session with 1013 too. The subscription is bound to the session's connection object, so a
//! client that vanishes leaves the topic at once.
//!
//! Defaults: topic from the route or the path (see [the pub/sub module](super#topics)); queue
//! of 256 messages with [`Overflow::DropOldest`]; no keep-alive.

use std::sync::Arc;
use std::time::Duration;

use ragi::Message as WsMessage;

use crate::channels::{
    self, ChannelError, ChannelErrorKind, Ended, Incoming, Layer, Message, MessageKind, Overflow,
    SubscribeOptions, DEFAULT_CAPACITY,
};
use crate::{Context, Error, WsContext};

use super::{gap_json, send_or_end, GapAction, Keepalive, Topics, TRY_AGAIN_LATER};

/// The WebSocket broadcast app. See the [module documentation](self).
#[derive(Clone)]
pub struct WsBroadcast {
    inner: Arc<Inner>,
}

struct Inner {
    layer: Layer,
    topics: Topics,
    echo_self: bool,
    capacity: usize,
    overflow: Overflow,
    on_gap: GapAction,
    keepalive: Option<Keepalive>,
}

impl std::fmt::Debug for WsBroadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsBroadcast")
            .field("topics", &self.inner.topics)
            .field("echo_self", &self.inner.echo_self)
            .field("capacity", &self.inner.capacity)
            .field("overflow", &self.inner.overflow)
            .field("on_gap", &self.inner.on_gap)
            .finish_non_exhaustive()
    }
}

impl WsBroadcast {
    /// The app over `layer`, with the defaults.
    pub fn new(layer: Layer) -> Self {
        Self {
            inner: Arc::new(Inner {
                layer,
                topics: Topics::default(),
                echo_self: false,
                capacity: DEFAULT_CAPACITY,
                overflow: Overflow::DropOldest,
                on_gap: GapAction::Notify,
                keepalive: None,
            }),
        }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.inner).expect("configure the app before cloning it")
    }

    /// The topic when neither a route parameter nor the path names one.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.inner_mut().topics.fixed = Some(topic.into());
        self
    }

    /// Prefixes topics to make group names.
    pub fn group_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.inner_mut().topics.prefix = prefix.into();
        self
    }

    /// Whether a sender receives its own messages (`false` by default).
    pub fn echo_self(mut self, yes: bool) -> Self {
        self.inner_mut().echo_self = yes;
        self
    }

    /// Each subscriber's queue bound, in messages.
    pub fn capacity(mut self, messages: usize) -> Self {
        self.inner_mut().capacity = messages;
        self
    }

    /// The slow-consumer policy.
    pub fn overflow(mut self, policy: Overflow) -> Self {
        self.inner_mut().overflow = policy;
        self
    }

    /// What a client is told of a gap.
    pub fn on_gap(mut self, action: GapAction) -> Self {
        self.inner_mut().on_gap = action;
        self
    }

    /// Pings every `interval`; a client whose pong does not come within `timeout` is gone
    /// (`keepalive_timeout`).
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.inner_mut().keepalive = Some(Keepalive { interval, timeout });
        self
    }

    /// The group a topic maps to (`None` for an invalid topic).
    pub fn group_for(&self, topic: &str) -> Option<String> {
        self.inner.topics.group(topic)
    }

    /// Sends `message` to every client of `topic` (text stays text, binary binary).
    pub async fn broadcast(&self, topic: &str, message: Message) -> Result<(), ChannelError> {
        let group = self.group_for(topic).ok_or_else(|| {
            ChannelError::new(
                ChannelErrorKind::InvalidName,
                format!("invalid topic {topic:?}"),
            )
        })?;
        self.inner.layer.group_send(&group, message).await
    }
}

impl ragi::App for WsBroadcast {
    fn call(
        &self,
        scope: ragi::Scope,
        receive: ragi::Receiver,
        send: ragi::Sender,
    ) -> ragi::BoxFuture<'static, ragi::AppResult> {
        let inner = self.inner.clone();
        crate::ws::handler(move |cx: WsContext| serve(inner.clone(), cx)).call(scope, receive, send)
    }
}

/// A channel message as a WebSocket message.
pub(crate) fn to_ws(m: &Message) -> WsMessage {
    match (m.kind(), m.as_str()) {
        (MessageKind::Binary, _) | (_, None) => WsMessage::Binary(m.to_bytes()),
        (_, Some(t)) => WsMessage::Text(t.to_owned()),
    }
}

/// A WebSocket message as a channel message.
pub(crate) fn from_ws(m: WsMessage) -> Message {
    match m {
        WsMessage::Text(t) => Message::text(t),
        WsMessage::Binary(b) => Message::binary(b),
    }
}

/// Tells the client of a gap as `action` says; `Ok(false)` when the session was closed.
pub(crate) async fn tell_gap(
    cx: &WsContext,
    sub: &channels::Subscription,
    action: &GapAction,
    gap: &channels::Gap,
) -> Result<bool, Error> {
    match action {
        GapAction::Notify => relay(cx, sub, WsMessage::Text(gap_json(gap, None))).await,
        GapAction::Close => {
            cx.close_with(TRY_AGAIN_LATER, gap.reason().as_str())
                .await?;
            Ok(false)
        }
        GapAction::Ignore => Ok(true),
    }
}

/// Sends a delivery to the client unless the subscription ends first (then ends the
/// session for it); `Ok(false)` when the session is over.
pub(crate) async fn relay(
    cx: &WsContext,
    sub: &channels::Subscription,
    message: WsMessage,
) -> Result<bool, Error> {
    match send_or_end(cx.send(message), sub).await? {
        None => Ok(true),
        Some(why) => end_for(cx, why).await.map(|()| false),
    }
}

/// Ends a session whose subscription ended: the client's departure as such, a slow consumer
/// closed with 1013 `queue_overflow`, a closed layer with 1001.
pub(crate) async fn end_for(cx: &WsContext, why: Ended) -> Result<(), Error> {
    match why {
        Ended::ClientLeft(r) => Err(Error::disconnected(r)),
        Ended::SlowConsumer => cx.close_with(TRY_AGAIN_LATER, "queue_overflow").await,
        _ => cx.close_with(1001, "server_shutdown").await,
    }
}

/// Closes the session for a layer that refused a publish (1013), or fails with the error.
pub(crate) async fn publish_failed(cx: &WsContext, e: ChannelError) -> Result<(), Error> {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "publish refused: closing the session with 1013");
        return cx
            .close_with(TRY_AGAIN_LATER, "channel layer unavailable")
            .await;
    }
    Err(e.into())
}

async fn serve(inner: Arc<Inner>, mut cx: WsContext) -> Result<(), Error> {
    let (_topic, group) = inner.topics.resolve(&cx)?;
    let options = SubscribeOptions::new()
        .capacity(inner.capacity)
        .overflow(inner.overflow)
        .group(group.clone())
        .bind(cx.connection());
    let mut sub = inner.layer.subscribe(options).await?; // 503 before accept if it fails
    cx.accept().await?;
    if let Some(k) = inner.keepalive {
        cx.keepalive(k.interval, k.timeout).await?;
    }
    loop {
        match channels::select(cx.receive(), &mut sub).await {
            Incoming::Client(Some(m)) => {
                let message = from_ws(m).with_origin(sub.name());
                if let Err(e) = inner.layer.group_send(&group, message).await {
                    return publish_failed(&cx, e).await;
                }
            }
            Incoming::Client(None) => return Ok(()),
            Incoming::Message(m) => {
                if !inner.echo_self && m.origin() == Some(sub.name()) {
                    continue;
                }
                if !relay(&cx, &sub, to_ws(&m)).await? {
                    return Ok(());
                }
            }
            Incoming::Gap(gap) => {
                if !tell_gap(&cx, &sub, &inner.on_gap, &gap).await? {
                    return Ok(());
                }
            }
            Incoming::Ended(why) => return end_for(&cx, why).await,
        }
    }
}
