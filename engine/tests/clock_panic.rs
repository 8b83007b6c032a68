//! A custom disk whose clock (`Vfs::now`) panics in a `Buffered` commit fails that commit alone.
//!
//! The commit read the clock for its deadline after it had taken its LSN and appended its
//! records: the panic left an LSN that was never published, and every later commit waited
//! forever to become visible behind it (a hang; suspected in session 33's review, shown by this test). The clock is read
//! before anything is reserved now. Without the fix this test hangs at the second commit (CI's
//! watchdog then fails it).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use common::*;
use ringlog_db::io::Vfs;

/// A clock that panics once, on the thread named "p", while armed.
struct PanickyClock(AtomicBool);

impl Hooks for PanickyClock {
    fn now(&self, inner: &dyn Vfs) -> Instant {
        if std::thread::current().name() == Some("p") && self.0.swap(false, Ordering::SeqCst) {
            panic!("the custom clock panics (expected by the test)");
        }
        inner.now()
    }
}

#[test]
fn a_buffered_commit_whose_clock_panics_fails_alone() {
    on_each_path(|io| {
        let dir = tempdir();
        let clock = Hooked::new(real_vfs(io), PanickyClock(AtomicBool::new(false)));
        let db = open(
            dir.path(),
            opts(io, buffered_forever(1 << 20)).vfs(clock.clone()),
        );
        db.put(b"before", b"1").unwrap();
        clock.0.store(true, Ordering::SeqCst);
        let failed = std::thread::scope(|t| {
            std::thread::Builder::new()
                .name("p".into())
                .spawn_scoped(t, || db.put(b"lost", b"2"))
                .unwrap()
                .join()
        });
        assert!(failed.is_err(), "the commit panicked with its clock");
        assert!(!clock.0.load(Ordering::SeqCst), "the clock was read");
        // The next commits go on, and become visible and durable.
        let lsn = db.put(b"after", b"3").unwrap();
        assert_eq!(db.get(b"after").unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(db.get(b"lost").unwrap(), None);
        db.sync().unwrap();
        assert!(db.durable_lsn() >= lsn);
        db.close().unwrap();
        drop(db);
        let db = open(dir.path(), opts(io, buffered_forever(1 << 20)));
        assert_eq!(db.get(b"before").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(db.get(b"after").unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(db.get(b"lost").unwrap(), None);
        db.close().unwrap();
    });
}
