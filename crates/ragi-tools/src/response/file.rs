//! Sending a file: validators, preconditions, ranges and HEAD, done the way RFC 9110 says.
//!
//! ```
//! use ragi_tools::prelude::*;
//! use ragi_tools::response::file::{send_file, FileResponse};
//!
//! // The whole helper: 200, 206, 304, 412 or 416 as the request asks.
//! async fn report(cx: HttpContext) -> Result<Response, Error> {
//!     send_file(&cx, "/srv/reports/latest.pdf").await
//! }
//!
//! // The pieces, for an app that adds its own headers (issue 11's static-file app does).
//! async fn asset(cx: HttpContext) -> Result<Response, Error> {
//!     let file = FileResponse::open("/srv/www/app.js")
//!         .await?                                   // 404 / 403 / 500 from the open
//!         .header("cache-control", "max-age=3600"); // kept on 304 too
//!     Ok(file.respond_to(&cx))
//! }
//! # let _ = (report, asset);
//! ```
//!
//! What a response carries:
//!
//! * `Content-Type` from the extension (`mime_guess`; `application/octet-stream` when
//!   unknown), with `; charset=utf-8` on `text/*` and JavaScript;
//! * `Content-Length` (the exact length, on HEAD too), `Accept-Ranges: bytes`;
//! * `Last-Modified` (the modification time in whole seconds; a time in the future is sent as
//!   the response's date, RFC 9110 §8.8.2.1);
//! * `ETag` `"<size hex>-<mtime seconds hex>.<mtime nanoseconds hex>"`. It is **strong** once
//!   the file has been unchanged for a second; a file modified within the last second gets
//!   the same tag marked weak (`W/`), because a second change in the same filesystem clock
//!   tick (ext4 stamps from a coarse clock: a few milliseconds) with the same size would give
//!   the same tag for other bytes — the reasoning RFC 9110 §8.8.2.2 applies to
//!   `Last-Modified`, and Apache's old rule. The inode is left out on purpose: it changes when
//!   a deploy copies the same bytes anew and differs between the machines behind one load
//!   balancer, which would turn every revalidation into a full download (Apache dropped it
//!   from its default `FileETag` in 2.4 for that reason).
//!
//! Then, in order: the preconditions of [`conditional::evaluate`] (412, or 304 with the fields
//! RFC 9110 §15.4.5 lists: `ETag`, and `Cache-Control`, `Content-Location`, `Date`, `Expires`,
//! `Vary` when the response has them; no body); for GET only, `Range` as
//! [`range::resolve`] says, honoured only when `If-Range` (if present) holds by a strong
//! validator ([`conditional::if_range`]): 206 with `Content-Range` for one range, 206
//! `multipart/byteranges` for several, 416 with `Content-Range: bytes */size` when none is
//! satisfiable, and the whole file (200) for an invalid `Range`. HEAD gets exactly GET's
//! header fields (Content-Length included) and no body; it ignores `Range`, which RFC 9110
//! §14.2 defines for GET only.
//!
//! The body is a file region ([`ragi::Body::File`]): on an `http` scope the server reads it in
//! 64 KiB pieces under the send backpressure, and in the decline or denial framing the
//! [`BodyWriter`](super::BodyWriter) reads it in 64 KiB pieces; either way the reading stops at
//! the first piece after the client leaves. The file is named by path, so a file replaced
//! between the `stat` and the read is read anew: a shorter one aborts the response (the
//! server refuses a body shorter than its `Content-Length`), a longer one is cut at the
//! announced length.
//!
//! [`conditional::evaluate`]: super::conditional::evaluate
//! [`conditional::if_range`]: super::conditional::if_range
//! [`range::resolve`]: super::range::resolve

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ragi::Headers;

use super::conditional::{self, fmt_http_date, EntityTag, Precondition, Validators};
use super::range::{self, ByteRangesBody, RangeSource, Ranges};
use super::{Response, ResponseBody};
use crate::{Context, Error, IntoResponse};

/// A file ready to be sent: its metadata, the headers to add, and the range policy. See the
/// [module documentation](self).
#[derive(Clone, Debug)]
pub struct FileResponse {
    path: PathBuf,
    len: u64,
    validators: Validators,
    content_type: Option<String>,
    headers: Headers,
    max_ranges: usize,
    contents: Option<bytes::Bytes>,
}

/// The fields a 304 repeats from the 200 it stands for (RFC 9110 §15.4.5).
const NOT_MODIFIED_FIELDS: [&str; 6] = [
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "vary",
];

impl FileResponse {
    /// Looks the file up. A missing file (or a path through a non-directory) is a 404, a file
    /// the process may not read a 403, a directory or anything but a regular file a 404, any
    /// other failure a 500 (the cause logged).
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        let meta = tokio::fs::metadata(&path).await.map_err(io_error)?;
        if !meta.is_file() {
            return Err(Error::not_found());
        }
        // Opening proves it is readable now (metadata needs only the directory's permission).
        drop(tokio::fs::File::open(&path).await.map_err(io_error)?);
        Ok(Self::from_metadata(path, &meta))
    }

    /// A response for the file at `path` described by `meta` (the caller looked it up).
    pub fn from_metadata(path: impl Into<PathBuf>, meta: &std::fs::Metadata) -> Self {
        Self::from_parts(path, meta.len(), meta.modified().ok(), SystemTime::now())
    }

    /// A response for `len` bytes at `path` last modified at `modified`, with `now` as the
    /// response's date (which decides whether the validators are strong).
    pub fn from_parts(
        path: impl Into<PathBuf>,
        len: u64,
        modified: Option<SystemTime>,
        now: SystemTime,
    ) -> Self {
        let path = path.into();
        let etag = modified.map(|m| file_etag(len, m, now));
        // RFC 9110 §8.8.2.1: a modification time in the future is sent as the response's date.
        let last_modified = modified.map(|m| m.min(now));
        Self {
            content_type: Some(content_type_for(&path)),
            validators: Validators::at(etag, last_modified, now),
            path,
            len,
            headers: Headers::new(),
            max_ranges: range::DEFAULT_MAX_RANGES,
            contents: None,
        }
    }

    /// Replaces the `Content-Type` (`None`: send none).
    pub fn content_type(mut self, content_type: Option<String>) -> Self {
        self.content_type = content_type;
        self
    }

    /// Replaces the entity tag (`None`: send none), e.g. for a precompressed variant.
    pub fn etag(mut self, etag: Option<EntityTag>) -> Self {
        self.validators.etag = etag;
        self
    }

    /// Adds a header to the 200 and 206 responses (and to a 304 when it is one of the fields a
    /// 304 repeats: `Cache-Control`, `Content-Location`, `Date`, `Expires`, `Vary`).
    pub fn header(mut self, name: impl Into<bytes::Bytes>, value: impl Into<bytes::Bytes>) -> Self {
        self.headers.push(name, value);
        self
    }

    /// How many range specs a `Range` may list before it is ignored
    /// ([`range::DEFAULT_MAX_RANGES`] by default); 1 turns multipart answers off (then a
    /// request for several ranges gets the whole file).
    pub fn max_ranges(mut self, n: usize) -> Self {
        self.max_ranges = n;
        self
    }

    /// The file's bytes, already read (a small file read through the descriptor its metadata
    /// came from): the body is sent from memory, sliced for ranges, instead of a file region
    /// the server opens and reads again. Ignored unless it holds exactly [`len`](Self::len)
    /// bytes.
    pub fn contents(mut self, contents: bytes::Bytes) -> Self {
        self.contents = (contents.len() as u64 == self.len).then_some(contents);
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The validators the preconditions are evaluated against.
    pub fn validators(&self) -> &Validators {
        &self.validators
    }

    /// The `Content-Type` that will be sent.
    pub fn media_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The response to a request of `method` with `headers`, as the [module
    /// documentation](self) describes. Methods other than GET and HEAD are answered like GET
    /// without `Range` (after their preconditions, where `If-None-Match` fails with 412); the
    /// caller decides which methods reach a file.
    pub fn respond(self, method: &http::Method, headers: &Headers) -> Response {
        match conditional::evaluate(method, headers, &self.validators) {
            Precondition::Failed => {
                return Error::new(412, "precondition failed").into_response();
            }
            Precondition::NotModified => return self.not_modified(),
            Precondition::Proceed => {}
        }
        let ranges = if *method == http::Method::GET {
            self.ranges(headers)
        } else {
            Ranges::Whole
        };
        let head = *method == http::Method::HEAD;
        match ranges {
            Ranges::Whole => {
                let mut r = Response::new(200);
                if let Some(t) = &self.content_type {
                    r.headers.push("content-type", t.clone());
                }
                r.headers.push("content-length", decimal(self.len));
                self.push_common(&mut r.headers);
                if !head && self.len > 0 {
                    r.body = match self.contents {
                        Some(b) => ResponseBody::Bytes(b),
                        None => ResponseBody::File {
                            path: self.path,
                            offset: 0,
                            length: Some(self.len),
                        },
                    };
                }
                r
            }
            Ranges::Partial(ranges) if ranges.len() == 1 => {
                let one = ranges[0];
                let mut r = Response::new(206);
                if let Some(t) = &self.content_type {
                    r.headers.push("content-type", t.clone());
                }
                r.headers.push("content-range", one.content_range(self.len));
                r.headers.push("content-length", decimal(one.len()));
                self.push_common(&mut r.headers);
                r.body = match &self.contents {
                    Some(b) => match RangeSource::Bytes(b).piece(one) {
                        ragi::Body::Bytes(b) => ResponseBody::Bytes(b),
                        other => ResponseBody::Pieces(vec![other]),
                    },
                    None => ResponseBody::File {
                        path: self.path,
                        offset: one.start,
                        length: Some(one.len()),
                    },
                };
                r
            }
            Ranges::Partial(ranges) => {
                let source = match &self.contents {
                    Some(b) => RangeSource::Bytes(b),
                    None => RangeSource::File(&self.path),
                };
                let body = ByteRangesBody::new(
                    source,
                    &ranges,
                    self.len,
                    self.content_type.as_deref(),
                    &range::new_boundary(),
                );
                let mut r = Response::new(206);
                r.headers.push("content-type", body.content_type);
                r.headers.push("content-length", decimal(body.length));
                self.push_common(&mut r.headers);
                r.body = ResponseBody::Pieces(body.pieces);
                r
            }
            Ranges::Unsatisfiable => Error::new(416, "range not satisfiable")
                .with_header("content-range", format!("bytes */{}", self.len))
                .with_header("accept-ranges", "bytes")
                .into_response(),
        }
    }

    /// [`FileResponse::respond`] with the method and headers of `cx`'s request.
    pub fn respond_to(self, cx: &impl Context) -> Response {
        let scope = cx.scope();
        self.respond(&scope.method, &scope.headers)
    }

    /// The ranges to send: `Range` (one field line) when `If-Range` (one field line, if any)
    /// holds.
    fn ranges(&self, headers: &Headers) -> Ranges {
        let mut range = headers.get_all("range");
        let (Some(value), None) = (range.next(), range.next()) else {
            return Ranges::Whole;
        };
        let mut if_range = headers.get_all("if-range");
        match (if_range.next(), if_range.next()) {
            (None, _) => {}
            (Some(v), None) if conditional::if_range(v, &self.validators) => {}
            _ => return Ranges::Whole,
        }
        range::resolve(value, self.len, self.max_ranges)
    }

    /// `Accept-Ranges`, the validators and the caller's headers.
    fn push_common(&self, h: &mut Headers) {
        h.push("accept-ranges", "bytes");
        if let Some(tag) = &self.validators.etag {
            h.push("etag", tag.to_field());
        }
        if let Some(m) = self.validators.last_modified {
            h.push("last-modified", fmt_http_date(m));
        }
        for (n, v) in &self.headers {
            h.push(n.clone(), v.clone());
        }
    }

    /// 304 with the fields RFC 9110 §15.4.5 lists, and `Last-Modified` only when there is no
    /// tag (the section allows it to guide cache updates then).
    fn not_modified(self) -> Response {
        let mut r = Response::new(304);
        match &self.validators.etag {
            Some(tag) => r.headers.push("etag", tag.to_field()),
            None => {
                if let Some(m) = self.validators.last_modified {
                    r.headers.push("last-modified", fmt_http_date(m));
                }
            }
        }
        for (n, v) in &self.headers {
            if NOT_MODIFIED_FIELDS
                .iter()
                .any(|f| n.eq_ignore_ascii_case(f.as_bytes()))
            {
                r.headers.push(n.clone(), v.clone());
            }
        }
        r
    }
}

/// Sends the file at `path` as the answer to `cx`'s request: [`FileResponse::open`] then
/// [`FileResponse::respond`]. The future holds no borrow of `cx` (it copies the method and the
/// fields the answer depends on), so it is `Send` and `'static`.
pub fn send_file(
    cx: &impl Context,
    path: impl Into<PathBuf>,
) -> impl std::future::Future<Output = Result<Response, Error>> + Send + 'static {
    let scope = cx.scope();
    let method = scope.method.clone();
    let headers: Headers = scope
        .headers
        .iter()
        .filter(|(n, _)| {
            REQUEST_FIELDS
                .iter()
                .any(|f| n.eq_ignore_ascii_case(f.as_bytes()))
        })
        .cloned()
        .collect();
    let path = path.into();
    async move { Ok(FileResponse::open(path).await?.respond(&method, &headers)) }
}

/// The request fields a file response depends on.
const REQUEST_FIELDS: [&str; 6] = [
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "range",
];

/// The entity tag of a file of `len` bytes modified at `modified`: strong once the file has
/// been unchanged for a second at `now`, weak before. See the [module documentation](self).
pub fn file_etag(len: u64, modified: SystemTime, now: SystemTime) -> EntityTag {
    let (sign, d) = match modified.duration_since(UNIX_EPOCH) {
        Ok(d) => ("", d),
        Err(e) => ("-", e.duration()),
    };
    // `{len:x}-{sign}{secs:x}.{nanos:08x}`, written without the formatting machinery (this
    // runs once per file response).
    let mut tag = String::with_capacity(40);
    push_hex(&mut tag, len, 1);
    tag.push('-');
    tag.push_str(sign);
    push_hex(&mut tag, d.as_secs(), 1);
    tag.push('.');
    push_hex(&mut tag, u64::from(d.subsec_nanos()), 8);
    let tag = EntityTag::strong(tag).expect("hex digits, '-' and '.' are etagc");
    if conditional::is_settled(modified, now) {
        tag
    } else {
        tag.into_weak()
    }
}

/// `n` in lower-case hex, at least `width` digits.
fn push_hex(out: &mut String, n: u64, width: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = DIGITS[(n & 15) as usize];
        n >>= 4;
        if n == 0 && buf.len() - i >= width {
            break;
        }
    }
    out.extend(buf[i..].iter().map(|&b| b as char));
}

/// `n` in decimal, as a header value.
fn decimal(n: u64) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(itoa::Buffer::new().format(n).as_bytes())
}

/// The types of the most common extensions on the web, as [`content_type_for`] spells them
/// (`mime_guess`'s first guess, charset added; a test checks they agree): looked up without
/// `mime_guess`'s case-insensitive search of its whole table.
const COMMON_TYPES: [(&str, &str); 23] = [
    ("css", "text/css; charset=utf-8"),
    ("gif", "image/gif"),
    ("htm", "text/html; charset=utf-8"),
    ("html", "text/html; charset=utf-8"),
    ("ico", "image/x-icon"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("js", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("mjs", "application/javascript; charset=utf-8"),
    ("mp4", "video/mp4"),
    ("pdf", "application/pdf"),
    ("png", "image/png"),
    ("svg", "image/svg+xml"),
    ("txt", "text/plain; charset=utf-8"),
    ("wasm", "application/wasm"),
    ("webm", "video/webm"),
    ("webp", "image/webp"),
    ("woff", "application/font-woff"),
    ("woff2", "font/woff2"),
    ("xml", "text/xml; charset=utf-8"),
    ("zip", "application/zip"),
    ("bin", "application/octet-stream"),
];

/// The `Content-Type` for `path` by its extension: `mime_guess`'s first guess, with
/// `; charset=utf-8` on `text/*` and JavaScript; `application/octet-stream` when unknown.
pub fn content_type_for(path: &Path) -> String {
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        if let Some((_, t)) = COMMON_TYPES
            .iter()
            .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        {
            return (*t).to_owned();
        }
    }
    guess_content_type(path)
}

fn guess_content_type(path: &Path) -> String {
    match mime_guess::from_path(path).first_raw() {
        Some(t) if t.starts_with("text/") || t == "application/javascript" => {
            format!("{t}; charset=utf-8")
        }
        Some(t) => t.to_owned(),
        None => "application/octet-stream".to_owned(),
    }
}

/// The response an I/O failure looking up a file means: the path names no file (missing, a
/// path through a file, a NUL byte, a name too long) → 404; not readable → 403; anything else
/// → 500 with the cause logged.
fn io_error(e: std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    // ENAMETOOLONG has no stable `ErrorKind` at this crate's minimum Rust version.
    #[cfg(target_os = "linux")]
    const NAME_TOO_LONG: i32 = 36;
    #[cfg(all(unix, not(target_os = "linux")))]
    const NAME_TOO_LONG: i32 = 63;
    #[cfg(not(unix))]
    const NAME_TOO_LONG: i32 = 206;
    match e.kind() {
        K::NotFound | K::NotADirectory | K::IsADirectory | K::InvalidInput => Error::not_found(),
        K::PermissionDenied => Error::new(403, "forbidden"),
        _ if e.raw_os_error() == Some(NAME_TOO_LONG) => Error::not_found(),
        _ => Error::internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn content_types() {
        let ct = |p: &str| content_type_for(Path::new(p));
        assert_eq!(ct("a.txt"), "text/plain; charset=utf-8");
        assert_eq!(ct("a.HTML"), "text/html; charset=utf-8");
        assert_eq!(ct("a.js"), "text/javascript; charset=utf-8");
        assert_eq!(ct("a.mjs"), "application/javascript; charset=utf-8");
        assert_eq!(ct("a.json"), "application/json");
        assert_eq!(ct("a.png"), "image/png");
        assert_eq!(ct("a"), "application/octet-stream");
        assert_eq!(ct("a.nosuchext"), "application/octet-stream");
    }

    #[test]
    fn the_common_types_are_mime_guess_s() {
        for (ext, t) in COMMON_TYPES {
            for e in [ext.to_owned(), ext.to_ascii_uppercase()] {
                let p = std::path::PathBuf::from(format!("a.{e}"));
                assert_eq!(guess_content_type(&p), t, "{e}");
                assert_eq!(content_type_for(&p), t, "{e}");
            }
        }
        let mut s = String::new();
        push_hex(&mut s, 0, 8);
        push_hex(&mut s, 0xabc, 1);
        push_hex(&mut s, u64::MAX, 1);
        assert_eq!(s, "00000000abcffffffffffffffff");
        assert_eq!(decimal(0), "0");
        assert_eq!(decimal(u64::MAX), "18446744073709551615");
    }

    #[test]
    fn a_future_mtime_is_sent_as_now_and_is_weak() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let f = FileResponse::from_parts("x", 1, Some(now + Duration::from_secs(60)), now);
        let v = f.validators();
        assert_eq!(v.last_modified, Some(now));
        assert!(!v.last_modified_strong);
        assert!(v.etag.as_ref().unwrap().is_weak());
    }

    #[test]
    fn etags_are_strong_after_a_second() {
        let m = UNIX_EPOCH + Duration::new(0x6543_2100, 0x0012_3456);
        let strong = file_etag(0x1000, m, m + Duration::from_secs(1));
        assert_eq!(strong.to_string(), r#""1000-65432100.00123456""#);
        let weak = file_etag(0x1000, m, m + Duration::from_millis(999));
        assert!(weak.is_weak() && weak.weak_eq(&strong));
        // Another size or another nanosecond: another tag.
        assert_ne!(file_etag(0x1001, m, m + Duration::from_secs(5)), strong);
        assert_ne!(
            file_etag(
                0x1000,
                m + Duration::from_nanos(1),
                m + Duration::from_secs(5)
            ),
            strong
        );
        let before = UNIX_EPOCH - Duration::new(2, 5);
        assert_eq!(
            file_etag(1, before, UNIX_EPOCH).to_string(),
            r#""1--2.00000005""#
        );
    }
}
