//! XML body → one CBOR data item (SPEC §4).
//!
//! This module owns the XML acceptance rule and the stored form. It promises
//! that an accepted document becomes exactly the value Python's
//! `xmltodict.parse` (default settings, expat underneath) builds, encoded the
//! way `cbor2.dumps` encodes it: definite lengths, shortest heads, text
//! strings, `null` for empty elements, map keys in document order. It refuses
//! what expat refuses, and on top of that any DOCTYPE and nesting deeper
//! than [`XML_DEPTH_MAX`]. Bodies are UTF-8 unless they are UTF-16 (a
//! byte-order mark, or a first `<` of two bytes, as expat detects it) or
//! their XML declaration names ISO-8859-1 or windows-1252 (decoded as expat
//! decodes them) or another ASCII-based encoding on a plain-ASCII body (see
//! [`Encoding`]).
//!
//! The document is read with quick-xml's streaming reader. Each element's
//! value is encoded to CBOR the moment its end tag is seen, into a scratch
//! buffer; the parent then only copies finished bytes. So there is no tree,
//! no recursion, and the depth bound is checked before an element is opened.
//! The rejected alternative, building a `ciborium::Value` tree and encoding it
//! at the end, needs recursion (or a hand-written walk) to encode and drop it.
//!
//! Where quick-xml is more lenient than expat (names, character references,
//! `]]>` in text, misplaced declarations, control characters), this module
//! adds the check, so each rule below names what expat does.

use std::collections::HashMap;
use std::ops::Range;

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use super::ConvertError;
use crate::limits::XML_DEPTH_MAX;

/// How many distinct child names an element may have before looking one up
/// switches from a linear scan to a hash map. Most elements have a handful;
/// an element with thousands of distinct children would make the scan
/// quadratic.
const CHILD_NAMES_LINEAR_MAX: usize = 8;

/// How many child groups of a closed element are kept for reuse by the next
/// element at its depth.
const CHILD_GROUPS_KEPT: usize = 32;

/// The key under which an element's text goes when it also has attributes
/// or children (xmltodict's `cdata_key`).
const TEXT_KEY: &str = "#text";

/// The prefix that marks an attribute key (xmltodict's `attr_prefix`).
const ATTRIBUTE_PREFIX: &str = "@";

/// CBOR major types used here (RFC 8949 §3.1).
const CBOR_TEXT: u8 = 3;
const CBOR_ARRAY: u8 = 4;
const CBOR_MAP: u8 = 5;
/// The CBOR encoding of `null` (major type 7, simple value 22).
const CBOR_NULL: u8 = 0xF6;

/// Converts XML documents into CBOR data items. It keeps its buffers between
/// calls so that a worker converting many documents reuses their capacity.
#[derive(Debug, Default)]
pub struct XmlConverter {
    /// The open elements, root first. Frames past `depth` are kept for reuse.
    frames: Vec<Frame>,
    /// How many entries of `frames` are open elements.
    depth: usize,
    /// The encoded values of closed elements whose parent is still open; each
    /// open frame owns the bytes from its `scratch_start` on.
    scratch: Vec<u8>,
    /// Where a closing element's value is assembled before it replaces its
    /// children's bytes in `scratch`.
    assembled: Vec<u8>,
    /// One attribute's decoded value, reused for every attribute.
    attribute_value: String,
    /// A body in a declared single-byte encoding, decoded into UTF-8.
    decoded: Vec<u8>,
}

/// One open element.
#[derive(Debug, Default)]
struct Frame {
    /// The element name as written (prefix included); the end tag must match
    /// it and the parent stores the value under it.
    name: String,
    /// The attributes, already encoded as CBOR key/value pairs, in document
    /// order.
    attributes: Vec<u8>,
    /// How many key/value pairs `attributes` holds.
    attributes_count: usize,
    /// The child elements grouped by name, in order of each name's first
    /// occurrence (xmltodict puts a repeated name's array there): the first
    /// `groups` entries. Entries past them are kept from earlier elements
    /// for their allocations.
    children: Vec<ChildGroup>,
    groups: usize,
    /// Name → index into `children`, filled once there are too many
    /// groups to scan (see [`CHILD_NAMES_LINEAR_MAX`]).
    children_index: HashMap<String, usize>,
    /// All character data of the element, references decoded and line ends
    /// normalized, joined; trimmed only when the element closes.
    text: String,
    /// Where this element's children's values start in `scratch`.
    scratch_start: usize,
}

/// The values of all children of one element that share a name.
#[derive(Debug, Default)]
struct ChildGroup {
    /// The shared element name.
    name: String,
    /// Each child's encoded value, as a range of `scratch`, in document order.
    values: Vec<Range<usize>>,
}

/// Where the reader is relative to the root element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing but (possibly) a BOM has been read; an XML declaration may
    /// come only now.
    Start,
    /// Past the start, before the root element (the prolog).
    Prolog,
    /// Inside the root element.
    Root,
    /// The root element has closed; only whitespace, comments and processing
    /// instructions may follow.
    Epilog,
}

impl XmlConverter {
    /// A converter with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `body` as one XML document and appends its CBOR data item to
    /// `out`, or appends nothing and says why.
    pub fn convert(&mut self, body: &[u8], out: &mut Vec<u8>) -> Result<(), ConvertError> {
        self.depth = 0;
        self.scratch.clear();
        let out_len_before = out.len();
        let result = self.convert_into(body, out);
        if result.is_err() {
            out.truncate(out_len_before);
        }
        result
    }

    fn convert_into(&mut self, body: &[u8], out: &mut Vec<u8>) -> Result<(), ConvertError> {
        let encoding = Encoding::of(body)?;
        if encoding == Encoding::Utf8 {
            return self.convert_utf8(body, body, out);
        }
        let mut decoded = std::mem::take(&mut self.decoded);
        decoded.clear();
        let result = encoding.decode(body, &mut decoded).and_then(|()| {
            // A UTF-16 body's declaration can only be read decoded.
            let sent = if matches!(encoding, Encoding::Utf16 { .. }) {
                &decoded[..]
            } else {
                body
            };
            self.convert_utf8(&decoded, sent, out)
        });
        self.decoded = decoded;
        result
    }

    /// Converts `body`, UTF-8 now; `sent` is the body as it was sent.
    fn convert_utf8(&mut self, body: &[u8], sent: &[u8], out: &mut Vec<u8>) -> Result<(), ConvertError> {
        let text = std::str::from_utf8(body).map_err(|_| ConvertError::NotUtf8)?;
        check_characters(body)?;
        // The reader skips one leading UTF-8 BOM itself, as expat does; a
        // second one is then text before the root and refused below.
        let mut reader = Reader::from_str(text);
        reader.config_mut().check_comments = true;
        let mut phase = Phase::Start;
        loop {
            let event = reader.read_event().map_err(|_| ConvertError::InvalidXml)?;
            match event {
                Event::Decl(decl) => {
                    if phase != Phase::Start {
                        // expat: "XML or text declaration not at start of entity".
                        return Err(ConvertError::InvalidXml);
                    }
                    check_declaration(&decl, sent)?;
                }
                Event::DocType(_) => return Err(ConvertError::Doctype),
                Event::Start(start) => {
                    self.open(&start, phase)?;
                    phase = Phase::Root;
                }
                Event::Empty(start) => {
                    self.open(&start, phase)?;
                    phase = self.close(start.name().0, out)?;
                }
                Event::End(end) => {
                    if phase != Phase::Root {
                        return Err(ConvertError::InvalidXml);
                    }
                    phase = self.close(end.name().0, out)?;
                }
                Event::Text(raw) => {
                    if phase == Phase::Root {
                        self.text(&raw)?;
                    } else if !raw.bytes().all(is_xml_space) {
                        return Err(ConvertError::InvalidXml);
                    } else if raw.is_empty() {
                        // An empty event is no content; the phase stays.
                        continue;
                    }
                }
                Event::CData(cdata) => {
                    if phase != Phase::Root {
                        return Err(ConvertError::InvalidXml);
                    }
                    let frame = self.top_mut();
                    push_normalized(&mut frame.text, &cdata);
                }
                Event::GeneralRef(reference) => {
                    if phase != Phase::Root {
                        return Err(ConvertError::InvalidXml);
                    }
                    let decoded = resolve_reference(&reference)?;
                    self.top_mut().text.push(decoded);
                }
                Event::Comment(comment) => check_comment(&comment)?,
                Event::PI(pi) => check_processing_instruction(pi.target())?,
                Event::Eof => {
                    return match phase {
                        Phase::Epilog => Ok(()),
                        // expat: "no element found".
                        _ => Err(ConvertError::InvalidXml),
                    };
                }
            }
            if phase == Phase::Start {
                phase = Phase::Prolog;
            }
        }
    }

    /// Opens an element: checks the depth bound first, then its name and
    /// attributes, and pushes its frame.
    fn open(&mut self, start: &BytesStart<'_>, phase: Phase) -> Result<(), ConvertError> {
        if phase == Phase::Epilog {
            // expat: "junk after document element" (a second root).
            return Err(ConvertError::InvalidXml);
        }
        if self.depth == XML_DEPTH_MAX {
            return Err(ConvertError::TooDeep);
        }
        let name = start.name().0;
        check_name(name)?;
        if self.frames.len() == self.depth {
            self.frames.push(Frame::default());
        }
        let scratch_start = self.scratch.len();
        let frame = &mut self.frames[self.depth];
        frame.name.clear();
        frame.name.push_str(name);
        frame.attributes.clear();
        frame.attributes_count = 0;
        frame.groups = 0;
        // A document with thousands of distinct names leaves no more spare
        // groups than this behind.
        frame.children.truncate(CHILD_GROUPS_KEPT);
        frame.children_index.clear();
        frame.text.clear();
        frame.scratch_start = scratch_start;
        check_attribute_separation(&start[name.len()..])?;
        let value = &mut self.attribute_value;
        for attribute in start.attributes() {
            // quick-xml's checked iterator refuses duplicates, a missing `=`
            // or value, and unquoted values, as expat does.
            let attribute = attribute.map_err(|_| ConvertError::InvalidXml)?;
            let key = attribute.key.0;
            check_name(key)?;
            value.clear();
            normalize_attribute_value(&attribute.value, value)?;
            write_head(
                &mut frame.attributes,
                CBOR_TEXT,
                ATTRIBUTE_PREFIX.len() + key.len(),
            );
            frame.attributes.extend_from_slice(ATTRIBUTE_PREFIX.as_bytes());
            frame.attributes.extend_from_slice(key.as_bytes());
            write_text(&mut frame.attributes, value);
            frame.attributes_count += 1;
        }
        self.depth += 1;
        Ok(())
    }

    /// Closes the innermost element: encodes its value and hands it to its
    /// parent, or, for the root, writes the document to `out`.
    fn close(&mut self, name: &str, out: &mut Vec<u8>) -> Result<Phase, ConvertError> {
        let index = self.depth.checked_sub(1).ok_or(ConvertError::InvalidXml)?;
        if self.frames[index].name != name {
            // expat: "mismatched tag".
            return Err(ConvertError::InvalidXml);
        }
        self.depth = index;
        let frame = &self.frames[index];
        self.assembled.clear();
        encode_value(frame, &self.scratch, &mut self.assembled);
        self.scratch.truncate(frame.scratch_start);
        if index == 0 {
            write_head(out, CBOR_MAP, 1);
            write_text(out, &frame.name);
            out.extend_from_slice(&self.assembled);
            return Ok(Phase::Epilog);
        }
        let range = self.scratch.len()..self.scratch.len() + self.assembled.len();
        self.scratch.extend_from_slice(&self.assembled);
        let (parents, rest) = self.frames.split_at_mut(index);
        add_child(&mut parents[index - 1], &rest[0].name, range);
        Ok(Phase::Root)
    }

    /// Character data inside an element: references were split off by the
    /// reader, so this is literal text.
    fn text(&mut self, raw: &str) -> Result<(), ConvertError> {
        if raw.contains("]]>") {
            // expat refuses the CDATA terminator in plain text.
            return Err(ConvertError::InvalidXml);
        }
        push_normalized(&mut self.top_mut().text, raw);
        Ok(())
    }

    fn top_mut(&mut self) -> &mut Frame {
        let index = self
            .depth
            .checked_sub(1)
            .expect("invariant: text only inside the root");
        &mut self.frames[index]
    }
}

/// Files `value` (a range of scratch) under `name` in `parent`.
fn add_child(parent: &mut Frame, name: &str, value: Range<usize>) {
    let found = if parent.groups > CHILD_NAMES_LINEAR_MAX {
        parent.children_index.get(name).copied()
    } else {
        parent.live_children().iter().position(|group| group.name == name)
    };
    if let Some(group) = found {
        parent.children[group].values.push(value);
        return;
    }
    match parent.children.get_mut(parent.groups) {
        Some(spare) => {
            spare.name.clear();
            spare.name.push_str(name);
            spare.values.clear();
            spare.values.push(value);
        }
        None => parent.children.push(ChildGroup {
            name: name.to_owned(),
            values: vec![value],
        }),
    }
    parent.groups += 1;
    if parent.groups == CHILD_NAMES_LINEAR_MAX + 1 {
        for (group_index, group) in parent.children[..parent.groups].iter().enumerate() {
            parent.children_index.insert(group.name.clone(), group_index);
        }
    } else if parent.groups > CHILD_NAMES_LINEAR_MAX + 1 {
        parent.children_index.insert(name.to_owned(), parent.groups - 1);
    }
}

impl Frame {
    fn live_children(&self) -> &[ChildGroup] {
        &self.children[..self.groups]
    }
}

/// Encodes one closed element's value, as xmltodict shapes it: `null`, a
/// text string, or a map of attributes, children and `#text`.
fn encode_value(frame: &Frame, scratch: &[u8], out: &mut Vec<u8>) {
    // Python's `str.strip()` removes what `str.isspace()` calls whitespace;
    // over the characters XML allows, that is exactly `char::is_whitespace`
    // (they differ only on U+001C..U+001F, which XML forbids).
    let text = frame.text.trim();
    if frame.attributes_count == 0 && frame.groups == 0 {
        if text.is_empty() {
            out.push(CBOR_NULL);
        } else {
            write_text(out, text);
        }
        return;
    }
    let entries = frame.attributes_count + frame.groups + usize::from(!text.is_empty());
    write_head(out, CBOR_MAP, entries);
    out.extend_from_slice(&frame.attributes);
    for group in frame.live_children() {
        write_text(out, &group.name);
        if let [single] = group.values.as_slice() {
            out.extend_from_slice(&scratch[single.clone()]);
        } else {
            write_head(out, CBOR_ARRAY, group.values.len());
            for value in &group.values {
                out.extend_from_slice(&scratch[value.clone()]);
            }
        }
    }
    if !text.is_empty() {
        write_text(out, TEXT_KEY);
        write_text(out, text);
    }
}

/// Writes a CBOR head with the shortest length encoding (RFC 8949 §4.2.1),
/// as `cbor2` does.
fn write_head(out: &mut Vec<u8>, major: u8, length: usize) {
    let major = major << 5;
    let length = length as u64;
    if length < 24 {
        out.push(major | length as u8);
    } else if length <= u64::from(u8::MAX) {
        out.extend_from_slice(&[major | 24, length as u8]);
    } else if length <= u64::from(u16::MAX) {
        out.push(major | 25);
        out.extend_from_slice(&(length as u16).to_be_bytes());
    } else if length <= u64::from(u32::MAX) {
        out.push(major | 26);
        out.extend_from_slice(&(length as u32).to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&length.to_be_bytes());
    }
}

fn write_text(out: &mut Vec<u8>, text: &str) {
    write_head(out, CBOR_TEXT, text.len());
    out.extend_from_slice(text.as_bytes());
}

/// XML's four whitespace characters (production `S`).
fn is_xml_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

/// Refuses characters XML 1.0 forbids anywhere in a document (production
/// `Char`): C0 controls other than tab, LF and CR, and U+FFFE/U+FFFF. The
/// body is already known to be UTF-8, so surrogates cannot occur. expat:
/// "not well-formed (invalid token)".
fn check_characters(body: &[u8]) -> Result<(), ConvertError> {
    // Without a branch per byte, so that the compiler checks a chunk at a
    // time in vector registers; a hit is found within one chunk.
    let control = body.chunks(64).any(|chunk| {
        chunk.iter().fold(false, |found, &byte| {
            found | ((byte < 0x20) & !is_xml_space(byte))
        })
    });
    // Both are EF BF BE/BF in UTF-8; EF itself is rare outside them.
    let nonchar = memchr::memchr_iter(0xEF, body)
        .any(|at| matches!(body.get(at + 1..at + 3), Some([0xBF, 0xBE | 0xBF])));
    if control || nonchar {
        return Err(ConvertError::InvalidXml);
    }
    Ok(())
}

/// Whether `c` may appear in an XML document, by reference or literally.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Appends character data with XML's end-of-line handling (§2.11): CR LF and
/// a lone CR both become LF. Character references are decoded separately,
/// so `&#13;` still yields a CR.
fn push_normalized(text: &mut String, raw: &str) {
    let mut rest = raw;
    while let Some(at) = rest.find('\r') {
        text.push_str(&rest[..at]);
        text.push('\n');
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('\n') {
            rest = after;
        }
    }
    text.push_str(rest);
}

/// Decodes an attribute's raw value the way expat does for an attribute
/// without a DTD (§3.3.3): references decoded, each literal tab, CR, LF (and
/// CR LF pair) becomes one space; a literal `<` is not well-formed.
fn normalize_attribute_value(raw: &str, value: &mut String) -> Result<(), ConvertError> {
    if !raw
        .bytes()
        .any(|byte| matches!(byte, b'<' | b'&' | b'\r' | b'\t' | b'\n'))
    {
        // The usual value: nothing to decode or normalize.
        value.push_str(raw);
        return Ok(());
    }
    let mut chars = raw.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '<' => return Err(ConvertError::InvalidXml),
            '&' => {
                let end = raw[at..].find(';').ok_or(ConvertError::InvalidXml)? + at;
                value.push(resolve_reference(&raw[at + 1..end])?);
                while chars.next_if(|&(next, _)| next <= end).is_some() {}
            }
            '\r' => {
                chars.next_if(|&(_, next)| next == '\n');
                value.push(' ');
            }
            '\t' | '\n' => value.push(' '),
            _ => value.push(c),
        }
    }
    Ok(())
}

/// Decodes the inside of `&…;`: one of the five predefined entities or a
/// character reference to a character XML allows. Any other valid name is an
/// undefined entity (no DTD can define one).
fn resolve_reference(name: &str) -> Result<char, ConvertError> {
    match name {
        "lt" => return Ok('<'),
        "gt" => return Ok('>'),
        "amp" => return Ok('&'),
        "apos" => return Ok('\''),
        "quot" => return Ok('"'),
        _ => {}
    }
    if let Some(number) = name.strip_prefix('#') {
        // expat accepts only a lowercase `x` for hex references.
        let (digits, radix) = match number.strip_prefix('x') {
            Some(hex) => (hex, 16),
            None => (number, 10),
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return Err(ConvertError::InvalidXml);
        }
        // Overflow means far beyond U+10FFFF: invalid either way.
        let code = u32::from_str_radix(digits, radix).map_err(|_| ConvertError::InvalidXml)?;
        // expat: "reference to invalid character number".
        return char::from_u32(code)
            .filter(|&c| is_xml_char(c))
            .ok_or(ConvertError::InvalidXml);
    }
    check_name(name)?;
    Err(ConvertError::UnknownEntity)
}

/// The character encoding a body is read in (XML 1.0 §4.3.3), as Python's
/// expat (what `xmltodict` runs on) reads it: UTF-8 unless the XML
/// declaration names another. ISO-8859-1 and windows-1252, the single-byte
/// encodings real senders declare, are decoded byte by byte; US-ASCII and
/// the other ASCII-based encodings listed in [`ASCII_ONLY_ENCODINGS`] are
/// accepted for bodies that are plain ASCII (where they all read the same
/// characters). Any other name (`bogus`), and UTF-16 or UTF-32 declared on a
/// body of single bytes, is refused as expat refuses it. A body in UTF-16
/// itself (byte-order mark, or a first `<` of two bytes, see
/// [`utf16_byte_order`]) is read as UTF-16 whatever it declares, and then
/// may declare only UTF-16 or nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Latin1,
    Windows1252,
    Utf16 { big_endian: bool },
}

/// Names (compared without case) accepted on a plain-ASCII body only.
const ASCII_ONLY_ENCODINGS: &[&str] = &[
    "us-ascii",
    "ascii",
    "iso-8859-2",
    "iso-8859-3",
    "iso-8859-4",
    "iso-8859-5",
    "iso-8859-6",
    "iso-8859-7",
    "iso-8859-8",
    "iso-8859-9",
    "iso-8859-10",
    "iso-8859-13",
    "iso-8859-14",
    "iso-8859-15",
    "iso-8859-16",
    "windows-1250",
    "windows-1251",
    "windows-1253",
    "windows-1254",
    "windows-1255",
    "windows-1256",
    "windows-1257",
    "windows-1258",
    "koi8-r",
    "koi8-u",
];

/// windows-1252's characters for bytes 0x80–0x9F; `None` for the five it
/// leaves undefined (Python's codec, and so expat under `xmltodict`,
/// refuses them). Every other byte is the code point of the same number.
const WINDOWS_1252_HIGH: [Option<char>; 32] = [
    Some('\u{20AC}'),
    None,
    Some('\u{201A}'),
    Some('\u{0192}'),
    Some('\u{201E}'),
    Some('\u{2026}'),
    Some('\u{2020}'),
    Some('\u{2021}'),
    Some('\u{02C6}'),
    Some('\u{2030}'),
    Some('\u{0160}'),
    Some('\u{2039}'),
    Some('\u{0152}'),
    None,
    Some('\u{017D}'),
    None,
    None,
    Some('\u{2018}'),
    Some('\u{2019}'),
    Some('\u{201C}'),
    Some('\u{201D}'),
    Some('\u{2022}'),
    Some('\u{2013}'),
    Some('\u{2014}'),
    Some('\u{02DC}'),
    Some('\u{2122}'),
    Some('\u{0161}'),
    Some('\u{203A}'),
    Some('\u{0153}'),
    None,
    Some('\u{017E}'),
    Some('\u{0178}'),
];

impl Encoding {
    /// The encoding `body` is read in: UTF-16 by its first bytes, else
    /// what it declares.
    fn of(body: &[u8]) -> Result<Encoding, ConvertError> {
        match utf16_byte_order(body) {
            Some(big_endian) => Ok(Encoding::Utf16 { big_endian }),
            None => Encoding::declared(body),
        }
    }

    /// The encoding `body` declares, read from its XML declaration (which
    /// must open the body, after at most a UTF-8 byte-order mark). The
    /// declaration's syntax is checked later, with the rest of the document.
    fn declared(body: &[u8]) -> Result<Encoding, ConvertError> {
        let Some(name) = declared_encoding_name(body) else {
            return Ok(Encoding::Utf8);
        };
        let is = |candidates: &[&str]| candidates.iter().any(|c| name.eq_ignore_ascii_case(c.as_bytes()));
        if is(&["utf-8", "utf8"]) {
            Ok(Encoding::Utf8)
        } else if is(&[
            "iso-8859-1",
            "iso8859-1",
            "iso_8859-1",
            "latin-1",
            "latin1",
            "l1",
            "cp819",
        ]) {
            Ok(Encoding::Latin1)
        } else if is(&["windows-1252", "cp1252"]) {
            Ok(Encoding::Windows1252)
        } else if is(ASCII_ONLY_ENCODINGS) && body.is_ascii() {
            Ok(Encoding::Utf8)
        } else {
            Err(ConvertError::UnsupportedEncoding)
        }
    }

    /// Appends `body` (in this encoding, not UTF-8) to `out` as UTF-8. A
    /// single-byte body's leading UTF-8 byte-order mark is dropped: expat
    /// skips it and then follows the declaration. A UTF-16 body must then
    /// declare UTF-16 or nothing.
    fn decode(self, body: &[u8], out: &mut Vec<u8>) -> Result<(), ConvertError> {
        if let Encoding::Utf16 { big_endian } = self {
            decode_utf16(body, big_endian, out)?;
            return check_utf16_declaration(out);
        }
        let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
        out.reserve(body.len() * 2);
        let mut utf8 = [0u8; 4];
        for &byte in body {
            let c = match (self, byte) {
                (_, 0..=0x7F) => {
                    out.push(byte);
                    continue;
                }
                (Encoding::Windows1252, 0x80..=0x9F) => {
                    WINDOWS_1252_HIGH[usize::from(byte - 0x80)].ok_or(ConvertError::InvalidXml)?
                }
                _ => char::from(byte),
            };
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
        Ok(())
    }
}

/// The UTF-8 byte-order mark.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Whether `body` is UTF-16, as expat detects it (XML 1.0 appendix F): a
/// byte-order mark (`FF FE` little-endian, `FE FF` big-endian), or without
/// one a first `<` as two bytes (`3C 00`, `00 3C`), which no UTF-8 document
/// can start with (NUL is not an XML character). `Some(true)` for
/// big-endian.
fn utf16_byte_order(body: &[u8]) -> Option<bool> {
    match body {
        [0xFF, 0xFE, ..] | [0x3C, 0x00, ..] => Some(false),
        [0xFE, 0xFF, ..] | [0x00, 0x3C, ..] => Some(true),
        _ => None,
    }
}

/// Appends a UTF-16 `body` (its byte-order mark, if any, dropped) to `out`
/// as UTF-8. An odd length or an unpaired surrogate is not a document.
fn decode_utf16(body: &[u8], big_endian: bool, out: &mut Vec<u8>) -> Result<(), ConvertError> {
    let body = match body {
        [0xFF, 0xFE, rest @ ..] | [0xFE, 0xFF, rest @ ..] => rest,
        _ => body,
    };
    if body.len() % 2 != 0 {
        return Err(ConvertError::InvalidXml);
    }
    let units = body.chunks_exact(2).map(|pair| {
        let pair = [pair[0], pair[1]];
        if big_endian {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        }
    });
    out.reserve(body.len() + body.len() / 2);
    let mut utf8 = [0u8; 4];
    for c in char::decode_utf16(units) {
        let c = c.map_err(|_| ConvertError::InvalidXml)?;
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
    }
    Ok(())
}

/// A UTF-16 document may declare no encoding or a UTF-16 one; naming
/// another is refused, as expat refuses it ("encoding specified in XML
/// declaration is incorrect").
fn check_utf16_declaration(decoded: &[u8]) -> Result<(), ConvertError> {
    match declared_encoding_name(decoded) {
        None => Ok(()),
        Some(name)
            if ["utf-16", "utf-16le", "utf-16be", "utf16"]
                .iter()
                .any(|utf16| name.eq_ignore_ascii_case(utf16.as_bytes())) =>
        {
            Ok(())
        }
        Some(_) => Err(ConvertError::InvalidXml),
    }
}

/// The raw `encoding` value of the XML declaration that opens `body`, if
/// there is one: `<?xml`, then within that declaration `encoding`, optional
/// whitespace, `=`, optional whitespace and a quoted name.
fn declared_encoding_name(body: &[u8]) -> Option<&[u8]> {
    let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
    let rest = body.strip_prefix(b"<?xml")?;
    if !rest.first().is_some_and(|&byte| is_xml_space(byte)) {
        return None;
    }
    let end = memchr::memmem::find(rest, b"?>")?;
    let decl = &rest[..end];
    let at = memchr::memmem::find(decl, b"encoding")?;
    let after = &decl[at + b"encoding".len()..];
    let after = trim_xml_space(after).strip_prefix(b"=")?;
    let after = trim_xml_space(after);
    let quote = *after.first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let value = &after[1..];
    let close = memchr::memchr(quote, value)?;
    Some(&value[..close])
}

fn trim_xml_space(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&byte| !is_xml_space(byte))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Checks the XML declaration the way expat does: `version` first and
/// required, then optional `encoding` and `standalone` (`yes` or `no`), each
/// preceded by whitespace. Which encodings are read is [`Encoding`]'s
/// business; `body` is the body as sent.
fn check_declaration(decl: &str, body: &[u8]) -> Result<(), ConvertError> {
    let mut rest = decl.strip_prefix("xml").ok_or(ConvertError::InvalidXml)?;
    let mut seen_version = false;
    let mut expected = ["version", "encoding", "standalone"].iter();
    loop {
        let trimmed = rest.trim_start_matches(|c: char| c.is_ascii() && is_xml_space(c as u8));
        if trimmed.is_empty() {
            break;
        }
        if trimmed.len() == rest.len() {
            // expat: "XML declaration not well-formed" (missing whitespace).
            return Err(ConvertError::InvalidXml);
        }
        let (key, value, after) = split_pseudo_attribute(trimmed)?;
        if !expected.any(|&name| name == key) {
            return Err(ConvertError::InvalidXml);
        }
        match key {
            "version" => {
                // expat: VersionNum is one or more of `[a-zA-Z0-9_.-]`.
                let version_char = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
                if value.is_empty() || !value.chars().all(version_char) {
                    return Err(ConvertError::InvalidXml);
                }
                seen_version = true;
            }
            "encoding" => {
                // EncName: a letter, then letters, digits and `._-`.
                let mut chars = value.chars();
                let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
                if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                    return Err(ConvertError::InvalidXml);
                }
                // The name must be the one the body was read in.
                if declared_encoding_name(body) != Some(value.as_bytes()) {
                    return Err(ConvertError::InvalidXml);
                }
            }
            _ => {
                if value != "yes" && value != "no" {
                    return Err(ConvertError::InvalidXml);
                }
            }
        }
        if !seen_version {
            return Err(ConvertError::InvalidXml);
        }
        rest = after;
    }
    if !seen_version {
        return Err(ConvertError::InvalidXml);
    }
    Ok(())
}

/// Requires whitespace after each quoted attribute value, as expat does
/// (`<a x="1"y="2"/>` is not well-formed); quick-xml's attribute iterator
/// does not check this. `after_name` is the tag content after the name.
fn check_attribute_separation(after_name: &str) -> Result<(), ConvertError> {
    let mut quote = None;
    let mut just_closed = false;
    for c in after_name.chars() {
        if just_closed && !(c.is_ascii() && is_xml_space(c as u8)) {
            return Err(ConvertError::InvalidXml);
        }
        just_closed = false;
        match quote {
            Some(open) if c == open => {
                quote = None;
                just_closed = true;
            }
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None => {}
        }
    }
    Ok(())
}

/// Splits `key = "value"` (or single quotes) off the start of `text`.
fn split_pseudo_attribute(text: &str) -> Result<(&str, &str, &str), ConvertError> {
    let is_space = |c: char| c.is_ascii() && is_xml_space(c as u8);
    let key_end = text
        .find(|c: char| c == '=' || is_space(c))
        .ok_or(ConvertError::InvalidXml)?;
    let (key, rest) = text.split_at(key_end);
    let rest = rest
        .trim_start_matches(is_space)
        .strip_prefix('=')
        .ok_or(ConvertError::InvalidXml)?;
    let rest = rest.trim_start_matches(is_space);
    let quote = rest
        .chars()
        .next()
        .filter(|&c| c == '"' || c == '\'')
        .ok_or(ConvertError::InvalidXml)?;
    let rest = &rest[1..];
    let value_end = rest.find(quote).ok_or(ConvertError::InvalidXml)?;
    Ok((key, &rest[..value_end], &rest[value_end + 1..]))
}

/// expat refuses `--` inside a comment and a comment ending in `-`.
fn check_comment(comment: &str) -> Result<(), ConvertError> {
    if comment.contains("--") || comment.ends_with('-') {
        return Err(ConvertError::InvalidXml);
    }
    Ok(())
}

/// A processing instruction is dropped, but its target must be a name and
/// must not be `xml` in any case (reserved; expat refuses it).
fn check_processing_instruction(target: &str) -> Result<(), ConvertError> {
    check_name(target)?;
    if target.eq_ignore_ascii_case("xml") {
        return Err(ConvertError::InvalidXml);
    }
    Ok(())
}

/// Checks an element, attribute, entity or PI target name against expat's
/// name characters (no namespace processing, so any colons are allowed, as
/// xmltodict's default does).
fn check_name(name: &str) -> Result<(), ConvertError> {
    let valid = match name.as_bytes() {
        [] => false,
        // Nearly every name is ASCII: one table lookup per byte instead of
        // a search of the ranges per character.
        [first, rest @ ..] if name.is_ascii() => {
            NAME_START_ASCII[usize::from(*first)]
                && rest.iter().all(|&byte| NAME_CHAR_ASCII[usize::from(byte)])
        }
        _ => is_name_by_ranges(name),
    };
    if !valid {
        return Err(ConvertError::InvalidXml);
    }
    Ok(())
}

fn is_name_by_ranges(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| in_ranges(first, NAME_START_RANGES))
        && chars.all(|c| in_ranges(c, NAME_CHAR_RANGES))
}

/// The ASCII part of a table of ranges, as a lookup table by byte.
const fn ascii_table(ranges: &[(u32, u32)]) -> [bool; 128] {
    let mut table = [false; 128];
    let mut index = 0;
    while index < ranges.len() {
        let (start, end) = ranges[index];
        let mut code = start;
        while code <= end && code < 128 {
            table[code as usize] = true;
            code += 1;
        }
        index += 1;
    }
    table
}

const NAME_START_ASCII: [bool; 128] = ascii_table(NAME_START_RANGES);
const NAME_CHAR_ASCII: [bool; 128] = ascii_table(NAME_CHAR_RANGES);

fn in_ranges(c: char, ranges: &[(u32, u32)]) -> bool {
    let code = u32::from(c);
    // The ranges are sorted and disjoint: find the last one starting at or
    // before `code`.
    let after = ranges.partition_point(|&(start, _)| start <= code);
    after > 0 && code <= ranges[after - 1].1
}

// The character classes expat uses for names (XML 1.0 fourth edition,
// Appendix B; expat never adopted the fifth edition's wider classes), as
// sorted inclusive code point ranges. Generated by asking Python's expat
// about every code point: `tests/golden/xml/generate.py --name-tables`.

#[rustfmt::skip]
const NAME_START_RANGES: &[(u32, u32)] = &[
    (0x3A, 0x3A), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A), (0xC0, 0xD6), (0xD8, 0xF6),
    (0xF8, 0x131), (0x134, 0x13E), (0x141, 0x148), (0x14A, 0x17E), (0x180, 0x1C3), (0x1CD, 0x1F0),
    (0x1F4, 0x1F5), (0x1FA, 0x217), (0x250, 0x2A8), (0x2BB, 0x2C1), (0x386, 0x386), (0x388, 0x38A),
    (0x38C, 0x38C), (0x38E, 0x3A1), (0x3A3, 0x3CE), (0x3D0, 0x3D6), (0x3DA, 0x3DA), (0x3DC, 0x3DC),
    (0x3DE, 0x3DE), (0x3E0, 0x3E0), (0x3E2, 0x3F3), (0x401, 0x40C), (0x40E, 0x44F), (0x451, 0x45C),
    (0x45E, 0x481), (0x490, 0x4C4), (0x4C7, 0x4C8), (0x4CB, 0x4CC), (0x4D0, 0x4EB), (0x4EE, 0x4F5),
    (0x4F8, 0x4F9), (0x531, 0x556), (0x559, 0x559), (0x561, 0x586), (0x5D0, 0x5EA), (0x5F0, 0x5F2),
    (0x621, 0x63A), (0x641, 0x64A), (0x671, 0x6B7), (0x6BA, 0x6BE), (0x6C0, 0x6CE), (0x6D0, 0x6D3),
    (0x6D5, 0x6D5), (0x6E5, 0x6E6), (0x905, 0x939), (0x93D, 0x93D), (0x958, 0x961), (0x985, 0x98C),
    (0x98F, 0x990), (0x993, 0x9A8), (0x9AA, 0x9B0), (0x9B2, 0x9B2), (0x9B6, 0x9B9), (0x9DC, 0x9DD),
    (0x9DF, 0x9E1), (0x9F0, 0x9F1), (0xA05, 0xA0A), (0xA0F, 0xA10), (0xA13, 0xA28), (0xA2A, 0xA30),
    (0xA32, 0xA33), (0xA35, 0xA36), (0xA38, 0xA39), (0xA59, 0xA5C), (0xA5E, 0xA5E), (0xA72, 0xA74),
    (0xA85, 0xA8B), (0xA8D, 0xA8D), (0xA8F, 0xA91), (0xA93, 0xAA8), (0xAAA, 0xAB0), (0xAB2, 0xAB3),
    (0xAB5, 0xAB9), (0xABD, 0xABD), (0xAE0, 0xAE0), (0xB05, 0xB0C), (0xB0F, 0xB10), (0xB13, 0xB28),
    (0xB2A, 0xB30), (0xB32, 0xB33), (0xB36, 0xB39), (0xB3D, 0xB3D), (0xB5C, 0xB5D), (0xB5F, 0xB61),
    (0xB85, 0xB8A), (0xB8E, 0xB90), (0xB92, 0xB95), (0xB99, 0xB9A), (0xB9C, 0xB9C), (0xB9E, 0xB9F),
    (0xBA3, 0xBA4), (0xBA8, 0xBAA), (0xBAE, 0xBB5), (0xBB7, 0xBB9), (0xC05, 0xC0C), (0xC0E, 0xC10),
    (0xC12, 0xC28), (0xC2A, 0xC33), (0xC35, 0xC39), (0xC60, 0xC61), (0xC85, 0xC8C), (0xC8E, 0xC90),
    (0xC92, 0xCA8), (0xCAA, 0xCB3), (0xCB5, 0xCB9), (0xCDE, 0xCDE), (0xCE0, 0xCE1), (0xD05, 0xD0C),
    (0xD0E, 0xD10), (0xD12, 0xD28), (0xD2A, 0xD39), (0xD60, 0xD61), (0xE01, 0xE2E), (0xE30, 0xE30),
    (0xE32, 0xE33), (0xE40, 0xE45), (0xE81, 0xE82), (0xE84, 0xE84), (0xE87, 0xE88), (0xE8A, 0xE8A),
    (0xE8D, 0xE8D), (0xE94, 0xE97), (0xE99, 0xE9F), (0xEA1, 0xEA3), (0xEA5, 0xEA5), (0xEA7, 0xEA7),
    (0xEAA, 0xEAB), (0xEAD, 0xEAE), (0xEB0, 0xEB0), (0xEB2, 0xEB3), (0xEBD, 0xEBD), (0xEC0, 0xEC4),
    (0xF40, 0xF47), (0xF49, 0xF69), (0x10A0, 0x10C5), (0x10D0, 0x10F6), (0x1100, 0x1100),
    (0x1102, 0x1103), (0x1105, 0x1107), (0x1109, 0x1109), (0x110B, 0x110C), (0x110E, 0x1112),
    (0x113C, 0x113C), (0x113E, 0x113E), (0x1140, 0x1140), (0x114C, 0x114C), (0x114E, 0x114E),
    (0x1150, 0x1150), (0x1154, 0x1155), (0x1159, 0x1159), (0x115F, 0x1161), (0x1163, 0x1163),
    (0x1165, 0x1165), (0x1167, 0x1167), (0x1169, 0x1169), (0x116D, 0x116E), (0x1172, 0x1173),
    (0x1175, 0x1175), (0x119E, 0x119E), (0x11A8, 0x11A8), (0x11AB, 0x11AB), (0x11AE, 0x11AF),
    (0x11B7, 0x11B8), (0x11BA, 0x11BA), (0x11BC, 0x11C2), (0x11EB, 0x11EB), (0x11F0, 0x11F0),
    (0x11F9, 0x11F9), (0x1E00, 0x1E9B), (0x1EA0, 0x1EF9), (0x1F00, 0x1F15), (0x1F18, 0x1F1D),
    (0x1F20, 0x1F45), (0x1F48, 0x1F4D), (0x1F50, 0x1F57), (0x1F59, 0x1F59), (0x1F5B, 0x1F5B),
    (0x1F5D, 0x1F5D), (0x1F5F, 0x1F7D), (0x1F80, 0x1FB4), (0x1FB6, 0x1FBC), (0x1FBE, 0x1FBE),
    (0x1FC2, 0x1FC4), (0x1FC6, 0x1FCC), (0x1FD0, 0x1FD3), (0x1FD6, 0x1FDB), (0x1FE0, 0x1FEC),
    (0x1FF2, 0x1FF4), (0x1FF6, 0x1FFC), (0x2126, 0x2126), (0x212A, 0x212B), (0x212E, 0x212E),
    (0x2180, 0x2182), (0x3007, 0x3007), (0x3021, 0x3029), (0x3041, 0x3094), (0x30A1, 0x30FA),
    (0x3105, 0x312C), (0x4E00, 0x9FA5), (0xAC00, 0xD7A3),
];
#[rustfmt::skip]
const NAME_CHAR_RANGES: &[(u32, u32)] = &[
    (0x2D, 0x2E), (0x30, 0x3A), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A), (0xB7, 0xB7),
    (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x131), (0x134, 0x13E), (0x141, 0x148), (0x14A, 0x17E),
    (0x180, 0x1C3), (0x1CD, 0x1F0), (0x1F4, 0x1F5), (0x1FA, 0x217), (0x250, 0x2A8), (0x2BB, 0x2C1),
    (0x2D0, 0x2D1), (0x300, 0x345), (0x360, 0x361), (0x386, 0x38A), (0x38C, 0x38C), (0x38E, 0x3A1),
    (0x3A3, 0x3CE), (0x3D0, 0x3D6), (0x3DA, 0x3DA), (0x3DC, 0x3DC), (0x3DE, 0x3DE), (0x3E0, 0x3E0),
    (0x3E2, 0x3F3), (0x401, 0x40C), (0x40E, 0x44F), (0x451, 0x45C), (0x45E, 0x481), (0x483, 0x486),
    (0x490, 0x4C4), (0x4C7, 0x4C8), (0x4CB, 0x4CC), (0x4D0, 0x4EB), (0x4EE, 0x4F5), (0x4F8, 0x4F9),
    (0x531, 0x556), (0x559, 0x559), (0x561, 0x586), (0x591, 0x5A1), (0x5A3, 0x5B9), (0x5BB, 0x5BD),
    (0x5BF, 0x5BF), (0x5C1, 0x5C2), (0x5C4, 0x5C4), (0x5D0, 0x5EA), (0x5F0, 0x5F2), (0x621, 0x63A),
    (0x640, 0x652), (0x660, 0x669), (0x670, 0x6B7), (0x6BA, 0x6BE), (0x6C0, 0x6CE), (0x6D0, 0x6D3),
    (0x6D5, 0x6E8), (0x6EA, 0x6ED), (0x6F0, 0x6F9), (0x901, 0x903), (0x905, 0x939), (0x93C, 0x94D),
    (0x951, 0x954), (0x958, 0x963), (0x966, 0x96F), (0x981, 0x983), (0x985, 0x98C), (0x98F, 0x990),
    (0x993, 0x9A8), (0x9AA, 0x9B0), (0x9B2, 0x9B2), (0x9B6, 0x9B9), (0x9BC, 0x9BC), (0x9BE, 0x9C4),
    (0x9C7, 0x9C8), (0x9CB, 0x9CD), (0x9D7, 0x9D7), (0x9DC, 0x9DD), (0x9DF, 0x9E3), (0x9E6, 0x9F1),
    (0xA02, 0xA02), (0xA05, 0xA0A), (0xA0F, 0xA10), (0xA13, 0xA28), (0xA2A, 0xA30), (0xA32, 0xA33),
    (0xA35, 0xA36), (0xA38, 0xA39), (0xA3C, 0xA3C), (0xA3E, 0xA42), (0xA47, 0xA48), (0xA4B, 0xA4D),
    (0xA59, 0xA5C), (0xA5E, 0xA5E), (0xA66, 0xA74), (0xA81, 0xA83), (0xA85, 0xA8B), (0xA8D, 0xA8D),
    (0xA8F, 0xA91), (0xA93, 0xAA8), (0xAAA, 0xAB0), (0xAB2, 0xAB3), (0xAB5, 0xAB9), (0xABC, 0xAC5),
    (0xAC7, 0xAC9), (0xACB, 0xACD), (0xAE0, 0xAE0), (0xAE6, 0xAEF), (0xB01, 0xB03), (0xB05, 0xB0C),
    (0xB0F, 0xB10), (0xB13, 0xB28), (0xB2A, 0xB30), (0xB32, 0xB33), (0xB36, 0xB39), (0xB3C, 0xB43),
    (0xB47, 0xB48), (0xB4B, 0xB4D), (0xB56, 0xB57), (0xB5C, 0xB5D), (0xB5F, 0xB61), (0xB66, 0xB6F),
    (0xB82, 0xB83), (0xB85, 0xB8A), (0xB8E, 0xB90), (0xB92, 0xB95), (0xB99, 0xB9A), (0xB9C, 0xB9C),
    (0xB9E, 0xB9F), (0xBA3, 0xBA4), (0xBA8, 0xBAA), (0xBAE, 0xBB5), (0xBB7, 0xBB9), (0xBBE, 0xBC2),
    (0xBC6, 0xBC8), (0xBCA, 0xBCD), (0xBD7, 0xBD7), (0xBE7, 0xBEF), (0xC01, 0xC03), (0xC05, 0xC0C),
    (0xC0E, 0xC10), (0xC12, 0xC28), (0xC2A, 0xC33), (0xC35, 0xC39), (0xC3E, 0xC44), (0xC46, 0xC48),
    (0xC4A, 0xC4D), (0xC55, 0xC56), (0xC60, 0xC61), (0xC66, 0xC6F), (0xC82, 0xC83), (0xC85, 0xC8C),
    (0xC8E, 0xC90), (0xC92, 0xCA8), (0xCAA, 0xCB3), (0xCB5, 0xCB9), (0xCBE, 0xCC4), (0xCC6, 0xCC8),
    (0xCCA, 0xCCD), (0xCD5, 0xCD6), (0xCDE, 0xCDE), (0xCE0, 0xCE1), (0xCE6, 0xCEF), (0xD02, 0xD03),
    (0xD05, 0xD0C), (0xD0E, 0xD10), (0xD12, 0xD28), (0xD2A, 0xD39), (0xD3E, 0xD43), (0xD46, 0xD48),
    (0xD4A, 0xD4D), (0xD57, 0xD57), (0xD60, 0xD61), (0xD66, 0xD6F), (0xE01, 0xE2E), (0xE30, 0xE3A),
    (0xE40, 0xE4E), (0xE50, 0xE59), (0xE81, 0xE82), (0xE84, 0xE84), (0xE87, 0xE88), (0xE8A, 0xE8A),
    (0xE8D, 0xE8D), (0xE94, 0xE97), (0xE99, 0xE9F), (0xEA1, 0xEA3), (0xEA5, 0xEA5), (0xEA7, 0xEA7),
    (0xEAA, 0xEAB), (0xEAD, 0xEAE), (0xEB0, 0xEB9), (0xEBB, 0xEBD), (0xEC0, 0xEC4), (0xEC6, 0xEC6),
    (0xEC8, 0xECD), (0xED0, 0xED9), (0xF18, 0xF19), (0xF20, 0xF29), (0xF35, 0xF35), (0xF37, 0xF37),
    (0xF39, 0xF39), (0xF3E, 0xF47), (0xF49, 0xF69), (0xF71, 0xF84), (0xF86, 0xF8B), (0xF90, 0xF95),
    (0xF97, 0xF97), (0xF99, 0xFAD), (0xFB1, 0xFB7), (0xFB9, 0xFB9), (0x10A0, 0x10C5),
    (0x10D0, 0x10F6), (0x1100, 0x1100), (0x1102, 0x1103), (0x1105, 0x1107), (0x1109, 0x1109),
    (0x110B, 0x110C), (0x110E, 0x1112), (0x113C, 0x113C), (0x113E, 0x113E), (0x1140, 0x1140),
    (0x114C, 0x114C), (0x114E, 0x114E), (0x1150, 0x1150), (0x1154, 0x1155), (0x1159, 0x1159),
    (0x115F, 0x1161), (0x1163, 0x1163), (0x1165, 0x1165), (0x1167, 0x1167), (0x1169, 0x1169),
    (0x116D, 0x116E), (0x1172, 0x1173), (0x1175, 0x1175), (0x119E, 0x119E), (0x11A8, 0x11A8),
    (0x11AB, 0x11AB), (0x11AE, 0x11AF), (0x11B7, 0x11B8), (0x11BA, 0x11BA), (0x11BC, 0x11C2),
    (0x11EB, 0x11EB), (0x11F0, 0x11F0), (0x11F9, 0x11F9), (0x1E00, 0x1E9B), (0x1EA0, 0x1EF9),
    (0x1F00, 0x1F15), (0x1F18, 0x1F1D), (0x1F20, 0x1F45), (0x1F48, 0x1F4D), (0x1F50, 0x1F57),
    (0x1F59, 0x1F59), (0x1F5B, 0x1F5B), (0x1F5D, 0x1F5D), (0x1F5F, 0x1F7D), (0x1F80, 0x1FB4),
    (0x1FB6, 0x1FBC), (0x1FBE, 0x1FBE), (0x1FC2, 0x1FC4), (0x1FC6, 0x1FCC), (0x1FD0, 0x1FD3),
    (0x1FD6, 0x1FDB), (0x1FE0, 0x1FEC), (0x1FF2, 0x1FF4), (0x1FF6, 0x1FFC), (0x20D0, 0x20DC),
    (0x20E1, 0x20E1), (0x2126, 0x2126), (0x212A, 0x212B), (0x212E, 0x212E), (0x2180, 0x2182),
    (0x3005, 0x3005), (0x3007, 0x3007), (0x3021, 0x302F), (0x3031, 0x3035), (0x3041, 0x3094),
    (0x3099, 0x309A), (0x309D, 0x309E), (0x30A1, 0x30FA), (0x30FC, 0x30FE), (0x3105, 0x312C),
    (0x4E00, 0x9FA5), (0xAC00, 0xD7A3),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(body: &[u8]) -> Result<Vec<u8>, ConvertError> {
        let mut out = b"prefix".to_vec();
        match XmlConverter::new().convert(body, &mut out) {
            Ok(()) => {
                assert!(out.starts_with(b"prefix"));
                Ok(out[6..].to_vec())
            }
            Err(error) => {
                assert_eq!(out, b"prefix", "an error must append nothing");
                Err(error)
            }
        }
    }

    /// Renders CBOR as compact JSON text, keeping map order (which
    /// `serde_json::Value` would sort away), so failures are readable.
    fn cbor_as_json(cbor: &[u8]) -> String {
        fn render(value: &ciborium::Value, out: &mut String) {
            match value {
                ciborium::Value::Null => out.push_str("null"),
                ciborium::Value::Text(text) => {
                    out.push_str(&serde_json::to_string(text).expect("strings serialize"))
                }
                ciborium::Value::Array(items) => {
                    out.push('[');
                    for (i, item) in items.iter().enumerate() {
                        out.push_str(if i == 0 { "" } else { "," });
                        render(item, out);
                    }
                    out.push(']');
                }
                ciborium::Value::Map(entries) => {
                    out.push('{');
                    for (i, (key, item)) in entries.iter().enumerate() {
                        out.push_str(if i == 0 { "" } else { "," });
                        render(key, out);
                        out.push(':');
                        render(item, out);
                    }
                    out.push('}');
                }
                other => panic!("unexpected CBOR value {other:?}"),
            }
        }
        let value: ciborium::Value = ciborium::from_reader(cbor).expect("valid CBOR");
        let mut out = String::new();
        render(&value, &mut out);
        out
    }

    macro_rules! golden {
        ($name:literal) => {
            (
                $name,
                include_bytes!(concat!("../../tests/golden/xml/", $name, ".xml")).as_slice(),
                include_bytes!(concat!("../../tests/golden/xml/", $name, ".cbor")).as_slice(),
            )
        };
    }

    /// Each golden file pair was produced by `xmltodict.parse` + `cbor2.dumps`
    /// (tests/golden/xml/generate.py); our bytes must be identical.
    #[test]
    fn golden_documents_match_xmltodict_byte_for_byte() {
        let cases = [
            golden!("seed_records"),
            golden!("declaration_and_bom"),
            golden!("empty_root"),
            golden!("empty_root_open_close"),
            golden!("attributes_only"),
            golden!("attributes_and_text"),
            golden!("attributes_children_text"),
            golden!("repeated_children"),
            golden!("nested_repeats"),
            golden!("mixed_text"),
            golden!("mixed_text_spaces"),
            golden!("cdata"),
            golden!("cdata_and_text"),
            golden!("entities"),
            golden!("namespaces"),
            golden!("comments_and_pis"),
            golden!("numbers_stay_text"),
            golden!("line_endings"),
            golden!("unicode"),
            golden!("long_text"),
            golden!("many_children"),
            golden!("deep_64"),
            golden!("attribute_and_child_order"),
            golden!("child_named_like_text"),
        ];
        let mut converter = XmlConverter::new();
        for (name, xml, cbor) in cases {
            let mut out = Vec::new();
            let result = converter.convert(xml, &mut out);
            assert_eq!(result, Ok(()), "{name}");
            assert_eq!(cbor_as_json(&out), cbor_as_json(cbor), "{name}");
            assert_eq!(out, cbor, "{name}");
        }
    }

    #[test]
    fn good_documents_become_these_values() {
        let cases: &[(&[u8], &str)] = &[
            (b"<a/>", r#"{"a":null}"#),
            (b"<a></a >", r#"{"a":null}"#),
            (b"<a>x<b/>y</a>", r##"{"a":{"b":null,"#text":"xy"}}"##),
            (b"<a x=\"1\"/>", r#"{"a":{"@x":"1"}}"#),
            (b"<n>5</n>", r#"{"n":"5"}"#),
            (b"<a>&amp;lt;</a>", r#"{"a":"&lt;"}"#),
            (b"<a b=\">\" c='\"'/>", r#"{"a":{"@b":">","@c":"\""}}"#),
            (b"<a x=\"&#x20;&lt;\"/>", r#"{"a":{"@x":" <"}}"#),
            (b"<p:a/>", r#"{"p:a":null}"#),
            (b"<a:/>", r#"{"a:":null}"#),
            (b"<:a/>", r#"{":a":null}"#),
            (b"<a-/>", r#"{"a-":null}"#),
            (b"<a\n/>", r#"{"a":null}"#),
            (b"<a>\r</a>", r#"{"a":null}"#),
            (b"<a b=\"\r\"/>", r#"{"a":{"@b":" "}}"#),
            (b"<a>&#x10FFFF;</a>", "{\"a\":\"\u{10FFFF}\"}"),
            (b"<a><!----></a>", r#"{"a":null}"#),
            (b"<?xml-stylesheet href=\"x\"?><a/>", r#"{"a":null}"#),
            (b"<?pi?><a/>", r#"{"a":null}"#),
            (b"<?xml version='1.0'?><a/>", r#"{"a":null}"#),
            (b"<?xml version=\"1.0\" ?><a/>", r#"{"a":null}"#),
            (
                b"<?xml  version=\"1.0\"  encoding=\"UTF-8\"  standalone=\"yes\" ?><a/>",
                r#"{"a":null}"#,
            ),
            (
                b"<?xml version=\"1.0\" encoding=\"US-ASCII\"?><a/>",
                r#"{"a":null}"#,
            ),
            (b"<?xml version=\"1.0\" encoding=\"utf8\"?><a/>", r#"{"a":null}"#),
            (b"<?xml version=\"1.1\"?><a/>", r#"{"a":null}"#),
            (
                b"<?xml version=\"1.0\"?>\n<a/>\n<!-- c -->\n<?p?>\n",
                r#"{"a":null}"#,
            ),
            (b"<a>\xc2\xa0x\xc2\xa0</a>", r#"{"a":"x"}"#),
            // Declared single-byte encodings are decoded as expat does.
            (
                b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><r>\xe9</r>",
                "{\"r\":\"\u{e9}\"}",
            ),
            (
                b"<?xml version=\"1.0\" encoding=\"latin-1\"?><a>\xC3\xA9</a>",
                "{\"a\":\"\u{c3}\u{a9}\"}",
            ),
            (
                b"<?xml version='1.0' encoding='windows-1252'?><a x=\"\x80\">\x93q\x94\xa0</a>",
                "{\"a\":{\"@x\":\"\u{20ac}\",\"#text\":\"\u{201c}q\u{201d}\"}}",
            ),
            (
                b"<?xml version=\"1.0\" encoding=\"iso-8859-15\"?><a>x</a>",
                r#"{"a":"x"}"#,
            ),
            // A byte-order mark is skipped and the declaration followed.
            (
                b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"latin1\"?><a>\xC3\xA9</a>",
                "{\"a\":\"\u{c3}\u{a9}\"}",
            ),
        ];
        for &(xml, json) in cases {
            let cbor = convert(xml);
            assert_eq!(
                cbor.as_deref().map(cbor_as_json),
                Ok(json.to_owned()),
                "{}",
                String::from_utf8_lossy(xml)
            );
        }
    }

    /// UTF-16 bodies, each case checked against `xmltodict.parse` 1.0.4
    /// (expat): with a byte-order mark of either order or without one,
    /// declaring UTF-16 (or UTF-16LE) or nothing: `{"a": "é"}`; declaring
    /// another encoding, an odd length or an unpaired surrogate: refused.
    #[test]
    fn utf16_documents_are_read_as_expat_reads_them() {
        fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
            let mut bytes = Vec::new();
            if bom {
                bytes.extend_from_slice(if big_endian { &[0xFE, 0xFF] } else { &[0xFF, 0xFE] });
            }
            for unit in text.encode_utf16() {
                bytes.extend_from_slice(&if big_endian {
                    unit.to_be_bytes()
                } else {
                    unit.to_le_bytes()
                });
            }
            bytes
        }
        let declared = |name: &str| format!("<?xml version=\"1.0\" encoding=\"{name}\"?><a>é</a>");
        let good = [
            utf16("<a>é</a>", false, true),
            utf16("<a>é</a>", true, true),
            utf16(&declared("UTF-16"), false, true),
            utf16(&declared("UTF-16LE"), false, true),
            utf16(&declared("UTF-16"), false, false),
            utf16(&declared("UTF-16"), true, false),
            utf16("<a>é</a>", false, false),
        ];
        let mut converter = XmlConverter::new();
        for body in &good {
            let mut out = Vec::new();
            assert_eq!(converter.convert(body, &mut out), Ok(()), "{body:?}");
            assert_eq!(cbor_as_json(&out), r#"{"a":"é"}"#, "{body:?}");
        }
        let mut astral = Vec::new();
        converter
            .convert(&utf16("<a>😀</a>", false, true), &mut astral)
            .expect("a surrogate pair");
        assert_eq!(cbor_as_json(&astral), r#"{"a":"😀"}"#);
        let mut odd = utf16("<a>é</a>", false, true);
        odd.push(0);
        let mut unpaired = utf16("<a>", false, true);
        unpaired.extend_from_slice(&[0x00, 0xD8]);
        unpaired.extend_from_slice(&utf16("</a>", false, false));
        for body in [
            utf16(&declared("UTF-8"), false, true),
            utf16(&declared("ISO-8859-1"), false, true),
            odd,
            unpaired,
        ] {
            let mut out = Vec::new();
            assert_eq!(
                converter.convert(&body, &mut out),
                Err(ConvertError::InvalidXml),
                "{body:?}"
            );
            assert!(out.is_empty());
        }
    }

    /// Every case here is refused by `xmltodict.parse` too, except DOCTYPE
    /// (SPEC §1 refuses all DTDs) and the encoding rule.
    #[test]
    fn bad_documents_fail_with_these_errors() {
        use ConvertError::*;
        let cases: &[(&[u8], ConvertError)] = &[
            (b"", InvalidXml),
            (b"  ", InvalidXml),
            (b"\xEF\xBB\xBF", InvalidXml),
            (b"\xEF\xBB\xBF\xEF\xBB\xBF<a/>", InvalidXml),
            (b"<!-- only a comment -->", InvalidXml),
            (b"<a>", InvalidXml),
            (b"<a><b></a>", InvalidXml),
            (b"<a></b>", InvalidXml),
            (b"</a>", InvalidXml),
            (b"<a/>x", InvalidXml),
            (b"x<a/>", InvalidXml),
            (b"<a/><b/>", InvalidXml),
            (b"<a/>&#32;", InvalidXml),
            (b"&#32;<a/>", InvalidXml),
            (b"<a/><![CDATA[]]>", InvalidXml),
            (b"<a>]]></a>", InvalidXml),
            (b" <?xml version=\"1.0\"?><a/>", InvalidXml),
            (b"<a/><?xml version=\"1.0\"?>", InvalidXml),
            (b"<a>\n<?xml version=\"1.0\"?></a>", InvalidXml),
            (b"<?XML version=\"1.0\"?><a/>", InvalidXml),
            (b"<?xml encoding=\"utf-8\"?><a/>", InvalidXml),
            (b"<?xml version=\"1.0\" standalone=\"maybe\"?><a/>", InvalidXml),
            (b"<?xml version=\"1.0\"encoding=\"UTF-8\"?><a/>", InvalidXml),
            (
                b"<?xml version=\"1.0\" encoding=\"UTF-8\" version=\"1.0\"?><a/>",
                InvalidXml,
            ),
            (b"<??><a/>", InvalidXml),
            (b"<a>&#0;</a>", InvalidXml),
            (b"<a>&#X41;</a>", InvalidXml),
            (b"<a>&#xD800;</a>", InvalidXml),
            (b"<a>&#x110000;</a>", InvalidXml),
            (b"<a>&#99999999999999999999;</a>", InvalidXml),
            (b"<a>&#;</a>", InvalidXml),
            (b"<a>&lt</a>", InvalidXml),
            (b"<a>& </a>", InvalidXml),
            (b"<a>&;</a>", InvalidXml),
            (b"<a>&foo;</a>", UnknownEntity),
            (b"<a x=\"&foo;\"/>", UnknownEntity),
            (b"<a x=\"&#1;\"/>", InvalidXml),
            (b"<a b=\"<\"/>", InvalidXml),
            (b"<a><!-- a -- b --></a>", InvalidXml),
            (b"<a><!-- x ---></a>", InvalidXml),
            (b"<a x=\"1\" x=\"2\"/>", InvalidXml),
            (b"<a x=1/>", InvalidXml),
            (b"<a x/>", InvalidXml),
            (b"<a/ >", InvalidXml),
            (b"< a/>", InvalidXml),
            (b"<-a/>", InvalidXml),
            (b"<1a/>", InvalidXml),
            (b"<a 1x=\"1\"/>", InvalidXml),
            (b"<a>\x01</a>", InvalidXml),
            (b"<a>\x00</a>", InvalidXml),
            (b"<a>\xEF\xBF\xBE</a>", InvalidXml),
            (b"<a>\xFF</a>", NotUtf8),
            (b"<!DOCTYPE a><a/>", Doctype),
            (b"<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>", Doctype),
            (
                b"<?xml version=\"1.0\" encoding=\"bogus\"?><a/>",
                UnsupportedEncoding,
            ),
            (
                b"<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>",
                UnsupportedEncoding,
            ),
            (
                b"<?xml version=\"1.0\" encoding=\"US-ASCII\"?><a>\xC3\xA9</a>",
                UnsupportedEncoding,
            ),
            // One of the five bytes windows-1252 leaves undefined.
            (
                b"<?xml version=\"1.0\" encoding=\"cp1252\"?><a>\x81</a>",
                InvalidXml,
            ),
            // A Latin-1 body without the declaration is not UTF-8.
            (b"<a>\xe9</a>", NotUtf8),
        ];
        for &(xml, error) in cases {
            assert_eq!(convert(xml), Err(error), "{}", String::from_utf8_lossy(xml));
        }
    }

    #[test]
    fn depth_64_is_accepted_and_65_is_refused() {
        let nested = |depth: usize| format!("{}x{}", "<d>".repeat(depth), "</d>".repeat(depth));
        assert!(convert(nested(XML_DEPTH_MAX).as_bytes()).is_ok());
        assert_eq!(
            convert(nested(XML_DEPTH_MAX + 1).as_bytes()),
            Err(ConvertError::TooDeep)
        );
        // The bound holds before anything deeper is parsed, even unclosed.
        assert_eq!(
            convert("<d>".repeat(100_000).as_bytes()),
            Err(ConvertError::TooDeep)
        );
    }

    #[test]
    fn a_converter_is_reusable_after_an_error() {
        let mut converter = XmlConverter::new();
        let mut out = Vec::new();
        assert_eq!(
            converter.convert(b"<a><b><c>", &mut out),
            Err(ConvertError::InvalidXml)
        );
        assert!(out.is_empty());
        converter
            .convert(b"<r><c>1</c></r>", &mut out)
            .expect("valid document");
        assert_eq!(cbor_as_json(&out), r#"{"r":{"c":"1"}}"#);
    }

    #[test]
    fn many_distinct_children_keep_document_order() {
        let mut xml = String::from("<a>");
        for i in 0..50 {
            xml.push_str(&format!("<c{}>{}</c{}><c0/>", i % 20, i, i % 20));
        }
        xml.push_str("</a>");
        let json = cbor_as_json(&convert(xml.as_bytes()).expect("valid document"));
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        let map = value["a"].as_object().expect("a map");
        assert_eq!(map.len(), 20);
        assert_eq!(map["c0"].as_array().map(Vec::len), Some(50 + 3));
        assert_eq!(map["c19"], serde_json::json!(["19", "39"]));
    }

    #[test]
    fn forbidden_characters_are_found_anywhere() {
        for at in [0, 1, 62, 63, 64, 65, 127, 128, 199] {
            let mut body = vec![b'x'; 200];
            for byte in (0u8..0x20).chain([0x7F]) {
                body[at] = byte;
                let refused = byte < 0x20 && !is_xml_space(byte);
                assert_eq!(check_characters(&body).is_err(), refused, "{byte:#x} at {at}");
            }
            body[at] = b'x';
            for (tail, refused) in [
                (&b"\xEF\xBF\xBE"[..], true),
                (b"\xEF\xBF\xBF", true),
                (b"\xEF\xBF\xBD", false),
                (b"\xEF\xBB\xBF", false),
            ] {
                let mut with = body.clone();
                with.splice(at.min(197)..at.min(197) + 3, tail.iter().copied());
                assert_eq!(check_characters(&with).is_err(), refused, "{tail:x?} at {at}");
            }
        }
        // A lone lead byte at the very end is not read past.
        assert!(check_characters(b"ab\xEF").is_ok() && check_characters(b"ab\xEF\xBF").is_ok());
    }

    #[test]
    fn ascii_name_characters_match_the_tables() {
        for byte in 0u8..0x80 {
            let c = char::from(byte);
            let start = c.is_ascii_alphabetic() || c == '_' || c == ':';
            let name = start || c.is_ascii_digit() || c == '-' || c == '.';
            assert_eq!(in_ranges(c, NAME_START_RANGES), start, "{byte:#x}");
            assert_eq!(in_ranges(c, NAME_CHAR_RANGES), name, "{byte:#x}");
        }
        for first in 0u8..0x80 {
            for second in [b'a', b'-', b'0', b'.', b':', b' ', b'<', 0x7F] {
                let name = String::from_utf8(vec![first, second]).expect("ASCII");
                assert_eq!(check_name(&name).is_ok(), is_name_by_ranges(&name), "{name:?}");
            }
        }
        assert!(check_name("").is_err());
        assert!(check_name("名前").is_ok() && check_name("a\u{1F600}").is_err());
        assert!(in_ranges('名', NAME_START_RANGES));
        assert!(!in_ranges('\u{1F600}', NAME_START_RANGES));
        assert!(in_ranges('\u{B7}', NAME_CHAR_RANGES) && !in_ranges('\u{B7}', NAME_START_RANGES));
    }
}
