//! End-to-end tests of couriers, feeds, runs and domain tables (SPEC §5)
//! against the real binary: the seed's "Pull from Streaming Ingest"
//! walk-through, the placeholder feed, saved queries over nested JSON and
//! XML, and a run killed with SIGKILL and repeated.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const COURIER: &str = "Streaming Ingest";
const TABLE: &str = "Streaming Ingest:WebEvents";

/// Runs a command that must fail; returns its stderr.
fn fails(data: &DataDir, args: &[&str]) -> (String, String) {
    let output = data.cli(args);
    assert!(!output.status.success(), "sluice {args:?} succeeded");
    assert_eq!(output.status.code(), Some(1), "sluice {args:?}");
    (
        String::from_utf8(output.stdout).expect("utf-8"),
        String::from_utf8(output.stderr).expect("utf-8"),
    )
}

/// `sluice sql --json` parsed.
fn sql(data: &DataDir, tenant: &str, query: &str) -> serde_json::Value {
    let text = data.ok(&["sql", "--tenant", tenant, query, "--json"]);
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("sql output is JSON: {text}"))
}

fn load_ops(feed_id: &str, tag: &str) -> String {
    format!(r#"{{"{feed_id}": [{{"type": "load", "file": "{tag}"}}]}}"#)
}

/// Posts JSON records; each must get a 202.
fn post_json(server: &Server, s: &Setup, bodies: &[&str]) {
    for body in bodies {
        let response = server.send(&post(
            &s.json_stream,
            &s.tenant,
            &s.token,
            "application/json",
            body.as_bytes(),
        ));
        assert_eq!(response.status, 202, "{body}");
    }
}

/// Waits until the sealed NDJSON files hold `lines` lines in all.
fn wait_for_sealed_lines(data: &DataDir, lines: usize) {
    assert!(
        eventually(Duration::from_secs(20), || data.sealed_lines().len() == lines
            && data.open_files().is_empty()),
        "sealed lines: {:?}",
        data.sealed_lines()
    );
}

#[test]
fn seed_walk_through_from_empty_courier_to_rows() {
    let data = DataDir::new("walk");
    let s = setup(&data, "acme");
    let server = Server::start_with(&data, &[], &[("SLUICE_SEAL_AFTER_SECONDS", "1")]);

    // Add courier with empty load operations.
    data.ok(&[
        "courier",
        "add",
        "--tenant",
        "acme",
        "--name",
        COURIER,
        "--stream",
        &s.json_stream,
        "--format",
        "ndjson",
        "--file-tag",
        "web-events",
        "--load-ops",
        "{}",
    ]);
    post_json(
        &server,
        &s,
        &[
            r#"{"id": "c1", "email": "one@example.com", "event": "view"}"#,
            r#"{"id": "c2", "email": "two@example.com", "event": "click"}"#,
            r#"{"id": "c3", "email": "three@example.com", "event": "view"}"#,
        ],
    );
    wait_for_sealed_lines(&data, 3);

    // Get sample files: a run for today with `{}` succeeds and loads nothing.
    let summary = data.ok(&["courier", "run", "--tenant", "acme", COURIER, "--day", "today"]);
    assert!(
        summary.contains(" succeeded: 1 file, 0 records, 0 rejected. Completed in "),
        "{summary}"
    );
    let samples = data.ok(&["courier", "samples", "--tenant", "acme", COURIER]);
    let sample = samples
        .lines()
        .next()
        .expect("one sample")
        .split('\t')
        .next()
        .expect("path")
        .to_owned();
    assert_eq!(PathBuf::from(&sample), data.sealed_files()[0]);
    let as_json = data.ok(&["courier", "samples", "--tenant", "acme", COURIER, "--json"]);
    let as_json: serde_json::Value = serde_json::from_str(&as_json).expect("a JSON array");
    assert_eq!(as_json[0]["path"], sample.as_str());

    // Add the feed from the sample and activate it.
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
        &sample,
        "--primary-key",
        "id",
        "--tag",
        "email=email",
        "--tag",
        "id=customer-id",
        "--generate-updated",
        "--stitch",
    ]);
    assert!(feed.starts_with("df-") && feed.len() == 9, "{feed}");
    let shown: serde_json::Value =
        serde_json::from_str(&data.ok(&["feed", "show", "--tenant", "acme", &feed, "--json"])).expect("json");
    assert_eq!(shown["table"], TABLE);
    assert_eq!(
        shown["columns"],
        serde_json::json!([
            {"name": "id", "type": "TEXT"},
            {"name": "email", "type": "TEXT"},
            {"name": "event", "type": "TEXT"}
        ])
    );
    assert_eq!(shown["active"], false);
    data.ok(&["feed", "activate", "--tenant", "acme", &feed]);
    assert_eq!(
        sql(&data, "acme", &format!("SELECT count(*) AS n FROM \"{TABLE}\"")),
        serde_json::json!([{"n": 0}])
    );

    // Add load operations, run again: rows in the domain table.
    data.ok(&[
        "courier",
        "edit",
        "--tenant",
        "acme",
        "--name",
        COURIER,
        "--load-ops",
        &load_ops(&feed, "web-events"),
    ]);
    let summary = data.ok(&["courier", "run", "--tenant", "acme", COURIER, "--day", "today"]);
    assert!(
        summary.contains(" succeeded: 1 file, 3 records, 0 rejected. Completed in "),
        "{summary}"
    );
    let query = format!("SELECT id, email, event FROM \"{TABLE}\" ORDER BY id");
    let first = serde_json::json!([
        {"id": "c1", "email": "one@example.com", "event": "view"},
        {"id": "c2", "email": "two@example.com", "event": "click"},
        {"id": "c3", "email": "three@example.com", "event": "view"}
    ]);
    assert_eq!(sql(&data, "acme", &query), first);

    // A second run finds nothing new.
    let summary = data.ok(&["courier", "run", "--tenant", "acme", COURIER, "--day", "today"]);
    assert!(summary.contains(" succeeded: 0 files, 0 records"), "{summary}");
    assert_eq!(sql(&data, "acme", &query), first);

    // Newer records for the same keys update rows instead of adding them.
    post_json(
        &server,
        &s,
        &[
            r#"{"id": "c1", "email": "new-one@example.com", "event": "view"}"#,
            r#"{"id": "c3", "email": "three@example.com", "event": "view"}"#,
        ],
    );
    wait_for_sealed_lines(&data, 5);
    let summary = data.ok(&["courier", "run", "--tenant", "acme", COURIER, "--day", "today"]);
    assert!(summary.contains(" succeeded: 1 file, 2 records"), "{summary}");
    assert_eq!(
        sql(&data, "acme", &query),
        serde_json::json!([
            {"id": "c1", "email": "new-one@example.com", "event": "view"},
            {"id": "c2", "email": "two@example.com", "event": "click"},
            {"id": "c3", "email": "three@example.com", "event": "view"}
        ])
    );
    // The re-delivered c3 kept its first `updated`; c1 got a later one.
    let updated = sql(
        &data,
        "acme",
        &format!("SELECT id, updated FROM \"{TABLE}\" ORDER BY id"),
    );
    assert!(
        updated[0]["updated"].as_str() > updated[1]["updated"].as_str(),
        "{updated}"
    );
    assert_eq!(updated[1]["updated"], updated[2]["updated"], "{updated}");

    // Runs, tables and the human-readable views.
    let runs: serde_json::Value =
        serde_json::from_str(&data.ok(&["run", "list", "--tenant", "acme", "--courier", COURIER, "--json"]))
            .expect("json");
    let statuses: Vec<&str> = runs
        .as_array()
        .expect("array")
        .iter()
        .map(|run| run["status"].as_str().expect("status"))
        .collect();
    assert_eq!(statuses, ["succeeded"; 4]);
    let run_id = runs[0]["id"].as_str().expect("id");
    let shown = data.ok(&["run", "show", "--tenant", "acme", run_id]);
    assert!(
        shown.contains("status:    succeeded") && shown.contains("records:   2"),
        "{shown}"
    );
    let tables = data.ok(&["table", "list", "--tenant", "acme"]);
    assert!(
        tables.contains(
            "Streaming Ingest:WebEvents          3     id TEXT, email TEXT, event TEXT, updated TEXT"
        ),
        "{tables}"
    );
    let rows = data.ok(&["table", "show", "--tenant", "acme", TABLE, "--limit", "1"]);
    assert_eq!(rows.lines().count(), 2, "{rows}");
    let header: Vec<&str> = rows.lines().next().expect("header").split_whitespace().collect();
    assert_eq!(header, ["id", "email", "event", "updated"], "{rows}");
    assert!(server.stop().success());
}

/// A stream of the tenant with one sealed NDJSON file written the way the
/// segment writer lays files out; returns the file.
fn sealed_file(
    data: &DataDir,
    tenant: &str,
    stream: &str,
    day_hour: (&str, &str),
    name: &str,
    content: &str,
) -> PathBuf {
    let dir = data
        .path
        .join("tenants")
        .join(tenant)
        .join("streams")
        .join(stream)
        .join(day_hour.0)
        .join(day_hour.1);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join(format!("{stream}_{name}"));
    std::fs::write(&path, content).expect("write");
    path
}

#[test]
fn placeholder_feed_fails_the_run_and_loads_nothing() {
    let data = DataDir::new("placeholder");
    let s = setup(&data, "acme");
    let file = sealed_file(
        &data,
        "acme",
        &s.json_stream,
        ("2026-01-31", "08"),
        "a.ndjson",
        "{\"id\":1}\n",
    );
    sealed_file(
        &data,
        "acme",
        &s.json_stream,
        ("2026-01-31", "08"),
        "b.ndjson.open",
        "{\"id\":2}\n",
    );
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
        &load_ops("df-xxxxxx", "events"),
    ]);
    let (stdout, stderr) = fails(
        &data,
        &["courier", "run", "--tenant", "acme", "web", "--day", "2026-01-31"],
    );
    assert!(
        stdout.contains(" failed: 1 file, 0 records, 0 rejected. Cannot find required feeds: \"df-xxxxxx\""),
        "{stdout}"
    );
    assert_eq!(
        stderr,
        "sluice: error: Cannot find required feeds: \"df-xxxxxx\"\n"
    );
    assert_eq!(data.ok(&["table", "list", "--tenant", "acme", "--json"]), "[]");
    // The file still became a sample (the `.open` one did not).
    let samples = data.ok(&["courier", "samples", "--tenant", "acme", "web"]);
    assert_eq!(samples.lines().count(), 1, "{samples}");
    assert!(
        samples.starts_with(&format!("{}\trun-", file.display())),
        "{samples}"
    );
    let runs: serde_json::Value =
        serde_json::from_str(&data.ok(&["run", "list", "--tenant", "acme", "--json"])).expect("json");
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[0]["message"], "Cannot find required feeds: \"df-xxxxxx\"");
    // Run again with the data directory named relative to the working
    // directory: the sample it records still names the file from anywhere.
    let parent = data.path.parent().expect("parent");
    let relative = data.path.file_name().expect("name");
    let output = Command::new(BIN)
        .current_dir(parent)
        .arg("--data-dir")
        .arg(relative)
        .args(["courier", "run", "--tenant", "acme", "web", "--day", "2026-01-31"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    // (A relative path would be a second, different sample.)
    let samples = data.ok(&["courier", "samples", "--tenant", "acme", "web"]);
    assert_eq!(samples.lines().count(), 1, "{samples}");
    assert!(
        samples.starts_with(&format!("{}\trun-", file.display())),
        "{samples}"
    );
}

#[test]
fn couriers_are_refused_with_one_line_reasons() {
    let data = DataDir::new("refusals");
    let s = setup(&data, "acme");
    let base = |stream: &str, format: &str| -> Vec<String> {
        [
            "courier",
            "add",
            "--tenant",
            "acme",
            "--name",
            "c",
            "--stream",
            stream,
            "--format",
            format,
            "--file-tag",
            "t",
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect()
    };
    let with = |mut args: Vec<String>, extra: &[&str]| {
        args.extend(extra.iter().map(|arg| arg.to_string()));
        args
    };
    let cases: Vec<(Vec<String>, String)> = vec![
        (base("is-AAAAAAAA", "ndjson"), "no stream is-AAAAAAAA in tenant \"acme\"".to_string()),
        (
            base(&s.xml_stream, "ndjson"),
            format!("stream {} carries xml records, stored as cbor; a courier of it must use --format cbor", s.xml_stream),
        ),
        (
            with(base(&s.json_stream, "ndjson"), &["--hour", "24"]),
            "hour \"24\" is outside 00-23: files are kept in UTC hour folders 00 (midnight to 1 AM) to 23 (11 PM to midnight)"
                .to_string(),
        ),
        (
            with(base(&s.json_stream, "ndjson"), &["--load-ops", "df-xxxxxx"]),
            "load operations must look like {\"df-abc123\": [{\"type\": \"load\", \"file\": \"<file tag>\"}]} or {}: not JSON (expected value at line 1 column 1)".to_string(),
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_, stderr) = fails(&data, &args);
        assert_eq!(stderr, format!("sluice: error: {expected}\n"), "{args:?}");
    }
    assert_eq!(data.ok(&["courier", "list", "--tenant", "acme", "--json"]), "[]");
    let (_, stderr) = fails(&data, &["sql", "--tenant", "acme", "DELETE FROM x"]);
    assert!(stderr.starts_with("sluice: error: "), "{stderr}");
    let (_, stderr) = fails(&data, &["table", "list", "--tenant", "nobody"]);
    assert_eq!(stderr, "sluice: error: unknown tenant \"nobody\"\n");
}

#[test]
fn saved_queries_turn_nested_json_and_xml_into_rows() {
    let data = DataDir::new("queries");
    let s = setup(&data, "acme");
    let server = Server::start(&data);
    post_json(
        &server,
        &s,
        &[
            r#"{"customer": {"id": "c1", "name": {"given": "Ada", "family": "Lovelace"}}, "total": 12.5, "items": [1, 2]}"#,
            r#"{"customer": {"id": "c2", "name": {"given": "Alan", "family": "Turing"}}, "total": 3, "items": []}"#,
        ],
    );
    for xml in [
        "<profile id=\"p1\"><email>ada@example.com</email><address><city>London</city></address></profile>",
        "<profile id=\"p2\"><email>alan@example.com</email><address><city>Wilmslow</city></address></profile>",
    ] {
        let response = server.send(&post(
            &s.xml_stream,
            &s.tenant,
            &s.token,
            "application/xml",
            xml.as_bytes(),
        ));
        assert_eq!(response.status, 202);
    }
    assert!(server.stop().success());

    // Nested JSON: without a query the nested value is a JSON text column;
    // with one it is flattened.
    data.ok(&[
        "courier",
        "add",
        "--tenant",
        "acme",
        "--name",
        "orders",
        "--stream",
        &s.json_stream,
        "--format",
        "ndjson",
        "--file-tag",
        "orders",
    ]);
    data.ok(&["courier", "run", "--tenant", "acme", "orders", "--all"]);
    let samples = data.ok(&["courier", "samples", "--tenant", "acme", "orders"]);
    let json_sample = samples.split('\t').next().expect("path").to_owned();
    let plain = data.ok(&[
        "feed",
        "add",
        "--tenant",
        "acme",
        "--source",
        "Streaming Ingest",
        "--name",
        "RawOrders",
        "--sample",
        &json_sample,
        "--primary-key",
        "customer",
    ]);
    let query_file = data.path.join("orders.sql");
    std::fs::write(
        &query_file,
        "SELECT json_extract(record, '$.customer.id') AS customer_id,\n\
         json_extract(record, '$.customer.name.given') AS given_name,\n\
         json_extract(record, '$.customer.name.family') AS surname,\n\
         json_extract(record, '$.total') AS total\nFROM raw\n",
    )
    .expect("write query");
    let flat = data.ok(&[
        "feed",
        "add",
        "--tenant",
        "acme",
        "--source",
        "Streaming Ingest",
        "--name",
        "Orders",
        "--sample",
        &json_sample,
        "--primary-key",
        "customer_id",
        "--tag",
        "given_name=given-name",
        "--tag",
        "surname=surname",
        "--query",
        &format!("@{}", query_file.display()),
    ]);
    for feed in [&plain, &flat] {
        data.ok(&["feed", "activate", "--tenant", "acme", feed, "--load-sample"]);
    }
    assert_eq!(
        sql(
            &data,
            "acme",
            "SELECT customer, total, items FROM \"Streaming Ingest:RawOrders\" ORDER BY customer"
        ),
        serde_json::json!([
            {"customer": "{\"id\":\"c1\",\"name\":{\"given\":\"Ada\",\"family\":\"Lovelace\"}}", "total": 12.5, "items": "[1,2]"},
            {"customer": "{\"id\":\"c2\",\"name\":{\"given\":\"Alan\",\"family\":\"Turing\"}}", "total": 3.0, "items": "[]"}
        ])
    );
    assert_eq!(
        sql(
            &data,
            "acme",
            "SELECT customer_id, given_name, surname, total FROM \"Streaming Ingest:Orders\" ORDER BY customer_id"
        ),
        serde_json::json!([
            {"customer_id": "c1", "given_name": "Ada", "surname": "Lovelace", "total": 12.5},
            {"customer_id": "c2", "given_name": "Alan", "surname": "Turing", "total": 3.0}
        ])
    );

    // XML: CBOR records rendered to JSON, flattened by a query, loaded by
    // a courier run.
    data.ok(&[
        "courier",
        "add",
        "--tenant",
        "acme",
        "--name",
        "profiles",
        "--stream",
        &s.xml_stream,
        "--format",
        "cbor",
        "--file-tag",
        "profiles",
    ]);
    data.ok(&["courier", "run", "--tenant", "acme", "profiles", "--all"]);
    let samples = data.ok(&["courier", "samples", "--tenant", "acme", "profiles"]);
    let cbor_sample = samples.split('\t').next().expect("path").to_owned();
    assert!(cbor_sample.ends_with(".cbor"), "{cbor_sample}");
    let profiles = data.ok(&[
        "feed", "add", "--tenant", "acme", "--source", "Streaming Ingest", "--name", "Profiles", "--sample", &cbor_sample,
        "--primary-key", "profile_id", "--tag", "email=email", "--tag", "city=city", "--query",
        "SELECT json_extract(record, '$.profile.@id') AS profile_id, json_extract(record, '$.profile.email') AS email, \
         json_extract(record, '$.profile.address.city') AS city FROM raw",
    ]);
    data.ok(&["feed", "activate", "--tenant", "acme", &profiles]);
    data.ok(&[
        "courier",
        "edit",
        "--tenant",
        "acme",
        "profiles",
        "--load-ops",
        &load_ops(&profiles, "profiles"),
    ]);
    let summary = data.ok(&["courier", "run", "--tenant", "acme", "profiles", "--all"]);
    assert!(
        summary.contains(" succeeded: 1 file, 2 records, 0 rejected."),
        "{summary}"
    );
    assert_eq!(
        sql(
            &data,
            "acme",
            "SELECT profile_id, email, city FROM \"Streaming Ingest:Profiles\" ORDER BY profile_id"
        ),
        serde_json::json!([
            {"profile_id": "p1", "email": "ada@example.com", "city": "London"},
            {"profile_id": "p2", "email": "alan@example.com", "city": "Wilmslow"}
        ])
    );
}

#[test]
fn a_run_killed_mid_way_and_repeated_loads_every_record_once() {
    const FILES: usize = 40;
    const RECORDS_PER_FILE: usize = 5_000;
    let data = DataDir::new("kill");
    let s = setup(&data, "acme");
    let mut sample = None;
    for file in 0..FILES {
        let mut content = String::with_capacity(RECORDS_PER_FILE * 80);
        for record in 0..RECORDS_PER_FILE {
            content.push_str(&format!(
                "{{\"id\":\"{file}-{record}\",\"file\":{file},\"pad\":\"{}\"}}\n",
                "x".repeat(40)
            ));
        }
        let hour = format!("{:02}", file % 24);
        let day = if file < 24 { "2026-01-30" } else { "2026-01-31" };
        let path = sealed_file(
            &data,
            "acme",
            &s.json_stream,
            (day, &hour),
            &format!("{file:03}.ndjson"),
            &content,
        );
        sample.get_or_insert(path);
    }
    let sample = sample.expect("a file");
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
        sample.to_str().expect("utf-8"),
        "--primary-key",
        "id",
    ]);
    data.ok(&["feed", "activate", "--tenant", "acme", &feed]);
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
        &load_ops(&feed, "events"),
    ]);

    let tables_db = data.path.join("tenants/acme/tables.db");
    let ledger_files = || -> i64 {
        let Ok(connection) =
            rusqlite::Connection::open_with_flags(&tables_db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        else {
            return 0;
        };
        connection
            .query_row("SELECT count(*) FROM _sluice_ledger", [], |row| row.get(0))
            .unwrap_or(0)
    };
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data.path)
        .args(["courier", "run", "--tenant", "acme", "web", "--all"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn run");
    let deadline = Instant::now() + Duration::from_secs(60);
    while ledger_files() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(&child, libc::SIGKILL);
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the run finished before it was killed");
    let loaded_before = ledger_files();
    assert!(
        loaded_before >= 1 && (loaded_before as usize) < FILES,
        "{loaded_before} files loaded"
    );

    let summary = data.ok(&["courier", "run", "--tenant", "acme", "web", "--all"]);
    let remaining = FILES - loaded_before as usize;
    assert!(
        summary.contains(&format!(" succeeded: {remaining} files, ")),
        "{summary}"
    );
    let total = (FILES * RECORDS_PER_FILE) as i64;
    assert_eq!(
        sql(
            &data,
            "acme",
            &format!("SELECT count(*) AS n, count(DISTINCT id) AS ids FROM \"{TABLE}\"")
        ),
        serde_json::json!([{"n": total, "ids": total}])
    );
    let connection = rusqlite::Connection::open(&tables_db).expect("open");
    let (files, records): (i64, i64) = connection
        .query_row(
            "SELECT count(*), sum(records) FROM _sluice_ledger WHERE courier = 'web'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("ledger");
    assert_eq!((files, records), (FILES as i64, total));
    let runs: serde_json::Value =
        serde_json::from_str(&data.ok(&["run", "list", "--tenant", "acme", "--json"])).expect("json");
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[1]["status"], "failed");
    assert!(
        runs[1]["message"]
            .as_str()
            .expect("message")
            .starts_with("Interrupted"),
        "{runs}"
    );
    // The killed run reports the files it committed, which stay loaded.
    assert_eq!(runs[1]["files"], loaded_before, "{runs}");
    assert_eq!(
        runs[1]["records"],
        loaded_before * RECORDS_PER_FILE as i64,
        "{runs}"
    );
    // Nothing is left for a third run.
    let summary = data.ok(&["courier", "run", "--tenant", "acme", "web", "--all"]);
    assert!(summary.contains(" succeeded: 0 files, 0 records"), "{summary}");
}
