//! Courier groups in the control database (SPEC §6): a group's settings,
//! its couriers, the groups it must wait for (`--after`), and the history
//! of its runs with one result per courier.
//!
//! What it promises:
//! - Nothing invalid is stored: a group's cron line and zone are parsed
//!   ([`Schedule::parse`]) and its couriers and constraint groups checked
//!   before a row is written, so the scheduler never meets a line it cannot
//!   read. Constraints never form a cycle (a cycle would make every group in
//!   it wait for the others until its wait time ran out, every time).
//! - Every write goes through [`Store::mutate`], so it is one transaction.
//! - A group another group waits for cannot be deleted; deleting a group
//!   deletes its history too, so a new group of the same name starts clean.
//! - Times are stored as RFC 3339 UTC strings with whole seconds, which
//!   sort as they compare.
//!
//! Couriers belong to the couriers module (issue 3); this module asks
//! whether one exists through a function the caller passes in (the CLI
//! passes [`courier_exists`]), so it can be tested without that module.

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::control::store::{self, Store, StoreError};
use crate::courier::schedule::{
    OFFSET_SECONDS_MAX, OFFSET_SECONDS_MIN, Schedule, ScheduleError, WAIT_SECONDS_MAX, format_duration,
};

/// The longest group name, in characters. Names are shown in aligned
/// columns and in messages; anything longer is a description.
pub const GROUP_NAME_CHARS_MAX: usize = 200;

/// The most couriers in one group. All of them run one after another in a
/// single run; a longer list belongs in several groups.
pub const GROUP_COURIERS_MAX: usize = 64;

/// The most groups one group can wait for.
pub const GROUP_AFTER_MAX: usize = 16;

/// How many runs `group runs` shows by default, newest first.
pub const GROUP_RUNS_SHOWN_DEFAULT: usize = 20;

/// The tables. Groups are named per tenant; the name is their identity in
/// every command, so it is the key. `position` keeps couriers in the order
/// the operator listed them, which is the order they run in.
pub(crate) const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS courier_groups (
    tenant           TEXT NOT NULL REFERENCES tenants(name),
    name             TEXT NOT NULL,
    cron             TEXT NOT NULL,
    tz               TEXT NOT NULL,
    file_dates_in_tz INTEGER NOT NULL CHECK (file_dates_in_tz IN (0, 1)),
    wait_seconds     INTEGER NOT NULL,
    offset_seconds   INTEGER NOT NULL,
    enabled          INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
) STRICT;
CREATE TABLE IF NOT EXISTS courier_group_couriers (
    tenant   TEXT NOT NULL,
    grp      TEXT NOT NULL,
    position INTEGER NOT NULL,
    courier  TEXT NOT NULL,
    PRIMARY KEY (tenant, grp, courier),
    FOREIGN KEY (tenant, grp) REFERENCES courier_groups(tenant, name) ON DELETE CASCADE
) STRICT;
CREATE TABLE IF NOT EXISTS courier_group_after (
    tenant TEXT NOT NULL,
    grp    TEXT NOT NULL,
    after  TEXT NOT NULL,
    PRIMARY KEY (tenant, grp, after),
    FOREIGN KEY (tenant, grp) REFERENCES courier_groups(tenant, name) ON DELETE CASCADE
) STRICT;
CREATE TABLE IF NOT EXISTS courier_group_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant       TEXT NOT NULL,
    grp          TEXT NOT NULL,
    scheduled_at TEXT NOT NULL,
    window_from  TEXT NOT NULL,
    window_to    TEXT NOT NULL,
    trigger      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    message      TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS courier_group_runs_by_group
    ON courier_group_runs(tenant, grp, scheduled_at);
CREATE TABLE IF NOT EXISTS courier_group_run_couriers (
    run_id         INTEGER NOT NULL REFERENCES courier_group_runs(id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    courier        TEXT NOT NULL,
    succeeded      INTEGER NOT NULL CHECK (succeeded IN (0, 1)),
    courier_run_id TEXT,
    files          INTEGER NOT NULL,
    records        INTEGER NOT NULL,
    rejected       INTEGER NOT NULL,
    duration_ms    INTEGER NOT NULL,
    message        TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
) STRICT;
";

/// What an operator sets on a group; `add` takes all of it, `show` returns
/// it, `edit` replaces parts of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupSettings {
    /// A five-field cron line, read in `tz`.
    pub cron: String,
    /// An IANA zone name.
    pub tz: String,
    /// Whether the file window is computed on the zone's wall clock (a day
    /// can be 23 or 25 hours) rather than in UTC.
    pub file_dates_in_tz: bool,
    /// The couriers, in the order they run.
    pub couriers: Vec<String>,
    /// Groups whose run for the same fire time must succeed first.
    pub after: Vec<String>,
    /// How long a run keeps looking for a first file (and for its
    /// constraint groups) before it fails.
    pub wait_seconds: i64,
    /// How far back from the scheduled time the window reaches.
    pub offset_seconds: i64,
    /// Disabled groups are never fired by the scheduler; they can still be
    /// run by hand.
    pub enabled: bool,
}

/// A stored group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupRecord {
    pub tenant: String,
    pub name: String,
    #[serde(flatten)]
    pub settings: GroupSettings,
    /// RFC 3339, UTC, whole seconds.
    pub created_at: String,
    pub updated_at: String,
}

impl GroupRecord {
    /// The parsed schedule. Stored lines were parsed before they were
    /// written, so this fails only on a database edited by hand.
    pub fn schedule(&self) -> Result<Schedule, ScheduleError> {
        Schedule::parse(&self.settings.cron, &self.settings.tz)
    }
}

/// Changes to a group; `None` leaves a setting as it is.
#[derive(Clone, Debug, Default)]
pub struct GroupEdit {
    pub cron: Option<String>,
    pub tz: Option<String>,
    pub file_dates_in_tz: Option<bool>,
    /// Replaces the whole list.
    pub couriers: Option<Vec<String>>,
    /// Replaces the whole list; `Some(vec![])` removes every constraint.
    pub after: Option<Vec<String>>,
    pub wait_seconds: Option<i64>,
    pub offset_seconds: Option<i64>,
    pub enabled: Option<bool>,
}

/// Where a group run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Started and not finished (or its process died: see
    /// [`mark_interrupted`]).
    Running,
    Succeeded,
    Failed,
    /// The appliance stopped or died while the run was going.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(text: &str) -> Option<RunStatus> {
        match text {
            "running" => Some(RunStatus::Running),
            "succeeded" => Some(RunStatus::Succeeded),
            "failed" => Some(RunStatus::Failed),
            "interrupted" => Some(RunStatus::Interrupted),
            _ => None,
        }
    }
}

/// What one courier did in a group run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CourierResult {
    pub courier: String,
    pub succeeded: bool,
    /// The courier run's id; `None` when the courier was not run (nothing
    /// arrived in time, or the run could not start).
    pub run_id: Option<String>,
    pub files: u64,
    pub records: u64,
    pub rejected: u64,
    pub duration_ms: u64,
    pub message: String,
}

/// A group run as `group runs` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupRunRecord {
    pub id: i64,
    pub tenant: String,
    pub group: String,
    /// The fire time (or the start of the day, for a manual run).
    pub scheduled_at: String,
    pub window_from: String,
    pub window_to: String,
    /// `schedule`, `catch-up` or `manual`.
    pub trigger: String,
    pub status: RunStatus,
    pub message: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub couriers: Vec<CourierResult>,
}

/// Why a group operation failed; each `Display` is one line naming the
/// group, courier or setting at fault.
#[derive(Debug)]
pub enum GroupError {
    Store(StoreError),
    InvalidName(&'static str),
    Exists {
        tenant: String,
        name: String,
    },
    Unknown {
        tenant: String,
        name: String,
    },
    Schedule(ScheduleError),
    NoCouriers,
    TooManyCouriers,
    DuplicateCourier(String),
    UnknownCourier {
        tenant: String,
        name: String,
    },
    /// The courier table could not be read.
    CourierLookup(String),
    TooManyAfter,
    UnknownAfter {
        tenant: String,
        name: String,
    },
    AfterItself(String),
    AfterCycle(Vec<String>),
    /// Another group waits for this one.
    InUse {
        name: String,
        by: String,
    },
    WaitOutOfRange(i64),
    OffsetOutOfRange(i64),
    /// The database holds something this module never writes.
    Corrupt(String),
}

impl GroupError {
    /// A machine-readable kind, kebab-case.
    pub fn kind(&self) -> &'static str {
        match self {
            GroupError::Store(error) => error.kind(),
            GroupError::InvalidName(_) => "invalid-group-name",
            GroupError::Exists { .. } => "group-exists",
            GroupError::Unknown { .. } => "unknown-group",
            GroupError::Schedule(error) => error.kind(),
            GroupError::NoCouriers => "no-couriers",
            GroupError::TooManyCouriers => "too-many-couriers",
            GroupError::DuplicateCourier(_) => "duplicate-courier",
            GroupError::UnknownCourier { .. } => "unknown-courier",
            GroupError::CourierLookup(_) => "courier-lookup",
            GroupError::TooManyAfter => "too-many-constraints",
            GroupError::UnknownAfter { .. } => "unknown-constraint-group",
            GroupError::AfterItself(_) => "constraint-on-itself",
            GroupError::AfterCycle(_) => "constraint-cycle",
            GroupError::InUse { .. } => "group-in-use",
            GroupError::WaitOutOfRange(_) => "wait-out-of-range",
            GroupError::OffsetOutOfRange(_) => "offset-out-of-range",
            GroupError::Corrupt(_) => "corrupt-store",
        }
    }
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::Store(error) => write!(f, "{error}"),
            GroupError::InvalidName(problem) => write!(f, "invalid group name: {problem}"),
            GroupError::Exists { tenant, name } => {
                write!(f, "group {name:?} already exists in tenant {tenant:?}")
            }
            GroupError::Unknown { tenant, name } => write!(f, "no group {name:?} in tenant {tenant:?}"),
            GroupError::Schedule(error) => write!(f, "{error}"),
            GroupError::NoCouriers => write!(f, "a group needs at least one courier (--courier NAME)"),
            GroupError::TooManyCouriers => {
                write!(f, "a group has at most {GROUP_COURIERS_MAX} couriers")
            }
            GroupError::DuplicateCourier(name) => write!(f, "courier {name:?} is listed twice"),
            GroupError::UnknownCourier { tenant, name } => {
                write!(f, "unknown courier {name:?} in tenant {tenant:?}")
            }
            GroupError::CourierLookup(error) => write!(f, "cannot look up couriers: {error}"),
            GroupError::TooManyAfter => {
                write!(f, "a group waits for at most {GROUP_AFTER_MAX} groups")
            }
            GroupError::UnknownAfter { tenant, name } => {
                write!(f, "unknown constraint group {name:?} in tenant {tenant:?}")
            }
            GroupError::AfterItself(name) => write!(f, "group {name:?} cannot wait for itself"),
            GroupError::AfterCycle(path) => {
                let quoted: Vec<String> = path.iter().map(|name| format!("{name:?}")).collect();
                write!(
                    f,
                    "constraints would form a cycle ({}): each group would wait for the other",
                    quoted.join(" after ")
                )
            }
            GroupError::InUse { name, by } => write!(
                f,
                "group {name:?} is a constraint of group {by:?}; remove it there first"
            ),
            GroupError::WaitOutOfRange(seconds) => write!(
                f,
                "wait time {} is out of range 0s-{}",
                format_duration(*seconds),
                format_duration(WAIT_SECONDS_MAX)
            ),
            GroupError::OffsetOutOfRange(seconds) => write!(
                f,
                "offset {} is out of range {}-{}",
                format_duration(*seconds),
                format_duration(OFFSET_SECONDS_MIN),
                format_duration(OFFSET_SECONDS_MAX)
            ),
            GroupError::Corrupt(what) => write!(f, "control database is corrupt: {what}"),
        }
    }
}

/// `Display` already includes each cause's text.
impl std::error::Error for GroupError {}

impl From<StoreError> for GroupError {
    fn from(error: StoreError) -> GroupError {
        GroupError::Store(error)
    }
}

impl From<rusqlite::Error> for GroupError {
    fn from(error: rusqlite::Error) -> GroupError {
        GroupError::Store(StoreError::Database(error))
    }
}

impl From<ScheduleError> for GroupError {
    fn from(error: ScheduleError) -> GroupError {
        GroupError::Schedule(error)
    }
}

/// Whether `tenant` has a courier `name`, read from the couriers module's
/// `couriers` table (columns `tenant` and `name`). A database without that
/// table (a build without the couriers module) has no couriers, so every
/// name is unknown.
pub fn courier_exists(connection: &Connection, tenant: &str, name: &str) -> rusqlite::Result<bool> {
    let table = connection
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'couriers'",
            [],
            |_| Ok(()),
        )
        .optional()?;
    if table.is_none() {
        return Ok(false);
    }
    let found = connection
        .query_row(
            "SELECT 1 FROM couriers WHERE tenant = ?1 AND name = ?2",
            params![tenant, name],
            |_| Ok(()),
        )
        .optional()?;
    Ok(found.is_some())
}

/// Adds a group. `courier_known(tenant, name)` says whether a courier
/// exists.
pub fn add(
    store: &mut Store,
    tenant: &str,
    name: &str,
    settings: &GroupSettings,
    courier_known: &dyn Fn(&str, &str) -> Result<bool, String>,
) -> Result<(), GroupError> {
    check_name(name)?;
    store::require_tenant(store.connection(), tenant)?;
    check_settings(store.connection(), tenant, name, settings, courier_known)?;
    let now = now_rfc3339();
    let inserted = store.mutate(|tx, _| {
        let inserted = tx.execute(
            "INSERT INTO courier_groups (tenant, name, cron, tz, file_dates_in_tz, wait_seconds,
                offset_seconds, enabled, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) ON CONFLICT DO NOTHING",
            params![
                tenant,
                name,
                settings.cron,
                settings.tz,
                settings.file_dates_in_tz,
                settings.wait_seconds,
                settings.offset_seconds,
                settings.enabled,
                now
            ],
        )?;
        if inserted == 1 {
            write_lists(tx, tenant, name, settings)?;
        }
        Ok(inserted)
    })?;
    if inserted == 0 {
        return Err(GroupError::Exists {
            tenant: tenant.to_string(),
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Applies `edit` to a group, checking the result as `add` would.
pub fn edit(
    store: &mut Store,
    tenant: &str,
    name: &str,
    edit: &GroupEdit,
    courier_known: &dyn Fn(&str, &str) -> Result<bool, String>,
) -> Result<(), GroupError> {
    let mut settings = show(store, tenant, name)?.settings;
    let GroupEdit {
        cron,
        tz,
        file_dates_in_tz,
        couriers,
        after,
        wait_seconds,
        offset_seconds,
        enabled,
    } = edit.clone();
    settings.cron = cron.unwrap_or(settings.cron);
    settings.tz = tz.unwrap_or(settings.tz);
    settings.file_dates_in_tz = file_dates_in_tz.unwrap_or(settings.file_dates_in_tz);
    settings.couriers = couriers.unwrap_or(settings.couriers);
    settings.after = after.unwrap_or(settings.after);
    settings.wait_seconds = wait_seconds.unwrap_or(settings.wait_seconds);
    settings.offset_seconds = offset_seconds.unwrap_or(settings.offset_seconds);
    settings.enabled = enabled.unwrap_or(settings.enabled);
    check_settings(store.connection(), tenant, name, &settings, courier_known)?;
    let now = now_rfc3339();
    store.mutate(|tx, _| {
        tx.execute(
            "UPDATE courier_groups SET cron = ?3, tz = ?4, file_dates_in_tz = ?5, wait_seconds = ?6,
                offset_seconds = ?7, enabled = ?8, updated_at = ?9
             WHERE tenant = ?1 AND name = ?2",
            params![
                tenant,
                name,
                settings.cron,
                settings.tz,
                settings.file_dates_in_tz,
                settings.wait_seconds,
                settings.offset_seconds,
                settings.enabled,
                now
            ],
        )?;
        tx.execute(
            "DELETE FROM courier_group_couriers WHERE tenant = ?1 AND grp = ?2",
            params![tenant, name],
        )?;
        tx.execute(
            "DELETE FROM courier_group_after WHERE tenant = ?1 AND grp = ?2",
            params![tenant, name],
        )?;
        write_lists(tx, tenant, name, &settings)?;
        Ok(())
    })?;
    Ok(())
}

/// Turns the scheduler on or off for a group.
pub fn set_enabled(store: &mut Store, tenant: &str, name: &str, enabled: bool) -> Result<(), GroupError> {
    edit(
        store,
        tenant,
        name,
        &GroupEdit {
            enabled: Some(enabled),
            ..GroupEdit::default()
        },
        // The courier list is unchanged; a courier deleted since shows up
        // as a failed courier in the next run, not as a refusal here.
        &|_, _| Ok(true),
    )
}

/// Deletes a group and its history. Refused while another group waits for
/// it.
pub fn delete(store: &mut Store, tenant: &str, name: &str) -> Result<(), GroupError> {
    show(store, tenant, name)?;
    let by: Option<String> = store
        .connection()
        .query_row(
            "SELECT grp FROM courier_group_after WHERE tenant = ?1 AND after = ?2 ORDER BY grp LIMIT 1",
            params![tenant, name],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(by) = by {
        return Err(GroupError::InUse {
            name: name.to_string(),
            by,
        });
    }
    store.mutate(|tx, _| {
        tx.execute(
            "DELETE FROM courier_group_run_couriers WHERE run_id IN
                (SELECT id FROM courier_group_runs WHERE tenant = ?1 AND grp = ?2)",
            params![tenant, name],
        )?;
        for table in [
            "courier_group_runs",
            "courier_group_couriers",
            "courier_group_after",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE tenant = ?1 AND grp = ?2"),
                params![tenant, name],
            )?;
        }
        tx.execute(
            "DELETE FROM courier_groups WHERE tenant = ?1 AND name = ?2",
            params![tenant, name],
        )?;
        Ok(())
    })?;
    Ok(())
}

/// One group.
pub fn show(store: &Store, tenant: &str, name: &str) -> Result<GroupRecord, GroupError> {
    store::require_tenant(store.connection(), tenant)?;
    let mut groups = read_groups(store.connection(), Some(tenant), Some(name))?;
    groups.pop().ok_or_else(|| GroupError::Unknown {
        tenant: tenant.to_string(),
        name: name.to_string(),
    })
}

/// A tenant's groups, by name.
pub fn list(store: &Store, tenant: &str) -> Result<Vec<GroupRecord>, GroupError> {
    store::require_tenant(store.connection(), tenant)?;
    read_groups(store.connection(), Some(tenant), None)
}

/// Every tenant's groups, for the scheduler.
pub fn list_all(store: &Store) -> Result<Vec<GroupRecord>, GroupError> {
    read_groups(store.connection(), None, None)
}

/// Records the start of a group run; returns its id.
pub fn run_begin(
    store: &mut Store,
    tenant: &str,
    group: &str,
    scheduled: DateTime<Utc>,
    window: (DateTime<Utc>, DateTime<Utc>),
    trigger: &str,
) -> Result<i64, GroupError> {
    let id = store.mutate(|tx, _| {
        tx.execute(
            "INSERT INTO courier_group_runs (tenant, grp, scheduled_at, window_from, window_to,
                trigger, status, message, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', '', ?7)",
            params![
                tenant,
                group,
                rfc3339(scheduled),
                rfc3339(window.0),
                rfc3339(window.1),
                trigger,
                now_rfc3339()
            ],
        )?;
        Ok(tx.last_insert_rowid())
    })?;
    Ok(id)
}

/// Records how a group run ended, with one result per courier.
pub fn run_finish(
    store: &mut Store,
    run_id: i64,
    status: RunStatus,
    message: &str,
    couriers: &[CourierResult],
) -> Result<(), GroupError> {
    store.mutate(|tx, _| {
        tx.execute(
            "UPDATE courier_group_runs SET status = ?2, message = ?3, finished_at = ?4 WHERE id = ?1",
            params![run_id, status.as_str(), message, now_rfc3339()],
        )?;
        for (position, result) in couriers.iter().enumerate() {
            tx.execute(
                "INSERT INTO courier_group_run_couriers (run_id, position, courier, succeeded,
                    courier_run_id, files, records, rejected, duration_ms, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    run_id,
                    position as i64,
                    result.courier,
                    result.succeeded,
                    result.run_id,
                    saturating_i64(result.files),
                    saturating_i64(result.records),
                    saturating_i64(result.rejected),
                    saturating_i64(result.duration_ms),
                    result.message
                ],
            )?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The status of the newest scheduled (or caught-up) run of `group` for
/// the fire time `scheduled`, or `None` if the scheduler never ran it for
/// it. Runs by hand do not count: they cover days an operator chose, not
/// the window of a fire time.
pub fn run_status(
    store: &Store,
    tenant: &str,
    group: &str,
    scheduled: DateTime<Utc>,
) -> Result<Option<RunStatus>, GroupError> {
    let status: Option<String> = store
        .connection()
        .query_row(
            "SELECT status FROM courier_group_runs WHERE tenant = ?1 AND grp = ?2 AND scheduled_at = ?3
               AND trigger != 'manual'
             ORDER BY id DESC LIMIT 1",
            params![tenant, group, rfc3339(scheduled)],
            |row| row.get(0),
        )
        .optional()?;
    status.map(|text| parse_status(&text)).transpose()
}

/// Marks the runs that the scheduler left `running` (its process died or
/// stopped mid-run) as interrupted. Only scheduler triggers are touched: a
/// manual run may be going on in a CLI process right now.
pub fn mark_interrupted(store: &mut Store) -> Result<usize, GroupError> {
    let changed = store.mutate(|tx, _| {
        Ok(tx.execute(
            "UPDATE courier_group_runs SET status = 'interrupted',
                message = 'the appliance stopped while this run was going', finished_at = ?1
             WHERE status = 'running' AND trigger IN ('schedule', 'catch-up')",
            [now_rfc3339()],
        )?)
    })?;
    Ok(changed)
}

/// A group's runs, newest first, at most `limit`.
pub fn runs(
    store: &Store,
    tenant: &str,
    group: &str,
    limit: usize,
) -> Result<Vec<GroupRunRecord>, GroupError> {
    show(store, tenant, group)?;
    let connection = store.connection();
    let mut statement = connection.prepare(
        "SELECT id, tenant, grp, scheduled_at, window_from, window_to, trigger, status, message,
                started_at, finished_at
         FROM courier_group_runs WHERE tenant = ?1 AND grp = ?2 ORDER BY id DESC LIMIT ?3",
    )?;
    let rows = statement.query_map(params![tenant, group, saturating_i64(limit as u64)], |row| {
        Ok((
            GroupRunRecord {
                id: row.get(0)?,
                tenant: row.get(1)?,
                group: row.get(2)?,
                scheduled_at: row.get(3)?,
                window_from: row.get(4)?,
                window_to: row.get(5)?,
                trigger: row.get(6)?,
                status: RunStatus::Running,
                message: row.get(8)?,
                started_at: row.get(9)?,
                finished_at: row.get(10)?,
                couriers: Vec::new(),
            },
            row.get::<_, String>(7)?,
        ))
    })?;
    let mut records = Vec::new();
    for row in rows {
        let (mut record, status) = row?;
        record.status = parse_status(&status)?;
        record.couriers = read_courier_results(connection, record.id)?;
        records.push(record);
    }
    Ok(records)
}

fn read_courier_results(connection: &Connection, run_id: i64) -> Result<Vec<CourierResult>, GroupError> {
    let mut statement = connection.prepare_cached(
        "SELECT courier, succeeded, courier_run_id, files, records, rejected, duration_ms, message
         FROM courier_group_run_couriers WHERE run_id = ?1 ORDER BY position",
    )?;
    let rows = statement.query_map([run_id], |row| {
        Ok(CourierResult {
            courier: row.get(0)?,
            succeeded: row.get(1)?,
            run_id: row.get(2)?,
            files: row.get::<_, i64>(3)?.max(0) as u64,
            records: row.get::<_, i64>(4)?.max(0) as u64,
            rejected: row.get::<_, i64>(5)?.max(0) as u64,
            duration_ms: row.get::<_, i64>(6)?.max(0) as u64,
            message: row.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn parse_status(text: &str) -> Result<RunStatus, GroupError> {
    RunStatus::parse(text).ok_or_else(|| GroupError::Corrupt(format!("group run status {text:?}")))
}

/// Reads groups with their couriers and constraints; `None` filters match
/// everything.
fn read_groups(
    connection: &Connection,
    tenant: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<GroupRecord>, GroupError> {
    let mut statement = connection.prepare_cached(
        "SELECT tenant, name, cron, tz, file_dates_in_tz, wait_seconds, offset_seconds, enabled,
                created_at, updated_at
         FROM courier_groups
         WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR name = ?2)
         ORDER BY tenant, name",
    )?;
    let rows = statement.query_map(params![tenant, name], |row| {
        Ok(GroupRecord {
            tenant: row.get(0)?,
            name: row.get(1)?,
            settings: GroupSettings {
                cron: row.get(2)?,
                tz: row.get(3)?,
                file_dates_in_tz: row.get(4)?,
                couriers: Vec::new(),
                after: Vec::new(),
                wait_seconds: row.get(5)?,
                offset_seconds: row.get(6)?,
                enabled: row.get(7)?,
            },
            created_at: row.get(8)?,
            updated_at: row.get(9)?,
        })
    })?;
    let mut groups = rows.collect::<Result<Vec<_>, _>>()?;
    for group in &mut groups {
        group.settings.couriers = read_names(
            connection,
            "SELECT courier FROM courier_group_couriers WHERE tenant = ?1 AND grp = ?2 ORDER BY position",
            &group.tenant,
            &group.name,
        )?;
        group.settings.after = read_names(
            connection,
            "SELECT after FROM courier_group_after WHERE tenant = ?1 AND grp = ?2 ORDER BY after",
            &group.tenant,
            &group.name,
        )?;
    }
    Ok(groups)
}

fn read_names(
    connection: &Connection,
    sql: &str,
    tenant: &str,
    group: &str,
) -> Result<Vec<String>, GroupError> {
    let mut statement = connection.prepare_cached(sql)?;
    let rows = statement.query_map(params![tenant, group], |row| row.get(0))?;
    Ok(rows.collect::<Result<Vec<String>, _>>()?)
}

fn write_lists(
    tx: &Transaction<'_>,
    tenant: &str,
    name: &str,
    settings: &GroupSettings,
) -> Result<(), StoreError> {
    for (position, courier) in settings.couriers.iter().enumerate() {
        tx.execute(
            "INSERT INTO courier_group_couriers (tenant, grp, position, courier) VALUES (?1, ?2, ?3, ?4)",
            params![tenant, name, position as i64, courier],
        )?;
    }
    for after in &settings.after {
        tx.execute(
            "INSERT INTO courier_group_after (tenant, grp, after) VALUES (?1, ?2, ?3)",
            params![tenant, name, after],
        )?;
    }
    Ok(())
}

/// Refuses empty, over-long and control-character names: they would break
/// aligned listings and one-line messages.
fn check_name(name: &str) -> Result<(), GroupError> {
    if name.trim().is_empty() {
        return Err(GroupError::InvalidName("it is empty"));
    }
    if name.chars().count() > GROUP_NAME_CHARS_MAX {
        return Err(GroupError::InvalidName("it is longer than 200 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(GroupError::InvalidName("it contains a control character"));
    }
    Ok(())
}

const _: () = assert!(GROUP_NAME_CHARS_MAX == 200, "keep the message above in step");

/// Everything `add` and `edit` refuse, in the order an operator fixes
/// things: the schedule, the bounds, the couriers, the constraints.
fn check_settings(
    connection: &Connection,
    tenant: &str,
    name: &str,
    settings: &GroupSettings,
    courier_known: &dyn Fn(&str, &str) -> Result<bool, String>,
) -> Result<(), GroupError> {
    Schedule::parse(&settings.cron, &settings.tz)?;
    if !(0..=WAIT_SECONDS_MAX).contains(&settings.wait_seconds) {
        return Err(GroupError::WaitOutOfRange(settings.wait_seconds));
    }
    if !(OFFSET_SECONDS_MIN..=OFFSET_SECONDS_MAX).contains(&settings.offset_seconds) {
        return Err(GroupError::OffsetOutOfRange(settings.offset_seconds));
    }
    check_couriers(tenant, &settings.couriers, courier_known)?;
    check_after(connection, tenant, name, &settings.after)
}

fn check_couriers(
    tenant: &str,
    couriers: &[String],
    courier_known: &dyn Fn(&str, &str) -> Result<bool, String>,
) -> Result<(), GroupError> {
    if couriers.is_empty() {
        return Err(GroupError::NoCouriers);
    }
    if couriers.len() > GROUP_COURIERS_MAX {
        return Err(GroupError::TooManyCouriers);
    }
    let mut seen = HashSet::new();
    for courier in couriers {
        if !seen.insert(courier.as_str()) {
            return Err(GroupError::DuplicateCourier(courier.clone()));
        }
        if !courier_known(tenant, courier).map_err(GroupError::CourierLookup)? {
            return Err(GroupError::UnknownCourier {
                tenant: tenant.to_string(),
                name: courier.clone(),
            });
        }
    }
    Ok(())
}

/// Checks that every constraint group exists and that the new edges close
/// no cycle among the tenant's groups.
fn check_after(
    connection: &Connection,
    tenant: &str,
    name: &str,
    after: &[String],
) -> Result<(), GroupError> {
    if after.len() > GROUP_AFTER_MAX {
        return Err(GroupError::TooManyAfter);
    }
    let mut edges: HashMap<String, Vec<String>> = HashMap::new();
    let mut statement =
        connection.prepare_cached("SELECT grp, after FROM courier_group_after WHERE tenant = ?1")?;
    let rows = statement.query_map([tenant], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (group, target) = row?;
        if group != name {
            edges.entry(group).or_default().push(target);
        }
    }
    let mut seen = HashSet::new();
    for target in after {
        if target == name {
            return Err(GroupError::AfterItself(name.to_string()));
        }
        if !seen.insert(target.as_str()) {
            continue;
        }
        if read_groups(connection, Some(tenant), Some(target))?.is_empty() {
            return Err(GroupError::UnknownAfter {
                tenant: tenant.to_string(),
                name: target.clone(),
            });
        }
        if let Some(mut path) = path_to(&edges, target, name) {
            path.insert(0, name.to_string());
            return Err(GroupError::AfterCycle(path));
        }
    }
    Ok(())
}

/// A chain of constraint edges from `from` to `to`, both ends included, if
/// there is one. The graph is small (groups of one tenant), so a plain
/// depth-first search is enough.
fn path_to(edges: &HashMap<String, Vec<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_string()]];
    let mut visited = HashSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().expect("invariant: paths are never empty").clone();
        if last == to {
            return Some(path);
        }
        if !visited.insert(last.clone()) {
            continue;
        }
        for next in edges.get(&last).into_iter().flatten() {
            let mut longer = path.clone();
            longer.push(next.clone());
            stack.push(longer);
        }
    }
    None
}

/// RFC 3339, UTC, whole seconds: the one format times are stored in.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn now_rfc3339() -> String {
    rfc3339(Utc::now())
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A data directory under the system temp dir, removed when dropped.
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new(label: &str) -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let unique = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "sluice-groups-test-{}-{label}-{unique}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&path);
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn known(_: &str, courier: &str) -> Result<bool, String> {
        Ok(courier.starts_with("c-"))
    }

    fn settings(couriers: &[&str], after: &[&str]) -> GroupSettings {
        GroupSettings {
            cron: "30 8 * * *".to_string(),
            tz: "America/Los_Angeles".to_string(),
            file_dates_in_tz: false,
            couriers: couriers.iter().map(|c| c.to_string()).collect(),
            after: after.iter().map(|c| c.to_string()).collect(),
            wait_seconds: 0,
            offset_seconds: 86_400,
            enabled: true,
        }
    }

    fn store(label: &str) -> (TempDir, Store) {
        let dir = TempDir::new(label);
        let mut store = Store::open(&dir.0).expect("open");
        store.tenant_add("acme").expect("tenant");
        (dir, store)
    }

    #[test]
    fn add_show_edit_delete_round_trip() {
        let (_dir, mut store) = store("round-trip");
        add(
            &mut store,
            "acme",
            "Streaming Ingest",
            &settings(&["c-b", "c-a"], &[]),
            &known,
        )
        .expect("add");
        let shown = show(&store, "acme", "Streaming Ingest").expect("show");
        assert_eq!(shown.settings, settings(&["c-b", "c-a"], &[]));
        let generation = store.generation().expect("generation");
        edit(
            &mut store,
            "acme",
            "Streaming Ingest",
            &GroupEdit {
                cron: Some("0 * * * *".to_string()),
                wait_seconds: Some(7200),
                ..GroupEdit::default()
            },
            &known,
        )
        .expect("edit");
        assert!(store.generation().expect("generation") > generation);
        let shown = show(&store, "acme", "Streaming Ingest").expect("show");
        assert_eq!(shown.settings.cron, "0 * * * *");
        assert_eq!(shown.settings.wait_seconds, 7200);
        assert_eq!(shown.settings.couriers, vec!["c-b", "c-a"]);
        set_enabled(&mut store, "acme", "Streaming Ingest", false).expect("disable");
        assert!(
            !show(&store, "acme", "Streaming Ingest")
                .expect("show")
                .settings
                .enabled
        );
        assert_eq!(list(&store, "acme").expect("list").len(), 1);
        delete(&mut store, "acme", "Streaming Ingest").expect("delete");
        assert!(list(&store, "acme").expect("list").is_empty());
    }

    #[test]
    fn a_courier_a_group_runs_cannot_be_deleted() {
        let (_dir, mut store) = store("courier-in-use");
        add(&mut store, "acme", "nightly", &settings(&["c-a"], &[]), &known).expect("add");
        let error = crate::control::couriers::courier_delete(&mut store, "acme", "c-a").expect_err("in use");
        assert_eq!(error.kind(), "courier-in-use");
        assert!(error.to_string().contains("\"nightly\""), "{error}");
        delete(&mut store, "acme", "nightly").expect("delete");
        // Free again: what stops it now is only that this test never made it.
        let error = crate::control::couriers::courier_delete(&mut store, "acme", "c-a").expect_err("unknown");
        assert_ne!(error.kind(), "courier-in-use");
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let (_dir, mut store) = store("refusals");
        add(&mut store, "acme", "a", &settings(&["c-1"], &[]), &known).expect("a");
        add(&mut store, "acme", "b", &settings(&["c-1"], &["a"]), &known).expect("b");
        let mut bad_cron = settings(&["c-1"], &[]);
        bad_cron.cron = "61 * * * *".to_string();
        let mut bad_zone = settings(&["c-1"], &[]);
        bad_zone.tz = "Mars/Olympus".to_string();
        let mut bad_wait = settings(&["c-1"], &[]);
        bad_wait.wait_seconds = -1;
        let mut bad_offset = settings(&["c-1"], &[]);
        bad_offset.offset_seconds = 0;
        let cases: Vec<(&str, &str, GroupSettings, &str)> = vec![
            (
                "acme",
                "a",
                settings(&["c-1"], &[]),
                "group \"a\" already exists in tenant \"acme\"",
            ),
            ("nope", "x", settings(&["c-1"], &[]), "unknown tenant \"nope\""),
            (
                "acme",
                "",
                settings(&["c-1"], &[]),
                "invalid group name: it is empty",
            ),
            (
                "acme",
                "x",
                bad_cron,
                "invalid cron \"61 * * * *\": minute 61 is out of range 0-59",
            ),
            (
                "acme",
                "x",
                bad_zone,
                "unknown time zone \"Mars/Olympus\": use an IANA name such as America/Los_Angeles",
            ),
            ("acme", "x", bad_wait, "wait time -1s is out of range 0s-7d"),
            ("acme", "x", bad_offset, "offset 0s is out of range 1m-31d"),
            (
                "acme",
                "x",
                settings(&[], &[]),
                "a group needs at least one courier (--courier NAME)",
            ),
            (
                "acme",
                "x",
                settings(&["web"], &[]),
                "unknown courier \"web\" in tenant \"acme\"",
            ),
            (
                "acme",
                "x",
                settings(&["c-1", "c-1"], &[]),
                "courier \"c-1\" is listed twice",
            ),
            (
                "acme",
                "x",
                settings(&["c-1"], &["zz"]),
                "unknown constraint group \"zz\" in tenant \"acme\"",
            ),
            (
                "acme",
                "x",
                settings(&["c-1"], &["x"]),
                "group \"x\" cannot wait for itself",
            ),
        ];
        for (tenant, name, settings, expected) in cases {
            let error = add(&mut store, tenant, name, &settings, &known).expect_err(expected);
            assert_eq!(error.to_string(), expected);
        }
        let cycle = edit(
            &mut store,
            "acme",
            "a",
            &GroupEdit {
                after: Some(vec!["b".to_string()]),
                ..GroupEdit::default()
            },
            &known,
        )
        .expect_err("cycle");
        assert_eq!(
            cycle.to_string(),
            "constraints would form a cycle (\"a\" after \"b\" after \"a\"): each group would wait for the other"
        );
        let in_use = delete(&mut store, "acme", "a").expect_err("in use");
        assert_eq!(
            in_use.to_string(),
            "group \"a\" is a constraint of group \"b\"; remove it there first"
        );
        assert_eq!(in_use.kind(), "group-in-use");
    }

    #[test]
    fn runs_keep_per_courier_results_newest_first() {
        let (_dir, mut store) = store("runs");
        add(&mut store, "acme", "g", &settings(&["c-1", "c-2"], &[]), &known).expect("add");
        let at = |text: &str| text.parse::<DateTime<Utc>>().expect("time");
        let scheduled = at("2026-03-08T16:30:00Z");
        let window = (at("2026-03-07T16:30:00Z"), scheduled);
        assert_eq!(run_status(&store, "acme", "g", scheduled).expect("status"), None);
        let by_hand = run_begin(&mut store, "acme", "g", scheduled, window, "manual").expect("begin");
        run_finish(&mut store, by_hand, RunStatus::Succeeded, "ok", &[]).expect("finish");
        assert_eq!(
            run_status(&store, "acme", "g", scheduled).expect("status"),
            None,
            "a run by hand is not the run of a fire time"
        );
        let first = run_begin(&mut store, "acme", "g", scheduled, window, "schedule").expect("begin");
        assert_eq!(
            run_status(&store, "acme", "g", scheduled).expect("status"),
            Some(RunStatus::Running)
        );
        let results = vec![
            CourierResult {
                courier: "c-1".to_string(),
                succeeded: true,
                run_id: Some("run-1".to_string()),
                files: 2,
                records: 10,
                rejected: 0,
                duration_ms: 5,
                message: "Completed in 0 seconds".to_string(),
            },
            CourierResult {
                courier: "c-2".to_string(),
                succeeded: false,
                run_id: None,
                files: 0,
                records: 0,
                rejected: 0,
                duration_ms: 0,
                message: "boom".to_string(),
            },
        ];
        run_finish(
            &mut store,
            first,
            RunStatus::Failed,
            "courier c-2: boom",
            &results,
        )
        .expect("finish");
        let second = run_begin(&mut store, "acme", "g", scheduled, window, "catch-up").expect("begin");
        assert_eq!(mark_interrupted(&mut store).expect("mark"), 1);
        assert_eq!(
            run_status(&store, "acme", "g", scheduled).expect("status"),
            Some(RunStatus::Interrupted)
        );
        let history = runs(&store, "acme", "g", 10).expect("runs");
        assert_eq!(
            history.iter().map(|run| run.id).collect::<Vec<_>>(),
            vec![second, first, by_hand]
        );
        assert_eq!(history[1].status, RunStatus::Failed);
        assert_eq!(history[1].couriers, results);
        assert_eq!(history[1].window_from, "2026-03-07T16:30:00Z");
        assert_eq!(history[0].trigger, "catch-up");
    }

    #[test]
    fn courier_lookup_sees_only_the_tenants_couriers() {
        let (_dir, store) = store("lookup");
        assert_eq!(courier_exists(store.connection(), "acme", "web"), Ok(false));
        store
            .connection()
            .execute_batch(
                "INSERT OR IGNORE INTO tenants (name, created_at) VALUES ('acme', 'now');
                 INSERT INTO couriers (tenant, name, stream_id, format, file_tag, load_ops, created_at, updated_at)
                 VALUES ('acme', 'web', 'is-AbCDefGH', 'ndjson', 'web', '{}', 'now', 'now');",
            )
            .expect("courier row");
        assert_eq!(courier_exists(store.connection(), "acme", "web"), Ok(true));
        assert_eq!(courier_exists(store.connection(), "other", "web"), Ok(false));
    }
}
