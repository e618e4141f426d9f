//! Body converters: a JSON body becomes one NDJSON line, an XML body one CBOR
//! data item (SPEC §1 body rules, §4 XML to CBOR).
//!
//! This module owns the decision "is this body acceptable, and what exactly
//! do we store for it". It promises that a converter either appends exactly
//! one complete record to the caller's buffer and returns `Ok`, or appends
//! nothing and returns a [`ConvertError`]; it never panics on any input, never
//! recurses on the input's nesting, and knows nothing of HTTP (the caller maps
//! every error to a 400).

pub mod json;
pub mod xml;

pub use json::JsonConverter;
pub use xml::XmlConverter;

/// Why a body was refused. Small and `Copy` so the hot path can return it
/// without allocating; the HTTP layer turns it into a 400 with
/// [`ConvertError::kind`] and [`ConvertError::message`] at the last moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvertError {
    /// The body is not valid UTF-8 (both formats require it).
    NotUtf8,
    /// The body is not one syntactically valid JSON value (this includes an
    /// empty body, a number out of `f64` range and an unpaired surrogate
    /// escape, all of which `serde_json` refuses too).
    InvalidJson,
    /// The body is valid JSON but its single value is not an object.
    NotAnObject,
    /// Something other than whitespace follows the first JSON value, such as
    /// a second value (NDJSON is one record per request, not several).
    TrailingData,
    /// The body nests deeper than the format's bound
    /// ([`json::JSON_DEPTH_MAX`] or [`crate::limits::XML_DEPTH_MAX`]).
    TooDeep,
    /// The body is not one well-formed XML document.
    InvalidXml,
    /// The XML document has a DOCTYPE; DTDs (and so entity expansion) are
    /// refused outright so no document can define its own entities.
    Doctype,
    /// The XML document uses an entity other than the five predefined ones.
    UnknownEntity,
    /// The XML declaration names an encoding other than UTF-8 and the body
    /// is not plain ASCII, so reading it as UTF-8 could change its meaning.
    UnsupportedEncoding,
    /// A JSON number is grammatical but outside the range of an `f64`
    /// (`1E400`), which `serde_json` refuses and so does sluice.
    NumberOutOfRange,
}

impl ConvertError {
    /// A stable, machine-readable name for the error body's `error` field.
    pub fn kind(self) -> &'static str {
        match self {
            ConvertError::NotUtf8 => "not-utf8",
            ConvertError::InvalidJson => "invalid-json",
            ConvertError::NotAnObject => "not-an-object",
            ConvertError::TrailingData => "trailing-data",
            ConvertError::TooDeep => "too-deep",
            ConvertError::InvalidXml => "invalid-xml",
            ConvertError::Doctype => "doctype-forbidden",
            ConvertError::UnknownEntity => "unknown-entity",
            ConvertError::UnsupportedEncoding => "unsupported-encoding",
            ConvertError::NumberOutOfRange => "number-out-of-range",
        }
    }

    /// One human sentence for the error body's `message` field.
    pub fn message(self) -> &'static str {
        match self {
            ConvertError::NotUtf8 => "The body is not valid UTF-8.",
            ConvertError::InvalidJson => "The body is not valid JSON.",
            ConvertError::NotAnObject => "The body must be a single JSON object.",
            ConvertError::TrailingData => "The body continues after its first JSON value.",
            ConvertError::TooDeep => "The body nests deeper than sluice accepts.",
            ConvertError::InvalidXml => "The body is not a well-formed XML document.",
            ConvertError::Doctype => "XML documents with a DOCTYPE are not accepted.",
            ConvertError::UnknownEntity => "The XML document uses an undefined entity.",
            ConvertError::UnsupportedEncoding => {
                "The XML document declares an encoding sluice does not read (UTF-8, UTF-16, ISO-8859-1 and windows-1252 are read)."
            }
            ConvertError::NumberOutOfRange => {
                "A number in the body is beyond the range of a 64-bit float (about 1.8e308)."
            }
        }
    }
}

impl std::fmt::Display for ConvertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ConvertError {}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ConvertError; 10] = [
        ConvertError::NotUtf8,
        ConvertError::InvalidJson,
        ConvertError::NotAnObject,
        ConvertError::TrailingData,
        ConvertError::TooDeep,
        ConvertError::InvalidXml,
        ConvertError::Doctype,
        ConvertError::UnknownEntity,
        ConvertError::UnsupportedEncoding,
        ConvertError::NumberOutOfRange,
    ];

    #[test]
    fn kinds_are_unique_kebab_case_and_messages_are_sentences() {
        let mut seen = std::collections::HashSet::new();
        for error in ALL {
            let kind = error.kind();
            assert!(seen.insert(kind), "duplicate kind {kind}");
            assert!(
                kind.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-' || b.is_ascii_digit()),
                "{kind}"
            );
            let message = error.message();
            assert!(message.ends_with('.'), "{message}");
            assert!(message.starts_with(|c: char| c.is_ascii_uppercase()), "{message}");
        }
    }
}
