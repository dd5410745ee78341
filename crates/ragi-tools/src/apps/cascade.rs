//! Apps tried in turn: the first that does not answer 404 wins, and nothing is buffered.
//!
//! ```
//! use ragi_tools::apps::{cascade::Cascade, static_files::StaticFiles};
//! use ragi_tools::router::Router;
//! # async fn api(_cx: ragi_tools::HttpContext) -> &'static str { "api" }
//! # fn main() -> std::io::Result<()> {
//! # let dir = std::env::temp_dir();
//! // Files from the directory when they exist, the app for everything else.
//! let app = Cascade::new()
//!     .push(StaticFiles::new(&dir)?)
//!     .push(Router::new().get("/api", api));
//! # let _ = app;
//! # Ok(()) }
//! ```
//!
//! # How a 404 is caught without buffering
//!
//! Every app but the last is called with a `send` that watches for the **response start**:
//! `ResponseStart` (an `http` scope) or `HttpResponseStart` (the decline of an `sse` scope,
//! the denial of a WebSocket handshake). The decision is taken on that one event, before any
//! body byte exists:
//!
//! * a status in the catch list ([`catch`](Cascade::catch); `404` by default) → the start and
//!   everything the app sends after it are **swallowed** (each `send` succeeds, so the app
//!   finishes normally and releases what it holds); when it returns, the next app is called;
//! * any other status, or a start of another kind (`SseStart`, `WebSocketAccept`, a close
//!   before accept) → that event and everything after go to the client untouched, and this
//!   app's result is the cascade's.
//!
//! The last app's answer goes out whatever it is, a 404 included. An app that declines the
//! scope kind ([`UnsupportedScope`](ragi::UnsupportedScope)) before sending anything is
//! skipped the same way (the last one's refusal is returned).
//!
//! # The request body
//!
//! Each app receives from the same request. An app that read body **bytes** before it
//! answered has consumed them; its 404 is then final (passed to the client), because the next
//! app could not see the body whole. Reading the empty final piece of a bodiless request (or a
//! WebSocket's connect event) consumes nothing: the next app receives it again. Apps worth
//! cascading — static files, routers — decide before reading anything.
//!
//! # Other rules
//!
//! * If the client leaves while an app runs, no further app is called.
//! * Clones of the scope share its stash: what an earlier app put there (it should be
//!   nothing, for an app that answered 404) is visible to the later ones.
//! * `lifespan` scopes go to the first app that does not decline them.
//!
//! PAGI's `App::Cascade` is the model (it catches 404 and 405 by default and awaits a caught
//! child through its body the same way); Plack's catches 404. ragi follows the issue: 404 by
//! default, `catch(&[404, 405])` for PAGI's behaviour. ragi's static-file app answers 405
//! only for paths it would serve, so a POST for an unknown path passes on with the default.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use ragi::{
    App, AppResult, BoxFuture, ReceiveEvent, ReceiveSource, Receiver, Scope, SendError, SendEvent,
    SendSink, Sender, UnsupportedScope,
};

use crate::SharedApp;

/// The cascade app. See the [module documentation](self).
#[derive(Clone)]
pub struct Cascade {
    apps: Vec<SharedApp>,
    catch: Arc<[u16]>,
}

impl Default for Cascade {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Cascade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cascade")
            .field("apps", &self.apps.len())
            .field("catch", &self.catch)
            .finish()
    }
}

impl Cascade {
    /// An empty cascade (a scope reaching it is declined); add apps with
    /// [`push`](Self::push).
    pub fn new() -> Self {
        Self {
            apps: Vec::new(),
            catch: Arc::from(&[404u16][..]),
        }
    }

    /// Adds `app` after the others.
    pub fn push(mut self, app: impl App) -> Self {
        self.apps.push(Arc::new(app));
        self
    }

    /// The statuses that pass the request on to the next app (default: `[404]`).
    pub fn catch(mut self, statuses: &[u16]) -> Self {
        self.catch = Arc::from(statuses);
        self
    }
}

impl App for Cascade {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let apps = self.apps.clone();
        let catch = self.catch.clone();
        Box::pin(async move {
            if apps.is_empty() {
                return Err(UnsupportedScope(scope.kind).into());
            }
            let shared = Arc::new(Mutex::new(SharedReceive {
                inner: receive,
                replay: None,
            }));
            let last = apps.len() - 1;
            for (i, app) in apps.iter().enumerate() {
                if i > 0 && !scope.connection().is_connected() {
                    // The client left: no one is waiting for another answer.
                    return Ok(());
                }
                let attempt = Arc::new(Attempt {
                    state: AtomicU8::new(UNDECIDED),
                    took_body: AtomicBool::new(false),
                    catch: catch.clone(),
                    inner: send.clone(),
                });
                let rx = Receiver::new(AttemptReceive {
                    shared: shared.clone(),
                    replayed: false,
                    attempt: attempt.clone(),
                });
                let tx = if i == last {
                    send.clone()
                } else {
                    Sender::from_arc(attempt.clone())
                };
                let result = app.call(scope.clone(), rx, tx).await;
                match attempt.state.load(Ordering::Acquire) {
                    CAUGHT => continue,
                    PASSED => return result,
                    _ => {}
                }
                // Nothing was sent: a decline of the scope kind passes on; anything else is
                // the cascade's result.
                let declined = matches!(&result, Err(e) if e.is::<UnsupportedScope>());
                if declined && i < last && !attempt.took_body.load(Ordering::Acquire) {
                    continue;
                }
                return result;
            }
            Ok(())
        })
    }
}

const UNDECIDED: u8 = 0;
const PASSED: u8 = 1;
const CAUGHT: u8 = 2;

/// The `send` of one app that is not the last: decides on the response start.
struct Attempt {
    state: AtomicU8,
    took_body: AtomicBool,
    catch: Arc<[u16]>,
    inner: Sender,
}

impl Attempt {
    /// Whether `event` goes to the client; takes the decision on a response start.
    fn forward(&self, event: &SendEvent) -> bool {
        match self.state.load(Ordering::Acquire) {
            PASSED => return true,
            CAUGHT => return false,
            _ => {}
        }
        let status = match event {
            SendEvent::ResponseStart { status, .. }
            | SendEvent::HttpResponseStart { status, .. } => Some(*status),
            SendEvent::SseStart { .. }
            | SendEvent::WebSocketAccept { .. }
            | SendEvent::WebSocketClose { .. }
            | SendEvent::StartupComplete
            | SendEvent::StartupFailed { .. } => None,
            // Not a start (a flush, a keep-alive setting): goes through, nothing decided.
            _ => return true,
        };
        let caught = status.is_some_and(|s| self.catch.contains(&s))
            && !self.took_body.load(Ordering::Acquire);
        self.state
            .store(if caught { CAUGHT } else { PASSED }, Ordering::Release);
        !caught
    }
}

impl SendSink for Attempt {
    fn send(&self, event: SendEvent) -> BoxFuture<'_, Result<(), SendError>> {
        if self.forward(&event) {
            Box::pin(self.inner.send(event))
        } else {
            Box::pin(async { Ok(()) })
        }
    }
}

/// The request's receiver, shared by the attempts in turn.
struct SharedReceive {
    inner: Receiver,
    /// An event that consumed nothing (the empty final piece, a WebSocket connect), for the
    /// next attempt to receive again.
    replay: Option<ReceiveEvent>,
}

struct AttemptReceive {
    shared: Arc<Mutex<SharedReceive>>,
    replayed: bool,
    attempt: Arc<Attempt>,
}

impl ReceiveSource for AttemptReceive {
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<ReceiveEvent> {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if !self.replayed {
            if let Some(event) = &shared.replay {
                self.replayed = true;
                return Poll::Ready(event.clone());
            }
        }
        let event = match shared.inner.poll_receive(cx) {
            Poll::Ready(e) => e,
            Poll::Pending => return Poll::Pending,
        };
        match &event {
            ReceiveEvent::Request { body, more: false }
                if body.is_empty() && !self.attempt.took_body.load(Ordering::Acquire) =>
            {
                shared.replay = Some(event.clone());
                self.replayed = true;
            }
            ReceiveEvent::WebSocketConnect => {
                shared.replay = Some(event.clone());
                self.replayed = true;
            }
            ReceiveEvent::Request { body, .. } if !body.is_empty() => {
                self.attempt.took_body.store(true, Ordering::Release);
                shared.replay = None;
            }
            _ => {}
        }
        Poll::Ready(event)
    }
}
