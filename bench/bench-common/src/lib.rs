//! Boilerplate shared by the benchmark servers in this workspace: the `--listen ADDR`
//! command line and the choice of tokio runtime. Not used by the load generators
//! (wsload, sseload), whose command lines have nothing in common with the servers'.

use std::net::SocketAddr;

use tokio::runtime::Runtime;

/// Parses the whole command line of a server whose only option is the listen address:
/// `PROG [--listen ADDR | --listen=ADDR]`, `-h`/`--help` (usage on stderr, exit 0).
/// Returns ADDR as given, or `default`. An unknown argument or a missing value prints
/// `PROG: MESSAGE` and the usage line on stderr and exits with status 2.
pub fn listen_arg_raw(prog: &str, default: &str) -> String {
    let mut listen = String::from(default);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--listen" {
            listen = args
                .next()
                .unwrap_or_else(|| usage(prog, "--listen needs a value"));
        } else if let Some(v) = arg.strip_prefix("--listen=") {
            listen = v.to_string();
        } else if arg == "-h" || arg == "--help" {
            eprintln!("usage: {prog} [--listen ADDR]");
            std::process::exit(0);
        } else {
            usage(prog, &format!("unknown argument {arg:?}"));
        }
    }
    listen
}

/// [`listen_arg_raw`], then the address parsed as a `SocketAddr` (a bad one is a usage
/// error, exit status 2).
pub fn listen_arg(prog: &str, default: &str) -> SocketAddr {
    let listen = listen_arg_raw(prog, default);
    listen
        .parse()
        .unwrap_or_else(|e| usage(prog, &format!("bad --listen address {listen:?}: {e}")))
}

fn usage(prog: &str, msg: &str) -> ! {
    eprintln!("{prog}: {msg}\nusage: {prog} [--listen ADDR]");
    std::process::exit(2);
}

/// A current-thread tokio runtime with the I/O and time drivers, whatever the number of
/// CPUs (the hyper baselines: one core is their best configuration when pinned).
pub fn current_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .expect("build tokio runtime")
}

/// The runtime `ragi` (ragi-cli's main) would choose: current-thread when the process may
/// run on one CPU only (pinned with taskset), else multi-thread; all drivers enabled.
#[cfg(feature = "multi-thread")]
pub fn runtime() -> Runtime {
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build().expect("build tokio runtime")
}
