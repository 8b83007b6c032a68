//! Lazy scans: iterate a generation at one LSN, forward and backward, in O(1) memory.

use std::ops::Bound;
use std::sync::Arc;

use super::{version_at, Gen, Lsn, Value};
use crate::skiplist::NodeRef;

/// An ordered, lazy scan of the entries of a key range as of one LSN, returned by
/// [`crate::Db::range`], [`crate::Db::prefix`], [`crate::Snapshot::range`] and friends.
///
/// It reads the index as it goes: the first entry costs one O(log n) search, each further entry
/// a step (forward) or a search (backward), and memory stays O(1) whatever the range's size.
/// Commits made after the scan started are not seen: every entry is the version visible at
/// [`Scan::lsn`]. A scan keeps the index generation it reads from alive (see
/// `docs/DURABILITY.md`, "Versions and snapshots"), so do not keep one for hours.
pub struct Scan {
    // Field order: the cursors borrow from `gen`'s skip list (see `Scan::new`).
    /// The next node to consider from the front (the first node of a key).
    front: Option<NodeRef<'static>>,
    /// The key of the last entry returned from the back, or the range's upper bound.
    back: Back,
    /// The key of the last entry returned from the front.
    front_key: Option<NodeRef<'static>>,
    lo: Bound<Box<[u8]>>,
    lsn: Lsn,
    done: bool,
    gen: Arc<Gen>,
}

enum Back {
    /// The range's upper bound (no entry returned from the back yet).
    Bound(Bound<Box<[u8]>>),
    /// The key of the last entry returned from the back (exclusive).
    Node(NodeRef<'static>),
}

// SAFETY: the node references point into the skip list of `gen`, which the scan owns an `Arc`
// of; the list is `Sync`, its nodes are immutable once published and live until the list drops.
unsafe impl Send for Scan {}
// SAFETY: as above; a `&Scan` gives no access to the cursors.
unsafe impl Sync for Scan {}

impl std::fmt::Debug for Scan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan")
            .field("lsn", &self.lsn)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

fn owned(b: Bound<&[u8]>) -> Bound<Box<[u8]>> {
    b.map(Box::from)
}

fn above_lo(lo: &Bound<Box<[u8]>>, key: &[u8]) -> bool {
    match lo {
        Bound::Included(l) => key >= &**l,
        Bound::Excluded(l) => key > &**l,
        Bound::Unbounded => true,
    }
}

fn below_hi(hi: &Bound<Box<[u8]>>, key: &[u8]) -> bool {
    match hi {
        Bound::Included(h) => key <= &**h,
        Bound::Excluded(h) => key < &**h,
        Bound::Unbounded => true,
    }
}

impl Scan {
    pub(crate) fn new(gen: Arc<Gen>, lsn: Lsn, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Scan {
        // SAFETY: the reference is to a node of `gen.list`, and `gen` is stored in the scan, so
        // the list (and every node in it, which never moves or changes once published) outlives
        // every use of the reference; the 'static lifetime never escapes the scan (entries are
        // copied out).
        let front: Option<NodeRef<'static>> = unsafe {
            let list: &'static crate::skiplist::SkipList = &*(&gen.list as *const _);
            match lo {
                Bound::Included(k) => list.seek(k, Lsn::MAX),
                Bound::Excluded(k) => {
                    // The first node of the first key above `k`.
                    let mut n = list.seek(k, Lsn::MAX);
                    while let Some(m) = n.filter(|m| m.key() == k) {
                        n = m.next();
                    }
                    n
                }
                Bound::Unbounded => list.first(),
            }
        };
        let empty = match (lo, hi) {
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
                a > b
                    || (a == b
                        && (matches!(lo, Bound::Excluded(_)) || matches!(hi, Bound::Excluded(_))))
            }
            _ => false,
        };
        Scan {
            front,
            back: Back::Bound(owned(hi)),
            front_key: None,
            lo: owned(lo),
            lsn,
            done: empty,
            gen,
        }
    }

    /// The LSN the scan reads at.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    fn list(&self) -> &'static crate::skiplist::SkipList {
        // SAFETY: see `Scan::new`: the list lives as long as `self.gen`, which outlives every
        // reference handed out through the cursors (entries are copied before they are returned).
        unsafe { &*(&self.gen.list as *const _) }
    }

    /// True when `key` is below the back cursor (not yet returned from the back).
    fn before_back(&self, key: &[u8]) -> bool {
        match &self.back {
            Back::Bound(hi) => below_hi(hi, key),
            Back::Node(n) => key < n.key(),
        }
    }

    fn entry(n: NodeRef<'_>) -> (Arc<[u8]>, Value) {
        let v = n.value().expect("scans return puts only");
        (Arc::from(n.key()), Value::new(Arc::from(v), n.lsn()))
    }

    /// Advances from the front like [`Iterator::next`], but lends the entry instead of copying
    /// it: `f` receives the key, the value and the LSN that wrote it, borrowed from the index for
    /// the duration of the call. `None` when the scan is exhausted. Saves the two allocations
    /// an owned entry costs.
    ///
    /// ```
    /// # fn main() -> Result<(), ringlog_db::Error> {
    /// let db = ringlog_db::Db::in_memory();
    /// db.put(b"a", b"1")?;
    /// db.put(b"b", b"22")?;
    /// let mut scan = db.range::<&[u8], _>(..)?;
    /// let mut total = 0;
    /// while let Some(len) = scan.next_with(|_key, value, _lsn| value.len()) {
    ///     total += len;
    /// }
    /// assert_eq!(total, 3);
    /// # Ok(()) }
    /// ```
    pub fn next_with<R>(&mut self, f: impl FnOnce(&[u8], &[u8], Lsn) -> R) -> Option<R> {
        let n = self.front_node()?;
        Some(f(
            n.key(),
            n.value().expect("scans return puts only"),
            n.lsn(),
        ))
    }

    /// Advances from the back like [`DoubleEndedIterator::next_back`], lending the entry as
    /// [`Scan::next_with`] does.
    pub fn next_back_with<R>(&mut self, f: impl FnOnce(&[u8], &[u8], Lsn) -> R) -> Option<R> {
        let n = self.back_node()?;
        Some(f(
            n.key(),
            n.value().expect("scans return puts only"),
            n.lsn(),
        ))
    }

    /// The node of the next entry from the front (a put visible at the scan's LSN).
    fn front_node(&mut self) -> Option<NodeRef<'_>> {
        while !self.done {
            let Some(n) = self.front else {
                self.done = true;
                break;
            };
            if !self.before_back(n.key()) {
                self.done = true;
                break;
            }
            let (version, next) = version_at(n, self.lsn);
            self.front = next;
            self.front_key = Some(n);
            if let Some(v) = version.filter(|v| v.is_put()) {
                return Some(v);
            }
        }
        None
    }

    /// The node of the next entry from the back.
    fn back_node(&mut self) -> Option<NodeRef<'_>> {
        let list = self.list();
        while !self.done {
            // The last node below the back cursor: the oldest version of the greatest key there.
            let cand = match &self.back {
                Back::Bound(Bound::Unbounded) => list.last(),
                Back::Bound(Bound::Excluded(h)) => list.seek_before(h, Lsn::MAX),
                Back::Bound(Bound::Included(h)) => {
                    // `(h, 0)` sorts after every version of `h` (LSNs start at 1): the node
                    // before the first node at or after it is the last node of a key <= h.
                    match list.seek(h, 0) {
                        Some(n) => list.seek_before(n.key(), n.lsn()),
                        None => list.last(),
                    }
                }
                Back::Node(k) => list.seek_before(k.key(), Lsn::MAX),
            };
            let Some(oldest) = cand else {
                self.done = true;
                break;
            };
            let key = oldest.key();
            if !above_lo(&self.lo, key) || self.front_key.is_some_and(|f| key <= f.key()) {
                self.done = true;
                break;
            }
            // The first node of this key, then its version at the scan's LSN.
            let first = list.seek(key, Lsn::MAX).expect("the key has a node");
            self.back = Back::Node(first);
            let (version, _) = version_at(first, self.lsn);
            if let Some(v) = version.filter(|v| v.is_put()) {
                return Some(v);
            }
        }
        None
    }
}

impl Iterator for Scan {
    type Item = (Arc<[u8]>, Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.front_node().map(Scan::entry)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, None)
    }
}

impl DoubleEndedIterator for Scan {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.back_node().map(Scan::entry)
    }
}
