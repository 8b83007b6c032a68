//! ringlog itself, through its public API only.

use std::ops::Bound;
use std::path::Path;

use ringlog_db::{Db, Durability, Options, Retention, Scan, Snapshot};

use crate::args::Workload;
use crate::engine::{
    err, Counters, DiskValues, EResult, Engine, EngineKind, IndexMemory, Mode, OpenOpts,
    RecoveryInfo, ScanBounds, Settled, SnapCost, SnapView,
};

/// The ringlog engine kind.
pub struct RinglogKind;

/// The one instance.
pub static RINGLOG: RinglogKind = RinglogKind;

/// `--checkpoint-bytes` as the configuration line shows it (`EngineKind::config` has no access
/// to the options, so the harness records the value here before the runs).
static CHECKPOINT_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Records `--checkpoint-bytes` for the configuration line (`None`: the engine's default).
pub fn set_checkpoint_bytes(b: Option<u64>) {
    CHECKPOINT_BYTES.store(b.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
}

/// `--retention` as the configuration line shows it (as [`CHECKPOINT_BYTES`]).
static RETENTION: std::sync::Mutex<Option<Retention>> = std::sync::Mutex::new(None);

/// Records `--retention` for the configuration line (`None`: the engine's default).
pub fn set_retention(r: Option<Retention>) {
    *RETENTION.lock().unwrap_or_else(|e| e.into_inner()) = r;
}

/// The configuration line's note of a retention policy other than the default.
fn retention_config() -> String {
    match *RETENTION.lock().unwrap_or_else(|e| e.into_inner()) {
        None | Some(Retention::Snapshots) => String::new(),
        Some(r) => format!(", retention {r:?}"),
    }
}

impl RinglogKind {
    fn checkpoint_bytes(&self) -> u64 {
        match CHECKPOINT_BYTES.load(std::sync::atomic::Ordering::Relaxed) {
            0 => Options::default().checkpoint_bytes,
            b => b,
        }
    }
}

fn checkpoints_config(bytes: u64) -> String {
    if bytes == u64::MAX {
        "no background checkpoints".into()
    } else if bytes.is_multiple_of(1 << 20) {
        format!(
            "background checkpoints (checkpoint_bytes {} MiB)",
            bytes >> 20
        )
    } else {
        format!("background checkpoints (checkpoint_bytes {bytes} B)")
    }
}

fn durability(mode: Mode) -> Durability {
    match mode {
        Mode::InMemory => Durability::InMemory,
        Mode::Buffered => Durability::BUFFERED,
        Mode::Strict => Durability::Strict,
    }
}

impl EngineKind for RinglogKind {
    fn name(&self) -> &'static str {
        "ringlog"
    }

    fn config(&self, mode: Mode) -> Result<String, String> {
        let base: String = match mode {
            Mode::InMemory => "Durability::InMemory (no log)".into(),
            Mode::Buffered => format!(
                "{} (durable writes in the background), segments of up to 64 MiB grown zero-filled, {}",
                durability(mode),
                checkpoints_config(self.checkpoint_bytes())
            ),
            Mode::Strict => format!(
                "Durability::Strict (group commit), segments of up to 64 MiB grown zero-filled, O_DIRECT, {}",
                checkpoints_config(self.checkpoint_bytes())
            ),
        };
        Ok(base + &retention_config())
    }

    fn supports(&self, _: Workload) -> bool {
        true
    }

    fn can_settle(&self) -> bool {
        true
    }

    fn has_transactions(&self) -> bool {
        true
    }

    fn has_runs(&self) -> bool {
        true
    }

    fn has_read_only(&self) -> bool {
        true
    }

    fn has_raft_log(&self) -> bool {
        true
    }

    fn open(&self, dir: &Path, mode: Mode, opts: &OpenOpts) -> EResult<Box<dyn Engine>> {
        let db = if mode == Mode::InMemory {
            // No directory: nothing is ever written.
            Db::in_memory()
        } else {
            Db::open(dir, options(mode, opts)).map_err(|e| err("ringlog open", e))?
        };
        if let Some(r) = opts.retention {
            db.set_retention(r)
                .map_err(|e| err("ringlog set_retention", e))?;
        }
        Ok(Box::new(Ringlog { db }))
    }
}

/// The options the harness opens a ringlog database on disk with in `mode` (not
/// [`Mode::InMemory`], which has no directory): the `readonly` workload gives the same ones to
/// `Db::open` and `Db::open_read_only`.
pub fn options(mode: Mode, opts: &OpenOpts) -> Options {
    tuned(Options::default().durability(durability(mode)), opts)
}

/// The options of the `raft` workload's database: ringlog's defaults (its default durability
/// included: the log store chooses each commit's), with the I/O path of `--io` and the tunables
/// the command line gave explicitly.
pub fn raft_options(opts: &OpenOpts) -> Options {
    tuned(Options::default(), opts)
}

/// `o` with `--io` and the tunables of `opts`.
fn tuned(o: Options, opts: &OpenOpts) -> Options {
    let mut o = o.io(opts.io);
    if let Some(b) = opts.checkpoint_bytes {
        o = o.checkpoint_bytes(b);
    }
    o = o.checkpoint_on_close(opts.checkpoint_on_close);
    if let Some(n) = opts.rounds_in_flight {
        o = o.rounds_in_flight(n);
    }
    if opts.value_threshold.is_some() {
        o = o.value_threshold(opts.value_threshold);
    }
    if let Some(b) = opts.value_cache_bytes {
        o = o.value_cache_bytes(b);
    }
    o
}

/// The I/O path `db` uses (`io_uring + O_DIRECT`, `portable (buffered I/O)`, ...), if it has a
/// log.
pub fn io_path(db: &Db) -> Option<String> {
    let s = db.stats();
    s.backend.map(|b| {
        format!(
            "{}{}; a lone Strict committer writes its own round with plain system calls ({}; \
             Stats::rounds_led), the log thread's rounds go through this path",
            b.kind,
            if s.direct_io {
                " + O_DIRECT"
            } else {
                " (buffered I/O)"
            },
            match s.sync_strategy {
                Some(ringlog_db::SyncStrategy::Dsync) => "pwritev2(RWF_DSYNC)",
                _ => "pwrite + fdatasync",
            }
        )
    })
}

impl Ringlog {
    /// The harness's adapter around a database opened elsewhere (the `readonly` workload opens
    /// its own, writable or read-only, and reads their stats through this).
    pub fn wrap(db: Db) -> Ringlog {
        Ringlog { db }
    }
}

/// An open ringlog database.
pub struct Ringlog {
    db: Db,
}

impl Engine for Ringlog {
    fn put(&self, key: &[u8], value: &[u8]) -> EResult<()> {
        self.db
            .put(key, value)
            .map(|_| ())
            .map_err(|e| err("ringlog put", e))
    }

    fn put_batch(&self, items: &[(&[u8], &[u8])]) -> EResult<()> {
        let mut tx = self.db.begin();
        for (k, v) in items {
            tx.put(k, v).map_err(|e| err("ringlog txn put", e))?;
        }
        tx.commit()
            .map(|_| ())
            .map_err(|e| err("ringlog commit", e))
    }

    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> EResult<bool> {
        self.db
            .get_with(key, |v| crate::engine::copy_value(out, v.map(|(v, _)| v)))
            .map_err(|e| err("ringlog get", e))
    }

    fn get_many(&self, keys: &[&[u8]], each: &mut dyn FnMut(usize, Option<&[u8]>)) -> EResult<()> {
        let values = self
            .db
            .get_many(keys)
            .map_err(|e| err("ringlog get_many", e))?;
        for (i, v) in values.iter().enumerate() {
            each(i, v.as_ref().map(|v| v.as_bytes()));
        }
        Ok(())
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> EResult<usize> {
        let mut scan = self
            .db
            .range(start..end)
            .map_err(|e| err("ringlog range", e))?;
        let mut n = 0;
        while n < limit {
            let Some(entry) = scan.next_with(|_, v, _| v.len()) else {
                break;
            };
            entry.map_err(|e| err("ringlog range", e))?;
            n += 1;
        }
        Ok(n)
    }

    fn scan_each(
        &self,
        (lo, hi): ScanBounds<'_>,
        reverse: bool,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> EResult<u64> {
        let lo = lo.map_or(Bound::Unbounded, Bound::Included);
        let hi = hi.map_or(Bound::Unbounded, Bound::Excluded);
        let scan = self
            .db
            .range::<&[u8], _>((lo, hi))
            .map_err(|e| err("ringlog range", e))?;
        visit(scan, reverse, f)
    }

    fn with_snapshot(&self, f: &mut dyn FnMut(&dyn SnapView) -> EResult<()>) -> EResult<SnapCost> {
        crate::engine::time_snapshot(|| Ok(self.db.snapshot()), |s| f(&RinglogSnap(s)))
    }

    fn index_memory(&self) -> Option<IndexMemory> {
        let s = self.db.stats();
        Some(IndexMemory {
            versions: s.versions as u64,
            bytes: s.index_bytes as u64,
            payload: s.index_payload_bytes as u64,
        })
    }

    fn disk_values(&self) -> Option<DiskValues> {
        let s = self.db.stats();
        Some(DiskValues {
            keys: s.keys as u64,
            reads: s.value_reads,
            read_bytes: s.value_read_bytes,
            cache_hits: s.value_cache_hits,
            cache_bytes: s.value_cache_bytes,
            segments: s.value_segments as u64,
        })
    }

    fn counters(&self) -> Counters {
        let s = self.db.stats();
        Counters {
            commits: Some(s.commits),
            syncs: Some(s.syncs),
            bytes_logged: Some(s.bytes_appended),
            checkpoints: Some(s.checkpoints),
            segments_deleted: Some(s.segments_deleted),
            trims: Some(s.trims),
        }
    }

    fn recovery(&self) -> Option<RecoveryInfo> {
        let r = self.db.recovery_stats();
        Some(RecoveryInfo {
            duration_ns: r.duration.as_nanos() as u64,
            checkpoint_lsn: r.checkpoint_lsn,
            checkpoint_keys: r.checkpoint_keys,
            segments: r.segments as u64,
            transactions: r.transactions_applied,
            last_lsn: r.last_lsn,
            split_ns: Some((
                r.read_time.as_nanos() as u64,
                r.decode_time.as_nanos() as u64,
                r.build_time.as_nanos() as u64,
            )),
        })
    }

    fn settle(&self) -> EResult<Option<Settled>> {
        if self.db.stats().backend.is_none() {
            return Ok(None); // in memory: no directory to checkpoint into
        }
        let info = self
            .db
            .checkpoint()
            .map_err(|e| err("ringlog checkpoint", e))?;
        Ok(Some(Settled {
            what: "Db::checkpoint".into(),
            bytes_written: Some(info.bytes),
        }))
    }

    fn backup(&self, dest: &Path) -> EResult<Option<u64>> {
        if self.db.stats().backend.is_none() {
            return Ok(None); // in memory: nothing to copy to a directory
        }
        let info = self
            .db
            .backup_to(dest)
            .map_err(|e| err("ringlog backup", e))?;
        Ok(Some(info.bytes))
    }

    fn io_path(&self) -> Option<String> {
        io_path(&self.db)
    }

    fn ringlog_db(&self) -> Option<&Db> {
        Some(&self.db)
    }

    fn close(self: Box<Self>) -> EResult<()> {
        self.db.close().map_err(|e| err("ringlog close", e))
    }

    fn close_with_stats(self: Box<Self>) -> EResult<(Counters, Option<IndexMemory>)> {
        // After the close has joined the background thread: every checkpoint it ran counted.
        self.db.close().map_err(|e| err("ringlog close", e))?;
        Ok((self.counters(), self.index_memory()))
    }
}

/// Feeds a lazy scan's entries to `f`, forward or reverse, lent (`Scan::next_with`: no copy),
/// until it returns false; an entry that fails to read ends it with the error, as
/// `crate::engine::feed` does for the peers.
fn visit(mut scan: Scan, reverse: bool, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> EResult<u64> {
    let mut n = 0;
    loop {
        let lend = |k: &[u8], v: &[u8], _| f(k, v);
        let more = if reverse {
            scan.next_back_with(lend)
        } else {
            scan.next_with(lend)
        };
        match more.transpose().map_err(|e| err("ringlog range", e))? {
            Some(true) => n += 1,
            Some(false) => return Ok(n + 1),
            None => return Ok(n),
        }
    }
}

/// A ringlog snapshot seen through the harness's interface.
struct RinglogSnap<'a>(&'a Snapshot);

impl SnapView for RinglogSnap<'_> {
    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> EResult<bool> {
        self.0
            .get_with(key, |v| crate::engine::copy_value(out, v.map(|(v, _)| v)))
            .map_err(|e| err("ringlog snapshot get", e))
    }

    fn scan_each(
        &self,
        lo: &[u8],
        hi: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> EResult<u64> {
        let scan = self
            .0
            .range(lo..hi)
            .map_err(|e| err("ringlog snapshot range", e))?;
        visit(scan, false, f)
    }
}
