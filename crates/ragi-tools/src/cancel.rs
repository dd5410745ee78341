//! Cancel on disconnect: drop an app's future the moment its client leaves.
//!
//! ```
//! use ragi_tools::cancel::{CancelOnDisconnect, Cancelled};
//! use ragi_tools::router::{get, Router};
//! use ragi_tools::{AppExt, HttpContext};
//!
//! async fn report(_cx: HttpContext) -> String {
//!     // Expensive and side-effect free: nothing is lost if it stops half-way.
//!     "done".to_owned()
//! }
//!
//! let app = Router::new()
//!     // One route:
//!     .route("/report", get(report).cancel_on_disconnect(true))
//!     // Or every route of this router (a route's own setting wins):
//!     .cancel_on_disconnect(true);
//!
//! // Or any app, as a layer:
//! let other = ragi_tools::handler(report).layer(CancelOnDisconnect);
//! # let _ = (app, other);
//! ```
//!
//! When the client leaves (its [`Connection`](ragi::Connection) reports a reason), the wrapped
//! future is dropped at its next suspension point, without waiting for it to notice, and a
//! [`Cancelled`] record carrying the reason is put in the scope's stash, where any middleware
//! that kept a clone of the scope (an access log, metrics) reads it after the call returns.
//! The call then returns `Ok(())`: there is no one left to answer.
//!
//! # Off by default
//!
//! Dropping a future stops it at whatever `.await` it was parked on: half of a database
//! transaction, a file half written, a lock-protected invariant half restored, an event half
//! queued (`Sender::send` is not cancel safe). axum drops handler futures implicitly when hyper
//! drops the connection, and code that was never written for it then breaks in ways no test
//! shows. ragi instead tells every app that its client left — synchronously through the
//! connection object, through `disconnected()`, through the failing `send` — so the app stops
//! where it is safe to. Cancelling is an explicit choice, per route, per group, per router, or
//! with this layer around any app, for work that is safe to abandon (a read-only query, a
//! computation whose result only this client wanted). See `docs/decisions.md`.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use ragi::{App, AppResult, BoxFuture, DisconnectReason, Receiver, Scope, Sender};

use crate::{Layer, SharedApp};

/// The record [`CancelOnDisconnect`] (or a route marked to cancel) leaves in the scope's stash
/// when it dropped the app's future because the client left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancelled {
    /// Why the client left.
    pub reason: DisconnectReason,
}

/// The layer that drops its app's future the moment the client leaves and records
/// [`Cancelled`] in the stash. See the [module documentation](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct CancelOnDisconnect;

impl Layer for CancelOnDisconnect {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(Cancelling { inner })
    }
}

struct Cancelling {
    inner: SharedApp,
}

impl App for Cancelling {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let guard = Guard::new(&scope);
        guard.run(self.inner.call(scope, receive, send))
    }
}

/// What a cancelling call keeps: the connection object to watch and the stash to record in.
pub(crate) struct Guard {
    connection: ragi::Connection,
    stash: ragi::Stash,
}

impl Guard {
    pub(crate) fn new(scope: &Scope) -> Self {
        Self {
            connection: scope.connection().clone(),
            stash: scope.stash.clone(),
        }
    }

    /// `fut`, dropped when the client leaves.
    pub(crate) fn run(self, fut: BoxFuture<'static, AppResult>) -> BoxFuture<'static, AppResult> {
        Box::pin(async move {
            let mut fut = fut;
            let reason = {
                let mut gone = pin!(self.connection.disconnected());
                let outcome = std::future::poll_fn(|cx| {
                    // The departure first: a client that already left never starts the work.
                    if let Poll::Ready(reason) = gone.as_mut().poll(cx) {
                        return Poll::Ready(Err(reason));
                    }
                    fut.as_mut().poll(cx).map(Ok)
                })
                .await;
                match outcome {
                    Ok(result) => return result,
                    Err(reason) => reason,
                }
            };
            // Recorded first, so that drop guards inside the app can read why they run.
            self.stash.insert(Cancelled {
                reason: reason.clone(),
            });
            drop(fut);
            tracing::debug!(reason = %reason, "client left: the app's future was dropped");
            Ok(())
        })
    }
}
