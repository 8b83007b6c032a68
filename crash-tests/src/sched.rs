//! A deterministic scheduler for the simulated disk: the engine's log thread and the workload's
//! committer threads run one at a time, in an order a seeded runner chooses, on simulated time.
//!
//! The log thread stops at two gates of the simulated [`LogDriver`](ringlog_db::io::LogDriver):
//! its `wait` (it may leave only when woken through its waker or when its timeout has passed on the
//! simulated clock) and each `write_durable` (before anything is written). A committer stops
//! where the engine tells the disk it is about to block ([`Vfs::will_block`]), or when its step
//! returns. The runner lets exactly one actor go at a time and waits until every actor is stopped
//! again ("settled") before choosing the next; so which commits a round carries, when the
//! `Buffered` timer fires and where every acknowledgement falls in the I/O trace depend on the
//! seed alone, and a failure replays exactly.
//!
//! A state in which no actor may go and no timer is armed, while steps are still waiting, is a
//! deadlock: the liveness oracle reports it.
//!
//! [`Vfs::will_block`]: ringlog_db::io::Vfs::will_block

use std::cell::Cell;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};
use ringlog_db::io::BlockReason;

thread_local! {
    /// The committer index of the current thread, if it is a scheduled committer.
    static COMMITTER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Marks the current thread as scheduled committer `c` (or as none).
pub fn set_committer(c: Option<usize>) {
    COMMITTER.with(|x| x.set(c));
}

/// Where the log thread is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogAt {
    /// No log thread (not started yet, or gone).
    Absent,
    /// Running between gates.
    Running,
    /// In its driver's `wait`, with the simulated time its timeout ends at (if any).
    Waiting(Option<Duration>),
    /// At the start of a `write_durable`.
    Writing,
}

/// The scheduler's shared state.
#[derive(Debug)]
pub struct SchedState {
    /// Simulated time since the scheduler was made.
    pub clock: Duration,
    /// The log thread's position.
    pub log: LogAt,
    /// The runner let the log thread leave its gate; consumed by the log thread.
    go: bool,
    /// A wake was delivered to the log thread's waker and not consumed by a `wait` yet.
    pub woken: bool,
    /// Gates open: everything runs freely (closing, or an unscheduled run).
    pub free: bool,
    /// Per committer: where it is parked, if the engine said it is about to block.
    pub parked: Vec<Option<BlockReason>>,
    /// Per committer: how many times it announced it would block (a step may block several
    /// times, e.g. a checkpoint that commits garbage collection's copies and then waits for its
    /// LSN to be durable: each wait has its own target).
    pub parks: Vec<u64>,
    /// Per committer: its step is running (set by the runner, cleared by the committer thread).
    pub busy: Vec<bool>,
    /// Rounds written (gates passed at `write_durable`).
    pub rounds: u64,
    /// Simulated latency of the next round's write + sync.
    pub latency: Duration,
    /// Log writes a pipelined simulated driver holds in flight (submitted, not completed).
    pub in_flight: usize,
}

/// The scheduler: shared by the simulated disk, its log driver and the runner.
#[derive(Debug)]
pub struct Sched {
    st: Mutex<SchedState>,
    cv: Condvar,
    base: Instant,
}

impl Sched {
    /// A scheduler for `committers` committer threads, gates closed.
    pub fn new(committers: usize) -> Sched {
        Sched {
            st: Mutex::new(SchedState {
                clock: Duration::ZERO,
                log: LogAt::Absent,
                go: false,
                woken: false,
                free: false,
                parked: vec![None; committers],
                parks: vec![0; committers],
                busy: vec![false; committers],
                rounds: 0,
                latency: Duration::ZERO,
                in_flight: 0,
            }),
            cv: Condvar::new(),
            base: Instant::now(),
        }
    }

    /// The state, locked.
    pub fn lock(&self) -> MutexGuard<'_, SchedState> {
        self.st.lock()
    }

    /// Waits (with the state locked) until something changes.
    pub fn wait_change(&self, g: &mut MutexGuard<'_, SchedState>, limit: Duration) -> bool {
        !self.cv.wait_for(g, limit).timed_out()
    }

    fn notify(&self) {
        self.cv.notify_all();
    }

    /// The simulated clock as an `Instant` (what [`ringlog_db::io::Vfs::now`] returns).
    pub fn now(&self) -> Instant {
        self.base + self.st.lock().clock
    }

    /// Opens every gate for good: the database closes (or the run is not scheduled).
    pub fn free_run(&self) {
        self.st.lock().free = true;
        self.notify();
    }

    /// The log thread's driver was made: a log thread is about to run.
    pub fn log_started(&self) {
        self.st.lock().log = LogAt::Running;
        self.notify();
    }

    /// A wake for the log thread (its waker).
    pub fn wake(&self) {
        self.st.lock().woken = true;
        self.notify();
    }

    /// The current thread, if a committer, is about to block for `why`.
    pub fn will_block(&self, why: BlockReason) {
        if let Some(c) = COMMITTER.with(|x| x.get()) {
            let mut g = self.st.lock();
            if let Some(p) = g.parked.get_mut(c) {
                *p = Some(why);
            }
            if let Some(n) = g.parks.get_mut(c) {
                *n += 1;
            }
            drop(g);
            self.notify();
        }
    }

    /// Committer `c` finished its step (called by the committer thread).
    pub fn committer_done(&self, c: usize) {
        let mut g = self.st.lock();
        g.parked[c] = None;
        g.busy[c] = false;
        drop(g);
        self.notify();
    }

    /// The runner starts a step on committer `c`.
    pub fn committer_start(&self, c: usize) {
        let mut g = self.st.lock();
        g.parked[c] = None;
        g.busy[c] = true;
    }

    /// The log thread's gate at `wait(timeout)`: returns when the runner lets it go (or gates are
    /// open: then at once if woken or after a short real wait, as an unscheduled driver would).
    pub fn gate_wait(&self, timeout: Option<Duration>) {
        let mut g = self.st.lock();
        if g.free {
            if !g.woken {
                // Free running (closing): the engine only waits here when it has nothing to do.
                let limit = timeout
                    .unwrap_or(Duration::from_millis(5))
                    .min(Duration::from_millis(5));
                let _ = self.cv.wait_for(&mut g, limit);
            }
            g.woken = false;
            return;
        }
        let deadline = timeout.map(|t| g.clock + t);
        g.log = LogAt::Waiting(deadline);
        self.notify();
        while !g.go && !g.free {
            self.cv.wait(&mut g);
        }
        g.go = false;
        g.woken = false;
        g.log = LogAt::Running;
    }

    /// The log thread's first gate, as it starts: it waits there as if woken (it may go as soon as
    /// the runner chooses), so that what it first finds does not depend on thread start-up timing.
    pub fn gate_start(&self) {
        self.st.lock().woken = true;
        self.gate_wait(None);
    }

    /// The log thread's gate before a round's write: returns when the runner lets it go. The
    /// round's simulated latency then passes on the clock.
    pub fn gate_write(&self) {
        let mut g = self.st.lock();
        if !g.free {
            g.log = LogAt::Writing;
            self.notify();
            while !g.go && !g.free {
                self.cv.wait(&mut g);
            }
            g.go = false;
            g.log = LogAt::Running;
        }
        g.rounds += 1;
        let l = g.latency;
        g.clock += l;
    }

    /// Whether the log thread may leave its gate now: at a write always; in a wait when woken or
    /// when its timeout has passed.
    pub fn log_runnable(g: &SchedState) -> bool {
        match g.log {
            LogAt::Writing => true,
            LogAt::Waiting(deadline) => g.woken || deadline.is_some_and(|d| d <= g.clock),
            LogAt::Absent | LogAt::Running => false,
        }
    }

    /// Lets the log thread leave its gate (the runner checked [`Sched::log_runnable`]).
    pub fn release_log(&self, g: &mut MutexGuard<'_, SchedState>) {
        g.go = true;
        g.log = LogAt::Running;
        self.notify();
    }

    /// Advances the simulated clock to `to` (never backwards).
    pub fn advance_to(&self, g: &mut MutexGuard<'_, SchedState>, to: Duration) {
        if to > g.clock {
            g.clock = to;
        }
    }
}
