//! Handlers: plain `async fn`s of a context, turned into ragi apps.
//!
//! ```
//! use ragi_tools::{handler, HttpContext};
//!
//! async fn hello(_cx: HttpContext) -> &'static str {
//!     "Hello, World!"
//! }
//!
//! // A ragi app serving every HTTP request with `hello`.
//! let app = handler(hello);
//! # fn is_app(_: impl ragi::App) {}
//! # is_app(app);
//! ```
//!
//! A [`Handler`] takes an [`HttpContext`] and returns anything that is
//! [`IntoResponse`](crate::IntoResponse); [`handler`] makes it an [`App`]. The app serves `http`
//! scopes and `sse` scopes (a request that also accepts an event stream is still an HTTP
//! request to this handler; the answer goes out through the decline pair), and declines other
//! kinds with [`UnsupportedScope`](ragi::UnsupportedScope), which the server answers itself.
//!
//! After the handler returns, the toolkit finishes the answer: it sends the returned response,
//! or ends a body the handler started itself and left open. An error returned after the
//! response started aborts it (HTTP/1.1 closes the connection without the last chunk; HTTP/2
//! resets the stream), so a client never mistakes a truncated body for a whole one.

use std::future::Future;
use std::sync::Arc;

use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, Sender, UnsupportedScope};

use crate::response::Responder;
use crate::{HttpContext, IntoResponse, Response};

/// An HTTP handler: an async function of the [`HttpContext`]. See the
/// [module documentation](self).
pub trait Handler: Send + Sync + 'static {
    /// Handles one request.
    fn call(&self, cx: HttpContext) -> BoxFuture<'static, Response>;
}

impl<F, Fut, R> Handler for F
where
    F: Fn(HttpContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    fn call(&self, cx: HttpContext) -> BoxFuture<'static, Response> {
        let fut = self(cx);
        Box::pin(async move { fut.await.into_response() })
    }
}

impl Handler for Arc<dyn Handler> {
    fn call(&self, cx: HttpContext) -> BoxFuture<'static, Response> {
        (**self).call(cx)
    }
}

/// The app that serves every HTTP request with `h`. See the [module documentation](self).
pub fn handler<H: Handler>(h: H) -> HandlerApp<H> {
    HandlerApp {
        handler: Arc::new(h),
    }
}

/// An app made of an HTTP [`Handler`]; built by [`handler`].
pub struct HandlerApp<H> {
    handler: Arc<H>,
}

impl<H> Clone for HandlerApp<H> {
    fn clone(&self) -> Self {
        Self {
            handler: self.handler.clone(),
        }
    }
}

impl<H> std::fmt::Debug for HandlerApp<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandlerApp")
    }
}

impl<H: Handler> App for HandlerApp<H> {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let handler = self.handler.clone();
        Box::pin(async move {
            match scope.kind {
                ScopeKind::Http | ScopeKind::Sse => {}
                other => return Err(UnsupportedScope(other).into()),
            }
            run(&*handler, scope, receive, send).await
        })
    }
}

/// Runs `handler` for one HTTP (or `sse`) scope and finishes its answer.
pub(crate) async fn run<H: Handler + ?Sized>(
    handler: &H,
    scope: Scope,
    receive: Receiver,
    send: Sender,
) -> AppResult {
    let responder = Responder::new(&scope, send);
    let cx = HttpContext::from_parts(scope, receive, responder.clone());
    let response = handler.call(cx).await;
    responder.complete(response).await
}
