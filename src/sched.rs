//! Scheduling policies: `SCHED_BATCH` for the ingest workers (by default;
//! `worker_scheduling_policy`, README "Worker scheduling"), `SCHED_OTHER`
//! for every other thread, including the kernel's io_uring worker threads
//! (`iou-wrk-*`) that run the workers' group-commit flushes.

use std::io;

use crate::config::WorkerScheduling;

fn policy_number(policy: WorkerScheduling) -> libc::c_int {
    match policy {
        WorkerScheduling::Batch => libc::SCHED_BATCH,
        WorkerScheduling::Other => libc::SCHED_OTHER,
    }
}

/// The policy of thread `tid` (0: the calling thread), or -1.
fn policy_of(tid: libc::pid_t) -> libc::c_int {
    // SAFETY: the call only reads the thread's policy.
    unsafe { libc::sched_getscheduler(tid) }
}

/// Gives thread `tid` (0: the calling thread) `policy`. Neither policy
/// needs privileges; a seccomp filter may still refuse the call (the
/// shipped unit allows it, systemd/README.md).
fn set_policy(tid: libc::pid_t, policy: WorkerScheduling) -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` outlives the call.
    match unsafe { libc::sched_setscheduler(tid, policy_number(policy), &param) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Gives the calling thread (a worker) `policy`, unless it has it already.
pub fn set_worker_policy(policy: WorkerScheduling) -> io::Result<()> {
    if policy_of(0) == policy_number(policy) {
        return Ok(());
    }
    set_policy(0, policy)
}

/// Gives `SCHED_OTHER` back to this process's io_uring worker threads that
/// run as `SCHED_BATCH`. The kernel starts
/// them from the worker thread whose request needs one (an `fdatasync` in
/// `durability = "disk"`), so they inherit its `SCHED_BATCH`; as batch
/// tasks they would wait for the running task's slice to end before a
/// group commit's flush, and again before completing it, while every
/// waiting request waits with them (about 10-15% fewer requests/s in disk
/// mode, README). The courier thread calls this every turn; a thread that
/// ends meanwhile, or a call the system refuses, is skipped.
pub fn io_workers_to_other() {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|name| name.parse().ok()) else {
            continue;
        };
        let is_io_worker =
            std::fs::read(task.path().join("comm")).is_ok_and(|comm| comm.starts_with(b"iou-wrk"));
        if is_io_worker && policy_of(tid) == libc::SCHED_BATCH {
            let _ = set_policy(tid, WorkerScheduling::Other);
        }
    }
}
