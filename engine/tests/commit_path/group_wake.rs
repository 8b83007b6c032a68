//! Mutation audit of session 36, gap 04 (`wal/mod.rs`, `Shared::request_sync`): after a round of several
//! commits the log thread gathers the next group (until as many commits are pending, or the
//! gathering's end); the `Strict` commit that completes the group must wake it, so the group's
//! round starts at once. Changing the check `pending_commits >= target` to `>` failed no test: on
//! the real clock the log thread then waits out the gathering (up to one round's latency, at
//! most `MAX_GATHER`) on every group — a latency cost no test measures.
//!
//! Here the disk's clock (`Vfs::now`) advances only while a durable write runs (half a
//! millisecond per write), so the gathering's end never comes while the log thread sleeps, and
//! the driver's sleeps end only by a wake (a timeout means nothing on a clock that stands
//! still). The test counts the wakes the completing commit issues — synchronously, before it
//! blocks for its sync. Committers never lead their own rounds (`writes_here` false).
//! Determinism: every step waits on a condition; time bounds are only liveness guards.

use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use ringlog_db::io::{BlockReason, LogDriver, SyncStrategy, VFile, Vfs, Waker};
use ringlog_db::Durability;

const LIVENESS: Duration = Duration::from_secs(10);
/// What one durable write takes on the test's clock.
const WRITE_TAKES: Duration = Duration::from_micros(500);

struct Ctl {
    st: Mutex<CtlState>,
    cv: Condvar,
    /// The clock's origin.
    base: Instant,
}

#[derive(Default)]
struct CtlState {
    /// The clock: time since `base`.
    elapsed: Duration,
    in_wait: bool,
    woken: bool,
    wakes: usize,
    /// Durable writes started so far, and the write numbers to hold until released.
    writes: usize,
    hold: Vec<usize>,
    holding: Option<usize>,
    /// Names of the threads blocked waiting for their commit's sync.
    durable_waits: Vec<String>,
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
    fn update(&self, f: impl FnOnce(&mut CtlState)) {
        f(&mut self.st.lock().unwrap());
        self.cv.notify_all();
    }
}

struct CtlWaker(Arc<Ctl>);

impl Waker for CtlWaker {
    fn wake(&self) {
        self.0.update(|s| {
            s.woken = true;
            s.wakes += 1;
        });
    }
}

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
        {
            let mut s = self.ctl.st.lock().unwrap();
            s.writes += 1;
            let n = s.writes;
            if s.hold.contains(&n) {
                s.holding = Some(n);
                self.ctl.cv.notify_all();
                while s.hold.contains(&n) {
                    s = self.ctl.cv.wait(s).unwrap();
                }
                s.holding = None;
            }
            s.elapsed += WRITE_TAKES;
            self.ctl.cv.notify_all();
        }
        self.inner.write_durable(file, offset, buf, strategy)
    }
    /// Only a wake ends a sleep: the clock stands still meanwhile, so no timeout is ever due.
    fn wait(&mut self, _timeout: Option<Duration>) -> io::Result<()> {
        let mut s = self.ctl.st.lock().unwrap();
        s.in_wait = true;
        self.ctl.cv.notify_all();
        while !s.woken {
            s = self.ctl.cv.wait(s).unwrap();
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
    fn writes_here(&self, _: &dyn Vfs) -> bool {
        false
    }
    fn now(&self, _: &dyn Vfs) -> Instant {
        self.0.base + self.0.st.lock().unwrap().elapsed
    }
    fn will_block(&self, inner: &dyn Vfs, why: BlockReason) {
        if why == BlockReason::CommitDurable {
            if let Some(name) = std::thread::current().name() {
                let name = name.to_string();
                self.0.update(|s| s.durable_waits.push(name));
            }
        }
        inner.will_block(why)
    }
    fn log_driver(&self, inner: &dyn Vfs) -> io::Result<Box<dyn LogDriver>> {
        Ok(Box::new(CtlDriver {
            inner: inner.log_driver()?,
            ctl: self.0.clone(),
        }))
    }
}

fn blocked(ctl: &Ctl, name: &str) {
    ctl.wait_until("the committer waits for its round", |s| {
        s.durable_waits.iter().any(|n| n == name)
    });
}

#[test]
fn the_commit_completing_a_gathered_group_wakes_the_log_thread() {
    on_each_path(|io| {
        let dir = tempdir();
        let ctl = Arc::new(Ctl {
            st: Mutex::new(CtlState::default()),
            cv: Condvar::new(),
            base: Instant::now(),
        });
        let o = opts(io, Durability::Strict)
            .checkpoint_bytes(u64::MAX)
            .vfs(Hooked::new(real_vfs(io), CtlHooks(ctl.clone())));
        let db = Arc::new(open(dir.path(), o));
        // Round 1: the lease warm-up.
        db.put(b"warm-up", b"x").unwrap();
        // Round 2 (c0) held while c1 and c2 append: round 3 carries both, and the log thread
        // then gathers a group of two.
        ctl.update(|s| s.hold = vec![2]);
        let c0 = crate::put_on_thread(&db, "c0");
        ctl.wait_until("round 2 is held", |s| s.holding == Some(2));
        let c1 = crate::put_on_thread(&db, "c1");
        blocked(&ctl, "c1");
        let c2 = crate::put_on_thread(&db, "c2");
        blocked(&ctl, "c2");
        ctl.update(|s| s.hold.clear());
        for c in [c0, c1, c2] {
            c.recv_timeout(LIVENESS).expect("answered").unwrap();
        }
        let writes = ctl.st.lock().unwrap().writes;
        assert_eq!(writes, 3, "{io:?}: c1 and c2 in one round");
        // c3: one of the group of two; the log thread gathers, asleep in a wait it entered
        // after c3's append.
        let c3 = crate::put_on_thread(&db, "c3");
        blocked(&ctl, "c3");
        ctl.wait_until("the log thread gathers", |s| s.in_wait && !s.woken);
        let writes = ctl.st.lock().unwrap().writes;
        assert_eq!(writes, 3, "{io:?}: c3 alone is not written yet");
        // c4 completes the group: it must wake the log thread before it blocks.
        let wakes = ctl.st.lock().unwrap().wakes;
        let c4 = crate::put_on_thread(&db, "c4");
        blocked(&ctl, "c4");
        let woke = ctl.st.lock().unwrap().wakes > wakes;
        if !woke {
            // Let the test end: a close wakes the log thread.
            let _ = db.close();
        }
        assert!(
            woke,
            "{io:?}: the commit completing the gathered group did not wake the log thread"
        );
        let c3 = c3.recv_timeout(LIVENESS).expect("answered").unwrap();
        let c4 = c4.recv_timeout(LIVENESS).expect("answered").unwrap();
        assert!(db.durable_lsn() >= c3.max(c4));
        let writes = ctl.st.lock().unwrap().writes;
        assert_eq!(writes, 4, "{io:?}: c3 and c4 in one round");
        db.close().unwrap();
    });
}
