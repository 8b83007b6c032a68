//! Runs: each open of a database with a log is a run, with an id every record carries. The log
//! tells what each run committed: [`Db::runs`], [`Db::run_changes`], [`Db::diff_runs`], and a
//! label a run may give itself ([`Db::label_run`], a system entry of the log).
//!
//! These read the log's segments as they are on disk (after a sync), from the oldest segment of
//! the unbroken sequence ending at the active one (never below the first segment the MANIFEST
//! needs), applying the rules recovery applies: a segment ends where its successor's header says
//! (the active one at the durable end), a transaction counts once its commit record (or its
//! single autocommit record) is there with every operation, and relocated value copies are not
//! transactions. A checkpoint moves the first needed segment past the log it covers (and
//! compaction then removes those segments): what lies below is reported as trimmed, never
//! skipped silently. Each call holds the MANIFEST lock while it reads (checkpoints and the close
//! wait for it), and holds what it returns in memory: a run's changes, or both runs' last writes.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use ringlog_format::{
    decode_record_in, Layout, RecordKind, SegmentHeader, SegmentPos, SEGMENT_HEADER_LEN,
};

use crate::db::Db;
use crate::index::Lsn;
use crate::segment::{parse_segment_name, segment_file_name};
use crate::{Error, Result};

/// The system key of a run's label ([`Db::label_run`]).
pub(crate) const RUN_LABEL_KEY: &[u8] = b"run-label";

/// A key's write: `None` for a delete.
pub type Write = (Box<[u8]>, Option<Box<[u8]>>);

/// One run as the log shows it ([`Db::runs`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunInfo {
    /// The run's id (the same in every record it wrote).
    pub id: u64,
    /// The last label the run gave itself ([`Db::label_run`]), if any.
    pub label: Option<String>,
    /// LSN of its first transaction the log holds.
    pub first_lsn: Lsn,
    /// LSN of its last transaction.
    pub last_lsn: Lsn,
    /// Transactions with writes of user keys it committed that the log holds (its labels and
    /// the engine's own entries are not counted; their LSNs are in `first_lsn..=last_lsn`).
    pub commits: u64,
    /// Commit time of its first transaction the log holds, ns since the Unix epoch.
    pub first_commit_ns: u64,
    /// Commit time of its last transaction, ns since the Unix epoch.
    pub last_commit_ns: u64,
    /// Whether the log holds the run from its beginning: false when a checkpoint moved the log's
    /// start past earlier transactions (compaction then removes them) and the run may have
    /// written there.
    pub complete: bool,
}

/// One committed transaction of a run ([`Db::run_changes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Change {
    /// Its LSN.
    pub lsn: Lsn,
    /// Its commit time, ns since the Unix epoch.
    pub commit_ns: u64,
    /// Its writes, in the order written: `(key, Some(value))` for a put, `(key, None)` for a
    /// delete.
    pub writes: Vec<Write>,
}

/// What a run left a key as: its last write of the key ([`Db::diff_runs`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Written {
    /// The run did not write the key.
    Nothing,
    /// Its last write put this value.
    Put(Box<[u8]>),
    /// Its last write deleted the key.
    Deleted,
}

/// A key two runs left differently ([`Db::diff_runs`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyDiff {
    /// The key.
    pub key: Box<[u8]>,
    /// What the first run left it as.
    pub a: Written,
    /// What the second run left it as.
    pub b: Written,
}

/// A run's committed transactions, in commit order ([`Db::run_changes`]). When compaction
/// removed the beginning of the run, the first item is [`Error::HistoryTrimmed`] (its
/// `earliest_retained` is the oldest LSN the log holds) and the transactions the log still holds
/// follow.
#[derive(Debug)]
pub struct RunChanges {
    items: VecDeque<Result<Change>>,
}

impl Iterator for RunChanges {
    type Item = Result<Change>;

    fn next(&mut self) -> Option<Self::Item> {
        self.items.pop_front()
    }
}

/// A committed transaction as the log holds it.
struct LogTxn<'a> {
    run: u64,
    lsn: Lsn,
    commit_ns: u64,
    /// User writes (key, value or `None` for a delete).
    writes: Vec<(&'a [u8], Option<&'a [u8]>)>,
    /// The run's label, if the transaction set one.
    label: Option<&'a [u8]>,
}

/// What a scan of the log found besides its transactions.
struct Scanned {
    /// The LSN logged last before the oldest segment read (0: the log's beginning is there).
    base_lsn: Lsn,
    /// The run of the first transaction read.
    first_run: Option<u64>,
}

/// A transaction being assembled from its records.
struct Open<'a> {
    lsn: Lsn,
    txn_id: u64,
    /// Operations met (a commit record names how many there must be).
    ops: u64,
    writes: Vec<(&'a [u8], Option<&'a [u8]>)>,
    label: Option<&'a [u8]>,
}

impl Db {
    /// The id of this run (this open of the database): every record it writes carries it.
    pub fn run_id(&self) -> u64 {
        self.shared().run_id
    }

    /// Gives this run a label, stored in the log (a system entry, committed with the database's
    /// durability): [`Db::runs`] lists a run with the last label it gave itself. A label may
    /// take up to [`Db::max_value_len`]`(9)` bytes (its system key is 9 bytes long).
    ///
    /// # Errors
    ///
    /// As [`Db::put`] ([`Error::ValueTooLarge`] for a label above that limit);
    /// [`Error::DurabilityUnavailable`] for an in-memory database (no log).
    pub fn label_run(&self, label: &str) -> Result<Lsn> {
        self.check_writable()?;
        if !self.has_log() {
            return Err(Error::DurabilityUnavailable(
                "an in-memory database keeps no log of its runs",
            ));
        }
        self.commit_ops(
            &[crate::index::OpRef::Put(RUN_LABEL_KEY, label.as_bytes())],
            None,
            true,
        )
    }

    /// The runs the log holds transactions of, oldest first. Makes the log durable first (a
    /// sync) and reads every segment the log still holds: its cost is the log's size. A running
    /// checkpoint finishes first, and none starts meanwhile.
    ///
    /// ```
    /// # fn main() -> Result<(), ringlog_db::Error> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = ringlog_db::Db::open(dir.path(), ringlog_db::Options::default())?;
    /// db.label_run("import 2026-12-02")?;
    /// db.put(b"k", b"1")?;
    /// let first = db.run_id();
    /// db.close()?;
    /// let db = ringlog_db::Db::open(dir.path(), ringlog_db::Options::default())?;
    /// db.put(b"k", b"2")?;
    /// let runs = db.runs()?;
    /// assert_eq!(runs.len(), 2);
    /// assert_eq!(runs[0].id, first);
    /// assert_eq!(runs[0].label.as_deref(), Some("import 2026-12-02"));
    /// let diff = db.diff_runs(first, db.run_id())?;
    /// assert_eq!(diff.len(), 1); // "k": 1 in the first run, 2 in the second
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::DurabilityUnavailable`] for an in-memory database; I/O errors reading the log;
    /// [`Error::Corruption`] for a record that does not decode before a segment's end. On a
    /// handle of [`Db::open_read_only`] beside a writer, a segment the writer's compaction
    /// deleted since this handle's open is [`Error::Io`] of kind `NotFound`: open again to read
    /// the log as it is now (`ringlog runs` does).
    pub fn runs(&self) -> Result<Vec<RunInfo>> {
        let mut runs: Vec<RunInfo> = Vec::new();
        let scanned = self.scan_log(|t| {
            let info = match runs.last_mut() {
                Some(r) if r.id == t.run => r,
                _ => {
                    runs.push(RunInfo {
                        id: t.run,
                        label: None,
                        first_lsn: t.lsn,
                        last_lsn: t.lsn,
                        commits: 0,
                        first_commit_ns: t.commit_ns,
                        last_commit_ns: t.commit_ns,
                        complete: true,
                    });
                    runs.last_mut().expect("pushed")
                }
            };
            info.last_lsn = t.lsn;
            info.commits += u64::from(!t.writes.is_empty());
            info.last_commit_ns = t.commit_ns;
            if let Some(l) = t.label {
                info.label = Some(String::from_utf8_lossy(l).into_owned());
            }
        })?;
        if let (Some(first), true) = (runs.first_mut(), scanned.base_lsn > 0) {
            first.complete = false;
        }
        Ok(runs)
    }

    /// The transactions run `run` committed, in commit order, read from the log (after a sync,
    /// as [`Db::runs`]). Labels and the engine's own entries are not among them. A run the log
    /// holds nothing of (one that wrote nothing, or has not started) yields nothing — or, when
    /// it is older than the log's oldest segment, `HistoryTrimmed`.
    ///
    /// # Errors
    ///
    /// As [`Db::runs`]; [`Error::HistoryTrimmed`] when compaction removed all of the run (and,
    /// as the iterator's first item, when it removed its beginning).
    pub fn run_changes(&self, run: u64) -> Result<RunChanges> {
        let mut items = VecDeque::new();
        let scanned = self.scan_log(|t| {
            if t.run == run && !t.writes.is_empty() {
                items.push_back(Ok(Change {
                    lsn: t.lsn,
                    commit_ns: t.commit_ns,
                    writes: t
                        .writes
                        .iter()
                        .map(|&(k, v)| (Box::from(k), v.map(Box::from)))
                        .collect(),
                }));
            }
        })?;
        let trimmed = Error::HistoryTrimmed {
            requested: scanned.base_lsn,
            earliest_retained: scanned.base_lsn + 1,
        };
        if scanned.base_lsn > 0 {
            match scanned.first_run {
                // Wholly before the oldest segment left.
                Some(f) if run < f => return Err(trimmed),
                None if run < self.run_id() => return Err(trimmed),
                // This run, all of it below the oldest segment left (a checkpoint right after
                // its commits): compacted, not empty.
                None if run == self.run_id() && self.wrote_up_to(scanned.base_lsn) => {
                    return Err(trimmed)
                }
                // Its beginning may have been there.
                Some(f) if run == f => items.push_front(Err(trimmed)),
                _ => {}
            }
        }
        Ok(RunChanges { items })
    }

    /// Whether this run assigned an LSN at or below `lsn` (its LSNs start above the ones its
    /// open skipped).
    fn wrote_up_to(&self, lsn: Lsn) -> bool {
        let first = self.shared.visible.skipped() + 1;
        let last = self.shared.state.lock().next_lsn - 1;
        last >= first && first <= lsn
    }

    /// The keys runs `a` and `b` left differently: for every key either wrote, its last write
    /// in each (or none), where they differ; in key order. Both runs must be wholly in the log.
    ///
    /// # Errors
    ///
    /// As [`Db::runs`]; [`Error::HistoryTrimmed`] when compaction removed part of either run.
    pub fn diff_runs(&self, a: u64, b: u64) -> Result<Vec<KeyDiff>> {
        // One pass over the log: the last write of each key by each run.
        let mut last: [BTreeMap<Box<[u8]>, Written>; 2] = [BTreeMap::new(), BTreeMap::new()];
        let scanned = self.scan_log(|t| {
            for (side, run) in [a, b].into_iter().enumerate() {
                if t.run == run {
                    for &(k, v) in &t.writes {
                        let w = v.map_or(Written::Deleted, |v| Written::Put(v.into()));
                        match last[side].get_mut(k) {
                            Some(slot) => *slot = w,
                            None => {
                                last[side].insert(k.into(), w);
                            }
                        }
                    }
                }
            }
        })?;
        // Both runs wholly in the log: neither is the first one of a log whose beginning went,
        // nor older than it.
        if scanned.base_lsn > 0 {
            let first = scanned.first_run.unwrap_or_else(|| self.run_id());
            if a <= first || b <= first {
                return Err(Error::HistoryTrimmed {
                    requested: scanned.base_lsn,
                    earliest_retained: scanned.base_lsn + 1,
                });
            }
        }
        let [ma, mut mb] = last;
        let mut out = Vec::new();
        for (k, wa) in ma {
            let wb = mb.remove(&k).unwrap_or(Written::Nothing);
            if wa != wb {
                out.push(KeyDiff {
                    key: k,
                    a: wa,
                    b: wb,
                });
            }
        }
        for (k, wb) in mb {
            out.push(KeyDiff {
                key: k,
                a: Written::Nothing,
                b: wb,
            });
        }
        out.sort_unstable_by(|x, y| x.key.cmp(&y.key));
        Ok(out)
    }

    /// Reads the log's committed transactions in LSN order, handing each to `f`.
    fn scan_log(&self, mut f: impl FnMut(&LogTxn<'_>)) -> Result<Scanned> {
        let shared = self.shared();
        let Some(ckpt) = shared.ckpt.get() else {
            return Err(Error::DurabilityUnavailable(
                "an in-memory database keeps no log of its runs",
            ));
        };
        self.sync()?;
        // No checkpoint (and so no compaction) runs meanwhile; lock order: MANIFEST, then the
        // log mutex.
        let manifest = ckpt.manifest.lock();
        let (active, end) = shared.state.lock().synced;
        let vfs = &*ckpt.vfs;
        let dir = &ckpt.dir;
        let names = vfs
            .list_dir(dir)
            .map_err(|e| Error::io("list directory", dir.clone(), e))?;
        let mut ids: Vec<u64> = names
            .iter()
            .filter_map(|n| parse_segment_name(n))
            // Segments below the first one the MANIFEST needs are no part of the log (their
            // transactions are in the checkpoint; they stay only for values on disk, or until
            // compaction may delete them).
            .filter(|&id| id >= manifest.first_segment && id <= active)
            .collect();
        ids.sort_unstable();
        // The unbroken sequence ending at the active segment.
        let mut from = ids.len();
        while from > 0 && (from == ids.len() || ids[from - 1] + 1 == ids[from]) {
            from -= 1;
        }
        let ids = &ids[from..];
        let path = |id: u64| -> PathBuf { dir.join(segment_file_name(id)) };
        let mut headers = Vec::with_capacity(ids.len());
        for &id in ids {
            let h = header(vfs, &path(id))?;
            if h.segment_id != id || h.epoch != manifest.epoch {
                return Err(Error::Corruption {
                    file: path(id),
                    offset: 0,
                    reason: format!(
                        "the header names segment {} of epoch {}, not segment {id} of epoch {}",
                        h.segment_id, h.epoch, manifest.epoch
                    ),
                });
            }
            headers.push(h);
        }
        // The LSN logged last before the oldest segment read; with none (a checkpoint moved the
        // first needed segment to one the next commit creates), the checkpoint's: all of it is
        // in the checkpoint, none in the log.
        let base_lsn = match headers.first() {
            _ if crate::hooks::runs_forget_compaction() => 0,
            Some(h) => h.base_lsn,
            None => manifest.checkpoint_lsn,
        };
        let mut scanned = Scanned {
            base_lsn,
            first_run: None,
        };
        let mut last_lsn = 0;
        for (i, &id) in ids.iter().enumerate() {
            let stop = match headers.get(i + 1) {
                Some(next) => next.prev_end,
                None if id == active => end,
                None => 0,
            };
            let p = path(id);
            let buf = read_to(vfs, &p, stop)?;
            let layout =
                Layout::for_version(headers[i].version).ok_or_else(|| Error::Corruption {
                    file: p.clone(),
                    offset: 0,
                    reason: format!("unknown format version {}", headers[i].version),
                })?;
            scan_segment(&buf, &p, id, headers[i].epoch, layout, &mut |t| {
                if t.lsn <= last_lsn {
                    return Err(format!(
                        "transaction LSN {} does not follow LSN {last_lsn}",
                        t.lsn
                    ));
                }
                last_lsn = t.lsn;
                scanned.first_run.get_or_insert(t.run);
                f(t);
                Ok(())
            })?;
        }
        Ok(scanned)
    }
}

fn header(vfs: &dyn crate::Vfs, path: &std::path::Path) -> Result<SegmentHeader> {
    crate::recovery::read_header(vfs, path)?.map_err(|e| Error::Corruption {
        file: path.to_path_buf(),
        offset: 0,
        reason: format!("segment header: {e}"),
    })
}

/// The first `len` bytes of the file at `path` (fewer if it is shorter).
fn read_to(vfs: &dyn crate::Vfs, path: &std::path::Path, len: u64) -> Result<Vec<u8>> {
    let file = crate::values::open_to_read(vfs, path)
        .map_err(|e| Error::io("open segment to read its history", path.to_path_buf(), e))?;
    let size = file
        .size()
        .map_err(|e| Error::io("size of segment", path.to_path_buf(), e))?;
    let mut buf = vec![0u8; len.min(size) as usize];
    file.read_exact_at(&mut buf, 0)
        .map_err(|e| Error::io("read segment's history", path.to_path_buf(), e))?;
    Ok(buf)
}

/// Assembles the committed transactions of one segment's records (`buf` ends where the
/// segment's records end).
fn scan_segment<'a>(
    buf: &'a [u8],
    path: &std::path::Path,
    id: u64,
    epoch: u64,
    layout: Layout,
    emit: &mut dyn FnMut(&LogTxn<'a>) -> std::result::Result<(), String>,
) -> Result<()> {
    let damage = |offset: usize, reason: String| Error::Corruption {
        file: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let mut pos = SEGMENT_HEADER_LEN;
    let mut batch: Option<(u32, u64, u64)> = None;
    let mut open: Option<Open<'a>> = None;
    while pos < buf.len() {
        let at = SegmentPos {
            segment_id: id,
            epoch,
            offset: pos as u64,
        };
        let rec = decode_record_in(layout, buf, pos, at).map_err(|e| damage(pos, e.to_string()))?;
        pos += rec.encoded_len();
        let (run, commit_ns) = match rec.layout {
            Layout::Wide => (rec.run_id, rec.timestamp),
            Layout::Lean if rec.kind == RecordKind::BatchHead => {
                batch = Some((rec.batch_start, rec.run_id, rec.timestamp));
                continue;
            }
            Layout::Lean => match batch {
                Some((start, run, ts)) if start == rec.batch_start => (run, ts),
                _ => {
                    return Err(damage(
                        rec.offset as usize,
                        "a record of a write batch without its head".into(),
                    ))
                }
            },
        };
        if rec.is_relocated() {
            continue;
        }
        let op = |rec: &ringlog_format::Record<'a>| {
            (
                rec.key,
                (rec.kind == RecordKind::Write).then_some(rec.value),
            )
        };
        let mut done = None;
        match rec.kind {
            RecordKind::BeginTxn => {
                open = Some(Open {
                    lsn: rec.lsn,
                    txn_id: rec.txn_id,
                    ops: 0,
                    writes: Vec::new(),
                    label: None,
                });
            }
            RecordKind::Write | RecordKind::Delete if rec.is_autocommit() => {
                open = None;
                let (writes, label) = if rec.is_system() {
                    (Vec::new(), label_of(&rec))
                } else {
                    (vec![op(&rec)], None)
                };
                done = Some(LogTxn {
                    run,
                    lsn: rec.lsn,
                    commit_ns,
                    writes,
                    label,
                });
            }
            RecordKind::Write | RecordKind::Delete => {
                if let Some(t) = open
                    .as_mut()
                    .filter(|t| t.txn_id == rec.txn_id && t.lsn == rec.lsn)
                {
                    t.ops += 1;
                    if rec.is_system() {
                        t.label = label_of(&rec).or(t.label);
                    } else {
                        t.writes.push(op(&rec));
                    }
                }
            }
            // A commit or abort of another transaction than the open one is an orphan (as
            // recovery counts it): the open one stays open.
            RecordKind::CommitTxn | RecordKind::AbortTxn
                if open
                    .as_ref()
                    .is_some_and(|t| t.txn_id == rec.txn_id && t.lsn == rec.lsn) =>
            {
                let t = open.take().expect("matched");
                // Every operation there: never a partial transaction.
                if rec.kind == RecordKind::CommitTxn && t.ops == rec.marker {
                    done = Some(LogTxn {
                        run,
                        lsn: t.lsn,
                        commit_ns,
                        writes: t.writes,
                        label: t.label,
                    });
                }
            }
            _ => {}
        }
        if let Some(t) = done {
            emit(&t).map_err(|why| damage(rec.offset as usize, why))?;
        }
    }
    Ok(())
}

fn label_of<'a>(rec: &ringlog_format::Record<'a>) -> Option<&'a [u8]> {
    (rec.kind == RecordKind::Write && rec.key == RUN_LABEL_KEY).then_some(rec.value)
}
