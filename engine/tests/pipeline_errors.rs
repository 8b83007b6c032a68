//! Rounds in flight: a round whose submission fails fails only itself and what follows it —
//! the rounds before it, in flight, still complete and are published (docs/DURABILITY.md §2).
//! A review found a failed `submit` poisoning the database at once: the commit of the round
//! before it, which became durable, was answered `Poisoned`.

mod common;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::*;
use ringlog_db::io::{
    BlockReason, Completion, LogDriver, Submission, SyncStrategy, VFile, Vfs, Waker,
};
use ringlog_db::{Durability, Error, IoChoice};

/// (the second committer is parked for its round, submissions so far)
#[derive(Default)]
struct Ctl {
    st: Mutex<(bool, usize)>,
    cv: Condvar,
}

struct FailSecondSubmit {
    ctl: Arc<Ctl>,
}

struct Driver {
    inner: Box<dyn LogDriver>,
    ctl: Arc<Ctl>,
    submits: AtomicUsize,
    held: bool,
}

impl Hooks for FailSecondSubmit {
    // No committer leads its own round: every round goes through the log thread's driver.
    fn writes_here(&self, _: &dyn Vfs) -> bool {
        false
    }
    fn will_block(&self, inner: &dyn Vfs, why: BlockReason) {
        if why == BlockReason::CommitDurable && std::thread::current().name() == Some("second") {
            self.ctl.st.lock().unwrap().0 = true;
            self.ctl.cv.notify_all();
        }
        inner.will_block(why)
    }
    fn log_driver(&self, inner: &dyn Vfs) -> io::Result<Box<dyn LogDriver>> {
        Ok(Box::new(Driver {
            inner: inner.log_driver()?,
            ctl: self.ctl.clone(),
            submits: AtomicUsize::new(0),
            held: false,
        }))
    }
}

impl LogDriver for Driver {
    fn write_durable(
        &mut self,
        f: &dyn VFile,
        o: u64,
        b: &[u8],
        s: SyncStrategy,
    ) -> io::Result<()> {
        self.inner.write_durable(f, o, b, s)
    }
    fn wait(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.inner.wait(t)
    }
    fn waker(&self) -> Arc<dyn Waker> {
        self.inner.waker()
    }
    fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight()
    }
    fn submit(&mut self, s: Submission) -> io::Result<()> {
        let n = self.submits.fetch_add(1, Ordering::SeqCst) + 1;
        self.ctl.st.lock().unwrap().1 = n;
        self.ctl.cv.notify_all();
        if n == 2 {
            return Err(io::Error::other("the second submission fails (test)"));
        }
        self.inner.submit(s)
    }
    fn complete(&mut self, done: &mut Vec<Completion>, t: Option<Duration>) -> io::Result<()> {
        if !self.held {
            // Round 1's completion waits until the second committer is parked; then this wait
            // returns with nothing completed (as a wake does), and round 2 is submitted behind
            // round 1.
            self.held = true;
            let mut s = self.ctl.st.lock().unwrap();
            while !s.0 {
                s = self.ctl.cv.wait(s).unwrap();
            }
            return Ok(());
        }
        self.inner.complete(done, t)
    }
}

#[test]
fn a_failed_submission_fails_only_its_round_and_those_after() {
    let dir = tempdir();
    let ctl = Arc::new(Ctl::default());
    let vfs = Hooked::new(
        real_vfs(IoChoice::Uring),
        FailSecondSubmit { ctl: ctl.clone() },
    );
    let o = opts(IoChoice::Uring, Durability::Strict)
        .direct_io(true)
        .rounds_in_flight(2)
        .vfs(vfs);
    let db = Arc::new(open(dir.path(), o));
    let first = {
        let db = db.clone();
        std::thread::spawn(move || db.put(b"a", b"1"))
    };
    // Round 1 (the first commit's) is submitted; then the second commit.
    {
        let mut s = ctl.st.lock().unwrap();
        while s.1 < 1 {
            s = ctl.cv.wait(s).unwrap();
        }
    }
    let second = {
        let db = db.clone();
        std::thread::Builder::new()
            .name("second".into())
            .spawn(move || db.put(b"b", b"2"))
            .unwrap()
    };
    let first = first.join().unwrap();
    let second = second.join().unwrap();
    assert!(
        matches!(second, Err(Error::Poisoned(_))),
        "round 2's submission failed: {second:?}"
    );
    assert!(
        first.is_ok(),
        "round 1 was in flight before round 2 failed and completed durable: {first:?}"
    );
    drop(db);
    let db = open(dir.path(), opts(IoChoice::Uring, Durability::Strict));
    assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    db.close().unwrap();
}
