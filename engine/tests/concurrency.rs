//! Concurrency: group commit under many Strict writers, mixed per-transaction durability,
//! atomic visibility of transactions to concurrent readers, and waiters released by close.
//! Every test runs on both I/O paths.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use ringlog_db::{Durability, Error, IoChoice, Lsn, SyncStrategy};

const LIVENESS: Duration = Duration::from_secs(10);

/// `RINGLOG_TEST_SEED` if set, else a fresh seed; printed either way.
fn seed(test: &str) -> u64 {
    let seed = std::env::var("RINGLOG_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{test}: seed {seed} (rerun with RINGLOG_TEST_SEED={seed})");
    seed
}

#[test]
fn sixteen_strict_writers_share_syncs() {
    on_each_path(|io| {
        for strategy in [SyncStrategy::WriteThenSync, SyncStrategy::Dsync] {
            sixteen_writers(io, strategy);
        }
    });
}

fn sixteen_writers(io: IoChoice, sync_strategy: SyncStrategy) {
    const THREADS: usize = 16;
    const PER_THREAD: usize = 200;
    let dir = tempdir();
    let o = opts(io, Durability::Strict).sync_strategy(sync_strategy);
    let db = open(dir.path(), o.clone());
    for i in 0..10 {
        db.put(format!("pre-{i}").as_bytes(), b"existing").unwrap();
    }
    let base = db.last_lsn();
    assert_eq!(base, 10);
    let barrier = Barrier::new(THREADS);
    let results: Vec<Vec<Entry>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                let (db, barrier) = (&db, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    (0..PER_THREAD)
                        .map(|i| {
                            let k = format!("t{t:02}-{i:04}").into_bytes();
                            let v = format!("{t}:{i};").repeat(1 + (t * 7 + i) % 40);
                            let lsn = db.put(&k, v.as_bytes()).unwrap();
                            assert!(db.durable_lsn() >= lsn, "Strict returned before durable");
                            (k, v.into_bytes(), lsn)
                        })
                        .collect()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut lsns: Vec<Lsn> = Vec::new();
    for (t, mine) in results.iter().enumerate() {
        assert!(
            mine.windows(2).all(|w| w[0].2 < w[1].2),
            "thread {t}: LSNs follow its commit order"
        );
        lsns.extend(mine.iter().map(|e| e.2));
    }
    lsns.sort_unstable();
    let n = (THREADS * PER_THREAD) as Lsn;
    assert_eq!(
        lsns,
        (base + 1..=base + n).collect::<Vec<_>>(),
        "the LSNs are distinct and leave no hole"
    );
    for (k, v, lsn) in results.iter().flatten() {
        assert_entry(&db, k, v, *lsn);
    }
    let s = db.stats();
    assert_eq!(s.commits, 10 + n);
    assert!(s.syncs <= s.commits, "{s:?}");
    assert_eq!(s.durable_lsn, base + n);
    eprintln!(
        "[{} path, {sync_strategy:?}] {} commits, {} syncs ({:.2} commits per sync), {} segments created",
        io_name(io),
        s.commits,
        s.syncs,
        s.commits as f64 / s.syncs.max(1) as f64,
        s.segments_created
    );
    let before = scan(&db);
    db.close().unwrap();
    drop(db);
    let db = open(dir.path(), o);
    assert_eq!(scan(&db), before, "reopened: same data, same LSNs");
    assert_eq!(db.recovery_stats().transactions_applied, 10 + n);
    assert_eq!(db.recovery_stats().last_lsn, base + n);
}

/// What one thread did: (lsn, [(key, Some(value) | None for delete)]).
type Log = Vec<(Lsn, Vec<(Vec<u8>, Option<Vec<u8>>)>)>;

#[test]
fn mixed_strict_and_buffered_overrides_then_reopen() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 150;
    let seed = seed("mixed_strict_and_buffered_overrides_then_reopen");
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, Durability::BUFFERED);
        let db = open(dir.path(), o.clone());
        let barrier = Barrier::new(THREADS);
        let logs: Vec<Log> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (db, barrier) = (&db, &barrier);
                    s.spawn(move || {
                        let mut rng = Rng::new(seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9));
                        let mut log: Log = Vec::new();
                        barrier.wait();
                        for i in 0..PER_THREAD {
                            let mut tx = db.begin();
                            let mut ops = Vec::new();
                            let mut used = HashSet::new();
                            for _ in 0..1 + rng.below(3) {
                                // Own keys, and a small hot set every thread writes.
                                let key = if rng.below(4) == 0 {
                                    format!("hot-{}", rng.below(8))
                                } else {
                                    format!("t{t}-{}", rng.below(40))
                                };
                                if !used.insert(key.clone()) {
                                    continue;
                                }
                                if rng.below(5) == 0 {
                                    tx.delete(key.as_bytes()).unwrap();
                                    ops.push((key.into_bytes(), None));
                                } else {
                                    let v = format!("{t}/{i}/{}", rng.next_u64())
                                        .repeat(1 + rng.below(20) as usize)
                                        .into_bytes();
                                    tx.put(key.as_bytes(), &v).unwrap();
                                    ops.push((key.into_bytes(), Some(v)));
                                }
                            }
                            let strict = t % 2 == 0 || rng.below(10) == 0;
                            let lsn = match (strict, rng.below(2)) {
                                (true, _) => {
                                    let lsn = tx.commit_with(Durability::Strict).unwrap();
                                    assert!(
                                        db.durable_lsn() >= lsn,
                                        "a Strict override returned before durable"
                                    );
                                    lsn
                                }
                                (false, 0) => tx.commit().unwrap(),
                                (false, _) => tx
                                    .commit_with(Durability::Buffered {
                                        interval: Duration::from_millis(1 + rng.below(5)),
                                        max_pending: 1 + rng.below(16 << 10) as usize,
                                    })
                                    .unwrap(),
                            };
                            log.push((lsn, ops));
                        }
                        log
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // The model: apply every transaction in LSN order.
        let mut all: Vec<_> = logs.iter().flatten().collect();
        all.sort_by_key(|e| e.0);
        let lsns: Vec<Lsn> = all.iter().map(|e| e.0).collect();
        assert_eq!(
            lsns,
            (1..=(THREADS * PER_THREAD) as Lsn).collect::<Vec<_>>(),
            "LSNs are distinct and leave no hole"
        );
        let mut model: BTreeMap<Vec<u8>, (Vec<u8>, Lsn)> = BTreeMap::new();
        for (lsn, ops) in all {
            for (k, v) in ops {
                match v {
                    Some(v) => {
                        model.insert(k.clone(), (v.clone(), *lsn));
                    }
                    None => {
                        model.remove(k);
                    }
                }
            }
        }
        let want: Vec<Entry> = model.into_iter().map(|(k, (v, l))| (k, v, l)).collect();
        let before = scan(&db);
        assert_eq!(
            before, want,
            "reads match the model, whatever the durability"
        );
        let last = db.last_lsn();
        db.close().unwrap();
        assert_eq!(db.durable_lsn(), last);
        drop(db);
        let db = open(dir.path(), o);
        assert_eq!(scan(&db), before, "reopened: same data, same LSNs");
        assert_eq!(db.recovery_stats().last_lsn, last);
    });
}

#[test]
fn readers_never_see_part_of_a_transaction() {
    const WRITERS: usize = 4;
    const READERS: usize = 2;
    const TXNS: usize = 150;
    on_each_path(|io| {
        let dir = tempdir();
        let db = open(dir.path(), opts(io, Durability::Strict));
        let done = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for w in 0..WRITERS {
                let (db, done) = (&db, &done);
                s.spawn(move || {
                    for i in 0..TXNS {
                        // Each transaction sets the same value under three keys of pair `w`.
                        let v = format!("w{w}-{i}");
                        let mut tx = db.begin();
                        for part in ["a", "b", "c"] {
                            tx.put(format!("pair{w}/{part}").as_bytes(), v.as_bytes())
                                .unwrap();
                        }
                        tx.commit().unwrap();
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
            for _ in 0..READERS {
                let (db, done) = (&db, &done);
                s.spawn(move || {
                    let mut scans = 0;
                    loop {
                        let finished = done.load(std::sync::atomic::Ordering::SeqCst) == WRITERS;
                        for w in 0..WRITERS {
                            let got: Vec<_> = db
                                .prefix(format!("pair{w}/").as_bytes())
                                .unwrap()
                                .map(Result::unwrap)
                                .map(|(_, v)| (v.to_vec(), v.lsn()))
                                .collect();
                            assert!(
                                got.is_empty()
                                    || (got.len() == 3 && got.iter().all(|g| *g == got[0])),
                                "a scan saw part of a transaction: {got:?}"
                            );
                        }
                        scans += 1;
                        if finished {
                            break;
                        }
                    }
                    assert!(scans >= 1);
                });
            }
        });
        let s = db.stats();
        assert_eq!(s.commits, (WRITERS * TXNS) as u64);
        assert_eq!(s.keys, WRITERS * 3);
    });
}

/// A caller waiting for an LSN that has not been committed yet is released by the commit that
/// takes it, and by close (with `Closed`) if none ever does.
#[test]
fn waiters_for_a_future_lsn_are_released() {
    on_each_path(|io| {
        let dir = tempdir();
        let db = Arc::new(open(dir.path(), opts(io, buffered_forever(usize::MAX))));
        // The first commit of a run waits for its LSN lease to be durable (LSNs are never
        // reused): commits after it are Buffered for real.
        db.put(b"warm-up", b"lease").unwrap();
        for round in 0..2 {
            // One unsynced commit: a waiter's request makes the log sync it, which tells us the
            // waiter is registered (it asks under the log lock, just before it blocks).
            let pending = db.put(format!("pending-{round}").as_bytes(), b"x").unwrap();
            assert!(db.durable_lsn() < pending);
            let target = pending + 1;
            let (tx, rx) = mpsc::channel();
            let waiter = {
                let db = db.clone();
                std::thread::spawn(move || {
                    let r = db.wait_durable(target);
                    let _ = tx.send(r.map_err(|e| format!("{e:?}")));
                })
            };
            eventually(
                "the waiter's request syncs the pending commit",
                LIVENESS,
                || db.durable_lsn() >= pending,
            );
            assert!(
                rx.try_recv().is_err(),
                "wait_durable({target}) returned before LSN {target} existed"
            );
            if round == 0 {
                // The commit that takes the LSN releases the waiter once durable.
                let lsn = db.put(b"the-future", b"y").unwrap();
                assert_eq!(lsn, target);
                let r = rx
                    .recv_timeout(LIVENESS)
                    .expect("the waiter was not released by the commit it waited for");
                assert_eq!(r, Ok(()));
                assert!(db.durable_lsn() >= target);
            } else {
                // Nobody commits it: close must release the waiter, with Closed.
                db.close().unwrap();
                let r = rx.recv_timeout(LIVENESS).unwrap_or_else(|_| {
                    panic!("wait_durable({target}) still blocks after close (hang)")
                });
                assert_eq!(r, Err(format!("{:?}", Error::Closed)));
            }
            waiter.join().unwrap();
        }
    });
}
