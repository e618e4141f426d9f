//! Kill -9 soak (issue 6): the 202 promise of SPEC §3 under many crashes.
//!
//! Clients send uniquely numbered JSON and XML records over kept-alive
//! connections while the server is killed with SIGKILL at random moments
//! and restarted on the same data directory, `SLUICE_SOAK_KILLS` times
//! (default 20). Afterwards, with a graceful stop:
//!
//! - every acknowledged record is stored exactly once;
//! - no record is stored twice, acknowledged or not (a record in flight at
//!   a kill may be stored or not, but never twice);
//! - every stored record is one a client sent (no torn or made-up record:
//!   each sealed NDJSON line and CBOR item parses, and its id is one that
//!   was sent);
//! - no segment is left open.
//!
//! It is off by default (`#[ignore]`): `benches/soak.sh [KILLS]` runs it in
//! release mode. `SLUICE_SOAK_SEED` replays a run's kill timings.

mod common;

use std::collections::HashMap;
use std::io::{Cursor, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use common::*;

/// Kills when `SLUICE_SOAK_KILLS` is not set.
const KILLS_DEFAULT: usize = 20;

/// Clients sending JSON records; one more sends XML.
const JSON_CLIENTS: usize = 3;

/// The shortest and longest time the server runs between two kills.
const RUN_MS_MIN: u64 = 50;
const RUN_MS_MAX: u64 = 600;

/// Padding per record, so segments grow past their first extent now and
/// then during a long soak.
const PAD_BYTES: usize = 200;

/// The whole soak gives up (and fails) after this long per kill, so a hung
/// restart cannot run forever.
const SECONDS_PER_KILL_MAX: u64 = 30;

/// What one client did.
#[derive(Default)]
struct ClientLog {
    /// Ids that got a 202.
    acked: Vec<String>,
    /// How many ids the client sent (ids are `<client>-1` to `<client>-<sent>`).
    sent: u64,
}

/// A tiny deterministic generator for kill timings (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The raw request for record `id` of a JSON or an XML client.
fn request(s: &Setup, xml: bool, id: &str) -> Vec<u8> {
    let pad = "p".repeat(PAD_BYTES);
    if xml {
        let body = format!("<r><id>{id}</id><pad>{pad}</pad></r>");
        post(
            &s.xml_stream,
            &s.tenant,
            &s.token,
            "application/xml",
            body.as_bytes(),
        )
    } else {
        let body = format!("{{\"id\":\"{id}\",\"pad\":\"{pad}\"}}");
        post(
            &s.json_stream,
            &s.tenant,
            &s.token,
            "application/json",
            body.as_bytes(),
        )
    }
}

/// Sends numbered records until `stop`, following the server to whatever
/// address it restarted on.
fn client(
    name: String,
    xml: bool,
    addr: Arc<RwLock<SocketAddr>>,
    s: Arc<Setup>,
    stop: Arc<AtomicBool>,
) -> ClientLog {
    let mut log = ClientLog::default();
    while !stop.load(Ordering::Acquire) {
        let target = *addr.read().expect("addr");
        let Ok(mut stream) = TcpStream::connect(target) else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        while !stop.load(Ordering::Acquire) {
            log.sent += 1;
            let id = format!("{name}-{}", log.sent);
            if stream.write_all(&request(&s, xml, &id)).is_err() {
                break;
            }
            match read_response(&mut stream) {
                Ok(response) if response.status == 202 => log.acked.push(id),
                Ok(response) if response.status == 503 => {}
                Ok(response) => panic!("unexpected status {} for {id}", response.status),
                Err(_) => break,
            }
        }
    }
    log
}

/// Every stored record id, with how many times it is stored, from every
/// sealed NDJSON line and CBOR item.
fn stored(data: &DataDir) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for line in data.sealed_lines() {
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("a complete JSON record: {line:?}"));
        let id = value["id"].as_str().expect("a JSON record has an id").to_owned();
        *seen.entry(id).or_insert(0) += 1;
    }
    for file in data.sealed_files() {
        if file.extension().is_none_or(|ext| ext != "cbor") {
            continue;
        }
        let bytes = std::fs::read(&file).expect("read a sealed CBOR file");
        let mut cursor = Cursor::new(bytes.as_slice());
        while (cursor.position() as usize) < bytes.len() {
            let item: ciborium::Value = ciborium::from_reader(&mut cursor)
                .unwrap_or_else(|error| panic!("a complete CBOR item in {}: {error}", file.display()));
            let id = cbor_id(&item).unwrap_or_else(|| panic!("an XML record has an id: {item:?}"));
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    seen
}

/// The text of `r.id` in `{"r": {"id": ..., "pad": ...}}`.
fn cbor_id(item: &ciborium::Value) -> Option<String> {
    let field = |value: &ciborium::Value, key: &str| -> Option<ciborium::Value> {
        value
            .as_map()?
            .iter()
            .find_map(|(name, value)| (name.as_text() == Some(key)).then(|| value.clone()))
    };
    let record = field(item, "r")?;
    field(&record, "id")?.as_text().map(str::to_owned)
}

#[test]
#[ignore = "a soak: run benches/soak.sh [KILLS]"]
fn acknowledged_records_survive_repeated_kill_9() {
    let kills: usize = std::env::var("SLUICE_SOAK_KILLS")
        .ok()
        .map(|text| text.parse().expect("SLUICE_SOAK_KILLS is a whole number"))
        .unwrap_or(KILLS_DEFAULT);
    let seed: u64 = std::env::var("SLUICE_SOAK_SEED")
        .ok()
        .map(|text| text.parse().expect("SLUICE_SOAK_SEED is a whole number"))
        .unwrap_or_else(|| now_unix() as u64 | 1);
    eprintln!("soak: {kills} kills, SLUICE_SOAK_SEED={seed}");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(SECONDS_PER_KILL_MAX * (kills as u64 + 1));
    let mut rng = Rng(seed);

    let data = DataDir::new("soak");
    let s = Arc::new(setup(&data, "acme"));
    let server = Server::start(&data);
    let addr = Arc::new(RwLock::new(server.addr));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..=JSON_CLIENTS)
        .map(|index| {
            let xml = index == JSON_CLIENTS;
            let name = format!("{}{index}", if xml { "x" } else { "j" });
            let (addr, s, stop) = (Arc::clone(&addr), Arc::clone(&s), Arc::clone(&stop));
            std::thread::spawn(move || client(name, xml, addr, s, stop))
        })
        .collect();

    let mut server = Some(server);
    for kill in 0..kills {
        assert!(Instant::now() < deadline, "the soak overran at kill {kill}");
        let run_ms = RUN_MS_MIN + rng.next() % (RUN_MS_MAX - RUN_MS_MIN);
        std::thread::sleep(Duration::from_millis(run_ms));
        server.take().expect("running").kill();
        let restarted = Server::start(&data);
        *addr.write().expect("addr") = restarted.addr;
        server = Some(restarted);
        if (kill + 1) % 20 == 0 {
            eprintln!("soak: {} kills after {:?}", kill + 1, started.elapsed());
        }
    }
    std::thread::sleep(Duration::from_millis(RUN_MS_MAX));
    stop.store(true, Ordering::Release);
    let logs: HashMap<String, ClientLog> = clients
        .into_iter()
        .enumerate()
        .map(|(index, client)| {
            let name = if index == JSON_CLIENTS {
                format!("x{index}")
            } else {
                format!("j{index}")
            };
            (name, client.join().expect("client"))
        })
        .collect();
    assert!(
        server.take().expect("running").stop().success(),
        "the last server stops cleanly"
    );

    assert!(data.open_files().is_empty(), "every segment is sealed");
    let seen = stored(&data);
    let acked: Vec<&String> = logs.values().flat_map(|log| &log.acked).collect();
    let duplicated: Vec<_> = seen.iter().filter(|(_, count)| **count > 1).collect();
    let lost: Vec<_> = acked.iter().filter(|id| !seen.contains_key(**id)).collect();
    let made_up: Vec<_> = seen
        .keys()
        .filter(|id| {
            let (name, number) = id.rsplit_once('-').expect("ids are <client>-<n>");
            let number: u64 = number.parse().expect("numbered ids");
            logs.get(name).is_none_or(|log| number == 0 || number > log.sent)
        })
        .collect();
    let unacked_stored = seen.len() - acked.len().min(seen.len());
    eprintln!(
        "soak: {kills} kills in {:?}: {} records acknowledged, {} stored ({} of them in flight at a kill), {} lost, {} duplicated, {} never sent",
        started.elapsed(),
        acked.len(),
        seen.len(),
        unacked_stored,
        lost.len(),
        duplicated.len(),
        made_up.len()
    );
    assert!(duplicated.is_empty(), "records stored twice: {duplicated:?}");
    assert!(
        lost.is_empty(),
        "acknowledged records lost: {:?}",
        &lost[..lost.len().min(5)]
    );
    assert!(made_up.is_empty(), "records never sent: {made_up:?}");
    assert!(
        acked.len() > kills * 10,
        "the load ran: {} acknowledged",
        acked.len()
    );
}
