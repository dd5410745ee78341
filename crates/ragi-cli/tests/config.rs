//! Where `ragi probe`'s options come from: flags, `RAGI_*` variables, the `--config` file and
//! the defaults, in that order of precedence (each pair checked on something a client sees);
//! errors that name the flag, the variable or the file and line; `--help` and `--version`; a
//! Unix-domain socket listener serving a request.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::*;

/// A config file in the temp dir, removed on drop.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(name: &str, body: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("ragi-config-{}-{name}.toml", std::process::id()));
        std::fs::write(&p, body).unwrap();
        ConfigFile(p)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The `server` header of a `GET /` to a probe started with these arguments and variables.
fn server_header(args: &[&str], env: &[(&str, &str)]) -> String {
    let s = Server::start_with(args, env);
    let r = s.get("/");
    assert_eq!(r.status, 200, "{r}");
    r.header("server").unwrap_or("<none>").to_owned()
}

#[test]
fn precedence_flag_beats_environment_beats_file_beats_default() {
    let file = ConfigFile::new("prec", "server-header = \"from-file\"\n");
    let cfg = file.path();
    let env = [("RAGI_SERVER_HEADER", "from-env")];

    // default
    assert_eq!(server_header(&[], &[]), "ragi");
    // file > default
    assert_eq!(server_header(&["--config", cfg], &[]), "from-file");
    // environment > default
    assert_eq!(server_header(&[], &env), "from-env");
    // environment > file
    assert_eq!(server_header(&["--config", cfg], &env), "from-env");
    // flag > file
    assert_eq!(
        server_header(&["--config", cfg, "--server-header", "from-flag"], &[]),
        "from-flag"
    );
    // flag > environment (and file)
    assert_eq!(
        server_header(&["--config", cfg, "--server-header", "from-flag"], &env),
        "from-flag"
    );
    // flag > default
    assert_eq!(
        server_header(&["--server-header", "from-flag"], &[]),
        "from-flag"
    );
    // The config file named by a variable.
    assert_eq!(server_header(&[], &[("RAGI_CONFIG", cfg)]), "from-file");
}

/// Whether a client that half-closes right after its request still gets the whole streamed
/// response: yes with `--allow-half-close`, no without (its FIN ends the exchange).
fn half_closed_client_served(args: &[&str], env: &[(&str, &str)]) -> bool {
    let s = Server::start_with(args, env);
    let mut c = s.connect();
    c.send(format!(
        "GET /stream/hc?chunks=3&bytes=10&interval_ms=30 HTTP/1.1\r\nHost: {}\r\n\r\n",
        s.hostport()
    ));
    c.shutdown_write();
    match c.read_response_timeout(false, IO_TIMEOUT) {
        Ok(r) => r.status == 200 && r.body.len() == 30,
        Err(_) => false,
    }
}

#[test]
fn an_on_off_option_can_be_turned_off_by_a_higher_layer() {
    let on = [("RAGI_ALLOW_HALF_CLOSE", "true")];
    assert!(!half_closed_client_served(&[], &[]), "default: off");
    assert!(half_closed_client_served(&[], &on), "environment > default");
    assert!(
        !half_closed_client_served(&["--allow-half-close=false"], &on),
        "flag > environment"
    );
    let file = ConfigFile::new("half", "allow-half-close = true\n");
    assert!(
        half_closed_client_served(&["--config", file.path()], &[]),
        "file > default"
    );
    assert!(
        !half_closed_client_served(
            &["--config", file.path()],
            &[("RAGI_ALLOW_HALF_CLOSE", "0")]
        ),
        "environment > file"
    );
    assert!(
        !half_closed_client_served(&["--config", file.path(), "--allow-half-close=no"], &[]),
        "flag > file"
    );
}

/// Runs `ragi probe <args>` with `env`, expecting a usage error: exit status 2, nothing bound.
fn usage_error(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut full = vec!["probe"];
    full.extend_from_slice(args);
    let out = run_to_exit_with(BIN, &full, env, Duration::from_secs(10));
    let st = out
        .status
        .unwrap_or_else(|| panic!("{args:?} {env:?}: did not exit: {}", out.stderr));
    assert_eq!(st.code(), Some(2), "{args:?} {env:?}: {out:?}");
    assert!(!out.stderr.contains("listening on"), "{out:?}");
    out.stderr
}

#[test]
fn errors_name_the_variable() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "RAGI_MAX_BODY_SIZE",
            "12x",
            "RAGI_MAX_BODY_SIZE: \"12x\" is not a number",
        ),
        (
            "RAGI_IDLE_TIMEOUT",
            "soon",
            "RAGI_IDLE_TIMEOUT: \"soon\" is not a number of seconds",
        ),
        (
            "RAGI_LISTEN",
            "127.0.0.1:1,nowhere",
            "RAGI_LISTEN: \"nowhere\" is not an address",
        ),
        (
            "RAGI_ACCESS_LOG",
            "xml",
            "RAGI_ACCESS_LOG: \"xml\" is not one of off, clf, combined, json",
        ),
        (
            "RAGI_ALLOW_HALF_CLOSE",
            "maybe",
            "RAGI_ALLOW_HALF_CLOSE: \"maybe\" is not true or false",
        ),
        (
            "RAGI_WORKERS",
            "4",
            "RAGI_WORKERS: 4 workers: worker processes are not built yet",
        ),
        (
            "RAGI_LOG_LEVEL",
            "lots",
            "RAGI_LOG_LEVEL: \"lots\" is not a log level",
        ),
        ("RUST_LOG", "lots", "RUST_LOG: \"lots\" is not a log level"),
        (
            "RAGI_TLS_CERT",
            "/nonexistent/cert.pem",
            "RAGI_TLS_CERT: \"/nonexistent/cert.pem\": No such file",
        ),
        (
            "RAGI_CONFIG",
            "/nonexistent/ragi.toml",
            "RAGI_CONFIG: cannot read the config file /nonexistent/ragi.toml",
        ),
    ];
    for (var, value, want) in cases {
        let args: &[&str] = if *var == "RAGI_LISTEN" {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let err = usage_error(args, &[(var, value)]);
        assert!(
            err.contains(want),
            "{var}={value}: stderr {err:?} lacks {want:?}"
        );
    }
}

#[test]
fn a_variable_the_flag_overrides_is_not_read() {
    // The flag wins, so the bad variable is never parsed: the server starts.
    let s = Server::start_with(
        &["--max-body-size", "100"],
        &[("RAGI_MAX_BODY_SIZE", "12x")],
    );
    assert_eq!(s.get("/").status, 200);
    // RUST_LOG stands behind RAGI_LOG_LEVEL.
    let s = Server::start_with(&[], &[("RAGI_LOG_LEVEL", "warn"), ("RUST_LOG", "lots")]);
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn errors_name_the_file_and_line() {
    let f = ConfigFile::new(
        "unknown",
        "# ragi\nmax-body-size = 100\n\nlistn = \"127.0.0.1:0\"\n",
    );
    let err = usage_error(&["--config", f.path()], &[]);
    assert!(
        err.contains(&format!(
            "{}:4: unknown key \"listn\" (did you mean \"listen\"?)",
            f.path()
        )),
        "{err}"
    );

    let f = ConfigFile::new("value", "\n\n\n\n\n\nmax-body-size = \"12x\"\n");
    let err = usage_error(&["--config", f.path()], &[]);
    assert!(
        err.contains(&format!(
            "{}:7: max-body-size: \"12x\" is not a number",
            f.path()
        )),
        "{err}"
    );

    let f = ConfigFile::new("syntax", "listen = [\"127.0.0.1:0\"\nserver-header = 1\n");
    let err = usage_error(&["--config", f.path()], &[]);
    assert!(err.contains(&format!("{}:", f.path())), "{err}");

    // Options of the subcommand are keys too; the probe's own included.
    let f = ConfigFile::new("probe", "no-lifecycle = \"perhaps\"\n");
    let err = usage_error(&["--config", f.path()], &[]);
    assert!(
        err.contains(&format!("{}:1: no-lifecycle:", f.path())),
        "{err}"
    );
}

#[test]
fn option_pairs_and_workers_are_checked() {
    let err = usage_error(&["--workers", "2"], &[]);
    assert!(
        err.contains("--workers") && err.contains("not built yet"),
        "{err}"
    );
    let err = usage_error(&["--workers", "0"], &[]);
    assert!(err.contains("--workers"), "{err}");
    // A certificate without its key: named, and nothing is bound.
    let cert = ConfigFile::new("cert", "not a certificate");
    let err = usage_error(&["--listen", "127.0.0.1:0", "--tls-cert", cert.path()], &[]);
    assert!(
        err.contains("--tls-cert is set but --tls-key is not"),
        "{err}"
    );
    // `--workers 1` is accepted.
    let s = Server::start(&["--workers", "1"]);
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn help_lists_every_option_with_its_variable() {
    let out = run_to_exit(&["probe", "--help"], Duration::from_secs(10));
    assert_eq!(out.status.and_then(|s| s.code()), Some(0), "{out:?}");
    let help = out.stdout;
    // Every option in the help, and the environment variable in its entry.
    let mut options = Vec::new();
    let lines: Vec<&str> = help.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let Some(rest) = t.strip_prefix("--") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '-')
            .collect();
        if name == "help" || name.is_empty() {
            continue;
        }
        let var = format!(
            "[env: RAGI_{}=",
            name.to_ascii_uppercase().replace('-', "_")
        );
        let entry_end = lines[i + 1..]
            .iter()
            .position(|l| l.trim_start().starts_with("--") || l.trim_start().starts_with("-h"))
            .map_or(lines.len(), |p| i + 1 + p);
        assert!(
            lines[i..entry_end].iter().any(|l| l.contains(&var)),
            "--{name}: no {var}] in its help entry"
        );
        options.push(name);
    }
    for want in [
        "listen",
        "unix-socket-mode",
        "max-connections",
        "tls-cert",
        "tls-key",
        "tls-client-ca",
        "tls-client-auth",
        "max-body-size",
        "max-header-size",
        "max-headers",
        "idle-timeout",
        "keepalive-timeout",
        "request-timeout",
        "write-timeout",
        "shutdown-timeout",
        "server-header",
        "allow-half-close",
        "access-log",
        "sse-idle-timeout",
        "ws-idle-timeout",
        "ws-max-message-size",
        "ws-max-queue",
        "ws-no-compression",
        "log-level",
        "log-format",
        "workers",
        "config",
        "no-lifecycle",
        "fail-startup",
        "notices",
        "request-head-timeout",
        "min-request-rate",
        "min-request-rate-grace",
        "no-reset-timedout-connection",
    ] {
        assert!(
            options.iter().any(|o| o == want),
            "--{want} not in --help: {options:?}"
        );
    }
    assert!(help.contains("RUST_LOG"), "--log-level mentions RUST_LOG");
}

#[test]
fn version_prints_the_version() {
    let out = run_to_exit(&["--version"], Duration::from_secs(10));
    assert_eq!(out.status.and_then(|s| s.code()), Some(0), "{out:?}");
    assert_eq!(
        out.stdout.trim(),
        format!("ragi {}", env!("CARGO_PKG_VERSION"))
    );
}

/// Waits (bounded) for `want` among the child's stderr lines.
fn wait_line(rx: &mpsc::Receiver<String>, want: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    while !seen.iter().any(|l| l == want) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("no {want:?} line; stderr: {seen:#?}"),
        }
    }
}

#[test]
fn serves_on_a_unix_socket_and_removes_it_at_shutdown() {
    let path = std::env::temp_dir().join(format!("ragi-cli-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listen = format!("unix:{}", path.display());
    let mut child = hermetic(BIN, &[("RAGI_LISTEN", listen.as_str())])
        .args(["probe", "--log-format", "plain"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines() {
            if tx.send(l.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    wait_line(&rx, &format!("listening on {listen}"), &mut seen);

    let mut c = UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = Vec::new();
    c.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("Hello, World!"), "{text}");
    drop(c);

    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
    assert!(!path.exists(), "the socket file is removed at shutdown");
}
