//! X-Sendfile / X-Accel-Redirect: the file replaces the app's response with the file sending's
//! validators, preconditions and ranges; the header never leaks; only resolved paths under a
//! root are served (the sibling-prefix and symlink traps refused); locations decode safely.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use ragi::{Headers, Receiver, Scope, SendEvent, Sender};
use ragi_tools::middleware::sendfile::Sendfile;
use ragi_tools::prelude::*;
use ragi_tools::test::TestClient;

/// A directory of its own under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "ragi-sendfile-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    fn file(&self, rel: &str, body: &[u8]) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, body).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Answers with `header: value`, a disposition, and a body of its own (which must be dropped).
fn naming(header: &'static str, value: String, status: u16) -> impl ragi::App {
    move |_s: Scope, _rx: Receiver, send: Sender| {
        let value = value.clone();
        async move {
            send.send(SendEvent::response_start(
                status,
                Headers::new()
                    .with(header, value)
                    .with("content-disposition", "attachment; filename=\"r.txt\"")
                    .with("content-length", "13"),
            ))
            .await?;
            send.send(SendEvent::body("app's own body")).await.ok();
            Ok(())
        }
    }
}

#[tokio::test]
async fn x_sendfile_serves_the_file_with_the_apps_headers() {
    let dir = TempDir::new();
    let path = dir.file("files/report.txt", b"0123456789");
    let layer = Sendfile::new().root(dir.0.join("files"));
    let c = TestClient::new(naming("x-sendfile", path.display().to_string(), 200).layer(layer));
    let res = c.get("/r").send().await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text(), "0123456789");
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(res.header("content-length"), Some("10"));
    assert_eq!(
        res.header("content-disposition"),
        Some("attachment; filename=\"r.txt\"")
    );
    assert!(
        res.header("x-sendfile").is_none(),
        "the path never reaches the client"
    );
    let etag = res.header("etag").expect("validators").to_owned();
    assert!(res.header("last-modified").is_some());

    let ranged = c.get("/r").header("range", "bytes=2-4").send().await;
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.text(), "234");
    assert_eq!(ranged.header("content-range"), Some("bytes 2-4/10"));

    let cached = c.get("/r").header("if-none-match", etag).send().await;
    assert_eq!(cached.status(), 304);
    assert!(cached.bytes().is_empty());

    let head = c.head("/r").send().await;
    assert_eq!(head.header("content-length"), Some("10"));
    assert!(head.bytes().is_empty());
}

#[tokio::test]
async fn only_resolved_paths_under_a_root_are_served() {
    let dir = TempDir::new();
    dir.file("www/ok.txt", b"ok");
    let evil = dir.file("www-evil/secret.txt", b"secret");
    let layer = Sendfile::new().root(dir.0.join("www"));
    let serve = |value: String| {
        let layer = layer.clone();
        async move {
            TestClient::new(naming("x-sendfile", value, 200).layer(layer))
                .get("/")
                .send()
                .await
        }
    };
    // The sibling-prefix trap: /…/www-evil is not under /…/www.
    let res = serve(evil.display().to_string()).await;
    assert_eq!(res.status(), 404);
    assert!(res.header("x-sendfile").is_none());
    assert!(!res.text().contains("secret"));
    // `..` out of the root.
    let res = serve(format!("{}/www/../www-evil/secret.txt", dir.0.display())).await;
    assert_eq!(res.status(), 404);
    // A relative path, a missing file, a directory.
    assert_eq!(serve("www/ok.txt".into()).await.status(), 404);
    assert_eq!(
        serve(format!("{}/www/missing", dir.0.display()))
            .await
            .status(),
        404
    );
    assert_eq!(
        serve(format!("{}/www", dir.0.display())).await.status(),
        404
    );
    assert_eq!(
        serve(format!("{}/www/ok.txt", dir.0.display()))
            .await
            .text(),
        "ok"
    );

    // A link inside the root that leads out of it.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&evil, dir.0.join("www/link.txt")).unwrap();
        let res = serve(format!("{}/www/link.txt", dir.0.display())).await;
        assert_eq!(res.status(), 404);
    }

    // No root at all: nothing is served.
    let res = TestClient::new(
        naming("x-sendfile", format!("{}/www/ok.txt", dir.0.display()), 200).layer(Sendfile::new()),
    )
    .get("/")
    .send()
    .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn x_accel_redirect_maps_a_location() {
    let dir = TempDir::new();
    dir.file("private/a b.txt", b"spaced");
    dir.file("private/sub/x.json", b"{}");
    dir.file("outside.txt", b"no");
    let layer = Sendfile::new().accel_location("/protected", dir.0.join("private"));
    let serve = |value: &'static str| {
        let layer = layer.clone();
        async move {
            TestClient::new(naming("x-accel-redirect", value.to_owned(), 200).layer(layer))
                .get("/")
                .send()
                .await
        }
    };
    let res = serve("/protected/a%20b.txt").await;
    assert_eq!(res.text(), "spaced");
    assert!(res.header("x-accel-redirect").is_none());
    let res = serve("/protected/sub/x.json?v=1").await;
    assert_eq!(res.header("content-type"), Some("application/json"));
    for bad in [
        "/protected/../outside.txt",
        "/protected/%2e%2e/outside.txt",
        "/protected/sub%2f..%2f..%2foutside.txt",
        "/protected/..%5coutside.txt",
        "/protected/a%00b",
        "/elsewhere/a%20b.txt",
    ] {
        assert_eq!(serve(bad).await.status(), 404, "{bad}");
    }
}

#[tokio::test]
async fn another_status_keeps_it_and_others_pass_through() {
    let dir = TempDir::new();
    let page = dir.file("404.html", b"<h1>not here</h1>");
    let layer = Sendfile::new().root(&dir.0);
    let res =
        TestClient::new(naming("x-sendfile", page.display().to_string(), 404).layer(layer.clone()))
            .get("/")
            .header("range", "bytes=0-1")
            .send()
            .await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.text(), "<h1>not here</h1>");
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));

    async fn plain(_cx: HttpContext) -> &'static str {
        "no file"
    }
    let res = TestClient::new(handler(plain).layer(layer))
        .get("/")
        .send()
        .await;
    assert_eq!(res.text(), "no file");
}

#[tokio::test]
async fn the_toolkit_handler_way() {
    let dir = TempDir::new();
    let path = dir.file("doc.txt", b"document");
    let value = path.display().to_string();
    let app = Router::new()
        .get("/doc", move |_cx: HttpContext| {
            let value = value.clone();
            async move {
                Response::new(200)
                    .header("x-sendfile", value)
                    .content_type("application/octet-stream")
            }
        })
        .layer(Sendfile::new().root(Path::new(&dir.0)));
    let res = TestClient::new(app).get("/doc").send().await;
    assert_eq!(res.text(), "document");
    assert_eq!(
        res.header("content-type"),
        Some("application/octet-stream"),
        "the app's type wins"
    );
    assert!(res.violations().is_empty());
}

#[tokio::test]
async fn a_client_that_leaves_mid_file_stops_it_and_the_app_hears_why() {
    let dir = TempDir::new();
    let path = dir.file("big.bin", &vec![7u8; 1 << 20]);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let value = path.display().to_string();
    let app = move |_s: Scope, _rx: Receiver, send: Sender| {
        let (tx, value) = (tx.clone(), value.clone());
        async move {
            let r = send
                .send(SendEvent::response_start(
                    200,
                    Headers::new().with("x-sendfile", value),
                ))
                .await;
            let _ = tx.send(format!(
                "{:?}",
                r.map_err(|e| e.disconnect_reason().cloned())
            ));
            Ok(())
        }
    };
    let res = TestClient::new(app.layer(Sendfile::new().root(&dir.0)))
        .get("/big")
        .disconnect(
            ragi_tools::test::Disconnect::AfterBytes(100_000),
            ragi::DisconnectReason::ClientClosed,
        )
        .send()
        .await;
    assert_eq!(
        res.client_left(),
        Some(ragi::DisconnectReason::ClientClosed)
    );
    assert!(res.bytes().len() < 1 << 20, "not the whole file");
    assert_eq!(
        super::support::next(&mut rx).await,
        "Err(Some(ClientClosed))"
    );
}
