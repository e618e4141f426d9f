//! The 202 promise under kill -9 (SPEC §3): clients send uniquely numbered
//! records while the server is killed and restarted several times; every
//! acknowledged record must then be in a sealed file exactly once, and no
//! file may hold a partial record.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::*;

const CLIENTS: usize = 4;
const KILLS: usize = 4;

/// Sends numbered records until `stop`, record `seq` padded with
/// `pad(seq)` bytes; returns the ids that got a 202.
fn client(
    id: usize,
    addr: Arc<RwLock<std::net::SocketAddr>>,
    s: Arc<Setup>,
    stop: Arc<AtomicBool>,
    pad: fn(u64) -> usize,
) -> Vec<String> {
    let mut acked = Vec::new();
    let mut seq = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
        let target = *addr.read().expect("addr");
        let Ok(mut stream) = std::net::TcpStream::connect(target) else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        while !stop.load(Ordering::Acquire) {
            seq += 1;
            let record_id = format!("c{id}-{seq}");
            let body = format!("{{\"id\":\"{record_id}\",\"pad\":\"{}\"}}", "p".repeat(pad(seq)));
            let raw = post(
                &s.json_stream,
                &s.tenant,
                &s.token,
                "application/json",
                body.as_bytes(),
            );
            if stream.write_all(&raw).is_err() {
                break;
            }
            match read_response(&mut stream) {
                Ok(response) if response.status == 202 => acked.push(record_id),
                Ok(response) if response.status == 503 => {}
                Ok(response) => panic!("unexpected status {}", response.status),
                Err(_) => break,
            }
        }
    }
    acked
}

fn check_exactly_once(data: &DataDir, acked: &[String]) {
    assert!(data.open_files().is_empty(), "every segment is sealed");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for line in data.sealed_lines() {
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("a complete record: {line:?}"));
        let id = value["id"].as_str().expect("id").to_owned();
        *seen.entry(id).or_default() += 1;
    }
    for (id, count) in &seen {
        assert_eq!(*count, 1, "record {id} stored {count} times");
    }
    let missing: Vec<_> = acked.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

#[test]
fn acknowledged_records_survive_kill_9() {
    kill_9_under_load("crash", &[], |_| 200);
}

/// The same in `disk` mode, with records of a few hundred bytes and of
/// several pages mixed: group commits unmap written pages, and records of
/// half a page or more populate only their own pages (README, "Group
/// commits and the mapping").
#[test]
fn acknowledged_records_survive_kill_9_in_disk_mode_with_records_of_every_size() {
    kill_9_under_load("crash-disk", &[("SLUICE_DURABILITY", "disk")], |seq| {
        match seq % 3 {
            0 => 200,
            1 => 2100,
            _ => 9000,
        }
    });
}

fn kill_9_under_load(name: &str, env: &[(&str, &str)], pad: fn(u64) -> usize) {
    let data = DataDir::new(name);
    let s = Arc::new(setup(&data, "acme"));
    let server = Server::start_with(&data, &[], env);
    let addr = Arc::new(RwLock::new(server.addr));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (addr, s, stop) = (Arc::clone(&addr), Arc::clone(&s), Arc::clone(&stop));
            std::thread::spawn(move || client(id, addr, s, stop, pad))
        })
        .collect();
    let mut server = Some(server);
    for kill in 0..KILLS {
        std::thread::sleep(Duration::from_millis(400 + 150 * kill as u64));
        server.take().expect("running").kill();
        // Restart on a new port; clients follow the address.
        let restarted = Server::start_with(&data, &[], env);
        *addr.write().expect("addr") = restarted.addr;
        server = Some(restarted);
    }
    std::thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::Release);
    let acked: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client"))
        .collect();
    assert!(server.take().expect("running").stop().success());
    assert!(acked.len() > 100, "the load ran: {} acknowledged", acked.len());
    check_exactly_once(&data, &acked);
}

#[test]
fn acknowledged_records_survive_a_graceful_stop_under_load() {
    graceful_stop_under_load("graceful", &[]);
}

/// The same with `durability = "disk"`: requests waiting for a group
/// commit when SIGTERM arrives are flushed (the stopping workers wait for
/// their flusher tasks) or refused, never acknowledged and lost.
#[test]
fn acknowledged_records_survive_a_graceful_stop_under_load_in_disk_mode() {
    graceful_stop_under_load("graceful-disk", &[("SLUICE_DURABILITY", "disk")]);
}

fn graceful_stop_under_load(name: &str, env: &[(&str, &str)]) {
    let data = DataDir::new(name);
    let s = Arc::new(setup(&data, "acme"));
    let server = Server::start_with(&data, &[], env);
    let addr = Arc::new(RwLock::new(server.addr));
    let stop = Arc::new(AtomicBool::new(false));
    let acked_all = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (addr, s, stop, acked_all) = (
                Arc::clone(&addr),
                Arc::clone(&s),
                Arc::clone(&stop),
                Arc::clone(&acked_all),
            );
            std::thread::spawn(move || {
                let acked = client(id, addr, s, stop, |_| 200);
                acked_all.lock().expect("acked").extend(acked);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    // SIGTERM while clients are still sending.
    assert!(server.stop().success());
    stop.store(true, Ordering::Release);
    for c in clients {
        c.join().expect("client");
    }
    let acked = acked_all.lock().expect("acked").clone();
    assert!(acked.len() > 50, "the load ran: {}", acked.len());
    check_exactly_once(&data, &acked);
}
