//! End-to-end tests of the operator's host and client helpers (issue 5):
//! `sluice doctor` on this host, and `sluice postman` collections replayed
//! against a real server.

mod common;

use common::*;

/// Splits doctor's stdout into lines and checks each one's shape.
fn doctor_lines(stdout: &[u8]) -> Vec<String> {
    let text = String::from_utf8(stdout.to_vec()).expect("utf-8 stdout");
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert!(!lines.is_empty(), "doctor printed nothing");
    for line in &lines {
        let (verdict, rest) = line.split_once(": ").expect("verdict: rest");
        assert!(verdict == "ok" || verdict == "change", "{line}");
        let (what, why) = rest.split_once(" — ").expect("what — why");
        assert!(!what.is_empty() && !why.is_empty(), "{line}");
    }
    lines
}

#[test]
fn doctor_exits_1_exactly_when_a_line_says_change() {
    let data = DataDir::new("doctor");
    let dir = data.path.join("not-yet");
    let output = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(&dir)
        .arg("doctor")
        .output()
        .expect("run doctor");
    let lines = doctor_lines(&output.stdout);
    let changes = lines.iter().filter(|line| line.starts_with("change: ")).count();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    match output.status.code() {
        Some(0) => {
            assert_eq!(changes, 0, "{lines:#?}");
            assert_eq!(stderr, "");
        }
        Some(1) => {
            assert!(changes > 0, "{lines:#?}");
            let noun = if changes == 1 {
                "change (the line"
            } else {
                "changes (the lines"
            };
            assert_eq!(
                stderr,
                format!("sluice: error: the host needs {changes} {noun} starting with change:)\n")
            );
        }
        other => panic!("doctor exited {other:?}: {stderr}"),
    }
    assert!(
        lines[0].starts_with("ok: io_uring — ") || lines[0].starts_with("change: io_uring_setup fails ("),
        "the first line is about io_uring: {}",
        lines[0]
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains(&format!("data directory {}", dir.display()))),
        "{lines:#?}"
    );
    assert!(!dir.exists(), "doctor only reads; it created {}", dir.display());
}

#[test]
fn doctor_judges_the_configured_workers() {
    let data = DataDir::new("doctor-config");
    let config = data.path.join("sluice.toml");
    std::fs::write(&config, "workers = 1024\nconnections_per_worker_max = 1\n").expect("write config");
    let output = data.cli(&["doctor", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
    let lines = doctor_lines(&output.stdout);
    let cores = std::thread::available_parallelism().expect("cores").get();
    assert!(
        lines.contains(&format!(
            "change: 1024 workers on {cores} cores — set workers = {cores} (or --workers): thread-per-core workers sharing a core preempt each other mid-request"
        )),
        "{lines:#?}"
    );
}

/// Regression: doctor exited 1 ("the host needs changes") also when it
/// could not check at all, so a script could not tell a bad host from a
/// bad invocation. Its own failures exit 2, with the usual one-line reason.
#[test]
fn doctor_exits_2_when_it_cannot_check() {
    let data = DataDir::new("doctor-fails");
    let config = data.path.join("sluice.toml");
    std::fs::write(&config, "workers = 0\n").expect("write config");
    let output = data.cli(&["doctor", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "sluice: error: workers = 0: must be between 1 and 1024\n"
    );

    let missing = data.path.join("missing.toml");
    let output = data.cli(&["doctor", "--config", missing.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        stderr.starts_with("sluice: error: ") && stderr.ends_with('\n') && stderr.lines().count() == 1,
        "{stderr:?}"
    );
    assert!(
        stderr.contains("missing.toml"),
        "the reason names the file: {stderr:?}"
    );

    // Findings it cannot print are no verdict either.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    let output = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(&data.path)
        .arg("doctor")
        .stdout(full)
        .output()
        .expect("run doctor");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        stderr.starts_with("sluice: error: ") && stderr.lines().count() == 1,
        "{stderr:?}"
    );
}

/// The collection as JSON, from `sluice postman`.
fn postman(data: &DataDir, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["postman"];
    all.extend_from_slice(args);
    serde_json::from_str(&data.ok(&all)).expect("postman prints JSON")
}

#[test]
fn postman_collection_has_one_request_per_stream() {
    let data = DataDir::new("postman");
    let s = setup(&data, "acme");
    setup(&data, "other");
    let collection = postman(&data, &["--tenant", "acme"]);
    assert_eq!(
        collection["info"]["schema"],
        "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
    );
    let variables: Vec<(String, String)> = collection["variable"]
        .as_array()
        .expect("variables")
        .iter()
        .map(|v| {
            (
                v["key"].as_str().expect("key").to_owned(),
                v["value"].as_str().expect("value").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        variables,
        [
            ("host".to_owned(), "http://127.0.0.1:8080".to_owned()),
            ("tenant".to_owned(), "acme".to_owned()),
            ("token".to_owned(), String::new()),
        ]
    );
    let items = collection["item"].as_array().expect("items");
    let summary: Vec<(String, String, String)> = items
        .iter()
        .map(|item| {
            let request = &item["request"];
            (
                item["name"].as_str().expect("name").to_owned(),
                request["url"]["raw"].as_str().expect("url").to_owned(),
                request["header"][0]["value"]
                    .as_str()
                    .expect("content type")
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                format!("events ({})", s.json_stream),
                format!("{{{{host}}}}/stream/v0/data/{}", s.json_stream),
                "application/json".to_owned()
            ),
            (
                format!("profiles ({})", s.xml_stream),
                format!("{{{{host}}}}/stream/v0/data/{}", s.xml_stream),
                "application/xml".to_owned()
            ),
        ]
    );
    for item in items {
        assert_eq!(item["request"]["method"], "POST");
        assert_eq!(
            item["request"]["header"][1],
            serde_json::json!({"key": "X-Amperity-Tenant", "value": "{{tenant}}"})
        );
        assert_eq!(
            item["request"]["header"][2],
            serde_json::json!({"key": "Authorization", "value": "Bearer {{token}}"})
        );
        let script = item["event"][0]["script"]["exec"].to_string();
        assert!(script.contains("pm.response.to.have.status(202)"), "{script}");
    }

    let one = postman(
        &data,
        &[
            "--tenant",
            "acme",
            "--stream",
            &s.xml_stream,
            "--host",
            "http://10.0.0.1:9000/",
        ],
    );
    assert_eq!(one["item"].as_array().expect("items").len(), 1);
    assert_eq!(one["item"][0]["request"]["url"]["path"][3], s.xml_stream.as_str());
    assert_eq!(one["variable"][0]["value"], "http://10.0.0.1:9000");

    let deleted = data.cli(&["stream", "delete", "--tenant", "acme", &s.json_stream]);
    assert!(deleted.status.success());
    let after = postman(&data, &["--tenant", "acme"]);
    assert_eq!(
        after["item"].as_array().expect("items").len(),
        1,
        "deleted streams are left out"
    );

    let unknown = data.cli(&["postman", "--tenant", "nobody"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&unknown.stderr),
        "sluice: error: unknown tenant \"nobody\"\n"
    );
}

/// What newman does, without newman: every request of the collection, with
/// the variables filled in, is answered 202 by a real server.
#[test]
fn postman_requests_are_accepted_by_a_running_server() {
    let data = DataDir::new("postman-replay");
    let s = setup(&data, "acme");
    let collection = postman(&data, &["--tenant", "acme"]);
    let server = Server::start(&data);
    let fill = |text: &str| {
        text.replace("{{host}}", &format!("http://{}", server.addr))
            .replace("{{tenant}}", &s.tenant)
            .replace("{{token}}", &s.token)
    };
    for item in collection["item"].as_array().expect("items") {
        let request = &item["request"];
        let url = fill(request["url"]["raw"].as_str().expect("url"));
        let path = url
            .strip_prefix(&format!("http://{}", server.addr))
            .expect("url on the server");
        let stream = path.strip_prefix("/stream/v0/data/").expect("stream path");
        let header = |index: usize| fill(request["header"][index]["value"].as_str().expect("header"));
        assert_eq!(header(1), s.tenant);
        let token = header(2);
        let token = token.strip_prefix("Bearer ").expect("bearer");
        let body = request["body"]["raw"].as_str().expect("body");
        let response = server.send(&post(stream, &header(1), token, &header(0), body.as_bytes()));
        assert_eq!(
            response.status,
            202,
            "{}: {:?}",
            item["name"],
            String::from_utf8_lossy(&response.body)
        );
    }
    assert!(server.stop().success());
    assert_eq!(
        data.sealed_lines(),
        [r#"{"field1":"value1","field2":"value2"}"#.to_owned()]
    );
    assert_eq!(data.sealed_files().len(), 2, "one NDJSON and one CBOR file");
}
