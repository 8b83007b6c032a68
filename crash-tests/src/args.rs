//! The command line of `ringlog-crash`, with clap: one subcommand per mode. Usage errors exit
//! with status 2 (clap's), like every other "could not run" of the runner.
//!
//! The rules between options that clap does not express stay post-parse checks here:
//! [`Common::power_options`] (`--replay` picks its seed and one durability mode; no steps or no
//! generations is "nothing to run").

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ringlog_crash::acklog::WorkloadArgs;
use ringlog_crash::crash::TearModel;
use ringlog_crash::kill::{KillOptions, KillTuning};
use ringlog_crash::power::{PowerOptions, Target};
use ringlog_crash::workload::Mode;
use ringlog_db::IoChoice;

/// The options of every mode, printed after the list of modes by `ringlog-crash --help`.
const AFTER_HELP: &str = "\
common options (power, fsync-error, write-error, kill, corrupt; `ringlog-crash <mode> --help` lists every
option of a mode, with its defaults):
  --seed S | --seeds A..B    seeds (default 1..9; kill: 1..3)
  --durability strict|buffered|inmemory|all   default durability mode(s) (default: strict,buffered)
  --steps N                  workload steps per generation
  --gens N                   generations per seed
  --model sector|paranoid    tear model (power, fsync-error, write-error)
  --cap N                    states per crash point enumerated exhaustively, sampled beyond
  --sync-delay-us N          simulated device latency between a batch's write and its sync
  --keep DIR                 keep failing disk images under DIR
                             (default: $TMPDIR/ringlog-crash-failures; kill: none)
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
  --late N                   kill: per mille of random-delay kills aimed after the window
                             (default 500)
  --watchdog-ms N            kill: a child silent this long is hung, a liveness violation
                             (default 10000)
  --strict                   report the known engine issues (crash-tests/src/known.rs) as violations
                             (the default since they were fixed; kept for old command lines)
                             (default: count them and step around them)

Exit status: 0 no violation, 1 a violation, 2 bad arguments or the runner could not run
(workload: 3 when it could not run), 3 a liveness violation the runner could not unwind (a
committer still parked after the database closed; power-loss modes).";

/// `ringlog-crash <mode> [options]`.
#[derive(Parser, Debug)]
#[command(
    name = "ringlog-crash",
    about = "The ringlog crash-test runner: kill, simulated power loss, corruption and fsync \
             errors, checked by an oracle per durability mode.",
    after_help = AFTER_HELP,
    subcommand_required = true,
    arg_required_else_help = true,
    subcommand_value_name = "MODE",
    subcommand_help_heading = "Modes",
    term_width = 100
)]
pub struct Cli {
    /// Report the known engine issues (crash-tests/src/known.rs) as violations (the default
    /// since they were fixed; kept for old command lines) (default: count them and step around
    /// them). Every mode, anywhere on the line.
    #[arg(long, global = true, overrides_with = "strict", display_order = 1000)]
    pub strict: bool,

    /// The mode.
    #[command(subcommand)]
    pub mode: Cmd,
}

/// The modes.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Simulated power loss on the in-memory disk (every crash point of every trace), 1-8
    /// concurrent committers on a deterministic scheduler with simulated time, process crashes
    /// followed by power loss, timer and liveness checks
    Power(PowerArgs),
    /// The n-th fdatasync / directory fsync fails (swept over n)
    FsyncError(FsyncArgs),
    /// The n-th write (or file extension, or log round submission) fails: a write with EIO or
    /// ENOSPC after writing a prefix of its bytes, a submission before writing anything (swept
    /// over n)
    WriteError(FsyncArgs),
    /// SIGKILL a child process (or kill it at an armed crash point), real directory
    Kill(KillArgs),
    /// Tail and mid-log damage to a durable image
    Corrupt(CorruptArgs),
    /// The openraft log store (ringlog-openraft) on the simulated disk: appends, votes,
    /// truncations and purges, power loss at every crash point of the trace
    Raft(RaftArgs),
    /// Run the workload until killed: --dir D --ack-log F --durability M --seed S
    Workload(WorkloadCmd),
    /// Check a directory against an ack log: --dir D --ack-log F
    Verify(VerifyArgs),
}

/// Options of the modes that run seeds: power, fsync-error, kill and corrupt. A repeated option
/// overrides the earlier one (the last one wins); the options of one mode only may not repeat.
#[derive(Args, Clone, Debug, Default, PartialEq)]
pub struct Common {
    /// Seeds: one seed S, or A..B (A included, B not) (default 1..9; kill: 1..3)
    #[arg(
        long = "seed",
        visible_alias = "seeds",
        value_name = "S|A..B",
        value_parser = parse_seeds,
        overrides_with = "seeds"
    )]
    pub seeds: Option<std::vec::Vec<u64>>,

    /// Default durability mode(s): strict, buffered, inmemory, a comma-separated list of them, or
    /// all (default: strict,buffered)
    #[arg(
        long,
        value_name = "MODE[,MODE...]|all",
        value_parser = parse_modes,
        overrides_with = "durability"
    )]
    pub durability: Option<std::vec::Vec<Mode>>,

    /// Workload steps per generation (default 120; fsync-error 40; corrupt 150)
    #[arg(long, value_name = "N", overrides_with = "steps")]
    pub steps: Option<u64>,

    /// Generations per seed (default 3; fsync-error 1)
    #[arg(long, value_name = "N", overrides_with = "gens")]
    pub gens: Option<u32>,

    /// Tear model: sector or paranoid (power, fsync-error) (default: sector)
    #[arg(
        long,
        value_name = "sector|paranoid",
        value_parser = parse_model,
        overrides_with = "model"
    )]
    pub model: Option<TearModel>,

    /// States per crash point enumerated exhaustively, sampled beyond (default 64; fsync-error
    /// 16)
    #[arg(long, value_name = "N", overrides_with = "cap")]
    pub cap: Option<u64>,

    /// Simulated device latency between a batch's write and its sync, µs (default 0)
    #[arg(long, value_name = "N", overrides_with = "sync_delay_us")]
    pub sync_delay_us: Option<u64>,

    /// Every N-th crash state is recovered a second time and compared; 0 never (default 16)
    #[arg(long, value_name = "N", overrides_with = "reopen_every")]
    pub reopen_every: Option<u64>,

    /// Fail this sync, counting file and directory syncs from 1 (an fsync-error reproduction)
    #[arg(long, value_name = "N", overrides_with = "fail_sync")]
    pub fail_sync: Option<u64>,

    /// Fail this write, counting writes, file extensions and log round submissions from 1 (a
    /// write-error reproduction)
    #[arg(long, value_name = "N", overrides_with = "fail_write")]
    pub fail_write: Option<u64>,

    /// Keep failing disk images under DIR (default: $TMPDIR/ringlog-crash-failures; kill: none)
    #[arg(
        long,
        value_name = "DIR",
        value_parser = parse_path,
        overrides_with = "keep"
    )]
    pub keep: Option<PathBuf>,

    /// Re-check one crash state (the seed's first durability mode only)
    #[arg(
        long,
        value_name = "SEED:GEN.POINT:STATE",
        value_parser = parse_replay,
        overrides_with = "replay"
    )]
    pub replay: Option<(u64, Target)>,

    /// Do not stop at the first violation
    #[arg(long, overrides_with = "all")]
    pub all: bool,

    /// Print the summary as JSON
    #[arg(long, overrides_with = "json")]
    pub json: bool,

    /// Progress on stderr
    #[arg(long, overrides_with = "progress")]
    pub progress: bool,

    /// After a failure, find the fewest steps, then leave out steps, while it still fails
    /// (power, fsync-error)
    #[arg(long, overrides_with = "shrink")]
    pub shrink: bool,

    /// Leave these steps out of the workload (a shrunk failure's reproduction)
    #[arg(
        long,
        value_name = "G.S,G.S,...",
        value_parser = parse_skip,
        overrides_with = "skip"
    )]
    pub skip: Option<std::vec::Vec<(u32, u64)>>,

    /// power: no scheduler, one committer; Buffered commits sync in the real background
    /// (timing-dependent, replays are not exact)
    #[arg(long, overrides_with = "background")]
    pub background: bool,

    /// power: seeds run on N threads (default: the number of CPUs; kill: 1)
    #[arg(long, value_name = "N", overrides_with = "jobs")]
    pub jobs: Option<usize>,
}

/// `power`.
#[derive(Args, Debug)]
pub struct PowerArgs {
    /// Options of every mode that runs seeds.
    #[command(flatten)]
    pub common: Common,
}

/// `fsync-error` and `write-error`.
#[derive(Args, Debug)]
pub struct FsyncArgs {
    /// Options of every mode that runs seeds.
    #[command(flatten)]
    pub common: Common,

    /// Syncs (writes) failed per seed, at most
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_per_seed: u64,
}

/// `corrupt`.
#[derive(Args, Debug)]
pub struct CorruptArgs {
    /// Options of every mode that runs seeds.
    #[command(flatten)]
    pub common: Common,

    /// Damage cases per seed
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub cases: u64,
}

/// `raft`.
#[derive(Args, Debug)]
pub struct RaftArgs {
    /// Options of every mode that runs seeds.
    #[command(flatten)]
    pub common: Common,
}

/// `kill`.
#[derive(Args, Debug)]
pub struct KillArgs {
    /// Options of every mode that runs seeds.
    #[command(flatten)]
    pub common: Common,

    /// I/O path of the child (and of the parent's recovery): uring, portable, auto, or both
    /// (uring, then portable) (default: both)
    #[arg(long, value_name = "uring|portable|auto|both", value_parser = parse_kill_io)]
    pub io: Option<std::vec::Vec<IoChoice>>,

    /// Kill/recover cycles (generations) per seed
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub cycles: u32,

    /// Directory under which each seed's database directory is created (default: $TMPDIR)
    #[arg(long, value_name = "DIR", value_parser = parse_path)]
    pub dir: Option<PathBuf>,

    /// Longest delay before an early SIGKILL, from the child's start, ms
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub max_delay_ms: u64,

    /// Chance (per mille) that a cycle arms a crash point in the child
    #[arg(long, value_name = "N", default_value_t = 400)]
    pub failpoints: u64,

    /// Least slack of the Buffered loss window, ms
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub slack_ms: u64,

    /// Per mille of random-delay kills aimed after the window (default 500)
    #[arg(long, value_name = "N")]
    pub late: Option<u64>,

    /// A child silent this long (ms) is hung, a liveness violation (default 10000)
    #[arg(long, value_name = "N")]
    pub watchdog_ms: Option<u64>,
}

/// `workload`: one generation of the workload, acknowledged to an ack log, until killed.
#[derive(Args, Debug)]
pub struct WorkloadCmd {
    /// Database directory
    #[arg(long, value_name = "D", required = true, value_parser = parse_path)]
    pub dir: PathBuf,

    /// Ack log file, or - for stdout
    #[arg(long, value_name = "F", required = true)]
    pub ack_log: String,

    /// Default durability of the database: strict, buffered or inmemory
    #[arg(long, value_name = "M", value_parser = parse_mode, default_value = "strict")]
    pub durability: Mode,

    /// Seed
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,

    /// I/O path: uring, portable or auto
    #[arg(long, value_name = "IO", value_parser = parse_io, default_value = "auto")]
    pub io: IoChoice,

    /// Generation (default: one more than the generations already in the ack log)
    #[arg(long, value_name = "G")]
    pub gen: Option<u32>,

    /// Stop after this many steps (default: run until killed)
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,

    /// Arm this crash point at its N-th hit (default N: 1)
    #[arg(long, value_name = "NAME[:N]", value_parser = parse_failpoint)]
    pub failpoint: Option<(String, u64)>,

    /// Test hook of the kill watchdog: hang before step N
    #[arg(long, value_name = "N")]
    pub stall_at_step: Option<u64>,
}

/// `verify`: checks a directory against an ack log (exit 0 / 1 / 2).
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Database directory
    #[arg(long, value_name = "D", required = true, value_parser = parse_path)]
    pub dir: PathBuf,

    /// Ack log file
    #[arg(long, value_name = "F", required = true)]
    pub ack_log: String,

    /// I/O path: uring, portable or auto
    #[arg(long, value_name = "IO", value_parser = parse_io, default_value = "auto")]
    pub io: IoChoice,

    /// Print the verdict as JSON
    #[arg(long)]
    pub json: bool,
}

/// A path, empty or not (clap's own `PathBuf` parser refuses an empty one).
fn parse_path(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

/// `S` or `A..B` with `A < B` (B excluded).
fn parse_seeds(s: &str) -> Result<Vec<u64>, String> {
    let bad = || format!("bad seeds {s:?} (want S or A..B with A < B)");
    if let Some((a, b)) = s.split_once("..") {
        let a: u64 = a.parse().map_err(|_| bad())?;
        let b: u64 = b.parse().map_err(|_| bad())?;
        if a < b {
            Ok((a..b).collect())
        } else {
            Err(bad())
        }
    } else {
        Ok(vec![s.parse().map_err(|_| bad())?])
    }
}

/// One durability mode.
fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::parse(s).ok_or_else(|| format!("bad durability {s:?} (strict, buffered or inmemory)"))
}

/// `all`, or a comma-separated list of modes.
fn parse_modes(s: &str) -> Result<Vec<Mode>, String> {
    if s == "all" {
        return Ok(vec![Mode::Strict, Mode::Buffered, Mode::InMemory]);
    }
    s.split(',')
        .map(Mode::parse)
        .collect::<Option<_>>()
        .ok_or_else(|| format!("bad durability {s:?} (strict, buffered, inmemory, a list, or all)"))
}

fn parse_model(s: &str) -> Result<TearModel, String> {
    TearModel::parse(s).ok_or_else(|| format!("bad model {s:?} (sector or paranoid)"))
}

fn parse_replay(s: &str) -> Result<(u64, Target), String> {
    s.split_once(':')
        .and_then(|(seed, t)| Some((seed.parse().ok()?, Target::parse(t)?)))
        .ok_or_else(|| format!("bad --replay {s:?} (want SEED:GEN.POINT:STATE)"))
}

fn parse_skip(s: &str) -> Result<Vec<(u32, u64)>, String> {
    s.split(',')
        .map(|gs| {
            let (g, s) = gs.split_once('.')?;
            Some((g.parse().ok()?, s.parse().ok()?))
        })
        .collect::<Option<_>>()
        .ok_or_else(|| format!("bad --skip {s:?} (want GEN.STEP,GEN.STEP,...)"))
}

fn parse_io(s: &str) -> Result<IoChoice, String> {
    s.parse()
        .map_err(|_| format!("bad --io {s:?} (uring, portable or auto)"))
}

/// `both` (uring, then portable) or one I/O path.
fn parse_kill_io(s: &str) -> Result<Vec<IoChoice>, String> {
    if s == "both" {
        return Ok(vec![IoChoice::Uring, IoChoice::Portable]);
    }
    parse_io(s).map(|io| vec![io])
}

/// `NAME` or `NAME:N` (the N-th hit; split at the last colon).
fn parse_failpoint(s: &str) -> Result<(String, u64), String> {
    let (n, k) = s.rsplit_once(':').unwrap_or((s, "1"));
    let k = k.parse().map_err(|_| format!("bad --failpoint {s:?}"))?;
    Ok((n.to_string(), k))
}

/// The defaults of `power`, which `fsync-error` and `corrupt` adjust: seeds 1..9, a job per CPU,
/// failing images kept under `$TMPDIR/ringlog-crash-failures`.
pub fn run_defaults() -> PowerOptions {
    PowerOptions {
        seeds: (1..9).collect(),
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        keep: Some(std::env::temp_dir().join("ringlog-crash-failures")),
        ..PowerOptions::default()
    }
}

/// The defaults of `fsync-error`.
pub fn fsync_defaults() -> PowerOptions {
    PowerOptions {
        gens: 1,
        steps: 40,
        cap: 16,
        ..run_defaults()
    }
}

/// The defaults of `corrupt`.
pub fn corrupt_defaults() -> PowerOptions {
    PowerOptions {
        steps: 150,
        ..run_defaults()
    }
}

/// The defaults of `raft`: 60 storage calls per seed, 16 states per crash point.
pub fn raft_defaults() -> PowerOptions {
    PowerOptions {
        steps: 60,
        cap: 16,
        ..run_defaults()
    }
}

/// The defaults of `kill`: seeds 1..3, nothing kept unless `--keep`.
pub fn kill_defaults() -> PowerOptions {
    PowerOptions {
        seeds: (1..3).collect(),
        ..PowerOptions::default()
    }
}

impl Common {
    /// The options given that `raft` mode does not use (it runs its own workload, one
    /// generation, no injected faults, one seed after another): given, they are refused rather
    /// than ignored.
    pub fn unused_by_raft(&self) -> Vec<&'static str> {
        [
            ("--durability", self.durability.is_some()),
            ("--gens", self.gens.is_some()),
            ("--sync-delay-us", self.sync_delay_us.is_some()),
            ("--reopen-every", self.reopen_every.is_some()),
            ("--fail-sync", self.fail_sync.is_some()),
            ("--fail-write", self.fail_write.is_some()),
            ("--keep", self.keep.is_some()),
            ("--shrink", self.shrink),
            ("--skip", self.skip.is_some()),
            ("--background", self.background),
            ("--jobs", self.jobs.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }

    /// The options given, over `power`: the mode's defaults. `--replay` runs its seed in the
    /// first durability mode only (whatever `--seeds` says). `Err`: nothing to run.
    pub fn power_options(&self, mut power: PowerOptions) -> Result<PowerOptions, String> {
        if let Some(m) = &self.durability {
            power.modes = m.clone();
        }
        if let Some(n) = self.steps {
            power.steps = n;
        }
        if let Some(n) = self.gens {
            power.gens = n;
        }
        if let Some(n) = self.cap {
            power.cap = n;
        }
        if let Some(m) = self.model {
            power.model = m;
        }
        if let Some(us) = self.sync_delay_us {
            power.sync_delay = Duration::from_micros(us);
        }
        if let Some(n) = self.reopen_every {
            power.reopen_every = n;
        }
        if let Some(n) = self.fail_sync {
            power.fail_sync = Some(n);
        }
        if let Some(n) = self.fail_write {
            power.fail_write = Some(n);
        }
        if let Some(d) = &self.keep {
            power.keep = Some(d.clone());
        }
        if self.all {
            power.stop_on_first = false;
        }
        if self.progress {
            power.progress = true;
        }
        if self.shrink {
            power.shrink = true;
        }
        if let Some(s) = &self.skip {
            power.skip = s.clone();
        }
        if self.background {
            power.background = true;
        }
        if let Some(n) = self.jobs {
            power.jobs = n;
        }
        if let Some((seed, t)) = self.replay {
            power.seeds = vec![seed];
            power.replay = Some(t);
            power.modes.truncate(1);
        } else if let Some(s) = &self.seeds {
            power.seeds = s.clone();
        }
        if power.modes.is_empty() || power.seeds.is_empty() || power.steps == 0 || power.gens == 0 {
            return Err("nothing to run".into());
        }
        Ok(power)
    }
}

impl KillArgs {
    /// The I/O paths to run in turn, the options of the first and the tuning. `exe` is the
    /// runner to start as the child.
    pub fn options(
        &self,
        power: &PowerOptions,
        exe: PathBuf,
    ) -> (Vec<IoChoice>, KillOptions, KillTuning) {
        let ios = self
            .io
            .clone()
            .unwrap_or_else(|| vec![IoChoice::Uring, IoChoice::Portable]);
        let opts = KillOptions {
            seeds: power.seeds.clone(),
            modes: power.modes.clone(),
            io: ios[0],
            cycles: self.cycles,
            base_dir: self.dir.clone().unwrap_or_else(std::env::temp_dir),
            exe,
            max_delay: Duration::from_millis(self.max_delay_ms),
            failpoint_per_mille: self.failpoints,
            slack: Duration::from_millis(self.slack_ms),
            keep: power.keep.clone(),
            stop_on_first: power.stop_on_first,
            progress: power.progress,
            tamper: None,
            child_bug: None,
        };
        let tuning = KillTuning {
            watchdog: self.watchdog_ms.map(Duration::from_millis),
            late_per_mille: self.late,
            stall_at_step: None,
        };
        (ios, opts, tuning)
    }
}

impl WorkloadCmd {
    /// What `acklog::run_workload` takes.
    pub fn workload_args(&self) -> WorkloadArgs {
        WorkloadArgs {
            dir: self.dir.clone(),
            ack_log: self.ack_log.clone(),
            seed: self.seed,
            mode: self.durability,
            io: self.io,
            gen: self.gen,
            steps: self.steps,
            failpoint: self.failpoint.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn cli(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(line.split_whitespace())
    }

    /// The options of a seed-running mode's line, over that mode's defaults.
    fn power_of(line: &str) -> (bool, PowerOptions) {
        let c = cli(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let opts = match &c.mode {
            Cmd::Power(a) => a.common.power_options(run_defaults()),
            Cmd::FsyncError(a) | Cmd::WriteError(a) => a.common.power_options(fsync_defaults()),
            Cmd::Corrupt(a) => a.common.power_options(corrupt_defaults()),
            Cmd::Kill(a) => a.common.power_options(kill_defaults()),
            m => panic!("{line}: not a seed-running mode: {m:?}"),
        };
        (c.strict, opts.unwrap_or_else(|e| panic!("{line}: {e}")))
    }

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_per_mode() {
        let (strict, p) = power_of("ringlog-crash power");
        assert!(!strict);
        assert_eq!(p.seeds, (1..9).collect::<Vec<_>>());
        assert_eq!(p.modes, [Mode::Strict, Mode::Buffered]);
        assert_eq!((p.steps, p.gens, p.cap), (120, 3, 64));
        assert_eq!(p.model, TearModel::Sector);
        assert_eq!(p.reopen_every, 16);
        assert!(p.stop_on_first && !p.progress && !p.shrink && !p.background);
        assert_eq!(p.keep, run_defaults().keep);
        assert_eq!((p.replay, p.fail_sync), (None, None));
        let (_, p) = power_of("ringlog-crash fsync-error");
        assert_eq!((p.steps, p.gens, p.cap), (40, 1, 16));
        let (_, p) = power_of("ringlog-crash corrupt");
        assert_eq!((p.steps, p.gens, p.cap), (150, 3, 64));
        let (_, p) = power_of("ringlog-crash kill");
        assert_eq!(p.seeds, [1, 2]);
        assert_eq!((&p.keep, p.jobs), (&None, 1));
        let Cmd::Kill(k) = cli("ringlog-crash kill").unwrap().mode else {
            panic!("kill")
        };
        let (ios, o, t) = k.options(&p, PathBuf::from("exe"));
        assert_eq!(ios, [IoChoice::Uring, IoChoice::Portable]);
        assert_eq!(
            (o.io, o.cycles, o.failpoint_per_mille),
            (IoChoice::Uring, 50, 400)
        );
        assert_eq!(o.max_delay, Duration::from_millis(50));
        assert_eq!(o.slack, Duration::from_millis(50));
        assert_eq!(o.base_dir, std::env::temp_dir());
        assert_eq!((t.watchdog, t.late_per_mille), (None, None));
        let Cmd::FsyncError(f) = cli("ringlog-crash fsync-error").unwrap().mode else {
            panic!("fsync-error")
        };
        assert_eq!(f.max_per_seed, 64);
        let (_, p) = power_of("ringlog-crash write-error --fail-write 7");
        assert_eq!((p.fail_write, p.fail_sync), (Some(7), None));
        assert_eq!((p.steps, p.gens, p.cap), (40, 1, 16));
        assert!(p.faulty() && !p.scheduled());
        assert!(p
            .replay_command(1, Mode::Strict, Target::parse("1.2:3").unwrap())
            .starts_with("ringlog-crash write-error "));
        let Cmd::Raft(r) = cli("ringlog-crash raft --seeds 1..3 --steps 9 --cap 2 --all")
            .unwrap()
            .mode
        else {
            panic!("raft")
        };
        assert!(r.common.unused_by_raft().is_empty());
        let Cmd::Raft(r) = cli("ringlog-crash raft --fail-sync 3 --gens 2 --progress")
            .unwrap()
            .mode
        else {
            panic!("raft")
        };
        assert_eq!(r.common.unused_by_raft(), ["--gens", "--fail-sync"]);
        let Cmd::Corrupt(c) = cli("ringlog-crash corrupt").unwrap().mode else {
            panic!("corrupt")
        };
        assert_eq!(c.cases, 20);
    }

    #[test]
    fn every_common_option() {
        let (strict, p) = power_of(
            "ringlog-crash power --seeds 3..6 --durability inmemory,strict --steps 9 --gens 2 \
             --model paranoid --cap 5 --sync-delay-us 250 --reopen-every 0 --fail-sync 4 \
             --keep /k --all --json --progress --shrink --skip 1.2,3.40 --background --jobs 3",
        );
        assert!(!strict);
        assert_eq!(p.seeds, [3, 4, 5]);
        assert_eq!(p.modes, [Mode::InMemory, Mode::Strict]);
        assert_eq!((p.steps, p.gens, p.cap), (9, 2, 5));
        assert_eq!(p.model, TearModel::Paranoid);
        assert_eq!(p.sync_delay, Duration::from_micros(250));
        assert_eq!((p.reopen_every, p.fail_sync), (0, Some(4)));
        assert_eq!(p.keep, Some(PathBuf::from("/k")));
        assert!(!p.stop_on_first && p.progress && p.shrink && p.background);
        assert_eq!(p.skip, [(1, 2), (3, 40)]);
        assert_eq!(p.jobs, 3);
        let Cmd::Power(a) = cli("ringlog-crash power --json").unwrap().mode else {
            panic!("power")
        };
        assert!(a.common.json);
        // `all` is every mode; a repeated option overrides the earlier one (last wins).
        let (_, p) = power_of("ringlog-crash power --durability all --seed 4 --seed 7");
        assert_eq!(p.modes, [Mode::Strict, Mode::Buffered, Mode::InMemory]);
        assert_eq!(p.seeds, [7]);
        // --replay: its seed, the first mode only, whatever --seeds says and wherever it is.
        let (_, p) = power_of("ringlog-crash power --replay 12:2.30:4 --seeds 1..5");
        assert_eq!(p.seeds, [12]);
        assert_eq!(p.modes, [Mode::Strict]);
        assert_eq!(
            p.replay,
            Some(Target {
                gen: 2,
                point: 30,
                state: 4
            })
        );
        // --strict: every mode, anywhere, repeatable.
        assert!(cli("ringlog-crash --strict kill").unwrap().strict);
        assert!(
            cli("ringlog-crash verify --dir d --ack-log a --strict --strict")
                .unwrap()
                .strict
        );
    }

    #[test]
    fn mode_options() {
        let Cmd::Kill(k) = cli(
            "ringlog-crash kill --io portable --cycles 7 --dir /base --max-delay-ms 9 \
             --failpoints 0 --slack-ms 80 --late 10 --watchdog-ms 2000 --seeds 1..4",
        )
        .unwrap()
        .mode
        else {
            panic!("kill")
        };
        let p = k.common.power_options(kill_defaults()).unwrap();
        let (ios, o, t) = k.options(&p, PathBuf::from("exe"));
        assert_eq!(ios, [IoChoice::Portable]);
        assert_eq!(o.seeds, [1, 2, 3]);
        assert_eq!((o.cycles, o.failpoint_per_mille), (7, 0));
        assert_eq!(o.base_dir, PathBuf::from("/base"));
        assert_eq!(o.max_delay, Duration::from_millis(9));
        assert_eq!(o.slack, Duration::from_millis(80));
        assert_eq!(t.watchdog, Some(Duration::from_millis(2000)));
        assert_eq!(t.late_per_mille, Some(10));
        let Cmd::Kill(k) = cli("ringlog-crash kill --io both").unwrap().mode else {
            panic!("kill")
        };
        assert_eq!(k.io, Some(vec![IoChoice::Uring, IoChoice::Portable]));
        let Cmd::FsyncError(f) = cli("ringlog-crash fsync-error --max-per-seed 3")
            .unwrap()
            .mode
        else {
            panic!("fsync-error")
        };
        assert_eq!(f.max_per_seed, 3);
        let Cmd::Corrupt(c) = cli("ringlog-crash corrupt --cases 5").unwrap().mode else {
            panic!("corrupt")
        };
        assert_eq!(c.cases, 5);
        let Cmd::Workload(w) = cli("ringlog-crash workload --dir d --ack-log a")
            .unwrap()
            .mode
        else {
            panic!("workload")
        };
        let a = w.workload_args();
        assert_eq!((a.seed, a.mode, a.io), (1, Mode::Strict, IoChoice::Auto));
        assert_eq!((a.gen, a.steps, a.failpoint), (None, None, None));
        assert_eq!(w.stall_at_step, None);
        let Cmd::Workload(w) =
            cli("ringlog-crash workload --dir d --ack-log a --failpoint a:b:3 --stall-at-step 5")
                .unwrap()
                .mode
        else {
            panic!("workload")
        };
        assert_eq!(w.failpoint, Some(("a:b".to_string(), 3)));
        assert_eq!(w.stall_at_step, Some(5));
        let Cmd::Verify(v) = cli("ringlog-crash verify --dir d --ack-log a")
            .unwrap()
            .mode
        else {
            panic!("verify")
        };
        assert_eq!((v.io, v.json), (IoChoice::Auto, false));
    }

    /// Every reproduction line the runner prints parses back into the run it reproduces.
    #[test]
    fn replay_commands_round_trip() {
        let t = Target {
            gen: 2,
            point: 17,
            state: 3,
        };
        // power, with every option replay_command can add but --strict (a process-wide switch,
        // checked on a literal line below).
        let opts = PowerOptions {
            model: TearModel::Paranoid,
            steps: 33,
            gens: 2,
            cap: 7,
            background: true,
            sync_delay: Duration::from_micros(40),
            reopen_every: 5,
            skip: vec![(1, 4), (2, 9)],
            ..run_defaults()
        };
        let line = opts.replay_command(77, Mode::Buffered, t);
        assert!(line.starts_with("ringlog-crash power "), "{line}");
        let (_, p) = power_of(&line);
        assert_eq!(p.seeds, [77], "{line}");
        assert_eq!(p.modes, [Mode::Buffered], "{line}");
        assert_eq!(p.replay, Some(t), "{line}");
        assert_eq!(
            (p.model, p.steps, p.gens, p.cap),
            (TearModel::Paranoid, 33, 2, 7)
        );
        assert!(p.background, "{line}");
        assert_eq!(p.sync_delay, opts.sync_delay, "{line}");
        assert_eq!(p.reopen_every, 5, "{line}");
        assert_eq!(p.skip, opts.skip, "{line}");
        assert_eq!(p.fail_sync, None, "{line}");
        // fsync-error (--fail-sync) with the defaults elsewhere.
        let opts = PowerOptions {
            fail_sync: Some(6),
            ..fsync_defaults()
        };
        let line = opts.replay_command(5, Mode::Strict, t);
        assert!(line.starts_with("ringlog-crash fsync-error "), "{line}");
        let (_, p) = power_of(&line);
        assert_eq!(
            (p.seeds.as_slice(), p.fail_sync),
            (&[5][..], Some(6)),
            "{line}"
        );
        assert_eq!((p.steps, p.gens, p.cap), (40, 1, 16), "{line}");
        assert_eq!(
            (p.modes.as_slice(), p.replay),
            (&[Mode::Strict][..], Some(t))
        );
        // The lines other modes print (formatted in corrupt.rs and kill.rs).
        let (_, p) =
            power_of("ringlog-crash corrupt --durability buffered --steps 150 --replay 9:1.3:0");
        assert_eq!((p.seeds.as_slice(), p.steps), (&[9][..], 150));
        assert_eq!(p.modes, [Mode::Buffered]);
        let (_, p) =
            power_of("ringlog-crash kill --io portable --durability strict --seed 4 --cycles 3");
        assert_eq!(
            (p.seeds.as_slice(), p.modes.as_slice()),
            (&[4][..], &[Mode::Strict][..])
        );
        let (strict, p) = power_of(
            "ringlog-crash power --model sector --durability strict --steps 120 --gens 3 \
             --cap 64 --strict --replay 1:1.33:0",
        );
        assert!(strict);
        assert_eq!(p.seeds, [1]);
        let c = cli("ringlog-crash verify --io uring --dir /k/seed-3 --ack-log /k/seed-3/ack.log")
            .unwrap();
        let Cmd::Verify(v) = c.mode else {
            panic!("verify")
        };
        assert_eq!(v.io, IoChoice::Uring);
        assert_eq!(v.dir, PathBuf::from("/k/seed-3"));
        assert_eq!(v.ack_log, "/k/seed-3/ack.log");
        // The child kill.rs starts (`--ack-log -` is stdout).
        let c = cli(
            "ringlog-crash workload --dir /d --ack-log - --durability buffered --seed 8 --gen 2 \
             --io portable --steps 50000 --failpoint commit.after_write:3 --strict",
        )
        .unwrap();
        assert!(c.strict);
        let Cmd::Workload(w) = c.mode else {
            panic!("workload")
        };
        let a = w.workload_args();
        assert_eq!(a.dir, PathBuf::from("/d"));
        assert_eq!(a.ack_log, "-");
        assert_eq!((a.mode, a.seed, a.gen), (Mode::Buffered, 8, Some(2)));
        assert_eq!((a.io, a.steps), (IoChoice::Portable, Some(50000)));
        assert_eq!(a.failpoint, Some(("commit.after_write".to_string(), 3)));
    }

    /// The command lines of README.md and docs/CRASH-TESTING.md.
    #[test]
    fn documented_command_lines_parse() {
        for line in [
            "ringlog-crash power --seeds 1..50",
            "ringlog-crash power --model paranoid --seeds 1..50",
            "ringlog-crash fsync-error --seeds 1..20",
            "ringlog-crash kill --seeds 1..5 --cycles 200",
            "ringlog-crash corrupt --seeds 1..20 --cases 20",
            "ringlog-crash power --durability all --seeds 1..100000 --steps 300 --gens 4 \
             --progress --keep K --all",
            "ringlog-crash power --model paranoid --durability all --seeds 1..100000 --progress \
             --keep K --all",
            "ringlog-crash fsync-error --durability strict,buffered --seeds 1..5000 --progress \
             --keep K --all",
            "ringlog-crash kill --durability all --seeds 1..200 --cycles 500 --progress --keep K \
             --all",
            "ringlog-crash corrupt --seeds 1..20000 --cases 50 --progress --keep K --all",
            "ringlog-crash power --model sector --durability buffered --steps 8 --gens 1 --cap 16 \
             --skip 1.1,1.2,1.3,1.4,1.5,1.6,1.7 --replay 1:1.13:1",
            "ringlog-crash power --model sector --durability buffered --steps 120 --gens 3 \
             --cap 64 --strict --replay 6:3.26:0",
            "ringlog-crash power --durability all --seeds 1000..1190 --steps 250 --gens 4 \
             --jobs 1 --all",
            "ringlog-crash power --model paranoid --durability all --seeds 2000..2300 --steps \
             250 --gens 4 --jobs 1 --all",
            // The open known issues' reproductions (crash-tests/src/known.rs).
            "ringlog-crash power --model sector --durability strict --steps 120 --gens 3 \
             --cap 64 --strict --replay 1:1.27:8",
            "ringlog-crash power --model sector --durability buffered --steps 120 --gens 3 \
             --cap 64 --strict --replay 54:2.88:16",
            "ringlog-crash fsync-error --model sector --durability strict --steps 40 --gens 1 \
             --cap 16 --fail-sync 30 --strict --replay 1:1.94:2",
            "ringlog-crash power --model sector --durability buffered --steps 120 --gens 3 \
             --cap 64 --strict --replay 2:3.46:0",
            "ringlog-crash power --background --model paranoid --durability all --seeds 1..13 \
             --steps 200",
        ] {
            power_of(line);
        }
        for line in [
            "ringlog-crash workload --dir /mnt/lazyfs/db --ack-log /var/tmp/acks.log \
             --durability strict --seed 7 --io uring",
            "ringlog-crash workload --dir /mnt/lazyfs/db --ack-log /var/tmp/acks.log \
             --durability strict --seed 7",
            "ringlog-crash verify --dir /mnt/lazyfs/db --ack-log /var/tmp/acks.log",
            "ringlog-crash verify --dir <kept> --ack-log <kept>/ack.log",
        ] {
            cli(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
        // Raft mode refuses the options it would ignore: the documented line takes none.
        let line = "ringlog-crash raft --seeds 1..20000 --steps 200 --progress --all";
        let Cmd::Raft(r) = cli(line).unwrap().mode else {
            panic!("{line}: not raft mode")
        };
        assert!(r.common.unused_by_raft().is_empty(), "{line}");
    }

    #[test]
    fn help_documents_every_mode_and_option() {
        let help = Cli::command().render_long_help().to_string();
        for needle in [
            "power",
            "fsync-error",
            "write-error",
            "kill",
            "corrupt",
            "workload",
            "verify",
            "--seed S | --seeds A..B",
            "--durability",
            "--steps",
            "--gens",
            "--model",
            "--cap",
            "--sync-delay-us",
            "--keep",
            "--replay",
            "--all",
            "--json",
            "--progress",
            "--shrink",
            "--skip",
            "--background",
            "--jobs",
            "--slack-ms",
            "--late",
            "--watchdog-ms",
            "--strict",
            "Exit status",
        ] {
            assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
        }
    }

    #[test]
    fn bad_arguments() {
        for line in [
            "ringlog-crash",
            "ringlog-crash nosuchmode",
            "ringlog-crash power --model wobbly",
            "ringlog-crash power --replay x",
            "ringlog-crash power --replay 1:2:3",
            "ringlog-crash power --seeds 5..5",
            "ringlog-crash power --seeds 1..x",
            "ringlog-crash power --seed",
            "ringlog-crash power --durability strict,all",
            "ringlog-crash power --durability strict,",
            "ringlog-crash power --steps x",
            "ringlog-crash power --gens -1",
            "ringlog-crash power --skip 1",
            "ringlog-crash power --skip 1.2,x",
            "ringlog-crash power --cases 3",
            "ringlog-crash power --frobnicate",
            "ringlog-crash power stray",
            "ringlog-crash fsync-error --max-per-seed x",
            "ringlog-crash corrupt --cases x",
            "ringlog-crash kill --io spdk",
            "ringlog-crash kill --cycles x",
            "ringlog-crash workload --dir d",
            "ringlog-crash workload --ack-log a",
            "ringlog-crash workload --dir d --ack-log a --durability all",
            "ringlog-crash workload --dir d --ack-log a --seeds 1..3",
            "ringlog-crash workload --dir d --ack-log a --failpoint x:y",
            "ringlog-crash workload --dir d --dir e --ack-log a",
            "ringlog-crash verify --dir d",
            "ringlog-crash verify --dir d --ack-log a --io spdk",
            "ringlog-crash verify --dir d --ack-log a --json --json",
            "ringlog-crash verify --dir d --ack-log a --all",
        ] {
            match cli(line) {
                Ok(c) => panic!("{line} was accepted: {c:?}"),
                Err(e) => assert_eq!(e.exit_code(), 2, "{line}: {e}"),
            }
        }
        // Post-parse: no steps or no generations is nothing to run.
        for line in [
            "ringlog-crash power --steps 0",
            "ringlog-crash fsync-error --gens 0",
        ] {
            let c = cli(line).unwrap();
            let err = match c.mode {
                Cmd::Power(a) => a.common.power_options(run_defaults()),
                Cmd::FsyncError(a) => a.common.power_options(fsync_defaults()),
                _ => unreachable!(),
            };
            assert_eq!(err.unwrap_err(), "nothing to run", "{line}");
        }
    }
}
