//! Courier group schedules and the scheduler (SPEC §6): when a group fires,
//! which files its run looks at, how long it waits for them and for the
//! groups it comes after, and the thread inside `sluice serve` that fires
//! enabled groups.
//!
//! What it promises:
//!
//! - **Cron lines** have exactly five fields (minute, hour, day of month,
//!   month, day of week with 0 and 7 both Sunday) and are read by the
//!   `croner` crate on the group's wall clock; zones are IANA names read by
//!   `chrono-tz`. A refused line says which field is wrong and why.
//! - **Daylight saving time**: a wall time is resolved to an instant so that
//!   every matching wall time fires exactly once. A wall time that is
//!   skipped (spring forward: 02:30 on 2026-03-08 in Los Angeles) fires at
//!   the first instant after the gap (03:00 PDT), and several skipped wall
//!   times that land on that same instant fire once. A wall time that
//!   repeats (fall back: 01:30 on 2026-11-01 in Los Angeles) fires only at
//!   its first occurrence (01:30 PDT), never again an hour later. This is
//!   what Vixie cron does, and it means a daily group never misses a day
//!   and never runs twice in one.
//! - **The window** of a scheduled run is `[scheduled − offset, scheduled)`.
//!   By default the subtraction is in UTC (an offset of 24 hours is 24 real
//!   hours). With `file_dates_in_tz` it is done on the zone's wall clock and
//!   the result resolved as above: an offset of 24 hours then means "the
//!   same wall time the day before", which is 23 real hours across spring
//!   forward and 25 across fall back. A run by hand for a day D looks at the
//!   UTC day D, or with `file_dates_in_tz` at D from midnight to midnight in
//!   the zone.
//! - **Wait time**: a courier whose window holds no sealed file at all is
//!   asked again every [`WAIT_POLL_MS`] until one appears or the wait time
//!   after the scheduled time (for a run by hand: after its start) is over;
//!   then that courier fails with `no sealed files for courier "X" in
//!   [from, to) after waiting 2h`. The other couriers still run. A window
//!   whose sealed files were all loaded before does not wait: the courier
//!   runs at once, loads nothing and succeeds. Files still `.open` never
//!   make a run wait: what is sealed is loaded, the rest by a later run.
//! - **Constraints**: a group with `after = [G]` first waits (within the same
//!   wait time) for G's run for G's latest fire time at or before its own
//!   scheduled time; it goes on once that run succeeded and fails with
//!   `constraint group "G" failed for this window` if it failed. While G's
//!   run is going, or G is enabled and due but not started yet (groups on
//!   the same schedule fire in no set order), it waits past the wait time
//!   for that run's outcome. Runs by
//!   hand do not wait for constraints: the operator chose the days, as the
//!   seed warns.
//! - **Missed fire times**: when the scheduler starts, each enabled group
//!   whose latest fire time is at most its wait time ago (one hour when the
//!   wait time is 0), no earlier than the group's creation, and has no
//!   finished scheduled run for that fire time is
//!   run once, now, for that fire time (trigger `catch-up`). Older missed
//!   fire times are not run; their files are picked up by a later run whose
//!   window covers them, or by `group run --day`. Runs left `running` by a
//!   stopped or crashed appliance are marked `interrupted` first, so they
//!   are caught up in the same way.
//! - While running, the scheduler fires each group at most once per fire
//!   time, and never starts a group whose previous run is still going (the
//!   fire is skipped and logged). If the clock steps back, nothing fires
//!   until it has passed the last time already looked at again.
//!
//! Time reaches this module only through [`Pacer`], and couriers only
//! through [`CourierRunner`], so tests run hours of schedule in
//! milliseconds with fake ones.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::clock::Clock;
use crate::control::groups::{self, CourierResult, GroupError, GroupRecord, RunStatus};
use crate::control::store::Store;
use crate::courier::run::{self, RunSummary, Window};
use crate::telemetry::{Event, Level};

/// The longest wait time. A week covers a late weekly export; longer waits
/// would hold a run (and its thread) open across many of its own fires.
pub const WAIT_SECONDS_MAX: i64 = 7 * 86_400;

/// The wait time when `--wait` is not given: fail at once when nothing is
/// there, as a plain cron job would.
pub const WAIT_SECONDS_DEFAULT: i64 = 0;

/// The shortest offset: a window must hold at least a minute.
pub const OFFSET_SECONDS_MIN: i64 = 60;

/// The longest offset: a month reaches back over the longest gap between
/// two fires of a monthly group.
pub const OFFSET_SECONDS_MAX: i64 = 31 * 86_400;

/// The offset the seed prescribes: the window reaches 24 hours back.
pub const OFFSET_SECONDS_DEFAULT: i64 = 86_400;

/// How many fire times `group next` prints by default, and at most.
pub const NEXT_COUNT_DEFAULT: usize = 5;
pub const NEXT_COUNT_MAX: usize = 100;

/// How often a waiting run asks again for files or for its constraint
/// groups' runs. Each ask lists a stream's folders for the window.
pub const WAIT_POLL_MS: u64 = 5_000;

/// The same for a run by hand, whose operator is waiting at a terminal
/// (and may press Ctrl-C).
pub const MANUAL_POLL_MS: u64 = 1_000;

/// How often the scheduler looks for due groups. Bounds how late after its
/// fire time a group starts.
pub const TICK_MS: u64 = 500;

/// How far back a missed fire time is caught up at start when a group's
/// wait time is 0.
pub const CATCH_UP_GRACE_SECONDS_WITHOUT_WAIT: i64 = 3_600;

/// The longest a wall-clock gap or repeat can be, in hours. The largest
/// shift in the tz database is 2 hours (Antarctica/Troll); searches that
/// must see across one look this far.
const DST_SHIFT_HOURS_MAX: i64 = 3;

/// The longest wall-clock gap searched for its end, in minutes. Samoa
/// skipped a whole day in 2011; two days is beyond anything recorded.
const GAP_MINUTES_MAX: i64 = 48 * 60;

/// How many cron matches one search looks at before giving up. A search
/// skips at most the matches of one repeated hour (60 for `* * * * *`) and
/// those of a lookback of [`DST_SHIFT_HOURS_MAX`] hours.
const FIRE_SEARCH_STEPS_MAX: usize = 1_000;

/// The five fields, their names in messages and their ranges.
const CRON_FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
];

/// A group fired (or was caught up or run by hand).
pub static GROUP_RUN_STARTED: Event = Event::new("group-run-started", Level::Info);
/// A group run ended with every courier succeeding.
pub static GROUP_RUN_SUCCEEDED: Event = Event::new("group-run-succeeded", Level::Info);
/// A group run ended with at least one courier failing (or was interrupted).
pub static GROUP_RUN_FAILED: Event = Event::new("group-run-failed", Level::Warn);
/// A fire time came while the group's previous run was still going.
pub static GROUP_FIRE_SKIPPED: Event = Event::new("group-fire-skipped", Level::Warn);
/// The scheduler could not read or write the control store.
pub static SCHEDULER_FAILED: Event = Event::new("scheduler-failed", Level::Error);

/// Why a cron line or zone was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleError {
    Cron { line: String, reason: String },
    Zone { name: String },
}

impl ScheduleError {
    /// A machine-readable kind, kebab-case.
    pub fn kind(&self) -> &'static str {
        match self {
            ScheduleError::Cron { .. } => "invalid-cron",
            ScheduleError::Zone { .. } => "unknown-time-zone",
        }
    }
}

impl std::fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScheduleError::Cron { line, reason } => write!(f, "invalid cron {line:?}: {reason}"),
            ScheduleError::Zone { name } => write!(
                f,
                "unknown time zone {name:?}: use an IANA name such as America/Los_Angeles"
            ),
        }
    }
}

impl std::error::Error for ScheduleError {}

/// A cron line read in a zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Matched against wall-clock times, never against instants, so that
    /// the DST rule of this module is ours and not the crate's.
    cron: Cron,
    zone: Tz,
}

impl Schedule {
    /// Parses a five-field cron line and an IANA zone name.
    pub fn parse(line: &str, zone: &str) -> Result<Schedule, ScheduleError> {
        let cron = parse_cron(line).map_err(|reason| ScheduleError::Cron {
            line: line.to_string(),
            reason,
        })?;
        let zone = zone.parse::<Tz>().map_err(|_| ScheduleError::Zone {
            name: zone.to_string(),
        })?;
        Ok(Schedule { cron, zone })
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Resolution is non-decreasing in wall time and resolves the wall
        // time of `after` to at most `after`, so no earlier wall time can
        // fire after `after`: the search starts there.
        let mut wall = minute_floor(after.with_timezone(&self.zone).naive_local());
        let mut inclusive = true;
        for _ in 0..FIRE_SEARCH_STEPS_MAX {
            wall = self.cron.find_next_occurrence(&wall, inclusive).ok()?;
            inclusive = false;
            let at = resolve_wall(self.zone, wall);
            if at > after {
                return Some(at);
            }
        }
        None
    }

    /// The last fire time at or before `at`.
    pub fn latest_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // In the second pass of a repeated hour, wall times after the wall
        // time of `at` resolve to their first pass, before `at`: the search
        // starts the longest shift later and walks back.
        let start = at.with_timezone(&self.zone).naive_local() + TimeDelta::hours(DST_SHIFT_HOURS_MAX);
        let mut wall = minute_floor(start);
        let mut inclusive = true;
        for _ in 0..FIRE_SEARCH_STEPS_MAX {
            wall = self.cron.find_previous_occurrence(&wall, inclusive).ok()?;
            inclusive = false;
            let fire = resolve_wall(self.zone, wall);
            if fire <= at {
                return Some(fire);
            }
        }
        None
    }

    /// The next `count` fire times after `after`.
    pub fn next_fires(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut fires = Vec::with_capacity(count);
        let mut cursor = after;
        while fires.len() < count {
            let Some(next) = self.next_after(cursor) else {
                break;
            };
            fires.push(next);
            cursor = next;
        }
        fires
    }
}

/// Checks the field count and the numeric ranges (for messages that say
/// exactly what is wrong), then lets croner read the line.
fn parse_cron(line: &str) -> Result<Cron, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() != CRON_FIELDS.len() {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
            fields.len()
        ));
    }
    for (field, &(name, min, max)) in fields.iter().zip(CRON_FIELDS.iter()) {
        check_field_ranges(field, name, min, max)?;
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let cron = parse_fields(&parser, line, &fields)?;
    // Every field valid, yet no date matches (February 30th, April 31st):
    // such a group would never run, which is surely not what was meant.
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .expect("invariant: a valid date");
    if cron.find_next_occurrence(&epoch, true).is_err() {
        return Err("no date matches it, so it would never fire".to_string());
    }
    Ok(cron)
}

/// croner's reading of a line whose ranges are checked; a refusal names
/// the field croner refuses.
fn parse_fields(parser: &CronParser, line: &str, fields: &[&str]) -> Result<Cron, String> {
    parser.parse(line).map_err(|error| {
        // Find the field croner refuses by parsing it alone among stars.
        for (index, (field, (name, _, _))) in fields.iter().zip(CRON_FIELDS.iter()).enumerate() {
            let mut probe = ["*"; 5];
            probe[index] = field;
            if parser.parse(&probe.join(" ")).is_err() {
                return format!("{name} field {field:?}: {error}");
            }
        }
        error.to_string()
    })
}

/// Refuses numbers outside a field's range and steps of 0; names (`MON`,
/// `JAN`) and croner's extensions (`L`, `W`, `#`) are left to croner.
fn check_field_ranges(field: &str, name: &str, min: u32, max: u32) -> Result<(), String> {
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        if step.and_then(|step| step.parse::<u32>().ok()) == Some(0) {
            return Err(format!("{name} step 0 is not allowed"));
        }
        for end in range.split('-') {
            if let Ok(value) = end.parse::<u32>() {
                if value < min || value > max {
                    return Err(format!("{name} {value} is out of range {min}-{max}"));
                }
            }
        }
    }
    Ok(())
}

fn minute_floor(wall: NaiveDateTime) -> NaiveDateTime {
    wall.with_second(0)
        .and_then(|wall| wall.with_nanosecond(0))
        .expect("invariant: second 0 and nanosecond 0 exist in every minute")
}

/// The instant a wall time means in `zone`, by this module's DST rule: the
/// first occurrence of a repeated time, the first instant after the gap for
/// a skipped one.
pub fn resolve_wall(zone: Tz, wall: NaiveDateTime) -> DateTime<Utc> {
    if let Some(at) = zone.from_local_datetime(&wall).earliest() {
        return at.with_timezone(&Utc);
    }
    let mut probe = minute_floor(wall);
    for _ in 0..GAP_MINUTES_MAX {
        probe += TimeDelta::minutes(1);
        if let Some(at) = zone.from_local_datetime(&probe).earliest() {
            return at.with_timezone(&Utc);
        }
    }
    // No recorded gap is this long; read the wall time with the offset in
    // force at that instant rather than fail.
    let offset = zone.offset_from_utc_datetime(&wall);
    Utc.from_utc_datetime(&(wall - offset_delta(&offset)))
}

fn offset_delta(offset: &<Tz as TimeZone>::Offset) -> TimeDelta {
    use chrono::Offset as _;
    TimeDelta::seconds(i64::from(offset.fix().local_minus_utc()))
}

/// The half-open range of instants a run looks for files in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileWindow {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl std::fmt::Display for FileWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {})", rfc3339_utc(self.from), rfc3339_utc(self.to))
    }
}

/// The window of a run scheduled at `scheduled` (see the module docs).
pub fn scheduled_window(
    zone: Tz,
    file_dates_in_tz: bool,
    offset_seconds: i64,
    scheduled: DateTime<Utc>,
) -> FileWindow {
    let offset = TimeDelta::seconds(offset_seconds);
    let from = if file_dates_in_tz {
        resolve_wall(zone, scheduled.with_timezone(&zone).naive_local() - offset)
    } else {
        scheduled - offset
    };
    FileWindow { from, to: scheduled }
}

/// The window of a run by hand for `day`: the UTC day, or with
/// `file_dates_in_tz` the day from midnight to midnight in `zone`.
pub fn day_window(zone: Tz, file_dates_in_tz: bool, day: NaiveDate) -> FileWindow {
    let start = day.and_time(chrono::NaiveTime::MIN);
    let end = start + TimeDelta::days(1);
    if file_dates_in_tz {
        FileWindow {
            from: resolve_wall(zone, start),
            to: resolve_wall(zone, end),
        }
    } else {
        FileWindow {
            from: start.and_utc(),
            to: end.and_utc(),
        }
    }
}

/// Parses `90s`, `15m`, `2h`, `1d`, `1h30m` or `0` into seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let refuse = || {
        format!("invalid duration {text:?}: use a number and a unit s, m, h or d, like 90s, 15m, 2h or 1d")
    };
    if text == "0" {
        return Ok(0);
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for character in text.chars() {
        if character.is_ascii_digit() {
            digits.push(character);
            continue;
        }
        let unit = match character {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(refuse()),
        };
        let value: i64 = digits.parse().map_err(|_| refuse())?;
        total = value
            .checked_mul(unit)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(refuse)?;
        digits.clear();
    }
    if !digits.is_empty() || text.is_empty() {
        return Err(refuse());
    }
    Ok(total)
}

/// Seconds in the largest unit that divides them: `90s`, `90m`, `2h`, `1d`.
pub fn format_duration(seconds: i64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds != 0 && seconds % size == 0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

fn rfc3339_utc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A fire time as an operator in the group's zone reads it.
pub fn format_in_zone(zone: Tz, at: DateTime<Utc>) -> String {
    at.with_timezone(&zone).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The couriers, as this module uses them: a seam so tests can fake them.
pub trait CourierRunner: Send + Sync {
    /// Whether `tenant` has a courier of this name.
    fn courier_exists(&self, tenant: &str, courier: &str) -> anyhow::Result<bool>;
    /// How many sealed files of the courier's stream lie in `window`,
    /// loaded or not.
    fn window_files(&self, tenant: &str, courier: &str, window: &Window) -> anyhow::Result<usize>;
    /// Runs the courier over `window`.
    fn run(&self, tenant: &str, courier: &str, window: &Window, trigger: &str) -> anyhow::Result<RunSummary>;
}

/// The real couriers of a data directory.
pub struct StoreCourierRunner {
    pub data_dir: PathBuf,
}

impl CourierRunner for StoreCourierRunner {
    fn courier_exists(&self, tenant: &str, courier: &str) -> anyhow::Result<bool> {
        let store = Store::open(&self.data_dir)?;
        Ok(groups::courier_exists(store.connection(), tenant, courier)?)
    }

    fn window_files(&self, tenant: &str, courier: &str, window: &Window) -> anyhow::Result<usize> {
        Ok(run::window_files(&self.data_dir, tenant, courier, window)?.len())
    }

    fn run(&self, tenant: &str, courier: &str, window: &Window, trigger: &str) -> anyhow::Result<RunSummary> {
        run::run_courier(&self.data_dir, tenant, courier, window, trigger)
    }
}

/// Time as the scheduler sees it: a seam so tests never sleep for hours.
pub trait Pacer: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    fn sleep(&self, duration: Duration);
}

/// The appliance's clock and real sleeping.
pub struct ClockPacer {
    pub clock: Clock,
}

impl Pacer for ClockPacer {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.clock.now_ms())
            .expect("invariant: the clock reads a time chrono can hold")
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// Why a group run was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The scheduler reached a fire time.
    Schedule,
    /// The scheduler started after a fire time it missed (module docs).
    CatchUp,
    /// `group run`.
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch-up",
            Trigger::Manual => "manual",
        }
    }
}

/// Everything one group run needs, decided before it starts.
#[derive(Clone, Debug)]
pub struct RunPlan {
    pub tenant: String,
    pub group: String,
    pub couriers: Vec<String>,
    pub after: Vec<String>,
    /// The fire time, or the start of the day for a run by hand.
    pub scheduled: DateTime<Utc>,
    pub range: FileWindow,
    /// What the couriers are given: a UTC day for a run by hand without the
    /// zone flag (exactly what `courier run --day` looks at), else `range`.
    pub window: Window,
    pub trigger: Trigger,
    pub wait_seconds: i64,
    /// When waiting for files or constraints ends: the scheduled time plus
    /// the wait time, so a caught-up run waits only what is left of it.
    pub deadline: DateTime<Utc>,
}

impl RunPlan {
    /// A run for the fire time `scheduled`.
    pub fn scheduled(group: &GroupRecord, zone: Tz, scheduled: DateTime<Utc>, trigger: Trigger) -> RunPlan {
        let settings = &group.settings;
        let range = scheduled_window(
            zone,
            settings.file_dates_in_tz,
            settings.offset_seconds,
            scheduled,
        );
        RunPlan {
            tenant: group.tenant.clone(),
            group: group.name.clone(),
            couriers: settings.couriers.clone(),
            after: settings.after.clone(),
            scheduled,
            range,
            window: Window::Range {
                from: range.from,
                to: range.to,
            },
            trigger,
            wait_seconds: settings.wait_seconds,
            deadline: scheduled + TimeDelta::seconds(settings.wait_seconds),
        }
    }

    /// A run by hand for `day`, started at `now`: it waits for files like
    /// a scheduled run, but not for constraints. The wait counts from the
    /// end of the window, as for a scheduled run, and never past `now` plus
    /// the wait time: a past day with no file fails after one look (files
    /// are filed by the hour they arrive in, so none can still come).
    pub fn manual(group: &GroupRecord, zone: Tz, day: NaiveDate, now: DateTime<Utc>) -> RunPlan {
        let settings = &group.settings;
        let range = day_window(zone, settings.file_dates_in_tz, day);
        let window = if settings.file_dates_in_tz {
            Window::Range {
                from: range.from,
                to: range.to,
            }
        } else {
            Window::Day(day)
        };
        RunPlan {
            tenant: group.tenant.clone(),
            group: group.name.clone(),
            couriers: settings.couriers.clone(),
            after: Vec::new(),
            scheduled: range.from,
            range,
            window,
            trigger: Trigger::Manual,
            wait_seconds: settings.wait_seconds,
            deadline: now.min(range.to) + TimeDelta::seconds(settings.wait_seconds),
        }
    }
}

/// How a group run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupOutcome {
    pub status: RunStatus,
    pub message: String,
    pub couriers: Vec<CourierResult>,
}

/// What a run uses besides the store.
pub struct RunEnv<'a> {
    pub runner: &'a dyn CourierRunner,
    pub pacer: &'a dyn Pacer,
    /// Set when the appliance stops; a waiting run then ends `interrupted`.
    pub stop: &'a AtomicBool,
    pub poll: Duration,
}

/// The appliance is stopping.
struct Interrupted;

/// Records, runs and records the end of one group run; returns its id and
/// outcome.
pub fn run_group(
    store: &mut Store,
    env: &RunEnv<'_>,
    plan: &RunPlan,
) -> Result<(i64, GroupOutcome), GroupError> {
    let run_id = groups::run_begin(
        store,
        &plan.tenant,
        &plan.group,
        plan.scheduled,
        (plan.range.from, plan.range.to),
        plan.trigger.as_str(),
    )?;
    GROUP_RUN_STARTED.emit(&[
        ("tenant", plan.tenant.as_str().into()),
        ("group", plan.group.as_str().into()),
        ("run", run_id.into()),
        ("trigger", plan.trigger.as_str().into()),
        ("scheduled", rfc3339_utc(plan.scheduled).as_str().into()),
    ]);
    let started = std::time::Instant::now();
    let mut outcome = execute(store, env, plan);
    let took_ms = started.elapsed().as_millis() as u64;
    crate::telemetry::GROUP_RUN_MS.fetch_add(took_ms, std::sync::atomic::Ordering::Relaxed);
    // SPEC §5: a run reports its outcome, files, records and duration (the
    // group's, waiting included; each courier's own is in its result).
    if outcome.status == RunStatus::Succeeded {
        outcome.message = format!(
            "{}; Completed in {}",
            outcome.message,
            run::humanize_duration(took_ms)
        );
    }
    groups::run_finish(store, run_id, outcome.status, &outcome.message, &outcome.couriers)?;
    let event = if outcome.status == RunStatus::Succeeded {
        &GROUP_RUN_SUCCEEDED
    } else {
        &GROUP_RUN_FAILED
    };
    event.emit(&[
        ("tenant", plan.tenant.as_str().into()),
        ("group", plan.group.as_str().into()),
        ("run", run_id.into()),
        ("status", outcome.status.as_str().into()),
        ("message", outcome.message.as_str().into()),
    ]);
    Ok((run_id, outcome))
}

/// Waits for constraints (not for a run by hand) and files, then runs
/// every courier whose window holds a sealed file, in order.
fn execute(store: &Store, env: &RunEnv<'_>, plan: &RunPlan) -> GroupOutcome {
    let interrupted = || GroupOutcome {
        status: RunStatus::Interrupted,
        message: "the run was stopped while it was waiting".to_string(),
        couriers: Vec::new(),
    };
    if plan.trigger != Trigger::Manual {
        match await_constraints(store, env, plan) {
            Err(Interrupted) => return interrupted(),
            Ok(Err(message)) => return not_run(plan, message),
            Ok(Ok(())) => {}
        }
    }
    let ready = match await_files(env, plan) {
        Err(Interrupted) => return interrupted(),
        Ok(ready) => ready,
    };
    let trigger = format!("group:{}", plan.group);
    let couriers: Vec<CourierResult> = plan
        .couriers
        .iter()
        .zip(ready)
        .map(|(courier, ready)| match ready {
            Err(message) => not_run_result(courier, message),
            Ok(()) => match env.runner.run(&plan.tenant, courier, &plan.window, &trigger) {
                Ok(summary) => courier_result(courier, summary),
                Err(error) => not_run_result(courier, format!("{error:#}")),
            },
        })
        .collect();
    summarize(couriers)
}

/// A run that fails before any courier starts: every courier is listed as
/// not run, with the reason.
fn not_run(plan: &RunPlan, message: String) -> GroupOutcome {
    GroupOutcome {
        status: RunStatus::Failed,
        couriers: plan
            .couriers
            .iter()
            .map(|courier| not_run_result(courier, format!("not run: {message}")))
            .collect(),
        message,
    }
}

fn not_run_result(courier: &str, message: String) -> CourierResult {
    CourierResult {
        courier: courier.to_string(),
        succeeded: false,
        run_id: None,
        files: 0,
        records: 0,
        rejected: 0,
        duration_ms: 0,
        message,
    }
}

fn courier_result(courier: &str, summary: RunSummary) -> CourierResult {
    CourierResult {
        courier: courier.to_string(),
        succeeded: summary.succeeded,
        run_id: Some(summary.run_id),
        files: summary.files,
        records: summary.records,
        rejected: summary.rejected,
        duration_ms: summary.duration_ms,
        message: summary.message,
    }
}

/// The group succeeds only when every courier did.
fn summarize(couriers: Vec<CourierResult>) -> GroupOutcome {
    let failures: Vec<String> = couriers
        .iter()
        .filter(|result| !result.succeeded)
        .map(|result| format!("courier {:?}: {}", result.courier, result.message))
        .collect();
    if failures.is_empty() {
        let files: u64 = couriers.iter().map(|result| result.files).sum();
        let records: u64 = couriers.iter().map(|result| result.records).sum();
        GroupOutcome {
            status: RunStatus::Succeeded,
            message: format!(
                "{} of {} couriers succeeded: {}, {}",
                couriers.len(),
                couriers.len(),
                super::run::counted(files, "file"),
                super::run::counted(records, "record")
            ),
            couriers,
        }
    } else {
        GroupOutcome {
            status: RunStatus::Failed,
            message: failures.join("; "),
            couriers,
        }
    }
}

/// Sleeps one poll unless the appliance is stopping.
fn pause(env: &RunEnv<'_>) -> Result<(), Interrupted> {
    if env.stop.load(Ordering::Acquire) {
        return Err(Interrupted);
    }
    env.pacer.sleep(env.poll);
    if env.stop.load(Ordering::Acquire) {
        return Err(Interrupted);
    }
    Ok(())
}

/// Waits until every constraint group's run for this window succeeded.
/// The inner `Err` is the reason the group run fails.
///
/// The wait time bounds the wait, except while the constraint group's run
/// is still coming: going now, or not started yet although the group is
/// enabled and its fire time is less than [`CONSTRAINT_START_GRACE_SECONDS`]
/// ago (two groups on the same schedule fire in no set order, so the one
/// that waits may look first). Such a run will end, and this one goes on
/// or fails by its outcome instead of by who looked first.
fn await_constraints(
    store: &Store,
    env: &RunEnv<'_>,
    plan: &RunPlan,
) -> Result<Result<(), String>, Interrupted> {
    for after in &plan.after {
        loop {
            let coming = match constraint_state(store, &plan.tenant, after, plan.scheduled) {
                Ok(Constraint {
                    status: Some(RunStatus::Succeeded),
                    ..
                }) => break,
                Ok(Constraint {
                    status: Some(RunStatus::Failed),
                    ..
                }) => {
                    return Ok(Err(format!("constraint group {after:?} failed for this window")));
                }
                Err(message) => return Ok(Err(message)),
                Ok(Constraint {
                    status: Some(RunStatus::Running),
                    ..
                }) => true,
                Ok(Constraint {
                    status: None,
                    due: Some(fire),
                }) => env.pacer.now() < fire + TimeDelta::seconds(CONSTRAINT_START_GRACE_SECONDS),
                // Not due, or interrupted (a caught-up run of it may follow
                // within the wait time): keep waiting within it.
                Ok(_) => false,
            };
            if env.pacer.now() >= plan.deadline && !coming {
                return Ok(Err(format!(
                    "constraint group {after:?} has no successful run for this window after waiting {}",
                    format_duration(plan.wait_seconds)
                )));
            }
            pause(env)?;
        }
    }
    Ok(Ok(()))
}

/// How long after its fire time an enabled constraint group that has not
/// started its run yet is still expected to (the scheduler starts due
/// groups within [`TICK_MS`]; the rest is room for a busy machine).
pub const CONSTRAINT_START_GRACE_SECONDS: i64 = 60;

/// What a group run needs to know about one of its constraint groups.
struct Constraint {
    /// The status of its scheduled run for its latest fire time at or
    /// before the waiting run's scheduled time.
    status: Option<RunStatus>,
    /// That fire time, if the group is enabled (so the scheduler will run
    /// it).
    due: Option<DateTime<Utc>>,
}

/// The state of `group`'s scheduled run for its latest fire time at or
/// before `scheduled`.
fn constraint_state(
    store: &Store,
    tenant: &str,
    group: &str,
    scheduled: DateTime<Utc>,
) -> Result<Constraint, String> {
    let record = groups::show(store, tenant, group).map_err(|error| match error {
        GroupError::Unknown { .. } => format!("constraint group {group:?} no longer exists"),
        other => format!("cannot read constraint group {group:?}: {other}"),
    })?;
    let schedule = record.schedule().map_err(|error| error.to_string())?;
    let Some(theirs) = schedule.latest_at_or_before(scheduled) else {
        return Ok(Constraint {
            status: None,
            due: None,
        });
    };
    let status = groups::run_status(store, tenant, group, theirs).map_err(|error| error.to_string())?;
    Ok(Constraint {
        status,
        due: record.settings.enabled.then_some(theirs),
    })
}

/// Polls each courier until its window holds a sealed file (loaded before
/// or not: a window whose files were all loaded runs at once and loads
/// nothing) or the deadline passes; one result per courier, `Err` saying
/// why it will not run.
fn await_files(env: &RunEnv<'_>, plan: &RunPlan) -> Result<Vec<Result<(), String>>, Interrupted> {
    // What the message says it waited: the wait time, less what had passed
    // of it before the first look (a past day run by hand: nothing).
    // (Rounded up: the first look comes a few milliseconds after the run
    // starts, and "14s" for a 15 s wait would be wrong the other way.)
    let left_ms = (plan.deadline - env.pacer.now()).num_milliseconds();
    let waited_seconds = left_ms
        .saturating_add(999)
        .div_euclid(1000)
        .clamp(0, plan.wait_seconds);
    let mut state: Vec<Option<Result<(), String>>> = vec![None; plan.couriers.len()];
    loop {
        for (courier, state) in plan.couriers.iter().zip(state.iter_mut()) {
            if state.is_some() {
                continue;
            }
            match env.runner.window_files(&plan.tenant, courier, &plan.window) {
                Ok(0) => {}
                Ok(_) => *state = Some(Ok(())),
                Err(error) => *state = Some(Err(format!("cannot list files: {error:#}"))),
            }
        }
        if state.iter().all(Option::is_some) || env.pacer.now() >= plan.deadline {
            break;
        }
        pause(env)?;
    }
    let waited = format_duration(waited_seconds);
    Ok(plan
        .couriers
        .iter()
        .zip(state)
        .map(|(courier, state)| {
            state.unwrap_or_else(|| {
                Err(format!(
                    "no sealed files for courier {courier:?} in {} after waiting {waited}",
                    plan.range
                ))
            })
        })
        .collect())
}

/// Which groups fire between two looks at the clock.
#[derive(Debug)]
pub struct Scheduler {
    /// Every fire time up to here has been dealt with.
    cursor: DateTime<Utc>,
}

impl Scheduler {
    pub fn new(start: DateTime<Utc>) -> Scheduler {
        Scheduler { cursor: start }
    }

    /// The enabled groups with a fire time in `(cursor, now]`, each with
    /// its latest such fire time (several only after the process was
    /// suspended; the earlier ones are skipped like missed ones), as
    /// indexes into `groups`.
    pub fn due(&mut self, groups: &[GroupRecord], now: DateTime<Utc>) -> Vec<(usize, DateTime<Utc>)> {
        if now <= self.cursor {
            return Vec::new();
        }
        let mut due = Vec::new();
        for (index, group) in groups.iter().enumerate() {
            if !group.settings.enabled {
                continue;
            }
            let Ok(schedule) = group.schedule() else {
                continue;
            };
            // The forward search usually takes one step; the backward one,
            // which looks hours ahead first, runs only when something is due.
            match schedule.next_after(self.cursor) {
                Some(next) if next <= now => {
                    due.push((index, schedule.latest_at_or_before(now).unwrap_or(next)));
                }
                _ => {}
            }
        }
        self.cursor = now;
        due
    }
}

/// How long after a fire time a missed run is still caught up.
pub fn catch_up_grace_seconds(wait_seconds: i64) -> i64 {
    if wait_seconds == 0 {
        CATCH_UP_GRACE_SECONDS_WITHOUT_WAIT
    } else {
        wait_seconds
    }
}

/// The missed-fire policy of the module docs: `finished(group, fire)` says
/// whether the group already has a succeeded or failed scheduled run for
/// that fire time.
pub fn catch_up_due(
    groups: &[GroupRecord],
    now: DateTime<Utc>,
    finished: impl Fn(&GroupRecord, DateTime<Utc>) -> bool,
) -> Vec<(usize, DateTime<Utc>)> {
    let mut due = Vec::new();
    for (index, group) in groups.iter().enumerate() {
        if !group.settings.enabled {
            continue;
        }
        let Ok(schedule) = group.schedule() else {
            continue;
        };
        let Some(fire) = schedule.latest_at_or_before(now) else {
            continue;
        };
        // A fire time from before the group existed was never missed.
        let created = DateTime::parse_from_rfc3339(&group.created_at).map(|at| at.with_timezone(&Utc));
        if created.is_ok_and(|created| fire < created) {
            continue;
        }
        let grace = TimeDelta::seconds(catch_up_grace_seconds(group.settings.wait_seconds));
        if now - fire <= grace && !finished(group, fire) {
            due.push((index, fire));
        }
    }
    due
}

/// How often the scheduler and its runs look at the clock.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    pub tick: Duration,
    pub poll: Duration,
}

impl Default for Pace {
    fn default() -> Pace {
        Pace {
            tick: Duration::from_millis(TICK_MS),
            poll: Duration::from_millis(WAIT_POLL_MS),
        }
    }
}

/// Starts the scheduler thread of `sluice serve`. It returns once `stop` is
/// set and every run it started has ended (waiting runs end at once,
/// `interrupted`; a courier already loading finishes its run).
pub fn spawn_scheduler(data_dir: PathBuf, clock: Clock, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    let runner: Arc<dyn CourierRunner> = Arc::new(StoreCourierRunner {
        data_dir: data_dir.clone(),
    });
    let pacer: Arc<dyn Pacer> = Arc::new(ClockPacer { clock });
    std::thread::Builder::new()
        .name("sluice-scheduler".to_string())
        .spawn(move || run_scheduler(&data_dir, runner, pacer, stop, Pace::default()))
        .expect("invariant: the OS can start one more thread while the appliance starts")
}

/// The groups whose run is going, by tenant and name.
type InFlight = Arc<Mutex<HashSet<(String, String)>>>;

/// The scheduler loop (see [`spawn_scheduler`]); tests call it with fakes.
pub fn run_scheduler(
    data_dir: &Path,
    runner: Arc<dyn CourierRunner>,
    pacer: Arc<dyn Pacer>,
    stop: Arc<AtomicBool>,
    pace: Pace,
) {
    let Some(mut store) = open_store(data_dir, pacer.as_ref(), &stop, pace) else {
        return;
    };
    if let Err(error) = groups::mark_interrupted(&mut store) {
        report(&error.to_string());
    }
    let in_flight: InFlight = Arc::default();
    let mut runs: Vec<JoinHandle<()>> = Vec::new();
    let start = pacer.now();
    match groups::list_all(&store) {
        Ok(all) => {
            let finished = |group: &GroupRecord, fire| {
                // An unreadable status counts as finished: better a missed
                // catch-up than a second load attempt on a sick database.
                !matches!(
                    groups::run_status(&store, &group.tenant, &group.name, fire),
                    Ok(None | Some(RunStatus::Running | RunStatus::Interrupted))
                )
            };
            for (index, fire) in catch_up_due(&all, start, finished) {
                let context = RunContext::new(data_dir, &runner, &pacer, &stop, &in_flight, pace);
                runs.extend(context.start(&all[index], fire, Trigger::CatchUp));
            }
        }
        Err(error) => report(&error.to_string()),
    }
    let mut scheduler = Scheduler::new(start);
    while !stop.load(Ordering::Acquire) {
        let now = pacer.now();
        match groups::list_all(&store) {
            Ok(all) => {
                for (index, fire) in scheduler.due(&all, now) {
                    let context = RunContext::new(data_dir, &runner, &pacer, &stop, &in_flight, pace);
                    runs.extend(context.start(&all[index], fire, Trigger::Schedule));
                }
            }
            Err(error) => report(&error.to_string()),
        }
        runs.retain(|run| !run.is_finished());
        pacer.sleep(pace.tick);
    }
    for run in runs {
        let _ = run.join();
    }
}

fn report(error: &str) {
    SCHEDULER_FAILED.emit(&[("error", error.into())]);
}

/// Opens the store, retrying every tick until it opens or `stop` is set.
fn open_store(data_dir: &Path, pacer: &dyn Pacer, stop: &AtomicBool, pace: Pace) -> Option<Store> {
    loop {
        match Store::open(data_dir) {
            Ok(store) => return Some(store),
            Err(error) => report(&error.to_string()),
        }
        if stop.load(Ordering::Acquire) {
            return None;
        }
        pacer.sleep(pace.tick);
    }
}

/// What a run thread takes with it.
struct RunContext {
    data_dir: PathBuf,
    runner: Arc<dyn CourierRunner>,
    pacer: Arc<dyn Pacer>,
    stop: Arc<AtomicBool>,
    in_flight: InFlight,
    pace: Pace,
}

impl RunContext {
    fn new(
        data_dir: &Path,
        runner: &Arc<dyn CourierRunner>,
        pacer: &Arc<dyn Pacer>,
        stop: &Arc<AtomicBool>,
        in_flight: &InFlight,
        pace: Pace,
    ) -> RunContext {
        RunContext {
            data_dir: data_dir.to_path_buf(),
            runner: Arc::clone(runner),
            pacer: Arc::clone(pacer),
            stop: Arc::clone(stop),
            in_flight: Arc::clone(in_flight),
            pace,
        }
    }

    /// Starts a thread running `group` for `fire`, unless its previous run
    /// is still going.
    fn start(self, group: &GroupRecord, fire: DateTime<Utc>, trigger: Trigger) -> Option<JoinHandle<()>> {
        let key = (group.tenant.clone(), group.name.clone());
        let fresh = self
            .in_flight
            .lock()
            .expect("invariant: no thread panics holding the in-flight lock")
            .insert(key.clone());
        if !fresh {
            GROUP_FIRE_SKIPPED.emit(&[
                ("tenant", group.tenant.as_str().into()),
                ("group", group.name.as_str().into()),
                ("scheduled", rfc3339_utc(fire).as_str().into()),
            ]);
            return None;
        }
        let schedule = match group.schedule() {
            Ok(schedule) => schedule,
            Err(error) => {
                self.release(&key);
                report(&error.to_string());
                return None;
            }
        };
        let plan = RunPlan::scheduled(group, schedule.zone(), fire, trigger);
        let in_flight = Arc::clone(&self.in_flight);
        let spawned = std::thread::Builder::new()
            .name("sluice-group-run".to_string())
            .spawn(move || {
                self.run(&plan);
                self.release(&(plan.tenant.clone(), plan.group.clone()));
            });
        match spawned {
            Ok(handle) => Some(handle),
            Err(error) => {
                in_flight
                    .lock()
                    .expect("invariant: no thread panics holding the in-flight lock")
                    .remove(&key);
                report(&format!("cannot start a group run thread: {error}"));
                None
            }
        }
    }

    fn run(&self, plan: &RunPlan) {
        let mut store = match Store::open(&self.data_dir) {
            Ok(store) => store,
            Err(error) => return report(&error.to_string()),
        };
        let env = RunEnv {
            runner: self.runner.as_ref(),
            pacer: self.pacer.as_ref(),
            stop: &self.stop,
            poll: self.pace.poll,
        };
        if let Err(error) = run_group(&mut store, &env, plan) {
            report(&error.to_string());
        }
    }

    fn release(&self, key: &(String, String)) {
        self.in_flight
            .lock()
            .expect("invariant: no thread panics holding the in-flight lock")
            .remove(key);
    }
}

/// Runs `group` by hand for `day` (waiting for files, not for
/// constraints). Setting `stop` (the CLI does on SIGINT or SIGTERM) ends a
/// waiting run as `interrupted` within [`MANUAL_POLL_MS`], so it is never
/// left `running` in the history.
pub fn run_by_hand(
    store: &mut Store,
    runner: &dyn CourierRunner,
    group: &GroupRecord,
    day: NaiveDate,
    stop: &AtomicBool,
) -> Result<(i64, GroupOutcome), GroupError> {
    let schedule = group.schedule()?;
    let pacer = ClockPacer {
        clock: Clock::system(),
    };
    let plan = RunPlan::manual(group, schedule.zone(), day, pacer.now());
    let env = RunEnv {
        runner,
        pacer: &pacer,
        stop,
        poll: Duration::from_millis(MANUAL_POLL_MS),
    };
    run_group(store, &env, &plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::groups::GroupSettings;
    use std::collections::HashMap;
    use std::sync::atomic::AtomicUsize;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse::<DateTime<Utc>>().expect("RFC 3339 time")
    }

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("date")
    }

    /// The next `count` fire times after `after`, as UTC strings.
    fn fires(line: &str, zone: &str, after: &str, count: usize) -> Vec<String> {
        Schedule::parse(line, zone)
            .expect("schedule")
            .next_fires(at(after), count)
            .into_iter()
            .map(rfc3339_utc)
            .collect()
    }

    #[test]
    fn cron_lines_good() {
        let good = [
            "* * * * *",
            "30 8 * * *",
            "30 8 * * 0",
            "30 8 * * 7",
            "0 9-17 * * 1-5",
            "*/15 * * * *",
            "0,30 */2 1,15 * *",
            "0 0 1 jan *",
            "0 6 * * MON-FRI",
            "5 4 * 2-11/3 6",
            // Only in leap years, but it does fire.
            "0 0 29 2 *",
        ];
        for line in good {
            assert!(Schedule::parse(line, "UTC").is_ok(), "{line}");
        }
    }

    #[test]
    fn cron_lines_refused_with_reasons() {
        let bad = [
            (
                "61 * * * *",
                "invalid cron \"61 * * * *\": minute 61 is out of range 0-59",
            ),
            (
                "0 24 * * *",
                "invalid cron \"0 24 * * *\": hour 24 is out of range 0-23",
            ),
            (
                "0 0 0 * *",
                "invalid cron \"0 0 0 * *\": day-of-month 0 is out of range 1-31",
            ),
            (
                "0 0 * 13 *",
                "invalid cron \"0 0 * 13 *\": month 13 is out of range 1-12",
            ),
            (
                "0 0 * * 8",
                "invalid cron \"0 0 * * 8\": day-of-week 8 is out of range 0-7",
            ),
            (
                "0 0 * * 1-9",
                "invalid cron \"0 0 * * 1-9\": day-of-week 9 is out of range 0-7",
            ),
            (
                "*/0 * * * *",
                "invalid cron \"*/0 * * * *\": minute step 0 is not allowed",
            ),
            (
                "* * * *",
                "invalid cron \"* * * *\": expected 5 fields (minute hour day-of-month month day-of-week), found 4",
            ),
            (
                "0 * * * * *",
                "invalid cron \"0 * * * * *\": expected 5 fields (minute hour day-of-month month day-of-week), found 6",
            ),
            (
                "",
                "invalid cron \"\": expected 5 fields (minute hour day-of-month month day-of-week), found 0",
            ),
            (
                "0 0 31 2 *",
                "invalid cron \"0 0 31 2 *\": no date matches it, so it would never fire",
            ),
            (
                "0 0 31 4,6,9,11 *",
                "invalid cron \"0 0 31 4,6,9,11 *\": no date matches it, so it would never fire",
            ),
        ];
        for (line, expected) in bad {
            let error = Schedule::parse(line, "UTC").expect_err(line);
            assert_eq!(error.to_string(), expected);
            assert_eq!(error.kind(), "invalid-cron");
        }
        // Croner's own refusals are attributed to the field.
        let error = Schedule::parse("x * * * *", "UTC").expect_err("x");
        assert!(
            error
                .to_string()
                .starts_with("invalid cron \"x * * * *\": minute field \"x\": "),
            "{error}"
        );
        let zone = Schedule::parse("* * * * *", "Mars/Olympus").expect_err("zone");
        assert_eq!(
            zone.to_string(),
            "unknown time zone \"Mars/Olympus\": use an IANA name such as America/Los_Angeles"
        );
        assert_eq!(zone.kind(), "unknown-time-zone");
    }

    #[test]
    fn day_of_week_zero_and_seven_are_sunday() {
        // 2026-03-01 is a Sunday.
        let expected = vec!["2026-03-01T08:30:00Z", "2026-03-08T08:30:00Z"];
        assert_eq!(fires("30 8 * * 0", "UTC", "2026-02-28T00:00:00Z", 2), expected);
        assert_eq!(fires("30 8 * * 7", "UTC", "2026-02-28T00:00:00Z", 2), expected);
    }

    #[test]
    fn spring_forward_fires_once_at_the_end_of_the_gap() {
        let cases: &[(&str, &str, &str, &[&str])] = &[
            // Los Angeles skips 02:00-03:00 PST on 2026-03-08: 02:30 fires at 03:00 PDT.
            (
                "30 2 * * *",
                "America/Los_Angeles",
                "2026-03-07T00:00:00Z",
                &[
                    "2026-03-07T10:30:00Z",
                    "2026-03-08T10:00:00Z",
                    "2026-03-09T09:30:00Z",
                ],
            ),
            // Berlin skips 02:00-03:00 CET on 2026-03-29: 02:30 fires at 03:00 CEST.
            (
                "30 2 * * *",
                "Europe/Berlin",
                "2026-03-28T00:00:00Z",
                &[
                    "2026-03-28T01:30:00Z",
                    "2026-03-29T01:00:00Z",
                    "2026-03-30T00:30:00Z",
                ],
            ),
            // Several skipped wall times landing on one instant fire once.
            (
                "*/30 * * * *",
                "America/Los_Angeles",
                "2026-03-08T08:59:00Z",
                &[
                    "2026-03-08T09:00:00Z",
                    "2026-03-08T09:30:00Z",
                    "2026-03-08T10:00:00Z",
                    "2026-03-08T10:30:00Z",
                ],
            ),
        ];
        for (line, zone, after, expected) in cases {
            assert_eq!(
                fires(line, zone, after, expected.len()),
                *expected,
                "{line} {zone}"
            );
        }
    }

    #[test]
    fn fall_back_fires_only_the_first_occurrence() {
        let cases: &[(&str, &str, &str, &[&str])] = &[
            // Los Angeles repeats 01:00-02:00 on 2026-11-01: 01:30 PDT only.
            (
                "30 1 * * *",
                "America/Los_Angeles",
                "2026-10-31T00:00:00Z",
                &[
                    "2026-10-31T08:30:00Z",
                    "2026-11-01T08:30:00Z",
                    "2026-11-02T09:30:00Z",
                ],
            ),
            // Berlin repeats 02:00-03:00 on 2026-10-25: 02:30 CEST only.
            (
                "30 2 * * *",
                "Europe/Berlin",
                "2026-10-24T00:00:00Z",
                &[
                    "2026-10-24T00:30:00Z",
                    "2026-10-25T00:30:00Z",
                    "2026-10-26T01:30:00Z",
                ],
            ),
            // An every-half-hour group pauses through the repeated hour.
            (
                "*/30 * * * *",
                "America/Los_Angeles",
                "2026-11-01T07:45:00Z",
                &[
                    "2026-11-01T08:00:00Z",
                    "2026-11-01T08:30:00Z",
                    "2026-11-01T10:00:00Z",
                ],
            ),
        ];
        for (line, zone, after, expected) in cases {
            assert_eq!(
                fires(line, zone, after, expected.len()),
                *expected,
                "{line} {zone}"
            );
        }
        // Asked from inside the second pass, the next fire is after it.
        assert_eq!(
            fires("30 1 * * *", "America/Los_Angeles", "2026-11-01T09:10:00Z", 1),
            vec!["2026-11-02T09:30:00Z"]
        );
    }

    #[test]
    fn latest_fire_at_or_before() {
        let cases = [
            (
                "30 1 * * *",
                "America/Los_Angeles",
                "2026-11-01T09:45:00Z",
                "2026-11-01T08:30:00Z",
            ),
            (
                "30 1 * * *",
                "America/Los_Angeles",
                "2026-11-01T08:30:00Z",
                "2026-11-01T08:30:00Z",
            ),
            (
                "30 1 * * *",
                "America/Los_Angeles",
                "2026-11-01T08:29:59Z",
                "2026-10-31T08:30:00Z",
            ),
            (
                "30 2 * * *",
                "America/Los_Angeles",
                "2026-03-08T10:05:00Z",
                "2026-03-08T10:00:00Z",
            ),
            (
                "30 2 * * *",
                "Europe/Berlin",
                "2026-03-29T00:59:00Z",
                "2026-03-28T01:30:00Z",
            ),
            ("* * * * *", "UTC", "2026-05-05T10:00:59Z", "2026-05-05T10:00:00Z"),
        ];
        for (line, zone, now, expected) in cases {
            let schedule = Schedule::parse(line, zone).expect("schedule");
            let latest = schedule.latest_at_or_before(at(now)).map(rfc3339_utc);
            assert_eq!(latest.as_deref(), Some(expected), "{line} {zone} {now}");
        }
    }

    #[test]
    fn next_fires_print_in_the_zone() {
        let schedule = Schedule::parse("30 2 * * *", "America/Los_Angeles").expect("schedule");
        let printed: Vec<String> = schedule
            .next_fires(at("2026-03-07T00:00:00Z"), 3)
            .into_iter()
            .map(|fire| format_in_zone(schedule.zone(), fire))
            .collect();
        assert_eq!(
            printed,
            vec![
                "2026-03-07T02:30:00-08:00",
                "2026-03-08T03:00:00-07:00",
                "2026-03-09T02:30:00-07:00"
            ]
        );
    }

    #[test]
    fn scheduled_windows() {
        let la: Tz = "America/Los_Angeles".parse().expect("zone");
        let berlin: Tz = "Europe/Berlin".parse().expect("zone");
        let cases = [
            // UTC: 24 real hours back, whatever the zone does.
            (la, false, 86_400, "2026-03-08T15:30:00Z", "2026-03-07T15:30:00Z"),
            // In the zone: the same wall time the day before, 23 h across spring forward...
            (la, true, 86_400, "2026-03-08T15:30:00Z", "2026-03-07T16:30:00Z"),
            // ... 25 h across fall back ...
            (la, true, 86_400, "2026-11-01T16:30:00Z", "2026-10-31T15:30:00Z"),
            (
                berlin,
                true,
                86_400,
                "2026-10-25T07:00:00Z",
                "2026-10-24T06:00:00Z",
            ),
            // ... and 24 h when no change lies between.
            (la, true, 86_400, "2026-06-10T15:30:00Z", "2026-06-09T15:30:00Z"),
            // Other offsets.
            (la, false, 7_200, "2026-03-08T15:30:00Z", "2026-03-08T13:30:00Z"),
            (la, true, 172_800, "2026-03-09T15:30:00Z", "2026-03-07T16:30:00Z"),
            // A start inside the gap resolves to the end of the gap (03:00 PDT).
            (la, true, 3_600, "2026-03-08T10:30:00Z", "2026-03-08T10:00:00Z"),
        ];
        for (zone, in_tz, offset, scheduled, from) in cases {
            let window = scheduled_window(zone, in_tz, offset, at(scheduled));
            assert_eq!(
                (rfc3339_utc(window.from), rfc3339_utc(window.to)),
                (from.to_string(), scheduled.to_string()),
                "{zone} {in_tz} {offset} {scheduled}"
            );
        }
    }

    #[test]
    fn day_windows() {
        let la: Tz = "America/Los_Angeles".parse().expect("zone");
        let berlin: Tz = "Europe/Berlin".parse().expect("zone");
        let cases = [
            (
                la,
                false,
                "2026-03-08",
                "2026-03-08T00:00:00Z",
                "2026-03-09T00:00:00Z",
            ),
            (
                la,
                true,
                "2026-03-08",
                "2026-03-08T08:00:00Z",
                "2026-03-09T07:00:00Z",
            ),
            (
                la,
                true,
                "2026-11-01",
                "2026-11-01T07:00:00Z",
                "2026-11-02T08:00:00Z",
            ),
            (
                berlin,
                true,
                "2026-10-25",
                "2026-10-24T22:00:00Z",
                "2026-10-25T23:00:00Z",
            ),
        ];
        for (zone, in_tz, date, from, to) in cases {
            let window = day_window(zone, in_tz, day(date));
            assert_eq!(
                window.to_string(),
                format!("[{from}, {to})"),
                "{zone} {in_tz} {date}"
            );
        }
    }

    #[test]
    fn durations() {
        let good = [
            ("0", 0),
            ("0s", 0),
            ("90s", 90),
            ("15m", 900),
            ("2h", 7_200),
            ("1d", 86_400),
            ("1h30m", 5_400),
        ];
        for (text, seconds) in good {
            assert_eq!(parse_duration(text), Ok(seconds), "{text}");
        }
        for text in ["", "5", "2x", "h", "-1h", "1.5h", "99999999999999999999d"] {
            assert_eq!(
                parse_duration(text),
                Err(format!(
                    "invalid duration {text:?}: use a number and a unit s, m, h or d, like 90s, 15m, 2h or 1d"
                )),
                "{text}"
            );
        }
        let formatted = [
            (0, "0s"),
            (90, "90s"),
            (5_400, "90m"),
            (7_200, "2h"),
            (86_400, "1d"),
            (-1, "-1s"),
        ];
        for (seconds, text) in formatted {
            assert_eq!(format_duration(seconds), text);
        }
    }

    /// Time that moves only when something sleeps. `hook` runs at every
    /// sleep with the new time, to change the world mid-wait.
    struct FakePacer {
        now: Mutex<DateTime<Utc>>,
        sleeps: AtomicUsize,
        hook: Box<dyn Fn(DateTime<Utc>) + Send + Sync>,
        /// Real time to give other threads at each sleep (loop tests).
        real_sleep: Duration,
    }

    impl FakePacer {
        fn new(start: DateTime<Utc>) -> FakePacer {
            FakePacer {
                now: Mutex::new(start),
                sleeps: AtomicUsize::new(0),
                hook: Box::new(|_| {}),
                real_sleep: Duration::ZERO,
            }
        }
    }

    impl Pacer for FakePacer {
        fn now(&self) -> DateTime<Utc> {
            *self.now.lock().expect("lock")
        }

        fn sleep(&self, duration: Duration) {
            let now = {
                let mut now = self.now.lock().expect("lock");
                *now += TimeDelta::from_std(duration).expect("short duration");
                *now
            };
            self.sleeps.fetch_add(1, Ordering::Relaxed);
            (self.hook)(now);
            if !self.real_sleep.is_zero() {
                std::thread::sleep(self.real_sleep);
            }
        }
    }

    /// Couriers whose files appear at given times, some of which fail.
    #[derive(Default)]
    struct FakeRunner {
        /// When a courier's first file appears; absent means never.
        files_from: HashMap<String, DateTime<Utc>>,
        failing: HashSet<String>,
        /// The time source `files_from` is compared with.
        pacer: Option<Arc<FakePacer>>,
        runs: Mutex<Vec<(String, String, Window)>>,
    }

    impl FakeRunner {
        fn runs(&self) -> Vec<(String, String, Window)> {
            self.runs.lock().expect("lock").clone()
        }
    }

    impl CourierRunner for FakeRunner {
        fn courier_exists(&self, _: &str, courier: &str) -> anyhow::Result<bool> {
            Ok(courier.starts_with("c-"))
        }

        fn window_files(&self, _: &str, courier: &str, _: &Window) -> anyhow::Result<usize> {
            let now = self
                .pacer
                .as_ref()
                .map(|pacer| pacer.now())
                .unwrap_or_else(Utc::now);
            Ok(match self.files_from.get(courier) {
                Some(from) if *from <= now => 1,
                _ => 0,
            })
        }

        fn run(&self, _: &str, courier: &str, window: &Window, trigger: &str) -> anyhow::Result<RunSummary> {
            self.runs
                .lock()
                .expect("lock")
                .push((courier.to_string(), trigger.to_string(), *window));
            if self.failing.contains(courier) {
                anyhow::bail!("Cannot find required feeds: \"df-x\"");
            }
            Ok(RunSummary {
                run_id: format!("run-{courier}"),
                succeeded: true,
                files: 1,
                records: 3,
                rejected: 0,
                duration_ms: 7,
                message: "Completed in 0 seconds".to_string(),
            })
        }
    }

    fn group(name: &str, cron: &str, couriers: &[&str], after: &[&str], wait_seconds: i64) -> GroupRecord {
        GroupRecord {
            tenant: "acme".to_string(),
            name: name.to_string(),
            settings: GroupSettings {
                cron: cron.to_string(),
                tz: "America/Los_Angeles".to_string(),
                file_dates_in_tz: false,
                couriers: couriers.iter().map(|c| c.to_string()).collect(),
                after: after.iter().map(|c| c.to_string()).collect(),
                wait_seconds,
                offset_seconds: OFFSET_SECONDS_DEFAULT,
                enabled: true,
            },
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    /// A store with tenant `acme` and the given groups.
    fn store_with(
        label: &str,
        groups_to_add: &[&GroupRecord],
    ) -> (crate::control::groups::tests::TempDir, Store) {
        let dir = crate::control::groups::tests::TempDir::new(label);
        let mut store = Store::open(&dir.0).expect("open");
        store.tenant_add("acme").expect("tenant");
        let known = |_: &str, courier: &str| Ok(courier.starts_with("c-"));
        for group in groups_to_add {
            groups::add(&mut store, "acme", &group.name, &group.settings, &known).expect("add group");
        }
        (dir, store)
    }

    fn env<'a>(runner: &'a FakeRunner, pacer: &'a FakePacer, stop: &'a AtomicBool) -> RunEnv<'a> {
        RunEnv {
            runner,
            pacer,
            stop,
            poll: Duration::from_millis(WAIT_POLL_MS),
        }
    }

    fn plan_for(group: &GroupRecord, scheduled: &str) -> RunPlan {
        let zone = group.schedule().expect("schedule").zone();
        RunPlan::scheduled(group, zone, at(scheduled), Trigger::Schedule)
    }

    #[test]
    fn a_group_of_two_where_one_fails_fails_and_keeps_both_results() {
        let g = group("g", "30 8 * * *", &["c-ok", "c-bad"], &[], 0);
        let (_dir, mut store) = store_with("two-couriers", &[&g]);
        let pacer = FakePacer::new(at("2026-03-08T15:30:00Z"));
        let mut runner = FakeRunner::default();
        runner
            .files_from
            .insert("c-ok".to_string(), at("2026-01-01T00:00:00Z"));
        runner
            .files_from
            .insert("c-bad".to_string(), at("2026-01-01T00:00:00Z"));
        runner.failing.insert("c-bad".to_string());
        let stop = AtomicBool::new(false);
        let plan = plan_for(&g, "2026-03-08T15:30:00Z");
        let (run_id, outcome) = run_group(&mut store, &env(&runner, &pacer, &stop), &plan).expect("run");
        assert_eq!(outcome.status, RunStatus::Failed);
        assert_eq!(
            outcome.message,
            "courier \"c-bad\": Cannot find required feeds: \"df-x\""
        );
        assert_eq!(
            outcome
                .couriers
                .iter()
                .map(|c| (c.courier.as_str(), c.succeeded))
                .collect::<Vec<_>>(),
            vec![("c-ok", true), ("c-bad", false)]
        );
        // Both ran, in order, over the scheduled window, as the group.
        let window = Window::Range {
            from: at("2026-03-07T15:30:00Z"),
            to: at("2026-03-08T15:30:00Z"),
        };
        assert_eq!(
            runner.runs(),
            vec![
                ("c-ok".to_string(), "group:g".to_string(), window),
                ("c-bad".to_string(), "group:g".to_string(), window),
            ]
        );
        let history = groups::runs(&store, "acme", "g", 5).expect("runs");
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].id, run_id);
        assert_eq!(history[0].status, RunStatus::Failed);
        assert_eq!(history[0].couriers, outcome.couriers);
        assert_eq!(history[0].couriers[0].run_id.as_deref(), Some("run-c-ok"));
        assert_eq!(
            pacer.sleeps.load(Ordering::Relaxed),
            0,
            "files were there: no waiting"
        );
    }

    #[test]
    fn all_couriers_succeeding_make_the_group_succeed() {
        let g = group("g", "30 8 * * *", &["c-1", "c-2"], &[], 0);
        let (_dir, mut store) = store_with("all-succeed", &[&g]);
        let pacer = FakePacer::new(at("2026-03-08T15:30:00Z"));
        let mut runner = FakeRunner::default();
        for courier in ["c-1", "c-2"] {
            runner
                .files_from
                .insert(courier.to_string(), at("2026-01-01T00:00:00Z"));
        }
        let stop = AtomicBool::new(false);
        let (_, outcome) = run_group(
            &mut store,
            &env(&runner, &pacer, &stop),
            &plan_for(&g, "2026-03-08T15:30:00Z"),
        )
        .expect("run");
        assert_eq!(outcome.status, RunStatus::Succeeded);
        assert!(
            outcome
                .message
                .starts_with("2 of 2 couriers succeeded: 2 files, 6 records; Completed in "),
            "{}",
            outcome.message
        );
    }

    #[test]
    fn wait_time_expires_with_a_message_saying_what_is_missing() {
        let g = group("g", "30 8 * * *", &["c-late", "c-never"], &[], 7_200);
        let (_dir, mut store) = store_with("wait-expiry", &[&g]);
        let pacer = Arc::new(FakePacer::new(at("2026-03-08T15:30:00Z")));
        let mut runner = FakeRunner {
            pacer: Some(Arc::clone(&pacer)),
            ..FakeRunner::default()
        };
        // One courier's file arrives 30 minutes late; the other's never.
        runner
            .files_from
            .insert("c-late".to_string(), at("2026-03-08T16:00:00Z"));
        let stop = AtomicBool::new(false);
        let (_, outcome) = run_group(
            &mut store,
            &env(&runner, &pacer, &stop),
            &plan_for(&g, "2026-03-08T15:30:00Z"),
        )
        .expect("run");
        assert_eq!(outcome.status, RunStatus::Failed);
        assert_eq!(
            outcome.couriers[1].message,
            "no sealed files for courier \"c-never\" in [2026-03-07T15:30:00Z, 2026-03-08T15:30:00Z) after waiting 2h"
        );
        assert!(outcome.couriers[0].succeeded, "the late courier still loaded");
        // Waited exactly the wait time, in polls, without sleeping for real.
        assert_eq!(pacer.now(), at("2026-03-08T17:30:00Z"));
        assert_eq!(pacer.sleeps.load(Ordering::Relaxed), 7_200 / 5);
    }

    #[test]
    fn a_late_file_ends_the_wait() {
        let g = group("g", "30 8 * * *", &["c-late"], &[], 7_200);
        let (_dir, mut store) = store_with("late-file", &[&g]);
        let pacer = Arc::new(FakePacer::new(at("2026-03-08T15:30:00Z")));
        let mut runner = FakeRunner {
            pacer: Some(Arc::clone(&pacer)),
            ..FakeRunner::default()
        };
        runner
            .files_from
            .insert("c-late".to_string(), at("2026-03-08T16:00:00Z"));
        let stop = AtomicBool::new(false);
        let (_, outcome) = run_group(
            &mut store,
            &env(&runner, &pacer, &stop),
            &plan_for(&g, "2026-03-08T15:30:00Z"),
        )
        .expect("run");
        assert_eq!(outcome.status, RunStatus::Succeeded);
        assert_eq!(pacer.now(), at("2026-03-08T16:00:00Z"));
    }

    #[test]
    fn without_a_wait_time_an_empty_window_fails_at_once() {
        let g = group("g", "30 8 * * *", &["c-1"], &[], 0);
        let (_dir, mut store) = store_with("no-wait", &[&g]);
        let pacer = FakePacer::new(at("2026-03-08T15:30:00Z"));
        let runner = FakeRunner::default();
        let stop = AtomicBool::new(false);
        let (_, outcome) = run_group(
            &mut store,
            &env(&runner, &pacer, &stop),
            &plan_for(&g, "2026-03-08T15:30:00Z"),
        )
        .expect("run");
        assert_eq!(outcome.status, RunStatus::Failed);
        assert_eq!(
            outcome.message,
            "courier \"c-1\": no sealed files for courier \"c-1\" in [2026-03-07T15:30:00Z, \
             2026-03-08T15:30:00Z) after waiting 0s"
        );
        assert!(runner.runs().is_empty());
        assert_eq!(pacer.sleeps.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn stopping_interrupts_a_waiting_run() {
        let g = group("g", "30 8 * * *", &["c-1"], &[], 7_200);
        let (_dir, mut store) = store_with("stop", &[&g]);
        let pacer = FakePacer::new(at("2026-03-08T15:30:00Z"));
        let runner = FakeRunner::default();
        let stop = AtomicBool::new(true);
        let (_, outcome) = run_group(
            &mut store,
            &env(&runner, &pacer, &stop),
            &plan_for(&g, "2026-03-08T15:30:00Z"),
        )
        .expect("run");
        assert_eq!(outcome.status, RunStatus::Interrupted);
        assert_eq!(
            groups::run_status(&store, "acme", "g", at("2026-03-08T15:30:00Z")).expect("status"),
            Some(RunStatus::Interrupted)
        );
    }

    /// A pacer hook that plays group "up"'s scheduled run for `scheduled`
    /// through another store connection, as the scheduler's other run
    /// thread would: it begins `begin` after the fire time and succeeds
    /// `end` after it.
    fn upstream_run(
        data_dir: PathBuf,
        scheduled: DateTime<Utc>,
        begin: TimeDelta,
        end: TimeDelta,
    ) -> Box<dyn Fn(DateTime<Utc>) + Send + Sync> {
        Box::new(move |now| {
            if now != scheduled + begin && now != scheduled + end {
                return;
            }
            let mut other = Store::open(&data_dir).expect("open");
            if now == scheduled + begin {
                let window = (scheduled - TimeDelta::days(1), scheduled);
                groups::run_begin(&mut other, "acme", "up", scheduled, window, "schedule").expect("begin");
            }
            if now == scheduled + end {
                let id = groups::runs(&other, "acme", "up", 1).expect("runs")[0].id;
                groups::run_finish(&mut other, id, RunStatus::Succeeded, "ok", &[]).expect("finish");
            }
        })
    }

    #[test]
    fn after_waits_for_the_constraint_groups_success() {
        let upstream = group("up", "30 8 * * *", &["c-1"], &[], 0);
        let downstream = group("down", "30 8 * * *", &["c-2"], &["up"], 3_600);
        let (dir, mut store) = store_with("after-order", &[&upstream, &downstream]);
        let data_dir = dir.0.clone();
        let scheduled = at("2026-03-08T15:30:00Z");
        let mut pacer = FakePacer::new(scheduled);
        // Upstream's run succeeds ten minutes in, written by another
        // connection as the scheduler's other run thread would.
        let ten_minutes = TimeDelta::minutes(10);
        pacer.hook = upstream_run(data_dir, scheduled, ten_minutes, ten_minutes);
        let mut runner = FakeRunner::default();
        runner
            .files_from
            .insert("c-2".to_string(), at("2026-01-01T00:00:00Z"));
        let stop = AtomicBool::new(false);
        let (_, outcome) = run_group(
            &mut store,
            &env(&runner, &pacer, &stop),
            &plan_for(&downstream, "2026-03-08T15:30:00Z"),
        )
        .expect("run");
        assert_eq!(outcome.status, RunStatus::Succeeded, "{}", outcome.message);
        assert_eq!(pacer.now(), scheduled + TimeDelta::minutes(10));
        assert_eq!(runner.runs().len(), 1);
    }

    #[test]
    fn after_without_wait_time_waits_for_a_constraint_run_that_is_coming() {
        // Both groups fire at 08:30 and the waiting one looks first: with
        // no wait time it must still wait for the upstream run it is sure
        // to get, and go on by that run's outcome.
        let upstream = group("up", "30 8 * * *", &["c-1"], &[], 0);
        let downstream = group("down", "30 8 * * *", &["c-2"], &["up"], 0);
        let (dir, mut store) = store_with("after-race", &[&upstream, &downstream]);
        let data_dir = dir.0.clone();
        let scheduled = at("2026-03-08T15:30:00Z");
        let mut pacer = FakePacer::new(scheduled);
        // Upstream starts 5 s late and takes a minute and a half.
        pacer.hook = upstream_run(data_dir, scheduled, TimeDelta::seconds(5), TimeDelta::seconds(95));
        let mut runner = FakeRunner::default();
        runner
            .files_from
            .insert("c-2".to_string(), at("2026-01-01T00:00:00Z"));
        let stop = AtomicBool::new(false);
        let (_, outcome) = run_group(
            &mut store,
            &env(&runner, &pacer, &stop),
            &plan_for(&downstream, "2026-03-08T15:30:00Z"),
        )
        .expect("run");
        assert_eq!(outcome.status, RunStatus::Succeeded, "{}", outcome.message);
        assert_eq!(pacer.now(), scheduled + TimeDelta::seconds(95));

        // An upstream that never starts is given up on after the grace.
        let scheduled = at("2026-03-09T15:30:00Z");
        let pacer = FakePacer::new(scheduled);
        let (_, outcome) = run_group(
            &mut store,
            &env(&runner, &pacer, &stop),
            &plan_for(&downstream, "2026-03-09T15:30:00Z"),
        )
        .expect("run");
        assert_eq!(
            outcome.message,
            "constraint group \"up\" has no successful run for this window after waiting 0s"
        );
        assert_eq!(
            pacer.now(),
            scheduled + TimeDelta::seconds(CONSTRAINT_START_GRACE_SECONDS)
        );
    }

    #[test]
    fn after_fails_when_the_constraint_group_failed_or_never_ran() {
        let upstream = group("up", "30 8 * * *", &["c-1"], &[], 0);
        let downstream = group("down", "30 8 * * *", &["c-2"], &["up"], 3_600);
        let (_dir, mut store) = store_with("after-fail", &[&upstream, &downstream]);
        let mut runner = FakeRunner::default();
        runner
            .files_from
            .insert("c-2".to_string(), at("2026-01-01T00:00:00Z"));
        let stop = AtomicBool::new(false);

        // Never ran: waits the whole hour, then fails.
        let pacer = FakePacer::new(at("2026-03-08T15:30:00Z"));
        let (_, outcome) = run_group(
            &mut store,
            &env(&runner, &pacer, &stop),
            &plan_for(&downstream, "2026-03-08T15:30:00Z"),
        )
        .expect("run");
        assert_eq!(
            outcome.message,
            "constraint group \"up\" has no successful run for this window after waiting 1h"
        );
        assert_eq!(pacer.now(), at("2026-03-08T16:30:00Z"));

        // Failed (for the same fire time): fails at once, runs no courier.
        let scheduled = at("2026-03-09T15:30:00Z");
        let window = (scheduled - TimeDelta::days(1), scheduled);
        let id = groups::run_begin(&mut store, "acme", "up", scheduled, window, "schedule").expect("begin");
        groups::run_finish(&mut store, id, RunStatus::Failed, "boom", &[]).expect("finish");
        let pacer = FakePacer::new(scheduled);
        let (_, outcome) = run_group(
            &mut store,
            &env(&runner, &pacer, &stop),
            &plan_for(&downstream, "2026-03-09T15:30:00Z"),
        )
        .expect("run");
        assert_eq!(outcome.status, RunStatus::Failed);
        assert_eq!(outcome.message, "constraint group \"up\" failed for this window");
        assert_eq!(
            outcome.couriers[0].message,
            "not run: constraint group \"up\" failed for this window"
        );
        assert_eq!(pacer.sleeps.load(Ordering::Relaxed), 0);
        assert!(runner.runs().is_empty());
    }

    #[test]
    fn runs_by_hand_take_only_the_given_day() {
        let mut g = group("g", "30 8 * * *", &["c-1"], &["other"], 7_200);
        let now = at("2026-03-10T12:00:00Z");
        let plan = RunPlan::manual(&g, g.schedule().expect("schedule").zone(), day("2026-03-08"), now);
        assert_eq!(plan.window, Window::Day(day("2026-03-08")));
        assert!(plan.after.is_empty(), "constraints gate the schedule only");
        assert_eq!(
            plan.deadline,
            at("2026-03-09T02:00:00Z"),
            "the wait counts from the end of a past window"
        );
        let during = at("2026-03-08T12:00:00Z");
        let today = RunPlan::manual(
            &g,
            g.schedule().expect("schedule").zone(),
            day("2026-03-08"),
            during,
        );
        assert_eq!(
            today.deadline,
            at("2026-03-08T14:00:00Z"),
            "and from now in a window still open"
        );
        g.settings.file_dates_in_tz = true;
        let plan = RunPlan::manual(&g, g.schedule().expect("schedule").zone(), day("2026-03-08"), now);
        assert_eq!(
            plan.window,
            Window::Range {
                from: at("2026-03-08T08:00:00Z"),
                to: at("2026-03-09T07:00:00Z"),
            }
        );
        g.settings.after.clear();
        g.settings.wait_seconds = 0;
        let (_dir, mut store) = store_with("by-hand", &[&g]);
        // A window with no sealed file: the run fails saying nothing
        // arrived, like a scheduled one, and runs no courier.
        let runner = FakeRunner::default();
        let (_, outcome) = run_by_hand(
            &mut store,
            &runner,
            &g,
            day("2026-03-08"),
            &AtomicBool::new(false),
        )
        .expect("run");
        assert_eq!(outcome.status, RunStatus::Failed);
        assert!(outcome.message.contains("no sealed files"), "{}", outcome.message);
        assert!(runner.runs().is_empty());
        // A past day does not wait, even with a wait time, and says so.
        let mut patient = g.clone();
        patient.settings.wait_seconds = 7_200;
        let (_, outcome) = run_by_hand(
            &mut store,
            &runner,
            &patient,
            day("2026-03-08"),
            &AtomicBool::new(false),
        )
        .expect("run");
        assert!(
            outcome.message.ends_with("after waiting 0s"),
            "{}",
            outcome.message
        );
        // With a file in the window it runs the courier.
        let mut runner = FakeRunner::default();
        runner
            .files_from
            .insert("c-1".to_string(), at("2026-03-01T00:00:00Z"));
        let (_, outcome) = run_by_hand(
            &mut store,
            &runner,
            &g,
            day("2026-03-08"),
            &AtomicBool::new(false),
        )
        .expect("run");
        assert_eq!(outcome.status, RunStatus::Succeeded);
        assert_eq!(runner.runs().len(), 1);
        assert_eq!(
            groups::runs(&store, "acme", "g", 1).expect("runs")[0].trigger,
            "manual"
        );
        // A run by hand of today that waits for files, stopped (Ctrl-C):
        // it ends interrupted instead of staying `running`.
        g.settings.wait_seconds = 3_600;
        let today = Utc::now().date_naive();
        let stop = AtomicBool::new(true);
        let (_, outcome) = run_by_hand(&mut store, &FakeRunner::default(), &g, today, &stop).expect("run");
        assert_eq!(outcome.status, RunStatus::Interrupted);
        assert_eq!(
            groups::runs(&store, "acme", "g", 1).expect("runs")[0].status,
            RunStatus::Interrupted
        );
    }

    #[test]
    fn the_scheduler_fires_each_fire_time_once() {
        let every_minute = group("m", "* * * * *", &["c-1"], &[], 0);
        let daily = group("d", "30 8 * * *", &["c-1"], &[], 0);
        let mut disabled = group("x", "* * * * *", &["c-1"], &[], 0);
        disabled.settings.enabled = false;
        let groups = vec![every_minute, daily, disabled];
        let mut scheduler = Scheduler::new(at("2026-03-08T15:29:10Z"));
        let mut fired = Vec::new();
        let mut now = at("2026-03-08T15:29:10Z");
        while now < at("2026-03-08T15:32:00Z") {
            now += TimeDelta::milliseconds(500);
            for (index, fire) in scheduler.due(&groups, now) {
                fired.push((groups[index].name.clone(), rfc3339_utc(fire)));
            }
        }
        assert_eq!(
            fired,
            vec![
                ("m".to_string(), "2026-03-08T15:30:00Z".to_string()),
                ("d".to_string(), "2026-03-08T15:30:00Z".to_string()),
                ("m".to_string(), "2026-03-08T15:31:00Z".to_string()),
                ("m".to_string(), "2026-03-08T15:32:00Z".to_string()),
            ]
        );
        // A clock stepping back fires nothing again.
        assert!(scheduler.due(&groups, at("2026-03-08T15:30:30Z")).is_empty());
    }

    #[test]
    fn missed_fire_times_are_caught_up_within_the_grace() {
        let no_wait = group("a", "30 8 * * *", &["c-1"], &[], 0);
        let two_hours = group("b", "30 8 * * *", &["c-1"], &[], 7_200);
        let groups = vec![no_wait, two_hours];
        // Fire time 2026-03-08T15:30Z (08:30 PDT).
        let cases: &[(&str, &[&str], &[&str])] = &[
            // 30 minutes late: both, unless already run.
            ("2026-03-08T16:00:00Z", &[], &["a", "b"]),
            ("2026-03-08T16:00:00Z", &["a"], &["b"]),
            // 90 minutes late: beyond the 1-hour grace of a group without wait.
            ("2026-03-08T17:00:00Z", &[], &["b"]),
            // Beyond both.
            ("2026-03-08T17:31:00Z", &[], &[]),
        ];
        for (now, finished, expected) in cases {
            let due = catch_up_due(&groups, at(now), |group, fire| {
                assert_eq!(fire, at("2026-03-08T15:30:00Z"));
                finished.contains(&group.name.as_str())
            });
            let names: Vec<&str> = due
                .iter()
                .map(|(index, _)| groups[*index].name.as_str())
                .collect();
            assert_eq!(names, *expected, "{now}");
        }
        // A group created after its latest fire time missed nothing.
        let mut young = groups[0].clone();
        young.created_at = "2026-03-08T15:45:00Z".to_string();
        assert!(catch_up_due(&[young.clone()], at("2026-03-08T16:00:00Z"), |_, _| false).is_empty());
        young.created_at = "2026-03-08T15:29:00Z".to_string();
        assert_eq!(
            catch_up_due(&[young], at("2026-03-08T16:00:00Z"), |_, _| false).len(),
            1
        );
    }

    #[test]
    fn the_scheduler_loop_runs_every_minute_and_catches_up_at_start() {
        let every_minute = group("m", "* * * * *", &["c-1"], &[], 0);
        let (dir, mut store) = store_with("loop", &[&every_minute]);
        // A run left `running` by a crash for the fire time just before start.
        let start = at("2026-03-08T15:30:20Z");
        let missed = at("2026-03-08T15:30:00Z");
        groups::run_begin(
            &mut store,
            "acme",
            "m",
            missed,
            (missed - TimeDelta::days(1), missed),
            "schedule",
        )
        .expect("begin");
        // The group existed before that fire time (the store dates it by the
        // real clock, which is past this test's).
        store
            .connection()
            .execute(
                "UPDATE courier_groups SET created_at = '2026-03-01T00:00:00Z'",
                [],
            )
            .expect("backdate");
        drop(store);
        let mut pacer = FakePacer::new(start);
        pacer.real_sleep = Duration::from_millis(2);
        let pacer = Arc::new(pacer);
        let stop = Arc::new(AtomicBool::new(false));
        let mut fake = FakeRunner::default();
        fake.files_from
            .insert("c-1".to_string(), at("2026-01-01T00:00:00Z"));
        let runner = Arc::new(fake);
        let handle = {
            let (runner, pacer, stop, data_dir) = (
                Arc::clone(&runner),
                Arc::clone(&pacer),
                Arc::clone(&stop),
                dir.0.clone(),
            );
            std::thread::spawn(move || {
                run_scheduler(&data_dir, runner, pacer, stop, Pace::default());
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while pacer.now() < at("2026-03-08T15:35:30Z") && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Release);
        handle.join().expect("scheduler thread");
        let store = Store::open(&dir.0).expect("open");
        let mut history = groups::runs(&store, "acme", "m", 50).expect("runs");
        history.reverse();
        let summary: Vec<(String, String, RunStatus)> = history
            .into_iter()
            .map(|run| (run.scheduled_at, run.trigger, run.status))
            .collect();
        let expected: Vec<(String, String, RunStatus)> = vec![
            ("2026-03-08T15:30:00Z", "schedule", RunStatus::Interrupted),
            ("2026-03-08T15:30:00Z", "catch-up", RunStatus::Succeeded),
            ("2026-03-08T15:31:00Z", "schedule", RunStatus::Succeeded),
            ("2026-03-08T15:32:00Z", "schedule", RunStatus::Succeeded),
            ("2026-03-08T15:33:00Z", "schedule", RunStatus::Succeeded),
            ("2026-03-08T15:34:00Z", "schedule", RunStatus::Succeeded),
            ("2026-03-08T15:35:00Z", "schedule", RunStatus::Succeeded),
        ]
        .into_iter()
        .map(|(at, trigger, status)| (at.to_string(), trigger.to_string(), status))
        .collect();
        assert_eq!(summary, expected);
    }
}
