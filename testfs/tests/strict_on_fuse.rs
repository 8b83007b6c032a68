//! Issue 8, item 1: a `Strict` commit on a FUSE filesystem is acknowledged only once a sync the
//! filesystem saw covers it, and it survives a power cut.
//!
//! On FUSE, an `O_DIRECT` write submitted through io_uring with `RWF_DSYNC` that does not extend
//! the file (segments pre-sized with `ftruncate`, since FUSE has no `fallocate`) completes with
//! no `FUSE_FSYNC` request: the kernel's asynchronous FUSE direct-I/O completion skips the
//! data sync that `RWF_DSYNC` asks for. Every combination of I/O path × sync strategy ×
//! `direct_io` × preallocation runs here against the in-memory FUSE filesystem of
//! `ringlog-testfs`, which counts the syncs it receives and keeps only synced bytes across a
//! power cut.

use std::fmt;
use std::path::Path;

use ringlog_db::io::BackendKind;
use ringlog_db::{Db, Durability, IoChoice, Options, Preallocate, SyncStrategy};
use ringlog_testfs::{fuse_or_skip, skip_or_fail, MountedFs, TestFs};

/// Small segments: 12 puts of 24 KiB rotate at least once (with or without O_DIRECT padding),
/// and zero-filling is cheap.
const SEG: u64 = 256 << 10;
const PUTS: usize = 12;
const VALUE_LEN: usize = 24 << 10;

#[derive(Clone, Copy, Debug)]
struct Combo {
    io: IoChoice,
    strategy: SyncStrategy,
    direct: bool,
    prealloc: Preallocate,
}

impl fmt::Display for Combo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let io = self.io.name();
        write!(
            f,
            "({io}, {:?}, direct_io={}, {:?})",
            self.strategy, self.direct, self.prealloc
        )
    }
}

impl Combo {
    fn options(&self) -> Options {
        Options::default()
            .io(self.io)
            .direct_io(self.direct)
            .sync_strategy(self.strategy)
            .preallocate(self.prealloc)
            .durability(Durability::Strict)
            .segment_size(SEG)
    }
}

/// All 24 combinations, both I/O paths.
fn combos() -> Vec<Combo> {
    let mut all = Vec::new();
    for io in [IoChoice::Uring, IoChoice::Portable] {
        for strategy in [SyncStrategy::Dsync, SyncStrategy::WriteThenSync] {
            for direct in [true, false] {
                for prealloc in [
                    Preallocate::ZeroFill,
                    Preallocate::Fallocate,
                    Preallocate::None,
                ] {
                    all.push(Combo {
                        io,
                        strategy,
                        direct,
                        prealloc,
                    });
                }
            }
        }
    }
    all
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:02}").into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    (0..VALUE_LEN).map(|j| (i * 131 + j * 7) as u8).collect()
}

fn is_segment(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "log")
}

/// fsync + fdatasync requests the filesystem saw for segment files (`*.log`), removed ones too.
fn segment_syncs(fs: &MountedFs) -> u64 {
    fs.file_stats()
        .iter()
        .filter(|(p, _, _)| is_segment(p))
        .map(|(_, _, s)| s.syncs())
        .sum()
}

/// Segment files holding writes or size changes that no sync covered yet.
fn unsynced_segments(fs: &MountedFs) -> Vec<String> {
    fs.file_stats()
        .iter()
        .filter(|(p, linked, s)| *linked && is_segment(p) && s.unsynced_changes > 0)
        .map(|(p, _, s)| {
            format!(
                "{} ({} unsynced changes, {} of {} bytes durable)",
                p.display(),
                s.unsynced_changes,
                s.durable_len,
                s.current_len
            )
        })
        .collect()
}

/// What one combination did: the problems found (empty: it behaved) and a one-line summary.
struct Outcome {
    problems: Vec<String>,
    summary: String,
}

/// Runs one combination on a fresh mount; `Err` only when the environment is not usable.
fn run(c: Combo) -> Result<Outcome, String> {
    let dir = tempfile::Builder::new()
        .prefix("ringlog-fuse-")
        .tempdir()
        .map_err(|e| format!("temporary mount point: {e}"))?;
    let fs = TestFs::mount(dir.path()).map_err(|e| e.to_string())?;
    let db_dir = fs.path().join("db");
    let opts = c.options();
    let mut problems = Vec::new();

    // 1. Strict puts; each acknowledgement must follow a sync of the segment files.
    let db = match Db::open(&db_dir, opts.clone()) {
        Ok(db) => db,
        Err(e) => {
            return Ok(Outcome {
                problems: vec![format!("open failed: {e}")],
                summary: String::new(),
            })
        }
    };
    let stats = db.stats();
    let want = match c.io {
        IoChoice::Uring => BackendKind::Uring,
        _ => BackendKind::Portable,
    };
    // RWF_DSYNC is not trusted on FUSE: the engine says it syncs explicitly, and why.
    if stats.sync_strategy != Some(SyncStrategy::WriteThenSync)
        || !stats.sync_strategy_reason.contains("fuse")
    {
        problems.push(format!(
            "effective strategy on FUSE is {:?} ({})",
            stats.sync_strategy, stats.sync_strategy_reason
        ));
    }
    let backend = stats.backend.clone().map(|b| b.kind);
    if backend != Some(want) && std::env::var_os("RINGLOG_IO").is_none() {
        problems.push(format!("asked for {:?}, runs on {backend:?}", c.io));
    }
    let mut acked = Vec::new();
    let mut unsynced_acks = 0;
    for i in 0..PUTS {
        let before = segment_syncs(&fs);
        match db.put(&key(i), &value(i)) {
            Ok(lsn) => acked.push((i, lsn)),
            Err(e) => {
                problems.push(format!("put {i} failed: {e}"));
                break;
            }
        }
        let after = segment_syncs(&fs);
        let dirty = unsynced_segments(&fs);
        if after <= before || !dirty.is_empty() {
            unsynced_acks += 1;
            problems.push(format!(
                "put {i} acknowledged with segment syncs {before} -> {after}{}",
                if dirty.is_empty() {
                    String::new()
                } else {
                    format!("; not durable: {}", dirty.join(", "))
                }
            ));
        }
    }
    let stats = db.stats();
    if stats.segments_created < 1 {
        problems.push("no segment rotation happened (test too small)".into());
    }
    let syncs_seen = segment_syncs(&fs);

    // 2. Power cut with the database still open; it then closes against the dead disk.
    let image = fs.power_cut();
    let _ = db.close(); // errors allowed: the disk is dead
    drop(db);
    let fs = image
        .mount(dir.path())
        .map_err(|e| format!("remounting the durable image: {e}"))?;
    let mut lost = 0;
    let reopened = match Db::open(&db_dir, opts) {
        Ok(db) => {
            for &(i, lsn) in &acked {
                match db.get(&key(i)) {
                    Ok(Some(v)) if v.as_bytes() == value(i) && v.lsn() == lsn => {}
                    Ok(Some(v)) => {
                        lost += 1;
                        problems.push(format!(
                            "after the power cut key {i} has a different value or LSN ({} vs {lsn})",
                            v.lsn()
                        ));
                    }
                    Ok(None) => {
                        lost += 1;
                        problems.push(format!(
                            "after the power cut acknowledged key {i} is missing"
                        ));
                    }
                    Err(e) => {
                        lost += 1;
                        problems.push(format!("after the power cut get of key {i} failed: {e}"));
                    }
                }
            }
            let _ = db.close();
            format!("{lost}/{} acknowledged puts lost", acked.len())
        }
        Err(e) => {
            problems.push(format!("reopening after the power cut failed: {e}"));
            "reopening failed".to_string()
        }
    };
    drop(fs);
    let summary = format!(
        "backend {backend:?}, direct_io {}, {} segment(s) created, {syncs_seen} segment syncs seen, \
         {unsynced_acks}/{PUTS} acks not covered by a sync; after the power cut: {reopened}",
        stats.direct_io,
        stats.segments_created,
    );
    Ok(Outcome { problems, summary })
}

#[test]
fn strict_commits_on_fuse_are_synced_and_survive_a_power_cut() {
    if !fuse_or_skip("strict_commits_on_fuse_are_synced_and_survive_a_power_cut") {
        return;
    }
    if let Some(v) = std::env::var_os("RINGLOG_IO") {
        eprintln!("note: RINGLOG_IO={v:?} overrides the I/O path of every combination");
    }
    let all = combos();
    let mut failed = Vec::new();
    for c in &all {
        match run(*c) {
            Ok(o) => {
                let verdict = if o.problems.is_empty() {
                    "ok  "
                } else {
                    "FAIL"
                };
                eprintln!("{verdict} {c}: {}", o.summary);
                if !o.problems.is_empty() {
                    failed.push(format!("{c}:\n    {}", o.problems.join("\n    ")));
                }
            }
            Err(reason) => {
                skip_or_fail(format!("the FUSE test filesystem cannot be used: {reason}"));
                return;
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} combinations acknowledged Strict commits that were not durable:\n{}",
        failed.len(),
        all.len(),
        failed.join("\n")
    );
}
