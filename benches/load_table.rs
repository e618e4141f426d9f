//! Criterion benchmark of loading sealed NDJSON files into a domain table:
//! 4 files × 25,000 records of about 300 bytes, one transaction and one
//! ledger entry per file, as a courier run loads them. Throughput is
//! reported in records per second; the target is 200,000 records/s.
//!
//! - `insert`: a fresh table each iteration (every record is a new row).
//! - `redeliver`: the same files into a table that already holds them
//!   (every record is compared and changes nothing).
//!
//! Each iteration asserts the counts `load_file` returns, so a loader that
//! skips work cannot look fast. Run with `cargo bench --bench load_table`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice::tables::{LedgerEntry, LoadCounts, TableSpec, Tables, infer_columns};

const FILES: usize = 4;
const RECORDS_PER_FILE: usize = 25_000;
const RECORDS_TOTAL: u64 = (FILES * RECORDS_PER_FILE) as u64;

/// A ~300-byte event like the ingest bench's, numbered so keys differ.
fn event(file: usize, record: usize) -> String {
    format!(
        r#"{{"event_id":"0f8fad5b-d9cb-469f-a165-{file:04}{record:08}","event_type":"page_view","customer_id":"C-{record:09}","email":"someone{record}@example.com","url":"https://shop.example.com/products/blue-widget?ref=home","ts":"2026-11-27T07:15:00.000Z","amount":19.99,"currency":"USD","tags":["web","promo"]}}"#
    )
}

/// Writes the sealed files under `dir` and returns their paths.
fn write_files(dir: &Path) -> Vec<PathBuf> {
    (0..FILES)
        .map(|file| {
            let mut content = String::with_capacity(RECORDS_PER_FILE * 320);
            for record in 0..RECORDS_PER_FILE {
                content.push_str(&event(file, record));
                content.push('\n');
            }
            let path = dir.join(format!("is-BENCHxxx_2026112{file}T070000.000001Z.ndjson"));
            std::fs::write(&path, content).expect("write bench file");
            path
        })
        .collect()
}

/// Loads every file once, each with its own ledger entry, asserting counts.
fn load_all(tables: &mut Tables, spec: &TableSpec, files: &[PathBuf], courier: &str) {
    for file in files {
        let key = file.to_string_lossy();
        let entry = LedgerEntry {
            courier,
            file: &key,
            run_id: "run-bench",
        };
        let counts = tables
            .load_file(&[spec], file, Some(entry))
            .expect("load")
            .expect("not in the ledger yet");
        assert_eq!(
            counts,
            LoadCounts {
                records: RECORDS_PER_FILE as u64,
                rejected: 0
            }
        );
    }
}

fn load_table(c: &mut Criterion) {
    let root = std::env::temp_dir().join(format!("sluice-bench-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("bench dir");
    let files = write_files(&root);
    let average_bytes = files
        .iter()
        .map(|file| std::fs::metadata(file).expect("stat").len())
        .sum::<u64>()
        / RECORDS_TOTAL;
    eprintln!("load_table: {FILES} files x {RECORDS_PER_FILE} records of ~{average_bytes} bytes");
    let spec = TableSpec {
        name: "Streaming Ingest:WebEvents".to_string(),
        columns: infer_columns(&files[0], None).expect("schema"),
        primary_key: vec!["event_id".to_string()],
        last_updated: sluice::tables::LastUpdated::Generated,
        query: None,
    };
    static TENANT: AtomicUsize = AtomicUsize::new(0);
    let fresh_tables = || {
        let tenant = format!("t{}", TENANT.fetch_add(1, Ordering::Relaxed));
        let mut tables = Tables::open(&root, &tenant).expect("open");
        tables.create(&spec).expect("create");
        (tenant, tables)
    };

    let mut group = c.benchmark_group("load_table");
    group.sample_size(10);
    group.throughput(Throughput::Elements(RECORDS_TOTAL));
    group.bench_function("insert", |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                let (tenant, mut tables) = fresh_tables();
                let start = Instant::now();
                load_all(&mut tables, &spec, &files, "web");
                elapsed += start.elapsed();
                drop(tables);
                let _ = std::fs::remove_dir_all(root.join("tenants").join(tenant));
            }
            elapsed
        })
    });
    group.bench_function("redeliver", |b| {
        let (_tenant, mut tables) = fresh_tables();
        load_all(&mut tables, &spec, &files, "first");
        let mut courier = 0usize;
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                courier += 1;
                let start = Instant::now();
                load_all(&mut tables, &spec, &files, &format!("again-{courier}"));
                elapsed += start.elapsed();
            }
            elapsed
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&root);
}

criterion_group!(benches, load_table);
criterion_main!(benches);
