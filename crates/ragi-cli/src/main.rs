//! `ragi` — the command line.
//!
//! `ragi probe [options]` serves the probe app (see [`probe`]); `ragi serve DIR [options]` a
//! directory (see [`serve`]). Their server options are
//! [`ragi_server::cli::ServerArgs`], the same struct every app binary gets from
//! [`ragi_server::run`]: each one is a flag, a `RAGI_*` environment variable and a key of the
//! `--config` file.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgAction, Args, Parser, Subcommand};
use ragi_server::cli::ServerArgs;
use ragi_server::Run;

mod probe;
mod serve;

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
    /// Serve the files of a directory: conditional requests, ranges, precompressed siblings,
    /// index.html, an optional listing, an SPA mode.
    Serve(serve::ServeOpts),
}

#[derive(Args, Debug)]
struct ProbeOpts {
    #[command(flatten)]
    server: ServerArgs,
    /// Run without the lifecycle listener (`/connections` then answers 404); for measuring
    /// what the listener costs.
    #[arg(long, env = "RAGI_NO_LIFECYCLE", value_name = "BOOL", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          action = ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(),
          help_heading = "Probe")]
    no_lifecycle: bool,
    /// Answer lifespan start-up with StartupFailed and this message (the process exits 1);
    /// for testing deployments' failure handling.
    #[arg(
        long,
        env = "RAGI_FAIL_STARTUP",
        value_name = "MESSAGE",
        help_heading = "Probe"
    )]
    fail_startup: Option<String>,
    /// Most lifecycle notices kept for `/connections` (the oldest are dropped first), so that
    /// a long-running probe does not grow.
    #[arg(
        long,
        env = "RAGI_NOTICES",
        value_name = "N",
        default_value = "10000",
        help_heading = "Probe"
    )]
    notices: usize,
}

fn main() -> ExitCode {
    let cli: Cli = ragi_server::cli::parse();
    match cli.command {
        Command::Probe(opts) => run_probe(opts),
        Command::Serve(opts) => serve::run(opts),
    }
}

fn run_probe(opts: ProbeOpts) -> ExitCode {
    let probe = Arc::new(probe::Probe::new(
        opts.fail_startup.clone(),
        !opts.no_lifecycle,
        opts.notices,
    ));
    let mut run = Run::new(probe::ProbeApp(probe.clone()))
        .name("ragi")
        .args(opts.server);
    if !opts.no_lifecycle {
        run = run.with_lifecycle(probe::ProbeListener::new(probe));
    }
    run.run()
}
