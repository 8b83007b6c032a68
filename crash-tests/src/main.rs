//! The `ringlog-crash` binary. Exit status: 0 no violation, 1 a violation, 2 bad arguments or
//! the runner could not run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ringlog_db::IoChoice;

/// The runner's allocator (set in the binary: a library must not choose its users' allocator).
#[global_allocator]
static ALLOC: ringlog_crash::zalloc::ZeroPageAlloc = ringlog_crash::zalloc::ZeroPageAlloc;
use ringlog_crash::acklog::{self, WorkloadArgs};
use ringlog_crash::corrupt;
use ringlog_crash::crash::TearModel;
use ringlog_crash::fsync;
use ringlog_crash::kill::{self, KillOptions, KillTuning};
use ringlog_crash::power::{self, PowerOptions, Target};
use ringlog_crash::report::Summary;
use ringlog_crash::workload::Mode;

const USAGE: &str = "\
usage: ringlog-crash <mode> [options]

modes:
  power        simulated power loss on the in-memory disk (every crash point of every trace),
               1-8 concurrent committers on a deterministic scheduler with simulated time,
               process crashes followed by power loss, timer and liveness checks
  fsync-error  the n-th fdatasync / directory fsync fails (swept over n)
  kill         SIGKILL a child process (or kill it at an armed crash point), real directory
  corrupt      tail and mid-log damage to a durable image
  workload     run the workload until killed: --dir D --ack-log F --durability M --seed S
  verify       check a directory against an ack log: --dir D --ack-log F

common options:
  --seed S | --seeds A..B    seeds (default 1..9)
  --durability strict|buffered|inmemory|all   default durability mode(s) (default: strict,buffered)
  --steps N                  workload steps per generation
  --gens N                   generations per seed
  --model sector|paranoid    tear model (power, fsync-error)
  --cap N                    states per crash point enumerated exhaustively, sampled beyond
  --sync-delay-us N          simulated device latency between a batch's write and its sync
  --keep DIR                 keep failing disk images under DIR (default: $TMPDIR/ringlog-crash-failures)
  --replay SEED:GEN.POINT:STATE   re-check one crash state
  --all                      do not stop at the first violation
  --json                     print the summary as JSON
  --progress                 progress on stderr
  --shrink                   after a failure, find the fewest steps, then leave out steps, while it
                             still fails (power, fsync-error)
  --skip G.S,G.S,...         leave these steps out of the workload (a shrunk failure's reproduction)
  --background               power: no scheduler, one committer; Buffered commits sync in the real
                             background (timing-dependent, replays are not exact)
  --jobs N                   power: seeds run on N threads (default: the number of CPUs)
  --slack-ms N               kill: least slack of the Buffered loss window (default 50)
  --late N                   kill: per mille of random-delay kills aimed after the window (default 500)
  --watchdog-ms N            kill: a child silent this long is hung, a liveness violation (default 10000)
  --strict                   report the known engine issues (crash-tests/src/known.rs) as violations
                             (the default since they were fixed; kept for old command lines)
                             (default: count them and step around them)
";

struct Args {
    mode: String,
    rest: Vec<String>,
}

fn parse_seeds(s: &str) -> Option<Vec<u64>> {
    if let Some((a, b)) = s.split_once("..") {
        let a: u64 = a.parse().ok()?;
        let b: u64 = b.parse().ok()?;
        (a < b).then(|| (a..b).collect())
    } else {
        Some(vec![s.parse().ok()?])
    }
}

fn parse_modes(s: &str) -> Option<Vec<Mode>> {
    if s == "all" {
        return Some(vec![Mode::Strict, Mode::Buffered, Mode::InMemory]);
    }
    s.split(',').map(Mode::parse).collect()
}

/// Parsed options shared by the modes.
struct Common {
    power: PowerOptions,
    json: bool,
}

fn bad(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("ringlog-crash: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

fn parse_common(args: &[String], mut power: PowerOptions) -> Result<(Common, Vec<String>), String> {
    let mut json = false;
    let mut unknown = Vec::new();
    let mut i = 0;
    let mut seeds: Option<Vec<u64>> = None;
    let mut replay: Option<(u64, Target)> = None;
    while i < args.len() {
        let a = args[i].as_str();
        let mut val = || {
            i += 1;
            args.get(i)
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a {
            "--seed" | "--seeds" => {
                let v = val()?;
                seeds = Some(parse_seeds(&v).ok_or_else(|| format!("bad seeds {v:?}"))?);
            }
            "--durability" => {
                let v = val()?;
                power.modes = parse_modes(&v).ok_or_else(|| format!("bad durability {v:?}"))?;
            }
            "--steps" => power.steps = val()?.parse().map_err(|_| "bad --steps")?,
            "--gens" => power.gens = val()?.parse().map_err(|_| "bad --gens")?,
            "--cap" => power.cap = val()?.parse().map_err(|_| "bad --cap")?,
            "--model" => {
                let v = val()?;
                power.model = TearModel::parse(&v).ok_or_else(|| format!("bad model {v:?}"))?;
            }
            "--sync-delay-us" => {
                power.sync_delay =
                    Duration::from_micros(val()?.parse().map_err(|_| "bad --sync-delay-us")?)
            }
            "--reopen-every" => {
                power.reopen_every = val()?.parse().map_err(|_| "bad --reopen-every")?
            }
            "--fail-sync" => power.fail_sync = Some(val()?.parse().map_err(|_| "bad --fail-sync")?),
            "--keep" => power.keep = Some(PathBuf::from(val()?)),
            "--replay" => {
                let v = val()?;
                let (seed, t) = v
                    .split_once(':')
                    .and_then(|(s, t)| Some((s.parse().ok()?, Target::parse(t)?)))
                    .ok_or_else(|| format!("bad --replay {v:?} (want SEED:GEN.POINT:STATE)"))?;
                replay = Some((seed, t));
            }
            "--all" => power.stop_on_first = false,
            "--json" => json = true,
            "--progress" => power.progress = true,
            "--shrink" => power.shrink = true,
            "--skip" => {
                let v = val()?;
                power.skip = v
                    .split(',')
                    .map(|gs| {
                        let (g, s) = gs.split_once('.')?;
                        Some((g.parse().ok()?, s.parse().ok()?))
                    })
                    .collect::<Option<_>>()
                    .ok_or_else(|| format!("bad --skip {v:?} (want GEN.STEP,GEN.STEP,...)"))?;
            }
            "--background" => power.background = true,
            "--jobs" => power.jobs = val()?.parse().map_err(|_| "bad --jobs")?,
            _ => unknown.push(args[i].clone()),
        }
        i += 1;
    }
    if let Some((seed, t)) = replay {
        power.seeds = vec![seed];
        power.replay = Some(t);
        power.modes.truncate(1);
    } else if let Some(s) = seeds {
        power.seeds = s;
    }
    if power.modes.is_empty() || power.seeds.is_empty() || power.steps == 0 || power.gens == 0 {
        return Err("nothing to run".into());
    }
    Ok((Common { power, json }, unknown))
}

fn finish(sum: &Summary, json: bool) -> ExitCode {
    for f in &sum.failures {
        eprint!("{}", f.render());
    }
    if json {
        println!("{}", sum.to_json());
    } else {
        print!("{}", sum.render());
    }
    if sum.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let Some(mode) = argv.next() else {
        return bad("no mode given");
    };
    let mut rest: Vec<String> = argv.collect();
    // Every mode: the known engine issues (crash-tests/src/known.rs) are violations.
    if rest.iter().any(|a| a == "--strict") {
        rest.retain(|a| a != "--strict");
        ringlog_crash::known::set_strict(true);
    }
    let args = Args { mode, rest };
    let defaults = PowerOptions {
        seeds: (1..9).collect(),
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        keep: Some(std::env::temp_dir().join("ringlog-crash-failures")),
        ..PowerOptions::default()
    };
    match args.mode.as_str() {
        "power" => {
            let (c, unknown) = match parse_common(&args.rest, defaults) {
                Ok(x) => x,
                Err(e) => return bad(e),
            };
            if let Some(u) = unknown.first() {
                return bad(format!("unknown option {u}"));
            }
            finish(&power::run(&c.power), c.json)
        }
        "fsync-error" => {
            let defaults = PowerOptions {
                gens: 1,
                steps: 40,
                cap: 16,
                ..defaults
            };
            let (c, unknown) = match parse_common(&args.rest, defaults) {
                Ok(x) => x,
                Err(e) => return bad(e),
            };
            let mut per_seed = 64;
            let mut it = unknown.iter();
            while let Some(u) = it.next() {
                match u.as_str() {
                    "--max-per-seed" => match it.next().and_then(|v| v.parse().ok()) {
                        Some(n) => per_seed = n,
                        None => return bad("bad --max-per-seed"),
                    },
                    _ => return bad(format!("unknown option {u}")),
                }
            }
            finish(&fsync::run(&c.power, per_seed), c.json)
        }
        "corrupt" => {
            let defaults = PowerOptions {
                steps: 150,
                ..defaults
            };
            let (c, unknown) = match parse_common(&args.rest, defaults) {
                Ok(x) => x,
                Err(e) => return bad(e),
            };
            let mut f = Flags(unknown);
            let cases = match f.parsed("--cases") {
                Ok(n) => n.unwrap_or(20),
                Err(e) => return bad(e),
            };
            if let Err(e) = f.done() {
                return bad(e);
            }
            finish(&corrupt::run(&c.power, cases), c.json)
        }
        "kill" => run_kill(&args.rest),
        "workload" => run_workload(&args.rest),
        "verify" => run_verify(&args.rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        m => bad(format!("unknown mode {m:?}")),
    }
}

/// Takes `--name value` pairs out of `rest`.
struct Flags(Vec<String>);

impl Flags {
    fn take(&mut self, name: &str) -> Result<Option<String>, String> {
        match self.0.iter().position(|a| a == name) {
            None => Ok(None),
            Some(i) if i + 1 < self.0.len() => {
                let v = self.0.remove(i + 1);
                self.0.remove(i);
                Ok(Some(v))
            }
            Some(_) => Err(format!("{name} needs a value")),
        }
    }

    fn parsed<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, String> {
        match self.take(name)? {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("bad value for {name}: {v:?}")),
        }
    }

    fn done(self) -> Result<(), String> {
        match self.0.first() {
            None => Ok(()),
            Some(u) => Err(format!("unknown option {u}")),
        }
    }
}

fn parse_io(s: &str) -> Result<IoChoice, String> {
    s.parse()
        .map_err(|_| format!("bad --io {s:?} (uring, portable or auto)"))
}

fn run_kill(rest: &[String]) -> ExitCode {
    let defaults = PowerOptions {
        seeds: (1..3).collect(),
        ..PowerOptions::default()
    };
    let (c, unknown) = match parse_common(rest, defaults) {
        Ok(x) => x,
        Err(e) => return bad(e),
    };
    let mut f = Flags(unknown);
    let parsed = (|| -> Result<(Vec<IoChoice>, KillOptions, KillTuning), String> {
        let ios = match f.take("--io")?.as_deref() {
            None | Some("both") => vec![IoChoice::Uring, IoChoice::Portable],
            Some(v) => vec![parse_io(v)?],
        };
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let opts = KillOptions {
            seeds: c.power.seeds.clone(),
            modes: c.power.modes.clone(),
            io: ios[0],
            cycles: f.parsed("--cycles")?.unwrap_or(50),
            base_dir: f
                .take("--dir")?
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
            exe,
            max_delay: Duration::from_millis(f.parsed("--max-delay-ms")?.unwrap_or(50)),
            failpoint_per_mille: f.parsed("--failpoints")?.unwrap_or(400),
            slack: Duration::from_millis(f.parsed("--slack-ms")?.unwrap_or(50)),
            keep: c.power.keep.clone(),
            stop_on_first: c.power.stop_on_first,
            progress: c.power.progress,
            tamper: None,
        };
        let tuning = KillTuning {
            watchdog: f.parsed("--watchdog-ms")?.map(Duration::from_millis),
            late_per_mille: f.parsed("--late")?,
            stall_at_step: None,
        };
        Ok((ios, opts, tuning))
    })();
    let (ios, opts, tuning) = match parsed {
        Ok(x) => x,
        Err(e) => return bad(e),
    };
    if let Err(e) = f.done() {
        return bad(e);
    }
    let mut total: Option<Summary> = None;
    for io in ios {
        let o = KillOptions { io, ..opts.clone() };
        match kill::run_tuned(&o, &tuning) {
            Ok(s) => match &mut total {
                None => total = Some(s),
                Some(t) => {
                    t.model = format!("{}+{}", t.model, s.model);
                    t.merge(s);
                }
            },
            Err(e) => {
                eprintln!("ringlog-crash kill: {e}");
                return ExitCode::from(2);
            }
        }
    }
    finish(&total.expect("at least one I/O path"), c.json)
}

fn run_workload(rest: &[String]) -> ExitCode {
    let mut f = Flags(rest.to_vec());
    // Test hook of the kill watchdog: hang before step N (read by acklog::run_workload).
    match f.parsed::<u64>("--stall-at-step") {
        Ok(Some(n)) => std::env::set_var(ringlog_crash::watchdog::STALL_ENV, n.to_string()),
        Ok(None) => {}
        Err(e) => return bad(e),
    }
    let parsed = (|| -> Result<WorkloadArgs, String> {
        let dir = f.take("--dir")?.ok_or("--dir is required")?;
        let ack_log = f.take("--ack-log")?.ok_or("--ack-log is required")?;
        let mode = match f.take("--durability")? {
            None => Mode::Strict,
            Some(v) => Mode::parse(&v).ok_or(format!("bad durability {v:?}"))?,
        };
        let failpoint = match f.take("--failpoint")? {
            None => None,
            Some(v) => {
                let (n, k) = v.rsplit_once(':').unwrap_or((v.as_str(), "1"));
                Some((
                    n.to_string(),
                    k.parse().map_err(|_| format!("bad --failpoint {v:?}"))?,
                ))
            }
        };
        Ok(WorkloadArgs {
            dir: PathBuf::from(dir),
            ack_log,
            seed: f.parsed("--seed")?.unwrap_or(1),
            mode,
            io: match f.take("--io")? {
                None => IoChoice::Auto,
                Some(v) => parse_io(&v)?,
            },
            gen: f.parsed("--gen")?,
            steps: f.parsed("--steps")?,
            failpoint,
        })
    })();
    let a = match parsed {
        Ok(a) => a,
        Err(e) => return bad(e),
    };
    if let Err(e) = f.done() {
        return bad(e);
    }
    match acklog::run_workload(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringlog-crash workload: {e}");
            ExitCode::from(3)
        }
    }
}

fn run_verify(rest: &[String]) -> ExitCode {
    let mut f = Flags(rest.to_vec());
    let parsed = (|| -> Result<(PathBuf, String, IoChoice, bool), String> {
        let dir = f.take("--dir")?.ok_or("--dir is required")?;
        let ack = f.take("--ack-log")?.ok_or("--ack-log is required")?;
        let io = match f.take("--io")? {
            None => IoChoice::Auto,
            Some(v) => parse_io(&v)?,
        };
        let json = match f.0.iter().position(|a| a == "--json") {
            Some(i) => {
                f.0.remove(i);
                true
            }
            None => false,
        };
        Ok((PathBuf::from(dir), ack, io, json))
    })();
    let (dir, ack, io, json) = match parsed {
        Ok(x) => x,
        Err(e) => return bad(e),
    };
    if let Err(e) = f.done() {
        return bad(e);
    }
    match acklog::verify(&dir, &ack, io) {
        Ok(notes) => {
            if json {
                println!(
                    "{{\"violations\":0,\"notes\":[{}]}}",
                    notes
                        .iter()
                        .map(|n| ringlog_crash::report::json_str(n))
                        .collect::<Vec<_>>()
                        .join(",")
                );
            } else {
                for n in notes {
                    println!("{n}");
                }
                println!("verify: no violation");
            }
            ExitCode::SUCCESS
        }
        Err(v) if v.invariant == "runner" => {
            eprintln!("ringlog-crash verify: {}", v.detail);
            ExitCode::from(2)
        }
        Err(v) => {
            if json {
                println!(
                    "{{\"violations\":1,\"invariant\":{},\"detail\":{}}}",
                    ringlog_crash::report::json_str(v.invariant),
                    ringlog_crash::report::json_str(&v.detail)
                );
            }
            eprintln!("VIOLATION [{}] {}", v.invariant, v.detail);
            ExitCode::from(1)
        }
    }
}
