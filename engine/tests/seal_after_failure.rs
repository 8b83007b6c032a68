//! A close racing a lone `Strict` committer whose own round fails (`wal/leader.rs`,
//! `wal/thread.rs`).
//!
//! The committer holds the round lock while it writes; the close wakes the log thread, which
//! decides under the log mutex what to do next and then waits for the round lock. The committer's
//! write fails and poisons the database meanwhile. Whatever the log thread then writes must not
//! claim the failed round's bytes — which never reached the disk — as durable: a seal there (its
//! floor is its own offset) makes recovery find a hole of zeros before synced data and refuse
//! to open. Expected: the put and the close answer `Poisoned`, and the reopened log holds exactly
//! what was durable before.
//!
//! Two ways the log thread meets it. Usually the close appends a lease round (every run that
//! committed anything leases LSNs beyond its last), the log thread decides to write it, and the
//! poison drops it (`Shared::poison` clears the pending batches). At the end of the LSN space
//! the lease stops at the last LSN, the close appends nothing, and the log thread decides to
//! seal: only its check after taking the round lock (no seal after a failed round) keeps the
//! seal off the disk. A session-33 mutation audit found that removing that check failed no test;
//! session 34's review found the second way (a log crafted near `MAX_ID`, as `crafted.rs` builds
//! them), and this test now fails without the check.
//!
//! Determinism: the committer's write is held at a gate until the log thread, woken by the close
//! and holding the log mutex, reads the clock (`Vfs::now`) on its way to its decision; the gate
//! then fails the write, and the committer's poison waits for the log mutex, so the log thread
//! decides before the poison lands and takes the round lock only after it. No sleeps race
//! threads; every wait is on a condition.

mod common;
mod segfiles;

use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use common::*;
use ringlog_db::io::{LogDriver, SyncStrategy, VFile, Vfs};
use ringlog_db::{Durability, Error, IoChoice};

#[derive(Default)]
struct Race {
    state: Mutex<RaceState>,
    cv: Condvar,
}

#[derive(Default)]
struct RaceState {
    /// The next committer's durable write waits at the gate, then fails.
    armed: bool,
    /// A committer's write waits at the gate.
    holding: bool,
    /// The gate is open: the held write fails now.
    released: bool,
    /// Wakes of the log thread counted from here on (set just before the close).
    closing: bool,
    /// The log thread was woken after `closing` was set.
    woken: bool,
}

impl Race {
    fn update(&self, f: impl FnOnce(&mut RaceState)) {
        f(&mut self.state.lock().unwrap());
        self.cv.notify_all();
    }

    fn wait_until(&self, cond: impl Fn(&RaceState) -> bool) {
        let mut s = self.state.lock().unwrap();
        while !cond(&s) {
            s = self.cv.wait(s).unwrap();
        }
    }
}

struct RaceHooks(Arc<Race>);

impl Hooks for RaceHooks {
    fn write_durable_here(
        &self,
        inner: &dyn Vfs,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        let armed = std::mem::take(&mut self.0.state.lock().unwrap().armed);
        if !armed {
            return inner.write_durable_here(file, offset, buf, strategy);
        }
        self.0.update(|s| s.holding = true);
        self.0.wait_until(|s| s.released);
        // Nothing written: the round's bytes never reach the disk.
        Err(io::Error::from_raw_os_error(libc::EIO))
    }

    fn now(&self, inner: &dyn Vfs) -> Instant {
        // The log thread reads the clock under the log mutex before each decision: once a wake
        // after the close's has reached it, let the held write fail.
        if std::thread::current().name() == Some("ringlog-log") {
            let mut s = self.0.state.lock().unwrap();
            if s.woken && s.holding && !s.released {
                s.released = true;
                self.0.cv.notify_all();
            }
        }
        inner.now()
    }

    fn log_driver(&self, inner: &dyn Vfs) -> io::Result<Box<dyn LogDriver>> {
        WatchedDriver::of(inner, &self.0)
    }
}

/// The real driver tells the test when the close woke the log thread.
impl DriverHooks for Race {
    fn waking(&self) {
        self.update(|s| s.woken |= s.closing);
    }
}

/// A database whose next commits take the last LSNs the format allows: an empty segment is
/// added after its last one with a header whose base LSN is `MAX_ID - 4`.
fn near_the_end_of_the_lsn_space(dir: &std::path::Path, o: &ringlog_db::Options) {
    use ringlog_format::{SegmentHeader, SegmentPos, MAX_ID, SEGMENT_HEADER_LEN};
    let db = ringlog_db::Db::open(dir, o.clone()).unwrap();
    db.put(b"k", b"v").unwrap();
    db.close().unwrap();
    drop(db);
    let last = segfiles::segments(dir).pop().unwrap();
    let epoch = segfiles::epoch(dir);
    let bytes = std::fs::read(&last).unwrap();
    let mut end = SEGMENT_HEADER_LEN;
    let at = |offset| SegmentPos {
        segment_id: segfiles::seg_id(&last),
        epoch,
        offset,
    };
    while let Ok(r) = ringlog_format::decode_record(&bytes, end, at(end as u64)) {
        end += r.encoded_len();
    }
    let id = segfiles::seg_id(&last) + 1;
    let mut buf = vec![0u8; SEGMENT_HEADER_LEN + 4096];
    SegmentHeader::new(id, epoch, 1, 0, end as u64, MAX_ID - 4).encode(&mut buf);
    std::fs::write(dir.join(format!("{id:020}.log")), &buf).unwrap();
}

fn close_racing_a_failed_lone_commit(io: IoChoice, at_the_end: bool) {
    let dir = tempdir();
    let race = Arc::new(Race::default());
    let o = opts(io, Durability::Strict);
    if at_the_end {
        near_the_end_of_the_lsn_space(dir.path(), &o);
    }
    let db = open(
        dir.path(),
        o.clone()
            .vfs(Hooked::new(real_vfs(io), RaceHooks(race.clone()))),
    );
    db.put(b"before", b"1").unwrap();
    if at_the_end {
        // The racing put takes the last LSN, MAX_ID: the lease cannot reach past it.
        while db.last_lsn() < ringlog_format::MAX_ID - 1 {
            db.put(b"before", b"1").unwrap();
        }
        assert_eq!(db.last_lsn(), ringlog_format::MAX_ID - 1);
    }
    let before = db.last_lsn();
    assert_eq!(db.durable_lsn(), before);

    race.update(|s| s.armed = true);
    let (put, closed) = std::thread::scope(|t| {
        let put = t.spawn(|| db.put(b"failed", b"2"));
        // The committer leads its own round (alone, nothing else pending) and holds it.
        race.wait_until(|s| s.holding);
        race.update(|s| s.closing = true);
        let closed = db.close();
        (put.join().unwrap(), closed)
    });
    assert!(
        race.state.lock().unwrap().released,
        "the held write was released by the log thread's decision after the close"
    );
    assert!(matches!(put, Err(Error::Poisoned(_))), "the put: {put:?}");
    assert!(
        matches!(closed, Err(Error::Poisoned(_))),
        "the close: {closed:?}"
    );
    drop(db);

    // The failed round is a torn tail of nothing: the log opens, with what was durable.
    let db = ringlog_db::Db::open(dir.path(), o).unwrap_or_else(|e| {
        panic!("the log sealed after the failed round does not open again: {e}")
    });
    assert_eq!(db.get(b"before").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get(b"failed").unwrap(), None);
    assert_eq!(db.last_lsn(), before);
    db.close().unwrap();
}

#[test]
fn a_close_does_not_seal_after_a_lone_commits_failed_round() {
    on_each_path(|io| close_racing_a_failed_lone_commit(io, false));
}

#[test]
fn a_close_at_the_end_of_the_lsn_space_does_not_seal_after_a_failed_round() {
    on_each_path(|io| close_racing_a_failed_lone_commit(io, true));
}
