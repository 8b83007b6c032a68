//! `kill` mode: a child process (`ringlog-crash workload`) runs the workload on a real directory,
//! through io_uring or the portable path, streaming acknowledgements over a pipe the parent owns.
//! The parent SIGKILLs it after a random delay, or the child kills itself at an armed crash point
//! (`ringlog::failpoints`); then the parent recovers the directory, checks the oracle, and starts
//! the next generation on the same directory.
//!
//! A process kill keeps the kernel's page cache: this mode tests process-crash atomicity, the
//! real I/O paths and the crash points; power loss is the simulated modes' business.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ringlog::{Db, IoChoice};

use crate::acklog::{check_generation, parse, Generation};
use crate::oracle::{AckKind, History, Violation};
use crate::report::{Failure, Summary};
use crate::rng::Rng;
use crate::setup::Setup;
use crate::workload::{observe, Mode, State};

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
    /// Longest delay before the SIGKILL (from the child's start).
    pub max_delay: Duration,
    /// Chance (per mille) that a cycle arms a crash point in the child.
    pub failpoint_per_mille: u64,
    /// Slack allowed beyond a `Buffered` window when judging which acknowledged commits a kill
    /// may lose (scheduling on a loaded machine).
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
}

fn io_name(io: IoChoice) -> &'static str {
    match io {
        IoChoice::Uring => "uring",
        IoChoice::Portable => "portable",
        IoChoice::Auto => "auto",
    }
}

/// The runner could not run (as opposed to a violation).
#[derive(Debug)]
pub struct RunnerError(pub String);

impl std::fmt::Display for RunnerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Runs every seed.
pub fn run(opts: &KillOptions) -> Result<Summary, RunnerError> {
    let started = Instant::now();
    let mut sum = Summary::new("kill", io_name(opts.io));
    sum.unit = "kill/recover cycles".into();
    for (i, &seed) in opts.seeds.iter().enumerate() {
        let mode = opts.modes[i % opts.modes.len().max(1)];
        run_seed(opts, seed, mode, &mut sum)?;
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
    sum.elapsed = started.elapsed();
    Ok(sum)
}

struct Outcome {
    lines: Vec<(String, Instant)>,
    stderr: String,
    killed_at: Option<Instant>,
    status: std::process::ExitStatus,
}

fn run_child(
    opts: &KillOptions,
    dir: &Path,
    seed: u64,
    mode: Mode,
    gen: u32,
    failpoint: Option<(&str, u64)>,
    delay: Duration,
) -> Result<Outcome, RunnerError> {
    let mut cmd = Command::new(&opts.exe);
    cmd.arg("workload")
        .arg("--dir")
        .arg(dir)
        .args(["--ack-log", "-", "--durability", mode.name()])
        .args(["--seed", &seed.to_string(), "--gen", &gen.to_string()])
        .args(["--io", io_name(opts.io)])
        // Runs until killed; the bound only keeps a fast in-memory run's log small.
        .args(["--steps", "50000"])
        .env("RINGLOG_IO", io_name(opts.io))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((name, n)) = failpoint {
        cmd.args(["--failpoint", &format!("{name}:{n}")]);
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
    let mut killed_at = None;
    let status = loop {
        if let Some(st) = child
            .try_wait()
            .map_err(|e| RunnerError(format!("wait: {e}")))?
        {
            break st;
        }
        if start.elapsed() >= delay {
            let _ = child.kill();
            killed_at = Some(Instant::now());
            break child
                .wait()
                .map_err(|e| RunnerError(format!("wait: {e}")))?;
        }
        std::thread::sleep(Duration::from_micros(300));
    };
    let _ = reader.join();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Outcome {
        lines: rx.try_iter().collect(),
        stderr,
        killed_at,
        status,
    })
}

fn run_seed(
    opts: &KillOptions,
    seed: u64,
    mode: Mode,
    sum: &mut Summary,
) -> Result<(), RunnerError> {
    use std::os::unix::process::ExitStatusExt;
    sum.seeds += 1;
    let setup = Setup::derive(seed, mode, false);
    let dir = opts
        .base_dir
        .join(format!("ringlog-crash-kill-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&opts.base_dir)
        .map_err(|e| RunnerError(format!("{}: {e}", opts.base_dir.display())))?;
    let mut expected: Option<(State, u64)> = None;
    // Every generation's acknowledgements so far: with a kept directory, `verify` re-checks a
    // failure exactly from these.
    let mut ack_text = String::new();
    let points = ringlog::failpoints::POINTS;
    for gen in 1..=opts.cycles {
        let mut r = Rng::from_words(&[seed, gen as u64, 0x4B11]);
        // Crash points that this generation can reach: the manifest is written only when the
        // database is created; quarantine happens only in TruncateAtCorruption recovery.
        let reachable: Vec<&str> = points
            .iter()
            .copied()
            .filter(|p| (gen == 1 || !p.starts_with("manifest::")) && !p.contains("quarantine"))
            .collect();
        let failpoint = r.chance(opts.failpoint_per_mille).then(|| {
            let p = reachable[r.below(reachable.len() as u64) as usize];
            // Points passed once per process fire on their first hit.
            let once = ["manifest::", "recovery::", "open::"];
            let n = if once.iter().any(|o| p.starts_with(o)) {
                1
            } else {
                r.range(1, 4)
            };
            (p, n)
        });
        let max = opts.max_delay.as_micros().max(1001) as u64;
        // An armed crash point gets a longer deadline: it usually fires well before.
        let delay = match failpoint {
            Some(_) => Duration::from_micros(4 * max),
            None => Duration::from_micros(r.range(1000, max)),
        };
        let out = run_child(opts, &dir, seed, mode, gen, failpoint, delay)?;
        sum.points += 1;
        let text: String = out.lines.iter().map(|(l, _)| format!("{l}\n")).collect();
        ack_text.push_str(&text);
        let keys = setup.wl.cfg.keys;
        let parsed = parse(&text, |_, _| keys).map_err(RunnerError)?;
        let fired = out.killed_at.is_none() && out.status.signal() == Some(libc::SIGKILL);
        let completed = out.killed_at.is_none() && out.status.success();
        let kind = match (failpoint, fired) {
            _ if completed => "workload completed (clean close)".to_string(),
            (Some((name, _)), true) => {
                *sum.covered.entry(name.to_string()).or_default() += 1;
                "killed at a crash point".to_string()
            }
            (Some(_), false) => "SIGKILL (armed crash point not reached)".into(),
            (None, _) => "SIGKILL after a random delay".into(),
        };
        // The directory as the kill left it, before this process recovers it (a recovery that cannot
        // append to the tail starts a new segment): what a failure keeps.
        let snapshot = opts
            .keep
            .as_ref()
            .map(|k| k.join(format!("kill-seed{seed}-gen{gen}")));
        let fail = |sum: &mut Summary, v: Violation| {
            let kept = snapshot.as_ref().and_then(|d| {
                let taken = d.is_dir() || copy_dir(&dir, d).is_ok();
                let logged = std::fs::write(d.join(ACK_LOG), &ack_text).is_ok();
                (taken && logged).then(|| d.clone())
            });
            let mut trace = vec![
                setup.describe(),
                format!(
                    "generation {gen}: {} (delay {delay:?}, crash point {failpoint:?}), exit {:?}",
                    kind, out.status
                ),
            ];
            trace.extend(out.lines.iter().rev().take(8).rev().map(|(l, _)| l.clone()));
            if !out.stderr.trim().is_empty() {
                trace.push(format!("child stderr: {}", out.stderr.trim()));
            }
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
                    Some(d) => format!(
                        "ringlog-crash verify --io {} --dir {} --ack-log {}",
                        io_name(opts.io),
                        d.display(),
                        d.join(ACK_LOG).display()
                    ),
                    // Re-runs the seed: the kill's timing differs, the failure may not recur.
                    None => format!(
                        "ringlog-crash kill --io {} --durability {mode} --seed {seed} --cycles {gen}",
                        io_name(opts.io)
                    ),
                },
                image: kept,
            });
        };
        // The child's own failure (it could not open, or a step failed) is a violation.
        if out.killed_at.is_none() && !fired && !completed {
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
        // Recover in this process and check.
        let res = (|| -> Result<(State, u64), Violation> {
            let db = Db::open(&dir, setup.options(None, opts.io))
                .map_err(|e| Violation::new("I5", format!("recovery failed: {e}")))?;
            let (st, aliens) = observe(&db, &setup.wl)
                .map_err(|e| Violation::new("I5", format!("scan failed: {e}")))?;
            let last = db.last_lsn();
            if mode == Mode::InMemory {
                // An in-memory database writes nothing; the directory holds no database.
                let entries = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
                if entries > 0 && g.started {
                    return Err(Violation::new(
                        "durability",
                        format!("an in-memory database left {entries} entries on disk"),
                    ));
                }
                return Ok((st, last));
            }
            let v = check_generation(&setup, &g, &st, &aliens, last)?;
            db.close()
                .map_err(|e| Violation::new("I5", format!("close failed: {e}")))?;
            window_check(&setup, &g, &out, v.prefix, opts.slack)?;
            Ok((st, last))
        })();
        sum.count(&kind);
        match res {
            Ok(x) => {
                expected = Some(x);
                if let Some(d) = &snapshot {
                    let _ = std::fs::remove_dir_all(d);
                }
            }
            Err(v) => {
                fail(sum, v);
                break;
            }
        }
    }
    // A failing directory was copied under --keep; the working copy goes.
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A `Buffered` commit may be lost by a kill only if it was acknowledged within the window
/// (interval plus slack) before the kill.
fn window_check(
    setup: &Setup,
    g: &Generation,
    out: &Outcome,
    prefix: u64,
    slack: Duration,
) -> Result<(), Violation> {
    let Some(killed) = out.killed_at else {
        return Ok(());
    };
    let window = setup.wl.cfg.interval + slack;
    for (a, (_, t)) in g
        .hist
        .acks
        .iter()
        .zip(out.lines.iter().filter(|(l, _)| l.starts_with("A ")))
    {
        if a.step > prefix && matches!(a.kind, AckKind::Commit { durable: false }) {
            let age = killed.saturating_duration_since(*t);
            if age > window {
                return Err(Violation::new(
                    "durability",
                    format!(
                        "Buffered step {}.{} (LSN {}) acknowledged {age:?} before the kill was lost; the window is {:?} (+{slack:?} slack)",
                        g.hist.gen, a.step, a.lsn, setup.wl.cfg.interval
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Name of the ack log written beside a kept directory's files.
const ACK_LOG: &str = "ack.log";

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}
