//! Identifiers of the control plane: tenant names, API key ids and stream ids.
//!
//! This module owns their shapes (SPEC §2, §3) and promises two things: every
//! generated id comes from the operating system's CSPRNG with no modulo bias,
//! and every `is_*` check accepts exactly the shape a generator produces (or,
//! for tenants, the shape an operator may choose). The checks allocate
//! nothing, so the data path may use them to reject a path early.

use ring::rand::SecureRandom;

/// Prefix of an API key id (SPEC §2).
pub const KEY_ID_PREFIX: &str = "ak-";

/// Random characters after [`KEY_ID_PREFIX`]. 36^16 ≈ 8·10^24 ids make a
/// collision practically impossible, and the store still checks for one.
pub const KEY_ID_RANDOM_CHARS: usize = 16;

/// Prefix of a stream id (SPEC §3).
pub const STREAM_ID_PREFIX: &str = "is-";

/// Random letters after [`STREAM_ID_PREFIX`] (SPEC §3: exactly eight).
/// 52^8 ≈ 5·10^13 ids; the store checks for a collision with any stream
/// ever created, deleted ones included.
pub const STREAM_ID_RANDOM_CHARS: usize = 8;

/// The longest tenant name (SPEC §2: `[a-z0-9][a-z0-9-]{0,62}`). It keeps a
/// tenant's directory name well inside every file system's limit.
pub const TENANT_NAME_BYTES_MAX: usize = 63;

/// The alphabet of key ids: lowercase ASCII letters and digits.
const KEY_ID_ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// The alphabet of stream ids: ASCII letters of both cases.
const STREAM_ID_ALPHABET: &[u8; 52] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Random bytes drawn per call to the CSPRNG while sampling id characters.
/// Rejection sampling discards at most 1 byte in 4 for these alphabets, so
/// one draw almost always suffices.
const RANDOM_DRAW_BYTES: usize = 32;

/// The CSPRNG failed. ring reports no detail; on Linux it means `getrandom`
/// failed, which a healthy host never does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomError;

impl RandomError {
    pub fn kind(self) -> &'static str {
        "random-unavailable"
    }

    pub fn message(self) -> &'static str {
        "the operating system's random number generator failed"
    }
}

impl std::fmt::Display for RandomError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for RandomError {}

/// Returns a fresh API key id: `ak-` and 16 random lowercase letters or digits.
pub fn new_key_id(random: &dyn SecureRandom) -> Result<String, RandomError> {
    new_id(random, KEY_ID_PREFIX, KEY_ID_ALPHABET, KEY_ID_RANDOM_CHARS)
}

/// The id of a key imported from a secret file: `ak-` and 16 lowercase
/// letters or digits taken from HMAC-SHA256(secret, label ‖ tenant). Every
/// appliance that imports the same file for the same tenant gives the key
/// the same id, so the `kid` of a token one of them signs names a key on
/// all of them (SPEC §2: "several appliances behind one load balancer
/// accept the same tokens"). The id reveals nothing of the secret.
pub fn imported_key_id(secret: &[u8], tenant: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(IMPORTED_KEY_ID_LABEL);
    context.update(tenant.as_bytes());
    let tag = context.sign();
    let mut id = String::with_capacity(KEY_ID_PREFIX.len() + KEY_ID_RANDOM_CHARS);
    id.push_str(KEY_ID_PREFIX);
    // 32 bytes of tag for 16 characters: each character from two bytes, so
    // the alphabet's 36 letters come out nearly uniform.
    for pair in tag.as_ref().chunks_exact(2).take(KEY_ID_RANDOM_CHARS) {
        let value = usize::from(u16::from_be_bytes([pair[0], pair[1]]));
        id.push(char::from(KEY_ID_ALPHABET[value % KEY_ID_ALPHABET.len()]));
    }
    id
}

/// What [`imported_key_id`] signs besides the tenant; changing it changes
/// every imported key's id.
const IMPORTED_KEY_ID_LABEL: &[u8] = b"sluice imported api key id v1\0";

/// Returns a fresh stream id: `is-` and 8 random ASCII letters.
pub fn new_stream_id(random: &dyn SecureRandom) -> Result<String, RandomError> {
    new_id(
        random,
        STREAM_ID_PREFIX,
        STREAM_ID_ALPHABET,
        STREAM_ID_RANDOM_CHARS,
    )
}

/// True when `text` has the shape of an API key id.
pub fn is_key_id(text: &str) -> bool {
    has_shape(text, KEY_ID_PREFIX, KEY_ID_RANDOM_CHARS, |byte| {
        byte.is_ascii_lowercase() || byte.is_ascii_digit()
    })
}

/// True when `text` has the shape of a stream id.
pub fn is_stream_id(text: &str) -> bool {
    has_shape(text, STREAM_ID_PREFIX, STREAM_ID_RANDOM_CHARS, |byte| {
        byte.is_ascii_alphabetic()
    })
}

/// True when `text` is a valid tenant name: `[a-z0-9][a-z0-9-]{0,62}`.
/// Tenant names become directory names, so the rule also keeps them free of
/// path separators, dots and anything a shell would need quoted.
pub fn is_tenant_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    let Some((&first, rest)) = bytes.split_first() else {
        return false;
    };
    bytes.len() <= TENANT_NAME_BYTES_MAX
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && rest
            .iter()
            .all(|&byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
}

fn has_shape(text: &str, prefix: &str, random_chars: usize, allowed: fn(u8) -> bool) -> bool {
    match text.strip_prefix(prefix) {
        Some(rest) => rest.len() == random_chars && rest.bytes().all(allowed),
        None => false,
    }
}

/// Builds `prefix` followed by `count` characters drawn uniformly from
/// `alphabet`. A byte is used only when it falls below the largest multiple
/// of the alphabet's length, so every character is equally likely (a plain
/// `byte % len` would favour the first characters).
fn new_id(
    random: &dyn SecureRandom,
    prefix: &str,
    alphabet: &[u8],
    count: usize,
) -> Result<String, RandomError> {
    let mut id = String::with_capacity(prefix.len() + count);
    id.push_str(prefix);
    let mut drawn = [0u8; RANDOM_DRAW_BYTES];
    let mut chosen = 0;
    while chosen < count {
        random.fill(&mut drawn).map_err(|_| RandomError)?;
        for &byte in &drawn {
            if chosen == count {
                break;
            }
            if let Some(character) = char_for(byte, alphabet) {
                id.push(character);
                chosen += 1;
            }
        }
    }
    Ok(id)
}

/// Maps one random byte to a character of `alphabet`, or `None` when the
/// byte must be discarded to keep the draw uniform.
fn char_for(byte: u8, alphabet: &[u8]) -> Option<char> {
    let alphabet_len = alphabet.len();
    assert!(
        alphabet_len > 0 && alphabet_len <= 256,
        "invariant: id alphabets are non-empty and index by one byte"
    );
    let accept_below = 256 - 256 % alphabet_len;
    let index = usize::from(byte);
    (index < accept_below).then(|| char::from(alphabet[index % alphabet_len]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn generated_key_ids_have_their_shape() {
        let random = SystemRandom::new();
        for _ in 0..200 {
            let id = new_key_id(&random).expect("random works in tests");
            assert_eq!(id.len(), 3 + 16, "{id}");
            assert!(id.starts_with("ak-"), "{id}");
            assert!(
                id[3..]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{id}"
            );
            assert!(is_key_id(&id), "{id}");
        }
    }

    #[test]
    fn generated_stream_ids_have_their_shape() {
        let random = SystemRandom::new();
        let mut seen_upper = false;
        let mut seen_lower = false;
        for _ in 0..200 {
            let id = new_stream_id(&random).expect("random works in tests");
            assert_eq!(id.len(), 3 + 8, "{id}");
            assert!(id.starts_with("is-"), "{id}");
            assert!(id[3..].bytes().all(|b| b.is_ascii_alphabetic()), "{id}");
            seen_upper |= id[3..].bytes().any(|b| b.is_ascii_uppercase());
            seen_lower |= id[3..].bytes().any(|b| b.is_ascii_lowercase());
            assert!(is_stream_id(&id), "{id}");
        }
        // 200 ids of 8 letters drawn from both cases: missing one case
        // entirely would mean the alphabet is wrong, not bad luck.
        assert!(seen_upper && seen_lower);
    }

    #[test]
    fn generated_ids_differ() {
        let random = SystemRandom::new();
        let mut ids: Vec<String> = (0..500)
            .map(|_| new_stream_id(&random).expect("random works in tests"))
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 500);
    }

    #[test]
    fn key_id_shape_table() {
        let cases: &[(&str, bool)] = &[
            ("ak-0123456789abcdef", true),
            ("ak-abcdefghijklmnop", true),
            ("ak-0123456789abcde", false),   // 15 characters
            ("ak-0123456789abcdefg", false), // 17 characters
            ("ak-0123456789ABCDEF", false),  // upper case
            ("ak-0123456789abcde-", false),
            ("ak_0123456789abcdef", false),
            ("AK-0123456789abcdef", false),
            ("is-AbCDefGH", false),
            ("", false),
            ("ak-", false),
        ];
        for &(text, expected) in cases {
            assert_eq!(is_key_id(text), expected, "{text:?}");
        }
    }

    #[test]
    fn stream_id_shape_table() {
        let cases: &[(&str, bool)] = &[
            ("is-AbCDefGH", true),
            ("is-abcdefgh", true),
            ("is-ABCDEFGH", true),
            ("is-AbCDefG", false),   // 7 letters
            ("is-AbCDefGHi", false), // 9 letters
            ("is-AbCDefG1", false),  // digit
            ("is-AbCDéfG", false),   // non-ASCII
            ("IS-AbCDefGH", false),
            ("ak-AbCDefGH", false),
            ("", false),
        ];
        for &(text, expected) in cases {
            assert_eq!(is_stream_id(text), expected, "{text:?}");
        }
    }

    #[test]
    fn tenant_name_table() {
        let longest = "a".repeat(63);
        let too_long = "a".repeat(64);
        let cases: &[(&str, bool)] = &[
            ("acme", true),
            ("a", true),
            ("0", true),
            ("acme-prod-2", true),
            ("9lives", true),
            ("acme-", true), // the SPEC's pattern allows a trailing hyphen
            (&longest, true),
            (&too_long, false),
            ("", false),
            ("-acme", false),
            ("Acme", false),
            ("acme_prod", false),
            ("acme.prod", false),
            ("acme/prod", false),
            ("..", false),
            ("acme prod", false),
            ("acmé", false),
        ];
        for &(text, expected) in cases {
            assert_eq!(is_tenant_name(text), expected, "{text:?}");
        }
    }

    #[test]
    fn biased_bytes_are_rejected() {
        // 256 = 4·52 + 48 and 256 = 7·36 + 4: the top 48 (resp. 4) byte
        // values would favour the alphabet's first characters.
        let cases: &[(u8, &[u8], Option<char>)] = &[
            (0, STREAM_ID_ALPHABET, Some('A')),
            (51, STREAM_ID_ALPHABET, Some('z')),
            (52, STREAM_ID_ALPHABET, Some('A')),
            (207, STREAM_ID_ALPHABET, Some('z')),
            (208, STREAM_ID_ALPHABET, None),
            (255, STREAM_ID_ALPHABET, None),
            (0, KEY_ID_ALPHABET, Some('a')),
            (35, KEY_ID_ALPHABET, Some('9')),
            (251, KEY_ID_ALPHABET, Some('9')),
            (252, KEY_ID_ALPHABET, None),
        ];
        for &(byte, alphabet, expected) in cases {
            assert_eq!(char_for(byte, alphabet), expected, "byte {byte}");
        }
    }
}
