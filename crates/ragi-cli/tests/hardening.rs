//! Issue 14: slow heads and bodies end (minimum rate, whole-head deadline), timed-out
//! connections are reset, RFC edge cases, the probe's bounded notices, panics contained.

mod support;

use std::time::{Duration, Instant};

use support::*;

/// Sends `bytes` one piece every `every`: a trickling client. The pacing is the scenario.
fn trickle(c: &mut Conn, bytes: &[u8], piece: usize, every: Duration, until: Instant) -> usize {
    let mut sent = 0;
    for chunk in bytes.chunks(piece) {
        if Instant::now() >= until || c.try_send(chunk).is_err() {
            break;
        }
        sent += chunk.len();
        std::thread::sleep(every);
    }
    sent
}

/// A head trickled at 20 bytes/s never stalls (a byte every 50 ms against a 5 s stall
/// timeout), but falls below a 100 bytes/s minimum once the 0.5 s grace is over: 408,
/// `client_timeout`, and the app is never called.
#[test]
fn a_trickled_head_ends_with_408() {
    let s = Server::start(&[
        "--request-timeout",
        "5",
        "--min-request-rate",
        "100",
        "--min-request-rate-grace",
        "0.5",
    ]);
    let mut c = s.connect();
    let peer = c.local();
    let head = format!(
        "GET /hold/trickled HTTP/1.1\r\nHost: {}\r\nX-Filler: {}\r\n\r\n",
        s.hostport(),
        "a".repeat(200)
    );
    let t = Instant::now();
    let sent = trickle(
        &mut c,
        head.as_bytes(),
        1,
        Duration::from_millis(50),
        t + Duration::from_secs(4),
    );
    let r = c
        .read_response_timeout(false, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("expected 408 after {sent} bytes: {e}"));
    let el = t.elapsed();
    eprintln!("trickled head: 408 after {el:?}, {sent} bytes sent");
    assert_eq!(r.status, 408, "{r}");
    assert!(sent < head.len(), "the whole head went through");
    assert!(el >= Duration::from_millis(450), "before the grace: {el:?}");
    assert!(
        el < Duration::from_secs(4),
        "the stall timer did it: {el:?}"
    );
    let closed = s.wait_closed(&peer, Duration::from_secs(5));
    assert_eq!(
        closed.reason.as_deref(),
        Some("client_timeout"),
        "{closed:?}"
    );
    s.assert_app_not_called("trickled");
}

/// A body trickled below the minimum rate: the app (which reads the whole body before it
/// answers) sees `client_timeout`; the client gets 408.
#[test]
fn a_trickled_body_ends_with_408() {
    let s = Server::start(&[
        "--request-timeout",
        "5",
        "--min-request-rate",
        "100",
        "--min-request-rate-grace",
        "0.5",
    ]);
    let mut c = s.connect();
    let peer = c.local();
    c.send(format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000\r\n\r\n",
        s.hostport()
    ));
    let t = Instant::now();
    let sent = trickle(
        &mut c,
        &[b'x'; 1000],
        1,
        Duration::from_millis(50),
        t + Duration::from_secs(4),
    );
    let r = c
        .read_response_timeout(false, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("expected 408 after {sent} body bytes: {e}"));
    let el = t.elapsed();
    eprintln!("trickled body: 408 after {el:?}, {sent} bytes sent");
    assert_eq!(r.status, 408, "{r}");
    assert!(el >= Duration::from_millis(450), "before the grace: {el:?}");
    assert!(el < Duration::from_secs(4), "{el:?}");
    let closed = s.wait_closed(&peer, Duration::from_secs(5));
    assert_eq!(
        closed.reason.as_deref(),
        Some("client_timeout"),
        "{closed:?}"
    );
}

/// A body sent steadily above the minimum rate (about 600 bytes/s against 100) is served,
/// however long it takes past the grace.
#[test]
fn a_slow_body_above_the_minimum_rate_is_served() {
    let s = Server::start(&[
        "--min-request-rate",
        "100",
        "--min-request-rate-grace",
        "0.3",
    ]);
    let mut c = s.connect();
    c.send(format!(
        "POST /echo HTTP/1.1\r\nHost: {}\r\nContent-Length: 900\r\n\r\n",
        s.hostport()
    ));
    let far = Instant::now() + Duration::from_secs(30);
    assert_eq!(
        trickle(&mut c, &[b'y'; 900], 60, Duration::from_millis(100), far),
        900
    );
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body.len(), 900);
}

/// The whole-head deadline: a head trickling at a steady rate (no stall, the minimum rate
/// off) is ended 1 s after its first byte.
#[test]
fn the_whole_head_deadline_ends_a_steady_trickle() {
    let s = Server::start(&[
        "--request-timeout",
        "5",
        "--min-request-rate",
        "0",
        "--request-head-timeout",
        "1",
    ]);
    let mut c = s.connect();
    let head = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nX-Filler: {}\r\n\r\n",
        s.hostport(),
        "b".repeat(2000)
    );
    let t = Instant::now();
    trickle(
        &mut c,
        head.as_bytes(),
        5,
        Duration::from_millis(20),
        t + Duration::from_secs(4),
    );
    let r = c
        .read_response_timeout(false, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("expected 408: {e}"));
    let el = t.elapsed();
    assert_eq!(r.status, 408, "{r}");
    assert!(
        el >= Duration::from_millis(900) && el < Duration::from_secs(4),
        "{el:?}"
    );
}

/// The kernel's state of the server's socket for this client port, from `/proc/net/tcp`
/// (`None`: no such socket).
fn server_socket_state(server_port: u16, client_port: u16) -> Option<u8> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port = |a: &str| u16::from_str_radix(a.rsplit(':').next()?, 16).ok();
        (port(f[1])? == server_port && port(f[2])? == client_port)
            .then(|| u8::from_str_radix(f[3], 16).ok())
            .flatten()
    })
}

const FIN_WAIT1: u8 = 0x04;

/// A reader that takes nothing; the server closes it for `write_timeout`. Returns the
/// server's socket state for it once the close is reported.
fn write_timeout_state(extra: &[&str]) -> (Option<u8>, Option<String>) {
    let mut args = vec!["--write-timeout", "0.5"];
    args.extend_from_slice(extra);
    let s = Server::start(&args);
    let c = s.connect();
    let sock = socket2::SockRef::from(&c.stream);
    sock.set_recv_buffer_size(4096).unwrap();
    let client_port = c.stream.local_addr().unwrap().port();
    let mut c = c;
    c.send(get_req(
        &s.hostport(),
        "/stream/slowreader?chunks=400&bytes=65536&interval_ms=0",
        "",
    ));
    let closed = s.wait_closed(&c.local(), Duration::from_secs(10));
    let state = server_socket_state(s.addr().port(), client_port);
    drop(c);
    (state, closed.reason)
}

/// Issue 14: a connection closed for `write_timeout` is reset, so its unsent megabytes do
/// not stay in the kernel as a FIN-WAIT-1 socket. The control: with
/// `--no-reset-timedout-connection` they do.
#[test]
fn a_write_timeout_resets_the_connection_and_frees_the_socket() {
    let (state, reason) = write_timeout_state(&[]);
    assert_eq!(reason.as_deref(), Some("write_timeout"));
    assert!(
        state.is_none_or(|s| s != FIN_WAIT1),
        "the socket lingers in FIN-WAIT-1 (state {state:?})"
    );
    let (state, reason) = write_timeout_state(&["--no-reset-timedout-connection"]);
    assert_eq!(reason.as_deref(), Some("write_timeout"));
    assert_eq!(
        state,
        Some(FIN_WAIT1),
        "without the reset, the graceful close leaves FIN-WAIT-1"
    );
}

/// Idle and keep-alive timeouts reset too; the client sees ECONNRESET (or a plain close
/// with the reset off).
#[test]
fn idle_timeouts_reset_unless_turned_off() {
    let s = Server::start(&["--idle-timeout", "0.3"]);
    let mut c = s.connect();
    let (bytes, end) = c.expect_close(Duration::from_secs(3));
    assert!(bytes.is_empty());
    assert_eq!(end, End::Reset, "an idle timeout resets");
    let s = Server::start(&["--idle-timeout", "0.3", "--no-reset-timedout-connection"]);
    let mut c = s.connect();
    assert_eq!(c.expect_close(Duration::from_secs(3)).1, End::Eof);
}

/// RFC 9112 §3.2.2: the authority of an absolute-form target is the host the app sees.
#[test]
fn an_absolute_form_authority_takes_precedence_over_host() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.send("GET http://real.example:9000/request?a=1 HTTP/1.1\r\nHost: other.example\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r}");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["host"], "real.example:9000", "{v}");
    assert_eq!(v["path"], "/request", "{v}");
    assert_eq!(v["query"], "a=1", "{v}");
    let hosts: Vec<&serde_json::Value> = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == "host")
        .collect();
    assert_eq!(hosts.len(), 1, "{v}");
}

/// RFC 9110 §2.5: HTTP/1.2 is served as HTTP/1.1 (keep-alive included); HTTP/2.0 and other
/// major versions on an HTTP/1 request line get 505 and a close.
#[test]
fn http_versions_beyond_1_1() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.send(format!(
        "GET /request HTTP/1.2\r\nHost: {}\r\n\r\n",
        s.hostport()
    ));
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.version, "HTTP/1.1", "{r}");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["http_version"], "1.1");
    // Kept alive, as HTTP/1.1.
    c.send(get_req(&s.hostport(), "/", ""));
    assert_eq!(c.read_response().status, 200);
    for version in ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9"] {
        let mut c = s.connect();
        c.send(format!("GET / {version}\r\nHost: {}\r\n\r\n", s.hostport()));
        let r = c.read_response();
        assert_eq!(r.status, 505, "{version}: {r}");
        r.assert_connection_close();
        c.expect_close(Duration::from_secs(3));
    }
}

/// `--notices N` bounds what the probe keeps: the newest N.
#[test]
fn the_probe_keeps_a_bounded_number_of_notices() {
    let s = Server::start(&["--notices", "6"]);
    for _ in 0..8 {
        let mut c = s.connect();
        c.send(get_req(&s.hostport(), "/", "Connection: close\r\n"));
        assert_eq!(c.read_response().status, 200);
        c.expect_close(Duration::from_secs(3));
    }
    let notices = poll_until(Duration::from_secs(5), "6 notices", || {
        let n = s.connections();
        (n.len() == 6 && n.iter().filter(|x| x.event == "closed").count() >= 3).then_some(n)
    });
    assert_eq!(notices.len(), 6, "{notices:?}");
}

// ----- panics ------------------------------------------------------------------------------

/// The server is still there and serving, and the panicking connection's slot was freed
/// (with `--max-connections 2`, one for the test and one for `/connections`, a new
/// connection is served, not refused with 503).
fn still_serving(s: &Server) {
    let r = poll_until(Duration::from_secs(5), "a served request", || {
        let r = s.get("/");
        (r.status == 200).then_some(r)
    });
    assert_eq!(r.body_str(), "Hello, World!");
}

/// Lines of the server's stderr that mention `needle`.
fn log_lines(s: &Server, needle: &str) -> Vec<String> {
    s.stderr_text()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// Waits until the stderr has a line with `needle`; returns them all.
fn wait_log(s: &Server, needle: &str) -> Vec<String> {
    poll_until(Duration::from_secs(5), needle, || {
        let l = log_lines(s, needle);
        (!l.is_empty()).then_some(l)
    })
}

/// A panic before the response: 500 with `connection: close`, logged once with the
/// connection's id, and nothing else printed for it.
#[test]
fn a_panic_before_the_response_answers_500() {
    let s = Server::start(&["--max-connections", "2"]);
    for _ in 0..3 {
        let mut c = s.connect();
        c.send(get_req(&s.hostport(), "/panic?when=before", ""));
        let r = c.read_response();
        assert_eq!(r.status, 500, "{r}");
        r.assert_connection_close();
        c.expect_close(Duration::from_secs(3));
        let closed = s.wait_closed(&c.local(), Duration::from_secs(3));
        assert_eq!(closed.reason.as_deref(), Some("server_error"), "{closed:?}");
    }
    still_serving(&s);
    let lines = wait_log(&s, "the probe panics before responding");
    assert_eq!(lines.len(), 3, "once per panic: {lines:?}");
    assert!(lines
        .iter()
        .all(|l| l.contains("conn") && l.contains("answering 500")));
    assert!(
        log_lines(&s, "panicked at").is_empty(),
        "{}",
        s.stderr_text()
    );
}

/// A panic after the response started: the response is aborted (no terminating chunk),
/// the connection closes, the server goes on.
#[test]
fn a_panic_after_the_response_started_aborts_it() {
    let s = Server::start(&["--max-connections", "2"]);
    let mut c = s.connect();
    c.send(get_req(&s.hostport(), "/panic?when=after", ""));
    let (bytes, _) = c.expect_close(Duration::from_secs(3));
    let head_end = find(&bytes, b"\r\n\r\n").expect("a head") + 4;
    let r = parse_head(&bytes[..head_end]).unwrap();
    assert_eq!(r.status, 200);
    match decode_chunked(&bytes[head_end..]) {
        Ok(Chunked::Partial { data }) => assert_eq!(data, b"started"),
        other => panic!("an aborted response must not end: {other:?}"),
    }
    let closed = s.wait_closed(&c.local(), Duration::from_secs(3));
    assert_eq!(closed.reason.as_deref(), Some("server_error"), "{closed:?}");
    still_serving(&s);
    let lines = wait_log(&s, "after its response started");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("response aborted") && lines[0].contains("conn"));
}

/// A panicking `on_disconnect` callback (run when the client leaves) and a panicking
/// `on_complete` callback (run once the response was delivered): contained, logged once with
/// the connection id, the slot freed.
#[test]
fn panicking_callbacks_are_contained() {
    let s = Server::start(&["--max-connections", "2"]);
    let mut c = s.connect();
    let peer = c.local();
    c.send(get_req(&s.hostport(), "/panic?when=callback", ""));
    // The app holds the request; the client leaves.
    poll_until(Duration::from_secs(5), "the request held", || {
        s.connections()
            .iter()
            .any(|n| n.peer == peer && n.event == "accepted")
            .then_some(())
    });
    c.shutdown_write();
    let closed = s.wait_closed(&peer, Duration::from_secs(3));
    assert_eq!(
        closed.reason.as_deref(),
        Some("client_closed"),
        "{closed:?}"
    );
    let lines = wait_log(&s, "on_disconnect callback panics");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let id = format!("c{}", closed.id);
    assert!(lines[0].contains(&id), "the connection id {id}: {lines:?}");
    drop(c);
    still_serving(&s);

    let mut c = s.connect();
    c.send(get_req(&s.hostport(), "/panic?when=complete", ""));
    let r = c.read_response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "complete"), "{r}");
    let lines = wait_log(&s, "on_complete callback panics");
    assert_eq!(lines.len(), 1, "{lines:?}");
    // The connection is kept alive and serves its next request.
    c.send(get_req(&s.hostport(), "/", ""));
    assert_eq!(c.read_response().status, 200);
    drop(c);
    still_serving(&s);
    assert!(
        log_lines(&s, "panicked at").is_empty(),
        "{}",
        s.stderr_text()
    );
}
