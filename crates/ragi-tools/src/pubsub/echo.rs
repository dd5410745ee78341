//! WebSocket echo: every message back to its sender — directly, or through the channel layer.
//!
//! ```
//! use std::sync::Arc;
//! use ragi_tools::channels::{Layer, MemoryLayer};
//! use ragi_tools::pubsub::WsEcho;
//!
//! let plain = WsEcho::new();
//! // Each message makes a round trip through the layer (to the session's own channel): an
//! // end-to-end check of a layer, across processes with a distributed one.
//! let layer: Layer = Arc::new(MemoryLayer::new());
//! let through = WsEcho::through(layer);
//! # fn is_app(_: impl ragi::App) {}
//! # is_app(plain); is_app(through);
//! ```
//!
//! Text comes back as text, binary as binary, in order, until the client closes (its close
//! code is answered by the server) or leaves. Through a layer, the session subscribes before
//! it accepts (503 if the layer cannot), sends each message to its own channel
//! ([`ChannelLayer::send`](crate::channels::ChannelLayer::send)) and echoes what arrives; a gap
//! reaches the client as for [`WsBroadcast`](super::WsBroadcast)
//! (`{"type": "gap", ...}` by default), a refused publish closes with 1013.
//!
//! Reference: PAGI-Tools' `App::WebSocket::Echo` (direct echo only).

use std::sync::Arc;
use std::time::Duration;

use crate::channels::{self, Incoming, Layer, Overflow, SubscribeOptions, DEFAULT_CAPACITY};
use crate::{Context, Error, WsContext};

use super::broadcast::{end_for, from_ws, publish_failed, relay, tell_gap, to_ws};
use super::{GapAction, Keepalive};

/// The WebSocket echo app. See the [module documentation](self).
#[derive(Clone)]
pub struct WsEcho {
    inner: Arc<Inner>,
}

struct Inner {
    layer: Option<Layer>,
    capacity: usize,
    on_gap: GapAction,
    keepalive: Option<Keepalive>,
}

impl std::fmt::Debug for WsEcho {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &self.inner;
        f.debug_struct("WsEcho")
            .field("through_layer", &i.layer.is_some())
            .field("capacity", &i.capacity)
            .field("on_gap", &i.on_gap)
            .finish_non_exhaustive()
    }
}

impl Default for WsEcho {
    fn default() -> Self {
        Self::new()
    }
}

impl WsEcho {
    /// Echoes directly.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                layer: None,
                capacity: DEFAULT_CAPACITY,
                on_gap: GapAction::Notify,
                keepalive: None,
            }),
        }
    }

    /// Echoes through `layer`.
    pub fn through(layer: Layer) -> Self {
        let mut echo = Self::new();
        echo.inner_mut().layer = Some(layer);
        echo
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.inner).expect("configure the app before cloning it")
    }

    /// The session's queue bound through a layer (it closes with 1013 when the client does
    /// not read its echoes fast enough).
    pub fn capacity(mut self, messages: usize) -> Self {
        self.inner_mut().capacity = messages;
        self
    }

    /// What a client is told of a gap (through a layer).
    pub fn on_gap(mut self, action: GapAction) -> Self {
        self.inner_mut().on_gap = action;
        self
    }

    /// Pings every `interval`; a client whose pong does not come within `timeout` is gone.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.inner_mut().keepalive = Some(Keepalive { interval, timeout });
        self
    }
}

impl ragi::App for WsEcho {
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

async fn serve(inner: Arc<Inner>, mut cx: WsContext) -> Result<(), Error> {
    let Some(layer) = &inner.layer else {
        cx.accept().await?;
        if let Some(k) = inner.keepalive {
            cx.keepalive(k.interval, k.timeout).await?;
        }
        while let Some(m) = cx.receive().await {
            cx.send(m).await?;
        }
        return Ok(());
    };
    let options = SubscribeOptions::new()
        .capacity(inner.capacity)
        .overflow(Overflow::Close) // an echo must not silently lose the client's own data
        .bind(cx.connection());
    let mut sub = layer.subscribe(options).await?;
    cx.accept().await?;
    if let Some(k) = inner.keepalive {
        cx.keepalive(k.interval, k.timeout).await?;
    }
    loop {
        match channels::select(cx.receive(), &mut sub).await {
            Incoming::Client(Some(m)) => {
                if let Err(e) = layer.send(sub.name(), from_ws(m)).await {
                    return publish_failed(&cx, e).await;
                }
            }
            Incoming::Client(None) => return Ok(()),
            Incoming::Message(m) => {
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
