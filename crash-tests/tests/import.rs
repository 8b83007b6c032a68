//! `ringlog import` under power loss (`ringlog_cli::transfer::import_into` on the simulated
//! disk): the import writes the new database in a staging directory beside the target, closes it,
//! renames the directory into place and syncs the directory holding it. Every crash state, at
//! every position of its trace, leaves the target absent (nothing imported: running the import
//! again is the remedy) or a database that opens `Strict` with exactly the export's contents —
//! every version, in its transactions — and once the import has returned success, only the
//! latter. Planted disk bug `SkipDirRenameSync` (the sync after the rename dropped: success
//! reported while a power loss can still undo the move) is caught.

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

/// An export with versions of a database that lived through `txns` seeded transactions (puts of
/// values up to 3 KiB, deletes, several keys at once), taken from an in-memory database.
fn export(seed: u64, txns: usize) -> Vec<u8> {
    let db = Db::in_memory();
    db.set_retention(Retention::All).unwrap();
    let mut r = Rng::new(seed);
    for _ in 0..txns {
        let mut tx = db.begin();
        for _ in 0..1 + r.below(4) {
            let key = format!("key{:02}", r.below(30));
            if r.below(6) == 0 {
                tx.delete(key.as_bytes()).unwrap();
            } else {
                let len = r.below(3 << 10) as usize;
                tx.put(key.as_bytes(), &vec![b'a' + r.below(26) as u8; len])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let mut out = Vec::new();
    write_export(&db, true, &mut out).unwrap();
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

/// Imports a seeded export on the simulated disk, with `bug` armed, and checks every crash state
/// of its trace. Returns the states checked and the problems found.
fn failures(bug: Option<DiskBug>) -> (usize, Vec<String>) {
    disk_bugs::disarm_all();
    let source = export(7, 120);
    let expected = records(&source);
    assert!(expected.len() > 100, "{} records", expected.len());
    let base = Image {
        files: Default::default(),
        dirs: vec![Setup::sim_dir().to_path_buf()],
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
    let mut states = 0;
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
        let mut again = Vec::new();
        write_export(&db, true, &mut again).unwrap();
        if records(&again) != expected {
            out.push(format!(
                "{at}: the target holds another state than the export ({} records of {})",
                records(&again).len(),
                expected.len()
            ));
        }
    });
    (states, out)
}

#[test]
fn every_crash_state_of_an_import_is_no_database_or_the_whole_import() {
    let _one = ARMING.lock().unwrap_or_else(|e| e.into_inner());
    let (states, problems) = failures(None);
    assert!(states > 50, "{states} crash states");
    assert!(
        problems.is_empty(),
        "{} of {states} crash states:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn an_import_that_does_not_sync_its_rename_is_caught() {
    let _one = ARMING.lock().unwrap_or_else(|e| e.into_inner());
    let (states, problems) = failures(Some(DiskBug::SkipDirRenameSync));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("returned success, the target is gone")),
        "SkipDirRenameSync not caught in {states} crash states: {problems:?}"
    );
}
