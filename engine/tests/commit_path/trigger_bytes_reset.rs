//! Mutation audit of session 36, gap 23 (`wal/thread.rs`, `take_round`): a commit's `Buffered` override
//! with a small `max_pending` forces a round; once that round is taken, the pending limit goes
//! back to what the next commits ask for. Leaving the override's limit in place (not resetting
//! `trigger_bytes` at the take) failed no test: every later `Buffered` commit of the database's
//! own mode (no pending limit here) was then synced at once, one round each.
//!
//! Determinism: the log driver's sleeps and wakes are the test's own (a condition variable), so
//! the test knows when the log thread has decided with the later commit pending, and counts the
//! durable writes up to then. No sleep races a thread.

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
fn a_max_pending_override_does_not_outlive_its_round() {
    on_each_path(|io| {
        let dir = tempdir();
        let ctl = Arc::new(Ctl::default());
        // The database's mode: an hour, no pending limit.
        let o = opts(io, buffered_forever(usize::MAX))
            .checkpoint_bytes(u64::MAX)
            .vfs(Hooked::new(real_vfs(io), CtlHooks(ctl.clone())));
        let db = open(dir.path(), o);
        // The run's first commit waits for its lease sync.
        db.put(b"warm-up", b"x").unwrap();
        let writes = ctl.st.lock().unwrap().writes;
        assert_eq!(writes, 1);
        // An override whose pending limit its own commit reaches: a round at once.
        let eager = Durability::Buffered {
            interval: Duration::from_secs(3600),
            max_pending: 1,
        };
        let mut tx = db.begin();
        tx.put(b"eager", b"1").unwrap();
        let e = tx.commit_with(eager).unwrap();
        ctl.wait_until("the override's round", |s| s.writes == 2);
        eventually("it is durable", LIVENESS, || db.durable_lsn() >= e);
        // A commit of the database's own mode: nothing to sync before the hour is up.
        let lazy = db.put(b"lazy", b"2").unwrap();
        // Asleep in a wait entered after that commit's append: it has decided.
        ctl.wait_until("the log thread sleeps after the lazy commit", |s| {
            s.in_wait && !s.woken
        });
        let writes = ctl.st.lock().unwrap().writes;
        assert_eq!(
            writes, 2,
            "{io:?}: a commit without a pending limit was synced: the earlier override's \
             max_pending outlived its round"
        );
        assert!(db.durable_lsn() < lazy, "{io:?}");
        db.close().unwrap();
    });
}
