//! The seeded workload: a small hot key space, multi-key transactions, overwrites and deletes, a
//! mix of durability overrides and explicit syncs. Every value encodes the transaction that wrote
//! it, the key, the operation's index and the transaction's size, plus a checksum, so any bytes
//! read back map to exactly one write (or to none: invariant I1).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ringlog_db::{Db, Durability, Snapshot};

use crate::model::Policy;
use crate::rng::Rng;

/// The database's default durability in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `Durability::Strict`.
    Strict,
    /// `Durability::Buffered` (window from [`WorkloadConfig`]).
    Buffered,
    /// `Durability::InMemory`.
    InMemory,
}

impl Mode {
    /// Parses `strict`, `buffered` or `inmemory`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "strict" => Some(Mode::Strict),
            "buffered" => Some(Mode::Buffered),
            "inmemory" | "in-memory" | "memory" => Some(Mode::InMemory),
            _ => None,
        }
    }

    /// The name [`Mode::parse`] accepts.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Strict => "strict",
            Mode::Buffered => "buffered",
            Mode::InMemory => "inmemory",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a workload does; everything else derives from `seed`.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// Seed of every choice.
    pub seed: u64,
    /// Default durability of the database.
    pub mode: Mode,
    /// Size of the hot key space (1..=9999).
    pub keys: u16,
    /// `Buffered` window: longest time a commit stays unsynced.
    pub interval: Duration,
    /// `Buffered` window: pending bytes that trigger a sync.
    pub max_pending: usize,
    /// Pauses sleep in real time ([`Workload::execute`]); otherwise they are simulated time, which
    /// the caller advances (the `power` scheduler), and `execute` returns at once.
    pub real_time: bool,
}

impl WorkloadConfig {
    /// The database's default durability.
    pub fn durability(&self) -> Durability {
        match self.mode {
            Mode::Strict => Durability::Strict,
            Mode::Buffered => self.buffered(),
            Mode::InMemory => Durability::InMemory,
        }
    }

    fn buffered(&self) -> Durability {
        Durability::Buffered {
            interval: self.interval,
            max_pending: self.max_pending,
        }
    }
}

/// How one transaction is committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    /// With the database's default durability.
    Default,
    /// `commit_with(Strict)`.
    Strict,
    /// `commit_with(Buffered { .. })`.
    Buffered,
}

/// One operation of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpSpec {
    /// Key index.
    pub key: u16,
    /// Value length for a put; `None` for a delete.
    pub value_len: Option<u32>,
}

/// One step of the workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A transaction.
    Txn {
        /// Its operations, in order.
        ops: Vec<OpSpec>,
        /// How it commits.
        commit: Commit,
    },
    /// An optimistic read-modify-write transaction: `db.begin()`, a tracked read of every key
    /// it writes (and, with `scan`, a tracked scan of keys `lo..hi`), then the writes of a
    /// [`Step::Txn`] and the commit. Under concurrent committers it may be refused with
    /// `Error::Conflict` (recorded, [`TxnRec`]); when it commits it writes what the same
    /// [`Step::Txn`] would.
    Rmw {
        /// Its operations, in order.
        ops: Vec<OpSpec>,
        /// How it commits.
        commit: Commit,
        /// A tracked scan of keys `lo..hi` before the writes.
        scan: Option<(u16, u16)>,
        /// A condition probed before the transaction: a transaction of its own that writes
        /// nothing, with `fail_if_changed(keys lo..hi, Some(last - back))` (`last` the last LSN
        /// before it began; `back` 0–7, and 8 for `None`: no key of the range may exist),
        /// committed — so it is checked at its snapshot. It writes nothing either way, so the
        /// step's writes and the trace are the same with it or without it.
        cond: Option<(u16, u16, u64)>,
    },
    /// `db.sync()`.
    Sync,
    /// No database call for this long: the `Buffered` timer (or nothing) starts the next round.
    /// Simulated time in `power` mode, real time elsewhere.
    Pause(Duration),
    /// A step left out by shrinking: runs nothing, changes nothing.
    Skip,
    /// `db.snapshot()` into slot `slot` of the session (dropping the snapshot held there), then
    /// `read` through it. Snapshots live until a later step replaces or drops them, so history
    /// trims must keep what they see.
    Snapshot {
        /// Slot (`0..SLOTS`).
        slot: u8,
        /// The read made through the new snapshot.
        read: ReadSpec,
    },
    /// Drops the snapshot in `slot`, if any.
    DropSnapshot {
        /// Slot (`0..SLOTS`).
        slot: u8,
    },
    /// A read: of the newest state, at an older version, ahead of the visible LSN, or through a
    /// snapshot of the session. Recorded ([`ReadRec`]) and checked against the model.
    Read(ReadSpec),
    /// `db.trim_history()`: a history trim now. On the scheduler, every earlier step finishes
    /// first and the runner itself calls it.
    Trim,
    /// `db.set_retention(policy)`: a commit (of the system key space), `Strict` whatever the
    /// database's durability. On the scheduler it runs alone: every earlier step finishes first,
    /// and no later step starts before it returns, so each read knows the policy it ran under.
    Retain(Policy),
    /// `db.checkpoint()`: a checkpoint at the visible LSN, then compaction (the previous
    /// checkpoint and the log segments wholly below it are deleted). Commits nothing; what it
    /// returned is recorded ([`CheckpointRec`]). On the scheduler it runs alone, like a
    /// retention policy: its own I/O must not interleave with the log thread's (a replay would
    /// depend on timing).
    Checkpoint,
}

/// Snapshot slots of a session.
pub const SLOTS: usize = 3;

/// Where a read reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The newest visible state (`db.get`, `db.range`, `db.prefix`).
    Latest,
    /// This many LSNs below the visible LSN (`db.get_at`, `db.range_at`, `db.prefix_at`).
    Back(u64),
    /// This many LSNs above the visible LSN (at least 1): `NotYetVisible`.
    Ahead(u64),
    /// Through the snapshot in this slot, or else in the next slot that holds one (`get`,
    /// `range`, `prefix`, `iter`).
    Slot(u8),
}

/// Which keys a read covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// One key (a point read).
    One(u16),
    /// Keys `lo..hi` (a range scan).
    Range(u16, u16),
    /// The keys `k{p:03}0`..`k{p:03}9` (a prefix scan).
    Prefix(u16),
    /// Every key (a full scan).
    All,
}

/// One read of the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadSpec {
    /// Where it reads.
    pub src: Source,
    /// Which keys.
    pub keys: Keys,
    /// A scan runs backwards.
    pub reverse: bool,
}

/// How a read failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadErr {
    /// `Error::HistoryTrimmed`.
    Trimmed {
        /// The LSN asked for.
        requested: u64,
        /// The oldest LSN readable.
        earliest: u64,
    },
    /// `Error::NotYetVisible`.
    NotYet {
        /// The LSN asked for.
        requested: u64,
        /// The visible LSN.
        visible: u64,
    },
    /// Any other error.
    Other(String),
}

impl fmt::Display for ReadErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadErr::Trimmed {
                requested,
                earliest,
            } => write!(
                f,
                "HistoryTrimmed {{ requested: {requested}, earliest_retained: {earliest} }}"
            ),
            ReadErr::NotYet { requested, visible } => {
                write!(
                    f,
                    "NotYetVisible {{ requested: {requested}, visible: {visible} }}"
                )
            }
            ReadErr::Other(e) => f.write_str(e),
        }
    }
}

impl From<ringlog_db::Error> for ReadErr {
    fn from(e: ringlog_db::Error) -> ReadErr {
        match e {
            ringlog_db::Error::HistoryTrimmed {
                requested,
                earliest_retained,
            } => ReadErr::Trimmed {
                requested,
                earliest: earliest_retained,
            },
            ringlog_db::Error::NotYetVisible { requested, visible } => {
                ReadErr::NotYet { requested, visible }
            }
            other => ReadErr::Other(other.to_string()),
        }
    }
}

/// A read as it happened, recorded for the oracle.
#[derive(Clone, Debug)]
pub struct ReadRec {
    /// The step that read.
    pub step: u64,
    /// The API called, e.g. `range_at` or `snapshot.get`.
    pub api: &'static str,
    /// Where it read.
    pub src: Source,
    /// The LSN it read at: the snapshot's, the one asked for, or (newest state) the visible LSN
    /// before the call.
    pub lsn: u64,
    /// `db.last_lsn()` right before and right after the read.
    pub visible: (u64, u64),
    /// `db.durable_lsn()` right after the read.
    pub durable: u64,
    /// The oldest snapshot the session held during the read (none was dropped meanwhile).
    pub pinned: Option<u64>,
    /// The keys covered: `lo..hi`.
    pub keys: (u16, u16),
    /// A scan ran backwards.
    pub reverse: bool,
    /// A point read (as opposed to a scan).
    pub point: bool,
    /// The snapshot was taken by this very step (its LSN must be the visible one).
    pub fresh: bool,
    /// The entries returned, in the order returned: key index and what it held.
    pub out: Result<Vec<(u16, Cell)>, ReadErr>,
    /// Entries that are no write of the workload (I1).
    pub aliens: Vec<Alien>,
    /// Where it happened (trace position), read after the read.
    pub at: u64,
}

/// A checkpoint as it happened ([`Step::Checkpoint`]), recorded for the oracle.
#[derive(Clone, Debug)]
pub struct CheckpointRec {
    /// The step.
    pub step: u64,
    /// `db.last_lsn()` right before the call: the checkpoint's LSN is at least this.
    pub visible: u64,
    /// What `checkpoint()` returned.
    pub info: ringlog_db::CheckpointInfo,
    /// `db.durable_lsn()` right after it returned: at least the checkpoint's LSN.
    pub durable: u64,
    /// Where it returned (trace position).
    pub at: u64,
}

/// An optimistic transaction ([`Step::Rmw`]) as it happened, recorded for the oracle.
#[derive(Clone, Debug)]
pub struct TxnRec {
    /// The step.
    pub step: u64,
    /// Its snapshot (`None` if it failed before reading).
    pub snapshot: Option<u64>,
    /// The keys it read (tracked).
    pub reads: Vec<u16>,
    /// The keys `lo..hi` it scanned (tracked).
    pub scan: Option<(u16, u16)>,
    /// A condition's probe ([`Step::Rmw`]'s `cond`, a transaction that writes nothing and whose
    /// commit returns its snapshot's LSN): keys `lo..hi` not written after LSN `after` (at most
    /// its snapshot). `None` for the read-modify-write itself.
    pub cond: Option<(u16, u16, u64)>,
    /// How it ended.
    pub outcome: TxnOutcome,
}

impl TxnRec {
    /// Whether writing key `k` after the snapshot conflicts with what it read.
    pub fn read(&self, k: u16) -> bool {
        self.reads.contains(&k)
            || self.scan.is_some_and(|(lo, hi)| (lo..hi).contains(&k))
            || self.cond.is_some_and(|(lo, hi, _)| (lo..hi).contains(&k))
    }
}

/// How an optimistic transaction ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Committed with this LSN.
    Committed(u64),
    /// Refused: a conflict with the commit at `by_lsn`.
    Conflict {
        /// What the error named.
        by_lsn: u64,
    },
    /// Another error.
    Failed(String),
}

/// What the steps of one run share: the snapshot slots and the record of every read.
#[derive(Default)]
pub struct Session {
    snaps: Mutex<Vec<Option<Snapshot>>>,
    reads: Mutex<Vec<ReadRec>>,
    checkpoints: Mutex<Vec<CheckpointRec>>,
    txns: Mutex<Vec<TxnRec>>,
    /// The engine's trim floor (`stats().history_floor`) after each step that may raise it (a
    /// trim, a retention policy): (position, floor).
    floors: Mutex<Vec<(u64, u64)>>,
    position: Option<Box<dyn Fn() -> u64 + Send + Sync>>,
    /// Counters (known engine issues stepped around).
    counts: Mutex<crate::versions::Counts>,
    /// A call that did not return ([`trim`]): what it was.
    stuck: Mutex<Option<String>>,
    /// The first commit that returned before it was visible ([`Workload::execute`]).
    unseen: Mutex<Option<String>>,
    /// The virtual wall clock of the database the steps run on, when it has one
    /// ([`Session::set_clock`]).
    clock: Option<Arc<AtomicU64>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("reads", &self.reads.lock().len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session whose reads are stamped with position 0.
    pub fn new() -> Session {
        Session::default()
    }

    /// A session whose reads are stamped with `position()` (the simulated disk's trace
    /// position), read right after each read.
    pub fn with_position(position: impl Fn() -> u64 + Send + Sync + 'static) -> Session {
        Session {
            position: Some(Box::new(position)),
            ..Session::default()
        }
    }

    /// Moves the virtual wall clock of `clock` (a simulated disk's,
    /// [`crate::sim::SimVfs::wall_clock`]) as the steps run: each step sets it to its
    /// [`Workload::clock_at`] time before it runs ([`Session::advance_clock`]).
    pub fn set_clock(mut self, clock: Arc<AtomicU64>) -> Session {
        self.clock = Some(clock);
        self
    }

    /// Moves the virtual wall clock, if the session has one, to `ns` unless it is already past
    /// it (concurrent steps start in the scheduler's order: the clock never goes back).
    pub fn advance_clock(&self, ns: u64) {
        if let Some(c) = &self.clock {
            c.fetch_max(ns, Ordering::SeqCst);
        }
    }

    /// Takes the reads recorded so far.
    pub fn take_reads(&self) -> Vec<ReadRec> {
        std::mem::take(&mut *self.reads.lock())
    }

    /// Number of reads recorded so far (not taken).
    pub fn reads_len(&self) -> usize {
        self.reads.lock().len()
    }

    /// The reads recorded from index `from` on (not taken).
    pub fn reads_from(&self, from: usize) -> Vec<ReadRec> {
        self.reads
            .lock()
            .get(from..)
            .map(<[_]>::to_vec)
            .unwrap_or_default()
    }

    /// Takes the checkpoints recorded so far.
    pub fn take_checkpoints(&self) -> Vec<CheckpointRec> {
        std::mem::take(&mut *self.checkpoints.lock())
    }

    /// Takes the optimistic transactions recorded so far.
    pub fn take_txns(&self) -> Vec<TxnRec> {
        std::mem::take(&mut *self.txns.lock())
    }

    /// Takes the trim floors recorded so far: (position, floor).
    pub fn take_floors(&self) -> Vec<(u64, u64)> {
        std::mem::take(&mut *self.floors.lock())
    }

    fn position(&self) -> u64 {
        self.position.as_ref().map_or(0, |p| p())
    }

    /// Records the engine's trim floor now (after a trim or a retention policy, which run alone on
    /// the scheduler: `stats()` takes locks a step running beside it could hold).
    fn record_floor(&self, db: &Db) {
        let floor = db.stats().history_floor;
        let at = self.position();
        self.floors.lock().push((at, floor));
    }

    /// Takes the counters.
    pub fn take_counts(&self) -> crate::versions::Counts {
        std::mem::take(&mut *self.counts.lock())
    }

    /// The first commit that returned before it was visible, if any.
    pub fn take_unseen(&self) -> Option<String> {
        self.unseen.lock().take()
    }

    /// A call that did not return within [`STUCK_LIMIT`] (the database was closed to end it).
    pub fn stuck(&self) -> Option<String> {
        self.stuck.lock().clone()
    }

    /// Drops every snapshot (before the database closes).
    pub fn drop_snapshots(&self) {
        self.snaps.lock().clear();
    }

    /// LSNs of the snapshots held.
    pub fn snapshot_lsns(&self) -> Vec<u64> {
        self.snaps
            .lock()
            .iter()
            .flatten()
            .map(Snapshot::lsn)
            .collect()
    }
}

/// A workload: step `i` of generation `gen` is a pure function of (seed, gen, i), so the process
/// that runs it and the process that checks it generate the same steps independently.
#[derive(Clone, Debug)]
pub struct Workload {
    /// The configuration.
    pub cfg: WorkloadConfig,
    /// Steps `(generation, step)` left out (a shrunk failure's reproduction): each becomes
    /// [`Step::Skip`]. Empty unless shrinking.
    pub skip: Arc<BTreeSet<(u32, u64)>>,
    /// The last step of every generation, when the runner closes the database after it (0: not
    /// known). A third of the generations then checkpoint at that step, so that the close that
    /// follows finds the checkpoint holding the last LSN and retires the log; a third of the
    /// others trim there, so that the close follows a trim.
    pub last_step: u64,
}

/// Virtual wall-clock time per workload step ([`Workload::clock_at`]): 1 ms, the engine's
/// commit-time sampling interval.
pub const CLOCK_TICK_NS: u64 = 1_000_000;

/// Identifies a transaction across generations: `gen << 32 | step`.
pub fn txn_id(gen: u32, step: u64) -> u64 {
    ((gen as u64) << 32) | step
}

/// The key bytes of key index `k`.
pub fn key_bytes(k: u16) -> Vec<u8> {
    format!("k{k:04}").into_bytes()
}

/// Probes condition `(lo, hi, back)` of step `i` ([`Step::Rmw`]'s `cond`): a transaction that
/// writes nothing, with `fail_if_changed(keys lo..hi, Some(last - back))` — `None` for `back` 8
/// (no key of the range may exist at all: recorded as after LSN 0) — committed. Its commit checks
/// the condition at its snapshot and returns the snapshot's LSN, or `Conflict` naming the
/// version that broke it.
fn probe_condition(db: &Db, i: u64, (lo, hi, back): (u16, u16, u64)) -> TxnRec {
    let after = (back < 8).then(|| db.last_lsn().saturating_sub(back));
    let mut tx = db.begin();
    let mut rec = TxnRec {
        step: i,
        snapshot: None,
        reads: Vec::new(),
        scan: None,
        cond: Some((lo, hi, after.unwrap_or(0))),
        outcome: TxnOutcome::Failed(String::new()),
    };
    let res = tx
        .fail_if_changed(key_bytes(lo)..key_bytes(hi), after)
        .and_then(|()| {
            rec.snapshot = tx.snapshot_lsn();
            tx.commit()
        });
    rec.outcome = outcome_of(&res);
    rec
}

/// How a transaction's commit ended, for its [`TxnRec`].
fn outcome_of(res: &ringlog_db::Result<u64>) -> TxnOutcome {
    match res {
        Ok(lsn) => TxnOutcome::Committed(*lsn),
        Err(ringlog_db::Error::Conflict { by_lsn, .. }) => TxnOutcome::Conflict { by_lsn: *by_lsn },
        Err(e) => TxnOutcome::Failed(e.to_string()),
    }
}

/// The key index of key bytes, if they are a workload key.
pub fn parse_key(b: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(b).ok()?;
    let d = s.strip_prefix('k')?;
    if d.len() != 4 || !d.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    d.parse().ok()
}

/// Smallest value: the fixed fields and the checksum.
pub const VALUE_MIN: usize = 20;
const VALUE_MAGIC: u16 = 0xA55A;

/// The exact bytes written by operation `op` (of `size` operations) of transaction `txn` on `key`.
pub fn encode_value(txn: u64, key: u16, op: u16, size: u16, len: usize) -> Vec<u8> {
    let len = len.max(VALUE_MIN);
    let mut v = vec![0u8; len];
    v[0..8].copy_from_slice(&txn.to_le_bytes());
    v[8..10].copy_from_slice(&key.to_le_bytes());
    v[10..12].copy_from_slice(&op.to_le_bytes());
    v[12..14].copy_from_slice(&size.to_le_bytes());
    v[14..16].copy_from_slice(&VALUE_MAGIC.to_le_bytes());
    Rng::from_words(&[txn, op as u64, 0xF111]).fill(&mut v[16..len - 4]);
    let crc = crc32c::crc32c(&v[..len - 4]);
    v[len - 4..].copy_from_slice(&crc.to_le_bytes());
    v
}

/// Which write a value claims to come from: (txn id, op index), if its framing and checksum hold.
pub fn decode_value(key: u16, v: &[u8]) -> Option<(u64, u16)> {
    if v.len() < VALUE_MIN {
        return None;
    }
    let n = v.len();
    let crc = u32::from_le_bytes(v[n - 4..].try_into().ok()?);
    if crc32c::crc32c(&v[..n - 4]) != crc
        || u16::from_le_bytes([v[14], v[15]]) != VALUE_MAGIC
        || u16::from_le_bytes([v[8], v[9]]) != key
    {
        return None;
    }
    let txn = u64::from_le_bytes(v[0..8].try_into().ok()?);
    let op = u16::from_le_bytes([v[10], v[11]]);
    Some((txn, op))
}

impl Workload {
    /// A workload with `cfg`.
    pub fn new(cfg: WorkloadConfig) -> Workload {
        Workload {
            cfg,
            skip: Arc::default(),
            last_step: 0,
        }
    }

    /// Per mille of the steps that are checkpoints ([`Step::Checkpoint`]): 30 in the simulated
    /// modes (about four per 120-step generation), 5 on a real directory (`kill` children, about
    /// one every 140 commits; their databases also checkpoint in the background every MiB of log,
    /// see [`crate::setup::Setup::checkpoint_bytes`]). None for an in-memory database, which has
    /// no directory to checkpoint into.
    pub fn checkpoint_per_mille(&self) -> u64 {
        match (self.cfg.mode, self.cfg.real_time) {
            (Mode::InMemory, _) => 0,
            (_, false) => 30,
            (_, true) => 5,
        }
    }

    /// The virtual wall-clock time (nanoseconds since the Unix epoch) when step `i` of generation
    /// `gen` starts (step 0: when the generation's database opens), on the simulated disks'
    /// clock ([`crate::sim::SimVfs::vfs`]): one [`CLOCK_TICK_NS`] per step plus a seeded jitter
    /// below it, so it only rises; a generation starts where the previous one's last step would
    /// have (the time its crash cut short passed while the database was down). The runner sets
    /// it before each step ([`Session::advance_clock`]) and before each recovery of a crash state
    /// (the time of the last step started before the crash).
    pub fn clock_at(&self, gen: u32, i: u64) -> u64 {
        let span = if self.last_step == 0 {
            1 << 20
        } else {
            self.last_step + 1
        };
        let jitter = if i == 0 {
            0
        } else {
            Rng::from_words(&[self.cfg.seed, gen as u64, i, 0xC10C]).below(CLOCK_TICK_NS)
        };
        crate::sim::WALL_EPOCH_NS
            + (gen.saturating_sub(1) as u64 * span + i) * CLOCK_TICK_NS
            + jitter
    }

    /// Step `i` (from 1) of generation `gen`.
    pub fn step(&self, gen: u32, i: u64) -> Step {
        if self.skip.contains(&(gen, i)) {
            return Step::Skip;
        }
        // Checkpoints: drawn from their own stream, so that every other step is the one it
        // always was (a checkpoint replaces a step, of whatever kind, at this rate).
        let rate = self.checkpoint_per_mille();
        if rate > 0 && Rng::from_words(&[self.cfg.seed, gen as u64, i, 0xC4EC]).chance(rate) {
            return Step::Checkpoint;
        }
        if rate > 0
            && i == self.last_step
            && Rng::from_words(&[self.cfg.seed, gen as u64, 0xC105E]).chance(333)
        {
            return Step::Checkpoint;
        }
        // A third of the generations after the first open with a checkpoint (their own stream):
        // a run that has committed nothing yet checkpoints the state recovery left — with values
        // on disk, a garbage collection whose copies are that run's first commits (a checkpoint
        // there waited for a log thread nobody had started: CHANGELOG, "Fixed").
        if rate > 0
            && i == 1
            && gen > 1
            && Rng::from_words(&[self.cfg.seed, gen as u64, 0xF125]).chance(333)
        {
            return Step::Checkpoint;
        }
        // A third of the other generations trim at that step (their own stream): under
        // `NewerThan` the close then follows a trim that may have raised the floor over versions
        // the last checkpoint holds, which only the close can record (docs/DURABILITY.md 6.4).
        if rate > 0
            && i == self.last_step
            && Rng::from_words(&[self.cfg.seed, gen as u64, 0x7E1A5]).chance(500)
        {
            return Step::Trim;
        }
        // `NewerThan` policies: one step in a hundred, drawn from their own stream, so that about
        // one generation in three sets one (the policy steps below rarely would).
        let mut w = Rng::from_words(&[self.cfg.seed, gen as u64, i, 0x7E77]);
        if w.chance(10) {
            return Step::Retain(Policy::NewerThan(w.range(12, 48)));
        }
        // Reads, snapshots, trims and retention policies: a quarter of the steps, drawn from their
        // own stream, so that every other step is the transaction (or sync, pause) it always was.
        let mut v = Rng::from_words(&[self.cfg.seed, gen as u64, i, 0x7E25]);
        if v.chance(250) {
            return self.version_step(&mut v);
        }
        let mut r = Rng::from_words(&[self.cfg.seed, gen as u64, i, 0x5EED]);
        let roll = r.below(100);
        let in_memory = self.cfg.mode == Mode::InMemory;
        // Quiet stretches (half of the 16-step windows of a Buffered run): no sync() and no
        // Strict override, so that rounds are started by the timer and the pending limit.
        let quiet = self.cfg.mode == Mode::Buffered
            && Rng::from_words(&[self.cfg.seed, gen as u64, i / 16, 0x0017]).chance(500);
        if !in_memory && roll < 6 && !quiet {
            return Step::Sync;
        }
        if !in_memory && (6..10).contains(&roll) {
            // A pause of half to three times the Buffered interval.
            let ms = self.cfg.interval.as_micros() as u64;
            return Step::Pause(Duration::from_micros(r.range(ms / 2, 3 * ms + 1)));
        }
        let commit = if in_memory {
            Commit::Default
        } else {
            match (self.cfg.mode, r.below(100)) {
                (Mode::Strict, x) if x < 15 => Commit::Buffered,
                (Mode::Buffered, x) if x < 15 && !quiet => Commit::Strict,
                _ => Commit::Default,
            }
        };
        let n = match r.below(100) {
            0..=54 => 1,
            55..=84 => r.range(2, 4),
            _ => r.range(5, 10),
        };
        let keys = self.cfg.keys.max(1) as u64;
        let hot = (keys / 4).max(1);
        let ops = (0..n)
            .map(|_| {
                let key = if r.chance(500) {
                    r.below(hot)
                } else {
                    r.below(keys)
                } as u16;
                let value_len = if r.chance(200) {
                    None
                } else {
                    Some(match r.below(100) {
                        0..=69 => r.range(VALUE_MIN as u64, 120),
                        70..=94 => r.range(121, 700),
                        _ => r.range(701, 3000),
                    } as u32)
                };
                OpSpec { key, value_len }
            })
            .collect();
        // A quarter of the transactions read what they write first, optimistically (drawn from
        // their own stream: every other choice of the step is the one it always was).
        let mut o = Rng::from_words(&[self.cfg.seed, gen as u64, i, 0x0CC7]);
        if o.chance(250) {
            let scan = o.chance(300).then(|| {
                let lo = o.below(keys) as u16;
                let len = o.range(1, (keys / 4).max(2)) as u16;
                (lo, lo.saturating_add(len).min(keys as u16))
            });
            let cond = o.chance(300).then(|| {
                let lo = o.below(keys) as u16;
                let len = o.range(1, (keys / 4).max(2)) as u16;
                (lo, lo.saturating_add(len).min(keys as u16), o.below(9))
            });
            return Step::Rmw {
                ops,
                commit,
                scan,
                cond,
            };
        }
        Step::Txn { ops, commit }
    }

    fn version_step(&self, v: &mut Rng) -> Step {
        let keys = self.cfg.keys.max(1);
        let spec = |v: &mut Rng, src: Source| {
            let k = v.below(keys as u64) as u16;
            let what = match v.below(100) {
                0..=44 => Keys::One(k),
                45..=69 => {
                    let len = v.range(1, (keys as u64 / 2).max(1)) as u16;
                    Keys::Range(k, (k + len).min(keys))
                }
                70..=79 => Keys::Prefix(k / 10),
                _ => Keys::All,
            };
            ReadSpec {
                src,
                keys: what,
                reverse: !matches!(what, Keys::One(_)) && v.chance(300),
            }
        };
        let slot = v.below(SLOTS as u64) as u8;
        match v.below(1000) {
            0..=299 => {
                let back = match v.below(100) {
                    0..=29 => 0,
                    30..=59 => v.range(1, 8),
                    60..=84 => v.range(9, 64),
                    _ => v.range(65, 600),
                };
                Step::Read(spec(v, Source::Back(back)))
            }
            300..=399 => Step::Read(spec(v, Source::Latest)),
            400..=429 => {
                let ahead = v.range(1, 4);
                Step::Read(spec(v, Source::Ahead(ahead)))
            }
            430..=679 => Step::Read(spec(v, Source::Slot(slot))),
            680..=799 => Step::Snapshot {
                slot,
                read: spec(v, Source::Slot(slot)),
            },
            800..=839 => Step::DropSnapshot { slot },
            840..=974 => Step::Trim,
            // About one policy every two generations (once set, a policy stays in force across
            // restarts until another replaces it): recovering a log whose policy keeps history
            // costs about twice as much.
            // A `NewerThan` window spans 16 to 95 steps of the virtual clock ([`Workload::clock_at`]):
            // a trim within a generation finds versions older than it, and newer ones. (Drawn
            // after the rest: every other policy is the one it always was.)
            _ => Step::Retain(match v.below(10) {
                0..=2 => Policy::All,
                3..=4 => Policy::Last(2),
                5 => Policy::Last(v.range(1, 3) as u32),
                _ if v.chance(500) => Policy::NewerThan(v.range(12, 48)),
                _ => Policy::Snapshots,
            }),
        }
    }

    /// Whether a step commits (gets an LSN): a transaction or a retention policy.
    pub fn commits(step: &Step) -> bool {
        matches!(step, Step::Txn { .. } | Step::Rmw { .. } | Step::Retain(_))
    }

    /// The durability a step's commit is acknowledged with: true when the acknowledgement
    /// promises durability (a `Strict` commit, or a sync).
    pub fn promises_durability(&self, step: &Step) -> bool {
        match step {
            Step::Sync => true,
            Step::Txn { commit, .. } | Step::Rmw { commit, .. } => match commit {
                Commit::Strict => true,
                Commit::Buffered => false,
                Commit::Default => self.cfg.mode == Mode::Strict,
            },
            // `Db::set_retention` commits `Strict` whatever the durability of a database with a
            // log: its entry is durable when it returns (before session 31 the oracle promised
            // it only under `Strict`, and a policy committed `Buffered` was caught only by the
            // floor it moved back, which `All` set again no longer moves). An in-memory
            // database has no log.
            Step::Retain(_) => self.cfg.mode != Mode::InMemory,
            _ => false,
        }
    }

    /// Executes step `i` of `gen` on `db`, with the snapshots and the read record of `s`;
    /// returns its LSN (a sync returns the last LSN it covers; a step that commits nothing, the
    /// visible LSN). A read that fails is recorded, not returned.
    pub fn execute(&self, db: &Db, gen: u32, i: u64, s: &Session) -> ringlog_db::Result<u64> {
        s.advance_clock(self.clock_at(gen, i));
        let step = self.step(gen, i);
        let commits = Workload::commits(&step);
        let res = self.execute_step(db, gen, i, step, s);
        // A writer reads its own writes: a commit returns only once it is visible
        // (docs/DURABILITY.md §1, "Visibility").
        if let (Ok(lsn), true) = (&res, commits) {
            let visible = db.last_lsn();
            if visible < *lsn {
                s.unseen.lock().get_or_insert_with(|| {
                    format!(
                        "step {gen}.{i}: its commit (LSN {lsn}) returned while the visible LSN was {visible}: a writer must read its own writes"
                    )
                });
            }
        }
        res
    }

    fn execute_step(
        &self,
        db: &Db,
        gen: u32,
        i: u64,
        step: Step,
        s: &Session,
    ) -> ringlog_db::Result<u64> {
        match step {
            Step::Sync => {
                let upto = db.last_assigned_lsn();
                db.sync()?;
                Ok(upto)
            }
            Step::Read(spec) => {
                self.read(db, i, spec, None, s);
                Ok(db.last_lsn())
            }
            Step::Snapshot { slot, read } => {
                let before = db.last_lsn();
                let snap = db.snapshot();
                let after = db.last_lsn();
                let lsn = snap.lsn();
                s.snaps.lock().resize_with(SLOTS, || None);
                s.snaps.lock()[slot as usize] = Some(snap);
                self.read(db, i, read, Some((before, after)), s);
                Ok(lsn)
            }
            Step::DropSnapshot { slot } => {
                let mut g = s.snaps.lock();
                if let Some(x) = g.get_mut(slot as usize) {
                    *x = None;
                }
                Ok(db.last_lsn())
            }
            Step::Trim => {
                trim(db, s)?;
                Ok(db.last_lsn())
            }
            Step::Retain(p) => {
                let lsn = db.set_retention(p.retention())?;
                s.record_floor(db);
                Ok(lsn)
            }
            Step::Checkpoint => {
                let visible = db.last_lsn();
                let info = db.checkpoint()?;
                let durable = db.durable_lsn();
                let at = s.position();
                let lsn = info.lsn;
                s.checkpoints.lock().push(CheckpointRec {
                    step: i,
                    visible,
                    info,
                    durable,
                    at,
                });
                Ok(lsn)
            }
            Step::Skip => Ok(db.last_lsn()),
            Step::Pause(d) => {
                if self.cfg.real_time {
                    std::thread::sleep(d);
                }
                Ok(db.last_lsn())
            }
            Step::Txn { ops, commit } => {
                let id = txn_id(gen, i);
                let size = ops.len() as u16;
                let value = |j: usize, o: &OpSpec| {
                    o.value_len
                        .map(|l| encode_value(id, o.key, j as u16, size, l as usize))
                };
                if ops.len() == 1 && commit == Commit::Default && i.is_multiple_of(2) {
                    // The one-operation API.
                    let o = &ops[0];
                    return match value(0, o) {
                        Some(v) => db.put(&key_bytes(o.key), &v),
                        None => db.delete(&key_bytes(o.key)),
                    };
                }
                let mut tx = db.begin();
                for (j, o) in ops.iter().enumerate() {
                    match value(j, o) {
                        Some(v) => tx.put(&key_bytes(o.key), &v)?,
                        None => tx.delete(&key_bytes(o.key))?,
                    }
                }
                self.commit(tx, commit)
            }
            Step::Rmw {
                ops,
                commit,
                scan,
                cond,
            } => {
                if let Some(c) = cond {
                    let rec = probe_condition(db, i, c);
                    s.txns.lock().push(rec);
                }
                let id = txn_id(gen, i);
                let size = ops.len() as u16;
                let mut tx = db.begin();
                let mut rec = TxnRec {
                    step: i,
                    snapshot: None,
                    reads: Vec::new(),
                    scan,
                    cond: None,
                    outcome: TxnOutcome::Failed(String::new()),
                };
                let res = (|| {
                    for o in &ops {
                        tx.get(&key_bytes(o.key))?;
                        rec.reads.push(o.key);
                    }
                    if let Some((lo, hi)) = scan {
                        for e in tx.range(key_bytes(lo)..key_bytes(hi))? {
                            e?;
                        }
                    }
                    rec.snapshot = tx.snapshot_lsn();
                    for (j, o) in ops.iter().enumerate() {
                        match o.value_len {
                            Some(l) => tx.put(
                                &key_bytes(o.key),
                                &encode_value(id, o.key, j as u16, size, l as usize),
                            )?,
                            None => tx.delete(&key_bytes(o.key))?,
                        }
                    }
                    self.commit(tx, commit)
                })();
                rec.outcome = outcome_of(&res);
                s.txns.lock().push(rec);
                res
            }
        }
    }

    fn commit(&self, tx: ringlog_db::Txn<'_>, commit: Commit) -> ringlog_db::Result<u64> {
        match commit {
            Commit::Default => tx.commit(),
            Commit::Strict => tx.commit_with(Durability::Strict),
            Commit::Buffered => tx.commit_with(self.cfg.buffered()),
        }
    }
}

/// How long a call that should return at once may take before it is reported stuck (a
/// `liveness` violation).
pub const STUCK_LIMIT: Duration = Duration::from_secs(10);

/// `db.trim_history()`, with no commit running. Known engine issue
/// ([`crate::known::TRIM_IN_LEASE_GAP`]): in a lease gap (visible LSN below the last assigned one)
/// it would wait forever; unless `--strict`, it is skipped there and counted. A trim that does
/// not return within [`STUCK_LIMIT`] is recorded in `s` ([`Session::stuck`]) and ended by
/// closing the database.
pub fn trim(db: &Db, s: &Session) -> ringlog_db::Result<()> {
    let (visible, assigned) = (db.last_lsn(), db.last_assigned_lsn());
    if visible < assigned && crate::known::tolerate_fixed() {
        *s.counts
            .lock()
            .entry(crate::known::TRIM_IN_LEASE_GAP)
            .or_default() += 1;
        return Ok(());
    }
    std::thread::scope(|sc| {
        let (tx, rx) = std::sync::mpsc::channel();
        sc.spawn(move || {
            let _ = tx.send(db.trim_history());
        });
        match rx.recv_timeout(STUCK_LIMIT) {
            Ok(r) => {
                if r.is_ok() {
                    s.record_floor(db);
                }
                r
            }
            Err(_) => {
                *s.stuck.lock() = Some(format!(
                    "trim_history() did not return within {STUCK_LIMIT:?} (no commit running; visible LSN {visible}, last assigned LSN {assigned}, durable LSN {})",
                    db.durable_lsn()
                ));
                let _ = db.close();
                rx.recv().unwrap_or(Err(ringlog_db::Error::Closed))
            }
        }
    })
}

impl Workload {
    /// Runs read `spec` of step `step` and records it in `s`. `fresh`: the snapshot was just
    /// taken, between these two visible LSNs.
    fn read(&self, db: &Db, step: u64, spec: ReadSpec, fresh: Option<(u64, u64)>, s: &Session) {
        let keys = self.cfg.keys;
        let (lo, hi) = match spec.keys {
            Keys::One(k) => (k, k + 1),
            Keys::Range(a, b) => (a, b),
            Keys::Prefix(p) => ((p * 10).min(keys), (p * 10 + 10).min(keys)),
            Keys::All => (0, keys),
        };
        let kb = key_bytes;
        let prefix = |p: u16| format!("k{p:03}").into_bytes();
        // Hold the slots: no snapshot is dropped while the read runs.
        let slots = s.snaps.lock();
        let pinned = slots.iter().flatten().map(Snapshot::lsn).min();
        let visible0 = db.last_lsn();
        let mut lsn = visible0;
        type Out = ringlog_db::Result<Vec<(Arc<[u8]>, ringlog_db::Value)>>;
        // An error while scanning (an entry that could not be read) is the read's error, as a
        // failed `get` is: the scan ends with it, so collecting stops there.
        let scan = |sc: ringlog_db::Result<ringlog_db::Scan>| -> Out {
            let sc = sc?;
            if spec.reverse {
                sc.rev().collect()
            } else {
                sc.collect()
            }
        };
        let one = |k: u16, v: ringlog_db::Result<Option<ringlog_db::Value>>| -> Out {
            Ok(v?.map(|v| (Arc::from(kb(k)), v)).into_iter().collect())
        };
        let (api, res): (&'static str, Out) = match spec.src {
            Source::Latest => {
                // A database whose visible LSN is below its trim floor would spin in `get` and
                // `range` (they retry until the floor is below the visible LSN): ask a snapshot,
                // which answers HistoryTrimmed instead.
                let probe = db.snapshot();
                if let Err(ringlog_db::Error::HistoryTrimmed {
                    requested,
                    earliest_retained,
                }) = probe.get(&kb(0))
                {
                    (
                        "get",
                        Err(ringlog_db::Error::HistoryTrimmed {
                            requested,
                            earliest_retained,
                        }),
                    )
                } else {
                    drop(probe);
                    match spec.keys {
                        Keys::One(k) => ("get", one(k, db.get(&kb(k)))),
                        Keys::Range(..) => ("range", scan(db.range(kb(lo)..kb(hi)))),
                        Keys::Prefix(p) => ("prefix", scan(db.prefix(&prefix(p)))),
                        Keys::All => ("range", scan(db.range::<&[u8], _>(..))),
                    }
                }
            }
            Source::Back(_) | Source::Ahead(_) => {
                lsn = match spec.src {
                    Source::Back(b) => visible0.saturating_sub(b),
                    Source::Ahead(a) => visible0 + a,
                    _ => unreachable!(),
                };
                match spec.keys {
                    Keys::One(k) => ("get_at", one(k, db.get_at(&kb(k), lsn))),
                    Keys::Range(..) => ("range_at", scan(db.range_at(kb(lo)..kb(hi), lsn))),
                    Keys::Prefix(p) => ("prefix_at", scan(db.prefix_at(&prefix(p), lsn))),
                    Keys::All => ("range_at", scan(db.range_at::<&[u8], _>(.., lsn))),
                }
            }
            Source::Slot(slot) => {
                // The snapshot in the slot, or else in the next one that holds one.
                let n = slots.len();
                let Some(snap) = (0..n).find_map(|i| slots[(slot as usize + i) % n].as_ref())
                else {
                    // No snapshot held: nothing to read.
                    return;
                };
                lsn = snap.lsn();
                match spec.keys {
                    Keys::One(k) => ("snapshot.get", one(k, snap.get(&kb(k)))),
                    Keys::Range(..) => ("snapshot.range", scan(snap.range(kb(lo)..kb(hi)))),
                    Keys::Prefix(p) => ("snapshot.prefix", scan(snap.prefix(&prefix(p)))),
                    Keys::All => ("snapshot.iter", scan(snap.iter())),
                }
            }
        };
        let visible1 = db.last_lsn();
        let durable = db.durable_lsn();
        let mut aliens = Vec::new();
        let out = res.map_err(ReadErr::from).map(|entries| {
            let mut out = Vec::with_capacity(entries.len());
            for (key, value) in entries {
                let printable = || String::from_utf8_lossy(&key).into_owned();
                let Some(k) = parse_key(&key).filter(|&k| k < keys) else {
                    aliens.push(Alien {
                        key: printable(),
                        why: format!("{api} returned a key that is not a key of the workload"),
                    });
                    continue;
                };
                match origin_of(self, k, &value) {
                    Ok((txn, op)) => out.push((
                        k,
                        Cell {
                            txn,
                            op,
                            lsn: value.lsn(),
                        },
                    )),
                    Err(why) => aliens.push(Alien {
                        key: printable(),
                        why,
                    }),
                }
            }
            out
        });
        drop(slots);
        let at = s.position();
        let (visible, fresh_snap) = match fresh {
            Some(b) => (b, true),
            None => ((visible0, visible1), false),
        };
        s.reads.lock().push(ReadRec {
            step,
            api,
            src: spec.src,
            lsn,
            visible,
            durable,
            pinned,
            keys: (lo, hi),
            reverse: spec.reverse,
            point: matches!(spec.keys, Keys::One(_)),
            fresh: fresh_snap,
            out,
            aliens,
            at,
        });
    }
}

/// A key's value as the oracle sees it: which write produced it, and the version (LSN) the
/// database reports for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cell {
    /// Transaction id ([`txn_id`]).
    pub txn: u64,
    /// Operation index within the transaction.
    pub op: u16,
    /// Version the database reports (0 in models, where it is unknown).
    pub lsn: u64,
}

/// The contents of a database over the workload's key space.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct State {
    /// Per key index: its value, if the key is live.
    pub cells: Vec<Option<Cell>>,
}

/// Something read back that no write of the workload produced (invariant I1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alien {
    /// The key, printable.
    pub key: String,
    /// Why it maps to no write.
    pub why: String,
}

impl State {
    /// An empty state over `keys` keys.
    pub fn empty(keys: u16) -> State {
        State {
            cells: vec![None; keys as usize],
        }
    }

    /// Whether two states hold the same writes (versions ignored).
    pub fn same_writes(&self, other: &State) -> bool {
        self.cells.len() == other.cells.len()
            && self
                .cells
                .iter()
                .zip(&other.cells)
                .all(|(a, b)| a.map(|c| (c.txn, c.op)) == b.map(|c| (c.txn, c.op)))
    }

    /// Highest version of any live key.
    pub fn max_lsn(&self) -> u64 {
        self.cells
            .iter()
            .flatten()
            .map(|c| c.lsn)
            .max()
            .unwrap_or(0)
    }

    /// Live keys.
    pub fn live(&self) -> usize {
        self.cells.iter().flatten().count()
    }

    /// A compact printable form: `key=gen.step/op@lsn` for live keys.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for (k, c) in self.cells.iter().enumerate() {
            if let Some(c) = c {
                if !s.is_empty() {
                    s.push(' ');
                }
                s.push_str(&format!(
                    "{k}={}.{}/{}@{}",
                    c.txn >> 32,
                    c.txn & 0xFFFF_FFFF,
                    c.op,
                    c.lsn
                ));
            }
        }
        s
    }

    /// Parses [`State::describe`]'s output.
    pub fn parse(keys: u16, s: &str) -> Option<State> {
        let mut st = State::empty(keys);
        for item in s.split_whitespace() {
            let (k, rest) = item.split_once('=')?;
            let (id, rest) = rest.split_once('/')?;
            let (op, lsn) = rest.split_once('@')?;
            let (g, i) = id.split_once('.')?;
            let k: usize = k.parse().ok()?;
            let txn = txn_id(g.parse().ok()?, i.parse().ok()?);
            *st.cells.get_mut(k)? = Some(Cell {
                txn,
                op: op.parse().ok()?,
                lsn: lsn.parse().ok()?,
            });
        }
        Some(st)
    }
}

/// Reads the whole database into a [`State`], checking that every key and value maps to exactly
/// one write of `wl` (I1). Values are regenerated from their claimed origin and compared byte for
/// byte. It reads through a snapshot at the visible LSN: a database whose visible LSN is below its
/// trim floor (an LSN invariant broken) answers `HistoryTrimmed` there, where `db.range` would
/// retry forever.
pub fn observe(db: &Db, wl: &Workload) -> Result<(State, Vec<Alien>), ringlog_db::Error> {
    let mut st = State::empty(wl.cfg.keys);
    let mut aliens = Vec::new();
    let snap = db.snapshot();
    for item in snap.iter()? {
        // A failed read of an entry fails the observation, as a failed scan start does.
        let (key, value) = item?;
        let printable = || String::from_utf8_lossy(&key).into_owned();
        let Some(k) = parse_key(&key).filter(|&k| k < wl.cfg.keys) else {
            aliens.push(Alien {
                key: printable(),
                why: "not a key of the workload".into(),
            });
            continue;
        };
        match origin_of(wl, k, &value) {
            Ok((txn, op)) => {
                st.cells[k as usize] = Some(Cell {
                    txn,
                    op,
                    lsn: value.lsn(),
                })
            }
            Err(why) => aliens.push(Alien {
                key: printable(),
                why,
            }),
        }
    }
    Ok((st, aliens))
}

fn origin_of(wl: &Workload, k: u16, v: &[u8]) -> Result<(u64, u16), String> {
    let (txn, op) = decode_value(k, v).ok_or_else(|| {
        format!(
            "{} bytes whose framing or checksum is not a workload value",
            v.len()
        )
    })?;
    let (gen, step) = ((txn >> 32) as u32, txn & 0xFFFF_FFFF);
    let (Step::Txn { ops, .. } | Step::Rmw { ops, .. }) = wl.step(gen, step) else {
        return Err(format!(
            "claims txn {gen}.{step}, which is not a transaction"
        ));
    };
    let o = ops.get(op as usize).ok_or_else(|| {
        format!(
            "claims op {op} of txn {gen}.{step}, which has {}",
            ops.len()
        )
    })?;
    let len = o
        .value_len
        .ok_or_else(|| format!("claims op {op} of txn {gen}.{step}, which is a delete"))?;
    if o.key != k {
        return Err(format!(
            "claims op {op} of txn {gen}.{step}, which wrote another key"
        ));
    }
    if encode_value(txn, k, op, ops.len() as u16, len as usize) != v {
        return Err(format!(
            "checksum holds but the bytes differ from op {op} of txn {gen}.{step}"
        ));
    }
    Ok((txn, op))
}

/// Applies step `i` of `gen` to a model state.
pub fn apply(wl: &Workload, st: &mut State, gen: u32, i: u64) {
    if let Step::Txn { ops, .. } | Step::Rmw { ops, .. } = wl.step(gen, i) {
        let id = txn_id(gen, i);
        for (j, o) in ops.iter().enumerate() {
            st.cells[o.key as usize] = o.value_len.map(|_| Cell {
                txn: id,
                op: j as u16,
                lsn: 0,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wl(mode: Mode) -> Workload {
        Workload::new(WorkloadConfig {
            seed: 3,
            mode,
            keys: 16,
            interval: Duration::from_millis(5),
            max_pending: 1 << 16,
            real_time: false,
        })
    }

    #[test]
    fn values_round_trip_and_reject_damage() {
        let v = encode_value(txn_id(2, 9), 5, 1, 3, 77);
        assert_eq!(v.len(), 77);
        assert_eq!(decode_value(5, &v), Some((txn_id(2, 9), 1)));
        assert_eq!(decode_value(6, &v), None);
        for i in 0..v.len() {
            let mut d = v.clone();
            d[i] ^= 0x10;
            assert_eq!(decode_value(5, &d), None, "flip at {i}");
        }
    }

    #[test]
    fn steps_are_pure_and_mixed() {
        let w = wl(Mode::Strict);
        assert_eq!(w.step(1, 5), w.step(1, 5));
        let steps: Vec<Step> = (1..=400).map(|i| w.step(1, i)).collect();
        assert!(steps.contains(&Step::Sync));
        assert!(steps
            .iter()
            .any(|s| matches!(s, Step::Txn { ops, .. } if ops.len() > 4)));
        assert!(steps.iter().any(|s| matches!(
            s,
            Step::Txn {
                commit: Commit::Buffered,
                ..
            }
        )));
        assert!(steps.iter().any(
            |s| matches!(s, Step::Txn { ops, .. } if ops.iter().any(|o| o.value_len.is_none()))
        ));
        assert!(wl(Mode::InMemory)
            .step(1, 1)
            .eq(&wl(Mode::InMemory).step(1, 1)));
    }

    #[test]
    fn state_text_round_trips() {
        let mut st = State::empty(8);
        st.cells[3] = Some(Cell {
            txn: txn_id(2, 41),
            op: 1,
            lsn: 99,
        });
        assert_eq!(State::parse(8, &st.describe()), Some(st));
        assert_eq!(parse_key(&key_bytes(42)), Some(42));
        assert_eq!(parse_key(b"x0042"), None);
    }
}
