//! The database directory at the format level: its MANIFEST, its segment files, and a walk over
//! every record of the log that tells where each segment's valid records end and why — a clean
//! end, a torn tail, or corruption — by the rules recovery applies (FORMAT.md §5, §10.5).

use std::path::{Path, PathBuf};

use ringlog_format::{
    damage_proof, decode_record_in, DecodeError, LaterBatch, Layout, Manifest, Record, RecordKind,
    SearchIn, SegmentHeader, SegmentPos, SEGMENT_HEADER_LEN,
};
use ringlog_uring::{EntryKind, OpenOptions, Vfs};
use serde::Serialize;

use crate::Failure;

/// The MANIFEST's name in a database directory.
pub const MANIFEST: &str = "MANIFEST";
/// The writer's lock file.
pub const LOCK: &str = "LOCK";

/// A segment file: `<id>.log`.
#[derive(Debug)]
pub struct SegFile {
    /// The segment id (from the file name).
    pub id: u64,
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The decoded header, or why it does not decode.
    pub header: Result<SegmentHeader, String>,
}

/// What the directory holds.
#[derive(Debug)]
pub struct Listing {
    /// The database directory.
    pub dir: PathBuf,
    /// The decoded MANIFEST, or why it does not decode.
    pub manifest: Result<Manifest, DecodeError>,
    /// The log: segments from the MANIFEST's first needed one on, by id.
    pub segments: Vec<SegFile>,
    /// Segments below the first needed one (values a checkpoint refers to, or leftovers).
    pub below: Vec<SegFile>,
    /// Every other file, by name.
    pub others: Vec<String>,
    /// Whether another process (or handle) holds the writer's lock now.
    pub writer_active: bool,
}

impl Listing {
    /// The MANIFEST, or the failure to report when it does not decode.
    pub fn manifest(&self) -> Result<&Manifest, Failure> {
        self.manifest.as_ref().map_err(|e| {
            let path = self.dir.join(MANIFEST);
            Failure::Found(match e {
                DecodeError::UnsupportedVersion { version, .. } => format!(
                    "{}: written by format version {version}; this tool reads versions {} to {}",
                    path.display(),
                    ringlog_format::MIN_FORMAT_VERSION,
                    ringlog_format::FORMAT_VERSION
                ),
                e => format!("{}: the MANIFEST is damaged: {e}", path.display()),
            })
        })
    }
}

/// `<id>.log` → id, by the engine's rule: exactly 20 decimal digits, at most the format's
/// maximum id. Any other name is not a segment (recovery ignores it; so does the tool).
pub fn segment_id(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse()
        .ok()
        .filter(|&id| id <= ringlog_format::MAX_ID)
}

/// The file name of segment `id`.
pub fn segment_name(id: u64) -> String {
    format!("{id:020}.log")
}

/// Lists `dir`: a usage failure when it is no ringlog database.
pub fn list(dir: &Path) -> Result<Listing, Failure> {
    list_in(&ringlog_uring::PosixVfs::default(), dir)
}

/// [`list`] through `vfs` (the crash runner passes its simulated disk).
pub fn list_in(vfs: &dyn Vfs, dir: &Path) -> Result<Listing, Failure> {
    match vfs.kind_of(dir) {
        Ok(Some(EntryKind::Dir)) => {}
        Ok(Some(_)) => {
            return Err(Failure::Usage(format!(
                "{} is not a directory",
                dir.display()
            )))
        }
        Ok(None) => {
            return Err(Failure::Usage(format!(
                "{}: no such directory",
                dir.display()
            )))
        }
        Err(e) => return Err(Failure::Usage(format!("{}: {e}", dir.display()))),
    }
    let mpath = dir.join(MANIFEST);
    let read_manifest = || match read_all(vfs, &mpath) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::Usage(format!(
            "{} is not a ringlog database (it has no MANIFEST)",
            dir.display()
        ))),
        Err(e) => Err(Failure::Found(format!("{}: {e}", mpath.display()))),
    };
    // The listing must agree with the MANIFEST in force while it was taken: a running writer's
    // checkpoint replaces the MANIFEST, then deletes the segments it no longer needs, so a
    // MANIFEST read before the listing may need segments already gone. Read it again after the
    // listing, and list again while it changed (a few times at most: checkpoints are rare).
    let mut bytes = read_manifest()?;
    let mut attempts = 0;
    loop {
        let listing = list_with(vfs, dir, Manifest::decode(&bytes))?;
        let again = read_manifest()?;
        attempts += 1;
        if again == bytes || attempts == 5 {
            return Ok(listing);
        }
        bytes = again;
    }
}

/// The segments and other files of `dir`, as `manifest` sees them.
fn list_with(
    vfs: &dyn Vfs,
    dir: &Path,
    manifest: Result<Manifest, DecodeError>,
) -> Result<Listing, Failure> {
    let first = manifest.as_ref().map_or(0, |m| m.first_segment);
    let mut segments = Vec::new();
    let mut below = Vec::new();
    let mut others = Vec::new();
    let names = vfs
        .list_dir(dir)
        .map_err(|e| Failure::Found(format!("{}: {e}", dir.display())))?;
    for name in names {
        let Some(id) = segment_id(&name) else {
            if name != MANIFEST {
                others.push(name);
            }
            continue;
        };
        let path = dir.join(&name);
        let Ok(file) = vfs.open(&path, OpenOptions::default()) else {
            // Removed by a writer's compaction since the listing.
            continue;
        };
        let size = file.size().unwrap_or(0);
        let header = read_header(&*file, size);
        let f = SegFile {
            id,
            path,
            size,
            header,
        };
        if id < first {
            below.push(f);
        } else {
            segments.push(f);
        }
    }
    segments.sort_by_key(|s| s.id);
    below.sort_by_key(|s| s.id);
    others.sort();
    let writer_active = vfs.lock_held(&dir.join(LOCK)).unwrap_or(false);
    Ok(Listing {
        dir: dir.to_path_buf(),
        manifest,
        segments,
        below,
        others,
        writer_active,
    })
}

/// Every byte of the file at `path`, read through `vfs`.
pub fn read_all(vfs: &dyn Vfs, path: &Path) -> std::io::Result<Vec<u8>> {
    let f = vfs.open(path, OpenOptions::default())?;
    let size = f.size()?;
    let mut b = vec![0u8; size as usize];
    f.read_exact_at(&mut b, 0)?;
    Ok(b)
}

fn read_header(file: &dyn ringlog_uring::VFile, size: u64) -> Result<SegmentHeader, String> {
    let n = (SEGMENT_HEADER_LEN as u64).min(size) as usize;
    let mut b = vec![0u8; n];
    file.read_exact_at(&mut b, 0).map_err(|e| e.to_string())?;
    SegmentHeader::decode(&b).map_err(|e| e.to_string())
}

/// What kind of damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DamageKind {
    /// Bytes after the last valid record of the last segment that no durable write left: a
    /// write a crash cut short. Recovery cuts them; nothing acknowledged as durable is lost.
    TornTail,
    /// Damage where a crash cannot have left it: synced bytes changed, a segment missing or cut
    /// short. Recovery refuses to open until it is repaired.
    Corruption,
    /// The last segment's tail while a writer has the database open: bytes in flight.
    InFlight,
}

/// A damaged place in the log.
#[derive(Clone, Debug, Serialize)]
pub struct Damage {
    /// Torn tail, corruption, or bytes in flight.
    pub kind: DamageKind,
    /// The segment id.
    pub segment: u64,
    /// The segment's file.
    pub file: PathBuf,
    /// Where the first bad byte is, in the file.
    pub offset: u64,
    /// Non-zero bytes from `offset` to the end of the damage (a torn tail's size).
    pub bytes: u64,
    /// The last LSN of a valid record before the damage (0: none).
    pub last_good_lsn: u64,
    /// What was found.
    pub reason: String,
}

/// A record met by [`walk`], with the run and commit time of its write batch.
pub struct Rec<'a> {
    /// The segment id.
    pub segment: u64,
    /// The decoded record.
    pub rec: Record<'a>,
    /// The run that wrote its batch.
    pub run: u64,
    /// Its batch's commit time, ns since the Unix epoch.
    pub timestamp: u64,
}

/// How one segment's walk ended.
#[derive(Clone, Debug, Serialize)]
pub struct SegSummary {
    /// The segment id.
    pub id: u64,
    /// Its file.
    pub file: PathBuf,
    /// Its format version (header).
    pub version: Option<u32>,
    /// The run that created it (header).
    pub run: Option<u64>,
    /// The last LSN logged before it (header).
    pub base_lsn: Option<u64>,
    /// The end the next segment recorded for this one (none for the last).
    pub recorded_end: Option<u64>,
    /// The file's size.
    pub size: u64,
    /// Offset just past the last valid record.
    pub valid_end: u64,
    /// Valid records.
    pub records: u64,
    /// The lowest and highest LSN of its transactions' records (relocated records keep their old
    /// LSNs: not necessarily the first and last).
    pub first_lsn: Option<u64>,
    /// See `first_lsn`.
    pub last_lsn: Option<u64>,
    /// Sealed (a later segment exists) or active (the log's last).
    pub sealed: bool,
}

/// The whole walk.
#[derive(Debug, Default)]
pub struct Walk {
    /// Each segment of the log, in order.
    pub segments: Vec<SegSummary>,
    /// Every damage found, in log order.
    pub damage: Vec<Damage>,
    /// Each segment below the first needed one, by id: kept for values a checkpoint refers to
    /// (or a leftover the next open removes). Not part of the log recovery replays.
    pub kept: Vec<SegSummary>,
    /// The damage found in them (a record that fails its checksum, a bad header).
    pub kept_damage: Vec<Damage>,
}

impl Walk {
    /// The first damage that is not a writer's bytes in flight.
    pub fn first_problem(&self) -> Option<&Damage> {
        self.damage.iter().find(|d| d.kind != DamageKind::InFlight)
    }
}

/// Walks every record of the log of `l` in order, calling `f` for each valid one; records where
/// each segment's valid records end, and every damage found (it goes on after damage with the
/// next segment, so one walk reports all of it). Then it walks the segments below the first
/// needed one ([`Listing::below`]) for their records' checksums, apart from the log: their
/// damage is in [`Walk::kept_damage`], not [`Walk::damage`], and `f` does not see their records.
pub fn walk(l: &Listing, f: impl FnMut(&Rec<'_>) -> Result<(), Failure>) -> Result<Walk, Failure> {
    walk_in(&ringlog_uring::PosixVfs::default(), l, f)
}

/// [`walk`] through `vfs`.
pub fn walk_in(
    vfs: &dyn Vfs,
    l: &Listing,
    mut f: impl FnMut(&Rec<'_>) -> Result<(), Failure>,
) -> Result<Walk, Failure> {
    walk_log(vfs, l, false, &mut f)
}

/// Walks the log of `l` as [`walk`] does, but only up to its first damage that is not a
/// writer's bytes in flight: `f` sees no record after it (`dump-log`). The segments below the
/// first needed one are not walked.
pub fn walk_to_damage(
    l: &Listing,
    mut f: impl FnMut(&Rec<'_>) -> Result<(), Failure>,
) -> Result<Walk, Failure> {
    walk_log(&ringlog_uring::PosixVfs::default(), l, true, &mut f)
}

/// Where a walked segment is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// In the log recovery replays; `last`: its last segment.
    Log { last: bool },
    /// Below the MANIFEST's first needed segment: kept for values a checkpoint refers to (or a
    /// leftover the next open removes). Sealed; recovery does not replay it.
    Kept,
}

/// Where segment `s` ends, as its successor `next` recorded it (only the immediate successor
/// records it). A `prev_end` of 0 records none (FORMAT.md §4.3: no previous segment — the first
/// segment after a close that retired the log, whose predecessor is kept only for values).
fn recorded_end(s: &SegFile, next: Option<&SegFile>, epoch: u64) -> Option<u64> {
    next.filter(|n| n.id == s.id + 1)
        .and_then(|n| {
            n.header
                .as_ref()
                .ok()
                .filter(|h| h.segment_id == n.id && h.epoch == epoch)
        })
        .map(|h| h.prev_end)
        .filter(|&end| end != 0)
}

fn walk_log(
    vfs: &dyn Vfs,
    l: &Listing,
    stop_at_damage: bool,
    f: &mut dyn FnMut(&Rec<'_>) -> Result<(), Failure>,
) -> Result<Walk, Failure> {
    let m = l.manifest()?;
    let mut out = Walk::default();
    let mut last_good = m.checkpoint_lsn;
    if let Some(first) = l.segments.first() {
        let first_needed = m.first_needed_segment();
        if first.id > first_needed {
            out.damage.push(Damage {
                kind: DamageKind::Corruption,
                segment: first_needed,
                file: l.dir.join(segment_name(first_needed)),
                offset: 0,
                bytes: 0,
                last_good_lsn: last_good,
                reason: format!(
                    "segment {first_needed} is missing: the MANIFEST needs every segment from it on"
                ),
            });
        }
    }
    for (i, s) in l.segments.iter().enumerate() {
        let next = l.segments.get(i + 1);
        // Reported after this segment's own damage (log order).
        let mut gap = None;
        if let Some(n) = next.filter(|n| n.id != s.id + 1) {
            gap = Some(Damage {
                kind: DamageKind::Corruption,
                segment: s.id + 1,
                file: l.dir.join(segment_name(s.id + 1)),
                offset: 0,
                bytes: 0,
                last_good_lsn: last_good,
                reason: format!(
                    "segments {}..{} are missing while later segments exist",
                    s.id + 1,
                    n.id - 1
                ),
            });
        }
        let place = Place::Log {
            last: next.is_none(),
        };
        let stopped = |w: &Walk| stop_at_damage && w.first_problem().is_some();
        if stopped(&out) {
            break;
        }
        if let Some(summary) = walk_segment(
            vfs,
            l,
            m,
            s,
            recorded_end(s, next, m.epoch),
            place,
            &mut last_good,
            &mut out.damage,
            f,
        )? {
            out.segments.push(summary);
        }
        out.damage.extend(gap);
        if stopped(&out) {
            break;
        }
    }
    if stop_at_damage {
        return Ok(out);
    }
    for (i, s) in l.below.iter().enumerate() {
        let next = l.below.get(i + 1).or(l.segments.first());
        let (mut good, mut found) = (0, Vec::new());
        if let Some(summary) = walk_segment(
            vfs,
            l,
            m,
            s,
            recorded_end(s, next, m.epoch),
            Place::Kept,
            &mut good,
            &mut found,
            &mut |_| Ok(()),
        )? {
            out.kept.push(summary);
        }
        out.kept_damage.extend(found.into_iter().map(|mut d| {
            d.reason = format!(
                "{} (a segment kept below the MANIFEST's first needed segment {}, for the values a checkpoint refers to)",
                d.reason, m.first_segment
            );
            d
        }));
    }
    Ok(out)
}

/// Walks the records of segment `s` (which ends at `recorded_end` when its successor recorded
/// it), calling `f` for each valid one; pushes its damage onto `damage`. `None`: a segment kept
/// below the log that vanished since the listing (a writer's compaction removed it).
#[allow(clippy::too_many_arguments)]
fn walk_segment(
    vfs: &dyn Vfs,
    l: &Listing,
    m: &Manifest,
    s: &SegFile,
    recorded_end: Option<u64>,
    place: Place,
    last_good: &mut u64,
    damage: &mut Vec<Damage>,
    f: &mut dyn FnMut(&Rec<'_>) -> Result<(), Failure>,
) -> Result<Option<SegSummary>, Failure> {
    let last = place == Place::Log { last: true };
    let kept = place == Place::Kept;
    let mut summary = SegSummary {
        id: s.id,
        file: s.path.clone(),
        version: None,
        run: None,
        base_lsn: None,
        recorded_end,
        size: s.size,
        valid_end: 0,
        records: 0,
        first_lsn: None,
        last_lsn: None,
        sealed: !last,
    };
    let header = match &s.header {
        Ok(h) if h.segment_id == s.id && h.epoch == m.epoch => *h,
        bad => {
            let reason = match bad {
                Err(e) => format!("bad segment header: {e}"),
                Ok(h) => format!(
                    "the header names segment {} of epoch {:#x}, not segment {} of epoch {:#x}",
                    h.segment_id, h.epoch, s.id, m.epoch
                ),
            };
            damage.push(Damage {
                kind: DamageKind::Corruption,
                segment: s.id,
                file: s.path.clone(),
                offset: 0,
                bytes: s.size,
                last_good_lsn: *last_good,
                reason,
            });
            return Ok(Some(summary));
        }
    };
    summary.version = Some(header.version);
    summary.run = Some(header.run_id);
    summary.base_lsn = Some(header.base_lsn);
    let Some(layout) = Layout::for_version(header.version) else {
        return Err(Failure::Found(format!(
            "{}: format version {} has no record layout this tool reads",
            s.path.display(),
            header.version
        )));
    };
    let buf = match read_all(vfs, &s.path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && kept => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::Found(format!(
                "{} vanished while it was read (a writer's compaction?): run the command again",
                s.path.display()
            )))
        }
        Err(e) => return Err(Failure::Found(format!("{}: {e}", s.path.display()))),
    };
    let mut pos = SEGMENT_HEADER_LEN;
    let (mut run, mut ts) = (header.run_id, 0u64);
    let failure: Option<(String, bool)> = loop {
        if recorded_end == Some(pos as u64) {
            break None;
        }
        let at = SegmentPos {
            segment_id: s.id,
            epoch: m.epoch,
            offset: pos as u64,
        };
        match decode_record_in(layout, &buf, pos, at) {
            Ok(rec) => {
                let end = pos + rec.encoded_len();
                if recorded_end.is_some_and(|e| end as u64 > e) {
                    break Some((
                        "the record crosses the end recorded by the next segment".into(),
                        true,
                    ));
                }
                match (layout, rec.kind) {
                    (Layout::Lean, RecordKind::BatchHead) => {
                        run = rec.run_id;
                        ts = rec.timestamp;
                    }
                    (Layout::Wide, _) if rec.run_id != 0 => {
                        run = rec.run_id;
                        ts = rec.timestamp;
                    }
                    _ => {}
                }
                if rec.lsn != 0 && rec.kind.in_transaction() {
                    // Lowest and highest, not first and last: records a garbage collection
                    // relocated keep their old LSNs (found in review: `inspect` showed a range
                    // ending at a relocated record's).
                    summary.first_lsn = Some(summary.first_lsn.map_or(rec.lsn, |l| l.min(rec.lsn)));
                    summary.last_lsn = Some(summary.last_lsn.map_or(rec.lsn, |l| l.max(rec.lsn)));
                    *last_good = (*last_good).max(rec.lsn);
                }
                summary.records += 1;
                f(&Rec {
                    segment: s.id,
                    rec,
                    run,
                    timestamp: ts,
                })?;
                pos = end;
            }
            Err(e) => {
                let certain = matches!(e, DecodeError::OutOfRange { .. });
                break Some((e.to_string(), certain));
            }
        }
    };
    summary.valid_end = pos as u64;
    if let Some((reason, certain)) = failure {
        let span = nonzero_end(&buf, pos);
        let damage_at = |kind, reason: String| Damage {
            kind,
            segment: s.id,
            file: s.path.clone(),
            offset: pos as u64,
            bytes: span.map_or(0, |e| (e - pos) as u64),
            last_good_lsn: *last_good,
            reason,
        };
        if !last && recorded_end.is_none() && span.is_none() {
            // Only zeros (or nothing) after the last record, and no successor says where
            // this segment ends (its header is damaged, or it is missing): the damage is
            // there, reported with it, not here.
        } else if kept && recorded_end.is_none() {
            // A kept segment whose successor is gone: nothing records where it ends. Bytes past
            // its last valid record are damage when a valid record of a later write batch
            // follows them (or record-like headers no crash writes); else they can be a write a
            // crash cut short that the log moved past (the next segment began before them), not
            // told apart here from a damaged last record: `verify --deep` reads the values.
            if certain {
                damage.push(damage_at(DamageKind::Corruption, reason));
            } else if let Some(why) = later_batch(&buf, pos, layout, s.id, m.epoch, header.version)
            {
                damage.push(damage_at(
                    DamageKind::Corruption,
                    format!("{reason}; {why}"),
                ));
            }
        } else if !last {
            let end = recorded_end.unwrap_or(s.size);
            damage.push(damage_at(
                DamageKind::Corruption,
                format!("{reason}; the next segment recorded this one's end at offset {end}"),
            ));
        } else if span.is_none() {
            // Only zeros after the last record: the clean end of the log.
        } else if l.writer_active && !certain {
            damage.push(damage_at(
                DamageKind::InFlight,
                format!("{reason}; a writer has the database open: a write in flight"),
            ));
        } else if certain {
            damage.push(damage_at(DamageKind::Corruption, reason));
        } else if planted::tail_is_always_torn() {
            damage.push(damage_at(DamageKind::TornTail, reason));
        } else {
            match later_batch(&buf, pos, layout, s.id, m.epoch, header.version) {
                Some(why) => damage.push(damage_at(
                    DamageKind::Corruption,
                    format!("{reason}; {why}"),
                )),
                None => damage.push(damage_at(
                    DamageKind::TornTail,
                    format!("{reason}; no durable write follows: a write a crash cut short"),
                )),
            }
        }
    }
    Ok(Some(summary))
}

/// Why the bytes of `buf` from `pos` on (where a record failed to decode) are damage of durable
/// bytes rather than a write a crash cut short: a valid record of a later write batch follows,
/// or record-like headers no crash writes (`None`: neither).
fn later_batch(
    buf: &[u8],
    pos: usize,
    layout: Layout,
    segment_id: u64,
    epoch: u64,
    version: u32,
) -> Option<String> {
    let search = SearchIn {
        layout,
        segment_id,
        epoch,
        base: 0,
    };
    match damage_proof(buf, pos, search, version >= 5).0 {
        LaterBatch::Found(r) => Some(format!(
            "a valid record of a later write batch follows at offset {}",
            r.offset
        )),
        LaterBatch::Undecided => {
            Some("the bytes after it are full of record-like headers that no crash writes".into())
        }
        LaterBatch::None => None,
    }
}

/// Deliberate bugs that prove the crash runner checks the walk and the repair: armed only in
/// its test builds (cargo feature `__planted-bugs`), inert otherwise.
pub mod planted {
    #[cfg(feature = "__planted-bugs")]
    static TAIL_IS_ALWAYS_TORN: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);

    /// Arms (or disarms) `TailIsAlwaysTorn`: the walk calls any damage in the last segment a
    /// torn tail, without looking for a later durable write that proves it corruption.
    #[cfg(feature = "__planted-bugs")]
    pub fn arm_tail_is_always_torn(on: bool) {
        TAIL_IS_ALWAYS_TORN.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    #[cfg(feature = "__planted-bugs")]
    static REPAIR_SYNCS_COPIES_LATE: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);

    /// Arms (or disarms) `RepairSyncsCopiesLate`: `repair` writes its copies of the bytes it
    /// removes but syncs them (and the side directory) only after the cut.
    #[cfg(feature = "__planted-bugs")]
    pub fn arm_repair_syncs_copies_late(on: bool) {
        REPAIR_SYNCS_COPIES_LATE.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether `RepairSyncsCopiesLate` is armed (always false without the feature).
    #[inline(always)]
    pub(crate) fn repair_syncs_copies_late() -> bool {
        #[cfg(feature = "__planted-bugs")]
        return REPAIR_SYNCS_COPIES_LATE.load(std::sync::atomic::Ordering::SeqCst);
        #[cfg(not(feature = "__planted-bugs"))]
        false
    }

    /// Whether `TailIsAlwaysTorn` is armed (always false without the feature).
    #[inline(always)]
    pub(crate) fn tail_is_always_torn() -> bool {
        #[cfg(feature = "__planted-bugs")]
        return TAIL_IS_ALWAYS_TORN.load(std::sync::atomic::Ordering::SeqCst);
        #[cfg(not(feature = "__planted-bugs"))]
        false
    }
}

/// The end of the non-zero bytes of `buf` from `from` on (`None`: all zero).
fn nonzero_end(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    rest.iter().rposition(|&b| b != 0).map(|i| from + i + 1)
}

/// A record kind's name in the output and in `--kind`.
pub fn kind_name(k: RecordKind) -> &'static str {
    match k {
        RecordKind::BeginTxn => "begin",
        RecordKind::Write => "write",
        RecordKind::Delete => "delete",
        RecordKind::CommitTxn => "commit",
        RecordKind::AbortTxn => "abort",
        RecordKind::Checkpoint => "checkpoint",
        RecordKind::Padding => "padding",
        RecordKind::Lease => "lease",
        RecordKind::BatchHead => "batch-head",
    }
}

/// Every kind name, for `--kind`'s check.
pub const KIND_NAMES: &[&str] = &[
    "begin",
    "write",
    "delete",
    "commit",
    "abort",
    "checkpoint",
    "padding",
    "lease",
    "batch-head",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_id(&segment_name(42)), Some(42));
        assert_eq!(segment_id("00000000000000000042.log.tmp"), None);
        assert_eq!(segment_id("x.log"), None);
        assert_eq!(segment_id(".log"), None);
        // The engine's rule: 20 digits, nothing else is a segment.
        assert_eq!(segment_id("0.log"), None);
        assert_eq!(segment_id("000000000000000000042.log"), None);
        assert_eq!(segment_id("99999999999999999999.log"), None);
    }

    #[test]
    fn nonzero_end_finds_the_last_byte() {
        assert_eq!(nonzero_end(&[0, 1, 0, 2, 0, 0], 0), Some(4));
        assert_eq!(nonzero_end(&[0, 1, 0, 0], 2), None);
        assert_eq!(nonzero_end(&[1], 5), None);
    }
}
