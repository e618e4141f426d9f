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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::control::snapshot::SnapshotCell;
use crate::control::store::Store;
use crate::ring::StreamLogs;
use crate::segment::writer::{self, Sealed};
use crate::telemetry;

/// How long the courier sleeps between turns. Bounds how late a due
/// segment is sealed and how stale a snapshot can be.
pub const TURN_MS: u64 = 100;

/// How often the control store is asked whether it changed (a one-row
/// query): every turn. SPEC §7 wants changes live within 1 s; this makes
/// a stream added by `stream add` writable before the next shell command
/// of the quickstart can even start.
pub const CONTROL_POLL_MS: u64 = 100;

const _: () = assert!(CONTROL_POLL_MS + TURN_MS < 1000);

/// What the courier thread needs.
pub struct Courier {
    pub data_dir: PathBuf,
    pub logs: Arc<StreamLogs>,
    pub snapshot: Arc<SnapshotCell>,
    pub seal_after_ms: i64,
    /// Set by the server once every worker has drained.
    pub stop: Arc<AtomicBool>,
    /// Where this thread proves it is making progress.
    pub liveness: Arc<crate::admin::Liveness>,
    pub liveness_slot: usize,
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
            self.seal_retired();
            let now_ms = self.logs.settings().clock.now_ms();
            for log in self.logs.all() {
                log.retire_if_due(now_ms, self.seal_after_ms);
            }
            self.seal_retired();
            if last_poll.elapsed() >= Duration::from_millis(CONTROL_POLL_MS) {
                last_poll = Instant::now();
                if let Some(store) = store.as_mut() {
                    generation = self.refresh(store, generation);
                }
            }
            std::thread::sleep(Duration::from_millis(TURN_MS));
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
