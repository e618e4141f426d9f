//! Named events: each one writes a log line and bumps its counter together,
//! so a metric and its log line cannot drift apart.
//!
//! Log lines are one JSON object each on stderr (journald keeps them as
//! they are). Secrets and tokens are never passed to an event.

use std::io::Write;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// Severity, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Level> {
        match text {
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" => Some(Level::Warn),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

static MIN_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Sets the lowest level that is logged.
pub fn set_level(level: Level) {
    MIN_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Logs nothing more (events are still counted): for CLI commands that
/// share code with the server but answer on their own (`group run`, whose
/// outcome is its own lines, SPEC §7's one-line reason on failure).
pub fn silence() {
    MIN_LEVEL.store(Level::Error as u8 + 1, Ordering::Relaxed);
}

/// A value in a log line.
pub enum Field<'a> {
    Str(&'a str),
    U64(u64),
    I64(i64),
}

impl<'a> From<&'a str> for Field<'a> {
    fn from(value: &'a str) -> Field<'a> {
        Field::Str(value)
    }
}

impl From<u64> for Field<'_> {
    fn from(value: u64) -> Self {
        Field::U64(value)
    }
}

impl From<usize> for Field<'_> {
    fn from(value: usize) -> Self {
        Field::U64(value as u64)
    }
}

impl From<i64> for Field<'_> {
    fn from(value: i64) -> Self {
        Field::I64(value)
    }
}

/// A named event with its counter.
pub struct Event {
    pub name: &'static str,
    pub level: Level,
    pub count: AtomicU64,
    /// The second (since the epoch) the current rate-limit window started.
    window_second: AtomicU64,
    /// Lines written in the current window.
    window_lines: AtomicU64,
    /// Lines not written since the last line that was.
    suppressed: AtomicU64,
}

/// Lines one event may write per second. An error repeated for every
/// request would otherwise flood the journal; the counter still counts all
/// of them, and the next line written says how many were suppressed.
pub const LINES_PER_EVENT_PER_SECOND: u64 = 10;

impl Event {
    pub const fn new(name: &'static str, level: Level) -> Event {
        Event {
            name,
            level,
            count: AtomicU64::new(0),
            window_second: AtomicU64::new(0),
            window_lines: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Counts the event and logs it with `fields`.
    pub fn emit(&self, fields: &[(&str, Field<'_>)]) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if (self.level as u8) < MIN_LEVEL.load(Ordering::Relaxed) {
            return;
        }
        if !self.admit_line() {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut line = render(self.level, self.name, fields);
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        if suppressed > 0 {
            line.truncate(line.len() - 2);
            line.push_str(&format!(",\"suppressed\":{suppressed}}}\n"));
        }
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    /// True when this line fits in the current second's budget.
    fn admit_line(&self) -> bool {
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if self.window_second.swap(second, Ordering::Relaxed) != second {
            self.window_lines.store(0, Ordering::Relaxed);
        }
        self.window_lines.fetch_add(1, Ordering::Relaxed) < LINES_PER_EVENT_PER_SECOND
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

fn render(level: Level, name: &str, fields: &[(&str, Field<'_>)]) -> String {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let mut line = format!(
        r#"{{"ts":"{now}","level":"{}","event":{}"#,
        level.as_str(),
        quote(name)
    );
    for (key, value) in fields {
        line.push(',');
        line.push_str(&quote(key));
        line.push(':');
        match value {
            Field::Str(text) => line.push_str(&quote(text)),
            Field::U64(number) => line.push_str(&number.to_string()),
            Field::I64(number) => line.push_str(&number.to_string()),
        }
    }
    line.push_str("}\n");
    line
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).expect("a str always serialises")
}

pub static STARTING: Event = Event::new("starting", Level::Info);
pub static RECOVERED: Event = Event::new("recovered", Level::Info);
pub static LISTENING: Event = Event::new("listening", Level::Info);
pub static READY: Event = Event::new("ready", Level::Info);
pub static DRAINING: Event = Event::new("draining", Level::Info);
pub static STOPPED: Event = Event::new("stopped", Level::Info);
pub static SEGMENT_SEALED: Event = Event::new("segment-sealed", Level::Debug);
pub static SEAL_FAILED: Event = Event::new("seal-failed", Level::Error);
pub static SNAPSHOT_PUBLISHED: Event = Event::new("snapshot-published", Level::Debug);
pub static SNAPSHOT_FAILED: Event = Event::new("snapshot-failed", Level::Error);
pub static REQUEST_FAILED: Event = Event::new("request-failed", Level::Warn);
pub static FLUSH_FAILED: Event = Event::new("flush-failed", Level::Error);
pub static ACCEPT_FAILED: Event = Event::new("accept-failed", Level::Warn);
pub static RELOAD: Event = Event::new("reload", Level::Info);
pub static RELOAD_FAILED: Event = Event::new("reload-failed", Level::Error);
pub static CONFIG_WARNING: Event = Event::new("config-warning", Level::Warn);

/// Bytes of segments sealed since start.
pub static SEALED_BYTES: AtomicU64 = AtomicU64::new(0);

/// How late (ms) the last segment was sealed after it was retired.
pub static SEAL_LAG_MS: AtomicU64 = AtomicU64::new(0);

/// Milliseconds spent in courier group runs (scheduled, catch-up or by
/// hand through a running appliance) since start.
pub static GROUP_RUN_MS: AtomicU64 = AtomicU64::new(0);

/// Status codes counted one by one; anything else is counted as `other`.
pub const COUNTED_STATUSES: [u16; 15] = [
    202, 400, 401, 404, 405, 413, 414, 415, 417, 429, 431, 500, 503, 504, 100,
];

/// Responses counted by status code, without a lock.
#[derive(Default)]
pub struct StatusCounts([AtomicU64; COUNTED_STATUSES.len() + 1]);

impl StatusCounts {
    pub fn count(&self, status: u16) {
        let slot = COUNTED_STATUSES
            .iter()
            .position(|&s| s == status)
            .unwrap_or(COUNTED_STATUSES.len());
        self.0[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Each status label (`"202"`, …, `"other"`) with its count.
    pub fn snapshot(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        COUNTED_STATUSES
            .iter()
            .map(|status| status.to_string())
            .chain(["other".to_owned()])
            .zip(self.0.iter().map(|count| count.load(Ordering::Relaxed)))
    }
}

/// [`StatusCounts`] kept per worker, each on its own cache lines, so
/// workers answering requests to the same stream do not contend for one
/// line. Workers beyond [`STATUS_SHARDS`] share shards.
pub struct ShardedStatusCounts(Box<[Shard]>);

/// How many shards a [`ShardedStatusCounts`] has.
pub const STATUS_SHARDS: usize = 8;

#[derive(Default)]
#[repr(align(128))]
struct Shard(StatusCounts);

impl Default for ShardedStatusCounts {
    fn default() -> Self {
        ShardedStatusCounts((0..STATUS_SHARDS).map(|_| Shard::default()).collect())
    }
}

impl ShardedStatusCounts {
    /// Counts one response of `worker`.
    pub fn count(&self, worker: usize, status: u16) {
        self.0[worker % STATUS_SHARDS].0.count(status);
    }

    /// Each status label with its count over all workers.
    pub fn snapshot(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        let mut totals = [0u64; COUNTED_STATUSES.len() + 1];
        for shard in self.0.iter() {
            for (total, count) in totals.iter_mut().zip(shard.0.0.iter()) {
                *total += count.load(Ordering::Relaxed);
            }
        }
        COUNTED_STATUSES
            .iter()
            .map(|status| status.to_string())
            .chain(["other".to_owned()])
            .zip(totals)
    }
}

/// Every named event, for `/metrics`.
pub static ALL_EVENTS: &[&Event] = &[
    &STARTING,
    &RECOVERED,
    &LISTENING,
    &READY,
    &DRAINING,
    &STOPPED,
    &SEGMENT_SEALED,
    &SEAL_FAILED,
    &SNAPSHOT_PUBLISHED,
    &SNAPSHOT_FAILED,
    &FLUSH_FAILED,
    &REQUEST_FAILED,
    &ACCEPT_FAILED,
    &RELOAD,
    &RELOAD_FAILED,
    &CONFIG_WARNING,
    &crate::courier::schedule::GROUP_RUN_STARTED,
    &crate::courier::schedule::GROUP_RUN_SUCCEEDED,
    &crate::courier::schedule::GROUP_RUN_FAILED,
    &crate::courier::schedule::GROUP_FIRE_SKIPPED,
    &crate::courier::schedule::SCHEDULER_FAILED,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_lines_are_rate_limited_but_counted() {
        static NOISY: Event = Event::new("noisy-test", Level::Debug);
        for _ in 0..100 {
            NOISY.emit(&[]);
        }
        assert_eq!(NOISY.count(), 100);
        // Written or not depends on the level; the budget is spent either way
        // only for lines that pass the level, so check the counter alone here
        // and the budget arithmetic directly.
        let event = Event::new("budget", Level::Error);
        let admitted = (0..50).filter(|_| event.admit_line()).count() as u64;
        assert!(admitted <= 2 * LINES_PER_EVENT_PER_SECOND, "{admitted}");
        assert!(admitted >= LINES_PER_EVENT_PER_SECOND.min(50));
    }

    #[test]
    fn lines_are_json_objects() {
        let line = render(Level::Warn, "x", &[("path", "a\"b".into()), ("n", 3u64.into())]);
        let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(value["level"], "warn");
        assert_eq!(value["event"], "x");
        assert_eq!(value["path"], "a\"b");
        assert_eq!(value["n"], 3);
        assert!(line.ends_with("}\n"));
    }
}
