//! Engine bugs the crash runner found, each reduced to a deterministic reproduction of what the
//! contract requires: regression tests for those the engine fixed (commit 2390ddd), and ignored
//! tests for the open ones, until the engine fixes them (see `crash-tests/src/known.rs`).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use ringlog_crash::crash::{StateSpace, Sweeper, TearModel, Unit};
use ringlog_crash::setup::Setup;
use ringlog_crash::sim::{Image, Op, SimVfs};
use ringlog_db::{Db, Durability, Error, Options, Retention};

fn sim_options(sim: &SimVfs, durability: Durability) -> Options {
    Options::default()
        .durability(durability)
        .segment_size(64 << 10)
        .lease_span(4)
        .vfs(Arc::new(sim.clone()))
}

fn empty() -> Image {
    Image {
        files: Default::default(),
        dirs: vec![Setup::sim_dir().to_path_buf()],
    }
}

/// `known::SCAN_LEFT_OUT`: under `Retention::LastVersions`, a scan at an LSN whose version of a
/// key the policy trimmed leaves the key out — as if it had no value there — where `get_at`
/// answers `HistoryTrimmed`. The contract: never a newer or older version silently.
#[test]
fn a_scan_below_a_per_key_trim_is_refused_not_silently_short() {
    let db = Db::in_memory();
    db.set_retention(Retention::LastVersions(NonZeroU32::new(1).unwrap()))
        .unwrap();
    let v1 = db.put(b"a", b"1").unwrap();
    db.put(b"a", b"2").unwrap();
    db.trim_history().unwrap();
    assert!(matches!(
        db.get_at(b"a", v1),
        Err(Error::HistoryTrimmed { .. })
    ));
    match db.range_at::<&[u8], _>(.., v1) {
        Err(Error::HistoryTrimmed { .. }) => {}
        Ok(scan) => {
            let entries: Vec<_> = scan
                .map(Result::unwrap)
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect();
            assert_eq!(
                entries,
                vec![(b"a".to_vec(), b"1".to_vec())],
                "range_at at LSN {v1}: key a held 1 there"
            );
        }
        Err(e) => panic!("{e}"),
    }
}

/// `known::TRIM_IN_LEASE_GAP`: reopened after a crash whose last lease reached past the last
/// record, a database hands out LSNs from above the lease; `trim_history()` before the first
/// commit waits for the never-assigned LSNs in between to become visible, forever.
#[test]
fn trim_history_returns_after_a_crash_left_a_lease_gap() {
    let sim = SimVfs::from_image(&empty(), false, Duration::ZERO);
    let db = Db::open(Setup::sim_dir(), sim_options(&sim, Durability::Strict)).unwrap();
    for i in 0..3u8 {
        db.put(&[b'k', i], b"v").unwrap();
    }
    // A process crash: what the page cache holds, without the close (which lowers the lease).
    let img = sim.snapshot();
    std::mem::forget(db);
    let sim = SimVfs::from_image(&img, false, Duration::ZERO);
    let db = Db::open(Setup::sim_dir(), sim_options(&sim, Durability::Strict)).unwrap();
    // Nothing assigned in this run yet: the LSNs up to the lease bound were skipped.
    assert_eq!(db.last_assigned_lsn(), db.last_lsn());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let _ = tx.send(db.trim_history());
        });
        let r = rx.recv_timeout(Duration::from_secs(10));
        if r.is_err() {
            // End the wait (close makes it return) before failing.
            let _ = db.close();
        }
        r.expect("trim_history() returned")
            .expect("trim_history() succeeded");
    });
}

/// `known::FLOOR_OF_A_LOST_POLICY`: `set_retention(All)` raises the trim floor as soon as it
/// returns, before its entry is durable (a Buffered commit). A crash that loses the entry loses
/// the floor: a read refused before the crash succeeds after recovery, under the durable policy
/// entry before it.
#[test]
fn the_trim_floor_does_not_move_back_when_a_crash_loses_a_policy_entry() {
    let sim = SimVfs::from_image(&empty(), false, Duration::ZERO);
    // A Buffered window of an hour: nothing is written unless something syncs.
    let buffered = Durability::Buffered {
        interval: Duration::from_secs(3600),
        max_pending: 1 << 30,
    };
    let db = Db::open(Setup::sim_dir(), sim_options(&sim, buffered)).unwrap();
    // Under the default policy (`Snapshots`, no trim yet) the first version still reads.
    let first = db.put(b"a", b"1").unwrap();
    db.put(b"a", b"2").unwrap();
    db.sync().unwrap();
    assert!(db.get_at(b"a", first).is_ok());
    // A policy that keeps history, set after `Snapshots`, raises the floor to the LSN before
    // its entry, at once (set after another history-keeping policy it would keep what that one
    // kept: the floor would not move).
    db.set_retention(Retention::All).unwrap();
    let refused = matches!(db.get_at(b"a", first), Err(Error::HistoryTrimmed { .. }));
    assert!(refused, "set_retention raised the floor above LSN {first}");
    // The policy entry is still in the log buffer: a crash now loses it.
    let img = sim.snapshot();
    std::mem::forget(db);
    let sim = SimVfs::from_image(&img, false, Duration::ZERO);
    let db = Db::open(Setup::sim_dir(), sim_options(&sim, buffered)).unwrap();
    assert!(
        matches!(db.get_at(b"a", first), Err(Error::HistoryTrimmed { .. })),
        "a read refused before the crash is refused after it: {:?}",
        db.get_at(b"a", first)
    );
}

/// `CHECKPOINT_AT_LSN_ZERO` (known.rs): a checkpoint of a database with nothing committed is written
/// at LSN 0 with its retention-policy entry at LSN 1; every later open refuses it. No crash is
/// needed: close and reopen.
#[test]
fn a_checkpoint_of_an_empty_database_opens_again() {
    let sim = SimVfs::from_image(&empty(), false, Duration::ZERO);
    let db = Db::open(Setup::sim_dir(), sim_options(&sim, Durability::Strict)).unwrap();
    let info = db.checkpoint().unwrap();
    assert_eq!(info.lsn, 0);
    db.close().unwrap();
    let db = Db::open(Setup::sim_dir(), sim_options(&sim, Durability::Strict));
    assert!(
        db.is_ok(),
        "reopening after checkpoint() at LSN 0: {:?}",
        db.err()
    );
}

/// The disk images a power loss at trace position `p` may leave, built by `sweeper`, in which the
/// directory operations `dropped` (trace indexes) are lost and every other pending one is kept.
fn image_dropping(sweeper: &mut Sweeper<'_>, p: usize, dropped: &[usize]) -> Image {
    sweeper.advance(p);
    let units = sweeper.units();
    let space = StateSpace::new(&units, u64::MAX);
    let choices: Vec<u8> = units
        .iter()
        .map(|u| match u {
            Unit::DirOp(j) if dropped.contains(j) => 0,
            // Every write kept whole.
            Unit::Sector { same: true, .. } => 0,
            _ => 1,
        })
        .collect();
    assert!(space.total >= 1);
    sweeper.image(&units, &choices, 0)
}

/// `known::CHECKPOINT_RENAME_UNSYNCED`: a checkpoint renames `<id>.ckpt.tmp` to `<id>.ckpt`, then
/// renames the new MANIFEST into place, and fsyncs the directory only after both. A power loss
/// before that fsync may keep the MANIFEST's rename and drop the checkpoint's (directory
/// operations are durable only once their directory is fsynced, each on its own): the MANIFEST
/// then names a checkpoint that is not there, and the database does not open.
#[test]
fn a_manifest_never_names_a_checkpoint_whose_rename_is_not_durable() {
    let sim = SimVfs::from_image(&empty(), true, Duration::ZERO);
    let db = Db::open(Setup::sim_dir(), sim_options(&sim, Durability::Strict)).unwrap();
    db.put(b"k", b"v").unwrap();
    db.checkpoint().unwrap();
    let trace = sim.trace();
    std::mem::forget(db);
    let is_manifest = |to: &std::path::Path| to.file_name().is_some_and(|n| n == "MANIFEST");
    let ckpt = trace
        .iter()
        .position(
            |op| matches!(op, Op::Rename { to, .. } if to.extension().is_some_and(|e| e == "ckpt")),
        )
        .expect("the checkpoint's rename");
    let manifest = trace
        .iter()
        .rposition(|op| matches!(op, Op::Rename { to, .. } if is_manifest(to)))
        .expect("the MANIFEST's rename");
    assert!(ckpt < manifest);
    // Fixed: the directory is fsynced between the two renames, so no power loss can keep the
    // MANIFEST's rename and drop the checkpoint's (the directory fsync makes the first durable
    // before the second is issued).
    assert!(
        trace[ckpt..manifest]
            .iter()
            .any(|op| matches!(op, Op::SyncDir { .. })),
        "a directory fsync between the checkpoint's rename and the MANIFEST's"
    );
}

/// `known::LEFTOVER_REMOVED_EARLY`: a process crash between a checkpoint's MANIFEST rename and
/// its directory fsync leaves the new MANIFEST in the page cache only. The restart's open removes
/// the checkpoint it replaced as a leftover before making that MANIFEST durable; a power loss
/// then may keep the removal and drop the rename: the MANIFEST in force names the removed
/// checkpoint.
#[test]
fn open_makes_the_manifest_durable_before_removing_what_it_replaced() {
    let sim = SimVfs::from_image(&empty(), true, Duration::ZERO);
    let db = Db::open(Setup::sim_dir(), sim_options(&sim, Durability::Strict)).unwrap();
    db.put(b"k", b"1").unwrap();
    db.checkpoint().unwrap();
    db.put(b"k", b"2").unwrap();
    db.checkpoint().unwrap();
    let trace = sim.trace();
    std::mem::forget(db);
    let is_manifest = |to: &std::path::Path| to.file_name().is_some_and(|n| n == "MANIFEST");
    // The process dies right after the second checkpoint's MANIFEST rename.
    let manifest = trace
        .iter()
        .rposition(|op| matches!(op, Op::Rename { to, .. } if is_manifest(to)))
        .expect("the second MANIFEST rename");
    let restart = SimVfs::from_image(&empty(), true, Duration::ZERO);
    restart.replay(&trace[..=manifest]);
    let db = Db::open(Setup::sim_dir(), sim_options(&restart, Durability::Strict)).unwrap();
    assert_eq!(
        db.recovery_stats().leftovers_removed,
        3,
        "the first checkpoint, and the two segments below the second one's first needed \
         segment: the first checkpoint's (the put after it started a new one) and the second's \
         own (a checkpoint that starts a new segment needs none before it, FORMAT.md §13.3)"
    );
    let trace = restart.trace();
    std::mem::forget(db);
    let removal = trace
        .iter()
        .position(|op| matches!(op, Op::Remove { .. }))
        .expect("the leftover's removal");
    // A power loss right after the removal, which survives; the crashed run's rename does not.
    let mut sw = Sweeper::new(&empty(), &trace, TearModel::Sector);
    let img = image_dropping(&mut sw, removal + 1, &[manifest]);
    let sim = SimVfs::from_image(&img, false, Duration::ZERO);
    let db = Db::open(Setup::sim_dir(), sim_options(&sim, Durability::Strict));
    assert!(
        db.is_ok(),
        "the MANIFEST in force names the checkpoint the restart removed: {:?}",
        db.err()
    );
}
