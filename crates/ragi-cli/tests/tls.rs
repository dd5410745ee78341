//! `ragi probe` over TLS: HTTPS answers with the TLS facts in `/connections`, and SIGHUP
//! reloads the certificate without dropping a live connection.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use support::Server;

/// A self-signed certificate for `localhost` with common name `cn`: (cert PEM, key PEM, DER).
fn self_signed(cn: &str) -> (String, String, CertificateDer<'static>) {
    let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().clone())
}

fn client(trust: &CertificateDer<'static>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(trust.clone()).unwrap();
    let mut c =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

fn connect(addr: &str, cfg: Arc<ClientConfig>) -> StreamOwned<ClientConnection, TcpStream> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let conn = ClientConnection::new(cfg, ServerName::try_from("localhost").unwrap()).unwrap();
    StreamOwned::new(conn, tcp)
}

/// One keep-alive `GET /` on `s`; returns the response head and body as text.
fn get(s: &mut StreamOwned<ClientConnection, TcpStream>) -> String {
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"Hello, World!") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// `GET /connections` over a fresh TLS connection.
fn connections(addr: &str, trust: &CertificateDer<'static>) -> Vec<serde_json::Value> {
    let mut s = connect(addr, client(trust, &[b"http/1.1"]));
    s.write_all(b"GET /connections HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn https_and_sighup_reload_keep_live_connections() {
    let dir = Dir(std::env::temp_dir().join(format!("ragi-cli-tls-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    let (c1, k1, der1) = self_signed("first");
    std::fs::write(&cert, c1).unwrap();
    std::fs::write(&key, k1).unwrap();
    let s = Server::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let addr = s.hostport();

    // HTTP/1.1 over TLS (the client offers only http/1.1), kept alive.
    let mut live = connect(&addr, client(&der1, &[b"http/1.1"]));
    assert!(get(&mut live).starts_with("HTTP/1.1 200 OK"));

    // New certificate on disk, then SIGHUP.
    let (c2, k2, der2) = self_signed("second");
    std::fs::write(&cert, c2).unwrap();
    std::fs::write(&key, k2).unwrap();
    s.signal("HUP");
    // New handshakes get the new certificate (bounded wait for the reload).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut fresh = connect(&addr, client(&der2, &[b"http/1.1"]));
        let ok = fresh.conn.complete_io(&mut fresh.sock).is_ok() && !fresh.conn.is_handshaking();
        if ok {
            assert!(get(&mut fresh).starts_with("HTTP/1.1 200 OK"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload the certificate"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The live connection was not dropped.
    assert!(get(&mut live).starts_with("HTTP/1.1 200 OK"));

    // /connections (asked over TLS too) names the protocol and the TLS facts.
    let peer = live.sock.local_addr().unwrap().to_string();
    drop(live);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let closed = loop {
        let all = connections(&addr, &der2);
        if let Some(n) = all
            .iter()
            .find(|n| n["peer"] == peer.as_str() && n["event"] == "closed")
        {
            break n.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no closed notice for {peer}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(closed["protocol"], "http/1.1", "{closed}");
    assert_eq!(closed["tls"]["alpn"], "http/1.1", "{closed}");
    assert_eq!(closed["tls"]["sni"], "localhost", "{closed}");
    assert!(
        closed["tls"]["version"]
            .as_str()
            .unwrap()
            .starts_with("TLSv1."),
        "{closed}"
    );
}

/// A CA (certificate and key) for client certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(cn: &str) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// A client certificate with common name `cn`, signed by this CA: (chain, key).
    fn client(
        &self,
        cn: &str,
    ) -> (
        Vec<CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        (vec![cert.der().clone()], key)
    }
}

/// A client that presents `cert` (a chain and its key).
fn client_with_cert(
    trust: &CertificateDer<'static>,
    cert: (
        Vec<CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(trust.clone()).unwrap();
    let mut c =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(cert.0, cert.1)
            .unwrap();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

/// The `accepted` notice of the connection from `peer`.
fn accepted_notice(addr: &str, trust: &CertificateDer<'static>, peer: &str) -> serde_json::Value {
    connections(addr, trust)
        .into_iter()
        .find(|n| n["peer"] == peer && n["event"] == "accepted")
        .unwrap_or_else(|| panic!("no accepted notice for {peer}"))
}

/// `--tls-client-auth optional` admits a certificate that does not verify and says why;
/// `required` refuses it. A certificate from the trusted CA verifies in both.
#[test]
fn client_certificates_optional_and_required() {
    let dir = Dir(std::env::temp_dir().join(format!("ragi-cli-mtls-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let (cert, key, ca_path) = (
        dir.0.join("cert.pem"),
        dir.0.join("key.pem"),
        dir.0.join("ca.pem"),
    );
    let (c, k, server_der) = self_signed("server");
    std::fs::write(&cert, c).unwrap();
    std::fs::write(&key, k).unwrap();
    let trusted = Ca::new("trusted clients");
    let stranger = Ca::new("someone else");
    std::fs::write(&ca_path, trusted.cert.pem()).unwrap();

    let start = |mode: &str| {
        Server::start(&[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--tls-client-ca",
            ca_path.to_str().unwrap(),
            "--tls-client-auth",
            mode,
        ])
    };

    // optional: the stranger's certificate is admitted, with its subject and why it failed.
    let s = start("optional");
    let addr = s.hostport();
    let mut c = connect(
        &addr,
        client_with_cert(&server_der, stranger.client("mallory")),
    );
    assert!(get(&mut c).starts_with("HTTP/1.1 200 OK"));
    let peer = c.sock.local_addr().unwrap().to_string();
    let n = accepted_notice(&addr, &server_der, &peer);
    assert_eq!(n["tls"]["client_subject"], "CN=mallory", "{n}");
    let error = n["tls"]["verification_error"].as_str().unwrap_or_default();
    assert!(error.contains("UnknownIssuer"), "{n}");
    // A trusted certificate: no error.
    let mut c = connect(
        &addr,
        client_with_cert(&server_der, trusted.client("alice")),
    );
    assert!(get(&mut c).starts_with("HTTP/1.1 200 OK"));
    let peer = c.sock.local_addr().unwrap().to_string();
    let n = accepted_notice(&addr, &server_der, &peer);
    assert_eq!(n["tls"]["client_subject"], "CN=alice", "{n}");
    assert!(n["tls"]["verification_error"].is_null(), "{n}");
    drop(s);

    // required: the stranger fails the handshake; the trusted client is served.
    let s = start("required");
    let addr = s.hostport();
    let mut c = connect(
        &addr,
        client_with_cert(&server_der, stranger.client("mallory")),
    );
    let refused = c
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .and_then(|()| c.read(&mut [0u8; 64]));
    assert!(
        matches!(refused, Err(_) | Ok(0)),
        "an untrusted certificate was served: {refused:?}"
    );
    let mut c = connect(
        &addr,
        client_with_cert(&server_der, trusted.client("alice")),
    );
    assert!(get(&mut c).starts_with("HTTP/1.1 200 OK"));
}
