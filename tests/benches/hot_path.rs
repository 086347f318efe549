//! The CPU work on the two hot paths, without I/O:
//! * ingest: verify the HMAC, parse the delivery, route every event and derive the key, for
//!   bodies of about 1 KB, 10 KB and 100 KB;
//! * consumer: map an Attio person record to HubSpot properties.
//!
//! Run: `cargo bench -p integration-tests --bench hot_path`. Figures go in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use relay_events::{Delivery, IdempotencyKey};
use relay_signature::{SchemePolicy, SignedRequest, Verifier, WebhookSecret, sign_body};
use relay_sync::{FieldMapping, RecordValues};

/// A delivery of record.updated events, padded with events to about `bytes`.
fn delivery_of(bytes: usize) -> Vec<u8> {
    let event = |n: usize| {
        format!(
            r#"{{"event_type":"record.updated","id":{{"workspace_id":"a9f6fd20-80d5-4bd1-b8fe-60a7c5a9178a","object_id":"f436cad2-7090-4b86-8ae2-27260febbefe","record_id":"443d9969-4842-451e-96bc-ffb9ad{n:06}","attribute_id":"ca016473-5a16-4c61-9560-4a3ba91d6a9c"}},"actor":{{"type":"workspace-member","id":"061b809a-2423-4955-94c9-07c16d05be79"}}}}"#
        )
    };
    let mut events = Vec::new();
    let mut size = 64;
    while size < bytes {
        let e = event(events.len());
        size += e.len() + 1;
        events.push(e);
    }
    format!(
        r#"{{"webhook_id":"b3b7a27e-1cf8-4f4b-8e5c-330b7f349ea8","events":[{}]}}"#,
        events.join(",")
    )
    .into_bytes()
}

fn ingest(c: &mut Criterion) {
    let secret = WebhookSecret::new("whsec_bench_secret").expect("secret");
    let verifier = Verifier::new(vec![secret.clone()], SchemePolicy::AcceptEither);
    let mut group = c.benchmark_group("verify_parse_route");
    for kb in [1, 10, 100] {
        let body = delivery_of(kb * 1024);
        let signature = sign_body(&secret, &body);
        // The request borrows the body and signature; building it costs nothing worth timing.
        let request = SignedRequest {
            signature: Some(&signature),
            timestamp: None,
            body: &body,
        };
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(BenchmarkId::from_parameter(format!("{kb}KB")), |b| {
            b.iter(|| {
                let verified = verifier.verify(&request, 0).expect("valid");
                let delivery = Delivery::parse(&body).expect("delivery");
                let families: usize = delivery.events.iter().map(|e| e.family() as usize).sum();
                let key = IdempotencyKey::for_delivery(None, &delivery, verified.timestamp());
                black_box((families, key))
            });
        });
        group.bench_function(BenchmarkId::new("hmac_only", format!("{kb}KB")), |b| {
            b.iter(|| black_box(verifier.verify(&request, 0).expect("valid")));
        });
    }
    group.finish();
}

fn mapping(c: &mut Criterion) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/attio/person.json"
    ))
    .expect("fixture");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    let record: relay_attio::Record = serde_json::from_value(json["data"].clone()).expect("record");
    let fields = FieldMapping::default();
    c.bench_function("map_person_to_contact", |b| {
        b.iter(|| {
            black_box(
                fields
                    .map_record("people", "r", &RecordValues(&record.values))
                    .expect("mapped"),
            )
        })
    });
    c.bench_function("decode_and_map_person", |b| {
        b.iter(|| {
            let record: relay_attio::Record =
                serde_json::from_value(json["data"].clone()).expect("record");
            black_box(
                fields
                    .map_record("people", "r", &RecordValues(&record.values))
                    .expect("mapped"),
            )
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = ingest, mapping
}
criterion_main!(benches);
