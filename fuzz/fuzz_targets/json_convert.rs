//! cargo-fuzz target `json_convert`: the property lives in [`sluice_fuzz::json_convert`],
//! shared with the deterministic loops of `tests/fuzz_props.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::json_convert::check(data));
