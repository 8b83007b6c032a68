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

/// The `trim_threshold` of the replayable simulated modes (scheduled `power`, `fsync-error`,
/// `corrupt`): never reached, so the engine never trims in the background. Its trimmer thread
/// runs outside the scheduler (it waits for commits to become visible without telling the disk,
/// `Vfs::will_block`), so whether a read came before or after one of its trims would depend on
/// timing, and a failing read would not replay exactly. There `trim_history()` steps trim, at
/// points the seed chooses.
pub const NO_BACKGROUND_TRIM: usize = 1 << 40;

/// `Options::checkpoint_bytes` on real directories (`kill` children, `power --background`): the
/// smallest the engine accepts, so that the database also checkpoints in the background (on its
/// trimmer thread, while commits go on) every few hundred commits. The replayable simulated modes
/// turn background checkpoints off (`u64::MAX`) for the reason of [`NO_BACKGROUND_TRIM`]: there
/// `Step::Checkpoint` steps checkpoint, at points the seed chooses.
pub const REAL_CHECKPOINT_BYTES: u64 = 1 << 20;

/// Turns on the engine's test knobs that make a campaign's small databases take the paths large
/// ones take (recovery's sorted chunks: `failpoints::small_recovery_chunks`; segments streamed
/// in several pieces: `failpoints::small_read_pieces`). Every mode calls it first; idempotent.
pub fn exercise_large_paths() {
    ringlog_db::failpoints::small_recovery_chunks(true);
    ringlog_db::failpoints::small_read_pieces(true);
}

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
    /// `Options::lease_span`: LSNs per lease (4–16 for seven seeds in eight, so that leases are
    /// renewed, and wait for their sync, inside a short workload; the default for the others).
    pub lease_span: u64,
    /// `Options::trim_threshold`: garbage versions before a background history trim. 8–32 on
    /// real directories and in `--background` runs, so that the background trimmer runs while
    /// commits go on and snapshots are held; [`NO_BACKGROUND_TRIM`] in the replayable simulated
    /// modes, where `trim_history()` steps trim instead (see [`NO_BACKGROUND_TRIM`]).
    pub trim_threshold: usize,
    /// `Options::checkpoint_bytes`: [`REAL_CHECKPOINT_BYTES`] on real directories and in
    /// `--background` runs, `u64::MAX` (no background checkpoint) in the replayable simulated
    /// modes, where `Step::Checkpoint` steps checkpoint.
    pub checkpoint_bytes: u64,
    /// `Options::rounds_in_flight`: 8 in the simulated modes (whose driver decides, per
    /// generation, whether it keeps rounds in flight: [`crate::sim::SimVfs::pipelined`]); on
    /// real directories odd seeds keep 2–8 rounds in flight on the io_uring path, even seeds one
    /// at a time.
    pub rounds_in_flight: usize,
    /// `Options::value_threshold`: for half of the seeds, values of at least 20 (every value),
    /// 64, 121 or 701 bytes leave memory at checkpoints and are read back from the segments, so
    /// that compaction, recovery and every read meet values on disk; `None` for the others.
    pub value_threshold: Option<usize>,
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
            lease_span: {
                let mut l = Rng::from_words(&[seed, 0x1EA5E]);
                if l.chance(125) {
                    ringlog_db::Options::default().lease_span
                } else {
                    l.range(4, 16)
                }
            },
            trim_threshold: if simulated {
                NO_BACKGROUND_TRIM
            } else {
                Rng::from_words(&[seed, 0x7819]).range(8, 32) as usize
            },
            checkpoint_bytes: if simulated {
                u64::MAX
            } else {
                REAL_CHECKPOINT_BYTES
            },
            rounds_in_flight: {
                let mut k = Rng::from_words(&[seed, 0x919E]);
                if simulated {
                    8
                } else if seed.is_multiple_of(2) {
                    1
                } else {
                    k.range(2, 8) as usize
                }
            },
            value_threshold: {
                // Its own stream: adding it changed no earlier choice of a seed.
                let mut v = Rng::from_words(&[seed, 0x7A1E]);
                v.chance(500)
                    .then(|| [20, 64, 121, 701][v.below(4) as usize])
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
            .recovery(RecoveryMode::Strict)
            .lease_span(self.lease_span)
            .trim_threshold(self.trim_threshold)
            .checkpoint_bytes(self.checkpoint_bytes)
            .rounds_in_flight(self.rounds_in_flight)
            .value_threshold(self.value_threshold)
            // Small, so that reads also miss it.
            .value_cache_bytes(16 << 10);
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
            return ringlog_db::Db::in_memory_with_options(self.options(None, io));
        }
        ringlog_db::Db::open(dir, self.options(vfs, io))
    }

    /// One line naming the configuration.
    pub fn describe(&self) -> String {
        format!(
            "seed={} durability={} keys={} segment={} KiB align={} prealloc={:?} sync={:?} committers={} lease_span={} trim_threshold={} checkpoint_bytes={} rounds_in_flight={} value_threshold={}",
            self.wl.cfg.seed,
            self.wl.cfg.durability(),
            self.wl.cfg.keys,
            self.segment_size >> 10,
            if self.direct_io { 4096 } else { 512 },
            self.prealloc,
            self.strategy,
            self.committers,
            self.lease_span,
            self.trim_threshold,
            if self.checkpoint_bytes == u64::MAX {
                "off".to_string()
            } else {
                self.checkpoint_bytes.to_string()
            },
            self.rounds_in_flight,
            self.value_threshold
                .map_or_else(|| "off".to_string(), |t| t.to_string())
        )
    }

    /// The simulated database directory.
    pub fn sim_dir() -> &'static Path {
        Path::new(SIM_DIR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kill`'s default seeds (1 and 2) cover both commit paths on real directories: one keeps
    /// log rounds in flight (the io_uring pipeline), one writes them one at a time.
    #[test]
    fn the_default_kill_seeds_run_with_and_without_rounds_in_flight() {
        let k: Vec<usize> = (1..3)
            .map(|seed| Setup::derive(seed, Mode::Strict, false).rounds_in_flight)
            .collect();
        eprintln!("rounds_in_flight of kill seeds 1, 2: {k:?}");
        assert!(k.contains(&1) && k.iter().any(|&n| n > 1), "{k:?}");
        assert_eq!(Setup::derive(1, Mode::Strict, true).rounds_in_flight, 8);
    }
}
