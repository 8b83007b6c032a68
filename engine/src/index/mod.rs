//! The versioned index: every retained version of every key, in a concurrent skip list, read at
//! any visible LSN without locks.
//!
//! * [`Gen`] — one *generation* of the index: an insert-only skip list of versions (key
//!   ascending, LSN descending) and the trim floor below which reads are refused. Versions are
//!   never removed from a generation; history is trimmed by building the next generation without
//!   the versions nobody needs ([`trim`]) and swapping it in.
//! * [`Versions`] — the current generation (and, while a trim runs, the next one, which writers
//!   fill too), the registry of live snapshots, and the retention policy.
//! * [`Scan`] — a lazy iterator over a generation at one LSN.
//! * `crate::loader` (recovery's) builds the first generation from the log.

pub(crate) mod retention;
pub(crate) mod scan;
pub(crate) mod trim;

use std::collections::BTreeMap;
use std::ops::{Bound, Deref};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::{Condvar, Mutex};

use crate::skiplist::{NodeRef, SkipList};
use crate::{Error, Result};
use retention::RetentionState;

/// A log sequence number: the position of a committed transaction in the commit order, and the
/// version of every key it wrote. LSNs increase with every commit and are never handed out twice,
/// across restarts and crashes too (gaps are allowed).
pub type Lsn = u64;

/// A value read from the database, with the LSN of the transaction that wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    bytes: Arc<[u8]>,
    lsn: Lsn,
}

impl Value {
    pub(crate) fn new(bytes: Arc<[u8]>, lsn: Lsn) -> Value {
        Value { bytes, lsn }
    }

    /// The LSN of the transaction that wrote this value (its version).
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// The value's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// One operation of a transaction, borrowed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum OpRef<'a> {
    Put(&'a [u8], &'a [u8]),
    Delete(&'a [u8]),
}

impl<'a> OpRef<'a> {
    pub(crate) fn key(&self) -> &'a [u8] {
        match *self {
            OpRef::Put(k, _) | OpRef::Delete(k) => k,
        }
    }
}

/// Node flag: versions of this key older than this node were trimmed (by
/// [`crate::Retention::LastVersions`]); a read of the key below this node's LSN is
/// [`Error::HistoryTrimmed`].
pub(crate) const TRIMMED_BELOW: u8 = 1;

/// One generation of the index.
pub(crate) struct Gen {
    pub(crate) list: SkipList,
    /// Reads below this LSN are refused with [`Error::HistoryTrimmed`]. Only rises.
    pub(crate) floor: AtomicU64,
}

impl Gen {
    pub(crate) fn new(list: SkipList, floor: Lsn) -> Gen {
        Gen {
            list,
            floor: AtomicU64::new(floor),
        }
    }

    pub(crate) fn floor(&self) -> Lsn {
        self.floor.load(Ordering::Acquire)
    }

    /// The version of `key` visible at `lsn`, passed to `f` borrowed from the index: `None` when
    /// the key had no value then. The caller has checked `lsn` against the floor.
    pub(crate) fn read_at<R>(
        &self,
        key: &[u8],
        lsn: Lsn,
        f: impl FnOnce(Found<'_>) -> R,
    ) -> Result<R> {
        // The key's newest node through the key index, then a few steps to older versions; a
        // read far back in a long history searches the list instead.
        let Some(mut n) = self.list.newest(key) else {
            return Ok(f(None));
        };
        let mut steps = 0;
        while n.lsn() > lsn {
            match n.next() {
                Some(m) if m.key() == key && steps < 8 => {
                    n = m;
                    steps += 1;
                }
                Some(m) if m.key() == key => return self.read_by_search(key, lsn, f),
                // No version at or below `lsn`: `n` is the key's oldest node.
                _ => return Gen::none_or_trimmed(n, lsn).map(|()| f(None)),
            }
        }
        debug_assert!(
            n.key() == key && n.lsn() <= lsn,
            "a version of the key at or below the LSN"
        );
        Ok(f(n.value().map(|v| (v, n.lsn()))))
    }

    /// `Ok(())` (the key had no value at `lsn`) or [`Error::HistoryTrimmed`] when the key's
    /// history below `oldest` was trimmed.
    fn none_or_trimmed(oldest: NodeRef<'_>, lsn: Lsn) -> Result<()> {
        if oldest.flags() & TRIMMED_BELOW != 0 {
            return Err(Error::HistoryTrimmed {
                requested: lsn,
                earliest_retained: oldest.lsn(),
            });
        }
        Ok(())
    }

    fn read_by_search<R>(&self, key: &[u8], lsn: Lsn, f: impl FnOnce(Found<'_>) -> R) -> Result<R> {
        if let Some(n) = self.list.seek(key, lsn) {
            if n.key() == key {
                debug_assert!(n.lsn() <= lsn, "seek returns a version at or below the LSN");
                return Ok(f(n.value().map(|v| (v, n.lsn()))));
            }
        }
        // No version at or below `lsn`: was the key's older history trimmed?
        match self.list.seek_before(key, lsn) {
            Some(oldest) if oldest.key() == key => {
                Gen::none_or_trimmed(oldest, lsn).map(|()| f(None))
            }
            _ => Ok(f(None)),
        }
    }
}

/// A version found by a borrowed read: the value's bytes (borrowed from the index for the
/// duration of the callback) and the LSN that wrote them; `None` when the key had no value.
pub(crate) type Found<'a> = Option<(&'a [u8], Lsn)>;

/// An owned [`Value`] from a borrowed read.
pub(crate) fn to_value(found: Found<'_>) -> Option<Value> {
    found.map(|(v, lsn)| Value::new(Arc::from(v), lsn))
}

/// The newest version at or below `lsn` of the key of `n` (the first node of the key at or after
/// `n` in list order), and the first node of the next key.
pub(crate) fn version_at<'a>(
    mut n: NodeRef<'a>,
    lsn: Lsn,
) -> (Option<NodeRef<'a>>, Option<NodeRef<'a>>) {
    let key = n.key();
    let mut found = None;
    loop {
        if found.is_none() && n.lsn() <= lsn {
            found = Some(n);
        }
        match n.next() {
            Some(m) if m.key() == key => n = m,
            next => return (found, next),
        }
    }
}

/// The index of a database: generations, live snapshots and the retention policy.
pub(crate) struct Versions {
    current: ArcSwap<Gen>,
    /// The generation a running trim is building: every writer that finds it inserts there too
    /// (inserts are idempotent, so a version the trim also copies is linked once).
    next: ArcSwapOption<Gen>,
    /// Live snapshots: LSN → count. The trim floor never passes the oldest.
    snapshots: Mutex<BTreeMap<Lsn, usize>>,
    pub(crate) retention: Mutex<RetentionState>,
    /// Superseded versions and tombstones inserted into the current generation since it was
    /// built: what a trim could drop.
    garbage: AtomicUsize,
    /// Garbage at which a trim is requested.
    trim_at: AtomicUsize,
    pub(crate) trim_requested: AtomicBool,
    pub(crate) trim_cv: Condvar,
    pub(crate) trim_lock: Mutex<trim::TrimSignal>,
    /// Minimum garbage before a trim is worth it.
    pub(crate) min_garbage: usize,
    pub(crate) trims: AtomicU64,
    /// One trim at a time (the background trimmer or [`crate::Db::trim_history`]).
    pub(crate) trim_running: Mutex<()>,
    /// Commits record (time, LSN) samples: a time-based policy is in force.
    pub(crate) sample_times: AtomicBool,
}

/// A trim waits for garbage of at least 1 / TRIM_SHARE of the versions the generation holds.
const TRIM_SHARE: usize = 4;

impl Versions {
    pub(crate) fn new(gen: Gen, retention: RetentionState, min_garbage: usize) -> Versions {
        Versions {
            current: ArcSwap::from_pointee(gen),
            next: ArcSwapOption::empty(),
            snapshots: Mutex::new(BTreeMap::new()),
            retention: Mutex::new(retention),
            garbage: AtomicUsize::new(0),
            trim_at: AtomicUsize::new(min_garbage.max(1)),
            trim_requested: AtomicBool::new(false),
            trim_cv: Condvar::new(),
            trim_lock: Mutex::new(trim::TrimSignal::default()),
            min_garbage: min_garbage.max(1),
            trims: AtomicU64::new(0),
            trim_running: Mutex::new(()),
            sample_times: AtomicBool::new(false),
        }
    }

    /// Sets the garbage count (after building a generation).
    /// Whether enough garbage accumulated for a trim to be worth it.
    pub(crate) fn wants_trim(&self) -> bool {
        self.garbage.load(Ordering::Relaxed) >= self.min_garbage
    }

    pub(crate) fn set_garbage(&self, garbage: usize) {
        self.garbage.store(garbage, Ordering::Relaxed);
        let versions = self.current.load().list.len();
        self.trim_at
            .store(self.next_trim_at(garbage, versions), Ordering::Relaxed);
        self.sample_times
            .store(self.retention.lock().wants_samples(), Ordering::Relaxed);
    }

    /// The garbage at which the next trim is requested, after a generation of `versions` versions
    /// of which `garbage` could not be dropped: at least the threshold, twice what was kept (so
    /// that a trim drops at least half of what it copies), and a quarter of the generation — a
    /// trim copies every version it keeps, so waiting for garbage in proportion to their number
    /// bounds that work to a few copies per superseded version, however large the index (with a
    /// fixed threshold a million-key index was copied whole every 65,536 overwrites).
    pub(crate) fn next_trim_at(&self, garbage: usize, versions: usize) -> usize {
        (garbage * 2)
            .max(self.min_garbage)
            .max(versions / TRIM_SHARE)
    }

    /// The LSN of the oldest live snapshot.
    pub(crate) fn oldest_snapshot(&self) -> Option<Lsn> {
        self.snapshots.lock().keys().next().copied()
    }

    /// The current generation.
    pub(crate) fn current(&self) -> Arc<Gen> {
        self.current.load_full()
    }

    /// Inserts the versions written by the transaction with `lsn`, into the current generation
    /// and, while a trim builds the next one, into that one too. Returns true when enough garbage
    /// accumulated that a trim should run.
    pub(crate) fn insert(&self, ops: &[OpRef<'_>], lsn: Lsn) -> bool {
        // Load `next` before `current`: a trim publishes the new generation as `current` before
        // it clears `next`, so a writer that finds no `next` after a trim finds the new current.
        let next = self.next.load();
        let cur = self.current.load();
        let mut garbage = 0;
        // A transaction that writes a key twice leaves its last write: (key, LSN) is one
        // version, and inserts of a version already present are no-ops, so insert the last
        // write of each key only.
        let mut seen: Option<std::collections::HashSet<&[u8]>> =
            (ops.len() > 16).then(std::collections::HashSet::new);
        for (i, op) in ops.iter().enumerate().rev() {
            let superseded = match &mut seen {
                Some(set) => !set.insert(op.key()),
                None => ops[i + 1..].iter().any(|later| later.key() == op.key()),
            };
            if superseded {
                continue;
            }
            let (key, value) = match *op {
                OpRef::Put(k, v) => (k, Some(v)),
                OpRef::Delete(k) => (k, None),
            };
            let ins = cur.list.insert(key, lsn, value, 0);
            if ins.older.is_some() || value.is_none() {
                garbage += 1;
            }
            if let Some(n) = &*next {
                if !Arc::ptr_eq(n, &cur) {
                    n.list.insert(key, lsn, value, 0);
                }
            }
        }
        if garbage == 0 {
            return false;
        }
        let total = self.garbage.fetch_add(garbage, Ordering::Relaxed) + garbage;
        total >= self.trim_at.load(Ordering::Relaxed)
            && !self.trim_requested.swap(true, Ordering::AcqRel)
    }

    /// Registers a snapshot at the LSN `visible()` returns, under the registry lock, so that a
    /// trim either sees it or computed its floor from an LSN no newer than it.
    pub(crate) fn pin(&self, visible: impl FnOnce() -> Lsn) -> Lsn {
        let mut s = self.snapshots.lock();
        let lsn = visible();
        *s.entry(lsn).or_insert(0) += 1;
        lsn
    }

    pub(crate) fn unpin(&self, lsn: Lsn) {
        let mut s = self.snapshots.lock();
        match s.get_mut(&lsn) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                s.remove(&lsn);
            }
            None => debug_assert!(false, "unpinning a snapshot that was not pinned"),
        }
    }

    /// Number of live snapshots.
    pub(crate) fn snapshot_count(&self) -> usize {
        self.snapshots.lock().values().sum()
    }

    /// Reads `key` at `lsn`, which the caller knows is visible, passing the version found to `f`.
    pub(crate) fn read_at<R>(
        &self,
        key: &[u8],
        lsn: Lsn,
        f: impl FnOnce(Found<'_>) -> R,
    ) -> Result<R> {
        let g = self.current.load();
        let floor = g.floor();
        if lsn < floor {
            return Err(Error::HistoryTrimmed {
                requested: lsn,
                earliest_retained: floor,
            });
        }
        g.read_at(key, lsn, f)
    }

    /// Reads the newest version of `key` visible now, passing it to `f`; `visible` reads the
    /// visible LSN.
    pub(crate) fn read_latest<R>(
        &self,
        key: &[u8],
        visible: impl Fn() -> Lsn,
        f: impl FnOnce(Found<'_>) -> R,
    ) -> Result<R> {
        let mut tries = 0;
        loop {
            // The visible LSN first, then the generation: a generation swapped in after the
            // load has every version up to it (inserts precede publication).
            let lsn = visible();
            let g = self.current.load();
            let floor = g.floor();
            if lsn < floor {
                // A trim computed its floor from a newer visible LSN than ours: read again (the
                // floor never passes the visible LSN it was computed from, so once is enough).
                tries += 1;
                if tries > 3 {
                    return Err(Error::HistoryTrimmed {
                        requested: lsn,
                        earliest_retained: floor,
                    });
                }
                continue;
            }
            return g.read_at(key, lsn, f);
        }
    }

    /// A lazy scan of `lo..hi` at `lsn`.
    pub(crate) fn scan(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>, lsn: Lsn) -> Result<scan::Scan> {
        let g = self.current.load_full();
        let floor = g.floor();
        if lsn < floor {
            return Err(Error::HistoryTrimmed {
                requested: lsn,
                earliest_retained: floor,
            });
        }
        Ok(scan::Scan::new(g, lsn, lo, hi))
    }

    /// Live keys in the current generation (including commits in flight).
    pub(crate) fn live_keys(&self) -> usize {
        self.current.load().list.live_keys()
    }
}

/// The exclusive upper bound of the keys starting with `prefix`, if any key is above them all.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_cases() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn a_trim_waits_for_garbage_in_proportion_to_the_index() {
        let v = Versions::new(
            Gen::new(SkipList::new(), 0),
            RetentionState::new(crate::Retention::Snapshots),
            1000,
        );
        // A small index: the threshold decides.
        assert_eq!(v.next_trim_at(0, 2_000), 1000);
        // A large one: a quarter of its versions (a trim copies them all).
        assert_eq!(v.next_trim_at(0, 1_000_000), 250_000);
        // What the last trim had to keep (a policy that keeps history): twice that.
        assert_eq!(v.next_trim_at(300_000, 1_000_000), 600_000);
        // At open too: the count is set from the generation recovery built.
        for k in 0..8_000u32 {
            v.current
                .load()
                .list
                .insert(&k.to_be_bytes(), 1, Some(b"v"), 0);
        }
        v.set_garbage(10);
        assert_eq!(v.trim_at.load(Ordering::Relaxed), 2_000);
    }
}
