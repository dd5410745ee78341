//! The observability and operations middleware (issue 11), through the test client: access
//! log, request id, Server-Timing, trace spans, rate limits, maintenance, health, SSE retry
//! hints, X-Sendfile, error handler, timeout, lint; and over real sockets where the network
//! matters (a client that really leaves).

mod ops_middleware {
    pub mod support;

    mod access_log;
    mod error_handler;
    mod health;
    mod lint;
    mod maintenance;
    mod rate_limit;
    mod request_id;
    mod sendfile;
    mod sockets;
    mod sse_retry;
    mod timeout;
    mod timing;
    mod trace;
}
