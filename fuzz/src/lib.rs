//! The properties behind sluice's fuzz targets, one module per target.
//!
//! Each module exposes `check(data: &[u8])`, which panics exactly when the
//! property is broken. The cargo-fuzz targets in `fuzz_targets/` are one line
//! each around these functions, and `tests/fuzz_props.rs` in the main crate
//! includes this file with `#[path]` and drives the same functions with a
//! fixed-seed generator, so the properties run in every `cargo test` even
//! where cargo-fuzz is not installed. For that reason this file and its
//! modules refer to each other with `super::` paths, never `crate::`.
//!
//! Every target reads its choices (split points, modes, generated fields)
//! from the front of the fuzz input through [`Input`], so a crashing input
//! replays exactly.

pub mod http_head;
pub mod json_convert;
pub mod jwt_verify;
pub mod segment_recover;
pub mod xml_cbor;

/// Fuzz input read front to back as a source of choices. Once the bytes
/// run out every choice is zero, so any input, even an empty one, is a
/// complete description of a case.
pub struct Input<'a> {
    /// The bytes not yet used.
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    /// Starts reading `data` from its first byte.
    pub fn new(data: &'a [u8]) -> Self {
        Input { rest: data }
    }

    /// The next byte, or zero once the input is used up.
    pub fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&first, rest)) => {
                self.rest = rest;
                first
            }
            None => 0,
        }
    }

    /// The next two bytes as a little-endian number.
    pub fn u16(&mut self) -> u16 {
        u16::from(self.byte()) | (u16::from(self.byte()) << 8)
    }

    /// A choice among `count` options; `count` must not be zero.
    pub fn choose(&mut self, count: usize) -> usize {
        usize::from(self.byte()) % count
    }

    /// Up to `len` next bytes (fewer if the input ends first).
    pub fn take(&mut self, len: usize) -> &'a [u8] {
        let (taken, rest) = self.rest.split_at(len.min(self.rest.len()));
        self.rest = rest;
        taken
    }

    /// Everything not used yet.
    pub fn rest(self) -> &'a [u8] {
        self.rest
    }
}
