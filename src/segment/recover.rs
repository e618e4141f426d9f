//! Recovery of segments left open by a crash.
//!
//! On start, before any listener is bound, every `.open` file under the data
//! directory is cut to its valid prefix of complete records (SPEC §3: a torn
//! tail is dropped) and sealed; one without any complete record is removed.
//! Everything acknowledged before the crash is in that prefix: records are
//! appended by one writer at a time, so a crash can only cut the last one.

use std::io;
use std::path::{Path, PathBuf};

use super::format;
use super::writer::{self, SealJob, Sealed};
use crate::control::snapshot::PayloadFormat;

/// What recovery did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Open segments found.
    pub segments: u64,
    /// Complete records kept and sealed.
    pub records: u64,
    /// Bytes of torn records dropped: the tail after the last complete
    /// record up to its last non-zero byte. The zeros of preallocated
    /// space never written are not counted; they were never data.
    pub dropped_bytes: u64,
}

/// Recovers every open segment under `<data_dir>/tenants`.
pub fn recover_all(data_dir: &Path) -> io::Result<Recovered> {
    let mut recovered = Recovered::default();
    for path in open_segments(&data_dir.join("tenants"))? {
        recover_one(&path, &mut recovered)?;
    }
    Ok(recovered)
}

/// Lists `tenants/*/streams/*/<date>/<hour>/*.open`.
fn open_segments(tenants: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut level = vec![tenants.to_path_buf()];
    // tenant, "streams", stream, date, hour: five folder levels.
    for depth in 0..5 {
        let mut next = Vec::new();
        for dir in level {
            for entry in read_dir_or_empty(&dir)? {
                let entry = entry?;
                if !entry.file_type()?.is_dir() {
                    continue;
                }
                if depth == 1 && entry.file_name() != "streams" {
                    continue;
                }
                next.push(entry.path());
            }
        }
        level = next;
    }
    for dir in level {
        for entry in read_dir_or_empty(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == super::OPEN_SUFFIX) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn read_dir_or_empty(dir: &Path) -> io::Result<Vec<io::Result<std::fs::DirEntry>>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries.collect()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

fn recover_one(open_path: &Path, recovered: &mut Recovered) -> io::Result<()> {
    let sealed_path = open_path.with_extension("");
    let format = match sealed_path.extension().and_then(|ext| ext.to_str()) {
        Some("ndjson") => PayloadFormat::Json,
        Some("cbor") => PayloadFormat::Xml,
        // Not a name sluice writes: leave it for the operator.
        _ => return Ok(()),
    };
    let bytes = std::fs::read(open_path)?;
    let (len, records) = format::valid_prefix(format, &bytes);
    recovered.segments += 1;
    recovered.records += records;
    let torn_end = bytes[len..]
        .iter()
        .rposition(|&byte| byte != 0)
        .map_or(len, |last| len + last + 1);
    recovered.dropped_bytes += (torn_end - len) as u64;
    let job = SealJob {
        retired: std::time::Instant::now(),
        len_bytes: len as u64,
        records,
        open_path: open_path.to_path_buf(),
        sealed_path,
    };
    match writer::seal(job)? {
        Sealed::File { .. } | Sealed::Empty => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_tails_are_dropped_and_complete_records_sealed() {
        let data = std::env::temp_dir().join(format!("sluice-recover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let hour = data.join("tenants/acme/streams/is-AbCDefGH/2026-11-27/07");
        std::fs::create_dir_all(&hour).expect("mkdir");
        let mut torn = b"{\"n\":1}\n{\"n\":2}\n{\"n\":".to_vec();
        torn.extend_from_slice(&[0; 4096]);
        std::fs::write(hour.join("a.ndjson.open"), &torn).expect("write");
        std::fs::write(hour.join("b.ndjson.open"), [0u8; 100]).expect("write");
        std::fs::write(hour.join("c.ndjson"), b"{\"sealed\":true}\n").expect("write");

        let recovered = recover_all(&data).expect("recover");
        assert_eq!(recovered.segments, 2);
        assert_eq!(recovered.records, 2);
        // The torn `{"n":`, not the preallocated zeros after it.
        assert_eq!(recovered.dropped_bytes, 5);
        assert_eq!(
            std::fs::read(hour.join("a.ndjson")).expect("a"),
            b"{\"n\":1}\n{\"n\":2}\n"
        );
        assert!(!hour.join("a.ndjson.open").exists());
        assert!(!hour.join("b.ndjson.open").exists());
        assert!(!hour.join("b.ndjson").exists());
        assert_eq!(
            std::fs::read(hour.join("c.ndjson")).expect("c"),
            b"{\"sealed\":true}\n"
        );
        assert_eq!(recover_all(&data).expect("again"), Recovered::default());
        std::fs::remove_dir_all(&data).expect("cleanup");
    }
}
