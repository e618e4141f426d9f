//! Property of the JSON converter (`convert::json::JsonConverter`, SPEC §1).
//!
//! - A body is accepted exactly when `serde_json` accepts it as one value
//!   (after one leading UTF-8 byte-order mark is skipped) and that value is
//!   an object; invalid UTF-8 is `not-utf8`, a non-object is `not-an-object`.
//! - An accepted body's line is the body with the whitespace outside strings
//!   removed (checked byte for byte against an independent minifier, which
//!   also pins key order, duplicate keys, number spelling and escapes),
//!   followed by exactly one `\n`, the only one in the line; it parses with
//!   `serde_json` to the same value; and recovery's read-back check
//!   (`segment::format::valid_prefix`) takes it as exactly one record, so an
//!   acknowledged record can never be dropped by recovery.
//! - A refused body appends nothing to the output buffer.
//! - `convert_padded` (the server's in-place path) gives the same result
//!   and output as `convert` and leaves the body and its padding as found.
//!
//! The converter is reused across runs, as a worker reuses it.

use std::cell::RefCell;

use sluice::control::snapshot::PayloadFormat;
use sluice::convert::json::PADDING;
use sluice::convert::{ConvertError, JsonConverter};
use sluice::segment::format;

/// The UTF-8 byte-order mark that SPEC §1 says is skipped.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Bytes already in the output buffer before a conversion; a conversion
/// must leave them alone.
const OUTPUT_PREFIX: &[u8] = b"earlier record\n";

thread_local! {
    /// One converter per thread, reused like a worker's.
    static CONVERTER: RefCell<JsonConverter> = RefCell::new(JsonConverter::new());
}

/// Runs the property on one fuzz input (the body).
pub fn check(data: &[u8]) {
    let mut out = OUTPUT_PREFIX.to_vec();
    let result = CONVERTER.with(|converter| converter.borrow_mut().convert(data, &mut out));

    // The in-place entry point the server uses must say and write the
    // same, whatever the padding holds, and leave body and padding alone.
    let mut padded = data.to_vec();
    padded.extend(
        data.iter()
            .rev()
            .copied()
            .chain(std::iter::repeat(b'"'))
            .take(PADDING),
    );
    let before = padded.clone();
    let mut padded_out = OUTPUT_PREFIX.to_vec();
    let padded_result = CONVERTER.with(|converter| {
        converter
            .borrow_mut()
            .convert_padded(&mut padded, data.len(), &mut padded_out)
    });
    assert_eq!(padded, before, "the input and its padding are left as found");
    assert_eq!(result, padded_result, "both entry points agree");
    assert_eq!(out, padded_out, "both entry points write the same");

    let text = data.strip_prefix(UTF8_BOM).unwrap_or(data);
    let expected = serde_json::from_slice::<serde_json::Value>(text);
    match (&expected, result) {
        (Ok(value), Ok(())) => {
            assert!(value.is_object(), "accepted a non-object: {value}");
            assert!(out.starts_with(OUTPUT_PREFIX), "earlier output is kept");
            check_line(text, value, &out[OUTPUT_PREFIX.len()..]);
        }
        (Ok(value), Err(error)) => {
            assert!(
                !value.is_object(),
                "refused an object serde_json accepts: {error:?}"
            );
            assert_eq!(error, ConvertError::NotAnObject);
            assert_eq!(out, OUTPUT_PREFIX, "a refusal appends nothing");
        }
        (Err(serde_error), Ok(())) => {
            panic!("accepted a body serde_json refuses ({serde_error})");
        }
        (Err(_), Err(error)) => {
            if std::str::from_utf8(text).is_err() {
                assert_eq!(error, ConvertError::NotUtf8);
            }
            assert_eq!(out, OUTPUT_PREFIX, "a refusal appends nothing");
        }
    }
}

/// Checks the stored line of an accepted body.
fn check_line(text: &[u8], value: &serde_json::Value, line: &[u8]) {
    let newlines = line.iter().filter(|&&byte| byte == b'\n').count();
    assert!(
        line.ends_with(b"\n") && newlines == 1,
        "exactly one newline, at the end"
    );
    let stored = &line[..line.len() - 1];
    assert_eq!(
        String::from_utf8_lossy(stored),
        String::from_utf8_lossy(&minify(text)),
        "the line is the body without insignificant whitespace"
    );
    let reparsed: serde_json::Value = serde_json::from_slice(stored).expect("the stored line is JSON");
    assert_eq!(&reparsed, value, "the line means what the body meant");
    assert!(format::is_framed(PayloadFormat::Json, line));
    assert_eq!(
        format::valid_prefix(PayloadFormat::Json, line),
        (line.len(), 1),
        "recovery reads the line back as one record"
    );
}

/// Removes the whitespace outside strings from valid JSON: an independent,
/// obviously correct statement of what the stored line must be.
fn minify(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for &byte in text {
        if in_string {
            out.push(byte);
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
        } else if !matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            in_string = byte == b'"';
            out.push(byte);
        }
    }
    out
}
