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

use parking_lot::{Condvar, Mutex};

use crate::rcu::{self, Rcu, RcuOption};
use crate::skiplist::{NodeRef, SkipList};
use crate::values::{ValueStore, IN_SEGMENT};
use crate::{Error, Result};
use retention::{RetentionState, Samples};

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
    /// The log segments its nodes may refer to for values on disk ([`IN_SEGMENT`]), ascending
    /// (a superset). Set when the generation is built, before anyone reads it: writers only
    /// insert values in memory. Compaction keeps these segments while the generation lives
    /// ([`Versions::segments_in_use`]).
    segments: Mutex<Vec<u64>>,
}

impl Gen {
    pub(crate) fn new(list: SkipList, floor: Lsn) -> Gen {
        Gen {
            list,
            floor: AtomicU64::new(floor),
            segments: Mutex::new(Vec::new()),
        }
    }

    /// Sets the segments its nodes may refer to ([`Gen::segments`]).
    pub(crate) fn set_segments(&self, mut ids: Vec<u64>) {
        ids.sort_unstable();
        ids.dedup();
        *self.segments.lock() = ids;
    }

    pub(crate) fn floor(&self) -> Lsn {
        self.floor.load(Ordering::Acquire)
    }

    /// The version of `key` visible at `lsn`, passed to `f` borrowed from the index (or from a
    /// value read from disk through `store`): `None` when the key had no value then. The caller
    /// has checked `lsn` against the floor.
    pub(crate) fn read_at<R>(
        &self,
        key: &[u8],
        lsn: Lsn,
        store: Option<&ValueStore>,
        f: impl FnOnce(Found<'_>) -> R,
    ) -> Result<R> {
        match self.node_at(key, lsn)? {
            Some(n) => deliver(n, store, f),
            None => Ok(f(None)),
        }
    }

    /// The node of the version of `key` visible at `lsn` (a put or a tombstone), or `None` when
    /// the key had no version then; [`Error::HistoryTrimmed`] below a key's trimmed history.
    pub(crate) fn node_at(&self, key: &[u8], lsn: Lsn) -> Result<Option<NodeRef<'_>>> {
        // The key's newest node through the key index, then a few steps to older versions; a
        // read far back in a long history searches the list instead.
        let Some(mut n) = self.list.newest(key) else {
            return Ok(None);
        };
        let mut steps = 0;
        while n.lsn() > lsn {
            match n.next() {
                Some(m) if m.key() == key && steps < 8 => {
                    n = m;
                    steps += 1;
                }
                Some(m) if m.key() == key => return self.node_by_search(key, lsn),
                // No version at or below `lsn`: `n` is the key's oldest node.
                _ => return Gen::none_or_trimmed(n, lsn).map(|()| None),
            }
        }
        debug_assert!(
            n.key() == key && n.lsn() <= lsn,
            "a version of the key at or below the LSN"
        );
        Ok(Some(n))
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

    fn node_by_search(&self, key: &[u8], lsn: Lsn) -> Result<Option<NodeRef<'_>>> {
        if let Some(n) = self.list.seek(key, lsn) {
            if n.key() == key {
                debug_assert!(n.lsn() <= lsn, "seek returns a version at or below the LSN");
                return Ok(Some(n));
            }
        }
        // No version at or below `lsn`: was the key's older history trimmed?
        match self.list.seek_before(key, lsn) {
            Some(oldest) if oldest.key() == key => Gen::none_or_trimmed(oldest, lsn).map(|()| None),
            _ => Ok(None),
        }
    }
}

/// Passes the version of node `n` to `f`: its value borrowed from the index, or read from disk
/// through `store` when the node holds the value's place ([`IN_SEGMENT`]); `None` for a
/// tombstone.
pub(crate) fn deliver<R>(
    n: NodeRef<'_>,
    store: Option<&ValueStore>,
    f: impl FnOnce(Found<'_>) -> R,
) -> Result<R> {
    let Some(v) = n.value() else {
        return Ok(f(None));
    };
    if n.flags() & IN_SEGMENT == 0 {
        return Ok(f(Some((v, n.lsn()))));
    }
    let value = value_of(n, v, store)?;
    Ok(f(Some((&value, n.lsn()))))
}

/// The value of an [`IN_SEGMENT`] node whose stored bytes are `packed`, read through `store`.
pub(crate) fn value_of(
    n: NodeRef<'_>,
    packed: &[u8],
    store: Option<&ValueStore>,
) -> Result<Arc<[u8]>> {
    let at = crate::values::unpack(packed);
    let store = store.ok_or_else(|| Error::Corruption {
        file: std::path::PathBuf::from(crate::segment::segment_file_name(at.segment)),
        offset: at.offset,
        reason: "the index refers to a value on disk in a database without a directory".into(),
    })?;
    store.read(&crate::values::Want {
        at,
        key: n.key(),
        lsn: n.lsn(),
    })
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
    /// Loaded inside read sections ([`crate::rcu`]): no count, no fence; a replaced generation
    /// is retired and freed once no section that may hold it is open.
    current: Rcu<Gen>,
    /// The generation a running trim is building: every writer that finds it inserts there too
    /// (inserts are idempotent, so a version the trim also copies is linked once).
    next: RcuOption<Gen>,
    /// Live snapshots: LSN → count. The trim floor never passes the oldest.
    snapshots: Mutex<BTreeMap<Lsn, usize>>,
    pub(crate) retention: Mutex<RetentionState>,
    /// Signalled when a trim stops holding policy changes off ([`RetentionState::exclusive`]).
    pub(crate) retention_cv: Condvar,
    /// What a time-based policy needs, recorded by committers: a leaf lock (nothing else is
    /// taken while it is held), so that no commit takes the retention lock.
    pub(crate) samples: Mutex<Samples>,
    /// [`Samples::next_due`] as last seen under `samples`' lock: a commit before it keeps no
    /// sample, so it takes no lock (at most one sample a millisecond is kept, out of every
    /// commit's).
    sample_due: AtomicU64,
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
    /// One trim at a time (the background trimmer, [`crate::Db::trim_history`] or a
    /// checkpoint's converting trim). Taken after the MANIFEST's lock where a database has one
    /// (lock order: `crate::wal::Shared`).
    pub(crate) trim_running: Mutex<()>,
    /// Commits record (time, LSN) samples: a time-based policy is in force.
    pub(crate) sample_times: AtomicBool,
    /// Reads values the index holds by reference (set at open when values may live on disk).
    pub(crate) store: std::sync::OnceLock<Arc<ValueStore>>,
    /// Every generation made (weakly): those still alive — the current one, one a trim is
    /// building, old ones scans and readers still hold — may refer to value segments.
    gens: Mutex<Vec<std::sync::Weak<Gen>>>,
}

/// A trim waits for garbage of at least 1 / TRIM_SHARE of the versions the generation holds.
const TRIM_SHARE: usize = 4;

impl Versions {
    /// Records that `lsn` was visible at `now_ns` for a time-based policy ([`Samples::record`]),
    /// taking the samples' lock only when a sample is due.
    pub(crate) fn sample(&self, now_ns: u64, lsn: Lsn) {
        if now_ns < self.sample_due.load(Ordering::Relaxed) {
            return;
        }
        let mut s = self.samples.lock();
        s.record(now_ns, lsn);
        self.sample_due.store(s.next_due(), Ordering::Relaxed);
    }

    pub(crate) fn new(gen: Gen, retention: RetentionState, min_garbage: usize) -> Versions {
        let gen = Arc::new(gen);
        let gens = Mutex::new(vec![Arc::downgrade(&gen)]);
        Versions {
            gens,
            current: Rcu::new(gen),
            next: RcuOption::none(),
            snapshots: Mutex::new(BTreeMap::new()),
            retention: Mutex::new(retention),
            retention_cv: Condvar::new(),
            samples: Mutex::new(Samples::default()),
            sample_due: AtomicU64::new(0),
            garbage: AtomicUsize::new(0),
            trim_at: AtomicUsize::new(min_garbage.max(1)),
            trim_requested: AtomicBool::new(false),
            trim_cv: Condvar::new(),
            trim_lock: Mutex::new(trim::TrimSignal::default()),
            min_garbage: min_garbage.max(1),
            trims: AtomicU64::new(0),
            trim_running: Mutex::new(()),
            sample_times: AtomicBool::new(false),
            store: std::sync::OnceLock::new(),
        }
    }

    /// Records a new generation (see [`Versions::segments_in_use`]).
    pub(crate) fn register(&self, gen: &Arc<Gen>) {
        let mut g = self.gens.lock();
        g.retain(|w| w.strong_count() > 0);
        g.push(Arc::downgrade(gen));
    }

    /// The value segments any live generation may refer to: compaction must not delete them
    /// yet, even when the checkpoint in force does not refer to them (a snapshot or a scan may
    /// still read a version the checkpoint left out).
    pub(crate) fn segments_in_use(&self) -> std::collections::BTreeSet<u64> {
        // Frees the generations no read section can still use (they would count here), after
        // the reads of other threads that may still use one have ended.
        rcu::synchronize();
        let mut out = std::collections::BTreeSet::new();
        let mut g = self.gens.lock();
        g.retain(|w| w.strong_count() > 0);
        for gen in g.iter().filter_map(std::sync::Weak::upgrade) {
            out.extend(gen.segments.lock().iter().copied());
        }
        out
    }

    /// The value store, when values may live on disk.
    pub(crate) fn store(&self) -> Option<&ValueStore> {
        self.store.get().map(|s| &**s)
    }

    /// Signals the background thread (trims and checkpoints): a trim, or with `checkpoint` a
    /// checkpoint, is due. A thread not started yet finds the signal when it starts.
    pub(crate) fn signal_background(&self, checkpoint: bool) {
        let mut sig = self.trim_lock.lock();
        if checkpoint {
            sig.checkpoint = true;
        } else {
            sig.requested = true;
        }
        self.trim_cv.notify_one();
    }

    /// Whether the garbage of a generation recovery built calls for a trim at once: as much as
    /// a running index waits for when its last trim kept nothing — the threshold, and a quarter
    /// of the versions, since a trim copies every version it keeps. (With the threshold alone,
    /// every cold open of a million keys after 65,536 overwrites in the log copied its whole
    /// index straight away: twice its memory and most of two cores for a while.)
    pub(crate) fn wants_trim(&self) -> bool {
        let versions = self.current().list.len();
        self.garbage.load(Ordering::Relaxed) >= self.next_trim_at(0, versions)
    }

    /// Sets the garbage count (after building a generation) and the garbage at which the next
    /// trim is requested ([`Versions::next_trim_at`]).
    pub(crate) fn set_garbage(&self, garbage: usize) {
        self.garbage.store(garbage, Ordering::Relaxed);
        let versions = self.current().list.len();
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

    /// A requested trim did not happen (the thread to run it could not start, or it failed):
    /// lets the next insert ask again — the request left standing kept every later insert from
    /// asking, for good (found in review) — once the garbage grew by as much again as a trim
    /// waits for, not at once (each attempt may copy the whole index).
    pub(crate) fn trim_not_done(&self) {
        let garbage = self.garbage.load(Ordering::Relaxed);
        let len = self.current().list.len();
        self.trim_at.store(
            garbage.saturating_add(self.next_trim_at(0, len)),
            Ordering::Relaxed,
        );
        self.trim_requested.store(false, Ordering::Release);
    }

    /// The LSN of the oldest live snapshot.
    pub(crate) fn oldest_snapshot(&self) -> Option<Lsn> {
        self.snapshots.lock().keys().next().copied()
    }

    /// The current generation.
    pub(crate) fn current(&self) -> Arc<Gen> {
        self.current.load_full()
    }

    /// Prefetches the key index's slots of a small transaction's keys, before its commit's
    /// serialised step: the misses overlap that step instead of following the insert.
    pub(crate) fn prefetch(&self, ops: &[OpRef<'_>]) {
        if ops.len() > 4 {
            return;
        }
        let section = rcu::enter();
        let cur = self.current.load(&section);
        for op in ops {
            cur.list.prefetch_key(op.key());
        }
    }

    /// Inserts the versions written by the transaction with `lsn`, into the current generation
    /// and, while a trim builds the next one, into that one too. Returns true when enough garbage
    /// accumulated that a trim should run.
    pub(crate) fn insert(&self, ops: &[OpRef<'_>], lsn: Lsn) -> bool {
        // Load `next` before `current`: a trim publishes the new generation as `current` before
        // it clears `next`, so a writer that finds no `next` after a trim finds the new current.
        let section = rcu::enter();
        let next = self.next.load(&section);
        let cur = self.current.load(&section);
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
            if let Some(n) = next {
                if !std::ptr::eq(n, cur) {
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
        let section = rcu::enter();
        let g = self.current.load(&section);
        let floor = g.floor();
        if lsn < floor {
            return Err(Error::HistoryTrimmed {
                requested: lsn,
                earliest_retained: floor,
            });
        }
        g.read_at(key, lsn, self.store(), f)
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
            let section = rcu::enter();
            let g = self.current.load(&section);
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
            return g.read_at(key, lsn, self.store(), f);
        }
    }

    /// The values of `keys` at `lsn` (visible; `None` for a key without a value then), in input
    /// order: values in memory are copied, and every value on disk is read in one batch
    /// ([`ValueStore::read_many`]: one io_uring submission on the io_uring path). `retry` reads
    /// the visible LSN again when a trim raced the read (`None`: `lsn` is a snapshot's, fixed).
    pub(crate) fn get_many<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        visible: Option<&dyn Fn() -> Lsn>,
        mut lsn: Lsn,
    ) -> Result<Vec<Option<Value>>> {
        let mut tries = 0;
        let g = loop {
            let g = self.current.load_full();
            let floor = g.floor();
            if lsn >= floor {
                break g;
            }
            tries += 1;
            match visible {
                Some(v) if tries <= 3 => lsn = v(),
                _ => {
                    return Err(Error::HistoryTrimmed {
                        requested: lsn,
                        earliest_retained: floor,
                    })
                }
            }
        };
        let mut out: Vec<Option<Value>> = Vec::with_capacity(keys.len());
        let mut wants = Vec::new();
        let mut slots = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let key = k.as_ref();
            let node = g.node_at(key, lsn)?;
            match node.and_then(|n| n.value().map(|v| (n, v))) {
                None => out.push(None),
                Some((n, v)) if n.flags() & IN_SEGMENT == 0 => {
                    out.push(Some(Value::new(Arc::from(v), n.lsn())));
                }
                Some((n, v)) => {
                    out.push(None);
                    slots.push((i, n.lsn()));
                    wants.push(crate::values::Want {
                        at: crate::values::unpack(v),
                        key,
                        lsn: n.lsn(),
                    });
                }
            }
        }
        if !wants.is_empty() {
            let store = self.store().ok_or_else(|| Error::Corruption {
                file: std::path::PathBuf::from(crate::segment::segment_file_name(
                    wants[0].at.segment,
                )),
                offset: wants[0].at.offset,
                reason: "the index refers to a value on disk in a database without a directory"
                    .into(),
            })?;
            for ((i, lsn), r) in slots.into_iter().zip(store.read_many(&wants)) {
                out[i] = Some(Value::new(r?, lsn));
            }
        }
        Ok(out)
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
        Ok(scan::Scan::new(g, self.store.get().cloned(), lsn, lo, hi))
    }

    /// Live keys in the current generation (including commits in flight).
    pub(crate) fn live_keys(&self) -> usize {
        let section = rcu::enter();
        self.current.load(&section).list.live_keys()
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
            v.current().list.insert(&k.to_be_bytes(), 1, Some(b"v"), 0);
        }
        v.set_garbage(10);
        assert_eq!(v.trim_at.load(Ordering::Relaxed), 2_000);
        // A recovered generation is trimmed at open by the same rule: the threshold (1000) is
        // not enough for 8000 versions, a quarter of them is.
        v.set_garbage(1_999);
        assert!(!v.wants_trim());
        v.set_garbage(2_000);
        assert!(v.wants_trim());
    }
}
