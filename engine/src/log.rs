//! The log: committers encode records into pending batches under one mutex; one log thread
//! writes each batch and makes it durable, one batch (one write + one sync) at a time, and
//! advances the durable LSN over the contiguous prefix it has synced.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};
use ringlog_format::{
    align_up, encode_padding, encode_record, encoded_len, AlignedBuf, RecordKind, RecordSpec,
    SegmentPos, MARKER_PAYLOAD_LEN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use ringlog_uring::{BlockReason, LogDriver, SyncStrategy, VFile, Vfs, Waker};

use crate::index::{Lsn, OpRef, Versions};
use crate::publish::Visibility;
use crate::segment::{create_segment, grow_segment, initial_len, now_ns, SegmentConfig};

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
    /// The parked Strict committers of the next two rounds (by parity of the take that carries
    /// their records): a finished round unparks exactly its own committers, all at once, rather
    /// than handing a condition variable's mutex from one to the next.
    round_waiters: [Vec<Thread>; 2],
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
}

/// What the database's threads share.
///
/// Lock order (never acquire against it): `State` (the log mutex) → the index's retention lock →
/// its snapshot registry → the visibility lock. The commit path takes only the log mutex, briefly
/// (LSN assignment and log-buffer reservation), then inserts into the index with no lock and
/// publishes under the visibility lock alone.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// The versioned index.
    pub(crate) versions: Versions,
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
    pub(crate) log: Option<LogConfig>,
    pub(crate) run_id: u64,
    /// The disk: the clock the timers read and the blocking hints go to (none in memory).
    pub(crate) vfs: Option<Arc<dyn Vfs>>,
    /// Checkpoints and the MANIFEST (set at open for a database with a directory).
    pub(crate) ckpt: OnceLock<crate::checkpointer::Checkpoints>,
    /// The next transaction id (record framing; serialised by the log mutex).
    pub(crate) next_txn_id: AtomicU64,
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
            state: Mutex::new(State {
                next_lsn,
                seg_id,
                cursor,
                batches: VecDeque::new(),
                pending_bytes: 0,
                pending_commits: 0,
                round_waiters: [Vec::new(), Vec::new()],
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
                lease_appended: next_lsn - 1,
                leases_pending: VecDeque::new(),
                lease_durable: next_lsn - 1,
                leased: false,
            }),
            ckpt: OnceLock::new(),
            next_txn_id: AtomicU64::new(1),
            versions,
            visible: Visibility::new(visible, next_lsn),
            durable_cv: Condvar::new(),
            space_cv: Condvar::new(),
            durable_lsn: AtomicU64::new(next_lsn - 1),
            closed: AtomicBool::new(false),
            poisoned_flag: AtomicBool::new(false),
            counters: Counters::default(),
            waker: OnceLock::new(),
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

    /// Registers a Buffered commit's deadline and pending limit; wakes the log thread when it
    /// must arm a timer or sync now.
    pub(crate) fn note_buffered(&self, st: &mut State, interval: Duration, max_pending: usize) {
        let mut wake = false;
        let deadline = self.now() + interval;
        if crate::hooks::arm_buffered_timer() && st.deadline.is_none_or(|d| deadline < d) {
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
            self.wake_log(st);
            self.will_block(BlockReason::Space);
            self.space_cv.wait(st);
        }
    }

    /// Registers the calling committer, whose record with `lsn` was just appended (in this
    /// critical section: every pending record goes out with the next take), to be unparked when
    /// that round is durable. Then [`Shared::await_durable`], after releasing the lock.
    pub(crate) fn register_commit_waiter(&self, st: &mut State, lsn: Lsn) {
        let round = ((st.takes + 1) % 2) as usize;
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

    /// The lease record to write before the transaction with `lsn`, if one is due: when `lsn` is
    /// beyond the last lease, or past half of it (renewal ahead of need, so that the new lease is
    /// usually durable before it is needed). Records it as appended.
    pub(crate) fn lease_due(&self, st: &mut State, lsn: Lsn) -> Option<Lsn> {
        let cfg = self.log.as_ref()?;
        let span = cfg.lease_span;
        if !crate::hooks::write_leases() || lsn + span / 2 <= st.lease_appended {
            return None;
        }
        let bound = st.lease_appended.max(lsn - 1) + span;
        st.lease_appended = bound;
        st.leased = true;
        st.leases_pending.push_back((bound, lsn));
        Some(bound)
    }

    /// Waits until the log is durable through `lsn`, asking the (running) log thread for a sync.
    pub(crate) fn wait_durable(&self, lsn: Lsn) -> crate::Result<()> {
        let durable = || self.durable_lsn.load(Ordering::Acquire);
        let mut st = self.state.lock();
        if durable() >= lsn {
            return Ok(());
        }
        if st.closing && st.poisoned.is_none() {
            return Err(crate::Error::Closed);
        }
        self.request_sync(&mut st, lsn);
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

    /// The highest transaction id handed out so far (0 if none).
    pub(crate) fn last_txn_id(&self) -> u64 {
        self.next_txn_id.load(Ordering::Relaxed) - 1
    }

    /// What a checkpoint's MANIFEST records of the log: the highest LSN this run may hand out
    /// (its lease, or the last assigned LSN) and the segment being appended to.
    pub(crate) fn checkpoint_floors(&self) -> (Lsn, u64) {
        let st = self.state.lock();
        (st.lease_appended.max(st.next_lsn - 1), st.seg_id)
    }

    /// Whether `lsn` may be returned to a caller before its commit is durable: a durable lease
    /// covers it.
    pub(crate) fn lease_covers(&self, st: &mut State, lsn: Lsn) -> bool {
        let durable = self.durable_lsn.load(Ordering::Acquire);
        while let Some(&(bound, first_after)) = st.leases_pending.front() {
            if first_after > durable {
                break;
            }
            st.lease_durable = st.lease_durable.max(bound);
            st.leases_pending.pop_front();
        }
        lsn <= st.lease_durable || !crate::hooks::write_leases()
    }

    /// At close: lowers the lease to the last assigned LSN (every LSN of this run is accounted
    /// for), so that the next run continues from there instead of above the lease. Only when this
    /// run wrote a lease.
    pub(crate) fn append_closing_lease(&self, st: &mut State) {
        if self.log.is_none() || !st.leased {
            return;
        }
        let last = st.next_lsn - 1;
        if st.lease_appended > last {
            st.lease_appended = last;
            let lsn = st.next_lsn;
            self.append(st, &[], lsn, 0, false, Some(last));
        }
    }

    /// Encodes a transaction's records (preceded by a lease record when `lease` is set; only the
    /// lease when `ops` is empty) into the pending batches at the current cursor, opening a new
    /// segment first when they do not fit. `ops` have been validated. `system` marks the writes
    /// as the engine's own ([`ringlog_format::FLAG_SYSTEM`]).
    pub(crate) fn append<'a>(
        &self,
        st: &mut State,
        ops: &[OpRef<'a>],
        lsn: Lsn,
        txn_id: u64,
        system: bool,
        lease: Option<Lsn>,
    ) {
        let cfg = self.log.as_ref().expect("append needs a log");
        let lease_len = if lease.is_some() {
            encoded_len(0, MARKER_PAYLOAD_LEN)
        } else {
            0
        };
        let txn_len = if ops.is_empty() {
            0
        } else {
            txn_encoded_len(ops)
        };
        let need = lease_len + txn_len;
        let reserve = cfg.align as usize + RECORD_HEADER_LEN;
        assert!(
            need + reserve + SEGMENT_HEADER_LEN <= cfg.seg.size as usize,
            "transaction size was validated"
        );
        let deferred = st.rotate_first.take();
        if deferred.is_some() || st.cursor as usize + need + reserve > cfg.seg.size as usize {
            // Rotate: close the open batch of this segment; the next segment records its end.
            let prev_end = match (deferred, st.batches.back_mut()) {
                (Some(end), _) => end,
                (None, Some(b)) if b.seg_id == st.seg_id => pad_batch(b, cfg, self.run_id),
                (None, _) => st.cursor,
            };
            st.seg_id += 1;
            st.cursor = SEGMENT_HEADER_LEN as u64;
            let buf = st
                .spare
                .pop()
                .unwrap_or_else(|| AlignedBuf::with_capacity(64 << 10));
            st.batches.push_back(Batch {
                seg_id: st.seg_id,
                start: st.cursor,
                buf,
                last_lsn: 0,
                create: Some((prev_end, lsn - 1)),
            });
        } else if st.batches.back().is_none_or(|b| b.seg_id != st.seg_id) {
            let buf = st
                .spare
                .pop()
                .unwrap_or_else(|| AlignedBuf::with_capacity(64 << 10));
            st.batches.push_back(Batch {
                seg_id: st.seg_id,
                start: st.cursor,
                buf,
                last_lsn: 0,
                create: None,
            });
        }
        let (seg_id, cursor) = (st.seg_id, st.cursor);
        let batch = st.batches.back_mut().expect("a batch is open");
        debug_assert_eq!(batch.start + batch.buf.len() as u64, cursor);
        let ts = now_ns();
        let epoch = cfg.seg.epoch;
        let batch_start = batch.start as u32;
        let run = self.run_id;
        let mut at = cursor;
        let mut put = |buf: &mut AlignedBuf, spec: RecordSpec<'_>| {
            let len = match spec.kind {
                RecordKind::Write | RecordKind::Delete => {
                    encoded_len(spec.key.len(), spec.value.len())
                }
                _ => encoded_len(0, MARKER_PAYLOAD_LEN),
            };
            let dst = buf.extend_zeroed(len);
            let n = encode_record(
                dst,
                &spec,
                SegmentPos {
                    segment_id: seg_id,
                    epoch,
                    offset: at,
                },
            )
            .expect("validated record encodes");
            debug_assert_eq!(n, len);
            at += n as u64;
        };
        fn with_system(spec: RecordSpec<'_>, system: bool) -> RecordSpec<'_> {
            if system {
                spec.system()
            } else {
                spec
            }
        }
        let op_spec = |op: &OpRef<'a>| {
            let spec = match *op {
                OpRef::Put(k, v) => RecordSpec::write(k, v, lsn, txn_id, run, ts, batch_start),
                OpRef::Delete(k) => RecordSpec::delete(k, lsn, txn_id, run, ts, batch_start),
            };
            with_system(spec, system)
        };
        if let Some(bound) = lease {
            put(
                &mut batch.buf,
                RecordSpec::lease(bound, run, ts, batch_start),
            );
        }
        if ops.is_empty() {
            // A lease alone.
        } else if let [op] = ops {
            put(&mut batch.buf, op_spec(op).autocommit());
        } else {
            let n = ops.len() as u32;
            put(
                &mut batch.buf,
                RecordSpec::marker(RecordKind::BeginTxn, n, lsn, txn_id, run, ts, batch_start),
            );
            for op in ops {
                put(&mut batch.buf, op_spec(op));
            }
            put(
                &mut batch.buf,
                RecordSpec::marker(RecordKind::CommitTxn, n, lsn, txn_id, run, ts, batch_start),
            );
        }
        assert_eq!(
            at - cursor,
            need as u64,
            "encoded size matches the reservation"
        );
        st.cursor = at;
        st.pending_bytes += need;
        if !ops.is_empty() {
            batch.last_lsn = lsn;
            st.pending_commits += 1;
        }
        self.counters
            .bytes_appended
            .fetch_add(need as u64, Ordering::Relaxed);
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

/// Bytes a transaction occupies in the log.
pub(crate) fn txn_encoded_len(ops: &[OpRef<'_>]) -> usize {
    let op_len = |op: &OpRef<'_>| match *op {
        OpRef::Put(k, v) => encoded_len(k.len(), v.len()),
        OpRef::Delete(k) => encoded_len(k.len(), 0),
    };
    match ops {
        [op] => op_len(op),
        _ => 2 * encoded_len(0, MARKER_PAYLOAD_LEN) + ops.iter().map(op_len).sum::<usize>(),
    }
}

/// Closes a batch with a Padding record up to the next write-alignment boundary; returns its end.
fn pad_batch(b: &mut Batch, cfg: &LogConfig, run_id: u64) -> u64 {
    let end = b.start + b.buf.len() as u64;
    let mut gap = align_up(end, cfg.align) - end;
    if gap != 0 && gap < RECORD_HEADER_LEN as u64 {
        gap += cfg.align;
    }
    if gap != 0 {
        let pos = SegmentPos {
            segment_id: b.seg_id,
            epoch: cfg.seg.epoch,
            offset: end,
        };
        encode_padding(
            b.buf.extend_zeroed(gap as usize),
            run_id,
            b.start as u32,
            pos,
        )
        .expect("padding is aligned and large enough");
    }
    let end = end + gap;
    assert_eq!(end % cfg.align, 0, "batches end on the write alignment");
    assert!(end <= cfg.seg.size, "batch stays inside its segment");
    end
}

/// Writes and syncs a *seal* at close: one block holding only a Padding record, a round of its
/// own after the last round of data. Recovery can tell damage in a round from a torn write only
/// when a later round follows it (FORMAT.md §10.5); the seal makes that true of every round
/// written before a clean close, so damage to them later is reported, never cut silently. Skipped
/// when the segment has no room left (its successor's header then bounds it instead).
fn seal(
    shared: &Shared,
    cfg: &LogConfig,
    driver: &mut dyn LogDriver,
    active: &mut Active,
    at: u64,
) {
    if at + cfg.align > cfg.seg.size {
        return;
    }
    if let Err(e) = active.prepare(cfg, at + cfg.align) {
        shared.poison(e.to_poison());
        return;
    }
    assert_eq!(at % cfg.align, 0, "rounds end on the write alignment");
    let mut buf = AlignedBuf::with_capacity(cfg.align as usize);
    let pos = SegmentPos {
        segment_id: active.id,
        epoch: cfg.seg.epoch,
        offset: at,
    };
    encode_padding(
        buf.extend_zeroed(cfg.align as usize),
        shared.run_id,
        at as u32,
        pos,
    )
    .expect("a block holds a padding record");
    if let Err(e) = driver.write_durable(&*active.file, at, buf.as_slice(), cfg.strategy) {
        shared.poison(e);
    }
}

/// The active segment as the log thread sees it.
pub(crate) struct Active {
    pub(crate) id: u64,
    pub(crate) file: Box<dyn VFile>,
    /// How much of it is prepared (zero-filled): a round that would write past it first grows
    /// the segment ([`grow_segment`]).
    pub(crate) len: u64,
}

impl Active {
    /// Makes sure `[.., end)` of the segment is prepared before a round writes up to `end`.
    fn prepare(&mut self, cfg: &LogConfig, end: u64) -> crate::Result<()> {
        if end > self.len {
            failpoint!(SEGMENT_BEFORE_GROW);
            self.len = grow_segment(&*self.file, &cfg.seg, self.id, self.len, end)?;
        }
        Ok(())
    }
}

/// The log thread's body: waits for work, writes batches in order, one write + sync at a time.
pub(crate) fn run_log_thread(
    shared: Arc<Shared>,
    mut driver: Box<dyn LogDriver>,
    mut active: Active,
    vfs: Arc<dyn Vfs>,
) {
    /// Poisons the database if the log thread unwinds, so that no committer waits forever.
    struct PoisonOnPanic<'a>(&'a Shared);
    impl Drop for PoisonOnPanic<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.poison(io::Error::other("the log thread panicked"));
            }
        }
    }
    let _poison_on_panic = PoisonOnPanic(&shared);
    driver.started();
    let cfg = shared.log.as_ref().expect("log thread needs a log");
    loop {
        let batches = {
            let mut st = shared.state.lock();
            loop {
                if st.poisoned.is_some() {
                    return;
                }
                let has = !st.batches.is_empty();
                let now = shared.now();
                let strict = st.sync_upto > shared.durable_lsn.load(Ordering::Acquire);
                let forced = st.pending_bytes >= st.trigger_bytes
                    || st.closing
                    || st.deadline.is_some_and(|d| d <= now);
                let gathering = st
                    .gather
                    .filter(|&(target, until)| st.pending_commits < target && now < until);
                if has && (forced || (strict && gathering.is_none())) {
                    break;
                }
                if st.closing {
                    let at = st.cursor;
                    // Nothing was appended after an open that found a tail it cannot append to:
                    // that segment is never written again, not even sealed.
                    let sealable = st.rotate_first.is_none();
                    drop(st);
                    if sealable {
                        seal(&shared, cfg, &mut *driver, &mut active, at);
                    }
                    return;
                }
                let mut wake_at = if has { st.deadline } else { None };
                if let (true, Some((_, until))) = (strict, gathering) {
                    wake_at = Some(wake_at.map_or(until, |d| d.min(until)));
                }
                let timeout = wake_at.map(|d| d.saturating_duration_since(now));
                st.sleeping = true;
                let waited = MutexGuard::unlocked(&mut st, || driver.wait(timeout));
                st.sleeping = false;
                if let Err(e) = waited {
                    drop(st);
                    shared.poison(e);
                    return;
                }
            }
            let mut batches = std::mem::take(&mut st.batches);
            if let Some(last) = batches.back_mut() {
                if last.seg_id == st.seg_id {
                    st.cursor = pad_batch(last, cfg, shared.run_id);
                }
            }
            let round_commits = st.pending_commits;
            st.takes += 1;
            let take = st.takes;
            st.pending_bytes = 0;
            st.pending_commits = 0;
            st.gather = None;
            st.deadline = None;
            st.trigger_bytes = usize::MAX;
            shared.space_cv.notify_all();
            (batches, round_commits, take)
        };
        let (batches, round_commits, take) = batches;
        let count = batches.len();
        for (i, mut batch) in batches.into_iter().enumerate() {
            let last_of_take = i + 1 == count;
            if let Some((prev_end, base_lsn)) = batch.create {
                assert_eq!(batch.seg_id, active.id + 1, "segments are created in order");
                match create_segment(&*vfs, &cfg.seg, batch.seg_id, prev_end, base_lsn) {
                    Ok(file) => {
                        shared
                            .counters
                            .segments_created
                            .fetch_add(1, Ordering::Relaxed);
                        active = Active {
                            id: batch.seg_id,
                            file,
                            len: initial_len(cfg.seg.size),
                        };
                        failpoint!(LOG_MID_ROTATION);
                    }
                    Err(e) => {
                        shared.poison(e.to_poison());
                        return;
                    }
                }
            }
            assert_eq!(
                batch.seg_id, active.id,
                "a batch goes to the active segment"
            );
            assert_eq!(batch.start % cfg.align, 0, "batches start aligned");
            assert_eq!(batch.buf.len() as u64 % cfg.align, 0, "batches are padded");
            if let Err(e) = active.prepare(cfg, batch.start + batch.buf.len() as u64) {
                shared.poison(e.to_poison());
                return;
            }
            failpoint!(LOG_BEFORE_BATCH_WRITE);
            // The disk's clock: a simulated disk's latency then decides the gathering window
            // below, as a real one's does.
            let started = shared.now();
            let res = driver.write_durable(
                &*active.file,
                batch.start,
                batch.buf.as_slice(),
                cfg.strategy,
            );
            let res = crate::hooks::retry_failed_sync(res, &*active.file);
            let took = shared.now().saturating_duration_since(started).as_nanos() as u64;
            if let Err(e) = res {
                shared.poison(e);
                return;
            }
            failpoint!(LOG_AFTER_BATCH_DURABLE);
            let c = &shared.counters;
            c.syncs.fetch_add(1, Ordering::Relaxed);
            c.sync_ns_total.fetch_add(took, Ordering::Relaxed);
            c.sync_ns_max.fetch_max(took, Ordering::Relaxed);
            c.last_sync_unix_ns.store(now_ns(), Ordering::Relaxed);
            batch.buf.clear();
            let mut st = shared.state.lock();
            if round_commits >= 2 {
                // Gather the next group for at most one round's latency (capped at 1 ms).
                let window = Duration::from_nanos(took).min(Duration::from_millis(1));
                st.gather = Some((round_commits, shared.now() + window));
            }
            if batch.last_lsn != 0 {
                let published = if crate::hooks::publishes_past_round() {
                    batch.last_lsn.max(st.next_lsn - 1)
                } else {
                    batch.last_lsn
                };
                let prev = shared.durable_lsn.swap(published, Ordering::AcqRel);
                assert!(prev <= published, "the durable LSN only moves forward");
                // Strict commits of the round become visible (lock order: state, visibility).
                shared.visible.durable_advanced(published);
            }
            if st.spare.len() < 4 {
                st.spare.push(batch.buf);
            }
            shared.durable_cv.notify_all();
            if crate::hooks::publishes_past_round() {
                // The PublishLastAssignedLsn planted bug also wakes every parked committer, so
                // the ones whose records are still pending return acknowledged.
                let parked: Vec<Thread> = st
                    .round_waiters
                    .iter_mut()
                    .flat_map(std::mem::take)
                    .collect();
                drop(st);
                parked.iter().for_each(Thread::unpark);
            } else if last_of_take {
                let parked = std::mem::take(&mut st.round_waiters[(take % 2) as usize]);
                drop(st);
                parked.iter().for_each(Thread::unpark);
            } else if batch.last_lsn != 0 {
                // A take split by a segment rotation: the committers whose records were in this
                // batch are durable now; wake the take's waiters (the others re-check and park
                // again) rather than holding them until the take's last batch.
                let parked = st.round_waiters[(take % 2) as usize].clone();
                drop(st);
                parked.iter().for_each(Thread::unpark);
            }
            failpoint!(LOG_AFTER_DURABLE_PUBLISHED);
        }
    }
}
