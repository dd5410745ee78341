//! Lifespan: the app's start-up and shut-down, around the server's life.
//!
//! The server calls the app once with a `lifespan` scope before accepting connections, sends
//! `Startup` and waits for `StartupComplete` (go on), `StartupFailed` (abort start-up; the
//! binary exits 1 with the message on stderr), or the app returning or failing without an
//! answer (the app does not do lifespan; go on). At shut-down it sends `Shutdown` and waits,
//! bounded by the shutdown deadline, for `ShutdownComplete` or `ShutdownFailed`.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ragi::{
    App, BoxFuture, ReceiveEvent, ReceiveSource, Receiver, Scope, ScopeKind, SendError, SendEvent,
    SendSink, Sender, State,
};
use tokio::sync::mpsc;

use crate::Error;

enum Said {
    Event(SendEvent),
    Returned(Result<(), String>),
}

struct Source(mpsc::UnboundedReceiver<ReceiveEvent>);

impl ReceiveSource for Source {
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        match self.0.poll_recv(cx) {
            Poll::Ready(Some(e)) => Poll::Ready(e),
            // The server is gone: the only thing left to say is shut down.
            Poll::Ready(None) => Poll::Ready(ReceiveEvent::Shutdown),
            Poll::Pending => Poll::Pending,
        }
    }
}

struct Sink(mpsc::UnboundedSender<Said>);

impl SendSink for Sink {
    fn send(&self, event: SendEvent) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async move {
            match event {
                SendEvent::StartupComplete
                | SendEvent::StartupFailed { .. }
                | SendEvent::ShutdownComplete
                | SendEvent::ShutdownFailed { .. } => {
                    let _ = self.0.send(Said::Event(event));
                    Ok(())
                }
                other => Err(SendError::invalid_event(format!(
                    "{} is not valid in a lifespan scope",
                    other.name()
                ))),
            }
        })
    }
}

/// How long shut-down waits for the lifespan app to return after it answered.
const RETURN_GRACE: Duration = Duration::from_secs(1);

/// A running lifespan call.
pub(crate) struct Lifespan {
    tx: mpsc::UnboundedSender<ReceiveEvent>,
    rx: mpsc::UnboundedReceiver<Said>,
}

/// Runs start-up. `Ok(None)`: the app does not do lifespan.
pub(crate) async fn startup(
    app: Arc<dyn App>,
    state: State,
    server_state: State,
) -> Result<Option<Lifespan>, Error> {
    let (tx, ev_rx) = mpsc::unbounded_channel();
    let (out_tx, mut rx) = mpsc::unbounded_channel();
    let mut scope = Scope::new(ScopeKind::Lifespan);
    scope.state = state;
    scope.extensions.server_state = Some(server_state);
    let fut = app.call(
        scope,
        Receiver::new(Source(ev_rx)),
        Sender::new(Sink(out_tx.clone())),
    );
    tokio::spawn(async move {
        let r = tokio::spawn(fut).await;
        let r = match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("the lifespan app panicked: {e}")),
        };
        let _ = out_tx.send(Said::Returned(r));
    });
    let _ = tx.send(ReceiveEvent::Startup);
    match rx.recv().await {
        Some(Said::Event(SendEvent::StartupComplete)) => Ok(Some(Lifespan { tx, rx })),
        Some(Said::Event(SendEvent::StartupFailed { message })) => Err(Error::startup(message)),
        Some(Said::Event(other)) => {
            tracing::warn!(
                event = other.name(),
                "lifespan app answered start-up with an unexpected event; going on"
            );
            Ok(None)
        }
        Some(Said::Returned(r)) => {
            tracing::debug!(result = ?r, "the app does not handle lifespan; going on");
            Ok(None)
        }
        None => Ok(None),
    }
}

impl Lifespan {
    /// Runs shut-down, waiting at most `timeout` for the app's answer, and then up to
    /// [`RETURN_GRACE`] (within the same deadline) for the app call to return, so that what it
    /// does after `ShutdownComplete` (closing a pool, flushing a log) finishes before the
    /// server does.
    pub(crate) async fn shutdown(mut self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let _ = self.tx.send(ReceiveEvent::Shutdown);
        let answered = async {
            loop {
                match self.rx.recv().await {
                    Some(Said::Event(SendEvent::ShutdownComplete)) => return false,
                    Some(Said::Event(SendEvent::ShutdownFailed { message })) => {
                        tracing::error!(%message, "lifespan shut-down failed");
                        eprintln!("lifespan shut-down failed: {message}");
                        return false;
                    }
                    Some(Said::Returned(_)) | None => return true,
                    Some(Said::Event(_)) => {}
                }
            }
        };
        let returned = match tokio::time::timeout_at(deadline, answered).await {
            Ok(returned) => returned,
            Err(_) => {
                tracing::warn!("lifespan shut-down did not answer in time");
                return;
            }
        };
        if !returned {
            let grace = deadline.min(tokio::time::Instant::now() + RETURN_GRACE);
            let _ = tokio::time::timeout_at(grace, async {
                while let Some(said) = self.rx.recv().await {
                    if matches!(said, Said::Returned(_)) {
                        return;
                    }
                }
            })
            .await;
        }
    }
}
