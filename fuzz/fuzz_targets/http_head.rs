//! cargo-fuzz target `http_head`: the property lives in [`sluice_fuzz::http_head`],
//! shared with the deterministic loops of `tests/fuzz_props.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::http_head::check(data));
