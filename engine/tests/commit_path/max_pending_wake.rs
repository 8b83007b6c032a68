//! Mutation audit of session 36, gap 02 (`wal/mod.rs`, `Shared::note_buffered`): a Buffered commit that
//! brings the pending bytes exactly to `max_pending` must wake a log thread asleep until the
//! Buffered deadline, so that the round `max_pending` forces is written now, not at the deadline
//! (an hour here). `buffered_max_pending_triggers_a_sync` only crosses the limit with commits that
//! find the log thread awake or overshoot it; changing `>=` to `>` in the wake check (or in
//! `policy::next`'s trigger) failed no test.
//!
//! Determinism: the log driver's sleeps and wakes are the test's own (a condition variable), so
//! the test knows when the log thread sleeps having seen the first commit, and counts the wakes
//! the second commit issues, synchronously, before it returns. No sleep races a thread; the
//! only time bound is a liveness guard on the forced round.

use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use ringlog_db::io::{LogDriver, SyncStrategy, VFile, Vfs, Waker};
use ringlog_db::Durability;

/// Upper bound of liveness waits: only a hang reaches it.
const LIVENESS: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Ctl {
    st: Mutex<CtlState>,
    cv: Condvar,
}

#[derive(Default)]
struct CtlState {
    /// The log thread is inside `LogDriver::wait`.
    in_wait: bool,
    /// A wake arrived that the log thread has not consumed yet.
    woken: bool,
    /// Wakes issued so far.
    wakes: usize,
    /// Durable writes completed so far.
    writes: usize,
}

impl Ctl {
    fn wait_until(&self, what: &str, cond: impl Fn(&CtlState) -> bool) {
        let start = Instant::now();
        let mut s = self.st.lock().unwrap();
        while !cond(&s) {
            let Some(left) = LIVENESS.checked_sub(start.elapsed()) else {
                // Not holding the lock: the engine's threads go on using it.
                drop(s);
                panic!("{what}: not after {LIVENESS:?} (hang?)");
            };
            s = self.cv.wait_timeout(s, left).unwrap().0;
        }
    }
}

struct CtlWaker(Arc<Ctl>);

impl Waker for CtlWaker {
    fn wake(&self) {
        let mut s = self.0.st.lock().unwrap();
        s.woken = true;
        s.wakes += 1;
        self.0.cv.notify_all();
    }
}

/// A real driver's durable writes; sleeps and wakes of the test's own.
struct CtlDriver {
    inner: Box<dyn LogDriver>,
    ctl: Arc<Ctl>,
}

impl LogDriver for CtlDriver {
    fn write_durable(
        &mut self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        let r = self.inner.write_durable(file, offset, buf, strategy);
        self.ctl.st.lock().unwrap().writes += 1;
        self.ctl.cv.notify_all();
        r
    }
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let until = timeout.map(|t| Instant::now() + t);
        let mut s = self.ctl.st.lock().unwrap();
        s.in_wait = true;
        self.ctl.cv.notify_all();
        while !s.woken {
            match until {
                None => s = self.ctl.cv.wait(s).unwrap(),
                Some(u) => {
                    let now = Instant::now();
                    if now >= u {
                        break;
                    }
                    s = self.ctl.cv.wait_timeout(s, u - now).unwrap().0;
                }
            }
        }
        s.woken = false;
        s.in_wait = false;
        self.ctl.cv.notify_all();
        Ok(())
    }
    fn waker(&self) -> Arc<dyn Waker> {
        Arc::new(CtlWaker(self.ctl.clone()))
    }
}

struct CtlHooks(Arc<Ctl>);

impl Hooks for CtlHooks {
    fn log_driver(&self, inner: &dyn Vfs) -> io::Result<Box<dyn LogDriver>> {
        Ok(Box::new(CtlDriver {
            inner: inner.log_driver()?,
            ctl: self.0.clone(),
        }))
    }
}

#[test]
fn a_commit_reaching_max_pending_exactly_wakes_the_sleeping_log_thread() {
    on_each_path(|io| {
        let dir = tempdir();
        let ctl = Arc::new(Ctl::default());
        let value = [7u8; 100];
        // Two one-record commits of a one-byte key reach it exactly.
        let per_commit = ringlog_format::encoded_len(1, value.len());
        let mode = Durability::Buffered {
            interval: Duration::from_secs(3600),
            max_pending: 2 * per_commit,
        };
        let o = opts(io, mode)
            .checkpoint_bytes(u64::MAX)
            .vfs(Hooked::new(real_vfs(io), CtlHooks(ctl.clone())));
        let db = open(dir.path(), o);
        // The run's first commit waits for its lease sync; nothing is pending after it.
        let first = db.put(b"warm-up", b"x").unwrap();
        assert!(db.durable_lsn() >= first);
        assert_eq!(db.stats().syncs, 1);
        // One commit pending: under the limit, the log thread sleeps until the deadline.
        let a = db.put(b"a", &value).unwrap();
        // Asleep in a wait it entered after this commit's append (a wait entered before it
        // was ended by the commit's wake, which the log thread consumes before it decides
        // again): it decided with exactly one commit pending.
        ctl.wait_until("the log thread sleeps with one commit pending", |s| {
            s.in_wait && !s.woken
        });
        assert_eq!(
            db.stats().syncs,
            1,
            "{io:?}: one commit is under max_pending"
        );
        let wakes = ctl.st.lock().unwrap().wakes;
        // The second commit brings the pending bytes to max_pending exactly.
        let b = db.put(b"b", &value).unwrap();
        assert!(a < b);
        let woke = ctl.st.lock().unwrap().wakes > wakes;
        assert!(
            woke,
            "{io:?}: the commit reaching max_pending did not wake the sleeping log thread \
             (its round would wait for the hour-long deadline)"
        );
        ctl.wait_until("the round max_pending forces", |s| s.writes >= 2);
        // Published once the write returned.
        eventually("the forced round is published", LIVENESS, || {
            db.durable_lsn() >= b
        });
        db.close().unwrap();
    });
}
