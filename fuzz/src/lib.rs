//! The checks behind ragi's fuzz targets, shared by the libFuzzer build (`cargo fuzz run`)
//! and the plain replay/smoke build (`cargo run --bin TARGET`). See `README.md`.
//!
//! | target | module | what it feeds |
//! |---|---|---|
//! | `ws_decoder` | [`ws_decoder`] | client bytes into the WebSocket decoder; encoder round trips |
//! | `h1_head` | [`h1_head`] | client bytes into the HTTP/1.1 request-head parser |
//! | `h1_chunked` | [`h1_chunked`] | request bodies into the chunked and content-length decoders |
//! | `h2_frames` | [`h2_frames`] | client bytes into the HTTP/2 inbound frame check |
//! | `sse_encoder` | [`sse_encoder`] | events and comments through the SSE encoder into a client's parser |
//!
//! **Adding a target** takes four small steps: a module here with `run(&[u8])` (the checks,
//! panicking on a failure), `seeds()` and a `TARGET` constant; a line in [`TARGETS`]; a
//! three-line file `fuzz_targets/NAME.rs` (`ragi_fuzz::target!(NAME);`) and its `[[bin]]` in
//! `Cargo.toml`. The replay harness, the smoke run and the CI replay pick it up from
//! [`TARGETS`]. A target for a public API (the toolkit's parsers) depends on that crate
//! directly; one for a server-private core goes through `ragi_server::__fuzz`.

pub mod h1_chunked;
pub mod h1_head;
pub mod h2_frames;
pub mod harness;
pub mod sse_encoder;
pub mod ws_decoder;

/// One fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Its name: the binary, the corpus folder `corpus/NAME`.
    pub name: &'static str,
    /// Runs one input; panics on a failed check.
    pub run: fn(&[u8]),
    /// The built-in seeds (committed as `corpus/NAME/seed-*`).
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    ws_decoder::TARGET,
    h1_head::TARGET,
    h1_chunked::TARGET,
    h2_frames::TARGET,
    sse_encoder::TARGET,
];

#[cfg(test)]
mod tests {
    /// Every target: its committed corpus, its seeds and 3000 random inputs.
    #[test]
    fn every_target_replays_its_corpus_and_survives_random_inputs() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for target in super::TARGETS {
            let dir = root.join(target.name);
            assert!(dir.is_dir(), "no corpus for {}", target.name);
            let n = super::harness::replay(target, &dir);
            assert!(n >= (target.seeds)().len(), "{}: {n} files", target.name);
            super::harness::smoke(target, 3000, 1);
        }
    }
}
