//! `run(app)` as a new user meets it, black-box over the example binaries
//! (`examples/hello.rs`, `examples/app_errors.rs`): the app that fails, or sends an invalid
//! event, is a log line with its connection id in either log format, never a silent 500; the
//! binary has `--help` with every option's variable, `--version`, config-file errors naming
//! file and line, and a clean exit on SIGTERM.
//!
//! The examples are built by `cargo test` (all targets) before any test runs; alone, this
//! file needs `cargo build -p ragi-server --examples` first.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// The path of an example binary of this package, next to the test's `deps` directory.
fn example(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let p = dir.join("examples").join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build -p ragi-server --examples` (cargo test builds it)",
        p.display()
    );
    p
}

/// A command with no inherited `RAGI_*` or `RUST_LOG`.
fn command(bin: &PathBuf) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("RAGI_") || k == "RUST_LOG" {
            cmd.env_remove(&*k);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// A running example binary; SIGKILLed on drop unless it exited.
struct Running {
    child: Child,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
}

impl Running {
    fn start(name: &str, args: &[&str]) -> Running {
        Self::start_with(name, args, &[])
    }

    fn start_with(name: &str, args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = command(&example(name))
            .envs(env.iter().copied())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines() {
                if tx.send(l.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        let mut r = Running {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            lines: rx,
            stderr: Vec::new(),
        };
        let line = r.wait_line(|l| l.starts_with("listening on http://"));
        r.addr = line["listening on http://".len()..].parse().unwrap();
        r
    }

    /// Waits (bounded) for a stderr line that `f` accepts; returns it.
    fn wait_line(&mut self, f: impl Fn(&str) -> bool) -> String {
        if let Some(l) = self.stderr.iter().find(|l| f(l)) {
            return l.clone();
        }
        let deadline = Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.stderr.push(l.clone());
                    if f(&l) {
                        return l;
                    }
                }
                Err(_) => panic!("no such line on stderr; so far: {:#?}", self.stderr),
            }
        }
    }

    /// One request on a fresh connection; the raw response.
    fn get(&self, path: &str) -> String {
        let mut c = TcpStream::connect(self.addr).unwrap();
        c.set_read_timeout(Some(T)).unwrap();
        write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    /// SIGTERM, then the exit status (bounded) and every stderr line.
    fn stop(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let st = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = Instant::now() + T;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        };
        // The pipe is closed: the reader thread ends, and every line is in.
        while let Ok(l) = self.lines.recv_timeout(T) {
            self.stderr.push(l);
        }
        (status, std::mem::take(&mut self.stderr))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_hello_example_serves_and_stops_cleanly() {
    let s = Running::start("hello", &[]);
    let r = s.get("/");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.ends_with("Hello, World!"), "{r}");
    let (status, _) = s.stop();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_failing_app_is_a_json_log_line_with_the_connection_id() {
    // stderr is a pipe here: JSON is the default.
    let mut s = Running::start("app_errors", &[]);
    let r = s.get("/fail");
    assert!(r.starts_with("HTTP/1.1 500 "), "{r}");
    let line = s.wait_line(|l| l.contains("the database is unreachable"));
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["level"], "WARN", "{line}");
    assert_eq!(v["message"], "app failed; answering 500", "{line}");
    assert_eq!(v["error"], "the database is unreachable", "{line}");
    let conn = v["conn"]
        .as_str()
        .unwrap_or_else(|| panic!("no conn: {line}"));
    assert!(
        conn.starts_with('c') && conn[1..].parse::<u64>().is_ok(),
        "{line}"
    );

    // An invalid event (a body before the response start): the line says which.
    let r = s.get("/invalid");
    assert!(r.starts_with("HTTP/1.1 500 "), "{r}");
    let line = s.wait_line(|l| l.contains("ResponseBody before ResponseStart"));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "WARN", "{line}");
    assert!(v["conn"].as_str().is_some_and(|c| c != conn), "{line}");
    let (status, _) = s.stop();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_failing_app_is_a_plain_log_line_with_the_connection_id() {
    let mut s = Running::start("app_errors", &["--log-format", "plain"]);
    let r = s.get("/fail");
    assert!(r.starts_with("HTTP/1.1 500 "), "{r}");
    let line = s.wait_line(|l| l.contains("the database is unreachable"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("app failed; answering 500"), "{line}");
    assert!(line.contains("conn=c"), "{line}");
    assert!(!line.contains('\x1b'), "no colour on a pipe: {line:?}");
    assert!(!line.starts_with('{'), "{line}");
    s.stop();
}

#[test]
fn the_log_level_comes_from_its_flag_its_variable_rust_log_or_the_file() {
    /// Whether the failing request's warning was logged at this level setting.
    fn warned(args: &[&str], env: &[(&str, &str)]) -> bool {
        let s = Running::start_with("app_errors", args, env);
        assert!(s.get("/fail").starts_with("HTTP/1.1 500"));
        // After the exit every line is in: absence is known without waiting for it.
        let (status, lines) = s.stop();
        assert!(status.success());
        lines
            .iter()
            .any(|l| l.contains("the database is unreachable"))
    }
    let file = std::env::temp_dir().join(format!("ragi-run-app-{}.toml", std::process::id()));
    std::fs::write(&file, "log-level = \"error\"\n").unwrap();
    let cfg = file.to_str().unwrap();

    assert!(warned(&[], &[]), "default info");
    assert!(!warned(&["--config", cfg], &[]), "file > default");
    assert!(
        warned(&["--config", cfg], &[("RUST_LOG", "warn")]),
        "RUST_LOG > file"
    );
    assert!(
        !warned(&[], &[("RUST_LOG", "warn"), ("RAGI_LOG_LEVEL", "error")]),
        "RAGI_LOG_LEVEL > RUST_LOG"
    );
    assert!(
        warned(&["--log-level", "warn"], &[("RAGI_LOG_LEVEL", "error")]),
        "flag > RAGI_LOG_LEVEL"
    );
    assert!(
        !warned(&["--log-level", "off"], &[("RUST_LOG", "warn")]),
        "flag > RUST_LOG"
    );
    std::fs::remove_file(&file).unwrap();
}

/// Runs an example to its exit (bounded): status code, stdout, stderr.
fn run_to_exit(name: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = command(&example(name))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + T;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{name} {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), out, err)
}

#[test]
fn help_version_and_usage_errors_of_an_app_binary() {
    let (code, out, _) = run_to_exit("hello", &["--help"]);
    assert_eq!(code, Some(0));
    for (flag, var) in [
        ("--listen", "RAGI_LISTEN"),
        ("--tls-cert", "RAGI_TLS_CERT"),
        ("--max-body-size", "RAGI_MAX_BODY_SIZE"),
        ("--log-level", "RAGI_LOG_LEVEL"),
        ("--log-format", "RAGI_LOG_FORMAT"),
        ("--workers", "RAGI_WORKERS"),
        ("--config", "RAGI_CONFIG"),
    ] {
        assert!(
            out.contains(flag) && out.contains(&format!("[env: {var}=")),
            "{flag}: {out}"
        );
    }

    // `run(app)` knows ragi-server's version; `Run::version` adds the app's.
    let (code, out, _) = run_to_exit("hello", &["--version"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out.trim(),
        format!("hello (ragi-server {})", env!("CARGO_PKG_VERSION"))
    );
    let (_, out, _) = run_to_exit("app_errors", &["--version"]);
    assert_eq!(
        out.trim(),
        format!(
            "app_errors {v} (ragi-server {v})",
            v = env!("CARGO_PKG_VERSION")
        )
    );

    let file = std::env::temp_dir().join(format!("ragi-run-app-bad-{}.toml", std::process::id()));
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nmax-body-size = \"12x\"\n").unwrap();
    let (code, _, err) = run_to_exit("hello", &["--config", file.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}:2: max-body-size: \"12x\" is not a number",
            file.display()
        )),
        "{err}"
    );
    assert!(!err.contains("listening on"), "{err}");

    // A port taken: exit 1, the reason named.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run_to_exit("hello", &["--listen", &addr]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("hello: cannot listen on {addr}")),
        "{err}"
    );
}
