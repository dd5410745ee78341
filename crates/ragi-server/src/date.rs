//! The `date` header value, formatted at most once a second per thread.
//!
//! Reading the wall clock costs a call per response (about 2 % of a pipelined hello-world's
//! CPU), so a caller that already holds a recent monotonic [`Instant`] (the HTTP/1.1 driver
//! has the moment the request's bytes were read, and an app answering within its first poll
//! answers within microseconds of it) passes it to [`with_date_line_at`]: while it falls inside
//! the second the cached line was made for, no clock is read. The mapping from `Instant` to
//! the wall clock's second is taken when the line is made (one reading of each clock).

use std::cell::RefCell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The cached line and the monotonic span of the wall-clock second it is right for.
struct Line {
    /// The second it was formatted for.
    secs: u64,
    /// The whole header line `date: …\r\n`.
    line: [u8; 37],
    /// The second, on the monotonic clock: `[from, until)`.
    span: Option<(Instant, Instant)>,
    /// The value as a header value (HTTP/2 responses), made on first use in this second;
    /// clones share its bytes.
    value: Option<http::HeaderValue>,
}

thread_local! {
    static CACHE: RefCell<Line> = const {
        RefCell::new(Line { secs: u64::MAX, line: [0; 37], span: None, value: None })
    };
}

impl Line {
    /// Brings the line up to the moment `at` (a recent `Instant`; `None` reads the clock).
    #[inline]
    fn refresh(&mut self, at: Option<Instant>) {
        if let (Some(at), Some((from, until))) = (at, self.span) {
            if from <= at && at < until {
                return;
            }
        }
        self.read_clock(at);
    }

    /// [`Line::refresh`] when the cached span does not cover `at`: reads the clock.
    fn read_clock(&mut self, at: Option<Instant>) {
        let now = SystemTime::now();
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        if self.secs != secs {
            let s = httpdate::fmt_http_date(now);
            let n = s.len().min(29);
            self.line[..6].copy_from_slice(b"date: ");
            self.line[6..6 + n].copy_from_slice(&s.as_bytes()[..n]);
            self.line[35..37].copy_from_slice(b"\r\n");
            self.secs = secs;
            self.span = None;
            self.value = None;
        }
        if at.is_some() && self.span.is_none() {
            // The second began `subsec` ago on the wall clock; the same on the monotonic one.
            let mono = Instant::now();
            let into = Duration::from_nanos(u64::from(since.subsec_nanos()));
            self.span = mono
                .checked_sub(into)
                .map(|from| (from, from + Duration::from_secs(1)));
        }
    }
}

/// The current IMF-fixdate as a header value.
pub(crate) fn header_value() -> http::HeaderValue {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.refresh(None);
        let line = c.line;
        c.value
            .get_or_insert_with(|| {
                http::HeaderValue::from_maybe_shared(bytes::Bytes::copy_from_slice(&line[6..35]))
                    .unwrap_or_else(|_| http::HeaderValue::from_static(""))
            })
            .clone()
    })
}

/// Calls `f` with the current IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    with_date_line(|line| f(&line[6..35]))
}

/// Calls `f` with the whole header line, `date: Sun, 06 Nov 1994 08:49:37 GMT\r\n`.
pub(crate) fn with_date_line<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    with_date_line_at(None, f)
}

/// [`with_date_line`] for the moment `at` (a recent `Instant`; `None` reads the clock).
pub(crate) fn with_date_line_at<R>(at: Option<Instant>, f: impl FnOnce(&[u8]) -> R) -> R {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.refresh(at);
        f(&c.line)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_an_imf_fixdate() {
        let d = super::with_date(|d| String::from_utf8(d.to_vec()).unwrap());
        assert_eq!(d.len(), 29);
        assert!(d.ends_with(" GMT"));
        assert!(httpdate::parse_http_date(&d).is_ok());
        let v = super::header_value();
        assert_eq!(v.len(), 29);
        assert!(httpdate::parse_http_date(v.to_str().unwrap()).is_ok());
    }

    #[test]
    fn a_recent_instant_gives_the_current_line() {
        let now = std::time::Instant::now();
        let a = super::with_date_line_at(Some(now), |l| l.to_vec());
        let b = super::with_date_line(|l| l.to_vec());
        let c = super::with_date_line_at(Some(now), |l| l.to_vec());
        // The clock may have crossed a second between the calls: then a differs from b.
        let parse =
            |l: &[u8]| httpdate::parse_http_date(std::str::from_utf8(&l[6..35]).unwrap()).unwrap();
        let (ta, tb, tc) = (parse(&a), parse(&b), parse(&c));
        assert!(ta <= tb && tb <= ta + std::time::Duration::from_secs(1));
        assert_eq!(ta, tc);
        // An instant from two seconds ago is outside the cached span: the clock is read.
        if let Some(old) = now.checked_sub(std::time::Duration::from_secs(2)) {
            let d = super::with_date_line_at(Some(old), |l| l.to_vec());
            assert!(parse(&d) >= ta);
        }
    }
}
