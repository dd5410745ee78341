//! The router's rules, through the test client: the table (priorities, constraints, tails,
//! raw-path matching), 405/HEAD/OPTIONS, 404 in each scope family, scope kinds that do not
//! break routes, mounts, trailing slashes, url_for, middleware order and the stash.

use std::sync::{Arc, Mutex};

use http::Method;
use ragi::{App, Headers, Receiver, Scope, ScopeKind, SendEvent, Sender, SseEvent};
use ragi_tools::prelude::*;
use ragi_tools::router::{get, post, MatchedRoute, Route, TrailingSlash};
use ragi_tools::test::{TestClient, WsConnect};
use ragi_tools::Handler;
use serde_json::{json, Value};

/// A handler that answers with the route it was reached through and its parameters.
fn echo(tag: &'static str) -> impl Handler {
    move |cx: HttpContext| async move {
        let params: serde_json::Map<String, Value> = cx
            .params()
            .iter()
            .map(|(k, v)| (k.to_owned(), Value::from(v)))
            .collect();
        Response::json(&json!({
            "route": tag,
            "params": params,
            "path": cx.path(),
            "raw_path": String::from_utf8_lossy(cx.raw_path()),
            "root_path": cx.root_path(),
            "method": cx.method().as_str(),
            "kind": cx.kind().as_str(),
            "pattern": cx.matched_route().map(|m| m.pattern.to_string()),
        }))
    }
}

async fn json_of(client: &TestClient, path: &str) -> Value {
    let r = client.get(path).send().await;
    assert_eq!(r.status(), 200, "GET {path}: {}", r.text());
    r.json()
}

#[tokio::test]
async fn priorities_are_static_then_constrained_then_param_then_tail() {
    // Added in the reverse of their priority: the order of addition does not matter.
    let app = Router::new()
        .get("/users/{*rest}", echo("tail"))
        .get("/users/{name}", echo("param"))
        .get(r"/users/{id:\d+}", echo("digits"))
        .get(r"/users/{code:[a-z]{3}}", echo("three-letters"))
        .get("/users/new", echo("static"))
        .get("/users/{id}/edit", echo("edit"));
    let c = TestClient::new(app);
    let route = |v: Value| v["route"].as_str().unwrap().to_owned();
    assert_eq!(route(json_of(&c, "/users/new").await), "static");
    assert_eq!(route(json_of(&c, "/users/42").await), "digits");
    assert_eq!(route(json_of(&c, "/users/abc").await), "three-letters");
    assert_eq!(route(json_of(&c, "/users/abcd").await), "param");
    assert_eq!(route(json_of(&c, "/users/a/b").await), "tail");
    let v = json_of(&c, "/users/new/edit").await;
    assert_eq!(
        route(v.clone()),
        "edit",
        "backtracks from the literal `new`"
    );
    assert_eq!(v["params"]["id"], "new");
    // Constrained routes registered first, then the later one: registration order breaks ties.
    let c = TestClient::new(
        Router::new()
            .get(r"/n/{a:\d+}", echo("first"))
            .get(r"/n/{b:[0-9]+}", echo("second")),
    );
    assert_eq!(route(json_of(&c, "/n/7").await), "first");
}

#[tokio::test]
async fn constraints_tails_and_raw_path_matching() {
    let app = Router::new()
        .get(r"/users/{id:\d+}", echo("user"))
        .get("/files/{name}", echo("one-segment"))
        .get("/tree/{*rest}", echo("tail"))
        .get("/hello", echo("hello"));
    let c = TestClient::new(app);
    let v = json_of(&c, "/users/123").await;
    assert_eq!(v["params"]["id"], "123");
    assert_eq!(v["pattern"], r"/users/{id:\d+}");
    assert_eq!(c.get("/users/abc").send().await.status(), 404);
    assert_eq!(c.get("/users/12a").send().await.status(), 404, "anchored");

    // Matched on the raw path, decoded afterwards: %2F does not split a segment.
    let v = json_of(&c, "/files/a%2Fb").await;
    assert_eq!(v["params"]["name"], "a/b");
    assert_eq!(v["raw_path"], "/files/a%2Fb");
    assert_eq!(c.get("/files/a/b").send().await.status(), 404);
    let v = json_of(&c, "/files/caf%C3%A9%20au%20lait").await;
    assert_eq!(v["params"]["name"], "café au lait");

    // A tail takes the rest, slashes included, decoded.
    let v = json_of(&c, "/tree/a/b%2Fc/d%20e").await;
    assert_eq!(v["params"]["rest"], "a/b/c/d e");
    let v = json_of(&c, "/tree/").await;
    assert_eq!(v["params"]["rest"], "", "a tail may be empty");
    assert_eq!(c.get("/tree").send().await.status(), 404);

    // Literal segments compare against the decoded segment.
    assert_eq!(json_of(&c, "/%68ello").await["route"], "hello");
}

#[tokio::test]
async fn method_not_allowed_lists_the_union_of_every_matching_route() {
    let app = Router::new()
        .route("/items/{id}", get(echo("get")).post(echo("post")))
        .route(r"/items/{id:\d+}", Route::new().delete(echo("delete")))
        .put("/items/{*rest}", echo("put"));
    let c = TestClient::new(app);
    let r = c.patch("/items/7").send().await;
    assert_eq!(r.status(), 405);
    assert_eq!(
        r.header("allow"),
        Some("GET, HEAD, POST, PUT, DELETE, OPTIONS")
    );
    assert_eq!(r.json::<Value>()["error"], "method not allowed");
    // /items/x: the constrained route does not match, so DELETE is not allowed there.
    let r = c.patch("/items/x").send().await;
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST, PUT, OPTIONS"));
    // A lower-priority route that answers the method is taken before a 405.
    assert_eq!(json_of(&c, "/items/7").await["route"], "get");
    let r = c.delete("/items/7").send().await;
    assert_eq!(r.json::<Value>()["route"], "delete");
    let r = c.put("/items/7").send().await;
    assert_eq!(r.json::<Value>()["route"], "put");
    // Extension methods are listed after the standard ones.
    let c = TestClient::new(
        Router::new()
            .route(
                "/x",
                Route::new().on(Method::from_bytes(b"PURGE").unwrap(), echo("p")),
            )
            .post("/x", echo("post")),
    );
    let r = c.get("/x").send().await;
    assert_eq!(r.header("allow"), Some("POST, OPTIONS, PURGE"));
}

#[tokio::test]
async fn head_is_served_by_get_and_options_is_answered() {
    let app = Router::new()
        .get("/hello", |_cx: HttpContext| async { "Hello, World!" })
        .route(
            "/own",
            get(echo("get"))
                .head(|_cx: HttpContext| async { Response::new(200).header("x-head", "own") })
                .options(|_cx: HttpContext| async { (200, "my options") }),
        );
    let c = TestClient::new(app);
    let get = c.get("/hello").send().await;
    let head = c.head("/hello").send().await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.text(), "");
    assert_eq!(head.header("content-type"), get.header("content-type"));
    assert_eq!(head.header("content-length"), Some("13"));

    let r = c.options("/hello").send().await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(r.text(), "");

    let r = c.head("/own").send().await;
    assert_eq!(r.header("x-head"), Some("own"), "an own HEAD handler wins");
    let r = c.options("/own").send().await;
    assert_eq!((r.status(), r.text().as_str()), (200, "my options"));
    // An unknown path has no OPTIONS answer.
    assert_eq!(c.options("/nope").send().await.status(), 404);
}

/// A raw SSE app: events on an `sse` scope; on a plain `http` GET it frames the stream itself.
fn ticker(n: usize) -> impl App {
    move |scope: Scope, _rx: Receiver, send: Sender| async move {
        if scope.kind == ScopeKind::Sse {
            send.send(SendEvent::SseStart {
                status: 200,
                headers: Headers::new(),
            })
            .await?;
            for i in 0..n {
                send.send(SendEvent::SseSend(SseEvent {
                    data: format!("tick {i}"),
                    id: Some(i.to_string()),
                    ..Default::default()
                }))
                .await?;
            }
            send.send(SendEvent::SseClose { reason: None }).await?;
        } else {
            send.send(SendEvent::response_start(
                200,
                Headers::new().with("content-type", "text/event-stream"),
            ))
            .await?;
            let mut body = String::new();
            for i in 0..n {
                body.push_str(&format!("data: tick {i}\nid: {i}\n\n"));
            }
            send.send(SendEvent::body(body)).await?;
        }
        Ok(())
    }
}

/// A raw WebSocket app that accepts and says hello.
fn greeter() -> impl App {
    |scope: Scope, mut rx: Receiver, send: Sender| async move {
        assert_eq!(scope.kind, ScopeKind::WebSocket);
        let _connect = rx.receive().await;
        send.send(SendEvent::WebSocketAccept {
            subprotocol: None,
            headers: Headers::new(),
        })
        .await?;
        send.send(SendEvent::WebSocketSend(ragi::Message::Text(format!(
            "hello {}",
            scope.path
        ))))
        .await?;
        let _ = rx.receive().await;
        Ok(())
    }
}

#[tokio::test]
async fn not_found_answers_in_each_scope_family() {
    let c = TestClient::new(Router::new().get("/here", echo("here")));
    let r = c.get("/nope").send().await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>()["error"], "not found");
    assert!(r.violations().is_empty(), "{:?}", r.violations());

    let declined = c.sse("/nope").connect().await.declined();
    assert_eq!(declined.status(), 404);
    assert!(
        declined
            .events()
            .iter()
            .any(|e| matches!(e, SendEvent::HttpResponseStart { status: 404, .. })),
        "the SSE decline pair: {:?}",
        declined.events()
    );

    match c.websocket("/nope").connect().await {
        WsConnect::Denied(r) => {
            assert_eq!(r.status(), 404);
            assert_eq!(r.json::<Value>()["error"], "not found");
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    // A path that only HTTP routes match is no WebSocket endpoint either.
    assert_eq!(c.websocket("/here").connect().await.status(), 404);
}

#[tokio::test]
async fn an_sse_scope_reaches_an_http_route_and_a_plain_get_reaches_an_sse_route() {
    async fn echo_json(mut cx: HttpContext) -> Result<Response, Error> {
        let mut body = Vec::new();
        loop {
            match cx.receive().await {
                ragi::ReceiveEvent::Request { body: b, more } => {
                    body.extend_from_slice(&b);
                    if !more {
                        break;
                    }
                }
                other => return Err(Error::bad_request(format!("{other:?}"))),
            }
        }
        let v: Value =
            serde_json::from_slice(&body).map_err(|e| Error::malformed_body(e.to_string()))?;
        Ok(Response::json(
            &json!({ "you_sent": v, "kind": cx.kind().as_str() }),
        ))
    }
    async fn streamed(cx: HttpContext) -> Result<(), Error> {
        let mut w = cx
            .stream(200, Headers::new().with("content-type", "text/plain"))
            .await?;
        for i in 0..3 {
            w.write(format!("part {i}\n")).await?;
        }
        w.finish().await
    }
    let app = Router::new()
        .post("/echo-json", echo_json)
        .get("/streamed", streamed)
        .sse("/events", ticker(3));
    let c = TestClient::new(app);

    // MCP's streamable-HTTP clients send this Accept on every POST: an `sse` scope.
    let r = c
        .post("/echo-json")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({ "a": 1 }))
        .send()
        .await;
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json::<Value>(),
        json!({ "you_sent": { "a": 1 }, "kind": "sse" })
    );

    // Streaming through the decline pair.
    let r = c
        .get("/streamed")
        .header("accept", "text/event-stream")
        .send()
        .await;
    assert_eq!(r.text(), "part 0\npart 1\npart 2\n");
    assert!(r.is_complete());

    // An SSE route answers its own scope kind with events...
    let mut s = c.sse("/events").connect().await.stream();
    assert_eq!(s.next_event().await.unwrap().data, "tick 0");
    // ...and a plain GET (curl -N) gets the stream framed by the app.
    let r = c.get("/events").send().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(
        r.text().starts_with("data: tick 0\nid: 0\n\n"),
        "{}",
        r.text()
    );
    // A method the SSE route does not take.
    let r = c.post("/events").send().await;
    assert_eq!(
        (r.status(), r.header("allow")),
        (405, Some("GET, HEAD, OPTIONS"))
    );
}

#[tokio::test]
async fn each_scope_goes_to_the_route_of_its_own_kind() {
    let app = Router::new()
        .route(
            "/feed",
            get(|_cx: HttpContext| async { "the page" })
                .sse(ticker(1))
                .websocket(greeter()),
        )
        .websocket("/ws-only", greeter());
    let c = TestClient::new(app);
    assert_eq!(c.get("/feed").send().await.text(), "the page");
    let mut s = c.sse("/feed").connect().await.stream();
    assert_eq!(s.next_event().await.unwrap().data, "tick 0");
    let mut ws = c.websocket("/feed").connect().await.accepted();
    assert_eq!(ws.receive_text().await.unwrap(), "hello /feed");
    // A plain request to a WebSocket-only path: 426 with `upgrade`.
    let r = c.get("/ws-only").send().await;
    assert_eq!((r.status(), r.header("upgrade")), (426, Some("websocket")));
}

#[tokio::test]
async fn mounts_strip_their_prefix_at_any_depth() {
    let inner = Router::new()
        .get("/", echo("inner-root"))
        .get("/leaf/{x}", echo("inner-leaf"));
    let middle = Router::new()
        .get("/", echo("middle-root"))
        .mount("/inner", inner);
    let app = Router::new().mount("/t/{tenant}", middle).mount(
        "/raw",
        |scope: Scope, _rx: Receiver, send: Sender| async move {
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            send.send(SendEvent::body(format!(
                "{}|{}|{}",
                scope.root_path,
                scope.path,
                String::from_utf8_lossy(&scope.raw_path)
            )))
            .await?;
            Ok(())
        },
    );
    let c = TestClient::new(app);

    let v = json_of(&c, "/t/acme/inner/leaf/a%20b").await;
    assert_eq!(v["route"], "inner-leaf");
    assert_eq!(v["root_path"], "/t/acme/inner");
    assert_eq!(v["path"], "/leaf/a b");
    assert_eq!(v["raw_path"], "/leaf/a%20b");
    assert_eq!(
        v["params"],
        json!({ "tenant": "acme", "x": "a b" }),
        "accumulated"
    );
    assert_eq!(v["pattern"], "/t/{tenant}/inner/leaf/{x}");

    for (path, route, root) in [
        ("/t/acme/inner", "inner-root", "/t/acme/inner"),
        ("/t/acme/inner/", "inner-root", "/t/acme/inner"),
        ("/t/acme", "middle-root", "/t/acme"),
    ] {
        let v = json_of(&c, path).await;
        assert_eq!(
            (v["route"].as_str(), v["root_path"].as_str()),
            (Some(route), Some(root))
        );
        assert_eq!(v["path"], "/", "an exact prefix leaves `/`");
    }
    // Prefixes end on segment boundaries.
    assert_eq!(c.get("/t/acme/innerx").send().await.status(), 404);
    assert_eq!(c.get("/rawx").send().await.status(), 404);
    // Any app can be mounted; an encoded prefix is decoded into root_path.
    assert_eq!(
        c.get("/raw/a%2Fb/c").send().await.text(),
        "/raw|/a/b/c|/a%2Fb/c"
    );
    assert_eq!(c.get("/%72aw").send().await.text(), "/raw|/|/");
    // The root path the client's server gave is kept in front.
    let c = TestClient::new(Router::new().mount("/sub", Router::new().get("/x", echo("x"))))
        .root_path("/app");
    assert_eq!(json_of(&c, "/sub/x").await["root_path"], "/app/sub");
}

#[tokio::test]
async fn routes_win_over_mounts_and_a_fallback_takes_the_rest() {
    let app = Router::new()
        .get("/api/status", echo("route"))
        .mount(
            "/api",
            Router::new()
                .get("/status", echo("mounted"))
                .get("/other", echo("other")),
        )
        .fallback(|_s: Scope, _r: Receiver, send: Sender| async move {
            send.send(SendEvent::response_start(418, Headers::new()))
                .await?;
            send.send(SendEvent::body("fallback")).await?;
            Ok(())
        });
    let c = TestClient::new(app);
    assert_eq!(json_of(&c, "/api/status").await["route"], "route");
    assert_eq!(json_of(&c, "/api/other").await["route"], "other");
    assert_eq!(
        c.post("/api/status").send().await.status(),
        405,
        "a routed path never reaches a mount"
    );
    let r = c.get("/elsewhere").send().await;
    assert_eq!((r.status(), r.text().as_str()), (418, "fallback"));
}

#[tokio::test]
async fn trailing_slash_policies() {
    let strict = TestClient::new(
        Router::new()
            .get("/users", echo("u"))
            .get("/dir/", echo("d")),
    );
    assert_eq!(strict.get("/users/").send().await.status(), 404);
    assert_eq!(strict.get("/dir").send().await.status(), 404);

    let sub = Router::new()
        .get("/users", echo("u"))
        .get("/dir/", echo("d"))
        .trailing_slash(TrailingSlash::Redirect);
    let c = TestClient::new(Router::new().mount("/sub", sub));
    let r = c.get("/sub/users/?page=2&q=a%20b").send().await;
    assert_eq!(r.status(), 308);
    assert_eq!(r.header("location"), Some("/sub/users?page=2&q=a%20b"));
    let r = c.post("/sub/dir").send().await;
    assert_eq!((r.status(), r.header("location")), (308, Some("/sub/dir/")));
    assert_eq!(c.get("/sub/other/").send().await.status(), 404);
    assert_eq!(c.get("/sub/users").send().await.status(), 200);
}

#[tokio::test]
async fn url_for_encodes_and_resolves_from_a_sub_router() {
    async fn whoami(cx: HttpContext) -> Result<Response, Error> {
        Ok(Response::json(&json!({
            "root_path": cx.root_path(),
            "path": cx.path(),
            "user_7": cx.url_for("user", &[("id", "7")], &[])?,
            "file": cx.url_for("file", &[("name", "a b/c?d")], &[("v", "1 2"), ("w", "&")])?,
            "parent": cx.url_for("home", &[], &[])?,
            "missing": cx.url_for("nope", &[], &[]).map_err(|e| e.status()).unwrap_err(),
            "bad": cx.url_for("user", &[("id", "x")], &[]).map_err(|e| e.status()).unwrap_err(),
        })))
    }
    let sub = Router::new()
        .route(r"/users/{id:\d+}", get(echo("user")).name("user"))
        .route("/files/{name}", get(echo("file")).name("file"))
        .get("/whoami", whoami);
    let app = Router::new()
        .route("/", get(echo("home")).name("home"))
        .mount("/sub", sub);
    let c = TestClient::new(app).root_path("/app");
    let v = json_of(&c, "/sub/whoami").await;
    assert_eq!(v["root_path"], "/app/sub");
    assert_eq!(v["path"], "/whoami");
    assert_eq!(v["user_7"], "/app/sub/users/7");
    assert_eq!(v["file"], "/app/sub/files/a%20b%2Fc%3Fd?v=1+2&w=%26");
    assert_eq!(
        v["parent"], "/app/",
        "names of the mounting router, under its root path"
    );
    assert_eq!(v["missing"], 500);
    assert_eq!(v["bad"], 500);
    // The generated URL routes back, with the same parameter.
    let file = v["file"]
        .as_str()
        .unwrap()
        .strip_prefix("/app")
        .unwrap()
        .to_owned();
    let back = TestClient::new(Router::new().mount(
        "/sub",
        Router::new().route("/files/{name}", get(echo("file")).name("file")),
    ));
    assert_eq!(json_of(&back, &file).await["params"]["name"], "a b/c?d");
    // From the router itself (no root path).
    let r = Router::new().route("/u/{id}", get(echo("u")).name("u"));
    assert_eq!(r.url_for("u", &[("id", "ü")], &[]).unwrap(), "/u/%C3%BC");
}

/// A layer that logs `name` before and after the inner app, into `log`.
fn logging(name: &'static str, log: Arc<Mutex<Vec<String>>>) -> impl Layer {
    move |inner: SharedApp| -> SharedApp {
        let log = log.clone();
        Arc::new(move |scope: Scope, rx: Receiver, send: Sender| {
            let log = log.clone();
            let inner = inner.clone();
            async move {
                log.lock().unwrap().push(format!("{name}>"));
                let r = inner.call(scope, rx, send).await;
                log.lock().unwrap().push(format!("<{name}"));
                r
            }
        })
    }
}

#[tokio::test]
async fn route_group_and_router_middleware_run_outside_in() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = |n| logging(n, log.clone());
    let handler_log = log.clone();
    let app = Router::new()
        .group("/g", |g| {
            g.route(
                "/x",
                get(move |_cx: HttpContext| {
                    let log = handler_log.clone();
                    async move {
                        log.lock().unwrap().push("handler".into());
                        "x"
                    }
                })
                .layer(l("route-inner"))
                .layer(l("route-outer")),
            )
            .layer(l("group"))
        })
        .route_layer(l("route-layer"))
        .layer(l("router"));
    let c = TestClient::new(app);
    assert_eq!(c.get("/g/x").send().await.text(), "x");
    let got = std::mem::take(&mut *log.lock().unwrap());
    assert_eq!(
        got,
        [
            "router>",
            "route-layer>",
            "group>",
            "route-outer>",
            "route-inner>",
            "handler",
            "<route-inner",
            "<route-outer",
            "<group",
            "<route-layer",
            "<router"
        ]
    );
    // The router's own answers pass through its `layer`, not through route layers.
    assert_eq!(c.get("/nope").send().await.status(), 404);
    assert_eq!(*log.lock().unwrap(), ["router>", "<router"]);
}

#[tokio::test]
async fn route_middleware_can_answer_without_the_handler() {
    let deny = |_inner: SharedApp| -> SharedApp {
        Arc::new(|scope: Scope, _rx: Receiver, send: Sender| async move {
            ragi_tools::Responder::new(&scope, send)
                .complete(Error::new(401, "login first").into_response())
                .await
        })
    };
    let app = Router::new()
        .route(
            "/secret",
            get(|_cx: HttpContext| async { "secret" }).layer(deny),
        )
        .get("/open", |_cx: HttpContext| async { "open" });
    let c = TestClient::new(app);
    let r = c.get("/secret").send().await;
    assert_eq!(
        (r.status(), r.json::<Value>()["error"].as_str()),
        (401, Some("login first"))
    );
    assert_eq!(c.get("/open").send().await.text(), "open");
}

#[tokio::test]
async fn the_stash_holds_params_and_the_matched_route_for_middleware() {
    let seen: Arc<Mutex<Option<(Arc<MatchedRoute>, Arc<Params>)>>> = Arc::default();
    let record = {
        let seen = seen.clone();
        move |inner: SharedApp| -> SharedApp {
            let seen = seen.clone();
            Arc::new(move |scope: Scope, rx: Receiver, send: Sender| {
                let (seen, inner, kept) = (seen.clone(), inner.clone(), scope.clone());
                async move {
                    let r = inner.call(scope, rx, send).await;
                    *seen.lock().unwrap() =
                        Some((kept.stash.get().unwrap(), kept.stash.get().unwrap()));
                    r
                }
            })
        }
    };
    let api = Router::new().route("/users/{id}", get(echo("u")).name("user"));
    let app = Router::new().mount("/v/{version}", api).layer(record);
    let c = TestClient::new(app);
    json_of(&c, "/v/2/users/9").await;
    let (route, params) = seen.lock().unwrap().take().unwrap();
    assert_eq!(&*route.pattern, "/v/{version}/users/{id}");
    assert_eq!(route.name.as_deref(), Some("user"));
    assert!(!route.mount);
    assert_eq!(
        params.iter().collect::<Vec<_>>(),
        [("version", "2"), ("id", "9")]
    );
}

#[tokio::test]
async fn handler_errors_render_as_responses() {
    async fn fails(cx: HttpContext) -> Result<&'static str, Error> {
        let n: u32 = cx.param_as("n")?; // 404 when it does not parse
        if n == 0 {
            return Err(Error::bad_request("zero"));
        }
        let _: u8 = "300".parse()?; // any std error: 500, cause not shown
        Ok("unreachable")
    }
    let c = TestClient::new(Router::new().get("/f/{n}", fails));
    let r = c.get("/f/0").send().await;
    assert_eq!(
        (r.status(), r.json::<Value>()),
        (400, json!({ "error": "zero" }))
    );
    assert_eq!(c.get("/f/x").send().await.status(), 404);
    let r = c.get("/f/1").header("accept", "text/plain").send().await;
    assert_eq!(
        (r.status(), r.text().as_str()),
        (500, "Internal Server Error\n")
    );
}

#[tokio::test]
async fn lifespan_scopes_are_declined() {
    let c = TestClient::new(Router::new().get("/", echo("r")));
    c.start().await.unwrap();
    assert_eq!(c.lifespan_supported().await, Some(false));
}

#[tokio::test]
async fn stack_mounts_beside_the_central_app() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let app = ragi_tools::Stack::new()
        .enable(logging("outer", log.clone()))
        .mount("/api", Router::new().get("/ping", echo("ping")))
        .run(Router::new().get("/", echo("main")));
    let c = TestClient::new(app);
    let v = json_of(&c, "/api/ping").await;
    assert_eq!(
        (v["route"].as_str(), v["root_path"].as_str()),
        (Some("ping"), Some("/api"))
    );
    assert_eq!(json_of(&c, "/").await["route"], "main");
    assert_eq!(
        log.lock().unwrap().len(),
        4,
        "the layer wraps mounts and the centre"
    );
}

#[test]
#[should_panic(expected = "GET /a/{y} is routed twice")]
fn a_duplicate_route_is_refused() {
    let _ = Router::new()
        .get("/a/{x}", echo("1"))
        .get("/a/{y}", echo("2"));
}

#[test]
#[should_panic(expected = "a parameter must be a whole segment")]
fn a_bad_pattern_is_refused() {
    let _ = Router::new().get("/files/{name}.txt", echo("1"));
}

#[test]
fn match_path_reports_what_dispatch_would_do() {
    let r = Router::new()
        .route("/a", post(echo("a")))
        .get(r"/b/{n:\d+}", echo("b"));
    assert_eq!(r.match_path(&Method::POST, b"/a").as_deref(), Ok("/a"));
    assert_eq!(r.match_path(&Method::GET, b"/a"), Err(405));
    assert_eq!(r.match_path(&Method::GET, b"/b/x"), Err(404));
    assert_eq!(
        r.match_path(&Method::HEAD, b"/b/1").as_deref(),
        Ok(r"/b/{n:\d+}")
    );
}

#[tokio::test]
async fn ws_and_sse_handlers_plug_in_and_see_the_params() {
    use ragi_tools::sse::Event;
    use ragi_tools::{sse, ws, SseContext, WsContext};
    async fn room(mut cx: WsContext) -> Result<(), Error> {
        let name = cx.param("room").unwrap_or_default();
        cx.accept().await?;
        while let Some(m) = cx.receive().await {
            if let ragi::Message::Text(t) = m {
                cx.send_text(format!("{name}: {t}")).await?;
            }
        }
        Ok(())
    }
    async fn feed(cx: SseContext) -> Result<(), Error> {
        let topic = cx.param("topic").unwrap_or_default();
        cx.send(Event::new(format!("about {topic}")).id(1u64))
            .await?;
        cx.close().await
    }
    let app = Router::new()
        .websocket("/rooms/{room}", ws::handler(room))
        .sse("/feeds/{topic}", sse::handler(feed));
    let c = TestClient::new(app);
    let mut s = c.websocket("/rooms/lobby").connect().await.accepted();
    s.send_text("hi").await.unwrap();
    assert_eq!(s.receive_text().await.unwrap(), "lobby: hi");
    let mut e = c.sse("/feeds/rust").connect().await.stream();
    assert_eq!(e.next_event().await.unwrap().data, "about rust");
    // curl -N: a plain GET reaches the SSE route, framed by the helper.
    let r = c.get("/feeds/go").send().await;
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(r.text().contains("data: about go\n"), "{}", r.text());
}
