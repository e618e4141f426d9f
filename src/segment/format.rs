//! What one stored record is, checked before append and again on read-back.
//!
//! A JSON stream's record is one compact JSON object followed by `\n`; an
//! XML stream's record is one CBOR data item, a map with a single key (the
//! root element's name). Recovery uses [`valid_prefix`] to find where the
//! complete records of an interrupted segment end.

use std::io::Cursor;

use crate::control::snapshot::PayloadFormat;

/// A cheap framing check for the append path: the record's first and last
/// bytes are those of its format, and a JSON line has no inner newline.
pub fn is_framed(format: PayloadFormat, record: &[u8]) -> bool {
    match format {
        PayloadFormat::Json => {
            record.len() >= 3
                && record[0] == b'{'
                && record.ends_with(b"}\n")
                && !record[..record.len() - 1].contains(&b'\n')
        }
        // Major type 5 (map) with one entry: 0xA1.
        PayloadFormat::Xml => record.first() == Some(&0xA1),
    }
}

/// The length in bytes and the count of the complete, valid records at the
/// start of `bytes`. Scanning stops at the first byte that does not begin a
/// valid record: the zeros of unwritten preallocated space, or a record cut
/// short by a crash.
pub fn valid_prefix(format: PayloadFormat, bytes: &[u8]) -> (usize, u64) {
    let mut offset = 0;
    let mut records = 0;
    while offset < bytes.len() {
        let record_len = match format {
            PayloadFormat::Json => json_record_len(&bytes[offset..]),
            PayloadFormat::Xml => cbor_record_len(&bytes[offset..]),
        };
        let Some(record_len) = record_len else { break };
        offset += record_len;
        records += 1;
    }
    (offset, records)
}

/// The length of the JSON line at the start of `bytes`, newline included,
/// if it is one complete JSON object.
fn json_record_len(bytes: &[u8]) -> Option<usize> {
    let newline = bytes.iter().position(|&b| b == b'\n')?;
    let line = &bytes[..newline + 1];
    if !is_framed(PayloadFormat::Json, line) {
        return None;
    }
    // simd-json parses in place, so check a copy.
    let mut copy = line[..newline].to_vec();
    match simd_json::to_borrowed_value(&mut copy) {
        Ok(simd_json::BorrowedValue::Object(_)) => Some(newline + 1),
        _ => None,
    }
}

/// The length of the CBOR item at the start of `bytes`, if it is a complete
/// map with a single text key.
fn cbor_record_len(bytes: &[u8]) -> Option<usize> {
    if !is_framed(PayloadFormat::Xml, bytes) {
        return None;
    }
    let mut cursor = Cursor::new(bytes);
    let value: ciborium::Value = ciborium::from_reader(&mut cursor).ok()?;
    let ciborium::Value::Map(entries) = &value else {
        return None;
    };
    match entries.as_slice() {
        [(ciborium::Value::Text(_), _)] if is_converter_output(&value) => Some(cursor.position() as usize),
        _ => None,
    }
}

/// True when `value` uses only what the XML converter writes: maps with
/// text keys, arrays, text without NUL (XML cannot carry it), and null.
/// Recovery relies on this to tell a record from a torn tail: zero bytes and
/// other leftovers decode as integers, bytes or NUL-laden text.
fn is_converter_output(value: &ciborium::Value) -> bool {
    use ciborium::Value;
    let text_ok = |text: &str| !text.contains('\0');
    match value {
        Value::Null => true,
        Value::Text(text) => text_ok(text),
        Value::Array(items) => items.iter().all(is_converter_output),
        Value::Map(entries) => entries.iter().all(|(key, value)| {
            matches!(key, Value::Text(key) if text_ok(key)) && is_converter_output(value)
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cbor(value: &ciborium::Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).expect("encode");
        out
    }

    #[test]
    fn json_prefix_stops_at_torn_or_unwritten_bytes() {
        let cases: &[(&[u8], usize, u64)] = &[
            (b"", 0, 0),
            (b"{\"a\":1}\n", 8, 1),
            (b"{\"a\":1}\n{\"b\":2}\n", 16, 2),
            (b"{\"a\":1}\n{\"b\":", 8, 1),
            (b"{\"a\":1}\n\0\0\0\0", 8, 1),
            (b"{\"a\":1}\n{\"b\"\0\0}\n", 8, 1),
            (b"{\"a\":1}\n[1]\n{\"c\":3}\n", 8, 1),
            (b"{\"a\":1\n", 0, 0),
        ];
        for &(bytes, len, records) in cases {
            assert_eq!(
                valid_prefix(PayloadFormat::Json, bytes),
                (len, records),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn cbor_items_the_converter_never_writes_end_the_prefix() {
        let good = cbor(&ciborium::Value::Map(vec![(
            ciborium::Value::Text("a".into()),
            ciborium::Value::Array(vec![ciborium::Value::Null, ciborium::Value::Text("x".into())]),
        )]));
        for odd in [
            ciborium::Value::Integer(0.into()),
            ciborium::Value::Bytes(vec![0]),
            ciborium::Value::Text("a\0".into()),
            ciborium::Value::Bool(true),
        ] {
            let mut bytes = good.clone();
            bytes.extend(cbor(&ciborium::Value::Map(vec![(
                ciborium::Value::Text("a".into()),
                odd.clone(),
            )])));
            assert_eq!(
                valid_prefix(PayloadFormat::Xml, &bytes),
                (good.len(), 1),
                "{odd:?}"
            );
        }
    }

    #[test]
    fn cbor_prefix_counts_whole_items_only() {
        let item = cbor(&ciborium::Value::Map(vec![(
            ciborium::Value::Text("records".into()),
            ciborium::Value::Text("x".into()),
        )]));
        let mut two = item.clone();
        two.extend_from_slice(&item);
        assert_eq!(valid_prefix(PayloadFormat::Xml, &two), (two.len(), 2));
        let torn = &two[..two.len() - 1];
        assert_eq!(valid_prefix(PayloadFormat::Xml, torn), (item.len(), 1));
        let mut zeros = item.clone();
        zeros.extend_from_slice(&[0; 16]);
        assert_eq!(valid_prefix(PayloadFormat::Xml, &zeros), (item.len(), 1));
        let two_keys = cbor(&ciborium::Value::Map(vec![
            (ciborium::Value::Text("a".into()), ciborium::Value::Null),
            (ciborium::Value::Text("b".into()), ciborium::Value::Null),
        ]));
        assert_eq!(valid_prefix(PayloadFormat::Xml, &two_keys), (0, 0));
    }
}
