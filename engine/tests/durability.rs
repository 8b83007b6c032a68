//! Durability: what each mode promises — InMemory writes nothing, Buffered syncs by itself and on
//! close, Strict survives SIGKILL, a failed write or fdatasync poisons, a directory opens once,
//! and a full disk loses nothing acknowledged. Every test runs on both I/O paths.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::*;
use ringlog_db::{Db, Durability, Error, IoChoice, Lsn, Options, Preallocate, SyncStrategy};

/// Upper bound of liveness polls: only a hang reaches it.
const LIVENESS: Duration = Duration::from_secs(10);

fn kv(i: usize) -> (Vec<u8>, Vec<u8>) {
    (
        format!("key-{i:06}").into_bytes(),
        format!("value-{i}-").repeat(1 + i % 13).into_bytes(),
    )
}

// ---------------------------------------------------------------------------------------------
// 1. InMemory
// ---------------------------------------------------------------------------------------------

#[test]
fn in_memory_creates_no_file_and_refuses_durability() {
    on_each_path(|io| {
        let dir = tempdir();
        let path = dir.path().join("x");
        // A path with InMemory is a mistake, not a silent in-memory database (issue 10).
        match Db::open(
            &path,
            Options::with_durability(Durability::InMemory)
                .io(io)
                .segment_size(SEG),
        ) {
            Err(Error::InvalidOptions(why)) => assert!(why.contains("in_memory"), "{why}"),
            other => panic!("Db::open with InMemory: {other:?}"),
        }
        let db = Db::in_memory();
        assert!(!path.exists(), "InMemory created {}", path.display());
        assert_eq!(db.durability(), Durability::InMemory);

        let la = db.put(b"a", b"1").unwrap();
        let lb = db.put(b"b", b"2").unwrap();
        let lc = db.put(b"c", b"3").unwrap();
        assert!(la < lb && lb < lc, "LSNs increase: {la} {lb} {lc}");
        assert_entry(&db, b"a", b"1", la);
        let ld = db.delete(b"b").unwrap();
        assert!(ld > lc);
        assert!(db.get(b"b").unwrap().is_none());
        let mut tx = db.begin();
        tx.put(b"d", b"4").unwrap();
        tx.put(b"e", b"5").unwrap();
        let le = tx.commit().unwrap();
        let mut tx = db.begin();
        tx.put(b"f", b"6").unwrap();
        let lf = tx.commit_with(Durability::InMemory).unwrap();
        let all = scan(&db);
        let want: Vec<Entry> = vec![
            (b"a".to_vec(), b"1".to_vec(), la),
            (b"c".to_vec(), b"3".to_vec(), lc),
            (b"d".to_vec(), b"4".to_vec(), le),
            (b"e".to_vec(), b"5".to_vec(), le),
            (b"f".to_vec(), b"6".to_vec(), lf),
        ];
        assert_eq!(all, want);
        let pre: Vec<Vec<u8>> = db
            .range(b"c".as_slice()..b"e".as_slice())
            .unwrap()
            .map(|item| item.unwrap().0.to_vec())
            .collect();
        assert_eq!(pre, vec![b"c".to_vec(), b"d".to_vec()]);
        assert_eq!(db.prefix(b"d").unwrap().map(Result::unwrap).count(), 1);

        // Durability cannot be had without a log: an error, not a silent no-op, and the refused
        // transaction is not applied.
        for d in [Durability::Strict, buffered_forever(1 << 20)] {
            let mut tx = db.begin();
            tx.put(b"z", b"refused").unwrap();
            match tx.commit_with(d) {
                Err(Error::DurabilityUnavailable(_)) => {}
                other => panic!("commit_with({d}) on InMemory: {other:?}"),
            }
        }
        assert!(db.get(b"z").unwrap().is_none());
        assert!(matches!(
            db.wait_durable(la),
            Err(Error::DurabilityUnavailable(_))
        ));
        assert!(matches!(db.sync(), Err(Error::DurabilityUnavailable(_))));
        let s = db.stats();
        assert!(s.backend.is_none(), "{:?}", s.backend);
        assert_eq!(s.syncs, 0);
        assert_eq!(s.segments_created, 0);
        // Still fully usable after the refusals.
        let lg = db.put(b"g", b"7").unwrap();
        assert!(lg > lf);
        db.close().unwrap();
        assert!(
            !path.exists(),
            "InMemory created {} on close",
            path.display()
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "InMemory wrote into the parent directory"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// 2. SIGKILL of a child process never loses an acknowledged Strict commit
// ---------------------------------------------------------------------------------------------

const CHILD_DIR: &str = "RINGLOG_TEST_CHILD_DIR";
const CHILD_IO: &str = "RINGLOG_TEST_CHILD_IO";
const CHILD_THREADS: &str = "RINGLOG_TEST_CHILD_THREADS";
const CHILD_STRATEGY: &str = "RINGLOG_TEST_CHILD_STRATEGY";
/// Marks the child's protocol lines ("try t k", "ack t k lsn") in its stdout.
const MARK: &str = "@@ringlog@@";
/// Bound on a child's work, should the parent never kill it.
const CHILD_MAX_PER_THREAD: u64 = 20_000;

fn child_key(t: usize, k: u64) -> Vec<u8> {
    format!("t{t}/k{k:08}").into_bytes()
}

fn child_value(t: usize, k: u64) -> Vec<u8> {
    // Mostly small values, every 50th one spans several 4 KiB blocks.
    let reps = if k % 50 == 49 {
        600
    } else {
        1 + (k as usize % 7)
    };
    format!("<{t}:{k}>").repeat(reps).into_bytes()
}

fn parse_child_key(key: &[u8]) -> Option<(usize, u64)> {
    let s = std::str::from_utf8(key).ok()?;
    let (t, k) = s.strip_prefix('t')?.split_once("/k")?;
    Some((t.parse().ok()?, k.parse().ok()?))
}

/// In the child process (`RINGLOG_TEST_CHILD_DIR` set): commits sequential keys with Strict
/// durability from `RINGLOG_TEST_CHILD_THREADS` threads, printing "try t k" before and
/// "ack t k lsn" after each commit, until killed.
fn child_workload(dir: &str) {
    let io = match std::env::var(CHILD_IO).as_deref() {
        Ok("uring") => IoChoice::Uring,
        Ok("portable") => IoChoice::Portable,
        other => panic!("child: bad {CHILD_IO}: {other:?}"),
    };
    let threads: usize = std::env::var(CHILD_THREADS)
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("child: RINGLOG_TEST_CHILD_THREADS");
    let sync_strategy = match std::env::var(CHILD_STRATEGY).as_deref() {
        Ok("dsync") => SyncStrategy::Dsync,
        Ok("write-then-sync") => SyncStrategy::WriteThenSync,
        other => panic!("child: bad {CHILD_STRATEGY}: {other:?}"),
    };
    let db = open(
        Path::new(dir),
        opts(io, Durability::Strict).sync_strategy(sync_strategy),
    );
    let say = |line: String| {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            std::process::exit(3); // the parent is gone
        }
    };
    std::thread::scope(|s| {
        for t in 0..threads {
            let (db, say) = (&db, &say);
            s.spawn(move || {
                for k in 0..CHILD_MAX_PER_THREAD {
                    say(format!("{MARK} try {t} {k}"));
                    let lsn = db
                        .put(&child_key(t, k), &child_value(t, k))
                        .unwrap_or_else(|e| panic!("child: commit {t}/{k}: {e}"));
                    say(format!("{MARK} ack {t} {k} {lsn}"));
                }
            });
        }
    });
    eprintln!("child: finished every commit without being killed");
}

/// Runs `test` (this test binary, that test only) as a child writing to a fresh database with
/// `threads` writers, SIGKILLs it after `kill_after` acknowledgements, then checks the recovered
/// database.
fn sigkill_round(
    test: &str,
    io: IoChoice,
    strategy: SyncStrategy,
    threads: usize,
    kill_after: usize,
) {
    let dir = tempdir();
    let db_dir = dir.path().join("db");
    let mut child = Command::new(std::env::current_exe().expect("current_exe"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, &db_dir)
        .env(CHILD_IO, io_name(io))
        .env(CHILD_THREADS, threads.to_string())
        .env(
            CHILD_STRATEGY,
            match strategy {
                SyncStrategy::Dsync => "dsync",
                SyncStrategy::WriteThenSync => "write-then-sync",
                other => panic!("no child spelling for {other:?}"),
            },
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let mut stderr = child.stderr.take().expect("child stderr");
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let stdout = BufReader::new(child.stdout.take().expect("child stdout"));
    let mut tried: HashSet<(usize, u64)> = HashSet::new();
    let mut acks: Vec<(usize, u64, Lsn)> = Vec::new();
    let mut killed = false;
    // Read until EOF: what the child printed before it died is acknowledged too.
    for line in stdout.lines() {
        let line = line.expect("read the child's stdout");
        // The harness's "test <name> ... " may precede the first line of the child's output.
        let Some(at) = line.find(MARK) else {
            continue;
        };
        let line = &line[at + MARK.len()..];
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["try", t, k] => {
                tried.insert((t.parse().unwrap(), k.parse().unwrap()));
            }
            ["ack", t, k, lsn] => {
                let (t, k) = (t.parse().unwrap(), k.parse().unwrap());
                assert!(tried.contains(&(t, k)), "ack before try: {line}");
                acks.push((t, k, lsn.parse().unwrap()));
            }
            _ => continue, // the test harness's own output
        }
        if !killed && acks.len() >= kill_after {
            child.kill().expect("SIGKILL the child");
            killed = true;
        }
    }
    let status = child.wait().expect("wait for the child");
    let child_err = stderr_reader.join().unwrap();
    assert!(
        killed,
        "the child ({} path, {threads} threads) exited ({status}) after only {} acks; its stderr:\n{child_err}",
        io_name(io),
        acks.len()
    );
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "child status {status}; stderr:\n{child_err}"
    );

    let o = opts(io, Durability::Strict);
    let db = open(&db_dir, o.clone());
    // Every acknowledged commit is there, with its value and its LSN; each writer's LSNs increase.
    let mut last = vec![0; threads];
    for &(t, k, lsn) in &acks {
        assert!(
            lsn > last[t],
            "writer {t}: LSN {lsn} after {} is not increasing",
            last[t]
        );
        last[t] = lsn;
        assert_entry(&db, &child_key(t, k), &child_value(t, k), lsn);
    }
    // Nothing that was not attempted, no wrong value, no hole in the commit order, and each
    // writer's surviving commits are a prefix of its sequence.
    let entries = scan(&db);
    let mut lsns = Vec::with_capacity(entries.len());
    let mut per_writer: BTreeMap<usize, Vec<(u64, Lsn)>> = BTreeMap::new();
    for (key, value, lsn) in &entries {
        let (t, k) = parse_child_key(key)
            .unwrap_or_else(|| panic!("unexpected key {:?}", String::from_utf8_lossy(key)));
        assert!(
            tried.contains(&(t, k)),
            "key {t}/{k} was never attempted but is present"
        );
        assert_eq!(value, &child_value(t, k), "value of {t}/{k}");
        lsns.push(*lsn);
        per_writer.entry(t).or_default().push((k, *lsn));
    }
    lsns.sort_unstable();
    let n = lsns.len() as Lsn;
    assert_eq!(
        lsns,
        (1..=n).collect::<Vec<_>>(),
        "recovered LSNs must be exactly 1..={n}"
    );
    for (t, mut ks) in per_writer {
        ks.sort_unstable();
        for (i, w) in ks.iter().enumerate() {
            assert_eq!(w.0, i as u64, "writer {t}: commit {i} is missing");
        }
        assert!(
            ks.windows(2).all(|w| w[0].1 < w[1].1),
            "writer {t}: LSNs follow its commit order"
        );
    }
    let rs = db.recovery_stats().clone();
    assert_eq!(rs.last_lsn, n);
    assert_eq!(rs.transactions_applied, n);
    // The database is writable and never reuses an LSN.
    let max_acked = acks.iter().map(|a| a.2).max().unwrap_or(0);
    let lsn = db.put(b"after", b"the crash").unwrap();
    assert!(
        lsn > n && lsn > max_acked,
        "LSN {lsn} after recovery of {n}"
    );
    let before = scan(&db);
    db.close().unwrap();
    let db = open(&db_dir, o);
    assert_eq!(scan(&db), before, "a second recovery gives the same state");
    eprintln!(
        "[{} path, {strategy:?}, {threads} writers] killed after {kill_after} acks: {} acked, {} recovered, {} bytes of torn tail cut",
        io_name(io),
        acks.len(),
        n,
        rs.bytes_truncated
    );
}

/// Runs the child workload instead of the test when this process is a child.
fn is_child() -> bool {
    match std::env::var(CHILD_DIR) {
        Ok(dir) => {
            child_workload(&dir);
            true
        }
        Err(_) => false,
    }
}

#[test]
fn sigkill_one_writer_loses_no_acknowledged_strict_commit() {
    if is_child() {
        return;
    }
    on_each_path(|io| {
        for (strategy, kill_after) in [
            (SyncStrategy::WriteThenSync, 1),
            (SyncStrategy::WriteThenSync, 77),
            (SyncStrategy::WriteThenSync, 200),
            (SyncStrategy::Dsync, 5),
            (SyncStrategy::Dsync, 200),
        ] {
            sigkill_round(
                "sigkill_one_writer_loses_no_acknowledged_strict_commit",
                io,
                strategy,
                1,
                kill_after,
            );
        }
    });
}

#[test]
fn sigkill_four_writers_lose_no_acknowledged_strict_commit() {
    if is_child() {
        return;
    }
    on_each_path(|io| {
        for (strategy, kill_after) in [
            (SyncStrategy::WriteThenSync, 33),
            (SyncStrategy::WriteThenSync, 200),
            (SyncStrategy::Dsync, 200),
        ] {
            sigkill_round(
                "sigkill_four_writers_lose_no_acknowledged_strict_commit",
                io,
                strategy,
                4,
                kill_after,
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 3. Buffered syncs by itself
// ---------------------------------------------------------------------------------------------

#[test]
fn buffered_syncs_within_its_interval_without_any_call() {
    on_each_path(|io| {
        let dir = tempdir();
        let db = open(
            dir.path(),
            opts(
                io,
                Durability::Buffered {
                    interval: Duration::from_millis(5),
                    max_pending: usize::MAX,
                },
            ),
        );
        assert_eq!(db.stats().syncs, 0);
        assert!(db.stats().last_sync.is_none());
        let lsn = db.put(b"k", b"v").unwrap();
        eventually("the Buffered timer makes the put durable", LIVENESS, || {
            db.durable_lsn() >= lsn
        });
        let s = db.stats();
        assert!(s.syncs >= 1, "{s:?}");
        assert!(s.last_sync.is_some(), "{s:?}");
        // The timer re-arms for the next commit.
        let lsn2 = db.put(b"k2", b"v2").unwrap();
        eventually("the timer re-arms", LIVENESS, || db.durable_lsn() >= lsn2);
        assert!(db.stats().syncs >= 2);
        db.close().unwrap();
    });
}

/// A `Buffered` override whose `max_pending` is above the backpressure limit (64 MiB on a Strict
/// database) must not leave committers waiting for space until its deadline: the log thread
/// writes once they wait. Before, nothing forced a round below the override's trigger and the
/// commit that reached 64 MiB pending waited out the whole interval (found in review). The
/// interval here is a day: a stall is a hang, caught by the guard.
#[test]
fn a_buffered_override_above_the_backpressure_limit_does_not_stall_commits() {
    on_each_path(|io| {
        let dir = tempdir();
        let db = Arc::new(open(
            dir.path(),
            opts(io, Durability::Strict).checkpoint_bytes(u64::MAX),
        ));
        let lazy = Durability::Buffered {
            interval: Duration::from_secs(24 * 3600),
            max_pending: 1 << 30,
        };
        let (done_tx, done) = std::sync::mpsc::channel();
        let writer = {
            let db = db.clone();
            std::thread::spawn(move || {
                let value = vec![7u8; 200 << 10];
                let mut last = 0;
                for i in 0..420u32 {
                    let mut t = db.begin();
                    t.put(&i.to_be_bytes(), &value).unwrap();
                    last = t.commit_with(lazy).unwrap();
                }
                let _ = done_tx.send(());
                last
            })
        };
        assert!(
            done.recv_timeout(Duration::from_secs(120)).is_ok(),
            "{}: commits waited for space until the override's deadline",
            io_name(io)
        );
        let last = writer.join().unwrap();
        assert!(
            db.stats().syncs >= 1,
            "{}: the log thread wrote",
            io_name(io)
        );
        db.sync().unwrap();
        assert!(db.durable_lsn() >= last);
        db.close().unwrap();
    });
}

#[test]
fn buffered_max_pending_triggers_a_sync() {
    on_each_path(|io| {
        let dir = tempdir();
        let max_pending = 4096;
        let o = opts(io, buffered_forever(max_pending));
        let db = open(dir.path(), o.clone());
        let value = [7u8; 100];
        let mut lsns = Vec::new();
        for i in 0..100 {
            lsns.push(db.put(format!("key-{i:03}").as_bytes(), &value).unwrap());
        }
        // Each put is one record; the log syncs whenever `max_pending` bytes wait, so at most
        // the commits of less than `max_pending` bytes at the end stay unsynced (the interval is
        // an hour).
        let per_commit = ringlog_format::encoded_len(7, 100);
        let may_wait = max_pending.div_ceil(per_commit) - 1;
        let must = lsns[lsns.len() - 1 - may_wait];
        eventually("max_pending triggers syncs", LIVENESS, || {
            db.durable_lsn() >= must
        });
        let s = db.stats();
        assert!(s.syncs >= 1 && s.last_sync.is_some(), "{s:?}");
        db.close().unwrap();
        let db = open(dir.path(), o);
        for (i, lsn) in lsns.iter().enumerate() {
            assert_entry(&db, format!("key-{i:03}").as_bytes(), &value, *lsn);
        }
    });
}

/// Runs `f` on another thread and fails the test if it has not returned within [`LIVENESS`].
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(LIVENESS)
        .unwrap_or_else(|_| panic!("{what}: no answer after {LIVENESS:?} (hang)"))
}

/// A sync request (`sync()`, or a Strict override) on a Buffered database is served at once, not
/// at the end of the Buffered interval — also right after a sync round that carried several
/// commits (which makes the log thread gather the next group commit).
///
/// The hang this guards against needs the log thread to be asleep (woken by the first Buffered
/// commit, then back to sleep until the Buffered deadline) when the request arrives; the test
/// cannot observe that, so it repeats the scenario: a correct engine passes every round, and a
/// broken one is caught with near certainty.
#[test]
fn sync_requests_after_a_group_round_are_served_promptly() {
    const GROUP: usize = 12;
    on_each_path(|io| {
        for round in 0..16 {
            let strict_override = round % 2 == 1;
            let dir = tempdir();
            let db = Arc::new(open(dir.path(), opts(io, buffered_forever(usize::MAX))));
            // One sync round carrying GROUP commits.
            for i in 0..GROUP {
                db.put(format!("group-{i}").as_bytes(), b"1").unwrap();
            }
            let d = db.clone();
            within("sync() of Buffered commits", move || d.sync()).unwrap();
            assert_eq!(db.durable_lsn(), GROUP as Lsn);
            // Fewer Buffered commits than that round pending, then a sync request.
            let first = db.put(b"next-0", b"1").unwrap();
            for i in 1..GROUP - 4 {
                db.put(format!("next-{i}").as_bytes(), b"1").unwrap();
            }
            let d = db.clone();
            let last = if strict_override {
                within("a Strict override after a group round", move || {
                    let mut tx = d.begin();
                    tx.put(b"strict", b"1").unwrap();
                    tx.commit_with(Durability::Strict)
                })
                .unwrap()
            } else {
                let last = db.last_lsn();
                within("sync() after a group round", move || d.sync()).unwrap();
                last
            };
            assert!(db.durable_lsn() >= last && last > first);
            db.close().unwrap();
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 4. close (and drop) flush Buffered
// ---------------------------------------------------------------------------------------------

/// Writes enough to span several segments, plus a transaction and a delete, with Buffered
/// durability and an hour-long interval: nothing is synced until close.
fn fill_unsynced(db: &Db) {
    // The first commit of a run waits for its LSN lease to be durable (one sync); none after it.
    db.put(b"lease-warm-up", b"x").unwrap();
    let syncs = db.stats().syncs;
    assert_eq!(syncs, 1, "the first commit's lease was synced");
    for i in 0..1500 {
        let (k, v) = kv(i);
        db.put(&k, &v).unwrap();
    }
    let mut tx = db.begin();
    tx.put(b"txn-a", b"1").unwrap();
    tx.put(b"txn-b", b"2").unwrap();
    tx.delete(&kv(3).0).unwrap();
    tx.commit().unwrap();
    db.delete(&kv(4).0).unwrap();
    let s = db.stats();
    assert_eq!(s.syncs, syncs, "nothing asked for a sync yet: {s:?}");
    assert!(db.durable_lsn() < db.last_lsn());
}

#[test]
fn close_flushes_buffered() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, buffered_forever(usize::MAX));
        let db = open(dir.path(), o.clone());
        fill_unsynced(&db);
        let before = scan(&db);
        let last = db.last_lsn();
        db.close().unwrap();
        assert_eq!(db.durable_lsn(), last, "close syncs everything");
        assert!(db.stats().syncs >= 1);
        drop(db);
        let db = open(dir.path(), o);
        assert_eq!(scan(&db), before);
        assert_eq!(db.recovery_stats().last_lsn, last);
    });
}

#[test]
fn dropped_without_close_still_syncs() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, buffered_forever(usize::MAX));
        let db = open(dir.path(), o.clone());
        fill_unsynced(&db);
        let before = scan(&db);
        let last = db.last_lsn();
        drop(db);
        let db = open(dir.path(), o);
        assert_eq!(scan(&db), before);
        assert_eq!(db.recovery_stats().last_lsn, last);
    });
}

/// Every file of the directory but the lock, with its bytes.
fn dir_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "LOCK")
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_session_that_only_reads_writes_nothing() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, Durability::Strict);
        let db = open(dir.path(), o.clone());
        for i in 0..20 {
            let (k, v) = kv(i);
            db.put(&k, &v).unwrap();
        }
        let expected = scan(&db);
        db.close().unwrap();
        let before = dir_files(dir.path());
        for _ in 0..2 {
            let db = open(dir.path(), o.clone());
            assert_eq!(scan(&db), expected);
            assert_eq!(db.get(&kv(3).0).unwrap().as_deref(), Some(&kv(3).1[..]));
            db.sync().unwrap();
            assert_eq!(db.stats().syncs, 0, "nothing to sync: {:?}", db.stats());
            db.close().unwrap();
            assert_eq!(
                dir_files(dir.path()),
                before,
                "an open that only read changed the log"
            );
        }
        // The first commit after such a session starts the log as usual.
        let db = open(dir.path(), o.clone());
        db.put(b"later", b"commit").unwrap();
        assert_eq!(db.stats().syncs, 1);
        drop(db);
        let db = open(dir.path(), o);
        assert_eq!(scan(&db).len(), expected.len() + 1);
    });
}

/// A close called from a second thread while the first one runs returns only once the first
/// has finished: everything durable, the directory lock released. It returned `Ok` at once (it
/// saw the database closed), and a caller that then exited lost the Buffered commits the first
/// close was still writing, or one that reopened the directory was refused (`Locked`) — found by
/// a review (10 of 20 runs without the close-time checkpoint).
#[test]
fn a_second_close_waits_for_the_first() {
    on_each_path(|io| {
        for round in 0..3 {
            let dir = tempdir();
            let o = opts(io, buffered_forever(64 << 20)).checkpoint_on_close(false);
            let db = Arc::new(open(dir.path(), o.clone()));
            let value = vec![7u8; 4000];
            for i in 0..1500u32 {
                db.put(format!("k{i:06}").as_bytes(), &value).unwrap();
            }
            let first = {
                let db = db.clone();
                std::thread::spawn(move || db.close())
            };
            // The second close starts once the first has marked the database closed.
            while !matches!(db.get(b"k000000"), Err(Error::Closed)) {
                std::hint::spin_loop();
            }
            db.close().unwrap();
            assert_eq!(
                db.durable_lsn(),
                db.last_assigned_lsn(),
                "{io:?} round {round}: the second close returned before everything was durable"
            );
            let again = Db::open(dir.path(), o.clone())
                .unwrap_or_else(|e| panic!("{io:?} round {round}: reopen after close: {e}"));
            first.join().unwrap().unwrap();
            assert_eq!(scan(&again).len(), 1500, "{io:?} round {round}");
            again.close().unwrap();
        }
    });
}

/// What the rustdoc of `Durability::Buffered` says a Buffered commit may wait for: the first
/// commit of each run waits for the sync that makes its LSN lease durable (LSNs are never handed
/// out twice after a crash); the commits after it, under the lease, wait for nothing.
#[test]
fn the_first_buffered_commit_of_a_run_waits_for_its_lease_sync() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, buffered_forever(usize::MAX));
        for run in 0..2 {
            let db = open(dir.path(), o.clone());
            let first = db.put(b"a", b"1").unwrap();
            assert!(
                db.durable_lsn() >= first,
                "{io:?} run {run}: the first commit returned before its lease was durable"
            );
            let second = db.put(b"b", b"2").unwrap();
            assert!(
                db.durable_lsn() < second,
                "{io:?} run {run}: a commit under the lease waited for a sync"
            );
            db.close().unwrap();
        }
    });
}

/// `wait_durable` of an LSN a commit took answers `Ok` once it is durable, also after a close
/// (which made it so): it answered `Closed`, which the documentation keeps for an LSN no commit
/// took — a caller could not tell a durable commit from a lost one (found by a review). An LSN
/// no commit took is still `Closed`.
#[test]
fn wait_durable_after_close_answers_for_committed_lsns() {
    on_each_path(|io| {
        let dir = tempdir();
        let db = open(dir.path(), opts(io, buffered_forever(64 << 20)));
        db.put(b"a", b"1").unwrap();
        let lsn = db.put(b"b", b"2").unwrap();
        assert!(
            db.durable_lsn() < lsn,
            "{io:?}: the window made it durable already"
        );
        db.close().unwrap();
        assert!(db.durable_lsn() >= lsn, "{io:?}: the close made it durable");
        db.wait_durable(lsn).unwrap();
        assert!(
            matches!(db.wait_durable(lsn + 1), Err(Error::Closed)),
            "{io:?}: an LSN no commit took"
        );
        // A second close of a healthy database is a no-op.
        db.close().unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// 5. A failed write or fdatasync poisons the database
// ---------------------------------------------------------------------------------------------

fn fault_opts(io: IoChoice, durability: Durability, faults: &Arc<Faults>) -> Options {
    opts(io, durability).vfs(FaultVfs::new(real_vfs(io), faults.clone()))
}

fn assert_poisoned<T: std::fmt::Debug>(what: &str, r: ringlog_db::Result<T>) {
    match r {
        Err(Error::Poisoned(e)) => assert_eq!(
            e.raw_os_error(),
            Some(libc::EIO),
            "{what}: the poison carries the original error"
        ),
        other => panic!("{what}: expected Err(Poisoned), got {other:?}"),
    }
}

/// Sequential Strict commits; the 5th write + sync fails.
fn poison_sequential(io: IoChoice, mode: FailMode) {
    let dir = tempdir();
    let faults = Faults::new(5, mode);
    let db = open(dir.path(), fault_opts(io, Durability::Strict, &faults));
    let mut acked = Vec::new();
    let err = loop {
        let (k, v) = kv(acked.len());
        match db.put(&k, &v) {
            Ok(lsn) => acked.push((k, v, lsn)),
            Err(e) => break e,
        }
        assert!(acked.len() < 100, "the fault never fired");
    };
    assert!(faults.fired.load(Ordering::SeqCst));
    assert!(matches!(&err, Error::Poisoned(_)), "{err:?}");
    assert_poisoned("the failing commit", Err::<(), _>(err));
    assert_eq!(
        acked.len(),
        4,
        "one write + sync per sequential Strict commit"
    );
    let failed = kv(4);
    let calls = faults.calls.load(Ordering::SeqCst);

    // Every later write fails, whatever its form.
    assert_poisoned("put", db.put(b"later", b"x"));
    assert_poisoned("delete", db.delete(&acked[0].0));
    let mut tx = db.begin();
    tx.put(b"t1", b"1").unwrap();
    tx.put(b"t2", b"2").unwrap();
    assert_poisoned("txn commit", tx.commit());
    let mut tx = db.begin();
    tx.put(b"t3", b"3").unwrap();
    assert_poisoned(
        "Buffered override",
        tx.commit_with(buffered_forever(1 << 20)),
    );
    assert_poisoned("sync", db.sync());
    // Reads still serve what was acknowledged; refused writes are not applied.
    for (k, v, lsn) in &acked {
        assert_entry(&db, k, v, *lsn);
    }
    for k in [&b"later"[..], b"t1", b"t2", b"t3"] {
        assert!(db.get(k).unwrap().is_none());
    }
    let s = db.stats();
    assert!(s.poisoned, "{s:?}");
    assert!(s.sync_failures >= 1, "{s:?}");
    assert_eq!(
        s.durable_lsn, acked[3].2,
        "the durable point stops before the failure"
    );
    assert_poisoned("close", db.close());
    // Closing again answers the same (a no-op on a healthy database).
    assert_poisoned("a second close", db.close());
    // No retry: the engine never wrote again after the failure.
    assert_eq!(
        faults.calls.load(Ordering::SeqCst),
        calls,
        "a write was retried"
    );
    drop(db);

    let o = opts(io, Durability::Strict);
    let db = open(dir.path(), o);
    for (k, v, lsn) in &acked {
        assert_entry(&db, k, v, *lsn);
    }
    match (mode, db.get(&failed.0).unwrap()) {
        (FailMode::BeforeWrite | FailMode::Panic, got) => {
            assert!(got.is_none(), "never written: {got:?}")
        }
        (FailMode::AfterWrite, Some(got)) => {
            assert_eq!(&*got, &failed.1[..]);
            assert_eq!(got.lsn(), acked[3].2 + 1);
        }
        (FailMode::AfterWrite, None) => {}
    }
    for k in [&b"later"[..], b"t1", b"t2", b"t3"] {
        assert!(db.get(k).unwrap().is_none());
    }
    let lsn = db.put(b"after", b"reopen").unwrap();
    assert!(lsn > acked[3].2);
    db.close().unwrap();
}

/// Eight threads of Strict commits; the 20th write + sync fails. Every thread ends with Poisoned,
/// and every acknowledged commit survives.
fn poison_concurrent(io: IoChoice, mode: FailMode, rounds_in_flight: usize) {
    const THREADS: usize = 8;
    let dir = tempdir();
    let faults = Faults::new(20, mode);
    let db = open(
        dir.path(),
        fault_opts(io, Durability::Strict, &faults).rounds_in_flight(rounds_in_flight),
    );
    let acked: Vec<Vec<Entry>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                let db = &db;
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..500 {
                        let k = format!("t{t}-{i:04}").into_bytes();
                        let v = format!("v{t}-{i}").repeat(1 + i % 5).into_bytes();
                        match db.put(&k, &v) {
                            Ok(lsn) => mine.push((k, v, lsn)),
                            Err(e) => {
                                assert_poisoned("a concurrent commit", Err::<(), _>(e));
                                assert_poisoned("the next commit", db.put(b"next", b"x"));
                                return mine;
                            }
                        }
                    }
                    panic!("thread {t}: 500 commits and no failure: the fault never reached it");
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(db.stats().poisoned);
    assert_poisoned("close", db.close());
    drop(db);

    let db = open(dir.path(), opts(io, Durability::Strict));
    let mut want: HashSet<Vec<u8>> = HashSet::new();
    for (k, v, lsn) in acked.iter().flatten() {
        assert_entry(&db, k, v, *lsn);
        want.insert(k.clone());
    }
    let present: HashSet<Vec<u8>> = scan(&db).into_iter().map(|e| e.0).collect();
    if mode == FailMode::BeforeWrite {
        // Nothing after the failed write reached the disk (or, with rounds in flight, what did
        // is cut at the hole it left by recovery), and every round before it was acknowledged.
        assert_eq!(present, want, "exactly the acknowledged commits survive");
    } else {
        assert!(present.is_superset(&want));
    }
    let n = acked.iter().map(Vec::len).sum::<usize>();
    eprintln!(
        "[{} path, {mode:?}] {n} commits acknowledged before the failure",
        io_name(io)
    );
}

/// A Buffered database: the background sync fails, and `sync()` reports it.
fn poison_buffered(io: IoChoice, mode: FailMode) {
    let dir = tempdir();
    // Call 1 succeeds (the first commit's LSN lease), call 2 too (a Strict override), call 3
    // fails.
    let faults = Faults::new(3, mode);
    let db = open(
        dir.path(),
        fault_opts(io, buffered_forever(usize::MAX), &faults),
    );
    let la = db.put(b"a", b"1").unwrap();
    let mut tx = db.begin();
    tx.put(b"b", b"2").unwrap();
    let lb = tx.commit_with(Durability::Strict).unwrap();
    assert!(
        db.durable_lsn() >= lb,
        "a Strict override covers earlier commits"
    );
    let lc = db.put(b"c", b"3").unwrap(); // acknowledged as Buffered, not durable
    assert_poisoned("sync", db.sync());
    assert_poisoned("put after the failed sync", db.put(b"d", b"4"));
    assert_poisoned("close", db.close());
    drop(db);
    let db = open(dir.path(), opts(io, Durability::Strict));
    assert_entry(&db, b"a", b"1", la);
    assert_entry(&db, b"b", b"2", lb);
    match (mode, db.get(b"c").unwrap()) {
        (FailMode::BeforeWrite | FailMode::Panic, got) => assert!(got.is_none(), "{got:?}"),
        (FailMode::AfterWrite, Some(v)) => assert_eq!((&*v, v.lsn()), (&b"3"[..], lc)),
        (FailMode::AfterWrite, None) => {}
    }
    assert!(db.get(b"d").unwrap().is_none());
}

#[test]
fn write_failure_poisons_sequential_commits() {
    on_each_path(|io| {
        for mode in [FailMode::BeforeWrite, FailMode::AfterWrite] {
            poison_sequential(io, mode);
        }
    });
}

#[test]
fn write_failure_poisons_concurrent_commits() {
    on_each_path(|io| {
        for mode in [FailMode::BeforeWrite, FailMode::AfterWrite] {
            poison_concurrent(io, mode, 1);
        }
    });
}

/// The same with up to 8 rounds in flight (the io_uring path pipelines them): a failed round
/// poisons while later rounds may be in flight or already written; nothing after the failed
/// round is ever acknowledged, and every acknowledged commit survives the reopen.
#[test]
fn write_failure_poisons_concurrent_commits_with_rounds_in_flight() {
    on_each_path(|io| {
        for mode in [FailMode::BeforeWrite, FailMode::AfterWrite] {
            poison_concurrent(io, mode, 8);
        }
    });
}

#[test]
fn write_failure_poisons_buffered_sync() {
    on_each_path(|io| {
        for mode in [FailMode::BeforeWrite, FailMode::AfterWrite] {
            poison_buffered(io, mode);
        }
    });
}

/// A `Vfs` whose log driver cannot be created (say, a custom backend out of resources).
struct NoDriverVfs {
    inner: Arc<dyn ringlog_db::Vfs>,
}

impl ringlog_db::Vfs for NoDriverVfs {
    fn backend(&self) -> ringlog_db::io::BackendInfo {
        self.inner.backend()
    }
    ringlog_db::io::forward_fs_ops!(inner);
    fn log_driver(&self) -> std::io::Result<Box<dyn ringlog_db::io::LogDriver>> {
        Err(std::io::Error::from_raw_os_error(libc::ENOMEM))
    }
}

/// The log thread starts with the first commit; if it cannot, that commit fails, the database is
/// poisoned, and what was already durable stays readable and intact.
#[test]
fn a_log_thread_that_cannot_start_fails_the_first_commit_and_poisons() {
    on_each_path(|io| {
        let dir = tempdir();
        let db = open(dir.path(), opts(io, Durability::Strict));
        db.put(b"before", b"durable").unwrap();
        db.close().unwrap();
        let o = opts(io, Durability::Strict).vfs(Arc::new(NoDriverVfs {
            inner: real_vfs(io),
        }));
        let db = Db::open(dir.path(), o).expect("opening needs no log thread");
        assert_eq!(db.get(b"before").unwrap().as_deref(), Some(&b"durable"[..]));
        let first = db.put(b"after", b"x");
        assert!(first.is_err(), "{first:?}");
        match db.put(b"after", b"y") {
            Err(Error::Poisoned(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOMEM)),
            other => panic!("expected Err(Poisoned), got {other:?}"),
        }
        assert!(db.stats().poisoned);
        assert!(db.close().is_err(), "close reports the failure");
        drop(db);
        let db = open(dir.path(), opts(io, Durability::Strict));
        assert_eq!(scan(&db).len(), 1, "nothing but the durable commit");
    });
}

/// A lone `Strict` committer writes its own round, on its own thread (no hand-off to the log
/// thread and back); a round whose segment must grow or rotate, and `Buffered` commits, are
/// written by the log thread. Either way every commit is durable when acknowledged and recovers.
#[test]
fn a_lone_strict_committer_writes_its_own_round() {
    on_each_path(|io| {
        // A segment whose first extent holds every round here: all of them are led.
        let dir = tempdir();
        let big = opts(io, Durability::Strict).segment_size(64 << 20);
        let db = open(dir.path(), big.clone());
        for i in 0..20u32 {
            let lsn = db.put(&i.to_be_bytes(), b"strict").unwrap();
            assert!(db.durable_lsn() >= lsn, "{io}: acknowledged before durable");
        }
        let s = db.stats();
        assert_eq!((s.rounds_led, s.syncs), (20, 20), "{io}: every round led");
        let buffered = Durability::Buffered {
            interval: Duration::from_secs(3600),
            max_pending: usize::MAX,
        };
        let mut last = 0;
        for i in 20..30u32 {
            let mut tx = db.begin();
            tx.put(&i.to_be_bytes(), b"buffered").unwrap();
            last = tx.commit_with(buffered).unwrap();
        }
        db.sync().unwrap();
        assert!(db.durable_lsn() >= last);
        let after = db.stats();
        assert_eq!(
            after.rounds_led, 20,
            "{io}: Buffered commits never lead a round"
        );
        assert!(after.syncs > 20, "{io}: the log thread wrote them");
        drop(db);
        assert_eq!(scan(&open(dir.path(), big)).len(), 30, "{io}");

        // Small segments: rounds that grow or rotate the segment go to the log thread, and the
        // commits after them lead again.
        let dir = tempdir();
        let db = open(dir.path(), opts(io, Durability::Strict));
        for i in 0..100u32 {
            let lsn = db.put(&i.to_be_bytes(), &[7; 512]).unwrap();
            assert!(db.durable_lsn() >= lsn, "{io}: acknowledged before durable");
        }
        let s = db.stats();
        assert!(s.segments_created > 0, "{io}: the log rotated");
        assert!(
            s.rounds_led > 0 && s.rounds_led < s.syncs,
            "{io}: {} of {} rounds led",
            s.rounds_led,
            s.syncs
        );
        drop(db);
        assert_eq!(
            scan(&open(dir.path(), opts(io, Durability::Strict))).len(),
            100,
            "{io}"
        );
    });
}

/// A `Vfs` that replaces only the log driver (recording its durable writes), as a user's wrapper
/// might, without saying that a committer's own write stands for it (`Vfs::writes_here`).
struct DriverOnlyVfs {
    inner: Arc<dyn ringlog_db::Vfs>,
    seen: Arc<std::sync::Mutex<Vec<SyncStrategy>>>,
}

impl ringlog_db::Vfs for DriverOnlyVfs {
    fn backend(&self) -> ringlog_db::io::BackendInfo {
        self.inner.backend()
    }
    ringlog_db::io::forward_fs_ops!(inner);
    fn log_driver(&self) -> std::io::Result<Box<dyn ringlog_db::io::LogDriver>> {
        Ok(Box::new(RecordingDriver {
            inner: self.inner.log_driver()?,
            seen: self.seen.clone(),
        }))
    }
}

/// A wrapper that replaces only the log driver sees every durable write of the log: committers
/// never write their own rounds through a disk that did not say they may.
#[test]
fn a_custom_log_driver_sees_every_round() {
    on_each_path(|io| {
        let dir = tempdir();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let vfs = Arc::new(DriverOnlyVfs {
            inner: real_vfs(io),
            seen: seen.clone(),
        });
        let o = opts(io, Durability::Strict).vfs(vfs);
        let db = open(dir.path(), o);
        for i in 0..10u32 {
            db.put(&i.to_be_bytes(), b"v").unwrap();
        }
        let s = db.stats();
        assert_eq!(s.rounds_led, 0, "{io}");
        assert_eq!(seen.lock().unwrap().len() as u64, s.syncs, "{io}");
        assert!(s.syncs >= 10, "{io}: {s:?}");
    });
}

/// A panic in a durable write (here: inside a custom Vfs) must poison the database like an I/O
/// error: committers waiting for a sync get an error instead of blocking forever. Both writers
/// of rounds: a lone `Strict` committer writing its own round, and the log thread (a `Buffered`
/// commit made durable by `sync`).
#[test]
fn a_panic_in_a_durable_write_poisons_instead_of_hanging() {
    on_each_path(|io| {
        for on_log_thread in [false, true] {
            let dir = tempdir();
            let faults = Faults::new(3, FailMode::Panic);
            let db = Arc::new(open(
                dir.path(),
                fault_opts(io, Durability::Strict, &faults),
            ));
            let la = db.put(b"a", b"1").unwrap();
            let lb = db.put(b"b", b"2").unwrap();
            let (tx, rx) = mpsc::channel();
            let committer = {
                let db = db.clone();
                std::thread::spawn(move || {
                    let r = if on_log_thread {
                        let buffered = Durability::Buffered {
                            interval: Duration::from_secs(3600),
                            max_pending: usize::MAX,
                        };
                        let mut tx = db.begin();
                        tx.put(b"c", b"3").unwrap();
                        tx.commit_with(buffered).and_then(|_| db.sync())
                    } else {
                        db.put(b"c", b"3").map(|_| ())
                    };
                    let _ = tx.send(format!("{r:?}"));
                })
            };
            let r = rx.recv_timeout(LIVENESS).unwrap_or_else(|_| {
                panic!("a commit still waits {LIVENESS:?} after a durable write panicked (hang)")
            });
            committer.join().unwrap();
            assert!(faults.fired.load(Ordering::SeqCst));
            assert!(
                r.starts_with("Err(Poisoned"),
                "{io} (log thread: {on_log_thread}): the commit got {r}"
            );
            assert!(matches!(db.put(b"d", b"4"), Err(Error::Poisoned(_))));
            assert!(matches!(db.sync(), Err(Error::Poisoned(_))));
            assert!(db.stats().poisoned);
            assert!(db.close().is_err(), "close reports the failure");
            drop(db);
            let db = open(dir.path(), opts(io, Durability::Strict));
            assert_entry(&db, b"a", b"1", la);
            assert_entry(&db, b"b", b"2", lb);
            assert!(db.get(b"c").unwrap().is_none(), "never written");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 6. One open per directory
// ---------------------------------------------------------------------------------------------

#[test]
fn second_open_of_a_directory_is_locked() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, Durability::Strict);
        let db = open(dir.path(), o.clone());
        let lsn = db.put(b"k", b"v").unwrap();
        match Db::open(dir.path(), o.clone()) {
            Err(Error::Locked(p)) => assert_eq!(p, dir.path()),
            other => panic!("second open: expected Locked, got {other:?}"),
        }
        // The first handle is unaffected.
        assert_entry(&db, b"k", b"v", lsn);
        let lsn2 = db.put(b"k2", b"v2").unwrap();
        db.close().unwrap();
        let db2 = open(dir.path(), o.clone());
        assert_entry(&db2, b"k2", b"v2", lsn2);
        drop(db2);
        let db3 = open(dir.path(), o.clone());
        // Dropping the first (already closed) handle does not release the third one's lock.
        drop(db);
        match Db::open(dir.path(), o.clone()) {
            Err(Error::Locked(_)) => {}
            other => panic!("open while db3 is open: expected Locked, got {other:?}"),
        }
        assert_entry(&db3, b"k", b"v", lsn);
    });
}

// ---------------------------------------------------------------------------------------------
// 7. A full disk loses nothing acknowledged (needs root: tmpfs)
// ---------------------------------------------------------------------------------------------

/// Strict commits of `value_len`-byte values until one fails; returns the acknowledged ones and
/// the error.
fn commit_until_error(db: &Db, value_len: usize) -> (Vec<Entry>, Error) {
    let mut acked = Vec::new();
    loop {
        let i = acked.len();
        let k = format!("key-{i:06}").into_bytes();
        let v = format!("{i:08}").repeat(value_len / 8).into_bytes();
        match db.put(&k, &v) {
            Ok(lsn) => acked.push((k, v, lsn)),
            Err(e) => return (acked, e),
        }
        assert!(i < 100_000, "the disk never filled up");
    }
}

fn check_after_full(db: &Db, acked: &[Entry]) {
    for (k, v, lsn) in acked {
        assert_entry(db, k, v, *lsn);
    }
    // Beyond the acknowledged commits, at most the one that failed may be present, intact.
    let n = acked.len();
    for (k, v, lsn) in scan(db) {
        if let Some(i) = std::str::from_utf8(&k)
            .ok()
            .and_then(|s| s.strip_prefix("key-"))
            .and_then(|s| s.parse::<usize>().ok())
        {
            if i >= n {
                assert_eq!(
                    i, n,
                    "only the failed commit may be present beyond the acked ones"
                );
                assert_eq!(v, format!("{i:08}").repeat(v.len() / 8).into_bytes());
                assert_eq!(lsn, acked.last().map_or(0, |a| a.2) + 1);
            }
        }
    }
}

fn disk_full(io: IoChoice, segment_size: u64, preallocate: Preallocate, value_len: usize) {
    let Some(fs) = Tmpfs::mount("2m") else {
        return;
    };
    let dir = fs.path().join("db");
    let o = opts(io, Durability::Strict)
        .segment_size(segment_size)
        .preallocate(preallocate);
    let db = open(&dir, o.clone());
    let (acked, err) = commit_until_error(&db, value_len);
    eprintln!(
        "[{} path, {preallocate:?}] disk full after {} commits: {err}",
        io_name(io),
        acked.len()
    );
    assert!(!acked.is_empty());
    assert!(
        matches!(err, Error::Poisoned(_) | Error::Io { .. }),
        "expected an I/O error, got {err:?}"
    );
    assert!(is_enospc(&err), "the error names ENOSPC: {err:?} / {err}");
    assert!(db.stats().poisoned);
    // What was acknowledged is still readable, and later writes are refused.
    for (k, v, lsn) in &acked {
        assert_entry(&db, k, v, *lsn);
    }
    assert!(db.put(b"more", b"x").is_err());
    if let Err(e) = db.close() {
        eprintln!("close after ENOSPC: {e}");
    }
    drop(db);

    // Still full: opening either works, with everything acknowledged, or fails cleanly.
    match Db::open(&dir, o.clone()) {
        Ok(db) => {
            check_after_full(&db, &acked);
            drop(db);
        }
        Err(e) => {
            eprintln!("open while the disk is full: {e}");
            assert!(is_enospc(&e), "open on a full disk: {e:?}");
        }
    }

    // Free space: everything acknowledged is there, and the database works again.
    fs.resize("8m");
    let db = open(&dir, o.clone());
    check_after_full(&db, &acked);
    let l1 = db.put(b"after-1", b"x").unwrap();
    let l2 = db.put(b"after-2", &vec![1u8; value_len]).unwrap();
    assert!(l1 > acked.last().unwrap().2 && l2 > l1);
    let before = scan(&db);
    db.close().unwrap();
    drop(db);
    let db = open(&dir, o);
    assert_eq!(scan(&db), before);
    drop(db);
}

#[test]
fn disk_full_at_segment_rotation_loses_nothing_acknowledged() {
    // Zero-filled 256 KiB segments: ~7 fit in 2 MiB; creating the next one fails.
    on_each_path(|io| disk_full(io, SEG, Preallocate::ZeroFill, 1000));
}

#[test]
fn disk_full_at_a_write_loses_nothing_acknowledged() {
    // One 4 MiB segment that grows with each write (no preallocation): a write fails.
    on_each_path(|io| disk_full(io, 4 << 20, Preallocate::None, 3000));
}

/// Buffered commits onto a disk that fills up (DURABILITY.md §3, "Disk full"): what was durable
/// at the failure survives — every commit at or below the durable LSN the poisoned database
/// reports — and what a reopen recovers is a prefix of the commit order: acknowledged commits
/// above that LSN are the loss window, present (the failed rounds') or absent, never with a hole.
fn disk_full_buffered(io: IoChoice) {
    let Some(fs) = Tmpfs::mount("2m") else {
        return;
    };
    let dir = fs.path().join("db");
    let o = opts(
        io,
        Durability::Buffered {
            interval: Duration::from_millis(2),
            max_pending: 64 << 10,
        },
    )
    .segment_size(4 << 20)
    .preallocate(Preallocate::None);
    let db = open(&dir, o.clone());
    let mut acked: Vec<Entry> = Vec::new();
    let err = loop {
        let i = acked.len();
        let k = format!("key-{i:06}").into_bytes();
        let v = format!("{i:08}").repeat(125).into_bytes();
        match db.put(&k, &v) {
            Ok(lsn) => acked.push((k, v, lsn)),
            Err(e) => break e,
        }
        // A sync every 100 commits, so that much is durable when the disk fills up (left to
        // the timer, a late round sometimes carried nearly everything: durable LSN 1).
        if i % 100 == 99 {
            if let Err(e) = db.sync() {
                break e;
            }
        }
        assert!(i < 100_000, "the disk never filled up");
    };
    assert!(matches!(err, Error::Poisoned(_)), "{err:?}");
    assert!(is_enospc(&err), "the error names ENOSPC: {err:?} / {err}");
    let durable = db.durable_lsn();
    let must = acked.iter().take_while(|a| a.2 <= durable).count();
    // The first sync (after 100 commits: 400 KiB even at a 4 KiB block each) fits in 2 MiB.
    assert!(
        must >= 100,
        "{must} commits durable before the disk filled up"
    );
    // Reads serve every acknowledged commit, durable or not.
    for (k, v, lsn) in &acked {
        assert_entry(&db, k, v, *lsn);
    }
    assert!(db.close().is_err(), "close of a poisoned database");
    drop(db);
    fs.resize("8m");
    let db = open(&dir, o.clone());
    let present: Vec<usize> = scan(&db)
        .into_iter()
        .filter_map(|(k, v, lsn)| {
            let i: usize = std::str::from_utf8(&k)
                .ok()?
                .strip_prefix("key-")?
                .parse()
                .ok()?;
            if let Some(a) = acked.get(i) {
                assert_eq!((&v, lsn), (&a.1, a.2), "key {i} recovered changed");
            }
            Some(i)
        })
        .collect();
    let kept = present.len();
    assert_eq!(
        present,
        (0..kept).collect::<Vec<_>>(),
        "a prefix of the commit order survives"
    );
    assert!(
        kept >= must,
        "{kept} commits recovered, {must} were durable at the failure"
    );
    // Beyond the acknowledged commits, at most the one that failed.
    assert!(
        kept <= acked.len() + 1,
        "{kept} recovered, {} acknowledged",
        acked.len()
    );
    eprintln!(
        "[{} path] Buffered disk full: {} acknowledged, {must} durable at the failure, {kept} \
         recovered",
        io_name(io),
        acked.len()
    );
    let l = db.put(b"after", b"x").unwrap();
    assert!(l > durable);
    db.close().unwrap();
}

#[test]
fn disk_full_under_buffered_commits_keeps_what_was_durable() {
    on_each_path(disk_full_buffered);
}

// ---------------------------------------------------------------------------------------------
// RWF_DSYNC is trusted only on filesystems known to honour it
// ---------------------------------------------------------------------------------------------

/// A real `Vfs` that claims its files live on `fs` and records the strategy of every write the
/// log thread hands its driver.
struct ClaimedFsVfs {
    inner: Arc<dyn ringlog_db::Vfs>,
    fs: ringlog_db::io::FsInfo,
    seen: Arc<std::sync::Mutex<Vec<SyncStrategy>>>,
}

impl ringlog_db::Vfs for ClaimedFsVfs {
    fn backend(&self) -> ringlog_db::io::BackendInfo {
        self.inner.backend()
    }
    fn open(
        &self,
        path: &Path,
        opts: ringlog_db::io::OpenOptions,
    ) -> std::io::Result<Box<dyn ringlog_db::io::VFile>> {
        self.inner.open(path, opts)
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn kind_of(&self, path: &Path) -> std::io::Result<Option<ringlog_db::io::EntryKind>> {
        self.inner.kind_of(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn lock(&self, path: &Path) -> std::io::Result<Box<dyn ringlog_db::io::FileLock>> {
        self.inner.lock(path)
    }
    fn filesystem(&self, _path: &Path) -> std::io::Result<ringlog_db::io::FsInfo> {
        Ok(self.fs.clone())
    }
    fn log_driver(&self) -> std::io::Result<Box<dyn ringlog_db::io::LogDriver>> {
        Ok(Box::new(RecordingDriver {
            inner: self.inner.log_driver()?,
            seen: self.seen.clone(),
        }))
    }
    fn writes_here(&self) -> bool {
        true
    }
    /// A lone Strict committer's own round: recorded like the log thread's.
    fn write_durable_here(
        &self,
        file: &dyn ringlog_db::io::VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> std::io::Result<()> {
        self.seen.lock().unwrap().push(strategy);
        self.inner.write_durable_here(file, offset, buf, strategy)
    }
}

struct RecordingDriver {
    inner: Box<dyn ringlog_db::io::LogDriver>,
    seen: Arc<std::sync::Mutex<Vec<SyncStrategy>>>,
}

impl ringlog_db::io::LogDriver for RecordingDriver {
    fn write_durable(
        &mut self,
        file: &dyn ringlog_db::io::VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> std::io::Result<()> {
        self.seen.lock().unwrap().push(strategy);
        self.inner.write_durable(file, offset, buf, strategy)
    }
    fn wait(&mut self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.inner.wait(timeout)
    }
    fn waker(&self) -> Arc<dyn ringlog_db::io::Waker> {
        self.inner.waker()
    }
}

/// Issue 8: on FUSE an O_DIRECT RWF_DSYNC write through io_uring completed without any sync
/// reaching the filesystem. The engine now uses RWF_DSYNC only where the filesystem is known to
/// make its completion durable, and an explicit fdatasync everywhere else — FUSE, overlayfs, NFS
/// and unknown filesystems included — and says so in its stats.
#[test]
fn rwf_dsync_is_used_only_on_filesystems_known_to_honour_it() {
    use ringlog_db::io::FsInfo;
    on_each_path(|io| {
        let cases = [
            (
                FsInfo::from_magic(0xEF53),
                SyncStrategy::Dsync,
                SyncStrategy::Dsync,
            ),
            (
                FsInfo::from_magic(0x58465342),
                SyncStrategy::Dsync,
                SyncStrategy::Dsync,
            ),
            (
                FsInfo::from_magic(0x65735546),
                SyncStrategy::Dsync,
                SyncStrategy::WriteThenSync,
            ),
            (
                FsInfo::from_magic(0x794C7630),
                SyncStrategy::Dsync,
                SyncStrategy::WriteThenSync,
            ),
            (
                FsInfo::from_magic(0x6969),
                SyncStrategy::Dsync,
                SyncStrategy::WriteThenSync,
            ),
            (
                FsInfo::from_magic(0x1BADFACE),
                SyncStrategy::Dsync,
                SyncStrategy::WriteThenSync,
            ),
            (
                FsInfo::from_magic(0xEF53),
                SyncStrategy::WriteThenSync,
                SyncStrategy::WriteThenSync,
            ),
            (
                FsInfo::from_magic(0x65735546),
                SyncStrategy::WriteThenSync,
                SyncStrategy::WriteThenSync,
            ),
        ];
        for (fs, requested, expected) in cases {
            let dir = tempdir();
            let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
            let vfs = Arc::new(ClaimedFsVfs {
                inner: real_vfs(io),
                fs: fs.clone(),
                seen: seen.clone(),
            });
            let db = open(
                dir.path(),
                opts(io, Durability::Strict)
                    .sync_strategy(requested)
                    .vfs(vfs),
            );
            for i in 0..3 {
                let (k, v) = kv(i);
                db.put(&k, &v).unwrap();
            }
            let stats = db.stats();
            assert_eq!(
                stats.sync_strategy,
                Some(expected),
                "{fs} asked {requested:?}"
            );
            assert!(
                stats.sync_strategy_reason.contains(&fs.name),
                "the reason names the filesystem: {}",
                stats.sync_strategy_reason
            );
            db.close().unwrap();
            let seen = seen.lock().unwrap();
            assert!(
                seen.len() >= 3,
                "one durable write per Strict commit: {seen:?}"
            );
            assert!(
                seen.iter().all(|s| *s == expected),
                "{fs} asked {requested:?}: the driver got {seen:?}"
            );
        }
    });
}

/// The real filesystem of the test's temporary directory is named in the stats, and an
/// in-memory database has no strategy.
#[test]
fn stats_name_the_sync_strategy_and_the_filesystem() {
    on_each_path(|io| {
        let dir = tempdir();
        let fs = ringlog_db::io::FsInfo::of_path(dir.path()).unwrap();
        let db = open(dir.path(), opts(io, Durability::Strict));
        let stats = db.stats();
        let want = if fs.dsync_durable {
            SyncStrategy::Dsync
        } else {
            SyncStrategy::WriteThenSync
        };
        assert_eq!(
            stats.sync_strategy,
            Some(want),
            "{}",
            stats.sync_strategy_reason
        );
        assert!(stats.sync_strategy_reason.contains(&fs.name));
        db.close().unwrap();
        let mem = Db::in_memory();
        assert_eq!(mem.stats().sync_strategy, None);
    });
}

/// Concurrent `Strict` writers with up to 8 log rounds in flight (the io_uring path pipelines
/// them; the portable path writes one at a time), under both sync strategies: every commit is
/// acknowledged once durable, so every acknowledged commit is there after a reopen, with the
/// value and LSN it was acknowledged with.
#[test]
fn strict_writers_with_rounds_in_flight_keep_every_acknowledged_commit() {
    on_each_path(|io| {
        for strategy in [SyncStrategy::Dsync, SyncStrategy::WriteThenSync] {
            let dir = tempdir();
            let o = Options::default()
                .io(io)
                .durability(Durability::Strict)
                .sync_strategy(strategy)
                .rounds_in_flight(8)
                .segment_size(256 << 10);
            let db = Arc::new(Db::open(dir.path(), o.clone()).unwrap());
            type Acked = Vec<(Vec<u8>, Vec<u8>, Lsn)>;
            let acked: Vec<Acked> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|t| {
                        let db = db.clone();
                        s.spawn(move || {
                            (0..150)
                                .map(|i| {
                                    let (k, v) = kv(t * 1000 + i);
                                    let lsn = db.put(&k, &v).unwrap();
                                    // Acknowledged means durable: the durable LSN covers it.
                                    assert!(db.stats().durable_lsn >= lsn);
                                    (k, v, lsn)
                                })
                                .collect()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let st = db.stats();
            assert!(st.syncs >= 1 && st.rounds_overlapped <= st.syncs, "{st:?}");
            Arc::try_unwrap(db).ok().unwrap().close().unwrap();
            let db = Db::open(dir.path(), o).unwrap();
            for (k, v, lsn) in acked.iter().flatten() {
                let got = db
                    .get(k)
                    .unwrap()
                    .unwrap_or_else(|| panic!("{io}: lost {k:?}"));
                assert_eq!((&got[..], got.lsn()), (&v[..], *lsn), "{io} {strategy:?}");
            }
        }
    });
}

/// Rounds overlap only on segments written with `O_DIRECT`: on a file written through the page
/// cache, two fdatasyncs in flight at once share the file's writeback error (Linux reports it to
/// one of them), so an earlier round could be acknowledged although its pages never reached the
/// disk (found in review on a loop device whose writeback failed). With `direct_io(false)` the
/// log writes one round at a time whatever `rounds_in_flight` asks; with `O_DIRECT` (where the
/// filesystem allows it) rounds may still overlap.
#[test]
fn rounds_overlap_only_on_direct_io_segments() {
    on_each_path(|io| {
        for strategy in [SyncStrategy::Dsync, SyncStrategy::WriteThenSync] {
            let dir = tempdir();
            let o = Options::default()
                .io(io)
                .durability(Durability::Strict)
                .sync_strategy(strategy)
                .direct_io(false)
                .rounds_in_flight(8)
                .segment_size(256 << 10);
            let db = Db::open(dir.path(), o).unwrap();
            std::thread::scope(|s| {
                for t in 0..16 {
                    let db = &db;
                    s.spawn(move || {
                        for i in 0..200 {
                            let (k, v) = kv(t * 1000 + i);
                            db.put(&k, &v).unwrap();
                        }
                    });
                }
            });
            let st = db.stats();
            assert!(st.syncs >= 1, "{io:?} {strategy:?}: {st:?}");
            assert_eq!(
                st.rounds_overlapped, 0,
                "{io:?} {strategy:?}: rounds overlapped on a page-cache segment"
            );
            db.close().unwrap();
        }
    });
}

/// `wait_durable` of the LSNs an open skips (above the last run's lease, below the first one it
/// hands out) answers at once — no commit will ever take them; on a read-only handle an LSN
/// above its last one is `NotYetVisible` (it commits nothing). (A writable handle waits for an
/// LSN not assigned yet: `concurrency.rs`, `waiters_for_a_future_lsn_are_released`.)
#[test]
fn wait_durable_answers_lsns_no_commit_will_take() {
    on_each_path(|io| {
        let dir = tempdir();
        let db = open(dir.path(), opts(io, Durability::Strict));
        let lsn = db.put(b"k", b"v").unwrap();
        db.wait_durable(lsn).unwrap();
        // As a crash leaves it: the next open starts above the lease.
        let crashed = crash_copy(dir.path());
        db.close().unwrap();

        let db = Arc::new(open(crashed.path(), opts(io, Durability::Strict)));
        let skipped = db.next_lsn() - 1;
        assert!(skipped > lsn, "{io}: an open starts above the lease");
        let d = db.clone();
        within("wait_durable of an LSN the open skipped", move || {
            d.wait_durable(skipped)
        })
        .unwrap();
        Arc::try_unwrap(db).ok().unwrap().close().unwrap();

        let ro = Db::open_read_only(crashed.path(), opts(io, Durability::Strict)).unwrap();
        ro.wait_durable(ro.last_lsn()).unwrap();
        match ro.wait_durable(ro.last_lsn() + 1) {
            Err(Error::NotYetVisible { requested, visible }) => {
                assert_eq!(
                    (requested, visible),
                    (ro.last_lsn() + 1, ro.last_lsn()),
                    "{io}"
                );
            }
            other => panic!("{io}: {other:?}"),
        }
    });
}

/// [`Hooks`] of a real disk recording the directories `create_dir_all` created (absent before)
/// and the directories synced.
#[derive(Default)]
struct DirSyncs {
    created: std::sync::Mutex<Vec<std::path::PathBuf>>,
    synced: std::sync::Mutex<Vec<std::path::PathBuf>>,
}

impl DirSyncs {
    /// Created directories whose entry (in their parent) was never made durable.
    fn unsynced_entries(&self) -> Vec<std::path::PathBuf> {
        let synced = self.synced.lock().unwrap();
        let created = self.created.lock().unwrap();
        created
            .iter()
            .filter(|d| !synced.iter().any(|s| Some(s.as_path()) == d.parent()))
            .cloned()
            .collect()
    }
}

impl Hooks for DirSyncs {
    fn create_dir_all(&self, inner: &dyn ringlog_db::Vfs, path: &Path) -> std::io::Result<()> {
        let new: Vec<std::path::PathBuf> = path
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty() && !a.exists())
            .map(Path::to_path_buf)
            .collect();
        inner.create_dir_all(path)?;
        self.created.lock().unwrap().extend(new);
        Ok(())
    }
    fn sync_dir(&self, inner: &dyn ringlog_db::Vfs, path: &Path) -> std::io::Result<()> {
        inner.sync_dir(path)?;
        self.synced.lock().unwrap().push(path.to_path_buf());
        Ok(())
    }
}

/// Opening a database at a path several of whose directories do not exist yet makes every
/// directory it creates durable in its parent before the first commit is acknowledged: it
/// synced only the database directory's parent, so a power loss could drop a directory above it
/// — and every acknowledged `Strict` commit with it (found in review). `backup_to` a new nested
/// directory the same; and `backup_to` a regular file is `InvalidOptions`, not an I/O error.
#[test]
fn directories_created_for_a_database_or_a_backup_are_durable() {
    on_each_path(|io| {
        let root = tempdir();
        let dir = root.path().join("a").join("b").join("db");
        let vfs = Hooked::new(real_vfs(io), DirSyncs::default());
        let db = Db::open(&dir, opts(io, Durability::Strict).vfs(vfs.clone())).unwrap();
        db.put(b"k", b"acknowledged").unwrap();
        assert_eq!(vfs.created.lock().unwrap().len(), 3, "a, a/b, a/b/db");
        let lost = vfs.unsynced_entries();
        assert!(lost.is_empty(), "{io:?}: entries never synced: {lost:?}");

        let out = tempdir();
        let dest = out.path().join("nightly").join("copy");
        db.backup_to(&dest).unwrap();
        let lost = vfs.unsynced_entries();
        assert!(
            lost.is_empty(),
            "{io:?}: backup entries never synced: {lost:?}"
        );

        let file = out.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        match db.backup_to(&file) {
            Err(Error::InvalidOptions(_)) => {}
            other => panic!("{io:?}: backup_to a regular file: {other:?}"),
        }
        db.close().unwrap();
    });
}
