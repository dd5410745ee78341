//! Fuzz target `ws_decoder`: see `ragi_fuzz::ws_decoder` for the input layout and the checks, and
//! `README.md` for how to run it (libFuzzer on nightly, or the stable replay harness).
#![cfg_attr(fuzzing, no_main)]

ragi_fuzz::target!(ws_decoder);
