//! Runs: what each open of a database committed, read back from the log — listed, replayed and
//! compared across restarts, through checkpoints and compaction (which trim a run's beginning,
//! reported, never skipped), after a crash (only whole durable transactions), on both I/O paths.

mod common;

use common::*;
use ringlog_db::{Change, Db, Durability, Error, Options, RunInfo, Written};

type Txns = Vec<(u64, Vec<(Vec<u8>, Option<Vec<u8>>)>)>;

fn changes(db: &Db, run: u64) -> Vec<Result<Change, Error>> {
    db.run_changes(run).unwrap().collect()
}

fn as_txns(c: &[Result<Change, Error>]) -> Txns {
    c.iter()
        .filter_map(|c| c.as_ref().ok())
        .map(|c| {
            let w = c
                .writes
                .iter()
                .map(|(k, v)| (k.to_vec(), v.as_ref().map(|v| v.to_vec())))
                .collect();
            (c.lsn, w)
        })
        .collect()
}

fn run(runs: &[RunInfo], id: u64) -> &RunInfo {
    runs.iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("run {id} not in {runs:?}"))
}

#[test]
fn runs_list_replay_and_diff_across_restarts() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, Durability::BUFFERED);
        let db = open(dir.path(), o.clone());
        let a = db.run_id();
        db.label_run("first").unwrap();
        let mut want_a: Txns = Vec::new();
        let l = db.put(b"x", b"1").unwrap();
        want_a.push((l, vec![(b"x".to_vec(), Some(b"1".to_vec()))]));
        let mut tx = db.begin();
        tx.put(b"y", b"1").unwrap();
        tx.delete(b"z").unwrap();
        tx.put(b"y", b"2").unwrap();
        let l = tx.commit().unwrap();
        want_a.push((
            l,
            vec![
                (b"y".to_vec(), Some(b"1".to_vec())),
                (b"z".to_vec(), None),
                (b"y".to_vec(), Some(b"2".to_vec())),
            ],
        ));
        db.label_run("first, renamed").unwrap();
        // An empty transaction and an aborted one write nothing.
        db.begin().commit().unwrap();
        let mut t = db.begin();
        t.put(b"never", b"!").unwrap();
        t.abort();
        db.close().unwrap();

        let db = open(dir.path(), o.clone());
        let b = db.run_id();
        assert!(b > a);
        let l = db.put(b"x", b"2").unwrap();
        let m = db.delete(b"y").unwrap();
        db.put(b"w", b"new").unwrap();
        db.put(b"w", b"new").unwrap();
        db.set_retention(ringlog_db::Retention::All).unwrap();

        let runs = db.runs().unwrap();
        assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a, b]);
        let ra = run(&runs, a);
        assert_eq!(ra.label.as_deref(), Some("first, renamed"));
        assert_eq!(ra.commits, 2);
        assert!(ra.complete);
        assert!(ra.first_commit_ns <= ra.last_commit_ns && ra.first_commit_ns > 0);
        let rb = run(&runs, b);
        assert_eq!((rb.label.as_deref(), rb.commits), (None, 4));
        assert_eq!(rb.first_lsn, l);
        assert!(rb.last_lsn > m, "the retention entry is the run's too");
        let got = changes(&db, a);
        assert_eq!(as_txns(&got), want_a);
        assert_eq!(got.len(), 2, "no error item: the run is whole");
        let got = as_txns(&changes(&db, b));
        assert_eq!(got.len(), 4);
        assert_eq!(got[1], (m, vec![(b"y".to_vec(), None)]));
        // A run that has not started yields nothing.
        assert_eq!(changes(&db, b + 5).len(), 0);

        let diff = db.diff_runs(a, b).unwrap();
        let d: Vec<(&[u8], &Written, &Written)> =
            diff.iter().map(|d| (&*d.key, &d.a, &d.b)).collect();
        assert_eq!(
            d,
            vec![
                (
                    &b"w"[..],
                    &Written::Nothing,
                    &Written::Put(b"new"[..].into())
                ),
                (
                    &b"x"[..],
                    &Written::Put(b"1"[..].into()),
                    &Written::Put(b"2"[..].into())
                ),
                (&b"y"[..], &Written::Put(b"2"[..].into()), &Written::Deleted),
                (&b"z"[..], &Written::Deleted, &Written::Nothing),
            ]
        );
        assert!(db.diff_runs(a, a).unwrap().is_empty());
    });
}

#[test]
fn compaction_trims_a_run_and_says_so() {
    on_each_path(|io| {
        let dir = tempdir();
        // Small segments, no checkpoint but the ones asked for.
        let o = opts(io, Durability::BUFFERED).checkpoint_on_close(false);
        let db = open(dir.path(), o.clone());
        let a = db.run_id();
        let value = vec![7u8; 2000];
        for i in 0..300u32 {
            db.put(format!("k{i}").as_bytes(), &value).unwrap();
        }
        // A checkpoint starts a new segment with the next transaction: the log from there on
        // is what an open reads; the segments before it are compacted away.
        db.checkpoint().unwrap();
        let in_checkpoint = db.put(b"after", b"1").unwrap();
        db.checkpoint().unwrap();
        let after = db.put(b"after", b"2").unwrap();
        let later = db.put(b"after", b"3").unwrap();
        let runs = db.runs().unwrap();
        assert_eq!(runs.len(), 1);
        assert!(!runs[0].complete, "{runs:?}");
        let got = changes(&db, a);
        match &got[0] {
            Err(Error::HistoryTrimmed {
                requested,
                earliest_retained,
            }) => {
                assert_eq!(*requested, in_checkpoint);
                assert_eq!(*earliest_retained, after);
            }
            other => panic!("the trimmed beginning comes first, got {other:?}"),
        }
        let lsns: Vec<u64> = as_txns(&got).iter().map(|t| t.0).collect();
        assert_eq!(lsns, vec![after, later]);
        db.close().unwrap();
        // A later run compacts run `a` away entirely.
        let db = open(dir.path(), o);
        let b = db.run_id();
        for round in 0..3u32 {
            for i in 0..200u32 {
                db.put(format!("n{i}").as_bytes(), &round.to_le_bytes())
                    .unwrap();
            }
            db.checkpoint().unwrap();
        }
        db.put(b"last", b"1").unwrap();
        let runs = db.runs().unwrap();
        assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![b]);
        assert!(matches!(
            db.run_changes(a),
            Err(Error::HistoryTrimmed { .. })
        ));
        assert!(matches!(
            db.diff_runs(a, b),
            Err(Error::HistoryTrimmed { .. })
        ));
        // The current run's own beginning is gone too: its changes start with the error.
        assert!(matches!(
            changes(&db, b)[0],
            Err(Error::HistoryTrimmed { .. })
        ));
    });
}

#[test]
fn after_a_crash_a_run_holds_only_its_durable_transactions() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, buffered_forever(usize::MAX));
        let db = open(dir.path(), o.clone());
        let a = db.run_id();
        let mut durable = Vec::new();
        for i in 0..20u32 {
            let mut tx = db.begin();
            tx.put(format!("a{i}").as_bytes(), b"1").unwrap();
            tx.put(format!("b{i}").as_bytes(), b"2").unwrap();
            durable.push(tx.commit().unwrap());
        }
        db.sync().unwrap();
        for i in 0..5u32 {
            db.put(format!("lost{i}").as_bytes(), b"x").unwrap();
        }
        let crashed = crash_copy(dir.path());
        db.close().unwrap();
        let db = open(crashed.path(), o);
        let got = as_txns(&changes(&db, a));
        assert_eq!(got.iter().map(|t| t.0).collect::<Vec<_>>(), durable);
        assert!(got.iter().all(|t| t.1.len() == 2));
        let b = db.run_id();
        db.put(b"new", b"run").unwrap();
        let runs = db.runs().unwrap();
        assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a, b]);
        assert_eq!(run(&runs, a).commits, 20);
    });
}

#[test]
fn an_in_memory_database_has_no_log_of_runs() {
    let db = Db::in_memory();
    assert!(matches!(db.runs(), Err(Error::DurabilityUnavailable(_))));
    assert!(matches!(
        db.label_run("x"),
        Err(Error::DurabilityUnavailable(_))
    ));
    let db = Db::in_memory_with_options(Options::default()).unwrap();
    assert!(matches!(
        db.run_changes(1),
        Err(Error::DurabilityUnavailable(_))
    ));
}

/// Right after a checkpoint, before the next commit creates the segment it made the log's
/// first, no segment of the log is left: the runs before are trimmed, not empty.
#[test]
fn right_after_a_checkpoint_the_runs_before_it_are_trimmed() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, Durability::BUFFERED).checkpoint_on_close(false);
        let db = open(dir.path(), o.clone());
        let a = db.run_id();
        db.put(b"k", b"1").unwrap();
        db.close().unwrap();
        let db = open(dir.path(), o);
        let b = db.run_id();
        let l = db.put(b"k", b"2").unwrap();
        let info = db.checkpoint().unwrap();
        assert_eq!(info.lsn, l);
        assert!(db.runs().unwrap().is_empty());
        assert!(matches!(
            db.run_changes(a),
            Err(Error::HistoryTrimmed { .. })
        ));
        match db.diff_runs(a, b) {
            Err(Error::HistoryTrimmed {
                requested,
                earliest_retained,
            }) => assert_eq!((requested, earliest_retained), (l, l + 1)),
            other => panic!("expected HistoryTrimmed, got {other:?}"),
        }
        let m = db.put(b"k", b"3").unwrap();
        let got = changes(&db, b);
        assert!(matches!(got[0], Err(Error::HistoryTrimmed { .. })));
        assert_eq!(
            as_txns(&got).iter().map(|t| t.0).collect::<Vec<_>>(),
            vec![m]
        );
    });
}

/// A run all of whose commits a checkpoint compacted away (right after them) has changes the log
/// no longer holds: `run_changes` says `HistoryTrimmed`, never an empty list as for a run that
/// wrote nothing (found in review).
#[test]
fn the_current_run_wholly_compacted_is_trimmed_not_empty() {
    let dir = tempdir();
    let o = opts(ringlog_db::IoChoice::Portable, Durability::BUFFERED).checkpoint_on_close(false);
    let db = open(dir.path(), o);
    let run = db.run_id();
    let l = db.put(b"k", b"1").unwrap();
    let info = db.checkpoint().unwrap();
    assert_eq!(info.lsn, l);
    match db.run_changes(run) {
        Err(Error::HistoryTrimmed { .. }) => {}
        Ok(items) => {
            let items: Vec<_> = items.collect();
            panic!("run {run} committed LSN {l}, compacted away, yet run_changes gave {items:?}");
        }
        Err(e) => panic!("unexpected error {e:?}"),
    }
    // A run that wrote nothing still has no changes.
    db.close().unwrap();
    drop(db);
    let db = open(
        dir.path(),
        opts(ringlog_db::IoChoice::Portable, Durability::BUFFERED),
    );
    let changes: Vec<_> = db.run_changes(db.run_id()).unwrap().collect();
    assert!(changes.is_empty(), "{changes:?}");
}

/// A run id is never handed out twice: a checkpoint records the run's id as the MANIFEST's run
/// floor, so that a crash right after it (the log that named the run compacted away, nothing
/// committed since) still makes the next open start a new run above it. A mutation audit found
/// no test noticing a checkpoint that kept the previous run floor (the next run reused id 1).
#[test]
fn run_ids_are_never_reused_after_a_checkpoint_and_a_crash() {
    for io in paths() {
        let dir = tempdir();
        let o = opts(io, Durability::Strict);
        let db = open(dir.path(), o.clone());
        let first = db.run_id();
        db.put(b"k", b"1").unwrap();
        db.checkpoint().unwrap();
        let copy = crash_copy(dir.path());
        db.close().unwrap();
        drop(db);
        let db = open(copy.path(), o);
        let second = db.run_id();
        assert!(
            second > first,
            "{io:?}: run id {second} after a crash, the run before was {first}"
        );
        db.put(b"k", b"2").unwrap();
        let ids: Vec<u64> = db.runs().unwrap().iter().map(|r| r.id).collect();
        assert_eq!(
            ids.iter().filter(|&&i| i == second).count(),
            1,
            "{io:?}: {ids:?}"
        );
        db.close().unwrap();
    }
}
