//! The events that travel between the client (through the server) and the app.
//!
//! [`ReceiveEvent`]s come from `receive`, [`SendEvent`]s go to `send`. Which are valid depends
//! on the scope kind and the exchange's state:
//!
//! | scope | receive | send |
//! |---|---|---|
//! | `http` | `Request`, `Disconnect` | `ResponseStart`, `ResponseBody`, `ResponseTrailers`, `FullFlush` |
//! | `websocket` | `WebSocketConnect`, `WebSocketReceive`, `WebSocketDisconnect` | `WebSocketAccept`, `WebSocketSend`, `WebSocketClose`, `WebSocketKeepalive`; before accept `HttpResponseStart` + `HttpResponseBody` |
//! | `sse` | `Request`, `Disconnect` | `SseStart`, `SseSend`, `SseComment`, `SseKeepalive`, `SseClose`; or `HttpResponseStart` + `HttpResponseBody` |
//! | `lifespan` | `Startup`, `Shutdown` | `StartupComplete`, `StartupFailed`, `ShutdownComplete`, `ShutdownFailed` |
//!
//! An event that is not valid for the scope or the state is refused with a
//! [`SendError`](crate::SendError) (never a panic).
//!
//! ```
//! use ragi::{Headers, SendEvent};
//!
//! let start = SendEvent::response_start(200, Headers::new().with("content-type", "text/plain"));
//! let body = SendEvent::body("Hello, World!");
//! assert!(matches!(body, SendEvent::ResponseBody { more: false, .. }));
//! # let _ = start;
//! ```

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;

use crate::{DisconnectReason, Headers};

/// A WebSocket message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message (valid UTF-8).
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

/// An event from the client, as the app receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiveEvent {
    /// A piece of the request body (http, sse). `more` is false on the last piece; a request
    /// without a body yields one empty piece with `more: false`.
    Request {
        /// The bytes (de-chunked).
        body: Bytes,
        /// Whether more pieces follow.
        more: bool,
    },
    /// The exchange ended abnormally (http, sse). Repeated on every later `receive`.
    Disconnect {
        /// Why.
        reason: DisconnectReason,
    },
    /// A WebSocket client asks to connect; answer with `WebSocketAccept` or a denial.
    WebSocketConnect,
    /// A WebSocket message from the client.
    WebSocketReceive(Message),
    /// The WebSocket session ended.
    WebSocketDisconnect {
        /// The close code (1005 when the client's close frame had none, 1006 when there was no
        /// close frame).
        code: u16,
        /// The close reason text, or the disconnect reason's name when no frame carried one.
        reason: String,
    },
    /// Lifespan: the worker starts.
    Startup,
    /// Lifespan: the worker stops.
    Shutdown,
}

/// A response body piece: bytes in memory or a region of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Bytes in memory.
    Bytes(Bytes),
    /// `length` bytes of the file at `path` from `offset` (to the end when `None`).
    File {
        /// The file.
        path: PathBuf,
        /// Where to start.
        offset: u64,
        /// How many bytes; `None` to the end of the file.
        length: Option<u64>,
    },
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body::Bytes(b)
    }
}

/// One Server-Sent Event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any (no CR or LF).
    pub event: Option<String>,
    /// The data; split on CR, LF and CRLF into `data:` lines.
    pub data: String,
    /// The `id:` field, if any (no CR or LF).
    pub id: Option<String>,
    /// The `retry:` field in milliseconds, if any.
    pub retry: Option<u64>,
}

/// An event for the client, as the app sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendEvent {
    /// The response status and headers (http).
    ResponseStart {
        /// The status code, 100–999 (1xx are refused: the server sends `100 Continue` itself).
        status: u16,
        /// The response headers.
        headers: Headers,
        /// Whether `ResponseTrailers` will follow the body.
        trailers: bool,
    },
    /// A piece of the response body (http). `more: false` ends the body.
    ResponseBody {
        /// The bytes or a file region.
        body: Body,
        /// Whether more pieces follow.
        more: bool,
    },
    /// Trailer fields after the body (http; announced with `trailers: true`).
    ResponseTrailers {
        /// The trailer fields.
        headers: Headers,
    },
    /// Write out everything buffered now (extension `fullflush`).
    FullFlush,
    /// Accept a WebSocket session.
    WebSocketAccept {
        /// The chosen subprotocol, one the client offered.
        subprotocol: Option<String>,
        /// Extra handshake response headers.
        headers: Headers,
    },
    /// A WebSocket message to the client.
    WebSocketSend(Message),
    /// Close the WebSocket session (before accept: answers HTTP 403).
    WebSocketClose {
        /// The close code (1000 by default).
        code: u16,
        /// The close reason text.
        reason: String,
    },
    /// Server pings every `interval`; a pong missing after `timeout` ends the session with 1006
    /// and reason `keepalive_timeout`.
    WebSocketKeepalive {
        /// Time between pings; zero turns pings off.
        interval: Duration,
        /// How long to wait for the pong.
        timeout: Duration,
    },
    /// The denial (WebSocket, before accept) or decline (SSE) response's start.
    HttpResponseStart {
        /// The status code.
        status: u16,
        /// The headers.
        headers: Headers,
    },
    /// The denial or decline response's body.
    HttpResponseBody {
        /// The bytes.
        body: Bytes,
        /// Whether more pieces follow.
        more: bool,
    },
    /// Start an SSE stream (status 200 by default; the server adds `content-type` and
    /// `cache-control`).
    SseStart {
        /// The status code.
        status: u16,
        /// Extra headers.
        headers: Headers,
    },
    /// One event on an SSE stream.
    SseSend(SseEvent),
    /// A comment line on an SSE stream.
    SseComment {
        /// The comment (no CR or LF).
        comment: String,
    },
    /// Send a comment every `interval` while the stream is otherwise quiet.
    SseKeepalive {
        /// The interval; zero turns it off.
        interval: Duration,
        /// The comment text.
        comment: String,
    },
    /// End the SSE stream (idempotent).
    SseClose {
        /// Why, for logs.
        reason: Option<String>,
    },
    /// Lifespan: start-up went well.
    StartupComplete,
    /// Lifespan: start-up failed; the server exits with a non-zero status.
    StartupFailed {
        /// What went wrong, printed on stderr.
        message: String,
    },
    /// Lifespan: shut-down went well.
    ShutdownComplete,
    /// Lifespan: shut-down failed.
    ShutdownFailed {
        /// What went wrong.
        message: String,
    },
}

impl SendEvent {
    /// `ResponseStart` without trailers.
    pub fn response_start(status: u16, headers: Headers) -> Self {
        Self::ResponseStart {
            status,
            headers,
            trailers: false,
        }
    }

    /// The last (or only) `ResponseBody` piece.
    pub fn body(body: impl Into<Bytes>) -> Self {
        Self::ResponseBody {
            body: Body::Bytes(body.into()),
            more: false,
        }
    }

    /// A `ResponseBody` piece with more to follow.
    pub fn body_chunk(body: impl Into<Bytes>) -> Self {
        Self::ResponseBody {
            body: Body::Bytes(body.into()),
            more: true,
        }
    }

    /// The event's name, for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ResponseStart { .. } => "ResponseStart",
            Self::ResponseBody { .. } => "ResponseBody",
            Self::ResponseTrailers { .. } => "ResponseTrailers",
            Self::FullFlush => "FullFlush",
            Self::WebSocketAccept { .. } => "WebSocketAccept",
            Self::WebSocketSend(_) => "WebSocketSend",
            Self::WebSocketClose { .. } => "WebSocketClose",
            Self::WebSocketKeepalive { .. } => "WebSocketKeepalive",
            Self::HttpResponseStart { .. } => "HttpResponseStart",
            Self::HttpResponseBody { .. } => "HttpResponseBody",
            Self::SseStart { .. } => "SseStart",
            Self::SseSend(_) => "SseSend",
            Self::SseComment { .. } => "SseComment",
            Self::SseKeepalive { .. } => "SseKeepalive",
            Self::SseClose { .. } => "SseClose",
            Self::StartupComplete => "StartupComplete",
            Self::StartupFailed { .. } => "StartupFailed",
            Self::ShutdownComplete => "ShutdownComplete",
            Self::ShutdownFailed { .. } => "ShutdownFailed",
        }
    }
}
