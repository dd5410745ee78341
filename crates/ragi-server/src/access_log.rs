//! The access log: one line per finished exchange on stdout, in CLF, combined or JSON form.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::AccessLogFormat;
use crate::proto::h1::request::RequestHead;

/// What one line needs.
#[derive(Debug)]
pub(crate) struct AccessEntry {
    peer: SocketAddr,
    time: SystemTime,
    start: Instant,
    request_line: String,
    referer: String,
    user_agent: String,
    status: u16,
    bytes: u64,
}

impl AccessEntry {
    pub(crate) fn new(head: &RequestHead, peer: SocketAddr, start: Instant) -> Self {
        let text = |name: &str| head.headers.get_str(name).unwrap_or("-").to_owned();
        Self {
            peer,
            time: SystemTime::now(),
            start,
            request_line: String::from_utf8_lossy(head.request_line()).into_owned(),
            referer: text("referer"),
            user_agent: text("user-agent"),
            status: 0,
            bytes: 0,
        }
    }

    /// An HTTP/2 request: its line is `METHOD /path?query HTTP/2.0`.
    pub(crate) fn http2(parts: &http::request::Parts, peer: SocketAddr, start: Instant) -> Self {
        let text = |name: http::header::HeaderName| {
            parts
                .headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_else(|| "-".to_owned())
        };
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        Self {
            peer,
            time: SystemTime::now(),
            start,
            request_line: format!("{} {} HTTP/2.0", parts.method, target),
            referer: text(http::header::REFERER),
            user_agent: text(http::header::USER_AGENT),
            status: 0,
            bytes: 0,
        }
    }

    pub(crate) fn finish(&mut self, status: u16, bytes: u64) {
        self.status = status;
        self.bytes = bytes;
    }
}

/// Writes `entry` in `format` (nothing when the log is off).
pub(crate) fn write(format: Option<AccessLogFormat>, entry: AccessEntry) {
    let Some(format) = format else { return };
    let line = render(format, &entry);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// The client in a log line: its IP address (with the port in JSON), or `unix:` for a
/// Unix-domain connection (as nginx writes it).
struct Client(SocketAddr);

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match crate::net::known(self.0) {
            None => f.write_str("unix:"),
            Some(a) if f.alternate() => write!(f, "{a}"),
            Some(a) => write!(f, "{}", a.ip()),
        }
    }
}

fn render(format: AccessLogFormat, e: &AccessEntry) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    match format {
        AccessLogFormat::Clf => format!(
            "{} - - [{}] \"{}\" {} {}\n",
            Client(e.peer),
            clf_time(e.time),
            quote(&e.request_line),
            e.status,
            e.bytes
        ),
        AccessLogFormat::Combined => format!(
            "{} - - [{}] \"{}\" {} {} \"{}\" \"{}\"\n",
            Client(e.peer),
            clf_time(e.time),
            quote(&e.request_line),
            e.status,
            e.bytes,
            quote(&e.referer),
            quote(&e.user_agent)
        ),
        AccessLogFormat::Json => {
            let secs = e
                .time
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            format!(
                "{{\"time\":{:.3},\"peer\":\"{}\",\"request\":\"{}\",\"status\":{},\"bytes\":{},\"duration_ms\":{:.3},\"referer\":\"{}\",\"user_agent\":\"{}\"}}\n",
                secs,
                format_args!("{:#}", Client(e.peer)),
                json_escape(&e.request_line),
                e.status,
                e.bytes,
                e.start.elapsed().as_secs_f64() * 1000.0,
                json_escape(&e.referer),
                json_escape(&e.user_agent)
            )
        }
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `10/Oct/2000:13:55:36 +0000`.
fn clf_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn clf_time_is_right() {
        let t = UNIX_EPOCH + Duration::from_secs(971_186_136);
        assert_eq!(clf_time(t), "10/Oct/2000:13:55:36 +0000");
    }

    #[test]
    fn the_client_is_its_ip_or_unix() {
        let tcp: SocketAddr = "10.0.0.7:5555".parse().unwrap();
        assert_eq!(Client(tcp).to_string(), "10.0.0.7");
        assert_eq!(format!("{:#}", Client(tcp)), "10.0.0.7:5555");
        assert_eq!(Client(crate::net::NO_ADDR).to_string(), "unix:");
        assert_eq!(format!("{:#}", Client(crate::net::NO_ADDR)), "unix:");
    }

    #[test]
    fn json_escapes_quotes_and_controls() {
        assert_eq!(json_escape("a\"b\\c\u{1}"), "a\\\"b\\\\c\\u0001");
    }
}
