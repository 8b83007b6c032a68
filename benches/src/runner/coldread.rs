//! `coldread`: values on disk (issue 14's targets). A database of `--keys` keys with values of
//! `--value-size` bytes is loaded, checkpointed (ringlog: with `Options::value_threshold`, so that
//! the values leave memory) and closed; then, each phase after the database's files are dropped
//! from the page cache:
//!
//! 1. a cold open, timed until the first correct read, against a cold sequential read of the
//!    checkpoint file (the floor); resident memory and index bytes per key after it;
//! 2. random distinct keys read once each by `get`, each timed, against as many raw `pread`s of
//!    a record's size at random 8-aligned offsets of the log segments (the floor), one after
//!    each get, so that both see the same device and page cache;
//! 3. `get_many` of [`BATCH`] random keys at a time, each call timed, against [`BATCH`] sequential
//!    gets timed as one unit (other keys).
//!
//! Every key is read at most once (by the open's probe, a get, a batch or a unit), so the engine's
//! value cache never serves one of them: every read is a cold read from the device.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::history::{cold_open, ColdOpen};
use super::{disk, preload, verify, Expected, Hooks, RunResult};
use crate::args::Config;
use crate::engine::{
    DiskValues, EResult, Engine, EngineError, EngineKind, IndexMemory, Mode, OpenOpts,
};
use crate::hist::Histogram;
use crate::keys::{Codec, Rng};
use crate::report::{thousands, us, Floor};
use crate::sysinfo::{self, DiskStat, Space};

/// Keys per `get_many` call, and per unit of sequential gets it is compared with.
pub const BATCH: usize = 32;

/// Reads of one timed phase.
#[derive(Clone, Debug, Default)]
pub struct Phase {
    /// Latency of each timed unit: one get, one pread, one `get_many` call or [`BATCH`]
    /// sequential gets.
    pub hist: Histogram,
    /// Keys (or preads) read.
    pub reads: u64,
    /// Sum of the timed units' latencies.
    pub busy: Duration,
    /// What the block device did during the phase (machine-wide).
    pub device: Option<DiskStat>,
}

impl Phase {
    /// Keys (or preads) per second of timed units.
    pub fn reads_per_sec(&self) -> f64 {
        super::per_sec(self.reads, self.busy)
    }

    /// Units per second of timed units.
    pub fn units_per_sec(&self) -> f64 {
        super::per_sec(self.hist.count(), self.busy)
    }

    fn time(&mut self, started: Instant, reads: u64) {
        let d = started.elapsed();
        self.hist.record(d.as_nanos() as u64);
        self.busy += d;
        self.reads += reads;
    }
}

/// The files the pread floor read.
#[derive(Clone, Copy, Debug, Default)]
pub struct PreadFiles {
    /// How many.
    pub files: usize,
    /// Their bytes up to their last non-zero byte.
    pub bytes: u64,
    /// Whether they are the log segments (`*.log`), else every file holding a record's bytes.
    pub segments: bool,
}

/// What the coldread workload measured.
#[derive(Clone, Debug, Default)]
pub struct ColdReadOut {
    /// Keys loaded.
    pub keys: u64,
    /// Key and value sizes.
    pub key_size: usize,
    /// Value size in bytes.
    pub value_size: usize,
    /// ringlog's `Options::value_threshold` and `value_cache_bytes` in this run.
    pub value_threshold: Option<usize>,
    /// ringlog's `Options::value_cache_bytes` in this run.
    pub value_cache: u64,
    /// Loading the keys (transactions of 1,000), then the engine's settle step, then the close.
    pub load: Duration,
    /// What that settle step was (`None`: the engine has none here).
    pub settled_by: Option<String>,
    /// The directory after the load and close.
    pub space: Space,
    /// The cold open against its floor.
    pub open: ColdOpen,
    /// Whether that floor is the checkpoint file (`*.ckpt`) alone (else every file).
    pub floor_is_checkpoint: bool,
    /// This process's peak resident set while loading (the load, the settle step and the
    /// close), bytes; `None` where the peak cannot be reset or read.
    pub peak_rss_load: Option<u64>,
    /// Its peak from before the cold open to the end of the read phases.
    pub peak_rss_serving: Option<u64>,
    /// This process's resident set right after the open (and its first read), bytes.
    pub rss_after_open: Option<u64>,
    /// Its growth from before the open to then.
    pub rss_open_growth: Option<i64>,
    /// This process's resident set after every read phase (the value cache filled), bytes.
    pub rss_after_reads: Option<u64>,
    /// The engine's index memory right after the open.
    pub index: Option<IndexMemory>,
    /// The engine's values on disk right after the open, and after every read phase.
    pub values_open: Option<DiskValues>,
    /// The same after the read phases.
    pub values_end: Option<DiskValues>,
    /// Cold gets, one key each.
    pub gets: Phase,
    /// The raw pread floor: as many reads as gets, of `pread_size` bytes.
    pub pread: Option<Phase>,
    /// Bytes of one pread: a ringlog Write record of the key and value.
    pub pread_size: usize,
    /// The files the preads chose among.
    pub pread_files: PreadFiles,
    /// `get_many` of [`BATCH`] keys, each call one unit.
    pub many: Phase,
    /// [`BATCH`] sequential gets, each run of them one unit.
    pub seq: Phase,
}

impl ColdReadOut {
    /// The engine's index bytes per live key after the open.
    pub fn index_per_key(&self) -> Option<f64> {
        let keys = self.values_open?.keys;
        let m = self.index?;
        (keys > 0).then(|| m.bytes as f64 / keys as f64)
    }

    /// Of [`ColdReadOut::index_per_key`], the bytes beyond the key's own.
    pub fn index_overhead_per_key(&self) -> Option<f64> {
        self.index_per_key().map(|b| b - self.key_size as f64)
    }

    /// Cold get p50 ÷ raw pread p50.
    pub fn get_p50_ratio(&self) -> Option<f64> {
        let f = self.pread.as_ref()?.hist.percentile(50.0);
        (f > 0 && self.gets.reads > 0).then(|| self.gets.hist.percentile(50.0) as f64 / f as f64)
    }

    /// The pread floor as the table's ×floor and p50× columns use it.
    pub fn floor(&self) -> Option<Floor> {
        let p = self.pread.as_ref()?;
        (p.reads > 0).then(|| Floor {
            ops_per_sec: p.reads_per_sec(),
            p50: p.hist.percentile(50.0),
        })
    }

    /// Keys per second of `get_many` ÷ keys per second of sequential gets.
    pub fn batch_ratio(&self) -> Option<f64> {
        let s = self.seq.reads_per_sec();
        (s > 0.0 && self.many.reads > 0).then(|| self.many.reads_per_sec() / s)
    }
}

/// The coldread workload; see the module's documentation and the crate's `--help`.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_coldread(
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
    // The last key loaded is the open's probe; the phases share the others, each key read once.
    let avail = keys.saturating_sub(1);
    let n = cfg.ops.min(avail / 3);
    if n == 0 {
        return Err(EngineError(format!(
            "coldread needs at least 4 keys (--keys {keys})"
        )));
    }
    let batches = n / BATCH as u64;
    let mut out = ColdReadOut {
        keys,
        key_size: codec.key_size(),
        value_size: codec.value_size(),
        value_threshold: opts.value_threshold,
        value_cache: opts.value_cache_bytes.unwrap_or(0),
        ..ColdReadOut::default()
    };

    // The load, the settle step (ringlog: Db::checkpoint, the values leave memory), the close.
    let started = Instant::now();
    sysinfo::trim_heap();
    let peak_reset = sysinfo::reset_peak_rss();
    let engine = kind.open(dir, mode, opts)?;
    res.io_path = engine.io_path();
    let loaded = match preload(&*engine, codec, keys) {
        Ok(written) => engine.settle().map(|s| (written, s)),
        Err(e) => Err(e),
    };
    let (written, settled) = match loaded {
        Ok(x) => x,
        Err(e) => {
            let _ = engine.close();
            return Err(e);
        }
    };
    engine.close()?;
    out.load = started.elapsed();
    out.peak_rss_load = sysinfo::peak_rss_bytes().filter(|_| peak_reset);
    out.settled_by = settled.map(|s| s.what);
    res.lifetime_user_bytes = written;
    res.live_keys = keys;
    out.space =
        sysinfo::dir_space(dir).map_err(|e| EngineError(format!("the directory's size: {e}")))?;
    out.floor_is_checkpoint = has_file_ending(dir, ".ckpt");

    // The keys each phase reads: random, distinct, none read twice.
    let mut rng = Rng::new(0xc01d_0000 + keys);
    let probe = keys - 1;
    let mut used: HashSet<u64> = HashSet::from([probe]);
    let mut pick = |count: u64| -> Vec<u64> {
        (0..count)
            .map(|_| loop {
                let idx = rng.below(keys);
                if used.insert(idx) {
                    break idx;
                }
            })
            .collect()
    };
    let get_keys = pick(n);
    let many_keys = pick(batches * BATCH as u64);
    let seq_keys = pick(batches * BATCH as u64);
    drop(used);

    // 1. The cold open.
    sysinfo::trim_heap();
    let peak_reset = sysinfo::reset_peak_rss();
    let rss0 = sysinfo::rss_bytes();
    let (engine, open) = cold_open(
        kind,
        mode,
        dir,
        device,
        codec,
        opts,
        (probe, 1),
        Some(".ckpt"),
        &mut res.notes,
    )?;
    out.rss_after_open = sysinfo::rss_bytes();
    out.rss_open_growth = rss0
        .zip(out.rss_after_open)
        .map(|(a, b)| b as i64 - a as i64);
    out.open = open;
    out.index = engine.index_memory();
    out.values_open = engine.disk_values();
    res.index = out.index;
    res.rss_delta = out.rss_open_growth;
    res.notes.extend(recovery_note(&out.open));

    let mut check = Checks::default();
    let phases = run_phases(
        &*engine, cfg, dir, device, codec, &get_keys, &many_keys, &seq_keys, &mut out, &mut check,
        res,
    );
    out.values_end = engine.disk_values();
    out.rss_after_reads = sysinfo::rss_bytes();
    out.peak_rss_serving = sysinfo::peak_rss_bytes().filter(|_| peak_reset);
    if let Err(e) = phases {
        let _ = engine.close();
        return Err(e);
    }
    // A sample of the whole key space (and keys never written) after the phases too.
    let exp = Expected {
        threads: 1,
        parts: Vec::new(),
        whole: None,
        preloaded: keys,
        inserted: Vec::new(),
        bound: keys,
    };
    let sample = verify(&*engine, codec, &exp, 1000, hooks);
    engine.close()?;
    res.files = sysinfo::dir_bytes(dir).ok();
    res.verified = match (check.bad.take(), sample) {
        (Some(b), _) => Err(b),
        (None, Err(e)) => Err(e),
        (None, Ok(s)) => Ok(check.checked + 1 + s),
    };
    res.ops = out.gets.reads;
    res.hist = out.gets.hist.clone();
    res.elapsed = out.gets.busy;
    res.device = out.gets.device;
    res.notes.extend(notes(&out));
    res.cold_read = Some(out);
    Ok(())
}

/// Values read by the phases and checked, and the first wrong one.
#[derive(Default)]
struct Checks {
    checked: u64,
    bad: Option<String>,
}

impl Checks {
    fn value(&mut self, codec: &Codec, what: &str, idx: u64, found: bool, value: &[u8]) {
        let wrong = if !found {
            Some("missing".to_string())
        } else {
            codec.check(value, idx, 1).err().map(|e| e.to_string())
        };
        match wrong {
            None => self.checked += 1,
            Some(w) if self.bad.is_none() => {
                self.bad = Some(format!("{what}: key {idx}: {w}"));
            }
            Some(_) => {}
        }
    }
}

/// What the engine's recovery at the cold open reported.
fn recovery_note(open: &ColdOpen) -> Option<String> {
    open.recovery.map(|r| {
        format!(
            "the engine's recovery at the cold open took {:.0} ms{}: a checkpoint of {} keys, \
                 then {} transactions from {} segments",
            r.duration_ns as f64 / 1e6,
            r.split_text(),
            r.checkpoint_keys,
            r.transactions,
            r.segments
        )
    })
}

fn has_file_ending(dir: &Path, suffix: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten()
            .any(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(suffix)))
    })
}

/// Drops the directory's files from the page cache; a note if it cannot.
fn drop_cache(dir: &Path, notes: &mut Vec<String>) {
    if let Err(e) = sysinfo::evict(dir) {
        let n = format!("warm: could not drop the files from the page cache ({e})");
        if !notes.contains(&n) {
            notes.push(n);
        }
    }
}

/// The read phases on the open engine: cold gets, the pread floor, get_many against sequential
/// gets. A deadline (`--duration`) ends the gets and the get_many phase early; the floor then
/// reads as many as the gets did, the sequential gets as many units as get_many made calls.
#[allow(clippy::too_many_arguments)]
fn run_phases(
    engine: &dyn Engine,
    cfg: &Config,
    dir: &Path,
    device: Option<&str>,
    codec: &Codec,
    get_keys: &[u64],
    many_keys: &[u64],
    seq_keys: &[u64],
    out: &mut ColdReadOut,
    check: &mut Checks,
    res: &mut RunResult,
) -> EResult<()> {
    let deadline = || cfg.duration.map(|d| Instant::now() + d);
    let over = |d: Option<Instant>| d.is_some_and(|d| Instant::now() >= d);

    // 2. Cold gets, one key each, each followed by one read of the floor: as many raw preads
    // of a record's bytes at random places of the segments, so that both see the same state of
    // the device and the page cache (run one after the other, they differed by drift alone).
    out.pread_size = ringlog_format::encoded_len(codec.key_size(), codec.value_size());
    let mut floor = PreadFloor::prepare(dir, out.pread_size, get_keys.len() as u64)
        .map_err(|e| EngineError(format!("the pread floor: {e}")))?;
    if floor.is_none() {
        res.notes.push(format!(
            "no file holds a record of {} bytes: no pread floor",
            out.pread_size
        ));
    }
    let mut pread = Phase::default();
    drop_cache(dir, &mut res.notes);
    let mut key = codec.key_buf();
    let mut buf = Vec::with_capacity(codec.value_size());
    let d0 = disk(device);
    let cpu0 = sysinfo::cpu_time();
    let wcpu0 = sysinfo::thread_cpu_time();
    let end = deadline();
    for &idx in get_keys {
        codec.set_key(&mut key, idx);
        let t0 = Instant::now();
        let found = engine.get(&key, &mut buf)?;
        out.gets.time(t0, 1);
        check.value(codec, "a cold get", idx, found, &buf);
        if let Some(f) = &mut floor {
            let t0 = Instant::now();
            f.read_one()
                .map_err(|e| EngineError(format!("the pread floor: {e}")))?;
            pread.time(t0, 1);
        }
        if over(end) {
            break;
        }
    }
    res.cpu = sysinfo::cpu_time().saturating_sub(cpu0);
    res.worker_cpu = sysinfo::thread_cpu_time().saturating_sub(wcpu0);
    // Machine-wide counters: the device's reads of each get and its pread together (see the
    // notes); they cannot be split, so the floor's phase has none of its own.
    out.gets.device = d0.zip(disk(device)).map(|(a, b)| b.since(&a));
    if let Some(f) = floor {
        out.pread = Some(pread);
        out.pread_files = f.files_read();
    }

    // 3. get_many of BATCH keys against BATCH sequential gets, other keys, each cold.
    if many_keys.is_empty() {
        res.notes.push(format!(
            "fewer than {} keys per phase: get_many not measured",
            BATCH
        ));
        return Ok(());
    }
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::new()).collect();
    let mut found = [false; BATCH];
    let mut batch: Vec<Vec<u8>> = (0..BATCH).map(|_| codec.key_buf()).collect();
    drop_cache(dir, &mut res.notes);
    let d0 = disk(device);
    let end = deadline();
    for chunk in many_keys.chunks_exact(BATCH) {
        for (k, &idx) in batch.iter_mut().zip(chunk) {
            codec.set_key(k, idx);
        }
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        found = [false; BATCH];
        let t0 = Instant::now();
        engine.get_many(&refs, &mut |i, v| {
            if let Some(v) = v {
                bufs[i].clear();
                bufs[i].extend_from_slice(v);
                found[i] = true;
            }
        })?;
        out.many.time(t0, BATCH as u64);
        for (i, &idx) in chunk.iter().enumerate() {
            check.value(codec, "get_many", idx, found[i], &bufs[i]);
        }
        if over(end) {
            break;
        }
    }
    out.many.device = d0.zip(disk(device)).map(|(a, b)| b.since(&a));
    let units = out.many.hist.count() as usize;
    drop_cache(dir, &mut res.notes);
    let d0 = disk(device);
    for chunk in seq_keys.chunks_exact(BATCH).take(units) {
        for (k, &idx) in batch.iter_mut().zip(chunk) {
            codec.set_key(k, idx);
        }
        let t0 = Instant::now();
        for i in 0..BATCH {
            found[i] = engine.get(&batch[i], &mut bufs[i])?;
        }
        out.seq.time(t0, BATCH as u64);
        for (i, &idx) in chunk.iter().enumerate() {
            check.value(codec, "a sequential get", idx, found[i], &bufs[i]);
        }
    }
    out.seq.device = d0.zip(disk(device)).map(|(a, b)| b.since(&a));
    Ok(())
}

/// The raw pread floor of cold gets: reads of `size` bytes (a record's) at random 8-aligned
/// offsets of the log segments (`*.log`; every file when no segment holds `size` bytes: a peer's
/// files, or ringlog's with the values in the checkpoint), one at a time, each timed by the
/// caller between two cold gets.
struct PreadFloor {
    files: Vec<(File, u64)>,
    /// Cumulative counts of each file's offsets, for drawing one uniformly.
    slots: Vec<u64>,
    total: u64,
    bytes: u64,
    segments: bool,
    rng: Rng,
    buf: Vec<u8>,
}

impl PreadFloor {
    /// Opens the files of `dir` that can hold `size` bytes; `None` if none can.
    fn prepare(dir: &Path, size: usize, count: u64) -> std::io::Result<Option<PreadFloor>> {
        let size64 = size as u64;
        let all: Vec<(PathBuf, u64)> = sysinfo::file_extents(dir)?
            .into_iter()
            .filter(|(_, extent)| *extent >= size64)
            .collect();
        let named = |p: &PathBuf| p.to_str().is_some_and(|n| n.ends_with(".log"));
        let segments = all.iter().any(|(p, _)| named(p));
        let logs: Vec<(PathBuf, u64)> = if segments {
            all.into_iter().filter(|(p, _)| named(p)).collect()
        } else {
            all
        };
        // Each file's 8-aligned offsets at which `size` bytes fit below its last non-zero byte.
        let mut files: Vec<(File, u64)> = Vec::new();
        let mut slots: Vec<u64> = Vec::new();
        let mut total = 0u64;
        let mut bytes = 0u64;
        for (path, extent) in &logs {
            files.push((File::open(path)?, *extent));
            total += (extent - size64) / 8 + 1;
            slots.push(total);
            bytes += extent;
        }
        if files.is_empty() || count == 0 {
            return Ok(None);
        }
        Ok(Some(PreadFloor {
            files,
            slots,
            total,
            bytes,
            segments,
            rng: Rng::new(0xf1_00f0 + count),
            buf: vec![0u8; size],
        }))
    }

    /// One read at a random place.
    fn read_one(&mut self) -> std::io::Result<()> {
        let slot = self.rng.below(self.total);
        let f = self.slots.partition_point(|&end| end <= slot);
        let first = if f == 0 { 0 } else { self.slots[f - 1] };
        let offset = (slot - first) * 8;
        self.files[f].0.read_exact_at(&mut self.buf, offset)
    }

    /// What the reads chose among.
    fn files_read(&self) -> PreadFiles {
        PreadFiles {
            files: self.files.len(),
            bytes: self.bytes,
            segments: self.segments,
        }
    }
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}×"))
}

/// The device's reads during a phase, per unit.
fn device_per(phase: &Phase, per: u64, unit: &str) -> String {
    match phase.device {
        Some(d) if per > 0 => format!(
            "; the device read {:.1} KiB in {:.2} requests per {unit}",
            d.read_bytes as f64 / 1024.0 / per as f64,
            d.reads as f64 / per as f64
        ),
        _ => String::new(),
    }
}

fn latencies(p: &Phase) -> String {
    format!(
        "p50 {} µs, p99 {} µs, max {} µs",
        us(p.hist.percentile(50.0)),
        us(p.hist.percentile(99.0)),
        us(p.hist.max())
    )
}

fn notes(o: &ColdReadOut) -> Vec<String> {
    let mut n = Vec::new();
    let kv = (o.key_size + o.value_size) as u64;
    n.push(format!(
        "{} keys of {} + {} B loaded in transactions of 1,000{}, closed: {:.1} s; the directory \
         holds {} in {} files ({:.2}× the data){}",
        thousands(o.keys as f64),
        o.key_size,
        o.value_size,
        o.settled_by
            .as_ref()
            .map_or(String::new(), |s| format!(", then {s}")),
        o.load.as_secs_f64(),
        mb(o.space.allocated),
        o.space.files,
        o.space.allocated as f64 / (o.keys * kv).max(1) as f64,
        if o.values_open.is_some() {
            let threshold = match o.value_threshold {
                Some(t) => format!("Some({t})"),
                None => "None (every value in memory)".into(),
            };
            format!(
                "; opened with value_threshold {threshold}, value_cache_bytes {} MiB",
                o.value_cache >> 20
            )
        } else {
            "; the engine's own cache settings (--value-threshold and --value-cache are ringlog's)"
                .into()
        },
    ));
    let open = &o.open;
    n.push(format!(
        "cold open: to the first correct read (of the last key loaded) {:.1} ms; floor ({} read \
         cold, sequentially: {}) {:.1} ms; open ÷ floor {}{}",
        open.open.as_secs_f64() * 1e3,
        if o.floor_is_checkpoint {
            "the checkpoint file (*.ckpt)".to_string()
        } else {
            format!("every file of the directory, {}", open.floor_files)
        },
        mb(open.floor_bytes),
        open.floor.as_secs_f64() * 1e3,
        ratio(open.ratio()),
        open.device_read_bytes.map_or(String::new(), |b| format!(
            "; the device read {} during the open",
            mb(b)
        )),
    ));
    let per_key = |b: i64| b as f64 / o.keys.max(1) as f64;
    n.push(format!(
        "memory after the cold open: resident set {} ({} more than before the open, {} B per \
         key){}; after the read phases {}; peak from the open to the end of the reads {}, \
         peak while loading {}",
        o.rss_after_open.map_or("-".into(), mb),
        o.rss_open_growth
            .map_or("-".into(), |g| mb(g.max(0) as u64)),
        o.rss_open_growth
            .map_or("-".into(), |g| format!("{:.1}", per_key(g))),
        match (o.index, o.index_per_key()) {
            (Some(m), Some(per)) => format!(
                "; the engine's index {} for {} keys: {per:.1} B per key, {:.1} B beyond the \
                 key's {} B",
                mb(m.bytes),
                thousands(o.values_open.map_or(0, |v| v.keys) as f64),
                per - o.key_size as f64,
                o.key_size
            ),
            _ => "; the engine does not account for its index".into(),
        },
        o.rss_after_reads.map_or("-".into(), mb),
        o.peak_rss_serving.map_or("-".into(), mb),
        o.peak_rss_load.map_or("-".into(), mb),
    ));
    n.push(format!(
        "cold gets: {} random distinct keys, one get each, the files dropped from the page cache \
         first: {}, {} gets/s{}",
        thousands(o.gets.reads as f64),
        latencies(&o.gets),
        thousands(o.gets.reads_per_sec()),
        device_per(
            &o.gets,
            o.gets.reads,
            "get and pread pair (each get followed by a read of the floor)"
        ),
    ));
    if let Some(p) = &o.pread {
        n.push(format!(
            "raw pread floor, one read after each get: {} buffered preads of {} B (a Write \
             record of the key and value) at random 8-aligned offsets of {} {} ({}), cold: {}, \
             {} reads/s; cold get p50 ÷ pread p50 {}",
            thousands(p.reads as f64),
            o.pread_size,
            o.pread_files.files,
            if o.pread_files.segments {
                "segment files"
            } else {
                "files (no log segment holds a record: every file)"
            },
            mb(o.pread_files.bytes),
            latencies(p),
            thousands(p.reads_per_sec()),
            ratio(o.get_p50_ratio()),
        ));
    }
    if o.many.reads > 0 {
        n.push(format!(
            "get_many of {BATCH} cold keys: {} calls, {} per call, {} keys/s{}; {BATCH} \
             sequential gets timed as one unit (other keys, cold): {} units, {} per unit, {} \
             keys/s{}; get_many ÷ sequential throughput {}",
            thousands(o.many.hist.count() as f64),
            latencies(&o.many),
            thousands(o.many.reads_per_sec()),
            device_per(&o.many, o.many.hist.count(), "call"),
            thousands(o.seq.hist.count() as f64),
            latencies(&o.seq),
            thousands(o.seq.reads_per_sec()),
            device_per(&o.seq, o.seq.hist.count(), "unit"),
            ratio(o.batch_ratio()),
        ));
    }
    if let (Some(a), Some(b)) = (o.values_open, o.values_end) {
        n.push(format!(
            "the engine's values on disk: {} reads from disk ({} of records) and {} cache hits \
             over the read phases, {} at the open; its cache holds {} at the end; {} log segments \
             kept for the values",
            thousands(b.reads.saturating_sub(a.reads) as f64),
            mb(b.read_bytes.saturating_sub(a.read_bytes)),
            thousands(b.cache_hits.saturating_sub(a.cache_hits) as f64),
            thousands(a.reads as f64),
            mb(b.cache_bytes),
            b.segments,
        ));
    }
    n
}
