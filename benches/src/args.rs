//! Command-line parsing. Never panics: every problem is a message for exit status 2.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::engine::{Mode, PEER_NAMES};
use crate::keys::{MIN_KEY_SIZE, MIN_VALUE_SIZE};

/// The usage text printed by `--help` and after an argument error.
pub const USAGE: &str = "\
usage: ringlog-bench [--dir PATH] [--workload NAME[,NAME...]] [--durability MODE[,MODE...]]
                     [--io uring|portable|auto] [--threads N[,N...]] [--ops N] [--duration SECS]
                     [--keys N] [--key-size B] [--value-size B] [--batch N]
                     [--engines NAME[,NAME...]] [--json FILE] [--plot FILE.svg] [--quick]
                     [--no-progress]

With no arguments: every core workload over ringlog in the three modes at 1 and 16 threads plus
the raw baselines, at most 100,000 operations and 1 s per run, in a temporary directory on the
disk (not tmpfs); prints one table.

  --dir PATH          where the databases go (a fresh subdirectory per run, removed after it);
                      default: a temporary directory under $TMPDIR, or under the current
                      directory when $TMPDIR is a tmpfs
  --workload LIST     fillseq fillrandom overwrite readrandom readwhilewriting scan scanrev
                      snapshot fillbatch recover ycsba ycsbb ycsbc ycsbd ycsbe ycsbf; `core`
                      (default: all but YCSB), `ycsb` (A-F) or `all` (see Workloads below)
  --durability LIST   inmemory, buffered, strict or all (default: all)
  --io PATH           ringlog's I/O path: uring, portable or auto (default: auto)
  --threads LIST      writer/reader threads per run, 1-1024 (default: 1,16)
  --ops N             operations per run (default 100000); alone, removes the time limit
  --duration SECS     time limit per run (default 1 when --ops is not given either)
  --keys N            key space of random workloads and records of `recover` (default: --ops)
  --key-size B        key size, 8-4096 (default 16)
  --value-size B      value size, 16-1048576 (default 100)
  --batch N           puts per transaction in fillbatch, 1-100000 (default 100)
  --engines LIST      ringlog, raw (= raw-pwrite,raw-uring,raw-odirect), one raw loop, or a
                      peer built in with --features: fjall redb sled sqlite rocksdb (or `peers`)
                      (default: ringlog,raw)
  --json FILE         also write the rows as JSON
  --plot FILE.svg     also write an SVG of throughput against threads and latency percentiles
  --quick             a smoke run: at most 5000 operations and 0.3 s per run
  --no-progress       no progress line on stderr (it is off anyway when stderr is no terminal)

Workloads (--threads threads issue the operations; a preloaded key space is --keys keys written
before the timed phase in transactions of 1,000):
  fillseq             one put per transaction, keys in order, into an empty database
  fillrandom          one put per transaction, random keys of the key space, empty database
  overwrite           as fillrandom over a preloaded key space
  readrandom          gets of random keys of a preloaded key space
  readwhilewriting    readrandom while one more thread overwrites random keys; ops/s are the
                      readers' gets (compare with readrandom); the writer's puts/s in the notes
  scan                full forward scans of the preloaded key space, thread t starting at key
                      t*keys/threads and wrapping around; ops = entries read; every entry must
                      be the next key with its value (else the run fails); latency per entry,
                      averaged over blocks of 1,024; the time to a scan's first entry in notes
  scanrev             as scan, in reverse key order
  snapshot            readers at snapshots while one more thread commits transactions of four
                      puts (a group of four adjacent keys). Per snapshot: 4 groups read by gets,
                      a scan of 2 groups, the first group read again (28 keys); each group must
                      read as one transaction, the re-read must not change, and every snapshot
                      must be a prefix of the commit order, never older than the thread's last.
                      ops = keys read (latency per key, averaged per snapshot); the cost of
                      taking and dropping a snapshot and the writer's puts/s in the notes
  fillbatch           --batch puts per transaction into an empty database
  recover             write --keys records, close, time the reopen until the first correct read
  ycsba ... ycsbf     YCSB A-F over the preloaded key space, Zipfian (D: latest, E: short scans)
Names db_bench uses are accepted too: readseq (scan), readreverse (scanrev).

Exit status: 0 clean, 1 a run failed (wrong data read back, or an engine error), 2 bad arguments.";

/// A workload, named as RocksDB's db_bench names it where one exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// Puts in key order into an empty database.
    FillSeq,
    /// Puts of random keys (with repetition) into an empty database.
    FillRandom,
    /// Puts of random keys over a preloaded key space.
    Overwrite,
    /// Gets of random keys from a preloaded key space.
    ReadRandom,
    /// Gets of random keys by every thread while one more thread overwrites.
    ReadWhileWriting,
    /// Full forward scans of a preloaded key space (db_bench's `readseq`).
    Scan,
    /// Full reverse scans of a preloaded key space (db_bench's `readreverse`).
    ScanRev,
    /// Readers at snapshots (gets and short scans, checked for a consistent state) while one
    /// more thread commits transactions of four puts.
    Snapshot,
    /// `--batch` puts per transaction into an empty database.
    FillBatch,
    /// Write `--keys` records, close, time the reopen until the first correct read.
    Recover,
    /// YCSB A: 50% reads, 50% updates, Zipfian.
    YcsbA,
    /// YCSB B: 95% reads, 5% updates, Zipfian.
    YcsbB,
    /// YCSB C: 100% reads, Zipfian.
    YcsbC,
    /// YCSB D: 95% reads of the latest keys, 5% inserts.
    YcsbD,
    /// YCSB E: 95% short scans, 5% inserts, Zipfian.
    YcsbE,
    /// YCSB F: 50% reads, 50% read-modify-writes, Zipfian.
    YcsbF,
}

impl Workload {
    /// Every workload, in table order.
    pub const ALL: [Workload; 16] = [
        Workload::FillSeq,
        Workload::FillRandom,
        Workload::Overwrite,
        Workload::ReadRandom,
        Workload::ReadWhileWriting,
        Workload::Scan,
        Workload::ScanRev,
        Workload::Snapshot,
        Workload::FillBatch,
        Workload::Recover,
        Workload::YcsbA,
        Workload::YcsbB,
        Workload::YcsbC,
        Workload::YcsbD,
        Workload::YcsbE,
        Workload::YcsbF,
    ];
    /// The default set: every workload but YCSB.
    pub const CORE: [Workload; 10] = [
        Workload::FillSeq,
        Workload::FillRandom,
        Workload::Overwrite,
        Workload::ReadRandom,
        Workload::ReadWhileWriting,
        Workload::Scan,
        Workload::ScanRev,
        Workload::Snapshot,
        Workload::FillBatch,
        Workload::Recover,
    ];
    /// YCSB A-F.
    pub const YCSB: [Workload; 6] = [
        Workload::YcsbA,
        Workload::YcsbB,
        Workload::YcsbC,
        Workload::YcsbD,
        Workload::YcsbE,
        Workload::YcsbF,
    ];

    /// The name on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Workload::FillSeq => "fillseq",
            Workload::FillRandom => "fillrandom",
            Workload::Overwrite => "overwrite",
            Workload::ReadRandom => "readrandom",
            Workload::ReadWhileWriting => "readwhilewriting",
            Workload::Scan => "scan",
            Workload::ScanRev => "scanrev",
            Workload::Snapshot => "snapshot",
            Workload::FillBatch => "fillbatch",
            Workload::Recover => "recover",
            Workload::YcsbA => "ycsba",
            Workload::YcsbB => "ycsbb",
            Workload::YcsbC => "ycsbc",
            Workload::YcsbD => "ycsbd",
            Workload::YcsbE => "ycsbe",
            Workload::YcsbF => "ycsbf",
        }
    }

    /// True when the workload writes through the timed loop only (a raw loop can run it).
    pub fn is_write_only(self) -> bool {
        matches!(
            self,
            Workload::FillSeq | Workload::FillRandom | Workload::Overwrite | Workload::FillBatch
        )
    }

    /// True when one more thread writes beside the `--threads` readers.
    pub fn has_writer(self) -> bool {
        matches!(self, Workload::ReadWhileWriting | Workload::Snapshot)
    }

    /// True for the full scans.
    pub fn is_scan(self) -> bool {
        matches!(self, Workload::Scan | Workload::ScanRev)
    }

    /// True when the workload needs a key space loaded before the timed phase.
    pub fn preloads(self) -> bool {
        !matches!(
            self,
            Workload::FillSeq | Workload::FillRandom | Workload::FillBatch | Workload::Recover
        )
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase().replace(['-', '_'], "");
        // db_bench's names for the full scans.
        let s = match s.as_str() {
            "readseq" => "scan".to_string(),
            "readreverse" | "reversescan" | "scanreverse" => "scanrev".to_string(),
            "snapshots" => "snapshot".to_string(),
            _ => s,
        };
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| format!("unknown workload {s:?}"))
    }
}

/// Everything a run of the harness needs, parsed from the command line.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Parent directory for the databases (`None`: a temporary directory).
    pub dir: Option<PathBuf>,
    /// Workloads, in order.
    pub workloads: Vec<Workload>,
    /// Durability modes, in order.
    pub modes: Vec<Mode>,
    /// ringlog's I/O path.
    pub io: ringlog_db::IoChoice,
    /// Thread counts.
    pub threads: Vec<usize>,
    /// Operations per run (`u64::MAX` when only a duration bounds the run).
    pub ops: u64,
    /// Time limit per run.
    pub duration: Option<Duration>,
    /// Key space / records of `recover`.
    pub keys: u64,
    /// Key size in bytes.
    pub key_size: usize,
    /// Value size in bytes.
    pub value_size: usize,
    /// Puts per transaction in `fillbatch`.
    pub batch: usize,
    /// Engine names, in order (raw expanded).
    pub engines: Vec<String>,
    /// Where to write JSON.
    pub json: Option<PathBuf>,
    /// Where to write the SVG plot.
    pub plot: Option<PathBuf>,
    /// Smoke-run sizes.
    pub quick: bool,
    /// Show a progress line when stderr is a terminal.
    pub progress: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            dir: None,
            workloads: Workload::CORE.to_vec(),
            modes: Mode::ALL.to_vec(),
            io: ringlog_db::IoChoice::Auto,
            threads: vec![1, 16],
            ops: 100_000,
            duration: Some(Duration::from_secs(1)),
            keys: 100_000,
            key_size: 16,
            value_size: 100,
            batch: 100,
            engines: vec![
                "ringlog".into(),
                "raw-pwrite".into(),
                "raw-uring".into(),
                "raw-odirect".into(),
            ],
            json: None,
            plot: None,
            quick: false,
            progress: true,
        }
    }
}

/// What the command line asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    /// Run with this configuration.
    Run(Box<Config>),
    /// Print the usage and exit 0.
    Help,
}

fn num<T>(flag: &str, v: &str, lo: T, hi: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    let cleaned = v.trim().replace('_', "");
    let n: T = cleaned
        .parse()
        .map_err(|_| format!("{flag}: {v:?} is not a number"))?;
    if n < lo || n > hi {
        return Err(format!("{flag}: {n} is out of range {lo}..={hi}"));
    }
    Ok(n)
}

fn list(flag: &str, v: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = v
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return Err(format!("{flag}: empty list"));
    }
    Ok(items)
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// Engines compiled into this binary, by name.
fn compiled(name: &str) -> bool {
    crate::engine::all_engines()
        .iter()
        .any(|e| e.name() == name)
}

fn parse_engines(v: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in list("--engines", v)? {
        let names: Vec<&str> = match item.as_str() {
            "raw" => vec!["raw-pwrite", "raw-uring", "raw-odirect"],
            "peers" => PEER_NAMES.to_vec(),
            other => vec![other],
        };
        for name in names {
            if compiled(name) {
                push_unique(&mut out, name.to_string());
            } else if PEER_NAMES.contains(&name) {
                return Err(format!(
                    "--engines: {name} is not built into this binary; build with \
                     `cargo run --release -p ringlog-bench --features {}` (or --features peers)",
                    if name == "sqlite" { "sqlite" } else { name }
                ));
            } else {
                return Err(format!(
                    "--engines: unknown engine {name:?} (ringlog, raw, raw-pwrite, raw-uring, \
                     raw-odirect, fjall, redb, sled, sqlite, rocksdb, peers)"
                ));
            }
        }
    }
    Ok(out)
}

/// Parses the arguments after the program name.
pub fn parse<I, S>(args: I) -> Result<Parsed, String>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let mut c = Config::default();
    let mut ops = None;
    let mut duration = None;
    let mut keys = None;
    let mut it = args.into_iter().map(Into::into);
    while let Some(arg) = it.next() {
        let arg = arg
            .into_string()
            .map_err(|a| format!("argument {a:?} is not valid UTF-8"))?;
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let takes_value = !matches!(flag.as_str(), "--quick" | "--no-progress" | "-h" | "--help");
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => match it.next() {
                    Some(v) => v
                        .into_string()
                        .map_err(|a| format!("{flag}: {a:?} is not valid UTF-8"))?,
                    None => return Err(format!("{flag} needs a value")),
                },
            }
        } else {
            if inline.is_some() {
                return Err(format!("{flag} takes no value"));
            }
            String::new()
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--quick" => c.quick = true,
            "--no-progress" => c.progress = false,
            "--dir" => {
                if value.is_empty() {
                    return Err("--dir: empty path".into());
                }
                c.dir = Some(PathBuf::from(value));
            }
            "--workload" | "--workloads" => {
                let mut w = Vec::new();
                for item in list(&flag, &value)? {
                    match item.as_str() {
                        "all" => Workload::ALL
                            .into_iter()
                            .for_each(|x| push_unique(&mut w, x)),
                        "core" => Workload::CORE
                            .into_iter()
                            .for_each(|x| push_unique(&mut w, x)),
                        "ycsb" => Workload::YCSB
                            .into_iter()
                            .for_each(|x| push_unique(&mut w, x)),
                        other => push_unique(&mut w, other.parse::<Workload>()?),
                    }
                }
                c.workloads = w;
            }
            "--durability" => {
                let mut m = Vec::new();
                for item in list(&flag, &value)? {
                    match item.as_str() {
                        "all" => Mode::ALL.into_iter().for_each(|x| push_unique(&mut m, x)),
                        "inmemory" | "in-memory" | "memory" => push_unique(&mut m, Mode::InMemory),
                        "buffered" => push_unique(&mut m, Mode::Buffered),
                        "strict" => push_unique(&mut m, Mode::Strict),
                        other => {
                            return Err(format!(
                                "--durability: unknown mode {other:?} (inmemory, buffered, strict, all)"
                            ))
                        }
                    }
                }
                m.sort();
                c.modes = m;
            }
            "--io" => {
                c.io = value
                    .parse()
                    .map_err(|e: ringlog_db::io::ParseIoChoiceError| format!("--io: {e}"))?
            }
            "--threads" => {
                let mut t = Vec::new();
                for item in list(&flag, &value)? {
                    push_unique(&mut t, num(&flag, &item, 1usize, 1024)?);
                }
                c.threads = t;
            }
            "--ops" => ops = Some(num(&flag, &value, 1u64, 1_000_000_000_000)?),
            "--duration" => {
                let secs = num(&flag, &value, 0.001f64, 86_400.0)?;
                duration = Some(Duration::from_secs_f64(secs));
            }
            "--keys" => keys = Some(num(&flag, &value, 1u64, 1_000_000_000)?),
            "--key-size" => c.key_size = num(&flag, &value, MIN_KEY_SIZE, 4096)?,
            "--value-size" => c.value_size = num(&flag, &value, MIN_VALUE_SIZE, 1 << 20)?,
            "--batch" => c.batch = num(&flag, &value, 1usize, 100_000)?,
            "--engines" | "--engine" => c.engines = parse_engines(&value)?,
            "--json" => c.json = Some(PathBuf::from(value)),
            "--plot" => {
                if !value.to_ascii_lowercase().ends_with(".svg") {
                    return Err(format!("--plot: {value:?} must end in .svg"));
                }
                c.plot = Some(PathBuf::from(value))
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other:?}")),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    match (ops, duration) {
        (None, None) => {}
        (Some(n), None) => {
            c.ops = n;
            c.duration = None;
        }
        (None, Some(d)) => {
            c.ops = u64::MAX;
            c.duration = Some(d);
        }
        (Some(n), Some(d)) => {
            c.ops = n;
            c.duration = Some(d);
        }
    }
    if c.quick {
        c.ops = c.ops.min(5_000);
        c.duration = Some(c.duration.map_or(Duration::from_millis(300), |d| {
            d.min(Duration::from_millis(300))
        }));
    }
    c.keys = keys.unwrap_or(if c.ops == u64::MAX { 100_000 } else { c.ops });
    if c.quick {
        c.keys = c.keys.min(5_000);
    }
    if c.engines.is_empty() {
        return Err("--engines: no engine selected".into());
    }
    Ok(Parsed::Run(Box::new(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse(args.iter().copied())? {
            Parsed::Run(c) => Ok(*c),
            Parsed::Help => Err("help".into()),
        }
    }

    #[test]
    fn defaults() {
        let c = run(&[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.duration, Some(Duration::from_secs(1)));
        assert_eq!(c.ops, 100_000);
    }

    #[test]
    fn good_arguments() {
        let c = run(&[
            "--workload",
            "fillrandom,ycsb",
            "--durability=strict",
            "--threads",
            "1,4,16,64",
            "--ops",
            "1_000",
            "--value-size",
            "1024",
            "--engines",
            "raw,ringlog",
            "--io",
            "portable",
            "--batch=10",
        ])
        .unwrap();
        assert_eq!(c.workloads.len(), 7);
        assert_eq!(c.workloads[0], Workload::FillRandom);
        assert_eq!(c.modes, vec![Mode::Strict]);
        assert_eq!(c.threads, vec![1, 4, 16, 64]);
        assert_eq!((c.ops, c.duration, c.keys), (1000, None, 1000));
        assert_eq!(c.value_size, 1024);
        assert_eq!(c.batch, 10);
        assert_eq!(c.io, ringlog_db::IoChoice::Portable);
        assert_eq!(
            c.engines,
            ["raw-pwrite", "raw-uring", "raw-odirect", "ringlog"]
        );
        let c = run(&["--duration", "2.5"]).unwrap();
        assert_eq!(c.ops, u64::MAX);
        assert_eq!(c.duration, Some(Duration::from_millis(2500)));
        assert_eq!(c.keys, 100_000);
        let c = run(&["--quick", "--keys", "1000000"]).unwrap();
        assert_eq!((c.ops, c.keys), (5000, 5000));
        assert_eq!(parse(["--help"]).unwrap(), Parsed::Help);
    }

    #[test]
    fn bad_arguments() {
        for bad in [
            &["--ops"][..],
            &["--ops", "0"],
            &["--ops", "ten"],
            &["--threads", "0"],
            &["--threads", ","],
            &["--threads", "1,x"],
            &["--workload", "fillfast"],
            &["--durability", "maybe"],
            &["--io", "spdk"],
            &["--key-size", "4"],
            &["--value-size", "8"],
            &["--batch", "-1"],
            &["--engines", "mysql"],
            &["--plot", "out.png"],
            &["--quick=yes"],
            &["--frobnicate"],
            &["stray"],
            &["--duration", "-3"],
            &["--dir", ""],
        ] {
            assert!(run(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
