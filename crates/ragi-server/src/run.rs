//! `run(app)` and [`Run`]: an app binary's whole `main` (see [`run`]).

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, FromArgMatches};
use ragi::App;

use crate::cli::ServerArgs;
use crate::lifecycle::LifecycleListener;
use crate::{ListenAddr, Server};

/// Runs `app` as this process's server: an app binary's whole `main`. Call it from a plain
/// `fn main` (it builds the runtime itself).
///
/// ```no_run
/// use ragi::{Headers, Receiver, Scope, SendEvent, Sender};
///
/// async fn app(_scope: Scope, _receive: Receiver, send: Sender) -> ragi::AppResult {
///     send.send(SendEvent::response_start(200, Headers::new())).await?;
///     send.send(SendEvent::body("Hello, World!")).await?;
///     Ok(())
/// }
///
/// fn main() -> std::process::ExitCode {
///     ragi_server::run(app)
/// }
/// ```
///
/// That binary has the full server command line ([`ServerArgs`]: `--listen`, TLS, limits,
/// timeouts, logs, `--config`, `--help`, `--version`, each option from a flag, an environment
/// variable or the config file). Then, in order:
///
/// 1. parses the process's arguments (a bad value: the error, naming its source; exit 2);
/// 2. installs a `tracing` subscriber on stderr (`--log-level`, `--log-format`), so an app
///    that fails is a logged line with its connection id, never a silent 500;
/// 3. builds the tokio runtime: multi-threaded, or current-thread when the process may use one
///    CPU only (e.g. pinned with `taskset`), which does the same work without the scheduler's
///    cross-thread bookkeeping;
/// 4. loads TLS, binds every listener, runs lifespan start-up;
/// 5. prints `listening on http://127.0.0.1:8000` (or `https://…`, or `unix:/path`) on
///    stderr for each listener, once ready: plain text in either log format, the line scripts
///    wait for;
/// 6. serves until SIGTERM or SIGINT (graceful shutdown; a second signal aborts; SIGHUP
///    reloads TLS certificates);
/// 7. returns the exit code: 0 after a clean shutdown (and for `--help`, `--version`), 1 when
///    the server could not start (a listener, TLS files, lifespan start-up; the reason on
///    stderr), 2 for a usage error (a bad value, options that do not go together).
///
/// [`Run`] is the same with more to say: a lifecycle listener, options the app parsed itself,
/// its name and version, anything else on the [`Server`].
pub fn run(app: impl App) -> ExitCode {
    Run::new(app).run()
}

/// [`run`], with more to say: a lifecycle listener, options the app parsed itself, its name
/// and version, anything else on the [`Server`].
///
/// ```no_run
/// # async fn app(_: ragi::Scope, _: ragi::Receiver, _: ragi::Sender) -> ragi::AppResult { Ok(()) }
/// # struct Listener;
/// # impl ragi_server::LifecycleListener for Listener {}
/// fn main() -> std::process::ExitCode {
///     ragi_server::Run::new(app)
///         .name("hello")
///         .version(env!("CARGO_PKG_VERSION"))
///         .with_lifecycle(Listener)
///         .run()
/// }
/// ```
pub struct Run<A> {
    app: A,
    args: Option<ServerArgs>,
    lifecycle: Option<Arc<dyn LifecycleListener>>,
    configure: Vec<Box<dyn FnOnce(Server) -> Server>>,
    name: Option<String>,
    version: Option<String>,
    about: Option<String>,
}

impl<A> std::fmt::Debug for Run<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("args", &self.args)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The command line of [`run`]: the server's options alone.
#[derive(Debug)]
struct RunCli {
    server: ServerArgs,
}

impl FromArgMatches for RunCli {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self {
            server: ServerArgs::from_arg_matches(m)?,
        })
    }
    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.server.update_from_arg_matches(m)
    }
}

impl<A: App> Run<A> {
    /// Runs `app`; the options are parsed from the process's arguments unless given with
    /// [`args`](Self::args).
    pub fn new(app: A) -> Self {
        Self {
            app,
            args: None,
            lifecycle: None,
            configure: Vec::new(),
            name: None,
            version: None,
            about: None,
        }
    }

    /// Uses these options instead of parsing the process's arguments: for an app that parses
    /// its own command line with [`ServerArgs`] flattened in (parse it with
    /// [`cli::parse`](crate::cli::parse), which reads the config file and `RUST_LOG` too).
    pub fn args(mut self, args: ServerArgs) -> Self {
        self.args = Some(args);
        self
    }

    /// Sets the lifecycle listener.
    pub fn with_lifecycle(mut self, listener: impl LifecycleListener) -> Self {
        self.lifecycle = Some(Arc::new(listener));
        self
    }

    /// Sets the lifecycle listener, shared.
    pub fn with_lifecycle_arc(mut self, listener: Arc<dyn LifecycleListener>) -> Self {
        self.lifecycle = Some(listener);
        self
    }

    /// Anything else on the server before it binds: an error hook, an address filter.
    pub fn configure(mut self, f: impl FnOnce(Server) -> Server + 'static) -> Self {
        self.configure.push(Box::new(f));
        self
    }

    /// The program's name in `--help` and messages (default: the executable's file name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The version `--version` prints, e.g. `env!("CARGO_PKG_VERSION")` (default: none of
    /// the app's, only ragi-server's).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// The line `--help` opens with.
    pub fn about(mut self, about: impl Into<String>) -> Self {
        self.about = Some(about.into());
        self
    }

    fn program(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            std::env::args_os()
                .next()
                .as_deref()
                .map(std::path::Path::new)
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "ragi".to_owned())
        })
    }

    /// The command line of [`run`] for this program.
    fn command(&self) -> clap::Command {
        let ragi = concat!("ragi-server ", env!("CARGO_PKG_VERSION"));
        let version = match &self.version {
            Some(v) => format!("{v} ({ragi})"),
            None => format!("({ragi})"),
        };
        ServerArgs::augment_args(clap::Command::new(self.program()))
            .version(version)
            .about(
                self.about
                    .clone()
                    .unwrap_or_else(|| "A ragi app server".to_owned()),
            )
    }

    /// Parses (unless given), logs, builds the runtime, serves until shutdown; returns the
    /// exit code. See [`run`].
    pub fn run(mut self) -> ExitCode {
        let program = self.program();
        let args = match self.args.take() {
            Some(a) => a,
            None => match parse_run_cli(self.command(), std::env::args_os()) {
                Ok(a) => a,
                Err(e) => {
                    let _ = e.print();
                    return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
                }
            },
        };
        crate::cli::install_logging(&args.log_level, args.log_format);
        let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
        let mut builder = if one_cpu {
            tokio::runtime::Builder::new_current_thread()
        } else {
            tokio::runtime::Builder::new_multi_thread()
        };
        let rt = match builder.enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("{program}: cannot start the runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        match rt.block_on(self.serve(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{program}: {e}");
                // Options that do not go together are a usage error, like a bad value.
                ExitCode::from(if e.is_config() { 2 } else { 1 })
            }
        }
    }

    async fn serve(self, args: ServerArgs) -> Result<(), crate::Error> {
        let mut server = args.server()?.handle_signals(true);
        let scheme = if args.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        if let Some(l) = self.lifecycle {
            server = server.lifecycle_arc(l);
        }
        for f in self.configure {
            server = f(server);
        }
        let bound = server.bind().await?;
        let addrs = bound.listen_addrs();
        let bound = bound.on_ready(move |_| {
            for a in &addrs {
                match a {
                    ListenAddr::Tcp(a) => eprintln!("listening on {scheme}://{a}"),
                    ListenAddr::Unix(_) => eprintln!("listening on {a}"),
                }
            }
        });
        bound.serve(self.app).await
    }
}

/// Parses [`RunCli`] with the environment and the config file (the command is built at run
/// time: its name and version).
fn parse_run_cli(
    cmd: clap::Command,
    argv: impl IntoIterator<Item = std::ffi::OsString>,
) -> Result<ServerArgs, clap::Error> {
    crate::cli::parse_with(cmd, argv.into_iter().collect()).map(|m: RunCli| m.server)
}
