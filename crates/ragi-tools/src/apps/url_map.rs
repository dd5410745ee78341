//! Apps mounted at path prefixes: the longest prefix wins, and the mounted app sees the rest
//! of the path with the prefix moved to `root_path`.
//!
//! ```
//! use ragi_tools::apps::{static_files::StaticFiles, url_map::UrlMap};
//! # async fn api(_cx: ragi_tools::HttpContext) -> &'static str { "api" }
//! # async fn site(_cx: ragi_tools::HttpContext) -> &'static str { "site" }
//! # fn main() -> std::io::Result<()> {
//! # let dir = std::env::temp_dir();
//! let app = UrlMap::new()
//!     .mount("/api", ragi_tools::handler(api))        // /api/x → path /x, root_path /api
//!     .mount("/static", StaticFiles::new(&dir)?)      // /static/app.js → app.js
//!     .fallback(ragi_tools::handler(site));           // everything else, scope unchanged
//! # let _ = app;
//! # Ok(()) }
//! ```
//!
//! This is the router's mount ([`Router::mount`]) without routes, so the rules are the
//! router's: prefixes end on segment boundaries (`/api` takes `/api` and `/api/x`, never
//! `/apix`); the deepest prefix wins whatever the order of the calls; an exact match leaves
//! the path `/`; matching runs on the raw path, so an encoded slash never splits a segment;
//! `path`, `raw_path` and `root_path` are rewritten together (`root_path` accumulates under
//! nested maps). What no mount takes goes to the [`fallback`](UrlMap::fallback) app with the
//! scope unchanged, or gets a 404 in the scope's family (HTTP, SSE decline, WebSocket
//! denial). Every scope kind is mapped; `lifespan` goes to the fallback app if there is one
//! and is declined otherwise (wrap the map in [`Lifespan`](crate::lifespan::Lifespan) for
//! start-up work).
//!
//! PAGI's `App::URLMap` is the model (longest prefix first, `root_path` extended); it matches
//! the decoded path with a string prefix, which ragi's raw, segment-wise match avoids.

use std::sync::Arc;

use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, Sender, UnsupportedScope};

use crate::router::Router;
use crate::SharedApp;

/// The URL map. See the [module documentation](self).
pub struct UrlMap {
    router: Router,
    fallback: Option<SharedApp>,
}

impl Default for UrlMap {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for UrlMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlMap")
            .field("router", &self.router)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl UrlMap {
    /// An empty map: every request is a 404.
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            fallback: None,
        }
    }

    /// Hands every request under `prefix` to `app`.
    ///
    /// # Panics
    ///
    /// On an invalid prefix or one already mounted (see [`Router::mount`]).
    pub fn mount(mut self, prefix: &str, app: impl App) -> Self {
        self.router = self.router.mount(prefix, app);
        self
    }

    /// The app for what no mount takes (it gets the scope unchanged), and for `lifespan`.
    pub fn fallback(mut self, app: impl App) -> Self {
        let app: SharedApp = Arc::new(app);
        self.router = self.router.fallback(app.clone());
        self.fallback = Some(app);
        self
    }
}

impl App for UrlMap {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        if scope.kind == ScopeKind::Lifespan {
            return match &self.fallback {
                Some(app) => app.call(scope, receive, send),
                None => Box::pin(async move { Err(UnsupportedScope(ScopeKind::Lifespan).into()) }),
            };
        }
        self.router.call(scope, receive, send)
    }
}
