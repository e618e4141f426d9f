//! Responses: the exact bytes sluice writes back.
//!
//! Every writer appends one complete response to the caller's buffer (the
//! connection's write buffer, reused across requests), with no formatting
//! machinery: status lines and headers are copied from constants and numbers
//! are written digit by digit. The 202 that answers almost every request is
//! three copies: its status line, this thread's `Date` line of the current
//! second (formatted at most once a second, see [`crate::http::date`]) and
//! the constant rest.
//!
//! Promises:
//! - The status line always says `HTTP/1.1`, also to HTTP/1.0 clients
//!   (RFC 9110 §6.2 lets a server send its own highest minor version).
//! - Every final response (2xx, 4xx, 5xx) carries `Date` as an IMF-fixdate,
//!   right after the status line: RFC 9110 §6.6.1 says an origin server
//!   with a clock must send it. The interim `100 Continue` does not (the
//!   same section lets a 1xx omit it), so it stays one constant copy.
//! - Every response carries `Content-Length` and an explicit `Connection`
//!   header: `close` when the server will close, `keep-alive` otherwise,
//!   because an HTTP/1.0 client only keeps a connection it is told it may.
//! - Every error body is `{"status":N,"error":"kind","message":"…"}`, valid
//!   JSON whatever the strings hold (SPEC §1).
//! - A 401 carries `WWW-Authenticate: Bearer` (RFC 9110 §11.6.1 requires the
//!   challenge), a 405 can carry `Allow` (`POST` on the ingest side, `GET,
//!   HEAD` on the admin listener), a 429 or 503 `Retry-After`,
//!   and a 415 for a content coding `Accept-Encoding: identity` (RFC 9110
//!   §15.5.16 and §12.5.3: it tells the client which coding to send).

use super::date;

/// The interim response to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The status line of the 202; the `Date` line follows it.
const ACCEPTED_STATUS_LINE: &[u8] = b"HTTP/1.1 202 Accepted\r\n";

/// The rest of the 202 on a connection that stays open. The body is empty:
/// SPEC §1 says clients must not need it, and an empty body is the
/// cheapest.
const ACCEPTED_KEEP_ALIVE_REST: &[u8] = b"Content-Length: 0\r\nConnection: keep-alive\r\n\r\n";

/// The rest of the 202 on a connection the server closes after it.
const ACCEPTED_CLOSE_REST: &[u8] = b"Content-Length: 0\r\nConnection: close\r\n\r\n";

/// The most decimal digits a `u64` needs.
const U64_DIGITS_MAX: usize = 20;

/// Optional headers an error response may need.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorExtra {
    /// Sent as `Retry-After` (seconds), for 429 and 503 (SPEC §1).
    pub retry_after_seconds: Option<u32>,
    /// Sent as `Allow`: the methods the target supports, which a 405 must
    /// carry (RFC 9110 §15.5.6).
    pub allow: Option<&'static str>,
    /// Sends `Accept-Encoding: identity`: the one content coding accepted,
    /// for a 415 that refuses another (RFC 9110 §15.5.16).
    pub accept_encoding_identity: bool,
    /// The request was a HEAD: the same header fields, `Content-Length`
    /// included, but no content (RFC 9110 §9.3.2), or the next response
    /// on the connection would be read as the end of this one.
    pub head_request: bool,
}

/// The reason phrase for the statuses sluice sends, from RFC 9110. Other
/// codes get an empty phrase, which RFC 9112 §4 allows.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// Appends `100 Continue`. It is interim: the final response follows later
/// on the same connection.
pub fn write_continue(out: &mut Vec<u8>) {
    out.extend_from_slice(CONTINUE);
}

/// Appends the 202 that acknowledges a stored record.
pub fn write_accepted(out: &mut Vec<u8>, keep_alive: bool) {
    out.extend_from_slice(ACCEPTED_STATUS_LINE);
    date::write_date_line(out);
    out.extend_from_slice(if keep_alive {
        ACCEPTED_KEEP_ALIVE_REST
    } else {
        ACCEPTED_CLOSE_REST
    });
}

/// Appends an error response with the JSON body SPEC §1 defines. `kind` and
/// `message` come from an error type's `kind()` and `message()`; they are
/// escaped anyway, so any string is safe.
///
/// Pass `keep_alive = false` whenever the request's body was not read to its
/// end (a 413 on the declared length, a 417, any framing error): the unread
/// bytes would otherwise be taken for the next request.
pub fn write_error(
    out: &mut Vec<u8>,
    status: u16,
    kind: &str,
    message: &str,
    keep_alive: bool,
    extra: ErrorExtra,
) {
    let body_bytes = b"{\"status\":,\"error\":\"\",\"message\":\"\"}".len()
        + decimal_len(u64::from(status))
        + escaped_len(kind)
        + escaped_len(message);
    write_status_line(out, status);
    out.extend_from_slice(b"Content-Type: application/json\r\nContent-Length: ");
    write_decimal(out, body_bytes as u64);
    out.extend_from_slice(b"\r\n");
    if status == 401 {
        out.extend_from_slice(b"WWW-Authenticate: Bearer\r\n");
    }
    if let Some(methods) = extra.allow {
        out.extend_from_slice(b"Allow: ");
        out.extend_from_slice(methods.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if extra.accept_encoding_identity {
        out.extend_from_slice(b"Accept-Encoding: identity\r\n");
    }
    if let Some(seconds) = extra.retry_after_seconds {
        out.extend_from_slice(b"Retry-After: ");
        write_decimal(out, u64::from(seconds));
        out.extend_from_slice(b"\r\n");
    }
    write_connection_and_end(out, keep_alive);
    if extra.head_request {
        return;
    }
    let body_start = out.len();
    out.extend_from_slice(b"{\"status\":");
    write_decimal(out, u64::from(status));
    out.extend_from_slice(b",\"error\":\"");
    write_escaped(out, kind);
    out.extend_from_slice(b"\",\"message\":\"");
    write_escaped(out, message);
    out.extend_from_slice(b"\"}");
    assert_eq!(
        out.len() - body_start,
        body_bytes,
        "invariant: Content-Length matches the body"
    );
}

/// Appends a response with a body the caller has ready, for the admin
/// listener (metrics, health).
pub fn write_simple(out: &mut Vec<u8>, status: u16, content_type: &str, body: &[u8], keep_alive: bool) {
    write_status_line(out, status);
    out.extend_from_slice(b"Content-Type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    write_decimal(out, body.len() as u64);
    out.extend_from_slice(b"\r\n");
    write_connection_and_end(out, keep_alive);
    out.extend_from_slice(body);
}

/// Appends `HTTP/1.1 NNN Reason\r\n` and, for a final status, the `Date`
/// line.
fn write_status_line(out: &mut Vec<u8>, status: u16) {
    assert!(
        (100..=999).contains(&status),
        "invariant: a status code has three digits"
    );
    out.extend_from_slice(b"HTTP/1.1 ");
    write_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    if status >= 200 {
        date::write_date_line(out);
    }
}

/// Appends the `Connection` header and the empty line that ends the head.
fn write_connection_and_end(out: &mut Vec<u8>, keep_alive: bool) {
    out.extend_from_slice(if keep_alive {
        b"Connection: keep-alive\r\n\r\n".as_slice()
    } else {
        b"Connection: close\r\n\r\n".as_slice()
    });
}

/// Appends `value` in decimal.
fn write_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; U64_DIGITS_MAX];
    let mut start = U64_DIGITS_MAX;
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// How many decimal digits `value` takes.
fn decimal_len(mut value: u64) -> usize {
    let mut digits = 1;
    while value >= 10 {
        value /= 10;
        digits += 1;
    }
    digits
}

/// How a byte of a JSON string is written: as itself, as a two-byte escape
/// (`\"`, `\\`, `\n`, `\r`, `\t`) or as `\u00XX`.
fn escape_of(byte: u8) -> Option<&'static [u8]> {
    match byte {
        b'"' => Some(b"\\\""),
        b'\\' => Some(b"\\\\"),
        b'\n' => Some(b"\\n"),
        b'\r' => Some(b"\\r"),
        b'\t' => Some(b"\\t"),
        _ => None,
    }
}

/// The length of `text` once escaped as the inside of a JSON string.
fn escaped_len(text: &str) -> usize {
    text.bytes()
        .map(|byte| match escape_of(byte) {
            Some(escape) => escape.len(),
            None if byte < 0x20 => b"\\u0000".len(),
            None => 1,
        })
        .sum()
}

/// Appends `text` escaped as the inside of a JSON string (RFC 8259 §7).
/// Non-ASCII text is valid UTF-8 already and passes through unchanged.
fn write_escaped(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in text.bytes() {
        match escape_of(byte) {
            Some(escape) => out.extend_from_slice(escape),
            None if byte < 0x20 => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0x0f)]);
            }
            None => out.push(byte),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).expect("responses are ASCII or UTF-8")
    }

    /// `response` without its `Date` line, after checking that there is
    /// exactly one, right after the status line, showing the current time
    /// as an IMF-fixdate.
    fn undated(response: &[u8]) -> String {
        let text = text(response);
        let (status_line, rest) = text.split_once("\r\n").expect("a status line");
        let (date_line, rest) = rest.split_once("\r\n").expect("a second line");
        let date = date_line
            .strip_prefix("Date: ")
            .unwrap_or_else(|| panic!("Date follows the status line: {text:?}"));
        assert_eq!(date.len(), date::IMF_FIXDATE_BYTES, "{date:?}");
        let shown = chrono::NaiveDateTime::parse_from_str(date, "%a, %d %b %Y %H:%M:%S GMT")
            .unwrap_or_else(|error| panic!("{date:?} is an IMF-fixdate: {error}"))
            .and_utc()
            .timestamp();
        let now = chrono::Utc::now().timestamp();
        assert!((now - 5..=now).contains(&shown), "{date} is now");
        assert!(!rest.contains("Date:"), "one Date line: {text:?}");
        format!("{status_line}\r\n{rest}")
    }

    #[test]
    fn continue_and_accepted_are_exact() {
        let mut out = Vec::new();
        write_continue(&mut out);
        assert_eq!(text(&out), "HTTP/1.1 100 Continue\r\n\r\n");
        let cases = [
            (
                true,
                "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
            ),
            (
                false,
                "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ),
        ];
        for (keep_alive, expected) in cases {
            let mut out = b"previous".to_vec();
            write_accepted(&mut out, keep_alive);
            assert_eq!(undated(&out), format!("previous{expected}"));
            assert_eq!(
                out.len(),
                "previous".len() + expected.len() + date::DATE_LINE_BYTES
            );
        }
    }

    #[test]
    fn errors_are_exact() {
        let none = ErrorExtra::default();
        let cases: &[(u16, &str, &str, bool, ErrorExtra, &str)] = &[
            (
                413,
                "payload-too-large",
                "The request body is larger than the limit.",
                false,
                none,
                "HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\nContent-Length: 97\r\n\
                 Connection: close\r\n\r\n\
                 {\"status\":413,\"error\":\"payload-too-large\",\"message\":\"The request body is larger than the limit.\"}",
            ),
            (
                405,
                "method-not-allowed",
                "Use POST.",
                true,
                ErrorExtra {
                    allow: Some("POST"),
                    ..none
                },
                "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: 65\r\n\
                 Allow: POST\r\nConnection: keep-alive\r\n\r\n\
                 {\"status\":405,\"error\":\"method-not-allowed\",\"message\":\"Use POST.\"}",
            ),
            (
                405,
                "method-not-allowed",
                "Use GET.",
                false,
                ErrorExtra {
                    allow: Some("GET, HEAD"),
                    ..none
                },
                "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\
                 Allow: GET, HEAD\r\nConnection: close\r\n\r\n\
                 {\"status\":405,\"error\":\"method-not-allowed\",\"message\":\"Use GET.\"}",
            ),
            (
                503,
                "shutting-down",
                "Retry.",
                false,
                ErrorExtra {
                    retry_after_seconds: Some(30),
                    ..none
                },
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 57\r\n\
                 Retry-After: 30\r\nConnection: close\r\n\r\n\
                 {\"status\":503,\"error\":\"shutting-down\",\"message\":\"Retry.\"}",
            ),
            (
                401,
                "token-expired",
                "No.",
                true,
                none,
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 54\r\n\
                 WWW-Authenticate: Bearer\r\nConnection: keep-alive\r\n\r\n\
                 {\"status\":401,\"error\":\"token-expired\",\"message\":\"No.\"}",
            ),
            (
                405,
                "method-not-allowed",
                "Use POST.",
                true,
                ErrorExtra {
                    allow: Some("POST"),
                    head_request: true,
                    ..none
                },
                "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: 65\r\n\
                 Allow: POST\r\nConnection: keep-alive\r\n\r\n",
            ),
            (
                415,
                "unsupported-content-encoding",
                "Send it plain.",
                true,
                ErrorExtra {
                    accept_encoding_identity: true,
                    ..none
                },
                "HTTP/1.1 415 Unsupported Media Type\r\nContent-Type: application/json\r\nContent-Length: 80\r\n\
                 Accept-Encoding: identity\r\nConnection: keep-alive\r\n\r\n\
                 {\"status\":415,\"error\":\"unsupported-content-encoding\",\"message\":\"Send it plain.\"}",
            ),
            (
                299,
                "k",
                "m",
                true,
                none,
                "HTTP/1.1 299 \r\nContent-Type: application/json\r\nContent-Length: 40\r\n\
                 Connection: keep-alive\r\n\r\n\
                 {\"status\":299,\"error\":\"k\",\"message\":\"m\"}",
            ),
        ];
        for (status, kind, message, keep_alive, extra, expected) in cases {
            let mut out = Vec::new();
            write_error(&mut out, *status, kind, message, *keep_alive, *extra);
            assert_eq!(undated(&out), *expected);
        }
    }

    /// Splits a response into head and body and checks Content-Length.
    fn body_of(response: &[u8]) -> &[u8] {
        let text = text(response);
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("Content-Length: "))
            .expect("Content-Length");
        assert_eq!(length.parse::<usize>(), Ok(body.len()));
        body.as_bytes()
    }

    #[test]
    fn error_bodies_are_valid_json_whatever_the_strings() {
        let messages = [
            "plain",
            "",
            "quote \" and backslash \\",
            "lines\r\n\tand\u{1}\u{1f}\u{7f}",
            "unicode: é ✓ 𝄞",
        ];
        for message in messages {
            let mut out = Vec::new();
            write_error(&mut out, 400, "kind\"x", message, false, ErrorExtra::default());
            let body: serde_json::Value = serde_json::from_slice(body_of(&out)).expect("valid JSON");
            assert_eq!(
                body,
                serde_json::json!({"status": 400, "error": "kind\"x", "message": message})
            );
        }
        let mut out = Vec::new();
        write_escaped(&mut out, "a\u{1}\n\"");
        assert_eq!(text(&out), "a\\u0001\\n\\\"");
    }

    #[test]
    fn simple_responses_are_exact() {
        let mut out = Vec::new();
        write_simple(&mut out, 200, "text/plain; version=0.0.4", b"up 1\n", true);
        assert_eq!(
            undated(&out),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: 5\r\n\
             Connection: keep-alive\r\n\r\nup 1\n"
        );
        let mut out = Vec::new();
        write_simple(&mut out, 404, "text/plain", b"", false);
        assert_eq!(
            undated(&out),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn reason_phrases_cover_every_status_sent() {
        for status in [
            100, 202, 400, 401, 404, 405, 413, 414, 415, 417, 429, 431, 500, 503, 504,
        ] {
            assert!(!reason_phrase(status).is_empty(), "{status}");
        }
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(reason_phrase(299), "");
    }

    #[test]
    fn decimals_table() {
        for value in [0, 7, 9, 10, 99, 100, 260_096, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            write_decimal(&mut out, value);
            assert_eq!(text(&out), value.to_string());
            assert_eq!(decimal_len(value), value.to_string().len());
        }
    }
}
