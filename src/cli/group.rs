//! `sluice group …`: courier groups (SPEC §6) from the command line.
//!
//! This module owns turning `group` arguments into calls on
//! [`crate::control::groups`] and [`crate::courier::schedule`], and promises
//! the surface of SPEC §7: lists as aligned tables or, with `--json`, a JSON
//! array; one-line reasons for refusals; `group run` prints the id of each
//! group run it made, one per line, and fails (exit 1) if any of them
//! failed; `group next` prints fire times in the group's zone as RFC 3339
//! with the offset, so an operator can check a cron line without a website.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};

use crate::control::groups::{self, GroupEdit, GroupRecord, GroupRunRecord, GroupSettings};
use crate::control::store::Store;
use crate::courier::schedule::{
    self, CourierRunner, NEXT_COUNT_DEFAULT, NEXT_COUNT_MAX, OFFSET_SECONDS_DEFAULT, StoreCourierRunner,
    WAIT_SECONDS_DEFAULT, format_duration, parse_duration,
};

use super::{write_json, write_rows, write_table};

/// The most days one `group run` takes; each is a full run of every
/// courier, one after another.
pub const RUN_DAYS_MAX: usize = 62;

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Add a courier group.
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        schedule: ScheduleArgs,
        /// Compute file windows on the zone's wall clock instead of in UTC.
        #[arg(long)]
        file_dates_in_tz: bool,
        /// A courier of the group (repeat for more); they run in this order.
        #[arg(long = "courier", value_name = "NAME", required = true)]
        couriers: Vec<String>,
        /// How long a run keeps looking for late files, like 90s, 15m, 2h, 1d [default: 0].
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        wait: Option<i64>,
        /// How far back from the scheduled time the file window reaches [default: 24h].
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        offset: Option<i64>,
        /// Run only after this group's run for the same window succeeded (repeatable).
        #[arg(long = "after", value_name = "GROUP")]
        after: Vec<String>,
        /// Add the group without scheduling it.
        #[arg(long)]
        disabled: bool,
    },
    /// List a tenant's groups.
    List {
        #[arg(long)]
        tenant: String,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show one group.
    Show {
        #[arg(long)]
        tenant: String,
        name: String,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Change a group's settings; what is not given stays.
    Edit {
        #[arg(long)]
        tenant: String,
        name: String,
        #[arg(long, value_name = "LINE")]
        cron: Option<String>,
        #[arg(long, value_name = "ZONE")]
        tz: Option<String>,
        /// Compute file windows on the zone's wall clock.
        #[arg(long, conflicts_with = "file_dates_in_utc")]
        file_dates_in_tz: bool,
        /// Compute file windows in UTC.
        #[arg(long)]
        file_dates_in_utc: bool,
        /// Replace the couriers with these (repeatable).
        #[arg(long = "courier", value_name = "NAME")]
        couriers: Vec<String>,
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        wait: Option<i64>,
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        offset: Option<i64>,
        /// Replace the constraint groups with these (repeatable).
        #[arg(long = "after", value_name = "GROUP", conflicts_with = "no_after")]
        after: Vec<String>,
        /// Remove every constraint.
        #[arg(long)]
        no_after: bool,
    },
    /// Delete a group and its run history.
    Delete {
        #[arg(long)]
        tenant: String,
        name: String,
    },
    /// Let the scheduler run a group.
    Enable {
        #[arg(long)]
        tenant: String,
        name: String,
    },
    /// Stop the scheduler from running a group (it can still be run by hand).
    Disable {
        #[arg(long)]
        tenant: String,
        name: String,
    },
    /// Run a group by hand for the given days only (default: today in its zone).
    Run {
        #[arg(long)]
        tenant: String,
        name: String,
        /// A day to load, YYYY-MM-DD (repeatable).
        #[arg(long = "day", value_name = "YYYY-MM-DD")]
        days: Vec<NaiveDate>,
    },
    /// Print the next fire times in the group's zone.
    Next {
        #[arg(long)]
        tenant: String,
        name: String,
        #[arg(
            long,
            default_value_t = NEXT_COUNT_DEFAULT as u64,
            value_parser = clap::value_parser!(u64).range(1..=NEXT_COUNT_MAX as u64)
        )]
        count: u64,
    },
    /// Show a group's run history, newest first, with per-courier results.
    Runs {
        #[arg(long)]
        tenant: String,
        name: String,
        #[arg(long, default_value_t = groups::GROUP_RUNS_SHOWN_DEFAULT)]
        limit: usize,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// A five-field cron line: minute hour day-of-month month day-of-week.
    #[arg(long, value_name = "LINE")]
    cron: String,
    /// The IANA time zone the cron line is read in.
    #[arg(long, value_name = "ZONE")]
    tz: String,
}

/// Runs a `group` command against the real couriers of `data_dir`.
pub fn run(
    command: GroupCommand,
    data_dir: &Path,
    out: &mut dyn Write,
    diagnostics: &mut dyn Write,
) -> anyhow::Result<()> {
    let runner = StoreCourierRunner {
        data_dir: data_dir.to_path_buf(),
    };
    let mut store = Store::open(data_dir)?;
    run_with(command, &mut store, &runner, Utc::now(), out, diagnostics)
}

/// Runs a `group` command with `runner` as the couriers and `now` as the
/// time (for `next` and the default day of `run`).
pub fn run_with(
    command: GroupCommand,
    store: &mut Store,
    runner: &dyn CourierRunner,
    now: DateTime<Utc>,
    out: &mut dyn Write,
    diagnostics: &mut dyn Write,
) -> anyhow::Result<()> {
    let known = |tenant: &str, courier: &str| {
        runner
            .courier_exists(tenant, courier)
            .map_err(|error| format!("{error:#}"))
    };
    match command {
        GroupCommand::Add {
            tenant,
            name,
            schedule,
            file_dates_in_tz,
            couriers,
            wait,
            offset,
            after,
            disabled,
        } => {
            let settings = GroupSettings {
                cron: schedule.cron,
                tz: schedule.tz,
                file_dates_in_tz,
                couriers,
                after,
                wait_seconds: wait.unwrap_or(WAIT_SECONDS_DEFAULT),
                offset_seconds: offset.unwrap_or(OFFSET_SECONDS_DEFAULT),
                enabled: !disabled,
            };
            groups::add(store, &tenant, &name, &settings, &known)?;
            writeln!(diagnostics, "sluice: added group {name:?} to tenant {tenant}")?;
        }
        GroupCommand::List { tenant, json } => write_groups(out, &groups::list(store, &tenant)?, json)?,
        GroupCommand::Show { tenant, name, json } => {
            write_group(out, &groups::show(store, &tenant, &name)?, json)?
        }
        GroupCommand::Edit {
            tenant,
            name,
            cron,
            tz,
            file_dates_in_tz,
            file_dates_in_utc,
            couriers,
            wait,
            offset,
            after,
            no_after,
        } => {
            let edit = GroupEdit {
                cron,
                tz,
                file_dates_in_tz: match (file_dates_in_tz, file_dates_in_utc) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
                couriers: (!couriers.is_empty()).then_some(couriers),
                after: if no_after {
                    Some(Vec::new())
                } else {
                    (!after.is_empty()).then_some(after)
                },
                wait_seconds: wait,
                offset_seconds: offset,
                enabled: None,
            };
            groups::edit(store, &tenant, &name, &edit, &known)?;
            writeln!(diagnostics, "sluice: changed group {name:?} of tenant {tenant}")?;
        }
        GroupCommand::Delete { tenant, name } => {
            groups::delete(store, &tenant, &name)?;
            writeln!(
                diagnostics,
                "sluice: deleted group {name:?} of tenant {tenant} and its runs"
            )?;
        }
        GroupCommand::Enable { tenant, name } => {
            groups::set_enabled(store, &tenant, &name, true)?;
            writeln!(diagnostics, "sluice: enabled group {name:?} of tenant {tenant}")?;
        }
        GroupCommand::Disable { tenant, name } => {
            groups::set_enabled(store, &tenant, &name, false)?;
            writeln!(diagnostics, "sluice: disabled group {name:?} of tenant {tenant}")?;
        }
        GroupCommand::Run { tenant, name, days } => {
            run_days(store, runner, now, &tenant, &name, days, out, diagnostics)?
        }
        GroupCommand::Next { tenant, name, count } => {
            let group = groups::show(store, &tenant, &name)?;
            let schedule = group.schedule()?;
            for fire in schedule.next_fires(now, usize::try_from(count)?) {
                writeln!(out, "{}", schedule::format_in_zone(schedule.zone(), fire))?;
            }
        }
        GroupCommand::Runs {
            tenant,
            name,
            limit,
            json,
        } => write_runs(out, &groups::runs(store, &tenant, &name, limit)?, json)?,
    }
    Ok(())
}

/// Runs a group by hand for each day; prints each run's id; fails naming
/// every day whose run failed.
#[allow(clippy::too_many_arguments)]
fn run_days(
    store: &mut Store,
    runner: &dyn CourierRunner,
    now: DateTime<Utc>,
    tenant: &str,
    name: &str,
    mut days: Vec<NaiveDate>,
    out: &mut dyn Write,
    diagnostics: &mut dyn Write,
) -> anyhow::Result<()> {
    let group = groups::show(store, tenant, name)?;
    if days.is_empty() {
        days.push(now.with_timezone(&group.schedule()?.zone()).date_naive());
    }
    anyhow::ensure!(
        days.len() <= RUN_DAYS_MAX,
        "at most {RUN_DAYS_MAX} days per group run, got {}",
        days.len()
    );
    let mut failures = Vec::new();
    for day in days {
        let (run_id, outcome) = schedule::run_by_hand(store, runner, &group, day)
            .with_context(|| format!("group {name:?} for {day}"))?;
        writeln!(out, "{run_id}")?;
        writeln!(
            diagnostics,
            "sluice: group {name:?} for {day}: {}: {}",
            outcome.status.as_str(),
            outcome.message
        )?;
        if outcome.status != groups::RunStatus::Succeeded {
            failures.push(format!("{day}: {}", outcome.message));
        }
    }
    anyhow::ensure!(
        failures.is_empty(),
        "group {name:?} failed for {}",
        failures.join("; ")
    );
    Ok(())
}

fn write_groups(out: &mut dyn Write, groups: &[GroupRecord], json: bool) -> anyhow::Result<()> {
    if json {
        return write_json(out, groups);
    }
    let cells: Vec<[String; 7]> = groups
        .iter()
        .map(|group| {
            let settings = &group.settings;
            [
                group.name.clone(),
                settings.cron.clone(),
                settings.tz.clone(),
                if settings.enabled { "enabled" } else { "disabled" }.to_string(),
                format_duration(settings.wait_seconds),
                format_duration(settings.offset_seconds),
                settings.couriers.join(","),
            ]
        })
        .collect();
    let rows: Vec<Vec<&str>> = cells
        .iter()
        .map(|row| row.iter().map(String::as_str).collect())
        .collect();
    write_table(
        out,
        &["NAME", "CRON", "TZ", "STATUS", "WAIT", "OFFSET", "COURIERS"],
        &rows,
    )
}

fn write_group(out: &mut dyn Write, group: &GroupRecord, json: bool) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, group)?;
        writeln!(out)?;
        return Ok(());
    }
    let settings = &group.settings;
    let file_dates = if settings.file_dates_in_tz {
        "in the zone"
    } else {
        "in UTC"
    };
    let enabled = if settings.enabled { "enabled" } else { "disabled" };
    let wait = format_duration(settings.wait_seconds);
    let offset = format_duration(settings.offset_seconds);
    let couriers = settings.couriers.join(", ");
    let after = if settings.after.is_empty() {
        "-".to_string()
    } else {
        settings.after.join(", ")
    };
    let rows = vec![
        vec!["name:", group.name.as_str()],
        vec!["tenant:", group.tenant.as_str()],
        vec!["cron:", settings.cron.as_str()],
        vec!["tz:", settings.tz.as_str()],
        vec!["file dates:", file_dates],
        vec!["status:", enabled],
        vec!["couriers:", couriers.as_str()],
        vec!["after:", after.as_str()],
        vec!["wait:", wait.as_str()],
        vec!["offset:", offset.as_str()],
        vec!["created:", group.created_at.as_str()],
        vec!["updated:", group.updated_at.as_str()],
    ];
    write_rows(out, &rows)
}

/// One row per run, then one indented row per courier under it.
fn write_runs(out: &mut dyn Write, runs: &[GroupRunRecord], json: bool) -> anyhow::Result<()> {
    if json {
        return write_json(out, runs);
    }
    let mut cells: Vec<Vec<String>> = vec![
        ["ID", "SCHEDULED", "TRIGGER", "STATUS", "WINDOW", "MESSAGE"]
            .iter()
            .map(|cell| cell.to_string())
            .collect(),
    ];
    for run in runs {
        cells.push(vec![
            run.id.to_string(),
            run.scheduled_at.clone(),
            run.trigger.clone(),
            run.status.as_str().to_string(),
            format!("[{}, {})", run.window_from, run.window_to),
            run.message.clone(),
        ]);
        for courier in &run.couriers {
            cells.push(vec![
                String::new(),
                format!("  {}", courier.courier),
                courier.run_id.clone().unwrap_or_else(|| "-".to_string()),
                if courier.succeeded { "succeeded" } else { "failed" }.to_string(),
                format!(
                    "{} files, {} records, {} rejected",
                    courier.files, courier.records, courier.rejected
                ),
                courier.message.clone(),
            ]);
        }
    }
    let rows: Vec<Vec<&str>> = cells
        .iter()
        .map(|row| row.iter().map(String::as_str).collect())
        .collect();
    write_rows(out, &rows)
}
