//! The routing apps through the test client: not-found, redirect, health, cascade, URL map,
//! throttle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ragi::{
    App, AppResult, DisconnectReason, Headers, ReceiveEvent, Receiver, Scope, ScopeKind, SendEvent,
    Sender,
};
use ragi_tools::apps::cascade::Cascade;
use ragi_tools::apps::health::Health;
use ragi_tools::apps::not_found::NotFound;
use ragi_tools::apps::redirect::Redirect;
use ragi_tools::apps::static_files::StaticFiles;
use ragi_tools::apps::throttle::Throttle;
use ragi_tools::apps::url_map::UrlMap;
use ragi_tools::prelude::*;
use ragi_tools::response::FileResponse;
use ragi_tools::test::{AppOutcome, Disconnect, TestClient, TestResponse, WsConnect};
use tokio::time::Instant;

fn checked(r: TestResponse) -> TestResponse {
    assert!(r.violations().is_empty(), "{:?}", r.violations());
    r
}

/// An app answering `status` with `body`, counting its calls.
fn answer(status: u16, body: &'static str, calls: Arc<AtomicUsize>) -> impl App {
    move |_scope: Scope, _rx: Receiver, send: Sender| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            send.send(SendEvent::response_start(
                status,
                Headers::new().with("content-type", "text/plain"),
            ))
            .await?;
            send.send(SendEvent::body(body)).await?;
            Ok(())
        }
    }
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// An app that reads the whole body and answers 200 with it.
async fn echo(mut cx: HttpContext) -> Result<Response, Error> {
    let mut body = Vec::new();
    loop {
        match cx.receive().await {
            ReceiveEvent::Request { body: b, more } => {
                body.extend_from_slice(&b);
                if !more {
                    break;
                }
            }
            ReceiveEvent::Disconnect { reason } => return Err(Error::disconnected(reason)),
            _ => {}
        }
    }
    Ok(Response::new(200).body(body))
}

/// Accepts every WebSocket session (and closes when the client does).
fn ws_accept(
    tag: &'static str,
) -> impl Fn(Scope, Receiver, Sender) -> ragi::BoxFuture<'static, AppResult> + Send + Sync + 'static
{
    move |scope: Scope, mut rx: Receiver, send: Sender| {
        Box::pin(async move {
            if scope.kind != ScopeKind::WebSocket {
                return Err(ragi::UnsupportedScope(scope.kind).into());
            }
            assert!(matches!(rx.receive().await, ReceiveEvent::WebSocketConnect));
            send.send(SendEvent::WebSocketAccept {
                subprotocol: None,
                headers: Headers::new().with("x-app", tag),
            })
            .await?;
            loop {
                if let ReceiveEvent::WebSocketDisconnect { .. } = rx.receive().await {
                    return Ok(());
                }
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Not found, redirect, health
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn not_found_in_every_family() {
    let c = TestClient::new(NotFound::new());
    let r = checked(c.get("/x").send().await);
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<serde_json::Value>()["error"], "not found");
    let r = checked(c.get("/x").header("accept", "text/plain").send().await);
    assert_eq!(r.text(), "not found\n");
    let r = checked(c.post("/x").body("ignored").send().await);
    assert_eq!(r.status(), 404);
    // An `sse` scope: the 404 decline.
    let r = checked(c.get("/x").kind(ScopeKind::Sse).send().await);
    assert_eq!(r.status(), 404);
    match c.websocket("/ws").connect().await {
        WsConnect::Denied(r) => assert_eq!(r.status(), 404),
        other => panic!("{other:?}"),
    }
    c.start().await.unwrap();
    assert_eq!(c.lifespan_supported().await, Some(false));

    let c = TestClient::new(NotFound::html("<h1>gone</h1>"));
    let r = checked(c.get("/x").send().await);
    assert_eq!(r.status(), 404);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.text(), "<h1>gone</h1>");
}

#[tokio::test]
async fn redirects() {
    let c = TestClient::new(Redirect::to("/new"));
    let r = checked(c.post("/old?a=1&b=%20").body("x").send().await);
    assert_eq!(r.status(), 307);
    assert_eq!(r.header("location"), Some("/new?a=1&b=%20"));
    let r = checked(c.get("/old").send().await);
    assert_eq!(r.header("location"), Some("/new"));
    // A location that has a query gets `&`.
    let c = TestClient::new(Redirect::to("/new?x=1").status(308));
    let r = checked(c.get("/old?y=2").send().await);
    assert_eq!(
        (r.status(), r.header("location")),
        (308, Some("/new?x=1&y=2"))
    );
    let c = TestClient::new(Redirect::to("/new").keep_query(false).status(301));
    let r = checked(c.get("/old?y=2").send().await);
    assert_eq!((r.status(), r.header("location")), (301, Some("/new")));
    // A prefix, under a mount: the raw rest of the path, as spelt.
    let app = Router::new().mount("/docs", Redirect::prefix("https://docs.example/"));
    let c = TestClient::new(app);
    let r = checked(c.get("/docs/a/b%20c%2Fd?q=1").send().await);
    assert_eq!(
        r.header("location"),
        Some("https://docs.example/a/b%20c%2Fd?q=1")
    );
    let r = checked(c.get("/docs").send().await);
    assert_eq!(r.header("location"), Some("https://docs.example/"));
    // Computed; a location that would split a header is a 500.
    let c = TestClient::new(Redirect::with(|s: &Scope| {
        format!("/u/{}", s.headers.get_str("x-user").unwrap_or("anon"))
    }));
    let r = checked(c.get("/me").header("x-user", "ann").send().await);
    assert_eq!(r.header("location"), Some("/u/ann"));
    let c = TestClient::new(Redirect::with(|_s: &Scope| {
        "/a\r\nset-cookie: x=1".to_owned()
    }));
    let r = checked(c.get("/me").send().await);
    assert_eq!(r.status(), 500);
    assert!(r.header("set-cookie").is_none());
    // Every family gets it: a WebSocket handshake is denied with the redirect.
    let c = TestClient::new(Redirect::to("/elsewhere"));
    match c.websocket("/ws").connect().await {
        WsConnect::Denied(r) => {
            assert_eq!(
                (r.status(), r.header("location")),
                (307, Some("/elsewhere"))
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
#[should_panic(expected = "a redirect status is 301, 302, 303, 307 or 308, not 200")]
fn a_redirect_status_is_a_redirect() {
    let _ = Redirect::to("/x").status(200);
}

#[tokio::test]
async fn health_answers_liveness() {
    let c = TestClient::new(Router::new().mount("/healthz", Health::new()));
    let r = checked(c.get("/healthz").send().await);
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.text(), r#"{"status":"ok"}"#);
    let r = checked(c.head("/healthz").send().await);
    assert_eq!(
        (r.status(), r.header("content-length"), r.text().as_str()),
        (200, Some("15"), "")
    );
    let r = checked(c.post("/healthz").send().await);
    assert_eq!((r.status(), r.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(checked(c.get("/other").send().await).status(), 404);
}

// ---------------------------------------------------------------------------------------------
// Cascade
// ---------------------------------------------------------------------------------------------

struct Dir(std::path::PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("ragi-routing-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("hello.txt"), "from the disk").unwrap();
        Self(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn cascade_static_files_then_an_app() {
    let d = Dir::new("cascade");
    async fn api(_cx: HttpContext) -> &'static str {
        "from the app"
    }
    async fn posted(_cx: HttpContext) -> &'static str {
        "posted to the app"
    }
    let router = || {
        Router::new()
            .get("/api", api)
            .post("/api", posted)
            .post("/hello.txt", posted)
    };
    let c = TestClient::new(
        Cascade::new()
            .push(StaticFiles::new(&d.0).unwrap())
            .push(router()),
    );
    assert_eq!(
        checked(c.get("/hello.txt").send().await).text(),
        "from the disk"
    );
    assert_eq!(checked(c.get("/api").send().await).text(), "from the app");
    // A POST for a path the files do not have passes on.
    assert_eq!(
        checked(c.post("/api").body("x").send().await).text(),
        "posted to the app"
    );
    // Nothing anywhere: the last app's 404.
    let r = checked(c.get("/nothing").send().await);
    assert_eq!(r.status(), 404);
    // A POST for a file: the files' 405 is final with the default catch list...
    let r = checked(c.post("/hello.txt").send().await);
    assert_eq!((r.status(), r.header("allow")), (405, Some("GET, HEAD")));
    // ...and passes on when 405 is caught too (PAGI's default).
    let c = TestClient::new(
        Cascade::new()
            .catch(&[404, 405])
            .push(StaticFiles::new(&d.0).unwrap())
            .push(router()),
    );
    assert_eq!(
        checked(c.post("/hello.txt").send().await).text(),
        "posted to the app"
    );
}

#[tokio::test]
async fn cascade_swallows_a_caught_answer_whole_and_passes_the_rest() {
    let (a, b, z) = (counter(), counter(), counter());
    let c = TestClient::new(
        Cascade::new()
            .push(answer(404, "FIRST 404 BODY", a.clone()))
            .push(answer(200, "second", b.clone()))
            .push(answer(200, "never", z.clone())),
    );
    let r = checked(c.get("/x").send().await);
    assert_eq!((r.status(), r.text().as_str()), (200, "second"));
    // The caught app's sends all succeeded (it returned Ok), nothing of it reached the client.
    assert_eq!(r.wait_app().await, AppOutcome::Returned);
    assert_eq!(
        (
            a.load(Ordering::SeqCst),
            b.load(Ordering::SeqCst),
            z.load(Ordering::SeqCst)
        ),
        (1, 1, 0)
    );
    // Every app 404: the last one's answer goes out, body and all.
    let c = TestClient::new(
        Cascade::new()
            .push(answer(404, "one", counter()))
            .push(answer(404, "last", counter())),
    );
    let r = checked(c.get("/x").send().await);
    assert_eq!((r.status(), r.text().as_str()), (404, "last"));
    // Another status is final, even a 500.
    let c = TestClient::new(
        Cascade::new()
            .push(answer(500, "boom", counter()))
            .push(answer(200, "never", counter())),
    );
    assert_eq!(checked(c.get("/x").send().await).text(), "boom");
}

#[tokio::test]
async fn cascade_buffers_nothing() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let streaming = move |_s: Scope, _rx: Receiver, send: Sender| {
        let g = g.clone();
        async move {
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            send.send(SendEvent::body_chunk("first piece")).await?;
            // Only released once the client has the first piece.
            g.notified().await;
            send.send(SendEvent::body("second piece")).await?;
            Ok(())
        }
    };
    let c = TestClient::new(
        Cascade::new()
            .push(streaming)
            .push(answer(200, "never", counter())),
    );
    let mut s = c.get("/x").stream().await;
    assert_eq!(s.status(), 200);
    assert_eq!(s.next_chunk().await.unwrap().unwrap(), "first piece");
    gate.notify_one();
    assert_eq!(s.next_chunk().await.unwrap().unwrap(), "second piece");
}

#[tokio::test]
async fn cascade_and_the_request_body() {
    // The first app answers 404 without reading: the next one gets the whole body.
    let c = TestClient::new(
        Cascade::new()
            .push(answer(404, "", counter()))
            .push(handler(echo)),
    );
    let r = checked(c.post("/x").chunks(["pay", "load"]).send().await);
    assert_eq!((r.status(), r.text().as_str()), (200, "payload"));

    // An app that read body bytes before its 404: the 404 is final.
    let reader = |_s: Scope, mut rx: Receiver, send: Sender| async move {
        let _ = rx.receive().await;
        send.send(SendEvent::response_start(404, Headers::new()))
            .await?;
        send.send(SendEvent::body("read and refused")).await?;
        Ok(())
    };
    let second = counter();
    let c = TestClient::new(
        Cascade::new()
            .push(reader)
            .push(answer(200, "never", second.clone())),
    );
    let r = checked(c.post("/x").body("data").send().await);
    assert_eq!((r.status(), r.text().as_str()), (404, "read and refused"));
    assert_eq!(second.load(Ordering::SeqCst), 0);

    // Reading a bodiless request's empty final piece consumes nothing: the next app gets it.
    let c = TestClient::new(Cascade::new().push(reader).push(handler(echo)));
    let r = checked(c.get("/x").send().await);
    assert_eq!((r.status(), r.text().as_str()), (200, ""));
}

#[tokio::test]
async fn cascade_stops_when_the_client_leaves() {
    let second = counter();
    let slow_404 = |scope: Scope, _rx: Receiver, send: Sender| async move {
        scope.connection().disconnected().await;
        let _ = send
            .send(SendEvent::response_start(404, Headers::new()))
            .await;
        Ok(())
    };
    let c = TestClient::new(Cascade::new().push(slow_404).push(answer(
        200,
        "never",
        second.clone(),
    )));
    let r = c
        .get("/x")
        .disconnect(Disconnect::BeforeBody, DisconnectReason::ClientClosed)
        .send()
        .await;
    assert_eq!(r.wait_app().await, AppOutcome::Returned);
    assert_eq!(second.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn cascade_websocket_and_declined_scopes() {
    // A router without the path: 404 denial caught; the next app accepts. The connect event
    // the router never read, and one an app read before denying, both reach the next app.
    let denier = |_s: Scope, mut rx: Receiver, send: Sender| async move {
        assert!(matches!(rx.receive().await, ReceiveEvent::WebSocketConnect));
        send.send(SendEvent::HttpResponseStart {
            status: 404,
            headers: Headers::new(),
        })
        .await?;
        send.send(SendEvent::HttpResponseBody {
            body: Bytes::from_static(b"no"),
            more: false,
        })
        .await?;
        Ok(())
    };
    async fn page(_cx: HttpContext) -> &'static str {
        "page"
    }
    let c = TestClient::new(
        Cascade::new()
            .push(Router::new().get("/page", page))
            .push(denier)
            .push(handler(page)) // declines WebSocket scopes: skipped
            .push(ws_accept("last")),
    );
    match c.websocket("/ws").connect().await {
        WsConnect::Accepted(ws) => assert_eq!(ws.headers().get_str("x-app"), Some("last")),
        other => panic!("{other:?}"),
    }
    // The last app's own decline is the cascade's.
    let c = TestClient::new(Cascade::new().push(NotFound::new()).push(handler(page)));
    assert!(!matches!(
        c.websocket("/ws").connect().await,
        WsConnect::Accepted(_)
    ));
    c.start().await.unwrap();
    assert_eq!(c.lifespan_supported().await, Some(false));
}

// ---------------------------------------------------------------------------------------------
// URL map
// ---------------------------------------------------------------------------------------------

async fn where_am_i(cx: HttpContext) -> String {
    format!(
        "root_path={} path={} raw={}",
        cx.root_path(),
        cx.path(),
        String::from_utf8_lossy(cx.raw_path())
    )
}

#[tokio::test]
async fn url_map_mounts_by_longest_prefix() {
    async fn fallback(cx: HttpContext) -> String {
        format!("fallback {}", cx.path())
    }
    let inner = UrlMap::new().mount("/v1", handler(where_am_i));
    let map = UrlMap::new()
        .mount("/api", handler(where_am_i))
        .mount("/api/deep", inner)
        .mount("/ws", ws_accept("mounted"))
        .fallback(handler(fallback));
    let c = TestClient::new(map);
    let text = |p: &'static str| {
        let c = c.clone();
        async move { checked(c.get(p).send().await).text() }
    };
    assert_eq!(text("/api").await, "root_path=/api path=/ raw=/");
    assert_eq!(text("/api/x/y").await, "root_path=/api path=/x/y raw=/x/y");
    assert_eq!(
        text("/api/a%2Fb").await,
        "root_path=/api path=/a/b raw=/a%2Fb"
    );
    // The deepest prefix wins whatever the order; nested maps accumulate root_path.
    assert_eq!(
        text("/api/deep/v1/z").await,
        "root_path=/api/deep/v1 path=/z raw=/z"
    );
    // Segment boundaries: `/apix` is not under `/api`.
    assert_eq!(text("/apix").await, "fallback /apix");
    assert_eq!(text("/").await, "fallback /");
    // Under `/api/deep` without `/v1`: the inner map's 404 (no fallback there).
    assert_eq!(checked(c.get("/api/deep/v2").send().await).status(), 404);
    match c.websocket("/ws/chat").connect().await {
        WsConnect::Accepted(ws) => assert_eq!(ws.headers().get_str("x-app"), Some("mounted")),
        other => panic!("{other:?}"),
    }
    let bare = TestClient::new(UrlMap::new().mount("/a", handler(where_am_i)));
    assert_eq!(checked(bare.get("/b").send().await).status(), 404);
    bare.start().await.unwrap();
    assert_eq!(bare.lifespan_supported().await, Some(false));
}

#[tokio::test]
async fn url_map_sends_lifespan_to_the_fallback() {
    let started = counter();
    let s = started.clone();
    let lifespan_app = move |scope: Scope, mut rx: Receiver, send: Sender| {
        let s = s.clone();
        async move {
            if scope.kind != ScopeKind::Lifespan {
                return Err(ragi::UnsupportedScope(scope.kind).into());
            }
            loop {
                match rx.receive().await {
                    ReceiveEvent::Startup => {
                        s.fetch_add(1, Ordering::SeqCst);
                        send.send(SendEvent::StartupComplete).await?;
                    }
                    ReceiveEvent::Shutdown => {
                        send.send(SendEvent::ShutdownComplete).await?;
                        return Ok(());
                    }
                    _ => {}
                }
            }
        }
    };
    let c = TestClient::new(
        UrlMap::new()
            .mount("/a", handler(where_am_i))
            .fallback(lifespan_app),
    );
    c.start().await.unwrap();
    assert_eq!(c.lifespan_supported().await, Some(true));
    assert_eq!(started.load(Ordering::SeqCst), 1);
    c.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Throttle
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn throttle_paces_a_body() {
    let body: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let b = body.clone();
    let app = handler(move |_cx: HttpContext| {
        let b = b.clone();
        async move { Response::new(200).body(b) }
    })
    .layer(Throttle::new(1000));
    let c = TestClient::new(app).timeout(Duration::from_secs(60));
    let t0 = Instant::now();
    let r = checked(c.get("/").send().await);
    let took = t0.elapsed();
    assert_eq!(r.bytes().as_ref(), &body[..]);
    // The length survives the cutting.
    assert_eq!(r.header("content-length"), Some("3000"));
    // 100-byte pieces, the first free: 2.9 s at 1000 B/s.
    assert!(
        took >= Duration::from_millis(2850) && took <= Duration::from_millis(3050),
        "{took:?}"
    );
    let pieces = r
        .events()
        .iter()
        .filter(|e| matches!(e, SendEvent::ResponseBody { .. }))
        .count();
    assert_eq!(pieces, 30);

    // A burst goes out at once, the rest at the rate.
    let b = body.clone();
    let app = handler(move |_cx: HttpContext| {
        let b = b.clone();
        async move { Response::new(200).body(b) }
    })
    .layer(Throttle::new(1000).burst(2000));
    let c = TestClient::new(app).timeout(Duration::from_secs(60));
    let t0 = Instant::now();
    checked(c.get("/").send().await);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took <= Duration::from_millis(1050),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn throttle_cuts_file_regions_without_reading_them() {
    let d = Dir::new("throttle");
    let content: Vec<u8> = (0..5000u32).map(|i| (i % 13) as u8).collect();
    let path = d.0.join("f.bin");
    std::fs::write(&path, &content).unwrap();
    let p = path.clone();
    let app = handler(move |cx: HttpContext| {
        let p = p.clone();
        async move { Ok::<_, Error>(FileResponse::open(p).await?.respond_to(&cx)) }
    })
    .layer(Throttle::new(2000).burst(1000));
    let c = TestClient::new(app).timeout(Duration::from_secs(60));
    let t0 = Instant::now();
    let r = checked(c.get("/").send().await);
    let took = t0.elapsed();
    assert_eq!(r.bytes().as_ref(), &content[..]);
    assert_eq!(r.header("content-length"), Some("5000"));
    // 1000 bytes at once, 4000 at 2000 B/s.
    assert!(
        took >= Duration::from_millis(1950) && took <= Duration::from_millis(2100),
        "{took:?}"
    );
    // A range of the file: only its bytes, paced.
    let r = checked(c.get("/").header("range", "bytes=100-1099").send().await);
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().as_ref(), &content[100..1100]);
}

#[tokio::test(start_paused = true)]
async fn throttle_wakes_the_app_when_the_client_leaves() {
    let body = vec![b'x'; 100_000];
    let app = handler(move |_cx: HttpContext| {
        let b = body.clone();
        async move { Response::new(200).body(b) }
    })
    .layer(Throttle::new(10));
    let c = TestClient::new(app).timeout(Duration::from_secs(60));
    let t0 = Instant::now();
    let r = c
        .get("/")
        .disconnect(
            Disconnect::After(Duration::from_secs(2)),
            DisconnectReason::ClientClosed,
        )
        .send()
        .await;
    r.wait_app().await;
    let took = t0.elapsed();
    // At 10 B/s the body would take hours; the app is released the moment the client left.
    assert!(took <= Duration::from_millis(2100), "{took:?}");
    assert_eq!(r.client_left(), Some(DisconnectReason::ClientClosed));
    assert!(r.bytes().len() < 100);
}
