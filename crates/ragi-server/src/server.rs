//! The server: listeners, the accept loop, capacity, graceful shutdown.
//!
//! ```no_run
//! use ragi::{Headers, Receiver, Scope, SendEvent, Sender};
//! use ragi_server::{Config, Server};
//!
//! # async fn run() -> Result<(), ragi_server::Error> {
//! let app = |_scope: Scope, _rx: Receiver, tx: Sender| async move {
//!     tx.send(SendEvent::response_start(200, Headers::new())).await?;
//!     tx.send(SendEvent::body("Hello, World!")).await?;
//!     Ok(())
//! };
//! let server = Server::new(Config::default())
//!     .listen("127.0.0.1:8000".parse().unwrap())
//!     .bind()
//!     .await?;
//! let shutdown = server.shutdown_handle();
//! tokio::spawn(async move {
//!     tokio::signal::ctrl_c().await.ok();
//!     shutdown.shutdown();
//! });
//! server.serve(app).await
//! # }
//! ```
//!
//! **Graceful shutdown** (a [`ShutdownHandle`], or SIGTERM/SIGINT with
//! [`Server::handle_signals`]): stop accepting; close idle connections at once; let in-flight
//! requests finish, their responses carrying `connection: close`; after
//! [`Config::shutdown_timeout`] abort what is left with reason `server_shutdown`; run lifespan
//! shut-down; return. A second signal aborts at once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ragi::{App, State};
use tokio::io::AsyncWriteExt;
use tokio::sync::{watch, Notify};

use crate::h1::Driver;
use crate::lifecycle::{
    Accepted, AddressFilter, ConnId, ConnShared, ConnectionHandle, ErrorHook, ErrorReport,
    LifecycleListener,
};
use crate::net::{Incoming, ListenAddr, Listener, Stream};
use crate::proto::h1::request::HeadLimits;
use crate::proto::h1::response::simple_response;
use crate::tls::TlsSettings;
use crate::{Config, Error};

/// Where the server is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    /// Graceful shutdown: finish in-flight work, accept nothing new.
    Draining,
    /// The deadline passed: abort what is left.
    Abort,
}

/// What every connection of one server shares.
pub(crate) struct ServerShared {
    pub(crate) cfg: Config,
    pub(crate) limits: HeadLimits,
    pub(crate) app: Arc<dyn App>,
    pub(crate) lifecycle: Option<Arc<dyn LifecycleListener>>,
    pub(crate) error_hook: Option<ErrorHook>,
    pub(crate) lifespan_state: State,
    pub(crate) server_state: State,
    pub(crate) server_header: Option<Bytes>,
    pub(crate) phase: watch::Receiver<Phase>,
    pub(crate) tls: Option<Arc<TlsSettings>>,
    pub(crate) stats: Arc<ServerStats>,
}

/// A server being configured. See the [module documentation](self).
pub struct Server {
    cfg: Config,
    addrs: Vec<ListenAddr>,
    lifecycle: Option<Arc<dyn LifecycleListener>>,
    error_hook: Option<ErrorHook>,
    filter: Option<AddressFilter>,
    signals: bool,
    tls: Option<Arc<TlsSettings>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("cfg", &self.cfg)
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server with these settings.
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            addrs: Vec::new(),
            lifecycle: None,
            error_hook: None,
            filter: None,
            signals: false,
            tls: None,
        }
    }

    /// Listens on `addr` too (port 0 picks a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.addrs.push(ListenAddr::Tcp(addr));
        self
    }

    /// Listens on a Unix-domain socket at `path` too (see [`crate::net`] for stale sockets,
    /// permissions and what a Unix-domain connection reports).
    pub fn listen_unix(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.addrs.push(ListenAddr::Unix(path.into()));
        self
    }

    /// Listens on `addr` too: TCP or Unix-domain.
    pub fn listen_on(mut self, addr: ListenAddr) -> Self {
        self.addrs.push(addr);
        self
    }

    /// Sets the lifecycle listener.
    pub fn lifecycle(mut self, listener: impl LifecycleListener) -> Self {
        self.lifecycle = Some(Arc::new(listener));
        self
    }

    /// Sets the lifecycle listener, shared.
    pub fn lifecycle_arc(mut self, listener: Arc<dyn LifecycleListener>) -> Self {
        self.lifecycle = Some(listener);
        self
    }

    /// Sets the error hook (see [`ErrorHook`]).
    pub fn error_hook<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(ErrorReport) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.error_hook = Some(Arc::new(move |r| Box::pin(hook(r))));
        self
    }

    /// Sets the address filter, checked at accept before an id is given.
    pub fn address_filter(mut self, filter: AddressFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Serves TLS on every listener with these settings (certificates reload on SIGHUP when
    /// [`Server::handle_signals`] is on, or with [`TlsSettings::reload`]).
    pub fn tls(mut self, settings: Arc<TlsSettings>) -> Self {
        self.tls = Some(settings);
        self
    }

    /// Starts graceful shutdown on SIGTERM or SIGINT (a second signal aborts at once), and
    /// reloads TLS certificates on SIGHUP.
    pub fn handle_signals(mut self, yes: bool) -> Self {
        self.signals = yes;
        self
    }

    /// Binds the listening sockets.
    pub async fn bind(self) -> Result<BoundServer, Error> {
        if self.addrs.is_empty() {
            return Err(Error::config("no address to listen on"));
        }
        if self.cfg.max_headers == 0 || self.cfg.max_headers > 256 {
            return Err(Error::config("max_headers must be between 1 and 256"));
        }
        if self.cfg.write_low_water > self.cfg.write_high_water {
            return Err(Error::config(
                "write_low_water must not exceed write_high_water",
            ));
        }
        let mut listeners = Vec::new();
        for addr in &self.addrs {
            listeners.push(Listener::bind(addr, self.cfg.unix_socket_mode)?);
        }
        let (trigger, _) = watch::channel(Trigger::None);
        Ok(BoundServer {
            server: self,
            listeners,
            trigger: Arc::new(trigger),
            server_state: State::default(),
            on_ready: None,
            stats: Arc::default(),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    None,
    Graceful,
    Abort,
}

/// A server with bound sockets, ready to serve.
pub struct BoundServer {
    server: Server,
    listeners: Vec<Listener>,
    trigger: Arc<watch::Sender<Trigger>>,
    server_state: State,
    on_ready: Option<Box<dyn FnOnce(&[SocketAddr]) + Send>>,
    stats: Arc<ServerStats>,
}

impl std::fmt::Debug for BoundServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundServer")
            .field("addrs", &self.listen_addrs())
            .finish_non_exhaustive()
    }
}

/// Starts graceful shutdown of a server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    trigger: Arc<watch::Sender<Trigger>>,
}

impl ShutdownHandle {
    /// Starts graceful shutdown (spec §5). Idempotent.
    pub fn shutdown(&self) {
        self.trigger.send_if_modified(|t| {
            if *t == Trigger::None {
                *t = Trigger::Graceful;
                true
            } else {
                false
            }
        });
    }

    /// Aborts every connection now (reason `server_shutdown`).
    pub fn abort(&self) {
        self.trigger.send_replace(Trigger::Abort);
    }
}

impl BoundServer {
    /// The TCP addresses actually bound (Unix-domain sockets are in
    /// [`listen_addrs`](Self::listen_addrs)).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| match l.local() {
                Some(ListenAddr::Tcp(a)) => Some(a),
                _ => None,
            })
            .collect()
    }

    /// Every address bound, TCP (with the port chosen for port 0) and Unix-domain, in the
    /// order they were given.
    pub fn listen_addrs(&self) -> Vec<ListenAddr> {
        self.listeners.iter().filter_map(|l| l.local()).collect()
    }

    /// A handle that starts graceful shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            trigger: self.trigger.clone(),
        }
    }

    /// The counters of this server session (handshake failures, accepted connections).
    pub fn stats(&self) -> Arc<ServerStats> {
        self.stats.clone()
    }

    /// The server-state object (spec §6) every app invocation of this server session shares.
    pub fn server_state(&self) -> &State {
        &self.server_state
    }

    /// Calls `f` with the bound TCP addresses once lifespan start-up has completed, just
    /// before connections are served (a good moment to announce "listening"; take
    /// [`listen_addrs`](Self::listen_addrs) before for the Unix-domain ones too).
    pub fn on_ready(mut self, f: impl FnOnce(&[SocketAddr]) + Send + 'static) -> Self {
        self.on_ready = Some(Box::new(f));
        self
    }

    /// Runs lifespan start-up, serves until shutdown, runs lifespan shut-down.
    pub async fn serve(self, app: impl App) -> Result<(), Error> {
        let app: Arc<dyn App> = Arc::new(app);
        let addrs = self.local_addrs();
        let BoundServer {
            server,
            listeners,
            trigger,
            server_state,
            on_ready,
            stats,
        } = self;
        crate::shared::panics::install();
        let lifespan_state = State::default();
        let lifespan =
            crate::lifespan::startup(app.clone(), lifespan_state.clone(), server_state.clone())
                .await?;
        if let Some(f) = on_ready {
            f(&addrs);
        }

        let (phase_tx, phase_rx) = watch::channel(Phase::Running);
        let server_header = server
            .cfg
            .server_header
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| Bytes::from(s.clone()));
        let limits = HeadLimits {
            max_request_line: server.cfg.max_request_line,
            max_header_size: server.cfg.max_header_size,
            max_headers: server.cfg.max_headers,
        };
        let shutdown_timeout = server.cfg.shutdown_timeout;
        let shared = Arc::new(ServerShared {
            cfg: server.cfg,
            limits,
            app,
            lifecycle: server.lifecycle,
            error_hook: server.error_hook,
            lifespan_state,
            server_state,
            server_header,
            phase: phase_rx.clone(),
            tls: server.tls.clone(),
            stats,
        });
        let live = Arc::new(Live {
            n: AtomicUsize::new(0),
            zero: Notify::new(),
        });
        let next_id = Arc::new(AtomicU64::new(1));
        let prefix: Arc<str> = Arc::from(shared.cfg.id_prefix.as_str());
        let filter = server.filter.map(Arc::new);

        if server.signals {
            let trigger = trigger.clone();
            let tls = server.tls.clone();
            tokio::spawn(async move { signal_loop(trigger, tls).await });
        }

        let mut accept_tasks = Vec::new();
        for listener in listeners {
            let ctx = AcceptCtx {
                shared: shared.clone(),
                live: live.clone(),
                next_id: next_id.clone(),
                prefix: prefix.clone(),
                filter: filter.clone(),
                phase: phase_rx.clone(),
            };
            accept_tasks.push(tokio::spawn(accept_loop(listener, ctx)));
        }

        // Wait for the trigger.
        let mut trig = trigger.subscribe();
        let first = loop {
            let t = *trig.borrow_and_update();
            if t != Trigger::None {
                break t;
            }
            if trig.changed().await.is_err() {
                break Trigger::Graceful;
            }
        };
        tracing::info!("shutting down");
        let _ = phase_tx.send(Phase::Draining);
        for t in &accept_tasks {
            t.abort();
        }
        if first == Trigger::Graceful {
            let deadline = tokio::time::sleep(shutdown_timeout);
            tokio::pin!(deadline);
            let abort_signal = async {
                loop {
                    if trig.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    if *trig.borrow() == Trigger::Abort {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = live.wait_zero() => {}
                _ = &mut deadline => {}
                _ = abort_signal => {}
            }
        }
        let _ = phase_tx.send(Phase::Abort);
        if tokio::time::timeout(Duration::from_secs(5), live.wait_zero())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the abort");
        }
        if let Some(l) = lifespan {
            l.shutdown(shutdown_timeout).await;
        }
        Ok(())
    }
}

struct Live {
    n: AtomicUsize,
    zero: Notify,
}

impl Live {
    async fn wait_zero(&self) {
        loop {
            let notified = self.zero.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.n.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    fn dec(&self) {
        if self.n.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.zero.notify_waiters();
        }
    }
}

struct AcceptCtx {
    shared: Arc<ServerShared>,
    live: Arc<Live>,
    next_id: Arc<AtomicU64>,
    prefix: Arc<str>,
    filter: Option<Arc<AddressFilter>>,
    phase: watch::Receiver<Phase>,
}

async fn accept_loop(listener: Listener, mut ctx: AcceptCtx) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = ctx.phase.changed() => return,
            r = listener.accept() => r,
        };
        // Shutdown began while this connection waited in the backlog (the watch's change and
        // the accept can be ready in the same turn): it is not served. Dropping it closes it.
        if *ctx.phase.borrow() != Phase::Running {
            return;
        }
        let Incoming {
            stream,
            peer,
            local,
            unix,
        } = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off a moment instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if let (Some(f), None) = (&ctx.filter, &unix) {
            if !f.permits(peer.ip()) {
                tracing::debug!(%peer, "refused by the address filter");
                continue;
            }
        }
        if ctx.live.n.load(Ordering::Acquire) >= ctx.shared.cfg.max_connections {
            tokio::spawn(reject_busy(stream, ctx.shared.server_header.clone()));
            continue;
        }
        let id = ConnId::new(
            ctx.next_id.fetch_add(1, Ordering::Relaxed),
            ctx.prefix.clone(),
        );
        let conn = ConnShared::new(id.clone());
        // The connection is announced in its own task, once its protocol is known (after the
        // TLS handshake, or the first bytes of a cleartext connection).
        ctx.live.n.fetch_add(1, Ordering::AcqRel);
        let shared = ctx.shared.clone();
        let live = ctx.live.clone();
        tokio::spawn(async move {
            // Its code (and the app's first polls, and callbacks) run as this connection's:
            // a panic in them is logged with its id.
            let fut = serve_connection(stream, shared, conn, id.clone(), peer, local, unix);
            crate::shared::panics::OnConn { id, fut }.await;
            live.dec();
        });
    }
}

/// One connection: the TLS handshake where there is one, protocol detection, the `accepted`
/// notice (which may refuse it), the driver, the `closed` notice.
async fn serve_connection(
    stream: Stream,
    shared: Arc<ServerShared>,
    conn: Arc<ConnShared>,
    id: ConnId,
    peer: SocketAddr,
    local: SocketAddr,
    unix: Option<Arc<std::path::Path>>,
) {
    // TLS first: `accepted` comes after the handshake and carries its facts.
    let mut tls = None;
    if let Some(settings) = &shared.tls {
        let handshake = async {
            let mut session = settings.new_session().map_err(|e| e.to_string())?;
            let limit = shared
                .cfg
                .idle_timeout
                .map_or(TLS_HANDSHAKE_LIMIT, |d| d.min(TLS_HANDSHAKE_LIMIT));
            let early = crate::h1::tls_handshake(&stream, &mut session, limit).await?;
            Ok::<_, String>((session, early))
        };
        match handshake.await {
            Ok(done) => tls = Some(done),
            Err(e) => {
                tracing::debug!(%id, %peer, error = %e, "TLS handshake failed");
                shared
                    .stats
                    .tls_handshake_failures
                    .fetch_add(1, Ordering::Relaxed);
                conn.task_done();
                return;
            }
        }
    }
    let accepted_at = std::time::Instant::now();
    // The protocol: ALPN's choice over TLS; on a cleartext connection, whether it starts with
    // the HTTP/2 preface (h2c with prior knowledge, peeked, not consumed).
    let alpn_h2 = tls
        .as_ref()
        .is_some_and(|(session, _)| session.alpn_protocol() == Some(b"h2".as_slice()));
    // A Unix-domain stream cannot be peeked: the sniff reads, and gives the bytes back.
    let (h2c, sniffed) = if tls.is_some() {
        (false, Bytes::new())
    } else {
        sniff_h2_preface(&stream, &shared).await
    };
    // Built once: the notice, the HTTP/2 streams' and the HTTP/1.1 driver's scopes share it.
    let info = tls.as_ref().map(|(session, _)| Arc::new(session.info()));
    let protocol = if alpn_h2 || h2c { "h2" } else { "http/1.1" };
    if !announce(&shared, &conn, peer, local, info.clone(), protocol, unix) {
        conn.task_done();
        return;
    }
    shared
        .stats
        .connections_accepted
        .fetch_add(1, Ordering::Relaxed);
    let closed = if alpn_h2 {
        // ALPN chose h2: the h2 crate runs over the TLS session as an async byte stream.
        let (session, early) = tls.expect("checked");
        let io = crate::tls_io::TlsIo::new(stream, session, early);
        // Boxed, like the WebSocket path: a connection's task is as large as its largest
        // state, and idle HTTP/1.1 connections should not pay for HTTP/2's.
        Box::pin(crate::h2::serve_h2(
            io,
            shared.clone(),
            conn.clone(),
            peer,
            local,
            info,
        ))
        .await
    } else if h2c && sniffed.is_empty() {
        // h2c with prior knowledge: the client preface was peeked, not consumed.
        Box::pin(crate::h2::serve_h2(
            stream,
            shared.clone(),
            conn.clone(),
            peer,
            local,
            None,
        ))
        .await
    } else if h2c {
        // The same over a Unix-domain socket, the preface read and given back.
        Box::pin(crate::h2::serve_h2(
            crate::net::Rewind::new(sniffed, stream),
            shared.clone(),
            conn.clone(),
            peer,
            local,
            None,
        ))
        .await
    } else {
        let mut driver = Driver::new(stream, shared.clone(), conn.clone(), peer, local)
            .accepted_at(accepted_at)
            .with_early(sniffed);
        if let (Some((session, early)), Some(info)) = (tls, info) {
            driver = driver.with_tls(session, early, info);
        }
        match driver.run().await {
            crate::h1::H1End::Closed(closed) => closed,
            crate::h1::H1End::Upgrade(up) => {
                // Boxed: the session's future is large, and an inline one would make every
                // connection's task as large, upgraded or not.
                Box::pin(crate::ws::serve_h1_upgrade(
                    *up,
                    shared.clone(),
                    conn.clone(),
                ))
                .await
            }
        }
    };
    if let Some(l) = &shared.lifecycle {
        match crate::shared::panics::catching(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| l.closed(&closed)))
        }) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(conn = %closed.id, error = %e, "lifecycle listener failed at close")
            }
            Err(p) => tracing::error!(
                conn = %closed.id,
                error = %crate::shared::panic_message(&p),
                "lifecycle listener panicked at close (contained)"
            ),
        }
    }
    conn.task_done();
}

/// Gives the `accepted` notice; false when the listener refuses the connection.
fn announce(
    shared: &ServerShared,
    conn: &Arc<ConnShared>,
    peer: SocketAddr,
    local: SocketAddr,
    tls: Option<Arc<ragi::TlsInfo>>,
    protocol: &'static str,
    unix_path: Option<Arc<std::path::Path>>,
) -> bool {
    let Some(l) = &shared.lifecycle else {
        return true;
    };
    let id = &conn.id;
    let notice = Accepted {
        id: id.clone(),
        peer,
        local,
        tls,
        protocol,
        handle: ConnectionHandle::new(conn.clone()),
        unix_path,
    };
    match crate::shared::panics::catching(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| l.accepted(&notice)))
    }) {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(conn = %id, error = %e, "the lifecycle listener refused the connection");
            false
        }
        Err(p) => {
            tracing::error!(
                conn = %id,
                error = %crate::shared::panic_message(&p),
                "the lifecycle listener panicked at accept (contained); connection dropped"
            );
            false
        }
    }
}

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a cleartext connection starts with the HTTP/2 preface (prior knowledge); gives up
/// (HTTP/1.1) as soon as the bytes differ, and waits at most the idle timeout (bounded to
/// 10 s) for the first 24 bytes. A TCP stream is looked at with `MSG_PEEK`, so nothing is
/// consumed either way (the bytes returned are empty); a Unix-domain stream, which tokio
/// cannot peek, is read, and the bytes read are returned for the protocol to start with.
async fn sniff_h2_preface(stream: &Stream, shared: &ServerShared) -> (bool, Bytes) {
    let limit = shared
        .cfg
        .idle_timeout
        .map_or(TLS_HANDSHAKE_LIMIT, |d| d.min(TLS_HANDSHAKE_LIMIT));
    let mut read = Vec::new();
    let sniff = async {
        let mut buf = [0u8; 24];
        loop {
            let n = match stream {
                Stream::Tcp(s) => match s.peek(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => n,
                },
                Stream::Unix(s) => {
                    if s.readable().await.is_err() {
                        return false;
                    }
                    let have = read.len();
                    match s.try_read(&mut buf[have..]) {
                        // The end or an error: the driver meets it again after these bytes.
                        Ok(0) => return false,
                        Ok(n) => {
                            read.extend_from_slice(&buf[have..have + n]);
                            read.len()
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(_) => return false,
                    }
                }
            };
            if buf[..n] != H2_PREFACE[..n] {
                return false;
            }
            if n == H2_PREFACE.len() {
                return true;
            }
            if let Stream::Tcp(_) = stream {
                // A prefix of the preface so far: wait for more bytes.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let mut phase = shared.phase.clone();
    let h2c = tokio::select! {
        r = tokio::time::timeout(limit, sniff) => r.unwrap_or(false),
        // Shutdown: let the HTTP/1.1 driver close the idle connection at once.
        _ = phase.changed() => false,
    };
    (h2c, Bytes::from(read))
}

/// The longest a TLS handshake may take (shorter when the idle timeout is).
const TLS_HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// Counters of one server session.
#[derive(Debug, Default)]
pub struct ServerStats {
    tls_handshake_failures: AtomicU64,
    connections_accepted: AtomicU64,
}

impl ServerStats {
    /// TLS handshakes that failed (no `accepted` notice was given for them).
    pub fn tls_handshake_failures(&self) -> u64 {
        self.tls_handshake_failures.load(Ordering::Relaxed)
    }

    /// Connections accepted (after the filter, the handshake and the listener).
    pub fn connections_accepted(&self) -> u64 {
        self.connections_accepted.load(Ordering::Relaxed)
    }
}

/// Beyond the connection limit: 503 with `retry-after`, then close.
async fn reject_busy(mut stream: Stream, server_header: Option<Bytes>) {
    let resp = simple_response(503, server_header.as_deref(), b"retry-after: 1\r\n", false);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(&resp).await?;
        stream.shutdown().await?;
        // Read what the client sent so that the close is a FIN, not a reset.
        let mut sink = [0u8; 4096];
        loop {
            match tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

async fn signal_loop(trigger: Arc<watch::Sender<Trigger>>, tls: Option<Arc<TlsSettings>>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    let handle = ShutdownHandle { trigger };
    let mut count = 0;
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = hup.recv() => {
                // Reload certificates; live connections keep the ones they started with.
                if let Some(t) = &tls {
                    match t.reload() {
                        Ok(()) => tracing::info!("TLS certificates reloaded"),
                        Err(e) => {
                            tracing::error!(error = %e, "TLS reload failed; keeping the old certificates");
                            eprintln!("ragi: TLS reload failed, keeping the old certificates: {e}");
                        }
                    }
                }
                continue;
            }
        }
        count += 1;
        if count == 1 {
            handle.shutdown();
        } else {
            handle.abort();
        }
    }
}
