//! axum on ragi: serve any [`tower_service::Service`] of `http::Request`s — an axum `Router` in
//! particular — as a ragi app (feature `tower`).
//!
//! ```no_run
//! use axum::{routing::get, Extension, Router};
//! use ragi::Connection;
//!
//! async fn slow(Extension(conn): Extension<Connection>) -> String {
//!     tokio::select! {
//!         _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => "done".into(),
//!         // The client left: the ragi connection object says so, with the reason.
//!         reason = conn.disconnected() => format!("client left: {reason}"),
//!     }
//! }
//!
//! let router = Router::new().route("/slow", get(slow));
//! let app = ragi_tools::tower::service(router); // a ragi::App
//! # fn is_app(_: impl ragi::App) {}
//! # is_app(app);
//! ```
//!
//! # The request
//!
//! Each `http` (or `sse`) scope becomes one `http::Request<`[`RequestBody`]`>`:
//!
//! | request | from the scope |
//! |---|---|
//! | method | `scope.method` |
//! | URI | origin form: `scope.raw_path` (undecoded, as a mount left it), then `?` and `scope.query_string` when there is one; a path that is not a valid URI is answered 400 without calling the service |
//! | version | `scope.http_version` (HTTP/1.0, HTTP/1.1, HTTP/2) |
//! | headers | `scope.headers`, in order, duplicates kept |
//! | body | [`RequestBody`]: the scope's `receive`, streamed (an axum handler reading it reads the client as it sends); a client that leaves mid-body makes the body fail with an error carrying the reason |
//! | extensions | the request's [`ragi::Connection`]; [`ClientAddr`] and [`ServerAddr`] when known; [`RootPath`] (the mount prefix); the lifespan [`ragi::State`]; the [`ragi::Stash`] of the scope; `Arc<`[`ragi::TlsInfo`]`>` on TLS connections |
//!
//! So an axum handler takes `Extension<ragi::Connection>` and can ask `is_connected()`, await
//! `disconnected()` or register `on_disconnect`. Request trailers do not exist in ragi's
//! model, so none are passed.
//!
//! # The response
//!
//! The head goes out as soon as the service answers; the body's frames follow as they come,
//! each `send` awaited, so a slow client slows the body down (backpressure). The last data
//! frame goes out as the final piece when the body says it ended (`is_end_stream`), so a
//! whole body gets a `content-length`. Trailers are passed when the response announces them:
//! when the request says `te: trailers` (gRPC) or the response has a `trailer` header —
//! ragi must announce trailers in the head, before the body is read; trailers a response did
//! not announce are dropped.
//!
//! **When the client leaves, the body is dropped at once and never polled again** (an axum
//! `Body::from_stream` stops there, with whatever it holds). The service's future itself runs
//! to its end (ragi does not cancel apps): a handler that should stop early watches the
//! connection object, and a response that arrives after the client left is dropped unpolled.
//! A body that fails mid-way aborts the response (the client sees a broken response, never a
//! clean end); a service error is a 500.
//!
//! # Other scopes
//!
//! * `sse` — a request that also accepts an event stream (every MCP client's `POST`) is still
//!   an HTTP request to the service: its response goes out through the SSE decline pair, which
//!   the client sees as an ordinary response, streamed (an axum `Sse` response streams too).
//!   Trailers are dropped there.
//! * `websocket` — the adapter cannot upgrade a connection (axum's `WebSocketUpgrade` needs
//!   hyper's upgrade machinery): the handshake is denied with **501 Not Implemented** and a
//!   message saying so (a server without the denial extension answers 403). Route WebSocket
//!   paths to a ragi handler ([`crate::ws`]) beside the service.
//! * `lifespan` — declined with [`UnsupportedScope`]: the service has no lifespan.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use ragi::{
    App, AppError, AppResult, BoxFuture, Connection, Headers, HttpVersion, ReceiveEvent,
    ReceiveSource, Receiver, Scope, ScopeKind, Sender, UnsupportedScope,
};
use tower_service::Service;

use crate::response::Responder;
use crate::{Error, IntoResponse};

/// The client's address (a request extension).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The server's local address (a request extension).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerAddr(pub SocketAddr);

/// The prefix the service is mounted under, `scope.root_path` (a request extension; empty at
/// the top).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootPath(pub String);

/// The app serving every HTTP request with `service`. See the [module documentation](self).
pub fn service<S>(service: S) -> TowerApp<S> {
    TowerApp { service }
}

/// A tower service as a ragi app; built by [`service`].
#[derive(Clone, Debug)]
pub struct TowerApp<S> {
    service: S,
}

impl<S, B> App for TowerApp<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<AppError> + Send,
    B: HttpBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<AppError> + Send,
{
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let service = self.service.clone();
        Box::pin(async move {
            match scope.kind {
                ScopeKind::Http | ScopeKind::Sse => serve(service, scope, receive, send).await,
                ScopeKind::WebSocket => {
                    let responder = Responder::new(&scope, send);
                    let denial = Error::new(
                        501,
                        "WebSocket sessions are not served through the tower adapter",
                    );
                    responder.complete(denial.into_response()).await
                }
                other => Err(UnsupportedScope(other).into()),
            }
        })
    }
}

async fn serve<S, B>(mut service: S, scope: Scope, receive: Receiver, send: Sender) -> AppResult
where
    S: Service<http::Request<RequestBody>, Response = http::Response<B>>,
    S::Error: Into<AppError>,
    B: HttpBody,
    B::Error: Into<AppError>,
{
    let responder = Responder::new(&scope, send);
    let connection = scope.connection().clone();
    let wants_trailers = scope
        .headers
        .get_all("te")
        .any(|v| has_token(v, b"trailers"));
    let request = match to_request(&scope, RequestBody::new(receive, &scope)) {
        Ok(r) => r,
        Err(e) => return responder.complete(e.into_response()).await,
    };
    drop(scope);
    let response = match std::future::poll_fn(|cx| service.poll_ready(cx)).await {
        Ok(()) => service.call(request).await,
        Err(e) => Err(e),
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            let e: AppError = e.into();
            return responder.complete(Error::internal(e).into_response()).await;
        }
    };
    if !connection.is_connected() {
        // Gone before the answer: the body is dropped unpolled.
        return Ok(());
    }
    let (parts, body) = response.into_parts();
    let announce = wants_trailers || parts.headers.contains_key(http::header::TRAILER);
    let mut headers = Headers::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        headers.push(
            Bytes::copy_from_slice(name.as_str().as_bytes()),
            Bytes::copy_from_slice(value.as_bytes()),
        );
    }
    let result = pump(
        &responder,
        &connection,
        parts.status,
        headers,
        announce,
        body,
    )
    .await;
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.is_disconnected() => Ok(()),
        Err(e) => {
            e.log();
            Err(e.into_app_error())
        }
    }
}

/// Sends the head, then the body's frames as they come, until the body ends, fails, or the
/// client leaves (then the body is dropped without another poll).
async fn pump<B>(
    responder: &Responder,
    connection: &Connection,
    status: http::StatusCode,
    headers: Headers,
    announce: bool,
    body: B,
) -> Result<(), Error>
where
    B: HttpBody,
    B::Error: Into<AppError>,
{
    let mut body = std::pin::pin!(body);
    let mut writer = responder.start(status.as_u16(), headers, announce).await?;
    if body.is_end_stream() {
        return writer.finish().await;
    }
    let mut trailers = None;
    loop {
        let frame = tokio::select! {
            biased;
            reason = connection.disconnected() => return Err(Error::disconnected(reason)),
            frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)) => frame,
        };
        let frame = match frame {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                let e: AppError = e.into();
                return Err(Error::internal(format!("the response body failed: {e}")));
            }
        };
        match frame.into_data() {
            Ok(mut data) => {
                let bytes = data.copy_to_bytes(data.remaining());
                if body.is_end_stream() && trailers.is_none() && !announce {
                    return writer.finish_with(bytes).await;
                }
                writer.write(bytes).await?;
            }
            Err(frame) => {
                if let Ok(map) = frame.into_trailers() {
                    let mut t = Headers::with_capacity(map.len());
                    for (name, value) in &map {
                        t.push(
                            Bytes::copy_from_slice(name.as_str().as_bytes()),
                            Bytes::copy_from_slice(value.as_bytes()),
                        );
                    }
                    trailers = Some(t);
                }
            }
        }
        if body.is_end_stream() {
            break;
        }
    }
    match trailers {
        Some(t) if announce => writer.finish_with_trailers(t).await,
        Some(_) => {
            tracing::debug!("response trailers dropped: the response did not announce them");
            writer.finish().await
        }
        None if announce => writer.finish_with_trailers(Headers::new()).await,
        None => writer.finish().await,
    }
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|t| {
        let t = t.split(|&b| b == b';').next().unwrap_or(&[]);
        t.trim_ascii().eq_ignore_ascii_case(token)
    })
}

/// The `http::Request` of a scope (the table in the module documentation).
fn to_request(scope: &Scope, body: RequestBody) -> Result<http::Request<RequestBody>, Error> {
    let mut target = Vec::with_capacity(scope.raw_path.len() + scope.query_string.len() + 1);
    target.extend_from_slice(&scope.raw_path);
    if target.first() != Some(&b'/') {
        target.insert(0, b'/');
    }
    if !scope.query_string.is_empty() {
        target.push(b'?');
        target.extend_from_slice(&scope.query_string);
    }
    let uri = http::Uri::from_maybe_shared(Bytes::from(target))
        .map_err(|_| Error::bad_request("the request target is not a valid URI"))?;
    let mut request = http::Request::new(body);
    *request.method_mut() = scope.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = match scope.http_version {
        HttpVersion::Http10 => http::Version::HTTP_10,
        HttpVersion::Http2 => http::Version::HTTP_2,
        _ => http::Version::HTTP_11,
    };
    let headers = request.headers_mut();
    headers.reserve(scope.headers.len());
    for (name, value) in scope.headers.iter() {
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_maybe_shared(value.clone()),
        ) else {
            return Err(Error::bad_request("a request header is not valid HTTP"));
        };
        headers.append(name, value);
    }
    let ext = request.extensions_mut();
    ext.insert(scope.connection().clone());
    if let Some(a) = scope.client {
        ext.insert(ClientAddr(a));
    }
    if let Some(a) = scope.server {
        ext.insert(ServerAddr(a));
    }
    ext.insert(RootPath(scope.root_path.clone()));
    ext.insert(scope.state.clone());
    ext.insert(scope.stash.clone());
    if let Some(tls) = &scope.extensions.tls {
        ext.insert(Arc::clone(tls));
    }
    Ok(request)
}

/// The request body handed to the service: the scope's `receive`, as an
/// [`http_body::Body`]. A client that leaves mid-body makes it fail with an error carrying the
/// reason (`ragi_tools::Error::disconnected` inside the boxed error; `?` into a
/// `ragi_tools::Error` gives it back).
pub struct RequestBody {
    receive: Receiver,
    done: bool,
    length: Option<u64>,
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody")
            .field("done", &self.done)
            .field("length", &self.length)
            .finish()
    }
}

impl RequestBody {
    fn new(receive: Receiver, scope: &Scope) -> Self {
        let length = scope
            .headers
            .get_str("content-length")
            .and_then(|v| v.trim().parse().ok());
        Self {
            receive,
            done: false,
            length,
        }
    }
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = AppError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, AppError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        loop {
            match self.receive.poll_receive(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(ReceiveEvent::Request { body, more }) => {
                    if !more {
                        self.done = true;
                    }
                    if body.is_empty() {
                        if more {
                            continue;
                        }
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(body))));
                }
                Poll::Ready(ReceiveEvent::Disconnect { reason }) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(Error::disconnected(reason).into_app_error())));
                }
                Poll::Ready(_) => continue,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.length == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) if !self.done => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_maps_to_a_request() {
        let mut scope = Scope::new(ScopeKind::Http);
        scope.method = http::Method::POST;
        scope.raw_path = Bytes::from_static(b"/a%2Fb/c");
        scope.query_string = Bytes::from_static(b"x=1&y=%20");
        scope.http_version = HttpVersion::Http2;
        scope.root_path = "/api".into();
        scope.client = Some("127.0.0.1:5000".parse().unwrap());
        scope.headers.push("x-a", "1");
        scope.headers.push("x-a", "2");
        scope.headers.push("content-length", "3");
        let body = RequestBody::new(Receiver::new(Never), &scope);
        assert_eq!(body.size_hint().exact(), Some(3));
        let req = to_request(&scope, body).unwrap();
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(req.uri(), "/a%2Fb/c?x=1&y=%20");
        assert_eq!(req.version(), http::Version::HTTP_2);
        let all: Vec<_> = req.headers().get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
        assert_eq!(req.extensions().get::<RootPath>().unwrap().0, "/api");
        assert_eq!(req.extensions().get::<ClientAddr>().unwrap().0.port(), 5000);
        assert!(req
            .extensions()
            .get::<Connection>()
            .unwrap()
            .ptr_eq(scope.connection()));

        scope.raw_path = Bytes::from_static(b"/bad path");
        assert_eq!(
            to_request(&scope, RequestBody::new(Receiver::new(Never), &scope))
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn te_trailers_is_found_among_tokens() {
        assert!(has_token(b"trailers", b"trailers"));
        assert!(has_token(b"gzip, Trailers", b"trailers"));
        assert!(has_token(b"trailers;q=1", b"trailers"));
        assert!(!has_token(b"gzip", b"trailers"));
    }

    struct Never;
    impl ReceiveSource for Never {
        fn poll_receive(&mut self, _cx: &mut TaskContext<'_>) -> Poll<ReceiveEvent> {
            Poll::Pending
        }
    }
}
