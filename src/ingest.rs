//! One ingest request's decisions, in the order SPEC §1 fixes: the head
//! (400, 414, 431; checked by [`crate::http::request`]), 405, 401, 404, 415
//! (a `Content-Type` that is not the stream's, then a `Content-Encoding`
//! other than `identity`), 413, 417, rate limit (429), then the body (400)
//! and the store (503/504).
//!
//! [`Worker`] is what one worker thread keeps between requests: its copy
//! of the control snapshot, the stream logs it has used, its converters and
//! its rate-limit buckets. Nothing here knows about sockets; the connection
//! loop in [`crate::http::connection`] calls [`Worker::admit`] once the head
//! is parsed and [`Worker::store`] once the body is read.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::admin::WorkerStats;
use crate::auth::{AuthError, TokenCache};
use crate::config::{Config, Durability};
use crate::control::snapshot::{FastMap, PayloadFormat, Published, Snapshot, SnapshotCell};
use crate::convert::ConvertError;
use crate::convert::json::JsonConverter;
use crate::convert::xml::XmlConverter;
use crate::courier::RefreshSignal;
use crate::http::request::{
    self, BodyFraming, ContentEncoding, Expect, HeadError, Method, PathMatch, RequestHead,
};
use crate::rate::{Limit, RateLimiters};
use crate::ring::{Outcome, StreamLog, StreamLogs, Ticket};
use crate::telemetry;

/// Why a request was not accepted. [`Reject::status`], [`Reject::kind`] and
/// [`Reject::message`] are the one place a rejection becomes a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    Head(HeadError),
    MethodNotAllowed,
    Auth(AuthError),
    UnknownStream,
    UnknownPath,
    UnsupportedMediaType,
    /// A `Content-Encoding` other than `identity`: the appliance decodes
    /// no content coding, so it cannot read the body (a gzip body would
    /// otherwise be a 400 for invalid UTF-8, and a plain body labelled
    /// `br` would be stored under a label that says it is something else).
    UnsupportedContentEncoding,
    PayloadTooLarge,
    ExpectationFailed,
    RateLimited,
    Body(ConvertError),
    BadChunk,
    /// The ring stayed full: the writer is behind.
    WriterBehind,
    /// The worker is at its connection cap.
    TooManyConnections,
    DiskFull,
    StorageFailed,
    ShuttingDown,
    StoreTimeout,
}

impl Reject {
    pub fn status(self) -> u16 {
        match self {
            Reject::Head(error) => error.status(),
            Reject::MethodNotAllowed => 405,
            Reject::Auth(_) => 401,
            Reject::UnknownStream | Reject::UnknownPath => 404,
            Reject::UnsupportedMediaType | Reject::UnsupportedContentEncoding => 415,
            Reject::PayloadTooLarge => 413,
            Reject::ExpectationFailed => 417,
            Reject::RateLimited => 429,
            Reject::Body(_) | Reject::BadChunk => 400,
            Reject::WriterBehind | Reject::TooManyConnections | Reject::DiskFull | Reject::ShuttingDown => {
                503
            }
            Reject::StorageFailed => 500,
            Reject::StoreTimeout => 504,
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Reject::Head(error) => error.kind(),
            Reject::MethodNotAllowed => "method-not-allowed",
            Reject::Auth(error) => error.kind(),
            Reject::UnknownStream => "unknown-stream",
            Reject::UnknownPath => "unknown-path",
            Reject::UnsupportedMediaType => "unsupported-media-type",
            Reject::UnsupportedContentEncoding => "unsupported-content-encoding",
            Reject::PayloadTooLarge => "payload-too-large",
            Reject::ExpectationFailed => "expectation-failed",
            Reject::RateLimited => "rate-limited",
            Reject::Body(error) => error.kind(),
            Reject::BadChunk => "invalid-chunked-body",
            Reject::WriterBehind => "writer-behind",
            Reject::TooManyConnections => "too-many-connections",
            Reject::DiskFull => "disk-full",
            Reject::StorageFailed => "storage-failed",
            Reject::ShuttingDown => "shutting-down",
            Reject::StoreTimeout => "store-timeout",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Reject::Head(error) => error.message(),
            Reject::MethodNotAllowed => "Only POST is allowed on a stream path.",
            Reject::Auth(error) => error.message(),
            Reject::UnknownStream => "No such stream for this tenant.",
            Reject::UnknownPath => "No such path; streams are at /stream/v0/data/<stream-id>.",
            Reject::UnsupportedMediaType => {
                "Content-Type must be application/json for a JSON stream, application/xml or text/xml for an XML stream."
            }
            Reject::UnsupportedContentEncoding => {
                "Send the body uncompressed: the only Content-Encoding accepted is identity."
            }
            Reject::PayloadTooLarge => "The request body is larger than the limit.",
            Reject::ExpectationFailed => "Only Expect: 100-continue is supported.",
            Reject::RateLimited => "Too many requests for this tenant or stream; retry later.",
            Reject::Body(error) => error.message(),
            Reject::BadChunk => "The chunked body is malformed.",
            Reject::WriterBehind => "The stream's writer is behind; retry later.",
            Reject::TooManyConnections => "The appliance has too many open connections; retry later.",
            Reject::DiskFull => "The disk is full; retry later.",
            Reject::StorageFailed => "The record could not be stored.",
            Reject::ShuttingDown => "The appliance is shutting down; retry later.",
            Reject::StoreTimeout => "The store did not confirm the record in time; retry later.",
        }
    }

    /// Seconds a client should wait before retrying, for 429 and 503.
    pub fn retry_after_seconds(self) -> Option<u32> {
        match self.status() {
            429 | 503 => Some(1),
            _ => None,
        }
    }

    /// True when a fresher control snapshot could turn this refusal into
    /// an acceptance: a key, tenant or stream the snapshot does not know
    /// (yet), or a signature that a just-rotated secret would verify.
    pub fn may_be_stale(self) -> bool {
        matches!(
            self,
            Reject::UnknownStream | Reject::Auth(AuthError::UnknownKey | AuthError::Signature)
        )
    }

    /// True when the connection must be closed after the response: the
    /// request was malformed (SPEC §1: "a malformed request answers once and
    /// closes the connection" — its head, its framing or its body, every
    /// 400), or its body was not read (a 413 on the declared length; a 417,
    /// answered at once because a client that expects something may be
    /// waiting for an answer before it sends the body), or the appliance is
    /// stopping.
    pub fn closes_connection(self) -> bool {
        matches!(
            self,
            Reject::Head(_)
                | Reject::Body(_)
                | Reject::PayloadTooLarge
                | Reject::ExpectationFailed
                | Reject::BadChunk
                | Reject::ShuttingDown
        )
    }
}

/// A request that passed every check of its head.
pub struct Admitted {
    /// The stream's log; `None` in the no-work baseline.
    pub log: Option<Arc<StreamLog>>,
    pub format: PayloadFormat,
    /// With `durability = "disk"`, how long the record may wait for its
    /// flush (504 after); decided with the rest of the head so the body
    /// path does not read the configuration again.
    pub flush_timeout: Option<Duration>,
}

/// The limit of `key`, from this worker's map, else from `shared` (and
/// kept in the map).
fn local_limit(
    local: &RefCell<FastMap<String, Arc<Limit>>>,
    key: &str,
    shared: impl FnOnce() -> Arc<Limit>,
) -> Arc<Limit> {
    let mut local = local.borrow_mut();
    if let Some(limit) = local.get(key) {
        return Arc::clone(limit);
    }
    let limit = shared();
    local.insert(key.to_owned(), Arc::clone(&limit));
    limit
}

/// The longest a request that the snapshot would refuse waits for a fresh
/// one (see [`Worker::await_fresh_snapshot`]).
pub const FRESH_SNAPSHOT_WAIT_MS: u64 = 50;

/// What one worker thread keeps between requests.
pub struct Worker {
    pub index: usize,
    /// Where SIGHUP publishes a reloaded configuration.
    config_cell: Arc<Published<Config>>,
    /// The configuration this worker currently uses.
    config: RefCell<Arc<Config>>,
    snapshot_cell: Arc<SnapshotCell>,
    snapshot: RefCell<Arc<Snapshot>>,
    logs: Arc<StreamLogs>,
    /// The logs this worker has used, by stream id (ids are unique across
    /// tenants; the log's tenant is checked on every lookup).
    local_logs: RefCell<FastMap<String, Arc<StreamLog>>>,
    /// Tokens this worker verified under the current snapshot.
    tokens: RefCell<TokenCache>,
    json: RefCell<JsonConverter>,
    xml: RefCell<XmlConverter>,
    /// The buffer records are converted into; reused while records are
    /// written at once, handed to the ring (and replaced) when not.
    record: RefCell<Vec<u8>>,
    /// Every worker's rate limits, and the ones this worker used.
    rate_limiters: Arc<RateLimiters>,
    /// Asks the courier thread for a check of the control store now.
    refresh: Arc<RefreshSignal>,
    tenant_limits: RefCell<FastMap<String, Arc<Limit>>>,
    stream_limits: RefCell<FastMap<String, Arc<Limit>>>,
    pub shutting_down: Arc<AtomicBool>,
    /// Open connections on this worker.
    pub connections: Cell<usize>,
    /// Flusher tasks running on this worker (disk mode); a stopping worker
    /// waits for them as for its connections.
    pub flusher_tasks: Rc<Cell<usize>>,
    /// This worker's counters, summed by the admin listener.
    pub stats: Arc<WorkerStats>,
    /// Numbers the requests whose failure is logged.
    request_numbers: Cell<u64>,
}

impl Worker {
    /// A worker with the shared parts every worker gets from the server.
    // Each argument is one shared part of the server; a struct bundling
    // them would only be built to be taken apart here.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: usize,
        config_cell: Arc<Published<Config>>,
        snapshot_cell: Arc<SnapshotCell>,
        logs: Arc<StreamLogs>,
        shutting_down: Arc<AtomicBool>,
        stats: Arc<WorkerStats>,
        rate_limiters: Arc<RateLimiters>,
        refresh: Arc<RefreshSignal>,
    ) -> Worker {
        let snapshot = snapshot_cell.load();
        Worker {
            index,
            config: RefCell::new(config_cell.load()),
            config_cell,
            snapshot_cell,
            snapshot: RefCell::new(snapshot),
            logs,
            local_logs: RefCell::new(FastMap::default()),
            tokens: RefCell::new(TokenCache::default()),
            json: RefCell::new(JsonConverter::new()),
            xml: RefCell::new(XmlConverter::new()),
            record: RefCell::new(Vec::new()),
            rate_limiters,
            refresh,
            tenant_limits: RefCell::new(FastMap::default()),
            stream_limits: RefCell::new(FastMap::default()),
            shutting_down,
            connections: Cell::new(0),
            flusher_tasks: Rc::new(Cell::new(0)),
            stats,
            request_numbers: Cell::new(0),
        }
    }

    /// The next number for a logged request id.
    pub fn next_request_number(&self) -> u64 {
        let number = self.request_numbers.get() + 1;
        self.request_numbers.set(number);
        number
    }

    /// Counts a 202 and the request bytes it consumed.
    pub fn count_accepted(&self, request_bytes: usize) {
        self.stats.count_response(202);
        self.stats.records.fetch_add(1, Ordering::Relaxed);
        self.stats
            .body_bytes
            .fetch_add(request_bytes as u64, Ordering::Relaxed);
    }

    /// The configuration, refreshed if SIGHUP published a newer one.
    pub fn config(&self) -> Arc<Config> {
        let mut held = self.config.borrow_mut();
        self.config_cell.refresh(&mut held);
        Arc::clone(&held)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Waits (a few milliseconds, at most [`FRESH_SNAPSHOT_WAIT_MS`]) until
    /// the courier thread has looked at the control store after this call,
    /// so that the next [`Worker::admit`] sees keys, tenants and streams
    /// added just before the request (see [`RefreshSignal`]).
    pub async fn await_fresh_snapshot(&self) {
        let before = self.refresh.checks();
        let deadline = Instant::now() + Duration::from_millis(FRESH_SNAPSHOT_WAIT_MS);
        // The check that ends first may have begun before the request; the
        // one after it began after. Asked for again while waiting, since
        // each check clears the request when it starts.
        while self.refresh.checks() < before + 2 && Instant::now() < deadline {
            self.refresh.request();
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Decides everything that the head alone decides.
    pub fn admit(&self, head: &RequestHead<'_>) -> Result<Admitted, Reject> {
        let config = self.config();
        let PathMatch::Stream(stream_id) = request::stream_id_from_path(head.target) else {
            return Err(Reject::UnknownPath);
        };
        if head.method != Method::Post {
            return Err(Reject::MethodNotAllowed);
        }
        if config.no_work_baseline {
            return check_framing(&config, head).map(|()| Admitted {
                log: None,
                format: PayloadFormat::Json,
                flush_timeout: None,
            });
        }
        let snapshot = self.current_snapshot();
        let tenant = head.tenant.unwrap_or_default();
        let now_unix = self.config_clock_now();
        self.tokens
            .borrow_mut()
            .verify(head.authorization, tenant, &snapshot, now_unix)
            .map_err(Reject::Auth)?;
        // verify() checked the header names a tenant with a live key, so it is UTF-8.
        let tenant = std::str::from_utf8(tenant).map_err(|_| Reject::Auth(AuthError::WrongTenant))?;
        let stream = snapshot.stream(tenant, stream_id).ok_or(Reject::UnknownStream)?;
        let format = stream.format;
        let media_ok = head.content_type.is_some_and(|raw| match format {
            PayloadFormat::Json => request::media_is(raw, "application/json"),
            PayloadFormat::Xml => {
                request::media_is(raw, "application/xml") || request::media_is(raw, "text/xml")
            }
        });
        if !media_ok {
            return Err(Reject::UnsupportedMediaType);
        }
        if head.content_encoding != ContentEncoding::Identity {
            return Err(Reject::UnsupportedContentEncoding);
        }
        check_framing(&config, head)?;
        self.take_token(&config, tenant, stream_id)?;
        let log = self.log_for(tenant, stream_id, format);
        let flush_timeout =
            (config.durability == Durability::Disk).then(|| Duration::from_millis(config.store_timeout_ms));
        Ok(Admitted {
            log: Some(log),
            format,
            flush_timeout,
        })
    }

    fn config_clock_now(&self) -> i64 {
        self.logs.settings().clock.now_unix()
    }

    /// The snapshot, refreshed if the courier published a newer one.
    fn current_snapshot(&self) -> Arc<Snapshot> {
        let mut held = self.snapshot.borrow_mut();
        let generation = held.generation;
        self.snapshot_cell.refresh(&mut held);
        if held.generation != generation {
            // Streams may have been deleted: forget logs, look them up anew.
            self.local_logs.borrow_mut().clear();
        }
        Arc::clone(&held)
    }

    fn log_for(&self, tenant: &str, stream_id: &str, format: PayloadFormat) -> Arc<StreamLog> {
        let mut local = self.local_logs.borrow_mut();
        if let Some(log) = local.get(stream_id).filter(|log| log.tenant == tenant) {
            return Arc::clone(log);
        }
        // Only a worker's first request to a stream gets here.
        let log = self.logs.get_or_open(tenant, stream_id, format);
        local.insert(stream_id.to_owned(), Arc::clone(&log));
        log
    }

    /// Counts one request against its tenant's and its stream's limit
    /// (each the appliance's, shared by every worker; see
    /// [`crate::rate`]), or refuses with 429 and counts nothing when
    /// either is reached.
    fn take_token(&self, config: &Config, tenant: &str, stream_id: &str) -> Result<(), Reject> {
        let limits = &config.rate_limits;
        if limits.is_empty() {
            return Ok(());
        }
        let now = self.rate_limiters.now();
        let tenant_limit = limits.for_tenant(tenant).map(|rate| {
            let limit = local_limit(&self.tenant_limits, tenant, || self.rate_limiters.tenant(tenant));
            (limit, rate)
        });
        let stream_limit = limits.for_stream(stream_id).map(|rate| {
            let limit = local_limit(&self.stream_limits, stream_id, || {
                self.rate_limiters.stream(stream_id)
            });
            (limit, rate)
        });
        if let Some((limit, rate)) = &tenant_limit {
            if !limit.take(now, *rate) {
                return Err(Reject::RateLimited);
            }
        }
        if let Some((limit, rate)) = &stream_limit {
            if !limit.take(now, *rate) {
                if let Some((limit, rate)) = &tenant_limit {
                    limit.give_back(*rate);
                }
                return Err(Reject::RateLimited);
            }
        }
        Ok(())
    }

    /// Converts and stores one body, `input[..len]`; `input` has at least
    /// [`crate::convert::json::PADDING`] more bytes after it, which are left as found. `Ok`
    /// means the 202 promise holds.
    pub async fn store(
        &self,
        admitted: &Admitted,
        input: &mut [u8],
        len: usize,
        ticket: &Arc<Ticket>,
    ) -> Result<(), Reject> {
        let Some(log) = &admitted.log else { return Ok(()) };
        // The worker's record buffer, taken for the time this request
        // needs it (no await until it is back or handed to the ring).
        let mut record = std::mem::take(&mut *self.record.borrow_mut());
        record.clear();
        let converted = match admitted.format {
            PayloadFormat::Json => self.json.borrow_mut().convert_padded(input, len, &mut record),
            PayloadFormat::Xml => self.xml.borrow_mut().convert(&input[..len], &mut record),
        };
        if let Err(error) = converted {
            *self.record.borrow_mut() = record;
            return Err(Reject::Body(error));
        }
        // Usually this task writes its record itself, at once; when another
        // thread holds the writer flag, the record goes into the ring and
        // that thread writes it and wakes this task (flat combining).
        let (outcome, end) = match log.try_write_now(&record) {
            Some(done) => {
                *self.record.borrow_mut() = record;
                done
            }
            None => {
                if log.submit(record, ticket).is_err() {
                    return Err(Reject::WriterBehind);
                }
                log.try_combine();
                let outcome = match ticket.outcome() {
                    Some(outcome) => outcome,
                    None => ticket.completion().await,
                };
                (outcome, ticket.end_position())
            }
        };
        match outcome {
            Outcome::Written => {}
            Outcome::NoSpace => return Err(Reject::DiskFull),
            Outcome::Io => return Err(Reject::StorageFailed),
            Outcome::Closed => return Err(Reject::ShuttingDown),
            Outcome::TooLarge => return Err(Reject::PayloadTooLarge),
        }
        if let Some(timeout) = admitted.flush_timeout {
            wait_durable(log, end, Instant::now() + timeout, &self.flusher_tasks).await?;
        }
        Ok(())
    }
}

/// The 413 and 417 that the head alone decides.
fn check_framing(config: &Config, head: &RequestHead<'_>) -> Result<(), Reject> {
    if let BodyFraming::Length(length) = head.framing {
        if length > config.body_bytes_max as u64 {
            return Err(Reject::PayloadTooLarge);
        }
    }
    if head.expect == Expect::Unknown {
        return Err(Reject::ExpectationFailed);
    }
    Ok(())
}

/// Waits until the records up to `position` are on stable storage. Group
/// commits are run by flusher tasks, at most [`crate::ring::FLUSH_LANES`]
/// per stream (see [`flush_while_needed`]); a request whose record no
/// started flush covers starts one when there is room.
async fn wait_durable(
    log: &Arc<StreamLog>,
    position: u64,
    deadline: Instant,
    flusher_tasks: &Rc<Cell<usize>>,
) -> Result<(), Reject> {
    loop {
        if log.is_durable(position) {
            return Ok(());
        }
        if log.is_failed() {
            return Err(Reject::StorageFailed);
        }
        if log.is_closed() {
            return Err(Reject::ShuttingDown);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Reject::StoreTimeout);
        }
        if log.started_target() < position && log.claim_flusher() {
            let role = FlusherRole::new(Arc::clone(log), Rc::clone(flusher_tasks));
            monoio::spawn(flush_while_needed(role));
        }
        let _ = monoio::time::timeout(deadline - now, log.flush_progress(position)).await;
    }
}

/// The longest a flusher waits for more records before a group commit
/// (see [`StreamLog::gather_target`]); the runtime's timer rounds it up
/// to whole milliseconds.
const GATHER_WAIT_MAX: Duration = Duration::from_millis(1);

/// One of a stream's flushers (at most [`crate::ring::FLUSH_LANES`]): runs
/// group commits back to back while records wait that no started flush
/// covers, each covering every record written before it started, then
/// ends. Flushing without a pause leaves no gap in which written records
/// wait for nobody.
async fn flush_while_needed(mut role: FlusherRole) {
    let log = Arc::clone(&role.log);
    loop {
        while log.needs_flush() {
            if let Some(position) = log.gather_target() {
                let _ = monoio::time::timeout(GATHER_WAIT_MAX, log.gathered(position)).await;
            }
            let Some((target, files)) = log.flush_targets() else {
                break;
            };
            role.in_flight = Some(target);
            let started = Instant::now();
            let mut result = Ok(());
            for file in &files {
                result = flush(file).await;
                if result.is_err() {
                    break;
                }
            }
            log.count_flush(started.elapsed());
            role.in_flight = None;
            if let Err(error) = log.flush_done(target, result, files) {
                telemetry::FLUSH_FAILED.emit(&[
                    ("stream", log.stream_id.as_str().into()),
                    ("error", error.to_string().as_str().into()),
                ]);
                break;
            }
        }
        role.release();
        // A record written between the last look and the release waits
        // for a flusher: look once more, and take the role back if so.
        if !log.needs_flush() || !log.claim_flusher() {
            return;
        }
        role.held = true;
    }
}

/// A flusher task's claim: counted on its worker (which waits for it
/// before stopping) from before the task is spawned, and the flusher role
/// given back however the task ends, also when its worker's runtime drops
/// it, polled or not.
struct FlusherRole {
    log: Arc<StreamLog>,
    held: bool,
    /// The target of the group commit under way, if any.
    in_flight: Option<u64>,
    tasks: Rc<Cell<usize>>,
}

impl FlusherRole {
    /// For a caller that just won [`StreamLog::claim_flusher`].
    fn new(log: Arc<StreamLog>, tasks: Rc<Cell<usize>>) -> FlusherRole {
        tasks.set(tasks.get() + 1);
        FlusherRole {
            log,
            held: true,
            in_flight: None,
            tasks,
        }
    }

    fn release(&mut self) {
        if std::mem::take(&mut self.held) {
            self.log.release_flusher();
        }
    }
}

impl Drop for FlusherRole {
    fn drop(&mut self) {
        if let Some(target) = self.in_flight.take() {
            self.log.abandon_flush(target);
        }
        self.release();
        self.tasks.set(self.tasks.get() - 1);
    }
}

/// `fdatasync` through io_uring, so the worker keeps serving while the
/// disk works.
async fn flush(file: &std::fs::File) -> std::io::Result<()> {
    let file = monoio::fs::File::from_std(file.try_clone()?)?;
    file.sync_data().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_coding_is_a_415_of_its_own_kind() {
        let reject = Reject::UnsupportedContentEncoding;
        assert_eq!(reject.status(), 415);
        assert_eq!(reject.kind(), "unsupported-content-encoding");
        assert_ne!(reject.kind(), Reject::UnsupportedMediaType.kind());
        let message = reject.message();
        assert!(
            message.ends_with('.') && message.matches(". ").count() == 0,
            "{message}"
        );
        assert!(message.contains("uncompressed"), "{message}");
        // A well-formed request: its body can be skipped like any 415's.
        assert!(!reject.closes_connection());
        assert_eq!(reject.retry_after_seconds(), None);
    }

    #[test]
    fn a_417_closes_the_connection_because_its_body_is_not_read() {
        assert_eq!(Reject::ExpectationFailed.status(), 417);
        assert!(Reject::ExpectationFailed.closes_connection());
        // The other refusals of a well-formed head still keep it.
        for reject in [
            Reject::MethodNotAllowed,
            Reject::UnknownStream,
            Reject::UnknownPath,
            Reject::UnsupportedMediaType,
            Reject::RateLimited,
        ] {
            assert!(!reject.closes_connection(), "{reject:?}");
        }
    }
}
