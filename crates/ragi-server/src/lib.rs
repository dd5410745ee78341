//! # ragi-server — the reference server
//!
//! Runs [`ragi`] apps over HTTP/1.1, HTTP/2 (h2c by prior knowledge, ALPN `h2` over TLS) and
//! TLS ([`tls`], rustls), with the promise that makes ragi: every request's
//! [`Connection`](ragi::Connection) object learns, in every state, that its client left and
//! why. See [`h1`](crate#detection) below for how.
//!
//! * [`run`] is an app binary's whole `main`: the server's command line ([`cli::ServerArgs`]:
//!   flags, `RAGI_*` variables, a TOML config file), logs on stderr, the runtime, signals.
//!   [`Run`] is the same with a lifecycle listener or options the app parsed itself.
//! * [`Server`] binds listeners (TCP and Unix-domain: [`net`]) and serves an app;
//!   [`ShutdownHandle`] starts graceful shutdown.
//! * [`Config`] holds every limit and timeout, with the specification's defaults.
//! * [`lifecycle`] is the server-wide connection listener, the address filter, the error hook
//!   and per-connection handles (`close_after_current_response`, `completed`).
//!
//! # Detection
//!
//! One task per connection owns the socket and keeps reading ahead (bounded) while the app
//! works; once the app stops reading, the task watches the socket's readiness without
//! reading: a FIN sets read-closed, an RST sets an error, and `SO_ERROR` tells them apart. The
//! app runs beside it: inline for its first poll, then in its own task.
//!
//! # Cancel safety
//!
//! An app call that is still running when its client goes away is *not* cancelled: its
//! connection object ends (reason set, `disconnected()` resolves, callbacks run, a `Disconnect`
//! event is queued) and `send` fails with that reason, so the app decides what to stop. The
//! connection's `completed()` waits for it.
#![deny(missing_docs)]

mod access_log;
#[cfg(feature = "cli")]
pub mod cli;
mod config;
mod date;
mod error;
mod exchange;
mod h1;
mod h2;
mod h2_check;
pub mod lifecycle;
mod lifespan;
pub mod net;
mod proto;
#[cfg(feature = "cli")]
mod run;
mod server;
mod shared;
mod sse;
pub mod tls;
mod tls_io;
mod ws;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use fuzz as __fuzz;

pub use config::{AccessLogFormat, Config};
pub use error::Error;
pub use lifecycle::{AddressFilter, ConnId, ConnectionHandle, LifecycleListener};
pub use net::ListenAddr;
#[cfg(feature = "cli")]
pub use run::{run, Run};
pub use server::{BoundServer, Server, ServerStats, ShutdownHandle};
