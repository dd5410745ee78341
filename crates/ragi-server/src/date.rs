//! The `date` header value, formatted at most once a second per thread.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    /// The second it was formatted for, and the whole header line `date: …\r\n`.
    static CACHE: RefCell<(u64, [u8; 37])> = const { RefCell::new((u64::MAX, [0; 37])) };
}

thread_local! {
    /// The second and the `date` value as a header value (HTTP/2 responses), made once a
    /// second per thread; clones share its bytes.
    static VALUE: RefCell<(u64, Option<http::HeaderValue>)> = const { RefCell::new((u64::MAX, None)) };
}

/// The current IMF-fixdate as a header value.
pub(crate) fn header_value() -> http::HeaderValue {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    VALUE.with(|v| {
        let mut v = v.borrow_mut();
        match &v.1 {
            Some(value) if v.0 == secs => value.clone(),
            _ => {
                let value = with_date(|d| {
                    http::HeaderValue::from_maybe_shared(bytes::Bytes::copy_from_slice(d))
                })
                .unwrap_or_else(|_| http::HeaderValue::from_static(""));
                *v = (secs, Some(value.clone()));
                value
            }
        }
    })
}

/// Calls `f` with the current IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    with_date_line(|line| f(&line[6..35]))
}

/// Calls `f` with the whole header line, `date: Sun, 06 Nov 1994 08:49:37 GMT\r\n`.
pub(crate) fn with_date_line<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            let s = httpdate::fmt_http_date(now);
            let n = s.len().min(29);
            c.1[..6].copy_from_slice(b"date: ");
            c.1[6..6 + n].copy_from_slice(&s.as_bytes()[..n]);
            c.1[35..37].copy_from_slice(b"\r\n");
            c.0 = secs;
        }
        f(&c.1)
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
}
