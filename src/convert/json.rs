//! JSON body → one NDJSON line (SPEC §1).
//!
//! This module owns the JSON acceptance rule and the stored form. It promises:
//! a body is accepted exactly when `serde_json::from_slice::<Value>` accepts
//! it (after skipping one leading UTF-8 byte-order mark) and its value is an
//! object; the stored line is the body with insignificant whitespace removed
//! and nothing else changed (keys, key order, duplicate keys, numbers and
//! string escapes stay byte for byte as sent) followed by one `\n`, and it
//! holds no other `\n`.
//!
//! simd-json (the design card's validator) decides acceptance: its SIMD
//! first stage checks UTF-8 and finds every token, its second stage checks
//! the grammar, escapes and numbers. With the nesting bound set to
//! `serde_json`'s, version 0.19 accepts exactly what `serde_json` accepts
//! (numbers out of `f64` range and unpaired surrogate escapes included),
//! which the fuzz target checks against `serde_json` itself. simd-json
//! cannot produce the line (it parses numbers into binary, so `1.50` would
//! come back as `1.5`, and it unescapes strings), so the line is copied
//! from the body, driven by the token positions (structural indexes) that
//! simd-json's first stage already found: every token starts at an index
//! and runs to the next one, less any whitespace before it. A body without
//! insignificant whitespace is copied in one piece.
//!
//! simd-json unescapes strings in place, so a body that holds a backslash
//! is validated on a copy and the line is taken from the untouched
//! original; other bodies are validated where they lie
//! ([`JsonConverter::convert_padded`]), with no copy at all.
//!
//! A refused body is refused by simd-json; the scalar scanner below then
//! names the reason (`not-utf8`, `trailing-data`, `too-deep`, ...). It is a
//! complete hand-written validator and minifier, kept for that and as the
//! reference the tests compare the fast path with.

use memchr::memchr;
use simd_json::{Node, Tape};

use super::ConvertError;

/// The deepest nesting of arrays and objects accepted. `serde_json` refuses
/// the 128th nested container (its recursion budget is 128 and it fails when
/// the budget reaches zero), so 127 levels is what it accepts; we follow it.
/// The scanner's container stack is a `u128` bitset, so this must stay
/// below 128.
pub const JSON_DEPTH_MAX: usize = 127;

const _: () = assert!(JSON_DEPTH_MAX < 128);

/// Spare bytes [`JsonConverter::convert_padded`] needs after a body:
/// simd-json reads in SIMD-register steps and may look past the end. Their
/// content does not matter and is left as found.
pub const PADDING: usize = simd_json::INPUT_PADDING;

/// The UTF-8 byte-order mark, skipped once at the start of a body (SPEC §1);
/// `serde_json` itself would refuse it.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The longest run of digits (with no exponent) that can never overflow an
/// `f64`: `f64::MAX` has 309 integer digits, so 308 digits are always finite
/// and such numbers skip the float parse that checks range.
const NUMBER_DIGITS_ALWAYS_FINITE: usize = 308;

/// Converts JSON bodies into NDJSON lines. One per worker: it keeps
/// simd-json's buffers between calls so steady-state conversion does not
/// allocate.
pub struct JsonConverter {
    /// simd-json's scratch space (structural indexes, string buffer, the
    /// container stack), sized for the default body limit and grown on
    /// demand.
    simd: simd_json::Buffers,
    /// The tape's allocation, kept empty between calls.
    tape: Option<Tape<'static>>,
    /// A padded copy of the body for simd-json to parse when the body
    /// itself cannot be parsed in place.
    copy: Vec<u8>,
}

impl Default for JsonConverter {
    fn default() -> Self {
        Self::new()
    }
}

/// Why simd-json refused a body.
enum Refusal {
    /// Valid JSON whose value is not an object.
    NotAnObject,
    /// Not valid JSON (or nested too deep); the scanner says exactly why.
    Invalid,
}

impl JsonConverter {
    /// A converter ready for use.
    pub fn new() -> Self {
        JsonConverter {
            simd: simd_json::Buffers::with_max_depth(crate::limits::BODY_BYTES_MAX_DEFAULT, JSON_DEPTH_MAX),
            tape: Some(Tape::null()),
            copy: Vec::new(),
        }
    }

    /// Validates `body` and appends its NDJSON line (ending in `\n`) to `out`,
    /// or appends nothing and says why. Once `out` and the converter have
    /// grown to the largest body seen, this does not allocate.
    pub fn convert(&mut self, body: &[u8], out: &mut Vec<u8>) -> Result<(), ConvertError> {
        let text = body.strip_prefix(UTF8_BOM).unwrap_or(body);
        let mut copy = std::mem::take(&mut self.copy);
        copy.clear();
        copy.extend_from_slice(text);
        copy.resize(text.len() + PADDING, b' ');
        let verdict = self.validate(&mut copy, text.len());
        self.copy = copy;
        self.finish(verdict, body, out)
    }

    /// [`JsonConverter::convert`] for a body that has [`PADDING`] spare
    /// bytes after it: `input[..len]` is the body, `input[len..]` at least
    /// `PADDING` bytes of anything. A body without escapes is validated
    /// where it lies; `input` is left as it was either way.
    pub fn convert_padded(
        &mut self,
        input: &mut [u8],
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), ConvertError> {
        assert!(input.len() >= len + PADDING, "the caller provides the padding");
        let start = if input[..len].starts_with(UTF8_BOM) {
            UTF8_BOM.len()
        } else {
            0
        };
        if memchr(b'\\', &input[start..len]).is_some() {
            // simd-json would unescape the strings into the body itself.
            return self.convert(&input[..len], out);
        }
        let verdict = self.validate(&mut input[start..], len - start);
        self.finish(verdict, &input[..len], out)
    }

    /// simd-json's verdict on `padded[..len]` (BOM already skipped), which
    /// leaves the structural indexes of an accepted body in `self.simd`.
    fn validate(&mut self, padded: &mut [u8], len: usize) -> Result<(), Refusal> {
        let mut tape = self.tape.take().unwrap_or_else(Tape::null).reset();
        let parsed = simd_json::fill_tape_padded(padded, len, &mut self.simd, &mut tape);
        let is_object = matches!(tape.0.first(), Some(Node::Object { .. }));
        self.tape = Some(tape.reset());
        match parsed {
            Err(_) => Err(Refusal::Invalid),
            Ok(()) if !is_object => Err(Refusal::NotAnObject),
            Ok(()) => Ok(()),
        }
    }

    /// Appends the line of an accepted `body` (as sent, BOM and all), or
    /// names the reason it was refused.
    fn finish(
        &self,
        verdict: Result<(), Refusal>,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ConvertError> {
        match verdict {
            Ok(()) => {
                let text = body.strip_prefix(UTF8_BOM).unwrap_or(body);
                copy_tokens(text, self.simd.structural_indexes(), out);
                Ok(())
            }
            Err(Refusal::NotAnObject) => Err(ConvertError::NotAnObject),
            Err(Refusal::Invalid) => Err(refusal_reason(body)),
        }
    }
}

/// JSON's four whitespace bytes (RFC 8259 §2).
fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// Appends `text` without its insignificant whitespace, and a `\n`.
/// `indexes` are simd-json's structural indexes for `text`: the position
/// of every token (punctuation, the opening quote of a string, the first
/// byte of a number or literal). Whitespace outside strings lies only
/// between a token's end and the next index, and a token never ends in
/// whitespace (a string ends in its quote), so the bytes from one index to
/// the next, trailing whitespace trimmed, are exactly one token. Runs of
/// tokens with nothing between them are copied at once.
fn copy_tokens(text: &[u8], indexes: &[u32], out: &mut Vec<u8>) {
    fn trim_end(text: &[u8], mut end: usize) -> usize {
        while end > 0 && is_whitespace(text[end - 1]) {
            end -= 1;
        }
        end
    }
    out.reserve(text.len() + 1);
    let mut run = indexes.first().map_or(0, |&index| index as usize);
    for &index in indexes.iter().skip(1) {
        let index = index as usize;
        if is_whitespace(text[index - 1]) {
            out.extend_from_slice(&text[run..trim_end(text, index - 1)]);
            run = index;
        }
    }
    out.extend_from_slice(&text[run..trim_end(text, text.len())]);
    out.push(b'\n');
}

/// Why simd-json refused `body`, in the scanner's words. Should the two
/// ever disagree, the body stays refused, as invalid JSON.
fn refusal_reason(body: &[u8]) -> ConvertError {
    match reference_convert(body, &mut Vec::new()) {
        Err(error) => error,
        Ok(()) => ConvertError::InvalidJson,
    }
}

/// One JSON container being parsed; `OBJECT` when its bit in the stack is 1.
const OBJECT: u128 = 1;

/// The scalar scanner's conversion: validates `body` (a leading BOM
/// skipped) and appends its line to `out`, or says why not (leaving `out`
/// with a partial line the caller discards). The converter uses it to name
/// the reason for a refusal; tests compare it with the fast path.
pub fn reference_convert(body: &[u8], out: &mut Vec<u8>) -> Result<(), ConvertError> {
    let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
    // Validating UTF-8 up front lets the scanner below treat every byte at
    // or above 0x80 inside a string as part of a valid character.
    // `serde_json` also refuses invalid UTF-8, inside strings as invalid
    // unicode and outside them as a syntax error.
    std::str::from_utf8(body).map_err(|_| ConvertError::NotUtf8)?;
    out.reserve(body.len() + 1);

    let mut scanner = Scanner { src: body, pos: 0 };
    scanner.skip_whitespace();
    let is_object = scanner.peek() == Some(b'{');
    scanner.value(out)?;
    scanner.skip_whitespace();
    if scanner.pos != body.len() {
        return Err(ConvertError::TrailingData);
    }
    if !is_object {
        return Err(ConvertError::NotAnObject);
    }
    out.push(b'\n');
    Ok(())
}

/// A cursor over the body. Every method either advances past what it
/// accepted (copying the significant bytes to `out`) or returns an error.
struct Scanner<'a> {
    /// The body, BOM already skipped and known to be valid UTF-8.
    src: &'a [u8],
    /// The next byte to look at.
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    /// The next byte, consumed; a missing byte is a syntax error.
    fn next(&mut self) -> Result<u8, ConvertError> {
        let byte = self.peek().ok_or(ConvertError::InvalidJson)?;
        self.pos += 1;
        Ok(byte)
    }

    /// Skips JSON's four whitespace bytes (RFC 8259 §2) and nothing else.
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Skips whitespace, then requires `byte` and copies it.
    fn expect(&mut self, byte: u8, out: &mut Vec<u8>) -> Result<(), ConvertError> {
        self.skip_whitespace();
        if self.next()? != byte {
            return Err(ConvertError::InvalidJson);
        }
        out.push(byte);
        Ok(())
    }

    /// Parses one complete JSON value of any type. Nesting is tracked in a
    /// bit-stack (1 = object, 0 = array) instead of recursion, so hostile
    /// nesting costs no stack.
    fn value(&mut self, out: &mut Vec<u8>) -> Result<(), ConvertError> {
        let mut stack: u128 = 0;
        let mut depth: usize = 0;
        loop {
            // Expecting a value.
            self.skip_whitespace();
            match self.next()? {
                open @ (b'{' | b'[') => {
                    if depth == JSON_DEPTH_MAX {
                        return Err(ConvertError::TooDeep);
                    }
                    out.push(open);
                    stack = (stack << 1) | u128::from(open == b'{');
                    depth += 1;
                    self.skip_whitespace();
                    let close = if open == b'{' { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        out.push(close);
                        stack >>= 1;
                        depth -= 1;
                    } else {
                        if open == b'{' {
                            self.key(out)?;
                        }
                        continue;
                    }
                }
                b'"' => self.string(out)?,
                b'-' | b'0'..=b'9' => {
                    self.pos -= 1;
                    self.number(out)?;
                }
                b't' => self.literal(b"true", out)?,
                b'f' => self.literal(b"false", out)?,
                b'n' => self.literal(b"null", out)?,
                _ => return Err(ConvertError::InvalidJson),
            }
            // After a value: close containers or move to the next element.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                self.skip_whitespace();
                let in_object = stack & 1 == OBJECT;
                match (self.next()?, in_object) {
                    (b',', _) => {
                        out.push(b',');
                        if in_object {
                            self.key(out)?;
                        }
                        break;
                    }
                    (b'}', true) | (b']', false) => {
                        out.push(self.src[self.pos - 1]);
                        stack >>= 1;
                        depth -= 1;
                    }
                    _ => return Err(ConvertError::InvalidJson),
                }
            }
        }
    }

    /// An object key and its colon.
    fn key(&mut self, out: &mut Vec<u8>) -> Result<(), ConvertError> {
        self.skip_whitespace();
        if self.next()? != b'"' {
            return Err(ConvertError::InvalidJson);
        }
        self.string(out)?;
        self.expect(b':', out)
    }

    /// A string whose opening quote was just consumed; copied verbatim with
    /// its quotes. Enforces what `serde_json` enforces: no raw control bytes,
    /// only the RFC's escapes, and `\u` surrogates only as a high surrogate
    /// immediately followed by an escaped low one.
    fn string(&mut self, out: &mut Vec<u8>) -> Result<(), ConvertError> {
        let start = self.pos - 1;
        loop {
            // Plain bytes are the common case: skip eight at a time while no
            // byte of the word is a quote, a backslash or a control
            // character, then finish byte by byte.
            self.pos = skip_plain_words(self.src, self.pos);
            while let Some(&byte) = self.src.get(self.pos) {
                if byte == b'"' || byte == b'\\' || byte < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            match self.next()? {
                b'"' => break,
                b'\\' => self.escape()?,
                _ => return Err(ConvertError::InvalidJson),
            }
        }
        out.extend_from_slice(&self.src[start..self.pos]);
        Ok(())
    }

    /// One escape sequence after its backslash.
    fn escape(&mut self) -> Result<(), ConvertError> {
        match self.next()? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(()),
            b'u' => {
                let unit = self.hex4()?;
                match unit {
                    0xDC00..=0xDFFF => Err(ConvertError::InvalidJson),
                    0xD800..=0xDBFF => {
                        if self.next()? != b'\\' || self.next()? != b'u' {
                            return Err(ConvertError::InvalidJson);
                        }
                        match self.hex4()? {
                            0xDC00..=0xDFFF => Ok(()),
                            _ => Err(ConvertError::InvalidJson),
                        }
                    }
                    _ => Ok(()),
                }
            }
            _ => Err(ConvertError::InvalidJson),
        }
    }

    /// Four hex digits of a `\u` escape.
    fn hex4(&mut self) -> Result<u16, ConvertError> {
        let mut unit: u16 = 0;
        for _ in 0..4 {
            let digit = match self.next()? {
                byte @ b'0'..=b'9' => byte - b'0',
                byte @ b'a'..=b'f' => byte - b'a' + 10,
                byte @ b'A'..=b'F' => byte - b'A' + 10,
                _ => return Err(ConvertError::InvalidJson),
            };
            unit = (unit << 4) | u16::from(digit);
        }
        Ok(unit)
    }

    /// A number, copied as written. Grammar per RFC 8259 §6; a number whose
    /// value overflows `f64` is refused, as `serde_json` does for `Value`.
    fn number(&mut self, out: &mut Vec<u8>) -> Result<(), ConvertError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return Err(ConvertError::InvalidJson),
        }
        let integer_end = self.pos;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits_one_or_more()?;
        }
        let mut has_exponent = false;
        if let Some(b'e' | b'E') = self.peek() {
            has_exponent = true;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.digits_one_or_more()?;
        }
        let text = &self.src[start..self.pos];
        if has_exponent || integer_end - start > NUMBER_DIGITS_ALWAYS_FINITE {
            let text = std::str::from_utf8(text).expect("invariant: number bytes are ASCII");
            let value: f64 = text.parse().map_err(|_| ConvertError::InvalidJson)?;
            if !value.is_finite() {
                return Err(ConvertError::NumberOutOfRange);
            }
        }
        out.extend_from_slice(text);
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn digits_one_or_more(&mut self) -> Result<(), ConvertError> {
        let start = self.pos;
        self.digits();
        if self.pos == start {
            return Err(ConvertError::InvalidJson);
        }
        Ok(())
    }

    /// `true`, `false` or `null`, whose first byte was just consumed.
    fn literal(&mut self, word: &'static [u8], out: &mut Vec<u8>) -> Result<(), ConvertError> {
        let start = self.pos - 1;
        let end = start + word.len();
        if self.src.get(start..end) != Some(word) {
            return Err(ConvertError::InvalidJson);
        }
        self.pos = end;
        out.extend_from_slice(word);
        Ok(())
    }
}

/// The first position at or after `pos` whose 8-byte word holds a byte
/// that ends a run of plain string bytes (`"`, `\\` or below 0x20), or the
/// start of the last partial word. Classic SWAR: a byte of `x` is zero iff
/// the high bit of `(x - 0x01…) & !x & 0x80…` is set for it, and a byte is
/// below 0x20 iff the same test on `x - 0x20…` fires.
fn skip_plain_words(src: &[u8], mut pos: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = src.get(pos..pos + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("an 8-byte slice"));
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let special = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word);
        if special & HIGHS != 0 {
            break;
        }
        pos += 8;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Converts `body` through both entry points and checks that they
    /// agree with each other and, on success, with the scalar reference;
    /// that padding and body are left as found; and that an error appends
    /// nothing.
    fn convert(body: &[u8]) -> Result<Vec<u8>, ConvertError> {
        let mut converter = JsonConverter::new();
        let mut out = b"prefix".to_vec();
        let result = converter.convert(body, &mut out);
        let mut padded = body.to_vec();
        padded.extend((0..PADDING + 3).map(|i| b"x\\\" \n{"[i % 5]));
        let before = padded.clone();
        let mut padded_out = b"prefix".to_vec();
        let padded_result = converter.convert_padded(&mut padded, body.len(), &mut padded_out);
        assert_eq!(padded, before, "the input and its padding are left as found");
        assert_eq!(result, padded_result);
        assert_eq!(out, padded_out);
        match result {
            Ok(()) => {
                assert!(out.starts_with(b"prefix"));
                let mut reference = Vec::new();
                reference_convert(body, &mut reference).expect("the reference accepts it too");
                assert_eq!(
                    out[6..],
                    reference,
                    "the fast path copies what the reference copies"
                );
                Ok(out[6..].to_vec())
            }
            Err(error) => {
                assert_eq!(out, b"prefix", "an error must append nothing");
                Err(error)
            }
        }
    }

    fn serde_accepts(body: &[u8]) -> bool {
        serde_json::from_slice::<serde_json::Value>(body).is_ok()
    }

    #[test]
    fn good_bodies_become_exactly_these_lines() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"{}", b"{}\n"),
            (b" \t\r\n{ } \n", b"{}\n"),
            (b"\xEF\xBB\xBF{\"a\":1}", b"{\"a\":1}\n"),
            (b"{\"a\" : 1.50 , \"b\":[ 1 , 2 ]}", b"{\"a\":1.50,\"b\":[1,2]}\n"),
            (b"{\"a\":1,\"a\":2}", b"{\"a\":1,\"a\":2}\n"),
            (b"{\"z\":1,\"a\":2}", b"{\"z\":1,\"a\":2}\n"),
            (
                b"{\"n\":123456789012345678901234567890}",
                b"{\"n\":123456789012345678901234567890}\n",
            ),
            (
                b"{\"n\":-0, \"m\":-0.0e-0, \"k\":1E+2}",
                b"{\"n\":-0,\"m\":-0.0e-0,\"k\":1E+2}\n",
            ),
            (
                b"{\"s\":\"a b\\n\\\"c\\u00e9\\/\"}",
                b"{\"s\":\"a b\\n\\\"c\\u00e9\\/\"}\n",
            ),
            (b"{\"s\":\"\\ud83d\\ude00\"}", b"{\"s\":\"\\ud83d\\ude00\"}\n"),
            (
                b"{\"\xC3\xA9\":\"\xE2\x82\xAC\"}",
                b"{\"\xC3\xA9\":\"\xE2\x82\xAC\"}\n",
            ),
            (
                b"{\"t\":true,\"f\":false,\"n\":null}",
                b"{\"t\":true,\"f\":false,\"n\":null}\n",
            ),
            (
                b"{\"a\":{\"b\":{\"c\":[[],{}]}}}",
                b"{\"a\":{\"b\":{\"c\":[[],{}]}}}\n",
            ),
            (b"{\"small\":1e-400}", b"{\"small\":1e-400}\n"),
        ];
        for &(body, line) in cases {
            let got = convert(body);
            assert_eq!(got.as_deref(), Ok(line), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn bad_bodies_fail_with_these_errors() {
        use ConvertError::*;
        let cases: &[(&[u8], ConvertError)] = &[
            (b"", InvalidJson),
            (b"  \n", InvalidJson),
            (b"\xEF\xBB\xBF", InvalidJson),
            (b"\xEF\xBB\xBF\xEF\xBB\xBF{}", InvalidJson),
            (b"[1]", NotAnObject),
            (b"\"s\"", NotAnObject),
            (b"1", NotAnObject),
            (b"null", NotAnObject),
            (b"{}{}", TrailingData),
            (b"{\"a\":1}\n{\"a\":2}\n", TrailingData),
            (b"{} x", TrailingData),
            (b"{\"a\":1,}", InvalidJson),
            (b"[1,]", InvalidJson),
            (b"{\"a\" 1}", InvalidJson),
            (b"{'a':1}", InvalidJson),
            (b"{a:1}", InvalidJson),
            (b"{\"a\":01}", InvalidJson),
            (b"{\"a\":1.}", InvalidJson),
            (b"{\"a\":.5}", InvalidJson),
            (b"{\"a\":+1}", InvalidJson),
            (b"{\"a\":1e}", InvalidJson),
            (b"{\"a\":NaN}", InvalidJson),
            (b"{\"a\":Infinity}", InvalidJson),
            (b"{\"a\":1e400}", NumberOutOfRange),
            (b"{\"a\":-1e400}", NumberOutOfRange),
            (b"{\"a\":\"\\ud800\"}", InvalidJson),
            (b"{\"a\":\"\\udc00\"}", InvalidJson),
            (b"{\"a\":\"\\ud800\\u0041\"}", InvalidJson),
            (b"{\"a\":\"\\ud800x\"}", InvalidJson),
            (b"{\"a\":\"\\x41\"}", InvalidJson),
            (b"{\"a\":\"\\u12\"}", InvalidJson),
            (b"{\"a\":\"tab\there\"}", InvalidJson),
            (b"{\"a\":\"nl\nhere\"}", InvalidJson),
            (b"{\"a\":\"\x00\"}", InvalidJson),
            (b"{\"a\":1}\x00", TrailingData),
            (b"{\"a\":\"\xFF\"}", NotUtf8),
            (b"{\"a\":\"\xED\xA0\x80\"}", NotUtf8),
            (b"{\"a\":tru}", InvalidJson),
            (b"{\"a\":1\x0c}", InvalidJson),
            (b"{\"a\"", InvalidJson),
            (b"{", InvalidJson),
            (b"{\"a\":[1}", InvalidJson),
            (b"{\"a\":{]}", InvalidJson),
        ];
        for &(body, error) in cases {
            assert_eq!(convert(body), Err(error), "{}", String::from_utf8_lossy(body));
        }
    }

    /// Where our acceptance could drift from `serde_json`, the two are
    /// compared directly (the BOM rule is ours alone and is left out).
    #[test]
    fn acceptance_agrees_with_serde_json_on_tricky_bodies() {
        let depth_ok = format!("{{\"a\":{}1{}}}", "[".repeat(126), "]".repeat(126));
        let depth_bad = format!("{{\"a\":{}1{}}}", "[".repeat(127), "]".repeat(127));
        let digits_309 = format!("{{\"a\":1{}}}", "0".repeat(308));
        let digits_308 = format!("{{\"a\":-{}}}", "9".repeat(308));
        let cases: Vec<&[u8]> = vec![
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":\"\\ud800\\udc00\"}",
            b"{\"a\":\"\\udbff\\udfff\"}",
            b"{\"a\":\"\\ud800\\ud800\"}",
            b"{\"a\":\"\x1f\"}",
            b"{\"a\":\"\x7f\"}",
            b"{\"a\":1e400}",
            b"{\"a\":1e308}",
            b"{\"a\":1.7976931348623157e308}",
            b"{\"a\":0e999999999999999999}",
            b"{\"a\":1e-999999999999999999}",
            b"{\"a\":-0}",
            b"{\"a\":00}",
            b"{\"a\":-01}",
            b"{\"a\":[1,]}",
            b"{\"a\":NaN}",
            b"{\"a\":18446744073709551616}",
            b"{\"a\":-9223372036854775809}",
            b"",
            b"   ",
            b"\x00",
            b"{\"a\":1}\x00",
            b"{\"a\":\"\x00\"}",
            b"{\"\":0}",
            b"{\"a\":1}\x0c",
            depth_ok.as_bytes(),
            depth_bad.as_bytes(),
            digits_309.as_bytes(),
            digits_308.as_bytes(),
        ];
        for body in cases {
            let ours = convert(body).is_ok();
            assert_eq!(ours, serde_accepts(body), "{}", String::from_utf8_lossy(body));
        }
        assert!(convert(depth_ok.as_bytes()).is_ok());
        assert_eq!(convert(depth_bad.as_bytes()), Err(ConvertError::TooDeep));
    }

    /// A small deterministic fuzz: mutate good bodies byte by byte and check
    /// that acceptance matches `serde_json`, that accepted output means the
    /// same as the input, and that the only raw newline is the terminator.
    #[test]
    fn mutations_agree_with_serde_json() {
        let seeds: &[&[u8]] = &[
            b"{\"a\": [1, 2.5e3, -0.0, true, null], \"b\": {\"c\": \"x\\\"y\\u00e9\"}}",
            b"{\"k\": \"\\ud83d\\ude00\", \"n\": 12345678901234567890, \"e\": {}}",
            b" { \"a\" : [ [ ] , { } , \"\" ] } ",
        ];
        let alphabet = b"{}[]\",:\\/ 0123456789.eE+-tfnrlu\x00\x1f\xC3\xA9";
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut accepted, mut rejected) = (0, 0);
        for _ in 0..20_000 {
            let seed = seeds[(next() % seeds.len() as u64) as usize];
            let mut body = seed.to_vec();
            for _ in 0..(next() % 3 + 1) {
                let at = (next() % body.len() as u64) as usize;
                let byte = alphabet[(next() % alphabet.len() as u64) as usize];
                match next() % 3 {
                    0 => body[at] = byte,
                    1 => body.insert(at, byte),
                    _ => {
                        body.remove(at);
                    }
                }
                if body.is_empty() {
                    break;
                }
            }
            let expected = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .filter(|value| value.is_object());
            match (convert(&body), expected) {
                (Ok(line), Some(value)) => {
                    assert_eq!(line.iter().position(|&b| b == b'\n'), Some(line.len() - 1));
                    let reparsed: serde_json::Value =
                        serde_json::from_slice(&line).expect("our output must be valid JSON");
                    assert_eq!(reparsed, value, "{}", String::from_utf8_lossy(&body));
                    accepted += 1;
                }
                (Err(_), None) => rejected += 1,
                (ours, _) => panic!(
                    "disagreement on {:?}: ours {:?}",
                    String::from_utf8_lossy(&body),
                    ours.map(|line| String::from_utf8_lossy(&line).into_owned())
                ),
            }
        }
        // Both outcomes must be well represented, or the test proves little.
        assert!(accepted > 2_000 && rejected > 2_000, "{accepted} {rejected}");
    }

    #[test]
    fn steady_state_does_not_grow_the_output_buffer() {
        let mut converter = JsonConverter::new();
        let mut out = Vec::with_capacity(1024);
        let capacity = out.capacity();
        for _ in 0..100 {
            out.clear();
            converter
                .convert(b"{ \"a\" : [1, 2, 3] }", &mut out)
                .expect("valid body");
        }
        assert_eq!(out.capacity(), capacity);
    }
}
