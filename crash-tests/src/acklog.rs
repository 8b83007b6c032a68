//! The `workload` / `verify` pair and the acknowledgement log they share.
//!
//! `workload` runs the seeded workload on a real directory until killed and appends one line per
//! event to an ack log (a file opened `O_APPEND`, or `-` for stdout, a pipe the parent owns), each
//! written with a single `write(2)` as the event happens:
//!
//! ```text
//! H 1 seed=7 durability=strict gen=3 io=uring backend=io_uring pid=1234   a generation starts
//! S 3 42 0=2.17/0@40 5=3.2/1@42 ...    the state it recovered (last LSN, then key=gen.step/op@lsn)
//! A 3 5 D 47 47                        step 5 acknowledged: D durable commit, C commit, Y sync,
//!                                      P pause (commits nothing); its LSN (for Y and P: the last
//!                                      LSN before it) and the durable LSN right after it returned
//! F 3 6 <error>                        step 6 failed (indeterminate); the process exits
//! V 3 7 versions <detail>              step 7 (a read) broke an invariant; the process exits
//! T 3 17 42                            after step 17 (0: at open) the engine's trim floor
//!                                      (`stats().history_floor`) rose to 42: reads below it are
//!                                      refused, after any later crash too
//! E 3 500                              the database was closed cleanly after step 500
//! ```
//!
//! Steps that commit nothing (a read, a snapshot, a trim) are acknowledged `P` like a pause. The
//! workload checks its reads itself, against a model of its own acknowledged commits and of the
//! state it recovered (a read below that state's versions is checked only for well-formedness):
//! a violation is reported with a `V` line.
//!
//! `verify` replays an ack log: every generation's start state must be a crash outcome allowed by
//! the previous generation's acknowledgements, and the directory's current state one allowed by
//! the last generation's. An external fault injector (a FUSE filesystem dropping unsynced data, a
//! device-mapper target, a real power cut) can sit between the two.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ringlog_db::IoChoice;

use crate::model::{Policy, Timeline};
use crate::oracle::{
    ack_kind, check, Ack, AckKind, Bounds, History, Prefixes, Recovered, Verdict, Violation,
};
use crate::setup::Setup;
use crate::versions::ReadChecker;
use crate::workload::{observe, Mode, Session, State, Workload};

/// Where acknowledgement lines go: each line is one `write(2)`.
pub struct AckSink {
    out: File,
}

impl AckSink {
    /// Appends to `path`, or writes to stdout when `path` is `-`.
    pub fn open(path: &str) -> io::Result<AckSink> {
        let out = if path == "-" {
            // SAFETY: dup of the process's stdout descriptor; the new descriptor is owned by the
            // File below and closed when it drops.
            let fd = unsafe { libc::dup(1) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: fd is a fresh descriptor we own.
            unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) }
        } else {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)?
        };
        Ok(AckSink { out })
    }

    /// Writes one line (a newline is added) with a single write.
    pub fn line(&mut self, s: &str) -> io::Result<()> {
        let mut b = Vec::with_capacity(s.len() + 1);
        b.extend_from_slice(s.as_bytes());
        b.push(b'\n');
        self.out.write_all(&b)
    }
}

/// Settings of the `workload` subcommand.
#[derive(Clone, Debug)]
pub struct WorkloadArgs {
    /// Database directory.
    pub dir: std::path::PathBuf,
    /// Ack log path, or `-`.
    pub ack_log: String,
    /// Seed.
    pub seed: u64,
    /// Default durability.
    pub mode: Mode,
    /// I/O path.
    pub io: IoChoice,
    /// Generation; `None`: one more than the generations already in the ack log.
    pub gen: Option<u32>,
    /// Stop after this many steps (default: run until killed).
    pub steps: Option<u64>,
    /// Arm this crash point: (name, n-th hit).
    pub failpoint: Option<(String, u64)>,
}

/// Errors of the `workload` subcommand (the runner could not run).
#[derive(Debug)]
pub enum WorkloadError {
    /// The ack log could not be read or written.
    AckLog(io::Error),
    /// The database did not open (recovery failed): reported on the ack log too.
    Open(ringlog_db::Error),
    /// A step failed (reported on the ack log).
    Step(u64, ringlog_db::Error),
    /// Unknown crash point name.
    Failpoint(String),
    /// A read broke an invariant (reported on the ack log).
    Violation(Violation),
}

impl std::fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkloadError::AckLog(e) => write!(f, "ack log: {e}"),
            WorkloadError::Open(e) => write!(f, "open: {e}"),
            WorkloadError::Step(s, e) => write!(f, "step {s}: {e}"),
            WorkloadError::Failpoint(n) => write!(f, "unknown crash point {n:?}"),
            WorkloadError::Violation(v) => write!(f, "violation: {v}"),
        }
    }
}

fn io_name(io: IoChoice) -> &'static str {
    io.name()
}

/// Runs the workload on a real directory, logging acknowledgements, until `steps` are done (or
/// forever).
pub fn run_workload(a: &WorkloadArgs) -> Result<(), WorkloadError> {
    crate::setup::exercise_large_paths();
    let gen = match a.gen {
        Some(g) => g,
        None if a.ack_log == "-" => 1,
        None => match std::fs::read_to_string(&a.ack_log) {
            Ok(s) => s.lines().filter(|l| l.starts_with("H ")).count() as u32 + 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 1,
            Err(e) => return Err(WorkloadError::AckLog(e)),
        },
    };
    if let Some((name, n)) = &a.failpoint {
        if !ringlog_db::failpoints::arm(name, *n) {
            return Err(WorkloadError::Failpoint(name.clone()));
        }
    }
    let setup = Setup::derive(a.seed, a.mode, false);
    // Test hook of the `kill` watchdog: hang at this step.
    let stall = crate::watchdog::stall_step();
    if a.ack_log == "-" {
        // A `kill` parent reads our stdout: let it take our stacks if we hang.
        crate::watchdog::allow_parent_to_trace();
    }
    let mut sink = AckSink::open(&a.ack_log).map_err(WorkloadError::AckLog)?;
    let db = match setup.open(&a.dir, None, a.io) {
        Ok(db) => db,
        Err(e) => {
            let _ = sink.line(&format!("F {gen} 0 open failed: {e}"));
            return Err(WorkloadError::Open(e));
        }
    };
    let backend = db
        .stats()
        .backend
        .map(|b| b.kind.to_string())
        .unwrap_or_else(|| "none".into());
    let (st, _) = observe(&db, &setup.wl).map_err(WorkloadError::Open)?;
    let log = |sink: &mut AckSink, s: String| sink.line(&s).map_err(WorkloadError::AckLog);
    log(
        &mut sink,
        format!(
            "H 1 seed={} durability={} gen={gen} io={} backend={backend} pid={}",
            a.seed,
            a.mode,
            io_name(a.io),
            std::process::id()
        ),
    )?;
    log(
        &mut sink,
        format!("S {gen} {} {}", db.last_lsn(), st.describe()),
    )?;
    // The engine's trim floor, whenever it rises (a trim, a policy, the background trimmer).
    let mut floor = db.stats().history_floor;
    if floor > 0 {
        log(&mut sink, format!("T {gen} 0 {floor}"))?;
    }
    // The model the reads are checked against: what the recovered state shows, then every
    // commit acknowledged.
    let policy = Policy::of(db.retention());
    let mut tl = Timeline::from_state(&st, db.last_lsn(), policy);
    let mut checker = ReadChecker::default();
    let mut strict: Vec<(u64, u64)> = Vec::new();
    let session = Session::new();
    let mut step = 0u64;
    while a.steps.is_none_or(|n| step < n) {
        step += 1;
        if stall == Some(step) {
            crate::watchdog::stall_forever();
        }
        let reads_before = session.reads_len();
        let res = setup.wl.execute(&db, gen, step, &session);
        let durable = db.durable_lsn();
        match res {
            Ok(lsn) => {
                let s = setup.wl.step(gen, step);
                let kind = match ack_kind(&setup.wl, &s) {
                    AckKind::Sync => 'Y',
                    AckKind::Commit { durable: true } => 'D',
                    AckKind::Commit { durable: false } => 'C',
                    _ => 'P',
                };
                if Workload::commits(&s) {
                    tl.push_step(&setup.wl, gen, step, lsn);
                    if kind == 'D' {
                        strict.push((lsn, step));
                    }
                }
                log(&mut sink, format!("A {gen} {step} {kind} {lsn} {durable}"))?;
                let f = db.stats().history_floor;
                if f > floor {
                    floor = f;
                    log(&mut sink, format!("T {gen} {step} {floor}"))?;
                }
                let reads = session.reads_from(reads_before);
                if let Err(v) = checker.check(gen, &tl, &reads, &strict) {
                    let _ = log(
                        &mut sink,
                        format!(
                            "V {gen} {step} {} {}",
                            v.invariant,
                            v.detail.replace('\n', " ")
                        ),
                    );
                    return Err(WorkloadError::Violation(v));
                }
            }
            Err(e) => {
                let _ = log(&mut sink, format!("F {gen} {step} {e}"));
                return Err(WorkloadError::Step(step, e));
            }
        }
    }
    session.drop_snapshots();
    db.close().map_err(|e| WorkloadError::Step(step + 1, e))?;
    // A clean close made every step durable.
    log(&mut sink, format!("E {gen} {step}"))
}

/// One generation parsed from an ack log.
#[derive(Clone, Debug)]
pub struct Generation {
    /// Seed.
    pub seed: u64,
    /// Durability.
    pub mode: Mode,
    /// The start state line was present (the workload opened the database).
    pub started: bool,
    /// History (base = start state, acks in order with `at` = line number).
    pub hist: History,
    /// The generation failed (`F` line): its message.
    pub failed: Option<String>,
    /// The backend the workload reported.
    pub backend: String,
    /// The workload closed the database cleanly (`E` line): every step is durable.
    pub closed: bool,
    /// A read of the workload broke an invariant (`V` line): (step, invariant, detail).
    pub violation: Option<(u64, String, String)>,
    /// The highest trim floor the engine reported (`T` lines; 0: none).
    pub floor: u64,
}

/// Parses ack-log text. Lines that are incomplete (a crash mid-line) or malformed are ignored.
pub fn parse(text: &str, keys_of: impl Fn(u64, Mode) -> u16) -> Result<Vec<Generation>, String> {
    let mut gens: Vec<Generation> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split(' ').collect();
        match f.first().copied() {
            Some("H") => {
                let kv = |k: &str| {
                    f.iter()
                        .find_map(|x| x.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                };
                let seed = kv("seed")
                    .and_then(|v| v.parse().ok())
                    .ok_or(format!("line {}: no seed", n + 1))?;
                let mode = kv("durability")
                    .and_then(Mode::parse)
                    .ok_or(format!("line {}: no durability", n + 1))?;
                let gen: u32 = kv("gen")
                    .and_then(|v| v.parse().ok())
                    .ok_or(format!("line {}: no gen", n + 1))?;
                gens.push(Generation {
                    seed,
                    mode,
                    started: false,
                    hist: History {
                        gen,
                        base: State::empty(keys_of(seed, mode)),
                        ..History::default()
                    },
                    failed: None,
                    backend: kv("backend").unwrap_or("?").to_string(),
                    closed: false,
                    violation: None,
                    floor: 0,
                });
            }
            Some("S") if f.len() >= 3 => {
                let g = gens.last_mut().ok_or("S line before H")?;
                let keys = g.hist.base.cells.len() as u16;
                g.hist.base_lsn = f[2]
                    .parse()
                    .map_err(|_| format!("line {}: bad LSN", n + 1))?;
                g.hist.base = State::parse(keys, &f[3..].join(" "))
                    .ok_or(format!("line {}: bad state", n + 1))?;
                g.started = true;
            }
            Some("A") if f.len() == 6 => {
                let g = gens.last_mut().ok_or("A line before H")?;
                let p = |i: usize| -> Result<u64, String> {
                    f[i].parse()
                        .map_err(|_| format!("line {}: bad number", n + 1))
                };
                let kind = match f[3] {
                    "D" => AckKind::Commit { durable: true },
                    "C" => AckKind::Commit { durable: false },
                    "Y" => AckKind::Sync,
                    // A pause: no database call, nothing committed.
                    "P" => AckKind::Skipped,
                    _ => continue,
                };
                g.hist.acks.push(Ack {
                    step: p(2)?,
                    kind,
                    lsn: p(4)?,
                    durable_lsn: p(5)?,
                    at: 0,
                });
            }
            Some("T") if f.len() == 4 => {
                if let (Some(g), Ok(floor)) = (gens.last_mut(), f[3].parse::<u64>()) {
                    g.floor = g.floor.max(floor);
                }
            }
            Some("E") => {
                if let Some(g) = gens.last_mut() {
                    g.closed = true;
                }
            }
            Some("V") if f.len() >= 4 => {
                if let Some(g) = gens.last_mut() {
                    g.violation = Some((
                        f[2].parse().unwrap_or(0),
                        f[3].to_string(),
                        f.get(4..).map(|r| r.join(" ")).unwrap_or_default(),
                    ));
                }
            }
            Some("F") => {
                if let Some(g) = gens.last_mut() {
                    g.failed = Some(f.get(3..).map(|r| r.join(" ")).unwrap_or_default());
                }
            }
            _ => {}
        }
    }
    Ok(gens)
}

/// Checks generation `g` against a state observed after it crashed (`st`, with the recovered
/// database's LSNs `rec`): every acknowledgement counts, and any step up to the one after the
/// last acknowledged may have been in flight.
pub fn check_generation(
    setup: &Setup,
    g: &Generation,
    st: &State,
    aliens: &[crate::workload::Alien],
    rec: Recovered,
) -> Result<Verdict, Violation> {
    let last = g.hist.acks.last().map(|a| a.step).unwrap_or(0);
    // Steps that may have run: every acknowledged one and the one in flight (none if the
    // workload never recovered, since it writes its start state before its first step).
    let upto = if g.started { last + 1 } else { 0 };
    let mut hist = g.hist.clone();
    hist.started = vec![0; upto as usize];
    let pre = Prefixes::new(&setup.wl, &hist, upto);
    let mut bounds: Bounds = hist.bounds_at(1);
    if g.closed && g.mode != Mode::InMemory {
        bounds.required = bounds.required.max(last);
    }
    check(&setup.wl, &hist, &pre, st, aliens, rec, bounds)
}

/// `verify`: checks an ack log's generation chain and the directory's current state.
pub fn verify(dir: &Path, ack_log: &str, io: IoChoice) -> Result<Vec<String>, Violation> {
    crate::setup::exercise_large_paths();
    let text = std::fs::read_to_string(ack_log)
        .map_err(|e| Violation::new("runner", format!("cannot read {ack_log}: {e}")))?;
    let gens = parse(&text, |seed, mode| {
        Setup::derive(seed, mode, false).wl.cfg.keys
    })
    .map_err(|e| Violation::new("runner", format!("bad ack log: {e}")))?;
    let Some(first) = gens.first() else {
        return Err(Violation::new("runner", "the ack log holds no generation"));
    };
    if let Some(g) = gens.iter().find(|g| g.seed != first.seed) {
        return Err(Violation::new(
            "runner",
            format!(
                "generation {} ran seed {}, generation 1 seed {}: one directory, one seed",
                g.hist.gen, g.seed, first.seed
            ),
        ));
    }
    let setup_of = |g: &Generation| Setup::derive(g.seed, g.mode, false);
    let mut notes = Vec::new();
    // Each generation's start state is the outcome of the previous one's crash. A generation
    // killed before it recovered (no start state) ran no step and changed nothing.
    let gens: Vec<&Generation> = gens.iter().filter(|g| g.started).collect();
    let Some(&last) = gens.last() else {
        return Err(Violation::new(
            "runner",
            "no generation of the ack log recovered the database",
        ));
    };
    for w in gens.windows(2) {
        let (g, next) = (w[0], w[1]);
        let v = check_generation(
            &setup_of(g),
            g,
            &next.hist.base,
            &[],
            Recovered::at(next.hist.base_lsn),
        )
        .map_err(|v| {
            Violation::new(
                v.invariant,
                format!("generation {}: {}", g.hist.gen, v.detail),
            )
        })?;
        notes.push(format!(
            "generation {}: {} acknowledgements, recovered the prefix of {} steps",
            g.hist.gen,
            g.hist.acks.len(),
            v.prefix
        ));
    }
    if last.mode == Mode::InMemory {
        let leftover = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        if leftover != 0 {
            return Err(Violation::new(
                "durability",
                format!(
                    "an in-memory database left {leftover} entries in {}",
                    dir.display()
                ),
            ));
        }
        notes.push("in-memory: nothing on disk".into());
        return Ok(notes);
    }
    let setup = setup_of(last);
    let db = setup
        .open(dir, None, io)
        .map_err(|e| Violation::new("I5", format!("the database does not open: {e}")))?;
    let (st, aliens) =
        observe(&db, &setup.wl).map_err(|e| Violation::new("I5", format!("scan failed: {e}")))?;
    let v = check_generation(&setup, last, &st, &aliens, Recovered::of(&db)).map_err(|v| {
        Violation::new(
            v.invariant,
            format!("generation {}: {}", last.hist.gen, v.detail),
        )
    })?;
    db.close()
        .map_err(|e| Violation::new("I5", format!("close failed: {e}")))?;
    notes.push(format!(
        "generation {} (last): {} acknowledgements, the directory holds the prefix of {} steps",
        last.hist.gen,
        last.hist.acks.len(),
        v.prefix
    ));
    Ok(notes)
}
