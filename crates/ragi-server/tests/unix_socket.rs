//! Unix-domain socket listeners, over real Unix sockets: a request served (HTTP/1.1 and h2c),
//! what the scope and the lifecycle notices say of such a peer, a client that leaves, the
//! socket file's mode, a stale socket replaced, a live one or a regular file left alone, and
//! the file removed at shutdown.

mod support;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ragi::{DisconnectReason, Receiver, Scope, Sender};
use ragi_server::lifecycle::Accepted;
use ragi_server::{Config, LifecycleListener, ListenAddr, Server};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// A fresh socket path in the temp dir (removed first if a previous run left it).
fn sock_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("ragi-unix-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

async fn read_to_end(s: &mut UnixStream) -> Vec<u8> {
    let mut out = Vec::new();
    within(T, "the response and EOF", s.read_to_end(&mut out))
        .await
        .unwrap();
    out
}

/// A server serving `app` in a task, listening only where `server` says.
struct Running {
    shutdown: ragi_server::ShutdownHandle,
    task: tokio::task::JoinHandle<Result<(), ragi_server::Error>>,
}

impl Running {
    async fn start(server: Server, app: impl ragi::App) -> Running {
        Self::serve(within(T, "bind", server.bind()).await.expect("bind"), app)
    }

    fn serve(bound: ragi_server::BoundServer, app: impl ragi::App) -> Running {
        Running {
            shutdown: bound.shutdown_handle(),
            task: tokio::spawn(bound.serve(app)),
        }
    }

    async fn stop(self) {
        self.shutdown.shutdown();
        within(T, "serve() to return", self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

#[derive(Clone, Default)]
struct Seen {
    accepted: Arc<Mutex<Vec<Accepted>>>,
}

impl LifecycleListener for Seen {
    fn accepted(&self, notice: &Accepted) -> Result<(), ragi::AppError> {
        self.accepted.lock().unwrap().push(notice.clone());
        Ok(())
    }
}

#[tokio::test]
async fn serves_http1_over_a_unix_socket() {
    let path = sock_path("h1");
    let seen = Seen::default();
    let scopes = Arc::new(Mutex::new(Vec::new()));
    let s2 = scopes.clone();
    let app = http_app(move |scope: Scope, _rx: Receiver, tx: Sender| {
        s2.lock().unwrap().push((scope.client, scope.server));
        async move { respond(&tx, 200, "over unix").await }
    });
    let server = Server::new(Config::default())
        .listen_unix(&path)
        .lifecycle(seen.clone());
    let bound = within(T, "bind", server.bind()).await.unwrap();
    assert_eq!(bound.listen_addrs(), vec![ListenAddr::Unix(path.clone())]);
    assert!(bound.local_addrs().is_empty(), "no TCP address");
    let srv = Running::serve(bound, app);

    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);

    let mut c = within(T, "connect", UnixStream::connect(&path))
        .await
        .unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let resp = read_to_end(&mut c).await;
    drop(c);
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{}", show(&resp));
    assert!(text.ends_with("over unix"), "{}", show(&resp));

    // A Unix peer has no IP address: the scope says none, the notice says which socket.
    assert_eq!(scopes.lock().unwrap().as_slice(), &[(None, None)]);
    let notices = seen.accepted.lock().unwrap().clone();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].unix_path.as_deref(), Some(path.as_path()));
    assert_eq!(notices[0].peer.to_string(), "0.0.0.0:0");
    assert_eq!(notices[0].protocol, "http/1.1");

    srv.stop().await;
    assert!(
        std::fs::symlink_metadata(&path).is_err(),
        "the socket file is removed at shutdown"
    );
}

#[tokio::test]
async fn tcp_and_unix_listeners_together_and_the_mode_is_configurable() {
    let path = sock_path("both");
    let mut cfg = Config::default();
    cfg.unix_socket_mode = 0o600;
    let server = Server::new(cfg)
        .listen("127.0.0.1:0".parse().unwrap())
        .listen_unix(&path);
    let bound = within(T, "bind", server.bind()).await.unwrap();
    let tcp_addr = bound.local_addrs()[0];
    assert_eq!(bound.listen_addrs()[1], ListenAddr::Unix(path.clone()));
    let srv = Running::serve(bound, hello_app());
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Both serve.
    let mut tcp = tokio::net::TcpStream::connect(tcp_addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut r = Vec::new();
    within(T, "TCP response", tcp.read_to_end(&mut r))
        .await
        .unwrap();
    assert!(r.starts_with(b"HTTP/1.1 200"), "{}", show(&r));
    let mut c = UnixStream::connect(&path).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let r = read_to_end(&mut c).await;
    assert!(r.starts_with(b"HTTP/1.1 200"), "{}", show(&r));
    drop((c, tcp));
    srv.stop().await;
}

#[tokio::test]
async fn h2c_with_prior_knowledge_over_a_unix_socket() {
    let path = sock_path("h2");
    let srv = Running::start(
        Server::new(Config::default()).listen_unix(&path),
        hello_app(),
    )
    .await;
    let io = UnixStream::connect(&path).await.unwrap();
    let (mut client, conn) = within(T, "h2 handshake", h2::client::handshake(io))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get("http://x/").body(()).unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    let resp = within(T, "h2 response", resp).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while let Some(chunk) = within(T, "h2 body", body.data()).await {
        let chunk: Bytes = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, b"hello");
    drop(client);
    srv.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_a_unix_socket_is_seen_leaving() {
    let path = sock_path("leave");
    let (slot, reason) = Slot::new();
    let (called, was_called) = Slot::new();
    let app = http_app(move |scope: Scope, _rx: Receiver, _tx: Sender| {
        let (slot, called) = (slot.clone(), called.clone());
        async move {
            called.fire(());
            // Never answers: waits for the client to go.
            let r = scope.connection().disconnected().await;
            slot.fire(r);
            Ok(())
        }
    });
    let srv = Running::start(Server::new(Config::default()).listen_unix(&path), app).await;
    let mut c = UnixStream::connect(&path).await.unwrap();
    c.write_all(b"GET /wait HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    within(T, "the app to be called", was_called).await.unwrap();
    drop(c);
    let r = within(T, "the disconnect reason", reason).await.unwrap();
    assert_eq!(r, DisconnectReason::ClientClosed);
    srv.stop().await;
}

/// Binds `path` with a std listener and drops it: the file stays, nobody listens.
fn leave_stale_socket(path: &Path) {
    let l = std::os::unix::net::UnixListener::bind(path).unwrap();
    drop(l);
    assert!(std::fs::symlink_metadata(path)
        .unwrap()
        .file_type()
        .is_socket());
}

#[tokio::test]
async fn a_stale_socket_is_replaced() {
    let path = sock_path("stale");
    leave_stale_socket(&path);
    let srv = Running::start(
        Server::new(Config::default()).listen_unix(&path),
        hello_app(),
    )
    .await;
    let mut c = UnixStream::connect(&path).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let r = read_to_end(&mut c).await;
    assert!(r.starts_with(b"HTTP/1.1 200"), "{}", show(&r));
    drop(c);
    srv.stop().await;
}

#[tokio::test]
async fn a_live_socket_or_a_regular_file_is_left_alone() {
    // Someone listens there: binding fails, and their socket still works.
    let path = sock_path("live");
    let theirs = tokio::net::UnixListener::bind(&path).unwrap();
    let err = Server::new(Config::default())
        .listen_unix(&path)
        .bind()
        .await
        .unwrap_err();
    assert!(err.is_bind(), "{err}");
    assert!(
        err.to_string().contains("another server is listening"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("unix:{}", path.display())),
        "{err}"
    );
    let _c = UnixStream::connect(&path).await.unwrap();
    within(T, "their accept", theirs.accept()).await.unwrap();
    drop(theirs);
    let _ = std::fs::remove_file(&path);

    // A regular file: never removed.
    let file = sock_path("regular");
    std::fs::write(&file, b"precious").unwrap();
    let err = Server::new(Config::default())
        .listen_unix(&file)
        .bind()
        .await
        .unwrap_err();
    assert!(err.is_bind(), "{err}");
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
    std::fs::remove_file(&file).unwrap();
}
