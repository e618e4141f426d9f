//! Fault injection against the real binary (issue 6): a full disk, running
//! out of file descriptors, thousands of slow clients, the clock crossing
//! an hour boundary under load, and a failed flush in `disk` mode.
//!
//! Each test is bounded in time (every wait has a deadline) and cleans up
//! after itself even when it fails (mounts and limits are undone by guards).
//! A test that needs something the environment cannot give (root, a tmpfs
//! mount, enough descriptors) prints `SKIPPED <test>: <why>` to stderr and
//! returns; it never passes silently without saying so. The fsync fault
//! test is the exception: without FUSE it fails, saying what is missing.
//!
//! An fsync error is injected into the running binary with FUSE:
//! `tests/fuse/failfs.py` mirrors a backing directory and fails every fsync
//! with EIO while a trigger file exists (`.ci/run` installs its fusepy and
//! libfuse 2, Debian's `python3-fusepy`). The server's data directory is
//! the mount; the stored files are read from the backing directory. The
//! boundary where a flush result enters the store,
//! `sluice::ring::StreamLog::flush_done`, is also pinned directly by
//! `a_failed_flush_is_never_acknowledged` and its race by
//! `a_flush_after_a_failed_one_confirms_nothing`.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::CString;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use sluice::clock::{Clock, HOUR_SECONDS};
use sluice::control::snapshot::PayloadFormat;
use sluice::ring::{self, LogSettings, Outcome, StreamLogs, Ticket};

/// The size of the small file system a disk-full test runs on.
const TMPFS_BYTES: u64 = 4 << 20;

/// How much of it a filler file takes, so the first 1 MiB extent of a
/// segment fits but the second does not.
const FILLER_BYTES: usize = (5 << 20) / 2;

/// Padding per record in the disk-full test: about a kibibyte per record
/// fills a mebibyte extent in about a thousand requests.
const DISK_FULL_PAD_BYTES: usize = 1000;

/// More records than the tmpfs can take; reaching this without a 503
/// fails the test instead of looping forever.
const DISK_FULL_RECORDS_MAX: usize = 8_000;

/// Descriptors the server may open beyond those it holds once warmed up.
const FD_HEADROOM: u64 = 6;

/// Connections opened against the descriptor limit: far more than it allows.
const FD_CONNECTIONS: usize = 64;

/// How long the server is watched while it has no descriptor left.
const FD_WATCH: Duration = Duration::from_secs(2);

/// The CPU time the server may use while watched. Two workers retrying
/// `accept` in a busy loop would burn about 4 s of CPU in 2 s; pausing
/// `ACCEPT_BACKOFF_MS` between tries costs well under a tenth of that.
const FD_CPU_MS_MAX: u64 = 400;

/// Slow clients in the slowloris test.
const SLOW_CONNECTIONS: usize = 2_000;

/// The head deadline configured for the slowloris test.
const SLOW_HEAD_TIMEOUT_MS: u64 = 1_000;

/// How long normal clients send while the slow ones hang on.
const SLOW_LOAD: Duration = Duration::from_secs(3);

/// The slowest answer a normal client may get during the slowloris test.
const SLOW_NORMAL_LATENCY_MAX: Duration = Duration::from_secs(2);

/// How far before the hour boundary the server's clock starts.
const HOUR_LEAD_MS: i64 = 3_000;

/// The least time the server's clock may have left before the boundary
/// once it is up; a slower start is retried with a longer lead.
const HOUR_MARGIN_MS: i64 = 1_000;

/// Starts of the server before the hour test gives up on a busy machine.
const HOUR_STARTS_MAX: usize = 3;

/// How long clients keep sending after the boundary.
const HOUR_LOAD_AFTER: Duration = Duration::from_secs(2);

/// Clients sending across the hour boundary.
const HOUR_CLIENTS: usize = 3;

/// How often the watcher looks at the sealed files during the hour test.
const SEAL_WATCH_INTERVAL: Duration = Duration::from_millis(20);

/// Says loudly that a test could not run here, and why.
fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
}

/// A tmpfs mounted for the duration of a test; unmounted on drop, also when
/// the test fails.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` at `path` (created if needed), or says why not.
    fn mount(path: &Path, bytes: u64) -> Result<Tmpfs, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("mounting a tmpfs needs root".into());
        }
        std::fs::create_dir_all(path).map_err(|error| error.to_string())?;
        let target = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        let options = CString::new(format!("size={bytes}")).expect("no NUL in options");
        // SAFETY: every pointer is a valid NUL-terminated string that lives
        // across the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(format!("mount tmpfs: {}", std::io::Error::last_os_error()));
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Ok(target) = CString::new(self.path.as_os_str().as_encoded_bytes()) {
            // SAFETY: a valid NUL-terminated path; MNT_DETACH never blocks.
            unsafe {
                libc::umount2(target.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

/// A JSON body carrying `id`, padded to about `pad` bytes.
fn numbered_body(id: &str, pad: usize) -> Vec<u8> {
    format!("{{\"id\":\"{id}\",\"pad\":\"{}\"}}", "p".repeat(pad)).into_bytes()
}

/// Sends one record on a kept-alive connection and reads the answer.
fn send_record(stream: &mut TcpStream, s: &Setup, id: &str, pad: usize) -> std::io::Result<Response> {
    let raw = post(
        &s.json_stream,
        &s.tenant,
        &s.token,
        "application/json",
        &numbered_body(id, pad),
    );
    stream.write_all(&raw)?;
    read_response(stream)
}

/// How many times each record id is stored, over every sealed file.
fn stored_ids(data: &DataDir) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for line in data.sealed_lines() {
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("a complete record: {line:?}"));
        let id = value["id"].as_str().expect("every record has an id").to_owned();
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

/// Every acknowledged record is stored exactly once, no record is stored
/// twice, and no segment is left open.
fn assert_exactly_once(data: &DataDir, acked: &[String]) -> HashMap<String, usize> {
    assert!(data.open_files().is_empty(), "every segment is sealed");
    let seen = stored_ids(data);
    let duplicated: Vec<_> = seen.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        duplicated.is_empty(),
        "records stored more than once: {duplicated:?}"
    );
    let lost: Vec<_> = acked.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    seen
}

#[test]
fn disk_full_answers_503_and_ingest_resumes_when_space_returns() {
    let data = DataDir::new("disk-full");
    let s = setup(&data, "acme");
    let mount = match Tmpfs::mount(&data.path.join("tenants"), TMPFS_BYTES) {
        Ok(mount) => mount,
        Err(why) => {
            return skip(
                "disk_full_answers_503_and_ingest_resumes_when_space_returns",
                &why,
            );
        }
    };
    let filler = mount.path.join("filler");
    std::fs::write(&filler, vec![1u8; FILLER_BYTES]).expect("write the filler file");
    let mut server = Server::start(&data);
    let mut stream = server.connect();

    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for n in 0..DISK_FULL_RECORDS_MAX {
        let id = format!("r{n}");
        let response = send_record(&mut stream, &s, &id, DISK_FULL_PAD_BYTES).expect("an answer");
        match response.status {
            202 => acked.push(id),
            503 => {
                assert_eq!(response.error_kind(), "disk-full");
                assert!(
                    response.header("Retry-After").is_some(),
                    "503 carries Retry-After"
                );
                refused.push(id);
                break;
            }
            status => panic!("unexpected status {status} for {id}"),
        }
    }
    assert!(!refused.is_empty(), "the file system never filled up");
    assert!(!acked.is_empty(), "records were accepted before the disk filled");
    eprintln!(
        "disk full after {} records of about {DISK_FULL_PAD_BYTES} bytes",
        acked.len()
    );

    // Full, the server keeps answering (503, promptly) and stays up.
    for n in 0..3 {
        let id = format!("full{n}");
        let response = send_record(&mut stream, &s, &id, DISK_FULL_PAD_BYTES).expect("an answer while full");
        assert_eq!(response.status, 503, "still full");
        refused.push(id);
    }
    let exited = server.child.try_wait().expect("try_wait");
    assert!(exited.is_none(), "the server is still running: {exited:?}");

    // Space returns: ingest resumes without a restart.
    std::fs::remove_file(&filler).expect("remove the filler");
    for n in 0..50 {
        let id = format!("after{n}");
        let response = send_record(&mut stream, &s, &id, DISK_FULL_PAD_BYTES).expect("an answer after");
        assert_eq!(response.status, 202, "ingest resumes once space returns ({id})");
        acked.push(id);
    }
    drop(stream);

    // No SIGBUS, no crash: the graceful stop succeeds and seals everything.
    let status = server.stop();
    assert!(status.success(), "the server exits cleanly: {status:?}");
    let seen = assert_exactly_once(&data, &acked);
    let stored_refused: Vec<_> = refused.iter().filter(|id| seen.contains_key(*id)).collect();
    assert!(
        stored_refused.is_empty(),
        "a 503'd record is not stored, so a retry cannot duplicate it: {stored_refused:?}"
    );
    drop(mount);
}

/// CPU time (user + system) a process has used, in milliseconds.
fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/<pid>/stat");
    // Fields after the command name, which is in parentheses and may hold
    // spaces; utime and stime are fields 14 and 15 of the whole line.
    let after_name = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1000 / ticks_per_second
}

/// Sets a running process's descriptor limit (soft and hard).
fn set_fd_limit(pid: u32, limit: u64) -> Result<(), String> {
    let rlimit = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: `rlimit` is a valid struct; the old-limit pointer may be null.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &rlimit,
            std::ptr::null_mut(),
        )
    };
    if rc != 0 {
        return Err(format!("prlimit: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("list /proc/<pid>/fd")
        .count() as u64
}

/// Opens a connection and sends one record; true on a 202.
fn one_record_accepted(addr: SocketAddr, s: &Setup, id: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    matches!(send_record(&mut stream, s, id, 10), Ok(response) if response.status == 202)
}

#[test]
fn descriptor_exhaustion_backs_off_without_spinning_and_service_resumes() {
    let data = DataDir::new("fds");
    let s = setup(&data, "acme");
    let server = Server::start(&data);
    let pid = server.child.id();
    // Warm up, so the stream's log and segment already hold their descriptors.
    assert!(one_record_accepted(server.addr, &s, "warm"), "the server serves");
    let limit = open_fds(pid) + FD_HEADROOM;
    if let Err(why) = set_fd_limit(pid, limit) {
        return skip(
            "descriptor_exhaustion_backs_off_without_spinning_and_service_resumes",
            &why,
        );
    }
    let connections: Vec<TcpStream> = (0..FD_CONNECTIONS)
        .map(|_| TcpStream::connect(server.addr).expect("the kernel queues the connection"))
        .collect();
    assert!(
        eventually(Duration::from_secs(5), || server
            .log_text()
            .contains("accept-failed")),
        "the server ran out of descriptors (limit {limit})"
    );
    let before = cpu_ms(pid);
    std::thread::sleep(FD_WATCH);
    let used = cpu_ms(pid) - before;
    assert!(
        used <= FD_CPU_MS_MAX,
        "no busy spin: {used} ms of CPU in {FD_WATCH:?} without descriptors"
    );
    eprintln!("descriptor limit {limit}: {used} ms of CPU in {FD_WATCH:?} without descriptors");
    drop(connections);
    assert!(
        eventually(Duration::from_secs(15), || one_record_accepted(
            server.addr,
            &s,
            "after"
        )),
        "service resumes once descriptors are free"
    );
    assert!(server.stop().success(), "the server exits cleanly");
    assert_exactly_once(&data, &["warm".to_owned()]);
}

/// Raises this process's soft descriptor limit to at least `needed`, or
/// says why it cannot.
fn ensure_own_fd_limit(needed: u64) -> Result<(), String> {
    let mut rlimit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rlimit` is a valid struct to write into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlimit) } != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    if rlimit.rlim_cur >= needed {
        return Ok(());
    }
    if rlimit.rlim_max < needed {
        return Err(format!(
            "the descriptor hard limit {} is below {needed}",
            rlimit.rlim_max
        ));
    }
    rlimit.rlim_cur = needed;
    // SAFETY: `rlimit` is a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) } != 0 {
        return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Whether the server has closed `stream`, without waiting.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != ErrorKind::WouldBlock,
    }
}

/// What a normal client saw during the slowloris test.
#[derive(Default)]
struct NormalClient {
    statuses: BTreeMap<u16, usize>,
    slowest: Duration,
}

#[test]
fn slow_clients_are_closed_while_normal_clients_get_202() {
    let test = "slow_clients_are_closed_while_normal_clients_get_202";
    // The server inherits this limit, and needs one descriptor per client too.
    if let Err(why) = ensure_own_fd_limit(2 * SLOW_CONNECTIONS as u64 + 512) {
        return skip(test, &why);
    }
    let data = DataDir::new("slowloris");
    let s = Arc::new(setup(&data, "acme"));
    let config = data.path.join("slowloris.toml");
    std::fs::write(&config, format!("head_timeout_ms = {SLOW_HEAD_TIMEOUT_MS}\n")).expect("write config");
    let server = Server::start_with(&data, &["--config", config.to_str().expect("utf-8 path")], &[]);

    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..SLOW_CONNECTIONS)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr).expect("connect a slow client");
            stream.write_all(b"POST /stream/v0/data/").expect("start a head");
            stream
        })
        .collect();
    let opened_in = started.elapsed();

    let stop = Arc::new(AtomicBool::new(false));
    let normal: Vec<_> = (0..2)
        .map(|client| {
            let (s, stop, addr) = (Arc::clone(&s), Arc::clone(&stop), server.addr);
            std::thread::spawn(move || {
                let mut seen = NormalClient::default();
                let mut stream = TcpStream::connect(addr).expect("connect a normal client");
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    n += 1;
                    let sent = Instant::now();
                    let response =
                        send_record(&mut stream, &s, &format!("n{client}-{n}"), 100).expect("an answer");
                    seen.slowest = seen.slowest.max(sent.elapsed());
                    *seen.statuses.entry(response.status).or_insert(0) += 1;
                }
                seen
            })
        })
        .collect();
    // Trickle a byte to every slow client now and then, as slowloris does.
    let trickle_until = Instant::now() + SLOW_LOAD;
    while Instant::now() < trickle_until {
        for stream in &mut slow {
            let _ = stream.write_all(b"s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Release);
    for client in normal {
        let seen = client.join().expect("normal client");
        let accepted = seen.statuses.get(&202).copied().unwrap_or(0);
        assert_eq!(
            accepted,
            seen.statuses.values().sum::<usize>(),
            "normal clients get only 202s: {:?}",
            seen.statuses
        );
        assert!(accepted >= 20, "normal clients were served: {accepted}");
        eprintln!(
            "normal client: {accepted} records, slowest answer {:?}",
            seen.slowest
        );
        assert!(
            seen.slowest <= SLOW_NORMAL_LATENCY_MAX,
            "slowest normal answer {:?}",
            seen.slowest
        );
    }

    for stream in &slow {
        stream.set_nonblocking(true).expect("nonblocking");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut open: Vec<usize> = (0..slow.len()).collect();
    while !open.is_empty() && Instant::now() < deadline {
        open.retain(|&index| !closed_by_server(&mut slow[index]));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        open.is_empty(),
        "{} of {SLOW_CONNECTIONS} slow clients still open {:?} after they started (opening took {opened_in:?})",
        open.len(),
        started.elapsed()
    );
    eprintln!(
        "{SLOW_CONNECTIONS} slow clients (opened in {opened_in:?}) all closed {:?} after they started",
        started.elapsed()
    );
    drop(slow);
    assert!(server.stop().success(), "the server exits cleanly");
}

/// A sealed file as the watcher saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SealedState {
    len: u64,
    modified: SystemTime,
}

/// Watches sealed files until `stop`, recording any that changes after it
/// was first seen, or whose `.open` name comes back (a reopened segment).
fn watch_sealed(data_path: PathBuf, stop: Arc<AtomicBool>, violations: Arc<Mutex<Vec<String>>>) {
    let mut seen: HashMap<PathBuf, SealedState> = HashMap::new();
    loop {
        let last = stop.load(Ordering::Acquire);
        for path in sealed_files_under(&data_path.join("tenants")) {
            let Ok(metadata) = std::fs::metadata(&path) else {
                violations
                    .lock()
                    .expect("violations")
                    .push(format!("{} vanished", path.display()));
                continue;
            };
            let state = SealedState {
                len: metadata.len(),
                modified: metadata.modified().expect("mtime"),
            };
            if seen.get(&path).is_some_and(|before| *before != state) {
                violations.lock().expect("violations").push(format!(
                    "{} changed after sealing: {:?} -> {state:?}",
                    path.display(),
                    seen[&path]
                ));
            }
            let reopened = PathBuf::from(format!("{}.open", path.display()));
            if reopened.exists() {
                violations
                    .lock()
                    .expect("violations")
                    .push(format!("{} reopened", path.display()));
            }
            seen.insert(path, state);
        }
        if last {
            break;
        }
        std::thread::sleep(SEAL_WATCH_INTERVAL);
    }
}

/// Every `.ndjson` file under `dir`, at any depth.
fn sealed_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "ndjson") {
                found.push(path);
            }
        }
    }
    found
}

/// `<YYYY-MM-DD>/<HH>` of a UTC hour, as segment folders are named.
fn hour_folder(hour: i64) -> String {
    chrono::DateTime::from_timestamp(hour * HOUR_SECONDS, 0)
        .expect("a valid hour")
        .format("%Y-%m-%d/%H")
        .to_string()
}

/// The `<YYYY-MM-DD>/<HH>` folder a sealed file lies in.
fn folder_of(path: &Path) -> String {
    let hour = path.parent().expect("hour folder");
    let date = hour.parent().expect("date folder");
    format!(
        "{}/{}",
        date.file_name().expect("date").to_string_lossy(),
        hour.file_name().expect("hour").to_string_lossy()
    )
}

/// The `<YYYY-MM-DD>/<HH>` of the creation time in a sealed file's name
/// (`<stream>_<YYYYMMDD>T<HHMMSS>.<ms><nonce>Z.<ext>`).
fn folder_of_name(path: &Path) -> String {
    let name = path
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned();
    let stamp = &name[name.find('_').expect("stream id, then time") + 1..];
    format!(
        "{}-{}-{}/{}",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11]
    )
}

/// Starts the server with its clock [`HOUR_LEAD_MS`] before the next UTC
/// hour boundary (as the real clock counts) and answers it with that
/// boundary in Unix milliseconds and the clock offset it was given. If the start took so long that less than
/// [`HOUR_MARGIN_MS`] is left, it stops the server and tries again with
/// twice the lead, so a slow machine does not make the test miss the
/// moment it is about.
fn start_before_an_hour_boundary(data: &DataDir) -> (Server, i64, i64) {
    let hour_ms = HOUR_SECONDS * 1000;
    let mut lead_ms = HOUR_LEAD_MS;
    for _ in 0..HOUR_STARTS_MAX {
        let now_ms = Clock::system().now_ms();
        let boundary_ms = (now_ms.div_euclid(hour_ms) + 1) * hour_ms;
        let offset_ms = boundary_ms - lead_ms - now_ms;
        let server = Server::start_with(
            data,
            &[],
            &[
                ("SLUICE_CLOCK_OFFSET_MS", &offset_ms.to_string()),
                ("SLUICE_SEAL_AFTER_SECONDS", "1"),
            ],
        );
        let server_now_ms = Clock::system().now_ms() + offset_ms;
        if boundary_ms - server_now_ms >= HOUR_MARGIN_MS {
            return (server, boundary_ms, offset_ms);
        }
        assert!(server.stop().success(), "the server exits cleanly");
        lead_ms *= 2;
    }
    panic!("the server never started {HOUR_MARGIN_MS} ms before an hour boundary");
}

#[test]
fn records_cross_an_hour_boundary_without_sharing_or_reopening_segments() {
    let data = DataDir::new("hour");
    let s = Arc::new(setup(&data, "acme"));
    let (server, boundary_ms, offset_ms) = start_before_an_hour_boundary(&data);
    let hour_ms = HOUR_SECONDS * 1000;
    let before = hour_folder(boundary_ms / hour_ms - 1);
    let after = hour_folder(boundary_ms / hour_ms);

    let stop = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(Mutex::new(Vec::new()));
    let watcher = {
        let (path, stop, violations) = (data.path.clone(), Arc::clone(&stop), Arc::clone(&violations));
        std::thread::spawn(move || watch_sealed(path, stop, violations))
    };
    // Send until the server's clock is well past the boundary.
    let load_until = Instant::now()
        + Duration::from_millis((boundary_ms - offset_ms - Clock::system().now_ms()).max(0) as u64)
        + HOUR_LOAD_AFTER;
    let clients: Vec<_> = (0..HOUR_CLIENTS)
        .map(|client| {
            let (s, addr) = (Arc::clone(&s), server.addr);
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut stream = TcpStream::connect(addr).expect("connect");
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                let mut n = 0;
                while Instant::now() < load_until {
                    n += 1;
                    let id = format!("c{client}-{n}");
                    let response = send_record(&mut stream, &s, &id, 50).expect("an answer");
                    assert_eq!(response.status, 202, "record {id}");
                    acked.push(id);
                }
                acked
            })
        })
        .collect();
    let acked: Vec<Vec<String>> = clients.into_iter().map(|c| c.join().expect("client")).collect();
    assert!(server.stop().success(), "the server exits cleanly");
    stop.store(true, Ordering::Release);
    watcher.join().expect("watcher");
    let violations = violations.lock().expect("violations").clone();
    assert!(violations.is_empty(), "sealed segments changed: {violations:?}");

    // Where each record went: its file and that file's hour folder.
    let mut location: HashMap<String, Vec<(PathBuf, String)>> = HashMap::new();
    let mut folders = BTreeSet::new();
    for file in data.sealed_files() {
        let folder = folder_of(&file);
        assert_eq!(
            folder_of_name(&file),
            folder,
            "{} was created in the hour it holds",
            file.display()
        );
        folders.insert(folder.clone());
        let text = std::fs::read_to_string(&file).expect("read sealed file");
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).expect("a complete record");
            let id = value["id"].as_str().expect("id").to_owned();
            location
                .entry(id)
                .or_default()
                .push((file.clone(), folder.clone()));
        }
    }
    assert_eq!(
        folders,
        BTreeSet::from([before.clone(), after.clone()]),
        "records in the hour before and the hour after the boundary"
    );
    let mut per_folder: BTreeMap<&String, usize> = BTreeMap::new();
    for places in location.values() {
        *per_folder.entry(&places[0].1).or_insert(0) += 1;
    }
    eprintln!(
        "records per hour folder: {per_folder:?}, {} files",
        data.sealed_files().len()
    );
    let all_acked: Vec<String> = acked.iter().flatten().cloned().collect();
    assert!(all_acked.len() > 100, "the load ran: {}", all_acked.len());
    assert_exactly_once(&data, &all_acked);
    for (id, places) in &location {
        assert_eq!(
            places.len(),
            1,
            "record {id} is in more than one file: {places:?}"
        );
    }
    // One client's records were sent one after another, so their hours
    // never go back.
    for client in &acked {
        let hours: Vec<&String> = client.iter().map(|id| &location[id][0].1).collect();
        assert!(
            hours.windows(2).all(|pair| pair[0] <= pair[1]),
            "a client's records go back an hour"
        );
        assert_eq!(
            hours.first().copied(),
            Some(&before),
            "the client started before the boundary"
        );
        assert_eq!(
            hours.last().copied(),
            Some(&after),
            "the client ended after the boundary"
        );
    }
}

/// A disk-mode stream log with one written record whose flush failed with
/// EIO; answers the log and the record's end position.
fn log_after_a_failed_flush(data: &DataDir) -> (Arc<ring::StreamLog>, u64) {
    let logs = StreamLogs::new(LogSettings {
        data_dir: data.path.clone(),
        segment_bytes_max: 4 << 20,
        sync_to_disk: true,
        clock: Clock::system(),
    });
    let log = logs.get_or_open("acme", "is-FlushErr", PayloadFormat::Json);
    let ticket = Arc::new(Ticket::default());
    log.submit(b"{\"n\":1}\n".to_vec(), &ticket)
        .expect("room in the ring");
    log.try_combine();
    assert_eq!(ticket.outcome(), Some(Outcome::Written));
    let end = ticket.end_position();

    let (target, files) = log.flush_targets().expect("no other flush runs");
    assert!(target >= end, "the flush covers the record");
    let failed = log.flush_done(target, Err(std::io::Error::from_raw_os_error(libc::EIO)), files);
    assert!(failed.is_err(), "the error is reported");
    (log, end)
}

#[test]
fn a_failed_flush_is_never_acknowledged() {
    let data = DataDir::new("flush-error");
    let (log, end) = log_after_a_failed_flush(&data);
    assert!(!log.is_durable(end), "a record whose flush failed is not durable");
    assert!(log.is_closed(), "the stream's log closes");

    // Later records to the stream are refused, not written.
    let later = Arc::new(Ticket::default());
    if log.submit(b"{\"n\":2}\n".to_vec(), &later).is_ok() {
        log.try_combine();
        assert_eq!(
            later.outcome(),
            Some(Outcome::Io),
            "a later record is refused (500, storage-failed)"
        );
    }
}

/// No retry-then-ack (the PostgreSQL fsync lesson): a flush that succeeds
/// after a failed one (the kernel reports a writeback error once, then
/// forgets it and drops the pages) must not confirm the records whose flush
/// failed.
///
/// Regression test for a race found by this suite: `flush_targets` used to
/// start a group commit on a failed log, and `flush_done(Ok)` then raised
/// the durable position over the failed records, so a second worker could
/// answer 202 for a record whose flush failed. Now a failed log refuses to
/// flush, and a flush that was already running when another failed
/// confirms nothing.
#[test]
fn a_flush_after_a_failed_one_confirms_nothing() {
    let data = DataDir::new("flush-retry");
    let (log, end) = log_after_a_failed_flush(&data);
    assert!(log.flush_targets().is_none(), "a failed log starts no flush");
    assert!(
        log.flush_done(end, Ok(()), Vec::new()).is_err(),
        "a late success confirms nothing"
    );
    assert!(
        !log.is_durable(end),
        "a record whose flush failed is never acknowledged, even after a later flush succeeds"
    );
}

/// The Python that runs `tests/fuse/failfs.py`: Debian's, for which
/// `.ci/run` installs `python3-fusepy` (and with it libfuse2). Named by path
/// so that another Python earlier in `PATH` (pyenv) is never picked.
const FAILFS_PYTHON: &str = "/usr/bin/python3";

/// The FUSE passthrough file system whose fsync fails on demand.
const FAILFS_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuse/failfs.py");

/// How long failfs may take to mount.
const FAILFS_MOUNT_TIMEOUT: Duration = Duration::from_secs(15);

/// The whole fsync fault test must finish within this.
const FSYNC_TEST_BUDGET: Duration = Duration::from_secs(60);

/// Records acknowledged on the failing stream before the fault.
const FSYNC_RECORDS_BEFORE: usize = 20;

/// Records sent to the failed stream after the fault is gone.
const FSYNC_RECORDS_AFTER: usize = 5;

/// A failfs mount (tests/fuse/failfs.py over a backing directory), run in
/// the foreground as a child. Dropping it, also when the test fails,
/// detaches the mount (`umount -l`) and ends the child.
struct FailFs {
    child: std::process::Child,
    mountpoint: PathBuf,
    trigger: PathBuf,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Barrier files made so far.
    barriers: usize,
}

impl FailFs {
    /// Mounts `backing` at `mountpoint`; fsync fails while `trigger` exists.
    /// Panics, saying what is missing, when FUSE cannot be had here: this
    /// test must fail rather than skip, or a lost fault test would look
    /// like a pass.
    fn mount(backing: &Path, mountpoint: &Path, trigger: &Path) -> FailFs {
        use std::io::BufRead;
        use std::process::{Command, Stdio};

        assert!(
            Path::new("/dev/fuse").exists(),
            "FUSE is unavailable: /dev/fuse is absent, so the fsync fault cannot be injected \
             (load the fuse module, or give the container /dev/fuse)"
        );
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "mounting failfs needs root (libfuse 2 then calls mount(2) itself)"
        );
        let check = Command::new(FAILFS_PYTHON)
            .arg(FAILFS_SCRIPT)
            .arg("--check")
            .output()
            .unwrap_or_else(|error| {
                panic!("cannot run {FAILFS_PYTHON}: {error} (.ci/run installs python3-fusepy)")
            });
        assert!(
            check.status.success(),
            "{FAILFS_PYTHON} cannot load fusepy and libfuse 2 (apt-get install python3-fusepy, as .ci/run does): {}",
            String::from_utf8_lossy(&check.stderr)
        );

        let mut child = Command::new(FAILFS_PYTHON)
            .arg(FAILFS_SCRIPT)
            .arg(backing)
            .arg(mountpoint)
            .arg(trigger)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn failfs");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (mounted_tx, mounted_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.trim() == "failfs: mounted" {
                    let _ = mounted_tx.send(());
                }
            }
        });
        let lines = Arc::new(Mutex::new(Vec::new()));
        {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().expect("failfs log").push(line);
                }
            });
        }
        let mut fs = FailFs {
            child,
            mountpoint: mountpoint.to_path_buf(),
            trigger: trigger.to_path_buf(),
            stderr: lines,
            barriers: 0,
        };
        let deadline = Instant::now() + FAILFS_MOUNT_TIMEOUT;
        loop {
            if mounted_rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                break;
            }
            if let Some(status) = fs.child.try_wait().expect("try_wait failfs") {
                std::thread::sleep(Duration::from_millis(100));
                panic!("failfs exited before mounting ({status}): {}", fs.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "failfs did not mount within {FAILFS_MOUNT_TIMEOUT:?}: {}",
                fs.log_text()
            );
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
        assert!(
            mountinfo
                .lines()
                .any(|line| line.contains(" fuse.failfs ") && line.split(' ').nth(4) == mountpoint.to_str()),
            "failfs is mounted at {}",
            mountpoint.display()
        );
        fs
    }

    /// From now on every fsync and fdatasync on the mount fails with EIO.
    fn arm(&self) {
        std::fs::write(&self.trigger, b"").expect("create the trigger file");
    }

    /// From now on fsync works again.
    fn disarm(&self) {
        std::fs::remove_file(&self.trigger).expect("remove the trigger file");
    }

    /// Waits until failfs has logged every flush it did before this call:
    /// fsyncs a fresh file on the mount and waits for that flush's line
    /// (failfs logs each flush before it answers). Only while disarmed.
    fn barrier(&mut self) {
        self.barriers += 1;
        let name = format!("failfs-barrier-{}", self.barriers);
        let file = std::fs::File::create(self.mountpoint.join(&name)).expect("create a barrier file");
        file.sync_all().expect("fsync a barrier file while disarmed");
        let line = format!("failfs: ok fsync /{name}");
        assert!(
            eventually(Duration::from_secs(10), || self
                .stderr
                .lock()
                .expect("failfs log")
                .contains(&line)),
            "failfs logs the barrier's flush: {}",
            self.log_text()
        );
    }

    /// Flushes failfs has logged (`ok` or `EIO`, of files and folders) whose
    /// path contains `fragment`; call [`FailFs::barrier`] first.
    fn flushes(&self, outcome: &str, fragment: &str) -> usize {
        let prefix = format!("failfs: {outcome} ");
        self.stderr
            .lock()
            .expect("failfs log")
            .iter()
            .filter(|line| line.starts_with(&prefix) && line.contains(fragment))
            .count()
    }

    fn log_text(&self) -> String {
        self.stderr.lock().expect("failfs log").join("\n")
    }
}

impl Drop for FailFs {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.trigger);
        if let Ok(target) = CString::new(self.mountpoint.as_os_str().as_encoded_bytes()) {
            // SAFETY: a valid NUL-terminated path; MNT_DETACH never blocks.
            unsafe {
                libc::umount2(target.as_ptr(), libc::MNT_DETACH);
            }
        }
        // libfuse ends its loop on SIGTERM; SIGKILL if it does not.
        signal(&self.child, libc::SIGTERM);
        if wait_timeout(&mut self.child, Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The admin address from the server's `listening` log line.
fn admin_addr(server: &Server) -> SocketAddr {
    let logs = server.logs.lock().expect("logs");
    logs.iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|value| value["event"] == "listening")
        .and_then(|value| value["admin_addr"].as_str().and_then(|addr| addr.parse().ok()))
        .expect("the listening line names the admin address")
}

/// The status of a GET on the admin listener.
fn admin_status(addr: SocketAddr, path: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).expect("connect to the admin listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    read_response(&mut stream).expect("an admin answer").status
}

/// Sends one numbered record to `stream_id` on a new connection.
fn send_to(server: &Server, s: &Setup, stream_id: &str, id: &str) -> Response {
    server.send(&post(
        stream_id,
        &s.tenant,
        &s.token,
        "application/json",
        &numbered_body(id, 100),
    ))
}

/// A clock offset that puts the server at the middle of a UTC hour, so no
/// segment is rotated while the test runs. A rotation during the fault would
/// fsync a new segment's folder, and that failure gives the record a 500
/// without failing the stream: the fault must hit the group-commit flush.
fn mid_hour_offset_ms() -> i64 {
    let hour_ms = HOUR_SECONDS * 1000;
    let now_ms = Clock::system().now_ms();
    let target = now_ms.div_euclid(hour_ms) * hour_ms + hour_ms / 2;
    if target >= now_ms {
        target - now_ms
    } else {
        target + hour_ms - now_ms
    }
}

/// Starts `sluice serve` on `data` in `durability = "disk"` mode.
fn start_disk_mode(data: &DataDir, offset_ms: i64) -> Server {
    Server::start_with(
        data,
        &[],
        &[
            ("SLUICE_DURABILITY", "disk"),
            ("SLUICE_CLOCK_OFFSET_MS", &offset_ms.to_string()),
            // Only a graceful stop seals, so no seal's fsync meets the fault.
            ("SLUICE_SEAL_AFTER_SECONDS", "3600"),
        ],
    )
}

/// An fsync error injected into the running binary (FUSE; see
/// tests/fuse/failfs.py), in `durability = "disk"` mode. As README.md
/// documents under "A failed flush": the record whose flush failed gets a
/// 500 `storage-failed` and is never acknowledged, and later records to that
/// stream get 500 until restart, even once fsync works again (no
/// retry-then-ack). Other streams are not affected: each stream flushes its
/// own segment files and fails alone. Every record that got a 202 is stored
/// exactly once.
#[test]
fn an_fsync_error_in_disk_mode_fails_the_stream_until_restart_and_loses_no_acknowledged_record() {
    let started = Instant::now();
    let FsyncFixture {
        backing,
        data,
        _scratch,
        s,
        victim,
        bystander,
        mut fs,
    } = fsync_fixture("fsync");
    let newcomer = data.ok(&[
        "stream", "add", "--tenant", "acme", "--name", "newcomer", "--format", "json",
    ]);
    assert!(
        backing.path.join("control.db").exists(),
        "the control database lives on the backing directory, through the mount"
    );
    let offset_ms = mid_hour_offset_ms();
    let server = start_disk_mode(&data, offset_ms);
    let admin = admin_addr(&server);

    // Before the fault: every record is acknowledged, on both streams.
    let mut acked = Vec::new();
    for n in 0..FSYNC_RECORDS_BEFORE {
        let id = format!("before{n}");
        let response = send_to(&server, &s, &victim, &id);
        assert_eq!(response.status, 202, "{id} before the fault: {response:?}");
        acked.push(id);
    }
    for n in 0..3 {
        let id = format!("bystander-before{n}");
        let response = send_to(&server, &s, &bystander, &id);
        assert_eq!(response.status, 202, "{id} before the fault: {response:?}");
        acked.push(id);
    }
    // Disk mode flushes through the mount: each new segment's folders, and
    // the segment itself before each 202.
    fs.barrier();
    assert!(
        fs.flushes("ok", &format!("{victim}/")) > 0 && fs.flushes("ok", &format!("{bystander}/")) > 0,
        "the acknowledged records were flushed through failfs: {}",
        fs.log_text()
    );
    assert_eq!(fs.flushes("EIO", ""), 0, "no flush failed before the trigger");

    // The fault: the record's group-commit fdatasync fails with EIO.
    fs.arm();
    let response = send_to(&server, &s, &victim, "during");
    fs.disarm();
    assert_eq!(
        response.status, 500,
        "a record whose flush failed is not acknowledged: {response:?}"
    );
    assert_eq!(response.error_kind(), "storage-failed");
    fs.barrier();
    let failed = fs.flushes("EIO", "");
    assert!(
        failed >= 1 && failed == fs.flushes("EIO fdatasync", &format!("{victim}/")),
        "the 500 came from the segment's fdatasync, failed by failfs: {}",
        fs.log_text()
    );
    assert!(
        eventually(Duration::from_secs(5), || server.log_text().lines().any(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .is_ok_and(|value| value["event"] == "flush-failed" && value["stream"] == victim.as_str())
        })),
        "the server logs flush-failed for the stream"
    );
    let victim_flushes = fs.flushes("ok", &format!("{victim}/"));

    // fsync works again, but the stream stays failed until restart: it is
    // not flushed again and nothing of it is acknowledged (no
    // retry-then-ack; README.md, "A failed flush").
    let mut refused_after = Vec::new();
    for n in 0..FSYNC_RECORDS_AFTER {
        let id = format!("after{n}");
        let response = send_to(&server, &s, &victim, &id);
        assert_eq!(
            response.status, 500,
            "{id}: the failed stream refuses records until restart: {response:?}"
        );
        assert_eq!(response.error_kind(), "storage-failed");
        refused_after.push(id);
        std::thread::sleep(Duration::from_millis(50));
    }
    fs.barrier();
    assert_eq!(
        fs.flushes("ok", &format!("{victim}/")),
        victim_flushes,
        "a failed stream is never flushed again while the server runs: {}",
        fs.log_text()
    );

    // The server is up, and the failure is the stream's alone: a stream
    // with its own open segment (which saw no flush during the fault), and a
    // stream first written after it, are acknowledged.
    assert_eq!(admin_status(admin, "/healthz"), 200, "the server is healthy");
    for n in 0..3 {
        let id = format!("bystander-after{n}");
        let response = send_to(&server, &s, &bystander, &id);
        assert_eq!(
            response.status, 202,
            "{id}: another stream is unaffected: {response:?}"
        );
        acked.push(id);
    }
    let response = send_to(&server, &s, &newcomer, "newcomer");
    assert_eq!(
        response.status, 202,
        "a stream first used after the fault: {response:?}"
    );
    acked.push("newcomer".to_owned());

    // Graceful stop seals every segment (fsync works again); read the
    // stored files from the backing directory, not through the mount.
    let status = server.stop();
    assert!(status.success(), "the server exits cleanly: {status:?}");
    let seen = assert_exactly_once(&backing, &acked);
    let stored_refused: Vec<_> = refused_after.iter().filter(|id| seen.contains_key(*id)).collect();
    assert!(
        stored_refused.is_empty(),
        "records refused after the failure are never written: {stored_refused:?}"
    );
    eprintln!(
        "fsync fault: {} acknowledged records stored once; the record whose flush failed is {}stored (a 500 promises nothing either way)",
        acked.len(),
        if seen.contains_key("during") { "" } else { "not " }
    );

    // After a restart the stream takes records again.
    let server = start_disk_mode(&data, offset_ms);
    let response = send_to(&server, &s, &victim, "restarted");
    assert_eq!(
        response.status, 202,
        "after a restart the stream works: {response:?}"
    );
    acked.push("restarted".to_owned());
    let status = server.stop();
    assert!(status.success(), "the server exits cleanly: {status:?}");
    assert_exactly_once(&backing, &acked);

    drop(fs);
    let elapsed = started.elapsed();
    eprintln!("fsync fault test took {elapsed:?}");
    assert!(elapsed < FSYNC_TEST_BUDGET, "took {elapsed:?}");
}

/// A data directory on failfs (its backing directory and trigger folder
/// alongside), set up with tenant `acme`, its JSON stream (the victim) and
/// a second JSON stream (the bystander).
struct FsyncFixture {
    backing: DataDir,
    /// The server's data directory is the mount point: everything sluice
    /// does on its data (control.db, the lock, segments) goes through FUSE.
    data: DataDir,
    _scratch: DataDir,
    s: Setup,
    victim: String,
    bystander: String,
    fs: FailFs,
}

fn fsync_fixture(name: &str) -> FsyncFixture {
    let backing = DataDir::new(&format!("{name}-backing"));
    let data = DataDir::new(&format!("{name}-mount"));
    let scratch = DataDir::new(&format!("{name}-trigger"));
    let fs = FailFs::mount(&backing.path, &data.path, &scratch.path.join("armed"));
    let s = setup(&data, "acme");
    let victim = s.json_stream.clone();
    let bystander = data.ok(&[
        "stream",
        "add",
        "--tenant",
        "acme",
        "--name",
        "bystander",
        "--format",
        "json",
    ]);
    FsyncFixture {
        backing,
        data,
        _scratch: scratch,
        s,
        victim,
        bystander,
        fs,
    }
}

/// A folder flush that fails while a stream's first segment is created (in
/// `disk` mode the new name and its folders are flushed before any record
/// in it is acknowledged) is a failed flush like any other: the record gets
/// 500, the stream refuses records until restart, the empty segment is not
/// left behind, and other streams go on.
#[test]
fn a_failed_folder_flush_at_segment_creation_fails_the_stream_and_leaves_no_file() {
    let FsyncFixture {
        backing,
        data,
        _scratch,
        s,
        victim,
        bystander,
        mut fs,
    } = fsync_fixture("dirsync");
    let server = start_disk_mode(&data, mid_hour_offset_ms());
    let mut acked = Vec::new();
    let response = send_to(&server, &s, &bystander, "bystander-before");
    assert_eq!(response.status, 202, "{response:?}");
    acked.push("bystander-before".to_owned());

    // The victim's first record creates its first segment, whose folders
    // cannot be flushed.
    fs.arm();
    let response = send_to(&server, &s, &victim, "during");
    fs.disarm();
    assert_eq!(response.status, 500, "{response:?}");
    assert_eq!(response.error_kind(), "storage-failed");
    fs.barrier();
    assert!(
        fs.flushes("EIO fsyncdir", &victim) >= 1 && fs.flushes("EIO fdatasync", "") == 0,
        "the 500 came from a folder flush: {}",
        fs.log_text()
    );
    for n in 0..3 {
        let response = send_to(&server, &s, &victim, &format!("after{n}"));
        assert_eq!(response.status, 500, "the stream stays failed: {response:?}");
    }
    let response = send_to(&server, &s, &bystander, "bystander-after");
    assert_eq!(response.status, 202, "another stream goes on: {response:?}");
    acked.push("bystander-after".to_owned());

    let status = server.stop();
    assert!(status.success(), "the server exits cleanly: {status:?}");
    // No `.open` file is left (the empty segment was removed), and no
    // record of the failed stream was stored.
    let seen = assert_exactly_once(&backing, &acked);
    assert!(
        !seen.keys().any(|id| id == "during" || id.starts_with("after")),
        "nothing of the failed stream was stored: {seen:?}"
    );
    drop(fs);
}
