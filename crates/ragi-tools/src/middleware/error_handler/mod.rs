//! The error handler: an app that fails or panics before answering gets a clean 500 (a page
//! with the error in development mode only); one that fails after its response started is
//! aborted, never patched up.
//!
//! ```
//! use ragi_tools::middleware::error_handler::ErrorHandler;
//! use ragi_tools::{handler, AppExt, HttpContext};
//!
//! async fn flaky(_cx: HttpContext) -> &'static str {
//!     panic!("the index is corrupt")
//! }
//!
//! // Production: `500 {"error":"Internal Server Error"}`, the panic in the log.
//! let app = handler(flaky).layer(ErrorHandler::new());
//! // Development: a page with the error, the request and its headers.
//! let dev = handler(flaky).layer(ErrorHandler::new().development(cfg!(debug_assertions)));
//! # let _ = (app, dev);
//! ```
//!
//! # What it catches
//!
//! * the app's call returning an **error**, or **panicking** (caught around every poll of the
//!   app's future, so the panic never reaches the server's task);
//! * an `http` app returning **without any response** (the server would answer 500 itself;
//!   here it is logged as the failure it is, and gets the development page).
//!
//! # What the client gets
//!
//! * **Nothing was sent yet**: an error the toolkit made with a client status (say a raw app's
//!   `Error::not_found().into_app_error()`) is sent as it is; anything else becomes 500. In
//!   production (the default) the body says only `Internal Server Error` (JSON or text by
//!   `Accept`). In [development](ErrorHandler::development) mode it is a page (HTML when the
//!   client prefers HTML, else plain text) with the error and its causes, whether it was a
//!   panic, the method, path, request id and headers (`Authorization`, `Cookie` and
//!   `Proxy-Authorization` redacted). SSE requests get it as the decline 500, WebSocket
//!   handshakes as the denial 500 (or a close answered with 403).
//! * **The response had started** (a head, an SSE start, a WebSocket accept): nothing can be
//!   patched into it. The call returns an error, so the server aborts (HTTP/1.1 closes without
//!   the last chunk, HTTP/2 resets the stream, a WebSocket closes with 1011) and the client
//!   never takes a truncated answer for a whole one.
//! * **The client had left**: nothing is sent, and the failure is logged at debug level only
//!   when it is the departure itself (a `send` that failed with the reason).
//!
//! Every failure is logged once (`tracing`, ERROR) with the method, path and request id.
//! Lifespan scopes pass through untouched.
//!
//! # References
//!
//! Starlette's `ServerErrorMiddleware` answers 500 (a traceback page with `debug=True`) and
//! re-raises; after the response started it can only re-raise. tower-http's `CatchPanic`
//! catches panics only, answering 500 whatever was sent. PAGI's `ErrorHandler` catches
//! exceptions (a development page with a stack trace) but sends its 500 even after the response
//! started, which corrupts the stream. ragi never sends a second head: it aborts.

use std::any::Any;
use std::fmt::Write as _;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, SendError, SendEvent, Sender};

use super::observe::{answer, head_status, tap, Tap};
use super::request_id::RequestId;
use crate::{Error, IntoResponse, Layer, Response, SharedApp};

/// What went wrong, as the development page and a custom renderer see it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Failure {
    /// The error's text, or the panic's message.
    pub message: String,
    /// The error's causes, outermost first (empty for a panic).
    pub causes: Vec<String>,
    /// Whether the app panicked.
    pub panicked: bool,
}

/// The error-handler layer. See the [module documentation](self).
#[derive(Clone, Default)]
pub struct ErrorHandler {
    development: bool,
    render: Option<Arc<dyn Fn(&Scope, &Failure) -> Response + Send + Sync>>,
}

impl std::fmt::Debug for ErrorHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrorHandler")
            .field("development", &self.development)
            .field("custom_render", &self.render.is_some())
            .finish()
    }
}

impl ErrorHandler {
    /// Production mode: a plain 500.
    pub fn new() -> Self {
        Self::default()
    }

    /// Development mode (`true`): the 500 shows the error and the request. Never on a server
    /// others can reach: the page shows what the app was doing.
    pub fn development(mut self, on: bool) -> Self {
        self.development = on;
        self
    }

    /// Renders the 500 with `f` instead (either mode).
    pub fn render(
        mut self,
        f: impl Fn(&Scope, &Failure) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.render = Some(Arc::new(f));
        self
    }
}

impl Layer for ErrorHandler {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(ErrorHandlerApp {
            cfg: self.clone(),
            inner,
        })
    }
}

struct ErrorHandlerApp {
    cfg: ErrorHandler,
    inner: SharedApp,
}

/// Whether a response (or a WebSocket accept or refusal) was sent.
struct Started(Arc<AtomicBool>);

impl Tap for Started {
    type Note = ();

    fn before(&self, event: &mut SendEvent) -> Result<(), SendError> {
        if head_status(event).is_some() || matches!(event, SendEvent::WebSocketClose { .. }) {
            self.0.store(true, Ordering::Release);
        }
        Ok(())
    }
}

/// A future whose panics come out as `Err(payload)`.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}

impl App for ErrorHandlerApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        if scope.kind == ScopeKind::Lifespan {
            return self.inner.call(scope, receive, send);
        }
        let started = Arc::new(AtomicBool::new(false));
        let app_send = tap(send.clone(), Started(started.clone()));
        let kept = scope.clone();
        let fut = self.inner.call(scope, receive, app_send);
        let cfg = self.cfg.clone();
        Box::pin(async move {
            let (failure, error) = match CatchUnwind(fut).await {
                Ok(Ok(())) => {
                    let answered =
                        started.load(Ordering::Acquire) || kept.connection().response_started();
                    if answered || kept.kind != ScopeKind::Http || !kept.connection().is_connected()
                    {
                        return Ok(());
                    }
                    let f = Failure {
                        message: "the app returned without sending a response".to_owned(),
                        causes: Vec::new(),
                        panicked: false,
                    };
                    (f, None)
                }
                Ok(Err(e)) => {
                    let mut causes = Vec::new();
                    let mut src = e.source();
                    while let Some(s) = src {
                        causes.push(s.to_string());
                        src = s.source();
                    }
                    let f = Failure {
                        message: e.to_string(),
                        causes,
                        panicked: false,
                    };
                    (f, Some(Error::from_app_error(e)))
                }
                Err(payload) => {
                    let f = Failure {
                        message: panic_message(&*payload),
                        causes: Vec::new(),
                        panicked: true,
                    };
                    (f, None)
                }
            };
            let connection = kept.connection();
            let request_id = RequestId::of(&kept).map(|id| id.to_string());
            if error.as_ref().is_some_and(Error::is_disconnected) {
                tracing::debug!(error = %failure.message, "the app stopped: its client left");
                return Ok(());
            }
            tracing::error!(
                method = %kept.method,
                path = %kept.path,
                request_id = request_id.as_deref(),
                panicked = failure.panicked,
                causes = ?failure.causes,
                "app failed: {}",
                failure.message
            );
            if !connection.is_connected() {
                return Ok(());
            }
            if started.load(Ordering::Acquire) || connection.response_started() {
                return Err(
                    format!("app failed after its response started: {}", failure.message).into(),
                );
            }
            let response = match (error, &cfg.render) {
                (_, Some(render)) => render(&kept, &failure),
                (Some(e), None) if e.status() < 500 => e.into_response(),
                (_, None) if cfg.development => debug_page(&kept, &failure, request_id.as_deref()),
                (_, None) => Error::new(500, "Internal Server Error").into_response(),
            };
            answer(kept, send, response).await
        })
    }
}

/// Headers never shown, even in development.
const REDACTED: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn wants_html(scope: &Scope) -> bool {
    scope.headers.get_str("accept").is_some_and(|a| {
        a.split(',').any(|m| {
            let mut p = m.split(';');
            let media = p.next().unwrap_or("").trim();
            let q0 = p.any(|x| {
                let x = x.trim();
                x.strip_prefix("q=")
                    .is_some_and(|v| v.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
            });
            media.eq_ignore_ascii_case("text/html") && !q0
        })
    })
}

/// The development page: HTML or text.
fn debug_page(scope: &Scope, f: &Failure, request_id: Option<&str>) -> Response {
    let title = if f.panicked {
        "The app panicked"
    } else {
        "The app failed"
    };
    let mut facts: Vec<(&str, String)> = vec![
        ("method", scope.method.to_string()),
        ("path", format!("{}{}", scope.root_path, scope.path)),
        (
            "query",
            String::from_utf8_lossy(&scope.query_string).into_owned(),
        ),
        ("scope", scope.kind.as_str().to_owned()),
    ];
    if let Some(id) = request_id {
        facts.push(("request id", id.to_owned()));
    }
    let headers: Vec<(String, String)> = scope
        .headers
        .iter()
        .map(|(n, v)| {
            let name = String::from_utf8_lossy(n).into_owned();
            let value = if REDACTED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
                "[redacted]".to_owned()
            } else {
                String::from_utf8_lossy(v).into_owned()
            };
            (name, value)
        })
        .collect();
    if wants_html(scope) {
        let mut s = String::new();
        let _ = write!(
            s,
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>500 · {title}</title></head><body><h1>{title}</h1><pre>{}</pre>",
            html_escape(&f.message)
        );
        if !f.causes.is_empty() {
            s.push_str("<h2>Caused by</h2><ol>");
            for c in &f.causes {
                let _ = write!(s, "<li><pre>{}</pre></li>", html_escape(c));
            }
            s.push_str("</ol>");
        }
        s.push_str("<h2>Request</h2><table>");
        for (k, v) in &facts {
            let _ = write!(s, "<tr><th>{k}</th><td>{}</td></tr>", html_escape(v));
        }
        s.push_str("</table><h2>Headers</h2><table>");
        for (k, v) in &headers {
            let _ = write!(
                s,
                "<tr><th>{}</th><td>{}</td></tr>",
                html_escape(k),
                html_escape(v)
            );
        }
        s.push_str("</table><p>Shown because the error handler is in development mode.</p></body></html>\n");
        Response::html(s).with_status(500)
    } else {
        let mut s = format!("500 {title}: {}\n", f.message);
        for c in &f.causes {
            let _ = writeln!(s, "  caused by: {c}");
        }
        s.push('\n');
        for (k, v) in &facts {
            let _ = writeln!(s, "{k}: {v}");
        }
        s.push_str("\nheaders:\n");
        for (k, v) in &headers {
            let _ = writeln!(s, "  {k}: {v}");
        }
        s.push_str("\n(shown because the error handler is in development mode)\n");
        Response::text(s).with_status(500)
    }
}
