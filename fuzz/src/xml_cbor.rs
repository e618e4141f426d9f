//! Property of the XML converter (`convert::xml::XmlConverter`, SPEC §4).
//!
//! - It never panics, and its memory stays bounded: inputs are capped at
//!   [`XML_INPUT_BYTES_MAX`], and the fuzz script runs libFuzzer with an
//!   RSS limit, so a blow-up (say, quadratic buffering) fails the run.
//! - An accepted document becomes exactly one CBOR data item (ciborium
//!   decodes it and nothing is left over), a map with one text key; and
//!   recovery's read-back check (`segment::format::valid_prefix`) takes it
//!   as exactly one record.
//! - A reused converter answers exactly what a fresh one answers, so no
//!   state leaks from one document into the next.
//! - A refused document appends nothing to the output buffer.

use std::cell::RefCell;
use std::io::Cursor;

use sluice::control::snapshot::PayloadFormat;
use sluice::convert::XmlConverter;
use sluice::segment::format;

/// Larger inputs are skipped: the property is about structure, and 64 KiB
/// holds any structure the depth bound allows while keeping runs fast.
pub const XML_INPUT_BYTES_MAX: usize = 64 * 1024;

/// Bytes already in the output buffer; a conversion must leave them alone.
const OUTPUT_PREFIX: &[u8] = b"\xA1\x61a\xF6";

thread_local! {
    /// One converter per thread, reused like a worker's.
    static CONVERTER: RefCell<XmlConverter> = RefCell::new(XmlConverter::new());
}

/// Runs the property on one fuzz input (the document).
pub fn check(data: &[u8]) {
    if data.len() > XML_INPUT_BYTES_MAX {
        return;
    }
    let mut out = OUTPUT_PREFIX.to_vec();
    let reused = CONVERTER.with(|converter| converter.borrow_mut().convert(data, &mut out));
    let mut fresh_out = Vec::new();
    let fresh = XmlConverter::new().convert(data, &mut fresh_out);
    assert_eq!(reused, fresh, "a reused converter answers like a fresh one");
    assert!(out.starts_with(OUTPUT_PREFIX), "earlier output is kept");
    let item = &out[OUTPUT_PREFIX.len()..];
    if reused.is_err() {
        assert!(item.is_empty(), "a refusal appends nothing");
        return;
    }
    assert_eq!(
        item,
        fresh_out.as_slice(),
        "a reused converter writes like a fresh one"
    );
    check_item(item);
}

/// Checks that `item` is one CBOR map with a single text key.
fn check_item(item: &[u8]) {
    let mut cursor = Cursor::new(item);
    let value: ciborium::Value = ciborium::from_reader(&mut cursor).expect("the output is CBOR");
    assert_eq!(cursor.position() as usize, item.len(), "exactly one data item");
    let ciborium::Value::Map(entries) = value else {
        panic!("the item is a map: {value:?}");
    };
    assert!(
        matches!(entries.as_slice(), [(ciborium::Value::Text(_), _)]),
        "the map has one text key (the root element): {entries:?}"
    );
    assert!(format::is_framed(PayloadFormat::Xml, item));
    assert_eq!(
        format::valid_prefix(PayloadFormat::Xml, item),
        (item.len(), 1),
        "recovery reads the item back as one record"
    );
}
