//! Mutation audit of session 36, gap 09 (`wal/thread.rs`, `publish`): each durable batch advances the
//! log's known-durable end (`State::synced`), which the next batch's head records as its durable
//! floor (FORMAT.md §10.5): after a crash, damage to an earlier round below a later round's floor
//! is corruption of acknowledged data, reported — never cut as a torn tail. Removing the
//! advance (every floor then stays at the run's starting point) failed no test: the recovery
//! tests of damage in an earlier round close the database first, and the close's seal (whose
//! floor is its own offset) reports the damage by itself.
//!
//! Here nothing is closed: the directory is copied as a crash would leave it, after three
//! `Strict` rounds, and the second round's record is damaged.

use crate::common::{crash_copy, on_each_path, tempdir};
use crate::segfiles::{epoch, flip, opts, records, segments};
use ringlog_db::{Db, Error};
use ringlog_format::RecordKind;

#[test]
fn after_a_crash_damage_below_a_later_rounds_floor_is_corruption() {
    on_each_path(|io| {
        let dir = tempdir();
        let db = Db::open(dir.path(), opts(io)).unwrap();
        db.put(b"warm-up", b"x").unwrap();
        let a = db.put(b"a", &[1; 100]).unwrap();
        let b = db.put(b"b", &[2; 100]).unwrap();
        assert!(db.durable_lsn() >= b);
        // A crash now: the files as they are (no close, so no seal).
        let crashed = crash_copy(dir.path());
        db.close().unwrap();
        let seg = segments(crashed.path()).pop().unwrap();
        let recs = records(&seg, epoch(crashed.path()));
        let writes: Vec<_> = recs.iter().filter(|r| r.1 == RecordKind::Write).collect();
        assert_eq!(writes.len(), 3, "{io:?}: {recs:?}");
        let (victim, _, victim_batch, _) = *writes[1];
        let (_, _, later_batch, _) = *writes[2];
        assert!(
            victim_batch < later_batch,
            "{io:?}: a and b in rounds of their own"
        );
        // A flipped bit in `a`, acknowledged and synced before `b`'s round was written.
        flip(&seg, victim + 40);
        match Db::open(crashed.path(), opts(io)) {
            Err(Error::Corruption { offset, .. }) => assert_eq!(offset, victim, "{io:?}"),
            Err(e) => panic!("{io:?}: expected Corruption, got {e:?}"),
            Ok(db) => panic!(
                "{io:?}: damage to a round a later round proves durable was cut as a torn tail \
                 (a at {a} present: {}, {} bytes truncated)",
                db.get(b"a").unwrap().is_some(),
                db.recovery_stats().bytes_truncated
            ),
        }
    });
}
