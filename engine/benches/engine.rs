//! Criterion benchmarks of the engine: put per durability mode, Strict commit latency per I/O
//! configuration, group commit with 1/4/16 writers, and recovery of 100k records.
//!
//! Files go to `RINGLOG_BENCH_DIR` if set, else to a temporary directory under the build's
//! target directory (a real disk, not tmpfs: fdatasync must mean something).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringlog::{Db, Durability, IoChoice, Options, SyncStrategy};

fn bench_root() -> PathBuf {
    std::env::var_os("RINGLOG_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

fn tempdir() -> tempfile::TempDir {
    std::fs::create_dir_all(bench_root()).expect("bench directory");
    tempfile::tempdir_in(bench_root()).expect("temporary directory")
}

const VALUE: [u8; 100] = [0x5a; 100];

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(b"key-----");
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

fn puts(c: &mut Criterion) {
    let mut g = c.benchmark_group("put");
    g.throughput(Throughput::Elements(1));
    let db = Db::in_memory();
    let mut i = 0u64;
    g.bench_function("inmemory", |b| {
        b.iter(|| {
            i = (i + 1) % 1_000_000;
            db.put(&key(i), &VALUE).unwrap()
        })
    });
    let dir = tempdir();
    let db = Db::open(
        dir.path(),
        Options {
            durability: Durability::Buffered {
                interval: Duration::from_millis(10),
                max_pending: 4 << 20,
            },
            ..Options::default()
        },
    )
    .unwrap();
    let mut i = 0u64;
    g.bench_function("buffered", |b| {
        b.iter(|| {
            i = (i + 1) % 1_000_000;
            db.put(&key(i), &VALUE).unwrap()
        })
    });
    db.close().unwrap();
    g.finish();
}

fn strict_latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("strict_commit");
    g.sample_size(30)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for io in [IoChoice::Uring, IoChoice::Portable] {
        for strategy in [SyncStrategy::WriteThenSync, SyncStrategy::Dsync] {
            for direct in [true, false] {
                let dir = tempdir();
                let opts = Options {
                    durability: Durability::Strict,
                    io,
                    sync_strategy: strategy,
                    direct_io: direct,
                    ..Options::default()
                };
                let Ok(db) = Db::open(dir.path(), opts) else {
                    eprintln!("skipping {io}: backend unavailable");
                    continue;
                };
                let name = format!(
                    "{io}/{strategy:?}/{}",
                    if direct { "direct" } else { "buffered" }
                );
                let mut i = 0u64;
                g.bench_function(BenchmarkId::from_parameter(name), |b| {
                    b.iter(|| {
                        i += 1;
                        db.put(&key(i), &VALUE).unwrap()
                    })
                });
                db.close().unwrap();
            }
        }
    }
    g.finish();
}

fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("group_commit");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    for threads in [1u64, 4, 16] {
        let dir = tempdir();
        let db =
            Arc::new(Db::open(dir.path(), Options::with_durability(Durability::Strict)).unwrap());
        let base = std::sync::atomic::AtomicU64::new(0);
        g.bench_function(BenchmarkId::from_parameter(threads), |b| {
            b.iter_custom(|iters| {
                let per = iters.div_ceil(threads);
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        let db = &db;
                        let first = base.fetch_add(per, std::sync::atomic::Ordering::Relaxed);
                        s.spawn(move || {
                            for i in first..first + per {
                                db.put(&key(i), &VALUE).unwrap();
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
        let s = db.stats();
        eprintln!(
            "group_commit/{threads}: {} commits in {} syncs ({:.1} commits per sync)",
            s.commits,
            s.syncs,
            s.commits as f64 / s.syncs.max(1) as f64
        );
        db.close().unwrap();
    }
    g.finish();
}

fn recovery(c: &mut Criterion) {
    const N: u64 = 100_000;
    let dir = tempdir();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        for i in 0..N {
            db.put(&key(i), &VALUE).unwrap();
        }
        db.close().unwrap();
    }
    let mut g = c.benchmark_group("recovery");
    g.sample_size(10).throughput(Throughput::Elements(N));
    g.bench_function("100k_records", |b| {
        b.iter(|| {
            let db = Db::open(dir.path(), Options::default()).unwrap();
            assert_eq!(db.recovery_stats().transactions_applied, N);
            assert_eq!(db.get(&key(N - 1)).unwrap().as_deref(), Some(&VALUE[..]));
            db.close().unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, puts, strict_latency, group_commit, recovery);
criterion_main!(benches);
