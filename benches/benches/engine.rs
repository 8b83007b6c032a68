//! Criterion benchmarks of ringlog through the harness's engine layer: one put per durability
//! mode, Strict group commit with 1/4/16 writers, recovery (reopen + first read) of 100k
//! records, and recovery of a 64 MiB segment whose tail is garbage (random, or crafted record-like
//! headers) beside a plain read of the same 64 MiB file — issue 8's target is an open within twice
//! the read. Issue 11's: the cost of `Db::snapshot()` (target ≤ 1 µs) on an idle database and
//! while another thread commits, and full forward and reverse scans of 100k keys.
//!
//! ```text
//! cargo bench -p ringlog-bench --bench engine
//! cargo bench -p ringlog-bench --bench engine -- 'snapshot|scan'
//! ```
//!
//! Files go to `RINGLOG_BENCH_DIR` if set, else to a temporary directory under the build's
//! target directory (a real disk, not tmpfs: fdatasync must mean something).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringlog_bench::keys::Codec;
use ringlog_db::{Db, Durability, Options};

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
        let db = if durability == Durability::InMemory {
            Db::in_memory()
        } else {
            Db::open(dir.path(), Options::with_durability(durability)).unwrap()
        };
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

/// An in-memory database holding keys `0..n` at version 1.
fn loaded(codec: &Codec, n: u64) -> Db {
    let db = Db::in_memory();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut tx = db.begin();
        for &i in chunk {
            tx.put(&codec.key(i), &codec.value(i, 1)).unwrap();
        }
        tx.commit().unwrap();
    }
    db
}

fn snapshots(c: &mut Criterion) {
    const N: u64 = 100_000;
    let codec = Codec::new(16, 100);
    let db = loaded(&codec, N);
    let mut g = c.benchmark_group("snapshot");
    g.throughput(Throughput::Elements(1));
    // Taking one; criterion drops the snapshots outside the timing.
    g.bench_function("take", |b| b.iter_with_large_drop(|| db.snapshot()));
    g.bench_function("take_and_drop", |b| b.iter(|| db.snapshot()));
    // The same while another thread overwrites keys as fast as it can (on two cores the two
    // threads share the machine with criterion's own).
    let stop = AtomicBool::new(false);
    let puts = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut key = codec.key_buf();
            let mut val = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                codec.set_key(&mut key, i % N);
                codec.fill_value(&mut val, i % N, 2);
                db.put(&key, &val).unwrap();
            }
            puts.store(i, Ordering::Relaxed);
        });
        g.bench_function("take_and_drop_while_writing", |b| b.iter(|| db.snapshot()));
        stop.store(true, Ordering::Relaxed);
    });
    let s = db.stats();
    eprintln!(
        "snapshot: the writer committed {} puts meanwhile; {} snapshots live at the end, {} \
         versions, {} trims",
        puts.load(Ordering::Relaxed),
        s.snapshots,
        s.versions,
        s.trims
    );
    g.finish();
}

fn scans(c: &mut Criterion) {
    const N: u64 = 100_000;
    let codec = Codec::new(16, 100);
    let db = loaded(&codec, N);
    let mut g = c.benchmark_group("scan_100k");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(N));
    g.bench_function("forward", |b| {
        b.iter(|| {
            let n = db
                .range::<&[u8], _>(..)
                .unwrap()
                .map(Result::unwrap)
                .count() as u64;
            assert_eq!(n, N);
        })
    });
    g.bench_function("reverse", |b| {
        b.iter(|| {
            let n = db
                .range::<&[u8], _>(..)
                .unwrap()
                .rev()
                .map(Result::unwrap)
                .count() as u64;
            assert_eq!(n, N);
        })
    });
    // A scan from a random key to its first entry (the seek): O(log n).
    g.throughput(Throughput::Elements(1));
    g.bench_function("first_entry", |b| {
        let mut key = codec.key_buf();
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 7919) % N;
            codec.set_key(&mut key, i);
            db.range(key.as_slice()..).unwrap().next().unwrap().unwrap()
        })
    });
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

/// Same bytes every run: the workspace's seeded generator.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    ringlog_rng::Rng::new(seed).fill(&mut out);
    out
}

/// A tail in which every 48 bytes hold a record header that passes every check but its
/// checksum, each claiming the rest of the file (the worst case of the later-batch search).
fn crafted(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut at = 0;
    while at + 48 <= len {
        let h = &mut out[at..at + 48];
        h[0..4].copy_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
        h[4..8].copy_from_slice(&((len - at) as u32).to_le_bytes());
        h[8] = 7; // Padding
        h[12..16].copy_from_slice(&(64u32 << 10).to_le_bytes()); // batch start after the damage
        h[16..24].copy_from_slice(&1u64.to_le_bytes());
        h[32..40].copy_from_slice(&1u64.to_le_bytes());
        at += 48;
    }
    out
}

fn damaged_tail(c: &mut Criterion) {
    const SEG: u64 = 64 << 20;
    const DAMAGE_AT: u64 = 64 << 10;
    let root = tempdir();
    let mut g = c.benchmark_group("damaged_tail_64MiB");
    g.sample_size(10).throughput(Throughput::Bytes(SEG));
    for (name, tail) in [
        ("random", noise(7, (SEG - DAMAGE_AT) as usize)),
        ("crafted_headers", crafted((SEG - DAMAGE_AT) as usize)),
    ] {
        let base = root.path().join(name);
        let opts = Options::default()
            .segment_size(SEG)
            .durability(Durability::Strict);
        let db = Db::open(&base, opts.clone()).unwrap();
        db.put(b"key", b"value").unwrap();
        db.close().unwrap();
        let seg = base.join(format!("{:020}.log", 1));
        {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
            f.write_all_at(&tail, DAMAGE_AT).unwrap();
        }
        if name == "random" {
            // The floor: reading the same file, page cache warm like the opens below.
            g.bench_function("read_file", |b| {
                b.iter(|| std::fs::read(&seg).unwrap().len())
            });
        }
        // Each open cuts the tail and starts a new segment, so every iteration opens a fresh
        // copy (the copy is not timed). `open` times Db::open whole, which also creates and
        // zero-fills the next 64 MiB segment; `recover` times only the replay
        // (RecoveryStats::duration), which is what the damage costs. Both tails are torn tails
        // (no batch head after the damage proves it durable); the crafted one was refused as
        // corruption until session 28, when the record search's checksum budget ran out on it.
        let work = root.path().join(format!("{name}-work"));
        let fresh_copy = || {
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(&work).unwrap();
            for e in std::fs::read_dir(&base).unwrap() {
                let e = e.unwrap();
                if e.file_name() != "LOCK" {
                    std::fs::copy(e.path(), work.join(e.file_name())).unwrap();
                }
            }
            // Warm, like the read above.
            std::fs::read(work.join(format!("{:020}.log", 1))).unwrap();
        };
        let open = |what: &str| -> Duration {
            fresh_copy();
            let start = Instant::now();
            let res = Db::open(&work, opts.clone());
            let total = start.elapsed();
            match res {
                Ok(db) => {
                    assert!(db.get(b"key").unwrap().is_some());
                    let d = db.recovery_stats().duration;
                    db.close().unwrap();
                    if what == "recover" {
                        d
                    } else {
                        total
                    }
                }
                Err(e) => panic!("{name}: {e}"),
            }
        };
        for what in ["open", "recover"] {
            g.bench_function(BenchmarkId::new(what, name), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| open(what)).sum())
            });
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    put_per_mode,
    group_commit,
    snapshots,
    scans,
    recovery,
    damaged_tail
);
criterion_main!(benches);
