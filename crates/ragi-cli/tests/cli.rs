//! Command-line behaviour of `ragi probe`: wrong values are rejected naming the flag, the
//! startup line, access logs.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn wrong_flag_values_are_rejected_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--idle-timeout", "abc"], "--idle-timeout"),
        (&["--idle-timeout=-1"], "--idle-timeout"),
        (&["--keepalive-timeout", "soon"], "--keepalive-timeout"),
        (&["--keepalive-timeout=-0.5"], "--keepalive-timeout"),
        (&["--request-timeout", "x1"], "--request-timeout"),
        (&["--write-timeout", "NaN"], "--write-timeout"),
        (&["--write-timeout", "inf"], "--write-timeout"),
        (&["--shutdown-timeout", "later"], "--shutdown-timeout"),
        (&["--max-body-size", "ten"], "--max-body-size"),
        (&["--max-body-size=-1"], "--max-body-size"),
        (&["--max-header-size", "8k!"], "--max-header-size"),
        (&["--max-headers", "many"], "--max-headers"),
        (&["--max-headers=-3"], "--max-headers"),
        (&["--max-connections", "lots"], "--max-connections"),
        (&["--listen", "not-an-address"], "--listen"),
        (&["--listen", "127.0.0.1:99999"], "--listen"),
        (&["--access-log", "xml"], "--access-log"),
    ];
    let mut failures = Vec::new();
    for (args, flag) in cases {
        let mut full = vec!["probe", "--listen", "127.0.0.1:0"];
        if args[0] == "--listen" {
            full.truncate(1);
        }
        full.extend_from_slice(args);
        let out = run_to_exit(&full, Duration::from_secs(10));
        match out.status {
            None => failures.push(format!(
                "{args:?}: did not exit within 10 s (it started?) stderr: {}",
                out.stderr
            )),
            Some(st) if st.success() => {
                failures.push(format!("{args:?}: exit status 0; stderr: {}", out.stderr))
            }
            Some(_) if !out.stderr.contains(flag) => failures.push(format!(
                "{args:?}: stderr does not name {flag}: {:?}",
                out.stderr
            )),
            Some(st) => eprintln!(
                "{args:?} → {st:?}: {}",
                out.stderr.lines().next().unwrap_or("")
            ),
        }
    }
    assert!(
        failures.is_empty(),
        "wrong flag values not rejected properly:\n{}",
        failures.join("\n")
    );
}

#[test]
fn unknown_flag_is_rejected() {
    let out = run_to_exit(
        &["probe", "--listen", "127.0.0.1:0", "--no-such-flag"],
        Duration::from_secs(10),
    );
    let st = out
        .status
        .unwrap_or_else(|| panic!("did not exit: {}", out.stderr));
    assert!(!st.success(), "{out:?}");
    assert!(out.stderr.contains("--no-such-flag"), "{out:?}");
}

#[test]
fn fractional_and_zero_values_are_accepted() {
    let s = Server::start(&[
        "--idle-timeout",
        "0.25",
        "--keepalive-timeout",
        "0",
        "--request-timeout",
        "1.5",
        "--write-timeout",
        "0.75",
        "--shutdown-timeout",
        "0",
        "--max-body-size",
        "0",
    ]);
    let r = s.get("/");
    assert_eq!(r.status, 200, "{r}");
}

#[test]
fn listening_line_is_exact_and_port_is_real() {
    let s = Server::start(&[]);
    let line = format!("listening on http://{}", s.addr());
    assert!(
        s.stderr_text().lines().any(|l| l == line),
        "stderr: {}",
        s.stderr_text()
    );
    assert_ne!(s.addr().port(), 0);
    assert_eq!(s.get("/").status, 200);
}

fn wait_for_log_line(s: &Server, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let found = poll_until_opt(Duration::from_secs(3), || {
        s.output_lines().into_iter().find(|l| pred(l))
    });
    found.unwrap_or_else(|| {
        panic!(
            "no {what} access-log line; output:\n{}",
            s.output_lines().join("\n")
        )
    })
}

#[test]
fn access_log_clf() {
    let s = Server::start(&["--access-log", "clf"]);
    let mut c = s.connect();
    c.send(format!(
        "GET /?clf=1 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        s.hostport()
    ));
    assert_eq!(c.read_response().status, 200);
    let line = wait_for_log_line(&s, "CLF", |l| l.contains("\"GET /?clf=1 HTTP/1.1\" 200 13"));
    assert!(
        line.starts_with("127.0.0.1 "),
        "CLF starts with the client address: {line}"
    );
    assert!(
        line.contains(" [") && line.contains("] "),
        "CLF has a [date]: {line}"
    );
}

#[test]
fn access_log_combined() {
    let s = Server::start(&["--access-log", "combined"]);
    let mut c = s.connect();
    c.send(format!(
        "GET /?comb=1 HTTP/1.1\r\nHost: {}\r\nReferer: http://ref.example/\r\nUser-Agent: ragi-test-agent/1.0\r\nConnection: close\r\n\r\n",
        s.hostport()
    ));
    assert_eq!(c.read_response().status, 200);
    let line = wait_for_log_line(&s, "combined", |l| {
        l.contains("\"GET /?comb=1 HTTP/1.1\" 200 13")
    });
    assert!(
        line.contains("\"http://ref.example/\" \"ragi-test-agent/1.0\""),
        "combined ends with quoted referer and user agent: {line}"
    );
}

#[test]
fn access_log_json() {
    let s = Server::start(&["--access-log", "json"]);
    let mut c = s.connect();
    c.send(format!(
        "GET /nope-json HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        s.hostport()
    ));
    assert_eq!(c.read_response().status, 404);
    let line = wait_for_log_line(&s, "JSON", |l| {
        l.contains("/nope-json") && l.trim_start().starts_with('{')
    });
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {line}"));
    let has = |pred: &dyn Fn(&serde_json::Value) -> bool| obj.values().any(pred);
    assert!(has(&|x| x == 404 || x == "404"), "status 404 in {line}");
    // The method: its own field or inside a request-line field.
    assert!(
        has(&|x| x == "GET" || x.as_str().is_some_and(|s| s.starts_with("GET /nope-json"))),
        "method in {line}"
    );
}

/// Lifespan start-up failure: exit status 1, the message on stderr, no listening line.
#[test]
fn lifespan_startup_failure_exits_1_with_the_message() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ragi"))
        .args([
            "probe",
            "--listen",
            "127.0.0.1:0",
            "--fail-startup",
            "database unreachable",
        ])
        .output()
        .expect("run ragi");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("database unreachable"), "stderr: {stderr}");
    assert!(
        !stderr.contains("listening on"),
        "announced before start-up completed: {stderr}"
    );
}
