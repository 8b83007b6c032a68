//! A custom disk (`Vfs`) whose callbacks panic inside a commit never hangs later commits.
//!
//! - Its clock (`Vfs::now`), read by a `Buffered` commit for its deadline, after the commit had
//!   taken its LSN and appended its records: the panic left an LSN never published, and every
//!   later commit waited forever to become visible behind it (a hang; suspected in session 33's
//!   review, shown by this test). The clock is read before anything is reserved now: the panic
//!   fails that commit alone.
//! - Its log driver's waker (`Waker::wake`), which a commit calls under the log mutex after
//!   appending (found in session 34's review): nothing can be read earlier there, so a commit
//!   that unwinds between taking its LSN and publishing it poisons the database — later commits
//!   fail with `Poisoned` (as after a panic on the log thread) instead of waiting forever.
//!
//! Without the fixes these tests hang at the next commit (CI's watchdog then fails them).

mod common;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ringlog_db::io::{LogDriver, Vfs};
use ringlog_db::{Durability, Error};

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

/// Runs `f` on a thread named "p" (the one the panicking callbacks pick), returning its
/// outcome (`Err` when it panicked).
fn on_thread_p<T: Send>(f: impl FnOnce() -> T + Send) -> std::thread::Result<T> {
    std::thread::scope(|t| {
        std::thread::Builder::new()
            .name("p".into())
            .spawn_scoped(t, f)
            .unwrap()
            .join()
    })
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
        let failed = on_thread_p(|| db.put(b"lost", b"2"));
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

/// The log driver's waker panics once, on the thread named "p", while armed; the test learns
/// when the log thread sleeps in the driver (so that the next commit must wake it).
#[derive(Default)]
struct PanickyWaker {
    armed: AtomicBool,
    sleeping: Mutex<bool>,
    cv: Condvar,
}

struct WakerHooks(Arc<PanickyWaker>);

impl Hooks for WakerHooks {
    fn log_driver(&self, inner: &dyn Vfs) -> io::Result<Box<dyn LogDriver>> {
        WatchedDriver::of(inner, &self.0)
    }
}

impl DriverHooks for PanickyWaker {
    fn sleeping(&self) {
        *self.sleeping.lock().unwrap() = true;
        self.cv.notify_all();
    }
    fn awake(&self) {
        *self.sleeping.lock().unwrap() = false;
    }
    fn waking(&self) {
        if std::thread::current().name() == Some("p") && self.armed.swap(false, Ordering::SeqCst) {
            panic!("the custom waker panics (expected by the test)");
        }
    }
}

#[test]
fn a_commit_whose_waker_panics_poisons_rather_than_hangs() {
    on_each_path(|io| {
        let dir = tempdir();
        let w = Arc::new(PanickyWaker::default());
        // Every commit asks for a round at once (one byte pending is over the limit): it wakes
        // the log thread whenever that sleeps.
        let o = opts(
            io,
            Durability::Buffered {
                interval: Duration::from_secs(3600),
                max_pending: 1,
            },
        );
        let db = open(
            dir.path(),
            o.clone()
                .vfs(Hooked::new(real_vfs(io), WakerHooks(w.clone()))),
        );
        db.put(b"before", b"1").unwrap();
        db.sync().unwrap();
        // The log thread sleeps in its driver: the next commit wakes it.
        let mut sleeping = w.sleeping.lock().unwrap();
        while !*sleeping {
            sleeping = w.cv.wait(sleeping).unwrap();
        }
        w.armed.store(true, Ordering::SeqCst);
        drop(sleeping);
        let failed = on_thread_p(|| db.put(b"lost", b"2"));
        assert!(failed.is_err(), "the commit panicked in the waker");
        assert!(!w.armed.load(Ordering::SeqCst), "the waker was called");
        // The next commit fails, and says why; it does not wait forever.
        let next = db.put(b"after", b"3");
        assert!(matches!(next, Err(Error::Poisoned(_))), "{io:?}: {next:?}");
        let _ = db.close();
        drop(db);
        let db = open(dir.path(), o);
        assert_eq!(db.get(b"before").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(db.get(b"after").unwrap(), None);
        db.close().unwrap();
    });
}
