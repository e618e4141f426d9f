//! The per-stream handoff from ingest workers to the stream's open segment.
//!
//! Every stream has one [`StreamLog`]: a lock-free ring (crossbeam's
//! `ArrayQueue`) of converted records and the stream's open segment. Workers
//! push records into the ring; whichever worker then wins the writer flag
//! drains the whole ring into the segment (flat combining), and completes
//! each record's [`Ticket`]. No worker ever blocks on another: a worker that
//! loses the flag yields to its other connections and looks at its ticket
//! again, and its record is written by the winner or, on its next try, by
//! itself. One writer at a time means a segment is always a run of complete
//! records followed by at most one torn record, which recovery drops.
//!
//! A producer whose record another thread is writing waits on its ticket
//! (the writer wakes it) instead of polling. For that, whoever releases the
//! writer flag looks at the ring once more and drains it if a record
//! arrived meanwhile: a producer that pushed and then found the flag taken
//! relies on it.
//!
//! A ticket completes once the record's bytes are in the shared mapping,
//! which already survives `kill -9`. For `durability = "disk"`, records are
//! also numbered by log position ([`Ticket::end_position`]) and a group
//! commit ([`StreamLog::flush_targets`]) makes a prefix of positions durable.

use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crossbeam_queue::{ArrayQueue, SegQueue};

use crate::clock::{self, Clock};
use crate::control::snapshot::PayloadFormat;
use crate::segment::writer::{AppendError, SealJob, SegmentWriter};
use crate::segment::{self, writer};

/// Records a stream's ring holds before producers are told to back off
/// (503). Each slot is one record in memory (up to the body limit).
pub const RING_SLOTS: usize = 4096;

/// How one record's append ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// In the open segment: it survives the process being killed.
    Written,
    /// The file system has no space for it.
    NoSpace,
    /// The segment could not be created or extended.
    Io,
    /// The stream is shutting down or was deleted.
    Closed,
    /// The record is larger than a whole segment.
    TooLarge,
}

impl Outcome {
    fn code(self) -> u64 {
        match self {
            Outcome::Written => 1,
            Outcome::NoSpace => 2,
            Outcome::Io => 3,
            Outcome::Closed => 4,
            Outcome::TooLarge => 5,
        }
    }

    fn from_code(code: u64) -> Option<Outcome> {
        Some(match code {
            1 => Outcome::Written,
            2 => Outcome::NoSpace,
            3 => Outcome::Io,
            4 => Outcome::Closed,
            5 => Outcome::TooLarge,
            _ => return None,
        })
    }
}

/// Where a producer learns how its record's append ended. One per
/// connection, reused for each of its requests (a connection has at most one
/// record in flight), so the hot path does not allocate one.
#[derive(Default)]
pub struct Ticket {
    /// Zero while pending; else the outcome code in the low 8 bits and the
    /// record's end log position above them.
    state: AtomicU64,
    /// The producer's task while it waits for another thread to write its
    /// record.
    waker: Mutex<Option<Waker>>,
}

impl Ticket {
    fn reset(&self) {
        self.state.store(0, Ordering::Relaxed);
    }

    fn complete(&self, outcome: Outcome, end_position: u64) {
        self.state
            .store(end_position << 8 | outcome.code(), Ordering::Release);
        let waker = self.waker.lock().expect("a waker slot is never poisoned").take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Resolves once the record was handled; for a producer whose record
    /// another thread is writing.
    pub fn completion(&self) -> Completion<'_> {
        Completion(self)
    }

    /// The outcome, once the record was handled.
    pub fn outcome(&self) -> Option<Outcome> {
        Outcome::from_code(self.state.load(Ordering::Acquire) & 0xff)
    }

    /// The log position just past the record; meaningful once written.
    pub fn end_position(&self) -> u64 {
        self.state.load(Ordering::Acquire) >> 8
    }
}

/// See [`Ticket::completion`].
pub struct Completion<'a>(&'a Ticket);

impl Future for Completion<'_> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Outcome> {
        let ticket = self.0;
        if let Some(outcome) = ticket.outcome() {
            return Poll::Ready(outcome);
        }
        {
            let mut slot = ticket.waker.lock().expect("a waker slot is never poisoned");
            match &mut *slot {
                Some(waker) if waker.will_wake(context.waker()) => {}
                slot => *slot = Some(context.waker().clone()),
            }
        }
        // Looked at again after the waker is in place: a completion in
        // between has either seen the waker or is seen here.
        match ticket.outcome() {
            Some(outcome) => Poll::Ready(outcome),
            None => Poll::Pending,
        }
    }
}

/// See [`StreamLog::flush_progress`].
pub struct FlushProgress<'a> {
    log: &'a StreamLog,
    position: u64,
}

impl FlushProgress<'_> {
    fn settled(&self) -> bool {
        let log = self.log;
        log.is_durable(self.position)
            || log.is_failed()
            || log.is_closed()
            || (log.started_target.load(Ordering::SeqCst) < self.position
                && log.flushers.load(Ordering::SeqCst) < FLUSH_LANES)
    }
}

impl Future for FlushProgress<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if self.settled() {
            return Poll::Ready(());
        }
        self.log
            .flush_waiters
            .lock()
            .expect("waiters are never poisoned")
            .push(context.waker().clone());
        // Looked at again with the waker in place: a flush's end or a
        // flusher's exit in between has either taken the waker or is seen
        // here.
        if self.settled() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// See [`StreamLog::gathered`].
pub struct Gathered<'a> {
    log: &'a StreamLog,
    position: u64,
}

impl Gathered<'_> {
    fn settled(&self) -> bool {
        let log = self.log;
        log.written_position.load(Ordering::SeqCst) >= self.position || log.is_failed() || log.is_closed()
    }
}

impl Future for Gathered<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if self.settled() {
            return Poll::Ready(());
        }
        *self
            .log
            .gather_waker
            .lock()
            .expect("the gather waker is never poisoned") = Some(context.waker().clone());
        self.log.gather_until.store(self.position, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // Looked at again with the waker and the position in place: a
        // writer that passed the position in between either saw them or
        // is seen here.
        if self.settled() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// A record waiting in the ring.
struct Entry {
    record: Vec<u8>,
    ticket: Arc<Ticket>,
}

/// Settings every stream log shares.
#[derive(Clone, Debug)]
pub struct LogSettings {
    pub data_dir: PathBuf,
    pub segment_bytes_max: usize,
    /// True for `durability = "disk"`: segments leaving the writer are kept
    /// for the next group commit, and new segments' folders are flushed.
    pub sync_to_disk: bool,
    pub clock: Clock,
}

/// What the writer flag guards.
struct WriterState {
    current: Option<SegmentWriter>,
    /// Bytes written to this stream since the log was opened.
    position: u64,
    /// Distinguishes segments created in the same millisecond.
    nonce: u32,
}

/// How many group commits of one stream may run at once (one per flusher
/// task). One: the kernel reports a write-back error to one of two
/// overlapping fsyncs of a file, and the other may return success first,
/// which would acknowledge records whose pages were lost. (Two overlapping
/// flushes measured about 5% more requests/s in disk mode, within noise.)
pub const FLUSH_LANES: usize = 1;

/// The files a group commit must flush. One lock covers both, so a
/// segment moving from open to retired is always in one of them.
#[derive(Default)]
struct Unsynced {
    /// The open segment's file.
    open: Option<Arc<File>>,
    /// Retired segments not yet known to be durable, with the log
    /// position at their retirement (all their bytes lie below it). One
    /// leaves the list when a flush that included it and started at or
    /// after that position succeeds.
    retired: Vec<(Arc<File>, u64)>,
}

/// One stream's ring and open segment.
pub struct StreamLog {
    pub tenant: String,
    pub stream_id: String,
    pub format: PayloadFormat,
    settings: Arc<LogSettings>,
    ring: ArrayQueue<Entry>,
    writer: Mutex<WriterState>,
    /// Segments that stopped taking records, for the courier thread to seal.
    seal_queue: Arc<SegQueue<SealJob>>,
    closed: AtomicBool,
    /// Set for good when a flush failed: nothing of this log is ever
    /// acknowledged again (until restart), and later records get a 500.
    failed: AtomicBool,
    /// The log position up to which records are in a segment.
    written_position: AtomicU64,
    /// The log position up to which records are on stable storage.
    durable_position: AtomicU64,
    /// Group commits running now, at most [`FLUSH_LANES`].
    flushes_running: AtomicUsize,
    /// The highest target of a group commit started so far.
    started_target: AtomicU64,
    /// Flusher tasks running group commits for this stream.
    flushers: AtomicUsize,
    /// Files holding records not yet known to be durable (disk mode only).
    unsynced: Mutex<Unsynced>,
    /// Producers waiting for the running group commit to end.
    flush_waiters: Mutex<Vec<Waker>>,
    /// Bytes the last group commit covered beyond the one before it.
    last_flush_bytes: AtomicU64,
    /// A flusher gathering records before its next flush waits until the
    /// written position reaches this (0: nobody gathers), and its waker.
    gather_until: AtomicU64,
    gather_waker: Mutex<Option<Waker>>,
    /// Records written to this stream's segments since start.
    pub records_written: AtomicU64,
    /// Bytes of those records.
    pub bytes_written: AtomicU64,
    /// Bytes in the open segment, for `/metrics`.
    pub open_bytes: AtomicU64,
    /// Group commits run (disk mode), and the nanoseconds they took.
    pub flushes: AtomicU64,
    pub flush_nanos: AtomicU64,
    /// Responses to requests that reached this stream, for `/metrics`.
    pub responses: crate::telemetry::ShardedStatusCounts,
}

impl StreamLog {
    pub fn new(
        tenant: &str,
        stream_id: &str,
        format: PayloadFormat,
        settings: Arc<LogSettings>,
        seal_queue: Arc<SegQueue<SealJob>>,
    ) -> StreamLog {
        StreamLog {
            tenant: tenant.to_owned(),
            stream_id: stream_id.to_owned(),
            format,
            settings,
            ring: ArrayQueue::new(RING_SLOTS),
            writer: Mutex::new(WriterState {
                current: None,
                position: 0,
                nonce: 0,
            }),
            seal_queue,
            closed: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            written_position: AtomicU64::new(0),
            durable_position: AtomicU64::new(0),
            flushes_running: AtomicUsize::new(0),
            started_target: AtomicU64::new(0),
            flushers: AtomicUsize::new(0),
            unsynced: Mutex::new(Unsynced::default()),
            flush_waiters: Mutex::new(Vec::new()),
            last_flush_bytes: AtomicU64::new(0),
            gather_until: AtomicU64::new(0),
            gather_waker: Mutex::new(None),
            records_written: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            open_bytes: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            flush_nanos: AtomicU64::new(0),
            responses: crate::telemetry::ShardedStatusCounts::default(),
        }
    }

    /// Puts a record into the ring. `Err` gives the record back when the
    /// ring stays full even after draining it once: the writer is behind.
    pub fn submit(&self, record: Vec<u8>, ticket: &Arc<Ticket>) -> Result<(), Vec<u8>> {
        ticket.reset();
        let mut entry = Entry {
            record,
            ticket: Arc::clone(ticket),
        };
        for _ in 0..2 {
            match self.ring.push(entry) {
                Ok(()) => return Ok(()),
                Err(back) => entry = back,
            }
            self.try_combine();
        }
        Err(entry.record)
    }

    /// Drains the ring into the segment if no other thread is doing so.
    /// When another thread is, that thread drains what this one pushed.
    pub fn try_combine(&self) {
        loop {
            // Pairs with the fence below (and in `release`): either this
            // thread sees the flag free, or the holder sees this thread's
            // record in the ring after giving the flag back.
            fence(Ordering::SeqCst);
            let Ok(mut state) = self.writer.try_lock() else {
                return;
            };
            self.drain(&mut state, self.settings.clock.now_ms());
            drop(state);
            fence(Ordering::SeqCst);
            if self.ring.is_empty() {
                return;
            }
        }
    }

    /// Writes `record` at once when no other thread holds the writer flag
    /// (after the records already waiting in the ring, which keep their
    /// turn), and says how it went and where the record ends. `None` when
    /// the flag is taken: the caller then goes through the ring. The common
    /// case on a quiet stream, and it skips the ring's round trip.
    pub fn try_write_now(&self, record: &[u8]) -> Option<(Outcome, u64)> {
        fence(Ordering::SeqCst);
        let mut state = self.writer.try_lock().ok()?;
        let now_ms = self.settings.clock.now_ms();
        self.drain(&mut state, now_ms);
        let outcome = self.write(&mut state, record, now_ms);
        let end = state.position;
        self.publish_written(end);
        self.release(state);
        Some((outcome, end))
    }

    /// Writes every record waiting in the ring, in order, and completes
    /// their tickets. The caller holds the writer flag.
    fn drain(&self, state: &mut WriterState, now_ms: i64) {
        while let Some(entry) = self.ring.pop() {
            let outcome = self.write(state, &entry.record, now_ms);
            self.publish_written(state.position);
            entry.ticket.complete(outcome, state.position);
        }
    }

    /// Gives the writer flag back, then drains the records that producers
    /// pushed while it was held (they found the flag taken and wait).
    fn release(&self, state: MutexGuard<'_, WriterState>) {
        drop(state);
        fence(Ordering::SeqCst);
        if !self.ring.is_empty() {
            self.try_combine();
        }
    }

    fn write(&self, state: &mut WriterState, record: &[u8], now_ms: i64) -> Outcome {
        if self.failed.load(Ordering::Acquire) {
            return Outcome::Io;
        }
        if self.closed.load(Ordering::Acquire) {
            return Outcome::Closed;
        }
        let hour = clock::hour_of_ms(now_ms);
        if state.current.as_ref().is_some_and(|segment| segment.hour != hour) {
            self.retire(state);
        }
        for attempt in 0..2 {
            if state.current.is_none() {
                match self.create_segment(state, hour, now_ms) {
                    Ok(mut segment) => {
                        if self.settings.sync_to_disk {
                            segment.set_group_commits();
                            self.unsynced().open = Some(Arc::clone(segment.file()));
                        }
                        state.current = Some(segment);
                    }
                    Err(error) if error.raw_os_error() == Some(libc::ENOSPC) => {
                        return Outcome::NoSpace;
                    }
                    Err(_) => return Outcome::Io,
                }
            }
            let segment = state.current.as_mut().expect("a segment was just ensured");
            match segment.append(record) {
                Ok(()) => {
                    state.position += record.len() as u64;
                    self.records_written.fetch_add(1, Ordering::Relaxed);
                    self.bytes_written
                        .fetch_add(record.len() as u64, Ordering::Relaxed);
                    self.open_bytes
                        .store(segment.len_bytes() as u64, Ordering::Relaxed);
                    return Outcome::Written;
                }
                Err(AppendError::Full) if attempt == 0 && !segment.is_empty() => self.retire(state),
                Err(AppendError::Full) => return Outcome::TooLarge,
                Err(AppendError::NoSpace) => return Outcome::NoSpace,
                Err(AppendError::Io) => return Outcome::Io,
            }
        }
        Outcome::TooLarge
    }

    fn create_segment(
        &self,
        state: &mut WriterState,
        hour: i64,
        now_ms: i64,
    ) -> std::io::Result<SegmentWriter> {
        let stream_dir = segment::stream_dir(&self.settings.data_dir, &self.tenant, &self.stream_id);
        let dir = segment::hour_dir(&stream_dir, hour);
        let fresh_dir = !dir.exists();
        state.nonce = state.nonce.wrapping_add(1);
        let name = segment::sealed_name(&self.stream_id, now_ms, state.nonce, self.format);
        let segment = SegmentWriter::create(
            &dir,
            &name,
            self.format,
            hour,
            now_ms,
            self.settings.segment_bytes_max,
        )?;
        if self.settings.sync_to_disk {
            // The new name must survive a power loss before any record in it
            // is acknowledged; so must new date and hour folders.
            let synced = writer::sync_dir(&dir).and_then(|()| {
                if !fresh_dir {
                    return Ok(());
                }
                let date_dir = dir.parent().expect("hour folders have a date folder");
                writer::sync_dir(date_dir)?;
                writer::sync_dir(date_dir.parent().expect("date folders have a stream folder"))
            });
            if let Err(error) = synced {
                // A failed folder flush is a failed flush like any other:
                // the stream takes no more records until restart. The
                // empty segment goes to the sealer, which removes it.
                self.failed.store(true, Ordering::Release);
                self.closed.store(true, Ordering::Release);
                self.wake_flush_waiters();
                self.seal_queue.push(segment.finish());
                crate::telemetry::FLUSH_FAILED.emit(&[
                    ("stream", self.stream_id.as_str().into()),
                    ("error", error.to_string().as_str().into()),
                ]);
                return Err(error);
            }
        }
        Ok(segment)
    }

    /// Takes the open segment out of the writer and queues it for sealing.
    fn retire(&self, state: &mut WriterState) {
        if let Some(segment) = state.current.take() {
            self.open_bytes.store(0, Ordering::Relaxed);
            if self.settings.sync_to_disk {
                let mut unsynced = self.unsynced();
                unsynced.open = None;
                unsynced
                    .retired
                    .push((Arc::clone(segment.file()), state.position));
            }
            self.seal_queue.push(segment.finish());
        }
    }

    /// Retires the open segment if it is due: its hour has ended, or it is
    /// older than `seal_after_ms`. Called by the courier thread, which may
    /// wait for the writer flag; producers never do.
    pub fn retire_if_due(&self, now_ms: i64, seal_after_ms: i64) {
        let mut state = self.writer.lock().expect("writer state is never poisoned");
        let due = state.current.as_ref().is_some_and(|segment| {
            segment.hour != clock::hour_of_ms(now_ms) || now_ms - segment.created_ms >= seal_after_ms
        });
        if due {
            self.retire(&mut state);
        }
        self.release(state);
    }

    /// Stops taking records and retires the open segment. Records still in
    /// the ring are written first, so every pending ticket completes.
    pub fn close(&self) {
        let mut state = self.writer.lock().expect("writer state is never poisoned");
        let now_ms = self.settings.clock.now_ms();
        self.drain(&mut state, now_ms);
        self.closed.store(true, Ordering::Release);
        self.retire(&mut state);
        self.release(state);
    }

    /// True once the records up to `position` are on stable storage.
    pub fn is_durable(&self, position: u64) -> bool {
        self.durable_position.load(Ordering::Acquire) >= position
    }

    fn unsynced(&self) -> MutexGuard<'_, Unsynced> {
        self.unsynced.lock().expect("the unsynced list is never poisoned")
    }

    /// Starts a group commit if fewer than [`FLUSH_LANES`] run: returns
    /// the position it will make durable and the files to flush, or `None`
    /// when enough flushes are under way (or the stream failed).
    pub fn flush_targets(&self) -> Option<(u64, Vec<Arc<File>>)> {
        if self.failed.load(Ordering::Acquire) {
            return None;
        }
        self.flushes_running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |running| {
                (running < FLUSH_LANES).then_some(running + 1)
            })
            .ok()?;
        // Read the target first: every byte below it is then in the open
        // segment or in a retired one not yet known to be durable.
        let target = self.written_position.load(Ordering::SeqCst);
        let previous = self.started_target.fetch_max(target, Ordering::SeqCst);
        self.last_flush_bytes
            .store(target.saturating_sub(previous), Ordering::Relaxed);
        self.unmap_written();
        let unsynced = self.unsynced();
        let mut files: Vec<Arc<File>> = unsynced
            .retired
            .iter()
            .map(|(file, _)| Arc::clone(file))
            .collect();
        files.extend(unsynced.open.clone());
        Some((target, files))
    }

    /// Unmaps the open segment's pages written so far (their bytes stay in
    /// the page cache), so that the flush about to start finds them
    /// unmapped. Writing back a page that is mapped writable means
    /// write-protecting it first, one TLB shootdown (an interrupt to every
    /// other core running a worker) per page; unmapping the whole range
    /// costs one. Measured in disk mode (alternating 8 s runs): 8% more
    /// requests/s at 300 bytes, 10–13% at 4 KiB, 40–50% at 254 KiB. Waits
    /// for the writer flag, as the courier does: skipping the unmap when
    /// the flag is taken (`try_lock`) measured 5–10% fewer at 4 KiB.
    fn unmap_written(&self) {
        let mut state = self.writer.lock().expect("writer state is never poisoned");
        if let Some(segment) = state.current.as_mut() {
            segment.unmap_written();
        }
        self.release(state);
    }

    /// Ends a group commit started by [`StreamLog::flush_targets`] and
    /// wakes the producers waiting for it.
    pub fn flush_done(
        &self,
        target: u64,
        result: std::io::Result<()>,
        files: Vec<Arc<File>>,
    ) -> std::io::Result<()> {
        let outcome = match result {
            // A flush that succeeds after another failed proves nothing
            // about the failed one's pages: never advance past a failure.
            Ok(()) if self.failed.load(Ordering::Acquire) => {
                Err(std::io::Error::other("an earlier flush of this stream failed"))
            }
            Ok(()) => {
                // Flushes may end out of order; each one alone makes every
                // byte below its own target durable.
                self.durable_position.fetch_max(target, Ordering::AcqRel);
                self.unsynced().retired.retain(|(file, retired_at)| {
                    !(*retired_at <= target && files.iter().any(|flushed| Arc::ptr_eq(flushed, file)))
                });
                Ok(())
            }
            Err(error) => {
                // After a failed fsync the kernel may have dropped the dirty
                // pages: retrying and then acknowledging could confirm data
                // that is gone (the PostgreSQL fsync lesson). The stream is
                // failed instead; its records are never acknowledged.
                self.failed.store(true, Ordering::Release);
                self.closed.store(true, Ordering::Release);
                Err(error)
            }
        };
        self.flushes_running.fetch_sub(1, Ordering::SeqCst);
        self.wake_flush_waiters();
        outcome
    }

    /// Gives back the lane of a group commit started by
    /// [`StreamLog::flush_targets`] that will never end (its task was
    /// dropped, mid-flush, with its worker's runtime): it counts as not
    /// run, so the records it would have covered need a flush again. No
    /// position becomes durable.
    pub fn abandon_flush(&self, target: u64) {
        let durable = self.durable_position.load(Ordering::SeqCst);
        let _ = self
            .started_target
            .compare_exchange(target, durable, Ordering::SeqCst, Ordering::SeqCst);
        self.flushes_running.fetch_sub(1, Ordering::SeqCst);
        self.wake_flush_waiters();
    }

    /// Counts one group commit that took `took`, for `/metrics`.
    pub fn count_flush(&self, took: std::time::Duration) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.flush_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Resolves once the records up to `position` are durable, the stream
    /// failed or closed, or no flush covering `position` has started and a
    /// flusher could be added (the caller then starts one). Woken at the
    /// end of every group commit and when a flusher stops.
    pub fn flush_progress(&self, position: u64) -> FlushProgress<'_> {
        FlushProgress { log: self, position }
    }

    /// Where a flusher about to start a group commit should first let the
    /// written position get to, or `None` to flush at once.
    ///
    /// Under load, the requests a flush acknowledges come back with their
    /// next records a moment after it ends; flushing at once would cover
    /// only the first few of them and leave the rest for the flush after
    /// (group commits would alternate between small and large). So the
    /// next flush waits until half as many bytes as the last one covered
    /// are waiting — at once with one client (its one record is more than
    /// half of the last flush), and never longer than the caller's bound
    /// when the load drops.
    pub fn gather_target(&self) -> Option<u64> {
        let started = self.started_target.load(Ordering::SeqCst);
        let want = started + self.last_flush_bytes.load(Ordering::Relaxed) / 2;
        (self.written_position.load(Ordering::SeqCst) < want).then_some(want)
    }

    /// Resolves once the written position reaches `position` (or the
    /// stream failed or closed). One flusher at a time may wait on it.
    pub fn gathered(&self, position: u64) -> Gathered<'_> {
        Gathered { log: self, position }
    }

    /// Makes the records up to `written` visible to flushes (the writer
    /// holds the flag). In disk mode it also wakes a gathering flusher
    /// once the position reached what it waits for; the fence pairs with
    /// the one in [`Gathered`]'s poll (each side stores, then loads the
    /// other's value), and only disk mode pays for it: the default mode's
    /// store stays a plain release store.
    fn publish_written(&self, written: u64) {
        self.written_position.store(written, Ordering::Release);
        if !self.settings.sync_to_disk {
            return;
        }
        fence(Ordering::SeqCst);
        let until = self.gather_until.load(Ordering::SeqCst);
        if until == 0 || written < until {
            return;
        }
        if self
            .gather_until
            .compare_exchange(until, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            let waker = self
                .gather_waker
                .lock()
                .expect("the gather waker is never poisoned")
                .take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    /// True when records are written that no started flush covers (and
    /// the stream has not failed).
    pub fn needs_flush(&self) -> bool {
        !self.is_failed()
            && self.written_position.load(Ordering::SeqCst) > self.started_target.load(Ordering::SeqCst)
    }

    /// The highest target of a group commit started so far.
    pub fn started_target(&self) -> u64 {
        self.started_target.load(Ordering::SeqCst)
    }

    /// Becomes one of this stream's flushers, if fewer than
    /// [`FLUSH_LANES`] run.
    pub fn claim_flusher(&self) -> bool {
        self.flushers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |flushers| {
                (flushers < FLUSH_LANES).then_some(flushers + 1)
            })
            .is_ok()
    }

    /// Stops being one of this stream's flushers; wakes the waiters, so
    /// that one of them takes over if records still need a flush.
    pub fn release_flusher(&self) {
        self.flushers.fetch_sub(1, Ordering::SeqCst);
        self.wake_flush_waiters();
    }

    fn wake_flush_waiters(&self) {
        let waiters = std::mem::take(&mut *self.flush_waiters.lock().expect("waiters are never poisoned"));
        for waiter in waiters {
            waiter.wake();
        }
    }

    /// True once a flush of this stream failed.
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Records waiting in the ring, for telemetry.
    pub fn ring_len(&self) -> usize {
        self.ring.len()
    }
}

/// Every stream's log, created on a stream's first record.
pub struct StreamLogs {
    settings: Arc<LogSettings>,
    seal_queue: Arc<SegQueue<SealJob>>,
    /// Keyed by (tenant, stream id). Workers keep their own map of the logs
    /// they use, so this mutex is taken once per stream per worker, not per
    /// request.
    logs: Mutex<std::collections::HashMap<(String, String), Arc<StreamLog>>>,
}

impl StreamLogs {
    pub fn new(settings: LogSettings) -> StreamLogs {
        StreamLogs {
            settings: Arc::new(settings),
            seal_queue: Arc::new(SegQueue::new()),
            logs: Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub fn settings(&self) -> &LogSettings {
        &self.settings
    }

    /// The log of a stream, opened if needed. A log closed after a failed
    /// flush stays closed (its records are never acknowledged) until restart.
    pub fn get_or_open(&self, tenant: &str, stream_id: &str, format: PayloadFormat) -> Arc<StreamLog> {
        let mut logs = self.logs.lock().expect("log registry is never poisoned");
        let key = (tenant.to_owned(), stream_id.to_owned());
        if let Some(log) = logs.get(&key) {
            return Arc::clone(log);
        }
        let log = Arc::new(StreamLog::new(
            tenant,
            stream_id,
            format,
            Arc::clone(&self.settings),
            Arc::clone(&self.seal_queue),
        ));
        logs.insert(key, Arc::clone(&log));
        log
    }

    /// Every open log.
    pub fn all(&self) -> Vec<Arc<StreamLog>> {
        self.logs
            .lock()
            .expect("log registry is never poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Closes and forgets the logs for which `gone` is true.
    pub fn close_where(&self, mut gone: impl FnMut(&StreamLog) -> bool) {
        let mut logs = self.logs.lock().expect("log registry is never poisoned");
        logs.retain(|_, log| {
            if gone(log) {
                log.close();
                false
            } else {
                true
            }
        });
    }

    /// The next segment waiting to be sealed.
    pub fn next_to_seal(&self) -> Option<SealJob> {
        self.seal_queue.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(name: &str, segment_bytes_max: usize) -> (PathBuf, StreamLogs) {
        logs_with(name, segment_bytes_max, false)
    }

    fn logs_with(name: &str, segment_bytes_max: usize, sync_to_disk: bool) -> (PathBuf, StreamLogs) {
        let data_dir = std::env::temp_dir().join(format!("sluice-ring-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let logs = StreamLogs::new(LogSettings {
            data_dir: data_dir.clone(),
            segment_bytes_max,
            sync_to_disk,
            clock: Clock::system(),
        });
        (data_dir, logs)
    }

    /// Seals everything retired so far and returns all stored lines.
    fn seal_and_read(logs: &StreamLogs) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(job) = logs.next_to_seal() {
            if let writer::Sealed::File { path, .. } = writer::seal(job).expect("seal") {
                let text = std::fs::read_to_string(path).expect("read");
                lines.extend(text.lines().map(str::to_owned));
            }
        }
        lines
    }

    /// Wakes the thread that waits on a ticket.
    struct Unpark(std::thread::Thread);

    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    /// Blocks until `ticket` completes, failing if this thread is not
    /// woken for it within ten seconds (a lost wake-up or a record left
    /// in the ring).
    fn wait(ticket: &Ticket) -> Outcome {
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut context = Context::from_waker(&waker);
        let mut completion = ticket.completion();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Poll::Ready(outcome) = Pin::new(&mut completion).poll(&mut context) {
                return outcome;
            }
            let now = std::time::Instant::now();
            assert!(now < deadline, "a waiting producer was not woken");
            std::thread::park_timeout(deadline - now);
        }
    }

    #[test]
    fn a_producer_that_finds_the_writer_busy_is_written_and_woken_by_it() {
        let (data_dir, logs) = logs("handoff", 1 << 20);
        let log = logs.get_or_open("acme", "is-AbCDefGH", PayloadFormat::Json);
        let held = log.writer.lock().expect("writer");
        let producer = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let ticket = Arc::new(Ticket::default());
                log.submit(b"{\"n\":1}\n".to_vec(), &ticket)
                    .expect("ring has room");
                log.try_combine();
                assert_eq!(ticket.outcome(), None, "the writer flag is held elsewhere");
                wait(&ticket)
            })
        };
        while log.ring.is_empty() {
            std::thread::yield_now();
        }
        // Give the producer time to find the flag taken and go to sleep.
        std::thread::sleep(std::time::Duration::from_millis(50));
        log.release(held);
        assert_eq!(producer.join().expect("producer"), Outcome::Written);
        logs.close_where(|_| true);
        assert_eq!(seal_and_read(&logs), vec!["{\"n\":1}".to_owned()]);
        std::fs::remove_dir_all(&data_dir).expect("cleanup");
    }

    /// Writes one record and returns its end position.
    fn write_one(log: &StreamLog, record: &[u8]) -> u64 {
        let ticket = Arc::new(Ticket::default());
        log.submit(record.to_vec(), &ticket).expect("ring has room");
        log.try_combine();
        assert_eq!(ticket.outcome(), Some(Outcome::Written));
        ticket.end_position()
    }

    #[test]
    fn a_record_written_at_once_comes_after_those_waiting_in_the_ring() {
        let (data_dir, logs) = logs("now", 1 << 20);
        let log = logs.get_or_open("acme", "is-AbCDefGH", PayloadFormat::Json);
        let waiting = Arc::new(Ticket::default());
        {
            let held = log.writer.lock().expect("writer");
            log.submit(b"{\"n\":1}\n".to_vec(), &waiting)
                .expect("ring has room");
            assert_eq!(log.try_write_now(b"{\"n\":0}\n"), None, "the flag is taken");
            drop(held);
        }
        let (outcome, end) = log.try_write_now(b"{\"n\":2}\n").expect("the flag is free");
        assert_eq!(outcome, Outcome::Written);
        assert_eq!(
            waiting.outcome(),
            Some(Outcome::Written),
            "the waiting record went first"
        );
        assert_eq!((waiting.end_position(), end), (8, 16));
        logs.close_where(|_| true);
        assert_eq!(
            seal_and_read(&logs),
            vec!["{\"n\":1}".to_owned(), "{\"n\":2}".to_owned()]
        );
        std::fs::remove_dir_all(&data_dir).expect("cleanup");
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct CountWakes(AtomicUsize);

    impl std::task::Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_flusher_gathers_half_of_the_last_flush_before_the_next() {
        let (data_dir, logs) = logs_with("gather", 1 << 20, true);
        let log = logs.get_or_open("acme", "is-AbCDefGH", PayloadFormat::Json);
        let record = b"{\"n\":1}\n";
        // Nothing flushed yet: the first record is flushed at once.
        let mut end = write_one(&log, record);
        assert_eq!(log.gather_target(), None);
        for _ in 0..9 {
            end = write_one(&log, record);
        }
        let (target, files) = log.flush_targets().expect("a flush");
        assert_eq!(target, end);
        log.flush_done(target, Ok(()), files).expect("flushed");
        // The last flush covered ten records: the next waits for five.
        let want = end + 5 * record.len() as u64;
        end = write_one(&log, record);
        assert_eq!(log.gather_target(), Some(want));
        let wakes = Arc::new(CountWakes::default());
        let waker = Waker::from(Arc::clone(&wakes));
        let mut gathered = log.gathered(want);
        let mut context = Context::from_waker(&waker);
        assert!(Pin::new(&mut gathered).poll(&mut context).is_pending());
        while end < want - record.len() as u64 {
            end = write_one(&log, record);
        }
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            0,
            "not woken before enough is written"
        );
        write_one(&log, record);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "woken once it is");
        assert!(Pin::new(&mut gathered).poll(&mut context).is_ready());
        assert_eq!(log.gather_target(), None);
        logs.close_where(|_| true);
        std::fs::remove_dir_all(&data_dir).expect("cleanup");
    }

    #[test]
    fn one_flush_at_a_time_and_a_later_one_covers_retired_segments() {
        let (data_dir, logs) = logs_with("lanes", 1500, true);
        let log = logs.get_or_open("acme", "is-AbCDefGH", PayloadFormat::Json);
        let record = format!("{{\"pad\":\"{}\"}}\n", "x".repeat(1000));
        let first = write_one(&log, record.as_bytes());
        let (target_1, files_1) = log.flush_targets().expect("a first flush");
        assert_eq!((target_1, files_1.len()), (first, 1));
        assert!(log.flush_targets().is_none(), "at most FLUSH_LANES at once");
        // The second record does not fit: its segment retires the first.
        let second = write_one(&log, record.as_bytes());
        log.flush_done(target_1, Ok(()), files_1).expect("flushed");
        assert!(log.is_durable(first) && !log.is_durable(second));
        // The first flush covered all of the retired segment (it held
        // nothing past the flush's target): only the open one is left.
        let (target_2, files_2) = log.flush_targets().expect("the lane is free again");
        assert_eq!(target_2, second);
        assert_eq!(files_2.len(), 1, "the retired segment is known durable");
        log.flush_done(target_2, Ok(()), files_2).expect("flushed");
        assert!(log.is_durable(second));
        logs.close_where(|_| true);
        std::fs::remove_dir_all(&data_dir).expect("cleanup");
    }

    #[test]
    fn an_abandoned_flush_frees_its_lane_and_its_records_need_a_flush_again() {
        let (data_dir, logs) = logs_with("abandon", 1 << 20, true);
        let log = logs.get_or_open("acme", "is-AbCDefGH", PayloadFormat::Json);
        let end = write_one(&log, b"{\"n\":1}\n");
        let (target, _files) = log.flush_targets().expect("a flush");
        assert!(!log.needs_flush(), "a started flush covers the record");
        log.abandon_flush(target);
        assert!(!log.is_durable(end), "nothing became durable");
        assert!(log.needs_flush(), "the record needs a flush again");
        let (again, files) = log.flush_targets().expect("the lane is free again");
        assert_eq!(again, end);
        log.flush_done(again, Ok(()), files).expect("flushed");
        assert!(log.is_durable(end));
        logs.close_where(|_| true);
        std::fs::remove_dir_all(&data_dir).expect("cleanup");
    }

    #[test]
    fn a_retired_segment_stays_listed_until_a_flush_that_began_after_it_succeeds() {
        let (data_dir, logs) = logs_with("retired", 1500, true);
        let log = logs.get_or_open("acme", "is-AbCDefGH", PayloadFormat::Json);
        let record = format!("{{\"pad\":\"{}\"}}\n", "y".repeat(500));
        write_one(&log, record.as_bytes());
        // A flush starts while the first segment is open ...
        let (target_1, files_1) = log.flush_targets().expect("a flush");
        // ... which then takes another record and is retired by a third.
        let second = write_one(&log, record.as_bytes());
        write_one(&log, record.as_bytes());
        log.flush_done(target_1, Ok(()), files_1).expect("flushed");
        assert!(
            !log.is_durable(second),
            "the flush began before the second record"
        );
        let (target_2, files_2) = log.flush_targets().expect("a flush");
        assert_eq!(files_2.len(), 2, "the retired segment is still to be flushed");
        log.flush_done(target_2, Ok(()), files_2).expect("flushed");
        assert!(log.is_durable(second));
        logs.close_where(|_| true);
        std::fs::remove_dir_all(&data_dir).expect("cleanup");
    }

    #[test]
    fn concurrent_producers_each_get_their_record_written_once() {
        let (data_dir, logs) = logs("concurrent", 1 << 20);
        let logs = Arc::new(logs);
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let logs = Arc::clone(&logs);
                std::thread::spawn(move || {
                    let log = logs.get_or_open("acme", "is-AbCDefGH", PayloadFormat::Json);
                    let ticket = Arc::new(Ticket::default());
                    for n in 0..2000 {
                        let record = format!("{{\"t\":{thread},\"n\":{n}}}\n").into_bytes();
                        log.submit(record, &ticket).expect("ring has room");
                        // As the server does: write it, or be woken by
                        // the thread that does.
                        log.try_combine();
                        assert_eq!(wait(&ticket), Outcome::Written);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("producer");
        }
        logs.close_where(|_| true);
        let mut lines = seal_and_read(&logs);
        assert_eq!(lines.len(), 8000);
        lines.sort();
        lines.dedup();
        assert_eq!(lines.len(), 8000, "no record twice");
        std::fs::remove_dir_all(&data_dir).expect("cleanup");
    }

    #[test]
    fn a_full_segment_is_retired_and_the_record_goes_to_the_next() {
        let (data_dir, logs) = logs("rotate", 3 << 20);
        let log = logs.get_or_open("acme", "is-AbCDefGH", PayloadFormat::Json);
        let ticket = Arc::new(Ticket::default());
        let record = [b"{\"p\":\"".as_slice(), &[b'x'; 1 << 20], b"\"}\n"].concat();
        for _ in 0..5 {
            log.submit(record.clone(), &ticket).expect("room");
            log.try_combine();
            assert_eq!(ticket.outcome(), Some(Outcome::Written));
        }
        log.close();
        let mut sealed = 0;
        while let Some(job) = logs.next_to_seal() {
            assert!(job.records >= 1 && job.len_bytes <= 3 << 20);
            sealed += job.records;
            writer::seal(job).expect("seal");
        }
        assert_eq!(sealed, 5);
        std::fs::remove_dir_all(&data_dir).expect("cleanup");
    }

    #[test]
    fn a_closed_log_refuses_records() {
        let (data_dir, logs) = logs("closed", 1 << 20);
        let log = logs.get_or_open("acme", "is-AbCDefGH", PayloadFormat::Json);
        log.close();
        let ticket = Arc::new(Ticket::default());
        log.submit(b"{}\n".to_vec(), &ticket).expect("room");
        log.try_combine();
        assert_eq!(ticket.outcome(), Some(Outcome::Closed));
        let _ = std::fs::remove_dir_all(&data_dir);
    }

    #[test]
    fn retire_if_due_seals_old_segments_only() {
        let (data_dir, logs) = logs("due", 1 << 20);
        let log = logs.get_or_open("acme", "is-AbCDefGH", PayloadFormat::Json);
        let ticket = Arc::new(Ticket::default());
        log.submit(b"{\"a\":1}\n".to_vec(), &ticket).expect("room");
        log.try_combine();
        let now = Clock::system().now_ms();
        log.retire_if_due(now, 60_000);
        assert!(logs.next_to_seal().is_none(), "a fresh segment stays open");
        log.retire_if_due(now + 60_000, 60_000);
        assert_eq!(seal_and_read(&logs), ["{\"a\":1}"]);
        std::fs::remove_dir_all(&data_dir).expect("cleanup");
    }
}
