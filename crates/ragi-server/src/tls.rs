//! TLS for the server: load certificates, build a reloadable [`rustls`] configuration, run
//! one connection's TLS state machine without doing I/O, and report the connection's facts.
//!
//! # The four layers
//!
//! 1. **What to load** — [`TlsOptions`] names the files: the certificate chain and private key
//!    (PEM), and, for client certificates, the CA bundle that signs them and whether a client
//!    certificate is optional or required ([`ClientAuth`]).
//! 2. **A loaded, reloadable configuration** — [`TlsSettings::load`] reads the files and builds
//!    a [`rustls::ServerConfig`]: TLS 1.2 and 1.3 only (nothing older exists in rustls), ALPN
//!    `h2` then `http/1.1` (or only `http/1.1`, see [`Alpn`]), and client-certificate
//!    verification against the CA bundle. [`TlsSettings::current`] hands out the configuration
//!    new handshakes should use; [`TlsSettings::reload`] re-reads the files (say on `SIGHUP`,
//!    after a certificate renewal) and swaps the configuration atomically. Connections that are
//!    already running keep the configuration they started with, and a reload that fails keeps
//!    the old configuration and says why.
//! 3. **One connection, sans I/O** — [`TlsSession`] wraps a [`rustls::ServerConnection`]. It
//!    never touches a socket: the connection driver reads ciphertext from the socket itself
//!    (non-blocking, on its own schedule) and hands it over with [`TlsSession::read_tls_from`],
//!    takes the decrypted bytes with [`TlsSession::take_plaintext`], gives response bytes to
//!    [`TlsSession::write_plaintext`], and collects the ciphertext to send with
//!    [`TlsSession::write_tls_into`]. This keeps the driver's detection of a vanished client
//!    (spec §3) exactly as it is on plain TCP: TLS is just a transform between the socket
//!    buffers and the HTTP parser.
//! 4. **Facts** — [`tls_info`] (or [`TlsSession::info`]) fills a [`ragi::TlsInfo`] for the
//!    lifecycle listener's `accepted` notice (spec §4) and the scope's `tls` extension
//!    (spec §6): protocol version, cipher suite, ALPN, SNI, the client's certificate chain as
//!    PEM (leaf first) and the client's subject as an RFC 4514 string such as
//!    `CN=client,O=Example`.
//!
//! # A driver's loop
//!
//! ```no_run
//! use bytes::BytesMut;
//! use ragi_server::tls::{TlsOptions, TlsSettings, TlsSession};
//!
//! # fn main() -> Result<(), ragi_server::tls::TlsError> {
//! let settings = TlsSettings::load(TlsOptions::new("cert.pem", "key.pem"))?;
//! let mut session = TlsSession::new(settings.current())?;
//!
//! let mut from_socket: Vec<u8> = Vec::new(); // ciphertext read from the socket
//! let mut to_socket: Vec<u8> = Vec::new(); // ciphertext to write to the socket
//! let mut plaintext = BytesMut::new(); // what the HTTP parser reads
//!
//! // Whenever the socket was readable and some bytes arrived:
//! let n = session.feed(&from_socket, &mut plaintext)?;
//! from_socket.drain(..n);
//! // Whenever the HTTP side has bytes to send:
//! session.write_plaintext(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
//! // Before waiting on the socket again: send whatever TLS wants sent (handshake messages,
//! // alerts, encrypted records).
//! session.write_tls_into(&mut to_socket)?;
//! // When the handshake has finished (`!session.is_handshaking()`), `session.info()` holds
//! // the connection's facts.
//! # Ok(())
//! # }
//! ```
//!
//! An error from [`TlsSession::read_tls_from`] (a handshake failure, a bad record, a fatal
//! alert from the peer) leaves an alert for the peer queued: write it out with
//! [`TlsSession::write_tls_into`] before closing the socket. The connection's disconnect
//! reason is then `read_error` (spec §3).
//!
//! # Closing
//!
//! The client may end TLS cleanly with a `close_notify` alert: [`TlsSession::peer_closed`]
//! turns true and no more plaintext arrives — the TLS equivalent of a TCP FIN. Many clients
//! just close the TCP connection instead; the driver sees that on the socket as usual. To
//! close from the server's side, [`TlsSession::send_close_notify`], then write out the
//! ciphertext and close the socket.
//!
//! # Client certificates
//!
//! With [`ClientAuth::Required`] a client without a certificate signed by the CA bundle fails
//! the handshake. With [`ClientAuth::Optional`] a client may present no certificate at all, or
//! one that does not verify (unknown issuer, expired, wrong usage): the handshake completes,
//! and [`ragi::TlsInfo::verification_error`] says why the certificate failed, next to its
//! chain and subject. **An app that trusts a client certificate must check that
//! `verification_error` is `None`**: a subject alone proves nothing in `optional` mode. What
//! is never admitted is a client that cannot prove it holds the certificate's private key (the
//! handshake signature is checked in every mode).
//!
//! rustls has no "verify but go on" mode, so `optional` wraps its WebPKI verifier: a failed
//! verification is recorded and the handshake goes on. The record travels from the verifier
//! (shared by every connection) to this connection's [`TlsSession`] through a thread-local
//! slot that [`TlsSession::read_tls_from`] clears before and reads right after rustls
//! processes the handshake messages, in the same synchronous call.

use std::fmt;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use bytes::BytesMut;
use ragi::TlsInfo;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::UnixTime;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, ProtocolVersion, RootCertStore, ServerConfig,
    ServerConnection, SignatureScheme,
};

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/// Whether the server asks TLS clients for a certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClientAuth {
    /// No client certificate is asked for (the default).
    #[default]
    None,
    /// A client certificate is asked for; a client may send none, or one that does not verify
    /// against the client CA bundle, which is then reported in
    /// [`ragi::TlsInfo::verification_error`] (see the [module documentation](self)).
    Optional,
    /// A client certificate signed by the client CA bundle is required; a client without one
    /// fails the handshake.
    Required,
}

/// Which application protocols the server offers through ALPN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Alpn {
    /// `h2`, then `http/1.1` (the default): a client offering both gets HTTP/2.
    #[default]
    Http2AndHttp11,
    /// Only `http/1.1`, for a server that does not speak HTTP/2.
    Http11Only,
}

impl Alpn {
    /// The protocol identifiers, in the server's order of preference.
    pub fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Alpn::Http2AndHttp11 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Alpn::Http11Only => vec![b"http/1.1".to_vec()],
        }
    }
}

/// Where the server's TLS material lives.
///
/// Build with [`TlsOptions::new`] and, for client certificates,
/// [`with_client_auth`](TlsOptions::with_client_auth).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsOptions {
    /// The server's certificate chain, PEM, leaf first (intermediates after it).
    pub cert_path: PathBuf,
    /// The server's private key, PEM: PKCS#8 (`BEGIN PRIVATE KEY`), PKCS#1 RSA
    /// (`BEGIN RSA PRIVATE KEY`) or SEC1 EC (`BEGIN EC PRIVATE KEY`). Not encrypted. May be the
    /// same file as the certificate.
    pub key_path: PathBuf,
    /// The CA certificates (PEM) that sign acceptable client certificates. Required when
    /// `client_auth` is not [`ClientAuth::None`], and must be absent when it is.
    pub client_ca_path: Option<PathBuf>,
    /// Whether to ask clients for a certificate.
    pub client_auth: ClientAuth,
}

impl TlsOptions {
    /// A certificate chain and key, without client certificates.
    pub fn new(cert_path: impl Into<PathBuf>, key_path: impl Into<PathBuf>) -> Self {
        Self {
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            client_ca_path: None,
            client_auth: ClientAuth::None,
        }
    }

    /// Ask clients for a certificate signed by one of the CAs in `client_ca_path`.
    pub fn with_client_auth(
        mut self,
        mode: ClientAuth,
        client_ca_path: impl Into<PathBuf>,
    ) -> Self {
        self.client_auth = mode;
        self.client_ca_path = Some(client_ca_path.into());
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A TLS error: loading the certificate material, or a failure on a connection.
///
/// Ask it with the `is_*` predicates; the `Display` text names the file and the problem, and is
/// meant for people (it may change).
#[derive(Debug)]
pub struct TlsError {
    kind: Kind,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

#[derive(Debug)]
enum Kind {
    /// A file could not be read.
    Io { role: Role, path: PathBuf },
    /// A file is not valid PEM.
    InvalidPem { role: Role, path: PathBuf },
    /// A file meant to hold certificates holds none.
    NoCertificate { role: Role, path: PathBuf },
    /// The key file holds no usable private key.
    NoKey { path: PathBuf, encrypted: bool },
    /// The options contradict themselves.
    Config(String),
    /// rustls refused the material (key mismatch, unsupported key, unusable CA).
    Rejected { what: String },
    /// A TLS failure on a connection: handshake, record, alert.
    Session,
    /// An I/O error inside the session (a buffer rustls would not grow).
    SessionIo,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Certificate,
    Key,
    ClientCa,
}

impl Role {
    fn describe(self) -> &'static str {
        match self {
            Role::Certificate => "TLS certificate file",
            Role::Key => "TLS private key file",
            Role::ClientCa => "TLS client CA file",
        }
    }
}

impl TlsError {
    fn new(kind: Kind) -> Self {
        Self { kind, source: None }
    }

    fn with_source(kind: Kind, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            kind,
            source: Some(Box::new(source)),
        }
    }

    /// A file could not be read (missing, unreadable).
    pub fn is_io(&self) -> bool {
        matches!(self.kind, Kind::Io { .. })
    }

    /// A file is not valid PEM (a broken block: bad base64, a missing `END` line).
    pub fn is_invalid_pem(&self) -> bool {
        matches!(self.kind, Kind::InvalidPem { .. })
    }

    /// The certificate file (or the client CA file) holds no certificate.
    pub fn is_no_certificate(&self) -> bool {
        matches!(self.kind, Kind::NoCertificate { .. })
    }

    /// The key file holds no (unencrypted) private key.
    pub fn is_no_key(&self) -> bool {
        matches!(self.kind, Kind::NoKey { .. })
    }

    /// The options contradict themselves, e.g. client certificates are wanted but no CA file
    /// is named.
    pub fn is_config(&self) -> bool {
        matches!(self.kind, Kind::Config(_))
    }

    /// rustls refused the material it was given: the key does not match the certificate, the
    /// key type is not supported, a CA certificate is unusable.
    pub fn is_rejected_by_rustls(&self) -> bool {
        matches!(self.kind, Kind::Rejected { .. })
    }

    /// The private key does not belong to the certificate (a kind of
    /// [`is_rejected_by_rustls`](Self::is_rejected_by_rustls)).
    pub fn is_key_mismatch(&self) -> bool {
        matches!(
            self.rustls_error(),
            Some(rustls::Error::InconsistentKeys(
                rustls::InconsistentKeys::KeyMismatch
            ))
        ) && self.is_rejected_by_rustls()
    }

    /// A TLS failure on a connection: the handshake failed (no shared version or cipher, a
    /// missing or untrusted client certificate), a record was corrupt, or the peer sent a fatal
    /// alert. On a connection, report it as `read_error`.
    pub fn is_session(&self) -> bool {
        matches!(self.kind, Kind::Session | Kind::SessionIo)
    }

    /// The file the error is about, when it is about one.
    pub fn path(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Io { path, .. }
            | Kind::InvalidPem { path, .. }
            | Kind::NoCertificate { path, .. }
            | Kind::NoKey { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The rustls error underneath, for a session failure or a rejection.
    pub fn rustls_error(&self) -> Option<&rustls::Error> {
        self.source.as_deref()?.downcast_ref::<rustls::Error>()
    }

    fn session(e: rustls::Error) -> Self {
        Self::with_source(Kind::Session, e)
    }

    fn session_io(e: io::Error) -> Self {
        Self::with_source(Kind::SessionIo, e)
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Io { role, path } => {
                write!(f, "cannot read {} `{}`", role.describe(), path.display())?
            }
            Kind::InvalidPem { role, path } => write!(
                f,
                "{} `{}` is not valid PEM",
                role.describe(),
                path.display()
            )?,
            Kind::NoCertificate { role, path } => write!(
                f,
                "{} `{}` holds no certificate (expected a PEM `BEGIN CERTIFICATE` block)",
                role.describe(),
                path.display()
            )?,
            Kind::NoKey { path, encrypted } => {
                write!(
                    f,
                    "{} `{}` holds no private key (expected a PEM `BEGIN PRIVATE KEY`, \
                     `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY` block)",
                    Role::Key.describe(),
                    path.display()
                )?;
                if *encrypted {
                    f.write_str("; encrypted keys are not supported, decrypt it first")?;
                }
            }
            Kind::Config(m) => write!(f, "invalid TLS settings: {m}")?,
            Kind::Rejected { what } => f.write_str(what)?,
            Kind::Session => f.write_str("TLS error")?,
            Kind::SessionIo => f.write_str("TLS I/O error")?,
        }
        if let Some(s) = &self.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// The crypto provider: *ring*, chosen explicitly so the result does not depend on which
/// provider happens to be the process default.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The protocol versions the server accepts: TLS 1.2 and TLS 1.3.
const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn read_file(role: Role, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| {
        TlsError::with_source(
            Kind::Io {
                role,
                path: path.to_owned(),
            },
            e,
        )
    })
}

fn pem_error(role: Role, path: &Path, e: pem::Error) -> TlsError {
    match e {
        pem::Error::Io(e) => TlsError::with_source(
            Kind::Io {
                role,
                path: path.to_owned(),
            },
            e,
        ),
        e => TlsError::with_source(
            Kind::InvalidPem {
                role,
                path: path.to_owned(),
            },
            e,
        ),
    }
}

/// Every certificate in a PEM file, in file order; an error if there is none.
fn load_certs(role: Role, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = read_file(role, path)?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(role, path, e))?;
    if certs.is_empty() {
        return Err(TlsError::new(Kind::NoCertificate {
            role,
            path: path.to_owned(),
        }));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = read_file(Role::Key, path)?;
    match PrivateKeyDer::from_pem_slice(&data) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::new(Kind::NoKey {
            path: path.to_owned(),
            encrypted: data.windows(b"ENCRYPTED".len()).any(|w| w == b"ENCRYPTED"),
        })),
        Err(e) => Err(pem_error(Role::Key, path, e)),
    }
}

/// Build a [`rustls::ServerConfig`] from `options`: what [`TlsSettings::load`] and
/// [`TlsSettings::reload`] do, without the reloadable holder.
///
/// TLS 1.2 and 1.3 are enabled (1.2 is the minimum), the *ring* crypto provider is used, ALPN
/// offers `alpn`'s protocols, and client certificates are verified against
/// `options.client_ca_path` as `options.client_auth` says.
pub fn build_server_config(options: &TlsOptions, alpn: Alpn) -> Result<ServerConfig, TlsError> {
    // Check the options before touching the disk, so a contradiction is reported as such.
    let client_ca = match (options.client_auth, &options.client_ca_path) {
        (ClientAuth::None, None) => None,
        (ClientAuth::None, Some(p)) => {
            return Err(TlsError::new(Kind::Config(format!(
                "a client CA file (`{}`) is given but client certificates are not asked for; \
                 set client_auth to optional or required",
                p.display()
            ))))
        }
        (_, None) => {
            return Err(TlsError::new(Kind::Config(
                "client certificates are asked for but no client CA file is given".into(),
            )))
        }
        (mode, Some(p)) => Some((mode, p)),
    };

    let chain = load_certs(Role::Certificate, &options.cert_path)?;
    let key = load_key(&options.key_path)?;
    let provider = provider();

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| {
            TlsError::with_source(
                Kind::Rejected {
                    what: "rustls rejected the TLS protocol versions".into(),
                },
                e,
            )
        })?;

    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some((mode, ca_path)) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs(Role::ClientCa, ca_path)? {
                roots.add(cert).map_err(|e| {
                    TlsError::with_source(
                        Kind::Rejected {
                            what: format!(
                                "a certificate in {} `{}` cannot be a trust anchor",
                                Role::ClientCa.describe(),
                                ca_path.display()
                            ),
                        },
                        e,
                    )
                })?;
            }
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if mode == ClientAuth::Optional {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|e| {
                TlsError::with_source(
                    Kind::Rejected {
                        what: format!(
                            "rustls cannot verify client certificates with {} `{}`",
                            Role::ClientCa.describe(),
                            ca_path.display()
                        ),
                    },
                    e,
                )
            })?;
            if mode == ClientAuth::Optional {
                builder.with_client_cert_verifier(Arc::new(RecordingVerifier { inner: verifier }))
            } else {
                builder.with_client_cert_verifier(verifier)
            }
        }
    };

    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        let what = match &e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => format!(
                "{} `{}` does not match the certificate in `{}`",
                Role::Key.describe(),
                options.key_path.display(),
                options.cert_path.display()
            ),
            _ => format!(
                "rustls rejected the certificate `{}` with the key `{}`",
                options.cert_path.display(),
                options.key_path.display()
            ),
        };
        TlsError::with_source(Kind::Rejected { what }, e)
    })?;
    config.alpn_protocols = alpn.protocols();
    Ok(config)
}

// ---------------------------------------------------------------------------------------------
// Client certificates that fail verification, in `optional` mode
// ---------------------------------------------------------------------------------------------

thread_local! {
    /// Why the last client certificate verified on this thread failed (see the module
    /// documentation): set by [`RecordingVerifier`], taken by [`TlsSession::read_tls_from`].
    static VERIFICATION_ERROR: std::cell::RefCell<Option<String>> =
        const { std::cell::RefCell::new(None) };
}

/// The WebPKI verifier, except that a certificate that fails verification is admitted and the
/// failure recorded for the connection's [`TlsInfo`]. The handshake signature is still checked
/// (the client must hold the certificate's key).
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for RecordingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Ok(v) => Ok(v),
            Err(e) => {
                VERIFICATION_ERROR.with(|slot| *slot.borrow_mut() = Some(e.to_string()));
                Ok(ClientCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

// ---------------------------------------------------------------------------------------------
// The reloadable settings
// ---------------------------------------------------------------------------------------------

/// The server's TLS configuration, loaded from [`TlsOptions`] and reloadable while the server
/// runs.
///
/// Share it (`Arc<TlsSettings>`) between the acceptor and whatever triggers reloads. Each new
/// connection takes [`current`](Self::current); a [`reload`](Self::reload) affects only
/// connections that start after it.
#[derive(Debug)]
pub struct TlsSettings {
    options: TlsOptions,
    alpn: Alpn,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsSettings {
    /// Load the files named by `options`, offering ALPN `h2` and `http/1.1`.
    pub fn load(options: TlsOptions) -> Result<Self, TlsError> {
        Self::load_with_alpn(options, Alpn::Http2AndHttp11)
    }

    /// Load the files named by `options`, offering the ALPN protocols `alpn` names
    /// ([`Alpn::Http11Only`] for a server without HTTP/2).
    pub fn load_with_alpn(options: TlsOptions, alpn: Alpn) -> Result<Self, TlsError> {
        let config = build_server_config(&options, alpn)?;
        Ok(Self {
            options,
            alpn,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// The configuration new handshakes should use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-read the files and, if they make a valid configuration, swap it in: handshakes that
    /// start afterwards use it, connections already running keep theirs. On an error the old
    /// configuration stays in force and the error says what is wrong with the files.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(build_server_config(&self.options, self.alpn)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }

    /// The options the settings were loaded from.
    pub fn options(&self) -> &TlsOptions {
        &self.options
    }

    /// The ALPN protocols offered.
    pub fn alpn(&self) -> Alpn {
        self.alpn
    }

    /// A session for a new connection, on the current configuration.
    pub fn new_session(&self) -> Result<TlsSession, TlsError> {
        TlsSession::new(self.current())
    }
}

// ---------------------------------------------------------------------------------------------
// The sans-I/O session
// ---------------------------------------------------------------------------------------------

/// One TLS connection's state machine, without I/O: the driver moves the bytes.
///
/// Ciphertext from the socket goes in through [`read_tls_from`](Self::read_tls_from) (or
/// [`feed`](Self::feed), which also collects the plaintext), plaintext comes out of
/// [`take_plaintext`](Self::take_plaintext); plaintext to send goes in through
/// [`write_plaintext`](Self::write_plaintext) and ciphertext for the socket comes out of
/// [`write_tls_into`](Self::write_tls_into). See the [module documentation](self).
#[derive(Debug)]
pub struct TlsSession {
    conn: ServerConnection,
    peer_closed: bool,
    /// Why the client's certificate failed verification (`optional` client auth).
    verification_error: Option<String>,
}

impl TlsSession {
    /// A session for a new connection. rustls' own cap on buffered outgoing data is lifted:
    /// the driver bounds its output with its own watermarks.
    pub fn new(config: Arc<ServerConfig>) -> Result<Self, TlsError> {
        let mut conn = ServerConnection::new(config).map_err(TlsError::session)?;
        conn.set_buffer_limit(None);
        Ok(Self {
            conn,
            peer_closed: false,
            verification_error: None,
        })
    }

    /// Hand over ciphertext received from the socket and process it (handshake messages are
    /// answered, records decrypted). Returns how many bytes were taken.
    ///
    /// Fewer than `data.len()` bytes are taken when rustls' buffer of decrypted plaintext is
    /// full (take the plaintext with [`take_plaintext`](Self::take_plaintext), then offer the
    /// rest again) or when the peer sent `close_notify` (whatever follows it is ignored).
    /// [`feed`](Self::feed) does that loop.
    ///
    /// An error is a TLS failure ([`TlsError::is_session`]): an alert for the peer may be
    /// queued, so write it out with [`write_tls_into`](Self::write_tls_into) before closing.
    pub fn read_tls_from(&mut self, data: &[u8]) -> Result<usize, TlsError> {
        let mut rest = data;
        // Never call `read_tls` with an empty reader: rustls takes a read of 0 bytes as the
        // end of the TCP stream.
        while !rest.is_empty() && !self.peer_closed {
            match self.conn.read_tls(&mut rest) {
                Ok(0) => break,
                Ok(_) => {
                    let handshaking = self.conn.is_handshaking();
                    if handshaking {
                        VERIFICATION_ERROR.with(|slot| slot.borrow_mut().take());
                    }
                    let processed = self.conn.process_new_packets();
                    if handshaking {
                        if let Some(e) = VERIFICATION_ERROR.with(|slot| slot.borrow_mut().take()) {
                            self.verification_error = Some(e);
                        }
                    }
                    let state = processed.map_err(TlsError::session)?;
                    if state.peer_has_closed() {
                        self.peer_closed = true;
                    }
                }
                // The plaintext buffer is full: the caller must drain it first.
                Err(e) if e.kind() == io::ErrorKind::Other => break,
                Err(e) => return Err(TlsError::session_io(e)),
            }
        }
        Ok(data.len() - rest.len())
    }

    /// Move the decrypted plaintext received so far into `out`; returns how many bytes were
    /// appended (0 when there was none). After the peer's `close_notify`,
    /// [`peer_closed`](Self::peer_closed) is true and no more plaintext will come.
    pub fn take_plaintext(&mut self, out: &mut BytesMut) -> Result<usize, TlsError> {
        let mut total = 0;
        let mut reader = self.conn.reader();
        loop {
            match reader.fill_buf() {
                Ok([]) => {
                    // Clean close_notify, all data taken.
                    self.peer_closed = true;
                    break;
                }
                Ok(chunk) => {
                    let n = chunk.len();
                    out.extend_from_slice(chunk);
                    reader.consume(n);
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(TlsError::session_io(e)),
            }
        }
        Ok(total)
    }

    /// [`read_tls_from`](Self::read_tls_from) and [`take_plaintext`](Self::take_plaintext)
    /// together, until `data` is used up (or the peer closed): returns how many bytes of
    /// `data` were taken, with the plaintext appended to `plaintext`.
    pub fn feed(&mut self, data: &[u8], plaintext: &mut BytesMut) -> Result<usize, TlsError> {
        let mut taken = 0;
        loop {
            let n = self.read_tls_from(&data[taken..])?;
            taken += n;
            let got = self.take_plaintext(plaintext)?;
            if taken == data.len() || self.peer_closed || (n == 0 && got == 0) {
                return Ok(taken);
            }
        }
    }

    /// Encrypt plaintext for the peer. Before the handshake ends it is held back and sent
    /// once it has. Collect the ciphertext with [`write_tls_into`](Self::write_tls_into).
    pub fn write_plaintext(&mut self, data: &[u8]) -> Result<(), TlsError> {
        self.conn
            .writer()
            .write_all(data)
            .map_err(TlsError::session_io)
    }

    /// Whether ciphertext (handshake messages, alerts, records) waits to be sent.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Append all pending ciphertext to `out`; returns how many bytes were appended.
    pub fn write_tls_into(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError> {
        let mut total = 0;
        while self.conn.wants_write() {
            match self.conn.write_tls(out) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => return Err(TlsError::session_io(e)),
            }
        }
        Ok(total)
    }

    /// Whether the handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Whether the peer ended TLS cleanly with `close_notify`: beyond what
    /// [`take_plaintext`](Self::take_plaintext) still hands out, no more plaintext will come.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Queue a `close_notify` alert for the peer: the server's clean end of TLS. Write it out
    /// with [`write_tls_into`](Self::write_tls_into), then close the socket.
    pub fn send_close_notify(&mut self) {
        self.conn.send_close_notify();
    }

    /// The negotiated ALPN protocol, e.g. `h2`, once the handshake got that far.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The connection's facts (see [`tls_info`]), with the client certificate's verification
    /// error where there was one; complete once the handshake has finished.
    pub fn info(&self) -> TlsInfo {
        let mut info = tls_info(&self.conn);
        info.verification_error = self.verification_error.clone();
        info
    }

    /// Why the client's certificate failed verification (only in `optional` client-auth mode,
    /// where such a client is admitted), e.g. `invalid peer certificate: UnknownIssuer`.
    pub fn verification_error(&self) -> Option<&str> {
        self.verification_error.as_deref()
    }

    /// The rustls connection, for anything this wrapper does not expose.
    pub fn connection(&self) -> &ServerConnection {
        &self.conn
    }

    /// The rustls connection, mutably.
    pub fn connection_mut(&mut self) -> &mut ServerConnection {
        &mut self.conn
    }
}

// ---------------------------------------------------------------------------------------------
// Facts
// ---------------------------------------------------------------------------------------------

/// The facts of a TLS connection, for the lifecycle listener and the scope's `tls` extension:
/// version (`TLSv1.2`, `TLSv1.3`), cipher suite (e.g. `TLS13_AES_128_GCM_SHA256`), ALPN, SNI,
/// the client certificate chain as PEM (leaf first) and the client's subject as an RFC 4514
/// string (e.g. `CN=client,O=Example`). Complete once the handshake has finished. The
/// verification error is the session's to know: see [`TlsSession::info`].
pub fn tls_info(conn: &ServerConnection) -> TlsInfo {
    let mut info = TlsInfo::default();
    if let Some(v) = conn.protocol_version() {
        info.version = version_name(v);
    }
    if let Some(suite) = conn.negotiated_cipher_suite() {
        let suite = suite.suite();
        info.cipher = suite
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{suite:?}"));
    }
    info.alpn = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    info.sni = conn.server_name().map(str::to_owned);
    if let Some(chain) = conn.peer_certificates() {
        info.client_cert_chain = chain
            .iter()
            .map(|c| pem_encode("CERTIFICATE", c.as_ref()))
            .collect();
        info.client_subject = chain.first().and_then(|leaf| subject_of(leaf.as_ref()));
    }
    info
}

fn version_name(v: ProtocolVersion) -> String {
    match v {
        ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        other => other
            .as_str()
            .map(|s| s.replace('_', "."))
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

/// The subject of a DER certificate as an RFC 4514 string, `None` if it does not parse.
pub fn subject_of(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    Some(rfc4514(cert.subject()))
}

/// RFC 4514: the RDNs in reverse order (most specific first) joined by `,`, multi-valued
/// RDNs joined by `+`, values escaped; values that are not strings as `#` and hex DER.
fn rfc4514(name: &x509_parser::x509::X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(attribute_to_string)
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn attribute_to_string(atv: &x509_parser::x509::AttributeTypeAndValue<'_>) -> String {
    use x509_parser::asn1_rs::ToDer;

    let oid = atv.attr_type().to_id_string();
    let key = match oid.as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        other => other,
    };
    let value = match attribute_value_text(atv) {
        Some(text) => escape_rfc4514(&text),
        None => {
            let der = atv.attr_value().to_der_vec().unwrap_or_default();
            let mut s = String::with_capacity(1 + der.len() * 2);
            s.push('#');
            for b in der {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
    };
    format!("{key}={value}")
}

fn attribute_value_text(atv: &x509_parser::x509::AttributeTypeAndValue<'_>) -> Option<String> {
    use x509_parser::asn1_rs::Tag;

    let value = atv.attr_value();
    let data = value.data;
    match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(data).ok().map(str::to_owned),
        // T.61 in theory, Latin-1 in practice.
        Tag::TeletexString => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            if data.len() % 2 != 0 {
                return None;
            }
            let units = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        Tag::UniversalString => {
            if data.len() % 4 != 0 {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

fn escape_rfc4514(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' | ' ' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// PEM-encode DER bytes: base64 in lines of 64, between `BEGIN`/`END` lines, `\n` endings.
fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(chunk[0]) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 63) as usize]);
        b64.push(sextet(18));
        b64.push(sextet(12));
        b64.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        b64.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut start = 0;
    while start < b64.len() {
        let end = (start + 64).min(b64.len());
        out.push_str(&b64[start..end]);
        out.push('\n');
        start = end;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    //! Sans-I/O tests: a [`TlsSession`] paired in memory with a rustls [`ClientConnection`],
    //! certificates made at test time with rcgen.

    use super::*;
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
    };
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection};

    // --- certificates ------------------------------------------------------------------------

    /// A CA with its key.
    struct Ca {
        cert: rcgen::Certificate,
        key: KeyPair,
    }

    impl Ca {
        fn new(cn: &str) -> Self {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name = DistinguishedName::new();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            Self { cert, key }
        }

        fn pem(&self) -> String {
            self.cert.pem()
        }

        fn der(&self) -> CertificateDer<'static> {
            self.cert.der().clone()
        }

        /// A leaf certificate for `key`, signed by this CA.
        fn issue(
            &self,
            key: &KeyPair,
            dn: &[(DnType, &str)],
            sans: &[&str],
            eku: ExtendedKeyUsagePurpose,
            serial: u64,
        ) -> Leaf {
            let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name = DistinguishedName::new();
            for (ty, value) in dn {
                params.distinguished_name.push(ty.clone(), *value);
            }
            params.extended_key_usages = vec![eku];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.serial_number = Some(SerialNumber::from(serial));
            let cert = params.signed_by(key, &self.cert, &self.key).unwrap();
            Leaf {
                cert_pem: cert.pem(),
                cert_der: cert.der().clone(),
                key_pem: key.serialize_pem(),
                key_der: key.serialize_der(),
            }
        }

        fn server(&self, cn: &str, serial: u64) -> Leaf {
            self.issue(
                &KeyPair::generate().unwrap(),
                &[(DnType::CommonName, cn)],
                &["localhost", "127.0.0.1"],
                ExtendedKeyUsagePurpose::ServerAuth,
                serial,
            )
        }

        fn client(&self) -> Leaf {
            self.issue(
                &KeyPair::generate().unwrap(),
                &[
                    (DnType::CountryName, "DE"),
                    (DnType::OrganizationName, "Example"),
                    (DnType::CommonName, "ragi test client"),
                ],
                &[],
                ExtendedKeyUsagePurpose::ClientAuth,
                7,
            )
        }
    }

    /// A leaf certificate and its key (PKCS#8).
    struct Leaf {
        cert_pem: String,
        cert_der: CertificateDer<'static>,
        key_pem: String,
        key_der: Vec<u8>,
    }

    impl Leaf {
        fn key(&self) -> PrivateKeyDer<'static> {
            PrivateKeyDer::Pkcs8(self.key_der.clone().into())
        }
    }

    /// The CA, a server certificate for `localhost` and a client certificate, all written out.
    struct Pki {
        ca: Ca,
        server: Leaf,
        client: Leaf,
        dir: TempDir,
        ca_path: PathBuf,
        cert_path: PathBuf,
        key_path: PathBuf,
    }

    impl Pki {
        fn new(tag: &str) -> Self {
            let ca = Ca::new("ragi test CA");
            let server = ca.server("ragi test server", 1);
            let client = ca.client();
            let dir = TempDir::new(tag);
            let ca_path = dir.write("ca.pem", ca.pem());
            let cert_path = dir.write("server.pem", &server.cert_pem);
            let key_path = dir.write("server.key", &server.key_pem);
            Self {
                ca,
                server,
                client,
                dir,
                ca_path,
                cert_path,
                key_path,
            }
        }

        fn options(&self) -> TlsOptions {
            TlsOptions::new(&self.cert_path, &self.key_path)
        }

        fn settings(&self) -> TlsSettings {
            TlsSettings::load(self.options()).unwrap()
        }

        fn settings_with_client_auth(&self, mode: ClientAuth) -> TlsSettings {
            TlsSettings::load(self.options().with_client_auth(mode, &self.ca_path)).unwrap()
        }
    }

    /// A temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "ragi-tls-test-{}-{}-{}",
                std::process::id(),
                tag,
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    // --- the client side ---------------------------------------------------------------------

    fn client_config(
        ca: &Ca,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&str],
        client_cert: Option<&Leaf>,
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(ca.der()).unwrap();
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match client_cert {
            None => builder.with_no_client_auth(),
            Some(leaf) => builder
                .with_client_auth_cert(vec![leaf.cert_der.clone()], leaf.key())
                .unwrap(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Arc::new(config)
    }

    fn default_client(ca: &Ca) -> Arc<ClientConfig> {
        client_config(ca, VERSIONS, &["h2", "http/1.1"], None)
    }

    /// A server session and a client connection, wired together in memory.
    struct Pair {
        server: TlsSession,
        client: ClientConnection,
        /// Ciphertext on its way to the server, not taken yet.
        to_server: Vec<u8>,
        /// Plaintext the server received.
        server_plain: BytesMut,
        /// Plaintext the client received.
        client_plain: Vec<u8>,
        /// The client read the server's close_notify.
        client_saw_close: bool,
        /// The client's TLS error, if it got one.
        client_error: Option<rustls::Error>,
    }

    impl Pair {
        fn new(server: Arc<ServerConfig>, client: Arc<ClientConfig>, name: &str) -> Self {
            let name = ServerName::try_from(name.to_owned()).unwrap();
            Self {
                server: TlsSession::new(server).unwrap(),
                client: ClientConnection::new(client, name).unwrap(),
                to_server: Vec::new(),
                server_plain: BytesMut::new(),
                client_plain: Vec::new(),
                client_saw_close: false,
                client_error: None,
            }
        }

        /// Move bytes both ways until nothing moves. A server error is returned after its
        /// alert was delivered to the client.
        fn run(&mut self) -> Result<(), TlsError> {
            for _ in 0..1000 {
                let mut moved = false;

                // client -> server
                while self.client.wants_write() {
                    self.client.write_tls(&mut self.to_server).unwrap();
                }
                if !self.to_server.is_empty() {
                    match self.server.feed(&self.to_server, &mut self.server_plain) {
                        Ok(n) => {
                            moved |= n > 0;
                            self.to_server.drain(..n);
                        }
                        Err(e) => {
                            self.server_to_client();
                            return Err(e);
                        }
                    }
                }

                // server -> client
                moved |= self.server_to_client();
                if !moved {
                    return Ok(());
                }
            }
            panic!("the pair never went quiet");
        }

        /// Deliver the server's pending ciphertext to the client; true if there was some.
        fn server_to_client(&mut self) -> bool {
            let mut out = Vec::new();
            self.server.write_tls_into(&mut out).unwrap();
            let mut rest = &out[..];
            while !rest.is_empty() && self.client_error.is_none() {
                match self.client.read_tls(&mut rest) {
                    Ok(0) => break,
                    Ok(_) => {
                        if let Err(e) = self.client.process_new_packets() {
                            self.client_error = Some(e);
                        }
                    }
                    Err(e) => panic!("client read_tls: {e}"),
                }
                self.drain_client();
            }
            !out.is_empty()
        }

        fn drain_client(&mut self) {
            let mut buf = [0u8; 4096];
            loop {
                match self.client.reader().read(&mut buf) {
                    Ok(0) => {
                        self.client_saw_close = true;
                        break;
                    }
                    Ok(n) => self.client_plain.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("client read: {e}"),
                }
            }
        }

        fn handshake(&mut self) {
            self.run().unwrap();
            assert!(!self.server.is_handshaking());
            assert!(!self.client.is_handshaking());
            assert!(self.client_error.is_none(), "{:?}", self.client_error);
        }

        /// The leaf certificate the client was shown.
        fn server_leaf(&self) -> CertificateDer<'static> {
            self.client.peer_certificates().unwrap()[0].clone()
        }
    }

    // --- handshakes and ALPN ----------------------------------------------------------------

    #[test]
    fn handshake_completes_with_tls13_and_h2() {
        let pki = Pki::new("h2");
        let mut pair = Pair::new(
            pki.settings().current(),
            default_client(&pki.ca),
            "localhost",
        );
        assert!(pair.server.is_handshaking());
        pair.handshake();
        let info = pair.server.info();
        assert_eq!(info.version, "TLSv1.3");
        assert!(info.cipher.starts_with("TLS13_"), "{}", info.cipher);
        assert_eq!(info.alpn.as_deref(), Some("h2"));
        assert_eq!(pair.server.alpn_protocol(), Some(&b"h2"[..]));
        assert_eq!(info.sni.as_deref(), Some("localhost"));
        assert!(info.client_cert_chain.is_empty());
        assert_eq!(info.client_subject, None);
        assert_eq!(info.verification_error, None);
        assert_eq!(pair.server_leaf(), pki.server.cert_der);
        assert_eq!(info, tls_info(pair.server.connection()));
    }

    #[test]
    fn alpn_falls_back_to_http11_when_the_client_offers_only_that() {
        let pki = Pki::new("h1");
        let client = client_config(&pki.ca, VERSIONS, &["http/1.1"], None);
        let mut pair = Pair::new(pki.settings().current(), client, "localhost");
        pair.handshake();
        assert_eq!(pair.server.info().alpn.as_deref(), Some("http/1.1"));
    }

    #[test]
    fn http11_only_server_never_picks_h2() {
        let pki = Pki::new("h1only");
        let settings = TlsSettings::load_with_alpn(pki.options(), Alpn::Http11Only).unwrap();
        assert_eq!(settings.alpn(), Alpn::Http11Only);
        assert_eq!(
            settings.current().alpn_protocols,
            vec![b"http/1.1".to_vec()]
        );

        let mut pair = Pair::new(settings.current(), default_client(&pki.ca), "localhost");
        pair.handshake();
        assert_eq!(pair.server.info().alpn.as_deref(), Some("http/1.1"));

        // A client that speaks only h2 finds no common protocol: the handshake fails.
        let h2_only = client_config(&pki.ca, VERSIONS, &["h2"], None);
        let mut pair = Pair::new(settings.current(), h2_only, "localhost");
        let err = pair.run().unwrap_err();
        assert!(err.is_session(), "{err}");
        assert_eq!(
            err.rustls_error(),
            Some(&rustls::Error::NoApplicationProtocol)
        );
        assert!(pair.client_error.is_some(), "the client got the alert");
    }

    #[test]
    fn no_alpn_from_the_client_means_no_alpn() {
        let pki = Pki::new("noalpn");
        let client = client_config(&pki.ca, VERSIONS, &[], None);
        let mut pair = Pair::new(pki.settings().current(), client, "localhost");
        pair.handshake();
        assert_eq!(pair.server.info().alpn, None);
    }

    #[test]
    fn tls12_only_client_works() {
        let pki = Pki::new("tls12");
        let client = client_config(&pki.ca, &[&rustls::version::TLS12], &["http/1.1"], None);
        let mut pair = Pair::new(pki.settings().current(), client, "localhost");
        pair.handshake();
        let info = pair.server.info();
        assert_eq!(info.version, "TLSv1.2");
        assert!(info.cipher.starts_with("TLS_ECDHE_"), "{}", info.cipher);
        assert_eq!(info.alpn.as_deref(), Some("http/1.1"));

        // And the plaintext flows on TLS 1.2 too.
        pair.client.writer().write_all(b"ping").unwrap();
        pair.run().unwrap();
        assert_eq!(&pair.server_plain[..], b"ping");
    }

    #[test]
    fn tls13_only_client_works() {
        let pki = Pki::new("tls13");
        let client = client_config(&pki.ca, &[&rustls::version::TLS13], &["h2"], None);
        let mut pair = Pair::new(pki.settings().current(), client, "localhost");
        pair.handshake();
        assert_eq!(pair.server.info().version, "TLSv1.3");
    }

    /// A TLS 1.1 ClientHello (no `supported_versions` extension, legacy version 3.2), as an
    /// old client would send: rustls cannot even produce one.
    fn tls11_client_hello() -> Vec<u8> {
        let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
        body.extend_from_slice(&[0x42; 32]); // random
        body.push(0); // no session id
        body.extend_from_slice(&[0x00, 0x06, 0xc0, 0x13, 0xc0, 0x14, 0x00, 0x2f]); // suites
        body.extend_from_slice(&[0x01, 0x00]); // null compression only
        let mut handshake = vec![0x01]; // ClientHello
        handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        handshake.extend_from_slice(&body);
        let mut record = vec![0x16, 0x03, 0x01]; // handshake record
        record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
        record.extend_from_slice(&handshake);
        record
    }

    #[test]
    fn tls11_is_refused() {
        let pki = Pki::new("tls11");
        let mut session = pki.settings().new_session().unwrap();
        let err = session
            .feed(&tls11_client_hello(), &mut BytesMut::new())
            .unwrap_err();
        assert!(err.is_session(), "{err}");
        assert!(
            matches!(err.rustls_error(), Some(rustls::Error::PeerIncompatible(_))),
            "{err:?}"
        );
        // An alert is queued for the client.
        let mut out = Vec::new();
        session.write_tls_into(&mut out).unwrap();
        assert_eq!(out.first(), Some(&0x15), "an alert record");
    }

    #[test]
    fn sni_is_reported_and_absent_for_an_ip_address() {
        let pki = Pki::new("sni");
        let settings = pki.settings();
        let mut pair = Pair::new(settings.current(), default_client(&pki.ca), "localhost");
        pair.handshake();
        assert_eq!(pair.server.info().sni.as_deref(), Some("localhost"));

        // Clients send no SNI for an IP address.
        let mut pair = Pair::new(settings.current(), default_client(&pki.ca), "127.0.0.1");
        pair.handshake();
        assert_eq!(pair.server.info().sni, None);
    }

    // --- plaintext and closing --------------------------------------------------------------

    #[test]
    fn plaintext_round_trips_both_ways() {
        let pki = Pki::new("plain");
        let mut pair = Pair::new(
            pki.settings().current(),
            default_client(&pki.ca),
            "localhost",
        );
        pair.handshake();

        pair.client
            .writer()
            .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .unwrap();
        pair.run().unwrap();
        assert_eq!(
            &pair.server_plain[..],
            b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n"
        );

        pair.server
            .write_plaintext(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi")
            .unwrap();
        assert!(pair.server.wants_write());
        pair.run().unwrap();
        assert!(!pair.server.wants_write());
        assert_eq!(
            pair.client_plain,
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi"
        );
    }

    #[test]
    fn large_plaintext_round_trips_both_ways() {
        let pki = Pki::new("large");
        let mut pair = Pair::new(
            pki.settings().current(),
            default_client(&pki.ca),
            "localhost",
        );
        pair.handshake();

        // Far more than rustls' 16 KiB plaintext buffer and 64 KiB default send limit.
        let upload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        pair.client.set_buffer_limit(None);
        pair.client.writer().write_all(&upload).unwrap();
        pair.run().unwrap();
        assert_eq!(pair.server_plain.len(), upload.len());
        assert!(pair.server_plain[..] == upload[..]);

        let download: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        pair.server.write_plaintext(&download).unwrap();
        pair.run().unwrap();
        assert!(pair.client_plain == download);
    }

    #[test]
    fn read_tls_from_stops_when_the_plaintext_buffer_is_full() {
        let pki = Pki::new("full");
        let mut pair = Pair::new(
            pki.settings().current(),
            default_client(&pki.ca),
            "localhost",
        );
        pair.handshake();

        let upload = vec![b'x'; 100_000];
        pair.client.set_buffer_limit(None);
        pair.client.writer().write_all(&upload).unwrap();
        let mut ciphertext = Vec::new();
        while pair.client.wants_write() {
            pair.client.write_tls(&mut ciphertext).unwrap();
        }

        // Without draining, rustls stops taking ciphertext at some point.
        let n = pair.server.read_tls_from(&ciphertext).unwrap();
        assert!(n > 0 && n < ciphertext.len(), "{n} of {}", ciphertext.len());
        // Drain and offer the rest, as a driver would.
        let mut plain = BytesMut::new();
        let mut taken = n;
        loop {
            pair.server.take_plaintext(&mut plain).unwrap();
            if taken == ciphertext.len() {
                break;
            }
            taken += pair.server.read_tls_from(&ciphertext[taken..]).unwrap();
        }
        pair.server.take_plaintext(&mut plain).unwrap();
        assert_eq!(plain.len(), upload.len());
    }

    #[test]
    fn plaintext_written_during_the_handshake_is_sent_after_it() {
        let pki = Pki::new("early");
        let mut pair = Pair::new(
            pki.settings().current(),
            default_client(&pki.ca),
            "localhost",
        );
        pair.server.write_plaintext(b"hello").unwrap();
        pair.handshake();
        pair.run().unwrap();
        assert_eq!(pair.client_plain, b"hello");
    }

    #[test]
    fn client_close_notify_is_seen() {
        let pki = Pki::new("close");
        let mut pair = Pair::new(
            pki.settings().current(),
            default_client(&pki.ca),
            "localhost",
        );
        pair.handshake();
        pair.client.writer().write_all(b"last words").unwrap();
        pair.client.send_close_notify();
        assert!(!pair.server.peer_closed());
        pair.run().unwrap();
        assert!(pair.server.peer_closed());
        assert_eq!(&pair.server_plain[..], b"last words");

        // Bytes after close_notify are not taken.
        let n = pair
            .server
            .read_tls_from(&[0x17, 0x03, 0x03, 0x00, 0x01, 0x00])
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn server_close_notify_reaches_the_client() {
        let pki = Pki::new("sclose");
        let mut pair = Pair::new(
            pki.settings().current(),
            default_client(&pki.ca),
            "localhost",
        );
        pair.handshake();
        pair.server.write_plaintext(b"bye").unwrap();
        pair.server.send_close_notify();
        pair.run().unwrap();
        assert_eq!(pair.client_plain, b"bye");
        assert!(pair.client_saw_close);
    }

    #[test]
    fn garbage_from_the_client_is_a_session_error() {
        let pki = Pki::new("garbage");
        let mut session = pki.settings().new_session().unwrap();
        let err = session
            .feed(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", &mut BytesMut::new())
            .unwrap_err();
        assert!(err.is_session());
        assert!(!err.is_io());
        assert!(err.to_string().starts_with("TLS error: "), "{err}");
    }

    // --- client certificates -----------------------------------------------------------------

    #[test]
    fn required_client_cert_missing_fails_the_handshake() {
        let pki = Pki::new("req-missing");
        let settings = pki.settings_with_client_auth(ClientAuth::Required);
        let mut pair = Pair::new(settings.current(), default_client(&pki.ca), "localhost");
        let err = pair.run().unwrap_err();
        assert!(err.is_session(), "{err}");
        assert_eq!(
            err.rustls_error(),
            Some(&rustls::Error::NoCertificatesPresented)
        );
        assert!(pair.client_error.is_some(), "the client was told");
    }

    #[test]
    fn required_client_cert_present_is_reported() {
        let pki = Pki::new("req-present");
        let settings = pki.settings_with_client_auth(ClientAuth::Required);
        for versions in [
            &[&rustls::version::TLS13][..],
            &[&rustls::version::TLS12][..],
        ] {
            let client = client_config(&pki.ca, versions, &["h2"], Some(&pki.client));
            let mut pair = Pair::new(settings.current(), client, "localhost");
            pair.handshake();
            let info = pair.server.info();
            assert_eq!(info.client_cert_chain.len(), 1);
            let parsed =
                CertificateDer::from_pem_slice(info.client_cert_chain[0].as_bytes()).unwrap();
            assert_eq!(parsed, pki.client.cert_der);
            assert_eq!(
                info.client_subject.as_deref(),
                Some("CN=ragi test client,O=Example,C=DE")
            );
            assert_eq!(info.verification_error, None);
        }
    }

    #[test]
    fn optional_client_cert_may_be_absent_or_present() {
        let pki = Pki::new("opt");
        let settings = pki.settings_with_client_auth(ClientAuth::Optional);

        let mut pair = Pair::new(settings.current(), default_client(&pki.ca), "localhost");
        pair.handshake();
        let info = pair.server.info();
        assert!(info.client_cert_chain.is_empty());
        assert_eq!(info.client_subject, None);

        let client = client_config(&pki.ca, VERSIONS, &["h2"], Some(&pki.client));
        let mut pair = Pair::new(settings.current(), client, "localhost");
        pair.handshake();
        let info = pair.server.info();
        assert_eq!(info.client_cert_chain.len(), 1);
        assert_eq!(
            info.client_subject.as_deref(),
            Some("CN=ragi test client,O=Example,C=DE")
        );
    }

    #[test]
    fn client_cert_from_another_ca_is_refused_when_required() {
        let pki = Pki::new("otherca");
        let stranger = Ca::new("someone else").client();
        let settings = pki.settings_with_client_auth(ClientAuth::Required);
        let client = client_config(&pki.ca, VERSIONS, &["h2"], Some(&stranger));
        let mut pair = Pair::new(settings.current(), client, "localhost");
        let err = pair.run().unwrap_err();
        assert!(err.is_session(), "{err}");
        assert!(
            matches!(
                err.rustls_error(),
                Some(rustls::Error::InvalidCertificate(_))
            ),
            "{err:?}"
        );
    }

    #[test]
    fn client_cert_from_another_ca_is_admitted_with_its_error_when_optional() {
        let pki = Pki::new("otherca-opt");
        let stranger = Ca::new("someone else").client();
        let settings = pki.settings_with_client_auth(ClientAuth::Optional);
        // Over TLS 1.2 and 1.3 (the client certificate comes at different points).
        for versions in [
            &[&rustls::version::TLS12][..],
            &[&rustls::version::TLS13][..],
        ] {
            let client = client_config(&pki.ca, versions, &["h2"], Some(&stranger));
            let mut pair = Pair::new(settings.current(), client, "localhost");
            pair.handshake();
            let info = pair.server.info();
            assert_eq!(info.client_cert_chain.len(), 1);
            assert_eq!(
                info.client_subject.as_deref(),
                Some("CN=ragi test client,O=Example,C=DE")
            );
            let error = info.verification_error.expect("a verification error");
            assert!(error.contains("UnknownIssuer"), "{error}");
            assert_eq!(pair.server.verification_error(), Some(error.as_str()));
        }
        // A trusted certificate on the same settings has none.
        let client = client_config(&pki.ca, VERSIONS, &["h2"], Some(&pki.client));
        let mut pair = Pair::new(settings.current(), client, "localhost");
        pair.handshake();
        assert_eq!(pair.server.info().verification_error, None);
    }

    #[test]
    fn client_chain_with_intermediate_is_reported_leaf_first() {
        let pki = Pki::new("chain");
        // An intermediate CA under the root, and a client under the intermediate.
        let inter_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "ragi intermediate");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let inter_cert = params
            .signed_by(&inter_key, &pki.ca.cert, &pki.ca.key)
            .unwrap();
        let inter = Ca {
            cert: inter_cert,
            key: inter_key,
        };
        let leaf = inter.client();

        let settings = pki.settings_with_client_auth(ClientAuth::Required);
        let mut roots = RootCertStore::empty();
        roots.add(pki.ca.der()).unwrap();
        let config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![leaf.cert_der.clone(), inter.der()], leaf.key())
            .unwrap();
        let mut pair = Pair::new(settings.current(), Arc::new(config), "localhost");
        pair.handshake();
        let chain = pair.server.info().client_cert_chain;
        assert_eq!(chain.len(), 2);
        let parse = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(parse(&chain[0]), leaf.cert_der);
        assert_eq!(parse(&chain[1]), inter.der());
    }

    // --- loading ------------------------------------------------------------------------------

    #[test]
    fn default_settings_offer_h2_and_http11() {
        let pki = Pki::new("alpn");
        let settings = pki.settings();
        assert_eq!(settings.alpn(), Alpn::Http2AndHttp11);
        assert_eq!(
            settings.current().alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(settings.options(), &pki.options());
    }

    #[test]
    fn missing_files_name_the_file() {
        let pki = Pki::new("missing");
        let nowhere = pki.dir.0.join("nowhere.pem");

        let err = TlsSettings::load(TlsOptions::new(&nowhere, &pki.key_path)).unwrap_err();
        assert!(err.is_io(), "{err}");
        assert_eq!(err.path(), Some(nowhere.as_path()));
        let text = err.to_string();
        assert!(text.contains("TLS certificate file"), "{text}");
        assert!(text.contains("nowhere.pem"), "{text}");

        let err = TlsSettings::load(TlsOptions::new(&pki.cert_path, &nowhere)).unwrap_err();
        assert!(err.is_io());
        assert!(err.to_string().contains("TLS private key file"), "{err}");

        let options = pki
            .options()
            .with_client_auth(ClientAuth::Required, &nowhere);
        let err = TlsSettings::load(options).unwrap_err();
        assert!(err.is_io());
        assert!(err.to_string().contains("TLS client CA file"), "{err}");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn file_without_certificate_is_reported() {
        let pki = Pki::new("nocert");
        // The key file holds no certificate.
        let err = TlsSettings::load(TlsOptions::new(&pki.key_path, &pki.key_path)).unwrap_err();
        assert!(err.is_no_certificate(), "{err}");
        assert_eq!(err.path(), Some(pki.key_path.as_path()));
        assert!(err.to_string().contains("holds no certificate"), "{err}");

        // DER instead of PEM: no PEM block either.
        let der = pki.dir.write("server.der", pki.server.cert_der.as_ref());
        let err = TlsSettings::load(TlsOptions::new(&der, &pki.key_path)).unwrap_err();
        assert!(err.is_no_certificate(), "{err}");

        // An empty client CA file.
        let empty = pki.dir.write("empty.pem", "");
        let options = pki.options().with_client_auth(ClientAuth::Optional, &empty);
        let err = TlsSettings::load(options).unwrap_err();
        assert!(err.is_no_certificate(), "{err}");
        assert!(err.to_string().contains("TLS client CA file"), "{err}");
    }

    #[test]
    fn file_without_key_is_reported() {
        let pki = Pki::new("nokey");
        let err = TlsSettings::load(TlsOptions::new(&pki.cert_path, &pki.cert_path)).unwrap_err();
        assert!(err.is_no_key(), "{err}");
        assert_eq!(err.path(), Some(pki.cert_path.as_path()));
        assert!(!err.to_string().contains("encrypted"), "{err}");

        let encrypted = pki.dir.write(
            "encrypted.key",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let err = TlsSettings::load(TlsOptions::new(&pki.cert_path, &encrypted)).unwrap_err();
        assert!(err.is_no_key(), "{err}");
        assert!(
            err.to_string().contains("encrypted keys are not supported"),
            "{err}"
        );
    }

    #[test]
    fn broken_pem_is_reported() {
        let pki = Pki::new("badpem");
        let truncated = &pki.server.cert_pem[..pki.server.cert_pem.len() / 2];
        let bad = pki.dir.write("truncated.pem", truncated);
        let err = TlsSettings::load(TlsOptions::new(&bad, &pki.key_path)).unwrap_err();
        assert!(err.is_invalid_pem(), "{err}");
        assert!(err.to_string().contains("is not valid PEM"), "{err}");

        let bad = pki.dir.write(
            "badbase64.pem",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        let err = TlsSettings::load(TlsOptions::new(&bad, &pki.key_path)).unwrap_err();
        assert!(err.is_invalid_pem(), "{err}");
    }

    #[test]
    fn key_that_does_not_match_the_certificate_is_rejected() {
        let pki = Pki::new("mismatch");
        let other = pki
            .dir
            .write("other.key", KeyPair::generate().unwrap().serialize_pem());
        let err = TlsSettings::load(TlsOptions::new(&pki.cert_path, &other)).unwrap_err();
        assert!(err.is_rejected_by_rustls(), "{err}");
        assert!(err.is_key_mismatch(), "{err}");
        let text = err.to_string();
        assert!(text.contains("does not match the certificate"), "{text}");
        assert!(
            text.contains("other.key") && text.contains("server.pem"),
            "{text}"
        );
    }

    #[test]
    fn contradictory_client_auth_options_are_config_errors() {
        let pki = Pki::new("config");
        let mut options = pki.options();
        options.client_auth = ClientAuth::Required;
        let err = TlsSettings::load(options).unwrap_err();
        assert!(err.is_config(), "{err}");
        assert!(err.to_string().contains("no client CA file"), "{err}");

        let mut options = pki.options();
        options.client_ca_path = Some(pki.ca_path.clone());
        let err = TlsSettings::load(options).unwrap_err();
        assert!(err.is_config(), "{err}");
    }

    /// The DER contents of the private key inside a PKCS#8 `PrivateKeyInfo` (a PKCS#1
    /// `RSAPrivateKey` or a SEC1 `ECPrivateKey`).
    fn pkcs8_inner(pkcs8: &[u8]) -> Vec<u8> {
        fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
            let (len, header) = match input[1] {
                l if l < 0x80 => (usize::from(l), 2),
                0x81 => (usize::from(input[2]), 3),
                0x82 => ((usize::from(input[2]) << 8) | usize::from(input[3]), 4),
                l => panic!("length form {l:#x}"),
            };
            (
                input[0],
                &input[header..header + len],
                &input[header + len..],
            )
        }
        let (_, info, _) = tlv(pkcs8);
        let (_, _version, rest) = tlv(info);
        let (_, _algorithm, rest) = tlv(rest);
        let (tag, key, _) = tlv(rest);
        assert_eq!(tag, 0x04, "an OCTET STRING");
        key.to_vec()
    }

    /// A 2048-bit RSA key, for tests only (ring cannot generate RSA keys).
    const TEST_RSA_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC2Jm5Ew33PmxOb
o12SWEzUy/PerZf7VSZhq2c1JENv0gtOvsiRCag7i/Es4Dr8Vhu2VWd0HvSzQzSD
EZV8PfOO2p5VgeE7mcRAQcgbNGdaYxQBsL+JJ/nWMVFIdU47cM8041LOXOIRq+Iv
q6p34icLWsYUlKlTXV8WE7YaP89STGCr12Y/r/WHHdfA0ehy1JoYrXJXq4hxeHGP
0tr6rVcsQwNqk9vgveLopHYbC4orizHxnICi3j8OZNGN0GoRLVU8uPM9bE+qD80L
SQiAxNcHYNjieAe7QZxl3auL+c3jdwoHE5bUnFkt/qToxzz4HK2bfC+4zX96QALq
QXB/rxD1AgMBAAECggEAIzbezpB0vDQg4E//ARHtGJ6tcPlijoZxuyQl+dIe73lO
ElUz9UZGrexqHeDjxnDnPqLYM0zgxd9SQZyep7xaX93ICoPnhVw+4qVVCF1jNcg9
z+3Zuaxu0ogKTNXQ4BD5HiJsmdS/J+dw/QJVHIQuRDWyYbwz2BgPD/eTlxOLAz/J
GieGesSm21F2c5jnWBdbJ2Itdt4ewMYV/m2ESXCm1/P59RnDG//Db5QoBcBmtDes
Nw0LKxJ++drbCUQipAx/m22hHrWXCH30TvJU+SFwzKANkBGCa9DWPAhQk5TTbHUE
pJVGbg9vOV7l07Rfas2ZSCzygGQYWFw+YONGuObLaQKBgQDpRwSBJE3T25zHA6PR
L5xePOEDq81GF6mD6exUAKcEar0SCsO/KWe6kLry33xJ9Ovq56pmQzUhnwLt6uIm
t1RXrZD7wmjBdzSAfSVUxyKZuj1qPU4FZ+FmzvVkCpbWta0g0JBpyMwlS0QN7nf/
0o/BcF5uUUZhG5WHrBQFy6QOAwKBgQDH5IIPsZDk2lVYkTn+MCG9j6NwY0yrCUDe
xEI0PLksjk6AZ8eKecYbGiIDswET6TqGjKXicX0Gt6O9fI68F/SjXVhyubdtbJVK
wkvfIwQIud2ZZZ4EeyeX4/V7MUPJ7wW8kUae5U4OIEV/H5qz7fczQUGqqq2IuIbd
ataAex1PpwKBgH60ABJUsaD8i27c30FjZr8Yue7QhbIob/4iNCZ8JDsV7pO6HQ/b
YWfH7IK2OD/DM9Bm+/qHTnhwcZrgFO2KbdkhgLn9ogBSysVvM7OUZYqxyWHG4nW1
MowwpMAtsDf2fY5xOb77PUaUVuZqO+tLZqFecyvgISXlYZZLNKThMr4ZAoGBAL+/
uO/7AqY1ttcOANaQL12a80p1Ru9vIfZPx746Xdua6z0L0INKizomWGi6BxeljEnT
k7Fj8m5GLOExIe7XAArSGW18L7PdDF05gvSar1z7htKGgw2DYhi3SR2SxZdpHVSk
+1yjVLwCQwhONeXSKWbWe3qO3YaglGbD/N4ku5pTAoGAHboOjbnyDuLnKdi0S7B5
wMO8Y4bV5UspgaaJ8NxnAMVlAsQQ+TPNQRni2HTUzbXFLxS2SMwXhPp3eMsVqpGm
INBvtvQKI3phoH2vPcSRibbR95iPmmp7Xh9po+irJULV6JGi6IhAziPYZ89INVYn
kBkbgzTLXqrxtv7rjDr/hXY=
-----END PRIVATE KEY-----
";

    /// Load `cert` + `key` PEM from files and shake hands with the result.
    fn handshake_with_files(pki: &Pki, name: &str, cert_pem: &str, key_pem: &str) {
        let cert = pki.dir.write(&format!("{name}.crt"), cert_pem);
        let key = pki.dir.write(&format!("{name}.key"), key_pem);
        let settings = TlsSettings::load(TlsOptions::new(&cert, &key))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut pair = Pair::new(settings.current(), default_client(&pki.ca), "localhost");
        pair.handshake();
    }

    #[test]
    fn key_formats_pkcs8_sec1_and_rsa_load() {
        let pki = Pki::new("keys");

        // PKCS#8 EC (rcgen's own form).
        assert!(pki.server.key_pem.contains("BEGIN PRIVATE KEY"));
        handshake_with_files(&pki, "pkcs8-ec", &pki.server.cert_pem, &pki.server.key_pem);

        // SEC1 EC, after an `EC PARAMETERS` block as `openssl ecparam -genkey` writes.
        let sec1 = pem_encode("EC PRIVATE KEY", &pkcs8_inner(&pki.server.key_der));
        let with_params = format!(
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{sec1}"
        );
        handshake_with_files(&pki, "sec1", &pki.server.cert_pem, &with_params);

        // RSA, as PKCS#8 and as PKCS#1.
        let rsa = KeyPair::from_pem(TEST_RSA_PKCS8).unwrap();
        let leaf = pki.ca.issue(
            &rsa,
            &[(DnType::CommonName, "rsa server")],
            &["localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
            3,
        );
        handshake_with_files(&pki, "pkcs8-rsa", &leaf.cert_pem, TEST_RSA_PKCS8);
        let pkcs1 = pem_encode("RSA PRIVATE KEY", &pkcs8_inner(&leaf.key_der));
        handshake_with_files(&pki, "pkcs1-rsa", &leaf.cert_pem, &pkcs1);

        // Certificate and key in one file.
        let both = format!("{}{}", pki.server.cert_pem, pki.server.key_pem);
        let path = pki.dir.write("both.pem", both);
        TlsSettings::load(TlsOptions::new(&path, &path)).unwrap();
    }

    #[test]
    fn server_chain_with_intermediate_is_sent_whole() {
        let pki = Pki::new("schain");
        let inter_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "ragi server intermediate");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let inter = Ca {
            cert: params
                .signed_by(&inter_key, &pki.ca.cert, &pki.ca.key)
                .unwrap(),
            key: inter_key,
        };
        let leaf = inter.server("chained server", 9);
        let chain = format!("{}{}", leaf.cert_pem, inter.pem());
        let cert = pki.dir.write("chain.pem", chain);
        let key = pki.dir.write("chain.key", &leaf.key_pem);
        let settings = TlsSettings::load(TlsOptions::new(&cert, &key)).unwrap();
        let mut pair = Pair::new(settings.current(), default_client(&pki.ca), "localhost");
        pair.handshake();
        assert_eq!(pair.client.peer_certificates().unwrap().len(), 2);
    }

    // --- reload -------------------------------------------------------------------------------

    #[test]
    fn reload_swaps_the_certificate_for_new_handshakes() {
        let pki = Pki::new("reload");
        let settings = pki.settings();
        let before = settings.current();

        let mut old_pair = Pair::new(settings.current(), default_client(&pki.ca), "localhost");
        // A session created before the reload, whose handshake runs after it.
        let mut late_pair = Pair::new(settings.current(), default_client(&pki.ca), "localhost");
        old_pair.handshake();
        assert_eq!(
            subject_of(old_pair.server_leaf().as_ref()).as_deref(),
            Some("CN=ragi test server")
        );

        let renewed = pki.ca.server("ragi renewed server", 2);
        std::fs::write(&pki.cert_path, &renewed.cert_pem).unwrap();
        std::fs::write(&pki.key_path, &renewed.key_pem).unwrap();
        settings.reload().unwrap();
        assert!(!Arc::ptr_eq(&before, &settings.current()));

        let mut new_pair = Pair::new(settings.current(), default_client(&pki.ca), "localhost");
        new_pair.handshake();
        assert_eq!(new_pair.server_leaf(), renewed.cert_der);
        assert_eq!(
            subject_of(new_pair.server_leaf().as_ref()).as_deref(),
            Some("CN=ragi renewed server")
        );
        let leaf = new_pair.server_leaf();
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
        assert_eq!(parsed.raw_serial(), &[2u8][..], "the renewed serial");

        // The session made before the reload keeps its configuration.
        late_pair.handshake();
        assert_eq!(late_pair.server_leaf(), pki.server.cert_der);

        // And the established connection still works.
        old_pair.client.writer().write_all(b"still here").unwrap();
        old_pair.run().unwrap();
        assert_eq!(&old_pair.server_plain[..], b"still here");
    }

    #[test]
    fn failed_reload_keeps_the_old_configuration() {
        let pki = Pki::new("badreload");
        let settings = pki.settings();
        let before = settings.current();

        // A renewed certificate, but the old key: they do not match.
        let renewed = pki.ca.server("ragi renewed server", 2);
        std::fs::write(&pki.cert_path, &renewed.cert_pem).unwrap();
        let err = settings.reload().unwrap_err();
        assert!(err.is_key_mismatch(), "{err}");
        assert!(Arc::ptr_eq(&before, &settings.current()));

        // A missing key file.
        std::fs::remove_file(&pki.key_path).unwrap();
        let err = settings.reload().unwrap_err();
        assert!(err.is_io(), "{err}");
        assert!(Arc::ptr_eq(&before, &settings.current()));

        // Handshakes still get the original certificate.
        let mut pair = Pair::new(settings.current(), default_client(&pki.ca), "localhost");
        pair.handshake();
        assert_eq!(pair.server_leaf(), pki.server.cert_der);

        // Once the files are right again, the reload goes through.
        std::fs::write(&pki.key_path, &renewed.key_pem).unwrap();
        settings.reload().unwrap();
        let mut pair = Pair::new(settings.current(), default_client(&pki.ca), "localhost");
        pair.handshake();
        assert_eq!(pair.server_leaf(), renewed.cert_der);
    }

    #[test]
    fn reload_can_turn_on_client_certificates_only_via_new_options() {
        // Reload re-reads the same options: the CA file is re-read too.
        let pki = Pki::new("careload");
        let settings = pki.settings_with_client_auth(ClientAuth::Required);
        let other_ca = Ca::new("new client CA");
        std::fs::write(&pki.ca_path, other_ca.pem()).unwrap();
        settings.reload().unwrap();
        let client = client_config(&pki.ca, VERSIONS, &["h2"], Some(&pki.client));
        let mut pair = Pair::new(settings.current(), client, "localhost");
        assert!(pair.run().unwrap_err().is_session());
        let client = client_config(&pki.ca, VERSIONS, &["h2"], Some(&other_ca.client()));
        let mut pair = Pair::new(settings.current(), client, "localhost");
        pair.handshake();
    }

    // --- helpers --------------------------------------------------------------------------------

    #[test]
    fn pem_encoding_matches_known_vectors() {
        assert_eq!(pem_encode("X", b""), "-----BEGIN X-----\n-----END X-----\n");
        assert_eq!(
            pem_encode("X", b"f"),
            "-----BEGIN X-----\nZg==\n-----END X-----\n"
        );
        assert_eq!(
            pem_encode("X", b"fo"),
            "-----BEGIN X-----\nZm8=\n-----END X-----\n"
        );
        assert_eq!(
            pem_encode("X", b"foo"),
            "-----BEGIN X-----\nZm9v\n-----END X-----\n"
        );
        // Lines of 64 characters, and byte-for-byte what rcgen writes (modulo line endings).
        let ca = Ca::new("pem");
        let ours = pem_encode("CERTIFICATE", ca.der().as_ref());
        assert!(ours.lines().all(|l| l.len() <= 64));
        assert_eq!(ours, ca.pem().replace("\r\n", "\n"));
    }

    #[test]
    fn subjects_are_rfc4514_strings() {
        let ca = Ca::new("subjects");
        let leaf = ca.issue(
            &KeyPair::generate().unwrap(),
            &[
                (DnType::OrganizationName, "Doe, Inc."),
                (DnType::OrganizationalUnitName, "a+b"),
                (DnType::CommonName, " #lead"),
            ],
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
            1,
        );
        assert_eq!(
            subject_of(leaf.cert_der.as_ref()).as_deref(),
            Some(r"CN=\ #lead,OU=a\+b,O=Doe\, Inc.")
        );
        assert_eq!(subject_of(b"not a certificate"), None);
        assert_eq!(escape_rfc4514("trailing "), r"trailing\ ");
        assert_eq!(escape_rfc4514("#x#"), r"\#x#");
        assert_eq!(escape_rfc4514("a\"b<c>d;e\\f"), r#"a\"b\<c\>d\;e\\f"#);
    }

    #[test]
    fn version_names() {
        assert_eq!(version_name(ProtocolVersion::TLSv1_2), "TLSv1.2");
        assert_eq!(version_name(ProtocolVersion::TLSv1_3), "TLSv1.3");
    }
}
