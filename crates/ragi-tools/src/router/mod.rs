//! The router: one table for HTTP, WebSocket and SSE routes, mounts and groups.
//!
//! ```
//! use ragi_tools::prelude::*;
//! use ragi_tools::router::{get, Router, TrailingSlash};
//!
//! async fn hello(_cx: HttpContext) -> &'static str {
//!     "Hello, World!"
//! }
//!
//! async fn user(cx: HttpContext) -> Result<Response, Error> {
//!     let id: u64 = cx.param_as("id")?;
//!     Ok(Response::json(&serde_json::json!({ "id": id })))
//! }
//!
//! async fn whoami(cx: HttpContext) -> Result<Response, Error> {
//!     // Resolved against the router that dispatched this request, under its root path.
//!     let me = cx.url_for("user", &[("id", "7")], &[])?; // "/sub/users/7"
//!     Ok(Response::json(&serde_json::json!({ "root_path": cx.root_path(), "me": me })))
//! }
//!
//! let sub = Router::new()
//!     .route(r"/users/{id:\d+}", get(user).name("user"))
//!     .get("/whoami", whoami);
//!
//! let app = Router::new()
//!     .get("/hello", hello)
//!     .get(r"/users/{id:\d+}", user)
//!     .mount("/sub", sub)
//!     .trailing_slash(TrailingSlash::Redirect);
//! # fn is_app(_: impl ragi::App) {}
//! # is_app(app);
//! ```
//!
//! # Patterns
//!
//! `/users/{id}` (any non-empty segment), `/users/{id:\d+}` (a segment whose decoded value the
//! regex matches whole), `/files/{*rest}` (the rest of the path, slashes included, possibly
//! empty). A parameter is a whole segment. See [`Pattern`](self#patterns) rules in full in the
//! `pattern` module's documentation; a bad pattern panics when the route is added, as does a
//! route that repeats a method at a path another route already answers it for.
//!
//! **Matching runs on the raw path** (`scope.raw_path`), split on `/`: an encoded slash never
//! splits a segment, so `/files/a%2Fb` gives `{name}` the one value `a/b`. Parameters are
//! percent-decoded afterwards; literal segments and constraints compare against the decoded
//! segment (`/%75sers` is `/users`). Middleware that rewrites the path must set `raw_path` too.
//!
//! **Priority** is per segment, deterministic, and independent of the order routes were added:
//! a literal segment, then constrained parameters (in the order they were added), then a plain
//! parameter, then a tail. The walk backtracks: when the literal branch fails further down, the
//! parameter branch is tried. A request goes to the highest-priority route whose path matches
//! *and* that answers its method and scope kind; lower routes are tried before a 405.
//!
//! # Methods
//!
//! * No matching route answers the method → **405** with `Allow` listing the union of the
//!   methods of every route whose path matches (HEAD wherever GET is, and OPTIONS).
//! * **HEAD** goes to the GET handler when no route has its own HEAD (the server drops the body).
//! * **OPTIONS** is answered `204` with `Allow` unless a route handles OPTIONS.
//! * A path that only WebSocket routes match answers a plain HTTP request with **426**.
//!
//! # Scope kinds
//!
//! HTTP routes ([`Router::get`], [`Route::post`], …) take a [`Handler`]; WebSocket and SSE routes
//! ([`Router::websocket`], [`Router::sse`]) take any [`App`] (the `ws` and `sse` modules turn
//! handlers into such apps). Kinds do not break routes:
//!
//! * an `sse` scope (the server makes one for *any* request whose `Accept` lists
//!   `text/event-stream`, as MCP clients send on every POST) is served by an HTTP route of its
//!   path and method when no SSE route fits: the handler answers through the decline pair,
//!   which the client sees as a plain response, streaming included;
//! * a plain `http` request is served by an SSE route when no HTTP route fits (the SSE app
//!   frames the event stream itself), so `curl -N` works;
//! * when both kinds answer a path and method, each scope goes to the route of its own kind.
//!
//! Nothing matched → 404 in the scope's family: an HTTP 404, an SSE decline 404, a WebSocket
//! denial 404 before accept. `lifespan` scopes are declined ([`UnsupportedScope`]): wrap the
//! outermost app in [`Lifespan`](crate::lifespan::Lifespan) instead.
//!
//! # Mounts and groups
//!
//! [`Router::mount`] hands every path under a prefix to another app — a sub-router or any app —
//! with the prefix moved from `path` (and `raw_path`) to `root_path`. Prefixes end on segment
//! boundaries (`/api` takes `/api` and `/api/x`, not `/apix`); an exact match leaves the path
//! `/`; prefixes may hold parameters (`/t/{tenant}`), which join the request's [`Params`];
//! nesting works at any depth. Routes come first: a path that some route matches is answered
//! by the routes (405 included) and never reaches a mount. Among mounts the deepest prefix
//! wins. A mount at `/` takes whatever nothing else did.
//!
//! [`Router::group`] adds routes under a prefix with their own middleware, flattened into this
//! router (no root path change; names and priorities shared).
//!
//! # What the router leaves in the stash
//!
//! [`Params`] (the parameters of every router on the way, outer first), [`MatchedRoute`] (the
//! full pattern and name, for access logs and metrics), and what [`url_for`] needs.
//!
//! # Middleware
//!
//! [`Route::layer`] wraps one route, a group's [`Router::layer`] each of the group's routes,
//! [`Router::route_layer`] each route and mount of the router, and [`Router::layer`] the whole
//! router (404, 405 and OPTIONS answers included). Outer layers run first:
//! router layers, route layers of the router, the group's, the route's, then the handler. In
//! each list the layer added last runs first, as with [`AppExt::layer`](crate::AppExt::layer).

mod method;
mod pattern;
mod trie;
mod url;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::Method;
use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, Sender, UnsupportedScope};

pub(crate) use self::method::MethodSet;
use self::pattern::{encode_path, ParamNames, Pattern};
use self::trie::{decode, Caps, Node, Visitor};
use self::url::{Names, UrlScope};
use crate::cancel::Guard;
use crate::endpoint::HttpEndpoint;
use crate::{handler, Error, Handler, IntoResponse, Layer, Params, Responder, Response, SharedApp};

pub use self::url::url_for;

/// The route a request was dispatched to, in the scope's stash: what access logs and metrics
/// label a request with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedRoute {
    /// The full pattern, prefixes of mounts and groups included: `/api/users/{id:\d+}`. For a
    /// mount, its prefix (`/static`).
    pub pattern: Arc<str>,
    /// The route's name, if it was given one.
    pub name: Option<Arc<str>>,
    /// Whether the request went to a mounted app (which may have added its own route since).
    pub mount: bool,
}

/// What to do with a path that no route matches but the same path with (or without) a trailing
/// slash would.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrailingSlash {
    /// `/users/` and `/users` are different paths; the other one is a 404. The default, as in
    /// axum: a router should not answer paths its author did not write.
    #[default]
    Strict,
    /// Answer `308 Permanent Redirect` to the form that matches, keeping the query and the
    /// method (HTTP and SSE scopes; a WebSocket handshake cannot follow a redirect).
    Redirect,
}

/// The scope kinds a route serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Http,
    Sse,
    WebSocket,
}

/// One handler of a route: a kind, its methods, and the app.
#[derive(Clone)]
struct EntrySpec {
    kind: Kind,
    methods: MethodSet,
    app: SharedApp,
}

/// What one path answers: HTTP handlers per method, WebSocket and SSE apps, with a name,
/// middleware and a cancel policy. Build it with [`get`], [`post`], … and chain:
///
/// ```
/// use ragi_tools::router::{get, Router};
/// use ragi_tools::{cancel::CancelOnDisconnect, HttpContext};
///
/// async fn show(_cx: HttpContext) -> &'static str { "a user" }
/// async fn update(_cx: HttpContext) -> &'static str { "updated" }
///
/// let app = Router::new().route(
///     "/users/{id}",
///     get(show).put(update).name("user").cancel_on_disconnect(true),
/// );
/// # let _ = app;
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct Route {
    entries: Vec<EntrySpec>,
    name: Option<Arc<str>>,
    layers: Vec<Arc<dyn Layer>>,
    cancel: Option<bool>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Route");
        for e in &self.entries {
            d.field(&format!("{:?}", e.kind), &e.methods.describe());
        }
        d.field("name", &self.name)
            .field("layers", &self.layers.len())
            .field("cancel", &self.cancel)
            .finish()
    }
}

macro_rules! verbs {
    ($($(#[$doc:meta])* $name:ident => $method:ident;)*) => {
        impl Route {
            $(
                $(#[$doc])*
                pub fn $name<H: Handler>(self, h: H) -> Self {
                    self.on(Method::$method, h)
                }
            )*
        }

        $(
            $(#[$doc])*
            pub fn $name<H: Handler>(h: H) -> Route {
                Route::new().on(Method::$method, h)
            }
        )*

        impl Router {
            $(
                $(#[$doc])*
                ///
                /// # Panics
                ///
                /// On an invalid pattern, or when a route already answers this method there.
                pub fn $name<H: Handler>(self, path: &str, h: H) -> Self {
                    self.route(path, Route::new().on(Method::$method, h))
                }
            )*
        }
    };
}

verbs! {
    /// Answers GET (and HEAD, unless HEAD has its own handler) with `h`.
    get => GET;
    /// Answers HEAD with `h` (instead of the GET handler).
    head => HEAD;
    /// Answers POST with `h`.
    post => POST;
    /// Answers PUT with `h`.
    put => PUT;
    /// Answers PATCH with `h`.
    patch => PATCH;
    /// Answers DELETE with `h`.
    delete => DELETE;
    /// Answers OPTIONS with `h` (instead of the automatic answer).
    options => OPTIONS;
}

/// A route answering `method` with `h`.
pub fn on<H: Handler>(method: Method, h: H) -> Route {
    Route::new().on(method, h)
}

/// A route answering every method with `h`.
pub fn any<H: Handler>(h: H) -> Route {
    Route::new().any(h)
}

/// A route answering WebSocket sessions with `app`.
pub fn websocket(app: impl App) -> Route {
    Route::new().websocket(app)
}

/// A route answering GET event streams (`sse` scopes, and plain GETs) with `app`.
pub fn sse(app: impl App) -> Route {
    Route::new().sse(app)
}

impl Route {
    /// A route that answers nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(mut self, kind: Kind, methods: MethodSet, app: SharedApp) -> Self {
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| e.kind == kind && e.methods.overlaps(&methods))
        {
            panic!(
                "a route answers {} twice ({:?} handler)",
                e.methods.describe(),
                kind
            );
        }
        self.entries.push(EntrySpec { kind, methods, app });
        self
    }

    /// Answers `method` with `h`.
    pub fn on<H: Handler>(self, method: Method, h: H) -> Self {
        self.push(Kind::Http, MethodSet::one(method), Arc::new(handler(h)))
    }

    /// Answers every method with `h` (a route-level catch-all: no 405 at this path).
    pub fn any<H: Handler>(self, h: H) -> Self {
        self.push(Kind::Http, MethodSet::any(), Arc::new(handler(h)))
    }

    /// Answers `method` with any app serving `http` scopes (a proxy, a file server, a raw
    /// ragi app). The app also gets the `sse` scopes of this path and method that no SSE route
    /// takes.
    pub fn on_app(self, method: Method, app: impl App) -> Self {
        self.push(Kind::Http, MethodSet::one(method), Arc::new(app))
    }

    /// Answers WebSocket sessions with `app` (for example a `ws` handler made into an app).
    pub fn websocket(self, app: impl App) -> Self {
        self.push(Kind::WebSocket, MethodSet::one(Method::GET), Arc::new(app))
    }

    /// Answers GET event streams with `app`: `sse` scopes, and plain `http` GETs that no HTTP
    /// route of this path takes (the SSE app frames those itself).
    pub fn sse(self, app: impl App) -> Self {
        self.sse_on(Method::GET, app)
    }

    /// Answers event streams requested with `method` (MCP's streamable HTTP answers a POST
    /// with an event stream).
    pub fn sse_on(self, method: Method, app: impl App) -> Self {
        self.push(Kind::Sse, MethodSet::one(method), Arc::new(app))
    }

    /// Answers the methods an [`HttpEndpoint`] implements with it (see [`crate::endpoint`]).
    pub fn endpoint<E: HttpEndpoint>(mut self, endpoint: E) -> Self {
        let app: SharedApp = Arc::new(crate::endpoint::endpoint(endpoint));
        for m in E::ALLOW {
            self = self.push(Kind::Http, MethodSet::one(m.clone()), app.clone());
        }
        self
    }

    /// Names the route, for [`Router::url_for`] and [`Context::url_for`](crate::Context::url_for).
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Wraps each handler of this route in `layer`'s middleware. The layer added last runs
    /// first.
    pub fn layer(mut self, layer: impl Layer) -> Self {
        self.layers.push(Arc::new(layer));
        self
    }

    /// Whether this route's handlers are dropped the moment the client leaves (see
    /// [`crate::cancel`]); overrides the group's and the router's setting.
    pub fn cancel_on_disconnect(mut self, yes: bool) -> Self {
        self.cancel = Some(yes);
        self
    }
}

/// A route as the router keeps it before freezing: its pattern and what it answers, with every
/// layer that applies (innermost first).
#[derive(Clone)]
struct RouteSpec {
    pattern: Pattern,
    text: Arc<str>,
    entries: Vec<EntrySpec>,
    name: Option<Arc<str>>,
    layers: Vec<Arc<dyn Layer>>,
    cancel: Option<bool>,
}

#[derive(Clone)]
struct MountSpec {
    prefix: Pattern,
    text: Arc<str>,
    app: SharedApp,
    is_router: bool,
    layers: Vec<Arc<dyn Layer>>,
    cancel: Option<bool>,
}

/// The router. See the [module documentation](self).
#[must_use]
pub struct Router {
    routes: Vec<RouteSpec>,
    mounts: Vec<MountSpec>,
    layers: Vec<Arc<dyn Layer>>,
    route_layers: Vec<Arc<dyn Layer>>,
    trailing_slash: TrailingSlash,
    cancel: Option<bool>,
    fallback: Option<SharedApp>,
    names: Names,
    /// Every (shape, kind) and the methods routed there, to refuse a duplicate.
    shapes: HashMap<(String, u8), MethodSet>,
    frozen: OnceLock<Frozen>,
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field(
                "routes",
                &self.routes.iter().map(|r| &*r.text).collect::<Vec<_>>(),
            )
            .field(
                "mounts",
                &self.mounts.iter().map(|m| &*m.text).collect::<Vec<_>>(),
            )
            .field("trailing_slash", &self.trailing_slash)
            .field("cancel_on_disconnect", &self.cancel)
            .finish()
    }
}

impl Router {
    /// An empty router: every request is a 404.
    pub fn new() -> Self {
        Self {
            routes: Vec::new(),
            mounts: Vec::new(),
            layers: Vec::new(),
            route_layers: Vec::new(),
            trailing_slash: TrailingSlash::Strict,
            cancel: None,
            fallback: None,
            names: Names::default(),
            shapes: HashMap::new(),
            frozen: OnceLock::new(),
        }
    }

    /// Adds `route` at `path`. Routes at the same path merge: `.get("/x", a).post("/x", b)`
    /// answers both methods.
    ///
    /// # Panics
    ///
    /// On an invalid pattern, a name already used, or a method that another route already
    /// answers at a path of the same shape.
    pub fn route(self, path: &str, route: Route) -> Self {
        let pattern = Pattern::parse(path).unwrap_or_else(|e| panic!("{e}"));
        let text: Arc<str> = pattern.to_text().into();
        self.add_route(RouteSpec {
            pattern,
            text,
            entries: route.entries,
            name: route.name,
            layers: route.layers,
            cancel: route.cancel,
        })
    }

    fn add_route(mut self, spec: RouteSpec) -> Self {
        let shape = spec.pattern.shape();
        for e in &spec.entries {
            let seen = self
                .shapes
                .entry((shape.clone(), e.kind as u8))
                .or_default();
            if seen.overlaps(&e.methods) {
                panic!(
                    "{} {} is routed twice ({:?} routes)",
                    e.methods.describe(),
                    spec.text,
                    e.kind
                );
            }
            seen.union_with(&e.methods);
        }
        if let Some(name) = &spec.name {
            if !self.names.insert(name.clone(), spec.pattern.clone()) {
                panic!("two routes are named {name:?}");
            }
        }
        self.routes.push(spec);
        self.frozen = OnceLock::new();
        self
    }

    /// Answers every method at `path` with `h`.
    ///
    /// # Panics
    ///
    /// As [`Router::route`].
    pub fn any<H: Handler>(self, path: &str, h: H) -> Self {
        self.route(path, Route::new().any(h))
    }

    /// Answers WebSocket sessions at `path` with `app`.
    ///
    /// # Panics
    ///
    /// As [`Router::route`].
    pub fn websocket(self, path: &str, app: impl App) -> Self {
        self.route(path, Route::new().websocket(app))
    }

    /// Answers GET event streams at `path` with `app` (and plain GETs no HTTP route takes).
    ///
    /// # Panics
    ///
    /// As [`Router::route`].
    pub fn sse(self, path: &str, app: impl App) -> Self {
        self.route(path, Route::new().sse(app))
    }

    /// Answers `path` with an [`HttpEndpoint`].
    ///
    /// # Panics
    ///
    /// As [`Router::route`].
    pub fn endpoint<E: HttpEndpoint>(self, path: &str, endpoint: E) -> Self {
        self.route(path, Route::new().endpoint(endpoint))
    }

    /// Hands every request under `prefix` to `app`, with the prefix moved from `path` and
    /// `raw_path` to `root_path`. `app` may be another `Router` (whose routes then see the
    /// remaining path) or any app.
    ///
    /// # Panics
    ///
    /// On an invalid prefix or one already mounted.
    pub fn mount(self, prefix: &str, app: impl App) -> Self {
        let is_router = (&app as &dyn Any).is::<Router>();
        let prefix = Pattern::parse_prefix(prefix).unwrap_or_else(|e| panic!("{e}"));
        let text: Arc<str> = prefix.to_text().into();
        self.add_mount(MountSpec {
            prefix,
            text,
            app: Arc::new(app),
            is_router,
            layers: Vec::new(),
            cancel: None,
        })
    }

    fn add_mount(mut self, spec: MountSpec) -> Self {
        let shape = spec.prefix.shape();
        if self.mounts.iter().any(|m| m.prefix.shape() == shape) {
            panic!("two apps are mounted at {:?}", spec.text);
        }
        self.mounts.push(spec);
        self.frozen = OnceLock::new();
        self
    }

    /// Adds the routes and mounts `build` puts in a new router under `prefix`, with that
    /// router's middleware (its [`layer`](Router::layer)s and
    /// [`route_layer`](Router::route_layer)s, both applied to each of its routes) and cancel
    /// policy. The group's routes are this router's: one table, one set of names, no
    /// `root_path` change. A group cannot have a fallback.
    ///
    /// ```
    /// use ragi_tools::router::Router;
    /// use ragi_tools::HttpContext;
    /// # fn require_login() -> impl Fn(ragi_tools::SharedApp) -> ragi_tools::SharedApp + Send + Sync + 'static { |a| a }
    /// async fn list(_cx: HttpContext) -> &'static str { "[]" }
    /// async fn create(_cx: HttpContext) -> &'static str { "{}" }
    ///
    /// let app = Router::new().group("/admin", |g| {
    ///     g.get("/users", list).post("/users", create).layer(require_login())
    /// });
    /// # let _ = app;
    /// ```
    ///
    /// # Panics
    ///
    /// On an invalid prefix, a group with a fallback, or a route that clashes with this
    /// router's.
    pub fn group(mut self, prefix: &str, build: impl FnOnce(Router) -> Router) -> Self {
        let prefix = Pattern::parse_prefix(prefix).unwrap_or_else(|e| panic!("{e}"));
        let g = build(Router::new());
        assert!(g.fallback.is_none(), "a group cannot have a fallback");
        let outer: Vec<Arc<dyn Layer>> = g
            .route_layers
            .iter()
            .chain(g.layers.iter())
            .cloned()
            .collect();
        for mut r in g.routes {
            r.pattern = r.pattern.prefixed(&prefix);
            r.text = r.pattern.to_text().into();
            r.layers.extend(outer.iter().cloned());
            r.cancel = r.cancel.or(g.cancel);
            self = self.add_route(r);
        }
        for mut m in g.mounts {
            m.prefix = m.prefix.prefixed(&prefix);
            m.text = m.prefix.to_text().into();
            m.layers.extend(outer.iter().cloned());
            m.cancel = m.cancel.or(g.cancel);
            self = self.add_mount(m);
        }
        self
    }

    /// Wraps the whole router in `layer`'s middleware: every request passes through it,
    /// including the router's own 404, 405 and OPTIONS answers. The layer added last runs
    /// first. (In a [`group`](Router::group), it wraps each of the group's routes.)
    pub fn layer(mut self, layer: impl Layer) -> Self {
        self.layers.push(Arc::new(layer));
        self.frozen = OnceLock::new();
        self
    }

    /// Wraps each route and mount of this router (added before or after) in `layer`'s
    /// middleware; the router's own 404, 405 and OPTIONS answers do not pass through it.
    pub fn route_layer(mut self, layer: impl Layer) -> Self {
        self.route_layers.push(Arc::new(layer));
        self.frozen = OnceLock::new();
        self
    }

    /// The trailing-slash policy (default [`TrailingSlash::Strict`]).
    pub fn trailing_slash(mut self, policy: TrailingSlash) -> Self {
        self.trailing_slash = policy;
        self.frozen = OnceLock::new();
        self
    }

    /// Whether the handlers of this router's routes and mounts are dropped the moment the
    /// client leaves (see [`crate::cancel`]). A route's or group's own setting wins; routers
    /// mounted in this one inherit it unless they set their own. Off by default.
    pub fn cancel_on_disconnect(mut self, yes: bool) -> Self {
        self.cancel = Some(yes);
        self.frozen = OnceLock::new();
        self
    }

    /// The app that answers what no route or mount matched, instead of the 404 (it gets the
    /// scope unchanged). A path some route matches still gets the router's 405.
    pub fn fallback(mut self, app: impl App) -> Self {
        self.fallback = Some(Arc::new(app));
        self.frozen = OnceLock::new();
        self
    }

    /// The path of the route named `name` with `params` and `query`, without a root path (a
    /// handler should call [`Context::url_for`](crate::Context::url_for), which knows where
    /// its router is mounted). Parameters are percent-encoded; every parameter of the route
    /// must be given, no other, and each must satisfy its constraint.
    pub fn url_for(
        &self,
        name: &str,
        params: &[(&str, &str)],
        query: &[(&str, &str)],
    ) -> Result<String, Error> {
        url::build(&self.names, "", name, params, query)
            .unwrap_or_else(|| Err(Error::internal(format!("url_for: no route named {name:?}"))))
    }

    fn frozen(&self) -> &Frozen {
        self.frozen.get_or_init(|| self.freeze())
    }

    fn freeze(&self) -> Frozen {
        let wrap = |app: &SharedApp, own: &[Arc<dyn Layer>]| {
            own.iter()
                .chain(self.route_layers.iter())
                .fold(app.clone(), |inner, l| l.layer(inner))
        };
        let mut root = Node::default();
        let mut leaves: Vec<Vec<Entry>> = Vec::new();
        for r in &self.routes {
            let slot = root.route_slot(&r.pattern.segments);
            let leaf = match *slot {
                Some(i) => i,
                None => {
                    leaves.push(Vec::new());
                    *slot = Some(leaves.len() - 1);
                    leaves.len() - 1
                }
            };
            let params: ParamNames = r.pattern.param_names().into();
            let info = Arc::new(MatchedRoute {
                pattern: r.text.clone(),
                name: r.name.clone(),
                mount: false,
            });
            for e in &r.entries {
                leaves[leaf].push(Entry {
                    kind: e.kind,
                    methods: e.methods.clone(),
                    app: wrap(&e.app, &r.layers),
                    params: params.clone(),
                    info: info.clone(),
                    cancel: r.cancel,
                });
            }
        }
        let mut mounts = Vec::new();
        for m in &self.mounts {
            *root.mount_slot(&m.prefix.segments) = Some(mounts.len());
            mounts.push(MountEntry {
                app: wrap(&m.app, &m.layers),
                params: m.prefix.param_names().into(),
                info: Arc::new(MatchedRoute {
                    pattern: m.text.clone(),
                    name: None,
                    mount: true,
                }),
                is_router: m.is_router,
                cancel: m.cancel,
            });
        }
        let table = Arc::new(Table {
            root,
            leaves,
            mounts,
            names: Arc::new(self.names.clone()),
            trailing_slash: self.trailing_slash,
            cancel: self.cancel,
            fallback: self.fallback.clone(),
        });
        let app = self
            .layers
            .iter()
            .fold(table.clone() as SharedApp, |inner, l| l.layer(inner));
        Frozen { table, app }
    }

    /// Routes `raw_path` (with `method`, as an `http` scope) without calling anything: the
    /// pattern of the route it reaches, or the status the router would answer. For tests and
    /// benchmarks of the table.
    #[doc(hidden)]
    pub fn match_path(&self, method: &Method, raw_path: &[u8]) -> Result<Arc<str>, u16> {
        let table = &self.frozen().table;
        let mut caps = Caps::default();
        let mut s = Search::new(&table.leaves, Kind::Http, method);
        if raw_path.starts_with(b"/") && table.root.find_route(raw_path, &mut caps, &mut s) {
            let (leaf, i) = s.found.unwrap_or_default();
            return Ok(table.leaves[leaf][i].info.pattern.clone());
        }
        Err(if s.allow.is_empty() { 404 } else { 405 })
    }
}

/// The router as it serves: the table, and the router's layers around it.
struct Frozen {
    table: Arc<Table>,
    app: SharedApp,
}

impl App for Router {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        self.frozen().app.call(scope, receive, send)
    }
}

/// One handler at a leaf, with everything the dispatch needs.
struct Entry {
    kind: Kind,
    methods: MethodSet,
    app: SharedApp,
    params: ParamNames,
    info: Arc<MatchedRoute>,
    cancel: Option<bool>,
}

struct MountEntry {
    app: SharedApp,
    params: ParamNames,
    info: Arc<MatchedRoute>,
    is_router: bool,
    cancel: Option<bool>,
}

/// The frozen router: the trie and what hangs off it.
struct Table {
    root: Node,
    leaves: Vec<Vec<Entry>>,
    mounts: Vec<MountEntry>,
    names: Arc<Names>,
    trailing_slash: TrailingSlash,
    cancel: Option<bool>,
    fallback: Option<SharedApp>,
}

/// The cancel policy an outer router passes to the routers mounted in it.
struct InheritedCancel(bool);

/// The walk's visitor: takes the first route that answers the scope's kind and method, and
/// gathers the methods of those that do not (for 405 and OPTIONS).
struct Search<'a> {
    leaves: &'a [Vec<Entry>],
    kind: Kind,
    method: &'a Method,
    found: Option<(usize, usize)>,
    allow: MethodSet,
    websocket_only: bool,
}

impl<'a> Search<'a> {
    fn new(leaves: &'a [Vec<Entry>], kind: Kind, method: &'a Method) -> Self {
        Self {
            leaves,
            kind,
            method,
            found: None,
            allow: MethodSet::default(),
            websocket_only: false,
        }
    }

    /// The entry of `entries` that serves this scope: its own kind first, then (for `http`
    /// and `sse` scopes) the other of the two; the method itself first, then GET for HEAD.
    fn pick(&self, entries: &[Entry]) -> Option<usize> {
        if self.kind == Kind::WebSocket {
            return entries.iter().position(|e| e.kind == Kind::WebSocket);
        }
        let other = if self.kind == Kind::Http {
            Kind::Sse
        } else {
            Kind::Http
        };
        let head = *self.method == Method::HEAD;
        for kind in [self.kind, other] {
            if let Some(i) = entries
                .iter()
                .position(|e| e.kind == kind && e.methods.contains(self.method))
            {
                return Some(i);
            }
            if head {
                if let Some(i) = entries
                    .iter()
                    .position(|e| e.kind == kind && e.methods.contains(&Method::GET))
                {
                    return Some(i);
                }
            }
        }
        None
    }
}

impl Visitor for Search<'_> {
    fn leaf(&mut self, leaf: usize, _caps: &Caps) -> bool {
        let entries = &self.leaves[leaf];
        if let Some(i) = self.pick(entries) {
            self.found = Some((leaf, i));
            return true;
        }
        for e in entries {
            match e.kind {
                Kind::Http | Kind::Sse => self.allow.union_with(&e.methods),
                Kind::WebSocket => self.websocket_only = true,
            }
        }
        false
    }
}

/// A visitor that accepts any route serving `http`/`sse` scopes (the trailing-slash check).
struct AnyHttp<'a>(&'a [Vec<Entry>]);

impl Visitor for AnyHttp<'_> {
    fn leaf(&mut self, leaf: usize, _caps: &Caps) -> bool {
        self.0[leaf].iter().any(|e| e.kind != Kind::WebSocket)
    }
}

impl App for Table {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        self.dispatch(scope, receive, send)
    }
}

/// Sends `response` in the scope's framing.
fn answer(scope: Scope, send: Sender, response: Response) -> BoxFuture<'static, AppResult> {
    Box::pin(async move { Responder::new(&scope, send).complete(response).await })
}

impl Table {
    fn dispatch(
        &self,
        mut scope: Scope,
        receive: Receiver,
        send: Sender,
    ) -> BoxFuture<'static, AppResult> {
        let kind = match scope.kind {
            ScopeKind::Http => Kind::Http,
            ScopeKind::Sse => Kind::Sse,
            ScopeKind::WebSocket => Kind::WebSocket,
            other => return Box::pin(async move { Err(UnsupportedScope(other).into()) }),
        };
        let raw = scope.raw_path.clone();
        if !raw.starts_with(b"/") {
            return answer(scope, send, Error::not_found().into_response());
        }
        let mut caps = Caps::default();
        let mut search = Search::new(&self.leaves, kind, &scope.method);
        if self.root.find_route(&raw, &mut caps, &mut search) {
            let (leaf, i) = search.found.expect("a found route");
            let e = &self.leaves[leaf][i];
            let nested = self.record(&scope, &raw, &caps, &e.params, &e.info);
            let cancel = e
                .cancel
                .or(self.cancel)
                .or_else(|| inherited(&scope, nested));
            return call(&e.app, cancel == Some(true), scope, receive, send);
        }
        if kind != Kind::WebSocket {
            if !search.allow.is_empty() {
                let allow = search.allow.allow_header();
                let response = if scope.method == Method::OPTIONS {
                    Response::no_content().header("allow", allow)
                } else {
                    Error::method_not_allowed(&allow).into_response()
                };
                return answer(scope, send, response);
            }
            if search.websocket_only {
                let e = Error::new(426, "this path answers WebSocket sessions only")
                    .with_header("upgrade", "websocket");
                return answer(scope, send, e.into_response());
            }
            if self.trailing_slash == TrailingSlash::Redirect {
                if let Some(location) = self.slash_redirect(&scope, &raw) {
                    return answer(scope, send, Response::permanent_redirect(location));
                }
            }
        } else if search.websocket_only || !search.allow.is_empty() {
            return answer(scope, send, Error::not_found().into_response());
        }
        if let Some((m, consumed)) = self.root.find_mount(&raw, &mut caps) {
            let m = &self.mounts[m];
            let nested = self.record(&scope, &raw, &caps, &m.params, &m.info);
            strip_prefix(&mut scope, consumed);
            let cancel = m
                .cancel
                .or(self.cancel)
                .or_else(|| inherited(&scope, nested));
            if m.is_router {
                if let Some(c) = cancel {
                    scope.stash.insert(InheritedCancel(c));
                }
                return m.app.call(scope, receive, send);
            }
            return call(&m.app, cancel == Some(true), scope, receive, send);
        }
        if let Some(f) = &self.fallback {
            return f.call(scope, receive, send);
        }
        answer(scope, send, Error::not_found().into_response())
    }

    /// Puts the parameters, the matched route and the names in the stash. Returns whether an
    /// outer router mounted this one.
    fn record(
        &self,
        scope: &Scope,
        raw: &[u8],
        caps: &Caps,
        names: &ParamNames,
        info: &Arc<MatchedRoute>,
    ) -> bool {
        let stash = &scope.stash;
        if !caps.is_empty() {
            let mut params = match stash.get::<Params>() {
                Some(outer) => (*outer).clone(),
                None => Params::with_capacity(names.len(), raw.len()),
            };
            for ((s, e), name) in caps.iter().zip(names.iter()) {
                params.push(name.clone(), decode(&raw[s..e]));
            }
            stash.insert(params);
        }
        let outer = stash.get::<MatchedRoute>().filter(|o| o.mount);
        let nested = outer.is_some();
        match outer {
            Some(outer) if !outer.pattern.is_empty() => {
                stash.insert(MatchedRoute {
                    pattern: format!("{}{}", outer.pattern, info.pattern).into(),
                    name: info.name.clone(),
                    mount: info.mount,
                });
            }
            // The route's own record, shared: no allocation per request.
            _ => {
                stash.insert_arc(info.clone());
            }
        }
        if !self.names.is_empty() {
            stash.insert(UrlScope {
                names: self.names.clone(),
                root_path: scope.root_path.clone(),
                parent: stash.get::<UrlScope>(),
            });
        }
        nested
    }

    /// The redirect target when the path with its trailing slash toggled matches a route.
    fn slash_redirect(&self, scope: &Scope, raw: &Bytes) -> Option<String> {
        let toggled: Vec<u8> = match raw.strip_suffix(b"/") {
            Some(_) if raw.len() == 1 => return None,
            Some(without) => without.to_vec(),
            None => [&raw[..], b"/"].concat(),
        };
        let mut caps = Caps::default();
        if !self
            .root
            .find_route(&toggled, &mut caps, &mut AnyHttp(&self.leaves))
        {
            return None;
        }
        let mut location = encode_path(&scope.root_path).into_owned();
        location.push_str(&String::from_utf8_lossy(&toggled));
        if !scope.query_string.is_empty() {
            location.push('?');
            location.push_str(&String::from_utf8_lossy(&scope.query_string));
        }
        Some(location)
    }
}

/// The cancel policy an outer router passed down, if this router is `nested` in one.
fn inherited(scope: &Scope, nested: bool) -> Option<bool> {
    if !nested {
        return None;
    }
    scope.stash.get::<InheritedCancel>().map(|c| c.0)
}

/// Calls `app`, dropping its future when the client leaves if `cancel`.
fn call(
    app: &SharedApp,
    cancel: bool,
    scope: Scope,
    receive: Receiver,
    send: Sender,
) -> BoxFuture<'static, AppResult> {
    if cancel {
        let guard = Guard::new(&scope);
        guard.run(app.call(scope, receive, send))
    } else {
        app.call(scope, receive, send)
    }
}

/// Moves the first `consumed` bytes of the raw path to `root_path` (a mount's prefix).
pub(crate) fn strip_prefix(scope: &mut Scope, consumed: usize) {
    if consumed == 0 {
        return;
    }
    let raw = scope.raw_path.clone();
    scope.root_path.push_str(&decode(&raw[..consumed]));
    scope.raw_path = if consumed >= raw.len() {
        Bytes::from_static(b"/")
    } else {
        raw.slice(consumed..)
    };
    scope.path = ragi::scope::percent_decode(&scope.raw_path);
}
