//! Optimistic transactions: the classic anomalies (lost update, write skew, phantom) are refused
//! for tracked reads, read-only and write-only transactions never conflict, `TransactionTooOld`
//! when the history is gone, conditions (uniqueness under 16 racing writers, an event-store
//! append after a position), the retry helper, and a bank of accounts whose total never changes
//! in any snapshot, before or after a reopen — on both I/O paths where a log is involved.

mod common;

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;

use common::*;
use ringlog_db::{Conflicting, Db, Durability, Error, Options, RetryPolicy, Value};

fn num(v: Option<Value>) -> i64 {
    v.map_or(0, |v| {
        i64::from_le_bytes(v.as_bytes().try_into().expect("8-byte value"))
    })
}

/// `r` is a conflict on key `key` by the commit of LSN `by` (`what`: what should conflict).
fn assert_key_conflict(r: Result<u64, Error>, key: &[u8], by: u64, what: &str) {
    match r {
        Err(Error::Conflict {
            on: Conflicting::Key(k),
            by_lsn,
        }) => {
            assert_eq!(&*k, key, "{what}");
            assert_eq!(by_lsn, by, "{what}");
        }
        other => panic!("{what}, got {other:?}"),
    }
}

/// `r` is a conflict on a range by the commit of LSN `by` (`what`: what should conflict).
fn assert_range_conflict(r: Result<u64, Error>, by: u64, what: &str) {
    match r {
        Err(Error::Conflict {
            on: Conflicting::Range { .. },
            by_lsn,
        }) => assert_eq!(by_lsn, by, "{what}"),
        other => panic!("{what}, got {other:?}"),
    }
}

fn is_conflict(r: &Result<u64, Error>) -> bool {
    matches!(r, Err(Error::Conflict { .. }))
}

#[test]
fn a_lost_update_is_refused() {
    let db = Db::in_memory();
    db.put(b"n", &1i64.to_le_bytes()).unwrap();
    let mut a = db.begin();
    let mut b = db.begin();
    let na = num(a.get(b"n").unwrap());
    let nb = num(b.get(b"n").unwrap());
    a.put(b"n", &(na + 1).to_le_bytes()).unwrap();
    b.put(b"n", &(nb + 1).to_le_bytes()).unwrap();
    let la = a.commit().unwrap();
    assert_key_conflict(b.commit(), b"n", la, "the second increment must conflict");
    assert_eq!(num(db.get(b"n").unwrap()), 2);
    assert_eq!(db.stats().txn_conflicts, 1);
}

#[test]
fn write_skew_is_refused() {
    // Two doctors on call; each may go off call only if the other stays.
    let db = Db::in_memory();
    db.put(b"alice", b"on").unwrap();
    db.put(b"bob", b"on").unwrap();
    let mut a = db.begin();
    let mut b = db.begin();
    for tx in [&mut a, &mut b] {
        assert_eq!(tx.get(b"alice").unwrap().as_deref(), Some(&b"on"[..]));
        assert_eq!(tx.get(b"bob").unwrap().as_deref(), Some(&b"on"[..]));
    }
    a.put(b"alice", b"off").unwrap();
    b.put(b"bob", b"off").unwrap();
    a.commit().unwrap();
    assert!(is_conflict(&b.commit()));
    assert_eq!(db.get(b"bob").unwrap().as_deref(), Some(&b"on"[..]));
}

#[test]
fn a_phantom_in_a_scanned_range_conflicts() {
    let db = Db::in_memory();
    db.put(b"task/1", b"x").unwrap();
    let mut t = db.begin();
    let seen: Vec<_> = t.prefix(b"task/").unwrap().map(|e| e.unwrap().0).collect();
    assert_eq!(seen.len(), 1);
    // Another transaction inserts into the range and commits first.
    let inserted = db.put(b"task/2", b"y").unwrap();
    t.put(b"count", &(seen.len() as i64).to_le_bytes()).unwrap();
    match t.commit() {
        Err(Error::Conflict {
            on: Conflicting::Range { start, end },
            by_lsn,
        }) => {
            assert_eq!(start, Bound::Included(b"task/"[..].into()));
            assert_eq!(end, Bound::Excluded(b"task0"[..].into()));
            assert_eq!(by_lsn, inserted);
        }
        other => panic!("a phantom must conflict, got {other:?}"),
    }
    // A write outside the range does not.
    let mut t = db.begin();
    let _ = t.range(&b"task/"[..]..&b"task/9"[..]).unwrap().count();
    db.put(b"zzz", b"1").unwrap();
    t.put(b"count", b"2").unwrap();
    t.commit().unwrap();
}

#[test]
fn read_only_and_write_only_transactions_never_conflict() {
    let db = Db::in_memory();
    db.put(b"k", b"1").unwrap();
    // Read-only: a concurrent write does not fail it, and it writes nothing.
    let mut r = db.begin();
    assert_eq!(r.get(b"k").unwrap().as_deref(), Some(&b"1"[..]));
    db.put(b"k", b"2").unwrap();
    let before = db.stats().commits;
    let snap = r.snapshot_lsn().unwrap();
    assert!(snap < db.last_lsn());
    assert_eq!(
        r.commit().unwrap(),
        snap,
        "a read-only transaction is at its snapshot"
    );
    assert_eq!(db.stats().commits, before);
    // Write-only: blind writes of a key others write too.
    let mut w = db.begin();
    w.put(b"k", b"3").unwrap();
    db.put(b"k", b"4").unwrap();
    w.commit().unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"3"[..]));
    // Untracked reads opt out.
    let mut u = db.begin();
    assert_eq!(u.get_untracked(b"k").unwrap().as_deref(), Some(&b"3"[..]));
    db.put(b"k", b"5").unwrap();
    u.put(b"other", b"x").unwrap();
    u.commit().unwrap();
    assert_eq!(db.stats().txn_conflicts, 0);
}

#[test]
fn a_transaction_reads_its_snapshot_and_its_own_writes() {
    let db = Db::in_memory();
    for k in [b"a", b"c", b"e"] {
        db.put(k, b"old").unwrap();
    }
    let mut t = db.begin();
    assert_eq!(t.snapshot_lsn(), None);
    assert_eq!(t.get(b"a").unwrap().as_deref(), Some(&b"old"[..]));
    let s = t.snapshot_lsn().expect("taken at the first read");
    db.put(b"c", b"new").unwrap();
    assert_eq!(t.get_untracked(b"c").unwrap().as_deref(), Some(&b"old"[..]));
    t.put(b"b", b"mine").unwrap();
    t.delete(b"e").unwrap();
    t.put(b"c", b"mine").unwrap();
    let got: Vec<(Vec<u8>, Vec<u8>, u64)> = t
        .range(&b"a"[..]..)
        .unwrap()
        .map(|e| {
            let (k, v) = e.unwrap();
            (k.to_vec(), v.as_bytes().to_vec(), v.lsn())
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (b"a".to_vec(), b"old".to_vec(), 1),
            (b"b".to_vec(), b"mine".to_vec(), 0),
            (b"c".to_vec(), b"mine".to_vec(), 0),
        ]
    );
    assert_eq!(t.snapshot_lsn(), Some(s));
    // It read "c" only untracked, and scanned a.. after writing c itself: the scan tracked the
    // range, so the concurrent write of c (after the snapshot) conflicts.
    assert!(is_conflict(&t.commit()));
}

#[test]
fn a_transaction_older_than_the_kept_history_is_too_old() {
    let db = Db::in_memory_with_options(Options::default().conflict_history_bytes(1024)).unwrap();
    db.put(b"k", b"1").unwrap();
    let mut t = db.begin();
    t.get(b"k").unwrap();
    for i in 0..100u32 {
        db.put(format!("other{i}").as_bytes(), b"x").unwrap();
    }
    t.put(b"k", b"2").unwrap();
    match t.commit() {
        Err(Error::TransactionTooOld { snapshot, oldest }) => assert!(oldest > snapshot),
        other => panic!("expected TransactionTooOld, got {other:?}"),
    }
    // The retry helper does not retry it.
    let calls = AtomicU64::new(0);
    let r = db.transact(&RetryPolicy::default(), |tx| {
        calls.fetch_add(1, Ordering::Relaxed);
        tx.get(b"k")?;
        for i in 0..100u32 {
            db.put(format!("more{i}").as_bytes(), b"x")?;
        }
        tx.put(b"k", b"3")
    });
    assert!(matches!(r, Err(Error::TransactionTooOld { .. })), "{r:?}");
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    // A fresh transaction commits.
    let mut t = db.begin();
    t.get(b"k").unwrap();
    t.put(b"k", b"4").unwrap();
    t.commit().unwrap();
}

#[test]
fn transact_retries_conflicts_only_and_gives_up_after_its_attempts() {
    let db = Db::in_memory();
    db.put(b"n", &0i64.to_le_bytes()).unwrap();
    // Each of the first two attempts is overtaken by a write of the key it read.
    let calls = AtomicU64::new(0);
    let ((), _) = db
        .transact(&RetryPolicy::default(), |tx| {
            let n = num(tx.get(b"n")?);
            if calls.fetch_add(1, Ordering::Relaxed) < 2 {
                db.put(b"n", &(n + 100).to_le_bytes())?;
            }
            tx.put(b"n", &(n + 1).to_le_bytes())
        })
        .unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    assert_eq!(num(db.get(b"n").unwrap()), 201);
    assert_eq!(db.stats().txn_retries, 2);
    // Always overtaken: the last conflict after max_attempts.
    let calls = AtomicU64::new(0);
    let r = db.transact(&RetryPolicy::default().max_attempts(4), |tx| {
        calls.fetch_add(1, Ordering::Relaxed);
        tx.get(b"n")?;
        db.put(b"n", b"overtaken")?;
        tx.put(b"n", b"mine")
    });
    assert!(matches!(r, Err(Error::Conflict { .. })), "{r:?}");
    assert_eq!(calls.load(Ordering::Relaxed), 4);
    // Any other error at once.
    let calls = AtomicU64::new(0);
    let r: Result<((), u64), Error> = db.transact(&RetryPolicy::default(), |tx| {
        calls.fetch_add(1, Ordering::Relaxed);
        tx.put(b"", b"empty key")
    });
    assert!(matches!(r, Err(Error::EmptyKey)), "{r:?}");
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[test]
fn conditions_after_a_position_and_uniqueness() {
    on_each_path(|io| {
        let dir = tempdir();
        let db = open(dir.path(), opts(io, Durability::Strict));
        let append = |stream: &str, seq: u32, after: Option<u64>| {
            let mut tx = db.begin();
            tx.fail_if_prefix_changed(format!("ev/{stream}/").as_bytes(), after)?;
            tx.put(format!("ev/{stream}/{seq:08}").as_bytes(), b"event")?;
            tx.commit()
        };
        // A new stream: "must not exist" holds once.
        let p1 = append("order-1", 1, None).unwrap();
        assert!(is_conflict(&append("order-1", 1, None)));
        // Appending after the position read: holds while nothing was appended since.
        let p2 = append("order-1", 2, Some(p1)).unwrap();
        match append("order-1", 2, Some(p1)) {
            Err(Error::Conflict { by_lsn, .. }) => assert_eq!(by_lsn, p2),
            other => panic!("a stale position must conflict, got {other:?}"),
        }
        // Other streams do not matter.
        db.put(b"ev/order-2/00000001", b"event").unwrap();
        append("order-1", 3, Some(p2)).unwrap();
        // A point condition, and one whose LSN is above the snapshot: a write at or below the
        // LSN named does not count, one above it does.
        let mut tx = db.begin();
        tx.get(b"unrelated").unwrap();
        let w = db.put(b"flag", b"1").unwrap();
        tx.fail_if_key_changed(b"flag", Some(w)).unwrap();
        tx.put(b"x", b"1").unwrap();
        tx.commit().unwrap();
        let mut tx = db.begin();
        tx.fail_if_key_changed(b"flag", Some(w)).unwrap();
        db.put(b"flag", b"2").unwrap();
        tx.put(b"x", b"2").unwrap();
        assert!(is_conflict(&tx.commit()));
        // A reversed range holds nothing.
        let mut tx = db.begin();
        tx.fail_if_changed(&b"z"[..]..&b"a"[..], None).unwrap();
        tx.put(b"y", b"1").unwrap();
        tx.commit().unwrap();
        // A transaction that writes nothing checks its conditions too (at its snapshot): a
        // guard alone is a check (found by a fresh-user pass: it passed silently).
        let mut tx = db.begin();
        tx.fail_if_prefix_changed(b"ev/order-1/", None).unwrap();
        assert!(is_conflict(&tx.commit()));
        let mut tx = db.begin();
        tx.fail_if_prefix_changed(b"ev/order-9/", None).unwrap();
        let at = tx.commit().unwrap();
        assert_eq!(at, db.last_lsn());
        let mut tx = db.begin();
        tx.fail_if_key_changed(b"flag", Some(w)).unwrap();
        assert!(is_conflict(&tx.commit()), "flag changed after {w}");
    });
}

#[test]
fn uniqueness_guard_under_16_racing_writers_has_one_winner() {
    on_each_path(|io| {
        for round in 0..4u32 {
            let dir = tempdir();
            let db = open(dir.path(), opts(io, Durability::Strict));
            let start = Barrier::new(16);
            let key = format!("user/{round}");
            let results: Vec<Result<u64, Error>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..16u32)
                    .map(|t| {
                        let (db, start, key) = (&db, &start, &key);
                        s.spawn(move || {
                            start.wait();
                            let mut tx = db.begin();
                            tx.fail_if_key_changed(key.as_bytes(), None)?;
                            tx.put(key.as_bytes(), &t.to_le_bytes())?;
                            tx.commit()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let won: Vec<usize> = (0..16).filter(|&i| results[i].is_ok()).collect();
            assert_eq!(
                won.len(),
                1,
                "round {round}: winners {won:?} of {results:?}"
            );
            assert!(
                results.iter().filter(|r| r.is_err()).all(is_conflict),
                "{results:?}"
            );
            let v = db.get(key.as_bytes()).unwrap().unwrap();
            assert_eq!(v.as_bytes(), &(won[0] as u32).to_le_bytes());
        }
    });
}

const ACCOUNTS: u32 = 16;
const START: i64 = 1000;

fn account(i: u32) -> Vec<u8> {
    format!("acct/{i:02}").into_bytes()
}

/// The sum of every account as of a snapshot (a scan) and through point reads.
fn total(snap: &ringlog_db::Snapshot) -> (i64, i64) {
    let scanned = snap
        .prefix(b"acct/")
        .unwrap()
        .map(|e| num(Some(e.unwrap().1)))
        .sum();
    let pointed = (0..ACCOUNTS)
        .map(|i| num(snap.get(&account(i)).unwrap()))
        .sum();
    (scanned, pointed)
}

#[test]
fn bank_transfers_keep_the_total_in_every_snapshot_across_a_crash_and_a_reopen() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, Durability::BUFFERED);
        let db = open(dir.path(), o.clone());
        for i in 0..ACCOUNTS {
            db.put(&account(i), &START.to_le_bytes()).unwrap();
        }
        // The accounts are durable before the transfers start: the crash below may lose any
        // suffix of the transfers, but an unsynced Buffered setup could be lost too (the log
        // thread, starved of CPU, may not have written it yet), leaving no accounts to total.
        db.sync().unwrap();
        let want = START * ACCOUNTS as i64;
        let done = AtomicBool::new(false);
        let snapshots = AtomicU64::new(0);
        let reader_ended = AtomicBool::new(false);
        let transfers = 300u64;
        let policy = RetryPolicy::default().max_attempts(10_000);
        std::thread::scope(|s| {
            let writers: Vec<_> = (0..6u64)
                .map(|t| {
                    let (db, policy, snapshots, reader_ended) =
                        (&db, &policy, &snapshots, &reader_ended);
                    s.spawn(move || {
                        let mut rng = Rng::new(0xBA4C + t);
                        for i in 0..transfers {
                            if i == transfers / 2 {
                                // Half-way, until the reader has totalled one more snapshot:
                                // some snapshots are taken while transfers run, however the
                                // threads are scheduled (on a loaded machine the writers could
                                // otherwise all finish before the reader first runs).
                                let seen = snapshots.load(Ordering::Acquire);
                                while snapshots.load(Ordering::Acquire) == seen
                                    && !reader_ended.load(Ordering::Acquire)
                                {
                                    std::thread::yield_now();
                                }
                            }
                            let from = rng.below(ACCOUNTS as u64) as u32;
                            let to = (from + 1 + rng.below(ACCOUNTS as u64 - 1) as u32) % ACCOUNTS;
                            let amount = rng.below(50) as i64;
                            db.transact(policy, |tx| {
                                let a = num(tx.get(&account(from))?);
                                let b = num(tx.get(&account(to))?);
                                tx.put(&account(from), &(a - amount).to_le_bytes())?;
                                tx.put(&account(to), &(b + amount).to_le_bytes())
                            })
                            .unwrap();
                        }
                    })
                })
                .collect();
            s.spawn(|| {
                // Set however the reader ends (a failed check too), so no writer waits for it.
                struct Ended<'a>(&'a AtomicBool);
                impl Drop for Ended<'_> {
                    fn drop(&mut self) {
                        self.0.store(true, Ordering::Release);
                    }
                }
                let _ended = Ended(&reader_ended);
                while !done.load(Ordering::Acquire) {
                    let snap = db.snapshot();
                    let (a, b) = total(&snap);
                    assert_eq!((a, b), (want, want), "snapshot at LSN {}", snap.lsn());
                    snapshots.fetch_add(1, Ordering::Release);
                }
            });
            for w in writers {
                w.join().unwrap();
            }
            done.store(true, Ordering::Release);
        });
        assert!(snapshots.load(Ordering::Relaxed) > 0);
        let before: Vec<i64> = (0..ACCOUNTS)
            .map(|i| num(db.get(&account(i)).unwrap()))
            .collect();
        assert_eq!(before.iter().sum::<i64>(), want);
        let st = db.stats();
        eprintln!(
            "{} transfers, {} conflicts, {} retries",
            6 * transfers,
            st.txn_conflicts,
            st.txn_retries
        );
        assert_eq!(st.txn_retries, st.txn_conflicts);
        // A crash now (the Buffered tail not all written): whatever prefix of the transfers
        // survives, each whole, keeps the total.
        let crashed = crash_copy(dir.path());
        let last = db.last_lsn();
        db.close().unwrap();
        {
            let db = open(crashed.path(), o.clone());
            assert!(db.last_lsn() <= last);
            assert_eq!(total(&db.snapshot()), (want, want), "after a crash");
            db.close().unwrap();
        }
        let db = open(dir.path(), o);
        assert_eq!(total(&db.snapshot()), (want, want));
        let after: Vec<i64> = (0..ACCOUNTS)
            .map(|i| num(db.get(&account(i)).unwrap()))
            .collect();
        assert_eq!(before, after);
        // The first transaction of the new run.
        db.transact(&policy, |tx| {
            let a = num(tx.get(&account(0))?);
            let b = num(tx.get(&account(1))?);
            tx.put(&account(0), &(a - 1).to_le_bytes())?;
            tx.put(&account(1), &(b + 1).to_le_bytes())
        })
        .unwrap();
        assert_eq!(total(&db.snapshot()), (want, want));
    });
}

/// Threads increment shared counters through `transact`: no increment is lost (an in-memory
/// database, where commits are quickest and registrations race most with pruning, and a
/// database with a log on each path).
fn increments(db: &Db, threads: u64, each: u64) {
    let done = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (db, done) = (&db, &done);
            s.spawn(move || {
                let mut rng = Rng::new(t);
                for _ in 0..each {
                    let k = format!("c{}", rng.below(4));
                    let r = db.transact(&RetryPolicy::default().max_attempts(100_000), |tx| {
                        let n = num(tx.get(k.as_bytes())?);
                        tx.put(k.as_bytes(), &(n + 1).to_le_bytes())
                    });
                    r.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let sum: i64 = (0..4)
        .map(|i| num(db.get(format!("c{i}").as_bytes()).unwrap()))
        .sum();
    assert_eq!(sum as u64, done.load(Ordering::Relaxed));
    assert_eq!(sum as u64, threads * each);
}

#[test]
fn concurrent_increments_lose_nothing() {
    increments(&Db::in_memory(), 4, 5000);
    on_each_path(|io| {
        let dir = tempdir();
        let db = open(dir.path(), opts(io, Durability::BUFFERED));
        increments(&db, 16, 200);
    });
}

/// A run that follows a crash starts above its predecessor's LSN lease: the LSNs between were
/// never assigned. The first transaction starts tracking conflicts without waiting for them
/// to become visible (which they never would).
#[test]
fn the_first_transaction_after_a_crash_does_not_wait_for_skipped_lsns() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, common::buffered_forever(usize::MAX)).lease_span(8);
        let db = open(dir.path(), o.clone());
        for i in 0..30u32 {
            db.put(format!("k{i}").as_bytes(), &(i as i64).to_le_bytes())
                .unwrap();
        }
        db.sync().unwrap();
        for i in 0..5u32 {
            db.put(format!("lost{i}").as_bytes(), b"x").unwrap();
        }
        // The crash: what the files hold now.
        let crashed = crash_copy(dir.path());
        db.close().unwrap();
        let db = open(crashed.path(), o);
        assert!(
            db.next_lsn() > db.last_lsn() + 1,
            "the run starts above a gap"
        );
        let (n, lsn) = db
            .transact(&RetryPolicy::default(), |tx| {
                let n = num(tx.get(b"k3")?);
                tx.put(b"k3", &(n + 1).to_le_bytes())?;
                Ok(n)
            })
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(num(db.get(b"k3").unwrap()), 4);
        assert_eq!(db.last_lsn(), lsn);
    });
}

/// A transaction's reads and scans — forward, reverse and from both ends at once — equal the
/// snapshot's entries overlaid with the transaction's own writes (a model), over random states,
/// ranges and numbers of writes (with and without the index of its own writes).
#[test]
fn transaction_scans_merge_own_writes_from_both_ends() {
    use std::collections::BTreeMap;
    for seed in 1..=40u64 {
        let mut rng = Rng::new(seed);
        let db = Db::in_memory();
        let key = |k: u64| format!("k{k:02}").into_bytes();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for _ in 0..rng.below(30) {
            let k = key(rng.below(40));
            let v = rng.next_u64().to_le_bytes().to_vec();
            db.put(&k, &v).unwrap();
            model.insert(k, v);
        }
        let mut tx = db.begin();
        tx.get(b"k00").unwrap();
        // Writes after the snapshot by others are not seen.
        db.put(&key(rng.below(40)), b"later").unwrap();
        // Up to 60 writes: past 16 the transaction indexes its own writes by key.
        for _ in 0..rng.below(60) {
            let k = key(rng.below(40));
            if rng.below(3) == 0 {
                tx.delete(&k).unwrap();
                model.remove(&k);
            } else {
                let v = rng.next_u64().to_le_bytes().to_vec();
                tx.put(&k, &v).unwrap();
                model.insert(k, v);
            }
        }
        for k in 0..40 {
            let got = tx
                .get_untracked(&key(k))
                .unwrap()
                .map(|v| v.as_bytes().to_vec());
            assert_eq!(got.as_ref(), model.get(&key(k)), "seed {seed}: get k{k:02}");
        }
        let (lo, hi) = (key(rng.below(40)), key(rng.below(41)));
        let want: Vec<(Vec<u8>, Vec<u8>)> = if lo <= hi {
            model
                .range(lo.clone()..hi.clone())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        } else {
            Vec::new()
        };
        let pair = |e: Result<(std::sync::Arc<[u8]>, Value), Error>| {
            let (k, v) = e.unwrap();
            (k.to_vec(), v.as_bytes().to_vec())
        };
        let fwd: Vec<_> = tx
            .range(lo.clone()..hi.clone())
            .unwrap()
            .map(pair)
            .collect();
        assert_eq!(fwd, want, "seed {seed}: forward");
        let mut rev: Vec<_> = tx
            .range(lo.clone()..hi.clone())
            .unwrap()
            .rev()
            .map(pair)
            .collect();
        rev.reverse();
        assert_eq!(rev, want, "seed {seed}: reverse");
        // Alternating ends: the front part and the back part meet exactly once.
        let mut scan = tx.range(lo.clone()..hi.clone()).unwrap();
        let (mut front, mut back) = (Vec::new(), Vec::new());
        loop {
            let e = if rng.below(2) == 0 {
                scan.next().map(|e| front.push(pair(e)))
            } else {
                scan.next_back().map(|e| back.push(pair(e)))
            };
            if e.is_none() {
                break;
            }
        }
        assert!(scan.next().is_none() && scan.next_back().is_none());
        back.reverse();
        front.extend(back);
        assert_eq!(front, want, "seed {seed}: from both ends");
    }
}

/// A poisoned database commits nothing more, so a transaction reads at what is visible, as
/// `Db::snapshot` does — whether or not another tracked transaction happened to be live (a
/// review found `Txn::get` failing `Poisoned` when none was: its registration waited for the
/// failed commit's LSN to become visible). Its commit fails `Poisoned`, not `Conflict`, even
/// with a broken condition.
#[test]
fn a_transaction_on_a_poisoned_database_reads_what_is_visible() {
    on_each_path(|io| {
        let dir = tempdir();
        let faults = Faults::new(0, FailMode::BeforeWrite);
        let vfs = FaultVfs::new(real_vfs(io), faults.clone());
        let db = open(dir.path(), opts(io, Durability::Strict).vfs(vfs));
        db.put(b"k", b"0").unwrap();
        faults
            .fail_at
            .store(faults.calls.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
        assert!(matches!(db.put(b"k", b"1"), Err(Error::Poisoned(_))));
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"0"[..]));
        let mut t = db.begin();
        let got = t.get(b"k");
        assert!(
            matches!(&got, Ok(Some(v)) if v.as_bytes() == b"0"),
            "{}: Txn::get on a poisoned db: {got:?}",
            io_name(io)
        );
        let mut c = db.begin();
        c.fail_if_key_changed(b"k", None).unwrap();
        c.put(b"k", b"2").unwrap();
        let r = c.commit();
        assert!(
            matches!(r, Err(Error::Poisoned(_))),
            "{}: {r:?}",
            io_name(io)
        );
        // A read-only transaction is serialized at its snapshot: it still commits there.
        let mut ro = db.begin();
        assert_eq!(ro.get(b"k").unwrap().as_deref(), Some(&b"0"[..]));
        assert!(ro.commit().is_ok());
        drop(t);
        let _ = db.close();
    });
}

/// A commit that can never succeed says why before its conditions are checked: a broken
/// condition made `Db::transact` retry a commit asking for a durability the database refuses,
/// and answer `Conflict` after every attempt.
#[test]
fn a_refused_durability_is_reported_before_a_broken_condition() {
    let dir = tempdir();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    db.put(b"user/alice", b"x").unwrap();
    let policy = RetryPolicy::default()
        .durability(Durability::InMemory)
        .max_attempts(3);
    let mut runs = 0;
    let r = db.transact(&policy, |tx| {
        runs += 1;
        tx.fail_if_key_changed(b"user/alice", None)?;
        tx.put(b"user/alice", b"y")?;
        Ok(())
    });
    assert!(
        matches!(r, Err(Error::DurabilityUnavailable(_))),
        "got {r:?} after {runs} runs"
    );
    assert_eq!(runs, 1);
    db.close().unwrap();
}

/// (A mutation audit, session 35: each case below was untested.) A scanned range conflicts on any write in it above the snapshot, not only when
/// the first recorded write of the range is one (an older live transaction keeps a write at or
/// below the snapshot ahead of it in the table).
#[test]
fn a_range_conflicts_on_a_later_key_behind_an_older_recorded_write() {
    let db = Db::in_memory();
    let mut old = db.begin();
    old.get(b"unrelated").unwrap(); // keeps the writes below in the conflict table
    db.put(b"r/a", b"1").unwrap(); // recorded, not above t's snapshot
    let mut t = db.begin();
    assert_eq!(t.prefix(b"r/").unwrap().count(), 1);
    let s = t.snapshot_lsn().unwrap();
    let w = db.put(b"r/b", b"1").unwrap(); // a phantom behind r/a
    assert!(w > s);
    t.put(b"out", b"x").unwrap();
    assert_range_conflict(
        t.commit(),
        w,
        "a write of r/b after the snapshot must conflict",
    );
    drop(old);
}

/// A one-key inclusive range (`k..=k`) is a range of one key, not an empty one:
/// tracked by a scan, guarded by a condition (at the snapshot and against later commits), and a
/// scan of it shows the transaction's own write of `k` (also once its writes are indexed).
#[test]
fn a_single_key_inclusive_range_is_tracked_guarded_and_scanned() {
    let db = Db::in_memory();
    db.put(b"k", b"1").unwrap();
    // A tracked scan.
    let mut t = db.begin();
    assert_eq!(t.range(&b"k"[..]..=&b"k"[..]).unwrap().count(), 1);
    let w = db.put(b"k", b"2").unwrap();
    t.put(b"out", b"x").unwrap();
    assert_range_conflict(
        t.commit(),
        w,
        "a write of k after a scan of k..=k must conflict",
    );
    // A condition, at the snapshot (k exists) ...
    let mut t = db.begin();
    t.fail_if_changed(&b"k"[..]..=&b"k"[..], None).unwrap();
    t.put(b"out", b"y").unwrap();
    assert!(is_conflict(&t.commit()));
    // ... and against a later commit (n did not exist at the snapshot).
    let mut t = db.begin();
    t.fail_if_changed(&b"n"[..]..=&b"n"[..], None).unwrap();
    db.put(b"n", b"1").unwrap();
    t.put(b"out", b"z").unwrap();
    assert!(is_conflict(&t.commit()));
    // Own writes in the scan, with more than 16 writes (indexed by key).
    let mut t = db.begin();
    for i in 0..20u32 {
        t.put(format!("w{i:02}").as_bytes(), b"x").unwrap();
    }
    t.put(b"k", b"mine").unwrap();
    let got: Vec<_> = t
        .range(&b"k"[..]..=&b"k"[..])
        .unwrap()
        .map(|e| e.unwrap().1.as_bytes().to_vec())
        .collect();
    assert_eq!(got, vec![b"mine".to_vec()]);
}

/// A key condition set after the transaction wrote the key still guards it (the
/// transaction's own write does not count, but it does not waive the condition either).
#[test]
fn a_key_condition_set_after_writing_the_key_still_guards_it() {
    let db = Db::in_memory();
    let mut a = db.begin();
    a.put(b"user/bob", b"a").unwrap();
    a.fail_if_key_changed(b"user/bob", None).unwrap();
    let mut b = db.begin();
    b.put(b"user/bob", b"b").unwrap();
    b.fail_if_key_changed(b"user/bob", None).unwrap();
    let la = a.commit().unwrap();
    assert_key_conflict(
        b.commit(),
        b"user/bob",
        la,
        "the second insert of user/bob must conflict",
    );
    assert_eq!(db.get(b"user/bob").unwrap().as_deref(), Some(&b"a"[..]));
    // At the snapshot too: the key exists now.
    let mut c = db.begin();
    c.put(b"user/bob", b"c").unwrap();
    c.fail_if_key_changed(b"user/bob", None).unwrap();
    assert!(is_conflict(&c.commit()));
}

/// A key first read after the snapshot was taken is
/// validated from the snapshot, not from the LSN current when it was read.
#[test]
fn a_key_read_after_the_snapshot_is_validated_from_the_snapshot() {
    let db = Db::in_memory();
    let mut t = db.begin();
    t.get(b"a").unwrap(); // the snapshot
    let w = db.put(b"b", b"1").unwrap();
    assert_eq!(t.get(b"b").unwrap(), None, "t reads its snapshot");
    t.put(b"c", b"x").unwrap();
    assert_key_conflict(
        t.commit(),
        b"b",
        w,
        "b was written after the snapshot: must conflict",
    );
}

/// Pruning keeps what the oldest live transaction
/// needs, whatever younger ones come and go.
#[test]
fn pruning_keeps_what_the_oldest_live_transaction_needs() {
    let db = Db::in_memory();
    let mut old = db.begin();
    old.get(b"k").unwrap();
    let w = db.put(b"k", b"1").unwrap();
    let mut young = db.begin();
    young.get(b"y").unwrap(); // a live snapshot at w
    let mut other = db.begin();
    other.get(b"z").unwrap();
    drop(other); // prunes
    old.put(b"k", b"2").unwrap();
    assert_key_conflict(old.commit(), b"k", w, "a lost update must conflict");
    drop(young);
}

/// The first transaction of a run waits for the commits whose LSNs were assigned before the
/// conflict table began recording (they are not in it) to become visible, and takes its snapshot
/// after them: else a write it cannot see and the table does not hold would let it overwrite that
/// write unseen (a lost update). Deterministic: the earlier `Strict` put is held at a write gate
/// (LSN assigned, not durable, not visible) until the transaction's thread has blocked.
#[test]
fn the_first_transaction_waits_for_commits_the_table_did_not_record() {
    on_each_path(|io| {
        let dir = tempdir();
        let gate = std::sync::Arc::new(WriteGate::default());
        let vfs = GatedWrites::new(real_vfs(io), gate.clone());
        let db = std::sync::Arc::new(open(dir.path(), opts(io, Durability::Strict).vfs(vfs)));
        db.put(b"k", b"0").unwrap();
        gate.arm();
        let held = {
            let db = db.clone();
            std::thread::spawn(move || db.put(b"k", b"held"))
        };
        gate.wait_holding();
        let txn = {
            let (db, gate) = (db.clone(), gate.clone());
            std::thread::spawn(move || {
                struct Exiting(std::sync::Arc<WriteGate>);
                impl Drop for Exiting {
                    fn drop(&mut self) {
                        self.0.exiting();
                    }
                }
                let _exiting = Exiting(gate);
                let mut t = db.begin();
                let seen = t.get(b"k").unwrap().map(|v| v.to_vec());
                let snapshot = t.snapshot_lsn().unwrap();
                t.put(b"k", b"txn").unwrap();
                (snapshot, seen, t.commit())
            })
        };
        // The transaction waits for the held put (or, without that wait, for its own commit).
        gate.wait_blocked(txn.thread().id());
        gate.release();
        let held_lsn = held.join().unwrap().unwrap();
        let (snapshot, seen, committed) = txn.join().unwrap();
        assert!(
            snapshot >= held_lsn,
            "{io}: the snapshot {snapshot} is below the put {held_lsn} the table did not record"
        );
        assert_eq!(seen.as_deref(), Some(&b"held"[..]), "{io}");
        let lsn = committed.unwrap_or_else(|e| panic!("{io}: {e}"));
        assert!(lsn > held_lsn, "{io}");
        assert_eq!(&*db.get(b"k").unwrap().unwrap(), b"txn", "{io}");
    });
}
