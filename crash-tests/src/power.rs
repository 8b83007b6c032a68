//! `power` mode: the workload runs in-process on the simulated disk; at every position of its I/O
//! trace, the runner builds the disk images a power loss could leave (per the tear model),
//! recovers a fresh database on each and checks the oracle. Generations chain: the next one
//! starts from one of the crash images, so crashes during recovery are explored too.
//!
//! The same machinery runs `fsync-error` mode: the n-th sync fails ([`PowerOptions::fail_sync`]),
//! and the database must refuse to acknowledge, poison itself, and recover consistently.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ringlog_db::{Db, IoChoice};

use crate::crash::{StateSpace, Sweeper, TearModel, Unit};
use crate::model::{next_base, recovered_timeline, with_generation, Timeline};
use crate::oracle::{
    ack_kind, check, Ack, AckKind, Bounds, History, Prefixes, Recovered, Violation,
};
use crate::report::{Failure, Progress, Summary};
use crate::rng::{mix, Rng};
use crate::sched::{set_committer, LogAt, Sched};
use crate::setup::Setup;
use crate::sim::{FaultPlan, Image, Op, SimVfs};
use crate::versions::{check_checkpoints, check_reads, check_recovered, Counts, Reread};
use crate::workload::{observe, Mode, Session, State, Step, Workload};
use ringlog_db::io::BlockReason;

/// A crash state to reproduce: generation, trace position, state index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// Generation (from 1).
    pub gen: u32,
    /// Trace position.
    pub point: u64,
    /// State index at that position.
    pub state: u64,
}

impl Target {
    /// Parses `GEN.POINT:STATE` (the part of `--replay SEED:GEN.POINT:STATE` after the seed).
    pub fn parse(s: &str) -> Option<Target> {
        let (p, st) = s.split_once(':')?;
        let (g, p) = p.split_once('.')?;
        Some(Target {
            gen: g.parse().ok()?,
            point: p.parse().ok()?,
            state: st.parse().ok()?,
        })
    }
}

/// Settings of a `power` (or `fsync-error`) run.
#[derive(Clone, Debug)]
pub struct PowerOptions {
    /// Seeds to run; seed `i` uses `modes[i % modes.len()]`.
    pub seeds: Vec<u64>,
    /// Default durability modes to cycle through.
    pub modes: Vec<Mode>,
    /// Workload steps per generation.
    pub steps: u64,
    /// Generations per seed.
    pub gens: u32,
    /// Tear model.
    pub model: TearModel,
    /// States per crash point enumerated exhaustively; sampled (this many) beyond.
    pub cap: u64,
    /// Sleep between a batch's write and its sync on the simulated disk.
    pub sync_delay: Duration,
    /// Every n-th state is recovered a second time and compared (I4); 0 never.
    pub reopen_every: u64,
    /// Directory where failing images are kept.
    pub keep: Option<PathBuf>,
    /// Stop at the first violation.
    pub stop_on_first: bool,
    /// Check only this state (with the single seed given).
    pub replay: Option<Target>,
    /// `fsync-error` mode: fail this sync (counting file and directory syncs from 1).
    pub fail_sync: Option<u64>,
    /// `write-error` mode: fail this write (counting writes and file extensions from 1;
    /// [`crate::sim::FaultPlan::fail_write`]).
    pub fail_write: Option<u64>,
    /// Print progress to stderr.
    pub progress: bool,
    /// After a failure, look for the shortest workload (fewest steps per generation) that still
    /// shows the same violation, and report it too.
    pub shrink: bool,
    /// Let `Buffered` commits sync in the background (a window of a few milliseconds and a
    /// pending limit, as in `kill` mode) while the workload runs: more interleavings, but a
    /// run's trace then depends on timing and `--replay` is not exact.
    pub background: bool,
    /// Seeds run in parallel, one per worker thread.
    pub jobs: usize,
    /// Steps `(generation, step)` left out of the workload: a shrunk failure's reproduction.
    pub skip: Vec<(u32, u64)>,
    /// Check while running that a `Strict` commit a read saw was durable right after the read
    /// (default). Off only to prove that the crash states' check of the same rule (a value a
    /// reader saw survives the crash) catches it alone.
    pub live_visibility: bool,
}

impl Default for PowerOptions {
    fn default() -> Self {
        PowerOptions {
            seeds: vec![1],
            modes: vec![Mode::Strict, Mode::Buffered],
            steps: 120,
            gens: 3,
            model: TearModel::Sector,
            cap: 64,
            sync_delay: Duration::ZERO,
            reopen_every: 16,
            keep: None,
            stop_on_first: true,
            replay: None,
            fail_sync: None,
            fail_write: None,
            progress: false,
            shrink: false,
            background: false,
            jobs: 1,
            skip: Vec::new(),
            live_visibility: true,
        }
    }
}

impl PowerOptions {
    /// Whether the run is on the deterministic scheduler: `power` mode is, unless Buffered commits
    /// sync in the real background (`--background`); `fsync-error` mode keeps one committer that
    /// runs freely.
    pub fn scheduled(&self) -> bool {
        !self.faulty() && !self.background
    }

    /// An I/O error is injected (`fsync-error` or `write-error` mode).
    pub fn faulty(&self) -> bool {
        self.fail_sync.is_some() || self.fail_write.is_some()
    }

    /// The setup of `seed`: scheduled runs use simulated time for the Buffered window.
    pub fn setup(&self, seed: u64, mode: Mode) -> Setup {
        if self.scheduled() {
            Setup::derive_scheduled(seed, mode)
        } else {
            Setup::derive(seed, mode, !self.background)
        }
    }

    fn mode_name(&self) -> &'static str {
        if self.fail_sync.is_some() {
            "fsync-error"
        } else if self.fail_write.is_some() {
            "write-error"
        } else {
            "power"
        }
    }

    /// The command line reproducing (seed, mode, target).
    pub fn replay_command(&self, seed: u64, mode: Mode, t: Target) -> String {
        let mut s = format!(
            "ringlog-crash {} --model {} --durability {} --steps {} --gens {} --cap {}",
            self.mode_name(),
            self.model,
            mode,
            self.steps,
            self.gens,
            self.cap
        );
        if let Some(n) = self.fail_sync {
            s.push_str(&format!(" --fail-sync {n}"));
        }
        if let Some(n) = self.fail_write {
            s.push_str(&format!(" --fail-write {n}"));
        }
        if self.background {
            s.push_str(" --background");
        }
        if crate::known::strict() {
            s.push_str(" --strict");
        }
        if !self.sync_delay.is_zero() {
            s.push_str(&format!(" --sync-delay-us {}", self.sync_delay.as_micros()));
        }
        if self.reopen_every != PowerOptions::default().reopen_every {
            s.push_str(&format!(" --reopen-every {}", self.reopen_every));
        }
        if !self.skip.is_empty() {
            let list: Vec<String> = self.skip.iter().map(|(g, s)| format!("{g}.{s}")).collect();
            s.push_str(&format!(" --skip {}", list.join(",")));
        }
        s.push_str(&format!(
            " --replay {seed}:{}.{}:{}",
            t.gen, t.point, t.state
        ));
        s
    }
}

/// Runs every seed; returns the summary.
pub fn run(opts: &PowerOptions) -> Summary {
    crate::setup::exercise_large_paths();
    let started = Instant::now();
    let jobs = opts.jobs.clamp(1, opts.seeds.len().max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let progress = Mutex::new(Progress::new(opts.progress, opts.seeds.len()));
    let worker = || {
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&seed) = opts.seeds.get(i) else {
                break;
            };
            let mode = opts.modes[i % opts.modes.len().max(1)];
            let mut s = Summary::new(opts.mode_name(), &opts.model.to_string());
            run_seed(opts, seed, mode, &mut s);
            if opts.shrink && opts.replay.is_none() {
                for f in &mut s.failures {
                    shrink(opts, seed, mode, f);
                }
            }
            if opts.stop_on_first && !s.failures.is_empty() {
                stop.store(true, Ordering::Relaxed);
            }
            progress.lock().seed(&s);
            out.push((i, s));
        }
        out
    };
    let mut parts: Vec<(usize, Summary)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..jobs).map(|_| sc.spawn(worker)).collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a power worker panicked"))
            .collect()
    });
    progress.lock().finish();
    // Seed order, so that the first failure reported is the first seed's.
    parts.sort_by_key(|(i, _)| *i);
    let mut total = Summary::new(opts.mode_name(), &opts.model.to_string());
    for (_, s) in parts {
        total.merge(s);
    }
    total.elapsed = started.elapsed();
    total
}

/// Most runs one shrink may make while leaving steps out.
const SHRINK_ATTEMPTS: usize = 400;

/// Shrinks a failure in two passes, keeping the same broken invariant: first a binary search for
/// the fewest steps per generation (up to the failing generation) — runs are pure functions of the
/// seed, so fewer steps is a prefix of the workload; then steps are left out of that workload,
/// in halves, quarters, ... down to one at a time, while the failure persists. Appends the
/// shrunk run's reproduction command, the steps it still runs and its trace to `f`.
fn shrink(opts: &PowerOptions, seed: u64, mode: Mode, f: &mut Failure) {
    let gen: u32 = f
        .point
        .split('.')
        .next()
        .and_then(|g| g.parse().ok())
        .unwrap_or(opts.gens);
    let attempts = std::cell::Cell::new(0usize);
    let attempt = |steps: u64, skip: &[(u32, u64)]| -> Option<Failure> {
        attempts.set(attempts.get() + 1);
        let o = PowerOptions {
            steps,
            gens: gen,
            keep: None,
            stop_on_first: true,
            progress: false,
            shrink: false,
            skip: skip.to_vec(),
            ..opts.clone()
        };
        let mut s = Summary::new(o.mode_name(), &o.model.to_string());
        run_seed(&o, seed, mode, &mut s);
        s.failures
            .into_iter()
            .find(|g| g.violation.invariant == f.violation.invariant)
    };
    let (mut lo, mut hi) = (1, opts.steps);
    let mut best = None;
    while lo < hi {
        let mid = (lo + hi) / 2;
        match attempt(mid, &opts.skip) {
            Some(g) => {
                hi = mid;
                best = Some(g);
            }
            None => lo = mid + 1,
        }
    }
    // Leave steps out: chunks of the remaining ones, halving the chunk size each round.
    let mut skip = opts.skip.clone();
    let mut rest: Vec<(u32, u64)> = (1..=gen)
        .flat_map(|g| (1..=hi).map(move |s| (g, s)))
        .filter(|gs| !skip.contains(gs))
        .collect();
    let mut chunk = rest.len().div_ceil(2).max(1);
    'rounds: loop {
        let mut i = 0;
        while i < rest.len() {
            if attempts.get() >= SHRINK_ATTEMPTS {
                break 'rounds;
            }
            let end = (i + chunk).min(rest.len());
            let mut trial = skip.clone();
            trial.extend_from_slice(&rest[i..end]);
            match attempt(hi, &trial) {
                Some(g) => {
                    skip = trial;
                    rest.drain(i..end);
                    best = Some(g);
                }
                None => i = end,
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    let Some(g) = best else {
        f.trace
            .push("shrunk: no shorter workload shows the same violation".into());
        return;
    };
    skip.sort_unstable();
    f.trace.push(format!(
        "shrunk: the same {} violation with {} steps per generation (of {}), {} generation(s), {} of those steps left out ({} runs): {}",
        g.violation.invariant,
        hi,
        opts.steps,
        gen,
        skip.len(),
        attempts.get(),
        g.replay
    ));
    f.trace.push(format!("  {}", g.violation.detail));
    let mut setup = opts.setup(seed, mode);
    setup.wl.skip = Arc::new(skip.iter().copied().collect());
    setup.wl.last_step = opts.steps;
    const LISTED: usize = 40;
    f.trace.push(format!(
        "  the steps it runs ({}{}):",
        rest.len(),
        if rest.len() > LISTED {
            format!(", the first {LISTED}")
        } else {
            String::new()
        }
    ));
    for &(gg, s) in rest.iter().take(LISTED) {
        f.trace.push(format!(
            "    step {gg}.{s}: {}",
            describe_step(&setup.wl.step(gg, s))
        ));
    }
    f.trace
        .extend(g.trace.into_iter().skip(1).map(|l| format!("  {l}")));
}

/// One seed's context.
struct Ctx<'a> {
    opts: &'a PowerOptions,
    setup: Setup,
    seed: u64,
    mode: Mode,
}

impl Ctx<'_> {
    fn open(&self, sim: &SimVfs) -> ringlog_db::Result<Db> {
        self.setup
            .open(Setup::sim_dir(), Some(sim.vfs()), IoChoice::Auto)
    }

    fn wl(&self) -> &Workload {
        &self.setup.wl
    }
}

/// What a generation that starts from a process crash inherits from the crashed one.
struct Carry {
    /// The crashed run's operations up to the crash (its page cache).
    ops: Vec<Op>,
    /// Its history, prefixes, model and what its crash position allowed.
    hist: History,
    pre: Prefixes,
    tl: Timeline,
    bounds: Bounds,
}

/// What running one generation produced.
struct GenRun {
    hist: History,
    /// The model: every transaction up to the generation's start, then every one it acknowledged.
    tl: Timeline,
    trace: Vec<Op>,
    steps_done: u64,
    /// A violation seen while running (not at a crash state).
    live: Option<Violation>,
    /// The checks of its reads.
    counts: Counts,
    /// `fsync-error`: the injected failure hit a checkpoint's own files and the run went on.
    went_on: bool,
}

/// What a generation starts from, besides its disk image.
struct Start<'a> {
    /// The state the previous generation's check recovered (I4: the next open sees it again).
    expected: Option<&'a State>,
    /// The model up to the image's last LSN.
    tl: &'a Timeline,
    /// The highest LSN acknowledged before the crash the image comes from.
    acked: u64,
    /// The highest trim floor observed before it.
    floor: u64,
    /// LSNs reads saw before it (and before earlier crashes): read again after the reopen.
    again: &'a [u64],
}

/// How one crash state is checked, besides its image and the generation's model.
#[derive(Clone, Copy)]
struct StateCheck<'a> {
    /// What the crash allows.
    bounds: Bounds,
    /// Recover it a second time and compare (I4).
    reopen: bool,
    /// The crashed previous run this generation restarted from after a process crash.
    carried: Option<&'a Carry>,
    /// The operations up to the crash (recognises the open known issues).
    trace: &'a [Op],
    /// The operations of the generation's own open (from the end of a crashed previous run's
    /// replayed operations to its first step).
    open_ops: (usize, usize),
    /// LSNs reads saw before the crash: two of them are read again after recovery.
    again: &'a [u64],
    /// The state is what the generation's clean close left (the crash point is past the
    /// close's return): [`Reread::clean`].
    clean: bool,
}

/// How often each open known issue was stepped around so far ([`crate::known::OPEN_IN_CRASH_STATES`]).
fn open_issue_counts(sum: &Summary) -> [u64; 4] {
    crate::known::OPEN_IN_CRASH_STATES.map(|k| sum.checks.get(k).copied().unwrap_or(0))
}

/// The counter of a [`crate::known::KNOWN`] violation (its detail).
fn known_counter(v: &Violation) -> &'static str {
    [
        crate::known::CHECKPOINT_RENAME_UNSYNCED,
        crate::known::CHECKPOINT_ID_REUSED,
        crate::known::LEFTOVER_REMOVED_EARLY,
    ]
    .into_iter()
    .find(|k| *k == v.detail)
    .unwrap_or("known issue")
}

/// Which open known issue explains that recovery refused `e` on `img`, a crash image after the
/// operations `trace` (`open_ops` of them the generation's own open), if one does:
/// [`crate::known::CHECKPOINT_RENAME_UNSYNCED`], [`crate::known::LEFTOVER_REMOVED_EARLY`] or
/// [`crate::known::CHECKPOINT_ID_REUSED`].
fn known_open_failure(
    e: &ringlog_db::Error,
    img: &Image,
    trace: &[Op],
    open_ops: (usize, usize),
) -> Option<&'static str> {
    if unsynced_checkpoint_rename(e, img, trace) {
        Some(crate::known::CHECKPOINT_RENAME_UNSYNCED)
    } else if leftover_removed_early(e, trace, open_ops) {
        Some(crate::known::LEFTOVER_REMOVED_EARLY)
    } else if reused_checkpoint_id(e, trace) {
        Some(crate::known::CHECKPOINT_ID_REUSED)
    } else {
        None
    }
}

/// The open known issue [`crate::known::LEFTOVER_REMOVED_EARLY`]: recovery refused `e` naming a
/// file (a checkpoint or a segment) that the generation's own open (`open_ops` of `trace`)
/// removed as a leftover of a MANIFEST whose rename no successful directory fsync had followed
/// (a process crash fell between that rename and its fsync).
fn leftover_removed_early(e: &ringlog_db::Error, trace: &[Op], open_ops: (usize, usize)) -> bool {
    let ringlog_db::Error::Corruption { file, .. } = e else {
        return false;
    };
    let (lo, hi) = (open_ops.0, open_ops.1.min(trace.len()));
    let Some(j) = (lo..hi)
        .rev()
        .find(|&j| matches!(&trace[j], Op::Remove { path } if path == file))
    else {
        return false;
    };
    let Some(i) = trace[..j].iter().rposition(
        |op| matches!(op, Op::Rename { to, .. } if to.file_name().is_some_and(|n| n == "MANIFEST")),
    ) else {
        return false;
    };
    !trace[i + 1..j]
        .iter()
        .any(|op| matches!(op, Op::SyncDir { dir } if Some(dir.as_path()) == file.parent()))
}

/// The open known issue [`crate::known::CHECKPOINT_ID_REUSED`]: recovery refused `e` naming a
/// checkpoint file that `trace` renamed into place more than once, with, between the first time
/// and the last, a MANIFEST rename whose directory fsync failed (the checkpoint id written again
/// after an attempt whose MANIFEST may be durable).
fn reused_checkpoint_id(e: &ringlog_db::Error, trace: &[Op]) -> bool {
    let ringlog_db::Error::Corruption { file, .. } = e else {
        return false;
    };
    if !file.to_string_lossy().ends_with(".ckpt") {
        return false;
    }
    let renames: Vec<usize> = (0..trace.len())
        .filter(|&i| matches!(&trace[i], Op::Rename { to, .. } if to == file))
        .collect();
    let (Some(&first), Some(&last)) = (renames.first(), renames.last()) else {
        return false;
    };
    (first..last).any(|m| {
        matches!(&trace[m], Op::Rename { to, .. } if to.file_name().is_some_and(|n| n == "MANIFEST"))
            && trace[m + 1..last]
                .iter()
                .find(|op| matches!(op, Op::SyncDir { .. } | Op::SyncDirFailed { .. }))
                .is_some_and(|op| matches!(op, Op::SyncDirFailed { .. }))
    })
}

/// The open known issue [`crate::known::CHECKPOINT_RENAME_UNSYNCED`]: recovery refused `e`
/// naming a checkpoint file of the MANIFEST, whose last rename in `trace` (the operations up to
/// the crash) no successful fsync of its directory followed (none, or the first one failed and
/// resolved it), whose data was synced after its last write, and which `img` does not hold: the
/// rename did not survive (the name is missing, or still an older file's — an earlier failed
/// attempt at the same id) while the MANIFEST naming it did. Damage to a checkpoint whose rename
/// survived, or whose data was never synced, is another matter.
fn unsynced_checkpoint_rename(e: &ringlog_db::Error, img: &Image, trace: &[Op]) -> bool {
    let ringlog_db::Error::Corruption { file, .. } = e else {
        return false;
    };
    if !file.to_string_lossy().ends_with(".ckpt") {
        return false;
    }
    let Some((i, ino)) = trace.iter().enumerate().rev().find_map(|(i, op)| match op {
        Op::Rename { to, ino, .. } if to == file => Some((i, *ino)),
        _ => None,
    }) else {
        return false;
    };
    // Made durable by the first fsync of its directory after it — unless that one failed (and
    // resolved the rename either way).
    let dir_synced = trace[i + 1..]
        .iter()
        .find_map(|op| match op {
            Op::SyncDir { dir } if Some(dir.as_path()) == file.parent() => Some(true),
            Op::SyncDirFailed { dir, .. } if Some(dir.as_path()) == file.parent() => Some(false),
            _ => None,
        })
        .unwrap_or(false);
    // The renamed file's bytes as written, and whether a sync covered its last write.
    let mut data: Vec<u8> = Vec::new();
    let mut synced = false;
    for op in trace {
        match op {
            Op::Write {
                ino: j,
                off,
                data: w,
            } if *j == ino => {
                let end = *off as usize + w.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                w.copy_to(0, &mut data[*off as usize..end]);
                synced = false;
            }
            Op::SetLen { ino: j, len } if *j == ino => {
                data.resize(*len as usize, 0);
                synced = false;
            }
            Op::Sync { ino: j } if *j == ino => synced = true,
            _ => {}
        }
    }
    let kept = img.files.get(file).is_some_and(|f| f[..] == data[..]);
    !dir_synced && synced && !kept
}

/// Most LSNs of earlier reads kept to be read again after each reopen.
const AGAIN_KEPT: usize = 48;

/// Adds the LSNs the reads of `h` saw before position `p` (the crash the next generation starts
/// from) to `again`, keeping at most [`AGAIN_KEPT`] (the newest: the oldest fall below the floor
/// first).
fn remember_reads(again: &mut Vec<u64>, h: &History, p: u64) {
    again.extend(h.seen.iter().filter(|x| x.at <= p).map(|x| x.lsn));
    again.sort_unstable();
    again.dedup();
    if again.len() > AGAIN_KEPT {
        again.drain(..again.len() - AGAIN_KEPT);
    }
}

/// A crash state that passed: what it holds.
struct Checked {
    st: State,
    /// The prefix of steps it holds and the LSN its log ends with.
    prefix: u64,
    last: u64,
    /// It passed as a state of the previous (process-crashed) generation instead.
    earlier: bool,
}

fn run_seed(opts: &PowerOptions, seed: u64, mode: Mode, sum: &mut Summary) {
    sum.seeds += 1;
    let mut setup = opts.setup(seed, mode);
    setup.wl.skip = Arc::new(opts.skip.iter().copied().collect());
    setup.wl.last_step = opts.steps;
    let ctx = Ctx {
        opts,
        setup,
        seed,
        mode,
    };
    let mut base_img = Image {
        files: Default::default(),
        dirs: vec![Setup::sim_dir().to_path_buf()],
    };
    let mut expected: Option<State> = None;
    // The model of the history the next generation starts from, and what its crash leaves to
    // check: the highest LSN acknowledged before it, the trim floor observed before it.
    let mut base_tl = Timeline::new(ctx.wl().cfg.keys);
    let (mut acked, mut floor) = (0u64, 0u64);
    // LSNs reads saw in earlier generations before their crashes: read again after recovery.
    let mut again: Vec<u64> = Vec::new();
    // A generation that starts from a process crash of the previous one: that run's operations up
    // to the crash (still unsynced where they were) and what its oracle needs.
    let mut carried: Option<Carry> = None;
    for gen in 1..=opts.gens {
        let replaying = opts.replay.filter(|t| t.gen == gen);
        let skipping = opts.replay.is_some_and(|t| t.gen > gen);
        let prefix: &[Op] = carried.as_ref().map_or(&[], |c| &c.ops[..]);
        let start = Start {
            expected: expected.as_ref(),
            tl: &base_tl,
            acked,
            floor,
            again: &again,
        };
        let run = run_generation(&ctx, gen, &base_img, prefix, &start);
        let prefix_len = prefix.len() as u64;
        sum.steps += run.steps_done;
        for (k, v) in &run.counts {
            *sum.checks.entry(k).or_default() += v;
        }
        if let Some(v) = run.live.clone() {
            let point = run.trace.len() as u64;
            sum.failures.push(make_failure(
                &ctx,
                Target {
                    gen,
                    point,
                    state: 0,
                },
                v,
                None,
                None,
                &run,
                &base_img,
            ));
            return;
        }
        if mode == Mode::InMemory {
            // Nothing may reach the disk, and a reopened in-memory database is empty.
            sum.points += 1;
            sum.count("in-memory restart");
            if !run.trace.is_empty() {
                let v = Violation::new(
                    "durability",
                    format!(
                        "an in-memory database performed {} disk operations",
                        run.trace.len()
                    ),
                );
                sum.failures.push(make_failure(
                    &ctx,
                    Target {
                        gen,
                        point: 0,
                        state: 0,
                    },
                    v,
                    None,
                    None,
                    &run,
                    &base_img,
                ));
            }
            let db = Db::in_memory();
            if !db.is_empty() {
                sum.failures.push(make_failure(
                    &ctx,
                    Target {
                        gen,
                        point: 0,
                        state: 0,
                    },
                    Violation::new("durability", "a new in-memory database is not empty"),
                    None,
                    None,
                    &run,
                    &base_img,
                ));
            }
            return;
        }
        let pre = Prefixes::new(ctx.wl(), &run.hist, run.steps_done);
        let mut sw = Sweeper::new(&base_img, &run.trace, opts.model);
        let first_step_at = run.hist.started.first().copied().unwrap_or(u64::MAX);
        let labels = checkpoint_labels(&base_img, &run.trace);
        let open_ops = (
            prefix_len as usize,
            first_step_at.min(run.trace.len() as u64) as usize,
        );
        if !skipping {
            let points: Vec<u64> = match (replaying, opts.faulty()) {
                (Some(t), _) => vec![t.point],
                // fsync-error and write-error: crashes after the failure (right after it, and at
                // the end); after a failed checkpoint the database kept serving, and every
                // position from the failure on is a crash point (the next checkpoints build on
                // what it left).
                (None, true) => {
                    let failed = run.trace.iter().position(|op| {
                        matches!(
                            op,
                            Op::SyncFailed { .. }
                                | Op::SyncDirFailed { .. }
                                | Op::WriteFailed { .. }
                                | Op::SubmitFailed { .. }
                        )
                    });
                    let end = run.trace.len() as u64;
                    match failed {
                        Some(i) if run.went_on => (i as u64 + 1..=end).collect(),
                        Some(i) if (i as u64 + 1) < end => vec![i as u64 + 1, end],
                        _ => vec![end],
                    }
                }
                // After a process crash, positions before it were checked by the previous
                // generation: crashes from there on are the compound fault.
                (None, false) => (prefix_len..=run.trace.len() as u64).collect(),
            };
            for p in points {
                if p as usize > run.trace.len() {
                    sum.notes.push(format!(
                        "replay point {p} is past the end of the trace ({} operations): the run differs",
                        run.trace.len()
                    ));
                    return;
                }
                sw.advance(p as usize);
                let units = sw.units();
                let space = StateSpace::new(&units, opts.cap);
                let bounds = run.hist.bounds_at(p);
                sum.points += 1;
                if !space.exhaustive {
                    sum.sampled_points += 1;
                }
                let kind = fault_kind(&run.trace, &labels, p, first_step_at);
                let states: Vec<u64> = match replaying {
                    Some(t) => vec![t.state],
                    None => (0..space.visited).collect(),
                };
                // The LSNs reads saw before this crash (this generation's and earlier ones').
                let seen_here: Vec<u64> = again
                    .iter()
                    .copied()
                    .chain(run.hist.seen.iter().filter(|x| x.at <= p).map(|x| x.lsn))
                    .collect();
                for idx in states {
                    let choices = space.choices(&units, idx, mix(&[seed, gen as u64, p, 0xC4A5]));
                    let img = sw.image(&units, &choices, mix(&[seed, gen as u64, p, idx]));
                    let reopen =
                        opts.reopen_every != 0 && sum.states.is_multiple_of(opts.reopen_every);
                    sum.count(&kind);
                    let pick = mix(&[seed, gen as u64, p, idx, 0x7E2]);
                    let how = StateCheck {
                        bounds,
                        reopen,
                        carried: carried.as_ref(),
                        trace: &run.trace[..p as usize],
                        open_ops,
                        again: &seen_here,
                        clean: run.hist.closed_at.is_some_and(|c| p >= c),
                    };
                    let known_before = open_issue_counts(sum);
                    let res = check_state(
                        &ctx,
                        &img,
                        (&run.hist, &pre, &run.tl),
                        &how,
                        (pick, &mut sum.checks),
                    );
                    if let Err(v) = &res {
                        if v.invariant == crate::known::KNOWN {
                            *sum.checks.entry(known_counter(v)).or_default() += 1;
                        }
                    }
                    // The first state stepped around for an open known issue: its reproduction.
                    let t = Target {
                        gen,
                        point: p,
                        state: idx,
                    };
                    for (issue, before) in
                        crate::known::OPEN_IN_CRASH_STATES.iter().zip(known_before)
                    {
                        if sum.checks.get(issue).copied().unwrap_or(0) > before {
                            sum.note_known(issue, || {
                                format!("{} --strict", opts.replay_command(seed, mode, t))
                            });
                        }
                    }
                    if let Err(v) = res {
                        if v.invariant == crate::known::KNOWN {
                            continue;
                        }
                        let t = Target {
                            gen,
                            point: p,
                            state: idx,
                        };
                        sum.failures.push(make_failure(
                            &ctx,
                            t,
                            v,
                            Some((&sw, &units, &choices, bounds)),
                            Some(&img),
                            &run,
                            &base_img,
                        ));
                        return;
                    }
                }
                if replaying.is_some() {
                    sum.notes.push(format!(
                        "replayed seed {seed} generation {gen} point {p}: no violation ({} operations in the trace)",
                        run.trace.len()
                    ));
                    return;
                }
            }
        }
        // Continue from one crash image of this generation: a power loss, or (in a third of the
        // generations, never two in a row) a process crash, whose unsynced writes stay pending in
        // the page cache of the next generation's disk, where a later power loss can drop them.
        let mut r = Rng::from_words(&[seed, gen as u64, 0xC0417]);
        let len = run.trace.len() as u64;
        let p = r.range((len / 2).max(prefix_len), len);
        if carried.is_none() && gen < opts.gens && r.chance(333) {
            let pc = SimVfs::from_image(&base_img, false, Duration::ZERO);
            pc.replay(&run.trace[..p as usize]);
            let img = pc.snapshot();
            let bounds = run.hist.bounds_at(p);
            let pick = mix(&[seed, gen as u64, p, 0xCA77]);
            let how = StateCheck {
                bounds,
                reopen: false,
                carried: None,
                trace: &run.trace[..p as usize],
                open_ops,
                again: &[],
                clean: false,
            };
            match check_state(
                &ctx,
                &img,
                (&run.hist, &pre, &run.tl),
                &how,
                (pick, &mut sum.checks),
            ) {
                Ok(c) => {
                    expected = Some(c.st);
                    base_tl = next_base(ctx.wl(), &run.hist, &run.tl, c.prefix, c.last);
                    (acked, floor) = (bounds.acked, bounds.floor);
                    remember_reads(&mut again, &run.hist, p);
                    carried = Some(Carry {
                        ops: run.trace[..p as usize].to_vec(),
                        hist: run.hist.clone(),
                        pre,
                        tl: run.tl.clone(),
                        bounds,
                    });
                    sum.count("process crash, then the next generation");
                }
                Err(v) => {
                    if !skipping {
                        sum.failures.push(make_failure(
                            &ctx,
                            Target {
                                gen,
                                point: p,
                                state: 0,
                            },
                            v,
                            None,
                            Some(&img),
                            &run,
                            &base_img,
                        ));
                    }
                    return;
                }
            }
            continue;
        }
        // The image continues from a crash of this generation, which may still drop the crashed
        // previous run's unsynced writes: check it like this generation's other states.
        let inherited = carried.take();
        let mut sw = Sweeper::new(&base_img, &run.trace, opts.model);
        sw.advance(p as usize);
        let units = sw.units();
        let space = StateSpace::new(&units, opts.cap);
        let bounds = run.hist.bounds_at(p);
        let how = StateCheck {
            bounds,
            reopen: false,
            carried: inherited.as_ref(),
            trace: &run.trace[..p as usize],
            open_ops,
            again: &[],
            clean: false,
        };
        // A state an open known issue makes unopenable is stepped around: the next one.
        let first = r.below(space.visited);
        let mut k = 0;
        let (idx, choices, img, checked) = loop {
            let idx = (first + k) % space.visited;
            let choices = space.choices(&units, idx, mix(&[seed, gen as u64, p, 0xC4A5]));
            let img = sw.image(&units, &choices, mix(&[seed, gen as u64, p, idx]));
            let pick = mix(&[seed, gen as u64, p, idx, 0x7E2]);
            let res = check_state(
                &ctx,
                &img,
                (&run.hist, &pre, &run.tl),
                &how,
                (pick, &mut sum.checks),
            );
            k += 1;
            match res {
                Err(v) if v.invariant == crate::known::KNOWN => {
                    *sum.checks.entry(known_counter(&v)).or_default() += 1;
                    if k >= space.visited {
                        if gen < opts.gens {
                            sum.notes.push(format!(
                                "seed {seed}: generation {gen}'s crash at position {p} leaves only images the open known issue makes unopenable: no next generation"
                            ));
                        }
                        return;
                    }
                }
                res => break (idx, choices, img, res),
            }
        };
        match checked {
            Ok(c) => {
                base_tl = match (&inherited, c.earlier) {
                    (Some(i), true) => next_base(ctx.wl(), &i.hist, &i.tl, c.prefix, c.last),
                    _ => next_base(ctx.wl(), &run.hist, &run.tl, c.prefix, c.last),
                };
                (acked, floor) = (bounds.acked, bounds.floor);
                remember_reads(&mut again, &run.hist, p);
                expected = Some(c.st);
                base_img = img;
            }
            Err(v) => {
                if !skipping {
                    sum.failures.push(make_failure(
                        &ctx,
                        Target {
                            gen,
                            point: p,
                            state: idx,
                        },
                        v,
                        Some((&sw, &units, &choices, run.hist.bounds_at(p))),
                        Some(&img),
                        &run,
                        &base_img,
                    ));
                }
                return;
            }
        }
    }
}

/// Runs generation `gen` of the workload on a simulated disk holding `base`.
fn run_generation(
    ctx: &Ctx<'_>,
    gen: u32,
    base: &Image,
    prefix: &[Op],
    start: &Start<'_>,
) -> GenRun {
    let expected = start.expected;
    let sched = ctx
        .opts
        .scheduled()
        .then(|| Arc::new(Sched::new(ctx.setup.committers)));
    // Every other generation keeps up to three log rounds in flight, completed in a seeded
    // order (the io_uring path's pipeline); the others write one round at a time.
    let depth = if (ctx.seed ^ gen as u64).is_multiple_of(2) {
        3
    } else {
        1
    };
    let mut sim = SimVfs::from_image(base, true, ctx.opts.sync_delay)
        .pipelined(depth, mix(&[ctx.seed, gen as u64, 0x919e]));
    if let Some(s) = &sched {
        sim = sim.scheduled(s.clone());
    }
    // A process crash of the previous generation: its operations are in this disk's page cache.
    sim.replay(prefix);
    if ctx.opts.faulty() {
        let n = ctx.opts.fail_sync.or(ctx.opts.fail_write).unwrap_or(0);
        sim.set_faults(FaultPlan {
            fail_sync: ctx.opts.fail_sync,
            fail_write: ctx.opts.fail_write,
            seed: mix(&[ctx.seed, gen as u64, n]),
        });
    }
    let mut run = GenRun {
        hist: History {
            gen,
            acked_before: start.acked,
            floor_before: start.floor,
            ..History::default()
        },
        tl: start.tl.clone(),
        trace: Vec::new(),
        steps_done: 0,
        live: None,
        counts: Counts::new(),
        went_on: false,
    };
    let faulty = ctx.opts.faulty();
    sim.set_wall(ctx.wl().clock_at(gen, 0));
    let db = match ctx.open(&sim) {
        Ok(db) => db,
        Err(e) => {
            run.trace = sim.trace();
            if !faulty {
                run.live = Some(Violation::new(
                    "I5",
                    format!("the database does not open on the previous crash image: {e}"),
                ));
            }
            // With an injected fault the open may fail; recovery must still work later.
            run.hist.base = expected
                .cloned()
                .unwrap_or_else(|| State::empty(ctx.wl().cfg.keys));
            return run;
        }
    };
    match observe(&db, ctx.wl()) {
        Ok((st, aliens)) => {
            if let Some(a) = aliens.first() {
                run.live = Some(Violation::new(
                    "I1",
                    format!("after reopening, key {} holds {}", a.key, a.why),
                ));
            }
            if let Some(exp) = expected {
                if &st != exp {
                    run.live = Some(Violation::new(
                        "I4",
                        format!(
                            "recovering the same image twice gave different states: [{}] then [{}]",
                            exp.describe(),
                            st.describe()
                        ),
                    ));
                }
            }
            run.hist.base = st;
        }
        Err(e) => {
            run.live = Some(Violation::new("I5", format!("scan failed: {e}")));
        }
    }
    run.hist.base_lsn = db.last_lsn();
    let rs = db.recovery_stats();
    if rs.checkpoint_lsn != 0 {
        *run.counts
            .entry("generations reopened from a checkpoint")
            .or_default() += 1;
        if rs.segments == 0 {
            *run.counts
                .entry("  ... from the checkpoint alone (the close retired the log)")
                .or_default() += 1;
        }
    }
    if rs.leftovers_removed != 0 {
        *run.counts
            .entry("generations whose open removed checkpoint/compaction leftovers")
            .or_default() += 1;
    }
    if run.live.is_none() && ctx.mode != Mode::InMemory {
        // The reopened database: its LSNs (I6), its policy and versions (the model up to here).
        let rec = Recovered::of(&db);
        let next = rec.next.unwrap_or(0);
        let v = if let Err(v) = rec.check() {
            Some(v)
        } else if next <= rec.last.max(start.acked) {
            Some(Violation::new(
                "I6",
                format!(
                    "after reopening, the next commit would get LSN {next}, but LSNs up to {} were acknowledged before (the last recovered is {}): an LSN would name two transactions",
                    start.acked, rec.last
                ),
            ))
        } else {
            check_recovered(
                &db,
                ctx.wl(),
                start.tl,
                Reread {
                    last: rec.last,
                    floor: start.floor,
                    pick: mix(&[ctx.seed, gen as u64, 0x5EE1]),
                    samples: 16,
                    again: start.again,
                    // The image comes from a crash before the previous generation's close.
                    clean: false,
                },
                &mut run.counts,
            )
            .err()
        };
        if let Some(v) = v {
            run.live = Some(v);
        }
    }
    let session = Session::with_position({
        let sim = sim.clone();
        move || sim.position()
    })
    .set_clock(sim.wall_clock());
    // A step failed with the log's error (`Poisoned`, or the I/O error itself): close must then
    // return an error too (docs/DURABILITY.md §3).
    let mut poisoned_at: Option<u64> = None;
    if let (Some(sched), None) = (&sched, &run.live) {
        run_scheduled(ctx, gen, &db, &sim, sched, &session, &mut run);
        sched.free_run();
    } else if run.live.is_none() {
        let mut failed = false;
        // A checkpoint that failed on its own files (the injected fault hit its fdatasync, the
        // MANIFEST's, or the directory fsync after the MANIFEST's rename), or a history trim
        // that failed to record its `NewerThan` floor in the MANIFEST: the step at which it did.
        // The log is unharmed, so the database keeps serving (docs/DURABILITY.md §6.4, §7) and
        // the workload goes on: a later failure, or a refused write, is a violation.
        let mut checkpoint_failed: Option<u64> = None;
        for step in 1..=ctx.opts.steps {
            run.hist.started.push(sim.position());
            let res = ctx.wl().execute(&db, gen, step, &session);
            // Read the durable LSN before the position: it is published after its sync is
            // recorded, so the acknowledgement never claims a sync the trace has not reached.
            let durable_lsn = db.durable_lsn();
            let at = sim.position();
            run.steps_done = step;
            match res {
                Ok(lsn) => {
                    let kind = ack_kind(ctx.wl(), &ctx.wl().step(gen, step));
                    run.hist.acks.push(Ack {
                        step,
                        kind,
                        lsn,
                        durable_lsn,
                        at,
                    });
                }
                Err(e)
                    if faulty
                        && checkpoint_failed.is_none()
                        && matches!(ctx.wl().step(gen, step), Step::Checkpoint | Step::Trim)
                        && matches!(e, ringlog_db::Error::Io { .. }) =>
                {
                    // It commits nothing: a failed checkpoint or trim leaves nothing
                    // indeterminate (a trim publishes nothing when its MANIFEST update fails).
                    run.hist.acks.push(Ack {
                        step,
                        kind: AckKind::Skipped,
                        lsn: db.last_lsn(),
                        durable_lsn,
                        at,
                    });
                    checkpoint_failed = Some(step);
                    run.went_on = true;
                    *run.counts
                        .entry(if ctx.wl().step(gen, step) == Step::Trim {
                            "history trims failed (I/O, the MANIFEST): the database kept serving"
                        } else {
                            "checkpoints failed (I/O): the database kept serving"
                        })
                        .or_default() += 1;
                }
                Err(e) => {
                    run.hist.acks.push(Ack {
                        step,
                        kind: AckKind::Failed,
                        lsn: 0,
                        durable_lsn,
                        at,
                    });
                    if let Some(why) = session.stuck() {
                        run.live = Some(Violation::new(
                            "liveness",
                            format!("step {gen}.{step}: {why}"),
                        ));
                    } else if !faulty {
                        run.live = Some(Violation::new(
                            "I5",
                            format!("step {gen}.{step} failed without an injected fault: {e}"),
                        ));
                    } else if let Some(c) = checkpoint_failed {
                        run.live = Some(Violation::new(
                            "fsync-error",
                            format!(
                                "step {gen}.{step} failed ({e}) after the checkpoint or trim of step {gen}.{c} failed on the MANIFEST's or its own files: that must leave the log, and the database, serving"
                            ),
                        ));
                    } else if !matches!(
                        e,
                        ringlog_db::Error::Poisoned(_) | ringlog_db::Error::Io { .. }
                    ) {
                        run.live = Some(Violation::new(
                            "fsync-error",
                            format!("step {gen}.{step} failed with an unexpected error: {e}"),
                        ));
                    }
                    failed = true;
                    break;
                }
            }
        }
        if failed && run.live.is_none() {
            poisoned_at = Some(run.steps_done);
            *run.counts
                .entry("steps failed with the injected error: the database refused what followed")
                .or_default() += 1;
            run.live = after_a_failure(&db, gen, run.steps_done);
        }
    }
    // The reads, against the model of every transaction acknowledged.
    session.drop_snapshots();
    let stats = db.stats();
    *run.counts.entry("history trims").or_default() += stats.trims;
    *run.counts
        .entry("log rounds submitted with others in flight")
        .or_default() += stats.rounds_overlapped;
    for (k, v) in session.take_counts() {
        *run.counts.entry(k).or_default() += v;
    }
    run.tl = with_generation(&run.tl, ctx.wl(), &run.hist);
    if let (Some(what), None) = (session.take_unseen(), &run.live) {
        run.live = Some(Violation::new("visibility", what));
    }
    if run.live.is_none() {
        match check_reads(
            gen,
            &run.tl,
            &session.take_reads(),
            &run.hist.strict_lsns(),
            !ctx.opts.live_visibility,
        ) {
            Ok(facts) => {
                run.hist.seen = facts.seen;
                run.hist.floors = facts.floors;
                for (k, v) in facts.counts {
                    *run.counts.entry(k).or_default() += v;
                }
            }
            Err(v) => run.live = Some(v),
        }
    }
    // Optimistic transactions: serializable in LSN order, and refused only for real conflicts.
    let txns = session.take_txns();
    if run.live.is_none() {
        match crate::txns::check_txns(ctx.wl(), &run.hist, &txns) {
            Ok(counts) => {
                for (k, v) in counts {
                    *run.counts.entry(k).or_default() += v;
                }
            }
            Err(v) => run.live = Some(v),
        }
    }
    // The engine's own floor after each trim and policy: a crash after it must not bring back
    // what it refuses (it is capped by the durable LSN).
    run.hist.floors.extend(session.take_floors());
    run.hist.floors.sort_unstable();
    match check_checkpoints(gen, &session.take_checkpoints()) {
        Ok(counts) => {
            for (k, v) in counts {
                *run.counts.entry(k).or_default() += v;
            }
        }
        Err(v) => {
            if run.live.is_none() {
                run.live = Some(v);
            }
        }
    }
    let closed = db.close();
    if let (Err(e), false, None) = (&closed, faulty, &run.live) {
        run.live = Some(Violation::new("I5", format!("close failed: {e}")));
    }
    if let (Some(step), Ok(()), None) = (poisoned_at, &closed, &run.live) {
        run.live = Some(Violation::new(
            "fsync-error",
            format!(
                "after step {gen}.{step} failed with the log's error, close() returned Ok: it must return the error"
            ),
        ));
    }
    run.trace = sim.trace();
    for (what, failed) in [
        (
            "failed syncs",
            run.trace
                .iter()
                .any(|op| matches!(op, Op::SyncFailed { .. } | Op::SyncDirFailed { .. })),
        ),
        (
            "failed writes",
            run.trace
                .iter()
                .any(|op| matches!(op, Op::WriteFailed { .. })),
        ),
        (
            "failed log round submissions",
            run.trace
                .iter()
                .any(|op| matches!(op, Op::SubmitFailed { .. })),
        ),
    ] {
        if failed {
            *run.counts.entry(what).or_default() += 1;
        }
    }
    if closed.is_ok() {
        run.hist.closed_at = Some(run.trace.len() as u64);
    }
    run
}

/// What must hold of a database one of whose steps failed with the log's error (step `step` of
/// generation `gen`; docs/DURABILITY.md §3): it refuses every further write; `sync()` and a
/// `Strict` commit fail too — `sync()` may answer `Ok` only if the durable LSN already covers
/// every LSN assigned (a sync that forgets the failure claims durability that does not exist).
fn after_a_failure(db: &ringlog_db::Db, gen: u32, step: u64) -> Option<Violation> {
    let fail = |what: String| {
        Some(Violation::new(
            "fsync-error",
            format!("after step {gen}.{step} failed, {what}"),
        ))
    };
    if let Ok(lsn) = db.put(b"k0000", b"after-failure") {
        return fail(format!("the database still accepted a write (LSN {lsn})"));
    }
    let mut tx = db.begin();
    let staged = tx.put(b"k0000", b"after-failure-strict");
    if let (Ok(()), Ok(lsn)) = (staged, tx.commit_with(ringlog_db::Durability::Strict)) {
        return fail(format!("a Strict commit was acknowledged (LSN {lsn})"));
    }
    let upto = db.last_assigned_lsn();
    if db.sync().is_ok() && db.durable_lsn() < upto {
        return fail(format!(
            "sync() returned Ok though the durable LSN {} is below the last assigned LSN {upto}",
            db.durable_lsn()
        ));
    }
    None
}

/// Longest simulated time a step may stay parked while the log thread runs: a step parked longer
/// (or parked with nothing left that could ever wake it) is a liveness violation.
const LIVENESS_BOUND: Duration = Duration::from_secs(10);
/// Longest real time the runner waits for the actors to settle after letting one go: only an
/// engine thread blocked somewhere it did not announce gets there (a liveness violation too).
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// What a committer thread reports when its step returns.
struct Done {
    committer: usize,
    step: u64,
    res: ringlog_db::Result<u64>,
    durable_lsn: u64,
}

/// Runs the generation's steps on `ctx.setup.committers` committer threads under the
/// deterministic scheduler: at each point the seed chooses whether an idle committer starts the
/// next step, the log thread leaves its gate (when it may: woken, timer expired, or at a write),
/// or simulated time passes; after each choice the runner waits until every actor has stopped
/// again. Steps start in step order and a step appends before the next one starts, so step order
/// is LSN order, as the oracle expects; acknowledgements are recorded at the trace position where
/// the runner sees them (never earlier than they happened).
fn run_scheduled(
    ctx: &Ctx<'_>,
    gen: u32,
    db: &Db,
    sim: &SimVfs,
    sched: &Arc<Sched>,
    session: &Session,
    run: &mut GenRun,
) {
    let wl = ctx.wl();
    // Steps start in step order and must append in it: an optimistic transaction must not
    // block before it gets its LSN. Its first read blocks only when it starts the engine's
    // conflict tracking while commits are in flight (its snapshot waits for them); start the
    // tracking now, with nothing in flight (it stays on for the generation's few steps).
    {
        let mut warm = db.begin();
        if let Err(e) = warm.get(&crate::workload::key_bytes(0)) {
            run.live = Some(Violation::new(
                "I5",
                format!("generation {gen}: a read before the first step failed: {e}"),
            ));
            return;
        }
    }
    let n = ctx.setup.committers.max(1);
    let steps = ctx.opts.steps;
    let interval = wl.cfg.interval;
    let mut r = Rng::from_words(&[ctx.seed, gen as u64, 0x5C4ED]);
    let done: Mutex<Vec<Done>> = Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        let mut senders = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for c in 0..n {
            let (tx, rx) = std::sync::mpsc::channel::<u64>();
            senders.push(tx);
            let done = &done;
            let sched = sched.clone();
            threads.push(sc.spawn(move || {
                set_committer(Some(c));
                while let Ok(step) = rx.recv() {
                    let res = wl.execute(db, gen, step, session);
                    let durable_lsn = db.durable_lsn();
                    done.lock().push(Done {
                        committer: c,
                        step,
                        res,
                        durable_lsn,
                    });
                    sched.committer_done(c);
                }
            }));
        }
        let mut st = RunnerView {
            running: vec![None; n],
            target: vec![None; n],
            parked_at: vec![None; n],
            visible_target: vec![false; n],
        };
        let mut next = 1u64;
        let mut buffered = BufferedAcks::default();
        let result: Result<(), Violation> = (|| loop {
            settle(db, sched, &mut st)?;
            buffered.now = sched.lock().clock;
            collect(ctx, gen, &done, sim, run, &mut st, &mut buffered)?;
            let busy = st.running.iter().any(Option::is_some);
            if next > steps && !busy {
                return Ok(());
            }
            // A pause is the runner's own step: simulated time passes and the log thread runs as
            // its timer allows; then the Buffered timer must have covered every Buffered
            // acknowledgement made before the pause.
            if next <= steps {
                if let Step::Pause(d) = wl.step(gen, next) {
                    let owed = buffered.max;
                    run.hist.started.push(sim.position());
                    let end = sched.lock().clock + d;
                    let mut past_end = false;
                    loop {
                        settle(db, sched, &mut st)?;
                        buffered.now = sched.lock().clock;
                        collect(ctx, gen, &done, sim, run, &mut st, &mut buffered)?;
                        let mut g = sched.lock();
                        if Sched::log_runnable(&g) {
                            sched.release_log(&mut g);
                            continue;
                        }
                        // A round the timer started before the end completes after it, as a
                        // device takes its time: a pipelined driver holds its writes in
                        // flight for a while (at most `HOLD` per completion) before completing
                        // one, and the pause lasts until none is in flight.
                        match g.log {
                            LogAt::Waiting(Some(t)) if t <= end || g.in_flight > 0 => {
                                past_end |= t > end;
                                sched.advance_to(&mut g, t)
                            }
                            _ => {
                                sched.advance_to(&mut g, end);
                                break;
                            }
                        }
                    }
                    if past_end {
                        *run.counts
                            .entry("pauses that waited past their end for log writes in flight")
                            .or_default() += 1;
                    }
                    settle(db, sched, &mut st)?;
                    buffered.now = sched.lock().clock;
                    collect(ctx, gen, &done, sim, run, &mut st, &mut buffered)?;
                    let durable = db.durable_lsn();
                    run.hist.acks.push(Ack {
                        step: next,
                        kind: AckKind::Skipped,
                        lsn: db.last_lsn(),
                        durable_lsn: durable,
                        at: sim.position(),
                    });
                    run.steps_done = run.steps_done.max(next);
                    if d >= interval && durable < owed {
                        return Err(Violation::new(
                            "timer",
                            format!(
                                "after a pause of {d:?} (Buffered interval {interval:?}) the durable LSN is {durable}, below LSN {owed} acknowledged before the pause: the Buffered timer did not start a round"
                            ),
                        ));
                    }
                    // The timer runs from the oldest unsynced Buffered commit: a commit
                    // acknowledged more than the interval ago is durable, whatever came since.
                    let now = sched.lock().clock;
                    if let Some(&(lsn, t)) = buffered
                        .timed
                        .iter()
                        .find(|&&(lsn, t)| t + interval < now && durable < lsn)
                    {
                        return Err(Violation::new(
                            "timer",
                            format!(
                                "the Buffered commit of LSN {lsn}, acknowledged at {t:?} (simulated), is not durable at {now:?}, more than the interval {interval:?} later (durable LSN {durable}): the timer must run from the oldest unsynced commit"
                            ),
                        ));
                    }
                    buffered.timed.retain(|&(lsn, _)| lsn > durable);
                    next += 1;
                    continue;
                }
            }
            // A history trim is the runner's own step, once every earlier step has returned (a
            // trim waits for every assigned LSN to be visible, a wait the scheduler cannot see).
            // A retention policy runs alone: after every earlier step, before any later one.
            let upcoming = (next <= steps).then(|| wl.step(gen, next));
            // A checkpoint runs alone too: once the log is durable through its LSN it does its own
            // I/O, which must not interleave with what the log thread does after the round that
            // released it (a commit running beside it would make the trace depend on timing).
            let alone = st
                .running
                .iter()
                .flatten()
                .any(|&s| matches!(wl.step(gen, s), Step::Retain(_) | Step::Checkpoint));
            let barrier = matches!(
                upcoming,
                Some(Step::Trim | Step::Retain(_) | Step::Checkpoint)
            );
            if matches!(upcoming, Some(Step::Trim)) && !busy {
                run.hist.started.push(sim.position());
                session.advance_clock(wl.clock_at(gen, next));
                let res = crate::workload::trim(db, session);
                let at = sim.position();
                run.steps_done = run.steps_done.max(next);
                match res {
                    Ok(()) => run.hist.acks.push(Ack {
                        step: next,
                        kind: AckKind::Skipped,
                        lsn: db.last_lsn(),
                        durable_lsn: db.durable_lsn(),
                        at,
                    }),
                    Err(e) => {
                        return Err(match session.stuck() {
                            Some(why) => {
                                Violation::new("liveness", format!("step {gen}.{next}: {why}"))
                            }
                            None => Violation::new(
                                "I5",
                                format!("step {gen}.{next}: trim_history() failed: {e}"),
                            ),
                        })
                    }
                }
                next += 1;
                continue;
            }
            // Idle: its last step was collected and its thread said it is done (it pushes the
            // result first, so a step must not start before that, or the late "done" would mark
            // the new step finished).
            let idle: Vec<usize> = {
                let g = sched.lock();
                (0..n)
                    .filter(|&c| st.running[c].is_none() && !g.busy[c])
                    .collect()
            };
            let waits = alone || (barrier && busy);
            let can_start = next <= steps && !idle.is_empty() && !waits;
            let mut g = sched.lock();
            let log_ok = Sched::log_runnable(&g);
            // Weights: start a step 3, let the log thread go 2, a short tick of time 1.
            let pick = r.below(6);
            if can_start && (pick < 3 || !log_ok) {
                drop(g);
                let c = idle[r.below(idle.len() as u64) as usize];
                run.hist.started.push(sim.position());
                st.running[c] = Some(next);
                st.target[c] = None;
                st.parked_at[c] = None;
                st.visible_target[c] = upcoming == Some(Step::Checkpoint);
                sched.committer_start(c);
                senders[c].send(next).expect("committer thread alive");
                next += 1;
            } else if log_ok && pick < 5 {
                // The next round's simulated device latency: 20–300 µs.
                g.latency = Duration::from_micros(r.range(20, 300));
                sched.release_log(&mut g);
            } else if log_ok || can_start {
                let to =
                    g.clock + Duration::from_micros(r.below(interval.as_micros() as u64 / 2 + 1));
                sched.advance_to(&mut g, to);
            } else if let LogAt::Waiting(Some(t)) = g.log {
                // Nothing can go before the log thread's timer: let simulated time reach it.
                sched.advance_to(&mut g, t);
            } else {
                let parked: Vec<String> = (0..n)
                    .filter_map(|c| {
                        st.running[c].map(|s| format!("step {gen}.{s} ({:?})", g.parked[c]))
                    })
                    .collect();
                return Err(Violation::new(
                    "liveness",
                    format!(
                        "deadlock: {} parked, and the log thread ({:?}) waits with no timer and no wake: nothing will ever resume them",
                        parked.join(", "),
                        g.log
                    ),
                ));
            }
        })();
        if let Err(v) = result {
            // Let every thread finish before the scope joins them: open the gates and close
            // the database, which makes every pending commit durable (or fails it).
            sched.free_run();
            // (A close that panics — an engine assertion about the hang — must not skip the
            // check below: the scope would then wait for the parked thread.)
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| db.close()));
            if !committers_return(sched, &threads) {
                // A committer still parked after the close is a hang the close did not end: the
                // scope would wait for its thread forever. Say what was found (on the process's
                // stderr itself: a test harness's capture would swallow it), and stop.
                use std::io::Write as _;
                let _ =
                    writeln!(
                    std::io::stderr(),
                    "VIOLATION [{}] mode=power seed={} gen={gen}: {} — and a committer is still \
                     parked after the database closed: the runner cannot join its thread, so it \
                     exits (status 3)",
                    v.invariant, ctx.seed, v.detail
                );
                std::process::exit(3);
            }
            run.live = Some(v);
        }
        drop(senders);
    });
    run.hist.acks.sort_by_key(|a| a.step);
}

/// After a liveness violation and the close: waits (real time, at most [`SETTLE_LIMIT`]) until
/// every committer has returned from its step. `false`: one is still parked. A committer whose
/// thread has finished (it panicked: it never said it was done) is not waited for — the scope's
/// join then raises its panic.
fn committers_return(sched: &Sched, threads: &[std::thread::ScopedJoinHandle<'_, ()>]) -> bool {
    let started = Instant::now();
    let mut g = sched.lock();
    while g
        .busy
        .iter()
        .zip(threads)
        .any(|(&b, t)| b && !t.is_finished())
    {
        if started.elapsed() > SETTLE_LIMIT {
            return false;
        }
        sched.wait_change(&mut g, Duration::from_millis(50));
    }
    true
}

/// The runner's view of its committers.
struct RunnerView {
    /// The step each committer runs.
    running: Vec<Option<u64>>,
    /// The LSN a parked committer waits to see durable (its own, or what its sync covers).
    /// The LSN a parked committer waits for, and which of its waits (the scheduler's `parks`
    /// count) it was computed for.
    target: Vec<Option<(u64, u64)>>,
    /// Simulated time at which it parked.
    parked_at: Vec<Option<Duration>>,
    /// It runs a checkpoint, which waits for the log to be durable through the LSN visible when
    /// it started (its snapshot), not through the last assigned one.
    visible_target: Vec<bool>,
}

/// Waits until every actor has stopped: the log thread at a gate (or absent), every busy
/// committer parked on a condition that does not hold yet.
fn settle(db: &Db, sched: &Sched, st: &mut RunnerView) -> Result<(), Violation> {
    let started = Instant::now();
    let mut g = sched.lock();
    loop {
        let durable = db.durable_lsn();
        let mut settled = g.log != LogAt::Running;
        // The scheduler's lock was released in this pass: what it read may be stale, and a
        // notification may have been missed. Look again at once.
        let mut unlocked = false;
        for c in 0..st.running.len() {
            if !g.busy[c] {
                // Finished (its result is waiting to be collected) or idle.
                continue;
            }
            if st.running[c].is_none() {
                // Its result was collected, its thread has yet to say it is done.
                settled = false;
                continue;
            }
            match g.parked[c] {
                None => settled = false,
                Some(BlockReason::Space) => settled = false,
                Some(why) => {
                    // The LSN it waits for: its own (it parked right after appending, and no
                    // other actor moved since), what its sync covers, or for a checkpoint the
                    // LSN of its snapshot (the visible one: nothing was published since it
                    // started).
                    let parks = g.parks[c];
                    let t = match st.target[c] {
                        Some((t, n)) if n == parks => t,
                        _ => {
                            // A commit inside a checkpoint (garbage collection's copies) waits
                            // for its own LSN, the last assigned.
                            let t = if st.visible_target[c] && why != BlockReason::CommitDurable {
                                db.last_lsn()
                            } else {
                                // It takes the engine's locks, under which committers announce
                                // they will block (`will_block`, which takes the scheduler's):
                                // never ask while holding the scheduler's lock (the two would
                                // deadlock).
                                unlocked = true;
                                parking_lot::MutexGuard::unlocked(&mut g, || db.last_assigned_lsn())
                            };
                            st.target[c] = Some((t, parks));
                            t
                        }
                    };
                    st.parked_at[c].get_or_insert(g.clock);
                    // Released (running again, or about to) once that LSN is durable — or, for
                    // a wait for the commits before it to publish, visible. A committer's last
                    // `will_block` stays recorded after it is woken: only this tells whether
                    // it still waits.
                    let released = match why {
                        BlockReason::Visibility => t <= db.last_lsn(),
                        _ => t <= durable,
                    };
                    if released {
                        settled = false;
                    }
                }
            }
        }
        if unlocked {
            continue;
        }
        if settled {
            for c in 0..st.running.len() {
                if let (Some(s), Some(at)) = (st.running[c], st.parked_at[c]) {
                    if g.busy[c] && g.clock.saturating_sub(at) > LIVENESS_BOUND {
                        return Err(Violation::new(
                            "liveness",
                            format!(
                                "step {s} has been parked ({:?}) for {:?} of simulated time while the log thread ran",
                                g.parked[c],
                                g.clock - at
                            ),
                        ));
                    }
                }
            }
            return Ok(());
        }
        if started.elapsed() > SETTLE_LIMIT {
            return Err(Violation::new(
                "liveness",
                format!(
                    "the engine did not settle within {SETTLE_LIMIT:?}: log thread {:?}, committers parked {:?}, busy {:?}",
                    g.log, g.parked, g.busy
                ),
            ));
        }
        sched.wait_change(&mut g, Duration::from_millis(50));
    }
}

/// Records the steps that returned since the last call, at the current trace position.
/// The `Buffered` acknowledgements of a scheduled run: the highest LSN, and each LSN with the
/// simulated time it was collected at (no earlier than its commit), until durable.
#[derive(Default)]
struct BufferedAcks {
    max: u64,
    timed: Vec<(u64, Duration)>,
    /// The simulated time now (set before each `collect`).
    now: Duration,
}

fn collect(
    ctx: &Ctx<'_>,
    gen: u32,
    done: &Mutex<Vec<Done>>,
    sim: &SimVfs,
    run: &mut GenRun,
    st: &mut RunnerView,
    buffered: &mut BufferedAcks,
) -> Result<(), Violation> {
    let finished = std::mem::take(&mut *done.lock());
    let at = sim.position();
    for d in finished {
        st.running[d.committer] = None;
        st.target[d.committer] = None;
        st.parked_at[d.committer] = None;
        run.steps_done = run.steps_done.max(d.step);
        match d.res {
            Ok(lsn) => {
                let kind = ack_kind(ctx.wl(), &ctx.wl().step(gen, d.step));
                if kind == (AckKind::Commit { durable: false }) {
                    buffered.max = buffered.max.max(lsn);
                    buffered.timed.push((lsn, buffered.now));
                }
                run.hist.acks.push(Ack {
                    step: d.step,
                    kind,
                    lsn,
                    durable_lsn: d.durable_lsn,
                    at,
                });
            }
            // An optimistic transaction refused by a concurrent commit: it wrote nothing
            // (whether the conflict was real is checked with the transactions' record).
            Err(ringlog_db::Error::Conflict { .. })
                if matches!(ctx.wl().step(gen, d.step), Step::Rmw { .. }) =>
            {
                run.hist.acks.push(Ack {
                    step: d.step,
                    kind: AckKind::Refused,
                    lsn: 0,
                    durable_lsn: d.durable_lsn,
                    at,
                });
            }
            Err(e) => {
                run.hist.acks.push(Ack {
                    step: d.step,
                    kind: AckKind::Failed,
                    lsn: 0,
                    durable_lsn: d.durable_lsn,
                    at,
                });
                return Err(Violation::new(
                    "I5",
                    format!(
                        "step {gen}.{} failed without an injected fault: {e}",
                        d.step
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Recovers a database on `img` and checks it: the state against the oracle (`model`: the
/// generation's history, prefixes and versions), then its versions, retention policy and trim
/// floor against the model. `pick` chooses the versions read; `counts` counts the checks.
/// What a read-only open of the state in `sim` sees (its contents, alien entries and last LSN),
/// or why it failed (`None`: no MANIFEST yet, rightly refused); a violation when the open changed
/// a byte or a name on the disk.
#[allow(clippy::type_complexity)]
fn read_only_view(
    ctx: &Ctx<'_>,
    sim: &SimVfs,
) -> Result<Option<Result<(State, Vec<crate::workload::Alien>, u64), String>>, Violation> {
    let before = sim.snapshot();
    let seen = Db::open_read_only(
        Setup::sim_dir(),
        ctx.setup.options(Some(sim.vfs()), IoChoice::Auto),
    )
    .and_then(|db| {
        let (st, aliens) = observe(&db, ctx.wl())?;
        Ok((st, aliens, db.last_lsn()))
    });
    let after = sim.snapshot();
    if before.files != after.files || before.dirs != after.dirs {
        let mut changed: Vec<String> = before
            .files
            .iter()
            .filter(|(p, b)| after.files.get(*p) != Some(*b))
            .map(|(p, _)| format!("{} changed or removed", p.display()))
            .collect();
        changed.extend(
            after
                .files
                .keys()
                .filter(|p| !before.files.contains_key(*p))
                .map(|p| format!("{} created", p.display())),
        );
        return Err(Violation::new(
            "read-only",
            format!(
                "the read-only open wrote to the disk: {}",
                changed.join(", ")
            ),
        ));
    }
    match seen {
        // A crash before the new database's MANIFEST was in place: nothing to open read-only
        // (the writable open creates the database).
        Err(ringlog_db::Error::NotADatabase(_))
            if !before.files.keys().any(|p| p.ends_with("MANIFEST")) =>
        {
            Ok(None)
        }
        seen => Ok(Some(seen.map_err(|e| e.to_string()))),
    }
}

fn check_state(
    ctx: &Ctx<'_>,
    img: &Image,
    model: (&History, &Prefixes, &Timeline),
    how: &StateCheck<'_>,
    (pick, counts): (u64, &mut Counts),
) -> Result<Checked, Violation> {
    let (hist, pre, tl) = model;
    let StateCheck {
        bounds,
        reopen,
        carried,
        trace,
        open_ops,
        again,
        clean,
    } = *how;
    // Every other state is read as from a real disk: segments streamed in by recovery's reader
    // thread, in small pieces (`setup::exercise_large_paths`).
    let sim = SimVfs::from_image(img, false, Duration::ZERO).streamed_reads(pick % 2 == 1);
    // Recovered at the time of the last step started before the crash.
    sim.set_wall(ctx.wl().clock_at(hist.gen, bounds.allowed));
    // One state in eight: a read-only open first, which must change nothing on the disk and see
    // exactly what the writable open then recovers.
    let read_only =
        if pick % 8 == 5 && ctx.setup.wl.cfg.durability() != ringlog_db::Durability::InMemory {
            *counts
                .entry("crash states opened read-only first")
                .or_default() += 1;
            read_only_view(ctx, &sim)?
        } else {
            None
        };
    let db = match ctx.open(&sim) {
        Ok(db) => db,
        Err(e) => {
            let known = known_open_failure(&e, img, trace, open_ops);
            if let (Some(k), false) = (known, crate::known::strict()) {
                return Err(Violation::new(crate::known::KNOWN, k));
            }
            return Err(Violation::new(
                "I5",
                format!(
                    "recovery failed: {e}{}",
                    match known {
                        Some(k) => format!(" ({k}; see crash-tests/src/known.rs)"),
                        None => String::new(),
                    }
                ),
            ));
        }
    };
    if db.recovery_stats().checkpoint_lsn != 0 {
        *counts
            .entry("crash states recovered from a checkpoint")
            .or_default() += 1;
        if db.recovery_stats().segments == 0 {
            *counts
                .entry("  ... from the checkpoint alone (a close retired the log)")
                .or_default() += 1;
        }
    }
    let rec = Recovered::of(&db);
    // The LSNs first: a visible LSN below the recovered one leaves the state unreadable.
    rec.check()?;
    if clean {
        // (A generation after the first may follow a crash, whose torn transaction stays.)
        crate::oracle::nothing_cut(db.recovery_stats(), hist.gen > 1)?;
        *counts
            .entry("crash states after a clean close: recovery cut nothing")
            .or_default() += 1;
    }
    let (st, aliens) =
        observe(&db, ctx.wl()).map_err(|e| Violation::new("I5", format!("scan failed: {e}")))?;
    match read_only {
        Some(Err(e)) => {
            return Err(Violation::new(
                "read-only",
                format!("the read-only open failed where the writable one recovers: {e}"),
            ))
        }
        Some(Ok((ro_st, ro_aliens, ro_last)))
            if ro_st != st || ro_aliens != aliens || ro_last != rec.last =>
        {
            return Err(Violation::new(
                    "read-only",
                    format!(
                        "the read-only open saw another state than recovery: last LSN {ro_last} vs {}, {} vs {} live keys, {} vs {} alien entries",
                        rec.last,
                        ro_st.live(),
                        st.live(),
                        ro_aliens.len(),
                        aliens.len()
                    ),
                ));
        }
        Some(Ok(_)) => {}
        None => {}
    }
    let checked = match check(ctx.wl(), hist, pre, &st, &aliens, rec, bounds) {
        Ok(v) => {
            let model = recovered_timeline(ctx.wl(), hist, tl, v.prefix, rec.last);
            // Two of the reads made before the crash, read again.
            let two: Vec<u64> = if again.is_empty() {
                Vec::new()
            } else {
                let n = again.len() as u64;
                vec![
                    again[(pick % n) as usize],
                    again[((pick >> 24) % n) as usize],
                ]
            };
            let how = Reread {
                last: rec.last,
                floor: bounds.floor,
                pick,
                samples: 1,
                again: &two,
                clean,
            };
            check_recovered(&db, ctx.wl(), &model, how, counts)?;
            // One state in eight: the log's runs hold exactly the recovered history.
            if pick % 8 == 3 {
                crate::txns::check_runs(&db, &model, rec.last, counts)?;
            }
            // Another one in eight: every key's retained history agrees with the point reads.
            if pick % 8 == 6 {
                crate::versions::check_history(&db, counts)?;
            }
            Checked {
                st,
                prefix: v.prefix,
                last: rec.last,
                earlier: false,
            }
        }
        Err(v) => {
            // After a process crash, this generation built on the previous one's unsynced
            // writes. A power loss may still drop them, as long as this generation had
            // acknowledged nothing durable yet: the state is then one the previous generation
            // allows at its crash.
            let earlier = carried
                .filter(|_| bounds.required == 0)
                .and_then(|c| check(ctx.wl(), &c.hist, &c.pre, &st, &aliens, rec, c.bounds).ok());
            let Some(e) = earlier else {
                return Err(v);
            };
            Checked {
                st,
                prefix: e.prefix,
                last: rec.last,
                earlier: true,
            }
        }
    };
    db.close()
        .map_err(|e| Violation::new("I5", format!("close after recovery failed: {e}")))?;
    if reopen {
        let db = ctx
            .open(&sim)
            .map_err(|e| Violation::new("I4", format!("a second recovery failed: {e}")))?;
        let (again, _) = observe(&db, ctx.wl())
            .map_err(|e| Violation::new("I4", format!("scan failed: {e}")))?;
        if again != checked.st || db.last_lsn() != rec.last {
            return Err(Violation::new(
                "I4",
                format!(
                    "recovering twice gave different states: [{}] (last LSN {}) then [{}] (last LSN {})",
                    checked.st.describe(),
                    rec.last,
                    again.describe(),
                    db.last_lsn()
                ),
            ));
        }
        db.close()
            .map_err(|e| Violation::new("I4", format!("close failed: {e}")))?;
    }
    Ok(checked)
}

/// What each operation of `trace` (recorded on a disk created from `base`) does for checkpoints
/// and compaction, when it does: the label of a crash right after it.
fn checkpoint_labels(base: &Image, trace: &[Op]) -> Vec<Option<&'static str>> {
    let mut names: std::collections::HashMap<usize, String> = base
        .files
        .keys()
        .enumerate()
        .map(|(i, p)| (i, short_name(p)))
        .collect();
    // Some(true): a checkpoint file (or its temp file); Some(false): the MANIFEST (or its temp
    // file); None: neither.
    let role = |n: &str| -> Option<bool> {
        if n.ends_with(".ckpt") || n.ends_with(".ckpt.tmp") {
            Some(true)
        } else if n.starts_with("MANIFEST") {
            Some(false)
        } else {
            None
        }
    };
    // The label of an operation on the file named `n`, by its role.
    let by_role = |n: Option<&str>, checkpoint: &'static str, manifest: &'static str| {
        n.and_then(role)
            .map(|ckpt| if ckpt { checkpoint } else { manifest })
    };
    let mut out = Vec::with_capacity(trace.len());
    let mut after_manifest_rename = false;
    for op in trace {
        let label = match op {
            Op::Create { path, ino } => {
                let n = short_name(path);
                let l = by_role(
                    Some(&n),
                    "after checkpoint file creation",
                    "after MANIFEST write",
                );
                names.insert(*ino, n);
                l
            }
            Op::Write { ino, .. } | Op::SetLen { ino, .. } => by_role(
                names.get(ino).map(String::as_str),
                "after checkpoint write",
                "after MANIFEST write",
            ),
            Op::Sync { ino } => by_role(
                names.get(ino).map(String::as_str),
                "after checkpoint fdatasync",
                "after MANIFEST fsync",
            ),
            Op::Rename { to, ino, .. } => {
                let n = short_name(to);
                let l = by_role(Some(&n), "after checkpoint rename", "after MANIFEST rename");
                names.insert(*ino, n);
                l
            }
            Op::Remove { path } => {
                let n = short_name(path);
                if n.ends_with(".log") {
                    Some("after segment deletion")
                } else if role(&n) == Some(true) {
                    Some("after checkpoint deletion")
                } else {
                    None
                }
            }
            Op::SyncDir { .. } if after_manifest_rename => {
                Some("after the MANIFEST's directory fsync")
            }
            _ => None,
        };
        after_manifest_rename = label == Some("after MANIFEST rename");
        out.push(label);
    }
    out
}

fn short_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn fault_kind(trace: &[Op], labels: &[Option<&'static str>], p: u64, first_step_at: u64) -> String {
    let last = p.checked_sub(1).map(|i| i as usize);
    if p <= first_step_at && first_step_at != u64::MAX {
        // Open removes what interrupted checkpoints and compactions left.
        return match last.and_then(|i| labels.get(i).copied().flatten()) {
            Some("after segment deletion" | "after checkpoint deletion") => {
                "crash during open: leftover removal".into()
            }
            _ => "crash during open/recovery".into(),
        };
    }
    if let Some(l) = last.and_then(|i| labels.get(i).copied().flatten()) {
        return l.into();
    }
    match last.and_then(|i| trace.get(i)) {
        None => "crash before any I/O".into(),
        Some(op) => format!(
            "after {}",
            match op {
                Op::Create { .. } => "file creation",
                Op::Write { .. } => "write",
                Op::SetLen { .. } => "size change",
                Op::Sync { .. } => "fdatasync",
                Op::SyncFailed { .. } => "failed fdatasync",
                Op::Rename { .. } => "rename",
                Op::RenameDir { .. } => "directory rename",
                Op::Remove { .. } => "removal",
                Op::SyncDir { .. } => "directory fsync",
                Op::SyncDirFailed { .. } => "failed directory fsync",
                Op::WriteFailed { .. } => "failed write",
                Op::SubmitFailed { .. } => "failed log round submission",
            }
        ),
    }
}

type StateCtx<'a, 'b> = (&'a Sweeper<'b>, &'a [Unit], &'a [u8], Bounds);

fn make_failure(
    ctx: &Ctx<'_>,
    t: Target,
    v: Violation,
    state: Option<StateCtx<'_, '_>>,
    img: Option<&Image>,
    run: &GenRun,
    base: &Image,
) -> Failure {
    let wl = ctx.wl();
    let mut trace = vec![ctx.setup.describe()];
    let (lo_step, hi_step) = match state {
        Some((_, _, _, b)) => (b.required.saturating_sub(2).max(1), b.allowed.max(1)),
        None => (
            run.steps_done.saturating_sub(4).max(1),
            run.steps_done.max(1),
        ),
    };
    for s in lo_step..=(hi_step + 2).min(lo_step + 10).min(ctx.opts.steps) {
        let ack = run.hist.acks.iter().find(|a| a.step == s);
        trace.push(format!(
            "step {}.{s}: {}{}",
            t.gen,
            describe_step(&wl.step(t.gen, s)),
            ack.map(|a| format!(
                " -> {:?} LSN {} (durable {}) at position {}",
                a.kind, a.lsn, a.durable_lsn, a.at
            ))
            .unwrap_or_else(|| " -> not acknowledged".into())
        ));
    }
    let names_sw;
    let sw = match state {
        Some((sw, ..)) => sw,
        None => {
            names_sw = Sweeper::new(base, &run.trace, ctx.opts.model);
            &names_sw
        }
    };
    let p = t.point as usize;
    let from = sw
        .oldest_pending()
        .unwrap_or(p)
        .min(p.saturating_sub(6))
        .max(p.saturating_sub(40));
    let names = |i| sw.name_of(i);
    for (i, op) in run.trace.iter().enumerate().take(p).skip(from) {
        trace.push(format!("#{i} {}", op.describe(&names)));
    }
    trace.push(format!(
        "-- crash at position {p} of {} --",
        run.trace.len()
    ));
    if let Some((_, units, choices, b)) = state {
        trace.push(format!(
            "requires the prefix of at least {} and at most {} steps",
            b.required, b.allowed
        ));
        let mut outcome = Vec::new();
        for (u, &c) in units.iter().zip(choices) {
            outcome.push(match *u {
                Unit::DirOp(j) => format!("#{j}:{}", if c == 1 { "kept" } else { "dropped" }),
                Unit::SetLen(j) => format!("#{j}:{}", if c == 1 { "kept" } else { "dropped" }),
                Unit::Sector {
                    op, sector, same, ..
                } => {
                    let o = if same { c + 1 } else { c };
                    format!("#{op}/s{sector}:{}", ["old", "new", "garbage"][o as usize])
                }
            });
        }
        if outcome.is_empty() {
            trace.push("state: everything durable (nothing pending)".into());
        } else {
            trace.push(format!("state: {}", outcome.join(" ")));
        }
    }
    let image = match (&ctx.opts.keep, img) {
        (Some(dir), Some(img)) => {
            let d = dir.join(format!(
                "{}-seed{}-g{}-p{}-s{}",
                ctx.opts.mode_name(),
                ctx.seed,
                t.gen,
                t.point,
                t.state
            ));
            match img.save(&d) {
                Ok(()) => Some(d),
                Err(_) => None,
            }
        }
        _ => None,
    };
    let f = Failure {
        mode: ctx.opts.mode_name().into(),
        seed: ctx.seed,
        model: ctx.opts.model.to_string(),
        point: format!("{}.{}", t.gen, t.point),
        state: t.state,
        violation: v,
        trace,
        image,
        replay: ctx.opts.replay_command(ctx.seed, ctx.mode, t),
    };
    if let Some(d) = &f.image {
        let _ = std::fs::write(d.join("FAILURE.txt"), f.render());
    }
    f
}

/// A step in words.
pub fn describe_step(s: &Step) -> String {
    match s {
        Step::Read(r) => format!("read {r:?}"),
        Step::Snapshot { slot, read } => format!("snapshot into slot {slot}, then read {read:?}"),
        Step::DropSnapshot { slot } => format!("drop the snapshot of slot {slot}"),
        Step::Trim => "trim_history()".into(),
        Step::Retain(p) => format!("set_retention({:?})", p.retention()),
        Step::Checkpoint => "checkpoint()".into(),
        Step::Sync => "sync()".into(),
        Step::Skip => "left out (shrunk away)".into(),
        Step::Pause(d) => format!("pause {d:?}"),
        Step::Txn { ops, commit } | Step::Rmw { ops, commit, .. } => {
            let ops: Vec<String> = ops
                .iter()
                .map(|o| match o.value_len {
                    Some(l) => format!("put k{:04} ({l} B)", o.key),
                    None => format!("delete k{:04}", o.key),
                })
                .collect();
            let reads = match s {
                Step::Rmw { ops, scan, .. } => {
                    let keys: Vec<String> = ops.iter().map(|o| format!("k{:04}", o.key)).collect();
                    let scan = scan.map_or(String::new(), |(lo, hi)| {
                        format!(", scan k{lo:04}..k{hi:04}")
                    });
                    format!("optimistic: read {}{scan}, then ", keys.join(", "))
                }
                _ => String::new(),
            };
            format!("{reads}[{}] commit {:?}", ops.join(", "), commit)
        }
    }
}
