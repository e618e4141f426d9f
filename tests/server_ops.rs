//! End-to-end tests of the operating surface inside `sluice serve`
//! (issue 5): sd_notify messages, `/metrics`, `/healthz` and `/readyz`,
//! SIGHUP reloads, and logs that never carry tokens or secrets.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::*;

/// Finds the admin address in the `listening` log line.
fn admin_addr(server: &Server) -> std::net::SocketAddr {
    let logs = server.logs.lock().expect("logs");
    for line in logs.iter() {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
            if value["event"] == "listening" {
                return value["admin_addr"]
                    .as_str()
                    .expect("admin_addr")
                    .parse()
                    .expect("addr");
            }
        }
    }
    panic!("no listening line")
}

/// A plain GET on the admin listener: (status, body).
fn admin_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    admin_request(addr, "GET", path)
}

fn admin_request(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let (status, _, body) = admin_raw(
        addr,
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    (status, body)
}

/// Sends raw bytes to the admin listener and reads until it closes:
/// (status, header lines, body).
fn admin_raw(addr: std::net::SocketAddr, raw: &[u8]) -> (u16, Vec<String>, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect admin");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(raw).expect("write");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("an answer, then the connection closed");
    let status = response
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let (head, body) = response.split_once("\r\n\r\n").expect("a complete head");
    let headers = head.lines().skip(1).map(str::to_owned).collect();
    (status, headers, body.to_owned())
}

/// The value of the first sample of `name` (with `label`, if given) in a
/// Prometheus text body.
fn sample(body: &str, name: &str, label: Option<(&str, &str)>) -> f64 {
    let lines = body.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text format");
    scrape
        .samples
        .iter()
        .find(|sample| {
            sample.metric == name && label.is_none_or(|(key, want)| sample.labels.get(key) == Some(want))
        })
        .map(|sample| match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("unexpected sample type for {name}"),
        })
        .unwrap_or_else(|| panic!("no sample {name} {label:?}"))
}

#[test]
fn sd_notify_ready_status_watchdog_and_stopping() {
    let data = DataDir::new("notify");
    let _s = setup(&data, "acme");
    let socket_path = data.path.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let server = Server::start_with(
        &data,
        &[],
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().expect("utf-8")),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.iter().any(|m: &String| m.contains("WATCHDOG=1")) {
        let n = socket.recv(&mut buf).expect("a notify message");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(server.stop().success());
    while let Ok(n) = socket.recv(&mut buf) {
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        if seen.last().is_some_and(|m| m.contains("STOPPING=1")) {
            break;
        }
    }
    let ready = seen
        .iter()
        .position(|m| m.contains("READY=1"))
        .expect("READY=1 sent");
    let watchdog = seen
        .iter()
        .position(|m| m.contains("WATCHDOG=1"))
        .expect("WATCHDOG=1 sent");
    assert!(ready < watchdog, "ready before the first watchdog ping: {seen:?}");
    assert!(seen.iter().any(|m| m.starts_with("STATUS=")), "{seen:?}");
    assert!(seen.iter().any(|m| m.contains("STOPPING=1")), "{seen:?}");
}

#[test]
fn metrics_count_what_was_sent_and_health_endpoints_answer() {
    let data = DataDir::new("metrics");
    let s = setup(&data, "acme");
    let server = Server::start(&data);
    let admin = admin_addr(&server);
    assert!(eventually(Duration::from_secs(5), || admin_get(
        admin, "/healthz"
    )
    .0 == 200));
    assert_eq!(admin_get(admin, "/readyz").0, 200);
    // HEAD (as some health checkers send): the status, no content.
    assert_eq!(admin_request(admin, "HEAD", "/healthz"), (200, String::new()));
    let mut stream = server.connect();
    for n in 0..7 {
        stream
            .write_all(&post(
                &s.json_stream,
                "acme",
                &s.token,
                "application/json",
                format!("{{\"n\":{n}}}").as_bytes(),
            ))
            .expect("write");
        assert_eq!(read_response(&mut stream).expect("response").status, 202);
    }
    for _ in 0..3 {
        stream
            .write_all(&post(&s.json_stream, "acme", "bad", "application/json", b"{}"))
            .expect("write");
        assert_eq!(read_response(&mut stream).expect("response").status, 401);
    }
    let (status, body) = admin_get(admin, "/metrics");
    assert_eq!(status, 200);
    let lines = body.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text format");
    let value = |name: &str, label: Option<(&str, &str)>| sample(&body, name, label);
    assert_eq!(value("sluice_responses_total", Some(("code", "202"))), 7.0);
    assert_eq!(value("sluice_responses_total", Some(("code", "401"))), 3.0);
    assert_eq!(value("sluice_records_total", None), 7.0);
    let stream_202 = scrape.samples.iter().find(|sample| {
        sample.metric == "sluice_stream_responses_total"
            && sample.labels.get("stream") == Some(s.json_stream.as_str())
            && sample.labels.get("code") == Some("202")
    });
    assert!(
        matches!(stream_202.map(|sample| &sample.value), Some(prometheus_parse::Value::Counter(v)) if *v == 7.0),
        "{stream_202:?}"
    );
    assert_eq!(
        value(
            "sluice_stream_records_total",
            Some(("stream", s.json_stream.as_str()))
        ),
        7.0
    );
    assert!(
        value(
            "sluice_open_segment_bytes",
            Some(("stream", s.json_stream.as_str()))
        ) > 0.0
    );
    // Seven records `{"n":N}` plus a newline each: 8 bytes apiece.
    assert_eq!(
        value(
            "sluice_stream_bytes_total",
            Some(("stream", s.json_stream.as_str()))
        ),
        56.0
    );
    assert_eq!(admin_get(admin, "/nowhere").0, 404);
    assert!(server.stop().success());
}

/// Regression (operator audit): every method on an admin path answered
/// 200 with the full body; a query string made `/metrics` a 404; a
/// malformed request got no answer at all.
#[test]
fn admin_answers_only_get_and_head_routes_without_the_query_and_refuses_garbage() {
    let data = DataDir::new("admin-methods");
    let _s = setup(&data, "acme");
    let server = Server::start(&data);
    let admin = admin_addr(&server);
    assert!(eventually(Duration::from_secs(5), || admin_get(admin, "/readyz")
        .0
        == 200));
    for path in ["/healthz", "/readyz", "/metrics"] {
        for method in ["POST", "PUT", "DELETE", "OPTIONS", "get"] {
            let raw = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
            let (status, headers, body) = admin_raw(admin, raw.as_bytes());
            assert_eq!(status, 405, "{method} {path}");
            assert!(
                headers.iter().any(|line| line == "Allow: GET, HEAD"),
                "{method} {path}: {headers:?}"
            );
            let body: serde_json::Value = serde_json::from_str(&body).expect("a JSON error body");
            assert_eq!(body["status"], 405);
            assert_eq!(body["error"], "method-not-allowed");
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        // HEAD: the status and fields of a GET, the length it would send,
        // and no content.
        let (status, headers, body) = admin_raw(
            admin,
            format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        );
        assert_eq!((status, body.as_str()), (200, ""), "HEAD {path}");
        let length = headers
            .iter()
            .find_map(|line| line.strip_prefix("Content-Length: "))
            .expect("Content-Length");
        assert_ne!(length, "0", "HEAD {path}");
    }
    // A Prometheus scrape config's `params:` add a query string.
    let (status, body) = admin_get(admin, "/metrics?module=sluice&x=1");
    assert_eq!(status, 200);
    assert!(sample(&body, "sluice_records_total", None) >= 0.0);
    assert_eq!(admin_get(admin, "/healthz?probe=lb"), (200, "alive\n".to_owned()));
    assert_eq!(admin_get(admin, "/readyz?"), (200, "ready\n".to_owned()));
    assert_eq!(admin_get(admin, "/nowhere?/metrics").0, 404);
    // A malformed request is answered, then the connection closed
    // (`admin_raw` reads to end of file).
    for (raw, status, kind) in [
        (b"GARBAGE\r\n\r\n".as_slice(), 400, "malformed-request-line"),
        (
            b"GET /metrics HTTP/9.9\r\n\r\n".as_slice(),
            400,
            "unsupported-http-version",
        ),
        (
            b"GET /metrics HTTP/1.1\r\nNo Colon\r\n\r\n".as_slice(),
            400,
            "malformed-header",
        ),
    ] {
        let (got, headers, body) = admin_raw(admin, raw);
        let shown = String::from_utf8_lossy(raw);
        assert_eq!(got, status, "{shown:?}");
        assert!(
            headers.iter().any(|line| line == "Connection: close"),
            "{headers:?}"
        );
        let body: serde_json::Value = serde_json::from_str(&body).expect("a JSON error body");
        assert_eq!(body["status"], status);
        assert_eq!(body["error"], kind, "{shown:?}");
    }
    let oversized = format!("GET /metrics HTTP/1.1\r\nX: {}", "a".repeat(16 * 1024));
    let (status, _, body) = admin_raw(admin, oversized.as_bytes());
    assert_eq!(status, 431, "{body}");
    // A body the listener never reads does not cost the client its answer.
    let mut post = b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 32768\r\n\r\n".to_vec();
    post.resize(post.len() + 32 * 1024, b'x');
    assert_eq!(admin_raw(admin, &post).0, 405);
    // The listener still serves after all that.
    assert_eq!(admin_get(admin, "/healthz").0, 200);
    assert!(server.stop().success());
}

/// Regression (operator audit): a connection refused at a worker's cap got
/// its 503 but wrote no `request-failed` line and was not counted in
/// `sluice_events_total`, although every other 5xx is.
#[test]
fn a_connection_refused_at_the_cap_is_logged_and_counted_as_request_failed() {
    let data = DataDir::new("conn-cap");
    let _s = setup(&data, "acme");
    let config = data.path.join("sluice.toml");
    std::fs::write(&config, "connections_per_worker_max = 1\n").expect("write config");
    let server = Server::start_with(&data, &["--config", config.to_str().expect("utf-8")], &[]);
    let admin = admin_addr(&server);
    // Two workers with room for one connection each: of three held
    // connections, at least one lands on a worker that is full.
    let mut held: Vec<_> = (0..3).map(|_| server.connect()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut refused = 0;
    for stream in &mut held {
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        // A kept connection waits for a request: the read times out.
        let Ok(response) = read_response(stream) else {
            continue;
        };
        assert_eq!(response.status, 503);
        assert_eq!(response.error_kind(), "too-many-connections");
        assert!(is_closed(stream), "a refused connection is closed");
        refused += 1;
    }
    assert!((1..=2).contains(&refused), "{refused} of 3 connections refused");
    let failed_lines = || -> Vec<serde_json::Value> {
        server
            .logs
            .lock()
            .expect("logs")
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|value| value["event"] == "request-failed")
            .collect()
    };
    assert!(eventually(Duration::from_secs(5), || failed_lines().len() == refused));
    for line in failed_lines() {
        assert_eq!(line["level"], "warn");
        assert_eq!(line["status"], 503);
        assert_eq!(line["error"], "too-many-connections");
        let id = line["request_id"].as_str().expect("a request_id");
        let (worker, number) = id
            .strip_prefix('w')
            .and_then(|rest| rest.split_once('-'))
            .unwrap_or_else(|| panic!("request_id {id:?} is w<worker>-<n>"));
        assert!(
            worker.parse::<u32>().is_ok() && number.parse::<u64>().is_ok(),
            "{id:?}"
        );
    }
    let (status, body) = admin_get(admin, "/metrics");
    assert_eq!(status, 200);
    let refused = refused as f64;
    assert_eq!(
        sample(&body, "sluice_events_total", Some(("event", "request-failed"))),
        refused
    );
    assert_eq!(
        sample(&body, "sluice_responses_total", Some(("code", "503"))),
        refused
    );
    drop(held);
    assert!(server.stop().success());
}

#[test]
fn sighup_reloads_a_good_file_and_keeps_the_old_config_on_a_bad_one() {
    let data = DataDir::new("sighup");
    let s = setup(&data, "acme");
    let config = data.path.join("sluice.toml");
    std::fs::write(&config, "log_level = \"info\"\n").expect("write config");
    let server = Server::start_with(&data, &["--config", config.to_str().expect("utf-8")], &[]);
    let raw = post(&s.json_stream, "acme", &s.token, "application/json", b"{}");
    let burst = |count: usize| -> Vec<u16> {
        let mut stream = server.connect();
        (0..count)
            .map(|_| {
                stream.write_all(&raw).expect("write");
                read_response(&mut stream).expect("response").status
            })
            .collect()
    };
    assert!(burst(20).iter().all(|&status| status == 202));
    assert!(
        !data.open_files().is_empty(),
        "the records wait in an open segment"
    );
    // A good file: a rate limit appears without a restart, on the same
    // process, and a shorter seal_after seals the open segment.
    std::fs::write(
        &config,
        "seal_after_seconds = 1\n[rate_limit]\ntenants = { acme = 2 }\n",
    )
    .expect("write config");
    signal(&server.child, libc::SIGHUP);
    assert!(eventually(Duration::from_secs(3), || burst(10).contains(&429)));
    assert!(
        eventually(Duration::from_secs(5), || data.open_files().is_empty()
            && data.sealed_lines().len() >= 20),
        "sealed after the reload: {:?}",
        data.open_files()
    );
    // A bad file: the old configuration stays and the reason is logged.
    std::fs::write(&config, "rate_limit = 12\nnot toml [").expect("write config");
    signal(&server.child, libc::SIGHUP);
    assert!(eventually(Duration::from_secs(3), || server
        .log_text()
        .contains("reload-failed")));
    assert!(
        burst(10).contains(&429),
        "the last good configuration is still in force"
    );
    assert!(server.stop().success());
}

#[test]
fn logs_never_carry_tokens_or_secrets() {
    let data = DataDir::new("secrets");
    let s = setup(&data, "acme");
    let server = Server::start(&data);
    for token in [
        s.token.as_str(),
        "bogus.token.value",
        &s.token[..s.token.len() - 2],
    ] {
        let _ = server.send(&post(
            &s.json_stream,
            "acme",
            token,
            "application/json",
            b"{\"x\":1}",
        ));
    }
    let logs = std::sync::Arc::clone(&server.logs);
    assert!(server.stop().success());
    let text = || logs.lock().expect("logs").join("\n");
    assert!(eventually(Duration::from_secs(3), || text()
        .contains("\"event\":\"stopped\"")));
    let text = text();
    let signature = s.token.rsplit('.').next().expect("signature");
    assert!(
        !text.contains(signature),
        "a token signature appeared in the logs"
    );
    assert!(!text.contains("bogus.token.value"));
    assert!(!text.contains(std::str::from_utf8(SECRET).expect("ascii")));
}

/// A free port on 127.0.0.1 below the kernel's ephemeral range, so that the
/// other servers of this test run (all on port 0) can never be handed it
/// between our check and the server's bind.
fn free_port() -> u16 {
    let start = 20_000 + (std::process::id() % 5_000) as u16;
    (start..start + 5_000)
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free port below the ephemeral range")
}

/// Kills the server if the test fails before it stops it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn readyz_is_starting_during_recovery_ready_while_serving_and_draining_during_shutdown() {
    let data = DataDir::new("readyz");
    let s = setup(&data, "acme");
    // A large open segment left by a "crash" makes recovery take a while.
    let hour = data
        .path
        .join(format!("tenants/acme/streams/{}/2026-01-01/00", s.json_stream));
    std::fs::create_dir_all(&hour).expect("mkdir");
    let line = format!("{{\"pad\":\"{}\"}}\n", "x".repeat(80));
    std::fs::write(hour.join("big.ndjson.open"), line.repeat(200_000)).expect("write segment");
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let mut child = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(&data.path)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            &admin.to_string(),
            "--workers",
            "2",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut child = KillOnDrop(child);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
                if value["event"] == "listening" {
                    let _ = addr_tx.send(value["addr"].as_str().expect("addr").to_owned());
                }
            }
        }
    });
    // Poll /readyz from the moment the admin listener answers. The probe
    // connection is closed before each poll: the admin listener serves one
    // connection at a time, so a probe held open would stall it.
    let mut seen: Vec<(u16, String)> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen.last().is_none_or(|(status, _)| *status != 200) {
        assert!(
            std::time::Instant::now() < deadline,
            "never became ready: {seen:?}"
        );
        if std::net::TcpStream::connect(admin).is_ok() {
            seen.push(admin_get(admin, "/readyz"));
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert!(
        seen.iter()
            .any(|(status, body)| *status == 503 && body.contains("starting")),
        "/readyz said 'starting' while recovery ran: {seen:?}"
    );
    let addr: std::net::SocketAddr = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("listening")
        .parse()
        .expect("addr");
    assert_eq!(admin_get(admin, "/readyz").0, 200, "ready while serving");

    // A request in flight holds the drain open: /readyz says draining.
    let body = b"{\"slow\":true}";
    let head = format!(
        "POST /stream/v0/data/{} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Amperity-Tenant: acme\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        s.json_stream,
        s.token,
        body.len()
    );
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(&body[..4]).expect("part of the body");
    std::thread::sleep(Duration::from_millis(200));
    signal(&child.0, libc::SIGTERM);
    assert!(eventually(Duration::from_secs(5), || admin_get(admin, "/readyz")
        .1
        .contains("draining")));
    stream.write_all(&body[4..]).expect("rest of the body");
    assert_eq!(
        read_response(&mut stream)
            .expect("the in-flight request is answered")
            .status,
        202
    );
    let status = wait_timeout(&mut child.0, Duration::from_secs(30)).expect("exits after the drain");
    assert!(status.success());
    let lines = data.sealed_lines();
    assert_eq!(lines.len(), 200_001, "recovered records plus the drained one");
    assert!(
        lines.iter().any(|line| line == "{\"slow\":true}"),
        "the drained request was stored"
    );
}

/// The Linux scheduling policy of each thread of `pid` whose name starts
/// with `prefix` (field 41 of `/proc/PID/task/TID/stat`: 0 SCHED_OTHER,
/// 3 SCHED_BATCH). A thread that ends while being read is left out.
fn thread_policies(pid: u32, prefix: &str) -> Vec<u32> {
    let mut policies = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task list") {
        let task = task.expect("task").path();
        let Ok(comm) = std::fs::read_to_string(task.join("comm")) else {
            continue;
        };
        if !comm.starts_with(prefix) {
            continue;
        }
        if let Some(policy) = policy_in_stat(&task.join("stat")) {
            policies.push(policy);
        }
    }
    policies
}

/// Field 41 (the scheduling policy) of a `stat` file, or `None` when the
/// thread or process is gone.
fn policy_in_stat(path: &std::path::Path) -> Option<u32> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces; the fields after it do not.
    let after_name = &stat[stat.rfind(')').expect("stat has the name in parentheses") + 2..];
    let policy = after_name.split(' ').nth(41 - 3).expect("policy field");
    Some(policy.parse().expect("a number"))
}

#[test]
fn workers_run_as_sched_batch_unless_configured_otherwise() {
    let data = DataDir::new("sched-policy");
    let server = Server::start(&data);
    assert_eq!(
        thread_policies(server.child.id(), "sluice-worker-"),
        [3, 3],
        "two workers, SCHED_BATCH"
    );
    let log = server.log_text();
    assert!(log.contains(r#""worker_scheduling_policy":"batch""#), "{log}");
    assert!(!log.contains("config-warning"), "{log}");
    // Other threads keep the policy they were started with.
    let main_stat = format!("/proc/{}/stat", server.child.id());
    assert_eq!(policy_in_stat(std::path::Path::new(&main_stat)), Some(0));
    server.stop();

    let server = Server::start_with(&data, &[], &[("SLUICE_WORKER_SCHEDULING_POLICY", "other")]);
    assert_eq!(
        thread_policies(server.child.id(), "sluice-worker-"),
        [0, 0],
        "two workers, SCHED_OTHER"
    );
    assert!(
        server
            .log_text()
            .contains(r#""worker_scheduling_policy":"other""#)
    );
    server.stop();
}

#[test]
fn disk_mode_flush_threads_run_as_sched_other_beside_batch_workers() {
    let data = DataDir::new("sched-io-workers");
    let setup = setup(&data, "acme");
    let server = Server::start_with(&data, &[], &[("SLUICE_DURABILITY", "disk")]);
    let pid = server.child.id();
    let mut stream = server.connect();
    // Each 202 follows an fdatasync run by an io_uring worker thread that
    // the kernel started from a SCHED_BATCH worker; the courier thread
    // gives it SCHED_OTHER within a turn.
    let mut io_workers = Vec::new();
    let settled = eventually(Duration::from_secs(5), || {
        let body = br#"{"n":1}"#;
        stream
            .write_all(&post(
                &setup.json_stream,
                "acme",
                &setup.token,
                "application/json",
                body,
            ))
            .expect("send");
        assert_eq!(read_response(&mut stream).expect("response").status, 202);
        io_workers = thread_policies(pid, "iou-wrk");
        !io_workers.is_empty() && io_workers.iter().all(|&policy| policy == 0)
    });
    assert!(settled, "io_uring threads' policies: {io_workers:?}");
    assert_eq!(thread_policies(pid, "sluice-worker-"), [3, 3]);
    server.stop();
}
