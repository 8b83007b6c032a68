//! `fsync-error` mode: the n-th fdatasync or directory fsync fails, for every n a fault-free run
//! performs (or a sample of them). As on Linux, the failed sync leaves the pending data kept,
//! dropped or torn at random and clean, so a retried sync succeeds without persisting anything.
//! The failing commit must not be acknowledged, the database must refuse further writes, and
//! after reopening the oracle must hold with the failed commit indeterminate.
//!
//! `write-error` mode, the same sweep over writes: the n-th write (or `allocate` extending a
//! file, or log round handed to a pipelined driver, which is then refused before anything of it
//! is written) fails with `EIO` or `ENOSPC` after writing a prefix of its bytes, none to all
//! ([`crate::sim::FaultPlan::fail_write`]). A failed log write is fatal as a failed sync is
//! (docs/DURABILITY.md §3); a failed checkpoint, MANIFEST or value-log write fails that step
//! alone and the database keeps serving.

use std::time::{Duration, Instant};

use ringlog_db::{Db, IoChoice};

use crate::power::{self, PowerOptions};
use crate::report::Summary;
use crate::rng::Rng;
use crate::setup::Setup;
use crate::sim::{Image, SimVfs};

/// Which operation the sweep fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The n-th sync (`fsync-error`).
    Sync,
    /// The n-th write (`write-error`).
    Write,
}

/// Syncs a fault-free run of `steps` steps of `seed` performs (open and close included).
pub fn count_syncs(seed: u64, mode: crate::workload::Mode, steps: u64) -> u64 {
    count(seed, mode, steps).0
}

/// Syncs and writes a fault-free run of `steps` steps of `seed` performs (open and close
/// included).
fn count(seed: u64, mode: crate::workload::Mode, steps: u64) -> (u64, u64) {
    let setup = Setup::derive(seed, mode, true);
    let img = Image {
        files: Default::default(),
        dirs: vec![Setup::sim_dir().to_path_buf()],
    };
    let sim = SimVfs::from_image(&img, false, Duration::ZERO);
    // On the virtual clock the run itself has (a close under NewerThan may write the MANIFEST).
    sim.set_wall(setup.wl.clock_at(1, 0));
    let Ok(db) = Db::open(
        Setup::sim_dir(),
        setup.options(Some(sim.vfs()), IoChoice::Auto),
    ) else {
        return (0, 0);
    };
    let session = crate::workload::Session::new().set_clock(sim.wall_clock());
    for i in 1..=steps {
        if setup.wl.execute(&db, 1, i, &session).is_err() {
            break;
        }
    }
    session.drop_snapshots();
    let _ = db.close();
    (sim.syncs(), sim.writes())
}

/// Runs the `fsync-error` sweep: for each seed, fail sync `n` for every `n` up to the number of
/// syncs of a fault-free run, or for `max_per_seed` of them chosen at random when there are more.
pub fn run(opts: &PowerOptions, max_per_seed: u64) -> Summary {
    sweep(opts, max_per_seed, Fault::Sync)
}

/// Runs the `write-error` sweep: [`run`] over writes instead of syncs.
pub fn run_writes(opts: &PowerOptions, max_per_seed: u64) -> Summary {
    sweep(opts, max_per_seed, Fault::Write)
}

/// The sweep of `fault`: [`run`] for syncs, [`run_writes`] for writes.
pub fn sweep(opts: &PowerOptions, max_per_seed: u64, fault: Fault) -> Summary {
    crate::setup::exercise_large_paths();
    let started = Instant::now();
    let name = match fault {
        Fault::Sync => "fsync-error",
        Fault::Write => "write-error",
    };
    let mut total = Summary::new(name, &opts.model.to_string());
    for (i, &seed) in opts.seeds.iter().enumerate() {
        let mode = opts.modes[i % opts.modes.len().max(1)];
        let (syncs, writes) = count(seed, mode, opts.steps);
        let (given, count) = match fault {
            Fault::Sync => (opts.fail_sync, syncs),
            Fault::Write => (opts.fail_write, writes),
        };
        let ns: Vec<u64> = match given {
            Some(n) => vec![n],
            None if count <= max_per_seed => (1..=count).collect(),
            None => {
                // (The fsync-error sample keeps its seed: old reproductions stay valid.)
                let salt = if fault == Fault::Sync { 0xF5 } else { 0x3F5 };
                let mut r = Rng::from_words(&[seed, salt]);
                let mut v: Vec<u64> = (0..max_per_seed).map(|_| r.range(1, count)).collect();
                v.sort_unstable();
                v.dedup();
                v
            }
        };
        for n in ns {
            let one = PowerOptions {
                seeds: vec![seed],
                modes: vec![mode],
                fail_sync: (fault == Fault::Sync).then_some(n),
                fail_write: (fault == Fault::Write).then_some(n),
                progress: false,
                ..opts.clone()
            };
            let mut s = power::run(&one);
            s.seeds = 0;
            total.merge(s);
            if opts.stop_on_first && !total.failures.is_empty() {
                total.elapsed = started.elapsed();
                total.seeds += i as u64 + 1;
                return total;
            }
        }
        if opts.progress {
            eprint!(
                "\r[{}/{}] seeds, {} states, {} violations   ",
                i + 1,
                opts.seeds.len(),
                total.states,
                total.failures.len()
            );
        }
    }
    if opts.progress {
        eprintln!();
    }
    total.seeds = opts.seeds.len() as u64;
    total.elapsed = started.elapsed();
    total
}
