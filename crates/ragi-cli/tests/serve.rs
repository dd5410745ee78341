//! `ragi serve DIR` black-box over sockets: the traversal corpus in every spelling (raw bytes
//! on the wire, nothing normalised by a client library), ranges, preconditions, precompressed
//! choice, listing escaping, symlink escape, a sibling-prefix root, dotfiles and
//! `.well-known`, 308 for directories, 405, HEAD, SPA mode, a client leaving mid-file, and the
//! command line (`--help`, errors naming DIR, options from the environment).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use support::{poll_until, run_to_exit, run_to_exit_with, Conn, Response, Server, BIN};

/// A scratch tree (see `Tree::new`); removed when dropped.
struct Tree {
    base: PathBuf,
}

const HELLO: &str = "hello, world\n";

impl Tree {
    fn new(tag: &str) -> Tree {
        let base = std::env::temp_dir().join(format!("ragi-serve-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        for d in [
            "www/.git",
            "www/.well-known/acme-challenge",
            "www/dir",
            "www/list/sub",
            "www-evil",
        ] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        let old = SystemTime::now() - Duration::from_secs(86_400);
        let write = |p: &str, c: &[u8]| {
            let path = base.join(p);
            std::fs::write(&path, c).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        };
        write("www/hello.txt", HELLO.as_bytes());
        write("www/app.js", b"console.log(1);\n");
        write("www/app.js.br", b"BR-BYTES");
        write("www/app.js.gz", b"GZ-BYTES-LONGER");
        write("www/.env", b"SECRET=dotenv");
        write("www/.git/config", b"[core] secret");
        write("www/.well-known/acme-challenge/tok", b"acme");
        write("www/dir/index.html", b"<h1>index</h1>");
        write("www/list/<img src=x onerror=alert(1)>.txt", b"x");
        write("www/list/caf\u{e9} \u{e0} la carte.txt", b"menu");
        write("www/list/a&b.txt", b"ab");
        write("www-evil/secret.txt", b"EVIL-SECRET");
        write("outside.txt", b"OUTSIDE-SECRET");
        std::os::unix::fs::symlink("../outside.txt", base.join("www/escape")).unwrap();
        std::os::unix::fs::symlink("../www-evil/secret.txt", base.join("www/evil")).unwrap();
        std::os::unix::fs::symlink("hello.txt", base.join("www/inside")).unwrap();
        Tree { base }
    }

    fn root(&self) -> String {
        self.base.join("www").to_string_lossy().into_owned()
    }

    fn serve(&self, extra: &[&str]) -> Server {
        let root = self.root();
        Server::start_command(&["serve", &root], extra)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// One request with `extra` header lines (each ending in CRLF), on a fresh connection.
fn request(s: &Server, method: &str, target: &str, extra: &str) -> Response {
    let mut c = Conn::connect(s.addr());
    c.send(format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
    ));
    if method == "HEAD" {
        c.read_head_response()
    } else {
        c.read_response()
    }
}

fn get(s: &Server, target: &str) -> Response {
    request(s, "GET", target, "")
}

fn get_h(s: &Server, target: &str, extra: &str) -> Response {
    request(s, "GET", target, extra)
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn traversal_corpus_in_every_spelling() {
    let t = Tree::new("traversal");
    let s = t.serve(&[]);
    for target in [
        "/../outside.txt",
        "/../../../../../../etc/passwd",
        "/dir/../../outside.txt",
        "/%2e%2e/outside.txt",
        "/%2E%2E/outside.txt",
        "/.%2e/outside.txt",
        "/%2e./outside.txt",
        "/%2e%2e%2foutside.txt",
        "/..%2foutside.txt",
        "/..%2Foutside.txt",
        "/dir%2f..%2f..%2foutside.txt",
        "/..\\outside.txt",
        "/dir\\..\\..\\outside.txt",
        "/..%5coutside.txt",
        "/%5c..%5coutside.txt",
        "/hello.txt%00",
        "/hello.txt%00.html",
        "/%00../outside.txt",
        "/%252e%252e/outside.txt",
        "/%252e%252e%252foutside.txt",
        "/./hello.txt",
        "/../www-evil/secret.txt",
        "/%2e%2e/www-evil/secret.txt",
        "/escape",
        "/evil",
        "/.env",
        "/.git/config",
        "/%2egit/config",
    ] {
        let r = get(&s, target);
        assert_eq!(r.status, 404, "{target}: {}", body(&r));
        assert!(!body(&r).contains("SECRET"), "{target}: {}", body(&r));
    }
    // Served: a symlink inside the root, `.well-known`, a double-encoded name stays literal.
    assert_eq!(body(&get(&s, "/inside")), HELLO);
    assert_eq!(body(&get(&s, "/.well-known/acme-challenge/tok")), "acme");
    std::fs::write(t.base.join("www/%2e%2e"), "literal").unwrap();
    assert_eq!(body(&get(&s, "/%252e%252e")), "literal");
}

#[test]
fn symlinks_out_of_the_root_need_the_flag() {
    let t = Tree::new("follow");
    let s = t.serve(&["--follow-symlinks"]);
    assert_eq!(body(&get(&s, "/escape")), "OUTSIDE-SECRET");
    assert_eq!(get(&s, "/../outside.txt").status, 404);
    let o = t.serve(&["--offload-lookups"]);
    assert_eq!(body(&get(&o, "/inside")), HELLO);
    assert_eq!(get(&o, "/escape").status, 404);
    let d = t.serve(&["--dotfiles"]);
    assert_eq!(body(&get(&d, "/.env")), "SECRET=dotenv");
    assert_eq!(get(&d, "/escape").status, 404);
}

#[test]
fn a_sibling_prefix_root_is_not_the_root() {
    // PAGI's App::File accepts `/srv/www-evil` for root `/srv/www` (a string prefix).
    let t = Tree::new("sibling");
    let s = t.serve(&[]);
    let r = get(&s, "/evil");
    assert_eq!(r.status, 404);
    assert!(!body(&r).contains("EVIL"));
    // The root given with a trailing slash and a `.` is the same root.
    let root = format!("{}/./", t.root());
    let s2 = Server::start_command(&["serve", &root], &[]);
    assert_eq!(get(&s2, "/evil").status, 404);
    assert_eq!(body(&get(&s2, "/hello.txt")), HELLO);
}

#[test]
fn files_heads_preconditions_and_ranges() {
    let t = Tree::new("files");
    let s = t.serve(&[]);
    let r = get(&s, "/hello.txt");
    assert_eq!(r.status, 200);
    assert_eq!(body(&r), HELLO);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("13"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let etag = r.header("etag").unwrap().to_owned();
    let lm = r.header("last-modified").unwrap().to_owned();
    assert!(
        !etag.starts_with("W/"),
        "a day-old file has a strong tag: {etag}"
    );

    let h = request(&s, "HEAD", "/hello.txt", "");
    assert_eq!((h.status, h.header("content-length")), (200, Some("13")));
    assert!(h.body.is_empty());
    assert_eq!(h.header("etag"), Some(&*etag));

    let r = get_h(&s, "/hello.txt", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!((r.status, r.header("etag")), (304, Some(&*etag)));
    assert!(r.body.is_empty());
    let r = get_h(&s, "/hello.txt", &format!("If-Modified-Since: {lm}\r\n"));
    assert_eq!(r.status, 304);
    let r = get_h(
        &s,
        "/hello.txt",
        &format!("If-None-Match: \"nope\"\r\nIf-Modified-Since: {lm}\r\n"),
    );
    assert_eq!(r.status, 200);
    let r = get_h(&s, "/hello.txt", "If-Match: \"nope\"\r\n");
    assert_eq!(r.status, 412);

    let r = get_h(&s, "/hello.txt", "Range: bytes=7-11\r\n");
    assert_eq!((r.status, body(&r).as_str()), (206, "world"));
    assert_eq!(r.header("content-range"), Some("bytes 7-11/13"));
    let r = get_h(&s, "/hello.txt", "Range: bytes=-1000\r\n");
    assert_eq!((r.status, body(&r).as_str()), (206, HELLO));
    let r = get_h(&s, "/hello.txt", "Range: bytes=99-\r\n");
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some("bytes */13"))
    );
    let r = get_h(&s, "/hello.txt", "Range: bytes=0-0,7-11\r\n");
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap().to_owned();
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
    let b = body(&r);
    assert_eq!(r.header("content-length"), Some(&*r.body.len().to_string()));
    assert!(
        b.contains("Content-Range: bytes 0-0/13\r\n\r\nh\r\n"),
        "{b}"
    );
    assert!(
        b.contains("Content-Range: bytes 7-11/13\r\n\r\nworld\r\n"),
        "{b}"
    );
    assert!(b.ends_with(&format!("--{boundary}--\r\n")));
    // If-Range with the current strong tag: the range; with another: the whole file.
    let r = get_h(
        &s,
        "/hello.txt",
        &format!("Range: bytes=0-4\r\nIf-Range: {etag}\r\n"),
    );
    assert_eq!((r.status, body(&r).as_str()), (206, "hello"));
    let r = get_h(
        &s,
        "/hello.txt",
        "Range: bytes=0-4\r\nIf-Range: \"old\"\r\n",
    );
    assert_eq!((r.status, body(&r).as_str()), (200, HELLO));
}

#[test]
fn precompressed_siblings_by_q_value() {
    let t = Tree::new("precompressed");
    let s = t.serve(&[]);
    let r = get(&s, "/app.js");
    assert_eq!(
        (body(&r).as_str(), r.header("content-encoding")),
        ("console.log(1);\n", None)
    );
    assert_eq!(r.header("vary"), Some("accept-encoding"));
    let r = get_h(
        &s,
        "/app.js",
        "Accept-Encoding: gzip, deflate, br, zstd\r\n",
    );
    assert_eq!(
        (body(&r).as_str(), r.header("content-encoding")),
        ("BR-BYTES", Some("br"))
    );
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(r.header("vary"), Some("accept-encoding"));
    let r = get_h(&s, "/app.js", "Accept-Encoding: br;q=0.5, gzip\r\n");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let gz_tag = r.header("etag").unwrap().to_owned();
    let r = get_h(&s, "/app.js", "Accept-Encoding: gzip;q=0, br;q=0\r\n");
    assert_eq!(r.header("content-encoding"), None);
    // The range applies to the variant's bytes; its tag validates it.
    let r = get_h(
        &s,
        "/app.js",
        "Accept-Encoding: gzip\r\nRange: bytes=0-1\r\n",
    );
    assert_eq!((r.status, body(&r).as_str()), (206, "GZ"));
    assert_eq!(r.header("content-range"), Some("bytes 0-1/15"));
    let r = get_h(
        &s,
        "/app.js",
        &format!("Accept-Encoding: gzip\r\nIf-None-Match: {gz_tag}\r\n"),
    );
    assert_eq!(r.status, 304);
    let r = get_h(&s, "/app.js", &format!("If-None-Match: {gz_tag}\r\n"));
    assert_eq!(r.status, 200);
}

#[test]
fn directories_redirect_and_list_when_asked() {
    let t = Tree::new("dirs");
    let s = t.serve(&[]);
    let r = get(&s, "/dir?a=1&b=2");
    assert_eq!(
        (r.status, r.header("location")),
        (308, Some("/dir/?a=1&b=2"))
    );
    assert_eq!(body(&get(&s, "/dir/")), "<h1>index</h1>");
    assert_eq!(get(&s, "/list/").status, 404);
    assert_eq!(get(&s, "//dir").header("location"), Some("/dir/"));

    let s = t.serve(&["--listing"]);
    let r = get(&s, "/list/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some(&*r.body.len().to_string()));
    let b = body(&r);
    assert!(!b.contains("<img"), "{b}");
    assert!(b.contains(
        "<a href=\"%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.txt\">&lt;img src=x onerror=alert(1)&gt;.txt</a>"
    ), "{b}");
    assert!(
        b.contains(
            "<a href=\"caf%C3%A9%20%C3%A0%20la%20carte.txt\">caf\u{e9} \u{e0} la carte.txt</a>"
        ),
        "{b}"
    );
    assert!(b.contains("<a href=\"a%26b.txt\">a&amp;b.txt</a>"));
    assert!(b.find("href=\"sub/\"").unwrap() < b.find("href=\"a%26b.txt\"").unwrap());
    let r = get_h(&s, "/list/", "Accept: application/json\r\n");
    let list: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(list[0]["name"], "sub");
    assert_eq!(list[0]["is_dir"], true);
    // The root lists neither dotfiles nor the symlinks that leave it.
    let b = body(&get(&s, "/"));
    assert!(
        !b.contains(".env") && !b.contains("escape") && !b.contains("evil"),
        "{b}"
    );
    assert!(b.contains("href=\"inside\""));
}

#[test]
fn methods_spa_and_environment() {
    let t = Tree::new("methods");
    let s = t.serve(&[]);
    for m in ["POST", "PUT", "DELETE", "PATCH"] {
        let r = request(&s, m, "/hello.txt", "Content-Length: 0\r\n");
        assert_eq!(
            (r.status, r.header("allow")),
            (405, Some("GET, HEAD")),
            "{m}"
        );
    }
    assert_eq!(
        request(&s, "POST", "/missing", "Content-Length: 0\r\n").status,
        404
    );
    assert_eq!(get(&s, "/app/route").status, 404);

    std::fs::write(t.base.join("www/index.html"), "<div id=app>").unwrap();
    let root = t.root();
    let spa = Server::try_start_command(&["serve", &root], &[], &[("RAGI_SPA", "true")]).unwrap();
    let r = get(&spa, "/app/route?x=1");
    assert_eq!((r.status, body(&r).as_str()), (200, "<div id=app>"));
    assert_eq!(get(&spa, "/.env").status, 404);
    assert_eq!(get(&spa, "/../outside.txt").status, 404);
    assert_eq!(body(&get(&spa, "/hello.txt")), HELLO);
    let spa = t.serve(&["--spa"]);
    assert_eq!(body(&get(&spa, "/deep/link")), "<div id=app>");
}

#[test]
fn a_client_that_leaves_mid_file_stops_the_reading() {
    let t = Tree::new("leave");
    const SIZE: usize = 64 << 20;
    // Sparse: it takes no disk space, and every byte of it still has to be read.
    std::fs::File::create(t.base.join("www/big.bin"))
        .unwrap()
        .set_len(SIZE as u64)
        .unwrap();
    let s = t.serve(&["--access-log"]);
    let rchar = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/io"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("rchar: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = rchar(s.pid());
    let mut c = Conn::connect(s.addr());
    c.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.buf.len() < 1 << 20 {
        assert!(
            !matches!(
                c.fill(deadline),
                support::Fill::Timeout | support::Fill::End(_)
            ),
            "the download stalled"
        );
    }
    c.reset();
    // The exchange ends (its access-log line), and the server has read a small part of the file.
    poll_until(Duration::from_secs(10), "the access-log line", || {
        s.stdout_text().contains("GET /big.bin").then_some(())
    });
    let read = rchar(s.pid()) - before;
    eprintln!("the server read {read} bytes of {SIZE}");
    assert!(
        read < (SIZE as u64) / 4,
        "the server read {read} bytes of a {SIZE}-byte file for a client that left after 1 MiB"
    );
}

#[test]
fn the_command_line() {
    let help = run_to_exit(&["serve", "--help"], Duration::from_secs(10));
    assert!(help.status.unwrap().success());
    for flag in [
        "<DIR>",
        "--listing",
        "--spa",
        "--follow-symlinks",
        "--dotfiles",
        "--offload-lookups",
        "--listen",
        "--tls-cert",
        "--max-body-size",
        "--access-log",
        "--config",
    ] {
        assert!(
            help.stdout.contains(flag),
            "--help lacks {flag}:\n{}",
            help.stdout
        );
    }
    let missing = Path::new("/nonexistent/ragi-serve-dir");
    let r = run_to_exit(
        &["serve", missing.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert_eq!(r.status.unwrap().code(), Some(2));
    assert!(
        r.stderr.contains("<DIR>") && r.stderr.contains("/nonexistent/ragi-serve-dir"),
        "{}",
        r.stderr
    );
    let r = run_to_exit(&["serve"], Duration::from_secs(10));
    assert_eq!(r.status.unwrap().code(), Some(2));
    assert!(r.stderr.contains("<DIR>"), "{}", r.stderr);
    let t = Tree::new("cli");
    let file = t.base.join("outside.txt");
    let r = run_to_exit(&["serve", file.to_str().unwrap()], Duration::from_secs(10));
    assert_eq!(r.status.unwrap().code(), Some(2));
    assert!(r.stderr.contains("not a directory"), "{}", r.stderr);
    // A server option is named in its error too.
    let r = run_to_exit(
        &["serve", &t.root(), "--max-body-size", "12x"],
        Duration::from_secs(10),
    );
    assert_eq!(r.status.unwrap().code(), Some(2));
    assert!(r.stderr.contains("--max-body-size"), "{}", r.stderr);
    let r = run_to_exit_with(
        BIN,
        &["serve", &t.root()],
        &[("RAGI_LISTING", "maybe")],
        Duration::from_secs(10),
    );
    assert_eq!(r.status.unwrap().code(), Some(2));
    assert!(r.stderr.contains("RAGI_LISTING"), "{}", r.stderr);
}
