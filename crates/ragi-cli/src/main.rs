//! `ragi` — the command line.
//!
//! `ragi probe [options]` serves the probe app (see [`probe`]).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ragi_server::tls::{Alpn, ClientAuth, TlsOptions, TlsSettings};
use ragi_server::{AccessLogFormat, Config, Server};

mod probe;

#[derive(Parser, Debug)]
#[command(
    name = "ragi",
    version,
    about = "ragi: an application server that knows whether its client is still there"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the probe app: for tests, benchmarks and checking a deployment.
    Probe(ProbeOpts),
}

#[derive(Args, Debug)]
struct ProbeOpts {
    #[command(flatten)]
    server: ServerOpts,
    /// Run without the lifecycle listener (`/connections` then answers 404); for measuring
    /// what the listener costs.
    #[arg(long)]
    no_lifecycle: bool,
    /// Answer lifespan start-up with StartupFailed and this message (the process exits 1);
    /// for testing deployments' failure handling.
    #[arg(long, value_name = "MESSAGE")]
    fail_startup: Option<String>,
    /// Most lifecycle notices kept for `/connections` (the oldest are dropped first), so that
    /// a long-running probe does not grow.
    #[arg(long, value_name = "N", default_value = "10000")]
    notices: usize,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ClientAuthArg {
    Optional,
    Required,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Clf,
    Combined,
    Json,
}

/// Server options shared by every subcommand that serves.
#[derive(Args, Debug)]
struct ServerOpts {
    /// Address to listen on (repeatable).
    #[arg(long = "listen", value_name = "ADDR", default_value = "127.0.0.1:8000")]
    listen: Vec<SocketAddr>,
    /// Seconds a fresh connection may wait before its first request (0 = off).
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = seconds)]
    idle_timeout: Duration,
    /// Seconds a kept-alive connection may idle between requests (0 = off).
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = seconds)]
    keepalive_timeout: Duration,
    /// Seconds a client may stall (send nothing) in the middle of a request head or body: 408,
    /// then close (0 = off).
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = seconds)]
    request_timeout: Duration,
    /// Seconds a request head may take from its first byte to its end, however steadily it
    /// trickles in: 408, then close (0 = off).
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = seconds)]
    request_head_timeout: Duration,
    /// Least average rate, in bytes per second, at which a client must send a request head or
    /// body once --min-request-rate-grace has passed (each byte buys 1/rate seconds more;
    /// Apache's MinRate): 408, then close (0 = off). Time the server spends not reading, because
    /// the app has not taken the body, does not count.
    #[arg(long, value_name = "BYTES_PER_S", default_value = "500")]
    min_request_rate: u64,
    /// Seconds a request head or body may take before --min-request-rate applies.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = seconds)]
    min_request_rate_grace: Duration,
    /// Seconds a client may leave response bytes untaken before the connection closes (0 = off).
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = seconds)]
    write_timeout: Duration,
    /// Close timed-out connections (write, request, idle and keep-alive timeouts, the shutdown
    /// deadline) gracefully instead of resetting them. A graceful close keeps the socket and
    /// its unsent bytes in the kernel (FIN-WAIT-1) for minutes; the default reset (SO_LINGER 0)
    /// frees them at once.
    #[arg(long)]
    no_reset_timedout_connection: bool,
    /// Seconds an SSE stream may go without an event before it is ended (HTTP/2: that stream
    /// only; HTTP/1.1: the connection). 0 = off.
    #[arg(long, value_name = "SECONDS", default_value = "0", value_parser = seconds)]
    sse_idle_timeout: Duration,
    /// Seconds a WebSocket may go without a data message either way before it is closed
    /// (1001, reason idle_timeout). 0 = off.
    #[arg(long, value_name = "SECONDS", default_value = "0", value_parser = seconds)]
    ws_idle_timeout: Duration,
    /// Largest WebSocket message in bytes, after decompression (close 1009 beyond).
    #[arg(long, value_name = "BYTES", default_value = "16777216", value_parser = clap::value_parser!(u64).range(1..=(1u64 << 32)))]
    ws_max_message_size: u64,
    /// Most received WebSocket messages waiting for the app (close 1008 beyond).
    #[arg(long, value_name = "N", default_value = "1000", value_parser = clap::value_parser!(u32).range(1..))]
    ws_max_queue: u32,
    /// Do not negotiate permessage-deflate compression for WebSockets.
    #[arg(long)]
    ws_no_compression: bool,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, value_name = "BYTES", default_value = "10000000")]
    max_body_size: u64,
    /// Longest request line and largest header block in bytes (414 / 431 beyond).
    #[arg(long, value_name = "BYTES", default_value = "8192", value_parser = clap::value_parser!(u32).range(64..))]
    max_header_size: u32,
    /// Most header fields in a request (431 beyond; at most 256).
    #[arg(long, value_name = "N", default_value = "100", value_parser = clap::value_parser!(u16).range(1..=256))]
    max_headers: u16,
    /// Most open connections; beyond, 503 with retry-after.
    #[arg(long, value_name = "N", default_value = "10000", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// Seconds graceful shutdown waits for in-flight requests before aborting them.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = seconds)]
    shutdown_timeout: Duration,
    /// The `server` response header; an empty string sends none.
    #[arg(long, value_name = "STR", default_value = "ragi")]
    server_header: String,
    /// Keep answering after the client half-closes its side (off by default: a FIN ends the exchange).
    #[arg(long)]
    allow_half_close: bool,
    /// TLS certificate chain (PEM); serves HTTPS on every listener. Needs --tls-key.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1). Needs --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// CA certificates (PEM) that client certificates must chain to. Needs --tls-client-auth.
    #[arg(long, value_name = "PATH", requires_all = ["tls_cert", "tls_client_auth"])]
    tls_client_ca: Option<std::path::PathBuf>,
    /// Ask clients for a certificate: optional or required. Needs --tls-client-ca.
    #[arg(long, value_name = "MODE", requires = "tls_client_ca")]
    tls_client_auth: Option<ClientAuthArg>,
    /// Write an access log to stdout: clf (the default when given without a value), combined or json.
    #[arg(long, value_name = "FORMAT", num_args = 0..=1, default_missing_value = "clf")]
    access_log: Option<LogFormat>,
}

/// Seconds, fractions allowed, 0 = off.
fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || !(0.0..=1e9).contains(&v) {
        return Err(format!(
            "{s:?} is not a number of seconds between 0 and 1e9"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

fn off_if_zero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

impl ServerOpts {
    /// The TLS settings the flags ask for, loaded (errors name the flag and the file).
    fn tls(&self) -> Result<Option<Arc<TlsSettings>>, String> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let mut options = TlsOptions::new(cert, key);
        if let (Some(ca), Some(mode)) = (&self.tls_client_ca, self.tls_client_auth) {
            let mode = match mode {
                ClientAuthArg::Optional => ClientAuth::Optional,
                ClientAuthArg::Required => ClientAuth::Required,
            };
            options = options.with_client_auth(mode, ca);
        }
        // ALPN offers h2 first, then http/1.1.
        TlsSettings::load_with_alpn(options, Alpn::Http2AndHttp11)
            .map(|t| Some(Arc::new(t)))
            .map_err(|e| format!("--tls-cert/--tls-key/--tls-client-ca: {e}"))
    }

    fn config(&self) -> Config {
        let mut c = Config::default();
        c.idle_timeout = off_if_zero(self.idle_timeout);
        c.keepalive_timeout = off_if_zero(self.keepalive_timeout);
        c.request_timeout = off_if_zero(self.request_timeout);
        c.request_head_timeout = off_if_zero(self.request_head_timeout);
        c.min_request_rate = (self.min_request_rate > 0).then_some(self.min_request_rate);
        c.min_request_rate_grace = self.min_request_rate_grace;
        c.write_timeout = off_if_zero(self.write_timeout);
        c.reset_timedout_connection = !self.no_reset_timedout_connection;
        c.sse_idle_timeout = off_if_zero(self.sse_idle_timeout);
        c.ws_idle_timeout = off_if_zero(self.ws_idle_timeout);
        c.ws_max_message_size = self.ws_max_message_size as usize;
        c.ws_max_queue = self.ws_max_queue as usize;
        c.ws_compression = !self.ws_no_compression;
        c.max_body_size = self.max_body_size;
        c.max_request_line = self.max_header_size as usize;
        c.max_header_size = self.max_header_size as usize;
        c.max_headers = self.max_headers as usize;
        c.max_connections = self.max_connections as usize;
        c.shutdown_timeout = self.shutdown_timeout;
        c.server_header = (!self.server_header.is_empty()).then(|| self.server_header.clone());
        c.allow_half_close = self.allow_half_close;
        c.access_log = self.access_log.map(|f| match f {
            LogFormat::Clf => AccessLogFormat::Clf,
            LogFormat::Combined => AccessLogFormat::Combined,
            LogFormat::Json => AccessLogFormat::Json,
        });
        c
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    // One CPU (e.g. pinned with taskset): a current-thread runtime does the same work without
    // the multi-thread scheduler's cross-thread bookkeeping.
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ragi: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Probe(opts) => rt.block_on(run_probe(opts)),
    }
}

async fn run_probe(popts: ProbeOpts) -> ExitCode {
    let opts = &popts.server;
    let probe = Arc::new(probe::Probe::new(
        popts.fail_startup.clone(),
        !popts.no_lifecycle,
        popts.notices,
    ));
    let tls = match opts.tls() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ragi: {e}");
            return ExitCode::FAILURE;
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut server = Server::new(opts.config()).handle_signals(true);
    if let Some(t) = tls {
        server = server.tls(t);
    }
    if !popts.no_lifecycle {
        server = server.lifecycle(probe::ProbeListener::new(probe.clone()));
    }
    let server = opts.listen.iter().fold(server, |s, a| s.listen(*a));
    let bound = match server.bind().await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("ragi: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bound = bound.on_ready(move |addrs| {
        for addr in addrs {
            eprintln!("listening on {scheme}://{addr}");
        }
    });
    let app = probe::ProbeApp(probe);
    match bound.serve(app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ragi: {e}");
            ExitCode::FAILURE
        }
    }
}
