//! The appliance process: startup, one monoio (io_uring) runtime per
//! worker thread, each with its own SO_REUSEPORT listener, and shutdown.
//!
//! Startup order matters for the 202 promise and for systemd: take the
//! data-directory lock, check io_uring, recover open segments, start the
//! courier thread, bind every listener, and only then report ready.
//! Shutdown (SIGTERM or SIGINT) stops accepting, lets in-flight requests
//! finish, ends idle connections, then seals every open segment.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use monoio::net::{ListenerOpts, TcpListener};

use crate::admin::{self, AdminState, Liveness, Phase, WorkerStats};
use crate::clock::Clock;
use crate::config::{Config, Durability, ServeFlags};
use crate::control::snapshot::{Published, SnapshotCell};
use crate::control::store::Store;
use crate::courier::Courier;
use crate::http::connection::{self, ConnectionState};
use crate::ingest::Worker;
use crate::ring::{LogSettings, StreamLogs};
use crate::segment::recover;
use crate::telemetry;

/// Submission queue entries per worker ring.
pub const URING_ENTRIES: u32 = 1024;

/// Pending connections the kernel queues per listener.
pub const LISTEN_BACKLOG: i32 = 4096;

/// How often a worker looks at the shutdown flag.
pub const SHUTDOWN_POLL_MS: u64 = 50;

/// How long a worker pauses accepting after running out of descriptors,
/// so a full descriptor table is not a busy loop.
pub const ACCEPT_BACKOFF_MS: u64 = 100;

/// Runs the appliance in the foreground until SIGTERM or SIGINT.
pub fn run(data_dir: &Path, flags: ServeFlags) -> anyhow::Result<()> {
    let config = Arc::new(Config::load(&flags).map_err(|error| anyhow!(error))?);
    telemetry::set_level(config.log_level);
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let _lock = lock_data_dir(data_dir)?;
    let (features, task_run) = probe_io_uring()?;
    telemetry::STARTING.emit(&[
        ("driver", "io_uring".into()),
        ("features", features.as_str().into()),
        ("task_run", task_run.name().into()),
        ("workers", config.workers.into()),
        (
            "worker_scheduling_policy",
            config.worker_scheduling_policy.name().into(),
        ),
        ("data_dir", data_dir.to_string_lossy().as_ref().into()),
        (
            "durability",
            if config.durability == Durability::Disk {
                "disk"
            } else {
                "process"
            }
            .into(),
        ),
    ]);
    for name in
        crate::config::unknown_env_keys(std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()))
    {
        telemetry::CONFIG_WARNING.emit(&[
            ("variable", name.as_str().into()),
            ("message", "not a sluice setting; ignored (misspelt?)".into()),
        ]);
    }
    if config.no_work_baseline {
        telemetry::CONFIG_WARNING.emit(&[(
            "message",
            "no_work_baseline is on: every POST gets 202 without auth, conversion or storage (a benchmark switch)"
                .into(),
        )]);
    }
    // Signals are handled by this thread alone; threads spawned from now on
    // inherit the blocked mask.
    let signals = block_signals();

    let snapshot = Store::open(data_dir)
        .and_then(|store| store.snapshot())
        .map_err(|error| anyhow!("control store: {error}"))?;
    let logs = Arc::new(StreamLogs::new(LogSettings {
        data_dir: data_dir.to_path_buf(),
        segment_bytes_max: config.segment_bytes_max,
        sync_to_disk: config.durability == Durability::Disk,
        clock: Clock::with_offset_ms(config.clock_offset_ms),
    }));
    // The admin listener comes up before recovery, so `/readyz` answers
    // "starting" while a large data directory is recovered.
    let liveness = Arc::new(Liveness::new(config.workers + 1));
    let stats: Vec<Arc<WorkerStats>> = (0..config.workers).map(|_| Arc::default()).collect();
    let admin = Arc::new(AdminState {
        liveness: Arc::clone(&liveness),
        phase: AtomicU8::new(Phase::Starting as u8),
        workers: stats.clone(),
        logs: Arc::clone(&logs),
    });
    let admin_listener = std::net::TcpListener::bind(config.admin_listen)
        .with_context(|| format!("cannot listen on {} (admin)", config.admin_listen))?;
    let admin_addr = admin_listener.local_addr()?;
    {
        let admin = Arc::clone(&admin);
        std::thread::Builder::new()
            .name("sluice-admin".into())
            .spawn(move || admin::serve(admin_listener, admin))?;
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Status("recovering open segments")]);
    let recovered = recover::recover_all(data_dir).context("recovering open segments")?;
    telemetry::RECOVERED.emit(&[
        ("segments", recovered.segments.into()),
        ("records", recovered.records.into()),
        ("dropped_bytes", recovered.dropped_bytes.into()),
    ]);
    let snapshot_cell = Arc::new(SnapshotCell::new(snapshot));
    let shutting_down = Arc::new(AtomicBool::new(false));
    let courier_stop = Arc::new(AtomicBool::new(false));
    let refresh = Arc::new(crate::courier::RefreshSignal::default());
    let config_cell = Arc::new(Published::new((*config).clone()));
    let courier = {
        let courier = Courier {
            data_dir: data_dir.to_path_buf(),
            logs: Arc::clone(&logs),
            snapshot: Arc::clone(&snapshot_cell),
            config: Arc::clone(&config_cell),
            stop: Arc::clone(&courier_stop),
            liveness: Arc::clone(&liveness),
            liveness_slot: config.workers,
            refresh: Arc::clone(&refresh),
        };
        let handle = std::thread::Builder::new()
            .name("sluice-courier".into())
            .spawn(move || courier.run())?;
        refresh.set_courier(handle.thread().clone());
        handle
    };

    let stats_for_status = stats.clone();
    // Courier groups fire from their own thread: a run can take minutes
    // and must never hold up sealing or the control snapshot.
    let scheduler_stop = Arc::new(AtomicBool::new(false));
    let scheduler = crate::courier::schedule::spawn_scheduler(
        data_dir.to_path_buf(),
        Clock::with_offset_ms(config.clock_offset_ms),
        Arc::clone(&scheduler_stop),
    );
    let shared = Shared {
        config: Arc::clone(&config_cell),
        snapshot_cell,
        logs,
        shutting_down: Arc::clone(&shutting_down),
        stats,
        liveness: Arc::clone(&liveness),
        task_run,
        rate_limiters: Arc::default(),
        refresh,
    };
    let (workers, addr) = match start_workers(&shared) {
        Ok(started) => started,
        Err(error) => {
            shutting_down.store(true, Ordering::Release);
            courier_stop.store(true, Ordering::Release);
            scheduler_stop.store(true, Ordering::Release);
            let _ = courier.join();
            let _ = scheduler.join();
            return Err(error);
        }
    };
    // Ready before the line that announces the address: whoever acts on
    // that line must find /readyz already saying so.
    admin.set_phase(Phase::Ready);
    telemetry::LISTENING.emit(&[
        ("addr", addr.to_string().as_str().into()),
        ("admin_addr", admin_addr.to_string().as_str().into()),
    ]);
    let _ = sd_notify::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("serving"),
    ]);
    telemetry::READY.emit(&[]);

    wait_for_stop(&signals, &flags, &config_cell, &liveness, &stats_for_status);

    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    admin.set_phase(Phase::Draining);
    telemetry::DRAINING.emit(&[]);
    shutting_down.store(true, Ordering::Release);
    for worker in workers {
        let _ = worker.join();
    }
    courier_stop.store(true, Ordering::Release);
    courier
        .join()
        .map_err(|_| anyhow!("the courier thread panicked"))?;
    telemetry::STOPPED.emit(&[]);
    Ok(())
}

/// What every worker thread shares.
#[derive(Clone)]
struct Shared {
    config: Arc<Published<Config>>,
    snapshot_cell: Arc<SnapshotCell>,
    logs: Arc<StreamLogs>,
    shutting_down: Arc<AtomicBool>,
    stats: Vec<Arc<WorkerStats>>,
    liveness: Arc<Liveness>,
    task_run: TaskRun,
    rate_limiters: Arc<crate::rate::RateLimiters>,
    refresh: Arc<crate::courier::RefreshSignal>,
}

/// Checks that nobody listens on `addr` and picks the port when it is 0.
///
/// Workers listen with `SO_REUSEPORT`, which would also let them join the
/// listeners of another process that sets it: a second appliance on
/// another data directory, started on the same address, would silently get
/// half of the connections (with its own tenants and keys). A plain bind
/// (no `SO_REUSEPORT`; `SO_REUSEADDR` so that a restart is not held up by
/// the last run's closing connections) fails with "address in use" when
/// anyone listens there. The probe never listens and is closed before the
/// workers bind the address it found.
///
/// Two appliances started at the same instant could both pass the probe
/// before either binds; so a fixed port is also claimed by binding an
/// abstract Unix socket named after the address, held until the process
/// exits (the kernel drops it then, however the process ends).
fn claim_address(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    if addr.port() != 0 {
        use std::os::linux::net::SocketAddrExt;
        static ADDRESS_LOCK: std::sync::OnceLock<std::os::unix::net::UnixListener> =
            std::sync::OnceLock::new();
        let name = format!("sluice-listen-{addr}");
        let lock_addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let lock = std::os::unix::net::UnixListener::bind_addr(&lock_addr)?;
        let _ = ADDRESS_LOCK.set(lock);
    }
    let probe = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into())?;
    probe
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("the probe socket has no IP address"))
}

/// Starts worker 0 on the configured address, then the others on the
/// address it got (which differs when port 0 was asked for).
fn start_workers(shared: &Shared) -> anyhow::Result<(Vec<std::thread::JoinHandle<()>>, SocketAddr)> {
    let mut handles: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let config = shared.config.load();
    let mut addr =
        claim_address(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    for index in 0..config.workers {
        let (bound_tx, bound_rx) = mpsc::channel();
        let shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("sluice-worker-{index}"))
            .spawn(move || worker_thread(index, addr, shared, bound_tx))?;
        match bound_rx.recv() {
            Ok(Ok(bound)) => addr = bound,
            Ok(Err(error)) => {
                let _ = handle.join();
                for handle in handles {
                    let _ = handle.join();
                }
                bail!("cannot listen on {addr}: {error}");
            }
            Err(_) => bail!("worker {index} stopped before binding"),
        }
        handles.push(handle);
    }
    Ok((handles, addr))
}

fn worker_thread(
    index: usize,
    addr: SocketAddr,
    shared: Shared,
    bound_tx: mpsc::Sender<std::io::Result<SocketAddr>>,
) {
    let policy = shared.config.load().worker_scheduling_policy;
    if let Err(error) = crate::sched::set_worker_policy(policy) {
        telemetry::CONFIG_WARNING.emit(&[
            ("setting", "worker_scheduling_policy".into()),
            ("worker", index.into()),
            (
                "message",
                format!(
                    "cannot set scheduling policy {}: {error}; the worker keeps its own",
                    policy.name()
                )
                .as_str()
                .into(),
            ),
        ]);
    }
    let runtime = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .uring_builder(shared.task_run.builder())
        .with_entries(URING_ENTRIES)
        .enable_timer()
        .build();
    let mut runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = bound_tx.send(Err(error));
            return;
        }
    };
    runtime.block_on(async move {
        let opts = ListenerOpts::new().reuse_port(true).backlog(LISTEN_BACKLOG);
        let listener = match TcpListener::bind_with_config(addr, &opts) {
            Ok(listener) => listener,
            Err(error) => {
                let _ = bound_tx.send(Err(error));
                return;
            }
        };
        let _ = bound_tx.send(listener.local_addr());
        let worker = Rc::new(Worker::new(
            index,
            Arc::clone(&shared.config),
            Arc::clone(&shared.snapshot_cell),
            Arc::clone(&shared.logs),
            Arc::clone(&shared.shutting_down),
            Arc::clone(&shared.stats[index]),
            Arc::clone(&shared.rate_limiters),
            Arc::clone(&shared.refresh),
        ));
        serve(listener, worker, Arc::clone(&shared.liveness)).await;
    });
}

/// Accepts until shutdown, then waits for connections to drain.
async fn serve(listener: TcpListener, worker: Rc<Worker>, liveness: Arc<Liveness>) {
    let connections: Rc<RefCell<HashMap<u64, Rc<ConnectionState>>>> = Rc::default();
    monoio::spawn(watch_shutdown(
        Rc::clone(&worker),
        Rc::clone(&connections),
        listener.as_raw_fd(),
        liveness,
    ));
    let mut next_id = 0u64;
    while !worker.is_shutting_down() {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                if worker.is_shutting_down() {
                    break;
                }
                telemetry::ACCEPT_FAILED.emit(&[("error", error.to_string().as_str().into())]);
                monoio::time::sleep(Duration::from_millis(ACCEPT_BACKOFF_MS)).await;
                continue;
            }
        };
        if worker.is_shutting_down() {
            break;
        }
        if worker.connections.get() >= worker.config().connections_per_worker_max {
            monoio::spawn(connection::refuse(stream, Rc::clone(&worker)));
            continue;
        }
        next_id += 1;
        let id = next_id;
        let state = Rc::new(ConnectionState {
            fd: connection::raw_fd(&stream),
            idle: std::cell::Cell::new(true),
        });
        connections.borrow_mut().insert(id, Rc::clone(&state));
        worker.connections.set(worker.connections.get() + 1);
        let worker = Rc::clone(&worker);
        let connections = Rc::clone(&connections);
        monoio::spawn(async move {
            connection::serve(stream, Rc::clone(&worker), state).await;
            connections.borrow_mut().remove(&id);
            worker.connections.set(worker.connections.get() - 1);
        });
    }
    drop(listener);
    let deadline = Instant::now() + Duration::from_millis(worker.config().drain_timeout_ms);
    while (worker.connections.get() > 0 || worker.flusher_tasks.get() > 0) && Instant::now() < deadline {
        for state in connections.borrow().values() {
            connection::shut_down_idle(state);
        }
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Wakes the accept loop and idle connections once shutdown begins.
async fn watch_shutdown(
    worker: Rc<Worker>,
    connections: Rc<RefCell<HashMap<u64, Rc<ConnectionState>>>>,
    listener_fd: std::os::fd::RawFd,
    liveness: Arc<Liveness>,
) {
    while !worker.is_shutting_down() {
        // This task runs on the worker's own runtime: its beat proves the
        // runtime is turning, which is what the watchdog wants to know.
        liveness.beat(worker.index);
        monoio::time::sleep(Duration::from_millis(SHUTDOWN_POLL_MS)).await;
    }
    // SAFETY: plain system call; the listener outlives this call (the
    // accept loop only drops it after seeing the flag that is set now).
    // shutdown() on a listening socket makes a pending accept fail.
    unsafe {
        libc::shutdown(listener_fd, libc::SHUT_RDWR);
    }
    for state in connections.borrow().values() {
        connection::shut_down_idle(state);
    }
}

/// Holds an exclusive lock on `<data-dir>/sluice.lock` for as long as the
/// returned file lives: a second `serve` on the same data refuses to start.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<File> {
    let path = data_dir.join("sluice.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: plain system call on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        bail!(
            "another sluice serve is already running on {} (lock {} is held)",
            data_dir.display(),
            path.display()
        );
    }
    Ok(file)
}

/// How a worker's ring runs completion work. By default the kernel
/// interrupts a busy worker (an inter-processor interrupt) to run the
/// work of every completion that arrives while it runs; measured with
/// `benches/load.sh`, that cost about a quarter of the server's CPU per
/// request. `IORING_SETUP_COOP_TASKRUN` (Linux 5.19+) lets the worker pick
/// completions up at its next system call instead, which a busy worker
/// makes after every round of tasks. (`DEFER_TASKRUN` would go further,
/// but it only runs completion work when the worker asks to wait, and
/// monoio does not wait while tasks are ready, so a task that keeps
/// yielding would hold back every completion of its worker.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskRun {
    /// `IORING_SETUP_COOP_TASKRUN` with `TASKRUN_FLAG`.
    Coop,
    /// The kernel is too old for it: its default.
    Default,
}

impl TaskRun {
    pub fn name(self) -> &'static str {
        match self {
            TaskRun::Coop => "coop",
            TaskRun::Default => "default",
        }
    }

    /// The ring settings for this mode.
    pub fn builder(self) -> io_uring::Builder {
        let mut builder = io_uring::IoUring::builder();
        if self == TaskRun::Coop {
            builder.setup_coop_taskrun().setup_taskrun_flag();
        }
        builder
    }

    /// The mode this kernel accepts.
    fn detect() -> TaskRun {
        if TaskRun::Coop.builder().build(8).is_ok() {
            TaskRun::Coop
        } else {
            TaskRun::Default
        }
    }
}

/// Checks that io_uring can be used, names the features the kernel offers
/// and picks how completion work runs. No silent fallback: without
/// io_uring sluice does not start.
fn probe_io_uring() -> anyhow::Result<(String, TaskRun)> {
    let ring = io_uring::IoUring::new(8).map_err(|error| {
        anyhow!(
            "io_uring is unavailable ({error}); sluice needs it: check kernel.io_uring_disabled, seccomp filters and RLIMIT_MEMLOCK"
        )
    })?;
    let params = ring.params();
    let mut features = Vec::new();
    for (name, present) in [
        ("single_mmap", params.is_feature_single_mmap()),
        ("nodrop", params.is_feature_nodrop()),
        ("submit_stable", params.is_feature_submit_stable()),
        ("rw_cur_pos", params.is_feature_rw_cur_pos()),
        ("fast_poll", params.is_feature_fast_poll()),
        ("poll_32bits", params.is_feature_poll_32bits()),
        ("ext_arg", params.is_feature_ext_arg()),
        ("native_workers", params.is_feature_native_workers()),
    ] {
        if present {
            features.push(name);
        }
    }
    Ok((features.join(","), TaskRun::detect()))
}

/// Blocks SIGTERM, SIGINT and SIGHUP in this thread (and the threads it
/// spawns), so that [`wait_for_stop`] can take them with `sigwait`.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data that sigemptyset initialises; the calls
    // only touch this thread's signal mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for SIGTERM or SIGINT; SIGHUP reloads what can be reloaded.
fn wait_for_stop(
    signals: &libc::sigset_t,
    flags: &ServeFlags,
    config: &Published<Config>,
    liveness: &Liveness,
    stats: &[Arc<WorkerStats>],
) {
    let watchdog = sd_notify::watchdog_enabled();
    // Half the watchdog interval, as systemd recommends; at most a second,
    // which is also how often STATUS= is refreshed.
    let tick = watchdog.map_or(Duration::from_secs(1), |interval| {
        (interval / 2).min(Duration::from_secs(1))
    });
    let timeout = libc::timespec {
        tv_sec: tick.as_secs() as libc::time_t,
        tv_nsec: tick.subsec_nanos() as _,
    };
    loop {
        // SAFETY: `signals` was initialised by block_signals; a null info
        // pointer is allowed.
        let signal = unsafe { libc::sigtimedwait(signals, std::ptr::null_mut(), &timeout) };
        match signal {
            libc::SIGHUP => reload(flags, config),
            libc::SIGTERM | libc::SIGINT => return,
            _ => report_progress(watchdog.is_some(), liveness, stats),
        }
    }
}

/// Pets the systemd watchdog only while every worker runtime and the
/// courier are beating, and refreshes the STATUS= line.
fn report_progress(watchdog: bool, liveness: &Liveness, stats: &[Arc<WorkerStats>]) {
    let records: u64 = stats.iter().map(|s| s.records.load(Ordering::Relaxed)).sum();
    let status = format!("serving; {records} records stored since start");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&status)]);
    if watchdog && liveness.all_alive() {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
    }
}

/// SIGHUP: reads the configuration again and publishes it to the workers,
/// who pick it up on their next request; connections are not touched. An
/// invalid file keeps the running configuration. Limits, timeouts, rate
/// limits and the log level change live; addresses, worker count,
/// durability and segment size need a restart, and the reload says so.
fn reload(flags: &ServeFlags, cell: &Published<Config>) {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
    let current = cell.load();
    match current.reload(flags) {
        Ok((config, restart_needed)) => {
            telemetry::set_level(config.log_level);
            let generation = config.generation;
            cell.publish(config);
            telemetry::RELOAD.emit(&[
                ("generation", generation.into()),
                ("restart_needed_for", restart_needed.join(",").as_str().into()),
            ]);
        }
        Err(error) => telemetry::RELOAD_FAILED.emit(&[("error", error.as_str().into())]),
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
}
