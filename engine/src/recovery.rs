//! Recovery: replays the segments in order, applies complete committed transactions, cuts a torn
//! tail and refuses mid-log corruption.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ringlog_format::{
    decode_record_in, DecodeError, EntryValue, LaterBatch, Layout, Manifest, Record, RecordKind,
    SearchIn, SegmentHeader, SegmentPos, FORMAT_VERSION, MAX_ID, RECORD_ALIGN, SEGMENT_HEADER_LEN,
};
use ringlog_uring::{OpenOptions, Vfs};

use crate::checkpoint::Item;
use crate::index::retention::{Retention, RETENTION_KEY};
use crate::index::TRIMMED_BELOW;
use crate::index::{Lsn, OpRef};
use crate::loader::{Loader, Versions};
use crate::options::RecoveryMode;
use crate::segment::{
    parse_creating_name, parse_segment_name, read_segment, segment_file_name, ReadAhead, Segment,
};
use crate::skiplist::SkipList;
use crate::values::IN_SEGMENT;
use crate::{Error, Result};

/// What recovery found and did when the database was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryStats {
    /// Segment files replayed.
    pub segments: usize,
    /// Committed transactions applied.
    pub transactions_applied: u64,
    /// Transactions discarded because their commit record was missing (in flight at a crash).
    pub transactions_incomplete: u64,
    /// Transactions discarded because they were aborted.
    pub transactions_aborted: u64,
    /// Write, delete, commit or abort records that belonged to no open transaction.
    pub orphaned_records: u64,
    /// Bytes of torn or damaged tail cut off (non-zero bytes after the last valid record).
    pub bytes_truncated: u64,
    /// LSN of the last applied transaction (0 if none).
    pub last_lsn: Lsn,
    /// Keys live after recovery.
    pub keys: usize,
    /// Unfinished segment creations removed: `<id>.log.tmp` files, which a crash left before the
    /// new segment's header was durable and the file renamed to `<id>.log`. They never hold
    /// records.
    pub torn_segments_removed: usize,
    /// With [`RecoveryMode::TruncateAtCorruption`]: where the log was cut, if it was.
    pub truncated_at: Option<(PathBuf, u64)>,
    /// Later segment files renamed `*.corrupt.N` by a truncating recovery.
    pub segments_quarantined: usize,
    /// Checksums computed while searching the bytes after damage in the last segment for a
    /// record of a later write batch (what tells a torn tail from corruption). Bounded by the
    /// segment's size: headers that fail cheap checks are never checksummed.
    pub damage_search_checksums: u64,
    /// Files removed at open as provable leftovers of an interrupted checkpoint or compaction
    /// (each logged): checkpoint files the MANIFEST does not name, segments below its first
    /// needed segment.
    pub leftovers_removed: usize,
    /// The LSN of the checkpoint recovery started from (0: none, the whole log was replayed).
    pub checkpoint_lsn: Lsn,
    /// Keys loaded from that checkpoint.
    pub checkpoint_keys: u64,
    /// Time spent recovering: reading, decoding and building the index (the three times below
    /// and what they do not cover: the directory listing, the checkpoint's load where it did not
    /// overlap the log's replay).
    pub duration: Duration,
    /// Of `duration`: time the replay waited for segment bytes. A helper thread streams the
    /// segments in, piece by piece, while the ones already in are decoded, so this is the
    /// reading that decoding did not hide.
    pub read_time: Duration,
    /// Of `duration`: checking the log's records (checksums, framing) and handing their
    /// operations to the loader, in log order.
    pub decode_time: Duration,
    /// Of `duration`: building the index from the decoded operations — sorting them into key
    /// order, merging them with the checkpoint's versions, building the in-memory list.
    pub build_time: Duration,
}

/// The last segment as recovery left it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tail {
    pub(crate) id: u64,
    /// Offset just past the last valid record.
    pub(crate) valid_end: u64,
    /// True when every byte from `valid_end` to the end of the file is zero, so appending may
    /// continue there.
    pub(crate) clean: bool,
    /// True when the segment is of the format version this build writes (an older one is never
    /// appended to: it would then hold records its version does not have).
    pub(crate) current_version: bool,
}

pub(crate) struct Recovered {
    /// The first index generation as loaded from a checkpoint, if recovery built it directly;
    /// `versions` then holds the log's versions after the checkpoint, to insert on top.
    pub(crate) base: Option<Base>,
    /// Every loaded version, key ascending and LSN descending.
    pub(crate) versions: Versions,
    /// The retention policy the log ends with, and the trim floor its entries imply.
    pub(crate) retention: (Retention, Lsn),
    /// (commit time, LSN) samples at least 1 ms apart, oldest first.
    pub(crate) samples: Vec<(u64, Lsn)>,
    pub(crate) stats: RecoveryStats,
    /// Highest LSN seen anywhere (applied or not, or a segment's base LSN), or the bound of the
    /// last LSN lease in the log if higher: the next run starts above it.
    pub(crate) max_lsn: Lsn,
    pub(crate) max_txn_id: u64,
    pub(crate) max_run_id: u64,
    pub(crate) tail: Option<Tail>,
    /// The segments below the first needed one that the checkpoint refers to for values.
    pub(crate) value_segments: Vec<u64>,
    /// The MANIFEST now in force when a truncating recovery wrote one (its LSN floor raised
    /// past the cut): the open goes on from it, not from the one it read.
    pub(crate) manifest: Option<Manifest>,
}

struct OpenTxn {
    txn_id: u64,
    lsn: Lsn,
    /// (is_put, key start, key len, value start, value len, system), offsets into the segment
    /// buffer.
    ops: Vec<(bool, usize, usize, usize, usize, bool)>,
}

/// Applies records in log order, keeping transactions atomic.
struct Applier {
    /// What a truncating recovery cut (see [`Cut`]).
    cut: Cut,
    /// The MANIFEST a cut wrote to record its LSN floor, if any (the one in force from then on).
    cut_manifest: Option<Manifest>,
    index: Loader,
    open: Option<OpenTxn>,
    last_applied: Lsn,
    max_lsn: Lsn,
    max_txn_id: u64,
    max_run_id: u64,
    stats: RecoveryStats,
    retention: (Retention, Lsn),
    samples: Vec<(u64, Lsn)>,
    /// The bound of the last lease record, in log order.
    last_lease: Option<Lsn>,
    /// The checkpoint's LSN: transactions at or below it are in the checkpoint, not replayed.
    skip_through: Lsn,
    /// Whether the replayed log set a retention policy (it then overrides the checkpoint's).
    log_retention: bool,
    /// Whether a checkpoint precedes the log (its policy is then the one before the log's first
    /// retention entry, known only once the checkpoint is loaded, on another thread).
    checkpointed: bool,
    /// The floor the log's first retention entry raises to if the policy before it kept no
    /// history: with a checkpoint, decided at the merge from the checkpoint's policy (a review
    /// found it raised as if that policy were always `Snapshots`: a second history-keeping
    /// policy after a checkpoint lost the history the first one kept, at the next open).
    first_raise: Option<Lsn>,
    /// The head of the write batch being replayed, in a segment of format version 4: (batch
    /// start, run id, commit time), which hold for every record of the batch.
    batch: Option<(u32, u64, u64)>,
}

impl Applier {
    /// The `ApplyTornCommit` planted bug: applies the open transaction (whose commit record is
    /// missing) with whatever operations survived.
    #[cfg(feature = "__planted-bugs")]
    fn planted_apply_torn_commit(&mut self, buf: &[u8]) {
        if !crate::hooks::apply_torn_commit() {
            return;
        }
        let Some(t) = self.open.take() else { return };
        if t.ops.is_empty() || self.commit(t.lsn, 0).is_err() {
            return;
        }
        let _ = self.apply_txn(t, buf);
    }

    /// Whether every operation of transaction `t` can be applied (see [`Applier::check`]):
    /// checked before its commit is accepted, so that a transaction is applied whole or not
    /// at all.
    fn check_txn(&self, t: &OpenTxn, buf: &[u8]) -> std::result::Result<(), String> {
        for &(is_put, ks, kl, vs, vl, system) in &t.ops {
            let key = &buf[ks..ks + kl];
            let op = if is_put {
                OpRef::Put(key, &buf[vs..vs + vl])
            } else {
                OpRef::Delete(key)
            };
            Self::check(op, t.lsn, system)?;
        }
        Ok(())
    }

    /// Whether [`Applier::apply`] can apply `op`: a user operation always can; a system entry
    /// that the engine reads (a retention policy) must decode.
    fn check(op: OpRef<'_>, lsn: Lsn, system: bool) -> std::result::Result<(), String> {
        match op {
            OpRef::Put(k, v)
                if system && k == RETENTION_KEY && Retention::decode_at(v, lsn).is_none() =>
            {
                Err(format!(
                    "the retention policy entry at LSN {lsn} does not decode, or records a floor above its LSN"
                ))
            }
            _ => Ok(()),
        }
    }

    /// Applies the operations of transaction `t`, whose commit was accepted, at its LSN.
    fn apply_txn(&mut self, t: OpenTxn, buf: &[u8]) -> std::result::Result<(), String> {
        for (is_put, ks, kl, vs, vl, system) in t.ops {
            let key = &buf[ks..ks + kl];
            let op = if is_put {
                OpRef::Put(key, &buf[vs..vs + vl])
            } else {
                OpRef::Delete(key)
            };
            self.apply(op, t.lsn, buf, system)?;
        }
        Ok(())
    }

    /// Applies one operation of a committed transaction: to the index, or for a system entry to
    /// the engine's own state.
    fn apply(
        &mut self,
        op: OpRef<'_>,
        lsn: Lsn,
        buf: &[u8],
        system: bool,
    ) -> std::result::Result<(), String> {
        if !system {
            self.index.apply(op, lsn, buf);
            return Ok(());
        }
        match op {
            OpRef::Put(k, v) if k == RETENTION_KEY => {
                let Some((policy, floor)) = Retention::decode_at(v, lsn) else {
                    return Err(format!(
                        "the retention policy entry at LSN {lsn} does not decode, or records a floor above its LSN"
                    ));
                };
                let mut floor = self.retention.1.max(floor);
                if policy != Retention::Snapshots {
                    // History is kept from this entry on; when the policy before it kept none,
                    // not before it (after another history-keeping policy, from that one's
                    // entry on: `Db::set_retention` raises the floor likewise).
                    if self.checkpointed && !self.log_retention {
                        // The policy before it is the checkpoint's.
                        self.first_raise = Some(lsn - 1);
                    } else if self.retention.0 == Retention::Snapshots {
                        floor = floor.max(lsn - 1);
                    }
                    self.index.keep_versions();
                }
                self.retention = (policy, floor);
                self.log_retention = true;
            }
            // Value-log garbage collection's marker: the transaction that made the copies
            // before it durable. Nothing to apply.
            OpRef::Put(k, _) if k == crate::values::VALUE_GC_KEY => {}
            // A run's label: read by `Db::runs` from the log, nothing to apply.
            OpRef::Put(k, _) if k == crate::runs::RUN_LABEL_KEY => {}
            other => log::warn!(
                "ignoring unknown system entry {:?} at LSN {lsn}",
                String::from_utf8_lossy(other.key())
            ),
        }
        Ok(())
    }

    /// Ends the segment whose buffer is `buf` (before the buffer is reused).
    fn end_segment(&mut self, buf: &[u8]) {
        self.batch = None;
        if self.open.take().is_some() {
            self.stats.transactions_incomplete += 1;
        }
        self.index.end_segment(buf);
    }

    /// Accepts a complete transaction's LSN; an LSN that does not follow the previous one is
    /// damage (a misdirected or duplicated record), reported like a record that failed to decode.
    fn commit(&mut self, lsn: Lsn, timestamp: u64) -> std::result::Result<(), String> {
        if lsn <= self.last_applied {
            return Err(format!(
                "transaction LSN {lsn} does not follow the previous LSN {}",
                self.last_applied
            ));
        }
        self.last_applied = lsn;
        self.stats.transactions_applied += 1;
        if self
            .samples
            .last()
            .is_none_or(|&(t, _)| timestamp >= t.saturating_add(1_000_000))
        {
            self.samples.push((timestamp, lsn));
        }
        Ok(())
    }

    fn feed(
        &mut self,
        rec: &Record<'_>,
        buf: &[u8],
        path: &Path,
    ) -> std::result::Result<(), String> {
        // The run id and commit time: the record's own in a wide segment (versions 1-3), its
        // batch head's in a lean one. A lean batch's first record is its head, and every other
        // record of the batch follows it.
        let (run_id, timestamp) = match rec.layout {
            Layout::Wide => (rec.run_id, rec.timestamp),
            Layout::Lean if rec.kind == RecordKind::BatchHead => {
                self.batch = Some((rec.batch_start, rec.run_id, rec.timestamp));
                (rec.run_id, rec.timestamp)
            }
            Layout::Lean => match self.batch {
                Some((start, run, ts)) if start == rec.batch_start => (run, ts),
                _ => {
                    return Err(format!(
                        "the write batch at offset {} does not start with its batch head",
                        rec.batch_start
                    ))
                }
            },
        };
        self.max_run_id = self.max_run_id.max(run_id);
        if matches!(rec.kind, RecordKind::Padding | RecordKind::BatchHead) {
            return Ok(());
        }
        if rec.is_relocated() {
            // A copy of an older version's value made by value-log garbage collection: not a
            // transaction (a checkpoint may refer to it; nothing to apply).
            return Ok(());
        }
        let lsn = rec.lsn;
        self.max_lsn = self.max_lsn.max(lsn);
        self.max_txn_id = self.max_txn_id.max(rec.txn_id);
        if lsn != 0 && lsn <= self.skip_through {
            // In the checkpoint already (every record of a transaction carries its LSN).
            return Ok(());
        }
        let base = buf.as_ptr() as usize;
        let in_open = |open: &Option<OpenTxn>| {
            open.as_ref()
                .is_some_and(|t| t.txn_id == rec.txn_id && t.lsn == lsn)
        };
        match rec.kind {
            RecordKind::BeginTxn => {
                if self.open.take().is_some() {
                    self.stats.transactions_incomplete += 1;
                }
                let cap = (rec.marker as usize).min(1024);
                self.open = Some(OpenTxn {
                    txn_id: rec.txn_id,
                    lsn,
                    ops: Vec::with_capacity(cap),
                });
            }
            RecordKind::Write | RecordKind::Delete if rec.is_autocommit() => {
                if self.open.take().is_some() {
                    self.stats.transactions_incomplete += 1;
                }
                let op = if rec.kind == RecordKind::Write {
                    OpRef::Put(rec.key, rec.value)
                } else {
                    OpRef::Delete(rec.key)
                };
                Self::check(op, lsn, rec.is_system())?;
                self.commit(lsn, timestamp)?;
                self.apply(op, lsn, buf, rec.is_system())?;
            }
            RecordKind::Write | RecordKind::Delete => {
                if in_open(&self.open) {
                    let t = self.open.as_mut().expect("checked by in_open");
                    let ks = rec.key.as_ptr() as usize - base;
                    let vs = rec.value.as_ptr() as usize - base;
                    t.ops.push((
                        rec.kind == RecordKind::Write,
                        ks,
                        rec.key.len(),
                        vs,
                        rec.value.len(),
                        rec.is_system(),
                    ));
                } else {
                    self.stats.orphaned_records += 1;
                }
            }
            RecordKind::CommitTxn => {
                if in_open(&self.open) {
                    let t = self.open.take().expect("checked by in_open");
                    if t.ops.len() as u64 != rec.marker {
                        // The commit names another op count: records are missing. Never apply a
                        // partial transaction.
                        self.stats.transactions_incomplete += 1;
                        return Ok(());
                    }
                    self.check_txn(&t, buf)?;
                    self.commit(t.lsn, timestamp)?;
                    self.apply_txn(t, buf)?;
                } else {
                    self.stats.orphaned_records += 1;
                }
            }
            RecordKind::AbortTxn => {
                if in_open(&self.open) {
                    self.open = None;
                    self.stats.transactions_aborted += 1;
                } else {
                    self.stats.orphaned_records += 1;
                }
            }
            RecordKind::Checkpoint => {
                log::debug!(
                    "checkpoint marker at {} offset {} (upto LSN {})",
                    path.display(),
                    rec.offset,
                    rec.marker
                );
            }
            RecordKind::Lease => {
                self.last_lease = Some(rec.marker);
            }
            RecordKind::Padding | RecordKind::BatchHead => {}
        }
        Ok(())
    }
}

/// A segment the checkpoint refers to for values is missing.
fn missing_value_segment(dir: &Path, id: u64) -> Error {
    corruption(
        &dir.join(segment_file_name(id)),
        0,
        format!("segment {id} is missing: the checkpoint refers to values in it"),
    )
}

fn corruption(file: &Path, offset: u64, reason: impl Into<String>) -> Error {
    Error::Corruption {
        file: file.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

/// Reads and decodes the header of the segment at `path` (the outer error is I/O, the inner one
/// the header's damage).
pub(crate) fn read_header(
    vfs: &dyn Vfs,
    path: &Path,
) -> Result<std::result::Result<SegmentHeader, DecodeError>> {
    let file = vfs
        .open(
            path,
            OpenOptions {
                write: false,
                create: false,
                direct: false,
            },
        )
        .map_err(|e| Error::io("open segment", path.to_path_buf(), e))?;
    let mut head = vec![0u8; SEGMENT_HEADER_LEN];
    let mut got = 0;
    while got < head.len() {
        match file.read_at(&mut head[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(Error::io("read segment header", path.to_path_buf(), e)),
        }
    }
    Ok(SegmentHeader::decode(&head[..got]))
}

/// Index of the first non-zero byte at or after `from`, and one past the last non-zero byte.
/// Scans 64-byte blocks with an OR-reduction (vectorised), since tails are megabytes of zeros.
fn nonzero_span(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    const BLOCK: usize = 64;
    let rest = buf.get(from..)?;
    let zero_block = |c: &[u8]| c.iter().fold(0u8, |a, &b| a | b) == 0;
    let first_block = rest.chunks(BLOCK).position(|c| !zero_block(c))?;
    let first = first_block * BLOCK + rest[first_block * BLOCK..].iter().position(|&b| b != 0)?;
    let last_block = rest.chunks(BLOCK).rposition(|c| !zero_block(c))?;
    let block = &rest[last_block * BLOCK..(last_block * BLOCK + BLOCK).min(rest.len())];
    let last = last_block * BLOCK + block.iter().rposition(|&b| b != 0)?;
    Some((from + first, from + last + 1))
}

/// Recovers the database in `dir` whose MANIFEST is `manifest`: removes the leftovers of
/// interrupted segment creations, checkpoints and compactions, loads the checkpoint the MANIFEST
/// names (if any), then replays the log after it.
pub(crate) fn recover(
    vfs: &dyn Vfs,
    dir: &Path,
    manifest: &Manifest,
    mode: RecoveryMode,
    read_only: bool,
) -> Result<Recovered> {
    debug_assert!(
        !read_only || mode != RecoveryMode::TruncateAtCorruption,
        "a read-only recovery never cuts the log"
    );
    let started = Instant::now();
    let mut stats = RecoveryStats::default();
    let (ids, below) = list_and_clean(vfs, dir, manifest, &mut stats, read_only)?;
    let mut app = Applier {
        cut: Cut::default(),
        cut_manifest: None,
        index: Loader::default(),
        open: None,
        last_applied: manifest.checkpoint_lsn,
        max_lsn: manifest.lsn_floor,
        max_txn_id: manifest.txn_floor,
        max_run_id: manifest.run_floor,
        stats,
        retention: (Retention::Snapshots, 0),
        samples: Vec::new(),
        last_lease: None,
        skip_through: manifest.checkpoint_lsn,
        log_retention: false,
        checkpointed: manifest.checkpoint_id != 0,
        first_raise: None,
        batch: None,
    };
    let truncating = mode == RecoveryMode::TruncateAtCorruption;
    // With a checkpoint, the log after it keeps every operation (they go on top of the
    // checkpoint's versions, or through the restart plan with them).
    if manifest.checkpoint_id != 0 {
        app.index.keep_versions();
    }
    // The checkpoint is loaded on a thread of its own while this one replays the log after it:
    // the two are independent until the merge below. A truncating recovery, which may move
    // segments aside while it replays, loads the checkpoint first instead, so that a damaged
    // checkpoint fails the open before anything is changed.
    // The log's versions, sorted by the concurrent load's replay but not taken by its loader.
    let mut unmerged = None;
    let (seeded, tail) = if manifest.checkpoint_id == 0 {
        (None, scan_log(vfs, dir, manifest, mode, &mut app, ids)?)
    } else if truncating {
        let seeded = seed_from_checkpoint(vfs, dir, manifest, None)?;
        (
            Some(seeded),
            scan_log(vfs, dir, manifest, mode, &mut app, ids)?,
        )
    } else {
        let handoff = TailHandoff::default();
        let (seeded, scanned) = std::thread::scope(|scope| {
            let loader = std::thread::Builder::new()
                .name("ringlog-ckpt-load".into())
                .spawn_scoped(scope, || {
                    seed_from_checkpoint(vfs, dir, manifest, Some(&handoff))
                });
            let scanned = scan_log(vfs, dir, manifest, mode, &mut app, ids);
            // The log's versions, sorted, for the loader to merge into the checkpoint's as it
            // appends them (see `TailHandoff`); withheld if the replay failed.
            let mut offer = handoff.offer();
            if scanned.is_ok() {
                let sorting = Instant::now();
                offer.give(std::mem::take(&mut app.index).finish());
                app.stats.build_time += sorting.elapsed();
            }
            drop(offer);
            let seeded = match loader {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(_) => seed_from_checkpoint(vfs, dir, manifest, None),
            };
            (seeded, scanned)
        });
        // Damage to the checkpoint is reported first, as when it was loaded first.
        let (seeded, scanned) = (seeded?, scanned?);
        // Sorted above but not taken by the loader (a per-key policy, or no loader thread):
        // merged below as when the checkpoint is loaded first.
        unmerged = handoff.reclaim();
        (Some(seeded), scanned)
    };
    let mut base = None;
    let mut ckpt_versions = None;
    // The log's versions: sorted already (by the concurrent load), of which the loader appended
    // all from `merged_from` on; or still in the replay's loader.
    let mut sorted = unmerged;
    let mut merged_from = None;
    let mut value_segments = std::collections::BTreeSet::new();
    if let Some(seeded) = &seeded {
        value_segments.clone_from(&seeded.value_segments);
    }
    // Every segment the checkpoint refers to for values must be there: its values are read from
    // it (otherwise the loss shows only at a read, long after the open). In any recovery mode:
    // no cut of the log brings them back. Most lie below the log (listed in `below`); a
    // checkpoint may also refer into the log it replays (the format-v6 golden files do,
    // engine/tests/golden/v6: their MANIFEST needs segment 1, which holds values their
    // checkpoint refers to), and a damaged or crafted one to any segment at all.
    if !crate::hooks::open_ignores_missing_value_segments() {
        for &id in &value_segments {
            let present = if id < manifest.first_needed_segment() {
                below.binary_search(&id).is_ok()
            } else {
                let path = dir.join(segment_file_name(id));
                vfs.kind_of(&path)
                    .map_err(|e| Error::io("stat segment", path, e))?
                    .is_some()
            };
            if !present {
                return Err(missing_value_segment(dir, id));
            }
        }
    }
    if !read_only || crate::hooks::read_only_cleans_up() {
        remove_unreferenced(vfs, dir, &below, &value_segments, &mut app.stats)?;
    }
    if let Some(seeded) = seeded {
        // The policy the log ends with, else the checkpoint's; the floor never below either.
        app.retention = if app.log_retention {
            let mut floor = app.retention.1.max(seeded.retention.1);
            if let Some(raise) = app.first_raise {
                if seeded.retention.0 == Retention::Snapshots
                    || crate::hooks::restart_raises_kept_floor()
                {
                    floor = floor.max(raise);
                }
            }
            (app.retention.0, floor)
        } else {
            seeded.retention
        };
        app.stats.checkpoint_keys = seeded.keys;
        app.stats.checkpoint_lsn = manifest.checkpoint_lsn;
        base = seeded.base;
        ckpt_versions = seeded.versions;
        if let Some((tail, from)) = seeded.merged {
            sorted = Some(tail);
            merged_from = Some(from);
        }
    }
    app.stats.last_lsn = app.last_applied;
    let building = Instant::now();
    let mut versions = sorted.unwrap_or_else(|| app.index.finish());
    if let Some(ck) = ckpt_versions {
        versions = Versions::merge(ck, versions);
    }
    if let Some(b) = &mut base {
        // The log after the checkpoint, every operation a version, on top of it: what the
        // loader did not append in its pass.
        let mut end = merged_from.unwrap_or(versions.len());
        if merged_from.is_some() && crate::hooks::merge_forgets_passed_tail() {
            end = 0;
        }
        if end > 0 {
            insert_tail(b, &versions, end);
        }
        versions = Versions::default();
        app.stats.keys = b.list.live_keys();
    } else {
        // Live keys: those whose newest version is a put.
        app.stats.keys = (0..versions.len())
            .filter(|&i| versions.get(i).2.is_some() && (i == 0 || !versions.same_key_at(i - 1, i)))
            .count();
    }
    app.stats.build_time += building.elapsed();
    app.stats.duration = started.elapsed();
    let mut max_lsn = app.max_lsn.max(app.last_lease.unwrap_or(0));
    if app.stats.truncated_at.is_some() && !crate::hooks::truncating_reuses_lsns() {
        max_lsn = app.cut.next_lsn_floor(max_lsn);
    }
    Ok(Recovered {
        base,
        versions,
        retention: app.retention,
        samples: app.samples,
        stats: app.stats,
        max_lsn,
        max_txn_id: app.max_txn_id,
        max_run_id: app.max_run_id,
        tail,
        value_segments: value_segments.into_iter().collect(),
        manifest: app.cut_manifest,
    })
}

/// Replays the log's segments `ids` (sorted) into `app`: checks their ids and headers, decodes
/// and applies their records, applies the torn-tail rule to the last one and, in a truncating
/// recovery, cuts the log at damage. Returns the last segment as it was left.
fn scan_log(
    vfs: &dyn Vfs,
    dir: &Path,
    manifest: &Manifest,
    mode: RecoveryMode,
    app: &mut Applier,
    mut ids: Vec<u64>,
) -> Result<Option<Tail>> {
    let path_of = |id: u64| dir.join(segment_file_name(id));
    let truncating = mode == RecoveryMode::TruncateAtCorruption;
    // Segment ids must be contiguous, from the first one the MANIFEST still needs (segment 1
    // when nothing was compacted away yet).
    // A truncating recovery cuts the log there instead: every segment goes aside (as a later
    // gap's do), and the database opens at the checkpoint's state. That is also how a truncating
    // recovery interrupted while moving segments aside (the first ones moved, the rest not)
    // finishes its cut.
    let first_needed = manifest.first_needed_segment();
    if ids.first().is_some_and(|&f| f > first_needed) {
        let missing = path_of(first_needed);
        if !truncating || crate::hooks::truncating_refuses_missing_first() {
            return Err(corruption(
                &missing,
                0,
                format!(
                    "segment {first_needed} is missing: the MANIFEST needs every segment from it on"
                ),
            ));
        }
        cut_log(vfs, dir, manifest, &mut ids, 0, (missing, 0), app)?;
    }
    if let Some(gap) = ids.windows(2).position(|w| w[1] != w[0] + 1) {
        let missing = ids[gap] + 1;
        if !truncating {
            return Err(corruption(
                &path_of(missing),
                0,
                format!("segment {missing} is missing while later segments exist"),
            ));
        }
        cut_log(
            vfs,
            dir,
            manifest,
            &mut ids,
            gap + 1,
            (path_of(missing), 0),
            app,
        )?;
    }
    let mut headers = Vec::with_capacity(ids.len());
    for &id in &ids {
        headers.push(read_header(vfs, &path_of(id))?);
    }
    // Where each segment must end: the next segment recorded it when it was created, after this
    // one was synced. Nothing past that end is ever read: a sealed segment's preallocated rest
    // is not part of the log.
    let plan: Vec<(PathBuf, Option<u64>)> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            // Only a header that is the next segment's of this database (as the loop below
            // checks before it reads one): a foreign file's would bound this segment anywhere.
            let stop_at = match (headers.get(i + 1), ids.get(i + 1)) {
                (Some(Ok(next)), Some(&next_id))
                    if next.segment_id == next_id && next.epoch == manifest.epoch =>
                {
                    Some(next.prev_end)
                }
                _ => None,
            };
            (path_of(id), stop_at)
        })
        .collect();
    // A truncating recovery may move segments aside while it replays: it reads in place.
    ReadAhead::with(vfs, &plan, !truncating, |reads| {
        scan_segments(
            vfs, dir, manifest, truncating, app, ids, &headers, &plan, reads,
        )
    })
}

/// [`scan_log`]'s loop over the segments, read through `reads`.
#[allow(clippy::too_many_arguments)]
fn scan_segments(
    vfs: &dyn Vfs,
    dir: &Path,
    manifest: &Manifest,
    truncating: bool,
    app: &mut Applier,
    mut ids: Vec<u64>,
    headers: &[std::result::Result<SegmentHeader, DecodeError>],
    plan: &[(PathBuf, Option<u64>)],
    reads: &mut ReadAhead<'_>,
) -> Result<Option<Tail>> {
    let epoch = manifest.epoch;
    let path_of = |id: u64| dir.join(segment_file_name(id));
    let mut tail = None;
    // The previous segment: its buffer goes back to the reader (two buffers take turns; they
    // grow to the largest segment and are never re-zeroed).
    let mut previous = None;
    let mut last_seen = None;
    let mut i = 0;
    while i < ids.len() {
        let id = ids[i];
        let path = path_of(id);
        let header = match &headers[i] {
            Ok(h) if h.segment_id == id && h.epoch == epoch => *h,
            bad => {
                let err = match bad {
                    Err(e) => corruption(&path, e.offset(), format!("bad segment header: {e}")),
                    Ok(h) => corruption(
                        &path,
                        0,
                        format!(
                            "segment header names segment {} of epoch {:#x}: the file belongs elsewhere",
                            h.segment_id, h.epoch
                        ),
                    ),
                };
                if !truncating {
                    return Err(err);
                }
                log::warn!("truncating the log before {}: {err}", path.display());
                cut_log(vfs, dir, manifest, &mut ids, i, (path, 0), app)?;
                break;
            }
        };
        let stop_at = plan[i].1;
        let waited = Instant::now();
        let segment = reads.read(i, previous.take())?;
        app.stats.read_time += waited.elapsed();
        app.max_lsn = app.max_lsn.max(header.base_lsn);
        app.max_run_id = app.max_run_id.max(header.run_id);
        app.stats.segments += 1;
        let Some(layout) = Layout::for_version(header.version) else {
            unreachable!("segment headers of other versions do not decode")
        };
        let seg = SegmentRef {
            id,
            epoch,
            layout,
            path: &path,
            stop_at,
            floors: header.version >= 5,
        };
        let decoding = Instant::now();
        let Scanned {
            pos,
            failure,
            certain,
        } = scan_segment(app, &segment, &seg)?;
        let streamed_wait = segment.waited();
        app.stats.read_time += streamed_wait;
        app.stats.decode_time += decoding.elapsed().saturating_sub(streamed_wait);
        let mut whole_file = Vec::new();
        let whole_bytes;
        let buf = if failure.is_some() && stop_at.is_some() && truncating {
            // A truncating recovery cuts here: count the whole damaged rest of the file.
            whole_bytes = read_segment(vfs, &path, &mut whole_file, None)?;
            whole_bytes.get(&whole_file)
        } else {
            segment.all()?
        };
        // Only the last segment's tail, or damage, needs the bytes after the last record.
        let garbage = if stop_at.is_none() || failure.is_some() {
            nonzero_span(buf, pos)
        } else {
            None
        };
        if let Some(err) = failure
            .as_ref()
            .filter(|_| garbage.is_some() || stop_at.is_some())
        {
            if let Some(reason) = classify_damage(buf, pos, err, certain, &seg, &mut app.stats) {
                if !truncating {
                    return Err(corruption(&path, pos as u64, reason));
                }
                log::warn!(
                    "truncating the log at {} offset {pos}: {reason}",
                    path.display()
                );
                cut_log(
                    vfs,
                    dir,
                    manifest,
                    &mut ids,
                    i + 1,
                    (path.clone(), pos as u64),
                    app,
                )?;
            }
        }
        if ids.len() == i + 1 {
            if let Some((first, last)) = garbage {
                app.stats.bytes_truncated += (last - pos) as u64;
                log::warn!(
                    "cut a torn tail of {} bytes in {} at offset {pos} (first non-zero byte at {first}){}",
                    last - pos,
                    path.display(),
                    failure.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
                );
            }
            tail = Some(Tail {
                id,
                valid_end: pos as u64,
                clean: garbage.is_none() && app.stats.truncated_at.is_none(),
                current_version: header.version == FORMAT_VERSION,
            });
        }
        last_seen = Some((id, pos as u64));
        previous = Some(segment);
        i += 1;
    }
    if tail.is_none() {
        // A truncating recovery cut the log before a segment with a bad header: the segment
        // before it ends the log, but is not appendable (its successor recorded its end).
        tail = last_seen.map(|(id, valid_end)| Tail {
            id,
            valid_end,
            clean: false,
            current_version: false,
        });
    }
    Ok(tail)
}

/// Lists the segment ids of `dir` that recovery reads (sorted), after removing what no crash
/// leaves in force: unfinished segment creations (`<id>.log.tmp`), segments below the MANIFEST's
/// first needed one (a compaction deleted them after the MANIFEST update that dropped them, or
/// was interrupted doing so), and checkpoint files other than the MANIFEST's (an interrupted
/// checkpoint's, or the previous one whose deletion was interrupted). Each removal is logged
/// first. A `read_only` recovery removes nothing: it only leaves those files out.
fn list_and_clean(
    vfs: &dyn Vfs,
    dir: &Path,
    manifest: &Manifest,
    stats: &mut RecoveryStats,
    read_only: bool,
) -> Result<(Vec<u64>, Vec<u64>)> {
    let names = vfs
        .list_dir(dir)
        .map_err(|e| Error::io("list directory", dir.to_path_buf(), e))?;
    let mut ids: Vec<u64> = Vec::new();
    // Segments below the first needed one: leftovers unless the checkpoint refers to values in
    // them (known once it is loaded, see `recover`).
    let mut below: Vec<u64> = Vec::new();
    let mut leftovers: Vec<(String, &'static str)> = Vec::new();
    for name in &names {
        if let Some((id, tmp)) = crate::checkpoint::parse_name(name) {
            if tmp || id != manifest.checkpoint_id {
                leftovers.push((
                    name.clone(),
                    if tmp || id > manifest.checkpoint_id {
                        "a checkpoint that did not finish (the MANIFEST never named it)"
                    } else {
                        "a checkpoint the MANIFEST replaced"
                    },
                ));
            }
            continue;
        }
        let (id, creating) = match (parse_segment_name(name), parse_creating_name(name)) {
            (Some(id), _) => (id, false),
            (None, Some(id)) => (id, true),
            (None, None) => continue,
        };
        if id > MAX_ID {
            return Err(corruption(
                &dir.join(name),
                0,
                format!("segment id {id} in the file name is above the format's maximum {MAX_ID}"),
            ));
        }
        if creating {
            // A segment is created as `<id>.log.tmp` and renamed to `<id>.log` only once its
            // header is durable; records are written only after that.
            leftovers.push((
                name.clone(),
                "a segment creation that did not finish (no record was ever written to it)",
            ));
        } else if id == 0 {
            // Segment ids start at 1: not a file of the log, and not provably a leftover.
            log::warn!(
                "ignoring {}: segment ids start at 1",
                dir.join(name).display()
            );
        } else if id < manifest.first_segment {
            below.push(id);
        } else {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    below.sort_unstable();
    if read_only && !crate::hooks::read_only_cleans_up() {
        for (name, why) in &leftovers {
            log::info!("read-only: leaving out {}: {why}", dir.join(name).display());
        }
    } else {
        remove_leftovers(vfs, dir, &leftovers, stats)?;
    }
    Ok((ids, below))
}

/// The segments of `below` (below the MANIFEST's first needed segment) that the checkpoint in
/// force refers to for values, `kept`, stay; the others are leftovers of a compaction that did
/// not finish, removed.
fn remove_unreferenced(
    vfs: &dyn Vfs,
    dir: &Path,
    below: &[u64],
    kept: &std::collections::BTreeSet<u64>,
    stats: &mut RecoveryStats,
) -> Result<()> {
    let leftovers: Vec<(String, &'static str)> = below
        .iter()
        .filter(|id| !kept.contains(id))
        .map(|&id| {
            (
                segment_file_name(id),
                "a segment below the checkpoint, no longer needed by the MANIFEST",
            )
        })
        .collect();
    remove_leftovers(vfs, dir, &leftovers, stats)
}

/// Removes `leftovers` (file name, why), each logged and counted.
fn remove_leftovers(
    vfs: &dyn Vfs,
    dir: &Path,
    leftovers: &[(String, &'static str)],
    stats: &mut RecoveryStats,
) -> Result<()> {
    if !leftovers.is_empty() {
        // What makes a file a leftover is the MANIFEST: its rename must be durable before
        // anything it replaced goes (a process crash can fall between a MANIFEST's rename and
        // the directory fsync after it).
        vfs.sync_dir(dir)
            .map_err(|e| Error::io("sync directory", dir.to_path_buf(), e))?;
        for (name, why) in leftovers {
            let path = dir.join(name);
            log::warn!("removing {}: {why}", path.display());
            if name.ends_with(".log.tmp") {
                failpoint!(RECOVERY_BEFORE_REMOVE_UNFINISHED_SEGMENT);
                stats.torn_segments_removed += 1;
            } else {
                failpoint!(OPEN_BEFORE_REMOVE_LEFTOVER);
                stats.leftovers_removed += 1;
            }
            vfs.remove_file(&path)
                .map_err(|e| Error::io("remove leftover", path.clone(), e))?;
        }
        vfs.sync_dir(dir)
            .map_err(|e| Error::io("sync directory", dir.to_path_buf(), e))?;
    }
    Ok(())
}

/// The first index generation, built straight from a checkpoint (see [`seed_from_checkpoint`]).
pub(crate) struct Base {
    pub(crate) list: SkipList,
    /// Versions in it a trim may drop (superseded ones, tombstones).
    pub(crate) garbage: usize,
    /// The highest LSN of a version flagged as having older versions trimmed (0 if none).
    pub(crate) marked: Lsn,
}

/// What the MANIFEST's checkpoint seeds recovery with.
struct Seeded {
    /// The first index generation, built from it (`None` under a per-key policy).
    base: Option<Base>,
    /// Under a per-key policy (`LastVersions`), its versions in list order, to go through the
    /// restart plan with the log's.
    versions: Option<Versions>,
    /// Its retention policy and the floor recorded with it.
    retention: (Retention, Lsn),
    /// Its keys.
    keys: u64,
    /// The log segments its entries refer to for their values.
    value_segments: std::collections::BTreeSet<u64>,
    /// The log's versions after it, sorted, handed over by the replay ([`TailHandoff`]), and
    /// the index from which the loader appended them in its pass: those before it are still
    /// to be inserted.
    merged: Option<(Versions, usize)>,
}

/// The hand-over of the log's versions (sorted) from the replay to the checkpoint's loader, which
/// runs at the same time: the loader appends the checkpoint's versions to the index in list
/// order, and once it holds the log's versions it appends each of them in its place among those
/// (every LSN of the log is above the checkpoint's, so on equal keys the log's come first) —
/// an append, not a search of the list. The log's versions whose keys the loader had already
/// passed when it took them are inserted afterwards ([`insert_tail`]). Measured against waiting
/// for the log's versions before the pass (every version appended, none inserted, the device
/// reading the log first): the overlap wins (docs/BENCHMARKS.md, issue 12, "Session 10"). A
/// replay that fails gives nothing, and the loader does not wait ([`TailOffer`]).
#[derive(Default)]
struct TailHandoff {
    slot: parking_lot::Mutex<TailSlot>,
    given: parking_lot::Condvar,
}

#[derive(Default)]
enum TailSlot {
    /// The replay is still running.
    #[default]
    Pending,
    Ready(Versions),
    /// The loader took them, or the replay will not give any (it failed).
    Closed,
}

/// The replay's side of a [`TailHandoff`]: dropping it without [`TailOffer::give`] tells the
/// loader that nothing will come (it must not wait), on every path out of the replay.
struct TailOffer<'a>(&'a TailHandoff);

impl TailOffer<'_> {
    fn give(&mut self, versions: Versions) {
        let mut slot = self.0.slot.lock();
        if matches!(*slot, TailSlot::Pending) {
            *slot = TailSlot::Ready(versions);
            self.0.given.notify_all();
        }
    }
}

impl Drop for TailOffer<'_> {
    fn drop(&mut self) {
        let mut slot = self.0.slot.lock();
        if matches!(*slot, TailSlot::Pending) {
            *slot = TailSlot::Closed;
        }
        self.0.given.notify_all();
    }
}

impl TailHandoff {
    fn offer(&self) -> TailOffer<'_> {
        TailOffer(self)
    }

    /// The versions, if the replay gave them already.
    fn try_take(&self) -> Option<Versions> {
        let mut slot = self.slot.lock();
        if matches!(*slot, TailSlot::Pending) {
            return None;
        }
        slot.take()
    }

    /// The versions, once the replay gives them; `None` if it gives none.
    fn wait_take(&self) -> Option<Versions> {
        let mut slot = self.slot.lock();
        while matches!(*slot, TailSlot::Pending) {
            self.given.wait(&mut slot);
        }
        slot.take()
    }

    /// The versions the loader did not take.
    fn reclaim(&self) -> Option<Versions> {
        self.slot.lock().take()
    }
}

impl TailSlot {
    /// The versions if they are here, closing the slot.
    fn take(&mut self) -> Option<Versions> {
        match std::mem::replace(self, TailSlot::Closed) {
            TailSlot::Ready(v) => Some(v),
            _ => None,
        }
    }
}

/// The loader's merge of the log's versions into its pass over the checkpoint's.
struct TailMerge {
    tail: Versions,
    /// `tail[..from]` sort before what the loader had appended when it took them: left to
    /// [`insert_tail`].
    from: usize,
    /// The next of `tail` to append.
    next: usize,
}

impl TailMerge {
    /// Starts merging `tail` into `base`, whose last node is where the pass stands.
    fn start(tail: Versions, base: &Base) -> TailMerge {
        let from = match base.list.last() {
            None => 0,
            Some(last) => {
                // The first of the log's versions whose key sorts after the last node's.
                let (mut lo, mut hi) = (0, tail.len());
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if tail.get(mid).0 <= last.key() {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                lo
            }
        };
        TailMerge {
            tail,
            from,
            next: from,
        }
    }

    /// Appends the log's versions that sort before the checkpoint's next version, of `key`
    /// (all of them when `key` is `None`: the checkpoint's pass is over).
    fn append_before(&mut self, base: &mut Base, key: Option<&[u8]>) {
        while self.next < self.tail.len() {
            self.tail
                .prefetch(self.next + crate::loader::PREFETCH_AHEAD);
            let (k, lsn, value) = self.tail.get(self.next);
            if key.is_some_and(|key| k > key) {
                break;
            }
            // Equal keys: the log's version is the newer (its LSN is above the checkpoint's).
            if base.list.append_sorted(k, lsn, value, 0) || value.is_none() {
                base.garbage += 1;
            }
            self.next += 1;
        }
    }
}

/// Loads the MANIFEST's checkpoint: its retention policy, then every version it holds.
///
/// Usually straight into the first index generation (`base`), in list order without a search or
/// a copy: the log after it, replayed keeping every operation, is inserted into it afterwards
/// ([`insert_tail`]); what a restart's plan would drop is left to the background trim (reads
/// answer the same: the floor is computed as for a full replay). Under a per-key policy
/// (`LastVersions`), whose restart plan moves the floor, its versions are kept as they are
/// (`versions`), merged with the log's, and the plan is applied when the generation is built.
/// Independent of the log's replay: recovery runs the two at once.
///
/// With `tail`, the replay hands it the log's versions (sorted) while it loads, and it merges
/// them into its pass ([`TailHandoff`]).
fn seed_from_checkpoint(
    vfs: &dyn Vfs,
    dir: &Path,
    manifest: &Manifest,
    tail: Option<&TailHandoff>,
) -> Result<Seeded> {
    let mut base: Option<Base> = None;
    let mut merge: Option<TailMerge> = None;
    let mut seen = 0u64;
    let mut wait_at = None;

    let mut versions: Option<Versions> = None;
    let mut retention = (Retention::Snapshots, 0);
    let mut keys_hint = 0;
    let mut size_hint = (0, 0);
    let mut value_segments = SegmentSet::default();
    // The first failure to read a value (under a per-key policy, whose load keeps values in
    // memory); the load's callback cannot return it.
    let mut value_error: Option<Error> = None;
    let keys = crate::checkpoint::load(
        vfs,
        dir,
        (
            manifest.epoch,
            manifest.checkpoint_id,
            manifest.checkpoint_lsn,
            manifest.checkpoint_len,
        ),
        &mut |item| match item {
            Item::Start {
                keys,
                versions,
                bytes,
            } => {
                keys_hint = keys;
                size_hint = (versions, bytes);
                wait_at = crate::hooks::tail_wait_at(versions);
            }
            Item::Retention(policy, floor) => {
                // The checkpoint's own floor: the MANIFEST's is applied once the log is replayed
                // (`open::recovered_versions`), capped at the last LSN recovered.
                retention = (policy, floor);
                if matches!(policy, Retention::LastVersions(_)) {
                    versions = Some(Versions::default());
                } else {
                    let mut list = SkipList::new();
                    // Built in the background once the database is open.
                    list.defer_key_index();
                    list.reserve_keys(usize::try_from(keys_hint).unwrap_or(usize::MAX));
                    list.prefault(size_hint.0, size_hint.1);
                    base = Some(Base {
                        list,
                        garbage: 0,
                        marked: 0,
                    });
                }
            }
            Item::Version(e) => {
                if let Some(b) = &mut base {
                    if let Some(m) = &mut merge {
                        m.append_before(b, Some(e.key));
                    } else if let Some(h) = tail {
                        // Look for the log's versions now and then (a lock per look), or wait
                        // for them where a test asked to.
                        seen += 1;
                        let took = if wait_at == Some(seen) {
                            h.wait_take()
                        } else if seen.is_multiple_of(1024) {
                            h.try_take()
                        } else {
                            None
                        };
                        if let Some(t) = took {
                            let m = merge.insert(TailMerge::start(t, b));
                            m.append_before(b, Some(e.key));
                        }
                    }
                    // Garbage as a build counts it: every version but its key's first (the
                    // newest; a version of the log's may come first), and tombstones.
                    let packed;
                    let (value, flags) = match e.value {
                        EntryValue::Tombstone => (None, e.flags),
                        EntryValue::Inline(v) => (Some(v), e.flags),
                        EntryValue::InSegment(r) => {
                            value_segments.note(r.segment);
                            packed = crate::values::pack(r);
                            (packed.as_ref().map(|p| &p[..]), e.flags | IN_SEGMENT)
                        }
                    };
                    if value.is_none() && !e.value.is_tombstone() {
                        // A segment id above 2^32: not representable in a node.
                        value_error.get_or_insert_with(|| Error::Corruption {
                            file: dir.join(crate::checkpoint::file_name(manifest.checkpoint_id)),
                            offset: 0,
                            reason: "a value reference to a segment above 2^32".into(),
                        });
                        return;
                    }
                    if b.list.append_sorted(e.key, e.lsn, value, flags) || value.is_none() {
                        b.garbage += 1;
                    }
                    if e.flags & TRIMMED_BELOW != 0 {
                        b.marked = b.marked.max(e.lsn);
                    }
                } else if let Some(v) = &mut versions {
                    // In list order already: kept as they are, merged with the log's later.
                    // Values on disk are read back (a per-key policy's restart plan works on
                    // versions in memory; see docs/DURABILITY.md, "Values on disk").
                    match e.value {
                        EntryValue::Tombstone => v.push_version(e.key, e.lsn, None),
                        EntryValue::Inline(x) => v.push_version(e.key, e.lsn, Some(x)),
                        EntryValue::InSegment(r) => {
                            value_segments.note(r.segment);
                            let want = crate::values::Want {
                                at: r,
                                key: e.key,
                                lsn: e.lsn,
                            };
                            match crate::values::read_direct(vfs, dir, manifest.epoch, &want) {
                                Ok(x) => v.push_version(e.key, e.lsn, Some(&x)),
                                // The segment is gone: the same corruption the check of the
                                // value segments reports after the load (in every mode).
                                Err(Error::Io { source, .. })
                                    if source.kind() == std::io::ErrorKind::NotFound =>
                                {
                                    value_error.get_or_insert_with(|| {
                                        missing_value_segment(dir, r.segment)
                                    });
                                }
                                Err(err) => {
                                    value_error.get_or_insert(err);
                                }
                            }
                        }
                    }
                }
            }
        },
    )?;
    if let Some(e) = value_error {
        return Err(e);
    }
    if let (Some(b), Some(h)) = (&mut base, tail) {
        // The pass is over: the log's versions past the checkpoint's last key are appended
        // too (waiting for the replay to sort them, if it has not yet).
        if merge.is_none() {
            merge = h.wait_take().map(|t| TailMerge::start(t, b));
        }
        if let Some(m) = &mut merge {
            m.append_before(b, None);
        }
    }
    if let Some(b) = &base {
        b.list.end_prefault();
    }
    Ok(Seeded {
        base,
        versions,
        retention,
        keys,
        value_segments: value_segments.into_set(),
        merged: merge.map(|m| (m.tail, m.from)),
    })
}

/// The segment ids a checkpoint's entries refer to, noted once per entry while it loads (8 M
/// entries for 8 M values on disk): a bit per id where ids are small (every id a database
/// reaches in practice), a set beyond. A `BTreeSet` insert per entry was 6 % of a cold open's
/// samples (`perf`, 8 M keys).
#[derive(Default)]
struct SegmentSet {
    bits: Vec<u64>,
    large: std::collections::BTreeSet<u64>,
}

impl SegmentSet {
    /// Ids below this are bits (2 MiB of bitmap at most).
    const BITS: u64 = 1 << 24;

    fn note(&mut self, id: u64) {
        if id < Self::BITS {
            let (word, bit) = ((id / 64) as usize, id % 64);
            if word >= self.bits.len() {
                self.bits.resize(word + 1, 0);
            }
            self.bits[word] |= 1 << bit;
        } else {
            self.large.insert(id);
        }
    }

    fn into_set(self) -> std::collections::BTreeSet<u64> {
        let mut set = self.large;
        for (w, &word) in self.bits.iter().enumerate() {
            let mut rest = word;
            while rest != 0 {
                let bit = u64::from(rest.trailing_zeros());
                set.insert(w as u64 * 64 + bit);
                rest &= rest - 1;
            }
        }
        set
    }
}

/// Adds the versions the log after a checkpoint replayed, `tail` (key ascending, LSN
/// descending; every LSN above the checkpoint's, so above every version of `base`), to the
/// checkpoint's list. In key order, each insert starts where the previous one linked its node
/// (the list's insert hint): the walk over the checkpoint's versions is one forward pass at each
/// level, over nodes that lie in key order in the arena, not a search from the top per version;
/// and the checkpoint's versions are neither copied nor freed.
fn insert_tail(base: &mut Base, tail: &Versions, end: usize) {
    // `end` of the versions, with a share of their bytes.
    let bytes = (tail.payload_bytes() + tail.len() * 16) as u64;
    base.list
        .prefault(end as u64, bytes / tail.len().max(1) as u64 * end as u64);
    for i in 0..end {
        // The tail's bytes are in log order: fetch a few versions ahead.
        tail.prefetch(i + crate::loader::PREFETCH_AHEAD);
        let (key, lsn, value) = tail.get(i);
        let ins = base.list.insert_exclusive(key, lsn, value, 0);
        // Garbage as a build counts it: every version but a key's newest, and tombstones; the
        // key's newest put before this version, now superseded.
        if ins.newer_exists || value.is_none() {
            base.garbage += 1;
        }
        if !ins.newer_exists && ins.older == Some(true) {
            base.garbage += 1;
        }
    }
    base.list.end_prefault();
}

/// The segment being replayed: what its records are bound to and where it must end.
struct SegmentRef<'a> {
    id: u64,
    epoch: u64,
    /// Its records' layout (by the version in its header).
    layout: Layout,
    path: &'a Path,
    /// The end its successor recorded (`None` for the last segment).
    stop_at: Option<u64>,
    /// Written by a version (5 or later) that may keep several batches in flight: a later batch
    /// proves damage durable only below its head's durable floor. Older versions wrote one batch
    /// at a time, so any later batch proves it.
    floors: bool,
}

/// Where decoding a segment stopped, and why if before its end.
struct Scanned {
    /// Offset just past the last valid record.
    pos: usize,
    /// Why decoding stopped before the end, if it did.
    failure: Option<String>,
    /// The failure is certainly damage (a structure that passed its checksum but no engine
    /// wrote), never a torn write.
    certain: bool,
}

/// Decodes and applies the records of one segment, `buf`, in order, until its end (the end its
/// successor recorded) or the first record that does not decode or does not follow.
fn scan_segment(app: &mut Applier, segment: &Segment, seg: &SegmentRef<'_>) -> Result<Scanned> {
    let mut pos = SEGMENT_HEADER_LEN;
    let mut failure = None;
    let mut certain = false;
    loop {
        if seg.stop_at == Some(pos as u64) {
            break;
        }
        // A streamed segment is decoded as it is read: each record once the bytes its header
        // claims are in (or the whole segment, when it claims more). The decoder reads nothing
        // past a record's claimed length, so it decides exactly as on the whole segment.
        let hl = seg.layout.header_len();
        let head = segment.at_least(pos + hl)?;
        if pos >= head.len() {
            if seg.stop_at.is_some() {
                failure = Some(format!("the file ends at offset {pos}"));
            }
            break;
        }
        let claimed = head
            .get(pos + 4..pos + 8)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
        let buf = segment.at_least(
            pos.saturating_add(claimed.max(hl))
                .saturating_add(RECORD_ALIGN - 1),
        )?;
        let at = SegmentPos {
            segment_id: seg.id,
            epoch: seg.epoch,
            offset: pos as u64,
        };
        match decode_record_in(seg.layout, buf, pos, at) {
            Ok(rec) => {
                let end = pos + rec.encoded_len();
                if seg.stop_at.is_some_and(|s| end as u64 > s) {
                    failure = Some("record crosses the end recorded by the next segment".into());
                    break;
                }
                if let Err(why) = app.feed(&rec, buf, seg.path) {
                    failure = Some(why);
                    break;
                }
                pos = end;
            }
            Err(e) => {
                certain = matches!(e, DecodeError::OutOfRange { .. });
                failure = Some(e.to_string());
                break;
            }
        }
    }
    let buf = segment.all()?;
    #[cfg(feature = "__planted-bugs")]
    app.planted_apply_torn_commit(buf);
    app.end_segment(buf);
    Ok(Scanned {
        pos,
        failure,
        certain,
    })
}

/// Damage at `pos` (described by `err`): `Some(reason)` when it is mid-log corruption — before the
/// last segment's end, certain, or followed by a record of a later write batch, which proves the
/// damaged batch had been synced — and `None` when it is a torn tail (inside the last batch).
fn classify_damage(
    buf: &[u8],
    pos: usize,
    err: &str,
    certain: bool,
    seg: &SegmentRef<'_>,
    stats: &mut RecoveryStats,
) -> Option<String> {
    let later_batch = if seg.stop_at.is_some() || certain {
        LaterBatch::None
    } else {
        later_batch_record(buf, pos, seg, stats)
    };
    if seg.stop_at.is_none() && !certain && later_batch == LaterBatch::None {
        return None;
    }
    Some(match later_batch {
        LaterBatch::Found(rec) => format!(
            "{err}; a valid record of a later write batch follows at offset {}",
            rec.offset
        ),
        LaterBatch::Undecided => {
            format!(
                "{err}; the bytes after it are full of record-like headers that no crash writes"
            )
        }
        LaterBatch::None if certain => err.to_string(),
        LaterBatch::None => format!(
            "{err}; the segment ends before offset {} recorded by its successor",
            seg.stop_at.unwrap_or(0)
        ),
    })
}

/// What a truncating recovery cut away, for the LSNs it must never hand out again: commits
/// acknowledged in the bytes it cut (and the leases that let Buffered commits return early) are
/// gone, and with them the proof of how far LSNs went.
#[derive(Default)]
struct Cut {
    /// The highest base LSN among the headers (that decode) of the segments it set aside.
    max_base: Lsn,
    /// Segments cut into or set aside (or missing where the cut was made).
    segments: u64,
}

impl Cut {
    /// The LSN the next run must start above, after a cut, from the highest one recovery saw:
    /// past the base LSN of every segment set aside, and then, for each segment cut, as many
    /// LSNs as its records could have used (one per 8 bytes of the largest segment) plus the
    /// largest lease a run may take. LSNs are 63 bits: a cut skips about 2^40 of them per
    /// segment, so that identity holds without trusting a damaged byte.
    fn next_lsn_floor(&self, seen: Lsn) -> Lsn {
        let per_segment = crate::options::MAX_LEASE_SPAN + ringlog_format::MAX_SEGMENT_LEN / 8;
        seen.max(self.max_base)
            .saturating_add(per_segment.saturating_mul(self.segments + 1))
            .min(ringlog_format::MAX_ID)
    }
}

/// Cuts the log (a truncating recovery): keeps the first `keep` segments of `ids`, quarantines the
/// rest, and records where the log was cut (and, in `cut`, what it cut: see [`Cut`]).
fn cut_log(
    vfs: &dyn Vfs,
    dir: &Path,
    manifest: &Manifest,
    ids: &mut Vec<u64>,
    keep: usize,
    at: (PathBuf, u64),
    app: &mut Applier,
) -> Result<()> {
    let cut = &mut app.cut;
    cut.segments += 1 + (ids.len() - keep) as u64;
    for &id in &ids[keep..] {
        if let Ok(Ok(h)) = read_header(vfs, &dir.join(segment_file_name(id))) {
            cut.max_base = cut.max_base.max(h.base_lsn);
        }
    }
    // The LSNs the cut takes away are never handed out again — also if this open stops before
    // the new segment that records its floor exists (a crash, a full disk, a later error):
    // once segments are set aside, nothing else proves how far LSNs went. So the floor is made
    // durable in the MANIFEST first (a review found an interrupted truncating recovery leaving
    // no floor, and the next open reusing acknowledged LSNs).
    if !crate::hooks::truncating_reuses_lsns() {
        let seen = app.max_lsn.max(app.last_lease.unwrap_or(0));
        let floor = app.cut.next_lsn_floor(seen);
        let current = app.cut_manifest.unwrap_or(*manifest);
        if current.lsn_floor < floor {
            let mut next = current.successor();
            next.lsn_floor = floor;
            crate::dir::write_manifest(vfs, dir, &next)?;
            app.cut_manifest = Some(next);
        }
    }
    quarantine(vfs, dir, &ids[keep..], &mut app.stats)?;
    ids.truncate(keep);
    app.stats.truncated_at = Some(at);
    Ok(())
}

/// A valid record after `pos` that belongs to a write batch starting after `pos` and proves the
/// damage at `pos` was durable, if any ([`ringlog_format::damage_proof`], which this counts the
/// checksums of).
fn later_batch_record<'a>(
    buf: &'a [u8],
    pos: usize,
    seg: &SegmentRef<'_>,
    stats: &mut RecoveryStats,
) -> LaterBatch<'a> {
    // Nothing but zeros after the damage: no record can follow (a record's first bytes are never
    // zero).
    if nonzero_span(buf, pos + 8).is_none() {
        return LaterBatch::None;
    }
    let search = SearchIn {
        layout: seg.layout,
        segment_id: seg.id,
        epoch: seg.epoch,
        base: 0,
    };
    let (found, cost) = ringlog_format::damage_proof(buf, pos, search, seg.floors);
    stats.damage_search_checksums += cost.checksums;
    found
}

fn quarantine(vfs: &dyn Vfs, dir: &Path, ids: &[u64], stats: &mut RecoveryStats) -> Result<()> {
    for &id in ids {
        let from = dir.join(segment_file_name(id));
        if vfs
            .kind_of(&from)
            .map_err(|e| Error::io("stat segment", from.clone(), e))?
            .is_none()
        {
            continue;
        }
        // Never replace an earlier quarantined file: the ids are reused after a cut.
        let mut n = 0u32;
        let to = loop {
            let to = dir.join(format!("{}.corrupt.{n}", segment_file_name(id)));
            if vfs
                .kind_of(&to)
                .map_err(|e| Error::io("stat", to.clone(), e))?
                .is_none()
            {
                break to;
            }
            n += 1;
        };
        log::warn!("quarantining {} as {}", from.display(), to.display());
        failpoint!(RECOVERY_BEFORE_QUARANTINE);
        vfs.rename(&from, &to)
            .map_err(|e| Error::io("quarantine segment", from.clone(), e))?;
        stats.segments_quarantined += 1;
    }
    if !ids.is_empty() {
        vfs.sync_dir(dir)
            .map_err(|e| Error::io("sync directory", dir.to_path_buf(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{insert_tail, nonzero_span, Base, SegmentSet, TailHandoff, TailMerge};
    use crate::index::retention::Plan;
    use crate::loader::{build, Versions};
    use crate::skiplist::SkipList;

    /// (key, LSN, value or tombstone).
    type Version = (Vec<u8>, u64, Option<Vec<u8>>);

    /// A checkpoint's versions and a tail's (keys 0..400, tail LSNs above the checkpoint's,
    /// tombstones and several versions per key on both sides), from `seed`.
    fn versions(seed: u64, lsns: std::ops::Range<u64>, keys: u64) -> Vec<Version> {
        let mut x = seed;
        let mut v: Vec<_> = lsns
            .map(|lsn| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key = format!("k{:04}", x % keys).into_bytes();
                let value = (!x.is_multiple_of(5)).then(|| vec![(x >> 8) as u8; (x % 40) as usize]);
                (key, lsn, value)
            })
            .collect();
        // List order: key ascending, LSN descending.
        v.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        v
    }

    fn as_versions(v: &[Version]) -> Versions {
        let mut out = Versions::default();
        for (k, l, val) in v {
            out.push_version(k, *l, val.as_deref());
        }
        out
    }

    fn contents(list: &SkipList) -> Vec<Version> {
        let mut out = Vec::new();
        let mut n = list.first();
        while let Some(node) = n {
            out.push((
                node.key().to_vec(),
                node.lsn(),
                node.value().map(<[u8]>::to_vec),
            ));
            n = node.next();
        }
        out
    }

    /// A plan that keeps every version.
    const KEEP_ALL: Plan = Plan {
        boundary: 0,
        keep_below: None,
        mark: false,
    };

    /// (seed, a checkpoint's versions, the log's after it) for three seeds.
    fn histories() -> impl Iterator<Item = (u64, Vec<Version>, Vec<Version>)> {
        [0x9E37_79B9_7F4A_7C15u64, 0x2545_F491_4F6C_DD1D, 7]
            .into_iter()
            .map(|seed| {
                let ckpt = versions(seed, 1..3000, 400);
                (seed, ckpt, versions(seed ^ 0xABCD, 3000..4500, 500))
            })
    }

    /// `base` holds what a build of the same versions holds: nodes, garbage and live keys.
    fn assert_built_as(base: &Base, expected: &SkipList, expected_garbage: usize, what: &str) {
        assert_eq!(contents(&base.list), contents(expected), "{what}");
        assert_eq!(base.garbage, expected_garbage, "{what}: garbage");
        assert_eq!(
            base.list.live_keys(),
            expected.live_keys(),
            "{what}: live keys"
        );
    }

    #[test]
    fn a_tail_inserted_into_a_checkpoint_list_equals_a_build_of_both() {
        for (seed, ckpt, tail) in histories() {
            let (list, garbage, _) = build(as_versions(&ckpt), KEEP_ALL);
            let mut base = Base {
                list,
                garbage,
                marked: 0,
            };
            base.list.defer_key_index();
            let tail_v = as_versions(&tail);
            insert_tail(&mut base, &tail_v, tail_v.len());
            let both = Versions::merge(as_versions(&ckpt), as_versions(&tail));
            let (expected, expected_garbage, _) = build(both, KEEP_ALL);
            assert_built_as(
                &base,
                &expected,
                expected_garbage,
                &format!("seed {seed:#x}"),
            );
        }
    }

    /// The checkpoint loader's pass with the log's versions handed over part-way (before its
    /// first version, after some, after its last): the versions it appends in their places
    /// and those it leaves to `insert_tail` give the list, garbage and live keys of a build of
    /// both.
    #[test]
    fn a_tail_merged_into_the_checkpoint_pass_equals_a_build_of_both() {
        for (seed, ckpt, tail) in histories() {
            let both = Versions::merge(as_versions(&ckpt), as_versions(&tail));
            let (expected, expected_garbage, _) = build(both, KEEP_ALL);
            for handed_at in [0, 1, 700, 1500, ckpt.len() - 1, ckpt.len()] {
                let mut base = Base {
                    list: SkipList::new(),
                    garbage: 0,
                    marked: 0,
                };
                base.list.defer_key_index();
                let mut merge = None;
                for (i, (k, l, v)) in ckpt.iter().enumerate() {
                    if i == handed_at {
                        merge = Some(TailMerge::start(as_versions(&tail), &base));
                    }
                    if let Some(m) = &mut merge {
                        m.append_before(&mut base, Some(k));
                    }
                    if base.list.append_sorted(k, *l, v.as_deref(), 0) || v.is_none() {
                        base.garbage += 1;
                    }
                }
                let m = merge.get_or_insert_with(|| TailMerge::start(as_versions(&tail), &base));
                m.append_before(&mut base, None);
                let (tail_v, from) = (std::mem::take(&mut m.tail), m.from);
                assert_eq!(
                    m.next,
                    tail_v.len(),
                    "seed {seed:#x} at {handed_at}: all appended"
                );
                insert_tail(&mut base, &tail_v, from);
                let what = format!("seed {seed:#x}, handed over at {handed_at}");
                assert_built_as(&base, &expected, expected_garbage, &what);
            }
        }
    }

    /// The hand-over: what the replay gives is taken once; a replay that ends without giving
    /// releases a waiting loader; what the loader did not take is reclaimed.
    #[test]
    fn the_tail_handoff_gives_once_and_never_strands_the_loader() {
        let one = || as_versions(&versions(1, 1..10, 5));
        let h = TailHandoff::default();
        assert!(h.try_take().is_none(), "nothing before the replay gives");
        let mut offer = h.offer();
        offer.give(one());
        drop(offer);
        assert_eq!(h.try_take().map(|v| v.len()), Some(9));
        assert!(
            h.try_take().is_none() && h.wait_take().is_none(),
            "taken once"
        );
        assert!(h.reclaim().is_none(), "taken: nothing to reclaim");

        let h = TailHandoff::default();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| h.wait_take().is_none());
            // The replay failed: its offer goes without a gift.
            drop(h.offer());
            assert!(waiter.join().expect("no panic"), "released with nothing");
        });

        let h = TailHandoff::default();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| h.wait_take().map(|v| v.len()));
            h.offer().give(one());
            assert_eq!(waiter.join().expect("no panic"), Some(9));
        });

        let h = TailHandoff::default();
        h.offer().give(one());
        assert_eq!(
            h.reclaim().map(|v| v.len()),
            Some(9),
            "not taken: reclaimed"
        );
    }

    #[test]
    fn nonzero_span_finds_exact_bounds() {
        let mut buf = vec![0u8; 1000];
        assert_eq!(nonzero_span(&buf, 0), None);
        buf[130] = 1;
        buf[777] = 2;
        assert_eq!(nonzero_span(&buf, 0), Some((130, 778)));
        assert_eq!(nonzero_span(&buf, 131), Some((777, 778)));
        assert_eq!(nonzero_span(&buf, 778), None);
        assert_eq!(nonzero_span(&buf, 5000), None);
        buf[999] = 3;
        assert_eq!(nonzero_span(&buf, 999), Some((999, 1000)));
    }

    /// The ids noted, small (bits) and large (a set), repeated and out of order, come back as
    /// the set of distinct ids.
    #[test]
    fn a_segment_set_holds_each_id_noted_once() {
        let ids = [
            5,
            1,
            64,
            63,
            5,
            SegmentSet::BITS - 1,
            SegmentSet::BITS,
            u64::MAX,
            128,
            1,
        ];
        let mut s = SegmentSet::default();
        for id in ids {
            s.note(id);
        }
        let want: std::collections::BTreeSet<u64> = ids.into_iter().collect();
        assert_eq!(s.into_set(), want);
        assert!(SegmentSet::default().into_set().is_empty());
    }
}
