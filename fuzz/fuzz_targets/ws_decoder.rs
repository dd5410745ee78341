//! Fuzz target `ws_decoder`: arbitrary client bytes, split points and deflate settings into
//! the server's WebSocket decoder (see `ragi_fuzz` for the input layout and the checks).
//!
//! Under `cargo fuzz` (which sets `--cfg fuzzing`) this is a libFuzzer target. A plain build is
//! a replay and smoke harness:
//!
//! ```sh
//! cargo run --release --bin ws_decoder -- [--iterations N] [--seed S] [FILE|DIR ...]
//! cargo run --release --bin ws_decoder -- --write-seeds corpus/ws_decoder
//! ```
//!
//! It replays every file given (a corpus directory, a crash artifact), then the built-in
//! seeds, then N random inputs (default 20000): mutated seeds and some pure noise, from a
//! deterministic PRNG.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ragi_fuzz::ws_decoder(data));

#[cfg(not(fuzzing))]
fn main() {
    use std::path::{Path, PathBuf};

    let mut iterations = 20_000u64;
    let mut seed = 1u64;
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} takes a number"))
        };
        match arg.as_str() {
            "--iterations" => iterations = number("--iterations"),
            "--seed" => seed = number("--seed"),
            "--write-seeds" => {
                let dir = PathBuf::from(args.next().expect("--write-seeds takes a directory"));
                std::fs::create_dir_all(&dir).expect("create the directory");
                for (i, s) in ragi_fuzz::seeds().iter().enumerate() {
                    std::fs::write(dir.join(format!("seed-{i:03}")), s).expect("write a seed");
                }
                println!(
                    "wrote {} seeds to {}",
                    ragi_fuzz::seeds().len(),
                    dir.display()
                );
                return;
            }
            "-h" | "--help" => {
                println!(
                    "ws_decoder [--iterations N] [--seed S] [--write-seeds DIR] [FILE|DIR ...]"
                );
                return;
            }
            _ => paths.push(PathBuf::from(arg)),
        }
    }

    fn replay(path: &Path, count: &mut usize) {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .expect("read the directory")
                .map(|e| e.expect("a directory entry").path())
                .collect();
            entries.sort();
            for entry in entries {
                replay(&entry, count);
            }
        } else {
            let data = std::fs::read(path).expect("read the file");
            ragi_fuzz::ws_decoder(&data);
            *count += 1;
        }
    }
    let mut replayed = 0;
    for path in &paths {
        replay(path, &mut replayed);
    }
    let started = std::time::Instant::now();
    ragi_fuzz::smoke(iterations, seed);
    println!(
        "ws_decoder: {replayed} files replayed, {} seeds and {iterations} random inputs in {:.1?}: no failure",
        ragi_fuzz::seeds().len(),
        started.elapsed()
    );
}
