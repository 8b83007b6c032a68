//! Engine bugs the crash runner found, each reduced to a deterministic reproduction of what the
//! contract requires: regression tests now that the engine fixed them (commit 2390ddd; see
//! `crash-tests/src/known.rs`).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use ringlog_crash::setup::Setup;
use ringlog_crash::sim::{Image, SimVfs};
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
            let entries: Vec<_> = scan.map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
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
    // A policy that keeps history, durable: after a restart the floor is the LSN before it.
    db.set_retention(Retention::All).unwrap();
    let first = db.put(b"a", b"1").unwrap();
    db.put(b"a", b"2").unwrap();
    db.sync().unwrap();
    assert!(db.get_at(b"a", first).is_ok());
    // Setting it again raises the floor to the LSN before the new entry, at once.
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
