//! The simulated disk: an in-memory filesystem implementing ringlog's [`Vfs`], recording every
//! operation that matters for durability (file creation, write, size change, fdatasync/fsync,
//! rename, removal, directory fsync) in a trace, and optionally failing the n-th sync.
//!
//! What reads return is the "page cache": every write is visible at once. What survives a power
//! loss is decided afterwards from the trace by [`crate::crash`].

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use ringlog_db::io::{
    Allocation, BackendInfo, BackendKind, BlockReason, Completion, EntryKind, FileLock, FsInfo,
    LogDriver, OpenOptions, SharedBytes, Submission, SyncStrategy, VFile, Vfs, Waker,
};
use ringlog_format::all_zero;

use crate::sched::Sched;

/// Index of a file (inode) in a simulated disk.
pub type Ino = usize;

/// The bytes of a recorded write.
#[derive(Clone, Debug)]
pub enum Data {
    /// Arbitrary bytes.
    Bytes(Arc<[u8]>),
    /// That many zero bytes (preallocation zero-fill), stored compactly.
    Zeros(usize),
}

impl Data {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Data::Bytes(b) => b.len(),
            Data::Zeros(n) => *n,
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `self[from..from + dst.len()]` into `dst`.
    pub fn copy_to(&self, from: usize, dst: &mut [u8]) {
        match self {
            Data::Bytes(b) => dst.copy_from_slice(&b[from..from + dst.len()]),
            Data::Zeros(_) => dst.fill(0),
        }
    }
}

/// One recorded operation.
#[derive(Clone, Debug)]
pub enum Op {
    /// A new file (directory entry `path`, inode `ino`).
    Create {
        /// Path of the new entry.
        path: PathBuf,
        /// The new inode.
        ino: Ino,
    },
    /// A write of `data` at `off`.
    Write {
        /// File written.
        ino: Ino,
        /// Offset.
        off: u64,
        /// Bytes.
        data: Data,
    },
    /// The file's size set to `len` (`set_len`, or `allocate` extending it).
    SetLen {
        /// File.
        ino: Ino,
        /// New size.
        len: u64,
    },
    /// A completed fdatasync or fsync of the file: its data so far is durable.
    Sync {
        /// File.
        ino: Ino,
    },
    /// A failed sync. As on Linux, the file's unsynced writes were each kept, dropped or torn (as
    /// chosen by `seed`) and the pages marked clean: a later sync persists none of them.
    SyncFailed {
        /// File.
        ino: Ino,
        /// Seed of the resolution.
        seed: u64,
    },
    /// `rename(from, to)` of inode `ino`.
    Rename {
        /// Old path.
        from: PathBuf,
        /// New path.
        to: PathBuf,
        /// The inode renamed.
        ino: Ino,
    },
    /// `rename(from, to)` of a directory: every entry below `from` is below `to` now. Like any
    /// rename, durable once the directory holding `to` is synced (the entries it carries keep
    /// what they had: the ones synced in `from` stay durable, the others still pending).
    ///
    /// Modelled by path, not by directory inode, which is enough for a directory moved into
    /// place once it is complete (`ringlog import`): the crash sweeper refuses, loudly, the
    /// traces it could not model faithfully — an operation below `to` while the rename is not
    /// yet durable (a crash that drops the rename would have to move it back), a rename out of
    /// a directory whose own rename is not yet durable, and a rename onto a directory whose
    /// removals are not yet durable. Directory creations are not traced: an image lists the
    /// directories it started with, and a disk made from one has every file's directories.
    RenameDir {
        /// Old path.
        from: PathBuf,
        /// New path (absent, or an empty directory, which it replaces).
        to: PathBuf,
    },
    /// Removal of `path`.
    Remove {
        /// Path removed.
        path: PathBuf,
    },
    /// A completed directory fsync: entries of `dir` created, renamed or removed so far are durable.
    SyncDir {
        /// The directory.
        dir: PathBuf,
    },
    /// A failed directory fsync: its pending entries were each kept or dropped (per `seed`).
    SyncDirFailed {
        /// The directory.
        dir: PathBuf,
        /// Seed of the resolution.
        seed: u64,
    },
    /// A write (or an `allocate` that extends the file) that failed with `errno` (`EIO` or
    /// `ENOSPC`). What it wrote before failing, if anything, is the `Write` of a prefix recorded
    /// just before; the failure itself changes nothing.
    WriteFailed {
        /// File.
        ino: Ino,
        /// The error returned.
        errno: i32,
    },
    /// A log round handed to the pipelined driver ([`LogDriver::submit`]) that it refused with
    /// `errno`, as an `io_uring_enter` that fails: nothing of it was written.
    SubmitFailed {
        /// The error returned.
        errno: i32,
    },
}

impl Op {
    /// A short description, for traces in reports.
    pub fn describe(&self, names: &dyn Fn(Ino) -> String) -> String {
        match self {
            Op::Create { path, ino } => format!("create {} (ino {ino})", short(path)),
            Op::Write { ino, off, data } => format!(
                "write {} [{off}, {}){}",
                names(*ino),
                off + data.len() as u64,
                if matches!(data, Data::Zeros(_)) {
                    " zeros"
                } else {
                    ""
                }
            ),
            Op::SetLen { ino, len } => format!("set_len {} {len}", names(*ino)),
            Op::Sync { ino } => format!("fdatasync {}", names(*ino)),
            Op::SyncFailed { ino, .. } => format!("fdatasync {} FAILED (EIO)", names(*ino)),
            Op::Rename { from, to, .. } => format!("rename {} -> {}", short(from), short(to)),
            Op::RenameDir { from, to } => {
                format!("rename directory {} -> {}", from.display(), to.display())
            }
            Op::Remove { path } => format!("remove {}", short(path)),
            Op::SyncDir { dir } => format!("fsync dir {}", dir.display()),
            Op::SyncDirFailed { dir, .. } => format!("fsync dir {} FAILED (EIO)", dir.display()),
            Op::WriteFailed { ino, errno } => format!(
                "write {} FAILED ({})",
                names(*ino),
                if *errno == libc::ENOSPC {
                    "ENOSPC"
                } else {
                    "EIO"
                }
            ),
            Op::SubmitFailed { errno } => format!(
                "log round submission FAILED ({})",
                io::Error::from_raw_os_error(*errno)
            ),
        }
    }

    /// Kind and extent of the operation, for trace fingerprints (no data bytes).
    pub fn shape(&self) -> (u8, u64, u64) {
        match self {
            Op::Create { ino, .. } => (1, *ino as u64, 0),
            Op::Write { ino, off, data } => (2, *ino as u64, off ^ ((data.len() as u64) << 32)),
            Op::SetLen { ino, len } => (3, *ino as u64, *len),
            Op::Sync { ino } => (4, *ino as u64, 0),
            Op::SyncFailed { ino, .. } => (5, *ino as u64, 0),
            Op::Rename { ino, .. } => (6, *ino as u64, 0),
            Op::Remove { .. } => (7, 0, 0),
            Op::SyncDir { .. } => (8, 0, 0),
            Op::SyncDirFailed { .. } => (9, 0, 0),
            Op::WriteFailed { ino, errno } => (10, *ino as u64, *errno as u64),
            Op::SubmitFailed { errno } => (11, 0, *errno as u64),
            Op::RenameDir { .. } => (12, 0, 0),
        }
    }
}

fn short(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// A disk image: file contents by path (all durable), and the directories.
#[derive(Clone, Debug, Default)]
pub struct Image {
    /// Files by path.
    pub files: BTreeMap<PathBuf, Arc<Vec<u8>>>,
    /// Directories.
    pub dirs: Vec<PathBuf>,
}

impl Image {
    /// Writes the image's files under `root` (the image's paths are taken relative to `/`).
    pub fn save(&self, root: &Path) -> io::Result<()> {
        for d in &self.dirs {
            std::fs::create_dir_all(root.join(d.strip_prefix("/").unwrap_or(d)))?;
        }
        for (p, data) in &self.files {
            let to = root.join(p.strip_prefix("/").unwrap_or(p));
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(to, &**data)?;
        }
        Ok(())
    }

    /// Reads the files of directory `dir` on the real filesystem into an image where they live
    /// under `as_dir`.
    pub fn load_dir(dir: &Path, as_dir: &Path) -> io::Result<Image> {
        let mut img = Image {
            dirs: vec![as_dir.to_path_buf()],
            ..Image::default()
        };
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            if e.file_type()?.is_file() {
                img.files.insert(
                    as_dir.join(e.file_name()),
                    Arc::new(std::fs::read(e.path())?),
                );
            }
        }
        Ok(img)
    }
}

/// Which sync or write fails.
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultPlan {
    /// Fail the n-th sync (file or directory, counting from 1).
    pub fail_sync: Option<u64>,
    /// Fail the n-th write (counting from 1 every `write_all_at`, every `allocate` that would
    /// extend its file, and every log round handed to a pipelined driver): a write or an
    /// extension with `EIO` or `ENOSPC`, after writing a prefix of its bytes (none to all), as a
    /// short write followed by the error leaves a file; a round's submission with `ENOMEM` or
    /// `EBADF`, as an `io_uring_enter` that fails, before anything of it is written.
    pub fail_write: Option<u64>,
    /// Seed of the failed sync's resolution, and of the failed write's error and prefix.
    pub seed: u64,
}

struct Inner {
    data: Vec<Arc<Vec<u8>>>,
    /// Files by path bytes (byte comparisons are much cheaper than `Path`'s component-wise ones,
    /// and the engine only builds plain `dir/name` paths).
    names: BTreeMap<OsString, Ino>,
    dirs: BTreeSet<OsString>,
    locks: HashSet<PathBuf>,
    trace: Vec<Op>,
    record: bool,
    syncs: u64,
    /// Writes so far, as [`FaultPlan::fail_write`] counts them.
    writes: u64,
    faults: FaultPlan,
    /// The target of the last rename, until the next directory sync (see [`disk_bugs`]).
    last_rename_to: Option<OsString>,
}

impl Inner {
    /// The name file `ino` has now, if any.
    fn name_of(&self, ino: Ino) -> Option<&OsString> {
        self.names.iter().find(|(_, &i)| i == ino).map(|(n, _)| n)
    }

    fn push(&mut self, op: Op) {
        if self.record {
            self.trace.push(op);
        }
    }

    /// Whether directory `d` has no entries (files or directories).
    fn is_empty_dir(&self, d: &Path) -> bool {
        let below = |p: &OsString| Path::new(p).parent() == Some(d);
        !self.names.keys().any(below) && !self.dirs.iter().any(below)
    }

    /// Moves directory `from`, with everything below it, to `to` (replacing `to` if it is an
    /// empty directory).
    fn move_dir(&mut self, from: &Path, to: &Path) {
        self.dirs.remove(to.as_os_str());
        // (Replayed on another disk, `from` may be unknown as a directory there: directory
        // creations are not traced. `to` is one after the move either way.)
        self.dirs.insert(to.as_os_str().to_owned());
        let moved = |p: OsString| match moved_path(Path::new(&p), from, to) {
            Some(m) => m.into_os_string(),
            None => p,
        };
        self.dirs = std::mem::take(&mut self.dirs)
            .into_iter()
            .map(moved)
            .collect();
        self.names = std::mem::take(&mut self.names)
            .into_iter()
            .map(|(n, ino)| (moved(n), ino))
            .collect();
    }

    /// Counts a sync; true when this one must fail.
    fn sync_fails(&mut self) -> bool {
        self.syncs += 1;
        self.faults.fail_sync == Some(self.syncs)
    }

    /// Counts a write; when this one must fail, the error and a seed for what it wrote first.
    fn write_fails(&mut self) -> Option<(i32, u64)> {
        self.writes += 1;
        if self.faults.fail_write != Some(self.writes) {
            return None;
        }
        let seed = crate::rng::mix(&[self.faults.seed, self.writes, 0x3717]);
        Some((
            if seed & 1 == 0 {
                libc::EIO
            } else {
                libc::ENOSPC
            },
            seed >> 1,
        ))
    }

    /// Writes `buf` at `off` of `ino` (the page cache: durable only once synced).
    fn write(&mut self, ino: Ino, off: u64, buf: &[u8]) {
        let d = Arc::make_mut(&mut self.data[ino]);
        let end = off as usize + buf.len();
        if d.len() < end {
            d.resize(end, 0);
        }
        d[off as usize..end].copy_from_slice(buf);
        if self.record {
            let data = if buf.len() >= 4096 && all_zero(buf) {
                Data::Zeros(buf.len())
            } else {
                Data::Bytes(buf.into())
            };
            self.push(Op::Write { ino, off, data });
        }
    }
}

/// The simulated disk. Cheap to clone (shared state).
#[derive(Clone)]
pub struct SimVfs {
    inner: Arc<Mutex<Inner>>,
    sync_delay: Duration,
    /// Files do not share their bytes ([`VFile::shared_contents`]): recovery reads segments with
    /// `read_at`, streamed in pieces by its reader thread, as from a real disk.
    streamed: bool,
    /// The deterministic scheduler and simulated clock, when the run is scheduled.
    sched: Option<Arc<Sched>>,
    /// Log writes its driver keeps in flight ([`SimVfs::pipelined`]; 1: none) and the seed of
    /// the order in which they complete.
    pipeline: (usize, u64),
    /// The virtual wall clock of the databases opened on this disk ([`SimVfs::vfs`]), in
    /// nanoseconds since the Unix epoch: the time `Retention::NewerThan` reads.
    wall: Arc<AtomicU64>,
}

/// Where every simulated disk's virtual wall clock starts (2001-01-01T00:00:00Z, in nanoseconds
/// since the Unix epoch: long before any real clock a tool opening a saved image reads); the
/// runner moves it ([`SimVfs::set_wall`], [`crate::workload::Workload::clock_at`]).
pub const WALL_EPOCH_NS: u64 = 978_307_200 * 1_000_000_000;

impl std::fmt::Debug for SimVfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimVfs").finish_non_exhaustive()
    }
}

/// Where `p` is after directory `from` was renamed to `to`: `None` when `p` is not `from` or below it.
pub(crate) fn moved_path(p: &Path, from: &Path, to: &Path) -> Option<PathBuf> {
    p.strip_prefix(from).ok().map(|rest| {
        if rest.as_os_str().is_empty() {
            to.to_path_buf()
        } else {
            to.join(rest)
        }
    })
}

/// The directory holding `p` (`/` for the root).
fn parent_of(p: &Path) -> &Path {
    p.parent().unwrap_or(Path::new("/"))
}

fn enoent(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", p.display()),
    )
}

impl SimVfs {
    /// A disk holding `image` (as durable content), recording a trace when `record`.
    /// `sync_delay` is slept between a log batch's write and its sync (a slow device widens the
    /// window in which an early acknowledgement is observable).
    pub fn from_image(image: &Image, record: bool, sync_delay: Duration) -> SimVfs {
        let mut dirs = BTreeSet::new();
        for d in &image.dirs {
            for a in d.ancestors() {
                dirs.insert(a.as_os_str().to_owned());
            }
        }
        let mut data = Vec::new();
        let mut names = BTreeMap::new();
        for (p, d) in &image.files {
            names.insert(p.as_os_str().to_owned(), data.len());
            data.push(d.clone());
            // A file's directories exist (an image lists only the directories it started
            // with: one a directory rename moved is known by the files under its new name).
            for a in p.ancestors().skip(1) {
                dirs.insert(a.as_os_str().to_owned());
            }
        }
        SimVfs {
            inner: Arc::new(Mutex::new(Inner {
                data,
                names,
                dirs,
                locks: HashSet::new(),
                trace: Vec::new(),
                record,
                syncs: 0,
                writes: 0,
                faults: FaultPlan::default(),
                last_rename_to: None,
            })),
            sync_delay,
            streamed: false,
            sched: None,
            pipeline: (1, 0),
            wall: Arc::new(AtomicU64::new(WALL_EPOCH_NS)),
        }
    }

    /// The disk as a database's `Options::vfs`, on this disk's virtual wall clock
    /// (`ringlog_db::failpoints::virtual_clock`): what `Retention::NewerThan` keeps depends on
    /// the runner's seed, never on the real clock.
    pub fn vfs(&self) -> Arc<dyn Vfs> {
        let vfs: Arc<dyn Vfs> = Arc::new(self.clone());
        ringlog_db::failpoints::virtual_clock(&vfs, self.wall.clone());
        vfs
    }

    /// The virtual wall clock of the databases on this disk (shared by its clones).
    pub fn wall_clock(&self) -> Arc<AtomicU64> {
        self.wall.clone()
    }

    /// Sets the virtual wall clock to `ns` (nanoseconds since the Unix epoch).
    pub fn set_wall(&self, ns: u64) {
        self.wall.store(ns, Ordering::SeqCst);
    }

    /// The same disk with a log driver that keeps up to `depth` writes in flight
    /// ([`LogDriver::submit`]) and completes them in an order drawn from `seed`: a write is
    /// performed (and synced) only when it completes, so a later round can be durable while an
    /// earlier one is not even written — what a real device with a volatile cache may do with
    /// several writes in flight. `depth` 1: one round at a time, as a driver without a pipeline.
    pub fn pipelined(mut self, depth: usize, seed: u64) -> SimVfs {
        self.pipeline = (depth.max(1), seed);
        self
    }

    /// The same disk, read as a real one is: recovery streams segments in with `read_at` on its
    /// reader thread instead of sharing the simulated bytes (`on`), or shares them (the default:
    /// cheaper).
    pub fn streamed_reads(mut self, on: bool) -> SimVfs {
        self.streamed = on;
        self
    }

    /// The same disk under scheduler `sched`: its log driver stops at the scheduler's gates, its
    /// clock is the scheduler's simulated clock, and committers' blocking points are reported to
    /// it.
    pub fn scheduled(mut self, sched: Arc<Sched>) -> SimVfs {
        self.sched = Some(sched);
        self
    }

    /// Replays `ops` (a prefix of another run's trace on the same base image) as if this disk had
    /// performed them: its contents become that run's page cache, and the ops are recorded, still
    /// unsynced where they were. A process crash at the end of `ops` followed by a restart on this
    /// disk is the compound fault of `power` mode.
    pub fn replay(&self, ops: &[Op]) {
        let mut g = self.inner.lock();
        for op in ops {
            match op {
                Op::Create { path, ino } => {
                    assert_eq!(*ino, g.data.len(), "replayed inodes are allocated in order");
                    g.data.push(Arc::new(Vec::new()));
                    g.names.insert(path.as_os_str().to_owned(), *ino);
                }
                Op::Write { ino, off, data } => {
                    let f = Arc::make_mut(&mut g.data[*ino]);
                    let end = *off as usize + data.len();
                    if f.len() < end {
                        f.resize(end, 0);
                    }
                    data.copy_to(0, &mut f[*off as usize..end]);
                }
                Op::SetLen { ino, len } => {
                    Arc::make_mut(&mut g.data[*ino]).resize(*len as usize, 0);
                }
                Op::Rename { from, to, ino } => {
                    g.names.remove(from.as_os_str());
                    g.names.insert(to.as_os_str().to_owned(), *ino);
                }
                Op::Remove { path } => {
                    g.names.remove(path.as_os_str());
                }
                Op::RenameDir { from, to } => g.move_dir(from, to),
                Op::Sync { .. }
                | Op::SyncFailed { .. }
                | Op::SyncDir { .. }
                | Op::SyncDirFailed { .. }
                | Op::WriteFailed { .. }
                | Op::SubmitFailed { .. } => {}
            }
            g.push(op.clone());
        }
    }

    /// Sets which sync fails.
    pub fn set_faults(&self, faults: FaultPlan) {
        self.inner.lock().faults = faults;
    }

    /// Syncs performed so far (file and directory, failed ones included).
    pub fn syncs(&self) -> u64 {
        self.inner.lock().syncs
    }

    /// Writes performed so far, as [`FaultPlan::fail_write`] counts them (failed ones included).
    pub fn writes(&self) -> u64 {
        self.inner.lock().writes
    }

    /// Number of operations recorded so far: the current trace position.
    pub fn position(&self) -> u64 {
        self.inner.lock().trace.len() as u64
    }

    /// The recorded trace.
    pub fn trace(&self) -> Vec<Op> {
        self.inner.lock().trace.clone()
    }

    /// The current contents (what reads return), as an image.
    pub fn snapshot(&self) -> Image {
        let g = self.inner.lock();
        Image {
            files: g
                .names
                .iter()
                .map(|(p, &i)| (PathBuf::from(p), g.data[i].clone()))
                .collect(),
            dirs: g.dirs.iter().map(PathBuf::from).collect(),
        }
    }

    fn sync_file(&self, ino: Ino) -> io::Result<()> {
        let mut g = self.inner.lock();
        if g.sync_fails() {
            let seed = crate::rng::mix(&[g.faults.seed, g.syncs]);
            g.push(Op::SyncFailed { ino, seed });
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        g.push(Op::Sync { ino });
        Ok(())
    }
}

/// Planted bugs that the simulated disk itself expresses — each a sync the engine asks for and
/// the disk (or its log driver) drops — so that tests can prove the runner catches them without
/// the engine carrying them: armed only through [`disk_bugs::arm`], inert otherwise. (Bugs in
/// the engine's own logic are the engine's, behind its `__planted-bugs` feature.)
pub mod disk_bugs {
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A deliberate durability bug of the disk layer.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum DiskBug {
        /// The directory sync after a new segment's rename to `<id>.log` is dropped: a power
        /// loss can take the segment's entry, with acknowledged data.
        SkipSegmentDirSync,
        /// A new segment's file sync before its rename from `.log.tmp` is dropped: a crash can
        /// leave a `.log` file whose header never became durable.
        RenameSegmentBeforeSync,
        /// A failed write + fdatasync of the log is retried with a second fdatasync, which
        /// succeeds without persisting anything, and the batch is acknowledged ("fsyncgate").
        RetryFailedSyncAndAck,
        /// A checkpoint's fdatasync (of its `.ckpt.tmp` file, before the rename and the MANIFEST
        /// naming it) is dropped.
        CheckpointWithoutSync,
        /// The directory sync after the MANIFEST's rename is dropped.
        SkipManifestDirSync,
        /// The log driver looks only at the sync's result: a failed write of the log (its
        /// prefix written, or none) is followed by the sync, and the batch is acknowledged — as
        /// a ring that reaps only the fdatasync's completion of a linked write and sync would.
        IgnoreFailedWrite,
        /// The pipelined log driver swallows a failed submission of a round (an
        /// `io_uring_enter` error) and reports the round complete: its commits are acknowledged
        /// though nothing of them was written.
        FailedSubmitCompletes,
        /// The directory sync after a directory's rename is dropped: `ringlog import` moving its
        /// finished database into place reports success while a power loss can still undo the
        /// move.
        SkipDirRenameSync,
    }

    impl DiskBug {
        /// Every disk bug.
        pub const ALL: [DiskBug; 8] = [
            DiskBug::SkipSegmentDirSync,
            DiskBug::RenameSegmentBeforeSync,
            DiskBug::RetryFailedSyncAndAck,
            DiskBug::CheckpointWithoutSync,
            DiskBug::SkipManifestDirSync,
            DiskBug::IgnoreFailedWrite,
            DiskBug::FailedSubmitCompletes,
            DiskBug::SkipDirRenameSync,
        ];

        fn bit(self) -> u32 {
            1 << (self as u32)
        }
    }

    static ARMED: AtomicU32 = AtomicU32::new(0);

    /// Arms `bug` for the whole process until [`disarm_all`].
    pub fn arm(bug: DiskBug) {
        ARMED.fetch_or(bug.bit(), Ordering::SeqCst);
    }

    /// Disarms every disk bug.
    pub fn disarm_all() {
        ARMED.store(0, Ordering::SeqCst);
    }

    /// Whether `bug` is armed.
    pub fn armed(bug: DiskBug) -> bool {
        ARMED.load(Ordering::Relaxed) & bug.bit() != 0
    }
}

/// An open file of a [`SimVfs`].
pub struct SimFile {
    inner: Arc<Mutex<Inner>>,
    vfs: SimVfs,
    ino: Ino,
    write: bool,
}

impl SimFile {
    /// Whether a planted bug skips this file's sync: a new segment's before its rename
    /// (`RenameSegmentBeforeSync`), a checkpoint's before its rename (`CheckpointWithoutSync`).
    fn planted_skip_sync(&self) -> bool {
        use disk_bugs::{armed, DiskBug};
        if !armed(DiskBug::RenameSegmentBeforeSync) && !armed(DiskBug::CheckpointWithoutSync) {
            return false;
        }
        let g = self.inner.lock();
        let name = g
            .name_of(self.ino)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (armed(DiskBug::RenameSegmentBeforeSync) && name.ends_with(".log.tmp"))
            || (armed(DiskBug::CheckpointWithoutSync) && name.ends_with(".ckpt.tmp"))
    }

    fn writable(&self) -> io::Result<()> {
        if self.write {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::EBADF))
        }
    }
}

impl VFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let g = self.inner.lock();
        let d = &g.data[self.ino];
        let off = offset.min(d.len() as u64) as usize;
        let n = buf.len().min(d.len() - off);
        buf[..n].copy_from_slice(&d[off..off + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.writable()?;
        let mut g = self.inner.lock();
        let ino = self.ino;
        if let Some((errno, seed)) = g.write_fails() {
            // A short write, then the error: a prefix of any length (none to all) went to the
            // page cache.
            let wrote = (seed % (buf.len() as u64 + 1)) as usize;
            if wrote > 0 {
                g.write(ino, offset, &buf[..wrote]);
            }
            g.push(Op::WriteFailed { ino, errno });
            return Err(io::Error::from_raw_os_error(errno));
        }
        g.write(ino, offset, buf);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        if self.planted_skip_sync() {
            return Ok(());
        }
        self.vfs.sync_file(self.ino)
    }

    fn sync_all(&self) -> io::Result<()> {
        if self.planted_skip_sync() {
            return Ok(());
        }
        self.vfs.sync_file(self.ino)
    }

    fn allocate(&self, len: u64) -> io::Result<Allocation> {
        self.writable()?;
        let mut g = self.inner.lock();
        let ino = self.ino;
        if (g.data[ino].len() as u64) < len {
            if g.write_fails().is_some() {
                // No room for the extension: the file keeps its size.
                g.push(Op::WriteFailed {
                    ino,
                    errno: libc::ENOSPC,
                });
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            Arc::make_mut(&mut g.data[ino]).resize(len as usize, 0);
            g.push(Op::SetLen { ino, len });
        }
        Ok(Allocation::Reserved)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.inner.lock().data[self.ino].len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.writable()?;
        let mut g = self.inner.lock();
        let ino = self.ino;
        if g.data[ino].len() as u64 != len {
            Arc::make_mut(&mut g.data[ino]).resize(len as usize, 0);
            g.push(Op::SetLen { ino, len });
        }
        Ok(())
    }

    fn direct_io(&self) -> Option<usize> {
        None
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }

    fn shared_contents(&self) -> Option<SharedBytes> {
        if self.vfs.streamed {
            return None;
        }
        // Writes replace the file's Arc (copy on write), so this snapshot never changes.
        Some(self.inner.lock().data[self.ino].clone())
    }
}

struct SimLock {
    inner: Arc<Mutex<Inner>>,
    path: PathBuf,
}

impl FileLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.inner.lock().locks.remove(&self.path);
    }
}

impl Vfs for SimVfs {
    fn backend(&self) -> BackendInfo {
        BackendInfo::new(BackendKind::Custom, "ringlog-crash simulated disk")
    }

    fn open(&self, path: &Path, opts: OpenOptions) -> io::Result<Box<dyn VFile>> {
        let mut g = self.inner.lock();
        let ino = match g.names.get(path.as_os_str()) {
            Some(&i) => i,
            None if opts.create && opts.write => {
                let parent = path.parent().unwrap_or(Path::new("/"));
                if !g.dirs.contains(parent.as_os_str()) {
                    return Err(enoent(parent));
                }
                let ino = g.data.len();
                g.data.push(Arc::new(Vec::new()));
                g.names.insert(path.as_os_str().to_owned(), ino);
                g.push(Op::Create {
                    path: path.to_path_buf(),
                    ino,
                });
                ino
            }
            None => return Err(enoent(path)),
        };
        Ok(Box::new(SimFile {
            inner: self.inner.clone(),
            vfs: self.clone(),
            ino,
            write: opts.write,
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut g = self.inner.lock();
        for a in path.ancestors() {
            g.dirs.insert(a.as_os_str().to_owned());
        }
        Ok(())
    }

    fn kind_of(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        let g = self.inner.lock();
        Ok(if g.dirs.contains(path.as_os_str()) {
            Some(EntryKind::Dir)
        } else if g.names.contains_key(path.as_os_str()) {
            Some(EntryKind::File)
        } else {
            None
        })
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let g = self.inner.lock();
        if !g.dirs.contains(path.as_os_str()) {
            return Err(enoent(path));
        }
        let dir = path.as_os_str().as_bytes();
        let dir = dir.strip_suffix(b"/").unwrap_or(dir);
        // The name of a direct child of `dir`, if `p` is one.
        let child = |p: &OsString| -> Option<String> {
            let rest = p.as_bytes().strip_prefix(dir)?.strip_prefix(b"/")?;
            (!rest.is_empty() && !rest.contains(&b'/'))
                .then(|| String::from_utf8_lossy(rest).into_owned())
        };
        Ok(g.names
            .keys()
            .chain(g.dirs.iter())
            .filter_map(child)
            .collect())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut g = self.inner.lock();
        if g.names.remove(path.as_os_str()).is_none() {
            return Err(enoent(path));
        }
        g.push(Op::Remove {
            path: path.to_path_buf(),
        });
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut g = self.inner.lock();
        if g.dirs.contains(from.as_os_str()) {
            // A directory: onto nothing, or onto an empty directory (as rename(2) allows).
            if g.names.contains_key(to.as_os_str()) {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            if g.dirs.contains(to.as_os_str()) && !g.is_empty_dir(to) {
                return Err(io::Error::from_raw_os_error(libc::ENOTEMPTY));
            }
            if !g.dirs.contains(parent_of(to).as_os_str()) {
                return Err(enoent(parent_of(to)));
            }
            g.move_dir(from, to);
            g.last_rename_to = Some(to.as_os_str().to_owned());
            g.push(Op::RenameDir {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
            });
            return Ok(());
        }
        let ino = g
            .names
            .remove(from.as_os_str())
            .ok_or_else(|| enoent(from))?;
        g.names.insert(to.as_os_str().to_owned(), ino);
        g.last_rename_to = Some(to.as_os_str().to_owned());
        g.push(Op::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            ino,
        });
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut g = self.inner.lock();
        if !g.dirs.contains(path.as_os_str()) {
            return Err(enoent(path));
        }
        let renamed = g.last_rename_to.take();
        let renamed_name = renamed
            .as_deref()
            .and_then(|n| Path::new(n).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let renamed_dir = renamed.as_ref().is_some_and(|n| g.dirs.contains(n));
        if (disk_bugs::armed(disk_bugs::DiskBug::SkipSegmentDirSync)
            && renamed_name.ends_with(".log"))
            || (disk_bugs::armed(disk_bugs::DiskBug::SkipManifestDirSync)
                && renamed_name == "MANIFEST")
            || (disk_bugs::armed(disk_bugs::DiskBug::SkipDirRenameSync) && renamed_dir)
        {
            // The planted bug: this directory sync, which would make the rename durable, is
            // skipped (not even counted as a sync).
            return Ok(());
        }
        if g.sync_fails() {
            let seed = crate::rng::mix(&[g.faults.seed, g.syncs]);
            g.push(Op::SyncDirFailed {
                dir: path.to_path_buf(),
                seed,
            });
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        g.push(Op::SyncDir {
            dir: path.to_path_buf(),
        });
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        drop(self.open(
            path,
            OpenOptions {
                write: true,
                create: true,
                direct: false,
            },
        )?);
        let mut g = self.inner.lock();
        if !g.locks.insert(path.to_path_buf()) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is locked", path.display()),
            ));
        }
        Ok(Box::new(SimLock {
            inner: self.inner.clone(),
            path: path.to_path_buf(),
        }))
    }

    fn lock_held(&self, path: &Path) -> io::Result<bool> {
        Ok(self.inner.lock().locks.contains(path))
    }

    fn filesystem(&self, _path: &Path) -> io::Result<FsInfo> {
        // The simulated driver makes a Dsync write durable when it completes, as the model says.
        Ok(FsInfo::custom("simulated disk", true))
    }

    /// Its `write_durable_here` is the simulated driver's write and sync (without the gate).
    fn writes_here(&self) -> bool {
        true
    }

    fn log_driver(&self) -> io::Result<Box<dyn LogDriver>> {
        if let Some(s) = &self.sched {
            s.log_started();
        }
        Ok(Box::new(SimDriver {
            waker: Arc::new(SimWaker {
                sched: self.sched.clone(),
                ..SimWaker::default()
            }),
            delay: self.sync_delay,
            sched: self.sched.clone(),
            depth: self.pipeline.0,
            rng: self.pipeline.1 | 1,
            in_flight: Vec::new(),
            held: false,
            disk: self.inner.clone(),
            lost: Vec::new(),
        }))
    }

    fn write_durable_here(
        &self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        _strategy: SyncStrategy,
    ) -> io::Result<()> {
        // A committer writing its own round: the simulated driver's write and sync, without its
        // scheduler gate (a committer runs until it blocks or its step ends).
        write_then_sync(file, offset, buf, self.sync_delay)
    }

    fn now(&self) -> Instant {
        match &self.sched {
            Some(s) => s.now(),
            None => Instant::now(),
        }
    }

    fn will_block(&self, why: BlockReason) {
        if let Some(s) = &self.sched {
            s.will_block(why);
        }
    }
}

/// A wake flag and a condition variable.
#[derive(Default)]
struct SimWaker {
    woken: Mutex<bool>,
    cond: Condvar,
    sched: Option<Arc<Sched>>,
}

impl Waker for SimWaker {
    fn wake(&self) {
        if let Some(s) = &self.sched {
            s.wake();
            return;
        }
        *self.woken.lock() = true;
        self.cond.notify_one();
    }
}

/// A durable write on the simulated disk: the write, then the sync (`RWF_DSYNC` is a write
/// followed by a sync as far as what can be torn is concerned), `delay` apart.
fn write_then_sync(file: &dyn VFile, offset: u64, buf: &[u8], delay: Duration) -> io::Result<()> {
    if let Err(e) = file.write_all_at(buf, offset) {
        // The planted bug: the write's result is not looked at.
        if !disk_bugs::armed(disk_bugs::DiskBug::IgnoreFailedWrite) {
            return Err(e);
        }
    }
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let res = file.sync_data();
    if res.is_err() && disk_bugs::armed(disk_bugs::DiskBug::RetryFailedSyncAndAck) {
        // The planted "fsyncgate" bug: a failed sync is retried, the retry succeeds without
        // persisting anything (the failed pages were dropped), and the batch is acknowledged.
        return file.sync_data();
    }
    res
}

/// Longest a pipelined simulated driver holds its writes in flight before completing one (once
/// between two completions): committers take no simulated time, so a short hold lets them append
/// all they will, and the device stays fast next to the Buffered window the oracle checks.
const HOLD: Duration = Duration::from_micros(20);

/// The commit path on the simulated disk: write, then sync, synchronously; or, pipelined, the
/// same for one submitted write at a time, in a seeded order, each time the engine asks for
/// completions.
struct SimDriver {
    waker: Arc<SimWaker>,
    delay: Duration,
    sched: Option<Arc<Sched>>,
    /// [`SimVfs::pipelined`].
    depth: usize,
    /// xorshift state choosing which write in flight completes next.
    rng: u64,
    in_flight: Vec<Submission>,
    /// The last `complete` held the writes in flight instead of completing one.
    held: bool,
    /// The disk's state: its fault plan counts submissions as writes.
    disk: Arc<Mutex<Inner>>,
    /// Submissions that failed, reported complete by the planted
    /// [`disk_bugs::DiskBug::FailedSubmitCompletes`] (never written).
    lost: Vec<Completion>,
}

impl SimDriver {
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

impl LogDriver for SimDriver {
    fn write_durable(
        &mut self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        _strategy: SyncStrategy,
    ) -> io::Result<()> {
        if let Some(s) = &self.sched {
            s.gate_write();
        }
        write_then_sync(file, offset, buf, self.delay)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if let Some(s) = &self.sched {
            s.gate_wait(timeout);
            return Ok(());
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut woken = self.waker.woken.lock();
        while !*woken {
            match deadline {
                Some(d) => {
                    if self.waker.cond.wait_until(&mut woken, d).timed_out() {
                        break;
                    }
                }
                None => self.waker.cond.wait(&mut woken),
            }
        }
        *woken = false;
        Ok(())
    }

    fn waker(&self) -> Arc<dyn Waker> {
        self.waker.clone()
    }

    fn max_in_flight(&self) -> usize {
        self.depth
    }

    fn submit(&mut self, submission: Submission) -> io::Result<()> {
        assert!(
            self.in_flight.len() < self.depth,
            "the engine submits at most max_in_flight writes"
        );
        {
            let mut g = self.disk.lock();
            if let Some((_, seed)) = g.write_fails() {
                // The ring refuses the round: nothing of it reaches the file.
                let errno = if seed & 1 == 0 {
                    libc::ENOMEM
                } else {
                    libc::EBADF
                };
                g.push(Op::SubmitFailed { errno });
                drop(g);
                if disk_bugs::armed(disk_bugs::DiskBug::FailedSubmitCompletes) {
                    // The planted bug: the failure is swallowed, and the round is reported
                    // complete by the next `complete`, unwritten.
                    self.lost.push(Completion {
                        token: submission.token,
                        buf: submission.buf,
                        result: Ok(()),
                    });
                    return Ok(());
                }
                return Err(io::Error::from_raw_os_error(errno));
            }
        }
        self.in_flight.push(submission);
        if let Some(s) = &self.sched {
            s.lock().in_flight = self.in_flight.len();
        }
        Ok(())
    }

    /// Completes one write in flight, chosen by the seed (written and synced now; each other
    /// write in flight is written too, unsynced, one time in four — the device may have some of
    /// them already — and the rest stay unwritten), or waits as [`LogDriver::wait`] when none
    /// is. While there is room for more, on the scheduler, it first holds the writes in flight
    /// for a while three calls in four (a wait of at most [`HOLD`] of simulated time, ended by a
    /// wake), so that committers append meanwhile and the engine submits more rounds behind
    /// them.
    fn complete(
        &mut self,
        done: &mut Vec<Completion>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        if !self.lost.is_empty() {
            done.append(&mut self.lost);
            return Ok(());
        }
        if self.in_flight.is_empty() {
            return self.wait(timeout);
        }
        // Only on the scheduler, with its gates closed: its holds end at simulated times, so a
        // seed's run replays exactly. Free-running (closing) or unscheduled, a hold would end at
        // a real time, and the writes' completion order — drawn from the generator the holds
        // also draw from — would depend on the threads' timing.
        let scheduled = self.sched.as_ref().is_some_and(|s| !s.lock().free);
        if scheduled
            && !self.held
            && self.in_flight.len() < self.depth
            && !self.next_random().is_multiple_of(4)
        {
            self.held = true;
            return self.wait(Some(timeout.map_or(HOLD, |t| t.min(HOLD))));
        }
        self.held = false;
        let i = (self.next_random() % self.in_flight.len() as u64) as usize;
        let s = self.in_flight.remove(i);
        if let Some(sched) = &self.sched {
            sched.lock().in_flight = self.in_flight.len();
            sched.gate_write();
        }
        // The device may have received other writes in flight already, unsynced: a crash can
        // then find several rounds in flight torn at once.
        for j in 0..self.in_flight.len() {
            if self.next_random().is_multiple_of(4) {
                let other = &self.in_flight[j];
                let _ = other.file.write_all_at(other.buf.as_slice(), other.offset);
            }
        }
        let result = write_then_sync(&*s.file, s.offset, s.buf.as_slice(), self.delay);
        done.push(Completion {
            token: s.token,
            buf: s.buf,
            result,
        });
        Ok(())
    }

    fn started(&mut self) {
        if let Some(s) = &self.sched {
            s.gate_start();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory rename replayed on another disk (where the directory, made by the untraced
    /// `create_dir_all`, is unknown) leaves `to` a directory there too (session 34's review).
    #[test]
    fn a_replayed_directory_rename_leaves_a_directory() {
        let p = PathBuf::from;
        let base = Image {
            files: Default::default(),
            dirs: vec![p("/r")],
        };
        let a = SimVfs::from_image(&base, true, Duration::ZERO);
        a.create_dir_all(&p("/r/s")).unwrap();
        let w = OpenOptions {
            write: true,
            create: true,
            direct: false,
        };
        drop(a.open(&p("/r/s/f"), w).unwrap());
        a.rename(&p("/r/s"), &p("/r/t")).unwrap();
        assert_eq!(a.kind_of(&p("/r/t")).unwrap(), Some(EntryKind::Dir));
        assert_eq!(a.kind_of(&p("/r/s")).unwrap(), None);
        let b = SimVfs::from_image(&base, true, Duration::ZERO);
        b.replay(&a.trace());
        assert_eq!(b.kind_of(&p("/r/t/f")).unwrap(), Some(EntryKind::File));
        assert_eq!(b.kind_of(&p("/r/t")).unwrap(), Some(EntryKind::Dir));
        // And a disk made from an image knows the directories of its files.
        let c = SimVfs::from_image(&b.snapshot(), false, Duration::ZERO);
        assert_eq!(c.kind_of(&p("/r/t")).unwrap(), Some(EntryKind::Dir));
    }
}
