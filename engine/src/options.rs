use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ringlog_format::{RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
pub use ringlog_uring::{IoChoice, SyncStrategy, Vfs};

use crate::{Error, Result};

/// The largest [`Options::lease_span`] accepted: what a truncating recovery skips per lost
/// segment, so that no LSN a lost lease covered is handed out again.
pub(crate) const MAX_LEASE_SPAN: u64 = 1 << 40;

/// When a commit is acknowledged, and what survives a crash. See the crate documentation's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// No log at all: nothing is ever written, no file is created; everything is lost on close.
    InMemory,
    /// A commit is acknowledged once its record is in the in-memory log buffer. A background
    /// write + fdatasync runs when `interval` has passed since the first unsynced commit or when
    /// `max_pending` bytes are waiting, whichever comes first. A crash loses at most the commits
    /// of that window (never a partial transaction, never a hole). A commit may still wait: for
    /// a sync when no durable LSN lease covers it (the first commit of each run, and one that
    /// outruns the lease's renewal: [`Options::lease_span`]), for the log thread past the
    /// backpressure limit, and for an earlier `Strict` commit to become visible with it
    /// (docs/DURABILITY.md, "What a Buffered commit may wait for").
    Buffered {
        /// Longest time a commit stays unsynced: above zero, at most
        /// [`Durability::MAX_BUFFERED_INTERVAL`] (one day).
        interval: Duration,
        /// Unsynced bytes that trigger a sync before the interval ends (above zero).
        max_pending: usize,
    },
    /// A commit is acknowledged only after the write and an fdatasync covering it completed.
    /// Concurrent committers share syncs (group commit).
    Strict,
}

impl Durability {
    /// `Buffered` with a 10 ms window and a 4 MiB pending limit.
    pub const BUFFERED: Durability = Durability::Buffered {
        interval: Duration::from_millis(10),
        max_pending: 4 << 20,
    };

    /// The longest `Buffered` interval accepted (one day): a longer one is
    /// [`crate::Error::InvalidOptions`], at open or in a transaction's override.
    pub const MAX_BUFFERED_INTERVAL: Duration = Duration::from_secs(24 * 3600);
}

impl Default for Durability {
    fn default() -> Self {
        Durability::BUFFERED
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::InMemory => f.write_str("inmemory"),
            Durability::Buffered {
                interval,
                max_pending,
            } => {
                write!(f, "buffered({interval:?}, {max_pending} B)")
            }
            Durability::Strict => f.write_str("strict"),
        }
    }
}

/// What recovery does when it finds damage followed by valid records (mid-log corruption).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// Fail to open with [`Error::Corruption`] naming the file and offset (the default). A torn or
    /// zeroed tail is always cut off: it is the expected result of a crash.
    #[default]
    Strict,
    /// Cut the log at the first damage: later records, including later segments, are dropped
    /// (the later segment files are renamed `*.corrupt.N`, not deleted; damage in a segment,
    /// including a bad or foreign segment header or an LSN out of order, cuts the log there). A
    /// segment file longer than the format allows, or named with an id above its maximum, is
    /// refused as in `Strict` (docs/DURABILITY.md §4). Explicit data loss, for operators who
    /// prefer an open database to an intact log.
    TruncateAtCorruption,
}

/// How segment files are prepared before records are written to them. A new segment is prepared
/// to its first extent (an eighth of `segment_size`, at most 1 MiB), and further in steps
/// (doubling, at most 8 MiB) as the log reaches the prepared end; each step is made durable by the
/// sync of the round that needed it (docs/FORMAT.md §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Preallocate {
    /// Reserve each step with `fallocate` and write zeros over it once, so that later
    /// fdatasyncs have no metadata (extent conversion, file size) to write except at a step.
    /// The default.
    #[default]
    ZeroFill,
    /// Reserve each step with `fallocate` only (unwritten extents).
    Fallocate,
    /// Neither: the file grows as records are appended.
    None,
}

/// Settings for [`crate::Db::open`]. Build them with the chainable setters, starting from the
/// defaults (new fields may be added in minor versions, so the struct cannot be written as a
/// literal outside this crate):
///
/// ```
/// use ringlog_db::{Durability, Options, Preallocate};
/// let opts = Options::default()
///     .durability(Durability::Strict)
///     .segment_size(16 << 20)
///     .preallocate(Preallocate::Fallocate);
/// assert_eq!(opts.durability, Durability::Strict);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Options {
    /// Default durability of commits. Default: [`Durability::BUFFERED`].
    pub durability: Durability,
    /// Size of each log segment file in bytes: a multiple of 4096 between 64 KiB and 1 GiB.
    /// Default 64 MiB. A transaction must fit in one segment. With values on disk
    /// ([`Options::value_threshold`]) the log moves to a new segment earlier in a small
    /// database: past a sixteenth of its live values, at least 4 MiB (or a quarter of this size,
    /// if less), so that garbage collection reclaims space in pieces of that size
    /// (docs/DURABILITY.md §8).
    pub segment_size: u64,
    /// Which I/O path to use. Default: [`IoChoice::Auto`], which probes io_uring and falls back to
    /// the portable path — or follows the `RINGLOG_IO` environment variable (`uring`, `portable`,
    /// `auto`) when it is set. An explicit `Uring` or `Portable` is never overridden.
    pub io: IoChoice,
    /// Open segments with `O_DIRECT` where the filesystem allows (falls back to buffered I/O,
    /// logged once, where it does not). Default: true.
    pub direct_io: bool,
    /// How a batch is made durable. Default: [`SyncStrategy::default()`], i.e.
    /// [`SyncStrategy::Dsync`] — one `RWF_DSYNC` write per batch, measured fastest on both I/O
    /// paths (docs/DURABILITY.md), and used only on filesystems known to honour it (ext4, xfs,
    /// btrfs, tmpfs); elsewhere, and when [`SyncStrategy::WriteThenSync`] is asked for, each write
    /// is followed by an fdatasync. [`crate::Stats::sync_strategy`] tells which is in effect.
    pub sync_strategy: SyncStrategy,
    /// How new segments are prepared. Default: [`Preallocate::ZeroFill`].
    pub preallocate: Preallocate,
    /// What recovery does on mid-log corruption. Default: [`RecoveryMode::Strict`].
    pub recovery: RecoveryMode,
    /// A custom I/O layer (a simulated or fault-injecting disk). When set, `io` is ignored.
    pub vfs: Option<Arc<dyn Vfs>>,
    /// Superseded versions (and tombstones) the index accumulates before a background trim drops
    /// the ones no retention policy or snapshot needs — at least; a trim also waits for garbage
    /// of a quarter of the versions the index holds (and twice what the previous trim had to
    /// keep), because each trim copies every version it keeps: that bounds the copying to a few
    /// copies per superseded version however large the index. Default 65,536; at least 1. Lower
    /// values bound memory more tightly for small indexes at the cost of more frequent trims.
    pub trim_threshold: usize,
    /// LSNs one lease record reserves (see docs/DURABILITY.md, "LSNs are never reused"): a run
    /// writes a lease before handing out LSNs beyond the previous one, and the next run starts
    /// above the last lease. Default 65,536; at least 2.
    pub lease_span: u64,
    /// Log rounds (write + sync) the log thread may keep in flight at once: while one round's
    /// sync runs, the next round's write is already with the device, and the durable LSN
    /// advances over the rounds completed in order (docs/DURABILITY.md §2, "Rounds in flight").
    /// Only the io_uring path keeps several in flight (up to 8); the portable path and custom
    /// disks without a pipelined driver write one round at a time whatever this says, and so does
    /// a segment written through the page cache (`direct_io` false, or `O_DIRECT` refused by the
    /// filesystem): two of its syncs in flight at once could share one writeback error. Default 1
    /// (no pipeline): on the machine the defaults were measured on (a 2-vCPU VM, virtio disk),
    /// 2–8 rounds in flight made more, smaller rounds and 5–15 % fewer commits per second at 16
    /// and 64 writers, whose commits are bound by CPU and wake-ups there, not by the device
    /// (docs/BENCHMARKS.md, "Session 9"). Worth trying where the device serves concurrent
    /// flushes faster than one at a time and the CPU is not the limit. Between 1 and 16.
    pub rounds_in_flight: usize,
    /// Bytes of log appended after which the database writes a checkpoint and compacts the log
    /// in the background ([`crate::Db::checkpoint`]). Default 256 MiB; `u64::MAX` turns
    /// background checkpoints off (explicit ones still work). At least 1 MiB. A background
    /// checkpoint is also due once the log since the last checkpoint is as large as that
    /// checkpoint (at least 64 MiB; with [`Options::value_threshold`], at least an eighth of the
    /// live values on disk, from 4 to 64 MiB), whichever comes first: files on disk then stay
    /// within about twice the live data, at the cost of rewriting the live data once per that
    /// much log.
    /// With [`Options::value_threshold`], it also bounds the values held in memory for the next
    /// checkpoint to about twice this (commits wait for a checkpoint beyond that).
    pub checkpoint_bytes: u64,
    /// Whether [`crate::Db::close`] (and drop) writes a checkpoint first when background
    /// checkpoints are on and at least 1 MiB of log (and an eighth of the last checkpoint's size)
    /// was appended since the last one: the next open then replays no log. Default true.
    pub checkpoint_on_close: bool,
    /// How checkpoint blocks are stored. Recorded in the MANIFEST when the database is created;
    /// opening it with another codec is [`crate::Error::CodecMismatch`]. Default
    /// [`BlockCodec::Identity`].
    pub codec: BlockCodec,
    /// Values of at least this many bytes leave memory once a checkpoint covers them: the index
    /// then holds the value's place in the log (segment, offset) instead of its bytes, and a read
    /// fetches it from disk through the I/O layer, verifying the record's checksum, key and LSN
    /// (docs/DURABILITY.md, "Values on disk"). Keys always stay in memory, and so do values
    /// written since the last checkpoint — with background checkpoints on, at most an eighth of
    /// the live values on disk (at least 4 MiB, at most twice [`Options::checkpoint_bytes`]):
    /// past that, a commit waits for a checkpoint before it takes its LSN
    /// ([`crate::Stats::value_backlog_bytes`], `value_backlog_limit`, `value_backlog_waits`;
    /// §8, "Memory and space while writing"). `None` (the default) keeps every value in memory.
    /// Segments holding values the index still refers to are kept by compaction; at every
    /// checkpoint, value-log garbage collection copies the live values of the mostly dead ones
    /// (and of others, least live first, while the value segments take more than 1.35 × their
    /// live bytes) forward and lets them go (docs/DURABILITY.md §8).
    ///
    /// Only values whose record is in the log since the checkpoint in force can leave memory
    /// (the index then refers to that record). Values the checkpoint holds inline stay in
    /// memory: those written before the threshold was set, those of a copy made by
    /// [`crate::Db::backup_to`] (it writes every value inline), and — under
    /// [`crate::Retention::LastVersions`], whose open reads the checkpoint's values back — those
    /// on disk before a reopen. A known limit: such values are never moved back to disk.
    ///
    /// ```
    /// # fn main() -> Result<(), ringlog_db::Error> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let opts = ringlog_db::Options::default().value_threshold(Some(64));
    /// let db = ringlog_db::Db::open(dir.path(), opts.clone())?;
    /// db.put(b"small", b"stays in memory")?;
    /// db.put(b"large", &[7u8; 4096])?;
    /// db.checkpoint()?; // the large value leaves memory: the index keeps its place
    /// drop(db);
    /// let db = ringlog_db::Db::open(dir.path(), opts)?; // loads keys and places, not values
    /// let got = db.get_many(&[b"large".as_slice(), b"small"])?; // read from disk, checked
    /// assert_eq!(got[0].as_deref(), Some(&[7u8; 4096][..]));
    /// assert_eq!(db.stats().value_reads, 1);
    /// # Ok(()) }
    /// ```
    pub value_threshold: Option<usize>,
    /// Bytes of values read from disk kept in memory for later reads (a concurrent, scan-resistant
    /// cache). Only used with [`Options::value_threshold`]. Default 64 MiB; 0 turns the cache
    /// off.
    pub value_cache_bytes: u64,
    /// Bytes of recent writes kept to validate optimistic transactions ([`crate::Txn`]): the
    /// keys written since the oldest live transaction's snapshot, kept only while a transaction
    /// that read something lives. A transaction whose snapshot is older than what this keeps
    /// gets [`crate::Error::TransactionTooOld`] at commit. Default 64 MiB (about half a million
    /// recorded writes of 16-byte keys: each costs its key and about 112 bytes).
    pub conflict_history_bytes: usize,
}

/// How checkpoint blocks are stored ([`Options::codec`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockCodec {
    /// As they are.
    #[default]
    Identity,
    /// LZ4 block compression (cargo feature `lz4`).
    #[cfg(feature = "lz4")]
    Lz4,
}

impl BlockCodec {
    /// The codec's id, as recorded in the MANIFEST and in every checkpoint block.
    pub fn id(self) -> u32 {
        match self {
            BlockCodec::Identity => 0,
            #[cfg(feature = "lz4")]
            BlockCodec::Lz4 => 1,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::default(),
            segment_size: 64 << 20,
            io: IoChoice::Auto,
            direct_io: true,
            sync_strategy: SyncStrategy::default(),
            preallocate: Preallocate::default(),
            recovery: RecoveryMode::default(),
            vfs: None,
            trim_threshold: 1 << 16,
            lease_span: 1 << 16,
            rounds_in_flight: 1,
            checkpoint_bytes: 256 << 20,
            checkpoint_on_close: true,
            codec: BlockCodec::Identity,
            value_threshold: None,
            value_cache_bytes: 64 << 20,
            conflict_history_bytes: 64 << 20,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("durability", &self.durability)
            .field("segment_size", &self.segment_size)
            .field("io", &self.io)
            .field("direct_io", &self.direct_io)
            .field("sync_strategy", &self.sync_strategy)
            .field("preallocate", &self.preallocate)
            .field("recovery", &self.recovery)
            .field("vfs", &self.vfs.as_ref().map(|v| v.backend()))
            .field("trim_threshold", &self.trim_threshold)
            .field("lease_span", &self.lease_span)
            .field("rounds_in_flight", &self.rounds_in_flight)
            .field("checkpoint_bytes", &self.checkpoint_bytes)
            .field("checkpoint_on_close", &self.checkpoint_on_close)
            .field("codec", &self.codec)
            .field("value_threshold", &self.value_threshold)
            .field("value_cache_bytes", &self.value_cache_bytes)
            .field("conflict_history_bytes", &self.conflict_history_bytes)
            .finish()
    }
}

/// Smallest accepted segment size.
pub const MIN_SEGMENT_SIZE: u64 = 64 << 10;
/// Largest accepted segment size.
pub const MAX_SEGMENT_SIZE: u64 = ringlog_format::MAX_SEGMENT_LEN;
/// Largest write alignment the log uses (O_DIRECT block).
pub(crate) const MAX_ALIGN: u64 = 4096;

impl Options {
    /// Options with the given default durability.
    pub fn with_durability(durability: Durability) -> Options {
        Options::default().durability(durability)
    }

    /// Sets [`Options::durability`].
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Options {
        self.durability = durability;
        self
    }

    /// Sets [`Options::segment_size`].
    #[must_use]
    pub fn segment_size(mut self, bytes: u64) -> Options {
        self.segment_size = bytes;
        self
    }

    /// Sets [`Options::io`].
    #[must_use]
    pub fn io(mut self, io: IoChoice) -> Options {
        self.io = io;
        self
    }

    /// Sets [`Options::direct_io`].
    #[must_use]
    pub fn direct_io(mut self, direct: bool) -> Options {
        self.direct_io = direct;
        self
    }

    /// Sets [`Options::sync_strategy`].
    #[must_use]
    pub fn sync_strategy(mut self, strategy: SyncStrategy) -> Options {
        self.sync_strategy = strategy;
        self
    }

    /// Sets [`Options::preallocate`].
    #[must_use]
    pub fn preallocate(mut self, preallocate: Preallocate) -> Options {
        self.preallocate = preallocate;
        self
    }

    /// Sets [`Options::recovery`].
    #[must_use]
    pub fn recovery(mut self, mode: RecoveryMode) -> Options {
        self.recovery = mode;
        self
    }

    /// Sets [`Options::vfs`]: a custom I/O layer (a simulated or fault-injecting disk).
    #[must_use]
    pub fn vfs(mut self, vfs: Arc<dyn Vfs>) -> Options {
        self.vfs = Some(vfs);
        self
    }

    /// Sets [`Options::trim_threshold`].
    pub fn trim_threshold(mut self, versions: usize) -> Options {
        self.trim_threshold = versions;
        self
    }

    /// Sets [`Options::lease_span`].
    pub fn lease_span(mut self, lsns: u64) -> Options {
        self.lease_span = lsns;
        self
    }

    /// Sets [`Options::rounds_in_flight`].
    pub fn rounds_in_flight(mut self, rounds: usize) -> Options {
        self.rounds_in_flight = rounds;
        self
    }

    /// Sets [`Options::checkpoint_bytes`].
    pub fn checkpoint_bytes(mut self, bytes: u64) -> Options {
        self.checkpoint_bytes = bytes;
        self
    }

    /// Sets [`Options::checkpoint_on_close`].
    pub fn checkpoint_on_close(mut self, on: bool) -> Options {
        self.checkpoint_on_close = on;
        self
    }

    /// Sets [`Options::value_threshold`].
    pub fn value_threshold(mut self, bytes: Option<usize>) -> Options {
        self.value_threshold = bytes;
        self
    }

    /// Sets [`Options::value_cache_bytes`].
    pub fn value_cache_bytes(mut self, bytes: u64) -> Options {
        self.value_cache_bytes = bytes;
        self
    }

    /// Sets [`Options::conflict_history_bytes`].
    #[must_use]
    pub fn conflict_history_bytes(mut self, bytes: usize) -> Options {
        self.conflict_history_bytes = bytes;
        self
    }

    /// Sets [`Options::codec`].
    pub fn codec(mut self, codec: BlockCodec) -> Options {
        self.codec = codec;
        self
    }

    /// Largest value a single put accepts with these options, for a key of `key_len` bytes (0
    /// also when the key does not fit even with an empty value, as [`crate::Db::max_value_len`],
    /// and when [`Options::segment_size`] is outside the range an open accepts).
    pub fn max_value_len(&self, key_len: usize) -> usize {
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&self.segment_size) {
            return 0;
        }
        self.max_txn_bytes()
            .saturating_sub(RECORD_HEADER_LEN.saturating_add(key_len).saturating_add(8))
    }

    /// Largest encoded transaction: a segment minus its header, the worst-case batch padding, the
    /// head of the batch and a lease record that may precede it (0 when a segment is too small
    /// to hold those: such options fail [`Options::validate`]).
    pub(crate) fn max_txn_bytes(&self) -> usize {
        let fixed = SEGMENT_HEADER_LEN as u64
            + MAX_ALIGN
            + RECORD_HEADER_LEN as u64
            + ringlog_format::BATCH_HEAD_LEN as u64
            + ringlog_format::encoded_len(0, ringlog_format::MARKER_PAYLOAD_LEN) as u64;
        usize::try_from(self.segment_size.saturating_sub(fixed)).unwrap_or(usize::MAX)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let s = self.segment_size;
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&s) || !s.is_multiple_of(MAX_ALIGN) {
            return Err(Error::InvalidOptions(format!(
                "segment_size {s} must be a multiple of 4096 between {MIN_SEGMENT_SIZE} and {MAX_SEGMENT_SIZE}"
            )));
        }
        if self.trim_threshold == 0 {
            return Err(Error::InvalidOptions(
                "trim_threshold must be at least 1".into(),
            ));
        }
        if !(2..=MAX_LEASE_SPAN).contains(&self.lease_span) {
            return Err(Error::InvalidOptions(format!(
                "lease_span {} must be between 2 and 2^40",
                self.lease_span
            )));
        }
        if !(1..=crate::wal::MAX_ROUNDS_IN_FLIGHT).contains(&self.rounds_in_flight) {
            return Err(Error::InvalidOptions(format!(
                "rounds_in_flight {} must be between 1 and {}",
                self.rounds_in_flight,
                crate::wal::MAX_ROUNDS_IN_FLIGHT
            )));
        }
        if self.value_threshold == Some(0) {
            return Err(Error::InvalidOptions(
                "value_threshold must be at least 1 byte (None keeps every value in memory)".into(),
            ));
        }
        if self.checkpoint_bytes < 1 << 20 {
            return Err(Error::InvalidOptions(format!(
                "checkpoint_bytes {} must be at least 1 MiB (u64::MAX: no background checkpoints)",
                self.checkpoint_bytes
            )));
        }
        if let Durability::Buffered {
            interval,
            max_pending,
        } = self.durability
        {
            validate_buffered(interval, max_pending)?;
        }
        Ok(())
    }
}

pub(crate) fn validate_buffered(interval: Duration, max_pending: usize) -> Result<()> {
    if interval.is_zero() {
        return Err(Error::InvalidOptions(
            "Buffered interval must be positive".into(),
        ));
    }
    if interval > Durability::MAX_BUFFERED_INTERVAL {
        return Err(Error::InvalidOptions(format!(
            "Buffered interval {interval:?} is above the longest one allowed, {:?} (use \
             max_pending to sync by size)",
            Durability::MAX_BUFFERED_INTERVAL
        )));
    }
    if max_pending == 0 {
        return Err(Error::InvalidOptions(
            "Buffered max_pending must be positive".into(),
        ));
    }
    Ok(())
}
