//! The lifespan helper: start-up and shut-down hooks that build the state every scope shares.
//!
//! ```
//! use ragi_tools::lifespan::Lifespan;
//! use ragi_tools::prelude::*;
//! use ragi_tools::router::Router;
//!
//! struct Pool { url: String }
//! #[derive(Clone)]
//! struct Greeting(&'static str);
//!
//! async fn hello(cx: HttpContext) -> Result<String, Error> {
//!     let pool = cx.state_of::<Pool>()?; // built once per worker, shared by every scope
//!     Ok(format!("{} from {}", cx.state_of::<Greeting>()?.0, pool.url))
//! }
//!
//! let app = Lifespan::new(Router::new().get("/", hello))
//!     .state(Greeting("hello"))
//!     .state_with(|| async { Ok::<_, Error>(Pool { url: "db://".into() }) })
//!     .on_startup(|state| async move {
//!         if state.get::<Pool>().is_none() {
//!             return Err("no pool"); // the server gets StartupFailed and exits non-zero
//!         }
//!         Ok(())
//!     })
//!     .on_shutdown(|_state| async { Ok::<_, Error>(()) });
//! # fn is_app(_: impl ragi::App) {}
//! # is_app(app);
//! ```
//!
//! On the `lifespan` scope (one per worker, before the first connection) the hooks run in the
//! order they were added, each given the scope's [`State`]; whatever they insert, the server
//! shares into every later scope of that worker as `scope.state` (read it with
//! [`Context::state_of`](crate::Context::state_of)). A hook that fails sends `StartupFailed`
//! with its message (the server exits with a non-zero status); the later hooks do not run.
//! Once the hooks succeeded, the lifespan scope is passed on to the wrapped app, so an inner
//! app with a lifespan of its own (another `Lifespan`, a pub/sub hub) starts too; an inner app
//! that declines it (a [`Router`](crate::router::Router) does) is simply left out. On
//! shut-down the inner app stops first, then the shut-down hooks run in reverse order; every
//! hook runs even when one fails, and the first failure is reported as `ShutdownFailed`.
//! Every other scope goes straight to the wrapped app.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use ragi::{
    App, AppResult, BoxFuture, ReceiveEvent, ReceiveSource, Receiver, Scope, ScopeKind, SendError,
    SendEvent, SendSink, Sender, State,
};
use tokio::sync::mpsc;

type Hook = Arc<dyn Fn(State) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// An app with start-up and shut-down hooks. See the [module documentation](self).
pub struct Lifespan<A> {
    app: Arc<A>,
    startup: Vec<Hook>,
    shutdown: Vec<Hook>,
}

impl<A> std::fmt::Debug for Lifespan<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifespan")
            .field("startup_hooks", &self.startup.len())
            .field("shutdown_hooks", &self.shutdown.len())
            .finish()
    }
}

fn hook<F, Fut, E>(f: F) -> Hook
where
    F: Fn(State) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display,
{
    Arc::new(move |state| {
        let fut = f(state);
        Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
    })
}

impl<A: App> Lifespan<A> {
    /// `app` with no hooks yet.
    pub fn new(app: A) -> Self {
        Self {
            app: Arc::new(app),
            startup: Vec::new(),
            shutdown: Vec::new(),
        }
    }

    /// Runs `f` at start-up with the worker's state; an `Err` fails the start-up with its
    /// message.
    pub fn on_startup<F, Fut, E>(mut self, f: F) -> Self
    where
        F: Fn(State) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display,
    {
        self.startup.push(hook(f));
        self
    }

    /// Runs `f` at shut-down (hooks run in reverse order); an `Err` is reported as
    /// `ShutdownFailed` once every hook ran.
    pub fn on_shutdown<F, Fut, E>(mut self, f: F) -> Self
    where
        F: Fn(State) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display,
    {
        self.shutdown.push(hook(f));
        self
    }

    /// Puts a clone of `value` in each worker's state at start-up.
    pub fn state<T: Clone + Send + Sync + 'static>(self, value: T) -> Self {
        self.on_startup(move |state| {
            state.insert(value.clone());
            std::future::ready(Ok::<_, std::convert::Infallible>(()))
        })
    }

    /// Builds a `T` with `f` at start-up and puts it in the worker's state; an `Err` fails the
    /// start-up.
    pub fn state_with<T, F, Fut, E>(self, f: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Display,
    {
        let f = Arc::new(f);
        self.on_startup(move |state| {
            let f = f.clone();
            async move {
                state.insert(f().await?);
                Ok::<_, E>(())
            }
        })
    }
}

impl<A: App> App for Lifespan<A> {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        if scope.kind != ScopeKind::Lifespan {
            return self.app.call(scope, receive, send);
        }
        let run = Run {
            app: self.app.clone(),
            startup: self.startup.clone(),
            shutdown: self.shutdown.clone(),
        };
        Box::pin(run.run(scope, receive, send))
    }
}

struct Run<A> {
    app: Arc<A>,
    startup: Vec<Hook>,
    shutdown: Vec<Hook>,
}

/// The inner app's lifespan call, and the two ends of its channels.
struct Inner {
    call: Option<BoxFuture<'static, AppResult>>,
    to: mpsc::UnboundedSender<ReceiveEvent>,
    from: mpsc::UnboundedReceiver<SendEvent>,
}

impl Inner {
    /// The inner app's next event; `None` once its call returned without one (it does not
    /// take part in the lifespan).
    async fn reply(&mut self) -> Option<SendEvent> {
        std::future::poll_fn(|cx| {
            if let Poll::Ready(Some(e)) = self.from.poll_recv(cx) {
                return Poll::Ready(Some(e));
            }
            let Some(call) = &mut self.call else {
                return Poll::Ready(None);
            };
            match call.as_mut().poll(cx) {
                Poll::Ready(result) => {
                    self.call = None;
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "the wrapped app's lifespan call ended");
                    }
                    Poll::Ready(self.from.try_recv().ok())
                }
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Keeps the inner call running until it returns (never resolves while it runs).
    async fn drive(&mut self) {
        loop {
            if self.reply().await.is_none() {
                return std::future::pending().await;
            }
        }
    }
}

struct ChannelSource(mpsc::UnboundedReceiver<ReceiveEvent>);

impl ReceiveSource for ChannelSource {
    fn poll_receive(&mut self, cx: &mut std::task::Context<'_>) -> Poll<ReceiveEvent> {
        match self.0.poll_recv(cx) {
            Poll::Ready(Some(e)) => Poll::Ready(e),
            // The outer call is gone: nothing more will come.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

struct ChannelSink(mpsc::UnboundedSender<SendEvent>);

impl SendSink for ChannelSink {
    fn send(&self, event: SendEvent) -> BoxFuture<'_, Result<(), SendError>> {
        let _ = self.0.send(event);
        Box::pin(std::future::ready(Ok(())))
    }
}

impl<A: App> Run<A> {
    async fn run(self, scope: Scope, mut receive: Receiver, send: Sender) -> AppResult {
        loop {
            match receive.receive().await {
                ReceiveEvent::Startup => break,
                ReceiveEvent::Shutdown => {
                    send.send(SendEvent::ShutdownComplete).await?;
                    return Ok(());
                }
                _ => {}
            }
        }
        let state = scope.state.clone();
        for h in &self.startup {
            if let Err(message) = h(state.clone()).await {
                send.send(SendEvent::StartupFailed { message }).await?;
                return Ok(());
            }
        }
        let (to, inner_rx) = mpsc::unbounded_channel();
        let (inner_tx, from) = mpsc::unbounded_channel();
        let call = self.app.call(
            scope,
            Receiver::new(ChannelSource(inner_rx)),
            Sender::new(ChannelSink(inner_tx)),
        );
        let mut inner = Inner {
            call: Some(call),
            to,
            from,
        };
        let _ = inner.to.send(ReceiveEvent::Startup);
        loop {
            match inner.reply().await {
                Some(SendEvent::StartupComplete) | None => break,
                Some(SendEvent::StartupFailed { message }) => {
                    send.send(SendEvent::StartupFailed { message }).await?;
                    return Ok(());
                }
                Some(_) => {}
            }
        }
        send.send(SendEvent::StartupComplete).await?;
        loop {
            tokio::select! {
                event = receive.receive() => {
                    if event == ReceiveEvent::Shutdown {
                        break;
                    }
                }
                () = inner.drive() => {}
            }
        }
        let mut failure = None;
        if inner.call.is_some() {
            let _ = inner.to.send(ReceiveEvent::Shutdown);
            while let Some(event) = inner.reply().await {
                match event {
                    SendEvent::ShutdownComplete => break,
                    SendEvent::ShutdownFailed { message } => {
                        failure = Some(message);
                        break;
                    }
                    _ => {}
                }
            }
        }
        for h in self.shutdown.iter().rev() {
            if let Err(message) = h(state.clone()).await {
                failure.get_or_insert(message);
            }
        }
        let event = match failure {
            Some(message) => SendEvent::ShutdownFailed { message },
            None => SendEvent::ShutdownComplete,
        };
        send.send(event).await?;
        Ok(())
    }
}
