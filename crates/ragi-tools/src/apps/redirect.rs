//! The app that redirects: to a fixed location, to the same path under another prefix, or to
//! wherever a function says.
//!
//! ```
//! use ragi_tools::apps::redirect::Redirect;
//! use ragi_tools::router::Router;
//!
//! let app = Router::new()
//!     // `/old?x=1` → 308 `/new?x=1`.
//!     .mount("/old", Redirect::to("/new").status(308))
//!     // `/docs/a/b` → 307 `https://docs.example.com/a/b`.
//!     .mount("/docs", Redirect::prefix("https://docs.example.com"))
//!     // Computed from the scope.
//!     .mount("/me", Redirect::with(|scope| format!("/users/{}", scope.headers.get_str("x-user").unwrap_or("anon"))));
//! # let _ = app;
//! ```
//!
//! * **Status**: `307 Temporary Redirect` by default (Starlette's `RedirectResponse`
//!   default; PAGI's `App::Redirect` uses 302, which browsers follow with GET after a POST);
//!   [`status`](Redirect::status) takes 301, 302, 303, 307 or 308.
//! * **Query**: kept by default (appended with `?`, or `&` when the location already has a
//!   query), as PAGI does; [`keep_query(false)`](Redirect::keep_query) drops it.
//! * [`Redirect::prefix`] appends the request's `raw_path` (what is left after a mount, as
//!   the client spelt it) to the base, so nothing is decoded and re-encoded on the way.
//! * A location that is not a valid field value (CR, LF, NUL from a computed target) is a
//!   500, never a split header.
//! * Every scope family gets the redirect: an `sse` scope through the decline pair, a
//!   WebSocket handshake through the denial pair before accept (the client sees the 3xx);
//!   `lifespan` is declined. The request body is not read.

use std::sync::Arc;

use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, Sender, UnsupportedScope};

use crate::{Error, IntoResponse, Responder, Response};

type TargetFn = Arc<dyn Fn(&Scope) -> String + Send + Sync>;

#[derive(Clone)]
enum Target {
    Fixed(String),
    Prefix(String),
    With(TargetFn),
}

/// The redirect app. See the [module documentation](self).
#[derive(Clone)]
pub struct Redirect {
    target: Target,
    status: u16,
    keep_query: bool,
}

impl std::fmt::Debug for Redirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = match &self.target {
            Target::Fixed(t) => format!("to {t:?}"),
            Target::Prefix(t) => format!("prefix {t:?}"),
            Target::With(_) => "computed".to_owned(),
        };
        f.debug_struct("Redirect")
            .field("target", &target)
            .field("status", &self.status)
            .field("keep_query", &self.keep_query)
            .finish()
    }
}

impl Redirect {
    fn new(target: Target) -> Self {
        Self {
            target,
            status: 307,
            keep_query: true,
        }
    }

    /// Redirects every request to `location`.
    pub fn to(location: impl Into<String>) -> Self {
        Self::new(Target::Fixed(location.into()))
    }

    /// Redirects to `base` followed by the request's raw path (`/x` under a mount at `/old`
    /// goes to `base/x`). A trailing `/` on `base` is dropped first.
    pub fn prefix(base: impl Into<String>) -> Self {
        let mut base = base.into();
        while base.ends_with('/') {
            base.pop();
        }
        Self::new(Target::Prefix(base))
    }

    /// Redirects to the location `f` computes from the scope.
    pub fn with(f: impl Fn(&Scope) -> String + Send + Sync + 'static) -> Self {
        Self::new(Target::With(Arc::new(f)))
    }

    /// The status: 301, 302, 303, 307 (the default) or 308.
    ///
    /// # Panics
    ///
    /// On any other status.
    pub fn status(mut self, status: u16) -> Self {
        assert!(
            matches!(status, 301 | 302 | 303 | 307 | 308),
            "a redirect status is 301, 302, 303, 307 or 308, not {status}"
        );
        self.status = status;
        self
    }

    /// Whether the request's query is appended to the location (default: yes).
    pub fn keep_query(mut self, keep: bool) -> Self {
        self.keep_query = keep;
        self
    }

    /// The location for `scope`.
    pub fn location(&self, scope: &Scope) -> String {
        let mut location = match &self.target {
            Target::Fixed(t) => t.clone(),
            Target::Prefix(base) => format!("{base}{}", String::from_utf8_lossy(&scope.raw_path)),
            Target::With(f) => f(scope),
        };
        if self.keep_query && !scope.query_string.is_empty() {
            location.push(if location.contains('?') { '&' } else { '?' });
            location.push_str(&String::from_utf8_lossy(&scope.query_string));
        }
        location
    }

    /// The response for `scope`.
    pub fn response(&self, scope: &Scope) -> Response {
        let location = self.location(scope);
        if location.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Error::internal(format!(
                "redirect location is not a valid field value: {location:?}"
            ))
            .into_response();
        }
        Response::redirect_with(self.status, location)
    }
}

impl App for Redirect {
    fn call(
        &self,
        scope: Scope,
        _receive: Receiver,
        send: Sender,
    ) -> BoxFuture<'static, AppResult> {
        let response = match scope.kind {
            ScopeKind::Http | ScopeKind::Sse | ScopeKind::WebSocket => self.response(&scope),
            other => return Box::pin(async move { Err(UnsupportedScope(other).into()) }),
        };
        Box::pin(async move { Responder::new(&scope, send).complete(response).await })
    }
}
