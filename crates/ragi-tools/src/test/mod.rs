//! # An in-process test client that plays the server
//!
//! [`TestClient`] runs any [`ragi::App`] in a tokio task, with no socket: it builds the scopes,
//! feeds `receive`, checks and records every event the app `send`s, and drives the request's
//! [`Connection`] object exactly as `ragi-server` does. An app that passes
//! here accepts and refuses the same events in the same states under the server.
//!
//! ```
//! use ragi::{Headers, Receiver, Scope, Sender, SendEvent};
//! use ragi_tools::test::TestClient;
//!
//! async fn hello(scope: Scope, _rx: Receiver, send: Sender) -> ragi::AppResult {
//!     let body = format!("Hello from {}", scope.path);
//!     send.send(SendEvent::response_start(200, Headers::new().with("content-type", "text/plain")))
//!         .await?;
//!     send.send(SendEvent::body(body)).await?;
//!     Ok(())
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let client = TestClient::new(hello);
//! let res = client.get("/there").header("x-trace", "1").send().await;
//! assert_eq!(res.status(), 200);
//! assert_eq!(res.text(), "Hello from /there");
//! assert_eq!(res.header("content-length"), Some("17")); // added as the server would
//! assert!(res.connection().is_completed()); // on_complete callbacks ran
//! # });
//! ```
//!
//! In a test, `#[tokio::test]` gives the runtime; `#[tokio::test(start_paused = true)]` gives a
//! paused clock, which everything here honours (pauses between body chunks, scripted
//! disconnects after a delay, keep-alive timers, the client's own timeouts): timer-driven
//! behaviour is tested deterministically, without real waits.
//!
//! # HTTP
//!
//! [`TestClient::get`], [`post`](TestClient::post), … and [`request`](TestClient::request) give
//! a [`RequestBuilder`]: headers, a query appended to the path's, and a body as bytes, JSON, a
//! form, a [`Multipart`] form, or chunks with pauses between them. [`RequestBuilder::send`]
//! returns the whole [`TestResponse`] (status, headers, text, JSON, trailers, the app's send
//! log, its protocol violations, its connection object, its error).
//! [`RequestBuilder::stream`] returns at the response head and yields the body **as the app
//! sends it**, so endless responses are testable:
//!
//! ```
//! # use ragi::{Headers, Receiver, Scope, Sender, SendEvent};
//! # use ragi_tools::test::TestClient;
//! async fn ticker(_: Scope, _: Receiver, send: Sender) -> ragi::AppResult {
//!     send.send(SendEvent::response_start(200, Headers::new())).await?;
//!     for i in 0.. {
//!         send.send(SendEvent::body_chunk(format!("tick {i}\n"))).await?; // fails once the client left
//!         tokio::time::sleep(std::time::Duration::from_secs(1)).await;
//!     }
//!     Ok(())
//! }
//! # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
//! let client = TestClient::new(ticker);
//! let mut res = client.get("/ticks").stream().await;
//! assert_eq!(res.next_chunk().await.unwrap().unwrap(), "tick 0\n");
//! assert_eq!(res.next_chunk().await.unwrap().unwrap(), "tick 1\n");
//! drop(res); // the client leaves: the app's next send fails with `client_closed`
//! # });
//! ```
//!
//! The scope kind follows the server's rule: a request whose `accept` lists
//! `text/event-stream` (q > 0) gets an `sse` scope ([`RequestBuilder::kind`] overrides it). A
//! HEAD response's body is dropped, as the server drops it. Cookies set by responses are kept
//! in the client's jar ([`cookie`](mod@cookie)) and sent on later HTTP, WebSocket and SSE
//! requests.
//!
//! # Making the client leave
//!
//! What no other test client does: [`RequestBuilder::disconnect`] makes the client leave before
//! the body, mid-body, after the response started, after N response bytes, or after a delay,
//! with any [`DisconnectReason`](ragi::DisconnectReason);
//! [`RequestBuilder::disconnect_handle`] does it on demand, and dropping a stream does it too.
//! The app then sees what it would see under the server, in the spec's order. See
//! [`disconnect`](mod@disconnect). A client can also stay and stop reading
//! ([`ResponseStream::stall`], [`SseStream::stall`], [`TestWebSocket::stall`]): the app's
//! sends then wait, as under the server once the socket buffer is full.
//!
//! # WebSocket, SSE, lifespan
//!
//! [`TestClient::websocket`] connects and tells [`WsConnect::Accepted`] from a denial or a
//! refusal; [`TestWebSocket`] sends and receives with timeouts, closes, or drops abruptly.
//! [`TestClient::sse`] reads typed events ([`SseStream`]). [`TestClient::start`] and
//! [`TestClient::stop`] run the app's lifespan; its state ([`TestClient::state`]) reaches every
//! later scope.
//!
//! # Protocol misuse
//!
//! Events out of order or not valid for the scope, and headers with CR, LF or NUL, are refused
//! to the app with the server's [`SendError`](ragi::SendError) and listed by
//! [`TestResponse::violations`]. An app that returns without responding, fails or panics
//! before its response gets the server's `500` (reason `server_error`); after its response
//! started, the response is aborted ([`TestResponse::is_aborted`]).
#![allow(clippy::module_name_repetitions)]

pub mod body;
pub mod cookie;
pub mod disconnect;
mod error;
mod exchange;
mod http;
mod lifespan;
mod record;
pub mod sse;
mod transport;
pub mod ws;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ragi::{App, Connection, Headers, HttpVersion, Scope, ScopeKind, State, TlsInfo};

pub use body::{Multipart, Part};
pub use cookie::Cookie;
pub use disconnect::{Disconnect, DisconnectHandle};
pub use error::TestError;
pub use http::{RequestBuilder, ResponseStream, TestResponse};
pub use record::{AppOutcome, Sent, Violation};
pub use sse::{SseBuilder, SseConnect, SseItem, SseMessage, SseStream};
pub use transport::TestTransport;
pub use ws::{TestWebSocket, WebSocketBuilder, WsConnect};

/// The default of [`TestClient::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// An in-process client for an app. See the [module documentation](self).
///
/// Cheap to clone: clones share the app, the settings, the cookie jar and the states.
#[derive(Clone)]
pub struct TestClient {
    app: Arc<dyn App>,
    cfg: Arc<Config>,
    shared: Arc<Shared>,
}

#[derive(Clone, Debug)]
struct Config {
    headers: Headers,
    https: bool,
    host: String,
    client: Option<SocketAddr>,
    /// `None`: the default (port 80 or 443 by scheme).
    server: Option<Option<SocketAddr>>,
    root_path: String,
    version: HttpVersion,
    timeout: Duration,
    tls: Option<TlsInfo>,
    ws_max_queue: usize,
}

struct Shared {
    jar: Mutex<cookie::Jar>,
    state: State,
    server_state: State,
    lifespan: tokio::sync::Mutex<lifespan::Lifespan>,
}

impl fmt::Debug for TestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClient")
            .field("config", &self.cfg)
            .field("cookies", &self.shared.jar)
            .finish_non_exhaustive()
    }
}

impl TestClient {
    /// A client for `app` with the defaults: scheme `http`, host `testserver`, client
    /// `127.0.0.1:50000`, server `127.0.0.1:80` (443 with [`https`](Self::https)), HTTP/1.1,
    /// no root path, a 5 s timeout, an empty lifespan state and server state.
    pub fn new(app: impl App) -> Self {
        Self {
            app: Arc::new(app),
            cfg: Arc::new(Config {
                headers: Headers::new(),
                https: false,
                host: "testserver".to_owned(),
                client: Some(SocketAddr::from(([127, 0, 0, 1], 50000))),
                server: None,
                root_path: String::new(),
                version: HttpVersion::Http11,
                timeout: DEFAULT_TIMEOUT,
                tls: None,
                ws_max_queue: 1000,
            }),
            shared: Arc::new(Shared {
                jar: Mutex::new(cookie::Jar::default()),
                state: State::default(),
                server_state: State::default(),
                lifespan: tokio::sync::Mutex::new(lifespan::Lifespan::default()),
            }),
        }
    }

    fn cfg_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.cfg)
    }

    /// A header sent on every request (a request's own header of that name replaces it).
    pub fn default_header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        let name: Bytes = name.into();
        self.cfg_mut()
            .headers
            .push(Bytes::from(name.to_ascii_lowercase()), value.into());
        self
    }

    /// Makes requests `https` (WebSockets `wss`), with TLS facts in the scope (TLS 1.3, ALPN
    /// per HTTP version, SNI the host) unless [`tls`](Self::tls) gives others. `Secure` cookies
    /// are sent then.
    pub fn https(mut self) -> Self {
        self.cfg_mut().https = true;
        self
    }

    /// The TLS facts of `https` scopes.
    pub fn tls(mut self, info: TlsInfo) -> Self {
        let cfg = self.cfg_mut();
        cfg.https = true;
        cfg.tls = Some(info);
        self
    }

    /// The `host` header (`testserver` by default).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.cfg_mut().host = host.into();
        self
    }

    /// The client's address in the scope (`None` for unknown).
    pub fn client_addr(mut self, addr: impl Into<Option<SocketAddr>>) -> Self {
        self.cfg_mut().client = addr.into();
        self
    }

    /// The server's address in the scope (`None` for unknown).
    pub fn server_addr(mut self, addr: impl Into<Option<SocketAddr>>) -> Self {
        self.cfg_mut().server = Some(addr.into());
        self
    }

    /// The `root_path` of every scope (the prefix the app is mounted under).
    pub fn root_path(mut self, root_path: impl Into<String>) -> Self {
        self.cfg_mut().root_path = root_path.into();
        self
    }

    /// The HTTP version of every scope (HTTP/1.1 by default). HTTP/1.0 changes the framing
    /// rules as the server's do (no trailers; a body of unknown length is close-delimited).
    pub fn http_version(mut self, version: HttpVersion) -> Self {
        self.cfg_mut().version = version;
        self
    }

    /// How long calls that wait give up after ([`DEFAULT_TIMEOUT`], 5 s, by default): a
    /// response head or body, a WebSocket answer or message, an SSE event, lifespan events.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.cfg_mut().timeout = timeout;
        self
    }

    /// The bound of a WebSocket app's receive queue (1000, the server's default): a message
    /// the client sends beyond it closes the session with 1008 and `queue_overflow`.
    pub fn ws_max_queue(mut self, n: usize) -> Self {
        self.cfg_mut().ws_max_queue = n;
        self
    }

    /// Shares `state` as the server-state object of every scope
    /// (`scope.extensions.server_state`).
    pub fn with_server_state(mut self, state: State) -> Self {
        let shared =
            Arc::get_mut(&mut self.shared).expect("set the server state before cloning the client");
        shared.server_state = state;
        self
    }

    /// Uses `state` as the lifespan state (`scope.state` of every scope, the lifespan scope
    /// included), e.g. one a test filled beforehand instead of running start-up.
    pub fn with_state(mut self, state: State) -> Self {
        let shared =
            Arc::get_mut(&mut self.shared).expect("set the state before cloning the client");
        shared.state = state;
        self
    }

    /// The lifespan state: filled by the app's start-up, placed in every scope as
    /// `scope.state`.
    pub fn state(&self) -> &State {
        &self.shared.state
    }

    /// The server-state object shared by every scope.
    pub fn server_state(&self) -> &State {
        &self.shared.server_state
    }

    // ----- cookies ------------------------------------------------------------------------

    fn jar(&self) -> std::sync::MutexGuard<'_, cookie::Jar> {
        self.shared.jar.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cookies in the jar (expired ones are dropped).
    pub fn cookies(&self) -> Vec<Cookie> {
        self.jar().all()
    }

    /// The value of the cookie named `name`, if the jar has one (any path).
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar()
            .all()
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.value)
    }

    /// Puts a cookie in the jar (path `/`).
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar().set(name, value);
    }

    /// Empties the jar.
    pub fn clear_cookies(&self) {
        self.jar().clear();
    }

    pub(crate) fn store_cookies(&self, headers: &Headers, request_path: &str) {
        let values: Vec<String> = headers
            .get_all("set-cookie")
            .filter_map(|v| std::str::from_utf8(v).ok().map(str::to_owned))
            .collect();
        if values.is_empty() {
            return;
        }
        let mut jar = self.jar();
        for v in values {
            jar.store(&v, request_path);
        }
    }

    // ----- requests -----------------------------------------------------------------------

    /// A `GET` request to `path` (which may carry a query).
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(::http::Method::GET, path)
    }

    /// A `POST` request.
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(::http::Method::POST, path)
    }

    /// A `PUT` request.
    pub fn put(&self, path: &str) -> RequestBuilder {
        self.request(::http::Method::PUT, path)
    }

    /// A `PATCH` request.
    pub fn patch(&self, path: &str) -> RequestBuilder {
        self.request(::http::Method::PATCH, path)
    }

    /// A `DELETE` request.
    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.request(::http::Method::DELETE, path)
    }

    /// A `HEAD` request (the body the app sends is dropped).
    pub fn head(&self, path: &str) -> RequestBuilder {
        self.request(::http::Method::HEAD, path)
    }

    /// An `OPTIONS` request.
    pub fn options(&self, path: &str) -> RequestBuilder {
        self.request(::http::Method::OPTIONS, path)
    }

    /// A request with any method.
    pub fn request(&self, method: ::http::Method, path: &str) -> RequestBuilder {
        RequestBuilder::new(self.clone(), method, path)
    }

    /// A WebSocket handshake to `path`.
    pub fn websocket(&self, path: &str) -> WebSocketBuilder {
        WebSocketBuilder::new(self.clone(), path)
    }

    /// An SSE request to `path` (`GET`, `accept: text/event-stream`).
    pub fn sse(&self, path: &str) -> SseBuilder {
        SseBuilder::new(self.get(path))
    }

    // ----- lifespan -----------------------------------------------------------------------

    /// Runs the app's lifespan start-up: calls it with a `lifespan` scope, sends `Startup` and
    /// waits for its answer. An app that returns or fails without answering does not do
    /// lifespan, and that is fine (as on the server): `Ok`, and
    /// [`lifespan_supported`](Self::lifespan_supported) says `Some(false)`.
    ///
    /// # Errors
    ///
    /// [`TestError::StartupFailed`] with the app's message; [`TestError::Timeout`] when it
    /// does not answer in time.
    pub async fn start(&self) -> Result<(), TestError> {
        let mut l = self.shared.lifespan.lock().await;
        l.start(self, self.cfg.timeout).await
    }

    /// Runs the app's lifespan shut-down: sends `Shutdown` and waits for the answer (or the
    /// app's return). Nothing to do when start-up did not run or the app does not do lifespan.
    ///
    /// # Errors
    ///
    /// [`TestError::ShutdownFailed`] with the app's message; [`TestError::Timeout`].
    pub async fn stop(&self) -> Result<(), TestError> {
        let mut l = self.shared.lifespan.lock().await;
        l.stop(self.cfg.timeout).await
    }

    /// Whether the app answered lifespan start-up: `None` before [`start`](Self::start).
    pub async fn lifespan_supported(&self) -> Option<bool> {
        self.shared.lifespan.lock().await.supported()
    }

    // ----- scopes -------------------------------------------------------------------------

    /// The request headers: `host`, the client's defaults (unless the request has the name),
    /// the request's own, and the jar's cookies (unless the request has a `cookie` header).
    fn request_headers(&self, own: Headers, path: &str, secure: bool) -> Headers {
        let mut h = Headers::with_capacity(own.len() + self.cfg.headers.len() + 2);
        if !own.contains("host") && !self.cfg.headers.contains("host") {
            h.push("host", self.cfg.host.clone());
        }
        for (n, v) in self.cfg.headers.iter() {
            let name = std::str::from_utf8(n).unwrap_or("");
            if !own.contains(name) {
                h.push(n.clone(), v.clone());
            }
        }
        let has_cookie = own.contains("cookie");
        for (n, v) in own {
            h.push(n, v);
        }
        if !has_cookie {
            if let Some(c) = self.jar().header_for(path, secure) {
                h.push("cookie", c);
            }
        }
        h
    }

    /// A scope of `kind` with the client's settings.
    fn scope(&self, kind: ScopeKind, connection: Connection, version: HttpVersion) -> Scope {
        let cfg = &self.cfg;
        let mut scope = Scope::with_parts(kind, connection, self.shared.state.clone());
        scope.http_version = version;
        scope.scheme = match (kind, cfg.https) {
            (ScopeKind::WebSocket, false) => "ws",
            (ScopeKind::WebSocket, true) => "wss",
            (_, false) => "http",
            (_, true) => "https",
        };
        scope.root_path = cfg.root_path.clone();
        scope.client = cfg.client;
        scope.server = cfg.server.unwrap_or_else(|| {
            Some(SocketAddr::from((
                [127, 0, 0, 1],
                if cfg.https { 443 } else { 80 },
            )))
        });
        scope.extensions.server_state = Some(self.shared.server_state.clone());
        if cfg.https {
            let info = cfg.tls.clone().unwrap_or_else(|| {
                let mut t = TlsInfo::default();
                t.version = "TLSv1.3".to_owned();
                t.cipher = "TLS13_AES_128_GCM_SHA256".to_owned();
                t.alpn = Some(
                    if version == HttpVersion::Http2 {
                        "h2"
                    } else {
                        "http/1.1"
                    }
                    .to_owned(),
                );
                t.sni = Some(cfg.host.clone());
                t
            });
            scope.extensions.tls = Some(Arc::new(info));
        }
        scope
    }
}
