//! The read-only commands: inspect, verify, dump-log, get, scan, history, runs, stats.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Bound;
use std::path::Path;

use ringlog_db::{Db, Error, Options};
use ringlog_format::{Manifest, RecordKind};
use ringlog_uring::{OpenOptions, Vfs};
use serde::Serialize;

use crate::args::{DirArgs, DumpArgs, GetArgs, HistoryArgs, ScanArgs, VerifyArgs};
use crate::logwalk::{self, Damage, DamageKind, SegSummary};
use crate::{Failure, Outcome};

/// Writes `v` as pretty JSON and a newline.
pub fn print_json<T: Serialize>(out: &mut dyn Write, v: &T) -> Outcome {
    serde_json::to_writer_pretty(&mut *out, v).map_err(|e| Failure::Found(e.to_string()))?;
    writeln!(out)?;
    Ok(())
}

/// Opens `dir` read-only (no lock, nothing written); engine errors become failures: a path
/// that is no database is a usage error, anything else a problem found.
pub fn open(dir: &Path) -> Result<Db, Failure> {
    Db::open_read_only(dir, Options::default()).map_err(|e| open_failure(dir, e))
}

fn open_failure(dir: &Path, e: Error) -> Failure {
    match e {
        Error::NotADatabase(_) | Error::NotADirectory(_) => Failure::Usage(e.to_string()),
        Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Failure::Usage(format!("{}: {e}", dir.display()))
        }
        e => Failure::Found(format!("opening {}: {}", dir.display(), error_text(&e))),
    }
}

pub(crate) fn failed(e: Error) -> Failure {
    Failure::Found(error_text(&e))
}

/// An engine error as the tool reports it. The engine reports damage of any file it reads as
/// "corruption in FILE" ([`Error::Corruption`]); the tool names what the MANIFEST's and a
/// checkpoint file's damage is damage of ("MANIFEST corruption", "checkpoint corruption"), as
/// its own walk of the log names the log's.
pub(crate) fn error_text(e: &Error) -> String {
    if let Error::Corruption {
        file,
        offset,
        reason,
    } = e
    {
        let name = file.file_name().map(|n| n.to_string_lossy());
        let what = match name.as_deref() {
            Some(logwalk::MANIFEST) => Some("MANIFEST corruption"),
            Some(n) if n.ends_with(".ckpt") => Some("checkpoint corruption"),
            _ => None,
        };
        if let Some(what) = what {
            return format!("{what} in {} at offset {offset}: {reason}", file.display());
        }
    }
    e.to_string()
}

/// Nanoseconds since the Unix epoch as UTC `YYYY-MM-DDTHH:MM:SS.mmmZ` (0: "-").
pub fn utc(ns: u64) -> String {
    if ns == 0 {
        return "-".into();
    }
    let secs = ns / 1_000_000_000;
    let ms = (ns / 1_000_000) % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------------------------
// inspect

#[derive(Serialize)]
struct Inspect {
    dir: String,
    format_version: u32,
    epoch: String,
    created: String,
    writer_active: bool,
    io_path: String,
    io_path_reason: String,
    manifest: ManifestFacts,
    checkpoint: Option<CheckpointFacts>,
    segments: Vec<SegSummary>,
    segments_below_first: Vec<u64>,
    other_files: Vec<String>,
    runs: Vec<u64>,
    damage: Vec<Damage>,
}

#[derive(Serialize)]
struct ManifestFacts {
    seq: u64,
    first_segment: u64,
    trim_floor: u64,
    lsn_floor: u64,
    txn_floor: u64,
    run_floor: u64,
    codec: u32,
}

#[derive(Serialize)]
pub(crate) struct CheckpointFacts {
    id: u64,
    pub(crate) file: String,
    lsn: u64,
    /// The length the MANIFEST records.
    bytes: u64,
    /// The file's length on disk (`None`: no such file).
    file_bytes: Option<u64>,
    /// Why recovery will refuse it, when the file is missing or not the recorded length.
    pub(crate) problem: Option<String>,
}

impl CheckpointFacts {
    /// The MANIFEST's checkpoint, checked against the file in `dir`. A file missing while a
    /// writer has the database open is no damage when the MANIFEST has moved on to another
    /// checkpoint meanwhile (the writer replaced it).
    pub(crate) fn of(
        vfs: &dyn Vfs,
        dir: &Path,
        m: &Manifest,
        writer_active: bool,
    ) -> Option<CheckpointFacts> {
        if m.checkpoint_id == 0 {
            return None;
        }
        let file = format!("{:020}.ckpt", m.checkpoint_id);
        let stat = vfs
            .open(&dir.join(&file), OpenOptions::default())
            .and_then(|f| f.size());
        let file_bytes = stat.as_ref().ok().copied();
        let replaced = || {
            writer_active
                && logwalk::read_all(vfs, &dir.join(logwalk::MANIFEST))
                    .ok()
                    .and_then(|b| Manifest::decode(&b).ok())
                    .is_some_and(|now| now.checkpoint_id != m.checkpoint_id)
        };
        let problem = match stat {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && replaced() => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some("the file is missing".to_string())
            }
            Err(e) => Some(format!("the file cannot be examined: {e}")),
            Ok(n) if n != m.checkpoint_len => Some(format!(
                "the file holds {n} bytes where the MANIFEST records {}",
                m.checkpoint_len
            )),
            Ok(_) => None,
        };
        Some(CheckpointFacts {
            id: m.checkpoint_id,
            file,
            lsn: m.checkpoint_lsn,
            bytes: m.checkpoint_len,
            file_bytes,
            problem,
        })
    }
}

/// `ringlog inspect`.
pub fn inspect(a: &DirArgs, json: bool, out: &mut dyn Write) -> Outcome {
    let l = logwalk::list(&a.dir)?;
    let m = *l.manifest()?;
    let walk = logwalk::walk(&l, |_| Ok(()))?;
    let (io_path, io_reason) = match ringlog_uring::select(ringlog_uring::IoChoice::Auto) {
        Ok(v) => {
            let b = v.backend();
            (b.kind.to_string(), b.reason)
        }
        Err(e) => ("none".into(), e.to_string()),
    };
    let mut runs: Vec<u64> = walk.segments.iter().filter_map(|s| s.run).collect();
    runs.sort_unstable();
    runs.dedup();
    let r = Inspect {
        dir: l.dir.display().to_string(),
        format_version: m.version,
        epoch: format!("{:#018x}", m.epoch),
        created: utc(m.created_ns),
        writer_active: l.writer_active,
        io_path,
        io_path_reason: io_reason,
        manifest: ManifestFacts {
            seq: m.seq,
            first_segment: m.first_segment,
            trim_floor: m.trim_floor,
            lsn_floor: m.lsn_floor,
            txn_floor: m.txn_floor,
            run_floor: m.run_floor,
            codec: m.codec,
        },
        checkpoint: CheckpointFacts::of(
            &ringlog_uring::PosixVfs::default(),
            &l.dir,
            &m,
            l.writer_active,
        ),
        segments: walk.segments,
        segments_below_first: l.below.iter().map(|s| s.id).collect(),
        other_files: l.others.clone(),
        runs,
        damage: walk.damage.into_iter().chain(walk.kept_damage).collect(),
    };
    // Damage, as `verify` counts it: a writer's bytes in flight are none.
    let damaged = r
        .damage
        .iter()
        .filter(|d| d.kind != DamageKind::InFlight)
        .count()
        + usize::from(r.checkpoint.as_ref().is_some_and(|c| c.problem.is_some()));
    let found = || {
        if damaged == 0 {
            Ok(())
        } else {
            Err(Failure::Found(format!(
                "inspect found damage ({damaged} place{}); `ringlog verify` checks the database \
                 as recovery does",
                if damaged == 1 { "" } else { "s" }
            )))
        }
    };
    if json {
        print_json(out, &r)?;
        return found();
    }
    writeln!(out, "database      {}", r.dir)?;
    writeln!(out, "format        version {} (MANIFEST)", r.format_version)?;
    writeln!(out, "epoch         {}", r.epoch)?;
    writeln!(out, "created       {}", r.created)?;
    writeln!(
        out,
        "writer        {}",
        if r.writer_active {
            "open by a writer now (this view may be behind it)"
        } else {
            "none"
        }
    )?;
    writeln!(out, "io path       {} ({})", r.io_path, r.io_path_reason)?;
    let mf = &r.manifest;
    writeln!(
        out,
        "manifest      seq {}, first segment {}, trim floor {}, LSN floor {}, codec {}",
        mf.seq, mf.first_segment, mf.trim_floor, mf.lsn_floor, mf.codec
    )?;
    match &r.checkpoint {
        Some(c) => {
            writeln!(
                out,
                "checkpoint    {} at LSN {} ({} bytes)",
                c.file, c.lsn, c.bytes
            )?;
            if let Some(why) = &c.problem {
                writeln!(
                    out,
                    "damage        checkpoint {}: {why}; recovery refuses to open (`ringlog verify`)",
                    c.file
                )?;
            }
        }
        None => writeln!(out, "checkpoint    none (recovery replays the whole log)")?,
    }
    writeln!(out, "segments      {}", r.segments.len())?;
    writeln!(
        out,
        "  {:>6} {:>3} {:>5} {:>10} {:>21} {:>8} {:>10} {:>10}  state",
        "id", "ver", "run", "base LSN", "LSNs", "records", "valid", "size"
    )?;
    for s in &r.segments {
        let lsns = match (s.first_lsn, s.last_lsn) {
            (Some(a), Some(b)) => format!("{a}..={b}"),
            _ => "-".into(),
        };
        writeln!(
            out,
            "  {:>6} {:>3} {:>5} {:>10} {:>21} {:>8} {:>10} {:>10}  {}",
            s.id,
            s.version.map_or("?".into(), |v| v.to_string()),
            s.run.map_or("?".into(), |v| v.to_string()),
            s.base_lsn.map_or("?".into(), |v| v.to_string()),
            lsns,
            s.records,
            s.valid_end,
            s.size,
            if s.sealed { "sealed" } else { "active" }
        )?;
    }
    if !r.segments_below_first.is_empty() {
        writeln!(
            out,
            "below first   {:?} (values a checkpoint refers to, or leftovers the next open removes)",
            r.segments_below_first
        )?;
    }
    writeln!(out, "runs          {:?}", r.runs)?;
    if !r.other_files.is_empty() {
        writeln!(out, "other files   {}", r.other_files.join(", "))?;
    }
    for d in &r.damage {
        writeln!(
            out,
            "damage        {:?} in segment {} at offset {}: {}",
            d.kind, d.segment, d.offset, d.reason
        )?;
    }
    found()
}

// ---------------------------------------------------------------------------------------------
// verify

#[derive(Serialize)]
struct Verify {
    dir: String,
    ok: bool,
    writer_active: bool,
    segments: usize,
    records: u64,
    last_lsn: u64,
    /// Segments below the first needed one (kept for values a checkpoint refers to), whose
    /// records' checksums were checked too.
    kept_segments: usize,
    kept_records: u64,
    damage: Vec<Damage>,
    /// What opening the database as recovery does found (checkpoint blocks, transactions).
    open: OpenCheck,
    /// `--deep`: keys and versions read, values on disk included.
    deep: Option<DeepCheck>,
}

#[derive(Serialize)]
struct OpenCheck {
    ok: bool,
    error: Option<String>,
    checkpoint_lsn: u64,
    checkpoint_keys: u64,
    transactions_applied: u64,
    transactions_incomplete: u64,
    bytes_truncated: u64,
    last_lsn: u64,
}

#[derive(Serialize)]
struct DeepCheck {
    keys: u64,
    versions: u64,
    value_bytes: u64,
    error: Option<String>,
}

/// `ringlog verify`.
pub fn verify(a: &VerifyArgs, json: bool, out: &mut dyn Write) -> Outcome {
    let l = logwalk::list(&a.dir)?;
    let mut damage = Vec::new();
    if let Err(Failure::Found(e)) = l.manifest() {
        damage.push(Damage {
            kind: DamageKind::Corruption,
            segment: 0,
            file: l.dir.join(logwalk::MANIFEST),
            offset: 0,
            bytes: 0,
            last_good_lsn: 0,
            reason: e,
        });
    }
    let mut records = 0u64;
    let mut last_lsn = 0;
    let mut segments = 0;
    let (mut kept_segments, mut kept_records) = (0, 0);
    if l.manifest.is_ok() {
        let walk = logwalk::walk(&l, |r| {
            records += 1;
            if r.rec.kind.in_transaction() {
                last_lsn = last_lsn.max(r.rec.lsn);
            }
            Ok(())
        })?;
        segments = walk.segments.len();
        kept_segments = walk.kept.len();
        kept_records = walk.kept.iter().map(|s| s.records).sum();
        damage.extend(walk.damage);
        damage.extend(walk.kept_damage);
    }
    let mut open = OpenCheck {
        ok: false,
        error: None,
        checkpoint_lsn: 0,
        checkpoint_keys: 0,
        transactions_applied: 0,
        transactions_incomplete: 0,
        bytes_truncated: 0,
        last_lsn: 0,
    };
    let mut deep = None;
    match Db::open_read_only(&a.dir, Options::default()) {
        Ok(db) => {
            let s = db.recovery_stats();
            open.ok = true;
            open.checkpoint_lsn = s.checkpoint_lsn;
            open.checkpoint_keys = s.checkpoint_keys;
            open.transactions_applied = s.transactions_applied;
            open.transactions_incomplete = s.transactions_incomplete;
            open.bytes_truncated = s.bytes_truncated;
            open.last_lsn = s.last_lsn;
            if a.deep {
                // A value segment a writer's compaction removed under the read: read again on
                // a new open ([`reopened`]); only another failure is damage.
                let mut first = Some(db);
                let d = reopened_from(&a.dir, &mut first, |db| {
                    let mut d = DeepCheck {
                        keys: 0,
                        versions: 0,
                        value_bytes: 0,
                        error: None,
                    };
                    for k in db.history::<&[u8], _>(..)? {
                        match k {
                            Ok(k) => {
                                d.keys += 1;
                                d.versions += k.versions.len() as u64;
                                d.value_bytes += k
                                    .versions
                                    .iter()
                                    .map(|(_, v)| v.as_ref().map_or(0, |v| v.len() as u64))
                                    .sum::<u64>();
                            }
                            Err(e) if vanished(&e) => return Err(e),
                            Err(e) => {
                                d.error = Some(error_text(&e));
                                break;
                            }
                        }
                    }
                    Ok(d)
                });
                deep = Some(d.unwrap_or_else(|f| DeepCheck {
                    keys: 0,
                    versions: 0,
                    value_bytes: 0,
                    error: Some(match f {
                        Failure::Found(m) | Failure::Usage(m) => m,
                    }),
                }));
            }
        }
        Err(e) => open.error = Some(error_text(&e)),
    }
    let problems = damage.iter().any(|d| d.kind != DamageKind::InFlight)
        || !open.ok
        || deep.as_ref().is_some_and(|d| d.error.is_some());
    let r = Verify {
        dir: l.dir.display().to_string(),
        ok: !problems,
        writer_active: l.writer_active,
        segments,
        records,
        last_lsn,
        kept_segments,
        kept_records,
        damage,
        open,
        deep,
    };
    if json {
        print_json(out, &r)?;
    } else {
        writeln!(
            out,
            "checked {} records in {} segments (last LSN {})",
            r.records, r.segments, r.last_lsn
        )?;
        if r.kept_segments > 0 {
            writeln!(
                out,
                "checked {} records in {} segments kept below the log (values a checkpoint refers to)",
                r.kept_records, r.kept_segments
            )?;
        }
        if r.writer_active {
            writeln!(
                out,
                "note: a writer has the database open; the last segment's tail may be in flight"
            )?;
        }
        for d in &r.damage {
            let what = match d.kind {
                DamageKind::TornTail => "TORN TAIL",
                DamageKind::Corruption => "CORRUPTION",
                DamageKind::InFlight => "in flight",
            };
            if d.file.file_name().is_some_and(|n| n == logwalk::MANIFEST) {
                // Not a segment: the MANIFEST itself (its reason says what is wrong).
                writeln!(
                    out,
                    "{what}: the MANIFEST ({}): {}",
                    d.file.display(),
                    d.reason
                )?;
                continue;
            }
            writeln!(
                out,
                "{what}: segment {} ({}) offset {}, {} bytes, after LSN {}: {}",
                d.segment,
                d.file.display(),
                d.offset,
                d.bytes,
                d.last_good_lsn,
                d.reason
            )?;
            if d.kind == DamageKind::TornTail {
                writeln!(
                    out,
                    "  (a write a crash cut short: the next open cuts it; nothing acknowledged as durable is lost)"
                )?;
            }
        }
        match &r.open.error {
            None => writeln!(
                out,
                "open: ok (checkpoint at LSN {} with {} keys, {} transactions replayed, {} incomplete, last LSN {})",
                r.open.checkpoint_lsn,
                r.open.checkpoint_keys,
                r.open.transactions_applied,
                r.open.transactions_incomplete,
                r.open.last_lsn
            )?,
            Some(e) => writeln!(out, "open: FAILED: {e}")?,
        }
        if let Some(d) = &r.deep {
            match &d.error {
                None => writeln!(
                    out,
                    "deep: read {} versions of {} keys ({} value bytes)",
                    d.versions, d.keys, d.value_bytes
                )?,
                Some(e) => writeln!(out, "deep: FAILED after {} keys: {e}", d.keys)?,
            }
        }
        writeln!(out, "{}", if r.ok { "OK" } else { "DAMAGED" })?;
    }
    if r.ok {
        Ok(())
    } else {
        Err(Failure::Found(String::new()))
    }
}

// ---------------------------------------------------------------------------------------------
// dump-log

#[derive(Serialize)]
struct DumpRow<'a> {
    lsn: u64,
    kind: &'static str,
    txn: u64,
    run: u64,
    time: String,
    segment: u64,
    offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_len: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    marker: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    flags: Vec<&'a str>,
}

/// `ringlog dump-log`.
pub fn dump_log(a: &DumpArgs, json: bool, out: &mut dyn Write) -> Outcome {
    for k in &a.kind {
        if !logwalk::KIND_NAMES.contains(&k.as_str()) {
            return Err(Failure::Usage(format!(
                "--kind {k}: not a record kind (one of {})",
                logwalk::KIND_NAMES.join(", ")
            )));
        }
    }
    let prefix = a
        .key_prefix
        .as_deref()
        .map(|p| a.enc.parse_key(p))
        .transpose()?;
    let l = logwalk::list(&a.dir)?;
    if !json {
        writeln!(
            out,
            "{:>10} {:<10} {:>10} {:>5} {:<24} {:>18}  key / value",
            "LSN", "kind", "txn", "run", "time", "segment:offset"
        )?;
    }
    // Nothing after the first damage is printed.
    let walk = logwalk::walk_to_damage(&l, |r| {
        let rec = &r.rec;
        let name = logwalk::kind_name(rec.kind);
        let keyed = matches!(rec.kind, RecordKind::Write | RecordKind::Delete);
        let keep = (a.kind.is_empty() || a.kind.iter().any(|k| k == name))
            // An LSN bound keeps only transactions' records: markers of no transaction (batch
            // heads, leases, padding, checkpoints) are left out by either bound.
            && (a.from_lsn.is_none() && a.to_lsn.is_none()
                || rec.kind.in_transaction() && rec.lsn != 0)
            && a.from_lsn.is_none_or(|f| rec.lsn >= f)
            && a.to_lsn.is_none_or(|t| rec.lsn <= t)
            && a.run.is_none_or(|run| r.run == run)
            && prefix
                .as_ref()
                .is_none_or(|p| keyed && rec.key.starts_with(p));
        if !keep {
            return Ok(());
        }
        let mut flags = Vec::new();
        if rec.is_autocommit() {
            flags.push("autocommit");
        }
        if rec.is_system() {
            flags.push("system");
        }
        if rec.is_relocated() {
            flags.push("relocated");
        }
        let row = DumpRow {
            lsn: rec.lsn,
            kind: name,
            txn: rec.txn_id,
            run: r.run,
            time: utc(r.timestamp),
            segment: r.segment,
            offset: rec.offset,
            key: keyed.then(|| a.enc.show(rec.key)),
            value_len: (rec.kind == RecordKind::Write).then_some(rec.value.len()),
            value: (rec.kind == RecordKind::Write && a.values).then(|| a.enc.show(rec.value)),
            marker: matches!(
                rec.kind,
                RecordKind::BeginTxn
                    | RecordKind::CommitTxn
                    | RecordKind::Checkpoint
                    | RecordKind::Lease
                    | RecordKind::BatchHead
            )
            .then_some(rec.marker),
            flags,
        };
        if json {
            serde_json::to_writer(&mut *out, &row).map_err(|e| Failure::Found(e.to_string()))?;
            writeln!(out)?;
        } else {
            let mut tail = String::new();
            if let Some(k) = &row.key {
                tail.push_str(k);
            }
            if let Some(v) = &row.value {
                tail.push_str(" = ");
                tail.push_str(v);
            } else if let Some(n) = row.value_len {
                tail.push_str(&format!(" ({n} bytes)"));
            }
            if let Some(m) = row.marker {
                tail.push_str(&format!("[{m}]"));
            }
            if !row.flags.is_empty() {
                tail.push_str(&format!(" {{{}}}", row.flags.join(",")));
            }
            writeln!(
                out,
                "{:>10} {:<10} {:>10} {:>5} {:<24} {:>18}  {}",
                row.lsn,
                row.kind,
                row.txn,
                row.run,
                row.time,
                format!("{}:{}", row.segment, row.offset),
                tail
            )?;
        }
        Ok(())
    })?;
    if let Some(d) = walk.first_problem() {
        return Err(Failure::Found(format!(
            "the log is damaged at segment {} offset {} ({:?}): {}; records after it were not printed",
            d.segment, d.offset, d.kind, d.reason
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// get, scan, history

#[derive(Serialize)]
struct Entry {
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    lsn: u64,
}

/// `ringlog get`.
pub fn get(a: &GetArgs, json: bool, out: &mut dyn Write) -> Outcome {
    let key = a.enc.parse_nonempty_key(&a.key)?;
    let v = reopened(&a.dir, |db| match a.at_lsn {
        Some(lsn) => db.get_at(&key, lsn),
        None => db.get(&key),
    })?;
    let Some(v) = v else {
        return Err(Failure::Found(format!("{}: no such key", a.enc.show(&key))));
    };
    if json {
        print_json(
            out,
            &Entry {
                key: a.enc.show(&key),
                value: Some(a.enc.show(&v)),
                lsn: v.lsn(),
            },
        )
    } else {
        writeln!(out, "{}", a.enc.show(&v))?;
        Ok(())
    }
}

/// A key range: its lower and upper bound.
type Span = (Bound<Vec<u8>>, Bound<Vec<u8>>);

fn bounds(a: &ScanArgs) -> Result<Span, Failure> {
    if let Some(p) = &a.prefix {
        let p = a.enc.parse_key(p)?;
        let hi = prefix_end(&p).map_or(Bound::Unbounded, Bound::Excluded);
        return Ok((Bound::Included(p), hi));
    }
    let lo = match &a.from {
        Some(k) => Bound::Included(a.enc.parse_nonempty_key(k)?),
        None => Bound::Unbounded,
    };
    let hi = match &a.to {
        Some(k) => Bound::Excluded(a.enc.parse_nonempty_key(k)?),
        None => Bound::Unbounded,
    };
    Ok((lo, hi))
}

/// The first key above every key starting with `p` (none when `p` is all 0xff).
fn prefix_end(p: &[u8]) -> Option<Vec<u8>> {
    let mut e = p.to_vec();
    while let Some(last) = e.pop() {
        if last < 0xff {
            e.push(last + 1);
            return Some(e);
        }
    }
    None
}

/// `ringlog scan`.
pub fn scan(a: &ScanArgs, json: bool, out: &mut dyn Write) -> Outcome {
    let (lo, hi) = bounds(a)?;
    let max = a.max.unwrap_or(usize::MAX);
    // Read whole before printing: a read a writer's compaction cut short starts again on a new
    // open ([`reopened`]), which must not print the entries before it twice.
    let rows = reopened(&a.dir, |db| {
        let scan = match a.at_lsn {
            Some(lsn) => db.range_at((lo.clone(), hi.clone()), lsn),
            None => db.range((lo.clone(), hi.clone())),
        }?;
        let mut rows = Vec::new();
        for item in scan.take(max) {
            let (k, v) = item?;
            rows.push(Entry {
                key: a.enc.show(&k),
                value: (!a.keys_only).then(|| a.enc.show(&v)),
                lsn: v.lsn(),
            });
        }
        Ok(rows)
    })?;
    if json {
        return print_json(out, &rows);
    }
    for row in &rows {
        match &row.value {
            Some(v) => writeln!(out, "{} = {}", row.key, v)?,
            None => writeln!(out, "{}", row.key)?,
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct KeyVersions {
    key: String,
    versions: Vec<Version>,
}

#[derive(Serialize)]
struct Version {
    lsn: u64,
    /// `None`: a delete.
    value: Option<String>,
}

/// `ringlog history`.
pub fn history(a: &HistoryArgs, json: bool, out: &mut dyn Write) -> Outcome {
    let (lo, hi) = match &a.prefix {
        Some(p) => {
            let p = a.enc.parse_key(p)?;
            let hi = prefix_end(&p).map_or(Bound::Unbounded, Bound::Excluded);
            (Bound::Included(p), hi)
        }
        None => (Bound::Unbounded, Bound::Unbounded),
    };
    // Read whole before printing, as `scan` does.
    let (floor, keys) = reopened(&a.dir, |db| {
        let h = db.history((lo.clone(), hi.clone()))?;
        let floor = h.floor();
        let keys = h.collect::<Result<Vec<_>, _>>()?;
        Ok((floor, keys))
    })?;
    let mut all = Vec::new();
    for k in keys {
        let kv = KeyVersions {
            key: a.enc.show(&k.key),
            versions: k
                .versions
                .iter()
                .map(|(lsn, v)| Version {
                    lsn: *lsn,
                    value: v.as_ref().map(|v| a.enc.show(v)),
                })
                .collect(),
        };
        if json {
            all.push(kv);
            continue;
        }
        writeln!(out, "{}", kv.key)?;
        for v in &kv.versions {
            match &v.value {
                Some(x) => writeln!(out, "  @{:<10} {}", v.lsn, x)?,
                None => writeln!(out, "  @{:<10} (deleted)", v.lsn)?,
            }
        }
    }
    if json {
        print_json(out, &serde_json::json!({ "floor": floor, "keys": all }))?;
    } else {
        if floor > 0 {
            writeln!(out, "(history below LSN {floor} is trimmed)")?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// runs

#[derive(Serialize)]
struct Run {
    id: u64,
    label: Option<String>,
    first_lsn: u64,
    last_lsn: u64,
    commits: u64,
    first_commit: String,
    last_commit: String,
    complete: bool,
}

/// Opens of [`reopened`] at most: as many as the engine's open makes.
const ATTEMPTS: u32 = 8;

/// Whether `e` is a file that vanished while it was read (a writer's compaction removed a
/// segment since the open listed it): worth opening and reading again.
fn vanished(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// `read` of `dir` opened read-only; opened and read again ([`ATTEMPTS`] times at most) while a
/// file vanished under the read, as the open itself starts again when a file was just removed.
pub(crate) fn reopened<T>(
    dir: &Path,
    read: impl FnMut(&Db) -> Result<T, Error>,
) -> Result<T, Failure> {
    reopened_from(dir, &mut None, read)
}

/// [`reopened`], whose first read is of `first` when it holds a database already open.
fn reopened_from<T>(
    dir: &Path,
    first: &mut Option<Db>,
    mut read: impl FnMut(&Db) -> Result<T, Error>,
) -> Result<T, Failure> {
    let mut attempt = 1;
    loop {
        let db = match first.take() {
            Some(db) => db,
            None => open(dir)?,
        };
        match read(&db) {
            Ok(v) => return Ok(v),
            Err(e) if vanished(&e) && attempt < ATTEMPTS => attempt += 1,
            Err(e) => return Err(failed(e)),
        }
    }
}

/// `ringlog runs`.
pub fn runs(a: &DirArgs, json: bool, out: &mut dyn Write) -> Outcome {
    let runs: Vec<Run> = reopened(&a.dir, Db::runs)?
        .into_iter()
        .map(|r| Run {
            id: r.id,
            label: r.label.clone(),
            first_lsn: r.first_lsn,
            last_lsn: r.last_lsn,
            commits: r.commits,
            first_commit: utc(r.first_commit_ns),
            last_commit: utc(r.last_commit_ns),
            complete: r.complete,
        })
        .collect();
    if json {
        return print_json(out, &runs);
    }
    writeln!(
        out,
        "{:>5} {:>10} {:>10} {:>8} {:<24} {:<24} label",
        "run", "first LSN", "last LSN", "commits", "first commit", "last commit"
    )?;
    for r in &runs {
        writeln!(
            out,
            "{:>5} {:>10} {:>10} {:>8} {:<24} {:<24} {}{}",
            r.id,
            r.first_lsn,
            r.last_lsn,
            r.commits,
            r.first_commit,
            r.last_commit,
            r.label.as_deref().unwrap_or("-"),
            if r.complete {
                ""
            } else {
                " (its beginning was compacted away)"
            }
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// stats

#[derive(Serialize, Default)]
struct SegmentBytes {
    id: u64,
    size: u64,
    valid: u64,
    /// Bytes of records holding a version that is still the key's newest.
    live: u64,
    /// Bytes of every other record (superseded values, deletes, markers, padding).
    dead: u64,
    live_records: u64,
    records: u64,
}

#[derive(Serialize)]
struct StatsReport {
    dir: String,
    keys: usize,
    versions: usize,
    last_lsn: u64,
    history_floor: u64,
    retention: String,
    index_bytes: usize,
    index_payload_bytes: usize,
    checkpoint_lsn: u64,
    value_segments: usize,
    log_bytes: u64,
    live_bytes: u64,
    dead_bytes: u64,
    segments: Vec<SegmentBytes>,
    /// What `Db::stats` reports for this (read-only) handle, as the engine formats it.
    engine: String,
}

/// `ringlog stats`.
pub fn stats(a: &DirArgs, json: bool, out: &mut dyn Write) -> Outcome {
    let db = open(&a.dir)?;
    let l = logwalk::list(&a.dir)?;
    let mut per: BTreeMap<u64, SegmentBytes> = BTreeMap::new();
    let last = db.last_lsn();
    let walk = logwalk::walk(&l, |r| {
        let rec = &r.rec;
        let e = per.entry(r.segment).or_default();
        let len = rec.encoded_len() as u64;
        e.records += 1;
        // A record is live when it wrote the version of its key that is newest now (records
        // after the state this handle opened at are a writer's newer commits: counted dead).
        let live = rec.kind == RecordKind::Write
            && !rec.is_system()
            && !rec.is_relocated()
            && rec.lsn <= last
            && db
                .get_with(rec.key, |v| v.is_some_and(|(_, lsn)| lsn == rec.lsn))
                .unwrap_or(false);
        if live {
            e.live += len;
            e.live_records += 1;
        } else {
            e.dead += len;
        }
        Ok(())
    })?;
    let mut segments = Vec::new();
    for s in &walk.segments {
        let mut b = per.remove(&s.id).unwrap_or_default();
        b.id = s.id;
        b.size = s.size;
        b.valid = s.valid_end;
        // The segment header counts as dead weight.
        b.dead += s.valid_end.saturating_sub(b.live + b.dead);
        segments.push(b);
    }
    let st = db.stats();
    let r = StatsReport {
        dir: a.dir.display().to_string(),
        keys: st.keys,
        versions: st.versions,
        last_lsn: st.last_lsn,
        history_floor: st.history_floor,
        retention: format!("{:?}", st.retention),
        index_bytes: st.index_bytes,
        index_payload_bytes: st.index_payload_bytes,
        checkpoint_lsn: st.checkpoint_lsn,
        value_segments: st.value_segments,
        log_bytes: segments.iter().map(|s| s.valid).sum(),
        live_bytes: segments.iter().map(|s| s.live).sum(),
        dead_bytes: segments.iter().map(|s| s.dead).sum(),
        segments,
        engine: format!("{st:?}"),
    };
    if json {
        return print_json(out, &r);
    }
    writeln!(out, "keys            {}", r.keys)?;
    writeln!(out, "versions        {}", r.versions)?;
    writeln!(out, "last LSN        {}", r.last_lsn)?;
    writeln!(out, "history floor   {}", r.history_floor)?;
    writeln!(out, "retention       {}", r.retention)?;
    writeln!(
        out,
        "index           {} bytes ({} of keys and values)",
        r.index_bytes, r.index_payload_bytes
    )?;
    writeln!(out, "checkpoint LSN  {}", r.checkpoint_lsn)?;
    let pct = |x: u64| {
        if r.log_bytes == 0 {
            0.0
        } else {
            100.0 * x as f64 / r.log_bytes as f64
        }
    };
    writeln!(
        out,
        "log             {} bytes: {} live ({:.1} %), {} dead ({:.1} %)",
        r.log_bytes,
        r.live_bytes,
        pct(r.live_bytes),
        r.dead_bytes,
        pct(r.dead_bytes)
    )?;
    writeln!(
        out,
        "  {:>6} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "segment", "size", "valid", "live", "dead", "records"
    )?;
    for s in &r.segments {
        writeln!(
            out,
            "  {:>6} {:>10} {:>10} {:>10} {:>10} {:>8}",
            s.id, s.size, s.valid, s.live, s.dead, s.records
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Encoding;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "-");
        assert_eq!(utc(1), "1970-01-01T00:00:00.000Z");
        // 2000-02-29T12:34:56.789Z
        assert_eq!(utc(951_827_696_789_000_000), "2000-02-29T12:34:56.789Z");
        // 2026-12-02T00:00:00Z
        assert_eq!(utc(1_796_169_600_000_000_000), "2026-12-02T00:00:00.000Z");
    }

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }

    /// `runs` beside a compacting writer: a read that meets a vanished segment is opened and
    /// read again; other errors, and the last attempt's, are reported.
    #[test]
    fn a_read_is_retried_while_a_segment_vanishes_under_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db");
        Db::open(&dir, Options::default()).unwrap().close().unwrap();
        let gone = || Error::Io {
            op: "open segment to read its history",
            path: None,
            source: std::io::ErrorKind::NotFound.into(),
        };
        let mut reads = 0;
        let got = reopened(&dir, |_| {
            reads += 1;
            if reads < 3 {
                Err(gone())
            } else {
                Ok(reads)
            }
        });
        assert_eq!(got.unwrap(), 3);
        let mut reads = 0;
        let got: Result<(), _> = reopened(&dir, |_| {
            reads += 1;
            Err(gone())
        });
        assert!(matches!(got, Err(Failure::Found(_))));
        assert_eq!(reads, ATTEMPTS);
        let mut reads = 0;
        let got: Result<(), _> = reopened(&dir, |_| {
            reads += 1;
            Err(Error::Io {
                op: "read",
                path: None,
                source: std::io::ErrorKind::PermissionDenied.into(),
            })
        });
        assert!(got.is_err());
        assert_eq!(reads, 1, "only a vanished file is worth another attempt");
    }

    #[test]
    fn encoding_shows_both_ways() {
        let hex = Encoding { hex: true };
        let text = Encoding { hex: false };
        assert_eq!(hex.show(b"k\x01"), "6b01");
        assert_eq!(text.show(b"k\x01"), "k\\x01");
        assert_eq!(hex.parse_key("6b01").unwrap(), b"k\x01");
        assert!(hex.parse_key("6").is_err());
    }
}
