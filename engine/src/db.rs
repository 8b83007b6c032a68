//! The database handle: open (with recovery), reads, commits, close.

use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use ringlog_format::MAX_KEY_LEN;
use ringlog_uring::{BackendInfo, FileLock, OpenOptions, Vfs};

use crate::dir::{effective_strategy, prepare_dir, read_or_create_manifest};
use crate::index::retention::{Retention, RetentionState, RETENTION_KEY};
use crate::index::scan::Scan;
use crate::index::trim::{trim, TrimHost};
use crate::index::{prefix_end, Gen, Lsn, OpRef, Value, Versions};
use crate::log::{run_log_thread, txn_encoded_len, Active, LogConfig, Shared};
use crate::options::{validate_buffered, Durability, Preallocate, MAX_ALIGN};
use crate::recovery::{recover, RecoveryStats};
use crate::segment::{create_segment, now_ns, SegmentConfig};
use crate::snapshot::Snapshot;
use crate::txn::Txn;
use crate::{Error, Options, Result, SyncStrategy};

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
    /// The history trimmer, started when the index first has garbage to drop.
    trimmer: Mutex<Option<JoinHandle<()>>>,
    lock: Mutex<Option<Box<dyn FileLock>>>,
    vfs: Option<Arc<dyn Vfs>>,
    dir: Option<PathBuf>,
    recovery: RecoveryStats,
    pub(crate) next_txn_id: std::sync::atomic::AtomicU64,
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
        /// Sets [`Options::trim_threshold`].
        trim_threshold(versions: usize);
        /// Sets [`Options::lease_span`].
        lease_span(lsns: u64);
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
        let mut recovered = recover(&*vfs, &dir, epoch, opts.recovery)?;
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
        let max_lsn = crate::hooks::recovered_max_lsn(recovered.max_lsn, recovered.stats.last_lsn);
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
                    && t.current_version
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
            lease_span: opts.lease_span,
        };
        let max_txn_bytes = opts.max_txn_bytes();
        let versions = recovered_versions(&mut recovered, opts.trim_threshold);
        let shared = Arc::new(Shared::new(
            versions,
            recovered.stats.last_lsn.min(max_lsn),
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
            trimmer: Mutex::new(None),
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
        Db::in_memory_with(Options::default())
    }

    /// [`Db::in_memory`] with the options that apply to a database without a log (e.g.
    /// [`Options::trim_threshold`]); the others are ignored.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOptions`] for inconsistent options.
    pub fn in_memory_with_options(opts: Options) -> Result<Db> {
        opts.validate()?;
        Ok(Db::in_memory_with(opts))
    }

    fn in_memory_with(opts: Options) -> Db {
        let versions = Versions::new(
            Gen::new(crate::skiplist::SkipList::new(), 0, 0),
            RetentionState::default(),
            opts.trim_threshold,
        );
        Db {
            shared: Arc::new(Shared::new(versions, 0, 1, None, 1, None)),
            durability: Durability::InMemory,
            log_thread: Mutex::new(LogThread::Done),
            log_started: AtomicBool::new(true),
            trimmer: Mutex::new(None),
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

    pub(crate) fn check_open(&self) -> Result<()> {
        self.shared.check_open()
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
            None => (None, "in-memory database: no log".into()),
        }
    }

    /// Reads the newest visible value of `key` and the LSN that wrote it.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`Db::close`].
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.check_open()?;
        let shared = &*self.shared;
        shared.versions.get_latest(key, || shared.visible.get())
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
    /// [`Db::last_lsn`]; [`Error::Closed`] after [`Db::close`].
    pub fn get_at(&self, key: &[u8], lsn: Lsn) -> Result<Option<Value>> {
        self.check_visible(lsn)?;
        self.shared.versions.get_at(key, lsn)
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
    /// # Errors
    ///
    /// [`Error::Closed`] after [`Db::close`].
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<Scan> {
        self.check_open()?;
        self.scan_latest(
            range.start_bound().map(|k| k.as_ref()),
            range.end_bound().map(|k| k.as_ref()),
        )
    }

    fn scan_latest(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<Scan> {
        let shared = &*self.shared;
        loop {
            let lsn = shared.visible.get();
            match shared.versions.scan(lo, hi, lsn) {
                // A trim moved the floor past the LSN just read: read it again.
                Err(Error::HistoryTrimmed { .. }) => continue,
                other => return other,
            }
        }
    }

    /// [`Db::range`] as of the transaction with LSN `lsn`.
    ///
    /// # Errors
    ///
    /// As [`Db::get_at`].
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
    /// [`Error::Closed`] after [`Db::close`].
    pub fn prefix(&self, prefix: &[u8]) -> Result<Scan> {
        self.check_open()?;
        let end = prefix_end(prefix);
        self.scan_latest(Bound::Included(prefix), prefix_hi(&end))
    }

    /// [`Db::prefix`] as of the transaction with LSN `lsn`.
    ///
    /// # Errors
    ///
    /// As [`Db::get_at`].
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
    /// [`Txn::commit`]; dropping it without commit discards them.
    pub fn begin(&self) -> Txn<'_> {
        Txn::new(self)
    }

    /// The retention policy in force.
    pub fn retention(&self) -> Retention {
        self.shared.versions.retention.lock().policy
    }

    /// Sets the retention policy (see [`Retention`]), as a versioned entry of the log (in a
    /// reserved system key space) committed with the database's durability. The policy keeps
    /// history from this commit on: the trim floor rises to the LSN before it (no further than
    /// live snapshots and, with a log, the durable LSN allow), and never moves back.
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
        let floor = self.shared.versions.current().floor();
        let value = policy.encode(floor);
        let lsn = self.commit_ops(&[OpRef::Put(RETENTION_KEY, &value)], None, true)?;
        let shared = &*self.shared;
        let v = &shared.versions;
        let mut r = v.retention.lock();
        r.policy = policy;
        r.sample(now_ns(), lsn);
        v.sample_times.store(r.wants_samples(), Ordering::Relaxed);
        if policy != Retention::Snapshots {
            // History is kept from here on: reads below are refused, as they are after a restart
            // (recovery keeps only each key's newest version before this entry).
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

    /// The highest LSN whose transaction (and every earlier one) is durable on disk.
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
        self.shared.state.lock().next_lsn - 1
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
        self.wait_durable(self.last_assigned_lsn())
    }

    pub(crate) fn validate(&self, ops: &[OpRef<'_>]) -> Result<()> {
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

    pub(crate) fn max_txn_bytes(&self) -> usize {
        self.max_txn_bytes
    }

    /// Commits `ops` as one transaction: the only serialised steps are the LSN assignment and
    /// the log-buffer reservation (under the log mutex); the index inserts run concurrently;
    /// publication makes the transaction visible in LSN order (a `Strict` one once durable).
    /// `system` writes go to the engine's system key space (the log only, never the index).
    pub(crate) fn commit_ops(
        &self,
        ops: &[OpRef<'_>],
        durability: Option<Durability>,
        system: bool,
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
        let shared = &*self.shared;
        let has_log = shared.log.is_some();
        if has_log {
            self.start_log_thread()?;
        }
        // 1. The serialised step: LSN assignment and log-buffer reservation.
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
        if has_log && txn_id > ringlog_format::MAX_ID {
            return Err(Error::IdSpaceExhausted("transaction id"));
        }
        st.next_lsn += 1;
        // Buffered commits return before they are durable: only LSNs a durable lease covers.
        let mut wait_durable = mode == Durability::Strict;
        if has_log {
            // Commits are serialised by the state lock held here.
            let txn_id = self.next_txn_id.fetch_add(1, Ordering::Relaxed);
            let lease = shared.lease_due(&mut st, lsn);
            shared.append(&mut st, ops, lsn, txn_id, system, lease);
            if !shared.lease_covers(&mut st, lsn) {
                wait_durable = true;
            }
            if let Durability::Buffered {
                interval,
                max_pending,
            } = mode
            {
                shared.note_buffered(&mut st, interval, max_pending);
            }
            if wait_durable {
                shared.request_sync(&mut st, lsn);
                if !(mode == Durability::Strict
                    && crate::hooks::ack_strict_early(shared, &mut st, lsn))
                {
                    shared.register_commit_waiter(&mut st, lsn);
                } else {
                    wait_durable = false;
                }
            }
        }
        if shared.versions.sample_times.load(Ordering::Relaxed) {
            shared.versions.retention.lock().sample(now_ns(), lsn);
        }
        drop(st);
        // 2. The index inserts, concurrent with other committers'.
        let trim = !system && shared.versions.insert(ops, lsn);
        shared.counters.commits.fetch_add(1, Ordering::Relaxed);
        // 3. Durability, then publication. A commit that failed to become durable is never
        // published.
        if wait_durable {
            if crate::hooks::publish_strict_early() {
                shared.visible.publish(lsn);
                shared.await_durable(lsn).map_err(Error::Poisoned)?;
                return Ok(lsn);
            }
            shared.await_durable(lsn).map_err(Error::Poisoned)?;
        }
        shared.visible.publish(lsn);
        if trim {
            self.request_trim();
        }
        // A writer reads its own writes: wait for the commits before it to be published.
        if !shared.visible.wait(lsn, || {
            shared.will_block(ringlog_uring::BlockReason::Visibility)
        }) {
            let st = shared.state.lock();
            return Err(match &st.poisoned {
                Some(e) => Error::Poisoned(e.clone()),
                None => Error::Closed,
            });
        }
        Ok(lsn)
    }

    /// Wakes the history trimmer, starting it the first time.
    fn request_trim(&self) {
        let mut t = self.trimmer.lock();
        if self.shared.closed.load(Ordering::Acquire) {
            return;
        }
        if t.is_none() {
            let shared = self.shared.clone();
            match std::thread::Builder::new()
                .name("ringlog-trim".into())
                .spawn(move || run_trimmer(shared))
            {
                Ok(h) => *t = Some(h),
                Err(e) => {
                    log::warn!("could not start the history trimmer: {e}");
                    return;
                }
            }
        }
        let v = &self.shared.versions;
        let mut sig = v.trim_lock.lock();
        sig.requested = true;
        v.trim_cv.notify_one();
    }

    /// Runs a history trim now, in the calling thread: drops the versions no retention policy
    /// and no live snapshot needs. The database does this in the background on its own (see
    /// [`Options::trim_threshold`]); call it to bound memory at a moment of your choice.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`Db::close`] (or when it closes during the trim).
    pub fn trim_history(&self) -> Result<()> {
        self.check_open()?;
        let _one = self.shared.versions.trim_running.lock();
        trim(&*self.shared).map(|_| ()).ok_or(Error::Closed)
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
            if st.poisoned.is_none() {
                self.shared.append_closing_lease(&mut st);
            }
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
                self.shared.state.lock().next_lsn - 1,
                "close syncs everything"
            );
        }
        // The trimmer: stop it (a trim in progress gives up) and join it.
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

fn prefix_hi(end: &Option<Vec<u8>>) -> Bound<&[u8]> {
    match end {
        Some(e) => Bound::Excluded(e.as_slice()),
        None => Bound::Unbounded,
    }
}

/// The first generation of the index, built from what recovery loaded, with the retention policy
/// the log ends with and the trim floor it implies at restart (docs/DURABILITY.md, "Retention").
fn recovered_versions(recovered: &mut crate::recovery::Recovered, threshold: usize) -> Versions {
    let last = recovered.stats.last_lsn;
    let (policy, recorded) = recovered.retention;
    let mut state = RetentionState::new(policy);
    for &(t, lsn) in &recovered.samples {
        state.sample(t, lsn);
    }
    // After a restart no snapshot is live, and nothing below the recovered state can be read.
    let floor = state.trim_floor(now_ns(), last, recorded);
    let plan = state.plan(floor, last);
    let versions = std::mem::take(&mut recovered.versions);
    let (list, garbage) = crate::loader::build(versions, plan);
    let v = Versions::new(Gen::new(list, floor, 0), state, threshold);
    v.set_garbage(garbage);
    v
}

/// The history trimmer's thread: runs a trim whenever one is requested (enough garbage), and
/// periodically under a time-based policy, until the database closes.
fn run_trimmer(shared: Arc<Shared>) {
    let v = &shared.versions;
    loop {
        {
            let mut sig = v.trim_lock.lock();
            loop {
                if sig.closing {
                    return;
                }
                if sig.requested {
                    sig.requested = false;
                    break;
                }
                let periodic = match v.retention.lock().policy {
                    Retention::NewerThan(d) => Some((d / 4).clamp(
                        std::time::Duration::from_millis(10),
                        std::time::Duration::from_secs(10),
                    )),
                    _ => None,
                };
                match periodic {
                    Some(p) => {
                        if v.trim_cv.wait_for(&mut sig, p).timed_out() {
                            break;
                        }
                    }
                    None => v.trim_cv.wait(&mut sig),
                }
            }
        }
        let _one = v.trim_running.lock();
        if trim(&*shared).is_none() {
            return;
        }
    }
}

impl TrimHost for Shared {
    fn versions(&self) -> &Versions {
        &self.versions
    }

    fn visible(&self) -> Lsn {
        self.visible.get()
    }

    fn durable(&self) -> Option<Lsn> {
        self.log
            .as_ref()
            .map(|_| self.durable_lsn.load(Ordering::Acquire))
    }

    fn next_lsn(&self) -> Lsn {
        self.state.lock().next_lsn
    }

    fn wait_visible(&self, lsn: Lsn) -> bool {
        loop {
            if self
                .visible
                .wait_for(lsn, std::time::Duration::from_millis(5))
            {
                return true;
            }
            if self.versions.trim_lock.lock().closing || self.state.lock().poisoned.is_some() {
                return false;
            }
        }
    }

    fn now_ns(&self) -> u64 {
        now_ns()
    }
}
