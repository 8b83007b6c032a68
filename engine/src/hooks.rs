//! Test-only hooks for the crash-test runner (`crash-tests/`), compiled in only under cargo
//! features. A default build carries none of them: every hook below is then an identity function
//! or an empty macro that the compiler removes.
//!
//! * feature `__failpoints`: named crash points ([`failpoint!`]). Inert until armed with
//!   [`failpoints::arm`]; an armed point kills the process with `SIGKILL` on its n-th hit.
//! * feature `__planted-bugs`: deliberate durability bugs in the engine's own logic, so that
//!   tests can prove the crash-test runner detects them. Inert until armed with [`bugs::arm`].
//!   Bugs a disk layer can express (a sync the engine asks for, dropped) live in the crash-test
//!   crate's simulated disk instead (`ringlog_crash::sim::disk_bugs`), not here.
//!
//! Both are armed only through functions that exist only under their feature, never by an
//! environment variable or an option, so a build that has the feature (cargo unifies features
//! across a workspace) behaves exactly like a default build until a test arms something.

use std::io;
use std::path::Path;
use std::sync::Arc;

use ringlog_uring::{VFile, Vfs};

use crate::index::Lsn;
use crate::wal::{Shared, State};

/// Marks a crash point, named by a constant of [`points`]. Without the `__failpoints` feature it
/// only names the constant (so that it is checked), and compiles to nothing.
macro_rules! failpoint {
    ($point:ident) => {
        let _ = $crate::hooks::points::$point;
        #[cfg(feature = "__failpoints")]
        $crate::hooks::failpoints::hit($crate::hooks::points::$point);
    };
}

/// The names of the engine's crash points, one constant each: [`failpoint!`] takes the constant,
/// so a misspelt point fails to compile in every build (with or without `__failpoints`).
pub(crate) mod points {
    macro_rules! points {
        ($($id:ident = $name:literal,)*) => {
            $(pub(crate) const $id: &str = $name;)*
            /// Every crash point, in the order a run usually reaches them.
            #[cfg_attr(not(feature = "__failpoints"), allow(dead_code))]
            pub(crate) const ALL: &[&str] = &[$($name),*];
        };
    }

    points! {
    MANIFEST_BEFORE_RENAME = "manifest::before_rename",
    MANIFEST_BEFORE_DIR_SYNC = "manifest::before_dir_sync",
    OPEN_BEFORE_REMOVE_LEFTOVER = "open::before_remove_leftover",
    RECOVERY_BEFORE_REMOVE_UNFINISHED_SEGMENT = "recovery::before_remove_unfinished_segment",
    RECOVERY_BEFORE_QUARANTINE = "recovery::before_quarantine",
    OPEN_AFTER_RECOVERY = "open::after_recovery",
    SEGMENT_AFTER_CREATE_FILE = "segment::after_create_file",
    SEGMENT_BEFORE_FILE_SYNC = "segment::before_file_sync",
    SEGMENT_BEFORE_RENAME = "segment::before_rename",
    SEGMENT_BEFORE_DIR_SYNC = "segment::before_dir_sync",
    SEGMENT_AFTER_DIR_SYNC = "segment::after_dir_sync",
    SEGMENT_BEFORE_GROW = "segment::before_grow",
    LOG_BEFORE_BATCH_WRITE = "log::before_batch_write",
    GC_BEFORE_COPY = "gc::before_copy",
    GC_AFTER_COPY = "gc::after_copy",
    LOG_AFTER_BATCH_DURABLE = "log::after_batch_durable",
    LOG_AFTER_DURABLE_PUBLISHED = "log::after_durable_published",
    LOG_MID_ROTATION = "log::mid_rotation",
    CHECKPOINT_WRITE = "checkpoint::write",
    CHECKPOINT_BEFORE_SYNC = "checkpoint::before_sync",
    CHECKPOINT_BEFORE_RENAME = "checkpoint::before_rename",
    COMPACTION_BEFORE_DELETE_SEGMENT = "compaction::before_delete_segment",
    COMPACTION_BEFORE_DELETE_CHECKPOINT = "compaction::before_delete_checkpoint",
    }
}

/// Crash points: names, arming, hit counters.
#[cfg(feature = "__failpoints")]
pub mod failpoints {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Weak};

    use parking_lot::Mutex;
    use ringlog_uring::Vfs;

    /// Every crash point compiled into the engine, in the order a run usually reaches them.
    pub const POINTS: &[&str] = super::points::ALL;

    static ARMED: AtomicBool = AtomicBool::new(false);
    static TARGET: Mutex<Option<(&'static str, u64)>> = Mutex::new(None);
    static HITS: [AtomicU64; POINTS.len()] = [const { AtomicU64::new(0) }; POINTS.len()];

    /// Arms crash point `name`: its `nth` hit (counting from 1, from now on) kills the process
    /// with `SIGKILL`. Replaces any earlier arming. Returns false for an unknown name.
    pub fn arm(name: &str, nth: u64) -> bool {
        let Some(&known) = POINTS.iter().find(|p| **p == name) else {
            return false;
        };
        *TARGET.lock() = Some((known, nth.max(1)));
        ARMED.store(true, Ordering::SeqCst);
        true
    }

    /// Disarms every crash point.
    pub fn disarm() {
        ARMED.store(false, Ordering::SeqCst);
        *TARGET.lock() = None;
    }

    /// How often each point was hit in this process (counted whether armed or not).
    pub fn hits() -> Vec<(&'static str, u64)> {
        POINTS
            .iter()
            .zip(HITS.iter())
            .map(|(p, h)| (*p, h.load(Ordering::Relaxed)))
            .collect()
    }

    static SMALL_RECOVERY_CHUNKS: AtomicBool = AtomicBool::new(false);

    /// Makes recovery's loader leave its hash regime after 4 live keys and sort and fold chunks
    /// of 8 operations (on its sorting thread), and the checkpoint's loader wait for the log's
    /// versions half-way through its pass, so that the small databases of a crash-test campaign
    /// take the paths a large database's recovery takes (some of the log's versions merged into
    /// the pass, the others inserted after it). Off by default.
    pub fn small_recovery_chunks(on: bool) {
        SMALL_RECOVERY_CHUNKS.store(on, Ordering::SeqCst);
    }

    /// Whether [`small_recovery_chunks`] is on.
    pub(crate) fn small_recovery_chunks_on() -> bool {
        SMALL_RECOVERY_CHUNKS.load(Ordering::Relaxed)
    }

    static SMALL_READ_PIECES: AtomicBool = AtomicBool::new(false);

    /// Makes recovery's segment reader stream segments in 4 KiB pieces instead of 4 MiB, so that
    /// the small segments of a crash-test campaign are read in several pieces, decoded while the
    /// later ones are read, as a large segment is. Off by default.
    pub fn small_read_pieces(on: bool) {
        SMALL_READ_PIECES.store(on, Ordering::SeqCst);
    }

    /// Whether [`small_read_pieces`] is on.
    pub(crate) fn small_read_pieces_on() -> bool {
        SMALL_READ_PIECES.load(Ordering::Relaxed)
    }

    /// Arms the planted bug whose `Debug` name is `name`, when this build has planted bugs (the
    /// `__planted-bugs` feature, which test builds of the crash runner turn on). `false` when it
    /// does not, or when no bug has that name. For a crash runner's child process, which has no
    /// other way to be told.
    pub fn arm_planted(name: &str) -> bool {
        #[cfg(feature = "__planted-bugs")]
        if let Some(bug) = super::bugs::Bug::ALL
            .into_iter()
            .find(|b| format!("{b:?}") == name)
        {
            super::bugs::arm(bug);
            return true;
        }
        let _ = name;
        false
    }

    static NO_LEADER_COMMITS: AtomicBool = AtomicBool::new(false);

    /// Makes every `Strict` commit hand its round to the log thread, as before committers could
    /// lead their own ([`crate::wal`]'s `leader`), so that a campaign can cover both paths. Off by
    /// default.
    pub fn no_leader_commits(on: bool) {
        NO_LEADER_COMMITS.store(on, Ordering::SeqCst);
    }

    /// Whether [`no_leader_commits`] is on.
    pub(crate) fn no_leader_commits_on() -> bool {
        NO_LEADER_COMMITS.load(Ordering::Relaxed)
    }

    /// A database's virtual wall clock ([`virtual_clock`]): the `Vfs` it is for (held weakly, so
    /// that its address is not reused while the entry is listed) and the clock.
    type Clock = (Weak<dyn Vfs>, Arc<AtomicU64>);

    static CLOCKS: Mutex<Vec<Clock>> = Mutex::new(Vec::new());
    static CLOCKS_ARMED: AtomicBool = AtomicBool::new(false);

    /// Gives the databases opened on `vfs` (this very `Arc`, as passed to `Options::vfs`) a
    /// virtual wall clock: from now on, wherever the engine reads the wall clock for
    /// `Retention::NewerThan` — the commit times it samples in memory, each write batch's commit
    /// time in the log, the trim floor a trim, a checkpoint or an open computes from them — it
    /// reads `clock` (nanoseconds since the Unix epoch), which only the caller moves; and the
    /// history trimmer does not wake periodically under `NewerThan` (time moves only when the
    /// caller moves it, and the caller trims when it chooses). For the crash runner, whose seeded
    /// runs must not depend on the real clock. In force until `vfs` is dropped; giving the same
    /// `vfs` another clock replaces the first.
    pub fn virtual_clock(vfs: &Arc<dyn Vfs>, clock: Arc<AtomicU64>) {
        let key = Arc::downgrade(vfs);
        let mut c = CLOCKS.lock();
        c.retain(|(v, _)| v.strong_count() > 0 && !std::ptr::addr_eq(v.as_ptr(), key.as_ptr()));
        c.push((key, clock));
        CLOCKS_ARMED.store(true, Ordering::SeqCst);
    }

    /// The virtual clock given to `vfs` ([`virtual_clock`]), read now.
    pub(crate) fn clock_of(vfs: &Arc<dyn Vfs>) -> Option<u64> {
        if !CLOCKS_ARMED.load(Ordering::Relaxed) {
            return None;
        }
        let at = Arc::as_ptr(vfs);
        CLOCKS
            .lock()
            .iter()
            .find(|(v, _)| std::ptr::addr_eq(v.as_ptr(), at))
            .map(|(_, c)| c.load(Ordering::SeqCst))
    }

    /// Called by [`failpoint!`].
    pub(crate) fn hit(name: &'static str) {
        if let Some(i) = POINTS.iter().position(|p| *p == name) {
            HITS[i].fetch_add(1, Ordering::Relaxed);
        } else {
            debug_assert!(false, "crash point {name} is missing from POINTS");
        }
        if !ARMED.load(Ordering::Relaxed) {
            return;
        }
        let mut t = TARGET.lock();
        if let Some((armed, left)) = t.as_mut() {
            if *armed == name {
                *left -= 1;
                if *left == 0 {
                    // SAFETY: getpid and kill take no pointers; SIGKILL ends the process at once,
                    // like a crash (no unwinding, no destructors, no buffered output flushed).
                    unsafe {
                        libc::kill(libc::getpid(), libc::SIGKILL);
                    }
                }
            }
        }
    }
}

/// Planted bugs: arming and the bug list.
#[cfg(feature = "__planted-bugs")]
pub mod bugs {
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A deliberate durability bug.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Bug {
        /// A `Strict` commit requests its sync but returns without waiting for it.
        AckStrictBeforeSync,
        /// Recovery applies a transaction whose commit record is missing (torn), with whatever
        /// operations survived.
        ApplyTornCommit,
        /// A reopened database reuses the highest LSN recovery saw for its first commit.
        ReuseLsnAfterRecovery,
        /// After a round, the log thread publishes as durable the last LSN assigned so far, not
        /// the last LSN of the round: commits appended while the round's sync ran are
        /// acknowledged durable without being written. Invisible with one committer that waits.
        PublishLastAssignedLsn,
        /// A `Buffered` commit never arms the timer: its round starts only when something else
        /// (a sync, a Strict commit, the pending limit) forces one.
        BufferedTimerNeverFires,
        /// A sync request does not wake a sleeping log thread: a `Strict` committer can wait
        /// forever (a liveness bug).
        LostSyncWakeup,
        /// Reopening a database does not sync the recovered tail before appending: after a
        /// process crash, data that was only in the page cache is built on, then a power loss can
        /// drop it.
        SkipResyncOnReopen,
        /// After a crash that left a torn tail, the next segment (created by the first commit)
        /// records the torn segment's end one sector past its last valid record.
        DeferredRotationPastTheEnd,
        /// No LSN leases: a run hands out LSNs without recording them first, so after a
        /// Buffered crash the next run numbers new commits with LSNs already returned.
        SkipLsnLease,
        /// A `Strict` commit becomes visible to readers before its sync completes.
        PublishStrictBeforeDurable,
        /// A history trim ignores live snapshots: their reads lose versions.
        TrimIgnoresSnapshots,
        /// The key index of point reads keeps a key's first node instead of its newest: reads
        /// of the newest state (and at versions) return an older version.
        StaleKeyIndex,
        /// Compaction deletes the segments below a checkpoint before the MANIFEST that drops
        /// them is durable: a crash leaves a MANIFEST that still needs them.
        DeleteSegmentsBeforeManifest,
        /// A checkpoint drops every tombstone, also one whose key has older versions kept: a
        /// read at the tombstone's LSN finds the older version again (a resurrected delete).
        CheckpointDropsTombstones,
        /// Open ignores the MANIFEST's trim floor: the floor moves backwards after a restart.
        TrimFloorBackwards,
        /// Open resumes in the last segment as if only its first extent were prepared (as a new
        /// segment's is), forgetting the growth its earlier run wrote: the next growth zero-fills
        /// over records already written and acknowledged.
        ReopenForgetsGrowth,
        /// Recovery's loader, folding a sorted chunk of the log over the state before it, keeps
        /// the older version of a key both hold: a key overwritten across chunks recovers an
        /// older value (or a deleted key comes back).
        FoldKeepsOlderVersion,
        /// The write batch that starts a new segment is written with its head left unfilled
        /// (zeros): recovery finds no record where the segment's data starts, and the batch's
        /// acknowledged commits are lost or the log refused (format version 4).
        RotationBatchWithoutHead,
        /// A lone `Strict` committer leading its own round writes it without the sync, and
        /// publishes it durable.
        LeaderSkipsSync,
        /// Recovery's segment reader, streaming a segment in pieces, skips reading its second
        /// piece but reports it read: the decoder finds whatever the buffer held there.
        StreamSkipsAPiece,
        /// The checkpoint's loader, merging the log's versions into its pass, leaves out those
        /// whose keys it had already passed when it took them (never inserted).
        MergeForgetsPassedTail,
        /// Every batch head claims the whole segment before it durable (its durable floor is its
        /// own offset), even when rounds before it were still in flight: recovery then reports
        /// a torn in-flight round as mid-log corruption and refuses a log a crash can leave.
        FloorClaimsAll,
        /// The pipelined log publishes a round durable as soon as its own write completed,
        /// though an earlier round is still in flight: its committers are acknowledged with a
        /// hole before their records.
        PublishOutOfOrder,
        /// Compaction (and a close that retires the log) deletes every segment below the first
        /// needed one, also those the new checkpoint refers to for values on disk: those values'
        /// reads then fail.
        CompactionForgetsValueSegments,
        /// Value-log garbage collection deletes its victims as soon as it copied their values,
        /// before a checkpoint that refers to the copies is in force (the one in force, and the
        /// index until the checkpoint converts it, still refer to the victims).
        GcDeletesVictimsEarly,
        /// Value-log garbage collection runs after the checkpoint made its LSN durable, and
        /// does not make its copies durable: the checkpoint refers to copies a power loss can
        /// take away, and its compaction deletes the originals.
        GcAfterThePin,
        /// A commit records its keys in the conflict table when it completes (durable and
        /// published), outside the log mutex, instead of when it gets its LSN: an optimistic
        /// transaction validated in between misses a write committed after its snapshot (a
        /// lost update).
        ConflictsRecordedLate,
        /// `Db::runs` and `Db::run_changes` take the oldest segment left for the log's
        /// beginning: a run whose first transactions compaction removed is reported whole.
        RunsForgetCompaction,
        /// A read-only open removes the leftovers a crash left (an unfinished segment creation
        /// or checkpoint), as a writable open does: it writes to a directory it must not touch.
        ReadOnlyCleansUp,
        /// `Db::history` leaves deletes out: a deleted key's history shows its older value as
        /// the newest.
        HistorySkipsDeletes,
        /// A read of a value on disk whose record fails its checks returns the bytes where the
        /// value would be instead of `Error::Corruption`: damage reads as wrong bytes.
        ValueReadSkipsChecks,
        /// A published round does not advance the log's synced position, so every later
        /// batch head's durable floor stays where it was: after a crash (no seal), recovery
        /// takes damage to an acknowledged round before a later round for a torn tail and cuts
        /// it silently (found by session 36's mutation audit).
        DurableFloorsStayPut,
        /// A truncating recovery refuses a log whose first needed segment is missing, as a
        /// strict one does, instead of cutting the log there: a crash while an earlier
        /// truncating recovery moved the log's segments aside (the first one moved, a later one
        /// not) leaves a database no recovery opens.
        TruncatingRefusesMissingFirst,
        /// Recovery does not check that the segments the checkpoint refers to for values are
        /// there: a database missing one opens, and reads of its values fail later.
        OpenIgnoresMissingValueSegments,
        /// A trim under `Retention::NewerThan` publishes its new floor without recording it in
        /// the MANIFEST first (the defect of docs/DURABILITY.md 6.4's former gap): recovery
        /// recomputes the floor from commit times in the log, which no longer has those of the
        /// versions the checkpoint holds, and reads refused before a crash or a close are
        /// answered after it.
        TrimForgetsNewerThanFloor,
        /// A truncating recovery starts the next run above the highest LSN it read before the
        /// cut, as before the fix: LSNs acknowledged in what it cut are handed out again.
        TruncatingReusesLsns,
        /// `set_retention(All | LastVersions)` commits its entry with the database's durability
        /// instead of `Strict` (the defect 2390ddd fixed): under `Buffered` the floor rises
        /// before the entry is durable, and a crash that loses the entry moves it back.
        RetentionEntryNotStrict,
        /// `Db::sync` answers `Ok` on a poisoned database (an error reported once, then
        /// forgotten): durability claimed after a failed fdatasync.
        SyncForgetsPoison,
        /// `Db::close` answers `Ok` on a poisoned database.
        CloseForgetsPoison,
        /// A commit returns without waiting for the commits before it to be published: a
        /// `Buffered` commit behind a `Strict` one still waiting for its sync returns before it
        /// is visible, and its writer does not read its own write.
        CommitReturnsBeforeVisible,
        /// The `Buffered` deadline runs from the newest unsynced commit instead of the oldest:
        /// a steady stream of commits postpones the round, past the loss window's bound.
        BufferedDeadlineFromNewest,
        /// Value-log garbage collection commits its copies without starting the log thread
        /// (the regression 44c0355 fixed): in a run that has committed nothing, a checkpoint
        /// that collects waits for a durable write no thread will make.
        GcStartsNoLogThread,
        /// `set_retention` raises the trim floor to the LSN before its entry after another
        /// history-keeping policy too (the behaviour session 31 changed): history the previous
        /// policy kept is refused.
        RetentionAgainRaisesFloor,
        /// A clean close retires the log (the checkpoint "holds everything") when one commit
        /// still follows the last checkpoint: that commit, durable in the deleted segments, is
        /// lost with them.
        CloseRetiresACommit,
        /// Recovery raises the trim floor to the first retention entry after the checkpoint
        /// also when the checkpoint's policy keeps history (the high-severity bug 431098b fixed):
        /// `All` set again after a checkpoint under `All` loses, at the next open, the history
        /// the first one kept.
        RestartRaisesKeptFloor,
        /// A transaction's conditions are checked only against the commits after its snapshot:
        /// a key of the range written between the condition's LSN and the snapshot passes.
        ConditionsIgnoreSnapshot,
        /// `checkpoint()` on a database with nothing committed (visible LSN 0) writes a
        /// checkpoint at LSN 0, as before the fix: its retention entry carries LSN 1, and every
        /// later open refuses it.
        CheckpointAtLsnZero,
    }

    impl Bug {
        /// Every planted bug.
        pub const ALL: [Bug; 47] = [
            Bug::AckStrictBeforeSync,
            Bug::ApplyTornCommit,
            Bug::ReuseLsnAfterRecovery,
            Bug::PublishLastAssignedLsn,
            Bug::BufferedTimerNeverFires,
            Bug::LostSyncWakeup,
            Bug::SkipResyncOnReopen,
            Bug::DeferredRotationPastTheEnd,
            Bug::SkipLsnLease,
            Bug::PublishStrictBeforeDurable,
            Bug::TrimIgnoresSnapshots,
            Bug::StaleKeyIndex,
            Bug::DeleteSegmentsBeforeManifest,
            Bug::CheckpointDropsTombstones,
            Bug::TrimFloorBackwards,
            Bug::ReopenForgetsGrowth,
            Bug::FoldKeepsOlderVersion,
            Bug::RotationBatchWithoutHead,
            Bug::LeaderSkipsSync,
            Bug::StreamSkipsAPiece,
            Bug::MergeForgetsPassedTail,
            Bug::FloorClaimsAll,
            Bug::PublishOutOfOrder,
            Bug::CompactionForgetsValueSegments,
            Bug::GcDeletesVictimsEarly,
            Bug::GcAfterThePin,
            Bug::ConflictsRecordedLate,
            Bug::RunsForgetCompaction,
            Bug::ReadOnlyCleansUp,
            Bug::HistorySkipsDeletes,
            Bug::ValueReadSkipsChecks,
            Bug::TruncatingRefusesMissingFirst,
            Bug::OpenIgnoresMissingValueSegments,
            Bug::TrimForgetsNewerThanFloor,
            Bug::TruncatingReusesLsns,
            Bug::RetentionEntryNotStrict,
            Bug::SyncForgetsPoison,
            Bug::CloseForgetsPoison,
            Bug::CommitReturnsBeforeVisible,
            Bug::BufferedDeadlineFromNewest,
            Bug::GcStartsNoLogThread,
            Bug::RetentionAgainRaisesFloor,
            Bug::CloseRetiresACommit,
            Bug::RestartRaisesKeptFloor,
            Bug::ConditionsIgnoreSnapshot,
            Bug::CheckpointAtLsnZero,
            Bug::DurableFloorsStayPut,
        ];

        fn bit(self) -> u64 {
            // Every bug has a bit of `ARMED`.
            const _: () = assert!(Bug::ALL.len() <= u64::BITS as usize);
            1 << (self as u32)
        }
    }

    static ARMED: AtomicU64 = AtomicU64::new(0);

    /// Arms `bug` for the whole process until [`disarm_all`].
    pub fn arm(bug: Bug) {
        ARMED.fetch_or(bug.bit(), Ordering::SeqCst);
    }

    /// Disarms every planted bug.
    pub fn disarm_all() {
        ARMED.store(0, Ordering::SeqCst);
    }

    /// Whether `bug` is armed.
    pub fn armed(bug: Bug) -> bool {
        ARMED.load(Ordering::Relaxed) & bug.bit() != 0
    }
}

/// Hook: a `Strict` commit about to wait for its sync. The `AckStrictBeforeSync` bug requests
/// the sync but returns true, so the commit is acknowledged without waiting for it.
#[inline(always)]
pub(crate) fn ack_strict_early(_shared: &Shared, _st: &mut State, _lsn: Lsn) -> bool {
    #[cfg(feature = "__planted-bugs")]
    if bugs::armed(bugs::Bug::AckStrictBeforeSync) {
        _shared.request_sync(_st, _lsn);
        return true;
    }
    false
}

/// Hook: the highest LSN recovery saw. The `ReuseLsnAfterRecovery` bug lowers it by one.
#[inline(always)]
pub(crate) fn recovered_max_lsn(max_lsn: Lsn, _last_applied: Lsn) -> Lsn {
    #[cfg(feature = "__planted-bugs")]
    if bugs::armed(bugs::Bug::ReuseLsnAfterRecovery) {
        // Ignores LSN leases too: numbers the next commit with the last applied LSN.
        return _last_applied.saturating_sub(1);
    }
    max_lsn
}

/// Whether the `ApplyTornCommit` bug is armed (used by recovery).
#[cfg(feature = "__planted-bugs")]
pub(crate) fn apply_torn_commit() -> bool {
    bugs::armed(bugs::Bug::ApplyTornCommit)
}

/// Hook: whether a finished round publishes as durable the last LSN assigned so far instead of
/// its own last LSN, and wakes every parked committer (the `PublishLastAssignedLsn` bug).
#[inline(always)]
pub(crate) fn publishes_past_round() -> bool {
    #[cfg(feature = "__planted-bugs")]
    if bugs::armed(bugs::Bug::PublishLastAssignedLsn) {
        return true;
    }
    false
}

/// Hook: whether a `Buffered` commit arms the sync timer (the `BufferedTimerNeverFires` bug
/// says no).
#[inline(always)]
pub(crate) fn arm_buffered_timer() -> bool {
    #[cfg(feature = "__planted-bugs")]
    if bugs::armed(bugs::Bug::BufferedTimerNeverFires) {
        return false;
    }
    true
}

/// Hook: whether a sync request wakes a sleeping log thread (the `LostSyncWakeup` bug says no).
#[inline(always)]
pub(crate) fn wake_for_sync_request() -> bool {
    #[cfg(feature = "__planted-bugs")]
    if bugs::armed(bugs::Bug::LostSyncWakeup) {
        return false;
    }
    true
}

/// Hook: the sync of the recovered tail (its data, and the directory entry naming it) before a
/// reopened database appends (the `SkipResyncOnReopen` bug skips it).
#[inline(always)]
pub(crate) fn resync_on_reopen(_vfs: &dyn Vfs, _dir: &Path, _file: &dyn VFile) -> io::Result<()> {
    #[cfg(feature = "__planted-bugs")]
    if bugs::armed(bugs::Bug::SkipResyncOnReopen) {
        return Ok(());
    }
    _file.sync_data()?;
    _vfs.sync_dir(_dir)
}

/// Hook: the end a torn segment's deferred successor records (the `DeferredRotationPastTheEnd`
/// bug moves it one sector too far).
#[inline(always)]
pub(crate) fn deferred_prev_end(valid_end: u64) -> u64 {
    #[cfg(feature = "__planted-bugs")]
    if bugs::armed(bugs::Bug::DeferredRotationPastTheEnd) {
        return valid_end + 512;
    }
    valid_end
}

/// Hook: whether the log writes LSN leases, and a `Buffered` commit waits for a durable one
/// before it returns (the `SkipLsnLease` bug says no: after a crash that loses acknowledged
/// `Buffered` commits, the next run hands their LSNs out again).
#[inline(always)]
pub(crate) fn write_leases() -> bool {
    #[cfg(feature = "__planted-bugs")]
    if bugs::armed(bugs::Bug::SkipLsnLease) {
        return false;
    }
    true
}

/// Hook: whether a `Strict` commit is published (made visible) before its sync completes (the
/// `PublishStrictBeforeDurable` bug says yes: a reader can see what a crash then loses).
#[inline(always)]
pub(crate) fn publish_strict_early() -> bool {
    #[cfg(feature = "__planted-bugs")]
    if bugs::armed(bugs::Bug::PublishStrictBeforeDurable) {
        return true;
    }
    false
}

/// Hook: whether a history trim ignores live snapshots when it computes its floor and plan (the
/// `TrimIgnoresSnapshots` bug says yes: a snapshot's reads lose versions they can see).
#[inline(always)]
pub(crate) fn trim_ignores_snapshots() -> bool {
    #[cfg(feature = "__planted-bugs")]
    if bugs::armed(bugs::Bug::TrimIgnoresSnapshots) {
        return true;
    }
    false
}

#[inline(always)]
pub(crate) fn stale_key_index() -> bool {
    #[cfg(feature = "__planted-bugs")]
    if bugs::armed(bugs::Bug::StaleKeyIndex) {
        return true;
    }
    false
}

/// Defines a hook that is `false` unless the named planted bug is armed.
macro_rules! bug_hook {
    ($($(#[doc = $doc:literal])* $name:ident => $bug:ident;)*) => {$(
        $(#[doc = $doc])*
        #[inline(always)]
        pub(crate) fn $name() -> bool {
            #[cfg(feature = "__planted-bugs")]
            if bugs::armed(bugs::Bug::$bug) {
                return true;
            }
            false
        }
    )*};
}

bug_hook! {
    /// Whether compaction deletes segments before the MANIFEST update that drops them.
    delete_segments_before_manifest => DeleteSegmentsBeforeManifest;
    /// Whether a checkpoint drops every tombstone.
    checkpoint_drops_tombstones => CheckpointDropsTombstones;
    /// Whether open ignores the MANIFEST's trim floor.
    trim_floor_backwards => TrimFloorBackwards;
    /// Whether open forgets how far the segment it resumes in has grown.
    reopen_forgets_growth => ReopenForgetsGrowth;
    /// Whether recovery's fold keeps the older of two versions of a key.
    fold_keeps_older => FoldKeepsOlderVersion;
    /// Whether the batch that starts a new segment is written without its head.
    rotation_batch_without_head => RotationBatchWithoutHead;
    /// Whether a committer leading its own round skips the sync.
    leader_skips_sync => LeaderSkipsSync;
    /// Whether the streaming segment reader skips a segment's second piece.
    stream_skips_a_piece => StreamSkipsAPiece;
    /// Whether the checkpoint's loader forgets the log's versions it had passed.
    merge_forgets_passed_tail => MergeForgetsPassedTail;
    /// Whether every batch head's durable floor claims everything before it.
    floor_claims_all => FloorClaimsAll;
    /// Whether the pipelined log publishes rounds as their writes complete, out of order.
    publish_out_of_order => PublishOutOfOrder;
    /// Whether compaction and the close delete the segments values on disk live in.
    compaction_forgets_value_segments => CompactionForgetsValueSegments;
    /// Whether garbage collection deletes its victims right after copying.
    gc_deletes_victims_early => GcDeletesVictimsEarly;
    /// Whether garbage collection runs after the checkpoint's durability wait, not durably.
    gc_after_the_pin => GcAfterThePin;
    /// Whether commits record their keys for conflict detection only when they complete.
    conflicts_recorded_late => ConflictsRecordedLate;
    /// Whether the runs' log reader ignores what compaction removed.
    runs_forget_compaction => RunsForgetCompaction;
    /// Whether a read-only open removes leftovers.
    read_only_cleans_up => ReadOnlyCleansUp;
    /// Whether `Db::history` leaves deletes out.
    history_skips_deletes => HistorySkipsDeletes;
    /// Whether a value read on disk returns its bytes without the record's checks.
    value_read_skips_checks => ValueReadSkipsChecks;
    /// Whether a published round leaves the synced position (the durable floors) where it was.
    durable_floors_stay_put => DurableFloorsStayPut;
    /// Whether a truncating recovery refuses a missing first segment.
    truncating_refuses_missing_first => TruncatingRefusesMissingFirst;
    /// Whether recovery skips the check that the value segments are there.
    open_ignores_missing_value_segments => OpenIgnoresMissingValueSegments;
    /// Whether a trim publishes a `NewerThan` floor without recording it in the MANIFEST.
    trim_forgets_newer_than_floor => TrimForgetsNewerThanFloor;
    /// Whether a truncating recovery forgets the LSNs of what it cut.
    truncating_reuses_lsns => TruncatingReusesLsns;
    /// Whether a history-keeping retention entry is committed with the default durability.
    retention_entry_not_strict => RetentionEntryNotStrict;
    /// Whether `Db::sync` answers `Ok` on a poisoned database.
    sync_forgets_poison => SyncForgetsPoison;
    /// Whether `Db::close` answers `Ok` on a poisoned database.
    close_forgets_poison => CloseForgetsPoison;
    /// Whether a commit returns without waiting to be visible.
    commit_returns_before_visible => CommitReturnsBeforeVisible;
    /// Whether the Buffered deadline runs from the newest unsynced commit.
    buffered_deadline_from_newest => BufferedDeadlineFromNewest;
    /// Whether garbage collection commits its copies without starting the log thread.
    gc_starts_no_log_thread => GcStartsNoLogThread;
    /// Whether every history-keeping policy raises the floor, whatever was in force before.
    retention_again_raises_floor => RetentionAgainRaisesFloor;
    /// Whether a clean close retires the log with one commit after the last checkpoint.
    close_retires_a_commit => CloseRetiresACommit;
    /// Whether recovery raises the floor after a checkpoint whose policy keeps history.
    restart_raises_kept_floor => RestartRaisesKeptFloor;
    /// Whether conditions skip their check against the transaction's snapshot.
    conditions_ignore_snapshot => ConditionsIgnoreSnapshot;
    /// Whether a checkpoint is written at visible LSN 0.
    checkpoint_at_lsn_zero => CheckpointAtLsnZero;
}

/// Hook: the wall clock `Retention::NewerThan` reads, in nanoseconds since the Unix epoch, for a
/// database on `vfs`: the real one, unless the crash runner gave that `Vfs` a virtual clock
/// ([`failpoints::virtual_clock`]).
#[inline(always)]
pub(crate) fn wall_clock_ns(_vfs: Option<&Arc<dyn Vfs>>) -> u64 {
    #[cfg(feature = "__failpoints")]
    if let Some(t) = _vfs.and_then(failpoints::clock_of) {
        return t;
    }
    crate::segment::now_ns()
}

/// Hook: whether the history trimmer of a database on `vfs` wakes periodically under
/// `Retention::NewerThan` (not under a virtual clock, [`failpoints::virtual_clock`]).
#[inline(always)]
pub(crate) fn periodic_trims(_vfs: Option<&Arc<dyn Vfs>>) -> bool {
    #[cfg(feature = "__failpoints")]
    if _vfs.is_some_and(|v| failpoints::clock_of(v).is_some()) {
        return false;
    }
    true
}

/// Hook: the bytes recovery's segment reader reads at a time, `piece` unless the crash runner
/// asked for small ones ([`failpoints::small_read_pieces`]).
#[inline(always)]
pub(crate) fn read_piece(piece: usize) -> usize {
    #[cfg(feature = "__failpoints")]
    if failpoints::small_read_pieces_on() {
        return 4096;
    }
    piece
}

/// Hook: whether a lone `Strict` committer may write its own round (unless the crash runner
/// asked for the log thread's path only, [`failpoints::no_leader_commits`]).
#[inline(always)]
pub(crate) fn leader_commits() -> bool {
    #[cfg(feature = "__failpoints")]
    if failpoints::no_leader_commits_on() {
        return false;
    }
    true
}

/// Hook: where in its pass over a checkpoint of `versions` versions the checkpoint's loader
/// waits for the log's versions: nowhere (it looks now and then) unless the crash runner asked
/// for small recovery chunks, then half-way.
#[inline(always)]
pub(crate) fn tail_wait_at(_versions: u64) -> Option<u64> {
    #[cfg(feature = "__failpoints")]
    if failpoints::small_recovery_chunks_on() {
        return Some(_versions / 2);
    }
    None
}

/// Hook: the loader's hash-regime limit and smallest chunk, `(hash, chunk)` unless the crash
/// runner asked for small ones ([`failpoints::small_recovery_chunks`]).
#[inline(always)]
pub(crate) fn loader_limits(hash: usize, chunk: usize) -> (usize, usize) {
    #[cfg(feature = "__failpoints")]
    if failpoints::small_recovery_chunks_on() {
        return (4, 8);
    }
    (hash, chunk)
}
