//! The response side through the test client: builders, cookies, and every rule of the file
//! response (preconditions and their order, 304 fields, each Range form, multipart, If-Range,
//! 416, HEAD, a client that leaves mid-file).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ragi::{DisconnectReason, ScopeKind};
use ragi_tools::prelude::*;
use ragi_tools::response::{FileResponse, SameSite, SetCookie};
use ragi_tools::test::{AppOutcome, Disconnect, TestClient, TestResponse};

const SIZE: usize = 10_000;

/// A directory of test files, removed on drop:
/// * `data.txt`: SIZE bytes, modified a day ago (strong validators);
/// * `fresh.bin`: 100 bytes, modified just now (weak validators);
/// * `empty.txt`: 0 bytes; `sub/`: a directory.
struct Files {
    dir: PathBuf,
    content: Vec<u8>,
}

impl Files {
    fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("ragi-tools-resp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let content: Vec<u8> = (0..SIZE).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.join("data.txt"), &content).unwrap();
        std::fs::File::options()
            .write(true)
            .open(dir.join("data.txt"))
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(86_400))
            .unwrap();
        std::fs::write(dir.join("fresh.bin"), [7u8; 100]).unwrap();
        std::fs::write(dir.join("empty.txt"), b"").unwrap();
        Self { dir, content }
    }

    /// A client of an app serving this directory with `FileResponse`, adding `cache-control`,
    /// `vary` and `x-extra` headers.
    fn client(&self) -> TestClient {
        let root = self.dir.clone();
        TestClient::new(handler(move |cx: HttpContext| {
            let path = root.join(cx.path().trim_start_matches('/'));
            async move {
                Ok::<_, Error>(
                    FileResponse::open(path)
                        .await?
                        .header("cache-control", "max-age=60")
                        .header("vary", "accept-encoding")
                        .header("x-extra", "1")
                        .respond_to(&cx),
                )
            }
        }))
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn get(c: &TestClient, path: &str, headers: &[(&'static str, String)]) -> TestResponse {
    req(c, http::Method::GET, path, headers).await
}

async fn req(
    c: &TestClient,
    method: http::Method,
    path: &str,
    headers: &[(&'static str, String)],
) -> TestResponse {
    let mut b = c.request(method, path);
    for (n, v) in headers {
        b = b.header(*n, v.clone());
    }
    let r = b.send().await;
    assert!(r.violations().is_empty(), "{:?}", r.violations());
    r
}

fn h(name: &'static str, value: impl Into<String>) -> (&'static str, String) {
    (name, value.into())
}

/// The validators of `data.txt` as a GET shows them.
async fn validators(c: &TestClient) -> (String, String) {
    let r = get(c, "/data.txt", &[]).await;
    (
        r.header("etag").unwrap().to_owned(),
        r.header("last-modified").unwrap().to_owned(),
    )
}

fn names(r: &TestResponse) -> Vec<String> {
    let mut v: Vec<String> = r
        .headers()
        .iter()
        .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// The builders and cookies
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn builders_reach_the_client_as_built() {
    let app = handler(|cx: HttpContext| async move {
        match cx.path() {
            "/text" => Response::text("hi"),
            "/html" => Html("<b>hi</b>").into_response(),
            "/json" => Response::json(&serde_json::json!({"a": 1})),
            "/empty" => Response::empty(202),
            "/none" => Response::no_content(),
            "/302" => Response::redirect("/to?x=1"),
            "/303" => Response::see_other("/to"),
            "/307" => Response::temporary_redirect("/to"),
            "/308" => Response::permanent_redirect("/to"),
            _ => Response::new(404),
        }
    });
    let c = TestClient::new(app);
    let r = c.get("/text").send().await;
    assert_eq!((r.status(), r.text()), (200, "hi".to_owned()));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("2"));
    let head = c.head("/text").send().await;
    assert_eq!(head.headers(), r.headers());
    assert!(head.bytes().is_empty());
    let r = c.get("/html").send().await;
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.text(), "<b>hi</b>");
    let r = c.get("/json").send().await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json::<serde_json::Value>(), serde_json::json!({"a": 1}));
    let r = c.get("/empty").send().await;
    assert_eq!((r.status(), r.bytes().len()), (202, 0));
    let r = c.get("/none").send().await;
    assert_eq!((r.status(), r.bytes().len()), (204, 0));
    assert_eq!(r.header("content-length"), None);
    for (path, status, to) in [
        ("/302", 302, "/to?x=1"),
        ("/303", 303, "/to"),
        ("/307", 307, "/to"),
        ("/308", 308, "/to"),
    ] {
        let r = c.get(path).send().await;
        assert_eq!(
            (r.status(), r.header("location")),
            (status, Some(to)),
            "{path}"
        );
    }
}

#[tokio::test]
async fn cookies_with_every_attribute_one_field_each() {
    let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_800); // 2100-01-01
    let app = handler(move |cx: HttpContext| async move {
        match cx.path() {
            "/set" => Response::text("set")
                .cookie(
                    SetCookie::new("full", "v")
                        .path("/")
                        .domain("example.com")
                        .max_age(Duration::from_secs(3600))
                        .expires(expires)
                        .secure(true)
                        .http_only(true)
                        .same_site(SameSite::Strict)
                        .partitioned(true),
                )
                .cookie(
                    SetCookie::new("lax", "a b;c")
                        .path("/")
                        .same_site(SameSite::Lax),
                )
                .cookie(
                    SetCookie::new("cross", "1")
                        .path("/")
                        .same_site(SameSite::None),
                )
                .cookie(SetCookie::new("__Host-id", "x")),
            "/clear" => Response::text("cleared").cookie(SetCookie::removal("lax").path("/")),
            "/bad" => Response::text("never").cookie(SetCookie::new("a b", "1")),
            _ => Response::new(404),
        }
    });
    let c = TestClient::new(app);
    let r = c.get("/set").send().await;
    let fields: Vec<_> = r
        .headers()
        .get_all("set-cookie")
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "full=v; Path=/; Domain=example.com; Max-Age=3600; Expires=Fri, 01 Jan 2100 00:00:00 GMT; \
             Secure; HttpOnly; SameSite=Strict; Partitioned",
            "lax=a%20b%3Bc; Path=/; SameSite=Lax",
            "cross=1; Path=/; Secure; SameSite=None",
            "__Host-id=x; Path=/; Secure",
        ]
    );
    // The jar took the encoded value; removal deletes it.
    assert_eq!(c.cookie("lax").as_deref(), Some("a%20b%3Bc"));
    let r = c.get("/clear").send().await;
    assert_eq!(
        r.header("set-cookie"),
        Some("lax=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    );
    assert_eq!(c.cookie("lax"), None);
    // An invalid cookie is a 500 and sets nothing.
    let r = c.get("/bad").send().await;
    assert_eq!(r.status(), 500);
    assert_eq!(r.header("set-cookie"), None);
}

// ---------------------------------------------------------------------------------------------
// Files: the plain answer and HEAD
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_whole_file_and_its_head() {
    let files = Files::new("whole");
    let c = files.client();
    let r = get(&c, "/data.txt", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes(), &files.content[..]);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("10000"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let etag = r.header("etag").unwrap();
    assert!(
        etag.starts_with("\"2710-") && !etag.starts_with("W/"),
        "{etag}"
    );
    assert!(r.header("last-modified").unwrap().ends_with(" GMT"));
    // HEAD: the same fields in the same order, no body, the file not read.
    let head = req(&c, http::Method::HEAD, "/data.txt", &[]).await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers(), r.headers());
    assert!(head.bytes().is_empty());
    assert!(
        head.events().iter().all(|e| !matches!(
            e,
            ragi::SendEvent::ResponseBody {
                body: ragi::Body::File { .. },
                ..
            }
        )),
        "HEAD reads no file"
    );
    // A fresh file: its tag is weak until a second has passed.
    let r = get(&c, "/fresh.bin", &[]).await;
    assert!(r.header("etag").unwrap().starts_with("W/\"64-"));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    // Empty file, missing file, directory.
    let r = get(&c, "/empty.txt", &[]).await;
    assert_eq!((r.status(), r.header("content-length")), (200, Some("0")));
    let r = get(&c, "/missing.txt", &[]).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<serde_json::Value>()["error"], "not found");
    assert_eq!(get(&c, "/sub", &[]).await.status(), 404);
    assert_eq!(get(&c, "/data.txt/x", &[]).await.status(), 404);
}

// ---------------------------------------------------------------------------------------------
// Preconditions, in RFC 9110 §13.2.2's order
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn if_match_and_if_unmodified_since() {
    let files = Files::new("im");
    let c = files.client();
    let (etag, lm) = validators(&c).await;
    let weak = format!("W/{etag}");
    for (value, status) in [
        (etag.clone(), 200),
        (format!("\"x\", {etag}"), 200),
        ("*".to_owned(), 200),
        (weak.clone(), 412), // strong comparison
        ("\"x\"".to_owned(), 412),
        ("garbage".to_owned(), 412),
    ] {
        let r = get(&c, "/data.txt", &[h("if-match", value.clone())]).await;
        assert_eq!(r.status(), status, "If-Match: {value}");
    }
    let r = get(&c, "/data.txt", &[h("if-match", "\"x\"")]).await;
    assert_eq!(
        r.json::<serde_json::Value>()["error"],
        "precondition failed"
    );

    let long_ago = "Thu, 01 Jan 1970 00:00:00 GMT";
    for (value, status) in [
        (lm.clone(), 200),
        ("Fri, 01 Jan 2100 00:00:00 GMT".to_owned(), 200),
        (long_ago.to_owned(), 412),
        ("not a date".to_owned(), 200),
    ] {
        let r = get(&c, "/data.txt", &[h("if-unmodified-since", value.clone())]).await;
        assert_eq!(r.status(), status, "If-Unmodified-Since: {value}");
    }
    // If-Unmodified-Since is looked at only without If-Match.
    let r = get(
        &c,
        "/data.txt",
        &[
            h("if-match", etag.clone()),
            h("if-unmodified-since", long_ago),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    // Both come before If-None-Match: a failing If-Match is 412 even when INM would be 304.
    let r = get(
        &c,
        "/data.txt",
        &[h("if-match", "\"x\""), h("if-none-match", etag.clone())],
    )
    .await;
    assert_eq!(r.status(), 412);
    let r = get(
        &c,
        "/data.txt",
        &[h("if-unmodified-since", long_ago), h("if-none-match", etag)],
    )
    .await;
    assert_eq!(r.status(), 412);
}

#[tokio::test]
async fn if_none_match_and_if_modified_since() {
    let files = Files::new("inm");
    let c = files.client();
    let (etag, lm) = validators(&c).await;
    for (value, status) in [
        (etag.clone(), 304),
        (format!("W/{etag}"), 304), // weak comparison
        (format!("\"a,b\", {etag}"), 304),
        ("*".to_owned(), 304),
        ("\"x\"".to_owned(), 200),
        ("garbage".to_owned(), 200),
    ] {
        let r = get(&c, "/data.txt", &[h("if-none-match", value.clone())]).await;
        assert_eq!(r.status(), status, "If-None-Match: {value}");
        let r = req(
            &c,
            http::Method::HEAD,
            "/data.txt",
            &[h("if-none-match", value.clone())],
        )
        .await;
        assert_eq!(r.status(), status, "HEAD If-None-Match: {value}");
    }
    // Other methods: 412 where GET would be 304.
    let r = req(
        &c,
        http::Method::POST,
        "/data.txt",
        &[h("if-none-match", etag.clone())],
    )
    .await;
    assert_eq!(r.status(), 412);

    let future = "Fri, 01 Jan 2100 00:00:00 GMT";
    let long_ago = "Thu, 01 Jan 1970 00:00:00 GMT";
    for (value, status) in [
        (lm.clone(), 304),
        (future.to_owned(), 304),
        (long_ago.to_owned(), 200),
        ("not a date".to_owned(), 200),
    ] {
        let r = get(&c, "/data.txt", &[h("if-modified-since", value.clone())]).await;
        assert_eq!(r.status(), status, "If-Modified-Since: {value}");
    }
    // GET and HEAD only.
    let r = req(
        &c,
        http::Method::POST,
        "/data.txt",
        &[h("if-modified-since", future)],
    )
    .await;
    assert_eq!(r.status(), 200);
    // Starlette's bug: If-Modified-Since is ignored when If-None-Match is present, even when
    // the tag does not match.
    let r = get(
        &c,
        "/data.txt",
        &[
            h("if-none-match", "\"other\""),
            h("if-modified-since", future),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().len(), SIZE);
    // ... and a matching tag gives 304 whatever the date says.
    let r = get(
        &c,
        "/data.txt",
        &[h("if-none-match", etag), h("if-modified-since", long_ago)],
    )
    .await;
    assert_eq!(r.status(), 304);
}

#[tokio::test]
async fn not_modified_carries_only_the_listed_fields() {
    let files = Files::new("304");
    let c = files.client();
    let (etag, _) = validators(&c).await;
    for method in [http::Method::GET, http::Method::HEAD] {
        let r = req(
            &c,
            method.clone(),
            "/data.txt",
            &[h("if-none-match", etag.clone())],
        )
        .await;
        assert_eq!(r.status(), 304);
        // ETag, Cache-Control, Vary; not x-extra, Last-Modified, Content-Type or
        // Content-Length (the server's Date is added on the wire).
        assert_eq!(names(&r), ["cache-control", "etag", "vary"], "{method}");
        assert_eq!(r.header("etag"), Some(&*etag));
        assert!(r.bytes().is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Range
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn each_range_form() {
    let files = Files::new("range");
    let c = files.client();
    let all = &files.content;
    for (range, start, end) in [
        ("bytes=0-0", 0, 0),
        ("bytes=10-19", 10, 19),
        ("bytes=9990-", 9990, 9999),
        ("bytes=9990-20000", 9990, 9999),
        ("bytes=-10", 9990, 9999),
        // A suffix longer than the file: the whole file, as a 206.
        ("bytes=-10000", 0, 9999),
        ("bytes=-50000", 0, 9999),
        // Unsatisfiable ranges among satisfiable ones are dropped.
        ("bytes=20000-, 5-6", 5, 6),
    ] {
        let r = get(&c, "/data.txt", &[h("range", range)]).await;
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(&*format!("bytes {start}-{end}/{SIZE}")),
            "{range}"
        );
        assert_eq!(
            r.header("content-length"),
            Some(&*(end - start + 1).to_string())
        );
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert!(r.header("etag").is_some() && r.header("accept-ranges") == Some("bytes"));
        assert_eq!(r.bytes(), &all[start..=end], "{range}");
    }
    // Unsatisfiable: 416 with the size.
    for range in ["bytes=10000-", "bytes=10000-10005, 20000-", "bytes=-0"] {
        let r = get(&c, "/data.txt", &[h("range", range)]).await;
        assert_eq!(r.status(), 416, "{range}");
        assert_eq!(r.header("content-range"), Some("bytes */10000"));
    }
    // Invalid: ignored, the whole file.
    for range in [
        "bytes=5-1",
        "bytes=x-1",
        "items=0-1",
        "bytes=",
        "0-1",
        "bytes=1-2-3",
    ] {
        let r = get(&c, "/data.txt", &[h("range", range)]).await;
        assert_eq!((r.status(), r.bytes().len()), (200, SIZE), "{range}");
        assert_eq!(r.header("content-range"), None);
    }
    // Two Range fields: invalid, ignored.
    let r = get(
        &c,
        "/data.txt",
        &[h("range", "bytes=0-1"), h("range", "bytes=2-3")],
    )
    .await;
    assert_eq!(r.status(), 200);
    // Range is for GET only: HEAD answers as without it, POST too.
    let plain = req(&c, http::Method::HEAD, "/data.txt", &[]).await;
    let r = req(
        &c,
        http::Method::HEAD,
        "/data.txt",
        &[h("range", "bytes=0-1")],
    )
    .await;
    assert_eq!((r.status(), r.headers()), (200, plain.headers()));
    let r = req(
        &c,
        http::Method::POST,
        "/data.txt",
        &[h("range", "bytes=0-1")],
    )
    .await;
    assert_eq!((r.status(), r.bytes().len()), (200, SIZE));
    // Empty file: nothing is satisfiable but a suffix, which is the whole (empty) file.
    let r = get(&c, "/empty.txt", &[h("range", "bytes=0-")]).await;
    assert_eq!(
        (r.status(), r.header("content-range")),
        (416, Some("bytes */0"))
    );
    let r = get(&c, "/empty.txt", &[h("range", "bytes=-5")]).await;
    assert_eq!((r.status(), r.header("content-length")), (200, Some("0")));
}

/// A strict `multipart/byteranges` parser: the boundary from Content-Type, CRLF line ends,
/// each part's fields and exactly the bytes its Content-Range names.
fn parse_multipart(r: &TestResponse) -> Vec<(Vec<(String, String)>, (usize, usize), Vec<u8>)> {
    let ct = r.header("content-type").unwrap();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("the boundary belongs in Content-Type: {ct}"));
    assert!(r.header("content-range").is_none());
    let body = r.bytes();
    assert_eq!(r.header("content-length"), Some(&*body.len().to_string()));
    let mut rest = body
        .strip_prefix(format!("--{boundary}\r\n").as_bytes())
        .expect("opens with the delimiter");
    let mut parts = Vec::new();
    loop {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let fields: Vec<(String, String)> = std::str::from_utf8(&rest[..end])
            .unwrap()
            .split("\r\n")
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_owned(), v.to_owned())
            })
            .collect();
        rest = &rest[end + 4..];
        let cr = &fields.iter().find(|(n, _)| n == "Content-Range").unwrap().1;
        let span = cr.strip_prefix("bytes ").unwrap().split_once('/').unwrap();
        assert_eq!(span.1, SIZE.to_string());
        let (a, b) = span.0.split_once('-').unwrap();
        let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
        parts.push((fields, (a, b), rest[..=b - a].to_vec()));
        rest = rest[b - a + 1..]
            .strip_prefix(format!("\r\n--{boundary}").as_bytes())
            .expect("CRLF and the delimiter after each part");
        if rest == b"--\r\n" {
            return parts;
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .expect("CRLF after the delimiter");
    }
}

#[tokio::test]
async fn several_ranges_are_a_correct_multipart_body() {
    let files = Files::new("multi");
    let c = files.client();
    let r = get(&c, "/data.txt", &[h("range", "bytes=9000-9099, 0-9, -1")]).await;
    assert_eq!(r.status(), 206);
    let parts = parse_multipart(&r);
    let spans: Vec<_> = parts.iter().map(|p| p.1).collect();
    // The client's order is kept.
    assert_eq!(spans, [(9000, 9099), (0, 9), (9999, 9999)]);
    for (fields, (a, b), data) in &parts {
        assert_eq!(
            fields[0],
            ("Content-Type".into(), "text/plain; charset=utf-8".into())
        );
        assert_eq!(data, &files.content[*a..=*b]);
    }
    // Overlapping and touching ranges are coalesced; what is left is one range: single part.
    let r = get(&c, "/data.txt", &[h("range", "bytes=0-9, 5-19, 20-29")]).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.header("content-range"), Some("bytes 0-29/10000"));
    assert_eq!(r.bytes(), &files.content[..30]);
    let r = get(
        &c,
        "/data.txt",
        &[h("range", "bytes=100-199, 0-9, 150-250")],
    )
    .await;
    let spans: Vec<_> = parse_multipart(&r).iter().map(|p| p.1).collect();
    assert_eq!(spans, [(100, 250), (0, 9)]);
    // More than 32 ranges: the whole file.
    let many: Vec<String> = (0..33).map(|i| format!("{}-{}", i * 10, i * 10)).collect();
    let r = get(
        &c,
        "/data.txt",
        &[h("range", format!("bytes={}", many.join(",")))],
    )
    .await;
    assert_eq!((r.status(), r.bytes().len()), (200, SIZE));
    let r = get(
        &c,
        "/data.txt",
        &[h("range", format!("bytes={}", many[..32].join(",")))],
    )
    .await;
    assert_eq!(parse_multipart(&r).len(), 32);
    // Two multipart responses use different boundaries.
    let a = get(&c, "/data.txt", &[h("range", "bytes=0-0,2-2")]).await;
    let b = get(&c, "/data.txt", &[h("range", "bytes=0-0,2-2")]).await;
    assert_ne!(a.header("content-type"), b.header("content-type"));
}

#[tokio::test]
async fn if_range_needs_a_strong_validator() {
    let files = Files::new("ifrange");
    let c = files.client();
    let (etag, lm) = validators(&c).await;
    for (if_range, status) in [
        (etag.clone(), 206),
        (lm.clone(), 206),
        (format!("W/{etag}"), 200),
        ("\"other\"".to_owned(), 200),
        ("Fri, 01 Jan 2100 00:00:00 GMT".to_owned(), 200),
        ("garbage".to_owned(), 200),
    ] {
        let r = get(
            &c,
            "/data.txt",
            &[h("range", "bytes=0-9"), h("if-range", if_range.clone())],
        )
        .await;
        assert_eq!(r.status(), status, "If-Range: {if_range}");
        let want = if status == 206 { 10 } else { SIZE };
        assert_eq!(r.bytes().len(), want);
    }
    // If-Range without Range is ignored.
    let r = get(&c, "/data.txt", &[h("if-range", "\"other\"")]).await;
    assert_eq!(r.status(), 200);
    // A file changed less than a second ago has only weak validators: its own tag and date
    // do not hold in If-Range, yet a cache revalidating with the tag gets its 304.
    let fresh = get(&c, "/fresh.bin", &[]).await;
    let (ftag, flm) = (
        fresh.header("etag").unwrap().to_owned(),
        fresh.header("last-modified").unwrap().to_owned(),
    );
    for if_range in [ftag.clone(), ftag.trim_start_matches("W/").to_owned(), flm] {
        let r = get(
            &c,
            "/fresh.bin",
            &[h("range", "bytes=0-9"), h("if-range", if_range.clone())],
        )
        .await;
        assert_eq!(r.status(), 200, "fresh If-Range: {if_range}");
    }
    let r = get(&c, "/fresh.bin", &[h("if-none-match", ftag.clone())]).await;
    assert_eq!(r.status(), 304);
    let r = get(&c, "/fresh.bin", &[h("if-match", ftag)]).await;
    assert_eq!(r.status(), 412);
}

// ---------------------------------------------------------------------------------------------
// A client that leaves mid-file
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_client_that_leaves_mid_file_stops_the_reading() {
    let files = Files::new("leave");
    let big = files.dir.join("big.bin");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(64 << 20).unwrap();
    drop(f);
    let c = files.client();
    for kind in [ScopeKind::Http, ScopeKind::Sse] {
        let r = c
            .get("/big.bin")
            .kind(kind)
            .disconnect(
                Disconnect::AfterBytes(200_000),
                DisconnectReason::ClientClosed,
            )
            .send()
            .await;
        assert_eq!(r.status(), 200, "{kind:?}");
        assert_eq!(r.client_left(), Some(DisconnectReason::ClientClosed));
        assert_eq!(r.wait_app().await, AppOutcome::Returned, "{kind:?}");
        assert_eq!(
            r.connection().disconnect_reason(),
            Some(DisconnectReason::ClientClosed)
        );
        // The body stopped within a 64 KiB piece of the departure.
        let got = r.bytes().len();
        assert!(
            (200_000..200_000 + 65_536).contains(&got),
            "{kind:?}: {got}"
        );
        // On the sse scope the toolkit read the file itself: its pieces stopped there too.
        let sent: usize = r
            .events()
            .iter()
            .map(|e| match e {
                ragi::SendEvent::HttpResponseBody { body, .. } => body.len(),
                _ => 0,
            })
            .sum();
        if kind == ScopeKind::Sse {
            assert!(sent < 200_000 + 65_536, "the BodyWriter read on: {sent}");
        }
    }
}
