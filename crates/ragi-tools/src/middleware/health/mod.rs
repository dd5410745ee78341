//! Health checks answered before the app: liveness (the process answers) and readiness (your
//! checks pass).
//!
//! ```
//! use std::time::Duration;
//! use ragi_tools::middleware::health::Health;
//! use ragi_tools::{handler, AppExt, HttpContext};
//!
//! async fn app(_cx: HttpContext) -> &'static str { "app" }
//!
//! let health = Health::new()                 // GET /healthz → 200 {"status":"ok"}
//!     .check("database", || async {          // GET /readyz runs every check
//!         // e.g. pool.get().await.map(|_| ()).map_err(|e| e.to_string())
//!         Ok::<(), String>(())
//!     })
//!     .check_timeout(Duration::from_secs(2));
//! let app = handler(app).layer(health);
//! # let _ = app;
//! ```
//!
//! # Endpoints
//!
//! * **Liveness**, `/healthz` ([`liveness_path`](Health::liveness_path)): `200`
//!   `{"status":"ok"}` as long as the server answers at all. It runs nothing: a liveness probe
//!   that fails on a database outage makes an orchestrator restart healthy processes.
//! * **Readiness**, `/readyz` ([`readiness_path`](Health::readiness_path)): runs every
//!   [`check`](Health::check) concurrently, each bounded by
//!   [`check_timeout`](Health::check_timeout) (5 s by default), and answers `200` when all
//!   pass, `503` when any fails or times out, with each check's outcome:
//!   `{"status":"fail","checks":{"database":{"status":"fail","error":"connection refused"}}}`.
//!   Without checks it answers like liveness.
//!
//! Both answer `GET` and `HEAD` (other methods: 405 with `Allow: GET, HEAD`), with
//! `Cache-Control: no-store`, before the app and whatever is inside this layer (put it before
//! maintenance mode and rate limits unless probes should meet them too). Other paths, and
//! WebSocket and lifespan scopes, go to the app. Paths are compared with the scope's decoded
//! `path`.
//!
//! If the prober leaves while the checks run, the checks' futures are dropped at once (they
//! run on the request's own task, so nothing is left behind) and nothing is sent.
//!
//! # References
//!
//! PAGI's `Healthcheck` app answers one path with a JSON status and optional checks, run one
//! after the other with no time bound; Starlette and tower-http have none. ragi separates
//! liveness from readiness (Kubernetes' probe model), bounds and parallelises the checks, and
//! drops them when the prober leaves.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use ragi::{App, AppResult, BoxFuture, Receiver, Scope, ScopeKind, Sender};

use super::observe::answer;
use crate::{Error, IntoResponse, Layer, Response, SharedApp};

type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The health-check layer. See the [module documentation](self).
#[derive(Clone)]
pub struct Health {
    live: Arc<str>,
    ready: Arc<str>,
    checks: Vec<(Arc<str>, CheckFn)>,
    timeout: Duration,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("live", &self.live)
            .field("ready", &self.ready)
            .field(
                "checks",
                &self.checks.iter().map(|c| &*c.0).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// `/healthz` and `/readyz`, no checks, 5 s per check.
    pub fn new() -> Self {
        Self {
            live: Arc::from("/healthz"),
            ready: Arc::from("/readyz"),
            checks: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    }

    /// Answers liveness at `path`.
    pub fn liveness_path(mut self, path: &str) -> Self {
        self.live = Arc::from(path);
        self
    }

    /// Answers readiness at `path`.
    pub fn readiness_path(mut self, path: &str) -> Self {
        self.ready = Arc::from(path);
        self
    }

    /// Adds a readiness check named `name`: `Ok(())` when ready, an error (its text is shown)
    /// when not.
    pub fn check<F, Fut, E>(mut self, name: &str, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let f = Arc::new(f);
        let run: CheckFn = Arc::new(move || {
            let fut = f();
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        });
        self.checks.push((Arc::from(name), run));
        self
    }

    /// Bounds each check (5 s by default); one that takes longer fails.
    pub fn check_timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Runs every check at once and reports each.
    async fn run_checks(&self) -> (bool, serde_json::Map<String, serde_json::Value>) {
        let timeout = self.timeout;
        let mut pending: Vec<Option<Pin<Box<dyn Future<Output = Result<(), String>> + Send>>>> =
            self.checks
                .iter()
                .map(|(_, f)| {
                    let fut = f();
                    Some(Box::pin(async move {
                        match tokio::time::timeout(timeout, fut).await {
                            Ok(r) => r,
                            Err(_) => Err(format!("timed out after {timeout:?}")),
                        }
                    })
                        as Pin<Box<dyn Future<Output = _> + Send>>)
                })
                .collect();
        let mut results: Vec<Option<Result<(), String>>> = vec![None; pending.len()];
        std::future::poll_fn(|cx| {
            let mut all = true;
            for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
                if let Some(fut) = slot {
                    match fut.as_mut().poll(cx) {
                        Poll::Ready(r) => {
                            *result = Some(r);
                            *slot = None;
                        }
                        Poll::Pending => all = false,
                    }
                }
            }
            if all {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        let mut ok = true;
        let mut map = serde_json::Map::new();
        for ((name, _), r) in self.checks.iter().zip(results) {
            let v = match r.unwrap_or_else(|| Err("not run".to_owned())) {
                Ok(()) => serde_json::json!({ "status": "ok" }),
                Err(e) => {
                    ok = false;
                    serde_json::json!({ "status": "fail", "error": e })
                }
            };
            map.insert(name.to_string(), v);
        }
        (ok, map)
    }
}

fn status(ok: bool, checks: Option<serde_json::Map<String, serde_json::Value>>) -> Response {
    let mut body = serde_json::json!({ "status": if ok { "ok" } else { "fail" } });
    if let Some(c) = checks {
        body["checks"] = serde_json::Value::Object(c);
    }
    Response::json(&body)
        .with_status(if ok { 200 } else { 503 })
        .header("cache-control", "no-store")
}

impl Layer for Health {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(HealthApp {
            cfg: Arc::new(self.clone()),
            inner,
        })
    }
}

struct HealthApp {
    cfg: Arc<Health>,
    inner: SharedApp,
}

impl App for HealthApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let cfg = &self.cfg;
        let live = scope.path == *cfg.live;
        let ready = scope.path == *cfg.ready;
        if !matches!(scope.kind, ScopeKind::Http | ScopeKind::Sse) || !(live || ready) {
            return self.inner.call(scope, receive, send);
        }
        if scope.method != http::Method::GET && scope.method != http::Method::HEAD {
            return answer(
                scope,
                send,
                Error::method_not_allowed("GET, HEAD").into_response(),
            );
        }
        if live || cfg.checks.is_empty() {
            return answer(scope, send, status(true, None));
        }
        let cfg = cfg.clone();
        Box::pin(async move {
            let connection = scope.connection().clone();
            let checks = cfg.run_checks();
            tokio::pin!(checks);
            let (ok, results) = tokio::select! {
                r = &mut checks => r,
                reason = connection.disconnected() => {
                    tracing::debug!(reason = %reason, "health: the prober left; checks dropped");
                    return Ok(());
                }
            };
            if !ok {
                tracing::warn!(checks = %serde_json::Value::Object(results.clone()), "not ready");
            }
            answer(scope, send, status(ok, Some(results))).await
        })
    }
}
