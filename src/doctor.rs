//! `sluice doctor`: checks a host for what sluice needs and says what to
//! change (SPEC §7).
//!
//! This module owns two things, kept apart so the judgement can be tested
//! without the host: [`HostFacts::gather`] reads everything it needs in one
//! place (`/proc`, `getrlimit`, `statfs`, an `io_uring_setup`, the kernel's
//! clock state), and [`check`] is a pure function from those facts to
//! [`Finding`]s. It promises one line per finding, `ok: <what> — <why>` or
//! `change: <what> — <how>`, and that the host needs nothing exactly when no
//! finding says `change`. The recommended kernel settings are the ones of
//! `tuning/99-sluice.conf`; a unit test keeps [`SYSCTLS`] and that file equal.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// Descriptors a `serve` needs beyond one per connection: listeners, open
/// segments and their directories, the control database, the admin
/// listener and the notify socket. Generous, because running out of
/// descriptors turns into refused connections.
pub const NOFILE_HEADROOM: u64 = 4096;

/// Free space under this percentage of the data directory's filesystem is
/// worth a change: segments are preallocated, and a full disk is a 503 for
/// every stream at once.
pub const FREE_PERCENT_MIN: u64 = 10;

/// Free space under this many bytes is worth a change whatever the
/// filesystem's size: a few default-sized (64 MiB) segments.
pub const FREE_BYTES_MIN: u64 = 1 << 30;

/// The first kernel (5.12) that charges io_uring rings to the memory cgroup
/// instead of `RLIMIT_MEMLOCK`; before it a low memlock limit makes
/// `io_uring_setup` fail with `ENOMEM`.
pub const KERNEL_RINGS_UNCHARGED: (u32, u32) = (5, 12);

/// Ring memory per submission entry: one 64-byte SQE, two 16-byte CQEs (the
/// completion queue is twice as deep) and one 4-byte index.
const RING_BYTES_PER_ENTRY: u64 = 64 + 2 * 16 + 4;

/// Ring memory beyond the entries: the shared headers and page rounding of
/// the three mappings.
const RING_BYTES_OVERHEAD: u64 = 3 * 4096;

/// Entries of the probe ring that `serve` (and this module) opens before
/// the workers start.
const PROBE_RING_ENTRIES: u32 = 8;

/// A resource limit in the kernel's units; `u64::MAX` means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// What the process gets now.
    pub soft: u64,
    /// How far the process may raise `soft` without privilege.
    pub hard: u64,
}

/// The filesystem that holds (or will hold) the data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsFacts {
    /// The path that was inspected: the data directory, or its nearest
    /// existing ancestor when it does not exist yet.
    pub inspected: PathBuf,
    /// `statfs` `f_type`, the filesystem's magic number (low 32 bits).
    pub magic: u32,
    /// Bytes an unprivileged writer may still use (`f_bavail`).
    pub bytes_free: u64,
    /// The filesystem's size.
    pub bytes_total: u64,
}

/// Whether the kernel's clock is disciplined by NTP (or PTP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockFacts {
    /// The kernel says the clock is synchronised.
    pub synchronized: bool,
    /// Where the answer came from, for the message.
    pub source: &'static str,
}

/// Everything [`check`] judges, read from the host in one place so that
/// tests can describe any host as plain data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFacts {
    /// Kernel release as (major, minor); decides whether rings count
    /// against memlock.
    pub kernel: Option<(u32, u32)>,
    /// `kernel.io_uring_disabled`; `None` on kernels without the switch.
    pub io_uring_disabled: Option<u64>,
    /// The outcome of a real `io_uring_setup`: the errno if it failed.
    pub io_uring_setup: Result<(), i32>,
    /// The `Seccomp:` mode of this process (0 none, 1 strict, 2 filter).
    pub seccomp: Option<u32>,
    /// `RLIMIT_MEMLOCK` in bytes.
    pub memlock: Limit,
    /// `RLIMIT_NOFILE`.
    pub nofile: Limit,
    /// Cores this process may run on (affinity and cgroup quota included).
    pub cores: usize,
    /// Configured workers.
    pub workers: usize,
    /// Configured open connections per worker.
    pub connections_per_worker_max: usize,
    /// Submission entries of each worker's ring.
    pub ring_entries: u32,
    /// The data directory, for messages.
    pub data_dir: PathBuf,
    /// Its filesystem, or why it could not be inspected.
    pub data_fs: Result<FsFacts, String>,
    /// The clock's state, if any source answered.
    pub clock: Option<ClockFacts>,
    /// The current value of every entry of [`SYSCTLS`], in that order;
    /// `None` when the key does not exist on this kernel.
    pub sysctls: Vec<Option<String>>,
}

/// Whether a finding asks for a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Ok,
    /// The operator should change something; `doctor` exits 1.
    Change,
}

/// One checked property of the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Whether the operator has something to do.
    pub verdict: Verdict,
    /// What was checked and what was found.
    pub what: String,
    /// Why it matters or how to change it.
    pub detail: String,
}

impl Finding {
    fn ok(what: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            verdict: Verdict::Ok,
            what: what.into(),
            detail: detail.into(),
        }
    }

    fn change(what: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            verdict: Verdict::Change,
            what: what.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.verdict {
            Verdict::Ok => "ok",
            Verdict::Change => "change",
        };
        write!(f, "{verdict}: {} — {}", self.what, self.detail)
    }
}

/// What a kernel setting must satisfy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// A floor: more is as good.
    AtLeast(u64),
    /// A ceiling: less is as good.
    AtMost(u64),
    /// Inclusive bounds; used where 0 means "off" and is not acceptable.
    Between(u64, u64),
    /// Exactly this value.
    Equal(u64),
    /// A port range `low high` that covers `[low_max, high_min]`.
    Covers(u64, u64),
}

impl Accept {
    fn accepts(self, value: &str) -> Option<bool> {
        let numbers: Vec<u64> = value
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        match (self, numbers.as_slice()) {
            (Accept::AtLeast(floor), [n]) => Some(*n >= floor),
            (Accept::AtMost(ceiling), [n]) => Some(*n <= ceiling),
            (Accept::Between(low, high), [n]) => Some((low..=high).contains(n)),
            (Accept::Equal(want), [n]) => Some(*n == want),
            (Accept::Covers(low_max, high_min), [low, high]) => Some(*low <= low_max && *high >= high_min),
            _ => None,
        }
    }

    fn describe(self) -> String {
        match self {
            Accept::AtLeast(floor) => format!("at least {floor}"),
            Accept::AtMost(ceiling) => format!("at most {ceiling}"),
            Accept::Between(low, high) => format!("between {low} and {high}"),
            Accept::Equal(want) => format!("exactly {want}"),
            Accept::Covers(low, high) => format!("a range covering {low}–{high}"),
        }
    }
}

/// One recommended kernel setting of `tuning/99-sluice.conf`.
#[derive(Clone, Copy, Debug)]
pub struct Sysctl {
    /// The dotted name, as `sysctl` and the file write it.
    pub name: &'static str,
    /// The value the file sets.
    pub recommended: &'static str,
    /// What a running value must satisfy to need no change.
    pub accept: Accept,
    /// Why, in a few words, for the finding.
    pub why: &'static str,
}

/// The recommended kernel settings, in the order of `tuning/99-sluice.conf`.
pub const SYSCTLS: &[Sysctl] = &[
    Sysctl {
        name: "net.core.somaxconn",
        recommended: "4096",
        accept: Accept::AtLeast(crate::server::LISTEN_BACKLOG as u64),
        why: "the kernel caps each listener's accept queue (sluice asks for 4096) at this",
    },
    Sysctl {
        name: "net.ipv4.tcp_max_syn_backlog",
        recommended: "8192",
        accept: Accept::AtLeast(8192),
        why: "bursts of reconnecting clients overflow a small SYN queue",
    },
    Sysctl {
        name: "net.ipv4.ip_local_port_range",
        recommended: "10240 65535",
        accept: Accept::Covers(10240, 65535),
        why: "a wide ephemeral range avoids port exhaustion on busy hosts",
    },
    Sysctl {
        name: "fs.file-max",
        recommended: "2097152",
        accept: Accept::AtLeast(2_097_152),
        why: "every connection and open segment is a descriptor",
    },
    Sysctl {
        name: "fs.nr_open",
        recommended: "1048576",
        accept: Accept::AtLeast(1_048_576),
        why: "the unit's LimitNOFILE=1048576 cannot exceed it",
    },
    Sysctl {
        name: "vm.dirty_background_ratio",
        recommended: "5",
        accept: Accept::Between(1, 5),
        why: "early background write-back keeps seal and flush work small",
    },
    Sysctl {
        name: "vm.dirty_ratio",
        recommended: "40",
        accept: Accept::AtLeast(40),
        why: "a throttled page fault stalls a whole worker core",
    },
    Sysctl {
        name: "vm.dirty_expire_centisecs",
        recommended: "1500",
        accept: Accept::Between(1, 1500),
        why: "bounds how old unflushed acknowledged data can get",
    },
    Sysctl {
        name: "vm.dirty_writeback_centisecs",
        recommended: "100",
        accept: Accept::Between(1, 100),
        why: "steady write-back of mapped segments instead of bursts (0 turns it off)",
    },
    Sysctl {
        name: "kernel.io_uring_disabled",
        recommended: "0",
        accept: Accept::Equal(0),
        why: "sluice runs on io_uring and does not start without it",
    },
    Sysctl {
        name: "vm.max_map_count",
        recommended: "262144",
        accept: Accept::AtLeast(262_144),
        why: "each open segment is a mapping and each ring three",
    },
];

/// Filesystems whose `statfs` magic numbers the checks name, from
/// `linux/magic.h` and the filesystems' own headers.
const FILESYSTEMS: &[(u32, &str)] = &[
    (0xEF53, "ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x2FC1_2FC1, "zfs"),
    (0xF2F5_2010, "f2fs"),
    (0x0102_1994, "tmpfs"),
    (0x8584_58F6, "ramfs"),
    (0x794C_7630, "overlay"),
    (0x6969, "nfs"),
    (0xFF53_4D42, "cifs"),
    (0xFE53_4D42, "smb2"),
    (0x6573_5546, "fuse"),
    (0x0100_2001, "9p"),
];

/// Names a filesystem magic number, or shows it in hex.
pub fn filesystem_name(magic: u32) -> String {
    FILESYSTEMS.iter().find(|(known, _)| *known == magic).map_or_else(
        || format!("filesystem 0x{magic:x}"),
        |(_, name)| (*name).to_owned(),
    )
}

/// Judges the host: one finding per property, in a fixed order.
pub fn check(facts: &HostFacts) -> Vec<Finding> {
    assert_eq!(
        facts.sysctls.len(),
        SYSCTLS.len(),
        "HostFacts holds one value per SYSCTLS entry"
    );
    let mut findings = vec![
        check_io_uring(facts),
        check_seccomp(facts),
        check_memlock(facts),
        check_nofile(facts),
        check_cores(facts),
    ];
    findings.extend(check_data_fs(facts));
    findings.push(check_clock(facts));
    for (sysctl, value) in SYSCTLS.iter().zip(&facts.sysctls) {
        findings.push(check_sysctl(sysctl, value.as_deref()));
    }
    findings
}

fn check_io_uring(facts: &HostFacts) -> Finding {
    let what = "io_uring";
    let Err(errno) = facts.io_uring_setup else {
        return Finding::ok(what, "io_uring_setup works; sluice's workers run on it");
    };
    let error = std::io::Error::from_raw_os_error(errno);
    let how = match (facts.io_uring_disabled, facts.seccomp, errno) {
        (Some(2), _, _) => {
            "kernel.io_uring_disabled = 2 turns it off for everyone: set it to 0 (tuning/99-sluice.conf)"
        }
        (Some(1), _, _) => {
            "kernel.io_uring_disabled = 1 allows it only for kernel.io_uring_group: set it to 0 (tuning/99-sluice.conf)"
        }
        (_, Some(mode), libc::EPERM | libc::ENOSYS) if mode > 0 => {
            "a seccomp filter refuses it: allow io_uring_setup, io_uring_enter and io_uring_register (the unit's SystemCallFilter= does; a container needs a seccomp profile that does)"
        }
        (_, _, libc::ENOSYS) => {
            "this kernel has no io_uring: use a kernel of 5.11 or later built with CONFIG_IO_URING"
        }
        (_, _, libc::ENOMEM) => {
            "the ring does not fit in RLIMIT_MEMLOCK on this kernel: raise it (LimitMEMLOCK=infinity in the unit, `ulimit -l unlimited`)"
        }
        (_, _, libc::EPERM) => {
            "a container runtime or security module refuses it: allow io_uring in its policy, or run sluice on the host"
        }
        _ => "sluice cannot start without it: check the kernel, seccomp and memlock",
    };
    Finding::change(format!("io_uring_setup fails ({error})"), how)
}

fn check_seccomp(facts: &HostFacts) -> Finding {
    match (facts.seccomp, facts.io_uring_setup) {
        (None, _) => Finding::ok("seccomp status unknown", "this kernel does not report it"),
        (Some(0), _) => Finding::ok(
            "no seccomp filter on this process",
            "under systemd the unit's SystemCallFilter= applies and allows io_uring",
        ),
        (Some(_), Ok(())) => Finding::ok("a seccomp filter is active", "it allows io_uring"),
        (Some(_), Err(_)) => Finding::change(
            "a seccomp filter is active and io_uring_setup fails",
            "allow io_uring_setup, io_uring_enter and io_uring_register in the filter",
        ),
    }
}

/// Ring memory of one worker ring of `entries` submission entries.
fn ring_bytes(entries: u32) -> u64 {
    u64::from(entries) * RING_BYTES_PER_ENTRY + RING_BYTES_OVERHEAD
}

fn check_memlock(facts: &HostFacts) -> Finding {
    let current = limit_text(facts.memlock.soft, " bytes");
    if let Some(kernel) = facts.kernel.filter(|kernel| *kernel >= KERNEL_RINGS_UNCHARGED) {
        return Finding::ok(
            format!("memlock limit {current}"),
            format!(
                "kernel {}.{} charges io_uring rings to the memory cgroup, not to memlock",
                kernel.0, kernel.1
            ),
        );
    }
    let needed = facts.workers as u64 * ring_bytes(facts.ring_entries) + ring_bytes(PROBE_RING_ENTRIES);
    if facts.memlock.soft >= needed {
        return Finding::ok(
            format!("memlock limit {current}"),
            format!("covers the {needed} bytes of {} worker rings", facts.workers),
        );
    }
    Finding::change(
        format!(
            "memlock limit {current} is below the {needed} bytes {} worker rings need",
            facts.workers
        ),
        "kernels before 5.12 charge rings to memlock: set LimitMEMLOCK=infinity in the unit, or `ulimit -l unlimited`",
    )
}

fn check_nofile(facts: &HostFacts) -> Finding {
    let needed = facts.workers as u64 * facts.connections_per_worker_max as u64 + NOFILE_HEADROOM;
    let current = limit_text(facts.nofile.soft, "");
    let why = format!(
        "{} workers × {} connections + {NOFILE_HEADROOM} = {needed}",
        facts.workers, facts.connections_per_worker_max
    );
    if facts.nofile.soft >= needed {
        return Finding::ok(format!("open files limit {current}"), format!("covers {why}"));
    }
    let how = if facts.nofile.hard >= needed {
        format!("raise the soft limit (`ulimit -n {needed}`); the unit sets LimitNOFILE=1048576")
    } else {
        "raise the hard limit: LimitNOFILE=1048576 in the unit, or nofile in /etc/security/limits.conf"
            .to_owned()
    };
    Finding::change(format!("open files limit {current} is below {why}"), how)
}

fn check_cores(facts: &HostFacts) -> Finding {
    let what = format!("{} workers on {} cores", facts.workers, facts.cores);
    if facts.workers > facts.cores {
        return Finding::change(
            what,
            format!(
                "set workers = {} (or --workers): thread-per-core workers sharing a core preempt each other mid-request",
                facts.cores
            ),
        );
    }
    if facts.workers < facts.cores {
        return Finding::ok(
            what,
            "the spare cores serve the courier, the network stack and other services",
        );
    }
    Finding::ok(what, "one worker per core; pin them as tuning/README.md shows")
}

fn check_data_fs(facts: &HostFacts) -> Vec<Finding> {
    let dir = facts.data_dir.display();
    let fs = match &facts.data_fs {
        Ok(fs) => fs,
        Err(error) => {
            return vec![Finding::change(
                format!("cannot inspect the filesystem of {dir} ({error})"),
                "make the data directory (or its parent) exist and be readable",
            )];
        }
    };
    let name = filesystem_name(fs.magic);
    let kind = match name.as_str() {
        "tmpfs" | "ramfs" => {
            Some("it lives in memory and is lost on reboot: put the data directory on ext4 or xfs")
        }
        "overlay" => Some(
            "a container's overlay layer is slow to write and goes with the container: mount a volume (ext4 or xfs)",
        ),
        "nfs" | "cifs" | "smb2" | "fuse" | "9p" => Some(
            "mapped writes and fsync are not reliably durable on network or FUSE filesystems: use a local ext4 or xfs",
        ),
        _ => None,
    };
    let type_finding = match kind {
        Some(how) => Finding::change(format!("data directory {dir} is on {name}"), how),
        None => Finding::ok(
            format!("data directory {dir} is on {name}"),
            "a local filesystem with mmap, fallocate and fsync",
        ),
    };
    let free = format!(
        "{} of {} free on {}",
        bytes_text(fs.bytes_free),
        bytes_text(fs.bytes_total),
        fs.inspected.display()
    );
    let low = fs.bytes_free < FREE_BYTES_MIN
        || u128::from(fs.bytes_free) * 100 < u128::from(fs.bytes_total) * u128::from(FREE_PERCENT_MIN);
    let free_finding = if low {
        Finding::change(
            free,
            format!(
                "keep at least {FREE_PERCENT_MIN}% and {} free: a full disk answers 503 to every stream; remove loaded files or grow the filesystem",
                bytes_text(FREE_BYTES_MIN)
            ),
        )
    } else {
        Finding::ok(
            free,
            format!("above {FREE_PERCENT_MIN}% and {}", bytes_text(FREE_BYTES_MIN)),
        )
    };
    vec![type_finding, free_finding]
}

fn check_clock(facts: &HostFacts) -> Finding {
    let how =
        "hour folders, seal times and token expiry follow the clock: enable chrony or systemd-timesyncd";
    match facts.clock {
        Some(ClockFacts {
            synchronized: true,
            source,
        }) => Finding::ok(
            format!("clock is synchronised ({source})"),
            "hour folders and token expiry agree with other hosts",
        ),
        Some(ClockFacts {
            synchronized: false,
            source,
        }) => Finding::change(format!("clock is not synchronised ({source})"), how),
        None => Finding::change("cannot tell whether the clock is synchronised", how),
    }
}

fn check_sysctl(sysctl: &Sysctl, value: Option<&str>) -> Finding {
    let Some(value) = value else {
        return Finding::ok(
            format!("{} is not present on this kernel", sysctl.name),
            "nothing to set",
        );
    };
    let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
    let want = sysctl.accept.describe();
    match sysctl.accept.accepts(&value) {
        Some(true) => Finding::ok(
            format!("{} = {value}", sysctl.name),
            format!("{want}: {}", sysctl.why),
        ),
        _ => Finding::change(
            format!("{} = {value}, want {want}", sysctl.name),
            format!(
                "{}; set {} = {} (tuning/99-sluice.conf)",
                sysctl.why, sysctl.name, sysctl.recommended
            ),
        ),
    }
}

fn limit_text(value: u64, unit: &str) -> String {
    if value == u64::MAX {
        "unlimited".to_owned()
    } else {
        format!("{value}{unit}")
    }
}

/// Bytes in the largest binary unit that keeps one decimal meaningful.
fn bytes_text(bytes: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl HostFacts {
    /// Reads the host as `sluice serve` with `config` on `data_dir` would
    /// meet it. Reads only; creates nothing.
    pub fn gather(data_dir: &Path, config: &Config) -> HostFacts {
        HostFacts {
            kernel: read_proc("/proc/sys/kernel/osrelease").and_then(|text| parse_kernel(&text)),
            io_uring_disabled: read_proc("/proc/sys/kernel/io_uring_disabled")
                .and_then(|text| text.parse().ok()),
            io_uring_setup: io_uring::IoUring::new(PROBE_RING_ENTRIES)
                .map(drop)
                .map_err(|error| error.raw_os_error().unwrap_or(libc::EIO)),
            seccomp: read_proc("/proc/self/status").and_then(|text| parse_seccomp(&text)),
            memlock: rlimit(libc::RLIMIT_MEMLOCK),
            nofile: rlimit(libc::RLIMIT_NOFILE),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            workers: config.workers,
            connections_per_worker_max: config.connections_per_worker_max,
            ring_entries: crate::server::URING_ENTRIES,
            data_dir: data_dir.to_path_buf(),
            data_fs: statfs_nearest(data_dir),
            clock: clock_from_timedatectl().or_else(clock_from_adjtimex),
            sysctls: SYSCTLS
                .iter()
                .map(|sysctl| read_proc(&format!("/proc/sys/{}", sysctl.name.replace('.', "/"))))
                .collect(),
        }
    }
}

/// A `/proc` file's text, trimmed; `None` if it cannot be read.
fn read_proc(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
}

/// `6.1.0-18-amd64` → (6, 1).
fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The `Seccomp:` line of `/proc/self/status`.
fn parse_seccomp(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Seccomp:"))
        .and_then(|value| value.trim().parse().ok())
}

fn rlimit(resource: libc::__rlimit_resource_t) -> Limit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    let result = unsafe { libc::getrlimit(resource, &mut limit) };
    if result != 0 {
        return Limit { soft: 0, hard: 0 };
    }
    let value = |raw: libc::rlim_t| if raw == libc::RLIM_INFINITY { u64::MAX } else { raw };
    Limit {
        soft: value(limit.rlim_cur),
        hard: value(limit.rlim_max),
    }
}

/// `statfs` of the data directory or, while it does not exist yet, of its
/// nearest existing ancestor (where it will be created).
fn statfs_nearest(data_dir: &Path) -> Result<FsFacts, String> {
    let absolute = std::path::absolute(data_dir).map_err(|error| error.to_string())?;
    let inspected = absolute
        .ancestors()
        .find(|path| path.exists())
        .ok_or_else(|| "no ancestor exists".to_owned())?
        .to_path_buf();
    let c_path = std::ffi::CString::new(inspected.as_os_str().as_encoded_bytes())
        .map_err(|_| "the path contains a NUL byte".to_owned())?;
    // SAFETY: statfs is plain data that the call fills in; zeroed is a valid
    // value of it.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a NUL-terminated string and stat a struct we own.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    let block = stat.f_bsize as u64;
    Ok(FsFacts {
        inspected,
        // Magic numbers are 32-bit; f_type's width and sign vary by arch.
        magic: (stat.f_type as u64 & 0xFFFF_FFFF) as u32,
        bytes_free: (stat.f_bavail as u64).saturating_mul(block),
        bytes_total: (stat.f_blocks as u64).saturating_mul(block),
    })
}

/// systemd's view, when `timedatectl` exists and systemd runs.
fn clock_from_timedatectl() -> Option<ClockFacts> {
    let output = std::process::Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let synchronized = match String::from_utf8_lossy(&output.stdout).trim() {
        "yes" => true,
        "no" => false,
        _ => return None,
    };
    Some(ClockFacts {
        synchronized,
        source: "timedatectl",
    })
}

/// The kernel's own view (what timedatectl reports too): `ntp_adjtime`
/// with no modes only reads, and needs no privilege.
fn clock_from_adjtimex() -> Option<ClockFacts> {
    // SAFETY: timex is plain data; zeroed (modes = 0) asks for a read only.
    let mut timex: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: the call writes into the struct we own.
    let state = unsafe { libc::ntp_adjtime(&mut timex) };
    if state < 0 {
        return None;
    }
    Some(ClockFacts {
        synchronized: state != libc::TIME_ERROR && timex.status & libc::STA_UNSYNC == 0,
        source: "adjtimex",
    })
}

/// Gathers the facts, writes one line per finding, and returns how many
/// findings ask for a change (0: the host needs nothing).
pub fn run(data_dir: &Path, config: &Config, out: &mut dyn std::io::Write) -> std::io::Result<usize> {
    let findings = check(&HostFacts::gather(data_dir, config));
    for finding in &findings {
        writeln!(out, "{finding}")?;
    }
    Ok(findings
        .iter()
        .filter(|finding| finding.verdict == Verdict::Change)
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host that needs nothing.
    fn healthy() -> HostFacts {
        HostFacts {
            kernel: Some((6, 1)),
            io_uring_disabled: Some(0),
            io_uring_setup: Ok(()),
            seccomp: Some(0),
            memlock: Limit {
                soft: 8 << 20,
                hard: 8 << 20,
            },
            nofile: Limit {
                soft: 1 << 20,
                hard: 1 << 20,
            },
            cores: 4,
            workers: 4,
            connections_per_worker_max: 16_384,
            ring_entries: 1024,
            data_dir: PathBuf::from("/var/lib/sluice"),
            data_fs: Ok(FsFacts {
                inspected: PathBuf::from("/var/lib/sluice"),
                magic: 0xEF53,
                bytes_free: 500 << 30,
                bytes_total: 1000 << 30,
            }),
            clock: Some(ClockFacts {
                synchronized: true,
                source: "adjtimex",
            }),
            sysctls: SYSCTLS.iter().map(|s| Some(s.recommended.to_owned())).collect(),
        }
    }

    fn changes(facts: &HostFacts) -> Vec<String> {
        check(facts)
            .into_iter()
            .filter(|f| f.verdict == Verdict::Change)
            .map(|f| f.to_string())
            .collect()
    }

    #[test]
    fn a_healthy_host_needs_nothing_and_every_line_is_well_formed() {
        let findings = check(&healthy());
        assert_eq!(findings.len(), 5 + 2 + 1 + SYSCTLS.len());
        assert_eq!(changes(&healthy()), Vec::<String>::new());
        for finding in &findings {
            let line = finding.to_string();
            assert!(line.starts_with("ok: "), "{line}");
            assert_eq!(line.matches(" — ").count(), 1, "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
        assert_eq!(
            findings[0].to_string(),
            "ok: io_uring — io_uring_setup works; sluice's workers run on it"
        );
        assert_eq!(
            findings[4].to_string(),
            "ok: 4 workers on 4 cores — one worker per core; pin them as tuning/README.md shows"
        );
        assert_eq!(
            findings[5].to_string(),
            "ok: data directory /var/lib/sluice is on ext4 — a local filesystem with mmap, fallocate and fsync"
        );
        assert_eq!(
            findings[6].to_string(),
            "ok: 500.0 GiB of 1000.0 GiB free on /var/lib/sluice — above 10% and 1.0 GiB"
        );
    }

    /// Each case changes the healthy host and expects exactly these
    /// `change` lines.
    #[test]
    fn each_problem_is_one_exact_change_line() {
        type Edit = fn(&mut HostFacts);
        let cases: &[(&str, Edit, &[&str])] = &[
            (
                "io_uring switched off",
                |f| {
                    f.io_uring_disabled = Some(2);
                    f.io_uring_setup = Err(libc::EPERM);
                    f.sysctls[9] = Some("2".into());
                },
                &[
                    "change: io_uring_setup fails (Operation not permitted (os error 1)) — kernel.io_uring_disabled = 2 turns it off for everyone: set it to 0 (tuning/99-sluice.conf)",
                    "change: kernel.io_uring_disabled = 2, want exactly 0 — sluice runs on io_uring and does not start without it; set kernel.io_uring_disabled = 0 (tuning/99-sluice.conf)",
                ],
            ),
            (
                "seccomp filter blocks io_uring",
                |f| {
                    f.seccomp = Some(2);
                    f.io_uring_setup = Err(libc::EPERM);
                },
                &[
                    "change: io_uring_setup fails (Operation not permitted (os error 1)) — a seccomp filter refuses it: allow io_uring_setup, io_uring_enter and io_uring_register (the unit's SystemCallFilter= does; a container needs a seccomp profile that does)",
                    "change: a seccomp filter is active and io_uring_setup fails — allow io_uring_setup, io_uring_enter and io_uring_register in the filter",
                ],
            ),
            (
                "old kernel, small memlock",
                |f| {
                    f.kernel = Some((5, 10));
                    f.memlock = Limit {
                        soft: 65_536,
                        hard: 65_536,
                    };
                    f.io_uring_setup = Err(libc::ENOMEM);
                },
                &[
                    "change: io_uring_setup fails (Cannot allocate memory (os error 12)) — the ring does not fit in RLIMIT_MEMLOCK on this kernel: raise it (LimitMEMLOCK=infinity in the unit, `ulimit -l unlimited`)",
                    "change: memlock limit 65536 bytes is below the 471840 bytes 4 worker rings need — kernels before 5.12 charge rings to memlock: set LimitMEMLOCK=infinity in the unit, or `ulimit -l unlimited`",
                ],
            ),
            (
                "soft nofile too low, hard fine",
                |f| {
                    f.nofile = Limit {
                        soft: 1024,
                        hard: 1 << 20,
                    }
                },
                &[
                    "change: open files limit 1024 is below 4 workers × 16384 connections + 4096 = 69632 — raise the soft limit (`ulimit -n 69632`); the unit sets LimitNOFILE=1048576",
                ],
            ),
            (
                "hard nofile too low",
                |f| {
                    f.nofile = Limit {
                        soft: 4096,
                        hard: 4096,
                    }
                },
                &[
                    "change: open files limit 4096 is below 4 workers × 16384 connections + 4096 = 69632 — raise the hard limit: LimitNOFILE=1048576 in the unit, or nofile in /etc/security/limits.conf",
                ],
            ),
            (
                "more workers than cores",
                |f| f.workers = 8,
                &[
                    "change: 8 workers on 4 cores — set workers = 4 (or --workers): thread-per-core workers sharing a core preempt each other mid-request",
                ],
            ),
            (
                "tmpfs",
                |f| {
                    if let Ok(fs) = &mut f.data_fs {
                        fs.magic = 0x0102_1994;
                    }
                },
                &[
                    "change: data directory /var/lib/sluice is on tmpfs — it lives in memory and is lost on reboot: put the data directory on ext4 or xfs",
                ],
            ),
            (
                "overlay",
                |f| {
                    if let Ok(fs) = &mut f.data_fs {
                        fs.magic = 0x794C_7630;
                    }
                },
                &[
                    "change: data directory /var/lib/sluice is on overlay — a container's overlay layer is slow to write and goes with the container: mount a volume (ext4 or xfs)",
                ],
            ),
            (
                "nfs",
                |f| {
                    if let Ok(fs) = &mut f.data_fs {
                        fs.magic = 0x6969;
                    }
                },
                &[
                    "change: data directory /var/lib/sluice is on nfs — mapped writes and fsync are not reliably durable on network or FUSE filesystems: use a local ext4 or xfs",
                ],
            ),
            (
                "under 10% free",
                |f| {
                    if let Ok(fs) = &mut f.data_fs {
                        fs.bytes_free = 99 << 30;
                    }
                },
                &[
                    "change: 99.0 GiB of 1000.0 GiB free on /var/lib/sluice — keep at least 10% and 1.0 GiB free: a full disk answers 503 to every stream; remove loaded files or grow the filesystem",
                ],
            ),
            (
                "under 1 GiB free on a small disk",
                |f| {
                    if let Ok(fs) = &mut f.data_fs {
                        fs.bytes_free = 512 << 20;
                        fs.bytes_total = 2 << 30;
                    }
                },
                &[
                    "change: 512.0 MiB of 2.0 GiB free on /var/lib/sluice — keep at least 10% and 1.0 GiB free: a full disk answers 503 to every stream; remove loaded files or grow the filesystem",
                ],
            ),
            (
                "unsynchronised clock",
                |f| {
                    f.clock = Some(ClockFacts {
                        synchronized: false,
                        source: "timedatectl",
                    })
                },
                &[
                    "change: clock is not synchronised (timedatectl) — hour folders, seal times and token expiry follow the clock: enable chrony or systemd-timesyncd",
                ],
            ),
            (
                "kernel defaults for the network and write-back",
                |f| {
                    f.sysctls[0] = Some("128".into());
                    f.sysctls[2] = Some("32768\t60999".into());
                    f.sysctls[8] = Some("0".into());
                },
                &[
                    "change: net.core.somaxconn = 128, want at least 4096 — the kernel caps each listener's accept queue (sluice asks for 4096) at this; set net.core.somaxconn = 4096 (tuning/99-sluice.conf)",
                    "change: net.ipv4.ip_local_port_range = 32768 60999, want a range covering 10240–65535 — a wide ephemeral range avoids port exhaustion on busy hosts; set net.ipv4.ip_local_port_range = 10240 65535 (tuning/99-sluice.conf)",
                    "change: vm.dirty_writeback_centisecs = 0, want between 1 and 100 — steady write-back of mapped segments instead of bursts (0 turns it off); set vm.dirty_writeback_centisecs = 100 (tuning/99-sluice.conf)",
                ],
            ),
            (
                "unparsable sysctl value",
                |f| f.sysctls[3] = Some("lots".into()),
                &[
                    "change: fs.file-max = lots, want at least 2097152 — every connection and open segment is a descriptor; set fs.file-max = 2097152 (tuning/99-sluice.conf)",
                ],
            ),
        ];
        for (name, edit, expected) in cases {
            let mut facts = healthy();
            edit(&mut facts);
            assert_eq!(changes(&facts), *expected, "{name}");
        }
    }

    #[test]
    fn tolerable_differences_need_no_change() {
        type Edit = fn(&mut HostFacts);
        let cases: &[(&str, Edit)] = &[
            ("no io_uring switch on an older kernel", |f| {
                f.io_uring_disabled = None;
                f.sysctls[9] = None;
            }),
            ("memlock small on a kernel that does not charge rings", |f| {
                f.memlock = Limit {
                    soft: 65_536,
                    hard: 65_536,
                }
            }),
            ("memlock small but enough on an old kernel", |f| {
                f.kernel = Some((5, 4));
                f.memlock = Limit {
                    soft: 8 << 20,
                    hard: 8 << 20,
                };
            }),
            ("unlimited nofile", |f| {
                f.nofile = Limit {
                    soft: u64::MAX,
                    hard: u64::MAX,
                }
            }),
            ("fewer workers than cores", |f| f.workers = 2),
            ("seccomp filter that allows io_uring", |f| f.seccomp = Some(2)),
            ("xfs", |f| {
                if let Ok(fs) = &mut f.data_fs {
                    fs.magic = 0x5846_5342;
                }
            }),
            ("larger floors, smaller ceilings", |f| {
                f.sysctls[0] = Some("65535".into());
                f.sysctls[2] = Some("1024 65535".into());
                f.sysctls[5] = Some("1".into());
            }),
        ];
        for (name, edit) in cases {
            let mut facts = healthy();
            edit(&mut facts);
            assert_eq!(changes(&facts), Vec::<String>::new(), "{name}");
        }
    }

    #[test]
    fn parsers_read_proc_formats() {
        assert_eq!(parse_kernel("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(parse_kernel("5.15.0"), Some((5, 15)));
        assert_eq!(parse_kernel("garbage"), None);
        assert_eq!(
            parse_seccomp("Name:\tx\nSeccomp:\t2\nSeccomp_filters:\t1\n"),
            Some(2)
        );
        assert_eq!(parse_seccomp("Name:\tx\n"), None);
        assert_eq!(filesystem_name(0xEF53), "ext4");
        assert_eq!(filesystem_name(0x1234), "filesystem 0x1234");
        assert_eq!(bytes_text(1023), "1023 B");
        assert_eq!(bytes_text(1536), "1.5 KiB");
    }

    /// `tuning/99-sluice.conf` and [`SYSCTLS`] name the same keys and values
    /// in the same order, and every recommended value is accepted.
    #[test]
    fn the_sysctl_file_matches_the_table() {
        let file = include_str!("../tuning/99-sluice.conf");
        let settings: Vec<(String, String)> = file
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (key, value) = line.split_once('=').expect("key = value");
                (
                    key.trim().trim_start_matches('-').to_owned(),
                    value.trim().to_owned(),
                )
            })
            .collect();
        let table: Vec<(String, String)> = SYSCTLS
            .iter()
            .map(|s| (s.name.to_owned(), s.recommended.to_owned()))
            .collect();
        assert_eq!(settings, table);
        for sysctl in SYSCTLS {
            assert_eq!(
                sysctl.accept.accepts(sysctl.recommended),
                Some(true),
                "{}",
                sysctl.name
            );
        }
    }

    /// The example configuration loads as it ships, and with every
    /// commented-out setting switched on.
    #[test]
    fn the_example_config_is_valid_with_every_setting() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/sluice.toml");
        let text = std::fs::read_to_string(&path).expect("read example config");
        let all_on: String = text
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase() || c == '[') => rest,
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let switched = all_on
            .lines()
            .filter(|line| !line.starts_with('#') && line.contains(" = "))
            .count();
        assert_eq!(switched, 19, "every setting of config.rs is in the example");
        let dir = std::env::temp_dir().join(format!("sluice-doctor-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for (name, body) in [
            ("as-shipped.toml", text.as_str()),
            ("all-on.toml", all_on.as_str()),
        ] {
            let file = dir.join(name);
            std::fs::write(&file, body).expect("write");
            let flags = crate::config::ServeFlags {
                config: Some(file),
                ..Default::default()
            };
            let config = Config::load(&flags).unwrap_or_else(|error| panic!("{name}: {error}"));
            assert_eq!(config.drain_timeout_ms, 20_000, "{name}");
        }
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
