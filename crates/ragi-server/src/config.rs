//! Server settings: limits, timeouts, and what the server adds to responses.
//!
//! Every default is the one of the ragi specification (§5). A timeout of `None` is off.

use std::time::Duration;

/// The access log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// Common Log Format.
    Clf,
    /// Combined Log Format (CLF plus referer and user agent).
    Combined,
    /// One JSON object per line.
    Json,
}

/// Server settings. Build with `Config::default()` and change fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Before the first request on a fresh connection (reason `idle_timeout`). Default 60 s.
    pub idle_timeout: Option<Duration>,
    /// Between requests on a kept-alive connection (reason `keepalive_timeout`). Default 60 s.
    pub keepalive_timeout: Option<Duration>,
    /// The client stalls in the middle of a request: no byte for this long while the server
    /// waits for the head or the body. 408 if no response started, then close (reason
    /// `client_timeout`). Default 30 s. See also [`Config::request_head_timeout`] and
    /// [`Config::min_request_rate`], which end a head or body that trickles in.
    pub request_timeout: Option<Duration>,
    /// A request head must be complete this long after its first byte, however steadily it
    /// trickles in: 408, then close (reason `client_timeout`). Default 60 s.
    pub request_head_timeout: Option<Duration>,
    /// The least average rate, bytes per second, at which a client must send a request head or
    /// body once [`Config::min_request_rate_grace`] has passed (Apache's mod_reqtimeout
    /// `MinRate`): each byte buys `1 / rate` seconds beyond the grace. Below it, 408 if no
    /// response started, then close (reason `client_timeout`). Time while the server does not
    /// read (the app has not taken the body read ahead) does not count. `None` is off.
    /// Default 500 bytes/s.
    pub min_request_rate: Option<u64>,
    /// How long a head or body may take before [`Config::min_request_rate`] applies. Default
    /// 10 s.
    pub min_request_rate_grace: Duration,
    /// The client does not take response bytes for this long (reason `write_timeout`).
    /// Default 30 s.
    pub write_timeout: Option<Duration>,
    /// Reset connections that time out (`write_timeout`, `client_timeout`, `idle_timeout`,
    /// `keepalive_timeout`, the shutdown deadline) with `SO_LINGER` 0 instead of closing them
    /// gracefully, as nginx's `reset_timedout_connection`: the kernel frees the socket and its
    /// unsent data at once instead of keeping them in FIN-WAIT-1 for minutes. A `client_timeout`
    /// still sends its 408 and lingers for the client's close first. On by default.
    pub reset_timedout_connection: bool,
    /// Largest request body, bytes (413, reason `body_too_large`). Default 10 MB.
    pub max_body_size: u64,
    /// Longest request line, bytes (414). Default 8 KiB.
    pub max_request_line: usize,
    /// Largest header block, bytes (431). Default 8 KiB.
    pub max_header_size: usize,
    /// Most header fields (431). Default 100; at most 256.
    pub max_headers: usize,
    /// Most open connections; beyond, 503 with `retry-after` and `connection: close`.
    /// Default 10 000.
    pub max_connections: usize,
    /// How long graceful shutdown waits for in-flight work before aborting it
    /// (reason `server_shutdown`). Default 30 s.
    pub shutdown_timeout: Duration,
    /// The `server` header value; `None` sends none. Default `ragi`.
    pub server_header: Option<String>,
    /// Keep answering after the client half-closes (FIN) once its request is complete.
    /// Off by default: a FIN ends the exchange with `client_closed`.
    pub allow_half_close: bool,
    /// Access log to stdout, off by default.
    pub access_log: Option<AccessLogFormat>,
    /// Request body read ahead of the app, bytes. The server keeps reading the socket while
    /// the app works until this much body is buffered, then watches the socket without reading
    /// (see the crate documentation on detection). Default 64 KiB.
    pub read_ahead: usize,
    /// Outgoing buffer high watermark: `send` waits when more is buffered. Default 64 KiB.
    pub write_high_water: usize,
    /// Outgoing buffer low watermark: a waiting `send` resumes below it. Default 16 KiB.
    pub write_low_water: usize,
    /// A prefix for connection ids in logs (`c` by default: `c17`).
    pub id_prefix: String,
    /// An SSE stream on which nothing was sent for this long is ended (reason `idle_timeout`):
    /// on HTTP/2 only that stream is reset; on HTTP/1.1 the connection closes. Off by default.
    pub sse_idle_timeout: Option<Duration>,
    /// WebSocket: the largest message, bytes, after decompression (close 1009). Default 16 MiB.
    pub ws_max_message_size: usize,
    /// WebSocket: most received messages waiting for the app (close 1008, reason
    /// `queue_overflow`). Default 1 000.
    pub ws_max_queue: usize,
    /// WebSocket: a session with no data message in either direction for this long is closed
    /// with 1001 (reason `idle_timeout`). Pings and pongs do not count. Off by default.
    pub ws_idle_timeout: Option<Duration>,
    /// WebSocket: negotiate permessage-deflate (RFC 7692) when the client offers it. On by
    /// default.
    pub ws_compression: bool,
    /// HTTP/2: send a PING after this long (and then every interval); `None` sends none.
    /// Default 30 s.
    pub h2_keepalive_interval: Option<Duration>,
    /// HTTP/2: a PING not answered within this ends the connection (reason
    /// `keepalive_timeout`). Default 20 s.
    pub h2_keepalive_timeout: Duration,
    /// Unix-domain listeners: the socket file's permission bits, set after binding. Default
    /// `0o660`: the owner and its group may connect (see [`crate::net`]).
    pub unix_socket_mode: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            idle_timeout: Some(Duration::from_secs(60)),
            keepalive_timeout: Some(Duration::from_secs(60)),
            request_timeout: Some(Duration::from_secs(30)),
            request_head_timeout: Some(Duration::from_secs(60)),
            min_request_rate: Some(500),
            min_request_rate_grace: Duration::from_secs(10),
            write_timeout: Some(Duration::from_secs(30)),
            reset_timedout_connection: true,
            max_body_size: 10_000_000,
            max_request_line: 8192,
            max_header_size: 8192,
            max_headers: 100,
            max_connections: 10_000,
            shutdown_timeout: Duration::from_secs(30),
            server_header: Some("ragi".to_owned()),
            allow_half_close: false,
            access_log: None,
            read_ahead: 64 * 1024,
            write_high_water: 64 * 1024,
            write_low_water: 16 * 1024,
            id_prefix: "c".to_owned(),
            sse_idle_timeout: None,
            ws_max_message_size: 16 * 1024 * 1024,
            ws_max_queue: 1000,
            ws_idle_timeout: None,
            ws_compression: true,
            h2_keepalive_interval: Some(Duration::from_secs(30)),
            h2_keepalive_timeout: Duration::from_secs(20),
            unix_socket_mode: 0o660,
        }
    }
}
