//! Counters and sizes reported by [`crate::Db::stats`].

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringlog_uring::BackendInfo;

use crate::db::Db;
use crate::index::Lsn;
use crate::SyncStrategy;

/// Counters describing the database's activity since it was opened.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Stats {
    /// Transactions committed (including single puts and deletes).
    pub commits: u64,
    /// Bytes of records appended to the log (padding excluded).
    pub bytes_appended: u64,
    /// Write + fdatasync rounds completed (each may cover many commits: group commit).
    pub syncs: u64,
    /// Of [`Stats::syncs`], the rounds a lone `Strict` committer wrote itself, on its own thread,
    /// instead of handing them to the log thread (docs/DURABILITY.md, "Who writes a round").
    pub rounds_led: u64,
    /// Of [`Stats::syncs`], the rounds submitted while an earlier round was still in flight
    /// ([`crate::Options::rounds_in_flight`]; docs/DURABILITY.md, "Rounds in flight").
    pub rounds_overlapped: u64,
    /// Optimistic transactions whose commit failed with [`crate::Error::Conflict`].
    pub txn_conflicts: u64,
    /// Attempts [`crate::Db::transact`] ran again after a conflict.
    pub txn_retries: u64,
    /// Failed writes or syncs (any failure poisons the database).
    pub sync_failures: u64,
    /// Mean time of one write + sync round.
    pub mean_sync_latency: Duration,
    /// Longest write + sync round.
    pub max_sync_latency: Duration,
    /// When the last successful sync completed.
    pub last_sync: Option<SystemTime>,
    /// Segment files created by this run.
    pub segments_created: u64,
    /// Highest LSN known durable.
    pub durable_lsn: Lsn,
    /// Newest visible LSN (see [`crate::Db::last_lsn`]).
    pub last_lsn: Lsn,
    /// Live keys (including commits in flight).
    pub keys: usize,
    /// Versions held by the index: each key's retained versions, tombstones included.
    pub versions: usize,
    /// Bytes of the index's memory holding them: arena bytes in use (nodes with their keys and
    /// values) and the key index (a hash set of each key's newest node, for point reads).
    /// Not counted: memory reserved ahead of the writers and not yet used — an index past
    /// 16 MiB keeps one 8 MiB chunk faulted in ahead, so that commits do not wait for the
    /// kernel to zero fresh pages.
    pub index_bytes: usize,
    /// Of [`Stats::index_bytes`], the bytes that are keys and values; the rest is overhead
    /// (per version: `(index_bytes - index_payload_bytes) / versions`). A counter kept by the
    /// index: `stats()` costs O(1) whatever the database's size.
    pub index_payload_bytes: usize,
    /// Reads below this LSN fail with [`crate::Error::HistoryTrimmed`].
    pub history_floor: Lsn,
    /// Live snapshots.
    pub snapshots: usize,
    /// History trims run (each builds a new index generation without what nobody needs).
    pub trims: u64,
    /// The retention policy in force.
    pub retention: crate::Retention,
    /// The I/O backend in use and why (`None` for an in-memory database).
    pub backend: Option<BackendInfo>,
    /// Whether segments are written with `O_DIRECT`.
    pub direct_io: bool,
    /// How batches are made durable in fact (`None` for an in-memory database or a read-only
    /// handle):
    /// [`SyncStrategy::Dsync`] only where the filesystem is known to make a completed `RWF_DSYNC`
    /// write durable, [`SyncStrategy::WriteThenSync`] elsewhere, whatever was asked for.
    pub sync_strategy: Option<SyncStrategy>,
    /// Why [`Stats::sync_strategy`] is what it is, naming the filesystem.
    pub sync_strategy_reason: String,
    /// Whether a log failure has poisoned the database.
    pub poisoned: bool,
    /// Checkpoints written since open ([`Db::checkpoint`] and background ones).
    pub checkpoints: u64,
    /// The LSN of the checkpoint the MANIFEST names (0: none).
    pub checkpoint_lsn: Lsn,
    /// Log segments deleted by compaction since open.
    pub segments_deleted: u64,
    /// Log segments kept below the checkpoint because it refers to values in them
    /// ([`crate::Options::value_threshold`]).
    pub value_segments: usize,
    /// Values read from disk since open (cache misses; [`crate::Options::value_threshold`]).
    pub value_reads: u64,
    /// Bytes read from disk for them (records: header, key and value).
    pub value_read_bytes: u64,
    /// Reads of values on disk served from the cache since open.
    pub value_cache_hits: u64,
    /// Bytes of values the cache holds now (at most [`crate::Options::value_cache_bytes`]).
    pub value_cache_bytes: u64,
    /// Value segments whose live values garbage collection copied forward since open (they
    /// are deleted once no checkpoint and no reader refers to them).
    pub value_gc_segments: u64,
    /// Value bytes garbage collection copied since open.
    pub value_gc_bytes: u64,
    /// Bytes of values of at least [`crate::Options::value_threshold`] written since a
    /// checkpoint last moved such values to disk: held in memory until the next one does
    /// (counted from the open; 0 without values on disk).
    pub value_backlog_bytes: u64,
    /// Commits that waited, since open, because more than
    /// [`value_backlog_limit`](Stats::value_backlog_limit) of such values waited for a
    /// checkpoint (docs/DURABILITY.md §8, "Memory and space while writing").
    pub value_backlog_waits: u64,
    /// The backlog past which commits wait now: an eighth of the live values in value segments
    /// (as garbage collection last counted them), at least the smallest log volume that
    /// triggers a checkpoint (4 MiB) and at most twice
    /// [`crate::Options::checkpoint_bytes`]; `u64::MAX` when nothing is paced (values in
    /// memory, background checkpoints off, read-only).
    pub value_backlog_limit: u64,
}

impl Db {
    /// Counters, index sizes and the backend in use. O(1): reads counters, never walks the
    /// index.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let shared = self.shared();
        let c = &shared.counters;
        let syncs = c.syncs.load(Ordering::Relaxed);
        let total = c.sync_ns_total.load(Ordering::Relaxed);
        let last = c.last_sync_unix_ns.load(Ordering::Relaxed);
        let gen = shared.versions.current();
        let (_, used) = gen.list.memory();
        let (strategy, reason) = self.sync_strategy_info();
        let store = shared.versions.store();
        Stats {
            commits: c.commits.load(Ordering::Relaxed),
            bytes_appended: c.bytes_appended.load(Ordering::Relaxed),
            syncs,
            rounds_led: c.rounds_led.load(Ordering::Relaxed),
            rounds_overlapped: c.rounds_overlapped.load(Ordering::Relaxed),
            txn_conflicts: c.conflicts.load(Ordering::Relaxed),
            txn_retries: c.retries.load(Ordering::Relaxed),
            sync_failures: c.sync_failures.load(Ordering::Relaxed),
            mean_sync_latency: Duration::from_nanos(total.checked_div(syncs).unwrap_or(0)),
            max_sync_latency: Duration::from_nanos(c.sync_ns_max.load(Ordering::Relaxed)),
            last_sync: (last != 0).then(|| UNIX_EPOCH + Duration::from_nanos(last)),
            segments_created: c.segments_created.load(Ordering::Relaxed),
            durable_lsn: self.durable_lsn(),
            last_lsn: self.last_lsn(),
            keys: gen.list.live_keys(),
            versions: gen.list.len(),
            index_bytes: used + gen.list.key_index_bytes(),
            index_payload_bytes: gen.list.payload_bytes(),
            history_floor: gen.floor(),
            snapshots: shared.versions.snapshot_count(),
            trims: shared.versions.trims.load(Ordering::Relaxed),
            retention: shared.versions.retention.lock().policy,
            backend: self.backend(),
            direct_io: self.direct_io(),
            sync_strategy: strategy,
            sync_strategy_reason: reason,
            poisoned: shared.state.lock().poisoned.is_some(),
            checkpoints: shared
                .ckpt
                .get()
                .map_or(0, |c| c.taken.load(Ordering::Relaxed)),
            checkpoint_lsn: shared
                .ckpt
                .get()
                .map_or(0, |c| c.lsn.load(Ordering::Relaxed)),
            segments_deleted: shared
                .ckpt
                .get()
                .map_or(0, |c| c.segments_deleted.load(Ordering::Relaxed)),
            value_segments: shared
                .ckpt
                .get()
                .map_or(0, |c| c.value_segments.lock().len()),
            value_reads: store.map_or(0, |s| s.counters.disk_reads.load(Ordering::Relaxed)),
            value_read_bytes: store.map_or(0, |s| s.counters.disk_bytes.load(Ordering::Relaxed)),
            value_cache_hits: store.map_or(0, |s| s.counters.cache_hits.load(Ordering::Relaxed)),
            value_cache_bytes: store.map_or(0, |s| s.cached().0),
            value_gc_segments: shared
                .ckpt
                .get()
                .map_or(0, |c| c.gc_segments.load(Ordering::Relaxed)),
            value_gc_bytes: shared
                .ckpt
                .get()
                .map_or(0, |c| c.gc_bytes.load(Ordering::Relaxed)),
            value_backlog_bytes: shared.ckpt.get().map_or(0, |c| c.backlog.bytes()),
            value_backlog_waits: shared
                .ckpt
                .get()
                .map_or(0, |c| c.backlog.waits.load(Ordering::Relaxed)),
            value_backlog_limit: shared.ckpt.get().map_or(u64::MAX, |c| c.backlog.limit()),
        }
    }
}
