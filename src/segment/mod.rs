//! Hourly segment files: where accepted records live on disk.
//!
//! A stream's records go to `<data-dir>/tenants/<tenant>/streams/<stream-id>/
//! <YYYY-MM-DD>/<HH>/` by the UTC hour they were written (SPEC §3). A segment
//! being written carries the suffix `.open`; sealing truncates it to its
//! records, flushes it and renames it to `.ndjson` or `.cbor`, after which it
//! never changes. Only [`writer`] touches mapped memory.
//!
//! - [`writer`]: create, append (memory-mapped), seal.
//! - [`format`]: what one stored record looks like, checked on read-back.
//! - [`recover`]: after a crash, keep complete records of open segments and seal them.

pub mod format;
pub mod recover;
pub mod writer;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::clock::HOUR_SECONDS;
use crate::control::snapshot::PayloadFormat;

/// The suffix of a segment that is still being written.
pub const OPEN_SUFFIX: &str = "open";

/// `<data-dir>/tenants/<tenant>/streams/<stream-id>`.
pub fn stream_dir(data_dir: &Path, tenant: &str, stream_id: &str) -> PathBuf {
    data_dir
        .join("tenants")
        .join(tenant)
        .join("streams")
        .join(stream_id)
}

/// The folder of one UTC hour of a stream: `<stream-dir>/<YYYY-MM-DD>/<HH>`.
pub fn hour_dir(stream_dir: &Path, hour: i64) -> PathBuf {
    let start = utc(hour * HOUR_SECONDS * 1000);
    stream_dir
        .join(start.format("%Y-%m-%d").to_string())
        .join(start.format("%H").to_string())
}

/// The sealed file name of a segment created at `created_ms`:
/// `<stream-id>_<YYYYMMDD>T<HHMMSS>.<micros>Z.<ndjson|cbor>`. Names sort by
/// creation time, and carry the stream id so a file copied elsewhere still
/// says where it came from.
pub fn sealed_name(stream_id: &str, created_ms: i64, nonce: u32, format: PayloadFormat) -> String {
    let created = utc(created_ms);
    format!(
        "{stream_id}_{}{:03}{:03}Z.{}",
        created.format("%Y%m%dT%H%M%S."),
        created_ms.rem_euclid(1000),
        nonce % 1000,
        format.sealed_suffix()
    )
}

fn utc(unix_ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(unix_ms).expect("segment times are within chrono's range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_spec() {
        let dir = stream_dir(Path::new("/d"), "acme", "is-AbCDefGH");
        assert_eq!(dir, Path::new("/d/tenants/acme/streams/is-AbCDefGH"));
        // 2026-11-27T07:00:00Z is 1_795_762_800 s after the epoch.
        assert!(hour_dir(&dir, 1_795_762_800 / 3600).ends_with("2026-11-27/07"));
        assert!(hour_dir(&dir, 0).ends_with("1970-01-01/00"));
        assert!(hour_dir(&dir, 23).ends_with("1970-01-01/23"));
        assert!(hour_dir(&dir, 24).ends_with("1970-01-02/00"));
    }

    #[test]
    fn names_sort_by_creation_and_carry_the_suffix() {
        let a = sealed_name("is-AbCDefGH", 1_000, 1, PayloadFormat::Json);
        let b = sealed_name("is-AbCDefGH", 2_000, 0, PayloadFormat::Json);
        assert_eq!(a, "is-AbCDefGH_19700101T000001.000001Z.ndjson");
        assert!(a < b);
        assert!(sealed_name("is-x", 0, 0, PayloadFormat::Xml).ends_with(".cbor"));
    }
}
