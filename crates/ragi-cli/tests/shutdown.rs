//! Graceful shutdown on SIGTERM: stop accepting, close idle connections at once, let in-flight
//! requests finish (with `connection: close`), abort what is left at --shutdown-timeout,
//! exit 0.

mod support;

use std::time::{Duration, Instant};

use support::*;

#[test]
fn sigterm_on_an_idle_server_exits_zero() {
    let mut s = Server::start(&[]);
    assert_eq!(s.get("/").status, 200);
    let t = Instant::now();
    s.sigterm();
    let st = s.wait_exit(Duration::from_secs(5)).unwrap_or_else(|| {
        panic!(
            "no exit within 5 s of SIGTERM; stderr:\n{}",
            s.stderr_text()
        )
    });
    eprintln!("idle server exited {st:?} {:?} after SIGTERM", t.elapsed());
    assert!(
        st.success(),
        "exit status {st:?}; stderr:\n{}",
        s.stderr_text()
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "an idle server should exit promptly, took {:?}",
        t.elapsed()
    );
    assert!(
        Conn::try_connect(s.addr(), Duration::from_secs(1)).is_err(),
        "still accepting after exit?"
    );
}

#[test]
fn sigint_exits_zero_too() {
    let mut s = Server::start(&[]);
    assert_eq!(s.get("/").status, 200);
    s.signal("INT");
    let st = s
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no exit within 5 s of SIGINT"));
    assert!(
        st.success(),
        "exit status {st:?}; stderr:\n{}",
        s.stderr_text()
    );
}

#[test]
fn sigterm_closes_idle_connections_and_lets_inflight_finish() {
    let mut s = Server::start(&["--shutdown-timeout", "5"]);
    let h = s.hostport();

    // An idle kept-alive connection.
    let mut idle = s.connect();
    idle.send(get_req(&h, "/", ""));
    assert_eq!(idle.read_response().status, 200);

    // A stream in flight: 20 chunks × 10 bytes, 50 ms apart (~1 s).
    let mut st = s.connect();
    st.send(get_req(
        &h,
        "/stream/g?chunks=20&bytes=10&interval_ms=50",
        "",
    ));
    let head = st.read_head_only(Duration::from_secs(5));
    assert_eq!(head.status, 200);
    s.wait_seen("g", Duration::from_secs(5));

    // An observer request in flight (it waits for the stream to end).
    let mut obs = s.connect();
    obs.send(get_req(&h, "/observed/g?wait_ms=8000", ""));
    // Margin for the observer request to reach the app: a fresh round trip on another
    // connection is served after it was written.
    assert_eq!(s.get("/").status, 200);

    let t0 = Instant::now();
    s.sigterm();

    // Idle connection: closed at once, without a response.
    let (bytes, end) = idle.expect_close(Duration::from_secs(2));
    let idle_closed = t0.elapsed();
    eprintln!("idle connection closed {idle_closed:?} after SIGTERM ({end:?})");
    assert!(bytes.is_empty(), "\"{}\"", show(&bytes));
    assert!(
        idle_closed < Duration::from_millis(1000),
        "idle connection closed only after {idle_closed:?}"
    );

    // New connections are no longer served.
    match Conn::try_connect(s.addr(), Duration::from_secs(1)) {
        Err(e) => eprintln!("new connection after SIGTERM refused: {e}"),
        Ok(mut c) => {
            let _ = c.try_send(get_req(&h, "/", "").as_bytes());
            match c.read_to_end(Duration::from_secs(2)) {
                Ok((bytes, end)) => {
                    assert!(
                        !bytes.starts_with(b"HTTP/1.1 200"),
                        "a connection made after SIGTERM was served: \"{}\"",
                        show(&bytes)
                    );
                    eprintln!("new connection after SIGTERM: \"{}\" {end:?}", show(&bytes));
                }
                Err(got) => panic!(
                    "a connection made after SIGTERM neither served nor closed within 2 s: \"{}\"",
                    show(&got)
                ),
            }
        }
    }

    // The stream finishes completely, then the connection closes.
    let mut raw = std::mem::take(&mut st.buf);
    let (more, end) = st.expect_close(Duration::from_secs(5));
    raw.extend(more);
    match decode_chunked(&raw) {
        Ok(Chunked::Complete { data, used, .. }) => {
            assert_eq!(data.len(), 200, "stream body length");
            assert_eq!(used, raw.len(), "bytes after the last chunk");
        }
        other => {
            panic!("in-flight stream must finish within the shutdown deadline: {other:?} ({end:?})")
        }
    }

    // The observer's response started after SIGTERM: it must say connection: close.
    let r = obs
        .read_response_timeout(false, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("observer: {e}"));
    assert_eq!(r.status, 200, "{r}");
    r.assert_connection_close();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let o = Observed::from_json(&v).unwrap();
    assert!(
        o.completed && o.reason.is_none(),
        "stream finished during shutdown: {o:?}"
    );
    obs.expect_close(Duration::from_secs(3));

    // Exit 0, well before the 5 s deadline since nothing is left.
    let status = s
        .wait_exit(Duration::from_secs(8))
        .unwrap_or_else(|| panic!("no exit; stderr:\n{}", s.stderr_text()));
    let exit_at = t0.elapsed();
    eprintln!("exited {status:?} {exit_at:?} after SIGTERM");
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{}",
        s.stderr_text()
    );
    assert!(
        exit_at < Duration::from_secs(4),
        "exit should follow the last request, not the deadline: {exit_at:?}"
    );
}

#[test]
fn sigterm_deadline_aborts_a_long_stream() {
    let mut s = Server::start(&["--shutdown-timeout", "0.5"]);
    let mut st = s.connect();
    // ~10 s stream.
    st.send(get_req(
        &s.hostport(),
        "/stream/h?chunks=1000&bytes=10&interval_ms=10",
        "",
    ));
    let head = st.read_head_only(Duration::from_secs(5));
    assert_eq!(head.status, 200);
    let t0 = Instant::now();
    s.sigterm();
    let mut raw = std::mem::take(&mut st.buf);
    let (more, end) = st.expect_close(Duration::from_secs(4));
    let closed_at = t0.elapsed();
    raw.extend(more);
    eprintln!(
        "long stream ended {closed_at:?} after SIGTERM ({end:?}), {} body bytes",
        raw.len()
    );
    assert!(
        closed_at >= Duration::from_millis(400),
        "aborted before the 0.5 s deadline: {closed_at:?}"
    );
    assert!(
        closed_at < Duration::from_millis(2500),
        "not aborted by the 0.5 s deadline: {closed_at:?}"
    );
    assert!(
        matches!(decode_chunked(&raw), Ok(Chunked::Partial { .. })),
        "an aborted stream must not end with the terminating chunk"
    );
    let status = s
        .wait_exit(Duration::from_secs(3))
        .unwrap_or_else(|| panic!("no exit; stderr:\n{}", s.stderr_text()));
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{}",
        s.stderr_text()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "exit {:?} after SIGTERM",
        t0.elapsed()
    );
}
