//! Codec throughput on 64 KiB PB-TNC batches, the path a Posture Broker takes for
//! every batch it receives and sends.
//!
//! Two server-to-client SDATA batches of (at most) 64 KiB:
//! - `many_small`: PB-PA messages of ~4 KiB, each a PA-TNC message of small
//!   attributes (IETF Numeric Version, Forwarding Enabled, Factory Default Password,
//!   8- and 24-byte vendor attributes): thousands of attributes in all, so per-item
//!   overhead dominates;
//! - `one_large`: one PB-PA whose PA-TNC message is one opaque vendor attribute,
//!   so bulk byte handling dominates.
//!
//! `decode` = `Batch::decode`, then `PaMessage::decode` of every PB-PA and
//! `parse` of every attribute. `encode` = `Batch::to_bytes` of the decoded batch.
//!
//! Run: `cargo bench -p tnc-proto --bench codec`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use tnc_proto::pa_tnc::{
    Attribute, FactoryDefaultPassword, ForwardingEnabled, NumericVersion, PaMessage,
    PaMessageWriter, PaSubtype, RawAttribute,
};
use tnc_proto::pb_tnc::{Batch, BatchType, PbMessage, PbPa, Side, BATCH_HEADER_LEN};
use tnc_proto::U24;

const BATCH_LEN: usize = 64 * 1024;
/// PB-TNC message header (12) and the PB-PA fields before the PA-TNC message (12).
const PB_PA_OVERHEAD: usize = 24;
/// Size of the PA-TNC messages of the `many_small` batch.
const PA_MESSAGE_LEN: usize = 4096;
/// strongSwan's private enterprise number (ITA), as in its vendor attributes.
const VENDOR: u32 = 36906;

fn vendor() -> U24 {
    U24::new(VENDOR).expect("fits in 24 bits")
}

/// One small attribute (header included), by index, cycling through five kinds.
fn small_attribute(i: usize, out: &mut Vec<u8>) {
    let n = i as u32;
    match i % 5 {
        0 => Attribute::NumericVersion(NumericVersion {
            major: 6,
            minor: n % 100,
            build: n,
            service_pack_major: 1,
            service_pack_minor: 0,
        })
        .encode(out, false),
        1 => Attribute::ForwardingEnabled(ForwardingEnabled::Disabled).encode(out, false),
        2 => Attribute::FactoryDefaultPasswordEnabled(FactoryDefaultPassword::Disabled)
            .encode(out, false),
        3 => RawAttribute::write(out, false, vendor(), 1, &n.to_be_bytes().repeat(2)),
        _ => RawAttribute::write(out, false, vendor(), 2, &n.to_be_bytes().repeat(6)),
    }
}

fn sdata(bodies: &[Vec<u8>]) -> Vec<u8> {
    let messages = bodies
        .iter()
        .map(|body| {
            PbMessage::Pa(PbPa {
                exclusive: false,
                subtype: PaSubtype::OPERATING_SYSTEM,
                collector_id: 1,
                validator_id: 1,
                body,
            })
        })
        .collect();
    Batch::new(Side::Server, BatchType::SData, messages).to_bytes()
}

/// PA-TNC messages of up to 4 KiB of small attributes, filling 64 KiB of batch.
fn many_small() -> Vec<u8> {
    let mut bodies = Vec::new();
    let mut left = BATCH_LEN - BATCH_HEADER_LEN;
    let mut next = 0;
    let mut attribute = Vec::new();
    while left > PB_PA_OVERHEAD + 64 {
        let budget = PA_MESSAGE_LEN.min(left - PB_PA_OVERHEAD);
        let mut body = PaMessageWriter::new(bodies.len() as u32).finish();
        loop {
            attribute.clear();
            small_attribute(next, &mut attribute);
            if body.len() + attribute.len() > budget {
                break;
            }
            body.extend_from_slice(&attribute);
            next += 1;
        }
        left -= PB_PA_OVERHEAD + body.len();
        bodies.push(body);
    }
    sdata(&bodies)
}

/// One PA-TNC message holding one vendor attribute: exactly 64 KiB of batch.
fn one_large() -> Vec<u8> {
    let value_len = BATCH_LEN - BATCH_HEADER_LEN - PB_PA_OVERHEAD - 8 - 12;
    let value: Vec<u8> = (0..value_len).map(|i| i as u8).collect();
    let body = PaMessageWriter::new(1)
        .raw(false, vendor(), 3, &value)
        .finish();
    sdata(&[body])
}

/// What a receiver does with a batch: decode it, every PA-TNC message in it and
/// every attribute. Returns the number of attributes.
fn receive(bytes: &[u8]) -> usize {
    let batch = Batch::decode(bytes).expect("benchmark batch decodes");
    let mut attributes = 0;
    for pa in batch.pa_messages() {
        let message = PaMessage::decode(pa.body).expect("benchmark PA-TNC message decodes");
        for raw in &message.attributes {
            black_box(raw.parse().expect("benchmark attribute parses"));
            attributes += 1;
        }
    }
    attributes
}

fn codec(c: &mut Criterion) {
    let cases = [("many_small", many_small()), ("one_large", one_large())];
    for (name, bytes) in &cases {
        let batch = Batch::decode(bytes).expect("benchmark batch decodes");
        println!(
            "{name}: {} bytes, {} PB-PA messages, {} attributes",
            bytes.len(),
            batch.pa_messages().count(),
            receive(bytes)
        );
    }

    let mut group = c.benchmark_group("pb_tnc_64k");
    for (name, bytes) in &cases {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| receive(black_box(bytes)))
        });
        let batch = Batch::decode(bytes).expect("benchmark batch decodes");
        assert_eq!(&batch.to_bytes(), bytes, "the batch re-encodes to itself");
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| black_box(&batch).to_bytes())
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = codec
}
criterion_main!(benches);
