//! A reopened database makes the log it recovered durable before it builds on it — also when it
//! does not append to the last segment but starts a new one with its first commit (`open.rs`: a
//! tail at or past the rotation size, a torn tail, a tail of an earlier format or alignment).
//!
//! A process crash between a round's write and its sync leaves the round in the page cache only.
//! The next run recovers it (its commits become visible to readers) and later starts a new
//! segment whose header records where the old one ends. If the old segment's tail is not synced
//! first, a power loss then drops those bytes while the new segment survives: the log claims an
//! end its previous segment does not reach, and the database does not open (commits a reader
//! saw are gone). The crash runner's planted `SkipResyncOnReopen` covers this in its campaigns;
//! this is the deterministic reproduction, on the simulated disk.
//!
//! The third branch of that choice — a truncating recovery's cut, after which the open creates
//! the new segment at once — syncs the tail too, and a session-33 mutation audit found that
//! removing that sync fails nothing. Analysed (session 34, and checked by its review): no crash
//! order needs it. A cut is at damage proven durable by a later batch, at bytes that cannot be
//! a record (out of range), or at a bad, missing or out-of-order later segment; rounds are
//! written in order, floors are taken when a batch closes, and a segment is created only when no
//! round is in flight, so a round a crashed run left in the page cache only lies after the cut
//! and goes with it. It is needed without a crash: a faulty writer's checksum-valid bytes that
//! cannot be a record, right after a round still in the page cache, make a cut that keeps that
//! round — so the sync stays.
//!
//! Deterministic: one trace, one cut, one power-loss image (every pending write dropped).

use std::sync::Arc;
use std::time::Duration;

use ringlog_crash::crash::{Sweeper, TearModel};
use ringlog_crash::setup::Setup;
use ringlog_crash::sim::{Image, Op, SimVfs};
use ringlog_db::{Db, Durability, Options};

fn empty() -> Image {
    Image {
        files: Default::default(),
        dirs: vec![Setup::sim_dir().to_path_buf()],
    }
}

fn options(sim: &SimVfs, segment_size: u64) -> Options {
    Options::default()
        .durability(Durability::Strict)
        .segment_size(segment_size)
        .vfs(Arc::new(sim.clone()))
}

#[test]
fn a_reopen_that_will_start_a_new_segment_syncs_the_recovered_tail_first() {
    // Run 1: 80 KiB of commits in one 1 MiB segment; the process dies after the last round's
    // write, before its sync.
    let value = vec![0x5a; 1 << 10];
    let sim = SimVfs::from_image(&empty(), true, Duration::ZERO);
    let db = Db::open(Setup::sim_dir(), options(&sim, 1 << 20)).unwrap();
    for i in 0..80u32 {
        db.put(format!("k{i:03}").as_bytes(), &value).unwrap();
    }
    let trace = sim.trace();
    std::mem::forget(db);
    let last_sync = trace
        .iter()
        .rposition(|op| matches!(op, Op::Sync { .. }))
        .expect("the last round's sync");
    let Op::Sync { ino } = trace[last_sync] else {
        unreachable!()
    };
    let cut = trace[..last_sync]
        .iter()
        .rposition(|op| matches!(op, Op::Write { ino: w, .. } if *w == ino))
        .expect("the last round's write");

    // Run 2 on the crashed disk (its page cache holds the last round, unsynced), with segments of
    // 64 KiB: the tail is past the rotation size, so the first commit starts a new segment.
    let restart = SimVfs::from_image(&empty(), true, Duration::ZERO);
    restart.replay(&trace[..=cut]);
    let db = Db::open(Setup::sim_dir(), options(&restart, 64 << 10)).unwrap();
    let seen: Vec<u32> = (0..80u32)
        .filter(|i| {
            db.get(format!("k{i:03}").as_bytes())
                .unwrap()
                .is_some_and(|v| v[..] == value[..])
        })
        .collect();
    assert_eq!(
        seen,
        (0..80).collect::<Vec<_>>(),
        "run 2 recovers all of run 1, the unsynced last round included"
    );
    db.put(b"after", b"1").unwrap();
    let trace = restart.trace();
    std::mem::forget(db);

    // A power loss at the end of run 2 that drops every write still unsynced.
    let mut sw = Sweeper::new(&empty(), &trace, TearModel::Sector);
    sw.advance(trace.len());
    // (With the resync nothing is left pending here; without it, run 1's last round is.)
    let units = sw.units();
    let image = sw.image(&units, &vec![0; units.len()], 0);
    let sim = SimVfs::from_image(&image, false, Duration::ZERO);
    let db = Db::open(Setup::sim_dir(), options(&sim, 64 << 10)).unwrap_or_else(|e| {
        panic!("the log whose new segment outlived its predecessor's unsynced tail: {e}")
    });
    for &i in &seen {
        assert_eq!(
            db.get(format!("k{i:03}").as_bytes()).unwrap().as_deref(),
            Some(&value[..]),
            "k{i:03}, read in run 2 before its Strict commit, lost by a power loss after it"
        );
    }
    assert_eq!(db.get(b"after").unwrap().as_deref(), Some(&b"1"[..]));
}
