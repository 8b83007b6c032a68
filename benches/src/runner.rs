//! One run: an engine, a workload, a mode and a thread count, timed, measured and verified.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::args::{Config, Workload};
use crate::engine::{
    Counters, EResult, Engine, EngineError, EngineKind, IndexMemory, Mode, OpenOpts,
};
use crate::hist::Histogram;
use crate::keys::{Codec, Rng, Zipf};
use crate::sysinfo::{self, DiskStat, FlushRule};

mod coldread;
mod history;
mod raft;
mod readers;
mod readonly;
mod rmw;
mod runs;

pub use coldread::{ColdReadOut, Phase as ColdReadPhase, PreadFiles, BATCH};
pub use history::{ColdOpen, HistoryOut};
pub use raft::{
    ceiling_config as raft_ceiling_config, DbDelta as RaftDbDelta, Measure as RaftMeasure, RaftOut,
    Row as RaftRow, CEILING as RAFT_CEILING, MEM_MAX_ENTRIES as RAFT_MEM_MAX_ENTRIES,
    READ_CHUNK as RAFT_READ_CHUNK,
};
pub use readonly::{
    rows as readonly_rows, Live as ReadOnlyLive, LiveOpen as ReadOnlyLiveOpen, ReadOnlyOut,
    Series as ReadOnlySeries, Variant as ReadOnlyVariant, LIVE_PUTS_PER_SEC as READONLY_LIVE_RATE,
    OPENS as READONLY_OPENS, SAMPLE as READONLY_SAMPLE,
};
pub use rmw::{
    ratio as rmw_ratio, verdict as rmw_verdict, Phase as RmwPhase, RmwOut, Uncontended,
    Variant as RmwVariant, MAX_ATTEMPTS as RMW_MAX_ATTEMPTS, ROUNDS as RMW_ROUNDS,
    TARGET as RMW_TARGET,
};
pub use runs::{
    Call as RunsCall, ColdWarm as RunsColdWarm, RunsOut, PUTS_PER_TXN as RUNS_PUTS_PER_TXN, RUNS,
};

use readers::{SnapShared, WriterOut};
pub use readers::{GETS_PER_SNAPSHOT, GROUP, SCAN_GROUPS};

/// Test-only hooks (not reachable from the command line).
#[derive(Clone, Copy, Debug, Default)]
pub struct Hooks {
    /// Flip one byte of the first value read back by verification, to prove a wrong value fails
    /// the run.
    pub corrupt_one_read: bool,
    /// rmw: set one counter back by one increment in the database before the lost-update check,
    /// to prove a lost update fails the run.
    pub lose_one_update: bool,
}

/// Everything measured in one run.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Engine name.
    pub engine: String,
    /// The engine's configuration for the mode.
    pub config: String,
    /// The I/O path the engine reported.
    pub io_path: Option<String>,
    /// Workload.
    pub workload: Workload,
    /// Mode.
    pub mode: Mode,
    /// Threads (readers for readwhilewriting).
    pub threads: usize,
    /// Operations timed: puts, gets, YCSB operations, or records recovered.
    pub ops: u64,
    /// Transactions committed during the timed phase.
    pub commits: u64,
    /// Wall time of the timed phase.
    pub elapsed: Duration,
    /// Latency of each timed operation (each transaction for fillbatch; the reopen for recover).
    pub hist: Histogram,
    /// Key + value bytes put during the timed phase.
    pub user_bytes: u64,
    /// The engine's counters over the timed phase.
    pub engine_delta: Counters,
    /// Block-device counters over the timed phase (machine-wide).
    pub device: Option<DiskStat>,
    /// The device the counters come from.
    pub device_name: Option<String>,
    /// CPU time of the process over the timed phase.
    pub cpu: Duration,
    /// After close: apparent size of the database's files, and their extent up to the last
    /// non-zero byte.
    pub files: Option<(u64, u64)>,
    /// Key + value bytes written over the database's life (preload included).
    pub lifetime_user_bytes: u64,
    /// Keys read back and checked, or what was wrong.
    pub verified: Result<u64, String>,
    /// Whether a Strict run was seen to flush the device (None when not Strict or unknown).
    pub power_loss_durable: Option<bool>,
    /// Remarks for the closing notes.
    pub notes: Vec<String>,
    /// The engine's own account of its index memory after the timed phase.
    pub index: Option<IndexMemory>,
    /// Growth of the process's resident set over the run (open, preload and timed phase), bytes.
    pub rss_delta: Option<i64>,
    /// Distinct keys the database holds at the end of the timed phase.
    pub live_keys: u64,
    /// snapshot: cost of taking each snapshot and of dropping it (ns).
    pub snapshot_cost: Option<(Histogram, Histogram)>,
    /// readwhilewriting, snapshot: what the extra writer thread committed (puts, transactions).
    pub writer: Option<(u64, u64)>,
    /// scan, scanrev: time from the scan call to its first entry (ns), and scans completed.
    pub first_entry: Option<(Histogram, u64)>,
    /// CPU time of the threads issuing the timed operations (the writer excluded).
    pub worker_cpu: Duration,
    /// CPU time of the extra writer thread.
    pub writer_cpu: Option<Duration>,
    /// Bytes of checkpoint files the engine wrote during the timed phase, where known (ringlog
    /// in history and ckptwrite); counted into [`RunResult::write_amp`].
    pub checkpoint_bytes: Option<u64>,
    /// history: the cold open against its floor, and the space the files take.
    pub history: Option<HistoryOut>,
    /// ckptwrite: put latency without (`.0`) and with (`.1`) a thread checkpointing in a loop,
    /// the checkpoints taken, and the time they took (ns each).
    pub ckpt_write: Option<(Histogram, Histogram, Histogram)>,
    /// coldread: the cold open, cold gets and batched gets against their floors.
    pub cold_read: Option<ColdReadOut>,
    /// rmw: the contended transactions' conflicts and retries, the lost-update check, and the
    /// uncontended phases.
    pub rmw: Option<RmwOut>,
    /// runs: `Db::runs`, `run_changes` and `diff_runs`, cold and warm, against their floor.
    pub runs: Option<RunsOut>,
    /// readonly: `Db::open` against `Db::open_read_only`, cold and warm, and beside a live
    /// writer, against their floor; on a row of its own for each (see [`readonly_rows`]).
    pub readonly: Option<ReadOnlyOut>,
    /// raft: the store's appends and the in-memory ceiling's at the same appender count; on a
    /// row of its own each (see [`split_rows`]).
    pub raft: Option<RaftOut>,
}

/// A run's result as table rows: one per measurement for readonly, the ceiling's and the store's
/// for raft, the result itself otherwise.
pub fn split_rows(res: RunResult) -> Vec<RunResult> {
    readonly_rows(res)
        .into_iter()
        .flat_map(raft::rows)
        .collect()
}

impl RunResult {
    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        per_sec(self.ops, self.elapsed)
    }

    /// Index overhead per key-version (bytes beyond the keys and values), from the engine.
    pub fn index_overhead(&self) -> Option<f64> {
        self.index.and_then(|m| m.overhead_per_version())
    }

    /// Resident-set growth per live key (bytes).
    pub fn rss_per_key(&self) -> Option<f64> {
        let d = self.rss_delta?;
        (self.live_keys > 0).then(|| d as f64 / self.live_keys as f64)
    }

    /// Operations per CPU-second of the threads that issued them: throughput as if each thread
    /// had had a core of its own (on a shared machine, the fairer comparison between rows).
    pub fn ops_per_worker_cpu_sec(&self) -> Option<f64> {
        let s = self.worker_cpu.as_secs_f64();
        (s > 0.0 && self.workload != Workload::Recover).then(|| self.ops as f64 / s)
    }

    /// The extra writer's puts per second.
    pub fn writer_puts_per_sec(&self) -> Option<f64> {
        let (puts, _) = self.writer?;
        let s = self.elapsed.as_secs_f64();
        (s > 0.0).then(|| puts as f64 / s)
    }

    /// Engine syncs per commit over the timed phase.
    pub fn syncs_per_commit(&self) -> Option<f64> {
        let syncs = self.engine_delta.syncs?;
        let commits = self.engine_delta.commits.unwrap_or(self.commits);
        (commits > 0).then(|| syncs as f64 / commits as f64)
    }

    /// Engine log bytes, plus the checkpoint bytes it wrote where known, per user byte over the
    /// timed phase.
    pub fn write_amp(&self) -> Option<f64> {
        let b = self.engine_delta.bytes_logged? + self.checkpoint_bytes.unwrap_or(0);
        (self.user_bytes > 0).then(|| b as f64 / self.user_bytes as f64)
    }

    /// history: disk space of the database's files once settled (after the engine's own
    /// checkpoint/compaction step, or at close where it has none) per byte of live data.
    pub fn space_amp(&self) -> Option<f64> {
        self.history.as_ref().and_then(HistoryOut::space_amp)
    }

    /// File extent per user byte over the database's life.
    pub fn file_amp(&self) -> Option<f64> {
        let (_, used) = self.files?;
        (self.lifetime_user_bytes > 0).then(|| used as f64 / self.lifetime_user_bytes as f64)
    }

    /// Device (write requests, bytes, flushes) per commit.
    pub fn device_per_commit(&self) -> Option<(f64, f64, f64)> {
        let d = self.device?;
        if self.commits == 0 {
            return None;
        }
        let c = self.commits as f64;
        Some((
            d.writes as f64 / c,
            d.write_bytes as f64 / c,
            d.flushes as f64 / c,
        ))
    }
}

/// Per-thread outcome of the timed loop.
#[derive(Default)]
struct ThreadOut {
    hist: Histogram,
    ops: u64,
    commits: u64,
    user_bytes: u64,
    /// Versions of the thread's partition (index `idx / threads`), 0 = never written.
    versions: Vec<u32>,
    /// Keys this thread inserted with version 1 (fillseq/fillbatch/YCSB D, E).
    inserted: Vec<u64>,
    /// Reads that found nothing.
    misses: u64,
    /// First wrong value read in the timed loop.
    bad: Option<String>,
    error: Option<EngineError>,
    /// Full scans: time to the first entry of each scan, and scans completed.
    first: Histogram,
    scans: u64,
    /// Snapshots: cost of taking and of dropping each.
    snap_take: Histogram,
    snap_drop: Histogram,
    /// CPU time of the thread in its timed loop.
    cpu: Duration,
}

/// How the timed loop stops and reports progress.
struct Clock {
    deadline: Option<Instant>,
    stop: AtomicBool,
    progress: AtomicU64,
}

impl Clock {
    /// A clock that ends `duration` after `start` (never when `None`), not stopped yet.
    fn new(start: Instant, duration: Option<Duration>) -> Clock {
        Clock {
            deadline: duration.map(|d| start + d),
            stop: AtomicBool::new(false),
            progress: AtomicU64::new(0),
        }
    }

    #[inline]
    fn done(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d) || self.stop.load(Ordering::Relaxed)
    }
}

struct Ctx<'a> {
    engine: &'a dyn Engine,
    codec: &'a Codec,
    workload: Workload,
    threads: usize,
    keys: u64,
    batch: usize,
    per_thread: u64,
    clock: &'a Clock,
    zipf: Option<&'a Zipf>,
    /// Next key index to insert (YCSB D and E).
    next_insert: &'a AtomicU64,
    /// The snapshot workload's shared state.
    snap: Option<&'a SnapShared>,
    /// Time one operation in this many (`--latency-every`; 1: every one).
    latency_every: u64,
}

/// Number of keys thread `t` of `threads` owns among `0..keys` (those with `idx % threads == t`).
fn partition_len(keys: u64, threads: usize, t: usize) -> u64 {
    let t = t as u64;
    let n = threads as u64;
    if t >= keys {
        0
    } else {
        (keys - t).div_ceil(n)
    }
}

/// `n` per second of `d` (0 for no time).
pub fn per_sec(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

/// Operations thread `t` of `threads` runs of `total` (unbounded: `u64::MAX` each).
fn ops_share(total: u64, threads: usize, t: usize) -> u64 {
    let n = threads as u64;
    if total == u64::MAX {
        u64::MAX
    } else {
        total / n + u64::from((t as u64) < total % n)
    }
}

/// Loads `0..keys` with version 1 in transactions of up to 1000 puts (not timed).
fn preload(engine: &dyn Engine, codec: &Codec, keys: u64) -> EResult<u64> {
    const CHUNK: u64 = 1000;
    let mut kbufs: Vec<Vec<u8>> = Vec::new();
    let mut vbufs: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0;
    let mut start = 0;
    while start < keys {
        let end = (start + CHUNK).min(keys);
        kbufs.clear();
        vbufs.clear();
        for idx in start..end {
            kbufs.push(codec.key(idx));
            vbufs.push(codec.value(idx, 1));
        }
        let items: Vec<(&[u8], &[u8])> = kbufs
            .iter()
            .zip(&vbufs)
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        engine.put_batch(&items)?;
        bytes += (end - start) * (codec.key_size() + codec.value_size()) as u64;
        start = end;
    }
    Ok(bytes)
}

fn worker(ctx: &Ctx<'_>, t: usize) -> ThreadOut {
    let mut out = ThreadOut::default();
    let cpu0 = sysinfo::thread_cpu_time();
    if let Err(e) = worker_loop(ctx, t, &mut out) {
        out.error = Some(e);
        ctx.clock.stop.store(true, Ordering::Relaxed);
    }
    out.cpu = sysinfo::thread_cpu_time().saturating_sub(cpu0);
    out
}

fn worker_loop(ctx: &Ctx<'_>, t: usize, out: &mut ThreadOut) -> EResult<()> {
    match ctx.workload {
        Workload::Scan => return readers::scan_loop(ctx, t, false, out),
        Workload::ScanRev => return readers::scan_loop(ctx, t, true, out),
        Workload::Snapshot => return readers::snapshot_loop(ctx, t, out),
        _ => {}
    }
    let codec = ctx.codec;
    let engine = ctx.engine;
    let n = ctx.threads as u64;
    let mut rng = Rng::new(0x1000 + t as u64 * 7919 + ctx.workload as u64);
    let mut key = codec.key_buf();
    let mut key2 = codec.key_buf();
    let mut val = Vec::with_capacity(codec.value_size());
    let mut read = Vec::with_capacity(codec.value_size());
    let kv = (codec.key_size() + codec.value_size()) as u64;
    let part = partition_len(ctx.keys, ctx.threads, t);
    let preloaded = ctx.workload.preloads();
    if matches!(
        ctx.workload,
        Workload::FillRandom
            | Workload::Overwrite
            | Workload::YcsbA
            | Workload::YcsbB
            | Workload::YcsbF
    ) {
        out.versions = vec![u32::from(preloaded); part as usize];
    }
    let mut last = Instant::now();
    let mut done_ops = 0u64;
    // Items of one fillbatch transaction.
    let mut bkeys: Vec<Vec<u8>> = Vec::new();
    let mut bvals: Vec<Vec<u8>> = Vec::new();
    let mut seq = 0u64;
    let every = ctx.latency_every.max(1);
    while done_ops < ctx.per_thread {
        // With `every` above 1, only this operation is timed, from here: the clock's ordered
        // time-stamp read is not between the operations in between, so the processor may overlap
        // one's cache misses with the next one's (see the index_ceiling example).
        let timed = every == 1 || done_ops.is_multiple_of(every);
        if timed && every > 1 {
            last = Instant::now();
        }
        match ctx.workload {
            Workload::FillSeq => {
                let idx = t as u64 + n * seq;
                seq += 1;
                codec.set_key(&mut key, idx);
                codec.fill_value(&mut val, idx, 1);
                engine.put(&key, &val)?;
                out.inserted.push(idx);
                out.commits += 1;
                out.user_bytes += kv;
                done_ops += 1;
            }
            Workload::FillRandom | Workload::Overwrite => {
                let j = rng.below(part);
                let idx = t as u64 + n * j;
                let ver = out.versions[j as usize] + 1;
                codec.set_key(&mut key, idx);
                codec.fill_value(&mut val, idx, ver);
                engine.put(&key, &val)?;
                out.versions[j as usize] = ver;
                out.commits += 1;
                out.user_bytes += kv;
                done_ops += 1;
            }
            Workload::FillBatch => {
                let len = (ctx.batch as u64).min(ctx.per_thread - done_ops) as usize;
                bkeys.resize_with(len, || codec.key_buf());
                bvals.resize_with(len, Vec::new);
                for i in 0..len {
                    let idx = t as u64 + n * (seq + i as u64);
                    codec.set_key(&mut bkeys[i], idx);
                    codec.fill_value(&mut bvals[i], idx, 1);
                }
                let items: Vec<(&[u8], &[u8])> = bkeys[..len]
                    .iter()
                    .zip(&bvals[..len])
                    .map(|(k, v)| (k.as_slice(), v.as_slice()))
                    .collect();
                engine.put_batch(&items)?;
                for i in 0..len as u64 {
                    out.inserted.push(t as u64 + n * (seq + i));
                }
                seq += len as u64;
                out.commits += 1;
                out.user_bytes += kv * len as u64;
                done_ops += len as u64;
            }
            Workload::ReadRandom | Workload::ReadWhileWriting => {
                let idx = rng.below(ctx.keys);
                codec.set_key(&mut key, idx);
                check_read(engine, codec, &key, idx, &mut read, out, true)?;
                done_ops += 1;
            }
            Workload::YcsbA | Workload::YcsbB | Workload::YcsbC | Workload::YcsbF => {
                let zipf = ctx.zipf.ok_or_else(|| EngineError("no zipf".into()))?;
                let read_pct = match ctx.workload {
                    Workload::YcsbA | Workload::YcsbF => 50,
                    Workload::YcsbB => 95,
                    _ => 100,
                };
                let idx = zipf.scrambled(&mut rng);
                if rng.below(100) < read_pct {
                    codec.set_key(&mut key, idx);
                    check_read(engine, codec, &key, idx, &mut read, out, true)?;
                } else {
                    // Updates go to the thread's own partition (the neighbour of the drawn
                    // key) so that the last version of every key is known exactly.
                    let mut own = idx - idx % n + t as u64;
                    if own >= ctx.keys {
                        own -= n;
                    }
                    let j = own / n;
                    codec.set_key(&mut key, own);
                    if ctx.workload == Workload::YcsbF {
                        check_read(engine, codec, &key, own, &mut read, out, true)?;
                    }
                    let ver = out.versions[j as usize] + 1;
                    codec.fill_value(&mut val, own, ver);
                    engine.put(&key, &val)?;
                    out.versions[j as usize] = ver;
                    out.commits += 1;
                    out.user_bytes += kv;
                }
                done_ops += 1;
            }
            Workload::YcsbD | Workload::YcsbE => {
                let zipf = ctx.zipf.ok_or_else(|| EngineError("no zipf".into()))?;
                if rng.below(100) < 5 {
                    let idx = ctx.next_insert.fetch_add(1, Ordering::Relaxed);
                    codec.set_key(&mut key, idx);
                    codec.fill_value(&mut val, idx, 1);
                    engine.put(&key, &val)?;
                    out.inserted.push(idx);
                    out.commits += 1;
                    out.user_bytes += kv;
                } else if ctx.workload == Workload::YcsbD {
                    // Latest: Zipfian over the distance from the newest key.
                    let newest = ctx.next_insert.load(Ordering::Relaxed);
                    let idx = newest - 1 - zipf.rank(&mut rng).min(newest - 1);
                    codec.set_key(&mut key, idx);
                    // A key being inserted by another thread may not be visible yet.
                    check_read(engine, codec, &key, idx, &mut read, out, idx < ctx.keys)?;
                } else {
                    let start = zipf.scrambled(&mut rng);
                    let len = 1 + rng.below(100);
                    codec.set_key(&mut key, start);
                    codec.set_key(&mut key2, start + len);
                    let n = engine.scan(&key, &key2, len as usize)? as u64;
                    // Every preloaded key of the range is there, and nothing beyond the limit.
                    let preloaded = (start + len).min(ctx.keys).saturating_sub(start);
                    if (n < preloaded || n > len) && out.bad.is_none() {
                        out.bad = Some(format!(
                            "a scan of keys {start}..{} returned {n} entries: {preloaded} \
                             preloaded keys are in the range, the limit is {len}",
                            start + len
                        ));
                    }
                }
                done_ops += 1;
            }
            Workload::Recover
            | Workload::History
            | Workload::CkptWrite
            | Workload::ColdRead
            | Workload::Rmw
            | Workload::Runs
            | Workload::ReadOnly
            | Workload::Raft
            | Workload::Scan
            | Workload::ScanRev
            | Workload::Snapshot => {
                return Err(EngineError(format!("{} has no loop here", ctx.workload)))
            }
        }
        out.ops = done_ops;
        if done_ops & 1023 == 0 {
            ctx.clock.progress.fetch_add(1024, Ordering::Relaxed);
        }
        if timed {
            let now = Instant::now();
            out.hist.record((now - last).as_nanos() as u64);
            last = now;
            if ctx.clock.done(now) {
                break;
            }
        }
    }
    out.ops = done_ops;
    Ok(())
}

/// Reads `key` in the timed loop and checks the value's header names the key. A miss of a key
/// that must exist (`must_exist`) is counted.
fn check_read(
    engine: &dyn Engine,
    codec: &Codec,
    key: &[u8],
    idx: u64,
    buf: &mut Vec<u8>,
    out: &mut ThreadOut,
    must_exist: bool,
) -> EResult<()> {
    if engine.get(key, buf)? {
        if let Err(e) = codec.check_header(buf, idx) {
            if out.bad.is_none() {
                out.bad = Some(format!("key {idx}: {e}"));
            }
        }
    } else if must_exist {
        out.misses += 1;
    }
    Ok(())
}

/// The writer of readwhilewriting: overwrites random keys until `stop`.
fn background_writer(
    engine: &dyn Engine,
    codec: &Codec,
    keys: u64,
    stop: &AtomicBool,
) -> WriterOut {
    let mut out = WriterOut {
        versions: vec![1u32; keys as usize],
        puts: 0,
        commits: 0,
        bytes: 0,
        error: None,
        cpu: Duration::ZERO,
    };
    let mut rng = Rng::new(0xbeef);
    let mut key = codec.key_buf();
    let mut val = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let idx = rng.below(keys);
        let ver = out.versions[idx as usize] + 1;
        codec.set_key(&mut key, idx);
        codec.fill_value(&mut val, idx, ver);
        if let Err(e) = engine.put(&key, &val) {
            out.error = Some(e);
            break;
        }
        out.versions[idx as usize] = ver;
        out.puts += 1;
        out.commits += 1;
        out.bytes += (codec.key_size() + codec.value_size()) as u64;
    }
    out
}

/// What the run must read back: key index → version last written (absent = must be missing).
struct Expected {
    threads: usize,
    /// Per thread, versions of its partition.
    parts: Vec<Vec<u32>>,
    /// A version vector over all keys (readwhilewriting's writer).
    whole: Option<Vec<u32>>,
    /// Keys preloaded with version 1.
    preloaded: u64,
    /// Keys written once with version 1, sorted.
    inserted: Vec<u64>,
    /// Every key index that may hold something is below this.
    bound: u64,
}

impl Expected {
    /// Distinct keys that hold a value.
    fn distinct_keys(&self) -> u64 {
        if let Some(w) = &self.whole {
            return w.iter().filter(|&&v| v > 0).count() as u64;
        }
        let mut n = self.preloaded + self.inserted.len() as u64;
        for (t, part) in self.parts.iter().enumerate() {
            for (j, &v) in part.iter().enumerate() {
                let idx = t as u64 + j as u64 * self.threads as u64;
                if v > 0 && idx >= self.preloaded && self.inserted.binary_search(&idx).is_err() {
                    n += 1;
                }
            }
        }
        n
    }

    fn version(&self, idx: u64) -> Option<u32> {
        if let Some(w) = &self.whole {
            return w.get(idx as usize).copied().filter(|&v| v > 0);
        }
        let t = idx as usize % self.threads;
        let j = (idx / self.threads as u64) as usize;
        if let Some(&v) = self.parts.get(t).and_then(|p| p.get(j)) {
            if v > 0 {
                return Some(v);
            }
        }
        if idx < self.preloaded || self.inserted.binary_search(&idx).is_ok() {
            return Some(1);
        }
        None
    }
}

/// Reads back a sample and checks every byte: up to `sample` keys drawn from those that hold a
/// value (so that values are compared, not absences: a short run over a large key space writes
/// few of its keys), a quarter as many drawn from the whole key range, and keys beyond everything
/// written, which must be absent. Returns how many values were compared byte for byte (absent
/// keys are checked, not counted).
fn verify(
    engine: &dyn Engine,
    codec: &Codec,
    exp: &Expected,
    sample: u64,
    hooks: &Hooks,
) -> Result<u64, String> {
    let mut rng = Rng::new(0xc0ffee);
    let mut buf = Vec::new();
    let mut corrupt = hooks.corrupt_one_read;
    let mut compared = 0;
    let written: Vec<u64> = (0..exp.bound)
        .filter(|&i| exp.version(i).is_some())
        .collect();
    let mut keys: Vec<u64> = Vec::new();
    if !written.is_empty() {
        let n = written.len() as u64;
        keys.extend((0..sample.min(n)).map(|_| written[rng.below(n) as usize]));
    }
    keys.extend((0..(sample / 4).min(exp.bound)).map(|_| rng.below(exp.bound.max(1))));
    // Keys beyond everything written must be absent.
    keys.extend((0..16).map(|i| exp.bound + 1 + i * 7919));
    for idx in keys {
        let key = codec.key(idx);
        let found = engine
            .get(&key, &mut buf)
            .map_err(|e| format!("read-back of key {idx}: {e}"))?;
        if found && corrupt {
            corrupt = false;
            let i = buf.len() - 1;
            buf[i] ^= 0x40;
        }
        match (exp.version(idx), found) {
            (None, false) => {}
            (None, true) => return Err(format!("key {idx} was never written but reads back")),
            (Some(v), false) => {
                return Err(format!("key {idx} (version {v}) is missing"));
            }
            (Some(v), true) => {
                codec
                    .check(&buf, idx, v)
                    .map_err(|e| format!("key {idx}: {e}"))?;
                compared += 1;
            }
        }
    }
    Ok(compared)
}

/// Runs one (engine, workload, mode, threads) combination in a fresh directory `dir`.
#[allow(clippy::too_many_arguments)]
pub fn run_one(
    kind: &dyn EngineKind,
    workload: Workload,
    mode: Mode,
    threads: usize,
    cfg: &Config,
    dir: &Path,
    device: Option<&str>,
    flush_rule: FlushRule,
    hooks: &Hooks,
) -> Result<RunResult, EngineError> {
    let value_size = cfg.value_size_of(workload);
    let codec = Codec::new(cfg.key_size, value_size);
    let cold_read = workload == Workload::ColdRead;
    let opts = OpenOpts {
        io: cfg.io,
        max_batch: cfg.batch.max(1000),
        key_size: cfg.key_size,
        value_size,
        // `recover` measures a replay of the whole log: no background checkpoint unless
        // --checkpoint-bytes asks for one.
        checkpoint_bytes: match (workload, cfg.checkpoint_bytes) {
            (Workload::Recover, None) => Some(u64::MAX),
            (_, given) => given,
        },
        // The history workload's write phase closes without the close-time checkpoint: its
        // open "as written" then replays what a crash would leave (see history.rs); `recover`
        // too, so that its open replays the log rather than loading a checkpoint.
        checkpoint_on_close: !matches!(workload, Workload::History | Workload::Recover),
        rounds_in_flight: cfg.rounds_in_flight,
        // Values on disk: coldread's subject; the other workloads keep the engine's default
        // unless --value-threshold was given.
        value_threshold: if cold_read || cfg.value_threshold_given {
            cfg.value_threshold
        } else {
            None
        },
        value_cache_bytes: (cold_read || cfg.value_threshold_given).then_some(cfg.value_cache),
        retention: cfg.retention,
    };
    let config = kind.config(mode).map_err(EngineError)?;
    let mut res = RunResult {
        engine: kind.name().to_string(),
        config,
        io_path: None,
        workload,
        mode,
        threads,
        ops: 0,
        commits: 0,
        elapsed: Duration::ZERO,
        hist: Histogram::new(),
        user_bytes: 0,
        engine_delta: Counters::default(),
        device: None,
        device_name: device.map(str::to_string),
        cpu: Duration::ZERO,
        files: None,
        lifetime_user_bytes: 0,
        verified: Ok(0),
        power_loss_durable: None,
        notes: Vec::new(),
        index: None,
        rss_delta: None,
        live_keys: 0,
        snapshot_cost: None,
        writer: None,
        first_entry: None,
        worker_cpu: Duration::ZERO,
        writer_cpu: None,
        checkpoint_bytes: None,
        history: None,
        ckpt_write: None,
        cold_read: None,
        rmw: None,
        runs: None,
        readonly: None,
        raft: None,
    };
    if workload == Workload::Recover {
        run_recover(kind, mode, cfg, dir, device, &codec, &opts, hooks, &mut res)?;
    } else if workload == Workload::History {
        history::run_history(kind, mode, cfg, dir, device, &codec, &opts, hooks, &mut res)?;
    } else if cold_read {
        coldread::run_coldread(kind, mode, cfg, dir, device, &codec, &opts, hooks, &mut res)?;
    } else if workload == Workload::Rmw {
        rmw::run_rmw(
            kind, mode, threads, cfg, dir, device, &codec, &opts, hooks, &mut res,
        )?;
    } else if workload == Workload::Runs {
        runs::run_runs(kind, mode, cfg, dir, device, &codec, &opts, hooks, &mut res)?;
    } else if workload == Workload::Raft {
        raft::run_raft(kind, threads, cfg, dir, device, &opts, hooks, &mut res)?;
    } else if workload == Workload::ReadOnly {
        readonly::run_readonly(kind, mode, cfg, dir, device, &codec, &opts, hooks, &mut res)?;
    } else if workload == Workload::CkptWrite {
        history::run_ckptwrite(
            kind, mode, threads, cfg, dir, device, &codec, &opts, hooks, &mut res,
        )?;
    } else {
        run_timed(
            kind, workload, mode, threads, cfg, dir, device, &codec, &opts, hooks, &mut res,
        )?;
    }
    if mode == Mode::Strict && res.commits > 0 {
        if let Some(d) = res.device {
            // Each committing thread has at most one commit in flight, so one device flush can
            // cover at most that many commits: a Strict engine whose commits are really
            // durable on a write-back cache causes at least commits / writers flushes. Other
            // processes' flushes only add to the count (never a false alarm).
            let writers = workload.committers(threads);
            let enough = d.flushes * writers >= res.commits;
            res.power_loss_durable = match flush_rule {
                FlushRule::Required => Some(enough),
                FlushRule::NotNeeded => Some(true),
                FlushRule::Unknown => enough.then_some(true),
            };
        }
    }
    Ok(res)
}

fn disk(device: Option<&str>) -> Option<DiskStat> {
    device.and_then(|d| DiskStat::read(d).ok())
}

fn delta(after: Counters, before: Counters) -> Counters {
    let d = |a: Option<u64>, b: Option<u64>| Some(a?.saturating_sub(b?));
    Counters {
        commits: d(after.commits, before.commits),
        syncs: d(after.syncs, before.syncs),
        bytes_logged: d(after.bytes_logged, before.bytes_logged),
        checkpoints: d(after.checkpoints, before.checkpoints),
        segments_deleted: d(after.segments_deleted, before.segments_deleted),
        trims: d(after.trims, before.trims),
    }
}

#[allow(clippy::too_many_arguments)]
fn run_timed(
    kind: &dyn EngineKind,
    workload: Workload,
    mode: Mode,
    threads: usize,
    cfg: &Config,
    dir: &Path,
    device: Option<&str>,
    codec: &Codec,
    opts: &OpenOpts,
    hooks: &Hooks,
    res: &mut RunResult,
) -> Result<(), EngineError> {
    sysinfo::trim_heap();
    let rss0 = sysinfo::rss_bytes();
    let engine = kind.open(dir, mode, opts)?;
    res.io_path = engine.io_path();
    let keys = cfg.keys;
    let snap_shared = (workload == Workload::Snapshot).then(|| SnapShared::new(keys));
    if workload.preloads() {
        res.lifetime_user_bytes += preload(&*engine, codec, keys)?;
    }
    let zipf = matches!(
        workload,
        Workload::YcsbA
            | Workload::YcsbB
            | Workload::YcsbC
            | Workload::YcsbD
            | Workload::YcsbE
            | Workload::YcsbF
    )
    .then(|| Zipf::new(keys));
    let next_insert = AtomicU64::new(keys);
    let total = cfg.ops;
    let per = |t: usize| ops_share(total, threads, t);
    let c0 = engine.counters();
    let d0 = disk(device);
    let cpu0 = sysinfo::cpu_time();
    let start = Instant::now();
    let clock = Clock::new(start, cfg.duration);
    let writer_stop = AtomicBool::new(false);
    let label = format!("{} {} {} x{}", mode, workload, kind.name(), threads);
    let (outs, writer, elapsed) = std::thread::scope(|s| {
        let prog = progress(s, cfg, &clock, &label, start);
        let writer = workload.has_writer().then(|| {
            let engine = &*engine;
            let stop = &writer_stop;
            let shared = snap_shared.as_ref();
            s.spawn(move || {
                let cpu0 = sysinfo::thread_cpu_time();
                let mut w = match shared {
                    Some(sh) => readers::snapshot_writer(engine, codec, keys, sh, stop),
                    None => background_writer(engine, codec, keys, stop),
                };
                w.cpu = sysinfo::thread_cpu_time().saturating_sub(cpu0);
                w
            })
        });
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let ctx = Ctx {
                    engine: &*engine,
                    codec,
                    workload,
                    threads,
                    keys,
                    batch: cfg.batch,
                    per_thread: per(t),
                    clock: &clock,
                    zipf: zipf.as_ref(),
                    next_insert: &next_insert,
                    snap: snap_shared.as_ref(),
                    latency_every: cfg.latency_every,
                };
                s.spawn(move || worker(&ctx, t))
            })
            .collect();
        let outs: Vec<ThreadOut> = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| ThreadOut {
                    error: Some(EngineError("a worker thread panicked".into())),
                    ..ThreadOut::default()
                })
            })
            .collect();
        // The timed interval ends when the last worker does: not after the background writer's
        // last operation, nor after the progress thread's wake-up.
        let elapsed = start.elapsed();
        writer_stop.store(true, Ordering::Relaxed);
        let writer = writer.map(|h| h.join());
        prog.stop(&clock);
        (outs, writer, elapsed)
    });
    res.elapsed = elapsed;
    res.cpu = sysinfo::cpu_time().saturating_sub(cpu0);
    let d1 = disk(device);
    let rss1 = sysinfo::rss_bytes();
    res.rss_delta = rss0.zip(rss1).map(|(a, b)| b as i64 - a as i64);
    res.index = engine.index_memory();
    let c1 = engine.counters();
    res.device = d0.zip(d1).map(|(a, b)| b.since(&a));
    res.engine_delta = delta(c1, c0);
    if res.engine_delta.commits.is_none() && c1.syncs.is_some() {
        res.engine_delta.commits = Some(0);
    }

    let mut exp = Expected {
        threads,
        parts: Vec::new(),
        whole: None,
        preloaded: if workload.preloads() { keys } else { 0 },
        inserted: Default::default(),
        bound: keys,
    };
    let mut first_error = None;
    let mut bad = None;
    let mut misses = 0;
    let mut first = Histogram::new();
    let mut scans = 0;
    let mut take = Histogram::new();
    let mut release = Histogram::new();
    for o in outs {
        first.merge(&o.first);
        res.worker_cpu += o.cpu;
        scans += o.scans;
        take.merge(&o.snap_take);
        release.merge(&o.snap_drop);
        res.hist.merge(&o.hist);
        res.ops += o.ops;
        res.commits += o.commits;
        res.user_bytes += o.user_bytes;
        misses += o.misses;
        if bad.is_none() {
            bad = o.bad;
        }
        if first_error.is_none() {
            first_error = o.error;
        }
        exp.parts.push(o.versions);
        exp.inserted.extend(o.inserted);
    }
    if workload.is_scan() {
        res.first_entry = Some((first, scans));
    }
    if workload == Workload::Snapshot {
        res.snapshot_cost = Some((take, release));
    }
    if let Some(w) = writer {
        match w {
            Ok(w) => {
                res.writer = Some((w.puts, w.commits));
                res.writer_cpu = Some(w.cpu);
                res.commits += w.commits;
                res.user_bytes += w.bytes;
                exp.whole = Some(w.versions);
                if first_error.is_none() {
                    first_error = w.error;
                }
            }
            Err(_) => first_error = Some(EngineError("the writer thread panicked".into())),
        }
    }
    let notes = extra_notes(res);
    res.notes.extend(notes);
    if let Some(e) = first_error {
        let _ = engine.close();
        return Err(e);
    }
    res.lifetime_user_bytes += res.user_bytes;
    exp.inserted.sort_unstable();
    if let Some(&m) = exp.inserted.last() {
        exp.bound = exp.bound.max(m + 1);
    }
    if workload == Workload::YcsbD || workload == Workload::YcsbE {
        exp.bound = exp.bound.max(next_insert.load(Ordering::Relaxed));
    }
    res.live_keys = exp.distinct_keys();
    if misses > 0 {
        res.notes
            .push(format!("{misses} reads of loaded keys found nothing"));
    }
    res.verified = match bad {
        Some(b) => Err(format!(
            "a read in the timed loop returned a wrong value: {b}"
        )),
        None if misses > 0 => Err(format!("{misses} reads of loaded keys found nothing")),
        None => verify(&*engine, codec, &exp, 1000, hooks),
    };
    engine.close()?;
    res.files = sysinfo::dir_bytes(dir).ok();
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_recover(
    kind: &dyn EngineKind,
    mode: Mode,
    cfg: &Config,
    dir: &Path,
    device: Option<&str>,
    codec: &Codec,
    opts: &OpenOpts,
    hooks: &Hooks,
    res: &mut RunResult,
) -> Result<(), EngineError> {
    let records = cfg.keys;
    // Creating the database: the open of an empty directory, and what it leaves on disk.
    let created = Instant::now();
    let engine = kind.open(dir, mode, opts)?;
    let create = created.elapsed();
    if let Ok(sp) = sysinfo::dir_space(dir) {
        res.notes.push(format!(
            "creating the database (opening the empty directory) took {:.1} ms and left {} bytes \
             in {} files ({} allocated)",
            create.as_secs_f64() * 1e3,
            sp.apparent,
            sp.files,
            sp.allocated
        ));
    }
    let written = preload(&*engine, codec, records)?;
    res.lifetime_user_bytes = written;
    engine.close()?;
    match sysinfo::evict(dir) {
        Ok(_) => res
            .notes
            .push("cold: the database's files were dropped from the page cache (fadvise DONTNEED) before the reopen".into()),
        Err(e) => res
            .notes
            .push(format!("warm: could not drop the files from the page cache ({e})")),
    }
    let last = records - 1;
    let key = codec.key(last);
    let mut buf = Vec::new();
    sysinfo::trim_heap();
    let rss0 = sysinfo::rss_bytes();
    let d0 = disk(device);
    let cpu0 = sysinfo::cpu_time();
    let start = Instant::now();
    let engine = kind.open(dir, mode, opts)?;
    let found = engine.get(&key, &mut buf)?;
    res.elapsed = start.elapsed();
    res.rss_delta = rss0
        .zip(sysinfo::rss_bytes())
        .map(|(a, b)| b as i64 - a as i64);
    res.index = engine.index_memory();
    res.live_keys = records;
    res.cpu = sysinfo::cpu_time().saturating_sub(cpu0);
    res.device = d0.zip(disk(device)).map(|(a, b)| b.since(&a));
    res.io_path = engine.io_path();
    if let Some(r) = engine.recovery() {
        res.notes.push(format!(
            "the engine's recovery took {:.0} ms{}",
            r.duration_ns as f64 / 1e6,
            r.split_text()
        ));
    }
    res.hist.record(res.elapsed.as_nanos() as u64);
    res.ops = records;
    res.verified = if !found {
        Err(format!(
            "the last record (key {last}) is missing after the reopen"
        ))
    } else if let Err(e) = codec.check(&buf, last, 1) {
        Err(format!("the last record (key {last}): {e}"))
    } else {
        // Every record, not a sample.
        let exp = Expected {
            threads: 1,
            parts: Vec::new(),
            whole: None,
            preloaded: records,
            inserted: Default::default(),
            bound: records,
        };
        verify_all(&*engine, codec, &exp, hooks)
    };
    engine.close()?;
    res.files = sysinfo::dir_bytes(dir).ok();
    Ok(())
}

/// Notes about what a run measured beside its table row.
fn extra_notes(res: &RunResult) -> Vec<String> {
    let mut notes = Vec::new();
    let secs = res.elapsed.as_secs_f64().max(1e-9);
    if let Some((puts, commits)) = res.writer {
        let per_cpu = res
            .writer_cpu
            .map(|c| puts as f64 / c.as_secs_f64().max(1e-9))
            .unwrap_or(0.0);
        notes.push(if res.workload == Workload::Snapshot {
            format!(
                "the writer thread committed {puts} puts ({:.0}/s, {per_cpu:.0} per CPU-second \
                 of its own) in {commits} transactions of {GROUP} during the reads",
                puts as f64 / secs
            )
        } else {
            format!(
                "the writer thread committed {puts} overwrites ({:.0}/s, {per_cpu:.0} per \
                 CPU-second of its own) during the reads",
                puts as f64 / secs
            )
        });
        if let Some(r) = res.ops_per_worker_cpu_sec() {
            notes.push(format!(
                "the readers: {r:.0} reads per CPU-second of their own ({:.2} CPU-seconds)",
                res.worker_cpu.as_secs_f64()
            ));
        }
    }
    if let Some((take, release)) = &res.snapshot_cost {
        notes.push(format!(
            "{} snapshots; taking one: p50 {} ns, p99 {} ns, mean {:.0} ns; dropping one: p50 \
             {} ns (each around two clock reads)",
            take.count(),
            take.percentile(50.0),
            take.percentile(99.0),
            take.mean(),
            release.percentile(50.0)
        ));
    }
    if let Some((first, scans)) = &res.first_entry {
        notes.push(format!(
            "{scans} full scans completed; first entry after p50 {} µs (max {} µs) of {} scans \
             started",
            crate::report::us(first.percentile(50.0)),
            crate::report::us(first.max()),
            first.count()
        ));
    }
    notes
}

fn verify_all(
    engine: &dyn Engine,
    codec: &Codec,
    exp: &Expected,
    hooks: &Hooks,
) -> Result<u64, String> {
    let mut buf = Vec::new();
    let mut key = codec.key_buf();
    let mut corrupt = hooks.corrupt_one_read;
    for idx in 0..exp.bound {
        codec.set_key(&mut key, idx);
        if !engine
            .get(&key, &mut buf)
            .map_err(|e| format!("read-back of key {idx}: {e}"))?
        {
            return Err(format!("record {idx} is missing after recovery"));
        }
        if corrupt {
            corrupt = false;
            buf[0] ^= 1;
        }
        codec
            .check(&buf, idx, exp.version(idx).unwrap_or(1))
            .map_err(|e| format!("record {idx}: {e}"))?;
    }
    Ok(exp.bound)
}

/// A progress line on stderr for runs longer than two seconds, when stderr is a terminal.
fn progress<'s>(
    s: &'s std::thread::Scope<'s, '_>,
    cfg: &Config,
    clock: &'s Clock,
    label: &str,
    start: Instant,
) -> Progress<'s> {
    if !cfg.progress || !std::io::stderr().is_terminal() {
        return Progress(None);
    }
    spawn_progress(s, cfg, clock, label, start, PROGRESS_TICK)
}

/// How often the progress line is redrawn.
const PROGRESS_TICK: Duration = Duration::from_millis(100);

/// The thread drawing a run's progress line ([`progress`]), if any.
struct Progress<'s>(Option<std::thread::ScopedJoinHandle<'s, ()>>);

impl Progress<'_> {
    /// Stops the progress line at once — its thread is woken, not left to finish its tick, so a
    /// caller that waits for it loses no time — and waits for the thread.
    fn stop(self, clock: &Clock) {
        clock.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.0 {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

/// Starts the progress thread, redrawing every `tick` until [`Progress::stop`].
fn spawn_progress<'s>(
    s: &'s std::thread::Scope<'s, '_>,
    cfg: &Config,
    clock: &'s Clock,
    label: &str,
    start: Instant,
    tick: Duration,
) -> Progress<'s> {
    let label = label.to_string();
    let total = cfg.ops;
    let limit = cfg.duration;
    Progress(Some(s.spawn(move || {
        let mut shown = false;
        while !clock.stop.load(Ordering::Relaxed) {
            // Woken early by `Progress::stop` (or spuriously: the loop looks again).
            std::thread::park_timeout(tick);
            if clock.stop.load(Ordering::Relaxed) {
                break;
            }
            let el = start.elapsed();
            if el < Duration::from_secs(2) {
                continue;
            }
            shown = true;
            let done = clock.progress.load(Ordering::Relaxed);
            let frac = match (limit, total) {
                (Some(l), t) => {
                    let by_time = el.as_secs_f64() / l.as_secs_f64();
                    if t == u64::MAX {
                        by_time
                    } else {
                        by_time.max(done as f64 / t as f64)
                    }
                }
                (None, t) => done as f64 / t as f64,
            }
            .min(1.0);
            let width = 30;
            let filled = (frac * width as f64) as usize;
            eprint!(
                "\r\x1b[K{label} [{}{}] {:>3.0}% {done} ops {:.1} s",
                "#".repeat(filled),
                ".".repeat(width - filled),
                frac * 100.0,
                el.as_secs_f64()
            );
        }
        if shown {
            eprint!("\r\x1b[K");
        }
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stopping the progress line wakes its thread: a run's timed interval never waits for the
    /// thread's next tick. With a tick of a day, a stop that only set the flag would hang here.
    #[test]
    fn the_progress_thread_stops_at_once() {
        let start = Instant::now();
        let clock = Clock::new(start, None);
        let cfg = Config::default();
        std::thread::scope(|s| {
            let p = spawn_progress(s, &cfg, &clock, "test", start, Duration::from_secs(86_400));
            assert!(p.0.is_some());
            p.stop(&clock);
        });
        assert!(clock.stop.load(Ordering::Relaxed));
    }

    #[test]
    fn partitions_cover_the_key_space() {
        for keys in [1u64, 7, 16, 100] {
            for threads in [1usize, 3, 16] {
                let sum: u64 = (0..threads).map(|t| partition_len(keys, threads, t)).sum();
                assert_eq!(sum, keys, "{keys} keys / {threads}");
            }
        }
    }
}
