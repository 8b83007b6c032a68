//! `ringlog repair`: cuts the log at a place, explicitly, keeping a copy of every byte removed.

use std::io::Write;
use std::path::{Path, PathBuf};

use ringlog_format::SEGMENT_HEADER_LEN;
use ringlog_uring::Vfs;
use serde::Serialize;

use crate::args::RepairArgs;
use crate::commands::print_json;
use crate::logwalk::{self, segment_name, DamageKind};
use crate::{Failure, Outcome};

#[derive(Serialize)]
struct Report {
    dir: String,
    /// Where the log was cut: segment id and offset.
    segment: u64,
    offset: u64,
    why: String,
    /// Bytes removed from the cut segment, and whole later segments moved out.
    bytes_cut: u64,
    segments_removed: Vec<u64>,
    /// LSNs of the valid transaction records removed (first, last), if any: of records read
    /// before the damage — after damage, the rest of its segment is not decoded.
    lsns_removed: Option<(u64, u64)>,
    side_dir: String,
    side_files: Vec<String>,
    /// The checkpoint's LSN when it is above the last LSN the log keeps (its state stays).
    checkpoint_above_cut: Option<u64>,
}

/// Where a cut goes.
struct Cut {
    segment: u64,
    offset: u64,
    why: String,
}

fn parse_at(s: &str) -> Result<(u64, u64), Failure> {
    let bad = || Failure::Usage(format!("--truncate-at {s:?}: expected SEGMENT:OFFSET"));
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

fn io(what: &str, p: &Path, e: std::io::Error) -> Failure {
    Failure::Found(format!("{what} {}: {e}", p.display()))
}

/// `ringlog repair`.
pub fn repair(a: &RepairArgs, json: bool, out: &mut dyn Write) -> Outcome {
    let l = logwalk::list(&a.dir)?;
    let m = *l.manifest()?;
    // The writer's lock, held until the repair is done: no writer opens meanwhile.
    let vfs = ringlog_uring::PosixVfs::default();
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
    // Record boundaries of every segment, and the LSNs at each record.
    let mut records: Vec<(u64, u64, u64, u64)> = Vec::new(); // segment, offset, end, lsn
    let walk = logwalk::walk(&l, |r| {
        let lsn = if r.rec.kind.in_transaction() {
            r.rec.lsn
        } else {
            0
        };
        records.push((
            r.segment,
            r.rec.offset,
            r.rec.offset + r.rec.encoded_len() as u64,
            lsn,
        ));
        Ok(())
    })?;
    let cut = if let Some(at) = &a.truncate_at {
        let (segment, offset) = parse_at(at)?;
        let Some(s) = l.segments.iter().find(|s| s.id == segment) else {
            return Err(Failure::Usage(format!(
                "segment {segment} is not part of the log of {} (its segments: {:?})",
                a.dir.display(),
                l.segments.iter().map(|s| s.id).collect::<Vec<_>>()
            )));
        };
        let boundary = offset == SEGMENT_HEADER_LEN as u64
            || offset == 0
            || records
                .iter()
                .any(|&(seg, _, end, _)| seg == segment && end == offset);
        if !boundary || offset > s.size {
            return Err(Failure::Usage(format!(
                "offset {offset} is not where a valid record of segment {segment} ends (`ringlog dump-log` lists each record's offset; a record ends where the next begins)"
            )));
        }
        Cut {
            segment,
            offset,
            why: format!("--truncate-at {segment}:{offset}"),
        }
    } else {
        match walk.first_problem() {
            None => {
                let msg = "the log has no damage: nothing to cut";
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
            Some(d) => Cut {
                segment: d.segment,
                offset: d.offset,
                why: format!(
                    "{} at segment {} offset {}: {}",
                    match d.kind {
                        DamageKind::TornTail => "torn tail",
                        _ => "corruption",
                    },
                    d.segment,
                    d.offset,
                    d.reason
                ),
            },
        }
    };
    if cut.segment < m.first_segment {
        return Err(Failure::Usage(format!(
            "segment {} is below the MANIFEST's first needed segment {}: the checkpoint holds it",
            cut.segment, m.first_segment
        )));
    }
    let side = match &a.side_dir {
        Some(d) => d.clone(),
        None => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let name = format!(
                "{}.repair-{secs}",
                a.dir
                    .file_name()
                    .map_or("ringlog".into(), |n| n.to_string_lossy().into_owned())
            );
            a.dir
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join(name)
        }
    };
    std::fs::create_dir(&side).map_err(|e| io("create side directory", &side, e))?;
    let mut side_files = Vec::new();
    let mut bytes_cut = 0u64;
    // 1. Copies of everything to be removed, durable before anything is removed.
    let seg_path = a.dir.join(segment_name(cut.segment));
    let mut truncate: Option<PathBuf> = None;
    let mut remove: Vec<(u64, PathBuf)> = Vec::new();
    if seg_path.exists() {
        if cut.offset < SEGMENT_HEADER_LEN as u64 {
            // Nothing of the segment is kept (its header is the damage): it goes whole.
            remove.push((cut.segment, seg_path.clone()));
        } else {
            let bytes = std::fs::read(&seg_path).map_err(|e| io("read", &seg_path, e))?;
            let from = (cut.offset as usize).min(bytes.len());
            let name = format!("{}.from-{}", segment_name(cut.segment), cut.offset);
            write_synced(&side.join(&name), &bytes[from..])?;
            bytes_cut += (bytes.len() - from) as u64;
            side_files.push(name);
            truncate = Some(seg_path.clone());
        }
    }
    for s in l.segments.iter().filter(|s| s.id > cut.segment) {
        remove.push((s.id, s.path.clone()));
    }
    for (id, p) in &remove {
        let name = segment_name(*id);
        let bytes = std::fs::read(p).map_err(|e| io("read", p, e))?;
        write_synced(&side.join(&name), &bytes)?;
        bytes_cut += bytes.len() as u64;
        side_files.push(name);
    }
    let removed: Vec<&(u64, u64, u64, u64)> = records
        .iter()
        .filter(|r| (r.0 == cut.segment && r.1 >= cut.offset) || r.0 > cut.segment)
        .filter(|r| r.3 != 0)
        .collect();
    let lsns_removed = match (
        removed.iter().map(|r| r.3).min(),
        removed.iter().map(|r| r.3).max(),
    ) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    };
    let kept_last = records
        .iter()
        .filter(|r| r.0 < cut.segment || (r.0 == cut.segment && r.2 <= cut.offset))
        .map(|r| r.3)
        .max()
        .unwrap_or(0);
    let mut r = Report {
        dir: a.dir.display().to_string(),
        segment: cut.segment,
        offset: cut.offset,
        why: cut.why,
        bytes_cut,
        segments_removed: remove.iter().map(|(id, _)| *id).collect(),
        lsns_removed,
        side_dir: side.display().to_string(),
        side_files,
        checkpoint_above_cut: (m.checkpoint_id != 0 && m.checkpoint_lsn > kept_last)
            .then_some(m.checkpoint_lsn),
    };
    let note = serde_json::to_string_pretty(&r).map_err(|e| Failure::Found(e.to_string()))?;
    write_synced(&side.join("REPAIR.json"), note.as_bytes())?;
    r.side_files.push("REPAIR.json".into());
    sync_dir(&side)?;
    if let Some(parent) = side.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    // 2. Later segments go, the last first, each removal durable before the next: a crash
    // meanwhile leaves a contiguous log (a power loss could otherwise keep a later removal and
    // drop an earlier one, leaving a hole recovery refuses).
    for (_, p) in remove.iter().rev() {
        std::fs::remove_file(p).map_err(|e| io("remove", p, e))?;
        sync_dir(&a.dir)?;
    }
    // 3. The cut itself.
    if let Some(p) = truncate {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .map_err(|e| io("open", &p, e))?;
        f.set_len(cut.offset).map_err(|e| io("truncate", &p, e))?;
        f.sync_all().map_err(|e| io("sync", &p, e))?;
    }
    if json {
        return print_json(out, &r);
    }
    writeln!(out, "repaired {}", r.dir)?;
    writeln!(
        out,
        "cut at        segment {} offset {} ({})",
        r.segment, r.offset, r.why
    )?;
    writeln!(out, "bytes cut     {}", r.bytes_cut)?;
    if !r.segments_removed.is_empty() {
        writeln!(out, "segments out  {:?}", r.segments_removed)?;
    }
    match r.lsns_removed {
        Some((a, b)) => writeln!(
            out,
            "LSNs removed  {a}..={b} (records of these transactions)"
        )?,
        None => writeln!(
            out,
            "LSNs removed  none (no valid transaction record was cut)"
        )?,
    }
    if let Some(c) = r.checkpoint_above_cut {
        writeln!(
            out,
            "note          the checkpoint holds the state at LSN {c}, past the cut: it stays in force"
        )?;
    }
    writeln!(
        out,
        "copies in     {} ({})",
        r.side_dir,
        r.side_files.join(", ")
    )?;
    Ok(())
}

fn write_synced(p: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(p)
        .map_err(|e| io("create", p, e))?;
    f.write_all(bytes).map_err(|e| io("write", p, e))?;
    f.sync_all().map_err(|e| io("sync", p, e))
}

fn sync_dir(p: &Path) -> Result<(), Failure> {
    std::fs::File::open(p)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("sync directory", p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_at_needs_both_numbers() {
        assert_eq!(parse_at("3:4096").unwrap(), (3, 4096));
        assert!(parse_at("3").is_err());
        assert!(parse_at("x:1").is_err());
        assert!(parse_at("1:-2").is_err());
    }
}
