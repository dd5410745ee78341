//! Server-Sent Events: [`TestClient::sse`](super::TestClient::sse) and the event reader.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use ragi::{Connection, DisconnectReason, Headers, ScopeKind};

use super::disconnect::{Disconnect, DisconnectHandle};
use super::http::{RequestBuilder, ResponseStream, TestResponse};
use super::{TestError, TestTransport};

/// One event of a stream, as a client parses it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseMessage {
    /// The `event:` field, if the event had one.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The `id:` field, if the event had one.
    pub id: Option<String>,
    /// The `retry:` field, if the event had a valid one.
    pub retry: Option<u64>,
}

impl SseMessage {
    /// The data parsed as JSON.
    ///
    /// # Errors
    ///
    /// [`TestError::Unexpected`] when it does not parse as a `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, TestError> {
        serde_json::from_str(&self.data).map_err(|e| {
            TestError::Unexpected(format!(
                "the event's data is not the JSON expected ({e}): {:?}",
                self.data
            ))
        })
    }
}

/// An item of an event stream: an event or a comment line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SseItem {
    /// An event.
    Event(SseMessage),
    /// A comment (`: text`), without the colon and the one space after it.
    Comment(String),
}

/// The event-stream parser (the WHATWG rules): lines end with CRLF, LF or CR; a blank line
/// ends an event; `:` starts a comment; one space after a field's colon is dropped. An event
/// is yielded when its block had any field (the server always writes `data:`).
#[derive(Default)]
struct Parser {
    line: Vec<u8>,
    /// The previous byte was a CR (a LF right after it ends nothing more).
    after_cr: bool,
    current: SseMessage,
    has_field: bool,
    data_lines: usize,
}

impl Parser {
    fn feed(&mut self, bytes: &[u8], out: &mut VecDeque<SseItem>) {
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, out);
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
        }
    }

    fn line_done(&mut self, line: &[u8], out: &mut VecDeque<SseItem>) {
        let line = String::from_utf8_lossy(line);
        if line.is_empty() {
            if self.has_field {
                let ev = std::mem::take(&mut self.current);
                out.push_back(SseItem::Event(ev));
            }
            self.has_field = false;
            self.data_lines = 0;
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            let comment = comment.strip_prefix(' ').unwrap_or(comment);
            out.push_back(SseItem::Comment(comment.to_owned()));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (&line[..], ""),
        };
        self.has_field = true;
        match field {
            "event" => self.current.event = Some(value.to_owned()),
            "data" => {
                if self.data_lines > 0 {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.data_lines += 1;
            }
            "id" if !value.contains('\0') => self.current.id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.current.retry = value.parse().ok();
            }
            _ => {}
        }
    }
}

/// An event stream being read: from [`SseBuilder::connect`], or any response whose body is
/// an event stream ([`ResponseStream::into_sse`]: an SSE route answering a plain `http`
/// request frames `text/event-stream` itself).
///
/// Dropping it makes the client leave (`client_closed`), as does
/// [`disconnect`](Self::disconnect) with any reason.
pub struct SseStream {
    stream: ResponseStream,
    parser: Parser,
    items: VecDeque<SseItem>,
    comments: Vec<String>,
    last_event_id: Option<String>,
}

impl fmt::Debug for SseStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseStream")
            .field("stream", &self.stream)
            .field("queued", &self.items.len())
            .field("last_event_id", &self.last_event_id)
            .finish_non_exhaustive()
    }
}

impl SseStream {
    pub(crate) fn new(stream: ResponseStream) -> Self {
        Self {
            stream,
            parser: Parser::default(),
            items: VecDeque::new(),
            comments: Vec::new(),
            last_event_id: None,
        }
    }

    /// The status of the stream's response.
    pub fn status(&self) -> u16 {
        self.stream.status()
    }

    /// The stream's response headers.
    pub fn headers(&self) -> &Headers {
        self.stream.headers()
    }

    /// The app's connection object for this stream.
    pub fn connection(&self) -> &Connection {
        self.stream.connection()
    }

    /// The id of the last event that had one (what a browser would send as `Last-Event-ID`
    /// when it reconnects).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The comments seen so far (keep-alive comments included), in order.
    pub fn comments(&self) -> &[String] {
        &self.comments
    }

    /// The response stream underneath (events and violations of the app).
    pub fn response(&self) -> &ResponseStream {
        &self.stream
    }

    /// The next event or comment.
    ///
    /// # Errors
    ///
    /// [`TestError::Ended`] when the stream ended cleanly; [`TestError::Timeout`] when nothing
    /// came in time; [`TestError::Aborted`] / [`TestError::Disconnected`] as for
    /// [`ResponseStream::next_chunk`].
    pub async fn next_item(&mut self) -> Result<SseItem, TestError> {
        let timeout = self.stream.timeout();
        match tokio::time::timeout(timeout, self.item()).await {
            Ok(r) => r,
            Err(_) => Err(TestError::timeout(
                format!("an SSE event from {}", self.stream.what()),
                timeout,
            )),
        }
    }

    async fn item(&mut self) -> Result<SseItem, TestError> {
        loop {
            if let Some(item) = self.items.pop_front() {
                match &item {
                    SseItem::Event(ev) => {
                        if let Some(id) = &ev.id {
                            self.last_event_id = Some(id.clone());
                        }
                    }
                    SseItem::Comment(c) => self.comments.push(c.clone()),
                }
                return Ok(item);
            }
            match self.stream.next_piece().await? {
                Some(piece) => self.parser.feed(&piece, &mut self.items),
                None => return Err(TestError::Ended),
            }
        }
    }

    /// The next event, skipping comments (they are kept: [`comments`](Self::comments)).
    ///
    /// # Errors
    ///
    /// As [`next_item`](Self::next_item).
    pub async fn next_event(&mut self) -> Result<SseMessage, TestError> {
        let timeout = self.stream.timeout();
        let next = async {
            loop {
                if let SseItem::Event(ev) = self.item().await? {
                    return Ok(ev);
                }
            }
        };
        match tokio::time::timeout(timeout, next).await {
            Ok(r) => r,
            Err(_) => Err(TestError::timeout(
                format!("an SSE event from {}", self.stream.what()),
                timeout,
            )),
        }
    }

    /// The client leaves now with `reason`. Returns false if the stream had already ended.
    pub fn disconnect(&mut self, reason: DisconnectReason) -> bool {
        self.stream.disconnect(reason)
    }

    /// The client stops reading: the app's sends wait ([`ResponseStream::stall`]).
    pub fn stall(&self) {
        self.stream.stall();
    }

    /// The client reads again.
    pub fn resume(&self) {
        self.stream.resume();
    }
}

/// What an SSE request got: [`SseBuilder::connect`].
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum SseConnect {
    /// An event stream (`content-type: text/event-stream`).
    Stream(SseStream),
    /// Any other response: the decline pair on an `sse` scope, an ordinary response on an
    /// `http` scope, or the server's `500` for an app that failed.
    Declined(TestResponse),
}

impl SseConnect {
    /// The stream.
    ///
    /// # Panics
    ///
    /// When the request was declined, with the response.
    pub fn stream(self) -> SseStream {
        match self {
            Self::Stream(s) => s,
            Self::Declined(r) => panic!(
                "the SSE request was declined: {} {:?}",
                r.status(),
                r.text()
            ),
        }
    }

    /// The decline.
    ///
    /// # Panics
    ///
    /// When the request got an event stream.
    pub fn declined(self) -> TestResponse {
        match self {
            Self::Declined(r) => r,
            Self::Stream(s) => panic!("the SSE request got a stream ({})", s.status()),
        }
    }
}

/// An SSE request being built: [`TestClient::sse`](super::TestClient::sse). `GET` with
/// `accept: text/event-stream`, so the app gets an `sse` scope (unless
/// [`kind`](Self::kind) says otherwise).
#[must_use = "a request does nothing until it is sent"]
#[derive(Debug)]
pub struct SseBuilder {
    req: RequestBuilder,
}

impl SseBuilder {
    pub(crate) fn new(req: RequestBuilder) -> Self {
        Self {
            req: req.header("accept", "text/event-stream"),
        }
    }

    /// Adds a request header.
    pub fn header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.req = self.req.header(name, value);
        self
    }

    /// Appends `key=value` to the query.
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.req = self.req.query(key, value);
        self
    }

    /// Sends `last-event-id`, as a reconnecting browser does.
    pub fn last_event_id(self, id: impl Into<String>) -> Self {
        let id: String = id.into();
        self.header("last-event-id", id)
    }

    /// The scope kind (by default `sse`; `ScopeKind::Http` tries the route as `curl -N`
    /// would, without `accept`'s effect).
    pub fn kind(mut self, kind: ScopeKind) -> Self {
        self.req = self.req.kind(kind);
        self
    }

    /// Makes the client leave at `at` with `reason`.
    pub fn disconnect(mut self, at: Disconnect, reason: DisconnectReason) -> Self {
        self.req = self.req.disconnect(at, reason);
        self
    }

    /// A handle that makes the client leave when you call it.
    pub fn disconnect_handle(&self) -> DisconnectHandle {
        self.req.disconnect_handle()
    }

    /// The `transport` extension the app sees.
    pub fn transport(mut self, transport: TestTransport) -> Self {
        self.req = self.req.transport(transport);
        self
    }

    /// How long the connect and each read wait.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.req = self.req.timeout(timeout);
        self
    }

    /// The whole request builder, for anything else (method, body, …).
    pub fn map(mut self, f: impl FnOnce(RequestBuilder) -> RequestBuilder) -> Self {
        self.req = f(self.req);
        self
    }

    /// Sends the request; returns once the response head arrives.
    ///
    /// # Panics
    ///
    /// When no head comes within the timeout.
    pub async fn connect(self) -> SseConnect {
        let stream = self.req.stream().await;
        let is_stream = stream.header("content-type").is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        });
        if is_stream {
            SseConnect::Stream(SseStream::new(stream))
        } else {
            SseConnect::Declined(stream.collect().await)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Vec<SseItem> {
        let mut p = Parser::default();
        let mut out = VecDeque::new();
        for c in chunks {
            p.feed(c, &mut out);
        }
        out.into_iter().collect()
    }

    #[test]
    fn events_comments_and_line_ends() {
        let items = parse(&[
            b"event: tick\ndata: a\nda",
            b"ta: b\nid: 7\nretry: 1500\n\n: ping\n\n",
            b"data:x\r",
            b"\n\r\ndata: y\rid\r\r",
            b"retry: soon\ndata: z\n\n",
        ]);
        let ev = |event: Option<&str>, data: &str, id: Option<&str>, retry| {
            SseItem::Event(SseMessage {
                event: event.map(Into::into),
                data: data.into(),
                id: id.map(Into::into),
                retry,
            })
        };
        assert_eq!(
            items,
            vec![
                ev(Some("tick"), "a\nb", Some("7"), Some(1500)),
                SseItem::Comment("ping".into()),
                ev(None, "x", None, None),
                ev(None, "y", Some(""), None),
                ev(None, "z", None, None),
            ]
        );
    }
}
