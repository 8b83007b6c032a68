//! Encode and decode of one Write record with 16 B, 1 KiB and 64 KiB values (16-byte key).
//!
//! ```text
//! cargo bench -p ringlog-bench --bench codec
//! ```

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringlog_format::{decode_record, encode_record, encoded_len, RecordSpec, SegmentPos};

const POS: SegmentPos = SegmentPos {
    segment_id: 7,
    epoch: 0x1234_5678,
    offset: 4096,
};

fn codec(c: &mut Criterion) {
    let key = [b'k'; 16];
    for (name, len) in [("16B", 16usize), ("1KiB", 1024), ("64KiB", 64 << 10)] {
        let value: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        let spec = RecordSpec::write(&key, &value, 42, 4096).autocommit();
        let mut buf = vec![0u8; encoded_len(key.len(), len)];
        let mut g = c.benchmark_group("record");
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| encode_record(std::hint::black_box(&mut buf), &spec, POS).unwrap())
        });
        encode_record(&mut buf, &spec, POS).unwrap();
        g.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| {
                let r = decode_record(std::hint::black_box(&buf), 0, POS).unwrap();
                assert_eq!(r.value.len(), len);
            })
        });
        g.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
