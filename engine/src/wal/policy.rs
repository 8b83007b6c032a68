//! The log thread's decisions, as pure functions of what it sees under the log mutex and the time
//! (on the disk's clock): when to write a round, how long to sleep, when to seal, and how long to
//! gather the next group. [`super::thread`] acts on them; the tests below exercise them on
//! synthetic states.

use std::time::{Duration, Instant};

use crate::index::Lsn;

/// What the log thread sees of the log's state when it decides.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View {
    /// The log is poisoned (an I/O error): the thread exits.
    pub(crate) poisoned: bool,
    /// Records are pending (appended, not yet written).
    pub(crate) pending: bool,
    /// The database is closing.
    pub(crate) closing: bool,
    /// Bytes pending, and the count that forces a round before the Buffered deadline.
    pub(crate) pending_bytes: usize,
    pub(crate) trigger_bytes: usize,
    /// Commits in the pending records.
    pub(crate) pending_commits: usize,
    /// When the oldest unsynced Buffered commit must be synced.
    pub(crate) deadline: Option<Instant>,
    /// The highest LSN someone waits to see durable, and the durable LSN.
    pub(crate) sync_upto: Lsn,
    pub(crate) durable: Lsn,
    /// Group-commit gathering after a round of several commits: (commits to wait for, until).
    pub(crate) gather: Option<(usize, Instant)>,
    /// The thread may spin for the next commit instead of sleeping (a real disk, and it has not
    /// spun since its last round).
    pub(crate) may_spin: bool,
}

/// What the log thread does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Exit: the log is poisoned.
    Exit,
    /// Take the pending records and write them as a round now.
    Write,
    /// Closing with nothing pending: write the seal and exit.
    Seal,
    /// Sleep until woken, or until this time at the latest.
    Sleep(Option<Instant>),
    /// Idle, with nothing to wait for: watch for the next commit a moment
    /// ([`super::LOG_SPIN`]), then decide again.
    Spin,
}

/// The decision at `now`. A round is written at once when it is forced (pending bytes over the
/// trigger, closing, the Buffered deadline passed) or when someone waits for a sync and no group
/// is being gathered (gathering ends when as many commits as the last round carried are pending,
/// or at its deadline). Otherwise the thread sleeps until the Buffered deadline (if anything is
/// pending) or the end of the gathering, whichever comes first; with nothing to wait for, it
/// first spins once (when it may) — a lone committer's next commit usually comes at once.
pub(crate) fn next(v: &View, now: Instant) -> Next {
    if v.poisoned {
        return Next::Exit;
    }
    let strict = v.sync_upto > v.durable;
    let forced =
        v.pending_bytes >= v.trigger_bytes || v.closing || v.deadline.is_some_and(|d| d <= now);
    let gathering = v
        .gather
        .filter(|&(target, until)| v.pending_commits < target && now < until);
    if v.pending && (forced || (strict && gathering.is_none())) {
        return Next::Write;
    }
    if v.closing {
        return Next::Seal;
    }
    let mut wake_at = if v.pending { v.deadline } else { None };
    if let (true, Some((_, until))) = (strict, gathering) {
        wake_at = Some(wake_at.map_or(until, |d| d.min(until)));
    }
    if wake_at.is_none() && v.may_spin {
        return Next::Spin;
    }
    Next::Sleep(wake_at)
}

/// Longest a round's group gathering waits for the next group.
pub(crate) const MAX_GATHER: Duration = Duration::from_millis(1);

/// After a round of `commits` commits that took `took` to write and sync, finished at `now`:
/// gather the next group (wait for as many commits, at most one round's latency, capped at
/// [`MAX_GATHER`]) — only after a round that carried several: a lone committer never waits.
pub(crate) fn gather_after(
    commits: usize,
    took: Duration,
    now: Instant,
) -> Option<(usize, Instant)> {
    (commits >= 2).then(|| (commits, now + took.min(MAX_GATHER)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle() -> View {
        View {
            poisoned: false,
            pending: false,
            closing: false,
            pending_bytes: 0,
            trigger_bytes: usize::MAX,
            pending_commits: 0,
            deadline: None,
            sync_upto: 0,
            durable: 0,
            gather: None,
            may_spin: false,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_idle_log_sleeps_without_a_deadline() {
        let now = Instant::now();
        assert_eq!(next(&idle(), now), Next::Sleep(None));
    }

    #[test]
    fn a_lone_strict_commit_is_written_at_once() {
        let now = Instant::now();
        let v = View {
            pending: true,
            pending_bytes: 128,
            pending_commits: 1,
            sync_upto: 5,
            durable: 4,
            ..idle()
        };
        assert_eq!(next(&v, now), Next::Write);
    }

    #[test]
    fn a_buffered_commit_waits_for_its_deadline_or_the_pending_limit() {
        let now = Instant::now();
        let v = View {
            pending: true,
            pending_bytes: 128,
            trigger_bytes: 4096,
            pending_commits: 1,
            deadline: Some(now + ms(10)),
            sync_upto: 0,
            durable: 0,
            ..idle()
        };
        assert_eq!(next(&v, now), Next::Sleep(Some(now + ms(10))));
        assert_eq!(next(&v, now + ms(10)), Next::Write, "at the deadline");
        assert_eq!(next(&v, now + ms(25)), Next::Write, "late");
        let full = View {
            pending_bytes: 4096,
            ..v
        };
        assert_eq!(
            next(&full, now),
            Next::Write,
            "the pending limit forces a round"
        );
    }

    #[test]
    fn a_gathering_waits_for_the_group_or_its_end() {
        let now = Instant::now();
        let v = View {
            pending: true,
            pending_bytes: 256,
            pending_commits: 2,
            sync_upto: 9,
            durable: 6,
            gather: Some((4, now + ms(1))),
            ..idle()
        };
        assert_eq!(next(&v, now), Next::Sleep(Some(now + ms(1))));
        let group = View {
            pending_commits: 4,
            ..v
        };
        assert_eq!(next(&group, now), Next::Write, "the group is complete");
        assert_eq!(next(&v, now + ms(1)), Next::Write, "the gathering ended");
        // A Buffered deadline before the gathering's end wakes the thread first.
        let both = View {
            deadline: Some(now + Duration::from_micros(300)),
            ..v
        };
        assert_eq!(
            next(&both, now),
            Next::Sleep(Some(now + Duration::from_micros(300)))
        );
        // Gathering never delays a round nobody waits for a sync of: it sleeps as Buffered does.
        let nobody = View {
            sync_upto: 6,
            deadline: Some(now + ms(10)),
            ..v
        };
        assert_eq!(next(&nobody, now), Next::Sleep(Some(now + ms(10))));
    }

    #[test]
    fn closing_writes_what_is_pending_then_seals() {
        let now = Instant::now();
        let v = View {
            closing: true,
            pending: true,
            pending_bytes: 64,
            pending_commits: 1,
            gather: Some((8, now + ms(1))),
            ..idle()
        };
        assert_eq!(next(&v, now), Next::Write, "closing forces the round");
        let empty = View {
            pending: false,
            pending_bytes: 0,
            pending_commits: 0,
            ..v
        };
        assert_eq!(next(&empty, now), Next::Seal);
    }

    #[test]
    fn an_idle_thread_spins_once_before_it_sleeps() {
        let now = Instant::now();
        let spinning = View {
            may_spin: true,
            ..idle()
        };
        assert_eq!(next(&spinning, now), Next::Spin);
        // Never with a deadline to keep or a group to gather: those sleep until their time.
        let buffered = View {
            pending: true,
            pending_bytes: 64,
            pending_commits: 1,
            deadline: Some(now + ms(10)),
            ..spinning
        };
        assert_eq!(next(&buffered, now), Next::Sleep(Some(now + ms(10))));
        // Nor when closing or poisoned.
        assert_eq!(
            next(
                &View {
                    closing: true,
                    ..spinning
                },
                now
            ),
            Next::Seal
        );
    }

    #[test]
    fn poison_wins_over_everything() {
        let now = Instant::now();
        let v = View {
            poisoned: true,
            closing: true,
            pending: true,
            sync_upto: 3,
            ..idle()
        };
        assert_eq!(next(&v, now), Next::Exit);
    }

    #[test]
    fn only_a_round_of_several_commits_gathers_the_next() {
        let now = Instant::now();
        assert_eq!(
            gather_after(1, ms(5), now),
            None,
            "a lone committer never waits"
        );
        assert_eq!(
            gather_after(3, Duration::from_micros(200), now),
            Some((3, now + Duration::from_micros(200)))
        );
        assert_eq!(
            gather_after(16, ms(7), now),
            Some((16, now + MAX_GATHER)),
            "capped"
        );
    }
}
