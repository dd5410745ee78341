//! A bandwidth limit on response bodies: each response's body goes out at no more than a
//! given number of bytes per second.
//!
//! ```
//! use ragi_tools::apps::{static_files::StaticFiles, throttle::Throttle};
//! use ragi_tools::AppExt;
//! # fn main() -> std::io::Result<()> {
//! # let dir = std::env::temp_dir();
//! // Downloads at 1 MiB/s each, the first 256 KiB at once.
//! let app = StaticFiles::new(&dir)?.layer(Throttle::new(1 << 20).burst(256 << 10));
//! # let _ = app;
//! # Ok(()) }
//! ```
//!
//! A layer around any app. It wraps `send`: every body piece (`ResponseBody`, bytes or a file
//! region, and `HttpResponseBody` of a decline or denial) is cut into pieces of at most a
//! tenth of a second's worth (between 1 byte and 64 KiB), and each piece waits for tokens in a
//! **token bucket** that refills at the rate and holds at most the burst (one piece's worth
//! by default; it starts full). A file region is cut into smaller file regions, never read
//! here, so the server still reads the file under its own backpressure. Heads, trailers,
//! flushes, SSE and WebSocket events pass untouched (the WebSocket rate limit middleware
//! limits messages).
//!
//! The response start is held until the app's next event, so that a body given as one final
//! piece (whose length the server would have counted) still goes out with its
//! `Content-Length` although it is cut into pieces here.
//!
//! The limit is per response (each request gets its own bucket), which is what a download
//! limit means; a shared budget across clients is the rate limiter's business.
//!
//! **When the client leaves** while a piece waits for tokens, the wait ends at once and the
//! app's `send` fails with the disconnect reason, as it would have on the next write.
//!
//! PAGI's `App::Throttle` is a request-rate limiter (covered here by the rate-limit
//! middleware); this app follows the issue: a bandwidth limit, like nginx's `limit_rate`
//! (which is also per request) with `limit_rate_after` as the burst.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ragi::{
    App, AppResult, Body, BoxFuture, Connection, Receiver, Scope, SendError, SendEvent, SendSink,
    Sender,
};
use tokio::time::Instant;

use crate::{Layer, SharedApp};

/// The largest piece sent at once.
const MAX_PIECE: u64 = 64 * 1024;

/// The throttle layer. See the [module documentation](self).
#[derive(Clone, Copy, Debug)]
pub struct Throttle {
    rate: u64,
    burst: Option<u64>,
}

impl Throttle {
    /// At most `bytes_per_second` per response body.
    ///
    /// # Panics
    ///
    /// When `bytes_per_second` is 0.
    pub fn new(bytes_per_second: u64) -> Self {
        assert!(
            bytes_per_second > 0,
            "a throttle rate is at least 1 byte per second"
        );
        Self {
            rate: bytes_per_second,
            burst: None,
        }
    }

    /// How many bytes may go out at once before the rate applies (the bucket's size; it
    /// starts full). Default: one piece, a tenth of a second's worth.
    pub fn burst(mut self, bytes: u64) -> Self {
        self.burst = Some(bytes);
        self
    }

    fn piece(&self) -> u64 {
        (self.rate / 10).clamp(1, MAX_PIECE)
    }

    fn capacity(&self) -> u64 {
        self.burst.unwrap_or(0).max(self.piece())
    }
}

impl Layer for Throttle {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(ThrottleApp { cfg: *self, inner })
    }
}

struct ThrottleApp {
    cfg: Throttle,
    inner: SharedApp,
}

impl App for ThrottleApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let sink = ThrottleSink {
            cfg: self.cfg,
            inner: send,
            connection: scope.connection().clone(),
            bucket: Mutex::new(Bucket {
                tokens: self.cfg.capacity() as f64,
                at: None,
            }),
            start: Mutex::new(None),
        };
        self.inner.call(scope, receive, Sender::new(sink))
    }
}

struct Bucket {
    tokens: f64,
    /// When `tokens` was last brought up to date (`None`: not yet, the bucket is full).
    at: Option<Instant>,
}

struct ThrottleSink {
    cfg: Throttle,
    inner: Sender,
    connection: Connection,
    bucket: Mutex<Bucket>,
    /// The response start, held until the first body event (see `send`).
    start: Mutex<Option<SendEvent>>,
}

impl ThrottleSink {
    /// Takes `n` tokens; how long to wait before the piece may go.
    fn take(&self, n: u64) -> Duration {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let cap = self.cfg.capacity() as f64;
        if let Some(at) = b.at {
            let earned = now.saturating_duration_since(at).as_secs_f64() * self.cfg.rate as f64;
            b.tokens = (b.tokens + earned).min(cap);
        }
        b.at = Some(now);
        b.tokens -= n as f64;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / self.cfg.rate as f64)
        }
    }

    /// Waits for `n` tokens, or fails when the client leaves first.
    async fn wait(&self, n: u64) -> Result<(), SendError> {
        let delay = self.take(n);
        if let Some(reason) = self.connection.disconnect_reason() {
            return Err(SendError::disconnected(reason));
        }
        if delay.is_zero() {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(()),
            reason = self.connection.disconnected() => Err(SendError::disconnected(reason)),
        }
    }

    async fn bytes<F>(&self, body: Bytes, more: bool, make: F) -> Result<(), SendError>
    where
        F: Fn(Bytes, bool) -> SendEvent,
    {
        if body.is_empty() {
            return self.inner.send(make(body, more)).await;
        }
        let piece = self.cfg.piece() as usize;
        let mut at = 0;
        while at < body.len() {
            let end = (at + piece).min(body.len());
            self.wait((end - at) as u64).await?;
            let last = end == body.len();
            self.inner
                .send(make(body.slice(at..end), more || !last))
                .await?;
            at = end;
        }
        Ok(())
    }

    async fn file(
        &self,
        path: std::path::PathBuf,
        offset: u64,
        length: Option<u64>,
        more: bool,
    ) -> Result<(), SendError> {
        let length = match length {
            Some(n) => n,
            None => match tokio::fs::metadata(&path).await {
                Ok(m) => m.len().saturating_sub(offset),
                // Let the server report the failure as it would have.
                Err(_) => {
                    let body = Body::File {
                        path,
                        offset,
                        length,
                    };
                    return self
                        .inner
                        .send(SendEvent::ResponseBody { body, more })
                        .await;
                }
            },
        };
        if length == 0 {
            let body = Body::File {
                path,
                offset,
                length: Some(0),
            };
            return self
                .inner
                .send(SendEvent::ResponseBody { body, more })
                .await;
        }
        let piece = self.cfg.piece();
        let mut done = 0;
        while done < length {
            let n = piece.min(length - done);
            self.wait(n).await?;
            let last = done + n == length;
            let body = Body::File {
                path: path.clone(),
                offset: offset + done,
                length: Some(n),
            };
            self.inner
                .send(SendEvent::ResponseBody {
                    body,
                    more: more || !last,
                })
                .await?;
            done += n;
        }
        Ok(())
    }
}

impl SendSink for ThrottleSink {
    fn send(&self, event: SendEvent) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async move {
            if let SendEvent::ResponseStart { .. } = event {
                // Held until the next event: a body the app gives as one final piece would
                // have had its length counted by the server; cut into pieces it could not be,
                // so the length is written into the head here instead.
                *self.start.lock().unwrap_or_else(|e| e.into_inner()) = Some(event);
                return Ok(());
            }
            let held = self.start.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(SendEvent::ResponseStart {
                status,
                mut headers,
                trailers,
            }) = held
            {
                if let SendEvent::ResponseBody {
                    body: Body::Bytes(b),
                    more: false,
                } = &event
                {
                    if !trailers && !headers.contains("content-length") && body_allowed(status) {
                        headers.push("content-length", b.len().to_string());
                    }
                }
                self.inner
                    .send(SendEvent::ResponseStart {
                        status,
                        headers,
                        trailers,
                    })
                    .await?;
            }
            match event {
                SendEvent::ResponseBody {
                    body: Body::Bytes(b),
                    more,
                } => {
                    self.bytes(b, more, |b, more| SendEvent::ResponseBody {
                        body: Body::Bytes(b),
                        more,
                    })
                    .await
                }
                SendEvent::ResponseBody {
                    body:
                        Body::File {
                            path,
                            offset,
                            length,
                        },
                    more,
                } => self.file(path, offset, length, more).await,
                SendEvent::HttpResponseBody { body, more } => {
                    self.bytes(body, more, |body, more| SendEvent::HttpResponseBody {
                        body,
                        more,
                    })
                    .await
                }
                other => self.inner.send(other).await,
            }
        })
    }
}

/// Whether a response of `status` has a body whose length `Content-Length` states.
fn body_allowed(status: u16) -> bool {
    !(100..200).contains(&status) && status != 204 && status != 304
}
