//! cargo-fuzz target `xml_cbor`: the property lives in [`sluice_fuzz::xml_cbor`],
//! shared with the deterministic loops of `tests/fuzz_props.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::xml_cbor::check(data));
