//! `kill` mode: a child process (`ringlog-crash workload`) runs the workload on a real directory,
//! through io_uring or the portable path, streaming acknowledgements over a pipe the parent owns.
//! The parent SIGKILLs it after a random delay — about half of those kills aimed after the
//! Buffered loss window has elapsed since an acknowledged commit, so that the window check can
//! fire — or the child kills itself at an armed crash point (`ringlog_db::failpoints`); then the
//! parent recovers the directory, checks the oracle, and starts the next generation on the same
//! directory.
//!
//! The parent also watches the child: one that writes no line for the watchdog bound is hung,
//! and is reported as a `liveness` violation with its stacks ([`crate::watchdog`]), not killed
//! as planned.
//!
//! A process kill keeps the kernel's page cache: this mode tests process-crash atomicity, the
//! real I/O paths and the crash points; power loss is the simulated modes' business.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use ringlog_db::IoChoice;

use crate::acklog::{check_generation, parse, Generation};
use crate::model::{next_base, recovered_timeline, with_generation, Timeline};
use crate::oracle::{Ack, AckKind, History, Recovered, Violation};
use crate::report::{Failure, Summary};
use crate::rng::Rng;
use crate::setup::Setup;
use crate::versions::check_recovered;
use crate::watchdog;
use crate::workload::{observe, Mode, State, Step};

/// Settings of a `kill` run.
#[derive(Clone, Debug)]
pub struct KillOptions {
    /// Seeds; seed `i` uses `modes[i % modes.len()]` and its own directory.
    pub seeds: Vec<u64>,
    /// Default durability modes to cycle through.
    pub modes: Vec<Mode>,
    /// I/O path of the child (and of the parent's recovery).
    pub io: IoChoice,
    /// Kill/recover cycles (generations) per seed.
    pub cycles: u32,
    /// Directory under which each seed's database directory is created.
    pub base_dir: PathBuf,
    /// The `ringlog-crash` executable to run as the child.
    pub exe: PathBuf,
    /// Longest delay before an early SIGKILL (from the child's start); a kill aimed after the
    /// loss window comes up to half of it after the window.
    pub max_delay: Duration,
    /// Chance (per mille) that a cycle arms a crash point in the child.
    pub failpoint_per_mille: u64,
    /// Least slack allowed beyond a `Buffered` interval when judging which acknowledged commits
    /// a kill may lose; a generation whose child stalled gets [`STALL_FACTOR`] times its longest
    /// stall if that is more ([`effective_slack`]).
    pub slack: Duration,
    /// Keep a copy of failing directories here.
    pub keep: Option<PathBuf>,
    /// Stop at the first violation.
    pub stop_on_first: bool,
    /// Progress on stderr.
    pub progress: bool,
    /// Test hook: called on the directory after each kill, before the parent recovers it (to
    /// prove that damage there is caught).
    pub tamper: Option<fn(&Path)>,
    /// Test hook: the name of an engine planted bug (`ringlog_db::bugs::Bug`, as `Debug` prints
    /// it) every child arms before it opens the database ([`PLANTED_ENV`]), to prove that a
    /// writer-side bug is caught in this mode. `None` for a campaign.
    pub child_bug: Option<String>,
}

/// Environment variable of a `workload` child: the engine planted bugs (`Debug` names, comma
/// separated) it arms before it opens the database.
pub const PLANTED_ENV: &str = "RINGLOG_CRASH_PLANTED";

/// Settings of a `kill` run beyond [`KillOptions`] (apart, so that code building `KillOptions`
/// literally keeps compiling); [`run`] uses the defaults.
#[derive(Clone, Debug, Default)]
pub struct KillTuning {
    /// Watchdog bound: a child that writes no ack-log line for this long is hung (a `liveness`
    /// violation). Default: [`watchdog::default_bound`] of the seed's Buffered interval.
    pub watchdog: Option<Duration>,
    /// Per mille of the random-delay kills of `Strict` and `Buffered` children (no crash point
    /// armed) aimed after the loss window. Default: [`LATE_PER_MILLE`].
    pub late_per_mille: Option<u64>,
    /// Test hook of the watchdog: every child hangs at this step ([`watchdog::STALL_ENV`]).
    pub stall_at_step: Option<u64>,
}

/// Default share (per mille) of random-delay kills aimed after the loss window.
pub const LATE_PER_MILLE: u64 = 500;

/// A generation's slack is at least this many times the longest stall of its child's lines.
pub const STALL_FACTOR: u32 = 4;

/// A kill aimed after the window waits at most this long after the child's start.
const LATE_CAP: Duration = Duration::from_secs(3);

/// Deadline of a child armed with a crash point of checkpoints or compaction (the child
/// checkpoints every few hundred commits): the point usually fires well before.
const CHECKPOINT_POINT_DEADLINE: Duration = Duration::from_millis(1500);

/// Crash points after which the directory holds leftovers the next open removes: a checkpoint
/// file not (yet) named by the MANIFEST, or files the new MANIFEST no longer needs. (After
/// `manifest::before_rename` outside a checkpoint — at creation — there is none.)
const LEAVES_LEFTOVERS: &[&str] = &[
    "checkpoint::write",
    "checkpoint::before_sync",
    "checkpoint::before_rename",
    "manifest::before_rename",
    "manifest::before_dir_sync",
    "compaction::before_delete_checkpoint",
    "compaction::before_delete_segment",
];

fn io_name(io: IoChoice) -> &'static str {
    io.name()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// The runner could not run (as opposed to a violation).
#[derive(Debug)]
pub struct RunnerError(pub String);

impl std::fmt::Display for RunnerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Campaign-wide counts reported as notes.
#[derive(Default)]
struct Tally {
    /// Kills the parent sent to a `Strict` or `Buffered` child (the window check ran).
    checked: u64,
    /// Of those, aimed after the window.
    aimed: u64,
    /// Of those, some acknowledged non-durable commit was overdue ([`window_check`]): losing it
    /// would have been a violation.
    after: u64,
    /// Largest age of the oldest lost non-durable acknowledgement of a kill: (age, interval,
    /// window).
    oldest_lost: Option<(Duration, Duration, Duration)>,
    /// Longest stall of a generation (the slack's evidence).
    stall: Duration,
    /// Longest silence of a child, and the watchdog bound then.
    silence: Duration,
    bound: Duration,
    /// Kills that waited for a silent child's next line.
    held: u64,
    /// Lost acknowledgements older than the window excused by a round still running.
    excused: u64,
}

/// Runs every seed.
pub fn run(opts: &KillOptions) -> Result<Summary, RunnerError> {
    run_tuned(opts, &KillTuning::default())
}

/// Runs every seed, with `tuning`.
pub fn run_tuned(opts: &KillOptions, tuning: &KillTuning) -> Result<Summary, RunnerError> {
    crate::setup::exercise_large_paths();
    let started = Instant::now();
    let mut sum = Summary::new("kill", io_name(opts.io));
    sum.unit = "kill/recover cycles".into();
    let mut tally = Tally::default();
    for (i, &seed) in opts.seeds.iter().enumerate() {
        let mode = opts.modes[i % opts.modes.len().max(1)];
        run_seed(opts, tuning, seed, mode, &mut sum, &mut tally)?;
        if opts.progress {
            eprint!(
                "\r[{}/{}] seeds, {} cycles, {} violations   ",
                i + 1,
                opts.seeds.len(),
                sum.states,
                sum.failures.len()
            );
        }
        if opts.stop_on_first && !sum.failures.is_empty() {
            break;
        }
    }
    if opts.progress {
        eprintln!();
    }
    let io = io_name(opts.io);
    sum.notes.push(format!(
        "{io}: kills after the window: {} of {} SIGKILLs of Strict/Buffered children ({} aimed after it); window = interval + max({}, {STALL_FACTOR} x the generation's longest stall), the stalls asking for up to {}",
        tally.after,
        tally.checked,
        tally.aimed,
        ms(opts.slack),
        ms(tally.stall * STALL_FACTOR),
    ));
    if let Some((age, interval, window)) = tally.oldest_lost {
        sum.notes.push(format!(
            "{io}: oldest acknowledged Buffered commit a kill lost: {} old (interval {}, window {}); {} lost commits older than their window excused by a round of older data still running",
            ms(age),
            ms(interval),
            ms(window),
            tally.excused
        ));
    }
    sum.notes.push(format!(
        "{io}: longest silence of a child: {} (watchdog bound {}); {} kills waited for a silent child's next line",
        ms(tally.silence),
        ms(tally.bound),
        tally.held
    ));
    sum.elapsed = started.elapsed();
    Ok(sum)
}

/// What the parent saw of one child.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Its complete lines, each with the instant the parent received it (never before the child
    /// wrote it).
    pub lines: Vec<(String, Instant)>,
    /// Taken just before the parent sent SIGKILL (so never after the kill); `None` when the
    /// child died by itself or completed.
    pub killed_at: Option<Instant>,
}

/// Timing of one child's lines as the parent received them.
#[derive(Clone, Debug, Default)]
struct Timing {
    /// When the previous line arrived.
    prev: Option<Instant>,
    /// Longest gap between successive lines not explained by a pause step.
    stall: Duration,
    /// Last acknowledged step.
    last_step: u64,
    /// When the first acknowledged non-durable commit arrived.
    first_buffered: Option<Instant>,
}

impl Timing {
    fn of(setup: &Setup, gen: u32, lines: &[(String, Instant)]) -> Timing {
        let mut t = Timing::default();
        for (l, at) in lines {
            t.line(setup, gen, l, *at);
        }
        t
    }

    fn line(&mut self, setup: &Setup, gen: u32, line: &str, at: Instant) {
        let f: Vec<&str> = line.split(' ').collect();
        let mut pause = Duration::ZERO;
        if f.len() == 6 && f[0] == "A" {
            if let Ok(step) = f[2].parse::<u64>() {
                self.last_step = step;
                match f[3] {
                    // The line comes after the pause's sleep.
                    "P" => {
                        if let Step::Pause(d) = setup.wl.step(gen, step) {
                            pause = d;
                        }
                    }
                    "C" => {
                        self.first_buffered.get_or_insert(at);
                    }
                    _ => {}
                }
            }
        }
        if let Some(p) = self.prev {
            let gap = at.saturating_duration_since(p).saturating_sub(pause);
            self.stall = self.stall.max(gap);
        }
        self.prev = Some(at);
    }

    /// The longest stall, counting the silence from the last line to `end` (the kill).
    fn stall_until(&self, setup: &Setup, gen: u32, end: Instant) -> Duration {
        let Some(p) = self.prev else {
            return self.stall;
        };
        let pause = match setup.wl.step(gen, self.last_step + 1) {
            Step::Pause(d) => d,
            _ => Duration::ZERO,
        };
        self.stall
            .max(end.saturating_duration_since(p).saturating_sub(pause))
    }
}

/// The slack of a generation whose child's longest stall (a gap between its lines that no pause
/// explains, or its silence before the kill) was `stall`: `slack`, or [`STALL_FACTOR`] times the
/// stall if more. A machine loaded enough to stall the committing thread can delay the log
/// thread as much, and a `Strict` commit's stall is a write + sync round, the longest a round in
/// progress can hold back the next.
pub fn effective_slack(slack: Duration, stall: Duration) -> Duration {
    slack.max(stall * STALL_FACTOR)
}

/// How a loss-window violation's detail starts.
const WINDOW_LOSS: &str = "the kill lost ";

/// The Buffered loss-window check of one kill.
#[derive(Clone, Debug, Default)]
pub struct Window {
    /// The check ran (the parent killed a child).
    pub checked: bool,
    /// Interval plus slack.
    pub window: Duration,
    /// The slack ([`effective_slack`]).
    pub slack: Duration,
    /// The child's longest stall.
    pub stall: Duration,
    /// Some acknowledged non-durable commit was overdue at the kill (see [`window_check`]): a
    /// loss of it would have been a violation.
    pub after: bool,
    /// Age at the kill of the oldest non-durable acknowledgement the kill lost.
    pub oldest_lost: Option<Duration>,
    /// Lost acknowledgements older than the window, excused because the child never showed the
    /// commits before them durable: a round of older data was still running at the kill.
    pub excused: u64,
}

/// The loss-window check: a commit acknowledged without a durability promise (a `Buffered`
/// commit, default or override) may be lost by a kill only if it was not yet overdue. It is due
/// `interval` after its acknowledgement, and not before the child showed everything committed
/// before it durable (the durable LSN on its own or a later line reached the previous commit's
/// LSN): from then on the log thread had nothing older to finish and the timer had expired, so
/// only scheduling (and, at a segment boundary, the new segment's creation) stood between the
/// commit and its write. It is overdue when the kill came more than the slack
/// ([`effective_slack`]) after it was due, which implies that it was acknowledged more than the
/// window (interval + slack) before the kill. A lost commit that the child never showed that for
/// is excused (a slow round of older data was still running), and counted.
///
/// `prefix` is the number of steps the recovered state holds. Times are the instants the
/// parent received the lines and the instant before it sent SIGKILL, so ages never exceed the
/// true ones.
pub fn window_check(
    setup: &Setup,
    g: &Generation,
    obs: &Observed,
    prefix: u64,
    slack: Duration,
) -> Result<Window, Violation> {
    let Some(killed) = obs.killed_at else {
        return Ok(Window::default());
    };
    let gen = g.hist.gen;
    let stall = Timing::of(setup, gen, &obs.lines).stall_until(setup, gen, killed);
    let slack_eff = effective_slack(slack, stall);
    let interval = setup.wl.cfg.interval;
    let window = interval + slack_eff;
    let received: HashMap<u64, Instant> = obs
        .lines
        .iter()
        .filter_map(|(l, at)| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() == 6 && f[0] == "A")
                .then(|| Some((f[2].parse().ok()?, *at)))
                .flatten()
        })
        .collect();
    let acks: Vec<(&Ack, Instant)> = g
        .hist
        .acks
        .iter()
        .filter_map(|a| Some((a, *received.get(&a.step)?)))
        .collect();
    // (ack, received, due): due is None without evidence that older work was done.
    let mut buffered: Vec<(&Ack, Instant, Option<Instant>)> = Vec::new();
    let mut before = g.hist.base_lsn;
    let mut j = 0;
    for (i, &(a, at)) in acks.iter().enumerate() {
        if matches!(a.kind, AckKind::Commit { durable: false }) {
            // The durable LSN only grows, and so does `before`: one forward scan serves all.
            j = j.max(i);
            while j < acks.len() && acks[j].0.durable_lsn < before {
                j += 1;
            }
            let due = acks.get(j).map(|&(_, free)| free.max(at + interval));
            buffered.push((a, at, due));
        }
        if matches!(a.kind, AckKind::Commit { .. }) {
            before = before.max(a.lsn);
        }
    }
    let overdue = |due: Option<Instant>| due.is_some_and(|d| killed > d + slack_eff);
    let lost: Vec<&(&Ack, Instant, Option<Instant>)> = buffered
        .iter()
        .filter(|(a, _, _)| a.step > prefix)
        .collect();
    let age = |at: Instant| killed.saturating_duration_since(at);
    let w = Window {
        checked: true,
        window,
        slack: slack_eff,
        stall,
        after: buffered.iter().any(|&(_, _, due)| overdue(due)),
        oldest_lost: lost.first().map(|&&(_, at, _)| age(at)),
        excused: lost
            .iter()
            .filter(|&&&(_, at, due)| due.is_none() && age(at) > window)
            .count() as u64,
    };
    let late: Vec<_> = lost.iter().filter(|&&&(_, _, due)| overdue(due)).collect();
    let Some(&&&(a, at, due)) = late.first() else {
        return Ok(w);
    };
    let free = due
        .map(|d| d.saturating_duration_since(at + interval))
        .filter(|d| !d.is_zero())
        .map(|d| {
            format!(
                "; the commits before it were shown durable {} after it",
                ms(interval + d)
            )
        })
        .unwrap_or_default();
    Err(Violation::new(
        "durability",
        format!(
            "{WINDOW_LOSS}{} acknowledged Buffered commit(s) older than the loss window: the oldest, step {gen}.{} (LSN {}), was acknowledged {} before the kill; the window is {} (interval {} + slack {}, the larger of --slack-ms {} and {STALL_FACTOR} x the child's longest stall {}){free}",
            late.len(),
            a.step,
            a.lsn,
            ms(age(at)),
            ms(window),
            ms(interval),
            ms(slack_eff),
            ms(slack),
            ms(stall)
        ),
    ))
}

/// What the parent knows of the history before a generation: the model of every transaction
/// recovered so far (with its retention policies), and the highest LSN acknowledged by any child
/// before (lost or not: it must never name other data).
#[derive(Clone, Debug)]
pub struct Model {
    /// Every transaction up to the generation's start.
    pub base: Timeline,
    /// The highest LSN acknowledged by earlier generations.
    pub acked_before: u64,
    /// The highest trim floor the engine reported in earlier generations (`T` lines): reads
    /// below it stay refused after every later kill and recovery.
    pub floor: u64,
}

/// What a recovery after a kill found.
#[derive(Debug)]
pub struct Recovery {
    /// The state recovered.
    pub st: State,
    /// Its last LSN.
    pub last: u64,
    /// The Buffered loss window check's facts.
    pub window: Window,
    /// The model of the history the next generation starts from (with `model`).
    pub next: Option<Timeline>,
    /// The checks of its versions.
    pub counts: crate::versions::Counts,
}

/// Recovers `dir` as the parent does after a kill and checks it against generation `g`: the
/// oracle, then the Buffered loss window against what the parent observed, then (with `model`)
/// the recovered database's LSNs against every acknowledgement so far (I6 across generations)
/// and its versions, retention policy and trim floor against the model.
pub fn recover_and_check(
    setup: &Setup,
    g: &Generation,
    dir: &Path,
    io: IoChoice,
    obs: &Observed,
    slack: Duration,
    model: Option<&Model>,
) -> Result<Recovery, Violation> {
    let db = setup
        .open(dir, None, io)
        .map_err(|e| Violation::new("I5", format!("recovery failed: {e}")))?;
    if g.mode != Mode::InMemory {
        Recovered::of(&db).check()?;
    }
    let (st, aliens) =
        observe(&db, &setup.wl).map_err(|e| Violation::new("I5", format!("scan failed: {e}")))?;
    let last = db.last_lsn();
    if g.mode == Mode::InMemory {
        // An in-memory database writes nothing; the directory holds no database.
        let entries = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        if entries > 0 && g.started {
            return Err(Violation::new(
                "durability",
                format!("an in-memory database left {entries} entries on disk"),
            ));
        }
        return Ok(Recovery {
            st,
            last,
            window: Window::default(),
            next: model.map(|m| m.base.clone()),
            counts: Default::default(),
        });
    }
    let mut rec = Recovered::of(&db);
    let mut g = g.clone();
    if let Some(m) = model {
        g.hist.acked_before = m.acked_before;
    } else {
        rec.next = None;
    }
    let v = check_generation(setup, &g, &st, &aliens, rec)?;
    let mut counts = crate::versions::Counts::new();
    let stats = db.recovery_stats();
    if stats.checkpoint_lsn != 0 {
        *counts.entry("recoveries from a checkpoint").or_default() += 1;
        if stats.segments == 0 {
            *counts
                .entry("  ... from the checkpoint alone (a close retired the log)")
                .or_default() += 1;
        }
    }
    if stats.leftovers_removed != 0 {
        *counts
            .entry("recoveries that removed checkpoint/compaction leftovers")
            .or_default() += 1;
    }
    let next = match model {
        Some(m) => {
            let tl = with_generation(&m.base, &setup.wl, &g.hist);
            let recovered = recovered_timeline(&setup.wl, &g.hist, &tl, v.prefix, rec.last);
            let pick = crate::rng::mix(&[g.seed, g.hist.gen as u64, rec.last, 0x4B1]);
            let how = crate::versions::Reread {
                last: rec.last,
                floor: m.floor.max(g.floor),
                pick,
                samples: 4,
                again: &[],
                // (A child that completed closed cleanly, but its close and this check are not
                // told apart here: a NewerThan floor lower after it is counted as after a crash.)
                clean: false,
            };
            check_recovered(&db, &setup.wl, &recovered, how, &mut counts)?;
            Some(next_base(&setup.wl, &g.hist, &tl, v.prefix, rec.last))
        }
        None => None,
    };
    db.close()
        .map_err(|e| Violation::new("I5", format!("close failed: {e}")))?;
    let w = window_check(setup, &g, obs, v.prefix, slack)?;
    Ok(Recovery {
        st,
        last,
        window: w,
        next,
        counts,
    })
}

/// When the parent kills a child.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// This long after its start.
    At(Duration),
    /// This long after the loss window (with the slack the child's stalls so far ask for) has
    /// elapsed since its first acknowledged non-durable commit; [`LATE_CAP`] after its start at
    /// the latest.
    AfterWindow(Duration),
}

struct Outcome {
    obs: Observed,
    stderr: String,
    status: std::process::ExitStatus,
    /// The watchdog found the child hung: how long it had been silent, and its stacks.
    hung: Option<(Duration, String)>,
    /// The kill waited for a silent child's next line.
    held: bool,
    /// Longest silence: between lines, or from the start to the first line.
    silence: Duration,
}

/// A kill that falls due while the child has been silent this long waits for its next line (or
/// the watchdog): a hung child is reported, not killed. Above the longest silence of a running
/// child (a pause lasts at most 3 intervals; a round usually a few ms); before its first line
/// (exec and recovery), 500 ms, so that kills still land during recovery.
fn hold_after(interval: Duration, started: bool) -> Duration {
    if started {
        Duration::from_millis(25) + interval * 3
    } else {
        Duration::from_millis(500)
    }
}

struct ChildRun<'a> {
    opts: &'a KillOptions,
    setup: &'a Setup,
    dir: &'a Path,
    seed: u64,
    mode: Mode,
    gen: u32,
    failpoint: Option<(&'a str, u64)>,
    plan: Plan,
    bound: Duration,
    stall_at: Option<u64>,
}

/// The parent's running view of a child's lines.
struct Watch {
    lines: Vec<(String, Instant)>,
    timing: Timing,
    /// When the last line arrived (the start before the first).
    last: Instant,
    /// Longest silence so far.
    silence: Duration,
}

impl Watch {
    fn take(&mut self, c: &ChildRun<'_>, l: (String, Instant)) {
        self.silence = self.silence.max(l.1.saturating_duration_since(self.last));
        self.last = self.last.max(l.1);
        self.timing.line(c.setup, c.gen, &l.0, l.1);
        self.lines.push(l);
    }
}

fn run_child(c: &ChildRun<'_>) -> Result<Outcome, RunnerError> {
    let opts = c.opts;
    let mut cmd = Command::new(&opts.exe);
    cmd.arg("workload")
        .arg("--dir")
        .arg(c.dir)
        .args(["--ack-log", "-", "--durability", c.mode.name()])
        .args(["--seed", &c.seed.to_string(), "--gen", &c.gen.to_string()])
        .args(["--io", io_name(opts.io)])
        // Runs until killed; the bound only keeps a fast in-memory run's log small.
        .args(["--steps", "50000"])
        .env("RINGLOG_IO", io_name(opts.io))
        .env_remove(watchdog::STALL_ENV)
        .env_remove(PLANTED_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((name, n)) = c.failpoint {
        cmd.args(["--failpoint", &format!("{name}:{n}")]);
    }
    if crate::known::strict() {
        cmd.arg("--strict");
    }
    if let Some(s) = c.stall_at {
        cmd.env(watchdog::STALL_ENV, s.to_string());
    }
    if let Some(bug) = &opts.child_bug {
        cmd.env(PLANTED_ENV, bug);
    }
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| RunnerError(format!("cannot start {}: {e}", opts.exe.display())))?;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                // A line cut by the kill has no newline: it never happened.
                Ok(n) if n > 0 && line.ends_with('\n') => {
                    let _ = tx.send((line.trim_end().to_string(), Instant::now()));
                }
                _ => break,
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let wait_err = |e: std::io::Error| RunnerError(format!("wait: {e}"));
    let interval = c.setup.wl.cfg.interval;
    let poll = Duration::from_micros(300);
    let mut w = Watch {
        lines: Vec::new(),
        timing: Timing::default(),
        last: start,
        silence: Duration::ZERO,
    };
    let mut killed_at = None;
    let mut hung = None;
    let mut held = false;
    let status = loop {
        match rx.recv_timeout(poll) {
            Ok(l) => w.take(c, l),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(poll),
        }
        while let Ok(l) = rx.try_recv() {
            w.take(c, l);
        }
        if let Some(st) = child.try_wait().map_err(wait_err)? {
            break st;
        }
        let now = Instant::now();
        if now.saturating_duration_since(w.last) >= c.bound {
            // A child (or this process's reader) that was only starved shows a line in the grace
            // period.
            if let Ok(l) = rx.recv_timeout(watchdog::grace(c.bound)) {
                w.take(c, l);
                continue;
            }
            if let Some(st) = child.try_wait().map_err(wait_err)? {
                break st;
            }
            let silent = w.last.elapsed();
            hung = Some((silent, watchdog::capture_stacks(child.id())));
            let _ = child.kill();
            break child.wait().map_err(wait_err)?;
        }
        let due = match c.plan {
            Plan::At(d) => start + d,
            Plan::AfterWindow(extra) => {
                let cap = start + LATE_CAP;
                w.timing.first_buffered.map_or(cap, |t0| {
                    (t0 + interval + effective_slack(opts.slack, w.timing.stall) + extra).min(cap)
                })
            }
        };
        if now >= due {
            if now.saturating_duration_since(w.last) > hold_after(interval, w.timing.prev.is_some())
            {
                held = true;
                continue;
            }
            killed_at = Some(Instant::now());
            let _ = child.kill();
            break child.wait().map_err(wait_err)?;
        }
    };
    let _ = reader.join();
    // Lines the child wrote before it died.
    while let Ok(l) = rx.try_recv() {
        w.take(c, l);
    }
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Outcome {
        obs: Observed {
            lines: w.lines,
            killed_at,
        },
        stderr,
        status,
        hung,
        held,
        silence: w.silence,
    })
}

fn run_seed(
    opts: &KillOptions,
    tuning: &KillTuning,
    seed: u64,
    mode: Mode,
    sum: &mut Summary,
    tally: &mut Tally,
) -> Result<(), RunnerError> {
    use std::os::unix::process::ExitStatusExt;
    sum.seeds += 1;
    let setup = Setup::derive(seed, mode, false);
    let bound = tuning
        .watchdog
        .unwrap_or_else(|| watchdog::default_bound(setup.wl.cfg.interval));
    tally.bound = tally.bound.max(bound);
    let dir = opts
        .base_dir
        .join(format!("ringlog-crash-kill-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&opts.base_dir)
        .map_err(|e| RunnerError(format!("{}: {e}", opts.base_dir.display())))?;
    let mut expected: Option<(State, u64)> = None;
    // The model of the history so far, and the highest LSN any child acknowledged.
    let mut model = Model {
        base: Timeline::new(setup.wl.cfg.keys),
        acked_before: 0,
        floor: 0,
    };
    // Every generation's acknowledgements so far: with a kept directory, `verify` re-checks a
    // failure exactly from these.
    let mut ack_text = String::new();
    let points = ringlog_db::failpoints::POINTS;
    // The previous cycle's child died at a crash point inside a checkpoint or a compaction: the
    // directory holds leftovers (a `.ckpt.tmp`, a checkpoint the MANIFEST does not name, segments
    // below its first needed one) that the next open removes.
    let mut leftovers = false;
    for gen in 1..=opts.cycles {
        let mut r = Rng::from_words(&[seed, gen as u64, 0x4B11]);
        // Crash points that this generation can reach: quarantine happens only in
        // TruncateAtCorruption recovery, which this mode does not use. (The MANIFEST is written
        // at creation and by every checkpoint.)
        let reachable: Vec<&str> = points
            .iter()
            .copied()
            .filter(|p| !p.contains("quarantine"))
            .collect();
        let mut failpoint = r.chance(opts.failpoint_per_mille).then(|| {
            let p = reachable[r.below(reachable.len() as u64) as usize];
            // Points passed once per process (or per checkpoint, a few hundred commits apart)
            // fire on their first hit.
            let once = [
                "manifest::",
                "recovery::",
                "open::",
                "checkpoint::",
                "compaction::",
            ];
            let n = if once.iter().any(|o| p.starts_with(o)) {
                1
            } else {
                r.range(1, 4)
            };
            (p, n)
        });
        // After a crash inside a checkpoint or a compaction, half of the next cycles kill the
        // open that removes its leftovers, at its first removal.
        if leftovers && mode != Mode::InMemory && r.chance(500) {
            failpoint = Some(("open::before_remove_leftover", 1));
        }
        let max = opts.max_delay.as_micros().max(1001) as u64;
        // An armed crash point gets a longer deadline: it usually fires well before. Of the
        // other kills of a child that has a loss window, a share comes after the window.
        let late = failpoint.is_none()
            && mode != Mode::InMemory
            && r.chance(tuning.late_per_mille.unwrap_or(LATE_PER_MILLE));
        let plan = match failpoint {
            // Checkpoints come every few hundred commits: wait for one.
            Some((p, _)) if p.starts_with("checkpoint::") || p.starts_with("compaction::") => {
                Plan::At(CHECKPOINT_POINT_DEADLINE)
            }
            Some(_) => Plan::At(Duration::from_micros(4 * max)),
            None if late => Plan::AfterWindow(Duration::from_micros(r.range(0, max / 2))),
            None => Plan::At(Duration::from_micros(r.range(1000, max))),
        };
        let out = run_child(&ChildRun {
            opts,
            setup: &setup,
            dir: &dir,
            seed,
            mode,
            gen,
            failpoint,
            plan,
            bound,
            stall_at: tuning.stall_at_step,
        })?;
        sum.points += 1;
        tally.silence = tally.silence.max(out.silence);
        tally.held += out.held as u64;
        let text: String = out
            .obs
            .lines
            .iter()
            .map(|(l, _)| format!("{l}\n"))
            .collect();
        ack_text.push_str(&text);
        let keys = setup.wl.cfg.keys;
        let parsed = parse(&text, |_, _| keys).map_err(RunnerError)?;
        let killed_at = out.obs.killed_at;
        let fired =
            killed_at.is_none() && out.hung.is_none() && out.status.signal() == Some(libc::SIGKILL);
        let completed = killed_at.is_none() && out.status.success();
        leftovers = matches!(failpoint, Some((p, _)) if fired && LEAVES_LEFTOVERS.contains(&p));
        let kind = match (failpoint, fired) {
            _ if out.hung.is_some() => "hung (watchdog)".to_string(),
            _ if completed => "workload completed (clean close)".to_string(),
            (Some((name, _)), true) => {
                *sum.covered.entry(name.to_string()).or_default() += 1;
                "killed at a crash point".to_string()
            }
            (Some(_), false) => "SIGKILL (armed crash point not reached)".into(),
            (None, _) if late => "SIGKILL aimed after the loss window".into(),
            (None, _) => "SIGKILL after a random delay".into(),
        };
        let when = killed_at
            .and_then(|k| {
                let first = out.obs.lines.first()?.1;
                Some(format!(
                    ", sent {} after the child's first line",
                    ms(k.saturating_duration_since(first))
                ))
            })
            .unwrap_or_default();
        // The directory as the kill left it, before this process recovers it (a recovery that
        // cannot append to the tail starts a new segment): what a failure keeps.
        let snapshot = opts
            .keep
            .as_ref()
            .map(|k| k.join(format!("kill-seed{seed}-gen{gen}")));
        let fail = |sum: &mut Summary, v: Violation, extra: Vec<String>, rerun: bool| {
            let kept = snapshot.as_ref().and_then(|d| {
                let taken = d.is_dir() || copy_dir(&dir, d).is_ok();
                let logged = std::fs::write(d.join(ACK_LOG), &ack_text).is_ok();
                (taken && logged).then(|| d.clone())
            });
            let mut trace = vec![
                setup.describe(),
                format!(
                    "generation {gen}: {kind} (plan {plan:?}{when}, crash point {failpoint:?}), exit {:?}",
                    out.status
                ),
            ];
            trace.extend(
                out.obs
                    .lines
                    .iter()
                    .rev()
                    .take(8)
                    .rev()
                    .map(|(l, _)| l.clone()),
            );
            if !out.stderr.trim().is_empty() {
                trace.push(format!("child stderr: {}", out.stderr.trim()));
            }
            trace.extend(extra);
            let rerun_cmd = format!(
                "ringlog-crash kill --io {} --durability {mode} --seed {seed} --cycles {gen}",
                io_name(opts.io)
            );
            sum.failures.push(Failure {
                mode: "kill".into(),
                seed,
                model: io_name(opts.io).into(),
                point: format!("{gen}"),
                state: 0,
                violation: v,
                trace,
                replay: match &kept {
                    // Exact: the same directory checked against the same acknowledgements (the
                    // Buffered loss-window check needs the kill's timing and is not repeated).
                    Some(d) if !rerun => format!(
                        "ringlog-crash verify --io {} --dir {} --ack-log {}",
                        io_name(opts.io),
                        d.display(),
                        d.join(ACK_LOG).display()
                    ),
                    // Re-runs the seed: the kill's timing differs, the failure may not recur.
                    _ => rerun_cmd,
                },
                image: kept,
            });
        };
        // The watchdog's verdict comes first: the parent killed a hung child.
        if let Some((silent, stacks)) = &out.hung {
            let last = out
                .obs
                .lines
                .last()
                .map(|(l, _)| format!("after its line `{l}`"))
                .unwrap_or_else(|| "before its first line (start or recovery)".into());
            fail(
                sum,
                Violation::new(
                    "liveness",
                    format!(
                        "the child wrote no ack-log line for {} (watchdog bound {}): it hung {last}; its stacks follow (trace), then it was killed",
                        ms(*silent),
                        ms(bound)
                    ),
                ),
                stacks.lines().map(String::from).collect(),
                // A hang does not show in the directory: re-running the seed reproduces it.
                true,
            );
            if let Some(d) = sum.failures.last().and_then(|f| f.image.clone()) {
                let _ = std::fs::write(d.join(STACKS), stacks);
            }
            sum.count(&kind);
            break;
        }
        // A read of the child broke an invariant (it checks its reads itself).
        if let Some((step, inv, detail)) = parsed.last().and_then(|g| g.violation.clone()) {
            fail(
                sum,
                Violation::new(
                    invariant_name(&inv),
                    format!("step {gen}.{step}, checked by the child: {detail}"),
                ),
                Vec::new(),
                // Reads depend on the timing: re-running the seed is the reproduction.
                true,
            );
            sum.count(&kind);
            break;
        }
        // The child's own failure (it could not open, or a step failed) is a violation.
        if killed_at.is_none() && !fired && !completed {
            let msg = parsed
                .last()
                .and_then(|g| g.failed.clone())
                .or_else(|| text.lines().find(|l| l.starts_with("F ")).map(String::from))
                .unwrap_or_else(|| format!("exit status {:?}", out.status));
            if gen == 1 && parsed.is_empty() {
                return Err(RunnerError(format!(
                    "the workload child could not run on {} ({}): {msg} {}",
                    io_name(opts.io),
                    dir.display(),
                    out.stderr.trim()
                )));
            }
            fail(
                sum,
                Violation::new("I5", format!("the workload process failed: {msg}")),
                Vec::new(),
                false,
            );
            sum.count(&kind);
            break;
        }
        let g = match parsed.into_iter().next() {
            Some(g) if g.started => g,
            _ => {
                // Killed before it recovered the database: the previous state must be intact.
                let (base, base_lsn) = expected.clone().unwrap_or_else(|| (State::empty(keys), 0));
                Generation {
                    seed,
                    mode,
                    started: false,
                    hist: History {
                        gen,
                        base,
                        base_lsn,
                        ..History::default()
                    },
                    failed: None,
                    backend: String::new(),
                    closed: false,
                    violation: None,
                    floor: 0,
                }
            }
        };
        if g.started
            && mode != Mode::InMemory
            && opts.io == IoChoice::Uring
            && g.backend != "io_uring"
        {
            return Err(RunnerError(format!(
                "asked for io_uring, the child used {}",
                g.backend
            )));
        }
        // I4: the child recovered exactly what the parent verified after the previous kill.
        if let (true, Some((exp, exp_lsn))) = (g.started, &expected) {
            if &g.hist.base != exp || g.hist.base_lsn < *exp_lsn {
                fail(
                    sum,
                    Violation::new(
                        "I4",
                        format!(
                            "recovering the same directory twice gave different states: [{}] (last LSN {exp_lsn}) then [{}] (last LSN {})",
                            exp.describe(),
                            g.hist.base.describe(),
                            g.hist.base_lsn
                        ),
                    ),
                    Vec::new(),
                    false,
                );
                sum.count(&kind);
                break;
            }
        }
        sum.steps += g.hist.acks.len() as u64;
        if let Some(t) = opts.tamper {
            t(&dir);
        }
        if let Some(d) = &snapshot {
            let _ = std::fs::remove_dir_all(d);
            if let Err(e) = copy_dir(&dir, d) {
                return Err(RunnerError(format!("cannot keep {}: {e}", d.display())));
            }
        }
        // Recover in this process and check. After a crash inside a checkpoint or a compaction,
        // on a copy: the recovery removes the leftovers, and the next child's open must find
        // them (and may be killed removing them, at `open::before_remove_leftover`). Opening
        // writes nothing else, so the copy recovers exactly what the directory does.
        let checked_dir = if leftovers {
            let c = opts.base_dir.join(format!(
                "ringlog-crash-kill-{}-{seed}-check",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&c);
            copy_dir(&dir, &c)
                .map_err(|e| RunnerError(format!("cannot copy {}: {e}", dir.display())))?;
            c
        } else {
            dir.clone()
        };
        let res = recover_and_check(
            &setup,
            &g,
            &checked_dir,
            opts.io,
            &out.obs,
            opts.slack,
            Some(&model),
        );
        if checked_dir != dir {
            let _ = std::fs::remove_dir_all(&checked_dir);
        }
        sum.count(&kind);
        match res {
            Ok(Recovery {
                st,
                last,
                window: w,
                next,
                counts,
            }) => {
                for (k, v) in counts {
                    *sum.checks.entry(k).or_default() += v;
                }
                if let Some(next) = next {
                    model.base = next;
                }
                model.floor = model.floor.max(g.floor);
                model.acked_before = g
                    .hist
                    .acks
                    .iter()
                    .filter(|a| matches!(a.kind, AckKind::Commit { .. }))
                    .map(|a| a.lsn)
                    .fold(model.acked_before, u64::max);
                if w.checked {
                    tally.checked += 1;
                    tally.aimed += late as u64;
                    tally.after += w.after as u64;
                    tally.stall = tally.stall.max(w.stall);
                    tally.excused += w.excused;
                    if let Some(age) = w.oldest_lost {
                        if tally.oldest_lost.is_none_or(|(a, _, _)| age > a) {
                            tally.oldest_lost = Some((age, setup.wl.cfg.interval, w.window));
                        }
                    }
                }
                expected = Some((st, last));
                if let Some(d) = &snapshot {
                    let _ = std::fs::remove_dir_all(d);
                }
            }
            Err(v) => {
                let note = v.detail.starts_with(WINDOW_LOSS).then(|| {
                    "the loss-window check needs the kill's timing: `verify` on the kept directory re-checks its data, not the window".to_string()
                });
                fail(sum, v, note.into_iter().collect(), false);
                break;
            }
        }
    }
    // A failing directory was copied under --keep; the working copy goes.
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The invariant a child named on a `V` line.
fn invariant_name(s: &str) -> &'static str {
    const NAMES: &[&str] = &[
        "I1",
        "I2",
        "I3",
        "I4",
        "I5",
        "I6",
        "durability",
        "versions",
        "retention",
        "visibility",
    ];
    NAMES.iter().find(|n| **n == s).copied().unwrap_or("child")
}

/// Name of the ack log written beside a kept directory's files.
const ACK_LOG: &str = "ack.log";

/// Name of the hung child's stacks written beside a kept directory's files.
const STACKS: &str = "stacks.txt";

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    let entries = match std::fs::read_dir(from) {
        // An in-memory child creates no directory: an empty copy.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        r => r?,
    };
    for e in entries {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}
