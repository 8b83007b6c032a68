//! Command-line parsing, with clap. Never panics: every problem is a clap error (exit status 2).

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use crate::engine::{Mode, PEER_NAMES};
use crate::keys::{MIN_KEY_SIZE, MIN_VALUE_SIZE};

/// The first lines of `--help`.
const ABOUT: &str =
    "ringlog-bench: how fast are durable commits on this disk, and how does ringlog compare?";

/// `--help`'s description: [`ABOUT`] and what a run without arguments does.
const LONG_ABOUT: &str = "\
ringlog-bench: how fast are durable commits on this disk, and how does ringlog compare?

With no arguments: every core workload over ringlog in the three modes at 1 and 16 threads plus
the raw baselines, at most 100,000 operations and 1 s per run, in a temporary directory on the
disk (not tmpfs); prints one table.";

/// The workloads and the exit status, printed after the options by `--help` (and `-h`).
const AFTER_HELP: &str = "\
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
  recover             write --keys records, close (no checkpoint: ringlog replays the whole log), time
                      the reopen until the first correct read
  history             (not in core) --keys keys written, then overwritten at random until --ops
                      puts in all, one thread, the engine's background checkpoints on
                      (--checkpoint-bytes); close; a cold open timed until the first correct
                      read against a cold sequential read of the files it needs (the floor);
                      space amplification at close and after a final checkpoint; every key read
                      back. Buffered unless --durability says otherwise
  ckptwrite           (not in core) overwrites of a preloaded key space in four alternating
                      phases: without and with one more thread calling checkpoint() in a loop;
                      put p99 with and without, and their ratio, in the notes. Background
                      checkpoints off (whatever --checkpoint-bytes says); engines with a
                      checkpoint or compaction step only; Buffered unless --durability says
                      otherwise
  coldread            (not in core) values on disk: --keys keys of --value-size bytes (default
                      1024 here) loaded in transactions of 1,000; ringlog opened with
                      --value-threshold and --value-cache, checkpointed so that the values leave
                      memory, closed. Then, each after dropping the files from the page cache:
                      a cold open timed until the first correct read against a cold sequential
                      read of the checkpoint file (the floor), resident memory and index bytes
                      per key after it; --ops random distinct keys read once each by get
                      (latency of each) against as many raw preads of the record's size at random
                      8-aligned offsets of the log segments (the floor), one after each get;
                      get_many of 32 random keys at a time against 32 sequential gets timed as
                      one unit (other keys). --ops is capped at a third of --keys; every value
                      read is checked. On the I/O path --io chooses. Peers run it too (their
                      get_many: sequential gets; their floors: every file). Buffered unless
                      --durability says otherwise
  rmw                 (not in core; ringlog only: optimistic transactions) read-modify-write
                      transactions. Contended: --hot-keys counters (default 64, each a value of
                      --value-size bytes whose version field is the count, all 0 at first);
                      --threads threads each pick a counter (uniform) and run Db::transact with
                      RetryPolicy::max_attempts(1000): tx.get, then tx.put of the count + 1.
                      ops/s are committed transactions, latency per transact call (retries and
                      backoff included); conflicts, retries and attempts per commit in the
                      notes. Every counter is read back after it: their sum must equal the
                      transact calls that succeeded (else the run fails: a lost update). Once
                      per engine and mode (in the run of the first --threads count), one thread
                      over --keys other keys, in four rounds of alternating phases (after an
                      untimed one): plain puts; get + put transactions; write-only
                      transactions; plain get + put; ops/s of each, and each one's
                      per-operation time over the puts' (issue 15's target: at most 1.3x for
                      the get + put transactions) in the notes. --ops and --duration bound the
                      contended phase; the four measured rounds get as much again
  runs                (not in core; ringlog only: its log of runs) four runs built, each an
                      open, Db::label_run(run-i), --ops/4 transactions of 4 random puts over
                      --keys keys, a close; background checkpoints off and no close-time
                      checkpoint, so the log keeps every run. Reopened; then Db::runs(),
                      Db::run_changes of the middle run (run-2) iterated to its end, and
                      Db::diff_runs(run-0, run-3), each timed cold (the files dropped from the
                      page cache first) and warm, against a sequential read of the log's
                      segment files (the floor), cold and warm. ops/s are the log's
                      transactions listed per second by the cold Db::runs(), its time over the
                      floor's in the p50x column; the others, MB/s and transactions/s in the
                      notes. Checked: the four runs with their labels and commit counts, the
                      middle run's transactions and the last write of each of its keys byte for
                      byte, every key of the diff (else the run fails). --duration bounds each
                      run's writes (a quarter each). Buffered unless --durability says otherwise
  readonly            (not in core; ringlog only: Db::open_read_only) --keys records written in
                      transactions of 1,000 and closed (no checkpoint: every open replays the
                      log). Then, 5 times each, interleaved: cold (the files dropped from the
                      page cache before each call) and warm, a sequential read of the log's
                      segment files (the floor), Db::open (writable) and Db::open_read_only of
                      the closed database; then Db::open_read_only 5 times beside a live writer
                      (the database open for writing in this process, one thread committing puts
                      of new keys, 100,000 a second). One table row each (workload column ro ...):
                      ops/s are records opened per second, p50 the median call, x floor and p50x
                      against the floor of the same temperature (warm for the live opens).
                      Checked: every open's records read back (every record once, a sample
                      after every other open), the read-only handle refuses a put, a read-only
                      open changes nothing in the directory, and each live open sees every key
                      that was durable before it began and a prefix of the writer's puts (else
                      the run fails). --ops and --duration are not used. Buffered unless
                      --durability says otherwise
  raft                (not in core; ringlog, and rocksdb with its feature: openraft log stores)
                      --threads appenders, each with a log store of its own (its own Raft
                      group), appending one entry at a time (a Request::Set with a value of
                      --value-size bytes, default 1024 here) and awaiting its flush callback
                      before the next: ringlog's LogStore (ringlog-openraft; every store on one
                      Db opened with default options, under its own key prefix, so that their
                      syncs group), or a RocksDB store as openraft's log-rocks example (a
                      WriteBatch, then flush_wal(true), then the callback; every store on one
                      instance, column families of its own). Each run first measures the
                      ceiling at the same appender count: an in-memory store as openraft's
                      log-mem example (a BTreeMap, the callback fired at once; at most 500,000
                      entries), on a row of its own (engine mem-ceiling). ops/s are entries
                      appended per second, latency per append + callback; x floor and p50x
                      against the ceiling of the same run; sync/c for ringlog is
                      Db::stats().syncs per append. Checked: every log read back through its
                      reader and compared entry by entry (else the run fails). Strict mode only
  ycsba ... ycsbf     YCSB A-F over the preloaded key space, Zipfian (D: latest, E: short scans)
Names db_bench uses are accepted too: readseq (scan), readreverse (scanrev); and
read-modify-write for rmw (ycsbf is YCSB F, not rmw).

Exit status: 0 clean, 1 a run failed (wrong data read back, or an engine error), 2 bad arguments.";

/// The command line as clap sees it; [`Cli::into_config`] applies the rules between options
/// (`--ops` alone removes the time limit, `--quick` caps the sizes, `--keys` defaults to `--ops`).
///
/// A repeated option overrides the earlier one (the last one wins).
/// A number option takes a negative value (`--batch -1`), for its parser to refuse by range.
/// Every list value (`--threads 1,16`) is one argument, split on commas by its parser: blank items
/// are skipped and repeats dropped.
#[derive(Parser, Clone, Debug, Default, PartialEq)]
#[command(
    name = "ringlog-bench",
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    args_override_self = true,
    term_width = 100
)]
pub struct Cli {
    /// Where the databases go (a fresh subdirectory per run, removed after it); default: a
    /// temporary directory under $TMPDIR, or under the current directory when $TMPDIR is a tmpfs
    #[arg(long, value_name = "PATH", value_parser = parse_dir)]
    pub dir: Option<PathBuf>,

    /// fillseq fillrandom overwrite readrandom readwhilewriting scan scanrev snapshot fillbatch
    /// recover history ckptwrite coldread ycsba ycsbb ycsbc ycsbd ycsbe ycsbf rmw runs readonly
    /// raft; `core` (default: all but history, ckptwrite, coldread, rmw, runs, readonly, raft and
    /// YCSB), `ycsb` (A-F) or `all` (see Workloads below)
    #[arg(
        long = "workload",
        visible_alias = "workloads",
        value_name = "LIST",
        value_parser = parse_workloads
    )]
    pub workloads: Option<std::vec::Vec<Workload>>,

    /// inmemory, buffered, strict or all (default: all)
    #[arg(long = "durability", value_name = "LIST", value_parser = parse_modes)]
    pub modes: Option<std::vec::Vec<Mode>>,

    /// ringlog's I/O path: uring, portable or auto (default: auto)
    #[arg(long, value_name = "PATH", value_parser = parse_io)]
    pub io: Option<ringlog_db::IoChoice>,

    /// Writer/reader threads per run, 1-1024 (default: 1,16)
    #[arg(
        long,
        value_name = "LIST",
        value_parser = parse_threads,
        allow_negative_numbers = true
    )]
    pub threads: Option<std::vec::Vec<usize>>,

    /// Operations per run (default 100000); alone, removes the time limit
    #[arg(
        long,
        value_name = "N",
        value_parser = |v: &str| num(v, 1u64, 1_000_000_000_000),
        allow_negative_numbers = true
    )]
    pub ops: Option<u64>,

    /// Time limit per run (default 1 when --ops is not given either)
    #[arg(
        long,
        value_name = "SECS",
        value_parser = parse_duration,
        allow_negative_numbers = true
    )]
    pub duration: Option<Duration>,

    /// Key space of random workloads and records of `recover` (default: --ops)
    #[arg(
        long,
        value_name = "N",
        value_parser = |v: &str| num(v, 1u64, 1_000_000_000),
        allow_negative_numbers = true
    )]
    pub keys: Option<u64>,

    /// Key size, 8-4096 (default 16)
    #[arg(
        long,
        value_name = "B",
        value_parser = |v: &str| num(v, MIN_KEY_SIZE, 4096),
        allow_negative_numbers = true
    )]
    pub key_size: Option<usize>,

    /// Value size, 16-1048576 (default 100; 1024 in coldread)
    #[arg(
        long,
        value_name = "B",
        value_parser = |v: &str| num(v, MIN_VALUE_SIZE, 1 << 20),
        allow_negative_numbers = true
    )]
    pub value_size: Option<usize>,

    /// rmw: the contended counters, 1-1000000 (default 64); its uncontended phases use --keys
    #[arg(
        long,
        value_name = "N",
        value_parser = |v: &str| num(v, 1u64, 1_000_000),
        allow_negative_numbers = true
    )]
    pub hot_keys: Option<u64>,

    /// Puts per transaction in fillbatch, 1-100000 (default 100)
    #[arg(
        long,
        value_name = "N",
        value_parser = |v: &str| num(v, 1usize, 100_000),
        allow_negative_numbers = true
    )]
    pub batch: Option<usize>,

    /// ringlog, raw (= raw-pwrite,raw-uring,raw-odirect,raw-dsync), one raw loop, or a peer built in with
    /// --features: fjall redb sled sqlite rocksdb (or `peers`) (default: ringlog,raw)
    #[arg(
        long,
        visible_alias = "engine",
        value_name = "LIST",
        value_parser = parse_engines
    )]
    pub engines: Option<std::vec::Vec<String>>,

    /// ringlog's Options::checkpoint_bytes: a background checkpoint once this much log was
    /// appended since the last one (the engine may checkpoint sooner: once that log is as large
    /// as the last checkpoint), at least 1M; suffixes K, M, G (binary); `off` = no background
    /// checkpoints (default: the engine's, 256M)
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub checkpoint_bytes: Option<u64>,

    /// ringlog's Options::value_threshold, values of at least this many bytes leave memory at a
    /// checkpoint, 1-1048576; `off` (or 0) keeps every value in memory, a baseline. coldread
    /// uses 64 unless given; every other workload uses it only when given (e.g. `history`, to
    /// measure value-log garbage collection's space amplification)
    #[arg(long, value_name = "B", value_parser = parse_threshold)]
    pub value_threshold: Option<usize>,

    /// coldread: ringlog's Options::value_cache_bytes, the cache of values read from disk; 0 or
    /// `off` = no cache; suffixes K, M, G (binary) (default 256M)
    #[arg(long, value_name = "BYTES", value_parser = parse_cache)]
    pub value_cache: Option<u64>,

    /// Time one operation in N (the others run untimed between two clock reads; percentiles are
    /// then of the timed operations): reading the clock around every operation keeps the
    /// processor from overlapping one operation's cache misses with the next one's, which caps
    /// in-memory point reads (see the index_ceiling example); 1 = time every operation
    /// (default)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub latency_every: Option<u64>,

    /// ringlog's Options::rounds_in_flight: log rounds kept in flight at once on the io_uring
    /// path, 1-16 (default: the engine's, 1)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=16))]
    pub rounds_in_flight: Option<u64>,

    /// ringlog's retention policy, set right after each open (`Db::set_retention`):
    /// `snapshots` (the engine's default), `all`, `last:N` (the newest N versions of each key)
    /// or `newer-than:SECONDS` (e.g. `newer-than:0.1`: every version current within the last
    /// 100 ms); the workloads that open their databases themselves (readonly, raft) keep the
    /// default
    #[arg(long, value_name = "POLICY", value_parser = parse_retention)]
    pub retention: Option<ringlog_db::Retention>,

    /// Also write the rows as JSON
    #[arg(
        long,
        value_name = "FILE",
        value_parser = |v: &str| Ok::<_,
        String>(PathBuf::from(v))
    )]
    pub json: Option<PathBuf>,

    /// Also write an SVG of throughput against threads and latency percentiles
    #[arg(long, value_name = "FILE.svg", value_parser = parse_plot)]
    pub plot: Option<PathBuf>,

    /// A smoke run: at most 5000 operations and 0.3 s per run
    #[arg(long)]
    pub quick: bool,

    /// No progress line on stderr (it is off anyway when stderr is no terminal)
    #[arg(long)]
    pub no_progress: bool,

    /// Keep the CPUs busy with N spinning threads at the lowest priority (nice 19) for the whole
    /// run: how the engines commit while other work competes for the cores (default 0)
    #[arg(long, value_name = "N", value_parser = |v: &str| num(v, 0usize, 1024))]
    pub cpu_load: Option<usize>,
}

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
    /// `--keys` keys overwritten until `--ops` puts, background checkpoints; cold open against
    /// a cold read of its files; space amplification.
    History,
    /// Put latency with and without a thread calling `checkpoint()` in a loop.
    CkptWrite,
    /// Values on disk: a cold open, cold random gets against a raw pread floor, `get_many` of 32
    /// against 32 sequential gets.
    ColdRead,
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
    /// Read-modify-write transactions (ringlog's `Db::transact`): contended counters, checked
    /// for lost updates, and uncontended transactions against plain puts.
    Rmw,
    /// The log's runs (ringlog's `Db::runs`, `run_changes`, `diff_runs`) over a log of four runs,
    /// cold and warm, against a sequential read of the segment files.
    Runs,
    /// Opens of a closed database: `Db::open` against ringlog's `Db::open_read_only`, cold and
    /// warm, and `Db::open_read_only` beside a live writer, against a sequential read of the
    /// segment files.
    ReadOnly,
    /// openraft log appends (issue 17): appenders each with a log store of its own, one entry
    /// per append, the flush callback awaited before the next; ringlog's `LogStore` or a
    /// RocksDB-backed store against an in-memory ceiling.
    Raft,
}

impl Workload {
    /// Every workload, in table order.
    pub const ALL: [Workload; 23] = [
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
        Workload::History,
        Workload::CkptWrite,
        Workload::ColdRead,
        Workload::YcsbA,
        Workload::YcsbB,
        Workload::YcsbC,
        Workload::YcsbD,
        Workload::YcsbE,
        Workload::YcsbF,
        Workload::Rmw,
        Workload::Runs,
        Workload::ReadOnly,
        Workload::Raft,
    ];
    /// The default set: every workload but history, ckptwrite, coldread, rmw, runs, readonly,
    /// raft and YCSB.
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
            Workload::History => "history",
            Workload::CkptWrite => "ckptwrite",
            Workload::ColdRead => "coldread",
            Workload::YcsbA => "ycsba",
            Workload::YcsbB => "ycsbb",
            Workload::YcsbC => "ycsbc",
            Workload::YcsbD => "ycsbd",
            Workload::YcsbE => "ycsbe",
            Workload::YcsbF => "ycsbf",
            Workload::Rmw => "rmw",
            Workload::Runs => "runs",
            Workload::ReadOnly => "readonly",
            Workload::Raft => "raft",
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

    /// How many threads commit in a run with `threads` threads: one for the single-threaded
    /// workloads and for those whose threads only read beside one writer, `threads` otherwise.
    /// Each has at most one commit in flight, so a Strict run's device flushes cover at most
    /// this many commits each (the power-loss check).
    pub fn committers(self, threads: usize) -> u64 {
        if self.single_threaded() || self.has_writer() {
            1
        } else {
            threads as u64
        }
    }

    /// True for the full scans.
    pub fn is_scan(self) -> bool {
        matches!(self, Workload::Scan | Workload::ScanRev)
    }

    /// True when the workload needs a key space loaded before the timed phase.
    pub fn preloads(self) -> bool {
        !matches!(
            self,
            Workload::FillSeq
                | Workload::FillRandom
                | Workload::FillBatch
                | Workload::Recover
                | Workload::History
                | Workload::ColdRead
                | Workload::Rmw
                | Workload::Runs
                | Workload::ReadOnly
                | Workload::Raft
        )
    }

    /// True for the workloads that run in Strict mode only, whatever `--durability` says (raft:
    /// every append is acknowledged once durable; the stores choose how).
    pub fn strict_only(self) -> bool {
        self == Workload::Raft
    }

    /// True for the workloads that run in Buffered mode only unless `--durability` is given.
    pub fn buffered_by_default(self) -> bool {
        matches!(
            self,
            Workload::History
                | Workload::CkptWrite
                | Workload::ColdRead
                | Workload::Runs
                | Workload::ReadOnly
        )
    }

    /// True for the workloads that run single-threaded whatever `--threads` says.
    pub fn single_threaded(self) -> bool {
        matches!(
            self,
            Workload::Recover
                | Workload::History
                | Workload::ColdRead
                | Workload::Runs
                | Workload::ReadOnly
        )
    }

    /// True for the workloads that measure a reopen of a database on disk (not run in memory).
    pub fn needs_disk(self) -> bool {
        matches!(
            self,
            Workload::Recover
                | Workload::History
                | Workload::CkptWrite
                | Workload::ColdRead
                | Workload::Runs
                | Workload::ReadOnly
                | Workload::Raft
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
            "checkpointwrite" | "ckptwrites" => "ckptwrite".to_string(),
            "coldreads" | "coldget" | "coldgets" => "coldread".to_string(),
            "readmodifywrite" | "rmwtxn" => "rmw".to_string(),
            "run" | "diffruns" | "rundiff" | "runchanges" => "runs".to_string(),
            "openreadonly" | "rdonly" => "readonly".to_string(),
            "openraft" | "raftlog" | "raftappend" | "raftappends" => "raft".to_string(),
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
    /// Whether `--durability` was given (else history and ckptwrite run Buffered only).
    pub modes_given: bool,
    /// ringlog's `Options::checkpoint_bytes` (`None`: the engine's default).
    pub checkpoint_bytes: Option<u64>,
    /// ringlog's `Options::rounds_in_flight` (`None`: the engine's default).
    pub rounds_in_flight: Option<usize>,
    /// ringlog's retention policy (`--retention`; `None`: the engine's default).
    pub retention: Option<ringlog_db::Retention>,
    /// Time one operation in this many (`--latency-every`).
    pub latency_every: u64,
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
    /// Value size in bytes (see [`Config::value_size_of`]).
    pub value_size: usize,
    /// Whether `--value-size` was given (else coldread uses [`COLDREAD_VALUE_SIZE`] and raft
    /// [`RAFT_VALUE_SIZE`]).
    pub value_size_given: bool,
    /// coldread: ringlog's `Options::value_threshold` (`--value-threshold`; `None`: off).
    pub value_threshold: Option<usize>,
    /// Whether `--value-threshold` was given: then every workload uses it, not coldread alone.
    pub value_threshold_given: bool,
    /// coldread: ringlog's `Options::value_cache_bytes` (`--value-cache`).
    pub value_cache: u64,
    /// rmw: the contended counters (`--hot-keys`).
    pub hot_keys: u64,
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
    /// Spinning low-priority threads kept running through the whole run (`--cpu-load`).
    pub cpu_load: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            dir: None,
            workloads: Workload::CORE.to_vec(),
            modes: Mode::ALL.to_vec(),
            modes_given: false,
            checkpoint_bytes: None,
            rounds_in_flight: None,
            retention: None,
            latency_every: 1,
            io: ringlog_db::IoChoice::Auto,
            threads: vec![1, 16],
            ops: 100_000,
            duration: Some(Duration::from_secs(1)),
            keys: 100_000,
            key_size: 16,
            value_size: 100,
            value_size_given: false,
            value_threshold: Some(64),
            value_threshold_given: false,
            value_cache: 256 << 20,
            hot_keys: RMW_HOT_KEYS,
            batch: 100,
            engines: vec![
                "ringlog".into(),
                "raw-pwrite".into(),
                "raw-uring".into(),
                "raw-odirect".into(),
                "raw-dsync".into(),
            ],
            json: None,
            plot: None,
            quick: false,
            progress: true,
            cpu_load: 0,
        }
    }
}

/// rmw's contended counters when `--hot-keys` is not given.
pub const RMW_HOT_KEYS: u64 = 64;

/// coldread's value size when `--value-size` is not given: the 1 KiB values.
pub const COLDREAD_VALUE_SIZE: usize = 1024;

/// raft's value size when `--value-size` is not given: issue 17's 1 KiB entries.
pub const RAFT_VALUE_SIZE: usize = 1024;

impl Config {
    /// The value size `workload` runs with: `--value-size` when given, else the harness's
    /// default (100 B) except for coldread ([`COLDREAD_VALUE_SIZE`]) and raft
    /// ([`RAFT_VALUE_SIZE`]).
    pub fn value_size_of(&self, workload: Workload) -> usize {
        match workload {
            _ if self.value_size_given => self.value_size,
            Workload::ColdRead => COLDREAD_VALUE_SIZE,
            Workload::Raft => RAFT_VALUE_SIZE,
            _ => self.value_size,
        }
    }
}

/// What the command line asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    /// Run with this configuration.
    Run(Box<Config>),
    /// Print this help text (`-h` or `--help`) and exit 0.
    Help(String),
}

/// A number in `lo..=hi`; blanks around it and `_` separators (`1_000`) are allowed.
fn num<T>(v: &str, lo: T, hi: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    let cleaned = v.trim().replace('_', "");
    let n: T = cleaned
        .parse()
        .map_err(|_| format!("{v:?} is not a number"))?;
    if n < lo || n > hi {
        return Err(format!("{n} is out of range {lo}..={hi}"));
    }
    Ok(n)
}

/// A comma-separated list: items trimmed and lowercased, blank items skipped, at least one.
fn list(v: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = v
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return Err("empty list".into());
    }
    Ok(items)
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

fn parse_dir(v: &str) -> Result<PathBuf, String> {
    if v.is_empty() {
        return Err("empty path".into());
    }
    Ok(PathBuf::from(v))
}

fn parse_workloads(v: &str) -> Result<Vec<Workload>, String> {
    let mut w = Vec::new();
    for item in list(v)? {
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
    Ok(w)
}

/// Durability modes, in table order (inmemory, buffered, strict) whatever the order given.
fn parse_modes(v: &str) -> Result<Vec<Mode>, String> {
    let mut m = Vec::new();
    for item in list(v)? {
        match item.as_str() {
            "all" => Mode::ALL.into_iter().for_each(|x| push_unique(&mut m, x)),
            "inmemory" | "in-memory" | "memory" => push_unique(&mut m, Mode::InMemory),
            "buffered" => push_unique(&mut m, Mode::Buffered),
            "strict" => push_unique(&mut m, Mode::Strict),
            other => {
                return Err(format!(
                    "unknown mode {other:?} (inmemory, buffered, strict, all)"
                ))
            }
        }
    }
    m.sort();
    Ok(m)
}

/// A byte count of at least 1 MiB with an optional binary suffix (`256M`, `1g`, `4096k`), or
/// `off` (`u64::MAX`: no background checkpoints).
fn parse_bytes(v: &str) -> Result<u64, String> {
    let t = v.trim().to_ascii_lowercase().replace('_', "");
    if t == "off" || t == "none" {
        return Ok(u64::MAX);
    }
    let bytes = byte_count(v)?;
    if bytes < 1 << 20 {
        return Err(format!("{v:?} is below the engine's minimum of 1M"));
    }
    Ok(bytes)
}

/// `--value-cache`: a byte count with an optional binary suffix; 0 or `off`: no cache.
fn parse_cache(v: &str) -> Result<u64, String> {
    let t = v.trim().to_ascii_lowercase();
    if t == "off" || t == "none" {
        return Ok(0);
    }
    byte_count(v)
}

/// `--value-threshold`: bytes, 0-1048576, or `off` (0: every value stays in memory).
fn parse_threshold(v: &str) -> Result<usize, String> {
    let t = v.trim().to_ascii_lowercase();
    if t == "off" || t == "none" {
        return Ok(0);
    }
    num(v, 0usize, 1 << 20)
}

/// A byte count with an optional binary suffix (`256M`, `1g`, `4096k`, `64KiB`).
fn byte_count(v: &str) -> Result<u64, String> {
    let t = v.trim().to_ascii_lowercase().replace('_', "");
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (digits, shift) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 10),
        Some('m') => (&t[..t.len() - 1], 20),
        Some('g') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{v:?} is not a byte count (e.g. 256M, 1G, off)"))?;
    n.checked_mul(1 << shift)
        .filter(|&b| b < u64::MAX)
        .ok_or_else(|| format!("{v:?} is too large"))
}

fn parse_io(v: &str) -> Result<ringlog_db::IoChoice, String> {
    v.parse()
        .map_err(|e: ringlog_db::io::ParseIoChoiceError| e.to_string())
}

fn parse_threads(v: &str) -> Result<Vec<usize>, String> {
    let mut t = Vec::new();
    for item in list(v)? {
        push_unique(&mut t, num(&item, 1usize, 1024)?);
    }
    Ok(t)
}

fn parse_duration(v: &str) -> Result<Duration, String> {
    num(v, 0.001f64, 86_400.0).map(Duration::from_secs_f64)
}

/// `--retention`: `snapshots`, `all`, `last:N` (1..=2^32-1) or `newer-than:SECONDS`.
fn parse_retention(v: &str) -> Result<ringlog_db::Retention, String> {
    use ringlog_db::Retention;
    let t = v.trim().to_ascii_lowercase();
    let (name, arg) = match t.split_once(':') {
        Some((n, a)) => (n.trim(), Some(a.trim())),
        None => (t.as_str(), None),
    };
    match (name, arg) {
        ("snapshots", None) => Ok(Retention::Snapshots),
        ("all", None) => Ok(Retention::All),
        ("last", Some(n)) => num(n, 1u32, u32::MAX)
            .map(|n| Retention::LastVersions(std::num::NonZeroU32::new(n).expect("n >= 1"))),
        ("newer-than", Some(d)) => parse_duration(d).map(Retention::NewerThan),
        _ => Err(format!(
            "unknown retention policy {v:?} (snapshots, all, last:N, newer-than:SECONDS)"
        )),
    }
}

fn parse_plot(v: &str) -> Result<PathBuf, String> {
    if !v.to_ascii_lowercase().ends_with(".svg") {
        return Err(format!("{v:?} must end in .svg"));
    }
    Ok(PathBuf::from(v))
}

/// Engines compiled into this binary, by name.
fn compiled(name: &str) -> bool {
    crate::engine::all_engines()
        .iter()
        .any(|e| e.name() == name)
}

fn parse_engines(v: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in list(v)? {
        let names: Vec<&str> = match item.as_str() {
            "raw" => vec!["raw-pwrite", "raw-uring", "raw-odirect", "raw-dsync"],
            "peers" => PEER_NAMES.to_vec(),
            other => vec![other],
        };
        for name in names {
            if compiled(name) {
                push_unique(&mut out, name.to_string());
            } else if PEER_NAMES.contains(&name) {
                return Err(format!(
                    "{name} is not built into this binary; build with \
                     `cargo run --release -p ringlog-bench --features {}` (or --features peers)",
                    if name == "sqlite" { "sqlite" } else { name }
                ));
            } else {
                return Err(format!(
                    "unknown engine {name:?} (ringlog, raw, raw-pwrite, raw-uring, \
                     raw-odirect, raw-dsync, fjall, redb, sled, sqlite, rocksdb, peers)"
                ));
            }
        }
    }
    Ok(out)
}

impl Cli {
    /// The configuration of the run: the options given over [`Config::default`], and the rules
    /// between them. An `Err` is a usage error (its message names the option).
    pub fn into_config(self) -> Result<Config, String> {
        let mut c = Config::default();
        if let Some(d) = self.dir {
            c.dir = Some(d);
        }
        if let Some(w) = self.workloads {
            c.workloads = w;
        }
        if let Some(m) = self.modes {
            c.modes = m;
            c.modes_given = true;
        }
        c.checkpoint_bytes = self.checkpoint_bytes;
        c.rounds_in_flight = self.rounds_in_flight.map(|n| n as usize);
        c.retention = self.retention;
        if let Some(n) = self.latency_every {
            c.latency_every = n;
        }
        if let Some(io) = self.io {
            c.io = io;
        }
        if let Some(t) = self.threads {
            c.threads = t;
        }
        if let Some(b) = self.key_size {
            c.key_size = b;
        }
        if let Some(b) = self.value_size {
            c.value_size = b;
            c.value_size_given = true;
        }
        if let Some(t) = self.value_threshold {
            c.value_threshold = (t > 0).then_some(t);
            c.value_threshold_given = true;
        }
        if let Some(b) = self.value_cache {
            c.value_cache = b;
        }
        if let Some(n) = self.batch {
            c.batch = n;
        }
        if let Some(n) = self.hot_keys {
            c.hot_keys = n;
        }
        if let Some(e) = self.engines {
            c.engines = e;
        }
        c.json = self.json;
        c.plot = self.plot;
        c.quick = self.quick;
        c.progress = !self.no_progress;
        c.cpu_load = self.cpu_load.unwrap_or(0);
        // `--ops` alone removes the time limit; `--duration` alone removes the operation limit.
        match (self.ops, self.duration) {
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
        c.keys = self
            .keys
            .unwrap_or(if c.ops == u64::MAX { 100_000 } else { c.ops });
        if c.quick {
            c.keys = c.keys.min(5_000);
        }
        if c.engines.is_empty() {
            return Err("--engines: no engine selected".into());
        }
        if let Some(&t) = c.threads.iter().max() {
            if (t as u64) > c.keys {
                return Err(format!(
                    "--keys ({}) must be at least the largest --threads ({t})",
                    c.keys
                ));
            }
        }
        Ok(c)
    }
}

/// Parses the arguments after the program name. `Err` is a usage error (clap's, or one of the
/// rules of [`Cli::into_config`] in clap's format); print it and exit with its
/// [`exit_code`](clap::Error::exit_code), 2.
pub fn parse<I, S>(args: I) -> Result<Parsed, clap::Error>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let argv =
        std::iter::once(OsString::from("ringlog-bench")).chain(args.into_iter().map(Into::into));
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) if e.kind() == ErrorKind::DisplayHelp => {
            return Ok(Parsed::Help(e.render().to_string()))
        }
        Err(e) => return Err(e),
    };
    cli.into_config()
        .map(|c| Parsed::Run(Box::new(c)))
        .map_err(|msg| Cli::command().error(ErrorKind::ValueValidation, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse(args.iter().copied()).map_err(|e| e.to_string())? {
            Parsed::Run(c) => Ok(*c),
            Parsed::Help(_) => Err("help".into()),
        }
    }

    /// The power-loss check divides a Strict run's commits among the threads that commit: the
    /// readers beside one writer do not (16 readers counted as committers would excuse an
    /// engine that flushed once every 17 commits).
    #[test]
    fn only_committing_threads_count_as_committers() {
        assert_eq!(Workload::FillRandom.committers(16), 16);
        assert_eq!(Workload::ReadWhileWriting.committers(16), 1);
        assert_eq!(Workload::Snapshot.committers(16), 1);
        assert_eq!(Workload::Recover.committers(16), 1);
    }

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
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
            [
                "raw-pwrite",
                "raw-uring",
                "raw-odirect",
                "raw-dsync",
                "ringlog"
            ]
        );
        let c = run(&["--duration", "2.5"]).unwrap();
        assert_eq!(c.ops, u64::MAX);
        assert_eq!(c.duration, Some(Duration::from_millis(2500)));
        assert_eq!(c.keys, 100_000);
        let c = run(&["--quick", "--keys", "1000000"]).unwrap();
        assert_eq!((c.ops, c.keys), (5000, 5000));
        assert!(matches!(parse(["--help"]), Ok(Parsed::Help(_))));
        // history and ckptwrite: in `all`, not in `core`; --checkpoint-bytes with suffixes.
        let c = run(&["--workload", "all"]).unwrap();
        assert!(c.workloads.contains(&Workload::History));
        assert!(c.workloads.contains(&Workload::CkptWrite));
        assert!(!c.modes_given);
        let c = run(&["--workload", "core", "--durability", "buffered"]).unwrap();
        assert!(!c.workloads.contains(&Workload::History));
        assert!(c.modes_given);
        for (arg, want) in [
            ("256M", 256u64 << 20),
            ("1g", 1 << 30),
            ("4096KiB", 4 << 20),
            ("1048576", 1 << 20),
            ("off", u64::MAX),
        ] {
            let c = run(&["--checkpoint-bytes", arg]).unwrap();
            assert_eq!(c.checkpoint_bytes, Some(want), "{arg}");
        }
        assert_eq!(run(&[]).unwrap().checkpoint_bytes, None);
        assert_eq!(
            run(&[]).unwrap().latency_every,
            1,
            "every operation timed by default"
        );
        assert_eq!(run(&["--latency-every", "16"]).unwrap().latency_every, 16);
        assert!(run(&["--latency-every", "0"]).is_err());
        assert_eq!(
            run(&["--rounds-in-flight", "4"]).unwrap().rounds_in_flight,
            Some(4)
        );
        assert!(run(&["--rounds-in-flight", "17"]).is_err());
        {
            use ringlog_db::Retention;
            let r = |v: &str| run(&["--retention", v]).map(|c| c.retention);
            assert_eq!(r("all"), Ok(Some(Retention::All)));
            assert_eq!(r(" Snapshots "), Ok(Some(Retention::Snapshots)));
            assert_eq!(
                r("last:3"),
                Ok(Some(Retention::LastVersions(
                    std::num::NonZeroU32::new(3).unwrap()
                )))
            );
            assert_eq!(
                r("newer-than:0.25"),
                Ok(Some(Retention::NewerThan(Duration::from_millis(250))))
            );
            for bad in [
                "last:0",
                "last",
                "newer-than",
                "newer-than:x",
                "all:1",
                "forever",
            ] {
                assert!(r(bad).is_err(), "{bad}");
            }
            assert_eq!(run(&[]).map(|c| c.retention), Ok(None));
        }
    }

    #[test]
    fn coldread_options() {
        let c = run(&[]).unwrap();
        assert!(!c.workloads.contains(&Workload::ColdRead), "not in core");
        assert_eq!(c.value_threshold, Some(64));
        assert_eq!(c.value_cache, 256 << 20);
        assert_eq!(c.value_size_of(Workload::ColdRead), COLDREAD_VALUE_SIZE);
        assert_eq!(c.value_size_of(Workload::ReadRandom), 100);
        let c = run(&[
            "--workload",
            "cold-read",
            "--value-threshold",
            "512",
            "--value-cache",
            "64M",
            "--value-size",
            "4096",
        ])
        .unwrap();
        assert_eq!(c.workloads, [Workload::ColdRead]);
        assert_eq!(c.value_threshold, Some(512));
        assert_eq!(c.value_cache, 64 << 20);
        assert_eq!(c.value_size_of(Workload::ColdRead), 4096);
        let c = run(&["--value-threshold", "off", "--value-cache", "0"]).unwrap();
        assert_eq!((c.value_threshold, c.value_cache), (None, 0));
        assert_eq!(run(&["--value-cache", "off"]).unwrap().value_cache, 0);
        assert!(run(&["--workload", "all"])
            .unwrap()
            .workloads
            .contains(&Workload::ColdRead));
        for bad in [
            &["--value-threshold", "-1"][..],
            &["--value-threshold", "2097152"],
            &["--value-cache", "lots"],
        ] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rmw_options() {
        // Not in core, in all; its own name and aliases; ycsbf stays YCSB F.
        let c = run(&[]).unwrap();
        assert!(!c.workloads.contains(&Workload::Rmw), "not in core");
        assert_eq!(c.hot_keys, RMW_HOT_KEYS);
        assert!(run(&["--workload", "all"])
            .unwrap()
            .workloads
            .contains(&Workload::Rmw));
        assert!(!run(&["--workload", "ycsb"])
            .unwrap()
            .workloads
            .contains(&Workload::Rmw));
        for name in [
            "rmw",
            "RMW",
            "read-modify-write",
            "read_modify_write",
            "rmw-txn",
        ] {
            assert_eq!(
                run(&["--workload", name]).unwrap().workloads,
                [Workload::Rmw],
                "{name}"
            );
        }
        assert_eq!(
            run(&["--workload", "ycsbf,rmw"]).unwrap().workloads,
            [Workload::YcsbF, Workload::Rmw]
        );
        assert_eq!(Workload::Rmw.name(), "rmw");
        assert!(!Workload::Rmw.is_write_only());
        assert!(!Workload::Rmw.single_threaded());
        assert!(!Workload::Rmw.needs_disk());
        assert!(!Workload::Rmw.buffered_by_default());
        // --hot-keys: the contended counters; --keys stays the uncontended key space and may be
        // smaller than the threads' count only as before.
        let c = run(&["--workload", "rmw", "--hot-keys", "4", "--threads", "1,16"]).unwrap();
        assert_eq!(
            (c.hot_keys, c.keys, c.threads.clone()),
            (4, 100_000, vec![1, 16])
        );
        assert_eq!(run(&["--hot-keys", "1_000"]).unwrap().hot_keys, 1000);
        for bad in ["0", "-1", "1000001", "lots"] {
            assert!(run(&["--hot-keys", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn runs_options() {
        // Not in core, in all; ringlog's log of runs: on disk, Buffered by default, one thread.
        assert!(!run(&[]).unwrap().workloads.contains(&Workload::Runs));
        assert!(!run(&["--workload", "core"])
            .unwrap()
            .workloads
            .contains(&Workload::Runs));
        let all = run(&["--workload", "all"]).unwrap().workloads;
        assert_eq!(all.len(), 23);
        assert!(all.contains(&Workload::Runs));
        for name in ["runs", "RUNS", "run", "diff-runs", "run_changes"] {
            assert_eq!(
                run(&["--workload", name]).unwrap().workloads,
                [Workload::Runs],
                "{name}"
            );
        }
        assert_eq!(Workload::Runs.name(), "runs");
        assert!(!Workload::Runs.is_write_only());
        assert!(!Workload::Runs.preloads());
        assert!(Workload::Runs.single_threaded());
        assert!(Workload::Runs.needs_disk());
        assert!(Workload::Runs.buffered_by_default());
    }

    #[test]
    fn readonly_options() {
        // Not in core, in all; ringlog's read-only open: on disk, Buffered by default, one
        // thread, its own build (no preload).
        assert!(!run(&[]).unwrap().workloads.contains(&Workload::ReadOnly));
        let all = run(&["--workload", "all"]).unwrap().workloads;
        assert!(all.contains(&Workload::ReadOnly));
        for name in [
            "readonly",
            "READONLY",
            "read-only",
            "read_only",
            "open-read-only",
        ] {
            assert_eq!(
                run(&["--workload", name]).unwrap().workloads,
                [Workload::ReadOnly],
                "{name}"
            );
        }
        assert_eq!(Workload::ReadOnly.name(), "readonly");
        assert_eq!(Workload::ReadOnly.to_string(), "readonly");
        assert!(!Workload::ReadOnly.is_write_only());
        assert!(!Workload::ReadOnly.has_writer());
        assert!(!Workload::ReadOnly.preloads());
        assert!(Workload::ReadOnly.single_threaded());
        assert!(Workload::ReadOnly.needs_disk());
        assert!(Workload::ReadOnly.buffered_by_default());
        // Sized by --keys (the records), as recover.
        let c = run(&["--workload", "readonly", "--keys", "1000000"]).unwrap();
        assert_eq!(c.keys, 1_000_000);
    }

    #[test]
    fn raft_options() {
        // Not in core, in all (last); appenders = --threads; on disk, Strict only; 1 KiB values
        // unless --value-size says otherwise.
        assert!(!run(&[]).unwrap().workloads.contains(&Workload::Raft));
        let all = run(&["--workload", "all"]).unwrap().workloads;
        assert_eq!(all.last(), Some(&Workload::Raft));
        for name in ["raft", "RAFT", "openraft", "raft-log", "raft_appends"] {
            assert_eq!(
                run(&["--workload", name]).unwrap().workloads,
                [Workload::Raft],
                "{name}"
            );
        }
        assert_eq!(Workload::Raft.name(), "raft");
        assert!(!Workload::Raft.is_write_only(), "no raw loop runs it");
        assert!(!Workload::Raft.has_writer());
        assert!(!Workload::Raft.preloads());
        assert!(!Workload::Raft.single_threaded());
        assert!(Workload::Raft.needs_disk());
        assert!(!Workload::Raft.buffered_by_default());
        assert!(Workload::Raft.strict_only());
        assert!(!Workload::FillRandom.strict_only());
        let c = run(&["--workload", "raft"]).unwrap();
        assert_eq!(c.threads, [1, 16]);
        assert_eq!(c.value_size_of(Workload::Raft), RAFT_VALUE_SIZE);
        assert_eq!(c.value_size_of(Workload::FillRandom), 100);
        let c = run(&["--workload", "raft", "--value-size", "4096"]).unwrap();
        assert_eq!(c.value_size_of(Workload::Raft), 4096);
    }

    #[test]
    fn cpu_load() {
        assert_eq!(run(&[]).unwrap().cpu_load, 0);
        assert_eq!(run(&["--cpu-load", "2"]).unwrap().cpu_load, 2);
        assert!(run(&["--cpu-load", "-1"]).is_err());
        assert!(run(&["--cpu-load", "5000"]).is_err());
    }

    #[test]
    fn lists_aliases_and_repeats() {
        // Blank items are skipped, repeats dropped, modes put in table order.
        let c = run(&[
            "--threads",
            " 16, 1,,16 ",
            "--durability",
            "strict,in-memory,all",
            "--workloads",
            "readseq,readreverse,scan",
            "--engine",
            "ringlog,ringlog",
        ])
        .unwrap();
        assert_eq!(c.threads, [16, 1]);
        assert_eq!(c.modes, Mode::ALL);
        assert_eq!(c.workloads, [Workload::Scan, Workload::ScanRev]);
        assert_eq!(c.engines, ["ringlog"]);
        // A repeated option: the last one wins; flags may repeat.
        let c = run(&["--threads", "2", "--threads", "3", "--quick", "--quick"]).unwrap();
        assert_eq!(c.threads, [3]);
        assert!(c.quick);
        // Both limits given: both kept; --quick caps them.
        let c = run(&["--ops", "9000", "--duration", "5", "--quick"]).unwrap();
        assert_eq!(
            (c.ops, c.duration, c.keys),
            (5000, Some(Duration::from_millis(300)), 5000)
        );
        let c = run(&[
            "--quick",
            "--no-progress",
            "--plot",
            "A.SVG",
            "--json",
            "x.json",
        ])
        .unwrap();
        assert_eq!(
            (c.ops, c.duration),
            (5000, Some(Duration::from_millis(300)))
        );
        assert!(!c.progress);
        assert_eq!(c.plot, Some(PathBuf::from("A.SVG")));
        assert_eq!(c.json, Some(PathBuf::from("x.json")));
    }

    #[test]
    fn help_documents_every_option_and_workload() {
        let Ok(Parsed::Help(text)) = parse(["--help"]) else {
            panic!("--help is not help")
        };
        for needle in [
            "--dir",
            "--workload",
            "--durability",
            "--io",
            "--threads",
            "--ops",
            "--duration",
            "--keys",
            "--key-size",
            "--value-size",
            "--batch",
            "--engines",
            "--json",
            "--plot",
            "--quick",
            "--no-progress",
            "--checkpoint-bytes",
            "--value-threshold",
            "--value-cache",
            "history",
            "ckptwrite",
            "coldread",
            "rmw",
            "--hot-keys",
            "max_attempts(1000)",
            "Db::run_changes",
            "Db::open_read_only",
            "flush_wal(true)",
            "mem-ceiling",
            "With no arguments",
            "1-1024",
            "readwhilewriting",
            "ycsba ... ycsbf",
            "readseq (scan)",
            "Exit status",
        ] {
            assert!(text.contains(needle), "--help lacks {needle:?}:\n{text}");
        }
    }

    /// The command lines of README.md, docs/BENCHMARKS.md and docs/DURABILITY.md. Peers not
    /// built into this binary are refused as such; without them the line parses.
    #[test]
    fn documented_command_lines_parse() {
        for line in [
            "--engines raw-odirect,ringlog,rocksdb,fjall --durability strict --workload fillrandom \
             --threads 1,16,64 --duration 3 --keys 100000",
            "--engines raw,ringlog,fjall,redb,sled,sqlite,rocksdb --durability strict \
             --workload fillrandom,fillbatch --threads 1,4,16,64 \
             --json docs/bench/strict.json --plot docs/bench/strict-sweep.svg",
            "--engines raw-odirect,ringlog,rocksdb --durability strict --workload fillrandom \
             --threads 1,16,64 --duration 3 --keys 100000 --json docs/bench/targets.json",
            "--engines ringlog,fjall,redb,sled,sqlite,rocksdb --durability inmemory,buffered \
             --workload fillseq,fillrandom,readrandom --threads 1 --ops 1000000 --keys 100000 \
             --duration 3 --json docs/bench/throughput.json",
            "--engines ringlog,fjall,redb,sled,sqlite,rocksdb --durability buffered \
             --workload recover --keys 1000000 --json docs/bench/recover.json",
            "--engines ringlog,fjall,redb,sled,sqlite,rocksdb --durability buffered,strict \
             --workload readwhilewriting,ycsb --threads 1,16 --ops 100000 --keys 50000 \
             --duration 0.5 --json docs/bench/ycsb.json",
            "--engines ringlog --durability inmemory,buffered \
             --workload fillseq,fillrandom,readrandom,scan,scanrev,readwhilewriting,snapshot \
             --threads 1,2 --ops 1000000 --keys 1000000",
            "--engines raw-odirect,ringlog --durability strict --workload fillrandom \
             --threads 1,16 --duration 3 --keys 100000",
            "--engines raw-odirect,ringlog --durability strict --workload fillrandom --threads 1 \
             --quick",
            "--durability inmemory --workload fillseq",
            "--engines raw-odirect,ringlog --durability strict \
             --workload fillrandom --threads 1,16 --duration 3 --io uring",
            "--engines raw-odirect,ringlog --durability strict \
             --workload fillrandom --threads 1,16 --duration 3 --io portable",
            "--engines ringlog,raw,peers",
            "--engines ringlog --workload history --keys 1000000 --ops 20000000 \
             --json docs/bench/history.json",
            "--engines ringlog,fjall,redb,sqlite,rocksdb --workload history --keys 1000000 \
             --ops 5000000 --json docs/bench/history-peers.json",
            "--engines raw-odirect,ringlog --durability buffered,strict \
             --workload fillrandom,ckptwrite --threads 1,16 --keys 1000000 --duration 8 \
             --json docs/bench/ckptwrite.json",
            "--engines ringlog --durability strict --workload fillrandom --threads 16 \
             --duration 3 --keys 100000 --checkpoint-bytes off",
            "--engines ringlog --workload readonly --keys 1000000",
            "--engines ringlog --workload readonly --keys 1000000 --io portable",
            "--engines ringlog --workload raft --threads 1,16 --duration 3",
            "--engines ringlog --workload raft --threads 1,16 --duration 3 --io portable",
            "--engines ringlog,rocksdb --workload raft --threads 1,16 --duration 3",
            "",
        ] {
            let args: Vec<&str> = line.split_whitespace().collect();
            let err = match parse(args.iter().copied()) {
                Ok(Parsed::Run(_)) => continue,
                Ok(Parsed::Help(_)) => panic!("{line}: help"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains("is not built into this binary"), "{line}: {err}");
            let engines = args.iter().position(|a| *a == "--engines").unwrap() + 1;
            let built: Vec<&str> = args[engines]
                .split(',')
                .filter(|e| !PEER_NAMES.contains(e) && *e != "peers")
                .collect();
            let mut args = args.clone();
            let built = built.join(",");
            args[engines] = &built;
            if let Err(e) = parse(args.iter().copied()) {
                panic!("{line} without peers: {e}");
            }
        }
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
            &["--threads", "1025"],
            &["--workload", "fillfast"],
            &["--durability", "maybe"],
            &["--io", "spdk"],
            &["--key-size", "4"],
            &["--key-size", "4097"],
            &["--value-size", "8"],
            &["--value-size", "1048577"],
            &["--batch", "-1"],
            &["--batch", "0"],
            &["--batch", "100001"],
            &["--engines", "mysql"],
            &["--plot", "out.png"],
            &["--quick=yes"],
            &["--frobnicate"],
            &["stray"],
            &["--duration", "-3"],
            &["--duration", "0"],
            &["--dir", ""],
            &["--keys", "2", "--threads", "4"],
            &["--quick", "--threads", "5001,1"],
            &["--checkpoint-bytes", "4k"],
            &["--checkpoint-bytes", "lots"],
            &["--checkpoint-bytes", "99999999999g"],
        ] {
            let err = match parse(bad.iter().copied()) {
                Err(e) => e,
                Ok(p) => panic!("{bad:?} was accepted: {p:?}"),
            };
            assert_eq!(err.exit_code(), 2, "{bad:?}: {err}");
        }
    }

    #[test]
    fn error_messages_name_the_problem() {
        let msg = |args: &[&str]| parse(args.iter().copied()).unwrap_err().to_string();
        assert!(msg(&["--threads", "0"]).contains("0 is out of range 1..=1024"));
        assert!(msg(&["--threads", ","]).contains("empty list"));
        assert!(msg(&["--ops", "ten"]).contains("\"ten\" is not a number"));
        assert!(msg(&["--workload", "fillfast"]).contains("unknown workload \"fillfast\""));
        assert!(msg(&["--plot", "out.png"]).contains("must end in .svg"));
        assert!(msg(&["--dir", ""]).contains("empty path"));
        assert!(msg(&["--io", "spdk"]).contains("uring, portable or auto"));
        assert!(msg(&["--batch", "-1"]).contains("\"-1\" is not a number"));
        assert!(msg(&["--duration", "-3"]).contains("-3 is out of range"));
        assert!(msg(&["--keys", "2", "--threads", "4"])
            .contains("--keys (2) must be at least the largest --threads (4)"));
    }
}
