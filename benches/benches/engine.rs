//! Criterion benchmarks of ringlog through the harness's engine layer: one put per durability
//! mode, Strict group commit with 1/4/16 writers, and recovery (reopen + first read) of 100k
//! records.
//!
//! ```text
//! cargo bench -p ringlog-bench --bench engine
//! ```
//!
//! Files go to `RINGLOG_BENCH_DIR` if set, else to a temporary directory under the build's
//! target directory (a real disk, not tmpfs: fdatasync must mean something).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringlog::{Db, Durability, Options};
use ringlog_bench::keys::Codec;

fn tempdir() -> tempfile::TempDir {
    let root = std::env::var_os("RINGLOG_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&root).expect("bench directory");
    tempfile::tempdir_in(root).expect("temporary directory")
}

fn put_per_mode(c: &mut Criterion) {
    let codec = Codec::new(16, 100);
    let mut g = c.benchmark_group("put");
    g.throughput(Throughput::Elements(1));
    for (name, durability) in [
        ("inmemory", Durability::InMemory),
        ("buffered", Durability::BUFFERED),
        ("strict", Durability::Strict),
    ] {
        if durability == Durability::Strict {
            g.sample_size(20).measurement_time(Duration::from_secs(3));
        }
        let dir = tempdir();
        let db = Db::open(dir.path(), Options::with_durability(durability)).unwrap();
        let mut key = codec.key_buf();
        let mut val = Vec::new();
        let mut i = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                codec.set_key(&mut key, i % 1_000_000);
                codec.fill_value(&mut val, i % 1_000_000, 1);
                db.put(&key, &val).unwrap()
            })
        });
        db.close().unwrap();
    }
    g.finish();
}

fn group_commit(c: &mut Criterion) {
    let codec = Codec::new(16, 100);
    let mut g = c.benchmark_group("group_commit");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(1));
    for threads in [1u64, 4, 16] {
        let dir = tempdir();
        let db = Db::open(dir.path(), Options::with_durability(Durability::Strict)).unwrap();
        let next = AtomicU64::new(0);
        g.bench_function(BenchmarkId::from_parameter(threads), |b| {
            b.iter_custom(|iters| {
                let per = iters.div_ceil(threads);
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        let (db, codec) = (&db, &codec);
                        let first = next.fetch_add(per, Ordering::Relaxed);
                        s.spawn(move || {
                            let mut key = codec.key_buf();
                            let mut val = Vec::new();
                            for i in first..first + per {
                                codec.set_key(&mut key, i);
                                codec.fill_value(&mut val, i, 1);
                                db.put(&key, &val).unwrap();
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
        let s = db.stats();
        eprintln!(
            "group_commit/{threads}: {} commits in {} syncs ({:.2} syncs per commit)",
            s.commits,
            s.syncs,
            s.syncs as f64 / s.commits.max(1) as f64
        );
        db.close().unwrap();
    }
    g.finish();
}

fn recovery(c: &mut Criterion) {
    const N: u64 = 100_000;
    let codec = Codec::new(16, 100);
    let dir = tempdir();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        for chunk in (0..N).collect::<Vec<_>>().chunks(1000) {
            let mut tx = db.begin();
            for &i in chunk {
                tx.put(&codec.key(i), &codec.value(i, 1)).unwrap();
            }
            tx.commit().unwrap();
        }
        db.close().unwrap();
    }
    let mut g = c.benchmark_group("recovery");
    g.sample_size(10).throughput(Throughput::Elements(N));
    g.bench_function("100k_records", |b| {
        b.iter(|| {
            let db = Db::open(dir.path(), Options::default()).unwrap();
            let v = db.get(&codec.key(N - 1)).unwrap().expect("last record");
            codec.check(&v, N - 1, 1).unwrap();
            db.close().unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, put_per_mode, group_commit, recovery);
criterion_main!(benches);
