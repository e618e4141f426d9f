//! cargo-fuzz target `jwt_verify`: the property lives in [`sluice_fuzz::jwt_verify`],
//! shared with the deterministic loops of `tests/fuzz_props.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::jwt_verify::check(data));
