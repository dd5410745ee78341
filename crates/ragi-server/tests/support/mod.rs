//! Shared helpers for the library-level black-box tests of `ragi-server`.
//!
//! Every test starts a real [`Server`] on `127.0.0.1:0` inside the test's tokio runtime, talks to
//! it with raw loopback TCP, and checks both what the client saw and what the app / lifecycle
//! listener observed. Every wait on the network or on an observation is bounded by
//! [`tokio::time::timeout`]; polling loops re-check a condition until a deadline instead of
//! sleeping a fixed time.
#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ragi::{App, AppError, AppResult, BoxFuture, Receiver, Scope, ScopeKind, Sender, State};
use ragi::{Headers, SendEvent, UnsupportedScope};
use ragi_server::lifecycle::{Accepted, Closed, Upgraded};
use ragi_server::{BoundServer, LifecycleListener, Server, ShutdownHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Default bound for one network step (connect, one response, an EOF).
pub const T: Duration = Duration::from_secs(5);

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Awaits `fut` for at most `t`, panicking with `what` when it does not finish.
pub async fn within<F: Future>(t: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(t, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {t:?} waiting for {what}"),
    }
}

/// Escaped, truncated view of some bytes for messages.
pub fn show(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes.iter().take(600) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02X}")),
        }
    }
    if bytes.len() > 600 {
        s.push_str(&format!("…(+{} bytes)", bytes.len() - 600));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Apps
// ---------------------------------------------------------------------------------------------

/// An app that handles only `http` scopes with `f` and declines every other kind (lifespan
/// included) with [`UnsupportedScope`].
pub fn http_app<F, Fut>(f: F) -> impl App
where
    F: Fn(Scope, Receiver, Sender) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = AppResult> + Send + 'static,
{
    move |scope: Scope, rx: Receiver, tx: Sender| -> BoxFuture<'static, AppResult> {
        if scope.kind != ScopeKind::Http {
            let kind = scope.kind;
            return Box::pin(async move { Err(UnsupportedScope(kind).into()) });
        }
        Box::pin(f(scope, rx, tx))
    }
}

/// Sends a complete `200` response with `body` (one piece, so it gets a content-length).
pub async fn respond(tx: &Sender, status: u16, body: &'static str) -> AppResult {
    tx.send(SendEvent::response_start(
        status,
        Headers::new().with("content-type", "text/plain"),
    ))
    .await?;
    tx.send(SendEvent::body(body)).await?;
    Ok(())
}

/// A plain app: answers every request `200 hello`.
pub fn hello_app() -> impl App {
    http_app(|_scope, _rx, tx| async move { respond(&tx, 200, "hello").await })
}

/// A one-shot signal slot an app can fire once (the test keeps the receiver).
#[derive(Clone)]
pub struct Slot<T>(Arc<Mutex<Option<tokio::sync::oneshot::Sender<T>>>>);

impl<T> Slot<T> {
    pub fn new() -> (Self, tokio::sync::oneshot::Receiver<T>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Self(Arc::new(Mutex::new(Some(tx)))), rx)
    }

    /// Fires the slot; later calls do nothing.
    pub fn fire(&self, v: T) {
        if let Some(tx) = self.0.lock().unwrap().take() {
            let _ = tx.send(v);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub shutdown: ShutdownHandle,
    pub server_state: State,
    serve: Option<JoinHandle<Result<(), ragi_server::Error>>>,
}

impl TestServer {
    /// Binds `server` on `127.0.0.1:0` and serves `app` in a task.
    pub async fn start(server: Server, app: impl App) -> TestServer {
        let bound = Self::bind(server).await;
        Self::serve(bound, app)
    }

    pub async fn bind(server: Server) -> BoundServer {
        within(
            T,
            "bind",
            server.listen("127.0.0.1:0".parse().unwrap()).bind(),
        )
        .await
        .expect("bind")
    }

    pub fn serve(bound: BoundServer, app: impl App) -> TestServer {
        let addr = bound.local_addrs()[0];
        let shutdown = bound.shutdown_handle();
        let server_state = bound.server_state().clone();
        let serve = tokio::spawn(bound.serve(app));
        TestServer {
            addr,
            shutdown,
            server_state,
            serve: Some(serve),
        }
    }

    /// Waits at most `t` for `serve()` to return.
    pub async fn join(&mut self, t: Duration) -> Result<(), ragi_server::Error> {
        let h = self.serve.as_mut().expect("serve() already joined");
        let r = within(t, "serve() to return", h)
            .await
            .expect("the serve task panicked");
        self.serve = None;
        r
    }

    /// Whether `serve()` has returned.
    pub fn is_finished(&self) -> bool {
        self.serve.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Graceful shutdown; `serve()` must return Ok within `t`.
    pub async fn stop(mut self, t: Duration) {
        self.shutdown.shutdown();
        self.join(t).await.expect("serve() returned an error");
    }

    pub async fn connect(&self) -> Client {
        Client::connect(self.addr).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = self.serve.take() {
            self.shutdown.abort();
            h.abort();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The lifecycle listener
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub enum Notice {
    Accepted(Accepted),
    Upgraded(Upgraded),
    Closed(Closed),
}

type AcceptFn = dyn Fn(&Accepted) -> Result<(), AppError> + Send + Sync;

/// A lifecycle listener that records every notice in order.
#[derive(Clone)]
pub struct Recorder {
    log: Arc<Mutex<Vec<Notice>>>,
    version: Arc<watch::Sender<u64>>,
    on_accept: Option<Arc<AcceptFn>>,
    panic_at_closed: bool,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            log: Arc::default(),
            version: Arc::new(watch::channel(0).0),
            on_accept: None,
            panic_at_closed: false,
        }
    }

    /// Calls `f` at `accepted` (after recording); its error refuses the connection.
    pub fn on_accept(
        mut self,
        f: impl Fn(&Accepted) -> Result<(), AppError> + Send + Sync + 'static,
    ) -> Self {
        self.on_accept = Some(Arc::new(f));
        self
    }

    /// Panics at every `closed` (after recording).
    pub fn panic_at_closed(mut self) -> Self {
        self.panic_at_closed = true;
        self
    }

    fn push(&self, n: Notice) {
        self.log.lock().unwrap().push(n);
        self.version.send_modify(|v| *v += 1);
    }

    pub fn notices(&self) -> Vec<Notice> {
        self.log.lock().unwrap().clone()
    }

    pub fn accepted(&self) -> Vec<Accepted> {
        self.notices()
            .into_iter()
            .filter_map(|n| match n {
                Notice::Accepted(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    pub fn closed(&self) -> Vec<Closed> {
        self.notices()
            .into_iter()
            .filter_map(|n| match n {
                Notice::Closed(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    /// Waits (at most `t`) until `pred` returns something for the notices so far.
    pub async fn wait_for<R>(
        &self,
        t: Duration,
        what: &str,
        pred: impl Fn(&[Notice]) -> Option<R>,
    ) -> R {
        let mut rx = self.version.subscribe();
        let deadline = tokio::time::Instant::now() + t;
        loop {
            rx.borrow_and_update();
            if let Some(r) = pred(&self.log.lock().unwrap()) {
                return r;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(_) => {}
                Err(_) => panic!(
                    "timed out after {t:?} waiting for {what}; notices so far: {:#?}",
                    self.notices()
                ),
            }
        }
    }

    /// The `n`-th (0-based) accepted notice.
    pub async fn wait_accepted(&self, n: usize) -> Accepted {
        self.wait_for(T, &format!("accepted notice #{n}"), |log| {
            log.iter()
                .filter_map(|x| match x {
                    Notice::Accepted(a) => Some(a.clone()),
                    _ => None,
                })
                .nth(n)
        })
        .await
    }

    /// The closed notice of connection number `id`.
    pub async fn wait_closed(&self, id: u64) -> Closed {
        self.wait_for(T, &format!("closed notice of connection {id}"), |log| {
            log.iter().find_map(|x| match x {
                Notice::Closed(c) if c.id.get() == id => Some(c.clone()),
                _ => None,
            })
        })
        .await
    }
}

impl LifecycleListener for Recorder {
    fn accepted(&self, notice: &Accepted) -> Result<(), AppError> {
        self.push(Notice::Accepted(notice.clone()));
        match &self.on_accept {
            Some(f) => f(notice),
            None => Ok(()),
        }
    }

    fn upgraded(&self, notice: &Upgraded) {
        self.push(Notice::Upgraded(notice.clone()));
    }

    fn closed(&self, notice: &Closed) -> Result<(), AppError> {
        self.push(Notice::Closed(notice.clone()));
        if self.panic_at_closed {
            panic!("test listener panics at closed ({})", notice.id);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/// How a read-to-the-end finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Orderly EOF.
    Eof,
    /// Connection reset (or another read error).
    Reset,
    /// Nothing ended within the time given.
    Timeout,
}

/// A parsed response.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// Lower-cased names, in order.
    pub headers: Vec<(String, String)>,
    /// The de-chunked body.
    pub body: Vec<u8>,
    /// Everything of this response as it came on the wire.
    pub raw: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// Whether `connection: close` was announced.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw HTTP/1.1 client over a tokio `TcpStream`.
pub struct Client {
    pub stream: TcpStream,
    /// Read but not yet consumed.
    pub buf: Vec<u8>,
    /// Bytes written in total.
    pub sent: u64,
    /// Bytes read in total.
    pub received: u64,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = within(T, "connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        Self::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> Client {
        Client {
            stream,
            buf: Vec::new(),
            sent: 0,
            received: 0,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        within(T, "write", self.stream.write_all(bytes))
            .await
            .expect("write");
        self.sent += bytes.len() as u64;
    }

    /// `GET path` with keep-alive (HTTP/1.1 default).
    pub async fn get(&mut self, path: &str) {
        let req = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
        self.send(req.as_bytes()).await;
    }

    /// Sends FIN.
    pub async fn shutdown_write(&mut self) {
        within(T, "shutdown(write)", self.stream.shutdown())
            .await
            .expect("shutdown");
    }

    /// One read, appended to `buf`; `Ok(0)` is EOF. `Err(Timeout)` when nothing came in `t`.
    pub async fn read_once(&mut self, t: Duration) -> Result<usize, End> {
        let mut tmp = vec![0u8; 64 * 1024];
        match tokio::time::timeout(t, self.stream.read(&mut tmp)).await {
            Err(_) => Err(End::Timeout),
            Ok(Err(_)) => Err(End::Reset),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&tmp[..n]);
                self.received += n as u64;
                Ok(n)
            }
        }
    }

    async fn need(&mut self, deadline: Instant, what: &str) {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.read_once(left).await {
            Ok(0) => panic!("EOF while reading {what}; have {}", show(&self.buf)),
            Ok(_) => {}
            Err(e) => panic!("{e:?} while reading {what}; have {}", show(&self.buf)),
        }
    }

    /// Reads one response (within [`T`]).
    pub async fn read_response(&mut self) -> Response {
        self.read_response_within(T).await
    }

    /// Reads one response within `t`. A 1xx response has no body.
    pub async fn read_response_within(&mut self, t: Duration) -> Response {
        let deadline = Instant::now() + t;
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.need(deadline, "a response head").await;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_owned();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(
            parts.next(),
            Some("HTTP/1.1"),
            "bad status line {status_line:?}"
        );
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap_or((l, ""));
                (n.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
            raw: Vec::new(),
        };
        let mut pos = head_end;
        if (100..200).contains(&status) || status == 204 || status == 304 {
            // no body
        } else if let Some(n) = resp.header("content-length") {
            let n: usize = n.parse().expect("content-length");
            while self.buf.len() < pos + n {
                self.need(deadline, "a response body").await;
            }
            resp.body = self.buf[pos..pos + n].to_vec();
            pos += n;
        } else if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf[pos..], b"\r\n") {
                        break pos + i;
                    }
                    self.need(deadline, "a chunk size line").await;
                };
                let size_txt = String::from_utf8_lossy(&self.buf[pos..line_end]).into_owned();
                let size = usize::from_str_radix(size_txt.split(';').next().unwrap().trim(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {size_txt:?}"));
                pos = line_end + 2;
                if size == 0 {
                    // Trailers, then an empty line.
                    loop {
                        let e = loop {
                            if let Some(i) = find(&self.buf[pos..], b"\r\n") {
                                break pos + i;
                            }
                            self.need(deadline, "trailers").await;
                        };
                        let empty = e == pos;
                        pos = e + 2;
                        if empty {
                            break;
                        }
                    }
                    break;
                }
                while self.buf.len() < pos + size + 2 {
                    self.need(deadline, "a chunk").await;
                }
                resp.body.extend_from_slice(&self.buf[pos..pos + size]);
                assert_eq!(&self.buf[pos + size..pos + size + 2], b"\r\n", "chunk end");
                pos += size + 2;
            }
        } else {
            // Close-delimited.
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.read_once(left).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => panic!("{e:?} in a close-delimited body"),
                }
            }
            pos = self.buf.len();
            resp.body = self.buf[head_end..].to_vec();
        }
        resp.raw = self.buf.drain(..pos).collect();
        resp
    }

    /// Reads until EOF, reset or `t`; returns what came (including what was buffered) and how
    /// it ended.
    pub async fn read_to_end(&mut self, t: Duration) -> (Vec<u8>, End) {
        let deadline = Instant::now() + t;
        let end = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_once(left).await {
                Ok(0) => break End::Eof,
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        (std::mem::take(&mut self.buf), end)
    }

    /// Asserts the server closes the connection (EOF or reset) within `t` without sending
    /// another byte.
    pub async fn expect_closed_silently(&mut self, t: Duration, what: &str) {
        let (data, end) = self.read_to_end(t).await;
        assert!(
            data.is_empty(),
            "{what}: expected no bytes before the close, got {}",
            show(&data)
        );
        assert_ne!(
            end,
            End::Timeout,
            "{what}: the connection was not closed within {t:?}"
        );
    }

    /// Asserts nothing arrives within `t` (and the connection stays open).
    pub async fn expect_silence(&mut self, t: Duration, what: &str) {
        match self.read_once(t).await {
            Err(End::Timeout) => {}
            Ok(0) => panic!("{what}: unexpected EOF"),
            Ok(_) => panic!("{what}: unexpected bytes {}", show(&self.buf)),
            Err(e) => panic!("{what}: unexpected {e:?}"),
        }
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether an io error means the peer refused or reset the connection.
pub fn is_refusal(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}
