//! Property of segment recovery (`segment::format::valid_prefix` and
//! `segment::recover::recover_all`, SPEC §3).
//!
//! The input chooses a format and up to [`RECORDS_MAX`] records, which are
//! made by the real converters (so they are exactly what the append path
//! writes), laid end to end and followed by the zeros of preallocated space,
//! as in an open segment. Then it damages the image in one of three ways:
//!
//! - **Cut**: the file ends at a chosen byte (a crash mid-append, or a file
//!   system that kept only part of the last extent).
//! - **Lost pages**: chosen ranges past a chosen point read back as zeros
//!   (pages that never reached the disk before a power loss).
//! - **Bit flips**: chosen bits anywhere are inverted (media corruption).
//!
//! What must hold:
//!
//! - Nothing panics, and the recovered prefix is within the file.
//! - Every record that ends before the first damaged byte is recovered:
//!   damage never costs an intact, earlier record.
//! - For a cut or lost pages, recovery yields exactly the written records
//!   that precede the damage: it ends on a record boundary and never yields
//!   a record that was not written.
//! - For lost pages in a CBOR segment, only the first two hold for now:
//!   see [`CBOR_LOST_PAGES_EXACT`].
//! - For bit flips, only the first two hold. The format has no per-record
//!   checksum, so a flip that keeps a record well-formed (a letter inside a
//!   string, say) yields a changed record; no check can catch that without
//!   one, and media corruption is outside the crash model of SPEC §3.
//! - When the input asks for it, `recover_all` on a real data directory
//!   seals exactly the bytes `valid_prefix` chose.

use std::sync::atomic::{AtomicU64, Ordering};

use sluice::control::snapshot::PayloadFormat;
use sluice::convert::{JsonConverter, XmlConverter};
use sluice::segment::format::{is_framed, valid_prefix};
use sluice::segment::recover::{Recovered, recover_all};

use super::Input;

/// Records per image; enough to put damage before, inside and after several.
const RECORDS_MAX: usize = 12;

/// The bytes of zeros after the records, in units of this many bytes, so a
/// single choice byte spans up to two kilobytes of preallocated space.
const PADDING_UNIT_BYTES: usize = 8;

/// One input in this many also runs `recover_all` on a real data directory.
/// It creates, flushes and renames files, which costs a hundred times the
/// in-memory check, so it runs often enough to pair the two, not always.
const RECOVER_ALL_ONE_IN: u8 = 16;

/// How many damaged ranges or flipped bits one input may ask for.
const DAMAGES_MAX: usize = 8;

/// Whether lost pages in an XML (CBOR) segment must also yield exactly the
/// intact records, as they do in a JSON segment.
///
/// Known finding (fuzzing, issue 6): they do not. A zero byte is valid
/// inside CBOR (a NUL in a text string, the integer 0), so a record whose
/// tail pages never reached the disk can still decode as one map with one
/// text key: `{"r": {"@n": "0"}}` with one byte zeroed comes back as
/// `{"r": {"@\0": "0"}}`, a record that was never written (JSON cannot hit
/// this: a NUL is never valid in a JSON text). This needs a power loss, not
/// a `kill -9`, and hits only the unacknowledged tail in `disk` mode, but
/// recovery then stores a record nobody sent. `segment::format` now refuses
/// NUL in text and every type the converter never writes (integers, bytes,
/// floats, tags), which closed the first cases; fuzzing still finds records
/// whose zeroed tail decodes as valid converter output, so only a
/// per-record checksum in open segments closes it. Keep `false` until then.
const CBOR_LOST_PAGES_EXACT: bool = false;

/// Distinguishes the data directories of concurrent checks in one process
/// (the test harness runs checks on several threads).
static RUN: AtomicU64 = AtomicU64::new(0);

/// How the image is damaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Damage {
    Cut,
    LostPages,
    BitFlips,
}

/// Runs the property on one fuzz input.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let format = if input.byte() % 2 == 0 {
        PayloadFormat::Json
    } else {
        PayloadFormat::Xml
    };
    let damage = [Damage::Cut, Damage::LostPages, Damage::BitFlips][input.choose(3)];
    let run_recover_all = input.byte() % RECOVER_ALL_ONE_IN == 0;
    let count = 1 + input.choose(RECORDS_MAX);
    let mut records = Vec::with_capacity(count);
    for number in 0..count {
        let len = usize::from(input.byte()) * 2;
        records.push(record(format, number, input.take(len)));
    }
    let padding = usize::from(input.byte()) * PADDING_UNIT_BYTES;
    let mut image = records.concat();
    image.resize(image.len() + padding, 0);
    // ends[k] is where the first k records end.
    let ends: Vec<usize> = std::iter::once(0)
        .chain(records.iter().scan(0, |end, record| {
            *end += record.len();
            Some(*end)
        }))
        .collect();

    let damaged = apply(damage, &image, &mut input);
    let first_damaged = image
        .iter()
        .zip(&damaged)
        .position(|(written, read)| written != read)
        .unwrap_or(damaged.len());

    let (len, recovered) = valid_prefix(format, &damaged);
    let recovered = usize::try_from(recovered).expect("record counts fit in usize");
    assert!(len <= damaged.len(), "the prefix is within the file");
    let intact = ends.iter().filter(|&&end| end <= first_damaged).count() - 1;
    assert!(
        recovered >= intact,
        "{intact} records precede the damage at {first_damaged}, only {recovered} recovered"
    );
    let exact = match damage {
        Damage::Cut => true,
        Damage::LostPages => format == PayloadFormat::Json || CBOR_LOST_PAGES_EXACT,
        Damage::BitFlips => false,
    };
    if exact {
        assert_eq!(
            (recovered, len),
            (intact, ends[intact]),
            "{damage:?} at {first_damaged}: recovery yields exactly the intact records"
        );
    }
    if run_recover_all {
        check_recover_all(format, &damaged, len, recovered);
    }
}

/// One record as the append path would write it, built by the real
/// converter from a small document that carries `number` and `content`.
fn record(format: PayloadFormat, number: usize, content: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(content);
    let mut out = Vec::new();
    match format {
        PayloadFormat::Json => {
            let body = serde_json::json!({ "n": number, "b": text }).to_string();
            JsonConverter::new()
                .convert(body.as_bytes(), &mut out)
                .expect("serde_json's output is a JSON object");
        }
        PayloadFormat::Xml => {
            let body = format!("<r n=\"{number}\">{}</r>", xml_text(&text));
            XmlConverter::new()
                .convert(body.as_bytes(), &mut out)
                .expect("an element with escaped text is a well-formed document");
        }
    }
    assert!(is_framed(format, &out), "the converter frames its records");
    out
}

/// `text` as XML character data: markup characters escaped, and characters
/// XML 1.0 does not allow in a document dropped.
fn xml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' | '\n' | '\r' => out.push(character),
            '\u{0}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}' => {}
            _ => out.push(character),
        }
    }
    out
}

/// The image after `damage`, with its details read from `input`.
fn apply(damage: Damage, image: &[u8], input: &mut Input<'_>) -> Vec<u8> {
    let mut damaged = image.to_vec();
    let position = |input: &mut Input<'_>| usize::from(input.u16()) % (image.len() + 1);
    match damage {
        Damage::Cut => damaged.truncate(position(input)),
        Damage::LostPages => {
            let from = position(input);
            for _ in 0..1 + input.choose(DAMAGES_MAX) {
                let start = from + usize::from(input.u16()) % (image.len() - from + 1);
                let end = (start + 1 + usize::from(input.u16())).min(image.len());
                damaged[start.min(end)..end].fill(0);
            }
        }
        Damage::BitFlips => {
            for _ in 0..1 + input.choose(DAMAGES_MAX) {
                let at = position(input);
                let bit = input.byte() % 8;
                if let Some(byte) = damaged.get_mut(at) {
                    *byte ^= 1 << bit;
                }
            }
        }
    }
    damaged
}

/// Writes `damaged` as an open segment in a fresh data directory, runs
/// startup recovery, and checks it sealed exactly the chosen prefix.
fn check_recover_all(format: PayloadFormat, damaged: &[u8], len: usize, records: usize) {
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let data_dir = std::env::temp_dir().join(format!("sluice-fuzz-recover-{}-{run}", std::process::id()));
    let hour_dir = data_dir.join("tenants/acme/streams/is-FuzzFuzz/2026-01-01/00");
    std::fs::create_dir_all(&hour_dir).expect("create the hour folder");
    let sealed = hour_dir.join(format!(
        "is-FuzzFuzz_20260101T000000.000000Z.{}",
        format.sealed_suffix()
    ));
    let open = sealed.with_extension(format!("{}.open", format.sealed_suffix()));
    std::fs::write(&open, damaged).expect("write the open segment");

    let outcome = recover_all(&data_dir).expect("recovery succeeds");
    // Dropped: the bytes after the kept prefix up to the last non-zero one
    // (the zeros of never-written space are not data).
    let torn_end = damaged[len..]
        .iter()
        .rposition(|&byte| byte != 0)
        .map_or(len, |last| len + last + 1);
    assert_eq!(
        outcome,
        Recovered {
            segments: 1,
            records: records as u64,
            dropped_bytes: (torn_end - len) as u64,
        }
    );
    assert!(!open.exists(), "the open segment is gone");
    if records == 0 {
        assert!(!sealed.exists(), "a segment without records is removed");
    } else {
        let stored = std::fs::read(&sealed).expect("the sealed file exists");
        assert!(stored == damaged[..len], "the sealed file is the valid prefix");
    }
    std::fs::remove_dir_all(&data_dir).expect("remove the data directory");
}
