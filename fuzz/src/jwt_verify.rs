//! Property of token verification (`auth::verify`, SPEC §2).
//!
//! Three modes, picked by the first input byte:
//!
//! - **Raw**: the rest of the input is the `Authorization` value. It must
//!   never panic and never be accepted (no input can carry a valid HMAC of
//!   a secret it does not know).
//! - **Raw claims**: the rest of the input is the claims JSON, under a good
//!   header and signed with the right key. Whatever verification answers,
//!   acceptance must be sound: an accepted token's claims are a JSON object
//!   whose tenant, subject, scope and times are all valid.
//! - **Generated**: the input chooses every header member and claim from a
//!   table of good, bad, wrong-typed, escaped, null and absent values, their
//!   order, a duplicate member, and the signing key. The token is built and
//!   signed, and an independent statement of SPEC §2 (and of the decisions
//!   recorded in `src/auth.rs`) predicts the exact answer, error kind
//!   included: the token verifies iff its header, signature and claims are
//!   valid.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sluice::auth::{AuthError, hmac_key, verify};
use sluice::control::snapshot::{KeyView, Snapshot, TenantView};
use sluice::limits::TOKEN_LEEWAY_SECONDS;

use super::Input;

/// The moment of every check: a fixed second, so time-dependent answers
/// replay exactly.
const NOW: i64 = 1_700_000_000;

/// The secret of every key in the test snapshot.
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-fuzz";

/// A secret no key has.
const WRONG_SECRET: &[u8] = b"fedcba9876543210fedcba9876543210-fuzz";

/// The tenant the request names in `X-Amperity-Tenant`.
const TENANT: &str = "acme";

/// A live key of [`TENANT`] with the `stream-write` permission.
const KID_WRITE: &str = "ak-write";

/// A live key of [`TENANT`] without it.
const KID_READ_ONLY: &str = "ak-readonly";

/// A key of another tenant.
const KID_OTHER_TENANT: &str = "ak-other";

/// The tenant snapshot every check runs against.
fn snapshot() -> Snapshot {
    let key = |stream_write| KeyView {
        hmac: hmac_key(SECRET),
        stream_write,
    };
    let mut acme = TenantView::default();
    acme.keys.insert(KID_WRITE.to_owned(), key(true));
    acme.keys.insert(KID_READ_ONLY.to_owned(), key(false));
    let mut other = TenantView::default();
    other.keys.insert(KID_OTHER_TENANT.to_owned(), key(true));
    let mut snapshot = Snapshot::default();
    snapshot.tenants.insert(TENANT.to_owned(), acme);
    snapshot.tenants.insert("other".to_owned(), other);
    snapshot
}

/// Runs the property on one fuzz input.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let snapshot = snapshot();
    match input.byte() % 4 {
        0 => check_raw(input.rest(), &snapshot),
        1 => check_raw_claims(input.rest(), &snapshot),
        _ => check_generated(&mut input, &snapshot),
    }
}

fn check_raw(authorization: &[u8], snapshot: &Snapshot) {
    let answer = verify(Some(authorization), TENANT.as_bytes(), snapshot, NOW);
    assert!(answer.is_err(), "a token nobody signed was accepted");
}

fn check_raw_claims(claims: &[u8], snapshot: &Snapshot) {
    let header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{KID_WRITE}"}}"#);
    let token = sign(header.as_bytes(), claims, SECRET);
    let answer = verify(Some(token.as_bytes()), TENANT.as_bytes(), snapshot, NOW);
    if answer.is_err() {
        return;
    }
    let value: serde_json::Value = serde_json::from_slice(claims).expect("accepted claims are JSON");
    let now = NOW as f64;
    let leeway = TOKEN_LEEWAY_SECONDS as f64;
    let number = |name: &str| value.get(name).and_then(serde_json::Value::as_f64);
    assert_eq!(value["tenant"], TENANT);
    assert_eq!(value["sub"], KID_WRITE);
    let scope = value["scope"].as_str().expect("scope is text");
    assert!(
        scope.split(' ').any(|item| item == "stream:write"),
        "scope {scope:?}"
    );
    assert!(value["jti"].is_string());
    assert!(now < number("exp").expect("exp") + leeway, "not expired");
    assert!(number("iat").expect("iat") <= now + leeway, "issued in the past");
    if !value["nbf"].is_null() {
        assert!(
            number("nbf").expect("nbf is a number") <= now + leeway,
            "valid now"
        );
    }
}

/// `<b64 header>.<b64 claims>.<b64 HMAC-SHA256>` as an `Authorization` value.
fn sign(header: &[u8], claims: &[u8], secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let tag = ring::hmac::sign(&hmac_key(secret), input.as_bytes());
    format!("Bearer {input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// One generated JSON member value, and what the verifier makes of it.
#[derive(Clone, Copy)]
enum Member {
    /// Not written at all.
    Absent,
    /// Written as `null`: the same as absent for every field we read.
    Null,
    /// A string without escapes.
    Text(&'static str),
    /// A string spelled with a `\u` escape; it cannot be borrowed, so it is
    /// malformed in any field the verifier reads.
    Escaped(&'static str),
    /// A JSON number, written as is.
    Number(&'static str),
    /// A value of the wrong type for every field we read.
    WrongType(&'static str),
}

impl Member {
    /// The JSON text, if the member is written.
    fn json(self) -> Option<String> {
        Some(match self {
            Member::Absent => return None,
            Member::Null => "null".to_owned(),
            Member::Text(text) => format!("\"{text}\""),
            Member::Escaped(text) => format!("\"\\u{:04x}{}\"", text.as_bytes()[0], &text[1..]),
            Member::Number(number) => number.to_owned(),
            Member::WrongType(json) => json.to_owned(),
        })
    }

    /// True when reading this member as a string fails.
    fn malformed_as_text(self) -> bool {
        matches!(
            self,
            Member::Escaped(_) | Member::Number(_) | Member::WrongType(_)
        )
    }

    /// True when reading this member as a number fails.
    fn malformed_as_number(self) -> bool {
        matches!(self, Member::Escaped(_) | Member::Text(_) | Member::WrongType(_))
    }

    /// The string value, when it reads as one.
    fn text(self) -> Option<&'static str> {
        match self {
            Member::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The numeric value, when it reads as one.
    fn number(self) -> Option<f64> {
        match self {
            Member::Number(number) => Some(number.parse().expect("table numbers parse")),
            _ => None,
        }
    }
}

const ALG: &[Member] = &[
    Member::Text("HS256"),
    Member::Text("HS256"),
    Member::Absent,
    Member::Null,
    Member::Text("none"),
    Member::Text("HS384"),
    Member::Text("hs256"),
    Member::Escaped("HS256"),
    Member::Number("256"),
];

const KID: &[Member] = &[
    Member::Text(KID_WRITE),
    Member::Text(KID_WRITE),
    Member::Text(KID_READ_ONLY),
    Member::Text(KID_OTHER_TENANT),
    Member::Text("ak-unknown"),
    Member::Absent,
    Member::Null,
    Member::Escaped(KID_WRITE),
    Member::WrongType("[\"ak-write\"]"),
];

const TYP: &[Member] = &[
    Member::Text("JWT"),
    Member::Absent,
    Member::Text("jwt"),
    Member::Null,
    Member::Text("JOSE"),
    Member::Escaped("JWT"),
    Member::Number("1"),
];

const CRIT: &[Member] = &[
    Member::Absent,
    Member::Absent,
    Member::Absent,
    Member::WrongType("[\"b64\"]"),
];

const TENANT_CLAIM: &[Member] = &[
    Member::Text(TENANT),
    Member::Text(TENANT),
    Member::Text("other"),
    Member::Text("ACME"),
    Member::Absent,
    Member::Null,
    Member::Escaped(TENANT),
    Member::Number("5"),
];

/// `sub` values; `Text("=kid")` stands for "the same as the header's kid".
const SUB: &[Member] = &[
    Member::Text("=kid"),
    Member::Text("=kid"),
    Member::Text(KID_OTHER_TENANT),
    Member::Absent,
    Member::Null,
    Member::WrongType("{}"),
];

const SCOPE: &[Member] = &[
    Member::Text("stream:write"),
    Member::Text("stream:read stream:write"),
    Member::Text("stream:write "),
    Member::Text("stream:read"),
    Member::Text(""),
    Member::Text("stream:writer"),
    Member::Absent,
    Member::Null,
    Member::Escaped("stream:write"),
    Member::WrongType("[\"stream:write\"]"),
];

const IAT: &[Member] = &[
    Member::Number("1699999990"),
    Member::Number("1700000060"),
    Member::Number("1700000061"),
    Member::Number("1699999999.5"),
    Member::Number("1.7e9"),
    Member::Absent,
    Member::Null,
    Member::Text("1699999990"),
];

const EXP: &[Member] = &[
    Member::Number("1700003600"),
    Member::Number("1699999941"),
    Member::Number("1699999940"),
    Member::Number("1699999940.5"),
    Member::Number("1e10"),
    Member::Absent,
    Member::Null,
    Member::WrongType("true"),
];

const NBF: &[Member] = &[
    Member::Absent,
    Member::Absent,
    Member::Null,
    Member::Number("1699999000"),
    Member::Number("1700000060"),
    Member::Number("1700000061"),
    Member::Text("0"),
];

const JTI: &[Member] = &[
    Member::Text("j1"),
    Member::Text(""),
    Member::Absent,
    Member::Null,
    Member::Number("7"),
];

/// Members the verifier ignores, whatever they hold.
const EXTRA: &[Member] = &[
    Member::Absent,
    Member::WrongType("[\"a\",{\"b\":null}]"),
    Member::Escaped("x"),
    Member::Number("-0.0e-0"),
];

/// One generated token: every member's choice, by name.
struct Generated {
    header: Vec<(&'static str, Member)>,
    claims: Vec<(&'static str, Member)>,
    /// Whether one member of the header (first) or claims (second) is
    /// written twice.
    duplicate: (bool, bool),
    right_key: bool,
}

fn check_generated(input: &mut Input<'_>, snapshot: &Snapshot) {
    let mut pick = |table: &[Member]| table[input.choose(table.len())];
    let header = vec![
        ("alg", pick(ALG)),
        ("kid", pick(KID)),
        ("typ", pick(TYP)),
        ("crit", pick(CRIT)),
    ];
    let kid = header[1].1;
    let sub = match pick(SUB) {
        Member::Text("=kid") => kid.text().map_or(Member::Text(KID_WRITE), Member::Text),
        other => other,
    };
    let claims = vec![
        ("tenant", pick(TENANT_CLAIM)),
        ("sub", sub),
        ("scope", pick(SCOPE)),
        ("iat", pick(IAT)),
        ("exp", pick(EXP)),
        ("nbf", pick(NBF)),
        ("jti", pick(JTI)),
        ("aud", pick(EXTRA)),
    ];
    let flags = input.byte();
    let mut token = Generated {
        header,
        claims,
        duplicate: (flags & 0x30 == 0x30, flags & 0xC0 == 0xC0),
        right_key: flags & 0x0F != 0x0F,
    };
    let rotation = input.byte();
    let (header_len, claims_len) = (token.header.len(), token.claims.len());
    token.header.rotate_left(usize::from(rotation) % header_len);
    token.claims.rotate_left(usize::from(rotation >> 4) % claims_len);

    let header_json = object(&token.header, token.duplicate.0);
    let claims_json = object(&token.claims, token.duplicate.1);
    let secret = if token.right_key { SECRET } else { WRONG_SECRET };
    let authorization = sign(header_json.as_bytes(), claims_json.as_bytes(), secret);
    let answer = verify(Some(authorization.as_bytes()), TENANT.as_bytes(), snapshot, NOW);
    assert_eq!(
        answer,
        expected(&token),
        "header {header_json} claims {claims_json} right key {}",
        token.right_key
    );
}

/// A JSON object of the written members, in order; with `duplicate`, the
/// first written member appears once more at the end.
fn object(members: &[(&'static str, Member)], duplicate: bool) -> String {
    let mut written: Vec<String> = members
        .iter()
        .filter_map(|(name, member)| member.json().map(|json| format!("\"{name}\":{json}")))
        .collect();
    if let (true, Some(first)) = (duplicate, written.first().cloned()) {
        written.push(first);
    }
    format!("{{{}}}", written.join(","))
}

/// The member named `name`.
fn member(members: &[(&'static str, Member)], name: &str) -> Member {
    members
        .iter()
        .find(|(member_name, _)| *member_name == name)
        .map(|(_, member)| *member)
        .expect("every generated object has every name")
}

/// True when an object written from `members` repeats a member the
/// verifier reads. [`object`] repeats the first written member; a repeated
/// member the verifier ignores (`aud`) is not an error, as serde's derived
/// visitor skips unknown members without looking at their names twice.
fn has_duplicate(members: &[(&'static str, Member)], duplicate: bool) -> bool {
    let first_written = members.iter().find(|(_, member)| member.json().is_some());
    duplicate && first_written.is_some_and(|(name, _)| *name != "aud")
}

/// SPEC §2, stated independently of `src/auth.rs`, in the order the checks
/// are documented: header shape, algorithm, key, signature, claim shape,
/// presence, tenant, subject, scope, expiry, not-before.
fn expected(token: &Generated) -> Result<(), AuthError> {
    let header = &token.header;
    let alg = member(header, "alg");
    let kid = member(header, "kid");
    let typ = member(header, "typ");
    let header_malformed = has_duplicate(header, token.duplicate.0)
        || alg.malformed_as_text()
        || kid.malformed_as_text()
        || typ.malformed_as_text()
        || !matches!(member(header, "crit"), Member::Absent | Member::Null)
        || typ.text().is_some_and(|typ| !typ.eq_ignore_ascii_case("JWT"));
    if header_malformed {
        return Err(AuthError::Malformed);
    }
    if alg.text() != Some("HS256") {
        return Err(AuthError::Algorithm);
    }
    let kid = match kid.text() {
        Some(kid @ (KID_WRITE | KID_READ_ONLY)) => kid,
        _ => return Err(AuthError::UnknownKey),
    };
    if !token.right_key {
        return Err(AuthError::Signature);
    }

    let claims = &token.claims;
    let text_claims = ["tenant", "sub", "scope", "jti"].map(|name| member(claims, name));
    let number_claims = ["iat", "exp", "nbf"].map(|name| member(claims, name));
    if has_duplicate(claims, token.duplicate.1)
        || text_claims.iter().any(|member| member.malformed_as_text())
        || number_claims.iter().any(|member| member.malformed_as_number())
    {
        return Err(AuthError::Malformed);
    }
    let [tenant, sub, scope, jti] = text_claims.map(Member::text);
    let [iat, exp, nbf] = number_claims.map(Member::number);
    let (Some(tenant), Some(sub), Some(scope), Some(iat), Some(exp), Some(_)) =
        (tenant, sub, scope, iat, exp, jti)
    else {
        return Err(AuthError::MissingClaim);
    };
    if tenant != TENANT {
        return Err(AuthError::WrongTenant);
    }
    if sub != kid {
        return Err(AuthError::WrongSubject);
    }
    if kid == KID_READ_ONLY || !scope.split(' ').any(|item| item == "stream:write") {
        return Err(AuthError::Scope);
    }
    let now = NOW as f64;
    let leeway = TOKEN_LEEWAY_SECONDS as f64;
    if now >= exp + leeway {
        return Err(AuthError::Expired);
    }
    if iat > now + leeway || nbf.is_some_and(|nbf| nbf > now + leeway) {
        return Err(AuthError::NotYetValid);
    }
    Ok(())
}
