//! Reading the request body: whole (bytes, text, JSON, a urlencoded form) or piece by piece,
//! each with a limit.
//!
//! ```
//! use ragi_tools::prelude::*;
//! use ragi_tools::request::BodyLimits;
//!
//! #[derive(serde::Deserialize)]
//! struct NewUser { name: String }
//!
//! async fn create(mut cx: HttpContext) -> Result<Response, Error> {
//!     // 415 unless application/json (or +json), 413 over 1 MiB, 400 malformed, 422 wrong
//!     // shape, and the departed client's reason if it left before the body was whole.
//!     let user: NewUser = cx.json().await?;
//!     Ok(Response::json(&serde_json::json!({ "created": user.name })))
//! }
//!
//! async fn upload(mut cx: HttpContext) -> Result<Response, Error> {
//!     // Per call: a larger limit, and the body piece by piece as it arrives.
//!     let mut body = cx.body_stream().limit(64 << 20);
//!     let mut total = 0;
//!     while let Some(piece) = body.next().await {
//!         total += piece?.len();
//!     }
//!     Ok(Response::text(format!("{total} bytes")))
//! }
//!
//! // Per request: a middleware (or the handler itself) puts limits in the stash.
//! async fn big_json(mut cx: HttpContext) -> Result<Response, Error> {
//!     cx.stash().insert(BodyLimits { json: 8 << 20, ..BodyLimits::default() });
//!     let v: serde_json::Value = cx.json().await?;
//!     Ok(Response::json(&v))
//! }
//! # let _ = (create, upload, big_json);
//! ```
//!
//! # Limits
//!
//! | reader | default | content type | errors |
//! |---|---|---|---|
//! | [`bytes`](HttpContext::bytes) | 2 MiB | any | 413 |
//! | [`text`](HttpContext::text) | 2 MiB | any; its `charset` is honoured | 413, 400 (not in its charset), 415 (a charset we cannot decode) |
//! | [`json`](HttpContext::json) | 1 MiB | `application/json`, `application/*+json` | 415, 413, 400 (syntax), 422 (shape) |
//! | [`form`](HttpContext::form) | 1 MiB | `application/x-www-form-urlencoded` | 415, 413, 400 (not UTF-8), 422 (shape) |
//! | [`body_stream`](HttpContext::body_stream) | none (the server's limit) | any | 413 |
//!
//! A limit is chosen per call ([`HttpContext::body_limit`], [`BodyStream::limit`]), else per
//! request (a [`BodyLimits`] in the scope's stash, which a middleware can put there), else the
//! default above. A body over the limit is refused with 413 as soon as the limit is crossed;
//! a declared `Content-Length` over it is refused **before anything is read**, so a client that
//! sent `Expect: 100-continue` never gets `100 Continue` (the server sends it only when the app
//! first asks for the body). The content type is checked before the length, also before any
//! read.
//!
//! # A departed client
//!
//! A reader that finds the client gone — before the body, or between two pieces — returns
//! [`Error::disconnected`] with the reason, never a partial body. It consults the connection
//! object before each piece, so a client known to be gone is reported even when the server
//! still holds pieces it had buffered. After a reader consumed the body, [`HttpContext::receive`]
//! still yields the `Disconnect` event when the client later leaves.
//!
//! # Reading twice
//!
//! The whole-body readers keep the body they read: a second `bytes`/`text`/`json`/`form` call
//! (or a [`BodyStream`] or multipart reader after one) reads the kept copy, with its own
//! content-type and limit checks. A body consumed by a [`BodyStream`], a multipart reader or
//! [`HttpContext::receive`] is gone: reading it again is an error (500, a bug in the app).

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::{Bytes, BytesMut};
use ragi::{DisconnectReason, ReceiveEvent, ReceiveSource};
use serde::de::DeserializeOwned;

use crate::{Context, Error, HttpContext};

/// 2 MiB: the default limit of [`HttpContext::bytes`] and [`HttpContext::text`].
pub const DEFAULT_BYTES_LIMIT: u64 = 2 * 1024 * 1024;
/// 1 MiB: the default limit of [`HttpContext::json`] and [`HttpContext::form`].
pub const DEFAULT_JSON_LIMIT: u64 = 1024 * 1024;

/// The body limits of one request, in bytes. Put one in the scope's stash to change the
/// limits for this request (a middleware does it for a route or a group); a per-call limit
/// ([`HttpContext::body_limit`]) still wins.
///
/// ```
/// use ragi_tools::request::BodyLimits;
///
/// let limits = BodyLimits { json: 4 << 20, ..BodyLimits::default() };
/// assert_eq!(limits.form, 1 << 20);
/// assert_eq!(BodyLimits::all(100).stream, Some(100));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// [`HttpContext::bytes`] (default 2 MiB).
    pub bytes: u64,
    /// [`HttpContext::text`] (default 2 MiB).
    pub text: u64,
    /// [`HttpContext::json`] (default 1 MiB).
    pub json: u64,
    /// [`HttpContext::form`] (default 1 MiB).
    pub form: u64,
    /// [`HttpContext::body_stream`] (default none: only the server's own limit applies).
    pub stream: Option<u64>,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            bytes: DEFAULT_BYTES_LIMIT,
            text: DEFAULT_BYTES_LIMIT,
            json: DEFAULT_JSON_LIMIT,
            form: DEFAULT_JSON_LIMIT,
            stream: None,
        }
    }
}

impl BodyLimits {
    /// The same limit for every reader, the stream included.
    pub fn all(limit: u64) -> Self {
        Self {
            bytes: limit,
            text: limit,
            json: limit,
            form: limit,
            stream: Some(limit),
        }
    }
}

/// How much of the request body was consumed, what a whole-body reader kept, and a
/// `Disconnect` a reader took from the queue. Lives in the [`HttpContext`].
#[derive(Debug, Default)]
pub(crate) struct BodyState {
    progress: Progress,
    /// The body, kept by a whole-body reader.
    kept: Option<Bytes>,
    /// The client left: a reader saw it (the event or the connection object).
    gone: Option<DisconnectReason>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Progress {
    #[default]
    Unread,
    Reading,
    Done,
}

impl BodyState {
    /// Notes what `event` means for the body.
    pub(crate) fn observe(&mut self, event: &ReceiveEvent) {
        match event {
            ReceiveEvent::Request { more, .. } => {
                self.progress = if *more {
                    Progress::Reading
                } else {
                    Progress::Done
                };
            }
            ReceiveEvent::Disconnect { reason } => self.gone = Some(reason.clone()),
            _ => {}
        }
    }

    /// The `Disconnect` a reader took from the queue, which `receive()` gives again.
    pub(crate) fn taken_disconnect(&self) -> Option<ReceiveEvent> {
        self.gone
            .as_ref()
            .map(|r| ReceiveEvent::Disconnect { reason: r.clone() })
    }
}

fn consumed_error() -> Error {
    Error::internal(
        "the request body was already consumed (by a body stream, a multipart reader or receive())",
    )
}

/// Where a streaming reader takes its pieces from: the live queue, or the body a whole-body
/// reader kept.
#[derive(Debug)]
pub(crate) enum PieceSource {
    /// Not decided yet (nothing read).
    Start,
    /// The live receive queue.
    Live,
    /// The kept body, not yet yielded.
    Kept(Option<Bytes>),
    /// The last piece was yielded (or an error was).
    Done,
}

impl HttpContext {
    /// The value of the `content-length` header, when it is a number.
    pub(crate) fn declared_length(&self) -> Option<u64> {
        self.header("content-length")?.trim().parse().ok()
    }

    /// Refuses a body whose declared length is over `limit` (before any read).
    pub(crate) fn check_declared(&self, limit: u64) -> Result<(), Error> {
        match self.declared_length() {
            Some(n) if n > limit => Err(Error::body_too_large(limit)),
            _ => Ok(()),
        }
    }

    /// The request's [`BodyLimits`]: the stash's, or the defaults.
    pub(crate) fn body_limits(&self) -> BodyLimits {
        self.stash()
            .get::<BodyLimits>()
            .map(|l| *l)
            .unwrap_or_default()
    }

    /// Decides where a streaming reader reads from (before its first piece).
    pub(crate) fn piece_source(&self) -> Result<PieceSource, Error> {
        if let Some(kept) = &self.body.kept {
            return Ok(PieceSource::Kept(Some(kept.clone())));
        }
        if self.body.progress != Progress::Unread {
            return Err(consumed_error());
        }
        Ok(PieceSource::Live)
    }

    /// The next piece of the body and whether more follow, or the departed client's reason.
    /// Consults the connection object first: a client known to be gone is reported even when
    /// pieces are still queued.
    pub(crate) fn poll_piece(
        &mut self,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Result<(Bytes, bool), Error>> {
        if let Some(r) = &self.body.gone {
            return Poll::Ready(Err(Error::disconnected(r.clone())));
        }
        if let Some(r) = self.connection().disconnect_reason() {
            self.body.gone = Some(r.clone());
            return Poll::Ready(Err(Error::disconnected(r)));
        }
        let event = match ReceiveSource::poll_receive(self.receiver(), cx) {
            Poll::Ready(event) => event,
            Poll::Pending => return Poll::Pending,
        };
        self.body.observe(&event);
        Poll::Ready(match event {
            ReceiveEvent::Request { body, more } => Ok((body, more)),
            ReceiveEvent::Disconnect { reason } => Err(Error::disconnected(reason)),
            other => Err(Error::internal(format!(
                "unexpected {other:?} while reading a request body"
            ))),
        })
    }

    /// [`poll_piece`](Self::poll_piece) as a future.
    pub(crate) async fn next_piece(&mut self) -> Result<(Bytes, bool), Error> {
        std::future::poll_fn(|cx| self.poll_piece(cx)).await
    }

    /// Reads the whole body (or takes the kept one), at most `limit` bytes.
    async fn read_whole(&mut self, limit: u64) -> Result<Bytes, Error> {
        if let Some(kept) = &self.body.kept {
            if kept.len() as u64 > limit {
                return Err(Error::body_too_large(limit));
            }
            return Ok(kept.clone());
        }
        if self.body.progress != Progress::Unread {
            return Err(consumed_error());
        }
        self.check_declared(limit)?;
        let mut buf: Option<BytesMut> = None;
        loop {
            let (piece, more) = self.next_piece().await?;
            let have = buf.as_ref().map_or(0, |b| b.len());
            if (have + piece.len()) as u64 > limit {
                return Err(Error::body_too_large(limit));
            }
            let body = match (buf.take(), more) {
                // The usual case: the body in one piece, kept without a copy.
                (None, false) => piece,
                (Some(mut b), false) => {
                    b.extend_from_slice(&piece);
                    b.freeze()
                }
                (b, true) => {
                    let mut b = b.unwrap_or_else(|| {
                        let hint = self.declared_length().unwrap_or(0).min(limit);
                        BytesMut::with_capacity(hint.min(1 << 20) as usize)
                    });
                    b.extend_from_slice(&piece);
                    buf = Some(b);
                    continue;
                }
            };
            self.body.kept = Some(body.clone());
            return Ok(body);
        }
    }

    /// A reader with `limit` for this call, overriding the request's [`BodyLimits`]:
    /// `cx.body_limit(8 << 20).json::<T>().await`.
    pub fn body_limit(&mut self, limit: u64) -> BodyReader<'_> {
        BodyReader {
            cx: self,
            limit: Some(limit),
        }
    }

    /// The whole body (default limit 2 MiB). See the [module documentation](self).
    pub async fn bytes(&mut self) -> Result<Bytes, Error> {
        BodyReader::new(self).bytes().await
    }

    /// The whole body as text in its `charset` (UTF-8 when none is given; default limit
    /// 2 MiB). See the [module documentation](self).
    pub async fn text(&mut self) -> Result<String, Error> {
        BodyReader::new(self).text().await
    }

    /// The body as JSON, deserialised into `T` (default limit 1 MiB). See the
    /// [module documentation](self).
    pub async fn json<T: DeserializeOwned>(&mut self) -> Result<T, Error> {
        BodyReader::new(self).json().await
    }

    /// The body as an `application/x-www-form-urlencoded` form, deserialised into `T` with
    /// `serde_urlencoded`'s rules (default limit 1 MiB). See the [module documentation](self).
    pub async fn form<T: DeserializeOwned>(&mut self) -> Result<T, Error> {
        BodyReader::new(self).form().await
    }

    /// The body piece by piece as it arrives. See [`BodyStream`].
    pub fn body_stream(&mut self) -> BodyStream<'_> {
        let limit = self.body_limits().stream;
        BodyStream {
            cx: self,
            limit,
            read: 0,
            source: PieceSource::Start,
        }
    }
}

impl HttpContext {
    /// The scope and the two handles back, for a middleware that read the body and calls the
    /// next app: when a whole-body reader kept the body, the receiver yields it again (one
    /// final `Request` piece) and then what the client sends next (a later `Disconnect`);
    /// when the body is unread, it is the original receiver. A body consumed piece by piece
    /// cannot be given again: that is an error (500).
    ///
    /// ```
    /// use ragi_tools::prelude::*;
    ///
    /// async fn middleware(mut cx: HttpContext, inner: SharedApp) -> ragi::AppResult {
    ///     let v: serde_json::Value = cx.json().await.map_err(Error::into_app_error)?;
    ///     cx.stash().insert(v); // the parsed body, for the app
    ///     let (scope, receive, responder) = cx.into_parts_with_body().map_err(Error::into_app_error)?;
    ///     inner.call(scope, receive, responder.sender().clone()).await
    /// }
    /// # let _ = middleware;
    /// ```
    pub fn into_parts_with_body(
        self,
    ) -> Result<(ragi::Scope, ragi::Receiver, crate::Responder), Error> {
        let first = match (&self.body.gone, &self.body.kept, self.body.progress) {
            (Some(reason), _, _) => Some(ReceiveEvent::Disconnect {
                reason: reason.clone(),
            }),
            (None, Some(kept), _) => Some(ReceiveEvent::Request {
                body: kept.clone(),
                more: false,
            }),
            (None, None, Progress::Unread) => None,
            (None, None, _) => return Err(consumed_error()),
        };
        let (scope, receive, responder) = self.into_parts();
        let receive = match first {
            None => receive,
            Some(first) => ragi::Receiver::new(Replay {
                first: Some(first),
                inner: receive,
            }),
        };
        Ok((scope, receive, responder))
    }
}

/// A receiver that yields one event again before the rest.
struct Replay {
    first: Option<ReceiveEvent>,
    inner: ragi::Receiver,
}

impl ReceiveSource for Replay {
    fn poll_receive(&mut self, cx: &mut TaskContext<'_>) -> Poll<ReceiveEvent> {
        match self.first.take() {
            Some(event) => Poll::Ready(event),
            None => self.inner.poll_receive(cx),
        }
    }
}

/// The whole-body readers with a limit chosen for one call; made by
/// [`HttpContext::body_limit`].
#[derive(Debug)]
pub struct BodyReader<'a> {
    cx: &'a mut HttpContext,
    limit: Option<u64>,
}

impl<'a> BodyReader<'a> {
    fn new(cx: &'a mut HttpContext) -> Self {
        Self { cx, limit: None }
    }

    fn limit_or(&self, pick: impl FnOnce(BodyLimits) -> u64) -> u64 {
        self.limit.unwrap_or_else(|| pick(self.cx.body_limits()))
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes, Error> {
        let limit = self.limit_or(|l| l.bytes);
        self.cx.read_whole(limit).await
    }

    /// The whole body as text in its `charset`.
    pub async fn text(self) -> Result<String, Error> {
        let limit = self.limit_or(|l| l.text);
        let charset = self
            .cx
            .header("content-type")
            .and_then(|ct| media_type_param(ct, "charset"));
        let charset = Charset::from_label(charset.as_deref())?;
        let body = self.cx.read_whole(limit).await?;
        charset.decode(body)
    }

    /// The body as JSON, deserialised into `T`.
    pub async fn json<T: DeserializeOwned>(self) -> Result<T, Error> {
        let limit = self.limit_or(|l| l.json);
        if !self.cx.content_type().as_deref().is_some_and(is_json) {
            return Err(Error::unsupported_media_type("application/json"));
        }
        let body = self.cx.read_whole(limit).await?;
        serde_json::from_slice(&body).map_err(json_error)
    }

    /// The body as an `application/x-www-form-urlencoded` form, deserialised into `T`.
    pub async fn form<T: DeserializeOwned>(self) -> Result<T, Error> {
        let limit = self.limit_or(|l| l.form);
        if self.cx.content_type().as_deref() != Some("application/x-www-form-urlencoded") {
            return Err(Error::unsupported_media_type(
                "application/x-www-form-urlencoded",
            ));
        }
        let body = self.cx.read_whole(limit).await?;
        super::form::from_bytes(&body)
    }

    /// The body piece by piece, at most this call's limit in all.
    pub fn stream(self) -> BodyStream<'a> {
        let limit = self.limit;
        let mut s = self.cx.body_stream();
        s.limit = limit.or(s.limit);
        s
    }
}

/// Whether `media` (lower case, no parameters) is JSON: `application/json` or
/// `application/<anything>+json`.
pub(crate) fn is_json(media: &str) -> bool {
    match media.strip_prefix("application/") {
        Some(sub) => sub == "json" || (sub.ends_with("+json") && sub.len() > 5),
        None => false,
    }
}

/// A serde_json error as the status it means: a data error (the JSON is fine, its shape is
/// not what `T` wants) is 422; syntax, an early end or I/O is 400.
fn json_error(e: serde_json::Error) -> Error {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => Error::unprocessable(format!("invalid JSON body: {e}")),
        Category::Syntax | Category::Eof | Category::Io => {
            Error::malformed_body(format!("malformed JSON body: {e}"))
        }
    }
}

/// The value of parameter `name` of a `Content-Type`-like header value (quotes removed).
pub(crate) fn media_type_param(value: &str, name: &str) -> Option<String> {
    let mut rest = value.split_once(';')?.1;
    loop {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim();
        let after = after.trim_start();
        let (val, next) = if let Some(q) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            out.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => out.push(c),
                }
            }
            let next = q[end..].split_once(';').map(|(_, n)| n);
            (out, next)
        } else {
            match after.split_once(';') {
                Some((v, n)) => (v.trim().to_owned(), Some(n)),
                None => (after.trim().to_owned(), None),
            }
        };
        if key.eq_ignore_ascii_case(name) {
            return Some(val);
        }
        rest = next?;
    }
}

/// The charsets [`HttpContext::text`] decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Charset {
    Utf8,
    Ascii,
    Latin1,
}

impl Charset {
    fn from_label(label: Option<&str>) -> Result<Self, Error> {
        let Some(label) = label else {
            return Ok(Self::Utf8);
        };
        Ok(match label.trim().to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" | "unicode-1-1-utf-8" => Self::Utf8,
            "us-ascii" | "ascii" | "iso646-us" => Self::Ascii,
            "iso-8859-1" | "iso8859-1" | "iso_8859-1" | "latin1" | "latin-1" | "l1" => Self::Latin1,
            other => {
                return Err(Error::new(
                    415,
                    format!("unsupported charset {other:?} (utf-8, us-ascii and iso-8859-1 are)"),
                ))
            }
        })
    }

    fn decode(self, body: Bytes) -> Result<String, Error> {
        match self {
            Self::Utf8 => {
                let v = Vec::from(body);
                let v = match v.strip_prefix(b"\xEF\xBB\xBF") {
                    Some(rest) => rest.to_vec(),
                    None => v,
                };
                String::from_utf8(v).map_err(|e| {
                    Error::malformed_body(format!(
                        "request body is not valid UTF-8 (at byte {})",
                        e.utf8_error().valid_up_to()
                    ))
                })
            }
            Self::Ascii => match body.iter().position(|b| !b.is_ascii()) {
                Some(at) => Err(Error::malformed_body(format!(
                    "request body is not US-ASCII (at byte {at})"
                ))),
                None => Ok(String::from_utf8(Vec::from(body)).expect("ASCII is UTF-8")),
            },
            Self::Latin1 => Ok(body.iter().map(|&b| char::from(b)).collect()),
        }
    }
}

/// The request body piece by piece as it arrives; made by [`HttpContext::body_stream`].
///
/// Yields non-empty pieces, then `None` after the last. With a limit, a declared
/// `Content-Length` over it is refused before anything is read, and a body that crosses it
/// yields a 413 error; a departed client yields [`Error::disconnected`]. After an error the
/// stream ends. Use [`next`](Self::next) or the [`futures_core::Stream`] implementation.
///
/// ```
/// use ragi_tools::prelude::*;
///
/// async fn count(mut cx: HttpContext) -> Result<String, Error> {
///     let mut body = cx.body_stream().limit(10 << 20);
///     let (mut pieces, mut bytes) = (0, 0);
///     while let Some(piece) = body.next().await {
///         let piece = piece?; // 413, or the reason the client left
///         pieces += 1;
///         bytes += piece.len();
///     }
///     Ok(format!("{bytes} bytes in {pieces} pieces"))
/// }
/// # let _ = count;
/// ```
#[derive(Debug)]
pub struct BodyStream<'a> {
    cx: &'a mut HttpContext,
    limit: Option<u64>,
    read: u64,
    source: PieceSource,
}

impl BodyStream<'_> {
    /// At most `limit` bytes in all (overrides the request's [`BodyLimits::stream`]).
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The next piece; `None` after the last piece or an error.
    pub async fn next(&mut self) -> Option<Result<Bytes, Error>> {
        std::future::poll_fn(|cx| self.poll_piece(cx)).await
    }

    fn fail(&mut self, e: Error) -> Poll<Option<Result<Bytes, Error>>> {
        self.source = PieceSource::Done;
        Poll::Ready(Some(Err(e)))
    }

    fn count(&mut self, piece: &Bytes) -> Result<(), Error> {
        self.read += piece.len() as u64;
        match self.limit {
            Some(limit) if self.read > limit => Err(Error::body_too_large(limit)),
            _ => Ok(()),
        }
    }

    fn poll_piece(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        loop {
            match &mut self.source {
                PieceSource::Done => return Poll::Ready(None),
                PieceSource::Start => {
                    if let Some(limit) = self.limit {
                        if let Err(e) = self.cx.check_declared(limit) {
                            return self.fail(e);
                        }
                    }
                    match self.cx.piece_source() {
                        Ok(s) => self.source = s,
                        Err(e) => return self.fail(e),
                    }
                }
                PieceSource::Kept(kept) => {
                    let piece = kept.take();
                    self.source = PieceSource::Done;
                    match piece {
                        Some(p) if !p.is_empty() => {
                            if let Err(e) = self.count(&p) {
                                return self.fail(e);
                            }
                            return Poll::Ready(Some(Ok(p)));
                        }
                        _ => return Poll::Ready(None),
                    }
                }
                PieceSource::Live => {
                    let (piece, more) = match self.cx.poll_piece(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return self.fail(e),
                        Poll::Ready(Ok(p)) => p,
                    };
                    if let Err(e) = self.count(&piece) {
                        return self.fail(e);
                    }
                    if !more {
                        self.source = PieceSource::Done;
                    }
                    if !piece.is_empty() {
                        return Poll::Ready(Some(Ok(piece)));
                    }
                }
            }
        }
    }
}

impl futures_core::Stream for BodyStream<'_> {
    type Item = Result<Bytes, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_piece(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/problem+json"));
        assert!(is_json("application/vnd.api+json"));
        assert!(!is_json("application/+json"));
        assert!(!is_json("text/json"));
        assert!(!is_json("application/jsonx"));
        assert!(!is_json("text/plain"));
    }

    #[test]
    fn media_type_params() {
        let p = |v, n| media_type_param(v, n);
        assert_eq!(
            p("text/plain; charset=utf-8", "charset").as_deref(),
            Some("utf-8")
        );
        assert_eq!(
            p("text/plain;CHARSET=\"Latin1\"", "charset").as_deref(),
            Some("Latin1")
        );
        assert_eq!(
            p(
                "multipart/form-data; a=\"x;y\"; boundary=\"b\\\"q\"",
                "boundary"
            )
            .as_deref(),
            Some("b\"q")
        );
        assert_eq!(
            p("multipart/form-data; boundary=abc ; x=1", "boundary").as_deref(),
            Some("abc")
        );
        assert_eq!(p("text/plain", "charset"), None);
        assert_eq!(p("text/plain; charset", "charset"), None);
    }

    #[test]
    fn charsets() {
        let d = |label: Option<&str>, body: &'static [u8]| {
            Charset::from_label(label).and_then(|c| c.decode(Bytes::from_static(body)))
        };
        assert_eq!(d(None, "é".as_bytes()).unwrap(), "é");
        assert_eq!(d(Some("UTF-8"), b"\xEF\xBB\xBFhi").unwrap(), "hi");
        assert_eq!(d(None, b"\xFF").unwrap_err().status(), 400);
        assert_eq!(d(Some("iso-8859-1"), b"caf\xE9").unwrap(), "café");
        assert_eq!(d(Some("us-ascii"), b"ok").unwrap(), "ok");
        assert_eq!(d(Some("us-ascii"), b"caf\xE9").unwrap_err().status(), 400);
        assert_eq!(d(Some("shift_jis"), b"x").unwrap_err().status(), 415);
    }

    #[test]
    fn json_errors_by_category() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            a: u32,
        }
        let e = serde_json::from_slice::<T>(b"{\"a\":").unwrap_err();
        assert_eq!(json_error(e).status(), 400);
        let e = serde_json::from_slice::<T>(b"{\"a\" 1}").unwrap_err();
        assert_eq!(json_error(e).status(), 400);
        let e = serde_json::from_slice::<T>(b"{\"a\":\"x\"}").unwrap_err();
        assert_eq!(json_error(e).status(), 422);
        let e = serde_json::from_slice::<T>(b"\"x\"").unwrap_err();
        assert_eq!(json_error(e).status(), 422);
        let e = serde_json::from_slice::<T>(b"").unwrap_err();
        assert_eq!(json_error(e).status(), 400);
    }
}
