//! HS256 access tokens (SPEC §2): verifying them on the ingest hot path and
//! minting them for the operator.
//!
//! [`verify`] answers one question per request: does this `Authorization`
//! value carry a token that a live `stream-write` key of the tenant named in
//! `X-Amperity-Tenant` signed, and is it valid now? It promises:
//!
//! - **No heap allocation and no lock on the accepting path.** The three
//!   base64url segments are decoded into stack buffers sized from
//!   [`TOKEN_BYTES_MAX`], and the JSON is read with `serde_json::from_slice`
//!   into structs of borrowed `&str` fields. Measured once by hand with a
//!   counting allocator: zero allocations per accepted token after the
//!   first call. A token whose JSON is refused costs two small allocations,
//!   because `serde_json` boxes its error values; that is the price of not
//!   writing our own JSON reader.
//! - **The signature is checked before any claim is trusted**, in constant
//!   time (`ring::hmac::verify`). Only the protected header is read before
//!   that, because it names the key.
//! - **Every rejection is a small `Copy` [`AuthError`]**; the caller maps all
//!   of them to 401 and writes [`AuthError::kind`] and [`AuthError::message`]
//!   into the error body.
//!
//! Decisions where the brief left room, recorded here so they are not
//! re-litigated:
//!
//! - The scheme `Bearer` is matched ASCII case-insensitively and must be
//!   followed by one or more spaces or tabs; leading and trailing spaces and
//!   tabs around the whole value are ignored (RFC 9110 §5.5 optional
//!   whitespace). [`TOKEN_BYTES_MAX`] bounds the token itself, not the
//!   scheme or the whitespace.
//! - Base64url is strict: no `=` padding, no `+` or `/`, no non-zero
//!   trailing bits (the `URL_SAFE_NO_PAD` engine of `base64` 0.23).
//! - A claim that is present with the wrong JSON type (`"exp":"123"`,
//!   `"exp":true`, `"scope":["stream:write"]`) is [`AuthError::Malformed`];
//!   a claim that is absent or `null` is [`AuthError::MissingClaim`].
//!   `exp`, `iat` and `nbf` may be integers or fractions (RFC 7519
//!   NumericDate).
//! - A string with a JSON escape (`"acme\u0000"`) cannot be borrowed from
//!   the buffer and is [`AuthError::Malformed`]. Tenant names, key ids,
//!   `alg` and the scope never need escapes, so no valid token is refused.
//! - A claim or header member that appears twice is [`AuthError::Malformed`]
//!   (`serde`'s derived visitor refuses duplicate fields); unknown members
//!   are ignored, except a `crit` header, which names extensions we do not
//!   understand and so must be refused (RFC 7515 §4.1.11).
//! - `typ` may be absent or `JWT` in any ASCII case (RFC 7515 §4.1.9 says
//!   media types compare case-insensitively); anything else is malformed.
//! - `sub` must equal the header's `kid`, otherwise [`AuthError::WrongSubject`].
//! - Time checks use the leeway [`TOKEN_LEEWAY_SECONDS`]: rejected when
//!   `now >= exp + leeway`, `iat > now + leeway` or `nbf > now + leeway`.

use ::ring::hmac;
use ::ring::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::control::snapshot::{KeyView, Snapshot};
use crate::limits::{
    KEY_SECRET_BYTES_GENERATED, KEY_SECRET_BYTES_MIN, TOKEN_BYTES_MAX, TOKEN_DAYS_MAX, TOKEN_DAYS_MIN,
    TOKEN_LEEWAY_SECONDS,
};

/// The largest decoded size of one token segment. A segment is at most
/// [`TOKEN_BYTES_MAX`] base64 characters and every 4 characters carry 3
/// bytes, so this buffer can never be too small for a token we accept; two
/// of them (header and claims) live on the stack during [`verify`].
const SEGMENT_DECODED_BYTES_MAX: usize = TOKEN_BYTES_MAX / 4 * 3 + 3;

/// The buffer the signature is decoded into. An HS256 tag is 32 bytes; the
/// spare room lets a too-long signature fail as [`AuthError::Signature`]
/// through `ring` rather than needing a special case.
const SIGNATURE_BYTES_MAX: usize = 64;

/// The only scope that grants what ingest does (SPEC §2).
const SCOPE_STREAM_WRITE: &str = "stream:write";

/// The only algorithm we accept, compared byte for byte.
const ALGORITHM_HS256: &str = "HS256";

/// Seconds in a day, for a token's lifetime in days.
const SECONDS_PER_DAY: i64 = 86_400;

/// The number of random bytes in a generated `jti`; 128 bits make a
/// collision between two tokens of the same key negligible.
const TOKEN_ID_BYTES: usize = 16;

const _: () = assert!(SIGNATURE_BYTES_MAX >= 32);
const _: () = assert!(SEGMENT_DECODED_BYTES_MAX * 4 >= TOKEN_BYTES_MAX * 3);

/// Why a request's token was refused. Every variant is answered with 401;
/// the variant only decides the `error` kind and message in the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// The request has no `Authorization` header.
    Missing,
    /// The request has no `X-Amperity-Tenant` header (or an empty one), so
    /// no token can be for its tenant.
    TenantMissing,
    /// The value is not `Bearer <a>.<b>.<c>` with strict base64url segments
    /// holding JSON objects of the right shape, or it is too long.
    Malformed,
    /// The header's `alg` is absent or not exactly `HS256` (`none`, `HS384`
    /// and `hs256` all land here).
    Algorithm,
    /// The header has no `kid`, or the tenant is unknown, or the `kid` is
    /// not a live key of that tenant (deleted keys land here).
    UnknownKey,
    /// The HMAC does not verify with the key's secret (a rotated secret
    /// lands here).
    Signature,
    /// `exp` is in the past by more than the leeway.
    Expired,
    /// `nbf` or `iat` is in the future by more than the leeway.
    NotYetValid,
    /// The `tenant` claim differs from `X-Amperity-Tenant`.
    WrongTenant,
    /// The `sub` claim differs from the key id the header names.
    WrongSubject,
    /// The scope does not grant `stream:write`, or the key lacks the
    /// `stream-write` permission.
    Scope,
    /// One of `tenant`, `sub`, `scope`, `iat`, `exp`, `jti` is absent or null.
    MissingClaim,
}

impl AuthError {
    /// The machine-readable kind written as `error` in the response body.
    pub fn kind(self) -> &'static str {
        match self {
            AuthError::Missing => "token-missing",
            AuthError::TenantMissing => "tenant-missing",
            AuthError::Malformed => "token-malformed",
            AuthError::Algorithm => "token-algorithm",
            AuthError::UnknownKey => "token-unknown-key",
            AuthError::Signature => "token-signature",
            AuthError::Expired => "token-expired",
            AuthError::NotYetValid => "token-not-yet-valid",
            AuthError::WrongTenant => "token-wrong-tenant",
            AuthError::WrongSubject => "token-wrong-subject",
            AuthError::Scope => "token-scope",
            AuthError::MissingClaim => "token-missing-claim",
        }
    }

    /// One human sentence written as `message` in the response body.
    pub fn message(self) -> &'static str {
        match self {
            AuthError::Missing => "The request has no Authorization header.",
            AuthError::TenantMissing => "The request has no X-Amperity-Tenant header.",
            AuthError::Malformed => "The Authorization header is not a well-formed Bearer JWT.",
            AuthError::Algorithm => "The token is not signed with HS256.",
            AuthError::UnknownKey => "The token's key id does not name a live API key of this tenant.",
            AuthError::Signature => "The token's signature does not verify.",
            AuthError::Expired => "The token has expired.",
            AuthError::NotYetValid => "The token is not valid yet.",
            AuthError::WrongTenant => "The token belongs to another tenant.",
            AuthError::WrongSubject => "The token's subject is not its key id.",
            AuthError::Scope => "The token does not grant stream write access.",
            AuthError::MissingClaim => "The token lacks a required claim.",
        }
    }
}

/// The protected header, borrowed from the decoded segment.
#[derive(Deserialize)]
struct Header<'a> {
    /// Must be exactly `HS256`; absent is refused like any other value.
    #[serde(borrow)]
    alg: Option<&'a str>,
    /// The key id (`ak-…`) that signed the token.
    #[serde(borrow)]
    kid: Option<&'a str>,
    /// Optional; `JWT` when present.
    #[serde(borrow)]
    typ: Option<&'a str>,
    /// Present only to refuse tokens that declare critical extensions.
    crit: Option<IgnoredAny>,
}

/// The claims we check, borrowed from the decoded segment; others are ignored.
#[derive(Deserialize)]
struct Claims<'a> {
    /// Must equal the `X-Amperity-Tenant` header.
    #[serde(borrow)]
    tenant: Option<&'a str>,
    /// Must equal the header's `kid`.
    #[serde(borrow)]
    sub: Option<&'a str>,
    /// A space-separated list that must contain `stream:write`.
    #[serde(borrow)]
    scope: Option<&'a str>,
    /// Expiry, seconds since the epoch.
    exp: Option<f64>,
    /// Issue time, seconds since the epoch.
    iat: Option<f64>,
    /// Optional start of validity, seconds since the epoch.
    nbf: Option<f64>,
    /// Required so every token is distinguishable; not otherwise checked.
    #[serde(borrow)]
    jti: Option<&'a str>,
}

/// The three segments of a compact JWS, still base64url-encoded.
struct Segments<'a> {
    header: &'a [u8],
    claims: &'a [u8],
    signature: &'a [u8],
    /// `<header>.<claims>`: the bytes the signature covers.
    signing_input: &'a [u8],
}

/// Verifies the `Authorization` value of one request for the tenant named
/// in `tenant_header` against the live keys in `snapshot`, at `now_unix`
/// seconds since the epoch. Allocates nothing and takes no lock when the
/// token is accepted.
pub fn verify(
    authorization: Option<&[u8]>,
    tenant_header: &[u8],
    snapshot: &Snapshot,
    now_unix: i64,
) -> Result<(), AuthError> {
    let token = bearer_token(authorization.ok_or(AuthError::Missing)?)?;
    require_tenant(tenant_header)?;
    verify_token(token, tenant_header, snapshot, now_unix).map(|_| ())
}

/// Verifies a bare token; returns the instant (seconds, leeway included)
/// from which it counts as expired.
fn verify_token(
    token: &[u8],
    tenant_header: &[u8],
    snapshot: &Snapshot,
    now_unix: i64,
) -> Result<f64, AuthError> {
    let segments = split_segments(token)?;

    let mut header_bytes = [0u8; SEGMENT_DECODED_BYTES_MAX];
    let kid = read_header(segments.header, &mut header_bytes)?;
    let key = find_key(snapshot, tenant_header, kid)?;
    check_signature(key, &segments)?;

    let mut claims_bytes = [0u8; SEGMENT_DECODED_BYTES_MAX];
    let claims = read_claims(segments.claims, &mut claims_bytes)?;
    check_claims(&claims, tenant_header, kid, key, now_unix)
}

/// A token is for the tenant the request names, so a request that names
/// none is refused before its token is looked at.
fn require_tenant(tenant_header: &[u8]) -> Result<(), AuthError> {
    if tenant_header.is_empty() {
        return Err(AuthError::TenantMissing);
    }
    Ok(())
}

/// Strips the `Bearer` scheme and surrounding whitespace, returning the token.
fn bearer_token(value: &[u8]) -> Result<&[u8], AuthError> {
    const SCHEME: &[u8] = b"bearer";
    let value = trim_blank_end(trim_blank_start(value));
    if value.len() <= SCHEME.len() || !value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return Err(AuthError::Malformed);
    }
    let rest = &value[SCHEME.len()..];
    let token = trim_blank_start(rest);
    // The scheme must be separated from the token: `Bearerabc` is not `Bearer abc`.
    if token.len() == rest.len() || token.is_empty() || token.len() > TOKEN_BYTES_MAX {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// Drops leading spaces and tabs (the only whitespace HTTP allows here).
fn trim_blank_start(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ' && b != b'\t');
    start.map_or(&[], |start| &bytes[start..])
}

/// Drops trailing spaces and tabs.
fn trim_blank_end(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != b' ' && b != b'\t');
    end.map_or(&[], |end| &bytes[..=end])
}

/// Splits a compact JWS into exactly three dot-separated segments.
fn split_segments(token: &[u8]) -> Result<Segments<'_>, AuthError> {
    let mut dots = token
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'.')
        .map(|(i, _)| i);
    let (Some(first), Some(second), None) = (dots.next(), dots.next(), dots.next()) else {
        return Err(AuthError::Malformed);
    };
    Ok(Segments {
        header: &token[..first],
        claims: &token[first + 1..second],
        signature: &token[second + 1..],
        signing_input: &token[..second],
    })
}

/// Decodes one strict base64url segment into `buffer`, returning the bytes.
fn decode_segment<'b>(segment: &[u8], buffer: &'b mut [u8]) -> Result<&'b [u8], AuthError> {
    let length = URL_SAFE_NO_PAD
        .decode_slice(segment, buffer)
        .map_err(|_| AuthError::Malformed)?;
    Ok(&buffer[..length])
}

/// Reads the protected header and returns the key id it names.
fn read_header<'b>(segment: &[u8], buffer: &'b mut [u8]) -> Result<&'b str, AuthError> {
    let json = decode_segment(segment, buffer)?;
    let header: Header<'b> = serde_json::from_slice(json).map_err(|_| AuthError::Malformed)?;
    if header.crit.is_some() {
        return Err(AuthError::Malformed);
    }
    if header.typ.is_some_and(|typ| !typ.eq_ignore_ascii_case("JWT")) {
        return Err(AuthError::Malformed);
    }
    if header.alg != Some(ALGORITHM_HS256) {
        return Err(AuthError::Algorithm);
    }
    header.kid.ok_or(AuthError::UnknownKey)
}

/// Finds the live key `kid` of the tenant named by the request header.
fn find_key<'s>(snapshot: &'s Snapshot, tenant_header: &[u8], kid: &str) -> Result<&'s KeyView, AuthError> {
    let tenant = std::str::from_utf8(tenant_header).map_err(|_| AuthError::UnknownKey)?;
    snapshot
        .tenant(tenant)
        .and_then(|view| view.keys.get(kid))
        .ok_or(AuthError::UnknownKey)
}

/// Checks the HMAC over `<header>.<claims>` in constant time.
fn check_signature(key: &KeyView, segments: &Segments<'_>) -> Result<(), AuthError> {
    let mut tag = [0u8; SIGNATURE_BYTES_MAX];
    let tag = match URL_SAFE_NO_PAD.decode_slice(segments.signature, &mut tag) {
        Ok(length) => &tag[..length],
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => return Err(AuthError::Signature),
        Err(base64::DecodeSliceError::DecodeError(_)) => return Err(AuthError::Malformed),
    };
    hmac::verify(&key.hmac, segments.signing_input, tag).map_err(|_| AuthError::Signature)
}

/// Reads the claims segment. Only called once the signature has verified.
fn read_claims<'b>(segment: &[u8], buffer: &'b mut [u8]) -> Result<Claims<'b>, AuthError> {
    let json = decode_segment(segment, buffer)?;
    serde_json::from_slice(json).map_err(|_| AuthError::Malformed)
}

/// Applies the claim rules of SPEC §2 in a fixed order: presence, tenant,
/// subject, scope, then time.
fn check_claims(
    claims: &Claims<'_>,
    tenant_header: &[u8],
    kid: &str,
    key: &KeyView,
    now_unix: i64,
) -> Result<f64, AuthError> {
    let (Some(tenant), Some(sub), Some(scope), Some(exp), Some(iat), Some(_jti)) = (
        claims.tenant,
        claims.sub,
        claims.scope,
        claims.exp,
        claims.iat,
        claims.jti,
    ) else {
        return Err(AuthError::MissingClaim);
    };
    if tenant.as_bytes() != tenant_header {
        return Err(AuthError::WrongTenant);
    }
    if sub != kid {
        return Err(AuthError::WrongSubject);
    }
    if !key.stream_write || !scope.split(' ').any(|item| item == SCOPE_STREAM_WRITE) {
        return Err(AuthError::Scope);
    }
    // Compared as f64 because NumericDate may be fractional; an i64 of
    // seconds since the epoch is exact in f64 for any date this side of
    // the year 285 million.
    let now = now_unix as f64;
    let leeway = TOKEN_LEEWAY_SECONDS as f64;
    if now >= exp + leeway {
        return Err(AuthError::Expired);
    }
    if iat > now + leeway || claims.nbf.is_some_and(|nbf| nbf > now + leeway) {
        return Err(AuthError::NotYetValid);
    }
    Ok(exp + leeway)
}

/// True when two tokens are the same: compared whole, in constant time
/// (SIMD words with an optimisation barrier), so how long a refusal takes
/// says nothing about how much of a cached token a forgery matched. Only
/// the length shows, and a token's length is no secret.
fn same_token(cached: &[u8], token: &[u8]) -> bool {
    constant_time_eq::constant_time_eq(cached, token)
}

/// Tokens a worker remembers having verified.
pub const TOKEN_CACHE_SLOTS: usize = 8;

/// A token this worker already verified, and until when it stays valid.
struct CachedToken {
    token: Vec<u8>,
    tenant: Vec<u8>,
    /// `exp` plus the leeway: from this second on the token is expired.
    expired_from: f64,
}

/// A per-worker memory of verified tokens. Senders reuse one token for
/// every request, so verifying it once per worker (instead of one HMAC and
/// two JSON parses per request) takes the signature check off the hot path.
/// The cache holds only tokens that passed [`verify`] against the same
/// snapshot generation: a key deleted or rotated makes the control plane
/// publish a new generation, which empties the cache, so revocation still
/// takes effect within a second. Lookups compare in constant time, so the
/// time a forged token takes to be refused says nothing about a cached one.
/// `iat`/`nbf` need no recheck: a token valid once stays so until `exp`.
#[derive(Default)]
pub struct TokenCache {
    generation: u64,
    slots: Vec<CachedToken>,
    /// The slot the next new token replaces, round robin.
    next: usize,
}

impl TokenCache {
    /// [`verify`], answered from the cache when the same token was verified
    /// for the same tenant under the same snapshot generation.
    pub fn verify(
        &mut self,
        authorization: Option<&[u8]>,
        tenant_header: &[u8],
        snapshot: &Snapshot,
        now_unix: i64,
    ) -> Result<(), AuthError> {
        if self.generation != snapshot.generation {
            self.slots.clear();
            self.generation = snapshot.generation;
        }
        let token = bearer_token(authorization.ok_or(AuthError::Missing)?)?;
        require_tenant(tenant_header)?;
        let cached = self
            .slots
            .iter()
            .find(|slot| same_token(&slot.token, token) && slot.tenant == tenant_header);
        if let Some(slot) = cached {
            if now_unix as f64 >= slot.expired_from {
                return Err(AuthError::Expired);
            }
            return Ok(());
        }
        let expired_from = verify_token(token, tenant_header, snapshot, now_unix)?;
        let entry = CachedToken {
            token: token.to_vec(),
            tenant: tenant_header.to_vec(),
            expired_from,
        };
        if self.slots.len() < TOKEN_CACHE_SLOTS {
            self.slots.push(entry);
        } else {
            self.slots[self.next] = entry;
            self.next = (self.next + 1) % TOKEN_CACHE_SLOTS;
        }
        Ok(())
    }
}

/// The protected header [`sign_token`] writes; field order is the wire order.
#[derive(serde::Serialize)]
struct SignHeader<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// The claims [`sign_token`] writes.
#[derive(serde::Serialize)]
struct SignClaims<'a> {
    tenant: &'a str,
    sub: &'a str,
    scope: &'a str,
    iat: i64,
    exp: i64,
    jti: &'a str,
}

/// Mints a standard compact HS256 JWT for key `kid` of `tenant`, valid for
/// `days` days from `now_unix`. Operator path: allocation is fine here.
///
/// # Panics
///
/// If `days` is outside `TOKEN_DAYS_MIN..=TOKEN_DAYS_MAX` or `secret` is
/// shorter than `KEY_SECRET_BYTES_MIN`: the CLI validates both before
/// calling, so either is a programmer error.
pub fn sign_token(secret: &[u8], kid: &str, tenant: &str, days: u32, now_unix: i64) -> String {
    assert!(
        (TOKEN_DAYS_MIN..=TOKEN_DAYS_MAX).contains(&days),
        "token days validated by caller"
    );
    assert!(
        secret.len() >= KEY_SECRET_BYTES_MIN,
        "secret length validated by caller"
    );

    let mut jti_bytes = [0u8; TOKEN_ID_BYTES];
    fill_random(&mut jti_bytes);
    let jti: String = jti_bytes.iter().map(|b| format!("{b:02x}")).collect();

    let header = SignHeader {
        alg: ALGORITHM_HS256,
        typ: "JWT",
        kid,
    };
    let claims = SignClaims {
        tenant,
        sub: kid,
        scope: SCOPE_STREAM_WRITE,
        iat: now_unix,
        exp: now_unix + i64::from(days) * SECONDS_PER_DAY,
        jti: &jti,
    };
    let header_json = serde_json::to_vec(&header).expect("a struct of strings always serializes");
    let claims_json = serde_json::to_vec(&claims).expect("a struct of strings always serializes");

    let mut token = URL_SAFE_NO_PAD.encode(header_json);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(claims_json, &mut token);
    let tag = hmac::sign(&hmac_key(secret), token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
    token
}

/// A fresh random key secret of `KEY_SECRET_BYTES_GENERATED` bytes.
pub fn generate_secret() -> Vec<u8> {
    let mut secret = vec![0u8; KEY_SECRET_BYTES_GENERATED];
    fill_random(&mut secret);
    secret
}

/// Prepares a secret for HMAC-SHA256, once per key rather than per request.
pub fn hmac_key(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

/// Fills `bytes` from the operating system's random source.
fn fill_random(bytes: &mut [u8]) {
    SystemRandom::new()
        .fill(bytes)
        .expect("the OS random source (getrandom) is available on Linux");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::snapshot::TenantView;

    const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
    const OTHER_SECRET: &[u8; 32] = b"fedcba9876543210fedcba9876543210";
    const NOW: i64 = 1_700_000_000;

    /// A snapshot with tenant `acme` (keys `ak-good` with stream-write and
    /// `ak-readonly` without) and tenant `other` (key `ak-other`).
    fn snapshot() -> Snapshot {
        let mut snapshot = Snapshot::default();
        let mut acme = TenantView::default();
        acme.keys.insert(
            "ak-good".to_string(),
            KeyView {
                hmac: hmac_key(SECRET),
                stream_write: true,
            },
        );
        acme.keys.insert(
            "ak-readonly".to_string(),
            KeyView {
                hmac: hmac_key(SECRET),
                stream_write: false,
            },
        );
        acme.keys.insert(
            "ak-pyjwt".to_string(),
            KeyView {
                hmac: hmac_key(PYJWT_SECRET),
                stream_write: true,
            },
        );
        let mut other = TenantView::default();
        other.keys.insert(
            "ak-other".to_string(),
            KeyView {
                hmac: hmac_key(OTHER_SECRET),
                stream_write: true,
            },
        );
        snapshot.tenants.insert("acme".to_string(), acme);
        snapshot.tenants.insert("other".to_string(), other);
        snapshot
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Builds `<b64 header>.<b64 claims>.<b64 hmac>` from raw JSON.
    fn token(header: &str, claims: &str, secret: &[u8]) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let tag = hmac::sign(&hmac_key(secret), input.as_bytes());
        format!("{input}.{}", b64(tag.as_ref()))
    }

    const GOOD_HEADER: &str = r#"{"alg":"HS256","typ":"JWT","kid":"ak-good"}"#;

    /// Claims of a valid token with `iat`/`exp` set relative to [`NOW`].
    fn claims_with(extra: &str) -> String {
        format!(
            r#"{{"tenant":"acme","sub":"ak-good","scope":"stream:write","iat":{},"exp":{},"jti":"j1"{extra}}}"#,
            NOW - 10,
            NOW + 3600
        )
    }

    fn bearer(token: &str) -> Vec<u8> {
        format!("Bearer {token}").into_bytes()
    }

    fn check(authorization: &[u8]) -> Result<(), AuthError> {
        verify(Some(authorization), b"acme", &snapshot(), NOW)
    }

    #[test]
    fn accepts_good_tokens() {
        let good = token(GOOD_HEADER, &claims_with(""), SECRET);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("plain", bearer(&good)),
            ("lowercase scheme", format!("bearer {good}").into_bytes()),
            ("upper scheme", format!("BEARER {good}").into_bytes()),
            ("tab and spaces", format!("Bearer \t  {good}").into_bytes()),
            ("trailing blank", format!("Bearer {good} \t").into_bytes()),
            (
                "no typ, header order differs",
                bearer(&token(
                    r#"{"kid":"ak-good","alg":"HS256"}"#,
                    &claims_with(""),
                    SECRET,
                )),
            ),
            (
                "typ lowercase",
                bearer(&token(
                    r#"{"alg":"HS256","typ":"jwt","kid":"ak-good"}"#,
                    &claims_with(""),
                    SECRET,
                )),
            ),
            (
                "scope list",
                bearer(&token(
                    GOOD_HEADER,
                    r#"{"tenant":"acme","sub":"ak-good","scope":"stream:read stream:write","iat":1699999990,"exp":1700003600,"jti":"x"}"#,
                    SECRET,
                )),
            ),
            (
                "fractional dates and unknown claims",
                bearer(&token(
                    GOOD_HEADER,
                    r#"{"tenant":"acme","sub":"ak-good","scope":"stream:write","iat":1699999990.5,"exp":1.7000036e9,"jti":"x","aud":["a"],"extra":{"n":null}}"#,
                    SECRET,
                )),
            ),
            (
                "nbf in the past",
                bearer(&token(GOOD_HEADER, &claims_with(r#","nbf":1699999000"#), SECRET)),
            ),
            (
                "nbf within leeway",
                bearer(&token(
                    GOOD_HEADER,
                    &claims_with(&format!(r#","nbf":{}"#, NOW + 59)),
                    SECRET,
                )),
            ),
            (
                "iat within leeway",
                bearer(&token(
                    GOOD_HEADER,
                    &format!(
                        r#"{{"tenant":"acme","sub":"ak-good","scope":"stream:write","iat":{},"exp":{},"jti":"j"}}"#,
                        NOW + 60,
                        NOW + 3600
                    ),
                    SECRET,
                )),
            ),
            (
                "expired 59 s ago, within leeway",
                bearer(&token(
                    GOOD_HEADER,
                    &format!(
                        r#"{{"tenant":"acme","sub":"ak-good","scope":"stream:write","iat":{},"exp":{},"jti":"j"}}"#,
                        NOW - 1000,
                        NOW - 59
                    ),
                    SECRET,
                )),
            ),
        ];
        for (name, authorization) in cases {
            assert_eq!(check(&authorization), Ok(()), "case {name}");
        }
    }

    #[test]
    fn rejects_bad_tokens() {
        use AuthError::*;
        let good = token(GOOD_HEADER, &claims_with(""), SECRET);
        let (good_head, good_rest) = good.split_once('.').expect("token has dots");
        let (good_claims, good_sig) = good_rest.split_once('.').expect("token has two dots");
        let timed = |iat: i64, exp: i64, extra: &str| {
            bearer(&token(
                GOOD_HEADER,
                &format!(
                    r#"{{"tenant":"acme","sub":"ak-good","scope":"stream:write","iat":{iat},"exp":{exp},"jti":"j"{extra}}}"#
                ),
                SECRET,
            ))
        };
        let with_claims = |claims: &str| bearer(&token(GOOD_HEADER, claims, SECRET));
        let with_header = |header: &str| bearer(&token(header, &claims_with(""), SECRET));
        let long = format!("{good}{}", "A".repeat(TOKEN_BYTES_MAX));

        let cases: Vec<(&str, Vec<u8>, AuthError)> = vec![
            // Framing of the Authorization value.
            ("empty value", b"".to_vec(), Malformed),
            ("scheme only", b"Bearer".to_vec(), Malformed),
            ("scheme and blanks", b"Bearer   ".to_vec(), Malformed),
            ("no scheme", good.clone().into_bytes(), Malformed),
            ("no separator", format!("Bearer{good}").into_bytes(), Malformed),
            ("basic scheme", b"Basic YWxhZGRpbjpvcGVu".to_vec(), Malformed),
            ("too long", bearer(&long), Malformed),
            (
                "two parts",
                bearer(&format!("{good_head}.{good_claims}")),
                Malformed,
            ),
            ("four parts", bearer(&format!("{good}.{good_sig}")), Malformed),
            ("empty token parts", bearer(".."), Malformed),
            (
                "trailing garbage",
                format!("Bearer {good} x").into_bytes(),
                Malformed,
            ),
            ("trailing char", bearer(&format!("{good}x")), Signature),
            // Strict base64url.
            (
                "padded header",
                bearer(&format!("{good_head}=.{good_claims}.{good_sig}")),
                Malformed,
            ),
            ("padded signature", bearer(&format!("{good}=")), Malformed),
            (
                "standard alphabet",
                bearer(&format!(
                    "{}.{good_claims}.{good_sig}",
                    good_head.replace('J', "+")
                )),
                Malformed,
            ),
            (
                "non-canonical trailing bits",
                bearer(&non_canonical_signature(good_head, good_claims)),
                Malformed,
            ),
            // Header.
            (
                "header not json",
                bearer(&format!("{}.{good_claims}.{good_sig}", b64(b"nope"))),
                Malformed,
            ),
            ("header array", with_header(r#"["HS256"]"#), Malformed),
            (
                "header duplicate alg",
                with_header(r#"{"alg":"none","alg":"HS256","kid":"ak-good"}"#),
                Malformed,
            ),
            (
                "header crit",
                with_header(r#"{"alg":"HS256","kid":"ak-good","crit":["b64"]}"#),
                Malformed,
            ),
            (
                "header typ other",
                with_header(r#"{"alg":"HS256","typ":"JOSE+JSON","kid":"ak-good"}"#),
                Malformed,
            ),
            (
                "header escaped kid",
                with_header(r#"{"alg":"HS256","kid":"ak-go\u006fd"}"#),
                Malformed,
            ),
            (
                "alg none, empty signature",
                bearer(&format!(
                    "{}.{good_claims}.",
                    b64(br#"{"alg":"none","kid":"ak-good"}"#)
                )),
                Algorithm,
            ),
            (
                "alg HS384",
                with_header(r#"{"alg":"HS384","kid":"ak-good"}"#),
                Algorithm,
            ),
            (
                "alg lowercase",
                with_header(r#"{"alg":"hs256","kid":"ak-good"}"#),
                Algorithm,
            ),
            ("alg missing", with_header(r#"{"kid":"ak-good"}"#), Algorithm),
            (
                "alg not a string",
                with_header(r#"{"alg":256,"kid":"ak-good"}"#),
                Malformed,
            ),
            // Key lookup.
            ("kid missing", with_header(r#"{"alg":"HS256"}"#), UnknownKey),
            (
                "kid unknown",
                with_header(r#"{"alg":"HS256","kid":"ak-gone"}"#),
                UnknownKey,
            ),
            (
                "kid of another tenant",
                bearer(&token(
                    r#"{"alg":"HS256","kid":"ak-other"}"#,
                    r#"{"tenant":"acme","sub":"ak-other","scope":"stream:write","iat":1699999990,"exp":1700003600,"jti":"x"}"#,
                    OTHER_SECRET,
                )),
                UnknownKey,
            ),
            // Signature.
            (
                "signed by another key",
                bearer(&token(GOOD_HEADER, &claims_with(""), OTHER_SECRET)),
                Signature,
            ),
            (
                "claims swapped after signing",
                bearer(&format!(
                    "{good_head}.{}.{good_sig}",
                    b64(claims_with(r#","x":1"#).as_bytes())
                )),
                Signature,
            ),
            (
                "empty signature",
                bearer(&format!("{good_head}.{good_claims}.")),
                Signature,
            ),
            (
                "signature too long",
                bearer(&format!("{good}{}", "A".repeat(60))),
                Signature,
            ),
            // Claims shape.
            (
                "claims not json",
                bearer(&token(GOOD_HEADER, "{", SECRET)),
                Malformed,
            ),
            (
                "claims duplicate tenant",
                with_claims(
                    r#"{"tenant":"acme","tenant":"acme","sub":"ak-good","scope":"stream:write","iat":1699999990,"exp":1700003600,"jti":"x"}"#,
                ),
                Malformed,
            ),
            (
                "exp as string",
                with_claims(
                    r#"{"tenant":"acme","sub":"ak-good","scope":"stream:write","iat":1699999990,"exp":"1700003600","jti":"x"}"#,
                ),
                Malformed,
            ),
            (
                "iat as bool",
                with_claims(
                    r#"{"tenant":"acme","sub":"ak-good","scope":"stream:write","iat":true,"exp":1700003600,"jti":"x"}"#,
                ),
                Malformed,
            ),
            (
                "scope as array",
                with_claims(
                    r#"{"tenant":"acme","sub":"ak-good","scope":["stream:write"],"iat":1699999990,"exp":1700003600,"jti":"x"}"#,
                ),
                Malformed,
            ),
            (
                "exp missing",
                with_claims(
                    r#"{"tenant":"acme","sub":"ak-good","scope":"stream:write","iat":1699999990,"jti":"x"}"#,
                ),
                MissingClaim,
            ),
            (
                "iat missing",
                with_claims(
                    r#"{"tenant":"acme","sub":"ak-good","scope":"stream:write","exp":1700003600,"jti":"x"}"#,
                ),
                MissingClaim,
            ),
            (
                "tenant missing",
                with_claims(
                    r#"{"sub":"ak-good","scope":"stream:write","iat":1699999990,"exp":1700003600,"jti":"x"}"#,
                ),
                MissingClaim,
            ),
            (
                "sub missing",
                with_claims(
                    r#"{"tenant":"acme","scope":"stream:write","iat":1699999990,"exp":1700003600,"jti":"x"}"#,
                ),
                MissingClaim,
            ),
            (
                "scope missing",
                with_claims(
                    r#"{"tenant":"acme","sub":"ak-good","iat":1699999990,"exp":1700003600,"jti":"x"}"#,
                ),
                MissingClaim,
            ),
            (
                "jti missing",
                with_claims(
                    r#"{"tenant":"acme","sub":"ak-good","scope":"stream:write","iat":1699999990,"exp":1700003600}"#,
                ),
                MissingClaim,
            ),
            (
                "exp null",
                with_claims(
                    r#"{"tenant":"acme","sub":"ak-good","scope":"stream:write","iat":1699999990,"exp":null,"jti":"x"}"#,
                ),
                MissingClaim,
            ),
            // Claim values.
            (
                "tenant mismatch",
                with_claims(
                    r#"{"tenant":"other","sub":"ak-good","scope":"stream:write","iat":1699999990,"exp":1700003600,"jti":"x"}"#,
                ),
                WrongTenant,
            ),
            (
                "tenant prefix",
                with_claims(
                    r#"{"tenant":"acm","sub":"ak-good","scope":"stream:write","iat":1699999990,"exp":1700003600,"jti":"x"}"#,
                ),
                WrongTenant,
            ),
            (
                "sub mismatch",
                with_claims(
                    r#"{"tenant":"acme","sub":"ak-readonly","scope":"stream:write","iat":1699999990,"exp":1700003600,"jti":"x"}"#,
                ),
                WrongSubject,
            ),
            (
                "scope read",
                with_claims(
                    r#"{"tenant":"acme","sub":"ak-good","scope":"stream:read","iat":1699999990,"exp":1700003600,"jti":"x"}"#,
                ),
                Scope,
            ),
            (
                "scope superstring",
                with_claims(
                    r#"{"tenant":"acme","sub":"ak-good","scope":"stream:writer","iat":1699999990,"exp":1700003600,"jti":"x"}"#,
                ),
                Scope,
            ),
            (
                "key without permission",
                bearer(&token(
                    r#"{"alg":"HS256","kid":"ak-readonly"}"#,
                    r#"{"tenant":"acme","sub":"ak-readonly","scope":"stream:write","iat":1699999990,"exp":1700003600,"jti":"x"}"#,
                    SECRET,
                )),
                Scope,
            ),
            // Time.
            ("expired 61 s ago", timed(NOW - 1000, NOW - 61, ""), Expired),
            (
                "expired exactly at leeway",
                timed(NOW - 1000, NOW - 60, ""),
                Expired,
            ),
            ("iat 120 s ahead", timed(NOW + 120, NOW + 3600, ""), NotYetValid),
            ("iat 61 s ahead", timed(NOW + 61, NOW + 3600, ""), NotYetValid),
            (
                "nbf 120 s ahead",
                timed(NOW, NOW + 3600, &format!(r#","nbf":{}"#, NOW + 120)),
                NotYetValid,
            ),
        ];
        for (name, authorization, want) in cases {
            assert_eq!(check(&authorization), Err(want), "case {name}");
        }
    }

    /// A token whose signature's last base64 character has non-zero unused
    /// bits: 43 characters carry 258 bits for a 256-bit tag.
    fn non_canonical_signature(head: &str, claims: &str) -> String {
        let input = format!("{head}.{claims}");
        let tag = hmac::sign(&hmac_key(SECRET), input.as_bytes());
        let mut sig = b64(tag.as_ref()).into_bytes();
        let last = sig.last_mut().expect("signature is not empty");
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let index = alphabet.iter().position(|c| c == last).expect("base64url char");
        *last = alphabet[index | 1];
        format!("{input}.{}", String::from_utf8(sig).expect("ascii"))
    }

    #[test]
    fn rejects_missing_header_and_unknown_tenant() {
        let good = bearer(&token(GOOD_HEADER, &claims_with(""), SECRET));
        let snapshot = snapshot();
        assert_eq!(verify(None, b"acme", &snapshot, NOW), Err(AuthError::Missing));
        assert_eq!(
            verify(Some(&good), b"nobody", &snapshot, NOW),
            Err(AuthError::UnknownKey)
        );
        assert_eq!(
            verify(Some(&good), b"other", &snapshot, NOW),
            Err(AuthError::UnknownKey)
        );
        assert_eq!(
            verify(Some(&good), b"\xff", &snapshot, NOW),
            Err(AuthError::UnknownKey)
        );
        assert_eq!(
            verify(Some(&good), b"", &snapshot, NOW),
            Err(AuthError::TenantMissing)
        );
        assert_eq!(
            TokenCache::default().verify(Some(&good), b"", &snapshot, NOW),
            Err(AuthError::TenantMissing)
        );
    }

    #[test]
    fn rotated_and_deleted_keys_fail() {
        let good = bearer(&token(GOOD_HEADER, &claims_with(""), SECRET));
        let mut snapshot = snapshot();
        let acme = snapshot.tenants.get_mut("acme").expect("acme exists");
        acme.keys.get_mut("ak-good").expect("key exists").hmac = hmac_key(OTHER_SECRET);
        assert_eq!(
            verify(Some(&good), b"acme", &snapshot, NOW),
            Err(AuthError::Signature)
        );
        let acme = snapshot.tenants.get_mut("acme").expect("acme exists");
        acme.keys.remove("ak-good");
        assert_eq!(
            verify(Some(&good), b"acme", &snapshot, NOW),
            Err(AuthError::UnknownKey)
        );
    }

    #[test]
    fn token_of_maximum_length_is_read() {
        // Padding the claims with an unknown member brings the token to
        // exactly TOKEN_BYTES_MAX; it must still verify, one byte more must not.
        let fixed = token(GOOD_HEADER, &claims_with(r#","pad":"""#), SECRET).len();
        // Each 3 bytes of claims JSON add 4 base64 characters.
        let pad_bytes = (TOKEN_BYTES_MAX - fixed) / 4 * 3;
        let at_most = token(
            GOOD_HEADER,
            &claims_with(&format!(r#","pad":"{}""#, "p".repeat(pad_bytes))),
            SECRET,
        );
        assert!(at_most.len() <= TOKEN_BYTES_MAX && at_most.len() > TOKEN_BYTES_MAX - 4);
        assert_eq!(check(&bearer(&at_most)), Ok(()));
        let over = token(
            GOOD_HEADER,
            &claims_with(&format!(r#","pad":"{}""#, "p".repeat(pad_bytes + 3))),
            SECRET,
        );
        assert!(over.len() > TOKEN_BYTES_MAX);
        assert_eq!(check(&bearer(&over)), Err(AuthError::Malformed));
    }

    /// Produced by PyJWT 2.15.1:
    /// `jwt.encode({...}, secret, algorithm="HS256", headers={"kid":"ak-pyjwt"})`.
    const PYJWT_SECRET: &[u8; 32] = b"sluice-pyjwt-interop-secret-0001";
    const PYJWT_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFrLXB5and0IiwidHlwIjoiSldUIn0.eyJ0ZW5hbnQiOiJhY21lIiwic3ViIjoiYWstcHlqd3QiLCJzY29wZSI6InN0cmVhbTp3cml0ZSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDg2NDAwLCJqdGkiOiIwZjFlMmQzYzRiNWE2OTc4ODc5NmE1YjRjM2QyZTFmMCJ9.Qcmq5Jx2MsxV7cSmc__1mILa20qVfx1b5CdTn22_rIM";

    #[test]
    fn accepts_pyjwt_token() {
        let snapshot = snapshot();
        let authorization = bearer(PYJWT_TOKEN);
        // iat = 1700000000, exp = 1700086400.
        assert_eq!(
            verify(Some(&authorization), b"acme", &snapshot, 1_700_000_000),
            Ok(())
        );
        assert_eq!(
            verify(Some(&authorization), b"acme", &snapshot, 1_700_086_459),
            Ok(())
        );
        assert_eq!(
            verify(Some(&authorization), b"acme", &snapshot, 1_700_086_460),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn signed_token_round_trips() {
        let token = sign_token(SECRET, "ak-good", "acme", 30, NOW);
        let snapshot = snapshot();
        let authorization = bearer(&token);
        assert_eq!(verify(Some(&authorization), b"acme", &snapshot, NOW), Ok(()));
        let last_second = NOW + 30 * SECONDS_PER_DAY + TOKEN_LEEWAY_SECONDS - 1;
        assert_eq!(
            verify(Some(&authorization), b"acme", &snapshot, last_second),
            Ok(())
        );
        assert_eq!(
            verify(Some(&authorization), b"acme", &snapshot, last_second + 1),
            Err(AuthError::Expired)
        );

        let mut parts = token.split('.');
        let header = URL_SAFE_NO_PAD
            .decode(parts.next().expect("header"))
            .expect("base64");
        assert_eq!(header, br#"{"alg":"HS256","typ":"JWT","kid":"ak-good"}"#);
        let claims = URL_SAFE_NO_PAD
            .decode(parts.next().expect("claims"))
            .expect("base64");
        let claims: serde_json::Value = serde_json::from_slice(&claims).expect("json");
        assert_eq!(claims["tenant"], "acme");
        assert_eq!(claims["sub"], "ak-good");
        assert_eq!(claims["scope"], "stream:write");
        assert_eq!(claims["iat"], NOW);
        assert_eq!(claims["exp"], NOW + 30 * 86_400);
        let jti = claims["jti"].as_str().expect("jti is a string");
        assert_eq!(jti.len(), TOKEN_ID_BYTES * 2);
        assert!(jti.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(
            sign_token(SECRET, "ak-good", "acme", 30, NOW),
            token,
            "jti is random"
        );
    }

    #[test]
    fn generated_secrets_are_random_and_long_enough() {
        let first = generate_secret();
        assert_eq!(first.len(), KEY_SECRET_BYTES_GENERATED);
        assert_ne!(first, generate_secret());
    }

    #[test]
    fn kinds_and_messages_are_distinct() {
        use AuthError::*;
        let all = [
            Missing,
            Malformed,
            Algorithm,
            UnknownKey,
            Signature,
            Expired,
            NotYetValid,
            WrongTenant,
            WrongSubject,
            Scope,
            MissingClaim,
            TenantMissing,
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(a.kind().starts_with("token-") || *a == TenantMissing);
            assert!(a.message().ends_with('.'));
            for b in &all[i + 1..] {
                assert_ne!(a.kind(), b.kind());
                assert_ne!(a.message(), b.message());
            }
        }
        assert_eq!(Expired.kind(), "token-expired");
    }

    #[test]
    fn token_cache_answers_repeats_and_forgets_on_a_new_generation() {
        let mut snapshot = snapshot();
        snapshot.generation = 1;
        let good = bearer(&token(GOOD_HEADER, &claims_with(""), SECRET));
        let mut cache = TokenCache::default();
        assert_eq!(cache.verify(Some(&good), b"acme", &snapshot, NOW), Ok(()));
        assert_eq!(cache.slots.len(), 1);
        // A cached token is still checked for expiry and for its tenant.
        assert_eq!(
            cache.verify(Some(&good), b"acme", &snapshot, NOW + 3600 + 59),
            Ok(())
        );
        assert_eq!(
            cache.verify(Some(&good), b"acme", &snapshot, NOW + 3600 + 60),
            Err(AuthError::Expired)
        );
        assert_eq!(
            cache.verify(Some(&good), b"other", &snapshot, NOW),
            Err(AuthError::UnknownKey)
        );
        // A forged token never matches a cached one.
        let forged = bearer(&token(GOOD_HEADER, &claims_with(""), OTHER_SECRET));
        assert_eq!(
            cache.verify(Some(&forged), b"acme", &snapshot, NOW),
            Err(AuthError::Signature)
        );
        // Rotating the key publishes a new generation: the cache is emptied
        // and the old token fails.
        let mut rotated = snapshot;
        rotated.generation = 2;
        rotated.tenants.get_mut("acme").expect("acme").keys.insert(
            "ak-good".to_string(),
            KeyView {
                hmac: hmac_key(OTHER_SECRET),
                stream_write: true,
            },
        );
        assert_eq!(
            cache.verify(Some(&good), b"acme", &rotated, NOW),
            Err(AuthError::Signature)
        );
        assert!(cache.slots.is_empty());
    }

    #[test]
    fn token_cache_keeps_a_bounded_number_of_tokens() {
        let snapshot = snapshot();
        let mut cache = TokenCache::default();
        for n in 0..(TOKEN_CACHE_SLOTS * 3) {
            let claims = format!(
                r#"{{"tenant":"acme","sub":"ak-good","scope":"stream:write","iat":{},"exp":{},"jti":"j{n}"}}"#,
                NOW,
                NOW + 3600
            );
            let value = bearer(&token(GOOD_HEADER, &claims, SECRET));
            assert_eq!(cache.verify(Some(&value), b"acme", &snapshot, NOW), Ok(()));
        }
        assert_eq!(cache.slots.len(), TOKEN_CACHE_SLOTS);
    }
}
