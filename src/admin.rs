//! The admin listener: `/healthz`, `/readyz` and `/metrics` (Prometheus
//! text format) on its own address, away from ingest traffic.
//!
//! Admin traffic is a scrape every few seconds, so it runs on one plain
//! thread with blocking sockets; it shares nothing with the workers but
//! atomic counters.
//!
//! Promises:
//! - One request per connection: it is answered with `Connection: close`
//!   and the connection closed.
//! - Routing looks at the path alone: a query string (which a Prometheus
//!   scrape config's `params:` adds) is ignored, so `/metrics?x=1` is
//!   `/metrics`.
//! - An unknown path is a 404. A known path answers GET and HEAD, and any
//!   other method with a 405 carrying `Allow: GET, HEAD` (RFC 9110
//!   §15.5.6): a probe that POSTs learns it is wrong instead of reading a
//!   200 it did not ask for.
//! - HEAD gets the status and header fields GET would, with no content.
//! - A head httparse refuses is a 400 (a 431 for too many fields), and a
//!   head still incomplete after [`ADMIN_HEAD_BYTES_MAX`] a 431, each with
//!   the JSON error body of the ingest side; then the connection is closed.
//!   A client that closes or stalls before its head is complete gets no
//!   answer.
//! - An answer is not lost to a reset: what the client still sends after
//!   it (the rest of an oversized head, a body) is read and dropped for a
//!   bounded time before the socket closes.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use crate::http::request::{self, HeadError};
use crate::http::response::{self, ErrorExtra};
use crate::limits::HEADERS_COUNT_MAX;
use crate::ring::StreamLogs;
use crate::telemetry::{self, StatusCounts};

/// How long an admin client may take to send its request.
pub const ADMIN_READ_TIMEOUT_MS: u64 = 2_000;

/// The largest admin request head read.
pub const ADMIN_HEAD_BYTES_MAX: usize = 8 * 1024;

/// How long a closing admin connection keeps reading what its client still
/// sends after the answer (see `linger`). The admin thread serves one
/// connection at a time, so this is also how long a client that never
/// closes can hold it up after its answer.
pub const ADMIN_LINGER_MS: u64 = 500;

/// How many bytes a closing admin connection reads and drops at most.
pub const ADMIN_LINGER_BYTES_MAX: usize = 64 * 1024;

/// Where the appliance is in its life, for `/readyz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Starting = 0,
    Ready = 1,
    Draining = 2,
}

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

/// The methods every admin path answers, for `Allow` on a 405.
const METHODS_ALLOWED: &str = "GET, HEAD";

/// What the admin listener serves, each at its own path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resource {
    Healthz,
    Readyz,
    Metrics,
}

impl Resource {
    /// The resource at `path` (a path without its query string).
    fn at(path: &str) -> Option<Resource> {
        match path {
            "/healthz" => Some(Resource::Healthz),
            "/readyz" => Some(Resource::Readyz),
            "/metrics" => Some(Resource::Metrics),
            _ => None,
        }
    }
}

/// What the admin listener makes of a request's method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    /// GET without the content (RFC 9110 §9.3.2).
    Head,
    /// Anything else: a 405 on every admin path.
    Other,
}

/// A complete admin request head, reduced to what routing needs.
#[derive(Debug, PartialEq, Eq)]
struct AdminRequest {
    method: Method,
    /// The request target without its query string.
    path: String,
}

/// Why an admin request head is refused; the refusal is answered and the
/// connection closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// httparse refused the head: answered as the ingest side answers it.
    Malformed(HeadError),
    /// No complete head within [`ADMIN_HEAD_BYTES_MAX`].
    TooLarge,
}

fn answer(mut stream: TcpStream, state: &AdminState) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(ADMIN_READ_TIMEOUT_MS)))?;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let mut out = Vec::with_capacity(4096);
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            // Closed before a complete head: there is no one to answer.
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
        match parse_head(&head) {
            Ok(None) => continue,
            Ok(Some(request)) => respond(&request, state, &mut out),
            Err(refusal) => refuse(refusal, &mut out),
        }
        break;
    }
    stream.write_all(&out)?;
    linger(&mut stream);
    Ok(())
}

/// Ends a connection after its answer. Closing a socket with unread bytes
/// makes the kernel reset the connection, and the reset can reach the
/// client before the answer it then never reads (the rest of a head too
/// large to read, a body sent with a POST). So the write side is shut
/// first (the client reads the answer, then end of file), and what still
/// arrives is dropped until the client closes, for at most
/// [`ADMIN_LINGER_MS`] and [`ADMIN_LINGER_BYTES_MAX`] (the lingering close
/// of RFC 9112 §9.6, as the ingest side does it).
fn linger(stream: &mut TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = std::time::Instant::now() + Duration::from_millis(ADMIN_LINGER_MS);
    let mut sink = [0u8; 4096];
    let mut dropped = 0;
    while dropped < ADMIN_LINGER_BYTES_MAX {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => dropped += n,
        }
    }
}

/// Parses the head read so far: `Ok(None)` while it is incomplete and may
/// still grow, the request once it is complete.
fn parse_head(bytes: &[u8]) -> Result<Option<AdminRequest>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_COUNT_MAX];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {
            let method = match parsed.method {
                Some("GET") => Method::Get,
                Some("HEAD") => Method::Head,
                _ => Method::Other,
            };
            let target = parsed.path.unwrap_or_default();
            let path = target.split_once('?').map_or(target, |(path, _query)| path);
            Ok(Some(AdminRequest {
                method,
                path: path.to_owned(),
            }))
        }
        Ok(httparse::Status::Partial) if bytes.len() < ADMIN_HEAD_BYTES_MAX => Ok(None),
        Ok(httparse::Status::Partial) => Err(Refusal::TooLarge),
        Err(error) => Err(Refusal::Malformed(request::classify_parse_error(bytes, error))),
    }
}

/// Writes the answer to a complete request.
fn respond(request: &AdminRequest, state: &AdminState, out: &mut Vec<u8>) {
    match (Resource::at(&request.path), request.method) {
        (None, _) => {
            let message = "The admin listener serves /healthz, /readyz and /metrics.";
            response::write_error(out, 404, "unknown-path", message, false, ErrorExtra::default());
        }
        (Some(_), Method::Other) => {
            let extra = ErrorExtra {
                allow: Some(METHODS_ALLOWED),
                ..ErrorExtra::default()
            };
            let message = "The admin listener answers GET and HEAD only.";
            response::write_error(out, 405, "method-not-allowed", message, false, extra);
        }
        (Some(resource), Method::Get | Method::Head) => write_resource(resource, state, out),
    }
    if request.method == Method::Head {
        // The same status and header fields, no content (RFC 9110 §9.3.2).
        if let Some(end) = memchr::memmem::find(out, b"\r\n\r\n") {
            out.truncate(end + 4);
        }
    }
}

/// Writes what a GET of `resource` answers.
fn write_resource(resource: Resource, state: &AdminState, out: &mut Vec<u8>) {
    match resource {
        Resource::Healthz if state.liveness.all_alive() => {
            response::write_simple(out, 200, "text/plain", b"alive\n", false)
        }
        Resource::Healthz => {
            let extra = ErrorExtra {
                retry_after_seconds: Some(1),
                ..ErrorExtra::default()
            };
            let message = "A worker or the courier thread stopped making progress.";
            response::write_error(out, 503, "stuck", message, false, extra);
        }
        Resource::Readyz => match state.phase() {
            Phase::Ready => response::write_simple(out, 200, "text/plain", b"ready\n", false),
            Phase::Starting => not_ready(out, "The appliance is still starting (recovery or binding)."),
            Phase::Draining => not_ready(out, "The appliance is draining for shutdown."),
        },
        Resource::Metrics => {
            let body = render_metrics(state);
            response::write_simple(out, 200, "text/plain; version=0.0.4", body.as_bytes(), false)
        }
    }
}

/// Writes the answer to a refused head; the connection closes after it.
fn refuse(refusal: Refusal, out: &mut Vec<u8>) {
    match refusal {
        Refusal::Malformed(error) => response::write_error(
            out,
            error.status(),
            error.kind(),
            error.message(),
            false,
            ErrorExtra::default(),
        ),
        Refusal::TooLarge => {
            let message = format!(
                "The admin request head is larger than {} KiB.",
                ADMIN_HEAD_BYTES_MAX / 1024
            );
            let kind = HeadError::HeaderSectionTooLarge.kind();
            response::write_error(out, 431, kind, &message, false, ErrorExtra::default());
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::ring::LogSettings;

    fn state(phase: Phase) -> AdminState {
        let settings = LogSettings {
            data_dir: std::env::temp_dir().join("sluice-admin-test-unused"),
            segment_bytes_max: 1 << 20,
            sync_to_disk: false,
            clock: Clock::system(),
        };
        let state = AdminState {
            // No threads to watch: every one of none is alive.
            liveness: Arc::new(Liveness::new(0)),
            phase: AtomicU8::new(0),
            workers: vec![Arc::new(WorkerStats::default())],
            logs: Arc::new(StreamLogs::new(settings)),
        };
        state.set_phase(phase);
        state
    }

    /// An answer split into status, header lines and body, after checking
    /// that it closes the connection and that `Content-Length` is the
    /// length of the full body (`head_request`: no body follows it).
    fn split(out: &[u8], head_request: bool) -> (u16, Vec<String>, String) {
        let text = std::str::from_utf8(out).expect("answers are UTF-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
        let mut lines = head.lines();
        let status = lines.next().expect("a status line")[9..12]
            .parse()
            .expect("a status");
        let headers: Vec<String> = lines.map(str::to_owned).collect();
        assert!(headers.contains(&"Connection: close".to_owned()), "{text:?}");
        let length: usize = headers
            .iter()
            .find_map(|line| line.strip_prefix("Content-Length: "))
            .expect("Content-Length")
            .parse()
            .expect("a number");
        if head_request {
            assert_eq!(body, "", "HEAD gets no content");
            assert!(length > 0, "HEAD announces the GET body's length");
        } else {
            assert_eq!(body.len(), length, "{text:?}");
        }
        (status, headers, body.to_owned())
    }

    /// What [`parse_head`] makes of some bytes.
    type Parsed = Result<Option<AdminRequest>, Refusal>;

    #[test]
    fn heads_are_parsed_to_method_and_path_without_query() {
        let request = |method, path: &str| -> Parsed {
            Ok(Some(AdminRequest {
                method,
                path: path.to_owned(),
            }))
        };
        let long_target = format!("GET /{}", "a".repeat(ADMIN_HEAD_BYTES_MAX));
        let long_field = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(ADMIN_HEAD_BYTES_MAX));
        let cases: Vec<(&[u8], Parsed)> = vec![
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                request(Method::Get, "/metrics"),
            ),
            (
                b"GET /metrics?x=1&y=2 HTTP/1.1\r\n\r\n",
                request(Method::Get, "/metrics"),
            ),
            (
                b"GET /metrics? HTTP/1.1\r\n\r\n",
                request(Method::Get, "/metrics"),
            ),
            (
                b"GET /readyz?/healthz HTTP/1.1\r\n\r\n",
                request(Method::Get, "/readyz"),
            ),
            (
                b"HEAD /healthz HTTP/1.0\r\n\r\n",
                request(Method::Head, "/healthz"),
            ),
            (
                b"POST /readyz HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                request(Method::Other, "/readyz"),
            ),
            (
                b"get /metrics HTTP/1.1\r\n\r\n",
                request(Method::Other, "/metrics"),
            ),
            (b"OPTIONS * HTTP/1.1\r\n\r\n", request(Method::Other, "*")),
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\n", Ok(None)),
            (b"GET /met", Ok(None)),
            (
                b"GARBAGE\r\n\r\n",
                Err(Refusal::Malformed(HeadError::MalformedRequestLine)),
            ),
            (
                b"GET /metrics HTTP/2.0\r\n\r\n",
                Err(Refusal::Malformed(HeadError::UnsupportedVersion)),
            ),
            (
                b"GET /metrics HTTP/1.1\r\nBad Name: x\r\n\r\n",
                Err(Refusal::Malformed(HeadError::MalformedHeader)),
            ),
            // httparse takes a bare LF, and so does the admin listener: it
            // reads one request per connection, so a lenient line ending
            // cannot smuggle a second one.
            (
                b"GET /metrics HTTP/1.1\nHost: x\n\n",
                request(Method::Get, "/metrics"),
            ),
            (long_target.as_bytes(), Err(Refusal::TooLarge)),
            (long_field.as_bytes(), Err(Refusal::TooLarge)),
        ];
        for (bytes, expected) in cases {
            let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned();
            assert_eq!(parse_head(bytes), expected, "{shown:?}");
        }
    }

    #[test]
    fn known_paths_answer_get_and_head_and_refuse_other_methods_with_405() {
        let state = state(Phase::Ready);
        let cases: &[(Method, &str, u16, &str)] = &[
            (Method::Get, "/healthz", 200, "alive\n"),
            (Method::Get, "/readyz", 200, "ready\n"),
            (Method::Get, "/metrics", 200, "# HELP sluice_responses_total"),
            (Method::Head, "/healthz", 200, ""),
            (Method::Head, "/metrics", 200, ""),
            (Method::Other, "/healthz", 405, "{\"status\":405,"),
            (Method::Other, "/readyz", 405, "{\"status\":405,"),
            (Method::Other, "/metrics", 405, "{\"status\":405,"),
            (Method::Get, "/nowhere", 404, "{\"status\":404,"),
            (Method::Other, "/nowhere", 404, "{\"status\":404,"),
            (Method::Get, "/metrics/", 404, "{\"status\":404,"),
        ];
        for &(method, path, status, body_start) in cases {
            let mut out = Vec::new();
            let request = AdminRequest {
                method,
                path: path.to_owned(),
            };
            respond(&request, &state, &mut out);
            let (got, headers, body) = split(&out, method == Method::Head);
            assert_eq!(got, status, "{method:?} {path}");
            assert!(body.starts_with(body_start), "{method:?} {path}: {body:?}");
            let allow = headers.iter().find(|line| line.starts_with("Allow:"));
            if status == 405 {
                assert_eq!(allow.map(String::as_str), Some("Allow: GET, HEAD"));
                let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
                assert_eq!(body["status"], 405);
                assert_eq!(body["error"], "method-not-allowed");
                assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
            } else {
                assert_eq!(allow, None, "{method:?} {path}");
            }
        }
    }

    #[test]
    fn head_announces_the_length_get_sends() {
        let state = state(Phase::Draining);
        for path in ["/healthz", "/readyz"] {
            let answer = |method| {
                let mut out = Vec::new();
                respond(
                    &AdminRequest {
                        method,
                        path: path.to_owned(),
                    },
                    &state,
                    &mut out,
                );
                split(&out, method == Method::Head)
            };
            let (get_status, get_headers, _) = answer(Method::Get);
            let (head_status, head_headers, _) = answer(Method::Head);
            assert_eq!(head_status, get_status, "{path}");
            let undated = |headers: Vec<String>| {
                headers
                    .into_iter()
                    .filter(|line| !line.starts_with("Date:"))
                    .collect::<Vec<_>>()
            };
            assert_eq!(undated(head_headers), undated(get_headers), "{path}");
        }
    }

    #[test]
    fn refused_heads_get_a_json_error_that_closes() {
        let cases = [
            (
                Refusal::Malformed(HeadError::MalformedRequestLine),
                400,
                "malformed-request-line",
            ),
            (
                Refusal::Malformed(HeadError::TooManyHeaders),
                431,
                "too-many-headers",
            ),
            (Refusal::TooLarge, 431, "header-section-too-large"),
        ];
        for (refusal, status, kind) in cases {
            let mut out = Vec::new();
            refuse(refusal, &mut out);
            let (got, _, body) = split(&out, false);
            assert_eq!(got, status, "{refusal:?}");
            let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            assert_eq!(body["status"], status);
            assert_eq!(body["error"], kind);
        }
        let mut out = Vec::new();
        refuse(Refusal::TooLarge, &mut out);
        assert!(
            String::from_utf8_lossy(&out).contains("larger than 8 KiB"),
            "the message names the admin limit"
        );
    }
}
