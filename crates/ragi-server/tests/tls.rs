//! HTTP/1.1 over TLS through a real socket: facts in the scope and the `accepted` notice,
//! failed handshakes, client certificates, certificate reload, disconnect detection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ragi::{DisconnectReason, Headers, Receiver, Scope, SendEvent, Sender, TlsInfo};
use ragi_server::lifecycle::{Accepted, LifecycleListener};
use ragi_server::tls::{Alpn, ClientAuth, TlsOptions, TlsSettings};
use ragi_server::{Config, Server, ServerStats, ShutdownHandle};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Ca {
    fn new() -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, "ragi test CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Self { cert, key }
    }

    fn leaf(&self, cn: &str, sans: &[&str], client: bool) -> Leaf {
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("ragi-tls-it-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Default)]
struct Seen {
    accepted: Mutex<Vec<Option<Arc<TlsInfo>>>>,
    scopes: Mutex<Vec<(String, Option<Arc<TlsInfo>>)>>,
    reasons: Mutex<Vec<DisconnectReason>>,
}

struct Listener(Arc<Seen>);

impl LifecycleListener for Listener {
    fn accepted(&self, n: &Accepted) -> Result<(), ragi::AppError> {
        self.0.accepted.lock().unwrap().push(n.tls.clone());
        Ok(())
    }
}

struct Running {
    addr: SocketAddr,
    seen: Arc<Seen>,
    stats: Arc<ServerStats>,
    shutdown: ShutdownHandle,
    _rt: tokio::runtime::Runtime,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.abort();
    }
}

fn start(settings: Arc<TlsSettings>) -> Running {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let seen = Arc::new(Seen::default());
    let mut cfg = Config::default();
    cfg.shutdown_timeout = Duration::from_millis(200);
    let bound = rt
        .block_on(
            Server::new(cfg)
                .listen("127.0.0.1:0".parse().unwrap())
                .tls(settings)
                .lifecycle(Listener(seen.clone()))
                .bind(),
        )
        .unwrap();
    let addr = bound.local_addrs()[0];
    let stats = bound.stats();
    let shutdown = bound.shutdown_handle();
    let s2 = seen.clone();
    let app = move |scope: Scope, _rx: Receiver, tx: Sender| {
        let seen = s2.clone();
        async move {
            if scope.kind != ragi::ScopeKind::Http {
                return Err(ragi::UnsupportedScope(scope.kind).into());
            }
            seen.scopes
                .lock()
                .unwrap()
                .push((scope.scheme.to_owned(), scope.extensions.tls.clone()));
            if scope.path == "/hold" {
                let r = scope.connection().disconnected().await;
                seen.reasons.lock().unwrap().push(r);
                return Ok(());
            }
            tx.send(SendEvent::response_start(
                200,
                Headers::new().with("content-type", "text/plain"),
            ))
            .await?;
            tx.send(SendEvent::body("Hello over TLS")).await?;
            Ok(())
        }
    };
    rt.spawn(async move { bound.serve(app).await });
    Running {
        addr,
        seen,
        stats,
        shutdown,
        _rt: rt,
    }
}

fn client_config(ca: &Ca, client: Option<&Leaf>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut c = match client {
        None => b.with_no_client_auth(),
        Some(l) => b
            .with_client_auth_cert(
                vec![l.cert_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(l.key_der.clone())),
            )
            .unwrap(),
    };
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(c)
}

fn connect(addr: SocketAddr, cfg: Arc<ClientConfig>) -> StreamOwned<ClientConnection, TcpStream> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let conn = ClientConnection::new(cfg, ServerName::try_from("localhost").unwrap()).unwrap();
    StreamOwned::new(conn, tcp)
}

/// GET / over TLS; returns the response text (the server closes after `connection: close`).
fn get(addr: SocketAddr, cfg: Arc<ClientConfig>) -> std::io::Result<String> {
    let mut s = connect(addr, cfg);
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        // A peer that closes without close_notify; what arrived counts.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn settings(dir: &Dir, ca: &Ca, auth: Option<ClientAuth>) -> Arc<TlsSettings> {
    let leaf = ca.leaf("ragi test server", &["localhost"], false);
    let cert = dir.write("cert.pem", &leaf.cert_pem);
    let key = dir.write("key.pem", &leaf.key_pem);
    let mut o = TlsOptions::new(cert, key);
    if let Some(mode) = auth {
        let ca_path = dir.write("ca.pem", &ca.cert.pem());
        o = o.with_client_auth(mode, ca_path);
    }
    Arc::new(TlsSettings::load_with_alpn(o, Alpn::Http11Only).unwrap())
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn https_request_carries_tls_facts_in_scope_and_notice() {
    let (ca, dir) = (Ca::new(), Dir::new("facts"));
    let srv = start(settings(&dir, &ca, None));
    let text = get(srv.addr, client_config(&ca, None)).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("Hello over TLS"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    let scopes = srv.seen.scopes.lock().unwrap().clone();
    let (scheme, info) = &scopes[0];
    assert_eq!(scheme, "https");
    let info = info.as_ref().expect("tls facts in the scope");
    assert!(
        info.version == "TLSv1.3" || info.version == "TLSv1.2",
        "{info:?}"
    );
    assert!(!info.cipher.is_empty());
    assert_eq!(
        info.alpn.as_deref(),
        Some("http/1.1"),
        "h2 is not offered until HTTP/2 is served"
    );
    assert_eq!(info.sni.as_deref(), Some("localhost"));
    assert!(info.client_cert_chain.is_empty());
    let accepted = srv.seen.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        accepted[0].as_ref(),
        Some(info),
        "the notice carries the same facts"
    );
}

#[test]
fn failed_handshake_gives_no_accepted_notice_and_is_counted() {
    let (ca, dir) = (Ca::new(), Dir::new("fail"));
    let srv = start(settings(&dir, &ca, None));
    // Plain HTTP to a TLS port.
    let mut tcp = TcpStream::connect(srv.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = tcp.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"),
        "served plain HTTP over a TLS port"
    );
    wait_for("the failure count", || {
        srv.stats.tls_handshake_failures() == 1
    });
    assert!(
        srv.seen.accepted.lock().unwrap().is_empty(),
        "no accepted notice for a failed handshake"
    );
    // The server goes on.
    assert!(get(srv.addr, client_config(&ca, None))
        .unwrap()
        .starts_with("HTTP/1.1 200"));
}

#[test]
fn client_certificate_required_and_optional() {
    let (ca, dir) = (Ca::new(), Dir::new("mtls"));
    let client = ca.leaf("ragi test client", &[], true);

    let srv = start(settings(&dir, &ca, Some(ClientAuth::Required)));
    assert!(
        get(srv.addr, client_config(&ca, None)).map_or(true, |t| !t.contains("200 OK")),
        "served without a certificate"
    );
    wait_for("the failure count", || {
        srv.stats.tls_handshake_failures() == 1
    });
    let text = get(srv.addr, client_config(&ca, Some(&client))).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let info = srv.seen.scopes.lock().unwrap()[0].1.clone().unwrap();
    assert_eq!(info.client_cert_chain.len(), 1);
    assert!(info.client_cert_chain[0].starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(
        info.client_subject
            .as_deref()
            .unwrap_or("")
            .contains("CN=ragi test client"),
        "{info:?}"
    );
    drop(srv);

    let dir2 = Dir::new("mtls-opt");
    let srv = start(settings(&dir2, &ca, Some(ClientAuth::Optional)));
    assert!(get(srv.addr, client_config(&ca, None))
        .unwrap()
        .starts_with("HTTP/1.1 200"));
    assert!(get(srv.addr, client_config(&ca, Some(&client)))
        .unwrap()
        .starts_with("HTTP/1.1 200"));
    let scopes = srv.seen.scopes.lock().unwrap().clone();
    assert!(scopes[0].1.as_ref().unwrap().client_subject.is_none());
    assert!(scopes[1].1.as_ref().unwrap().client_subject.is_some());
}

#[test]
fn certificates_reload_without_dropping_live_connections() {
    let (ca, dir) = (Ca::new(), Dir::new("reload"));
    let settings = settings(&dir, &ca, None);
    let srv = start(settings.clone());
    // A live connection, mid-request.
    let mut live = connect(srv.addr, client_config(&ca, None));
    live.write_all(b"GET /hold HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    wait_for("the held request", || {
        srv.seen.scopes.lock().unwrap().len() == 1
    });

    // New certificate from another CA; the old client config no longer trusts the server.
    let ca2 = Ca::new();
    let leaf2 = ca2.leaf("renewed", &["localhost"], false);
    dir.write("cert.pem", &leaf2.cert_pem);
    dir.write("key.pem", &leaf2.key_pem);
    settings.reload().unwrap();
    assert!(get(srv.addr, client_config(&ca2, None))
        .unwrap()
        .starts_with("HTTP/1.1 200"));
    assert!(
        get(srv.addr, client_config(&ca, None)).is_err(),
        "new handshakes use the new certificate"
    );
    // The live connection was not dropped: its request is still held, and its end is seen.
    assert!(srv.seen.reasons.lock().unwrap().is_empty());
    live.sock.shutdown(std::net::Shutdown::Write).unwrap();
    wait_for("the held request to end", || {
        !srv.seen.reasons.lock().unwrap().is_empty()
    });
    assert_eq!(
        srv.seen.reasons.lock().unwrap()[0],
        DisconnectReason::ClientClosed
    );
}

#[test]
fn alpn_prefers_h2_and_falls_back_to_http11() {
    let (ca, dir) = (Ca::new(), Dir::new("alpn"));
    let leaf = ca.leaf("ragi test server", &["localhost"], false);
    let options = TlsOptions::new(
        dir.write("cert.pem", &leaf.cert_pem),
        dir.write("key.pem", &leaf.key_pem),
    );
    let srv = start(Arc::new(
        TlsSettings::load_with_alpn(options, Alpn::Http2AndHttp11).unwrap(),
    ));

    // A client offering only http/1.1 is served HTTP/1.1.
    let mut only11 = (*client_config(&ca, None)).clone();
    only11.alpn_protocols = vec![b"http/1.1".to_vec()];
    let text = get(srv.addr, Arc::new(only11)).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert_eq!(
        srv.seen.scopes.lock().unwrap()[0]
            .1
            .as_ref()
            .unwrap()
            .alpn
            .as_deref(),
        Some("http/1.1")
    );

    // A client offering h2 first gets h2 (the handshake alone shows it).
    let mut s = connect(srv.addr, client_config(&ca, None));
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    assert_eq!(s.conn.alpn_protocol(), Some(b"h2".as_slice()));
    wait_for("two accepted notices", || {
        srv.seen.accepted.lock().unwrap().len() == 2
    });
    let accepted = srv.seen.accepted.lock().unwrap().clone();
    assert_eq!(accepted[1].as_ref().unwrap().alpn.as_deref(), Some("h2"));
}

#[test]
fn h2_over_tls_via_alpn() {
    let (ca, dir) = (Ca::new(), Dir::new("h2tls"));
    let leaf = ca.leaf("ragi test server", &["localhost"], false);
    let options = TlsOptions::new(
        dir.write("cert.pem", &leaf.cert_pem),
        dir.write("key.pem", &leaf.key_pem),
    );
    let srv = start(Arc::new(
        TlsSettings::load_with_alpn(options, Alpn::Http2AndHttp11).unwrap(),
    ));
    let addr = srv.addr;
    let cfg = client_config(&ca, None); // offers h2 first
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
        let (mut h2c, conn) = h2::client::handshake(tls).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::builder()
            .uri("https://localhost/")
            .body(())
            .unwrap();
        let (resp, _) = h2c.send_request(req, true).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(5), resp)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut recv = resp.into_body();
        let mut got = Vec::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.unwrap();
            let _ = recv.flow_control().release_capacity(chunk.len());
            got.extend_from_slice(&chunk);
        }
        got
    });
    assert_eq!(body, b"Hello over TLS");
    let scopes = srv.seen.scopes.lock().unwrap().clone();
    let (scheme, info) = &scopes[0];
    assert_eq!(scheme, "https");
    assert_eq!(info.as_ref().unwrap().alpn.as_deref(), Some("h2"));
}

/// A WebSocket over TLS (`wss`): the upgrade, an echo, the client's close; the scope says
/// `wss` and carries the TLS facts.
#[test]
fn websocket_over_tls() {
    let dir = Dir::new("wss");
    let ca = Ca::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bound = rt
        .block_on(
            Server::new(Config::default())
                .listen("127.0.0.1:0".parse().unwrap())
                .tls(settings(&dir, &ca, None))
                .bind(),
        )
        .unwrap();
    let addr = bound.local_addrs()[0];
    let shutdown = bound.shutdown_handle();
    let (tx, rx) = std::sync::mpsc::channel::<(String, bool, Option<DisconnectReason>)>();
    let app = move |scope: Scope, mut receive: Receiver, send: Sender| {
        let tx = tx.clone();
        async move {
            if scope.kind != ragi::ScopeKind::WebSocket {
                return Err(ragi::UnsupportedScope(scope.kind).into());
            }
            receive.receive().await;
            send.send(SendEvent::WebSocketAccept {
                subprotocol: None,
                headers: Headers::new(),
            })
            .await?;
            while let ragi::ReceiveEvent::WebSocketReceive(m) = receive.receive().await {
                send.send(SendEvent::WebSocketSend(m)).await?;
            }
            let _ = tx.send((
                scope.scheme.to_owned(),
                scope.extensions.tls.is_some(),
                scope.connection().disconnect_reason(),
            ));
            Ok(())
        }
    };
    rt.spawn(async move { bound.serve(app).await });
    let mut s = connect(addr, client_config(&ca, None));
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // A masked text frame "tls", then the echo.
    let key = [9u8, 8, 7, 6];
    let mut frame = vec![0x81, 0x83];
    frame.extend_from_slice(&key);
    frame.extend(b"tls".iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    s.write_all(&frame).unwrap();
    let mut echo = [0u8; 5];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, &[0x81, 3, b't', b'l', b's']);
    // Close 1000: the server answers with 1000.
    let mut close = vec![0x88, 0x82];
    close.extend_from_slice(&key);
    close.extend([0x03 ^ key[0], 0xe8 ^ key[1]]);
    s.write_all(&close).unwrap();
    let mut answer = [0u8; 4];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(answer, [0x88, 2, 0x03, 0xe8]);
    let (scheme, tls, reason) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(scheme, "wss");
    assert!(tls);
    assert_eq!(reason, Some(DisconnectReason::ClientClosed));
    shutdown.abort();
}
