//! The pipelined log (issue 13 item 1): up to K rounds in flight at once.
//!
//! With one round at a time, nothing reaches the device while a round's sync runs, and the
//! commits that arrive meanwhile wait for it. Here the log thread submits a round's batches
//! ([`LogDriver::submit`]) and, while they are in flight, takes and submits the next round as soon
//! as the policy says to write, up to [`crate::Options::rounds_in_flight`] rounds. Completions
//! arrive in any order ([`LogDriver::complete`]); a batch is *published* — durable LSN, visibility,
//! its committers woken — only once it and every batch before it completed: the durable LSN
//! advances over the contiguous prefix of completed batches. Each completion speaks for its own
//! bytes only (an `RWF_DSYNC` write, or a write with its own fdatasync linked behind it: an
//! fdatasync issued after a write completed covers it), so the prefix rule is all the ordering
//! the log needs (DURABILITY.md §2, "Rounds in flight").
//!
//! A crash can then leave a later round durable and an earlier one torn. Each batch head records
//! where the durable log ended when the batch was closed (its durable floor, FORMAT.md §10.5), so
//! recovery still tells a torn tail (damage at or above every later batch's floor) from
//! corruption of acknowledged data (damage below a later batch's floor).
//!
//! Rounds that need a segment created or grown are not pipelined: the log thread lets the rounds
//! in flight complete, then writes that round as the one-at-a-time path does (a new segment's
//! creation records the previous segment's end, which must be durable by then).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::thread::Thread;
use std::time::Instant;

use ringlog_format::AlignedBuf;
use ringlog_uring::{Completion, LogDriver, Submission, VFile, Vfs};

use super::append::padded_end;
use super::policy::{self, Next};
use super::thread::{publish, take_round, write_round, Active, Durable, Taken};
use super::{LogConfig, Shared, State};
use crate::index::Lsn;

/// A batch submitted and not yet published.
struct InFlight {
    token: u64,
    seg_id: u64,
    end: u64,
    last_lsn: Lsn,
    round_commits: usize,
    take: u64,
    last_of_take: bool,
    submitted: Instant,
    /// Set by its completion: its buffer back (`None` when the planted `PublishOutOfOrder`
    /// published it early) and when it completed.
    done: Option<(Option<AlignedBuf>, Instant)>,
    /// Its write failed: the database is poisoned once every batch before it was published.
    failed: Option<std::io::Error>,
}

/// What the log thread does next with rounds in flight.
enum Action {
    /// Take the pending round and submit it.
    Submit,
    /// Take the pending round and write it now, synchronously (it creates or grows a segment;
    /// nothing is in flight).
    WriteNow,
    /// Wait for a completion, until this time at the latest; with `.1`, a new commit's wake
    /// ends the wait too (nothing was due: a commit may make a round due).
    Wait(Option<Instant>, bool),
    /// Nothing in flight and nothing to submit: back to the idle loop.
    Idle,
    /// The log is poisoned.
    Exit,
}

/// Whether writing the pending batches needs a segment created or grown first.
fn needs_preparation(st: &State, active: &Active, align: u64) -> bool {
    st.batches.iter().any(|b| {
        b.create.is_some()
            || b.seg_id != active.id
            || padded_end(b.start + b.buf.len() as u64, align) > active.len
    })
}

/// Runs rounds with up to `depth` in flight, from the first the policy asked for until none is in
/// flight and none is due. `Err` when the database was poisoned (the log thread then exits).
/// Called holding the round lock, so no committer leads a round of its own meanwhile.
pub(super) fn run_rounds(
    shared: &Shared,
    cfg: &LogConfig,
    vfs: &dyn Vfs,
    driver: &mut dyn LogDriver,
    active: &mut Active,
    depth: usize,
) -> Result<(), ()> {
    let mut flight: VecDeque<InFlight> = VecDeque::new();
    let mut done: Vec<Completion> = Vec::new();
    let mut next_token = 0u64;
    // The highest LSN submitted: a sync request up to it needs no new round.
    let mut submitted_lsn: Lsn = 0;
    // How long the last published batch took from submission to completion.
    let mut last_took = std::time::Duration::ZERO;
    // A batch in flight failed: nothing more is submitted; the batches before it are still
    // published as they complete (they are durable, and their commits are acknowledged), then
    // the database is poisoned at the failed one.
    let mut failing = false;
    loop {
        let action = {
            let mut st = shared.state.lock();
            if let Some(back) = flight.back() {
                // A round starts behind the ones in flight once it carries as many commits as
                // the last of them, or once that one is overdue (in flight longer than the last
                // batch took): when committers, not the device, are the limit, a pipeline of
                // ever smaller rounds only adds flushes; when the device is, rounds pile up
                // behind it and go out without waiting.
                let target = back.round_commits.max(1);
                let until = back.submitted + last_took.min(policy::MAX_GATHER);
                if st.gather.is_none_or(|(t, u)| t < target || u < until) {
                    st.gather = Some((target, until));
                }
            }
            let durable = shared.durable_lsn.load(Ordering::Acquire);
            let view = st.view(durable.max(submitted_lsn), false);
            let action = match policy::next(&view, shared.now()) {
                Next::Exit => Action::Exit,
                _ if failing => Action::Wait(None, false),
                Next::Write if flight.len() < depth => {
                    if !needs_preparation(&st, active, cfg.align) {
                        Action::Submit
                    } else if flight.is_empty() {
                        Action::WriteNow
                    } else {
                        // Let the rounds in flight complete first.
                        Action::Wait(None, false)
                    }
                }
                // As many rounds in flight as allowed: the next completion makes room.
                Next::Write => Action::Wait(None, false),
                Next::Sleep(_) | Next::Seal | Next::Spin if flight.is_empty() => Action::Idle,
                Next::Sleep(at) => Action::Wait(at, true),
                Next::Seal | Next::Spin => Action::Wait(None, true),
            };
            match action {
                Action::Submit | Action::WriteNow => {
                    let taken = take_round(shared, cfg, &mut st);
                    drop(st);
                    if matches!(action, Action::WriteNow) {
                        let strategy = cfg.strategy;
                        let mut io = |file: &dyn VFile, offset: u64, buf: &[u8]| {
                            driver.write_durable(file, offset, buf, strategy)
                        };
                        let woken = write_round(shared, cfg, vfs, active, &mut io, taken)?;
                        woken.iter().for_each(Thread::unpark);
                    } else {
                        let (lsn, failed) = submit_round(
                            shared,
                            cfg,
                            driver,
                            active,
                            taken,
                            &mut flight,
                            &mut next_token,
                        );
                        submitted_lsn = submitted_lsn.max(lsn);
                        if failed {
                            // As a failed completion: the rounds before it still complete and
                            // are published; it and everything after it never will be.
                            failing = true;
                            // Nothing before it in flight (completed rounds are published at
                            // once): no completion will come to reach it, so it fails now.
                            if flight.len() == 1 {
                                let e = flight.pop_front().and_then(|f| f.failed);
                                shared.poison(e.expect("the failed submission"));
                                return Err(());
                            }
                        }
                    }
                    continue;
                }
                Action::Wait(_, wake) => {
                    // Marked in the same critical section as the decision: a commit appended
                    // from now on wakes the driver's wait, so its round is submitted at once
                    // instead of after the next completion.
                    st.sleeping = wake;
                }
                Action::Idle => {
                    // A gathering this loop set must not outlive the rounds it waited on: a lone
                    // Strict committer leads only when no group is being gathered.
                    if st.gather.is_some_and(|(_, until)| until <= shared.now()) {
                        st.gather = None;
                    }
                }
                Action::Exit => {}
            }
            action
        };
        let wake_at = match action {
            Action::Idle => return Ok(()),
            Action::Exit => return Err(()),
            Action::Wait(at, _) => at,
            Action::Submit | Action::WriteNow => unreachable!("handled above"),
        };
        let timeout = wake_at.map(|t| t.saturating_duration_since(shared.now()));
        let waited = driver.complete(&mut done, timeout);
        shared.state.lock().sleeping = false;
        if let Err(e) = waited {
            shared.poison(e);
            return Err(());
        }
        let now = shared.now();
        for c in done.drain(..) {
            let Some(i) = flight.iter().position(|f| f.token == c.token) else {
                // Published early by the planted PublishOutOfOrder: its buffer is not reused.
                continue;
            };
            if let Err(e) = c.result {
                failing = true;
                flight[i].failed = Some(e);
            }
            flight[i].done = Some((Some(c.buf), now));
            if crate::hooks::publish_out_of_order() {
                // The planted bug: this completion is taken to cover every batch before it.
                for f in flight.iter_mut().take(i) {
                    f.done.get_or_insert((None, now));
                }
            }
        }
        // Publish the contiguous prefix of completed batches, in log order.
        while flight.front().is_some_and(|f| f.done.is_some()) {
            let f = flight.pop_front().expect("checked");
            if let Some(e) = f.failed {
                // Every batch before it is published; it and everything after it never will be.
                shared.poison(e);
                return Err(());
            }
            let (buf, at) = f.done.expect("checked");
            last_took = at.saturating_duration_since(f.submitted);
            failpoint!(LOG_AFTER_BATCH_DURABLE);
            let woken = publish(
                shared,
                Durable {
                    seg_id: f.seg_id,
                    end: f.end,
                    last_lsn: f.last_lsn,
                    buf,
                    round_commits: f.round_commits,
                    took: at.saturating_duration_since(f.submitted).as_nanos() as u64,
                    take: f.take,
                    last_of_take: f.last_of_take,
                },
            );
            // The round lock stays with this thread while rounds are in flight: nobody woken
            // here could lead a round anyway, so wake them now.
            woken.iter().flatten().for_each(Thread::unpark);
        }
    }
}

/// Submits a taken round's batches in order (every one to the active segment, prepared: checked
/// by the caller). Returns the highest LSN it submitted, and whether a submission failed: that
/// batch is then in `flight` as completed with its error, and the round's later batches are not
/// submitted (a review found a failed submission poisoning at once, failing the commits of the
/// rounds before it, which were in flight and became durable).
fn submit_round(
    shared: &Shared,
    cfg: &LogConfig,
    driver: &mut dyn LogDriver,
    active: &Active,
    taken: Taken,
    flight: &mut VecDeque<InFlight>,
    next_token: &mut u64,
) -> (Lsn, bool) {
    let Taken {
        batches,
        commits,
        take,
    } = taken;
    let count = batches.len();
    let mut last = 0;
    if !flight.is_empty() {
        shared
            .counters
            .rounds_overlapped
            .fetch_add(1, Ordering::Relaxed);
    }
    for (i, batch) in batches.into_iter().enumerate() {
        assert_eq!(
            batch.seg_id, active.id,
            "a batch goes to the active segment"
        );
        assert!(batch.create.is_none(), "rounds in flight create no segment");
        assert_eq!(batch.start % cfg.align, 0, "batches start aligned");
        assert_eq!(batch.buf.len() as u64 % cfg.align, 0, "batches are padded");
        let end = batch.start + batch.buf.len() as u64;
        assert!(end <= active.len, "rounds in flight write prepared space");
        failpoint!(LOG_BEFORE_BATCH_WRITE);
        let token = *next_token;
        *next_token += 1;
        flight.push_back(InFlight {
            token,
            seg_id: batch.seg_id,
            end,
            last_lsn: batch.last_lsn,
            round_commits: commits,
            take,
            last_of_take: i + 1 == count,
            submitted: shared.now(),
            done: None,
            failed: None,
        });
        last = last.max(batch.last_lsn);
        let submission = Submission {
            file: active.file.clone(),
            offset: batch.start,
            buf: batch.buf,
            strategy: cfg.strategy,
            token,
        };
        if let Err(e) = driver.submit(submission) {
            let f = flight.back_mut().expect("pushed above");
            f.failed = Some(e);
            f.done = Some((None, shared.now()));
            return (last, true);
        }
    }
    (last, false)
}
