//! Read sections without fences: how readers reach an index generation or a key-index table that
//! a writer may replace, and when a replaced one may be freed.
//!
//! # Why
//!
//! A point read loads two pointers a writer may swap: the index generation (a trim replaces it)
//! and the key index's table (it grows by replacement). Guarded loads through `arc_swap`, used
//! before, cost four locked instructions per read; each is a full barrier on x86-64, which also
//! keeps the processor from overlapping one read's cache misses with the next read's
//! (docs/BENCHMARKS.md, "Session 18"). Replacements are rare — a table grows a few dozen times in
//! a million inserts, a trim runs after tens of thousands of overwrites — so this module moves the
//! cost onto them: a small user-space RCU with asymmetric fences, the scheme of liburcu's `memb`
//! flavour and of folly's hazard pointers.
//!
//! # Protocol
//!
//! - Every thread that reads owns a **slot** (claimed on its first read, handed to a later thread
//!   after it exits) holding 0 outside a read section and otherwise the global **epoch** it read
//!   when it entered one.
//! - **Enter** ([`enter`]): load the epoch (Acquire), store it in the slot (Relaxed), then a
//!   compiler-only fence — no instruction. A nested section only counts.
//! - **Leave** (dropping the [`Section`]): store 0 in the slot (Release), a compiler fence, and a
//!   collect if the section began at or before a retired object still waiting.
//! - **Replace** ([`Rcu::store`]): swap the pointer, then [`retire`] the old object: advance the
//!   epoch (a SeqCst read-modify-write after the swap) and queue the object with the epoch `e`
//!   the advance started from.
//! - **Free** ([`collect`]): `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` — every thread of the
//!   process that is running executes a full barrier, and one that is not has passed one — then
//!   read every slot: an object retired at `e` is dropped once no slot holds an epoch `<= e`.
//!
//! Why no reader uses a freed object. Take a section that loaded the old pointer (load `L`, after
//! its slot store `S` in program order) and a collect that dropped it. The section read an epoch
//! `p <= e`: an epoch above `e` is read only after the advance, whose Release publishes the swap,
//! so `L` would have seen the new pointer. The membarrier put a full barrier `B` somewhere in the
//! reader's program order. If `S` came before `B`, `S` was visible to the scan that followed the
//! membarrier, which then found `p <= e` (or, later, the reader's 0 from leaving) and kept the
//! object. If `B` came before `S`, then `L` ran after `B`, and `B` came after the swap was visible
//! (the membarrier begins with a full barrier on the caller): `L` saw the new pointer. Either way
//! a contradiction. A reader preempted between reading the epoch and storing it is the second
//! case. Without the membarrier (the kernel refuses it, or `RINGLOG_NO_MEMBARRIER` is set in the
//! environment) both sides use SeqCst fences: the store-buffering argument of Dekker's algorithm.
//!
//! A collect never waits for a reader: what it cannot free stays queued, and the sections that
//! held it back collect again as they end (a section that began at or before a pending retire
//! does, on leaving), as do every [`retire`], the compaction's question which value segments are
//! in use ([`synchronize`], which waits for older sections, a second at most, then for the drops
//! other threads' collects began: a checkpoint asks it holding the MANIFEST lock, so a section
//! that waits for that lock — a `get_with` closure that checkpoints — delays it that long) and a
//! database's drop. A read section runs the caller's closure of [`crate::Db::get_with`]: one
//! that blocks for long holds back the memory of every generation or table replaced meanwhile.
//! Nothing in this module logs while it holds one of its locks or decides the fence mode: a
//! logger that writes into a database enters read sections itself.

use std::marker::PhantomData;
use std::sync::atomic::{
    compiler_fence, fence, AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use std::sync::{Arc, Once};

use parking_lot::Mutex;

/// The global epoch: advanced once per retired object; 0 is never an epoch (it marks a slot
/// outside a read section).
static EPOCH: AtomicU64 = AtomicU64::new(1);

/// Every slot ever claimed (leaked: at most as many as threads that ever read at once).
static SLOTS: Mutex<Vec<&'static Slot>> = Mutex::new(Vec::new());

/// Objects replaced and not yet freed, with the epoch they were retired at.
static RETIRED: Mutex<Vec<(u64, Box<dyn Send>)>> = Mutex::new(Vec::new());

/// The newest epoch in [`RETIRED`], 0 when it is empty (written under its lock): a section that
/// began at or before it tries a collect when it ends.
static NEWEST_RETIRED: AtomicU64 = AtomicU64::new(0);

/// Batches of retired objects a [`collect`] took out of [`RETIRED`] and is dropping (outside the
/// lock), by ticket. Tickets are given in order under the lock of [`RETIRED`]; [`synchronize`]
/// waits for those given before it returns, so that a generation it was asked to see gone is
/// not still being dropped on another thread (whose `Weak` would still upgrade).
static FREEING: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// The next ticket of [`FREEING`] (written under the lock of [`RETIRED`]).
static NEXT_TICKET: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Batches this thread is dropping (a retired object's drop that synchronizes must not wait
    /// for itself).
    static FREEING_HERE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Times [`synchronize`] began waiting for another thread's batch to be dropped (tests).
#[cfg(test)]
static WAITED_FOR_FREEING: AtomicUsize = AtomicUsize::new(0);

/// How the two sides fence: not decided yet, membarrier (readers: compiler fence only), or
/// SeqCst fences on both sides.
static MODE: AtomicU8 = AtomicU8::new(UNDECIDED);
const UNDECIDED: u8 = 0;
const MEMBARRIER: u8 = 1;
const FENCES: u8 = 2;
static DECIDE: Once = Once::new();

// linux/membarrier.h
const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

/// One reading thread's slot, on its own cache lines (writers of other slots do not disturb it).
#[repr(align(128))]
struct Slot {
    /// 0 outside a read section, else the epoch read when the outermost section began.
    epoch: AtomicU64,
    /// Sections open on the owning thread (only the owner touches it).
    nest: AtomicUsize,
    /// Owned by a live thread (or by a [`Section`] entered without thread-local storage).
    in_use: AtomicBool,
}

/// Claims a free slot, or registers a new one.
fn claim_slot() -> &'static Slot {
    let mut slots = SLOTS.lock();
    for s in slots.iter() {
        if s.in_use
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            debug_assert_eq!(
                s.epoch.load(Ordering::Relaxed),
                0,
                "a free slot is outside a section"
            );
            return s;
        }
    }
    let s: &'static Slot = Box::leak(Box::new(Slot {
        epoch: AtomicU64::new(0),
        nest: AtomicUsize::new(0),
        in_use: AtomicBool::new(true),
    }));
    slots.push(s);
    s
}

/// The thread's slot, handed back when the thread exits.
struct Local(&'static Slot);

impl Drop for Local {
    fn drop(&mut self) {
        debug_assert_eq!(
            self.0.nest.load(Ordering::Relaxed),
            0,
            "no section outlives its thread"
        );
        self.0.in_use.store(false, Ordering::Release);
    }
}

thread_local! {
    static LOCAL: Local = Local(claim_slot());
}

/// Decides, once, how the two sides fence (see the module documentation).
fn mode() -> u8 {
    let m = MODE.load(Ordering::Acquire);
    if m != UNDECIDED {
        return m;
    }
    // Logged after the decision is stored, outside `call_once`: a logger that writes into a
    // database would enter a read section, and so this function, again.
    let mut why = None;
    DECIDE.call_once(|| {
        let m = if std::env::var_os("RINGLOG_NO_MEMBARRIER").is_some() {
            why = Some("RINGLOG_NO_MEMBARRIER is set");
            FENCES
        } else if membarrier(MEMBARRIER_CMD_QUERY) & i64::from(MEMBARRIER_CMD_PRIVATE_EXPEDITED)
            == 0
            || membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0
        {
            why = Some("membarrier private expedited unavailable");
            FENCES
        } else {
            MEMBARRIER
        };
        MODE.store(m, Ordering::Release);
    });
    if let Some(why) = why {
        log::debug!("read sections: SeqCst fences ({why})");
    }
    MODE.load(Ordering::Acquire)
}

/// The membarrier system call with `cmd`; its result, or -1 on an error.
fn membarrier(cmd: libc::c_int) -> i64 {
    // SAFETY: membarrier takes plain integers and touches no memory of ours.
    i64::from(unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) } as i32)
}

/// An open read section: objects loaded through [`Rcu`] while it lives are not freed. Not `Send`:
/// it must end on the thread that entered it.
pub(crate) struct Section {
    slot: &'static Slot,
    /// The slot was claimed for this section alone (thread-local storage was gone).
    own_slot: bool,
    _not_send: PhantomData<*const ()>,
}

/// Enters a read section (or nests one in the thread's open section).
#[inline]
pub(crate) fn enter() -> Section {
    match LOCAL.try_with(|l| l.0) {
        Ok(slot) => {
            let nest = slot.nest.load(Ordering::Relaxed);
            if nest == 0 {
                begin(slot);
            }
            slot.nest.store(nest + 1, Ordering::Relaxed);
            Section {
                slot,
                own_slot: false,
                _not_send: PhantomData,
            }
        }
        // The thread's storage is being torn down (a read from another thread-local's
        // destructor): a slot of its own for this section.
        Err(_) => {
            let slot = claim_slot();
            begin(slot);
            slot.nest.store(1, Ordering::Relaxed);
            Section {
                slot,
                own_slot: true,
                _not_send: PhantomData,
            }
        }
    }
}

#[inline]
fn begin(slot: &Slot) {
    let m = mode();
    let e = EPOCH.load(Ordering::Acquire);
    debug_assert!(e != 0, "epochs start at 1");
    slot.epoch.store(e, Ordering::Relaxed);
    if m == MEMBARRIER {
        // Paired with the membarrier of `collect` (see the module documentation).
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

impl Drop for Section {
    #[inline]
    fn drop(&mut self) {
        let nest = self.slot.nest.load(Ordering::Relaxed) - 1;
        self.slot.nest.store(nest, Ordering::Relaxed);
        if nest == 0 {
            let began = self.slot.epoch.load(Ordering::Relaxed);
            // Release: every read of the section happens before a collect that sees the 0.
            self.slot.epoch.store(0, Ordering::Release);
            if self.own_slot {
                self.slot.in_use.store(false, Ordering::Release);
            }
            // A section that began before a retire still waiting to be freed may have been what
            // held it back: collect now. Paired with `retire` (its store of `NEWEST_RETIRED`,
            // then the collect's fence and scan): either that scan saw the 0 above, or this load
            // sees the retire. A section begun after every pending retire does not try, so a
            // reader that stays open long costs the others one attempt each, not one per read.
            if mode() == MEMBARRIER {
                compiler_fence(Ordering::SeqCst);
            } else {
                fence(Ordering::SeqCst);
            }
            if began <= NEWEST_RETIRED.load(Ordering::Relaxed) {
                collect();
            }
        }
    }
}

/// Queues `object`, just made unreachable for new sections, to be dropped once every section
/// that could have reached it has ended; then frees what can be freed.
pub(crate) fn retire(object: Box<dyn Send>) {
    // SeqCst: after the swap that unlinked `object` (so a section that reads the new epoch sees
    // the swap), and in one order with every other retire.
    let e = EPOCH.fetch_add(1, Ordering::SeqCst);
    {
        let mut retired = RETIRED.lock();
        retired.push((e, object));
        NEWEST_RETIRED.fetch_max(e, Ordering::Relaxed);
    }
    collect();
}

/// Drops every retired object no read section can still use. Never waits for a reader.
pub(crate) fn collect() {
    // The fence mode is decided (and the decision logged) before the lock: deciding it under
    // `RETIRED`, as the first replacement of a process did, let a logger that retires something
    // deadlock (found in review).
    mode();
    let (ticket, ready): (u64, Vec<Box<dyn Send>>) = {
        let mut retired = RETIRED.lock();
        if retired.is_empty() {
            return;
        }
        if let Err(e) = heavy_fence() {
            // Logged without the lock: a logger that writes into a database may collect.
            drop(retired);
            log_fence_failure(&e);
            return;
        }
        let oldest = SLOTS
            .lock()
            .iter()
            .map(|s| s.epoch.load(Ordering::Acquire))
            .filter(|&e| e != 0)
            .min()
            .unwrap_or(u64::MAX);
        let (free, keep) = std::mem::take(&mut *retired)
            .into_iter()
            .partition(|(e, _)| *e < oldest);
        *retired = keep;
        NEWEST_RETIRED.store(
            retired.iter().map(|(e, _)| *e).max().unwrap_or(0),
            Ordering::Relaxed,
        );
        if free.is_empty() {
            return;
        }
        let ticket = NEXT_TICKET.fetch_add(1, Ordering::Relaxed);
        FREEING.lock().push(ticket);
        (ticket, free.into_iter().map(|(_, o)| o).collect())
    };
    // Dropped outside the lock: a generation's drop unmaps its arena.
    let _done = Freeing::begin(ticket);
    drop(ready);
}

/// A batch being dropped: its ticket leaves [`FREEING`] when the drop ends (or unwinds).
struct Freeing(u64);

impl Freeing {
    fn begin(ticket: u64) -> Freeing {
        // (No thread-local storage left: a drop in a thread-local's destructor, which then never
        // waits in `wait_for_freeing` either.)
        let _ = FREEING_HERE.try_with(|n| n.set(n.get() + 1));
        Freeing(ticket)
    }
}

impl Drop for Freeing {
    fn drop(&mut self) {
        FREEING.lock().retain(|&t| t != self.0);
        let _ = FREEING_HERE.try_with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// Waits until every batch a collect took before this call has been dropped. Drops are finite
/// (they unmap memory), so this wait has no limit; a thread dropping a batch itself skips it.
fn wait_for_freeing() {
    let upto = {
        let _order = RETIRED.lock();
        NEXT_TICKET.load(Ordering::Relaxed)
    };
    if FREEING_HERE
        .try_with(std::cell::Cell::get)
        .map_or(true, |n| n > 0)
    {
        return;
    }
    let mut wait = Backoff::default();
    let mut counted = false;
    while FREEING.lock().iter().any(|&t| t < upto) {
        if !counted {
            counted = true;
            #[cfg(test)]
            WAITED_FOR_FREEING.fetch_add(1, Ordering::SeqCst);
        }
        wait.pause_unbounded();
    }
}

/// Waits for the read sections of other threads that began before this call to end, then
/// collects. For callers that need replaced generations gone now rather than at some later
/// collect: compaction asks which value segments live generations refer to, and a generation
/// replaced a moment ago, held back only by another thread's read or insert that began before its
/// replacement, would keep its segments for one more round. The caller's own open section (if
/// any) is not waited for. Sections are short (a point read, a commit's index inserts), but a
/// thread may be preempted in one: the wait yields, then sleeps with a growing pause, and stops
/// after about a second of sleeping in all (a closure passed to [`crate::Db::get_with`] that
/// blocks); what is still held then stays queued for a later collect.
///
/// It returns only after the objects other threads' collects took out of the queue before it
/// (a section that ends collects on its own thread, typically the very section waited for) have
/// been dropped: until then a generation's `Weak` still upgrades, and compaction would keep its
/// segments one more round for nothing.
pub(crate) fn synchronize() {
    if RETIRED.lock().is_empty() {
        wait_for_freeing();
        return;
    }
    // Sections that begin after this advance read a later epoch: they are not waited for.
    let before = EPOCH.fetch_add(1, Ordering::SeqCst);
    if let Err(e) = heavy_fence() {
        log_fence_failure(&e);
        return;
    }
    let own = LOCAL.try_with(|l| std::ptr::from_ref(l.0)).ok();
    let slots: Vec<&'static Slot> = SLOTS.lock().clone();
    let mut wait = Backoff::default();
    for s in slots {
        if own == Some(std::ptr::from_ref(s)) {
            continue;
        }
        loop {
            let e = s.epoch.load(Ordering::Acquire);
            if e == 0 || e > before {
                break;
            }
            if !wait.pause() {
                log::debug!("a read section stays open; replaced index memory is kept for now");
                collect();
                wait_for_freeing();
                return;
            }
        }
    }
    collect();
    wait_for_freeing();
}

/// The pauses of [`synchronize`]: yields first, then sleeps doubling from 20 µs to 2 ms, up to
/// [`SYNC_SLEEP_LIMIT`] of sleep in all.
#[derive(Default)]
struct Backoff {
    yields: u32,
    sleep: std::time::Duration,
    slept: std::time::Duration,
}

/// How long [`synchronize`] sleeps in all before it stops waiting for an open section.
const SYNC_SLEEP_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

impl Backoff {
    /// Pauses once; false once the sleeps reached their limit.
    fn pause(&mut self) -> bool {
        if self.yields < 64 {
            self.yields += 1;
            std::thread::yield_now();
            return true;
        }
        if self.slept >= SYNC_SLEEP_LIMIT {
            return false;
        }
        self.sleep = (self.sleep * 2).clamp(
            std::time::Duration::from_micros(20),
            std::time::Duration::from_millis(2),
        );
        std::thread::sleep(self.sleep);
        self.slept += self.sleep;
        true
    }

    /// Pauses once, as [`Backoff::pause`] does, with no limit.
    fn pause_unbounded(&mut self) {
        if !self.pause() {
            std::thread::sleep(self.sleep);
        }
    }
}

/// The collect side's fence; the error if it could not be made (nothing may be freed then).
/// Logs nothing once the mode is decided (`collect` decides it before taking its lock): callers
/// log with no lock of this module held.
fn heavy_fence() -> std::io::Result<()> {
    if mode() == MEMBARRIER {
        if membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    } else {
        fence(Ordering::SeqCst);
    }
    Ok(())
}

fn log_fence_failure(e: &std::io::Error) {
    log::error!("membarrier failed after registration: {e}; replaced index memory is kept");
}

/// Objects retired and not yet freed (for tests and statistics).
#[cfg(test)]
pub(crate) fn pending() -> usize {
    RETIRED.lock().len()
}

/// A shared pointer that readers load inside a [`Section`] without touching its count, and that
/// a writer replaces with [`Rcu::store`] (the old value is retired, not dropped at once): an
/// [`RcuOption`] that always holds a value.
pub(crate) struct Rcu<T: Send + Sync + 'static>(RcuOption<T>);

impl<T: Send + Sync + 'static> Rcu<T> {
    pub(crate) fn new(value: Arc<T>) -> Rcu<T> {
        Rcu(RcuOption {
            ptr: AtomicPtr::new(Arc::into_raw(value).cast_mut()),
            _owns: PhantomData,
        })
    }

    /// The current value, for as long as `section` (and this cell's borrow) lives.
    #[inline]
    pub(crate) fn load<'a>(&'a self, section: &'a Section) -> &'a T {
        self.0
            .load(section)
            .expect("an Rcu always holds a value (set by new and every store)")
    }

    /// The current value, counted (for holders that outlive a section: snapshots, scans).
    pub(crate) fn load_full(&self) -> Arc<T> {
        let section = enter();
        let p: *const T = self.load(&section);
        // SAFETY: `p` came from `Arc::into_raw` and its value cannot be dropped while `section`
        // lives (as in `RcuOption::load`), so its count is at least one here.
        unsafe {
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        }
    }

    /// Replaces the value; the old one is retired (dropped once no section can use it).
    pub(crate) fn store(&self, value: Arc<T>) {
        self.0.store(Some(value));
    }
}

/// A shared pointer that may hold nothing (see [`Rcu`]).
pub(crate) struct RcuOption<T: Send + Sync + 'static> {
    /// Null, or from `Arc::into_raw` holding one strong count.
    ptr: AtomicPtr<T>,
    _owns: PhantomData<Arc<T>>,
}

impl<T: Send + Sync + 'static> RcuOption<T> {
    pub(crate) fn none() -> RcuOption<T> {
        RcuOption {
            ptr: AtomicPtr::new(std::ptr::null_mut()),
            _owns: PhantomData,
        }
    }

    /// The current value, if any, for as long as `section` (and this cell's borrow) lives.
    #[inline]
    pub(crate) fn load<'a>(&'a self, _section: &'a Section) -> Option<&'a T> {
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: a non-null pointer came from `Arc::into_raw` and held a strong count when
        // loaded (Acquire: its construction happened before). A value replaced since is retired,
        // and retired values are dropped only after every section that could have loaded them
        // ended (module documentation); `section` is open for 'a, and the cell itself, which
        // owns the current value, cannot be dropped while borrowed for 'a. Null is `None`.
        unsafe { p.as_ref() }
    }

    /// Replaces the value; the old one, if any, is retired (dropped once no section can use it).
    pub(crate) fn store(&self, value: Option<Arc<T>>) {
        let new = value.map_or(std::ptr::null_mut(), |v| Arc::into_raw(v).cast_mut());
        let old = self.ptr.swap(new, Ordering::AcqRel);
        if !old.is_null() {
            // SAFETY: `old` came from `Arc::into_raw`; the cell's count of it is handed to
            // `retire`.
            retire(Box::new(unsafe { Arc::from_raw(old) }));
        }
    }
}

impl<T: Send + Sync + 'static> Drop for RcuOption<T> {
    fn drop(&mut self) {
        let p = *self.ptr.get_mut();
        if !p.is_null() {
            // SAFETY: the pointer came from `Arc::into_raw`; no section can hold a reference
            // from this cell (`load` borrows the cell), so its count is released here.
            drop(unsafe { Arc::from_raw(p) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;

    /// Runs `body` in a child process of this test binary running only the test `name`, once
    /// with membarrier and once with SeqCst fences on both sides: the domain is process-wide, and
    /// sections of tests running beside it in this process would keep values it expects freed.
    fn alone(name: &str, body: impl FnOnce()) {
        if let Some(mode) = std::env::var_os("RINGLOG_RCU_CHILD") {
            let fences = mode == "fences";
            assert_eq!(super::mode() == FENCES, fences, "the fence mode asked for");
            body();
            return;
        }
        for mode in ["membarrier", "fences"] {
            let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
            cmd.args([name, "--exact", "--test-threads=1", "--nocapture"])
                .env("RINGLOG_RCU_CHILD", mode);
            if mode == "fences" {
                cmd.env("RINGLOG_NO_MEMBARRIER", "1");
            } else {
                cmd.env_remove("RINGLOG_NO_MEMBARRIER");
            }
            let out = cmd.output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("1 passed"),
                "{name} with {mode}: {}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Sets its flag when dropped; reads check its canary.
    struct Canary {
        alive: u64,
        dropped: Arc<AtomicBool>,
    }
    const ALIVE: u64 = 0x5EED_CAFE_F00D_0001;

    impl Drop for Canary {
        fn drop(&mut self) {
            self.alive = 0;
            self.dropped.store(true, Ordering::SeqCst);
        }
    }

    fn canary() -> (Arc<Canary>, Arc<AtomicBool>) {
        let dropped = Arc::new(AtomicBool::new(false));
        let c = Arc::new(Canary {
            alive: ALIVE,
            dropped: dropped.clone(),
        });
        (c, dropped)
    }

    /// Opens a section on a new thread, runs `inside` in it, and keeps it open until the returned
    /// sender is used; join the handle after.
    fn section_elsewhere(
        inside: impl FnOnce(&Section) + Send + 'static,
    ) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (leave_tx, leave_rx) = mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let s = enter();
            inside(&s);
            entered_tx.send(()).unwrap();
            leave_rx.recv().unwrap();
        });
        entered_rx.recv().unwrap();
        (leave_tx, t)
    }

    /// A value replaced while another thread's section is open is kept until that section ends,
    /// and freed as it ends.
    #[test]
    fn a_replaced_value_outlives_the_sections_that_may_use_it() {
        alone(
            "rcu::tests::a_replaced_value_outlives_the_sections_that_may_use_it",
            || {
                let (first, first_dropped) = canary();
                let cell = Arc::new(Rcu::new(first));
                let (leave_tx, reader) = {
                    let cell = cell.clone();
                    section_elsewhere(move |s| assert_eq!(cell.load(s).alive, ALIVE))
                };
                let (second, second_dropped) = canary();
                cell.store(second);
                collect();
                assert!(
                    !first_dropped.load(Ordering::SeqCst),
                    "freed under an open section"
                );
                leave_tx.send(()).unwrap();
                reader.join().unwrap();
                // Freed by the reader itself as its section ended: it began before the retire.
                assert!(
                    first_dropped.load(Ordering::SeqCst),
                    "freed once the section ended"
                );
                assert!(!second_dropped.load(Ordering::SeqCst));
                drop(cell);
                assert!(
                    second_dropped.load(Ordering::SeqCst),
                    "the cell's value dropped with it"
                );
            },
        );
    }

    /// A section entered after a replacement does not hold the replaced value back, nested
    /// sections count as one, and a thread's own open section keeps what it may have loaded.
    #[test]
    fn later_and_nested_sections() {
        alone("rcu::tests::later_and_nested_sections", || {
            let (first, first_dropped) = canary();
            let cell = RcuOption::none();
            cell.store(Some(first));
            let outer = enter();
            let inner = enter();
            assert_eq!(cell.load(&inner).map(|c| c.alive), Some(ALIVE));
            drop(inner);
            cell.store(None);
            collect();
            assert!(
                !first_dropped.load(Ordering::SeqCst),
                "the outer section is still open"
            );
            // Another thread's section, begun after the retire, does not hold it back: the outer
            // section's end frees it with that section still open.
            let (leave_tx, t) = section_elsewhere(|_| ());
            drop(outer);
            assert!(
                first_dropped.load(Ordering::SeqCst),
                "no section could still use it"
            );
            leave_tx.send(()).unwrap();
            t.join().unwrap();
        });
    }

    /// `synchronize` does not wait for the caller's own section, and stops waiting for another
    /// thread's section that stays open (after its sleep limit): what either holds stays queued
    /// until a collect after it ends.
    #[test]
    fn synchronize_gives_up_on_a_section_that_stays_open() {
        alone(
            "rcu::tests::synchronize_gives_up_on_a_section_that_stays_open",
            || {
                let (value, dropped) = canary();
                let cell = Rcu::new(value);
                let own = enter();
                let (second, _) = canary();
                cell.store(second);
                synchronize();
                assert!(
                    !dropped.load(Ordering::SeqCst),
                    "held by this thread's own section"
                );
                drop(own);
                synchronize();
                assert!(dropped.load(Ordering::SeqCst), "no section left");

                let (third, third_dropped) = canary();
                cell.store(third);
                let (leave_tx, holder) = section_elsewhere(|_| ());
                let (fourth, _) = canary();
                // `third` is retired while the holder's section (begun before) is open.
                cell.store(fourth);
                synchronize();
                assert!(
                    !third_dropped.load(Ordering::SeqCst),
                    "kept: the section is still open"
                );
                leave_tx.send(()).unwrap();
                holder.join().unwrap();
                synchronize();
                assert!(third_dropped.load(Ordering::SeqCst), "freed once it ended");
            },
        );
    }

    /// `synchronize` returns only after a replaced value that another thread's collect took is
    /// dropped. The drop here blocks until the test lets it go, which it does once `synchronize`
    /// waits for it (or has returned: then it did not wait, and the check fails).
    #[test]
    fn synchronize_waits_for_a_drop_on_another_thread() {
        alone(
            "rcu::tests::synchronize_waits_for_a_drop_on_another_thread",
            || {
                struct Slow {
                    started: Arc<std::sync::Barrier>,
                    go: Arc<std::sync::Barrier>,
                    done: Arc<AtomicBool>,
                }
                impl Drop for Slow {
                    fn drop(&mut self) {
                        self.started.wait();
                        self.go.wait();
                        self.done.store(true, Ordering::SeqCst);
                    }
                }
                let started = Arc::new(std::sync::Barrier::new(2));
                let go = Arc::new(std::sync::Barrier::new(2));
                let done = Arc::new(AtomicBool::new(false));
                let cell = RcuOption::none();
                cell.store(Some(Arc::new(Slow {
                    started: started.clone(),
                    go: go.clone(),
                    done: done.clone(),
                })));
                // Retired while another thread's section (begun before) is open: that thread
                // frees it as its section ends, and blocks in the drop.
                let (leave_tx, holder) = section_elsewhere(|_| ());
                cell.store(None);
                assert_eq!(pending(), 1, "held by the open section");
                leave_tx.send(()).unwrap();
                started.wait();
                assert_eq!(pending(), 0, "taken by the holder's collect");
                let waits = WAITED_FOR_FREEING.load(Ordering::SeqCst);
                let (tx, rx) = mpsc::channel();
                let syncer = {
                    let done = done.clone();
                    std::thread::spawn(move || {
                        synchronize();
                        tx.send(done.load(Ordering::SeqCst)).unwrap();
                    })
                };
                let early = loop {
                    if let Ok(seen) = rx.try_recv() {
                        break Some(seen);
                    }
                    if WAITED_FOR_FREEING.load(Ordering::SeqCst) > waits {
                        break None;
                    }
                    std::thread::yield_now();
                };
                go.wait();
                let seen = early.unwrap_or_else(|| rx.recv().unwrap());
                syncer.join().unwrap();
                holder.join().unwrap();
                assert!(
                    early.is_none() && seen,
                    "synchronize returned while the drop ran on another thread"
                );
            },
        );
    }

    /// Runs test `name` of this binary in a child process with `marker` set (it then runs the
    /// child's part) and with read sections on fences, and asserts that it passes. The guard
    /// against a hang is not a timing check: the child takes milliseconds.
    fn passes_in_a_child(name: &str, marker: &str) {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--test-threads=1", "--nocapture"])
            .env(marker, "1")
            .env("RINGLOG_NO_MEMBARRIER", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut waited = 0;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if waited == 600 {
                let _ = child.kill();
                panic!("{name}: the child hangs");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            waited += 1;
        };
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            status.success() && stdout.contains("1 passed"),
            "{status}\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A logger that replaces an RCU value (writes into a database whose key index grows) while
    /// the fence mode is decided by the process's first RCU operation, a replacement: the
    /// decision is logged before `collect` takes its lock, so the logger's retire does not wait
    /// for that lock (found in review: it deadlocked).
    #[test]
    fn a_logger_that_retires_while_the_mode_is_decided() {
        const NAME: &str = "rcu::tests::a_logger_that_retires_while_the_mode_is_decided";
        if std::env::var_os("RINGLOG_RCU_RETIRING_CHILD").is_some() {
            struct Retiring;
            impl log::Log for Retiring {
                fn enabled(&self, _: &log::Metadata<'_>) -> bool {
                    true
                }
                fn log(&self, _: &log::Record<'_>) {
                    let cell = RcuOption::none();
                    cell.store(Some(Arc::new(1u8)));
                    cell.store(None);
                }
                fn flush(&self) {}
            }
            log::set_logger(Box::leak(Box::new(Retiring))).unwrap();
            log::set_max_level(log::LevelFilter::Debug);
            assert_eq!(
                MODE.load(Ordering::Relaxed),
                UNDECIDED,
                "nothing decided yet"
            );
            let cell = Rcu::new(Arc::new(0u8));
            cell.store(Arc::new(1u8));
            assert_eq!(MODE.load(Ordering::Relaxed), FENCES);
            return;
        }
        passes_in_a_child(NAME, "RINGLOG_RCU_RETIRING_CHILD");
    }

    /// A logger that reads a database (so enters read sections) while the fence mode is being
    /// decided and logged: the decision is logged after it is made, so the logger's own section
    /// finds it made (a log inside the decision re-entered it: a recursive `Once`, which blocks
    /// or panics). Runs in a child process (the logger and the mode are process-wide), with a
    /// guard against a hang.
    #[test]
    fn a_logger_that_reads_while_the_mode_is_logged() {
        const NAME: &str = "rcu::tests::a_logger_that_reads_while_the_mode_is_logged";
        if std::env::var_os("RINGLOG_RCU_LOGGER_CHILD").is_some() {
            struct Reading;
            impl log::Log for Reading {
                fn enabled(&self, _: &log::Metadata<'_>) -> bool {
                    true
                }
                fn log(&self, _: &log::Record<'_>) {
                    let (value, _) = canary();
                    let cell = Rcu::new(value);
                    let s = enter();
                    assert_eq!(cell.load(&s).alive, ALIVE);
                }
                fn flush(&self) {}
            }
            log::set_logger(Box::leak(Box::new(Reading))).unwrap();
            log::set_max_level(log::LevelFilter::Debug);
            assert_eq!(
                MODE.load(Ordering::Relaxed),
                UNDECIDED,
                "nothing decided yet"
            );
            drop(enter());
            assert_eq!(MODE.load(Ordering::Relaxed), FENCES);
            return;
        }
        passes_in_a_child(NAME, "RINGLOG_RCU_LOGGER_CHILD");
    }

    /// Readers on several threads load a value that a writer keeps replacing: every value they
    /// reach is intact (a value freed too early would show its cleared canary), and at the end
    /// every replaced value was freed.
    #[test]
    fn readers_never_see_a_freed_value() {
        alone("rcu::tests::readers_never_see_a_freed_value", || {
            let (first, _) = canary();
            let cell = Arc::new(Rcu::new(first));
            let stop = Arc::new(AtomicBool::new(false));
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    let (cell, stop) = (cell.clone(), stop.clone());
                    std::thread::spawn(move || {
                        let mut reads = 0u64;
                        while !stop.load(Ordering::Relaxed) || reads < 1000 {
                            let s = enter();
                            assert_eq!(cell.load(&s).alive, ALIVE);
                            drop(s);
                            assert_eq!(cell.load_full().alive, ALIVE);
                            reads += 1;
                        }
                    })
                })
                .collect();
            let mut flags = Vec::new();
            for _ in 0..2000 {
                let (c, dropped) = canary();
                cell.store(c);
                flags.push(dropped);
            }
            stop.store(true, Ordering::Relaxed);
            for r in readers {
                r.join().unwrap();
            }
            collect();
            let last = flags.pop().unwrap();
            assert!(
                flags.iter().all(|f| f.load(Ordering::SeqCst)),
                "every replaced value freed"
            );
            assert!(!last.load(Ordering::SeqCst), "the current value lives");
            assert_eq!(pending(), 0);
        });
    }
}
