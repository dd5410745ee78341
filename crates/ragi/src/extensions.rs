//! Extensions a server advertises in a scope (spec §6).
//!
//! An app checks a field before relying on the feature: `fullflush` says `SendEvent::FullFlush`
//! is honoured, `tls` carries the facts of a TLS connection, `server_state` is the object shared
//! by every app invocation of one server session.

use std::fmt;
use std::sync::Arc;

use crate::State;

/// The extensions of one scope.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Extensions {
    /// TLS facts, on TLS connections (shared by every scope of the connection).
    pub tls: Option<std::sync::Arc<TlsInfo>>,
    /// `SendEvent::FullFlush` is honoured.
    pub fullflush: bool,
    /// The WebSocket denial response (`HttpResponseStart` before accept) is supported.
    pub websocket_http_response: bool,
    /// The SSE decline response is supported.
    pub sse_http_response: bool,
    /// The server-state object (manakai's `manakai.server.state`), when the server offers one.
    pub server_state: Option<State>,
    /// The outgoing buffer of this exchange (extension `transport`).
    pub transport: Option<Transport>,
}

/// What a server exposes of an exchange's outgoing buffer. Servers implement it; apps use
/// [`Transport`].
pub trait TransportState: Send + Sync {
    /// Bytes given to `send` and not yet written to the socket.
    fn buffered_amount(&self) -> usize;
    /// The high watermark: `send` waits above it.
    fn high_water(&self) -> usize;
    /// The low watermark: a waiting `send` resumes below it.
    fn low_water(&self) -> usize;
    /// Registers a callback for each time the buffer rises above the high watermark.
    fn on_high_water(&self, callback: Box<dyn Fn() + Send + Sync>);
    /// Registers a callback for each time the buffer, having been above the high watermark,
    /// drains below the low one.
    fn on_drain(&self, callback: Box<dyn Fn() + Send + Sync>);
}

/// The `transport` extension: the exchange's outgoing buffer, its watermarks, and callbacks
/// with hysteresis (`on_high_water` fires when the buffer rises above the high watermark;
/// `on_drain` fires when it then falls below the low one; neither fires again until the other
/// has). Cheap to clone.
///
/// ```
/// # fn demo(scope: &ragi::Scope) {
/// if let Some(t) = &scope.extensions.transport {
///     t.on_high_water(|| eprintln!("client is slow"));
///     t.on_drain(|| eprintln!("caught up"));
///     let _queued = t.buffered_amount();
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct Transport {
    inner: Arc<dyn TransportState>,
}

impl Transport {
    /// A transport over a server's state.
    pub fn new(inner: Arc<dyn TransportState>) -> Self {
        Self { inner }
    }

    /// Bytes given to `send` and not yet written to the socket.
    pub fn buffered_amount(&self) -> usize {
        self.inner.buffered_amount()
    }

    /// The high watermark.
    pub fn high_water(&self) -> usize {
        self.inner.high_water()
    }

    /// The low watermark.
    pub fn low_water(&self) -> usize {
        self.inner.low_water()
    }

    /// Calls `f` each time the buffer rises above the high watermark.
    pub fn on_high_water(&self, f: impl Fn() + Send + Sync + 'static) {
        self.inner.on_high_water(Box::new(f));
    }

    /// Calls `f` each time the buffer drains below the low watermark after a high-water mark.
    pub fn on_drain(&self, f: impl Fn() + Send + Sync + 'static) {
        self.inner.on_drain(Box::new(f));
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("buffered_amount", &self.buffered_amount())
            .field("high_water", &self.high_water())
            .field("low_water", &self.low_water())
            .finish()
    }
}

/// The facts of a TLS connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The protocol version, e.g. `TLSv1.3`.
    pub version: String,
    /// The cipher suite, e.g. `TLS13_AES_128_GCM_SHA256`.
    pub cipher: String,
    /// The negotiated ALPN protocol.
    pub alpn: Option<String>,
    /// The server name the client asked for (SNI).
    pub sni: Option<String>,
    /// The client's certificate chain, PEM, leaf first.
    pub client_cert_chain: Vec<String>,
    /// The subject of the client's leaf certificate.
    pub client_subject: Option<String>,
    /// Why the client certificate failed verification, when it did and the server went on.
    pub verification_error: Option<String>,
}
