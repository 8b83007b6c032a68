//! `corrupt` mode: damage to a durable image.
//!
//! The workload runs to a clean close on the simulated disk, so every acknowledged step is
//! durable. Then, one case at a time:
//!
//! * **tail** damage, after the last batch of the log (garbage, bit flips, truncation, a valid
//!   record copied past the end): recovery must open and keep every step (only that suffix cut);
//! * **mid-log** damage, inside a batch followed by a later batch (a flipped bit, a zeroed sector,
//!   a valid record copied over another, a flipped bit in a segment header): opening must fail
//!   with `Error::Corruption` naming the damaged file and an offset inside the damaged batch, or
//!   succeed with every step intact (damage to bytes no checksum covers); never open with
//!   acknowledged data missing. Opening with `RecoveryMode::TruncateAtCorruption` must then
//!   succeed, report where it cut, leave a prefix of the commit order, and hand out no LSN
//!   acknowledged before the cut. Damage to a *value
//!   segment* (below the log recovery replays, kept for the values a checkpoint refers to) is
//!   not recovery's to see: the open succeeds, and every key must read as in the undamaged
//!   image or fail with `Error::Corruption` naming the file and an offset in the damaged batch
//!   (at least one read meets it);
//! * **last-batch** damage: the last batch of a cleanly closed log is the seal `close()` writes
//!   after the last round of data (FORMAT.md §6), so damage there may be cut as a torn tail but
//!   must never cost an acknowledged step; losing one is a violation.
//! * **checkpoint** damage, to the checkpoint the MANIFEST names (the workload checkpoints, so
//!   the log below it is gone) or to the MANIFEST itself: a flipped bit, a zeroed sector, the file
//!   cut short or missing, a block copied over another. Opening must fail with
//!   `Error::Corruption` naming the damaged file (and an offset no later than the damage), in
//!   `RecoveryMode::Strict` and in `TruncateAtCorruption` alike — there is no older state to fall
//!   back to (docs/DURABILITY.md §7) — or, for bytes no checksum covers, open with every step.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringlog_db::{Db, Error, IoChoice, RecoveryMode};
use ringlog_format::{
    codec_by_id, decode_record, BlockHeader, BlockPos, Entries, EntryValue, Manifest, RecordKind,
    SegmentPos, BLOCK_HEADER_LEN, CHECKPOINT_FOOTER_LEN, CHECKPOINT_HEADER_LEN, FLAG_SYSTEM,
    SEGMENT_HEADER_LEN,
};

use crate::oracle::{
    ack_kind, check, Ack, AckKind, Bounds, History, Prefixes, Recovered, Violation,
};
use crate::power::{PowerOptions, Target};
use crate::report::{Failure, Summary};
use crate::rng::Rng;
use crate::setup::Setup;
use crate::sim::{Image, SimVfs};
use crate::workload::{observe, Mode, Session, State};

/// A record's place in the image.
#[derive(Clone, Copy, Debug)]
struct Rec {
    seg: usize,
    off: u64,
    len: u64,
    /// Length covered by the checksum (header `len`), without alignment bytes.
    covered: u64,
    batch_start: u64,
    /// The record's LSN (0 for a padding record).
    lsn: u64,
}

struct Layout {
    /// The image's MANIFEST.
    manifest: Manifest,
    /// The checkpoint the MANIFEST names, if any: its path and its blocks' (start, end).
    ckpt: Option<(PathBuf, Vec<(u64, u64)>)>,
    /// Segment paths in id order, and their ids.
    segs: Vec<PathBuf>,
    ids: Vec<u64>,
    recs: Vec<Rec>,
    /// Batches as (segment index, start, end), in log order.
    batches: Vec<(usize, u64, u64)>,
    /// Records in value segments (below the log recovery replays) holding a version's value the
    /// checkpoint refers to: filled by [`live_values`].
    values: Vec<ValueRec>,
}

fn layout(img: &Image) -> Option<Layout> {
    let dir = Setup::sim_dir();
    let manifest = img.files.get(&dir.join("MANIFEST"))?;
    let manifest = Manifest::decode(manifest).ok()?;
    let epoch = manifest.epoch;
    let ckpt = (manifest.checkpoint_id != 0)
        .then(|| dir.join(format!("{:020}.ckpt", manifest.checkpoint_id)))
        .and_then(|p| {
            let data = img.files.get(&p)?;
            // Its blocks: each header gives the block's length (header included).
            let end = data.len().checked_sub(CHECKPOINT_FOOTER_LEN)? as u64;
            let mut blocks = Vec::new();
            let mut at = CHECKPOINT_HEADER_LEN as u64;
            while at + BLOCK_HEADER_LEN as u64 <= end {
                let pos = BlockPos {
                    epoch,
                    id: manifest.checkpoint_id,
                    offset: at,
                };
                let h = BlockHeader::decode(
                    &data[at as usize..at as usize + BLOCK_HEADER_LEN],
                    pos,
                    end - at - BLOCK_HEADER_LEN as u64,
                )
                .ok()?;
                blocks.push((at, at + h.total_len()));
                at += h.total_len();
            }
            Some((p, blocks))
        });
    let mut segs: Vec<(u64, PathBuf)> = img
        .files
        .keys()
        .filter_map(|p| Some((segment_id(p)?, p.clone())))
        .collect();
    segs.sort();
    let mut recs = Vec::new();
    for (i, (id, p)) in segs.iter().enumerate() {
        let buf = &img.files[p];
        let mut pos = SEGMENT_HEADER_LEN;
        while pos < buf.len() {
            let Ok(r) = decode_record(
                buf,
                pos,
                SegmentPos {
                    segment_id: *id,
                    epoch,
                    offset: pos as u64,
                },
            ) else {
                break;
            };
            recs.push(Rec {
                seg: i,
                off: pos as u64,
                len: r.encoded_len() as u64,
                covered: r.len as u64,
                batch_start: r.batch_start as u64,
                lsn: r.lsn,
            });
            pos += r.encoded_len();
        }
    }
    let mut batches: Vec<(usize, u64, u64)> = Vec::new();
    for r in &recs {
        match batches.last_mut() {
            Some(b) if b.0 == r.seg && b.1 == r.batch_start => b.2 = r.off + r.len,
            _ => batches.push((r.seg, r.batch_start, r.off + r.len)),
        }
    }
    let (ids, segs) = segs.into_iter().unzip();
    Some(Layout {
        manifest,
        ckpt,
        segs,
        ids,
        recs,
        batches,
        values: Vec::new(),
    })
}

/// A record in a value segment holding a version's value, as the checkpoint refers to it.
#[derive(Clone, Debug)]
struct ValueRec {
    rec: Rec,
    /// The value's byte range in the segment.
    value: (u64, u64),
    /// The version: its key, and an LSN it is read at.
    key: Vec<u8>,
    at: u64,
}

/// The id of the log segment at `p` (`<20 digits>.log`), if it names one.
fn segment_id(p: &Path) -> Option<u64> {
    let d = p.file_name()?.to_str()?.strip_suffix(".log")?;
    (d.len() == 20 && d.bytes().all(|b| b.is_ascii_digit()))
        .then(|| d.parse().ok())
        .flatten()
}

/// The places (segment id, record offset) of the values the checkpoint of `lay` refers to.
fn referenced_values(img: &Image, lay: &Layout) -> BTreeSet<(u64, u64)> {
    let m = &lay.manifest;
    let mut refs = BTreeSet::new();
    let Some((path, blocks)) = &lay.ckpt else {
        return refs;
    };
    let data = &img.files[path];
    let mut raw = Vec::new();
    for &(at, end) in blocks {
        let pos = BlockPos {
            epoch: m.epoch,
            id: m.checkpoint_id,
            offset: at,
        };
        let body = at as usize + BLOCK_HEADER_LEN;
        let Ok(h) = BlockHeader::decode(&data[at as usize..body], pos, end - body as u64) else {
            continue;
        };
        let Some(codec) = codec_by_id(h.codec) else {
            continue;
        };
        raw.clear();
        let stored = &data[body..body + h.stored_len as usize];
        if codec.decode(stored, h.raw_len as usize, &mut raw).is_err() {
            continue;
        }
        for e in Entries::new(&raw, at).flatten() {
            if let EntryValue::InSegment(v) = e.value {
                refs.insert((v.segment, v.offset));
            }
        }
    }
    refs
}

/// The records of `lay` in value segments of `img` that its checkpoint refers to for a
/// version's value (the undamaged image reads that version, its LSN and bytes, at its LSN): what
/// damage must reach for a read to meet it. Empty when the image keeps no value segments.
fn live_values(setup: &Setup, img: &Image, lay: &Layout) -> Vec<ValueRec> {
    let first = lay.manifest.first_segment;
    if lay.ids.first().is_none_or(|&id| id >= first) {
        return Vec::new();
    }
    let refs = referenced_values(img, lay);
    let Ok(db) = open(setup, img, RecoveryMode::Strict) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for rec in &lay.recs {
        let id = lay.ids[rec.seg];
        if id >= first || !refs.contains(&(id, rec.off)) {
            continue;
        }
        let buf = &img.files[&lay.segs[rec.seg]];
        let pos = SegmentPos {
            segment_id: id,
            epoch: lay.manifest.epoch,
            offset: rec.off,
        };
        let Ok(r) = decode_record(buf, rec.off as usize, pos) else {
            continue;
        };
        if r.kind != RecordKind::Write || r.flags & FLAG_SYSTEM != 0 || r.value.is_empty() {
            continue;
        }
        // The version is read at its LSN, or at the oldest LSN retained if that is later.
        let at = match db.get_at(r.key, r.lsn) {
            Err(Error::HistoryTrimmed {
                earliest_retained, ..
            }) => earliest_retained,
            _ => r.lsn,
        };
        let read =
            matches!(db.get_at(r.key, at), Ok(Some(v)) if v.lsn() == r.lsn && v[..] == *r.value);
        if read {
            let start = rec.off + (r.layout.header_len() + r.key.len()) as u64;
            out.push(ValueRec {
                rec: *rec,
                value: (start, start + r.value.len() as u64),
                key: r.key.to_vec(),
                at,
            });
        }
    }
    out
}

/// Damage categories.
const CATEGORIES: [&str; 4] = ["tail", "mid-log", "last-batch", "checkpoint"];

/// One damaged image and what it must lead to.
struct Case {
    img: Image,
    kind: &'static str,
    /// The damaged segment and the byte range damaged.
    file: PathBuf,
    range: (u64, u64),
    /// Start of the damaged batch (mid-log), for the reported offset.
    batch_start: u64,
    /// The version whose value the damage reaches (damage aimed at a value segment): its key
    /// and an LSN it is read at.
    version: Option<(Vec<u8>, u64)>,
}

fn damage(img: &Image, lay: &Layout, cat: usize, r: &mut Rng) -> Option<Case> {
    let mut img = img.clone();
    // The log's last batch, for the log's categories. A clean close whose checkpoint retired the
    // whole log leaves none: the checkpoint (and the MANIFEST) are still there to damage.
    let last = lay.batches.last().copied();
    match cat {
        0 => {
            let (last_seg, _, last_end) = last?;
            let path = lay.segs[last_seg].clone();
            let data = Arc::make_mut(img.files.get_mut(&path)?);
            let len = data.len() as u64;
            if len <= last_end {
                // Grow the file to have a tail to damage (a file without preallocation).
                data.resize(last_end as usize + 4096, 0);
            }
            let len = data.len() as u64;
            let (kind, range) = match r.below(4) {
                0 => {
                    let from = r.range(last_end, len - 1);
                    let to = (from + r.range(1, 4096)).min(len);
                    r.fill(&mut data[from as usize..to as usize]);
                    ("garbage after the tail", (from, to))
                }
                1 => {
                    let n = r.range(1, 8);
                    let mut lo = len;
                    for _ in 0..n {
                        let at = r.range(last_end, len - 1);
                        data[at as usize] ^= 1 << r.below(8);
                        lo = lo.min(at);
                    }
                    ("bit flips after the tail", (lo, len))
                }
                2 => {
                    let to = r.range(last_end, len);
                    data.truncate(to as usize);
                    ("truncation after the tail", (to, len))
                }
                _ => {
                    // A valid record copied to an offset past the end (a misdirected write).
                    let src = lay.recs[r.below(lay.recs.len() as u64) as usize];
                    let bytes = img.files[&lay.segs[src.seg]]
                        [src.off as usize..(src.off + src.len) as usize]
                        .to_vec();
                    let data = Arc::make_mut(img.files.get_mut(&path)?);
                    let room = data.len() as u64 - last_end;
                    if room < bytes.len() as u64 + 8 {
                        return None;
                    }
                    let at = (r.range(last_end, data.len() as u64 - bytes.len() as u64) / 8) * 8;
                    data[at as usize..at as usize + bytes.len()].copy_from_slice(&bytes);
                    (
                        "valid record copied past the tail",
                        (at, at + bytes.len() as u64),
                    )
                }
            };
            Some(Case {
                img,
                kind,
                file: path,
                range,
                batch_start: 0,
                version: None,
            })
        }
        1 => {
            if lay.batches.len() < 2 {
                return None;
            }
            if !lay.values.is_empty() && r.chance(400) {
                // Damage to a value a checkpoint refers to, in a value segment: recovery does
                // not read it, a read of its version must.
                let v = &lay.values[r.below(lay.values.len() as u64) as usize];
                let (from, to) = v.value;
                let path = lay.segs[v.rec.seg].clone();
                let data = Arc::make_mut(img.files.get_mut(&path)?);
                let before = data[from as usize..to as usize].to_vec();
                let kind = if r.chance(500) {
                    let at = r.range(from, to - 1);
                    data[at as usize] ^= 1 << r.below(8);
                    "bit flip in a value in a value segment"
                } else {
                    // The value's bytes in one sector (not its neighbours': a read of another
                    // key would meet the damage at that key's record).
                    let s = r.range(from / 512, (to - 1) / 512) * 512;
                    data[s.max(from) as usize..(s + 512).min(to) as usize].fill(0);
                    "zeroed value bytes (one sector's) in a value segment"
                };
                if data[from as usize..to as usize] == before[..] {
                    return None; // Zeros over zeros: nothing changed.
                }
                return Some(Case {
                    img,
                    kind,
                    file: path,
                    range: (from, to),
                    batch_start: v.rec.batch_start,
                    version: Some((v.key.clone(), v.at)),
                });
            }
            if r.chance(150) {
                // A flipped bit in a segment header: of any segment, or (one case in two) of
                // the first one recovery replays while later ones exist, which a truncating
                // recovery cuts away with all of them.
                let first_needed = img
                    .files
                    .get(&Setup::sim_dir().join("MANIFEST"))
                    .and_then(|m| Manifest::decode(m).ok())
                    .map(|m| m.first_needed_segment());
                let first = lay.segs.iter().position(|p| segment_id(p) == first_needed);
                let s = match first {
                    Some(f) if f + 1 < lay.segs.len() && r.chance(500) => f,
                    _ => r.below(lay.segs.len() as u64) as usize,
                };
                let path = lay.segs[s].clone();
                let data = Arc::make_mut(img.files.get_mut(&path)?);
                let at = r.below(64);
                data[at as usize] ^= 1 << r.below(8);
                return Some(Case {
                    img,
                    kind: "bit flip in a segment header",
                    file: path,
                    range: (at, at + 1),
                    batch_start: 0,
                    version: None,
                });
            }
            let b = lay.batches[r.below(lay.batches.len() as u64 - 1) as usize];
            let in_batch: Vec<&Rec> = lay
                .recs
                .iter()
                .filter(|x| x.seg == b.0 && x.batch_start == b.1)
                .collect();
            let path = lay.segs[b.0].clone();
            let (kind, range) = match r.below(3) {
                0 => {
                    let rec = in_batch[r.below(in_batch.len() as u64) as usize];
                    let data = Arc::make_mut(img.files.get_mut(&path)?);
                    let at = rec.off + r.below(rec.covered);
                    data[at as usize] ^= 1 << r.below(8);
                    ("bit flip in a synced batch", (at, at + 1))
                }
                1 => {
                    let data = Arc::make_mut(img.files.get_mut(&path)?);
                    let s = r.range(b.1 / 512, (b.2 - 1) / 512) * 512;
                    data[s as usize..(s + 512) as usize].fill(0);
                    ("zeroed sector in a synced batch", (s, s + 512))
                }
                _ => {
                    let dst = in_batch[r.below(in_batch.len() as u64) as usize];
                    let src = lay.recs[r.below(lay.recs.len() as u64) as usize];
                    if src.seg == dst.seg && src.off == dst.off {
                        return None;
                    }
                    let bytes = img.files[&lay.segs[src.seg]]
                        [src.off as usize..(src.off + src.len) as usize]
                        .to_vec();
                    let data = Arc::make_mut(img.files.get_mut(&path)?);
                    // The copy stays inside the damaged batch: overwriting every later batch
                    // too (the seal included) would make the damage a last-batch case, which no
                    // reader can tell from a torn tail (docs/DURABILITY.md, "the seal and its
                    // limit"), and the mid-log oracle would then blame recovery for it.
                    let end = (dst.off as usize + bytes.len())
                        .min(data.len())
                        .min(b.2 as usize);
                    let n = end - dst.off as usize;
                    data[dst.off as usize..end].copy_from_slice(&bytes[..n]);
                    (
                        "valid record copied over another (misdirected write)",
                        (dst.off, end as u64),
                    )
                }
            };
            Some(Case {
                img,
                kind,
                file: path,
                range,
                batch_start: b.1,
                version: None,
            })
        }
        2 => {
            let (last_seg, last_start, last_end) = last?;
            let path = lay.segs[last_seg].clone();
            // Only the log's last batch (the seal of a clean close): when a close-time
            // checkpoint retired the whole log, the last segment file left is one kept below it
            // for the values the checkpoint refers to, whose batches are all durable — damage
            // there is a value segment's (category 1), never a torn tail (seed 92 of
            // `corrupt --seeds 41..101` drew it as a last-batch case).
            let first_needed = img
                .files
                .get(&Setup::sim_dir().join("MANIFEST"))
                .and_then(|m| Manifest::decode(m).ok())
                .map(|m| m.first_needed_segment());
            if first_needed.is_some_and(|f| segment_id(&path).is_some_and(|id| id < f)) {
                return None;
            }
            let data = Arc::make_mut(img.files.get_mut(&path)?);
            let at = r.range(last_start, last_end - 1);
            data[at as usize] ^= 1 << r.below(8);
            Some(Case {
                img,
                kind: "bit flip in the last batch",
                file: path,
                range: (at, at + 1),
                batch_start: last_start,
                version: None,
            })
        }
        _ => {
            let (path, blocks) = lay.ckpt.clone()?;
            if r.chance(100) {
                // The MANIFEST: a flipped bit.
                let m = Setup::sim_dir().join("MANIFEST");
                let data = Arc::make_mut(img.files.get_mut(&m)?);
                let at = r.below(data.len() as u64);
                data[at as usize] ^= 1 << r.below(8);
                return Some(Case {
                    img,
                    kind: "bit flip in the MANIFEST",
                    file: m,
                    range: (at, at + 1),
                    batch_start: 0,
                    version: None,
                });
            }
            // A segment below the log that the checkpoint refers to for values, missing.
            let kept: Vec<PathBuf> = lay
                .values
                .iter()
                .map(|v| lay.segs[v.rec.seg].clone())
                .filter(|p| below_the_replayed_log(&img, p))
                .collect();
            if !kept.is_empty() && r.chance(100) {
                let gone = kept[r.below(kept.len() as u64) as usize].clone();
                img.files.remove(&gone);
                return Some(Case {
                    img,
                    kind: "a value segment the checkpoint refers to, missing",
                    file: gone,
                    range: (0, 0),
                    batch_start: 0,
                    version: None,
                });
            }
            let len = img.files.get(&path)?.len() as u64;
            let (kind, range) = match r.below(10) {
                0..=3 => {
                    let data = Arc::make_mut(img.files.get_mut(&path)?);
                    let at = r.below(len);
                    data[at as usize] ^= 1 << r.below(8);
                    ("bit flip in the checkpoint", (at, at + 1))
                }
                4..=5 => {
                    let data = Arc::make_mut(img.files.get_mut(&path)?);
                    let s = r.below(len.div_ceil(512)) * 512;
                    let e = (s + 512).min(len);
                    data[s as usize..e as usize].fill(0);
                    ("zeroed sector in the checkpoint", (s, e))
                }
                6..=7 => {
                    let data = Arc::make_mut(img.files.get_mut(&path)?);
                    let to = r.below(len);
                    data.truncate(to as usize);
                    ("checkpoint cut short", (to, len))
                }
                8 => {
                    img.files.remove(&path);
                    ("checkpoint missing", (0, len))
                }
                _ => {
                    // A valid block written where another one (or, with one block, a few
                    // bytes further on) belongs: a misdirected write. Each block is bound to its
                    // file and offset.
                    let a = *blocks.get(r.below(blocks.len().max(1) as u64) as usize)?;
                    let to = if blocks.len() > 1 {
                        blocks[r.below(blocks.len() as u64) as usize].0
                    } else {
                        a.0 + 8 * r.range(1, 16)
                    };
                    if to == a.0 {
                        return None;
                    }
                    let bytes = img.files[&path][a.0 as usize..a.1 as usize].to_vec();
                    let data = Arc::make_mut(img.files.get_mut(&path)?);
                    let end = (to as usize + bytes.len()).min(data.len());
                    let n = end.checked_sub(to as usize)?;
                    data[to as usize..end].copy_from_slice(&bytes[..n]);
                    (
                        "checkpoint block written at another offset (misdirected write)",
                        (to, end as u64),
                    )
                }
            };
            Some(Case {
                img,
                kind,
                file: path,
                range,
                batch_start: 0,
                version: None,
            })
        }
    }
}

fn open(setup: &Setup, img: &Image, mode: RecoveryMode) -> Result<Db, Error> {
    open_on(setup, SimVfs::from_image(img, false, Duration::ZERO), mode)
}

/// [`open`] on the simulated disk `sim`.
fn open_on(setup: &Setup, sim: SimVfs, mode: RecoveryMode) -> Result<Db, Error> {
    // Damage is classified on bytes read as from a real disk too: streamed in pieces by
    // recovery's reader thread (every other seed), or shared.
    let streamed = setup.wl.cfg.seed % 2 == 1;
    // Opened long after the workload ran (past every `NewerThan` window), as the `ringlog` tool
    // opens the same image on a real directory at the real time, long after the virtual epoch:
    // both keep the same versions.
    sim.set_wall(setup.wl.clock_at(2, 0));
    let mut o = setup.options(Some(sim.streamed_reads(streamed).vfs()), IoChoice::Auto);
    o.recovery = mode;
    Db::open(Setup::sim_dir(), o)
}

/// Whether `file` is a segment below the first one the MANIFEST of `img` needs replayed: a
/// value segment, kept for the values a checkpoint refers to in it.
fn below_the_replayed_log(img: &Image, file: &Path) -> bool {
    let id = segment_id(file);
    let manifest = img
        .files
        .get(&Setup::sim_dir().join("MANIFEST"))
        .and_then(|m| Manifest::decode(m).ok());
    matches!((id, manifest), (Some(id), Some(m)) if id < m.first_segment)
}

/// Damage to a value segment, on the image `db` opened: every key's newest version, and the
/// version the damage was aimed at (if it was), reads as in the undamaged image `orig` or fails
/// with `Error::Corruption` naming the damaged file and an offset in the damaged batch (the
/// damaged record's); at least one read meets it, and the aimed-at version's read must.
fn reported_on_read(setup: &Setup, orig: &Image, db: &Db, case: &Case) -> Result<(), String> {
    let whole = open(setup, orig, RecoveryMode::Strict)
        .map_err(|e| format!("the undamaged image does not open: {e}"))?;
    // Whether a read of `key` (at `lsn`, or its newest version) met the damage.
    let read = |key: &[u8], lsn: Option<u64>, what: &str| -> Result<bool, String> {
        let at = |d: &Db| match lsn {
            Some(l) => d.get_at(key, l),
            None => d.get(key),
        };
        let want = at(&whole).map_err(|e| format!("{what} of the undamaged image: {e}"))?;
        match at(db) {
            Ok(got) => {
                let same = match (&got, &want) {
                    (Some(a), Some(b)) => a[..] == b[..] && a.lsn() == b.lsn(),
                    (None, None) => true,
                    _ => false,
                };
                if same {
                    Ok(false)
                } else {
                    Err(format!("{what} reads otherwise than undamaged"))
                }
            }
            Err(Error::Corruption { file, offset, .. })
                if file == case.file && (case.batch_start..case.range.1).contains(&offset) =>
            {
                Ok(true)
            }
            Err(e) => Err(format!("{what}: {e}")),
        }
    };
    let mut met = 0;
    for k in 0..setup.wl.cfg.keys {
        met += u32::from(read(
            &crate::workload::key_bytes(k),
            None,
            &format!("key {k}"),
        )?);
    }
    if let Some((key, lsn)) = &case.version {
        let what = format!("the damaged version (key {key:?} read at LSN {lsn})");
        if !read(key, Some(*lsn), &what)? {
            return Err(format!("{what} reads whole: the damage went unreported"));
        }
    } else if met == 0 {
        return Err("no read of a key met the damage the scan met".into());
    }
    Ok(())
}

/// What one case led to: `Ok(label)` or a violation; `orig` is the image before the damage.
fn evaluate(
    setup: &Setup,
    hist: &History,
    pre: &Prefixes,
    full: Bounds,
    cat: usize,
    case: &Case,
    orig: &Image,
) -> Result<&'static str, Violation> {
    let intact = |db: &Db| -> Result<(), Violation> {
        let (st, aliens) =
            observe(db, &setup.wl).map_err(|e| Violation::new("I5", format!("scan: {e}")))?;
        check(&setup.wl, hist, pre, &st, &aliens, Recovered::of(db), full).map(|_| ())
    };
    match cat {
        0 => {
            let db = open(setup, &case.img, RecoveryMode::Strict).map_err(|e| {
                Violation::new("I5", format!("tail damage ({}) refused: {e}", case.kind))
            })?;
            intact(&db).map_err(|v| {
                Violation::new(
                    v.invariant,
                    format!(
                        "tail damage ({}) cut acknowledged data: {}",
                        case.kind, v.detail
                    ),
                )
            })?;
            Ok("tail damage cut, every step kept")
        }
        1 => {
            let label = match open(setup, &case.img, RecoveryMode::Strict) {
                Err(Error::Corruption { file, offset, .. }) => {
                    let header = case.batch_start == 0;
                    let (lo, hi) = if header {
                        (0, SEGMENT_HEADER_LEN as u64)
                    } else {
                        (case.batch_start, case.range.1)
                    };
                    if file != case.file || offset < lo || offset >= hi.max(lo + 1) {
                        return Err(Violation::new(
                            "corruption-report",
                            format!(
                                "{} at {} [{}, {}) reported at {} offset {offset} (expected in [{lo}, {hi}))",
                                case.kind,
                                name(&case.file),
                                case.range.0,
                                case.range.1,
                                name(&file)
                            ),
                        ));
                    }
                    "refused with the file and offset"
                }
                Err(e) => {
                    return Err(Violation::new(
                        "corruption-report",
                        format!("{} refused with a non-corruption error: {e}", case.kind),
                    ))
                }
                Ok(db) => {
                    let whole = intact(&db);
                    // Damage to a value segment: recovery does not read it (it is below the log
                    // it replays), a read of a value in it must find it: the scan's, or a read
                    // of the version the damage was aimed at.
                    let aimed = case.version.is_some();
                    if (whole.is_err() || aimed) && below_the_replayed_log(&case.img, &case.file) {
                        reported_on_read(setup, orig, &db, case).map_err(|why| {
                            let scan = whole.err().map(|v| v.detail + "; ").unwrap_or_default();
                            silent_loss(case, "", &format!("{scan}{why}"))
                        })?;
                        return Ok("in a value segment: opened, reported where a read meets it, the rest intact");
                    }
                    return match whole {
                        Ok(()) => Ok("harmless (no checksummed byte changed)"),
                        Err(v) => Err(silent_loss(case, "", &v.detail)),
                    };
                }
            };
            if below_the_replayed_log(&case.img, &case.file) {
                // A value the open reads back (a per-key retention policy keeps values in
                // memory): no cut of the log removes the damage, an explicit cut must refuse it
                // the same way.
                return match open(setup, &case.img, RecoveryMode::TruncateAtCorruption) {
                    Err(Error::Corruption { file, offset, .. })
                        if file == case.file
                            && (case.batch_start..case.range.1).contains(&offset) =>
                    {
                        Ok("in a value segment the open reads: refused with the file and offset, in both recovery modes")
                    }
                    other => Err(Violation::new(
                        "corruption-report",
                        format!(
                            "{} in a value segment the open reads: TruncateAtCorruption gave {}",
                            case.kind,
                            other.map_or_else(|e| e.to_string(), |_| "an open database".into())
                        ),
                    )),
                };
            }
            // The caller may ask for an explicit cut: it must open and leave a prefix.
            let db = open(setup, &case.img, RecoveryMode::TruncateAtCorruption).map_err(|e| {
                Violation::new(
                    "I5",
                    format!("TruncateAtCorruption refused {}: {e}", case.kind),
                )
            })?;
            if db.recovery_stats().truncated_at.is_none() {
                return Err(Violation::new(
                    "corruption-report",
                    format!(
                        "TruncateAtCorruption cut {} without reporting where",
                        case.kind
                    ),
                ));
            }
            // An explicit cut may lose acknowledged commits, and with them the leases that kept
            // their LSNs from being handed out again: the next LSN must still be above every
            // one acknowledged (I6; docs/DURABILITY.md 6.5).
            let acked = hist.acks.iter().map(|a| a.lsn).max().unwrap_or(0);
            if db.next_lsn() <= acked {
                return Err(Violation::new(
                    "I6",
                    format!(
                        "TruncateAtCorruption cut {} and would hand out LSN {} again (acknowledged up to {acked})",
                        case.kind,
                        db.next_lsn()
                    ),
                ));
            }
            let (st, aliens) =
                observe(&db, &setup.wl).map_err(|e| Violation::new("I5", format!("scan: {e}")))?;
            // The rest of the oracle's bounds, loose for what the cut lost.
            let loose = Bounds {
                required: 0,
                acked: 0,
                ..full
            };
            check(
                &setup.wl,
                hist,
                pre,
                &st,
                &aliens,
                Recovered::of(&db),
                loose,
            )?;
            Ok(label)
        }
        3 => {
            // Refused in every recovery mode, naming the file, no later than the damage.
            let mut label = "refused with the file and offset, in both recovery modes";
            for mode in [RecoveryMode::Strict, RecoveryMode::TruncateAtCorruption] {
                match open(setup, &case.img, mode) {
                    Err(Error::Corruption { file, offset, .. }) => {
                        if file != case.file || offset > case.range.1 {
                            return Err(Violation::new(
                                "corruption-report",
                                format!(
                                    "{} at {} [{}, {}) reported ({mode:?}) at {} offset {offset}",
                                    case.kind,
                                    name(&case.file),
                                    case.range.0,
                                    case.range.1,
                                    name(&file)
                                ),
                            ));
                        }
                    }
                    Err(e) => {
                        return Err(Violation::new(
                            "corruption-report",
                            format!(
                                "{} refused ({mode:?}) with a non-corruption error: {e}",
                                case.kind
                            ),
                        ))
                    }
                    Ok(db) => {
                        intact(&db)
                            .map_err(|v| silent_loss(case, &format!(" ({mode:?})"), &v.detail))?;
                        label = "harmless (no checksummed byte changed)";
                    }
                }
            }
            Ok(label)
        }
        _ => match open(setup, &case.img, RecoveryMode::Strict) {
            Err(Error::Corruption { .. }) => Ok("refused with the file and offset"),
            Err(e) => Err(Violation::new("I5", format!("{}: {e}", case.kind))),
            Ok(db) => Ok(match intact(&db) {
                Ok(()) => "opened, no acknowledged step lost",
                Err(why) => {
                    // close() seals the log with a round after the last one of data, so damage to
                    // the last batch of a cleanly closed image can never cost acknowledged data.
                    return Err(Violation::new(
                        "I3",
                        format!(
                            "{}: acknowledged data lost without an error: {why:?}",
                            case.kind
                        ),
                    ));
                }
            }),
        },
    }
}

/// The `ringlog` tool's reading of the damaged image (the walk `ringlog verify` makes, at the
/// format level) agrees with recovery's: damage recovery refuses in a segment is corruption of
/// that segment to the tool; a tail recovery cuts is a torn tail to it; a log recovery opens
/// whole has no damage. (Damage to the MANIFEST or the checkpoint is not the walk's: it opens
/// them through the engine.) Returns the counter of the agreement.
fn tool_agrees(setup: &Setup, case: &Case) -> Result<&'static str, Violation> {
    use ringlog_cli::logwalk::{self, DamageKind};
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let root = std::env::temp_dir().join(format!(
        "ringlog-crash-walk-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let dir = root.join(
        Setup::sim_dir()
            .strip_prefix("/")
            .unwrap_or(Setup::sim_dir()),
    );
    // Damage below the log recovery replays is a value segment's: `ringlog verify --deep`
    // reads every retained version, its values included.
    let in_values = below_the_replayed_log(&case.img, &case.file);
    let mut deep = None;
    // The first damage the walk found in the segments kept below the log (for values on disk).
    let mut kept = None;
    let walked = case
        .img
        .save(&root)
        .map_err(|e| format!("saving the image: {e}"))
        .and_then(|()| {
            let l = logwalk::list(&dir).map_err(|e| format!("{e:?}"))?;
            let w = logwalk::walk(&l, |_| Ok(())).map_err(|e| format!("{e:?}"))?;
            if in_values {
                deep = Some(verify_deep(&dir));
                kept = w.kept_damage.first().cloned();
            }
            Ok(w.first_problem().cloned())
        });
    let _ = std::fs::remove_dir_all(&root);
    let seen = match walked {
        Ok(d) => d,
        // The walk needs a MANIFEST that decodes: damage to it is the engine's to report.
        Err(_) if case.file.ends_with("MANIFEST") => {
            return Ok("tool: MANIFEST damage (the engine's)")
        }
        Err(e) => {
            return Err(Violation::new(
                "tool",
                format!("{}: the walk failed: {e}", case.kind),
            ))
        }
    };
    let fail = |what: String| Err(Violation::new("tool", format!("{}: {what}", case.kind)));
    let show = |d: &Option<logwalk::Damage>| match d {
        Some(d) => format!(
            "{:?} in {} at {}: {}",
            d.kind,
            name(&d.file),
            d.offset,
            d.reason
        ),
        None => "no damage".into(),
    };
    if let Some((ok, report)) = deep {
        // The log is whole. The walk of the kept segments finds damage of checksummed bytes
        // there (plain `verify` reports it); the deep check meets the damage wherever a read of
        // it must (a version the damage was aimed at, or one the open reads back); either names
        // the file.
        let named = report.contains(&name(&case.file));
        let refused = matches!(
            open(setup, &case.img, RecoveryMode::Strict),
            Err(Error::Corruption { .. })
        );
        return match (&seen, &kept, ok) {
            (Some(_), _, _) => fail(format!(
                "the damage is in a value segment, the walk of the log sees {}",
                show(&seen)
            )),
            (None, Some(d), false) if name(&d.file) == name(&case.file) && named => {
                Ok("tool agrees: `verify` reports the damage in a kept value segment")
            }
            (None, Some(d), _) => fail(format!(
                "the walk of the kept segments reports {} where the damage is in {} (verify ok={ok})",
                show(&Some(d.clone())),
                name(&case.file)
            )),
            (None, None, true) if case.version.is_none() && !refused => {
                Ok("tool agrees: damage below the replayed log in bytes no read or checksum meets")
            }
            (None, None, false) if named => {
                Ok("tool agrees: `verify --deep` reports the damaged value")
            }
            (None, None, _) => fail(format!(
                "`verify --deep` says ok={ok} about damage in {}: {report}",
                name(&case.file)
            )),
        };
    }
    match open(setup, &case.img, RecoveryMode::Strict) {
        Err(Error::Corruption { file, offset, .. })
            if file.extension().is_some_and(|e| e == "log") =>
        {
            match &seen {
                Some(d)
                    if d.kind == DamageKind::Corruption
                        && d.file.file_name() == file.file_name() =>
                {
                    Ok("tool agrees: corruption where recovery refuses")
                }
                other => fail(format!(
                    "recovery refuses ({} at {offset}), the tool sees {}",
                    name(&file),
                    show(other)
                )),
            }
        }
        Err(_) => Ok("tool: damage outside the log (the engine's)"),
        Ok(db) if db.recovery_stats().bytes_truncated > 0 => match &seen {
            Some(d) if d.kind == DamageKind::TornTail => {
                Ok("tool agrees: torn tail where recovery cuts")
            }
            other => fail(format!(
                "recovery cuts a torn tail of {} bytes, the tool sees {}",
                db.recovery_stats().bytes_truncated,
                show(other)
            )),
        },
        Ok(_) => match &seen {
            None => Ok("tool agrees: no damage where recovery opens whole"),
            other => fail(format!(
                "recovery opens the log whole, the tool sees {}",
                show(other)
            )),
        },
    }
}

/// `ringlog verify --deep --json` on the database at `dir`: whether it found it whole, and its
/// report (or its failure).
fn verify_deep(dir: &Path) -> (bool, String) {
    use ringlog_cli::args::{Cli, Command, VerifyArgs};
    let cli = Cli {
        json: true,
        command: Command::Verify(VerifyArgs {
            dir: dir.to_path_buf(),
            deep: true,
        }),
    };
    let mut out = Vec::new();
    let outcome = ringlog_cli::run(cli, &mut out);
    let report = String::from_utf8_lossy(&out).into_owned();
    match outcome {
        Ok(()) => (true, report),
        Err(e) => (false, format!("{report}{e:?}")),
    }
}

fn mix_seed(seed: u64, cat: usize, k: u64) -> u64 {
    crate::rng::mix(&[seed, cat as u64, k, 0x4E9A])
}

/// What an open recovered: the workload's state, the keys it never wrote, the last LSN.
type Opened = (State, Vec<crate::workload::Alien>, u64);

/// What `img` opens with in `mode`; `fail` makes a violation of why not (`what` names the image).
fn opened(
    setup: &Setup,
    img: &Image,
    mode: RecoveryMode,
    what: &str,
    fail: &dyn Fn(String) -> Violation,
) -> Result<Opened, Violation> {
    opened_db(setup, img, mode, what, fail).map(|(o, _)| o)
}

/// [`opened`], and the database opened.
fn opened_db(
    setup: &Setup,
    img: &Image,
    mode: RecoveryMode,
    what: &str,
    fail: &dyn Fn(String) -> Violation,
) -> Result<(Opened, Db), Violation> {
    let db = open(setup, img, mode)
        .map_err(|e| fail(format!("{what}: {mode:?} recovery refused it: {e}")))?;
    let (st, aliens) = observe(&db, &setup.wl).map_err(|e| fail(format!("{what}: scan: {e}")))?;
    Ok(((st, aliens, db.last_lsn()), db))
}

/// Checks the crash states of `trace` run on `base` (sector tears, up to 4 states per step) with
/// `check(position, state index, image)`, up to the first violation; returns how many it checked.
fn every_crash_state(
    base: &Image,
    trace: &[crate::sim::Op],
    seed: u64,
    mut check: impl FnMut(usize, u64, &Image) -> Result<(), Violation>,
) -> Result<u64, Violation> {
    let mut states = 0u64;
    let mut bad = None;
    crate::crash::for_each_state(
        base,
        trace,
        crate::crash::TearModel::Sector,
        4,
        seed,
        |pos, idx, img| {
            if bad.is_none() {
                states += 1;
                bad = check(pos, idx, &img).err();
            }
        },
    );
    bad.map_or(Ok(states), Err)
}

/// `ringlog repair --truncate-tail` on the damaged image, on the simulated disk, then crashed
/// at every step of its trace (sector tears, a few states per step). In every crash state: no
/// byte of the log is lost — each segment is as it was, or cut at the plan's offset with the cut
/// bytes durable in the side directory, or gone with a durable copy there — and running the
/// repair again (as an operator would) gives the database the uncrashed repair gives. The repaired
/// database opens in `RecoveryMode::Strict` with the state a truncating recovery of the damaged
/// image recovers. Returns the counter and the number of crash states checked.
fn repair_crashes(setup: &Setup, case: &Case, seed: u64) -> Result<(&'static str, u64), Violation> {
    use ringlog_cli::repair;
    let fail = |what: String| Violation::new("repair", format!("{}: {what}", case.kind));
    let dir = Setup::sim_dir();
    let side = dir.with_file_name("db.repair");
    let sim = SimVfs::from_image(&case.img, true, Duration::ZERO);
    let plan = match repair::plan_tail(&sim, dir) {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(("repair: nothing to cut", 0)),
        Err(e) => return Err(fail(format!("planning failed: {e:?}"))),
    };
    repair::execute(&sim, dir, &side, &plan)
        .map_err(|e| fail(format!("the repair failed: {e:?}")))?;
    let trace = sim.trace();
    let strict = RecoveryMode::Strict;
    let expected = opened(
        setup,
        &sim.snapshot(),
        strict,
        "the repaired database",
        &fail,
    )?;
    let truncating = RecoveryMode::TruncateAtCorruption;
    if opened(setup, &case.img, truncating, "the damaged image", &fail)? != expected {
        return Err(fail(
            "the repaired database holds another state than a truncating recovery".into(),
        ));
    }
    let cut_name = dir.join(format!("{:020}.log", plan.segment));
    let states = every_crash_state(&case.img, &trace, seed, |pos, idx, img| {
        let at = format!("crash at step {pos} of the repair (state {idx})");
        // No byte lost.
        for (path, orig) in &case.img.files {
            if path.extension().is_none_or(|e| e != "log") || path.parent() != Some(dir) {
                continue;
            }
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let now = img.files.get(path);
            let kept =
                |f: &str, bytes: &[u8]| img.files.get(&side.join(f)).is_some_and(|b| **b == *bytes);
            let ok = match now {
                Some(b) if **b == **orig => true,
                Some(b) if *path == cut_name && plan.offset as usize <= orig.len() => {
                    let off = plan.offset as usize;
                    **b == orig[..off] && kept(&format!("{name}.from-{off}"), &orig[off..])
                }
                Some(_) => false,
                None => kept(&name, orig),
            };
            if !ok {
                return Err(fail(format!(
                    "{at}: {name} changed or went without a durable copy of what it lost"
                )));
            }
        }
        // Running it again finishes it.
        let again = SimVfs::from_image(img, false, Duration::ZERO);
        let side2 = dir.with_file_name("db.repair2");
        match repair::plan_tail(&again, dir) {
            Ok(Some(p)) => {
                repair::execute(&again, dir, &side2, &p)
                    .map_err(|e| fail(format!("{at}: the repair run again failed: {e:?}")))?;
            }
            Ok(None) => {}
            Err(e) => return Err(fail(format!("{at}: planning again failed: {e:?}"))),
        }
        let what = format!("{at}, then repaired again");
        if opened(setup, &again.snapshot(), strict, &what, &fail)? != expected {
            return Err(fail(format!(
                "{what}, it holds another state than the uncrashed repair"
            )));
        }
        Ok(())
    })?;
    Ok((
        "repair: crashed at every step, no byte lost, finished by a second run",
        states,
    ))
}

/// A truncating recovery (`RecoveryMode::TruncateAtCorruption`) of the damaged image that cuts
/// the log, on the simulated disk, followed by a clean close, crashed at every step of its trace
/// (sector tears, a few states per step): the cut (the damaged segment cut short, the later ones
/// renamed aside), the rest of the open and the close. In every crash state a truncating
/// recovery run again (as the application would) must open with the state the uncrashed one
/// recovered — an interrupted cut is finished, never refused nor moved; after the close, the
/// database opens in `RecoveryMode::Strict` with that state (the cut is durable). In every
/// state the next LSN is above `acked`, the highest LSN the workload was given: the LSNs the cut
/// took away are never handed out again, also when the open stopped after the cut (before
/// session 31 only the segment the open creates after the cut recorded that floor). Returns the
/// counter and the number of crash states checked, or `None` when the recovery cut nothing or
/// refused the image (which [`evaluate`] judges).
fn truncating_crashes(
    setup: &Setup,
    case: &Case,
    acked: u64,
    seed: u64,
) -> Result<Option<(&'static str, u64)>, Violation> {
    let reused = |what: &str, next: u64| {
        Violation::new(
            "I6",
            format!(
                "{}: {what}: the next LSN is {next}, but the workload was given LSNs up to {acked} before the damage: a cut's LSNs handed out again",
                case.kind
            ),
        )
    };
    let fail = |what: String| Violation::new("truncation", format!("{}: {what}", case.kind));
    let sim = SimVfs::from_image(&case.img, true, Duration::ZERO);
    let Ok(db) = open_on(setup, sim.clone(), RecoveryMode::TruncateAtCorruption) else {
        return Ok(None);
    };
    if db.recovery_stats().truncated_at.is_none() {
        return Ok(None);
    }
    let (st, aliens) = observe(&db, &setup.wl).map_err(|e| fail(format!("scan: {e}")))?;
    let expected = (st, aliens, db.last_lsn());
    if db.next_lsn() <= acked {
        return Err(reused("the truncating open", db.next_lsn()));
    }
    db.close()
        .map_err(|e| fail(format!("the close after the cut failed: {e}")))?;
    let trace = sim.trace();
    let states = every_crash_state(&case.img, &trace, seed, |pos, idx, img| {
        let (at, mode) = if pos == trace.len() {
            (
                format!("power lost after the close (state {idx})"),
                RecoveryMode::Strict,
            )
        } else {
            (
                format!(
                    "crash at step {pos} of {} of the truncating open and close (state {idx})",
                    trace.len()
                ),
                RecoveryMode::TruncateAtCorruption,
            )
        };
        let (got, db) = opened_db(setup, img, mode, &at, &fail)?;
        if got != expected {
            return Err(fail(format!(
                "{at}: {mode:?} recovered another state than the uncrashed truncating recovery \
                 (last LSN {} against {})",
                got.2, expected.2
            )));
        }
        if db.next_lsn() <= acked {
            return Err(reused(&format!("{at}, opened {mode:?}"), db.next_lsn()));
        }
        drop(db);
        // A plain open too: an interrupted cut may leave what looks like a torn tail.
        if mode != RecoveryMode::Strict {
            if let Ok(db) = open(setup, img, RecoveryMode::Strict) {
                if db.next_lsn() <= acked {
                    return Err(reused(&format!("{at}, opened Strict"), db.next_lsn()));
                }
            }
        }
        Ok(())
    })?;
    Ok(Some((
        "truncating recovery: crashed at every step, finished by the next open, durable after close",
        states,
    )))
}

/// The damage of `case` went unreported: the database opened (`how`: in which mode, if it says)
/// but `detail` is wrong with it.
fn silent_loss(case: &Case, how: &str, detail: &str) -> Violation {
    Violation::new(
        "silent-loss",
        format!(
            "{} at {} [{}, {}) opened{how} without an error but: {detail}",
            case.kind,
            name(&case.file),
            case.range.0,
            case.range.1,
        ),
    )
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs `cases` damage cases per category for every seed.
pub fn run(opts: &PowerOptions, cases: u64) -> Summary {
    crate::setup::exercise_large_paths();
    let started = Instant::now();
    let mut sum = Summary::new("corrupt", "durable image");
    sum.unit = "damaged images".into();
    for (i, &seed) in opts.seeds.iter().enumerate() {
        let mode = match opts.modes[i % opts.modes.len().max(1)] {
            Mode::InMemory => Mode::Strict,
            m => m,
        };
        run_seed(opts, seed, mode, cases, &mut sum);
        if opts.stop_on_first && !sum.failures.is_empty() {
            break;
        }
    }
    sum.elapsed = started.elapsed();
    sum
}

fn run_seed(opts: &PowerOptions, seed: u64, mode: Mode, cases: u64, sum: &mut Summary) {
    sum.seeds += 1;
    let setup = Setup::derive(seed, mode, true);
    let empty = Image {
        files: Default::default(),
        dirs: vec![Setup::sim_dir().to_path_buf()],
    };
    let sim = SimVfs::from_image(&empty, false, Duration::ZERO);
    let mut hist = History {
        gen: 1,
        base: State::empty(setup.wl.cfg.keys),
        ..History::default()
    };
    sim.set_wall(setup.wl.clock_at(1, 0));
    let db = match Db::open(
        Setup::sim_dir(),
        setup.options(Some(sim.vfs()), IoChoice::Auto),
    ) {
        Ok(db) => db,
        Err(e) => {
            let v = Violation::new("I5", format!("the new database did not open: {e}"));
            sum.failures.push(seed_failure(opts, seed, mode, &setup, v));
            return;
        }
    };
    let session = Session::new().set_clock(sim.wall_clock());
    for step in 1..=opts.steps {
        let lsn = match setup.wl.execute(&db, 1, step, &session) {
            Ok(lsn) => lsn,
            Err(e) => {
                let v = Violation::new("I5", format!("step {step} failed on a sound disk: {e}"));
                sum.failures.push(seed_failure(opts, seed, mode, &setup, v));
                return;
            }
        };
        // Everything is durable once the database is closed.
        let kind = match ack_kind(&setup.wl, &setup.wl.step(1, step)) {
            AckKind::Commit { .. } => AckKind::Commit { durable: true },
            k => k,
        };
        hist.acks.push(Ack {
            step,
            kind,
            lsn,
            durable_lsn: db.durable_lsn(),
            at: 0,
        });
        hist.started.push(0);
    }
    sum.steps += opts.steps;
    // The log as a power loss right now could leave it (every write persisted), before the
    // close seals it: damage to it is checked after the clean-close cases.
    let unsealed = sim.snapshot();
    session.drop_snapshots();
    if let Err(e) = db.close() {
        let v = Violation::new("I5", format!("the close failed on a sound disk: {e}"));
        sum.failures.push(seed_failure(opts, seed, mode, &setup, v));
        return;
    }
    // After a clean close every step is durable: the full model is required.
    let img = sim.snapshot();
    let pre = Prefixes::new(&setup.wl, &hist, opts.steps);
    let full = Bounds {
        required: opts.steps,
        allowed: opts.steps,
        because: None,
        seen: None,
        acked: hist
            .acks
            .iter()
            .filter(|a| matches!(a.kind, AckKind::Commit { .. }))
            .map(|a| a.lsn)
            .max()
            .unwrap_or(0),
        floor: 0,
    };
    // The undamaged image first: it must open with every step and nothing to cut (a close
    // that lost a commit, or retired a log a commit still needed, shows here — and would
    // otherwise only leave fewer log records to damage).
    if let Err(v) = clean_image(&setup, &hist, &pre, full, &img) {
        sum.failures.push(seed_failure(opts, seed, mode, &setup, v));
        return;
    }
    *sum.checks
        .entry("clean-close images: every step, nothing cut")
        .or_default() += 1;
    let Some(mut lay) = layout(&img) else {
        let v = Violation::new(
            "I5",
            "the clean-close image has no MANIFEST the format decodes".to_string(),
        );
        sum.failures.push(seed_failure(opts, seed, mode, &setup, v));
        return;
    };
    let points_before = sum.points;
    lay.values = live_values(&setup, &img, &lay);
    for (cat, cat_name) in CATEGORIES.iter().enumerate() {
        for k in 0..cases {
            let t = Target {
                gen: cat as u32 + 1,
                point: k,
                state: 0,
            };
            if opts.replay.is_some_and(|r| r != t) {
                continue;
            }
            let mut r = Rng::from_words(&[seed, cat as u64, k, 0xC022]);
            let Some(case) = damage(&img, &lay, cat, &mut r) else {
                continue;
            };
            sum.points += 1;
            let verdict = evaluate(&setup, &hist, &pre, full, cat, &case, &img)
                .and_then(|label| tool_agrees(&setup, &case).map(|tool| (label, tool)))
                .and_then(|(label, tool)| {
                    // One log case in four: `ringlog repair` crashed at every step.
                    let repaired = if cat < 3 && k % 4 == 0 {
                        Some(repair_crashes(&setup, &case, mix_seed(seed, cat, k))?)
                    } else {
                        None
                    };
                    // Mid-log damage the engine's truncating recovery cuts: every header
                    // flip (a cut at a segment's start, up to the whole log) and one case in
                    // four of the others, crashed at every step.
                    let truncated = if cat == 1
                        && (case.batch_start == 0 || k % 4 == 1)
                        && case.version.is_none()
                    {
                        truncating_crashes(
                            &setup,
                            &case,
                            full.acked,
                            mix_seed(seed, cat, k) ^ 0x7C07,
                        )?
                    } else {
                        None
                    };
                    Ok((label, tool, repaired, truncated))
                });
            match verdict {
                Ok((label, tool, repaired, truncated)) => {
                    *sum.checks.entry(tool).or_default() += 1;
                    if let Some((what, states)) = repaired {
                        *sum.checks.entry(what).or_default() += 1;
                        *sum.checks.entry("repair crash states checked").or_default() += states;
                    }
                    if let Some((what, states)) = truncated {
                        *sum.checks.entry(what).or_default() += 1;
                        *sum.checks
                            .entry("truncating recovery crash states checked")
                            .or_default() += states;
                    }
                    if label.contains("known limit") && sum.notes.len() < 3 {
                        sum.notes.push(format!(
                            "{} in {} bytes [{}, {}) lost acknowledged steps without an error (known limit); reproduce: {}",
                            case.kind,
                            name(&case.file),
                            case.range.0,
                            case.range.1,
                            replay(opts, mode, seed, &format!("{}.{k}", cat + 1))
                        ));
                    }
                    sum.count(&format!("{cat_name}: {label}"));
                    *sum.covered.entry(case.kind.to_string()).or_default() += 1;
                }
                Err(v) => {
                    let damage = format!(
                        "{cat_name} damage: {} in {} bytes [{}, {})",
                        case.kind,
                        name(&case.file),
                        case.range.0,
                        case.range.1
                    );
                    let at = (seed, mode, cat, k);
                    sum.failures
                        .push(damaged_failure(opts, at, &setup, damage, &case.img, v));
                    sum.count(&format!("{cat_name}: VIOLATION"));
                    if opts.stop_on_first {
                        return;
                    }
                }
            }
        }
    }
    unsealed_cases(opts, (seed, mode), &setup, &hist, &unsealed, cases, sum);
    // Every clean-close image has a MANIFEST and a log or a checkpoint to damage: a seed that
    // gave none checked nothing (a replay checks one case only).
    if opts.replay.is_none() && sum.points == points_before {
        let v = Violation::new(
            "I5",
            "no damaged image: the clean-close image had nothing the categories damage".to_string(),
        );
        sum.failures.push(seed_failure(opts, seed, mode, &setup, v));
    }
}

/// The category of damage to a log a crash left unsealed ([`unsealed_cases`]), after
/// [`CATEGORIES`].
const UNSEALED: &str = "unsealed";

/// Damage to the log as a crash leaves it, unsealed (no close's seal claims its last batch
/// durable; only the durable floors later batch heads record do): a flipped bit in a record of
/// a batch of the last segment that was durable when a workload step returned (`durable_lsn`
/// at or past its LSNs), followed in that segment by a batch begun after that return (its first
/// LSN at or past the next step's commit), whose head's floor must claim the damaged batch
/// durable. A `Strict` open must refuse with `Error::Corruption` naming the segment; an open
/// that cut the log (recovery took the damage for a torn tail) is a durability violation, and
/// one that cut nothing a silent loss — unless the damaged record's version is the checkpoint's
/// to hold (recovery need not replay it). Damage no later floor must claim is a state a crash
/// can leave, and is not made.
fn unsealed_cases(
    opts: &PowerOptions,
    (seed, mode): (u64, Mode),
    setup: &Setup,
    hist: &History,
    img: &Image,
    cases: u64,
    sum: &mut Summary,
) {
    let Some(lay) = layout(img) else {
        return;
    };
    let Some(&(last_seg, _, _)) = lay.batches.last() else {
        return;
    };
    if lay.ids[last_seg] < lay.manifest.first_segment {
        // A checkpoint left it below the log (the next segment is not created yet): recovery
        // reads none of it.
        return;
    }
    // The commits' steps in order: (LSN, durable LSN when the step returned).
    let commits: Vec<(u64, u64)> = hist
        .acks
        .iter()
        .filter(|a| matches!(a.kind, AckKind::Commit { .. }) && a.lsn != 0)
        .map(|a| (a.lsn, a.durable_lsn))
        .collect();
    let batches: Vec<(u64, u64)> = lay
        .batches
        .iter()
        .filter(|b| b.0 == last_seg)
        .map(|b| (b.1, b.2))
        .collect();
    let in_batch = |b: (u64, u64)| {
        lay.recs
            .iter()
            .filter(move |r| r.seg == last_seg && r.batch_start == b.0 && r.off < b.1)
    };
    // Batches whose damage a later batch's floor must prove.
    let candidates: Vec<(u64, u64)> = batches
        .iter()
        .enumerate()
        .filter(|&(i, &b)| {
            let top = in_batch(b).map(|r| r.lsn).max().unwrap_or(0);
            // The first step that returned with this batch durable.
            let Some(s) = commits.iter().position(|&(_, d)| top != 0 && d >= top) else {
                return false;
            };
            // A batch begun after that return: its first LSN is at or past the next step's
            // commit (a batch is begun by the commit that appends to it first).
            let Some(&(next, _)) = commits.get(s + 1) else {
                return false;
            };
            batches[i + 1..].iter().any(|&l| {
                in_batch(l)
                    .map(|r| r.lsn)
                    .filter(|&lsn| lsn != 0)
                    .min()
                    .is_some_and(|first| first >= next)
            })
        })
        .map(|(_, &b)| b)
        .collect();
    if candidates.is_empty() {
        return;
    }
    let path = lay.segs[last_seg].clone();
    // The image's last LSN: an open that recovers it cut nothing.
    let last = lay.recs.iter().map(|x| x.lsn).max().unwrap_or(0);
    let cat = CATEGORIES.len();
    for k in 0..cases {
        let t = Target {
            gen: cat as u32 + 1,
            point: k,
            state: 0,
        };
        if opts.replay.is_some_and(|r| r != t) {
            continue;
        }
        let mut r = Rng::from_words(&[seed, cat as u64, k, 0x05EA1]);
        let b = candidates[r.below(candidates.len() as u64) as usize];
        // A record of a commit (a padding record's checksum does not cover its body).
        let recs: Vec<Rec> = in_batch(b)
            .filter(|x| x.covered > 0 && x.lsn != 0)
            .copied()
            .collect();
        if recs.is_empty() {
            continue;
        }
        let rec = recs[r.below(recs.len() as u64) as usize];
        let at = rec.off + r.below(rec.covered);
        let mut damaged = img.clone();
        let Some(data) = damaged.files.get_mut(&path).map(Arc::make_mut) else {
            continue;
        };
        data[at as usize] ^= 1 << r.below(8);
        sum.points += 1;
        let verdict = match open(setup, &damaged, RecoveryMode::Strict) {
            Err(Error::Corruption { file, .. }) if file == path => Ok("refused"),
            // A version the checkpoint holds: recovery need not replay (nor check) its record.
            Ok(db) if db.last_lsn() >= last && rec.lsn <= lay.manifest.checkpoint_lsn => {
                Ok("opened whole (the damaged record is below the checkpoint)")
            }
            Ok(db) if db.last_lsn() >= last => Err(Violation::new(
                "silent-loss",
                format!(
                    "a bit flipped in the record of LSN {} (above the checkpoint's {}) opened \
                     without an error and nothing cut",
                    rec.lsn, lay.manifest.checkpoint_lsn
                ),
            )),
            Err(e) => Err(Violation::new(
                "I5",
                format!("the open refused with another error than corruption of the damaged segment: {e}"),
            )),
            Ok(db) => Err(Violation::new(
                "durability",
                format!(
                    "damage to a round durable before a later round was written opened without \
                     an error: recovery took it for a torn tail and cut the log (recovered to \
                     LSN {}, the image holds LSNs to {last}, acknowledged durable to {})",
                    db.last_lsn(),
                    commits.last().map_or(0, |c| c.1)
                ),
            )),
        };
        match verdict {
            Ok(label) => {
                sum.count(&format!("{UNSEALED}: {label}"));
                *sum.covered.entry("unsealed bit flip".into()).or_default() += 1;
            }
            Err(v) => {
                let damage = format!(
                    "{UNSEALED} damage: a bit flipped at {} byte {at} (batch [{}, {}))",
                    name(&path),
                    b.0,
                    b.1
                );
                let at = (seed, mode, cat, k);
                sum.failures
                    .push(damaged_failure(opts, at, setup, damage, &damaged, v));
                sum.count(&format!("{UNSEALED}: VIOLATION"));
                if opts.stop_on_first {
                    return;
                }
            }
        }
    }
}

/// The undamaged clean-close image opens (`Strict`) with every step of the workload and
/// nothing cut ([`crate::oracle::nothing_cut`]).
fn clean_image(
    setup: &Setup,
    hist: &History,
    pre: &Prefixes,
    full: Bounds,
    img: &Image,
) -> Result<(), Violation> {
    let db = open(setup, img, RecoveryMode::Strict)
        .map_err(|e| Violation::new("I5", format!("the clean-close image did not open: {e}")))?;
    // One run from an empty database, no crash: nothing unfinished either.
    crate::oracle::nothing_cut(db.recovery_stats(), false)?;
    let (st, aliens) =
        observe(&db, &setup.wl).map_err(|e| Violation::new("I5", format!("scan: {e}")))?;
    check(&setup.wl, hist, pre, &st, &aliens, Recovered::of(&db), full).map(|_| ())
}

/// A failure of a whole seed (its workload or its clean-close image), before any damage.
fn seed_failure(
    opts: &PowerOptions,
    seed: u64,
    mode: Mode,
    setup: &Setup,
    violation: Violation,
) -> Failure {
    failure(opts, (seed, mode, "0.0"), setup, None, None, violation)
}

/// A failure of `corrupt` at (seed, durability, point `CATEGORY.CASE`; `0.0`: the seed's
/// undamaged image), with the damage made, if any, and the damaged image kept, if it was.
fn failure(
    opts: &PowerOptions,
    (seed, mode, point): (u64, Mode, &str),
    setup: &Setup,
    damage: Option<String>,
    image: Option<PathBuf>,
    violation: Violation,
) -> Failure {
    Failure {
        mode: "corrupt".into(),
        seed,
        model: "durable image".into(),
        point: point.into(),
        state: 0,
        violation,
        trace: std::iter::once(setup.describe()).chain(damage).collect(),
        image,
        replay: replay(opts, mode, seed, point),
    }
}

/// A violation found on a damaged image: case `k` of category `cat` (from 0) of `seed`, with
/// the damage described and the image kept under `--keep`.
fn damaged_failure(
    opts: &PowerOptions,
    (seed, mode, cat, k): (u64, Mode, usize, u64),
    setup: &Setup,
    damage: String,
    img: &Image,
    v: Violation,
) -> Failure {
    let image = opts.keep.as_ref().and_then(|dir| {
        let d = dir.join(format!("corrupt-seed{seed}-{}-{k}", cat + 1));
        img.save(&d).ok().map(|_| d)
    });
    let point = format!("{}.{k}", cat + 1);
    failure(opts, (seed, mode, &point), setup, Some(damage), image, v)
}

/// The command that replays point `point` of `seed`.
fn replay(opts: &PowerOptions, mode: Mode, seed: u64, point: &str) -> String {
    format!(
        "ringlog-crash corrupt --durability {mode} --steps {} --replay {seed}:{point}:0",
        opts.steps
    )
}
