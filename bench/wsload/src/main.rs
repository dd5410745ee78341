//! WebSocket echo load generator (workload WS of the ragi benchmarks).
//!
//! Opens `--connections` WebSocket sessions (TCP_NODELAY), waits until every handshake is
//! done, then for `--duration` each session keeps `--window` binary messages of `--size`
//! bytes in flight: it sends `window` messages, and for every echo it receives it sends one
//! more. With window 1 that is: send, wait for the echo, repeat.
//!
//! The client side is deliberately cheap, so that the server and not the load generator is
//! the bottleneck on a 2-core machine (a tokio-tungstenite client used about as much CPU as
//! the echo server it measured): the handshake (RFC 6455 §4.1, `sec-websocket-accept`
//! checked with tungstenite's `derive_accept_key`) and the frames are written and parsed here.
//! Client frames are masked as the RFC requires, with one fixed random key per session; the
//! constant part of the payload is masked once per session, only the first 16 bytes per
//! message. The echoes that one read brings are answered with one write, and writes never
//! block reading (one readiness loop per session).
//!
//! Each message carries its send time (bytes 0..8, ns since the loader started) and its
//! number within the session (bytes 8..16); the rest is `x`. An echo must come back
//! byte-for-byte and in order (fragmented echoes are reassembled), or the run fails. Counted:
//! echoes received before the deadline; round-trip time = receive time − the send time in the
//! echo. After the deadline no new messages are sent, the ones in flight are drained, and
//! each session ends with a close handshake.
//!
//! The last line is machine-readable:
//!
//! ```text
//! wsload: connections 100 size 64 window 1 duration_s 8.000 messages N msgs_per_s R p50_us A p90_us B p99_us C max_us D errors E
//! ```
//!
//! `--check` instead opens one session, echoes one 64-byte message and exits: 0 when that
//! worked, 3 when the server answered the handshake with something other than 101 (not a
//! WebSocket server), 2 for any other failure.
//!
//! Runs on a current-thread runtime: the harness pins it to one CPU.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

struct Opts {
    url: String,
    connections: usize,
    size: usize,
    window: usize,
    duration: Duration,
    check: bool,
    timeout: Duration,
}

const USAGE: &str =
    "usage: wsload --url ws://HOST:PORT/PATH [-c CONNECTIONS (100)] [--size BYTES (64)] \
[--window N (1)] [--duration 8s] [--timeout 10s] [--check]";

fn usage(msg: &str) -> ! {
    eprintln!("wsload: {msg}\n{USAGE}");
    std::process::exit(2);
}

/// `8`, `8s`, `500ms`, `1m`, `1.5s`.
fn parse_duration(s: &str) -> Option<Duration> {
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v * mult))
}

fn parse_args() -> Opts {
    let mut o = Opts {
        url: String::new(),
        connections: 100,
        size: 64,
        window: 1,
        duration: Duration::from_secs(8),
        check: false,
        timeout: Duration::from_secs(10),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut val = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--url" => o.url = val("--url"),
            "-c" | "--connections" => {
                o.connections = val("-c")
                    .parse()
                    .unwrap_or_else(|_| usage("bad --connections"))
            }
            "--size" => {
                o.size = val("--size")
                    .parse()
                    .unwrap_or_else(|_| usage("bad --size"))
            }
            "--window" => {
                o.window = val("--window")
                    .parse()
                    .unwrap_or_else(|_| usage("bad --window"))
            }
            "-d" | "--duration" => {
                o.duration =
                    parse_duration(&val("--duration")).unwrap_or_else(|| usage("bad --duration"))
            }
            "--timeout" => {
                o.timeout =
                    parse_duration(&val("--timeout")).unwrap_or_else(|| usage("bad --timeout"))
            }
            "--check" => o.check = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    if o.url.is_empty() {
        usage("--url is required");
    }
    if o.size < 16 {
        usage("--size must be at least 16 (the message carries a timestamp and a number)");
    }
    if o.connections == 0 || o.window == 0 {
        usage("--connections and --window must be positive");
    }
    o
}

/// (host:port, path) of a ws:// URL.
fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("only ws:// URLs are supported, got {url:?}"))?;
    let (hp, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let hp = if hp.contains(':') {
        hp.to_string()
    } else {
        format!("{hp}:80")
    };
    Ok((hp, path.to_string()))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A session after the handshake: the socket and any bytes read past the response head.
struct Session {
    tcp: TcpStream,
    rbuf: Vec<u8>,
}

/// Connects and does the handshake. Err((true, ..)) = the server answered, but not with 101.
async fn connect(addr: &str, path: &str, timeout: Duration) -> Result<Session, (bool, String)> {
    let fut = async {
        let mut tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| (false, format!("connect {addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let key = tungstenite::handshake::client::generate_key();
        let req = format!(
            "GET {path} HTTP/1.1\r\nhost: {addr}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n\r\n"
        );
        tcp.write_all(req.as_bytes())
            .await
            .map_err(|e| (false, format!("write: {e}")))?;
        let mut rbuf = Vec::with_capacity(64 * 1024);
        let end = loop {
            if let Some(i) = find(&rbuf, b"\r\n\r\n") {
                break i + 4;
            }
            match tcp.read_buf(&mut rbuf).await {
                Ok(0) => return Err((false, "server closed during the handshake".to_string())),
                Ok(_) => {}
                Err(e) => return Err((false, format!("read: {e}"))),
            }
        };
        let head = String::from_utf8_lossy(&rbuf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap_or("")
            .split(' ')
            .nth(1)
            .unwrap_or("")
            .to_string();
        if status != "101" {
            return Err((
                true,
                format!("handshake answered with HTTP {status} instead of 101"),
            ));
        }
        let want = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let accept = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case("sec-websocket-accept"))
            .map(|(_, v)| v.trim().to_string());
        if accept.as_deref() != Some(want.as_str()) {
            return Err((
                false,
                format!("bad sec-websocket-accept {accept:?}, want {want:?}"),
            ));
        }
        rbuf.drain(..end);
        Ok(Session { tcp, rbuf })
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err((false, format!("handshake not done within {timeout:?}"))),
    }
}

/// Builds masked client frames for one session.
struct Framer {
    key: [u8; 4],
    /// Header (FIN + binary, mask bit, length, masking key) of a data message.
    header: Vec<u8>,
    /// The payload after byte 16, masked (its offset 16 is a multiple of 4).
    tail_masked: Vec<u8>,
}

impl Framer {
    fn new(size: usize, seed: u64) -> Self {
        // Any key is valid; a fixed per-session pseudo-random one (splitmix64).
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let key = ((z ^ (z >> 31)) as u32 | 1).to_be_bytes();
        let header = frame_header(0x2, size, key);
        let tail_masked = (16..size).map(|i| b'x' ^ key[i % 4]).collect();
        Self {
            key,
            header,
            tail_masked,
        }
    }

    /// Appends one data frame carrying `sent_ns` and `seq` to `out`.
    fn push(&self, out: &mut Vec<u8>, sent_ns: u64, seq: u64) {
        out.extend_from_slice(&self.header);
        let mut head = [0u8; 16];
        head[..8].copy_from_slice(&sent_ns.to_le_bytes());
        head[8..].copy_from_slice(&seq.to_le_bytes());
        for (i, b) in head.iter_mut().enumerate() {
            *b ^= self.key[i % 4];
        }
        out.extend_from_slice(&head);
        out.extend_from_slice(&self.tail_masked);
    }

    /// Appends a masked control frame (pong, close).
    fn push_control(&self, out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
        out.extend_from_slice(&frame_header(opcode, payload.len(), self.key));
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ self.key[i % 4]));
    }
}

fn frame_header(opcode: u8, len: usize, key: [u8; 4]) -> Vec<u8> {
    let mut h = vec![0x80 | opcode];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if len <= 0xffff {
        h.push(0x80 | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&(len as u64).to_be_bytes());
    }
    h.extend_from_slice(&key);
    h
}

/// One server frame: (fin, opcode, payload range in the buffer, total frame length).
type Frame = (bool, u8, std::ops::Range<usize>, usize);

fn parse_frame(buf: &[u8]) -> Result<Option<Frame>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (fin, opcode) = (buf[0] & 0x80 != 0, buf[0] & 0x0f);
    if buf[1] & 0x80 != 0 {
        return Err("the server sent a masked frame".into());
    }
    let (len, hlen) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return Ok(None),
        n => (n as usize, 2),
    };
    if buf.len() < hlen + len {
        return Ok(None);
    }
    Ok(Some((fin, opcode, hlen..hlen + len, hlen + len)))
}

#[derive(Default)]
struct ConnResult {
    count: u64,
    samples: Vec<u64>,
    error: Option<String>,
}

/// One session's measured phase. `t0` is the loader's clock origin; echoes received after
/// `deadline` are not counted and not replaced.
async fn run_session(
    mut s: Session,
    size: usize,
    window: usize,
    seed: u64,
    t0: Instant,
    deadline: Instant,
    timeout: Duration,
) -> ConnResult {
    let mut res = ConnResult {
        samples: Vec::with_capacity(1 << 14),
        ..Default::default()
    };
    match session_loop(&mut s, size, window, seed, t0, deadline, timeout, &mut res).await {
        Ok(()) => {}
        Err(e) => res.error = Some(e),
    }
    res
}

#[allow(clippy::too_many_arguments)]
async fn session_loop(
    s: &mut Session,
    size: usize,
    window: usize,
    seed: u64,
    t0: Instant,
    deadline: Instant,
    timeout: Duration,
    res: &mut ConnResult,
) -> Result<(), String> {
    let framer = Framer::new(size, seed);
    let ns = |t: Instant| t.duration_since(t0).as_nanos() as u64;
    let expected_tail = vec![b'x'; size - 16];
    let mut wbuf = Vec::with_capacity((size + 16) * window + 64);
    let mut next_seq = 0u64;
    let mut expect_seq = 0u64;
    let mut inflight = 0usize;
    let mut fragments: Option<Vec<u8>> = None;
    let now = ns(Instant::now());
    // The first `window` messages; the loop below writes them.
    for _ in 0..window {
        framer.push(&mut wbuf, now, next_seq);
        next_seq += 1;
        inflight += 1;
    }
    // One event loop per session: never block on a write while echoes wait to be read (with
    // big messages and a window, a blocking write could stall both sides until the socket
    // buffers grow).
    let mut wpos = 0usize;
    let mut pos = 0;
    loop {
        // Handle every complete frame in the buffer.
        while let Some((fin, opcode, range, total)) = parse_frame(&s.rbuf[pos..])? {
            let payload = &s.rbuf[pos + range.start..pos + range.end];
            let message: Option<Vec<u8>>;
            let data: &[u8] = match (opcode, fin, fragments.is_some()) {
                (0x2, true, false) => payload,
                (0x2, false, false) => {
                    fragments = Some(payload.to_vec());
                    pos += total;
                    continue;
                }
                (0x0, _, true) => {
                    let f = fragments.as_mut().unwrap();
                    f.extend_from_slice(payload);
                    if !fin {
                        pos += total;
                        continue;
                    }
                    message = fragments.take();
                    message.as_deref().unwrap()
                }
                (0x9, _, _) => {
                    let p = payload.to_vec();
                    framer.push_control(&mut wbuf, 0xA, &p);
                    pos += total;
                    continue;
                }
                (0xA, _, _) => {
                    pos += total;
                    continue;
                }
                (0x8, _, _) => return Err(format!("the server sent a close frame {payload:?}")),
                (op, _, _) => return Err(format!("unexpected frame opcode {op:#x} (fin {fin})")),
            };
            let now = Instant::now();
            if data.len() != size
                || data[8..16] != expect_seq.to_le_bytes()
                || data[16..] != expected_tail[..]
            {
                return Err(format!("echo {expect_seq} does not match what was sent"));
            }
            let sent = u64::from_le_bytes(data[0..8].try_into().unwrap());
            pos += total;
            expect_seq += 1;
            inflight -= 1;
            if now <= deadline {
                let now_ns = ns(now);
                res.count += 1;
                res.samples.push(now_ns.saturating_sub(sent));
                framer.push(&mut wbuf, now_ns, next_seq);
                next_seq += 1;
                inflight += 1;
            }
        }
        if pos > 0 {
            s.rbuf.drain(..pos);
            pos = 0;
        }
        // Write what we can without waiting.
        while wpos < wbuf.len() {
            match s.tcp.try_write(&wbuf[wpos..]) {
                Ok(n) => wpos += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        if wpos == wbuf.len() {
            wbuf.clear();
            wpos = 0;
            if inflight == 0 {
                break;
            }
        }
        let interest = if wbuf.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        let ready = match tokio::time::timeout(timeout, s.tcp.ready(interest)).await {
            Err(_) => return Err(format!("no progress within {timeout:?}")),
            Ok(Err(e)) => return Err(format!("poll: {e}")),
            Ok(Ok(r)) => r,
        };
        if ready.is_readable() || ready.is_read_closed() {
            if s.rbuf.capacity() - s.rbuf.len() < size + 64 {
                s.rbuf.reserve(size + 64 * 1024);
            }
            match s.tcp.try_read_buf(&mut s.rbuf) {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
    // Close handshake: send close 1000, wait (bounded) for the server's close or EOF.
    framer.push_control(&mut wbuf, 0x8, &1000u16.to_be_bytes());
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        if s.tcp.write_all(&wbuf).await.is_err() {
            return;
        }
        loop {
            while let Ok(Some((_, opcode, _, total))) = parse_frame(&s.rbuf) {
                if opcode == 0x8 {
                    return;
                }
                s.rbuf.drain(..total);
            }
            match s.tcp.read_buf(&mut s.rbuf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    let _ = s.tcp.shutdown().await;
    Ok(())
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

async fn check(o: &Opts, addr: &str, path: &str) -> i32 {
    let timeout = o.timeout.min(Duration::from_secs(5));
    let s = match connect(addr, path, timeout).await {
        Ok(s) => s,
        Err((answered, why)) => {
            eprintln!("wsload --check: {why}");
            return if answered { 3 } else { 2 };
        }
    };
    // A deadline in the past: one echo, nothing counted, then the close handshake.
    let t0 = Instant::now();
    let r = run_session(s, 64, 1, 0, t0, t0, timeout).await;
    if let Some(e) = r.error {
        eprintln!("wsload --check: {e}");
        return 2;
    }
    eprintln!("wsload --check: {} echoes a 64-byte binary message", o.url);
    0
}

async fn run(o: Opts) -> i32 {
    let (addr, path) = match split_url(&o.url) {
        Ok(a) => a,
        Err(e) => usage(&e),
    };
    if o.check {
        return check(&o, &addr, &path).await;
    }
    // Phase 1: all handshakes.
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<(), String>>(o.connections);
    let (start_tx, start_rx) = watch::channel::<Option<Instant>>(None);
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(o.connections);
    for i in 0..o.connections {
        let (addr, path, ready_tx, mut start_rx) = (
            addr.clone(),
            path.clone(),
            ready_tx.clone(),
            start_rx.clone(),
        );
        let (size, window, timeout) = (o.size, o.window, o.timeout);
        handles.push(tokio::spawn(async move {
            let s = match connect(&addr, &path, timeout).await {
                Ok(s) => s,
                Err((_, why)) => {
                    let _ = ready_tx.send(Err(why)).await;
                    return None;
                }
            };
            let _ = ready_tx.send(Ok(())).await;
            drop(ready_tx);
            let deadline = loop {
                if let Some(deadline) = *start_rx.borrow_and_update() {
                    break deadline;
                }
                if start_rx.changed().await.is_err() {
                    return None;
                }
            };
            Some(run_session(s, size, window, i as u64, t0, deadline, timeout).await)
        }));
    }
    drop(ready_tx);
    let mut connected = 0usize;
    let setup_deadline = Instant::now() + o.timeout.max(Duration::from_secs(10));
    while connected < o.connections {
        match tokio::time::timeout_at(setup_deadline.into(), ready_rx.recv()).await {
            Ok(Some(Ok(()))) => connected += 1,
            Ok(Some(Err(why))) => {
                eprintln!("wsload: a connection failed: {why}");
                return 1;
            }
            Ok(None) | Err(_) => {
                eprintln!(
                    "wsload: only {connected} of {} connections were ready in time",
                    o.connections
                );
                return 1;
            }
        }
    }
    // Phase 2: measure.
    let deadline = Instant::now() + o.duration;
    let _ = start_tx.send(Some(deadline));
    let mut count = 0u64;
    let mut errors = 0u64;
    let mut first_error = None;
    let mut samples = Vec::new();
    for h in handles {
        match h.await {
            Ok(Some(r)) => {
                count += r.count;
                if let Some(e) = r.error {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
                samples.extend(r.samples);
            }
            Ok(None) => errors += 1,
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(format!("task: {e}"));
            }
        }
    }
    let secs = o.duration.as_secs_f64();
    samples.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    let rate = count as f64 / secs;
    let (p50, p90, p99, max) = (
        us(percentile(&samples, 0.50)),
        us(percentile(&samples, 0.90)),
        us(percentile(&samples, 0.99)),
        us(samples.last().copied().unwrap_or(0)),
    );
    println!(
        "{} connections, {} B binary messages, window {}, {secs:.3} s: {count} echoes, {rate:.0} msgs/s, \
         RTT p50 {p50:.1} µs, p90 {p90:.1} µs, p99 {p99:.1} µs, max {max:.1} µs, {errors} errors",
        o.connections, o.size, o.window,
    );
    if let Some(e) = &first_error {
        println!("first error: {e}");
    }
    println!(
        "wsload: connections {} size {} window {} duration_s {secs:.3} messages {count} msgs_per_s {rate:.1} \
         p50_us {p50:.1} p90_us {p90:.1} p99_us {p99:.1} max_us {max:.1} errors {errors}",
        o.connections, o.size, o.window,
    );
    i32::from(errors > 0 || count == 0)
}

fn main() {
    let o = parse_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build tokio runtime");
    std::process::exit(rt.block_on(run(o)));
}
