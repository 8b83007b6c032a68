//! Online backup under power loss (`Db::backup_to`): every crash state of a backup, at every
//! position of its trace, leaves a backup directory that is either not a database yet (no
//! MANIFEST) or opens with exactly the source's state at the backup's LSN, and a source that
//! opens with all of its data — also from a source whose values live on disk (value segments a
//! checkpoint refers to: the copy must hold the values themselves). Planted bug
//! `CheckpointWithoutSync` (the backup's checkpoint named by its MANIFEST without its fdatasync)
//! is caught.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringlog_crash::crash::{for_each_state, TearModel};
use ringlog_crash::setup::Setup;
use ringlog_crash::sim::disk_bugs::{self, DiskBug};
use ringlog_crash::sim::{Image, SimVfs};
use ringlog_db::{Db, Durability, Options};

/// Planted bugs are process-wide: one test arms at a time.
static ARMING: Mutex<()> = Mutex::new(());

fn opts(sim: &SimVfs, values_on_disk: bool) -> Options {
    Options::default()
        .durability(Durability::Strict)
        .segment_size(64 << 10)
        .value_threshold(values_on_disk.then_some(64))
        .vfs(Arc::new(sim.clone()))
}

fn contents(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
    db.range::<&[u8], _>(..)
        .unwrap()
        .map(Result::unwrap)
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

fn backup_dir() -> PathBuf {
    Setup::sim_dir().with_file_name("backup")
}

/// Runs a backup of a database holding some history, records its trace, and returns the number
/// of crash states checked and every crash state's problem (none when all are sound).
/// `values_on_disk`: values above 64 bytes live in the log, and a checkpoint before the backup
/// makes the source refer to them in its value segments.
fn failures(bug: Option<DiskBug>, values_on_disk: bool) -> (usize, Vec<String>) {
    disk_bugs::disarm_all();
    let base = Image {
        files: Default::default(),
        dirs: vec![Setup::sim_dir().to_path_buf()],
    };
    let sim = SimVfs::from_image(&base, false, Duration::ZERO);
    let db = Db::open(Setup::sim_dir(), opts(&sim, values_on_disk)).unwrap();
    for i in 0..40u8 {
        db.put(&[b'k', i % 25], &[i; 700]).unwrap();
    }
    db.delete(b"k\x03").unwrap();
    if values_on_disk {
        db.checkpoint().unwrap();
    }
    let expected = contents(&db);
    db.close().unwrap();
    drop(db);
    // The source exists, durably: from here on every operation is recorded.
    let before = sim.snapshot();
    let sim = SimVfs::from_image(&before, true, Duration::ZERO);
    let db = Db::open(Setup::sim_dir(), opts(&sim, values_on_disk)).unwrap();
    if let Some(b) = bug {
        disk_bugs::arm(b);
    }
    let info = db.backup_to(backup_dir()).unwrap();
    disk_bugs::disarm_all();
    assert!(info.lsn > 0 && info.keys == 24, "{info:?}");
    let trace = sim.trace();
    std::mem::forget(db);
    let mut out = Vec::new();
    let mut states = 0;
    for_each_state(&before, &trace, TearModel::Sector, 8, 5, |p, idx, img| {
        let done = p == trace.len();
        states += 1;
        if let Some(problem) = check_state(&img, &expected, done, values_on_disk) {
            out.push(format!(
                "position {p}/{} state {idx}: {problem}",
                trace.len()
            ));
        }
    });
    (states, out)
}

/// What is wrong with crash image `img` of a backup of a database whose state is `expected`;
/// `done`: the backup had returned.
fn check_state(
    img: &Image,
    expected: &BTreeMap<Vec<u8>, Vec<u8>>,
    done: bool,
    values_on_disk: bool,
) -> Option<String> {
    let has_manifest = img.files.contains_key(&backup_dir().join("MANIFEST"));
    let sim = SimVfs::from_image(img, false, Duration::ZERO);
    match Db::open(Setup::sim_dir(), opts(&sim, values_on_disk)) {
        Ok(src) if contents(&src) == *expected => {}
        Ok(_) => return Some("the source lost data".into()),
        Err(e) => return Some(format!("the source does not open: {e}")),
    }
    if done && !has_manifest {
        return Some("the backup returned, but its MANIFEST is not durable".into());
    }
    if !has_manifest {
        return None;
    }
    match Db::open(backup_dir(), opts(&sim, values_on_disk)) {
        Ok(copy) if contents(&copy) == *expected => None,
        Ok(copy) => Some(format!(
            "the backup opens with {} keys, not the source's {}",
            contents(&copy).len(),
            expected.len()
        )),
        Err(e) => Some(format!("the backup has a MANIFEST but does not open: {e}")),
    }
}

fn name(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn every_crash_state_of_a_backup_is_no_backup_or_the_whole_backup() {
    let _g = ARMING.lock().unwrap_or_else(|e| e.into_inner());
    every_state_sound(false);
}

/// Every crash state of a backup is sound: the backup's trace (its checkpoint's writes,
/// fdatasync and rename, the MANIFEST's temp file, fdatasync, rename and directory fsyncs; several
/// states at each position) leaves no backup or the whole backup, and the source intact.
fn every_state_sound(values_on_disk: bool) {
    let (states, f) = failures(None, values_on_disk);
    assert!(states > 20, "{states} crash states");
    eprintln!("{states} crash states of a backup, none failing");
    assert!(
        f.is_empty(),
        "{} failing states under {}, e.g. {:?}",
        f.len(),
        name(&backup_dir()),
        &f[..f.len().min(3)]
    );
}

#[test]
fn a_backup_checkpoint_named_before_its_fdatasync_is_caught() {
    let _g = ARMING.lock().unwrap_or_else(|e| e.into_inner());
    let (_, f) = failures(Some(DiskBug::CheckpointWithoutSync), false);
    eprintln!("{} failing states, e.g. {:?}", f.len(), f.first());
    assert!(
        f.iter()
            .any(|x| x.contains("does not open") || x.contains("keys, not")),
        "CheckpointWithoutSync is caught in a backup: {:?}",
        &f[..f.len().min(3)]
    );
}

/// The source keeps its values in value segments a checkpoint refers to: the backup (a
/// checkpoint and a MANIFEST, no segments) must hold the values themselves. A mutation audit
/// found no campaign noticing a backup that wrote references to segments it does not copy (the
/// copy does not open: a segment is missing).
#[test]
fn every_crash_state_of_a_backup_of_values_on_disk_is_no_backup_or_the_whole_backup() {
    let _g = ARMING.lock().unwrap_or_else(|e| e.into_inner());
    every_state_sound(true);
}
