//! SSE pub/sub: each client subscribes to a topic; each message published to it is an event.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use ragi_tools::channels::{Layer, MemoryLayer, Message};
//! use ragi_tools::pubsub::SsePubSub;
//!
//! let layer: Layer = Arc::new(MemoryLayer::new());
//! // Mounted at /feeds: GET /feeds/news streams the topic "news".
//! let feeds = SsePubSub::new(layer).keepalive(Duration::from_secs(15));
//!
//! # async fn publish(feeds: SsePubSub) -> Result<(), ragi_tools::channels::ChannelError> {
//! // Anywhere else (a handler, a background task): an event `update` with id 7.
//! feeds.publish("news", Message::text("ragi 0.1").with_event("update").with_id("7")).await?;
//! # Ok(()) }
//! # fn is_app(_: impl ragi::App) {}
//! # is_app(feeds);
//! ```
//!
//! # What the client sees
//!
//! The stream starts at once (200, `text/event-stream`), on an `sse` scope or a plain `GET`
//! alike ([`crate::sse`]). Each message becomes an event: its text as `data`, its
//! [event label](crate::channels::Message::with_event) as `event:`, its
//! [id](crate::channels::Message::with_id) as `id:`. A binary message is sent when it is UTF-8
//! and skipped (logged) otherwise. Where messages may have been lost, the client gets a
//! `gap` event, `data` `{"type": "gap", "topic", "reason", "missed"}`, so it can refetch.
//! If the subscriber falls behind under [`Overflow::Close`](crate::channels::Overflow), the
//! stream ends cleanly and the browser's `EventSource` reconnects.
//!
//! # Resuming
//!
//! A client that reconnects with `Last-Event-ID` asks to resume after that event: the id is
//! handed to the layer ([`SubscribeOptions::resume_after`]). A layer with history (issue 13's
//! Redis Streams mode) replays what the client missed; the in-memory layer cannot, so the
//! stream starts with a `gap` event of reason `no_history`.
//!
//! # Defaults and references
//!
//! Topic from the route or the path (see [the pub/sub module](super#topics)), no fixed topic,
//! queue of 256 messages with [`Overflow::DropOldest`](crate::channels::Overflow), no
//! keep-alive, no `retry` hint. PAGI-Tools' `App::SSE::Pubsub` keeps a global channel table and
//! writes each event to each client from the publisher's loop; here the publisher only
//! queues.

use std::sync::Arc;
use std::time::Duration;

use crate::channels::{
    self, ChannelError, Incoming, Layer, Message, Overflow, SubscribeOptions, DEFAULT_CAPACITY,
};
use crate::sse::Event;
use crate::{Context, Error, SseContext};

use super::{send_or_end, Topics};

/// The SSE pub/sub app. See the [module documentation](self).
#[derive(Clone)]
pub struct SsePubSub {
    inner: Arc<Inner>,
}

struct Inner {
    layer: Layer,
    topics: Topics,
    capacity: usize,
    overflow: Overflow,
    keepalive: Option<Duration>,
    retry: Option<Duration>,
}

impl std::fmt::Debug for SsePubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsePubSub")
            .field("topics", &self.inner.topics)
            .field("capacity", &self.inner.capacity)
            .field("overflow", &self.inner.overflow)
            .field("keepalive", &self.inner.keepalive)
            .finish_non_exhaustive()
    }
}

impl SsePubSub {
    /// The app over `layer`, with the defaults.
    pub fn new(layer: Layer) -> Self {
        Self {
            inner: Arc::new(Inner {
                layer,
                topics: Topics::default(),
                capacity: DEFAULT_CAPACITY,
                overflow: Overflow::DropOldest,
                keepalive: None,
                retry: None,
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

    /// Prefixes topics to make group names (`"feed."`: topic `news` is group `feed.news`).
    pub fn group_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.inner_mut().topics.prefix = prefix.into();
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

    /// A keep-alive comment whenever the stream was quiet for `interval`.
    pub fn keepalive(mut self, interval: Duration) -> Self {
        self.inner_mut().keepalive = Some(interval);
        self
    }

    /// A `retry:` hint (the client's reconnection delay), sent first as an event named
    /// `retry` with empty data (a listener of `message` events never sees it).
    pub fn retry(mut self, delay: Duration) -> Self {
        self.inner_mut().retry = Some(delay);
        self
    }

    /// The group a topic maps to (`None` for an invalid topic).
    pub fn group_for(&self, topic: &str) -> Option<String> {
        self.inner.topics.group(topic)
    }

    /// Publishes `message` to every subscriber of `topic`, in every process the layer
    /// reaches.
    pub async fn publish(&self, topic: &str, message: Message) -> Result<(), ChannelError> {
        let group = self.group_for(topic).ok_or_else(|| {
            ChannelError::new(
                channels::ChannelErrorKind::InvalidName,
                format!("invalid topic {topic:?}"),
            )
        })?;
        self.inner.layer.group_send(&group, message).await
    }
}

impl ragi::App for SsePubSub {
    fn call(
        &self,
        scope: ragi::Scope,
        receive: ragi::Receiver,
        send: ragi::Sender,
    ) -> ragi::BoxFuture<'static, ragi::AppResult> {
        let inner = self.inner.clone();
        crate::sse::handler(move |cx: SseContext| serve(inner.clone(), cx))
            .call(scope, receive, send)
    }
}

/// The event of a message, or `None` for a binary one that is not text.
pub(crate) fn message_event(m: &Message) -> Option<Event> {
    let data = match m.as_str() {
        Some(t) => t.to_owned(),
        None => match std::str::from_utf8(m.as_bytes()) {
            Ok(t) => t.to_owned(),
            Err(_) => {
                tracing::debug!("a binary message that is not UTF-8 skipped on an event stream");
                return None;
            }
        },
    };
    let mut e = Event::new(data);
    if let Some(name) = m.event() {
        e = e.event(name);
    }
    if let Some(id) = m.id() {
        e = e.id(id);
    }
    Some(e)
}

async fn serve(inner: Arc<Inner>, cx: SseContext) -> Result<(), Error> {
    let (topic, group) = inner.topics.resolve(&cx)?;
    let mut options = SubscribeOptions::new()
        .capacity(inner.capacity)
        .overflow(inner.overflow)
        .group(group)
        .bind(cx.connection());
    if let Some(id) = cx.last_event_id() {
        options = options.resume_after(id);
    }
    // Subscribed before the stream starts: a failing backend is a 503, not a broken stream.
    let mut sub = inner.layer.subscribe(options).await?;
    cx.start().await?;
    if let Some(interval) = inner.keepalive {
        cx.keepalive(interval).await?;
    }
    if let Some(delay) = inner.retry {
        cx.send(Event::new("").event("retry").retry(delay)).await?;
    }
    loop {
        match channels::select(cx.closed(), &mut sub).await {
            Incoming::Client(Some(reason)) => return Err(Error::disconnected(reason)),
            Incoming::Client(None) => return Ok(()), // closed by the app elsewhere
            Incoming::Message(m) => {
                let Some(event) = message_event(&m) else {
                    continue;
                };
                if let Some(why) = send_or_end(cx.send(event), &sub).await? {
                    return ended(&cx, &topic, why).await;
                }
            }
            Incoming::Gap(gap) => {
                let data = super::gap_json(&gap, Some(("topic", &topic)));
                if let Some(why) = send_or_end(cx.send(Event::new(data).event("gap")), &sub).await?
                {
                    return ended(&cx, &topic, why).await;
                }
            }
            Incoming::Ended(why) => return ended(&cx, &topic, why).await,
        }
    }
}

/// Ends a stream whose subscription ended: the client's departure as such; otherwise (it fell
/// behind, the layer closed) the stream ends cleanly and the client reconnects.
async fn ended(cx: &SseContext, topic: &str, why: channels::Ended) -> Result<(), Error> {
    if let channels::Ended::ClientLeft(reason) = why {
        return Err(Error::disconnected(reason));
    }
    tracing::debug!(%topic, %why, "event stream subscriber ended");
    cx.close().await
}
