//! Transactions: writes buffered in the handle, committed atomically with one LSN; reads at a
//! snapshot, validated at commit (optimistic concurrency control, [`crate::conflicts`]).

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use crate::conflicts::{valid_range, Check, KeyRange, ReadSet};
use crate::db::Db;
use crate::index::scan::Scan;
use crate::index::{prefix_end, Lsn, OpRef, Value};
use crate::snapshot::Snapshot;
use crate::wal::txn_encoded_len;
use crate::{Conflicting, Durability, Error, Result};

enum Op {
    Put(Box<[u8]>, Box<[u8]>),
    Delete(Box<[u8]>),
}

/// Writes past which a transaction that reads keeps an index of its own writes by key.
const INDEX_AT: usize = 16;

impl Op {
    fn key(&self) -> &[u8] {
        match self {
            Op::Put(k, _) | Op::Delete(k) => k,
        }
    }

    /// What the write leaves the key as: the value, or `None` for a delete.
    fn value(&self) -> Option<&[u8]> {
        match self {
            Op::Put(_, v) => Some(v),
            Op::Delete(_) => None,
        }
    }

    fn as_ref(&self) -> OpRef<'_> {
        match self {
            Op::Put(k, v) => OpRef::Put(k, v),
            Op::Delete(k) => OpRef::Delete(k),
        }
    }
}

/// A condition checked against the snapshot at commit (the writes after the snapshot are
/// checked by the sequencer).
enum Cond {
    /// Some key of the range has a version above `after` (with `None`: exists at all).
    Range(KeyRange, Option<Lsn>),
    /// The key has a version above `after` (with `None`: exists at all).
    Key(Box<[u8]>, Option<Lsn>),
}

/// What a transaction read: its snapshot and what the sequencer validates.
struct Reads {
    snap: Snapshot,
    set: ReadSet,
    conds: Vec<Cond>,
}

/// A borrowed view of an owned bound.
fn borrowed(b: &Bound<Box<[u8]>>) -> Bound<&[u8]> {
    b.as_ref().map(|k| &**k)
}

fn range_of<K: AsRef<[u8]>, R: RangeBounds<K>>(range: &R) -> KeyRange {
    (
        range.start_bound().map(|k| Box::from(k.as_ref())),
        range.end_bound().map(|k| Box::from(k.as_ref())),
    )
}

fn prefix_range(prefix: &[u8]) -> KeyRange {
    (
        Bound::Included(prefix.into()),
        match prefix_end(prefix) {
            Some(e) => Bound::Excluded(e.into()),
            None => Bound::Unbounded,
        },
    )
}

fn contains(r: &KeyRange, key: &[u8]) -> bool {
    (borrowed(&r.0), borrowed(&r.1)).contains(key)
}

/// A transaction: writes buffered until [`Txn::commit`], then applied atomically with one LSN;
/// reads at a snapshot, validated when it commits.
///
/// **Isolation.** The first read (or condition) takes a snapshot: every read of the transaction
/// sees the database as of that snapshot, plus the transaction's own writes. [`Txn::get`],
/// [`Txn::range`] and [`Txn::prefix`] are *tracked*: at commit, inside the commit sequencer and
/// before the transaction gets an LSN, it fails with [`Error::Conflict`] (and writes nothing) if a
/// key it read, or any key in a range it scanned (a phantom included), was written by a
/// transaction that committed after its snapshot. Committed transactions are therefore
/// serializable in LSN order for everything they read through tracked reads (no lost update, no
/// write skew, no phantom). [`Txn::get_untracked`] reads at the snapshot without tracking, like
/// RocksDB's `Get` beside `GetForUpdate`. A transaction that only writes never conflicts; one that
/// only reads never writes (its commit writes nothing and returns its snapshot's LSN; it fails
/// only on a broken condition, checked at its snapshot). Conditions (`fail_if_*`) read the
/// values they cover at the snapshot, from disk where [`crate::Options::value_threshold`] put
/// them, so they can fail with the errors of such a read. Nothing is locked while a transaction
/// lives. What it costs others: commits record their keys (under the log mutex) while tracked
/// transactions are live, and a transaction's validation runs under the log mutex, in time
/// proportional to the distinct keys it read plus the recorded writes in the distinct ranges it
/// scanned ([`crate::Options::conflict_history_bytes`] bounds that history; a
/// transaction older than it gets [`Error::TransactionTooOld`]).
///
/// Dropping it without committing discards its writes. [`Db::transact`] runs a closure in a
/// transaction and retries it on conflicts.
///
/// ```
/// # fn main() -> Result<(), ringlog_db::Error> {
/// let db = ringlog_db::Db::in_memory();
/// db.put(b"counter", b"1")?;
/// let mut a = db.begin();
/// let mut b = db.begin();
/// let n = a.get(b"counter")?.unwrap(); // both read 1 ...
/// let _ = b.get(b"counter")?.unwrap();
/// a.put(b"counter", b"2")?;
/// b.put(b"counter", b"2")?;
/// a.commit()?; // ... the first to commit wins,
/// assert!(matches!(b.commit(), Err(ringlog_db::Error::Conflict { .. }))); // the other conflicts
/// assert_eq!(db.get(b"counter")?.as_deref(), Some(&b"2"[..]));
/// # drop(n); Ok(()) }
/// ```
#[must_use = "a transaction dropped without commit() discards its writes"]
pub struct Txn<'db> {
    db: &'db Db,
    ops: Vec<Op>,
    bytes: usize,
    reads: Option<Reads>,
    /// Key → index in `ops` of its last write: built when a transaction with more than
    /// [`INDEX_AT`] writes reads, then kept up to date (reads of its own writes stay O(log n)).
    last: Option<BTreeMap<Box<[u8]>, usize>>,
}

impl std::fmt::Debug for Txn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn")
            .field("ops", &self.ops.len())
            .field("bytes", &self.bytes)
            .field("snapshot", &self.snapshot_lsn())
            .finish()
    }
}

impl<'db> Txn<'db> {
    pub(crate) fn new(db: &'db Db) -> Txn<'db> {
        Txn {
            db,
            ops: Vec::new(),
            bytes: 0,
            reads: None,
            last: None,
        }
    }

    /// Buffers `op`, which the caller validated (before copying its bytes: a value refused for
    /// its length is never copied).
    fn add(&mut self, op: Op) -> Result<()> {
        let len = txn_encoded_len(&[op.as_ref()]);
        // A one-operation transaction is one autocommit record; with more, Begin and Commit
        // markers frame the operations.
        let markers = if self.ops.is_empty() {
            0
        } else {
            2 * ringlog_format::encoded_len(0, ringlog_format::MARKER_PAYLOAD_LEN)
        };
        let total = self.bytes + len + markers;
        if self.db.has_log() && total > self.db.max_txn_bytes() {
            return Err(Error::TransactionTooLarge {
                len: total,
                max: self.db.max_txn_bytes(),
            });
        }
        self.bytes += len;
        if let Some(m) = &mut self.last {
            m.insert(op.key().into(), self.ops.len());
        }
        self.ops.push(op);
        Ok(())
    }

    /// Buffers `key` = `value`. Invalid input is refused here, leaving the transaction as it was.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyKey`], [`Error::KeyTooLarge`], [`Error::ValueTooLarge`]: checked at once, so
    /// a bad operation never reaches the commit; [`Error::TransactionTooLarge`] when the
    /// transaction with this operation would no longer fit in one log segment.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.db.validate(&[OpRef::Put(key, value)])?;
        self.add(Op::Put(key.into(), value.into()))
    }

    /// Buffers the removal of `key`.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyKey`], [`Error::KeyTooLarge`]; [`Error::TransactionTooLarge`] when the
    /// transaction with this operation would no longer fit in one log segment.
    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.db.validate(&[OpRef::Delete(key)])?;
        self.add(Op::Delete(key.into()))
    }

    /// The index of the transaction's own writes by key, once it is large enough to need one.
    fn index(&mut self) {
        if self.last.is_none() && self.ops.len() > INDEX_AT {
            let mut m = BTreeMap::new();
            for (i, op) in self.ops.iter().enumerate() {
                m.insert(op.key().into(), i);
            }
            self.last = Some(m);
        }
    }

    /// The transaction's own latest write of `key`: `Some(None)` for a delete.
    fn own(&mut self, key: &[u8]) -> Option<Option<Value>> {
        self.index();
        let op = match &self.last {
            Some(m) => m.get(key).map(|&i| &self.ops[i]),
            None => self.ops.iter().rev().find(|op| op.key() == key),
        }?;
        Some(op.value().map(|v| Value::new(Arc::from(v), 0)))
    }

    /// The snapshot, taken (and registered for validation) at the first read.
    fn reads(&mut self) -> Result<&mut Reads> {
        if self.reads.is_none() {
            self.reads = Some(Reads {
                snap: register(self.db)?,
                set: ReadSet::default(),
                conds: Vec::new(),
            });
        }
        Ok(self.reads.as_mut().expect("set above"))
    }

    /// The LSN the transaction reads at: `None` until its first read or condition.
    pub fn snapshot_lsn(&self) -> Option<Lsn> {
        self.reads.as_ref().map(|r| r.snap.lsn())
    }

    /// Reads `key` as this transaction would leave it: its own latest write (LSN 0), else the
    /// value at its snapshot. Tracked: if another transaction writes `key` after the snapshot
    /// and commits first, this one's commit fails with [`Error::Conflict`].
    ///
    /// # Errors
    ///
    /// As [`crate::Snapshot::get`].
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Value>> {
        if let Some(own) = self.own(key) {
            return Ok(own);
        }
        let r = self.reads()?;
        let got = r.snap.get(key)?;
        let s = r.snap.lsn();
        r.set.key(key, s);
        Ok(got)
    }

    /// [`Txn::get`] without tracking: a later write of `key` by another transaction does not
    /// make this one conflict.
    ///
    /// # Errors
    ///
    /// As [`crate::Snapshot::get`].
    pub fn get_untracked(&mut self, key: &[u8]) -> Result<Option<Value>> {
        if let Some(own) = self.own(key) {
            return Ok(own);
        }
        self.reads()?.snap.get(key)
    }

    /// The entries whose keys lie in `range`, in key order, as this transaction would leave
    /// them: the snapshot's merged with the transaction's own writes (which have LSN 0) as they
    /// are when the scan is created (its later writes do not show in this scan).
    /// Tracked: a write by another transaction, committed after the snapshot, of any key in the
    /// range — one inserted into it included — makes this one's commit fail with
    /// [`Error::Conflict`]. The whole range asked for is protected from the moment the scan is
    /// created, however much of it is then read: narrow the range to narrow the protection.
    /// Forward or in reverse (`.rev()`).
    ///
    /// # Errors
    ///
    /// As [`crate::Snapshot::range`]; the scan's items are `Result`s too.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&mut self, range: R) -> Result<TxnScan> {
        self.scan(range_of(&range))
    }

    /// The entries whose keys start with `prefix`, as [`Txn::range`] (tracked).
    ///
    /// # Errors
    ///
    /// As [`Txn::range`].
    pub fn prefix(&mut self, prefix: &[u8]) -> Result<TxnScan> {
        self.scan(prefix_range(prefix))
    }

    fn scan(&mut self, range: KeyRange) -> Result<TxnScan> {
        self.index();
        let own: OwnWrites = match &self.last {
            // The index's range: only the writes in it.
            Some(m) if valid_range(&(borrowed(&range.0), borrowed(&range.1))) => m
                .range::<[u8], _>((borrowed(&range.0), borrowed(&range.1)))
                .map(|(k, &i)| (k.clone(), self.ops[i].value().map(Box::from)))
                .collect(),
            Some(_) => OwnWrites::new(),
            None => {
                let mut m: BTreeMap<Box<[u8]>, Option<Box<[u8]>>> = BTreeMap::new();
                for op in self.ops.iter().filter(|op| contains(&range, op.key())) {
                    m.insert(op.key().into(), op.value().map(Box::from));
                }
                m.into_iter().collect()
            }
        };
        let r = self.reads()?;
        let s = r.snap.lsn();
        let inner = r.snap.scan(borrowed(&range.0), borrowed(&range.1))?;
        r.set.range(range, s);
        Ok(TxnScan {
            inner,
            front: None,
            back: None,
            own,
            done: false,
        })
    }

    /// A condition: the commit fails with [`Error::Conflict`] if any key in `range` was written
    /// after `after` (an LSN the caller read earlier, e.g. the position of the last event it
    /// saw) — or, with `after: None`, if any key in `range` exists at all (a uniqueness guard).
    /// Checked against the transaction's snapshot and, in the commit sequencer, against every
    /// transaction committed after it. The transaction's own writes do not count.
    ///
    /// What counts as written after `after`: a key of the range whose current value (at the
    /// snapshot) has an LSN above `after`, and any put or delete of a key of the range committed
    /// after the snapshot. A key deleted between `after` and the snapshot leaves no live version
    /// to see and is not counted (an event store, which only appends, never meets it).
    ///
    /// ```
    /// # fn main() -> Result<(), ringlog_db::Error> {
    /// let db = ringlog_db::Db::in_memory();
    /// let mut tx = db.begin();
    /// tx.fail_if_prefix_changed(b"user/alice", None)?; // alice must not exist yet
    /// tx.put(b"user/alice", b"...")?;
    /// tx.commit()?;
    /// let mut again = db.begin();
    /// again.fail_if_prefix_changed(b"user/alice", None)?;
    /// again.put(b"user/alice", b"other")?;
    /// assert!(matches!(again.commit(), Err(ringlog_db::Error::Conflict { .. })));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after the database was closed (the condition itself is checked at
    /// commit).
    pub fn fail_if_changed<K: AsRef<[u8]>, R: RangeBounds<K>>(
        &mut self,
        range: R,
        after: Option<Lsn>,
    ) -> Result<()> {
        self.condition_on(range_of(&range), after)
    }

    /// [`Txn::fail_if_changed`] for the keys starting with `prefix`.
    ///
    /// # Errors
    ///
    /// As [`Txn::fail_if_changed`].
    pub fn fail_if_prefix_changed(&mut self, prefix: &[u8], after: Option<Lsn>) -> Result<()> {
        self.condition_on(prefix_range(prefix), after)
    }

    /// [`Txn::fail_if_changed`] for one key.
    ///
    /// # Errors
    ///
    /// As [`Txn::fail_if_changed`].
    pub fn fail_if_key_changed(&mut self, key: &[u8], after: Option<Lsn>) -> Result<()> {
        let r = self.reads()?;
        let above = after.unwrap_or(0).max(r.snap.lsn());
        r.set.key(key, above);
        r.conds.push(Cond::Key(key.into(), after));
        Ok(())
    }

    fn condition_on(&mut self, range: KeyRange, after: Option<Lsn>) -> Result<()> {
        let r = self.reads()?;
        let above = after.unwrap_or(0).max(r.snap.lsn());
        r.set.range(range.clone(), above);
        r.conds.push(Cond::Range(range, after));
        Ok(())
    }

    /// Number of buffered operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Commits with the database's durability and returns the transaction's LSN. A transaction
    /// that wrote nothing writes nothing and is not validated against later commits (it is
    /// serialized at its snapshot): it returns its snapshot's LSN (the state it read), or the
    /// current last LSN if it read nothing — once its conditions ([`Txn::fail_if_changed`] and
    /// its kin), checked at its snapshot, hold.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when validation fails and [`Error::TransactionTooOld`] when it
    /// cannot be done (nothing is written; see [`Txn`]); [`Error::TransactionTooLarge`] when its
    /// records cannot fit in one segment (nothing is written); [`Error::Poisoned`] when the write
    /// or sync failed (a `Strict` commit is then not durable and the database refuses further
    /// writes); [`Error::Closed`] after [`Db::close`]; [`Error::ReadOnly`] on a handle of
    /// [`Db::open_read_only`]; [`Error::IdSpaceExhausted`] when the log's LSNs reached the
    /// format's maximum.
    pub fn commit(self) -> Result<Lsn> {
        self.commit_inner(None)
    }

    /// Commits with `durability` instead of the database's: `Strict` waits for an fdatasync
    /// covering this and every earlier commit; `Buffered` does not wait (but for what
    /// [`Durability::Buffered`] names). Asking an in-memory database for durability, or a
    /// persistent one to skip its log, is an error — checked only when the transaction has
    /// writes (one that wrote nothing writes nothing, whatever it asks for).
    ///
    /// # Errors
    ///
    /// As [`Txn::commit`], and [`Error::DurabilityUnavailable`] when an in-memory database is asked
    /// for durability or a database with a log for `InMemory`; [`Error::InvalidOptions`] for a
    /// `Buffered` override with a zero `interval` or one over
    /// [`Durability::MAX_BUFFERED_INTERVAL`], or a zero `max_pending`.
    pub fn commit_with(self, durability: Durability) -> Result<Lsn> {
        self.commit_inner(Some(durability))
    }

    fn commit_inner(self, durability: Option<Durability>) -> Result<Lsn> {
        let res = self.validate_and_commit(durability);
        if let Err(Error::Conflict { .. }) = &res {
            let counters = &self.db.shared().counters;
            counters
                .conflicts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        res
    }

    /// [`Txn::commit_inner`] before its conflict is counted: the conditions at the snapshot,
    /// then, with writes, the commit validated against later ones.
    fn validate_and_commit(&self, durability: Option<Durability>) -> Result<Lsn> {
        // The conditions, checked at the snapshot (a transaction that writes nothing is
        // serialized there: they are all it checks).
        let conditions = |r: &Reads| {
            r.conds
                .iter()
                .filter(|_| !crate::hooks::conditions_ignore_snapshot())
                .try_for_each(|c| check_at_snapshot(&r.snap, c))
        };
        if self.ops.is_empty() {
            self.db.check_open()?;
            if let Some(r) = &self.reads {
                conditions(r)?;
            }
            return Ok(self.snapshot_lsn().unwrap_or_else(|| self.db.last_lsn()));
        }
        let refs: Vec<OpRef<'_>> = self.ops.iter().map(Op::as_ref).collect();
        let Some(r) = &self.reads else {
            return self.db.commit_ops(&refs, durability, false);
        };
        // A commit that cannot succeed — a read-only handle, a durability the database refuses,
        // a poisoned database — says so before any condition is checked (the commit checks
        // too, but after): a condition's conflict would be retried as if the write could ever
        // succeed.
        self.db.check_writable()?;
        self.db.resolve_durability(durability)?;
        self.db.shared().check_not_poisoned()?;
        let check = Check {
            snapshot: r.snap.lsn(),
            reads: &r.set,
        };
        conditions(r)?;
        self.db
            .commit_checked(&refs, durability, false, Some(&check))
    }

    /// Discards the buffered writes (the same as dropping the transaction).
    pub fn abort(self) {}
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if let Some(r) = &self.reads {
            let shared = self.db.shared();
            shared
                .conflicts
                .unregister(r.snap.lsn(), shared.visible.get());
        }
    }
}

/// How [`Db::transact`] retries a transaction that conflicted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1). Default 10.
    pub max_attempts: u32,
    /// The pause after the first conflict; each further one doubles it, up to `max_backoff`,
    /// and a random part of up to half of it is taken off (so that racing retries spread).
    /// Default 50 µs.
    pub backoff: std::time::Duration,
    /// The longest pause. Default 10 ms.
    pub max_backoff: std::time::Duration,
    /// The commit's durability (`None`: the database's). Default `None`.
    pub durability: Option<Durability>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            backoff: std::time::Duration::from_micros(50),
            max_backoff: std::time::Duration::from_millis(10),
            durability: None,
        }
    }
}

impl RetryPolicy {
    /// Sets [`RetryPolicy::max_attempts`].
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> RetryPolicy {
        self.max_attempts = n;
        self
    }

    /// Sets [`RetryPolicy::backoff`] and [`RetryPolicy::max_backoff`].
    #[must_use]
    pub fn backoff(mut self, first: std::time::Duration, max: std::time::Duration) -> RetryPolicy {
        self.backoff = first;
        self.max_backoff = max;
        self
    }

    /// Sets [`RetryPolicy::durability`].
    #[must_use]
    pub fn durability(mut self, d: Durability) -> RetryPolicy {
        self.durability = Some(d);
        self
    }

    /// The pause after conflicted attempt `attempt` (from 1).
    pub(crate) fn backoff_for(&self, attempt: u32) -> std::time::Duration {
        use std::hash::{BuildHasher, Hasher};
        let full = self
            .backoff
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(self.max_backoff);
        // Jitter: a random share of up to half the pause (std's per-process random keys).
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(attempt);
        // In u128: a pause of over 417 days times the share overflows u64.
        let cut = full.as_nanos() / 2 * u128::from(h.finish() % 1024) / 1024;
        full.saturating_sub(std::time::Duration::from_nanos(
            u64::try_from(cut).unwrap_or(u64::MAX),
        ))
    }
}

/// Takes a transaction's snapshot and registers it for validation: if the conflict table starts
/// recording now, the snapshot waits until every commit it did not record is visible.
fn register(db: &Db) -> Result<Snapshot> {
    let shared = db.shared();
    db.check_open()?;
    let fast = shared.conflicts.register_if_active(shared.visible.get());
    let (need, bound) = fast.unwrap_or_else(|| {
        let st = shared.state.lock();
        shared
            .conflicts
            .begin_register(st.next_lsn, shared.visible.get(), shared.visible.skipped())
    });
    let snap = match shared.wait_visible_or_err(need) {
        Ok(()) => {
            let snap = db.snapshot();
            debug_assert!(snap.lsn() >= need);
            Ok(snap)
        }
        // A poisoned database commits nothing more (a commit fails `Poisoned` before it is
        // validated): what is visible is final, and the transaction reads there as
        // `Db::snapshot` does. The commits it waited for never become visible.
        Err(Error::Poisoned(_)) => Ok(db.snapshot()),
        Err(e) => Err(e),
    };
    let snap_lsn = snap.as_ref().ok().map(Snapshot::lsn);
    shared
        .conflicts
        .end_register(bound, snap_lsn, shared.visible.get());
    snap
}

/// A condition's part that the snapshot answers.
fn check_at_snapshot(snap: &Snapshot, c: &Cond) -> Result<()> {
    let hit = |lsn: Lsn, after: Option<Lsn>| after.is_none_or(|a| lsn > a);
    match c {
        Cond::Key(key, after) => {
            if let Some(lsn) = snap.get_with(key, |v| v.map(|(_, l)| l))? {
                if hit(lsn, *after) {
                    return Err(Error::Conflict {
                        on: Conflicting::Key(key.clone()),
                        by_lsn: lsn,
                    });
                }
            }
        }
        Cond::Range(range, after) => {
            let bounds = (borrowed(&range.0), borrowed(&range.1));
            if !valid_range(&bounds) {
                return Ok(());
            }
            let mut scan = snap.scan(bounds.0, bounds.1)?;
            while let Some(lsn) = scan.next_with(|_, _, l| l) {
                let lsn = lsn?;
                if hit(lsn, *after) {
                    return Err(Error::Conflict {
                        on: Conflicting::Range {
                            start: range.0.clone(),
                            end: range.1.clone(),
                        },
                        by_lsn: lsn,
                    });
                }
            }
        }
    }
    Ok(())
}

/// A transaction's own writes in a scanned range, in key order (`None`: deleted).
type OwnWrites = std::collections::VecDeque<(Box<[u8]>, Option<Box<[u8]>>)>;

/// A transaction's scan ([`Txn::range`], [`Txn::prefix`]): the snapshot's entries merged with
/// the transaction's own writes, in key order, forward or in reverse. Items as [`Scan`]'s.
pub struct TxnScan {
    inner: Scan,
    /// The snapshot's next entry from the front, and from the back, taken but not yet merged.
    front: Option<(Arc<[u8]>, Value)>,
    back: Option<(Arc<[u8]>, Value)>,
    own: OwnWrites,
    done: bool,
}

impl std::fmt::Debug for TxnScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnScan")
            .field("lsn", &self.inner.lsn())
            .finish()
    }
}

impl TxnScan {
    /// The next entry from the front (`rev` false) or the back.
    fn step(&mut self, rev: bool) -> Option<Result<(Arc<[u8]>, Value)>> {
        loop {
            if self.done {
                return None;
            }
            let (slot, other) = if rev {
                (&mut self.back, &mut self.front)
            } else {
                (&mut self.front, &mut self.back)
            };
            if slot.is_none() {
                let got = if rev {
                    self.inner.next_back()
                } else {
                    self.inner.next()
                };
                match got {
                    Some(Ok(e)) => *slot = Some(e),
                    Some(Err(e)) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                    // The snapshot's entries are used up from this side: what the other side
                    // took and did not merge yet is the last one.
                    None => *slot = other.take(),
                }
            }
            let own = if rev {
                self.own.back()
            } else {
                self.own.front()
            };
            let take_own = match (&*slot, own) {
                (None, None) => {
                    self.done = true;
                    return None;
                }
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some((dk, _)), Some((ok, _))) => {
                    if **ok == **dk {
                        // The transaction's write shadows the snapshot's entry.
                        *slot = None;
                        true
                    } else {
                        (**ok < **dk) != rev
                    }
                }
            };
            if !take_own {
                return slot.take().map(Ok);
            }
            let (k, v) = if rev {
                self.own.pop_back()
            } else {
                self.own.pop_front()
            }
            .expect("looked at");
            if let Some(v) = v {
                return Some(Ok((Arc::from(k), Value::new(Arc::from(v), 0))));
            }
            // The transaction deleted it: skip.
        }
    }
}

impl Iterator for TxnScan {
    type Item = Result<(Arc<[u8]>, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}

impl DoubleEndedIterator for TxnScan {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}

#[cfg(test)]
mod tests {
    use super::RetryPolicy;
    use crate::Db;
    use std::time::Duration;

    /// A key read again, or a range scanned again, adds nothing to what the commit validates
    /// (under the log mutex): a transaction polling one key grew its read set by a key copy
    /// per read (28 MB for a million reads, found by a review).
    #[test]
    fn reads_repeated_hold_one_entry_each() {
        let db = Db::in_memory();
        db.put(b"hot", b"1").unwrap();
        let mut t = db.begin();
        for _ in 0..1000 {
            t.get(b"hot").unwrap();
            t.get(b"cold").unwrap();
            t.range::<&[u8], _>(b"a".as_slice()..b"z".as_slice())
                .unwrap()
                .for_each(drop);
            t.prefix(b"h").unwrap().for_each(drop);
        }
        t.fail_if_key_changed(b"cold", None).unwrap();
        assert_eq!(t.reads.as_ref().unwrap().set.len(), (2, 2));
        t.put(b"hot", b"2").unwrap();
        t.commit().unwrap();
    }

    /// A pause of any length, up to `Duration::MAX`, is computed without overflow (found by an
    /// API probe: above about 417 days the jitter's product overflowed u64), and stays between
    /// half the full pause and the full pause.
    #[test]
    fn backoff_of_any_length_does_not_overflow() {
        for pause in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_micros(50),
            Duration::from_secs(1 << 40),
            Duration::MAX,
        ] {
            let p = RetryPolicy::default().backoff(pause, pause);
            for attempt in 1..40 {
                let b = p.backoff_for(attempt);
                assert!(b <= pause, "{pause:?} attempt {attempt}: {b:?}");
                assert!(b >= pause / 2, "{pause:?} attempt {attempt}: {b:?}");
            }
        }
    }
}
