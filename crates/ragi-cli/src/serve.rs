//! `ragi serve DIR`: a directory over HTTP with the static-file app of `ragi-tools`
//! ([`ragi_tools::apps::static_files`]): conditional requests, single and multi-range
//! requests, precompressed `.br`/`.zst`/`.gz` siblings, `index.html` for directories (and a
//! 308 from `/dir` to `/dir/`), an optional listing, an SPA mode; traversal in every
//! spelling, dotfiles and symlinks out of the directory refused.
//!
//! The server options are [`ServerArgs`], flattened: the same flags, `RAGI_*` variables and
//! config-file keys as `ragi probe` and every app binary. The options of this command follow
//! the same rule (`--listing` is `RAGI_LISTING` and the key `listing`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Args};
use ragi_server::cli::ServerArgs;
use ragi_server::Run;
use ragi_tools::apps::static_files::StaticFiles;

/// `ragi serve`'s own options.
#[derive(Args, Debug)]
pub(crate) struct ServeOpts {
    /// The directory to serve (it must exist).
    #[arg(value_name = "DIR", env = "RAGI_DIR", value_parser = existing_dir)]
    dir: PathBuf,
    /// List directories that have no index.html (HTML, or JSON for `Accept: application/json`).
    #[arg(long, env = "RAGI_LISTING", value_name = "BOOL", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          action = ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(),
          help_heading = "Files")]
    listing: bool,
    /// Single-page app: a GET for a path that names no file gets DIR/index.html.
    #[arg(long, env = "RAGI_SPA", value_name = "BOOL", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          action = ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(),
          help_heading = "Files")]
    spa: bool,
    /// Serve files through symlinks that lead out of DIR (refused with 404 by default).
    #[arg(long, env = "RAGI_FOLLOW_SYMLINKS", value_name = "BOOL", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          action = ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(),
          help_heading = "Files")]
    follow_symlinks: bool,
    /// Serve names that start with a dot (404 by default, except /.well-known/).
    #[arg(long, env = "RAGI_DOTFILES", value_name = "BOOL", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          action = ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(),
          help_heading = "Files")]
    dotfiles: bool,
    /// Run each request's file lookup (open, stat) on a blocking thread pool instead of the
    /// event loop: for network or FUSE file systems, where one open can stall.
    #[arg(long, env = "RAGI_OFFLOAD_LOOKUPS", value_name = "BOOL", default_value = "false",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          action = ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(),
          help_heading = "Files")]
    offload_lookups: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// `DIR` must name a directory now: an error naming it otherwise (clap adds the argument).
fn existing_dir(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_dir() => Ok(path),
        Ok(_) => Err(format!("{s}: not a directory")),
        Err(e) => Err(format!("{s}: {e}")),
    }
}

pub(crate) fn run(opts: ServeOpts) -> ExitCode {
    let files = match StaticFiles::new(&opts.dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: DIR {e}");
            return ExitCode::from(2);
        }
    };
    let app = files
        .listing(opts.listing)
        .spa(opts.spa)
        .follow_symlinks(opts.follow_symlinks)
        .dotfiles(opts.dotfiles)
        .offload_lookups(opts.offload_lookups);
    Run::new(app).name("ragi").args(opts.server).run()
}
