//! A lone `Strict` committer writes its own round (issue 13 item 2).
//!
//! A `Strict` commit handed to the log thread pays two thread hand-offs: waking the log thread
//! (which then writes and syncs) and being woken by it. When the committer is alone — its commit
//! is the only one pending, no round is being written, and the previous round carried at most one
//! commit (no group to gather) — it takes the round itself, under the log mutex, and writes and
//! syncs it on its own thread with plain system calls
//! ([`ringlog_uring::write_durable_now`]): the raw loop's path, no hand-off at all. RocksDB's
//! write-group leader does the same for the first writer of a group.
//!
//! Rounds stay strictly serial ([FORMAT.md §6](../../../docs/FORMAT.md), rule 6): whoever writes
//! one holds [`Shared::round`], and a committer only leads when `try_lock` gets it, so it never
//! waits for the log thread, and the log thread waits for a leader's round to end before it takes
//! the next. Everything else — padding, the durable LSN, visibility, waking whoever the round
//! carried — is the log thread's own code ([`super::thread::take_round`],
//! [`super::thread::write_round`]). A leader never creates or grows a segment: when its batch
//! needs either, the log thread does the round as before.

use parking_lot::MutexGuard;
use ringlog_uring::VFile;

use super::append::padded_end;
use super::thread::{take_round, write_round, Active, Taken};
use super::{Shared, State};

/// A round a committer took to write itself: the round lock, held until it is written.
pub(crate) struct Led<'a> {
    round: MutexGuard<'a, Option<Active>>,
    taken: Taken,
}

impl Shared {
    /// Called under the log mutex by a `Strict` committer whose records were just appended,
    /// before it asks the log thread for a sync: takes the pending round for the committer to
    /// write itself ([`Shared::write_led`]) when it is alone (the only commit pending, no
    /// gathering after a round of several), no round is being written, and the round needs no
    /// new or grown segment. `None`: hand it to the log thread as usual.
    pub(crate) fn lead_round(&self, st: &mut State) -> Option<Led<'_>> {
        let cfg = self.log.as_ref()?;
        if !self.lead
            || !crate::hooks::leader_commits()
            || st.pending_commits != 1
            || st.gather.is_some()
            || st.closing
            || st.poisoned.is_some()
            || st.rotate_first.is_some()
            || st.batches.len() != 1
        {
            return None;
        }
        let batch = st.batches.front()?;
        if batch.create.is_some() {
            return None;
        }
        // Never waits: the log thread may hold it while it writes (lock order: round, state).
        let round = self.round.try_lock()?;
        let active = round.as_ref()?;
        let end = padded_end(batch.start + batch.buf.len() as u64, cfg.align);
        if batch.seg_id != active.id || end > active.len {
            return None;
        }
        let taken = take_round(self, cfg, st);
        Some(Led { round, taken })
    }

    /// Writes and syncs a round taken by [`Shared::lead_round`] on the calling thread, then
    /// publishes it as durable exactly as the log thread does; on an error the database is
    /// poisoned (the committer's wait for its LSN then reports it).
    pub(crate) fn write_led(&self, led: Led<'_>) {
        let Led { mut round, taken } = led;
        let cfg = self.log.as_ref().expect("a led round has a log");
        let vfs = self
            .vfs
            .as_deref()
            .expect("a database with a log has a Vfs");
        let active = round.as_mut().expect("checked when the round was led");
        let strategy = cfg.strategy;
        let mut io = |file: &dyn VFile, offset: u64, buf: &[u8]| {
            if crate::hooks::leader_skips_sync() {
                return file.write_all_at(buf, offset);
            }
            vfs.write_durable_here(file, offset, buf, strategy)
        };
        // A panic in the write (a custom Vfs's) poisons the database as one on the log thread
        // does, rather than leaving the taken round unpublished and its waiters parked; the
        // committer then gets the poison as its error. Otherwise an error poisoned it already.
        let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            write_round(self, cfg, vfs, active, &mut io, taken)
        }));
        match written {
            Ok(Ok(woken)) => {
                self.counters
                    .rounds_led
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                drop(round);
                woken.iter().for_each(std::thread::Thread::unpark);
            }
            Ok(Err(())) => {}
            Err(_) => self.poison(std::io::Error::other(
                "a committer's durable write panicked",
            )),
        }
    }
}
