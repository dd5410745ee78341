//! SSE fan-out load generator (workload SSE of the ragi benchmarks).
//!
//! 1. Opens `--subscribers` connections (raw TCP, TCP_NODELAY, at most 64 handshakes at a
//!    time) with `GET /events` and `accept: text/event-stream`; each one checks for a 200
//!    `text/event-stream` response and waits for the server's `: ready` comment. Then the
//!    loader polls `GET /subscribers` until the server counts them all.
//! 2. Runs `--bursts` rounds: `POST /publish?n=EVENTS&interval_us=U` makes the server
//!    broadcast EVENTS events; the loader waits until every subscriber has parsed every event
//!    of the round, then pauses `--pause-ms` so the next round starts on an idle server.
//! 3. Each event's data is `"SEQ TS"`, TS = the server's publish time in ns since the UNIX
//!    epoch (same machine, same clock). Delivery latency = the time the subscriber parsed the
//!    event (SystemTime) − TS. A round's span = its last delivery − its first publish; delivered
//!    events/s = all events delivered ÷ the sum of the spans. Gaps in SEQ count as lost.
//!
//! Responses may be chunked (HTTP/1.1 streaming) or close-delimited; both are decoded. The
//! last line is machine-readable:
//!
//! ```text
//! sseload: subscribers 1000 events 100 bursts 20 interval_us 0 delivered D expected X lost L events_per_s R span_p50_ms S p50_us A p90_us B p99_us C max_us M errors E
//! ```
//!
//! Runs on a current-thread runtime: the harness pins it to one CPU.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify, Semaphore};

const USAGE: &str = "usage: sseload --addr HOST:PORT [-c SUBSCRIBERS (1000)] [--events N (100)] \
[--bursts B (20)] [--interval-us U (0)] [--pause-ms P (100)] [--timeout 30s]";

struct Opts {
    addr: String,
    subscribers: usize,
    events: u64,
    bursts: usize,
    interval_us: u64,
    pause: Duration,
    timeout: Duration,
}

fn usage(msg: &str) -> ! {
    eprintln!("sseload: {msg}\n{USAGE}");
    std::process::exit(2);
}

fn parse_duration(s: &str) -> Option<Duration> {
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v * mult))
}

fn parse_args() -> Opts {
    let mut o = Opts {
        addr: String::new(),
        subscribers: 1000,
        events: 100,
        bursts: 20,
        interval_us: 0,
        pause: Duration::from_millis(100),
        timeout: Duration::from_secs(30),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut val = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--addr" => {
                let a = val("--addr");
                o.addr = a
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_string();
            }
            "-c" | "--subscribers" => {
                o.subscribers = val("-c")
                    .parse()
                    .unwrap_or_else(|_| usage("bad --subscribers"))
            }
            "--events" => {
                o.events = val("--events")
                    .parse()
                    .unwrap_or_else(|_| usage("bad --events"))
            }
            "--bursts" => {
                o.bursts = val("--bursts")
                    .parse()
                    .unwrap_or_else(|_| usage("bad --bursts"))
            }
            "--interval-us" => {
                o.interval_us = val("--interval-us")
                    .parse()
                    .unwrap_or_else(|_| usage("bad --interval-us"))
            }
            "--pause-ms" => {
                o.pause = Duration::from_millis(
                    val("--pause-ms")
                        .parse()
                        .unwrap_or_else(|_| usage("bad --pause-ms")),
                )
            }
            "--timeout" => {
                o.timeout =
                    parse_duration(&val("--timeout")).unwrap_or_else(|| usage("bad --timeout"))
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    if o.addr.is_empty() {
        usage("--addr is required");
    }
    if o.subscribers == 0 || o.events == 0 || o.bursts == 0 {
        usage("--subscribers, --events and --bursts must be positive");
    }
    o
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A parsed response head.
struct Head {
    status: u16,
    chunked: bool,
    content_type: String,
    content_length: Option<usize>,
}

fn parse_head(head: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut h = Head {
        status,
        chunked: false,
        content_type: String::new(),
        content_length: None,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "transfer-encoding" => h.chunked = value.to_ascii_lowercase().contains("chunked"),
            "content-type" => h.content_type = value.to_ascii_lowercase(),
            "content-length" => h.content_length = value.parse().ok(),
            _ => {}
        }
    }
    Ok(h)
}

/// Incremental `transfer-encoding: chunked` decoder (or a pass-through).
enum Chunk {
    Size,
    Data(usize),
    DataEnd,
    Done,
}

struct BodyDecoder {
    chunked: bool,
    state: Chunk,
}

impl BodyDecoder {
    fn new(chunked: bool) -> Self {
        Self {
            chunked,
            state: Chunk::Size,
        }
    }

    fn done(&self) -> bool {
        matches!(self.state, Chunk::Done)
    }

    /// Moves the decoded bytes of `raw` to `out`, keeping an incomplete tail in `raw`.
    fn decode(&mut self, raw: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<(), String> {
        if !self.chunked {
            out.extend_from_slice(raw);
            raw.clear();
            return Ok(());
        }
        let mut pos = 0;
        loop {
            match self.state {
                Chunk::Size => {
                    let Some(i) = find(&raw[pos..], b"\r\n") else {
                        break;
                    };
                    let line = &raw[pos..pos + i];
                    let hex = line.split(|&b| b == b';').next().unwrap_or(b"");
                    let hex = std::str::from_utf8(hex).map_err(|_| "bad chunk size".to_string())?;
                    let size = usize::from_str_radix(hex.trim(), 16)
                        .map_err(|_| format!("bad chunk size {hex:?}"))?;
                    pos += i + 2;
                    self.state = if size == 0 {
                        Chunk::Done
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::Data(rem) => {
                    let avail = raw.len() - pos;
                    if avail == 0 {
                        break;
                    }
                    let take = rem.min(avail);
                    out.extend_from_slice(&raw[pos..pos + take]);
                    pos += take;
                    self.state = if take == rem {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(rem - take)
                    };
                }
                Chunk::DataEnd => {
                    if raw.len() - pos < 2 {
                        break;
                    }
                    if &raw[pos..pos + 2] != b"\r\n" {
                        return Err("chunk data not followed by CRLF".into());
                    }
                    pos += 2;
                    self.state = Chunk::Size;
                }
                Chunk::Done => break,
            }
        }
        raw.drain(..pos);
        Ok(())
    }
}

/// Counters shared by the subscribers and the controller (one thread: the atomics are cheap).
struct Shared {
    delivered: AtomicU64,
    target: AtomicU64,
    first_pub: AtomicU64,
    last_recv: AtomicU64,
    lost: AtomicU64,
    bad: AtomicU64,
    all_in: Notify,
}

/// A one-shot request on its own connection (`connection: close`): (status, decoded body).
async fn request(addr: &str, method: &str, target: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let req = format!(
        "{method} {target} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let end = find(&raw, b"\r\n\r\n").ok_or("no complete response head")? + 4;
    let head = parse_head(&raw[..end])?;
    let mut body_raw = raw[end..].to_vec();
    if let (false, Some(n)) = (head.chunked, head.content_length) {
        body_raw.truncate(n);
    }
    let mut body = Vec::new();
    BodyDecoder::new(head.chunked).decode(&mut body_raw, &mut body)?;
    Ok((head.status, String::from_utf8_lossy(&body).into_owned()))
}

/// One subscriber: connect, wait for `: ready`, then parse events until told to stop.
/// Returns its latency samples (ns).
async fn subscriber(
    addr: String,
    shared: Arc<Shared>,
    gate: Arc<Semaphore>,
    ready_tx: mpsc::Sender<Result<(), String>>,
    mut stop: watch::Receiver<bool>,
) -> Result<Vec<u64>, String> {
    let permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
    let fail = |why: String| {
        let tx = ready_tx.clone();
        async move {
            let _ = tx.send(Err(why.clone())).await;
            Err::<Vec<u64>, String>(why)
        }
    };
    let mut s = match TcpStream::connect(&addr).await {
        Ok(s) => s,
        Err(e) => return fail(format!("connect {addr}: {e}")).await,
    };
    let _ = s.set_nodelay(true);
    let req = format!("GET /events HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n\r\n");
    if let Err(e) = s.write_all(req.as_bytes()).await {
        return fail(format!("write: {e}")).await;
    }
    let mut raw: Vec<u8> = Vec::with_capacity(16 * 1024);
    let head_end = loop {
        if let Some(i) = find(&raw, b"\r\n\r\n") {
            break i + 4;
        }
        if raw.len() > 64 * 1024 {
            return fail("response head larger than 64 KiB".into()).await;
        }
        match s.read_buf(&mut raw).await {
            Ok(0) => return fail("server closed before the response head".into()).await,
            Ok(_) => {}
            Err(e) => return fail(format!("read: {e}")).await,
        }
    };
    let head = match parse_head(&raw[..head_end]) {
        Ok(h) => h,
        Err(e) => return fail(e).await,
    };
    if head.status != 200 || !head.content_type.starts_with("text/event-stream") {
        return fail(format!(
            "GET /events answered {} with content-type {:?}",
            head.status, head.content_type
        ))
        .await;
    }
    raw.drain(..head_end);
    let mut body = BodyDecoder::new(head.chunked);
    let mut text: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut data: Vec<u8> = Vec::new(); // the current event's data
    let mut has_data = false;
    let mut ready = false;
    let mut permit = Some(permit);
    let mut expect: Option<u64> = None;
    let mut samples = Vec::with_capacity(4096);
    loop {
        if let Err(e) = body.decode(&mut raw, &mut text) {
            return fail(e).await;
        }
        // Parse complete lines: `data:` lines build the event, a blank line dispatches it.
        let mut start = 0;
        while let Some(i) = text[start..].iter().position(|&b| b == b'\n') {
            let mut line = &text[start..start + i];
            start += i + 1;
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.is_empty() {
                if has_data {
                    let now = now_ns();
                    let parsed = std::str::from_utf8(&data).ok().and_then(|d| {
                        let (a, b) = d.split_once(' ')?;
                        Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
                    });
                    match parsed {
                        Some((seq, ts)) => {
                            samples.push(now.saturating_sub(ts));
                            shared.first_pub.fetch_min(ts, Ordering::Relaxed);
                            shared.last_recv.fetch_max(now, Ordering::Relaxed);
                            if let Some(e) = expect {
                                if seq > e {
                                    shared.lost.fetch_add(seq - e, Ordering::Relaxed);
                                }
                            }
                            expect = Some(seq + 1);
                        }
                        None => {
                            shared.bad.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let d = shared.delivered.fetch_add(1, Ordering::Relaxed) + 1;
                    if d == shared.target.load(Ordering::Relaxed) {
                        shared.all_in.notify_one();
                    }
                }
                data.clear();
                has_data = false;
            } else if line[0] == b':' {
                if line[1..].trim_ascii() == b"ready" && !ready {
                    ready = true;
                    permit = None;
                    let _ = ready_tx.send(Ok(())).await;
                }
            } else if let Some(v) = line.strip_prefix(b"data:") {
                let v = v.strip_prefix(b" ").unwrap_or(v);
                if has_data {
                    data.push(b'\n');
                }
                data.extend_from_slice(v);
                has_data = true;
            } // other fields (event:, id:, retry:) are not used here
        }
        text.drain(..start);
        if body.done() {
            return fail("the server ended the event stream".into()).await;
        }
        tokio::select! {
            r = s.read_buf(&mut raw) => match r {
                Ok(0) => return fail("the server closed the event stream".into()).await,
                Ok(_) => {}
                Err(e) => return fail(format!("read: {e}")).await,
            },
            _ = stop.changed() => {
                drop(permit);
                return Ok(samples);
            }
        }
    }
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

async fn run(o: Opts) -> i32 {
    let shared = Arc::new(Shared {
        delivered: AtomicU64::new(0),
        target: AtomicU64::new(u64::MAX),
        first_pub: AtomicU64::new(u64::MAX),
        last_recv: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        bad: AtomicU64::new(0),
        all_in: Notify::new(),
    });
    let gate = Arc::new(Semaphore::new(64));
    let (ready_tx, mut ready_rx) = mpsc::channel(o.subscribers);
    let (stop_tx, stop_rx) = watch::channel(false);
    let setup = Instant::now();
    let mut handles = Vec::with_capacity(o.subscribers);
    for _ in 0..o.subscribers {
        handles.push(tokio::spawn(subscriber(
            o.addr.clone(),
            shared.clone(),
            gate.clone(),
            ready_tx.clone(),
            stop_rx.clone(),
        )));
    }
    drop(ready_tx);
    let mut ready = 0;
    let setup_deadline = tokio::time::Instant::now() + o.timeout;
    while ready < o.subscribers {
        match tokio::time::timeout_at(setup_deadline, ready_rx.recv()).await {
            Ok(Some(Ok(()))) => ready += 1,
            Ok(Some(Err(why))) => {
                eprintln!("sseload: a subscriber failed: {why}");
                return 1;
            }
            Ok(None) | Err(_) => {
                eprintln!(
                    "sseload: only {ready} of {} subscribers were ready in time",
                    o.subscribers
                );
                return 1;
            }
        }
    }
    // The server must count them all too.
    let counted = loop {
        match request(&o.addr, "GET", "/subscribers").await {
            Ok((200, body)) => {
                let n: usize = body.trim().parse().unwrap_or(0);
                if n >= o.subscribers {
                    break n;
                }
            }
            Ok((status, body)) => {
                eprintln!("sseload: GET /subscribers answered {status}: {body:?}");
                return 1;
            }
            Err(e) => {
                eprintln!("sseload: GET /subscribers: {e}");
                return 1;
            }
        }
        if tokio::time::Instant::now() > setup_deadline {
            eprintln!(
                "sseload: the server does not count {} subscribers",
                o.subscribers
            );
            return 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!(
        "sseload: {ready} subscribers ready ({counted} counted by the server) in {:.2} s",
        setup.elapsed().as_secs_f64()
    );
    tokio::time::sleep(o.pause).await;

    // Bursts.
    let per_burst = o.subscribers as u64 * o.events;
    let mut spans_ns: Vec<u64> = Vec::with_capacity(o.bursts);
    let mut errors = 0u64;
    let mut expected = 0u64;
    let mut first_error: Option<String> = None;
    for b in 0..o.bursts {
        shared.first_pub.store(u64::MAX, Ordering::Relaxed);
        shared.last_recv.store(0, Ordering::Relaxed);
        let before = shared.delivered.load(Ordering::Relaxed);
        shared.target.store(before + per_burst, Ordering::Relaxed);
        expected += per_burst;
        let notified = shared.all_in.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let target = format!("/publish?n={}&interval_us={}", o.events, o.interval_us);
        let (resp, done) = tokio::join!(
            request(&o.addr, "POST", &target),
            tokio::time::timeout(o.timeout, notified)
        );
        match resp {
            Ok((200, _)) => {}
            Ok((status, body)) => {
                errors += 1;
                first_error.get_or_insert(format!(
                    "burst {b}: POST {target} answered {status}: {body:?}"
                ));
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(format!("burst {b}: POST {target}: {e}"));
            }
        }
        if done.is_err() {
            let got = shared.delivered.load(Ordering::Relaxed) - before;
            errors += 1;
            first_error.get_or_insert(format!(
                "burst {b}: only {got} of {per_burst} events delivered within {:?}",
                o.timeout
            ));
        }
        let (f, l) = (
            shared.first_pub.load(Ordering::Relaxed),
            shared.last_recv.load(Ordering::Relaxed),
        );
        if f != u64::MAX && l > f {
            spans_ns.push(l - f);
        }
        tokio::time::sleep(o.pause).await;
    }
    let _ = stop_tx.send(true);
    let mut samples = Vec::with_capacity(expected as usize);
    for h in handles {
        match h.await {
            Ok(Ok(s)) => samples.extend(s),
            Ok(Err(e)) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(format!("task: {e}"));
            }
        }
    }
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let lost = shared.lost.load(Ordering::Relaxed) + expected.saturating_sub(delivered);
    let bad = shared.bad.load(Ordering::Relaxed);
    errors += bad;
    let total_span: u64 = spans_ns.iter().sum();
    let rate = if total_span > 0 {
        delivered as f64 / (total_span as f64 / 1e9)
    } else {
        0.0
    };
    spans_ns.sort_unstable();
    samples.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    let span_p50_ms = percentile(&spans_ns, 0.5) as f64 / 1e6;
    println!(
        "{} subscribers x {} events x {} bursts (interval {} µs): {} of {} delivered ({} lost), \
         {:.0} events/s, round span p50 {:.2} ms, latency p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, \
         max {:.1} µs, {} errors",
        o.subscribers, o.events, o.bursts, o.interval_us, delivered, expected, lost, rate, span_p50_ms,
        us(percentile(&samples, 0.50)), us(percentile(&samples, 0.90)), us(percentile(&samples, 0.99)),
        us(samples.last().copied().unwrap_or(0)), errors
    );
    if let Some(e) = &first_error {
        println!("first error: {e}");
    }
    println!(
        "sseload: subscribers {} events {} bursts {} interval_us {} delivered {} expected {} lost {} \
         events_per_s {:.1} span_p50_ms {:.3} p50_us {:.1} p90_us {:.1} p99_us {:.1} max_us {:.1} errors {}",
        o.subscribers, o.events, o.bursts, o.interval_us, delivered, expected, lost, rate, span_p50_ms,
        us(percentile(&samples, 0.50)), us(percentile(&samples, 0.90)), us(percentile(&samples, 0.99)),
        us(samples.last().copied().unwrap_or(0)), errors
    );
    i32::from(errors > 0 || lost > 0 || delivered == 0)
}

fn main() {
    let o = parse_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build tokio runtime");
    std::process::exit(rt.block_on(run(o)));
}
