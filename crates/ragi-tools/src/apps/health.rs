//! A liveness app: `200 {"status":"ok"}` for as long as the server answers.
//!
//! ```
//! use ragi_tools::apps::health::Health;
//! use ragi_tools::router::Router;
//! # async fn home(_cx: ragi_tools::HttpContext) -> &'static str { "home" }
//!
//! let app = Router::new().get("/", home).mount("/healthz", Health::new());
//! # let _ = app;
//! ```
//!
//! Answers GET and HEAD at any path it is given (mount it where the prober looks) with
//! `200`, `application/json` `{"status":"ok"}` and `Cache-Control: no-store`; other methods
//! get `405` with `Allow: GET, HEAD`; a WebSocket handshake a 404 denial; `lifespan` is
//! declined. It runs nothing: a liveness probe that fails on a dependency's outage makes an
//! orchestrator restart healthy processes. Readiness checks (each bounded, run concurrently)
//! are the health-check *middleware*'s job (`middleware::health`, which also answers
//! `/healthz` and `/readyz` in front of any app).
//!
//! PAGI's `App::Healthcheck` runs optional checks one after the other with no time bound;
//! Starlette and tower-http have none.

use http::Method;
use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, Sender, UnsupportedScope};

use crate::{Error, IntoResponse, Responder, Response};

/// The liveness app. See the [module documentation](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Health;

impl Health {
    /// The app.
    pub fn new() -> Self {
        Self
    }
}

impl App for Health {
    fn call(
        &self,
        scope: Scope,
        _receive: Receiver,
        send: Sender,
    ) -> BoxFuture<'static, AppResult> {
        Box::pin(async move {
            let response = match scope.kind {
                ScopeKind::Http | ScopeKind::Sse => {
                    if scope.method == Method::GET || scope.method == Method::HEAD {
                        Response::new(200)
                            .content_type("application/json")
                            .header("cache-control", "no-store")
                            .body(&b"{\"status\":\"ok\"}"[..])
                    } else {
                        Error::method_not_allowed("GET, HEAD").into_response()
                    }
                }
                ScopeKind::WebSocket => Error::not_found().into_response(),
                other => return Err(UnsupportedScope(other).into()),
            };
            Responder::new(&scope, send).complete(response).await
        })
    }
}
