//! Found in review (session 33): a `Strict` commit whose round completed durable *before* a
//! later round failed was answered `Poisoned` when, at the failure, it was still waiting to become visible
//! behind an earlier commit whose committer had not yet published (it was inside its index
//! insert). DURABILITY.md §2: "A failed round fails only itself and what follows it ... the
//! rounds before it still complete and are published (their commits are durable and
//! acknowledged)"; `Txn::commit`/`Db::put` docs: `Poisoned` means "the write or sync failed (a
//! Strict commit is then not durable)". Here the commit IS durable and becomes visible, yet its
//! committer was told it failed. Fixed: a wait for visibility at or below the durable LSN goes
//! on after the poison (`publish::Visibility::wait`).
//!
//! Determinism: the earlier committer (thread "x") is paused inside `Versions::insert` by a test
//! global allocator (its 100 KiB value needs a fresh >= 256 KiB arena chunk); every other step
//! waits on a condition (no sleeps racing threads); the failing write is the fault-injecting
//! disk's (`common::FaultVfs`).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ringlog_db::io::{BlockReason, Vfs};
use ringlog_db::{Durability, Error, IoChoice};

// ------------------------------------------------------------------ the pausing allocator ----

static ARMED: AtomicBool = AtomicBool::new(false);
static PAUSED: AtomicBool = AtomicBool::new(false);
static RELEASE: AtomicBool = AtomicBool::new(false);
thread_local! { static IS_X: Cell<bool> = const { Cell::new(false) }; }

struct PauseAlloc;

// SAFETY: every allocation and deallocation is forwarded to `System` with the caller's own
// pointer and layout; the pause before an allocation only delays it.
unsafe impl GlobalAlloc for PauseAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() >= (256 << 10)
            && IS_X.try_with(Cell::get).unwrap_or(false)
            && ARMED.swap(false, Ordering::SeqCst)
        {
            PAUSED.store(true, Ordering::SeqCst);
            while !RELEASE.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // SAFETY: the caller's contract for `alloc` (a layout of non-zero size) is passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` was allocated by `System` (every allocation here is) with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: PauseAlloc = PauseAlloc;

// ------------------------------------------------------------------ the disk ----------------

static S_WAITS_VISIBLE: AtomicBool = AtomicBool::new(false);

/// Over the fault-injecting disk ([`FaultVfs`], which fails a chosen durable write): tells the
/// test when thread "s" waits for visibility.
struct SeesS;

impl Hooks for SeesS {
    fn will_block(&self, inner: &dyn Vfs, why: BlockReason) {
        if why == BlockReason::Visibility && std::thread::current().name() == Some("s") {
            S_WAITS_VISIBLE.store(true, Ordering::SeqCst);
        }
        inner.will_block(why)
    }
}

fn until(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(20), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_durable_commit_before_a_failed_round_is_answered_committed() {
    let io = IoChoice::Portable;
    let dir = tempdir();
    // No write fails until the test says which (the next one).
    let faults = Faults::new(0, FailMode::BeforeWrite);
    let o = opts(io, Durability::Strict)
        .segment_size(1 << 20)
        .vfs(Hooked::new(
            FaultVfs::new(real_vfs(io), faults.clone()),
            SeesS,
        ));
    let db = Arc::new(open(dir.path(), o));
    db.put(b"warm", b"0").unwrap();

    // X: a Strict commit, durable, paused inside its index insert (before it publishes).
    let big = vec![7u8; 100 << 10];
    ARMED.store(true, Ordering::SeqCst);
    let x = {
        let db = db.clone();
        std::thread::Builder::new()
            .name("x".into())
            .spawn(move || {
                IS_X.with(|c| c.set(true));
                db.put(b"x", &big)
            })
            .unwrap()
    };
    until("x paused in its index insert", || {
        PAUSED.load(Ordering::SeqCst)
    });
    let x_lsn = db.last_assigned_lsn();
    until("x durable", || db.durable_lsn() >= x_lsn);

    // S: a later Strict commit; its round completes durable; it waits to become visible behind X.
    let s = {
        let db = db.clone();
        std::thread::Builder::new()
            .name("s".into())
            .spawn(move || db.put(b"s", b"1"))
            .unwrap()
    };
    until("s waits for visibility", || {
        S_WAITS_VISIBLE.load(Ordering::SeqCst)
    });
    let s_lsn = db.last_assigned_lsn();
    assert!(s_lsn > x_lsn);
    assert!(db.durable_lsn() >= s_lsn, "S's round completed durable");

    // F: a third commit whose round fails: the database is poisoned.
    faults
        .fail_at
        .store(faults.calls.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
    let f = {
        let db = db.clone();
        std::thread::Builder::new()
            .name("f".into())
            .spawn(move || db.put(b"f", b"2"))
            .unwrap()
    };
    let f = f.join().unwrap();
    assert!(
        matches!(f, Err(Error::Poisoned(_))),
        "F's round failed: {f:?}"
    );

    RELEASE.store(true, Ordering::SeqCst);
    let x = x.join().unwrap();
    let s = s.join().unwrap();
    // S's commit is durable and (now) visible to every reader ...
    assert_eq!(db.get(b"s").unwrap().as_deref(), Some(&b"1"[..]));
    assert!(db.last_lsn() >= s_lsn);
    let db = Arc::try_unwrap(db).ok().unwrap();
    let _ = db.close();
    drop(db);
    let db = open(
        dir.path(),
        opts(io, Durability::Strict).segment_size(1 << 20),
    );
    assert_eq!(
        db.get(b"s").unwrap().as_deref(),
        Some(&b"1"[..]),
        "S survives a reopen"
    );
    db.close().unwrap();
    assert!(x.is_ok(), "X: {x:?}");
    // ... and its committer is told so (it was told the commit failed).
    assert!(
        s.is_ok(),
        "S was durable before the failed round (and is visible and recovered), but its \
         commit returned {s:?}"
    );
}
