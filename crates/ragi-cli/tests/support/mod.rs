//! Shared helpers for the black-box tests of the `ragi` binary.
//!
//! Everything here talks to a real `ragi probe` child process over loopback TCP. Every wait is
//! bounded: reads use socket timeouts computed from a deadline, process waits poll `try_wait`
//! against a deadline, and the few polling loops (lifecycle notices, "has the app seen this tag
//! yet") re-check a condition until a deadline instead of sleeping a fixed time.
#![allow(dead_code)]

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ragi");
/// How long the server may take to print its `listening on` line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound for one response read.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

// ---------------------------------------------------------------------------------------------
// Printing bytes in assertion messages
// ---------------------------------------------------------------------------------------------

/// Escaped, truncated view of some bytes for messages.
pub fn show(bytes: &[u8]) -> String {
    show_n(bytes, 400)
}

pub fn show_n(bytes: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02X}")),
        }
    }
    if bytes.len() > max {
        s.push_str(&format!("…(+{} bytes)", bytes.len() - max));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------

/// A running `ragi probe`. Killed (SIGKILL) and reaped on drop unless it already exited.
pub struct Server {
    child: Child,
    pub addrs: Vec<SocketAddr>,
    stderr: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
    exited: Option<ExitStatus>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("pid", &self.child.id())
            .field("addrs", &self.addrs)
            .finish()
    }
}

fn drain_lines<R: Read + Send + 'static>(
    r: R,
    sink: Arc<Mutex<Vec<String>>>,
    tx: Option<mpsc::Sender<String>>,
) -> mpsc::Receiver<()> {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let _done = done_tx; // dropped at EOF: the receiver sees Disconnected
        let mut reader = BufReader::new(r);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line)
                        .trim_end_matches(['\r', '\n'])
                        .to_string();
                    sink.lock().unwrap().push(text.clone());
                    if let Some(tx) = &tx {
                        let _ = tx.send(text);
                    }
                }
            }
        }
    });
    done_rx
}

/// Outcome of running the binary to completion (for CLI error tests).
#[derive(Debug)]
pub struct RunOutcome {
    /// `None` if it did not exit within the bound (it was killed).
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// A command for the binary under test with an environment that does not depend on the
/// caller's: every inherited `RAGI_*` variable and `RUST_LOG` removed, then `env` set.
pub fn hermetic(bin: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("RAGI_") || k == "RUST_LOG" {
            cmd.env_remove(&*k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `ragi <args>` expecting it to exit on its own within `timeout`; kills it otherwise.
pub fn run_to_exit(args: &[&str], timeout: Duration) -> RunOutcome {
    run_to_exit_with(BIN, args, &[], timeout)
}

/// Runs `bin <args>` with `env` (see [`hermetic`]), expecting it to exit on its own within
/// `timeout`; kills it otherwise.
pub fn run_to_exit_with(
    bin: &str,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> RunOutcome {
    let mut child = hermetic(bin, env)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ragi");
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let out_done = drain_lines(child.stdout.take().unwrap(), out.clone(), None);
    let err_done = drain_lines(child.stderr.take().unwrap(), err.clone(), None);
    let status = wait_child(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    // The pipes close when the process is gone; wait (bounded) for the drain threads.
    let _ = out_done.recv_timeout(Duration::from_secs(2));
    let _ = err_done.recv_timeout(Duration::from_secs(2));
    let stdout = out.lock().unwrap().join("\n");
    let stderr = err.lock().unwrap().join("\n");
    RunOutcome {
        status,
        stdout,
        stderr,
    }
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) => {}
            Err(e) => panic!("try_wait: {e}"),
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

impl Server {
    /// Starts `ragi probe` with `args` (plus `--listen 127.0.0.1:0` unless `args` has a
    /// `--listen`). Panics with the server's stderr if it does not come up.
    pub fn start(args: &[&str]) -> Server {
        match Server::try_start(args) {
            Ok(s) => s,
            Err(e) => panic!("ragi probe {args:?} did not start: {e}"),
        }
    }

    pub fn try_start(args: &[&str]) -> Result<Server, String> {
        Server::try_start_with(args, &[])
    }

    /// [`Server::start`] with environment variables (see [`hermetic`]).
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        match Server::try_start_with(args, env) {
            Ok(s) => s,
            Err(e) => panic!("ragi probe {args:?} with {env:?} did not start: {e}"),
        }
    }

    pub fn try_start_with(args: &[&str], env: &[(&str, &str)]) -> Result<Server, String> {
        Server::try_start_command(&["probe"], args, env)
    }

    /// Starts `ragi <command…> <args>` (plus `--listen 127.0.0.1:0` unless `args` has a
    /// `--listen`), e.g. `ragi serve DIR`. Panics with its stderr if it does not come up.
    pub fn start_command(command: &[&str], args: &[&str]) -> Server {
        match Server::try_start_command(command, args, &[]) {
            Ok(s) => s,
            Err(e) => panic!("ragi {command:?} {args:?} did not start: {e}"),
        }
    }

    /// [`Server::start_command`] returning the failure.
    pub fn try_start_command(
        command: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Server, String> {
        let n_listen = args
            .iter()
            .filter(|a| **a == "--listen" || a.starts_with("--listen="))
            .count();
        let mut full: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        if n_listen == 0 {
            full.push("--listen".into());
            full.push("127.0.0.1:0".into());
        }
        full.extend(args.iter().map(|s| s.to_string()));
        let expected = n_listen.max(1);

        let mut child = hermetic(BIN, env)
            .args(&full)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn {BIN}: {e}"))?;
        let (tx, rx) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        drain_lines(child.stderr.take().unwrap(), stderr.clone(), Some(tx));
        drain_lines(child.stdout.take().unwrap(), stdout.clone(), None);

        let mut server = Server {
            child,
            addrs: Vec::new(),
            stderr,
            stdout,
            exited: None,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut near_misses = Vec::new();
        while server.addrs.len() < expected {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(format!(
                    "no `listening on http://127.0.0.1:PORT` line ({} of {expected} seen) within {:?}; \
                     lines that mention it but are not exactly that: {near_misses:?}; stderr so far:\n{}",
                    server.addrs.len(),
                    STARTUP_TIMEOUT,
                    server.stderr_text()
                ));
            }
            match rx.recv_timeout(remaining) {
                Ok(line) => {
                    let rest = line
                        .strip_prefix("listening on http://")
                        .or_else(|| line.strip_prefix("listening on https://"));
                    if let Some(rest) = rest {
                        match rest.parse::<SocketAddr>() {
                            Ok(a) => server.addrs.push(a),
                            Err(_) => near_misses.push(line.clone()),
                        }
                    } else if line.contains("listening on") {
                        near_misses.push(line.clone());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let st = wait_child(&mut server.child, Duration::from_secs(2));
                    server.exited = st;
                    return Err(format!(
                        "stderr closed before listening (exit status {st:?}); stderr:\n{}",
                        server.stderr_text()
                    ));
                }
            }
        }
        Ok(server)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn hostport(&self) -> String {
        self.addr().to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn stdout_text(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    /// All captured output lines (stdout then stderr).
    pub fn output_lines(&self) -> Vec<String> {
        let mut v = self.stdout.lock().unwrap().clone();
        v.extend(self.stderr.lock().unwrap().iter().cloned());
        v
    }

    /// Sends SIGTERM via the `kill` command (no unsafe code in the tests).
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends a signal by name (`TERM`, `INT`) with the `kill` command.
    pub fn signal(&self, name: &str) {
        let st = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{name} {} failed: {st:?}", self.pid());
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(st) = self.exited {
            return Some(st);
        }
        let st = wait_child(&mut self.child, timeout);
        self.exited = st;
        st
    }

    pub fn connect(&self) -> Conn {
        Conn::connect(self.addr())
    }

    pub fn connect_to(&self, addr: SocketAddr) -> Conn {
        Conn::connect(addr)
    }

    /// One request on a fresh connection, `Connection: close`; returns the response.
    pub fn get(&self, path: &str) -> Response {
        self.get_timeout(path, IO_TIMEOUT)
    }

    pub fn get_timeout(&self, path: &str, timeout: Duration) -> Response {
        let mut c = self.connect();
        c.send(format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.hostport()
        ));
        match c.read_response_timeout(false, timeout) {
            Ok(r) => r,
            Err(e) => panic!("GET {path}: {e}\nserver stderr:\n{}", self.stderr_text()),
        }
    }

    /// GET `path` and parse the body as JSON (panics unless 200 + JSON).
    pub fn get_json(&self, path: &str) -> Value {
        self.get_json_timeout(path, IO_TIMEOUT)
    }

    pub fn get_json_timeout(&self, path: &str, timeout: Duration) -> Value {
        // An observer's request may meet a server at its --max-connections limit while a
        // test connection's close is still being processed: retry a 503 within the timeout.
        let deadline = Instant::now() + timeout;
        let mut r = self.get_timeout(path, timeout);
        while r.status == 503 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            r = self.get_timeout(path, timeout);
        }
        assert_eq!(r.status, 200, "GET {path} should be 200: {r}");
        serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("GET {path}: body is not JSON ({e}): {r}"))
    }

    /// `GET /observed/{tag}?wait_ms=W`; panics unless 200 with the documented JSON shape.
    pub fn observed(&self, tag: &str, wait_ms: u64) -> Observed {
        let path = format!("/observed/{tag}?wait_ms={wait_ms}");
        let v = self.get_json_timeout(&path, Duration::from_millis(wait_ms) + IO_TIMEOUT);
        Observed::from_json(&v).unwrap_or_else(|e| panic!("{path}: {e}: {v}"))
    }

    /// Status of `GET /observed/{tag}?wait_ms=0` (404 = the app never saw the tag).
    pub fn observed_status(&self, tag: &str) -> u16 {
        self.get(&format!("/observed/{tag}?wait_ms=0")).status
    }

    /// Asserts the probe app was never called for `tag`.
    pub fn assert_app_not_called(&self, tag: &str) {
        let r = self.get(&format!("/observed/{tag}?wait_ms=0"));
        assert_eq!(
            r.status, 404,
            "the app must never be called for tag {tag:?}, but /observed knows it: {r}"
        );
    }

    /// Polls `/observed/{tag}?wait_ms=0` until the app has seen the tag (bounded).
    pub fn wait_seen(&self, tag: &str, timeout: Duration) -> Observed {
        let path = format!("/observed/{tag}?wait_ms=0");
        poll_until(timeout, &format!("the app to see tag {tag:?}"), || {
            let r = self.get(&path);
            match r.status {
                200 => {
                    let v: Value = serde_json::from_slice(&r.body).ok()?;
                    Observed::from_json(&v).ok()
                }
                404 => None,
                _ => panic!("{path}: unexpected {r}"),
            }
        })
    }

    /// `GET /connections`, parsed.
    pub fn connections(&self) -> Vec<Notice> {
        let v = self.get_json("/connections");
        let arr = v
            .as_array()
            .unwrap_or_else(|| panic!("/connections is not an array: {v}"));
        arr.iter()
            .map(|n| Notice::from_json(n).unwrap_or_else(|e| panic!("/connections entry {n}: {e}")))
            .collect()
    }

    /// `GET /connections`, or `None` if the server answered something other than 200 (e.g. a
    /// 503 while at --max-connections) or the connection failed.
    pub fn try_connections(&self) -> Option<Vec<Notice>> {
        let mut c = Conn::try_connect(self.addr(), IO_TIMEOUT).ok()?;
        c.try_send(
            format!(
                "GET /connections HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.hostport()
            )
            .as_bytes(),
        )
        .ok()?;
        let r = c.read_response_timeout(false, IO_TIMEOUT).ok()?;
        if r.status != 200 {
            return None;
        }
        let v: Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("/connections is not JSON ({e}): {r}"));
        let arr = v
            .as_array()
            .unwrap_or_else(|| panic!("/connections is not an array: {v}"));
        Some(
            arr.iter()
                .map(|n| {
                    Notice::from_json(n).unwrap_or_else(|e| panic!("/connections entry {n}: {e}"))
                })
                .collect(),
        )
    }

    pub fn notices_for(&self, peer: &str) -> Vec<Notice> {
        self.connections()
            .into_iter()
            .filter(|n| n.peer == peer)
            .collect()
    }

    /// Polls `/connections` until a `closed` notice for `peer` appears (bounded); returns it.
    /// Tolerates non-200 answers while polling (e.g. 503 at the connection limit).
    pub fn wait_closed(&self, peer: &str, timeout: Duration) -> Notice {
        let mut last = Vec::new();
        let found = poll_until_opt(timeout, || {
            let all = self.try_connections()?;
            last = all.into_iter().filter(|n| n.peer == peer).collect();
            last.iter().find(|n| n.event == "closed").cloned()
        });
        match found {
            Some(n) => n,
            None => panic!(
                "no `closed` notice for peer {peer} within {timeout:?}; notices for it: {last:#?}"
            ),
        }
    }

    /// Asserts `peer` has no `closed` notice (yet).
    pub fn assert_not_closed(&self, peer: &str) {
        let ns = self.notices_for(peer);
        assert!(
            !ns.iter().any(|n| n.event == "closed"),
            "connection {peer} should still be open, notices: {ns:#?}"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited.is_none() {
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill();
            }
            let _ = self.child.wait();
        }
    }
}

/// Re-checks `f` until it yields `Some` or `timeout` passes; panics on timeout.
pub fn poll_until<T>(timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    match poll_until_opt(timeout, f) {
        Some(v) => v,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

pub fn poll_until_opt<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Probe JSON
// ---------------------------------------------------------------------------------------------

/// `/observed/{tag}` answer.
#[derive(Debug, Clone)]
pub struct Observed {
    pub tag: String,
    pub reason: Option<String>,
    pub after_ms: Option<f64>,
    pub completed: bool,
}

impl Observed {
    pub fn from_json(v: &Value) -> Result<Observed, String> {
        let o = v.as_object().ok_or("not an object")?;
        let tag = o
            .get("tag")
            .and_then(Value::as_str)
            .ok_or("`tag` missing or not a string")?;
        let reason = match o.get("reason") {
            Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            other => return Err(format!("`reason` must be null or a string, got {other:?}")),
        };
        let after_ms = match o.get("after_ms") {
            Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.as_f64().ok_or("after_ms not f64")?),
            other => {
                return Err(format!(
                    "`after_ms` must be null or a number, got {other:?}"
                ))
            }
        };
        let completed = o
            .get("completed")
            .and_then(Value::as_bool)
            .ok_or("`completed` missing or not a bool")?;
        Ok(Observed {
            tag: tag.to_string(),
            reason,
            after_ms,
            completed,
        })
    }
}

/// One `/connections` lifecycle notice.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub id: u64,
    pub event: String,
    pub peer: String,
    pub reason: Option<String>,
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Notice {
    pub fn from_json(v: &Value) -> Result<Notice, String> {
        let o = v.as_object().ok_or("not an object")?;
        let num = |k: &str| -> Result<u64, String> {
            o.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("`{k}` missing or not an unsigned integer"))
        };
        let s = |k: &str| -> Result<String, String> {
            o.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("`{k}` missing or not a string"))
        };
        let reason = match o.get("reason") {
            Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            other => return Err(format!("`reason` must be null or a string, got {other:?}")),
        };
        let event = s("event")?;
        if !matches!(event.as_str(), "accepted" | "upgraded" | "closed") {
            return Err(format!("unknown event {event:?}"));
        }
        Ok(Notice {
            id: num("id")?,
            event,
            peer: s("peer")?,
            reason,
            requests: num("requests")?,
            bytes_in: num("bytes_in")?,
            bytes_out: num("bytes_out")?,
        })
    }
}

/// Asserts the notices of one connection are exactly `accepted` then `closed`, same id, with
/// the accepted notice zeroed. Returns the closed notice.
pub fn assert_lifecycle_pair(peer: &str, notices: &[Notice]) -> Notice {
    assert_eq!(
        notices.iter().map(|n| n.event.as_str()).collect::<Vec<_>>(),
        vec!["accepted", "closed"],
        "connection {peer}: expected exactly [accepted, closed], got {notices:#?}"
    );
    let (a, c) = (&notices[0], &notices[1]);
    assert_eq!(
        a.id, c.id,
        "accepted/closed ids differ for {peer}: {notices:#?}"
    );
    assert_eq!(
        (a.reason.as_deref(), a.requests, a.bytes_in, a.bytes_out),
        (None, 0, 0, 0),
        "accepted notice must have reason null and zero counters: {a:?}"
    );
    c.clone()
}

// ---------------------------------------------------------------------------------------------
// Client connections
// ---------------------------------------------------------------------------------------------

/// How a read side ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Orderly close (FIN).
    Eof,
    /// ECONNRESET.
    Reset,
    /// Some other error.
    Error(io::ErrorKind),
}

/// Result of one bounded read attempt.
#[derive(Debug)]
pub enum Fill {
    Data(usize),
    End(End),
    Timeout,
}

/// Why a response could not be read.
#[derive(Debug)]
pub enum ReadFail {
    Timeout { partial: Vec<u8> },
    Closed { partial: Vec<u8>, end: End },
    Malformed { msg: String, partial: Vec<u8> },
}

impl fmt::Display for ReadFail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadFail::Timeout { partial } => {
                write!(
                    f,
                    "timed out waiting for a complete response; got so far: \"{}\"",
                    show(partial)
                )
            }
            ReadFail::Closed { partial, end } => write!(
                f,
                "connection ended ({end:?}) before a complete response; got: \"{}\"",
                show(partial)
            ),
            ReadFail::Malformed { msg, partial } => {
                write!(f, "malformed response: {msg}; bytes: \"{}\"", show(partial))
            }
        }
    }
}

pub struct Conn {
    pub stream: TcpStream,
    /// Received bytes not yet consumed by a parse.
    pub buf: Vec<u8>,
    /// Set once the read side ended.
    pub end: Option<End>,
    /// Total bytes written / read on this connection.
    pub sent: u64,
    pub received: u64,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("local", &self.stream.local_addr().ok())
            .field("end", &self.end)
            .finish()
    }
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_nodelay(true).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
            end: None,
            sent: 0,
            received: 0,
        }
    }

    pub fn try_connect(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
            end: None,
            sent: 0,
            received: 0,
        })
    }

    /// This client socket's local address: the `peer` the server reports.
    pub fn local(&self) -> String {
        self.stream.local_addr().unwrap().to_string()
    }

    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let b = bytes.as_ref();
        if let Err(e) = self.stream.write_all(b) {
            panic!("send of {} bytes failed: {e}", b.len());
        }
        self.sent += b.len() as u64;
    }

    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.sent += bytes.len() as u64;
        Ok(())
    }

    /// Writes as much of `bytes` as the socket takes, stopping at the first write that cannot
    /// make progress within `stall`. Returns the number of bytes written.
    pub fn send_until_full(&mut self, bytes: &[u8], stall: Duration) -> usize {
        self.stream.set_write_timeout(Some(stall)).unwrap();
        let mut off = 0;
        while off < bytes.len() {
            let end = (off + 64 * 1024).min(bytes.len());
            match self.stream.write(&bytes[off..end]) {
                Ok(0) => break,
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    break
                }
                Err(e) => panic!("write failed after {off} bytes: {e}"),
            }
        }
        self.stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        self.sent += off as u64;
        off
    }

    pub fn shutdown_write(&self) {
        self.stream
            .shutdown(Shutdown::Write)
            .expect("shutdown(Write)");
    }

    /// Closes with RST: SO_LINGER 0, then drop.
    pub fn reset(self) {
        socket2::SockRef::from(&self.stream)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
        drop(self);
    }

    /// One bounded read into `buf`.
    pub fn fill(&mut self, deadline: Instant) -> Fill {
        if let Some(e) = self.end {
            return Fill::End(e);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Fill::Timeout;
        }
        self.stream.set_read_timeout(Some(remaining)).unwrap();
        let mut tmp = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(0) => {
                    self.end = Some(End::Eof);
                    return Fill::End(End::Eof);
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    self.received += n as u64;
                    return Fill::Data(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return Fill::Timeout
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    self.end = Some(End::Reset);
                    return Fill::End(End::Reset);
                }
                Err(e) => {
                    let end = End::Error(e.kind());
                    self.end = Some(end);
                    return Fill::End(end);
                }
            }
        }
    }

    /// Reads the next complete response (interim 1xx responses are returned too).
    pub fn read_response_timeout(
        &mut self,
        head_request: bool,
        timeout: Duration,
    ) -> Result<Response, ReadFail> {
        let deadline = Instant::now() + timeout;
        loop {
            match parse_response(&self.buf, head_request, self.end.is_some()) {
                Ok(Some((r, n))) => {
                    self.buf.drain(..n);
                    return Ok(r);
                }
                Ok(None) => {}
                Err(msg) => {
                    return Err(ReadFail::Malformed {
                        msg,
                        partial: self.buf.clone(),
                    })
                }
            }
            if let Some(end) = self.end {
                return Err(ReadFail::Closed {
                    partial: self.buf.clone(),
                    end,
                });
            }
            match self.fill(deadline) {
                Fill::Data(_) | Fill::End(_) => {}
                Fill::Timeout => {
                    return Err(ReadFail::Timeout {
                        partial: self.buf.clone(),
                    })
                }
            }
        }
    }

    /// Reads the next response (GET semantics), panicking with details on failure.
    pub fn read_response(&mut self) -> Response {
        self.read_response_timeout(false, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Reads the next response to a HEAD request.
    pub fn read_head_response(&mut self) -> Response {
        self.read_response_timeout(true, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Reads only a response head; the body bytes stay in `buf`. `body`/`framing` describe
    /// the announced framing only.
    pub fn read_head_only(&mut self, timeout: Duration) -> Response {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                let head = self.buf[..pos + 4].to_vec();
                let r = parse_head(&head)
                    .unwrap_or_else(|e| panic!("malformed head: {e}: \"{}\"", show(&head)));
                self.buf.drain(..pos + 4);
                return r;
            }
            if let Some(end) = self.end {
                panic!(
                    "connection ended ({end:?}) before a response head; got \"{}\"",
                    show(&self.buf)
                );
            }
            if let Fill::Timeout = self.fill(deadline) {
                panic!(
                    "timed out after {timeout:?} waiting for a response head; got \"{}\"",
                    show(&self.buf)
                );
            }
        }
    }

    /// Reads everything until the server ends the connection; returns the bytes (including
    /// anything left in `buf`) and how it ended, or `Err(bytes)` if it did not end in time.
    pub fn read_to_end(&mut self, timeout: Duration) -> Result<(Vec<u8>, End), Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.end {
                return Ok((std::mem::take(&mut self.buf), end));
            }
            if let Fill::Timeout = self.fill(deadline) {
                return Err(std::mem::take(&mut self.buf));
            }
        }
    }

    /// Like `read_to_end` but panics if the server does not close within `timeout`.
    /// Once the server's close is seen, the client closes its side too (as real clients do),
    /// which ends the server's lingering close at once.
    pub fn expect_close(&mut self, timeout: Duration) -> (Vec<u8>, End) {
        match self.read_to_end(timeout) {
            Ok(v) => {
                let _ = self.stream.shutdown(Shutdown::Write);
                v
            }
            Err(got) => panic!(
                "the server did not close the connection within {timeout:?}; received meanwhile: \"{}\"",
                show(&got)
            ),
        }
    }

    /// Asserts nothing arrives (no byte, no close) for `dur`.
    pub fn expect_silence(&mut self, dur: Duration) {
        let deadline = Instant::now() + dur;
        if !self.buf.is_empty() {
            panic!("expected no data, but have \"{}\"", show(&self.buf));
        }
        match self.fill(deadline) {
            Fill::Timeout => {}
            Fill::Data(_) => panic!("expected silence for {dur:?}, got \"{}\"", show(&self.buf)),
            Fill::End(e) => {
                panic!("expected silence for {dur:?}, but the connection ended ({e:?})")
            }
        }
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Response parsing (strict HTTP/1.x framing)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// No body by rule (1xx, 204, 304, HEAD).
    NoBody,
    Length(u64),
    Chunked,
    UntilClose,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub framing: Framing,
    pub trailers: Vec<(String, String)>,
    /// Raw bytes of the whole message.
    pub raw: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether a comma-separated header contains `token` (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn is_chunked(&self) -> bool {
        self.framing == Framing::Chunked
    }

    /// Asserts the response announces `connection: close`.
    pub fn assert_connection_close(&self) {
        assert!(
            self.has_token("connection", "close"),
            "response must carry `connection: close`: {self}"
        );
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {:?} body=\"{}\"",
            self.version,
            self.status,
            self.reason,
            self.headers,
            show_n(&self.body, 200)
        )
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses a response head (ending in CRLFCRLF). Body fields are left empty; `framing` is
/// derived from the headers assuming a non-HEAD request.
pub fn parse_head(head: &[u8]) -> Result<Response, String> {
    let text = &head[..head.len().saturating_sub(4)];
    // Every line break must be CRLF.
    for (i, &b) in head.iter().enumerate() {
        if b == b'\n' && (i == 0 || head[i - 1] != b'\r') {
            return Err(format!("bare LF at byte {i} of the head"));
        }
        if b == b'\r' && head.get(i + 1) != Some(&b'\n') {
            return Err(format!("bare CR at byte {i} of the head"));
        }
        if b == 0 {
            return Err(format!("NUL at byte {i} of the head"));
        }
    }
    let mut lines = text
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().ok_or("empty head")?;
    let sl =
        std::str::from_utf8(status_line).map_err(|_| "status line is not UTF-8".to_string())?;
    let (version, rest) = sl
        .split_once(' ')
        .ok_or_else(|| format!("bad status line {sl:?}"))?;
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(format!("bad version in status line {sl:?}"));
    }
    let (code, reason) = match rest.split_once(' ') {
        Some((c, r)) => (c, r),
        None => return Err(format!("status line without SP after the code: {sl:?}")),
    };
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("status code is not 3 digits in {sl:?}"));
    }
    let status: u16 = code.parse().unwrap();
    if !(100..=599).contains(&status) {
        return Err(format!("status code out of range in {sl:?}"));
    }
    let mut headers = Vec::new();
    for line in lines {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return Err(format!("obs-fold in response head: \"{}\"", show(line)));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| format!("header line without colon: \"{}\"", show(line)))?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(format!("bad header name: \"{}\"", show(name)));
        }
        let value = &line[colon + 1..];
        let value = String::from_utf8_lossy(value)
            .trim_matches([' ', '\t'])
            .to_string();
        headers.push((String::from_utf8_lossy(name).to_ascii_lowercase(), value));
    }
    let mut r = Response {
        version: version.to_string(),
        status,
        reason: reason.to_string(),
        headers,
        body: Vec::new(),
        framing: Framing::UntilClose,
        trailers: Vec::new(),
        raw: head.to_vec(),
    };
    r.framing = framing_of(&r, false)?;
    Ok(r)
}

fn framing_of(r: &Response, head_request: bool) -> Result<Framing, String> {
    if (100..200).contains(&r.status) || r.status == 204 || r.status == 304 || head_request {
        return Ok(Framing::NoBody);
    }
    let te = r.header_all("transfer-encoding");
    if !te.is_empty() {
        let codings: Vec<String> = te
            .iter()
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .collect();
        if codings.last().map(String::as_str) != Some("chunked") {
            return Err(format!("transfer-encoding without final chunked: {te:?}"));
        }
        if r.header("content-length").is_some() {
            return Err("response has both content-length and transfer-encoding".into());
        }
        if r.version == "HTTP/1.0" {
            return Err("chunked transfer-encoding in an HTTP/1.0 response".into());
        }
        return Ok(Framing::Chunked);
    }
    let cl = r.header_all("content-length");
    if !cl.is_empty() {
        let mut val = None;
        for v in cl.iter().flat_map(|v| v.split(',')) {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("invalid content-length {cl:?}"));
            }
            let n: u64 = v
                .parse()
                .map_err(|_| format!("content-length overflow {cl:?}"))?;
            if val.is_some_and(|x| x != n) {
                return Err(format!("conflicting content-length {cl:?}"));
            }
            val = Some(n);
        }
        return Ok(Framing::Length(val.unwrap()));
    }
    Ok(Framing::UntilClose)
}

/// Parses one complete response from `buf`. `Ok(None)`: need more bytes (when `eof` is false;
/// when true, only an until-close body can complete). Returns the response and the number of
/// bytes it used.
pub fn parse_response(
    buf: &[u8],
    head_request: bool,
    eof: bool,
) -> Result<Option<(Response, usize)>, String> {
    let Some(pos) = find(buf, b"\r\n\r\n") else {
        if let Some(i) = find(buf, b"\n\n") {
            return Err(format!("head ends in bare LFs at byte {i}"));
        }
        if buf.len() > 256 * 1024 {
            return Err("response head longer than 256 KiB".into());
        }
        return Ok(None);
    };
    let head_len = pos + 4;
    let mut r = parse_head(&buf[..head_len])?;
    r.framing = framing_of(&r, head_request)?;
    let rest = &buf[head_len..];
    let used = match r.framing.clone() {
        Framing::NoBody => 0,
        Framing::Length(n) => {
            if (rest.len() as u64) < n {
                return Ok(None);
            }
            r.body = rest[..n as usize].to_vec();
            n as usize
        }
        Framing::UntilClose => {
            if !eof {
                return Ok(None);
            }
            r.body = rest.to_vec();
            rest.len()
        }
        Framing::Chunked => {
            let scan = scan_chunked(rest)?;
            let Some(used) = scan.used else {
                return Ok(None);
            };
            let mut data = Vec::with_capacity(scan.ranges.iter().map(|r| r.len()).sum());
            for rg in &scan.ranges {
                data.extend_from_slice(&rest[rg.clone()]);
            }
            r.body = data;
            r.trailers = scan.trailers;
            used
        }
    };
    r.raw = buf[..head_len + used].to_vec();
    Ok(Some((r, head_len + used)))
}

#[derive(Debug)]
pub enum Chunked {
    Complete {
        data: Vec<u8>,
        trailers: Vec<(String, String)>,
        used: usize,
    },
    /// Not (yet) terminated; `data` holds the complete chunks decoded so far.
    Partial { data: Vec<u8> },
}

/// Strictly decodes a chunked body from the start of `b`.
pub fn decode_chunked(b: &[u8]) -> Result<Chunked, String> {
    let scan = scan_chunked(b)?;
    let mut data = Vec::with_capacity(scan.ranges.iter().map(|r| r.len()).sum());
    for r in &scan.ranges {
        data.extend_from_slice(&b[r.clone()]);
    }
    Ok(match scan.used {
        Some(used) => Chunked::Complete {
            data,
            trailers: scan.trailers,
            used,
        },
        None => Chunked::Partial { data },
    })
}

/// Where the chunk data lies in a chunked body; `used` is `Some` once terminated.
#[derive(Debug)]
pub struct ChunkScan {
    pub ranges: Vec<std::ops::Range<usize>>,
    pub trailers: Vec<(String, String)>,
    pub used: Option<usize>,
}

/// Walks a chunked body without copying data (cheap to repeat while a body streams in).
pub fn scan_chunked(b: &[u8]) -> Result<ChunkScan, String> {
    let mut ranges = Vec::new();
    let mut i = 0;
    loop {
        let window = &b[i..(i + 4096).min(b.len())];
        let Some(le) = find(window, b"\r\n") else {
            if b.len() - i > 4096 {
                return Err(format!("chunk size line longer than 4 KiB at byte {i}"));
            }
            return Ok(ChunkScan {
                ranges,
                trailers: Vec::new(),
                used: None,
            });
        };
        let line = &b[i..i + le];
        let size_part = match line.iter().position(|&c| c == b';') {
            Some(p) => &line[..p],
            None => line,
        };
        let size_str = std::str::from_utf8(size_part)
            .map_err(|_| "chunk size not ASCII".to_string())?
            .trim_end_matches([' ', '\t']);
        if size_str.is_empty() || !size_str.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("bad chunk size line \"{}\"", show(line)));
        }
        let size = usize::from_str_radix(size_str, 16)
            .map_err(|_| format!("chunk size overflow \"{}\"", show(line)))?;
        i += le + 2;
        if size == 0 {
            let mut trailers = Vec::new();
            loop {
                let Some(le) = find(&b[i..], b"\r\n") else {
                    return Ok(ChunkScan {
                        ranges,
                        trailers: Vec::new(),
                        used: None,
                    });
                };
                let line = &b[i..i + le];
                i += le + 2;
                if line.is_empty() {
                    return Ok(ChunkScan {
                        ranges,
                        trailers,
                        used: Some(i),
                    });
                }
                let colon = line
                    .iter()
                    .position(|&c| c == b':')
                    .ok_or_else(|| format!("bad trailer line \"{}\"", show(line)))?;
                trailers.push((
                    String::from_utf8_lossy(&line[..colon]).to_ascii_lowercase(),
                    String::from_utf8_lossy(&line[colon + 1..])
                        .trim()
                        .to_string(),
                ));
            }
        }
        if b.len() < i + size + 2 {
            if b.len() > i + size && b[i + size] != b'\r' {
                return Err(format!(
                    "chunk data not followed by CRLF at byte {}",
                    i + size
                ));
            }
            return Ok(ChunkScan {
                ranges,
                trailers: Vec::new(),
                used: None,
            });
        }
        if &b[i + size..i + size + 2] != b"\r\n" {
            return Err(format!(
                "chunk data not followed by CRLF at byte {}",
                i + size
            ));
        }
        ranges.push(i..i + size);
        i += size + 2;
    }
}

// ---------------------------------------------------------------------------------------------
// Small request builders
// ---------------------------------------------------------------------------------------------

/// `GET {path} HTTP/1.1` with a Host header and optional extra header lines.
pub fn get_req(host: &str, path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n")
}

/// Prints a disconnect measurement (visible with `--nocapture`).
pub fn report_latency(
    what: &str,
    o: &Observed,
    t_sent: Instant,
    t_action: Instant,
    t_seen: Instant,
) {
    let before_action = t_action.duration_since(t_sent).as_secs_f64() * 1000.0;
    let client_seen = t_seen.duration_since(t_action).as_secs_f64() * 1000.0;
    let est = o
        .after_ms
        .map(|a| format!("{:.1}", a - before_action))
        .unwrap_or_else(|| "-".into());
    eprintln!(
        "[{what}] reason={:?} completed={} after_ms={:?} (client: request sent → disconnect action {before_action:.1} ms; \
         action → /observed answered {client_seen:.1} ms; estimated detection latency ≈ {est} ms)",
        o.reason, o.completed, o.after_ms
    );
}
