//! HTTP requests: the builder, the buffered [`TestResponse`] and the [`ResponseStream`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ragi::{
    Connection, DisconnectReason, Headers, HttpVersion, Receiver, ScopeKind, SendEvent, Sender,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

use super::body::{BodySpec, Multipart, Step};
use super::disconnect::{Disconnect, DisconnectHandle, Leave};
use super::exchange::{ClientEvent, End, Exchange, ExchangeSpec, Sink};
use super::record::{AppOutcome, Sent, Violation};
use super::sse::SseStream;
use super::{TestClient, TestError, TestTransport};

/// What a response can tell of the exchange behind it (HTTP, SSE, or a WebSocket denial).
pub(crate) trait ExchangeView: Send + Sync {
    fn sent(&self) -> Vec<Sent>;
    fn app_outcome(&self) -> AppOutcome;
    fn wait_app(&self, timeout: Duration) -> ragi::BoxFuture<'_, AppOutcome>;
}

impl ExchangeView for Exchange {
    fn sent(&self) -> Vec<Sent> {
        self.with_log(|l| l.sent.clone())
    }

    fn app_outcome(&self) -> AppOutcome {
        Exchange::app_outcome(self)
    }

    fn wait_app(&self, timeout: Duration) -> ragi::BoxFuture<'_, AppOutcome> {
        Box::pin(Exchange::wait_app(self, timeout))
    }
}

/// A request being built: [`TestClient::get`] and friends. Send it with
/// [`send`](Self::send) (the whole response) or [`stream`](Self::stream) (piece by piece).
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder {
    client: TestClient,
    method: http::Method,
    target: String,
    query: Vec<(String, String)>,
    headers: Headers,
    body: BodySpec,
    kind: Option<ScopeKind>,
    version: Option<HttpVersion>,
    leave_at: Option<(Disconnect, DisconnectReason)>,
    handle: DisconnectHandle,
    transport: Option<TestTransport>,
    timeout: Option<Duration>,
}

impl fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("target", &self.target)
            .field("query", &self.query)
            .field("headers", &self.headers)
            .field("kind", &self.kind)
            .field("disconnect", &self.leave_at)
            .finish_non_exhaustive()
    }
}

/// Splits a request target into the raw path and the query (a fragment is dropped).
pub(crate) fn split_target(target: &str) -> (String, String) {
    let target = target.split('#').next().unwrap_or("");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    (path, query.to_owned())
}

/// Appends urlencoded pairs to a query string.
pub(crate) fn append_query(query: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return query.to_owned();
    }
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    let extra = ser.finish();
    if query.is_empty() {
        extra
    } else {
        format!("{query}&{extra}")
    }
}

/// Whether `accept` lists `text/event-stream` with a q-value above zero: the server's rule
/// for making an `sse` scope.
pub(crate) fn wants_event_stream(headers: &Headers) -> bool {
    let zero_q = |param: &[u8]| {
        let param = param.trim_ascii();
        let Some(value) = param
            .strip_prefix(b"q=")
            .or_else(|| param.strip_prefix(b"Q="))
        else {
            return false;
        };
        match value.trim_ascii() {
            [b'0'] => true,
            [b'0', b'.', rest @ ..] => rest.len() <= 3 && rest.iter().all(|&b| b == b'0'),
            _ => false,
        }
    };
    headers.get_all("accept").any(|v| {
        v.split(|&b| b == b',').any(|part| {
            let mut params = part.split(|&b| b == b';');
            let media = params.next().unwrap_or(&[]);
            media
                .trim_ascii()
                .eq_ignore_ascii_case(b"text/event-stream")
                && !params.any(zero_q)
        })
    })
}

impl RequestBuilder {
    pub(crate) fn new(client: TestClient, method: http::Method, target: &str) -> Self {
        Self {
            client,
            method,
            target: target.to_owned(),
            query: Vec::new(),
            headers: Headers::new(),
            body: BodySpec::Empty,
            kind: None,
            version: None,
            leave_at: None,
            handle: DisconnectHandle::default(),
            transport: None,
            timeout: None,
        }
    }

    /// Adds a request header. A header named like one of the client's defaults replaces the
    /// defaults of that name.
    pub fn header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        let name: Bytes = name.into();
        self.headers
            .push(Bytes::from(name.to_ascii_lowercase()), value.into());
        self
    }

    /// Appends `key=value` (urlencoded) to the query, after any query in the path.
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// A body in one piece, with its `content-length`.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = BodySpec::Full(body.into());
        self
    }

    /// A JSON body (`content-type: application/json` unless set).
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Self {
        let body = serde_json::to_vec(value).expect("the value serializes to JSON");
        self.default_header("content-type", "application/json")
            .body(body)
    }

    /// A urlencoded form body (`content-type: application/x-www-form-urlencoded` unless set).
    pub fn form<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            ser.append_pair(k.as_ref(), v.as_ref());
        }
        self.default_header("content-type", "application/x-www-form-urlencoded")
            .body(ser.finish())
    }

    /// A `multipart/form-data` body (its `content-type` with the boundary unless set).
    pub fn multipart(self, form: Multipart) -> Self {
        let ct = form.content_type();
        self.default_header("content-type", ct)
            .body(form.to_bytes())
    }

    /// Appends a chunk to a chunked body (`transfer-encoding: chunked`): each chunk reaches
    /// the app as one `Request` piece. Calling it after [`body`](Self::body) makes that body
    /// the first chunk.
    pub fn chunk(mut self, chunk: impl Into<Bytes>) -> Self {
        self.body.push_step(Step::Chunk(chunk.into()));
        self
    }

    /// Appends chunks (no pause between them).
    pub fn chunks<I, B>(mut self, chunks: I) -> Self
    where
        I: IntoIterator<Item = B>,
        B: Into<Bytes>,
    {
        for c in chunks {
            self.body.push_step(Step::Chunk(c.into()));
        }
        self
    }

    /// Appends chunks with a pause of `delay` before each but the first (tokio's clock).
    pub fn chunks_with_delay<I, B>(mut self, chunks: I, delay: Duration) -> Self
    where
        I: IntoIterator<Item = B>,
        B: Into<Bytes>,
    {
        for (i, c) in chunks.into_iter().enumerate() {
            if i > 0 {
                self.body.push_step(Step::Pause(delay));
            }
            self.body.push_step(Step::Chunk(c.into()));
        }
        self
    }

    /// Appends a pause to a chunked body: the client sends nothing for `delay` (tokio's
    /// clock). A pause at the end delays the body's end.
    pub fn pause(mut self, delay: Duration) -> Self {
        self.body.push_step(Step::Pause(delay));
        self
    }

    /// The scope kind. By default the server's rule: `sse` when `accept` lists
    /// `text/event-stream` (q > 0), else `http`.
    pub fn kind(mut self, kind: ScopeKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// The HTTP version of this request (the client's by default).
    pub fn http_version(mut self, version: HttpVersion) -> Self {
        self.version = Some(version);
        self
    }

    /// Makes the client leave at `at` with `reason`. See [`Disconnect`].
    pub fn disconnect(mut self, at: Disconnect, reason: DisconnectReason) -> Self {
        self.leave_at = Some((at, reason));
        self
    }

    /// A handle that makes the client of this request leave when you call it.
    pub fn disconnect_handle(&self) -> DisconnectHandle {
        self.handle.clone()
    }

    /// The `transport` extension the app sees (by default one with nothing buffered).
    pub fn transport(mut self, transport: TestTransport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// How long [`send`](Self::send) and the stream's reads wait (the client's by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn default_header(mut self, name: &'static str, value: impl Into<Bytes>) -> Self {
        if !self.headers.contains(name) {
            self.headers.push(name, value.into());
        }
        self
    }

    /// Sends the request and reads the whole response.
    ///
    /// Returns once the response is complete, was aborted, or the client left (a scripted
    /// disconnect); the app may still be running then ([`TestResponse::wait_app`]).
    ///
    /// # Panics
    ///
    /// When the response does not end within the timeout, with what the app sent so far (for
    /// an endless response, use [`stream`](Self::stream)).
    pub async fn send(self) -> TestResponse {
        self.stream().await.collect().await
    }

    /// Sends the request and returns once the response head reaches the client (or the
    /// client left before it did: then [`ResponseStream::status`] is 0); the body is read
    /// piece by piece as the app sends it. Dropping the stream before the response ended
    /// makes the client leave (`client_closed`).
    ///
    /// # Panics
    ///
    /// When no head comes within the timeout, with what the app sent so far.
    pub async fn stream(self) -> ResponseStream {
        let client = self.client.clone();
        let timeout = self.timeout.unwrap_or(client.cfg.timeout);
        let (raw_path, query) = split_target(&self.target);
        let query = append_query(&query, &self.query);
        let what = if query.is_empty() {
            format!("{} {raw_path}", self.method)
        } else {
            format!("{} {raw_path}?{query}", self.method)
        };
        let mut extra = self.headers;
        match self.body.length() {
            Some(n) if !extra.contains("content-length") => {
                extra.push("content-length", n.to_string())
            }
            _ => {}
        }
        if matches!(self.body, BodySpec::Script(_)) && !extra.contains("transfer-encoding") {
            extra.push("transfer-encoding", "chunked");
        }
        let secure = client.cfg.https;
        let headers = client.request_headers(extra, &raw_path, secure);
        let kind = self.kind.unwrap_or(if wants_event_stream(&headers) {
            ScopeKind::Sse
        } else {
            ScopeKind::Http
        });
        let version = self.version.unwrap_or(client.cfg.version);
        let (ex, connection, rx) = Exchange::new(ExchangeSpec {
            kind,
            version,
            head_request: self.method == http::Method::HEAD,
            body: self.body.clone(),
            leave_at: self.leave_at.clone(),
        });
        let transport = self.transport.unwrap_or_default();
        let mut scope = client.scope(kind, connection.clone(), version);
        scope.method = self.method;
        scope.path = ragi::scope::percent_decode(raw_path.as_bytes());
        scope.raw_path = Bytes::from(raw_path.clone());
        scope.query_string = Bytes::from(query);
        scope.headers = headers;
        scope.extensions.fullflush = true;
        scope.extensions.sse_http_response = kind == ScopeKind::Sse;
        scope.extensions.transport = Some(transport.extension());
        let receiver = Receiver::from_arc(ex.clone());
        let sender = Sender::new(Sink { ex: ex.clone() });
        let fut = client.app.call(scope, receiver, sender);
        let app = tokio::spawn(fut);
        {
            let ex = ex.clone();
            tokio::spawn(async move {
                let r = app.await;
                ex.app_finished(AppOutcome::from_join(r));
            });
        }
        // A disconnect asked for before sending happens before any body byte.
        let weak: std::sync::Weak<dyn Leave> = Arc::downgrade(&(ex.clone() as Arc<dyn Leave>));
        self.handle.attach(weak);
        ex.start(self.body);
        ResponseStream::open(client, ex, connection, rx, raw_path, what, timeout).await
    }
}

/// A response read piece by piece: [`RequestBuilder::stream`].
///
/// [`next_chunk`](Self::next_chunk) yields each body piece as the app sends it, so an endless
/// streaming response (or an event stream: [`into_sse`](Self::into_sse)) can be read as far
/// as a test needs. Dropping the stream before the response ended makes the client leave
/// with `client_closed`; [`disconnect`](Self::disconnect) leaves with any reason.
pub struct ResponseStream {
    ex: Arc<Exchange>,
    rx: mpsc::UnboundedReceiver<ClientEvent>,
    status: u16,
    headers: Headers,
    trailers: Option<Headers>,
    end: Option<End>,
    connection: Connection,
    timeout: Duration,
    what: String,
    received: u64,
}

impl fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseStream")
            .field("request", &self.what)
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("received", &self.received)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl ResponseStream {
    async fn open(
        client: TestClient,
        ex: Arc<Exchange>,
        connection: Connection,
        mut rx: mpsc::UnboundedReceiver<ClientEvent>,
        path: String,
        what: String,
        timeout: Duration,
    ) -> Self {
        let first = tokio::time::timeout(timeout, rx.recv()).await;
        let mut stream = Self {
            ex,
            rx,
            status: 0,
            headers: Headers::new(),
            trailers: None,
            end: None,
            connection,
            timeout,
            what,
            received: 0,
        };
        match first {
            Ok(Some(ClientEvent::Head { status, headers })) => {
                client.store_cookies(&headers, &path);
                stream.status = status;
                stream.headers = headers;
            }
            Ok(Some(ClientEvent::End(end))) => stream.end = Some(end),
            Ok(Some(other)) => unreachable!("{other:?} before the response head"),
            Ok(None) => stream.end = Some(End::Complete),
            Err(_) => {
                let sent = stream.ex.with_log(|l| l.summary());
                panic!(
                    "timed out after {timeout:?} waiting for the response head of {}; the app \
                     sent: {sent}; app: {:?}",
                    stream.what,
                    stream.ex.app_outcome()
                );
            }
        }
        stream
    }

    /// The status; 0 when the client left before any head reached it.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The response headers as the client sees them.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The first value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get_str(name)
    }

    /// The app's connection object for this request.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Body bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The trailers, once they came.
    pub fn trailers(&self) -> Option<&Headers> {
        self.trailers.as_ref()
    }

    /// Every event the app has sent so far that was accepted.
    pub fn events(&self) -> Vec<SendEvent> {
        self.ex.with_log(|l| l.accepted())
    }

    /// Protocol violations so far. See [`TestResponse::violations`].
    pub fn violations(&self) -> Vec<Violation> {
        self.ex.with_log(|l| l.violations())
    }

    /// The next body piece as the app sent it; `Ok(None)` once the response ended cleanly.
    ///
    /// # Errors
    ///
    /// [`TestError::Timeout`] when nothing comes in time; [`TestError::Aborted`] when the app
    /// failed after the response started; [`TestError::Disconnected`] once the client left.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, TestError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.next_piece()).await {
            Ok(r) => r,
            Err(_) => Err(TestError::timeout(
                format!(
                    "a response body piece of {} ({} bytes received so far)",
                    self.what, self.received
                ),
                timeout,
            )),
        }
    }

    /// The next piece, without a timeout.
    pub(crate) async fn next_piece(&mut self) -> Result<Option<Bytes>, TestError> {
        loop {
            if let Some(end) = &self.end {
                return match end {
                    End::Complete => Ok(None),
                    End::Aborted => Err(TestError::Aborted),
                    End::Left(r) => Err(TestError::Disconnected(r.clone())),
                };
            }
            match self.rx.recv().await {
                Some(ClientEvent::Body(b)) => {
                    self.received += b.len() as u64;
                    return Ok(Some(b));
                }
                Some(ClientEvent::Trailers(t)) => self.trailers = Some(t),
                Some(ClientEvent::End(e)) => self.end = Some(e),
                Some(ClientEvent::Head { .. }) => {}
                None => self.end = Some(End::Complete),
            }
        }
    }

    /// The client stops reading: from now on each of the app's `send`s waits, as under the
    /// server once the socket buffer is full, until [`resume`](Self::resume) or the client
    /// leaves (then the waiting send fails with the reason). What was sent before stays
    /// readable.
    pub fn stall(&self) {
        self.ex.set_stalled(true);
    }

    /// The client reads again: waiting sends go through.
    pub fn resume(&self) {
        self.ex.set_stalled(false);
    }

    /// The client leaves now with `reason` (the app sees it as under the server). Returns
    /// false if the response had already ended; later reads fail with
    /// [`TestError::Disconnected`].
    pub fn disconnect(&mut self, reason: DisconnectReason) -> bool {
        if self.end.is_some() {
            return false;
        }
        let left = self.ex.leave_now(reason.clone());
        if left {
            self.end = Some(End::Left(reason));
        }
        left
    }

    /// Reads an event stream from the body: see [`SseStream`].
    pub fn into_sse(self) -> SseStream {
        SseStream::new(self)
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn what(&self) -> &str {
        &self.what
    }

    /// Reads the rest of the body and returns the whole response.
    ///
    /// # Panics
    ///
    /// When the response does not end within the timeout.
    pub async fn collect(mut self) -> TestResponse {
        let mut body = BytesMut::new();
        let timeout = self.timeout;
        let read = async {
            loop {
                match self.next_piece().await {
                    Ok(Some(b)) => body.extend_from_slice(&b),
                    _ => return,
                }
            }
        };
        if tokio::time::timeout(timeout, read).await.is_err() {
            let sent = self.ex.with_log(|l| l.summary());
            panic!(
                "timed out after {timeout:?} waiting for the end of the response to {} \
                 ({} body bytes received); the app sent: {sent}. For an endless response, \
                 use .stream() and read it piece by piece",
                self.what, self.received
            );
        }
        let end = self.end.clone().unwrap_or(End::Complete);
        TestResponse {
            status: self.status,
            headers: std::mem::take(&mut self.headers),
            body: body.freeze(),
            trailers: self.trailers.take(),
            end,
            connection: self.connection.clone(),
            view: self.ex.clone(),
            timeout,
        }
    }
}

impl Drop for ResponseStream {
    fn drop(&mut self) {
        if self.end.is_none() && !self.ex.is_over() {
            self.ex.leave_now(DisconnectReason::ClientClosed);
        }
    }
}

/// A whole response: [`RequestBuilder::send`].
pub struct TestResponse {
    status: u16,
    headers: Headers,
    body: Bytes,
    trailers: Option<Headers>,
    end: End,
    connection: Connection,
    view: Arc<dyn ExchangeView>,
    timeout: Duration,
}

impl fmt::Debug for TestResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .field("trailers", &self.trailers)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl TestResponse {
    pub(crate) fn from_parts(
        status: u16,
        headers: Headers,
        body: Bytes,
        connection: Connection,
        view: Arc<dyn ExchangeView>,
        timeout: Duration,
    ) -> Self {
        Self {
            status,
            headers,
            body,
            trailers: None,
            end: End::Complete,
            connection,
            view,
            timeout,
        }
    }

    /// The status; 0 when the client left before any head reached it.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The response headers as the client sees them: the app's, less the fields the server
    /// owns (`connection`, `keep-alive`, `transfer-encoding`), with the `content-length` the
    /// server adds to a response sent in one piece (no `date` or `server`).
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The first value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get_str(name)
    }

    /// The body bytes the client received.
    pub fn bytes(&self) -> &Bytes {
        &self.body
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    ///
    /// When it does not parse as a `T`, with the body in the message.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        self.try_json().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The body parsed as JSON.
    ///
    /// # Errors
    ///
    /// [`TestError::Unexpected`] when it does not parse as a `T`.
    pub fn try_json<T: DeserializeOwned>(&self) -> Result<T, TestError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            TestError::Unexpected(format!(
                "the response body is not the JSON expected ({e}): {:?}",
                self.text()
            ))
        })
    }

    /// The trailers, if the app sent any (and the response could carry them).
    pub fn trailers(&self) -> Option<&Headers> {
        self.trailers.as_ref()
    }

    /// Whether the response was delivered completely (the server's backstop `500` counts).
    pub fn is_complete(&self) -> bool {
        self.end == End::Complete
    }

    /// Whether the response was cut short: the app failed after its head was written.
    pub fn is_aborted(&self) -> bool {
        self.end == End::Aborted
    }

    /// The reason the client left with, when it left before the response ended.
    pub fn client_left(&self) -> Option<DisconnectReason> {
        match &self.end {
            End::Left(r) => Some(r.clone()),
            _ => None,
        }
    }

    /// The app's connection object for this request: assert its reason, its callbacks, its
    /// completion.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Every event the app has sent so far that was accepted, in order (the raw log; SSE
    /// events as the app sent them, before framing).
    pub fn events(&self) -> Vec<SendEvent> {
        self.view
            .sent()
            .into_iter()
            .filter(|s| s.error.is_none())
            .map(|s| s.event)
            .collect()
    }

    /// Every event the app has sent so far, with the error `send` returned for each refused.
    pub fn send_log(&self) -> Vec<Sent> {
        self.view.sent()
    }

    /// The events the app sent so far that the server refuses as protocol errors (a second
    /// `ResponseStart`, a body before the start or after the end, an event not valid for the
    /// scope, a header with CR/LF/NUL, …). A `send` refused because the client left is not
    /// one.
    pub fn violations(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        for s in self.view.sent() {
            if let Some(e) = s.error {
                if !e.is_disconnected() {
                    v.push(Violation {
                        event: s.event.name(),
                        error: e,
                    });
                }
            }
        }
        v
    }

    /// How the app's call has ended so far.
    pub fn app_outcome(&self) -> AppOutcome {
        self.view.app_outcome()
    }

    /// The app's error (or panic message), if its call has failed by now.
    pub fn app_error(&self) -> Option<String> {
        self.view.app_outcome().error().map(str::to_owned)
    }

    /// Waits for the app's call to end (at most the request's timeout) and says how it ended
    /// ([`AppOutcome::Running`] if it is still running then).
    pub async fn wait_app(&self) -> AppOutcome {
        self.view.wait_app(self.timeout).await
    }
}
