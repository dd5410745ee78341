//! multipart/form-data through the test client: fields and files, spooling, every limit and
//! its status, filename sanitising and RFC 5987, the streaming API, and temporary files
//! removed after the response, when the client leaves mid-upload, and after a panic.

mod support_request;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use ragi::DisconnectReason;
use ragi_tools::prelude::*;
use ragi_tools::request::multipart::MultipartLimits;
use ragi_tools::test::{Disconnect, TestClient};
use serde_json::json;
use support_request::{counting_polls, reports, Scratch, Seen};

/// A multipart body with boundary `XB` from `(disposition params, content type, data)`.
fn body(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (params, ct, data) in parts {
        out.extend_from_slice(b"--XB\r\nContent-Disposition: form-data; ");
        out.extend_from_slice(params.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(ct) = ct {
            out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--XB--\r\n");
    out
}

const CT: &str = "multipart/form-data; boundary=XB";

/// An app that collects the form with `limits` and answers with a summary of each part
/// (name, filename, raw filename, content type, size, spooled, text) — and checks, while it
/// still holds them, that spooled files exist and hold the data.
fn summary_app(limits: MultipartLimits) -> impl ragi::App {
    handler(move |mut cx: HttpContext| {
        let limits = limits.clone();
        async move {
            let form = cx.multipart_with(limits)?.collect().await?;
            let mut out = Vec::new();
            for p in &form {
                if let Some(path) = p.path() {
                    assert_eq!(std::fs::metadata(path).unwrap().len(), p.size());
                }
                let data = p.bytes().await?;
                assert_eq!(data.len() as u64, p.size());
                out.push(json!({
                    "name": p.name(),
                    "filename": p.filename(),
                    "raw": p.head().raw_filename(),
                    "type": p.content_type(),
                    "size": p.size(),
                    "spooled": p.is_spooled(),
                    "text": p.text(),
                    "sum": data.iter().map(|&b| u64::from(b)).sum::<u64>(),
                }));
            }
            Ok::<_, Error>(Response::json(&out))
        }
    })
}

async fn post(client: &TestClient, body: Vec<u8>) -> (u16, serde_json::Value) {
    let res = client
        .post("/upload")
        .header("content-type", CT)
        .body(body)
        .send()
        .await;
    (res.status(), res.json())
}

#[tokio::test]
async fn fields_and_files_in_memory_and_spooled() {
    let dir = Scratch::new("mp-spool");
    let limits = MultipartLimits {
        spool_threshold: 1000,
        temp_dir: Some(dir.0.clone()),
        ..MultipartLimits::default()
    };
    let client = TestClient::new(summary_app(limits));
    let big = vec![1u8; 1001];
    let (status, v) = post(
        &client,
        body(&[
            ("name=\"title\"", None, b"holiday"),
            (
                "name=\"small\"; filename=\"a.txt\"",
                Some("text/plain"),
                &[0xC0u8; 1000],
            ),
            (
                "name=\"big\"; filename=\"b.bin\"",
                Some("application/octet-stream"),
                &big,
            ),
            (
                "name=\"empty\"; filename=\"\"",
                Some("application/octet-stream"),
                b"",
            ),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!([
            {"name": "title", "filename": null, "raw": null, "type": null, "size": 7, "spooled": false, "text": "holiday", "sum": 746},
            {"name": "small", "filename": "a.txt", "raw": "a.txt", "type": "text/plain", "size": 1000, "spooled": false, "text": null, "sum": 192000},
            {"name": "big", "filename": "b.bin", "raw": "b.bin", "type": "application/octet-stream", "size": 1001, "spooled": true, "text": null, "sum": 1001},
            {"name": "empty", "filename": "", "raw": "", "type": "application/octet-stream", "size": 0, "spooled": false, "text": "", "sum": 0},
        ])
    );
    // The handler returned and the response was delivered: nothing is left.
    assert_eq!(dir.files(), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn filenames_are_sanitised_and_rfc5987_is_preferred() {
    let client = TestClient::new(summary_app(MultipartLimits::default()));
    let (status, v) = post(
        &client,
        body(&[
            ("name=\"a\"; filename=\"../../etc/passwd\"", None, b"x"),
            (
                "name=\"b\"; filename=\"C:\\Users\\me\\report.pdf\"",
                None,
                b"x",
            ),
            (
                "name=\"c\"; filename=\"euro.txt\"; filename*=UTF-8''%E2%82%AC%20rates.txt",
                None,
                b"x",
            ),
            ("name=\"d\"; filename*=UTF-8''..%2F..%2Fescape", None, b"x"),
            ("name=\"e\"; filename=\"..\"", None, b"x"),
            ("name=\"f\"; filename=\"tab\there\u{1}.txt\"", None, b"x"),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let names: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["filename"].as_str().unwrap(), p["raw"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("passwd", "../../etc/passwd"),
            ("report.pdf", "C:\\Users\\me\\report.pdf"),
            ("€ rates.txt", "€ rates.txt"),
            ("escape", "../../escape"),
            ("", ".."),
            ("tabhere.txt", "tab\there\u{1}.txt"),
        ]
    );
}

#[tokio::test]
async fn content_type_and_boundary_are_checked_before_reading() {
    let (app, polls) = counting_polls(summary_app(MultipartLimits::default()));
    let client = TestClient::new(app);
    let send = |ct: &str| {
        client
            .post("/")
            .header("content-type", ct.to_owned())
            .body(body(&[("name=a", None, b"x")]))
            .send()
    };
    assert_eq!(send("application/json").await.status(), 415);
    assert_eq!(send("multipart/mixed; boundary=XB").await.status(), 415);
    assert_eq!(send("multipart/form-data").await.status(), 400);
    assert_eq!(
        send("multipart/form-data; boundary=\"\"").await.status(),
        400
    );
    assert_eq!(polls.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(send(CT).await.status(), 200);
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let client = TestClient::new(summary_app(MultipartLimits::default()));
    let cases: Vec<Vec<u8>> = vec![
        b"no boundary at all".to_vec(),
        b"--XB\r\nContent-Disposition: form-data; name=a\r\n\r\nno end".to_vec(),
        b"--XB\r\nContent-Type: text/plain\r\n\r\nx\r\n--XB--".to_vec(),
        b"--XB\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XB--".to_vec(),
        b"--XB\r\nnot a header\r\n\r\nx\r\n--XB--".to_vec(),
    ];
    for case in cases {
        let (status, v) = post(&client, case.clone()).await;
        assert_eq!(status, 400, "{}: {v}", String::from_utf8_lossy(&case));
        assert!(v["error"].as_str().unwrap().contains("multipart"), "{v}");
    }
}

#[tokio::test]
async fn size_limits_are_413_and_count_limits_400() {
    let base = MultipartLimits {
        max_total_size: 10_000,
        max_file_size: 100,
        max_part_size: 10,
        max_parts: 4,
        max_files: 2,
        max_fields: 2,
        max_header_size: 200,
        ..MultipartLimits::default()
    };
    let client = TestClient::new(summary_app(base.clone()));
    let field = ("name=f", None, &b"0123456789"[..]); // exactly at the part limit
    let file = ("name=g; filename=g", None, &[7u8; 100][..]); // exactly at the file limit
    assert_eq!(
        post(&client, body(&[field, field, file, file])).await.0,
        200
    );

    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("field over", body(&[("name=f", None, b"0123456789!")]), 413),
        (
            "file over",
            body(&[("name=g; filename=g", None, &[0u8; 101])]),
            413,
        ),
        ("parts", body(&[field, field, file, file, file]), 400),
        ("files", body(&[file, file, file]), 400),
        ("fields", body(&[field, field, field]), 400),
        (
            "headers",
            body(&[(&format!("name=f; x=\"{}\"", "y".repeat(300)), None, b"")]),
            400,
        ),
    ];
    for (what, b, status) in cases {
        let (got, v) = post(&client, b).await;
        assert_eq!(got, status, "{what}: {v}");
    }

    // The total: a declared length over it is refused before any read; a chunked body that
    // crosses it is refused when it does.
    let (app, polls) = counting_polls(summary_app(MultipartLimits {
        max_total_size: 300,
        ..base
    }));
    let client = TestClient::new(app);
    let b = body(&[field, file, file]);
    assert!(b.len() > 300);
    let res = client
        .post("/")
        .header("content-type", CT)
        .body(b.clone())
        .send()
        .await;
    assert_eq!(res.status(), 413);
    assert_eq!(polls.load(std::sync::atomic::Ordering::SeqCst), 0);
    let res = client
        .post("/")
        .header("content-type", CT)
        .chunks(b.chunks(50).map(Bytes::copy_from_slice).collect::<Vec<_>>())
        .send()
        .await;
    assert_eq!(res.status(), 413);
    assert!(polls.load(std::sync::atomic::Ordering::SeqCst) > 0);
}

#[tokio::test]
async fn the_streaming_api_yields_data_as_it_arrives_and_skips_unread_parts() {
    let client = TestClient::new(handler(|mut cx: HttpContext| async move {
        let mut mp = cx.multipart()?;
        let mut out = Vec::new();
        while let Some(mut field) = mp.next_field().await? {
            let name = field.name().to_owned();
            if name == "skip" {
                continue; // its data is skipped by the next call
            }
            let mut chunks = 0;
            let mut data = Vec::new();
            while let Some(c) = field.chunk().await? {
                chunks += 1;
                data.extend_from_slice(&c);
            }
            out.push(json!([name, chunks > 1, String::from_utf8(data).unwrap()]));
        }
        Ok::<_, Error>(Response::json(&out))
    }));
    let b = body(&[
        ("name=a", None, b"first"),
        ("name=skip", None, b"ignored data"),
        ("name=b; filename=b.txt", None, &[b'z'; 3000]),
    ]);
    // Sent in small pieces: a part's data comes out in several chunks.
    let res = client
        .post("/")
        .header("content-type", CT)
        .chunks(
            b.chunks(512)
                .map(Bytes::copy_from_slice)
                .collect::<Vec<_>>(),
        )
        .send()
        .await;
    assert_eq!(res.status(), 200, "{}", res.text());
    let v: serde_json::Value = res.json();
    assert_eq!(v[0], json!(["a", false, "first"]));
    assert_eq!(v[1][0], "b");
    assert_eq!(v[1][1], true);
    assert_eq!(v[1][2].as_str().unwrap().len(), 3000);
    assert_eq!(v.as_array().unwrap().len(), 2);
}

/// Spooling limits writing to `dir`, threshold 100 bytes.
fn spooling(dir: &Scratch) -> MultipartLimits {
    MultipartLimits {
        spool_threshold: 100,
        temp_dir: Some(dir.0.clone()),
        ..MultipartLimits::default()
    }
}

#[tokio::test]
async fn a_temp_file_is_removed_when_its_part_is_dropped_before_the_response() {
    let dir = Scratch::new("mp-drop");
    let limits = spooling(&dir);
    let (tx, mut seen) = reports();
    let client = TestClient::new(handler(move |mut cx: HttpContext| {
        let (limits, tx) = (limits.clone(), tx.clone());
        async move {
            let form = cx.multipart_with(limits)?.collect().await?;
            let path = form.file("f").unwrap().path().unwrap().to_owned();
            let existed = path.exists();
            drop(form);
            let _ = tx.send((existed, path.exists()));
            Ok::<_, Error>("ok")
        }
    }));
    let res = client
        .post("/")
        .header("content-type", CT)
        .body(body(&[("name=f; filename=f", None, &[1u8; 500])]))
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(seen.next().await, (true, false));
}

#[tokio::test]
async fn a_temp_file_kept_past_the_handler_is_removed_after_the_response() {
    let dir = Scratch::new("mp-after");
    let limits = spooling(&dir);
    let (tx, mut seen) = reports();
    let client = TestClient::new(handler(move |mut cx: HttpContext| {
        let (limits, tx) = (limits.clone(), tx.clone());
        async move {
            let form = cx.multipart_with(limits)?.collect().await?;
            let part = form.into_parts().pop().unwrap();
            let path = part.path().unwrap().to_owned();
            // Kept alive past the response (as a leaked or long-lived value would be).
            let _ = tx.send((path.clone(), path.exists(), part));
            Ok::<_, Error>("ok")
        }
    }));
    let res = client
        .post("/")
        .header("content-type", CT)
        .body(body(&[("name=f; filename=f", None, &[1u8; 500])]))
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.connection().is_completed());
    let (path, existed, part) = seen.next().await;
    assert!(existed);
    // The response was delivered: the file is gone though its Part is still alive.
    assert!(!path.exists(), "{} still exists", path.display());
    assert_eq!(dir.files(), Vec::<PathBuf>::new());
    drop(part);
}

#[tokio::test(start_paused = true)]
async fn temp_files_are_removed_when_the_client_leaves_mid_upload() {
    let dir = Scratch::new("mp-leave");
    let limits = spooling(&dir);
    let (tx, mut seen) = reports();
    let client = TestClient::new(handler(move |mut cx: HttpContext| {
        let (limits, tx) = (limits.clone(), tx.clone());
        async move {
            let mut mp = cx.multipart_with(limits)?;
            // The first file is read whole and held.
            let first = mp.next_part().await?.unwrap();
            let path = first.path().unwrap().to_owned();
            let held = path.exists();
            // The second never ends: the client leaves in the middle of it.
            let r = mp.next_part().await.map(|_| ());
            // The held part's data went with the client: reading it says so.
            let again = first.bytes().await.map(|_| ());
            let _ = tx.send((held, Seen::of(&r), path.exists(), Seen::of(&again)));
            r.map(|()| "unreachable")
        }
    }));
    let b = body(&[
        ("name=one; filename=one", None, &[1u8; 500]),
        ("name=two; filename=two", None, &[2u8; 5000]),
    ]);
    // The first part and half the second, then nothing for a minute; the client leaves after
    // two seconds.
    let (sent, rest) = b.split_at(b.len() - 2500);
    let res = client
        .post("/")
        .header("content-type", CT)
        .chunks_with_delay(
            [Bytes::copy_from_slice(sent), Bytes::copy_from_slice(rest)],
            Duration::from_secs(60),
        )
        .disconnect(
            Disconnect::After(Duration::from_secs(2)),
            DisconnectReason::ClientClosed,
        )
        .send()
        .await;
    assert_eq!(res.client_left(), Some(DisconnectReason::ClientClosed));
    let (held, outcome, still_there, again) = seen.next().await;
    assert!(held);
    assert_eq!(outcome, Seen::gone(DisconnectReason::ClientClosed));
    // The held part's file was removed by the connection object's on_disconnect (its Part
    // is still alive); the partial second file by its drop guard.
    assert!(!still_there);
    assert_eq!(again, Seen::gone(DisconnectReason::ClientClosed));
    assert_eq!(dir.files(), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn no_temp_file_is_made_for_a_client_already_gone() {
    let dir = Scratch::new("mp-gone");
    let limits = spooling(&dir);
    let (tx, mut seen) = reports();
    let client = TestClient::new(handler(move |mut cx: HttpContext| {
        let (limits, tx) = (limits.clone(), tx.clone());
        async move {
            let r = match cx.multipart_with(limits) {
                Ok(mp) => mp.collect().await.map(|f| f.len()),
                Err(e) => Err(e),
            };
            let _ = tx.send(Seen::of(&r));
            r.map(|n| n.to_string())
        }
    }));
    let b = body(&[
        ("name=one; filename=one", None, &[1u8; 500]),
        ("name=two; filename=two", None, &[2u8; 5000]),
    ]);
    // The client sends the first file and part of the second and leaves the moment the app
    // took them: the reader reports it, and leaves nothing on disk.
    let res = client
        .post("/")
        .header("content-type", CT)
        .body(b.clone())
        .disconnect(
            Disconnect::MidBody(b.len() as u64 - 2000),
            DisconnectReason::ReadError,
        )
        .send()
        .await;
    assert_eq!(res.client_left(), Some(DisconnectReason::ReadError));
    assert_eq!(seen.next().await, Seen::gone(DisconnectReason::ReadError));
    assert_eq!(dir.files(), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn temp_files_are_removed_when_the_handler_panics() {
    let dir = Scratch::new("mp-panic");
    let limits = spooling(&dir);
    let (tx, mut seen) = reports();
    let client = TestClient::new(handler(move |mut cx: HttpContext| {
        let (limits, tx) = (limits.clone(), tx.clone());
        async move {
            let form = cx.multipart_with(limits).unwrap().collect().await.unwrap();
            let path = form.file("f").unwrap().path().unwrap().to_owned();
            let _ = tx.send((path.clone(), path.exists()));
            if form.len() == 1 {
                panic!("the handler fails while holding the upload");
            }
            "unreachable"
        }
    }));
    let res = client
        .post("/")
        .header("content-type", CT)
        .body(body(&[("name=f; filename=f", None, &[1u8; 500])]))
        .send()
        .await;
    assert_eq!(res.status(), 500);
    let (path, existed) = seen.next().await;
    assert!(existed);
    res.wait_app().await;
    assert!(!path.exists());
    assert_eq!(dir.files(), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn a_persisted_file_is_kept() {
    let dir = Scratch::new("mp-persist");
    let limits = spooling(&dir);
    let keep = dir.0.join("kept.bin");
    let target = keep.clone();
    let client = TestClient::new(handler(move |mut cx: HttpContext| {
        let (limits, target) = (limits.clone(), target.clone());
        async move {
            let form = cx.multipart_with(limits)?.collect().await?;
            for part in form {
                part.persist(&target).await?;
            }
            Ok::<_, Error>("kept")
        }
    }));
    let res = client
        .post("/")
        .header("content-type", CT)
        .body(body(&[("name=f; filename=f", None, &[9u8; 500])]))
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(dir.files(), std::slice::from_ref(&keep));
    assert_eq!(std::fs::read(&keep).unwrap(), vec![9u8; 500]);
}

#[tokio::test(start_paused = true)]
async fn a_slow_upload_is_spooled_piece_by_piece() {
    let dir = Scratch::new("mp-slow");
    let limits = spooling(&dir);
    let client = TestClient::new(handler(move |mut cx: HttpContext| {
        let limits = limits.clone();
        async move {
            let form = cx.multipart_with(limits)?.collect().await?;
            let p = form.file("f").unwrap();
            Ok::<_, Error>(format!("{} {}", p.size(), p.is_spooled()))
        }
    }));
    let b = body(&[("name=f; filename=f", None, &[3u8; 4000])]);
    let res = client
        .post("/")
        .header("content-type", CT)
        .chunks_with_delay(
            b.chunks(700)
                .map(Bytes::copy_from_slice)
                .collect::<Vec<_>>(),
            Duration::from_millis(50),
        )
        .send()
        .await;
    assert_eq!((res.status(), res.text()), (200, "4000 true".to_owned()));
}
