//! Mutation audit of session 36, gap 13 (`wal/pipeline.rs`, `run_rounds`): with rounds in flight, a
//! submission that fails with nothing in flight before it poisons the database at once — no
//! completion will ever come to reach it. `pipeline_errors.rs` fails the *second* of two rounds
//! in flight, and the fault-injecting driver of `durability.rs` never fails `submit` itself (it
//! fails the completion); changing the "nothing before it" check (`flight.len() == 1`) so that
//! it never holds failed no test, and the committer then waited forever.
//!
//! The driver here writes each submission at once through the real driver and hands its
//! completion back from `complete`, so the pipelined log runs on both I/O paths; its second
//! submission fails. Committers never lead their own rounds (`writes_here` false).

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::common::*;
use crate::pipe::{Seen, SyncPipe};
use ringlog_db::io::{LogDriver, Vfs};
use ringlog_db::{Durability, Error};

const LIVENESS: Duration = Duration::from_secs(10);

struct FailSecondSubmit(Arc<Seen>);

impl Hooks for FailSecondSubmit {
    fn writes_here(&self, _: &dyn Vfs) -> bool {
        false
    }
    fn log_driver(&self, inner: &dyn Vfs) -> io::Result<Box<dyn LogDriver>> {
        SyncPipe::of(inner, &self.0, Some(2))
    }
}

#[test]
fn a_failed_submission_with_nothing_in_flight_poisons_at_once() {
    on_each_path(|io| {
        let dir = tempdir();
        let seen = Arc::new(Seen::default());
        let o = opts(io, Durability::Strict)
            .direct_io(true)
            .rounds_in_flight(2)
            .checkpoint_bytes(u64::MAX)
            .vfs(Hooked::new(real_vfs(io), FailSecondSubmit(seen.clone())));
        let db = Arc::new(open(dir.path(), o));
        db.put(b"warm-up", b"x").unwrap();
        assert_eq!(
            seen.submits.load(Ordering::SeqCst),
            1,
            "{io:?}: the warm-up round was submitted (rounds in flight)"
        );
        let (tx, rx) = mpsc::channel();
        {
            let db = db.clone();
            std::thread::spawn(move || {
                let _ = tx.send(db.put(b"k", b"v"));
            });
        }
        match rx.recv_timeout(LIVENESS) {
            Ok(Err(Error::Poisoned(_))) => {}
            Ok(other) => panic!("{io:?}: its round's submission failed: {other:?}"),
            Err(_) => panic!(
                "{io:?}: a commit whose round's submission failed, with nothing in flight \
                 before it, was not answered (hang)"
            ),
        }
        let _ = db.close();
        drop(db);
        let db = open(dir.path(), opts(io, Durability::Strict));
        assert_eq!(db.get(b"warm-up").unwrap().as_deref(), Some(&b"x"[..]));
        assert!(db.get(b"k").unwrap().is_none());
        db.close().unwrap();
    });
}
