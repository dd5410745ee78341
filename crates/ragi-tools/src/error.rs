//! The toolkit's one error type: every helper's failure, rendered as the response it means.
//!
//! A handler returns `Result<impl IntoResponse, Error>`; `?` turns any error into an [`Error`]:
//!
//! ```
//! use ragi_tools::prelude::*;
//!
//! async fn show(cx: HttpContext) -> Result<Response, Error> {
//!     let id: u64 = cx.param_as("id")?;   // 404 when the path parameter does not parse
//!     let n: u32 = "7".parse()?;          // any std error: 500, logged, never shown to the client
//!     if id == 0 {
//!         return Err(Error::bad_request("id 0 is reserved")); // 400 {"error": "..."}
//!     }
//!     Ok(Response::json(&serde_json::json!({ "id": id, "n": n })))
//! }
//! # let _ = show;
//! ```
//!
//! An [`Error`] carries an HTTP status, a message meant for the client, optional headers (an
//! `Allow` for 405, a `WWW-Authenticate` for 401), the [`DisconnectReason`] when the failure is
//! that the client left, and the underlying cause. It renders as a response whose body is JSON
//! `{"error": "<message>"}` or plain text, chosen by the request's `Accept` (JSON unless the
//! client ranks `text/plain` or `text/html` above `application/json`). A 5xx error shows the
//! client only its status text; its cause goes to the log (`tracing`), never to the wire.
//!
//! Like `anyhow::Error`, this type does not implement `std::error::Error` itself: that is what
//! lets `?` convert every error into it. [`Error::into_app_error`] gives a boxed error when one
//! is needed.

use std::borrow::Cow;
use std::fmt;

use ragi::{DisconnectReason, Headers, SendError};

/// What kind of failure an [`Error`] is. Match on it; new kinds may be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The client is gone; the error carries the [`DisconnectReason`]. Nothing is sent.
    Disconnected,
    /// The request body is larger than the limit (413).
    BodyTooLarge,
    /// The request body's content type is not the one the reader expects (415).
    UnsupportedMediaType,
    /// The request body is not well-formed (400).
    MalformedBody,
    /// The request body is well-formed but has the wrong shape (422).
    UnprocessableBody,
    /// The request is wrong in some other way (400).
    BadRequest,
    /// No such resource (404).
    NotFound,
    /// The resource does not answer this method (405, with `Allow`).
    MethodNotAllowed,
    /// Something in the server or the app failed (500); the cause is logged, not shown.
    Internal,
    /// Any other status, made with [`Error::new`].
    Other,
}

/// A failure that renders as a response. See the [module documentation](self).
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    status: u16,
    message: Cow<'static, str>,
    headers: Headers,
    reason: Option<DisconnectReason>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// `Result<T, ragi_tools::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn make(kind: ErrorKind, status: u16, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                status,
                message: message.into(),
                headers: Headers::new(),
                reason: None,
                source: None,
            }),
        }
    }

    /// An error with any status and a message for the client.
    pub fn new(status: u16, message: impl Into<Cow<'static, str>>) -> Self {
        let kind = match status {
            400 => ErrorKind::BadRequest,
            404 => ErrorKind::NotFound,
            405 => ErrorKind::MethodNotAllowed,
            413 => ErrorKind::BodyTooLarge,
            415 => ErrorKind::UnsupportedMediaType,
            422 => ErrorKind::UnprocessableBody,
            500 => ErrorKind::Internal,
            _ => ErrorKind::Other,
        };
        Self::make(kind, status, message)
    }

    /// The client left (or the exchange was ended) for `reason`.
    pub fn disconnected(reason: DisconnectReason) -> Self {
        let mut e = Self::make(ErrorKind::Disconnected, 499, "the client is gone");
        e.inner.reason = Some(reason);
        e
    }

    /// 400 with `message`.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::make(ErrorKind::BadRequest, 400, message)
    }

    /// 404.
    pub fn not_found() -> Self {
        Self::make(ErrorKind::NotFound, 404, "not found")
    }

    /// 405 with `Allow: <allow>`.
    pub fn method_not_allowed(allow: &str) -> Self {
        Self::make(ErrorKind::MethodNotAllowed, 405, "method not allowed")
            .with_header("allow", allow.to_owned())
    }

    /// 413: the body is over `limit` bytes.
    pub fn body_too_large(limit: u64) -> Self {
        Self::make(
            ErrorKind::BodyTooLarge,
            413,
            format!("request body larger than {limit} bytes"),
        )
    }

    /// 415: the body should have been `expected`.
    pub fn unsupported_media_type(expected: &str) -> Self {
        Self::make(
            ErrorKind::UnsupportedMediaType,
            415,
            format!("expected a request body of type {expected}"),
        )
    }

    /// 400: the body is not well-formed.
    pub fn malformed_body(message: impl Into<Cow<'static, str>>) -> Self {
        Self::make(ErrorKind::MalformedBody, 400, message)
    }

    /// 422: the body is well-formed but does not have the expected shape.
    pub fn unprocessable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::make(ErrorKind::UnprocessableBody, 422, message)
    }

    /// 500 caused by `source` (logged when rendered, never sent to the client).
    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        let mut e = Self::make(ErrorKind::Internal, 500, "Internal Server Error");
        e.inner.source = Some(source.into());
        e
    }

    /// The same error with a response header added (e.g. `WWW-Authenticate`, `Retry-After`).
    pub fn with_header(
        mut self,
        name: impl Into<bytes::Bytes>,
        value: impl Into<bytes::Bytes>,
    ) -> Self {
        self.inner.headers.push(name, value);
        self
    }

    /// The same error with `source` recorded as its cause.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The HTTP status this error renders with (499 for a departed client: nothing is sent).
    pub fn status(&self) -> u16 {
        self.inner.status
    }

    /// The message meant for the client.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Headers the response carries.
    pub fn headers(&self) -> &Headers {
        &self.inner.headers
    }

    /// Whether the failure is that the client left.
    pub fn is_disconnected(&self) -> bool {
        self.inner.kind == ErrorKind::Disconnected
    }

    /// Why the client left, when that is the failure.
    pub fn disconnect_reason(&self) -> Option<&DisconnectReason> {
        self.inner.reason.as_ref()
    }

    /// The underlying cause, if any.
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.inner.source.as_deref()
    }

    /// The error an app call returned, as an [`Error`]: one made by
    /// [`into_app_error`](Self::into_app_error) comes back as it was, a [`SendError`] for a
    /// departed client becomes [`Error::disconnected`], anything else an internal error (500)
    /// with it as the cause.
    pub fn from_app_error(e: ragi::AppError) -> Error {
        match e.downcast::<SendError>() {
            Ok(send) => match send.disconnect_reason() {
                Some(r) => Error::disconnected(r.clone()),
                None => Error::internal(send),
            },
            Err(other) => match other.downcast::<AppFailure>() {
                Ok(failure) => failure.0,
                Err(other) => Error::internal(other),
            },
        }
    }

    /// This error as a boxed `std::error::Error` (for an app's [`ragi::AppResult`]).
    pub fn into_app_error(self) -> ragi::AppError {
        Box::new(AppFailure(self))
    }

    pub(crate) fn into_parts(self) -> (u16, Cow<'static, str>, Headers) {
        let Inner {
            status,
            message,
            headers,
            ..
        } = *self.inner;
        (status, message, headers)
    }

    /// Logs a server-side failure once (5xx with a cause); client errors are not logged.
    pub(crate) fn log(&self) {
        if self.inner.status >= 500 {
            match &self.inner.source {
                Some(src) => {
                    tracing::error!(status = self.inner.status, error = %src, "request failed")
                }
                None => {
                    tracing::error!(status = self.inner.status, message = %self.inner.message, "request failed")
                }
            }
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("status", &self.inner.status)
            .field("message", &self.inner.message);
        if let Some(r) = &self.inner.reason {
            d.field("reason", r);
        }
        if let Some(s) = &self.inner.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.inner.reason, &self.inner.source) {
            (Some(r), _) => write!(f, "the client is gone ({r})"),
            (None, Some(s)) => write!(f, "{} ({s})", self.inner.message),
            (None, None) => write!(f, "{} ({})", self.inner.message, self.inner.status),
        }
    }
}

impl<E> From<E> for Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(e: E) -> Self {
        // Errors of the interface keep their meaning.
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
        match boxed.downcast::<SendError>() {
            Ok(send) => match send.disconnect_reason() {
                Some(r) => Error::disconnected(r.clone()),
                None => Error::internal(send),
            },
            Err(other) => match other.downcast::<AppFailure>() {
                Ok(failure) => failure.0,
                Err(other) => match other.downcast::<crate::channels::ChannelError>() {
                    Ok(channel) => crate::channels::into_error(*channel),
                    Err(other) => Error::internal(other),
                },
            },
        }
    }
}

/// An [`Error`] as a `std::error::Error`, for [`ragi::AppResult`].
struct AppFailure(Error);

impl fmt::Debug for AppFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for AppFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for AppFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_error_becomes_a_500_with_its_cause() {
        let e: Error = "x".parse::<u32>().unwrap_err().into();
        assert_eq!(e.status(), 500);
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(e.message(), "Internal Server Error");
        assert!(e.source().is_some());
    }

    #[test]
    fn a_send_error_keeps_the_disconnect_reason() {
        let e: Error = SendError::disconnected(DisconnectReason::ClientClosed).into();
        assert!(e.is_disconnected());
        assert_eq!(e.disconnect_reason(), Some(&DisconnectReason::ClientClosed));
    }

    #[test]
    fn an_error_survives_a_trip_through_the_app_error() {
        let e = Error::body_too_large(10).into_app_error();
        let back = match e.downcast::<AppFailure>() {
            Ok(f) => f.0,
            Err(_) => panic!("not an AppFailure"),
        };
        assert_eq!(back.status(), 413);
    }
}
