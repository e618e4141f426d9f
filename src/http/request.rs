//! The HTTP/1.1 request head: request line, header fields and framing.
//!
//! This module owns the decision "is this head acceptable, and what does it
//! say?". It does no I/O and allocates nothing: [`parse_head`] borrows the
//! connection's read buffer and a caller-owned header array (httparse style),
//! and answers either [`HeadStatus::Partial`] ("read more bytes", never an
//! error) or a [`RequestHead`] whose fields borrow the buffer.
//!
//! Promises (SPEC §1 and §7, RFC 9112):
//! - A request line longer than [`REQUEST_LINE_BYTES_MAX`] is a 414, even
//!   before its line ending has arrived.
//! - A head (request line, header lines and the empty line that ends them)
//!   longer than [`HEADER_SECTION_BYTES_MAX`] bytes, or carrying more than
//!   [`HEADERS_COUNT_MAX`] header fields, is a 431, even while still partial.
//! - Every line must end in CRLF: a bare CR or a bare LF is a 400 (httparse
//!   alone would accept a bare LF), and so is obsolete line folding.
//! - Framing is unambiguous or refused: both `Content-Length` and
//!   `Transfer-Encoding`, a repeated `Content-Length` (even with an equal
//!   value), a `Content-Length` that is not plain decimal digits or does not
//!   fit a `u64`, any transfer coding other than exactly one `chunked`, and
//!   `Transfer-Encoding` on HTTP/1.0 are all 400s.
//! - HTTP/1.1 needs exactly one `Host`; HTTP/1.0 needs none; at most one is
//!   ever accepted. Its value is not interpreted.
//! - `Content-Encoding` is read, not judged: [`RequestHead::content_encoding`]
//!   says whether it names any coding other than `identity`, and the router
//!   answers that with a 415 where SPEC §1 ranks 415 (after 405, 401, 404),
//!   which a head error here would jump ahead of.
//! - Every [`HeadError`] is final for the connection: the caller answers once
//!   and closes, because the byte stream can no longer be trusted.
//!
//! The method is not judged here: the router turns a non-POST method into a
//! 405 on stream paths and a 404 elsewhere.

use std::mem::MaybeUninit;

use crate::limits::{HEADER_SECTION_BYTES_MAX, HEADERS_COUNT_MAX, REQUEST_LINE_BYTES_MAX};

/// The only path prefix that names a stream (SPEC §1). The stream id is the
/// single path segment that follows it.
const STREAM_PATH_PREFIX: &str = "/stream/v0/data/";

/// The outcome of looking at the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadStatus<'b> {
    /// The head has not fully arrived and no limit is exceeded yet: read
    /// more bytes and call again with the longer buffer.
    Partial,
    /// The whole head arrived and is acceptable.
    Complete {
        /// What the head says, borrowing the buffer.
        head: RequestHead<'b>,
        /// How many bytes of the buffer the head used; the body (or the next
        /// pipelined request) starts right after them.
        head_len: usize,
    },
}

/// The request method, reduced to the one distinction the appliance makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `POST`, the only method the ingest API serves. Methods are
    /// case-sensitive (RFC 9110 §9.1), so `post` is [`Method::Other`].
    Post,
    /// Anything else; the raw token is in [`RequestHead::method_raw`].
    Other,
}

/// How the request body is delimited (RFC 9112 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// Neither `Content-Length` nor `Transfer-Encoding`: the body is empty.
    None,
    /// `Content-Length`: exactly this many bytes follow the head. The caller
    /// compares it with the body limit before reading anything (SPEC §1).
    Length(u64),
    /// `Transfer-Encoding: chunked`: decode with
    /// [`crate::http::body::ChunkedDecoder`].
    Chunked,
}

/// What the client expects before it sends the body (RFC 9110 §10.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No expectation, or `100-continue` on HTTP/1.0, which a server must
    /// ignore.
    None,
    /// `100-continue` (case-insensitive): answer `100 Continue` only once the
    /// head passed auth and the declared length fits (SPEC §7).
    Continue,
    /// Any other expectation: answer 417 (SPEC §7).
    Unknown,
}

/// The content coding of the body (RFC 9110 §8.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentEncoding {
    /// No `Content-Encoding`, or one that names only `identity` (any case,
    /// around it optional whitespace; empty list elements are ignored, as
    /// RFC 9110 §5.6.1 says a recipient must): the body is as sent.
    Identity,
    /// Any other coding (`gzip`, `br`, `gzip, identity`, an unknown name):
    /// the appliance decodes none, so the body cannot be read (415).
    Unsupported,
}

/// An acceptable request head. Every slice borrows the read buffer, so the
/// head lives exactly as long as the bytes it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHead<'b> {
    /// The method as the router needs it.
    pub method: Method,
    /// The method token as sent, for logs and for methods we do not serve.
    pub method_raw: &'b str,
    /// The request target as sent, query string included; see
    /// [`stream_id_from_path`].
    pub target: &'b str,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1. httparse refuses
    /// every other version.
    pub version: u8,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// Whether the connection may carry another request after this one:
    /// HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive` (and never with `close`).
    pub keep_alive: bool,
    /// The client's expectation, already reduced per version.
    pub expect: Expect,
    /// The raw `Authorization` value (SPEC §2 verifies it), if sent once.
    pub authorization: Option<&'b [u8]>,
    /// The raw `X-Amperity-Tenant` value, if sent once.
    pub tenant: Option<&'b [u8]>,
    /// The raw `Content-Type` value, parameters included; see
    /// [`content_type_media`] and [`media_is`].
    pub content_type: Option<&'b [u8]>,
    /// What every `Content-Encoding` field together says.
    pub content_encoding: ContentEncoding,
}

/// Why a head was refused. Every variant closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The request line is not `method SP target SP HTTP/1.x`.
    MalformedRequestLine,
    /// The version is neither HTTP/1.0 nor HTTP/1.1. SPEC §1 files it under
    /// "malformed request line" (400) rather than 505.
    UnsupportedVersion,
    /// A header line is not `name: value` with a token name (this includes
    /// whitespace between the name and the colon) or its value holds a
    /// control character.
    MalformedHeader,
    /// A header line starts with a space or tab (obsolete line folding,
    /// RFC 9112 §5.2).
    ObsoleteLineFolding,
    /// A line ends in a CR without LF or an LF without CR.
    BareLineEnding,
    /// An HTTP/1.1 request without `Host` (RFC 9112 §3.2).
    MissingHost,
    /// More than one `Host` field.
    DuplicateHost,
    /// More than one `Authorization`, `X-Amperity-Tenant` or `Content-Type`
    /// field: which one counts would be a guess.
    DuplicateHeader,
    /// `Content-Length` is empty, signed, not decimal digits, a list, or
    /// does not fit in a `u64`.
    InvalidContentLength,
    /// `Content-Length` appears more than once, even with equal values.
    DuplicateContentLength,
    /// `Transfer-Encoding` is anything but a single `chunked` coding
    /// (`gzip, chunked`, `chunked, chunked` and two fields are all refused).
    InvalidTransferEncoding,
    /// `Transfer-Encoding` on an HTTP/1.0 request, whose framing RFC 9112
    /// §6.1 says must be treated as faulty.
    TransferEncodingOnHttp10,
    /// Both `Content-Length` and `Transfer-Encoding` (SPEC §1).
    ConflictingFraming,
    /// The request line is longer than [`REQUEST_LINE_BYTES_MAX`].
    UriTooLong,
    /// The head is longer than [`HEADER_SECTION_BYTES_MAX`].
    HeaderSectionTooLarge,
    /// More than [`HEADERS_COUNT_MAX`] header fields.
    TooManyHeaders,
}

impl HeadError {
    /// The status code to answer with.
    pub fn status(self) -> u16 {
        match self {
            HeadError::UriTooLong => 414,
            HeadError::HeaderSectionTooLarge | HeadError::TooManyHeaders => 431,
            _ => 400,
        }
    }

    /// The machine-readable kind for the error body.
    pub fn kind(self) -> &'static str {
        match self {
            HeadError::MalformedRequestLine => "malformed-request-line",
            HeadError::UnsupportedVersion => "unsupported-http-version",
            HeadError::MalformedHeader => "malformed-header",
            HeadError::ObsoleteLineFolding => "obsolete-line-folding",
            HeadError::BareLineEnding => "bare-line-ending",
            HeadError::MissingHost => "missing-host",
            HeadError::DuplicateHost => "duplicate-host",
            HeadError::DuplicateHeader => "duplicate-header",
            HeadError::InvalidContentLength => "invalid-content-length",
            HeadError::DuplicateContentLength => "duplicate-content-length",
            HeadError::InvalidTransferEncoding => "invalid-transfer-encoding",
            HeadError::TransferEncodingOnHttp10 => "transfer-encoding-on-http-1.0",
            HeadError::ConflictingFraming => "conflicting-framing",
            HeadError::UriTooLong => "uri-too-long",
            HeadError::HeaderSectionTooLarge => "header-section-too-large",
            HeadError::TooManyHeaders => "too-many-headers",
        }
    }

    /// One human sentence for the error body.
    pub fn message(self) -> &'static str {
        match self {
            HeadError::MalformedRequestLine => "The request line is malformed.",
            HeadError::UnsupportedVersion => "Only HTTP/1.0 and HTTP/1.1 are supported.",
            HeadError::MalformedHeader => "A header field is malformed.",
            HeadError::ObsoleteLineFolding => "Header fields must not be folded over several lines.",
            HeadError::BareLineEnding => "Every line of the request head must end in CRLF.",
            HeadError::MissingHost => "An HTTP/1.1 request must carry a Host header.",
            HeadError::DuplicateHost => "The request carries more than one Host header.",
            HeadError::DuplicateHeader => {
                "Authorization, X-Amperity-Tenant and Content-Type may each appear only once."
            }
            HeadError::InvalidContentLength => "Content-Length must be a non-negative decimal integer.",
            HeadError::DuplicateContentLength => "Content-Length may appear only once.",
            HeadError::InvalidTransferEncoding => "The only transfer coding supported is a single chunked.",
            HeadError::TransferEncodingOnHttp10 => "Transfer-Encoding is not allowed on an HTTP/1.0 request.",
            HeadError::ConflictingFraming => {
                "A request must not carry both Content-Length and Transfer-Encoding."
            }
            HeadError::UriTooLong => "The request line is longer than 8 KiB.",
            HeadError::HeaderSectionTooLarge => "The header section is larger than 16 KiB.",
            HeadError::TooManyHeaders => "The request carries more than 64 header fields.",
        }
    }
}

/// Parses the request head at the start of `buf`.
///
/// Call it again with the grown buffer after every read while it answers
/// [`HeadStatus::Partial`]; the limits are checked on partial input too, so
/// a client cannot make the caller buffer more than the limits allow.
///
/// The answer does not depend on how the bytes arrived: a refusal is
/// decided by the shortest prefix of `buf` that is already refused (see
/// [`refuse`]), so the whole head and the same head read in pieces get the
/// same error.
pub fn parse_head<'b>(buf: &'b [u8], headers: &mut HeaderSlots<'b>) -> Result<HeadStatus<'b>, HeadError> {
    let mut request = httparse::Request::new(&mut []);
    let head_len = match request.parse_with_uninit_headers(buf, headers) {
        Ok(httparse::Status::Partial) => {
            check_partial_limits(buf)?;
            return Ok(HeadStatus::Partial);
        }
        Ok(httparse::Status::Complete(head_len)) => head_len,
        Err(_) => return Err(refuse(buf)),
    };
    let line = request_line(&buf[..head_len]);
    check_line_limits(&line)?;
    let line_end = line
        .end
        .expect("invariant: a complete head holds a complete request line");
    // The fields and their CRLFs: the head less its request line (and any
    // empty lines before it) and less the empty line that ends it.
    let fields_len = head_len.saturating_sub(line_end + 2);
    if line.start + fields_len > HEADER_SECTION_BYTES_MAX {
        return Err(HeadError::HeaderSectionTooLarge);
    }
    check_line_endings(&buf[..head_len])?;
    let head = interpret(&request)?;
    Ok(HeadStatus::Complete { head, head_len })
}

/// A head arriving in pieces: [`parse_head`] again only when the bytes
/// that arrived since the last look can change its answer.
///
/// Parsing the whole buffer after every read costs time quadratic in the
/// head's length when a client trickles it a few bytes per packet (a 16 KiB
/// head one byte at a time would be parsed 16,000 times). Most bytes cannot
/// change a `Partial` answer: more of a method or a header name that are
/// token characters, more of a target or a header value in httparse's
/// byte classes. Those are judged in time proportional to their own
/// length; a line end, a space, a colon, a byte outside those classes, or
/// the first byte of a header past the count limit are parsed at once, so
/// every answer comes as early as with a parse after every read (the fuzz
/// target `http_head` checks that both agree after every byte). Limits are
/// checked after every read either way.
#[derive(Debug, Default)]
pub struct HeadProgress {
    /// Bytes already judged `Partial`.
    seen: usize,
    /// Where the last, unfinished line of `buf[..seen]` starts.
    line_start: usize,
    /// The first byte that is not CR or LF (the request line's start), once
    /// seen; empty lines before it are skipped.
    content_start: Option<usize>,
    /// Line ends seen after `content_start`: the request line's, then one
    /// per header field.
    line_ends: usize,
    /// How many times the buffer was parsed.
    parses: usize,
}

impl HeadProgress {
    /// [`parse_head`] on `buf` (the bytes of the head so far, a longer
    /// version of the previous call's `buf`), or `Partial` without a parse
    /// when the new bytes cannot change the answer.
    pub fn parse<'b>(
        &mut self,
        buf: &'b [u8],
        headers: &mut HeaderSlots<'b>,
    ) -> Result<HeadStatus<'b>, HeadError> {
        if self.can_change_answer(buf) {
            self.parses += 1;
            let status = parse_head(buf, headers)?;
            if !matches!(status, HeadStatus::Partial) {
                return Ok(status);
            }
        } else if self.content_start.is_none() {
            // Still only empty lines (before the request line, a skipped
            // parse means the new bytes are empty lines too): the one limit
            // that can apply, without scanning them all again.
            if buf.len() > HEADER_SECTION_BYTES_MAX + 1 {
                return Err(HeadError::HeaderSectionTooLarge);
            }
        } else if buf.len() > REQUEST_LINE_BYTES_MAX {
            // Shorter buffers are within every limit.
            check_partial_limits(buf)?;
        }
        self.advance(buf);
        Ok(HeadStatus::Partial)
    }

    /// How many times [`HeadProgress::parse`] parsed the buffer.
    pub fn parses(&self) -> usize {
        self.parses
    }

    /// Whether `buf[self.seen..]` may turn the `Partial` answer for
    /// `buf[..self.seen]` into another one.
    fn can_change_answer(&self, buf: &[u8]) -> bool {
        let seen = self.seen;
        if seen == 0 || seen >= buf.len() {
            return true;
        }
        let new = &buf[seen..];
        let blank = |byte: &u8| matches!(byte, b'\r' | b'\n');
        if memchr::memchr2(b'\r', b'\n', new).is_some() {
            // Only empty lines so far: they stay `Partial` unless a CR is
            // followed by something other than its LF.
            let only_blank = self.content_start.is_none() && new.iter().all(blank);
            return !only_blank || memchr::memmem::find(&buf[seen - 1..], b"\r\r").is_some();
        }
        if buf[seen - 1] == b'\r' {
            // A CR whose LF did not follow.
            return true;
        }
        let Some(content_start) = self.content_start else {
            // The request line's first bytes.
            return true;
        };
        let allowed: fn(&u8) -> bool = if self.line_ends == 0 {
            let line = &buf[content_start..seen];
            match memchr::memchr_iter(b' ', line).take(2).count() {
                0 => |byte| is_token(*byte),
                1 if line[0] != b' ' => |byte| matches!(byte, b'!'..=b'~' | 0x80..=0xFF),
                // The version: its bytes are checked one by one.
                _ => return true,
            }
        } else {
            if self.line_ends > HEADERS_COUNT_MAX {
                // One header more than the slots hold.
                return true;
            }
            let line = &buf[self.line_start..seen];
            if memchr::memchr(b':', line).is_some() {
                |byte| is_field_value_byte(*byte)
            } else {
                |byte| is_token(*byte)
            }
        };
        !new.iter().all(allowed)
    }

    /// Notes `buf` as judged `Partial`, looking at its new bytes only.
    fn advance(&mut self, buf: &[u8]) {
        let seen = self.seen.min(buf.len());
        let new = &buf[seen..];
        if self.content_start.is_none() {
            self.content_start = new
                .iter()
                .position(|&byte| byte != b'\r' && byte != b'\n')
                .map(|offset| seen + offset);
        }
        if let Some(content_start) = self.content_start {
            let from = content_start.max(seen);
            self.line_ends += memchr::memchr_iter(b'\n', &buf[from..]).count();
        }
        if let Some(lf) = memchr::memrchr(b'\n', new) {
            self.line_start = seen + lf + 1;
        }
        self.seen = buf.len();
    }
}

/// An RFC 9110 token character: what httparse accepts in a method and a
/// header name. The chunked decoder judges trailer field names with it, so
/// a trailer field is held to the head's rules.
pub(crate) fn is_token(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// A byte RFC 9110 §5.5 allows in a field value (HTAB, SP, VCHAR,
/// obs-text): what httparse accepts in a header value, and what the chunked
/// decoder accepts in a trailer field's value.
pub(crate) fn is_field_value_byte(byte: u8) -> bool {
    matches!(byte, b'\t' | b' '..=b'~' | 0x80..=0xFF)
}

/// The limits on a head that has not fully arrived: a request line already
/// too long (414), or more header-section bytes than a head within the
/// limit could hold (431), so a client cannot make the caller buffer more.
/// Both only ever turn from `Ok` to `Err` as the buffer grows.
fn check_partial_limits(buf: &[u8]) -> Result<(), HeadError> {
    let line = request_line(buf);
    check_line_limits(&line)?;
    let section_len = line.start
        + match line.end {
            Some(end) => buf.len() - end,
            None => 0,
        };
    // The section's bytes so far are its fields plus at most one byte of
    // the CRLF that ends the head (else httparse would have completed it).
    if section_len > HEADER_SECTION_BYTES_MAX + 1 {
        return Err(HeadError::HeaderSectionTooLarge);
    }
    Ok(())
}

/// The error for a buffer httparse refuses, decided by the shortest prefix
/// it refuses, `buf[..stop]`: read in pieces, every shorter prefix was
/// `Partial` (or hit a limit first, which this prefix shows too), and the
/// pieces' answer came from a buffer that begins with exactly these bytes.
/// Looking at bytes past `stop` would make the answer depend on how TCP
/// split the request (a bare LF after a bad method byte, a 414 line whose
/// first bytes are already malformed). Runs only on the error path; httparse
/// answers every prefix shorter than `stop` with `Partial`, so a binary
/// search finds it in a few parses of at most the header section's limit.
fn refuse(buf: &[u8]) -> HeadError {
    let parse = |len: usize| {
        let mut headers = header_slots();
        httparse::Request::new(&mut []).parse_with_uninit_headers(&buf[..len], &mut headers)
    };
    let (mut refused, mut partial) = (buf.len(), 0);
    while refused - partial > 1 {
        let middle = partial + (refused - partial) / 2;
        match parse(middle) {
            Err(_) => refused = middle,
            Ok(_) => partial = middle,
        }
    }
    let stop = &buf[..refused];
    if let Err(over_a_limit) = check_partial_limits(stop) {
        return over_a_limit;
    }
    let error = parse(refused).expect_err("invariant: the search ends on a refused prefix");
    classify_parse_error(stop, error)
}

/// Room for the header fields of one head, filled by [`parse_head`]; left
/// uninitialised until then, so each parse does not first clear 2 KiB.
pub type HeaderSlots<'b> = [MaybeUninit<httparse::Header<'b>>; HEADERS_COUNT_MAX];

/// Empty [`HeaderSlots`].
pub fn header_slots<'b>() -> HeaderSlots<'b> {
    [const { MaybeUninit::uninit() }; HEADERS_COUNT_MAX]
}

/// The limits the request line alone decides, in the order its bytes
/// arrive: empty lines before it past the header section's limit (431),
/// then its own length (414).
fn check_line_limits(line: &RequestLine) -> Result<(), HeadError> {
    if line.start > HEADER_SECTION_BYTES_MAX + 1 {
        return Err(HeadError::HeaderSectionTooLarge);
    }
    if line.too_long {
        return Err(HeadError::UriTooLong);
    }
    Ok(())
}

/// Where the request line lies in a buffer that starts a head.
struct RequestLine {
    /// Its first byte: leading empty lines are skipped, as httparse does
    /// (RFC 9112 §2.2 allows a server to ignore them). They count against
    /// the header section's limit, so endless empty lines are bounded too.
    start: usize,
    /// Just past its LF, once that has arrived.
    end: Option<usize>,
    /// Already known to be longer than the limit (414).
    too_long: bool,
}

/// Finds the request line and whether it is already known to be over the
/// limit. The line's length excludes its CRLF; a trailing CR at the very
/// end of the buffer may be the start of the CRLF, so it is not counted
/// until the next byte proves otherwise.
fn request_line(buf: &[u8]) -> RequestLine {
    let start = buf
        .iter()
        .position(|&byte| byte != b'\r' && byte != b'\n')
        .unwrap_or(buf.len());
    let rest = &buf[start..];
    // A line of the longest allowed length plus CRLF fits in this window, so
    // a line with no LF inside it is certainly too long.
    let window = &rest[..rest.len().min(REQUEST_LINE_BYTES_MAX + 2)];
    let lf = memchr::memchr(b'\n', window);
    let line = lf.map_or(window, |lf| &window[..lf]);
    let line_bytes = line.len() - usize::from(line.last() == Some(&b'\r'));
    RequestLine {
        start,
        end: lf.map(|lf| start + lf + 1),
        too_long: line_bytes > REQUEST_LINE_BYTES_MAX,
    }
}

/// Scans a head for a CR not followed by LF, an LF not preceded by CR, and a
/// line that starts with whitespace (obsolete folding).
///
/// On a partial buffer a CR in the last byte is not yet bare: its LF may
/// still be on the way.
fn check_line_endings(head: &[u8]) -> Result<(), HeadError> {
    let mut index = 0;
    while let Some(found) = memchr::memchr2(b'\r', b'\n', &head[index..]) {
        index += found;
        if head[index] == b'\n' {
            return Err(HeadError::BareLineEnding);
        }
        match head.get(index + 1) {
            Some(b'\n') => {
                if matches!(head.get(index + 2), Some(b' ' | b'\t')) {
                    return Err(HeadError::ObsoleteLineFolding);
                }
                index += 2;
            }
            Some(_) => return Err(HeadError::BareLineEnding),
            None => return Ok(()),
        }
    }
    Ok(())
}

/// Turns an httparse error into the most precise [`HeadError`]: a bad line
/// ending or folded line explains many of httparse's errors, so it is looked
/// for first (except behind too many fields, which no line ending explains).
/// This runs only on the error path. The admin listener uses it too, so a
/// malformed admin request is refused in the same words as an ingest one.
pub fn classify_parse_error(buf: &[u8], error: httparse::Error) -> HeadError {
    let kind = match error {
        httparse::Error::TooManyHeaders => return HeadError::TooManyHeaders,
        httparse::Error::Version => HeadError::UnsupportedVersion,
        httparse::Error::HeaderName | httparse::Error::HeaderValue => HeadError::MalformedHeader,
        httparse::Error::Token | httparse::Error::NewLine | httparse::Error::Status => {
            HeadError::MalformedRequestLine
        }
    };
    check_line_endings(buf).err().unwrap_or(kind)
}

/// The header fields the appliance looks at, gathered in one pass.
#[derive(Default)]
struct Fields<'b> {
    /// `Host` fields seen: HTTP/1.1 needs one, nobody may send two.
    host_count: usize,
    /// The one `Content-Length`, already parsed.
    content_length: Option<u64>,
    /// Whether the one `Transfer-Encoding: chunked` was seen.
    chunked: bool,
    /// A `close` option in any `Connection` field.
    connection_close: bool,
    /// A `keep-alive` option in any `Connection` field (matters on 1.0).
    connection_keep_alive: bool,
    /// A `100-continue` expectation was seen.
    expect_continue: bool,
    /// Some other expectation was seen; it wins over `100-continue`.
    expect_unknown: bool,
    /// A `Content-Encoding` named a coding other than `identity`.
    content_coded: bool,
    /// The raw fields handed on to auth and the router.
    authorization: Option<&'b [u8]>,
    tenant: Option<&'b [u8]>,
    content_type: Option<&'b [u8]>,
}

/// Reads the fields out of a head httparse accepted and applies the framing,
/// Host and persistence rules.
fn interpret<'b>(request: &httparse::Request<'_, 'b>) -> Result<RequestHead<'b>, HeadError> {
    let method_raw = request
        .method
        .expect("invariant: httparse sets the method of a complete request");
    let target = request
        .path
        .expect("invariant: httparse sets the path of a complete request");
    let version = request
        .version
        .expect("invariant: httparse sets the version of a complete request");
    let mut fields = Fields::default();
    for header in request.headers.iter() {
        read_field(&mut fields, header.name, header.value)?;
    }
    let framing = match (fields.content_length, fields.chunked) {
        (Some(_), true) => return Err(HeadError::ConflictingFraming),
        (None, true) if version == 0 => return Err(HeadError::TransferEncodingOnHttp10),
        (None, true) => BodyFraming::Chunked,
        (Some(length), false) => BodyFraming::Length(length),
        (None, false) => BodyFraming::None,
    };
    match fields.host_count {
        0 if version == 1 => return Err(HeadError::MissingHost),
        0 | 1 => {}
        _ => return Err(HeadError::DuplicateHost),
    }
    let keep_alive = if version == 1 {
        !fields.connection_close
    } else {
        fields.connection_keep_alive && !fields.connection_close
    };
    let expect = if fields.expect_unknown {
        Expect::Unknown
    } else if fields.expect_continue && version == 1 {
        Expect::Continue
    } else {
        Expect::None
    };
    Ok(RequestHead {
        method: if method_raw == "POST" {
            Method::Post
        } else {
            Method::Other
        },
        method_raw,
        target,
        version,
        framing,
        keep_alive,
        expect,
        authorization: fields.authorization,
        tenant: fields.tenant,
        content_type: fields.content_type,
        content_encoding: if fields.content_coded {
            ContentEncoding::Unsupported
        } else {
            ContentEncoding::Identity
        },
    })
}

/// Folds one header field into `fields`, refusing what cannot be accepted
/// whatever the other fields say.
fn read_field<'b>(fields: &mut Fields<'b>, name: &str, value: &'b [u8]) -> Result<(), HeadError> {
    let is = |wanted: &str| name.eq_ignore_ascii_case(wanted);
    if is("host") {
        fields.host_count += 1;
    } else if is("content-length") {
        if fields.content_length.is_some() {
            return Err(HeadError::DuplicateContentLength);
        }
        fields.content_length = Some(parse_content_length(value)?);
    } else if is("transfer-encoding") {
        // A second field would make the codings a list, like
        // `chunked, chunked`, which is refused.
        if fields.chunked || !trim_ows(value).eq_ignore_ascii_case(b"chunked") {
            return Err(HeadError::InvalidTransferEncoding);
        }
        fields.chunked = true;
    } else if is("connection") {
        for option in value.split(|&byte| byte == b',').map(trim_ows) {
            fields.connection_close |= option.eq_ignore_ascii_case(b"close");
            fields.connection_keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
        }
    } else if is("expect") {
        for expectation in value.split(|&byte| byte == b',').map(trim_ows) {
            if expectation.eq_ignore_ascii_case(b"100-continue") {
                fields.expect_continue = true;
            } else if !expectation.is_empty() {
                fields.expect_unknown = true;
            }
        }
    } else if is("content-encoding") {
        // A list of codings, and several fields make one list (RFC 9110
        // §8.4): one coding that is not `identity` is enough to refuse.
        for coding in value.split(|&byte| byte == b',').map(trim_ows) {
            fields.content_coded |= !coding.is_empty() && !coding.eq_ignore_ascii_case(b"identity");
        }
    } else if is("authorization") {
        set_once(&mut fields.authorization, value)?;
    } else if is("x-amperity-tenant") {
        set_once(&mut fields.tenant, value)?;
    } else if is("content-type") {
        set_once(&mut fields.content_type, value)?;
    }
    Ok(())
}

/// Keeps the first value of a field that must appear at most once.
fn set_once<'b>(slot: &mut Option<&'b [u8]>, value: &'b [u8]) -> Result<(), HeadError> {
    if slot.is_some() {
        return Err(HeadError::DuplicateHeader);
    }
    *slot = Some(value);
    Ok(())
}

/// Parses `1*DIGIT` into a `u64`. Signs, inner spaces, lists and the empty
/// string are refused rather than guessed at (RFC 9112 §6.3 calls an invalid
/// length unrecoverable).
fn parse_content_length(value: &[u8]) -> Result<u64, HeadError> {
    let digits = trim_ows(value);
    if digits.is_empty() {
        return Err(HeadError::InvalidContentLength);
    }
    let mut length: u64 = 0;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return Err(HeadError::InvalidContentLength);
        }
        // A length too large for u64 is still a valid length (RFC 9110
        // §8.6 says to expect large numerals), just over any limit: it
        // saturates, and the body limit answers 413.
        length = length.saturating_mul(10).saturating_add(u64::from(byte - b'0'));
    }
    Ok(length)
}

/// Strips optional whitespace (SP and HTAB) from both ends.
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |last| last + 1);
    &bytes[start..end]
}

/// The media type of a `Content-Type` value: everything before the first
/// `;`, without surrounding whitespace. Parameters such as `charset=utf-8`
/// are dropped because SPEC §1 allows them and the appliance ignores them.
pub fn content_type_media(raw: &[u8]) -> &[u8] {
    let media = match raw.iter().position(|&byte| byte == b';') {
        Some(semicolon) => &raw[..semicolon],
        None => raw,
    };
    trim_ows(media)
}

/// Whether a raw `Content-Type` value names `media` (for example
/// `"application/json"`), ignoring parameters and ASCII case as RFC 9110
/// §8.3.1 says media types compare.
pub fn media_is(raw: &[u8], media: &str) -> bool {
    content_type_media(raw).eq_ignore_ascii_case(media.as_bytes())
}

/// Where a request target points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathMatch<'a> {
    /// `/stream/v0/data/<id>`: the stream id as sent (not percent-decoded;
    /// ids the appliance issues never need encoding).
    Stream(&'a str),
    /// Any other target: 404.
    Unknown,
}

/// Recognises exactly `/stream/v0/data/<id>` with a non-empty id of one path
/// segment. A query string (`?…`) is ignored because clients add cache
/// busters and tracing parameters the API gives no meaning to; a trailing
/// slash or any further segment is not a stream path. The absolute form
/// (`http://host/stream/v0/data/<id>`), which RFC 9112 §3.2.2 says a server
/// must accept, names the same path; its authority is not interpreted, like
/// `Host`.
pub fn stream_id_from_path(target: &str) -> PathMatch<'_> {
    let target = strip_scheme_and_authority(target);
    let path = match target.find('?') {
        Some(question) => &target[..question],
        None => target,
    };
    match path.strip_prefix(STREAM_PATH_PREFIX) {
        Some(id) if !id.is_empty() && !id.contains('/') => PathMatch::Stream(id),
        _ => PathMatch::Unknown,
    }
}

/// The path and query of an absolute-form target (`http://` or `https://`,
/// scheme case-insensitive); any other target as it is.
fn strip_scheme_and_authority(target: &str) -> &str {
    let bytes = target.as_bytes();
    let after_scheme = ["http://", "https://"].iter().find_map(|scheme| {
        let prefix = bytes.get(..scheme.len())?;
        prefix
            .eq_ignore_ascii_case(scheme.as_bytes())
            .then(|| &target[scheme.len()..])
    });
    match after_scheme {
        // The authority ends at the path, or at a query with no path.
        Some(rest) => match rest.find(['/', '?']) {
            Some(end) if rest[end..].starts_with('/') => &rest[end..],
            _ => "",
        },
        None => target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Result<HeadStatus<'_>, HeadError> {
        let mut headers = header_slots();
        parse_head(buf, &mut headers)
    }

    fn head(buf: &[u8]) -> RequestHead<'_> {
        match parse(buf) {
            Ok(HeadStatus::Complete { head, head_len }) => {
                assert_eq!(
                    head_len,
                    buf.len(),
                    "head length of {:?}",
                    String::from_utf8_lossy(buf)
                );
                head
            }
            other => panic!("{:?} for {:?}", other, String::from_utf8_lossy(buf)),
        }
    }

    /// A head with the given request line and extra header lines.
    fn request(line: &str, fields: &str) -> Vec<u8> {
        format!("{line}\r\n{fields}\r\n").into_bytes()
    }

    const POST_11: &str = "POST /stream/v0/data/s1 HTTP/1.1";

    /// Feeds `wire` to a [`HeadProgress`] in pieces ending at `ends`,
    /// checking after every piece that its answer is what a full parse of
    /// the bytes so far gives; returns the final answer and the parses.
    fn trickle(wire: &[u8], ends: impl Iterator<Item = usize>) -> (Result<HeadStatus<'_>, HeadError>, usize) {
        let mut progress = HeadProgress::default();
        for end in ends {
            let mut headers = header_slots();
            let gated = progress.parse(&wire[..end], &mut headers);
            assert_eq!(
                gated,
                parse(&wire[..end]),
                "after {end} bytes of {:?}",
                String::from_utf8_lossy(wire)
            );
            if !matches!(gated, Ok(HeadStatus::Partial)) {
                return (gated, progress.parses());
            }
        }
        (Ok(HeadStatus::Partial), progress.parses())
    }

    #[test]
    fn heads_read_in_pieces_answer_as_early_as_parsing_every_read() {
        let long_value = "v".repeat(3000);
        let many: String = (0..HEADERS_COUNT_MAX).map(|i| format!("X-{i}: a\r\n")).collect();
        let cases: Vec<Vec<u8>> = vec![
            request(POST_11, "Host: a\r\nContent-Length: 2\r\n"),
            request(POST_11, &format!("Host: a\r\nX-Long: {long_value}\r\n")),
            request(POST_11, &many),
            request(POST_11, &format!("{many}X-Extra: b\r\n")),
            b"\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            b"\r\r\nPOST / HTTP/1.1\r\n\r\n".to_vec(),
            b"GE(T / HTTP/1.1\r\n\r\n".to_vec(),
            b"GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            b"GET /a\x01b HTTP/1.1\r\n\r\n".to_vec(),
            b"GET / HTTX/1.1\r\n\r\n".to_vec(),
            b"GET  / HTTP/1.1\r\n\r\n".to_vec(),
            b"POST / HTTP/1.1\r\nHo(st: a\r\n\r\n".to_vec(),
            b"POST / HTTP/1.1\r\nHost: a\x7fb\r\n\r\n".to_vec(),
            b"POST / HTTP/1.1\r\nHost: a\x00b\r\n\r\n".to_vec(),
            b"POST / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n".to_vec(),
            b"POST / HTTP/1.1\r\nHost: a\rb\r\n\r\n".to_vec(),
            b"POST / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n".to_vec(),
            b"POST / HTTP/1.1\r\n: a\r\n\r\n".to_vec(),
            b"POST / HTTP/1.1\r\nHost : a\r\n\r\n".to_vec(),
            b"POST /\xc3\xa9 HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n".to_vec(),
            line_of_length(REQUEST_LINE_BYTES_MAX + 5).into_bytes(),
            "\r\n".repeat(HEADER_SECTION_BYTES_MAX / 2 + 2).into_bytes(),
            format!(
                "POST / HTTP/1.1\r\nX: {}\r\n\r\n",
                "v".repeat(HEADER_SECTION_BYTES_MAX)
            )
            .into_bytes(),
        ];
        for wire in &cases {
            let whole = parse(wire);
            assert_eq!(trickle(wire, 1..=wire.len()).0, whole, "byte by byte");
            for step in [2, 3, 7, 100] {
                let ends = (step..wire.len() + step)
                    .step_by(step)
                    .map(|end| end.min(wire.len()));
                assert_eq!(trickle(wire, ends).0, whole, "{step} bytes at a time");
            }
        }
    }

    #[test]
    fn a_head_trickled_byte_by_byte_is_parsed_about_once_per_line() {
        // A 16 KiB head one byte per read: a parse per line end, space and
        // colon, not one per byte.
        let target = format!("/stream/v0/data/{}", "a".repeat(4000));
        let fields: String = (0..20)
            .map(|i| format!("X-Field-{i}: {}\r\n", "v".repeat(500)))
            .collect();
        let wire = request(
            &format!("POST {target} HTTP/1.1"),
            &format!("Host: a\r\n{fields}"),
        );
        assert!(wire.len() > 14_000);
        let (answer, parses) = trickle(&wire, 1..=wire.len());
        assert!(matches!(answer, Ok(HeadStatus::Complete { .. })), "{answer:?}");
        assert!(parses < 150, "{parses} parses of a {} byte head", wire.len());
        // Empty lines before the request line are not parsed one by one.
        let blank = format!("{}POST / HTTP/1.1\r\nHost: a\r\n\r\n", "\r\n".repeat(4000)).into_bytes();
        let (answer, parses) = trickle(&blank, 1..=blank.len());
        assert!(matches!(answer, Ok(HeadStatus::Complete { .. })), "{answer:?}");
        assert!(parses < 50, "{parses} parses");
    }

    #[test]
    fn good_heads_are_read_field_by_field() {
        let buf = request(
            POST_11,
            "Host: https://tenant.amperity.com\r\nAuthorization: Bearer abc\r\n\
             X-Amperity-Tenant: acme\r\nContent-Type: application/json; charset=utf-8\r\n\
             Content-Length: 42\r\n",
        );
        let got = head(&buf);
        assert_eq!(
            got,
            RequestHead {
                method: Method::Post,
                method_raw: "POST",
                target: "/stream/v0/data/s1",
                version: 1,
                framing: BodyFraming::Length(42),
                keep_alive: true,
                expect: Expect::None,
                authorization: Some(b"Bearer abc"),
                tenant: Some(b"acme"),
                content_type: Some(b"application/json; charset=utf-8"),
                content_encoding: ContentEncoding::Identity,
            }
        );
    }

    #[test]
    fn content_encoding_table() {
        use ContentEncoding::*;
        let cases: &[(&str, ContentEncoding)] = &[
            ("", Identity),
            ("Content-Encoding: identity\r\n", Identity),
            ("Content-Encoding: IDENTITY\r\n", Identity),
            ("Content-Encoding: \t Identity  \r\n", Identity),
            ("Content-Encoding: identity, identity\r\n", Identity),
            (
                "Content-Encoding: identity\r\ncontent-encoding: identity\r\n",
                Identity,
            ),
            ("Content-Encoding: \r\n", Identity),
            ("Content-Encoding: ,identity,\r\n", Identity),
            ("Content-Encoding: gzip\r\n", Unsupported),
            ("Content-Encoding: br\r\n", Unsupported),
            ("Content-Encoding: GZIP\r\n", Unsupported),
            ("Content-Encoding: gzip, identity\r\n", Unsupported),
            ("Content-Encoding: identity, deflate\r\n", Unsupported),
            (
                "Content-Encoding: identity\r\nContent-Encoding: zstd\r\n",
                Unsupported,
            ),
            ("Content-Encoding: identityx\r\n", Unsupported),
            ("Content-Encoding: identity;q=1\r\n", Unsupported),
            ("Content-Encoding: x-unknown\r\n", Unsupported),
        ];
        for (fields, encoding) in cases {
            let buf = request(POST_11, &format!("Host: a\r\n{fields}"));
            assert_eq!(head(&buf).content_encoding, *encoding, "{fields:?}");
        }
    }

    #[test]
    fn framing_and_persistence_table() {
        use BodyFraming::*;
        let cases: &[(&str, &str, BodyFraming, bool)] = &[
            (POST_11, "Host: a\r\n", None, true),
            (POST_11, "Host: a\r\nContent-Length: 0\r\n", Length(0), true),
            (POST_11, "Host: a\r\nContent-Length: 0005\r\n", Length(5), true),
            (POST_11, "Host: a\r\nContent-Length:  7 \r\n", Length(7), true),
            (
                POST_11,
                "Host: a\r\ncontent-length: 18446744073709551615\r\n",
                Length(u64::MAX),
                true,
            ),
            // Past u64: still a length, saturated (and so over any limit).
            (
                POST_11,
                "Host: a\r\nContent-Length: 99999999999999999999999999\r\n",
                Length(u64::MAX),
                true,
            ),
            (
                POST_11,
                "Host: a\r\nTransfer-Encoding: chunked\r\n",
                Chunked,
                true,
            ),
            (
                POST_11,
                "Host: a\r\nTransfer-Encoding: CHUNKED\r\n",
                Chunked,
                true,
            ),
            (POST_11, "Host: a\r\nConnection: close\r\n", None, false),
            (
                POST_11,
                "Host: a\r\nConnection: keep-alive, Close\r\n",
                None,
                false,
            ),
            (POST_11, "Host: a\r\nConnection: Upgrade\r\n", None, true),
            ("POST / HTTP/1.0", "", None, false),
            ("POST / HTTP/1.0", "Host: a\r\n", None, false),
            ("POST / HTTP/1.0", "Connection: Keep-Alive\r\n", None, true),
            (
                "POST / HTTP/1.0",
                "Connection: keep-alive\r\nConnection: close\r\n",
                None,
                false,
            ),
            ("POST / HTTP/1.0", "Content-Length: 3\r\n", Length(3), false),
        ];
        for (line, fields, framing, keep_alive) in cases {
            let buf = request(line, fields);
            let got = head(&buf);
            assert_eq!(
                (got.framing, got.keep_alive),
                (*framing, *keep_alive),
                "{line} {fields:?}"
            );
        }
    }

    #[test]
    fn expect_table() {
        let cases: &[(&str, &str, Expect)] = &[
            (POST_11, "", Expect::None),
            (POST_11, "Expect: 100-continue\r\n", Expect::Continue),
            (POST_11, "Expect: 100-Continue\r\n", Expect::Continue),
            (POST_11, "Expect:  100-CONTINUE  \r\n", Expect::Continue),
            (POST_11, "Expect: \r\n", Expect::None),
            (POST_11, "Expect: 200-ok\r\n", Expect::Unknown),
            (POST_11, "Expect: 100-continue, foo\r\n", Expect::Unknown),
            (
                POST_11,
                "Expect: 100-continue\r\nExpect: foo\r\n",
                Expect::Unknown,
            ),
            ("POST / HTTP/1.0", "Expect: 100-continue\r\n", Expect::None),
            ("POST / HTTP/1.0", "Expect: foo\r\n", Expect::Unknown),
        ];
        for (line, fields, expect) in cases {
            let host = if line.ends_with("1.1") { "Host: a\r\n" } else { "" };
            let buf = request(line, &format!("{host}{fields}"));
            assert_eq!(head(&buf).expect, *expect, "{fields:?}");
        }
    }

    #[test]
    fn methods_and_targets_are_passed_through() {
        let got = head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(
            (got.method, got.method_raw, got.target),
            (Method::Other, "GET", "/metrics?x=1")
        );
        let got = head(b"post / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!((got.method, got.method_raw), (Method::Other, "post"));
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        let got = head(b"\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(got.method, Method::Post);
    }

    #[test]
    fn bad_heads_table() {
        use HeadError::*;
        let cases: &[(&[u8], HeadError)] = &[
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", ConflictingFraming),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", ConflictingFraming),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", DuplicateContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", DuplicateContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", InvalidContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", InvalidContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", InvalidContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", InvalidContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", InvalidContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", InvalidContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", InvalidTransferEncoding),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", InvalidTransferEncoding),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", InvalidTransferEncoding),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", InvalidTransferEncoding),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", TransferEncodingOnHttp10),
            (b"POST / HTTP/1.1\r\nHost: a\r\nX-Long: a\r\n b\r\n\r\n", ObsoleteLineFolding),
            (b"POST / HTTP/1.1\r\nHost: a\r\nX-Long: a\r\n\tb\r\n\r\n", ObsoleteLineFolding),
            (b"POST / HTTP/1.1\nHost: a\n\n", BareLineEnding),
            (b"POST / HTTP/1.1\r\nHost: a\n\r\n", BareLineEnding),
            (b"POST / HTTP/1.1\r\nHost: a\r\n\n", BareLineEnding),
            (b"POST / HTTP/1.1\rHost: a\r\n\r\n", BareLineEnding),
            (b"POST / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", BareLineEnding),
            (b"POST / HTTP/1.1\r\nHost: a\r\nX: b\rc\r\n\r\n", BareLineEnding),
            (b"POST / HTTP/1.1\r\n\r\n", MissingHost),
            (b"POST / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", DuplicateHost),
            (b"POST / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", DuplicateHost),
            (b"POST / HTTP/1.1\r\nHost: a\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", DuplicateHeader),
            (b"POST / HTTP/1.1\r\nHost: a\r\nX-Amperity-Tenant: a\r\nx-amperity-tenant: a\r\n\r\n", DuplicateHeader),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Type: a\r\nContent-Type: a\r\n\r\n", DuplicateHeader),
            (b"POST / HTTP/2.0\r\nHost: a\r\n\r\n", UnsupportedVersion),
            (b"POST / HTTP/1.2\r\nHost: a\r\n\r\n", UnsupportedVersion),
            (b"POST / FOO/1.1\r\nHost: a\r\n\r\n", UnsupportedVersion),
            (b"POST /\r\n\r\n", MalformedRequestLine),
            (b"POST / \r\n\r\n", UnsupportedVersion),
            (b"POST  / HTTP/1.1\r\nHost: a\r\n\r\n", MalformedRequestLine),
            (b"PO(ST / HTTP/1.1\r\nHost: a\r\n\r\n", MalformedRequestLine),
            (b" POST / HTTP/1.1\r\nHost: a\r\n\r\n", MalformedRequestLine),
            (b"POST / HTTP/1.1\r\nHost : a\r\n\r\n", MalformedHeader),
            (b"POST / HTTP/1.1\r\nHost\t: a\r\n\r\n", MalformedHeader),
            (b"POST / HTTP/1.1\r\nHost a\r\n\r\n", MalformedHeader),
            (b"POST / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", MalformedHeader),
            (b"POST / HTTP/1.1\r\n: a\r\n\r\n", MalformedHeader),
        ];
        for (buf, error) in cases {
            assert_eq!(parse(buf), Err(*error), "{:?}", String::from_utf8_lossy(buf));
            assert_eq!(error.status(), 400);
        }
    }

    #[test]
    fn errors_have_status_kind_and_message() {
        use HeadError::*;
        let all = [
            MalformedRequestLine,
            UnsupportedVersion,
            MalformedHeader,
            ObsoleteLineFolding,
            BareLineEnding,
            MissingHost,
            DuplicateHost,
            DuplicateHeader,
            InvalidContentLength,
            DuplicateContentLength,
            InvalidTransferEncoding,
            TransferEncodingOnHttp10,
            ConflictingFraming,
            UriTooLong,
            HeaderSectionTooLarge,
            TooManyHeaders,
        ];
        let mut kinds: Vec<&str> = all.iter().map(|error| error.kind()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), all.len(), "kinds are unique");
        for error in all {
            assert!(error.message().ends_with('.'), "{error:?}");
            assert!(
                error
                    .kind()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-' || b.is_ascii_digit() || b == b'.')
            );
        }
        assert_eq!(UriTooLong.status(), 414);
        assert_eq!(HeaderSectionTooLarge.status(), 431);
        assert_eq!(TooManyHeaders.status(), 431);
    }

    /// A head with `count` header fields in total, Host included.
    fn head_with_fields(count: usize) -> Vec<u8> {
        let mut fields = String::from("Host: a\r\n");
        for index in 1..count {
            fields.push_str(&format!("X-F{index}: v\r\n"));
        }
        request(POST_11, &fields)
    }

    #[test]
    fn header_count_limit() {
        assert_eq!(head(&head_with_fields(HEADERS_COUNT_MAX)).version, 1);
        assert_eq!(
            parse(&head_with_fields(HEADERS_COUNT_MAX + 1)),
            Err(HeadError::TooManyHeaders)
        );
        // The count is refused before the head is complete.
        let mut partial = head_with_fields(HEADERS_COUNT_MAX + 1);
        partial.truncate(partial.len() - 2);
        assert_eq!(parse(&partial), Err(HeadError::TooManyHeaders));
    }

    /// A head whose header section (its field lines with their CRLFs) is
    /// exactly `section` bytes; one padding field fills it.
    fn head_with_section(line: &str, section: usize) -> Vec<u8> {
        let fixed = "Host: a\r\nX-Pad: \r\n".len();
        let fields = format!("Host: a\r\nX-Pad: {}\r\n", "p".repeat(section - fixed));
        assert_eq!(fields.len(), section);
        request(line, &fields)
    }

    #[test]
    fn header_section_limit() {
        // The section is the fields: the request line does not count.
        let exact = head_with_section(POST_11, HEADER_SECTION_BYTES_MAX);
        assert_eq!(head(&exact).version, 1);
        let longest_line = line_of_length(REQUEST_LINE_BYTES_MAX);
        let both_at_limit = head_with_section(&longest_line, HEADER_SECTION_BYTES_MAX);
        assert_eq!(head(&both_at_limit).version, 1);
        let over = head_with_section(POST_11, HEADER_SECTION_BYTES_MAX + 1);
        assert_eq!(parse(&over), Err(HeadError::HeaderSectionTooLarge));
        // Still partial but already over the limit: refused without waiting
        // (the section so far is its fields plus at most one byte of the
        // final CRLF, so one byte past that is certainly too many).
        let line_end = POST_11.len() + 2;
        assert_eq!(
            parse(&over[..line_end + HEADER_SECTION_BYTES_MAX + 2]),
            Err(HeadError::HeaderSectionTooLarge)
        );
        assert_eq!(
            parse(&over[..line_end + HEADER_SECTION_BYTES_MAX + 1]),
            Ok(HeadStatus::Partial)
        );
        // Endless empty lines before the request line are bounded too.
        let blank = b"\r\n".repeat(HEADER_SECTION_BYTES_MAX / 2);
        assert_eq!(parse(&blank), Ok(HeadStatus::Partial));
        assert_eq!(
            parse(&[&blank[..], b"\r\n"].concat()),
            Err(HeadError::HeaderSectionTooLarge)
        );
        // ...and they are refused before a too long request line after
        // them, whole as byte by byte.
        let long = line_of_length(REQUEST_LINE_BYTES_MAX + 1);
        let both = [&blank[..], b"\r\n", long.as_bytes(), b"\r\nHost: a\r\n\r\n"].concat();
        assert_eq!(parse(&both), Err(HeadError::HeaderSectionTooLarge));
    }

    /// A request line of exactly `length` bytes, CRLF excluded.
    fn line_of_length(length: usize) -> String {
        let fixed = "POST /".len() + " HTTP/1.1".len();
        format!("POST /{} HTTP/1.1", "a".repeat(length - fixed))
    }

    #[test]
    fn request_line_limit() {
        let exact = request(&line_of_length(REQUEST_LINE_BYTES_MAX), "Host: a\r\n");
        assert_eq!(head(&exact).version, 1);
        let over = request(&line_of_length(REQUEST_LINE_BYTES_MAX + 1), "Host: a\r\n");
        assert_eq!(parse(&over), Err(HeadError::UriTooLong));
        // Partial lines: 8 KiB of line is not yet too long, one more byte is.
        let line = line_of_length(REQUEST_LINE_BYTES_MAX + 1).into_bytes();
        assert_eq!(parse(&line[..REQUEST_LINE_BYTES_MAX]), Ok(HeadStatus::Partial));
        assert_eq!(
            parse(&line[..REQUEST_LINE_BYTES_MAX + 1]),
            Err(HeadError::UriTooLong)
        );
        // A CR right after 8 KiB may be the line's end, so wait for its LF.
        let mut cr = line_of_length(REQUEST_LINE_BYTES_MAX).into_bytes();
        cr.push(b'\r');
        assert_eq!(parse(&cr), Ok(HeadStatus::Partial));
        assert_eq!(HeadError::UriTooLong.status(), 414);
    }

    #[test]
    fn partial_heads_wait_for_more_bytes() {
        let buf = request(POST_11, "Host: a\r\nContent-Length: 3\r\n");
        for end in 0..buf.len() {
            assert_eq!(
                parse(&buf[..end]),
                Ok(HeadStatus::Partial),
                "prefix of {end} bytes"
            );
        }
        let mut with_body = buf.clone();
        with_body.extend_from_slice(b"abcPOST");
        match parse(&with_body) {
            Ok(HeadStatus::Complete { head_len, .. }) => assert_eq!(head_len, buf.len()),
            other => panic!("{other:?}"),
        }
    }

    /// What the connection sees when `buf` arrives one byte at a time: the
    /// first answer that is not `Partial`.
    fn parse_bytewise(buf: &[u8]) -> Result<HeadStatus<'_>, HeadError> {
        for end in 1..=buf.len() {
            match parse(&buf[..end]) {
                Ok(HeadStatus::Partial) => {}
                answer => return answer,
            }
        }
        Ok(HeadStatus::Partial)
    }

    #[test]
    fn refusals_do_not_depend_on_how_the_bytes_arrive() {
        // Found by fuzzing: a bare LF after a bad method byte. The first byte
        // alone is already refused, so that is the answer either way.
        let bad_method = b"=\x9e\n";
        assert_eq!(parse(&bad_method[..1]), Err(HeadError::MalformedRequestLine));
        assert_eq!(parse(bad_method), Err(HeadError::MalformedRequestLine));
        // A request line over the limit whose target is malformed early: a
        // 400 from its first bytes, not a 414 only when it arrives whole.
        let long = format!(
            "POST /a\x01{} HTTP/1.1\r\nHost: a\r\n\r\n",
            "b".repeat(REQUEST_LINE_BYTES_MAX)
        );
        assert_eq!(
            parse(&long.as_bytes()[..10]),
            Err(HeadError::MalformedRequestLine)
        );
        assert_eq!(parse(long.as_bytes()), Err(HeadError::MalformedRequestLine));
        // ...and the other way round: too long first, malformed after.
        let late = format!(
            "POST /{}\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
            "b".repeat(REQUEST_LINE_BYTES_MAX)
        );
        assert_eq!(parse(late.as_bytes()), Err(HeadError::UriTooLong));
        // A head over the section limit with a bad field beyond the limit.
        let big = format!(
            "POST / HTTP/1.1\r\nHost: a\r\nX-Pad: {}\r\nBad Field: x\r\n\r\n",
            "p".repeat(HEADER_SECTION_BYTES_MAX)
        );
        assert_eq!(parse(big.as_bytes()), Err(HeadError::HeaderSectionTooLarge));
        let line_end = "POST / HTTP/1.1\r\n".len();
        assert_eq!(
            parse(&big.as_bytes()[..line_end + HEADER_SECTION_BYTES_MAX + 2]),
            Err(HeadError::HeaderSectionTooLarge)
        );
    }

    /// Mutations of a good head must never panic, any head accepted still
    /// ends every line in CRLF, and the answer is the same when the bytes
    /// arrive one at a time.
    #[test]
    fn mutated_heads_never_panic() {
        let good = request(
            POST_11,
            "Host: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n",
        );
        let replacements = [
            b'\r', b'\n', b' ', b'\t', b':', b'\x00', b'\xff', b'a', b'/', b'1',
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut buf = good.clone();
            for _ in 0..1 + state % 3 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state % buf.len() as u64) as usize;
                buf[at] = replacements[(state >> 32) as usize % replacements.len()];
            }
            let whole = parse(&buf);
            if let Ok(HeadStatus::Complete { head_len, .. }) = whole {
                assert!(head_len <= buf.len());
                check_line_endings(&buf[..head_len]).expect("accepted heads use CRLF only");
            }
            if state % 8 == 0 {
                assert_eq!(parse_bytewise(&buf), whole, "{:?}", String::from_utf8_lossy(&buf));
            }
        }
    }

    #[test]
    fn content_type_media_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"application/json", b"application/json"),
            (b"application/json; charset=utf-8", b"application/json"),
            (b"  Application/JSON ;charset=utf-8", b"Application/JSON"),
            (b"text/xml;", b"text/xml"),
            (b"", b""),
            (b";a=b", b""),
        ];
        for (raw, media) in cases {
            assert_eq!(content_type_media(raw), *media, "{raw:?}");
        }
        assert!(media_is(b"Application/Json; charset=UTF-8", "application/json"));
        assert!(media_is(b"text/xml", "text/xml"));
        assert!(!media_is(b"application/json-seq", "application/json"));
        assert!(!media_is(b"application/jso", "application/json"));
        assert!(!media_is(b"", "application/json"));
    }

    #[test]
    fn stream_path_table() {
        let cases: &[(&str, PathMatch)] = &[
            ("/stream/v0/data/abc", PathMatch::Stream("abc")),
            ("/stream/v0/data/ps-1a2b", PathMatch::Stream("ps-1a2b")),
            ("/stream/v0/data/abc?x=1&y", PathMatch::Stream("abc")),
            ("/stream/v0/data/abc?", PathMatch::Stream("abc")),
            ("/stream/v0/data/", PathMatch::Unknown),
            ("/stream/v0/data/?x", PathMatch::Unknown),
            ("/stream/v0/data", PathMatch::Unknown),
            ("/stream/v0/data/abc/", PathMatch::Unknown),
            ("/stream/v0/data/abc/def", PathMatch::Unknown),
            ("/stream/v1/data/abc", PathMatch::Unknown),
            ("/Stream/v0/data/abc", PathMatch::Unknown),
            ("//stream/v0/data/abc", PathMatch::Unknown),
            ("http://host/stream/v0/data/abc", PathMatch::Stream("abc")),
            ("HTTPS://host:8080/stream/v0/data/abc?x", PathMatch::Stream("abc")),
            ("http://host", PathMatch::Unknown),
            ("http://host?/stream/v0/data/abc", PathMatch::Unknown),
            ("http://host/stream/v0/data/", PathMatch::Unknown),
            ("ftp://host/stream/v0/data/abc", PathMatch::Unknown),
            ("*", PathMatch::Unknown),
            ("/", PathMatch::Unknown),
        ];
        for (target, expected) in cases {
            assert_eq!(stream_id_from_path(target), *expected, "{target}");
        }
    }
}
