//! # ringlog-uring
//!
//! The I/O layer of ringlog. Every filesystem operation the engine performs goes through the
//! [`Vfs`] trait, so that a simulated disk can replace the real one for power-loss testing:
//!
//! * [`Vfs`] — the filesystem: open/create files, list, rename, remove, directory fsync, locks,
//!   batched positional reads ([`Vfs::read_batch`]), and a [`LogDriver`] for the log thread.
//! * [`VFile`] — one open file: positional reads and writes, `fdatasync`, preallocation.
//! * [`LogDriver`] — owned by the engine's single log thread: writes a batch and makes it durable
//!   (the commit path), and waits for work or a timer.
//!
//! Two implementations: [`PosixVfs`] (portable: `pwrite` + `fdatasync`, a condition variable as
//! timer) and [`UringVfs`] (one io_uring per log thread: the write SQE linked to an
//! `Fsync(DATASYNC)` SQE or a single `RWF_DSYNC` write, a `Timeout` SQE as the coalescing timer;
//! a batch of reads goes to the kernel in one submission on a ring of a small pool).
//! [`select`] picks io_uring when the kernel offers it and falls back to the portable path,
//! logging why; `RINGLOG_IO=uring|portable|auto` forces a choice.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringlog_format::AlignedBuf;

mod detect;
mod fsinfo;
mod posix;
mod uring;

pub use detect::{select, IoChoice, ParseIoChoiceError};
pub use fsinfo::FsInfo;
pub use posix::{pwrite_dsync, write_durable_now, PosixDriver, PosixFile, PosixVfs};
pub use uring::{probe as probe_uring, UringDriver, UringStats, UringVfs};

/// Which implementation of the I/O layer is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// io_uring.
    Uring,
    /// pwrite + fdatasync.
    Portable,
    /// Anything else plugged in through [`Vfs`] (a simulated or fault-injecting disk).
    Custom,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Uring => "io_uring",
            BackendKind::Portable => "portable",
            BackendKind::Custom => "custom",
        })
    }
}

/// The backend in use and why it was chosen (for logs and the database's stats).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendInfo {
    /// The implementation.
    pub kind: BackendKind,
    /// Why it was chosen, e.g. "forced by RINGLOG_IO=portable" or "io_uring_setup: EPERM".
    pub reason: String,
}

impl BackendInfo {
    /// A description of backend `kind`, chosen for `reason`.
    pub fn new(kind: BackendKind, reason: impl Into<String>) -> BackendInfo {
        BackendInfo {
            kind,
            reason: reason.into(),
        }
    }
}

/// How the log driver makes a written batch durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SyncStrategy {
    /// The write completes, then an `fdatasync` runs (on io_uring: a Write SQE linked with
    /// `IOSQE_IO_LINK` to an `Fsync(DATASYNC)` SQE, submitted together).
    WriteThenSync,
    /// One write with `RWF_DSYNC` (io_uring Write SQE with `rw_flags`, or `pwritev2`): its
    /// completion means durable. The default — measured fastest on both I/O paths — and used
    /// only where the filesystem is known to honour it ([`FsInfo::dsync_durable`]); elsewhere the
    /// engine falls back to [`SyncStrategy::WriteThenSync`].
    #[default]
    Dsync,
}

/// How to open a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct OpenOptions {
    /// Open for writing as well as reading.
    pub write: bool,
    /// Create the file if it does not exist.
    pub create: bool,
    /// Try `O_DIRECT`; if the filesystem refuses it (`EINVAL`), the file is opened buffered and the
    /// fallback is logged. [`VFile::direct_io`] tells which happened.
    pub direct: bool,
}

/// Outcome of [`VFile::allocate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Allocation {
    /// The space is reserved (`fallocate` succeeded).
    Reserved,
    /// The filesystem cannot preallocate (`EOPNOTSUPP`, e.g. FUSE or some network filesystems);
    /// the file was extended with `ftruncate` instead (sparse).
    Unsupported,
}

/// A file's bytes shared without a copy: see [`VFile::shared_contents`].
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Writes one file in large pieces, possibly several at once, then makes it durable. Obtained from
/// [`Vfs::file_writer`]. Nothing written is known durable before [`FileWriter::finish`] returns
/// with `sync`.
pub trait FileWriter {
    /// Queues `buf` to be written at `offset`. May return before the write completes; may block
    /// until an earlier one does.
    ///
    /// # Errors
    ///
    /// The error of this write or of an earlier one (the writer then stays failed).
    fn write(&mut self, buf: Vec<u8>, offset: u64) -> io::Result<()>;
    /// Waits until every queued write completed, then `fdatasync`s the file when `sync`.
    ///
    /// # Errors
    ///
    /// The first error of any write, or of the sync.
    fn finish(&mut self, sync: bool) -> io::Result<()>;
}

/// The portable [`FileWriter`]: every write completes before `write` returns.
pub struct SyncFileWriter<'a> {
    file: &'a dyn VFile,
    /// The first error (kind and message): the writer stays failed.
    failed: Option<(io::ErrorKind, String)>,
}

impl<'a> SyncFileWriter<'a> {
    /// A writer of `file`.
    pub fn new(file: &'a dyn VFile) -> SyncFileWriter<'a> {
        SyncFileWriter { file, failed: None }
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
            None => Ok(()),
        }
    }

    fn note(&mut self, r: io::Result<()>) -> io::Result<()> {
        if let Err(e) = &r {
            self.failed.get_or_insert_with(|| (e.kind(), e.to_string()));
        }
        r
    }
}

impl FileWriter for SyncFileWriter<'_> {
    fn write(&mut self, buf: Vec<u8>, offset: u64) -> io::Result<()> {
        self.check()?;
        let r = self.file.write_all_at(&buf, offset);
        self.note(r)
    }
    fn finish(&mut self, sync: bool) -> io::Result<()> {
        self.check()?;
        if sync {
            let r = self.file.sync_data();
            self.note(r)?;
        }
        Ok(())
    }
}

/// One open file. Implementations must be usable from several threads at once (positional I/O).
pub trait VFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at end of file).
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`, looping over short writes.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// `fdatasync`: makes written data (and the metadata needed to read it) durable.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: makes data and all metadata durable.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn sync_all(&self) -> io::Result<()>;
    /// Reserves `[0, len)` so later writes need no allocation (`fallocate` mode 0).
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn allocate(&self, len: u64) -> io::Result<Allocation>;
    /// Current file size.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn size(&self) -> io::Result<u64>;
    /// Truncates or extends the file to `len` bytes.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `Some(alignment)` when the file is open with `O_DIRECT`: buffers, offsets and lengths of
    /// writes must then be multiples of `alignment`.
    fn direct_io(&self) -> Option<usize>;
    /// The file descriptor, for drivers that submit I/O on it themselves (io_uring). `None` for
    /// files that are not kernel files (a simulated disk).
    fn raw_fd(&self) -> Option<RawFd>;

    /// The file's whole contents without a copy, for backends that hold files in memory (an
    /// in-memory or simulated filesystem): a snapshot that later writes do not change. Recovery
    /// then decodes the segment in place instead of reading it into a buffer. Kernel files return
    /// `None` (the default) and are read with [`VFile::read_at`].
    fn shared_contents(&self) -> Option<SharedBytes> {
        None
    }

    /// A hint that `[offset, offset + len)` will not be read again soon: a kernel file drops
    /// those bytes from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`; pages still dirty
    /// stay), so that a file read once, front to back, does not take memory that fresh pages must
    /// then be found for. Changes no byte of the file; backends without a page cache ignore it
    /// (the default).
    ///
    /// # Errors
    ///
    /// The operating system's error, unchanged (a hint: callers may ignore it).
    fn drop_cached(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }

    /// Reads exactly `buf.len()` bytes at `offset`, failing with `UnexpectedEof` if the file ends.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file ended early",
                    ))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// One read of a batch: fill `buf` exactly from `file` at `offset`. See [`Vfs::read_batch`].
pub struct BatchRead<'a> {
    /// The file read (its descriptor, if it has one, stays open for the call: it is borrowed).
    pub file: &'a dyn VFile,
    /// Where in the file the read starts.
    pub offset: u64,
    /// Filled whole on success; its contents are unspecified after a failure.
    pub buf: &'a mut [u8],
    /// Set by [`Vfs::read_batch`]: `Ok(())` when `buf` was filled exactly; an error otherwise
    /// (`UnexpectedEof` when the file ended before `buf` was full).
    pub result: Option<io::Result<()>>,
}

impl<'a> BatchRead<'a> {
    /// A read of `buf.len()` bytes of `file` at `offset`, not yet done (`result` is `None`).
    pub fn new(file: &'a dyn VFile, offset: u64, buf: &'a mut [u8]) -> BatchRead<'a> {
        BatchRead {
            file,
            offset,
            buf,
            result: None,
        }
    }
}

impl fmt::Debug for BatchRead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchRead")
            .field("offset", &self.offset)
            .field("len", &self.buf.len())
            .field("result", &self.result)
            .finish_non_exhaustive()
    }
}

/// A held exclusive lock on a file; dropping it releases the lock.
pub trait FileLock: Send + Sync {}

/// Wakes a [`LogDriver`] blocked in [`LogDriver::wait`] from any thread.
pub trait Waker: Send + Sync {
    /// Makes the current or next `wait` return promptly. Wakes are not lost: a wake before `wait`
    /// makes that `wait` return at once.
    fn wake(&self);
}

/// A durable write handed to [`LogDriver::submit`]. It owns everything the kernel may touch while
/// the write is in flight — the file and the buffer — and the driver keeps it until the write has
/// completed, then hands the buffer back in a [`Completion`].
pub struct Submission {
    /// The file written (kept open while the write is in flight).
    pub file: Arc<dyn VFile>,
    /// Where in the file `buf` goes.
    pub offset: u64,
    /// The bytes, written whole (short writes are completed by the driver).
    pub buf: AlignedBuf,
    /// How the write is made durable; the contract is [`LogDriver::write_durable`]'s.
    pub strategy: SyncStrategy,
    /// The caller's name for this write, returned with its completion.
    pub token: u64,
}

impl fmt::Debug for Submission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Submission")
            .field("offset", &self.offset)
            .field("len", &self.buf.len())
            .field("strategy", &self.strategy)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// A finished [`Submission`]: its token, its buffer back, and whether its bytes are durable.
#[derive(Debug)]
pub struct Completion {
    /// The submission's token.
    pub token: u64,
    /// The submission's buffer, no longer referenced by any I/O.
    pub buf: AlignedBuf,
    /// `Ok` once every byte of the write is durable (per its strategy); the error otherwise,
    /// which the engine treats as fatal.
    pub result: io::Result<()>,
}

/// The commit path, owned by the engine's one log thread.
pub trait LogDriver: Send {
    /// Writes all of `buf` at `offset` in `file` and returns once the bytes are durable (per
    /// `strategy`). Short writes are completed; `EINTR`/`EAGAIN` are retried; any other error is
    /// returned and the engine must treat it as fatal. `buf` is only borrowed for the call: no I/O
    /// referencing it is in flight after it returns, whatever the outcome.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn write_durable(
        &mut self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()>;
    /// Blocks until woken through [`LogDriver::waker`] or until `timeout` elapses (`None`: no
    /// timeout). Spurious returns are allowed. With submissions in flight, call
    /// [`LogDriver::complete`] instead: a driver need not advance them (resubmit a short write's
    /// remainder, say) while it waits here.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()>;
    /// A handle other threads use to wake this driver.
    fn waker(&self) -> Arc<dyn Waker>;
    /// Called once by the log thread when it starts, before it first looks at the log. Does
    /// nothing by default; a simulated driver's scheduler holds the new thread here until it lets
    /// it run, so that what the thread finds first does not depend on thread start-up timing.
    fn started(&mut self) {}

    /// How many [`LogDriver::submit`]ted writes this driver can keep in flight at once. `1`, the
    /// default, means it has no pipeline: the engine then uses [`LogDriver::write_durable`] only,
    /// one round at a time, and never calls `submit` or `complete`.
    fn max_in_flight(&self) -> usize {
        1
    }

    /// Starts a durable write and returns without waiting for it; its outcome comes from
    /// [`LogDriver::complete`]. Called with fewer than [`LogDriver::max_in_flight`] submissions
    /// in flight, and never while a [`LogDriver::write_durable`] runs. Writes in flight may
    /// complete, and become durable, in any order: each completion speaks for its own bytes only
    /// (an `RWF_DSYNC` write, or a write with an fdatasync linked behind it). The default fails
    /// with `Unsupported` (drivers whose `max_in_flight` is 1).
    ///
    /// # Errors
    ///
    /// The submission could not be started. The submission is dropped and its buffer freed —
    /// or, when part of it may already be with the kernel, kept by the driver until every
    /// operation on it completed or the driver is dropped (never freed while the kernel may
    /// access it). The engine treats it as fatal.
    fn submit(&mut self, submission: Submission) -> io::Result<()> {
        drop(submission);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this log driver keeps no writes in flight",
        ))
    }

    /// Blocks until at least one submitted write has completed, a [`LogDriver::waker`] wake
    /// arrived, or `timeout` elapsed (`None`: no timeout; spurious returns are allowed), then
    /// appends every submission that has completed by now to `done`, in any order. With nothing
    /// in flight it is [`LogDriver::wait`]. A submission appears in `done` exactly once.
    ///
    /// # Errors
    ///
    /// The driver itself failed (not one write: those fail in their [`Completion`]); the engine
    /// treats it as fatal. Buffers of writes still in flight stay with the driver, which never
    /// frees one the kernel may still access.
    fn complete(
        &mut self,
        done: &mut Vec<Completion>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let _ = done;
        self.wait(timeout)
    }
}

/// The filesystem as the engine sees it. Every operation the engine performs on disk goes through
/// this trait.
pub trait Vfs: Send + Sync + 'static {
    /// Which backend this is and why it was chosen.
    fn backend(&self) -> BackendInfo;
    /// A writer for one large file written in sequential pieces (a checkpoint): the io_uring
    /// backend keeps several writes in flight on a ring of its own; the default writes each piece
    /// before returning ([`SyncFileWriter`]). The io_uring writer does not wait forever for a
    /// request the kernel queued and never ran: after 5 s without any completion it cancels what
    /// it has in flight (logged as a warning) and writes those pieces, or redoes the final
    /// fdatasync, synchronously; a request the kernel is executing is waited for. (On kernels
    /// from 5.11, which time-limit a wait with `IORING_FEAT_EXT_ARG`; before, it is waited for.)
    fn file_writer<'a>(&self, file: &'a dyn VFile) -> Box<dyn FileWriter + 'a> {
        Box::new(SyncFileWriter::new(file))
    }
    /// Reads every request of `reads`, setting each one's [`BatchRead::result`] (a result set
    /// before the call is replaced). The io_uring backend submits all of them in one submission
    /// on a ring (`IORING_OP_READ`; a batch larger than the ring is fed to it as reads complete);
    /// the default reads them one after the other with [`VFile::read_exact_at`]. Never fails as a
    /// whole: errors are per request, and one request's error does not affect the others. An empty
    /// `buf` is `Ok` without any I/O. When it returns, no I/O referencing any `buf` is in flight.
    /// The io_uring backend does not wait forever for a read the kernel queued and never ran:
    /// after 5 s without any completion it cancels the reads in flight (logged as a warning) and
    /// reads them, and the batch's requests not yet submitted, with plain reads (kernels from
    /// 5.11, as for [`Vfs::file_writer`]).
    fn read_batch(&self, reads: &mut [BatchRead<'_>]) {
        for r in reads {
            r.result = Some(r.file.read_exact_at(r.buf, r.offset));
        }
    }
    /// Opens (or creates) a file.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn open(&self, path: &Path, opts: OpenOptions) -> io::Result<Box<dyn VFile>>;
    /// Creates a directory and its parents.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// What is at `path`: `None` if nothing.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn kind_of(&self, path: &Path) -> io::Result<Option<EntryKind>>;
    /// The names of the entries of a directory, in no particular order.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Removes a file.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Atomically renames `from` to `to` (replacing `to`).
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// `fsync` of a directory: makes its entries (creations, renames, removals) durable.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on the file at `path` (created if missing) without blocking;
    /// fails with `ErrorKind::WouldBlock` if another holder has it.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>>;
    /// Whether another holder has the lock [`Vfs::lock`] takes on the file at `path`, found
    /// without taking it and without creating the file (`false` when it does not exist). A
    /// read-only open uses it to tell a log a writer is appending to from a damaged one. The
    /// default answers `false` (no way to know).
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn lock_held(&self, _path: &Path) -> io::Result<bool> {
        Ok(false)
    }
    /// The filesystem holding `path` (an existing directory or file), and whether a completed
    /// `RWF_DSYNC` write is durable there: the engine uses [`SyncStrategy::Dsync`] only where it
    /// is (see [`FsInfo`]). A simulated disk answers for its own model.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn filesystem(&self, path: &Path) -> io::Result<FsInfo>;
    /// A new commit-path driver for one log thread.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn log_driver(&self) -> io::Result<Box<dyn LogDriver>>;

    /// Whether a committer may write a log round itself, on its own thread, through
    /// [`Vfs::write_durable_here`] (a lone `Strict` commit then needs no hand-off to the log
    /// thread). `false` by default: every durable log write then goes through the driver of
    /// [`Vfs::log_driver`], which a wrapper that replaces only the driver (to inject faults,
    /// count or mirror writes) relies on. The built-in backends say `true`; a wrapper that says
    /// `true` must make `write_durable_here` do what its driver's `write_durable` does.
    fn writes_here(&self) -> bool {
        false
    }

    /// Writes all of `buf` at `offset` in `file` and returns once the bytes are durable (per
    /// `strategy`), **on the calling thread**: what a committer uses when it writes a round itself
    /// rather than handing it to the log thread — only when [`Vfs::writes_here`] says so. The
    /// contract is [`LogDriver::write_durable`]'s. The default is [`write_durable_now`]
    /// (`pwritev2(RWF_DSYNC)`, or `pwrite` then `fdatasync` through the [`VFile`]).
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    fn write_durable_here(
        &self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        write_durable_now(file, offset, buf, strategy)
    }

    /// The clock the engine's timers read (the `Buffered` interval, the group-commit gathering
    /// window): [`Instant::now`] for a real disk. A simulated disk can run simulated time, so
    /// that the timers fire exactly where its scheduler says and a run replays exactly.
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// Called by the engine just before a thread blocks until another makes progress (see
    /// [`BlockReason`]), **with an engine lock held** (the log state's, or the visibility
    /// queue's): the thread blocks once that lock is released. A real disk ignores it; a
    /// simulated disk's scheduler uses it to know that thread is parked before it lets another
    /// run. An implementation must therefore never call back into the database, nor wait for a
    /// lock that a thread may hold while it calls the database (the crash runner's scheduler
    /// reads engine state only with its own lock released).
    fn will_block(&self, _why: BlockReason) {}
}

/// Why a committer thread is about to block (see [`Vfs::will_block`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BlockReason {
    /// A `Strict` commit waits for the round carrying its records to be durable.
    CommitDurable,
    /// `wait_durable` / `sync` waits for an LSN to become durable.
    WaitDurable,
    /// Backpressure: too many bytes wait for the log thread.
    Space,
    /// A commit waits for the commits before it to become visible (commit order is visibility
    /// order), e.g. a `Buffered` commit behind a `Strict` one that waits for its sync.
    Visibility,
}

/// Implements the filesystem methods of [`Vfs`] (`open`, `create_dir_all`, `kind_of`,
/// `list_dir`, `remove_file`, `rename`, `sync_dir`, `lock`, `lock_held`, `filesystem`, `now`, `will_block`) by forwarding each to `self.$field`,
/// which offers the same methods — another `Vfs`, for a wrapper that only changes the log driver
/// or the backend description. Use it inside an `impl Vfs for ...` block. The I/O helpers with a
/// default — [`Vfs::file_writer`], [`Vfs::read_batch`], [`Vfs::write_durable_here`] — are not
/// forwarded: the wrapper keeps the trait's defaults unless it forwards them itself.
///
/// ```
/// use std::sync::Arc;
/// use ringlog_uring::{forward_fs_ops, BackendInfo, BackendKind, LogDriver, PosixVfs, Vfs};
///
/// struct Labelled {
///     inner: Arc<dyn Vfs>,
/// }
///
/// impl Vfs for Labelled {
///     fn backend(&self) -> BackendInfo {
///         BackendInfo::new(BackendKind::Custom, "labelled")
///     }
///     fn log_driver(&self) -> std::io::Result<Box<dyn LogDriver>> {
///         self.inner.log_driver()
///     }
///     forward_fs_ops!(inner);
/// }
///
/// let vfs = Labelled { inner: Arc::new(PosixVfs::default()) };
/// assert!(vfs.kind_of(std::path::Path::new("/")).unwrap().is_some());
/// ```
#[macro_export]
macro_rules! forward_fs_ops {
    ($field:ident) => {
        fn open(
            &self,
            path: &::std::path::Path,
            opts: $crate::OpenOptions,
        ) -> ::std::io::Result<::std::boxed::Box<dyn $crate::VFile>> {
            self.$field.open(path, opts)
        }
        fn create_dir_all(&self, path: &::std::path::Path) -> ::std::io::Result<()> {
            self.$field.create_dir_all(path)
        }
        fn kind_of(
            &self,
            path: &::std::path::Path,
        ) -> ::std::io::Result<::std::option::Option<$crate::EntryKind>> {
            self.$field.kind_of(path)
        }
        fn list_dir(
            &self,
            path: &::std::path::Path,
        ) -> ::std::io::Result<::std::vec::Vec<::std::string::String>> {
            self.$field.list_dir(path)
        }
        fn remove_file(&self, path: &::std::path::Path) -> ::std::io::Result<()> {
            self.$field.remove_file(path)
        }
        fn rename(
            &self,
            from: &::std::path::Path,
            to: &::std::path::Path,
        ) -> ::std::io::Result<()> {
            self.$field.rename(from, to)
        }
        fn sync_dir(&self, path: &::std::path::Path) -> ::std::io::Result<()> {
            self.$field.sync_dir(path)
        }
        fn lock(
            &self,
            path: &::std::path::Path,
        ) -> ::std::io::Result<::std::boxed::Box<dyn $crate::FileLock>> {
            self.$field.lock(path)
        }
        fn lock_held(&self, path: &::std::path::Path) -> ::std::io::Result<bool> {
            self.$field.lock_held(path)
        }
        fn filesystem(&self, path: &::std::path::Path) -> ::std::io::Result<$crate::FsInfo> {
            self.$field.filesystem(path)
        }
        fn now(&self) -> ::std::time::Instant {
            self.$field.now()
        }
        fn will_block(&self, why: $crate::BlockReason) {
            self.$field.will_block(why)
        }
    };
}

/// What a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// Anything else (socket, device, ...).
    Other,
}

/// Logs `msg` at warn level the first time `once` is seen (per process), at debug level after.
pub(crate) fn warn_once(once: &std::sync::Once, msg: impl fmt::Display) {
    let mut first = false;
    once.call_once(|| first = true);
    if first {
        log::warn!("{msg}");
    } else {
        log::debug!("{msg}");
    }
}
