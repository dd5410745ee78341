//! What the security middleware share: the `Host` grammar (with IPv6 literals and ports), one
//! merged `Vary`, a sender that edits every response head whatever the scope's framing, and a
//! runner that answers for an inner app that failed before its response started (so that the
//! 500 carries the middleware's headers too).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use ragi::{AppResult, BoxFuture, Headers, Receiver, Scope, SendEvent, Sender};

use crate::{Error, IntoResponse, Responder, SharedApp};

/// The host part of an authority: a registered name (lower-cased, without a trailing dot) or
/// an IP literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HostName {
    Name(String),
    Ip(IpAddr),
}

impl std::fmt::Display for HostName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostName::Name(n) => f.write_str(n),
            HostName::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            HostName::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// `host[:port]` as a `Host` header, `:authority` or `X-Forwarded-Host` carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Authority {
    pub host: HostName,
    pub port: Option<u16>,
}

impl std::fmt::Display for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => write!(f, "{}", self.host),
        }
    }
}

/// The port a scheme implies when the authority names none.
pub(crate) fn default_port(scheme: &str) -> u16 {
    match scheme {
        "https" | "wss" => 443,
        _ => 80,
    }
}

fn parse_port(s: &str) -> Option<Option<u16>> {
    if s.is_empty() {
        // RFC 3986 `port = *DIGIT`: an empty port is no port.
        return Some(None);
    }
    if s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().map(Some)
}

/// A registered name: letters, digits, `-`, `.`, `_`; lower-cased; one trailing dot dropped.
fn parse_name(s: &str) -> Option<HostName> {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty()
        || s.starts_with('.')
        || s.contains("..")
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return None;
    }
    if let Ok(v4) = s.parse::<Ipv4Addr>() {
        return Some(HostName::Ip(IpAddr::V4(v4)));
    }
    Some(HostName::Name(s.to_ascii_lowercase()))
}

/// Parses `host[:port]`; `None` for anything else (userinfo, paths, spaces, an unbracketed
/// IPv6 address, a bad port, a zone id).
pub(crate) fn parse_authority(value: &[u8]) -> Option<Authority> {
    let s = std::str::from_utf8(value).ok()?;
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let addr: Ipv6Addr = rest[..end].parse().ok()?;
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => parse_port(p.strip_prefix(':')?)?,
        };
        return Some(Authority {
            host: HostName::Ip(IpAddr::V6(addr)),
            port,
        });
    }
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, parse_port(p)?),
        None => (s, None),
    };
    Some(Authority {
        host: parse_name(host)?,
        port,
    })
}

/// The request's authority: its one `host` field (HTTP/2's `:authority`, which the server puts
/// there). `Err` when there is none, more than one, or it does not parse.
pub(crate) fn request_authority(scope: &Scope) -> Result<Authority, &'static str> {
    let mut hosts = scope.headers.get_all("host");
    let Some(first) = hosts.next() else {
        return Err("missing host header");
    };
    if hosts.next().is_some() {
        return Err("more than one host header");
    }
    parse_authority(first).ok_or("invalid host header")
}

/// Adds `names` to the response's `Vary`, leaving one `Vary` field: the values already there
/// (from any number of fields) first, each name once (case-insensitive); `*` absorbs all.
pub(crate) fn merge_vary(headers: &mut Headers, names: &[&str]) {
    if names.is_empty() {
        return;
    }
    let mut tokens: Vec<String> = Vec::new();
    for v in headers.get_all("vary") {
        for t in String::from_utf8_lossy(v).split(',') {
            let t = t.trim();
            if !t.is_empty() && !tokens.iter().any(|x| x.eq_ignore_ascii_case(t)) {
                tokens.push(t.to_owned());
            }
        }
    }
    if tokens.iter().any(|t| t == "*") {
        headers.set("vary", "*");
        return;
    }
    for n in names {
        if !tokens.iter().any(|x| x.eq_ignore_ascii_case(n)) {
            tokens.push((*n).to_owned());
        }
    }
    headers.set("vary", tokens.join(", "));
}

/// Whether `event` starts a response (any framing) or ends a handshake.
fn is_head(event: &SendEvent) -> bool {
    matches!(
        event,
        SendEvent::ResponseStart { .. }
            | SendEvent::SseStart { .. }
            | SendEvent::HttpResponseStart { .. }
            | SendEvent::WebSocketAccept { .. }
            | SendEvent::WebSocketClose { .. }
    )
}

/// A sender that calls `edit(status, headers)` on every HTTP response head the app sends —
/// `ResponseStart`, `SseStart`, and the decline/denial `HttpResponseStart` — and records in
/// `started` that the app answered (a WebSocket accept or close counts too).
pub(crate) fn edit_heads<F>(send: Sender, started: Arc<AtomicBool>, edit: F) -> Sender
where
    F: Fn(u16, &mut Headers) + Send + Sync + 'static,
{
    send.map(move |mut event| {
        if is_head(&event) {
            started.store(true, Ordering::Release);
        }
        match &mut event {
            SendEvent::ResponseStart {
                status, headers, ..
            }
            | SendEvent::SseStart { status, headers }
            | SendEvent::HttpResponseStart { status, headers } => edit(*status, headers),
            _ => {}
        }
        event
    })
}

/// A future that turns a panic into `Err(payload)`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// Runs `inner` with `send` (a sender from [`edit_heads`] sharing `started`). When the inner
/// app fails or panics before it answered and the client is still there, answers 500 itself
/// through `send` — so the 500 carries what the middleware adds — then returns the failure
/// (or resumes the panic) so that the server still logs it.
pub(crate) fn run_answering_failures(
    inner: &SharedApp,
    scope: Scope,
    receive: Receiver,
    send: Sender,
    started: Arc<AtomicBool>,
) -> BoxFuture<'static, AppResult> {
    let kept = scope.clone();
    let fut = inner.call(scope, receive, send.clone());
    Box::pin(async move {
        let outcome = CatchUnwind(Box::pin(fut)).await;
        let failed = !matches!(outcome, Ok(Ok(())));
        if failed
            && !started.load(Ordering::Acquire)
            && kept.connection().is_connected()
            && kept.kind != ragi::ScopeKind::Lifespan
        {
            let response = Error::new(500, "Internal Server Error").into_response();
            let _ = Responder::new(&kept, send).send(response).await;
        }
        match outcome {
            Ok(r) => r,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    })
}

/// Sends `response` in the scope's framing (the decline pair on `sse`, the denial pair before
/// a WebSocket accept) and ends the call.
pub(crate) fn refuse(
    scope: &Scope,
    send: Sender,
    response: crate::Response,
) -> BoxFuture<'static, AppResult> {
    let responder = Responder::new(scope, send);
    Box::pin(async move { responder.complete(response).await })
}

/// Percent-encodes what a path must not hold raw (for `root_path`, which is decoded).
pub(crate) fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Trims optional whitespace from a header value's text.
pub(crate) fn header_text(v: &Bytes) -> Option<&str> {
    std::str::from_utf8(v).ok().map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Option<String> {
        parse_authority(s.as_bytes()).map(|a| a.to_string())
    }

    #[test]
    fn authorities_parse_with_ports_and_ipv6() {
        assert_eq!(a("Example.COM"), Some("example.com".into()));
        assert_eq!(a("example.com."), Some("example.com".into()));
        assert_eq!(a("example.com:8080"), Some("example.com:8080".into()));
        assert_eq!(a("example.com:"), Some("example.com".into()));
        assert_eq!(a("[::1]:8000"), Some("[::1]:8000".into()));
        assert_eq!(a("[0:0::1]"), Some("[::1]".into()));
        assert_eq!(a("127.0.0.1:80"), Some("127.0.0.1:80".into()));
        // An empty port after a literal is no port.
        assert_eq!(a("[::1]:"), Some("[::1]".into()));
        for bad in [
            "",
            "::1",
            "[::1",
            "[::1]x",
            "a b",
            "u@h",
            "h/p",
            "h:99999",
            "h:8x",
            ".",
            "a..b",
            "[fe80::1%eth0]",
            "h:1:2",
        ] {
            assert_eq!(a(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn vary_is_merged_into_one_field() {
        let mut h = Headers::new()
            .with("vary", "Accept-Encoding")
            .with("Vary", "origin, Cookie");
        merge_vary(&mut h, &["Origin", "Access-Control-Request-Method"]);
        assert_eq!(h.get_all("vary").count(), 1);
        assert_eq!(
            h.get_str("vary").unwrap(),
            "Accept-Encoding, origin, Cookie, Access-Control-Request-Method"
        );
        let mut star = Headers::new().with("vary", "*");
        merge_vary(&mut star, &["Origin"]);
        assert_eq!(star.get_str("vary"), Some("*"));
    }
}
