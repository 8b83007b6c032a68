//! Mutation audit of session 36, gap 08 (`wal/thread.rs`, `publish`): a round (take) split by a segment
//! rotation is written batch by batch; once its first batch is durable, the `Strict` committers
//! whose records it carried are woken and acknowledged, not held until the take's last batch (in
//! the next segment) is durable too. Removing that early wake failed no test: every committer
//! was still answered, only later.
//!
//! Setup: committers never lead their own rounds (`writes_here` false), so every round is the
//! log thread's, through a driver that can hold its n-th durable write. While round 2 is held,
//! C1 appends a small record (it fits in the segment) and C2 one as large as a value can be (it
//! does not: it starts the next segment); both are in the same take. Round 3's first batch
//! (C1's) is written, then its second batch (C2's, in the new segment) is held: C1 must return
//! while it is. Determinism: every step waits on a condition (a write held, a committer blocked
//! in its durable wait); the only time bound is the liveness guard on C1's answer.

use std::io;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use crate::common::*;
use ringlog_db::io::{BlockReason, LogDriver, SyncStrategy, VFile, Vfs, Waker};
use ringlog_db::{Db, Durability, Lsn};

const LIVENESS: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Gate {
    st: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Default)]
struct GateState {
    /// Durable writes started so far (1-based numbers).
    writes: usize,
    /// The write numbers to hold until released.
    hold: Vec<usize>,
    /// The write number being held, if any.
    holding: Option<usize>,
    /// Names of the threads blocked waiting for their commit's sync.
    durable_waits: Vec<String>,
}

impl Gate {
    fn wait_until(&self, cond: impl Fn(&GateState) -> bool) {
        let mut s = self.st.lock().unwrap();
        while !cond(&s) {
            s = self.cv.wait(s).unwrap();
        }
    }
    fn release(&self, n: usize) {
        let mut s = self.st.lock().unwrap();
        s.hold.retain(|&h| h != n);
        self.cv.notify_all();
    }
}

struct GateDriver {
    inner: Box<dyn LogDriver>,
    gate: Arc<Gate>,
}

impl LogDriver for GateDriver {
    fn write_durable(
        &mut self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        {
            let mut s = self.gate.st.lock().unwrap();
            s.writes += 1;
            let n = s.writes;
            if s.hold.contains(&n) {
                s.holding = Some(n);
                self.gate.cv.notify_all();
                while s.hold.contains(&n) {
                    s = self.gate.cv.wait(s).unwrap();
                }
                s.holding = None;
                self.gate.cv.notify_all();
            }
        }
        self.inner.write_durable(file, offset, buf, strategy)
    }
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.wait(timeout)
    }
    fn waker(&self) -> Arc<dyn Waker> {
        self.inner.waker()
    }
}

struct GateHooks(Arc<Gate>);

impl Hooks for GateHooks {
    // Every round is the log thread's: no committer writes its own.
    fn writes_here(&self, _: &dyn Vfs) -> bool {
        false
    }
    fn will_block(&self, inner: &dyn Vfs, why: BlockReason) {
        if why == BlockReason::CommitDurable {
            if let Some(name) = std::thread::current().name() {
                self.0
                    .st
                    .lock()
                    .unwrap()
                    .durable_waits
                    .push(name.to_string());
                self.0.cv.notify_all();
            }
        }
        inner.will_block(why)
    }
    fn log_driver(&self, inner: &dyn Vfs) -> io::Result<Box<dyn LogDriver>> {
        Ok(Box::new(GateDriver {
            inner: inner.log_driver()?,
            gate: self.0.clone(),
        }))
    }
}

fn committer(
    db: &Arc<Db>,
    name: &str,
    key: &'static [u8],
    value: Vec<u8>,
) -> mpsc::Receiver<ringlog_db::Result<Lsn>> {
    let (tx, rx) = mpsc::channel();
    let db = db.clone();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = tx.send(db.put(key, &value));
        })
        .unwrap();
    rx
}

#[test]
fn a_committer_of_a_rotation_split_round_is_answered_once_its_batch_is_durable() {
    on_each_path(|io| {
        let dir = tempdir();
        let gate = Arc::new(Gate::default());
        let o = opts(io, Durability::Strict)
            .checkpoint_bytes(u64::MAX)
            .vfs(Hooked::new(real_vfs(io), GateHooks(gate.clone())));
        let db = Arc::new(open(dir.path(), o));
        // Round 1: the lease warm-up.
        db.put(b"warm-up", b"x").unwrap();
        let writes = gate.st.lock().unwrap().writes;
        assert_eq!(writes, 1);
        // Round 2 held.
        gate.st.lock().unwrap().hold = vec![2, 4];
        let c0 = committer(&db, "c0", b"c0", b"0".to_vec());
        gate.wait_until(|s| s.holding == Some(2));
        // C1: a small record, in this segment.
        let c1 = committer(&db, "c1", b"c1", b"1".to_vec());
        gate.wait_until(|s| s.durable_waits.iter().any(|n| n == "c1"));
        // C2: the largest value a record may hold, which starts the next segment.
        let big = vec![2u8; db.max_value_len(2)];
        let c2 = committer(&db, "c2", b"c2", big);
        gate.wait_until(|s| s.durable_waits.iter().any(|n| n == "c2"));
        let segments_before = db.stats().segments_created;
        // Round 3: C1's batch (write 3), then C2's in the new segment (write 4, held).
        gate.release(2);
        gate.wait_until(|s| s.holding == Some(4));
        assert_eq!(
            db.stats().segments_created,
            segments_before + 1,
            "{io:?}: C2's record started a segment"
        );
        let c0 = c0.recv_timeout(LIVENESS).expect("round 2 is durable");
        let answered = c1.recv_timeout(LIVENESS);
        // Let the held write go whatever the outcome, so that nothing is left waiting.
        gate.release(4);
        let c1 = answered.unwrap_or_else(|_| {
            panic!(
                "{io:?}: C1's batch is durable, but C1 was not answered while the rest of its \
                 round (the next segment's batch) was held"
            )
        });
        let c1 = c1.unwrap();
        let c2 = c2
            .recv_timeout(LIVENESS)
            .expect("round 3 completes")
            .unwrap();
        let c0 = c0.unwrap();
        assert!(c0 < c1 && c1 < c2);
        assert!(db.durable_lsn() >= c2);
        db.close().unwrap();
    });
}
