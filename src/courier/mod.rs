//! The courier thread: everything slow that ingest workers must never wait
//! for.
//!
//! Each turn it seals retired segments (truncate, flush, rename, flush the
//! folder), retires segments that are due (their hour ended or they are
//! older than `seal_after`), refreshes the control snapshot when the store
//! changed (so key, stream and tenant changes reach workers within a
//! second), and closes the logs of deleted streams. On shutdown it closes
//! every log and seals what is left.

pub mod run;
pub mod schedule;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::config::WorkerScheduling;
use crate::control::snapshot::SnapshotCell;
use crate::control::store::Store;
use crate::ring::StreamLogs;
use crate::segment::writer::{self, Sealed};
use crate::telemetry;

/// How long the courier sleeps between turns. Bounds how late a due
/// segment is sealed and how stale a snapshot can be.
pub const TURN_MS: u64 = 100;

/// How often the control store is asked whether it changed (a one-row
/// query): every turn. SPEC §7 wants changes live within 1 s.
pub const CONTROL_POLL_MS: u64 = 100;

const _: () = assert!(CONTROL_POLL_MS + TURN_MS < 1000);

/// The shortest time between two checks a worker asks for (see
/// [`RefreshSignal`]), so that a flood of bad tokens cannot keep the
/// courier thread querying the store.
pub const FORCED_CHECK_INTERVAL_MS: u64 = 5;

/// Lets a worker ask the courier thread to look at the control store now.
///
/// A worker that is about to refuse a request because its snapshot does
/// not know the key, the tenant or the stream asks for a check first and
/// waits for it (a few milliseconds), then decides again: an operator (or
/// a script) that adds a key or a stream and sends at once must not get a
/// 401 or 404 just because the periodic check has not come yet. Requests
/// that a fresh snapshot would refuse too are refused after that wait.
#[derive(Debug, Default)]
pub struct RefreshSignal {
    requested: AtomicBool,
    /// Checks of the store done so far (periodic and asked for).
    checks: AtomicU64,
    courier: OnceLock<std::thread::Thread>,
}

impl RefreshSignal {
    /// Checks done so far; a check that starts after this call counts
    /// past it.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Acquire)
    }

    /// Asks for a check of the store as soon as possible.
    pub fn request(&self) {
        self.requested.store(true, Ordering::Release);
        if let Some(courier) = self.courier.get() {
            courier.unpark();
        }
    }

    /// Names the thread that does the checks (the courier's).
    pub fn set_courier(&self, thread: std::thread::Thread) {
        let _ = self.courier.set(thread);
    }
}

/// What the courier thread needs.
pub struct Courier {
    pub data_dir: PathBuf,
    pub logs: Arc<StreamLogs>,
    pub snapshot: Arc<SnapshotCell>,
    /// The running configuration, for `seal_after` (a reload applies to
    /// open segments at once).
    pub config: Arc<crate::control::snapshot::Published<crate::config::Config>>,
    /// Set by the server once every worker has drained.
    pub stop: Arc<AtomicBool>,
    /// Where this thread proves it is making progress.
    pub liveness: Arc<crate::admin::Liveness>,
    pub liveness_slot: usize,
    /// Workers' requests for a check of the store now.
    pub refresh: Arc<RefreshSignal>,
}

impl Courier {
    /// Runs until `stop` is set, then seals everything and returns.
    pub fn run(self) {
        let mut store = match Store::open(&self.data_dir) {
            Ok(store) => Some(store),
            Err(error) => {
                telemetry::SNAPSHOT_FAILED.emit(&[("error", error.to_string().as_str().into())]);
                None
            }
        };
        let mut last_poll = Instant::now();
        let mut generation = self.snapshot.load().generation;
        while !self.stop.load(Ordering::Acquire) {
            self.liveness.beat(self.liveness_slot);
            if self.config.load().worker_scheduling_policy == WorkerScheduling::Batch {
                crate::sched::io_workers_to_other();
            }
            self.seal_retired();
            let now_ms = self.logs.settings().clock.now_ms();
            let seal_after_ms = self.config.load().seal_after_ms;
            for log in self.logs.all() {
                log.retire_if_due(now_ms, seal_after_ms);
            }
            self.seal_retired();
            let asked = self.refresh.requested.load(Ordering::Acquire);
            let since = last_poll.elapsed();
            let due = since >= Duration::from_millis(CONTROL_POLL_MS)
                || (asked && since >= Duration::from_millis(FORCED_CHECK_INTERVAL_MS));
            if due {
                // Clear the request before the check: a request that comes
                // during it is seen at the next turn.
                self.refresh.requested.store(false, Ordering::Release);
                last_poll = Instant::now();
                if let Some(store) = store.as_mut() {
                    generation = self.refresh(store, generation);
                }
                self.refresh.checks.fetch_add(1, Ordering::AcqRel);
            }
            let wait = if self.refresh.requested.load(Ordering::Acquire) {
                Duration::from_millis(FORCED_CHECK_INTERVAL_MS).saturating_sub(last_poll.elapsed())
            } else {
                Duration::from_millis(TURN_MS)
            };
            // Woken early by a worker's request (RefreshSignal::request).
            std::thread::park_timeout(wait);
        }
        self.logs.close_where(|_| true);
        self.seal_retired();
    }

    /// Seals every retired segment.
    fn seal_retired(&self) {
        while let Some(job) = self.logs.next_to_seal() {
            let open_path = job.open_path.clone();
            let retired = job.retired;
            match writer::seal(job) {
                Ok(Sealed::File {
                    path,
                    len_bytes,
                    records,
                }) => {
                    telemetry::SEALED_BYTES.fetch_add(len_bytes, Ordering::Relaxed);
                    telemetry::SEAL_LAG_MS.store(retired.elapsed().as_millis() as u64, Ordering::Relaxed);
                    telemetry::SEGMENT_SEALED.emit(&[
                        ("path", path.to_string_lossy().as_ref().into()),
                        ("bytes", len_bytes.into()),
                        ("records", records.into()),
                    ])
                }
                Ok(Sealed::Empty) => {}
                // The open file stays; recovery seals it on the next start.
                Err(error) => telemetry::SEAL_FAILED.emit(&[
                    ("path", open_path.to_string_lossy().as_ref().into()),
                    ("error", error.to_string().as_str().into()),
                ]),
            }
        }
    }

    /// Publishes a new snapshot if the store changed; returns the
    /// generation now published.
    fn refresh(&self, store: &mut Store, published: u64) -> u64 {
        let result = store.generation().and_then(|current| {
            if current == published {
                return Ok(published);
            }
            let snapshot = store.snapshot()?;
            let generation = snapshot.generation;
            self.logs
                .close_where(|log| snapshot.stream(&log.tenant, &log.stream_id).is_none());
            self.snapshot.publish(snapshot);
            telemetry::SNAPSHOT_PUBLISHED.emit(&[("generation", generation.into())]);
            Ok(generation)
        });
        match result {
            Ok(generation) => generation,
            Err(error) => {
                telemetry::SNAPSHOT_FAILED.emit(&[("error", error.to_string().as_str().into())]);
                published
            }
        }
    }
}
