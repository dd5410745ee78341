//! Request heads: parsing with `httparse`, then every check of RFC 9112 and the spec's §5.
//!
//! [`parse_head`] looks at the bytes received so far and says: not complete yet, a complete
//! head (and how long it was), or the error status to answer with. The keep-alive rule of
//! HTTP/1.x is here too ([`RequestHead::keep_alive`]).

use bytes::{Bytes, BytesMut};
use ragi::{Headers, HttpVersion};

/// Limits that apply to a request head.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeadLimits {
    /// Longest request line, bytes (414 beyond).
    pub(crate) max_request_line: usize,
    /// Largest header block, bytes (431 beyond).
    pub(crate) max_header_size: usize,
    /// Most header fields (431 beyond).
    pub(crate) max_headers: usize,
}

/// How the request body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body.
    Empty,
    /// `content-length: n`.
    Length(u64),
    /// `transfer-encoding: chunked`.
    Chunked,
}

/// A parsed and checked request head.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) method: http::Method,
    /// The path part of the target (origin form; for absolute form, the path after the
    /// authority), without the query.
    pub(crate) raw_path: Bytes,
    pub(crate) query: Bytes,
    pub(crate) version: HttpVersion,
    pub(crate) headers: Headers,
    pub(crate) framing: BodyFraming,
    /// Whether the connection may be kept open after this exchange, by the HTTP/1.x rule:
    /// HTTP/1.1 unless `connection: close`; HTTP/1.0 only with `connection: keep-alive`.
    pub(crate) keep_alive: bool,
    pub(crate) expect_continue: bool,
    /// The whole head as received; its first `line_len` bytes are the request line (for logs
    /// and the error hook). Kept whole rather than sliced: a slice would cost a reference count
    /// update now and another when it is dropped, on every request.
    pub(crate) head: Bytes,
    pub(crate) line_len: usize,
}

impl RequestHead {
    /// The request line, without its CRLF.
    pub(crate) fn request_line(&self) -> &[u8] {
        &self.head[..self.line_len]
    }
}

/// The outcome of looking at the bytes received so far.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// A whole head; its bytes were taken from the front of the buffer.
    Complete(RequestHead),
    /// A bad request: answer with this status and close.
    Error(HeadError),
}

/// Why a head was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeadError {
    pub(crate) status: u16,
    pub(crate) why: &'static str,
}

const fn err(status: u16, why: &'static str) -> Parsed {
    Parsed::Error(HeadError { status, why })
}

/// Bytes to skip at the start of `buf`: RFC 9112 §2.2 lets a server ignore empty lines before
/// the request line.
pub(crate) fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut i = 0;
    while i < buf.len() && (buf[i] == b'\r' || buf[i] == b'\n') {
        i += 1;
    }
    i
}

/// Looks for a complete head at the start of `buf` (leading empty lines already removed). A
/// complete head is split off the buffer; the scope's header values are slices of it (no
/// copies, but for names that need lower-casing).
pub(crate) fn parse_head(buf: &mut BytesMut, limits: &HeadLimits) -> Parsed {
    // The request line's length decides 414 before anything else.
    let line_end = memchr_nl(buf);
    match line_end {
        None if buf.len() > limits.max_request_line => return err(414, "request line too long"),
        Some(n) if n > limits.max_request_line => return err(414, "request line too long"),
        None => return Parsed::Partial,
        Some(_) => {}
    }
    let line_len = line_end.unwrap_or(0) + 1;

    // The version, before httparse (which knows only 1.0 and 1.1): RFC 9110 §2.5 serves a
    // higher minor version as the highest this server has, and a major version it does not
    // speak on this line gets 505. A 1.x above 1.1 is parsed as 1.1, its digit put back after.
    match version_token(&buf[..line_len]) {
        VersionToken::Plain => parse_checked(buf, limits, line_end, None),
        VersionToken::Minor(at) => {
            let digit = buf[at];
            buf[at] = b'1';
            let parsed = parse_checked(buf, limits, line_end, Some((at, digit)));
            if !matches!(parsed, Parsed::Complete(_)) {
                buf[at] = digit;
            }
            parsed
        }
        VersionToken::Unsupported => err(505, "HTTP version not supported"),
    }
}

/// The version at the end of a request line (`line` up to and with its LF).
enum VersionToken {
    /// `HTTP/1.1`, `HTTP/1.0`, or anything httparse should judge.
    Plain,
    /// `HTTP/1.x` with x above 1: the offset of the digit.
    Minor(usize),
    /// `HTTP/d.d` with a major version other than 1.
    Unsupported,
}

fn version_token(line: &[u8]) -> VersionToken {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(v) = line.len().checked_sub(8).map(|at| &line[at..]) else {
        return VersionToken::Plain;
    };
    // `SP HTTP-version`: the token must follow a space (else httparse answers).
    if !v.starts_with(b"HTTP/") || line.len() < 9 || line[line.len() - 9] != b' ' {
        return VersionToken::Plain;
    }
    match (v[5], v[6], v[7]) {
        (b'1', b'.', b'0' | b'1') => VersionToken::Plain,
        (b'1', b'.', b'2'..=b'9') => VersionToken::Minor(line.len() - 1),
        (major, b'.', b'0'..=b'9') if major.is_ascii_digit() => VersionToken::Unsupported,
        _ => VersionToken::Plain,
    }
}

/// [`parse_head`] once the version is one httparse reads; `restore` is a byte of the request
/// line to put back before the head is split off (a minor version digit).
fn parse_checked(
    buf: &mut BytesMut,
    limits: &HeadLimits,
    line_end: Option<usize>,
    restore: Option<(usize, u8)>,
) -> Parsed {
    let line_len = line_end.unwrap_or(0) + 1;
    // Uninitialised header storage: zeroing 256 entries on every parse cost more than the
    // parse itself.
    let mut storage = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; 256];
    let n_headers = limits.max_headers.clamp(1, storage.len());
    let mut req = httparse::Request::new(&mut []);
    let status = match req.parse_with_uninit_headers(buf, &mut storage[..n_headers]) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return err(431, "too many header fields"),
        Err(httparse::Error::Version) => return err(400, "bad HTTP version"),
        Err(httparse::Error::Token) => return err(400, "bad method or header name"),
        Err(httparse::Error::HeaderName) => return err(400, "bad header name"),
        Err(httparse::Error::HeaderValue) => return err(400, "bad header value"),
        Err(_) => return err(400, "malformed request head"),
    };
    let head_len = match status {
        httparse::Status::Partial => {
            // The bound a complete head gets below (its final CRLF is not counted), so that
            // where the bytes happen to be split never decides between 431 and a request.
            if buf.len() - line_len > limits.max_header_size + 2 {
                return err(431, "header block too large");
            }
            return Parsed::Partial;
        }
        httparse::Status::Complete(n) => n,
    };
    if head_len - line_len > limits.max_header_size + 2 {
        return err(431, "header block too large");
    }

    let method_str = req.method.unwrap_or("");
    let Ok(method) = http::Method::from_bytes(method_str.as_bytes()) else {
        return err(400, "bad method");
    };
    let version = if req.version == Some(1) {
        HttpVersion::Http11
    } else {
        HttpVersion::Http10
    };
    let target = req.path.unwrap_or("").as_bytes();
    let line_stop = {
        let end = line_end.unwrap_or(0);
        if end > 0 && buf[end - 1] == b'\r' {
            end - 1
        } else {
            end
        }
    };

    if method == http::Method::CONNECT {
        return err(501, "CONNECT is not supported");
    }
    let (path_start, path_end, query, authority) = match split_target(target, &method) {
        Ok(t) => t,
        Err(why) => return err(400, why),
    };

    // Headers: the framing and connection rules; names and values kept as offsets into the
    // head, to be sliced once it is split off.
    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| s.as_ptr() as usize - base;
    let mut spans = Spans::new();
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Vec<&[u8]> = Vec::new();
    let mut host_count = 0usize;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = trim_ows(h.value);
        spans.push((
            offset(name) as u32,
            name.len() as u16,
            offset(value) as u32,
            value.len() as u32,
        ));
        if name.eq_ignore_ascii_case(b"content-length") {
            if content_length.is_some() {
                return err(400, "duplicated content-length");
            }
            match parse_content_length(value) {
                Some(n) => content_length = Some(n),
                None => return err(400, "invalid content-length"),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            for coding in value.split(|&b| b == b',') {
                let c = trim_ows(coding);
                if !c.is_empty() {
                    transfer_encoding.push(c);
                }
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            host_count += 1;
            if !valid_host(value) {
                return err(400, "invalid host");
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',') {
                let t = trim_ows(token);
                if t.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    conn_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect")
            && value.eq_ignore_ascii_case(b"100-continue")
        {
            expect_continue = version == HttpVersion::Http11;
        }
    }
    if host_count > 1 {
        return err(400, "more than one host header");
    }
    if host_count == 0 && version == HttpVersion::Http11 {
        return err(400, "missing host header");
    }
    // An absolute-form target's authority is the host, whatever `Host` says (RFC 9112
    // §3.2.2): the app sees it as the `host` field.
    let authority = match authority {
        Some((a, b)) => {
            if !valid_host(&target[a..b]) {
                return err(400, "invalid authority in the request target");
            }
            let (at, len) = ((offset(target) + a) as u32, (b - a) as u32);
            let mut replaced = false;
            for span in spans.iter_mut() {
                let name = &buf[span.0 as usize..span.0 as usize + span.1 as usize];
                if name.eq_ignore_ascii_case(b"host") {
                    (span.2, span.3) = (at, len);
                    replaced = true;
                }
            }
            (!replaced).then_some((at as usize, len as usize))
        }
        None => None,
    };

    let framing = if !transfer_encoding.is_empty() {
        if content_length.is_some() {
            return err(400, "content-length with transfer-encoding");
        }
        if version == HttpVersion::Http10 {
            return err(400, "transfer-encoding in an HTTP/1.0 request");
        }
        let last = transfer_encoding
            .last()
            .map(|c| c.eq_ignore_ascii_case(b"chunked"));
        let chunked_count = transfer_encoding
            .iter()
            .filter(|c| c.eq_ignore_ascii_case(b"chunked"))
            .count();
        if chunked_count > 0 && (last != Some(true) || chunked_count > 1) {
            return err(400, "chunked is not the last transfer coding");
        }
        if transfer_encoding.len() > 1 || last != Some(true) {
            if chunked_count == 0 && !transfer_encoding.iter().all(|c| is_known_coding(c)) {
                return err(501, "unknown transfer coding");
            }
            if chunked_count == 0 {
                // A known coding without chunked: the body length cannot be determined.
                return err(400, "transfer-encoding without chunked");
            }
            return err(501, "transfer coding not implemented");
        }
        BodyFraming::Chunked
    } else {
        match content_length {
            Some(0) | None => BodyFraming::Empty,
            Some(n) => BodyFraming::Length(n),
        }
    };

    let keep_alive = match version {
        HttpVersion::Http11 => !conn_close,
        _ => conn_keep_alive && !conn_close,
    };

    let target_off = offset(target);
    let (path_range, query_range) = (target_off + path_start..target_off + path_end, query);
    if let Some((at, digit)) = restore {
        buf[at] = digit;
    }
    let head_bytes = buf.split_to(head_len).freeze();
    let mut headers = Headers::with_capacity(spans.len());
    for &(no, nl, vo, vl) in spans.iter() {
        let name = &head_bytes[no as usize..no as usize + nl as usize];
        let name = if let Some(known) = well_known_name(name) {
            known
        } else if name.iter().any(u8::is_ascii_uppercase) {
            Bytes::from(name.to_ascii_lowercase())
        } else {
            head_bytes.slice(no as usize..no as usize + nl as usize)
        };
        headers.push(
            name,
            head_bytes.slice(vo as usize..vo as usize + vl as usize),
        );
    }
    if let Some((at, len)) = authority {
        // An HTTP/1.0 request without `Host`: the authority is its host all the same.
        headers.push(Bytes::from_static(b"host"), head_bytes.slice(at..at + len));
    }
    let raw_path = if path_range.is_empty() {
        Bytes::from_static(b"/")
    } else {
        head_bytes.slice(path_range)
    };
    let query = match query_range {
        Some((a, b)) => head_bytes.slice(target_off + a..target_off + b),
        None => Bytes::new(),
    };
    let head = RequestHead {
        method,
        raw_path,
        query,
        version,
        headers,
        framing,
        keep_alive,
        expect_continue,
        head: head_bytes,
        line_len: line_stop,
    };
    Parsed::Complete(head)
}

type Span = (u32, u16, u32, u32);

/// Header offsets: on the stack for the usual handful of fields, on the heap beyond. A
/// `SmallVec` rather than an array with a length: its inline storage is not zeroed first (an
/// array of 16 spans was a 256-byte memset per request).
type Spans = smallvec::SmallVec<[Span; 16]>;

/// Common header names as static lower-case bytes (no allocation for `Host:` and friends).
/// HTTP/2 request fields use it too.
pub(crate) fn well_known_name(name: &[u8]) -> Option<Bytes> {
    const NAMES: [&str; 18] = [
        "host",
        "user-agent",
        "accept",
        "accept-encoding",
        "accept-language",
        "connection",
        "content-length",
        "content-type",
        "cookie",
        "referer",
        "transfer-encoding",
        "cache-control",
        "upgrade",
        "authorization",
        "origin",
        "te",
        "if-modified-since",
        "if-none-match",
    ];
    NAMES
        .iter()
        .find(|n| n.len() == name.len() && n.as_bytes().eq_ignore_ascii_case(name))
        .map(|n| Bytes::from_static(n.as_bytes()))
}

fn memchr_nl(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &v[start..end]
}

/// `1*DIGIT`, fitting in a u64. Signs, spaces inside, lists and empty values are refused.
pub(crate) fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn is_known_coding(c: &[u8]) -> bool {
    [
        "gzip",
        "x-gzip",
        "deflate",
        "compress",
        "x-compress",
        "identity",
    ]
    .iter()
    .any(|k| c.eq_ignore_ascii_case(k.as_bytes()))
}

const fn reg_name_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).is_ascii_alphanumeric();
        i += 1;
    }
    let extra = b"-._~!$&'()*+,;=%";
    let mut j = 0;
    while j < extra.len() {
        t[extra[j] as usize] = true;
        j += 1;
    }
    t
}

/// Bytes allowed in a reg-name host (unreserved, sub-delims, `%`).
static REG_NAME: [bool; 256] = reg_name_table();

/// `uri-host [ ":" port ]`: a reg-name, IPv4 or bracketed IP literal, then digits.
fn valid_host(v: &[u8]) -> bool {
    // An empty value is only right for targets without an authority, which an origin server
    // never serves; nginx, Apache and manakai's server all answer 400.
    if v.is_empty() {
        return false;
    }
    let port = if v[0] == b'[' {
        let Some(close) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &v[1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        &v[close + 1..]
    } else {
        // A reg-name or IPv4 address holds no `:`, so the first one starts the port. One pass
        // over the usual `name:port` (this runs on every request).
        match v.iter().position(|&b| !REG_NAME[b as usize]) {
            None => return true,
            Some(i) => &v[i..],
        }
    };
    port.is_empty() || (port[0] == b':' && port[1..].iter().all(u8::is_ascii_digit))
}

/// A split request target: the path range, the query range and, for the absolute form, the
/// authority range.
type TargetParts = (usize, usize, Option<(usize, usize)>, Option<(usize, usize)>);

/// Splits a request target into the path range, the query and the authority. Origin form
/// `/p?q`, absolute form `scheme://authority/p?q`, and `*` (OPTIONS only).
fn split_target(target: &[u8], method: &http::Method) -> Result<TargetParts, &'static str> {
    if target == b"*" {
        return if method == http::Method::OPTIONS {
            Ok((0, 1, None, None))
        } else {
            Err("asterisk target on a method other than OPTIONS")
        };
    }
    let mut authority = None;
    let path_start = if target.first() == Some(&b'/') {
        0
    } else {
        // Absolute form: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://".
        let colon = target
            .iter()
            .position(|&b| b == b':')
            .ok_or("bad request target")?;
        let scheme = &target[..colon];
        let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !scheme_ok || !target[colon..].starts_with(b"://") {
            return Err("bad request target");
        }
        let auth_start = colon + 3;
        let rest = &target[auth_start..];
        let auth_len = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len());
        if auth_len == 0 {
            return Err("absolute target without authority");
        }
        authority = Some((auth_start, auth_start + auth_len));
        auth_start + auth_len
    };
    let q = target[path_start..]
        .iter()
        .position(|&b| b == b'?')
        .map(|i| i + path_start);
    let (path_end, query) = match q {
        Some(i) => (i, Some((i + 1, target.len()))),
        None => (target.len(), None),
    };
    if target[path_start..path_end].contains(&b'#') {
        return Err("fragment in request target");
    }
    Ok((path_start, path_end, query, authority))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_request_line: 8192,
        max_header_size: 8192,
        max_headers: 100,
    };

    fn parse(s: &[u8]) -> Parsed {
        parse_head(&mut BytesMut::from(s), &LIMITS)
    }

    #[test]
    fn host_values() {
        for good in [
            &b"example.com"[..],
            b"example.com:8080",
            b"127.0.0.1:18082",
            b"a-b_c~d%41",
            b"host:",
            b":80",
            b"[::1]",
            b"[::1]:443",
            b"[fe80::1.2.3.4]:1",
        ] {
            assert!(valid_host(good), "{:?}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b""[..],
            b"a b",
            b"a:b",
            b"a:1:2",
            b"a/b",
            b"a@b",
            b"h\xffst",
            b"[]",
            b"[::1",
            b"[::1]x",
            b"[::1]:8a",
            b"[g::1]",
        ] {
            assert!(!valid_host(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    fn status(s: &[u8]) -> u16 {
        match parse(s) {
            Parsed::Error(e) => e.status,
            Parsed::Complete(_) => 0,
            Parsed::Partial => 1,
        }
    }

    #[test]
    fn simple_get() {
        let mut buf =
            BytesMut::from(&b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\nrest"[..]);
        let Parsed::Complete(h) = parse_head(&mut buf, &LIMITS) else {
            panic!()
        };
        assert_eq!(&buf[..], b"rest");
        assert_eq!(h.raw_path, "/a%20b");
        assert_eq!(h.query, "x=1");
        assert_eq!(h.headers.get("x-a").unwrap(), "1");
        assert_eq!(h.headers.iter().next().unwrap().0, "host");
        assert!(h.keep_alive);
        assert_eq!(h.framing, BodyFraming::Empty);
        assert_eq!(h.request_line(), b"GET /a%20b?x=1 HTTP/1.1");
    }

    #[test]
    fn versions() {
        let version = |s: &[u8]| match parse(s) {
            Parsed::Complete(h) => (h.version, String::from_utf8(h.request_line().to_vec())),
            other => panic!("{other:?}"),
        };
        // A higher minor version is served as 1.1; the request line keeps what was sent.
        assert_eq!(
            version(b"GET / HTTP/1.2\r\nHost: h\r\n\r\n"),
            (HttpVersion::Http11, Ok("GET / HTTP/1.2".to_owned()))
        );
        assert_eq!(
            version(b"GET / HTTP/1.9\nHost: h\n\n").0,
            HttpVersion::Http11
        );
        for other in [&b"HTTP/2.0"[..], b"HTTP/0.9", b"HTTP/3.0", b"HTTP/9.9"] {
            let req = [&b"GET / "[..], other, b"\r\nHost: h\r\n\r\n"].concat();
            assert_eq!(status(&req), 505, "{}", String::from_utf8_lossy(other));
        }
        for bad in [
            &b"HTTP/1.10"[..],
            b"HTTP/11",
            b"HTTP/1.x",
            b"HTTPS/1.1",
            b"http/1.1",
        ] {
            let req = [&b"GET / "[..], bad, b"\r\nHost: h\r\n\r\n"].concat();
            assert_eq!(status(&req), 400, "{}", String::from_utf8_lossy(bad));
        }
        // A partial head is left as it came.
        let mut buf = BytesMut::from(&b"GET / HTTP/1.2\r\nHost: h\r\n"[..]);
        assert!(matches!(parse_head(&mut buf, &LIMITS), Parsed::Partial));
        assert_eq!(&buf[..], b"GET / HTTP/1.2\r\nHost: h\r\n");
    }

    #[test]
    fn an_absolute_target_s_authority_is_the_host() {
        let host = |s: &[u8]| match parse(s) {
            Parsed::Complete(h) => {
                let all: Vec<String> = h
                    .headers
                    .iter()
                    .filter(|(n, _)| n == "host")
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                    .collect();
                (all, String::from_utf8_lossy(&h.raw_path).into_owned())
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            host(b"GET http://real.example:8080/p?q HTTP/1.1\r\nHost: other\r\n\r\n"),
            (vec!["real.example:8080".to_owned()], "/p".to_owned())
        );
        // HTTP/1.0 without Host: the authority is added.
        assert_eq!(
            host(b"GET http://a.example HTTP/1.0\r\n\r\n"),
            (vec!["a.example".to_owned()], "/".to_owned())
        );
        // Origin form: Host as sent.
        assert_eq!(
            host(b"GET /p HTTP/1.1\r\nHost: h\r\n\r\n").0,
            vec!["h".to_owned()]
        );
        // The authority must be a host: userinfo and junk are refused.
        assert_eq!(status(b"GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET http://h:x/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        // Still one Host, still required on HTTP/1.1.
        assert_eq!(status(b"GET http://h/ HTTP/1.1\r\n\r\n"), 400);
    }

    #[test]
    fn partial_until_the_blank_line() {
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: h\r\n"), 1);
        assert_eq!(status(b"GET / HT"), 1);
    }

    #[test]
    fn keep_alive_rule() {
        let ka = |s: &[u8]| match parse(s) {
            Parsed::Complete(h) => h.keep_alive,
            other => panic!("{other:?}"),
        };
        assert!(ka(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        ));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn malformed_requests_get_their_status() {
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400, "missing host");
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.0\r\nHost: xyz:foo\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.0\r\nHost: xyz/\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.0\r\nHost:\r\n\r\n"), 400);
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\n"),
            400
        );
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: foo\r\n\r\n"),
            501
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            501
        );
        assert_eq!(status(b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n"), 501);
        assert_eq!(
            status(b"GET http:hoge/foo HTTP/1.1\r\nHost: h\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"GET 353223://hoge/foo HTTP/1.1\r\nHost: h\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET foo HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost : h\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/3.0\r\nHost: h\r\n\r\n"), 505);
        assert_eq!(status(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
    }

    #[test]
    fn absolute_form_takes_the_path() {
        let Parsed::Complete(h) = parse(b"GET http://hoge/foo/bar?q HTTP/1.1\r\nHost: h\r\n\r\n")
        else {
            panic!()
        };
        assert_eq!(h.raw_path, "/foo/bar");
        assert_eq!(h.query, "q");
        let Parsed::Complete(h) = parse(b"GET unknownurlscheme://hoge HTTP/1.1\r\nHost: h\r\n\r\n")
        else {
            panic!()
        };
        assert_eq!(h.raw_path, "/");
    }

    #[test]
    fn limits() {
        let long_line = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(9000));
        assert_eq!(status(long_line.as_bytes()), 414);
        let partial_long = format!("GET /{}", "a".repeat(9000));
        assert_eq!(status(partial_long.as_bytes()), 414);
        let big_header = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
            "a".repeat(9000)
        );
        assert_eq!(status(big_header.as_bytes()), 431);
        let partial_big = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}", "a".repeat(9000));
        assert_eq!(status(partial_big.as_bytes()), 431);
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            status(format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n").as_bytes()),
            431
        );
        let ok: String = (0..99).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            status(format!("GET / HTTP/1.1\r\nHost: h\r\n{ok}\r\n").as_bytes()),
            0
        );
    }

    #[test]
    fn framing() {
        let f = |s: &[u8]| match parse(s) {
            Parsed::Complete(h) => h.framing,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            f(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n"),
            BodyFraming::Length(12)
        );
        assert_eq!(
            f(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            BodyFraming::Chunked
        );
        assert_eq!(
            f(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"),
            BodyFraming::Empty
        );
    }
}
