//! Checkpoints, log compaction and online backup: the steps that change the MANIFEST.
//!
//! A checkpoint, in order (each step durable before the next one relies on it):
//! 1. pin a snapshot at V — the last LSN assigned, the next transaction starting a new segment
//!    (so that the log after V begins at a segment's start), or else the visible LSN — make the
//!    log durable through V, so the checkpoint never holds what the log could lose, and wait for
//!    V to be visible (every version up to it in the index);
//! 2. write `<id>.ckpt.tmp` from the index generation (writers go on: the generation is
//!    insert-only), fdatasync it, rename it `<id>.ckpt`;
//! 3. replace the MANIFEST (temp file, fdatasync, rename, directory fsync) naming the checkpoint,
//!    V, the first segment still needed (the first one holding an LSN above V), the trim floor
//!    and the id floors;
//! 4. only then delete the previous checkpoint and the segments below the first needed one.
//!
//! A crash before step 3 completes leaves the previous MANIFEST in force (the new file is a
//! leftover open removes); a crash in step 4 leaves files open removes as leftovers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use ringlog_format::{Codec, Manifest, SEGMENT_HEADER_LEN};
use ringlog_uring::Vfs;

use crate::db::Db;
use crate::dir::write_manifest;
use crate::index::{Lsn, OpRef};
use crate::options::Durability;
use crate::segment::{parse_segment_name, segment_file_name};
use crate::values::IN_SEGMENT;
use crate::wal::Shared;
use crate::{Error, Result};
use ringlog_format::ValueRef;

/// The checkpoint state of a database with a directory.
pub(crate) struct Checkpoints {
    pub(crate) dir: PathBuf,
    pub(crate) vfs: Arc<dyn Vfs>,
    pub(crate) codec: &'static dyn Codec,
    /// Held for a whole checkpoint, its value-log garbage collection included: one at a time
    /// (lock order: this, then `manifest`). Two collections at once copied the same victims, and
    /// one checkpoint could refer to the other's copies before they were durable, then delete
    /// the victims.
    pub(crate) running: Mutex<()>,
    /// The MANIFEST in force. Held for a whole checkpoint after its garbage collection.
    pub(crate) manifest: Mutex<Manifest>,
    /// Log bytes appended that trigger a background checkpoint (`u64::MAX`: never).
    pub(crate) every_bytes: u64,
    /// [`crate::Options::checkpoint_on_close`].
    pub(crate) on_close: bool,
    /// The length of the checkpoint in force (0 without one): once the log since it is as large,
    /// a background checkpoint is due too (so files stay within about twice the live data).
    pub(crate) last_len: AtomicU64,
    /// `Counters::bytes_appended` when the last checkpoint started.
    pub(crate) bytes_at_last: AtomicU64,
    pub(crate) taken: AtomicU64,
    /// The highest checkpoint id ever used (written or attempted): never reused, because a
    /// failed MANIFEST update may still have reached the disk naming it.
    pub(crate) last_id: AtomicU64,
    /// The LSN of the checkpoint in force, for `Stats` (which must not wait for a checkpoint
    /// holding the MANIFEST lock).
    pub(crate) lsn: AtomicU64,
    pub(crate) segments_deleted: AtomicU64,
    /// The log segments below the first needed one that the checkpoint in force refers to for
    /// values (ascending): compaction and the close keep them.
    pub(crate) value_segments: Mutex<Vec<u64>>,
    /// Segments below the first needed one that no checkpoint refers to any more but a live
    /// index generation may still read: deleted by a later checkpoint once none does (or as
    /// leftovers by the next open).
    pub(crate) deferred: Mutex<Vec<u64>>,
    /// Value segments garbage collection copied the live values out of, since open.
    pub(crate) gc_segments: AtomicU64,
    /// Value bytes it copied.
    pub(crate) gc_bytes: AtomicU64,
    /// Where the records of value segments end, as their successors' headers recorded them
    /// ([`value_segment_end`]): kept, since compaction may delete a successor first.
    pub(crate) value_ends: Mutex<std::collections::BTreeMap<u64, u64>>,
    /// The value backlog's `spilled` count when garbage collection last chose victims: the
    /// values written since (not counting collection's own copies) are what the next
    /// collection must at least keep up with.
    pub(crate) gc_mark: AtomicU64,
    /// Values on disk written since a checkpoint last covered them: held in memory until one
    /// does, and paced so that they stay bounded.
    pub(crate) backlog: ValueBacklog,
}

/// The values of at least [`crate::Options::value_threshold`] bytes that wait in memory for a
/// checkpoint to move them to disk (docs/DURABILITY.md §8, "Memory and space while writing").
///
/// Committers count the bytes of such values they wrote (`spilled`); a checkpoint notes the
/// count when it pins its LSN and, once it completed (its converting trim done), marks that
/// much as `converted`. The backlog is the difference. Past `limit`, a committer waits before
/// it commits until a checkpoint brought it down: memory is then keys, entries, the cache and
/// at most about `limit` of values however fast writers go, instead of whatever they wrote
/// while checkpoints of a growing database took longer and longer; and since these values are
/// also the log no checkpoint covers yet, the files hold at most about `limit` beyond the value
/// segments garbage collection keeps. The limit (none with background checkpoints off) is an
/// eighth of the live values in value segments, as the last collection counted them, at least
/// the smallest log volume that triggers a checkpoint (4 MiB, see [`min_trigger`]) and
/// at most twice [`crate::Options::checkpoint_bytes`]. A
/// failed checkpoint releases the waiters (what it would have converted is forgiven: writers
/// get another `limit` before they wait for the next one), and so does a close or a poisoned
/// log. The counts are approximate by the commits in flight at the pin: pacing, not a
/// guarantee anything relies on.
pub(crate) struct ValueBacklog {
    /// Bytes past which committers wait; `u64::MAX`: never.
    limit: AtomicU64,
    /// The live values in value segments as the last garbage collection counted them (0
    /// before the first).
    live: AtomicU64,
    /// The most `limit` can be: twice `checkpoint_bytes` (`u64::MAX`: never paced).
    cap: u64,
    /// The smallest value counted (the store's threshold).
    pub(crate) threshold: usize,
    pub(crate) spilled: AtomicU64,
    pub(crate) converted: AtomicU64,
    /// Checkpoints finished (or failed) since open: a waiter asks for another one only once
    /// the one it asked for is over.
    pub(crate) settled: AtomicU64,
    /// Commits that waited.
    pub(crate) waits: AtomicU64,
    lock: Mutex<()>,
    cv: parking_lot::Condvar,
}

impl ValueBacklog {
    /// A backlog of values of at least `threshold` bytes (`None`: values stay in memory,
    /// nothing counted), paced at a limit of at most `cap` bytes (`u64::MAX`: never paced);
    /// [`SMALL_SPACE_TRIGGER`] until garbage collection first counts the live values.
    pub(crate) fn new(threshold: Option<usize>, cap: u64) -> ValueBacklog {
        let cap = if threshold.is_some() { cap } else { u64::MAX };
        ValueBacklog {
            limit: pace_limit(cap, 0).into(),
            live: 0.into(),
            cap,
            threshold: threshold.unwrap_or(usize::MAX),
            spilled: 0.into(),
            converted: 0.into(),
            settled: 0.into(),
            waits: 0.into(),
            lock: Mutex::new(()),
            cv: parking_lot::Condvar::new(),
        }
    }

    /// Bytes of values waiting for a checkpoint now.
    pub(crate) fn bytes(&self) -> u64 {
        self.spilled
            .load(Ordering::Relaxed)
            .saturating_sub(self.converted.load(Ordering::Relaxed))
    }

    /// Counts the values of `ops` that a checkpoint will move to disk (after their commit).
    pub(crate) fn note(&self, ops: &[OpRef<'_>]) {
        if self.threshold == usize::MAX {
            return;
        }
        let n: usize = ops
            .iter()
            .filter_map(|op| match op {
                OpRef::Put(_, v) if v.len() >= self.threshold => Some(v.len()),
                _ => None,
            })
            .sum();
        if n > 0 {
            self.spilled.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// A checkpoint is over: `covered` (the count at its pin) is on disk, or, when it failed
    /// (`None`), everything counted so far is forgiven. Wakes the waiters.
    fn settle(&self, covered: Option<u64>) {
        let to = covered.unwrap_or_else(|| self.spilled.load(Ordering::Relaxed));
        self.converted.fetch_max(to, Ordering::Relaxed);
        self.settled.fetch_add(1, Ordering::Relaxed);
        let _g = self.lock.lock();
        self.cv.notify_all();
    }

    /// Whether a committer must wait before it commits.
    fn over(&self) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        limit != u64::MAX && self.bytes() > limit
    }

    /// Bytes past which committers wait now (`u64::MAX`: never).
    pub(crate) fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Garbage collection counted `live` bytes of values in value segments: the limit follows.
    fn set_live(&self, live: u64) {
        self.live.store(live, Ordering::Relaxed);
        self.limit
            .store(pace_limit(self.cap, live), Ordering::Relaxed);
    }

    /// The smallest log volume that triggers a background checkpoint: [`MIN_SPACE_TRIGGER`],
    /// or, with values on disk, [`min_trigger`] of the live values.
    fn min_trigger(&self) -> u64 {
        if self.threshold == usize::MAX {
            MIN_SPACE_TRIGGER
        } else {
            min_trigger(self.live.load(Ordering::Relaxed))
        }
    }
}

/// The smallest log volume that triggers a background checkpoint of a database with `live`
/// bytes of values in value segments: an eighth of them, from [`SMALL_SPACE_TRIGGER`] to
/// [`MIN_SPACE_TRIGGER`]. A checkpoint cuts the log's segment, and until one covers it the log
/// is space no collection can reclaim: with a fixed 64 MiB a database of 100 MB of values took
/// several times its live data on disk. Below 512 MiB of live values checkpoints come more
/// often, and they are cheap there (their work grows with the database).
fn min_trigger(live: u64) -> u64 {
    (live / 8).clamp(SMALL_SPACE_TRIGGER, MIN_SPACE_TRIGGER)
}

/// The least log volume that triggers a checkpoint of a small database with values on disk.
const SMALL_SPACE_TRIGGER: u64 = 4 << 20;

/// The backlog's limit for `live` bytes of values in value segments: an eighth of them (no
/// less than the smallest log volume that triggers a checkpoint, [`min_trigger`]), at most
/// `cap`. What the files hold beyond the value segments is about this much plus what one
/// collection copies: the same eighth is what keeps a database within twice its live data.
fn pace_limit(cap: u64, live: u64) -> u64 {
    if cap == u64::MAX {
        return cap;
    }
    (live / 8).max(min_trigger(live)).min(cap)
}

/// The length past which the log starts a new segment, for a database with `live` bytes of
/// values in value segments: a sixteenth of them, from [`SMALL_ROTATION`] (or a quarter of the
/// segment size, if that is less) up to `segment_size`. A segment is what collection reclaims
/// whole: a database of 100 MB of values in 64 MiB segments holds its garbage in a few large
/// files, and each collection copies tens of MB out of one before any space comes back (the
/// files then peaked at 2.7 × the live data; with segments of a sixteenth, under 2 ×).
fn rotation_size(live: u64, segment_size: u64) -> u64 {
    (live / 16).clamp(SMALL_ROTATION.min(segment_size / 4), segment_size)
}

/// The smallest segment length [`rotation_size`] chooses (with the default 64 MiB segments).
const SMALL_ROTATION: u64 = 4 << 20;

/// The length past which the log starts a new segment when a database opens, before garbage
/// collection first counts its live values: the segment size when values stay in the log's
/// records only (`values_on_disk` false: nothing is collected), else the smallest size
/// [`rotation_size`] chooses. Like the backlog's limit, it grows with the first collection.
pub(crate) fn opening_rotation_size(values_on_disk: bool, segment_size: u64) -> u64 {
    if values_on_disk {
        rotation_size(0, segment_size)
    } else {
        segment_size
    }
}

impl Db {
    /// Waits, before a commit, while more than the backlog's limit of values waits in memory
    /// for a checkpoint, asking for one (see [`ValueBacklog`]). Returns at once when the
    /// database closes or its log is poisoned (the commit then fails as it would have).
    pub(crate) fn pace_values(&self) {
        let Some(c) = self.shared.ckpt.get() else {
            return;
        };
        let b = &c.backlog;
        if !b.over() {
            return;
        }
        b.waits.fetch_add(1, Ordering::Relaxed);
        let mut asked = None;
        let mut g = b.lock.lock();
        while b.over() {
            if self.shared.closed.load(Ordering::Acquire)
                || self.shared.state.lock().poisoned.is_some()
            {
                return;
            }
            let settled = b.settled.load(Ordering::Relaxed);
            if asked != Some(settled) {
                // The first time, and again after each checkpoint that left too much behind
                // (values written while it ran).
                asked = Some(settled);
                let asked_thread =
                    parking_lot::MutexGuard::unlocked(&mut g, || self.request_checkpoint());
                if !asked_thread {
                    // No background thread to run it (it could not be started): the checkpoint
                    // runs here, before this commit, rather than never. Failed or not, it
                    // settles the backlog (a failure releases the waiters, as in the thread).
                    parking_lot::MutexGuard::unlocked(&mut g, || {
                        if let Err(e) = self.checkpoint() {
                            log::warn!("a paced commit's own checkpoint failed: {e}");
                        }
                    });
                    continue;
                }
            }
            // A bounded wait: the close and a poisoned log are seen without a notification.
            b.cv.wait_for(&mut g, std::time::Duration::from_millis(20));
        }
    }
}

/// What one checkpoint did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointInfo {
    /// The checkpoint's id (file `<id>.ckpt`); 0 when nothing was written because the previous
    /// checkpoint is at the same LSN.
    pub id: u64,
    /// The LSN it holds the database at.
    pub lsn: Lsn,
    /// Bytes of the file.
    pub bytes: u64,
    /// Versions it holds.
    pub entries: u64,
    /// Keys it holds.
    pub keys: u64,
    /// Log segments deleted because every record in them is below the checkpoint (value
    /// segments whose values garbage collection copied forward included).
    pub segments_deleted: u64,
    /// Value segments whose live values garbage collection copied forward before this
    /// checkpoint ([`crate::Options::value_threshold`]; docs/DURABILITY.md §8).
    pub segments_collected: u64,
}

impl Db {
    /// Writes a checkpoint — a consistent image of every retained version at the last LSN
    /// assigned when it starts (it waits for that LSN to be durable and visible) — and compacts:
    /// once the MANIFEST naming it is durable, deletes the previous checkpoint and every log
    /// segment wholly below it. The next transaction starts a new log segment, so the log after
    /// the checkpoint begins at a segment's start and the next checkpoint drops every segment
    /// before it. The next open loads the checkpoint and replays only the log after it. Writers
    /// go on meanwhile; one checkpoint runs at a time.
    ///
    /// The database also checkpoints on its own every [`crate::Options::checkpoint_bytes`] bytes
    /// of log.
    ///
    /// ```
    /// # fn main() -> Result<(), ringlog_db::Error> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = ringlog_db::Db::open(dir.path(), ringlog_db::Options::default())?;
    /// for i in 0..1000u32 {
    ///     db.put(b"counter", &i.to_le_bytes())?;
    /// }
    /// let info = db.checkpoint()?;
    /// assert_eq!(info.keys, 1);
    /// drop(db);
    /// let db = ringlog_db::Db::open(dir.path(), ringlog_db::Options::default())?;
    /// assert_eq!(db.recovery_stats().checkpoint_lsn, info.lsn);
    /// assert_eq!(db.get(b"counter")?.as_deref(), Some(&999u32.to_le_bytes()[..]));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOptions`] for an in-memory database; [`Error::ReadOnly`] on a handle of
    /// [`Db::open_read_only`]; [`Error::Closed`]; [`Error::Poisoned`]
    /// when the log cannot be made durable; [`Error::Io`] (e.g. ENOSPC) when a file cannot be
    /// written — the previous checkpoint and the log stay in force and nothing acknowledged is
    /// lost; the next attempt may succeed.
    pub fn checkpoint(&self) -> Result<CheckpointInfo> {
        self.check_writable()?;
        let Some(c) = self.shared.ckpt.get() else {
            return Err(Error::InvalidOptions(
                "an in-memory database has no directory to checkpoint into".into(),
            ));
        };
        // The log must be durable through the checkpoint's LSN: `wait_durable` starts the log
        // thread if it is not (and only then: a checkpoint with nothing to make durable starts
        // no thread, and a run that committed nothing writes nothing to the log). A garbage
        // collection's copies are commits, which start the thread themselves
        // ([`Shared::commit_core`]).
        run_checkpoint(&self.shared, c, |lsn| self.wait_durable(lsn))
    }
}

/// Runs one checkpoint (see the module docs). `make_durable(lsn)` returns once the log is durable
/// through `lsn`.
pub(crate) fn run_checkpoint(
    shared: &Arc<Shared>,
    c: &Checkpoints,
    make_durable: impl FnOnce(Lsn) -> Result<()>,
) -> Result<CheckpointInfo> {
    let _one = c.running.lock();
    let mut covered = None;
    let r = checkpoint_pinned(shared, c, make_durable, &mut covered);
    c.backlog.settle(if r.is_ok() { covered } else { None });
    r
}

/// [`run_checkpoint`]'s steps; sets `covered` to the value backlog's count at the pin.
fn checkpoint_pinned(
    shared: &Arc<Shared>,
    c: &Checkpoints,
    make_durable: impl FnOnce(Lsn) -> Result<()>,
    covered: &mut Option<u64>,
) -> Result<CheckpointInfo> {
    let gc_first = !crate::hooks::gc_after_the_pin();
    let mut collected = 0;
    if gc_first {
        collected = collect_garbage(shared, c, Durability::Strict)?.len() as u64;
    }
    let mut manifest = c.manifest.lock();
    c.bytes_at_last.store(
        shared.counters.bytes_appended.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    // 1. A snapshot at V keeps every version it sees from being trimmed while we read. V is
    // the last LSN assigned, and the next transaction starts a new segment (so that recovery
    // after this checkpoint reads none of the log below V), or else the visible LSN.
    // 0. Value-log garbage collection: the live values of mostly dead value segments are copied
    // to the log's end, durably, before V is chosen (so V's durability covers the copies too);
    // this checkpoint then refers to the copies, and the victims go with compaction below.

    let (lsn, v_segment) = match shared.pin_at_segment_boundary(manifest.checkpoint_lsn) {
        Some((lsn, seg)) => (lsn, Some(seg)),
        None => (shared.versions.pin(|| shared.visible.get()), None),
    };
    let _unpin = Unpin(shared, lsn);
    *covered = Some(c.backlog.spilled.load(Ordering::Relaxed));
    if (lsn == 0 && !crate::hooks::checkpoint_at_lsn_zero())
        || (lsn == manifest.checkpoint_lsn && manifest.checkpoint_id != 0)
    {
        // Nothing committed yet, or nothing since the checkpoint in force.
        return Ok(CheckpointInfo {
            lsn,
            ..CheckpointInfo::default()
        });
    }
    make_durable(lsn)?;
    // Every version at or below V is in the index once V is visible (V may have been assigned
    // to a commit that had not published yet).
    if !shared.visible.wait(lsn, &shared.durable_lsn, || {
        shared.will_block(ringlog_uring::BlockReason::Visibility)
    }) {
        return Err(match &shared.state.lock().poisoned {
            Some(e) => Error::Poisoned(e.clone()),
            None => Error::Closed,
        });
    }
    let id = c
        .last_id
        .fetch_max(manifest.checkpoint_id, Ordering::Relaxed)
        .max(manifest.checkpoint_id)
        + 1;
    c.last_id.store(id, Ordering::Relaxed);
    if !gc_first {
        // Planted bug: the copies are made after V was made durable, and not made durable.
        collected = collect_garbage(shared, c, Durability::BUFFERED)?.len() as u64;
    }
    let (lsn_floor, active) = shared.checkpoint_floors();
    // 2. The file. With values on disk: where the log holds the values the index still keeps
    // in memory (the log since the checkpoint in force; V is durable, so all of it is written).
    // The first segment the new checkpoint still needs: references go only below it (a value
    // segment is never part of the log recovery replays, or cuts). When the checkpoint started a
    // new segment, the one holding V holds nothing above V: it is not needed, even while the
    // next one is not created yet.
    let first_segment = first_needed_segment(&*c.vfs, &c.dir, manifest.first_segment, active, lsn)?
        .max(v_segment.map_or(0, |s| s + 1));
    let located = match shared.versions.store() {
        Some(store) if store.threshold != usize::MAX || collected > 0 => {
            let ids = segments_in(&*c.vfs, &c.dir, manifest.first_segment, active)?;
            let mut l =
                crate::values::locate(&*c.vfs, &c.dir, manifest.epoch, &ids, lsn, store.threshold)?;
            l.retain_below(first_segment);
            l
        }
        _ => crate::values::Located::default(),
    };
    let (written, floor) = write_image(shared, c, &manifest, &c.dir, id, lsn, &located, false)?;
    if located.len() > 0 {
        // The versions whose values are now on disk leave memory: the next generation of the
        // index holds their places instead (a trim that converts as it copies). Their records
        // are durable (V is) and stay: in segments at or above the first needed one until this
        // checkpoint is in force, then kept as its value segments.
        let _one = shared.versions.trim_running.lock();
        crate::index::trim::trim_converting(&**shared, Some(&located), &mut |floor| {
            record_trim_floor(c, &mut manifest, floor)
        })?;
    }
    // 3. The MANIFEST.
    let mut next = manifest.successor();
    next.checkpoint_id = id;
    next.checkpoint_lsn = lsn;
    next.checkpoint_len = written.len;
    next.first_segment = first_segment;
    next.trim_floor = floor.max(written.marked).max(manifest.trim_floor);
    next.lsn_floor = lsn_floor.max(manifest.lsn_floor).max(lsn);
    next.txn_floor = manifest.txn_floor.max(shared.last_txn_id());
    next.run_floor = manifest.run_floor.max(shared.run_id);
    next.codec = c.codec.id();
    let old = *manifest;
    // Below the new first needed segment, and the old checkpoint's value segments: all but the
    // new checkpoint's value segments.
    // Below the new first needed segment, the old checkpoint's value segments and those kept
    // for readers before: all but the new checkpoint's value segments and those a live index
    // generation may still read (a snapshot's or a scan's versions the checkpoint left out;
    // deferred to a later checkpoint).
    let (doomed, deferred): (Vec<u64>, Vec<u64>) = {
        let mut d: std::collections::BTreeSet<u64> =
            (old.first_segment.max(1)..first_segment).collect();
        d.extend(c.value_segments.lock().iter().copied());
        d.extend(c.deferred.lock().iter().copied());
        let mut deferred = Vec::new();
        if !crate::hooks::compaction_forgets_value_segments() {
            for s in &written.value_segments {
                d.remove(s);
            }
            let in_use = shared.versions.segments_in_use();
            d.retain(|s| {
                let keep = in_use.contains(s);
                if keep {
                    deferred.push(*s);
                }
                !keep
            });
        }
        // Never the segment being appended to (it may be below the first needed one: see
        // above): a later checkpoint deletes it, or the next open as a leftover.
        let (_, appending) = shared.checkpoint_floors();
        d.retain(|&s| {
            let keep = s >= appending;
            if keep && s < first_segment {
                deferred.push(s);
            }
            !keep
        });
        (
            d.into_iter().filter(|&s| s < first_segment).collect(),
            deferred,
        )
    };
    if crate::hooks::delete_segments_before_manifest() {
        delete_segments(&*c.vfs, &c.dir, &doomed);
    }
    if let Err(e) = write_manifest(&*c.vfs, &c.dir, &next) {
        // The new MANIFEST may have reached the disk anyway: keep its LSN, transaction and run
        // floors (they only rise) so that no later MANIFEST lowers them; its checkpoint id is
        // never reused (`last_id`). Not its trim floor: no read was refused with it, so a later
        // MANIFEST may record a lower one, while the one in force must stay the floor known to
        // be on disk — a trim records its floor only when it is above that
        // ([`record_trim_floor`]).
        manifest.lsn_floor = next.lsn_floor;
        manifest.txn_floor = next.txn_floor;
        manifest.run_floor = next.run_floor;
        return Err(e);
    }
    *manifest = next;
    // Only now: had the MANIFEST failed, the segments deferred before (still below the first
    // needed segment in force) would have dropped out of the list without being deleted.
    *c.deferred.lock() = deferred;
    c.value_segments.lock().clone_from(&written.value_segments);
    c.last_len.store(written.len, Ordering::Relaxed);
    c.lsn.store(lsn, Ordering::Relaxed);
    // 4. Compaction: what the new MANIFEST no longer needs.
    if old.checkpoint_id != 0 {
        failpoint!(COMPACTION_BEFORE_DELETE_CHECKPOINT);
        let path = c.dir.join(crate::checkpoint::file_name(old.checkpoint_id));
        if let Err(e) = c.vfs.remove_file(&path) {
            log::warn!(
                "could not delete the replaced checkpoint {}: {e}",
                path.display()
            );
        }
    }
    if let Some(store) = shared.versions.store() {
        for &id in &doomed {
            store.forget(id);
        }
    }
    let deleted = delete_segments(&*c.vfs, &c.dir, &doomed);
    c.taken.fetch_add(1, Ordering::Relaxed);
    c.segments_deleted.fetch_add(deleted, Ordering::Relaxed);
    log::info!(
        "checkpoint {id} at LSN {lsn}: {} keys, {} versions, {} bytes; {deleted} segments deleted",
        written.keys,
        written.entries - 1,
        written.len
    );
    Ok(CheckpointInfo {
        id,
        lsn,
        bytes: written.len,
        // The retention policy's system entry is not a version.
        entries: written.entries - 1,
        keys: written.keys,
        segments_deleted: deleted,
        segments_collected: collected,
    })
}

/// Writes checkpoint `id` at `lsn` (pinned and durable) into `dir` from the current index
/// generation: what a trim capped at `lsn` keeps with no snapshot live, which is what a restart
/// keeps. Returns it and the trim floor it was written with.
#[allow(clippy::too_many_arguments)]
fn write_image(
    shared: &Shared,
    c: &Checkpoints,
    manifest: &Manifest,
    dir: &Path,
    id: u64,
    lsn: Lsn,
    located: &crate::values::Located,
    inline_all: bool,
) -> Result<(crate::checkpoint::Written, Lsn)> {
    let gen = shared.versions.current();
    let (retention, floor, plan) = {
        let r = shared.versions.retention.lock();
        // (A restart keeps no snapshot: the floor a policy asked for, not the one snapshots
        // held it at.)
        let old = gen.floor().max(manifest.trim_floor).max(r.pending).min(lsn);
        let floor = r.trim_floor(
            shared.wall_ns(),
            lsn,
            old,
            &mut shared.versions.samples.lock(),
        );
        (r.policy, floor, r.plan(floor, lsn))
    };
    let spec = crate::checkpoint::Spec {
        epoch: manifest.epoch,
        id,
        lsn,
        floor,
        retention,
        plan,
        codec: c.codec,
        values: shared
            .versions
            .store()
            .map(|store| crate::checkpoint::SpecValues {
                store,
                located,
                inline_all,
            }),
    };
    let written = crate::checkpoint::write(&*c.vfs, dir, &spec, &gen)?;
    Ok((written, floor))
}

impl Db {
    /// Writes a consistent copy of this live database into directory `dest` (created if missing;
    /// it must be empty): a MANIFEST and one checkpoint at the newest visible LSN B, holding every
    /// version the retention policy keeps. The copy opens as a normal database with the state
    /// this one had at B (its next LSNs start above every LSN this one had handed out). Writers
    /// go on meanwhile; checkpoints of this database wait for the backup.
    ///
    /// The checkpoint holds every value inline, those on disk here too
    /// ([`crate::Options::value_threshold`]): opening the copy loads them all into memory, and
    /// they stay there (a known limit: a database whose values do not fit in memory has a
    /// backup that does not open on the same machine).
    ///
    /// ```
    /// # fn main() -> Result<(), ringlog_db::Error> {
    /// let (dir, copy) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    /// let db = ringlog_db::Db::open(dir.path(), ringlog_db::Options::default())?;
    /// db.put(b"k", b"v")?;
    /// let info = db.backup_to(copy.path().join("backup"))?;
    /// let restored = ringlog_db::Db::open(copy.path().join("backup"), ringlog_db::Options::default())?;
    /// assert_eq!(restored.get(b"k")?.as_deref(), Some(&b"v"[..]));
    /// assert_eq!(restored.last_lsn(), info.lsn);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOptions`] for an in-memory database, a `dest` that is not an empty
    /// directory, or one inside this database's directory; [`Error::Io`] when it cannot be
    /// written (the copy is then incomplete: its MANIFEST is written last, so it never opens as
    /// this backup — but the directory stays, empty if nothing else was in it, and
    /// [`Db::open`] of an empty directory creates a new, empty database: remove it); as
    /// [`Db::checkpoint`].
    pub fn backup_to(&self, dest: impl AsRef<Path>) -> Result<CheckpointInfo> {
        self.check_writable()?;
        let dest = dest.as_ref();
        let Some(c) = self.shared.ckpt.get() else {
            return Err(Error::InvalidOptions(
                "an in-memory database has no files to back up".into(),
            ));
        };
        if inside(dest, &c.dir) {
            // Its files would be the database's: a name like a segment's or a checkpoint's made
            // the next open refuse the source, or poisoned it live (found in review).
            return Err(Error::InvalidOptions(format!(
                "backup destination {} is inside the database's own directory {}",
                dest.display(),
                c.dir.display()
            )));
        }
        match c
            .vfs
            .kind_of(dest)
            .map_err(|e| Error::io("stat backup directory", dest.to_path_buf(), e))?
        {
            None => crate::dir::create_dir_durably(&*c.vfs, dest)?,
            Some(ringlog_uring::EntryKind::Dir) => {}
            Some(_) => {
                return Err(Error::InvalidOptions(format!(
                    "backup destination {} is not a directory",
                    dest.display()
                )))
            }
        }
        let present = c
            .vfs
            .list_dir(dest)
            .map_err(|e| Error::io("list backup directory", dest.to_path_buf(), e))?;
        if !present.is_empty() {
            return Err(Error::InvalidOptions(format!(
                "backup directory {} is not empty",
                dest.display()
            )));
        }
        // The directory's own entry (it may have just been created) is durable before the
        // backup is complete: the MANIFEST's directory fsync covers only the entries inside it.
        if let Some(parent) = crate::dir::parent_dir(dest) {
            c.vfs
                .sync_dir(parent)
                .map_err(|e| Error::io("sync directory", parent.to_path_buf(), e))?;
        }
        self.shared.start_log_thread()?;
        let shared = &*self.shared;
        let manifest = c.manifest.lock();
        let lsn = shared.versions.pin(|| shared.visible.get());
        let _unpin = Unpin(shared, lsn);
        self.wait_durable(lsn)?;
        let (written, floor) = if lsn == 0 {
            // An empty database: a MANIFEST without a checkpoint is its whole copy.
            (crate::checkpoint::Written::default(), 0)
        } else {
            // Every value into the file: the copy has no segments.
            write_image(
                shared,
                c,
                &manifest,
                dest,
                1,
                lsn,
                &crate::values::Located::default(),
                true,
            )?
        };
        let (lsn_floor, _) = shared.checkpoint_floors();
        let copy = Manifest {
            seq: 0,
            checkpoint_id: u64::from(lsn != 0),
            checkpoint_lsn: lsn,
            checkpoint_len: written.len,
            first_segment: 1,
            trim_floor: floor.max(written.marked).max(manifest.trim_floor),
            lsn_floor: lsn_floor.max(manifest.lsn_floor).max(lsn),
            txn_floor: manifest.txn_floor.max(shared.last_txn_id()),
            run_floor: manifest.run_floor.max(shared.run_id),
            codec: c.codec.id(),
            version: ringlog_format::FORMAT_VERSION,
            ..*manifest
        };
        write_manifest(&*c.vfs, dest, &copy)?;
        let entries = written.entries.saturating_sub(1);
        log::info!(
            "backed up {entries} versions of {} keys at LSN {lsn} to {}",
            written.keys,
            dest.display()
        );
        Ok(CheckpointInfo {
            id: u64::from(lsn != 0),
            lsn,
            bytes: written.len,
            entries,
            keys: written.keys,
            segments_deleted: 0,
            segments_collected: 0,
        })
    }
}

/// Whether `path` is `dir` or lies below it: compared as absolute paths with `.` and `..`
/// resolved by name, and — where both exist on the machine's filesystem (not a simulated disk's
/// paths) — with symbolic links resolved too (`path`'s deepest existing ancestor).
fn inside(path: &Path, dir: &Path) -> bool {
    fn by_name(p: &Path) -> Option<PathBuf> {
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().ok()?.join(p)
        };
        let mut out = PathBuf::new();
        for c in abs.components() {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other),
            }
        }
        Some(out)
    }
    let (Some(path), Some(dir)) = (by_name(path), by_name(dir)) else {
        return false;
    };
    if path.starts_with(&dir) {
        return true;
    }
    let resolved = path.ancestors().find_map(|a| {
        let real = std::fs::canonicalize(a).ok()?;
        Some(real.join(path.strip_prefix(a).ok()?))
    });
    match (resolved, std::fs::canonicalize(&dir)) {
        (Some(p), Ok(d)) => p.starts_with(d),
        _ => false,
    }
}

/// Records trim floor `floor` in the MANIFEST (`m`, the one in force, whose lock the caller
/// holds) when it is above the one there: a trim under `Retention::NewerThan` calls this before it
/// publishes the floor (crate::index::trim), since recovery cannot always derive that floor again
/// (the commit times of the versions the checkpoint holds are gone with the log below it). When
/// the update fails, the trim publishes nothing and `m` stays as it was: its floor is the one
/// known to be on disk, so the next trim writes again (a failed update that reached the disk
/// anyway only holds a floor no read was refused with; a later MANIFEST may lower it).
pub(crate) fn record_trim_floor(c: &Checkpoints, m: &mut Manifest, floor: Lsn) -> Result<()> {
    if floor <= m.trim_floor {
        return Ok(());
    }
    let mut next = m.successor();
    next.trim_floor = floor;
    write_manifest(&*c.vfs, &c.dir, &next)?;
    *m = next;
    Ok(())
}

/// At a clean close, with every LSN up to `last` durable and the log thread stopped: lowers the
/// MANIFEST's LSN floor (the lease a checkpoint recorded) to `last`, so that the next run
/// continues from there rather than above the lease; and when this run wrote to the log
/// (`wrote`) and the checkpoint in force holds everything (its LSN is `last`), retires the whole
/// log — the MANIFEST's first needed segment moves past the active one `active`, then the
/// segments are deleted — so the next open reads the checkpoint and nothing else (it starts a new
/// segment). Writes nothing when neither applies. (The trim floor needs nothing here: the
/// floors recovery cannot derive again, `Retention::NewerThan`'s, are in the MANIFEST before any
/// read is refused with them, [`record_trim_floor`].)
pub(crate) fn at_close(shared: &Shared, c: &Checkpoints, last: Lsn, wrote: bool) -> Result<()> {
    let mut m = c.manifest.lock();
    let floor = last.max(m.checkpoint_lsn);
    let (_, active) = shared.checkpoint_floors();
    // (The first needed segment may already be past the active one: a checkpoint that
    // started a new segment no transaction has created yet. The active one goes too.)
    let holds_all = m.checkpoint_lsn == last
        || (crate::hooks::close_retires_a_commit() && m.checkpoint_lsn + 1 == last);
    let retire = wrote && m.checkpoint_id != 0 && holds_all;
    if m.lsn_floor <= floor && !retire {
        return Ok(());
    }
    let mut next = m.successor();
    next.lsn_floor = floor;
    let doomed: Vec<u64> = if retire {
        next.first_segment = m.first_segment.max(active + 1);
        next.txn_floor = m.txn_floor.max(shared.last_txn_id());
        next.run_floor = m.run_floor.max(shared.run_id);
        let keep = c.value_segments.lock();
        let mut d: std::collections::BTreeSet<u64> =
            (m.first_segment.min(active).max(1)..=active).collect();
        d.extend(c.deferred.lock().iter().copied());
        // A scan (or snapshot) of this handle may outlive the close and still read values in
        // them: those stay, below the first segment the MANIFEST needs and referenced by
        // nothing, so the next open removes them as leftovers (a review saw a scan's reads fail
        // after the close deleted segments the last checkpoint had kept for it).
        let in_use = shared.versions.segments_in_use();
        d.into_iter()
            .filter(|id| !keep.contains(id) || crate::hooks::compaction_forgets_value_segments())
            .filter(|id| !in_use.contains(id))
            .collect()
    } else {
        Vec::new()
    };
    if crate::hooks::delete_segments_before_manifest() {
        delete_segments(&*c.vfs, &c.dir, &doomed);
    }
    write_manifest(&*c.vfs, &c.dir, &next)?;
    *m = next;
    let deleted = delete_segments(&*c.vfs, &c.dir, &doomed);
    c.segments_deleted.fetch_add(deleted, Ordering::Relaxed);
    if retire {
        log::info!("closed with the log retired: the checkpoint at LSN {last} holds everything; {deleted} segments deleted");
    }
    Ok(())
}

/// A value segment is collected when at most this share of its bytes is live.
const GC_LIVE_SHARE: f64 = 0.5;
/// Beyond the segments at most [`GC_LIVE_SHARE`] live, collection takes more (least live
/// first, each below [`GC_LIVE_MAX`]) while the value segments take more than this many times
/// their live bytes: with the log since the last checkpoint, bounded by the value backlog's
/// pacing, the files then stay within about twice the live data while writers go on.
const GC_SPACE_GOAL: f64 = 1.35;
/// Segments more live than this are never collected (copying them frees too little).
const GC_LIVE_MAX: f64 = 0.9;
/// Value bytes copied per garbage collection transaction.
const GC_CHUNK: usize = 4 << 20;

/// A value segment as garbage collection sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct SegmentUse {
    /// Bytes of the records of the values the index holds in it.
    live: u64,
    /// Where its records end ([`value_segment_end`]).
    end: u64,
    /// Its file's length: what deleting it frees.
    len: u64,
}

/// The value segments to collect, given each one's use (`live`), ascending. A segment's live
/// share is its live bytes over where its records end (segments end where a checkpoint cut
/// them, often well short of `segment_size`, and their files may be longer still: prepared
/// ahead of the writes); what collecting it frees, and the space the goal counts, is its file's
/// length. Collection
/// aims to free `free_goal` bytes (the values written since the last collection: what their
/// overwrites left dead, at least the smallest log volume that triggers a checkpoint,
/// [`min_trigger`]: each value overwritten leaves a dead one behind, so collection keeps up
/// with any write rate) plus whatever brings the value segments down to
/// [`GC_SPACE_GOAL`] times their live bytes: first from the segments at most [`GC_LIVE_SHARE`]
/// live, best cost-benefit first ((1 − u) · age / (1 + u), age counted in segments up to
/// `newest`); then, while the value segments would still take more than the goal, from the
/// least live of the others below [`GC_LIVE_MAX`].
fn choose_victims(
    live: &std::collections::BTreeMap<u64, SegmentUse>,
    newest: u64,
    free_goal: u64,
) -> Vec<u64> {
    let share = |u: &SegmentUse| (u.live as f64 / u.end.max(1) as f64).min(1.0);
    let mut scored: Vec<(f64, u64, SegmentUse)> = live
        .iter()
        .filter(|&(_, u)| share(u) <= GC_LIVE_SHARE)
        .map(|(&seg, u)| {
            let s = share(u);
            let age = newest.saturating_sub(seg).max(1) as f64;
            ((1.0 - s) * age / (1.0 + s), seg, *u)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut rest: Vec<(f64, u64, SegmentUse)> = live
        .iter()
        .filter(|&(_, u)| share(u) > GC_LIVE_SHARE && share(u) < GC_LIVE_MAX)
        .map(|(&seg, u)| (share(u), seg, *u))
        .collect();
    rest.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let total_live: u64 = live.values().map(|u| u.live).sum();
    // One file's length more: what the collection's copies take is a segment too, prepared
    // ahead of its writes and cut short by the next checkpoint — a database whose values fit
    // one segment would otherwise copy them all at every checkpoint, from one file to the next,
    // chasing a goal no number of copies reaches.
    let one_file = live.values().map(|u| u.len).max().unwrap_or(0);
    let goal = (total_live as f64 * GC_SPACE_GOAL) as u64 + one_file;
    // The value segments' bytes, once the victims chosen so far are collected (their live
    // values copied into new ones).
    let mut space: u64 = live.values().map(|u| u.len).sum();
    let need = free_goal.saturating_add(space.saturating_sub(goal));
    let mut freed = 0u64;
    let mut victims = Vec::new();
    let first = scored.into_iter().map(|(_, seg, u)| (seg, u, false));
    let second = rest.into_iter().map(|(_, seg, u)| (seg, u, true));
    for (seg, u, only_for_space) in first.chain(second) {
        if freed >= need || (only_for_space && space <= goal) {
            break;
        }
        freed += u.len.saturating_sub(u.live);
        space = space.saturating_sub(u.len).saturating_add(u.live);
        victims.push(seg);
    }
    victims.sort_unstable();
    victims
}

/// Where the records of value segment `s` end: what its live share is counted against. Its file
/// (`file_len` bytes) is often longer — segments are prepared ahead of their writes, and a
/// checkpoint cuts the one it ends in short — and counted against the file, a wholly live
/// segment looked mostly dead and was collected again at every checkpoint. The end is the one
/// its successor's header records (`prev_end`, kept once read: compaction may delete the
/// successor first), the append cursor for the segment being appended to (`appending`: its id
/// and cursor), else (after a restart, for a segment whose successor is gone) where the file's
/// zero tail begins ([`end_before_zero_tail`], kept too), or failing that the file's length.
/// Only a share: nothing is deleted by it.
fn value_segment_end(
    c: &Checkpoints,
    epoch: u64,
    s: u64,
    appending: (u64, u64),
    file_len: u64,
) -> u64 {
    let bounded = |end: u64| {
        end.clamp(
            SEGMENT_HEADER_LEN as u64,
            file_len.max(SEGMENT_HEADER_LEN as u64),
        )
    };
    if s == appending.0 {
        return bounded(appending.1);
    }
    if let Some(&end) = c.value_ends.lock().get(&s) {
        return bounded(end);
    }
    let next = c.dir.join(crate::segment::segment_file_name(s + 1));
    match crate::recovery::read_header(&*c.vfs, &next) {
        Ok(Ok(h)) if h.segment_id == s + 1 && h.epoch == epoch && h.prev_end > 0 => {
            c.value_ends.lock().insert(s, h.prev_end);
            bounded(h.prev_end)
        }
        _ => {
            let path = c.dir.join(crate::segment::segment_file_name(s));
            match end_before_zero_tail(&*c.vfs, &path, file_len) {
                Some(end) => {
                    c.value_ends.lock().insert(s, end);
                    bounded(end)
                }
                None => file_len,
            }
        }
    }
}

/// Bytes read at most, backwards from a segment's end, looking for where its zero tail begins:
/// more than a segment is prepared ahead in one step (FORMAT.md §4.2).
const ZERO_TAIL_SCAN_MAX: u64 = 9 << 20;

/// Where the zero-filled tail of the segment file at `path` (`file_len` bytes) begins, rounded
/// up to the records' alignment: where its records end, unless the last record's value itself
/// ends in zero bytes — then short of it by those bytes ([`collect_garbage`] moves the end past
/// every live record; a dead last value of zeros still makes the segment look more live than it
/// is, by that value's zeros). `None` if the file cannot be read, or the zeros run further back
/// than [`ZERO_TAIL_SCAN_MAX`] without reaching a record.
fn end_before_zero_tail(vfs: &dyn Vfs, path: &Path, file_len: u64) -> Option<u64> {
    const CHUNK: u64 = 64 << 10;
    let file = crate::values::open_to_read(vfs, path).ok()?;
    let floor = file_len.saturating_sub(ZERO_TAIL_SCAN_MAX);
    let mut buf = vec![0u8; CHUNK as usize];
    let mut hi = file_len;
    while hi > floor {
        let lo = hi.saturating_sub(CHUNK).max(floor);
        let chunk = &mut buf[..(hi - lo) as usize];
        file.read_exact_at(chunk, lo).ok()?;
        if let Some(i) = chunk.iter().rposition(|&b| b != 0) {
            let end = lo + i as u64 + 1;
            return Some(end.next_multiple_of(ringlog_format::RECORD_ALIGN as u64));
        }
        hi = lo;
    }
    None
}

/// Value-log garbage collection (see docs/DURABILITY.md §8): counts each value segment of the
/// checkpoint in force's live bytes as the index holds them (every version, snapshots' too;
/// the value backlog's limit follows their sum), chooses victims among them
/// ([`choose_victims`]), and copies every value the index holds in them to the log's end with its original LSN (relocated Write records,
/// FORMAT.md §5.3), each chunk followed by a system transaction committed with `durability`.
/// The index and the checkpoint then refer to the copies; the victims go once no checkpoint and
/// no live generation refers to them. Returns the victims.
fn collect_garbage(
    shared: &Arc<Shared>,
    c: &Checkpoints,
    durability: Durability,
) -> Result<Vec<u64>> {
    debug_assert!(
        c.running.is_locked(),
        "one collection at a time, in a checkpoint"
    );
    let Some(store) = shared.versions.store() else {
        return Ok(Vec::new());
    };
    let candidates: Vec<u64> = c.value_segments.lock().clone();
    let Some(cfg) = shared.log.as_ref() else {
        return Ok(Vec::new());
    };
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    // The segment being appended to (the newest, which ages count up to) and its cursor.
    let appending = shared.appending_end();
    let newest = appending.0;
    c.value_ends.lock().retain(|s, _| candidates.contains(s));
    let written = c.backlog.spilled.load(Ordering::Relaxed);
    let free_goal = c
        .backlog
        .min_trigger()
        .max(written.saturating_sub(c.gc_mark.swap(written, Ordering::Relaxed)));
    // Live bytes per candidate, as the index holds them.
    let gen = shared.versions.current();
    let mut live: std::collections::BTreeMap<u64, SegmentUse> = candidates
        .iter()
        .map(|&s| {
            let len = store.segment_len(s).unwrap_or_else(|e| {
                // Its values cannot be read either: collecting it would fail the checkpoint.
                log::warn!("value segment {s}: {e}; taken as {} bytes", cfg.seg.size);
                cfg.seg.size
            });
            let end = value_segment_end(c, cfg.seg.epoch, s, appending, len);
            (s, SegmentUse { live: 0, end, len })
        })
        .collect();
    // Segments holding a value that a copy would not fit in a segment of today's size (it was
    // written under a larger one): not collected, their values stay where they are.
    let mut stuck = std::collections::BTreeSet::new();
    let mut n = gen.list.first();
    while let Some(node) = n {
        if node.flags() & IN_SEGMENT != 0 {
            if let Some(v) = node.value() {
                let r = crate::values::unpack(v);
                if let Some(l) = live.get_mut(&r.segment) {
                    let rec = ringlog_format::encoded_len(node.key().len(), r.len as usize) as u64;
                    l.live += rec;
                    // The records end at or past every live one (an end found from the zero
                    // tail stops short of a last value's trailing zero bytes).
                    l.end = l.end.max((r.offset + rec).min(l.len));
                    if !shared.relocation_fits(node.key().len(), r.len as usize) {
                        stuck.insert(r.segment);
                    }
                }
            }
        }
        n = node.next();
    }
    let live_bytes = live.values().map(|u| u.live).sum();
    c.backlog.set_live(live_bytes);
    shared.set_rotation_size(rotation_size(live_bytes, cfg.seg.size));
    if !stuck.is_empty() {
        log::info!(
            "value segments {stuck:?} hold values too large to copy into a segment of {} bytes: not collected",
            cfg.seg.size
        );
        live.retain(|s, _| !stuck.contains(s));
    }
    let victims = choose_victims(&live, newest, free_goal);
    if victims.is_empty() {
        return Ok(victims);
    }
    // The versions whose values are in a victim.
    let mut items: Vec<(Vec<u8>, Lsn, ValueRef)> = Vec::new();
    let mut n = gen.list.first();
    while let Some(node) = n {
        if node.flags() & IN_SEGMENT != 0 {
            if let Some(v) = node.value() {
                let r = crate::values::unpack(v);
                if victims.binary_search(&r.segment).is_ok() {
                    items.push((node.key().to_vec(), node.lsn(), r));
                }
            }
        }
        n = node.next();
    }
    drop(gen);
    let marker: Vec<u8> = victims.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut copied = 0u64;
    let mut skipped = 0usize;
    let mut start = 0;
    while start < items.len() {
        // A chunk of about GC_CHUNK value bytes (at least one value).
        let mut end = start;
        let mut bytes = 0usize;
        while end < items.len() && (end == start || bytes < GC_CHUNK) {
            bytes += items[end].2.len as usize;
            end += 1;
        }
        let chunk = &items[start..end];
        let wants: Vec<crate::values::Want<'_>> = chunk
            .iter()
            .map(|(k, l, r)| crate::values::Want {
                at: *r,
                key: k,
                lsn: *l,
            })
            .collect();
        let values = store.read_many(&wants);
        let mut relocs: Vec<(&[u8], Lsn, &[u8])> = Vec::with_capacity(chunk.len());
        for ((k, l, at), v) in chunk.iter().zip(&values) {
            match v {
                Ok(v) => relocs.push((&k[..], *l, &v[..])),
                // A value that cannot be read (damaged, say) stays where it is: the checkpoint
                // keeps referring to it, so its segment stays, and its reads fail as before.
                // Failing the collection failed every checkpoint after it (the same victim is
                // chosen again): no compaction, values piling up in memory.
                Err(e) => {
                    skipped += 1;
                    bytes -= at.len as usize;
                    log::error!(
                        "value-log garbage collection: the value of a key ({} bytes) at LSN {l} stays in segment {}: {e}",
                        k.len(),
                        at.segment
                    );
                }
            }
        }
        if relocs.is_empty() {
            start = end;
            continue;
        }
        let mut r = crate::commit::Relocations {
            items: &relocs,
            placed: Vec::new(),
        };
        failpoint!(GC_BEFORE_COPY);
        shared.commit_core(
            &[OpRef::Put(crate::values::VALUE_GC_KEY, &marker)],
            durability,
            true,
            Some(&mut r),
            None,
            |_| {},
        )?;
        failpoint!(GC_AFTER_COPY);
        debug_assert_eq!(r.placed.len(), relocs.len());
        copied += bytes as u64;
        start = end;
    }
    if crate::hooks::gc_deletes_victims_early() {
        delete_segments(&*c.vfs, &c.dir, &victims);
    }
    c.gc_segments
        .fetch_add(victims.len() as u64, Ordering::Relaxed);
    c.gc_bytes.fetch_add(copied, Ordering::Relaxed);
    log::info!(
        "value-log garbage collection: {} values ({copied} bytes) copied out of segments {victims:?}",
        items.len() - skipped
    );
    Ok(victims)
}

/// Unpins a checkpoint's snapshot when dropped.
struct Unpin<'a>(&'a Shared, Lsn);

impl Drop for Unpin<'_> {
    fn drop(&mut self) {
        self.0.versions.unpin(self.1);
    }
}

/// Deletes segments `ids` (missing ones are fine: an earlier attempt got there). Returns how many
/// it deleted. Failures are logged: open removes what is left as leftovers.
fn delete_segments(vfs: &dyn Vfs, dir: &Path, ids: &[u64]) -> u64 {
    let mut n = 0;
    for &id in ids {
        let path = dir.join(segment_file_name(id));
        failpoint!(COMPACTION_BEFORE_DELETE_SEGMENT);
        match vfs.remove_file(&path) {
            Ok(()) => n += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("could not delete {}: {e}", path.display()),
        }
    }
    n
}

/// The segments of `dir` from `from` through `to`, ascending.
fn segments_in(vfs: &dyn Vfs, dir: &Path, from: u64, to: u64) -> Result<Vec<u64>> {
    let names = vfs
        .list_dir(dir)
        .map_err(|e| Error::io("list directory", dir.to_path_buf(), e))?;
    let mut ids: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_segment_name(n))
        .filter(|&id| id >= from && id <= to)
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The first segment holding an LSN above `lsn`: segment `s` is wholly at or below it when the
/// segment after it was created with a base LSN at or below `lsn` (segment `s + 1`'s base LSN is
/// the last LSN assigned before its first record). Never above the segment being appended to.
fn first_needed_segment(
    vfs: &dyn Vfs,
    dir: &Path,
    from: u64,
    active: u64,
    lsn: Lsn,
) -> Result<u64> {
    let ids = segments_in(vfs, dir, from, active)?;
    let mut first = ids.first().copied().unwrap_or(active);
    for w in ids.windows(2) {
        if w[1] != w[0] + 1 {
            break;
        }
        let path = dir.join(segment_file_name(w[1]));
        let h = crate::recovery::read_header(vfs, &path)?.map_err(|e| Error::Corruption {
            file: path.clone(),
            offset: e.offset(),
            reason: format!("bad segment header: {e}"),
        })?;
        if h.base_lsn > lsn {
            break;
        }
        first = w[1];
    }
    Ok(first.min(active))
}

/// Whether a clean close should checkpoint first (see [`crate::Options::checkpoint_on_close`]).
pub(crate) fn due_at_close(shared: &Shared) -> bool {
    let Some(c) = shared.ckpt.get() else {
        return false;
    };
    if !c.on_close || c.every_bytes == u64::MAX || shared.state.lock().poisoned.is_some() {
        return false;
    }
    let since = shared
        .counters
        .bytes_appended
        .load(Ordering::Relaxed)
        .saturating_sub(c.bytes_at_last.load(Ordering::Relaxed));
    since >= (1 << 20) && since >= c.last_len.load(Ordering::Relaxed) / 8
}

/// The smallest log volume the space trigger waits for (tiny databases do not checkpoint on
/// every few commits).
const MIN_SPACE_TRIGGER: u64 = 64 << 20;

/// Whether enough log was appended since the last checkpoint to start one in the background;
/// true for one caller only (it claims the checkpoint by moving the mark).
pub(crate) fn due(shared: &Shared) -> bool {
    let Some(c) = shared.ckpt.get() else {
        return false;
    };
    if c.every_bytes == u64::MAX {
        return false;
    }
    // The configured volume of log, or as much log as the live data the last checkpoint held
    // (at least the minimum trigger), whichever comes first.
    let threshold = c.every_bytes.min(
        c.last_len
            .load(Ordering::Relaxed)
            .max(c.backlog.min_trigger()),
    );
    let now = shared.counters.bytes_appended.load(Ordering::Relaxed);
    let last = c.bytes_at_last.load(Ordering::Relaxed);
    now.saturating_sub(last) >= threshold
        && c.bytes_at_last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Where a file's zero tail begins, rounded up to the records' alignment; across chunk
    /// boundaries, at the file's end, and not past [`ZERO_TAIL_SCAN_MAX`] of zeros.
    #[test]
    fn the_zero_tail_begins_after_the_last_nonzero_byte() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = ringlog_uring::PosixVfs::new("test");
        let path = dir.path().join("seg");
        let end = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            end_before_zero_tail(&vfs, &path, bytes.len() as u64)
        };
        let mut b = vec![0u8; 300 << 10];
        assert_eq!(end(&b), None, "all zeros, no record");
        b[70_000] = 1;
        assert_eq!(end(&b), Some(70_008));
        b[(300 << 10) - 64 * 1024] = 1; // the first byte of the last chunk
        assert_eq!(end(&b), Some((300 << 10) - 64 * 1024 + 8));
        b[(300 << 10) - 64 * 1024 - 1] = 1; // the last byte of the chunk before
        assert_eq!(end(&b), Some((300 << 10) - 64 * 1024 + 8));
        *b.last_mut().unwrap() = 9;
        assert_eq!(end(&b), Some(300 << 10));
        let mut far = vec![0u8; ZERO_TAIL_SCAN_MAX as usize + 4096];
        far[100] = 1;
        assert_eq!(
            end(&far),
            None,
            "zeros run further back than the scan reads"
        );
        far[4096] = 1;
        assert_eq!(end(&far), Some(4104));
        assert_eq!(
            end_before_zero_tail(&vfs, &dir.path().join("none"), 10),
            None
        );
    }

    /// A commit paced by the values waiting for a checkpoint runs the checkpoint itself when the
    /// background thread cannot be started (a limit on threads): it used to wait for ever for a
    /// checkpoint nobody would run (found by a review under `RLIMIT_NPROC`). Every acknowledged
    /// value is there after a reopen.
    #[test]
    fn a_paced_commit_checkpoints_itself_when_no_background_thread_starts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let opts = crate::Options::default()
            .durability(crate::Durability::BUFFERED)
            .value_threshold(Some(64));
        let o = opts.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            crate::trimmer::seam::SPAWN_FAILS.with(|f| f.set(true));
            let db = crate::Db::open(&path, o).unwrap();
            let v = vec![7u8; 1024];
            for i in 0..8192u32 {
                db.put(&i.to_be_bytes(), &v).unwrap();
            }
            let st = db.stats();
            db.close().unwrap();
            tx.send((st.value_backlog_waits, st.checkpoints)).unwrap();
        });
        // A hang is the failure this test looks for: bounded, generously.
        let (waits, checkpoints) = rx
            .recv_timeout(std::time::Duration::from_secs(300))
            .expect("paced commits wait for a checkpoint no thread runs");
        worker.join().unwrap();
        assert!(waits > 0, "no commit was paced: the test tested nothing");
        assert!(checkpoints > 0, "no checkpoint ran");
        let db = crate::Db::open(dir.path(), opts).unwrap();
        for i in 0..8192u32 {
            assert_eq!(
                db.get(&i.to_be_bytes()).unwrap().as_deref(),
                Some(&[7u8; 1024][..])
            );
        }
        db.close().unwrap();
    }

    const SEG: u64 = 1 << 20;

    /// Segments `first..` of `SEG` bytes with the given live bytes each.
    fn segments(first: u64, live: &[u64]) -> BTreeMap<u64, SegmentUse> {
        live.iter()
            .enumerate()
            .map(|(i, &l)| (first + i as u64, used(l, SEG, SEG)))
            .collect()
    }

    fn used(live: u64, end: u64, len: u64) -> SegmentUse {
        SegmentUse { live, end, len }
    }

    #[test]
    fn victims_at_most_half_live_go_first_best_cost_benefit_first() {
        // Within the space goal (5.35 MiB live in 7 segments): only the mostly dead ones qualify,
        // and a goal one victim meets takes the best by cost-benefit — the older, not the less
        // live (segment 1, a quarter live and 9 segments old, before segment 7, a tenth live
        // and 3 old).
        let live = segments(1, &[SEG / 4, SEG, SEG, SEG, SEG, SEG, SEG / 10]);
        assert_eq!(choose_victims(&live, 10, SEG / 2), vec![1]);
        // A larger goal: both; never the full ones.
        assert_eq!(choose_victims(&live, 10, 8 * SEG), vec![1, 7]);
        // Equal liveness: the older first.
        let live = segments(1, &[SEG / 4, SEG / 4, SEG, SEG, SEG, SEG, SEG]);
        assert_eq!(choose_victims(&live, 10, SEG / 2), vec![1]);
    }

    #[test]
    fn a_collection_frees_what_was_written_since_the_last_and_stops_there() {
        // 40 % live each, within the space goal: each victim frees 0.6 MiB.
        let live = segments(1, &[SEG * 4 / 10, SEG * 4 / 10, SEG * 4 / 10, SEG * 4 / 10]);
        let mut live = live;
        live.extend(segments(5, &[SEG; 16]));
        assert_eq!(choose_victims(&live, 30, SEG).len(), 2);
        assert_eq!(choose_victims(&live, 30, SEG / 2).len(), 1);
        assert_eq!(choose_victims(&live, 30, 100 * SEG).len(), 4);
        // Nothing to collect from.
        assert!(choose_victims(&BTreeMap::new(), 3, SEG).is_empty());
    }

    #[test]
    fn over_the_space_goal_the_least_live_of_the_others_go_too() {
        // Every segment 60 % live: nothing is mostly dead, but the segments take 1.67 × their
        // live bytes, 0.9 MiB over the goal of 1.35 × and one file (9.1 MiB). Each victim frees
        // 0.4 MiB (its 0.6 MiB copied): after three the segments take 8.8 MiB, within the goal.
        let live = segments(1, &[SEG * 6 / 10; 10]);
        assert_eq!(choose_victims(&live, 12, SEG / 8).len(), 3);
        // The least live first.
        let mut live = live;
        live.insert(4, used(SEG * 55 / 100, SEG, SEG));
        live.insert(7, used(SEG * 52 / 100, SEG, SEG));
        let v = choose_victims(&live, 12, SEG / 8);
        assert!(v.contains(&4) && v.contains(&7), "{v:?}");
        // Within the goal (the same segments, fuller), none.
        let live = segments(1, &[SEG * 3 / 4; 10]);
        assert_eq!(choose_victims(&live, 12, SEG / 8), Vec::<u64>::new());
        // Nearly full segments never, however far over the goal the space is.
        let mut live = segments(1, &[SEG * 95 / 100; 4]);
        live.extend(segments(9, &[0, 0, 0]));
        assert_eq!(choose_victims(&live, 12, 16 * SEG), vec![9, 10, 11]);
    }

    #[test]
    fn a_segment_cut_short_is_judged_by_its_own_length() {
        // Segment 1 holds 6 MiB live in an 8 MiB file (a checkpoint cut it): 75 % live, not
        // the 9 % its live bytes are of a 64 MiB segment_size. Segment 2, 40 % live, goes;
        // segment 1 does not (within the space goal).
        let mut live = BTreeMap::new();
        live.insert(1, used(6 << 20, 8 << 20, 8 << 20));
        live.insert(2, used(SEG * 4 / 10, SEG, SEG));
        live.extend(segments(3, &[SEG; 8]));
        assert_eq!(choose_victims(&live, 12, 64 << 20), vec![2]);
        // What a collection frees is a victim's length less its live bytes: 8 segments of
        // 2 MiB a quarter live free 1.5 MiB each; within the space goal (40 full segments
        // beside them), a goal of 4 MiB takes three.
        let mut live: BTreeMap<u64, SegmentUse> = (1..=8)
            .map(|s| (s, used(SEG / 2, 2 * SEG, 2 * SEG)))
            .collect();
        live.extend(segments(9, &[SEG; 40]));
        assert_eq!(choose_victims(&live, 60, 4 * SEG).len(), 3);
    }

    #[test]
    fn a_segment_is_judged_by_where_its_records_end_and_frees_its_file() {
        // Segment 1's records end at 0.1 MiB, 95 % of them live, in a file prepared to 1 MiB
        // (a checkpoint cut it): nearly full, never collected, however far over the space goal
        // — copying it would copy all its values and free little that the copies' own segment
        // does not take again (every checkpoint copied a small database's values once more).
        let mut live = BTreeMap::new();
        live.insert(1, used(SEG / 10 * 95 / 100, SEG / 10, SEG));
        live.extend(segments(2, &[SEG / 2; 4]));
        assert_eq!(choose_victims(&live, 12, 16 * SEG), vec![2, 3, 4, 5]);
        // Half its records dead, it goes like any other (first: the oldest), and frees its
        // whole file: within the space goal (20 full segments beside), it alone meets a goal of
        // half a segment.
        live.insert(1, used(SEG / 20, SEG / 10, SEG));
        live.extend(segments(6, &[SEG; 20]));
        assert_eq!(choose_victims(&live, 30, SEG / 2), vec![1]);
    }

    #[test]
    fn the_pace_limit_is_an_eighth_of_the_live_values_within_its_bounds() {
        const MIB: u64 = 1 << 20;
        let cap = 512 * MIB;
        // Small databases: the smallest trigger, 4 MiB.
        assert_eq!(pace_limit(cap, 0), 4 * MIB);
        assert_eq!(pace_limit(cap, 24 * MIB), 4 * MIB);
        // An eighth of the live values, with the trigger up to 64 MiB (at 512 MiB of them)...
        assert_eq!(pace_limit(cap, 100 * MIB), 100 * MIB / 8);
        assert_eq!(pace_limit(cap, 256 * MIB), 32 * MIB);
        assert_eq!(pace_limit(cap, 1024 * MIB), 128 * MIB);
        // ... and past it, up to the cap.
        assert_eq!(pace_limit(cap, 1536 * MIB), 192 * MIB);
        assert_eq!(pace_limit(cap, 100 << 30), cap);
        // A small checkpoint_bytes caps it below the minimum.
        assert_eq!(pace_limit(MIB, 100 << 30), MIB);
        assert_eq!(pace_limit(u64::MAX, 100 << 30), u64::MAX);
        let b = ValueBacklog::new(Some(64), cap);
        assert_eq!(b.limit(), 4 * MIB);
        assert_eq!(b.min_trigger(), 4 * MIB);
        b.set_live(8 << 30);
        assert_eq!(b.limit(), cap);
        assert_eq!(b.min_trigger(), 64 * MIB);
        // Values in memory: never paced, and checkpoints wait for at least 64 MiB of log.
        let b = ValueBacklog::new(None, cap);
        assert_eq!(b.limit(), u64::MAX);
        assert_eq!(b.min_trigger(), MIN_SPACE_TRIGGER);
        assert_eq!(min_trigger(0), SMALL_SPACE_TRIGGER);
        assert_eq!(min_trigger(200 * MIB), 25 * MIB);
    }

    #[test]
    fn segments_are_a_sixteenth_of_the_live_values_within_their_bounds() {
        const MIB: u64 = 1 << 20;
        let seg = 64 * MIB;
        assert_eq!(rotation_size(0, seg), 4 * MIB);
        assert_eq!(rotation_size(100 * MIB, seg), 100 * MIB / 16);
        assert_eq!(rotation_size(1024 * MIB, seg), seg);
        assert_eq!(rotation_size(100 << 30, seg), seg);
        // Small segments: from a quarter of their size.
        assert_eq!(rotation_size(0, 64 << 10), 16 << 10);
        assert_eq!(rotation_size(512 << 10, 64 << 10), 32 << 10);
        assert_eq!(rotation_size(8 * MIB, 64 << 10), 64 << 10);
        // At open, before a collection counts them: the smallest, if values are collected.
        assert_eq!(opening_rotation_size(true, seg), 4 * MIB);
        assert_eq!(opening_rotation_size(true, 64 << 10), 16 << 10);
        assert_eq!(opening_rotation_size(false, seg), seg);
    }
}
