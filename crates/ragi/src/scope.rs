//! What an exchange is: the scope an app is called with.
//!
//! A server calls the app once per scope:
//!
//! * `http` — one per HTTP request (one per stream on HTTP/2);
//! * `websocket` — one per WebSocket session;
//! * `sse` — one per Server-Sent Events stream (a request whose `accept` includes
//!   `text/event-stream` and is not a WebSocket upgrade);
//! * `lifespan` — one per worker, before the first connection is accepted.
//!
//! The fields are public so that middleware can rewrite them (a prefix-stripping router changes
//! `path` and `root_path`); build new scopes with [`Scope::new`].
//!
//! ```
//! use ragi::{Scope, ScopeKind};
//!
//! let mut scope = Scope::new(ScopeKind::Http);
//! scope.method = http::Method::POST;
//! scope.path = "/upload".into();
//! scope.headers.push("content-type", "application/json");
//! assert!(scope.connection().is_connected());
//! assert_eq!(scope.kind.as_str(), "http");
//! ```

use std::net::SocketAddr;

use bytes::Bytes;

use crate::{Connection, Extensions, Headers, Stash, State};

/// The protocol of a scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ScopeKind {
    /// One HTTP request.
    Http,
    /// One WebSocket session.
    WebSocket,
    /// One Server-Sent Events stream.
    Sse,
    /// The worker's start-up and shut-down.
    Lifespan,
}

impl ScopeKind {
    /// `"http"`, `"websocket"`, `"sse"` or `"lifespan"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::WebSocket => "websocket",
            Self::Sse => "sse",
            Self::Lifespan => "lifespan",
        }
    }
}

/// The HTTP version of the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpVersion {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    Http11,
    /// HTTP/2.
    Http2,
}

impl HttpVersion {
    /// `"1.0"`, `"1.1"` or `"2"`, as PAGI writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "1.0",
            Self::Http11 => "1.1",
            Self::Http2 => "2",
        }
    }
}

/// The scope of one exchange. See the [module documentation](self).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Scope {
    /// The protocol.
    pub kind: ScopeKind,
    /// The HTTP version (for lifespan scopes: HTTP/1.1, meaningless).
    pub http_version: HttpVersion,
    /// The request method (`GET` for WebSocket handshakes).
    pub method: http::Method,
    /// `http`, `https`, `ws` or `wss`.
    pub scheme: &'static str,
    /// The path, percent-decoded (lossily, as UTF-8).
    pub path: String,
    /// The path as it arrived on the wire, undecoded, without the query.
    pub raw_path: Bytes,
    /// The query string, without the `?`, undecoded.
    pub query_string: Bytes,
    /// The prefix the app is mounted under (empty by default).
    pub root_path: String,
    /// The request headers: lower-cased names, order and duplicates kept.
    pub headers: Headers,
    /// The client's address, when known.
    pub client: Option<SocketAddr>,
    /// The server's local address, when known.
    pub server: Option<SocketAddr>,
    /// WebSocket subprotocols the client offered, in order.
    pub subprotocols: Vec<String>,
    /// The lifespan state of this worker, shared by every scope.
    pub state: State,
    /// Extensions the server advertises for this scope.
    pub extensions: Extensions,
    /// What the router, middleware and app of this scope share (path parameters, request id,
    /// session, …). Empty and unallocated until used; clones of the scope share it.
    pub stash: Stash,
    connection: Connection,
}

impl Scope {
    /// A scope of `kind` with empty fields (path `/`), `GET`, HTTP/1.1 and a detached connection object.
    pub fn new(kind: ScopeKind) -> Self {
        let mut scope = Self::with_parts(kind, Connection::detached(), State::default());
        scope.path = "/".to_owned();
        scope
    }

    /// A scope of `kind` carrying `connection` and the lifespan `state`; other fields as
    /// [`Scope::new`] sets them, but an empty `path`. Servers use this to build a scope
    /// without spare allocations.
    pub fn with_parts(kind: ScopeKind, connection: Connection, state: State) -> Self {
        Self {
            kind,
            http_version: HttpVersion::Http11,
            method: http::Method::GET,
            scheme: "http",
            path: String::new(),
            raw_path: Bytes::from_static(b"/"),
            query_string: Bytes::new(),
            root_path: String::new(),
            headers: Headers::new(),
            client: None,
            server: None,
            subprotocols: Vec::new(),
            state,
            extensions: Extensions::default(),
            stash: Stash::default(),
            connection,
        }
    }

    /// The same scope with `connection` as its connection object.
    pub fn with_connection(mut self, connection: Connection) -> Self {
        self.connection = connection;
        self
    }

    /// The connection object of this request, stream or session (spec §3). Lifespan scopes
    /// carry a detached object that never ends.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The query string as text, if it is UTF-8.
    pub fn query(&self) -> Option<&str> {
        std::str::from_utf8(&self.query_string).ok()
    }
}

/// Decodes `%XX` escapes of a request path; invalid escapes stay as they are; invalid UTF-8 is
/// replaced (U+FFFD).
pub fn percent_decode(raw: &[u8]) -> String {
    if !raw.contains(&b'%') {
        // `from_utf8` checks ASCII a word at a time; the lossy path is for what fails it.
        return match std::str::from_utf8(raw) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(raw).into_owned(),
        };
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' && i + 2 < raw.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_paths() {
        assert_eq!(percent_decode(b"/a%20b"), "/a b");
        assert_eq!(percent_decode(b"/a%2"), "/a%2");
        assert_eq!(percent_decode(b"/a%zz"), "/a%zz");
        assert_eq!(percent_decode(b"/%E2%82%AC"), "/\u{20ac}");
        assert_eq!(percent_decode(b"/%ff"), "/\u{fffd}");
    }
}
