//! Fuzz target `sse_encoder`: see `ragi_fuzz::sse_encoder` for the input layout and the checks, and
//! `README.md` for how to run it (libFuzzer on nightly, or the stable replay harness).
#![cfg_attr(fuzzing, no_main)]

ragi_fuzz::target!(sse_encoder);
