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

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use crate::ctl::*;
use ringlog_db::Durability;

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
