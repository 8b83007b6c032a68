//! `raft`: openraft log appends (issue 17) — ringlog's `LogStore` (ringlog-openraft), or a
//! RocksDB-backed store as openraft's `log-rocks` example, against an in-memory ceiling as
//! openraft's `log-mem` example, at the same appender count in the same run.
//!
//! 1. **Appenders.** `--threads` threads, each with a log store of its own (a Raft group of its
//!    own), each on a current-thread tokio runtime of its own. From an empty log (checked with
//!    `get_log_state`), each appends entries `1, 2, ...` one at a time — a `Request::Set` of
//!    `g<store>/<index>` to a value of `--value-size` bytes (default 1 KiB,
//!    [`crate::args::RAFT_VALUE_SIZE`]; [`Entries`]) in term 1 — through
//!    `RaftLogStorage::append` with an `IOFlushed::signal` callback, and awaits the callback
//!    before the next append. One latency sample per append,
//!    from the `append` call to the callback's result; entries/s over the phase's wall time (all
//!    appenders). `--ops` (shared between the appenders) and `--duration` bound the phase.
//! 2. **The ceiling first**, every run: the same appenders on [`MemLog`] stores (at most
//!    [`MEM_MAX_ENTRIES`] entries in all: they stay in memory), on a row of its own (engine
//!    [`CEILING`]); the store's row compares with it (×floor, p50×).
//! 3. **The store.** ringlog: one `Db` opened with `Options::default()` (the I/O path of `--io`,
//!    and only the tunables the command line gives), one `LogStore` per appender under the key
//!    prefix `g<NN>/`, so that their appends' fdatasyncs are shared by ringlog's group commit;
//!    the syncs per append are `Db::stats().syncs` over the phase ÷ the appends. RocksDB (feature
//!    `rocksdb`): one instance, a pair of column families per store (`crate::raftlog::rocks`);
//!    its `flush_wal(true)` calls are counted.
//! 4. **Checks**, after each phase: every store's `get_log_state` names its last appended entry,
//!    and its log read back through its `get_log_reader()` in ranges of [`READ_CHUNK`] entries
//!    equals, entry by entry (log id and request, byte for byte), what was appended — nothing
//!    missing, nothing more. A failed check fails the run.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use openraft::RaftLogReader;
use ringlog_db::Db;
use ringlog_openraft::LogStore;

use super::{disk, per_sec, progress, Clock, Hooks, RunResult};
use crate::args::{Config, Workload};
use crate::engine::{err, Counters, EngineError, EngineKind, OpenOpts};
use crate::hist::Histogram;
use crate::raftlog::{log_id, Entries, MemLog, TypeConfig, FIRST_INDEX};
use crate::report::{thousands, us, Floor};
use crate::sysinfo::{self, DiskStat};

/// The ceiling's entries at most, in all (1 KiB entries stay in memory: about 0.6 GB).
pub const MEM_MAX_ENTRIES: u64 = 500_000;

/// The ceiling's name in the engine column.
pub const CEILING: &str = "mem-ceiling";

/// Entries read back per `try_get_log_entries` call.
pub const READ_CHUNK: u64 = 4096;

/// Which measurement a table row reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    /// The in-memory ceiling.
    Ceiling,
    /// The store under test (ringlog's or RocksDB's).
    Store,
}

impl Row {
    /// Its name in the JSON report.
    pub fn json_name(self) -> &'static str {
        match self {
            Row::Ceiling => "ceiling",
            Row::Store => "store",
        }
    }
}

/// ringlog's counters over a phase (`Db::stats()` after − before).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DbDelta {
    /// Transactions committed.
    pub commits: u64,
    /// fdatasync rounds.
    pub syncs: u64,
    /// Bytes appended to the log.
    pub bytes: u64,
}

/// One store's phase: its appenders' appends, timed, and the read-back.
#[derive(Clone, Debug)]
pub struct Measure {
    /// The store: [`CEILING`], `ringlog` or `rocksdb`.
    pub store: String,
    /// Appends (one entry each) over the phase, all appenders.
    pub appends: u64,
    /// Appends of each appender (= entries of each store), in store order.
    pub per_store: Vec<u64>,
    /// Wall time of the phase.
    pub elapsed: Duration,
    /// Latency of each append, from the call to the callback's result.
    pub hist: Histogram,
    /// Process CPU time over the phase.
    pub cpu: Duration,
    /// The appender threads' CPU time.
    pub worker_cpu: Duration,
    /// Block-device counters over the phase (machine-wide).
    pub device: Option<DiskStat>,
    /// Key + value bytes of the entries appended.
    pub user_bytes: u64,
    /// ringlog: its counters over the phase.
    pub db: Option<DbDelta>,
    /// RocksDB: `flush_wal(true)` calls completed over the phase.
    pub flush_wal_calls: Option<u64>,
    /// The ceiling stopped at [`MEM_MAX_ENTRIES`] before `--ops` or `--duration`.
    pub capped: bool,
    /// Entries read back and compared, or what was wrong.
    pub read_back: Result<u64, String>,
}

impl Measure {
    fn new(store: &str) -> Measure {
        Measure {
            store: store.to_string(),
            appends: 0,
            per_store: Vec::new(),
            elapsed: Duration::ZERO,
            hist: Histogram::new(),
            cpu: Duration::ZERO,
            worker_cpu: Duration::ZERO,
            device: None,
            user_bytes: 0,
            db: None,
            flush_wal_calls: None,
            capped: false,
            read_back: Ok(0),
        }
    }

    /// Entries appended per second of the phase.
    pub fn entries_per_sec(&self) -> f64 {
        per_sec(self.appends, self.elapsed)
    }

    /// ringlog: `Db::stats().syncs` over the phase per append.
    pub fn syncs_per_append(&self) -> Option<f64> {
        let d = self.db?;
        (self.appends > 0).then(|| d.syncs as f64 / self.appends as f64)
    }

    /// The floor this measurement is as the table's ×floor and p50× use it.
    pub fn as_floor(&self) -> Option<Floor> {
        (self.appends > 0).then(|| Floor {
            ops_per_sec: self.entries_per_sec(),
            p50: self.hist.percentile(50.0),
        })
    }
}

/// What a raft run measured: the ceiling and the store at one appender count.
#[derive(Clone, Debug)]
pub struct RaftOut {
    /// Appenders (= stores).
    pub appenders: usize,
    /// Value bytes of each entry's request.
    pub value_size: usize,
    /// The in-memory ceiling.
    pub ceiling: Measure,
    /// The store under test.
    pub store: Measure,
    /// The measurement this row reports (set by [`crate::runner::split_rows`]; `None` on the run's
    /// result).
    pub row: Option<Row>,
}

impl RaftOut {
    /// The ceiling, as both rows' floor.
    pub fn floor(&self) -> Option<Floor> {
        self.ceiling.as_floor()
    }

    /// This row's measurement (the store's on the run's result).
    pub fn measure(&self) -> &Measure {
        match self.row {
            Some(Row::Ceiling) => &self.ceiling,
            _ => &self.store,
        }
    }

    /// The store's entries/s ÷ the ceiling's.
    pub fn throughput_vs_ceiling(&self) -> Option<f64> {
        let c = self.ceiling.entries_per_sec();
        (c > 0.0 && self.store.appends > 0).then(|| self.store.entries_per_sec() / c)
    }

    /// The store's p50 ÷ the ceiling's.
    pub fn p50_vs_ceiling(&self) -> Option<f64> {
        let c = self.ceiling.hist.percentile(50.0);
        (c > 0 && self.store.appends > 0)
            .then(|| self.store.hist.percentile(50.0) as f64 / c as f64)
    }
}

/// The ceiling's configuration line.
pub fn ceiling_config() -> String {
    format!(
        "in memory, as openraft's log-mem example: a BTreeMap per store behind a lock, the flush \
         callback fired inside append (nothing is durable); at most {} entries in all",
        thousands(MEM_MAX_ENTRIES as f64)
    )
}

fn ringlog_config(cfg: &Config) -> String {
    format!(
        "ringlog-openraft LogStore, one per appender, all on one Db opened with \
         Options::default() (I/O path requested: {}), key prefixes g00/, g01/, ...; append: one \
         Buffered commit (readable at once), its callback fired by the store's flusher thread \
         once Db::wait_durable covers it (group commit)",
        cfg.io
    )
}

#[cfg(feature = "rocksdb")]
fn rocks_config() -> String {
    format!(
        "RocksDB {} as openraft's log-rocks example: one instance, a logs-<n> and a meta-<n> \
         column family per store, entries as JSON under their big-endian index, no compression; \
         append: one WriteBatch (WAL, sync=false), then flush_wal(true) by the store's flusher \
         thread (the example spawns a thread per append), then the callback; the same appends \
         with sync=true writes (RocksDB's group commit) on a fresh instance in the notes",
        crate::engines::peers::ROCKSDB_VERSION
    )
}

/// The key prefix of ringlog store `g`.
fn prefix(g: usize) -> Vec<u8> {
    format!("g{g:02}/").into_bytes()
}

/// The raft workload at `threads` appenders on `kind`'s store: see the module documentation.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_raft(
    kind: &dyn EngineKind,
    threads: usize,
    cfg: &Config,
    dir: &Path,
    device: Option<&str>,
    opts: &OpenOpts,
    hooks: &Hooks,
    res: &mut RunResult,
) -> Result<(), EngineError> {
    let value_size = cfg.value_size_of(Workload::Raft);
    let entries = Entries::new(value_size);
    // 1. The ceiling.
    sysinfo::trim_heap();
    let limit = cfg.ops.min(MEM_MAX_ENTRIES);
    let mem: Vec<MemLog> = (0..threads).map(|_| MemLog::default()).collect();
    let mut ceiling = drive(CEILING, &mem, &entries, cfg, limit, device, &|| None)?;
    ceiling.capped = limit < cfg.ops && ceiling.appends >= limit;
    ceiling.read_back = read_back_all(&mem, &entries, &ceiling.per_store, &mut false);
    drop(mem);
    sysinfo::trim_heap();
    // 2. The store; the test hook damages its read-back, not the ceiling's.
    let mut corrupt = hooks.corrupt_one_read;
    let store = match kind.name() {
        "ringlog" => {
            res.config = ringlog_config(cfg);
            ringlog_phase(threads, cfg, dir, device, opts, &entries, &mut corrupt, res)?
        }
        #[cfg(feature = "rocksdb")]
        "rocksdb" => {
            res.config = rocks_config();
            rocks_phase(threads, cfg, dir, device, &entries, &mut corrupt, res)?
        }
        other => {
            return Err(EngineError(format!(
                "{other}: no openraft log store here (ringlog, and rocksdb with its feature)"
            )))
        }
    };
    fill(res, &store);
    let out = RaftOut {
        appenders: threads,
        value_size,
        ceiling,
        store,
        row: None,
    };
    res.notes.extend(notes(&out));
    res.raft = Some(out);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn ringlog_phase(
    threads: usize,
    cfg: &Config,
    dir: &Path,
    device: Option<&str>,
    opts: &OpenOpts,
    entries: &Entries,
    corrupt: &mut bool,
    res: &mut RunResult,
) -> Result<Measure, EngineError> {
    let db = Arc::new(
        Db::open(dir, crate::engines::ringlog::raft_options(opts))
            .map_err(|e| err("ringlog open", e))?,
    );
    res.io_path = crate::engines::ringlog::io_path(&db);
    let stores = (0..threads)
        .map(|g| LogStore::<TypeConfig>::new(db.clone(), &prefix(g)))
        .collect::<io::Result<Vec<_>>>();
    let stores = match stores {
        Ok(s) => s,
        Err(e) => {
            let _ = db.close();
            return Err(err("ringlog LogStore::new", e));
        }
    };
    let probe = || {
        let s = db.stats();
        Some(DbDelta {
            commits: s.commits,
            syncs: s.syncs,
            bytes: s.bytes_appended,
        })
    };
    let mut m = match drive("ringlog", &stores, entries, cfg, cfg.ops, device, &probe) {
        Ok(m) => m,
        Err(e) => {
            drop(stores);
            let _ = db.close();
            return Err(e);
        }
    };
    m.read_back = read_back_all(&stores, entries, &m.per_store, corrupt);
    drop(stores);
    db.close().map_err(|e| err("ringlog close", e))?;
    res.files = sysinfo::dir_bytes(dir).ok();
    Ok(m)
}

#[cfg(feature = "rocksdb")]
fn rocks_phase(
    threads: usize,
    cfg: &Config,
    dir: &Path,
    device: Option<&str>,
    entries: &Entries,
    corrupt: &mut bool,
    res: &mut RunResult,
) -> Result<Measure, EngineError> {
    use crate::raftlog::rocks::{open, RocksLog};
    let db = open(dir, threads).map_err(|e| err("rocksdb open", e))?;
    let flushes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stores = (0..threads)
        .map(|g| RocksLog::new(db.clone(), g, flushes.clone()))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| err("rocksdb column families", e))?;
    let r = drive("rocksdb", &stores, entries, cfg, cfg.ops, device, &|| None);
    let mut m = r?;
    m.flush_wal_calls = Some(flushes.load(Ordering::Relaxed));
    m.read_back = read_back_all(&stores, entries, &m.per_store, corrupt);
    drop(stores);
    // The stores' flusher threads let go of the instance once their last handle is dropped:
    // wait for them, so that the instance closes here (and its directory can be measured and
    // removed).
    let waited = Instant::now();
    while Arc::strong_count(&db) > 1 && waited.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(1));
    }
    db.flush_wal(true)
        .map_err(|e| err("rocksdb flush_wal", e))?;
    drop(db);
    res.files = sysinfo::dir_bytes(dir).ok();
    // The same appends on a fresh instance whose stores write with sync=true: RocksDB's own group
    // commit, as a user after throughput would configure it (the example's serialised
    // flush_wal calls do not group). Reported in the notes beside the example's row.
    let sync_dir = dir.with_extension("sync");
    let sdb = open(&sync_dir, threads).map_err(|e| err("rocksdb open", e))?;
    let stores = (0..threads)
        .map(|g| RocksLog::with_sync_writes(sdb.clone(), g))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| err("rocksdb column families", e))?;
    let mut sm = drive(
        "rocksdb-sync",
        &stores,
        entries,
        cfg,
        cfg.ops,
        device,
        &|| None,
    )?;
    sm.read_back = read_back_all(&stores, entries, &sm.per_store, &mut false);
    drop(stores);
    drop(sdb);
    let _ = std::fs::remove_dir_all(&sync_dir);
    if let Err(e) = &sm.read_back {
        m.read_back = Err(format!("rocksdb with sync=true writes: {e}"));
    }
    res.notes.push(format!(
        "rocksdb with sync=true writes (append: one WriteBatch written with sync=true, the \
         callback at once; RocksDB groups concurrent writers' syncs): {}; entries/s {} the \
         example-style store's",
        summary(&sm),
        ratio((m.entries_per_sec() > 0.0).then(|| sm.entries_per_sec() / m.entries_per_sec())),
    ));
    Ok(m)
}

/// What one appender did.
struct Appender {
    hist: Histogram,
    appends: u64,
    user_bytes: u64,
    cpu: Duration,
    error: Option<String>,
}

impl Appender {
    fn new() -> Appender {
        Appender {
            hist: Histogram::new(),
            appends: 0,
            user_bytes: 0,
            cpu: Duration::ZERO,
            error: None,
        }
    }
}

/// Runs one appender per store (store `g` by thread `g`), `total` appends shared between them,
/// until they are done or `--duration` is up; `probe` reads the store's counters before and
/// after.
fn drive<S>(
    name: &str,
    stores: &[S],
    entries: &Entries,
    cfg: &Config,
    total: u64,
    device: Option<&str>,
    probe: &dyn Fn() -> Option<DbDelta>,
) -> Result<Measure, EngineError>
where
    S: RaftLogStorage<TypeConfig> + Clone + Send,
{
    let threads = stores.len();
    let d0 = disk(device);
    let p0 = probe();
    let cpu0 = sysinfo::cpu_time();
    let start = Instant::now();
    let clock = Clock::new(start, cfg.duration);
    let label = format!("strict raft {name} x{threads}");
    let (outs, elapsed): (Vec<Appender>, Duration) = std::thread::scope(|s| {
        let prog = progress(s, cfg, &clock, &label, start);
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(g, store)| {
                let mut store = store.clone();
                let clock = &clock;
                let todo = super::ops_share(total, threads, g);
                s.spawn(move || appender(&mut store, g, entries, todo, clock))
            })
            .collect();
        let outs = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| Appender {
                    error: Some("an appender thread panicked".into()),
                    ..Appender::new()
                })
            })
            .collect();
        let elapsed = start.elapsed();
        prog.stop(&clock);
        (outs, elapsed)
    });
    let mut m = Measure::new(name);
    m.elapsed = elapsed;
    m.cpu = sysinfo::cpu_time().saturating_sub(cpu0);
    let p1 = probe();
    m.device = d0.zip(disk(device)).map(|(a, b)| b.since(&a));
    m.db = p0.zip(p1).map(|(a, b)| DbDelta {
        commits: b.commits.saturating_sub(a.commits),
        syncs: b.syncs.saturating_sub(a.syncs),
        bytes: b.bytes.saturating_sub(a.bytes),
    });
    let mut first_error = None;
    for (g, o) in outs.into_iter().enumerate() {
        m.hist.merge(&o.hist);
        m.appends += o.appends;
        m.per_store.push(o.appends);
        m.user_bytes += o.user_bytes;
        m.worker_cpu += o.cpu;
        if first_error.is_none() {
            first_error = o.error.map(|e| format!("{name} store {g}: {e}"));
        }
    }
    match first_error {
        Some(e) => Err(EngineError(e)),
        None => Ok(m),
    }
}

/// One appender's thread: a current-thread tokio runtime driving [`append_loop`].
fn appender<S: RaftLogStorage<TypeConfig>>(
    store: &mut S,
    g: usize,
    entries: &Entries,
    todo: u64,
    clock: &Clock,
) -> Appender {
    let cpu0 = sysinfo::thread_cpu_time();
    let mut out = Appender::new();
    let r = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("a tokio runtime: {e}"))
        .and_then(|rt| {
            rt.block_on(append_loop(store, g, entries, todo, clock, &mut out))
                .map_err(|e| e.to_string())
        });
    if let Err(e) = r {
        out.error = Some(e);
        clock.stop.store(true, Ordering::Relaxed);
    }
    out.cpu = sysinfo::thread_cpu_time().saturating_sub(cpu0);
    out
}

/// Appends entries `FIRST_INDEX..` of store `g` one at a time, each callback awaited before the
/// next append, until `todo` appends or the clock stops it.
async fn append_loop<S: RaftLogStorage<TypeConfig>>(
    store: &mut S,
    g: usize,
    entries: &Entries,
    todo: u64,
    clock: &Clock,
    out: &mut Appender,
) -> io::Result<()> {
    if let Some(last) = store.get_log_state().await?.last_log_id {
        return Err(io::Error::other(format!(
            "the log is not empty: its last log id is {last}"
        )));
    }
    let mut index = FIRST_INDEX;
    while out.appends < todo {
        let e = entries.entry(g, index);
        let bytes = Entries::user_bytes(&e);
        let t0 = Instant::now();
        let (tx, rx) = TypeConfig::oneshot();
        store.append([e], IOFlushed::signal(tx)).await?;
        rx.await.map_err(|_| {
            io::Error::other(format!(
                "the flush callback of entry {index} was dropped unfired"
            ))
        })??;
        let now = Instant::now();
        out.hist.record((now - t0).as_nanos() as u64);
        out.appends += 1;
        out.user_bytes += bytes;
        index += 1;
        if out.appends.is_multiple_of(1024) {
            clock.progress.fetch_add(1024, Ordering::Relaxed);
        }
        if clock.done(now) {
            break;
        }
    }
    Ok(())
}

/// Reads every store's log back (store `g` holds `counts[g]` entries); the entries checked, or
/// the first problem. `corrupt` (a test hook) damages the first entry read, once.
fn read_back_all<S: RaftLogStorage<TypeConfig> + Clone>(
    stores: &[S],
    entries: &Entries,
    counts: &[u64],
    corrupt: &mut bool,
) -> Result<u64, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("a tokio runtime: {e}"))?;
    rt.block_on(async {
        let mut total = 0;
        for (g, (store, &n)) in stores.iter().zip(counts).enumerate() {
            total += read_back(&mut store.clone(), g, n, entries, corrupt)
                .await
                .map_err(|e| format!("RAFT LOG MISMATCH: store {g}: {e}"))?;
        }
        Ok(total)
    })
}

async fn read_back<S: RaftLogStorage<TypeConfig>>(
    store: &mut S,
    g: usize,
    n: u64,
    entries: &Entries,
    corrupt: &mut bool,
) -> Result<u64, String> {
    let end = FIRST_INDEX + n;
    let want_last = (n > 0).then(|| log_id(end - 1));
    let state = store
        .get_log_state()
        .await
        .map_err(|e| format!("get_log_state: {e}"))?;
    if state.last_log_id != want_last || state.last_purged_log_id.is_some() {
        return Err(format!(
            "get_log_state says last {:?}, purged {:?}; {n} entries were appended",
            state.last_log_id, state.last_purged_log_id
        ));
    }
    let mut reader = store.get_log_reader().await;
    let mut next = FIRST_INDEX;
    while next < end {
        let hi = (next + READ_CHUNK).min(end);
        let got = reader
            .try_get_log_entries(next..hi)
            .await
            .map_err(|e| format!("try_get_log_entries({next}..{hi}): {e}"))?;
        if got.len() as u64 != hi - next {
            return Err(format!(
                "try_get_log_entries({next}..{hi}) returned {} entries",
                got.len()
            ));
        }
        for (i, mut e) in got.into_iter().enumerate() {
            if std::mem::take(corrupt) {
                e.payload = openraft::EntryPayload::Blank;
            }
            let index = next + i as u64;
            if e != entries.entry(g, index) {
                return Err(format!(
                    "entry {index} read back is not the one appended: log id {}, payload {}",
                    e.log_id, e.payload
                ));
            }
        }
        next = hi;
    }
    let beyond = reader
        .try_get_log_entries(end..)
        .await
        .map_err(|e| format!("try_get_log_entries({end}..): {e}"))?;
    if let Some(e) = beyond.first() {
        return Err(format!(
            "{} entries past the last appended one ({}), the first {}",
            beyond.len(),
            end - 1,
            e.log_id
        ));
    }
    Ok(n)
}

/// A row's figures from a phase's measure (the ceiling has no database: no engine counters).
fn fill(res: &mut RunResult, m: &Measure) {
    res.ops = m.appends;
    res.commits = m.appends;
    res.elapsed = m.elapsed;
    res.hist = m.hist.clone();
    res.user_bytes = m.user_bytes;
    res.lifetime_user_bytes = m.user_bytes;
    res.cpu = m.cpu;
    res.worker_cpu = m.worker_cpu;
    res.device = m.device;
    res.live_keys = m.appends;
    res.engine_delta = match m.db {
        Some(d) => Counters {
            commits: Some(d.commits),
            syncs: Some(d.syncs),
            bytes_logged: Some(d.bytes),
            ..Counters::default()
        },
        None => Counters::default(),
    };
    res.verified = m.read_back.clone();
}

/// The run's result split into its two rows: the ceiling's, then the store's; any other result
/// as it is.
pub fn rows(res: RunResult) -> Vec<RunResult> {
    let Some(out) = res.raft.as_ref().filter(|o| o.row.is_none()) else {
        return vec![res];
    };
    let m = &out.ceiling;
    let mut c = res.clone();
    c.engine = CEILING.to_string();
    c.config = ceiling_config();
    c.io_path = None;
    fill(&mut c, m);
    c.files = None;
    c.index = None;
    c.rss_delta = None;
    c.power_loss_durable = None;
    c.notes = Vec::new();
    if let Some(o) = c.raft.as_mut() {
        o.row = Some(Row::Ceiling);
    }
    let mut s = res;
    if let Some(o) = s.raft.as_mut() {
        o.row = Some(Row::Store);
    }
    vec![c, s]
}

/// A ratio with three significant digits or so (the store's rates are far below the ceiling's).
fn ratio(r: Option<f64>) -> String {
    match r {
        None => "-".into(),
        Some(r) if r >= 100.0 => format!("{}×", thousands(r)),
        Some(r) if r >= 10.0 => format!("{r:.1}×"),
        Some(r) if r >= 0.1 => format!("{r:.2}×"),
        Some(r) if r >= 0.001 => format!("{r:.4}×"),
        Some(r) => format!("{r:.2e}×"),
    }
}

fn summary(m: &Measure) -> String {
    let lo = m.per_store.iter().min().copied().unwrap_or(0);
    let hi = m.per_store.iter().max().copied().unwrap_or(0);
    format!(
        "{} appends in {:.2} s, {} entries/s, p50 {} µs, p99 {} µs, max {} µs ({}–{} per store)",
        thousands(m.appends as f64),
        m.elapsed.as_secs_f64(),
        thousands(m.entries_per_sec()),
        us(m.hist.percentile(50.0)),
        us(m.hist.percentile(99.0)),
        us(m.hist.max()),
        thousands(lo as f64),
        thousands(hi as f64),
    )
}

fn notes(o: &RaftOut) -> Vec<String> {
    let mut n = Vec::new();
    let c = &o.ceiling;
    n.push(format!(
        "{} appender{}, each with a store of its own, one entry of {} value bytes per append, the \
         callback awaited before the next; the ceiling ({CEILING}): {}{}",
        o.appenders,
        if o.appenders == 1 { "" } else { "s" },
        o.value_size,
        summary(c),
        if c.capped {
            format!(
                "; stopped at {} entries (they stay in memory)",
                thousands(MEM_MAX_ENTRIES as f64)
            )
        } else {
            String::new()
        }
    ));
    let s = &o.store;
    n.push(format!(
        "{}: {}; ÷ the ceiling: entries/s {} (the ceiling appends {} as many per second), p50 {}",
        s.store,
        summary(s),
        ratio(o.throughput_vs_ceiling()),
        ratio(
            o.throughput_vs_ceiling()
                .filter(|&r| r > 0.0)
                .map(|r| 1.0 / r)
        ),
        ratio(o.p50_vs_ceiling()),
    ));
    if let Some(d) = s.db {
        n.push(format!(
            "Db::stats() over the appends: {} syncs for {} appends = {:.3} syncs per append \
             ({} commits, {:.1} KiB logged per append)",
            thousands(d.syncs as f64),
            thousands(s.appends as f64),
            s.syncs_per_append().unwrap_or(f64::NAN),
            thousands(d.commits as f64),
            if s.appends > 0 {
                d.bytes as f64 / s.appends as f64 / 1024.0
            } else {
                0.0
            },
        ));
    }
    if let Some(f) = s.flush_wal_calls {
        n.push(format!(
            "flush_wal(true) calls: {} for {} appends",
            thousands(f as f64),
            thousands(s.appends as f64)
        ));
    }
    if let (Ok(a), Ok(b)) = (&c.read_back, &s.read_back) {
        n.push(format!(
            "checked: every store's last log id, and its log read back through its reader and \
             compared entry by entry ({} entries of the ceiling, {} of {})",
            thousands(*a as f64),
            thousands(*b as f64),
            s.store
        ));
    }
    n
}
