//! One access-log record and its renderings: CLF, combined, JSON.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ragi::{DisconnectReason, ScopeKind};

/// How lines look. See the [module documentation](super).
#[derive(Clone)]
#[non_exhaustive]
pub enum Format {
    /// Common Log Format, then the extra fields:
    /// `127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /a HTTP/1.1" 200 13 rid=… dur=0.412ms started=true reason=-`.
    Clf,
    /// Combined: CLF with `"referer" "user-agent"`, then the extra fields.
    Combined,
    /// One JSON object per line.
    Json,
    /// Your own rendering of each [`AccessRecord`] (a trailing `\n` is added when missing).
    Custom(Arc<dyn Fn(&AccessRecord) -> String + Send + Sync>),
}

impl std::fmt::Debug for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Clf => "Clf",
            Format::Combined => "Combined",
            Format::Json => "Json",
            Format::Custom(_) => "Custom",
        })
    }
}

/// What one line says about one request, stream or session.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AccessRecord {
    /// When the request arrived (the layer was called).
    pub time: SystemTime,
    /// The client's address as the scope had it (after the forwarded-headers middleware, when
    /// it runs first).
    pub client: Option<SocketAddr>,
    /// `http`, `sse` or `websocket`.
    pub kind: ScopeKind,
    /// The method.
    pub method: http::Method,
    /// Root path, raw path and query, as the request named them.
    pub target: String,
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0`.
    pub protocol: &'static str,
    /// The status the client got: the app's (or an inner middleware's), the server's backstop
    /// 500 (403 for a WebSocket handshake) when the app answered nothing; `None` when no
    /// response head was sent (the client left first). 101 for an accepted WebSocket.
    pub status: Option<u16>,
    /// Response body bytes accepted for the client (0 for HEAD; SSE events as framed;
    /// WebSocket message payloads).
    pub bytes: u64,
    /// Request body bytes the app read (HTTP, SSE), or message payload bytes (WebSocket).
    pub bytes_in: u64,
    /// From the request's arrival to the end of the exchange (response delivered, or the
    /// client gone).
    pub duration: Duration,
    /// The request id ([`request_id`](crate::middleware::request_id)), when one was set.
    pub request_id: Option<Arc<str>>,
    /// Why the exchange ended abnormally; `None` when the response was delivered whole.
    pub disconnect_reason: Option<DisconnectReason>,
    /// Whether a response head was emitted (by anyone) before the end.
    pub response_started: bool,
    /// The matched route's pattern, when a router matched one.
    pub route: Option<Arc<str>>,
    /// The `Referer` header.
    pub referer: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// Whether the [timeout](crate::middleware::timeout) layer ended the response.
    pub timed_out: bool,
    /// For a WebSocket session: messages received and sent, and the close code and text.
    pub websocket: Option<WebSocketSummary>,
}

/// The WebSocket part of an [`AccessRecord`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebSocketSummary {
    /// Messages from the client.
    pub messages_in: u64,
    /// Messages to the client.
    pub messages_out: u64,
    /// The close code (either side's first close), when there was one.
    pub close_code: Option<u16>,
    /// The close text.
    pub close_reason: Option<String>,
}

impl AccessRecord {
    /// The line in `format`, ending with `\n`.
    pub fn render(&self, format: &Format) -> String {
        let mut line = match format {
            Format::Clf => self.clf(false),
            Format::Combined => self.clf(true),
            Format::Json => self.json(),
            Format::Custom(f) => f(self),
        };
        if !line.ends_with('\n') {
            line.push('\n');
        }
        line
    }

    fn clf(&self, combined: bool) -> String {
        let mut s = String::with_capacity(200);
        let client = self
            .client
            .map_or_else(|| "-".to_owned(), |c| c.ip().to_canonical().to_string());
        // nginx's convention: 499 when no response head reached the client (the reason says why).
        let status = self.status.unwrap_or(499);
        let _ = write!(
            s,
            "{client} - - [{}] \"{} {} {}\" {status} {}",
            clf_time(self.time),
            self.method,
            escape(&self.target),
            self.protocol,
            self.bytes
        );
        if combined {
            let _ = write!(
                s,
                " \"{}\" \"{}\"",
                escape(self.referer.as_deref().unwrap_or("-")),
                escape(self.user_agent.as_deref().unwrap_or("-"))
            );
        }
        let _ = write!(
            s,
            " rid={} dur={:.3}ms started={} reason={}",
            self.request_id.as_deref().unwrap_or("-"),
            self.duration.as_secs_f64() * 1000.0,
            self.response_started,
            self.disconnect_reason
                .as_ref()
                .map_or("-", DisconnectReason::as_str)
        );
        if self.timed_out {
            s.push_str(" timeout=true");
        }
        if let Some(ws) = &self.websocket {
            let _ = write!(
                s,
                " msgs_in={} msgs_out={} close={}",
                ws.messages_in,
                ws.messages_out,
                ws.close_code.map_or("-".to_owned(), |c| c.to_string())
            );
        }
        s
    }

    fn json(&self) -> String {
        let mut v = serde_json::json!({
            "time": rfc3339(self.time),
            "client": self.client.map(|c| c.ip().to_canonical().to_string()),
            "kind": self.kind.as_str(),
            "method": self.method.as_str(),
            "target": self.target,
            "protocol": self.protocol,
            "status": self.status,
            "bytes": self.bytes,
            "bytes_in": self.bytes_in,
            "duration_ms": (self.duration.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            "request_id": self.request_id.as_deref(),
            "disconnect_reason": self.disconnect_reason.as_ref().map(DisconnectReason::as_str),
            "response_started": self.response_started,
            "route": self.route.as_deref(),
            "referer": self.referer,
            "user_agent": self.user_agent,
        });
        if self.timed_out {
            v["timed_out"] = true.into();
        }
        if let Some(ws) = &self.websocket {
            v["websocket"] = serde_json::json!({
                "messages_in": ws.messages_in,
                "messages_out": ws.messages_out,
                "close_code": ws.close_code,
                "close_reason": ws.close_reason,
            });
        }
        v.to_string()
    }
}

/// Quotes and backslashes escaped, control and non-ASCII bytes as `\xNN` (Apache's rule), so
/// a line stays one line and its quoted fields stay parseable.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

/// Days since 1970-01-01 → (year, month 1–12, day 1–31) (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, usize, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m as usize, d)
}

fn split(t: SystemTime) -> (i64, usize, i64, i64, i64, i64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil(days);
    (
        y,
        m,
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis(),
    )
}

/// `10/Oct/2000:13:55:36 +0000`.
pub(crate) fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d, h, min, s, _) = split(t);
    format!("{d:02}/{}/{y}:{h:02}:{min:02}:{s:02} +0000", MONTHS[m - 1])
}

/// `2000-10-10T13:55:36.123Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let (y, m, d, h, min, s, ms) = split(t);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{ms:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let t = UNIX_EPOCH + Duration::from_millis(971_186_136_123);
        assert_eq!(clf_time(t), "10/Oct/2000:13:55:36 +0000");
        assert_eq!(rfc3339(t), "2000-10-10T13:55:36.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn escaping_keeps_one_line() {
        assert_eq!(escape("a\"b\\c\n\u{e9}"), "a\\\"b\\\\c\\x0a\\xc3\\xa9");
    }
}
