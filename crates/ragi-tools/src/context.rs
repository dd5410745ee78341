//! The per-scope context a handler gets: the request, the connection object, path parameters,
//! state, the stash, and the way to answer.
//!
//! ```
//! use ragi_tools::prelude::*; // HttpContext, the Context trait, Response, Error, …
//!
//! async fn show(cx: HttpContext) -> Result<Response, Error> {
//!     let id: u64 = cx.param_as("id")?;              // from the route `/users/{id}`
//!     let verbose = cx.query().get("verbose").is_some();
//!     if !cx.connection().is_connected() {           // synchronous, never touches the body
//!         return Err(Error::disconnected(cx.connection().disconnect_reason().unwrap()));
//!     }
//!     Ok(Response::json(&serde_json::json!({ "id": id, "verbose": verbose })))
//! }
//! # let _ = show;
//! ```
//!
//! There is one context per scope kind: [`HttpContext`] here, and the WebSocket and SSE
//! contexts in [`crate::ws`] and [`crate::sse`]. Each owns the scope and the two handles, so a
//! handler takes it by value; what several layers of one request share (path parameters, a
//! request id, a session, a value for the access log) lives in the scope's
//! [`Stash`](ragi::Stash), which middleware see too.

use std::net::SocketAddr;
use std::sync::Arc;

use ragi::{
    Connection, Headers, ReceiveEvent, Receiver, Scope, ScopeKind, Sender, Stash, State, TlsInfo,
};

use crate::response::{BodyWriter, Responder};
use crate::{Error, Response};

/// Path parameters of the matched route, percent-decoded, in pattern order. The router puts
/// them in the scope's stash; nested routers add theirs after their parents'.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    /// Every value, one after the other (one allocation however many there are).
    text: String,
    /// Each name and where its value lies in `text`.
    list: Vec<(Arc<str>, usize, usize)>,
}

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `n` parameters of `bytes` bytes in all.
    pub fn with_capacity(n: usize, bytes: usize) -> Self {
        Self {
            text: String::with_capacity(bytes),
            list: Vec::with_capacity(n),
        }
    }

    /// Adds a parameter (a later one of the same name wins in [`Params::get`]).
    pub fn push(&mut self, name: impl Into<Arc<str>>, value: impl AsRef<str>) {
        let start = self.text.len();
        self.text.push_str(value.as_ref());
        self.list.push((name.into(), start, self.text.len()));
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.list
            .iter()
            .rev()
            .find(|(n, _, _)| &**n == name)
            .map(|&(_, s, e)| &self.text[s..e])
    }

    /// Every `(name, value)` in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.list.iter().map(|(n, s, e)| (&**n, &self.text[*s..*e]))
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// The error of a strict stash or state lookup: names the missing type.
pub(crate) fn missing_type<T>(place: &str) -> Error {
    Error::internal(format!(
        "no value of type {} in the {place}",
        std::any::type_name::<T>()
    ))
}

/// What every context offers: the scope and what hangs off it. Implemented by [`HttpContext`]
/// and the WebSocket and SSE contexts, so a helper can take any of them.
pub trait Context {
    /// The scope.
    fn scope(&self) -> &Scope;

    /// The connection object of this request, stream or session (spec §3).
    fn connection(&self) -> &Connection {
        self.scope().connection()
    }

    /// The path parameters of the matched route.
    fn params(&self) -> Arc<Params> {
        self.scope().stash.get::<Params>().unwrap_or_default()
    }

    /// The path parameter `name`, percent-decoded.
    fn param(&self, name: &str) -> Option<String> {
        self.params().get(name).map(str::to_owned)
    }

    /// The path parameter `name` parsed as `T`: 404 when it is missing or does not parse (the
    /// path names no such resource).
    fn param_as<T: std::str::FromStr>(&self, name: &str) -> Result<T, Error> {
        self.params()
            .get(name)
            .and_then(|v| v.parse().ok())
            .ok_or_else(Error::not_found)
    }

    /// The path of the route named `name` (see [`crate::router`]): resolved against the router
    /// that dispatched this request (then the routers that mounted it), under that router's
    /// `root_path`, with `params` percent-encoded and `query` form-encoded. An error (500) when
    /// no such route exists or the parameters do not fit its pattern.
    fn url_for(
        &self,
        name: &str,
        params: &[(&str, &str)],
        query: &[(&str, &str)],
    ) -> Result<String, Error> {
        crate::router::url_for(self.scope(), name, params, query)
    }

    /// The route the router dispatched this request to (its full pattern and name).
    fn matched_route(&self) -> Option<Arc<crate::router::MatchedRoute>> {
        self.scope().stash.get()
    }

    /// The per-request stash.
    fn stash(&self) -> &Stash {
        &self.scope().stash
    }

    /// The stashed value of type `T`; an error naming `T` when there is none.
    fn stashed<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, Error> {
        self.scope()
            .stash
            .get::<T>()
            .ok_or_else(|| missing_type::<T>("stash"))
    }

    /// The lifespan state of this worker.
    fn state(&self) -> &State {
        &self.scope().state
    }

    /// The lifespan state's value of type `T`; an error naming `T` when there is none.
    fn state_of<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, Error> {
        self.scope()
            .state
            .get::<T>()
            .ok_or_else(|| missing_type::<T>("lifespan state"))
    }

    /// The server-state object (shared by every app call of one server session), when the
    /// server offers one.
    fn server_state(&self) -> Option<&State> {
        self.scope().extensions.server_state.as_ref()
    }

    /// The request headers.
    fn headers(&self) -> &Headers {
        &self.scope().headers
    }

    /// The first value of header `name` (lower case), if it is text.
    fn header(&self, name: &str) -> Option<&str> {
        self.scope().headers.get_str(name)
    }

    /// The decoded path (after any mount's prefix).
    fn path(&self) -> &str {
        &self.scope().path
    }

    /// The prefix this app is mounted under.
    fn root_path(&self) -> &str {
        &self.scope().root_path
    }

    /// The client's address.
    fn client(&self) -> Option<SocketAddr> {
        self.scope().client
    }

    /// The server's address.
    fn server(&self) -> Option<SocketAddr> {
        self.scope().server
    }

    /// `http`, `https`, `ws` or `wss`.
    fn scheme(&self) -> &str {
        self.scope().scheme
    }

    /// TLS facts, on TLS connections.
    fn tls(&self) -> Option<&TlsInfo> {
        self.scope().extensions.tls.as_deref()
    }
}

/// The context of an HTTP request. See the [module documentation](self).
///
/// It is also what an HTTP route gets for an `sse` scope of its path (a client that accepts
/// JSON *or* an event stream, as MCP clients do): the answer then goes out through the SSE
/// decline pair, which the client sees as an ordinary response.
pub struct HttpContext {
    scope: Scope,
    receive: Receiver,
    responder: Responder,
    pub(crate) body: BodyProgress,
}

/// How much of the request body the helpers consumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum BodyProgress {
    /// Nothing read yet.
    #[default]
    Unread,
    /// Some pieces read.
    Reading,
    /// The last piece was read.
    Done,
}

impl std::fmt::Debug for HttpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpContext")
            .field("method", &self.scope.method)
            .field("path", &self.scope.path)
            .field("responder", &self.responder)
            .finish()
    }
}

impl Context for HttpContext {
    fn scope(&self) -> &Scope {
        &self.scope
    }
}

impl HttpContext {
    /// The context of an app call.
    pub fn new(scope: Scope, receive: Receiver, send: Sender) -> Self {
        let responder = Responder::new(&scope, send);
        Self::from_parts(scope, receive, responder)
    }

    /// A context over an existing [`Responder`] (whose clone the caller keeps to finish the
    /// answer after the handler returns).
    pub fn from_parts(scope: Scope, receive: Receiver, responder: Responder) -> Self {
        Self {
            scope,
            receive,
            responder,
            body: BodyProgress::Unread,
        }
    }

    /// The scope, to change it (a middleware rewriting the request).
    pub fn scope_mut(&mut self) -> &mut Scope {
        &mut self.scope
    }

    /// The scope and the two handles back. A response already started through this context's
    /// responder is known to the toolkit, whatever is sent through the raw `Sender` is not.
    pub fn into_parts(self) -> (Scope, Receiver, Responder) {
        (self.scope, self.receive, self.responder)
    }

    /// The request method.
    pub fn method(&self) -> &http::Method {
        &self.scope.method
    }

    /// The path as it arrived, undecoded, without the query.
    pub fn raw_path(&self) -> &[u8] {
        &self.scope.raw_path
    }

    /// The query string, undecoded (without the `?`).
    pub fn query_string(&self) -> &str {
        self.scope.query().unwrap_or("")
    }

    /// The HTTP version.
    pub fn http_version(&self) -> ragi::HttpVersion {
        self.scope.http_version
    }

    /// The scope kind: `Http`, or `Sse` when the request also accepts an event stream.
    pub fn kind(&self) -> ScopeKind {
        self.scope.kind
    }

    /// The media type of the body (`content-type` without parameters, lower case).
    pub fn content_type(&self) -> Option<String> {
        let v = self.scope.headers.get_str("content-type")?;
        Some(
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase(),
        )
    }

    /// The next raw event from the client (body pieces, then `Disconnect` if the client
    /// leaves). After a body helper consumed the body, this still yields the `Disconnect`.
    pub async fn receive(&mut self) -> ReceiveEvent {
        let event = self.receive.receive().await;
        if let ReceiveEvent::Request { more, .. } = &event {
            self.body = if *more {
                BodyProgress::Reading
            } else {
                BodyProgress::Done
            };
        }
        event
    }

    /// The raw receive handle.
    pub fn receiver(&mut self) -> &mut Receiver {
        &mut self.receive
    }

    /// The responder (the send side).
    pub fn responder(&self) -> &Responder {
        &self.responder
    }

    /// Sends `response` now. The handler may then return `()`.
    ///
    /// The future does not borrow the context (which is not `Sync`: it holds the receive
    /// handle), so a handler stays `Send` while it awaits it.
    pub fn respond(
        &self,
        response: impl crate::IntoResponse,
    ) -> impl std::future::Future<Output = Result<(), Error>> + Send + 'static {
        let responder = self.responder.clone();
        let response = response.into_response();
        async move { responder.send(response).await }
    }

    /// Starts a streaming response: sends the head now and returns the body writer.
    ///
    /// The future does not borrow the context (see [`respond`](Self::respond)).
    pub fn stream(
        &self,
        status: u16,
        headers: Headers,
    ) -> impl std::future::Future<Output = Result<BodyWriter, Error>> + Send + 'static {
        let responder = self.responder.clone();
        async move { responder.start(status, headers, false).await }
    }

    /// Whether the response was started (by this context's helpers).
    pub fn response_started(&self) -> bool {
        self.responder.is_started()
    }
}

/// A convenience for handlers that want a response from an error: `Err(e)` renders as `e`'s
/// response.
pub type HandlerResult<T = Response> = Result<T, Error>;
