//! Every bound sluice puts on its inputs and its own resources, in one place.
//!
//! A bound that operators may change lives in [`crate::config`] with its
//! default here; the rest are fixed. Units come last in every name.

/// The largest request body accepted (SPEC §1: 254 KiB). A body of exactly
/// this many bytes is accepted; one more is a 413. Each in-flight request may
/// hold this much memory, so it also bounds memory per connection.
pub const BODY_BYTES_MAX_DEFAULT: usize = 254 * 1024;

/// The largest header section before a 431: the header field lines with
/// their CRLFs (RFC 9110 §6.3), not the request line (which has its own
/// limit) nor the empty line that ends the head.
pub const HEADER_SECTION_BYTES_MAX: usize = 16 * 1024;

/// The longest request line before a 414.
pub const REQUEST_LINE_BYTES_MAX: usize = 8 * 1024;

/// The most bytes a request head may take, request line and header section
/// at their limits with their line endings: what a connection may buffer
/// before its head is complete or refused.
pub const HEAD_BYTES_MAX: usize = REQUEST_LINE_BYTES_MAX + 2 + HEADER_SECTION_BYTES_MAX + 2;

/// The most headers one request may carry before a 431. The parser's header
/// array is this long, so it is also a stack cost per connection task.
pub const HEADERS_COUNT_MAX: usize = 64;

/// The deepest XML nesting accepted; the root element is level 1.
pub const XML_DEPTH_MAX: usize = 64;

/// The longest `Authorization` value we try to verify. Real tokens are a few
/// hundred bytes; the bound lets verification decode into stack buffers.
pub const TOKEN_BYTES_MAX: usize = 2048;

/// Clock skew allowed on `exp`, `nbf` and `iat` (SPEC §2).
pub const TOKEN_LEEWAY_SECONDS: i64 = 60;

/// Token lifetimes an operator may ask for (SPEC §2).
pub const TOKEN_DAYS_MIN: u32 = 1;
pub const TOKEN_DAYS_MAX: u32 = 365;

/// The shortest HMAC secret accepted, generated or imported (SPEC §2).
pub const KEY_SECRET_BYTES_MIN: usize = 32;

/// The length of a generated secret.
pub const KEY_SECRET_BYTES_GENERATED: usize = 32;

const _: () = assert!(HEADER_SECTION_BYTES_MAX >= REQUEST_LINE_BYTES_MAX);
const _: () = assert!(KEY_SECRET_BYTES_GENERATED >= KEY_SECRET_BYTES_MIN);
const _: () = assert!(TOKEN_DAYS_MIN <= TOKEN_DAYS_MAX);

/// The largest body limit an operator may configure. Each connection may
/// buffer one body, so this bounds memory per connection.
pub const BODY_BYTES_MAX_CEILING: usize = 64 << 20;

const _: () = assert!(BODY_BYTES_MAX_DEFAULT <= BODY_BYTES_MAX_CEILING);
