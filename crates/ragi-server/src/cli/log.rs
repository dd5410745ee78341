//! Logging out of the box: a `tracing` subscriber on stderr, plain text for a person at a
//! terminal, JSON lines for everything else (a service manager, a container, a pipe).
//!
//! The server logs what a person must see at `warn` and above: an app that failed (the 500 or
//! the aborted response, with the connection id and the app's error), a listener that failed,
//! a TLS reload that failed. `info` adds start-up and shutdown; `debug` each connection's end.
//!
//! A JSON line has `timestamp`, `level`, `target`, `message` and the event's fields at the top
//! level (`conn`, `error`, …), one object per line.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Plain when stderr is a terminal, JSON otherwise.
    Auto,
    /// Plain text, one event per line (coloured on a terminal).
    Plain,
    /// One JSON object per line.
    Json,
}

const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// `--log-level`: a level, or `EnvFilter` directives. A bare word must be a level (a target
/// alone would be `target=trace`, and a misspelt level would silently log everything of a
/// target that does not exist): write `target=level` for a target.
pub(crate) fn filter(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("an empty log level".to_owned());
    }
    for directive in t.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !directive.contains('=') && !directive.contains('[') {
            let lower = directive.to_ascii_lowercase();
            if !LEVELS.contains(&lower.as_str()) {
                return Err(format!(
                    "{directive:?} is not a log level ({}); a target needs target=level",
                    LEVELS.join(", ")
                ));
            }
        }
    }
    EnvFilter::try_new(t).map_err(|e| format!("{s:?} is not a log filter: {e}"))?;
    Ok(t.to_owned())
}

/// Installs the subscriber. Does nothing when the process already has one (the app installed
/// its own).
pub(crate) fn install(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let json = match format {
        LogFormat::Auto => !terminal,
        LogFormat::Plain => false,
        LogFormat::Json => true,
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.with_ansi(terminal).try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives() {
        assert_eq!(filter("info").unwrap(), "info");
        assert_eq!(filter("WARN").unwrap(), "WARN");
        assert!(filter("warn,ragi_server=debug").is_ok());
        assert!(filter("ragi_server::h1=trace").is_ok());
        let e = filter("lots").unwrap_err();
        assert!(e.contains("\"lots\" is not a log level"), "{e}");
        assert!(filter("").is_err());
        assert!(filter("x=notalevel").is_err());
    }
}
