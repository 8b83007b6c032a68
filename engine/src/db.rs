//! The database handle: open (with recovery), reads, commits, close.

use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use ringlog_format::{Manifest, MANIFEST_LEN, MAX_KEY_LEN};
use ringlog_uring::{BackendInfo, EntryKind, FileLock, OpenOptions, Vfs};

use crate::index::{prefix_end, Index, Lsn, OpRef, Value};
use crate::log::{run_log_thread, txn_encoded_len, Active, LogConfig, Shared};
use crate::options::{validate_buffered, Durability, Preallocate, MAX_ALIGN};
use crate::recovery::{recover, RecoveryStats};
use crate::segment::{create_segment, now_ns, SegmentConfig};
use crate::{Error, Options, Result, SyncStrategy};

const MANIFEST: &str = "MANIFEST";
const MANIFEST_TMP: &str = "MANIFEST.tmp";
const LOCK: &str = "LOCK";
/// How long an open retries a held directory lock before failing with [`Error::Locked`].
const LOCK_RETRY: Duration = Duration::from_millis(200);

/// Counters describing the database's activity since it was opened.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Stats {
    /// Transactions committed (including single puts and deletes).
    pub commits: u64,
    /// Bytes of records appended to the log (padding excluded).
    pub bytes_appended: u64,
    /// Write + fdatasync rounds completed (each may cover many commits: group commit).
    pub syncs: u64,
    /// Failed writes or syncs (any failure poisons the database).
    pub sync_failures: u64,
    /// Mean time of one write + sync round.
    pub mean_sync_latency: Duration,
    /// Longest write + sync round.
    pub max_sync_latency: Duration,
    /// When the last successful sync completed.
    pub last_sync: Option<SystemTime>,
    /// Segment files created by this run.
    pub segments_created: u64,
    /// Highest LSN known durable.
    pub durable_lsn: Lsn,
    /// Highest LSN committed.
    pub last_lsn: Lsn,
    /// Live keys.
    pub keys: usize,
    /// The I/O backend in use and why (`None` for an in-memory database).
    pub backend: Option<BackendInfo>,
    /// Whether segments are written with `O_DIRECT`.
    pub direct_io: bool,
    /// How batches are made durable in fact (`None` for an in-memory database):
    /// [`SyncStrategy::Dsync`] only where the filesystem is known to make a completed `RWF_DSYNC`
    /// write durable, [`SyncStrategy::WriteThenSync`] elsewhere, whatever was asked for.
    pub sync_strategy: Option<SyncStrategy>,
    /// Why [`Stats::sync_strategy`] is what it is, naming the filesystem.
    pub sync_strategy_reason: String,
    /// Whether a log failure has poisoned the database.
    pub poisoned: bool,
}

/// The log thread's life.
enum LogThread {
    /// Not needed yet: the active segment waits for it.
    NotStarted(Active),
    Running(JoinHandle<()>),
    /// Joined, or never needed before close.
    Done,
}

/// An open database. Share it between threads by reference or in an `Arc`; every method takes
/// `&self`.
pub struct Db {
    shared: Arc<Shared>,
    durability: Durability,
    /// The log thread, started by the first commit (or sync) that needs it: opening a database
    /// only to read it costs no thread, and closing it writes nothing.
    log_thread: Mutex<LogThread>,
    log_started: AtomicBool,
    lock: Mutex<Option<Box<dyn FileLock>>>,
    vfs: Option<Arc<dyn Vfs>>,
    dir: Option<PathBuf>,
    recovery: RecoveryStats,
    next_txn_id: std::sync::atomic::AtomicU64,
    max_value_len: usize,
    max_txn_bytes: usize,
    direct_io: bool,
    sync_strategy: Option<(SyncStrategy, String)>,
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
};

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dir", &self.dir)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most b.len() bytes into the valid, writable buffer b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 8 {
        u64::from_le_bytes(b)
    } else {
        // getrandom unavailable: time and pid are unique enough for an epoch.
        now_ns() ^ ((std::process::id() as u64) << 32)
    }
}

impl Db {
    /// Opens (creating if needed) the database in directory `path`, replaying its log.
    ///
    /// The log thread starts with the first commit (or [`Db::sync`] with something to sync): a
    /// session that only reads costs no thread, and its [`Db::close`] writes nothing.
    ///
    /// # Errors
    ///
    /// * [`Error::InvalidOptions`]: inconsistent options, or [`Durability::InMemory`] (an in-memory
    ///   database has no directory: use [`Db::in_memory`]);
    /// * [`Error::NotADirectory`], [`Error::NotADatabase`], [`Error::UnsupportedVersion`],
    ///   [`Error::Locked`]: `path` cannot be this database;
    /// * [`Error::Corruption`]: the log is damaged where a crash cannot have damaged it (see
    ///   [`crate::RecoveryMode`]); [`Error::IdSpaceExhausted`]: the log's ids reached the maximum;
    /// * [`Error::Io`]: the filesystem failed, or the I/O path asked for is unavailable.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        opts.validate()?;
        if opts.durability == Durability::InMemory {
            return Err(Error::InvalidOptions(format!(
                "Durability::InMemory has no directory, but {} was given: use Db::in_memory()",
                path.as_ref().display()
            )));
        }
        let dir = path.as_ref().to_path_buf();
        let vfs: Arc<dyn Vfs> = match &opts.vfs {
            Some(v) => v.clone(),
            None => ringlog_uring::select(opts.io)
                .map_err(|e| Error::io("select I/O backend", None, e))?,
        };
        let backend = vfs.backend();
        log::info!(
            "opening {} with the {} backend ({})",
            dir.display(),
            backend.kind,
            backend.reason
        );
        let lock = prepare_dir(&*vfs, &dir)?;
        let (strategy, strategy_reason) = effective_strategy(&*vfs, &dir, opts.sync_strategy);
        let epoch = read_or_create_manifest(&*vfs, &dir)?;
        let recovered = recover(&*vfs, &dir, epoch, opts.recovery)?;
        failpoint!("open::after_recovery");
        let stats = recovered.stats.clone();
        log::info!(
            "recovered {}: {} transactions applied, {} incomplete, {} aborted, {} orphaned records, {} bytes truncated, last LSN {}",
            dir.display(),
            stats.transactions_applied,
            stats.transactions_incomplete,
            stats.transactions_aborted,
            stats.orphaned_records,
            stats.bytes_truncated,
            stats.last_lsn
        );
        let run_id = recovered.max_run_id + 1;
        if run_id > ringlog_format::MAX_ID {
            return Err(Error::IdSpaceExhausted("run id"));
        }
        let seg = SegmentConfig {
            dir: dir.clone(),
            epoch,
            run_id,
            size: opts.segment_size,
            direct: opts.direct_io,
            prealloc: opts.preallocate,
        };
        let align = if opts.direct_io { MAX_ALIGN } else { 512 };
        let max_lsn = crate::hooks::recovered_max_lsn(recovered.max_lsn);
        let reserve = align + ringlog_format::RECORD_HEADER_LEN as u64 + 512;
        // The last segment, opened again after recovery. What recovery read may still be only in
        // the page cache: make it durable — the data, and the directory entry (a process crash
        // between a new segment's rename and the directory fsync leaves an entry that a power
        // loss can still drop).
        let reopen_tail = |id: u64, direct: bool| -> Result<Box<dyn ringlog_uring::VFile>> {
            let path = seg.path(id);
            let file = vfs
                .open(
                    &path,
                    OpenOptions {
                        write: true,
                        create: false,
                        direct,
                    },
                )
                .map_err(|e| Error::io("open segment", path.clone(), e))?;
            crate::hooks::resync_on_reopen(&*vfs, &dir, &*file)
                .map_err(|e| Error::io("sync segment", path, e))?;
            Ok(file)
        };
        // Resume in the last segment when its tail is clean, else start a new one.
        let mut pending_create = None;
        let active = match recovered.tail {
            Some(t)
                if t.clean
                    && t.valid_end.is_multiple_of(align)
                    && t.valid_end + reserve < seg.size =>
            {
                let path = seg.path(t.id);
                let file = reopen_tail(t.id, seg.direct)?;
                // The segment was prepared when it was created; make sure its space is still
                // reserved (a creation cut short by ENOSPC left it short) without rewriting it.
                if seg.prealloc != Preallocate::None {
                    if let Err(e) = file.allocate(seg.size) {
                        log::warn!("could not preallocate the rest of {}: {e}", path.display());
                    }
                }
                (Active { id: t.id, file }, t.valid_end)
            }
            Some(t) if recovered.stats.truncated_at.is_none() => {
                // A torn tail, which cannot be appended to: the next segment is created with the
                // first commit (by the log thread, as a rotation), so an open after a crash that
                // only reads creates and zero-fills nothing, and the next recovery cuts the same
                // torn bytes again. The old segment stays the log thread's "active" one until
                // then; it is never written again. (A truncating recovery's cut is made durable at
                // once instead, by the next segment's `prev_end`: below.)
                let file = reopen_tail(t.id, seg.direct)?;
                pending_create = Some(crate::hooks::deferred_prev_end(t.valid_end));
                (Active { id: t.id, file }, t.valid_end)
            }
            tail => {
                let (prev_id, prev_end) = tail.map(|t| (t.id, t.valid_end)).unwrap_or((0, 0));
                if let Some(t) = tail {
                    reopen_tail(t.id, false)?;
                }
                let file = create_segment(&*vfs, &seg, prev_id + 1, prev_end, max_lsn)?;
                (
                    Active {
                        id: prev_id + 1,
                        file,
                    },
                    ringlog_format::SEGMENT_HEADER_LEN as u64,
                )
            }
        };
        let (active, cursor) = active;
        let direct_io = active.file.direct_io().is_some();
        let backpressure = match opts.durability {
            Durability::Buffered { max_pending, .. } => {
                (max_pending.saturating_mul(4)).max(crate::log::MIN_BACKPRESSURE)
            }
            _ => crate::log::MIN_BACKPRESSURE,
        };
        let cfg = LogConfig {
            seg,
            align,
            strategy,
            backpressure,
        };
        let max_txn_bytes = opts.max_txn_bytes();
        let shared = Arc::new(Shared::new(
            recovered.index,
            max_lsn + 1,
            Some((cfg, active.id, cursor)),
            run_id,
            Some(vfs.clone()),
        ));
        if let Some(prev_end) = pending_create {
            shared.state.lock().defer_rotation(prev_end);
        }
        Ok(Db {
            shared,
            durability: opts.durability,
            log_thread: Mutex::new(LogThread::NotStarted(active)),
            log_started: AtomicBool::new(false),
            lock: Mutex::new(Some(lock)),
            vfs: Some(vfs),
            dir: Some(dir),
            recovery: stats,
            next_txn_id: (recovered.max_txn_id + 1).into(),
            max_value_len: opts.max_value_len(0),
            max_txn_bytes,
            direct_io,
            sync_strategy: Some((strategy, strategy_reason)),
        })
    }

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

    /// A database with no log: nothing is written anywhere; its contents vanish on close.
    pub fn in_memory() -> Db {
        Db {
            shared: Arc::new(Shared::new(Index::default(), 1, None, 1, None)),
            durability: Durability::InMemory,
            log_thread: Mutex::new(LogThread::Done),
            log_started: AtomicBool::new(true),
            lock: Mutex::new(None),
            vfs: None,
            dir: None,
            recovery: RecoveryStats::default(),
            next_txn_id: 1.into(),
            max_value_len: usize::MAX,
            max_txn_bytes: usize::MAX,
            direct_io: false,
            sync_strategy: None,
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

    /// Largest value accepted for a key of `key_len` bytes.
    #[must_use]
    pub fn max_value_len(&self, key_len: usize) -> usize {
        self.max_value_len.saturating_sub(key_len)
    }

    fn check_open(&self) -> Result<()> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Reads the newest committed value of `key` and the LSN that wrote it.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`Db::close`].
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.check_open()?;
        Ok(self.shared.index.read().get(key))
    }

    /// The entries whose keys lie in `range`, in key order, as of one moment (a consistent
    /// snapshot of the range, collected when called).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`Db::close`].
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<Scan> {
        self.check_open()?;
        let lo = range.start_bound().map(|k| k.as_ref());
        let hi = range.end_bound().map(|k| k.as_ref());
        Ok(Scan {
            items: self.shared.index.read().range(lo, hi).into_iter(),
        })
    }

    /// The entries whose keys start with `prefix`, in key order.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`Db::close`].
    pub fn prefix(&self, prefix: &[u8]) -> Result<Scan> {
        self.check_open()?;
        let end = prefix_end(prefix);
        let hi = match &end {
            Some(e) => Bound::Excluded(e.as_slice()),
            None => Bound::Unbounded,
        };
        Ok(Scan {
            items: self
                .shared
                .index
                .read()
                .range(Bound::Included(prefix), hi)
                .into_iter(),
        })
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.shared.index.read().len()
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
        self.commit_ops(&[OpRef::Put(key, value)], None)
    }

    /// Removes `key` in a one-operation transaction with the default durability. Deleting an
    /// absent key still commits (and gets an LSN).
    ///
    /// # Errors
    ///
    /// As [`Db::put`].
    pub fn delete(&self, key: &[u8]) -> Result<Lsn> {
        self.commit_ops(&[OpRef::Delete(key)], None)
    }

    /// Starts a transaction. Its writes are buffered in the handle and applied atomically by
    /// [`Txn::commit`]; dropping it without commit discards them.
    pub fn begin(&self) -> Txn<'_> {
        Txn {
            db: self,
            ops: Vec::new(),
            bytes: 0,
        }
    }

    /// The highest LSN whose transaction (and every earlier one) is durable on disk.
    #[must_use]
    pub fn durable_lsn(&self) -> Lsn {
        self.shared.durable_lsn.load(Ordering::Acquire)
    }

    /// The highest committed LSN.
    #[must_use]
    pub fn last_lsn(&self) -> Lsn {
        self.shared.last_lsn.load(Ordering::Acquire)
    }

    /// Makes everything up to `lsn` durable (forcing a sync if needed) and waits for it.
    ///
    /// # Errors
    ///
    /// [`Error::DurabilityUnavailable`] for an in-memory database; [`Error::Poisoned`] when the
    /// sync failed (the database is poisoned); [`Error::Closed`] when the database closed before
    /// `lsn` was committed.
    pub fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        if self.shared.log.is_none() {
            return Err(Error::DurabilityUnavailable(
                "an in-memory database has no log",
            ));
        }
        self.check_open()?;
        if self.durable_lsn() >= lsn {
            return Ok(());
        }
        self.start_log_thread()?;
        let mut st = self.shared.state.lock();
        if self.durable_lsn() >= lsn {
            return Ok(());
        }
        if st.closing && st.poisoned.is_none() {
            return Err(Error::Closed);
        }
        self.shared.request_sync(&mut st, lsn);
        loop {
            if self.durable_lsn() >= lsn {
                return Ok(());
            }
            if let Some(e) = &st.poisoned {
                return Err(Error::Poisoned(e.clone()));
            }
            // Closing, and `lsn` was never committed: it never will be.
            if st.closing && lsn >= st.next_lsn {
                return Err(Error::Closed);
            }
            self.shared
                .will_block(ringlog_uring::BlockReason::WaitDurable);
            self.shared.durable_cv.wait(&mut st);
        }
    }

    /// Makes every commit so far durable.
    ///
    /// # Errors
    ///
    /// As [`Db::wait_durable`].
    pub fn sync(&self) -> Result<()> {
        self.wait_durable(self.last_lsn())
    }

    /// Counters and the backend in use.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let syncs = c.syncs.load(Ordering::Relaxed);
        let total = c.sync_ns_total.load(Ordering::Relaxed);
        let last = c.last_sync_unix_ns.load(Ordering::Relaxed);
        Stats {
            commits: c.commits.load(Ordering::Relaxed),
            bytes_appended: c.bytes_appended.load(Ordering::Relaxed),
            syncs,
            sync_failures: c.sync_failures.load(Ordering::Relaxed),
            mean_sync_latency: Duration::from_nanos(total.checked_div(syncs).unwrap_or(0)),
            max_sync_latency: Duration::from_nanos(c.sync_ns_max.load(Ordering::Relaxed)),
            last_sync: (last != 0).then(|| UNIX_EPOCH + Duration::from_nanos(last)),
            segments_created: c.segments_created.load(Ordering::Relaxed),
            durable_lsn: self.durable_lsn(),
            last_lsn: self.last_lsn(),
            keys: self.len(),
            backend: self.vfs.as_ref().map(|v| v.backend()),
            direct_io: self.direct_io,
            sync_strategy: self.sync_strategy.as_ref().map(|(s, _)| *s),
            sync_strategy_reason: match &self.sync_strategy {
                Some((_, why)) => why.clone(),
                None => "in-memory database: no log".into(),
            },
            poisoned: self.shared.state.lock().poisoned.is_some(),
        }
    }

    fn validate(&self, ops: &[OpRef<'_>]) -> Result<()> {
        for op in ops {
            let key = op.key();
            if key.is_empty() {
                return Err(Error::EmptyKey);
            }
            if key.len() > MAX_KEY_LEN {
                return Err(Error::KeyTooLarge {
                    len: key.len(),
                    max: MAX_KEY_LEN,
                });
            }
            if let OpRef::Put(_, v) = op {
                if v.len() > self.max_value_len(key.len()) {
                    return Err(Error::ValueTooLarge {
                        len: v.len(),
                        max: self.max_value_len(key.len()),
                    });
                }
            }
        }
        if self.shared.log.is_some() {
            let len = txn_encoded_len(ops);
            if len > self.max_txn_bytes {
                return Err(Error::TransactionTooLarge {
                    len,
                    max: self.max_txn_bytes,
                });
            }
        }
        Ok(())
    }

    pub(crate) fn commit_ops(
        &self,
        ops: &[OpRef<'_>],
        durability: Option<Durability>,
    ) -> Result<Lsn> {
        self.check_open()?;
        let mode = match (self.durability, durability) {
            (_, None) => self.durability,
            (Durability::InMemory, Some(Durability::InMemory)) => Durability::InMemory,
            (Durability::InMemory, Some(_)) => {
                return Err(Error::DurabilityUnavailable(
                    "an in-memory database has no log to make durable",
                ))
            }
            (_, Some(Durability::InMemory)) => {
                return Err(Error::DurabilityUnavailable(
                    "a transaction cannot skip the log of a persistent database",
                ))
            }
            (
                _,
                Some(
                    d @ Durability::Buffered {
                        interval,
                        max_pending,
                    },
                ),
            ) => {
                validate_buffered(interval, max_pending)?;
                d
            }
            (_, Some(Durability::Strict)) => Durability::Strict,
        };
        self.validate(ops)?;
        self.start_log_thread()?;
        let shared = &*self.shared;
        let mut st = shared.state.lock();
        if st.closing {
            return Err(Error::Closed);
        }
        if let Some(e) = &st.poisoned {
            return Err(Error::Poisoned(e.clone()));
        }
        shared.wait_for_space(&mut st);
        if let Some(e) = &st.poisoned {
            return Err(Error::Poisoned(e.clone()));
        }
        if st.closing {
            return Err(Error::Closed);
        }
        let lsn = st.next_lsn;
        // Ids read from disk are at most MAX_ID (2^63 - 1), so these never overflow; a log whose
        // ids reached the maximum refuses commits instead of wrapping.
        if lsn > ringlog_format::MAX_ID {
            return Err(Error::IdSpaceExhausted("LSN"));
        }
        let txn_id = self.next_txn_id.load(Ordering::Relaxed);
        if shared.log.is_some() && txn_id > ringlog_format::MAX_ID {
            return Err(Error::IdSpaceExhausted("transaction id"));
        }
        st.next_lsn += 1;
        if shared.log.is_some() {
            // Commits are serialised by the state lock held here.
            let txn_id = self.next_txn_id.fetch_add(1, Ordering::Relaxed);
            shared.append(&mut st, ops, lsn, txn_id);
        }
        {
            let mut index = shared.index.write();
            for op in ops {
                index.apply(*op, lsn);
            }
        }
        shared.last_lsn.store(lsn, Ordering::Release);
        shared.counters.commits.fetch_add(1, Ordering::Relaxed);
        match mode {
            Durability::InMemory => {}
            Durability::Buffered {
                interval,
                max_pending,
            } => shared.note_buffered(&mut st, interval, max_pending),
            Durability::Strict => {
                if crate::hooks::ack_strict_early(shared, &mut st, lsn) {
                    return Ok(lsn);
                }
                shared.request_sync(&mut st, lsn);
                shared
                    .wait_committed(&mut st, lsn)
                    .map_err(Error::Poisoned)?;
            }
        }
        Ok(lsn)
    }

    /// Starts the log thread if this is the first operation that needs it. A failure to start
    /// it poisons the database: no commit can become durable.
    fn start_log_thread(&self) -> Result<()> {
        if self.log_started.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut t = self.log_thread.lock();
        if let LogThread::NotStarted(_) = &*t {
            let LogThread::NotStarted(active) = std::mem::replace(&mut *t, LogThread::Done) else {
                unreachable!("matched above");
            };
            let vfs = self.vfs.clone().expect("a database with a log has a Vfs");
            match spawn_log_thread(self.shared.clone(), vfs, active) {
                Ok(h) => *t = LogThread::Running(h),
                Err(e) => {
                    self.shared.poison(e.to_poison());
                    return Err(e);
                }
            }
        }
        self.log_started.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops new commits, writes and syncs everything pending, joins the log thread and releases
    /// the directory lock. Returns the first error (e.g. a sync failure). Later operations fail
    /// with [`Error::Closed`]; closing twice is a no-op.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] (or [`Error::Io`]) when the final write or sync failed: what was not
    /// durable before may be lost, and the next open recovers what is on disk.
    pub fn close(&self) -> Result<()> {
        let first = !self.shared.closed.swap(true, Ordering::AcqRel);
        if !first {
            return Ok(());
        }
        {
            let mut st = self.shared.state.lock();
            st.closing = true;
            self.shared.wake_log(&mut st);
            if let Some(w) = self.shared.waker.get() {
                w.wake();
            }
        }
        let joined = match std::mem::replace(&mut *self.log_thread.lock(), LogThread::Done) {
            LogThread::Running(t) => Some(t.join()),
            // Nothing was ever committed in this run: the log is exactly as recovery left it.
            LogThread::NotStarted(_) | LogThread::Done => None,
        };
        let result = {
            let st = self.shared.state.lock();
            self.shared.durable_cv.notify_all();
            match (&st.poisoned, joined) {
                (Some(e), _) => Err(Error::Poisoned(e.clone())),
                (None, Some(Err(_))) => Err(Error::Poisoned(Arc::new(std::io::Error::other(
                    "the log thread panicked",
                )))),
                _ => Ok(()),
            }
        };
        if result.is_ok() && self.shared.log.is_some() {
            debug_assert_eq!(
                self.durable_lsn(),
                self.last_lsn(),
                "close syncs everything"
            );
        }
        self.lock.lock().take();
        result
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::error!("closing the database on drop failed: {e}");
        }
    }
}

fn spawn_log_thread(
    shared: Arc<Shared>,
    vfs: Arc<dyn Vfs>,
    active: Active,
) -> Result<JoinHandle<()>> {
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
            run_log_thread(shared, driver, active, vfs);
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

fn prepare_dir(vfs: &dyn Vfs, dir: &Path) -> Result<Box<dyn FileLock>> {
    match vfs
        .kind_of(dir)
        .map_err(|e| Error::io("stat", dir.to_path_buf(), e))?
    {
        None => {
            vfs.create_dir_all(dir)
                .map_err(|e| Error::io("create directory", dir.to_path_buf(), e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                vfs.sync_dir(parent)
                    .map_err(|e| Error::io("sync directory", parent.to_path_buf(), e))?;
            }
        }
        Some(EntryKind::Dir) => {}
        Some(_) => return Err(Error::NotADirectory(dir.to_path_buf())),
    }
    let names = vfs
        .list_dir(dir)
        .map_err(|e| Error::io("list directory", dir.to_path_buf(), e))?;
    let ours = |n: &str| n == MANIFEST || n == MANIFEST_TMP || n == LOCK;
    if !names.iter().any(|n| n == MANIFEST) && names.iter().any(|n| !ours(n)) {
        return Err(Error::NotADatabase(dir.to_path_buf()));
    }
    let lock_path = dir.join(LOCK);
    // A lock is held by an open file description, which a fork duplicates: a process another
    // thread is spawning holds our just-released lock until its exec closes the descriptor.
    // Retry briefly before calling the directory locked.
    let mut delay = Duration::from_micros(500);
    let give_up = std::time::Instant::now() + LOCK_RETRY;
    loop {
        match vfs.lock(&lock_path) {
            Ok(lock) => return Ok(lock),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() >= give_up {
                    return Err(Error::Locked(dir.to_path_buf()));
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(Error::io("lock", lock_path.clone(), e)),
        }
    }
}

/// The strategy the log thread uses on `dir`'s filesystem when `requested` was asked for, and why.
/// A completed `RWF_DSYNC` write is trusted only where the filesystem is known to make it durable
/// ([`ringlog_uring::FsInfo`]); elsewhere, or when the filesystem cannot be identified, every
/// batch gets an explicit fdatasync (docs/DURABILITY.md, "Which filesystems get RWF_DSYNC").
fn effective_strategy(
    vfs: &dyn Vfs,
    dir: &Path,
    requested: SyncStrategy,
) -> (SyncStrategy, String) {
    static DOWNGRADED: std::sync::Once = std::sync::Once::new();
    let (strategy, reason) = match (requested, vfs.filesystem(dir)) {
        (SyncStrategy::Dsync, Ok(fs)) if fs.dsync_durable => (
            SyncStrategy::Dsync,
            format!("RWF_DSYNC writes, as requested: their completion is durable on {fs}"),
        ),
        (SyncStrategy::Dsync, found) => {
            let fs = match found {
                Ok(fs) => fs.to_string(),
                Err(e) => format!("a filesystem statfs could not identify ({e})"),
            };
            let reason = format!(
                "write then fdatasync instead of the requested RWF_DSYNC: a completed RWF_DSYNC write is not known to be durable on {fs}"
            );
            let mut first = false;
            DOWNGRADED.call_once(|| first = true);
            if first {
                log::warn!("{}: {reason}", dir.display());
            } else {
                log::info!("{}: {reason}", dir.display());
            }
            (SyncStrategy::WriteThenSync, reason)
        }
        (other, Ok(fs)) => (other, format!("{other:?}, as requested ({fs})")),
        (other, Err(e)) => (
            other,
            format!("{other:?}, as requested (filesystem unknown: statfs: {e})"),
        ),
    };
    log::debug!("{}: sync strategy {strategy:?}: {reason}", dir.display());
    (strategy, reason)
}

fn read_or_create_manifest(vfs: &dyn Vfs, dir: &Path) -> Result<u64> {
    let path = dir.join(MANIFEST);
    if vfs
        .kind_of(&path)
        .map_err(|e| Error::io("stat", path.clone(), e))?
        .is_some()
    {
        let file = vfs
            .open(&path, OpenOptions::default())
            .map_err(|e| Error::io("open manifest", path.clone(), e))?;
        let size = file
            .size()
            .map_err(|e| Error::io("stat manifest", path.clone(), e))?;
        if size != MANIFEST_LEN as u64 {
            return Err(Error::Corruption {
                file: path,
                offset: size.min(MANIFEST_LEN as u64),
                reason: format!(
                    "the MANIFEST is {size} bytes long; a ringlog MANIFEST is exactly {MANIFEST_LEN} bytes (cut short or overwritten)"
                ),
            });
        }
        let mut bytes = [0u8; MANIFEST_LEN];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|e| Error::io("read manifest", path.clone(), e))?;
        return match Manifest::decode(&bytes) {
            Ok(m) => Ok(m.epoch),
            Err(ringlog_format::DecodeError::UnsupportedVersion { version, .. }) => {
                Err(Error::UnsupportedVersion {
                    path: dir.to_path_buf(),
                    found: version,
                    supported: ringlog_format::FORMAT_VERSION,
                })
            }
            Err(ringlog_format::DecodeError::BadMagic { offset }) => Err(Error::Corruption {
                file: path,
                offset,
                reason: format!(
                    "the MANIFEST does not start with ringlog's magic {:?}: damaged, or written by another program",
                    String::from_utf8_lossy(&ringlog_format::MANIFEST_MAGIC)
                ),
            }),
            Err(e) => Err(Error::Corruption {
                file: path,
                offset: e.offset(),
                reason: e.to_string(),
            }),
        };
    }
    // A new database: write the manifest beside, sync, rename into place, sync the directory.
    let epoch = random_u64();
    let tmp = dir.join(MANIFEST_TMP);
    let file = vfs
        .open(
            &tmp,
            OpenOptions {
                write: true,
                create: true,
                direct: false,
            },
        )
        .map_err(|e| Error::io("create manifest", tmp.clone(), e))?;
    file.set_len(0)
        .map_err(|e| Error::io("truncate manifest", tmp.clone(), e))?;
    file.write_all_at(&Manifest::new(epoch, now_ns()).encode(), 0)
        .map_err(|e| Error::io("write manifest", tmp.clone(), e))?;
    file.sync_all()
        .map_err(|e| Error::io("sync manifest", tmp.clone(), e))?;
    drop(file);
    failpoint!("manifest::before_rename");
    vfs.rename(&tmp, &path)
        .map_err(|e| Error::io("rename manifest", path.clone(), e))?;
    failpoint!("manifest::before_dir_sync");
    vfs.sync_dir(dir)
        .map_err(|e| Error::io("sync directory", dir.to_path_buf(), e))?;
    log::info!("created database {} (epoch {epoch:#018x})", dir.display());
    Ok(epoch)
}

/// An ordered snapshot of entries returned by [`Db::range`] and [`Db::prefix`].
#[derive(Debug)]
pub struct Scan {
    items: std::vec::IntoIter<(Arc<[u8]>, Value)>,
}

impl Iterator for Scan {
    type Item = (Arc<[u8]>, Value);
    fn next(&mut self) -> Option<Self::Item> {
        self.items.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}

impl DoubleEndedIterator for Scan {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.items.next_back()
    }
}

impl ExactSizeIterator for Scan {}

enum Op {
    Put(Box<[u8]>, Box<[u8]>),
    Delete(Box<[u8]>),
}

impl Op {
    fn as_ref(&self) -> OpRef<'_> {
        match self {
            Op::Put(k, v) => OpRef::Put(k, v),
            Op::Delete(k) => OpRef::Delete(k),
        }
    }
}

/// A transaction: writes buffered until [`Txn::commit`], then applied atomically with one LSN.
/// Reads through the transaction see its own writes first. Dropping it without committing
/// discards its writes.
#[must_use = "a transaction dropped without commit() discards its writes"]
pub struct Txn<'db> {
    db: &'db Db,
    ops: Vec<Op>,
    bytes: usize,
}

impl std::fmt::Debug for Txn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn")
            .field("ops", &self.ops.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Txn<'_> {
    fn add(&mut self, op: Op) -> Result<()> {
        self.db.validate(&[op.as_ref()])?;
        let len = txn_encoded_len(&[op.as_ref()]);
        // A one-operation transaction is one autocommit record; with more, Begin and Commit
        // markers frame the operations.
        let markers = if self.ops.is_empty() {
            0
        } else {
            2 * ringlog_format::encoded_len(0, ringlog_format::MARKER_PAYLOAD_LEN)
        };
        let total = self.bytes + len + markers;
        if self.db.shared.log.is_some() && total > self.db.max_txn_bytes {
            return Err(Error::TransactionTooLarge {
                len: total,
                max: self.db.max_txn_bytes,
            });
        }
        self.bytes += len;
        self.ops.push(op);
        Ok(())
    }

    /// Buffers `key` = `value`. Invalid input is refused here, leaving the transaction as it was.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyKey`], [`Error::KeyTooLarge`], [`Error::ValueTooLarge`]: checked at once, so
    /// a bad operation never reaches the commit.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.add(Op::Put(key.into(), value.into()))
    }

    /// Buffers the removal of `key`.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyKey`], [`Error::KeyTooLarge`].
    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.add(Op::Delete(key.into()))
    }

    /// Reads `key` as this transaction would leave it: its own latest write, else the database's
    /// committed value (its LSN is the committed one; a pending write has LSN 0).
    ///
    /// # Errors
    ///
    /// As [`Db::get`].
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        for op in self.ops.iter().rev() {
            match op {
                Op::Put(k, v) if &**k == key => return Ok(Some(Value::new(Arc::from(&**v), 0))),
                Op::Delete(k) if &**k == key => return Ok(None),
                _ => {}
            }
        }
        self.db.get(key)
    }

    /// Number of buffered operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Commits with the database's durability and returns the transaction's LSN. An empty
    /// transaction writes nothing and returns the current last LSN.
    ///
    /// # Errors
    ///
    /// [`Error::TransactionTooLarge`] when its records cannot fit in one segment (nothing is
    /// written); [`Error::Poisoned`] when the write or sync failed (a `Strict` commit is then not
    /// durable and the database refuses further writes); [`Error::Closed`] after [`Db::close`];
    /// [`Error::IdSpaceExhausted`] when the log's LSNs reached the format's maximum.
    pub fn commit(self) -> Result<Lsn> {
        self.commit_inner(None)
    }

    /// Commits with `durability` instead of the database's: `Strict` waits for an fdatasync
    /// covering this and every earlier commit; `Buffered` does not wait. Asking an in-memory
    /// database for durability, or a persistent one to skip its log, is an error.
    ///
    /// # Errors
    ///
    /// As [`Txn::commit`], and [`Error::DurabilityUnavailable`] when an in-memory database is asked
    /// for durability or a database with a log for `InMemory`.
    pub fn commit_with(self, durability: Durability) -> Result<Lsn> {
        self.commit_inner(Some(durability))
    }

    fn commit_inner(self, durability: Option<Durability>) -> Result<Lsn> {
        if self.ops.is_empty() {
            self.db.check_open()?;
            return Ok(self.db.last_lsn());
        }
        let refs: Vec<OpRef<'_>> = self.ops.iter().map(Op::as_ref).collect();
        self.db.commit_ops(&refs, durability)
    }

    /// Discards the buffered writes (the same as dropping the transaction).
    pub fn abort(self) {}
}
