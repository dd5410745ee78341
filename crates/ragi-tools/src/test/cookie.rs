//! The test client's cookie jar.
//!
//! Every response's `Set-Cookie` fields (HTTP responses, SSE streams and declines, WebSocket
//! acceptances and denials) go into the jar of the [`TestClient`](super::TestClient); every
//! later request (HTTP, WebSocket, SSE) carries the cookies that match it in one `cookie`
//! header. What is honoured, from RFC 6265: `Path` (the default path is the request path's
//! directory; a cookie is sent on its path and below), `Max-Age` (zero or less deletes;
//! takes precedence over `Expires`), `Expires` (a past date deletes), `Secure` (sent only on
//! `https` / `wss`), and replacement by name and path. `Domain` is ignored: the test client
//! talks to one host. Expiry uses tokio's clock, so a paused clock ages cookies too.

use std::fmt;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// One cookie in the jar.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cookie {
    /// The name.
    pub name: String,
    /// The value, as the server sent it.
    pub value: String,
    /// The path it is sent on (and below).
    pub path: String,
    /// Sent only on `https` / `wss` requests.
    pub secure: bool,
    /// The server set `HttpOnly` (the test client sends it all the same, as a browser does).
    pub http_only: bool,
    /// When it expires (tokio's clock); `None` for a session cookie.
    pub expires: Option<Instant>,
}

/// The cookies of one test client.
#[derive(Clone, Default)]
pub(crate) struct Jar {
    cookies: Vec<Cookie>,
}

impl fmt::Debug for Jar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.cookies).finish()
    }
}

/// RFC 6265 §5.1.4: the directory of the request path.
fn default_path(request_path: &str) -> String {
    match request_path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => request_path[..i].to_owned(),
    }
}

/// RFC 6265 §5.1.4 path-match.
fn path_matches(request_path: &str, cookie_path: &str) -> bool {
    if request_path == cookie_path {
        return true;
    }
    request_path.starts_with(cookie_path)
        && (cookie_path.ends_with('/')
            || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/'))
}

impl Jar {
    /// Stores (or deletes) what one `Set-Cookie` value says, for a response to `request_path`.
    pub(crate) fn store(&mut self, set_cookie: &str, request_path: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
            return;
        };
        let name = name.trim();
        if name.is_empty() {
            return;
        }
        let mut value = value.trim();
        if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
            value = &value[1..value.len() - 1];
        }
        let now = Instant::now();
        let mut cookie = Cookie {
            name: name.to_owned(),
            value: value.to_owned(),
            path: default_path(request_path),
            secure: false,
            http_only: false,
            expires: None,
        };
        let mut max_age: Option<i64> = None;
        let mut expires: Option<SystemTime> = None;
        for attr in parts {
            let (key, val) = match attr.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => (attr.trim(), ""),
            };
            match key.to_ascii_lowercase().as_str() {
                "path" if val.starts_with('/') => cookie.path = val.to_owned(),
                "path" => cookie.path = default_path(request_path),
                "secure" => cookie.secure = true,
                "httponly" => cookie.http_only = true,
                "max-age" => {
                    if let Ok(n) = val.parse::<i64>() {
                        max_age = Some(n);
                    }
                }
                "expires" => expires = httpdate::parse_http_date(val).ok(),
                _ => {}
            }
        }
        let expired = match (max_age, expires) {
            (Some(n), _) if n <= 0 => true,
            (Some(n), _) => {
                cookie.expires = Some(now + Duration::from_secs(n as u64));
                false
            }
            (None, Some(at)) => match at.duration_since(SystemTime::now()) {
                Ok(left) if !left.is_zero() => {
                    cookie.expires = Some(now + left);
                    false
                }
                _ => true,
            },
            (None, None) => false,
        };
        // A replacement keeps the old cookie's place (its creation time, RFC 6265 §5.3).
        let old = self
            .cookies
            .iter()
            .position(|c| c.name == cookie.name && c.path == cookie.path);
        match (old, expired) {
            (Some(i), true) => {
                self.cookies.remove(i);
            }
            (Some(i), false) => self.cookies[i] = cookie,
            (None, true) => {}
            (None, false) => self.cookies.push(cookie),
        }
    }

    /// Sets a cookie by hand (path `/`, no attributes).
    pub(crate) fn set(&mut self, name: &str, value: &str) {
        let cookie = Cookie {
            name: name.to_owned(),
            value: value.to_owned(),
            path: "/".to_owned(),
            secure: false,
            http_only: false,
            expires: None,
        };
        match self
            .cookies
            .iter()
            .position(|c| c.name == name && c.path == "/")
        {
            Some(i) => self.cookies[i] = cookie,
            None => self.cookies.push(cookie),
        }
    }

    fn drop_expired(&mut self) {
        let now = Instant::now();
        self.cookies.retain(|c| c.expires.is_none_or(|at| at > now));
    }

    /// The live cookies.
    pub(crate) fn all(&mut self) -> Vec<Cookie> {
        self.drop_expired();
        self.cookies.clone()
    }

    pub(crate) fn clear(&mut self) {
        self.cookies.clear();
    }

    /// The `cookie` header value for a request to `path`, if any cookie matches: longer paths
    /// first, then in the order they were set (RFC 6265 §5.4).
    pub(crate) fn header_for(&mut self, path: &str, secure: bool) -> Option<String> {
        self.drop_expired();
        let mut matching: Vec<&Cookie> = self
            .cookies
            .iter()
            .filter(|c| (secure || !c.secure) && path_matches(path, &c.path))
            .collect();
        if matching.is_empty() {
            return None;
        }
        matching.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        let pairs: Vec<String> = matching
            .iter()
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        Some(pairs.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_default_and_match() {
        assert_eq!(default_path("/a/b/c"), "/a/b");
        assert_eq!(default_path("/a"), "/");
        assert_eq!(default_path(""), "/");
        assert!(path_matches("/a/b", "/a"));
        assert!(path_matches("/a/", "/a/"));
        assert!(path_matches("/a/b", "/a/"));
        assert!(!path_matches("/ab", "/a"));
        assert!(path_matches("/a", "/a"));
    }

    #[tokio::test(start_paused = true)]
    async fn attributes_are_honoured() {
        let mut jar = Jar::default();
        jar.store("a=1; Path=/; HttpOnly; SameSite=Lax", "/x");
        jar.store("b=\"2\"; Path=/admin", "/x");
        jar.store("s=3; Secure", "/dir/page");
        jar.store("t=4; Max-Age=10", "/");
        assert_eq!(jar.header_for("/", false).as_deref(), Some("a=1; t=4"));
        assert_eq!(
            jar.header_for("/admin/users", false).as_deref(),
            Some("b=2; a=1; t=4")
        );
        assert_eq!(jar.header_for("/dir/x", false).as_deref(), Some("a=1; t=4"));
        assert_eq!(
            jar.header_for("/dir/x", true).as_deref(),
            Some("s=3; a=1; t=4")
        );
        // Replacement by name and path; deletion by Max-Age=0 and by a past Expires.
        jar.store("a=9; Path=/", "/");
        jar.store("b=; Path=/admin; Max-Age=0", "/");
        jar.store("s=; Expires=Thu, 01 Jan 1970 00:00:00 GMT", "/dir/other");
        assert_eq!(jar.header_for("/admin", true).as_deref(), Some("a=9; t=4"));
        // Max-Age counts on tokio's clock.
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(jar.header_for("/", false).as_deref(), Some("a=9"));
        jar.store(
            "f=5; Expires=Fri, 01 Jan 2100 00:00:00 GMT; Max-Age=-1",
            "/",
        );
        assert_eq!(jar.all().len(), 1);
        jar.store("f=5; Expires=Fri, 01 Jan 2100 00:00:00 GMT", "/");
        assert_eq!(jar.all().len(), 2);
    }
}
