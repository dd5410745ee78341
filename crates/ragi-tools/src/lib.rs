//! # ragi-tools — write apps, not event loops
//!
//! Helpers for [`ragi`] apps: request and response helpers, a router, endpoints, WebSocket and
//! SSE helpers, middleware and ready-made apps, and an in-process test client. It depends on the
//! `ragi` interface only, so everything here runs on any conforming server and in the test
//! client.
//!
//! ```
//! use ragi_tools::{handler, Context, Error, HttpContext, Json, Response};
//!
//! async fn hello(cx: HttpContext) -> Result<Response, Error> {
//!     let who = cx.query().get("name").unwrap_or("World").to_owned();
//!     // The client's departure is never hidden: every helper that meets it returns an error
//!     // carrying the reason, and the connection object answers synchronously.
//!     if !cx.connection().is_connected() {
//!         return Err(Error::disconnected(cx.connection().disconnect_reason().unwrap()));
//!     }
//!     Ok(Response::text(format!("Hello, {who}!")))
//! }
//!
//! let app = handler(hello); // a ragi::App: serve it with ragi-server, or test it in-process
//! # fn is_app(_: impl ragi::App) {}
//! # is_app(app);
//! # let _ = Json(1);
//! ```
//!
//! ## The promise, carried through
//!
//! No helper hides a departed client. A body reader that meets a disconnect returns an
//! [`Error`] carrying the [`DisconnectReason`](ragi::DisconnectReason), never a partial body;
//! after a helper consumed the body, `receive()` still yields the disconnect event; a streaming
//! [`BodyWriter`] fails with the reason on its next write.
//!
//! ## Map
//!
//! * [`context`] — the per-scope contexts ([`HttpContext`]) and the [`Context`] trait;
//! * [`request`] — query, cookies, body readers with limits, multipart;
//! * [`response`] — [`Response`], [`IntoResponse`], streaming, files;
//! * [`handler`](mod@handler) — `async fn`s of a context as apps;
//! * [`router`] — one table for HTTP, WebSocket and SSE routes, mounts, groups, `url_for`;
//! * [`endpoint`](mod@endpoint) — trait-based HTTP endpoints, one method per verb;
//! * [`lifespan`] — start-up and shut-down hooks that build the shared state;
//! * [`middleware`] — layers: security (CORS, headers, hosts, HTTPS, forwarded, auth, CSRF), …;
//! * [`apps`] — ready-made apps: static files, not-found, redirect, health, cascade, URL map, throttle;
//! * [`cancel`] — dropping an app's future the moment its client leaves;
//! * [`layer`] — middleware composition: [`Layer`], `.layer(..)` on any app, [`Stack`];
//! * [`error`] — the one [`Error`] type, rendered as the response it means;
//! * [`test`] — the in-process test client ([`TestClient`](test::TestClient)): requests,
//!   streams, WebSocket and SSE sessions, lifespan, and a client that leaves when you say;
//! * [`ws`] — WebSocket sessions: [`WsContext`], `ws::handler`, [`WsEndpoint`];
//! * [`sse`] — event streams: [`SseContext`] (also over a plain GET), `sse::handler`, [`SseEndpoint`];
//! * [`channels`] — the channel layer (groups, bounded subscriber queues, gaps, presence);
//! * [`pubsub`] — apps on it: SSE pub/sub, WebSocket broadcast and echo, a chat with presence;
//! * `tower` (feature `tower`) — any tower `Service`, an axum `Router` in particular, as a ragi app.
#![deny(missing_docs)]

pub mod apps;
pub mod cancel;
pub mod channels;
pub mod context;
pub mod endpoint;
pub mod error;
pub mod handler;
pub mod layer;
pub mod lifespan;
pub mod middleware;
pub mod pubsub;
pub mod request;
pub mod response;
pub mod router;
pub mod sse;
pub mod test;
#[cfg(feature = "tower")]
pub mod tower;
pub mod ws;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use request::fuzz as __fuzz;

/// The names most handlers need: `use ragi_tools::prelude::*;`.
pub mod prelude {
    pub use crate::context::{Context, HandlerResult, HttpContext, Params};
    pub use crate::error::{Error, ErrorKind};
    pub use crate::handler::handler;
    pub use crate::layer::{AppExt, Layer, SharedApp, Stack};
    pub use crate::response::{Html, IntoResponse, Json, Response};
    pub use crate::router::{Route, Router};
    pub use crate::sse::SseContext;
    pub use crate::ws::WsContext;
}

pub use context::{Context, HandlerResult, HttpContext, Params};
pub use error::{Error, ErrorKind, Result};
pub use handler::{handler, Handler, HandlerApp};
pub use layer::{AppExt, Layer, SharedApp, Stack};
pub use request::{BodyLimits, Cookies, MultipartForm, MultipartLimits, Query};
pub use response::{BodyWriter, Html, IntoResponse, Json, Responder, Response};
pub use router::Router;
pub use sse::{SseContext, SseEndpoint, SseSender};
pub use ws::{CloseInfo, WsContext, WsEndpoint, WsSender};
