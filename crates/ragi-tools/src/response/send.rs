//! Sending a [`Response`] in the framing the scope needs, and the streaming [`BodyWriter`].

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ragi::{Body, Connection, Headers, Scope, ScopeKind, SendError, SendEvent, Sender};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{prefers_text, Response, ResponseBody};
use crate::Error;

const IDLE: u8 = 0;
const STARTED: u8 = 1;
const FINISHED: u8 = 2;

/// How a response reaches the client of this scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// `ResponseStart` / `ResponseBody` / `ResponseTrailers` (an `http` scope).
    Http,
    /// `HttpResponseStart` / `HttpResponseBody` (an `sse` scope answered by an HTTP route, or
    /// a WebSocket handshake denied before accept).
    Decline,
    /// A WebSocket handshake on a server without the denial extension: `WebSocketClose`, which
    /// the server answers with 403; the body is dropped.
    CloseHandshake,
}

/// Sends the response of one scope: a [`Response`] value, or a head and then pieces through a
/// [`BodyWriter`]. Cheap to clone; every clone shares the state (started, finished), so the
/// code that called a handler knows whether the handler answered itself.
///
/// On an `http` scope it sends response events; on an `sse` scope (an HTTP route answering a
/// request that also accepts an event stream) the decline pair `HttpResponseStart` +
/// `HttpResponseBody`, streaming included; on a `websocket` scope before accept the denial
/// pair (or a close, answered with 403, when the server lacks the denial extension).
#[derive(Clone)]
pub struct Responder {
    inner: Arc<Shared>,
}

struct Shared {
    send: Sender,
    framing: Framing,
    accept: Option<Bytes>,
    connection: Connection,
    phase: AtomicU8,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("framing", &self.inner.framing)
            .field("started", &self.is_started())
            .field("finished", &self.is_finished())
            .finish()
    }
}

fn send_error(e: SendError) -> Error {
    Error::from(e)
}

impl Responder {
    /// A responder for `scope`, sending through `send`.
    pub fn new(scope: &Scope, send: Sender) -> Self {
        let framing = match scope.kind {
            ScopeKind::Sse => Framing::Decline,
            ScopeKind::WebSocket if scope.extensions.websocket_http_response => Framing::Decline,
            ScopeKind::WebSocket => Framing::CloseHandshake,
            _ => Framing::Http,
        };
        Self {
            inner: Arc::new(Shared {
                send,
                framing,
                accept: scope.headers.get("accept").cloned(),
                connection: scope.connection().clone(),
                phase: AtomicU8::new(IDLE),
            }),
        }
    }

    /// The raw `send` handle.
    pub fn sender(&self) -> &Sender {
        &self.inner.send
    }

    /// The scope's connection object.
    pub fn connection(&self) -> &Connection {
        &self.inner.connection
    }

    /// Whether a response head was sent through this responder.
    pub fn is_started(&self) -> bool {
        self.inner.phase.load(Ordering::Acquire) != IDLE
    }

    /// Whether the response was sent whole.
    pub fn is_finished(&self) -> bool {
        self.inner.phase.load(Ordering::Acquire) == FINISHED
    }

    fn check_connected(&self) -> Result<(), Error> {
        match self.inner.connection.disconnect_reason() {
            Some(r) => Err(Error::disconnected(r)),
            None => Ok(()),
        }
    }

    async fn emit(&self, event: SendEvent) -> Result<(), Error> {
        self.inner.send.send(event).await.map_err(send_error)
    }

    /// Sends the head and returns the writer for the body. `trailers` announces trailer fields
    /// ([`BodyWriter::finish_with_trailers`]). Fails if a response was already started, or
    /// with the reason if the client is gone.
    pub async fn start(
        &self,
        status: u16,
        headers: Headers,
        trailers: bool,
    ) -> Result<BodyWriter, Error> {
        self.check_connected()?;
        if self
            .inner
            .phase
            .compare_exchange(IDLE, STARTED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(Error::internal(
                "a response was already started for this request",
            ));
        }
        let trailers = trailers && self.inner.framing == Framing::Http;
        let event = match self.inner.framing {
            Framing::Http => SendEvent::ResponseStart {
                status,
                headers,
                trailers,
            },
            Framing::Decline => SendEvent::HttpResponseStart { status, headers },
            Framing::CloseHandshake => SendEvent::WebSocketClose {
                code: 1000,
                reason: String::new(),
            },
        };
        self.emit(event).await?;
        Ok(BodyWriter {
            responder: self.clone(),
            trailers,
            done: false,
        })
    }

    /// Sends `response` whole. Fails if a response was already started, or with the reason if
    /// the client is gone (then nothing more is sent).
    pub async fn send(&self, response: Response) -> Result<(), Error> {
        let Response {
            status,
            mut headers,
            body,
            trailers,
        } = response;
        let body = match body {
            ResponseBody::Problem(message) => {
                let (ct, text) = if prefers_text(self.inner.accept.as_deref()) {
                    ("text/plain; charset=utf-8", format!("{message}\n"))
                } else {
                    (
                        "application/json",
                        serde_json::json!({ "error": message }).to_string(),
                    )
                };
                headers.set("content-type", ct);
                ResponseBody::Bytes(Bytes::from(text))
            }
            other => other,
        };
        let mut w = self.start(status, headers, trailers.is_some()).await?;
        let result = match body {
            ResponseBody::Empty | ResponseBody::Default => Ok(()),
            ResponseBody::Bytes(b) => {
                // One piece: the final one (the server can then send a content-length).
                if trailers.is_none() {
                    return w.finish_with(b).await;
                }
                w.write(b).await
            }
            ResponseBody::Problem(_) => unreachable!("rendered above"),
            ResponseBody::File {
                path,
                offset,
                length,
            } => w.write_file(&path, offset, length).await,
            ResponseBody::Pieces(pieces) => {
                let mut r = Ok(());
                for piece in pieces {
                    r = match piece {
                        Body::Bytes(b) => w.write(b).await,
                        Body::File {
                            path,
                            offset,
                            length,
                        } => w.write_file(&path, offset, length).await,
                    };
                    if r.is_err() {
                        break;
                    }
                }
                r
            }
            ResponseBody::Stream(mut stream) => {
                let mut r = Ok(());
                while let Some(item) =
                    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
                {
                    r = match item {
                        Ok(b) => w.write(b).await,
                        Err(e) => Err(e),
                    };
                    if r.is_err() {
                        break;
                    }
                }
                // The stream is dropped here: a client that left stops its production.
                r
            }
            ResponseBody::Writer(f) => {
                let handle = BodyWriter {
                    responder: self.clone(),
                    trailers: w.trailers,
                    done: false,
                };
                let r = f(handle).await;
                if r.is_ok() && self.is_finished() {
                    // The writer ended the body itself (e.g. with trailers).
                    return Ok(());
                }
                r
            }
        };
        result?;
        match trailers {
            Some(t) => w.finish_with_trailers(t).await,
            None => w.finish().await,
        }
    }

    /// Completes a handler's answer: sends `response` if the handler did not answer itself;
    /// ends a body the handler started and left open; reports a response returned after the
    /// handler had already answered. Returns what the app call should return: an error only
    /// when the response must be aborted (it started and then failed).
    pub async fn complete(&self, response: Response) -> ragi::AppResult {
        if !self.inner.connection.is_connected() {
            // The client left: nothing to send or abort; the connection object says why.
            return Ok(());
        }
        let result = if !self.is_started() {
            if let ResponseBody::Problem(_) = &response.body {
                if response.status >= 500 {
                    tracing::error!(status = response.status, "handler failed");
                }
            }
            self.send(response).await
        } else {
            match response.body {
                ResponseBody::Default => {}
                ResponseBody::Problem(message) => {
                    // The handler failed after it had started answering: abort.
                    if !self.is_finished() {
                        return Err(format!(
                            "handler failed after the response started: {message}"
                        )
                        .into());
                    }
                }
                _ => tracing::warn!(
                    status = response.status,
                    "a handler returned a response after it had answered itself; ignored"
                ),
            }
            if self.is_finished() {
                Ok(())
            } else {
                BodyWriter {
                    responder: self.clone(),
                    trailers: false,
                    done: false,
                }
                .finish()
                .await
            }
        };
        match result {
            Ok(()) => Ok(()),
            // The client left: nothing to abort, the connection object says why.
            Err(e) if e.is_disconnected() => Ok(()),
            Err(e) => {
                e.log();
                Err(e.into_app_error())
            }
        }
    }
}

/// Writes a response body piece by piece, after [`Responder::start`] or inside
/// [`Response::stream`].
///
/// Every write fails with [`Error::disconnected`](crate::Error::disconnected) (carrying the
/// reason) once the client is gone, so a generator that writes stops there. A writer dropped
/// without [`finish`](Self::finish) is finished by the toolkit when the handler returns.
pub struct BodyWriter {
    responder: Responder,
    trailers: bool,
    done: bool,
}

impl std::fmt::Debug for BodyWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyWriter")
            .field("done", &self.done)
            .finish()
    }
}

impl BodyWriter {
    /// The request's connection object.
    pub fn connection(&self) -> &Connection {
        self.responder.connection()
    }

    /// Whether the client is still there.
    pub fn is_connected(&self) -> bool {
        self.responder.connection().is_connected()
    }

    fn check(&self) -> Result<(), Error> {
        if self.done || self.responder.is_finished() {
            return Err(Error::internal("write after the response body ended"));
        }
        self.responder.check_connected()
    }

    /// Sends one piece (waits while the client is slow: backpressure). An empty piece sends
    /// nothing.
    pub async fn write(&mut self, chunk: impl Into<Bytes>) -> Result<(), Error> {
        let chunk = chunk.into();
        self.check()?;
        if chunk.is_empty() {
            return Ok(());
        }
        let event = match self.responder.inner.framing {
            Framing::Http => SendEvent::body_chunk(chunk),
            Framing::Decline => SendEvent::HttpResponseBody {
                body: chunk,
                more: true,
            },
            Framing::CloseHandshake => return Ok(()),
        };
        self.responder.emit(event).await
    }

    /// Sends `length` bytes (to the end when `None`) of the file at `path` from `offset`. On an
    /// `http` scope the server reads the file; otherwise it is read here in 64 KiB pieces.
    /// Reading stops when the client leaves.
    pub async fn write_file(
        &mut self,
        path: &Path,
        offset: u64,
        length: Option<u64>,
    ) -> Result<(), Error> {
        self.check()?;
        if self.responder.inner.framing == Framing::Http {
            let event = SendEvent::ResponseBody {
                body: Body::File {
                    path: path.to_owned(),
                    offset,
                    length,
                },
                more: true,
            };
            return self.responder.emit(event).await;
        }
        let mut file = tokio::fs::File::open(path).await?;
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        let mut left = length.unwrap_or(u64::MAX);
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = file.read(&mut buf[..want]).await?;
            if n == 0 {
                break;
            }
            left -= n as u64;
            self.write(Bytes::copy_from_slice(&buf[..n])).await?;
        }
        Ok(())
    }

    /// Asks the server to write out what it holds now (extension `fullflush`; a no-op where
    /// it does not apply).
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.check()?;
        if self.responder.inner.framing == Framing::Http {
            self.responder.emit(SendEvent::FullFlush).await?;
        }
        Ok(())
    }

    async fn end(&mut self, last: Bytes, trailers: Option<Headers>) -> Result<(), Error> {
        self.check()?;
        self.done = true;
        let r = &self.responder;
        if r.inner
            .phase
            .compare_exchange(STARTED, FINISHED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(Error::internal("the response body already ended"));
        }
        match r.inner.framing {
            Framing::Http if self.trailers => {
                if !last.is_empty() {
                    r.emit(SendEvent::body_chunk(last)).await?;
                }
                r.emit(SendEvent::ResponseTrailers {
                    headers: trailers.unwrap_or_default(),
                })
                .await
            }
            Framing::Http => r.emit(SendEvent::body(last)).await,
            Framing::Decline => {
                r.emit(SendEvent::HttpResponseBody {
                    body: last,
                    more: false,
                })
                .await
            }
            Framing::CloseHandshake => Ok(()),
        }
    }

    /// Ends the body.
    pub async fn finish(mut self) -> Result<(), Error> {
        self.end(Bytes::new(), None).await
    }

    /// Sends `last` as the final piece, ending the body.
    pub async fn finish_with(mut self, last: impl Into<Bytes>) -> Result<(), Error> {
        self.end(last.into(), None).await
    }

    /// Ends the body with trailer fields (announced when the response started; otherwise the
    /// trailers are dropped).
    pub async fn finish_with_trailers(mut self, trailers: Headers) -> Result<(), Error> {
        self.end(Bytes::new(), Some(trailers)).await
    }
}
