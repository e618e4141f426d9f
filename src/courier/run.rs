//! Courier runs: pick a courier's sealed files in a window, load each one
//! exactly once through the courier's load operations, and record the run.
//!
//! What a run does, in order (SPEC §5):
//! 1. Records itself as `running` (an id `run-` + 12 random characters).
//! 2. Picks the sealed files of the courier's stream whose UTC hour folder
//!    lies in the window (and is the courier's hour, if it has one), in
//!    age order, leaving out the files this courier already loaded.
//!    `.open` files and anything else not ending in the courier's format
//!    are never picked. A file is in `Range { from, to }` when its hour
//!    `[H, H+1h)` overlaps `[from, to)`; `Day(d)` is that UTC day; `All` is
//!    every folder.
//! 3. Records the picked files as the courier's sample files, whatever
//!    happens next, so `{}` runs and failing runs still offer samples.
//! 4. Checks its load operations: a feed id that does not exist fails the
//!    run with `Cannot find required feeds: "<id>"` (several: comma and
//!    space separated, each quoted) and loads nothing; an existing but
//!    inactive feed fails it with `Feeds are not active: "<id>"`. With `{}`
//!    the run loads nothing and succeeds.
//! 5. Loads file by file: one tables.db transaction per file holds every
//!    target table's rows and the ledger entry, so a process killed
//!    mid-file leaves that file unloaded and a rerun loads it whole, and a
//!    loaded file is never loaded again by this courier (other couriers
//!    keep their own ledgers). A file that fails to load fails the run; the
//!    files before it stay loaded, and the next run continues after them.
//! 6. Records how it ended: `succeeded` with `Completed in 5 minutes 12
//!    seconds`, or `failed` with the reason.
//!
//! A run's `files` are the files it picked (for a loading run: the files it
//! loaded); `records` are the records in the files it loaded, each counted
//! once however many feeds it feeds; `rejected` are rows sent to rejects
//! tables, summed over the feeds.
//!
//! Loading activation samples (`feed activate --load-sample`) writes no
//! ledger entry: the sample's records loaded again by a courier are
//! re-deliveries, which change nothing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use crate::control::couriers::{self, CourierError, CourierRecord, RunOutcome};
use crate::control::store::Store;
use crate::segment;
use crate::tables::{LedgerEntry, LoadCounts, Tables};

/// Seconds in a minute and an hour, for the humanizer.
const MINUTE_SECONDS: u64 = 60;
const HOUR_SECONDS: u64 = 3600;

/// Which hours of files a run takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// One UTC day.
    Day(NaiveDate),
    /// Hours overlapping `[from, to)`.
    Range { from: DateTime<Utc>, to: DateTime<Utc> },
    /// Every sealed file.
    All,
}

impl Window {
    /// True when the hour starting at `hour_start` belongs to the window.
    pub fn includes_hour(&self, hour_start: DateTime<Utc>) -> bool {
        match self {
            Window::Day(day) => hour_start.date_naive() == *day,
            Window::Range { from, to } => hour_start < *to && hour_start + chrono::Duration::hours(1) > *from,
            Window::All => true,
        }
    }

    /// True when some hour of `day` may belong to the window; lets the
    /// listing skip whole day folders.
    fn includes_day(&self, day: NaiveDate) -> bool {
        match self {
            Window::Day(wanted) => day == *wanted,
            Window::Range { from, to } => {
                let start = Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN));
                start < *to && start + chrono::Duration::days(1) > *from
            }
            Window::All => true,
        }
    }

    /// How run records show the window.
    pub fn describe(&self) -> String {
        match self {
            Window::Day(day) => format!("day {day}"),
            Window::Range { from, to } => format!(
                "from {} to {}",
                from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Window::All => "all".to_string(),
        }
    }
}

/// What a run did, as the scheduler and the CLI report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSummary {
    pub run_id: String,
    pub succeeded: bool,
    pub files: u64,
    pub records: u64,
    pub rejected: u64,
    pub duration_ms: u64,
    /// `Completed in …` or why the run failed.
    pub message: String,
}

/// One sealed file a run may pick.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SealedFile {
    path: PathBuf,
    /// The path relative to the tenant's directory: the ledger's key.
    key: String,
    /// `<YYYY-MM-DD>/<HH>/<name>`: orders files by age.
    sort_key: String,
}

/// Every sealed file of the courier's stream in `window` (its file
/// pattern hour applied), loaded or not: what decides whether a group run
/// waits (SPEC §6: it waits only while the window holds no sealed file at
/// all).
pub fn window_files(
    data_dir: &std::path::Path,
    tenant: &str,
    courier: &str,
    window: &Window,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let store = Store::open(data_dir)?;
    let record = couriers::courier_show(&store, tenant, courier)?;
    let files = in_window(data_dir, &record, window)?;
    Ok(files.into_iter().map(|file| file.path).collect())
}

/// Runs a courier over a window and records the run. A run that fails
/// (unknown feed, unreadable file) is `Ok` with `succeeded: false`; `Err`
/// means the run could not even be recorded (unknown courier, database
/// unavailable).
pub fn run_courier(
    data_dir: &std::path::Path,
    tenant: &str,
    courier: &str,
    window: &Window,
    trigger: &str,
) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    let mut store = Store::open(data_dir)?;
    let record = couriers::courier_show(&store, tenant, courier)?;
    let (run_id, interrupted) =
        couriers::run_start(&mut store, tenant, courier, trigger, &window.describe())?;
    if !interrupted.is_empty() {
        // The files those runs committed stay loaded (the next run skips
        // them), so they are theirs to report.
        let tables = Tables::open(data_dir, tenant)?;
        for id in &interrupted {
            let (files, counts) = tables.loaded_by_run(id)?;
            couriers::run_set_loaded(&mut store, tenant, id, files, counts.records, counts.rejected)?;
        }
    }
    let (succeeded, files, counts, failure) = match execute(data_dir, &mut store, &record, window, &run_id) {
        Ok(Progress {
            files,
            counts,
            failure,
        }) => (failure.is_none(), files, counts, failure),
        Err(error) => (false, 0, LoadCounts::default(), Some(format!("{error:#}"))),
    };
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let message = failure.unwrap_or_else(|| format!("Completed in {}", humanize_duration(duration_ms)));
    let outcome = RunOutcome {
        succeeded,
        files,
        records: counts.records,
        rejected: counts.rejected,
        duration_ms,
        message,
    };
    couriers::run_finish(&mut store, tenant, &run_id, &outcome)?;
    Ok(RunSummary {
        run_id,
        succeeded: outcome.succeeded,
        files: outcome.files,
        records: outcome.records,
        rejected: outcome.rejected,
        duration_ms,
        message: outcome.message,
    })
}

/// How far a run got; `failure` says why it stopped early.
struct Progress {
    files: u64,
    counts: LoadCounts,
    failure: Option<String>,
}

/// Steps 2–5 of the module doc.
fn execute(
    data_dir: &Path,
    store: &mut Store,
    courier: &CourierRecord,
    window: &Window,
    run_id: &str,
) -> anyhow::Result<Progress> {
    let tenant = courier.tenant.as_str();
    let mut tables = Tables::open(data_dir, tenant)?;
    let pending = pending_for(data_dir, courier, window, &tables)?;
    let samples: Vec<(String, String)> = pending
        .iter()
        .map(|file| (file.path.to_string_lossy().into_owned(), file.sort_key.clone()))
        .collect();
    couriers::samples_add(store, tenant, &courier.name, run_id, &samples)?;
    let picked = Progress {
        files: pending.len() as u64,
        counts: LoadCounts::default(),
        failure: None,
    };

    let mut missing = Vec::new();
    let mut inactive = Vec::new();
    let mut specs = Vec::new();
    for feed_id in courier.load_ops.feeds.keys() {
        match couriers::feed_show(store, tenant, feed_id) {
            Ok(feed) if feed.active => specs.push(feed.table_spec()),
            Ok(_) => inactive.push(format!("\"{feed_id}\"")),
            Err(CourierError::UnknownFeed { .. }) => missing.push(format!("\"{feed_id}\"")),
            Err(error) => return Err(error.into()),
        }
    }
    if !missing.is_empty() {
        return Ok(Progress {
            failure: Some(format!("Cannot find required feeds: {}", missing.join(", "))),
            ..picked
        });
    }
    if !inactive.is_empty() {
        return Ok(Progress {
            failure: Some(format!("Feeds are not active: {}", inactive.join(", "))),
            ..picked
        });
    }
    if specs.is_empty() {
        return Ok(picked);
    }

    let targets: Vec<&crate::tables::TableSpec> = specs.iter().collect();
    let mut progress = Progress {
        files: 0,
        counts: LoadCounts::default(),
        failure: None,
    };
    for file in &pending {
        let entry = LedgerEntry {
            courier: &courier.name,
            file: &file.key,
            run_id,
        };
        match tables.load_file(&targets, &file.path, Some(entry)) {
            Ok(Some(counts)) => {
                progress.files += 1;
                progress.counts += counts;
            }
            // Another run of this courier loaded it meanwhile.
            Ok(None) => {}
            Err(error) => {
                progress.failure = Some(format!("Failed to load {}: {error}", file.path.display()));
                break;
            }
        }
    }
    Ok(progress)
}

/// The courier's sealed files in the window, oldest first, less those in
/// its ledger.
fn pending_for(
    data_dir: &Path,
    courier: &CourierRecord,
    window: &Window,
    tables: &Tables,
) -> anyhow::Result<Vec<SealedFile>> {
    let loaded = tables.loaded_files(&courier.name)?;
    let mut files = in_window(data_dir, courier, window)?;
    files.retain(|file| !loaded.contains(&file.key));
    Ok(files)
}

/// The sealed files of the courier's stream in the window (its file
/// pattern hour applied), oldest first, loaded or not.
fn in_window(data_dir: &Path, courier: &CourierRecord, window: &Window) -> anyhow::Result<Vec<SealedFile>> {
    let stream_dir = segment::stream_dir(data_dir, &courier.tenant, &courier.stream_id);
    sealed_files(&stream_dir, courier.format.suffix(), courier.hour, window)
        .with_context(|| format!("cannot list {}", stream_dir.display()))
}

/// Lists `<stream-dir>/<YYYY-MM-DD>/<HH>/*.<suffix>` in the window, sorted
/// by age. Folders and files that do not have the layout's names are
/// skipped: nothing else in the stream directory is a sealed file.
fn sealed_files(
    stream_dir: &Path,
    suffix: &str,
    hour: Option<u8>,
    window: &Window,
) -> std::io::Result<Vec<SealedFile>> {
    let mut files = Vec::new();
    let Some(stream_id) = stream_dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
    else {
        return Ok(files);
    };
    for (day_name, day_dir) in subdirectories(stream_dir)? {
        let Ok(day) = NaiveDate::parse_from_str(&day_name, "%Y-%m-%d") else {
            continue;
        };
        if day_name.len() != 10 || !window.includes_day(day) {
            continue;
        }
        for (hour_name, hour_dir) in subdirectories(&day_dir)? {
            let Some(folder_hour) = parse_hour_folder(&hour_name) else {
                continue;
            };
            if hour.is_some_and(|wanted| wanted != folder_hour) {
                continue;
            }
            let hour_start = Utc.from_utc_datetime(
                &day.and_hms_opt(u32::from(folder_hour), 0, 0)
                    .expect("hour folders are 00-23"),
            );
            if !window.includes_hour(hour_start) {
                continue;
            }
            for entry in std::fs::read_dir(&hour_dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let sealed = name
                    .strip_suffix(suffix)
                    .is_some_and(|stem| stem.ends_with('.') && !stem.starts_with('.'));
                if !sealed || !entry.file_type()?.is_file() {
                    continue;
                }
                files.push(SealedFile {
                    path: entry.path(),
                    key: format!("streams/{stream_id}/{day_name}/{hour_name}/{name}"),
                    sort_key: format!("{day_name}/{hour_name}/{name}"),
                });
            }
        }
    }
    files.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
    Ok(files)
}

/// `HH` with `00` ≤ HH ≤ `23`, exactly two digits as the segment writer
/// names them.
fn parse_hour_folder(name: &str) -> Option<u8> {
    if name.len() != 2 || !name.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    name.parse().ok().filter(|hour| *hour <= 23)
}

/// The subdirectories of `dir` with their names; none if it is missing.
fn subdirectories(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            found.push((entry.file_name().to_string_lossy().into_owned(), entry.path()));
        }
    }
    Ok(found)
}

/// `n` and a noun, plural unless `n` is 1: `1 file`, `2 files`, `0 records`.
pub fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A duration as the seed's notifications say it: `5 minutes 12 seconds`,
/// `1 hour 1 second`, `0 seconds`. Whole seconds, rounded down; zero units
/// are left out; seconds alone are shown when everything is zero.
pub fn humanize_duration(duration_ms: u64) -> String {
    let seconds_total = duration_ms / 1000;
    let hours = seconds_total / HOUR_SECONDS;
    let minutes = seconds_total % HOUR_SECONDS / MINUTE_SECONDS;
    let seconds = seconds_total % MINUTE_SECONDS;
    let unit = |count: u64, name: &str| {
        if count == 1 {
            format!("1 {name}")
        } else {
            format!("{count} {name}s")
        }
    };
    let mut parts = Vec::with_capacity(3);
    if hours > 0 {
        parts.push(unit(hours, "hour"));
    }
    if minutes > 0 {
        parts.push(unit(minutes, "minute"));
    }
    if seconds > 0 || parts.is_empty() {
        parts.push(unit(seconds, "second"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::control::couriers::{CourierSpec, FeedDraft, FileFormat, LoadOps};
    use crate::control::snapshot::PayloadFormat;

    /// Sealed files of the courier's stream in the window not yet loaded
    /// by this courier (what a run would load).
    fn pending_files(
        data_dir: &std::path::Path,
        tenant: &str,
        courier: &str,
        window: &Window,
    ) -> anyhow::Result<Vec<std::path::PathBuf>> {
        let store = Store::open(data_dir)?;
        let record = couriers::courier_show(&store, tenant, courier)?;
        let tables = Tables::open(data_dir, tenant)?;
        let pending = pending_for(data_dir, &record, window, &tables)?;
        Ok(pending.into_iter().map(|file| file.path).collect())
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(label: &str) -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let unique = NEXT.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("sluice-run-test-{}-{label}-{unique}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("mkdir");
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn humanizer_table() {
        let cases: &[(u64, &str)] = &[
            (0, "0 seconds"),
            (999, "0 seconds"),
            (1_000, "1 second"),
            (2_500, "2 seconds"),
            (60_000, "1 minute"),
            (61_000, "1 minute 1 second"),
            (312_000, "5 minutes 12 seconds"),
            (3_600_000, "1 hour"),
            (3_661_000, "1 hour 1 minute 1 second"),
            (7_322_000, "2 hours 2 minutes 2 seconds"),
            (90_000_000, "25 hours"),
        ];
        for &(ms, expected) in cases {
            assert_eq!(humanize_duration(ms), expected, "{ms}");
        }
    }

    #[test]
    fn counts_are_singular_only_for_one() {
        assert_eq!(counted(0, "file"), "0 files");
        assert_eq!(counted(1, "file"), "1 file");
        assert_eq!(counted(2, "record"), "2 records");
    }

    #[test]
    fn window_selection_table() {
        let range = Window::Range {
            from: utc("2026-01-31T10:30:00Z"),
            to: utc("2026-01-31T12:00:00Z"),
        };
        let cases: &[(Window, &str, bool)] = &[
            (Window::Day(day("2026-01-31")), "2026-01-31T00:00:00Z", true),
            (Window::Day(day("2026-01-31")), "2026-01-31T23:00:00Z", true),
            (Window::Day(day("2026-01-31")), "2026-02-01T00:00:00Z", false),
            (Window::Day(day("2026-01-31")), "2026-01-30T23:00:00Z", false),
            // [10:00, 11:00) overlaps [10:30, 12:00).
            (range, "2026-01-31T10:00:00Z", true),
            (range, "2026-01-31T11:00:00Z", true),
            // [12:00, 13:00) starts at `to`, which is exclusive.
            (range, "2026-01-31T12:00:00Z", false),
            // [09:00, 10:00) ends before `from`.
            (range, "2026-01-31T09:00:00Z", false),
            (Window::All, "1999-01-01T00:00:00Z", true),
        ];
        for (window, hour, expected) in cases {
            assert_eq!(window.includes_hour(utc(hour)), *expected, "{window:?} {hour}");
        }
        assert_eq!(
            range.describe(),
            "from 2026-01-31T10:30:00Z to 2026-01-31T12:00:00Z"
        );
        assert_eq!(Window::Day(day("2026-01-31")).describe(), "day 2026-01-31");
    }

    #[test]
    fn sealed_files_follow_the_layout_and_the_window() {
        let dir = TempDir::new("listing");
        let stream_dir = dir.0.join("is-AbCDefGH");
        let files = [
            "2026-01-31/10/is-AbCDefGH_20260131T100000.000001Z.ndjson",
            "2026-01-31/10/is-AbCDefGH_20260131T100500.000001Z.ndjson",
            "2026-01-31/10/is-AbCDefGH_20260131T101000.000001Z.open",
            "2026-01-31/11/is-AbCDefGH_20260131T110000.000001Z.ndjson",
            "2026-01-31/11/is-AbCDefGH_20260131T110000.000001Z.cbor",
            "2026-01-31/12/is-AbCDefGH_20260131T120000.000001Z.ndjson",
            "2026-02-01/00/is-AbCDefGH_20260201T000000.000001Z.ndjson",
            "2026-02-01/24/stray.ndjson",
            "notes/00/stray.ndjson",
            "2026-02-01/00/.hidden.ndjson",
        ];
        for file in files {
            let path = stream_dir.join(file);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, b"{}\n").expect("write");
        }
        let names = |hour: Option<u8>, window: Window| -> Vec<String> {
            sealed_files(&stream_dir, "ndjson", hour, &window)
                .expect("list")
                .into_iter()
                .map(|file| file.sort_key)
                .collect()
        };
        assert_eq!(
            names(None, Window::All),
            [
                "2026-01-31/10/is-AbCDefGH_20260131T100000.000001Z.ndjson",
                "2026-01-31/10/is-AbCDefGH_20260131T100500.000001Z.ndjson",
                "2026-01-31/11/is-AbCDefGH_20260131T110000.000001Z.ndjson",
                "2026-01-31/12/is-AbCDefGH_20260131T120000.000001Z.ndjson",
                "2026-02-01/00/is-AbCDefGH_20260201T000000.000001Z.ndjson",
            ]
        );
        assert_eq!(names(None, Window::Day(day("2026-02-01"))).len(), 1);
        assert_eq!(names(Some(10), Window::All).len(), 2);
        assert_eq!(names(Some(10), Window::Day(day("2026-02-01"))).len(), 0);
        let range = Window::Range {
            from: utc("2026-01-31T10:59:59Z"),
            to: utc("2026-01-31T11:00:01Z"),
        };
        assert_eq!(
            names(None, range),
            [
                "2026-01-31/10/is-AbCDefGH_20260131T100000.000001Z.ndjson",
                "2026-01-31/10/is-AbCDefGH_20260131T100500.000001Z.ndjson",
                "2026-01-31/11/is-AbCDefGH_20260131T110000.000001Z.ndjson",
            ]
        );
        let cbor = sealed_files(&stream_dir, "cbor", None, &Window::All).expect("list");
        assert_eq!(cbor.len(), 1);
        assert_eq!(
            cbor[0].key,
            "streams/is-AbCDefGH/2026-01-31/11/is-AbCDefGH_20260131T110000.000001Z.cbor"
        );
        assert!(
            sealed_files(&dir.0.join("missing"), "ndjson", None, &Window::All)
                .expect("list")
                .is_empty()
        );
    }

    /// A tenant with a JSON stream holding two sealed files of today, and a
    /// courier named `web` over it with the given load operations.
    fn fixture(label: &str) -> (TempDir, Store, String) {
        let dir = TempDir::new(label);
        let mut store = Store::open(&dir.0).expect("store");
        store.tenant_add("acme").expect("tenant");
        let stream = store
            .stream_add("acme", "web", PayloadFormat::Json, "")
            .expect("stream");
        let hour_dir = segment::stream_dir(&dir.0, "acme", &stream)
            .join("2026-01-31")
            .join("10");
        std::fs::create_dir_all(&hour_dir).expect("mkdir");
        std::fs::write(
            hour_dir.join("a.ndjson"),
            b"{\"id\":1,\"v\":\"a\"}\n{\"id\":2,\"v\":\"b\"}\n",
        )
        .expect("write");
        std::fs::write(
            hour_dir.join("b.ndjson"),
            b"{\"id\":2,\"v\":\"c\"}\n{\"v\":\"no key\"}\n",
        )
        .expect("write");
        couriers::courier_add(
            &mut store,
            "acme",
            CourierSpec {
                name: "web".to_string(),
                stream_id: stream,
                format: FileFormat::Ndjson,
                file_tag: "events".to_string(),
                hour: None,
                load_ops: LoadOps::default(),
            },
        )
        .expect("courier");
        (dir, store, "web".to_string())
    }

    fn set_load_ops(store: &mut Store, courier: &str, feed_id: &str) {
        let ops = LoadOps::parse(&format!(
            r#"{{"{feed_id}": [{{"type": "load", "file": "events"}}]}}"#
        ))
        .expect("ops");
        couriers::courier_edit(
            store,
            "acme",
            courier,
            couriers::CourierChanges {
                load_ops: Some(ops),
                ..Default::default()
            },
        )
        .expect("edit");
    }

    #[test]
    fn runs_sample_fail_on_missing_feeds_then_load_each_file_once() {
        let (dir, mut store, courier) = fixture("runs");
        let window = Window::Day(day("2026-01-31"));

        // `{}`: nothing loaded, the files become samples, the run succeeds.
        let sampled = run_courier(&dir.0, "acme", &courier, &window, "manual").expect("run");
        assert!(sampled.succeeded);
        assert_eq!((sampled.files, sampled.records), (2, 0));
        assert!(
            sampled.message.starts_with("Completed in "),
            "{}",
            sampled.message
        );
        let samples = couriers::samples_list(&store, "acme", &courier).expect("samples");
        let sample_names: Vec<&str> = samples
            .iter()
            .map(|sample| sample.path.rsplit('/').next().expect("name"))
            .collect();
        assert_eq!(sample_names, ["b.ndjson", "a.ndjson"]);
        assert_eq!(
            pending_files(&dir.0, "acme", &courier, &window)
                .expect("pending")
                .len(),
            2
        );

        // A placeholder feed: fails with the seed's message, loads nothing.
        set_load_ops(&mut store, &courier, "df-xxxxxx");
        let failed = run_courier(&dir.0, "acme", &courier, &window, "manual").expect("run");
        assert!(!failed.succeeded);
        assert_eq!(failed.message, "Cannot find required feeds: \"df-xxxxxx\"");
        assert_eq!(
            pending_files(&dir.0, "acme", &courier, &window)
                .expect("pending")
                .len(),
            2
        );

        // A real feed from the sample, inactive: fails; active: loads.
        let feed_id = couriers::feed_add(
            &mut store,
            "acme",
            FeedDraft {
                source: "Streaming Ingest".to_string(),
                name: "WebEvents".to_string(),
                sample_file: PathBuf::from(&samples[1].path),
                primary_key: vec!["id".to_string()],
                tags: Default::default(),
                updated_field: None,
                stitch: false,
                query: None,
            },
        )
        .expect("feed");
        set_load_ops(&mut store, &courier, &feed_id);
        let inactive = run_courier(&dir.0, "acme", &courier, &window, "manual").expect("run");
        assert_eq!(inactive.message, format!("Feeds are not active: \"{feed_id}\""));
        let feed = couriers::feed_set_active(&mut store, "acme", &feed_id).expect("activate");
        Tables::open(&dir.0, "acme")
            .expect("tables")
            .create(&feed.table_spec())
            .expect("create");

        let loaded = run_courier(&dir.0, "acme", &courier, &window, "manual").expect("run");
        assert!(loaded.succeeded, "{}", loaded.message);
        assert_eq!((loaded.files, loaded.records, loaded.rejected), (2, 4, 1));
        let again = run_courier(&dir.0, "acme", &courier, &window, "manual").expect("run");
        assert!(again.succeeded);
        assert_eq!((again.files, again.records), (0, 0));
        // Nothing left to load, but the window still holds its two sealed
        // files: a group run over it does not wait (SPEC §6).
        let pending = pending_files(&dir.0, "acme", &courier, &window).expect("pending");
        assert!(pending.is_empty());
        let in_window = window_files(&dir.0, "acme", &courier, &window).expect("window");
        assert_eq!(in_window.len(), 2);
        let tables = Tables::open_read_only(&dir.0, "acme").expect("tables");
        let rows = tables
            .select("SELECT id, v FROM \"Streaming Ingest:WebEvents\" ORDER BY id", 10)
            .expect("select")
            .rows;
        assert_eq!(
            serde_json::Value::from(rows),
            serde_json::json!([[1, "a"], [2, "c"]])
        );

        let runs = couriers::run_list(&store, "acme", Some(&courier)).expect("runs");
        let statuses: Vec<&str> = runs.iter().map(|run| run.status.as_str()).collect();
        assert_eq!(
            statuses,
            ["succeeded", "succeeded", "failed", "failed", "succeeded"]
        );
        assert_eq!(runs[1].id, loaded.run_id);
        assert_eq!(runs[1].window, "day 2026-01-31");
    }

    #[test]
    fn unknown_couriers_are_errors_not_runs() {
        let (dir, _store, _) = fixture("unknown");
        let error = run_courier(&dir.0, "acme", "nope", &Window::All, "manual").expect_err("unknown");
        assert_eq!(error.to_string(), "no courier \"nope\" in tenant \"acme\"");
    }
}
