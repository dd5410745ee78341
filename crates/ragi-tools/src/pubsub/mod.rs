//! Pub/sub apps on the [channel layer](crate::channels): an SSE feed per topic, a WebSocket
//! broadcast, a WebSocket echo, and a multi-room chat with presence.
//!
//! ```
//! use std::sync::Arc;
//! use ragi_tools::channels::{Layer, MemoryLayer, Message};
//! use ragi_tools::pubsub::{SsePubSub, WsBroadcast};
//!
//! let layer: Layer = Arc::new(MemoryLayer::new());
//! let feed = SsePubSub::new(layer.clone());        // GET /news → an event per message of "news"
//! let room = WsBroadcast::new(layer.clone());      // every message to every client of the topic
//! # async fn later(feed: SsePubSub) -> Result<(), ragi_tools::channels::ChannelError> {
//! feed.publish("news", Message::text("ragi 0.1 is out")).await?; // from anywhere
//! # Ok(()) }
//! # fn is_app(_: impl ragi::App) {}
//! # is_app(feed); is_app(room);
//! ```
//!
//! Each app is its own module:
//!
//! * [`sse`](mod@sse) — [`SsePubSub`]: subscribe to a topic over SSE (an `sse` scope or a
//!   plain `GET`); each published message is an event, each gap a `gap` event;
//! * [`broadcast`] — [`WsBroadcast`]: what one WebSocket client sends, every client of the
//!   topic receives;
//! * [`echo`] — [`WsEcho`]: messages back to their sender, directly or through the layer;
//! * [`chat`] — [`Chat`]: rooms over WebSocket with an SSE + POST fallback, nicknames,
//!   presence from the connection objects, a members list (the `ragi demo` chat API).
//!
//! What they share: every subscriber has its own bounded queue and
//! [slow-consumer policy](crate::channels::Overflow), so a client that does not read never
//! delays the others; a subscription is bound to the client's connection object, so it is
//! removed the moment the client leaves; and a [gap](crate::channels::Gap) (messages lost)
//! reaches the client as something it can act on. Where PAGI-Tools' apps (the reference)
//! await each client in turn from the publisher's loop, and keep their state in globals,
//! these publish through a layer that never waits and can be shared across processes.
//!
//! # Topics
//!
//! [`SsePubSub`] and [`WsBroadcast`] serve many topics from one app. The topic is, in order:
//! the route parameter `topic` (`/feeds/{topic}` in a router), else the app's remaining path
//! (mounted at `/feeds`, a request for `/feeds/news` has the path `/news`: topic `news`),
//! else the fixed topic given with `.topic(..)`. A topic is a group name (1 to 99 of
//! `A-Z a-z 0-9 . - _`) after the app's group prefix (none by default); any other is a 404.

pub mod broadcast;
pub mod chat;
pub mod echo;
pub mod sse;

use std::time::Duration;

use crate::channels::{validate_group, Gap};
use crate::{Context, Error};

pub use broadcast::WsBroadcast;
pub use chat::Chat;
pub use echo::WsEcho;
pub use sse::SsePubSub;

/// Where an app takes its topic from, and the group it maps to.
#[derive(Clone, Debug, Default)]
pub(crate) struct Topics {
    /// The topic when neither a route parameter nor a path names one.
    pub(crate) fixed: Option<String>,
    /// Put before the topic to make the group name.
    pub(crate) prefix: String,
}

impl Topics {
    /// The group for `topic`, or `None` when it is not a valid one.
    pub(crate) fn group(&self, topic: &str) -> Option<String> {
        let group = format!("{}{topic}", self.prefix);
        validate_group(&group).ok().map(|()| group)
    }

    /// The topic of a request (see the module documentation): `(topic, group)`; 404 when
    /// none or an invalid one is named.
    pub(crate) fn resolve(&self, cx: &impl Context) -> Result<(String, String), Error> {
        let from_path = cx.path().trim_matches('/');
        let topic = match cx.param("topic") {
            Some(t) => t,
            None if !from_path.is_empty() => from_path.to_owned(),
            None => self.fixed.clone().ok_or_else(Error::not_found)?,
        };
        let group = self.group(&topic).ok_or_else(Error::not_found)?;
        Ok((topic, group))
    }
}

/// What a WebSocket app sends its client when the channel layer reports a [`Gap`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum GapAction {
    /// A text message `{"type": "gap", "reason": "...", "missed": n | null}` (the default).
    #[default]
    Notify,
    /// Close the session with 1013 (try again later) and the gap's reason: the client
    /// reconnects and catches up by other means.
    Close,
    /// Nothing (the loss stays invisible to the client: only for feeds where it does not
    /// matter).
    Ignore,
}

/// The JSON of a gap notice.
pub(crate) fn gap_json(gap: &Gap, extra: Option<(&str, &str)>) -> String {
    let mut v = serde_json::json!({
        "type": "gap",
        "reason": gap.reason().as_str(),
        "missed": gap.missed(),
    });
    if let Some((k, val)) = extra {
        v[k] = serde_json::Value::from(val);
    }
    v.to_string()
}

/// A WebSocket keep-alive: ping every `interval`, end the session (`keepalive_timeout`) when
/// a pong does not come within `timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Keepalive {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
}

/// Runs `send` (a delivery to a client) unless the subscription ends first: a client that
/// stopped reading keeps `send` waiting, and a subscriber closed for falling behind must be
/// closed now, not once its client reads again. `Ok(Some(end))` when it ended (the send is
/// dropped: the session is being closed anyway).
pub(crate) async fn send_or_end<F>(
    send: F,
    subscription: &crate::channels::Subscription,
) -> Result<Option<crate::channels::Ended>, Error>
where
    F: std::future::Future<Output = Result<(), Error>>,
{
    tokio::select! {
        biased;
        r = send => r.map(|()| None),
        why = subscription.closed() => Ok(Some(why)),
    }
}

/// The close code for a session whose subscriber fell behind or whose layer is unavailable:
/// 1013, try again later.
pub(crate) const TRY_AGAIN_LATER: u16 = 1013;
