//! Middleware: each one a [`Layer`](crate::Layer) in its own module, with a module doc that
//! opens with an example, states its defaults and names the reference it follows or departs
//! from.
//!
//! ```
//! use ragi_tools::middleware::{cors::Cors, forwarded::ForwardedHeaders, security_headers::SecurityHeaders};
//! use ragi_tools::{handler, HttpContext, Stack};
//!
//! async fn hello(_cx: HttpContext) -> &'static str { "Hello" }
//! let app = Stack::new()
//!     .enable(ForwardedHeaders::new())                 // the real client and scheme first
//!     .enable(SecurityHeaders::new())
//!     .enable(Cors::builder().allow_origin("https://app.example").build().unwrap())
//!     .run(handler(hello));
//! # let _ = app;
//! ```
//!
//! Every middleware here handles every scope kind: `http`, `sse` (answered with the decline
//! pair when it refuses) and `websocket` (refused before accept with the denial pair, or a
//! close the server answers with 403 where the denial extension is missing); the `lifespan`
//! scope passes through untouched.
//!
//! *Security*: [`cors`], [`security_headers`], [`trusted_host`], [`https_redirect`],
//! [`forwarded`], [`auth`], [`csrf`].

pub mod auth;
pub mod cors;
pub mod csrf;
pub mod forwarded;
pub mod https_redirect;
pub mod security_headers;
mod security_support;
pub mod trusted_host;
