//! The log thread: waits for work as [`super::policy`] decides, creates and grows segments,
//! writes and syncs each batch, publishes the durable LSN and wakes the round's committers.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::Thread;
use std::time::Duration;

use parking_lot::MutexGuard;
use ringlog_format::AlignedBuf;
use ringlog_uring::{LogDriver, VFile, Vfs};

use crate::index::Lsn;

use super::append::pad_batch;
use super::policy::{self, Next};
use super::{LogConfig, Shared};
use crate::segment::{create_segment, grow_segment, initial_len, now_ns};

/// Writes and syncs a *seal* at close: one block holding only a batch head and a Padding record,
/// a round of its own after the last round of data. Recovery can tell damage in a round from a
/// torn write only when a later round follows it (FORMAT.md §10.5); the seal makes that true of every round
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
    if let Err(e) = active.prepare(cfg, at + cfg.align, shared.rotation_size()) {
        shared.poison(e.to_poison());
        return;
    }
    assert_eq!(at % cfg.align, 0, "rounds end on the write alignment");
    // A batch of its own, closed as every batch is: its head, then padding to the alignment.
    let buf = AlignedBuf::with_capacity(cfg.align as usize);
    let mut batch = super::Batch::new(active.id, at, buf, None);
    // Every round before it is durable: its floor is its own offset.
    let end = pad_batch(
        &mut batch,
        cfg,
        (shared.run_id, shared.wall_ns()),
        (active.id, at),
    );
    debug_assert_eq!(end, at + cfg.align, "a seal is one block");
    let buf = batch.buf;
    if let Err(e) = driver.write_durable(&*active.file, at, buf.as_slice(), cfg.strategy) {
        shared.poison(e);
    }
}

/// Whether rounds may be in flight at once on `file` ([`crate::Options::rounds_in_flight`]): its
/// writes bypass the page cache (`O_DIRECT`: a write's error comes back on that write), or it is
/// not a kernel file (a simulated disk, which models its syncs itself). On a kernel file written
/// through the page cache, two fdatasyncs in flight at once share the file's writeback error —
/// Linux reports it to whichever checks first (`errseq`, per open file) — so an earlier round's
/// sync could succeed although its pages never reached the disk, and the round be acknowledged
/// (found in review, shown on a loop device failing writeback): such a file gets one round at a
/// time, as DESIGN.md's "at most one fdatasync per file in flight" asks.
pub(crate) fn rounds_may_overlap(file: &dyn VFile) -> bool {
    file.direct_io().is_some() || file.raw_fd().is_none()
}

/// The active segment as the log thread sees it.
pub(crate) struct Active {
    pub(crate) id: u64,
    /// Shared with the writes in flight to it (the pipelined log's submissions own a handle).
    pub(crate) file: Arc<dyn VFile>,
    /// How much of it is prepared (zero-filled): a round that would write past it first grows
    /// the segment ([`grow_segment`]).
    pub(crate) len: u64,
}

impl Active {
    /// Makes sure `[.., end)` of the segment is prepared before a round writes up to `end`.
    /// Preparation stops at `rotate_at` ([`Shared::rotation_size`]) where `end` is below it.
    fn prepare(&mut self, cfg: &LogConfig, end: u64, rotate_at: u64) -> crate::Result<()> {
        if end > self.len {
            failpoint!(SEGMENT_BEFORE_GROW);
            self.len = grow_segment(&*self.file, &cfg.seg, self.id, self.len, end, rotate_at)?;
        }
        Ok(())
    }
}

/// The log thread's body: waits for work, writes batches in order, one write + sync at a time.
/// The active segment is in [`Shared::round`], whose lock serialises rounds: the log thread's,
/// and those a lone `Strict` committer performs itself ([`Shared::lead_round`]).
pub(crate) fn run_log_thread(
    shared: Arc<Shared>,
    mut driver: Box<dyn LogDriver>,
    vfs: Arc<dyn Vfs>,
) {
    // So that no committer waits forever.
    let _poison_on_panic = super::PoisonOnPanic(&shared, "the log thread panicked");
    driver.started();
    let cfg = shared.log.as_ref().expect("log thread needs a log");
    // Rounds kept in flight at once: as many as asked for and the driver can (1: one at a time).
    let depth = cfg
        .rounds_in_flight
        .min(driver.max_in_flight())
        .clamp(1, super::MAX_ROUNDS_IN_FLIGHT);
    let mut said_no_overlap = false;
    loop {
        {
            let mut st = shared.state.lock();
            // Whether this idle period already spun (once per round).
            let mut spun = false;
            loop {
                let now = shared.now();
                let view = st.view(
                    shared.durable_lsn.load(Ordering::Acquire),
                    shared.spin && !spun,
                );
                let wake_at = match policy::next(&view, now) {
                    Next::Exit => return,
                    Next::Write => break,
                    Next::Seal => {
                        let at = st.cursor;
                        // Nothing was appended after an open that found a tail it cannot append
                        // to: that segment is never written again, not even sealed.
                        let sealable = st.rotate_first.is_none();
                        drop(st);
                        let mut round = shared.round.lock();
                        // A committer's round that was being written may have failed meanwhile:
                        // never seal after a failed round (the seal would make recovery report
                        // the failed round as damaged synced data instead of a torn tail).
                        let failed = shared.state.lock().poisoned.is_some();
                        if let (true, false, Some(active)) = (sealable, failed, round.as_mut()) {
                            seal(&shared, cfg, &mut *driver, active, at);
                        }
                        return;
                    }
                    Next::Spin => {
                        // Lock released and not marked sleeping: committers append without
                        // waking anyone, and the next decision (under the lock) sees what they
                        // appended.
                        spun = true;
                        // Every append adds to `bytes_appended`: a change means work.
                        let appended = &shared.counters.bytes_appended;
                        let seen = appended.load(Ordering::Relaxed);
                        MutexGuard::unlocked(&mut st, || {
                            let until = std::time::Instant::now() + super::LOG_SPIN;
                            while appended.load(Ordering::Relaxed) == seen
                                && std::time::Instant::now() < until
                            {
                                std::hint::spin_loop();
                            }
                        });
                        continue;
                    }
                    Next::Sleep(wake_at) => wake_at,
                };
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
        }
        // Rounds are serialised by the round lock (lock order: round, then state): a lone Strict
        // committer may be writing a round of its own, or may have taken the batches already.
        let mut round = shared.round.lock();
        let active = round.as_mut().expect("the log thread's active segment");
        let overlap = depth > 1 && rounds_may_overlap(&*active.file);
        if depth > 1 && !overlap && !said_no_overlap {
            said_no_overlap = true;
            log::info!(
                "segment {}: written through the page cache, so one round at a time (rounds_in_flight {depth} needs O_DIRECT)",
                active.id
            );
        }
        if overlap {
            if super::pipeline::run_rounds(&shared, cfg, &*vfs, &mut *driver, active, depth)
                .is_err()
            {
                return;
            }
            continue;
        }
        let taken = {
            let mut st = shared.state.lock();
            if st.batches.is_empty() {
                continue;
            }
            take_round(&shared, cfg, &mut st)
        };
        let mut io = |file: &dyn VFile, offset: u64, buf: &[u8]| {
            driver.write_durable(file, offset, buf, cfg.strategy)
        };
        let Ok(woken) = write_round(&shared, cfg, &*vfs, active, &mut io, taken) else {
            return;
        };
        drop(round);
        woken.iter().for_each(Thread::unpark);
    }
}

/// A durable write of `buf` at an offset of a file: the log thread's driver's, or a leading
/// committer's own.
pub(crate) type DurableWrite<'a> = dyn FnMut(&dyn VFile, u64, &[u8]) -> io::Result<()> + 'a;

/// A round taken from the pending batches: written and synced batch by batch, in order.
pub(crate) struct Taken {
    pub(super) batches: std::collections::VecDeque<super::Batch>,
    /// Commits the round carries.
    pub(super) commits: usize,
    /// Its take number (which parked committers it wakes).
    pub(super) take: u64,
}

/// Takes every pending batch as one round (under the state lock): pads the last one, counts the
/// take, resets the gathering and the Buffered deadline.
pub(super) fn take_round(shared: &Shared, cfg: &LogConfig, st: &mut super::State) -> Taken {
    let mut batches = std::mem::take(&mut st.batches);
    if let Some(last) = batches.back_mut() {
        if last.seg_id == st.seg_id {
            st.cursor = pad_batch(last, cfg, (shared.run_id, shared.wall_ns()), st.synced);
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
    Taken {
        batches,
        commits: round_commits,
        take,
    }
}

/// Writes a taken round's batches in order through `io` (a durable write: returns once the bytes
/// are durable), creating and growing segments as they need, and publishes each batch as durable
/// once written: the durable LSN, the visibility of its Strict commits. Returns the committers
/// the round carried, for the caller to wake once it has released the round lock; `Err` when it
/// poisoned the database (the caller stops writing).
pub(super) fn write_round(
    shared: &Shared,
    cfg: &LogConfig,
    vfs: &dyn Vfs,
    active: &mut Active,
    io: &mut DurableWrite<'_>,
    taken: Taken,
) -> Result<Vec<Thread>, ()> {
    let mut woken = Vec::new();
    let Taken {
        batches,
        commits: round_commits,
        take,
    } = taken;
    let count = batches.len();
    for (i, batch) in batches.into_iter().enumerate() {
        let last_of_take = i + 1 == count;
        if let Some((prev_end, base_lsn)) = batch.create {
            assert_eq!(batch.seg_id, active.id + 1, "segments are created in order");
            match create_segment(vfs, &cfg.seg, batch.seg_id, prev_end, base_lsn) {
                Ok(file) => {
                    shared
                        .counters
                        .segments_created
                        .fetch_add(1, Ordering::Relaxed);
                    *active = Active {
                        id: batch.seg_id,
                        file: file.into(),
                        len: initial_len(cfg.seg.size),
                    };
                    failpoint!(LOG_MID_ROTATION);
                }
                Err(e) => {
                    shared.poison(e.to_poison());
                    return Err(());
                }
            }
        }
        assert_eq!(
            batch.seg_id, active.id,
            "a batch goes to the active segment"
        );
        assert_eq!(batch.start % cfg.align, 0, "batches start aligned");
        assert_eq!(batch.buf.len() as u64 % cfg.align, 0, "batches are padded");
        if let Err(e) = active.prepare(
            cfg,
            batch.start + batch.buf.len() as u64,
            shared.rotation_size(),
        ) {
            shared.poison(e.to_poison());
            return Err(());
        }
        failpoint!(LOG_BEFORE_BATCH_WRITE);
        // The disk's clock: a simulated disk's latency then decides the gathering window
        // below, as a real one's does.
        let started = shared.now();
        let res = io(&*active.file, batch.start, batch.buf.as_slice());
        let took = shared.now().saturating_duration_since(started).as_nanos() as u64;
        if let Err(e) = res {
            shared.poison(e);
            return Err(());
        }
        failpoint!(LOG_AFTER_BATCH_DURABLE);
        let end = batch.start + batch.buf.len() as u64;
        let done = Durable {
            seg_id: batch.seg_id,
            end,
            last_lsn: batch.last_lsn,
            buf: Some(batch.buf),
            round_commits,
            took,
            take,
            last_of_take,
        };
        if let Some(w) = publish(shared, done) {
            woken = w;
        }
    }
    Ok(woken)
}

/// A batch whose write completed (durable), to publish.
pub(super) struct Durable {
    pub(super) seg_id: u64,
    /// Offset just past the batch in its segment.
    pub(super) end: u64,
    pub(super) last_lsn: Lsn,
    /// Its buffer, for reuse (`None`: still with the driver, see the pipelined log).
    pub(super) buf: Option<AlignedBuf>,
    /// Commits of the round (take) the batch was written in.
    pub(super) round_commits: usize,
    /// How long its write took (ns, on the disk's clock).
    pub(super) took: u64,
    pub(super) take: u64,
    pub(super) last_of_take: bool,
}

/// Publishes a durable batch — the next in log order: counters, the durable LSN and floor, the
/// visibility of its Strict commits — and wakes the committers it carried. Returns them instead
/// when it is the last batch of its take (the caller wakes them once it released the round lock).
pub(super) fn publish(shared: &Shared, done: Durable) -> Option<Vec<Thread>> {
    let Durable {
        seg_id,
        end,
        last_lsn,
        buf,
        round_commits,
        took,
        take,
        last_of_take,
    } = done;
    let c = &shared.counters;
    c.syncs.fetch_add(1, Ordering::Relaxed);
    c.sync_ns_total.fetch_add(took, Ordering::Relaxed);
    c.sync_ns_max.fetch_max(took, Ordering::Relaxed);
    c.last_sync_unix_ns.store(now_ns(), Ordering::Relaxed);
    let mut st = shared.state.lock();
    if let Some(g) = policy::gather_after(round_commits, Duration::from_nanos(took), shared.now()) {
        st.gather = Some(g);
    }
    debug_assert!(
        st.synced.0 < seg_id || (st.synced.0 == seg_id && st.synced.1 <= end),
        "batches are published in log order"
    );
    if !crate::hooks::durable_floors_stay_put() {
        st.synced = (seg_id, end);
    }
    if last_lsn != 0 {
        let published = if crate::hooks::publishes_past_round() {
            last_lsn.max(st.next_lsn - 1)
        } else {
            last_lsn
        };
        let prev = shared.durable_lsn.swap(published, Ordering::AcqRel);
        assert!(prev <= published, "the durable LSN only moves forward");
        // Strict commits of the round become visible (lock order: state, visibility).
        shared.visible.durable_advanced(published);
    }
    if let Some(mut buf) = buf.filter(|_| st.spare.len() < 4) {
        buf.clear();
        st.spare.push(buf);
    }
    shared.durable_cv.notify_all();
    let slot = round_slot(take);
    let woken = if crate::hooks::publishes_past_round() {
        // The PublishLastAssignedLsn planted bug also wakes every parked committer, so
        // the ones whose records are still pending return acknowledged.
        let parked: Vec<Thread> = st
            .round_waiters
            .iter_mut()
            .flat_map(std::mem::take)
            .collect();
        drop(st);
        parked.iter().for_each(Thread::unpark);
        None
    } else if last_of_take {
        // Woken by the caller once it released the round lock: a committer woken here that
        // commits again at once may then lead its round (it only tries the lock).
        let woken = std::mem::take(&mut st.round_waiters[slot]);
        drop(st);
        Some(woken)
    } else if last_lsn != 0 {
        // A take split by a segment rotation: the committers whose records were in this
        // batch are durable now; wake the take's waiters (the others re-check and park
        // again) rather than holding them until the take's last batch.
        let parked = st.round_waiters[slot].clone();
        drop(st);
        parked.iter().for_each(Thread::unpark);
        None
    } else {
        None
    };
    failpoint!(LOG_AFTER_DURABLE_PUBLISHED);
    woken
}

/// Which of [`super::State::round_waiters`] holds the committers of take `take`: takes in flight
/// at once (at most [`super::MAX_ROUNDS_IN_FLIGHT`]) and the next one never share a slot.
pub(super) fn round_slot(take: u64) -> usize {
    (take % super::ROUND_SLOTS as u64) as usize
}
