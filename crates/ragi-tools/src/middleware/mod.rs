//! Middleware: each one a [`Layer`](crate::Layer) in its own module, with a module doc that
//! opens with an example, states its defaults and names the reference it follows or departs
//! from; each aware of the departed client (slots freed, work dropped, the reason logged).
//!
//! ```
//! use std::time::Duration;
//! use ragi_tools::middleware::{
//!     access_log::AccessLog, cors::Cors, error_handler::ErrorHandler, forwarded::ForwardedHeaders,
//!     health::Health, rate_limit::RateLimit, request_id::SetRequestId,
//!     security_headers::SecurityHeaders, timeout::Timeout, timing::Timing, trace::Trace,
//! };
//! use ragi_tools::{handler, HttpContext, Stack};
//!
//! async fn hello(_cx: HttpContext) -> &'static str { "Hello" }
//!
//! let app = Stack::new()
//!     .enable(ForwardedHeaders::new())               // the real client and scheme first
//!     .enable(SetRequestId::new())                   // the id: everything below sees it
//!     .enable(Trace::new())                          // a span per request
//!     .enable(AccessLog::new())                      // one line per request, stdout
//!     .enable(Health::new())                         // /healthz, /readyz before the rest
//!     .enable(SecurityHeaders::new())
//!     .enable(Cors::builder().allow_origin("https://app.example").build().unwrap())
//!     .enable(Timing::new())                         // Server-Timing
//!     .enable(ErrorHandler::new())                   // app errors and panics → 500
//!     .enable(Timeout::new(Duration::from_secs(30))) // the whole response, body included
//!     .enable(RateLimit::new(100, Duration::from_secs(60)))
//!     .run(handler(hello));
//! # let _ = app;
//! ```
//!
//! Every middleware here handles every scope kind: `http`, `sse` (answered with the decline
//! pair when it refuses) and `websocket` (refused before accept with the denial pair, or a
//! close the server answers with 403 where the denial extension is missing); the `lifespan`
//! scope passes through untouched.
//!
//! # Security
//!
//! [`cors`], [`security_headers`], [`trusted_host`], [`https_redirect`], [`forwarded`],
//! [`auth`], [`csrf`].
//!
//! # Observability and operations
//!
//! * [`access_log`] — CLF, combined or JSON lines with the disconnect reason, bytes, duration,
//!   request id and `response_started`; a line per request and per WebSocket/SSE session;
//!   written off the request path.
//! * [`request_id`] — `X-Request-ID`: generated, or taken from a trusted and well-formed
//!   request; exactly one on the response; in the stash, the log and WebSocket/SSE heads.
//! * [`timing`] — `Server-Timing` with the total and the app's own metrics.
//! * [`trace`] — a `tracing` span per request: method, path, route, status, request id,
//!   disconnect reason.
//! * [`rate_limit`] — keyed token buckets with the IETF `RateLimit-Policy`/`RateLimit`
//!   headers, a concurrency limit whose slot is freed the moment the client leaves, and a
//!   WebSocket message rate limit.
//! * [`maintenance`] — 503 with `Retry-After`, switched at run time, with allow-lists.
//! * [`health`] — liveness and readiness answered before the app.
//! * [`sse_retry`] — a `retry:` hint on event streams.
//! * [`sendfile`] — `X-Sendfile` / `X-Accel-Redirect` turned into a file response.
//! * [`error_handler`] — an app error or panic becomes a 500 (a debug page in development).
//! * [`timeout`] — a deadline for the whole response, streamed body included.
//! * [`lint`] — checks an app's events against the ragi spec, for development.
//!
//! # Order
//!
//! [`Stack::enable`](crate::Stack::enable) adds layers in the order requests pass through
//! them. Put the forwarded-headers middleware first (the log, the limits and the allow-lists
//! then see the real client), the request id before the log and the trace, the log outside the
//! layers that answer on their own (error handler, timeout, rate limit, maintenance) so that it
//! records their answers, and the health check before maintenance and the rate limit unless
//! probes should be limited too.

pub mod access_log;
pub mod auth;
pub mod cors;
pub mod csrf;
pub mod error_handler;
pub mod forwarded;
pub mod health;
pub mod https_redirect;
pub mod lint;
pub mod maintenance;
pub(crate) mod observe;
pub mod rate_limit;
pub mod request_id;
pub mod security_headers;
mod security_support;
pub mod sendfile;
pub mod sse_retry;
pub mod timeout;
pub mod timing;
pub mod trace;
pub mod trusted_host;
