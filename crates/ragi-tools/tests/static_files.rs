//! The static-file app through the test client: every rule of `apps::static_files`, and the
//! references' bugs as regression tests (toolkit-references §2.1).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ragi::{DisconnectReason, ScopeKind};
use ragi_tools::apps::static_files::{Encoding, StaticFiles};
use ragi_tools::router::Router;
use ragi_tools::test::{Disconnect, TestClient, TestResponse, WsConnect};

/// A scratch tree:
///
/// ```text
/// base/
///   www/                      the root
///     hello.txt               "hello, world\n" (a day old)
///     page.html, data.json, pic.png, blob (no extension), app.js (+ .br, .gz), style.css (+ stale .gz)
///     .env, .git/config, .well-known/acme/token, sub/.well-known/x
///     dir/index.html, empty/, list/ (for listings), a%2e%2e (a literal name)
///     inside -> hello.txt, inside-dir -> dir, out -> ../outside.txt, evil -> ../www-evil/secret.txt,
///     out-dir -> ../www-evil
///   www-evil/secret.txt       a sibling whose name starts with the root's
///   outside.txt
/// ```
struct Tree {
    base: PathBuf,
}

const HELLO: &str = "hello, world\n";

fn day_old(path: &Path) {
    set_mtime(path, SystemTime::now() - Duration::from_secs(86_400));
}

fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

impl Tree {
    fn new(tag: &str) -> Self {
        let base = std::env::temp_dir().join(format!("ragi-static-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let www = base.join("www");
        for d in [
            "www/.git",
            "www/.well-known/acme",
            "www/sub/.well-known",
            "www/dir",
            "www/empty",
            "www/list/zdir",
            "www/list/adir",
            "www/list/.hidden-dir",
            "www-evil",
        ] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        let write = |p: &str, c: &[u8]| {
            std::fs::write(base.join(p), c).unwrap();
            day_old(&base.join(p));
        };
        write("www/hello.txt", HELLO.as_bytes());
        write("www/page.html", b"<p>page</p>");
        write("www/data.json", b"{}");
        write("www/pic.png", b"\x89PNG");
        write("www/blob", b"blob");
        write("www/app.js", b"console.log('identity');\n");
        write("www/app.js.br", b"BROTLI-BYTES");
        write("www/app.js.gz", b"GZIP-BYTES!");
        write("www/app.js.zst", b"ZSTD");
        write("www/style.css", b"body{}");
        write("www/style.css.gz", b"OLD-GZIP");
        // The sibling is older than the file: stale, never served.
        set_mtime(
            &base.join("www/style.css.gz"),
            SystemTime::now() - Duration::from_secs(2 * 86_400),
        );
        write("www/.env", b"SECRET=1");
        write("www/.git/config", b"[core]");
        write("www/.well-known/acme/token", b"acme-token");
        write("www/sub/.well-known/x", b"x");
        write("www/dir/index.html", b"<h1>dir index</h1>");
        write("www/a%2e%2e", b"literal name");
        write("www/list/b.txt", b"bb");
        write("www/list/a&<b>\"c'.txt", b"escape me");
        write("www/list/\u{e9}t\u{e9} \u{fc}.txt", b"non-ascii");
        write("www/list/.hidden", b"h");
        write("www-evil/secret.txt", b"EVIL SECRET");
        write("outside.txt", b"OUTSIDE");
        let link = |target: &str, at: &str| {
            std::os::unix::fs::symlink(target, base.join(at)).unwrap();
        };
        link("hello.txt", "www/inside");
        link("dir", "www/inside-dir");
        link("../outside.txt", "www/out");
        link("../www-evil/secret.txt", "www/evil");
        link("../www-evil", "www/out-dir");
        link("../../outside.txt", "www/list/out-link");
        link("../b.txt", "www/list/adir/in-link");
        let _ = www;
        Self { base }
    }

    fn root(&self) -> PathBuf {
        self.base.join("www")
    }

    fn app(&self) -> StaticFiles {
        StaticFiles::new(self.root()).unwrap()
    }

    fn client(&self) -> TestClient {
        TestClient::new(self.app())
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

async fn get(c: &TestClient, path: &str) -> TestResponse {
    checked(c.get(path).send().await)
}

async fn get_with(c: &TestClient, path: &str, headers: &[(&'static str, &str)]) -> TestResponse {
    let mut b = c.get(path);
    for (n, v) in headers {
        b = b.header(*n, v.to_string());
    }
    checked(b.send().await)
}

fn checked(r: TestResponse) -> TestResponse {
    assert!(r.violations().is_empty(), "{:?}", r.violations());
    r
}

// ---------------------------------------------------------------------------------------------
// The core's file sending
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_file_with_its_validators_and_head() {
    let t = Tree::new("whole");
    let c = t.client();
    let r = get(&c, "/hello.txt").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), HELLO);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("13"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("vary"), Some("accept-encoding"));
    assert!(r.header("content-encoding").is_none());
    let etag = r.header("etag").unwrap().to_owned();
    assert!(etag.starts_with("\"d-"), "{etag}");
    let lm = r.header("last-modified").unwrap().to_owned();

    // HEAD: the same fields, no body.
    let h = checked(c.head("/hello.txt").send().await);
    assert_eq!(h.status(), 200);
    assert_eq!(h.text(), "");
    for f in [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "vary",
    ] {
        assert_eq!(h.header(f), r.header(f), "{f}");
    }

    // Preconditions, in RFC 9110's order.
    let r = get_with(&c, "/hello.txt", &[("if-none-match", &etag)]).await;
    assert_eq!(r.status(), 304);
    assert_eq!(r.header("etag"), Some(&*etag));
    assert_eq!(r.header("vary"), Some("accept-encoding"));
    assert_eq!(r.text(), "");
    let r = get_with(&c, "/hello.txt", &[("if-modified-since", &lm)]).await;
    assert_eq!(r.status(), 304);
    // Starlette's bug: If-Modified-Since checked although If-None-Match did not match.
    let r = get_with(
        &c,
        "/hello.txt",
        &[("if-none-match", "\"other\""), ("if-modified-since", &lm)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = get_with(&c, "/hello.txt", &[("if-match", "\"other\"")]).await;
    assert_eq!(r.status(), 412);
    let r = get_with(&c, "/hello.txt", &[("if-match", &etag)]).await;
    assert_eq!(r.status(), 200);
    let r = get_with(
        &c,
        "/hello.txt",
        &[("if-unmodified-since", "Thu, 01 Jan 1970 00:00:01 GMT")],
    )
    .await;
    assert_eq!(r.status(), 412);
}

#[tokio::test]
async fn ranges_single_suffix_multi_and_unsatisfiable() {
    let t = Tree::new("ranges");
    let c = t.client();
    let r = get_with(&c, "/hello.txt", &[("range", "bytes=0-4")]).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.text(), "hello");
    assert_eq!(r.header("content-range"), Some("bytes 0-4/13"));
    // A suffix longer than the file is the whole file (PAGI computes a negative start).
    let r = get_with(&c, "/hello.txt", &[("range", "bytes=-100")]).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.text(), HELLO);
    assert_eq!(r.header("content-range"), Some("bytes 0-12/13"));
    // Several ranges: multipart/byteranges, the boundary in Content-Type (tower-http: 416;
    // Starlette: the boundary in Content-Range).
    let r = get_with(&c, "/hello.txt", &[("range", "bytes=0-0, 7-11")]).await;
    assert_eq!(r.status(), 206);
    let ct = r.header("content-type").unwrap();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{ct}"));
    assert!(r.header("content-range").is_none());
    let body = r.text();
    assert_eq!(r.header("content-length"), Some(&*body.len().to_string()));
    assert!(body.contains(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-0/13\r\n\r\nh\r\n"
    ));
    assert!(body.contains("Content-Range: bytes 7-11/13\r\n\r\nworld\r\n"));
    assert!(body.ends_with(&format!("--{boundary}--\r\n")));
    // Nothing satisfiable: 416 with `bytes */size`.
    let r = get_with(&c, "/hello.txt", &[("range", "bytes=13-")]).await;
    assert_eq!(r.status(), 416);
    assert_eq!(r.header("content-range"), Some("bytes */13"));
    // Malformed: ignored (tower-http 416, Starlette 400).
    let r = get_with(&c, "/hello.txt", &[("range", "bytes=5-1")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), HELLO);
    // HEAD ignores Range.
    let r = checked(
        c.head("/hello.txt")
            .header("range", "bytes=0-4")
            .send()
            .await,
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("content-length"), Some("13"));
}

#[tokio::test]
async fn content_types_from_the_extension() {
    let t = Tree::new("types");
    let c = t.client().default_header("accept-encoding", "identity");
    for (path, ct) in [
        ("/hello.txt", "text/plain; charset=utf-8"),
        ("/page.html", "text/html; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/data.json", "application/json"),
        ("/pic.png", "image/png"),
        ("/blob", "application/octet-stream"),
        ("/app.js.gz", "application/gzip"),
    ] {
        let r = get(&c, path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ct), "{path}");
    }
}

// ---------------------------------------------------------------------------------------------
// Paths: traversal, containment, symlinks, dotfiles
// ---------------------------------------------------------------------------------------------

/// Every traversal spelling, each aimed at a file that exists outside the root.
const TRAVERSALS: &[&str] = &[
    "/../outside.txt",
    "/../www-evil/secret.txt",
    "/dir/../../outside.txt",
    "/%2e%2e/outside.txt",
    "/%2E%2E/outside.txt",
    "/.%2e/outside.txt",
    "/%2e./outside.txt",
    "/dir/%2e%2e/%2e%2e/outside.txt",
    "/..%2foutside.txt",
    "/dir%2f..%2f..%2foutside.txt",
    "/..%2Foutside.txt",
    "/..\\outside.txt",
    "/dir\\..\\..\\outside.txt",
    "/..%5coutside.txt",
    "/%5c..%5coutside.txt",
    "/hello.txt%00",
    "/hello.txt%00.png",
    "/./hello.txt",
    "/%2e/hello.txt",
    "/%252e%252e/outside.txt",
    "/%252e%252e%252foutside.txt",
    "/..%252foutside.txt",
];

#[tokio::test]
async fn traversal_is_refused_in_every_spelling() {
    let t = Tree::new("traversal");
    let c = t.client();
    for path in TRAVERSALS {
        let r = get(&c, path).await;
        assert_eq!(r.status(), 404, "{path}");
        let body = r.text();
        assert!(
            !body.contains("OUTSIDE") && !body.contains("SECRET"),
            "{path}: {body}"
        );
    }
    // Double-encoded stays literal: `%252e%252e` is the file named `%2e%2e`, decoded once.
    let r = get(&c, "/a%252e%252e").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "literal name");
    // Empty segments are skipped.
    let r = get(&c, "//hello.txt").await;
    assert_eq!(r.text(), HELLO);
}

#[tokio::test]
async fn a_sibling_whose_name_extends_the_root_is_outside() {
    // PAGI's App::File checks a string prefix: `/x/www-evil/secret.txt` starts with `/x/www`.
    let t = Tree::new("sibling");
    let c = t.client();
    let r = get(&c, "/evil").await;
    assert_eq!(r.status(), 404);
    assert!(!r.text().contains("SECRET"));
    let r = get(&c, "/out-dir/secret.txt").await;
    assert_eq!(r.status(), 404);
    // A root given with a trailing slash or through `..` is the same root.
    let c2 = TestClient::new(StaticFiles::new(t.base.join("www-evil/../www/")).unwrap());
    assert_eq!(get(&c2, "/evil").await.status(), 404);
    assert_eq!(get(&c2, "/hello.txt").await.status(), 200);
}

#[tokio::test]
async fn symlinks_out_of_the_root_are_refused_unless_followed() {
    // tower-http's ServeDir follows them.
    let t = Tree::new("symlinks");
    let c = t.client();
    assert_eq!(get(&c, "/out").await.status(), 404);
    assert_eq!(get(&c, "/out-dir/secret.txt").await.status(), 404);
    // Inside the root: served.
    let r = get(&c, "/inside").await;
    assert_eq!((r.status(), r.text().as_str()), (200, HELLO));
    let r = get(&c, "/inside-dir/").await;
    assert_eq!(r.text(), "<h1>dir index</h1>");
    // Opt-in follow.
    let f = TestClient::new(t.app().follow_symlinks(true));
    let r = get(&f, "/out").await;
    assert_eq!((r.status(), r.text().as_str()), (200, "OUTSIDE"));
    assert_eq!(get(&f, "/out-dir/secret.txt").await.text(), "EVIL SECRET");
    // Following symlinks never lets `..` through.
    assert_eq!(get(&f, "/../outside.txt").await.status(), 404);
    assert_eq!(get(&f, "/%2e%2e/outside.txt").await.status(), 404);
}

#[tokio::test]
async fn dotfiles_are_hidden_but_well_known_is_served() {
    let t = Tree::new("dotfiles");
    let c = t.client();
    for path in [
        "/.env",
        "/%2eenv",
        "/.git/config",
        "/.git/",
        "/sub/.well-known/x",
        "/.well-known/",
    ] {
        assert_eq!(get(&c, path).await.status(), 404, "{path}");
    }
    let r = get(&c, "/.well-known/acme/token").await;
    assert_eq!((r.status(), r.text().as_str()), (200, "acme-token"));
    let d = TestClient::new(t.app().dotfiles(true));
    assert_eq!(get(&d, "/.env").await.text(), "SECRET=1");
    assert_eq!(get(&d, "/.git/config").await.text(), "[core]");
    assert_eq!(get(&d, "/../outside.txt").await.status(), 404);
}

// ---------------------------------------------------------------------------------------------
// Directories
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn directories_redirect_to_their_slash_and_serve_the_index() {
    let t = Tree::new("dirs");
    let c = t.client();
    let r = get(&c, "/dir?x=1&y=%20").await;
    assert_eq!(r.status(), 308);
    assert_eq!(r.header("location"), Some("/dir/?x=1&y=%20"));
    let r = get(&c, "/dir/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "<h1>dir index</h1>");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    // No index, no listing: 404.
    assert_eq!(get(&c, "/empty/").await.status(), 404);
    // A file asked for as a directory.
    assert_eq!(get(&c, "/hello.txt/").await.status(), 404);
    // The root itself is never redirected.
    assert_eq!(get(&c, "/").await.status(), 404);
    // A protocol-relative spelling is normalised, never `//host`.
    let r = get(&c, "//dir").await;
    assert_eq!(r.header("location"), Some("/dir/"));
    // Encoded names keep their spelling.
    std::fs::create_dir(t.root().join("a b")).unwrap();
    assert_eq!(get(&c, "/a%20b").await.header("location"), Some("/a%20b/"));
    // Under a mount, the Location carries the root path.
    let m = TestClient::new(Router::new().mount("/static files", t.app()));
    let r = get(&m, "/static%20files/dir?q").await;
    assert_eq!(r.status(), 308);
    assert_eq!(r.header("location"), Some("/static%20files/dir/?q"));
    let r = get(&m, "/static%20files/dir/").await;
    assert_eq!(r.text(), "<h1>dir index</h1>");
    // Redirects off: 404.
    let n = TestClient::new(t.app().redirect_directories(false));
    assert_eq!(get(&n, "/dir").await.status(), 404);
    // Another index name.
    std::fs::write(t.root().join("empty/default.htm"), "d").unwrap();
    let i = TestClient::new(t.app().index(Some("default.htm")));
    assert_eq!(get(&i, "/empty/").await.text(), "d");
    assert_eq!(get(&i, "/dir/").await.status(), 404);
}

#[tokio::test]
async fn listings_escape_names_encode_hrefs_and_put_directories_first() {
    let t = Tree::new("listing");
    let c = TestClient::new(t.app().listing(true));
    let r = get(&c, "/list/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("vary"), Some("accept"));
    let body = r.text();
    // Content-Length counts bytes, non-ASCII names included (PAGI counts characters).
    assert_eq!(
        r.header("content-length"),
        Some(&*r.bytes().len().to_string())
    );
    assert!(r.bytes().len() > body.chars().count());
    assert!(body.contains("<title>Index of /list/</title>"));
    assert!(body.contains("<a href=\"../\">../</a>"));
    assert!(body.contains("<a href=\"a%26%3Cb%3E%22c%27.txt\">a&amp;&lt;b&gt;&quot;c&#39;.txt</a>"));
    assert!(body.contains("<a href=\"%C3%A9t%C3%A9%20%C3%BC.txt\">\u{e9}t\u{e9} \u{fc}.txt</a>"));
    assert!(!body.contains("<b>"));
    // Hidden names and symlinks out of the root are not listed.
    assert!(!body.contains("hidden"));
    assert!(!body.contains("out-link"));
    // Directories first, then by name.
    let order: Vec<usize> = ["adir/", "zdir/", "a%26", "b.txt", "%C3%A9t"]
        .iter()
        .map(|n| {
            body.find(&format!("href=\"{n}"))
                .unwrap_or_else(|| panic!("{n}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    // A symlink inside the root is listed.
    let r = get(&c, "/list/adir/").await;
    assert!(r.text().contains("href=\"in-link\""));

    // JSON by Accept.
    let r = get_with(&c, "/list/", &[("accept", "application/json")]).await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    let list: Vec<serde_json::Value> = r.json();
    let names: Vec<&str> = list.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "adir",
            "zdir",
            "a&<b>\"c'.txt",
            "b.txt",
            "\u{e9}t\u{e9} \u{fc}.txt"
        ]
    );
    assert_eq!(list[0]["is_dir"], true);
    assert_eq!(list[3]["size"], 2);
    assert!(list[3]["mtime"].as_u64().unwrap() > 1_600_000_000);
    // The root has no parent link; HEAD has the fields and no body.
    let r = get(&c, "/").await;
    assert!(!r.text().contains("href=\"../\""));
    let h = checked(c.head("/list/").send().await);
    assert_eq!(h.status(), 200);
    assert_eq!(h.text(), "");
    // An index still wins over a listing; `/list` still redirects.
    assert_eq!(get(&c, "/dir/").await.text(), "<h1>dir index</h1>");
    assert_eq!(get(&c, "/list").await.status(), 308);
    // Under a mount, the title shows the root path.
    let m = TestClient::new(Router::new().mount("/files", t.app().listing(true)));
    assert!(get(&m, "/files/list/")
        .await
        .text()
        .contains("Index of /files/list/"));
}

// ---------------------------------------------------------------------------------------------
// Precompressed siblings
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn precompressed_siblings_by_q_value() {
    let t = Tree::new("precompressed");
    let c = t.client();
    let enc = |r: &TestResponse| r.header("content-encoding").map(str::to_owned);
    let identity = get(&c, "/app.js").await;
    assert_eq!(identity.text(), "console.log('identity');\n");
    assert_eq!(enc(&identity), None);
    assert_eq!(identity.header("vary"), Some("accept-encoding"));

    let r = get_with(
        &c,
        "/app.js",
        &[("accept-encoding", "gzip, deflate, br, zstd")],
    )
    .await;
    assert_eq!(
        (enc(&r).as_deref(), r.text().as_str()),
        (Some("br"), "BROTLI-BYTES")
    );
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(r.header("vary"), Some("accept-encoding"));
    assert_eq!(r.header("content-length"), Some("12"));
    let br_tag = r.header("etag").unwrap().to_owned();
    assert!(br_tag.ends_with("-br\""), "{br_tag}");

    let r = get_with(&c, "/app.js", &[("accept-encoding", "br;q=0.5, gzip")]).await;
    assert_eq!(
        (enc(&r).as_deref(), r.text().as_str()),
        (Some("gzip"), "GZIP-BYTES!")
    );
    let gz_tag = r.header("etag").unwrap().to_owned();
    assert!(gz_tag.ends_with("-gz\""));
    let r = get_with(&c, "/app.js", &[("accept-encoding", "zstd")]).await;
    assert_eq!(enc(&r).as_deref(), Some("zstd"));
    // q=0 is honoured.
    let r = get_with(&c, "/app.js", &[("accept-encoding", "gzip;q=0")]).await;
    assert_eq!(enc(&r), None);
    let r = get_with(&c, "/app.js", &[("accept-encoding", "*;q=0.5, br;q=0")]).await;
    assert_eq!(enc(&r).as_deref(), Some("zstd"));
    // Identity preferred by q.
    let r = get_with(
        &c,
        "/app.js",
        &[("accept-encoding", "gzip;q=0.5, identity")],
    )
    .await;
    assert_eq!(enc(&r), None);
    // A missing sibling falls back to the next coding.
    std::fs::remove_file(t.root().join("app.js.br")).unwrap();
    let r = get_with(&c, "/app.js", &[("accept-encoding", "br, gzip")]).await;
    assert_eq!(enc(&r).as_deref(), Some("gzip"));
    // A stale sibling (older than the file) is ignored.
    let r = get_with(&c, "/style.css", &[("accept-encoding", "gzip")]).await;
    assert_eq!((enc(&r), r.text().as_str()), (None, "body{}"));

    // Ranges and preconditions apply to the variant.
    let r = get_with(
        &c,
        "/app.js",
        &[("accept-encoding", "gzip"), ("range", "bytes=0-3")],
    )
    .await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.text(), "GZIP");
    assert_eq!(r.header("content-range"), Some("bytes 0-3/11"));
    assert_eq!(enc(&r).as_deref(), Some("gzip"));
    let r = get_with(
        &c,
        "/app.js",
        &[("accept-encoding", "gzip"), ("if-none-match", &gz_tag)],
    )
    .await;
    assert_eq!(r.status(), 304);
    assert_eq!(r.header("vary"), Some("accept-encoding"));
    // The identity tag does not validate the gzip variant, nor the reverse.
    let id_tag = identity.header("etag").unwrap();
    let r = get_with(
        &c,
        "/app.js",
        &[("accept-encoding", "gzip"), ("if-none-match", id_tag)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = get_with(&c, "/app.js", &[("if-none-match", &gz_tag)]).await;
    assert_eq!(r.status(), 200);
    // HEAD of a variant.
    let r = checked(
        c.head("/app.js")
            .header("accept-encoding", "gzip")
            .send()
            .await,
    );
    assert_eq!(
        (r.header("content-length"), enc(&r).as_deref()),
        (Some("11"), Some("gzip"))
    );
    // A sibling by name is a plain file.
    let r = get_with(&c, "/app.js.gz", &[("accept-encoding", "gzip")]).await;
    assert_eq!(r.header("content-type"), Some("application/gzip"));
    assert_eq!(enc(&r), None);
    // The index of a directory has siblings too.
    std::fs::write(t.root().join("dir/index.html.gz"), "GZ-INDEX").unwrap();
    let r = get_with(&c, "/dir/", &[("accept-encoding", "gzip")]).await;
    assert_eq!(
        (enc(&r).as_deref(), r.text().as_str()),
        (Some("gzip"), "GZ-INDEX")
    );
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));

    // Only the configured codings; none: no Vary.
    let g = TestClient::new(t.app().precompressed(&[Encoding::Zstd]));
    let r = get_with(&g, "/app.js", &[("accept-encoding", "gzip, zstd")]).await;
    assert_eq!(enc(&r).as_deref(), Some("zstd"));
    let n = TestClient::new(t.app().precompressed(&[]));
    let r = get_with(&n, "/app.js", &[("accept-encoding", "gzip")]).await;
    assert_eq!((enc(&r), r.header("vary")), (None, None));
}

#[tokio::test]
async fn a_sibling_symlinked_out_of_the_root_is_not_served() {
    let t = Tree::new("sibling-link");
    std::os::unix::fs::symlink("../outside.txt", t.root().join("hello.txt.gz")).unwrap();
    let c = t.client();
    let r = get_with(&c, "/hello.txt", &[("accept-encoding", "gzip")]).await;
    assert_eq!(
        (r.header("content-encoding"), r.text().as_str()),
        (None, HELLO)
    );
}

// ---------------------------------------------------------------------------------------------
// Methods, SPA, scopes, headers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn other_methods_get_405_for_what_exists_and_404_otherwise() {
    let t = Tree::new("methods");
    let c = t.client();
    for m in [
        http::Method::POST,
        http::Method::PUT,
        http::Method::DELETE,
        http::Method::OPTIONS,
    ] {
        let r = checked(c.request(m.clone(), "/hello.txt").body("x").send().await);
        assert_eq!(r.status(), 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{m}");
        let r = checked(c.request(m.clone(), "/dir").send().await);
        assert_eq!(r.status(), 405, "{m} dir");
        let r = checked(c.request(m.clone(), "/missing").send().await);
        assert_eq!(r.status(), 404, "{m} missing");
        let r = checked(c.request(m.clone(), "/../outside.txt").send().await);
        assert_eq!(r.status(), 404, "{m} traversal");
    }
}

#[tokio::test]
async fn spa_mode_serves_the_index_for_unknown_paths() {
    let t = Tree::new("spa");
    std::fs::write(t.root().join("index.html"), "<div id=app>").unwrap();
    let c = TestClient::new(t.app().spa(true));
    for path in [
        "/users/7",
        "/deep/route/x?y=1",
        "/missing.js",
        "/",
        "/empty/",
    ] {
        let r = get(&c, path).await;
        assert_eq!(
            (r.status(), r.text().as_str()),
            (200, "<div id=app>"),
            "{path}"
        );
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    }
    assert_eq!(get(&c, "/hello.txt").await.text(), HELLO);
    assert_eq!(get(&c, "/dir/").await.text(), "<h1>dir index</h1>");
    assert_eq!(get(&c, "/dir").await.status(), 308);
    for path in ["/.env", "/../outside.txt", "/%2e%2e/outside.txt", "/out"] {
        let r = get(&c, path).await;
        assert!(r.status() == 404 || r.text() == "<div id=app>", "{path}");
        assert!(
            !r.text().contains("SECRET") && !r.text().contains("OUTSIDE"),
            "{path}"
        );
    }
    assert_eq!(get(&c, "/.env").await.status(), 404);
    assert_eq!(get(&c, "/../outside.txt").await.status(), 404);
    let r = checked(c.post("/users/7").send().await);
    assert_eq!(r.status(), 405);
    // Without an index, SPA mode is a 404.
    std::fs::remove_file(t.root().join("index.html")).unwrap();
    assert_eq!(get(&c, "/users/7").await.status(), 404);
}

#[tokio::test]
async fn headers_scopes_and_lifespan() {
    let t = Tree::new("scopes");
    let c = TestClient::new(t.app().header("cache-control", "public, max-age=60"));
    let r = get(&c, "/hello.txt").await;
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    let tag = r.header("etag").unwrap().to_owned();
    let r = get_with(&c, "/hello.txt", &[("if-none-match", &tag)]).await;
    assert_eq!(
        (r.status(), r.header("cache-control")),
        (304, Some("public, max-age=60"))
    );
    // A request that also accepts an event stream is answered as a plain request.
    let r = checked(
        c.get("/hello.txt")
            .header("accept", "text/event-stream, */*")
            .send()
            .await,
    );
    assert_eq!((r.status(), r.text().as_str()), (200, HELLO));
    // A WebSocket handshake: a 404 denial.
    match c.websocket("/hello.txt").connect().await {
        WsConnect::Denied(r) => assert_eq!(r.status(), 404),
        other => panic!("{other:?}"),
    }
    // Lifespan is declined.
    c.start().await.unwrap();
    assert_eq!(c.lifespan_supported().await, Some(false));
}

#[tokio::test]
async fn the_root_must_exist_and_be_a_directory() {
    let t = Tree::new("root");
    let e = StaticFiles::new(t.base.join("nope")).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let e = StaticFiles::new(t.root().join("hello.txt")).unwrap_err();
    assert!(e.to_string().contains("hello.txt") && e.to_string().contains("not a directory"));
}

#[tokio::test]
async fn a_client_that_leaves_mid_file_gets_no_more() {
    let t = Tree::new("leave");
    let big: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(t.root().join("big.bin"), &big).unwrap();
    let c = t.client();
    let r = c
        .get("/big.bin")
        .disconnect(
            Disconnect::AfterBytes(100_000),
            DisconnectReason::ClientClosed,
        )
        .send()
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("content-length"), Some(&*big.len().to_string()));
    assert!(
        r.bytes().len() < big.len(),
        "{} bytes received",
        r.bytes().len()
    );
    assert_eq!(r.client_left(), Some(DisconnectReason::ClientClosed));
    r.wait_app().await;
    assert_eq!(
        r.connection().disconnect_reason(),
        Some(DisconnectReason::ClientClosed)
    );
    // The same through the decline framing of an `sse` scope (the toolkit's writer reads).
    let r = c
        .get("/big.bin")
        .kind(ScopeKind::Sse)
        .disconnect(
            Disconnect::AfterBytes(100_000),
            DisconnectReason::ClientClosed,
        )
        .send()
        .await;
    assert!(r.bytes().len() < big.len());
    r.wait_app().await;
}

#[tokio::test]
async fn offloaded_lookups_answer_the_same() {
    let t = Tree::new("offload");
    let c = TestClient::new(t.app().offload_lookups(true).listing(true));
    let r = get(&c, "/hello.txt").await;
    assert_eq!((r.status(), r.text().as_str()), (200, HELLO));
    assert_eq!(get(&c, "/dir").await.status(), 308);
    assert_eq!(get(&c, "/dir/").await.text(), "<h1>dir index</h1>");
    assert!(get(&c, "/list/").await.text().contains("href=\"b.txt\""));
    for path in ["/../outside.txt", "/out", "/evil", "/.env", "/missing"] {
        assert_eq!(get(&c, path).await.status(), 404, "{path}");
    }
    let r = get_with(&c, "/app.js", &[("accept-encoding", "gzip")]).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
}

#[tokio::test]
async fn a_fifo_in_the_root_is_not_opened_for_good() {
    // Opening a FIFO for reading blocks until a writer comes; the lookup opens with
    // O_NONBLOCK and refuses what is not a regular file.
    let t = Tree::new("fifo");
    let fifo = t.root().join("pipe");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(ok.success());
    for c in [t.client(), TestClient::new(t.app().offload_lookups(true))] {
        let r = get(&c, "/pipe").await;
        assert_eq!(r.status(), 404);
    }
}

#[tokio::test]
async fn large_files_are_regions_small_ones_bytes_and_both_answer_alike() {
    let t = Tree::new("sizes");
    let small: Vec<u8> = (0..60_000u32).map(|i| (i % 253) as u8).collect();
    let large: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(t.root().join("small.bin"), &small).unwrap();
    std::fs::write(t.root().join("large.bin"), &large).unwrap();
    let c = t.client();
    for (name, content) in [("/small.bin", &small), ("/large.bin", &large)] {
        let r = get(&c, name).await;
        assert_eq!(r.bytes().as_ref(), &content[..], "{name}");
        // What the app sent: a small file's bytes, a large file's region for the server to
        // read.
        let region = r.send_log().iter().any(|s| {
            matches!(
                s.event,
                ragi::SendEvent::ResponseBody {
                    body: ragi::Body::File { .. },
                    ..
                }
            )
        });
        assert_eq!(region, name == "/large.bin", "{name}");
        let r = get_with(&c, name, &[("range", "bytes=10-19")]).await;
        assert_eq!(
            (r.status(), r.bytes().as_ref()),
            (206, &content[10..20]),
            "{name}"
        );
        let r = get_with(&c, name, &[("range", "bytes=0-1,-2")]).await;
        assert_eq!(r.status(), 206);
        let body = r.bytes();
        let n = content.len();
        let tail = &content[n - 2..];
        assert!(body.windows(2).any(|w| w == &content[..2]), "{name}");
        assert!(body.windows(2).any(|w| w == tail), "{name}");
        assert_eq!(r.header("content-length"), Some(&*body.len().to_string()));
    }
}
