//! The server's command line: every server option as a flag, an environment variable and a
//! config-file key, in one clap [`Args`](clap::Args) struct an app flattens into its own
//! parser.
//!
//! Most apps never see this module: [`run`](crate::run) parses the process's arguments with
//! [`ServerArgs`] and serves. An app with flags of its own flattens the struct and parses with
//! [`cli::parse`](parse) (not clap's `Parser::parse`, which reads neither the config file nor
//! `RUST_LOG`):
//!
//! ```no_run
//! use clap::Parser;
//! use ragi_server::cli::ServerArgs;
//!
//! #[derive(Parser)]
//! #[command(version, about = "My app")]
//! struct Cli {
//!     /// Greeting to answer with.
//!     #[arg(long, env = "MYAPP_GREETING", default_value = "Hello")]
//!     greeting: String,
//!     #[command(flatten)]
//!     server: ServerArgs,
//! }
//!
//! # async fn app(_: ragi::Scope, _: ragi::Receiver, _: ragi::Sender) -> ragi::AppResult { Ok(()) }
//! fn main() -> std::process::ExitCode {
//!     let cli: Cli = ragi_server::cli::parse();
//!     println!("greeting: {}", cli.greeting);
//!     ragi_server::Run::new(app).args(cli.server).run()
//! }
//! ```
//!
//! # Where a value comes from
//!
//! Each option is read from, in this order of precedence:
//!
//! 1. the **command line**: `--max-body-size 1000000`;
//! 2. the **environment**: `RAGI_MAX_BODY_SIZE=1000000`. The rule: `RAGI_`, then the long
//!    flag's name in capitals with `-` as `_`. Options that take several values (`--listen`)
//!    take them comma-separated (`RAGI_LISTEN=127.0.0.1:8000,unix:/run/app.sock`);
//! 3. the **config file** named by `--config FILE` (or `RAGI_CONFIG`), TOML whose keys are the
//!    long flag names: `max-body-size = 1000000`, `listen = ["127.0.0.1:8000"]`. Every long
//!    option of the command is a key, the app's own included;
//! 4. the **default** shown by `--help`.
//!
//! `--log-level` has one more source between the environment and the file: `RUST_LOG`, read
//! when neither `--log-level` nor `RAGI_LOG_LEVEL` is given.
//!
//! On/off options take an optional value so that a higher layer can turn off what a lower one
//! turned on: `--allow-half-close` is `--allow-half-close=true`; `--allow-half-close=false`
//! beats `RAGI_ALLOW_HALF_CLOSE=true`. Variables and keys take `true`/`false` (also
//! `1`/`0`, `yes`/`no`, `on`/`off`).
//!
//! # Errors name their source
//!
//! A wrong value is an error that names where it came from, and the process exits with
//! status 2 before anything is bound:
//!
//! ```text
//! error: invalid value '12x' for '--max-body-size <BYTES>': "12x" is not a number
//! error: RAGI_MAX_BODY_SIZE: "12x" is not a number
//! error: ragi.toml:7: unknown key "listn" (did you mean "listen"?)
//! error: ragi.toml:3: max-body-size: "12x" is not a number
//! ```
//!
//! A variable that a flag overrides is not read, so it is not checked; a config file is
//! checked whole (every key known, every value valid) even where flags override it.
//!
//! # Adding an option
//!
//! One place: a field of [`ServerArgs`] (its doc comment is the `--help` text; its `env` is
//! `RAGI_` + the flag's name, which a test checks for every field) and its line in
//! [`ServerArgs::config`]. The environment and the file follow from the field.

mod layers;
mod log;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, ValueEnum};

use crate::tls::{Alpn, ClientAuth, TlsOptions, TlsSettings};
use crate::{AccessLogFormat, Config, Error, ListenAddr};

pub(crate) use layers::parse_with;
pub use layers::{parse, try_parse, try_parse_from};
pub(crate) use log::install as install_logging;
pub use log::LogFormat;

/// Every server option: listeners, TLS, limits, timeouts, WebSocket and SSE, logs, the
/// process. See the [module documentation](self) for the environment and the config file.
#[derive(clap::Args, Clone, Debug)]
#[non_exhaustive]
pub struct ServerArgs {
    // ----- listening ------------------------------------------------------------------------
    /// Address to listen on: IP:PORT (an IPv6 address in brackets) or unix:/PATH (repeatable;
    /// port 0 picks a free port).
    #[arg(
        long,
        env = "RAGI_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8000",
        value_delimiter = ',',
        help_heading = "Listening"
    )]
    pub listen: Vec<ListenAddr>,
    /// Permissions of Unix-domain sockets, octal (owner and group may connect by default).
    #[arg(long, env = "RAGI_UNIX_SOCKET_MODE", value_name = "OCTAL", default_value = "660",
          value_parser = octal_mode, help_heading = "Listening")]
    pub unix_socket_mode: u32,
    /// Most open connections; beyond, 503 with retry-after.
    #[arg(long, env = "RAGI_MAX_CONNECTIONS", value_name = "N", default_value = "10000",
          value_parser = int(1, u64::MAX), help_heading = "Listening")]
    pub max_connections: u64,

    // ----- TLS ------------------------------------------------------------------------------
    /// TLS certificate chain (PEM); serves HTTPS on every listener. Needs --tls-key.
    #[arg(long, env = "RAGI_TLS_CERT", value_name = "PATH", value_parser = readable_file,
          help_heading = "TLS")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1). Needs --tls-cert.
    #[arg(long, env = "RAGI_TLS_KEY", value_name = "PATH", value_parser = readable_file,
          help_heading = "TLS")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must chain to. Needs --tls-client-auth.
    #[arg(long, env = "RAGI_TLS_CLIENT_CA", value_name = "PATH", value_parser = readable_file,
          help_heading = "TLS")]
    pub tls_client_ca: Option<PathBuf>,
    /// Ask clients for a certificate: optional or required. Needs --tls-client-ca.
    #[arg(
        long,
        env = "RAGI_TLS_CLIENT_AUTH",
        value_name = "MODE",
        help_heading = "TLS"
    )]
    pub tls_client_auth: Option<ClientAuthMode>,

    // ----- limits ---------------------------------------------------------------------------
    /// Largest request body in bytes (413 beyond).
    #[arg(long, env = "RAGI_MAX_BODY_SIZE", value_name = "BYTES", default_value = "10000000",
          value_parser = int(0, u64::MAX), help_heading = "Limits")]
    pub max_body_size: u64,
    /// Longest request line and largest header block in bytes (414 / 431 beyond).
    #[arg(long, env = "RAGI_MAX_HEADER_SIZE", value_name = "BYTES", default_value = "8192",
          value_parser = int(64, u32::MAX as u64), help_heading = "Limits")]
    pub max_header_size: u64,
    /// Most header fields in a request (431 beyond; at most 256).
    #[arg(long, env = "RAGI_MAX_HEADERS", value_name = "N", default_value = "100",
          value_parser = int(1, 256), help_heading = "Limits")]
    pub max_headers: u64,

    // ----- timeouts -------------------------------------------------------------------------
    /// Seconds a fresh connection may wait before its first request (0 = off).
    #[arg(long, env = "RAGI_IDLE_TIMEOUT", value_name = "SECONDS", default_value = "60",
          value_parser = seconds, help_heading = "Timeouts")]
    pub idle_timeout: Duration,
    /// Seconds a kept-alive connection may idle between requests (0 = off).
    #[arg(long, env = "RAGI_KEEPALIVE_TIMEOUT", value_name = "SECONDS", default_value = "60",
          value_parser = seconds, help_heading = "Timeouts")]
    pub keepalive_timeout: Duration,
    /// Seconds a client may stall (send nothing) in the middle of a request head or body: 408,
    /// then close (0 = off).
    #[arg(long, env = "RAGI_REQUEST_TIMEOUT", value_name = "SECONDS", default_value = "30",
          value_parser = seconds, help_heading = "Timeouts")]
    pub request_timeout: Duration,
    /// Seconds a request head may take from its first byte to its end, however steadily it
    /// trickles in: 408, then close (0 = off).
    #[arg(long, env = "RAGI_REQUEST_HEAD_TIMEOUT", value_name = "SECONDS", default_value = "60",
          value_parser = seconds, help_heading = "Timeouts")]
    pub request_head_timeout: Duration,
    /// Least average rate, in bytes per second, at which a client must send a request head or
    /// body once --min-request-rate-grace has passed (each byte buys 1/rate seconds more;
    /// Apache's MinRate): 408, then close (0 = off). Time the server spends not reading,
    /// because the app has not taken the body, does not count.
    #[arg(long, env = "RAGI_MIN_REQUEST_RATE", value_name = "BYTES_PER_S", default_value = "500",
          value_parser = int(0, u64::MAX), help_heading = "Timeouts")]
    pub min_request_rate: u64,
    /// Seconds a request head or body may take before --min-request-rate applies.
    #[arg(long, env = "RAGI_MIN_REQUEST_RATE_GRACE", value_name = "SECONDS", default_value = "10",
          value_parser = seconds, help_heading = "Timeouts")]
    pub min_request_rate_grace: Duration,
    /// Seconds a client may leave response bytes untaken before the connection closes
    /// (0 = off).
    #[arg(long, env = "RAGI_WRITE_TIMEOUT", value_name = "SECONDS", default_value = "30",
          value_parser = seconds, help_heading = "Timeouts")]
    pub write_timeout: Duration,
    /// Close timed-out connections (write, request, idle and keep-alive timeouts, the shutdown
    /// deadline) gracefully instead of resetting them. A graceful close keeps the socket and
    /// its unsent bytes in the kernel (FIN-WAIT-1) for minutes; the default reset (SO_LINGER
    /// 0) frees them at once.
    #[arg(long, env = "RAGI_NO_RESET_TIMEDOUT_CONNECTION", value_name = "BOOL",
          default_value = "false", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = ArgAction::Set, value_parser = boolean,
          help_heading = "Timeouts")]
    pub no_reset_timedout_connection: bool,
    /// Seconds graceful shutdown waits for in-flight requests before aborting them.
    #[arg(long, env = "RAGI_SHUTDOWN_TIMEOUT", value_name = "SECONDS", default_value = "30",
          value_parser = seconds, help_heading = "Timeouts")]
    pub shutdown_timeout: Duration,

    // ----- HTTP -----------------------------------------------------------------------------
    /// The `server` response header; an empty string sends none.
    #[arg(
        long,
        env = "RAGI_SERVER_HEADER",
        value_name = "STR",
        default_value = "ragi",
        help_heading = "HTTP"
    )]
    pub server_header: String,
    /// Keep answering after the client half-closes its side (off by default: a FIN ends the
    /// exchange).
    #[arg(long, env = "RAGI_ALLOW_HALF_CLOSE", value_name = "BOOL", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          action = ArgAction::Set, value_parser = boolean, help_heading = "HTTP")]
    pub allow_half_close: bool,
    /// Write an access log to stdout: clf (the default when given without a value), combined,
    /// json, or off.
    #[arg(long, env = "RAGI_ACCESS_LOG", value_name = "FORMAT", default_value = "off",
          num_args = 0..=1, default_missing_value = "clf", help_heading = "HTTP")]
    pub access_log: AccessLog,

    // ----- WebSocket and SSE ----------------------------------------------------------------
    /// Seconds an SSE stream may go without an event before it is ended (HTTP/2: that stream
    /// only; HTTP/1.1: the connection). 0 = off.
    #[arg(long, env = "RAGI_SSE_IDLE_TIMEOUT", value_name = "SECONDS", default_value = "0",
          value_parser = seconds, help_heading = "WebSocket and SSE")]
    pub sse_idle_timeout: Duration,
    /// Seconds a WebSocket may go without a data message either way before it is closed
    /// (1001, reason idle_timeout). 0 = off.
    #[arg(long, env = "RAGI_WS_IDLE_TIMEOUT", value_name = "SECONDS", default_value = "0",
          value_parser = seconds, help_heading = "WebSocket and SSE")]
    pub ws_idle_timeout: Duration,
    /// Largest WebSocket message in bytes, after decompression (close 1009 beyond).
    #[arg(long, env = "RAGI_WS_MAX_MESSAGE_SIZE", value_name = "BYTES",
          default_value = "16777216", value_parser = int(1, 1 << 32),
          help_heading = "WebSocket and SSE")]
    pub ws_max_message_size: u64,
    /// Most received WebSocket messages waiting for the app (close 1008 beyond).
    #[arg(long, env = "RAGI_WS_MAX_QUEUE", value_name = "N", default_value = "1000",
          value_parser = int(1, u32::MAX as u64), help_heading = "WebSocket and SSE")]
    pub ws_max_queue: u64,
    /// Do not negotiate permessage-deflate compression for WebSockets.
    #[arg(long, env = "RAGI_WS_NO_COMPRESSION", value_name = "BOOL", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          action = ArgAction::Set, value_parser = boolean, help_heading = "WebSocket and SSE")]
    pub ws_no_compression: bool,

    // ----- logs and the process -------------------------------------------------------------
    /// Log level (trace, debug, info, warn, error, off) or filter directives
    /// (`warn,ragi_server=debug`); RUST_LOG is read when neither this flag nor RAGI_LOG_LEVEL
    /// is given.
    #[arg(long, env = "RAGI_LOG_LEVEL", value_name = "LEVEL", default_value = "info",
          value_parser = log::filter, help_heading = "Logs and process")]
    pub log_level: String,
    /// Log format on stderr: plain text, JSON lines, or auto (plain on a terminal, JSON
    /// otherwise).
    #[arg(
        long,
        env = "RAGI_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "auto",
        help_heading = "Logs and process"
    )]
    pub log_format: LogFormat,
    /// Worker processes. Only 1 is built so far: more is an error until workers exist.
    #[arg(long, env = "RAGI_WORKERS", value_name = "N", default_value = "1",
          value_parser = workers, help_heading = "Logs and process")]
    pub workers: u64,
    /// Config file (TOML; keys are the long flag names). Flags and environment variables
    /// override it.
    #[arg(
        long,
        env = "RAGI_CONFIG",
        value_name = "FILE",
        help_heading = "Logs and process"
    )]
    pub config: Option<PathBuf>,
}

/// `--tls-client-auth`: whether a client certificate is asked for or required.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClientAuthMode {
    /// Asked for; a client without one is served.
    Optional,
    /// Required; a client without one fails the handshake.
    Required,
}

/// `--access-log`: the access log's format, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AccessLog {
    /// No access log.
    Off,
    /// Common Log Format.
    Clf,
    /// Combined Log Format (CLF plus referer and user agent).
    Combined,
    /// One JSON object per line.
    Json,
}

fn off_if_zero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

impl ServerArgs {
    /// The server settings these options ask for.
    pub fn config(&self) -> Config {
        Config {
            idle_timeout: off_if_zero(self.idle_timeout),
            keepalive_timeout: off_if_zero(self.keepalive_timeout),
            request_timeout: off_if_zero(self.request_timeout),
            request_head_timeout: off_if_zero(self.request_head_timeout),
            min_request_rate: (self.min_request_rate > 0).then_some(self.min_request_rate),
            min_request_rate_grace: self.min_request_rate_grace,
            write_timeout: off_if_zero(self.write_timeout),
            reset_timedout_connection: !self.no_reset_timedout_connection,
            sse_idle_timeout: off_if_zero(self.sse_idle_timeout),
            ws_idle_timeout: off_if_zero(self.ws_idle_timeout),
            ws_max_message_size: self.ws_max_message_size as usize,
            ws_max_queue: self.ws_max_queue as usize,
            ws_compression: !self.ws_no_compression,
            max_body_size: self.max_body_size,
            max_request_line: self.max_header_size as usize,
            max_header_size: self.max_header_size as usize,
            max_headers: self.max_headers as usize,
            max_connections: self.max_connections as usize,
            shutdown_timeout: self.shutdown_timeout,
            server_header: (!self.server_header.is_empty()).then(|| self.server_header.clone()),
            allow_half_close: self.allow_half_close,
            access_log: match self.access_log {
                AccessLog::Off => None,
                AccessLog::Clf => Some(AccessLogFormat::Clf),
                AccessLog::Combined => Some(AccessLogFormat::Combined),
                AccessLog::Json => Some(AccessLogFormat::Json),
            },
            unix_socket_mode: self.unix_socket_mode,
            ..Config::default()
        }
    }

    /// The TLS settings these options ask for, loaded (`None` without `--tls-cert`). Errors
    /// name the options and the file.
    pub fn tls(&self) -> Result<Option<Arc<TlsSettings>>, Error> {
        let client =
            match (&self.tls_client_ca, self.tls_client_auth) {
                (Some(ca), Some(mode)) => Some((ca, mode)),
                (None, None) => None,
                (Some(_), None) => return Err(Error::config(
                    "--tls-client-ca is set but --tls-client-auth is not (optional or required)",
                )),
                (None, Some(_)) => {
                    return Err(Error::config(
                        "--tls-client-auth is set but --tls-client-ca is not",
                    ))
                }
            };
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => (c, k),
            (None, None) if client.is_some() => {
                return Err(Error::config(
                    "--tls-client-ca and --tls-client-auth need --tls-cert and --tls-key",
                ))
            }
            (None, None) => return Ok(None),
            (Some(_), None) => return Err(Error::config("--tls-cert is set but --tls-key is not")),
            (None, Some(_)) => return Err(Error::config("--tls-key is set but --tls-cert is not")),
        };
        let mut options = TlsOptions::new(cert, key);
        if let Some((ca, mode)) = client {
            let mode = match mode {
                ClientAuthMode::Optional => ClientAuth::Optional,
                ClientAuthMode::Required => ClientAuth::Required,
            };
            options = options.with_client_auth(mode, ca);
        }
        // ALPN offers h2 first, then http/1.1.
        TlsSettings::load_with_alpn(options, Alpn::Http2AndHttp11)
            .map(|t| Some(Arc::new(t)))
            .map_err(|e| Error::tls("--tls-cert, --tls-key, --tls-client-ca", e))
    }

    /// The addresses to listen on.
    pub fn listen_addrs(&self) -> &[ListenAddr] {
        &self.listen
    }

    /// A [`Server`](crate::Server) with these settings, TLS and listeners (not yet bound;
    /// signals not yet handled: [`Run`](crate::Run) adds that).
    pub fn server(&self) -> Result<crate::Server, Error> {
        let mut server = crate::Server::new(self.config());
        if let Some(tls) = self.tls()? {
            server = server.tls(tls);
        }
        Ok(self
            .listen
            .iter()
            .fold(server, |s, a| s.listen_on(a.clone())))
    }
}

// ----- value parsers: each error says what is wrong with the value, quoting it --------------

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

/// A whole number in `min..=max`.
fn int(min: u64, max: u64) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync {
    move |s: &str| {
        let v: u64 = s.trim().parse().map_err(|_| {
            if s.trim().starts_with('-') && s.trim()[1..].parse::<u64>().is_ok() {
                format!("{s:?} is negative")
            } else {
                format!("{s:?} is not a number")
            }
        })?;
        if v < min || v > max {
            return Err(format!("{v} is not between {min} and {max}"));
        }
        Ok(v)
    }
}

fn workers(s: &str) -> Result<u64, String> {
    let n = int(1, 4096)(s)?;
    if n > 1 {
        return Err(format!(
            "{n} workers: worker processes are not built yet, only 1 is accepted \
             (run one process per core behind a load balancer meanwhile)"
        ));
    }
    Ok(n)
}

/// `true`/`false` and their usual spellings.
fn boolean(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "y" => Ok(true),
        "false" | "0" | "no" | "off" | "n" => Ok(false),
        _ => Err(format!("{s:?} is not true or false")),
    }
}

/// Permission bits, octal: `660`, `0660`, `0o660`.
fn octal_mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    match u32::from_str_radix(digits, 8) {
        Ok(v) if v <= 0o777 && !digits.is_empty() => Ok(v),
        _ => Err(format!(
            "{s:?} is not an octal file mode between 000 and 777"
        )),
    }
}

/// A path to a file that exists and can be read (checked when the options are parsed, so the
/// error names the flag, variable or config line that gave it).
fn readable_file(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("an empty path".to_owned());
    }
    std::fs::File::open(s).map_err(|e| format!("{s:?}: {e}"))?;
    Ok(PathBuf::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        server: ServerArgs,
    }

    /// The naming rule holds for every option: `RAGI_` + the long name, `-` as `_`.
    #[test]
    fn every_option_has_its_environment_variable() {
        let cmd = Cli::command();
        let mut n = 0;
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if long == "help" || long == "version" {
                continue;
            }
            let want = format!("RAGI_{}", long.to_ascii_uppercase().replace('-', "_"));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(want.as_str()),
                "--{long}"
            );
            assert!(arg.get_help().is_some(), "--{long} has no help");
            n += 1;
        }
        assert!(n >= 25, "{n} options");
    }

    #[test]
    fn defaults_are_the_config_defaults() {
        let cli = Cli::try_parse_from_defaults();
        let c = cli.server.config();
        let d = Config::default();
        assert_eq!(c.idle_timeout, d.idle_timeout);
        assert_eq!(c.keepalive_timeout, d.keepalive_timeout);
        assert_eq!(c.request_timeout, d.request_timeout);
        assert_eq!(c.request_head_timeout, d.request_head_timeout);
        assert_eq!(c.min_request_rate, d.min_request_rate);
        assert_eq!(c.min_request_rate_grace, d.min_request_rate_grace);
        assert_eq!(c.reset_timedout_connection, d.reset_timedout_connection);
        assert_eq!(c.write_timeout, d.write_timeout);
        assert_eq!(c.max_body_size, d.max_body_size);
        assert_eq!(c.max_header_size, d.max_header_size);
        assert_eq!(c.max_request_line, d.max_request_line);
        assert_eq!(c.max_headers, d.max_headers);
        assert_eq!(c.max_connections, d.max_connections);
        assert_eq!(c.shutdown_timeout, d.shutdown_timeout);
        assert_eq!(c.server_header, d.server_header);
        assert_eq!(c.allow_half_close, d.allow_half_close);
        assert_eq!(c.access_log, d.access_log);
        assert_eq!(c.sse_idle_timeout, d.sse_idle_timeout);
        assert_eq!(c.ws_idle_timeout, d.ws_idle_timeout);
        assert_eq!(c.ws_max_message_size, d.ws_max_message_size);
        assert_eq!(c.ws_max_queue, d.ws_max_queue);
        assert_eq!(c.ws_compression, d.ws_compression);
        assert_eq!(c.unix_socket_mode, d.unix_socket_mode);
        assert_eq!(
            cli.server.listen,
            vec![ListenAddr::Tcp("127.0.0.1:8000".parse().unwrap())]
        );
        assert_eq!(cli.server.workers, 1);
    }

    impl Cli {
        /// Parsed from no arguments, with no variable read (they are removed from the
        /// command, so this does not depend on the test's environment).
        fn try_parse_from_defaults() -> Cli {
            use clap::FromArgMatches;
            let cmd = Cli::command().mut_args(|a| a.env(None));
            let m = cmd.try_get_matches_from(["x"]).unwrap();
            Cli::from_arg_matches(&m).unwrap()
        }
    }

    #[test]
    fn value_parsers_quote_the_value() {
        assert_eq!(int(0, 10)("12x").unwrap_err(), "\"12x\" is not a number");
        assert_eq!(int(0, 10)("-3").unwrap_err(), "\"-3\" is negative");
        assert_eq!(int(1, 10)("0").unwrap_err(), "0 is not between 1 and 10");
        assert_eq!(int(0, 10)(" 7 ").unwrap(), 7);
        assert!(seconds("soon").unwrap_err().contains("\"soon\""));
        assert_eq!(seconds("0.5").unwrap(), Duration::from_millis(500));
        assert!(boolean("maybe").is_err());
        assert!(boolean("ON").unwrap());
        assert_eq!(octal_mode("0o600").unwrap(), 0o600);
        assert_eq!(octal_mode("0660").unwrap(), 0o660);
        assert!(octal_mode("999").is_err());
        assert!(octal_mode("1777").is_err());
        assert!(workers("1").is_ok());
        assert!(workers("4").unwrap_err().contains("not built yet"));
        assert!(workers("0").is_err());
        assert!(readable_file("/nonexistent/cert.pem")
            .unwrap_err()
            .contains("/nonexistent/cert.pem"));
    }

    #[test]
    fn tls_option_pairs_are_checked() {
        let mut cli = Cli::try_parse_from_defaults();
        assert!(cli.server.tls().unwrap().is_none());
        cli.server.tls_cert = Some("cert.pem".into());
        let e = cli.server.tls().unwrap_err().to_string();
        assert!(e.contains("--tls-key"), "{e}");
        cli.server.tls_cert = None;
        cli.server.tls_client_auth = Some(ClientAuthMode::Required);
        let e = cli.server.tls().unwrap_err().to_string();
        assert!(e.contains("--tls-client-ca"), "{e}");
    }
}
