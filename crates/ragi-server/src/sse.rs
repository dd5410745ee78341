//! Server-Sent Events: the `sse` scope's send side, over any HTTP response path.
//!
//! A request whose `accept` includes `text/event-stream` (and is not a WebSocket upgrade) gets
//! an `sse` scope. Its `send` goes through an [`SseSink`], which turns SSE events into response
//! events for the protocol's own sink, so HTTP/1.1 (chunked framing) and HTTP/2 (DATA frames)
//! share every rule:
//!
//! * `SseStart { status, headers }` starts the stream at once; the server adds
//!   `content-type: text/event-stream` and `cache-control: no-cache` unless the app set them;
//! * `SseSend` is formatted as `event:` / `data:` (one line per line of the data, split on CR,
//!   LF and CRLF) / `id:` / `retry:` lines and a blank line; CR or LF in `event` or `id` is an
//!   error;
//! * `SseComment` is a `:` line; `SseKeepalive { interval, comment }` sends that comment every
//!   `interval` (zero turns it off);
//! * `SseClose` ends the stream; it is idempotent, and any other event after it is an error;
//! * the decline pair `HttpResponseStart` + `HttpResponseBody` answers with an ordinary
//!   response instead; the first of `SseStart` / `HttpResponseStart` wins.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use ragi::{Body, BoxFuture, DisconnectReason, Headers, SendError, SendEvent, SendSink, SseEvent};

/// Ends the exchange under an SSE stream (the idle timeout): the protocol decides how (HTTP/2
/// resets the stream, HTTP/1.1 closes the connection).
pub(crate) type EndStream = Box<dyn Fn(DisconnectReason) + Send + Sync>;

/// Whether a request asks for an event stream: `accept` lists `text/event-stream` with a
/// q-value above zero (`text/event-stream;q=0` says "anything but an event stream", RFC 9110
/// §12.4.2).
pub(crate) fn wants_event_stream(headers: &Headers) -> bool {
    headers.get_all("accept").any(|v| {
        v.split(|&b| b == b',').any(|part| {
            let mut params = part.split(|&b| b == b';');
            let media = params.next().unwrap_or(&[]);
            media
                .trim_ascii()
                .eq_ignore_ascii_case(b"text/event-stream")
                && !params.any(is_zero_q)
        })
    })
}

/// Whether a media-range parameter is `q=0` (`0`, `0.`, `0.0`, … `0.000`).
fn is_zero_q(param: &[u8]) -> bool {
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Init,
    Streaming,
    Declined,
    Closed,
}

/// The `send` side of an `sse` scope, over the protocol's HTTP sink.
pub(crate) struct SseSink {
    inner: Arc<dyn SendSink>,
    phase: Arc<Mutex<Phase>>,
    keepalive: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// When the app last sent something (for the idle timeout).
    last_sent: Arc<Mutex<std::time::Instant>>,
    idle: Option<tokio::task::JoinHandle<()>>,
}

impl SseSink {
    pub(crate) fn new(inner: Arc<dyn SendSink>) -> Self {
        Self {
            inner,
            phase: Arc::new(Mutex::new(Phase::Init)),
            keepalive: Mutex::new(None),
            last_sent: Arc::new(Mutex::new(std::time::Instant::now())),
            idle: None,
        }
    }

    /// Ends the stream with `idle_timeout` when the app sends nothing for `limit` while it
    /// streams (keep-alive comments do not count: they are the server's, not the app's).
    pub(crate) fn with_idle_timeout(mut self, limit: Option<Duration>, end: EndStream) -> Self {
        let Some(limit) = limit else { return self };
        let (phase, last) = (self.phase.clone(), self.last_sent.clone());
        self.idle = Some(tokio::spawn(async move {
            loop {
                let due = *last.lock().unwrap_or_else(|e| e.into_inner()) + limit;
                tokio::time::sleep_until(due.into()).await;
                let since = last.lock().unwrap_or_else(|e| e.into_inner()).elapsed();
                if since < limit {
                    continue;
                }
                let mut state = phase.lock().unwrap_or_else(|e| e.into_inner());
                match *state {
                    Phase::Streaming | Phase::Init => {
                        *state = Phase::Closed;
                        drop(state);
                        end(DisconnectReason::IdleTimeout);
                        return;
                    }
                    Phase::Declined | Phase::Closed => return,
                }
            }
        }));
        self
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The HTTP events for one SSE event (none for a repeated close or a keep-alive setting).
    fn translate(&self, event: SendEvent) -> Result<Vec<SendEvent>, SendError> {
        let mut phase = self.phase();
        let invalid = |why: String| Err(SendError::invalid_event(why));
        match (event, *phase) {
            (SendEvent::SseClose { .. }, Phase::Closed) => Ok(Vec::new()),
            (other, Phase::Closed) => invalid(format!("{} after SseClose", other.name())),
            (
                SendEvent::SseStart {
                    status,
                    mut headers,
                },
                Phase::Init,
            ) => {
                headers.validate().map_err(SendError::invalid_header)?;
                if !headers.contains("content-type") {
                    headers.push("content-type", "text/event-stream");
                }
                if !headers.contains("cache-control") {
                    headers.push("cache-control", "no-cache");
                }
                *phase = Phase::Streaming;
                Ok(vec![
                    SendEvent::response_start(status, headers),
                    SendEvent::FullFlush,
                ])
            }
            (SendEvent::HttpResponseStart { status, headers }, Phase::Init) => {
                *phase = Phase::Declined;
                Ok(vec![SendEvent::response_start(status, headers)])
            }
            (SendEvent::HttpResponseBody { body, more }, Phase::Declined) => {
                if !more {
                    *phase = Phase::Closed;
                }
                Ok(vec![SendEvent::ResponseBody {
                    body: Body::Bytes(body),
                    more,
                }])
            }
            (SendEvent::SseSend(ev), Phase::Streaming) => {
                Ok(vec![SendEvent::body_chunk(format_event(&ev)?)])
            }
            (SendEvent::SseComment { comment }, Phase::Streaming) => {
                Ok(vec![SendEvent::body_chunk(format_comment(&comment)?)])
            }
            (SendEvent::SseClose { .. }, Phase::Streaming | Phase::Init) => {
                let was = *phase;
                *phase = Phase::Closed;
                if let Some(k) = self
                    .keepalive
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                {
                    k.abort();
                }
                if was == Phase::Init {
                    // Closed before it started: an empty event stream.
                    let headers = Headers::new()
                        .with("content-type", "text/event-stream")
                        .with("cache-control", "no-cache");
                    return Ok(vec![
                        SendEvent::response_start(200, headers),
                        SendEvent::body(Bytes::new()),
                    ]);
                }
                Ok(vec![SendEvent::body(Bytes::new())])
            }
            (other, p) => invalid(format!(
                "{} is not valid in an sse scope here ({p:?})",
                other.name()
            )),
        }
    }

    fn start_keepalive(&self, interval: Duration, comment: String) -> Result<(), SendError> {
        let line = format_comment(&comment)?;
        let mut slot = self.keepalive.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = slot.take() {
            old.abort();
        }
        if interval.is_zero() {
            return Ok(());
        }
        let (inner, phase) = (self.inner.clone(), self.phase.clone());
        *slot = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let state = *phase.lock().unwrap_or_else(|e| e.into_inner());
                match state {
                    Phase::Streaming => {
                        if inner
                            .send(SendEvent::body_chunk(line.clone()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Phase::Init => {}
                    Phase::Declined | Phase::Closed => return,
                }
            }
        }));
        Ok(())
    }
}

impl Drop for SseSink {
    fn drop(&mut self) {
        if let Some(k) = self
            .keepalive
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            k.abort();
        }
        if let Some(i) = self.idle.take() {
            i.abort();
        }
    }
}

impl SendSink for SseSink {
    fn send(&self, event: SendEvent) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async move {
            *self.last_sent.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
            if let SendEvent::SseKeepalive { interval, comment } = event {
                return self.start_keepalive(interval, comment);
            }
            for http in self.translate(event)? {
                self.inner.send(http).await?;
            }
            Ok(())
        })
    }
}

fn has_newline(s: &str) -> bool {
    s.contains(['\r', '\n'])
}

/// `event:`, `data:` (one per line of the data), `id:`, `retry:` lines and a blank line.
pub(crate) fn format_event(ev: &SseEvent) -> Result<Bytes, SendError> {
    let mut out = BytesMut::with_capacity(ev.data.len() + 32);
    if let Some(name) = &ev.event {
        if has_newline(name) {
            return Err(SendError::invalid_event("CR or LF in an SSE event name"));
        }
        out.put_slice(b"event: ");
        out.put_slice(name.as_bytes());
        out.put_u8(b'\n');
    }
    let data = ev.data.replace("\r\n", "\n").replace('\r', "\n");
    for line in data.split('\n') {
        out.put_slice(b"data: ");
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
    if let Some(id) = &ev.id {
        if has_newline(id) || id.contains('\0') {
            return Err(SendError::invalid_event("CR, LF or NUL in an SSE id"));
        }
        out.put_slice(b"id: ");
        out.put_slice(id.as_bytes());
        out.put_u8(b'\n');
    }
    if let Some(retry) = ev.retry {
        out.put_slice(format!("retry: {retry}\n").as_bytes());
    }
    out.put_u8(b'\n');
    Ok(out.freeze())
}

/// `: comment` and a blank line.
pub(crate) fn format_comment(comment: &str) -> Result<Bytes, SendError> {
    if has_newline(comment) {
        return Err(SendError::invalid_event("CR or LF in an SSE comment"));
    }
    Ok(Bytes::from(format!(": {comment}\n\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: Option<&str>, data: &str, id: Option<&str>, retry: Option<u64>) -> SseEvent {
        SseEvent {
            event: event.map(Into::into),
            data: data.into(),
            id: id.map(Into::into),
            retry,
        }
    }

    #[test]
    fn events_are_formatted_line_by_line() {
        let b = format_event(&ev(Some("tick"), "a\r\nb\rc\nd", Some("7"), Some(1500))).unwrap();
        assert_eq!(
            &b[..],
            b"event: tick\ndata: a\ndata: b\ndata: c\ndata: d\nid: 7\nretry: 1500\n\n"
        );
        assert_eq!(
            &format_event(&ev(None, "", None, None)).unwrap()[..],
            b"data: \n\n"
        );
        assert!(format_event(&ev(Some("a\nb"), "x", None, None))
            .unwrap_err()
            .is_invalid_event());
        assert!(format_event(&ev(None, "x", Some("1\r"), None))
            .unwrap_err()
            .is_invalid_event());
        assert_eq!(&format_comment("ping").unwrap()[..], b": ping\n\n");
        assert!(format_comment("a\nb").is_err());
    }

    #[test]
    fn accept_header_detection() {
        let h = |v: &str| Headers::new().with("accept", v.to_owned());
        assert!(wants_event_stream(&h("text/event-stream")));
        assert!(!wants_event_stream(&h("text/event-stream;q=0")));
        assert!(!wants_event_stream(&h(
            "application/json, text/event-stream ; q=0.000"
        )));
        assert!(wants_event_stream(&h("text/event-stream;q=0.1")));
        assert!(wants_event_stream(&h(
            "application/json, text/event-stream;q=0.5"
        )));
        assert!(wants_event_stream(&h("text/html, Text/Event-Stream;q=0.9")));
        assert!(!wants_event_stream(&h("text/html")));
        assert!(!wants_event_stream(&Headers::new()));
    }

    /// Records what reaches the HTTP sink.
    #[derive(Default)]
    struct Rec(Mutex<Vec<SendEvent>>);

    impl SendSink for Rec {
        fn send(&self, event: SendEvent) -> BoxFuture<'_, Result<(), SendError>> {
            self.0.lock().unwrap().push(event);
            Box::pin(async { Ok(()) })
        }
    }

    #[test]
    fn the_order_of_events_is_enforced() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let rec = Arc::new(Rec::default());
            let sink = SseSink::new(rec.clone());
            assert!(sink
                .send(SendEvent::SseSend(ev(None, "early", None, None)))
                .await
                .unwrap_err()
                .is_invalid_event());
            sink.send(SendEvent::SseStart {
                status: 200,
                headers: Headers::new(),
            })
            .await
            .unwrap();
            assert!(sink
                .send(SendEvent::HttpResponseStart {
                    status: 403,
                    headers: Headers::new()
                })
                .await
                .unwrap_err()
                .is_invalid_event());
            sink.send(SendEvent::SseSend(ev(None, "x", Some("1"), None)))
                .await
                .unwrap();
            sink.send(SendEvent::SseClose { reason: None })
                .await
                .unwrap();
            sink.send(SendEvent::SseClose { reason: None })
                .await
                .unwrap(); // idempotent
            assert!(sink
                .send(SendEvent::SseComment {
                    comment: "late".into()
                })
                .await
                .is_err());
            let got = rec.0.lock().unwrap();
            assert!(
                matches!(&got[0], SendEvent::ResponseStart { status: 200, headers, .. }
                if headers.get_str("content-type") == Some("text/event-stream")
                    && headers.get_str("cache-control") == Some("no-cache"))
            );
            assert!(matches!(got[1], SendEvent::FullFlush));
            assert!(matches!(
                &got[2],
                SendEvent::ResponseBody { more: true, .. }
            ));
            assert!(matches!(
                &got[3],
                SendEvent::ResponseBody { more: false, .. }
            ));
            assert_eq!(got.len(), 4);
        });
    }
}
