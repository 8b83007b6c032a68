//! `Db::close` releases a committer whose record no log thread would write: the engine's net
//! under a bug of that kind (planted here: value-log garbage collection commits its copies
//! without starting the log thread, the regression 44c0355 fixed). Compiled with the planted
//! bugs only (`cargo test --workspace` has them: the crash runner asks for them); its own test
//! binary, as a planted bug is armed for the whole process.
#![cfg(feature = "__planted-bugs")]

mod common;

use std::sync::Arc;

use common::*;
use ringlog_db::bugs::{self, Bug};
use ringlog_db::{Db, Durability, IoChoice, Options};

const KEYS: u16 = 1800;

fn options(io: IoChoice) -> Options {
    Options::default()
        .durability(Durability::Strict)
        .segment_size(SEG)
        .io(io)
        .value_threshold(Some(512))
        .value_cache_bytes(4 << 10)
}

/// A checkpoint whose garbage collection waits for a log thread nobody started (the planted
/// bug) is released by a close from another thread: the close starts the thread before its own
/// close-time checkpoint (which needs the lock the stuck one holds; with it due, the close
/// waited for ever — found by review), the copies are written, the checkpoint returns, and
/// every value reads back after a reopen.
#[test]
fn a_close_releases_a_commit_no_log_thread_would_write() {
    for io in [IoChoice::Uring, IoChoice::Portable] {
        let dir = tempdir();
        let big = |i: u16| vec![i as u8; 2000];
        let key = |i: u16| i.to_be_bytes();
        // Two in three overwritten: the collection copies the third left, 1 MB and more of log,
        // so that the close-time checkpoint is due.
        let small = |i: u16| !i.is_multiple_of(3);
        {
            // No close-time checkpoint here: its collection would leave the next run nothing
            // mostly dead to collect.
            let db = Db::open(dir.path(), options(io).checkpoint_on_close(false)).unwrap();
            for i in 0..KEYS {
                db.put(&key(i), &big(i)).unwrap();
            }
            db.checkpoint().unwrap(); // the values leave memory: value segments
            for i in (0..KEYS).filter(|&i| small(i)) {
                db.put(&key(i), b"small").unwrap();
            }
            db.checkpoint().unwrap();
            db.close().unwrap();
        }
        let db = Arc::new(Db::open(dir.path(), options(io)).unwrap());
        let before = db.last_assigned_lsn();
        bugs::arm(Bug::GcStartsNoLogThread);
        let stuck = {
            let db = db.clone();
            std::thread::spawn(move || db.checkpoint())
        };
        // The collection's copies took an LSN: their committer now waits for a durable write.
        while db.last_assigned_lsn() == before {
            std::thread::yield_now();
        }
        bugs::disarm_all();
        // The close-time checkpoint is due (at least 1 MiB of log since the last checkpoint,
        // and an eighth of its file): the copies' chunk, appended with its LSN. (Once the stuck
        // checkpoint has returned it finds nothing new and writes no file.)
        let appended = db.stats().bytes_appended;
        assert!(
            appended >= 1 << 20,
            "{io:?}: {appended} bytes of log: the close-time checkpoint is not due, the test \
             tests less than it says"
        );
        db.close().unwrap();
        let info = stuck.join().unwrap().unwrap();
        assert!(info.segments_collected >= 1, "{io:?}: {info:?}");
        drop(db);
        let db = Db::open(dir.path(), options(io)).unwrap();
        for i in 0..KEYS {
            let want = if small(i) { b"small".to_vec() } else { big(i) };
            assert_eq!(
                db.get(&key(i)).unwrap().unwrap().as_bytes(),
                &want[..],
                "{io:?}"
            );
        }
    }
}
