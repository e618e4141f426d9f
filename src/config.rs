//! Raw settings turned into one validated [`Config`].
//!
//! Sources, later ones winning: embedded defaults, the TOML file given with
//! `--config`, `SLUICE_*` environment variables, command-line flags. Every
//! error names the setting at fault. Nothing past startup sees raw strings.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::limits;

/// What `sluice serve` was given on its command line.
#[derive(Debug, Default, Clone)]
pub struct ServeFlags {
    pub config: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub workers: Option<usize>,
}

/// When a 202 may be sent (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The record is in the segment's shared mapping: it survives the
    /// process being killed, not a power loss. The default.
    Process,
    /// The record was also flushed to stable storage (group commit).
    Disk,
}

/// The Linux scheduling policy of the worker threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerScheduling {
    /// `SCHED_BATCH`: a worker woken by new requests does not preempt the
    /// task running on its core; it runs when that task's slice ends or it
    /// blocks, and then serves every request that arrived meanwhile. The
    /// default (README, "Worker scheduling", says why and what it costs).
    Batch,
    /// `SCHED_OTHER`, Linux's default: a woken worker may preempt at once.
    Other,
}

impl WorkerScheduling {
    pub fn name(self) -> &'static str {
        match self {
            WorkerScheduling::Batch => "batch",
            WorkerScheduling::Other => "other",
        }
    }
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Counts reloads: 0 at start, one more per SIGHUP that took effect.
    pub generation: u64,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub workers: usize,
    pub worker_scheduling_policy: WorkerScheduling,
    pub body_bytes_max: usize,
    pub durability: Durability,
    pub seal_after_ms: i64,
    pub segment_bytes_max: usize,
    /// Open connections per worker before new ones are answered 503.
    pub connections_per_worker_max: usize,
    pub head_timeout_ms: u64,
    pub body_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    /// How long a request may wait for its record to be stored (504 after).
    pub store_timeout_ms: u64,
    /// How long shutdown waits for in-flight requests before sealing anyway.
    pub drain_timeout_ms: u64,
    /// Requests per second per tenant; tenants not listed use the default.
    pub rate_limits: RateLimits,
    pub log_level: crate::telemetry::Level,
    /// Answer every well-formed request 202 without auth, conversion or
    /// storage: the baseline the load script compares the full path with.
    pub no_work_baseline: bool,
    /// Shifts the wall clock (tests cross hour boundaries with it).
    pub clock_offset_ms: i64,
}

/// Request rates (SPEC §1: 429 "over the tenant's or stream's rate
/// limit"). A request must fit both its tenant's and its stream's limit.
#[derive(Clone, Debug, Default)]
pub struct RateLimits {
    /// Every tenant without a limit of its own.
    pub default_per_second: Option<u32>,
    pub tenants: HashMap<String, u32>,
    /// By stream id; a stream without an entry has no limit of its own.
    pub streams: HashMap<String, u32>,
}

impl RateLimits {
    pub fn for_tenant(&self, tenant: &str) -> Option<u32> {
        self.tenants.get(tenant).copied().or(self.default_per_second)
    }

    pub fn for_stream(&self, stream_id: &str) -> Option<u32> {
        self.streams.get(stream_id).copied()
    }

    /// Whether any limit is set at all (the request path skips the
    /// buckets otherwise).
    pub fn is_empty(&self) -> bool {
        self.default_per_second.is_none() && self.tenants.is_empty() && self.streams.is_empty()
    }
}

/// The settings as they are written in the TOML file; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    admin_listen: Option<String>,
    workers: Option<usize>,
    worker_scheduling_policy: Option<String>,
    body_bytes_max: Option<usize>,
    durability: Option<String>,
    seal_after_seconds: Option<u64>,
    segment_bytes_max: Option<usize>,
    connections_per_worker_max: Option<usize>,
    head_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    store_timeout_ms: Option<u64>,
    drain_timeout_ms: Option<u64>,
    log_level: Option<String>,
    no_work_baseline: Option<bool>,
    clock_offset_ms: Option<i64>,
    rate_limit: Option<RawRateLimit>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    default_per_second: Option<u32>,
    #[serde(default)]
    tenants: HashMap<String, u32>,
    #[serde(default)]
    streams: HashMap<String, u32>,
}

/// The embedded defaults (SPEC §7).
pub const LISTEN_DEFAULT: &str = "127.0.0.1:8080";
pub const ADMIN_LISTEN_DEFAULT: &str = "127.0.0.1:8081";
pub const SEAL_AFTER_SECONDS_DEFAULT: u64 = 60;
pub const SEGMENT_BYTES_MAX_DEFAULT: usize = 64 << 20;
pub const CONNECTIONS_PER_WORKER_MAX_DEFAULT: usize = 16_384;
pub const HEAD_TIMEOUT_MS_DEFAULT: u64 = 10_000;
pub const BODY_TIMEOUT_MS_DEFAULT: u64 = 30_000;
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 75_000;
pub const STORE_TIMEOUT_MS_DEFAULT: u64 = 10_000;
pub const DRAIN_TIMEOUT_MS_DEFAULT: u64 = 20_000;

/// Environment variables read, each overriding the file setting of the same
/// name without the prefix (lowercased).
const ENV_KEYS: &[&str] = &[
    "SLUICE_LISTEN",
    "SLUICE_ADMIN_LISTEN",
    "SLUICE_WORKERS",
    "SLUICE_WORKER_SCHEDULING_POLICY",
    "SLUICE_BODY_BYTES_MAX",
    "SLUICE_DURABILITY",
    "SLUICE_SEAL_AFTER_SECONDS",
    "SLUICE_SEGMENT_BYTES_MAX",
    "SLUICE_LOG_LEVEL",
    "SLUICE_NO_WORK_BASELINE",
    "SLUICE_CLOCK_OFFSET_MS",
];

/// `SLUICE_*` variables read elsewhere (the CLI's data directory).
const ENV_KEYS_ELSEWHERE: &[&str] = &["SLUICE_DATA_DIR"];

/// The `SLUICE_*` variables in `names` that nothing reads: most likely a
/// misspelt setting (`SLUICE_SEAL_AFTER`), which the server names in a
/// warning at start rather than ignore in silence.
pub fn unknown_env_keys(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut unknown: Vec<String> = names
        .filter(|name| {
            name.starts_with("SLUICE_")
                && !ENV_KEYS.contains(&name.as_str())
                && !ENV_KEYS_ELSEWHERE.contains(&name.as_str())
        })
        .collect();
    unknown.sort();
    unknown
}

impl Config {
    /// Loads defaults, then the file, then the environment, then the flags.
    pub fn load(flags: &ServeFlags) -> Result<Config, String> {
        let mut raw = match &flags.config {
            Some(path) => read_file(path)?,
            None => RawConfig::default(),
        };
        apply_env(&mut raw, |key| std::env::var(key).ok())?;
        if let Some(listen) = flags.listen {
            raw.listen = Some(listen.to_string());
        }
        if let Some(admin) = flags.admin_listen {
            raw.admin_listen = Some(admin.to_string());
        }
        if let Some(workers) = flags.workers {
            raw.workers = Some(workers);
        }
        validate(raw)
    }

    /// Reads every source again (SIGHUP). Settings that only take effect
    /// at start keep their running values; their names are returned so the
    /// reload can say which changes wait for a restart.
    pub fn reload(&self, flags: &ServeFlags) -> Result<(Config, Vec<&'static str>), String> {
        let mut next = Config::load(flags)?;
        next.generation = self.generation + 1;
        let mut restart_needed = Vec::new();
        macro_rules! keep {
            ($($field:ident),*) => {$(
                if next.$field != self.$field {
                    restart_needed.push(stringify!($field));
                    next.$field = self.$field.clone();
                }
            )*};
        }
        keep!(
            listen,
            admin_listen,
            workers,
            worker_scheduling_policy,
            durability,
            segment_bytes_max,
            no_work_baseline,
            clock_offset_ms
        );
        Ok((next, restart_needed))
    }
}

impl crate::control::snapshot::Generational for Config {
    fn generation(&self) -> u64 {
        self.generation
    }
}

fn read_file(path: &Path) -> Result<RawConfig, String> {
    let text =
        std::fs::read_to_string(path).map_err(|error| format!("config file {}: {error}", path.display()))?;
    toml::from_str(&text).map_err(|error| {
        format!(
            "config file {}: {}",
            path.display(),
            error.to_string().trim_end().replace('\n', " ")
        )
    })
}

fn apply_env(raw: &mut RawConfig, get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
    for key in ENV_KEYS {
        let Some(value) = get(key) else { continue };
        let bad = |what: &str| format!("{key}={value:?}: {what}");
        match *key {
            "SLUICE_LISTEN" => raw.listen = Some(value.clone()),
            "SLUICE_ADMIN_LISTEN" => raw.admin_listen = Some(value.clone()),
            "SLUICE_WORKERS" => raw.workers = Some(value.parse().map_err(|_| bad("not a whole number"))?),
            "SLUICE_WORKER_SCHEDULING_POLICY" => raw.worker_scheduling_policy = Some(value.clone()),
            "SLUICE_BODY_BYTES_MAX" => {
                raw.body_bytes_max = Some(value.parse().map_err(|_| bad("not a whole number"))?)
            }
            "SLUICE_DURABILITY" => raw.durability = Some(value.clone()),
            "SLUICE_SEAL_AFTER_SECONDS" => {
                raw.seal_after_seconds = Some(value.parse().map_err(|_| bad("not a whole number"))?)
            }
            "SLUICE_SEGMENT_BYTES_MAX" => {
                raw.segment_bytes_max = Some(value.parse().map_err(|_| bad("not a whole number"))?)
            }
            "SLUICE_LOG_LEVEL" => raw.log_level = Some(value.clone()),
            "SLUICE_NO_WORK_BASELINE" => {
                raw.no_work_baseline = Some(value.parse().map_err(|_| bad("not true or false"))?)
            }
            "SLUICE_CLOCK_OFFSET_MS" => {
                raw.clock_offset_ms = Some(value.parse().map_err(|_| bad("not a whole number"))?)
            }
            _ => unreachable!("every key in ENV_KEYS is handled"),
        }
    }
    Ok(())
}

fn validate(raw: RawConfig) -> Result<Config, String> {
    let listen = parse_addr("listen", raw.listen.as_deref().unwrap_or(LISTEN_DEFAULT))?;
    let admin_listen = parse_addr(
        "admin_listen",
        raw.admin_listen.as_deref().unwrap_or(ADMIN_LISTEN_DEFAULT),
    )?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = raw.workers.unwrap_or(cores);
    if !(1..=1024).contains(&workers) {
        return Err(format!("workers = {workers}: must be between 1 and 1024"));
    }
    let worker_scheduling_policy = match raw.worker_scheduling_policy.as_deref().unwrap_or("batch") {
        "batch" => WorkerScheduling::Batch,
        "other" => WorkerScheduling::Other,
        other => {
            return Err(format!(
                "worker_scheduling_policy = {other:?}: must be \"batch\" or \"other\""
            ));
        }
    };
    let body_bytes_max = raw.body_bytes_max.unwrap_or(limits::BODY_BYTES_MAX_DEFAULT);
    if !(1..=limits::BODY_BYTES_MAX_CEILING).contains(&body_bytes_max) {
        return Err(format!(
            "body_bytes_max = {body_bytes_max}: must be between 1 and {}",
            limits::BODY_BYTES_MAX_CEILING
        ));
    }
    let durability = match raw.durability.as_deref().unwrap_or("process") {
        "process" => Durability::Process,
        "disk" => Durability::Disk,
        other => return Err(format!("durability = {other:?}: must be \"process\" or \"disk\"")),
    };
    let seal_after_seconds = raw.seal_after_seconds.unwrap_or(SEAL_AFTER_SECONDS_DEFAULT);
    if !(1..=3600).contains(&seal_after_seconds) {
        return Err(format!(
            "seal_after_seconds = {seal_after_seconds}: must be between 1 and 3600"
        ));
    }
    let segment_bytes_max = raw.segment_bytes_max.unwrap_or(SEGMENT_BYTES_MAX_DEFAULT);
    let segment_min = 2 * body_bytes_max + 64;
    if segment_bytes_max < segment_min || segment_bytes_max > (1 << 34) {
        return Err(format!(
            "segment_bytes_max = {segment_bytes_max}: must be between {segment_min} (twice the body limit) and 16 GiB"
        ));
    }
    let log_level = match raw.log_level.as_deref() {
        None => crate::telemetry::Level::Info,
        Some(text) => crate::telemetry::Level::parse(text)
            .ok_or_else(|| format!("log_level = {text:?}: must be debug, info, warn or error"))?,
    };
    let rate_limit = raw.rate_limit.unwrap_or_default();
    for (tenant, rate) in &rate_limit.tenants {
        if *rate == 0 {
            return Err(format!("rate_limit.tenants.{tenant} = 0: must be at least 1"));
        }
        // A name no tenant can have would silently never be limited.
        if !crate::control::ids::is_tenant_name(tenant) {
            return Err(format!(
                "rate_limit.tenants: {tenant:?} is not a tenant name ([a-z0-9][a-z0-9-]{{0,62}})"
            ));
        }
    }
    for (stream, rate) in &rate_limit.streams {
        if *rate == 0 {
            return Err(format!("rate_limit.streams.{stream} = 0: must be at least 1"));
        }
        if !crate::control::ids::is_stream_id(stream) {
            return Err(format!(
                "rate_limit.streams: {stream:?} is not a stream id (is- and 8 letters)"
            ));
        }
    }
    if rate_limit.default_per_second == Some(0) {
        return Err("rate_limit.default_per_second = 0: must be at least 1".to_owned());
    }
    let positive = |name: &str, value: Option<u64>, default: u64| -> Result<u64, String> {
        match value.unwrap_or(default) {
            0 => Err(format!("{name} = 0: must be at least 1")),
            ms => Ok(ms),
        }
    };
    Ok(Config {
        generation: 0,
        listen,
        admin_listen,
        workers,
        worker_scheduling_policy,
        body_bytes_max,
        durability,
        seal_after_ms: (seal_after_seconds * 1000) as i64,
        segment_bytes_max,
        connections_per_worker_max: positive(
            "connections_per_worker_max",
            raw.connections_per_worker_max.map(|max| max as u64),
            CONNECTIONS_PER_WORKER_MAX_DEFAULT as u64,
        )? as usize,
        head_timeout_ms: positive("head_timeout_ms", raw.head_timeout_ms, HEAD_TIMEOUT_MS_DEFAULT)?,
        body_timeout_ms: positive("body_timeout_ms", raw.body_timeout_ms, BODY_TIMEOUT_MS_DEFAULT)?,
        idle_timeout_ms: positive("idle_timeout_ms", raw.idle_timeout_ms, IDLE_TIMEOUT_MS_DEFAULT)?,
        store_timeout_ms: positive("store_timeout_ms", raw.store_timeout_ms, STORE_TIMEOUT_MS_DEFAULT)?,
        drain_timeout_ms: positive("drain_timeout_ms", raw.drain_timeout_ms, DRAIN_TIMEOUT_MS_DEFAULT)?,
        rate_limits: RateLimits {
            default_per_second: rate_limit.default_per_second,
            tenants: rate_limit.tenants,
            streams: rate_limit.streams,
        },
        log_level,
        no_work_baseline: raw.no_work_baseline.unwrap_or(false),
        clock_offset_ms: raw.clock_offset_ms.unwrap_or(0),
    })
}

fn parse_addr(name: &str, text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{name} = {text:?}: not an address like 127.0.0.1:8080"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let config = validate(RawConfig::default()).expect("defaults are valid");
        assert_eq!(config.listen, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(config.admin_listen, "127.0.0.1:8081".parse().expect("addr"));
        assert_eq!(config.body_bytes_max, 260_096);
        assert_eq!(config.durability, Durability::Process);
        assert_eq!(config.worker_scheduling_policy, WorkerScheduling::Batch);
        assert_eq!(config.seal_after_ms, 60_000);
        assert!(config.rate_limits.for_tenant("acme").is_none());
    }

    #[test]
    fn file_settings_and_errors_name_the_field() {
        let raw: RawConfig = toml::from_str(
            "durability = \"disk\"\nworkers = 3\nworker_scheduling_policy = \"other\"\n[rate_limit]\ndefault_per_second = 10\ntenants = { acme = 500 }\n",
        )
        .expect("parses");
        let config = validate(raw).expect("valid");
        assert_eq!(config.durability, Durability::Disk);
        assert_eq!(config.workers, 3);
        assert_eq!(config.worker_scheduling_policy, WorkerScheduling::Other);
        assert_eq!(config.rate_limits.for_tenant("acme"), Some(500));
        assert_eq!(config.rate_limits.for_tenant("other"), Some(10));
        assert_eq!(config.rate_limits.for_stream("is-AbCDefGH"), None);
        let raw: RawConfig = toml::from_str("[rate_limit]\nstreams = { is-AbCDefGH = 7 }\n").expect("parses");
        let config = validate(raw).expect("valid");
        assert_eq!(config.rate_limits.for_stream("is-AbCDefGH"), Some(7));
        assert_eq!(config.rate_limits.for_tenant("acme"), None);
        let raw: RawConfig = toml::from_str("[rate_limit]\nstreams = { is-AbCDefGH = 0 }\n").expect("parses");
        assert!(
            validate(raw)
                .expect_err("zero")
                .starts_with("rate_limit.streams.is-AbCDefGH")
        );

        let bad: &[(&str, &str)] = &[
            ("durability = \"fast\"", "durability"),
            ("listen = \"nowhere\"", "listen"),
            ("workers = 0", "workers"),
            ("worker_scheduling_policy = \"fifo\"", "worker_scheduling_policy"),
            ("seal_after_seconds = 0", "seal_after_seconds"),
            ("body_bytes_max = 100000000000", "body_bytes_max"),
            ("log_level = \"loud\"", "log_level"),
            ("connections_per_worker_max = 0", "connections_per_worker_max"),
            (
                "[rate_limit]\ntenants = { \"Bad Name\" = 5 }",
                "rate_limit.tenants",
            ),
            ("[rate_limit]\nstreams = { xyz = 5 }", "rate_limit.streams"),
        ];
        for (text, field) in bad {
            let raw: RawConfig = toml::from_str(text).expect("parses");
            let error = validate(raw).expect_err(text);
            assert!(error.starts_with(field), "{error}");
        }
        let unknown = toml::from_str::<RawConfig>("lisen = \"x\"").expect_err("unknown field");
        assert!(unknown.to_string().contains("lisen"));
    }

    #[test]
    fn unknown_sluice_variables_are_named() {
        let names = [
            "SLUICE_SEAL_AFTER",
            "SLUICE_WORKERS",
            "SLUICE_DATA_DIR",
            "PATH",
            "SLUICE_A",
        ];
        assert_eq!(
            unknown_env_keys(names.iter().map(|name| name.to_string())),
            ["SLUICE_A", "SLUICE_SEAL_AFTER"]
        );
    }

    #[test]
    fn environment_overrides_and_reports_bad_values() {
        let mut raw = RawConfig::default();
        apply_env(&mut raw, |key| (key == "SLUICE_WORKERS").then(|| "5".to_owned())).expect("ok");
        assert_eq!(raw.workers, Some(5));
        let error = apply_env(&mut raw, |key| {
            (key == "SLUICE_WORKERS").then(|| "many".to_owned())
        })
        .expect_err("bad");
        assert!(error.starts_with("SLUICE_WORKERS"));
    }
}
