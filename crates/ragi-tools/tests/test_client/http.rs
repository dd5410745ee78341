//! HTTP: scopes, request bodies, responses, streaming, HEAD, state, transport.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ragi::{
    Body, Headers, HttpVersion, ReceiveEvent, Receiver, Scope, ScopeKind, SendEvent, Sender, State,
};
use ragi_tools::test::{Multipart, TestClient, TestTransport};
use serde_json::{json, Value};

use super::support::{read_body, respond, Seen};

/// Answers with a JSON description of the scope and the body it read.
async fn describe(scope: Scope, mut rx: Receiver, send: Sender) -> ragi::AppResult {
    let body = read_body(&mut rx).await.unwrap_or_default();
    let headers: Vec<Value> = scope
        .headers
        .iter()
        .map(|(n, v)| json!([String::from_utf8_lossy(n), String::from_utf8_lossy(v)]))
        .collect();
    let ext = &scope.extensions;
    let v = json!({
        "kind": scope.kind.as_str(),
        "method": scope.method.as_str(),
        "scheme": scope.scheme,
        "path": scope.path,
        "raw_path": String::from_utf8_lossy(&scope.raw_path),
        "query": String::from_utf8_lossy(&scope.query_string),
        "root_path": scope.root_path,
        "version": scope.http_version.as_str(),
        "client": scope.client.map(|a| a.to_string()),
        "server": scope.server.map(|a| a.to_string()),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
        "fullflush": ext.fullflush,
        "sse_http_response": ext.sse_http_response,
        "websocket_http_response": ext.websocket_http_response,
        "server_state": ext.server_state.is_some(),
        "buffered": ext.transport.as_ref().map(|t| t.buffered_amount()),
        "tls": ext.tls.as_ref().map(|t| json!({"version": t.version, "alpn": t.alpn, "sni": t.sni})),
        "connected": scope.connection().is_connected(),
    });
    if scope.kind == ScopeKind::Sse {
        send.send(SendEvent::HttpResponseStart {
            status: 200,
            headers: Headers::new().with("content-type", "application/json"),
        })
        .await?;
        send.send(SendEvent::HttpResponseBody {
            body: v.to_string().into(),
            more: false,
        })
        .await?;
        return Ok(());
    }
    respond(&send, 200, "application/json", v.to_string()).await?;
    Ok(())
}

fn header<'a>(v: &'a Value, name: &str) -> Vec<&'a str> {
    v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p[0] == name)
        .map(|p| p[1].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_scope_has_the_documented_defaults() {
    let client = TestClient::new(describe);
    let res = client
        .get("/a%20b/c?x=1")
        .query("y", "two words")
        .send()
        .await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json();
    assert_eq!(v["kind"], "http");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["scheme"], "http");
    assert_eq!(v["path"], "/a b/c");
    assert_eq!(v["raw_path"], "/a%20b/c");
    assert_eq!(v["query"], "x=1&y=two+words");
    assert_eq!(v["root_path"], "");
    assert_eq!(v["version"], "1.1");
    assert_eq!(v["client"], "127.0.0.1:50000");
    assert_eq!(v["server"], "127.0.0.1:80");
    assert_eq!(header(&v, "host"), vec!["testserver"]);
    assert_eq!(v["fullflush"], true);
    assert_eq!(v["sse_http_response"], false);
    assert_eq!(v["websocket_http_response"], false);
    assert_eq!(v["server_state"], true);
    assert_eq!(v["buffered"], 0);
    assert_eq!(v["tls"], Value::Null);
    assert_eq!(v["connected"], true);
    assert!(res.connection().is_completed());
    assert!(res.violations().is_empty());
}

#[tokio::test]
async fn client_settings_reach_the_scope() {
    let client = TestClient::new(describe)
        .https()
        .root_path("/api")
        .client_addr("10.0.0.7:4242".parse::<SocketAddr>().unwrap())
        .server_addr(None)
        .http_version(HttpVersion::Http2)
        .host("example.test")
        .default_header("x-default", "d")
        .default_header("user-agent", "ragi-test");
    let res = client
        .post("no-slash")
        .header("User-Agent", "mine")
        .send()
        .await;
    let v: Value = res.json();
    assert_eq!(v["scheme"], "https");
    assert_eq!(v["path"], "/no-slash");
    assert_eq!(v["root_path"], "/api");
    assert_eq!(v["client"], "10.0.0.7:4242");
    assert_eq!(v["server"], Value::Null);
    assert_eq!(v["version"], "2");
    assert_eq!(v["tls"]["version"], "TLSv1.3");
    assert_eq!(v["tls"]["alpn"], "h2");
    assert_eq!(v["tls"]["sni"], "example.test");
    assert_eq!(header(&v, "host"), vec!["example.test"]);
    assert_eq!(header(&v, "x-default"), vec!["d"]);
    // A request header replaces the defaults of its name.
    assert_eq!(header(&v, "user-agent"), vec!["mine"]);
}

#[tokio::test]
async fn bodies_json_form_multipart_and_raw() {
    let client = TestClient::new(describe);
    let v: Value = client
        .post("/j")
        .json(&json!({"a": [1, 2]}))
        .send()
        .await
        .json();
    assert_eq!(v["body"], r#"{"a":[1,2]}"#);
    assert_eq!(header(&v, "content-type"), vec!["application/json"]);
    assert_eq!(header(&v, "content-length"), vec!["11"]);

    let v: Value = client
        .post("/f")
        .form(&[("name", "a b"), ("x", "&=")])
        .send()
        .await
        .json();
    assert_eq!(v["body"], "name=a+b&x=%26%3D");
    assert_eq!(
        header(&v, "content-type"),
        vec!["application/x-www-form-urlencoded"]
    );

    let form = Multipart::new()
        .text("t", "v")
        .file("f", "a.txt", "text/plain", "hello");
    let expected = String::from_utf8(form.to_bytes().to_vec()).unwrap();
    let ct = form.content_type();
    let v: Value = client.post("/m").multipart(form).send().await.json();
    assert_eq!(v["body"], expected);
    assert_eq!(header(&v, "content-type"), vec![ct.as_str()]);
    assert!(expected.contains("\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n"));

    let v: Value = client
        .put("/r")
        .header("content-type", "application/octet-stream")
        .body(&b"raw"[..])
        .send()
        .await
        .json();
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["body"], "raw");
    assert_eq!(header(&v, "content-length"), vec!["3"]);
    assert_eq!(header(&v, "transfer-encoding"), Vec::<&str>::new());
}

/// Records each body piece with the (paused) time it arrived.
#[tokio::test(start_paused = true)]
async fn chunked_bodies_arrive_piece_by_piece_with_their_pauses() {
    let seen = Seen::default();
    let s = seen.clone();
    let app = move |scope: Scope, mut rx: Receiver, send: Sender| {
        let s = s.clone();
        async move {
            let t0 = tokio::time::Instant::now();
            s.push(format!(
                "te={}",
                scope.headers.get_str("transfer-encoding").unwrap_or("-")
            ));
            loop {
                match rx.receive().await {
                    ReceiveEvent::Request { body, more } => {
                        s.push(format!(
                            "{}ms {:?} more={more}",
                            t0.elapsed().as_millis(),
                            String::from_utf8_lossy(&body)
                        ));
                        if !more {
                            break;
                        }
                    }
                    other => panic!("{other:?}"),
                }
            }
            respond(&send, 204, "text/plain", "").await?;
            Ok(())
        }
    };
    let client = TestClient::new(app);
    let res = client
        .post("/up")
        .chunks_with_delay(["a", "bb"], Duration::from_millis(100))
        .pause(Duration::from_millis(50))
        .chunk("ccc")
        .send()
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        seen.get(),
        vec![
            "te=chunked",
            "0ms \"a\" more=true",
            "100ms \"bb\" more=true",
            "150ms \"ccc\" more=false",
        ]
    );

    // A pause at the end: the last chunk is not the end; the end comes after the pause.
    let seen2 = seen.clone();
    let res = client
        .post("/up")
        .chunk("x")
        .pause(Duration::from_secs(2))
        .send()
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        seen2.get()[4..],
        [
            "te=chunked",
            "0ms \"x\" more=true",
            "2000ms \"\" more=false"
        ]
    );
}

#[tokio::test]
async fn responses_show_what_the_client_would_see() {
    let app = |scope: Scope, _rx: Receiver, send: Sender| async move {
        match scope.path.as_str() {
            "/one" => {
                let h = Headers::new()
                    .with("content-type", "text/plain")
                    .with("connection", "keep-alive")
                    .with("x-a", "1")
                    .with("x-a", "2");
                send.send(SendEvent::response_start(201, h)).await?;
                send.send(SendEvent::body("hello")).await?;
            }
            "/pieces" => {
                send.send(SendEvent::response_start(
                    200,
                    Headers::new().with("content-length", "5"),
                ))
                .await?;
                send.send(SendEvent::body_chunk("he")).await?;
                send.send(SendEvent::body("llo")).await?;
            }
            "/chunked" => {
                send.send(SendEvent::response_start(200, Headers::new()))
                    .await?;
                send.send(SendEvent::body_chunk("he")).await?;
                send.send(SendEvent::body("llo")).await?;
            }
            "/trailers" => {
                send.send(SendEvent::ResponseStart {
                    status: 200,
                    headers: Headers::new().with("content-length", "5"),
                    trailers: true,
                })
                .await?;
                send.send(SendEvent::body_chunk("hello")).await?;
                send.send(SendEvent::ResponseTrailers {
                    headers: Headers::new().with("x-checksum", "abc"),
                })
                .await?;
            }
            "/empty" => {
                send.send(SendEvent::response_start(
                    204,
                    Headers::new().with("content-length", "0"),
                ))
                .await?;
                send.send(SendEvent::body("ignored")).await?;
            }
            _ => unreachable!(),
        }
        Ok(())
    };
    let client = TestClient::new(app);
    let res = client.get("/one").send().await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.text(), "hello");
    assert_eq!(res.bytes(), &Bytes::from_static(b"hello"));
    assert_eq!(res.header("content-length"), Some("5"));
    assert_eq!(res.header("connection"), None, "the server owns it");
    assert_eq!(res.headers().get_all("x-a").count(), 2);
    assert!(res.is_complete() && !res.is_aborted());
    assert_eq!(res.client_left(), None);

    let res = client.get("/pieces").send().await;
    assert_eq!(
        (res.text().as_str(), res.header("content-length")),
        ("hello", Some("5"))
    );

    let res = client.get("/chunked").send().await;
    assert_eq!(res.text(), "hello");
    assert_eq!(res.header("content-length"), None);

    let res = client.get("/trailers").send().await;
    assert_eq!(res.text(), "hello");
    assert_eq!(
        res.header("content-length"),
        None,
        "chunked for the trailers"
    );
    assert_eq!(res.trailers().unwrap().get_str("x-checksum"), Some("abc"));
    assert!(res.connection().response_complete());

    // HTTP/1.0: no trailers; a body of unknown length is close-delimited.
    let res = client
        .get("/trailers")
        .http_version(HttpVersion::Http10)
        .send()
        .await;
    assert_eq!(res.text(), "hello");
    assert_eq!(res.header("content-length"), Some("5"));
    assert!(res.trailers().is_none());
    let v = res.violations();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].event, "ResponseTrailers");

    let res = client.get("/empty").send().await;
    assert_eq!((res.status(), res.text().as_str()), (204, ""));
    assert_eq!(res.header("content-length"), None);
    assert!(res.violations().is_empty());
}

#[tokio::test]
async fn head_drops_the_body_and_keeps_the_length() {
    let app = |_scope: Scope, _rx: Receiver, send: Sender| async move {
        respond(&send, 200, "text/plain", "Hello, World!").await?;
        Ok(())
    };
    let client = TestClient::new(app);
    let res = client.head("/hello").send().await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text(), "");
    assert_eq!(res.header("content-length"), Some("13"));
    assert_eq!(res.header("content-type"), Some("text/plain"));
    assert!(res.connection().is_completed());
    // The app's events are logged as it sent them.
    assert!(matches!(
        &res.events()[1],
        SendEvent::ResponseBody { body: Body::Bytes(b), more: false } if b == "Hello, World!"
    ));
}

#[tokio::test]
async fn file_bodies_are_read_in_pieces() {
    let dir = std::env::temp_dir().join(format!("ragi-test-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("f.bin");
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &content).unwrap();
    let p = path.clone();
    let app = move |_scope: Scope, _rx: Receiver, send: Sender| {
        let p = p.clone();
        async move {
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            send.send(SendEvent::ResponseBody {
                body: Body::File {
                    path: p,
                    offset: 10,
                    length: Some(150_000),
                },
                more: false,
            })
            .await?;
            Ok(())
        }
    };
    let client = TestClient::new(app);
    let mut stream = client.get("/f").stream().await;
    let mut sizes = Vec::new();
    let mut all = Vec::new();
    while let Some(piece) = stream.next_chunk().await.unwrap() {
        sizes.push(piece.len());
        all.extend_from_slice(&piece);
    }
    assert_eq!(sizes, vec![65536, 65536, 18928]);
    assert_eq!(all, &content[10..150_010]);
    assert!(stream.connection().is_completed());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_endless_response_is_read_piece_by_piece() {
    let seen = Seen::default();
    let s = seen.clone();
    let app = move |_scope: Scope, _rx: Receiver, send: Sender| {
        let s = s.clone();
        async move {
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            for i in 0.. {
                if let Err(e) = send.send(SendEvent::body_chunk(format!("{i};"))).await {
                    s.push(format!("send failed: {:?}", e.disconnect_reason()));
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(())
        }
    };
    let client = TestClient::new(app);
    let mut res = client.get("/stream").stream().await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.header("content-length"), None);
    for i in 0..3 {
        let piece = res.next_chunk().await.unwrap().unwrap();
        assert_eq!(piece, format!("{i};"));
    }
    assert_eq!(res.received(), 6);
    let conn = res.connection().clone();
    drop(res);
    assert_eq!(
        conn.disconnect_reason(),
        Some(ragi::DisconnectReason::ClientClosed)
    );
    // The app notices on its next send (a second later, on the paused clock).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(seen.get(), vec!["send failed: Some(ClientClosed)"]);
}

#[tokio::test(start_paused = true)]
async fn a_read_that_gets_nothing_times_out_with_a_clear_error() {
    let app = |_scope: Scope, _rx: Receiver, send: Sender| async move {
        send.send(SendEvent::response_start(200, Headers::new()))
            .await?;
        send.send(SendEvent::FullFlush).await?;
        std::future::pending::<()>().await;
        Ok(())
    };
    let client = TestClient::new(app).timeout(Duration::from_secs(2));
    let mut res = client.get("/quiet").stream().await;
    assert_eq!(res.status(), 200);
    let err = res.next_chunk().await.unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(
        err.to_string(),
        "timed out after 2s waiting for a response body piece of GET /quiet (0 bytes received so far)"
    );
}

#[tokio::test(start_paused = true)]
#[should_panic(
    expected = "timed out after 1s waiting for the response head of GET /never; the app sent: nothing"
)]
async fn a_response_that_never_comes_panics_with_what_was_sent() {
    let app = |_scope: Scope, _rx: Receiver, _send: Sender| async move {
        std::future::pending::<()>().await;
        Ok(())
    };
    let client = TestClient::new(app);
    let _ = client
        .get("/never")
        .timeout(Duration::from_secs(1))
        .send()
        .await;
}

#[tokio::test]
async fn the_scope_kind_follows_the_servers_accept_rule() {
    let client = TestClient::new(describe);
    for (accept, kind) in [
        ("text/event-stream", "sse"),
        ("application/json, text/event-stream", "sse"),
        ("text/event-stream;q=0.5", "sse"),
        ("text/event-stream;q=0", "http"),
        ("application/json, text/event-stream ; q=0.000", "http"),
        ("text/html", "http"),
    ] {
        let res = client.post("/k").header("accept", accept).send().await;
        let v: Value = res.json();
        assert_eq!(v["kind"], kind, "{accept}");
        assert_eq!(v["sse_http_response"], kind == "sse");
    }
    let v: Value = client
        .get("/k")
        .header("accept", "text/event-stream")
        .kind(ScopeKind::Http)
        .send()
        .await
        .json();
    assert_eq!(v["kind"], "http");
}

#[tokio::test]
async fn the_states_are_shared_by_every_scope() {
    struct Counter(std::sync::atomic::AtomicUsize);
    let app = |scope: Scope, _rx: Receiver, send: Sender| async move {
        let n = scope
            .extensions
            .server_state
            .as_ref()
            .unwrap()
            .get::<Counter>()
            .unwrap()
            .0
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = scope.state.get::<String>().map(|s| (*s).clone());
        respond(&send, 200, "text/plain", format!("{n} {tag:?}")).await?;
        Ok(())
    };
    let server_state = State::default();
    server_state.insert(Counter(0.into()));
    let state = State::default();
    state.insert("lifespan".to_owned());
    let client = TestClient::new(app)
        .with_server_state(server_state.clone())
        .with_state(state.clone());
    assert!(client.state().ptr_eq(&state));
    assert_eq!(client.get("/").send().await.text(), "0 Some(\"lifespan\")");
    assert_eq!(client.get("/").send().await.text(), "1 Some(\"lifespan\")");
    assert!(client.server_state().ptr_eq(&server_state));
}

#[tokio::test]
async fn the_transport_can_be_scripted() {
    let seen = Seen::default();
    let s = seen.clone();
    let app = move |scope: Scope, _rx: Receiver, send: Sender| {
        let s = s.clone();
        async move {
            let t = scope.extensions.transport.clone().unwrap();
            let (a, b) = (s.clone(), s.clone());
            t.on_high_water(move || a.push("high"));
            t.on_drain(move || b.push("drain"));
            s.push(format!(
                "{} {} {}",
                t.buffered_amount(),
                t.high_water(),
                t.low_water()
            ));
            send.send(SendEvent::response_start(200, Headers::new()))
                .await?;
            send.send(SendEvent::FullFlush).await?;
            std::future::pending::<()>().await;
            Ok(())
        }
    };
    let client = TestClient::new(app);
    let t = TestTransport::with_watermarks(100, 10);
    let res = client.get("/").transport(t.clone()).stream().await;
    t.set_buffered(50);
    t.set_buffered(150);
    t.set_buffered(200);
    t.set_buffered(50);
    t.set_buffered(5);
    t.set_buffered(500);
    assert_eq!(seen.get(), vec!["0 100 10", "high", "drain", "high"]);
    drop(res);
}

#[tokio::test]
async fn an_app_without_a_response_gets_the_servers_500() {
    let app = |scope: Scope, _rx: Receiver, send: Sender| async move {
        match scope.path.as_str() {
            "/nothing" => Ok(()),
            "/error" => Err("boom".into()),
            "/panic" => panic!("kaboom"),
            "/start-only" => {
                send.send(SendEvent::response_start(201, Headers::new()))
                    .await?;
                Ok(())
            }
            "/flushed" => {
                send.send(SendEvent::response_start(201, Headers::new()))
                    .await?;
                send.send(SendEvent::FullFlush).await?;
                Err("late".into())
            }
            "/partial" => {
                send.send(SendEvent::response_start(200, Headers::new()))
                    .await?;
                send.send(SendEvent::body_chunk("part")).await?;
                panic!("mid-body")
            }
            "/after" => {
                respond(&send, 200, "text/plain", "ok").await?;
                Err("after the response".into())
            }
            _ => unreachable!(),
        }
    };
    let client = TestClient::new(app);
    for (path, error) in [
        ("/nothing", None),
        ("/error", Some("boom")),
        ("/panic", Some("the app panicked: kaboom")),
        ("/start-only", None),
    ] {
        let res = client.get(path).send().await;
        assert_eq!(res.status(), 500, "{path}");
        assert_eq!(res.text(), "500 Internal Server Error\n");
        assert_eq!(
            res.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert!(res.is_complete());
        assert_eq!(
            res.connection().disconnect_reason(),
            Some(ragi::DisconnectReason::ServerError),
            "{path}"
        );
        assert!(res.connection().response_started());
        assert_eq!(res.app_error().as_deref(), error, "{path}");
    }
    let res = client.head("/nothing").send().await;
    assert_eq!((res.status(), res.text().as_str()), (500, ""));

    for (path, body) in [("/flushed", ""), ("/partial", "part")] {
        let res = client.get(path).send().await;
        assert!(res.is_aborted(), "{path}");
        assert!(!res.is_complete());
        assert_eq!(res.text(), body);
        assert_eq!(
            res.connection().disconnect_reason(),
            Some(ragi::DisconnectReason::ServerError)
        );
        assert!(res.app_error().is_some());
    }

    // An app that fails after its response completed: the client got it all.
    let res = client.get("/after").send().await;
    assert_eq!((res.status(), res.text().as_str()), (200, "ok"));
    assert!(res.connection().is_completed());
    assert_eq!(
        res.wait_app().await,
        ragi_tools::test::AppOutcome::Failed("after the response".into())
    );
}

#[tokio::test]
async fn completion_fires_on_complete_and_never_the_disconnect_side() {
    let seen = Seen::default();
    let s = seen.clone();
    let app = move |scope: Scope, _rx: Receiver, send: Sender| {
        let s = s.clone();
        async move {
            let conn = scope.connection().clone();
            let a = s.clone();
            conn.on_complete(move || a.push("complete"));
            let b = s.clone();
            conn.on_disconnect(move |r| b.push(format!("disconnect {r}")));
            respond(&send, 200, "text/plain", "ok").await?;
            s.push(format!("after: {}", conn.is_completed()));
            Ok(())
        }
    };
    let client = TestClient::new(app);
    let res = client.get("/").send().await;
    assert_eq!(res.wait_app().await, ragi_tools::test::AppOutcome::Returned);
    assert_eq!(seen.get(), vec!["complete", "after: true"]);
    let conn = res.connection().clone();
    assert!(conn.is_connected(), "stays true after a clean completion");
    let waited = tokio::time::timeout(Duration::from_millis(20), conn.disconnected()).await;
    assert!(
        waited.is_err(),
        "disconnected() never resolves after completion"
    );
    let _ = Arc::new(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_exchanges_on_a_multi_thread_runtime() {
    let app = |_scope: Scope, mut rx: Receiver, send: Sender| async move {
        let body = read_body(&mut rx).await.unwrap_or_default();
        send.send(SendEvent::response_start(200, Headers::new()))
            .await?;
        for _ in 0..10 {
            send.send(SendEvent::body_chunk(body.clone())).await?;
            tokio::task::yield_now().await;
        }
        send.send(SendEvent::body("")).await?;
        Ok(())
    };
    let client = TestClient::new(app);
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut req = c.post("/").body(format!("{i:03}"));
            if i % 2 == 0 {
                req = req.disconnect(
                    ragi_tools::test::Disconnect::AfterBytes(7),
                    ragi::DisconnectReason::ClientClosed,
                );
            }
            (i, req.send().await)
        }));
    }
    for t in tasks {
        let (i, res) = t.await.unwrap();
        if i % 2 == 0 {
            assert_eq!(
                res.client_left(),
                Some(ragi::DisconnectReason::ClientClosed)
            );
            assert_eq!(res.text(), format!("{i:03}").repeat(3));
            assert_eq!(
                res.connection().disconnect_reason(),
                Some(ragi::DisconnectReason::ClientClosed)
            );
        } else {
            assert!(res.is_complete());
            assert_eq!(res.text(), format!("{i:03}").repeat(10));
            assert!(res.connection().is_completed());
        }
        assert!(res.violations().is_empty());
    }
}

/// A client that stops reading a streamed response makes the app's sends wait until it reads
/// again; leaving fails the waiting send with the reason.
#[tokio::test]
async fn a_stalled_client_makes_body_sends_wait() {
    // Sends three chunks once told to go, reporting each send's result.
    fn app(
        go: Arc<tokio::sync::Notify>,
        tx: tokio::sync::mpsc::UnboundedSender<Result<u32, String>>,
    ) -> impl ragi::App {
        move |_scope: Scope, _rx: Receiver, send: Sender| {
            let (go, tx) = (go.clone(), tx.clone());
            async move {
                send.send(SendEvent::response_start(200, ragi::Headers::new()))
                    .await?;
                // The head reaches the client with the first piece.
                send.send(SendEvent::body_chunk("start;")).await?;
                go.notified().await;
                for n in 0..3u32 {
                    let r = send.send(SendEvent::body_chunk(format!("{n};"))).await;
                    let _ = tx.send(
                        r.as_ref()
                            .map(|()| n)
                            .map_err(|e| format!("{:?}", e.disconnect_reason())),
                    );
                    r?;
                }
                Ok(())
            }
        }
    }
    let go = Arc::new(tokio::sync::Notify::new());
    let (tx, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let client = TestClient::new(app(go.clone(), tx));
    let res = client.get("/").stream().await;
    res.stall();
    go.notify_one();
    let quiet = tokio::time::timeout(Duration::from_millis(100), progress.recv()).await;
    assert!(
        quiet.is_err(),
        "a send went through a stalled client: {quiet:?}"
    );
    res.resume();
    for n in 0..3 {
        assert_eq!(progress.recv().await.unwrap(), Ok(n));
    }
    assert_eq!(res.collect().await.text(), "start;0;1;2;");

    let go = Arc::new(tokio::sync::Notify::new());
    let (tx, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let client = TestClient::new(app(go.clone(), tx));
    let mut res = client.get("/").stream().await;
    res.stall();
    go.notify_one();
    let quiet = tokio::time::timeout(Duration::from_millis(100), progress.recv()).await;
    assert!(quiet.is_err(), "{quiet:?}");
    assert!(res.disconnect(ragi::DisconnectReason::WriteError));
    assert_eq!(
        progress.recv().await.unwrap(),
        Err("Some(WriteError)".to_owned())
    );
}
