//! `Server-Timing`: how long the server took, and the app's own measurements, in the response
//! head (and, when the response announces trailers, the whole duration in a trailer).
//!
//! ```
//! use std::time::Duration;
//! use ragi_tools::middleware::timing::{ServerTiming, Timing};
//! use ragi_tools::prelude::*;
//!
//! async fn show(cx: HttpContext) -> String {
//!     let timing = ServerTiming::of(cx.scope()).expect("the Timing layer is on");
//!     {
//!         let _db = timing.start("db");                    // measured until dropped
//!         // … query …
//!     }
//!     timing.record("render", Duration::from_micros(800)); // or measured yourself
//!     timing.describe("cache", "miss");                    // a metric with no duration
//!     "shown".to_owned()
//! }
//!
//! let app = handler(show).layer(Timing::new());
//! // → server-timing: db;dur=3.1, render;dur=0.8, cache;desc="miss", total;dur=4.2
//! # let _ = app;
//! ```
//!
//! # What it adds
//!
//! To every response head (`ResponseStart`, the `HttpResponseStart` of an SSE decline or a
//! WebSocket denial, `SseStart`): one `Server-Timing` field listing the metrics the app
//! recorded so far through the [`ServerTiming`] in the stash, then `total;dur=<ms>` — the
//! time from the layer's call to the head (milliseconds, to the microsecond). A
//! `Server-Timing` field the app set itself is kept. When the response announces trailers
//! (`ResponseStart { trailers: true }`), the trailers get a `Server-Timing` field too, with
//! the metrics recorded after the head and `total` measured at the end of the body. Metric
//! names that are not tokens are skipped (with a debug log); descriptions are quoted.
//!
//! `Server-Timing` tells clients how the server spends its time: enable it only where that is
//! fine ([`enable_if`](Timing::enable_if), or `Stack::enable_if`). A client that leaves frees
//! nothing here: the metrics live in the stash and go with the request.
//!
//! # References
//!
//! PAGI's `Timing` sets `X-Response-Time` (and optionally `Server-Timing` with one `total`);
//! Starlette and tower-http have none. ragi writes the W3C `Server-Timing` syntax with the
//! app's own metrics and a trailer for streamed bodies.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, SendError, SendEvent, Sender};
use tokio::time::Instant;

use super::observe::{tap, Tap};
use crate::{Layer, SharedApp};

/// The app's measurements for one request, in its stash. See the
/// [module documentation](self).
#[derive(Debug)]
pub struct ServerTiming {
    start: Instant,
    metrics: Mutex<Vec<Metric>>,
}

#[derive(Clone, Debug)]
struct Metric {
    name: String,
    dur: Option<Duration>,
    desc: Option<String>,
}

impl ServerTiming {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            metrics: Mutex::new(Vec::new()),
        }
    }

    /// The measurements of `scope`'s request, when the [`Timing`] layer is on.
    pub fn of(scope: &Scope) -> Option<Arc<ServerTiming>> {
        scope.stash.get::<ServerTiming>()
    }

    fn push(&self, m: Metric) {
        if !valid_name(&m.name) {
            tracing::debug!(name = %m.name, "Server-Timing: not a token; metric skipped");
            return;
        }
        self.metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(m);
    }

    /// Records `name` with a duration.
    pub fn record(&self, name: &str, dur: Duration) {
        self.push(Metric {
            name: name.to_owned(),
            dur: Some(dur),
            desc: None,
        });
    }

    /// Records `name` with a duration and a description.
    pub fn record_with(&self, name: &str, dur: Duration, desc: &str) {
        self.push(Metric {
            name: name.to_owned(),
            dur: Some(dur),
            desc: Some(desc.to_owned()),
        });
    }

    /// Records `name` with a description and no duration (`cache;desc="hit"`).
    pub fn describe(&self, name: &str, desc: &str) {
        self.push(Metric {
            name: name.to_owned(),
            dur: None,
            desc: Some(desc.to_owned()),
        });
    }

    /// Measures `name` from now until the returned guard is dropped.
    pub fn start(self: &Arc<Self>, name: &str) -> TimingGuard {
        TimingGuard {
            timing: self.clone(),
            name: name.to_owned(),
            start: Instant::now(),
        }
    }

    /// Time since the request arrived (the layer was called).
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn take(&self) -> Vec<Metric> {
        std::mem::take(&mut *self.metrics.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Records its metric when dropped; made by [`ServerTiming::start`].
#[derive(Debug)]
pub struct TimingGuard {
    timing: Arc<ServerTiming>,
    name: String,
    start: Instant,
}

impl Drop for TimingGuard {
    fn drop(&mut self) {
        let dur = self.start.elapsed();
        self.timing.push(Metric {
            name: std::mem::take(&mut self.name),
            dur: Some(dur),
            desc: None,
        });
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(ragi::headers::is_token_byte)
}

/// Milliseconds with up to three decimals, trailing zeros dropped: `12.3`, `250`.
fn millis(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64() * 1000.0);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

fn render(metrics: &[Metric], total_name: &str, total: Duration) -> String {
    let mut out = String::new();
    for m in metrics {
        out.push_str(&m.name);
        if let Some(d) = m.dur {
            let _ = write!(out, ";dur={}", millis(d));
        }
        if let Some(desc) = &m.desc {
            out.push_str(";desc=\"");
            for c in desc.chars() {
                match c {
                    '"' | '\\' => {
                        out.push('\\');
                        out.push(c);
                    }
                    c if c.is_control() => {}
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push_str(", ");
    }
    let _ = write!(out, "{total_name};dur={}", millis(total));
    out
}

/// The layer. See the [module documentation](self).
#[derive(Clone)]
pub struct Timing {
    total: Arc<str>,
    trailer: bool,
    enable_if: Option<Arc<dyn Fn(&Scope) -> bool + Send + Sync>>,
}

impl std::fmt::Debug for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timing")
            .field("total", &self.total)
            .field("trailer", &self.trailer)
            .finish_non_exhaustive()
    }
}

impl Default for Timing {
    fn default() -> Self {
        Self::new()
    }
}

impl Timing {
    /// `total` in every head, and in the trailers of responses that announce them.
    pub fn new() -> Self {
        Self {
            total: Arc::from("total"),
            trailer: true,
            enable_if: None,
        }
    }

    /// Names the total metric `name` instead of `total`.
    ///
    /// # Panics
    ///
    /// When `name` is not a token.
    pub fn total_name(mut self, name: &str) -> Self {
        assert!(valid_name(name), "not a metric name: {name:?}");
        self.total = Arc::from(name);
        self
    }

    /// Whether to add the trailer field to responses that announce trailers (yes by default).
    pub fn trailer(mut self, on: bool) -> Self {
        self.trailer = on;
        self
    }

    /// Adds the header only to the requests `f` picks (e.g. from your own network).
    pub fn enable_if(mut self, f: impl Fn(&Scope) -> bool + Send + Sync + 'static) -> Self {
        self.enable_if = Some(Arc::new(f));
        self
    }
}

impl Layer for Timing {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(TimingApp {
            cfg: self.clone(),
            inner,
        })
    }
}

struct TimingApp {
    cfg: Timing,
    inner: SharedApp,
}

impl App for TimingApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        if scope.kind == ScopeKind::Lifespan
            || self.cfg.enable_if.as_ref().is_some_and(|f| !f(&scope))
        {
            return self.inner.call(scope, receive, send);
        }
        let timing = Arc::new(ServerTiming::new());
        scope.stash.insert_arc(timing.clone());
        let send = tap(
            send,
            AddTiming {
                timing,
                total: self.cfg.total.clone(),
                trailer: self.cfg.trailer,
            },
        );
        self.inner.call(scope, receive, send)
    }
}

struct AddTiming {
    timing: Arc<ServerTiming>,
    total: Arc<str>,
    trailer: bool,
}

impl Tap for AddTiming {
    type Note = ();

    fn before(&self, event: &mut SendEvent) -> Result<(), SendError> {
        match event {
            SendEvent::ResponseTrailers { headers } if self.trailer => {
                let value = render(&self.timing.take(), &self.total, self.timing.elapsed());
                headers.push("server-timing", value);
            }
            SendEvent::ResponseStart { headers, .. }
            | SendEvent::HttpResponseStart { headers, .. }
            | SendEvent::SseStart { headers, .. } => {
                let value = render(&self.timing.take(), &self.total, self.timing.elapsed());
                headers.push("server-timing", value);
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_w3c_syntax() {
        let m = vec![
            Metric {
                name: "db".into(),
                dur: Some(Duration::from_micros(12_300)),
                desc: None,
            },
            Metric {
                name: "cache".into(),
                dur: None,
                desc: Some("a \"hit\"".into()),
            },
        ];
        assert_eq!(
            render(&m, "total", Duration::from_millis(250)),
            "db;dur=12.3, cache;desc=\"a \\\"hit\\\"\", total;dur=250"
        );
        assert!(!valid_name("a b"));
        assert!(valid_name("db-read"));
    }
}
