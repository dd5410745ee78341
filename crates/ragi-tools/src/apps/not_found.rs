//! The app that answers 404 to everything, in the scope's family.
//!
//! ```
//! use ragi_tools::apps::{cascade::Cascade, not_found::NotFound};
//! # async fn api(_cx: ragi_tools::HttpContext) -> &'static str { "api" }
//!
//! // The default answer: `{"error":"not found"}` or `not found` by `Accept`.
//! let plain = NotFound::new();
//! // A page of your own (404, `text/html; charset=utf-8`).
//! let page = NotFound::html("<h1>Nothing here</h1>");
//! let app = Cascade::new().push(ragi_tools::handler(api)).push(page);
//! # let _ = (plain, app);
//! ```
//!
//! An `http` scope gets a 404 response; an `sse` scope the 404 decline (the client sees a
//! plain 404); a WebSocket handshake a 404 denial before accept (or, on a server without
//! the denial extension, a close that the server answers with 403). `lifespan` is declined
//! ([`UnsupportedScope`]), so a `NotFound` at the end of a chain never claims to handle
//! start-up.
//!
//! PAGI's `App::NotFound` answers HTTP only; Starlette's and axum's 404 fallbacks are
//! per-router. The request body is not read.

use bytes::Bytes;
use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, Sender, UnsupportedScope};

use crate::{Error, IntoResponse, Responder, Response};

/// The 404 app. See the [module documentation](self).
#[derive(Clone, Debug, Default)]
pub struct NotFound {
    body: Option<(Bytes, Bytes)>,
}

impl NotFound {
    /// The toolkit's 404: `{"error":"not found"}`, or `not found` as text when the request's
    /// `Accept` prefers it.
    pub fn new() -> Self {
        Self::default()
    }

    /// A 404 with `body` as `content_type`.
    pub fn with_body(content_type: impl Into<Bytes>, body: impl Into<Bytes>) -> Self {
        Self {
            body: Some((content_type.into(), body.into())),
        }
    }

    /// A 404 with an HTML page.
    pub fn html(page: impl Into<Bytes>) -> Self {
        Self::with_body("text/html; charset=utf-8", page)
    }

    /// The response this app sends.
    pub fn response(&self) -> Response {
        match &self.body {
            None => Error::not_found().into_response(),
            Some((ct, body)) => Response::new(404)
                .content_type(ct.clone())
                .body(body.clone()),
        }
    }
}

impl App for NotFound {
    fn call(
        &self,
        scope: Scope,
        _receive: Receiver,
        send: Sender,
    ) -> BoxFuture<'static, AppResult> {
        let response = self.response();
        Box::pin(async move {
            match scope.kind {
                ScopeKind::Http | ScopeKind::Sse | ScopeKind::WebSocket => {}
                other => return Err(UnsupportedScope(other).into()),
            }
            Responder::new(&scope, send).complete(response).await
        })
    }
}
