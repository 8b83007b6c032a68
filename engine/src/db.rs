//! The database handle: reads, snapshots, retention, durability waits and close. Opening is in
//! `open.rs`, the commit path in `commit.rs`, the history trimmer in `trimmer.rs`.

use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use ringlog_uring::{BackendInfo, FileLock, Vfs};

use crate::index::retention::{Retention, RetentionState, RETENTION_KEY};
use crate::index::scan::Scan;
use crate::index::{prefix_end, Gen, Lsn, OpRef, Value, Versions};
use crate::options::{Durability, Preallocate};
use crate::recovery::RecoveryStats;
use crate::snapshot::Snapshot;
use crate::txn::{RetryPolicy, Txn};
use crate::wal::{run_log_thread, Active, Shared};
use crate::{Error, Options, Result, SyncStrategy};

/// The log thread's life.
pub(crate) enum LogThread {
    /// Not needed yet: the active segment waits for it.
    NotStarted(Active),
    Running(JoinHandle<()>),
    /// Joined, or never needed before close.
    Done,
}

/// An open database. Share it between threads by reference or in an `Arc`; every method takes
/// `&self`.
pub struct Db {
    pub(crate) shared: Arc<Shared>,
    pub(crate) durability: Durability,
    /// The history trimmer, started when the index first has garbage to drop.
    pub(crate) trimmer: Mutex<Option<JoinHandle<()>>>,
    /// The thread building a recovered generation's key index after the open (with its stop
    /// flag), if one runs: a close stops and joins it, so that a dropped database leaves no
    /// thread (nor the memory it holds) behind.
    pub(crate) key_index_builder: Mutex<Option<(Arc<AtomicBool>, JoinHandle<()>)>>,
    pub(crate) lock: Mutex<Option<Box<dyn FileLock>>>,
    /// Held for the whole of [`Db::close`]: a close that comes while another runs waits for it
    /// to finish (everything synced, the directory lock released) before it answers.
    pub(crate) close_lock: Mutex<()>,
    pub(crate) vfs: Option<Arc<dyn Vfs>>,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) recovery: RecoveryStats,
    pub(crate) max_value_len: usize,
    pub(crate) max_txn_bytes: usize,
    pub(crate) direct_io: bool,
    pub(crate) sync_strategy: Option<(SyncStrategy, String)>,
    /// Opened with [`Db::open_read_only`]: no lock, no log; every write fails.
    pub(crate) read_only: bool,
}

/// Builds a [`Db`]: see [`Db::builder`]. Every setter sets the [`Options`] field of the same
/// name.
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until open() is called"]
pub struct DbBuilder {
    path: PathBuf,
    opts: Options,
}

/// Builder setters forwarding to the [`Options`] setter of the same name.
macro_rules! forward_setters {
    ($($(#[doc = $doc:literal])* $name:ident($arg:ident: $ty:ty);)*) => {$(
        $(#[doc = $doc])*
        pub fn $name(mut self, $arg: $ty) -> DbBuilder {
            self.opts = self.opts.$name($arg);
            self
        }
    )*};
}

impl DbBuilder {
    forward_setters! {
        /// Sets [`Options::durability`] (not [`Durability::InMemory`]: see [`Db::in_memory`]).
        durability(durability: Durability);
        /// Sets [`Options::segment_size`].
        segment_size(bytes: u64);
        /// Sets [`Options::io`].
        io(io: crate::IoChoice);
        /// Sets [`Options::direct_io`].
        direct_io(direct: bool);
        /// Sets [`Options::sync_strategy`].
        sync_strategy(strategy: SyncStrategy);
        /// Sets [`Options::preallocate`].
        preallocate(preallocate: Preallocate);
        /// Sets [`Options::recovery`].
        recovery(mode: crate::RecoveryMode);
        /// Sets [`Options::vfs`]: a custom I/O layer.
        vfs(vfs: Arc<dyn Vfs>);
        /// Sets [`Options::trim_threshold`].
        trim_threshold(versions: usize);
        /// Sets [`Options::checkpoint_bytes`].
        checkpoint_bytes(bytes: u64);
        /// Sets [`Options::checkpoint_on_close`].
        checkpoint_on_close(on: bool);
        /// Sets [`Options::codec`].
        codec(codec: crate::BlockCodec);
        /// Sets [`Options::lease_span`].
        lease_span(lsns: u64);
        /// Sets [`Options::rounds_in_flight`].
        rounds_in_flight(rounds: usize);
    }

    /// Replaces every option at once.
    pub fn options(mut self, opts: Options) -> DbBuilder {
        self.opts = opts;
        self
    }

    /// Opens the database: [`Db::open`] with the options set.
    ///
    /// # Errors
    ///
    /// As [`Db::open`].
    pub fn open(self) -> Result<Db> {
        Db::open(self.path, self.opts)
    }
}

// A database is shared between threads by reference or in an `Arc`.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Db>();
    assert_send_sync::<Snapshot>();
    assert_send_sync::<Scan>();
};

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dir", &self.dir)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// A builder for the database in directory `path`: [`Options`] set one by one, then
    /// [`DbBuilder::open`].
    ///
    /// ```
    /// use ringlog_db::{Db, Durability};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Db::builder(dir.path())
    ///     .durability(Durability::Strict)
    ///     .segment_size(16 << 20)
    ///     .open()?;
    /// db.put(b"k", b"v")?;
    /// db.close()?;
    /// # Ok::<(), ringlog_db::Error>(())
    /// ```
    pub fn builder(path: impl AsRef<Path>) -> DbBuilder {
        DbBuilder {
            path: path.as_ref().to_path_buf(),
            opts: Options::default(),
        }
    }

    /// A database with no log: nothing is written anywhere; its contents vanish on close. A key
    /// and its value take at most 2 GiB ([`Db::max_value_len`]; a larger put is
    /// [`Error::ValueTooLarge`]).
    pub fn in_memory() -> Db {
        Db::in_memory_with(Options::default())
    }

    /// [`Db::in_memory`] with the options that apply to a database without a log (e.g.
    /// [`Options::trim_threshold`]); the others have no effect (`durability` included: the
    /// database is `InMemory`), but are still checked.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOptions`] for inconsistent options, or for an option outside its range
    /// (e.g. a `segment_size` that is not a multiple of 4096), as [`Db::open`] would refuse it.
    pub fn in_memory_with_options(opts: Options) -> Result<Db> {
        opts.validate()?;
        Ok(Db::in_memory_with(opts))
    }

    fn in_memory_with(opts: Options) -> Db {
        let versions = Versions::new(
            Gen::new(crate::skiplist::SkipList::new(), 0),
            RetentionState::default(),
            opts.trim_threshold,
        );
        let shared = Arc::new(Shared::new(versions, 0, 1, None, 1, None));
        shared.conflicts.set_max_bytes(opts.conflict_history_bytes);
        Db {
            shared,
            durability: Durability::InMemory,
            trimmer: Mutex::new(None),
            key_index_builder: Mutex::new(None),
            close_lock: Mutex::new(()),
            lock: Mutex::new(None),
            vfs: None,
            dir: None,
            recovery: RecoveryStats::default(),
            // What one index node holds (a review found a larger value accepted, its insert
            // panicking after it had its LSN, and every later commit waiting for that LSN).
            max_value_len: crate::skiplist::MAX_VALUE_LEN,
            max_txn_bytes: usize::MAX,
            direct_io: false,
            sync_strategy: None,
            read_only: false,
        }
    }

    /// What recovery found when this database was opened.
    #[must_use]
    pub fn recovery_stats(&self) -> &RecoveryStats {
        &self.recovery
    }

    /// The database's default durability.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Largest value accepted for a key of `key_len` bytes. 0 also when a key that long does not
    /// fit a segment even with an empty value (its put is then [`Error::TransactionTooLarge`]):
    /// only with segments far smaller than the default and keys near [`crate::MAX_KEY_LEN`].
    #[must_use]
    pub fn max_value_len(&self, key_len: usize) -> usize {
        self.max_value_len.saturating_sub(key_len)
    }

    /// A read-only handle's [`Db::wait_durable`]: fdatasyncs every segment of the log it read
    /// (from the MANIFEST's first needed one on), through read-only descriptors. One that a
    /// writer's compaction removed since is skipped: it held only what a checkpoint the writer
    /// synced holds.
    fn sync_files_read(&self) -> Result<()> {
        let (Some(vfs), Some(dir), Some(c)) = (&self.vfs, &self.dir, self.shared.ckpt.get()) else {
            return Ok(());
        };
        let first = c.manifest.lock().first_needed_segment();
        let names = vfs
            .list_dir(dir)
            .map_err(|e| Error::io("list directory", dir.clone(), e))?;
        for id in names
            .iter()
            .filter_map(|n| crate::segment::parse_segment_name(n))
            .filter(|&id| id >= first)
        {
            let path = dir.join(crate::segment::segment_file_name(id));
            let file = match vfs.open(
                &path,
                ringlog_uring::OpenOptions {
                    write: false,
                    create: false,
                    direct: false,
                },
            ) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("open segment", path, e)),
            };
            file.sync_data()
                .map_err(|e| Error::io("sync segment", path, e))?;
        }
        Ok(())
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        self.shared.check_open()
    }

    /// [`Db::check_open`], and [`Error::ReadOnly`] for a handle of [`Db::open_read_only`].
    pub(crate) fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        match (&self.dir, self.read_only) {
            (Some(dir), true) => Err(Error::ReadOnly(dir.clone())),
            _ => Ok(()),
        }
    }

    /// True for a handle of [`Db::open_read_only`]: it reads the database as it was when it was
    /// opened, and every write fails with [`Error::ReadOnly`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn has_log(&self) -> bool {
        self.shared.log.is_some()
    }

    pub(crate) fn backend(&self) -> Option<BackendInfo> {
        self.vfs.as_ref().map(|v| v.backend())
    }

    pub(crate) fn direct_io(&self) -> bool {
        self.direct_io
    }

    pub(crate) fn sync_strategy_info(&self) -> (Option<SyncStrategy>, String) {
        match &self.sync_strategy {
            Some((s, why)) => (Some(*s), why.clone()),
            None if self.read_only => (None, "read-only handle: it writes no log".into()),
            None => (None, "in-memory database: no log".into()),
        }
    }

    /// Reads the newest visible value of `key` and the LSN that wrote it.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`Db::close`]; [`Error::Corruption`] or [`Error::Io`] when an
    /// on-disk value cannot be read ([`crate::Options::value_threshold`]: its record is damaged,
    /// or its segment was removed under a read-only handle).
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.get_with(key, crate::index::to_value)
    }

    /// Reads the newest visible value of `key` without copying it: `f` receives the value's
    /// bytes, borrowed from the index for the duration of the call, and the LSN that wrote them
    /// (`None` when the key has no value). [`Db::get`] is `get_with` plus a copy into a
    /// [`Value`]; this saves the allocation when the caller only looks at the bytes or copies them
    /// into a buffer of its own.
    ///
    /// ```
    /// # fn main() -> Result<(), ringlog_db::Error> {
    /// let db = ringlog_db::Db::in_memory();
    /// db.put(b"k", b"hello")?;
    /// let mut buf = Vec::new();
    /// let found = db.get_with(b"k", |v| v.map(|(bytes, _lsn)| buf.extend_from_slice(bytes)))?;
    /// assert!(found.is_some());
    /// assert_eq!(buf, b"hello");
    /// assert_eq!(db.get_with(b"absent", |v| v.is_none())?, true);
    /// # Ok(()) }
    /// ```
    ///
    /// `f` runs while the read holds the index without a lock: keep it short. Memory of index
    /// structures replaced while it runs (a trimmed generation, a grown key table) is freed only
    /// after it returns (docs/DURABILITY.md §6.1, "Read sections"), and a checkpoint's
    /// compaction waits for it (up to about a second, then it keeps those structures' value
    /// segments for a later checkpoint): `f` should not itself wait for a checkpoint
    /// ([`Db::checkpoint`], [`Db::backup_to`]) — that pair stalls for that second.
    ///
    /// # Errors
    ///
    /// As [`Db::get`]. `f` is not called on an error.
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(Option<(&[u8], Lsn)>) -> R) -> Result<R> {
        self.check_open()?;
        let shared = &*self.shared;
        shared.versions.read_latest(key, || shared.visible.get(), f)
    }

    /// Reads the newest visible values of many keys at once, all at one LSN (a consistent read),
    /// in the order of `keys`: `None` for a key without a value. With values on disk
    /// ([`crate::Options::value_threshold`]), every value not in the cache is read in one batch:
    /// one io_uring submission for all of them on the io_uring path (`pread` one after the other
    /// on the portable path), instead of one round trip to the device per key.
    ///
    /// ```
    /// # fn main() -> Result<(), ringlog_db::Error> {
    /// let db = ringlog_db::Db::in_memory();
    /// db.put(b"a", b"1")?;
    /// db.put(b"c", b"3")?;
    /// let got = db.get_many(&[b"c".as_slice(), b"b", b"a"])?;
    /// assert_eq!(got[0].as_deref(), Some(&b"3"[..]));
    /// assert!(got[1].is_none());
    /// assert_eq!(got[2].as_deref(), Some(&b"1"[..]));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`Db::close`]; the first read error of a value on disk
    /// ([`Error::Corruption`] naming the segment and offset, or [`Error::Io`]).
    pub fn get_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<Value>>> {
        self.check_open()?;
        let shared = &*self.shared;
        let visible = || shared.visible.get();
        shared.versions.get_many(keys, Some(&visible), visible())
    }

    /// Reads `key` as it was right after the transaction with LSN `lsn` committed: the newest
    /// version at or below `lsn`.
    ///
    /// ```
    /// # fn main() -> Result<(), ringlog_db::Error> {
    /// let db = ringlog_db::Db::in_memory();
    /// let first = db.put(b"k", b"1")?;
    /// db.put(b"k", b"2")?;
    /// let snap = db.snapshot(); // keeps the history it can see
    /// assert_eq!(db.get_at(b"k", first)?.as_deref(), Some(&b"1"[..]));
    /// # drop(snap);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::HistoryTrimmed`] when the versions needed were trimmed (below the retention
    /// policy's floor and no snapshot holds them); [`Error::NotYetVisible`] for an LSN above
    /// [`Db::last_lsn`]; [`Error::Closed`] after [`Db::close`]; [`Error::Corruption`] or
    /// [`Error::Io`] when an on-disk value cannot be read (as [`Db::get`]).
    pub fn get_at(&self, key: &[u8], lsn: Lsn) -> Result<Option<Value>> {
        self.check_visible(lsn)?;
        self.shared
            .versions
            .read_at(key, lsn, crate::index::to_value)
    }

    fn check_visible(&self, lsn: Lsn) -> Result<()> {
        self.check_open()?;
        let visible = self.shared.visible.get();
        if lsn > visible {
            return Err(Error::NotYetVisible {
                requested: lsn,
                visible,
            });
        }
        Ok(())
    }

    /// A snapshot of the database at the newest visible LSN: no copy is made (see
    /// [`Snapshot`]). Reads through it see exactly the transactions up to [`Snapshot::lsn`].
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(self.shared.clone())
    }

    /// The entries whose keys lie in `range`, in key order, as of the newest visible LSN when
    /// called: a lazy scan ([`Scan`]), in O(1) memory whatever the range's size, forward or
    /// reverse.
    ///
    /// ```
    /// # fn main() -> Result<(), ringlog_db::Error> {
    /// let db = ringlog_db::Db::in_memory();
    /// db.put(b"a", b"1")?;
    /// db.put(b"b", b"2")?;
    /// for item in db.range(b"a".as_slice()..b"b".as_slice())? {
    ///     let (key, value) = item?;
    ///     assert_eq!((&*key, &*value), (&b"a"[..], &b"1"[..]));
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`Db::close`]. The scan's items are `Result`s too: reading an
    /// entry can fail, and the error is then the scan's last item (see [`Scan`]).
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<Scan> {
        self.check_open()?;
        self.scan_latest(
            range.start_bound().map(|k| k.as_ref()),
            range.end_bound().map(|k| k.as_ref()),
        )
    }

    fn scan_latest(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<Scan> {
        let shared = &*self.shared;
        let mut tries = 0;
        loop {
            let lsn = shared.visible.get();
            match shared.versions.scan(lo, hi, lsn) {
                // A trim moved the floor past the LSN just read: read it again (the floor never
                // passes the visible LSN it was computed from, so once is enough).
                Err(Error::HistoryTrimmed { .. }) if tries < 3 => tries += 1,
                other => return other,
            }
        }
    }

    /// [`Db::range`] as of the transaction with LSN `lsn`.
    ///
    /// # Errors
    ///
    /// As [`Db::get_at`]; the scan's items as [`Db::range`]'s.
    pub fn range_at<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R, lsn: Lsn) -> Result<Scan> {
        self.check_visible(lsn)?;
        let lo = range.start_bound().map(|k| k.as_ref());
        let hi = range.end_bound().map(|k| k.as_ref());
        self.shared.versions.scan(lo, hi, lsn)
    }

    /// The entries whose keys start with `prefix`, in key order (a lazy scan).
    ///
    /// # Errors
    ///
    /// As [`Db::range`].
    pub fn prefix(&self, prefix: &[u8]) -> Result<Scan> {
        self.check_open()?;
        let end = prefix_end(prefix);
        self.scan_latest(Bound::Included(prefix), prefix_hi(&end))
    }

    /// [`Db::prefix`] as of the transaction with LSN `lsn`.
    ///
    /// # Errors
    ///
    /// As [`Db::range_at`].
    pub fn prefix_at(&self, prefix: &[u8], lsn: Lsn) -> Result<Scan> {
        self.check_visible(lsn)?;
        let end = prefix_end(prefix);
        self.shared
            .versions
            .scan(Bound::Included(prefix), prefix_hi(&end), lsn)
    }

    /// Number of live keys (commits in flight included).
    pub fn len(&self) -> usize {
        self.shared.versions.live_keys()
    }

    /// True when no key is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets `key` to `value` in a one-operation transaction with the default durability.
    ///
    /// # Errors
    ///
    /// As [`Txn::commit`]: bad keys or values ([`Error::EmptyKey`], [`Error::KeyTooLarge`],
    /// [`Error::ValueTooLarge`]) are refused before anything is written; [`Error::Poisoned`] after a
    /// failed write or sync; [`Error::Closed`] after [`Db::close`].
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<Lsn> {
        self.commit_ops(&[OpRef::Put(key, value)], None, false)
    }

    /// Removes `key` in a one-operation transaction with the default durability. Deleting an
    /// absent key still commits (and gets an LSN).
    ///
    /// # Errors
    ///
    /// As [`Db::put`].
    pub fn delete(&self, key: &[u8]) -> Result<Lsn> {
        self.commit_ops(&[OpRef::Delete(key)], None, false)
    }

    /// Starts a transaction. Its writes are buffered in the handle and applied atomically by
    /// [`Txn::commit`]; dropping it without commit discards them. Its reads see a snapshot taken
    /// at its first read and are validated at commit (see [`Txn`] for the isolation level).
    pub fn begin(&self) -> Txn<'_> {
        Txn::new(self)
    }

    /// Runs `f` in a new transaction and commits it, again on a fresh snapshot each time the
    /// commit (or `f`) fails with [`Error::Conflict`], at most `policy.max_attempts` times, with
    /// exponential backoff between attempts. Any other error — I/O, poisoned, durability,
    /// [`Error::TransactionTooOld`], an error of `f`'s own — is returned at once and never
    /// retried; after the last attempt the last conflict is returned. Returns `f`'s result and
    /// the commit's LSN.
    ///
    /// `f` may run several times: it must have no side effects outside the transaction (compute
    /// from what it reads through `tx`, write through `tx`).
    ///
    /// ```
    /// # fn main() -> Result<(), ringlog_db::Error> {
    /// let db = ringlog_db::Db::in_memory();
    /// db.put(b"alice", b"100")?;
    /// db.put(b"bob", b"0")?;
    /// let balance = |v: Option<ringlog_db::Value>| -> u64 {
    ///     v.map_or(0, |v| std::str::from_utf8(&v).unwrap().parse().unwrap())
    /// };
    /// let (moved, _lsn) = db.transact(&ringlog_db::RetryPolicy::default(), |tx| {
    ///     let (a, b) = (balance(tx.get(b"alice")?), balance(tx.get(b"bob")?));
    ///     tx.put(b"alice", (a - 30).to_string().as_bytes())?;
    ///     tx.put(b"bob", (b + 30).to_string().as_bytes())?;
    ///     Ok(30)
    /// })?;
    /// assert_eq!(moved, 30);
    /// assert_eq!(db.get(b"bob")?.as_deref(), Some(&b"30"[..]));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Txn::commit`], and whatever `f` returns.
    pub fn transact<T>(
        &self,
        policy: &RetryPolicy,
        mut f: impl FnMut(&mut Txn<'_>) -> Result<T>,
    ) -> Result<(T, Lsn)> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut tx = self.begin();
            let res = f(&mut tx).and_then(|t| {
                let lsn = match policy.durability {
                    Some(d) => tx.commit_with(d)?,
                    None => tx.commit()?,
                };
                Ok((t, lsn))
            });
            match res {
                Err(Error::Conflict { .. }) if attempt < policy.max_attempts.max(1) => {
                    self.shared.counters.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(policy.backoff_for(attempt));
                }
                other => return other,
            }
        }
    }

    /// The retention policy in force.
    pub fn retention(&self) -> Retention {
        self.shared.versions.retention.lock().policy
    }

    /// Sets the retention policy (see [`Retention`]), as a versioned entry of the log (in a
    /// reserved system key space) committed `Strict` whatever the database's durability (durable
    /// before it takes effect: the call waits for an fdatasync, which also makes every earlier
    /// commit durable). A policy that keeps history, set while [`Retention::Snapshots`] was in
    /// force, keeps it from this commit on: the trim floor rises to the LSN before it (no
    /// further than live snapshots and, with a log, the durable LSN allow; the first trim after
    /// they allow raises it the rest of the way, and a checkpoint or a restart takes it at
    /// once), and never moves back. Set after another history-keeping policy, it keeps what that
    /// one kept (setting `All` again at every open loses nothing). A trim running when the
    /// policy takes effect is not applied: it starts again under the new policy (so no trim
    /// planned under the old one raises the floor after this call returns). A trim that had to
    /// start again three times in a row holds policy changes off until it finishes: this call
    /// then waits for it.
    ///
    /// ```
    /// # fn main() -> Result<(), ringlog_db::Error> {
    /// use ringlog_db::{Db, Retention};
    /// let db = Db::in_memory();
    /// db.set_retention(Retention::All)?;
    /// let v1 = db.put(b"k", b"1")?;
    /// db.put(b"k", b"2")?;
    /// assert_eq!(db.get_at(b"k", v1)?.as_deref(), Some(&b"1"[..]));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Db::put`].
    pub fn set_retention(&self, policy: Retention) -> Result<Lsn> {
        // As it is recorded (and read back after a reopen).
        let policy = policy.normalized();
        let shared = &*self.shared;
        let v = &shared.versions;
        // Held across the commit: no trim plans with the old policy once the new one is logged.
        // (Commits never take it: they record their time samples under a lock of their own, so
        // this one's wait for its own commit's visibility waits for no one who needs it.)
        let mut r = v.retention.lock();
        // A trim that had to start again too often finishes first.
        while r.exclusive > 0 {
            v.retention_cv.wait(&mut r);
        }
        let before = r.policy;
        let floor = v.current().floor();
        let value = policy.encode(floor);
        // Durable before it takes effect: a policy a crash can lose must not have moved the
        // floor (or trimmed) in the meantime.
        let durability = shared.log.as_ref().map(|_| Durability::Strict).filter(|_| {
            !(crate::hooks::retention_entry_not_strict()
                && matches!(policy, Retention::All | Retention::LastVersions(_)))
        });
        let lsn = self.commit_ops(&[OpRef::Put(RETENTION_KEY, &value)], durability, true)?;
        r.policy = policy;
        // A trim planned under the old policy is not swapped in now (it starts again). The same
        // policy again plans the same: nothing to start again for.
        if policy != before {
            r.changes += 1;
        }
        if r.wants_samples() {
            // Visible now: commit_ops returned.
            v.sample(shared.wall_ns(), lsn);
        }
        v.sample_times.store(r.wants_samples(), Ordering::Relaxed);
        if policy != Retention::Snapshots
            && (before == Retention::Snapshots || crate::hooks::retention_again_raises_floor())
        {
            // History is kept from here on: reads below are refused, as they are after a restart
            // (recovery keeps only each key's newest version before this entry). After another
            // history-keeping policy the floor stays: recovery kept the versions since that
            // one's entry, and so does this run.
            r.pending = r.pending.max(lsn - 1);
            let mut cap = lsn - 1;
            if let Some(oldest) = v.oldest_snapshot() {
                cap = cap.min(oldest);
            }
            if shared.log.is_some() {
                cap = cap.min(self.durable_lsn());
            }
            v.current().floor.fetch_max(cap, Ordering::AcqRel);
        }
        drop(r);
        Ok(lsn)
    }

    /// The highest LSN whose transaction (and every earlier one) is durable on disk. On a
    /// read-only handle, the highest it knows to be: its checkpoint's LSN at first (the log it
    /// read may hold a writer's unsynced commits), its last LSN once [`Db::wait_durable`] synced
    /// the log's files.
    #[must_use]
    pub fn durable_lsn(&self) -> Lsn {
        self.shared.durable_lsn.load(Ordering::Acquire)
    }

    /// The newest visible LSN: every transaction up to it is visible to readers, whole. A
    /// `Strict` commit becomes visible only once durable; `Buffered` and `InMemory` ones at
    /// once. After a reopen, LSNs may continue above the last recovered one (LSNs are never
    /// handed out twice: see [`Options::lease_span`]).
    #[must_use]
    pub fn last_lsn(&self) -> Lsn {
        self.shared.visible.get()
    }

    /// The highest LSN assigned to a transaction so far, visible or not yet (a `Strict` commit
    /// becomes visible once durable; commits become visible in LSN order).
    #[must_use]
    pub fn last_assigned_lsn(&self) -> Lsn {
        let last = self.shared.state.lock().next_lsn - 1;
        if last <= self.shared.visible.skipped() {
            // Nothing assigned in this run yet (the LSNs up to the last lease were skipped).
            return self.last_lsn();
        }
        last
    }

    /// The LSN the next commit will get, at least. Right after an open it may be well above
    /// [`Db::last_lsn`]: a run starts above the LSN lease of the run before it, so that no LSN
    /// handed out before a crash is handed out again.
    #[must_use]
    pub fn next_lsn(&self) -> Lsn {
        self.shared.state.lock().next_lsn
    }

    /// Makes everything up to `lsn` durable (forcing a sync if needed) and waits for it. An `lsn`
    /// no commit has been given yet (above [`Db::last_assigned_lsn`]) is waited for until a
    /// commit takes it and becomes durable — from another thread: if none ever does, the wait
    /// lasts until the database closes ([`Error::Closed`]). A read-only handle commits nothing:
    /// for an LSN it read that it does not know to be durable, it fdatasyncs the log's segment
    /// files (what a writer wrote to them, synced or not, becomes durable; no byte changes).
    ///
    /// # Errors
    ///
    /// [`Error::DurabilityUnavailable`] for an in-memory database; [`Error::Poisoned`] when the
    /// sync failed (the database is poisoned); [`Error::Closed`] when the database closed before
    /// `lsn` was committed; on a read-only handle, [`Error::NotYetVisible`] for an `lsn` above
    /// its last LSN, and [`Error::Io`] when a segment's sync fails.
    pub fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        if self.read_only {
            self.check_open()?;
            let last = self.last_lsn();
            if lsn > last {
                return Err(Error::NotYetVisible {
                    requested: lsn,
                    visible: last,
                });
            }
            if lsn > self.durable_lsn() {
                self.sync_files_read()?;
                self.shared.durable_lsn.fetch_max(last, Ordering::AcqRel);
            }
            return Ok(());
        }
        if self.shared.log.is_none() {
            return Err(Error::DurabilityUnavailable(
                "an in-memory database has no log",
            ));
        }
        // Durable is durable, closed or not.
        if self.durable_lsn() >= lsn {
            return Ok(());
        }
        // Closing or closed: the close makes every committed LSN durable (the wait below ends
        // when it has, or with its error; an LSN no commit took is `Closed`) — no thread to start.
        if !self.shared.closed.load(Ordering::Acquire) {
            self.shared.start_log_thread()?;
        }
        self.shared.wait_durable(lsn)
    }

    /// Makes every commit so far durable.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`Db::close`] (which made everything durable); otherwise as
    /// [`Db::wait_durable`].
    pub fn sync(&self) -> Result<()> {
        if crate::hooks::sync_forgets_poison() && self.shared.state.lock().poisoned.is_some() {
            return Ok(());
        }
        // A request for work, refused after a close like any other (a close syncs everything:
        // `wait_durable` answers for the commits it made durable).
        self.check_open()?;
        self.wait_durable(self.last_assigned_lsn())
    }

    /// Starts the log thread if commits are pending and it never started. Every commit starts
    /// it before it waits for its round: a record appended without it is a bug, and its
    /// committer waits for a write no thread would make (a garbage collection's copies did).
    /// Started here, the thread writes it before the close ends, and the committer returns (a
    /// failure to start poisons the database, which releases the committer too).
    fn start_log_if_pending(&self) {
        if self.shared.log.is_none()
            || !matches!(*self.shared.log_thread.lock(), LogThread::NotStarted(_))
        {
            return;
        }
        if self.shared.state.lock().next_lsn - 1 > self.durable_lsn() {
            log::error!("commits pending with no log thread at close: starting it");
            if let Err(e) = self.shared.start_log_thread() {
                log::error!("the log thread did not start at close: {e}");
            }
        }
    }

    /// Runs the close-time checkpoint when one is due ([`Options::checkpoint_on_close`]; its
    /// error is only logged, as the log stays complete), then stops new commits, writes and syncs
    /// everything pending, joins the log thread, updates the MANIFEST if needed and releases the
    /// directory lock. Returns the first error (e.g. a sync failure). Later operations fail
    /// with [`Error::Closed`]. Closing again is a no-op (it answers [`Error::Poisoned`] if the
    /// database is poisoned); a close called while another one runs, from another thread,
    /// returns only once that one has finished — everything synced, the lock released.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] (or [`Error::Io`]) when the final write or sync failed: what was not
    /// durable before may be lost, and the next open recovers what is on disk.
    pub fn close(&self) -> Result<()> {
        // One close at a time: a second one must not answer before the first has made
        // everything durable and released the directory lock (it answered `Ok` at once, and a
        // caller that then exited or reopened the directory lost or was refused it).
        let _one = self.close_lock.lock();
        if self.read_only {
            // It wrote nothing and holds no lock: only the trimmer to stop.
            if self.shared.closed.swap(true, Ordering::AcqRel) {
                return Ok(());
            }
            self.stop_helpers();
            return Ok(());
        }
        // Before the close-time checkpoint too: a checkpoint stuck on such a commit holds the
        // lock that one needs.
        self.start_log_if_pending();
        if !self.shared.closed.load(Ordering::Acquire)
            && crate::checkpointer::due_at_close(&self.shared)
        {
            // The next open then replays no log. A failure loses nothing: the log is complete.
            if let Err(e) = self.checkpoint() {
                log::warn!("the checkpoint at close failed (the next open replays the log): {e}");
            }
        }
        let first = !self.shared.closed.swap(true, Ordering::AcqRel);
        if !first {
            // Closed before, and that close has finished (it held `close_lock`).
            return match &self.shared.state.lock().poisoned {
                Some(e) if !crate::hooks::close_forgets_poison() => Err(Error::Poisoned(e.clone())),
                _ => Ok(()),
            };
        }
        self.start_log_if_pending();
        {
            let mut st = self.shared.state.lock();
            st.closing = true;
            if st.poisoned.is_none() {
                self.shared.append_closing_lease(&mut st);
            }
            self.shared.wake_log(&mut st);
            if let Some(w) = self.shared.waker.get() {
                w.wake();
            }
        }
        let wrote = matches!(*self.shared.log_thread.lock(), LogThread::Running(_));
        let joined = match std::mem::replace(&mut *self.shared.log_thread.lock(), LogThread::Done) {
            LogThread::Running(t) => Some(t.join()),
            // Nothing was ever committed in this run: the log is exactly as recovery left it.
            LogThread::NotStarted(_) | LogThread::Done => None,
        };
        let result = {
            let mut st = self.shared.state.lock();
            if st.poisoned.is_none() && matches!(joined, Some(Err(_))) {
                // Recorded, so that a `wait_durable` of an LSN the thread never wrote ends.
                st.poisoned = Some(Arc::new(std::io::Error::other("the log thread panicked")));
            }
            self.shared.durable_cv.notify_all();
            match &st.poisoned {
                Some(e) => Err(Error::Poisoned(e.clone())),
                None => Ok(()),
            }
        };
        if result.is_ok() && self.shared.log.is_some() {
            debug_assert_eq!(
                self.durable_lsn(),
                self.shared.state.lock().next_lsn - 1,
                "close syncs everything"
            );
        }
        self.stop_helpers();
        // Everything is durable: as the closing lease does for the log, lower the MANIFEST's LSN
        // floor to the last LSN, so the next run continues from there; and retire the log when
        // the checkpoint holds all of it.
        let result = result.and_then(|()| match self.shared.ckpt.get() {
            Some(c) => {
                let last = self.shared.state.lock().next_lsn - 1;
                crate::checkpointer::at_close(&self.shared, c, last, wrote)
            }
            None => Ok(()),
        });
        self.lock.lock().take();
        if crate::hooks::close_forgets_poison() {
            return Ok(());
        }
        result
    }
}

impl Db {
    /// Stops the key index builder (the index stays deferred) and the history trimmer (a trim in
    /// progress gives up), and joins them.
    fn stop_helpers(&self) {
        if let Some((stop, t)) = self.key_index_builder.lock().take() {
            stop.store(true, Ordering::Relaxed);
            if t.join().is_err() {
                log::error!("the key index builder panicked");
            }
        }
        {
            let v = &self.shared.versions;
            v.trim_lock.lock().closing = true;
            v.trim_cv.notify_all();
        }
        if let Some(t) = self.trimmer.lock().take() {
            if t.join().is_err() {
                log::error!("the history trimmer panicked");
            }
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("closing the database on drop failed: {e}");
        }
        // Frees index memory replaced while read sections were open (see `rcu`).
        crate::rcu::collect();
    }
}

impl Shared {
    /// Starts the log thread if this is the first operation that needs it. A failure to start
    /// it poisons the database: no commit can become durable.
    pub(crate) fn start_log_thread(self: &Arc<Self>) -> Result<()> {
        if self.log_started.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut t = self.log_thread.lock();
        if let LogThread::NotStarted(_) = &*t {
            let LogThread::NotStarted(active) = std::mem::replace(&mut *t, LogThread::Done) else {
                unreachable!("matched above");
            };
            let vfs = self.vfs.clone().expect("a database with a log has a Vfs");
            match spawn_log_thread(self.clone(), vfs, active) {
                Ok(h) => *t = LogThread::Running(h),
                Err(e) => {
                    self.poison(e.to_poison());
                    return Err(e);
                }
            }
        }
        self.log_started.store(true, Ordering::Release);
        Ok(())
    }

    /// Leaves the log thread to the first commit that needs it: `active` is the segment it
    /// appends to. (A database with no log, or opened read-only, never starts one.)
    pub(crate) fn log_thread_waits(&self, active: Active) {
        *self.log_thread.lock() = LogThread::NotStarted(active);
        self.log_started.store(false, Ordering::Release);
    }
}

fn spawn_log_thread(
    shared: Arc<Shared>,
    vfs: Arc<dyn Vfs>,
    active: Active,
) -> Result<JoinHandle<()>> {
    // The active segment is in place before anyone can commit: a committer that leads its own
    // round finds it whatever the new thread's progress (a race here made the simulated runs
    // depend on thread timing).
    *shared.round.lock() = Some(active);
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("ringlog-log".into())
        .spawn(move || {
            // The driver (and its io_uring) is created on, and used only by, this thread.
            let driver = match vfs.log_driver() {
                Ok(d) => d,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = shared.waker.set(driver.waker());
            if tx.send(Ok(())).is_err() {
                return;
            }
            run_log_thread(shared, driver, vfs);
        })
        .map_err(|e| Error::io("spawn log thread", None, e))?;
    match rx.recv() {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(Error::io("create log driver", None, e))
        }
        Err(_) => {
            let _ = thread.join();
            Err(Error::io(
                "start log thread",
                None,
                std::io::Error::other("log thread exited during start"),
            ))
        }
    }
}

/// The end bound of a prefix scan, given the prefix's end (`prefix_end`: `None` when every key
/// above the prefix starts with it). `Db::prefix`, `Db::prefix_at` and `Snapshot::prefix` share it.
pub(crate) fn prefix_hi(end: &Option<Vec<u8>>) -> Bound<&[u8]> {
    match end {
        Some(e) => Bound::Excluded(e.as_slice()),
        None => Bound::Unbounded,
    }
}
