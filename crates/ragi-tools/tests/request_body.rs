//! The body readers through the test client: every limit, status and content-type rule, a
//! declared Content-Length refused without reading, a departed client met by every reader
//! (before the body, mid-body) and the `Disconnect` still delivered after a consumed body.

mod support_request;

use std::time::Duration;

use bytes::Bytes;
use ragi::{DisconnectReason, ReceiveEvent};
use ragi_tools::prelude::*;
use ragi_tools::request::BodyLimits;
use ragi_tools::test::{Disconnect, Multipart, TestClient};
use serde_json::json;
use support_request::{counting_polls, reports, Seen};

/// Which reader a handler uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reader {
    Bytes,
    Text,
    Json,
    Form,
    Stream,
    Multipart,
}

const ALL: [Reader; 6] = [
    Reader::Bytes,
    Reader::Text,
    Reader::Json,
    Reader::Form,
    Reader::Stream,
    Reader::Multipart,
];

impl Reader {
    /// A content type this reader takes.
    fn content_type(self) -> &'static str {
        match self {
            Reader::Json => "application/json",
            Reader::Form => "application/x-www-form-urlencoded",
            Reader::Multipart => "multipart/form-data; boundary=XB",
            _ => "application/octet-stream",
        }
    }

    /// A well-formed body of this kind.
    fn body(self) -> &'static [u8] {
        match self {
            Reader::Json => b"{\"hello\": \"world\", \"n\": [1, 2, 3]}",
            Reader::Form => b"hello=world&n=1&n=2",
            Reader::Multipart => {
                b"--XB\r\nContent-Disposition: form-data; name=\"hello\"\r\n\r\nworld\r\n--XB--\r\n"
            }
            _ => b"hello world, some bytes",
        }
    }

    /// What the reader gives for [`Reader::body`], summarised.
    async fn read(self, cx: &mut HttpContext) -> Result<String, Error> {
        match self {
            Reader::Bytes => cx.bytes().await.map(|b| format!("{} bytes", b.len())),
            Reader::Text => cx.text().await,
            Reader::Json => cx.json::<serde_json::Value>().await.map(|v| v.to_string()),
            Reader::Form => cx
                .form::<Vec<(String, String)>>()
                .await
                .map(|v| format!("{v:?}")),
            Reader::Stream => {
                let mut s = cx.body_stream();
                let mut n = 0;
                while let Some(piece) = s.next().await {
                    n += piece?.len();
                }
                Ok(format!("{n} bytes"))
            }
            Reader::Multipart => cx
                .multipart_all()
                .await
                .map(|f| format!("{} parts", f.len())),
        }
    }
}

/// An app whose handler reads with `reader` and reports the outcome.
fn reading_app(
    reader: Reader,
    report: tokio::sync::mpsc::UnboundedSender<Seen<String>>,
) -> impl ragi::App {
    handler(move |mut cx: HttpContext| {
        let report = report.clone();
        async move {
            let r = reader.read(&mut cx).await;
            let _ = report.send(Seen::of(&r));
            r
        }
    })
}

#[tokio::test]
async fn every_reader_reads_a_whole_body() {
    for reader in ALL {
        let (tx, mut seen) = reports();
        let client = TestClient::new(reading_app(reader, tx));
        let res = client
            .post("/")
            .header("content-type", reader.content_type())
            .body(reader.body())
            .send()
            .await;
        assert_eq!(res.status(), 200, "{reader:?}: {}", res.text());
        let want = match reader {
            Reader::Bytes | Reader::Stream => "23 bytes".to_owned(),
            Reader::Text => "hello world, some bytes".to_owned(),
            Reader::Json => json!({"hello": "world", "n": [1, 2, 3]}).to_string(),
            Reader::Form => format!(
                "{:?}",
                [("hello", "world"), ("n", "1"), ("n", "2")]
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
            ),
            Reader::Multipart => "1 parts".to_owned(),
        };
        assert_eq!(seen.next().await, Seen::Ok(want), "{reader:?}");
    }
}

#[tokio::test]
async fn json_takes_json_and_plus_json_and_answers_with_the_right_status() {
    let (tx, mut seen) = reports();
    let (app, polls) = counting_polls(reading_app(Reader::Json, tx));
    let client = TestClient::new(app);
    let post = |ct: Option<&str>, body: &[u8]| {
        let mut req = client.post("/j").body(body.to_vec());
        if let Some(ct) = ct {
            req = req.header("content-type", ct.to_owned());
        }
        req.send()
    };

    let res = post(
        Some("application/problem+json; charset=utf-8"),
        b"{\"a\":1}",
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(seen.next().await, Seen::Ok("{\"a\":1}".into()));

    // Wrong or missing content type: 415, before anything is read.
    for ct in [Some("text/plain"), Some("application/jsonx"), None] {
        let before = polls.load(std::sync::atomic::Ordering::SeqCst);
        let res = post(ct, b"{\"a\":1}").await;
        assert_eq!(res.status(), 415, "{ct:?}");
        assert!(res.json::<serde_json::Value>()["error"].is_string());
        assert_eq!(
            seen.next().await,
            Seen::status(415, ErrorKind::UnsupportedMediaType)
        );
        assert_eq!(polls.load(std::sync::atomic::Ordering::SeqCst), before);
    }

    // Malformed: 400; well-formed but the wrong shape: 422 (see the typed handler below).
    for body in [&b"{\"a\":"[..], b"{'a': 1}", b"", b"[1,]"] {
        let res = post(Some("application/json"), body).await;
        assert_eq!(res.status(), 400, "{}", String::from_utf8_lossy(body));
        assert_eq!(
            seen.next().await,
            Seen::status(400, ErrorKind::MalformedBody)
        );
    }
}

#[tokio::test]
async fn json_of_the_wrong_shape_is_422() {
    #[derive(serde::Deserialize)]
    struct User {
        name: String,
    }
    let client = TestClient::new(handler(|mut cx: HttpContext| async move {
        let u: User = cx.json().await?;
        Ok::<_, Error>(u.name)
    }));
    for body in [
        json!({"name": 5}),
        json!([1]),
        json!({"nom": "x"}),
        json!("x"),
    ] {
        let res = client.post("/").json(&body).send().await;
        assert_eq!(res.status(), 422, "{body}");
        let msg = res.json::<serde_json::Value>()["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(msg.starts_with("invalid JSON body"), "{msg}");
    }
    let res = client.post("/").json(&json!({"name": "ann"})).send().await;
    assert_eq!((res.status(), res.text()), (200, "ann".to_owned()));
    // Errors render as text for a client that prefers it.
    let res = client
        .post("/")
        .header("accept", "text/plain")
        .json(&json!({"name": 5}))
        .send()
        .await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text().starts_with("invalid JSON body"),
        "{}",
        res.text()
    );
}

/// A JSON string value whose encoding is exactly `len` bytes.
fn json_of_len(len: usize) -> Vec<u8> {
    let mut v = b"\"".to_vec();
    v.extend(std::iter::repeat_n(b'a', len - 2));
    v.push(b'"');
    v
}

#[tokio::test]
async fn json_limit_exactly_at_it_is_accepted_one_over_is_413() {
    let (tx, mut seen) = reports();
    let (app, polls) = counting_polls(reading_app(Reader::Json, tx));
    let client = TestClient::new(app);
    const MIB: usize = 1 << 20;
    let polls_now = || polls.load(std::sync::atomic::Ordering::SeqCst);

    // Declared over the limit: refused before any read.
    let res = client
        .post("/")
        .header("content-type", "application/json")
        .body(json_of_len(MIB + 1))
        .send()
        .await;
    assert_eq!(res.status(), 413);
    assert_eq!(
        seen.next().await,
        Seen::status(413, ErrorKind::BodyTooLarge)
    );
    assert_eq!(polls_now(), 0, "the body was polled");

    // Chunked (no declared length), crossing the limit: 413 once it is crossed.
    let body = json_of_len(MIB + 1);
    let res = client
        .post("/")
        .header("content-type", "application/json")
        .chunks(body.chunks(256 * 1024).map(Bytes::copy_from_slice))
        .send()
        .await;
    assert_eq!(res.status(), 413);
    assert_eq!(
        seen.next().await,
        Seen::status(413, ErrorKind::BodyTooLarge)
    );
    assert!(polls_now() > 0);

    // Exactly at the limit, declared or chunked: accepted.
    let body = json_of_len(MIB);
    let res = client
        .post("/")
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert!(matches!(seen.next().await, Seen::Ok(_)));
    let res = client
        .post("/")
        .header("content-type", "application/json")
        .chunks(body.chunks(300 * 1024).map(Bytes::copy_from_slice))
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert!(matches!(seen.next().await, Seen::Ok(_)));
}

#[tokio::test]
async fn every_reader_refuses_a_declared_length_over_its_limit_without_reading() {
    for reader in ALL {
        let (tx, mut seen) = reports();
        let (app, polls) = counting_polls(handler(move |mut cx: HttpContext| {
            let tx = tx.clone();
            async move {
                // A 10-byte limit for every reader.
                cx.stash().insert(BodyLimits::all(10));
                cx.stash().insert(ragi_tools::MultipartLimits {
                    max_total_size: 10,
                    ..Default::default()
                });
                let r = reader.read(&mut cx).await;
                let _ = tx.send(Seen::of(&r));
                r
            }
        }));
        let client = TestClient::new(app);
        let res = client
            .post("/")
            .header("content-type", reader.content_type())
            .body(vec![b'x'; 11])
            .send()
            .await;
        assert_eq!(res.status(), 413, "{reader:?}");
        assert_eq!(
            seen.next().await,
            Seen::status(413, ErrorKind::BodyTooLarge),
            "{reader:?}"
        );
        assert_eq!(
            polls.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{reader:?} polled the body"
        );
    }
}

#[tokio::test]
async fn bytes_and_text_default_to_2_mib() {
    let client = TestClient::new(handler(|mut cx: HttpContext| async move {
        cx.bytes().await.map(|b| b.len().to_string())
    }));
    let at = client.post("/").body(vec![0u8; 2 << 20]).send().await;
    assert_eq!((at.status(), at.text()), (200, (2usize << 20).to_string()));
    let over = client
        .post("/")
        .chunks([vec![0u8; 1 << 20], vec![0u8; 1 << 20], vec![0u8; 1]])
        .send()
        .await;
    assert_eq!(over.status(), 413);

    let client = TestClient::new(handler(|mut cx: HttpContext| async move {
        cx.text().await.map(|t| t.len().to_string())
    }));
    let over = client
        .post("/")
        .body(vec![b'a'; (2 << 20) + 1])
        .send()
        .await;
    assert_eq!(over.status(), 413);
}

#[tokio::test]
async fn text_honours_its_charset() {
    let client = TestClient::new(handler(
        |mut cx: HttpContext| async move { cx.text().await },
    ));
    let post = |ct: &str, body: &'static [u8]| {
        client
            .post("/")
            .header("content-type", ct.to_owned())
            .body(body)
            .send()
    };
    let res = post("text/plain", "crème".as_bytes()).await;
    assert_eq!((res.status(), res.text()), (200, "crème".to_owned()));
    let res = post("text/plain; charset=ISO-8859-1", b"cr\xE8me").await;
    assert_eq!((res.status(), res.text()), (200, "crème".to_owned()));
    let res = post("text/plain; charset=\"utf-8\"", b"\xEF\xBB\xBFbom").await;
    assert_eq!((res.status(), res.text()), (200, "bom".to_owned()));
    // Not in its charset: 400.
    assert_eq!(post("text/plain", b"cr\xE8me").await.status(), 400);
    assert_eq!(
        post("text/plain; charset=us-ascii", b"cr\xE8me")
            .await
            .status(),
        400
    );
    // A charset we do not decode: 415 (before reading).
    assert_eq!(
        post("text/plain; charset=shift_jis", b"x").await.status(),
        415
    );
}

#[tokio::test]
async fn form_statuses() {
    #[derive(serde::Deserialize)]
    struct Login {
        user: String,
        age: u8,
    }
    let client = TestClient::new(handler(|mut cx: HttpContext| async move {
        let l: Login = cx.form().await?;
        Ok::<_, Error>(format!("{} {}", l.user, l.age))
    }));
    let res = client
        .post("/")
        .form(&[("user", "an n"), ("age", "7")])
        .send()
        .await;
    assert_eq!((res.status(), res.text()), (200, "an n 7".to_owned()));
    // Wrong content type.
    let res = client
        .post("/")
        .json(&json!({"user": "a", "age": 1}))
        .send()
        .await;
    assert_eq!(res.status(), 415);
    // Not UTF-8 once decoded: 400.
    let res = client
        .post("/")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user=%FF&age=1")
        .send()
        .await;
    assert_eq!(res.status(), 400);
    // Well-formed, wrong shape: 422.
    for body in ["user=a&age=300", "user=a", "age=1"] {
        let res = client
            .post("/")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        assert_eq!(res.status(), 422, "{body}");
    }
    // Over 1 MiB: 413.
    let res = client
        .post("/")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; (1 << 20) + 1])
        .send()
        .await;
    assert_eq!(res.status(), 413);
}

#[tokio::test]
async fn limits_per_request_and_per_call() {
    let client = TestClient::new(handler(|mut cx: HttpContext| async move {
        let per_call = cx.query().get("limit").map(|l| l.parse::<u64>().unwrap());
        cx.stash().insert(BodyLimits {
            json: 10,
            ..BodyLimits::default()
        });
        let v: serde_json::Value = match per_call {
            Some(n) => cx.body_limit(n).json().await?,
            None => cx.json().await?,
        };
        Ok::<_, Error>(v.to_string())
    }));
    let body = json!({"k": "0123456789"}); // 18 bytes: {"k":"0123456789"}
                                           // The stash's 10 bytes.
    assert_eq!(client.post("/").json(&body).send().await.status(), 413);
    // The call's limit wins over the stash's.
    let res = client.post("/?limit=18").json(&body).send().await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        client.post("/?limit=17").json(&body).send().await.status(),
        413
    );
}

#[tokio::test]
async fn every_reader_reports_a_client_that_left_before_the_body() {
    for reader in ALL {
        for reason in [DisconnectReason::ClientClosed, DisconnectReason::ReadError] {
            let (tx, mut seen) = reports();
            let client = TestClient::new(reading_app(reader, tx));
            let res = client
                .post("/")
                .header("content-type", reader.content_type())
                .body(reader.body())
                .disconnect(Disconnect::BeforeBody, reason.clone())
                .send()
                .await;
            assert_eq!(res.client_left(), Some(reason.clone()));
            assert_eq!(seen.next().await, Seen::gone(reason), "{reader:?}");
        }
    }
}

#[tokio::test]
async fn every_reader_reports_a_client_that_left_mid_body_never_a_partial_body() {
    for reader in ALL {
        let (tx, mut seen) = reports();
        let client = TestClient::new(reading_app(reader, tx));
        let body = reader.body();
        let res = client
            .post("/")
            .header("content-type", reader.content_type())
            .body(body)
            .disconnect(
                Disconnect::MidBody(body.len() as u64 - 3),
                DisconnectReason::ClientTimeout,
            )
            .send()
            .await;
        assert_eq!(res.client_left(), Some(DisconnectReason::ClientTimeout));
        assert_eq!(
            seen.next().await,
            Seen::gone(DisconnectReason::ClientTimeout),
            "{reader:?}"
        );
    }
}

#[tokio::test]
async fn a_body_stream_reports_a_client_that_left_after_some_pieces() {
    let (tx, mut seen) = reports();
    let client = TestClient::new(handler(move |mut cx: HttpContext| {
        let tx = tx.clone();
        async move {
            let mut pieces = Vec::new();
            let mut s = cx.body_stream();
            while let Some(p) = s.next().await {
                match p {
                    Ok(p) => pieces.push(p),
                    Err(e) => {
                        let _ = tx.send((pieces, Seen::<()>::of(&Err(e))));
                        return;
                    }
                }
            }
            let _ = tx.send((pieces, Seen::Ok(())));
        }
    }));
    let res = client
        .post("/")
        .chunks(["abc", "def", "ghi"])
        .disconnect(Disconnect::MidBody(6), DisconnectReason::ClientClosed)
        .send()
        .await;
    assert_eq!(res.client_left(), Some(DisconnectReason::ClientClosed));
    let (pieces, end) = seen.next().await;
    assert_eq!(pieces, ["abc", "def"]);
    assert_eq!(end, Seen::gone(DisconnectReason::ClientClosed));
}

#[tokio::test(start_paused = true)]
async fn the_disconnect_is_still_delivered_after_every_reader_consumed_the_body() {
    for reader in ALL {
        let (tx, mut seen) = reports();
        let client = TestClient::new(handler(move |mut cx: HttpContext| {
            let tx = tx.clone();
            async move {
                let r = reader.read(&mut cx).await;
                // The body is read whole; the queue now holds nothing until the client leaves.
                let event = cx.receive().await;
                let _ = tx.send((Seen::of(&r).is_ok(), event));
            }
        }));
        let res = client
            .post("/")
            .header("content-type", reader.content_type())
            .body(reader.body())
            .disconnect(
                Disconnect::After(Duration::from_secs(1)),
                DisconnectReason::WriteTimeout,
            )
            .send()
            .await;
        assert_eq!(res.client_left(), Some(DisconnectReason::WriteTimeout));
        assert_eq!(
            seen.next().await,
            (
                true,
                ReceiveEvent::Disconnect {
                    reason: DisconnectReason::WriteTimeout
                }
            ),
            "{reader:?}"
        );
    }
}

impl Seen<String> {
    fn is_ok(&self) -> bool {
        matches!(self, Seen::Ok(_))
    }
}

#[tokio::test]
async fn a_reader_that_took_the_disconnect_leaves_it_for_receive() {
    let (tx, mut seen) = reports();
    let client = TestClient::new(handler(move |mut cx: HttpContext| {
        let tx = tx.clone();
        async move {
            let r = cx.bytes().await;
            let again = cx.receive().await;
            let _ = tx.send((r.map_err(|e| e.kind()).map(|_| ()), again));
        }
    }));
    let _ = client
        .post("/")
        .body("0123456789")
        .disconnect(Disconnect::MidBody(4), DisconnectReason::ReadError)
        .send()
        .await;
    assert_eq!(
        seen.next().await,
        (
            Err(ErrorKind::Disconnected),
            ReceiveEvent::Disconnect {
                reason: DisconnectReason::ReadError
            }
        )
    );
}

#[tokio::test]
async fn a_body_read_twice_is_the_kept_copy_and_a_streamed_one_is_gone() {
    let client = TestClient::new(handler(|mut cx: HttpContext| async move {
        let mode = cx.query().get("mode").unwrap_or("").to_owned();
        let out = match mode.as_str() {
            "twice" => {
                let raw = cx.bytes().await?;
                let v: serde_json::Value = cx.json().await?;
                let text = cx.text().await?;
                let mut s = cx.body_stream();
                let mut streamed = Vec::new();
                while let Some(p) = s.next().await {
                    streamed.extend_from_slice(&p?);
                }
                assert_eq!(raw, streamed);
                format!("{v} {text}")
            }
            "stream-then-bytes" => {
                let mut s = cx.body_stream();
                while s.next().await.transpose()?.is_some() {}
                cx.bytes().await.map(|b| format!("{b:?}"))?
            }
            _ => unreachable!(),
        };
        Ok::<_, Error>(out)
    }));
    let res = client.post("/?mode=twice").json(&json!([1])).send().await;
    assert_eq!((res.status(), res.text()), (200, "[1] [1]".to_owned()));
    let res = client
        .post("/?mode=stream-then-bytes")
        .json(&json!([1]))
        .send()
        .await;
    assert_eq!(res.status(), 500);
}

#[tokio::test(start_paused = true)]
async fn a_body_stream_yields_pieces_as_they_arrive_with_its_limit() {
    let (tx, mut seen) = reports();
    let client = TestClient::new(handler(move |mut cx: HttpContext| {
        let tx = tx.clone();
        async move {
            let limit = cx.query().get("limit").map(|l| l.parse().unwrap());
            let start = tokio::time::Instant::now();
            let mut s = cx.body_stream();
            if let Some(l) = limit {
                s = s.limit(l);
            }
            let mut got = Vec::new();
            while let Some(p) = s.next().await {
                match p {
                    Ok(p) => got.push((p, start.elapsed().as_millis())),
                    Err(e) => {
                        let _ = tx.send((got, Some(e.status())));
                        return Err(e);
                    }
                }
            }
            let _ = tx.send((got, None));
            Ok("done")
        }
    }));
    let res = client
        .post("/")
        .chunks_with_delay(["ab", "cd", "ef"], Duration::from_millis(100))
        .send()
        .await;
    assert_eq!(res.status(), 200);
    let (got, err) = seen.next().await;
    assert_eq!(err, None);
    let got: Vec<(&[u8], u128)> = got.iter().map(|(p, t)| (&p[..], *t)).collect();
    assert_eq!(got, [(&b"ab"[..], 0), (b"cd", 100), (b"ef", 200)]);

    // Over its limit mid-stream: the pieces within it, then 413.
    let res = client
        .post("/?limit=5")
        .chunks(["ab", "cd", "ef"])
        .send()
        .await;
    assert_eq!(res.status(), 413);
    let (got, err) = seen.next().await;
    assert_eq!(got.len(), 2);
    assert_eq!(err, Some(413));

    // Declared over its limit: 413 before the first piece.
    let res = client.post("/?limit=5").body("abcdef").send().await;
    assert_eq!(res.status(), 413);
    let (got, err) = seen.next().await;
    assert!(got.is_empty());
    assert_eq!(err, Some(413));
}

#[tokio::test(start_paused = true)]
async fn a_body_middleware_hands_the_body_and_the_later_disconnect_to_the_next_app() {
    let (tx, mut seen) = reports();
    let inner = move |_scope: ragi::Scope, mut rx: ragi::Receiver, _send: ragi::Sender| {
        let tx = tx.clone();
        async move {
            let first = rx.receive().await;
            let second = rx.receive().await;
            let _ = tx.send((first, second));
            Ok(())
        }
    };
    let inner: SharedApp = std::sync::Arc::new(inner);
    let app = move |scope: ragi::Scope, rx: ragi::Receiver, send: ragi::Sender| {
        let inner = inner.clone();
        async move {
            let mut cx = HttpContext::new(scope, rx, send);
            let v: serde_json::Value = cx.json().await.map_err(Error::into_app_error)?;
            cx.stash().insert(v);
            let (scope, rx, responder) =
                cx.into_parts_with_body().map_err(Error::into_app_error)?;
            inner.call(scope, rx, responder.sender().clone()).await
        }
    };
    let client = TestClient::new(app);
    let res = client
        .post("/")
        .json(&json!({"a": 1}))
        .disconnect(
            Disconnect::After(Duration::from_secs(1)),
            DisconnectReason::ClientClosed,
        )
        .send()
        .await;
    assert_eq!(res.client_left(), Some(DisconnectReason::ClientClosed));
    assert_eq!(
        seen.next().await,
        (
            ReceiveEvent::Request {
                body: Bytes::from_static(b"{\"a\":1}"),
                more: false
            },
            ReceiveEvent::Disconnect {
                reason: DisconnectReason::ClientClosed
            }
        )
    );
}

#[tokio::test]
async fn cookies_through_the_context() {
    let client = TestClient::new(handler(|cx: HttpContext| async move {
        Response::json(&json!({
            "all": cx.cookies(),
            "a": cx.cookie("a"),
            "missing": cx.cookie("missing"),
        }))
    }));
    let res = client
        .get("/")
        .header("cookie", "a=1; b=\"two words\"; a=3; bad; c=%41")
        .header("cookie", "d=4")
        .send()
        .await;
    assert_eq!(
        res.json::<serde_json::Value>(),
        json!({"all": {"a": "1", "b": "two words", "c": "%41", "d": "4"}, "a": "1", "missing": null})
    );
}

#[tokio::test]
async fn multipart_reader_through_the_client_builder() {
    // The test client's own multipart encoder, read back (quoted names as browsers send them).
    let client = TestClient::new(handler(|mut cx: HttpContext| async move {
        let form = cx.multipart_all().await?;
        let parts: Vec<_> = form
            .iter()
            .map(|p| json!([p.name(), p.filename(), p.content_type(), p.size(), p.text()]))
            .collect();
        Ok::<_, Error>(Response::json(&parts))
    }));
    let res = client
        .post("/")
        .multipart(Multipart::new().text("title", "holiday").file(
            "photo",
            "beach.jpg",
            "image/jpeg",
            &b"\xff\xd8jpeg"[..],
        ))
        .send()
        .await;
    assert_eq!(res.status(), 200, "{}", res.text());
    assert_eq!(
        res.json::<serde_json::Value>(),
        json!([
            ["title", null, null, 7, "holiday"],
            ["photo", "beach.jpg", "image/jpeg", 6, null]
        ])
    );
}
