//! The open segment: a preallocated file, mapped into memory, that records
//! are copied into; and sealing, which makes it an immutable stored file.
//!
//! Why a shared mapping: once a record's bytes are copied into a
//! `MAP_SHARED` mapping they are in the kernel's page cache, so they survive
//! the process being killed at any instant after the copy (SPEC §3's default
//! promise) without a system call per record. Flushing to stable storage
//! (`durability = "disk"`) is a separate, grouped `fdatasync` of the file.
//!
//! Why preallocation: writing to a mapped page that the file system cannot
//! back raises SIGBUS. Space is reserved with `posix_fallocate` before any
//! byte of it is written, so a full disk surfaces as [`AppendError::NoSpace`]
//! (a 503) and never as a signal.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{MmapMut, MmapOptions};

use super::format;
use crate::control::snapshot::PayloadFormat;

/// How much file space is reserved at a time as a segment grows. Larger
/// steps mean fewer `fallocate` calls; smaller ones waste less disk on a
/// segment sealed early.
pub const GROW_STEP_BYTES: usize = 1 << 20;

/// How far ahead of the write position pages are faulted in, and in what
/// steps: one `MADV_POPULATE_WRITE` per step instead of a page fault per
/// 4 KiB, in steps small enough (a few tens of microseconds) that no
/// request waits behind a whole extent's worth of page faults.
pub const POPULATE_STEP_BYTES: usize = 256 << 10;

/// Why a record could not be appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendError {
    /// The segment has no room left under its size limit: seal it and
    /// start another.
    Full,
    /// The file system could not reserve space for the record.
    NoSpace,
    /// Reserving space failed for another reason.
    Io,
}

/// An open segment. Owned by exactly one writer at a time (the combiner of
/// its stream's ring), so appends need no synchronisation of their own.
pub struct SegmentWriter {
    /// The file, shared with group-commit flushes that may outlive a seal.
    file: Arc<File>,
    /// The writable mapping of the whole size limit; only the first
    /// `allocated_bytes` are backed by reserved file space.
    map: MmapMut,
    /// Bytes of file space reserved so far; never more than `map.len()`.
    allocated_bytes: usize,
    /// Bytes of the mapping populated so far (pages below
    /// `unmapped_bytes` have since been unmapped again); never more than
    /// `allocated_bytes`.
    populated_bytes: usize,
    /// Bytes of complete records; the file's length once sealed.
    len_bytes: usize,
    /// True when group commits flush this segment (`durability = "disk"`):
    /// see [`SegmentWriter::populate`].
    group_commits: bool,
    /// Pages below this offset are written and were unmapped by
    /// [`SegmentWriter::unmap_written`]; a multiple of the page size.
    unmapped_bytes: usize,
    records: u64,
    format: PayloadFormat,
    /// The UTC hour (hours since the epoch) this segment holds records of.
    pub hour: i64,
    /// When the segment was created, for `seal_after`.
    pub created_ms: i64,
    open_path: PathBuf,
    sealed_path: PathBuf,
}

impl SegmentWriter {
    /// Creates `<dir>/<sealed_name>.open`, reserves its first extent and maps
    /// `bytes_max` bytes of it. Creates `dir` if needed.
    pub fn create(
        dir: &Path,
        sealed_name: &str,
        format: PayloadFormat,
        hour: i64,
        created_ms: i64,
        bytes_max: usize,
    ) -> io::Result<SegmentWriter> {
        std::fs::create_dir_all(dir)?;
        let sealed_path = dir.join(sealed_name);
        let open_path = dir.join(format!("{sealed_name}.{}", super::OPEN_SUFFIX));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&open_path)?;
        // SAFETY: the file was just created with O_EXCL inside the data
        // directory, which only this process writes while it holds the
        // data-directory lock, so no one else truncates or writes it while the
        // mapping lives. The mapping may be longer than the file: we never
        // touch a byte at or past `allocated_bytes`, which is within the file.
        let map = unsafe { MmapOptions::new().len(bytes_max).map_mut(&file)? };
        let mut writer = SegmentWriter {
            file: Arc::new(file),
            map,
            allocated_bytes: 0,
            populated_bytes: 0,
            len_bytes: 0,
            group_commits: false,
            unmapped_bytes: 0,
            records: 0,
            format,
            hour,
            created_ms,
            open_path,
            sealed_path,
        };
        if let Err(error) = writer.reserve(GROW_STEP_BYTES.min(bytes_max)) {
            let _ = std::fs::remove_file(&writer.open_path);
            return Err(error);
        }
        Ok(writer)
    }

    /// Copies one complete record into the segment.
    pub fn append(&mut self, record: &[u8]) -> Result<(), AppendError> {
        debug_assert!(
            format::is_framed(self.format, record),
            "records are framed before append"
        );
        let end = self.len_bytes + record.len();
        if end > self.map.len() {
            return Err(AppendError::Full);
        }
        if end > self.allocated_bytes {
            let target = end.next_multiple_of(GROW_STEP_BYTES).min(self.map.len());
            self.reserve(target).map_err(|error| match error.raw_os_error() {
                Some(libc::ENOSPC) | Some(libc::EDQUOT) => AppendError::NoSpace,
                _ => AppendError::Io,
            })?;
        }
        assert!(end <= self.allocated_bytes, "writes stay within reserved space");
        if end > self.populated_bytes {
            self.populate(end, record.len());
        }
        self.map[self.len_bytes..end].copy_from_slice(record);
        self.len_bytes = end;
        self.records += 1;
        Ok(())
    }

    /// Reserves file space up to `target_bytes` (from the current end).
    fn reserve(&mut self, target_bytes: usize) -> io::Result<()> {
        assert!(target_bytes <= self.map.len());
        if target_bytes <= self.allocated_bytes {
            return Ok(());
        }
        let offset = self.allocated_bytes as libc::off_t;
        let len = (target_bytes - self.allocated_bytes) as libc::off_t;
        // SAFETY: plain system call on a file descriptor we own.
        let rc = unsafe { libc::posix_fallocate(self.file.as_raw_fd(), offset, len) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        self.allocated_bytes = target_bytes;
        Ok(())
    }

    /// Faults in the pages up to a step past `end` (within reserved space),
    /// in one call rather than one page fault per 4 KiB; for a record of
    /// `record_bytes` of half a page or more in a segment flushed by group
    /// commits, only up to `end`. Best effort: kernels before 5.14 answer
    /// EINVAL and the pages fault in on first write.
    ///
    /// Why the exception: a populated page is dirty, so the next group
    /// commit writes it to disk, zeros and all, and again once records
    /// fill it. Records of half a page or more fill pages faster than
    /// flushes come, so populating ahead nearly doubled what each cost the
    /// disk (9,000 instead of 5,100 bytes written per 3.9 KB record) and
    /// `disk` mode there is bound by the disk: exact population measured
    /// 22–27% more requests/s. Small records fill a page over many
    /// flushes; for them populating a step at once measured faster (the
    /// flushes after it write into blocks already written, ~290 instead of
    /// ~340 µs each at 300 bytes). See benches/results.
    fn populate(&mut self, end: usize, record_bytes: usize) {
        let ahead = !self.group_commits || record_bytes < page_size() / 2;
        let target = if ahead {
            end.next_multiple_of(POPULATE_STEP_BYTES) + POPULATE_STEP_BYTES
        } else {
            end.next_multiple_of(page_size())
        }
        .min(self.allocated_bytes);
        if target <= self.populated_bytes {
            return;
        }
        // Within reserved space (`target` ≤ `allocated_bytes`), so
        // prefaulting cannot raise SIGBUS; it changes no byte.
        self.advise(self.populated_bytes, target, libc::MADV_POPULATE_WRITE);
        self.populated_bytes = target;
    }

    /// Marks the segment as flushed by group commits, which changes how far
    /// ahead pages are populated.
    pub fn set_group_commits(&mut self) {
        self.group_commits = true;
    }

    /// Unmaps the pages written since the last call, the partly written
    /// last one included; their bytes stay in the page cache (dirty ones
    /// still dirty) and a later write to the last page maps it again.
    pub fn unmap_written(&mut self) {
        let page = page_size();
        let end = self.len_bytes.next_multiple_of(page);
        if end <= self.unmapped_bytes {
            return;
        }
        // On a shared file mapping MADV_DONTNEED only drops page-table
        // entries (marking the pages of dirty ones dirty): no byte of the
        // file changes.
        self.advise(self.unmapped_bytes, end, libc::MADV_DONTNEED);
        self.unmapped_bytes = self.len_bytes / page * page;
    }

    /// Gives the kernel `advice` for bytes `from..to` of the mapping; the
    /// callers give only advice that changes no byte of the file. Best
    /// effort: a refusal changes nothing either.
    fn advise(&mut self, from: usize, to: usize, advice: libc::c_int) {
        assert!(from <= to && to <= self.map.len().next_multiple_of(page_size()));
        // SAFETY: the range lies within the live mapping (which spans whole
        // pages), and the advice given changes no byte of it.
        unsafe {
            libc::madvise(self.map.as_mut_ptr().add(from).cast(), to - from, advice);
        }
    }

    pub fn len_bytes(&self) -> usize {
        self.len_bytes
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The file, for a group-commit flush.
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Stops writing: unmaps the segment and returns what sealing needs.
    pub fn finish(self) -> SealJob {
        SealJob {
            retired: std::time::Instant::now(),
            len_bytes: self.len_bytes as u64,
            records: self.records,
            open_path: self.open_path,
            sealed_path: self.sealed_path,
        }
    }
}

/// The system's page size.
fn page_size() -> usize {
    // SAFETY: plain query.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// A segment that takes no more records and waits to be sealed.
pub struct SealJob {
    /// When the segment stopped taking records, for the seal-lag metric.
    pub retired: std::time::Instant,
    pub len_bytes: u64,
    pub records: u64,
    pub open_path: PathBuf,
    pub sealed_path: PathBuf,
}

/// What a seal did, for telemetry.
#[derive(Debug)]
pub enum Sealed {
    /// The segment held records and is now a stored file.
    File {
        path: PathBuf,
        len_bytes: u64,
        records: u64,
    },
    /// The segment held no record and was removed.
    Empty,
}

/// Seals a segment: cuts the file to its records, flushes data and length,
/// renames `.open` away and flushes the folder, in that order, so that after
/// a crash at any point either the `.open` file (recovered on start) or the
/// complete sealed file exists.
pub fn seal(job: SealJob) -> io::Result<Sealed> {
    if job.records == 0 {
        std::fs::remove_file(&job.open_path)?;
        return Ok(Sealed::Empty);
    }
    // A descriptor of the sealer's own: the kernel reports a write-back
    // error once per open file, and the segment's file is shared with the
    // group commits of `durability = "disk"`. Had the sealer's fsync taken
    // the error on that shared file, a later group commit could succeed
    // and acknowledge a record whose page was lost.
    let file = OpenOptions::new().write(true).open(&job.open_path)?;
    file.set_len(job.len_bytes)?;
    file.sync_all()?;
    std::fs::rename(&job.open_path, &job.sealed_path)?;
    sync_dir(job.sealed_path.parent().expect("segments live in a folder"))?;
    // The sealed file's pages are clean now and no request reads them
    // again (couriers read sealed files later, sequentially): hand them
    // back, so that new segments reuse recently freed pages instead of the
    // page cache growing into memory never touched before, which costs a
    // fault and a zeroing per page (on this project's VM, 40% of the CPU
    // of a 254 KiB ingest; benches/results). Advice only: nothing is lost.
    // SAFETY: plain system call on a descriptor we own.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
    Ok(Sealed::File {
        path: job.sealed_path,
        len_bytes: job.len_bytes,
        records: job.records,
    })
}

/// Flushes a folder, so that names created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sluice-writer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn append_then_seal_leaves_exactly_the_records() {
        let dir = temp_dir("seal");
        let mut writer =
            SegmentWriter::create(&dir, "s.ndjson", PayloadFormat::Json, 0, 0, 4 << 20).expect("create");
        assert!(dir.join("s.ndjson.open").exists());
        writer.append(b"{\"a\":1}\n").expect("append");
        writer.append(b"{\"b\":2}\n").expect("append");
        let sealed = seal(writer.finish()).expect("seal");
        assert!(matches!(
            sealed,
            Sealed::File {
                records: 2,
                len_bytes: 16,
                ..
            }
        ));
        assert_eq!(
            std::fs::read(dir.join("s.ndjson")).expect("read"),
            b"{\"a\":1}\n{\"b\":2}\n"
        );
        assert!(!dir.join("s.ndjson.open").exists());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn growing_past_one_step_keeps_every_byte() {
        let dir = temp_dir("grow");
        let mut writer =
            SegmentWriter::create(&dir, "g.ndjson", PayloadFormat::Json, 0, 0, 4 << 20).expect("create");
        let record = [b"{\"k\":\"".as_slice(), &[b'x'; 1000], b"\"}\n"].concat();
        let count = (GROW_STEP_BYTES * 2) / record.len() + 3;
        for _ in 0..count {
            writer.append(&record).expect("append");
        }
        let Sealed::File { path, .. } = seal(writer.finish()).expect("seal") else {
            panic!("segment had records")
        };
        let stored = std::fs::read(path).expect("read");
        assert_eq!(stored.len(), count * record.len());
        assert!(
            stored
                .chunks(record.len())
                .all(|chunk| chunk == record.as_slice())
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_full_segment_refuses_the_record_that_does_not_fit() {
        let dir = temp_dir("full");
        let bytes_max = 2 * GROW_STEP_BYTES;
        let mut writer =
            SegmentWriter::create(&dir, "f.ndjson", PayloadFormat::Json, 0, 0, bytes_max).expect("create");
        let record = [b"{\"k\":\"".as_slice(), &vec![b'x'; bytes_max - 9], b"\"}\n"].concat();
        assert_eq!(record.len(), bytes_max);
        writer.append(&record).expect("one full-size record fits");
        assert_eq!(writer.append(b"{}\n"), Err(AppendError::Full));
        assert_eq!(writer.records(), 1);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// Resident bytes of the mapping of `path`, from /proc/self/smaps.
    fn mapped_resident_bytes(path: &Path) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let name = path.to_str().expect("utf-8 path");
        let mut lines = smaps.lines().skip_while(|line| !line.ends_with(name));
        lines.next().expect("the segment is mapped");
        let rss = lines
            .find_map(|line| line.strip_prefix("Rss:"))
            .expect("an Rss line");
        let kib: usize = rss
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .expect("a number");
        kib << 10
    }

    #[test]
    fn unmapping_written_pages_keeps_every_byte() {
        let dir = temp_dir("unmap");
        let mut writer =
            SegmentWriter::create(&dir, "u.ndjson", PayloadFormat::Json, 0, 0, 4 << 20).expect("create");
        let open_path = dir.join("u.ndjson.open");
        let record = [b"{\"k\":\"".as_slice(), &[b'x'; 990], b"\"}\n"].concat();
        for _ in 0..200 {
            writer.append(&record).expect("append");
        }
        let before = mapped_resident_bytes(&open_path);
        assert!(before >= 200 * record.len(), "{before}");
        writer.unmap_written();
        let after = mapped_resident_bytes(&open_path);
        assert!(
            after + 200 * record.len() - page_size() <= before,
            "{before} → {after}"
        );
        // Writing on into the partly written page, and past it, maps again.
        for _ in 0..200 {
            writer.append(&record).expect("append");
        }
        writer.unmap_written();
        writer.unmap_written();
        writer.append(&record).expect("append");
        let Sealed::File { path, records, .. } = seal(writer.finish()).expect("seal") else {
            panic!("segment had records")
        };
        assert_eq!(records, 401);
        assert_eq!(std::fs::read(path).expect("read"), record.repeat(401));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn group_commit_segments_populate_no_further_than_large_records_reach() {
        let dir = temp_dir("populate");
        let record = [b"{\"k\":\"".as_slice(), &[b'x'; 4 * 4096 - 9], b"\"}\n"].concat();
        let small = b"{\"k\":1}\n";
        for group_commits in [false, true] {
            let name = format!("p{group_commits}.ndjson");
            let mut writer =
                SegmentWriter::create(&dir, &name, PayloadFormat::Json, 0, 0, 4 << 20).expect("create");
            if group_commits {
                writer.set_group_commits();
            }
            writer.append(&record).expect("append");
            let resident = mapped_resident_bytes(&dir.join(format!("{name}.open")));
            if group_commits {
                assert_eq!(
                    resident,
                    record.len().next_multiple_of(page_size()),
                    "exactly the record's pages"
                );
            } else {
                assert!(resident >= POPULATE_STEP_BYTES, "{resident}: a step ahead");
            }
            // A small record still populates a step ahead.
            writer.append(small).expect("append");
            let resident = mapped_resident_bytes(&dir.join(format!("{name}.open")));
            assert!(resident >= POPULATE_STEP_BYTES, "{resident}");
            seal(writer.finish()).expect("seal");
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn an_empty_segment_is_removed_on_seal() {
        let dir = temp_dir("empty");
        let writer =
            SegmentWriter::create(&dir, "e.cbor", PayloadFormat::Xml, 0, 0, 4 << 20).expect("create");
        assert!(matches!(seal(writer.finish()).expect("seal"), Sealed::Empty));
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 0);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
