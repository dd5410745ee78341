//! The file response over real sockets: ragi-server serves `send_file`, a raw HTTP/1.1 client
//! checks the bytes on the wire (framing, headers, ranges, the multipart body, HEAD, 304).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ragi_server::{Config, Server, ShutdownHandle};
use ragi_tools::prelude::*;
use ragi_tools::response::FileResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(10);
const SIZE: usize = 300_000;

/// A directory with `data.txt` (SIZE bytes, modified a day ago, so its validators are strong).
struct Files {
    dir: PathBuf,
    content: Vec<u8>,
}

impl Files {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ragi-tools-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let content: Vec<u8> = (0..SIZE as u32)
            .map(|i| {
                b"abcdefghijklmnopqrstuvwxyz0123456789\n"[(i % 37) as usize] ^ (i / 37 % 2) as u8
            })
            .collect();
        let path = dir.join("data.txt");
        std::fs::write(&path, &content).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(86_400))
            .unwrap();
        Self { dir, content }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Serves `GET /<name>` from `dir` with a `cache-control` header.
async fn serve(dir: PathBuf) -> (SocketAddr, ShutdownHandle) {
    let app = handler(move |cx: HttpContext| {
        let path = dir.join(cx.path().trim_start_matches('/'));
        async move {
            Ok::<_, Error>(
                FileResponse::open(path)
                    .await?
                    .header("cache-control", "max-age=60")
                    .respond_to(&cx),
            )
        }
    });
    let bound = Server::new(Config::default())
        .listen("127.0.0.1:0".parse().unwrap())
        .bind()
        .await
        .unwrap();
    let addr = bound.local_addrs()[0];
    let shutdown = bound.shutdown_handle();
    tokio::spawn(bound.serve(app));
    (addr, shutdown)
}

/// One parsed response off the wire.
#[derive(Debug)]
struct Wire {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Wire {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// The header fields but the connection's (`date`, `connection`), sorted.
    fn fields(&self) -> Vec<(String, String)> {
        let mut h: Vec<_> = self
            .headers
            .iter()
            .filter(|(n, _)| n != "date" && n != "connection")
            .cloned()
            .collect();
        h.sort();
        h
    }
}

/// Reads one response from `buf`/`c`: the head, then `content-length` bytes (none for HEAD,
/// 304 and 1xx/204). Leaves what follows in `buf`.
async fn read_response(c: &mut TcpStream, buf: &mut Vec<u8>, head_request: bool) -> Wire {
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let mut chunk = [0u8; 65536];
        let n = tokio::time::timeout(T, c.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "EOF before the head: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..end - 4].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status: u16 = status_line[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    buf.drain(..end);
    let mut wire = Wire {
        status,
        headers,
        body: Vec::new(),
    };
    assert!(
        wire.header("transfer-encoding").is_none(),
        "file responses have a known length"
    );
    let len: usize = if head_request || status == 304 {
        0
    } else {
        wire.header("content-length").unwrap().parse().unwrap()
    };
    while buf.len() < len {
        let mut chunk = [0u8; 65536];
        let n = tokio::time::timeout(T, c.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "EOF in the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    wire.body = buf.drain(..len).collect();
    wire
}

/// Sends one request (extra header lines in `extra`) and reads its response.
async fn exchange(addr: SocketAddr, method: &str, path: &str, extra: &str) -> Wire {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let w = read_response(&mut c, &mut buf, method == "HEAD").await;
    // Nothing after the response: the connection closes with no stray bytes.
    let mut rest = Vec::new();
    tokio::time::timeout(T, c.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    buf.extend_from_slice(&rest);
    assert!(
        buf.is_empty(),
        "stray bytes after the response: {} bytes",
        buf.len()
    );
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_file_head_and_not_modified_on_the_wire() {
    let files = Files::new("wire-whole");
    let (addr, shutdown) = serve(files.dir.clone()).await;

    let get = exchange(addr, "GET", "/data.txt", "").await;
    assert_eq!(get.status, 200);
    assert_eq!(get.body, files.content);
    assert_eq!(get.header("content-length"), Some(&*SIZE.to_string()));
    assert_eq!(
        get.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(get.header("accept-ranges"), Some("bytes"));
    assert_eq!(get.header("cache-control"), Some("max-age=60"));
    let etag = get.header("etag").unwrap().to_owned();
    assert!(
        etag.starts_with('"'),
        "a settled file has a strong tag: {etag}"
    );
    let lm = get.header("last-modified").unwrap().to_owned();
    assert!(lm.ends_with(" GMT"), "{lm}");

    // HEAD: the same fields, Content-Length included, and no body. Pipelined with a GET on
    // one connection, so a stray body byte would corrupt the second response.
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(
        b"HEAD /data.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /data.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-4\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let head = read_response(&mut c, &mut buf, true).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.fields(), get.fields());
    let next = read_response(&mut c, &mut buf, false).await;
    assert_eq!(next.status, 206);
    assert_eq!(next.body, &files.content[..5]);

    // HEAD ignores Range (RFC 9110 §14.2 defines it for GET only).
    let head = exchange(addr, "HEAD", "/data.txt", "Range: bytes=0-4\r\n").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.fields(), get.fields());

    // 304: ETag and Cache-Control (and the server's Date), nothing else, no body.
    for method in ["GET", "HEAD"] {
        let nm = exchange(
            addr,
            method,
            "/data.txt",
            &format!(
                "If-None-Match: {etag}\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
            ),
        )
        .await;
        assert_eq!(nm.status, 304, "{method}");
        let names: Vec<_> = nm.fields().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["cache-control", "etag", "server"], "{method}");
        assert_eq!(nm.header("etag"), Some(&*etag));
        assert_eq!(nm.count("date"), 1);
    }
    let nm = exchange(
        addr,
        "GET",
        "/data.txt",
        &format!("If-Modified-Since: {lm}\r\n"),
    )
    .await;
    assert_eq!(nm.status, 304);

    // 412 from If-Match.
    let failed = exchange(addr, "GET", "/data.txt", "If-Match: \"other\"\r\n").await;
    assert_eq!(failed.status, 412);

    // Missing files and directories: 404.
    assert_eq!(exchange(addr, "GET", "/nope.txt", "").await.status, 404);
    assert_eq!(exchange(addr, "GET", "/", "").await.status, 404);
    shutdown.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_on_the_wire() {
    let files = Files::new("wire-ranges");
    let (addr, shutdown) = serve(files.dir.clone()).await;
    let size = SIZE as u64;

    let r = exchange(addr, "GET", "/data.txt", "Range: bytes=100-199\r\n").await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/300000"));
    assert_eq!(r.header("content-length"), Some("100"));
    assert_eq!(r.body, &files.content[100..200]);

    // 200 000 bytes from offset 250 000 is clamped; a suffix longer than the file is all of it.
    let r = exchange(addr, "GET", "/data.txt", "Range: bytes=250000-999999\r\n").await;
    assert_eq!(
        r.header("content-range"),
        Some("bytes 250000-299999/300000")
    );
    assert_eq!(r.body, &files.content[250_000..]);
    let r = exchange(addr, "GET", "/data.txt", "Range: bytes=-10\r\n").await;
    assert_eq!(r.body, &files.content[SIZE - 10..]);
    let r = exchange(addr, "GET", "/data.txt", "Range: bytes=-400000\r\n").await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 0-299999/300000"));
    assert_eq!(r.body, files.content);

    // Unsatisfiable: 416 with the size; invalid: ignored.
    let r = exchange(addr, "GET", "/data.txt", "Range: bytes=300000-\r\n").await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */300000"));
    let r = exchange(addr, "GET", "/data.txt", "Range: bytes=9-1\r\n").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), SIZE);

    // Several ranges: multipart/byteranges, parsed back byte for byte.
    let r = exchange(
        addr,
        "GET",
        "/data.txt",
        "Range: bytes=0-9, 100000-165535, -3\r\n",
    )
    .await;
    assert_eq!(r.status, 206);
    assert!(r.header("content-range").is_none());
    let ct = r.header("content-type").unwrap();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{ct}"));
    assert_eq!(r.header("content-length"), Some(&*r.body.len().to_string()));
    let parts = parse_byteranges(&r.body, boundary);
    let want = [(0u64, 9u64), (100_000, 165_535), (size - 3, size - 1)];
    assert_eq!(parts.len(), want.len());
    for ((headers, data), (start, end)) in parts.iter().zip(want) {
        assert_eq!(
            headers,
            &vec![
                (
                    "content-type".to_owned(),
                    "text/plain; charset=utf-8".to_owned()
                ),
                (
                    "content-range".to_owned(),
                    format!("bytes {start}-{end}/{size}")
                ),
            ]
        );
        assert_eq!(data, &files.content[start as usize..=end as usize]);
    }

    // If-Range: the strong tag holds, a weak one and another date do not (200 whole).
    let etag = exchange(addr, "HEAD", "/data.txt", "")
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let r = exchange(
        addr,
        "GET",
        "/data.txt",
        &format!("Range: bytes=0-0\r\nIf-Range: {etag}\r\n"),
    )
    .await;
    assert_eq!(r.status, 206);
    let r = exchange(
        addr,
        "GET",
        "/data.txt",
        &format!("Range: bytes=0-0\r\nIf-Range: W/{etag}\r\n"),
    )
    .await;
    assert_eq!((r.status, r.body.len()), (200, SIZE));
    shutdown.abort();
}

/// Splits a `multipart/byteranges` body strictly: CRLF line ends, `--boundary` delimiters,
/// the close delimiter last. Returns each part's header fields (lower-cased names) and data.
fn parse_byteranges(body: &[u8], boundary: &str) -> Vec<(Vec<(String, String)>, Vec<u8>)> {
    let open = format!("--{boundary}\r\n");
    let delim = format!("\r\n--{boundary}");
    let mut rest = body
        .strip_prefix(open.as_bytes())
        .expect("the body opens with the first delimiter");
    let mut parts = Vec::new();
    loop {
        let head_end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a part head ends with CRLF CRLF");
        let head = std::str::from_utf8(&rest[..head_end]).unwrap();
        let headers = head
            .split("\r\n")
            .map(|l| {
                assert!(!l.contains('\n'), "bare LF in a part head");
                let (n, v) = l.split_once(':').unwrap();
                (n.to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect::<Vec<_>>();
        rest = &rest[head_end + 4..];
        // The part's length comes from its Content-Range, so data holding the boundary
        // could not fool the parse.
        let cr = &headers
            .iter()
            .find(|(n, _)| n == "content-range")
            .unwrap()
            .1;
        let (a, b) = cr
            .strip_prefix("bytes ")
            .unwrap()
            .split_once('/')
            .unwrap()
            .0
            .split_once('-')
            .unwrap();
        let n = b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1;
        parts.push((headers, rest[..n].to_vec()));
        rest = rest[n..]
            .strip_prefix(delim.as_bytes())
            .expect("CRLF and the delimiter after each part");
        if let Some(tail) = rest.strip_prefix(b"--") {
            assert_eq!(tail, b"\r\n", "the close delimiter ends the body");
            return parts;
        }
        rest = rest.strip_prefix(b"\r\n").expect("CRLF after a delimiter");
    }
}
