//! Extensions a server advertises in a scope (spec §6).
//!
//! An app checks a field before relying on the feature: `fullflush` says `SendEvent::FullFlush`
//! is honoured, `tls` carries the facts of a TLS connection, `server_state` is the object shared
//! by every app invocation of one server session.

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
