//! Lint: checks the events an app sends against the ragi spec, for development — and logs each
//! mistake with the request it happened in.
//!
//! ```
//! use ragi::{Headers, Receiver, Scope, Sender, SendEvent};
//! use ragi_tools::middleware::lint::Lint;
//! use ragi_tools::AppExt;
//!
//! async fn sloppy(_: Scope, _: Receiver, send: Sender) -> ragi::AppResult {
//!     send.send(SendEvent::response_start(200, Headers::new())).await?;
//!     send.send(SendEvent::response_start(200, Headers::new())).await?; // ← second start
//!     Ok(())
//! }
//!
//! // In development (a debug build), not in production.
//! let app = sloppy.layer(Lint::new());
//! # let _ = app;
//! ```
//!
//! # What it checks
//!
//! Each [`Rule`] is one thing the spec forbids or a server would have to repair:
//!
//! | scope | checks |
//! |---|---|
//! | every | an event not valid for the scope kind ([`Rule::WrongScopeKind`]); a header with CR, LF, NUL or a bad name ([`Rule::InvalidHeader`]); another `send` after one failed because the client left ([`Rule::IgnoredDisconnect`]); `receive` called again and again after the disconnect ([`Rule::ReceiveAfterDisconnect`]); no answer at all when the call returned ([`Rule::MissingResponse`]) |
//! | `http` | a second start ([`Rule::SecondStart`]); a status outside 200–999 ([`Rule::InvalidStatus`]); body before the start ([`Rule::BodyBeforeStart`]); body or trailers after the end ([`Rule::BodyAfterEnd`]); trailers that were not announced ([`Rule::TrailersNotAnnounced`]); a body longer or shorter than its `Content-Length`, or two lengths ([`Rule::ContentLength`]); a started body not ended when the call returned ([`Rule::UnfinishedResponse`]) |
//! | `sse` | `SseSend`/`SseComment` before `SseStart` or after the decline, a second start ([`Rule::SecondStart`]); anything but `SseClose` after `SseClose` ([`Rule::EventAfterClose`]); CR or LF in an event name, id or comment ([`Rule::InvalidSseField`]) |
//! | `websocket` | a message before accept ([`Rule::BeforeAccept`]), a second accept or a denial after it ([`Rule::SecondStart`]), an event after close ([`Rule::EventAfterClose`]), a close code the protocol does not allow an app to send ([`Rule::InvalidCloseCode`]), a subprotocol the client did not offer ([`Rule::InvalidSubprotocol`]) |
//! | `lifespan` | events of other scopes ([`Rule::WrongScopeKind`]) |
//!
//! Each violation is logged at WARN (target `ragi_tools::lint`) with the rule, the event, the
//! method, path and request id, and added to the [`LintReport`] in the stash; an
//! [`on_violation`](Lint::on_violation) hook sees it too (a test can panic there). The event is
//! still passed on — the server refuses what it must — unless the lint is
//! [`strict`](Lint::strict): then the offending event is refused with `invalid_event`, as the
//! strictest server would.
//!
//! The lint also watches the departed client: an app that sends again after a `send` failed
//! with the disconnect reason, or that keeps calling `receive` after the disconnect (a busy
//! loop), is told so once.
//!
//! # References
//!
//! PAGI and Starlette's test clients assert part of this inside the test client (duplicate
//! start, body after completion); ASGI has `asgiref`'s validator middleware. ragi's lint is a
//! layer that runs under any server, covers every scope kind of the spec, and names the
//! request.

use std::sync::{Arc, Mutex};

use ragi::{
    App, AppResult, BoxFuture, ReceiveEvent, Receiver, Scope, ScopeKind, SendError, SendEvent,
    Sender,
};

use super::observe::{tap, Tap};
use super::request_id::RequestId;
use crate::{Layer, SharedApp};

/// What a violation breaks. See the [module documentation](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// An event not valid for the scope kind.
    WrongScopeKind,
    /// A header name or value the server must refuse.
    InvalidHeader,
    /// A second response start (or accept), or a start after a decline.
    SecondStart,
    /// A status outside 200–999.
    InvalidStatus,
    /// A body piece before the start.
    BodyBeforeStart,
    /// A body piece or trailers after the response ended.
    BodyAfterEnd,
    /// Trailers that the start did not announce.
    TrailersNotAnnounced,
    /// A body that does not match its `Content-Length`, or a bad or repeated `Content-Length`.
    ContentLength,
    /// A response started and not ended when the app returned.
    UnfinishedResponse,
    /// No response at all when the app returned.
    MissingResponse,
    /// An SSE event or comment with CR or LF where the protocol forbids them.
    InvalidSseField,
    /// An event after the stream or session was closed.
    EventAfterClose,
    /// A WebSocket message before the accept.
    BeforeAccept,
    /// A WebSocket close code an app may not send.
    InvalidCloseCode,
    /// A WebSocket subprotocol the client did not offer.
    InvalidSubprotocol,
    /// A `send` after one that failed because the client left.
    IgnoredDisconnect,
    /// `receive` called again and again after the disconnect.
    ReceiveAfterDisconnect,
}

/// One violation.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LintViolation {
    /// The rule broken.
    pub rule: Rule,
    /// The event's name (`ResponseStart`, …), or `None` for a check at the end of the call.
    pub event: Option<&'static str>,
    /// What happened, for people.
    pub message: String,
}

/// The violations found in one exchange, in its stash.
#[derive(Debug, Default)]
pub struct LintReport {
    list: Mutex<Vec<LintViolation>>,
}

impl LintReport {
    /// The report of `scope`'s exchange, when the [`Lint`] layer is on.
    pub fn of(scope: &Scope) -> Option<Arc<LintReport>> {
        scope.stash.get::<LintReport>()
    }

    /// The violations so far.
    pub fn violations(&self) -> Vec<LintViolation> {
        self.list.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The rules broken so far, in order.
    pub fn rules(&self) -> Vec<Rule> {
        self.violations().into_iter().map(|v| v.rule).collect()
    }
}

type Hook = Arc<dyn Fn(&Scope, &LintViolation) + Send + Sync>;

/// The lint layer. See the [module documentation](self).
#[derive(Clone, Default)]
pub struct Lint {
    strict: bool,
    hook: Option<Hook>,
}

impl std::fmt::Debug for Lint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lint")
            .field("strict", &self.strict)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl Lint {
    /// Logs and records violations; passes every event on.
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuses an offending event with `invalid_event` instead of passing it on.
    pub fn strict(mut self, on: bool) -> Self {
        self.strict = on;
        self
    }

    /// Calls `f` with each violation (and the scope it happened in).
    pub fn on_violation(
        mut self,
        f: impl Fn(&Scope, &LintViolation) + Send + Sync + 'static,
    ) -> Self {
        self.hook = Some(Arc::new(f));
        self
    }
}

impl Layer for Lint {
    fn layer(&self, inner: SharedApp) -> SharedApp {
        Arc::new(LintApp {
            cfg: self.clone(),
            inner,
        })
    }
}

struct LintApp {
    cfg: Lint,
    inner: SharedApp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Nothing sent.
    Idle,
    /// Started (HTTP: head sent; SSE: streaming; WebSocket: accepted).
    Started,
    /// Declined or denied (SSE, WebSocket): the decline's body follows.
    Declining,
    /// Over: body ended, stream or session closed, decline sent.
    Ended,
}

struct State {
    phase: Phase,
    trailers: bool,
    declared: Option<u64>,
    sent: u64,
    /// A send failed because the client left.
    client_left: bool,
    told_ignored: bool,
    disconnects_received: u32,
    told_receive: bool,
    /// Lifespan: anything answered.
    answered: bool,
}

/// Everything the checks need, shared by the send tap, the receive wrapper and the end check.
struct Linter {
    cfg: Lint,
    scope: Scope,
    report: Arc<LintReport>,
    st: Mutex<State>,
}

const CLOSE_CODES: [std::ops::RangeInclusive<u16>; 3] = [1000..=1003, 1007..=1014, 3000..=4999];

fn has_newline(s: &str) -> bool {
    s.contains(['\r', '\n'])
}

impl Linter {
    fn flag(
        &self,
        rule: Rule,
        event: Option<&'static str>,
        message: String,
    ) -> Option<LintViolation> {
        let v = LintViolation {
            rule,
            event,
            message,
        };
        let request_id = RequestId::of(&self.scope).map(|id| id.to_string());
        tracing::warn!(
            target: "ragi_tools::lint",
            rule = ?rule,
            event = event.unwrap_or("-"),
            kind = self.scope.kind.as_str(),
            method = %self.scope.method,
            path = %self.scope.path,
            request_id = request_id.as_deref(),
            "lint: {}",
            v.message
        );
        self.report
            .list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(v.clone());
        if let Some(h) = &self.cfg.hook {
            h(&self.scope, &v);
        }
        Some(v)
    }

    /// The first violation `event` commits, recording its effect on the state.
    fn check(&self, st: &mut State, event: &SendEvent) -> Option<(Rule, String)> {
        let name = event.name();
        if st.client_left && !st.told_ignored {
            st.told_ignored = true;
            return Some((
                Rule::IgnoredDisconnect,
                format!("{name} sent after a send failed because the client left"),
            ));
        }
        let headers = match event {
            SendEvent::ResponseStart { headers, .. }
            | SendEvent::HttpResponseStart { headers, .. }
            | SendEvent::SseStart { headers, .. }
            | SendEvent::WebSocketAccept { headers, .. }
            | SendEvent::ResponseTrailers { headers } => Some(headers),
            _ => None,
        };
        if let Some(Err(e)) = headers.map(|h| h.validate()) {
            return Some((Rule::InvalidHeader, format!("{name}: {e}")));
        }
        match self.scope.kind {
            ScopeKind::Http => self.check_http(st, event),
            ScopeKind::Sse => self.check_sse(st, event),
            ScopeKind::WebSocket => self.check_ws(st, event),
            _ => self.check_lifespan(st, event),
        }
    }

    fn check_http(&self, st: &mut State, event: &SendEvent) -> Option<(Rule, String)> {
        let name = event.name();
        match event {
            SendEvent::ResponseStart {
                status,
                headers,
                trailers,
            } => {
                if st.phase != Phase::Idle {
                    return Some((Rule::SecondStart, "a second ResponseStart".to_owned()));
                }
                st.phase = Phase::Started;
                st.trailers = *trailers;
                if !(200..=999).contains(status) {
                    return Some((
                        Rule::InvalidStatus,
                        format!("status {status} (an app sends 200–999; 1xx are the server's)"),
                    ));
                }
                let lengths: Vec<_> = headers.get_all("content-length").collect();
                match lengths.as_slice() {
                    [] => {}
                    [one] => match std::str::from_utf8(one)
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                    {
                        Some(n) => st.declared = Some(n),
                        None => {
                            return Some((
                                Rule::ContentLength,
                                format!(
                                    "content-length {:?} is not a number",
                                    String::from_utf8_lossy(one)
                                ),
                            ))
                        }
                    },
                    _ => {
                        return Some((Rule::ContentLength, "two content-length fields".to_owned()))
                    }
                }
                None
            }
            SendEvent::ResponseBody { body, more } => {
                match st.phase {
                    Phase::Idle => {
                        return Some((
                            Rule::BodyBeforeStart,
                            "ResponseBody before ResponseStart".to_owned(),
                        ))
                    }
                    Phase::Ended => {
                        return Some((
                            Rule::BodyAfterEnd,
                            "ResponseBody after the body ended".to_owned(),
                        ))
                    }
                    _ => {}
                }
                let n = match body {
                    ragi::Body::Bytes(b) => b.len() as u64,
                    ragi::Body::File {
                        length: Some(n), ..
                    } => *n,
                    ragi::Body::File {
                        path,
                        offset,
                        length: None,
                    } => std::fs::metadata(path)
                        .map(|m| m.len().saturating_sub(*offset))
                        .unwrap_or(0),
                };
                st.sent += n;
                if !*more && !st.trailers {
                    st.phase = Phase::Ended;
                }
                if let Some(d) = st.declared {
                    if st.sent > d {
                        return Some((
                            Rule::ContentLength,
                            format!("{} body bytes for a content-length of {d}", st.sent),
                        ));
                    }
                    if !*more && st.sent < d {
                        return Some((
                            Rule::ContentLength,
                            format!(
                                "the body ended after {} bytes of a content-length of {d}",
                                st.sent
                            ),
                        ));
                    }
                }
                None
            }
            SendEvent::ResponseTrailers { .. } => match st.phase {
                Phase::Idle => Some((
                    Rule::BodyBeforeStart,
                    "ResponseTrailers before ResponseStart".to_owned(),
                )),
                Phase::Ended => Some((
                    Rule::BodyAfterEnd,
                    "ResponseTrailers after the response ended".to_owned(),
                )),
                _ if !st.trailers => {
                    st.phase = Phase::Ended;
                    Some((
                        Rule::TrailersNotAnnounced,
                        "ResponseTrailers without `trailers: true` in ResponseStart".to_owned(),
                    ))
                }
                _ => {
                    st.phase = Phase::Ended;
                    None
                }
            },
            SendEvent::FullFlush => None,
            _ => Some((Rule::WrongScopeKind, format!("{name} in an http scope"))),
        }
    }

    fn check_sse(&self, st: &mut State, event: &SendEvent) -> Option<(Rule, String)> {
        let name = event.name();
        match (event, st.phase) {
            (SendEvent::SseClose { .. }, Phase::Ended) => None,
            (_, Phase::Ended) => Some((
                Rule::EventAfterClose,
                format!("{name} after the stream ended"),
            )),
            (SendEvent::SseStart { status, .. }, Phase::Idle) => {
                st.phase = Phase::Started;
                (!(200..=999).contains(status)).then(|| {
                    (
                        Rule::InvalidStatus,
                        format!("SseStart with status {status}"),
                    )
                })
            }
            (SendEvent::SseStart { .. }, _) => Some((
                Rule::SecondStart,
                "SseStart after the stream started or was declined".to_owned(),
            )),
            (SendEvent::HttpResponseStart { status, .. }, Phase::Idle) => {
                st.phase = Phase::Declining;
                (!(200..=999).contains(status)).then(|| {
                    (
                        Rule::InvalidStatus,
                        format!("a decline with status {status}"),
                    )
                })
            }
            (SendEvent::HttpResponseStart { .. }, _) => Some((
                Rule::SecondStart,
                "a decline after the stream started".to_owned(),
            )),
            (SendEvent::HttpResponseBody { more, .. }, Phase::Declining) => {
                if !*more {
                    st.phase = Phase::Ended;
                }
                None
            }
            (SendEvent::HttpResponseBody { .. }, _) => Some((
                Rule::BodyBeforeStart,
                "HttpResponseBody without HttpResponseStart".to_owned(),
            )),
            (SendEvent::SseSend(ev), Phase::Started) => {
                if ev.event.as_deref().is_some_and(has_newline)
                    || ev
                        .id
                        .as_deref()
                        .is_some_and(|i| has_newline(i) || i.contains('\0'))
                {
                    Some((
                        Rule::InvalidSseField,
                        "CR, LF or NUL in an SSE event name or id".to_owned(),
                    ))
                } else {
                    None
                }
            }
            (SendEvent::SseComment { comment }, Phase::Started) => {
                has_newline(comment).then(|| {
                    (
                        Rule::InvalidSseField,
                        "CR or LF in an SSE comment".to_owned(),
                    )
                })
            }
            (SendEvent::SseSend(_) | SendEvent::SseComment { .. }, _) => {
                Some((Rule::BodyBeforeStart, format!("{name} before SseStart")))
            }
            (SendEvent::SseKeepalive { comment, .. }, _) => has_newline(comment).then(|| {
                (
                    Rule::InvalidSseField,
                    "CR or LF in a keep-alive comment".to_owned(),
                )
            }),
            (SendEvent::SseClose { .. }, _) => {
                st.phase = Phase::Ended;
                None
            }
            _ => Some((Rule::WrongScopeKind, format!("{name} in an sse scope"))),
        }
    }

    fn check_ws(&self, st: &mut State, event: &SendEvent) -> Option<(Rule, String)> {
        let name = event.name();
        match (event, st.phase) {
            (SendEvent::WebSocketKeepalive { .. }, _) => None,
            (_, Phase::Ended) => Some((
                Rule::EventAfterClose,
                format!("{name} after the session was closed or denied"),
            )),
            (SendEvent::WebSocketAccept { subprotocol, .. }, Phase::Idle) => {
                st.phase = Phase::Started;
                match subprotocol {
                    Some(p) if !self.scope.subprotocols.iter().any(|o| o == p) => Some((
                        Rule::InvalidSubprotocol,
                        format!(
                            "subprotocol {p:?} was not offered (offered: {:?})",
                            self.scope.subprotocols
                        ),
                    )),
                    _ => None,
                }
            }
            (SendEvent::WebSocketAccept { .. }, _) => Some((
                Rule::SecondStart,
                "a second WebSocketAccept, or one after a denial".to_owned(),
            )),
            (SendEvent::HttpResponseStart { status, .. }, Phase::Idle) => {
                st.phase = Phase::Declining;
                (!(200..=999).contains(status) || *status == 101).then(|| {
                    (
                        Rule::InvalidStatus,
                        format!("a denial with status {status}"),
                    )
                })
            }
            (SendEvent::HttpResponseStart { .. }, _) => Some((
                Rule::SecondStart,
                "a denial after the session was accepted".to_owned(),
            )),
            (SendEvent::HttpResponseBody { more, .. }, Phase::Declining) => {
                if !*more {
                    st.phase = Phase::Ended;
                }
                None
            }
            (SendEvent::HttpResponseBody { .. }, _) => Some((
                Rule::BodyBeforeStart,
                "HttpResponseBody without a denial start".to_owned(),
            )),
            (SendEvent::WebSocketSend(_), Phase::Started) => None,
            (SendEvent::WebSocketSend(_), _) => Some((
                Rule::BeforeAccept,
                "WebSocketSend before WebSocketAccept".to_owned(),
            )),
            (SendEvent::WebSocketClose { code, .. }, phase) => {
                let was = phase;
                st.phase = Phase::Ended;
                if was == Phase::Declining {
                    return Some((
                        Rule::EventAfterClose,
                        "WebSocketClose in the middle of a denial".to_owned(),
                    ));
                }
                (!CLOSE_CODES.iter().any(|r| r.contains(code))).then(|| {
                    (
                        Rule::InvalidCloseCode,
                        format!(
                            "close code {code} (an app sends 1000–1003, 1007–1014 or 3000–4999)"
                        ),
                    )
                })
            }
            _ => Some((Rule::WrongScopeKind, format!("{name} in a websocket scope"))),
        }
    }

    fn check_lifespan(&self, st: &mut State, event: &SendEvent) -> Option<(Rule, String)> {
        match event {
            SendEvent::StartupComplete
            | SendEvent::StartupFailed { .. }
            | SendEvent::ShutdownComplete
            | SendEvent::ShutdownFailed { .. } => {
                st.answered = true;
                None
            }
            other => Some((
                Rule::WrongScopeKind,
                format!("{} in a lifespan scope", other.name()),
            )),
        }
    }

    /// What is wrong once the app's call returned `Ok`.
    fn at_end(&self) {
        let st = self.st.lock().unwrap_or_else(|e| e.into_inner());
        let (phase, answered) = (st.phase, st.answered);
        drop(st);
        let connection = self.scope.connection();
        if !connection.is_connected() {
            return; // nothing was owed to a client that left
        }
        let owed = match self.scope.kind {
            ScopeKind::Http => match phase {
                Phase::Idle if !connection.response_started() => {
                    Some((Rule::MissingResponse, "the app returned without a response (the server answers 500)"))
                }
                Phase::Started => Some((
                    Rule::UnfinishedResponse,
                    "the app returned before ending its body (the server aborts the response)",
                )),
                _ => None,
            },
            ScopeKind::Sse | ScopeKind::WebSocket if phase == Phase::Idle && !connection.response_started() => Some((
                Rule::MissingResponse,
                "the app returned without starting, declining or denying (the server answers 500, or 403 for a WebSocket)",
            )),
            ScopeKind::Lifespan if !answered => None, // not doing lifespan is allowed
            _ => None,
        };
        if let Some((rule, msg)) = owed {
            self.flag(rule, None, msg.to_owned());
        }
    }
}

struct LintTap(Arc<Linter>);

impl Tap for LintTap {
    type Note = ();

    fn before(&self, event: &mut SendEvent) -> Result<(), SendError> {
        let found = {
            let mut st = self.0.st.lock().unwrap_or_else(|e| e.into_inner());
            self.0.check(&mut st, event)
        };
        if let Some((rule, message)) = found {
            self.0.flag(rule, Some(event.name()), message.clone());
            if self.0.cfg.strict && rule != Rule::IgnoredDisconnect {
                return Err(SendError::invalid_event(format!("lint: {message}")));
            }
        }
        Ok(())
    }

    fn after(&self, _note: (), result: &Result<(), SendError>) {
        if let Err(e) = result {
            if e.is_disconnected() {
                self.0
                    .st
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .client_left = true;
            }
        }
    }
}

/// How many `Disconnect` events an app may take before the lint calls it a loop.
const RECEIVE_LOOP: u32 = 16;

impl App for LintApp {
    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> BoxFuture<'static, AppResult> {
        let report = Arc::new(LintReport::default());
        scope.stash.insert_arc(report.clone());
        let linter = Arc::new(Linter {
            cfg: self.cfg.clone(),
            scope: scope.clone(),
            report,
            st: Mutex::new(State {
                phase: Phase::Idle,
                trailers: false,
                declared: None,
                sent: 0,
                client_left: false,
                told_ignored: false,
                disconnects_received: 0,
                told_receive: false,
                answered: false,
            }),
        });
        let watcher = linter.clone();
        let receive = receive.map(move |ev| {
            if matches!(ev, ReceiveEvent::Disconnect { .. } | ReceiveEvent::WebSocketDisconnect { .. }) {
                let tell = {
                    let mut st = watcher.st.lock().unwrap_or_else(|e| e.into_inner());
                    st.disconnects_received += 1;
                    let tell = st.disconnects_received >= RECEIVE_LOOP && !st.told_receive;
                    st.told_receive |= tell;
                    tell
                };
                if tell {
                    watcher.flag(
                        Rule::ReceiveAfterDisconnect,
                        None,
                        format!("receive called {RECEIVE_LOOP} times after the disconnect (a loop that ignores it?)"),
                    );
                }
            }
            ev
        });
        let send = tap(send, LintTap(linter.clone()));
        let fut = self.inner.call(scope, receive, send);
        Box::pin(async move {
            let r = fut.await;
            if r.is_ok() {
                linter.at_end();
            }
            r
        })
    }
}
