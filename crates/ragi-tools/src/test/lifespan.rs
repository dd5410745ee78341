//! Lifespan: the app's start-up and shut-down, as the server runs them (`ragi-server`'s
//! `lifespan.rs`).

use std::task::{Context, Poll};
use std::time::Duration;

use ragi::{
    BoxFuture, ReceiveEvent, ReceiveSource, Receiver, Scope, ScopeKind, SendError, SendEvent,
    SendSink, Sender,
};
use tokio::sync::mpsc;

use super::{TestClient, TestError};

enum Said {
    Event(SendEvent),
    Returned,
}

struct Source(mpsc::UnboundedReceiver<ReceiveEvent>);

impl ReceiveSource for Source {
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        match self.0.poll_recv(cx) {
            Poll::Ready(Some(e)) => Poll::Ready(e),
            // The client is gone: the only thing left to say is shut down.
            Poll::Ready(None) => Poll::Ready(ReceiveEvent::Shutdown),
            Poll::Pending => Poll::Pending,
        }
    }
}

struct Sink(mpsc::UnboundedSender<Said>);

impl SendSink for Sink {
    fn send(&self, event: SendEvent) -> BoxFuture<'_, Result<(), SendError>> {
        let r = match event {
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
        };
        Box::pin(std::future::ready(r))
    }
}

struct Run {
    tx: mpsc::UnboundedSender<ReceiveEvent>,
    rx: mpsc::UnboundedReceiver<Said>,
}

/// The lifespan of one test client.
#[derive(Default)]
pub(crate) struct Lifespan {
    run: Option<Run>,
    supported: Option<bool>,
}

impl Lifespan {
    pub(crate) fn supported(&self) -> Option<bool> {
        self.supported
    }

    pub(crate) async fn start(
        &mut self,
        client: &TestClient,
        timeout: Duration,
    ) -> Result<(), TestError> {
        if self.run.is_some() {
            return Ok(());
        }
        let (tx, ev_rx) = mpsc::unbounded_channel();
        let (out_tx, mut rx) = mpsc::unbounded_channel();
        let mut scope = Scope::new(ScopeKind::Lifespan);
        scope.state = client.shared.state.clone();
        scope.extensions.server_state = Some(client.shared.server_state.clone());
        let fut = client.app.call(
            scope,
            Receiver::new(Source(ev_rx)),
            Sender::new(Sink(out_tx.clone())),
        );
        tokio::spawn(async move {
            // Returning or failing: either way the app does not (or no longer) answer.
            let _ = tokio::spawn(fut).await;
            let _ = out_tx.send(Said::Returned);
        });
        let _ = tx.send(ReceiveEvent::Startup);
        let answer = tokio::time::timeout(timeout, rx.recv())
            .await
            .map_err(|_| TestError::timeout("the app's answer to lifespan Startup", timeout))?;
        match answer {
            Some(Said::Event(SendEvent::StartupComplete)) => {
                self.supported = Some(true);
                self.run = Some(Run { tx, rx });
                Ok(())
            }
            Some(Said::Event(SendEvent::StartupFailed { message })) => {
                self.supported = Some(true);
                Err(TestError::StartupFailed(message))
            }
            // An unexpected answer, a return or a failure without an answer: the app does
            // not do lifespan; the server goes on, and so does the test client.
            Some(_) | None => {
                self.supported = Some(false);
                Ok(())
            }
        }
    }

    pub(crate) async fn stop(&mut self, timeout: Duration) -> Result<(), TestError> {
        let Some(mut run) = self.run.take() else {
            return Ok(());
        };
        let _ = run.tx.send(ReceiveEvent::Shutdown);
        let wait = async {
            loop {
                match run.rx.recv().await {
                    Some(Said::Event(SendEvent::ShutdownComplete)) | None => return Ok(()),
                    Some(Said::Event(SendEvent::ShutdownFailed { message })) => {
                        return Err(TestError::ShutdownFailed(message))
                    }
                    Some(Said::Returned) => return Ok(()),
                    Some(Said::Event(_)) => {}
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| TestError::timeout("the app's answer to lifespan Shutdown", timeout))?
    }
}
