//! The database configuration of a run, derived from its seed so that a seed names everything.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ringlog_db::io::Vfs;
use ringlog_db::{IoChoice, Options, Preallocate, RecoveryMode, SyncStrategy};

use crate::rng::Rng;
use crate::workload::{Mode, Workload, WorkloadConfig};

/// Where the simulated modes put the database on the simulated disk.
pub const SIM_DIR: &str = "/sim/db";

/// Everything about a run that the seed decides.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The workload.
    pub wl: Workload,
    /// Segment size (small, so that runs rotate often).
    pub segment_size: u64,
    /// `Options::direct_io` (batch alignment 4096 when true, 512 when false).
    pub direct_io: bool,
    /// Segment preparation.
    pub prealloc: Preallocate,
    /// How batches are made durable.
    pub strategy: SyncStrategy,
    /// Committer threads of a scheduled `power` run (1 for a quarter of the seeds, else 2–8).
    pub committers: usize,
}

impl Setup {
    /// The setup of `seed` with default durability `mode`. `simulated` runs never sync in the
    /// background (a `Buffered` window of an hour and no pending limit), so that a run's I/O
    /// trace depends only on the seed; real runs use a window of a few milliseconds.
    pub fn derive(seed: u64, mode: Mode, simulated: bool) -> Setup {
        Setup::derive_with(seed, mode, simulated, false)
    }

    /// The setup of `seed` for a run on the deterministic scheduler ([`crate::sched`]): the
    /// `Buffered` window (2–10 ms, 16–64 KiB) runs on simulated time, so the timer and the
    /// pending limit start rounds and a seed still replays exactly.
    pub fn derive_scheduled(seed: u64, mode: Mode) -> Setup {
        Setup::derive_with(seed, mode, true, true)
    }

    fn derive_with(seed: u64, mode: Mode, simulated: bool, scheduled: bool) -> Setup {
        let mut r = Rng::from_words(&[seed, 0x5E70]);
        let keys = r.range(6, 40) as u16;
        let (interval, max_pending) = if simulated && !scheduled {
            (Duration::from_secs(3600), usize::MAX / 8)
        } else {
            (
                Duration::from_millis(r.range(2, 10)),
                r.range(16, 64) as usize * 1024,
            )
        };
        Setup {
            wl: Workload::new(WorkloadConfig {
                seed,
                mode,
                keys,
                interval,
                max_pending,
                real_time: !simulated,
            }),
            segment_size: if r.chance(700) { 64 << 10 } else { 128 << 10 },
            direct_io: r.chance(400),
            prealloc: match r.below(10) {
                0..=5 => Preallocate::ZeroFill,
                6..=7 => Preallocate::Fallocate,
                _ => Preallocate::None,
            },
            strategy: if r.chance(500) {
                SyncStrategy::WriteThenSync
            } else {
                SyncStrategy::Dsync
            },
            committers: {
                // Drawn from its own stream: adding it changed no earlier choice of a seed.
                let mut c = Rng::from_words(&[seed, 0xC0AA1]);
                if c.chance(250) {
                    1
                } else {
                    c.range(2, 8) as usize
                }
            },
        }
    }

    /// Database options: on `vfs` when given, else on the real I/O path `io`.
    pub fn options(&self, vfs: Option<Arc<dyn Vfs>>, io: IoChoice) -> Options {
        let o = Options::default()
            .durability(self.wl.cfg.durability())
            .segment_size(self.segment_size)
            .io(io)
            .direct_io(self.direct_io)
            .sync_strategy(self.strategy)
            .preallocate(self.prealloc)
            .recovery(RecoveryMode::Strict);
        match vfs {
            Some(v) => o.vfs(v),
            None => o,
        }
    }

    /// Opens the database in `dir` with [`Setup::options`]: `Db::open`, or `Db::in_memory` for an
    /// `InMemory` workload (which has no directory).
    pub fn open(
        &self,
        dir: &Path,
        vfs: Option<Arc<dyn Vfs>>,
        io: IoChoice,
    ) -> ringlog_db::Result<ringlog_db::Db> {
        if self.wl.cfg.durability() == ringlog_db::Durability::InMemory {
            return Ok(ringlog_db::Db::in_memory());
        }
        ringlog_db::Db::open(dir, self.options(vfs, io))
    }

    /// One line naming the configuration.
    pub fn describe(&self) -> String {
        format!(
            "seed={} durability={} keys={} segment={} KiB align={} prealloc={:?} sync={:?} committers={}",
            self.wl.cfg.seed,
            self.wl.cfg.durability(),
            self.wl.cfg.keys,
            self.segment_size >> 10,
            if self.direct_io { 4096 } else { 512 },
            self.prealloc,
            self.strategy,
            self.committers
        )
    }

    /// The simulated database directory.
    pub fn sim_dir() -> &'static Path {
        Path::new(SIM_DIR)
    }
}
