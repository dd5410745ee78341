//! What routing a request costs, on a 50-route table.
//!
//! ```text
//! taskset -c 1 cargo bench -p ragi-tools --bench router
//! ```
//!
//! Two figures per request path:
//!
//! * **match**: the trie walk alone (`Router::match_path`: raw path in, pattern out);
//! * **dispatch**: `Router::call` up to the first poll of the routed app's future (walk,
//!   parameter decoding, the stash entries, the app call), minus the same call made directly
//!   on that app: what putting the router in front of an app adds. Both sides run interleaved
//!   in every round; the table shows medians over the rounds.

use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use http::Method;
use ragi::{
    App, AppResult, BoxFuture, ReceiveEvent, ReceiveSource, Receiver, Scope, ScopeKind, Sender,
};
use ragi_tools::router::{Route, Router};

/// The routed app: returns at once (so the figure is the router's, not a handler's). Every
/// route and mount of the table is this app, so the baseline calls it directly.
#[derive(Clone)]
struct Noop;

impl App for Noop {
    fn call(&self, scope: Scope, _r: Receiver, _s: Sender) -> BoxFuture<'static, AppResult> {
        black_box(&scope);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// A route answering GET (and `more`) with [`Noop`].
fn noop(more: Option<Method>) -> Route {
    let r = Route::new().on_app(Method::GET, Noop);
    match more {
        Some(m) => r.on_app(m, Noop),
        None => r,
    }
}

/// 50 routes in the shape of a real API: literals, parameters, constrained parameters, tails,
/// several methods per path, a group, a mount.
fn table() -> Router {
    let mut r = Router::new();
    let literal = [
        "/",
        "/health",
        "/metrics",
        "/login",
        "/logout",
        "/signup",
        "/about",
        "/pricing",
        "/docs",
        "/blog",
        "/search",
        "/feed",
        "/settings",
        "/settings/profile",
        "/settings/keys",
        "/notifications",
    ];
    for p in literal {
        r = r.route(p, noop(None));
    }
    let params = [
        r"/users/{id:\d+}",
        "/users/{name}/repos",
        r"/users/{id:\d+}/followers",
        r"/users/{id:\d+}/following",
        "/repos/{owner}/{repo}",
        "/repos/{owner}/{repo}/issues",
        r"/repos/{owner}/{repo}/issues/{n:\d+}",
        r"/repos/{owner}/{repo}/issues/{n:\d+}/comments",
        "/repos/{owner}/{repo}/pulls",
        r"/repos/{owner}/{repo}/pulls/{n:\d+}",
        "/repos/{owner}/{repo}/branches/{branch}",
        "/repos/{owner}/{repo}/tags",
        "/repos/{owner}/{repo}/releases/latest",
        "/repos/{owner}/{repo}/contents/{*path}",
        "/orgs/{org}",
        "/orgs/{org}/members",
        "/orgs/{org}/teams/{team}",
        "/gists/{id}",
        "/gists/{id}/star",
        "/files/{*rest}",
    ];
    for p in params {
        r = r.route(p, noop(Some(Method::POST)));
    }
    r = r.group("/admin", |g| {
        let mut g = g;
        for p in [
            "/users",
            "/users/{id}",
            "/audit",
            "/audit/{day}",
            "/jobs",
            "/jobs/{id}/retry",
            "/flags",
            "/flags/{name}",
            "/cache",
            "/stats",
        ] {
            g = g.route(p, noop(Some(Method::DELETE)));
        }
        g
    });
    r = r.mount("/static", Noop);
    r = r.mount("/api/v2", Router::new().route("/ping", noop(None)));
    r = r.mount("/legacy", Noop);
    r.route("/teapot", noop(None))
}

struct Empty;

impl ReceiveSource for Empty {
    fn poll_receive(&mut self, _cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        Poll::Pending
    }
}

struct Discard;

impl ragi::SendSink for Discard {
    fn send(&self, _event: ragi::SendEvent) -> BoxFuture<'_, Result<(), ragi::SendError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

fn scope(path: &'static str) -> Scope {
    let mut s = Scope::new(ScopeKind::Http);
    s.method = Method::GET;
    s.raw_path = Bytes::from_static(path.as_bytes());
    s.path = path.to_owned();
    s
}

fn poll_once(mut f: BoxFuture<'static, AppResult>) {
    let mut cx = Context::from_waker(Waker::noop());
    let _ = black_box(f.as_mut().poll(&mut cx));
}

// One function per loop (never inlined), so that callgrind reports each loop's instructions
// on its own: `valgrind --tool=callgrind` with CASE=<label> ITERS=<n> ROUNDS=1, then
// `callgrind_annotate --inclusive=yes`.

/// ns per `match_path`.
#[inline(never)]
fn match_loop(router: &Router, method: &Method, path: &str, iters: u32) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        let _ = black_box(router.match_path(black_box(method), black_box(path.as_bytes())));
    }
    t.elapsed().as_nanos() as f64 / f64::from(iters)
}

/// ns per request handed straight to the app (the baseline): scope clone, fresh stash and
/// receiver, call, first poll.
#[inline(never)]
fn direct_loop(app: &Arc<dyn App>, base: &Scope, send: &Sender, iters: u32) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        let mut s = base.clone();
        s.stash = Default::default(); // a fresh stash per request, as a server makes
        poll_once(app.call(s, Receiver::new(Empty), send.clone()));
    }
    t.elapsed().as_nanos() as f64 / f64::from(iters)
}

/// ns per request through the router, otherwise as `direct_loop`.
#[inline(never)]
fn routed_loop(router: &Router, base: &Scope, send: &Sender, iters: u32) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        let mut s = base.clone();
        s.stash = Default::default();
        poll_once(router.call(s, Receiver::new(Empty), send.clone()));
    }
    t.elapsed().as_nanos() as f64 / f64::from(iters)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let router = table();
    let routed: Arc<dyn App> = Arc::new(Noop);
    let send = Sender::new(Discard);
    let paths: &[(&str, &'static str)] = &[
        ("literal", "/settings/profile"),
        ("param", "/users/octocat/repos"),
        ("constrained", "/repos/rust-lang/rust/issues/12345"),
        ("tail", "/repos/rust-lang/rust/contents/src/lib/mod.rs"),
        ("encoded", "/files/a%2Fb%20c"),
        ("group", "/admin/jobs/42/retry"),
        ("mount", "/api/v2/ping"),
        ("404", "/nothing/here"),
        ("405", "/health"),
    ];
    let env = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let rounds = env("ROUNDS", 15);
    let iters = env("ITERS", 20_000);
    println!(
        "{:<12} {:<48} {:>10} {:>10} {:>13} {:>13}",
        "path", "", "match ns", "(min)", "dispatch ns", "(min)"
    );
    let only = std::env::var("CASE").ok();
    for &(label, path) in paths {
        if only.as_deref().is_some_and(|c| c != label) {
            continue;
        }
        let method = if label == "405" {
            Method::DELETE
        } else {
            Method::GET
        };
        let (mut m, mut d, mut direct_all, mut via_all) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut base = scope(path);
        base.method = method.clone();
        for _ in 0..rounds {
            m.push(match_loop(&router, &method, path, iters));
            let direct = direct_loop(&routed, &base, &send, iters);
            let via = routed_loop(&router, &base, &send, iters);
            d.push(via - direct);
            direct_all.push(direct);
            via_all.push(via);
        }
        // The least disturbed run of each side (the machine may be busy).
        let (mm, dm) = (min(&m), min(&via_all) - min(&direct_all));
        println!(
            "{:<12} {:<48} {:>10.0} {:>10.0} {:>13.0} {:>13.0}",
            label,
            format!("{method} {path}"),
            median(m),
            mm,
            median(d),
            dm
        );
    }
    println!(
        "(50 routes; medians and minimums of {rounds} interleaved rounds of {iters} requests; \
         dispatch = through the router minus straight to the app)"
    );
}
