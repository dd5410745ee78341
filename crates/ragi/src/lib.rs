//! # ragi — the interface
//!
//! ragi carries the PAGI model (the Perl Asynchronous Gateway Interface, cousin of Python's
//! ASGI) into Rust. An app is an async function of `(scope, receive, send)`:
//!
//! * [`Scope`] says what the exchange is: `http`, `websocket`, `sse` or `lifespan`, the method,
//!   path, headers, addresses, TLS facts, shared state, and the per-request [`Connection`];
//! * [`Receiver`] yields the client's [`ReceiveEvent`]s (body pieces, messages, disconnect);
//! * [`Sender`] takes the app's [`SendEvent`]s to the client and fails with a typed
//!   [`SendError`] carrying the [`DisconnectReason`] once the client is gone.
//!
//! The [`Connection`] object answers synchronously, without touching the receive queue,
//! whether the client is still there and why it left, and lets the app await or subscribe to
//! that moment.
//!
//! This crate holds the interface only: no sockets, no runtime. Apps and middleware depend on it
//! alone; `ragi-server` runs them.
//!
//! ```
//! use ragi::{Headers, ReceiveEvent, Receiver, Scope, ScopeKind, Sender, SendEvent, UnsupportedScope};
//!
//! async fn app(scope: Scope, mut receive: Receiver, send: Sender) -> ragi::AppResult {
//!     if scope.kind != ScopeKind::Http {
//!         return Err(UnsupportedScope(scope.kind).into());
//!     }
//!     // Read the whole body.
//!     let mut body = Vec::new();
//!     loop {
//!         match receive.receive().await {
//!             ReceiveEvent::Request { body: piece, more } => {
//!                 body.extend_from_slice(&piece);
//!                 if !more { break; }
//!             }
//!             ReceiveEvent::Disconnect { .. } => return Ok(()),
//!             _ => {}
//!         }
//!     }
//!     send.send(SendEvent::response_start(200, Headers::new().with("content-type", "text/plain"))).await?;
//!     send.send(SendEvent::body(format!("{} bytes", body.len()))).await?;
//!     Ok(())
//! }
//! # let _ = app;
//! ```
#![deny(missing_docs)]

pub mod app;
pub mod connection;
pub mod error;
pub mod event;
pub mod extensions;
pub mod headers;
pub mod reason;
pub mod scope;
pub mod state;

pub use app::{
    App, AppError, AppResult, BoxFuture, ReceiveSource, Receiver, SendSink, Sender,
    SharedReceiveSource, TrySendError,
};
pub use connection::{Connection, ConnectionControl};
pub use error::{SendError, UnsupportedScope};
pub use event::{Body, Message, ReceiveEvent, SendEvent, SseEvent};
pub use extensions::{Extensions, TlsInfo, Transport, TransportState};
pub use headers::{validate_header, Headers, InvalidHeader};
pub use reason::{DisconnectReason, ExtraReason, InvalidReason};
pub use scope::{HttpVersion, Scope, ScopeKind};
pub use state::{Stash, State};
