//! Snapshots: a fixed LSN and a pin that keeps the versions visible there from being trimmed.

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use crate::index::scan::Scan;
use crate::index::{prefix_end, Lsn, Value};
use crate::wal::Shared;
use crate::Result;

/// A consistent, read-only view of the database as of one LSN: every transaction up to
/// [`Snapshot::lsn`] and nothing after it, whole. Taking one copies nothing (it registers its LSN);
/// while it lives, the versions it can see are kept however the retention policy trims, so reads
/// through it never fail with [`crate::Error::HistoryTrimmed`]. Readers never block writers, and
/// writers never block readers. A snapshot may outlive the [`crate::Db`] handle's borrow (it is
/// `'static`, `Send` and `Sync`); its reads fail with [`crate::Error::Closed`] once the database is
/// closed.
///
/// ```
/// # fn main() -> Result<(), ringlog_db::Error> {
/// let db = ringlog_db::Db::in_memory();
/// db.put(b"k", b"old")?;
/// let snap = db.snapshot();
/// db.put(b"k", b"new")?;
/// assert_eq!(snap.get(b"k")?.as_deref(), Some(&b"old"[..]));
/// assert_eq!(db.get(b"k")?.as_deref(), Some(&b"new"[..]));
/// assert_eq!(snap.iter()?.collect::<Result<Vec<_>, _>>()?.len(), 1);
/// # Ok(()) }
/// ```
pub struct Snapshot {
    shared: Arc<Shared>,
    lsn: Lsn,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("lsn", &self.lsn).finish()
    }
}

impl Snapshot {
    /// Takes a snapshot at the newest visible LSN.
    pub(crate) fn new(shared: Arc<Shared>) -> Snapshot {
        let lsn = shared.versions.pin(|| shared.visible.get());
        Snapshot { shared, lsn }
    }

    /// The LSN the snapshot reads at: the last transaction it sees.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// The value of `key` as of the snapshot.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Closed`] after the database was closed;
    /// [`crate::Error::Corruption`] or [`crate::Error::Io`] when an on-disk value cannot be read
    /// (as [`crate::Db::get`]).
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.get_with(key, crate::index::to_value)
    }

    /// The value of `key` as of the snapshot, borrowed: `f` receives the bytes (valid for the
    /// call) and the LSN that wrote them, or `None`; see [`crate::Db::get_with`].
    ///
    /// # Errors
    ///
    /// As [`Snapshot::get`]; `f` is not called on an error.
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(Option<(&[u8], Lsn)>) -> R) -> Result<R> {
        self.shared.check_open()?;
        self.shared.versions.read_at(key, self.lsn, f)
    }

    /// The values of many keys as of the snapshot, in the order of `keys` (see
    /// [`crate::Db::get_many`]: values on disk are read in one batch).
    ///
    /// # Errors
    ///
    /// As [`crate::Db::get_many`].
    pub fn get_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<Value>>> {
        self.shared.check_open()?;
        self.shared.versions.get_many(keys, None, self.lsn)
    }

    /// The entries whose keys lie in `range`, in key order, as of the snapshot: a lazy scan.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Closed`] after the database was closed. The scan's items are `Result`s
    /// too: reading an entry can fail, and the error is then the scan's last item (see [`Scan`]).
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<Scan> {
        self.shared.check_open()?;
        let lo = range.start_bound().map(|k| k.as_ref());
        let hi = range.end_bound().map(|k| k.as_ref());
        self.shared.versions.scan(lo, hi, self.lsn)
    }

    /// [`Snapshot::range`] with borrowed bounds.
    pub(crate) fn scan(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<Scan> {
        self.shared.check_open()?;
        self.shared.versions.scan(lo, hi, self.lsn)
    }

    /// The entries whose keys start with `prefix`, in key order, as of the snapshot.
    ///
    /// # Errors
    ///
    /// As [`Snapshot::range`].
    pub fn prefix(&self, prefix: &[u8]) -> Result<Scan> {
        self.shared.check_open()?;
        let end = prefix_end(prefix);
        self.shared.versions.scan(
            Bound::Included(prefix),
            crate::db::prefix_hi(&end),
            self.lsn,
        )
    }

    /// Every entry, in key order, as of the snapshot.
    ///
    /// # Errors
    ///
    /// As [`Snapshot::range`].
    pub fn iter(&self) -> Result<Scan> {
        self.shared.check_open()?;
        self.shared
            .versions
            .scan(Bound::Unbounded, Bound::Unbounded, self.lsn)
    }
}

impl Clone for Snapshot {
    fn clone(&self) -> Snapshot {
        let lsn = self.shared.versions.pin(|| self.lsn);
        Snapshot {
            shared: self.shared.clone(),
            lsn,
        }
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.shared.versions.unpin(self.lsn);
    }
}
