//! Mutation audit of session 36, gap 23 (`wal/thread.rs`, `take_round`): a commit's `Buffered` override
//! with a small `max_pending` forces a round; once that round is taken, the pending limit goes
//! back to what the next commits ask for. Leaving the override's limit in place (not resetting
//! `trigger_bytes` at the take) failed no test: every later `Buffered` commit of the database's
//! own mode (no pending limit here) was then synced at once, one round each.
//!
//! Determinism: the log driver's sleeps and wakes are the test's own (a condition variable), so
//! the test knows when the log thread has decided with the later commit pending, and counts the
//! durable writes up to then. No sleep races a thread.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use crate::ctl::*;
use ringlog_db::Durability;

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
