//! Middleware composition: a middleware is an app that wraps an app; a [`Layer`] makes one.
//!
//! ```
//! use std::sync::Arc;
//! use ragi::{App, Receiver, Scope, Sender, SendEvent};
//! use ragi_tools::{handler, AppExt, HttpContext, Layer, SharedApp};
//!
//! /// Adds `x-served-by: ragi` to every response.
//! #[derive(Clone)]
//! struct ServedBy;
//!
//! impl Layer for ServedBy {
//!     fn layer(&self, inner: SharedApp) -> SharedApp {
//!         Arc::new(move |scope: Scope, receive: Receiver, send: Sender| {
//!             let send = send.map(|event| match event {
//!                 SendEvent::ResponseStart { status, mut headers, trailers } => {
//!                     headers.push("x-served-by", "ragi");
//!                     SendEvent::ResponseStart { status, headers, trailers }
//!                 }
//!                 other => other,
//!             });
//!             inner.call(scope, receive, send)
//!         })
//!     }
//! }
//!
//! async fn hello(_cx: HttpContext) -> &'static str { "Hello" }
//! let app = handler(hello).layer(ServedBy); // any app takes `.layer(..)`
//! # fn is_app(_: impl App) {}
//! # is_app(app);
//! ```
//!
//! Layers apply inside out: `app.layer(a).layer(b)` runs `b` first, then `a`, then `app`.
//! A closure `Fn(SharedApp) -> SharedApp` is a layer too, and [`Stack`] builds a whole
//! pipeline with conditional layers and mounts (PAGI's `builder { enable; enable_if; mount }`).

use std::sync::Arc;

use ragi::App;

/// An app behind an `Arc`, the form middleware hold their inner app in.
pub type SharedApp = Arc<dyn App>;

/// Makes a middleware: wraps an app in another. See the [module documentation](self).
pub trait Layer: Send + Sync + 'static {
    /// The app that runs this middleware around `inner`.
    fn layer(&self, inner: SharedApp) -> SharedApp;
}

impl<F> Layer for F
where
    F: Fn(SharedApp) -> SharedApp + Send + Sync + 'static,
{
    fn layer(&self, inner: SharedApp) -> SharedApp {
        self(inner)
    }
}

impl Layer for Arc<dyn Layer> {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        (**self).layer(inner)
    }
}

/// `.layer(..)` and `.shared()` on every app.
pub trait AppExt: App + Sized {
    /// This app wrapped by `layer`'s middleware.
    fn layer(self, layer: impl Layer) -> SharedApp {
        layer.layer(Arc::new(self))
    }

    /// This app behind an `Arc`.
    fn shared(self) -> SharedApp {
        Arc::new(self)
    }
}

impl<A: App> AppExt for A {}

/// A pipeline of layers around an app, built in the order requests pass through them, with
/// apps mounted under prefixes beside the central one (PAGI's
/// `builder { enable; enable_if; mount }`):
///
/// ```
/// use ragi_tools::{handler, HttpContext, Stack};
/// # use ragi_tools::SharedApp;
/// # fn timing() -> impl Fn(SharedApp) -> SharedApp + Send + Sync + 'static { |a| a }
/// # fn debug_page() -> impl Fn(SharedApp) -> SharedApp + Send + Sync + 'static { |a| a }
/// async fn hello(_cx: HttpContext) -> &'static str { "Hello" }
/// async fn api(_cx: HttpContext) -> &'static str { "API" }
/// let development = cfg!(debug_assertions);
/// let app = Stack::new()
///     .enable(timing())                        // runs first
///     .enable_if(development, debug_page())    // only when the condition holds
///     .mount("/api", handler(api))             // /api and /api/... (root_path "/api")
///     .run(handler(hello));                    // everything else, and the lifespan scope
/// # let _ = app;
/// ```
///
/// The layers wrap the mounts and the central app alike. Mounts follow the router's rules
/// ([`Router::mount`](crate::router::Router::mount)): segment boundaries, the deepest prefix
/// first, the prefix moved from `path` to `root_path`. The `lifespan` scope goes to the
/// central app.
#[derive(Default)]
pub struct Stack {
    layers: Vec<Arc<dyn Layer>>,
    mounts: Option<crate::router::Router>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("layers", &self.layers.len())
            .field("mounts", &self.mounts)
            .finish()
    }
}

/// The mounts of a [`Stack`] with its central app behind them.
struct UrlMap {
    mounts: crate::router::Router,
    app: SharedApp,
}

impl App for UrlMap {
    fn call(
        &self,
        scope: ragi::Scope,
        receive: ragi::Receiver,
        send: ragi::Sender,
    ) -> ragi::BoxFuture<'static, ragi::AppResult> {
        if scope.kind == ragi::ScopeKind::Lifespan {
            return self.app.call(scope, receive, send);
        }
        self.mounts.call(scope, receive, send)
    }
}

impl Stack {
    /// An empty pipeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `layer`; requests pass through the layers in the order they were added.
    pub fn enable(mut self, layer: impl Layer) -> Self {
        self.layers.push(Arc::new(layer));
        self
    }

    /// Adds `layer` when `condition` holds.
    pub fn enable_if(self, condition: bool, layer: impl Layer) -> Self {
        if condition {
            self.enable(layer)
        } else {
            self
        }
    }

    /// Hands requests under `prefix` to `app` instead of the central app.
    ///
    /// # Panics
    ///
    /// On an invalid prefix or one already mounted.
    pub fn mount(mut self, prefix: &str, app: impl App) -> Self {
        let mounts = self.mounts.take().unwrap_or_default();
        self.mounts = Some(mounts.mount(prefix, app));
        self
    }

    /// The pipeline around `app`.
    pub fn run(self, app: impl App) -> SharedApp {
        let app: SharedApp = Arc::new(app);
        let centre: SharedApp = match self.mounts {
            Some(mounts) => Arc::new(UrlMap {
                mounts: mounts.fallback(app.clone()),
                app,
            }),
            None => app,
        };
        self.layers
            .iter()
            .rev()
            .fold(centre, |inner, l| l.layer(inner))
    }
}
