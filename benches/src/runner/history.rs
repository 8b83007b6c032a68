//! `history` (a long overwrite history with background checkpoints, then a cold open against
//! the floor of reading the files it needs, and the space the files take) and `ckptwrite` (put
//! latency with and without a thread checkpointing in a loop).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{delta, disk, preload, verify, verify_all, Expected, Hooks, RunResult};
use crate::args::Config;
use crate::engine::{
    Counters, EResult, Engine, EngineError, EngineKind, Mode, OpenOpts, RecoveryInfo,
};
use crate::hist::Histogram;
use crate::keys::{Codec, Rng};
use crate::sysinfo::{self, Space};

/// One cold open, measured against the floor of reading the files it needs.
#[derive(Clone, Debug, Default)]
pub struct ColdOpen {
    /// From the open call to the first correct read (of the last key written).
    pub open: Duration,
    /// Reading every file of the directory sequentially up to its last non-zero byte, cold.
    pub floor: Duration,
    /// Bytes that floor read.
    pub floor_bytes: u64,
    /// Files it read.
    pub floor_files: usize,
    /// What the engine's recovery reported.
    pub recovery: Option<RecoveryInfo>,
    /// Bytes the block device read during the open (machine-wide).
    pub device_read_bytes: Option<u64>,
    /// Whether the files could be dropped from the page cache before the floor and the open.
    pub cold: bool,
}

impl ColdOpen {
    /// Open time ÷ floor time.
    pub fn ratio(&self) -> Option<f64> {
        let f = self.floor.as_secs_f64();
        (f > 0.0).then(|| self.open.as_secs_f64() / f)
    }
}

/// What the history workload measured beside the write phase.
#[derive(Clone, Debug, Default)]
pub struct HistoryOut {
    /// Live keys at the end.
    pub live_keys: u64,
    /// Their keys' and values' bytes: the live data.
    pub live_bytes: u64,
    /// Records (puts) written over the database's life: what a full-log replay would apply.
    pub records: u64,
    /// Log bytes appended over its life (the engine's count): what a full-log replay would read.
    pub log_bytes: Option<u64>,
    /// Checkpoints the engine wrote during the write phase.
    pub checkpoints: Option<u64>,
    /// Checkpoint files seen by the directory watcher (their ids), of those checkpoints.
    pub checkpoints_seen: u64,
    /// From the cold open as written to the end of the read-back of every key: the process's
    /// CPU time (background work the open started included) and, where the peak could be
    /// reset, its peak resident set above the one before the open.
    pub after_open: Option<(Duration, Option<u64>)>,
    /// Log segments its compaction deleted during the write phase.
    pub segments_deleted: Option<u64>,
    /// Largest disk space the directory took while the workload wrote (sampled every 10 ms).
    pub peak_space: Space,
    /// The directory after the write phase and close.
    pub space_at_close: Space,
    /// After a reopen, the engine's own checkpoint/compaction step, and a close.
    pub space_settled: Option<Space>,
    /// What that step was (`None`: the engine has none here).
    pub settled_by: Option<String>,
    /// The cold open of the directory as the write phase left it.
    pub open: ColdOpen,
    /// A cold open after the settle step.
    pub open_settled: Option<ColdOpen>,
    /// An online backup of the settled database (bytes written, time), where the engine has one.
    pub backup: Option<(u64, Duration)>,
}

impl HistoryOut {
    /// Disk space once settled (at close where the engine has no settle step) ÷ live bytes.
    pub fn space_amp(&self) -> Option<f64> {
        let sp = self.space_settled.unwrap_or(self.space_at_close);
        (self.live_bytes > 0).then(|| sp.allocated as f64 / self.live_bytes as f64)
    }

    /// Disk space at close ÷ live bytes.
    pub fn space_amp_at_close(&self) -> Option<f64> {
        (self.live_bytes > 0).then(|| self.space_at_close.allocated as f64 / self.live_bytes as f64)
    }

    /// Peak disk space during the write phase ÷ live bytes.
    pub fn peak_space_amp(&self) -> Option<f64> {
        (self.live_bytes > 0).then(|| self.peak_space.allocated as f64 / self.live_bytes as f64)
    }
}

/// What the directory watcher saw: the peak space, and the size of every checkpoint file
/// (`<20-digit id>.ckpt`, ringlog's name) by id.
#[derive(Default)]
struct Watched {
    peak: Space,
    ckpts: std::collections::BTreeMap<u64, u64>,
}

impl Watched {
    fn sample(&mut self, dir: &Path) {
        if let Ok(sp) = sysinfo::dir_space(dir) {
            if sp.allocated > self.peak.allocated {
                self.peak = sp;
            }
        }
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".ckpt")) else {
                continue;
            };
            if stem.len() != 20 {
                continue;
            }
            if let (Ok(id), Ok(meta)) = (stem.parse::<u64>(), e.metadata()) {
                self.ckpts.insert(id, meta.len());
            }
        }
    }
}

/// Samples `dir` every 10 ms until `stop`, then once more.
fn watch(dir: &Path, stop: &AtomicBool, into: &Mutex<Watched>) {
    loop {
        let done = stop.load(Ordering::Relaxed);
        into.lock().unwrap_or_else(|p| p.into_inner()).sample(dir);
        if done {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Closes nothing: syncs and evicts `dir`, reads its files cold (the floor: those whose names
/// end in `floor_suffix` when given and any does, else every file), evicts again, then opens the
/// engine and reads `probe` (key index, version) until it is right. Returns the open engine and
/// the measurement.
#[allow(clippy::too_many_arguments)]
pub(super) fn cold_open(
    kind: &dyn EngineKind,
    mode: Mode,
    dir: &Path,
    device: Option<&str>,
    codec: &Codec,
    opts: &OpenOpts,
    probe: (u64, u32),
    floor_suffix: Option<&str>,
    notes: &mut Vec<String>,
) -> EResult<(Box<dyn Engine>, ColdOpen)> {
    let io = |what: &str, e: std::io::Error| EngineError(format!("{what}: {e}"));
    let mut out = ColdOpen::default();
    let mut files = sysinfo::file_extents(dir).map_err(|e| io("listing the files", e))?;
    if let Some(suffix) = floor_suffix {
        let named = |p: &Path| p.to_str().is_some_and(|n| n.ends_with(suffix));
        if files.iter().any(|(p, _)| named(p)) {
            files.retain(|(p, _)| named(p));
        }
    }
    out.cold = match sysinfo::evict(dir) {
        Ok(_) => true,
        Err(e) => {
            notes.push(format!(
                "warm: could not drop the files from the page cache ({e})"
            ));
            false
        }
    };
    let (floor, bytes) = sysinfo::read_files(&files).map_err(|e| io("the floor read", e))?;
    out.floor = floor;
    out.floor_bytes = bytes;
    out.floor_files = files.len();
    if sysinfo::evict(dir).is_err() {
        out.cold = false;
    }
    let key = codec.key(probe.0);
    let mut buf = Vec::new();
    let d0 = disk(device);
    let start = Instant::now();
    let engine = kind.open(dir, mode, opts)?;
    let found = engine.get(&key, &mut buf)?;
    out.open = start.elapsed();
    out.device_read_bytes = d0.zip(disk(device)).map(|(a, b)| b.since(&a).read_bytes);
    out.recovery = engine.recovery();
    if !found {
        let _ = engine.close();
        return Err(EngineError(format!(
            "the last key written ({}) is missing after the reopen",
            probe.0
        )));
    }
    if let Err(e) = codec.check(&buf, probe.0, probe.1) {
        let _ = engine.close();
        return Err(EngineError(format!(
            "the last key written ({}) after the reopen: {e}",
            probe.0
        )));
    }
    Ok((engine, out))
}

/// The history workload; see the crate's `--help`.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_history(
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
    let keys = cfg.keys;
    let kv = (codec.key_size() + codec.value_size()) as u64;
    let mut versions = vec![0u32; keys as usize];
    let mut h = HistoryOut::default();
    sysinfo::trim_heap();
    let rss0 = sysinfo::rss_bytes();
    let engine = kind.open(dir, mode, opts)?;
    res.io_path = engine.io_path();
    let watched = Mutex::new(Watched::default());
    let stop = AtomicBool::new(false);
    let c0 = engine.counters();
    let d0 = disk(device);
    let cpu0 = sysinfo::cpu_time();
    let wcpu0 = sysinfo::thread_cpu_time();
    let start = Instant::now();
    let deadline = cfg.duration.map(|d| start + d);
    let mut last_put = (0u64, 0u32);
    let outcome = std::thread::scope(|s| {
        let watcher = s.spawn(|| watch(dir, &stop, &watched));
        let r = (|| -> EResult<()> {
            let mut rng = Rng::new(0x4157_0000 + keys);
            let mut key = codec.key_buf();
            let mut val = Vec::with_capacity(codec.value_size());
            let mut last = Instant::now();
            let mut n = 0u64;
            // The load: every key once, in order (it always completes); then random
            // overwrites until --ops puts in all (or --duration).
            while n < keys || (n < cfg.ops && deadline.is_none_or(|d| last < d)) {
                let idx = if n < keys { n } else { rng.below(keys) };
                let ver = versions[idx as usize] + 1;
                codec.set_key(&mut key, idx);
                codec.fill_value(&mut val, idx, ver);
                engine.put(&key, &val)?;
                versions[idx as usize] = ver;
                last_put = (idx, ver);
                n += 1;
                let now = Instant::now();
                res.hist.record((now - last).as_nanos() as u64);
                last = now;
            }
            res.ops = n;
            res.commits = n;
            res.user_bytes = n * kv;
            Ok(())
        })();
        res.elapsed = start.elapsed();
        res.worker_cpu = sysinfo::thread_cpu_time().saturating_sub(wcpu0);
        res.cpu = sysinfo::cpu_time().saturating_sub(cpu0);
        res.device = d0.zip(disk(device)).map(|(a, b)| b.since(&a));
        let rss1 = sysinfo::rss_bytes();
        res.rss_delta = rss0.zip(rss1).map(|(a, b)| b as i64 - a as i64);
        // Counters after the close (see Engine::close_with_stats); the watcher runs on until
        // the close has finished any background checkpoint.
        let closed = if r.is_ok() {
            engine.close_with_stats()
        } else {
            engine.close().map(|()| (Counters::default(), None))
        };
        stop.store(true, Ordering::Relaxed);
        let _ = watcher.join();
        r.and(closed)
    });
    let (c1, index) = outcome?;
    res.index = index;
    res.engine_delta = delta(c1, c0);
    // One more look after the close (a checkpoint finishing at close).
    let mut w = watched.into_inner().unwrap_or_else(|p| p.into_inner());
    w.sample(dir);
    res.lifetime_user_bytes = res.user_bytes;
    h.records = res.ops;
    h.log_bytes = res.engine_delta.bytes_logged;
    h.checkpoints = res.engine_delta.checkpoints;
    h.segments_deleted = res.engine_delta.segments_deleted;
    h.peak_space = w.peak;
    h.checkpoints_seen = w.ckpts.len() as u64;
    if let Some(n) = h.checkpoints.filter(|&n| n > 0) {
        let seen: u64 = w.ckpts.values().sum();
        let bytes = if h.checkpoints_seen >= n || h.checkpoints_seen == 0 {
            seen
        } else {
            res.notes.push(format!(
                "{} of {n} checkpoint files seen by the 10-ms directory watcher; the others' \
                 bytes are counted at the mean size of those seen",
                h.checkpoints_seen
            ));
            seen / h.checkpoints_seen * n
        };
        res.checkpoint_bytes = Some(bytes);
    } else if h.checkpoints == Some(0) {
        res.checkpoint_bytes = Some(0);
    }
    h.live_keys = versions.iter().filter(|&&v| v > 0).count() as u64;
    h.live_bytes = h.live_keys * kv;
    res.live_keys = h.live_keys;
    h.space_at_close =
        sysinfo::dir_space(dir).map_err(|e| EngineError(format!("the directory's size: {e}")))?;
    res.files = sysinfo::dir_bytes(dir).ok();

    // The cold open as the write phase left the directory, then every key read back.
    sysinfo::trim_heap();
    let peak_reset = sysinfo::reset_peak_rss();
    let rss_before = sysinfo::rss_bytes();
    let cpu_before = sysinfo::cpu_time();
    let (engine, open) = cold_open(
        kind,
        mode,
        dir,
        device,
        codec,
        opts,
        last_put,
        None,
        &mut res.notes,
    )?;
    h.open = open;
    let exp = Expected {
        threads: 1,
        parts: vec![versions],
        whole: None,
        preloaded: 0,
        inserted: Vec::new(),
        bound: keys,
    };
    res.verified = verify_all(&*engine, codec, &exp, hooks);
    let peak = rss_before
        .zip(sysinfo::peak_rss_bytes())
        .filter(|_| peak_reset)
        .map(|(before, peak)| peak.saturating_sub(before));
    h.after_open = Some((sysinfo::cpu_time().saturating_sub(cpu_before), peak));
    // Settle: the engine's own checkpoint / compaction, then close and measure.
    let settled = match engine.settle() {
        Ok(s) => s,
        Err(e) => {
            let _ = engine.close();
            return Err(e);
        }
    };
    engine.close()?;
    if let Some(s) = settled {
        h.space_settled = Some(
            sysinfo::dir_space(dir)
                .map_err(|e| EngineError(format!("the directory's size: {e}")))?,
        );
        h.settled_by = Some(s.what);
        let (engine, open) = cold_open(
            kind,
            mode,
            dir,
            device,
            codec,
            opts,
            last_put,
            None,
            &mut res.notes,
        )?;
        h.open_settled = Some(open);
        if res.verified.is_ok() {
            // A sample after the second open too.
            res.verified =
                verify(&*engine, codec, &exp, 1000, &Hooks::default()).and(res.verified.clone());
        }
        // An online backup of the settled database, timed, then opened and sampled.
        let dest = dir.with_extension("backup");
        let started = Instant::now();
        let backed = engine.backup(&dest);
        let took = started.elapsed();
        engine.close()?;
        if let Some(bytes) = backed? {
            h.backup = Some((bytes, took));
            let copy = kind.open(&dest, mode, opts)?;
            if res.verified.is_ok() {
                res.verified =
                    verify(&*copy, codec, &exp, 1000, &Hooks::default()).and(res.verified.clone());
            }
            copy.close()?;
            let _ = std::fs::remove_dir_all(&dest);
        }
    }
    if h.open.cold {
        res.notes.push(
            "cold: the database's files were dropped from the page cache (fadvise DONTNEED) \
             before the floor read and again before each open"
                .into(),
        );
    }
    res.notes.extend(history_notes(&h));
    res.history = Some(h);
    Ok(())
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

fn open_line(what: &str, o: &ColdOpen) -> String {
    let rec = o.recovery.map_or(String::new(), |r| {
        format!(
            "; recovery {:.0} ms{}: checkpoint of {} keys at LSN {}, then {} transactions from {} \
             segments",
            r.duration_ns as f64 / 1e6,
            r.split_text(),
            r.checkpoint_keys,
            r.checkpoint_lsn,
            r.transactions,
            r.segments
        )
    });
    format!(
        "{what}: open to the first correct read {:.0} ms; floor (the {} files read cold, \
         sequentially, {}) {:.0} ms ({:.0} MB/s); open ÷ floor {}{}{}",
        o.open.as_secs_f64() * 1e3,
        o.floor_files,
        mb(o.floor_bytes),
        o.floor.as_secs_f64() * 1e3,
        o.floor_bytes as f64 / 1e6 / o.floor.as_secs_f64().max(1e-9),
        o.ratio().map_or("-".into(), |r| format!("{r:.2}×")),
        o.device_read_bytes.map_or(String::new(), |b| format!(
            "; the device read {} during the open",
            mb(b)
        )),
        rec
    )
}

fn history_notes(h: &HistoryOut) -> Vec<String> {
    let mut n = Vec::new();
    n.push(open_line(
        "cold open as written (closed without a close-time checkpoint: what a crash leaves)",
        &h.open,
    ));
    if let Some((cpu, peak)) = h.after_open {
        n.push(format!(
            "the open as written and the read-back of every key after it: process CPU {:.2} s \
             (background work the open started included){}",
            cpu.as_secs_f64(),
            peak.map_or(String::new(), |p| format!(
                ", peak resident set {} above the one before the open",
                mb(p)
            ))
        ));
    }
    if let Some(o) = &h.open_settled {
        n.push(open_line(
            "cold open after the settle step (ringlog: the checkpoint a clean close writes)",
            o,
        ));
    }
    let full = match h.log_bytes {
        Some(b) => {
            let rate = h.open.floor_bytes as f64 / h.open.floor.as_secs_f64().max(1e-9);
            format!(
                "a full-log replay would read {} records, {} of log ({:.1} s at the floor's read \
                 rate) where the open read {}",
                crate::report::thousands(h.records as f64),
                mb(b),
                b as f64 / rate.max(1.0),
                mb(h.open.floor_bytes)
            )
        }
        None => format!(
            "{} records written over the database's life",
            crate::report::thousands(h.records as f64)
        ),
    };
    n.push(full);
    if let Some((bytes, took)) = h.backup {
        n.push(format!(
            "online backup of the settled database (ringlog: Db::backup_to, the database open and \
             warm): {} in {:.0} ms ({:.0} MB/s), then opened and sampled",
            mb(bytes),
            took.as_secs_f64() * 1e3,
            bytes as f64 / 1e6 / took.as_secs_f64().max(1e-9)
        ));
    }
    let amp = |sp: &Space| sp.allocated as f64 / h.live_bytes.max(1) as f64;
    n.push(format!(
        "space: live data {} ({} keys × key + value); files at close {} ({:.2}×), peak while \
         writing {} ({:.2}×){}",
        mb(h.live_bytes),
        crate::report::thousands(h.live_keys as f64),
        mb(h.space_at_close.allocated),
        amp(&h.space_at_close),
        mb(h.peak_space.allocated),
        amp(&h.peak_space),
        match (&h.space_settled, &h.settled_by) {
            (Some(sp), Some(by)) => format!(
                ", after {by} and close {} in {} files ({:.2}×)",
                mb(sp.allocated),
                sp.files,
                amp(sp)
            ),
            _ => ", no settle step for this engine here (the at-close figure stands)".into(),
        }
    ));
    if let Some(c) = h.checkpoints {
        n.push(format!(
            "{c} background checkpoints during the writes, {} log segments deleted by \
             compaction",
            h.segments_deleted.unwrap_or(0)
        ));
    }
    n
}

/// The ckptwrite workload: four alternating phases of overwrites, without and with one more
/// thread calling the engine's checkpoint step in a loop.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_ckptwrite(
    kind: &dyn EngineKind,
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
    const PHASES: [bool; 4] = [false, true, false, true];
    let keys = cfg.keys;
    let kv = (codec.key_size() + codec.value_size()) as u64;
    // No background checkpoints: the phases without the checkpointing thread have none at all.
    let opts = &OpenOpts {
        checkpoint_bytes: Some(u64::MAX),
        checkpoint_on_close: false,
        ..opts.clone()
    };
    let engine = kind.open(dir, mode, opts)?;
    res.io_path = engine.io_path();
    res.lifetime_user_bytes += preload(&*engine, codec, keys)?;
    // A first checkpoint of the preloaded keys (not timed): the phases start from a database
    // that has one, and the background trigger's count starts from here.
    if let Err(e) = engine.settle() {
        let _ = engine.close();
        return Err(e);
    }
    let n = threads as u64;
    let mut parts: Vec<Vec<u32>> = (0..threads)
        .map(|t| vec![1u32; super::partition_len(keys, threads, t) as usize])
        .collect();
    let per_phase = |t: usize| -> u64 {
        if cfg.ops == u64::MAX {
            return u64::MAX;
        }
        let total = cfg.ops / PHASES.len() as u64;
        total / n + u64::from((t as u64) < total % n)
    };
    let phase_time = cfg.duration.map(|d| d / PHASES.len() as u32);
    let mut without = Histogram::new();
    let mut with = Histogram::new();
    let mut ckpt_ns = Histogram::new();
    let mut ckpt_bytes = 0u64;
    let mut with_time = Duration::ZERO;
    let mut with_ops = 0u64;
    let c0 = engine.counters();
    let d0 = disk(device);
    let cpu0 = sysinfo::cpu_time();
    let mut first_error = None;
    for (phase, &checkpointing) in PHASES.iter().enumerate() {
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        let deadline = phase_time.map(|d| start + d);
        let engine = &*engine;
        let (outs, ck) = std::thread::scope(|s| {
            let ck = checkpointing.then(|| {
                let stop = &stop;
                s.spawn(move || {
                    let mut h = Histogram::new();
                    let mut bytes = 0;
                    let mut err = None;
                    // At least one checkpoint per phase, however short the phase.
                    loop {
                        let t0 = Instant::now();
                        match engine.settle() {
                            Ok(Some(st)) => bytes += st.bytes_written.unwrap_or(0),
                            Ok(None) => {
                                err = Some(EngineError("no checkpoint step".into()));
                                break;
                            }
                            Err(e) => {
                                err = Some(e);
                                break;
                            }
                        }
                        h.record(t0.elapsed().as_nanos() as u64);
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                    (h, bytes, err)
                })
            });
            let handles: Vec<_> = parts
                .iter_mut()
                .enumerate()
                .map(|(t, part)| {
                    let todo = per_phase(t);
                    s.spawn(move || {
                        let mut rng =
                            Rng::new(0xc4e0_0000 + (phase as u64) * 7919 + t as u64 * 104_729);
                        let mut key = codec.key_buf();
                        let mut val = Vec::with_capacity(codec.value_size());
                        let mut h = Histogram::new();
                        let mut done = 0u64;
                        let mut last = Instant::now();
                        let plen = part.len() as u64;
                        while done < todo && plen > 0 {
                            let j = rng.below(plen);
                            let idx = t as u64 + n * j;
                            let ver = part[j as usize] + 1;
                            codec.set_key(&mut key, idx);
                            codec.fill_value(&mut val, idx, ver);
                            if let Err(e) = engine.put(&key, &val) {
                                return (h, done, Some(e));
                            }
                            part[j as usize] = ver;
                            done += 1;
                            let now = Instant::now();
                            h.record((now - last).as_nanos() as u64);
                            last = now;
                            if deadline.is_some_and(|d| now >= d) {
                                break;
                            }
                        }
                        (h, done, None)
                    })
                })
                .collect();
            let outs: Vec<_> = handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        (
                            Histogram::new(),
                            0,
                            Some(EngineError("a writer thread panicked".into())),
                        )
                    })
                })
                .collect();
            stop.store(true, Ordering::Relaxed);
            let ck = ck.map(|h| {
                h.join().unwrap_or_else(|_| {
                    (
                        Histogram::new(),
                        0,
                        Some(EngineError("the checkpoint thread panicked".into())),
                    )
                })
            });
            (outs, ck)
        });
        let took = start.elapsed();
        for (h, done, e) in outs {
            res.commits += done;
            res.user_bytes += done * kv;
            if checkpointing {
                with.merge(&h);
                with_ops += done;
            } else {
                without.merge(&h);
            }
            if first_error.is_none() {
                first_error = e;
            }
        }
        if checkpointing {
            with_time += took;
        }
        if let Some((h, bytes, e)) = ck {
            ckpt_ns.merge(&h);
            ckpt_bytes += bytes;
            if first_error.is_none() {
                first_error = e;
            }
        }
    }
    res.cpu = sysinfo::cpu_time().saturating_sub(cpu0);
    res.device = d0.zip(disk(device)).map(|(a, b)| b.since(&a));
    if let Some(e) = first_error {
        let _ = engine.close();
        return Err(e);
    }
    res.ops = with_ops;
    res.elapsed = with_time;
    res.hist = with.clone();
    res.checkpoint_bytes = Some(ckpt_bytes);
    res.lifetime_user_bytes += res.user_bytes;
    res.live_keys = keys;
    let p99 = |h: &Histogram| h.percentile(99.0);
    res.notes.push(format!(
        "puts with a thread checkpointing in a loop: p50 {} µs, p99 {} µs, p99.9 {} µs ({} puts); \
         without: p50 {} µs, p99 {} µs, p99.9 {} µs ({} puts); p99 ratio {}; {} checkpoints \
         of {} each took p50 {:.0} ms, max {:.0} ms",
        crate::report::us(with.percentile(50.0)),
        crate::report::us(p99(&with)),
        crate::report::us(with.percentile(99.9)),
        with.count(),
        crate::report::us(without.percentile(50.0)),
        crate::report::us(p99(&without)),
        crate::report::us(without.percentile(99.9)),
        without.count(),
        if p99(&without) > 0 {
            format!("{:.2}×", p99(&with) as f64 / p99(&without) as f64)
        } else {
            "-".into()
        },
        ckpt_ns.count(),
        if ckpt_ns.count() > 0 {
            mb(ckpt_bytes / ckpt_ns.count())
        } else {
            "-".into()
        },
        ckpt_ns.percentile(50.0) as f64 / 1e6,
        ckpt_ns.max() as f64 / 1e6,
    ));
    res.notes.push(
        "background checkpoints off in this workload (explicit Db::checkpoint calls only)".into(),
    );
    let explicit = ckpt_ns.count();
    res.ckpt_write = Some((without, with, ckpt_ns));
    let exp = Expected {
        threads,
        parts,
        whole: None,
        preloaded: keys,
        inserted: Vec::new(),
        bound: keys,
    };
    res.verified = verify(&*engine, codec, &exp, 1000, hooks);
    let (c1, index) = engine.close_with_stats()?;
    res.engine_delta = delta(c1, c0);
    res.index = index;
    if let Some(bg) = res
        .engine_delta
        .checkpoints
        .map(|n| n.saturating_sub(explicit))
        .filter(|&n| n > 0)
    {
        res.notes.push(format!(
            "{bg} background checkpoint(s) ran too, though they were off; their bytes are not \
             in wamp"
        ));
    }
    res.files = sysinfo::dir_bytes(dir).ok();
    Ok(())
}
