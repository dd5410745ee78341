//! X-Sendfile / X-Accel-Redirect: an app names a file in a response header, and this layer
//! sends the file instead — with validators, conditional requests, ranges and HEAD — from an
//! allowed root only.
//!
//! ```
//! use ragi_tools::middleware::sendfile::Sendfile;
//! use ragi_tools::prelude::*;
//!
//! async fn invoice(cx: HttpContext) -> Result<Response, Error> {
//!     let id: u32 = cx.param_as("id")?;
//!     // … check that this user may see invoice `id` …
//!     Ok(Response::new(200)
//!         .header("x-sendfile", format!("/srv/invoices/{id}.pdf"))
//!         .header("content-disposition", "attachment"))
//! }
//!
//! let app = Router::new()
//!     .get("/invoices/{id}", invoice)
//!     .layer(
//!         Sendfile::new()
//!             .root("/srv/invoices")                     // X-Sendfile: a path under it
//!             .accel_location("/protected/", "/srv/files"), // X-Accel-Redirect: /protected/…
//!     );
//! # let _ = app;
//! ```
//!
//! # What it does
//!
//! When an `http` response head carries `X-Sendfile` (a filesystem path) or
//! `X-Accel-Redirect` (a URI path under a configured location, nginx-style), the layer
//! replaces the app's response: the head and any body the app sends are dropped (its `send`s
//! succeed), and the file goes out through the toolkit's file sending
//! ([`crate::response::file::FileResponse`]): `Content-Type` from the extension
//! (unless the app set one), `Content-Length`, `ETag`, `Last-Modified`, `Accept-Ranges`,
//! and for a 200 the request's preconditions (304, 412), `Range` (206, multipart, 416) and
//! HEAD. The app's other headers (`Content-Disposition`, `Cache-Control`, …) are kept; the
//! `X-Sendfile` / `X-Accel-Redirect` field itself never reaches the client. A status other
//! than 200 is kept and the whole file sent (an app's own 404 page, say).
//!
//! # Roots
//!
//! A file is sent only from inside an allowed root, decided on the **resolved** path: the path
//! and the root are canonicalised (symbolic links followed, `..` resolved) and the file must
//! lie under the root by whole components, so `/srv/www-evil/x` is not under `/srv/www`, and a
//! link inside the root that leads out of it is refused. `X-Sendfile` must be an absolute path
//! under one of the [`root`](Sendfile::root)s. `X-Accel-Redirect` must start with a configured
//! [location](Sendfile::accel_location); the rest is percent-decoded and must have no `..`
//! segment, no backslash and no NUL before it is joined to the location's directory. A refused
//! or missing file is a **404** (the attempt is logged at WARN with the path): the client
//! learns nothing of the file system. With no root configured, every request for a file is
//! refused.
//!
//! The file is sent by the server from its path (no copy through the app) and reading stops
//! when the client leaves.
//!
//! # References
//!
//! Apache's `mod_xsendfile` (`X-Sendfile`, `XSendFilePath` allow-list) and nginx's
//! `X-Accel-Redirect` (an internal location) do this in front of an application; PAGI's
//! `XSendfile` middleware turns the header into a `file` body without a root check (any path
//! the app names is served) and without preconditions or ranges. Starlette and tower-http have
//! none. ragi checks the resolved path against the roots and serves through the same file
//! sending as the static files.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ragi::{
    App, AppResult, BoxFuture, Headers, Receiver, Scope, ScopeKind, SendError, SendEvent, SendSink,
    Sender,
};

use crate::response::file::FileResponse;
use crate::response::Responder;
use crate::{Error, IntoResponse, Layer, Response, SharedApp};

/// The layer. See the [module documentation](self).
#[derive(Clone, Debug, Default)]
pub struct Sendfile {
    roots: Vec<PathBuf>,
    locations: Vec<(String, PathBuf)>,
}

impl Sendfile {
    /// No root yet: add [`root`](Self::root)s or [`accel_location`](Self::accel_location)s.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows `X-Sendfile` paths under `dir`.
    pub fn root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.roots.push(dir.into());
        self
    }

    /// Maps `X-Accel-Redirect` values under the URI path `prefix` (e.g. `/protected/`) to
    /// files under `dir`.
    pub fn accel_location(mut self, prefix: &str, dir: impl Into<PathBuf>) -> Self {
        let mut prefix = prefix.to_owned();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        self.locations.push((prefix, dir.into()));
        self
    }

    /// The file an `X-Sendfile` value names, if it is under a root.
    async fn sendfile_path(&self, value: &str) -> Option<PathBuf> {
        let path = Path::new(value);
        if !path.is_absolute() || value.contains('\0') {
            return None;
        }
        for root in &self.roots {
            if let Some(p) = within(root, path).await {
                return Some(p);
            }
        }
        None
    }

    /// The file an `X-Accel-Redirect` value names, if it is under a location.
    async fn accel_path(&self, value: &str) -> Option<PathBuf> {
        let value = value.split(['?', '#']).next().unwrap_or("");
        for (prefix, dir) in &self.locations {
            let Some(rest) = value.strip_prefix(prefix.as_str()) else {
                continue;
            };
            let decoded = percent_encoding::percent_decode_str(rest)
                .decode_utf8()
                .ok()?;
            if decoded.contains(['\0', '\\']) {
                return None;
            }
            let rel = Path::new(&*decoded);
            if rel
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
            {
                return None;
            }
            return within(dir, &dir.join(rel)).await;
        }
        None
    }
}

/// `path` resolved, when it lies under `root` resolved (whole components).
async fn within(root: &Path, path: &Path) -> Option<PathBuf> {
    let root = tokio::fs::canonicalize(root).await.ok()?;
    let real = tokio::fs::canonicalize(path).await.ok()?;
    real.starts_with(&root).then_some(real)
}

impl Layer for Sendfile {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(SendfileApp {
            cfg: Arc::new(self.clone()),
            inner,
        })
    }
}

struct SendfileApp {
    cfg: Arc<Sendfile>,
    inner: SharedApp,
}

impl App for SendfileApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        if scope.kind != ScopeKind::Http {
            return self.inner.call(scope, receive, send);
        }
        let sink = SendfileSink {
            cfg: self.cfg.clone(),
            scope: scope.clone(),
            inner: send,
            replaced: AtomicBool::new(false),
        };
        self.inner.call(scope, receive, Sender::new(sink))
    }
}

struct SendfileSink {
    cfg: Arc<Sendfile>,
    scope: Scope,
    inner: Sender,
    /// The app's response was replaced by a file: its body is dropped.
    replaced: AtomicBool,
}

const SENDFILE: &str = "x-sendfile";
const ACCEL: &str = "x-accel-redirect";

impl SendfileSink {
    async fn replace(&self, status: u16, mut headers: Headers) -> Result<(), SendError> {
        let sendfile = headers.get_str(SENDFILE).map(str::to_owned);
        let accel = headers.get_str(ACCEL).map(str::to_owned);
        headers.remove(SENDFILE);
        headers.remove(ACCEL);
        let named = sendfile
            .clone()
            .or_else(|| accel.clone())
            .unwrap_or_default();
        let path = match (&sendfile, &accel) {
            (Some(v), _) => self.cfg.sendfile_path(v.trim()).await,
            (None, Some(v)) => self.cfg.accel_path(v.trim()).await,
            (None, None) => None,
        };
        let response = match path {
            None => {
                tracing::warn!(
                    file = %named,
                    path = %self.scope.path,
                    "sendfile: the file is missing or outside the allowed roots; 404"
                );
                Error::not_found().into_response()
            }
            Some(path) => self.file_response(status, headers, path).await,
        };
        match Responder::new(&self.scope, self.inner.clone())
            .send(response)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => match e.disconnect_reason() {
                Some(r) => Err(SendError::disconnected(r.clone())),
                None => Err(SendError::invalid_event(e.to_string())),
            },
        }
    }

    async fn file_response(&self, status: u16, headers: Headers, path: PathBuf) -> Response {
        let file = match FileResponse::open(path).await {
            Ok(f) => f,
            Err(e) => return e.into_response(),
        };
        let app_type = headers.get_str("content-type").map(str::to_owned);
        let mut file = match app_type {
            Some(t) => file.content_type(Some(t)),
            None => file,
        };
        let kept = |n: &[u8]| {
            !["content-type", "content-length", "transfer-encoding"]
                .iter()
                .any(|f| n.eq_ignore_ascii_case(f.as_bytes()))
        };
        for (n, v) in headers.iter().filter(|(n, _)| kept(n)) {
            file = file.header(n.clone(), v.clone());
        }
        if status == 200 {
            return file.respond(&self.scope.method, &self.scope.headers);
        }
        // Another status: the whole file under it (no preconditions, no ranges).
        let mut r = file.respond(&self.scope.method, &Headers::new());
        r = r.with_status(status);
        r
    }
}

impl SendSink for SendfileSink {
    fn send(&self, event: SendEvent) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async move {
            let replaced = self.replaced.load(Ordering::Acquire);
            match event {
                SendEvent::ResponseStart {
                    status, headers, ..
                } if !replaced && (headers.contains(SENDFILE) || headers.contains(ACCEL)) => {
                    self.replaced.store(true, Ordering::Release);
                    self.replace(status, headers).await
                }
                // The app's own body (and trailers, flushes) of a replaced response.
                SendEvent::ResponseBody { .. }
                | SendEvent::ResponseTrailers { .. }
                | SendEvent::FullFlush
                    if replaced =>
                {
                    Ok(())
                }
                other => self.inner.send(other).await,
            }
        })
    }
}
