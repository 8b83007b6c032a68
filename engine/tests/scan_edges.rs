//! Scan and snapshot edges a mutation audit (session 35) found untested: a reverse scan from an
//! excluded start, a snapshot prefix next to the key just past it, a cloned snapshot. Each fails
//! on one planted mutation that every other test let through. Deterministic, in memory.

use std::ops::Bound;
use std::sync::Arc;

use ringlog_db::{Db, Value};

/// The keys of a scan's entries, in the order it yields them.
fn scan_keys(scan: impl Iterator<Item = ringlog_db::Result<(Arc<[u8]>, Value)>>) -> Vec<Vec<u8>> {
    scan.map(|e| e.unwrap().0.to_vec()).collect()
}

/// A reverse scan leaves out an excluded start bound: `(Excluded(a), ..)` read backwards ends
/// above `a`, at the newest LSN, at an explicit LSN and through a snapshot, and when both ends
/// meet there. (Mutation 04: `above_lo` with `key >= l` for an excluded start: a reverse scan
/// yielded the start key; every existing test read excluded starts forwards only.)
#[test]
fn a_reverse_scan_leaves_out_an_excluded_start() {
    let db = Db::in_memory();
    db.put(b"a", b"1").unwrap();
    db.put(b"b", b"2").unwrap();
    let lsn = db.put(b"c", b"3").unwrap();
    db.put(b"a", b"newer").unwrap();
    let snap = db.snapshot();
    let range = || (Bound::Excluded(&b"a"[..]), Bound::Unbounded::<&[u8]>);
    let want = vec![b"c".to_vec(), b"b".to_vec()];
    assert_eq!(
        scan_keys(db.range::<&[u8], _>(range()).unwrap().rev()),
        want
    );
    assert_eq!(
        scan_keys(db.range_at::<&[u8], _>(range(), lsn).unwrap().rev()),
        want
    );
    assert_eq!(
        scan_keys(snap.range::<&[u8], _>(range()).unwrap().rev()),
        want
    );
    // An inclusive end too: (a, c] backwards.
    let closed = (Bound::Excluded(&b"a"[..]), Bound::Included(&b"c"[..]));
    assert_eq!(scan_keys(db.range::<&[u8], _>(closed).unwrap().rev()), want);
    // Both ends: one from the front, then the back runs into it.
    let mut s = db.range::<&[u8], _>(range()).unwrap();
    assert_eq!(&*s.next().unwrap().unwrap().0, b"b");
    assert_eq!(&*s.next_back().unwrap().unwrap().0, b"c");
    assert!(s.next_back().is_none());
    // Only the excluded key in range: nothing, from either end.
    assert_eq!(
        scan_keys(
            db.range::<&[u8], _>((Bound::Excluded(&b"a"[..]), Bound::Excluded(&b"b"[..])))
                .unwrap()
                .rev()
        ),
        Vec::<Vec<u8>>::new()
    );
}

/// `Snapshot::prefix` (which computes its own end bound, apart from `Db::prefix`) leaves out the
/// key just past the prefix — `prefix_end(p)` itself, also for a prefix ending in 0xFF — forwards
/// and backwards. (Mutation 05b: the snapshot's end bound `Included`: `snap.prefix(b"ab")`
/// returned `ac`; the existing snapshot prefix reads never had a key equal to the end bound.)
#[test]
fn a_snapshot_prefix_leaves_out_the_key_just_past_it() {
    let db = Db::in_memory();
    for k in [
        &b"aa"[..],
        b"ab",
        b"ab\x00",
        b"ab\xff",
        b"ac",
        b"a\xff",
        b"a\xff\x01",
        b"b",
    ] {
        db.put(k, k).unwrap();
    }
    let snap = db.snapshot();
    db.put(b"ab\x01", b"after the snapshot").unwrap();
    let want_ab = vec![b"ab".to_vec(), b"ab\x00".to_vec(), b"ab\xff".to_vec()];
    assert_eq!(scan_keys(snap.prefix(b"ab").unwrap()), want_ab);
    let mut back = scan_keys(snap.prefix(b"ab").unwrap().rev());
    back.reverse();
    assert_eq!(back, want_ab);
    // A prefix ending in 0xFF: its end is `b`, which is left out.
    let want_ff = vec![b"a\xff".to_vec(), b"a\xff\x01".to_vec()];
    assert_eq!(scan_keys(snap.prefix(b"a\xff").unwrap()), want_ff);
    let mut back = scan_keys(snap.prefix(b"a\xff").unwrap().rev());
    back.reverse();
    assert_eq!(back, want_ff);
    // The same through the database's own prefix scans, at the snapshot's LSN.
    assert_eq!(scan_keys(db.prefix_at(b"ab", snap.lsn()).unwrap()), want_ab);
    assert_eq!(
        scan_keys(db.prefix_at(b"a\xff", snap.lsn()).unwrap()),
        want_ff
    );
}

/// A clone of a snapshot reads at the original's LSN, and holds its own pin there: after the
/// original is dropped and history is trimmed, the clone still reads the old version (points and
/// scans), and it is counted as a live snapshot until dropped. (Mutation 09: `Snapshot::clone`
/// pinned the visible LSN instead of the original's: the clone read the newest state; no test
/// cloned a snapshot.)
#[test]
fn a_cloned_snapshot_reads_and_pins_the_originals_lsn() {
    let db = Db::in_memory();
    db.put(b"k", b"old").unwrap();
    db.put(b"gone", b"x").unwrap();
    let snap = db.snapshot();
    db.put(b"k", b"new").unwrap();
    db.delete(b"gone").unwrap();
    let clone = snap.clone();
    assert_eq!(clone.lsn(), snap.lsn());
    assert_eq!(db.stats().snapshots, 2);
    drop(snap);
    assert_eq!(db.stats().snapshots, 1);
    // Retention::Snapshots (the default): the trim keeps only what the clone needs.
    db.trim_history().unwrap();
    assert!(db.stats().history_floor <= clone.lsn());
    assert_eq!(clone.get(b"k").unwrap().as_deref(), Some(&b"old"[..]));
    let all: Vec<(Vec<u8>, Vec<u8>)> = clone
        .iter()
        .unwrap()
        .map(|e| e.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        all,
        vec![
            (b"gone".to_vec(), b"x".to_vec()),
            (b"k".to_vec(), b"old".to_vec())
        ]
    );
    drop(clone);
    assert_eq!(db.stats().snapshots, 0);
}
