//! A test backend (a "remote" layer that can lose its connection) and bounded waits.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ragi::BoxFuture;
use ragi_tools::channels::{
    validate_channel, validate_group, ChannelError, ChannelLayer, Gap, Hub, Message,
    SubscribeOptions, Subscription,
};

/// The bound of one wait.
pub const T: Duration = Duration::from_secs(5);

/// Awaits `fut` for at most [`T`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(T, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {T:?} waiting for {what}"),
    }
}

/// Waits (bounded by [`T`]) until `cond` holds, checking every millisecond.
pub async fn until(what: &str, cond: impl FnMut() -> bool) {
    until_within(what, T, cond).await
}

/// Waits (bounded by `bound`) until `cond` holds, checking every millisecond.
pub async fn until_within(what: &str, bound: Duration, mut cond: impl FnMut() -> bool) {
    let wait = async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    if tokio::time::timeout(bound, wait).await.is_err() {
        panic!("timed out after {bound:?} waiting for {what}");
    }
}

/// A backend built from the public pieces, as a distributed one (issue 13) would be: a local
/// [`Hub`] for fan-out, and a "connection" to a remote that can drop. While it is down,
/// publishing fails at once with `Unavailable`; dropping it tells every subscriber of a gap.
#[derive(Clone, Default)]
pub struct FlakyLayer {
    hub: Hub,
    down: Arc<AtomicBool>,
}

impl FlakyLayer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The remote connection drops: publishes fail, every subscriber learns of the gap.
    pub fn lose_connection(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.hub.gap_all(&Gap::reconnected());
    }

    /// The connection is back.
    pub fn reconnect(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), ChannelError> {
        if self.down.load(Ordering::SeqCst) {
            Err(ChannelError::unavailable("the test backend is down"))
        } else {
            Ok(())
        }
    }
}

impl ChannelLayer for FlakyLayer {
    fn process_prefix(&self) -> &str {
        self.hub.prefix()
    }

    fn subscribe(
        &self,
        options: SubscribeOptions,
    ) -> BoxFuture<'_, Result<Subscription, ChannelError>> {
        Box::pin(async move {
            self.check()?;
            Ok(self.hub.open(&options)?.0)
        })
    }

    fn send<'a>(
        &'a self,
        channel: &'a str,
        message: Message,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            validate_channel(channel)?;
            self.check()?;
            // Through the "wire" and back, as a remote backend would carry it.
            let message = Message::decode(message.encode()?)?;
            self.hub.deliver(channel, &message);
            Ok(())
        })
    }

    fn group_add<'a>(
        &'a self,
        group: &'a str,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move { self.hub.add(group, channel).map(drop) })
    }

    fn group_discard<'a>(
        &'a self,
        group: &'a str,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move { self.hub.discard(group, channel).map(drop) })
    }

    fn group_send<'a>(
        &'a self,
        group: &'a str,
        message: Message,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            validate_group(group)?;
            self.check()?;
            let message = Message::decode(message.encode()?)?;
            self.hub.deliver_group(group, &message);
            Ok(())
        })
    }
}
