//! Responses: build one as a value, return it from a handler, and the toolkit sends it.
//!
//! ```
//! use ragi_tools::{HttpContext, IntoResponse, Json, Response};
//!
//! async fn hello(_cx: HttpContext) -> &'static str {
//!     "Hello, World!" // 200 text/plain; charset=utf-8
//! }
//!
//! async fn user(_cx: HttpContext) -> Response {
//!     Response::json(&serde_json::json!({ "id": 7 }))
//!         .header("cache-control", "no-store")
//! }
//!
//! async fn created(_cx: HttpContext) -> impl IntoResponse {
//!     (201, Json(serde_json::json!({ "ok": true })))
//! }
//!
//! async fn tokens(_cx: HttpContext) -> Response {
//!     // A streaming body: `write` fails with the disconnect reason once the client is gone,
//!     // so the generation stops there.
//!     Response::stream(200, |mut w| async move {
//!         for i in 0..3 {
//!             w.write(format!("token {i}\n")).await?;
//!         }
//!         Ok(())
//!     })
//!     .content_type("text/plain; charset=utf-8")
//! }
//! # let _ = (hello, user, created, tokens);
//! ```
//!
//! A [`Response`] is status, headers and a body: bytes, a file region, a stream of pieces, or a
//! writer function that produces the pieces. Cookies go out with [`Response::cookie`] and a
//! [`SetCookie`] ([`cookie`]); a file with [`send_file`] or [`FileResponse`] ([`file`](mod@file)),
//! which build on [`conditional`] (entity tags, RFC 9110 preconditions) and [`range`] (Range
//! and `multipart/byteranges`), public for other responders to reuse. [`IntoResponse`] turns handler return values
//! (`&str`, `String`, [`Json`], [`Html`], `(status, body)`, `Result<T, E>`, [`Error`](crate::Error),
//! `()`) into one. The [`Responder`] sends it in the way the scope needs: response events on an
//! `http` scope, the decline pair on an `sse` scope (an HTTP route answering a request that also
//! accepts an event stream), the denial pair before a WebSocket accept.

pub mod conditional;
pub mod cookie;
pub mod file;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod range;
mod send;

use std::borrow::Cow;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use bytes::Bytes;
use ragi::{BoxFuture, Headers};

pub use cookie::{SameSite, SetCookie};
pub use file::{send_file, FileResponse};
pub use send::{BodyWriter, Responder};

use crate::Error;

/// A stream of body pieces.
pub type BodyStream = Pin<Box<dyn futures_core::Stream<Item = Result<Bytes, Error>> + Send>>;

type WriterFn = Box<dyn FnOnce(BodyWriter) -> BoxFuture<'static, Result<(), Error>> + Send>;

/// A response: status, headers and body. See the [module documentation](self).
pub struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Headers,
    pub(crate) body: ResponseBody,
    pub(crate) trailers: Option<Headers>,
}

/// What a [`Response`] carries after its head.
pub(crate) enum ResponseBody {
    /// No body (an empty final piece).
    Empty,
    /// What `()` returns: a 200 with no body if the handler did not answer itself, nothing if
    /// it did.
    Default,
    /// Bytes in memory.
    Bytes(Bytes),
    /// An error message, rendered as JSON or text by the request's `Accept` when sent.
    Problem(Cow<'static, str>),
    /// A region of a file.
    File {
        path: PathBuf,
        offset: u64,
        length: Option<u64>,
    },
    /// Several pieces in order (e.g. a `multipart/byteranges` body: literal parts and file
    /// regions).
    Pieces(Vec<ragi::Body>),
    /// Pieces from a stream.
    Stream(BodyStream),
    /// Pieces from a writer function.
    Writer(WriterFn),
}

impl Response {
    /// A response with `status`, no headers and no body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Headers::new(),
            body: ResponseBody::Empty,
            trailers: None,
        }
    }

    /// 200 with `text` as `text/plain; charset=utf-8`.
    pub fn text(text: impl Into<String>) -> Self {
        Self::new(200)
            .content_type("text/plain; charset=utf-8")
            .body(text.into())
    }

    /// 200 with `html` as `text/html; charset=utf-8`.
    pub fn html(html: impl Into<String>) -> Self {
        Self::new(200)
            .content_type("text/html; charset=utf-8")
            .body(html.into())
    }

    /// 200 with `value` serialised as `application/json` (a serialisation failure is a 500).
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(v) => Self::new(200).content_type("application/json").body(v),
            Err(e) => Error::internal(e).into_response(),
        }
    }

    /// `status` with no body.
    pub fn empty(status: u16) -> Self {
        Self::new(status)
    }

    /// 204 No Content.
    pub fn no_content() -> Self {
        Self::new(204)
    }

    /// A redirect with `status` (301, 302, 303, 307 or 308) to `location`.
    pub fn redirect_with(status: u16, location: impl Into<Bytes>) -> Self {
        Self::new(status).header("location", location)
    }

    /// 302 Found to `location`.
    pub fn redirect(location: impl Into<Bytes>) -> Self {
        Self::redirect_with(302, location)
    }

    /// 303 See Other to `location` (after a POST: the client follows with GET).
    pub fn see_other(location: impl Into<Bytes>) -> Self {
        Self::redirect_with(303, location)
    }

    /// 307 Temporary Redirect to `location` (the method and body are kept).
    pub fn temporary_redirect(location: impl Into<Bytes>) -> Self {
        Self::redirect_with(307, location)
    }

    /// 308 Permanent Redirect to `location` (the method and body are kept).
    pub fn permanent_redirect(location: impl Into<Bytes>) -> Self {
        Self::redirect_with(308, location)
    }

    /// A streaming response: `f` gets a [`BodyWriter`] once the head is sent and writes the
    /// body piece by piece. `write` fails with the disconnect reason once the client is gone.
    /// Returning `Ok` ends the body; returning an error after the head was sent aborts the
    /// response (HTTP/1.1: the connection closes without the last chunk; HTTP/2: the stream is
    /// reset), unless the error is the client's departure.
    pub fn stream<F, Fut>(status: u16, f: F) -> Self
    where
        F: FnOnce(BodyWriter) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        let mut r = Self::new(status);
        r.body = ResponseBody::Writer(Box::new(move |w| Box::pin(f(w))));
        r
    }

    /// A streaming response whose pieces come from `stream`. An `Err` item aborts the response.
    pub fn from_stream<S>(status: u16, stream: S) -> Self
    where
        S: futures_core::Stream<Item = Result<Bytes, Error>> + Send + 'static,
    {
        let mut r = Self::new(status);
        r.body = ResponseBody::Stream(Box::pin(stream));
        r
    }

    /// `length` bytes (to the end when `None`) of the file at `path` from `offset`, sent by the
    /// server from the file (no copy through the app). No header is added: for `Content-Type`,
    /// validators, ranges and preconditions use [`send_file`] or [`FileResponse`].
    pub fn file_region(
        status: u16,
        path: impl Into<PathBuf>,
        offset: u64,
        length: Option<u64>,
    ) -> Self {
        let mut r = Self::new(status);
        r.body = ResponseBody::File {
            path: path.into(),
            offset,
            length,
        };
        r
    }

    /// A body made of several pieces in order (bytes and file regions).
    pub fn pieces(status: u16, pieces: Vec<ragi::Body>) -> Self {
        let mut r = Self::new(status);
        r.body = ResponseBody::Pieces(pieces);
        r
    }

    /// Adds a header (duplicates are kept).
    pub fn header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.headers.push(name, value);
        self
    }

    /// Sets a header, replacing every field of that name.
    pub fn set_header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.headers.set(name, value);
        self
    }

    /// Sets `content-type`.
    pub fn content_type(self, value: impl Into<Bytes>) -> Self {
        self.set_header("content-type", value)
    }

    /// Replaces the body with `body` (bytes in memory).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = ResponseBody::Bytes(body.into());
        self
    }

    /// Replaces the status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Sends `trailers` after the body (announced in the head; HTTP/1.1 chunked framing and
    /// HTTP/2 carry them; a decline or denial response drops them).
    pub fn trailers(mut self, trailers: Headers) -> Self {
        self.trailers = Some(trailers);
        self
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The headers, to change them (middleware).
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The body when it is bytes in memory (empty for an empty body); `None` for a file,
    /// stream or writer body.
    pub fn body_bytes(&self) -> Option<Bytes> {
        match &self.body {
            ResponseBody::Empty | ResponseBody::Default => Some(Bytes::new()),
            ResponseBody::Bytes(b) => Some(b.clone()),
            ResponseBody::Problem(m) => Some(Bytes::from(m.to_string())),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = match &self.body {
            ResponseBody::Empty => "empty",
            ResponseBody::Default => "default",
            ResponseBody::Bytes(_) => "bytes",
            ResponseBody::Problem(_) => "problem",
            ResponseBody::File { .. } => "file",
            ResponseBody::Pieces(_) => "pieces",
            ResponseBody::Stream(_) => "stream",
            ResponseBody::Writer(_) => "writer",
        };
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &body)
            .finish()
    }
}

/// Anything a handler can return. See the [module documentation](self).
pub trait IntoResponse {
    /// The response.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

/// A 200 with no body, unless the handler answered itself (through [`HttpContext::respond`]
/// or a [`BodyWriter`]): then nothing more.
///
/// [`HttpContext::respond`]: crate::HttpContext::respond
impl IntoResponse for () {
    fn into_response(self) -> Response {
        let mut r = Response::new(200);
        r.body = ResponseBody::Default;
        r
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for Cow<'static, str> {
    fn into_response(self) -> Response {
        Response::text(self.into_owned())
    }
}

impl IntoResponse for Bytes {
    fn into_response(self) -> Response {
        Response::new(200)
            .content_type("application/octet-stream")
            .body(self)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        Bytes::from(self).into_response()
    }
}

impl IntoResponse for http::StatusCode {
    fn into_response(self) -> Response {
        Response::new(self.as_u16())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, message, headers) = self.into_parts();
        let mut r = Response::new(status);
        r.headers = headers;
        r.body = ResponseBody::Problem(message);
        r
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(t) => t.into_response(),
            Err(e) => e.into_response(),
        }
    }
}

/// `None` is a 404.
impl<T: IntoResponse> IntoResponse for Option<T> {
    fn into_response(self) -> Response {
        match self {
            Some(t) => t.into_response(),
            None => Error::not_found().into_response(),
        }
    }
}

impl<T: IntoResponse> IntoResponse for (u16, T) {
    fn into_response(self) -> Response {
        self.1.into_response().with_status(self.0)
    }
}

impl<T: IntoResponse> IntoResponse for (http::StatusCode, T) {
    fn into_response(self) -> Response {
        self.1.into_response().with_status(self.0.as_u16())
    }
}

/// `(status, headers, body)`: the headers are added to the body's.
impl<T: IntoResponse> IntoResponse for (u16, Headers, T) {
    fn into_response(self) -> Response {
        let mut r = self.2.into_response().with_status(self.0);
        for (n, v) in self.1 {
            r.headers.set(n, v);
        }
        r
    }
}

/// A JSON response body (`application/json`): `Json(value)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        Response::json(&self.0)
    }
}

/// An HTML response body (`text/html; charset=utf-8`): `Html(text)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Html<T>(pub T);

impl<T: Into<String>> IntoResponse for Html<T> {
    fn into_response(self) -> Response {
        Response::html(self.0)
    }
}

/// Whether the client prefers a plain-text error to JSON: its `Accept` ranks `text/plain` or
/// `text/html` above `application/json` (JSON wins ties and when there is no `Accept`).
pub(crate) fn prefers_text(accept: Option<&[u8]>) -> bool {
    let Some(accept) = accept.and_then(|a| std::str::from_utf8(a).ok()) else {
        return false;
    };
    let mut json = 0.0f32;
    let mut text = 0.0f32;
    for part in accept.split(',') {
        let mut params = part.split(';');
        let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = params
            .filter_map(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .and_then(|v| v.trim().parse::<f32>().ok())
            })
            .next()
            .unwrap_or(1.0);
        match media.as_str() {
            "application/json" | "application/*" => json = json.max(q),
            "text/plain" | "text/html" | "text/*" => text = text.max(q),
            "*/*" => {
                json = json.max(q * 0.999);
                text = text.max(q * 0.99);
            }
            _ => {}
        }
    }
    text > json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_json_unless_text_is_preferred() {
        assert!(!prefers_text(None));
        assert!(!prefers_text(Some(b"*/*")));
        assert!(!prefers_text(Some(b"application/json, text/plain")));
        assert!(prefers_text(Some(b"text/plain")));
        assert!(prefers_text(Some(
            b"text/html,application/xhtml+xml,*/*;q=0.8"
        )));
        assert!(!prefers_text(Some(b"text/plain;q=0.5, application/json")));
    }

    #[test]
    fn builders_set_status_type_and_body() {
        let ct = |r: &Response| r.headers().get_str("content-type").map(str::to_owned);
        let r = Response::text("hi");
        assert_eq!(
            (r.status(), ct(&r).as_deref()),
            (200, Some("text/plain; charset=utf-8"))
        );
        assert_eq!(r.body_bytes().unwrap(), "hi");
        let r = Response::html("<p>");
        assert_eq!(ct(&r).as_deref(), Some("text/html; charset=utf-8"));
        let r = Response::json(&serde_json::json!({"a": [1, 2]}));
        assert_eq!(ct(&r).as_deref(), Some("application/json"));
        assert_eq!(r.body_bytes().unwrap(), r#"{"a":[1,2]}"#);
        // A value that cannot be serialised is a 500, not a panic.
        let bad = std::collections::HashMap::from([((1, 2), 3)]);
        assert_eq!(Response::json(&bad).status(), 500);
        for r in [
            Response::empty(202),
            Response::no_content(),
            Response::new(418),
        ] {
            assert!(r.headers().is_empty());
            assert_eq!(r.body_bytes().unwrap(), "");
        }
        assert_eq!(Response::no_content().status(), 204);
        let r = Response::text("x")
            .header("x-a", "1")
            .header("x-a", "2")
            .set_header("X-B", "1")
            .set_header("x-b", "2")
            .content_type("text/csv")
            .with_status(201);
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers().get_all("x-a").count(), 2);
        assert_eq!(r.headers().get_all("x-b").collect::<Vec<_>>(), ["2"]);
        assert_eq!(ct(&r).as_deref(), Some("text/csv"));
    }

    #[test]
    fn redirects() {
        for (r, status) in [
            (Response::redirect("/a"), 302),
            (Response::see_other("/a"), 303),
            (Response::temporary_redirect("/a"), 307),
            (Response::permanent_redirect("/a"), 308),
            (Response::redirect_with(301, "/a"), 301),
        ] {
            assert_eq!(r.status(), status);
            assert_eq!(r.headers().get("location").unwrap(), "/a");
            assert_eq!(r.body_bytes().unwrap(), "");
        }
    }

    #[test]
    fn tuples_set_the_status() {
        let r = (201, "made").into_response();
        assert_eq!(r.status(), 201);
        assert_eq!(r.body_bytes().unwrap(), "made");
        let r = (http::StatusCode::ACCEPTED, Json(1)).into_response();
        assert_eq!(r.status(), 202);
        assert_eq!(
            r.headers().get_str("content-type"),
            Some("application/json")
        );
    }
}
