//! Mutation audit of session 36, gap 14 (`wal/pipeline.rs`, `run_rounds`): the group gathering the
//! pipelined log sets while rounds are in flight does not outlive them. A lone `Strict`
//! committer leads its own round only when no group is being gathered, so a gathering left
//! behind when the log thread goes idle keeps every later lone committer from leading (it hands
//! its round to the log thread: two thread hand-offs more per commit). Removing the clearing
//! at `Action::Idle` failed no test: `a_lone_strict_committer_writes_its_own_round` runs without
//! rounds in flight. A performance property, pinned through `Stats::rounds_led`.
//!
//! The driver writes each submission at once through the real driver and returns its completion
//! from the next `complete`, so the pipelined log runs on both I/O paths; it tells the test when
//! the log thread sleeps in the idle loop (`LogDriver::wait`), having left the round lock. The
//! pipelined round here is the first of its `run_rounds`, whose gathering ends at the round's
//! submission: expired on any clock by the time the log thread is idle.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use crate::pipe::{Seen, SyncPipe};
use ringlog_db::io::{LogDriver, Vfs};
use ringlog_db::Durability;

const LIVENESS: Duration = Duration::from_secs(10);

struct Pipelined(Arc<Seen>);

impl Hooks for Pipelined {
    fn log_driver(&self, inner: &dyn Vfs) -> io::Result<Box<dyn LogDriver>> {
        SyncPipe::of(inner, &self.0, None)
    }
}

#[test]
fn a_lone_strict_committer_leads_again_after_pipelined_rounds() {
    on_each_path(|io| {
        let dir = tempdir();
        let seen = Arc::new(Seen::default());
        let o = opts(io, Durability::Strict)
            .direct_io(true)
            .rounds_in_flight(2)
            .checkpoint_bytes(u64::MAX)
            .vfs(Hooked::new(real_vfs(io), Pipelined(seen.clone())));
        let db = open(dir.path(), o);
        db.put(b"warm-up", b"x").unwrap();
        // A round of the log thread's, pipelined: a Buffered commit, then a sync.
        let before = seen.submits.load(Ordering::SeqCst);
        let mut tx = db.begin();
        tx.put(b"buffered", b"1").unwrap();
        tx.commit_with(buffered_forever(usize::MAX)).unwrap();
        db.sync().unwrap();
        assert!(
            seen.submits.load(Ordering::SeqCst) > before,
            "{io:?}: the log thread's round was submitted (rounds in flight)"
        );
        // Back in its idle sleep (entered after the sync's round: that wait's wake ended the
        // one before), the round lock released.
        eventually("the log thread is idle", LIVENESS, || {
            seen.idle.load(Ordering::SeqCst)
        });
        let led = db.stats().rounds_led;
        let lsn = db.put(b"lone", b"2").unwrap();
        assert!(db.durable_lsn() >= lsn);
        assert_eq!(
            db.stats().rounds_led,
            led + 1,
            "{io:?}: a lone Strict committer did not lead its round after pipelined rounds \
             (a gathering outlived them)"
        );
        db.close().unwrap();
    });
}
