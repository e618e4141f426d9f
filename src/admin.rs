//! The admin listener: `/healthz`, `/readyz` and `/metrics` (Prometheus
//! text format) on its own address, away from ingest traffic.
//!
//! Admin traffic is a scrape every few seconds, so it runs on one plain
//! thread with blocking sockets; it shares nothing with the workers but
//! atomic counters.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use crate::http::response::{self, ErrorExtra};
use crate::limits::HEADERS_COUNT_MAX;
use crate::ring::StreamLogs;
use crate::telemetry::{self, StatusCounts};

/// How long an admin client may take to send its request.
pub const ADMIN_READ_TIMEOUT_MS: u64 = 2_000;

/// The largest admin request head read.
pub const ADMIN_HEAD_BYTES_MAX: usize = 8 * 1024;

/// Where the appliance is in its life, for `/readyz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Starting = 0,
    Ready = 1,
    Draining = 2,
}

/// Status codes counted per worker; anything else is counted as `other`.
pub const COUNTED_STATUSES: [u16; 15] = [
    202, 400, 401, 404, 405, 413, 414, 415, 417, 429, 431, 500, 503, 504, 100,
];

/// Upper bounds (seconds) of the 202 latency histogram's buckets.
pub const LATENCY_BUCKETS_SECONDS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// One worker's counters, written only by that worker.
#[derive(Default)]
pub struct WorkerStats {
    pub responses: StatusCounts,
    pub body_bytes: AtomicU64,
    pub records: AtomicU64,
    /// 202 latency (head parsed → answer queued), cumulative per bucket
    /// is computed at scrape time; this holds per-bucket counts, the last
    /// slot counting answers slower than every bound.
    pub latency_buckets: [AtomicU64; LATENCY_BUCKETS_SECONDS.len() + 1],
    pub latency_sum_us: AtomicU64,
}

impl WorkerStats {
    pub fn observe_latency(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot = LATENCY_BUCKETS_SECONDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS_SECONDS.len());
        self.latency_buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn count_response(&self, status: u16) {
        self.responses.count(status);
    }
}

/// Heartbeats of the threads that must keep making progress: each worker
/// (from a task on its own runtime, so a blocked runtime stops beating) and
/// the courier. The systemd watchdog and `/healthz` trust only these.
pub struct Liveness {
    started: std::time::Instant,
    /// Milliseconds since `started` of each thread's last beat.
    beats: Vec<AtomicU64>,
}

/// A thread whose last beat is older than this is considered stuck.
pub const HEARTBEAT_STALE_MS: u64 = 5_000;

impl Liveness {
    pub fn new(threads: usize) -> Liveness {
        Liveness {
            started: std::time::Instant::now(),
            beats: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn beat(&self, thread: usize) {
        self.beats[thread].store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// True when every thread beat within [`HEARTBEAT_STALE_MS`].
    pub fn all_alive(&self) -> bool {
        let now = self.started.elapsed().as_millis() as u64;
        self.beats
            .iter()
            .all(|beat| now.saturating_sub(beat.load(Ordering::Relaxed)) < HEARTBEAT_STALE_MS)
    }
}

/// What the admin thread reads.
pub struct AdminState {
    pub liveness: Arc<Liveness>,
    pub phase: AtomicU8,
    pub workers: Vec<Arc<WorkerStats>>,
    pub logs: Arc<StreamLogs>,
}

impl AdminState {
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            1 => Phase::Ready,
            2 => Phase::Draining,
            _ => Phase::Starting,
        }
    }
}

/// Serves admin requests until the process exits.
pub fn serve(listener: TcpListener, state: Arc<AdminState>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = answer(stream, &state);
    }
}

fn answer(mut stream: TcpStream, state: &AdminState) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(ADMIN_READ_TIMEOUT_MS)))?;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (path, head_request) = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; HEADERS_COUNT_MAX];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {
                break (
                    request.path.unwrap_or("/").to_owned(),
                    request.method == Some("HEAD"),
                );
            }
            Ok(httparse::Status::Partial) if head.len() < ADMIN_HEAD_BYTES_MAX => continue,
            _ => return Ok(()),
        }
    };
    let mut out = Vec::with_capacity(4096);
    match path.as_str() {
        "/healthz" if state.liveness.all_alive() => {
            response::write_simple(&mut out, 200, "text/plain", b"alive\n", false)
        }
        "/healthz" => {
            let extra = ErrorExtra {
                retry_after_seconds: Some(1),
                ..ErrorExtra::default()
            };
            let message = "A worker or the courier thread stopped making progress.";
            response::write_error(&mut out, 503, "stuck", message, false, extra);
        }
        "/readyz" => match state.phase() {
            Phase::Ready => response::write_simple(&mut out, 200, "text/plain", b"ready\n", false),
            Phase::Starting => not_ready(&mut out, "The appliance is still starting (recovery or binding)."),
            Phase::Draining => not_ready(&mut out, "The appliance is draining for shutdown."),
        },
        "/metrics" => {
            let body = render_metrics(state);
            response::write_simple(&mut out, 200, "text/plain; version=0.0.4", body.as_bytes(), false)
        }
        _ => response::write_error(
            &mut out,
            404,
            "unknown-path",
            "The admin listener serves /healthz, /readyz and /metrics.",
            false,
            ErrorExtra::default(),
        ),
    }
    if head_request {
        // The same status and header fields, no content (RFC 9110 §9.3.2).
        if let Some(end) = memchr::memmem::find(&out, b"\r\n\r\n") {
            out.truncate(end + 4);
        }
    }
    stream.write_all(&out)
}

fn not_ready(out: &mut Vec<u8>, message: &str) {
    let extra = ErrorExtra {
        retry_after_seconds: Some(1),
        ..ErrorExtra::default()
    };
    response::write_error(out, 503, "not-ready", message, false, extra);
}

/// One metric with a sample per stream, labelled by tenant and stream.
fn per_stream<T: std::fmt::Display>(
    out: &mut String,
    state: &AdminState,
    name: &str,
    help: &str,
    kind: &str,
    value: impl Fn(&crate::ring::StreamLog) -> T,
) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for log in state.logs.all() {
        let _ = writeln!(
            out,
            "{name}{{tenant=\"{}\",stream=\"{}\"}} {}",
            log.tenant,
            log.stream_id,
            value(&log)
        );
    }
}

fn render_metrics(state: &AdminState) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    out.push_str("# HELP sluice_responses_total Ingest responses by status code.\n");
    out.push_str("# TYPE sluice_responses_total counter\n");
    let mut totals: Vec<(String, u64)> = Vec::new();
    for worker in &state.workers {
        for (index, (label, count)) in worker.responses.snapshot().enumerate() {
            match totals.get_mut(index) {
                Some((_, total)) => *total += count,
                None => totals.push((label, count)),
            }
        }
    }
    for (label, total) in totals {
        let _ = writeln!(out, "sluice_responses_total{{code=\"{label}\"}} {total}");
    }
    out.push_str(
        "# HELP sluice_stream_responses_total Responses to requests that reached a stream, by code.\n",
    );
    out.push_str("# TYPE sluice_stream_responses_total counter\n");
    for log in state.logs.all() {
        for (label, count) in log.responses.snapshot().filter(|(_, count)| *count > 0) {
            let _ = writeln!(
                out,
                "sluice_stream_responses_total{{tenant=\"{}\",stream=\"{}\",code=\"{label}\"}} {count}",
                log.tenant, log.stream_id
            );
        }
    }
    out.push_str("# HELP sluice_group_run_seconds_total Time spent in courier group runs.\n");
    out.push_str("# TYPE sluice_group_run_seconds_total counter\n");
    let _ = writeln!(
        out,
        "sluice_group_run_seconds_total {}",
        telemetry::GROUP_RUN_MS.load(Ordering::Relaxed) as f64 / 1000.0
    );
    let bytes: u64 = state
        .workers
        .iter()
        .map(|w| w.body_bytes.load(Ordering::Relaxed))
        .sum();
    let records: u64 = state
        .workers
        .iter()
        .map(|w| w.records.load(Ordering::Relaxed))
        .sum();
    out.push_str("# HELP sluice_body_bytes_total Bytes of accepted request bodies.\n");
    out.push_str("# TYPE sluice_body_bytes_total counter\n");
    let _ = writeln!(out, "sluice_body_bytes_total {bytes}");
    out.push_str("# HELP sluice_records_total Records stored.\n");
    out.push_str("# TYPE sluice_records_total counter\n");
    let _ = writeln!(out, "sluice_records_total {records}");
    out.push_str("# HELP sluice_accept_latency_seconds Time from a parsed head to its queued 202.\n");
    out.push_str("# TYPE sluice_accept_latency_seconds histogram\n");
    let mut cumulative = 0u64;
    for (slot, bound) in LATENCY_BUCKETS_SECONDS.iter().enumerate() {
        cumulative += state
            .workers
            .iter()
            .map(|w| w.latency_buckets[slot].load(Ordering::Relaxed))
            .sum::<u64>();
        let _ = writeln!(
            out,
            "sluice_accept_latency_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    cumulative += state
        .workers
        .iter()
        .map(|w| w.latency_buckets[LATENCY_BUCKETS_SECONDS.len()].load(Ordering::Relaxed))
        .sum::<u64>();
    let _ = writeln!(
        out,
        "sluice_accept_latency_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let sum_us: u64 = state
        .workers
        .iter()
        .map(|w| w.latency_sum_us.load(Ordering::Relaxed))
        .sum();
    let _ = writeln!(out, "sluice_accept_latency_seconds_sum {}", sum_us as f64 / 1e6);
    let _ = writeln!(out, "sluice_accept_latency_seconds_count {cumulative}");
    per_stream(
        &mut out,
        state,
        "sluice_stream_records_total",
        "Records written to a stream's segments.",
        "counter",
        |log| log.records_written.load(Ordering::Relaxed),
    );
    per_stream(
        &mut out,
        state,
        "sluice_stream_bytes_total",
        "Bytes of records written to a stream's segments.",
        "counter",
        |log| log.bytes_written.load(Ordering::Relaxed),
    );
    per_stream(
        &mut out,
        state,
        "sluice_open_segment_bytes",
        "Bytes in a stream's open segment.",
        "gauge",
        |log| log.open_bytes.load(Ordering::Relaxed),
    );
    per_stream(
        &mut out,
        state,
        "sluice_stream_flushes_total",
        "Group commits (fdatasync of a stream's segments) run with durability = \"disk\".",
        "counter",
        |log| log.flushes.load(Ordering::Relaxed),
    );
    per_stream(
        &mut out,
        state,
        "sluice_stream_flush_seconds_total",
        "Time those group commits took.",
        "counter",
        |log| log.flush_nanos.load(Ordering::Relaxed) as f64 / 1e9,
    );
    out.push_str("# HELP sluice_sealed_bytes_total Bytes of segments sealed since start.\n");
    out.push_str("# TYPE sluice_sealed_bytes_total counter\n");
    let _ = writeln!(
        out,
        "sluice_sealed_bytes_total {}",
        telemetry::SEALED_BYTES.load(Ordering::Relaxed)
    );
    out.push_str("# HELP sluice_seal_lag_seconds How late the last due segment was sealed.\n");
    out.push_str("# TYPE sluice_seal_lag_seconds gauge\n");
    let _ = writeln!(
        out,
        "sluice_seal_lag_seconds {}",
        telemetry::SEAL_LAG_MS.load(Ordering::Relaxed) as f64 / 1000.0
    );
    per_stream(
        &mut out,
        state,
        "sluice_ring_records",
        "Records waiting in a stream's ring.",
        "gauge",
        |log| log.ring_len() as u64,
    );
    out.push_str("# HELP sluice_events_total Named events.\n");
    out.push_str("# TYPE sluice_events_total counter\n");
    for event in telemetry::ALL_EVENTS {
        let _ = writeln!(
            out,
            "sluice_events_total{{event=\"{}\"}} {}",
            event.name,
            event.count()
        );
    }
    out
}
