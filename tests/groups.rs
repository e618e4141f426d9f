//! End-to-end tests of courier groups (SPEC §6) against the real binary:
//! refusals with reasons, and a group scheduled every minute that loads
//! streamed records into a domain table with no manual run.

mod common;

use std::time::Duration;

use common::{DataDir, Server, eventually, post, setup};

/// `sluice <args>` must fail with exit code 1 and exactly this one-line
/// reason.
fn refused(data: &DataDir, args: &[&str], reason: &str) {
    let output = data.cli(args);
    assert_eq!(output.status.code(), Some(1), "sluice {args:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!("sluice: error: {reason}\n"),
        "sluice {args:?}"
    );
    assert!(output.stdout.is_empty(), "sluice {args:?}");
}

#[test]
fn invalid_cron_lines_unknown_zones_and_unknown_couriers_are_refused_with_a_reason() {
    let data = DataDir::new("group-refusals");
    data.ok(&["tenant", "add", "acme"]);
    let add = |cron: &'static str, tz: &'static str| -> Vec<&'static str> {
        vec![
            "group",
            "add",
            "--tenant",
            "acme",
            "--name",
            "nightly",
            "--cron",
            cron,
            "--tz",
            tz,
            "--courier",
            "web",
        ]
    };
    refused(
        &data,
        &add("61 * * * *", "UTC"),
        "invalid cron \"61 * * * *\": minute 61 is out of range 0-59",
    );
    refused(
        &data,
        &add("30 8 * *", "UTC"),
        "invalid cron \"30 8 * *\": expected 5 fields (minute hour day-of-month month day-of-week), found 4",
    );
    refused(
        &data,
        &add("30 8 * * *", "Europe/Atlantis"),
        "unknown time zone \"Europe/Atlantis\": use an IANA name such as America/Los_Angeles",
    );
    // No courier named `web` exists in this data directory.
    refused(
        &data,
        &add("30 8 * * *", "Europe/Berlin"),
        "unknown courier \"web\" in tenant \"acme\"",
    );
    refused(
        &data,
        &["group", "next", "--tenant", "acme", "nightly"],
        "no group \"nightly\" in tenant \"acme\"",
    );
    assert_eq!(data.ok(&["group", "list", "--tenant", "acme", "--json"]), "[]");
}

/// The `count(*)` of a domain table through `sluice sql --json`, or `None`
/// while the table does not exist yet.
fn row_count(data: &DataDir, tenant: &str, table: &str) -> Option<u64> {
    let output = data.cli(&[
        "sql",
        "--tenant",
        tenant,
        "--json",
        &format!("SELECT count(*) AS n FROM \"{table}\""),
    ]);
    if !output.status.success() {
        return None;
    }
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    rows[0]["n"].as_u64()
}

/// The seed's walk-through without a single manual run: records streamed
/// in, a feed made from a sealed file, a courier bound to it, and a group
/// firing every minute loads them into `Streaming Ingest:WebEvents`.
#[test]
fn a_group_scheduled_every_minute_loads_streamed_records_without_a_manual_run() {
    let data = DataDir::new("group-every-minute");
    let s = setup(&data, "acme");
    let server = Server::start_with(&data, &[], &[("SLUICE_SEAL_AFTER_SECONDS", "1")]);
    let records = 5;
    for id in 0..records {
        let body = format!(r#"{{"id":"u{id}","email":"u{id}@example.com","n":{id}}}"#);
        let response = server.send(&post(
            &s.json_stream,
            "acme",
            &s.token,
            "application/json",
            body.as_bytes(),
        ));
        assert_eq!(response.status, 202);
    }
    assert!(
        eventually(Duration::from_secs(30), || !data.sealed_files().is_empty()),
        "records were sealed"
    );
    let sample = data.sealed_files()[0].clone();

    data.ok(&[
        "courier",
        "add",
        "--tenant",
        "acme",
        "--name",
        "web",
        "--stream",
        &s.json_stream,
        "--format",
        "ndjson",
        "--file-tag",
        "events",
        "--load-ops",
        "{}",
    ]);
    let feed = data.ok(&[
        "feed",
        "add",
        "--tenant",
        "acme",
        "--source",
        "Streaming Ingest",
        "--name",
        "WebEvents",
        "--sample",
        sample.to_str().expect("utf-8 path"),
        "--primary-key",
        "id",
        "--generate-updated",
    ]);
    data.ok(&["feed", "activate", "--tenant", "acme", &feed]);
    data.ok(&[
        "courier",
        "edit",
        "--tenant",
        "acme",
        "web",
        "--load-ops",
        &format!(r#"{{"{feed}": [{{"type": "load", "file": "events"}}]}}"#),
    ]);
    data.ok(&[
        "group",
        "add",
        "--tenant",
        "acme",
        "--name",
        "every-minute",
        "--cron",
        "* * * * *",
        "--tz",
        "America/Los_Angeles",
        "--courier",
        "web",
    ]);

    // The next minute boundary fires the group; allow two of them.
    assert!(
        eventually(Duration::from_secs(150), || row_count(
            &data,
            "acme",
            "Streaming Ingest:WebEvents"
        ) == Some(records)),
        "the scheduled group loaded every record: {}",
        server.log_text()
    );
    let runs = data.ok(&["group", "runs", "--tenant", "acme", "every-minute", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&runs).expect("json");
    let scheduled_success = runs.as_array().expect("array").iter().any(|run| {
        run["trigger"] == "schedule"
            && run["status"] == "succeeded"
            && run["couriers"][0]["records"] == records
    });
    assert!(scheduled_success, "a scheduled run loaded the records: {runs:#}");
    assert!(server.stop().success());

    // A run by hand over the same day: its window holds sealed files, all
    // loaded already, so it succeeds at once and loads nothing (SPEC §6:
    // only a window with no sealed file at all waits, then fails).
    let day = data.sealed_files()[0]
        .parent()
        .and_then(|hour| hour.parent())
        .and_then(|day| day.file_name())
        .and_then(|day| day.to_str())
        .expect("a day folder")
        .to_string();
    let output = data.cli(&["group", "run", "--tenant", "acme", "every-minute", "--day", &day]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A day with no sealed file: nothing arrived, the run fails.
    let output = data.cli(&[
        "group",
        "run",
        "--tenant",
        "acme",
        "every-minute",
        "--day",
        "2020-01-01",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no sealed files"), "{stderr}");
    // SPEC §7: an error exits non-zero with a one-line reason (the run's
    // log events are the server's, not this command's).
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("sluice: error: "), "{stderr}");
}
