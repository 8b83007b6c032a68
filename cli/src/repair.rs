//! `ringlog repair`: cuts the log at a place, explicitly, keeping a copy of every byte removed.
//!
//! Planning ([`plan_tail`], [`plan_at`]) reads the log; [`execute`] makes the cut. Both work
//! through a [`Vfs`], so that the crash-test runner can crash a repair at every step on its
//! simulated disk and check that no byte is lost and that running the repair again finishes it.

use std::io::Write;
use std::path::{Path, PathBuf};

use ringlog_format::SEGMENT_HEADER_LEN;
use ringlog_uring::{OpenOptions, Vfs};
use serde::Serialize;

use crate::args::RepairArgs;
use crate::commands::print_json;
use crate::logwalk::{self, read_all, segment_name, Damage, DamageKind};
use crate::{Failure, Outcome};

/// Where the log is cut, and what goes.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// The segment cut (its bytes from `offset` on are removed; all of it when `offset` is
    /// inside its header).
    pub segment: u64,
    /// Where, in that segment's file.
    pub offset: u64,
    /// Why there.
    pub why: String,
    /// Every segment removed whole: the cut segment when the cut is inside its header, then the
    /// later ones (the text output's "segments out").
    pub segments_removed: Vec<u64>,
    /// The last LSN the database keeps: the highest of the LSNs logged before the cut (the kept
    /// records', and the `base_lsn` of the cut segment's header, the last LSN logged before that
    /// segment) and the checkpoint's. No LSN at or below it is removed; every LSN above it that
    /// the bytes cut held is.
    pub last_kept_lsn: u64,
    /// The LSNs removed (first, last), when a valid transaction record above
    /// [`Plan::last_kept_lsn`] was read among the bytes cut: every LSN above the last one kept,
    /// up to the highest one read. (After damage the rest of its segment is not decoded
    /// ([`Plan::damage_cut`]), so the lowest LSN read there says nothing: the transactions between
    /// the last one kept and it are removed too; and when nothing is read after the damage, the
    /// highest LSN removed is not known.)
    pub lsns_removed: Option<(u64, u64)>,
    /// The LSNs of the valid transaction records read among the bytes cut (first, last), if
    /// any — also those the checkpoint holds, which the cut does not lose.
    pub lsns_cut: Option<(u64, u64)>,
    /// The damage among the bytes cut, in log order (a torn tail, or corruption): the bytes of
    /// its segment after each were not decoded, so the LSNs they held are not known.
    pub damage_cut: Vec<Damage>,
    /// The checkpoint's LSN when the checkpoint is above the cut: its LSN was logged after the
    /// cut's place (the LSNs logged before the cut are all below it). Its state stays.
    pub checkpoint_above_cut: Option<u64>,
}

/// What [`execute`] did.
#[derive(Clone, Debug, Serialize)]
pub struct Executed {
    /// Bytes removed from the log (the cut segment's rest and the later segments).
    pub bytes_cut: u64,
    /// The files written to the side directory, by name.
    pub side_files: Vec<String>,
}

#[derive(Serialize)]
struct Report<'a> {
    dir: String,
    #[serde(flatten)]
    plan: &'a Plan,
    #[serde(flatten)]
    done: &'a Executed,
    side_dir: String,
}

fn parse_at(s: &str) -> Result<(u64, u64), Failure> {
    let bad = || Failure::Usage(format!("--truncate-at {s:?}: expected SEGMENT:OFFSET"));
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

fn io(what: &str, p: &Path, e: std::io::Error) -> Failure {
    Failure::Found(format!("{what} {}: {e}", p.display()))
}

/// A record's place: (segment, offset, end, LSN or 0 for a record of no transaction).
type Place = (u64, u64, u64, u64);

/// The listing and the walk of the log of `dir`, and its records' places.
fn records(
    vfs: &dyn Vfs,
    dir: &Path,
) -> Result<(logwalk::Listing, logwalk::Walk, Vec<Place>), Failure> {
    let mut l = logwalk::list_in(vfs, dir)?;
    // A repair runs holding the writer's lock itself: no write is in flight.
    l.writer_active = false;
    let mut recs = Vec::new();
    let walk = logwalk::walk_in(vfs, &l, |r| {
        let lsn = if r.rec.kind.in_transaction() {
            r.rec.lsn
        } else {
            0
        };
        recs.push((
            r.segment,
            r.rec.offset,
            r.rec.offset + r.rec.encoded_len() as u64,
            lsn,
        ));
        Ok(())
    })?;
    Ok((l, walk, recs))
}

fn make_plan(
    l: &logwalk::Listing,
    walk: &logwalk::Walk,
    recs: &[Place],
    segment: u64,
    offset: u64,
    why: String,
) -> Result<Plan, Failure> {
    let m = l.manifest()?;
    if segment < m.first_segment {
        return Err(Failure::Usage(format!(
            "segment {segment} is below the MANIFEST's first needed segment {}: the checkpoint holds it",
            m.first_segment
        )));
    }
    let cut = |seg: u64, off: u64| (seg == segment && off >= offset) || seg > segment;
    let removed: Vec<u64> = recs
        .iter()
        .filter(|r| cut(r.0, r.1))
        .map(|r| r.3)
        .filter(|&lsn| lsn != 0)
        .collect();
    // The place of the cut in LSNs: every LSN logged before it. The kept records' LSNs, and
    // each kept segment header's `base_lsn` (the last LSN logged before that segment, whether
    // in an earlier segment or in the checkpoint): when the log keeps no transaction record
    // (a cut in the first segment's first batch, or at its header) the header still says
    // which LSNs came before it.
    let logged_before = recs
        .iter()
        .filter(|r| r.0 < segment || (r.0 == segment && r.2 <= offset))
        .map(|r| r.3)
        .chain(
            l.segments
                .iter()
                .filter(|s| s.id <= segment)
                .filter_map(|s| {
                    s.header
                        .as_ref()
                        .ok()
                        .filter(|h| h.segment_id == s.id && h.epoch == m.epoch)
                })
                .map(|h| h.base_lsn),
        )
        .max()
        .unwrap_or(0);
    let last_kept = logged_before.max(m.checkpoint_lsn);
    let whole = offset < SEGMENT_HEADER_LEN as u64 && l.segments.iter().any(|s| s.id == segment);
    Ok(Plan {
        segment,
        offset,
        why,
        segments_removed: l
            .segments
            .iter()
            .map(|s| s.id)
            .filter(|&id| id > segment || whole && id == segment)
            .collect(),
        last_kept_lsn: last_kept,
        lsns_removed: removed
            .iter()
            .max()
            .map(|&hi| (last_kept + 1, hi))
            .filter(|&(lo, hi)| lo <= hi),
        lsns_cut: removed
            .iter()
            .min()
            .copied()
            .zip(removed.iter().max().copied()),
        damage_cut: walk
            .damage
            .iter()
            .filter(|d| d.kind != DamageKind::InFlight && d.bytes > 0 && cut(d.segment, d.offset))
            .cloned()
            .collect(),
        // Above the cut when its LSN was logged after the cut's place: not by the LSNs kept
        // alone, which may be none (nothing of the log kept: every LSN would look above it).
        checkpoint_above_cut: (m.checkpoint_id != 0 && m.checkpoint_lsn > logged_before)
            .then_some(m.checkpoint_lsn),
    })
}

/// The cut `--truncate-tail` makes: at the first damage `verify` finds (`None`: no damage).
pub fn plan_tail(vfs: &dyn Vfs, dir: &Path) -> Result<Option<Plan>, Failure> {
    plan_tail_walked(vfs, dir).map(|(plan, _)| plan)
}

/// [`plan_tail`], and the walk it made (its damage in the segments kept below the log).
fn plan_tail_walked(vfs: &dyn Vfs, dir: &Path) -> Result<(Option<Plan>, logwalk::Walk), Failure> {
    let (l, walk, recs) = records(vfs, dir)?;
    let Some(d) = walk.first_problem() else {
        return Ok((None, walk));
    };
    let why = format!(
        "{} at segment {} offset {}: {}",
        match d.kind {
            DamageKind::TornTail => "torn tail",
            _ => "corruption",
        },
        d.segment,
        d.offset,
        d.reason
    );
    let plan = make_plan(&l, &walk, &recs, d.segment, d.offset, why)?;
    Ok((Some(plan), walk))
}

/// The cut `--truncate-at SEGMENT:OFFSET` makes, where a valid record of `segment` ends.
pub fn plan_at(vfs: &dyn Vfs, dir: &Path, segment: u64, offset: u64) -> Result<Plan, Failure> {
    plan_at_walked(vfs, dir, segment, offset).map(|(plan, _)| plan)
}

/// [`plan_at`], and the walk it made.
fn plan_at_walked(
    vfs: &dyn Vfs,
    dir: &Path,
    segment: u64,
    offset: u64,
) -> Result<(Plan, logwalk::Walk), Failure> {
    let (l, walk, recs) = records(vfs, dir)?;
    let Some(s) = l.segments.iter().find(|s| s.id == segment) else {
        return Err(Failure::Usage(format!(
            "segment {segment} is not part of the log of {} (its segments: {:?})",
            dir.display(),
            l.segments.iter().map(|s| s.id).collect::<Vec<_>>()
        )));
    };
    let boundary = offset == SEGMENT_HEADER_LEN as u64
        || offset == 0
        || recs
            .iter()
            .any(|&(seg, _, end, _)| seg == segment && end == offset);
    if !boundary || offset > s.size {
        return Err(Failure::Usage(format!(
            "offset {offset} is not where a valid record of segment {segment} ends (`ringlog dump-log` lists each record's offset; a record ends where the next begins)"
        )));
    }
    // Damage before the cut stays, and recovery refuses the log for it: the repair would cut
    // acknowledged data and leave a database that does not open (found in review).
    if let Some(d) = walk
        .first_problem()
        .filter(|d| (d.segment, d.offset) < (segment, offset))
    {
        return Err(Failure::Usage(format!(
            "damage at segment {} offset {} ({}) comes before the cut at {segment}:{offset}: \
             the database would still not open; cut at or before it (`--truncate-tail` cuts at \
             the first damage)",
            d.segment, d.offset, d.reason
        )));
    }
    let plan = make_plan(
        &l,
        &walk,
        &recs,
        segment,
        offset,
        format!("--truncate-at {segment}:{offset}"),
    )?;
    Ok((plan, walk))
}

/// Why the damage in the segments kept below the log (for the values a checkpoint refers to)
/// is beyond `repair`, naming each damaged segment and the offset from which its values may be
/// unreadable (`None`: there is none).
fn kept_damage_text(walk: &logwalk::Walk) -> Option<String> {
    if walk.kept_damage.is_empty() {
        return None;
    }
    let places: Vec<String> = walk
        .kept_damage
        .iter()
        .map(|d| {
            format!(
                "segment {} ({}) at offset {}: {}; the values it stores from offset {} on ({} \
                 bytes the walk could not decode) may be unreadable",
                d.segment,
                d.file.display(),
                d.offset,
                d.reason,
                d.offset,
                d.bytes
            )
        })
        .collect();
    Some(format!(
        "a value segment is damaged: {}. repair cuts only the log and cannot mend a segment kept \
         for a checkpoint's values: restore the database from a backup (`ringlog verify --deep` \
         reads every value)",
        places.join("; ")
    ))
}

/// Makes the cut of `plan` in `dir`, keeping every byte it removes in `side` (a directory it
/// creates; it must not exist). In this order, so that a crash at any point loses no byte and
/// leaves a log that running the repair again finishes: (1) the copies — the cut segment's bytes
/// from the offset on as `<segment>.from-<offset>`, each later segment whole, `REPAIR.json` —
/// each synced, then `side` and its parent synced; (2) the later segments removed, the last
/// first, each removal made durable before the next (the log stays contiguous); (3) the cut
/// segment truncated at the offset (removed whole when the offset is inside its header) and
/// synced.
pub fn execute(vfs: &dyn Vfs, dir: &Path, side: &Path, plan: &Plan) -> Result<Executed, Failure> {
    if vfs
        .kind_of(side)
        .map_err(|e| io("stat", side, e))?
        .is_some()
    {
        return Err(Failure::Usage(format!(
            "the side directory {} exists already",
            side.display()
        )));
    }
    // The directories this creates: each one's entry is made durable before anything is cut.
    let created: Vec<PathBuf> = side
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && matches!(vfs.kind_of(a), Ok(None)))
        .map(Path::to_path_buf)
        .collect();
    vfs.create_dir_all(side)
        .map_err(|e| io("create side directory", side, e))?;
    let mut done = Executed {
        bytes_cut: 0,
        side_files: Vec::new(),
    };
    let seg_path = dir.join(segment_name(plan.segment));
    let exists = vfs
        .kind_of(&seg_path)
        .map_err(|e| io("stat", &seg_path, e))?
        .is_some();
    // The plan removes the cut segment whole when the cut is inside its header.
    let whole = plan.segments_removed.first() == Some(&plan.segment);
    let mut truncate = None;
    if exists && !whole {
        let bytes = read_all(vfs, &seg_path).map_err(|e| io("read", &seg_path, e))?;
        let from = (plan.offset as usize).min(bytes.len());
        let name = format!("{}.from-{}", segment_name(plan.segment), plan.offset);
        write_synced(vfs, &side.join(&name), &bytes[from..])?;
        done.bytes_cut += (bytes.len() - from) as u64;
        done.side_files.push(name);
        truncate = Some(seg_path.clone());
    }
    let remove: Vec<PathBuf> = plan
        .segments_removed
        .iter()
        .map(|&id| dir.join(segment_name(id)))
        .collect();
    for p in &remove {
        let name = p
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let bytes = read_all(vfs, p).map_err(|e| io("read", p, e))?;
        write_synced(vfs, &side.join(&name), &bytes)?;
        done.bytes_cut += bytes.len() as u64;
        done.side_files.push(name);
    }
    let note = serde_json::to_string_pretty(&serde_json::json!({ "plan": plan, "done": &done }))
        .map_err(|e| Failure::Found(e.to_string()))?;
    write_synced(vfs, &side.join("REPAIR.json"), note.as_bytes())?;
    done.side_files.push("REPAIR.json".into());
    let late = logwalk::planted::repair_syncs_copies_late();
    if !late {
        sync_side(vfs, side)?;
        for d in created.iter().skip(1) {
            if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
                vfs.sync_dir(parent)
                    .map_err(|e| io("sync directory", parent, e))?;
            }
        }
    }
    // The later segments, the last first, each removal durable before the next: a power loss
    // could otherwise keep a later removal and drop an earlier one, leaving a hole recovery
    // refuses.
    for p in remove.iter().rev() {
        vfs.remove_file(p).map_err(|e| io("remove", p, e))?;
        vfs.sync_dir(dir)
            .map_err(|e| io("sync directory", dir, e))?;
    }
    if let Some(p) = truncate {
        let f = vfs
            .open(
                &p,
                OpenOptions {
                    write: true,
                    create: false,
                    direct: false,
                },
            )
            .map_err(|e| io("open", &p, e))?;
        f.set_len(plan.offset).map_err(|e| io("truncate", &p, e))?;
        f.sync_all().map_err(|e| io("sync", &p, e))?;
    }
    if late {
        for name in &done.side_files {
            let p = side.join(name);
            vfs.open(&p, OpenOptions::default())
                .and_then(|f| f.sync_all())
                .map_err(|e| io("sync", &p, e))?;
        }
        sync_side(vfs, side)?;
    }
    Ok(done)
}

/// Makes the side directory's entries, and its own entry, durable.
fn sync_side(vfs: &dyn Vfs, side: &Path) -> Result<(), Failure> {
    vfs.sync_dir(side)
        .map_err(|e| io("sync directory", side, e))?;
    if let Some(parent) = side.parent().filter(|p| !p.as_os_str().is_empty()) {
        vfs.sync_dir(parent)
            .map_err(|e| io("sync directory", parent, e))?;
    }
    Ok(())
}

/// The side directory `repair` makes when none is given: `<name>.repair-<unix time>` beside
/// the database directory, in its parent. `dir` is resolved to its real path first: `.`, `..`
/// or a path ending in them names no parent (`.`'s "parent" is the empty path, the current
/// directory, which is the database itself), and the copies must never go inside the database.
pub fn default_side_dir(dir: &Path, unix_secs: u64) -> Result<PathBuf, Failure> {
    let real = std::fs::canonicalize(dir).map_err(|e| io("resolve", dir, e))?;
    match (real.parent(), real.file_name()) {
        (Some(parent), Some(name)) => {
            Ok(parent.join(format!("{}.repair-{unix_secs}", name.to_string_lossy())))
        }
        _ => Err(Failure::Usage(format!(
            "{} has no parent directory to put the side directory in: give --side-dir",
            real.display()
        ))),
    }
}

/// `ringlog repair`.
pub fn repair(a: &RepairArgs, json: bool, out: &mut dyn Write) -> Outcome {
    let vfs = ringlog_uring::PosixVfs::default();
    // Is it a database at all (a usage error otherwise), before anything is created.
    let listing = logwalk::list_in(&vfs, &a.dir)?;
    // The writer's lock, held until the repair is done: no writer opens meanwhile.
    let _lock = match vfs.lock(&a.dir.join(logwalk::LOCK)) {
        Ok(lock) => lock,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            return Err(Failure::Found(format!(
                "{} is open by a writer: close it before repairing",
                a.dir.display()
            )))
        }
        Err(e) => return Err(io("lock", &a.dir.join(logwalk::LOCK), e)),
    };
    let (plan, walk) = match &a.truncate_at {
        Some(at) => {
            let (segment, offset) = parse_at(at)?;
            plan_at_walked(&vfs, &a.dir, segment, offset)?
        }
        None => match plan_tail_walked(&vfs, &a.dir)? {
            (Some(p), walk) => (p, walk),
            (None, walk) => {
                // Only the log can be cut: a checkpoint recovery refuses, or a damaged segment
                // kept for a checkpoint's values, is not mended here.
                if let Some(why) = beyond_the_log(&vfs, &listing, &walk) {
                    return Err(Failure::Found(format!(
                        "the log has no damage (nothing cut), but {why}"
                    )));
                }
                let msg = "the log has no damage: nothing to cut (repair cuts only the log; \
                           `ringlog verify` also checks the checkpoint)";
                if json {
                    print_json(
                        out,
                        &serde_json::json!({ "dir": a.dir.display().to_string(), "cut": false, "why": msg }),
                    )?;
                } else {
                    writeln!(out, "{msg}")?;
                }
                return Ok(());
            }
        },
    };
    let side = match &a.side_dir {
        Some(d) => d.clone(),
        None => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            default_side_dir(&a.dir, secs)?
        }
    };
    let done = execute(&vfs, &a.dir, &side, &plan)?;
    let r = Report {
        dir: a.dir.display().to_string(),
        plan: &plan,
        done: &done,
        side_dir: side.display().to_string(),
    };
    if json {
        print_json(out, &r)?;
    } else {
        print_text(&r, out)?;
    }
    // The cut is made; damage the cut cannot reach stays, and the database with it.
    match beyond_the_log(&vfs, &listing, &walk) {
        Some(why) => Err(Failure::Found(format!("the log was cut, but {why}"))),
        None => Ok(()),
    }
}

/// The damage `repair` cannot cut, as a clause (`None`: none): a checkpoint file recovery
/// refuses (missing, or not of the size the MANIFEST records), and damage in the segments kept
/// below the log for a checkpoint's values.
fn beyond_the_log(vfs: &dyn Vfs, l: &logwalk::Listing, walk: &logwalk::Walk) -> Option<String> {
    let ckpt = l
        .manifest()
        .ok()
        .and_then(|m| crate::commands::CheckpointFacts::of(vfs, &l.dir, m, false));
    let ckpt = ckpt.as_ref().and_then(|c| {
        c.problem.as_ref().map(|why| {
            format!(
                "the checkpoint {}: {why}; repair cuts only the log and cannot mend a checkpoint \
                 (restore the database from a backup)",
                c.file
            )
        })
    });
    let all: Vec<String> = ckpt.into_iter().chain(kept_damage_text(walk)).collect();
    if !all.is_empty() {
        return Some(all.join("; and "));
    }
    // What only the open recovery makes shows: a segment the checkpoint refers to for values
    // missing, damage inside the checkpoint's blocks (a review found repair answering "no
    // damage" with status 0 for a database `verify` reports unopenable). Read-only: nothing is
    // written; it waits out its retries, as this repair holds the directory's lock.
    match ringlog_db::Db::open_read_only(&l.dir, ringlog_db::Options::default()) {
        Ok(db) => {
            let _ = db.close();
            None
        }
        Err(e) => Some(format!(
            "the database does not open: {}; repair cuts only the log (restore the database \
             from a backup)",
            crate::commands::error_text(&e)
        )),
    }
}

/// What a repair did, for people.
fn print_text(r: &Report<'_>, out: &mut dyn Write) -> Outcome {
    let (plan, done) = (r.plan, r.done);
    writeln!(out, "repaired {}", r.dir)?;
    writeln!(
        out,
        "cut at        segment {} offset {} ({})",
        plan.segment, plan.offset, plan.why
    )?;
    writeln!(out, "bytes cut     {}", done.bytes_cut)?;
    if !plan.segments_removed.is_empty() {
        writeln!(out, "segments out  {:?}", plan.segments_removed)?;
    }
    writeln!(
        out,
        "last kept     LSN {} (nothing at or below it is removed)",
        plan.last_kept_lsn
    )?;
    writeln!(out, "LSNs removed  {}", lsns_removed_text(plan))?;
    if let Some(c) = plan.checkpoint_above_cut {
        writeln!(
            out,
            "note          the checkpoint holds the state at LSN {c}, past the cut: it stays in force"
        )?;
    }
    writeln!(
        out,
        "copies in     {} ({})",
        r.side_dir,
        done.side_files.join(", ")
    )?;
    Ok(())
}

/// Which LSNs a cut removes, as far as the walk could read them: the text's "LSNs removed".
fn lsns_removed_text(plan: &Plan) -> String {
    let kept = plan.last_kept_lsn;
    // Corruption among the bytes cut: the rest of its segment was not decoded.
    let undecoded = plan
        .damage_cut
        .iter()
        .find(|d| d.kind == DamageKind::Corruption)
        .map(|d| format!("segment {} offset {}", d.segment, d.offset));
    match (plan.lsns_removed, plan.lsns_cut, undecoded) {
        (Some((a, b)), _, None) => {
            format!("{a}..={b} (every transaction above {kept}, the last one kept)")
        }
        (Some((a, b)), _, Some(at)) => format!(
            "{a}..={b} read (every transaction above {kept}, the last one kept), and any above \
             {b} that the bytes after the corruption at {at} held: they were not decoded"
        ),
        (None, _, Some(at)) => format!(
            "every LSN above {kept} (the last one kept) that the bytes cut held: how many is not \
             known, the bytes after the corruption at {at} were not decoded"
        ),
        (None, Some((a, b)), None) => {
            format!("none beyond the checkpoint (the records of LSNs {a}..={b} cut are in it)")
        }
        (None, None, None) if !plan.damage_cut.is_empty() => {
            "none that recovery would keep: the bytes cut are a torn tail (a write a crash cut \
             short; recovery drops it too)"
                .into()
        }
        (None, None, None) => "none (no transaction record among the bytes cut)".into(),
    }
}

fn write_synced(vfs: &dyn Vfs, p: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let late = logwalk::planted::repair_syncs_copies_late();
    if vfs.kind_of(p).map_err(|e| io("stat", p, e))?.is_some() {
        return Err(Failure::Found(format!("{} exists already", p.display())));
    }
    let f = vfs
        .open(
            p,
            OpenOptions {
                write: true,
                create: true,
                direct: false,
            },
        )
        .map_err(|e| io("create", p, e))?;
    f.write_all_at(bytes, 0).map_err(|e| io("write", p, e))?;
    if late {
        return Ok(());
    }
    f.sync_all().map_err(|e| io("sync", p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DIR given as `db/sub/..` (or `.`): no parent by its name; the side directory goes beside
    /// the directory it resolves to.
    #[test]
    fn the_default_side_directory_is_beside_the_real_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("db");
        std::fs::create_dir_all(db.join("sub")).unwrap();
        let real = std::fs::canonicalize(tmp.path()).unwrap();
        assert_eq!(
            default_side_dir(&db.join("sub").join(".."), 7).unwrap(),
            real.join("db.repair-7")
        );
        assert_eq!(
            default_side_dir(&db.join("."), 7).unwrap(),
            real.join("db.repair-7")
        );
        assert!(matches!(
            default_side_dir(Path::new("/"), 7),
            Err(Failure::Usage(_))
        ));
        assert!(default_side_dir(&tmp.path().join("missing"), 7).is_err());
    }

    #[test]
    fn parse_at_needs_both_numbers() {
        assert_eq!(parse_at("3:4096").unwrap(), (3, 4096));
        assert!(parse_at("3").is_err());
        assert!(parse_at("x:1").is_err());
        assert!(parse_at("1:-2").is_err());
    }
}
