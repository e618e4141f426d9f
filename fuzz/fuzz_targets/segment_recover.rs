//! cargo-fuzz target `segment_recover`: the property lives in [`sluice_fuzz::segment_recover`],
//! shared with the deterministic loops of `tests/fuzz_props.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::segment_recover::check(data));
