//! Mutation audit of session 36, gap 12 (`wal/pipeline.rs`, `run_rounds`): with rounds in flight, the log
//! thread never has more than `rounds_in_flight` of them submitted at once (and never more than
//! its driver's `max_in_flight`: `LogDriver::submit` is "called with fewer than max_in_flight
//! submissions in flight"). Changing `flight.len() < depth` to `<=` failed no test.
//!
//! The driver here writes each submission at once (synchronously, through the real driver) and
//! holds its completion until the test lets completions through, and its sleeps and wakes are the
//! test's own: three `Strict` committers arrive one by one, the first two rounds are submitted,
//! and the test checks, once the log thread has decided with the third commit pending, that it
//! did not submit a third round. Committers never lead their own rounds (`writes_here` false).
//! Determinism: every step waits on a condition; the time bound is only a liveness guard.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use ringlog_db::io::{
    BlockReason, Completion, LogDriver, Submission, SyncStrategy, VFile, Vfs, Waker,
};
use ringlog_db::Durability;

const LIVENESS: Duration = Duration::from_secs(10);
const DEPTH: usize = 2;

#[derive(Default)]
struct Ctl {
    st: Mutex<CtlState>,
    cv: Condvar,
}

#[derive(Default)]
struct CtlState {
    /// The log thread is inside `LogDriver::complete` (or `wait`).
    in_wait: bool,
    /// A wake the log thread has not consumed yet.
    woken: bool,
    /// Submissions so far, and the most in flight at once.
    submits: usize,
    in_flight: usize,
    max_in_flight: usize,
    /// Written submissions whose completions are held.
    done: VecDeque<Completion>,
    /// Completions are let through.
    release: bool,
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
        self.0.update(|s| s.woken = true);
    }
}

struct PipeDriver {
    inner: Box<dyn LogDriver>,
    ctl: Arc<Ctl>,
}

impl PipeDriver {
    /// Sleeps until woken, a completion may be returned, or `timeout`.
    fn sleep(&self, timeout: Option<Duration>, done: Option<&mut Vec<Completion>>) {
        let until = timeout.map(|t| Instant::now() + t);
        let mut s = self.ctl.st.lock().unwrap();
        s.in_wait = true;
        self.ctl.cv.notify_all();
        let ready = |s: &CtlState| s.woken || (s.release && !s.done.is_empty());
        while !ready(&s) {
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
        if let Some(done) = done {
            if s.release {
                let n = s.done.len();
                s.in_flight -= n;
                done.extend(s.done.drain(..));
            }
        }
        self.ctl.cv.notify_all();
    }
}

impl LogDriver for PipeDriver {
    fn write_durable(
        &mut self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        self.inner.write_durable(file, offset, buf, strategy)
    }
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.sleep(timeout, None);
        Ok(())
    }
    fn waker(&self) -> Arc<dyn Waker> {
        Arc::new(CtlWaker(self.ctl.clone()))
    }
    fn max_in_flight(&self) -> usize {
        DEPTH
    }
    fn submit(&mut self, s: Submission) -> io::Result<()> {
        let result = self
            .inner
            .write_durable(&*s.file, s.offset, s.buf.as_slice(), s.strategy);
        self.ctl.update(|c| {
            c.submits += 1;
            c.in_flight += 1;
            c.max_in_flight = c.max_in_flight.max(c.in_flight);
            c.done.push_back(Completion {
                token: s.token,
                buf: s.buf,
                result,
            });
        });
        Ok(())
    }
    fn complete(
        &mut self,
        done: &mut Vec<Completion>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.sleep(timeout, Some(done));
        Ok(())
    }
}

struct CtlHooks(Arc<Ctl>);

impl Hooks for CtlHooks {
    fn writes_here(&self, _: &dyn Vfs) -> bool {
        false
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
        Ok(Box::new(PipeDriver {
            inner: inner.log_driver()?,
            ctl: self.0.clone(),
        }))
    }
}

#[test]
fn the_log_thread_keeps_at_most_rounds_in_flight_submitted() {
    on_each_path(|io| {
        let dir = tempdir();
        let ctl = Arc::new(Ctl::default());
        let o = opts(io, Durability::Strict)
            .direct_io(true)
            .rounds_in_flight(DEPTH)
            .checkpoint_bytes(u64::MAX)
            .vfs(Hooked::new(real_vfs(io), CtlHooks(ctl.clone())));
        let db = Arc::new(open(dir.path(), o));
        // The lease warm-up, completions let through.
        ctl.update(|s| s.release = true);
        db.put(b"warm-up", b"x").unwrap();
        ctl.wait_until("the warm-up round completed", |s| s.in_flight == 0);
        let base = ctl.st.lock().unwrap().submits;
        assert!(
            base >= 1,
            "{io:?}: rounds go through submit (rounds in flight)"
        );
        // From here on completions are held.
        ctl.update(|s| s.release = false);
        let mut answers = Vec::new();
        for (i, name) in ["c1", "c2", "c3"].into_iter().enumerate() {
            answers.push(crate::put_on_thread(&db, name));
            ctl.wait_until("the committer waits for its round", |s| {
                s.durable_waits.iter().any(|n| n == name)
            });
            if i < DEPTH {
                ctl.wait_until("its round is submitted", |s| s.submits == base + i + 1);
            }
            // The log thread is asleep in a wait it entered after this commit's append (a wait
            // entered before it was ended by the commit's wake, consumed before it decides
            // again): it decided with this commit pending.
            ctl.wait_until("the log thread waits", |s| s.in_wait && !s.woken);
        }
        let (submits, max) = {
            let s = ctl.st.lock().unwrap();
            (s.submits - base, s.max_in_flight)
        };
        ctl.update(|s| s.release = true);
        assert!(
            submits == DEPTH && max <= DEPTH,
            "{io:?}: {submits} rounds submitted, {max} in flight at once, with rounds_in_flight \
             {DEPTH}"
        );
        for a in answers {
            a.recv_timeout(LIVENESS).expect("answered").unwrap();
        }
        db.close().unwrap();
    });
}
