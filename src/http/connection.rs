//! The connection loop: the one place that owns control flow for a client.
//!
//! It reads a head, asks [`Worker::admit`] what the head alone decides,
//! reads the body (Content-Length or chunked) only for admitted requests,
//! asks [`Worker::store`] to convert and store it, and answers. Pipelined
//! requests are answered in order, and their answers written in one go when
//! the loop would otherwise wait for input. A malformed request is answered
//! once and the connection closed; nothing here is shared with another
//! connection, so a bad client affects only itself. Every 5xx written here,
//! the 503 of a connection refused at the worker's cap included, is logged
//! as a `request-failed` event with a request id.
//!
//! Reads are never cancelled while a connection is kept: a cancelled
//! io_uring read can lose bytes that had already arrived. Deadlines that
//! cancel a read (head, body, idle) always close the connection, and
//! shutdown ends idle connections with `shutdown(2)` instead.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use super::body::ChunkedDecoder;
use super::request::{self, BodyFraming, Expect, HeadStatus};
use super::response::{self, ErrorExtra};
use crate::convert::json::PADDING;
use crate::ingest::{Admitted, Reject, Worker};
use crate::ring::{StreamLog, Ticket};

/// How many bytes a read asks for at least. Bodies larger than this are
/// read straight into their place in the input buffer.
pub const READ_BYTES_MIN: usize = 16 * 1024;

/// How long a closing connection keeps reading what its client still
/// sends after the last answer (see `Connection::close`).
pub const LINGER_MAX: Duration = Duration::from_secs(2);

/// How many bytes a closing connection reads and drops at most.
pub const LINGER_BYTES_MAX: usize = 4 << 20;

/// What the shutdown watcher needs to know about a connection.
pub struct ConnectionState {
    pub fd: RawFd,
    /// True while the connection waits for (or reads) a request head: no
    /// request of it is in flight, so shutdown may end it.
    pub idle: Cell<bool>,
}

/// Serves one client until it leaves, errs, or the appliance shuts down.
pub async fn serve(stream: TcpStream, worker: Rc<Worker>, state: Rc<ConnectionState>) {
    let _ = stream.set_nodelay(true);
    let mut connection = Connection {
        stream,
        input: Vec::with_capacity(READ_BYTES_MIN),
        output: Vec::with_capacity(512),
        chunked: Vec::new(),
        ticket: Arc::new(Ticket::default()),
        state,
    };
    let _ = connection.run(&worker).await;
}

/// Answers one client that arrived while the worker is at its connection
/// cap, then closes. The 503 is logged like every other 5xx: a worker at
/// its cap is a capacity problem the operator must hear of, not only the
/// client. It then lingers briefly (its request may be on the way, and
/// closing on it would reset the connection and lose the answer); briefly,
/// because a flood of refused connections must not hold descriptors long.
pub async fn refuse(mut stream: TcpStream, worker: Rc<Worker>) {
    let mut output = Vec::with_capacity(256);
    log_failure(&worker, None, Reject::TooManyConnections);
    write_reject(&worker, &mut output, Reject::TooManyConnections, false);
    let (result, mut output) = stream.write_all(output).await;
    if result.is_ok() {
        output.clear();
        linger(&mut stream, output, REFUSED_LINGER_MAX, REFUSED_LINGER_BYTES_MAX).await;
    }
}

/// How long a connection refused at the cap lingers (see [`refuse`]).
const REFUSED_LINGER_MAX: Duration = Duration::from_millis(100);

/// How many bytes a connection refused at the cap reads and drops at most.
const REFUSED_LINGER_BYTES_MAX: usize = 64 << 10;

/// The lingering close of RFC 9112 §9.6, after a connection's last answer
/// has been written: shuts the write side (the client gets the answer,
/// then end of file) and reads and drops what the client still sends,
/// until it closes, `max` passes or `bytes_max` bytes were dropped. Closing
/// on unread bytes instead would make the kernel reset the connection, and
/// a reset can reach the client before it has read the answer.
async fn linger(stream: &mut TcpStream, mut buffer: Vec<u8>, max: Duration, bytes_max: usize) {
    // SAFETY: plain system call on a socket the caller owns.
    unsafe { libc::shutdown(stream.as_raw_fd(), libc::SHUT_WR) };
    if buffer.capacity() < READ_BYTES_MIN {
        buffer.reserve(READ_BYTES_MIN);
    }
    let deadline = Instant::now() + max;
    let mut dropped = 0;
    while dropped < bytes_max {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        buffer.clear();
        let capacity = buffer.capacity();
        match monoio::time::timeout(left, stream.read(buffer.slice_mut(0..capacity))).await {
            Ok((Ok(read), slice)) if read > 0 => {
                dropped += read;
                buffer = slice.into_inner();
            }
            _ => break,
        }
    }
}

fn write_reject(worker: &Worker, output: &mut Vec<u8>, reject: Reject, keep_alive: bool) {
    write_reject_to(worker, output, reject, keep_alive, false);
}

/// [`write_reject`] that knows whether the request was a HEAD, whose
/// answer carries no content.
fn write_reject_to(
    worker: &Worker,
    output: &mut Vec<u8>,
    reject: Reject,
    keep_alive: bool,
    head_request: bool,
) {
    worker.stats.count_response(reject.status());
    let extra = ErrorExtra {
        retry_after_seconds: reject.retry_after_seconds(),
        allow: (reject == Reject::MethodNotAllowed).then_some("POST"),
        accept_encoding_identity: reject == Reject::UnsupportedContentEncoding,
        head_request,
    };
    response::write_error(
        output,
        reject.status(),
        reject.kind(),
        reject.message(),
        keep_alive,
        extra,
    );
}

/// Logs a request the appliance could not serve, with a request id
/// (worker and sequence number) that the 5xx line and the client's retry
/// can be matched by; `log` is the stream it was for, `None` when that is
/// not known (a connection refused before its request was read). No header
/// value is logged: tokens never reach logs. The event's own rate limit
/// keeps a flood of failures from flooding the journal.
fn log_failure(worker: &Worker, log: Option<&StreamLog>, reject: Reject) {
    let request_id = format!("w{}-{}", worker.index, worker.next_request_number());
    let (tenant, stream) = log.map_or(("", ""), |log| (log.tenant.as_str(), log.stream_id.as_str()));
    crate::telemetry::REQUEST_FAILED.emit(&[
        ("request_id", request_id.as_str().into()),
        ("tenant", tenant.into()),
        ("stream", stream.into()),
        ("status", u64::from(reject.status()).into()),
        ("error", reject.kind().into()),
    ]);
}

/// What a parsed head left behind once its borrow of the input ended.
struct Head {
    decision: Result<Admitted, Reject>,
    head_len: usize,
    framing: BodyFraming,
    keep_alive: bool,
    expect: Expect,
    /// The method was HEAD (its answer has no content).
    head_request: bool,
}

/// How a read ended.
enum Read {
    Bytes,
    Closed,
    TimedOut,
}

struct Connection {
    stream: TcpStream,
    /// Bytes received and not yet consumed; a Content-Length body is read
    /// into place here and converted where it lies. It keeps its capacity
    /// between requests (up to one body limit per connection, the same
    /// bound as a request in flight): giving it back after every large body
    /// made each one pay for fresh pages again.
    input: Vec<u8>,
    /// Answers not yet written.
    output: Vec<u8>,
    /// A chunked body, decoded.
    chunked: Vec<u8>,
    /// Where this connection's record learns its fate; reused.
    ticket: Arc<Ticket>,
    state: Rc<ConnectionState>,
}

impl Connection {
    async fn run(&mut self, worker: &Worker) -> io::Result<()> {
        loop {
            let Some(head) = self.read_head(worker).await? else {
                return self.close().await;
            };
            self.state.idle.set(false);
            let keep_alive = match head.decision {
                Err(reject) => self.answer_unread(worker, &head, reject).await?,
                Ok(ref admitted) => self.answer_admitted(worker, &head, admitted).await?,
            };
            if !keep_alive {
                return self.close().await;
            }
            self.state.idle.set(true);
        }
    }

    /// Sends what is owed and ends the connection. After a last answer
    /// (a refusal that closes, an HTTP/1.0 reply), the client may still be
    /// sending a body this side will never read; closing a socket with
    /// unread bytes makes the kernel reset the connection, and a reset can
    /// reach the client before it has read the answer, which it then never
    /// sees. So the write side is shut first (the client gets the answer,
    /// then end of file), and what still arrives is read and dropped until
    /// the client closes, for at most [`LINGER_MAX`] and
    /// [`LINGER_BYTES_MAX`] (the lingering close of RFC 9112 §9.6).
    async fn close(&mut self) -> io::Result<()> {
        if self.output.is_empty() {
            // Nothing answered: the client closed or timed out.
            return Ok(());
        }
        self.flush().await?;
        let buffer = std::mem::take(&mut self.input);
        linger(&mut self.stream, buffer, LINGER_MAX, LINGER_BYTES_MAX).await;
        Ok(())
    }

    /// Reads until `input` holds a complete head and decides on it. `None`
    /// means the connection is done (closed, timed out, or malformed and
    /// already answered).
    async fn read_head(&mut self, worker: &Worker) -> io::Result<Option<Head>> {
        let mut deadline = None;
        let mut refreshed = false;
        let mut progress = request::HeadProgress::default();
        loop {
            if !self.input.is_empty() {
                let mut headers = request::header_slots();
                match progress.parse(&self.input, &mut headers) {
                    Ok(HeadStatus::Complete { head, head_len }) => {
                        let decision = worker.admit(&head);
                        if decision.as_ref().is_err_and(|reject| reject.may_be_stale()) && !refreshed {
                            // The key or stream may have been added a moment
                            // ago: decide again on a fresh snapshot (the
                            // head is parsed again from the same bytes).
                            refreshed = true;
                            worker.await_fresh_snapshot().await;
                            progress = request::HeadProgress::default();
                            continue;
                        }
                        return Ok(Some(Head {
                            decision,
                            head_len,
                            framing: head.framing,
                            keep_alive: head.keep_alive && !worker.is_shutting_down(),
                            expect: head.expect,
                            head_request: head.method_raw == "HEAD",
                        }));
                    }
                    Ok(HeadStatus::Partial) => {}
                    Err(error) => {
                        write_reject(worker, &mut self.output, Reject::Head(error), false);
                        return Ok(None);
                    }
                }
            }
            // About to wait for the client: send what pipelined requests
            // are owed first.
            self.flush().await?;
            if self.input.is_empty() && worker.is_shutting_down() {
                return Ok(None);
            }
            let timeout = if self.input.is_empty() {
                Duration::from_millis(worker.config().idle_timeout_ms)
            } else {
                let deadline = *deadline.get_or_insert_with(|| {
                    Instant::now() + Duration::from_millis(worker.config().head_timeout_ms)
                });
                deadline.saturating_duration_since(Instant::now())
            };
            match self.read_more(timeout).await? {
                Read::Bytes => {}
                Read::Closed | Read::TimedOut => return Ok(None),
            }
        }
    }

    /// Answers a request rejected on its head. Returns whether the
    /// connection is kept: only if the body can be skipped safely.
    ///
    /// A request with any expectation is answered at once and the
    /// connection closed: its client may be waiting for `100 Continue`
    /// before it sends the body (`Expect: 100-continue, foo` too), so
    /// waiting for that body to skip it would stall both until the body
    /// timeout.
    async fn answer_unread(&mut self, worker: &Worker, head: &Head, reject: Reject) -> io::Result<bool> {
        let skip = match head.framing {
            BodyFraming::None => Some(0),
            BodyFraming::Length(length) if length <= worker.config().body_bytes_max as u64 => {
                Some(length as usize)
            }
            _ => None,
        };
        let keep_alive = head.keep_alive && !reject.closes_connection() && head.expect == Expect::None;
        let Some(skip) = skip.filter(|_| keep_alive) else {
            write_reject_to(worker, &mut self.output, reject, false, head.head_request);
            return Ok(false);
        };
        if !self.fill_to(worker, head.head_len + skip).await? {
            return Ok(false);
        }
        write_reject_to(worker, &mut self.output, reject, true, head.head_request);
        self.input.drain(..head.head_len + skip);
        Ok(true)
    }

    /// Reads, stores and answers an admitted request.
    async fn answer_admitted(
        &mut self,
        worker: &Worker,
        head: &Head,
        admitted: &Admitted,
    ) -> io::Result<bool> {
        let started = Instant::now();
        if head.expect == Expect::Continue {
            response::write_continue(&mut self.output);
            self.flush().await?;
        }
        let (result, consumed) = match head.framing {
            BodyFraming::None | BodyFraming::Length(_) => {
                let length = match head.framing {
                    BodyFraming::Length(length) => length as usize,
                    _ => 0,
                };
                let end = head.head_len + length;
                if !self.fill_to(worker, end).await? {
                    return Ok(false);
                }
                let filled = pad(&mut self.input, end);
                let body = &mut self.input[head.head_len..];
                let result = worker.store(admitted, body, length, &self.ticket).await;
                self.input.truncate(filled);
                (result, end)
            }
            BodyFraming::Chunked => match self.read_chunked(worker, head.head_len).await? {
                Err(reject) => {
                    write_reject(worker, &mut self.output, reject, false);
                    return Ok(false);
                }
                Ok(consumed) => {
                    let mut body = std::mem::take(&mut self.chunked);
                    let length = body.len();
                    pad(&mut body, length);
                    let result = worker.store(admitted, &mut body, length, &self.ticket).await;
                    body.clear();
                    self.chunked = body;
                    (result, consumed)
                }
            },
        };
        self.input.drain(..consumed);
        if let Some(log) = &admitted.log {
            log.responses
                .count(worker.index, result.map_or_else(Reject::status, |()| 202));
        }
        let keep_alive = head.keep_alive && !worker.is_shutting_down();
        match result {
            Ok(()) => {
                worker.count_accepted(consumed - head.head_len);
                worker.stats.observe_latency(started.elapsed());
                response::write_accepted(&mut self.output, keep_alive);
                Ok(keep_alive)
            }
            Err(reject) => {
                if reject.status() >= 500 {
                    log_failure(worker, admitted.log.as_deref(), reject);
                }
                let keep_alive = keep_alive && !reject.closes_connection();
                write_reject(worker, &mut self.output, reject, keep_alive);
                Ok(keep_alive)
            }
        }
    }

    /// Decodes a chunked body that starts at `start` into `self.chunked`;
    /// returns how many input bytes it took, head included.
    async fn read_chunked(&mut self, worker: &Worker, start: usize) -> io::Result<Result<usize, Reject>> {
        let deadline = Instant::now() + Duration::from_millis(worker.config().body_timeout_ms);
        let mut decoder = ChunkedDecoder::new();
        let mut position = start;
        self.chunked.clear();
        loop {
            match decoder.decode(
                &self.input[position..],
                &mut self.chunked,
                worker.config().body_bytes_max,
            ) {
                Ok(progress) => {
                    position += progress.consumed;
                    if progress.done {
                        return Ok(Ok(position));
                    }
                }
                Err(error) => {
                    return Ok(Err(if error.status() == 413 {
                        Reject::PayloadTooLarge
                    } else {
                        Reject::BadChunk
                    }));
                }
            }
            // Keep the input from growing with decoded chunks.
            self.input.drain(start..position);
            position = start;
            match self
                .read_more(deadline.saturating_duration_since(Instant::now()))
                .await?
            {
                Read::Bytes => {}
                Read::Closed | Read::TimedOut => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
    }

    /// Reads until `input` holds at least `len` bytes. `false` if the
    /// client left or was too slow.
    async fn fill_to(&mut self, worker: &Worker, len: usize) -> io::Result<bool> {
        if self.input.len() >= len {
            return Ok(true);
        }
        self.input.reserve(len + PADDING - self.input.len());
        let deadline = Instant::now() + Duration::from_millis(worker.config().body_timeout_ms);
        while self.input.len() < len {
            match self
                .read_more(deadline.saturating_duration_since(Instant::now()))
                .await?
            {
                Read::Bytes => {}
                Read::Closed | Read::TimedOut => return Ok(false),
            }
        }
        Ok(true)
    }

    /// One read into the spare capacity of `input`.
    async fn read_more(&mut self, timeout: Duration) -> io::Result<Read> {
        if self.input.capacity() - self.input.len() < READ_BYTES_MIN / 4 {
            self.input.reserve(READ_BYTES_MIN);
        }
        let input = std::mem::take(&mut self.input);
        let start = input.len();
        let end = input.capacity();
        match monoio::time::timeout(timeout, self.stream.read(input.slice_mut(start..end))).await {
            Ok((result, slice)) => {
                self.input = slice.into_inner();
                match result? {
                    0 => Ok(Read::Closed),
                    _ => Ok(Read::Bytes),
                }
            }
            // The buffer went with the cancelled read; the caller closes.
            Err(_) => Ok(Read::TimedOut),
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        let output = std::mem::take(&mut self.output);
        let (result, mut output) = self.stream.write_all(output).await;
        output.clear();
        self.output = output;
        result.map(|_| ())
    }
}

/// Makes sure `buffer` has at least [`PADDING`] bytes after `end` (the
/// converter's look-ahead), adding zeros where it holds fewer; bytes
/// already there (a pipelined request) stay. Returns the length to
/// truncate back to once the body is stored.
fn pad(buffer: &mut Vec<u8>, end: usize) -> usize {
    let filled = buffer.len();
    if filled < end + PADDING {
        buffer.resize(end + PADDING, 0);
    }
    filled
}

/// Ends an idle connection's wait for input, for shutdown.
pub fn shut_down_idle(state: &ConnectionState) {
    if state.idle.get() {
        // SAFETY: plain system call; the descriptor stays open (the
        // connection task owns and closes it), only its reading side ends.
        unsafe {
            libc::shutdown(state.fd, libc::SHUT_RD);
        }
    }
}

/// The raw descriptor of a stream, for [`ConnectionState`].
pub fn raw_fd(stream: &TcpStream) -> RawFd {
    stream.as_raw_fd()
}
