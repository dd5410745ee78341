//! What every target shares: the PRNG, the mutator, the smoke run, and the plain (stable)
//! build's `main`, which replays files and then runs seeds and random inputs.

use std::path::{Path, PathBuf};

use crate::Target;

/// A small deterministic PRNG (xorshift64*), for split points and the smoke harness.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A random variation of `seed`: flipped bytes, inserted or removed runs, a spliced tail.
pub fn mutate(seed: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.below(256) as u8;
            }
            2 => {
                let i = rng.below(out.len() + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.below(256) as u8).collect();
                out.splice(i..i, bytes);
            }
            3 if !out.is_empty() => {
                let i = rng.below(out.len());
                let n = 1 + rng.below((out.len() - i).min(16));
                out.drain(i..i + n);
            }
            4 => {
                let i = rng.below(out.len() + 1);
                let j = rng.below(other.len() + 1);
                out.truncate(i);
                out.extend_from_slice(&other[j..]);
            }
            _ => {
                // Change the first byte (most targets read their setup there).
                if let Some(b) = out.first_mut() {
                    *b = rng.below(256) as u8;
                }
            }
        }
    }
    out
}

/// Runs the target's seeds, then `iterations` random inputs (mostly mutated seeds, some pure
/// noise) from a deterministic PRNG.
pub fn smoke(target: &Target, iterations: u64, seed: u64) {
    let seeds = (target.seeds)();
    for s in &seeds {
        (target.run)(s);
    }
    let mut rng = Rng::new(seed);
    let mut pool = seeds.clone();
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let fixed = pool.len();
    for _ in 0..iterations {
        let input = if rng.below(10) == 0 {
            let n = rng.below(512);
            (0..n).map(|_| rng.below(256) as u8).collect()
        } else {
            let a = &pool[rng.below(pool.len())];
            let b = &pool[rng.below(pool.len())];
            mutate(a, b, &mut rng)
        };
        (target.run)(&input);
        // Keep some mutants as material for later ones (a crude corpus).
        if rng.below(8) == 0 && input.len() < 4096 {
            if pool.len() < 4096 {
                pool.push(input);
            } else {
                let i = fixed + rng.below(pool.len() - fixed);
                pool[i] = input;
            }
        }
    }
}

/// Feeds every file under `path` to the target; returns how many.
pub fn replay(target: &Target, path: &Path) -> usize {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            .map(|e| e.expect("a directory entry").path())
            .collect();
        entries.sort();
        entries.iter().map(|e| replay(target, e)).sum()
    } else {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        (target.run)(&data);
        1
    }
}

/// The plain build's `main`:
///
/// ```text
/// TARGET [--iterations N] [--seed S] [--write-seeds DIR] [FILE|DIR ...]
/// ```
///
/// Replays every file given (a corpus directory, a crash artifact), then the built-in seeds,
/// then N random inputs (default 20 000).
pub fn main(target: &Target) {
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
                let seeds = (target.seeds)();
                for (i, s) in seeds.iter().enumerate() {
                    std::fs::write(dir.join(format!("seed-{i:03}")), s).expect("write a seed");
                }
                println!("wrote {} seeds to {}", seeds.len(), dir.display());
                return;
            }
            "-h" | "--help" => {
                println!(
                    "{} [--iterations N] [--seed S] [--write-seeds DIR] [FILE|DIR ...]",
                    target.name
                );
                return;
            }
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    let replayed: usize = paths.iter().map(|p| replay(target, p)).sum();
    let started = std::time::Instant::now();
    smoke(target, iterations, seed);
    println!(
        "{}: {replayed} files replayed, {} seeds and {iterations} random inputs in {:.1?}: no failure",
        target.name,
        (target.seeds)().len(),
        started.elapsed()
    );
}

/// The body of a file in `fuzz_targets/`: a libFuzzer target under `cargo fuzz` (which sets
/// `--cfg fuzzing`), the replay/smoke `main` otherwise.
#[macro_export]
macro_rules! target {
    ($name:ident) => {
        #[cfg(fuzzing)]
        libfuzzer_sys::fuzz_target!(|data: &[u8]| ($crate::$name::TARGET.run)(data));

        #[cfg(not(fuzzing))]
        fn main() {
            $crate::harness::main(&$crate::$name::TARGET);
        }
    };
}
