//! Versions, snapshots, retention and visibility: a model-based property test against
//! `BTreeMap<(key, lsn), value>`, concurrent writers and snapshot readers, each retention policy
//! across restarts, Strict visibility, and LSNs that are never reused.

mod common;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ringlog_db::{Db, Durability, Error, IoChoice, Lsn, Options, Retention, Snapshot};

/// Every version ever committed: (key, lsn) → value (`None` for a delete).
#[derive(Default)]
struct Model {
    versions: BTreeMap<(Vec<u8>, Lsn), Option<Vec<u8>>>,
}

impl Model {
    fn apply(&mut self, ops: &[(Vec<u8>, Option<Vec<u8>>)], lsn: Lsn) {
        for (k, v) in ops {
            self.versions.insert((k.clone(), lsn), v.clone());
        }
    }

    /// `key` as of `lsn`.
    fn get_at(&self, key: &[u8], lsn: Lsn) -> Option<(Vec<u8>, Lsn)> {
        self.versions
            .range((key.to_vec(), 0)..=(key.to_vec(), lsn))
            .next_back()
            .and_then(|((_, l), v)| v.clone().map(|v| (v, *l)))
    }

    /// Every live entry in `lo..hi` as of `lsn`, in key order.
    fn scan_at(&self, lo: &[u8], hi: &[u8], lsn: Lsn) -> Vec<(Vec<u8>, Vec<u8>, Lsn)> {
        let mut keys: Vec<&Vec<u8>> = self
            .versions
            .keys()
            .map(|(k, _)| k)
            .filter(|k| k.as_slice() >= lo && k.as_slice() < hi)
            .collect();
        keys.dedup();
        keys.into_iter()
            .filter_map(|k| self.get_at(k, lsn).map(|(v, l)| (k.clone(), v, l)))
            .collect()
    }
}

fn entries(
    scan: impl Iterator<Item = ringlog_db::Result<(Arc<[u8]>, ringlog_db::Value)>>,
) -> Vec<(Vec<u8>, Vec<u8>, Lsn)> {
    scan.map(Result::unwrap)
        .map(|(k, v)| (k.to_vec(), v.to_vec(), v.lsn()))
        .collect()
}

fn key(n: u64) -> Vec<u8> {
    format!("k{n:03}").into_bytes()
}

/// Checks every read the API offers at `lsn` (a snapshot's or an explicit version) against the
/// model: point reads of every key, a random range forward and backward, and a prefix.
fn check_reads(
    db: &Db,
    snap: Option<&Snapshot>,
    model: &Model,
    lsn: Lsn,
    rng: &mut Rng,
    nkeys: u64,
    ctx: &str,
) {
    for n in 0..nkeys {
        let k = key(n);
        let got = match snap {
            Some(s) => s.get(&k),
            None => db.get_at(&k, lsn),
        }
        .unwrap_or_else(|e| panic!("{ctx}: get {n} at {lsn}: {e}"))
        .map(|v| (v.to_vec(), v.lsn()));
        assert_eq!(got, model.get_at(&k, lsn), "{ctx}: key {n} at LSN {lsn}");
        if let Some(s) = snap {
            // The borrowed read agrees with the owned one.
            let lent = s
                .get_with(&k, |v| v.map(|(b, l)| (b.to_vec(), l)))
                .unwrap_or_else(|e| panic!("{ctx}: get_with {n} at {lsn}: {e}"));
            assert_eq!(lent, got, "{ctx}: get_with of key {n} at LSN {lsn}");
        }
    }
    let (a, b) = (rng.below(nkeys + 1), rng.below(nkeys + 1));
    let (lo, hi) = (key(a.min(b)), key(a.max(b)));
    let want = model.scan_at(&lo, &hi, lsn);
    let fwd = match snap {
        Some(s) => s.range(lo.clone()..hi.clone()),
        None => db.range_at(lo.clone()..hi.clone(), lsn),
    }
    .unwrap();
    assert_eq!(entries(fwd), want, "{ctx}: range {a}..{b} at {lsn}");
    let rev = match snap {
        Some(s) => s.range(lo.clone()..hi.clone()),
        None => db.range_at(lo.clone()..hi.clone(), lsn),
    }
    .unwrap();
    let mut back = entries(rev.rev());
    back.reverse();
    assert_eq!(back, want, "{ctx}: reverse range {a}..{b} at {lsn}");
    // Both ends at once, in a random order, owned entries and lent ones (`next_with`) mixed.
    let mut both = match snap {
        Some(s) => s.range(lo.clone()..hi.clone()),
        None => db.range_at(lo.clone()..hi.clone(), lsn),
    }
    .unwrap();
    let (mut front, mut tail) = (Vec::new(), Vec::new());
    let lend = |k: &[u8], v: &[u8], l: Lsn| (k.to_vec(), v.to_vec(), l);
    let own = |(k, v): (Arc<[u8]>, ringlog_db::Value)| (k.to_vec(), v.to_vec(), v.lsn());
    loop {
        let choice = rng.below(4);
        let item = match choice {
            0 => both.next().map(|e| own(e.unwrap())),
            1 => both.next_with(lend).map(Result::unwrap),
            2 => both.next_back().map(|e| own(e.unwrap())),
            _ => both.next_back_with(lend).map(Result::unwrap),
        };
        match item {
            Some(e) if choice < 2 => front.push(e),
            Some(e) => tail.push(e),
            None => break,
        }
    }
    tail.reverse();
    front.extend(tail);
    assert_eq!(front, want, "{ctx}: two-ended range {a}..{b} at {lsn}");
    let p = format!("k{}", rng.below(10)).into_bytes();
    let mut pend = p.clone();
    *pend.last_mut().unwrap() += 1;
    let want_p = model.scan_at(&p, &pend, lsn);
    let got_p = match snap {
        Some(s) => s.prefix(&p),
        None => db.prefix_at(&p, lsn),
    }
    .unwrap();
    assert_eq!(entries(got_p), want_p, "{ctx}: prefix at {lsn}");
    // Inclusive and exclusive starts.
    let s = db
        .range_at(
            (Bound::Excluded(lo.clone()), Bound::Included(hi.clone())),
            lsn,
        )
        .unwrap_or_else(|e| panic!("{ctx}: (lo, hi] at {lsn}: {e}"));
    let want_x: Vec<_> = model
        .scan_at(&lo, &[hi.clone(), vec![0]].concat(), lsn)
        .into_iter()
        .filter(|e| e.0 != lo)
        .collect();
    assert_eq!(entries(s), want_x, "{ctx}: (lo, hi] at {lsn}");
}

/// One seeded run of the property test on `db` (reopened by `reopen` when it has a directory).
fn property_run(seed: u64, mut db: Db, reopen: Option<&dyn Fn() -> Db>) {
    let ctx = |step: usize| format!("seed {seed:#x} step {step}");
    let mut rng = Rng::new(seed);
    let nkeys = 40;
    let mut model = Model::default();
    // Live snapshots and the LSN each was taken at; reads at explicit LSNs are only checked at
    // or above the database's history floor (below it they must fail with HistoryTrimmed).
    let mut snaps: Vec<Snapshot> = Vec::new();
    db.set_retention(Retention::All).unwrap();
    let mut all_since = db.last_lsn();
    for step in 0..600 {
        match rng.below(100) {
            0..=39 => {
                let k = key(rng.below(nkeys));
                let v = format!("v{step}").into_bytes();
                let lsn = db.put(&k, &v).unwrap();
                model.apply(&[(k, Some(v))], lsn);
            }
            40..=49 => {
                let k = key(rng.below(nkeys));
                let lsn = db.delete(&k).unwrap();
                model.apply(&[(k, None)], lsn);
            }
            50..=64 => {
                let mut tx = db.begin();
                let mut ops = Vec::new();
                for _ in 0..1 + rng.below(6) {
                    let k = key(rng.below(nkeys));
                    if rng.below(4) == 0 {
                        tx.delete(&k).unwrap();
                        ops.retain(|(x, _): &(Vec<u8>, _)| *x != k);
                        ops.push((k, None));
                    } else {
                        let v = format!("t{step}-{}", ops.len()).into_bytes();
                        tx.put(&k, &v).unwrap();
                        ops.retain(|(x, _): &(Vec<u8>, _)| *x != k);
                        ops.push((k, Some(v)));
                    }
                }
                let lsn = tx.commit().unwrap();
                model.apply(&ops, lsn);
            }
            65..=72 => snaps.push(db.snapshot()),
            73..=77 if !snaps.is_empty() => {
                let i = rng.below(snaps.len() as u64) as usize;
                snaps.swap_remove(i);
            }
            78..=87 if !snaps.is_empty() => {
                let i = rng.below(snaps.len() as u64) as usize;
                let s = &snaps[i];
                check_reads(&db, Some(s), &model, s.lsn(), &mut rng, nkeys, &ctx(step));
            }
            88..=93 => {
                // An explicit version: anything from the history kept.
                let last = db.last_lsn();
                let floor = db.stats().history_floor.max(all_since);
                if last > floor {
                    let lsn = floor + rng.below(last - floor + 1);
                    check_reads(&db, None, &model, lsn, &mut rng, nkeys, &ctx(step));
                }
            }
            94..=95 => {
                // Switch policies: keeping everything, or only what snapshots need (history
                // trimmed by the next trim; reads below the floor must then refuse).
                if rng.below(2) == 0 {
                    db.set_retention(Retention::Snapshots).unwrap();
                    all_since = Lsn::MAX;
                } else if db.retention() != Retention::All {
                    let lsn = db.set_retention(Retention::All).unwrap();
                    all_since = lsn - 1;
                }
            }
            96..=97 => {
                db.trim_history().unwrap();
                let floor = db.stats().history_floor;
                for s in &snaps {
                    assert!(floor <= s.lsn(), "{}: a trim passed a snapshot", ctx(step));
                }
                if floor > 1 {
                    let k = key(rng.below(nkeys));
                    match db.get_at(&k, floor - 1) {
                        Err(Error::HistoryTrimmed {
                            requested,
                            earliest_retained,
                        }) => assert_eq!(
                            (requested, earliest_retained),
                            (floor - 1, floor),
                            "{}",
                            ctx(step)
                        ),
                        other => panic!("{}: read below the floor: {other:?}", ctx(step)),
                    }
                }
            }
            _ => {
                if let Some(reopen) = reopen.filter(|_| rng.below(3) == 0) {
                    snaps.clear();
                    let before = db.stats().history_floor;
                    db.close().unwrap();
                    drop(db);
                    db = reopen();
                    let after = db.stats().history_floor;
                    assert!(after >= before, "{}: the floor moved back", ctx(step));
                    if db.retention() != Retention::All {
                        all_since = Lsn::MAX;
                    }
                }
            }
        }
        // The newest state, always.
        let last = db.last_lsn();
        let k = key(rng.below(nkeys));
        assert_eq!(
            db.get(&k).unwrap().map(|v| (v.to_vec(), v.lsn())),
            model.get_at(&k, last),
            "{}: latest {k:?}",
            ctx(step)
        );
    }
    // Everything at the end, and every snapshot still held.
    let last = db.last_lsn();
    let all = entries(db.range::<&[u8], _>(..).unwrap());
    assert_eq!(
        all,
        model.scan_at(b"", b"\xff", last),
        "seed {seed:#x}: final state"
    );
    assert_eq!(db.len(), all.len());
    for s in &snaps {
        check_reads(
            &db,
            Some(s),
            &model,
            s.lsn(),
            &mut rng,
            nkeys,
            "final snapshots",
        );
    }
    drop(snaps);
    db.close().unwrap();
}

#[test]
fn model_based_in_memory() {
    for seed in [1u64, 0xDEAD_BEEF, 42, 7777] {
        let db = Db::in_memory_with_options(Options::default().trim_threshold(8)).unwrap();
        property_run(seed, db, None);
    }
}

#[test]
fn model_based_on_each_path() {
    on_each_path(|io| {
        for seed in [3u64, 0xC0FFEE] {
            let dir = tempdir();
            let o = opts(io, Durability::BUFFERED)
                .trim_threshold(8)
                .lease_span(4);
            let db = open(dir.path(), o.clone());
            let reopen = || open(dir.path(), o.clone());
            property_run(seed, db, Some(&reopen));
        }
    });
}

/// 8 writers commit multi-key transactions while 8 readers take snapshots and read them; every
/// snapshot read equals the model of the committed history at its LSN, and no transaction is
/// ever seen in part. Runs for 10 s (the readers' and writers' interleaving is the OS's; every
/// check is made afterwards against the recorded history, never on timing).
fn concurrent_snapshots(db: Arc<Db>, run_for: Duration) {
    const WRITERS: usize = 8;
    const READERS: usize = 8;
    const KEYS_PER_TXN: usize = 3;
    let stop = Arc::new(AtomicBool::new(false));
    // (lsn, writer, counter) of every commit.
    let commits = Arc::new(Mutex::new(Vec::<(Lsn, usize, u64)>::new()));
    // (snapshot LSN, writer, counter seen (0 = none)) of every snapshot read.
    let seen = Arc::new(Mutex::new(Vec::<(Lsn, usize, u64)>::new()));
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (db, stop, commits) = (db.clone(), stop.clone(), commits.clone());
            s.spawn(move || {
                let mut n = 0u64;
                let mut mine = Vec::new();
                // At least one commit whatever the scheduling, then until told to stop.
                while n == 0 || !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let mut tx = db.begin();
                    for k in 0..KEYS_PER_TXN {
                        tx.put(format!("w{w}-{k}").as_bytes(), &n.to_be_bytes())
                            .unwrap();
                    }
                    mine.push((tx.commit().unwrap(), w, n));
                }
                commits.lock().unwrap().extend(mine);
            });
        }
        for r in 0..READERS {
            let (db, stop, seen) = (db.clone(), stop.clone(), seen.clone());
            s.spawn(move || {
                let mut mine = Vec::new();
                let mut i = 0u64;
                // At least one read whatever the scheduling, then until told to stop.
                while i == 0 || !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let snap = db.snapshot();
                    let w = ((i as usize) + r) % WRITERS;
                    // All keys of one writer through gets, or through a scan.
                    let vals: Vec<u64> = if i.is_multiple_of(2) {
                        (0..KEYS_PER_TXN)
                            .map(|k| {
                                snap.get(format!("w{w}-{k}").as_bytes())
                                    .unwrap()
                                    .map_or(0, |v| u64::from_be_bytes(v[..8].try_into().unwrap()))
                            })
                            .collect()
                    } else {
                        let got: Vec<u64> = snap
                            .prefix(format!("w{w}-").as_bytes())
                            .unwrap()
                            .map(Result::unwrap)
                            .map(|(_, v)| u64::from_be_bytes(v[..8].try_into().unwrap()))
                            .collect();
                        if got.is_empty() {
                            vec![0; KEYS_PER_TXN]
                        } else {
                            got
                        }
                    };
                    assert_eq!(vals.len(), KEYS_PER_TXN, "a transaction seen in part");
                    assert!(
                        vals.iter().all(|&v| v == vals[0]),
                        "a transaction seen in part at snapshot {}: {vals:?}",
                        snap.lsn()
                    );
                    mine.push((snap.lsn(), w, vals[0]));
                }
                seen.lock().unwrap().extend(mine);
            });
        }
        while started.elapsed() < run_for {
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let mut commits = commits.lock().unwrap().clone();
    commits.sort_unstable();
    assert!(
        commits.windows(2).all(|w| w[0].0 < w[1].0),
        "every commit has its own LSN"
    );
    // Per writer, (lsn, counter) in LSN order: the model of what a snapshot sees.
    let mut by_writer: Vec<Vec<(Lsn, u64)>> = vec![Vec::new(); WRITERS];
    for &(lsn, w, n) in &commits {
        by_writer[w].push((lsn, n));
    }
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty() && !commits.is_empty());
    for &(at, w, counter) in &seen {
        let h = &by_writer[w];
        let i = h.partition_point(|&(lsn, _)| lsn <= at);
        let want = if i == 0 { 0 } else { h[i - 1].1 };
        assert_eq!(counter, want, "writer {w} at snapshot {at}");
    }
    eprintln!(
        "{} commits, {} snapshot reads checked",
        commits.len(),
        seen.len()
    );
}

#[test]
fn concurrent_writers_and_snapshot_readers_in_memory() {
    let db = Db::in_memory_with_options(Options::default().trim_threshold(64)).unwrap();
    concurrent_snapshots(Arc::new(db), Duration::from_secs(10));
}

#[test]
fn concurrent_writers_and_snapshot_readers_on_each_path() {
    on_each_path(|io| {
        let dir = tempdir();
        let db = open(
            dir.path(),
            opts(io, Durability::BUFFERED).trim_threshold(64),
        );
        concurrent_snapshots(Arc::new(db), Duration::from_secs(5));
    });
}

/// A reader never observes an LSN above `durable_lsn()` written by a Strict commit, checked in a
/// tight loop while 16 Strict writers commit.
#[test]
fn strict_commits_are_visible_only_once_durable() {
    on_each_path(|io| {
        let dir = tempdir();
        let db = Arc::new(open(dir.path(), opts(io, Durability::Strict)));
        let stop = Arc::new(AtomicBool::new(false));
        let checks = std::thread::scope(|s| {
            let reader = {
                let (db, stop) = (db.clone(), stop.clone());
                s.spawn(move || {
                    let mut checks = 0u64;
                    // At least one check whatever the scheduling, then until told to stop.
                    while checks == 0 || !stop.load(Ordering::Relaxed) {
                        let k = format!("s{}", checks % 16);
                        let got = db.get(k.as_bytes()).unwrap();
                        let visible = db.last_lsn();
                        // Read after: the durable LSN only rises.
                        let durable = db.durable_lsn();
                        if let Some(v) = got {
                            assert!(
                                v.lsn() <= durable,
                                "read LSN {} above durable {durable}",
                                v.lsn()
                            );
                        }
                        assert!(
                            visible <= durable,
                            "visible {visible} above durable {durable}"
                        );
                        let snap = db.snapshot();
                        assert!(snap.lsn() <= db.durable_lsn());
                        checks += 1;
                    }
                    checks
                })
            };
            let writers: Vec<_> = (0..16)
                .map(|w| {
                    let db = db.clone();
                    s.spawn(move || {
                        for i in 0..40u32 {
                            db.put(format!("s{w}").as_bytes(), &i.to_be_bytes())
                                .unwrap();
                        }
                    })
                })
                .collect();
            for w in writers {
                w.join().unwrap();
            }
            stop.store(true, Ordering::Relaxed);
            reader.join().unwrap()
        });
        assert!(checks > 0);
        assert_eq!(db.last_lsn(), db.durable_lsn());
    });
}

/// Each policy, `HistoryTrimmed` before and after a restart, and a floor that never decreases.
#[test]
fn retention_policies_across_restarts() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, Durability::Strict).trim_threshold(1);
        let db = open(dir.path(), o.clone());
        assert_eq!(db.retention(), Retention::Snapshots);
        let l1 = db.put(b"a", b"1").unwrap();
        let l2 = db.put(b"a", b"2").unwrap();
        db.trim_history().unwrap();
        // Snapshots only: the old version is gone, and said so.
        assert!(matches!(
            db.get_at(b"a", l1),
            Err(Error::HistoryTrimmed { requested, .. }) if requested == l1
        ));
        assert_eq!(db.get_at(b"a", l2).unwrap().unwrap().as_bytes(), b"2");
        assert!(matches!(
            db.get_at(b"a", l2 + 100),
            Err(Error::NotYetVisible { requested, visible }) if requested == l2 + 100 && visible == l2
        ));
        // A snapshot keeps what it sees through trims.
        let snap = db.snapshot();
        let l3 = db.put(b"a", b"3").unwrap();
        db.trim_history().unwrap();
        assert_eq!(snap.get(b"a").unwrap().unwrap().as_bytes(), b"2");
        assert_eq!(db.get_at(b"a", l2).unwrap().unwrap().as_bytes(), b"2");
        drop(snap);
        db.trim_history().unwrap();
        assert!(matches!(
            db.get_at(b"a", l2),
            Err(Error::HistoryTrimmed { .. })
        ));
        let floor1 = db.stats().history_floor;
        assert!(floor1 >= l3);

        // All: every version from the policy on.
        let set = db.set_retention(Retention::All).unwrap();
        let mut all = Vec::new();
        for i in 0..5u8 {
            all.push((db.put(b"b", &[i]).unwrap(), i));
        }
        db.delete(b"b").unwrap();
        db.trim_history().unwrap();
        for &(l, i) in &all {
            assert_eq!(db.get_at(b"b", l).unwrap().unwrap().as_bytes(), &[i]);
        }
        db.close().unwrap();
        let db = open(dir.path(), o.clone());
        assert_eq!(db.retention(), Retention::All, "the policy is replayed");
        let floor2 = db.stats().history_floor;
        assert!(
            floor2 >= floor1 && floor2 < set,
            "floor {floor1} -> {floor2}, set at {set}"
        );
        for &(l, i) in &all {
            assert_eq!(
                db.get_at(b"b", l).unwrap().unwrap().as_bytes(),
                &[i],
                "after restart"
            );
        }
        assert!(matches!(
            db.get_at(b"a", l1),
            Err(Error::HistoryTrimmed { .. })
        ));

        // LastVersions(2): per-key history, HistoryTrimmed below the oldest kept version.
        db.set_retention(Retention::LastVersions(NonZeroU32::new(2).unwrap()))
            .unwrap();
        let c: Vec<Lsn> = (0..5u8).map(|i| db.put(b"c", &[i]).unwrap()).collect();
        db.trim_history().unwrap();
        assert_eq!(db.get_at(b"c", c[4]).unwrap().unwrap().as_bytes(), &[4]);
        assert_eq!(db.get_at(b"c", c[3]).unwrap().unwrap().as_bytes(), &[3]);
        match db.get_at(b"c", c[2]) {
            Err(Error::HistoryTrimmed {
                requested,
                earliest_retained,
            }) => assert_eq!((requested, earliest_retained), (c[2], c[3])),
            other => panic!("below the last two versions: {other:?}"),
        }
        // A scan cannot report one key's trimmed history: it refuses the LSN as a whole.
        assert!(matches!(
            db.range_at(b"c".as_slice()..=b"c".as_slice(), c[2]),
            Err(Error::HistoryTrimmed { earliest_retained, .. }) if earliest_retained >= c[3]
        ));
        assert_eq!(
            db.prefix_at(b"c", c[3])
                .unwrap()
                .map(|item| item.unwrap().1.to_vec())
                .collect::<Vec<_>>(),
            vec![vec![3u8]]
        );
        let floor3 = db.stats().history_floor;
        db.close().unwrap();
        let db = open(dir.path(), o.clone());
        assert!(
            db.stats().history_floor >= floor3,
            "the floor never moves back"
        );
        assert_eq!(db.get_at(b"c", c[3]).unwrap().unwrap().as_bytes(), &[3]);
        assert!(matches!(
            db.get_at(b"c", c[2]),
            Err(Error::HistoryTrimmed { .. })
        ));

        // NewerThan: a window of time; with an hour, everything since the policy is kept.
        let set = db
            .set_retention(Retention::NewerThan(Duration::from_secs(3600)))
            .unwrap();
        let d: Vec<Lsn> = (0..3u8).map(|i| db.put(b"d", &[i]).unwrap()).collect();
        db.trim_history().unwrap();
        assert_eq!(db.get_at(b"d", d[0]).unwrap().unwrap().as_bytes(), &[0]);
        db.close().unwrap();
        let db = open(dir.path(), o.clone());
        assert!(db.stats().history_floor < set);
        assert_eq!(db.get_at(b"d", d[0]).unwrap().unwrap().as_bytes(), &[0]);
        // Back to the default: a restart keeps only the newest versions.
        db.set_retention(Retention::Snapshots).unwrap();
        db.close().unwrap();
        let db = open(dir.path(), o);
        assert!(matches!(
            db.get_at(b"d", d[0]),
            Err(Error::HistoryTrimmed { .. })
        ));
        assert_eq!(db.get(b"d").unwrap().unwrap().as_bytes(), &[2]);
        // System entries are never user keys.
        assert!(db.get(b"retention").unwrap().is_none());
        assert!(db
            .range::<&[u8], _>(..)
            .unwrap()
            .all(|item| &*item.unwrap().0 != b"retention"));
    });
}

/// The default policy trims in the background: memory does not grow with overwrites.
#[test]
fn overwrites_do_not_grow_the_index() {
    let db = Db::in_memory_with_options(Options::default().trim_threshold(1000)).unwrap();
    for round in 0..50u32 {
        for k in 0..100u32 {
            db.put(&k.to_be_bytes(), &round.to_be_bytes()).unwrap();
        }
    }
    // A trim runs in the background once 1000 superseded versions exist; wait for the last.
    eventually("the background trim", Duration::from_secs(30), || {
        db.stats().trims > 0 && db.stats().versions < 2000
    });
    let s = db.stats();
    assert!(s.versions < 5000 - 1000, "{s:?}");
    assert_eq!(s.keys, 100);
    assert_eq!(
        db.get(&7u32.to_be_bytes()).unwrap().unwrap().as_bytes(),
        &49u32.to_be_bytes()
    );
}

/// LSNs once returned never name other data, also when a crash lost the Buffered commits they
/// were returned for: the copy of the directory taken while commits are unsynced is what a crash
/// leaves, and its next run starts above every LSN handed out.
#[test]
fn lsns_are_never_reused_after_a_lost_buffered_tail() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, buffered_forever(usize::MAX)).lease_span(8);
        let db = open(dir.path(), o.clone());
        let mut returned = Vec::new();
        for i in 0..30u32 {
            returned.push(db.put(format!("k{i}").as_bytes(), b"lost?").unwrap());
        }
        assert!(
            db.durable_lsn() < *returned.last().unwrap(),
            "commits are unsynced"
        );
        // The crash: what the files hold now.
        let crashed = crash_copy(dir.path());
        db.close().unwrap();
        let db2 = open(crashed.path(), o.clone());
        let recovered = db2.recovery_stats().last_lsn;
        assert!(recovered < *returned.last().unwrap(), "the tail was lost");
        // Nothing assigned yet in this run: the lease gap is not waited for.
        assert_eq!(db2.last_assigned_lsn(), recovered);
        db2.trim_history().unwrap();
        let next = db2.put(b"after", b"crash").unwrap();
        assert!(
            next > *returned.last().unwrap(),
            "LSN {next} reused: {returned:?} were handed out before the crash"
        );
        // Reads at the LSNs that never became durable see the recovered state, never new data.
        assert!(matches!(
            db2.get_at(b"after", next - 1),
            Ok(None) | Err(Error::HistoryTrimmed { .. })
        ));
        db2.close().unwrap();
        // After a clean close the next run continues right after the last LSN.
        let db3 = open(dir.path(), o);
        let last = db3.last_lsn();
        assert_eq!(last, *returned.last().unwrap());
        assert_eq!(db3.put(b"x", b"y").unwrap(), last + 1);
    });
}

/// Reads through a snapshot and at versions fail clearly after close; a transaction reads its
/// own writes over a snapshot-free latest read.
#[test]
fn snapshot_edges() {
    let db = Db::in_memory();
    let l = db.put(b"k", b"v").unwrap();
    let snap = db.snapshot();
    assert_eq!(snap.lsn(), l);
    let clone = snap.clone();
    drop(snap);
    assert_eq!(clone.get(b"k").unwrap().unwrap().lsn(), l);
    assert_eq!(db.stats().snapshots, 1);
    assert!(
        db.range_at(b"a".as_slice().., l)
            .unwrap()
            .map(Result::unwrap)
            .count()
            == 1
    );
    assert!(matches!(
        db.range_at(b"a".as_slice().., l + 1),
        Err(Error::NotYetVisible { .. })
    ));
    db.close().unwrap();
    assert!(matches!(clone.get(b"k"), Err(Error::Closed)));
    assert!(matches!(db.get_at(b"k", l), Err(Error::Closed)));
    assert!(matches!(db.snapshot().iter(), Err(Error::Closed)));
}

/// `Db::history` against a model: every version of every key, deletes included, newest first —
/// in memory with a snapshot holding all history, and after a reopen with a retention policy
/// that keeps it; then with `LastVersions(2)`, the two newest of each key.
#[test]
fn history_lists_every_retained_version() {
    type Model = std::collections::BTreeMap<Vec<u8>, Vec<(Lsn, Option<Vec<u8>>)>>;
    fn listed(db: &Db) -> Model {
        db.history::<&[u8], _>(..)
            .unwrap()
            .map(|k| {
                let k = k.unwrap();
                let v = k
                    .versions
                    .iter()
                    .rev()
                    .map(|(lsn, v)| (*lsn, v.as_ref().map(|v| v.to_vec())))
                    .collect();
                (k.key.to_vec(), v)
            })
            .collect()
    }
    fn fill(db: &Db, seed: u64) -> Model {
        let mut rng = Rng::new(seed);
        let mut model = Model::new();
        for i in 0..400u64 {
            let k = key(rng.below(40));
            let lsn = if rng.below(4) == 0 {
                db.delete(&k).unwrap()
            } else {
                db.put(&k, &i.to_le_bytes()).unwrap()
            };
            let v = db.get(&k).unwrap().map(|v| v.to_vec());
            model.entry(k).or_default().push((lsn, v));
        }
        model
    }
    for seed in 1..=4u64 {
        eprintln!("seed {seed}");
        let db = Db::in_memory();
        let snap = db.snapshot();
        let model = fill(&db, seed);
        assert_eq!(listed(&db), model, "seed {seed}: in memory");
        // A range lists the same keys' histories.
        let lo = key(10);
        let hi = key(20);
        let part: Vec<Vec<u8>> = db
            .history(lo.as_slice()..hi.as_slice())
            .unwrap()
            .map(|k| k.unwrap().key.to_vec())
            .collect();
        let expected: Vec<Vec<u8>> = model.range(lo..hi).map(|(k, _)| k.clone()).collect();
        assert_eq!(part, expected, "seed {seed}: a range");
        drop(snap);

        let dir = tempdir();
        let keep_all = Retention::LastVersions(std::num::NonZeroU32::new(1000).unwrap());
        let model = {
            let db = open(
                dir.path(),
                opts(ringlog_db::IoChoice::Portable, Durability::Strict),
            );
            db.set_retention(keep_all).unwrap();
            fill(&db, seed)
        };
        let db = open(
            dir.path(),
            opts(ringlog_db::IoChoice::Portable, Durability::Strict),
        );
        assert_eq!(listed(&db), model, "seed {seed}: after a reopen");
        // Two versions per key: the newest two of the model (a key whose older of the two is a
        // delete lists it; one deleted long ago and never written again lists its delete only
        // if it is among the two).
        db.set_retention(Retention::LastVersions(
            std::num::NonZeroU32::new(2).unwrap(),
        ))
        .unwrap();
        db.trim_history().unwrap();
        let two = listed(&db);
        for (k, versions) in &two {
            let all = &model[k];
            assert!(
                versions.len() <= 2,
                "seed {seed}: {} versions kept",
                versions.len()
            );
            assert_eq!(
                versions[..],
                all[all.len() - versions.len()..],
                "seed {seed}: the newest versions of {k:?}"
            );
        }
    }
}

/// A policy reads back as it was recorded, before and after a reopen: a `NewerThan` duration
/// past `u64::MAX` nanoseconds is kept as that (found by an API probe: `Duration::MAX` read back
/// as set, then as 584 years after a reopen).
#[test]
fn a_retention_policy_reads_back_the_same_after_a_reopen() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, Durability::Strict);
        let longest = Retention::NewerThan(Duration::from_nanos(u64::MAX));
        for (set, expected) in [
            (Retention::NewerThan(Duration::MAX), longest),
            (
                Retention::NewerThan(Duration::from_nanos(u64::MAX)),
                longest,
            ),
            (
                Retention::NewerThan(Duration::from_millis(1500)),
                Retention::NewerThan(Duration::from_millis(1500)),
            ),
            (
                Retention::LastVersions(NonZeroU32::MAX),
                Retention::LastVersions(NonZeroU32::MAX),
            ),
        ] {
            let db = open(dir.path(), o.clone());
            db.set_retention(set).unwrap();
            assert_eq!(db.retention(), expected, "{io}: {set:?} as set");
            db.close().unwrap();
            let db = open(dir.path(), o.clone());
            assert_eq!(db.retention(), expected, "{io}: {set:?} after a reopen");
            db.close().unwrap();
        }
    });
}

/// Sets `Retention::NewerThan(window)` on `db`, writes three versions of `k` 2 ms apart (commit
/// times are sampled at most once a millisecond: each is), then — before `between`, e.g. a
/// checkpoint — waits until they are older than the window (a wait for the clock, not for a
/// thread) and writes a fourth. Returns the three LSNs and the fourth.
fn versions_aged_past(db: &Db, window: Duration, between: impl FnOnce()) -> (Vec<Lsn>, Lsn) {
    db.set_retention(Retention::NewerThan(window)).unwrap();
    let old: Vec<Lsn> = (0..3u8)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(2));
            db.put(b"k", &[i]).unwrap()
        })
        .collect();
    between();
    std::thread::sleep(2 * window + Duration::from_millis(200));
    (old, db.put(b"k", b"new").unwrap())
}

/// `db`'s floor is at least `floor`, it refuses a read at `old` below it, and it reads `newest`.
fn assert_floor_kept(db: &Db, floor: Lsn, old: Lsn, newest: Lsn, what: &str) {
    let now = db.stats().history_floor;
    assert!(
        now >= floor,
        "{what}: the floor moved back ({now} < {floor})"
    );
    assert!(
        matches!(db.get_at(b"k", old), Err(Error::HistoryTrimmed { .. })),
        "{what}: a read below the floor was answered"
    );
    assert_eq!(db.get_at(b"k", newest).unwrap().unwrap().as_bytes(), b"new");
}

/// Trims `db` (in `dir`) under `NewerThan`, checks that the floor moved over `old`'s versions
/// and is kept (`assert_floor_kept`), then that a crash copy of the files, opened with `o`, keeps
/// it too. Returns the floor.
fn trim_and_crash(
    db: &Db,
    dir: &std::path::Path,
    o: Options,
    old: &[Lsn],
    newest: Lsn,
    io: IoChoice,
) -> Lsn {
    db.trim_history().unwrap();
    let floor = db.stats().history_floor;
    assert!(
        floor >= old[2],
        "{io}: the trim moved the floor over the old versions"
    );
    assert_floor_kept(db, floor, old[1], newest, io_name(io));
    // A crash now (the files as they are): the floor is there already.
    let crashed = crash_copy(dir);
    let copy = open(crashed.path(), o);
    assert_floor_kept(
        &copy,
        floor,
        old[1],
        newest,
        &format!("{io}, after a crash"),
    );
    floor
}

/// `NewerThan`: a trim after the last checkpoint that raised the floor over versions the
/// checkpoint holds (their commit times are no longer in the log, so recovery cannot recompute
/// that floor) is still in force after a crash and after a clean close and reopen — the trim
/// records it in the MANIFEST before it publishes it. Found by a fresh-user pass (the clean
/// close) and the crash runner (the crash): reads refused before the restart were answered
/// after it.
#[test]
fn a_newer_than_floor_raised_after_the_checkpoint_survives_a_crash_and_a_clean_close() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, Durability::Strict);
        let db = open(dir.path(), o.clone());
        let (old, newest) = versions_aged_past(&db, Duration::from_secs(1), || {
            db.checkpoint().unwrap();
        });
        let floor = trim_and_crash(&db, dir.path(), o.clone(), &old, newest, io);
        db.close().unwrap();
        let db = open(dir.path(), o);
        assert_floor_kept(&db, floor, old[1], newest, &format!("{io}, after a close"));
        db.close().unwrap();
    });
}

/// A trim whose `NewerThan` floor the MANIFEST cannot record (a full disk) fails with the I/O
/// error and changes nothing: reads it would have refused are still answered. Once the MANIFEST
/// can be written again, the next trim records the floor and then refuses them, also after a
/// crash — with a checkpoint below the floor, so that recovery could not derive it from the log
/// (a retry that took the failed update's floor for recorded published it unrecorded: the crash
/// brought the floor back to 0; found in review).
#[test]
fn a_trim_that_cannot_record_its_floor_changes_nothing() {
    on_each_path(|io| {
        let dir = tempdir();
        let full = Arc::new(AtomicBool::new(false));
        let vfs = FullForManifests::new(real_vfs(io), full.clone());
        let o = opts(io, Durability::Strict).vfs(vfs.clone());
        let db = open(dir.path(), o.clone());
        let (old, newest) = versions_aged_past(&db, Duration::from_millis(300), || {
            db.checkpoint().unwrap();
        });
        let before = db.stats().history_floor;
        assert!(before < old[1], "{io}: nothing trimmed yet");
        full.store(true, Ordering::SeqCst);
        match db.trim_history() {
            Err(e @ Error::Io { .. }) => assert!(is_enospc(&e), "{io}: {e}"),
            other => panic!("{io}: the trim succeeded without its MANIFEST: {other:?}"),
        }
        assert_eq!(vfs.refused.load(Ordering::SeqCst), 1);
        assert_eq!(
            db.stats().history_floor,
            before,
            "{io}: the floor did not move"
        );
        assert_eq!(db.get_at(b"k", old[1]).unwrap().unwrap().as_bytes(), [1]);
        // Space again: the next trim records the floor, then refuses the reads below it.
        full.store(false, Ordering::SeqCst);
        trim_and_crash(
            &db,
            dir.path(),
            opts(io, Durability::Strict),
            &old,
            newest,
            io,
        );
        db.close().unwrap();
    });
}

/// `set_retention` holds the retention lock while its own commit becomes visible, which waits
/// for every commit before it to be published. A commit that took its LSN before it and was
/// still on its way to publication must not need that lock: committers once took it to record
/// their time samples under `NewerThan`, between their LSN and their publication, and the two
/// waited for each other forever (found in review). Here a `put` is held at its round's durable
/// write (a gate in the disk) until `set_retention` is waiting, holding the lock, for its own
/// sync; released, both must return.
#[test]
fn set_retention_does_not_wait_for_a_commit_that_waits_for_it() {
    on_each_path(|io| {
        let dir = tempdir();
        let gate = Arc::new(WriteGate::default());
        let vfs = GatedWrites::new(real_vfs(io), gate.clone());
        let db = Arc::new(open(dir.path(), opts(io, Durability::Strict).vfs(vfs)));
        db.set_retention(Retention::NewerThan(Duration::from_secs(3600)))
            .unwrap();
        let before = db.put(b"k", b"0").unwrap();
        gate.arm();
        let (done_tx, done) = std::sync::mpsc::channel();
        let writer = {
            let (db, done_tx) = (db.clone(), done_tx.clone());
            std::thread::spawn(move || {
                let r = db.put(b"k", b"1");
                let _ = done_tx.send("put");
                r
            })
        };
        // The put has its LSN and waits, unpublished, in its round's write.
        gate.wait_holding();
        let setter = {
            let db = db.clone();
            std::thread::spawn(move || {
                let r = db.set_retention(Retention::NewerThan(Duration::from_secs(7200)));
                let _ = done_tx.send("set_retention");
                r
            })
        };
        // set_retention holds the retention lock and waits for its own sync (not the put's
        // thread: it blocks the same way when the log thread, not the put, writes its round).
        gate.wait_durable_wait_of(setter.thread().id());
        gate.release();
        // A hang is the failure: bounded so that it fails instead of stalling the suite.
        for _ in 0..2 {
            let who = done.recv_timeout(Duration::from_secs(120));
            assert!(
                who.is_ok(),
                "{}: put and set_retention wait for each other",
                io_name(io)
            );
        }
        let put = writer.join().unwrap().unwrap();
        let set = setter.join().unwrap().unwrap();
        assert!(before < put && put < set, "{before} < {put} < {set}");
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(
            db.retention(),
            Retention::NewerThan(Duration::from_secs(7200))
        );
        // History is kept from the new policy's commit on (its floor: the LSN before it).
        assert_eq!(db.get_at(b"k", put).unwrap().as_deref(), Some(&b"1"[..]));
    });
}

/// A truncating recovery that cuts the log below a floor a `NewerThan` trim recorded in the
/// MANIFEST (above the checkpoint: such a trim records floors up to the durable LSN) leaves the
/// state it cut to readable: the floor stops at the last LSN recovered. Found by the crash
/// runner's `corrupt` campaign (seed 11, `--replay 11:2.1:0`): a bit flip in the header of the
/// segment after the checkpoint, and every read of what the cut left was refused with
/// `HistoryTrimmed`.
#[test]
fn a_truncating_cut_below_a_recorded_floor_leaves_the_state_readable() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, Durability::Strict);
        let db = open(dir.path(), o.clone());
        db.put(b"a", b"kept").unwrap();
        let ckpt = db.checkpoint().unwrap();
        let (old, _newest) = versions_aged_past(&db, Duration::from_millis(300), || {});
        db.trim_history().unwrap();
        let floor = db.stats().history_floor;
        assert!(
            floor > ckpt.lsn && floor >= old[2],
            "{io}: the floor ({floor}) is above the checkpoint ({})",
            ckpt.lsn
        );
        // A crash now, and the header of the log's segment after the checkpoint damaged.
        let crashed = crash_copy(dir.path());
        drop(db);
        let last = segment_files(crashed.path()).pop().expect("a log segment");
        let path = crashed.path().join(last);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[42] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            matches!(
                Db::open(crashed.path(), o.clone()),
                Err(Error::Corruption { .. })
            ),
            "{io}: a strict recovery refuses the damage"
        );
        let cut = open(
            crashed.path(),
            o.recovery(ringlog_db::RecoveryMode::TruncateAtCorruption),
        );
        assert!(cut.recovery_stats().truncated_at.is_some(), "{io}: cut");
        assert_eq!(cut.last_lsn(), ckpt.lsn, "{io}: cut to the checkpoint");
        assert!(cut.stats().history_floor <= ckpt.lsn, "{io}: floor");
        let snap = cut.snapshot();
        let all: Vec<_> = snap
            .iter()
            .unwrap()
            .map(|e| e.map(|(k, v)| (k.to_vec(), v.as_bytes().to_vec())))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{io}: the cut state is not readable: {e}"));
        assert_eq!(all, vec![(b"a".to_vec(), b"kept".to_vec())], "{io}");
        // Commits go on above every LSN handed out before the crash.
        assert!(cut.put(b"b", b"after").unwrap() > old[2], "{io}");
    });
}

/// The same across a checkpoint: the log's first retention entry after it follows the
/// checkpoint's policy, not `Snapshots` — recovery raised the floor to that entry as if no
/// history had been kept before it (a review found `get_at` of a version the first policy kept
/// refused after the reopen, and the version gone at the next checkpoint). After a checkpoint
/// taken under `Snapshots`, the first history-keeping entry still raises the floor to itself.
#[test]
fn a_policy_set_again_after_a_checkpoint_keeps_what_the_last_one_kept() {
    on_each_path(|io| {
        for second in [
            Retention::All,
            Retention::LastVersions(std::num::NonZeroU32::new(100).unwrap()),
            Retention::NewerThan(std::time::Duration::from_secs(3600)),
        ] {
            let dir = tempdir();
            let o = opts(io, Durability::Strict);
            let db = open(dir.path(), o.clone());
            db.put(b"k", b"before").unwrap();
            db.set_retention(Retention::All).unwrap();
            let first = db.put(b"k", b"v1").unwrap();
            db.put(b"k", b"v2").unwrap();
            db.checkpoint().unwrap();
            db.set_retention(second).unwrap();
            db.put(b"k", b"v3").unwrap();
            let floor = db.stats().history_floor;
            db.close().unwrap();
            drop(db);
            let db = open(dir.path(), o.clone());
            assert_eq!(
                db.get_at(b"k", first).unwrap().as_deref(),
                Some(&b"v1"[..]),
                "{io} {second:?}: floor {}",
                db.stats().history_floor
            );
            assert_eq!(db.stats().history_floor, floor, "{io} {second:?}");
            // A checkpoint of that state and a reopen keep it too.
            db.checkpoint().unwrap();
            db.close().unwrap();
            drop(db);
            let db = open(dir.path(), o.clone());
            assert_eq!(
                db.get_at(b"k", first).unwrap().as_deref(),
                Some(&b"v1"[..]),
                "{io} {second:?}: after a second checkpoint"
            );
            db.close().unwrap();
        }
        // After a checkpoint under Snapshots: history from the entry on only.
        let dir = tempdir();
        let o = opts(io, Durability::Strict);
        let db = open(dir.path(), o.clone());
        let before = db.put(b"k", b"1").unwrap();
        db.checkpoint().unwrap();
        let all = db.set_retention(Retention::All).unwrap();
        db.put(b"k", b"2").unwrap();
        let floor = db.stats().history_floor;
        assert_eq!(floor, all - 1, "{io}");
        db.close().unwrap();
        drop(db);
        let db = open(dir.path(), o);
        assert_eq!(
            db.stats().history_floor,
            floor,
            "{io}: the same floor after a restart"
        );
        assert!(matches!(
            db.get_at(b"k", before.saturating_sub(1)),
            Err(Error::HistoryTrimmed { .. })
        ));
        db.close().unwrap();
    });
}

/// Setting a history-keeping policy again keeps what the previous one kept, in the running
/// database and after a restart (every such entry raised the floor to the LSN before it, so an
/// application setting `All` at every open lost access to all its history each time — a
/// review's find). After `Snapshots`, the floor still rises to the new entry.
#[test]
fn setting_a_history_keeping_policy_again_keeps_what_the_last_one_kept() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, Durability::Strict);
        let db = open(dir.path(), o.clone());
        db.set_retention(Retention::All).unwrap();
        let l1 = db.put(b"k", b"1").unwrap();
        db.put(b"k", b"2").unwrap();
        db.set_retention(Retention::All).unwrap();
        assert_eq!(db.get_at(b"k", l1).unwrap().as_deref(), Some(&b"1"[..]));
        db.set_retention(Retention::NewerThan(std::time::Duration::from_secs(
            7 * 86400,
        )))
        .unwrap();
        assert_eq!(db.get_at(b"k", l1).unwrap().as_deref(), Some(&b"1"[..]));
        db.close().unwrap();
        drop(db);
        let db = open(dir.path(), o.clone());
        assert_eq!(
            db.get_at(b"k", l1).unwrap().as_deref(),
            Some(&b"1"[..]),
            "{io}: after the reopen"
        );
        db.set_retention(Retention::All).unwrap();
        assert_eq!(db.get_at(b"k", l1).unwrap().as_deref(), Some(&b"1"[..]));
        // Back to Snapshots, then All: history from the new entry on only.
        db.set_retention(Retention::Snapshots).unwrap();
        let l3 = db.put(b"k", b"3").unwrap();
        let all = db.set_retention(Retention::All).unwrap();
        assert_eq!(all, l3 + 1);
        assert_eq!(db.get_at(b"k", l3).unwrap().as_deref(), Some(&b"3"[..]));
        assert!(matches!(
            db.get_at(b"k", l3 - 1),
            Err(Error::HistoryTrimmed { earliest_retained, .. }) if earliest_retained == l3
        ));
        let floor = db.stats().history_floor;
        db.close().unwrap();
        drop(db);
        let db = open(dir.path(), o);
        assert_eq!(
            db.stats().history_floor,
            floor,
            "{io}: the same floor after a restart"
        );
        assert_eq!(db.get_at(b"k", l3).unwrap().as_deref(), Some(&b"3"[..]));
        assert!(matches!(
            db.get_at(b"k", l3 - 1),
            Err(Error::HistoryTrimmed { .. })
        ));
        db.close().unwrap();
    });
}

// ------------------------------------------------------------------------------------------
// Retention edges a mutation audit found unpinned (session 36): where `Db::history` stops, its
// inclusive end, and the floor a refused scan names.
// ------------------------------------------------------------------------------------------

/// A key `Db::history` listed, with its versions as (LSN, is a value), newest first.
type Listed = (Vec<u8>, Vec<(u64, bool)>);

/// Each listed key with its versions, newest first.
fn listed_versions<R: std::ops::RangeBounds<&'static [u8]>>(db: &Db, range: R) -> Vec<Listed> {
    db.history::<&[u8], _>(range)
        .unwrap()
        .map(|k| {
            let k = k.unwrap();
            let v = k.versions.iter().map(|(l, v)| (*l, v.is_some())).collect();
            (k.key.to_vec(), v)
        })
        .collect()
}

/// `Db::history` lists each key down to the version visible at the floor, and no further: when
/// that version's LSN is the floor itself (here a history-keeping policy set after three
/// untrimmed writes puts the floor at the third), the two older versions still in memory are
/// not listed — reads at their LSNs are refused as trimmed.
#[test]
fn history_stops_at_the_version_whose_lsn_is_the_floor() {
    let db = Db::in_memory();
    let a = db.put(b"k", b"1").unwrap();
    let b = db.put(b"k", b"2").unwrap();
    let c = db.put(b"k", b"3").unwrap();
    db.set_retention(Retention::All).unwrap();
    assert_eq!(
        db.stats().history_floor,
        c,
        "the floor is the LSN before the policy's"
    );
    let d = db.put(b"k", b"4").unwrap();
    assert!(matches!(
        db.get_at(b"k", b),
        Err(Error::HistoryTrimmed { .. })
    ));
    assert!(a < b);
    assert_eq!(
        listed_versions(&db, ..),
        [(b"k".to_vec(), vec![(d, true), (c, true)])],
        "versions below the floor's are not retained"
    );
}

/// A key whose version visible at the floor is a delete at exactly the floor's LSN, with no
/// newer version, is not listed by `Db::history` (a delete at or below the floor is the same as
/// no version) — nor is its older value, which reads refuse as trimmed.
#[test]
fn history_omits_a_key_deleted_at_exactly_the_floor() {
    let db = Db::in_memory();
    let put = db.put(b"gone", b"1").unwrap();
    db.put(b"kept", b"1").unwrap();
    let del = db.delete(b"gone").unwrap();
    db.set_retention(Retention::All).unwrap();
    assert_eq!(db.stats().history_floor, del);
    assert!(matches!(
        db.get_at(b"gone", put),
        Err(Error::HistoryTrimmed { .. })
    ));
    let keys: Vec<Vec<u8>> = listed_versions(&db, ..)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        [b"kept".to_vec()],
        "a delete at the floor lists as no version"
    );
}

/// `Db::history` with an inclusive end bound lists the end key; an exclusive one does not.
#[test]
fn history_includes_an_inclusive_end_key() {
    let db = Db::in_memory();
    for k in [b"a", b"b", b"c"] {
        db.put(k, b"1").unwrap();
    }
    let keys = |v: Vec<Listed>| -> Vec<Vec<u8>> { v.into_iter().map(|(k, _)| k).collect() };
    assert_eq!(
        keys(listed_versions(&db, ..=&b"b"[..])),
        [b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(keys(listed_versions(&db, ..&b"b"[..])), [b"a".to_vec()]);
    assert_eq!(
        keys(listed_versions(&db, &b"b"[..]..=&b"c"[..])),
        [b"b".to_vec(), b"c".to_vec()]
    );
}

/// A scan at an LSN below the floor is refused with `HistoryTrimmed`, whose
/// `earliest_retained` is the floor (the oldest LSN reads are answered at), as `get_at`'s is.
#[test]
fn a_scan_below_the_floor_names_the_floor_as_earliest_retained() {
    let db = Db::in_memory();
    let a = db.put(b"k", b"1").unwrap();
    db.put(b"k", b"2").unwrap();
    let c = db.put(b"k", b"3").unwrap();
    db.set_retention(Retention::All).unwrap();
    let floor = db.stats().history_floor;
    assert_eq!(floor, c);
    match db.range_at::<&[u8], _>(.., a) {
        Err(Error::HistoryTrimmed {
            requested,
            earliest_retained,
        }) => assert_eq!((requested, earliest_retained), (a, floor)),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a scan below the floor was answered"),
    }
    match db.get_at(b"k", a) {
        Err(Error::HistoryTrimmed {
            requested,
            earliest_retained,
        }) => assert_eq!((requested, earliest_retained), (a, floor)),
        other => panic!("{other:?}"),
    }
    // At the floor itself: answered.
    assert_eq!(db.range_at::<&[u8], _>(.., floor).unwrap().count(), 1);
}
