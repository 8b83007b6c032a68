//! Mutation audit of session 36, gap 18 (`wal/mod.rs`, `Shared::poison`): a poison stops the visibility
//! waits (`Visibility::stop`). A `Buffered` commit whose LSN follows a `Strict` commit's that
//! then fails to become durable is never made visible (the failed commit never is, and
//! visibility advances in LSN order); without the stop, that committer — it does not wait for
//! durability, only to read its own write — waits forever instead of answering `Poisoned`.
//! Removing the stop failed no test: the poison tests' later committers are `Strict` and are
//! released from their durable wait, before they reach the visibility wait.
//!
//! Determinism: the `Strict` commit's round is held at a gate until the `Buffered` committer
//! blocks in its visibility wait (`Vfs::will_block`), then fails with EIO. Committers never lead
//! their own rounds (`writes_here` false). The time bound is only a liveness guard.

use std::io;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use crate::common::*;
use ringlog_db::io::{BlockReason, LogDriver, SyncStrategy, VFile, Vfs, Waker};
use ringlog_db::{Db, Durability, Error, Lsn};

const LIVENESS: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Gate {
    st: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Default)]
struct GateState {
    /// The next durable write waits at the gate, then fails.
    armed: bool,
    holding: bool,
    released: bool,
    /// (thread name, why) of every blocking wait of a named thread.
    blocked: Vec<(String, BlockReason)>,
}

impl Gate {
    fn wait_until(&self, cond: impl Fn(&GateState) -> bool) {
        let mut s = self.st.lock().unwrap();
        while !cond(&s) {
            s = self.cv.wait(s).unwrap();
        }
    }
    fn update(&self, f: impl FnOnce(&mut GateState)) {
        f(&mut self.st.lock().unwrap());
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
        let armed = std::mem::take(&mut self.gate.st.lock().unwrap().armed);
        if !armed {
            return self.inner.write_durable(file, offset, buf, strategy);
        }
        self.gate.update(|s| s.holding = true);
        self.gate.wait_until(|s| s.released);
        // Nothing written: the round never reaches the disk.
        Err(io::Error::from_raw_os_error(libc::EIO))
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
    fn writes_here(&self, _: &dyn Vfs) -> bool {
        false
    }
    fn will_block(&self, inner: &dyn Vfs, why: BlockReason) {
        if let Some(name) = std::thread::current().name() {
            let name = name.to_string();
            self.0.update(|s| s.blocked.push((name, why)));
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
    mode: Durability,
) -> mpsc::Receiver<ringlog_db::Result<Lsn>> {
    let (tx, rx) = mpsc::channel();
    let db = db.clone();
    let key = name.as_bytes().to_vec();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut t = db.begin();
            t.put(&key, b"v").unwrap();
            let _ = tx.send(t.commit_with(mode));
        })
        .unwrap();
    rx
}

#[test]
fn a_buffered_commit_behind_a_failed_strict_one_is_answered_poisoned() {
    on_each_path(|io| {
        let dir = tempdir();
        let gate = Arc::new(Gate::default());
        let o = opts(io, Durability::Strict)
            .checkpoint_bytes(u64::MAX)
            .vfs(Hooked::new(real_vfs(io), GateHooks(gate.clone())));
        let db = Arc::new(open(dir.path(), o));
        // The run's lease is durable: later Buffered commits wait for no sync.
        db.put(b"warm-up", b"x").unwrap();
        gate.update(|s| s.armed = true);
        let strict = committer(&db, "strict", Durability::Strict);
        gate.wait_until(|s| s.holding);
        let buffered = committer(&db, "buffered", buffered_forever(usize::MAX));
        // Published, and waiting to see its own write behind the Strict commit.
        gate.wait_until(|s| {
            s.blocked
                .iter()
                .any(|(n, why)| n == "buffered" && *why == BlockReason::Visibility)
        });
        // The Strict commit's round fails: the database is poisoned.
        gate.update(|s| s.released = true);
        let strict = strict
            .recv_timeout(LIVENESS)
            .expect("the Strict commit answered");
        assert!(
            matches!(strict, Err(Error::Poisoned(_))),
            "{io:?}: {strict:?}"
        );
        match buffered.recv_timeout(LIVENESS) {
            Ok(Err(Error::Poisoned(_))) => {}
            Ok(other) => panic!("{io:?}: expected Poisoned, got {other:?}"),
            Err(_) => panic!(
                "{io:?}: a Buffered commit behind a failed Strict one was never answered: its \
                 visibility wait outlived the poison"
            ),
        }
        let _ = db.close();
    });
}
