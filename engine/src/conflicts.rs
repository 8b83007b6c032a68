//! Conflict detection for optimistic transactions: the keys recent commits wrote, kept only while
//! a tracked transaction lives, and validation inside the commit sequencer.
//!
//! A transaction that reads (or sets a condition) registers its snapshot LSN `S` here. From then
//! until it ends, every commit records its keys with its LSN, under the log mutex, in LSN order
//! ([`Conflicts::record`]). At its own commit, still under the log mutex and before it gets an
//! LSN ([`Conflicts::validate`]), the transaction conflicts when a key it read, or a key in a
//! range it scanned, was written with an LSN above `S`: every such commit came before it in LSN
//! order, and its keys are in the table. Nothing is held across the transaction's lifetime but
//! its entry in `live`.
//!
//! The table is complete from `complete_from` on: every write with an LSN at or above it is
//! recorded. Recording starts when the first tracked transaction registers (`complete_from` is
//! then the next LSN to assign, and that transaction's snapshot waits for every LSN below it to
//! be visible, so `S + 1 >= complete_from`). Entries at or below the oldest live snapshot (and
//! the visible LSN) can no longer conflict with anyone and are pruned. Recording goes on while no
//! tracked transaction lives (holding only the commits not yet visible), so that the next one
//! need not wait for them; it stops, and the table empties, after [`IDLE_COMMITS`] commits with
//! none live. Past [`Conflicts::set_max_bytes`] the oldest entries go
//! anyway and `complete_from` moves up: a transaction whose snapshot is then below it gets
//! [`Error::TransactionTooOld`].
//!
//! Lock order: the log mutex (`State`) → this table's mutex (see `wal::Shared`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::index::{Lsn, OpRef};
use crate::{Conflicting, Error, Result};

/// A key range, owned.
pub(crate) type KeyRange = (Bound<Box<[u8]>>, Bound<Box<[u8]>>);

/// Commits recorded with no tracked transaction live after which recording stops.
pub(crate) const IDLE_COMMITS: u64 = 1 << 16;

/// Approximate bytes one recorded write costs besides its key: the `Arc`'s header and the
/// allocator's, the map's share of its nodes (with their slack), the queue's slot (with its
/// spare capacity). Measured with a counting allocator: 104 bytes requested per write of an
/// 8-byte key, allocator headers aside (72 were counted: the cap let the table grow to ≈ 1.5 ×
/// it).
const ENTRY_OVERHEAD: usize = 112;

/// What a transaction read (or a condition names): each key and each range once, with the
/// lowest LSN above which a write of it conflicts (never below the snapshot). A key read again
/// adds nothing: a transaction polling one key holds one entry, and its validation — under the
/// log mutex — does not grow with the number of reads.
#[derive(Default)]
pub(crate) struct ReadSet {
    keys: BTreeMap<Box<[u8]>, Lsn>,
    /// In first-read order (a conflict names the first range read that has one).
    ranges: Vec<(KeyRange, Lsn)>,
    /// Where each range is in `ranges`.
    range_at: HashMap<KeyRange, usize>,
}

impl ReadSet {
    /// Records that a write of `key` above `above` conflicts.
    pub(crate) fn key(&mut self, key: &[u8], above: Lsn) {
        match self.keys.get_mut(key) {
            // Either condition conflicts: a write above the lower one.
            Some(a) => *a = (*a).min(above),
            None => {
                self.keys.insert(key.into(), above);
            }
        }
    }

    /// Records that a write in `range` above `above` conflicts.
    pub(crate) fn range(&mut self, range: KeyRange, above: Lsn) {
        match self.range_at.get(&range) {
            Some(&i) => self.ranges[i].1 = self.ranges[i].1.min(above),
            None => {
                self.range_at.insert(range.clone(), self.ranges.len());
                self.ranges.push((range, above));
            }
        }
    }

    /// Entries held: distinct keys, distinct ranges.
    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize) {
        (self.keys.len(), self.ranges.len())
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.ranges.is_empty()
    }
}

/// What a transaction asks the sequencer to check before it gets an LSN.
pub(crate) struct Check<'a> {
    /// The snapshot its reads saw.
    pub(crate) snapshot: Lsn,
    /// What it read.
    pub(crate) reads: &'a ReadSet,
}

struct Inner {
    /// Snapshots of live tracked transactions (LSN → how many); a registration not done yet
    /// counts at a lower bound of the snapshot it will take (the visible LSN when it began), so
    /// that nothing it may need is pruned meanwhile.
    live: BTreeMap<Lsn, usize>,
    /// Every write with an LSN at or above this is recorded.
    complete_from: Lsn,
    /// The newest recorded write of each key.
    writes: BTreeMap<Arc<[u8]>, Lsn>,
    /// Recorded writes in LSN order, for pruning.
    order: VecDeque<(Lsn, Arc<[u8]>)>,
    bytes: usize,
    /// Commits recorded since a tracked transaction was last live.
    idle: u64,
}

/// The conflict table (see the module's documentation).
pub(crate) struct Conflicts {
    /// Whether commits record their keys. Set only under the log mutex and this table's mutex,
    /// cleared under this table's mutex; read by committers under the log mutex.
    active: AtomicBool,
    max_bytes: AtomicUsize,
    inner: Mutex<Inner>,
}

impl Conflicts {
    pub(crate) fn new() -> Conflicts {
        Conflicts {
            active: AtomicBool::new(false),
            max_bytes: AtomicUsize::new(64 << 20),
            inner: Mutex::new(Inner {
                live: BTreeMap::new(),
                complete_from: 1,
                writes: BTreeMap::new(),
                order: VecDeque::new(),
                bytes: 0,
                idle: 0,
            }),
        }
    }

    /// Caps the bytes the table may hold ([`crate::Options::conflict_history_bytes`]).
    pub(crate) fn set_max_bytes(&self, bytes: usize) {
        self.max_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Whether commits record their keys (read under the log mutex).
    pub(crate) fn active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Starts a registration; `next_lsn` is the next LSN to assign, read under the log mutex the
    /// caller holds, and `visible` the visible LSN, read before the snapshot will be taken (a
    /// lower bound of it); LSNs up to `skipped` were never assigned (the run started above its
    /// predecessor's lease). Returns the LSN that must be visible before the snapshot is taken
    /// (every commit below the table's completeness point), and the bound to hand to
    /// [`Conflicts::end_register`].
    pub(crate) fn begin_register(&self, next_lsn: Lsn, visible: Lsn, skipped: Lsn) -> (Lsn, Lsn) {
        let mut c = self.inner.lock();
        if !self.active.load(Ordering::Relaxed) {
            debug_assert!(c.live.is_empty() && c.order.is_empty());
            // Nothing assigned in this run yet: the LSNs above the visible one were never
            // assigned, so none of their writes can be missing.
            c.complete_from = if next_lsn - 1 <= skipped {
                visible + 1
            } else {
                next_lsn
            };
            self.active.store(true, Ordering::Release);
        }
        *c.live.entry(visible).or_default() += 1;
        c.idle = 0;
        (c.complete_from - 1, visible)
    }

    /// [`Conflicts::begin_register`] without the log mutex, when commits record already (the
    /// common case); `None` when they do not (the caller then takes the log mutex and begins it
    /// there). Recording stops only under this table's mutex, so the answer holds.
    pub(crate) fn register_if_active(&self, visible: Lsn) -> Option<(Lsn, Lsn)> {
        let mut c = self.inner.lock();
        if !self.active.load(Ordering::Relaxed) {
            return None;
        }
        *c.live.entry(visible).or_default() += 1;
        c.idle = 0;
        Some((c.complete_from - 1, visible))
    }

    /// Ends a registration begun by [`Conflicts::begin_register`] (which returned `bound`) with
    /// the snapshot taken (`None`: it failed, and nothing stays registered).
    pub(crate) fn end_register(&self, bound: Lsn, snapshot: Option<Lsn>, visible: Lsn) {
        let mut c = self.inner.lock();
        Self::remove_live(&mut c, bound);
        match snapshot {
            Some(s) => {
                debug_assert!(s >= bound, "snapshot {s} below its bound {bound}");
                *c.live.entry(s).or_default() += 1
            }
            None => self.prune(&mut c, visible),
        }
    }

    fn remove_live(c: &mut Inner, snapshot: Lsn) {
        match c.live.get_mut(&snapshot) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                c.live.remove(&snapshot);
            }
            None => debug_assert!(false, "snapshot {snapshot} was not live"),
        }
    }

    /// A tracked transaction with `snapshot` ended (committed, failed or dropped).
    pub(crate) fn unregister(&self, snapshot: Lsn, visible: Lsn) {
        let mut c = self.inner.lock();
        Self::remove_live(&mut c, snapshot);
        self.prune(&mut c, visible);
    }

    /// Drops what no live or future transaction can conflict with.
    fn prune(&self, c: &mut Inner, visible: Lsn) {
        // A later registration's snapshot is at least the visible LSN.
        let floor = c.live.keys().next().map_or(visible, |&s| s.min(visible));
        while c.order.front().is_some_and(|(l, _)| *l <= floor) {
            Self::pop(c);
        }
    }

    fn pop(c: &mut Inner) -> Option<Lsn> {
        let (lsn, key) = c.order.pop_front()?;
        c.bytes -= key.len() + ENTRY_OVERHEAD;
        if c.writes.get(&key) == Some(&lsn) {
            c.writes.remove(&key);
        }
        Some(lsn)
    }

    /// Records the keys `ops` wrote with `lsn` (under the log mutex, in LSN order); `visible`
    /// is the visible LSN.
    pub(crate) fn record(&self, ops: &[OpRef<'_>], lsn: Lsn, visible: Lsn) {
        let mut c = self.inner.lock();
        if c.live.is_empty() {
            c.idle += 1;
            if c.idle >= IDLE_COMMITS {
                // Long unused: stop recording (the next registration waits for what is in
                // flight then).
                self.active.store(false, Ordering::Release);
                c.writes.clear();
                c.order.clear();
                c.bytes = 0;
                return;
            }
            self.prune(&mut c, visible);
        }
        for op in ops {
            let key: Arc<[u8]> = Arc::from(op.key());
            c.bytes += key.len() + ENTRY_OVERHEAD;
            c.writes.insert(key.clone(), lsn);
            c.order.push_back((lsn, key));
        }
        let max = self.max_bytes.load(Ordering::Relaxed);
        while c.bytes > max {
            match Self::pop(&mut c) {
                Some(l) => c.complete_from = c.complete_from.max(l + 1),
                None => break,
            }
        }
    }

    /// Validates a transaction before it gets an LSN (under the log mutex, so every commit
    /// with a lower LSN is recorded already).
    pub(crate) fn validate(&self, check: &Check<'_>) -> Result<()> {
        if check.reads.is_empty() {
            return Ok(());
        }
        let c = self.inner.lock();
        debug_assert!(
            self.active.load(Ordering::Relaxed),
            "a live transaction keeps recording on"
        );
        let s = check.snapshot;
        if s + 1 < c.complete_from {
            return Err(Error::TransactionTooOld {
                snapshot: s,
                oldest: c.complete_from - 1,
            });
        }
        for (k, above) in &check.reads.keys {
            debug_assert!(*above >= s);
            if let Some(&by) = c.writes.get(&**k) {
                if by > *above {
                    return Err(Error::Conflict {
                        on: Conflicting::Key(k.clone()),
                        by_lsn: by,
                    });
                }
            }
        }
        for ((lo, hi), above) in &check.reads.ranges {
            debug_assert!(*above >= s);
            let bounds = (lo.as_ref().map(|k| &**k), hi.as_ref().map(|k| &**k));
            if !valid_range(&bounds) {
                continue;
            }
            if let Some((_, &by)) = c
                .writes
                .range::<[u8], _>(bounds)
                .find(|(_, &lsn)| lsn > *above)
            {
                return Err(Error::Conflict {
                    on: Conflicting::Range {
                        start: lo.clone(),
                        end: hi.clone(),
                    },
                    by_lsn: by,
                });
            }
        }
        Ok(())
    }

    /// Entries held now (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().order.len()
    }
}

/// Whether `BTreeMap::range` accepts the bounds (it panics on a start above the end, or on equal
/// excluded bounds); an empty range holds nothing either way.
pub(crate) fn valid_range(b: &(Bound<&[u8]>, Bound<&[u8]>)) -> bool {
    match b {
        (Bound::Included(s), Bound::Included(e)) => s <= e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e)) => s < e,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &'static [u8]) -> OpRef<'static> {
        OpRef::Put(k, b"v")
    }

    #[test]
    fn a_write_above_the_snapshot_conflicts_and_pruning_follows_the_oldest() {
        let c = Conflicts::new();
        assert_eq!(c.begin_register(5, 3, 0), (4, 3));
        c.end_register(3, Some(4), 4);
        c.record(&[put(b"a")], 5, 4);
        c.record(&[put(b"m")], 6, 4);
        let mut reads = ReadSet::default();
        reads.key(b"a", 4);
        let check = Check {
            snapshot: 4,
            reads: &reads,
        };
        match c.validate(&check) {
            Err(Error::Conflict {
                on: Conflicting::Key(k),
                by_lsn: 5,
            }) => assert_eq!(&*k, b"a"),
            other => panic!("{other:?}"),
        }
        let mut reads = ReadSet::default();
        reads.range(
            (
                Bound::Included(b"b"[..].into()),
                Bound::Excluded(b"z"[..].into()),
            ),
            5,
        );
        reads.key(b"a", 5);
        let check = Check {
            snapshot: 5,
            reads: &reads,
        };
        assert!(matches!(
            c.validate(&check),
            Err(Error::Conflict {
                on: Conflicting::Range { .. },
                by_lsn: 6
            })
        ));
        // A reversed range holds nothing and does not panic.
        let mut reads = ReadSet::default();
        reads.range(
            (
                Bound::Included(b"z"[..].into()),
                Bound::Excluded(b"b"[..].into()),
            ),
            4,
        );
        let check = Check {
            snapshot: 4,
            reads: &reads,
        };
        assert!(c.validate(&check).is_ok());
        assert_eq!(c.len(), 2);
        // A second transaction at 6; the first ends: entries at or below 6 go.
        // A registration in progress (its bound 5) keeps what is above 5 ...
        let (_, bound) = c.begin_register(7, 5, 0);
        c.unregister(4, 6);
        assert_eq!(c.len(), 1);
        // ... and its snapshot at 6 from then on.
        c.end_register(bound, Some(6), 6);
        c.unregister(6, 6);
        assert_eq!(c.len(), 0);
        // No transaction lives: commits not yet visible are still recorded (a later snapshot
        // may be below them), visible ones pruned, and after IDLE_COMMITS recording stops.
        assert!(c.active());
        c.record(&[put(b"x")], 7, 6);
        c.record(&[put(b"y")], 8, 6);
        assert_eq!(c.len(), 2);
        c.record(&[put(b"z")], 9, 8);
        assert_eq!(c.len(), 1);
        for l in 10..10 + IDLE_COMMITS {
            c.record(&[put(b"z")], l, l - 1);
        }
        assert!(!c.active());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn past_the_byte_cap_old_snapshots_are_too_old() {
        let c = Conflicts::new();
        c.set_max_bytes(3 * (1 + ENTRY_OVERHEAD));
        c.begin_register(1, 0, 0);
        c.end_register(0, Some(0), 0);
        for (i, k) in [b"a", b"b", b"c", b"d", b"e"].iter().enumerate() {
            c.record(&[put(*k)], i as u64 + 1, 0);
        }
        let mut reads = ReadSet::default();
        reads.key(b"zz", 0);
        let check = Check {
            snapshot: 0,
            reads: &reads,
        };
        assert!(matches!(
            c.validate(&check),
            Err(Error::TransactionTooOld {
                snapshot: 0,
                oldest: 2
            })
        ));
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn a_read_set_holds_each_key_and_range_once_with_the_strictest_bound() {
        let c = Conflicts::new();
        c.begin_register(1, 0, 0);
        c.end_register(0, Some(0), 0);
        c.record(&[put(b"k")], 1, 0);
        c.record(&[put(b"r1")], 2, 0);
        let range = || (Bound::Included(b"r"[..].into()), Bound::Unbounded);
        let mut reads = ReadSet::default();
        for _ in 0..1000 {
            reads.key(b"k", 1);
            reads.range(range(), 2);
        }
        assert_eq!(reads.len(), (1, 1));
        let check = |reads: &ReadSet| c.validate(&Check { snapshot: 0, reads });
        // Only writes above 1 (the key) and 2 (the range) conflict: none so far.
        assert!(check(&reads).is_ok());
        // A lower bound for the same key or range wins: either condition conflicts.
        reads.key(b"k", 0);
        assert_eq!(reads.len(), (1, 1));
        assert!(matches!(
            check(&reads),
            Err(Error::Conflict {
                on: Conflicting::Key(_),
                by_lsn: 1
            })
        ));
        let mut reads = ReadSet::default();
        reads.range(range(), 2);
        reads.range(range(), 1);
        reads.range(range(), 2);
        assert_eq!(reads.len(), (0, 1));
        assert!(matches!(
            check(&reads),
            Err(Error::Conflict {
                on: Conflicting::Range { .. },
                by_lsn: 2
            })
        ));
    }
}
