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
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};

use crate::control::groups::{self, GroupEdit, GroupRecord, GroupRunRecord, GroupSettings};
use crate::control::store::Store;
use crate::courier::schedule::{
    self, CourierRunner, NEXT_COUNT_DEFAULT, NEXT_COUNT_MAX, OFFSET_SECONDS_DEFAULT, StoreCourierRunner,
    WAIT_SECONDS_DEFAULT, format_duration, parse_duration,
};

use super::courier::parse_day;
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
    /// Run a group by hand for the given days only (default: today, in UTC
    /// or, with file dates in its zone, in its zone).
    Run {
        #[arg(long)]
        tenant: String,
        name: String,
        /// A day to load: YYYY-MM-DD, today or yesterday (repeatable).
        #[arg(long = "day", value_name = "YYYY-MM-DD")]
        days: Vec<String>,
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
        /// Print a JSON array of RFC 3339 times instead.
        #[arg(long)]
        json: bool,
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
        GroupCommand::Next {
            tenant,
            name,
            count,
            json,
        } => {
            let group = groups::show(store, &tenant, &name)?;
            let schedule = group.schedule()?;
            let fires: Vec<String> = schedule
                .next_fires(now, usize::try_from(count)?)
                .into_iter()
                .map(|fire| schedule::format_in_zone(schedule.zone(), fire))
                .collect();
            if json {
                return write_json(out, &fires);
            }
            for fire in fires {
                writeln!(out, "{fire}")?;
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

/// Set by the first SIGINT or SIGTERM while `group run` runs.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

/// Lets the first SIGINT (Ctrl-C) or SIGTERM end a waiting run by hand as
/// `interrupted` (recorded, not left `running`); the handler resets itself,
/// so a second signal stops the process at once as usual.
fn stop_on_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed `sigaction` is a valid value to fill in; the
        // handler only stores to an atomic.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = request_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
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
    days: Vec<String>,
    out: &mut dyn Write,
    diagnostics: &mut dyn Write,
) -> anyhow::Result<()> {
    let group = groups::show(store, tenant, name)?;
    // A day names UTC dates unless the group reads file dates in its zone
    // (SPEC §6; the seed: unchecked means "the current time in UTC"), so
    // today and yesterday are read the same way.
    let today = if group.settings.file_dates_in_tz {
        now.with_timezone(&group.schedule()?.zone()).date_naive()
    } else {
        now.date_naive()
    };
    let mut days = days
        .iter()
        .map(|text| parse_day(text, today))
        .collect::<anyhow::Result<Vec<NaiveDate>>>()?;
    if days.is_empty() {
        days.push(today);
    }
    anyhow::ensure!(
        days.len() <= RUN_DAYS_MAX,
        "at most {RUN_DAYS_MAX} days per group run, got {}",
        days.len()
    );
    if !cfg!(test) {
        stop_on_signals();
        // The run's events are the server's log lines; here the outcome is
        // reported below instead.
        crate::telemetry::silence();
    }
    let mut failures = Vec::new();
    for day in days {
        if STOP_REQUESTED.load(Ordering::SeqCst) {
            failures.push(format!("{day}: not run, stopped"));
            continue;
        }
        let (run_id, outcome) = schedule::run_by_hand(store, runner, &group, day, &STOP_REQUESTED)
            .with_context(|| format!("group {name:?} for {day}"))?;
        writeln!(out, "{run_id}")?;
        if outcome.status == groups::RunStatus::Succeeded {
            writeln!(
                diagnostics,
                "sluice: group {name:?} for {day}: {}: {}",
                outcome.status.as_str(),
                outcome.message
            )?;
        } else {
            // Said once, in the error line that ends the command.
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
                    "{}, {}, {} rejected",
                    crate::courier::run::counted(courier.files, "file"),
                    crate::courier::run::counted(courier.records, "record"),
                    courier.rejected
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::control::groups::tests::TempDir;
    use crate::courier::run::{RunSummary, Window};
    use clap::Parser;

    /// Couriers named `c-…` exist; every run succeeds with one file.
    struct Couriers;

    impl CourierRunner for Couriers {
        fn courier_exists(&self, _: &str, courier: &str) -> anyhow::Result<bool> {
            Ok(courier.starts_with("c-"))
        }

        fn window_files(&self, _: &str, _: &str, _: &Window) -> anyhow::Result<usize> {
            Ok(1)
        }

        fn run(&self, _: &str, courier: &str, _: &Window, _: &str) -> anyhow::Result<RunSummary> {
            if courier == "c-bad" {
                anyhow::bail!("Cannot find required feeds: \"df-x\"");
            }
            Ok(RunSummary {
                run_id: format!("run-{courier}"),
                succeeded: true,
                files: 1,
                records: 2,
                rejected: 0,
                duration_ms: 3,
                message: "Completed in 0 seconds".to_string(),
            })
        }
    }

    fn parse(args: &[&str]) -> Result<GroupCommand, clap::Error> {
        let cli = Cli::try_parse_from(["sluice", "group"].iter().chain(args.iter()))?;
        match cli.command {
            crate::cli::Command::Group(command) => Ok(command),
            other => panic!("not a group command: {other:?}"),
        }
    }

    /// Runs `group <args>` at `now`; stdout on success, the one-line error
    /// on failure.
    fn group(store: &mut Store, now: &str, args: &[&str]) -> Result<String, String> {
        let command = parse(args).map_err(|error| format!("usage: {}", error.kind()))?;
        let now = now.parse::<DateTime<Utc>>().expect("time");
        let mut out = Vec::new();
        let mut diagnostics = Vec::new();
        run_with(command, store, &Couriers, now, &mut out, &mut diagnostics)
            .map_err(|error| format!("{error:#}"))?;
        Ok(String::from_utf8(out).expect("utf-8"))
    }

    #[test]
    fn argument_table() {
        let good: &[&[&str]] = &[
            &[
                "add",
                "--tenant",
                "t",
                "--name",
                "n",
                "--cron",
                "30 8 * * *",
                "--tz",
                "UTC",
                "--courier",
                "a",
            ],
            &[
                "add",
                "--tenant",
                "t",
                "--name",
                "n",
                "--cron",
                "* * * * *",
                "--tz",
                "UTC",
                "--courier",
                "a",
                "--courier",
                "b",
                "--wait",
                "2h",
                "--offset",
                "1d",
                "--after",
                "g",
                "--disabled",
                "--file-dates-in-tz",
            ],
            &["list", "--tenant", "t", "--json"],
            &["show", "--tenant", "t", "n"],
            &["edit", "--tenant", "t", "n", "--wait", "90s", "--no-after"],
            &[
                "run",
                "--tenant",
                "t",
                "n",
                "--day",
                "2026-03-08",
                "--day",
                "2026-03-09",
            ],
            &["next", "--tenant", "t", "n", "--count", "100"],
            &["runs", "--tenant", "t", "n", "--json"],
        ];
        for args in good {
            assert!(parse(args).is_ok(), "{args:?}: {:?}", parse(args).err());
        }
        let bad: &[&[&str]] = &[
            &[
                "add",
                "--tenant",
                "t",
                "--name",
                "n",
                "--cron",
                "* * * * *",
                "--tz",
                "UTC",
            ],
            &[
                "add",
                "--tenant",
                "t",
                "--name",
                "n",
                "--cron",
                "* * * * *",
                "--tz",
                "UTC",
                "--courier",
                "a",
                "--wait",
                "2",
            ],
            &["edit", "--tenant", "t", "n", "--after", "g", "--no-after"],
            &[
                "edit",
                "--tenant",
                "t",
                "n",
                "--file-dates-in-tz",
                "--file-dates-in-utc",
            ],
            &["next", "--tenant", "t", "n", "--count", "0"],
            &["next", "--tenant", "t", "n", "--count", "101"],
        ];
        for args in bad {
            let error = parse(args).err().unwrap_or_else(|| panic!("{args:?} parsed"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn add_list_show_next_run_runs() {
        let dir = TempDir::new("cli");
        let mut store = Store::open(&dir.0).expect("open");
        store.tenant_add("acme").expect("tenant");
        let now = "2026-03-07T00:00:00Z";
        let added = group(
            &mut store,
            now,
            &[
                "add",
                "--tenant",
                "acme",
                "--name",
                "nightly",
                "--cron",
                "30 2 * * *",
                "--tz",
                "America/Los_Angeles",
                "--courier",
                "c-web",
                "--courier",
                "c-bad",
                "--wait",
                "2h",
            ],
        );
        assert_eq!(added, Ok(String::new()));
        assert_eq!(
            group(&mut store, now, &["list", "--tenant", "acme"]),
            Ok(
                "NAME     CRON        TZ                   STATUS   WAIT  OFFSET  COURIERS\n\
                nightly  30 2 * * *  America/Los_Angeles  enabled  2h    1d      c-web,c-bad\n"
                    .to_string()
            )
        );
        let listed = group(&mut store, now, &["list", "--tenant", "acme", "--json"]).expect("list");
        let listed: serde_json::Value = serde_json::from_str(&listed).expect("json");
        assert_eq!(listed[0]["name"], "nightly");
        assert_eq!(listed[0]["couriers"], serde_json::json!(["c-web", "c-bad"]));
        assert_eq!(listed[0]["wait_seconds"], 7200);
        assert_eq!(listed[0]["offset_seconds"], 86400);
        assert_eq!(listed[0]["file_dates_in_tz"], false);
        let shown = group(&mut store, now, &["show", "--tenant", "acme", "nightly"]).expect("show");
        assert!(shown.contains("file dates:  in UTC\n"), "{shown}");
        assert_eq!(
            group(
                &mut store,
                now,
                &["next", "--tenant", "acme", "nightly", "--count", "3"]
            ),
            Ok(
                "2026-03-07T02:30:00-08:00\n2026-03-08T03:00:00-07:00\n2026-03-09T02:30:00-07:00\n"
                    .to_string()
            )
        );
        let next_json = group(
            &mut store,
            now,
            &["next", "--tenant", "acme", "nightly", "--count", "2", "--json"],
        )
        .expect("next --json");
        let next_json: Vec<String> = serde_json::from_str(&next_json).expect("a JSON array");
        assert_eq!(
            next_json,
            ["2026-03-07T02:30:00-08:00", "2026-03-08T03:00:00-07:00"]
        );
        // A run by hand fails because one courier fails; it still prints its id.
        let ran = group(
            &mut store,
            now,
            &["run", "--tenant", "acme", "nightly", "--day", "2026-03-08"],
        );
        assert_eq!(
            ran,
            Err("group \"nightly\" failed for 2026-03-08: courier \"c-bad\": Cannot find required feeds: \"df-x\""
                .to_string())
        );
        let runs = group(
            &mut store,
            now,
            &["runs", "--tenant", "acme", "nightly", "--json"],
        )
        .expect("runs");
        let runs: serde_json::Value = serde_json::from_str(&runs).expect("json");
        assert_eq!(runs[0]["status"], "failed");
        assert_eq!(runs[0]["trigger"], "manual");
        assert_eq!(runs[0]["window_from"], "2026-03-08T00:00:00Z");
        assert_eq!(runs[0]["couriers"][0]["run_id"], "run-c-web");
        assert_eq!(runs[0]["couriers"][1]["succeeded"], false);
        // Without --day: today in UTC (the 7th, though still the 6th in
        // LA), as the group reads file dates in UTC.
        group(
            &mut store,
            now,
            &["edit", "--tenant", "acme", "nightly", "--courier", "c-web"],
        )
        .expect("edit");
        assert_eq!(
            group(&mut store, now, &["run", "--tenant", "acme", "nightly"]),
            Ok("2\n".to_string())
        );
        let runs = group(&mut store, now, &["runs", "--tenant", "acme", "nightly"]).expect("runs");
        assert!(
            runs.starts_with("ID  SCHEDULED             TRIGGER    STATUS     WINDOW"),
            "{runs}"
        );
        assert!(runs.contains("2   2026-03-07T00:00:00Z  manual"), "{runs}");
        assert!(runs.contains("    c-web"), "{runs}");
        // A day that does not exist is refused with the reason.
        let error = group(
            &mut store,
            now,
            &["run", "--tenant", "acme", "nightly", "--day", "2026-02-30"],
        )
        .expect_err("no such day");
        assert!(error.contains("2026-02-30"), "{error}");
    }

    #[test]
    fn days_are_dates_today_or_yesterday() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 1).expect("date");
        assert_eq!(parse_day("today", today).ok(), Some(today));
        assert_eq!(
            parse_day("yesterday", today).ok(),
            NaiveDate::from_ymd_opt(2026, 2, 28)
        );
        assert_eq!(
            parse_day("2026-01-31", today).ok(),
            NaiveDate::from_ymd_opt(2026, 1, 31)
        );
        for bad in ["2026-02-30", "2026-1-31", "tomorrow", ""] {
            assert!(parse_day(bad, today).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals_are_one_line_reasons() {
        let dir = TempDir::new("cli-refusals");
        let mut store = Store::open(&dir.0).expect("open");
        store.tenant_add("acme").expect("tenant");
        let now = "2026-03-07T00:00:00Z";
        let add = |cron: &'static str, tz: &'static str, courier: &'static str| -> Vec<&'static str> {
            vec![
                "add",
                "--tenant",
                "acme",
                "--name",
                "g",
                "--cron",
                cron,
                "--tz",
                tz,
                "--courier",
                courier,
            ]
        };
        let cases = [
            (
                add("61 * * * *", "UTC", "c-1"),
                "invalid cron \"61 * * * *\": minute 61 is out of range 0-59",
            ),
            (
                add("* * * * *", "America/Springfield", "c-1"),
                "unknown time zone \"America/Springfield\": use an IANA name such as America/Los_Angeles",
            ),
            (
                add("* * * * *", "UTC", "web"),
                "unknown courier \"web\" in tenant \"acme\"",
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(
                group(&mut store, now, &args),
                Err(expected.to_string()),
                "{args:?}"
            );
        }
        assert_eq!(
            group(&mut store, now, &["next", "--tenant", "acme", "nope"]),
            Err("no group \"nope\" in tenant \"acme\"".to_string())
        );
    }
}
