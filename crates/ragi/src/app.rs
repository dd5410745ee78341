//! Apps, and the `receive` / `send` handles they are called with.
//!
//! An app is anything that implements [`App`]; closures `|scope, receive, send| async move {..}`
//! do. One app value serves every connection (it is shared, so it is `Send + Sync`); each call
//! handles one scope. Middleware is an app that holds an app and calls it, possibly with a
//! rewritten scope, a wrapped [`Receiver`] or a wrapped [`Sender`].
//!
//! ```
//! use ragi::{App, Headers, ReceiveEvent, Receiver, Scope, Sender, SendEvent};
//!
//! let hello = |_scope: Scope, _receive: Receiver, send: Sender| async move {
//!     send.send(SendEvent::response_start(200, Headers::new().with("content-type", "text/plain")))
//!         .await?;
//!     send.send(SendEvent::body("Hello, World!")).await?;
//!     Ok(())
//! };
//!
//! // Middleware: add a header to every response of the inner app.
//! fn with_header<A: App>(inner: A) -> impl App {
//!     std::sync::Arc::new(move |scope: Scope, receive: Receiver, send: Sender| {
//!         let send = send.map(|event| match event {
//!             SendEvent::ResponseStart { status, mut headers, trailers } => {
//!                 headers.push("x-served-by", "ragi");
//!                 SendEvent::ResponseStart { status, headers, trailers }
//!             }
//!             other => other,
//!         });
//!         inner.call(scope, receive, send)
//!     })
//! }
//! let _app = with_header(hello);
//! ```
//!
//! # Cancel safety
//!
//! [`Receiver::receive`] is cancel safe: an event is taken from the queue only when the future
//! completes. [`Sender::send`] is not: dropping it may or may not have queued the event.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::{ReceiveEvent, Scope, SendError, SendEvent};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The error an app returns: anything that is an error.
pub type AppError = Box<dyn std::error::Error + Send + Sync>;

/// What an app call returns.
pub type AppResult = Result<(), AppError>;

/// An application: called once per scope. See the [module documentation](self).
pub trait App: Send + Sync + 'static {
    /// Handles one scope.
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult>;
}

impl<F, Fut> App for F
where
    F: Fn(Scope, Receiver, Sender) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = AppResult> + Send + 'static,
{
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        Box::pin(self(scope, receive, send))
    }
}

impl App for Arc<dyn App> {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        (**self).call(scope, receive, send)
    }
}

impl<A: App> App for Arc<A> {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        (**self).call(scope, receive, send)
    }
}

/// Where a [`Receiver`] takes its events from. Servers, test clients and middleware implement
/// it; apps use [`Receiver::receive`].
pub trait ReceiveSource: Send + 'static {
    /// The next event, or `Pending` (waking `cx` when one is ready).
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent>;
}

/// A [`ReceiveSource`] polled through a shared reference. A server whose per-request state is
/// already behind an [`Arc`] hands it to [`Receiver::from_arc`] and spares the allocation that
/// [`Receiver::new`] makes.
pub trait SharedReceiveSource: Send + Sync + 'static {
    /// The next event, or `Pending` (waking `cx` when one is ready).
    fn poll_receive(&self, cx: &mut Context<'_>) -> Poll<ReceiveEvent>;
}

/// The `receive` handle: yields the client's events in order.
///
/// `Send` and `Sync`: only `&mut self` reaches the source, so a context that owns a receiver
/// can lend `&self` to futures that cross threads.
pub struct Receiver {
    source: Source,
}

enum Source {
    /// Behind a mutex only so that the receiver is `Sync` (a `ReceiveSource` need only be
    /// `Send`); it is reached with `get_mut`, which takes no lock.
    Owned(std::sync::Mutex<Box<dyn ReceiveSource>>),
    Shared(Arc<dyn SharedReceiveSource>),
}

impl Receiver {
    /// A receiver reading from `source`.
    pub fn new(source: impl ReceiveSource) -> Self {
        Self {
            source: Source::Owned(std::sync::Mutex::new(Box::new(source))),
        }
    }

    /// A receiver reading from a source that is already shared.
    pub fn from_arc(source: Arc<dyn SharedReceiveSource>) -> Self {
        Self {
            source: Source::Shared(source),
        }
    }

    /// The next event from the client. Cancel safe.
    pub async fn receive(&mut self) -> ReceiveEvent {
        std::future::poll_fn(|cx| self.poll_receive(cx)).await
    }

    /// A receiver that yields what this one yields, passed through `f`.
    pub fn map<F>(self, f: F) -> Receiver
    where
        F: FnMut(ReceiveEvent) -> ReceiveEvent + Send + 'static,
    {
        struct Map<F> {
            inner: Receiver,
            f: F,
        }
        impl<F: FnMut(ReceiveEvent) -> ReceiveEvent + Send + 'static> ReceiveSource for Map<F> {
            fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
                self.inner.poll_receive(cx).map(&mut self.f)
            }
        }
        Receiver::new(Map { inner: self, f })
    }
}

impl ReceiveSource for Receiver {
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        match &mut self.source {
            Source::Owned(s) => s
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .poll_receive(cx),
            Source::Shared(s) => s.poll_receive(cx),
        }
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver")
    }
}

/// Where a [`Sender`] delivers its events. Servers, test clients and middleware implement it;
/// apps use [`Sender::send`].
pub trait SendSink: Send + Sync + 'static {
    /// Delivers one event, waiting for room (backpressure) when needed.
    fn send(&self, event: SendEvent) -> BoxFuture<'_, Result<(), SendError>>;

    /// Delivers one event if that needs no waiting; otherwise gives it back. [`Sender::send`]
    /// calls this first and falls back to [`SendSink::send`], so a sink that implements it
    /// spares a boxed future per event. The default never delivers.
    fn try_send(&self, event: SendEvent) -> Result<(), TrySendError> {
        Err(TrySendError::WouldWait(event))
    }
}

/// Why [`SendSink::try_send`] did not deliver.
#[derive(Debug)]
pub enum TrySendError {
    /// Delivering would have to wait; here is the event back.
    WouldWait(SendEvent),
    /// The event was refused.
    Failed(SendError),
}

impl From<SendError> for TrySendError {
    fn from(e: SendError) -> Self {
        TrySendError::Failed(e)
    }
}

/// The `send` handle: takes the app's events to the client. Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    sink: Arc<dyn SendSink>,
}

impl Sender {
    /// A sender delivering to `sink`.
    pub fn new(sink: impl SendSink) -> Self {
        Self {
            sink: Arc::new(sink),
        }
    }

    /// A sender delivering to a sink that is already shared.
    pub fn from_arc(sink: Arc<dyn SendSink>) -> Self {
        Self { sink }
    }

    /// Sends one event. Fails with a typed [`SendError`] once the client is gone (carrying the
    /// reason), or when the event is not valid for the scope or the state.
    pub async fn send(&self, event: SendEvent) -> Result<(), SendError> {
        match self.sink.try_send(event) {
            Ok(()) => Ok(()),
            Err(TrySendError::Failed(e)) => Err(e),
            Err(TrySendError::WouldWait(event)) => self.sink.send(event).await,
        }
    }

    /// A sender that passes each event through `f` before this one sends it.
    pub fn map<F>(self, f: F) -> Sender
    where
        F: Fn(SendEvent) -> SendEvent + Send + Sync + 'static,
    {
        struct Map<F> {
            inner: Sender,
            f: F,
        }
        impl<F: Fn(SendEvent) -> SendEvent + Send + Sync + 'static> SendSink for Map<F> {
            fn send(&self, event: SendEvent) -> BoxFuture<'_, Result<(), SendError>> {
                self.inner.sink.send((self.f)(event))
            }
            fn try_send(&self, event: SendEvent) -> Result<(), TrySendError> {
                self.inner.sink.try_send((self.f)(event))
            }
        }
        Sender::new(Map { inner: self, f })
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sender")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Yields the queued bodies, then `Pending`.
    struct Queue(Mutex<Vec<&'static str>>);

    impl SharedReceiveSource for Queue {
        fn poll_receive(&self, _cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
            match self.0.lock().unwrap().pop() {
                Some(b) => Poll::Ready(ReceiveEvent::Request {
                    body: b.into(),
                    more: true,
                }),
                None => Poll::Pending,
            }
        }
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Receiver>();
        check::<Sender>();
    }

    #[test]
    fn a_shared_source_is_read_through_its_arc() {
        let q = Arc::new(Queue(Mutex::new(vec!["b", "a"])));
        let mut rx = Receiver::from_arc(q.clone()).map(|e| e);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for want in ["a", "b"] {
            match rx.poll_receive(&mut cx) {
                Poll::Ready(ReceiveEvent::Request { body, .. }) => assert_eq!(body, want),
                other => panic!("{other:?}"),
            }
        }
        assert!(rx.poll_receive(&mut cx).is_pending());
        assert_eq!(Arc::strong_count(&q), 2);
    }
}
