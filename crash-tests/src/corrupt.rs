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
//!   succeed, report where it cut, and leave a prefix of the commit order;
//! * **last-batch** damage: the last batch of a cleanly closed log is the seal `close()` writes
//!   after the last round of data (FORMAT.md §6), so damage there may be cut as a torn tail but
//!   must never cost an acknowledged step; losing one is a violation.
//! * **checkpoint** damage, to the checkpoint the MANIFEST names (the workload checkpoints, so
//!   the log below it is gone) or to the MANIFEST itself: a flipped bit, a zeroed sector, the file
//!   cut short or missing, a block copied over another. Opening must fail with
//!   `Error::Corruption` naming the damaged file (and an offset no later than the damage), in
//!   `RecoveryMode::Strict` and in `TruncateAtCorruption` alike — there is no older state to fall
//!   back to (docs/DURABILITY.md §7) — or, for bytes no checksum covers, open with every step.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringlog_db::{Db, Error, IoChoice, RecoveryMode};
use ringlog_format::{
    decode_record, BlockHeader, BlockPos, Manifest, SegmentPos, BLOCK_HEADER_LEN,
    CHECKPOINT_FOOTER_LEN, CHECKPOINT_HEADER_LEN, SEGMENT_HEADER_LEN,
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
}

struct Layout {
    /// The checkpoint the MANIFEST names, if any: its path and its blocks' (start, end).
    ckpt: Option<(PathBuf, Vec<(u64, u64)>)>,
    /// Segment paths in id order.
    segs: Vec<PathBuf>,
    recs: Vec<Rec>,
    /// Batches as (segment index, start, end), in log order.
    batches: Vec<(usize, u64, u64)>,
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
        .filter_map(|p| {
            let n = p.file_name()?.to_str()?;
            let d = n.strip_suffix(".log")?;
            (d.len() == 20 && d.bytes().all(|b| b.is_ascii_digit()))
                .then(|| (d.parse().ok(), p.clone()))
                .and_then(|(id, p)| Some((id?, p)))
        })
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
    Some(Layout {
        ckpt,
        segs: segs.into_iter().map(|(_, p)| p).collect(),
        recs,
        batches,
    })
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
}

fn damage(img: &Image, lay: &Layout, cat: usize, r: &mut Rng) -> Option<Case> {
    let mut img = img.clone();
    let (last_seg, last_start, last_end) = *lay.batches.last()?;
    match cat {
        0 => {
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
            })
        }
        1 => {
            if lay.batches.len() < 2 {
                return None;
            }
            if r.chance(150) {
                // A flipped bit in a segment header.
                let s = r.below(lay.segs.len() as u64) as usize;
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
            })
        }
        2 => {
            let path = lay.segs[last_seg].clone();
            let data = Arc::make_mut(img.files.get_mut(&path)?);
            let at = r.range(last_start, last_end - 1);
            data[at as usize] ^= 1 << r.below(8);
            Some(Case {
                img,
                kind: "bit flip in the last batch",
                file: path,
                range: (at, at + 1),
                batch_start: last_start,
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
            })
        }
    }
}

fn open(setup: &Setup, img: &Image, mode: RecoveryMode) -> Result<Db, Error> {
    // Damage is classified on bytes read as from a real disk too: streamed in pieces by
    // recovery's reader thread (every other seed), or shared.
    let streamed = setup.wl.cfg.seed % 2 == 1;
    let sim = SimVfs::from_image(img, false, Duration::ZERO).streamed_reads(streamed);
    let mut o = setup.options(Some(Arc::new(sim)), IoChoice::Auto);
    o.recovery = mode;
    Db::open(Setup::sim_dir(), o)
}

/// What one case led to: `Ok(label)` or a violation.
fn evaluate(
    setup: &Setup,
    hist: &History,
    pre: &Prefixes,
    full: Bounds,
    cat: usize,
    case: &Case,
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
                    intact(&db).map_err(|v| silent_loss(case, "", &v.detail))?;
                    return Ok("harmless (no checksummed byte changed)");
                }
            };
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
            let (st, aliens) =
                observe(&db, &setup.wl).map_err(|e| Violation::new("I5", format!("scan: {e}")))?;
            // An explicit cut may lose acknowledged commits, and with them the leases that kept
            // their LSNs from being handed out again.
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
    let walked = case
        .img
        .save(&root)
        .map_err(|e| format!("saving the image: {e}"))
        .and_then(|()| {
            let l = logwalk::list(&dir).map_err(|e| format!("{e:?}"))?;
            let w = logwalk::walk(&l, |_| Ok(())).map_err(|e| format!("{e:?}"))?;
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

fn mix_seed(seed: u64, cat: usize, k: u64) -> u64 {
    crate::rng::mix(&[seed, cat as u64, k, 0x4E9A])
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
    let finished = sim.snapshot();
    let state_of =
        |img: &Image, what: &str| -> Result<(State, Vec<crate::workload::Alien>, u64), Violation> {
            let db = open(setup, img, RecoveryMode::Strict)
                .map_err(|e| fail(format!("{what} does not open: {e}")))?;
            let (st, aliens) =
                observe(&db, &setup.wl).map_err(|e| fail(format!("{what}: scan: {e}")))?;
            Ok((st, aliens, db.last_lsn()))
        };
    let expected = state_of(&finished, "the repaired database")?;
    {
        let db = open(setup, &case.img, RecoveryMode::TruncateAtCorruption)
            .map_err(|e| fail(format!("TruncateAtCorruption refused it: {e}")))?;
        let (st, aliens) = observe(&db, &setup.wl).map_err(|e| fail(format!("scan: {e}")))?;
        if (st, aliens, db.last_lsn()) != expected {
            return Err(fail(
                "the repaired database holds another state than a truncating recovery".into(),
            ));
        }
    }
    let cut_name = dir.join(format!("{:020}.log", plan.segment));
    let mut states = 0u64;
    let mut bad = None;
    crate::crash::for_each_state(
        &case.img,
        &trace,
        crate::crash::TearModel::Sector,
        4,
        seed,
        |pos, idx, img| {
            if bad.is_some() {
                return;
            }
            states += 1;
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
                let kept = |f: &str, bytes: &[u8]| {
                    img.files.get(&side.join(f)).is_some_and(|b| **b == *bytes)
                };
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
                    bad = Some(fail(format!(
                        "{at}: {name} changed or went without a durable copy of what it lost"
                    )));
                    return;
                }
            }
            // Running it again finishes it.
            let again = SimVfs::from_image(&img, false, Duration::ZERO);
            let side2 = dir.with_file_name("db.repair2");
            match repair::plan_tail(&again, dir) {
                Ok(Some(p)) => {
                    if let Err(e) = repair::execute(&again, dir, &side2, &p) {
                        bad = Some(fail(format!("{at}: the repair run again failed: {e:?}")));
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    bad = Some(fail(format!("{at}: planning again failed: {e:?}")));
                    return;
                }
            }
            match state_of(&again.snapshot(), &format!("{at}, then repaired again")) {
                Ok(s) if s == expected => {}
                Ok(_) => {
                    bad = Some(fail(format!(
                        "{at}: repaired again, it holds another state than the uncrashed repair"
                    )))
                }
                Err(v) => bad = Some(v),
            }
        },
    );
    if let Some(v) = bad {
        return Err(v);
    }
    Ok((
        "repair: crashed at every step, no byte lost, finished by a second run",
        states,
    ))
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
    let db = match Db::open(
        Setup::sim_dir(),
        setup.options(Some(Arc::new(sim.clone())), IoChoice::Auto),
    ) {
        Ok(db) => db,
        Err(e) => {
            sum.notes
                .push(format!("seed {seed}: the database did not open: {e}"));
            return;
        }
    };
    let session = Session::new();
    for step in 1..=opts.steps {
        let Ok(lsn) = setup.wl.execute(&db, 1, step, &session) else {
            sum.notes.push(format!("seed {seed}: step {step} failed"));
            return;
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
    session.drop_snapshots();
    if db.close().is_err() {
        sum.notes.push(format!("seed {seed}: close failed"));
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
    let Some(lay) = layout(&img) else {
        sum.notes
            .push(format!("seed {seed}: could not parse the image"));
        return;
    };
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
            let verdict = evaluate(&setup, &hist, &pre, full, cat, &case)
                .and_then(|label| tool_agrees(&setup, &case).map(|tool| (label, tool)))
                .and_then(|(label, tool)| {
                    // One log case in four: `ringlog repair` crashed at every step.
                    let repaired = if cat < 3 && k % 4 == 0 {
                        Some(repair_crashes(&setup, &case, mix_seed(seed, cat, k))?)
                    } else {
                        None
                    };
                    Ok((label, tool, repaired))
                });
            match verdict {
                Ok((label, tool, repaired)) => {
                    *sum.checks.entry(tool).or_default() += 1;
                    if let Some((what, states)) = repaired {
                        *sum.checks.entry(what).or_default() += 1;
                        *sum.checks.entry("repair crash states checked").or_default() += states;
                    }
                    if label.contains("known limit") && sum.notes.len() < 3 {
                        sum.notes.push(format!(
                            "{} in {} bytes [{}, {}) lost acknowledged steps without an error (known limit); reproduce: ringlog-crash corrupt --durability {mode} --steps {} --replay {seed}:{}.{k}:0",
                            case.kind,
                            name(&case.file),
                            case.range.0,
                            case.range.1,
                            opts.steps,
                            cat + 1
                        ));
                    }
                    sum.count(&format!("{cat_name}: {label}"));
                    *sum.covered.entry(case.kind.to_string()).or_default() += 1;
                }
                Err(v) => {
                    sum.count(&format!("{cat_name}: VIOLATION"));
                    let image = opts.keep.as_ref().and_then(|dir| {
                        let d = dir.join(format!("corrupt-seed{seed}-{}-{k}", cat + 1));
                        case.img.save(&d).ok().map(|_| d)
                    });
                    sum.failures.push(Failure {
                        mode: "corrupt".into(),
                        seed,
                        model: "durable image".into(),
                        point: format!("{}.{k}", cat + 1),
                        state: 0,
                        violation: v,
                        trace: vec![
                            setup.describe(),
                            format!(
                                "{cat_name} damage: {} in {} bytes [{}, {})",
                                case.kind,
                                name(&case.file),
                                case.range.0,
                                case.range.1
                            ),
                        ],
                        image,
                        replay: format!(
                            "ringlog-crash corrupt --durability {mode} --steps {} --replay {seed}:{}.{k}:0",
                            opts.steps,
                            cat + 1
                        ),
                    });
                    if opts.stop_on_first {
                        return;
                    }
                }
            }
        }
    }
}
