//! `fsync-error` mode: the n-th fdatasync or directory fsync fails, for every n a fault-free run
//! performs (or a sample of them). As on Linux, the failed sync leaves the pending data kept,
//! dropped or torn at random and clean, so a retried sync succeeds without persisting anything.
//! The failing commit must not be acknowledged, the database must refuse further writes, and
//! after reopening the oracle must hold with the failed commit indeterminate.

use std::time::{Duration, Instant};

use ringlog_db::{Db, IoChoice};

use crate::power::{self, PowerOptions};
use crate::report::Summary;
use crate::rng::Rng;
use crate::setup::Setup;
use crate::sim::{Image, SimVfs};

/// Syncs a fault-free run of `steps` steps of `seed` performs (open and close included).
pub fn count_syncs(seed: u64, mode: crate::workload::Mode, steps: u64) -> u64 {
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
        return 0;
    };
    let session = crate::workload::Session::new().set_clock(sim.wall_clock());
    for i in 1..=steps {
        if setup.wl.execute(&db, 1, i, &session).is_err() {
            break;
        }
    }
    session.drop_snapshots();
    let _ = db.close();
    sim.syncs()
}

/// Runs the sweep: for each seed, fail sync `n` for every `n` up to the number of syncs of a
/// fault-free run, or for `max_per_seed` of them chosen at random when there are more.
pub fn run(opts: &PowerOptions, max_per_seed: u64) -> Summary {
    crate::setup::exercise_large_paths();
    let started = Instant::now();
    let mut total = Summary::new("fsync-error", &opts.model.to_string());
    for (i, &seed) in opts.seeds.iter().enumerate() {
        let mode = opts.modes[i % opts.modes.len().max(1)];
        let count = count_syncs(seed, mode, opts.steps);
        let ns: Vec<u64> = match opts.fail_sync {
            Some(n) => vec![n],
            None if count <= max_per_seed => (1..=count).collect(),
            None => {
                let mut r = Rng::from_words(&[seed, 0xF5]);
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
                fail_sync: Some(n),
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
