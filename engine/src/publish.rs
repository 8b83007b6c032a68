//! Visibility: which prefix of the commit order readers see.
//!
//! Commit order = LSN order = visibility order. Committers insert their versions into the index
//! concurrently and out of order, then *publish* their LSN; the visible LSN advances over the
//! contiguous prefix of published LSNs only, so a reader never sees a transaction before every
//! earlier one, and never half of one (a transaction's versions are all inserted before it is
//! published). A `Strict` commit publishes only once it is durable, so nothing a reader saw can
//! be lost by a crash; the commits after it become visible with it.
//!
//! Invariants (asserted): the visible LSN only rises, never passes an LSN that was not published,
//! and never passes the last assigned LSN.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};

use crate::index::Lsn;

pub(crate) struct Visibility {
    visible: AtomicU64,
    inner: Mutex<Pending>,
    cv: Condvar,
}

/// The state of one LSN not yet visible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Assigned, its versions not all inserted yet.
    Pending,
    /// Published.
    Done,
    /// Published by a Strict commit: visible once durable.
    Strict,
}

struct Pending {
    /// `done[i]` is the state of LSN `visible + 1 + i`.
    done: VecDeque<Slot>,
    /// Threads waiting in [`Visibility::wait`].
    waiters: usize,
    /// Set when the database is poisoned or closed: waiters stop waiting.
    stopped: bool,
    /// The visible LSN as far as publication goes (the atomic `Visibility::visible` follows it,
    /// except across `skip`).
    visible: Lsn,
    /// LSNs up to this one were never assigned (the run started above its predecessor's lease):
    /// publication treats them as published once an LSN above them is.
    skip: Lsn,
}

impl Visibility {
    /// Everything up to `visible` is visible; the first LSN to be assigned is `next`, and the
    /// LSNs between were never assigned.
    pub(crate) fn new(visible: Lsn, next: Lsn) -> Visibility {
        assert!(next > visible, "the next LSN is above the visible one");
        Visibility {
            visible: AtomicU64::new(visible),
            inner: Mutex::new(Pending {
                done: VecDeque::new(),
                waiters: 0,
                stopped: false,
                visible,
                skip: next - 1,
            }),
            cv: Condvar::new(),
        }
    }

    /// The newest visible LSN: every transaction up to it is visible, whole.
    #[inline]
    pub(crate) fn get(&self) -> Lsn {
        self.visible.load(Ordering::Acquire)
    }

    /// Publishes `lsn`, whose versions are all in the index: it becomes visible as soon as every
    /// earlier LSN has been published — and, for a `strict` one, once the durable LSN (`durable`)
    /// covers it. The log thread calls [`Visibility::durable_advanced`] when it does, so a Strict
    /// committer publishes before it waits for its sync and finds itself visible when it wakes:
    /// no committer has to run to make another one visible.
    pub(crate) fn publish(&self, lsn: Lsn, strict: bool, durable: &AtomicU64) {
        let mut p = self.inner.lock();
        if p.visible < p.skip {
            assert!(lsn > p.skip, "LSN {lsn} was never assigned");
            assert!(
                p.done.is_empty(),
                "nothing is published below the skipped LSNs"
            );
            p.visible = p.skip;
        }
        assert!(lsn > p.visible, "LSN {lsn} published twice");
        if lsn == p.visible + 1
            && p.done.is_empty()
            && (!strict || lsn <= durable.load(Ordering::Acquire))
        {
            // The usual case with one committer at a time: the next LSN, nothing pending.
            self.set_visible(&mut p, lsn);
            return;
        }
        let i = (lsn - p.visible - 1) as usize;
        if p.done.len() <= i {
            p.done.resize(i + 1, Slot::Pending);
        }
        debug_assert!(p.done[i] == Slot::Pending, "LSN {lsn} published twice");
        p.done[i] = if strict { Slot::Strict } else { Slot::Done };
        // Read under the lock: the log thread stores the durable LSN before it takes this lock
        // in `durable_advanced`, so either it sees this slot or this load sees its store.
        self.advance(&mut p, durable.load(Ordering::Acquire));
    }

    /// The durable LSN advanced to `durable`: Strict commits up to it may become visible.
    pub(crate) fn durable_advanced(&self, durable: Lsn) {
        let mut p = self.inner.lock();
        self.advance(&mut p, durable);
    }

    fn advance(&self, p: &mut Pending, durable: Lsn) {
        let mut visible = p.visible;
        loop {
            match p.done.front() {
                Some(Slot::Done) => {}
                Some(Slot::Strict) if visible < durable => {}
                _ => break,
            }
            p.done.pop_front();
            visible += 1;
        }
        if visible > p.visible {
            self.set_visible(p, visible);
        }
    }

    /// Makes everything up to `visible` visible and wakes the waiters. Under the lock.
    fn set_visible(&self, p: &mut Pending, visible: Lsn) {
        assert!(visible > p.visible, "the visible LSN only rises");
        p.visible = visible;
        // Every store to `self.visible` happens under the lock, after the versions of every
        // LSN up to it were inserted: Release publishes them to readers' Acquire loads.
        debug_assert!(self.visible.load(Ordering::Relaxed) < visible);
        self.visible.store(visible, Ordering::Release);
        if p.waiters > 0 {
            self.cv.notify_all();
        }
    }

    /// Waits until `lsn` is visible. Returns false if the wait was stopped first
    /// ([`Visibility::stop`]) while `lsn` was above the `durable` LSN. At or below it the wait
    /// goes on after a stop: every commit up to a durable LSN has its records in the log and is
    /// published by its committer (Strict slots there pass at once), so `lsn` becomes visible —
    /// a commit whose round was durable before a later round failed is answered as committed,
    /// not `Poisoned` (a review found it answered `Poisoned` while it waited behind an earlier
    /// commit still inserting into the index, then visible and recovered).
    pub(crate) fn wait(&self, lsn: Lsn, durable: &AtomicU64, will_block: impl Fn()) -> bool {
        if self.get() >= lsn {
            return true;
        }
        let mut p = self.inner.lock();
        p.waiters += 1;
        while p.visible < lsn && !(p.stopped && lsn > durable.load(Ordering::Acquire)) {
            will_block();
            self.cv.wait(&mut p);
        }
        p.waiters -= 1;
        p.visible >= lsn
    }

    /// Waits until `lsn` is visible, at most `timeout`; true if it is.
    pub(crate) fn wait_for(&self, lsn: Lsn, timeout: std::time::Duration) -> bool {
        if self.get() >= lsn {
            return true;
        }
        let mut p = self.inner.lock();
        // LSNs up to `skip` were never assigned in this run: nothing is to be waited for there.
        if p.visible < lsn && lsn > p.skip && !p.stopped {
            p.waiters += 1;
            self.cv.wait_for(&mut p, timeout);
            p.waiters -= 1;
        }
        p.visible >= lsn || lsn <= p.skip
    }

    /// The highest LSN this run did not assign: LSNs below the first one it hands out.
    pub(crate) fn skipped(&self) -> Lsn {
        self.inner.lock().skip
    }

    /// Wakes every waiter for good: the database is poisoned (a Strict commit that failed to
    /// become durable is never published, so nothing after it becomes visible) or closed.
    pub(crate) fn stop(&self) {
        let mut p = self.inner.lock();
        p.stopped = true;
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_advances_over_the_contiguous_prefix() {
        let v = Visibility::new(7, 11);
        assert_eq!(v.get(), 7);
        // 8..=10 were never assigned: they pass with the first LSN published after them.
        v.publish(12, false, &AtomicU64::new(0));
        assert_eq!(v.get(), 7, "11 is not published yet");
        v.publish(13, false, &AtomicU64::new(0));
        assert_eq!(v.get(), 7);
        v.publish(11, false, &AtomicU64::new(0));
        assert_eq!(v.get(), 13);
        assert!(v.wait(13, &AtomicU64::new(0), || {}));
        assert!(!v.wait_for(14, std::time::Duration::from_millis(1)));
        v.stop();
        assert!(!v.wait(14, &AtomicU64::new(13), || {}));
    }

    #[test]
    fn strict_commits_wait_for_the_durable_lsn() {
        let v = Visibility::new(0, 1);
        v.publish(1, true, &AtomicU64::new(0));
        v.publish(2, false, &AtomicU64::new(0));
        assert_eq!(v.get(), 0, "the Strict commit is not durable");
        v.durable_advanced(1);
        assert_eq!(
            v.get(),
            2,
            "durable: it and the commit after it are visible"
        );
        v.publish(3, true, &AtomicU64::new(3));
        assert_eq!(v.get(), 3, "already durable when published");
    }

    #[test]
    #[should_panic(expected = "published twice")]
    fn publishing_twice_is_a_bug() {
        let v = Visibility::new(0, 1);
        v.publish(1, false, &AtomicU64::new(0));
        v.publish(1, false, &AtomicU64::new(0));
    }
}
