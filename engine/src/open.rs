//! Opening a database: the directory, recovery, resuming the log's tail (or starting a new
//! segment), and the first index generation.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::Mutex;
use ringlog_uring::{OpenOptions, Vfs};

use crate::db::Db;
use crate::dir::{effective_strategy, prepare_dir, read_or_create_manifest};
use crate::index::retention::{RetentionState, Samples};
use crate::index::{Gen, Lsn, Versions};
use crate::options::{Durability, MAX_ALIGN};
use crate::recovery::recover;
use crate::segment::{create_segment, SegmentConfig};
use crate::wal::{Active, LogConfig, Shared};
use crate::{Error, Options, Result};

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
    /// * [`Error::CodecMismatch`]: the database was created with another
    ///   [`Options::codec`](crate::Options::codec) (or one this build lacks);
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
        let codec = ringlog_format::codec_by_id(opts.codec.id())
            .expect("every BlockCodec of this build is a format codec");
        let manifest = read_or_create_manifest(&*vfs, &dir, codec.id())?;
        let epoch = manifest.epoch;
        if manifest.codec != codec.id() {
            return Err(Error::CodecMismatch {
                path: dir.clone(),
                found: manifest.codec,
                requested: codec.id(),
            });
        }
        let mut recovered = recover(&*vfs, &dir, &manifest, opts.recovery, false)?;
        // A truncating recovery that cut the log recorded its LSN floor in a new MANIFEST.
        let manifest = recovered.manifest.take().unwrap_or(manifest);
        failpoint!(OPEN_AFTER_RECOVERY);
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
        let reserve = align
            + (ringlog_format::RECORD_HEADER_LEN + ringlog_format::BATCH_HEAD_LEN) as u64
            + 512;
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
        // Where this run's log starts new segments until garbage collection sizes them.
        let rotate_at =
            crate::checkpointer::opening_rotation_size(opts.value_threshold.is_some(), seg.size);
        // Resume in the last segment when its tail is clean and short of the rotation size,
        // else start a new one.
        let mut pending_create = None;
        let active = match recovered.tail {
            Some(t)
                if t.clean
                    && t.current_version
                    && t.valid_end.is_multiple_of(align)
                    && t.valid_end + reserve < rotate_at =>
            {
                let path = seg.path(t.id);
                let file = reopen_tail(t.id, seg.direct)?;
                // What the segment's creation and growth prepared; the log thread prepares more
                // as rounds reach it. A segment of an earlier version (or one whose growth an
                // error cut short) may end anywhere: never trust more than what is there.
                let mut len = file
                    .size()
                    .map_err(|e| Error::io("stat segment", path.clone(), e))?
                    .min(seg.size);
                if crate::hooks::reopen_forgets_growth() {
                    len = crate::segment::initial_len(seg.size);
                }
                (
                    Active {
                        id: t.id,
                        file: file.into(),
                        len,
                    },
                    t.valid_end,
                )
            }
            Some(t) if recovered.stats.truncated_at.is_none() => {
                // A torn tail, which cannot be appended to (or one past the rotation size, which
                // the next transaction would leave anyway): the next segment is created with the
                // first commit (by the log thread, as a rotation), so an open after a crash that
                // only reads creates and zero-fills nothing, and the next recovery cuts the same
                // torn bytes again. The old segment stays the log thread's "active" one until
                // then; it is never written again. (A truncating recovery's cut is made durable at
                // once instead, by the next segment's `prev_end`: below.)
                let file = reopen_tail(t.id, seg.direct)?;
                pending_create = Some(crate::hooks::deferred_prev_end(t.valid_end));
                // Never written again: nothing to prepare.
                let len = seg.size;
                (
                    Active {
                        id: t.id,
                        file: file.into(),
                        len,
                    },
                    t.valid_end,
                )
            }
            tail => {
                let (prev_id, prev_end) = tail
                    .map(|t| (t.id, t.valid_end))
                    .unwrap_or((manifest.first_segment.saturating_sub(1), 0));
                if let Some(t) = tail {
                    reopen_tail(t.id, false)?;
                }
                let file = create_segment(&*vfs, &seg, prev_id + 1, prev_end, max_lsn)?;
                (
                    Active {
                        id: prev_id + 1,
                        file: file.into(),
                        len: crate::segment::initial_len(seg.size),
                    },
                    ringlog_format::SEGMENT_HEADER_LEN as u64,
                )
            }
        };
        let (active, cursor) = active;
        let backpressure = match opts.durability {
            Durability::Buffered { max_pending, .. } => {
                (max_pending.saturating_mul(4)).max(crate::wal::MIN_BACKPRESSURE)
            }
            _ => crate::wal::MIN_BACKPRESSURE,
        };
        let cfg = LogConfig {
            seg,
            align,
            strategy,
            backpressure,
            lease_span: opts.lease_span,
            rounds_in_flight: opts.rounds_in_flight,
        };
        let parts = Parts {
            dir,
            vfs,
            manifest,
            codec,
            run_id,
            max_lsn,
            lock: Some(lock),
            log: Some(LogParts {
                cfg,
                active,
                cursor,
                pending_create,
                rotate_at,
                sync_strategy: (strategy, strategy_reason),
            }),
        };
        Ok(assemble(parts, &opts, recovered, stats))
    }

    /// Opens the database in directory `path` for reading only, as it is on disk now: never
    /// takes the directory's lock, never writes, creates or removes a file, and works while
    /// another process (or handle) has the database open for writing.
    ///
    /// The handle sees the state the log held when it was opened (recovery's rules: torn tails
    /// are left out, not cut); it never sees later commits. Every read works as on a writable
    /// handle; every write ([`Db::put`], a transaction with writes, [`Db::checkpoint`],
    /// [`Db::set_retention`], ...) fails with [`Error::ReadOnly`]. Leftovers a crash left (an
    /// unfinished checkpoint or segment) are left out, not removed. Values the handle holds by
    /// reference are read from their files on demand: if a writer's compaction removes such a
    /// file meanwhile, that read fails with [`Error::Io`] (open again for a newer view).
    ///
    /// While a writer appends, the log's last bytes may be half written, and a compaction may
    /// remove a file between the listing and the read: when recovery fails that way and the
    /// directory's lock is held, the open starts again (a few times, briefly) before reporting
    /// the error.
    ///
    /// ```
    /// # fn main() -> Result<(), ringlog_db::Error> {
    /// use ringlog_db::{Db, Error, Options};
    /// let dir = tempfile::tempdir().unwrap();
    /// let writer = Db::open(dir.path(), Options::default())?;
    /// writer.put(b"k", b"v")?;
    /// // The writer still holds the database open.
    /// let reader = Db::open_read_only(dir.path(), Options::default())?;
    /// assert_eq!(reader.get(b"k")?.as_deref(), Some(&b"v"[..]));
    /// assert!(matches!(reader.put(b"k", b"w"), Err(Error::ReadOnly(_))));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Db::open`] (never [`Error::Locked`]), and [`Error::NotADatabase`] when the
    /// directory holds no MANIFEST, [`Error::Io`] (kind `NotFound`) when there is no directory
    /// (a read-only open creates no database);
    /// [`Error::InvalidOptions`] for [`crate::RecoveryMode::TruncateAtCorruption`] (it cuts the log)
    /// and, as for [`Db::open`], for [`Durability::InMemory`] (a directory is given).
    pub fn open_read_only(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        opts.validate()?;
        if opts.durability == Durability::InMemory {
            return Err(Error::InvalidOptions(format!(
                "Durability::InMemory has no directory, but {} was given to a read-only open",
                path.as_ref().display()
            )));
        }
        if opts.recovery == crate::RecoveryMode::TruncateAtCorruption {
            return Err(Error::InvalidOptions(
                "RecoveryMode::TruncateAtCorruption cuts the log: a read-only open cannot".into(),
            ));
        }
        let dir = path.as_ref().to_path_buf();
        let vfs: Arc<dyn Vfs> = match &opts.vfs {
            Some(v) => v.clone(),
            None => ringlog_uring::select(opts.io)
                .map_err(|e| Error::io("select I/O backend", None, e))?,
        };
        let mut delay = std::time::Duration::from_millis(1);
        let mut attempt = 1;
        loop {
            match open_read_only_once(&dir, vfs.clone(), &opts) {
                Err(e) if attempt < READ_ONLY_ATTEMPTS && writer_may_explain(&e) => {
                    let held = vfs.lock_held(&dir.join(crate::dir::LOCK)).unwrap_or(false);
                    if !held {
                        return Err(e);
                    }
                    log::info!(
                        "read-only open of {} (attempt {attempt}): {e}; a writer holds the database: trying again",
                        dir.display()
                    );
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(std::time::Duration::from_millis(50));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// Attempts of a read-only open that fails while a writer holds the database.
const READ_ONLY_ATTEMPTS: u32 = 8;

/// Whether a concurrent writer can cause `e` in a read-only open: a half-written tail read as
/// damage, or a file removed (or replaced) between the listing and the read.
fn writer_may_explain(e: &Error) -> bool {
    match e {
        Error::Corruption { .. } => true,
        Error::Io { source, .. } => matches!(
            source.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

fn open_read_only_once(dir: &Path, vfs: Arc<dyn Vfs>, opts: &Options) -> Result<Db> {
    match vfs
        .kind_of(dir)
        .map_err(|e| Error::io("stat", dir.to_path_buf(), e))?
    {
        Some(ringlog_uring::EntryKind::Dir) => {}
        Some(_) => return Err(Error::NotADirectory(dir.to_path_buf())),
        None => {
            return Err(Error::io(
                "open read-only",
                dir.to_path_buf(),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
            ))
        }
    }
    let Some(manifest) = crate::dir::read_manifest(&*vfs, dir)? else {
        return Err(Error::NotADatabase(dir.to_path_buf()));
    };
    // The codec the database was written with, whatever the options ask (nothing is written).
    let Some(codec) = ringlog_format::codec_by_id(manifest.codec) else {
        return Err(Error::CodecMismatch {
            path: dir.to_path_buf(),
            found: manifest.codec,
            requested: opts.codec.id(),
        });
    };
    let recovered = recover(&*vfs, dir, &manifest, opts.recovery, true)?;
    let stats = recovered.stats.clone();
    let max_lsn = crate::hooks::recovered_max_lsn(recovered.max_lsn, recovered.stats.last_lsn);
    let parts = Parts {
        dir: dir.to_path_buf(),
        vfs,
        manifest,
        codec,
        run_id: recovered.max_run_id + 1,
        max_lsn,
        lock: None,
        log: None,
    };
    let tail = recovered.tail;
    let db = assemble(parts, opts, recovered, stats);
    // What the log's readers ([`Db::runs`]) read to: the end recovery found.
    if let Some(t) = tail {
        db.shared.state.lock().synced = (t.id, t.valid_end);
    }
    Ok(db)
}

/// What [`assemble`] builds a [`Db`] from.
struct Parts {
    dir: std::path::PathBuf,
    vfs: Arc<dyn Vfs>,
    manifest: ringlog_format::Manifest,
    codec: &'static dyn ringlog_format::Codec,
    run_id: u64,
    max_lsn: Lsn,
    /// `None`: a read-only handle.
    lock: Option<Box<dyn ringlog_uring::FileLock>>,
    /// `None`: a read-only handle.
    log: Option<LogParts>,
}

/// The log of a writable handle.
struct LogParts {
    cfg: LogConfig,
    active: Active,
    cursor: u64,
    pending_create: Option<u64>,
    /// The length past which the log starts a new segment, until garbage collection sizes
    /// segments to the database.
    rotate_at: u64,
    sync_strategy: (crate::SyncStrategy, String),
}

/// The handle over what recovery loaded: the first index generation, the shared state, the
/// checkpointer's and the value store's parts; for a writable handle, the log (its thread starts
/// with the first commit).
fn assemble(
    p: Parts,
    opts: &Options,
    mut recovered: crate::recovery::Recovered,
    mut stats: crate::recovery::RecoveryStats,
) -> Db {
    let Parts {
        dir,
        vfs,
        manifest,
        codec,
        run_id,
        max_lsn,
        lock,
        log,
    } = p;
    let read_only = log.is_none();
    let max_txn_bytes = opts.max_txn_bytes();
    let value_segments = recovered.value_segments.clone();
    let building = std::time::Instant::now();
    let now = crate::hooks::wall_clock_ns(opts.vfs.as_ref());
    let versions = recovered_versions(
        &mut recovered,
        opts.trim_threshold,
        manifest.trim_floor,
        now,
    );
    // Building the index is part of recovering.
    let built = building.elapsed();
    stats.build_time += built;
    stats.duration += built;
    let (log_cfg, active, pending_create, rotate_at, sync_strategy) = match log {
        Some(l) => (
            Some((l.cfg, l.active.id, l.cursor)),
            Some(l.active),
            l.pending_create,
            l.rotate_at,
            Some(l.sync_strategy),
        ),
        None => (None, None, None, u64::MAX, None),
    };
    let direct_io = active
        .as_ref()
        .is_some_and(|a| a.file.direct_io().is_some());
    let shared = Arc::new(Shared::new(
        versions,
        recovered.stats.last_lsn.min(max_lsn),
        max_lsn + 1,
        log_cfg,
        run_id,
        Some(vfs.clone()),
    ));
    shared.set_rotation_size(rotate_at);
    if read_only {
        // What it can prove durable: the checkpoint, synced before the MANIFEST named it. The
        // log after it may hold a writer's unsynced commits (a review found the handle claiming
        // them durable, and the writer's lease bound, above every LSN, as its durable LSN);
        // `Db::wait_durable` syncs the log's files to go further.
        shared.durable_lsn.store(
            manifest.checkpoint_lsn.min(recovered.stats.last_lsn),
            std::sync::atomic::Ordering::Release,
        );
    }
    if let Some(a) = active {
        shared.log_thread_waits(a);
    }
    if let Some(prev_end) = pending_create {
        shared.state.lock().defer_rotation(prev_end);
    }
    shared.txn_floor.store(
        recovered.max_txn_id.max(manifest.txn_floor),
        std::sync::atomic::Ordering::Relaxed,
    );
    let appended = shared
        .counters
        .bytes_appended
        .load(std::sync::atomic::Ordering::Relaxed);
    let _ = shared.ckpt.set(crate::checkpointer::Checkpoints {
        dir: dir.clone(),
        vfs: vfs.clone(),
        codec,
        manifest: Mutex::new(manifest),
        // A read-only handle never takes one.
        every_bytes: if read_only {
            u64::MAX
        } else {
            opts.checkpoint_bytes
        },
        on_close: opts.checkpoint_on_close && !read_only,
        last_len: manifest.checkpoint_len.into(),
        lsn: manifest.checkpoint_lsn.into(),
        bytes_at_last: appended.into(),
        taken: 0.into(),
        last_id: manifest.checkpoint_id.into(),
        segments_deleted: 0.into(),
        running: Mutex::new(()),
        value_segments: Mutex::new(value_segments.clone()),
        deferred: Mutex::new(Vec::new()),
        gc_segments: 0.into(),
        gc_bytes: 0.into(),
        value_ends: Mutex::new(std::collections::BTreeMap::new()),
        gc_mark: 0.into(),
        backlog: crate::checkpointer::ValueBacklog::new(
            opts.value_threshold.filter(|_| !read_only),
            opts.checkpoint_bytes.saturating_mul(2),
        ),
    });
    // Reads of values the index holds by reference: needed whenever the checkpoint refers
    // to some, even when this open keeps new values in memory.
    if opts.value_threshold.is_some() || !value_segments.is_empty() {
        let _ = shared
            .versions
            .store
            .set(Arc::new(crate::values::ValueStore::new(
                vfs.clone(),
                &dir,
                manifest.epoch,
                opts.value_threshold.unwrap_or(usize::MAX),
                opts.value_cache_bytes,
            )));
    }
    shared.conflicts.set_max_bytes(opts.conflict_history_bytes);
    let db = Db {
        shared,
        durability: opts.durability,
        trimmer: Mutex::new(None),
        key_index_builder: Mutex::new(None),
        close_lock: Mutex::new(()),
        lock: Mutex::new(lock),
        vfs: Some(vfs),
        dir: Some(dir),
        recovery: stats,
        max_value_len: opts.max_value_len(0),
        max_txn_bytes,
        direct_io,
        sync_strategy,
        read_only,
    };
    let gen = db.shared.versions.current();
    if gen.list.key_index_deferred() && gen.list.len() < BACKGROUND_INDEX_BUILD {
        // Small: cheaper than a thread.
        gen.list.build_key_index();
    } else if gen.list.key_index_deferred() {
        // Point reads search the list until the key index is built: build it beside the
        // open instead of in it (a cache miss per key).
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name("ringlog-keyindex".into())
            .spawn(move || {
                gen.list.build_key_index_until(&stopped);
            });
        match spawned {
            Ok(t) => *db.key_index_builder.lock() = Some((stop, t)),
            Err(e) => {
                log::warn!("could not start the key index builder ({e}): building it now");
                db.shared.versions.current().list.build_key_index();
            }
        }
    }
    if db.shared.versions.wants_trim() {
        // A generation built from a checkpoint and the log after it holds what the restart's
        // plan would have dropped: trim it in the background now.
        db.request_trim();
    }
    db
}

/// Versions from which the key index of a recovered generation is built in the background.
const BACKGROUND_INDEX_BUILD: usize = 1 << 17;

/// The first generation of the index, built from what recovery loaded, with the retention policy
/// the log ends with and the trim floor it implies at restart, at wall-clock time `now_ns`
/// (docs/DURABILITY.md, "Retention").
fn recovered_versions(
    recovered: &mut crate::recovery::Recovered,
    threshold: usize,
    manifest_floor: Lsn,
    now_ns: u64,
) -> Versions {
    let last = recovered.stats.last_lsn;
    let (policy, recorded) = recovered.retention;
    let state = RetentionState::new(policy);
    let mut samples = Samples::default();
    if state.wants_samples() {
        for &(t, lsn) in &recovered.samples {
            samples.record(t, lsn);
        }
    }
    // After a restart no snapshot is live, and nothing below the recovered state can be read.
    // The MANIFEST's floor too: it never moves backwards, across restarts either — up to the
    // last LSN recovered: a truncating recovery may cut the log below a floor the MANIFEST
    // recorded (a `NewerThan` trim records floors up to the durable LSN), and the state the cut
    // left must stay readable (otherwise the log always reaches it).
    let mut floor = state.trim_floor(now_ns, last, recorded, &mut samples);
    if !crate::hooks::trim_floor_backwards() {
        floor = floor.max(manifest_floor.min(last));
    }
    let plan = state.plan(floor, last);
    let (list, garbage, marked) = match recovered.base.take() {
        // A per-key policy set by the log after the checkpoint: its plan moves the floor, so
        // apply it now, as a full replay would (a trim's copy of the generation).
        Some(b) if matches!(policy, crate::Retention::LastVersions(_)) => {
            let list = crate::skiplist::SkipList::new();
            list.reserve_keys(b.list.live_keys());
            let (garbage, marked, _) = crate::index::trim::copy_kept(&b.list, &list, plan, None);
            (list, garbage, marked.max(b.marked))
        }
        // Built from a checkpoint, the log's versions on top: what the plan would drop is
        // garbage for the background trim (see `recovery::seed_from_checkpoint`).
        Some(b) => (b.list, b.garbage, b.marked),
        None => crate::loader::build(std::mem::take(&mut recovered.versions), plan),
    };
    // A key's history trimmed below `marked` (LastVersions): the floor covers it (see trim.rs).
    let gen = Gen::new(list, floor.max(marked));
    // A superset: the segments the checkpoint refers to.
    gen.set_segments(recovered.value_segments.clone());
    let v = Versions::new(gen, state, threshold);
    *v.samples.lock() = samples;
    v.set_garbage(garbage);
    v
}
