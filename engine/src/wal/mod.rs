//! The write-ahead log: committers encode records into pending batches under one mutex; one log
//! thread writes each batch and makes it durable, one batch (one write + one sync) at a time, and
//! advances the durable LSN over the contiguous prefix it has synced.
//!
//! * this module: what committers and the log thread share (the log mutex's [`State`], the
//!   durable LSN, the counters) and the committers' side of it (sync requests, waits, poison);
//! * [`append`]: encoding a transaction into the pending batches, LSN leases, padding;
//! * [`policy`]: the log thread's decisions (write now, gather, sleep until, seal) as pure
//!   functions of its state and the time;
//! * [`thread`]: the log thread itself (segment creation and growth, writes, publication).

mod append;
pub(crate) mod policy;
mod thread;

pub(crate) use append::txn_encoded_len;
pub(crate) use thread::{run_log_thread, Active};

mod leader;
mod pipeline;

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};
use ringlog_format::{AlignedBuf, SEGMENT_HEADER_LEN};
use ringlog_uring::{BlockReason, SyncStrategy, Vfs, Waker};

use crate::index::{Lsn, Versions};
use crate::publish::Visibility;
use crate::segment::SegmentConfig;

/// Longest the log thread watches for the next commit after a round before it sleeps (on a
/// real disk): a lone committer's next commit usually comes within microseconds of its
/// acknowledgement, and appending it then needs no wake-up of a sleeping log thread (a syscall
/// for the committer, a scheduler hand-off before the round starts). Measured (BENCHMARKS.md,
/// "Session 7: one hand-off fewer"): Strict, one writer, p50 1.13 x the raw O_DIRECT loop with
/// it against 1.36 x without, medians of three alternated runs.
pub(crate) const LOG_SPIN: Duration = Duration::from_micros(50);

/// Most rounds the log thread keeps in flight at once ([`crate::Options::rounds_in_flight`] is
/// capped to it, and to what the disk's driver can do).
pub(crate) const MAX_ROUNDS_IN_FLIGHT: usize = 16;
/// Slots of [`State::round_waiters`]: one per take in flight and one for the next take.
const ROUND_SLOTS: usize = MAX_ROUNDS_IN_FLIGHT + 1;

/// Bytes of pending (unwritten) log beyond which committers wait for the log thread.
pub(crate) const MIN_BACKPRESSURE: usize = 64 << 20;

/// A run of records bound for one place in one segment, written with one write + one sync.
pub(crate) struct Batch {
    seg_id: u64,
    /// File offset of the batch's first byte (a multiple of the write alignment).
    start: u64,
    buf: AlignedBuf,
    last_lsn: Lsn,
    /// Set when the segment must be created first: (end of the previous segment, base LSN).
    create: Option<(u64, Lsn)>,
}

/// Everything committers and the log thread share under the log mutex.
pub(crate) struct State {
    pub(crate) next_lsn: Lsn,
    /// Segment and offset where the next record goes.
    seg_id: u64,
    cursor: u64,
    batches: VecDeque<Batch>,
    pending_bytes: usize,
    /// Commits in the pending batches.
    pending_commits: usize,
    /// The parked Strict committers of the rounds in flight and the next one, by the take that
    /// carries their records ([`thread::round_slot`]): a finished round unparks exactly its own
    /// committers, all at once, rather than handing a condition variable's mutex from one to the
    /// next.
    round_waiters: Vec<Vec<Thread>>,
    /// The end of the log known durable: every byte of segment `.0` below offset `.1` (and every
    /// earlier segment). A batch's head records it as its durable floor when the batch is closed
    /// (FORMAT.md §10.5): recovery then knows which damage a later batch proves was durable.
    pub(crate) synced: (u64, u64),
    /// Number of times the log thread has taken the pending batches.
    takes: u64,
    /// Group-commit gathering: after a round that carried several commits, the log thread waits
    /// (until the deadline at most) for as many commits to be pending again before it syncs, so
    /// that committers just woken by that round can join the next one (PostgreSQL's
    /// commit_delay/commit_siblings idea, adaptive: no gathering for a lone committer).
    gather: Option<(usize, Instant)>,
    /// Highest LSN someone waits to see durable.
    sync_upto: Lsn,
    /// When the oldest unsynced Buffered commit must be synced.
    deadline: Option<Instant>,
    /// Pending bytes that trigger a sync before the deadline.
    trigger_bytes: usize,
    /// The log thread is (about to be) blocked in its driver's wait.
    sleeping: bool,
    pub(crate) closing: bool,
    pub(crate) poisoned: Option<Arc<io::Error>>,
    spare: Vec<AlignedBuf>,
    /// Set at open when the recovered tail cannot be appended to: the first append starts the next
    /// segment, recording this end of the current one.
    rotate_first: Option<u64>,
    /// Set by a checkpoint ([`Shared::pin_at_segment_boundary`]): the next transaction starts a
    /// new segment, so that the log after the checkpoint's LSN begins at a segment's start and
    /// recovery reads no byte of it below the checkpoint.
    rotate_next: bool,
    /// Highest LSN lease appended to the log: LSNs up to it may be assigned.
    lease_appended: Lsn,
    /// Appended leases not yet known durable: (bound, first LSN appended after the lease record).
    /// A lease is durable once that LSN is.
    leases_pending: VecDeque<(Lsn, Lsn)>,
    /// Highest lease known durable: LSNs up to it may be *returned* to callers whose commits are
    /// not durable yet (Buffered).
    lease_durable: Lsn,
    /// This run wrote a lease.
    leased: bool,
}

impl State {
    /// What the log thread's policy sees ([`policy::next`]), with `durable` as the durable LSN.
    pub(crate) fn view(&self, durable: Lsn, may_spin: bool) -> policy::View {
        policy::View {
            poisoned: self.poisoned.is_some(),
            pending: !self.batches.is_empty(),
            closing: self.closing,
            pending_bytes: self.pending_bytes,
            trigger_bytes: self.trigger_bytes,
            pending_commits: self.pending_commits,
            deadline: self.deadline,
            sync_upto: self.sync_upto,
            durable,
            gather: self.gather,
            may_spin,
        }
    }

    /// Whether `need` more bytes (a transaction, or a relocated value) start a new segment: they
    /// do not fit in this one of `segment_size` bytes with `reserve` (a batch's worst-case
    /// padding and head), or the segment already holds something and they would take it past
    /// `rotate_at` ([`Shared::rotation_size`]).
    pub(crate) fn starts_segment(
        &self,
        need: usize,
        reserve: usize,
        segment_size: u64,
        rotate_at: u64,
    ) -> bool {
        let end = self.cursor + (need + reserve) as u64;
        end > segment_size || (self.cursor > SEGMENT_HEADER_LEN as u64 && end > rotate_at)
    }

    /// Makes the first append start a new segment after the current one, whose valid records end
    /// at `prev_end` (see [`State::rotate_first`]).
    pub(crate) fn defer_rotation(&mut self, prev_end: u64) {
        self.rotate_first = Some(prev_end);
    }
}

/// Fixed facts about the log of one run.
pub(crate) struct LogConfig {
    pub(crate) seg: SegmentConfig,
    pub(crate) align: u64,
    pub(crate) strategy: SyncStrategy,
    pub(crate) backpressure: usize,
    /// LSNs one lease reserves.
    pub(crate) lease_span: u64,
    /// Rounds the log thread may keep in flight ([`crate::Options::rounds_in_flight`]).
    pub(crate) rounds_in_flight: usize,
}

/// Monotonic counters for [`crate::Stats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) commits: AtomicU64,
    pub(crate) bytes_appended: AtomicU64,
    pub(crate) syncs: AtomicU64,
    pub(crate) sync_failures: AtomicU64,
    pub(crate) sync_ns_total: AtomicU64,
    pub(crate) sync_ns_max: AtomicU64,
    pub(crate) last_sync_unix_ns: AtomicU64,
    pub(crate) segments_created: AtomicU64,
    /// Rounds written by a committer that led its own ([`Shared::lead_round`]).
    pub(crate) rounds_led: AtomicU64,
    /// Rounds submitted while another was in flight (the pipelined log).
    pub(crate) rounds_overlapped: AtomicU64,
    /// Optimistic transactions refused with a conflict.
    pub(crate) conflicts: AtomicU64,
    /// Attempts `Db::transact` ran again after a conflict.
    pub(crate) retries: AtomicU64,
}

/// What the database's threads share.
///
/// Lock order (never acquire against it): the MANIFEST (`Checkpoints::manifest`, held for a
/// whole checkpoint, a `Retention::NewerThan` trim or a read of the log's runs) → the index's
/// `trim_running` → `round` → `State` (the log mutex) → the conflict table's mutex
/// (`conflicts`) → the index's retention lock → its snapshot registry → the visibility lock; the
/// index's time samples (`Versions::samples`) are a leaf: nothing is taken while they are held.
/// The commit path takes only the log mutex, briefly (LSN assignment and log-buffer
/// reservation), then inserts into the index with no lock and publishes under the visibility
/// lock alone, and records its time sample (under `NewerThan`) once visible. It never takes the
/// retention lock, which `Db::set_retention` holds while it waits for its own commit to become
/// visible — that is, for every commit before it to be published. A lone `Strict` committer that
/// leads its own round takes `round` with `try_lock` under the log mutex (which never waits, so
/// it cannot deadlock against the order) and holds it, without the log mutex, while it writes.
pub(crate) struct Shared {
    /// Whoever writes a round holds this: the log thread, or a committer leading a round of its
    /// own ([`Shared::lead_round`]). It holds the active segment (`None` until the log thread
    /// starts), so rounds are written one at a time and always to the segment the last left.
    pub(crate) round: Mutex<Option<Active>>,
    pub(crate) state: Mutex<State>,
    /// The versioned index.
    pub(crate) versions: Versions,
    /// The keys recent commits wrote, while an optimistic transaction needs them.
    pub(crate) conflicts: crate::conflicts::Conflicts,
    /// Which prefix of the commit order readers see.
    pub(crate) visible: Visibility,
    /// Signalled when the durable LSN advances, on poison and when the log thread exits.
    pub(crate) durable_cv: Condvar,
    /// Signalled when pending bytes are taken by the log thread.
    pub(crate) space_cv: Condvar,
    pub(crate) durable_lsn: AtomicU64,
    pub(crate) closed: AtomicBool,
    /// Mirrors `State::poisoned.is_some()` for parked committers, which hold no lock.
    poisoned_flag: AtomicBool,
    pub(crate) counters: Counters,
    pub(crate) waker: OnceLock<Arc<dyn Waker>>,
    /// The log thread, started by the first commit (or sync) that needs it
    /// ([`Shared::start_log_thread`]): opening a database only to read it costs no thread, and
    /// closing it writes nothing. Joined by [`crate::Db::close`].
    pub(crate) log_thread: Mutex<crate::db::LogThread>,
    /// Set once `log_thread` left [`crate::db::LogThread::NotStarted`] (the commit path's
    /// lock-free check).
    pub(crate) log_started: AtomicBool,
    pub(crate) log: Option<LogConfig>,
    pub(crate) run_id: u64,
    /// The disk: the clock the timers read and the blocking hints go to (none in memory).
    pub(crate) vfs: Option<Arc<dyn Vfs>>,
    /// Checkpoints and the MANIFEST (set at open for a database with a directory).
    pub(crate) ckpt: OnceLock<crate::checkpointer::Checkpoints>,
    /// The highest transaction id recovered at open (from the log and the MANIFEST's floor).
    /// Since format version 4 a transaction's id is its LSN, so nothing counts ids per commit;
    /// a log of version 3 or older counted them apart from LSNs (never above them).
    pub(crate) txn_floor: AtomicU64,
    /// Whether the log thread may spin before it sleeps ([`LOG_SPIN`]): on a real disk (io_uring
    /// or portable). Never on a simulated one, whose scheduler runs one thread at a time.
    pub(crate) spin: bool,
    /// Whether a lone `Strict` committer may write its own round: the disk says its
    /// [`Vfs::write_durable_here`] stands for its log driver ([`Vfs::writes_here`]).
    pub(crate) lead: bool,
    /// The length past which the next transaction (or relocated value) starts a new segment
    /// though it would fit in this one, and past which a segment is not prepared ahead: the
    /// segment size, or less where values are collected: from an open's
    /// [`crate::checkpointer::opening_rotation_size`] until garbage collection sizes segments to
    /// the database ([`Shared::set_rotation_size`]).
    rotate_at: AtomicU64,
}

/// Poisons the database (with `.1` as the error) if the thread unwinds while this lives: the log
/// thread's body, or a commit between taking its LSN and publishing it (every later commit waits
/// for the LSNs before its own to be published, and would wait forever).
pub(crate) struct PoisonOnPanic<'a>(pub(crate) &'a Shared, pub(crate) &'static str);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poison(io::Error::other(self.1));
        }
    }
}

impl Shared {
    pub(crate) fn new(
        versions: Versions,
        visible: Lsn,
        next_lsn: Lsn,
        log: Option<(LogConfig, u64, u64)>,
        run_id: u64,
        vfs: Option<Arc<dyn Vfs>>,
    ) -> Shared {
        let (log, seg_id, cursor) = match log {
            Some((cfg, seg_id, cursor)) => (Some(cfg), seg_id, cursor),
            None => (None, 0, 0),
        };
        Shared {
            round: Mutex::new(None),
            state: Mutex::new(State {
                next_lsn,
                seg_id,
                cursor,
                batches: VecDeque::new(),
                pending_bytes: 0,
                pending_commits: 0,
                round_waiters: vec![Vec::new(); ROUND_SLOTS],
                synced: (seg_id, cursor),
                takes: 0,
                gather: None,
                sync_upto: 0,
                deadline: None,
                trigger_bytes: usize::MAX,
                sleeping: false,
                closing: false,
                poisoned: None,
                spare: Vec::new(),
                rotate_first: None,
                rotate_next: false,
                lease_appended: next_lsn - 1,
                leases_pending: VecDeque::new(),
                lease_durable: next_lsn - 1,
                leased: false,
            }),
            ckpt: OnceLock::new(),
            txn_floor: AtomicU64::new(0),
            spin: vfs.as_ref().is_some_and(|v| {
                matches!(
                    v.backend().kind,
                    ringlog_uring::BackendKind::Uring | ringlog_uring::BackendKind::Portable
                )
            }),
            lead: vfs.as_ref().is_some_and(|v| v.writes_here()),
            rotate_at: AtomicU64::new(log.as_ref().map_or(u64::MAX, |c| c.seg.size)),
            versions,
            conflicts: crate::conflicts::Conflicts::new(),
            visible: Visibility::new(visible, next_lsn),
            durable_cv: Condvar::new(),
            space_cv: Condvar::new(),
            durable_lsn: AtomicU64::new(next_lsn - 1),
            closed: AtomicBool::new(false),
            poisoned_flag: AtomicBool::new(false),
            counters: Counters::default(),
            waker: OnceLock::new(),
            log_thread: Mutex::new(crate::db::LogThread::Done),
            log_started: AtomicBool::new(true),
            log,
            run_id,
            vfs,
        }
    }

    /// Now, on the disk's clock ([`Vfs::now`]).
    pub(crate) fn now(&self) -> Instant {
        match &self.vfs {
            Some(v) => v.now(),
            None => Instant::now(),
        }
    }

    /// The wall clock time-based retention reads (ns since the Unix epoch): the real one, or a
    /// crash runner's virtual clock ([`crate::hooks::wall_clock_ns`]).
    pub(crate) fn wall_ns(&self) -> u64 {
        crate::hooks::wall_clock_ns(self.vfs.as_ref())
    }

    /// Tells the disk that this committer is about to block ([`Vfs::will_block`]).
    pub(crate) fn will_block(&self, why: BlockReason) {
        if let Some(v) = &self.vfs {
            v.will_block(why);
        }
    }

    /// Wakes the log thread if it sleeps (call with the state locked; the wake itself is cheap
    /// and never lost).
    pub(crate) fn wake_log(&self, st: &mut State) {
        if st.sleeping {
            st.sleeping = false;
            if let Some(w) = self.waker.get() {
                w.wake();
            }
        }
    }

    /// Asks for everything up to `lsn` to be made durable and wakes the log thread: at once, or
    /// while it gathers a group, when the group is complete.
    pub(crate) fn request_sync(&self, st: &mut State, lsn: Lsn) {
        // A request the log thread has not seen yet must wake it: it may be asleep until a
        // Buffered deadline, not gathering.
        let first = st.sync_upto <= self.durable_lsn.load(Ordering::Acquire);
        if lsn > st.sync_upto {
            st.sync_upto = lsn;
        }
        // The first request arms the gathering timer; the one completing the group ends it.
        if (first
            || st
                .gather
                .is_none_or(|(target, _)| st.pending_commits <= 1 || st.pending_commits >= target))
            && crate::hooks::wake_for_sync_request()
        {
            self.wake_log(st);
        }
    }

    /// Registers a Buffered commit's deadline (`interval` after `now`, read before the commit
    /// took its LSN) and pending limit; wakes the log thread when it must arm a timer or sync now.
    pub(crate) fn note_buffered(
        &self,
        st: &mut State,
        now: Instant,
        interval: Duration,
        max_pending: usize,
    ) {
        let mut wake = false;
        // Intervals are at most a day (validated), so this never overflows; were it to, the
        // commit would simply have no time limit (its pending limit still holds).
        let deadline = now
            .checked_add(interval)
            .filter(|_| crate::hooks::arm_buffered_timer());
        if let Some(deadline) = deadline.filter(|&dl| {
            st.deadline.is_none_or(|d| dl < d) || crate::hooks::buffered_deadline_from_newest()
        }) {
            st.deadline = Some(deadline);
            wake = true;
        }
        if max_pending < st.trigger_bytes {
            st.trigger_bytes = max_pending;
        }
        if wake || st.pending_bytes >= st.trigger_bytes {
            self.wake_log(st);
        }
    }

    /// Blocks while too many bytes are pending (the disk is slower than the committers).
    pub(crate) fn wait_for_space(&self, st: &mut MutexGuard<'_, State>) {
        let Some(cfg) = &self.log else { return };
        while st.pending_bytes >= cfg.backpressure && st.poisoned.is_none() && !st.closing {
            // The log thread writes once the pending bytes reach the trigger, which a Buffered
            // override's `max_pending` may have put above this limit: lower it, or nothing
            // would be written before the override's deadline (up to a day) and every commit
            // would wait here until then.
            st.trigger_bytes = st.trigger_bytes.min(cfg.backpressure);
            self.wake_log(st);
            self.will_block(BlockReason::Space);
            self.space_cv.wait(st);
        }
    }

    /// Registers the calling committer, whose record with `lsn` was just appended (in this
    /// critical section: every pending record goes out with the next take), to be unparked when
    /// that round is durable. Then [`Shared::await_durable`], after releasing the lock.
    pub(crate) fn register_commit_waiter(&self, st: &mut State, lsn: Lsn) {
        let round = thread::round_slot(st.takes + 1);
        if self.durable_lsn.load(Ordering::Acquire) < lsn && st.poisoned.is_none() {
            st.round_waiters[round].push(std::thread::current());
        }
    }

    /// Waits (parked, no lock held) until `lsn` is durable or the log is poisoned.
    pub(crate) fn await_durable(&self, lsn: Lsn) -> Result<(), Arc<io::Error>> {
        if self.durable_lsn.load(Ordering::Acquire) < lsn {
            self.will_block(BlockReason::CommitDurable);
            // park() may return spuriously; an unpark before it makes it return at once.
            while self.durable_lsn.load(Ordering::Acquire) < lsn
                && !self.poisoned_flag.load(Ordering::Acquire)
            {
                std::thread::park();
            }
        }
        if self.durable_lsn.load(Ordering::Acquire) >= lsn {
            return Ok(());
        }
        let st = self.state.lock();
        match &st.poisoned {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Fails with [`crate::Error::Closed`] once the database is closed.
    pub(crate) fn check_open(&self) -> crate::Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(crate::Error::Closed);
        }
        Ok(())
    }

    /// [`crate::Error::Poisoned`] once the database is poisoned: no commit succeeds any more.
    pub(crate) fn check_not_poisoned(&self) -> crate::Result<()> {
        if !self.poisoned_flag.load(Ordering::Acquire) {
            return Ok(());
        }
        match &self.state.lock().poisoned {
            Some(e) => Err(crate::Error::Poisoned(e.clone())),
            None => Ok(()),
        }
    }

    /// Waits until `lsn` is visible, telling the disk this thread blocks; when the wait ends
    /// without it (the database poisoned or closed), the error saying which.
    pub(crate) fn wait_visible_or_err(&self, lsn: Lsn) -> crate::Result<()> {
        if self.visible.wait(lsn, &self.durable_lsn, || {
            self.will_block(BlockReason::Visibility)
        }) {
            return Ok(());
        }
        let st = self.state.lock();
        Err(match &st.poisoned {
            Some(e) => crate::Error::Poisoned(e.clone()),
            None => crate::Error::Closed,
        })
    }

    /// Waits until the log is durable through `lsn`, asking the (running) log thread for a sync.
    pub(crate) fn wait_durable(&self, lsn: Lsn) -> crate::Result<()> {
        let durable = || self.durable_lsn.load(Ordering::Acquire);
        let mut st = self.state.lock();
        if durable() >= lsn {
            return Ok(());
        }
        // Closing: an LSN a commit took is made durable by the close (waited for below); one
        // no commit took never will be.
        if st.closing && st.poisoned.is_none() && lsn >= st.next_lsn {
            return Err(crate::Error::Closed);
        }
        if !st.closing {
            self.request_sync(&mut st, lsn);
        }
        loop {
            if durable() >= lsn {
                return Ok(());
            }
            if let Some(e) = &st.poisoned {
                return Err(crate::Error::Poisoned(e.clone()));
            }
            // Closing, and `lsn` was never committed: it never will be.
            if st.closing && lsn >= st.next_lsn {
                return Err(crate::Error::Closed);
            }
            self.will_block(ringlog_uring::BlockReason::WaitDurable);
            self.durable_cv.wait(&mut st);
        }
    }

    /// At least the highest transaction id of every transaction visible so far (0 if none), for
    /// the MANIFEST's transaction floor: ids are LSNs (format version 4), and the ids a log of an
    /// older version holds are at most the floor recovered at open. Takes no lock (the
    /// checkpointer calls it holding the MANIFEST's).
    pub(crate) fn last_txn_id(&self) -> u64 {
        self.txn_floor
            .load(Ordering::Relaxed)
            .max(self.visible.get())
    }

    /// Pins a snapshot at the last LSN assigned so far, B, and makes the next transaction (B + 1)
    /// start a new segment: a checkpoint at B then leaves no record of the log after it in the
    /// segments before that one, which it no longer needs (FORMAT.md §13.3). `None` (nothing
    /// pinned) without a log, when no LSN was assigned in this run, when `last_checkpoint` is B
    /// (nothing new) or when the log is poisoned or closing: the caller pins the visible LSN.
    /// B may be above the visible LSN: the caller waits for it before reading the index at B.
    /// Returns B and the segment holding it, the last one that holds no LSN above B.
    pub(crate) fn pin_at_segment_boundary(&self, last_checkpoint: Lsn) -> Option<(Lsn, u64)> {
        self.log.as_ref()?;
        let mut st = self.state.lock();
        let last = st.next_lsn - 1;
        if st.poisoned.is_some()
            || st.closing
            || last == last_checkpoint
            || last <= self.visible.skipped()
        {
            return None;
        }
        // Under the log mutex (lock order: state, then the snapshot registry): no LSN above B is
        // assigned yet, and no trim passes B once it is pinned.
        let lsn = self.versions.pin(|| last);
        // B was assigned in this run, so its transaction is in the segment being appended to.
        st.rotate_next = true;
        Some((lsn, st.seg_id))
    }

    /// Sets the length past which a new segment starts ([`Shared::rotation_size`]), at most
    /// the segment size.
    pub(crate) fn set_rotation_size(&self, bytes: u64) {
        if let Some(cfg) = self.log.as_ref() {
            self.rotate_at
                .store(bytes.min(cfg.seg.size), Ordering::Relaxed);
        }
    }

    /// The length past which a new segment starts, and past which a segment is not prepared
    /// ahead (see [`State::starts_segment`]).
    pub(crate) fn rotation_size(&self) -> u64 {
        self.rotate_at.load(Ordering::Relaxed)
    }

    /// The segment being appended to and where its records end so far (the end its successor
    /// will record): what garbage collection counts its live share against.
    pub(crate) fn appending_end(&self) -> (u64, u64) {
        let st = self.state.lock();
        (st.seg_id, st.rotate_first.unwrap_or(st.cursor))
    }

    /// What a checkpoint's MANIFEST records of the log: the highest LSN this run may hand out
    /// (its lease, or the last assigned LSN) and the segment being appended to.
    pub(crate) fn checkpoint_floors(&self) -> (Lsn, u64) {
        let st = self.state.lock();
        (st.lease_appended.max(st.next_lsn - 1), st.seg_id)
    }

    pub(crate) fn poison(&self, e: io::Error) {
        log::error!("log I/O failed, database poisoned until reopened: {e}");
        self.counters.sync_failures.fetch_add(1, Ordering::Relaxed);
        let mut st = self.state.lock();
        if st.poisoned.is_none() {
            st.poisoned = Some(Arc::new(e));
        }
        self.poisoned_flag.store(true, Ordering::Release);
        let parked: Vec<Thread> = st
            .round_waiters
            .iter_mut()
            .flat_map(std::mem::take)
            .collect();
        st.batches.clear();
        st.pending_bytes = 0;
        self.durable_cv.notify_all();
        self.space_cv.notify_all();
        drop(st);
        parked.iter().for_each(Thread::unpark);
        // A Strict commit that failed is never published: nothing after it becomes visible.
        self.visible.stop();
    }
}
