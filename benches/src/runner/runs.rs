//! `runs`: ringlog's log of runs (each open of a database is a run), ringlog only: `Db::runs`,
//! `Db::run_changes` and `Db::diff_runs` through its public API, against the floor of reading the
//! log's segment files.
//!
//! 1. **Build.** [`RUNS`] runs, each an open, `Db::label_run("run-i")`, `--ops / RUNS`
//!    transactions of [`PUTS_PER_TXN`] puts of distinct random keys of `--keys` (the harness's
//!    self-describing values, [`Codec`], each key's version counting its puts over every run),
//!    and a close. Background checkpoints are off and the close writes no checkpoint, so
//!    compaction never removes a segment: the log keeps every run whole. `--duration` bounds each
//!    run's writes to a [`RUNS`]th of it.
//! 2. **Reads.** A reopen; then, each after the directory's files are dropped from the page cache
//!    (cold), then all again without (warm): a sequential read of the segment files up to their
//!    last non-zero byte in 1 MiB reads (the floor), `Db::runs()`, `Db::run_changes` of the middle
//!    run (`run-2`) iterated to its end, and `Db::diff_runs` of the first and the last run. Each
//!    is reported as wall time, log megabytes per second and log transactions per second; the
//!    table's row is the cold `Db::runs()`, its floor the cold sequential read.
//! 3. **Checks.** `Db::runs()` must list the [`RUNS`] runs in order, with their labels, complete,
//!    each with the commits written (any other run it lists must have committed nothing: the
//!    reopen's own); `run_changes` of the middle run must yield exactly its transactions, each
//!    with its [`PUTS_PER_TXN`] puts, and the last write of each key it wrote byte for byte;
//!    `diff_runs` must list exactly the keys the first or the last run wrote, each side byte for
//!    byte (versions only grow, so every such key differs); the warm calls must return what the
//!    cold ones did; and a sample of the database's keys is read back. A mismatch fails the run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ringlog_db::{Change, KeyDiff, RunInfo, Written};

use super::{disk, verify, Expected, Hooks, RunResult};
use crate::args::Config;
use crate::engine::{err, EResult, Engine, EngineError, EngineKind, Mode, OpenOpts};
use crate::keys::{Codec, Rng};
use crate::report::{thousands, Floor};
use crate::sysinfo::{self, DiskStat};

/// Runs built.
pub const RUNS: usize = 4;
/// Puts per transaction (distinct keys).
pub const PUTS_PER_TXN: usize = 4;

/// One timed call.
#[derive(Clone, Copy, Debug, Default)]
pub struct Call {
    /// Its wall time.
    pub time: Duration,
    /// CPU time of the process during it (all threads, io_uring workers included).
    pub cpu: Duration,
    /// CPU time of the calling thread.
    pub thread_cpu: Duration,
    /// What the block device did during it (machine-wide).
    pub device: Option<DiskStat>,
}

/// A call timed cold (the files dropped from the page cache first) and then warm.
#[derive(Clone, Copy, Debug, Default)]
pub struct ColdWarm {
    /// The first call, after dropping the files from the page cache.
    pub cold: Call,
    /// The same call again later, the files in the page cache.
    pub warm: Call,
}

/// What the runs workload measured.
#[derive(Clone, Debug, Default)]
pub struct RunsOut {
    /// Runs built.
    pub runs: usize,
    /// Puts per transaction.
    pub puts_per_txn: usize,
    /// Keys the puts chose among.
    pub keys: u64,
    /// Key size in bytes.
    pub key_size: usize,
    /// Value size in bytes.
    pub value_size: usize,
    /// `Db::run_id` of each run built.
    pub run_ids: Vec<u64>,
    /// Transactions each run committed.
    pub txns: Vec<u64>,
    /// Wall time of the build (every open, label, write and close).
    pub build: Duration,
    /// The reopen before the reads (replaying the whole log: there is no checkpoint).
    pub reopen: Duration,
    /// Segment files (`*.log`) in the directory after the build.
    pub segments: usize,
    /// Their bytes up to their last non-zero byte: what a scan of the log reads.
    pub log_bytes: u64,
    /// Transactions of user writes the log holds (the commits `Db::runs()` listed, in all).
    pub log_txns: u64,
    /// Whether the files could be dropped from the page cache before each cold call.
    pub cold: bool,
    /// The sequential read of the segment files.
    pub floor: ColdWarm,
    /// `Db::runs()`.
    pub list: ColdWarm,
    /// `Db::run_changes` of the middle run, iterated to its end.
    pub changes: ColdWarm,
    /// `Db::diff_runs` of the first and the last run.
    pub diff: ColdWarm,
    /// Index of the run `run_changes` read.
    pub middle: usize,
    /// Transactions it yielded.
    pub changes_yielded: u64,
    /// Distinct keys they wrote.
    pub changes_keys: u64,
    /// Growth of the resident set from before the cold `run_changes` call to its return (before
    /// the iteration), bytes: the call reads every change of the run before it yields one.
    pub changes_rss: Option<i64>,
    /// Keys `diff_runs` listed.
    pub diff_keys: u64,
    /// What the cold `Db::runs()` returned.
    pub listed: Vec<RunInfo>,
}

impl RunsOut {
    /// Log megabytes (10^6 B) per second of `c`.
    pub fn mb_per_sec(&self, c: &Call) -> f64 {
        self.log_bytes as f64 / 1e6 / c.time.as_secs_f64().max(1e-9)
    }

    /// Log transactions per second of `c`.
    pub fn txns_per_sec(&self, c: &Call) -> f64 {
        self.log_txns as f64 / c.time.as_secs_f64().max(1e-9)
    }

    /// `c`'s time ÷ `floor`'s.
    pub fn ratio(c: &Call, floor: &Call) -> Option<f64> {
        let f = floor.time.as_secs_f64();
        (f > 0.0).then(|| c.time.as_secs_f64() / f)
    }

    /// The cold sequential read as the table's ×floor and p50× columns use it (ops: the log's
    /// transactions).
    pub fn floor(&self) -> Option<Floor> {
        let c = &self.floor.cold;
        (self.log_txns > 0 && c.time > Duration::ZERO).then(|| Floor {
            ops_per_sec: self.txns_per_sec(c),
            p50: c.time.as_nanos() as u64,
        })
    }
}

/// Times `f`.
pub(super) fn timed<T>(device: Option<&str>, f: impl FnOnce() -> T) -> (T, Call) {
    let d0 = disk(device);
    let cpu0 = sysinfo::cpu_time();
    let tcpu0 = sysinfo::thread_cpu_time();
    let t0 = Instant::now();
    let r = f();
    let time = t0.elapsed();
    let call = Call {
        time,
        cpu: sysinfo::cpu_time().saturating_sub(cpu0),
        thread_cpu: sysinfo::thread_cpu_time().saturating_sub(tcpu0),
        device: d0.zip(disk(device)).map(|(a, b)| b.since(&a)),
    };
    (r, call)
}

/// Drops the directory's files from the page cache; false (and a note) if it cannot.
pub(super) fn drop_cache(dir: &Path, notes: &mut Vec<String>) -> bool {
    match sysinfo::evict(dir) {
        Ok(_) => true,
        Err(e) => {
            let n = format!("warm: could not drop the files from the page cache ({e})");
            if !notes.contains(&n) {
                notes.push(n);
            }
            false
        }
    }
}

/// The segment files of the directory (`<id>.log`) with their bytes up to their last non-zero
/// byte, in name (= id) order.
pub(super) fn segment_files(dir: &Path) -> std::io::Result<Vec<(PathBuf, u64)>> {
    Ok(sysinfo::file_extents(dir)?
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "log"))
        .collect())
}

/// The versions each key was left at, over the whole build and by the runs checked.
struct Built {
    /// Every key's last version (0: never written).
    versions: Vec<u32>,
    /// Per run, when checked (the first, the middle and the last): each key's last version in
    /// that run (0: the run did not write it).
    by_run: Vec<Option<Vec<u32>>>,
}

/// The runs workload; see the module's documentation and the crate's `--help`.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_runs(
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
    // No checkpoint ever: compaction would remove the segments of the first runs.
    let opts = &OpenOpts {
        checkpoint_bytes: Some(u64::MAX),
        checkpoint_on_close: false,
        ..opts.clone()
    };
    let keys = cfg.keys;
    let middle = RUNS / 2;
    let mut out = RunsOut {
        runs: RUNS,
        puts_per_txn: PUTS_PER_TXN.min(keys as usize),
        keys,
        key_size: codec.key_size(),
        value_size: codec.value_size(),
        middle,
        ..RunsOut::default()
    };
    let mut built = Built {
        versions: vec![0; keys as usize],
        by_run: (0..RUNS)
            .map(|i| (i == 0 || i == middle || i == RUNS - 1).then(|| vec![0; keys as usize]))
            .collect(),
    };

    // 1. The build: RUNS opens, each labelled, written and closed.
    let kv = (codec.key_size() + codec.value_size()) as u64;
    let mut rng = Rng::new(0x2a45_0000 + keys);
    let started = Instant::now();
    for i in 0..RUNS {
        let engine = kind.open(dir, mode, opts)?;
        res.io_path = engine.io_path();
        match write_run(&*engine, cfg, codec, i, &mut rng, &mut built, &out) {
            Ok((id, n)) => {
                out.run_ids.push(id);
                out.txns.push(n);
            }
            Err(e) => {
                let _ = engine.close();
                return Err(e);
            }
        }
        engine.close()?;
    }
    out.build = started.elapsed();
    let written: u64 = out.txns.iter().sum();
    res.lifetime_user_bytes = written * out.puts_per_txn as u64 * kv;
    res.live_keys = built.versions.iter().filter(|&&v| v > 0).count() as u64;
    let segs =
        segment_files(dir).map_err(|e| EngineError(format!("listing the segment files: {e}")))?;
    out.segments = segs.len();
    out.log_bytes = segs.iter().map(|(_, b)| b).sum();

    // 2. The reopen, then the calls.
    sysinfo::trim_heap();
    let rss0 = sysinfo::rss_bytes();
    let t0 = Instant::now();
    let engine = kind.open(dir, mode, opts)?;
    out.reopen = t0.elapsed();
    res.io_path = engine.io_path();
    res.index = engine.index_memory();
    let measured = measure(
        &*engine, dir, device, &segs, codec, &built, hooks, &mut out, res,
    );
    res.rss_delta = rss0
        .zip(sysinfo::rss_bytes())
        .map(|(a, b)| b as i64 - a as i64);
    let results = match measured {
        Ok(r) => r,
        Err(e) => {
            let _ = engine.close();
            return Err(e);
        }
    };

    // 3. The checks.
    res.verified = check(&*engine, codec, &built, &mut out, results);
    engine.close()?;
    res.files = sysinfo::dir_bytes(dir).ok();

    // The table's row: the cold Db::runs(), ops the log's transactions it listed.
    let c = out.list.cold;
    res.ops = out.log_txns;
    res.elapsed = c.time;
    res.hist.record(c.time.as_nanos() as u64);
    res.cpu = c.cpu;
    res.worker_cpu = c.thread_cpu;
    res.device = c.device;
    res.notes.extend(notes(&out));
    if res.verified.is_ok() {
        res.notes.push(format!(
            "checked: Db::runs() lists the {RUNS} runs in order, complete, with their labels and \
             commit counts; run_changes(run-{}) yields its {} transactions of {} puts and the \
             last write of each of its {} keys byte for byte; diff_runs(run-0, run-{}) the {} \
             keys either run wrote, both sides byte for byte; the warm calls returned what the \
             cold ones did; a sample of the database's keys read back",
            out.middle,
            thousands(out.changes_yielded as f64),
            out.puts_per_txn,
            thousands(out.changes_keys as f64),
            RUNS - 1,
            thousands(out.diff_keys as f64),
        ));
    }
    res.runs = Some(out);
    Ok(())
}

/// Run `i` of the build: labels it and commits its transactions; returns its id and how many.
fn write_run(
    engine: &dyn Engine,
    cfg: &Config,
    codec: &Codec,
    i: usize,
    rng: &mut Rng,
    built: &mut Built,
    out: &RunsOut,
) -> EResult<(u64, u64)> {
    let Some(db) = engine.ringlog_db() else {
        return Err(EngineError("runs needs ringlog's log of runs".into()));
    };
    let id = db.run_id();
    db.label_run(&format!("run-{i}"))
        .map_err(|e| err("ringlog label_run", e))?;
    let todo = super::ops_share(cfg.ops, RUNS, i);
    let deadline = cfg.duration.map(|d| Instant::now() + d / RUNS as u32);
    let puts = out.puts_per_txn;
    let keys = out.keys;
    let mut kbufs: Vec<Vec<u8>> = (0..puts).map(|_| codec.key_buf()).collect();
    let mut vbufs: Vec<Vec<u8>> = (0..puts).map(|_| Vec::new()).collect();
    let mut idxs: Vec<u64> = Vec::with_capacity(puts);
    let mut n = 0u64;
    while n < todo {
        idxs.clear();
        while idxs.len() < puts {
            let idx = rng.below(keys);
            if !idxs.contains(&idx) {
                idxs.push(idx);
            }
        }
        for (j, &idx) in idxs.iter().enumerate() {
            let ver = built.versions[idx as usize] + 1;
            codec.set_key(&mut kbufs[j], idx);
            codec.fill_value(&mut vbufs[j], idx, ver);
        }
        let items: Vec<(&[u8], &[u8])> = kbufs
            .iter()
            .zip(&vbufs)
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        engine.put_batch(&items)?;
        for &idx in &idxs {
            let v = &mut built.versions[idx as usize];
            *v += 1;
            if let Some(run) = built.by_run[i].as_mut() {
                run[idx as usize] = *v;
            }
        }
        n += 1;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    Ok((id, n))
}

/// What the calls returned, checked as they came: each cold result is checked (and digested, for
/// the warm call to be compared with), then dropped before the next call, so that every call
/// runs with the same memory held.
struct Results {
    /// What the cold `Db::runs()` returned.
    listed: Vec<RunInfo>,
    /// `run_changes`: transactions yielded and keys checked, or what was wrong.
    changes: Result<(u64, u64), String>,
    /// `diff_runs`: keys checked, or what was wrong.
    diff: Result<u64, String>,
    /// A warm call that returned something else than the cold one.
    warm_differs: Option<String>,
}

/// A digest of what `run_changes` yielded.
fn changes_digest(changes: &[ringlog_db::Result<Change>]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    changes.len().hash(&mut h);
    for c in changes {
        match c {
            Ok(c) => {
                (c.lsn, c.commit_ns, c.writes.len()).hash(&mut h);
                for w in &c.writes {
                    w.hash(&mut h);
                }
            }
            Err(e) => e.to_string().hash(&mut h),
        }
    }
    h.finish()
}

/// A digest of what `diff_runs` listed.
fn diff_digest(diff: &[KeyDiff]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    diff.len().hash(&mut h);
    for d in diff {
        d.key.hash(&mut h);
        for w in [&d.a, &d.b] {
            match w {
                Written::Nothing => 0u8.hash(&mut h),
                Written::Put(v) => (1u8, v).hash(&mut h),
                Written::Deleted => 2u8.hash(&mut h),
                other => format!("{other:?}").hash(&mut h),
            }
        }
    }
    h.finish()
}

/// The floor and the three calls, cold then warm; the cold results checked as they come.
#[allow(clippy::too_many_arguments)]
fn measure(
    engine: &dyn Engine,
    dir: &Path,
    device: Option<&str>,
    segs: &[(PathBuf, u64)],
    codec: &Codec,
    built: &Built,
    hooks: &Hooks,
    out: &mut RunsOut,
    res: &mut RunResult,
) -> EResult<Results> {
    let Some(db) = engine.ringlog_db() else {
        return Err(EngineError("runs needs ringlog's log of runs".into()));
    };
    let io = |e: std::io::Error| EngineError(format!("the floor read: {e}"));
    let (first, mid, last) = (
        out.run_ids[0],
        out.run_ids[out.middle],
        out.run_ids[RUNS - 1],
    );
    let notes = &mut res.notes;

    // Cold: each after dropping the directory's files from the page cache.
    let mut cold = drop_cache(dir, notes);
    let (r, c) = timed(device, || sysinfo::read_files(segs));
    r.map_err(io)?;
    out.floor.cold = c;
    cold &= drop_cache(dir, notes);
    let (listed, c) = timed(device, || db.runs());
    let listed = listed.map_err(|e| err("ringlog runs", e))?;
    out.list.cold = c;
    cold &= drop_cache(dir, notes);
    let rss0 = sysinfo::rss_bytes();
    let mut rss1 = None;
    // Iterated to its end: the changes moved out (and dropped after the timing).
    let (changes, c) = timed(device, || {
        let it = db.run_changes(mid)?;
        rss1 = sysinfo::rss_bytes();
        Ok::<_, ringlog_db::Error>(it.collect::<Vec<_>>())
    });
    let changes = changes.map_err(|e| err("ringlog run_changes", e))?;
    out.changes.cold = c;
    out.changes_rss = rss0.zip(rss1).map(|(a, b)| b as i64 - a as i64);
    out.changes_yielded = changes.iter().filter(|c| c.is_ok()).count() as u64;
    let changes_sum = changes_digest(&changes);
    let changes_checked = check_changes(
        changes,
        codec,
        out.middle,
        out.txns[out.middle],
        out.puts_per_txn,
        built.by_run[out.middle].as_deref().unwrap_or_default(),
        hooks.corrupt_one_read,
    );
    cold &= drop_cache(dir, notes);
    let (diff, c) = timed(device, || db.diff_runs(first, last));
    let diff = diff.map_err(|e| err("ringlog diff_runs", e))?;
    out.diff.cold = c;
    out.diff_keys = diff.len() as u64;
    let diff_sum = diff_digest(&diff);
    let diff_checked = check_diff(
        &diff,
        codec,
        built.by_run[0].as_deref().unwrap_or_default(),
        built.by_run[RUNS - 1].as_deref().unwrap_or_default(),
    );
    drop(diff);
    out.cold = cold;

    // Warm: the same again, the files in the page cache now.
    let mut warm_differs = None;
    let (r, c) = timed(device, || sysinfo::read_files(segs));
    r.map_err(io)?;
    out.floor.warm = c;
    let (again, c) = timed(device, || db.runs());
    let again = again.map_err(|e| err("ringlog runs", e))?;
    out.list.warm = c;
    if again != listed {
        warm_differs.get_or_insert(format!(
            "the warm Db::runs() returned {again:?}, the cold one {listed:?}"
        ));
    }
    let (again, c) = timed(device, || {
        db.run_changes(mid).map(|it| it.collect::<Vec<_>>())
    });
    let again = again.map_err(|e| err("ringlog run_changes", e))?;
    out.changes.warm = c;
    if changes_digest(&again) != changes_sum {
        warm_differs.get_or_insert(format!(
            "the warm run_changes(run-{}) yielded {} items, not what the cold one did",
            out.middle,
            again.len()
        ));
    }
    drop(again);
    let (again, c) = timed(device, || db.diff_runs(first, last));
    let again = again.map_err(|e| err("ringlog diff_runs", e))?;
    out.diff.warm = c;
    if diff_digest(&again) != diff_sum {
        warm_differs.get_or_insert(format!(
            "the warm diff_runs listed {} keys, not what the cold one did",
            again.len()
        ));
    }
    drop(again);
    Ok(Results {
        listed,
        changes: changes_checked,
        diff: diff_checked,
        warm_differs,
    })
}

/// Every check of the module's documentation; the keys and runs checked, or what was wrong.
fn check(
    engine: &dyn Engine,
    codec: &Codec,
    built: &Built,
    out: &mut RunsOut,
    results: Results,
) -> Result<u64, String> {
    let Results {
        listed,
        changes,
        diff,
        warm_differs,
    } = results;
    out.log_txns = listed.iter().map(|r| r.commits).sum();
    out.listed = listed;
    let runs = check_listed(&out.listed, &out.run_ids, &out.txns)?;
    let (_, keys) = changes?;
    out.changes_keys = keys;
    let diffed = diff?;
    if let Some(w) = warm_differs {
        return Err(format!("RUNS MISMATCH: {w}"));
    }
    // The database itself: a sample of the keys read back.
    let exp = Expected {
        threads: 1,
        parts: vec![built.versions.clone()],
        whole: None,
        preloaded: 0,
        inserted: Vec::new(),
        bound: out.keys,
    };
    let sample = verify(engine, codec, &exp, 1000, &Hooks::default())?;
    Ok(runs + keys + diffed + sample)
}

/// `Db::runs()` against the runs built; returns how many were checked.
fn check_listed(listed: &[RunInfo], ids: &[u64], txns: &[u64]) -> Result<u64, String> {
    let bad = |w: String| Err(format!("RUNS MISMATCH: Db::runs(): {w}"));
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            return bad(format!("run-{i} has the id {id} of an earlier run"));
        }
    }
    if let Some(r) = listed
        .iter()
        .find(|r| !ids.contains(&r.id) && r.commits > 0)
    {
        return bad(format!(
            "it lists run {} ({:?}) with {} commits, a run the workload did not write in",
            r.id, r.label, r.commits
        ));
    }
    let ours: Vec<&RunInfo> = listed.iter().filter(|r| ids.contains(&r.id)).collect();
    let got: Vec<u64> = ours.iter().map(|r| r.id).collect();
    if got != ids {
        return bad(format!(
            "it lists the runs built as {got:?}, they were {ids:?} in that order"
        ));
    }
    let mut prev_lsn = 0;
    for (i, r) in ours.iter().enumerate() {
        let label = format!("run-{i}");
        if r.label.as_deref() != Some(label.as_str()) {
            return bad(format!(
                "run {} has the label {:?}, not {label:?}",
                r.id, r.label
            ));
        }
        if r.commits != txns[i] {
            return bad(format!(
                "{label} has {} commits, {} transactions were committed",
                r.commits, txns[i]
            ));
        }
        if !r.complete {
            return bad(format!("{label} is not complete (no checkpoint ran)"));
        }
        if r.first_lsn > r.last_lsn || r.first_lsn <= prev_lsn {
            return bad(format!(
                "{label} spans LSNs {}..={} after {prev_lsn}",
                r.first_lsn, r.last_lsn
            ));
        }
        if r.first_commit_ns > r.last_commit_ns {
            return bad(format!(
                "{label}'s first commit time {} is after its last {}",
                r.first_commit_ns, r.last_commit_ns
            ));
        }
        prev_lsn = r.last_lsn;
    }
    Ok(ours.len() as u64)
}

/// The index of a key the workload wrote, if `key` is one.
fn key_index(codec: &Codec, key: &[u8], keys: u64) -> Option<u64> {
    if key.len() != codec.key_size() {
        return None;
    }
    let idx = Codec::key_index(key);
    (idx < keys && codec.key(idx) == key).then_some(idx)
}

/// `run_changes` of run `run` against what it wrote (`expected`: each key's last version in it);
/// returns the transactions it yielded and the keys checked.
fn check_changes(
    changes: Vec<ringlog_db::Result<Change>>,
    codec: &Codec,
    run: usize,
    txns: u64,
    puts: usize,
    expected: &[u32],
    corrupt: bool,
) -> Result<(u64, u64), String> {
    let bad = |w: String| Err(format!("RUNS MISMATCH: run_changes(run-{run}): {w}"));
    let keys = expected.len() as u64;
    let mut last: Vec<Option<Box<[u8]>>> = vec![None; expected.len()];
    let mut n = 0u64;
    let mut prev_lsn = 0;
    for c in changes {
        let c = match c {
            Ok(c) => c,
            Err(e) => return bad(format!("it yielded an error: {e}")),
        };
        n += 1;
        if c.lsn <= prev_lsn {
            return bad(format!("LSN {} after LSN {prev_lsn}", c.lsn));
        }
        prev_lsn = c.lsn;
        if c.writes.len() != puts {
            return bad(format!(
                "the transaction at LSN {} has {} writes, each put {puts}",
                c.lsn,
                c.writes.len()
            ));
        }
        for (k, v) in c.writes {
            let Some(idx) = key_index(codec, &k, keys) else {
                return bad(format!("a write of key {k:02x?}, which the run never put"));
            };
            let Some(v) = v else {
                return bad(format!(
                    "a delete of key {idx}, which the run never deleted"
                ));
            };
            last[idx as usize] = Some(v);
        }
    }
    if n != txns {
        return bad(format!(
            "it yielded {n} transactions, the run committed {txns}"
        ));
    }
    let mut checked = 0u64;
    let mut corrupt = corrupt;
    for (idx, (&want, got)) in expected.iter().zip(last).enumerate() {
        match (want, got) {
            (0, None) => {}
            (0, Some(_)) => return bad(format!("key {idx} written, the run never wrote it")),
            (v, None) => return bad(format!("key {idx} not written, the run left it at {v}")),
            (v, Some(mut got)) => {
                if corrupt {
                    // Test hook: the first value checked, one byte flipped.
                    corrupt = false;
                    let i = got.len() - 1;
                    got[i] ^= 0x40;
                }
                if let Err(e) = codec.check(&got, idx as u64, v) {
                    return bad(format!("the last write of key {idx}: {e}"));
                }
                checked += 1;
            }
        }
    }
    Ok((n, checked))
}

/// `diff_runs(first, last)` against what those runs wrote; returns the keys checked.
fn check_diff(diff: &[KeyDiff], codec: &Codec, first: &[u32], last: &[u32]) -> Result<u64, String> {
    let bad = |w: String| {
        Err(format!(
            "RUNS MISMATCH: diff_runs(run-0, run-{}): {w}",
            RUNS - 1
        ))
    };
    if diff.is_empty() {
        return bad("it is empty".into());
    }
    let keys = first.len() as u64;
    let side = |w: &Written, idx: u64, want: u32| -> Result<(), String> {
        match (w, want) {
            (Written::Nothing, 0) => Ok(()),
            (Written::Put(v), want) if want > 0 => codec
                .check(v, idx, want)
                .map_err(|e| format!("key {idx}: {e}")),
            (w, 0) => Err(format!("key {idx}: {w:?}, the run did not write it")),
            (w, want) => Err(format!(
                "key {idx}: {w:?}, the run left it at version {want}"
            )),
        }
    };
    let mut prev: Option<&[u8]> = None;
    for d in diff {
        if prev.is_some_and(|p| p >= &*d.key) {
            return bad("its keys are not in ascending order".into());
        }
        prev = Some(&d.key);
        let Some(idx) = key_index(codec, &d.key, keys) else {
            return bad(format!("key {:02x?}, which neither run put", d.key));
        };
        let (a, b) = (first[idx as usize], last[idx as usize]);
        if let Err(e) = side(&d.a, idx, a).and_then(|()| side(&d.b, idx, b)) {
            return bad(e);
        }
    }
    let expected = first
        .iter()
        .zip(last)
        .filter(|(a, b)| **a > 0 || **b > 0)
        .count();
    if diff.len() != expected {
        return bad(format!(
            "it lists {} keys, the two runs wrote {expected} (every one differs: versions only \
             grow)",
            diff.len()
        ));
    }
    Ok(diff.len() as u64)
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

fn files(n: usize) -> String {
    format!("{n} segment file{}", if n == 1 { "" } else { "s" })
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}×"))
}

/// "X ms (Y MB/s, Z txn/s; the device read W MB)" of one call.
fn call_line(o: &RunsOut, c: &Call) -> String {
    format!(
        "{:.1} ms ({:.0} MB/s, {} txn/s of the log{})",
        c.time.as_secs_f64() * 1e3,
        o.mb_per_sec(c),
        thousands(o.txns_per_sec(c)),
        c.device.map_or(String::new(), |d| format!(
            "; the device read {}",
            mb(d.read_bytes)
        ))
    )
}

fn notes(o: &RunsOut) -> Vec<String> {
    let mut n = Vec::new();
    let written: u64 = o.txns.iter().sum();
    let per_run: Vec<String> = o.txns.iter().map(|&t| thousands(t as f64)).collect();
    n.push(format!(
        "build: {} runs, each an open, Db::label_run(\"run-i\"), transactions of {} puts of \
         distinct random keys of {} ({} + {} B), a close: {} transactions ({} per run) in \
         {:.2} s ({} txn/s, the opens replaying the log so far included); background \
         checkpoints off and no close-time checkpoint (whatever --checkpoint-bytes says), so the \
         log keeps every run: {} in {} (up to the end of the data)",
        o.runs,
        o.puts_per_txn,
        thousands(o.keys as f64),
        o.key_size,
        o.value_size,
        thousands(written as f64),
        per_run.join(" / "),
        o.build.as_secs_f64(),
        thousands(written as f64 / o.build.as_secs_f64().max(1e-9)),
        mb(o.log_bytes),
        files(o.segments),
    ));
    let how = if o.cold {
        "cold: the database's files dropped from the page cache (fsync + fadvise DONTNEED) \
         before each call; warm: again, the files cached"
    } else {
        "first call and again (the files could not be dropped from the page cache: both warm)"
    };
    n.push(format!(
        "reopened in {:.0} ms (replaying the whole log: no checkpoint); then each {how}; rates \
         are the log's {} and {} transactions per second of the call",
        o.reopen.as_secs_f64() * 1e3,
        mb(o.log_bytes),
        thousands(o.log_txns as f64),
    ));
    n.push(format!(
        "floor: the {} read sequentially in 1 MiB reads ({}): cold {}, warm {}",
        files(o.segments),
        mb(o.log_bytes),
        call_line(o, &o.floor.cold),
        call_line(o, &o.floor.warm),
    ));
    n.push(format!(
        "Db::runs() ({} runs listed, {} transactions): cold {}, warm {}; runs() ÷ floor: cold {}, \
         warm {}",
        o.listed.len(),
        thousands(o.log_txns as f64),
        call_line(o, &o.list.cold),
        call_line(o, &o.list.warm),
        ratio(RunsOut::ratio(&o.list.cold, &o.floor.cold)),
        ratio(RunsOut::ratio(&o.list.warm, &o.floor.warm)),
    ));
    n.push(format!(
        "Db::run_changes(run-{}) iterated to its end ({} transactions yielded, {} keys; the call \
         returns with every change read: resident set {} after it): cold {}, warm {}; ÷ floor: \
         cold {}, warm {}",
        o.middle,
        thousands(o.changes_yielded as f64),
        thousands(o.changes_keys as f64),
        o.changes_rss.map_or("-".into(), |b| format!(
            "{}{}",
            if b < 0 { "-" } else { "+" },
            mb(b.unsigned_abs())
        )),
        call_line(o, &o.changes.cold),
        call_line(o, &o.changes.warm),
        ratio(RunsOut::ratio(&o.changes.cold, &o.floor.cold)),
        ratio(RunsOut::ratio(&o.changes.warm, &o.floor.warm)),
    ));
    n.push(format!(
        "Db::diff_runs(run-0, run-{}) ({} keys differ; one pass over the log, a map of each run's last writes): cold {}, \
         warm {}; ÷ floor: cold {}, warm {}",
        o.runs - 1,
        thousands(o.diff_keys as f64),
        call_line(o, &o.diff.cold),
        call_line(o, &o.diff.warm),
        ratio(RunsOut::ratio(&o.diff.cold, &o.floor.cold)),
        ratio(RunsOut::ratio(&o.diff.warm, &o.floor.warm)),
    ));
    n
}
