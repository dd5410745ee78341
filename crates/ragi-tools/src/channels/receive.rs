//! Waiting on the client and a subscription at once.
//!
//! A WebSocket or SSE handler that relays a channel must notice two things, whichever comes
//! first: what the client does (a message, its departure) and what the channel delivers.
//! [`select`] waits on any client future and a [`Subscription`]; [`ChannelReceiver`] is
//! PAGI's `$receive` wrapper (`PAGI::Middleware::Channels`): one `receive` that yields the
//! client's events and the channel's deliveries interleaved.
//!
//! ```
//! use ragi::Message as WsMessage;
//! use ragi_tools::channels::{self, Incoming, Layer, Message, SubscribeOptions};
//! use ragi_tools::{Context, Error, WsContext};
//!
//! async fn relay(mut cx: WsContext, layer: Layer) -> Result<(), Error> {
//!     cx.accept().await?;
//!     let options = SubscribeOptions::new().group("news").bind(cx.connection());
//!     let mut sub = layer.subscribe(options).await?;
//!     loop {
//!         match channels::select(cx.receive(), &mut sub).await {
//!             Incoming::Client(Some(WsMessage::Text(t))) => {
//!                 layer.group_send("news", Message::text(t)).await?
//!             }
//!             Incoming::Client(Some(_)) => {}
//!             Incoming::Client(None) => return Ok(()), // the client left or closed
//!             Incoming::Message(m) => cx.send_text(m.as_str().unwrap_or_default()).await?,
//!             Incoming::Gap(gap) => cx.send_text(format!("missed ({})", gap.reason())).await?,
//!             Incoming::Ended(why) => return Err(Error::disconnected(why.disconnect_reason())),
//!         }
//!     }
//! }
//! # let _ = relay;
//! ```

use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use ragi::{ReceiveEvent, Receiver};

use super::{Delivery, Ended, Gap, Message, Subscription};

/// Whichever came first: the client's item, or the subscription's.
#[derive(Debug)]
pub enum Incoming<T> {
    /// What the client future gave.
    Client(T),
    /// A message from the channel layer.
    Message(Message),
    /// Messages from the channel layer may have been lost here.
    Gap(Gap),
    /// The subscription ended (after its last delivery).
    Ended(Ended),
}

/// Waits for `client` or the next delivery of `subscription`, whichever is ready first; the
/// client wins when both are (so a departure is seen before deliveries pile up for nobody).
///
/// The future not chosen is dropped: `client` must be cancel safe (the toolkit's
/// `WsContext::receive`, `SseContext::closed`, `Receiver::receive` and
/// `Connection::disconnected` are), and the subscription loses nothing.
pub async fn select<F: Future>(client: F, subscription: &mut Subscription) -> Incoming<F::Output> {
    let mut client = pin!(client);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = client.as_mut().poll(cx) {
            return Poll::Ready(Incoming::Client(v));
        }
        subscription.poll_recv(cx).map(|d| match d {
            Some(Delivery::Message(m)) => Incoming::Message(m),
            Some(Delivery::Gap(g)) => Incoming::Gap(g),
            None => Incoming::Ended(subscription.ended().unwrap_or(Ended::LayerClosed)),
        })
    })
    .await
}

/// PAGI's receive wrapper: the client's events and a subscription's deliveries from one
/// `receive`. For apps written against the raw interface.
///
/// ```
/// use ragi::{ReceiveEvent, Receiver, Scope, Sender};
/// use ragi_tools::channels::{ChannelReceiver, Incoming, Layer, SubscribeOptions};
///
/// async fn app(scope: Scope, receive: Receiver, send: Sender, layer: Layer) -> ragi::AppResult {
///     let sub = layer.subscribe(SubscribeOptions::new().group("g").bind(scope.connection())).await?;
///     let mut receive = ChannelReceiver::new(receive, sub);
///     loop {
///         match receive.receive().await {
///             Incoming::Client(ReceiveEvent::Disconnect { .. }) => return Ok(()),
///             Incoming::Client(_) => {}
///             Incoming::Message(m) => { /* send it on with `send` */ let _ = (&m, &send); }
///             Incoming::Gap(_) | Incoming::Ended(_) => return Ok(()),
///         }
///     }
/// }
/// # let _ = app;
/// ```
#[derive(Debug)]
pub struct ChannelReceiver {
    receive: Receiver,
    subscription: Subscription,
}

impl ChannelReceiver {
    /// Wraps the app's `receive` and a subscription.
    pub fn new(receive: Receiver, subscription: Subscription) -> Self {
        Self {
            receive,
            subscription,
        }
    }

    /// The client's next event or the channel's next delivery (client first). Cancel safe.
    pub async fn receive(&mut self) -> Incoming<ReceiveEvent> {
        select(self.receive.receive(), &mut self.subscription).await
    }

    /// The subscription (its name, to give others).
    pub fn subscription(&self) -> &Subscription {
        &self.subscription
    }

    /// The two parts back.
    pub fn into_parts(self) -> (Receiver, Subscription) {
        (self.receive, self.subscription)
    }
}
