//! What the harness needs from a storage engine, and the engines it knows.

use std::fmt;
use std::path::Path;

use crate::args::Workload;

/// Durability mode of a run, mapped onto each engine's strongest honest configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// Nothing written to disk.
    InMemory,
    /// Commits acknowledged before they are durable; the engine syncs in the background (or, for
    /// peers without a timer, only hands the bytes to the OS).
    Buffered,
    /// Every acknowledged commit is durable (covered by a completed fdatasync/fsync).
    Strict,
}

impl Mode {
    /// All three, in table order.
    pub const ALL: [Mode; 3] = [Mode::InMemory, Mode::Buffered, Mode::Strict];

    /// The name used on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Mode::InMemory => "inmemory",
            Mode::Buffered => "buffered",
            Mode::Strict => "strict",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error from an engine (the message names the operation).
#[derive(Debug)]
pub struct EngineError(pub String);

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EngineError {}

/// Result of engine operations.
pub type EResult<T> = Result<T, EngineError>;

/// Converts any displayable error, with context.
pub fn err(what: &str, e: impl fmt::Display) -> EngineError {
    EngineError(format!("{what}: {e}"))
}

/// Copies a value read into `out` (replacing its contents); returns whether there was one.
pub fn copy_value(out: &mut Vec<u8>, v: Option<&[u8]>) -> bool {
    match v {
        Some(v) => {
            out.clear();
            out.extend_from_slice(v);
            true
        }
        None => false,
    }
}

/// Times a snapshot's taking and its dropping around its use (`take`, then `use_it` on it, then
/// the drop): the body of every adapter's [`Engine::with_snapshot`]. The snapshot is dropped
/// before `use_it`'s error, if any, is returned.
pub fn time_snapshot<S>(
    take: impl FnOnce() -> EResult<S>,
    use_it: impl FnOnce(&S) -> EResult<()>,
) -> EResult<SnapCost> {
    let t0 = std::time::Instant::now();
    let snap = take()?;
    let t1 = std::time::Instant::now();
    let res = use_it(&snap);
    let t2 = std::time::Instant::now();
    drop(snap);
    let t3 = std::time::Instant::now();
    res?;
    Ok(SnapCost {
        take_ns: (t1 - t0).as_nanos() as u64,
        drop_ns: (t3 - t2).as_nanos() as u64,
    })
}

/// Feeds the items of a double-ended iterator to `each`, in order or reversed, until it returns
/// `false` (or an error); returns how many it fed. The loop every adapter's scan shares.
pub fn feed<I: DoubleEndedIterator>(
    it: I,
    reverse: bool,
    mut each: impl FnMut(I::Item) -> EResult<bool>,
) -> EResult<u64> {
    let mut n = 0;
    let mut step = |item| {
        n += 1;
        each(item)
    };
    if reverse {
        for item in it.rev() {
            if !step(item)? {
                break;
            }
        }
    } else {
        for item in it {
            if !step(item)? {
                break;
            }
        }
    }
    Ok(n)
}

/// Counters an engine can report about itself (cumulative since it was opened).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Transactions committed, if the engine counts them.
    pub commits: Option<u64>,
    /// fdatasync/fsync rounds (a group commit counts once), if the engine counts them.
    pub syncs: Option<u64>,
    /// Bytes the engine appended to its log (its own accounting), if it counts them.
    pub bytes_logged: Option<u64>,
    /// Checkpoints the engine wrote (explicit and background), if it counts them.
    pub checkpoints: Option<u64>,
    /// Log segments its compaction deleted, if it counts them.
    pub segments_deleted: Option<u64>,
    /// History trims it ran (ringlog: `Stats::trims`; under `--retention newer-than` each one
    /// that raises the floor also rewrites the MANIFEST), if it counts them.
    pub trims: Option<u64>,
}

/// What an engine's recovery at open reports about itself (ringlog: `RecoveryStats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryInfo {
    /// Time the engine says it spent recovering, ns.
    pub duration_ns: u64,
    /// LSN of the checkpoint it started from (0: none, the whole log was replayed).
    pub checkpoint_lsn: u64,
    /// Keys loaded from that checkpoint.
    pub checkpoint_keys: u64,
    /// Log segments replayed after it.
    pub segments: u64,
    /// Transactions replayed from the log.
    pub transactions: u64,
    /// LSN of the last transaction recovered.
    pub last_lsn: u64,
    /// Of `duration_ns`, where the engine says the time went: (waiting for reads, decoding the
    /// log, building the index), ns — ringlog's `RecoveryStats::read_time`, `decode_time`,
    /// `build_time`.
    pub split_ns: Option<(u64, u64, u64)>,
}

impl RecoveryInfo {
    /// "; read X ms, decode Y ms, build Z ms" when the engine reports its split.
    pub fn split_text(&self) -> String {
        self.split_ns.map_or(String::new(), |(r, d, b)| {
            format!(
                " (waiting for reads {:.0} ms, decoding the log {:.0} ms, building the index {:.0} ms)",
                r as f64 / 1e6,
                d as f64 / 1e6,
                b as f64 / 1e6
            )
        })
    }
}

/// What [`Engine::settle`] did: the engine's own checkpoint/compaction step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// What was called (`Db::checkpoint`, `compact_range`, ...).
    pub what: String,
    /// Bytes it wrote, when the engine says (ringlog: the checkpoint file).
    pub bytes_written: Option<u64>,
}

/// The size of an engine's in-memory index, as the engine accounts for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexMemory {
    /// Key-versions the index holds (tombstones included).
    pub versions: u64,
    /// Bytes of memory holding them.
    pub bytes: u64,
    /// Of `bytes`, the keys' and values' own bytes; the rest is overhead.
    pub payload: u64,
}

impl IndexMemory {
    /// Bytes of overhead per key-version: `(bytes - payload) / versions`.
    pub fn overhead_per_version(&self) -> Option<f64> {
        (self.versions > 0)
            .then(|| self.bytes.saturating_sub(self.payload) as f64 / self.versions as f64)
    }
}

/// An engine's account of its values kept on disk rather than in memory (ringlog:
/// `Options::value_threshold`), and of its live keys; cumulative since the open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskValues {
    /// Live keys (ringlog: `Stats::keys`).
    pub keys: u64,
    /// Values read from disk (cache misses; ringlog: `Stats::value_reads`).
    pub reads: u64,
    /// Bytes read from disk for them (ringlog: whole records, `Stats::value_read_bytes`).
    pub read_bytes: u64,
    /// Reads of values on disk served from the engine's cache (`Stats::value_cache_hits`).
    pub cache_hits: u64,
    /// Bytes the cache holds now (`Stats::value_cache_bytes`).
    pub cache_bytes: u64,
    /// Log segments kept because the index refers to values in them (`Stats::value_segments`).
    pub segments: u64,
}

/// What taking and dropping one snapshot cost, in nanoseconds (measured by the engine adapter
/// around the engine's own calls).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapCost {
    /// Taking the snapshot.
    pub take_ns: u64,
    /// Dropping (releasing) it.
    pub drop_ns: u64,
}

/// A consistent read-only view of an engine at one point of its commit order.
pub trait SnapView {
    /// Reads `key` as of the snapshot; on a hit, replaces `out`'s contents with the value.
    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> EResult<bool>;
    /// Visits the entries with keys in `[lo, hi)` as of the snapshot, in key order, until `f`
    /// returns false; returns how many were visited.
    fn scan_each(
        &self,
        lo: &[u8],
        hi: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> EResult<u64>;
}

/// Bounds of a full or partial scan: `lo` inclusive, `hi` exclusive, `None` = unbounded.
pub type ScanBounds<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// An open database under test. Shared by the worker threads.
pub trait Engine: Send + Sync {
    /// One put in its own transaction.
    fn put(&self, key: &[u8], value: &[u8]) -> EResult<()>;
    /// Several puts in one atomic transaction (one commit).
    fn put_batch(&self, items: &[(&[u8], &[u8])]) -> EResult<()>;
    /// Reads `key`; on a hit, replaces `out`'s contents with the value and returns true.
    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> EResult<bool>;
    /// Reads `keys` and calls `each(i, value)` for each, `i` its position in `keys`, in order
    /// (`None`: no value); the values are lent for the call only. The default reads them one
    /// after the other with [`Engine::get`]; engines with a batched read (ringlog:
    /// `Db::get_many`) use it.
    fn get_many(&self, keys: &[&[u8]], each: &mut dyn FnMut(usize, Option<&[u8]>)) -> EResult<()> {
        let mut buf = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let found = self.get(k, &mut buf)?;
            each(i, found.then_some(buf.as_slice()));
        }
        Ok(())
    }
    /// Reads up to `limit` entries in key order from `start` (inclusive) to `end` (exclusive);
    /// returns how many were read.
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> EResult<usize>;
    /// Visits the entries with keys in `bounds` in key order (descending when `reverse`) until
    /// `f` returns false; returns how many were visited. Engines that cannot scan say so
    /// through [`EngineKind::supports`].
    fn scan_each(
        &self,
        bounds: ScanBounds<'_>,
        reverse: bool,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> EResult<u64> {
        let _ = (bounds, reverse, f);
        Err(EngineError("this engine cannot scan".into()))
    }
    /// Takes a snapshot, runs `f` on it, drops it; returns what taking and dropping cost.
    fn with_snapshot(&self, f: &mut dyn FnMut(&dyn SnapView) -> EResult<()>) -> EResult<SnapCost> {
        let _ = f;
        Err(EngineError("this engine has no snapshots".into()))
    }
    /// The engine's own accounting of its index memory, if it has one.
    fn index_memory(&self) -> Option<IndexMemory> {
        None
    }
    /// The engine's account of its values on disk, if it keeps any there.
    fn disk_values(&self) -> Option<DiskValues> {
        None
    }
    /// The engine's own counters.
    fn counters(&self) -> Counters {
        Counters::default()
    }
    /// The I/O path actually in use, if the engine reports one.
    fn io_path(&self) -> Option<String> {
        None
    }
    /// What the engine's recovery at this open reports, if it reports anything.
    fn recovery(&self) -> Option<RecoveryInfo> {
        None
    }
    /// Runs the engine's own checkpoint / compaction step now, so that its files hold the live
    /// data as compactly as the engine keeps it (ringlog: `Db::checkpoint`, RocksDB: flush +
    /// full `compact_range`, SQLite: `wal_checkpoint(TRUNCATE)`, fjall: memtable flush + major
    /// compaction). `Ok(None)`: the engine has no such step here.
    fn settle(&self) -> EResult<Option<Settled>> {
        Ok(None)
    }
    /// Writes an online, consistent copy of the live database into the empty or missing
    /// directory `dest` (ringlog: `Db::backup_to`); returns the bytes it wrote. `Ok(None)`: the
    /// engine has no such call here.
    fn backup(&self, _dest: &Path) -> EResult<Option<u64>> {
        Ok(None)
    }
    /// The ringlog database itself, for the workloads that use its own API (`rmw`: optimistic
    /// transactions through `Db::transact`; `runs`: `Db::runs`, `run_changes`, `diff_runs`;
    /// `readonly`: the handles it opens itself, writable and read-only); `None` for every other
    /// engine.
    fn ringlog_db(&self) -> Option<&ringlog_db::Db> {
        None
    }
    /// Closes the engine: everything acknowledged is on disk afterwards (for persistent modes).
    fn close(self: Box<Self>) -> EResult<()>;
    /// Closes the engine and returns its counters and index memory as of the close. ringlog
    /// reads them after its close has joined its background thread, so that a background
    /// checkpoint still running at the end of the timed phase is counted whole (and, before
    /// commit 318a906, because `Db::stats` during a checkpoint could deadlock). The counters
    /// then include what the close itself wrote (ringlog: a closing lease record and a sync).
    fn close_with_stats(self: Box<Self>) -> EResult<(Counters, Option<IndexMemory>)> {
        let c = self.counters();
        let m = self.index_memory();
        self.close()?;
        Ok((c, m))
    }
}

/// An engine the harness can run: its name, what it supports, how it opens.
pub trait EngineKind: Sync {
    /// Name on the command line and in the output.
    fn name(&self) -> &'static str;
    /// The configuration used for `mode`, for the output; `None` if the engine has no honest
    /// configuration for that mode (the run is skipped and the reason printed).
    fn config(&self, mode: Mode) -> Result<String, String>;
    /// Whether the engine can run `workload` at all (raw loops cannot read, for example).
    fn supports(&self, workload: Workload) -> bool;
    /// True for the raw append loops (no group commit: they run single-stream only).
    fn is_raw(&self) -> bool {
        false
    }
    /// True when its engines have a checkpoint / compaction step ([`Engine::settle`]).
    fn can_settle(&self) -> bool {
        false
    }
    /// True when its engines hand out ringlog's optimistic transactions
    /// ([`Engine::ringlog_db`]): the `rmw` workload runs on those only.
    fn has_transactions(&self) -> bool {
        false
    }
    /// True when its engines keep a log of their runs, each open of the database
    /// ([`Engine::ringlog_db`]: `Db::runs`, `run_changes`, `diff_runs`): the `runs` workload runs
    /// on those only.
    fn has_runs(&self) -> bool {
        false
    }
    /// True when its databases can be opened read-only beside a writer (ringlog's
    /// `Db::open_read_only`): the `readonly` workload runs on those only.
    fn has_read_only(&self) -> bool {
        false
    }
    /// True when the `raft` workload has an openraft log store on it (ringlog's
    /// `ringlog_openraft::LogStore`; RocksDB's, as openraft's log-rocks example).
    fn has_raft_log(&self) -> bool {
        false
    }
    /// Opens (creating) the engine in the empty or previously used directory `dir`.
    fn open(&self, dir: &Path, mode: Mode, opts: &OpenOpts) -> EResult<Box<dyn Engine>>;
}

/// Harness settings engines may need at open.
#[derive(Clone, Debug)]
pub struct OpenOpts {
    /// ringlog's I/O path choice.
    pub io: ringlog_db::IoChoice,
    /// Largest batch the run will commit (raw loops size their buffers with it).
    pub max_batch: usize,
    /// Key and value sizes.
    pub key_size: usize,
    /// Value size in bytes.
    pub value_size: usize,
    /// ringlog's `Options::checkpoint_bytes` (`None`: its default).
    pub checkpoint_bytes: Option<u64>,
    /// ringlog's `Options::checkpoint_on_close` (`history` turns it off for its write phase, so
    /// that the open "as written" replays the log a crash would leave; its settle step is the
    /// checkpoint a clean close writes).
    pub checkpoint_on_close: bool,
    /// ringlog's `Options::rounds_in_flight` (`None`: its default).
    pub rounds_in_flight: Option<usize>,
    /// ringlog's `Options::value_threshold` (`None`: its default, every value in memory).
    pub value_threshold: Option<usize>,
    /// ringlog's `Options::value_cache_bytes` (`None`: its default).
    pub value_cache_bytes: Option<u64>,
    /// ringlog's retention policy, set after the open (`None`: its default).
    pub retention: Option<ringlog_db::Retention>,
}

/// Every engine compiled into this binary, in table order.
pub fn all_engines() -> Vec<&'static dyn EngineKind> {
    let mut v: Vec<&'static dyn EngineKind> = vec![&crate::engines::ringlog::RINGLOG];
    v.extend(
        crate::engines::raw::RAW_ENGINES
            .iter()
            .map(|e| e as &dyn EngineKind),
    );
    v.extend(crate::engines::peers::peers());
    v
}

/// Names of the peers this crate knows, whether compiled in or not (for error messages).
pub const PEER_NAMES: [&str; 5] = ["fjall", "redb", "sled", "sqlite", "rocksdb"];
