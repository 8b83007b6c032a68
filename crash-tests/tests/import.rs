//! `ringlog import` under power loss (`ringlog_cli::transfer::import_into` on the simulated
//! disk): the import writes the new database in a staging directory beside the target, closes it,
//! renames the directory into place and syncs the directory holding it. Every crash state, at
//! every position of its trace, leaves the target absent (nothing imported: running the import
//! again is the remedy) or a database that opens `Strict` with exactly the export's contents —
//! every version, in its transactions — and once the import has returned success, only the
//! latter. Planted disk bug `SkipDirRenameSync` (the sync after the rename dropped: success
//! reported while a power loss can still undo the move) is caught.
//!
//! Not covered here: a crash followed by running the import again (on the simulated disk the
//! crashed run's staging directory has the same process id in its name, which a new run
//! refuses — a real restart has another), and failed writes or syncs during the import (the
//! engine's own, swept by the `fsync-error` and `write-error` modes). The trace's rounds depend
//! on the real clock (the import's `Buffered` interval), so the states differ from run to run;
//! every one of them must pass.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringlog_cli::transfer::{import_into, write_export};
use ringlog_crash::crash::{for_each_state, TearModel};
use ringlog_crash::rng::Rng;
use ringlog_crash::setup::Setup;
use ringlog_crash::sim::disk_bugs::{self, DiskBug};
use ringlog_crash::sim::{Image, SimVfs};
use ringlog_db::{Db, Durability, Options, Retention};

/// Planted bugs are process-wide: one test arms at a time.
static ARMING: Mutex<()> = Mutex::new(());

fn target() -> PathBuf {
    Setup::sim_dir().with_file_name("imported")
}

/// An export (with every version, or the newest state) of a database of `keys` keys that lived
/// through `txns` seeded transactions (puts of values up to `max_len` bytes, deletes, several
/// keys at once), taken from an in-memory database.
fn export(seed: u64, txns: usize, versions: bool, keys: u64, max_len: u64) -> Vec<u8> {
    let db = Db::in_memory();
    db.set_retention(Retention::All).unwrap();
    let mut r = Rng::new(seed);
    for _ in 0..txns {
        let mut tx = db.begin();
        for _ in 0..1 + r.below(4) {
            let key = format!("key{:05}", r.below(keys));
            if r.below(6) == 0 {
                tx.delete(key.as_bytes()).unwrap();
            } else {
                let len = r.below(max_len) as usize;
                tx.put(key.as_bytes(), &vec![b'a' + r.below(26) as u8; len])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let mut out = Vec::new();
    write_export(&db, versions, &mut out).unwrap();
    out
}

/// What an export says, LSNs aside: each record's key, value or deletion, and which of the
/// records before it share its transaction (its LSN's rank among the export's LSNs). An import
/// renumbers LSNs; it keeps the versions, their order and their transactions.
fn records(export: &[u8]) -> Vec<(String, String, usize)> {
    let lines: Vec<serde_json::Value> = export
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let mut lsns: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.get("lsn").and_then(serde_json::Value::as_u64))
        .collect();
    lsns.sort_unstable();
    lsns.dedup();
    lines
        .iter()
        .filter(|l| l.get("key").is_some())
        .map(|l| {
            let lsn = l["lsn"].as_u64().unwrap();
            (
                l["key"].as_str().unwrap().to_string(),
                l.get("value").map_or("deleted".into(), |v| v.to_string()),
                lsns.binary_search(&lsn).unwrap(),
            )
        })
        .collect()
}

fn under(img: &Image, dir: &Path) -> bool {
    img.files.keys().any(|p| p.starts_with(dir))
}

/// What the crash states of one import showed.
struct Sweep {
    states: usize,
    /// States in which the target opened as a database.
    opened: usize,
    problems: Vec<String>,
}

/// Imports a seeded export (`versions`: every version, else the newest state) on the simulated
/// disk, into a target that does not exist or (`target_exists`) is an empty directory, with
/// `bug` armed, and checks every crash state of its trace.
fn sweep(bug: Option<DiskBug>, versions: bool, target_exists: bool) -> Sweep {
    disk_bugs::disarm_all();
    // With versions, one transaction per source LSN; without, batches of 1,024 keys: enough
    // keys for several (the first commit of a run waits for its LSN lease to be durable, so a
    // one-batch import would be durable before its close whatever the close did).
    let source = if versions {
        export(7, 120, true, 30, 3 << 10)
    } else {
        export(7, 3000, false, 3000, 200)
    };
    // Without versions an import batches the records its own way: what must come back is the
    // keys and values, not which transaction wrote them.
    let comparable = |export: &[u8]| {
        let mut r = records(export);
        if !versions {
            r.iter_mut().for_each(|(_, _, txn)| *txn = 0);
        }
        r
    };
    let expected = comparable(&source);
    assert!(expected.len() > 25, "{} records", expected.len());
    let mut dirs = vec![Setup::sim_dir().to_path_buf()];
    if target_exists {
        dirs.push(target());
    }
    let base = Image {
        files: Default::default(),
        dirs,
    };
    let sim = SimVfs::from_image(&base, true, Duration::ZERO);
    if let Some(b) = bug {
        disk_bugs::arm(b);
    }
    let done = import_into(
        &mut Cursor::new(&source),
        &target(),
        Some(Arc::new(sim.clone())),
    );
    disk_bugs::disarm_all();
    let done = done.unwrap_or_else(|e| panic!("the import failed: {e:?}"));
    assert_eq!(done.records, expected.len() as u64);
    let trace = sim.trace();
    assert!(
        trace
            .iter()
            .any(|op| matches!(op, ringlog_crash::sim::Op::RenameDir { .. })),
        "the import moves its directory into place"
    );
    let mut out = Vec::new();
    let (mut states, mut opened) = (0, 0);
    for_each_state(&base, &trace, TearModel::Sector, 8, 11, |p, idx, img| {
        states += 1;
        let at = format!("crash at step {p} of {} (state {idx})", trace.len());
        let acknowledged = p == trace.len();
        if !under(&img, &target()) {
            if acknowledged {
                out.push(format!(
                    "{at}: the import returned success, the target is gone"
                ));
            }
            return;
        }
        let disk = SimVfs::from_image(&img, false, Duration::ZERO);
        let opts = Options::default()
            .durability(Durability::Strict)
            .vfs(Arc::new(disk));
        let db = match Db::open(target(), opts) {
            Ok(db) => db,
            Err(e) => return out.push(format!("{at}: the target does not open: {e}")),
        };
        opened += 1;
        let mut again = Vec::new();
        write_export(&db, versions, &mut again).unwrap();
        let got = comparable(&again);
        if got != expected {
            out.push(format!(
                "{at}: the target holds another state than the export ({} records of {})",
                got.len(),
                expected.len()
            ));
        }
    });
    Sweep {
        states,
        opened,
        problems: out,
    }
}

fn every_state_sound(versions: bool, target_exists: bool) {
    let _one = ARMING.lock().unwrap_or_else(|e| e.into_inner());
    let s = sweep(None, versions, target_exists);
    assert!(
        s.problems.is_empty(),
        "{} of {} crash states:\n{}",
        s.problems.len(),
        s.states,
        s.problems.join("\n")
    );
    // Both outcomes were met: crashes before the rename (no database) and after it (the
    // whole import, checked record by record) — at least the states after the last step.
    assert!(
        s.opened >= 1 && s.opened < s.states,
        "{} of {} crash states opened the target",
        s.opened,
        s.states
    );
}

#[test]
fn every_crash_state_of_an_import_is_no_database_or_the_whole_import() {
    every_state_sound(true, false);
}

/// Without versions (batches of newest values), into an empty directory that exists (which
/// the rename replaces).
#[test]
fn every_crash_state_of_an_import_of_the_newest_state_into_an_empty_directory_is_sound() {
    every_state_sound(false, true);
}

#[test]
fn an_import_that_does_not_sync_its_rename_is_caught() {
    let _one = ARMING.lock().unwrap_or_else(|e| e.into_inner());
    let s = sweep(Some(DiskBug::SkipDirRenameSync), true, false);
    assert!(
        s.problems
            .iter()
            .any(|p| p.contains("returned success, the target is gone")),
        "SkipDirRenameSync not caught in {} crash states: {:?}",
        s.states,
        s.problems
    );
}
