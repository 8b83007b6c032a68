//! `readonly`: ringlog's `Db::open_read_only` against `Db::open` on the same closed database,
//! and beside a live writer, against the floor of reading the log's segment files. ringlog only.
//!
//! 1. **Build.** `--keys` records (version 1 of keys `0..keys`, the harness's self-describing
//!    values, [`Codec`]) written in transactions of 1,000 and closed. Background checkpoints are
//!    off and the close writes no checkpoint, so every open replays the whole log (as `recover`).
//! 2. **Closed.** [`OPENS`] rounds, each after dropping the directory's files from the page
//!    cache before every call (cold): a sequential read of the segment files up to their last
//!    non-zero byte in 1 MiB reads (the floor), then `Db::open` and `Db::open_read_only` with the
//!    same options (their order alternating from round to round), each handle checked and closed
//!    before the next call. Then the same [`OPENS`] rounds again without dropping anything
//!    (warm). Each open is timed from the call to its return.
//! 3. **Live.** The database opened for writing in this process, one thread committing puts of
//!    new keys (`keys`, `keys + 1`, ...) one per transaction, continuously, paced at
//!    [`LIVE_PUTS_PER_SEC`], in the run's mode (Buffered unless `--durability` says otherwise);
//!    [`OPENS`] times, `Db::open_read_only` of the same directory beside it, timed the same way,
//!    checked and closed. (Unpaced, the writer added half the database per second on the
//!    project's VM: each open replayed more than the last, slowing it, and the phase ran away —
//!    6.5 M records and 6 s at the fifth open of a 1 M-record run.)
//! 4. **Checks.** Every record read back once from the first cold read-only handle, and a sample
//!    of [`SAMPLE`] records (plus keys never written, which must be absent) from every other
//!    handle; the read-only handle says it is read-only and refuses a put; no read-only open
//!    changes the directory (its files' names, sizes and modification times); each live open
//!    succeeds, recovers at least the writer's durable LSN read just before the call, and holds
//!    every writer key that was durable then and a prefix of the writer's puts (no later put
//!    without every earlier one), each value byte for byte. A failed check fails the run.
//!
//! Each measurement is one table row (see [`Variant`]); [`rows`] splits the run's result into
//! them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ringlog_db::{Db, Lsn, Options};

use super::runs::{drop_cache, segment_files, timed, Call};
use super::{preload, Hooks, RunResult};
use crate::args::Config;
use crate::engine::{err, EResult, Engine, EngineError, EngineKind, Mode, OpenOpts, RecoveryInfo};
use crate::engines::ringlog::{options, Ringlog};
use crate::hist::Histogram;
use crate::keys::{Codec, Rng};
use crate::report::{thousands, Floor};
use crate::sysinfo::{self, DiskStat};

/// Calls of each kind: the floor, `Db::open` and `Db::open_read_only`, cold and warm, and the
/// live read-only opens.
pub const OPENS: usize = 5;

/// Records read back from each handle but the first read-only one (which reads them all).
pub const SAMPLE: u64 = 1000;

/// The live writer's pace, puts per second (it commits in bursts of ~1 ms at full speed, sleeping
/// when ahead; slower when it cannot keep up, e.g. Strict).
pub const LIVE_PUTS_PER_SEC: u64 = 100_000;

/// One measurement: a table row of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The sequential read of the segment files, cold.
    FloorCold,
    /// `Db::open` of the closed database, cold.
    OpenCold,
    /// `Db::open_read_only` of the closed database, cold.
    ReadOnlyCold,
    /// The sequential read of the segment files, warm.
    FloorWarm,
    /// `Db::open`, warm.
    OpenWarm,
    /// `Db::open_read_only`, warm.
    ReadOnlyWarm,
    /// `Db::open_read_only` beside a live writer (warm: the writer's files are in the page cache).
    ReadOnlyLive,
}

impl Variant {
    /// Every measurement, in table order.
    pub const ALL: [Variant; 7] = [
        Variant::FloorCold,
        Variant::OpenCold,
        Variant::ReadOnlyCold,
        Variant::FloorWarm,
        Variant::OpenWarm,
        Variant::ReadOnlyWarm,
        Variant::ReadOnlyLive,
    ];

    /// The table's workload column (at most 16 characters).
    pub fn label(self) -> &'static str {
        match self {
            Variant::FloorCold => "ro floor cold",
            Variant::OpenCold => "ro open cold",
            Variant::ReadOnlyCold => "ro open_ro cold",
            Variant::FloorWarm => "ro floor warm",
            Variant::OpenWarm => "ro open warm",
            Variant::ReadOnlyWarm => "ro open_ro warm",
            Variant::ReadOnlyLive => "ro open_ro live",
        }
    }

    /// Its name in the JSON report.
    pub fn json_name(self) -> &'static str {
        match self {
            Variant::FloorCold => "floor_cold",
            Variant::OpenCold => "open_cold",
            Variant::ReadOnlyCold => "open_read_only_cold",
            Variant::FloorWarm => "floor_warm",
            Variant::OpenWarm => "open_warm",
            Variant::ReadOnlyWarm => "open_read_only_warm",
            Variant::ReadOnlyLive => "open_read_only_live",
        }
    }

    /// What is timed.
    pub fn call(self) -> &'static str {
        match self {
            Variant::FloorCold | Variant::FloorWarm => {
                "sequential 1 MiB reads of the segment files"
            }
            Variant::OpenCold | Variant::OpenWarm => "Db::open",
            Variant::ReadOnlyCold | Variant::ReadOnlyWarm => "Db::open_read_only",
            Variant::ReadOnlyLive => "Db::open_read_only beside a live writer",
        }
    }

    /// Whether the files are dropped from the page cache before each call.
    pub fn is_cold(self) -> bool {
        matches!(
            self,
            Variant::FloorCold | Variant::OpenCold | Variant::ReadOnlyCold
        )
    }

    /// The floor it is compared with: the read of the same temperature (warm for the live opens:
    /// the writer's files are in the page cache).
    pub fn floor(self) -> Variant {
        if self.is_cold() {
            Variant::FloorCold
        } else {
            Variant::FloorWarm
        }
    }
}

/// The timed calls of one measurement.
#[derive(Clone, Debug)]
pub struct Series {
    /// Which measurement.
    pub variant: Variant,
    /// Each call, in the order made.
    pub calls: Vec<Call>,
    /// Records each call read (the floor: the records the log holds; a live open: the records
    /// the handle recovered, the writer's included).
    pub records: Vec<u64>,
}

impl Series {
    fn new(variant: Variant) -> Series {
        Series {
            variant,
            calls: Vec::new(),
            records: Vec::new(),
        }
    }

    /// The calls' wall times, sorted.
    pub fn sorted(&self) -> Vec<Duration> {
        let mut t: Vec<Duration> = self.calls.iter().map(|c| c.time).collect();
        t.sort_unstable();
        t
    }

    /// The median wall time (the mean of the two middle ones for an even count).
    pub fn median(&self) -> Option<Duration> {
        let t = self.sorted();
        let n = t.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(t[n / 2]),
            _ => Some((t[n / 2 - 1] + t[n / 2]) / 2),
        }
    }

    /// The fastest call.
    pub fn min(&self) -> Option<Duration> {
        self.sorted().first().copied()
    }

    /// The slowest call.
    pub fn max(&self) -> Option<Duration> {
        self.sorted().last().copied()
    }

    /// The calls' wall times as a histogram (the table's percentiles).
    pub fn hist(&self) -> Histogram {
        let mut h = Histogram::new();
        for c in &self.calls {
            h.record(c.time.as_nanos() as u64);
        }
        h
    }

    /// Every call's wall time, CPU and device counters added up.
    pub fn total(&self) -> Call {
        let mut t = Call::default();
        for c in &self.calls {
            t.time += c.time;
            t.cpu += c.cpu;
            t.thread_cpu += c.thread_cpu;
            t.device = match (t.device, c.device) {
                (None, d) => d,
                (Some(a), Some(b)) => Some(add(a, b)),
                (Some(_), None) => None,
            };
        }
        t
    }

    /// Records over every call.
    pub fn records_total(&self) -> u64 {
        self.records.iter().sum()
    }

    /// Records per second of the calls' wall time.
    pub fn records_per_sec(&self) -> f64 {
        self.records_total() as f64 / self.total().time.as_secs_f64().max(1e-9)
    }
}

fn add(a: DiskStat, b: DiskStat) -> DiskStat {
    DiskStat {
        reads: a.reads + b.reads,
        read_bytes: a.read_bytes + b.read_bytes,
        writes: a.writes + b.writes,
        write_bytes: a.write_bytes + b.write_bytes,
        flushes: a.flushes + b.flushes,
    }
}

/// One live read-only open: what the writer had done before it and what the handle saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveOpen {
    /// The writer's puts that had returned before the open began.
    pub written_before: u64,
    /// Of them, those durable before it began (their LSN at most `durable_lsn`).
    pub durable_before: u64,
    /// The writer's `Db::durable_lsn()`, read just before the call.
    pub durable_lsn: Lsn,
    /// The writer's keys the handle holds (a prefix of its puts).
    pub seen: u64,
    /// The last LSN the handle recovered.
    pub seen_lsn: Lsn,
    /// The writer's puts that had returned when the open returned.
    pub written_after: u64,
}

/// The live phase: the writer and what each read-only open saw.
#[derive(Clone, Debug, Default)]
pub struct Live {
    /// Each open, in order.
    pub opens: Vec<LiveOpen>,
    /// Puts the writer committed over the phase.
    pub puts: u64,
    /// The writer's wall time.
    pub time: Duration,
    /// The writer thread's CPU time.
    pub cpu: Duration,
}

impl Live {
    /// The writer's puts per second.
    pub fn puts_per_sec(&self) -> f64 {
        self.puts as f64 / self.time.as_secs_f64().max(1e-9)
    }

    /// The median of `f` over the opens.
    pub fn median(&self, f: impl Fn(&LiveOpen) -> u64) -> u64 {
        let mut v: Vec<u64> = self.opens.iter().map(f).collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    }
}

/// What the readonly workload measured.
#[derive(Clone, Debug, Default)]
pub struct ReadOnlyOut {
    /// Records written (keys `0..records`, version 1).
    pub records: u64,
    /// Key size in bytes.
    pub key_size: usize,
    /// Value size in bytes.
    pub value_size: usize,
    /// Wall time of the build (open, writes, close).
    pub build: Duration,
    /// Segment files (`*.log`) after the build.
    pub segments: usize,
    /// Their bytes up to their last non-zero byte: what the floor reads.
    pub log_bytes: u64,
    /// Whether the files could be dropped from the page cache before each cold call.
    pub cold: bool,
    /// Every measurement, in [`Variant::ALL`] order.
    pub series: Vec<Series>,
    /// The live phase.
    pub live: Live,
    /// What the engine's recovery reported at the first cold `Db::open`.
    pub recovery_open: Option<RecoveryInfo>,
    /// The same for the read-only open.
    pub recovery_read_only: Option<RecoveryInfo>,
    /// What a writable open and close changed in the directory, the first time one did.
    pub open_changed_dir: Option<String>,
    /// The measurement this row reports (set by [`rows`]; `None` on the run's result).
    pub row: Option<Variant>,
}

impl ReadOnlyOut {
    /// The measurement `v`.
    pub fn series(&self, v: Variant) -> Option<&Series> {
        self.series.iter().find(|s| s.variant == v)
    }

    /// `v`'s median over its floor's.
    pub fn ratio(&self, v: Variant) -> Option<f64> {
        let a = self.series(v)?.median()?.as_secs_f64();
        let f = self.series(v.floor())?.median()?.as_secs_f64();
        (f > 0.0).then(|| a / f)
    }

    /// `a`'s median over `b`'s.
    pub fn ratio_of(&self, a: Variant, b: Variant) -> Option<f64> {
        let x = self.series(a)?.median()?.as_secs_f64();
        let y = self.series(b)?.median()?.as_secs_f64();
        (y > 0.0).then(|| x / y)
    }

    /// The floor of this row's measurement, as the table's ×floor and p50× columns use it
    /// (ops: records).
    pub fn floor(&self) -> Option<Floor> {
        let f = self.series(self.row?.floor())?;
        (!f.calls.is_empty()).then(|| Floor {
            ops_per_sec: f.records_per_sec(),
            p50: f.hist().percentile(50.0),
        })
    }
}

/// The run's result split into one row per measurement (each with its series as the row's
/// operations: records per call, latency per call); any other result as it is.
pub fn rows(res: RunResult) -> Vec<RunResult> {
    let Some(out) = res.readonly.as_ref().filter(|o| o.row.is_none()) else {
        return vec![res];
    };
    if out.series.iter().all(|s| s.calls.is_empty()) {
        return vec![res];
    }
    let mut rows = Vec::new();
    for s in out.series.iter().filter(|s| !s.calls.is_empty()) {
        let mut r = res.clone();
        let total = s.total();
        r.ops = s.records_total();
        r.elapsed = total.time;
        r.hist = s.hist();
        r.cpu = total.cpu;
        r.worker_cpu = total.thread_cpu;
        r.device = total.device;
        if let Some(o) = r.readonly.as_mut() {
            o.row = Some(s.variant);
        }
        rows.push(r);
    }
    rows
}

/// A directory's files as names, sizes and modification times, sorted: what a read-only open
/// must leave as it found it.
type Listing = Vec<(String, u64, i64, i64)>;

fn listing(dir: &Path) -> std::io::Result<Listing> {
    use std::os::unix::fs::MetadataExt;
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        v.push((
            e.file_name().to_string_lossy().into_owned(),
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
        ));
    }
    v.sort();
    Ok(v)
}

/// What changed between two listings, if anything.
fn listing_diff(before: &Listing, after: &Listing) -> Option<String> {
    if before == after {
        return None;
    }
    let name = |l: &Listing, n: &str| l.iter().find(|x| x.0 == n).cloned();
    let mut what = Vec::new();
    for b in before {
        match name(after, &b.0) {
            None => what.push(format!("{} removed", b.0)),
            Some(a) if a.1 != b.1 => what.push(format!("{} {} → {} bytes", b.0, b.1, a.1)),
            Some(a) if a != *b => what.push(format!("{} modified", b.0)),
            Some(_) => {}
        }
    }
    for a in after {
        if name(before, &a.0).is_none() {
            what.push(format!("{} created ({} bytes)", a.0, a.1));
        }
    }
    Some(what.join(", "))
}

/// The checks' tally: keys checked, and the first failure.
struct Tally {
    keys: u64,
    failed: Option<String>,
}

impl Tally {
    fn add(&mut self, r: Result<u64, String>) {
        match r {
            Ok(n) => self.keys += n,
            Err(e) => {
                self.failed.get_or_insert(e);
            }
        }
    }
}

/// Checks that key `idx` holds version 1 (`present`) or nothing; `corrupt` flips a byte of the
/// value first (the test hook), once.
fn check_key(
    db: &Db,
    codec: &Codec,
    idx: u64,
    present: bool,
    corrupt: &mut bool,
) -> Result<(), String> {
    let key = codec.key(idx);
    let v = db
        .get_with(&key, |v| v.map(|(v, _)| v.to_vec()))
        .map_err(|e| format!("read-back of key {idx}: {e}"))?;
    match (v, present) {
        (None, false) => Ok(()),
        (Some(_), false) => Err(format!("key {idx} was never written but reads back")),
        (None, true) => Err(format!("key {idx} is missing")),
        (Some(mut v), true) => {
            if *corrupt && !v.is_empty() {
                *corrupt = false;
                let i = v.len() - 1;
                v[i] ^= 0x40;
            }
            codec
                .check(&v, idx, 1)
                .map_err(|e| format!("key {idx}: {e}"))
        }
    }
}

/// Every record `0..records`, then 16 keys past them (absent); returns the keys checked.
fn check_all(db: &Db, codec: &Codec, records: u64, corrupt: &mut bool) -> Result<u64, String> {
    for idx in 0..records {
        check_key(db, codec, idx, true, corrupt)?;
    }
    for i in 0..16 {
        check_key(db, codec, records + 1 + i * 7919, false, corrupt)?;
    }
    Ok(records + 16)
}

/// The first and last record, [`SAMPLE`] random ones, and 16 keys from `absent_from` on
/// (absent); returns the keys checked.
fn check_sample(
    db: &Db,
    codec: &Codec,
    records: u64,
    absent_from: u64,
    rng: &mut Rng,
) -> Result<u64, String> {
    let mut no = false;
    let mut n = 0;
    let mut keys: Vec<u64> = vec![0, records.saturating_sub(1)];
    keys.extend((0..SAMPLE.min(records)).map(|_| rng.below(records.max(1))));
    for idx in keys.into_iter().filter(|&i| i < records) {
        check_key(db, codec, idx, true, &mut no)?;
        n += 1;
    }
    for i in 0..16 {
        check_key(db, codec, absent_from + 1 + i * 7919, false, &mut no)?;
        n += 1;
    }
    Ok(n)
}

/// The readonly workload; see the module's documentation and the crate's `--help`.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_readonly(
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
    if mode == Mode::InMemory {
        return Err(EngineError("readonly needs a database on disk".into()));
    }
    // No checkpoint ever: every open replays the whole log, the same for each.
    let opts = &OpenOpts {
        checkpoint_bytes: Some(u64::MAX),
        checkpoint_on_close: false,
        ..opts.clone()
    };
    let o = options(mode, opts);
    let records = cfg.keys;
    let mut out = ReadOnlyOut {
        records,
        key_size: codec.key_size(),
        value_size: codec.value_size(),
        series: Variant::ALL.iter().map(|&v| Series::new(v)).collect(),
        ..ReadOnlyOut::default()
    };

    // 1. The build.
    let started = Instant::now();
    let engine = kind.open(dir, mode, opts)?;
    res.io_path = engine.io_path();
    let written = match preload(&*engine, codec, records) {
        Ok(b) => b,
        Err(e) => {
            let _ = engine.close();
            return Err(e);
        }
    };
    engine.close()?;
    out.build = started.elapsed();
    res.lifetime_user_bytes = written;
    res.live_keys = records;
    let segs =
        segment_files(dir).map_err(|e| EngineError(format!("listing the segment files: {e}")))?;
    out.segments = segs.len();
    out.log_bytes = segs.iter().map(|(_, b)| b).sum();

    // 2 and 3: the closed database, cold then warm; then beside a writer.
    let mut tally = Tally {
        keys: 0,
        failed: None,
    };
    let mut m = Measure {
        dir,
        device,
        codec,
        opts: &o,
        segs: &segs,
        hooks,
        rng: Rng::new(0x2e4d_0000 + records),
        tally: &mut tally,
        out: &mut out,
        notes: &mut res.notes,
        index: None,
        first_read_only: true,
    };
    m.closed()?;
    m.live()?;
    res.index = m.index;
    // The live writer's puts are part of the database's life.
    res.lifetime_user_bytes += out.live.puts * (codec.key_size() + codec.value_size()) as u64;
    res.live_keys += out.live.puts;

    // The result as a whole: the cold read-only opens (rows() splits it into one row each).
    if let Some(s) = out.series(Variant::ReadOnlyCold) {
        let total = s.total();
        res.ops = s.records_total();
        res.elapsed = total.time;
        res.hist = s.hist();
        res.cpu = total.cpu;
        res.worker_cpu = total.thread_cpu;
        res.device = total.device;
    }
    res.files = sysinfo::dir_bytes(dir).ok();
    res.verified = match tally.failed {
        Some(e) => Err(format!("READ-ONLY CHECK FAILED: {e}")),
        None => Ok(tally.keys),
    };
    res.notes.extend(notes(&out));
    if res.verified.is_ok() {
        res.notes.push(format!(
            "checked: every record read back from the first cold read-only handle, {SAMPLE} \
             random ones (and 16 never written, absent) from every other handle; every read-only \
             handle said it was read-only, the first refused a put; no read-only open changed the \
             directory's files (names, sizes, modification times); each live open succeeded, \
             recovered at least the writer's durable LSN read before the call and held every \
             writer key durable before it began ({} of them at the median) and a prefix of \
             the writer's puts ({} at the median), byte for byte",
            thousands(out.live.median(|o| o.durable_before) as f64),
            thousands(out.live.median(|o| o.seen) as f64),
        ));
    }
    res.readonly = Some(out);
    Ok(())
}

/// The measurement's state.
struct Measure<'a> {
    dir: &'a Path,
    device: Option<&'a str>,
    codec: &'a Codec,
    opts: &'a Options,
    segs: &'a [(PathBuf, u64)],
    hooks: &'a Hooks,
    rng: Rng,
    tally: &'a mut Tally,
    out: &'a mut ReadOnlyOut,
    notes: &'a mut Vec<String>,
    /// The index memory of the first cold read-only handle.
    index: Option<crate::engine::IndexMemory>,
    /// The next read-only open of the closed database is the first (its handle reads every
    /// record back).
    first_read_only: bool,
}

impl Measure<'_> {
    fn push(&mut self, v: Variant, call: Call, records: u64) {
        if let Some(s) = self.out.series.iter_mut().find(|s| s.variant == v) {
            s.calls.push(call);
            s.records.push(records);
        }
    }

    /// The floor: the segment files read sequentially.
    fn floor(&mut self, v: Variant) -> EResult<()> {
        let (r, c) = timed(self.device, || sysinfo::read_files(self.segs));
        let (_, bytes) = r.map_err(|e| EngineError(format!("the floor read: {e}")))?;
        if bytes != self.out.log_bytes {
            self.tally.add(Err(format!(
                "the floor read {bytes} bytes of the segment files, they hold {}",
                self.out.log_bytes
            )));
        }
        let records = self.out.records;
        self.push(v, c, records);
        Ok(())
    }

    /// One open of the closed database (`read_only` or writable), timed, checked and closed.
    fn open(&mut self, v: Variant, read_only: bool) -> EResult<()> {
        let io = |e: std::io::Error| EngineError(format!("listing the directory: {e}"));
        let before = listing(self.dir).map_err(io)?;
        let o = self.opts.clone();
        let dir = self.dir;
        let (db, c) = timed(self.device, move || {
            if read_only {
                Db::open_read_only(dir, o)
            } else {
                Db::open(dir, o)
            }
        });
        let what = if read_only {
            "ringlog open_read_only"
        } else {
            "ringlog open"
        };
        let db = db.map_err(|e| err(what, e))?;
        let records = self.out.records;
        self.push(v, c, records);
        let engine = Ringlog::wrap(db);
        let Some(db) = engine.ringlog_db() else {
            return Err(EngineError("no ringlog database".into()));
        };
        let checked = if read_only && self.first_read_only {
            // The first read-only handle: every record, and that it is one.
            self.first_read_only = false;
            self.index = engine.index_memory();
            self.out.recovery_read_only = engine.recovery();
            let mut corrupt = self.hooks.corrupt_one_read;
            check_all(db, self.codec, records, &mut corrupt).and_then(|n| {
                if !db.is_read_only() {
                    return Err("Db::open_read_only returned a handle that is not read-only".into());
                }
                match db.put(&self.codec.key(records), &self.codec.value(records, 1)) {
                    Err(ringlog_db::Error::ReadOnly(_)) => Ok(n),
                    Err(e) => Err(format!(
                        "a put on the read-only handle failed with {e}, not Error::ReadOnly"
                    )),
                    Ok(lsn) => Err(format!("a put on the read-only handle committed at {lsn}")),
                }
            })
        } else if read_only && !db.is_read_only() {
            Err("Db::open_read_only returned a handle that is not read-only".into())
        } else {
            if !read_only && self.out.recovery_open.is_none() {
                self.out.recovery_open = engine.recovery();
            }
            check_sample(db, self.codec, records, records, &mut self.rng)
        };
        self.tally.add(checked);
        Box::new(engine).close()?;
        let after = listing(self.dir).map_err(io)?;
        if let Some(d) = listing_diff(&before, &after) {
            if read_only {
                self.tally
                    .add(Err(format!("a read-only open changed the directory: {d}")));
            } else {
                self.out.open_changed_dir.get_or_insert(d);
            }
        }
        Ok(())
    }

    /// The closed database: an untimed open, then [`OPENS`] cold rounds, then [`OPENS`] warm
    /// ones.
    fn closed(&mut self) -> EResult<()> {
        // Untimed: the process's first index build faults its heap in, which no later open
        // pays (the first round's first open took twice the others before this).
        Db::open_read_only(self.dir, self.opts.clone())
            .and_then(|db| db.close())
            .map_err(|e| err("ringlog open_read_only", e))?;
        let mut cold = true;
        for i in 0..OPENS {
            cold &= drop_cache(self.dir, self.notes);
            self.floor(Variant::FloorCold)?;
            let order = if i % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for read_only in order {
                cold &= drop_cache(self.dir, self.notes);
                let v = if read_only {
                    Variant::ReadOnlyCold
                } else {
                    Variant::OpenCold
                };
                self.open(v, read_only)?;
            }
        }
        self.out.cold = cold;
        // Warm: everything read once (untimed) first.
        sysinfo::read_files(self.segs).map_err(|e| EngineError(format!("the floor read: {e}")))?;
        for i in 0..OPENS {
            self.floor(Variant::FloorWarm)?;
            let order = if i % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for read_only in order {
                let v = if read_only {
                    Variant::ReadOnlyWarm
                } else {
                    Variant::OpenWarm
                };
                self.open(v, read_only)?;
            }
        }
        Ok(())
    }

    /// The live phase: [`OPENS`] read-only opens beside a writer.
    fn live(&mut self) -> EResult<()> {
        let writer_db =
            Db::open(self.dir, self.opts.clone()).map_err(|e| err("ringlog open", e))?;
        let stop = AtomicBool::new(false);
        let count = AtomicU64::new(0);
        let base = self.out.records;
        let codec = self.codec;
        let result = std::thread::scope(|s| {
            let writer = s.spawn(|| live_writer(&writer_db, codec, base, &stop, &count));
            let r = self.live_opens(&writer_db, &count);
            stop.store(true, Ordering::Relaxed);
            let w = writer.join();
            (r, w)
        });
        let (opened, w) = result;
        let closed = writer_db.close().map_err(|e| err("ringlog close", e));
        let w = w.map_err(|_| EngineError("the writer thread panicked".into()))?;
        self.out.live.puts = w.puts;
        self.out.live.time = w.time;
        self.out.live.cpu = w.cpu;
        opened?;
        if let Some(e) = w.error {
            return Err(e);
        }
        closed
    }

    fn live_opens(&mut self, writer: &Db, count: &AtomicU64) -> EResult<()> {
        let base = self.out.records;
        let codec = self.codec;
        let lsn_of = |i: u64| -> EResult<Lsn> {
            writer
                .get_with(&codec.key(base + i), |v| v.map(|(_, l)| l))
                .map_err(|e| err("ringlog get", e))?
                .ok_or_else(|| EngineError(format!("the writer's key {} is missing", base + i)))
        };
        // Until the writer has something durable (at most 5 s).
        let waited = Instant::now();
        while waited.elapsed() < Duration::from_secs(5) {
            if count.load(Ordering::Acquire) > 0 && writer.durable_lsn() >= lsn_of(0)? {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for _ in 0..OPENS {
            let written_before = count.load(Ordering::Acquire);
            let durable_lsn = writer.durable_lsn();
            // The writer's puts are in key order, their LSNs increasing: how many of those
            // that returned are durable.
            let (mut lo, mut hi) = (0, written_before);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if lsn_of(mid)? <= durable_lsn {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            let durable_before = lo;
            let o = self.opts.clone();
            let dir = self.dir;
            let (db, c) = timed(self.device, move || Db::open_read_only(dir, o));
            let written_after = count.load(Ordering::Acquire);
            let db = db.map_err(|e| err("ringlog open_read_only beside a writer", e))?;
            let seen_lsn = db.recovery_stats().last_lsn;
            let mut open = LiveOpen {
                written_before,
                durable_before,
                durable_lsn,
                seen: 0,
                seen_lsn,
                written_after,
            };
            let checked = self.check_live(&db, &mut open);
            self.tally.add(checked);
            self.push(Variant::ReadOnlyLive, c, base + open.seen);
            self.out.live.opens.push(open);
            db.close().map_err(|e| err("ringlog close", e))?;
        }
        Ok(())
    }

    /// What a live read-only handle must hold; sets `open.seen`. Returns the keys checked.
    fn check_live(&mut self, db: &Db, open: &mut LiveOpen) -> Result<u64, String> {
        let base = self.out.records;
        let codec = self.codec;
        let mut no = false;
        let has = |i: u64| -> Result<bool, String> {
            db.get_with(&codec.key(base + i), |v| v.is_some())
                .map_err(|e| format!("read-back of key {}: {e}", base + i))
        };
        if open.seen_lsn < open.durable_lsn {
            return Err(format!(
                "a read-only open beside the writer recovered up to LSN {}, the writer's durable \
                 LSN before it began was {}",
                open.seen_lsn, open.durable_lsn
            ));
        }
        // The writer's keys it holds, assuming a prefix (checked below): the first one missing
        // at or after the durable ones, up to one past the puts returned (one may have been in
        // flight).
        let (mut lo, mut hi) = (open.durable_before, open.written_after + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if has(mid)? {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        open.seen = lo;
        let mut n = 0;
        if open.durable_before > 0 {
            check_key(db, codec, base + open.durable_before - 1, true, &mut no).map_err(|e| {
                format!(
                    "beside the writer, the last of its {} keys durable before the open: {e}",
                    open.durable_before
                )
            })?;
            n += 1;
        }
        // A prefix: a sample of the writer's keys below `seen` present, above it absent.
        let mut idx: Vec<(u64, bool)> = Vec::new();
        if open.seen > 0 {
            idx.push((0, true));
            idx.push((open.seen - 1, true));
            idx.extend((0..SAMPLE.min(open.seen)).map(|_| (self.rng.below(open.seen), true)));
        }
        let past = open.written_after + 1 - open.seen;
        idx.extend((0..SAMPLE.min(past)).map(|_| (open.seen + self.rng.below(past), false)));
        idx.extend((0..16).map(|i| (open.written_after + 2 + i * 7919, false)));
        for (i, present) in idx {
            check_key(db, codec, base + i, present, &mut no).map_err(|e| {
                format!(
                    "beside the writer (it held {} of the writer's keys, {} durable before the \
                     open): {e}",
                    open.seen, open.durable_before
                )
            })?;
            n += 1;
        }
        let sample = check_sample(
            db,
            codec,
            base,
            base + open.written_after + 1,
            &mut self.rng,
        )?;
        Ok(n + sample)
    }
}

/// What the live writer did.
struct WriterOut {
    puts: u64,
    time: Duration,
    cpu: Duration,
    error: Option<EngineError>,
}

/// Puts keys `base`, `base + 1`, ... (version 1), one per transaction, until `stop`, paced at
/// [`LIVE_PUTS_PER_SEC`]; `count` is how many returned.
fn live_writer(
    db: &Db,
    codec: &Codec,
    base: u64,
    stop: &AtomicBool,
    count: &AtomicU64,
) -> WriterOut {
    let cpu0 = sysinfo::thread_cpu_time();
    let t0 = Instant::now();
    let mut key = codec.key_buf();
    let mut val = Vec::with_capacity(codec.value_size());
    let mut n = 0u64;
    let mut error = None;
    while !stop.load(Ordering::Relaxed) {
        // Ahead of the pace by a millisecond or more: wait for it (behind it: full speed).
        let due = t0 + Duration::from_secs_f64(n as f64 / LIVE_PUTS_PER_SEC as f64);
        let now = Instant::now();
        if due > now + Duration::from_millis(1) {
            std::thread::sleep(due - now);
        }
        let idx = base + n;
        codec.set_key(&mut key, idx);
        codec.fill_value(&mut val, idx, 1);
        if let Err(e) = db.put(&key, &val) {
            error = Some(err("ringlog put (the live writer)", e));
            break;
        }
        n += 1;
        count.store(n, Ordering::Release);
    }
    WriterOut {
        puts: n,
        time: t0.elapsed(),
        cpu: sysinfo::thread_cpu_time().saturating_sub(cpu0),
        error,
    }
}

fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1e3;
    if m < 10.0 {
        format!("{m:.2} ms")
    } else if m < 100.0 {
        format!("{m:.1} ms")
    } else {
        format!("{} ms", thousands(m))
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}×"))
}

fn notes(o: &ReadOnlyOut) -> Vec<String> {
    let mut n = Vec::new();
    n.push(format!(
        "build: {} records ({} + {} B) written in transactions of 1,000 and closed in {:.2} s; \
         background checkpoints off and no close-time checkpoint (whatever --checkpoint-bytes \
         says), so every open replays the log: {:.1} MB in {} segment file{}",
        thousands(o.records as f64),
        o.key_size,
        o.value_size,
        o.build.as_secs_f64(),
        o.log_bytes as f64 / 1e6,
        o.segments,
        if o.segments == 1 { "" } else { "s" },
    ));
    n.push(if o.cold {
        format!(
            "after an untimed read-only open (the process's first index build faults its heap \
             in), {OPENS} rounds cold (the database's files dropped from the page cache, fsync + \
             fadvise DONTNEED, before each call), then {OPENS} warm: each the floor, then \
             Db::open and Db::open_read_only with the same options, alternating which goes \
             first; each handle checked and closed before the next call; the live phase last"
        )
    } else {
        format!(
            "{OPENS} rounds, all warm (the files could not be dropped from the page cache); each \
             the floor, then Db::open and Db::open_read_only, alternating which goes first"
        )
    });
    for s in &o.series {
        let (Some(med), Some(lo), Some(hi)) = (s.median(), s.min(), s.max()) else {
            continue;
        };
        let t = s.total();
        let k = s.calls.len().max(1) as f64;
        let floor = if s.variant.floor() == s.variant {
            String::new()
        } else {
            format!(
                "; median ÷ {} median: {}",
                s.variant.floor().label(),
                ratio(o.ratio(s.variant))
            )
        };
        n.push(format!(
            "{} ({}): median {} (min {}, max {}, {} calls), {} records/s{floor}; process CPU {:.0} \
             ms per call{}",
            s.variant.label(),
            s.variant.call(),
            ms(med),
            ms(lo),
            ms(hi),
            s.calls.len(),
            thousands(s.records_per_sec()),
            t.cpu.as_secs_f64() * 1e3 / k,
            t.device.map_or(String::new(), |d| format!(
                "; the device read {:.1} MB per call",
                d.read_bytes as f64 / k / 1e6
            )),
        ));
    }
    let per_record = |a: Variant, b: Variant| {
        let (x, y) = (o.series(a)?, o.series(b)?);
        let (x, y) = (x.records_per_sec(), y.records_per_sec());
        (x > 0.0).then(|| y / x)
    };
    n.push(format!(
        "Db::open_read_only ÷ Db::open (medians): cold {}, warm {}; beside the writer ÷ warm \
         Db::open_read_only: {} (medians; the live opens replay the writer's puts too: per record, \
         from records/s over all calls, {})",
        ratio(o.ratio_of(Variant::ReadOnlyCold, Variant::OpenCold)),
        ratio(o.ratio_of(Variant::ReadOnlyWarm, Variant::OpenWarm)),
        ratio(o.ratio_of(Variant::ReadOnlyLive, Variant::ReadOnlyWarm)),
        ratio(per_record(Variant::ReadOnlyLive, Variant::ReadOnlyWarm)),
    ));
    let l = &o.live;
    if !l.opens.is_empty() {
        n.push(format!(
            "live: the database open for writing in this process, one thread committing puts of \
             new keys paced at {}/s: {} puts in {:.2} s ({}/s, {:.2} CPU-s of its own); all {} \
             read-only opens beside it succeeded; before each, {} of its keys were durable \
             (median), each open saw {} of them (median; {} to {}), recovering {} records at \
             the median",
            thousands(LIVE_PUTS_PER_SEC as f64),
            thousands(l.puts as f64),
            l.time.as_secs_f64(),
            thousands(l.puts_per_sec()),
            l.cpu.as_secs_f64(),
            l.opens.len(),
            thousands(l.median(|x| x.durable_before) as f64),
            thousands(l.median(|x| x.seen) as f64),
            thousands(l.opens.iter().map(|x| x.seen).min().unwrap_or(0) as f64),
            thousands(l.opens.iter().map(|x| x.seen).max().unwrap_or(0) as f64),
            thousands((o.records + l.median(|x| x.seen)) as f64),
        ));
    }
    if let (Some(a), Some(b)) = (o.recovery_open, o.recovery_read_only) {
        n.push(format!(
            "the engine's recovery: first cold Db::open {:.0} ms{}; first cold \
             Db::open_read_only {:.0} ms{}",
            a.duration_ns as f64 / 1e6,
            a.split_text(),
            b.duration_ns as f64 / 1e6,
            b.split_text(),
        ));
    }
    if let Some(d) = &o.open_changed_dir {
        n.push(format!(
            "a writable Db::open and close changed the directory ({d}); the read-only opens \
             changed nothing"
        ));
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(ms: u64) -> Call {
        Call {
            time: Duration::from_millis(ms),
            ..Call::default()
        }
    }

    #[test]
    fn series_medians_and_totals() {
        let mut s = Series::new(Variant::ReadOnlyCold);
        assert_eq!(s.median(), None);
        for ms in [30, 10, 50, 20, 40] {
            s.calls.push(call(ms));
            s.records.push(1000);
        }
        assert_eq!(s.median(), Some(Duration::from_millis(30)));
        assert_eq!(s.min(), Some(Duration::from_millis(10)));
        assert_eq!(s.max(), Some(Duration::from_millis(50)));
        assert_eq!(s.total().time, Duration::from_millis(150));
        assert_eq!(s.records_total(), 5000);
        // The table's p50 is the same call, within the histogram's precision.
        let p50 = s.hist().percentile(50.0) as f64;
        assert!((p50 - 30e6).abs() < 30e6 * 0.01, "{p50}");
        s.calls.push(call(60));
        assert_eq!(s.median(), Some(Duration::from_millis(35)));
        for v in Variant::ALL {
            assert!(v.label().len() <= 16, "{}", v.label());
            assert_eq!(v.floor().floor(), v.floor());
            assert_eq!(v.floor().is_cold(), v.is_cold());
        }
    }

    #[test]
    fn listings_tell_what_changed() {
        let a: Listing = vec![("1.log".into(), 10, 1, 0), ("MANIFEST".into(), 5, 1, 0)];
        assert_eq!(listing_diff(&a, &a.clone()), None);
        let mut b = a.clone();
        b[0].1 = 20;
        b[1].3 = 7;
        b.push(("2.log".into(), 4, 2, 0));
        assert_eq!(
            listing_diff(&a, &b).unwrap(),
            "1.log 10 → 20 bytes, MANIFEST modified, 2.log created (4 bytes)"
        );
        assert_eq!(
            listing_diff(&a, &a[..1].to_vec()).unwrap(),
            "MANIFEST removed"
        );
    }
}
