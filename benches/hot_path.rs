//! Criterion benchmarks of the ingest hot path, one function each: JWT
//! verification, JSON → NDJSON, XML → CBOR, and a segment append. Each
//! asserts its result inside the loop, so a broken function cannot look fast.
//! Throughput is reported in bytes of input per second.
//!
//! Run with `cargo bench --bench hot_path`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice::auth;
use sluice::control::snapshot::{KeyView, PayloadFormat, Snapshot, TenantView};
use sluice::convert::json::PADDING;
use sluice::convert::{JsonConverter, XmlConverter};
use sluice::segment::writer::SegmentWriter;

/// A ~300-byte event, the size the load script sends.
const EVENT_JSON: &[u8] = br#"{"event_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "event_type": "page_view", "customer_id": "C-000123456", "email": "someone@example.com", "url": "https://shop.example.com/products/blue-widget?ref=home", "ts": "2026-11-27T07:15:00.000Z", "amount": 19.99, "currency": "USD", "tags": ["web", "promo"]}"#;

const PROFILE_XML: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<profile id="C-000123456" source="crm">
  <name><given>Ada</given><family>Lovelace</family></name>
  <email type="work">ada@example.com</email>
  <email type="home">ada@home.example</email>
  <address><street>12 St James's Square</street><city>London</city><postal>SW1Y 4JH</postal><country>GB</country></address>
  <orders>
    <order id="O-1" at="2026-11-26T10:00:00Z"><total currency="GBP">19.99</total></order>
    <order id="O-2" at="2026-11-27T07:00:00Z"><total currency="GBP">5.00</total></order>
  </orders>
  <note><![CDATA[prefers <b>email</b> & post]]></note>
</profile>"#;

fn jwt_verify(c: &mut Criterion) {
    let secret = [7u8; 32];
    let mut tenant = TenantView::default();
    tenant.keys.insert(
        "ak-bench".to_owned(),
        KeyView {
            hmac: auth::hmac_key(&secret),
            stream_write: true,
        },
    );
    let mut snapshot = Snapshot::default();
    snapshot.tenants.insert("bench".to_owned(), tenant);
    let now = 1_795_000_000;
    let token = auth::sign_token(&secret, "ak-bench", "bench", 3, now);
    let header = format!("Bearer {token}");
    let mut group = c.benchmark_group("jwt");
    group.throughput(Throughput::Bytes(header.len() as u64));
    group.bench_function("verify", |b| {
        b.iter(|| {
            let result = auth::verify(Some(black_box(header.as_bytes())), b"bench", &snapshot, now);
            assert!(result.is_ok());
        })
    });
    group.finish();
}

fn json_convert(c: &mut Criterion) {
    let mut converter = JsonConverter::new();
    let mut out = Vec::with_capacity(4096);
    let mut group = c.benchmark_group("json");
    for (name, body) in [
        ("300B", EVENT_JSON.to_vec()),
        // A body at the limit: the GB/s-per-core figure of the load targets.
        ("254KiB", big_json(254 * 1024)),
    ] {
        group.throughput(Throughput::Bytes(body.len() as u64));
        // The server's path: the body validated where it lies, in a buffer
        // with the converter's padding after it.
        let mut padded = body.clone();
        padded.resize(body.len() + PADDING, 0);
        group.bench_function(format!("convert_{name}"), |b| {
            b.iter(|| {
                out.clear();
                converter
                    .convert_padded(black_box(&mut padded), body.len(), &mut out)
                    .expect("valid");
                assert_eq!(out.last(), Some(&b'\n'));
            })
        });
        // simd-json's validation alone on the same body, the floor.
        let mut buffers = simd_json::Buffers::new(body.len());
        let mut spare = Some(simd_json::Tape::null());
        group.bench_function(format!("simd_json_validate_{name}"), |b| {
            b.iter(|| {
                let mut tape = spare.take().expect("kept between runs").reset();
                simd_json::fill_tape_padded(black_box(&mut padded), body.len(), &mut buffers, &mut tape)
                    .expect("valid");
                spare = Some(tape.reset());
            })
        });
    }
    group.finish();
}

fn big_json(len: usize) -> Vec<u8> {
    let mut body = b"{\"items\": [".to_vec();
    let mut n = 0;
    while body.len() < len - 300 {
        if n > 0 {
            body.extend_from_slice(b", ");
        }
        body.extend_from_slice(EVENT_JSON);
        n += 1;
    }
    body.extend_from_slice(b"]}");
    body
}

fn xml_convert(c: &mut Criterion) {
    let mut converter = XmlConverter::new();
    let mut out = Vec::with_capacity(4096);
    let mut group = c.benchmark_group("xml");
    group.throughput(Throughput::Bytes(PROFILE_XML.len() as u64));
    group.bench_function("to_cbor_1KiB", |b| {
        b.iter(|| {
            out.clear();
            converter
                .convert(black_box(PROFILE_XML), &mut out)
                .expect("valid");
            assert_eq!(out[0], 0xA1);
        })
    });
    group.finish();
}

fn segment_append(c: &mut Criterion) {
    let mut record = EVENT_JSON.to_vec();
    record.retain(|&b| b != b' ');
    record.push(b'\n');
    bench_append(c, "append_300B", &record, 256 << 20);
    // At 254 KiB the cost is mostly the kernel's, faulting fresh page-cache
    // pages into the mapping (one `MADV_POPULATE_WRITE` per 256 KiB), not
    // the copy.
    let mut large = vec![b'x'; 260_000];
    large[0] = b'{';
    large[259_998] = b'}';
    large[259_999] = b'\n';
    bench_append(c, "append_254KiB", &large, 64 << 20);
}

/// `segment/<name>`: appends `record` to a mapped segment again and again,
/// starting a fresh segment (and deleting the full one) when it is full.
fn bench_append(c: &mut Criterion, name: &str, record: &[u8], segment_bytes_max: usize) {
    let dir = std::env::temp_dir().join(format!("sluice-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut n = 0u32;
    let mut create = || {
        n += 1;
        SegmentWriter::create(
            &dir,
            &format!("b{n}.ndjson"),
            PayloadFormat::Json,
            0,
            0,
            segment_bytes_max,
        )
        .expect("create segment")
    };
    let mut segment = create();
    let mut group = c.benchmark_group("segment");
    group.throughput(Throughput::Bytes(record.len() as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            if segment.append(black_box(record)).is_err() {
                let full = std::mem::replace(&mut segment, create());
                let _ = std::fs::remove_file(full.finish().open_path);
                segment.append(record).expect("fresh segment has room");
            }
        })
    });
    group.finish();
    drop(segment);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, jwt_verify, json_convert, xml_convert, segment_append);
criterion_main!(benches);
