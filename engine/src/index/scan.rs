//! Lazy scans: iterate a generation at one LSN, forward and backward, in O(1) memory.

use std::ops::Bound;
use std::sync::Arc;

use super::{version_at, Gen, Lsn, Value};
use crate::skiplist::NodeRef;
use crate::Result;

/// An ordered, lazy scan of the entries of a key range as of one LSN, returned by
/// [`crate::Db::range`], [`crate::Db::prefix`], [`crate::Snapshot::range`] and friends.
///
/// It reads the index as it goes: the first entry costs one O(log n) search, each further entry
/// a step (forward) or a search (backward), and memory stays O(1) whatever the range's size.
/// Commits made after the scan started are not seen: every entry is the version visible at
/// [`Scan::lsn`]. A scan keeps the index generation it reads from alive (see
/// `docs/DURABILITY.md`, "Versions and snapshots"), so do not keep one for hours. It also goes on
/// after [`crate::Db::close`] (unlike a [`crate::Snapshot`], whose reads then fail with
/// [`crate::Error::Closed`]): a value on disk it has not read yet fails with [`crate::Error::Io`]
/// if another handle on the directory has removed its segment since.
///
/// Each item is a [`crate::Result`]: reading an entry can fail (a value read from disk can meet
/// an I/O error or a checksum mismatch), and a scan never ends early or panics instead of saying
/// so. After an error the scan ends; the error is the last item: every later call of
/// [`Iterator::next`] or [`DoubleEndedIterator::next_back`] (or [`Scan::next_with`],
/// [`Scan::next_back_with`]) returns `None`. Collect into a `Result` to stop at the first error:
///
/// ```
/// # fn main() -> Result<(), ringlog_db::Error> {
/// let db = ringlog_db::Db::in_memory();
/// db.put(b"a", b"1")?;
/// db.put(b"b", b"2")?;
/// let mut n = 0;
/// for item in db.range(b"a".as_slice()..)? {
///     let (key, value) = item?; // an error ends the loop (and the scan)
///     assert_eq!(value.len(), 1);
///     n += key.len();
/// }
/// assert_eq!(n, 2);
/// let backwards = db.range::<&[u8], _>(..)?.rev().collect::<Result<Vec<_>, _>>()?;
/// assert_eq!(&*backwards[0].0, b"b");
/// # Ok(()) }
/// ```
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
    /// Reads the values the index holds by reference.
    store: Option<Arc<crate::values::ValueStore>>,
    /// Values on disk of the next entries, read ahead with the last one read (place, value).
    ahead: std::collections::VecDeque<ReadAhead>,
}

/// A value read ahead: what it answers for (its place and version) and its bytes.
type ReadAhead = (crate::values::Tag, Arc<[u8]>);

/// Values on disk a forward scan reads in one batch.
const READ_AHEAD: usize = 32;
/// Keys a forward scan looks at ahead for values on disk to read in the same batch.
const LOOK_AHEAD: usize = 256;

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
    pub(crate) fn new(
        gen: Arc<Gen>,
        store: Option<Arc<crate::values::ValueStore>>,
        lsn: Lsn,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
    ) -> Scan {
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
            store,
            ahead: std::collections::VecDeque::new(),
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

    /// The owned entry of `n`, a put visible at the scan's LSN. Fallible (always `Ok` while
    /// every value is in memory): the hook for values read from disk, whose read can fail.
    fn entry(&mut self, n: NodeRef<'static>) -> Result<(Arc<[u8]>, Value)> {
        self.lend(n, |key, value, lsn| {
            (Arc::from(key), Value::new(Arc::from(value), lsn))
        })
    }

    /// Calls `f` with the key, the value and the LSN of `n`, a put visible at the scan's LSN,
    /// borrowed for the duration of the call. Fallible like [`Scan::entry`]: every value of a
    /// scan, lent or owned, is read here.
    fn lend<R>(
        &mut self,
        n: NodeRef<'static>,
        f: impl FnOnce(&[u8], &[u8], Lsn) -> R,
    ) -> Result<R> {
        let value = n.value().expect("scans return puts only");
        if n.flags() & crate::values::IN_SEGMENT == 0 {
            return Ok(f(n.key(), value, n.lsn()));
        }
        // A value on disk: read (and checked) through the store, with the next ones of a forward
        // scan in the same batch.
        let read = self.read_ahead(n, value)?;
        Ok(f(n.key(), &read, n.lsn()))
    }

    /// The value of `n`, a node holding its place on disk (`packed`): from the values read
    /// ahead, or read now together with the values on disk of the next entries of a forward scan
    /// (up to [`READ_AHEAD`] of them, looking at most [`LOOK_AHEAD`] keys ahead): one
    /// [`crate::values::ValueStore::read_many`], one io_uring submission on the io_uring path.
    /// A value read ahead whose read failed is read again, and its error reported, when the scan
    /// reaches it.
    fn read_ahead(&mut self, n: NodeRef<'static>, packed: &[u8]) -> Result<Arc<[u8]>> {
        let at = crate::values::unpack(packed);
        let want = crate::values::Want {
            at,
            key: n.key(),
            lsn: n.lsn(),
        };
        let tag = want.tag();
        while let Some((t, v)) = self.ahead.pop_front() {
            if t == tag && want.fits(&v) {
                return Ok(v);
            }
        }
        let Some(store) = self.store.clone() else {
            return super::value_of(n, packed, None);
        };
        let mut wants = vec![want];
        // The entries after `n`, as the front cursor will meet them (a backward scan reads one
        // at a time: its cursor searches for each entry).
        let mut next = if self.front_key.is_some_and(|k| k.key() == n.key()) {
            self.front
        } else {
            None
        };
        let mut looked = 0;
        while let Some(m) = next {
            if wants.len() >= READ_AHEAD || looked >= LOOK_AHEAD || !self.before_back(m.key()) {
                break;
            }
            looked += 1;
            let (version, after) = version_at(m, self.lsn);
            if let Some(v) = version.filter(|v| v.flags() & crate::values::IN_SEGMENT != 0) {
                if let Some(p) = v.value() {
                    wants.push(crate::values::Want {
                        at: crate::values::unpack(p),
                        key: v.key(),
                        lsn: v.lsn(),
                    });
                }
            }
            next = after;
        }
        let mut read = store.read_many(&wants).into_iter();
        let first = read.next().expect("one result per value")?;
        for (w, r) in wants[1..].iter().zip(read) {
            if let Ok(v) = r {
                self.ahead.push_back((w.tag(), v));
            }
        }
        Ok(first)
    }

    /// Passes an item through, ending the scan if it is an error (the error is the last item).
    fn end_on_error<T>(&mut self, item: Result<T>) -> Option<Result<T>> {
        if item.is_err() {
            self.done = true;
        }
        Some(item)
    }

    /// Advances from the front like [`Iterator::next`], but lends the entry instead of copying
    /// it: `f` receives the key, the value and the LSN that wrote it, borrowed from the index for
    /// the duration of the call. `None` when the scan is exhausted; `Some(Err(_))` when the entry
    /// could not be read (`f` is not called then), after which the scan ends: the error is the
    /// last item, as with [`Iterator::next`]. Saves the two allocations an owned entry costs.
    ///
    /// ```
    /// # fn main() -> Result<(), ringlog_db::Error> {
    /// let db = ringlog_db::Db::in_memory();
    /// db.put(b"a", b"1")?;
    /// db.put(b"b", b"22")?;
    /// let mut scan = db.range::<&[u8], _>(..)?;
    /// let mut total = 0;
    /// while let Some(len) = scan.next_with(|_key, value, _lsn| value.len()) {
    ///     total += len?;
    /// }
    /// assert_eq!(total, 3);
    /// # Ok(()) }
    /// ```
    pub fn next_with<R>(&mut self, f: impl FnOnce(&[u8], &[u8], Lsn) -> R) -> Option<Result<R>> {
        let n = self.front_node()?;
        let item = self.lend(n, f);
        self.end_on_error(item)
    }

    /// Advances from the back like [`DoubleEndedIterator::next_back`], lending the entry as
    /// [`Scan::next_with`] does (and, as it does, ending the scan after an error).
    pub fn next_back_with<R>(
        &mut self,
        f: impl FnOnce(&[u8], &[u8], Lsn) -> R,
    ) -> Option<Result<R>> {
        let n = self.back_node()?;
        let item = self.lend(n, f);
        self.end_on_error(item)
    }

    /// The node of the next entry from the front (a put visible at the scan's LSN). `'static`
    /// as the cursors are (see `Scan::new`); private, so the lifetime never leaves the scan.
    fn front_node(&mut self) -> Option<NodeRef<'static>> {
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

    /// The node of the next entry from the back (`'static` as in [`Scan::front_node`]).
    fn back_node(&mut self) -> Option<NodeRef<'static>> {
        let list = self.list();
        while !self.done {
            // The last node below the back cursor: the oldest version of the greatest key there.
            let cand = match &self.back {
                Back::Bound(Bound::Unbounded) => list.last(),
                Back::Bound(Bound::Excluded(h)) => list.seek_before(h, Lsn::MAX),
                // `(h, 0)` sorts after every version of `h` (LSNs start at 1): the last node
                // before it is the last node of a key <= h. One search: finding the first node
                // after `h` and then the node before that one raced with a writer linking a newer
                // version of that next key in between (the "node before" was then that version,
                // a key above the bound).
                Back::Bound(Bound::Included(h)) => list.seek_before(h, 0),
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

/// Items are fallible: see [`Scan`]. After an error the scan ends; the error is the last item.
impl Iterator for Scan {
    type Item = Result<(Arc<[u8]>, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        let n = self.front_node()?;
        let item = self.entry(n);
        self.end_on_error(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, None)
    }
}

impl DoubleEndedIterator for Scan {
    fn next_back(&mut self) -> Option<Self::Item> {
        let n = self.back_node()?;
        let item = self.entry(n);
        self.end_on_error(item)
    }
}

/// Once a scan returned `None` (exhausted, or after an error) it returns `None` for good, from
/// either end.
impl std::iter::FusedIterator for Scan {}

#[cfg(test)]
mod tests {
    use crate::{Db, Error};

    /// An error ends the scan, from both ends: the error is the last item.
    #[test]
    fn an_error_is_the_last_item() {
        let db = Db::in_memory();
        for k in [b"a", b"b", b"c", b"d"] {
            db.put(k, b"v").unwrap();
        }
        let mut scan = db.range::<&[u8], _>(..).unwrap();
        assert_eq!(&*scan.next().unwrap().unwrap().0, b"a");
        // What `entry` or `lend` will hand `end_on_error` when a read fails.
        let item = scan.end_on_error::<()>(Err(Error::Closed));
        assert!(matches!(item, Some(Err(Error::Closed))));
        assert!(scan.next().is_none());
        assert!(scan.next_back().is_none());
        assert!(scan.next_with(|_, _, _| ()).is_none());
        assert!(scan.next_back_with(|_, _, _| ()).is_none());
        assert!(scan.next().is_none());
    }
}

#[cfg(test)]
mod races {
    use std::ops::Bound;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::Scan;
    use crate::index::Gen;
    use crate::skiplist::SkipList;

    /// A reverse scan of `..=a` while a writer keeps linking newer versions of the next key,
    /// `b`, after the scan's LSN: it must only ever meet `a`. It met `b` (outside the range) in
    /// about 0.15 % of the attempts when `back_node` searched twice (the first node after `a`,
    /// then the node before that one) and the writer linked a version of `b` in between. Cannot
    /// fail spuriously: with the single search a hit is a bug, whatever the timing.
    #[test]
    fn a_reverse_scan_with_an_inclusive_bound_stays_in_range_under_overwrites() {
        let gen = Arc::new(Gen::new(SkipList::new(), 0));
        gen.list.insert(b"a", 1, Some(b"va"), 0);
        gen.list.insert(b"b", 1, Some(b"vb"), 0);
        let stop = AtomicBool::new(false);
        let mut outside = 0u64;
        const ATTEMPTS: u64 = 50_000;
        std::thread::scope(|s| {
            let (g, stop) = (&gen, &stop);
            s.spawn(move || {
                // At most 500,000 versions (memory stays bounded on a slow machine).
                let mut lsn = 2u64;
                while !stop.load(Ordering::Relaxed) && lsn < 500_000 {
                    g.list.insert(b"b", lsn, Some(b"newer"), 0);
                    lsn += 1;
                }
            });
            for _ in 0..ATTEMPTS {
                let hi = Bound::Included(&b"a"[..]);
                let mut scan = Scan::new(gen.clone(), None, 1, Bound::Unbounded, hi);
                let (k, _) = scan.next_back().expect("an entry").expect("no error");
                if &*k != b"a" {
                    outside += 1;
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert_eq!(
            outside, 0,
            "{outside} of {ATTEMPTS} reverse scans of ..=a met another key"
        );
    }
}
