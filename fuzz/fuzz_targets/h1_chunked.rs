//! Fuzz target `h1_chunked`: see `ragi_fuzz::h1_chunked` for the input layout and the checks, and
//! `README.md` for how to run it (libFuzzer on nightly, or the stable replay harness).
#![cfg_attr(fuzzing, no_main)]

ragi_fuzz::target!(h1_chunked);
