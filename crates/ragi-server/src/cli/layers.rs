//! Layering: the config file and the environment under the command line.
//!
//! clap reads the command line and the environment itself (`env` on each argument) and falls
//! back to the default. The config file goes in as the default: each key's value replaces the
//! argument's default before the real parse, so clap's own precedence gives flags > environment
//! > file > built-in default. Two things clap cannot do are done here, before that parse:
//!
//! * **Name the source of a bad value.** clap's error for a bad variable names the flag. Each
//!   variable that will be read (its flag was not given) is checked first with the argument's
//!   own value parser, and a failure is reported as `RAGI_X: …`; each file value likewise, as
//!   `file:line: key: …`.
//! * **Know which command the file is for.** A first, lenient parse (clap's `ignore_errors`)
//!   finds the subcommand, `--config`, and which options the command line gave.
//!
//! Why not clap's `ArgMatches` merging, or a config crate: clap has no layer between the
//! environment and the default, and config crates (figment, config) lose the line of a bad
//! value and know nothing of clap's value parsers, so a value would be checked twice, by two
//! rules.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, FromArgMatches, Parser};

/// An environment variable that stands in for an option after its own variable: `RUST_LOG`
/// for `--log-level`.
const FALLBACK_ENV: &[(&str, &str)] = &[("log_level", "RUST_LOG")];

/// Parses the process's arguments into `C` with the environment and the config file (see the
/// [module documentation](super)); on an error, prints it and exits (status 2; 0 for `--help`
/// and `--version`), as clap's `Parser::parse` does.
pub fn parse<C: Parser>() -> C {
    match try_parse() {
        Ok(c) => c,
        Err(e) => e.exit(),
    }
}

/// [`parse`], returning the error instead of exiting.
pub fn try_parse<C: Parser>() -> Result<C, clap::Error> {
    try_parse_from(std::env::args_os())
}

/// [`parse`] from these arguments (the first is the program's name), returning the error.
pub fn try_parse_from<C, I, T>(args: I) -> Result<C, clap::Error>
where
    C: Parser,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    parse_with(C::command(), args.into_iter().map(Into::into).collect())
}

/// [`try_parse_from`] with a command built at run time.
pub(crate) fn parse_with<C: FromArgMatches>(
    mut cmd: Command,
    argv: Vec<OsString>,
) -> Result<C, clap::Error> {
    let lenient = cmd.clone().ignore_errors(true).try_get_matches_from(&argv);
    if let Ok(m) = lenient {
        let defaults = gather(&cmd, &m).map_err(|e| e.with_cmd(&cmd))?;
        cmd = apply(cmd, defaults);
    }
    // --help, --version and command-line errors come from here, as clap reports them.
    let mut m = cmd.try_get_matches_from_mut(&argv)?;
    C::from_arg_matches_mut(&mut m).map_err(|e| e.format(&mut cmd))
}

/// New defaults for one argument: which subcommand (names from the top), which argument, the
/// values.
struct Default {
    path: Vec<String>,
    id: String,
    values: Vec<String>,
}

/// The invoked command and its ancestors, top first, with their matches.
fn command_path<'a>(
    cmd: &'a Command,
    m: &'a ArgMatches,
) -> Vec<(Vec<String>, &'a Command, &'a ArgMatches)> {
    let mut out = vec![(Vec::new(), cmd, m)];
    loop {
        let (names, c, m) = out.last().expect("not empty").clone();
        let Some((name, sub_m)) = m.subcommand() else {
            break;
        };
        let Some(sub) = c.find_subcommand(name) else {
            break;
        };
        let mut names = names.clone();
        names.push(sub.get_name().to_owned());
        out.push((names, sub, sub_m));
    }
    out
}

/// Whether the argument takes part in layering (has a value an option can give).
fn is_option(arg: &Arg) -> bool {
    arg.get_long().is_some()
        && !matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        )
}

fn from_command_line(m: &ArgMatches, arg: &Arg) -> bool {
    m.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine)
}

/// Checks the variables that will be read and the config file; returns the file's values and
/// the fallback variables' as new defaults.
fn gather(cmd: &Command, m: &ArgMatches) -> Result<Vec<Default>, clap::Error> {
    let path = command_path(cmd, m);
    let mut defaults = Vec::new();

    // The config file, wherever on the path `--config` is.
    let mut config: Option<(PathBuf, String)> = None;
    for (_, c, m) in &path {
        if let Some(arg) = c.get_arguments().find(|a| a.get_id() == "config") {
            if let Some(v) = m.get_raw("config").and_then(|mut v| v.next()) {
                let source = if from_command_line(m, arg) {
                    "--config".to_owned()
                } else {
                    arg.get_env()
                        .map(|e| e.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "--config".to_owned())
                };
                config = Some((PathBuf::from(v), source));
            }
        }
    }
    if let Some((file, source)) = &config {
        defaults.extend(read_file(file, source, &path)?);
    }

    // The variables that will be read: checked here so that the error names them.
    for (names, c, m) in &path {
        for arg in c.get_arguments().filter(|a| is_option(a)) {
            if from_command_line(m, arg) {
                continue;
            }
            let id = arg.get_id().as_str();
            let own = arg.get_env().map(|e| (e.to_owned(), std::env::var_os(e)));
            if let Some((var, Some(value))) = &own {
                check_value(arg, value)
                    .map_err(|why| raw(format!("{}: {why}", var.to_string_lossy())))?;
                continue;
            }
            // No variable of its own: a fallback variable beats the file.
            for (fid, fvar) in FALLBACK_ENV {
                if *fid != id {
                    continue;
                }
                if let Some(value) = std::env::var_os(fvar) {
                    let text =
                        check_value(arg, &value).map_err(|why| raw(format!("{fvar}: {why}")))?;
                    defaults.retain(|d| !(d.path == *names && d.id == id));
                    defaults.push(Default {
                        path: names.clone(),
                        id: id.to_owned(),
                        values: vec![text],
                    });
                }
            }
        }
    }
    Ok(defaults)
}

/// Installs the new defaults.
fn apply(mut cmd: Command, defaults: Vec<Default>) -> Command {
    for d in defaults {
        cmd = apply_one(cmd, &d.path, &d.id, d.values);
    }
    cmd
}

fn apply_one(cmd: Command, path: &[String], id: &str, values: Vec<String>) -> Command {
    match path.split_first() {
        None => cmd.mut_arg(id, |a| a.default_values(values)),
        Some((name, rest)) => cmd.mut_subcommand(name, |sub| apply_one(sub, rest, id, values)),
    }
}

fn raw(message: String) -> clap::Error {
    clap::Error::raw(ErrorKind::ValueValidation, format!("{message}\n"))
}

/// Runs `arg`'s value parser on `value` (split on its delimiter, as clap would); returns the
/// value as text, or what is wrong with it.
fn check_value(arg: &Arg, value: &OsStr) -> Result<String, String> {
    let Some(text) = value.to_str() else {
        return Err(format!("{value:?} is not UTF-8"));
    };
    if !arg.get_action().takes_values() {
        // A plain flag (an app's `bool` field): true or false.
        return match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok("true".to_owned()),
            "false" | "0" | "no" | "off" => Ok("false".to_owned()),
            _ => Err(format!("{text:?} is not true or false")),
        };
    }
    let mut probe = Arg::new("value")
        .long("value")
        .action(ArgAction::Set)
        .num_args(1)
        .allow_hyphen_values(true)
        .value_parser(arg.get_value_parser().clone());
    if let Some(d) = arg.get_value_delimiter() {
        probe = probe.value_delimiter(d).action(ArgAction::Append);
    }
    let check = Command::new("check").no_binary_name(true).arg(probe);
    match check.try_get_matches_from([OsStr::new("--value"), value]) {
        Ok(_) => Ok(text.to_owned()),
        Err(e) => Err(explain(&e, text)),
    }
}

/// What is wrong with the value, without clap's framing (which names a flag).
fn explain(e: &clap::Error, text: &str) -> String {
    match e.kind() {
        ErrorKind::ValueValidation => {
            let inner = std::error::Error::source(e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "invalid value".to_owned());
            // The value parsers of `ServerArgs` quote the value (or the part of a list) they
            // refuse; another parser's message gets the value in front.
            if inner.contains(text) || inner.contains('"') {
                inner
            } else {
                format!("{text:?}: {inner}")
            }
        }
        ErrorKind::InvalidValue => {
            let valid: Vec<String> = match e.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(v)) => v.clone(),
                _ => Vec::new(),
            };
            if valid.is_empty() {
                format!("{text:?} is not a valid value")
            } else {
                format!("{text:?} is not one of {}", valid.join(", "))
            }
        }
        _ => {
            let s = e.to_string();
            let first = s.lines().next().unwrap_or("").trim_start_matches("error: ");
            format!("{text:?}: {first}")
        }
    }
}

/// Reads the config file: every key must be a long option of the invoked command, every value
/// valid. Returns the values as new defaults.
fn read_file(
    file: &Path,
    source: &str,
    path: &[(Vec<String>, &Command, &ArgMatches)],
) -> Result<Vec<Default>, clap::Error> {
    let shown = file.display();
    let text = std::fs::read_to_string(file).map_err(|e| {
        raw(format!(
            "{source}: cannot read the config file {shown}: {e}"
        ))
    })?;
    let table = toml::de::DeTable::parse(&text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(&text, s.start));
        raw(format!("{shown}:{line}: {}", e.message().trim_end()))
    })?;
    let mut out = Vec::new();
    for (key, value) in table.get_ref().iter() {
        let line = line_of(&text, key.span().start);
        let name: &str = key.get_ref();
        let at = |why: String| raw(format!("{shown}:{line}: {why}"));
        if name == "config" {
            return Err(at("\"config\" cannot be set in the config file".to_owned()));
        }
        let found = path.iter().rev().find_map(|(names, c, _)| {
            c.get_arguments()
                .find(|a| is_option(a) && a.get_long() == Some(name))
                .map(|a| (names, a))
        });
        let Some((names, arg)) = found else {
            return Err(at(unknown_key(name, path)));
        };
        let many = arg.get_action().takes_values()
            && (matches!(arg.get_action(), ArgAction::Append)
                || arg.get_num_args().is_some_and(|r| r.max_values() > 1));
        let items: Vec<&toml::de::DeValue<'_>> = match value.get_ref() {
            toml::de::DeValue::Array(a) if many => a.iter().map(|v| v.get_ref()).collect(),
            toml::de::DeValue::Array(_) => {
                return Err(at(format!("{name}: takes one value, not a list")))
            }
            v => vec![v],
        };
        let mut values = Vec::new();
        for item in items {
            let text = scalar(item).ok_or_else(|| {
                at(format!(
                    "{name}: a value must be a string, a number or true/false"
                ))
            })?;
            let checked =
                check_value(arg, OsStr::new(&text)).map_err(|why| at(format!("{name}: {why}")))?;
            values.push(checked);
        }
        out.push(Default {
            path: names.clone(),
            id: arg.get_id().as_str().to_owned(),
            values,
        });
    }
    Ok(out)
}

fn scalar(v: &toml::de::DeValue<'_>) -> Option<String> {
    use toml::de::DeValue;
    match v {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Integer(i) => Some(i.to_string()),
        DeValue::Float(f) => Some(f.to_string()),
        DeValue::Boolean(b) => Some(b.to_string()),
        DeValue::Datetime(_) | DeValue::Array(_) | DeValue::Table(_) => None,
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// `unknown key "listn"`, with the nearest option when one is near.
fn unknown_key(name: &str, path: &[(Vec<String>, &Command, &ArgMatches)]) -> String {
    let dashed = name.replace('_', "-");
    let mut best: Option<(usize, &str)> = None;
    for (_, c, _) in path {
        for a in c.get_arguments().filter(|a| is_option(a)) {
            let long = a.get_long().expect("an option");
            let d = if long == dashed {
                0
            } else {
                distance(&dashed, long)
            };
            if d <= 2 && best.is_none_or(|(b, _)| d < b) {
                best = Some((d, long));
            }
        }
    }
    match best {
        Some((_, long)) => format!("unknown key {name:?} (did you mean {long:?}?)"),
        None => format!("unknown key {name:?}"),
    }
}

/// Levenshtein distance (short strings only).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ServerArgs;
    use std::io::Write;

    #[derive(clap::Parser, Debug)]
    #[command(name = "app")]
    struct Cli {
        /// An app option: also a config key.
        #[arg(long, default_value = "hi")]
        greeting: String,
        /// An app flag.
        #[arg(long)]
        shout: bool,
        #[command(flatten)]
        server: ServerArgs,
    }

    fn file(body: &str) -> tempfile_lite::TempFile {
        let f = tempfile_lite::TempFile::new("toml");
        f.handle().write_all(body.as_bytes()).unwrap();
        f
    }

    /// A temporary file without a crate: a unique name under the target's temp dir, removed
    /// on drop.
    mod tempfile_lite {
        use std::path::PathBuf;
        use std::sync::atomic::{AtomicU32, Ordering};

        pub struct TempFile(pub PathBuf);

        impl TempFile {
            pub fn new(ext: &str) -> Self {
                static N: AtomicU32 = AtomicU32::new(0);
                let n = N.fetch_add(1, Ordering::Relaxed);
                let p =
                    std::env::temp_dir().join(format!("ragi-cli-{}-{n}.{ext}", std::process::id()));
                TempFile(p)
            }
            pub fn handle(&self) -> std::fs::File {
                std::fs::File::create(&self.0).unwrap()
            }
            pub fn arg(&self) -> String {
                self.0.display().to_string()
            }
        }

        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    fn parse(args: &[&str]) -> Result<Cli, String> {
        let mut argv = vec!["app"];
        argv.extend_from_slice(args);
        try_parse_from::<Cli, _, _>(argv).map_err(|e| e.to_string())
    }

    #[test]
    fn the_file_supplies_values_and_flags_beat_it() {
        let f = file(
            "# comment\nmax-body-size = 1234\nlisten = [\"127.0.0.1:9001\", \"unix:/tmp/a.sock\"]\n\
             allow-half-close = true\ngreeting = \"hello\"\nshout = true\nidle-timeout = 2.5\n\
             unix-socket-mode = 0o600\n",
        );
        let cli = parse(&["--config", &f.arg()]).unwrap();
        assert_eq!(cli.server.max_body_size, 1234);
        assert_eq!(cli.server.listen.len(), 2);
        assert_eq!(cli.server.listen[1].to_string(), "unix:/tmp/a.sock");
        assert!(cli.server.allow_half_close);
        assert_eq!(cli.greeting, "hello");
        assert!(cli.shout);
        assert_eq!(cli.server.idle_timeout.as_millis(), 2500);
        assert_eq!(cli.server.unix_socket_mode, 0o600);

        let cli = parse(&[
            "--config",
            &f.arg(),
            "--max-body-size",
            "99",
            "--allow-half-close=false",
            "--listen",
            "127.0.0.1:1",
        ])
        .unwrap();
        assert_eq!(cli.server.max_body_size, 99);
        assert!(!cli.server.allow_half_close);
        assert_eq!(cli.server.listen.len(), 1);
        // Untouched by flags: still from the file.
        assert_eq!(cli.greeting, "hello");
    }

    #[test]
    fn file_errors_name_the_file_and_line() {
        let f = file("max-body-size = 1\n\nlistn = \"127.0.0.1:1\"\n");
        let e = parse(&["--config", &f.arg()]).unwrap_err();
        assert!(
            e.contains(&format!(
                "{}:3: unknown key \"listn\" (did you mean \"listen\"?)",
                f.arg()
            )),
            "{e}"
        );

        let f = file("\n\n\n\n\n\nmax-body-size = \"12x\"\n");
        let e = parse(&["--config", &f.arg()]).unwrap_err();
        assert!(
            e.contains(&format!(
                "{}:7: max-body-size: \"12x\" is not a number",
                f.arg()
            )),
            "{e}"
        );

        let f = file("max_body_size = 5\n");
        let e = parse(&["--config", &f.arg()]).unwrap_err();
        assert!(e.contains("did you mean \"max-body-size\""), "{e}");

        let f = file("log-format = \"xml\"\n");
        let e = parse(&["--config", &f.arg()]).unwrap_err();
        assert!(e.contains(":1: log-format: \"xml\" is not one of"), "{e}");

        let f = file("max-body-size = [1, 2]\n");
        let e = parse(&["--config", &f.arg()]).unwrap_err();
        assert!(e.contains(":1: max-body-size: takes one value"), "{e}");

        let f = file("a = 1\nb = = 2\n");
        let e = parse(&["--config", &f.arg()]).unwrap_err();
        assert!(e.contains(&format!("{}:2:", f.arg())), "{e}");

        let f = file("config = \"other.toml\"\n");
        let e = parse(&["--config", &f.arg()]).unwrap_err();
        assert!(e.contains(":1: \"config\" cannot be set"), "{e}");

        // Checked whole, even where a flag overrides the key.
        let f = file("max-body-size = \"12x\"\n");
        let e = parse(&["--config", &f.arg(), "--max-body-size", "5"]).unwrap_err();
        assert!(e.contains(":1: max-body-size:"), "{e}");

        let e = parse(&["--config", "/nonexistent/ragi.toml"]).unwrap_err();
        assert!(
            e.contains("--config: cannot read the config file /nonexistent/ragi.toml"),
            "{e}"
        );
    }

    #[test]
    fn command_line_errors_name_the_flag() {
        let e = parse(&["--max-body-size", "12x"]).unwrap_err();
        assert!(e.contains("--max-body-size"), "{e}");
        assert!(e.contains("\"12x\" is not a number"), "{e}");
        let e = parse(&["--workers", "4"]).unwrap_err();
        assert!(
            e.contains("--workers") && e.contains("not built yet"),
            "{e}"
        );
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("listn", "listen"), 1);
        assert_eq!(distance("abc", "abc"), 0);
        assert_eq!(distance("", "ab"), 2);
    }
}
