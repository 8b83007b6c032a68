//! The io_uring backend: one ring per log thread.
//!
//! File-system operations (open, rename, directory fsync, locks) are plain syscalls shared with the
//! portable backend ([`PosixFs`]); only the commit path and the log thread's wait go through the
//! ring:
//!
//! * [`UringDriver::write_durable`] submits a `Write` SQE linked (`IOSQE_IO_LINK`) to an
//!   `Fsync(DATASYNC)` SQE, or a single `Write` SQE with `RWF_DSYNC`, and does not return before
//!   every SQE it submitted has completed. Short writes, `-EAGAIN`/`-EINTR` and the `-ECANCELED`
//!   that a broken chain leaves behind are handled by a small state machine ([`Commit`]) that is
//!   unit-tested with synthetic completions.
//! * [`UringDriver::submit`] starts the same write (+ linked fsync) without waiting, up to
//!   [`UringDriver::MAX_IN_FLIGHT`] at once, each driven by its own [`Commit`] in a slot of the
//!   driver's in-flight table that owns its buffer and file until every SQE naming them was reaped;
//!   [`UringDriver::complete`] waits (like `wait`) until one finishes, then hands back every
//!   finished one with its buffer. SQEs name their commit by slot in the `user_data` payload.
//! * [`UringDriver::wait`] keeps a one-shot `PollAdd` armed on an `eventfd` (the [`Waker`] writes
//!   to it from any thread) and, when given a timeout, a `Timeout` SQE used as a pure timer.
//! * [`Vfs::read_batch`] pushes one `Read` SQE per request on a ring taken from a small pool of
//!   the [`UringVfs`] (rings any thread may enter: no `SINGLE_ISSUER`), submits them together and
//!   reaps them, resubmitting the remainder of short reads; the ring goes back to the pool only
//!   once every read it carried has completed.
//!
//! The ring is created with `SINGLE_ISSUER | DEFER_TASKRUN` where the kernel allows it (falling
//! back to `COOP_TASKRUN | TASKRUN_FLAG`, then to no flags), disabled (`R_DISABLED`) until its
//! first use so that the thread that first uses it becomes its single issuer — wherever the driver
//! was created.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Once, OnceLock};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};
use parking_lot::Mutex;

use crate::posix::PosixFs;
use ringlog_format::AlignedBuf;

use crate::{
    warn_once, BackendInfo, BackendKind, BatchRead, Completion, FileWriter, LogDriver, PosixDriver,
    Submission, SyncFileWriter, SyncStrategy, VFile, Vfs, Waker,
};

/// Most [`LogDriver::submit`]ted writes a [`UringDriver`] keeps in flight at once (its
/// [`LogDriver::max_in_flight`]; public as [`UringDriver::MAX_IN_FLIGHT`]).
const MAX_IN_FLIGHT: usize = 8;

/// Submission queue size of a driver's ring. Every commit step (of `write_durable` or of one of
/// the [`MAX_IN_FLIGHT`] submissions) pushes at most 2 SQEs (write + linked fsync), a wait at most
/// 3 (poll, timer, timer removal) and `Drop` 2 (cancellations): even if all of them were queued
/// at once they would fit. In practice every push is followed by an `io_uring_enter` that
/// consumes it, and `make_room` submits whatever is queued before a step needs the space. The
/// completion queue is twice as large, so the operations in flight (at most two per submission
/// plus the waiter's few) cannot overflow it (and `IORING_FEAT_NODROP` is required anyway).
const RING_ENTRIES: u32 = 32;

const _: () = assert!(2 * MAX_IN_FLIGHT + 2 + 3 + 2 <= RING_ENTRIES as usize);

/// Largest single write submitted. The kernel caps one read/write at `MAX_RW_COUNT` (`INT_MAX`
/// rounded down to a page); 1 GiB stays below it and keeps `O_DIRECT` alignment.
const MAX_CHUNK: usize = 1 << 30;

/// Consecutive `-EAGAIN`/`-EINTR`/`-ECANCELED` completions without progress after which a commit
/// gives up with an error instead of spinning forever.
const MAX_STALLED_RETRIES: u32 = 1000;

/// Longest timer armed by `wait` (longer timeouts are clamped; the wait may return spuriously
/// then, which the trait allows). Keeps `tv_sec` far from the `i64` overflow the kernel rejects.
const MAX_TIMER: Duration = Duration::from_secs(u32::MAX as u64);

/// The opcodes this backend submits; the probe refuses io_uring if one is missing.
const REQUIRED_OPCODES: [(&str, u8); 6] = [
    ("Write", opcode::Write::CODE),
    ("Fsync", opcode::Fsync::CODE),
    ("Timeout", opcode::Timeout::CODE),
    ("TimeoutRemove", opcode::TimeoutRemove::CODE),
    ("PollAdd", opcode::PollAdd::CODE),
    ("AsyncCancel", opcode::AsyncCancel::CODE),
];

const IO_URING_DISABLED_SYSCTL: &str = "/proc/sys/kernel/io_uring_disabled";

static PROBE: OnceLock<Result<String, String>> = OnceLock::new();
static DRIVER_FALLBACK: Once = Once::new();
static READ_RING_FALLBACK: Once = Once::new();
static UNSLICED_WAITS: Once = Once::new();

// ---------------------------------------------------------------------------------------------
// Ring setup and probing
// ---------------------------------------------------------------------------------------------

/// Which setup flags the kernel accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RingMode {
    /// `SINGLE_ISSUER | DEFER_TASKRUN` (6.1+): completions are delivered only when the owning
    /// thread enters the ring with `GETEVENTS`.
    SingleIssuer,
    /// `COOP_TASKRUN | TASKRUN_FLAG` (5.19+).
    CoopTaskrun,
    /// No setup flags.
    Plain,
}

impl RingMode {
    fn describe(self) -> &'static str {
        match self {
            RingMode::SingleIssuer => "single_issuer, defer_taskrun",
            RingMode::CoopTaskrun => "coop_taskrun",
            RingMode::Plain => "no setup flags",
        }
    }
}

/// Builds a ring with the best setup flags the kernel accepts, dropping flags on `EINVAL`.
/// `disabled` creates a `SINGLE_ISSUER` ring with `R_DISABLED`, to be enabled by its first user.
fn build_ring(entries: u32, disabled: bool) -> io::Result<(IoUring, RingMode)> {
    let mut b = IoUring::builder();
    b.setup_single_issuer().setup_defer_taskrun();
    if disabled {
        b.setup_r_disabled();
    }
    match b.build(entries) {
        Ok(ring) => return Ok((ring, RingMode::SingleIssuer)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            log::debug!(
                "io_uring: SINGLE_ISSUER|DEFER_TASKRUN refused (EINVAL); trying COOP_TASKRUN"
            )
        }
        Err(e) => return Err(e),
    }
    build_shared_ring(entries)
}

/// Builds a ring that any thread may enter (no `SINGLE_ISSUER`): `COOP_TASKRUN | TASKRUN_FLAG`
/// where the kernel accepts them, else no setup flags.
fn build_shared_ring(entries: u32) -> io::Result<(IoUring, RingMode)> {
    let mut b = IoUring::builder();
    b.setup_coop_taskrun().setup_taskrun_flag();
    match b.build(entries) {
        Ok(ring) => return Ok((ring, RingMode::CoopTaskrun)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            log::debug!("io_uring: COOP_TASKRUN refused (EINVAL); using no setup flags")
        }
        Err(e) => return Err(e),
    }
    IoUring::new(entries).map(|ring| (ring, RingMode::Plain))
}

/// Explains a failed io_uring call in words an operator can act on. `sysctl` is the content of
/// `/proc/sys/kernel/io_uring_disabled` (`None` if the file is absent) and `memlock` the soft
/// `RLIMIT_MEMLOCK` in bytes, both only used for the matching errno.
fn classify(call: &str, e: &io::Error, sysctl: Option<&str>, memlock: Option<u64>) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => {
            format!("{call}: ENOSYS (kernel without io_uring or blocked by seccomp)")
        }
        Some(libc::EPERM) => {
            let setting = match sysctl {
                Some(v) => format!("{IO_URING_DISABLED_SYSCTL} = {}", v.trim()),
                None => format!("{IO_URING_DISABLED_SYSCTL} (absent on this kernel)"),
            };
            format!("{call}: EPERM (io_uring disabled by /proc/sys/kernel/io_uring_disabled or a container seccomp profile; {setting})")
        }
        Some(libc::ENOMEM) => match memlock {
            Some(limit) => format!(
                "{call}: ENOMEM (RLIMIT_MEMLOCK too small: {} KiB)",
                limit / 1024
            ),
            None => format!("{call}: ENOMEM (RLIMIT_MEMLOCK too small)"),
        },
        Some(libc::EMFILE) => {
            format!("{call}: EMFILE (too many open files: RLIMIT_NOFILE reached)")
        }
        Some(n) => format!("{call}: {e} (errno {n})"),
        None => format!("{call}: {e}"),
    }
}

/// [`classify`] with the sysctl and memlock limit read from this system.
fn classify_here(call: &str, e: &io::Error) -> String {
    let sysctl = std::fs::read_to_string(IO_URING_DISABLED_SYSCTL).ok();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `lim`, a live local of the right type.
    let memlock =
        (unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } == 0).then_some(lim.rlim_cur);
    classify(call, e, sysctl.as_deref(), memlock)
}

/// Probes io_uring once per process: sets up a small ring (classifying a refusal: ENOSYS, EPERM,
/// ENOMEM, EMFILE, ...), requires `IORING_FEAT_NODROP` and the opcodes this backend submits, and
/// runs one `Nop` through the ring. `Ok` describes what is available, `Err` why it is not.
///
/// # Errors
///
/// Why io_uring cannot be used here (the failing call and its error, e.g. `io_uring_setup: EPERM`, or a missing opcode).
pub fn probe() -> Result<String, String> {
    PROBE.get_or_init(probe_uncached).clone()
}

fn probe_uncached() -> Result<String, String> {
    let (mut ring, mode) = build_ring(4, false).map_err(|e| classify_here("io_uring_setup", &e))?;
    if !ring.params().is_feature_nodrop() {
        return Err(
            "io_uring lacks IORING_FEAT_NODROP (kernel older than 5.5): completions could be lost"
                .into(),
        );
    }
    let mut ops = io_uring::Probe::new();
    ring.submitter().register_probe(&mut ops).map_err(|e| {
        format!(
            "io_uring opcode probe unavailable (kernel older than 5.6?): {}",
            classify_here("io_uring_register(PROBE)", &e)
        )
    })?;
    if let Some((name, _)) = REQUIRED_OPCODES
        .iter()
        .find(|(_, code)| !ops.is_supported(*code))
    {
        return Err(format!("io_uring lacks the {name} opcode on this kernel"));
    }
    // Smoke test: one Nop round trip also catches a seccomp profile that allows io_uring_setup but
    // not io_uring_enter.
    let nop = opcode::Nop::new().build().user_data(1);
    // SAFETY: a Nop references no memory.
    unsafe { ring.submission().push(&nop) }.map_err(|_| "io_uring probe: empty ring is full")?;
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(classify_here("io_uring_enter", &e)),
        }
        if let Some(cqe) = ring.completion().next() {
            if cqe.result() < 0 {
                return Err(format!(
                    "io_uring Nop failed: {}",
                    io::Error::from_raw_os_error(-cqe.result())
                ));
            }
            break;
        }
    }
    Ok(format!("io_uring available (NODROP, {})", mode.describe()))
}

// ---------------------------------------------------------------------------------------------
// The Vfs
// ---------------------------------------------------------------------------------------------

/// The io_uring backend: file-system operations are the portable ones; each log thread's commit
/// path and wait run on its own ring ([`UringDriver`]).
pub struct UringVfs {
    fs: PosixFs,
    reason: String,
    /// Set when a [`UringDriver`] could not be created and a log thread got the portable driver
    /// instead; reported by [`Vfs::backend`].
    driver_fallback: Mutex<Option<String>>,
    /// Idle rings for [`Vfs::read_batch`] (at most [`READ_RING_POOL`]). A ring is here only with
    /// nothing in flight and its completion queue empty.
    read_rings: Mutex<Vec<IoUring>>,
}

impl UringVfs {
    /// An io_uring backend; `reason` says why it was chosen (reported in stats).
    pub fn new(reason: String) -> UringVfs {
        UringVfs {
            fs: PosixFs,
            reason,
            driver_fallback: Mutex::new(None),
            read_rings: Mutex::new(Vec::new()),
        }
    }

    /// A ring for one `read_batch`: an idle one of the pool, else a new one, which must offer
    /// `IORING_OP_READ`. The caller has it to itself until [`UringVfs::put_read_ring`].
    fn take_read_ring(&self) -> Result<IoUring, (&'static str, io::Error)> {
        if let Some(ring) = self.read_rings.lock().pop() {
            return Ok(ring);
        }
        let (ring, mode) =
            build_shared_ring(READ_RING_ENTRIES).map_err(|e| ("io_uring_setup", e))?;
        let mut ops = io_uring::Probe::new();
        ring.submitter()
            .register_probe(&mut ops)
            .map_err(|e| ("io_uring_register(PROBE)", e))?;
        if !ops.is_supported(opcode::Read::CODE) {
            return Err((
                "io_uring_register(PROBE)",
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "io_uring lacks the Read opcode on this kernel",
                ),
            ));
        }
        log::debug!("io_uring read ring created ({})", mode.describe());
        Ok(ring)
    }

    /// Returns a ring whose every read completed and was reaped to the pool, or closes it when
    /// the pool is full.
    fn put_read_ring(&self, ring: IoUring) {
        let mut pool = self.read_rings.lock();
        if pool.len() < READ_RING_POOL {
            pool.push(ring);
            return;
        }
        drop(pool);
        drop(ring);
    }
}

impl Vfs for UringVfs {
    fn backend(&self) -> BackendInfo {
        let reason = match &*self.driver_fallback.lock() {
            Some(why) => format!("{}; log driver fell back to portable: {why}", self.reason),
            None => self.reason.clone(),
        };
        BackendInfo {
            kind: BackendKind::Uring,
            reason,
        }
    }
    crate::forward_fs_ops!(fs);
    fn file_writer<'a>(&self, file: &'a dyn VFile) -> Box<dyn FileWriter + 'a> {
        match file.raw_fd().map(|fd| RingWriter::new(fd, file)) {
            Some(Ok(w)) => Box::new(w),
            Some(Err(e)) => {
                log::debug!("no ring for a file writer ({e}): writing synchronously");
                Box::new(SyncFileWriter::new(file))
            }
            None => Box::new(SyncFileWriter::new(file)),
        }
    }
    /// Requests on files with a descriptor go to the kernel together, as `Read` SQEs on a ring
    /// of this backend's small pool (64 in flight at most; the rest follow as earlier ones
    /// complete). The others (files without a descriptor, empty buffers) are read with
    /// [`VFile::read_exact_at`], and so is every request when no ring can be had (logged once)
    /// or the rest of the batch when the ring fails.
    fn read_batch(&self, reads: &mut [BatchRead<'_>]) {
        // The ring's part is `read_on_ring`'s. An offset beyond `i64::MAX` stays off the ring:
        // the kernel would take `u64::MAX` (-1) as "at the file position", where `pread` fails
        // with EINVAL.
        let mut on_ring = Vec::new();
        for (i, r) in reads.iter_mut().enumerate() {
            r.result = None;
            if let Some(fd) = r.file.raw_fd() {
                if !r.buf.is_empty() && i64::try_from(r.offset).is_ok() {
                    on_ring.push((i, fd));
                }
            }
        }
        if !on_ring.is_empty() {
            match self.take_read_ring() {
                Ok(mut ring) => match read_on_ring(&mut ring, reads, &on_ring, STALL_SLICES) {
                    Ok(()) => self.put_read_ring(ring),
                    // The ring is closed unused: the reads it did not finish are not in flight
                    // and are read below.
                    Err(e) => log::warn!(
                        "io_uring read ring failed ({}); finishing the batch with plain reads",
                        classify_here("io_uring_enter", &e)
                    ),
                },
                Err((call, e)) => warn_once(
                    &READ_RING_FALLBACK,
                    format_args!(
                        "io_uring read ring unavailable ({}); batched reads are read one by one",
                        classify_here(call, &e)
                    ),
                ),
            }
        }
        for r in reads.iter_mut().filter(|r| r.result.is_none()) {
            r.result = Some(r.file.read_exact_at(r.buf, r.offset));
        }
    }

    /// A committer's own round uses plain system calls ([`crate::write_durable_now`]): for one
    /// write and one sync, the ring is no faster, and only the log thread owns the ring.
    fn writes_here(&self) -> bool {
        true
    }

    fn log_driver(&self) -> io::Result<Box<dyn LogDriver>> {
        match UringDriver::create() {
            Ok(driver) => Ok(Box::new(driver)),
            Err((call, e)) => {
                let why = classify_here(call, &e);
                warn_once(
                    &DRIVER_FALLBACK,
                    format_args!("io_uring log driver unavailable ({why}); this log thread uses the portable pwrite/fdatasync path"),
                );
                *self.driver_fallback.lock() = Some(why);
                Ok(Box::new(PosixDriver::new()))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// user_data tags
// ---------------------------------------------------------------------------------------------

/// What an SQE was, encoded in the top byte of its `user_data`; the rest is a payload (the timer's
/// generation; for `Write`/`Fsync`, which commit: [`SYNC_COMMIT`] or a submission's slot, see
/// [`slot_payload`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Tag {
    Write = 1,
    Fsync = 2,
    Poll = 3,
    Timer = 4,
    TimerRemove = 5,
    Cancel = 6,
}

const TAG_SHIFT: u32 = 56;
const PAYLOAD_MASK: u64 = (1 << TAG_SHIFT) - 1;

/// The `Write`/`Fsync` payload of `write_durable`'s commit.
const SYNC_COMMIT: u64 = 0;

/// The `Write`/`Fsync` payload of the submission in slot `slot` of the in-flight table.
fn slot_payload(slot: usize) -> u64 {
    slot as u64 + 1
}

/// The in-flight slot a `Write`/`Fsync` payload names, `None` for [`SYNC_COMMIT`].
fn payload_slot(payload: u64) -> Option<usize> {
    payload.checked_sub(1).and_then(|s| usize::try_from(s).ok())
}

fn user_data(tag: Tag, payload: u64) -> u64 {
    ((tag as u64) << TAG_SHIFT) | (payload & PAYLOAD_MASK)
}

fn decode_user_data(ud: u64) -> Option<(Tag, u64)> {
    let tag = match ud >> TAG_SHIFT {
        1 => Tag::Write,
        2 => Tag::Fsync,
        3 => Tag::Poll,
        4 => Tag::Timer,
        5 => Tag::TimerRemove,
        6 => Tag::Cancel,
        _ => return None,
    };
    Some((tag, ud & PAYLOAD_MASK))
}

/// The Write SQE of a commit step: `chunk` at `at` in `fd`, with `RWF_DSYNC` for
/// [`SyncStrategy::Dsync`], linked (`IOSQE_IO_LINK`) to the fsync pushed behind it when
/// `then_fsync`. Building it is safe; pushing it is not: the caller keeps `chunk` alive and
/// unmoved until its completion is reaped.
fn write_entry(
    fd: RawFd,
    chunk: &[u8],
    at: u64,
    strategy: SyncStrategy,
    then_fsync: bool,
    payload: u64,
) -> squeue::Entry {
    let rw_flags = match strategy {
        SyncStrategy::Dsync => libc::RWF_DSYNC,
        SyncStrategy::WriteThenSync => 0,
    };
    let write = opcode::Write::new(
        types::Fd(fd),
        chunk.as_ptr(),
        u32::try_from(chunk.len()).expect("chunks are at most MAX_CHUNK bytes"),
    )
    .offset(at)
    .rw_flags(rw_flags)
    .build()
    .user_data(user_data(Tag::Write, payload));
    if then_fsync {
        write.flags(squeue::Flags::IO_LINK)
    } else {
        write
    }
}

/// The `Fsync(DATASYNC)` SQE of a commit step (it references no memory).
fn fsync_entry(fd: RawFd, payload: u64) -> squeue::Entry {
    opcode::Fsync::new(types::Fd(fd))
        .flags(types::FsyncFlags::DATASYNC)
        .build()
        .user_data(user_data(Tag::Fsync, payload))
}

// ---------------------------------------------------------------------------------------------
// Sliced waits: a request stranded in the kernel is cancelled instead of waited for forever
// ---------------------------------------------------------------------------------------------

/// How long one wait for a completion lasts before the waiter looks again, in ms.
const WAIT_SLICE_MS: u32 = 250;
/// [`WAIT_SLICE_MS`] as the kernel takes it.
const WAIT_SLICE: types::Timespec = types::Timespec::new().nsec(WAIT_SLICE_MS * 1_000_000);
/// Slices of [`WAIT_SLICE_MS`] without a completion after which a waiter cancels what it has in
/// flight and finishes it synchronously (5 s).
const STALL_SLICES: u32 = 20;

/// One `io_uring_enter` that submits what is queued and waits until `want` completions are in
/// the completion queue, for at most [`WAIT_SLICE_MS`]: `Ok(true)` when the slice ran out
/// first. A ring without `IORING_FEAT_EXT_ARG` (kernels before 5.11) cannot be given a timeout:
/// it gets an unsliced wait (logged once: a request the kernel never completes is then waited
/// for). Errors are the caller's, unchanged.
///
/// Why waits are sliced: buffered writes and fsyncs run on the kernel's io-wq workers, and a
/// stop-32 CI run (and three local runs in about two hundred and thirty) waited forever for a
/// checkpoint write that sat queued there with no worker to run it. Such a request completes
/// only when cancelled (`IORING_OP_ASYNC_CANCEL`), and a waiter that never wakes cannot cancel.
fn enter_sliced(ring: &IoUring, want: usize) -> io::Result<bool> {
    if !ring.params().is_feature_ext_arg() {
        warn_once(
            &UNSLICED_WAITS,
            "io_uring without IORING_FEAT_EXT_ARG (kernel before 5.11): waits for completions are \
             not time-sliced, so a request the kernel never completes is waited for",
        );
        return ring.submit_and_wait(want).map(|_| false);
    }
    let args = types::SubmitArgs::new().timespec(&WAIT_SLICE);
    match ring.submitter().submit_with_args(want, &args) {
        Ok(_) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::ETIME) => Ok(true),
        Err(e) => Err(e),
    }
}

/// A waiter's stretch without progress, by the clock (not by counting slices: a thread that
/// signals keep interrupting would never finish a slice). The waiter calls
/// [`StallClock::progress`] when a completion it waits for arrived and [`StallClock::idle`] after
/// any wait that brought none; `idle` answers true once the stretch reached the limit (and then
/// starts a new stretch), when the waiter should cancel what it has in flight. Reads the clock
/// only on a wait without progress.
struct StallClock {
    since: Option<Instant>,
    limit: Duration,
}

impl StallClock {
    /// A limit of `slices` wait slices ([`STALL_SLICES`] outside tests).
    fn new(slices: u32) -> StallClock {
        StallClock {
            since: None,
            limit: stall_limit(slices),
        }
    }

    fn progress(&mut self) {
        self.since = None;
    }

    fn idle(&mut self) -> bool {
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) >= self.limit {
            self.since = Some(now);
            true
        } else {
            false
        }
    }
}

/// `slices` wait slices as a duration.
fn stall_limit(slices: u32) -> Duration {
    Duration::from_millis(u64::from(slices) * u64::from(WAIT_SLICE_MS))
}

/// Queues an `IORING_OP_ASYNC_CANCEL` for each of `targets` (the `user_data` of operations in
/// flight), each completing with `user_data` `cancel`; returns how many were queued (fewer only
/// when the submission queue is full: the caller's next stall asks again). A waiter's next enter
/// submits them.
fn push_cancels(ring: &mut IoUring, targets: &[u64], cancel: u64) -> usize {
    let mut sq = ring.submission();
    let mut queued = 0;
    for &target in targets {
        let sqe = opcode::AsyncCancel::new(target).build().user_data(cancel);
        // SAFETY: a cancellation references no memory: its target is named by `user_data`.
        if unsafe { sq.push(&sqe) }.is_err() {
            break;
        }
        queued += 1;
    }
    queued
}

/// An `io_uring_enter` failure worth retrying: `EINTR`, `EAGAIN` or `EBUSY`.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)
    )
}

// ---------------------------------------------------------------------------------------------
// The commit state machine (pure: driven by CQE results, tested without a ring)
// ---------------------------------------------------------------------------------------------

/// What the ring loop must submit next for a [`Commit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Write `buf[start..start + len]` at `offset + start`; when `then_fsync`, link an
    /// `Fsync(DATASYNC)` behind it in the same submission.
    Write {
        start: usize,
        len: usize,
        then_fsync: bool,
    },
    /// An `Fsync(DATASYNC)` on its own (every earlier write has completed, so it covers them).
    Fsync,
    /// Nothing is in flight and nothing remains: [`Commit::into_result`] tells the outcome.
    Finished,
}

/// One `write_durable` call as a state machine over completion results. The ring loop asks
/// [`Commit::next`] what to submit (only when nothing is in flight), feeds every completion to
/// [`Commit::on_write`] / [`Commit::on_fsync`], and repeats until [`Step::Finished`]. Because
/// `next` is only called with nothing in flight, the call never finishes — not even on an error —
/// while an operation referencing the buffer is still with the kernel.
#[derive(Debug)]
struct Commit {
    len: usize,
    strategy: SyncStrategy,
    /// `buf[..written]` is written (for `Dsync`: written and durable).
    written: usize,
    /// An fdatasync ordered after the last write completed successfully.
    synced: bool,
    /// Length of the write awaiting its completion.
    write_in_flight: Option<usize>,
    fsync_in_flight: bool,
    /// The in-flight fsync was not submitted in the same `io_uring_enter` as its linked write, so
    /// the link was broken and its success proves nothing about the write.
    fsync_unordered: bool,
    /// Whether any fsync was submitted yet (to count resubmissions).
    fsync_attempted: bool,
    /// The first hard error; the commit stops submitting and finishes once nothing is in flight.
    error: Option<io::Error>,
    /// Retries since the last progress.
    stalled: u32,
    /// A stalled wait cancelled what was in flight ([`Commit::cancel_requested`]): once nothing
    /// is in flight, the rest of the commit is written and synced synchronously
    /// ([`Commit::finish_synchronously`]), and `-ECANCELED` completions are expected.
    cancelled: bool,
    short_writes: u64,
    retries: u64,
    fsync_resubmits: u64,
}

impl Commit {
    fn new(len: usize, strategy: SyncStrategy) -> Commit {
        Commit {
            len,
            strategy,
            written: 0,
            synced: false,
            write_in_flight: None,
            fsync_in_flight: false,
            fsync_unordered: false,
            fsync_attempted: false,
            error: None,
            stalled: 0,
            cancelled: false,
            short_writes: 0,
            retries: 0,
            fsync_resubmits: 0,
        }
    }

    /// Operations submitted (or queued for submission) whose completion has not been seen.
    fn in_flight(&self) -> u32 {
        u32::from(self.write_in_flight.is_some()) + u32::from(self.fsync_in_flight)
    }

    /// The next submission. Must only be called when nothing is in flight.
    fn next(&mut self) -> Step {
        assert_eq!(
            self.in_flight(),
            0,
            "Commit::next with operations in flight"
        );
        if self.error.is_some() {
            return Step::Finished;
        }
        let wants_fsync = self.strategy == SyncStrategy::WriteThenSync;
        if self.written < self.len {
            let len = (self.len - self.written).min(MAX_CHUNK);
            let then_fsync = wants_fsync && self.written + len == self.len;
            self.write_in_flight = Some(len);
            self.synced = false;
            if then_fsync {
                self.start_fsync();
            }
            return Step::Write {
                start: self.written,
                len,
                then_fsync,
            };
        }
        if wants_fsync && !self.synced {
            self.start_fsync();
            return Step::Fsync;
        }
        Step::Finished
    }

    fn start_fsync(&mut self) {
        if self.fsync_attempted {
            self.fsync_resubmits += 1;
        }
        self.fsync_attempted = true;
        self.fsync_in_flight = true;
        self.fsync_unordered = false;
    }

    /// The write and its linked fsync were split over two `io_uring_enter` calls (the kernel
    /// accepted only part of the queue): the chain is broken, so the fsync will not count.
    fn on_split_submission(&mut self) {
        if self.fsync_in_flight {
            self.fsync_unordered = true;
        }
    }

    /// The write's completion: bytes written or `-errno`.
    fn on_write(&mut self, res: i32) {
        let Some(len) = self.write_in_flight.take() else {
            log::error!("io_uring: write completion ({res}) with no write in flight; ignored");
            return;
        };
        if res < 0 {
            match -res {
                // Nothing of a cancelled write was written: the synchronous finish writes it.
                libc::ECANCELED if self.cancelled => {}
                // Cancelled by the kernel, not by a stalled wait: io-wq could not start a worker
                // to run it (a limit on threads: `RLIMIT_NPROC`, a cgroup's `pids.max`). It never
                // ran; it is finished synchronously, as after a stall, rather than failed (which
                // poisoned the database). Its linked fsync completes cancelled too.
                libc::ECANCELED => {
                    log::warn!(
                        "io_uring: the kernel cancelled a log write it could not run (a limit on \
                         threads?); finishing it with pwrite and fdatasync"
                    );
                    self.cancelled = true;
                }
                libc::EINTR | libc::EAGAIN => self.retry("write", res),
                errno => self.fail(io::Error::from_raw_os_error(errno)),
            }
            return;
        }
        let n = res as usize;
        if n == 0 {
            self.fail(io::Error::new(
                io::ErrorKind::WriteZero,
                "io_uring write completed having written zero bytes",
            ));
        } else if n > len {
            self.fail(io::Error::other(format!(
                "io_uring write reported {n} bytes written for a {len}-byte request"
            )));
        } else {
            self.written += n;
            self.stalled = 0;
            if n < len {
                self.short_writes += 1;
                log::debug!(
                    "io_uring: short write ({n} of {len} bytes); resubmitting the remainder"
                );
            }
        }
    }

    /// The fsync's completion: 0 or `-errno`.
    fn on_fsync(&mut self, res: i32) {
        if !self.fsync_in_flight {
            log::error!("io_uring: fsync completion ({res}) with no fsync in flight; ignored");
            return;
        }
        self.fsync_in_flight = false;
        match res {
            0 if self.fsync_unordered => {
                log::debug!("io_uring: fsync was submitted apart from its write; syncing again")
            }
            0 => {
                self.synced = true;
                self.stalled = 0;
            }
            // Cancelled by a stalled wait: the synchronous finish syncs.
            r if -r == libc::ECANCELED && self.cancelled => {}
            // The chain broke before the fsync ran (short or failed write): a new one follows.
            r if -r == libc::ECANCELED => self.stall("fsync cancelled"),
            r if -r == libc::EINTR || -r == libc::EAGAIN => self.retry("fsync", r),
            r if r < 0 => self.fail(io::Error::from_raw_os_error(-r)),
            r => self.fail(io::Error::other(format!(
                "io_uring fsync completed with unexpected result {r}"
            ))),
        }
    }

    /// The `user_data` of its operations in flight (its SQEs carry `payload`), to cancel them.
    fn in_flight_user_data(&self, payload: u64) -> impl Iterator<Item = u64> {
        [
            (self.write_in_flight.is_some(), Tag::Write),
            (self.fsync_in_flight, Tag::Fsync),
        ]
        .into_iter()
        .filter(|&(in_flight, _)| in_flight)
        .map(move |(_, tag)| user_data(tag, payload))
    }

    /// A stalled wait is cancelling what is in flight: completions with `-ECANCELED` are
    /// expected from now on, and the commit ends with [`Commit::finish_synchronously`].
    fn cancel_requested(&mut self) {
        self.cancelled = true;
    }

    /// After a cancel, with nothing in flight: writes what the ring did not (`buf[written..]`,
    /// `buf` being the commit's whole buffer, at `offset`) with `pwrite(2)` and syncs it with
    /// `fdatasync(2)` — also when everything was written, since a cancelled or unfinished sync
    /// proves nothing. A hard error seen before stays the result.
    fn finish_synchronously(&mut self, file: &dyn VFile, buf: &[u8], offset: u64) {
        assert_eq!(
            self.in_flight(),
            0,
            "finish_synchronously with operations in flight"
        );
        debug_assert!(self.cancelled);
        debug_assert_eq!(buf.len(), self.len);
        if self.error.is_some() {
            return;
        }
        let rest = &buf[self.written..];
        match file
            .write_all_at(rest, offset + self.written as u64)
            .and_then(|()| file.sync_data())
        {
            Ok(()) => {
                self.written = self.len;
                self.synced = true;
            }
            Err(e) => self.fail(e),
        }
    }

    fn retry(&mut self, op: &str, res: i32) {
        self.retries += 1;
        log::debug!(
            "io_uring: {op} completed with {}; resubmitting",
            io::Error::from_raw_os_error(-res)
        );
        self.stall(op);
    }

    fn stall(&mut self, what: &str) {
        self.stalled += 1;
        if self.stalled > MAX_STALLED_RETRIES {
            self.fail(io::Error::other(format!(
                "io_uring commit made no progress after {MAX_STALLED_RETRIES} retries (last: {what})"
            )));
        }
    }

    fn fail(&mut self, e: io::Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn into_result(self) -> io::Result<()> {
        match self.error {
            Some(e) => Err(e),
            None => {
                debug_assert_eq!(self.written, self.len);
                Ok(())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The waker
// ---------------------------------------------------------------------------------------------

/// An `eventfd`, shared by the driver (which polls it) and its wakers (which write to it). It is
/// closed when the last holder drops it, so a waker never writes to a closed or reused descriptor.
#[derive(Debug)]
struct EventFd(OwnedFd);

impl EventFd {
    fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Adds 1 to the counter. `EAGAIN` (counter saturated) still leaves it readable: ignored.
    fn signal(&self) {
        let one: u64 = 1;
        loop {
            // SAFETY: writes 8 bytes from `one`, a live u64, to a descriptor `self` keeps open.
            let r = unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
            if r == 8 {
                return;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return,
                _ => {
                    log::debug!("eventfd write failed: {e}");
                    return;
                }
            }
        }
    }

    /// Resets the counter to zero (nothing to read is fine).
    fn drain(&self) {
        let mut value: u64 = 0;
        loop {
            // SAFETY: reads at most 8 bytes into `value`, a live u64, from a descriptor `self`
            // keeps open.
            let r = unsafe { libc::read(self.fd(), (&mut value as *mut u64).cast(), 8) };
            if r >= 0 {
                return;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return,
                _ => {
                    log::debug!("eventfd read failed: {e}");
                    return;
                }
            }
        }
    }
}

/// The [`Waker`] of a [`UringDriver`]: writes to its eventfd.
struct EventFdWaker(Arc<EventFd>);

impl Waker for EventFdWaker {
    fn wake(&self) {
        self.0.signal();
    }
}

// ---------------------------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------------------------

/// Counters of what a [`UringDriver`] had to do beyond the plain path, for diagnostics (a
/// retry storm that would otherwise go unnoticed shows up here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UringStats {
    /// `write_durable` calls that went through the ring.
    pub commits: u64,
    /// `submit` calls that went through the ring (a file without a descriptor is written
    /// synchronously and not counted).
    pub submissions: u64,
    /// Remainders resubmitted after a short write.
    pub short_writes: u64,
    /// Writes or fsyncs resubmitted after completing with `-EAGAIN` or `-EINTR`.
    pub retries: u64,
    /// fdatasyncs submitted again on their own (after a cancelled, retried or unordered one).
    pub fsync_resubmits: u64,
    /// `io_uring_enter` calls that failed with `EINTR`, `EAGAIN` or `EBUSY` and were retried.
    pub enter_retries: u64,
    /// `wait` (or blocking `complete`) calls ended by the waker.
    pub wakeups: u64,
    /// `wait` (or blocking `complete`) calls ended by their timer.
    pub timer_expiries: u64,
    /// `write_durable` calls and submissions whose write or fsync had not completed after a
    /// stall of 5 s: what was in flight was cancelled and the write finished with `pwrite(2)` and
    /// `fdatasync(2)` (each also logged as a warning).
    pub stall_cancels: u64,
}

/// The waiting side's bookkeeping: the armed poll and timer and what their completions said.
#[derive(Debug, Default)]
struct WaitState {
    /// A `PollAdd` on the eventfd is in flight.
    poll_armed: bool,
    /// The poll fired and the wake has not yet been handed to a `wait`.
    woken: bool,
    /// The timer of generation `timer_gen` is in flight and not being removed.
    timer_armed: bool,
    /// The timer of generation `timer_gen` expired during the current wait.
    timer_fired: bool,
    timer_gen: u64,
    /// Waiting-side SQEs (poll, timers, removals, cancellations) whose completion is not seen.
    in_flight: u32,
}

impl WaitState {
    fn on_completion(&mut self, tag: Tag, payload: u64, res: i32) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match tag {
            Tag::Poll => {
                self.poll_armed = false;
                if res < 0 && res != -libc::ECANCELED {
                    log::debug!(
                        "io_uring: eventfd poll completed with {}",
                        io::Error::from_raw_os_error(-res)
                    );
                }
                // Treated as a wake in every case: a spurious return is allowed, a lost wake not.
                self.woken = true;
            }
            Tag::Timer if payload == self.timer_gen && self.timer_armed => {
                self.timer_armed = false;
                self.timer_fired = true;
                if res != -libc::ETIME {
                    log::debug!("io_uring: timer completed with {res} instead of -ETIME");
                }
            }
            // A stale timer (removed, or from an earlier wait) or a removal/cancellation result
            // (ENOENT/EALREADY when the target had already completed are normal).
            Tag::Timer | Tag::TimerRemove | Tag::Cancel => {}
            Tag::Write | Tag::Fsync => unreachable!("commit completions are not waiter ones"),
        }
    }
}

/// A [`Submission`] in flight: one slot of the driver's in-flight table. It owns everything the
/// kernel may touch for its SQEs — the buffer and the file whose descriptor they name — and is
/// only emptied once its [`Commit`] has nothing in flight (every CQE of its SQEs was reaped), or
/// leaked when the ring can no longer be waited on.
struct Pipelined {
    token: u64,
    /// Keeps `fd` open while SQEs naming it are in flight; written through directly when a
    /// stalled step was cancelled ([`Commit::finish_synchronously`]).
    file: Arc<dyn VFile>,
    fd: RawFd,
    offset: u64,
    /// Read by the kernel while a write is in flight: never resized, moved out or dropped before
    /// `commit.in_flight()` is zero.
    buf: AlignedBuf,
    commit: Commit,
    /// When its current step was submitted, or its last completion was seen, or it was last
    /// cancelled: a step with nothing of that for [`STALL_SLICES`] slices is cancelled
    /// ([`UringDriver::cancel_stalled_submissions`]).
    step_at: Instant,
    /// A completion of it was reaped since the last stall check (which then moves `step_at` to
    /// its own clock reading: no clock read per completion).
    progressed: bool,
}

/// The io_uring commit path and waiter of one log thread.
///
/// Writes either go one at a time through [`LogDriver::write_durable`], or up to
/// [`UringDriver::MAX_IN_FLIGHT`] at once through [`LogDriver::submit`] and
/// [`LogDriver::complete`] (each driven by its own commit state machine, its SQEs named by its
/// slot in `user_data`); not both at once: `write_durable` fails while submissions are in flight.
///
/// Create it on the log thread (or move it there before its first use): the ring is
/// `SINGLE_ISSUER` where the kernel supports it, and the thread that first calls
/// [`LogDriver::write_durable`] or [`LogDriver::wait`] becomes its only issuer; a later call from
/// another thread fails with an error rather than reaching the kernel. Its [`Waker`] may be used
/// from any thread and may outlive the driver.
pub struct UringDriver {
    // Field order matters for Drop: the ring is closed before the last reference to the eventfd
    // it polls goes away.
    ring: IoUring,
    mode: RingMode,
    /// The single issuer, once the (initially disabled) ring was enabled by its first user.
    owner: Option<ThreadId>,
    /// Set after an `io_uring_enter` failure that may have left SQEs queued: the ring is never
    /// entered again, so they are never consumed.
    poisoned: Option<String>,
    wait: WaitState,
    /// The timer's duration. The kernel copies it while consuming the `Timeout` SQE (during the
    /// `io_uring_enter` that submits it); boxed so that its address is stable even if the driver
    /// moves while such an SQE is queued.
    timespec: Box<types::Timespec>,
    stats: UringStats,
    /// Submissions in flight, by slot (the slot is the `user_data` payload of their SQEs, see
    /// [`slot_payload`]). `Drop` reaps them before the ring closes, or leaks them.
    slots: [Option<Pipelined>; MAX_IN_FLIGHT],
    /// Finished submissions not yet handed to `complete`'s caller.
    finished: VecDeque<Completion>,
    /// [`STALL_SLICES`] (fewer in a test): slices a `write_durable` waits without a completion
    /// before it cancels what it has in flight.
    stall_slices: u32,
    eventfd: Arc<EventFd>,
}

impl fmt::Debug for UringDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UringDriver")
            .field("mode", &self.mode)
            .field("owner", &self.owner)
            .field("poisoned", &self.poisoned)
            .field("wait", &self.wait)
            .field("stats", &self.stats)
            .field(
                "submissions_in_flight",
                &self.slots.iter().flatten().count(),
            )
            .field("finished", &self.finished.len())
            .finish_non_exhaustive()
    }
}

impl UringDriver {
    /// Most submitted writes in flight at once: what [`LogDriver::max_in_flight`] returns.
    pub const MAX_IN_FLIGHT: usize = MAX_IN_FLIGHT;

    /// Creates a ring (best setup flags the kernel accepts) and the eventfd its waker writes to.
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    pub fn new() -> io::Result<UringDriver> {
        UringDriver::create().map_err(|(_, e)| e)
    }

    /// [`UringDriver::new`], naming the call that failed.
    fn create() -> Result<UringDriver, (&'static str, io::Error)> {
        let (ring, mode) = build_ring(RING_ENTRIES, true).map_err(|e| ("io_uring_setup", e))?;
        if !ring.params().is_feature_nodrop() {
            return Err((
                "io_uring_setup",
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "io_uring lacks IORING_FEAT_NODROP",
                ),
            ));
        }
        let eventfd = EventFd::new().map_err(|e| ("eventfd", e))?;
        log::debug!("io_uring log driver created ({})", mode.describe());
        Ok(UringDriver {
            ring,
            mode,
            owner: None,
            poisoned: None,
            wait: WaitState::default(),
            timespec: Box::new(types::Timespec::new()),
            stats: UringStats::default(),
            slots: Default::default(),
            finished: VecDeque::new(),
            stall_slices: STALL_SLICES,
            eventfd: Arc::new(eventfd),
        })
    }

    /// Counters of retries, resubmissions and wake-ups so far.
    pub fn stats(&self) -> UringStats {
        self.stats
    }

    /// The setup flags the kernel accepted for this driver's ring, e.g.
    /// `"single_issuer, defer_taskrun"`.
    pub fn setup_flags(&self) -> &'static str {
        self.mode.describe()
    }

    /// Checks that the ring may be entered from this thread, enabling it on first use.
    fn ready(&mut self) -> io::Result<()> {
        if let Some(why) = &self.poisoned {
            return Err(io::Error::other(format!(
                "io_uring log driver unusable after an earlier failure: {why}"
            )));
        }
        if self.mode != RingMode::SingleIssuer {
            return Ok(());
        }
        let me = thread::current().id();
        match self.owner {
            Some(owner) if owner == me => Ok(()),
            Some(_) => Err(io::Error::other(
                "io_uring log driver used from a thread other than the one that first used it \
                 (its ring is SINGLE_ISSUER)",
            )),
            None => {
                self.ring.submitter().register_enable_rings()?;
                self.owner = Some(me);
                Ok(())
            }
        }
    }

    /// One `io_uring_enter`: submits what is queued and waits until `want` completions are in the
    /// completion queue. Transient failures ([`is_transient`]) are counted and return `Ok`: every
    /// caller reaps and loops until its own condition holds.
    fn enter(&mut self, want: usize) -> io::Result<()> {
        match self.ring.submit_and_wait(want) {
            Ok(_) => Ok(()),
            Err(e) if is_transient(&e) => {
                self.stats.enter_retries += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Cancels the steps of submissions in flight for [`STALL_SLICES`] slices or more (logged as a
    /// warning, counted in [`UringStats::stall_cancels`]); each such submission is then finished
    /// with plain system calls once its cancelled operations completed ([`UringDriver::advance`]
    /// → [`Commit::finish_synchronously`]). Cancelled again after each further such stretch.
    fn cancel_stalled_submissions(&mut self) {
        if self.pipelined_in_flight() == 0 {
            return;
        }
        let limit = stall_limit(self.stall_slices);
        let now = Instant::now();
        let mut targets = Vec::new();
        for (slot, p) in self.slots.iter_mut().enumerate() {
            let Some(p) = p else { continue };
            if std::mem::take(&mut p.progressed) {
                p.step_at = now;
            }
            if p.commit.in_flight() == 0 || now.duration_since(p.step_at) < limit {
                continue;
            }
            if !p.commit.cancelled {
                self.stats.stall_cancels += 1;
            }
            p.commit.cancel_requested();
            p.step_at = now;
            targets.extend(p.commit.in_flight_user_data(slot_payload(slot)));
        }
        if targets.is_empty() {
            return;
        }
        log::warn!(
            "io_uring log driver: no completion in {} ms for {} operation(s) of submitted \
             writes in flight; cancelling them and finishing those writes with pwrite and \
             fdatasync",
            limit.as_millis(),
            targets.len()
        );
        self.push_cancels(&targets);
    }

    /// [`push_cancels`] on the driver's ring, counted as waiting-side operations in flight (so
    /// `Drop` reaps their completions).
    fn push_cancels(&mut self, targets: &[u64]) {
        let queued = push_cancels(&mut self.ring, targets, user_data(Tag::Cancel, 0));
        self.wait.in_flight += queued as u32;
    }

    /// Asks the kernel to cancel the write and fsync of `c` in flight (they then complete with
    /// `-ECANCELED`, or as they would have if already running) and marks `c` to be finished
    /// synchronously. The cancellations are submitted by the caller's next enter.
    fn cancel_commit(&mut self, c: &mut Commit) {
        let targets: Vec<u64> = c.in_flight_user_data(SYNC_COMMIT).collect();
        log::warn!(
            "io_uring log driver: no completion in {} ms for a commit's {} operation(s) in \
             flight; cancelling them and finishing the commit with pwrite and fdatasync",
            stall_limit(self.stall_slices).as_millis(),
            targets.len()
        );
        if !c.cancelled {
            self.stats.stall_cancels += 1;
        }
        c.cancel_requested();
        self.push_cancels(&targets);
    }

    /// Takes every completion off the queue and hands it to its owner: `commit` (the running
    /// `write_durable`, payload [`SYNC_COMMIT`]), the submission in the slot its payload names,
    /// or the waiting side. Only records results: submissions are advanced by
    /// [`UringDriver::advance`].
    fn reap(&mut self, mut commit: Option<&mut Commit>) {
        for cqe in self.ring.completion() {
            let (res, ud) = (cqe.result(), cqe.user_data());
            match decode_user_data(ud) {
                Some((tag @ (Tag::Write | Tag::Fsync), payload)) => {
                    let target = match payload_slot(payload) {
                        None => commit.as_deref_mut(),
                        Some(slot) => self.slots.get_mut(slot).and_then(Option::as_mut).map(|p| {
                            // Progress: a stall is measured from the last completion.
                            p.progressed = true;
                            &mut p.commit
                        }),
                    };
                    match (target, tag) {
                        (Some(c), Tag::Write) => c.on_write(res),
                        (Some(c), _) => c.on_fsync(res),
                        (None, _) => log::error!(
                            "io_uring: stray {tag:?} completion ({res}, payload {payload}); ignored"
                        ),
                    }
                }
                Some((tag, payload)) => self.wait.on_completion(tag, payload, res),
                None => log::error!("io_uring: completion with unknown user_data {ud:#x}"),
            }
        }
    }

    /// Operations of submissions (not of `write_durable`) queued or with the kernel.
    fn pipelined_in_flight(&self) -> u32 {
        self.slots
            .iter()
            .flatten()
            .map(|p| p.commit.in_flight())
            .sum()
    }

    /// Submits what is queued until the submission queue has `n` free slots.
    fn make_room(&mut self, n: usize, mut commit: Option<&mut Commit>) -> io::Result<()> {
        loop {
            let sq = self.ring.submission();
            if sq.capacity() - sq.len() >= n {
                return Ok(());
            }
            drop(sq);
            self.enter(0)?;
            self.reap(commit.as_deref_mut());
        }
    }

    /// Submits everything queued, without waiting for completions.
    fn submit_all(&mut self) -> io::Result<()> {
        while !self.ring.submission().is_empty() {
            self.enter(0)?;
            self.reap(None);
        }
        Ok(())
    }

    /// An `io_uring_enter` failed with something other than a transient error. SQEs still queued
    /// are safe only if the ring is never entered again (they are then never consumed): poison
    /// it. Operations the kernel already has cannot be waited for any more; returning would let
    /// the kernel touch memory the caller is about to free, so that case aborts the process.
    /// (`commit_in_flight` counts the operations of `write_durable`'s commit, whose buffer is the
    /// caller's; `consumed` says they are all with the kernel whatever is queued. Submissions'
    /// buffers are the driver's own: they stay in their slots, and `Drop`
    /// leaks them since the poisoned ring cannot be waited on.)
    fn enter_failed(&mut self, e: io::Error, commit_in_flight: u32, consumed: bool) -> io::Error {
        // SQEs still queued may be the commit's own (never consumed, so never to be), unless
        // `consumed`: the caller knows its operations are with the kernel (what is queued is
        // cancellations behind them). Counting too many as with the kernel only aborts.
        let queued = if consumed {
            0
        } else {
            self.ring.submission().len() as u32
        };
        let with_kernel = commit_in_flight.saturating_sub(queued);
        if with_kernel > 0 {
            log::error!(
                "io_uring_enter failed ({e}) while {with_kernel} operation(s) using the caller's \
                 buffer are in flight; aborting rather than returning while the kernel may still \
                 access it"
            );
            std::process::abort();
        }
        log::error!(
            "io_uring_enter failed ({e}); this log driver refuses further use ({} operation(s) \
             of submissions in flight keep their buffers until the driver is dropped, which \
             leaks them)",
            self.pipelined_in_flight()
        );
        self.poisoned = Some(format!("io_uring_enter: {e}"));
        e
    }

    /// Moves every submission whose [`Commit`] has nothing in flight on: submits its next step,
    /// or, once finished, empties its slot into `finished`. Loops until every occupied slot has
    /// an operation in flight, so a caller may then block for a completion without stalling one
    /// (submitting a step reaps, which can leave another slot waiting to be moved on).
    fn advance(&mut self) -> io::Result<()> {
        loop {
            let mut progressed = false;
            for slot in 0..MAX_IN_FLIGHT {
                if matches!(&self.slots[slot], Some(p) if p.commit.in_flight() == 0) {
                    self.start_step(slot)?;
                    progressed = true;
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Submits the next step of the submission in `slot` (which has nothing in flight), or
    /// finishes it. Queues the SQE(s) and enters the ring until the kernel consumed them, without
    /// waiting for their completion.
    fn start_step(&mut self, slot: usize) -> io::Result<()> {
        // The step's SQEs go into an empty queue, so that the number left after an enter tells
        // whether the kernel split a write from its linked fsync (as in `commit`).
        if let Err(e) = self.submit_all() {
            return Err(self.enter_failed(e, 0, false));
        }
        let p = self.slots[slot]
            .as_mut()
            .expect("start_step on an occupied slot");
        if p.commit.cancelled {
            // A stalled step was cancelled and nothing is in flight any more: the rest is
            // written and synced here, with plain system calls.
            p.commit
                .finish_synchronously(&*p.file, p.buf.as_slice(), p.offset);
            self.finish_slot(slot);
            return Ok(());
        }
        p.step_at = Instant::now();
        let fsync = fsync_entry(p.fd, slot_payload(slot));
        let mut sq = self.ring.submission();
        let queued = match p.commit.next() {
            Step::Finished => {
                drop(sq);
                self.finish_slot(slot);
                return Ok(());
            }
            Step::Write {
                start,
                len,
                then_fsync,
            } => {
                let chunk = &p.buf.as_slice()[start..start + len];
                let write = write_entry(
                    p.fd,
                    chunk,
                    p.offset + start as u64,
                    p.commit.strategy,
                    then_fsync,
                    slot_payload(slot),
                );
                // SAFETY: the write reads `chunk`, part of the heap allocation of `p.buf`, which
                // `self.slots[slot]` owns: moving the `AlignedBuf` or the driver does not move
                // that allocation, and nothing resizes, takes or drops the buffer while
                // `p.commit.in_flight()` is non-zero — which it is from `next()` above until
                // this SQE's completion (and its linked fsync's) has been reaped. The slot is
                // emptied (`finish_slot`, buffer handed back in a `Completion`) only after
                // `Commit::next` said `Finished`, which it says only with nothing in flight;
                // `Drop` reaps every submission in flight before the ring closes, or leaks
                // (`mem::forget`s) the slot when it cannot (ring poisoned by `enter_failed`, or
                // a SINGLE_ISSUER ring dropped off its thread). `p.fd` is the descriptor of
                // `p.file`, an `Arc` held in the same slot for as long, so it stays open. The
                // queue is empty (`submit_all` above) and has RING_ENTRIES >= 2 slots.
                unsafe { sq.push(&write) }.expect("the submission queue was just emptied");
                if then_fsync {
                    // SAFETY: an fsync references no memory; `p.fd` stays open as above.
                    unsafe { sq.push(&fsync) }.expect("the submission queue was just emptied");
                }
                1 + usize::from(then_fsync)
            }
            Step::Fsync => {
                // SAFETY: an fsync references no memory; `p.fd` stays open while the slot holds
                // `p.file`, i.e. until the fsync's completion is reaped (as for the write).
                unsafe { sq.push(&fsync) }.expect("the submission queue was just emptied");
                1
            }
        };
        drop(sq);
        // Start the kernel on it now; completions are reaped later (`complete`), or meanwhile
        // by any other reap.
        loop {
            let before = self.ring.submission().len();
            if before == 0 {
                return Ok(());
            }
            if let Err(e) = self.enter(0) {
                return Err(self.enter_failed(e, 0, false));
            }
            let left = self.ring.submission().len();
            if left > 0 && left < queued {
                if let Some(p) = self.slots[slot].as_mut() {
                    p.commit.on_split_submission();
                }
            }
            self.reap(None);
        }
    }

    /// Empties `slot`, whose commit is finished (nothing in flight), into `finished`.
    fn finish_slot(&mut self, slot: usize) {
        let p = self.slots[slot]
            .take()
            .expect("finish_slot on an occupied slot");
        debug_assert_eq!(p.commit.in_flight(), 0);
        self.stats.short_writes += p.commit.short_writes;
        self.stats.retries += p.commit.retries;
        self.stats.fsync_resubmits += p.commit.fsync_resubmits;
        self.finished.push_back(Completion {
            token: p.token,
            buf: p.buf,
            result: p.commit.into_result(),
        });
    }

    /// The waiting side of `wait` and `complete`: blocks until woken, the timeout elapsed or —
    /// with `pipeline` — a submission finished, keeping the `PollAdd` on the eventfd armed and
    /// arming a `Timeout` SQE as a timer. The timer is removed again unless it fired, so none
    /// piles up in the kernel across calls.
    fn block(&mut self, timeout: Option<Duration>, pipeline: bool) -> io::Result<()> {
        let done = |d: &UringDriver| d.wait.woken || (pipeline && !d.finished.is_empty());
        if !done(self) {
            if let Err(e) = self.make_room(3, None) {
                return Err(self.enter_failed(e, 0, false));
            }
            let mut sq = self.ring.submission();
            if !self.wait.poll_armed {
                let poll = opcode::PollAdd::new(types::Fd(self.eventfd.fd()), libc::POLLIN as u32)
                    .build()
                    .user_data(user_data(Tag::Poll, 0));
                // SAFETY: a poll references no memory. The eventfd stays open while the ring
                // exists: `self.eventfd` is dropped after `self.ring` (field order), and the
                // kernel holds its own reference to the file while the poll is armed.
                unsafe { sq.push(&poll) }.expect("make_room left three free slots");
                self.wait.poll_armed = true;
                self.wait.in_flight += 1;
            }
            if let Some(timeout) = timeout {
                self.wait.timer_gen += 1;
                *self.timespec = types::Timespec::from(timeout.min(MAX_TIMER));
                let timer = opcode::Timeout::new(&*self.timespec)
                    .count(0)
                    .build()
                    .user_data(user_data(Tag::Timer, self.wait.timer_gen));
                // SAFETY: the kernel reads `*self.timespec` only while consuming this SQE (the
                // timeout's prep copies it), which happens in the `io_uring_enter` below, within
                // this call. The timespec is boxed in `self`, so it is alive and at the same
                // address even if that submission is delayed past this call (the driver moved
                // or an enter was retried); it is overwritten only by the next wait, which
                // first submits everything queued (`make_room`), and never freed before the
                // ring (or, once poisoned, the ring is never entered again).
                unsafe { sq.push(&timer) }.expect("make_room left three free slots");
                self.wait.timer_armed = true;
                self.wait.in_flight += 1;
            }
            drop(sq);
            loop {
                if pipeline {
                    // Before blocking, every submission must have an operation in flight (the
                    // reaps above and below may have completed a step): otherwise the enter
                    // could wait for a completion that never comes.
                    self.advance()?;
                }
                if done(self) || self.wait.timer_fired {
                    break;
                }
                if pipeline && self.pipelined_in_flight() > 0 {
                    // Sliced, so that a stalled submission is noticed without a wake or timer.
                    match enter_sliced(&self.ring, 1) {
                        Ok(_) => {}
                        Err(e) if is_transient(&e) => self.stats.enter_retries += 1,
                        Err(e) => return Err(self.enter_failed(e, 0, false)),
                    }
                    self.reap(None);
                    self.cancel_stalled_submissions();
                    continue;
                }
                if let Err(e) = self.enter(1) {
                    return Err(self.enter_failed(e, 0, false));
                }
                self.reap(None);
            }
        }
        if std::mem::take(&mut self.wait.timer_fired) && !self.wait.woken {
            self.stats.timer_expiries += 1;
        }
        if std::mem::take(&mut self.wait.woken) {
            self.stats.wakeups += 1;
            // Reset the counter before returning: a wake from now on re-arms the next poll, and
            // the caller looks for work after this returns, so no wake is lost.
            self.eventfd.drain();
        }
        if std::mem::take(&mut self.wait.timer_armed) {
            let remove = opcode::TimeoutRemove::new(user_data(Tag::Timer, self.wait.timer_gen))
                .build()
                .user_data(user_data(Tag::TimerRemove, 0));
            if let Err(e) = self.make_room(1, None) {
                return Err(self.enter_failed(e, 0, false));
            }
            // SAFETY: a timeout removal references no memory (the target is named by its
            // user_data).
            unsafe { self.ring.submission().push(&remove) }.expect("make_room left a free slot");
            self.wait.in_flight += 1;
            if let Err(e) = self.submit_all() {
                return Err(self.enter_failed(e, 0, false));
            }
        }
        Ok(())
    }

    /// Forgets (never frees) every submission that still has an operation queued or with the
    /// kernel: called when the ring can no longer be waited on. Their buffers and files leak.
    fn leak_in_flight(&mut self, why: &str) {
        let mut leaked = 0;
        for slot in &mut self.slots {
            if matches!(slot, Some(p) if p.commit.in_flight() > 0) {
                std::mem::forget(slot.take());
                leaked += 1;
            }
        }
        if leaked > 0 {
            log::warn!(
                "io_uring log driver dropped with {leaked} write(s) in flight that cannot be \
                 waited for ({why}); leaking their buffers and files rather than freeing memory \
                 the kernel may still access"
            );
        }
    }

    /// The ring path of `write_durable` (`fd` is `file`'s descriptor).
    ///
    /// Its waits are sliced ([`enter_sliced`]): after [`STALL_SLICES`] slices' time (5 s, by the
    /// clock: [`StallClock`]) in which neither the write nor the fsync in flight completed, both
    /// are cancelled (logged as a warning, counted in [`UringStats::stall_cancels`]) and, once
    /// their completions are in, the commit is finished with `pwrite(2)` and `fdatasync(2)`
    /// ([`Commit::finish_synchronously`]): a request stranded in the kernel's io-wq (as one of
    /// the checkpoint writer's was) then costs 5 s instead of a log thread. An operation the
    /// kernel is really executing is not cancelled by it and is waited for.
    fn commit(
        &mut self,
        file: &dyn VFile,
        fd: RawFd,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        self.ready()?;
        self.stats.commits += 1;
        let fsync = fsync_entry(fd, SYNC_COMMIT);
        let mut c = Commit::new(buf.len(), strategy);
        loop {
            if let Err(e) = self.make_room(2, Some(&mut c)) {
                return Err(self.enter_failed(e, c.in_flight(), false));
            }
            if c.cancelled {
                // Nothing is in flight (`next` below is only reached with nothing in flight).
                c.finish_synchronously(file, buf, offset);
                break;
            }
            let queued = match c.next() {
                Step::Finished => break,
                Step::Write {
                    start,
                    len,
                    then_fsync,
                } => {
                    let chunk = &buf[start..start + len];
                    let write = write_entry(
                        fd,
                        chunk,
                        offset + start as u64,
                        strategy,
                        then_fsync,
                        SYNC_COMMIT,
                    );
                    let mut sq = self.ring.submission();
                    // SAFETY: the write reads `chunk`, part of `buf`, which is borrowed for this
                    // whole call and so stays alive and unmoved until we return; `fd` belongs to
                    // `file`, likewise borrowed. We return only after `c.in_flight()` is zero —
                    // i.e. after this SQE's completion was reaped — on the success and the error
                    // path alike (`Commit::next` is called only with nothing in flight), or, if
                    // the ring breaks, after poisoning it so that a queued SQE is never consumed
                    // (`enter_failed`). There is room: `make_room(2)` above.
                    unsafe { sq.push(&write) }.expect("make_room left two free slots");
                    if then_fsync {
                        // SAFETY: an fsync references no memory; `fd` stays open as above.
                        unsafe { sq.push(&fsync) }.expect("make_room left two free slots");
                    }
                    1 + usize::from(then_fsync)
                }
                Step::Fsync => {
                    // SAFETY: an fsync references no memory; `fd` stays open for the call, which
                    // drains it before returning as above.
                    unsafe { self.ring.submission().push(&fsync) }
                        .expect("make_room left two free slots");
                    1
                }
            };
            // Submit and wait until every operation of this step has completed; completions of
            // the waiting side (poll, timers) that arrive meanwhile are recorded for `wait`.
            let mut stall = StallClock::new(self.stall_slices);
            while c.in_flight() > 0 {
                let waiting = c.in_flight();
                match enter_sliced(&self.ring, waiting as usize) {
                    Ok(_) => {}
                    Err(e) if is_transient(&e) => self.stats.enter_retries += 1,
                    // After a cancel every operation of the commit is with the kernel (the
                    // cancels queued behind them are not).
                    Err(e) => return Err(self.enter_failed(e, c.in_flight(), c.cancelled)),
                }
                let left = self.ring.submission().len();
                if left > 0 && left < queued && !c.cancelled {
                    c.on_split_submission();
                }
                self.reap(Some(&mut c));
                if c.in_flight() < waiting {
                    stall.progress();
                } else if stall.idle() {
                    self.cancel_commit(&mut c);
                }
            }
        }
        self.stats.short_writes += c.short_writes;
        self.stats.retries += c.retries;
        self.stats.fsync_resubmits += c.fsync_resubmits;
        c.into_result()
    }
}

impl LogDriver for UringDriver {
    /// Fails (without writing) while submissions are in flight: a driver is used either one
    /// `write_durable` at a time or pipelined, not both at once.
    fn write_durable(
        &mut self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        let in_flight = self.slots.iter().flatten().count();
        if in_flight > 0 {
            return Err(io::Error::other(format!(
                "io_uring log driver: write_durable called with {in_flight} submitted write(s) \
                 in flight (complete them first)"
            )));
        }
        match file.raw_fd() {
            Some(fd) => self.commit(file, fd, offset, buf, strategy),
            None => {
                file.write_all_at(buf, offset)?;
                file.sync_data()
            }
        }
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.ready()?;
        self.block(timeout, false)
    }

    fn waker(&self) -> Arc<dyn Waker> {
        Arc::new(EventFdWaker(self.eventfd.clone()))
    }

    /// [`UringDriver::MAX_IN_FLIGHT`].
    fn max_in_flight(&self) -> usize {
        MAX_IN_FLIGHT
    }

    /// Queues the write (and its linked fsync) and enters the ring so the kernel starts it, then
    /// returns. A file without a descriptor is written (and synced) synchronously here, its
    /// completion handed out by the next `complete`. Fails with `InvalidInput` if
    /// [`UringDriver::MAX_IN_FLIGHT`] submissions are already in flight. If the ring fails after the SQEs
    /// were queued, the submission stays with the driver (the kernel may have it), which then
    /// refuses further use and leaks it when dropped.
    fn submit(&mut self, submission: Submission) -> io::Result<()> {
        self.ready()?;
        let Submission {
            file,
            offset,
            buf,
            strategy,
            token,
        } = submission;
        let Some(fd) = file.raw_fd() else {
            let result = file
                .write_all_at(buf.as_slice(), offset)
                .and_then(|()| file.sync_data());
            self.finished.push_back(Completion { token, buf, result });
            return Ok(());
        };
        let Some(slot) = self.slots.iter().position(Option::is_none) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "io_uring log driver: submit with {MAX_IN_FLIGHT} writes already in flight"
                ),
            ));
        };
        // Anything still queued goes first, so that a failure here leaves no SQE of this
        // submission behind and it is simply dropped.
        if let Err(e) = self.submit_all() {
            return Err(self.enter_failed(e, 0, false));
        }
        self.stats.submissions += 1;
        let commit = Commit::new(buf.len(), strategy);
        self.slots[slot] = Some(Pipelined {
            token,
            file,
            fd,
            offset,
            buf,
            commit,
            step_at: Instant::now(),
            progressed: false,
        });
        self.start_step(slot)
    }

    /// Returns at once with the submissions already known to be finished, if any; otherwise
    /// blocks (as `wait` does, with the same poll and timer) until one finishes, a wake arrives
    /// or `timeout` elapses, moving submissions on (short writes, retries) meanwhile.
    fn complete(
        &mut self,
        done: &mut Vec<Completion>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.ready()?;
        self.reap(None);
        self.cancel_stalled_submissions();
        self.advance()?;
        if self.finished.is_empty() {
            self.block(timeout, true)?;
        }
        done.extend(self.finished.drain(..));
        Ok(())
    }
}

impl Drop for UringDriver {
    /// Cancels the armed poll and timer and reaps every outstanding completion — including those
    /// of submitted writes, whose buffers are freed only then — so the ring is idle when it is
    /// closed. (The poll and timer reference no memory of ours — the kernel copied the timespec
    /// at submission and holds its own reference to the eventfd — so when the ring cannot be
    /// entered from here, closing it with them pending is still sound; submitted writes still in
    /// flight are then leaked instead, see `UringDriver::leak_in_flight`.)
    fn drop(&mut self) {
        if self.wait.in_flight == 0 && self.pipelined_in_flight() == 0 {
            return;
        }
        if let Some(why) = self.poisoned.clone() {
            self.leak_in_flight(&format!("ring unusable: {why}"));
            return;
        }
        if self.mode == RingMode::SingleIssuer && self.owner != Some(thread::current().id()) {
            log::debug!("io_uring log driver dropped off its thread; closing the ring with its poll/timer pending");
            self.leak_in_flight("dropped off the thread that owns its SINGLE_ISSUER ring");
            return;
        }
        let mut cancels = Vec::with_capacity(2);
        if self.wait.poll_armed {
            cancels.push(
                opcode::AsyncCancel::new(user_data(Tag::Poll, 0))
                    .build()
                    .user_data(user_data(Tag::Cancel, 0)),
            );
        }
        if self.wait.timer_armed {
            cancels.push(
                opcode::TimeoutRemove::new(user_data(Tag::Timer, self.wait.timer_gen))
                    .build()
                    .user_data(user_data(Tag::TimerRemove, 0)),
            );
            self.wait.timer_armed = false;
        }
        if let Err(e) = self.make_room(cancels.len(), None) {
            log::debug!("io_uring log driver drop: {e}");
            self.leak_in_flight(&format!("io_uring_enter: {e}"));
            return;
        }
        for sqe in &cancels {
            // SAFETY: cancellations reference no memory (targets are named by user_data).
            unsafe { self.ring.submission().push(sqe) }.expect("make_room left free slots");
            self.wait.in_flight += 1;
        }
        // Submitted writes are waited for (a regular file's write or fsync is not interruptible
        // anyway), unless stalled (then cancelled, as in `complete`), and no new step of theirs
        // is submitted: their completions were never handed out, so nothing waits for them.
        while self.wait.in_flight > 0 || self.pipelined_in_flight() > 0 {
            match enter_sliced(&self.ring, 1) {
                Ok(_) => {}
                Err(e) if is_transient(&e) => {}
                Err(e) => {
                    log::debug!("io_uring log driver drop: {e}");
                    self.leak_in_flight(&format!("io_uring_enter: {e}"));
                    return;
                }
            }
            self.reap(None);
            self.cancel_stalled_submissions();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RingWriter: a file written in large pieces with several in flight
// ---------------------------------------------------------------------------------------------

/// Writes in flight at once.
const WRITER_DEPTH: usize = 4;
/// `user_data` of the final fdatasync.
const WRITER_SYNC: u64 = u64::MAX;
/// `user_data` of the cancellations a stalled writer asks for (see [`RingWriter::wait_one`]).
const WRITER_CANCEL: u64 = u64::MAX - 1;

/// A [`FileWriter`] on a small ring of its own: up to [`WRITER_DEPTH`] writes in flight, so the
/// caller prepares the next piece while the kernel writes the previous ones; then one
/// `Fsync(DATASYNC)` once every write completed (an fdatasync covers only writes that completed
/// before it was issued, so it is submitted after the last completion, not linked).
struct RingWriter<'a> {
    ring: IoUring,
    fd: RawFd,
    /// The file `fd` belongs to (kept borrowed so the descriptor stays open), and the path for
    /// finishing a short or interrupted write synchronously.
    file: &'a dyn VFile,
    /// Buffers of the writes in flight, by slot (the slot is the SQE's `user_data`), with their
    /// offsets. A buffer stays here until its completion is reaped: the kernel reads it until
    /// then.
    slots: [Option<(Vec<u8>, u64)>; WRITER_DEPTH],
    in_flight: usize,
    /// The final fdatasync is in flight.
    syncing: bool,
    /// [`STALL_SLICES`] (fewer in a test).
    stall_slices: u32,
    /// The first error; the writer stays failed.
    failed: Option<io::Error>,
    /// Tests: errno values the next `io_uring_enter` calls fail with instead of entering (the
    /// last one first).
    #[cfg(test)]
    inject_enter: Vec<i32>,
}

impl<'a> RingWriter<'a> {
    fn new(fd: RawFd, file: &'a dyn VFile) -> io::Result<RingWriter<'a>> {
        Ok(RingWriter {
            ring: IoUring::new(2 * WRITER_DEPTH as u32)?,
            fd,
            file,
            slots: Default::default(),
            in_flight: 0,
            syncing: false,
            stall_slices: STALL_SLICES,
            failed: None,
            #[cfg(test)]
            inject_enter: Vec::new(),
        })
    }

    /// One `io_uring_enter` through `enter` (or, in tests, the next injected failure instead).
    fn entered<T>(&mut self, enter: impl FnOnce(&IoUring) -> io::Result<T>) -> io::Result<T> {
        #[cfg(test)]
        if let Some(errno) = self.inject_enter.pop() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        enter(&self.ring)
    }

    fn fail(&mut self, e: io::Error) {
        if self.failed.is_none() {
            self.failed = Some(e);
        }
    }

    fn check(&mut self) -> io::Result<()> {
        match &self.failed {
            Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
            None => Ok(()),
        }
    }

    /// Submits what is queued and waits until the completion queue holds at least one entry.
    ///
    /// The wait is sliced ([`enter_sliced`]) and looks at the queue after each slice, so a
    /// completion whose wake-up was missed is still found. After each stretch of [`STALL_SLICES`]
    /// slices' time (5 s) with none, every operation still in flight is cancelled (logged). A
    /// cancelled write completes with `-ECANCELED` and [`RingWriter::reap`] writes its piece
    /// synchronously; a cancelled fsync is redone with `fdatasync(2)` by [`FileWriter::finish`].
    /// An operation the kernel is really executing (a slow disk) is not cancelled and is waited
    /// for, slice after slice.
    fn wait_one(&mut self) -> io::Result<()> {
        let mut stall = StallClock::new(self.stall_slices);
        loop {
            match self.entered(|ring| enter_sliced(ring, 1)) {
                Ok(_) => {}
                // `EBUSY` (completions to reap first) or `EAGAIN` (no memory for now): the queue
                // is looked at, then the enter is tried again.
                Err(e) if is_transient(&e) => {}
                Err(e) => return Err(e),
            }
            if !self.ring.completion().is_empty() {
                return Ok(());
            }
            if stall.idle() {
                self.cancel_in_flight();
            }
        }
    }

    /// Asks the kernel to cancel the writes in flight and a pending sync (their completions then
    /// arrive with `-ECANCELED`, or as they would have if they were already running).
    fn cancel_in_flight(&mut self) {
        let targets: Vec<u64> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as u64)
            .chain(self.syncing.then_some(WRITER_SYNC))
            .collect();
        log::warn!(
            "file writer: no completion in {} ms for {} operations in flight; cancelling them \
             and finishing them synchronously",
            stall_limit(self.stall_slices).as_millis(),
            targets.len()
        );
        // The queue has room: every write and the sync were consumed by earlier enters (at most
        // WRITER_DEPTH + 1 of the ring's 2 * WRITER_DEPTH entries are ever queued at once).
        push_cancels(&mut self.ring, &targets, WRITER_CANCEL);
    }

    /// Waits for at least one completion and handles every completion available.
    fn reap(&mut self) -> io::Result<()> {
        self.wait_one()?;
        let done: Vec<(u64, i32)> = self
            .ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (ud, res) in done {
            let Some((buf, offset)) = usize::try_from(ud)
                .ok()
                .and_then(|i| self.slots.get_mut(i))
                .and_then(Option::take)
            else {
                continue;
            };
            self.in_flight -= 1;
            let written = match res {
                n if n >= 0 => n as usize,
                e if e == -libc::EINTR || e == -libc::EAGAIN || e == -libc::ECANCELED => 0,
                e => {
                    self.fail(io::Error::from_raw_os_error(-e));
                    continue;
                }
            };
            if written < buf.len() {
                // A short or interrupted write: finish it here, synchronously.
                if let Err(e) = self
                    .file
                    .write_all_at(&buf[written..], offset + written as u64)
                {
                    self.fail(e);
                }
            }
        }
        Ok(())
    }
}

impl FileWriter for RingWriter<'_> {
    fn write(&mut self, buf: Vec<u8>, offset: u64) -> io::Result<()> {
        self.check()?;
        if buf.len() > MAX_CHUNK {
            // Larger than one SQE may carry: the synchronous path loops.
            self.finish(false)?;
            return self.file.write_all_at(&buf, offset);
        }
        while self.in_flight == WRITER_DEPTH {
            self.reap()?;
        }
        self.check()?;
        let slot = self
            .slots
            .iter()
            .position(Option::is_none)
            .expect("fewer than WRITER_DEPTH writes in flight");
        let (ptr, len) = (buf.as_ptr(), buf.len() as u32);
        self.slots[slot] = Some((buf, offset));
        let sqe = opcode::Write::new(types::Fd(self.fd), ptr, len)
            .offset(offset)
            .build()
            .user_data(slot as u64);
        // SAFETY: the buffer `ptr` points into is owned by `self.slots[slot]` (a heap allocation
        // that moving the Vec does not move) and is neither dropped nor reused until this SQE's
        // completion is reaped (`reap`, and `Drop` waits for every write in flight); `fd` stays
        // open because `self.file` is borrowed for the writer's lifetime. The queue has room:
        // at most WRITER_DEPTH writes plus one sync are ever queued in a ring of twice that.
        unsafe {
            self.ring
                .submission()
                .push(&sqe)
                .map_err(|_| io::Error::other("file writer: submission queue full"))?;
        }
        self.in_flight += 1;
        match self.entered(IoUring::submit) {
            Ok(_) => Ok(()),
            // Still queued: the next enter (a reap's wait, or `finish`'s) submits it.
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn finish(&mut self, sync: bool) -> io::Result<()> {
        while self.in_flight > 0 {
            self.reap()?;
        }
        self.check()?;
        if !sync {
            return Ok(());
        }
        let sqe = opcode::Fsync::new(types::Fd(self.fd))
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(WRITER_SYNC);
        // SAFETY: an fsync SQE references no memory; the ring is empty (every write reaped).
        unsafe {
            self.ring
                .submission()
                .push(&sqe)
                .map_err(|_| io::Error::other("file writer: submission queue full"))?;
        }
        self.syncing = true;
        let res = loop {
            self.wait_one()?;
            // Skip the completions of cancellations.
            if let Some(c) = self
                .ring
                .completion()
                .find(|c| c.user_data() == WRITER_SYNC)
            {
                break c.result();
            }
        };
        self.syncing = false;
        let res = if res == -libc::ECANCELED || res == -libc::EINTR {
            // Cancelled by a stalled wait (an fdatasync already running when it was cancelled
            // may be interrupted instead): the same fdatasync, synchronously.
            match self.file.sync_data() {
                Ok(()) => 0,
                Err(e) => -e.raw_os_error().unwrap_or(libc::EIO),
            }
        } else {
            res
        };
        if res < 0 {
            let e = io::Error::from_raw_os_error(-res);
            self.fail(io::Error::new(e.kind(), e.to_string()));
            return Err(e);
        }
        Ok(())
    }
}

impl Drop for RingWriter<'_> {
    fn drop(&mut self) {
        // The kernel may still read the buffers of writes in flight: wait for them.
        while self.in_flight > 0 {
            if self.reap().is_err() {
                // The ring cannot be waited on: never free memory the kernel may still read.
                for slot in &mut self.slots {
                    if let Some((buf, _)) = slot.take() {
                        std::mem::forget(buf);
                    }
                }
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Batched reads
// ---------------------------------------------------------------------------------------------

/// Submission queue size of a `read_batch` ring: the most reads it has in flight at once (a larger
/// batch is fed to it as earlier reads complete). Its completion queue is twice as large, so the
/// completions of the reads in flight always fit.
const READ_RING_ENTRIES: u32 = 64;

/// Most idle `read_batch` rings a [`UringVfs`] keeps (more exist while more threads read at once;
/// a ring returned to a full pool is closed).
const READ_RING_POOL: usize = 4;

/// What to do with a request of a batch after the completion of its `Read` SQE.
#[derive(Debug)]
enum ReadStep {
    /// Submit a `Read` for the rest of the buffer (a short read, or `-EINTR`/`-EAGAIN`).
    Resubmit,
    /// The request is finished with this result.
    Done(io::Result<()>),
    /// The kernel cancelled the read on its own (io-wq could not start a worker to run it: a
    /// limit on threads, `RLIMIT_NPROC` or a cgroup's `pids.max`): left for the caller's plain
    /// read, as after a stall.
    Plain,
}

/// One request of a batch on the ring, between its SQEs.
#[derive(Debug)]
struct RingRead {
    fd: RawFd,
    /// `buf[..done]` is read.
    done: usize,
    /// Length of its `Read` SQE whose completion has not been reaped: the kernel may write
    /// `buf[done..done + len]` until then.
    in_flight: Option<usize>,
    /// Retries (`-EINTR`/`-EAGAIN`) since the last progress.
    stalled: u32,
}

impl RingRead {
    fn new(fd: RawFd) -> RingRead {
        RingRead {
            fd,
            done: 0,
            in_flight: None,
            stalled: 0,
        }
    }

    /// Starts the next `Read` of a `len`-byte buffer: returns where in the buffer and how many
    /// bytes (at most [`MAX_CHUNK`]).
    fn start(&mut self, len: usize) -> (usize, usize) {
        debug_assert!(self.in_flight.is_none() && self.done < len);
        let n = (len - self.done).min(MAX_CHUNK);
        self.in_flight = Some(n);
        (self.done, n)
    }

    /// The completion of its `Read` (`res`: bytes read or `-errno`) for a `len`-byte buffer.
    fn on_read(&mut self, res: i32, len: usize) -> ReadStep {
        let Some(asked) = self.in_flight.take() else {
            return ReadStep::Done(Err(io::Error::other(
                "io_uring read completion with no read in flight",
            )));
        };
        if res < 0 {
            return match -res {
                libc::ECANCELED => ReadStep::Plain,
                libc::EINTR | libc::EAGAIN => {
                    self.stalled += 1;
                    if self.stalled > MAX_STALLED_RETRIES {
                        ReadStep::Done(Err(io::Error::other(format!(
                            "io_uring read made no progress after {MAX_STALLED_RETRIES} retries"
                        ))))
                    } else {
                        ReadStep::Resubmit
                    }
                }
                errno => ReadStep::Done(Err(io::Error::from_raw_os_error(errno))),
            };
        }
        let n = res as usize;
        if n == 0 {
            return ReadStep::Done(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file ended early",
            )));
        }
        if n > asked {
            return ReadStep::Done(Err(io::Error::other(format!(
                "io_uring read reported {n} bytes read for a {asked}-byte request"
            ))));
        }
        self.done += n;
        self.stalled = 0;
        if self.done == len {
            ReadStep::Done(Ok(()))
        } else {
            ReadStep::Resubmit
        }
    }
}

/// `user_data` of the cancellations a stalled read batch asks for (see [`read_on_ring`]).
const READ_CANCEL: u64 = u64::MAX;

/// Queues a cancellation of every read in flight of a batch (`state`, by request index, the
/// `user_data` of its reads) and logs it; returns how many were queued.
fn cancel_reads(ring: &mut IoUring, state: &[Option<RingRead>], stall_slices: u32) -> usize {
    let targets: Vec<u64> = state
        .iter()
        .enumerate()
        .filter(|(_, s)| s.as_ref().is_some_and(|s| s.in_flight.is_some()))
        .map(|(i, _)| i as u64)
        .collect();
    log::warn!(
        "io_uring read batch: no completion in {} ms for {} read(s) in flight; cancelling them \
         and reading the rest of the batch with pread",
        stall_limit(stall_slices).as_millis(),
        targets.len()
    );
    // The queue has room: every read was consumed by an earlier enter and at most the queue's
    // size are in flight.
    push_cancels(ring, &targets, READ_CANCEL)
}

/// Counts the `Read` SQEs pushed and not yet reaped, and aborts the process if dropped while one
/// may still be with the kernel (a panic unwinding out of [`read_on_ring`] would otherwise let the
/// caller free a buffer the kernel still writes to).
struct ReadsInFlight(usize);

impl Drop for ReadsInFlight {
    fn drop(&mut self) {
        if self.0 > 0 {
            log::error!(
                "io_uring: leaving a read batch with {} read(s) possibly in flight; aborting \
                 rather than letting their buffers be freed",
                self.0
            );
            std::process::abort();
        }
    }
}

/// Reads the requests `on_ring` of `reads` (index in `reads`, descriptor of its file; none with
/// an empty buffer or an offset beyond `i64::MAX`) on `ring`, an idle ring nobody else uses, setting their results. Up to the
/// ring's size are in flight at once, each SQE's `user_data` being its request's index; short
/// reads are resubmitted for their remainder. Returns once every SQE pushed was reaped, the ring
/// idle again.
///
/// Waits are sliced ([`enter_sliced`]): after `stall_slices` slices' time ([`StallClock`])
/// without a completion, every read in flight is cancelled (logged as a warning), and those
/// reads — with every request not yet on the ring — are left without a result, for the caller
/// to read with plain `pread(2)` (as [`Vfs::read_batch`] does with whatever has no result).
///
/// `Err` when `io_uring_enter` failed with something other than `EINTR`/`EAGAIN`/`EBUSY`: it then
/// first waits for every read the kernel already has, and returns once the only SQEs left are
/// ones the kernel never consumed. The caller must then close the ring without entering it again
/// (so they never are); the requests left without a result are not in flight. Should the ring
/// refuse to be waited on while the kernel has reads, the process aborts: returning would let the
/// caller free buffers the kernel writes to.
fn read_on_ring(
    ring: &mut IoUring,
    reads: &mut [BatchRead<'_>],
    on_ring: &[(usize, RawFd)],
    stall_slices: u32,
) -> io::Result<()> {
    // Never more in flight than either queue holds: pushes cannot fail and completions cannot
    // overflow.
    let depth = ring.params().sq_entries().min(ring.params().cq_entries()) as usize;
    let mut state: Vec<Option<RingRead>> = (0..reads.len()).map(|_| None).collect();
    let mut pending = VecDeque::with_capacity(on_ring.len());
    for &(i, fd) in on_ring {
        state[i] = Some(RingRead::new(fd));
        pending.push_back(i);
    }
    let mut in_flight = ReadsInFlight(0);
    let mut broken: Option<io::Error> = None;
    let mut failed_enters = 0u32;
    // Set once a stall cancelled the reads in flight: nothing more goes on the ring.
    let mut cancelled = false;
    // Cancellations whose completion is not reaped yet (they reference no memory, but the ring
    // goes back to a pool: it must be idle when this returns).
    let mut cancels = 0usize;
    let mut stall = StallClock::new(stall_slices);
    loop {
        if broken.is_none() && !cancelled {
            let mut sq = ring.submission();
            while in_flight.0 < depth {
                let Some(i) = pending.pop_front() else { break };
                let s = state[i].as_mut().expect("a pending request has a state");
                let r = &mut reads[i];
                let (start, len) = s.start(r.buf.len());
                let at = r.offset + start as u64;
                let chunk = &mut r.buf[start..start + len];
                let sqe = opcode::Read::new(
                    types::Fd(s.fd),
                    chunk.as_mut_ptr(),
                    u32::try_from(len).expect("reads are at most MAX_CHUNK bytes"),
                )
                .offset(at)
                .build()
                .user_data(i as u64);
                // SAFETY: the kernel writes at most `len` bytes to `chunk`, which lies in
                // `reads[i].buf`, a buffer borrowed for longer than this call that nothing else
                // touches while this SQE is in flight: a request is pushed again, or its buffer
                // read, only after its completion was reaped (`RingRead::in_flight`), and this
                // function does not return while a pushed SQE may be with the kernel (it reaps
                // until `in_flight` is zero; after an enter failure it returns only with SQEs the
                // kernel never consumed, and the caller closes the ring without entering it; a
                // panic aborts through `ReadsInFlight`). `fd` stays open: `reads[i].file` is
                // borrowed for longer than this call too.
                if unsafe { sq.push(&sqe) }.is_err() {
                    // Cannot happen (never more pushed than the queue holds); try again later.
                    s.in_flight = None;
                    pending.push_front(i);
                    break;
                }
                in_flight.0 += 1;
            }
        }
        if in_flight.0 == 0 && (cancels == 0 || broken.is_some()) {
            break;
        }
        // (After a cancel, what is queued is cancellations: the reads are with the kernel.)
        if broken.is_some() && !cancelled && ring.submission().len() == in_flight.0 {
            // Every SQE left is still queued: the kernel never consumed them and, the ring not
            // being entered again, never will.
            in_flight.0 = 0;
            break;
        }
        match enter_sliced(ring, 1) {
            Ok(_) => failed_enters = 0,
            Err(e) if is_transient(&e) => {}
            Err(e) => {
                failed_enters += 1;
                if failed_enters > MAX_STALLED_RETRIES {
                    log::error!(
                        "io_uring_enter keeps failing ({e}) while the kernel has reads of a \
                         batch; aborting rather than returning while it may still write to \
                         their buffers"
                    );
                    std::process::abort();
                }
                broken.get_or_insert(e);
            }
        }
        let mut reaped = 0usize;
        for cqe in ring.completion() {
            reaped += 1;
            let (ud, res) = (cqe.user_data(), cqe.result());
            if ud == READ_CANCEL {
                cancels = cancels.saturating_sub(1);
                continue;
            }
            let Some((i, s)) = usize::try_from(ud)
                .ok()
                .and_then(|i| Some((i, state.get_mut(i)?.as_mut()?)))
                .filter(|(_, s)| s.in_flight.is_some())
            else {
                log::error!("io_uring: stray read completion ({res}, user_data {ud}); ignored");
                continue;
            };
            in_flight.0 -= 1;
            if cancelled && res < 0 {
                // Cancelled (or failed after the stall): left for the caller's plain read.
                s.in_flight = None;
                continue;
            }
            match s.on_read(res, reads[i].buf.len()) {
                // After a stall nothing goes back on the ring: the caller reads it whole.
                ReadStep::Resubmit if cancelled => {}
                ReadStep::Resubmit => pending.push_back(i),
                ReadStep::Done(result) => reads[i].result = Some(result),
                // No result: the caller reads it with a plain read.
                ReadStep::Plain => {}
            }
        }
        if reaped > 0 {
            stall.progress();
        } else if in_flight.0 > 0 && stall.idle() {
            cancelled = true;
            cancels += cancel_reads(ring, &state, stall_slices);
        }
    }
    match broken {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OpenOptions;

    fn step_write(c: &mut Commit) -> (usize, usize, bool) {
        match c.next() {
            Step::Write {
                start,
                len,
                then_fsync,
            } => (start, len, then_fsync),
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[test]
    fn linked_commit_happy_path() {
        let mut c = Commit::new(4096, SyncStrategy::WriteThenSync);
        assert_eq!(step_write(&mut c), (0, 4096, true));
        assert_eq!(c.in_flight(), 2);
        c.on_write(4096);
        c.on_fsync(0);
        assert_eq!(c.next(), Step::Finished);
        assert_eq!((c.short_writes, c.retries, c.fsync_resubmits), (0, 0, 0));
        c.into_result().unwrap();
    }

    #[test]
    fn completions_in_either_order_are_accepted() {
        let mut c = Commit::new(100, SyncStrategy::WriteThenSync);
        step_write(&mut c);
        c.on_fsync(0);
        c.on_write(100);
        assert_eq!(c.next(), Step::Finished);
        c.into_result().unwrap();
    }

    #[test]
    fn short_write_resubmits_the_remainder_and_a_new_fsync() {
        let mut c = Commit::new(8192, SyncStrategy::WriteThenSync);
        step_write(&mut c);
        c.on_write(4096);
        c.on_fsync(-libc::ECANCELED);
        assert_eq!(step_write(&mut c), (4096, 4096, true));
        c.on_write(1000);
        c.on_fsync(-libc::ECANCELED);
        assert_eq!(step_write(&mut c), (5096, 3096, true));
        c.on_write(3096);
        c.on_fsync(0);
        assert_eq!(c.next(), Step::Finished);
        assert_eq!(c.short_writes, 2);
        assert_eq!(c.fsync_resubmits, 2);
        c.into_result().unwrap();
    }

    #[test]
    fn eagain_and_eintr_on_the_write_resubmit_it() {
        for errno in [libc::EAGAIN, libc::EINTR] {
            let mut c = Commit::new(512, SyncStrategy::WriteThenSync);
            step_write(&mut c);
            c.on_write(-errno);
            c.on_fsync(-libc::ECANCELED);
            assert_eq!(step_write(&mut c), (0, 512, true));
            c.on_write(512);
            c.on_fsync(0);
            assert_eq!(c.next(), Step::Finished);
            assert_eq!(c.retries, 1);
            c.into_result().unwrap();
        }
    }

    #[test]
    fn eagain_on_the_fsync_resubmits_only_the_fsync() {
        let mut c = Commit::new(512, SyncStrategy::WriteThenSync);
        step_write(&mut c);
        c.on_write(512);
        c.on_fsync(-libc::EAGAIN);
        assert_eq!(c.next(), Step::Fsync);
        c.on_fsync(-libc::EINTR);
        assert_eq!(c.next(), Step::Fsync);
        c.on_fsync(0);
        assert_eq!(c.next(), Step::Finished);
        assert_eq!((c.retries, c.fsync_resubmits), (2, 2));
        c.into_result().unwrap();
    }

    #[test]
    fn a_write_error_waits_for_the_linked_fsync_then_fails() {
        let mut c = Commit::new(512, SyncStrategy::WriteThenSync);
        step_write(&mut c);
        c.on_write(-libc::EBADF);
        // The fsync's completion is still outstanding: the commit must not finish yet.
        assert_eq!(c.in_flight(), 1);
        c.on_fsync(-libc::ECANCELED);
        assert_eq!(c.next(), Step::Finished);
        assert_eq!(
            c.into_result().unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
    }

    #[test]
    fn an_fsync_error_is_fatal_and_never_retried() {
        let mut c = Commit::new(512, SyncStrategy::WriteThenSync);
        step_write(&mut c);
        c.on_write(512);
        c.on_fsync(-libc::EIO);
        assert_eq!(c.next(), Step::Finished);
        assert_eq!(c.into_result().unwrap_err().raw_os_error(), Some(libc::EIO));
    }

    #[test]
    fn a_zero_byte_write_is_an_error() {
        let mut c = Commit::new(512, SyncStrategy::Dsync);
        assert_eq!(step_write(&mut c), (0, 512, false));
        c.on_write(0);
        assert_eq!(c.next(), Step::Finished);
        assert_eq!(
            c.into_result().unwrap_err().kind(),
            io::ErrorKind::WriteZero
        );
    }

    #[test]
    fn an_overlong_write_result_is_an_error() {
        let mut c = Commit::new(512, SyncStrategy::Dsync);
        step_write(&mut c);
        c.on_write(513);
        assert_eq!(c.next(), Step::Finished);
        assert!(c.into_result().is_err());
    }

    #[test]
    fn dsync_short_write_resubmits_without_fsync() {
        let mut c = Commit::new(4096, SyncStrategy::Dsync);
        assert_eq!(step_write(&mut c), (0, 4096, false));
        assert_eq!(c.in_flight(), 1);
        c.on_write(512);
        assert_eq!(step_write(&mut c), (512, 3584, false));
        c.on_write(-libc::EAGAIN);
        assert_eq!(step_write(&mut c), (512, 3584, false));
        c.on_write(3584);
        assert_eq!(c.next(), Step::Finished);
        assert_eq!((c.short_writes, c.retries, c.fsync_resubmits), (1, 1, 0));
        c.into_result().unwrap();
    }

    #[test]
    fn a_split_chain_needs_a_fresh_fsync() {
        let mut c = Commit::new(512, SyncStrategy::WriteThenSync);
        step_write(&mut c);
        c.on_split_submission();
        c.on_fsync(0); // ran unordered, possibly before the write
        c.on_write(512);
        assert_eq!(c.next(), Step::Fsync);
        c.on_fsync(0);
        assert_eq!(c.next(), Step::Finished);
        c.into_result().unwrap();
    }

    #[test]
    fn huge_buffers_are_chunked_with_the_fsync_on_the_last_chunk() {
        let len = MAX_CHUNK * 2 + 4096;
        let mut c = Commit::new(len, SyncStrategy::WriteThenSync);
        assert_eq!(step_write(&mut c), (0, MAX_CHUNK, false));
        c.on_write(MAX_CHUNK as i32);
        assert_eq!(step_write(&mut c), (MAX_CHUNK, MAX_CHUNK, false));
        c.on_write(MAX_CHUNK as i32);
        assert_eq!(step_write(&mut c), (2 * MAX_CHUNK, 4096, true));
        c.on_write(4096);
        c.on_fsync(0);
        assert_eq!(c.next(), Step::Finished);
        c.into_result().unwrap();
    }

    #[test]
    fn empty_buffers() {
        let mut c = Commit::new(0, SyncStrategy::WriteThenSync);
        assert_eq!(c.next(), Step::Fsync);
        c.on_fsync(0);
        assert_eq!(c.next(), Step::Finished);
        c.into_result().unwrap();
        let mut c = Commit::new(0, SyncStrategy::Dsync);
        assert_eq!(c.next(), Step::Finished);
        c.into_result().unwrap();
    }

    #[test]
    fn endless_eagain_gives_up() {
        let mut c = Commit::new(512, SyncStrategy::Dsync);
        let mut rounds = 0;
        while let Step::Write { .. } = c.next() {
            c.on_write(-libc::EAGAIN);
            rounds += 1;
            assert!(rounds <= MAX_STALLED_RETRIES + 1, "never gave up");
        }
        assert_eq!(rounds, MAX_STALLED_RETRIES + 1);
        assert!(c.into_result().is_err());
    }

    /// A cancelled commit: `-ECANCELED` completions are expected, not errors; the synchronous
    /// finish writes exactly what the ring did not (after a short write, the rest) and syncs.
    /// Without a cancel, `-ECANCELED` on a write stays a hard error.
    #[test]
    fn a_cancelled_commit_finishes_what_the_ring_did_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = open_log(dir.path(), "log", false);
        let buf = pattern(5, 300);
        for strategy in [SyncStrategy::WriteThenSync, SyncStrategy::Dsync] {
            let mut c = Commit::new(buf.len(), strategy);
            let (start, len, then_fsync) = step_write(&mut c);
            assert_eq!((start, len), (0, 300));
            c.on_write(100); // short
            if then_fsync {
                c.on_fsync(-libc::ECANCELED); // the broken chain's fsync
            }
            let (start, _, then_fsync) = step_write(&mut c);
            assert_eq!(start, 100);
            c.cancel_requested();
            c.on_write(-libc::ECANCELED);
            if then_fsync {
                c.on_fsync(-libc::ECANCELED);
            }
            assert_eq!(c.in_flight(), 0);
            assert!(c.error.is_none(), "{strategy:?}: {:?}", c.error);
            c.finish_synchronously(&*file, &buf, 4096);
            assert!(c.synced);
            c.into_result().unwrap();
            // Only the rest was written: the first 100 bytes stayed as they were (zeros).
            let mut want = vec![0u8; 100];
            want.extend_from_slice(&buf[100..]);
            assert_eq!(read_back(&*file, 4096, 300), want, "{strategy:?}");
        }
        // A cancel nobody here requested (the kernel's own, without an io-wq worker) is finished
        // synchronously too (`a_write_the_kernel_cancelled_is_finished_synchronously`); it
        // used to be an error, which poisoned the database.
        let mut c = Commit::new(512, SyncStrategy::Dsync);
        step_write(&mut c);
        c.on_write(-libc::ECANCELED);
        assert!(c.error.is_none() && c.cancelled);
    }

    #[test]
    fn user_data_round_trips() {
        for tag in [
            Tag::Write,
            Tag::Fsync,
            Tag::Poll,
            Tag::Timer,
            Tag::TimerRemove,
            Tag::Cancel,
        ] {
            assert_eq!(decode_user_data(user_data(tag, 42)), Some((tag, 42)));
        }
        assert_eq!(decode_user_data(0), None);
    }

    #[test]
    fn wait_state_ignores_stale_timers() {
        let mut w = WaitState {
            timer_armed: true,
            timer_gen: 3,
            in_flight: 2,
            ..WaitState::default()
        };
        w.on_completion(Tag::Timer, 2, -libc::ECANCELED);
        assert!(!w.timer_fired && w.timer_armed);
        w.on_completion(Tag::Timer, 3, -libc::ETIME);
        assert!(w.timer_fired && !w.timer_armed);
        assert_eq!(w.in_flight, 0);
    }

    #[test]
    fn setup_errors_are_explained() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert!(classify("io_uring_setup", &e(libc::ENOSYS), None, None).contains("seccomp"));
        let eperm = classify("io_uring_setup", &e(libc::EPERM), Some("2\n"), None);
        assert!(eperm.contains("io_uring_disabled = 2"), "{eperm}");
        assert!(classify("io_uring_setup", &e(libc::EPERM), None, None).contains("absent"));
        let enomem = classify("io_uring_setup", &e(libc::ENOMEM), None, Some(65536));
        assert!(
            enomem.contains("RLIMIT_MEMLOCK too small: 64 KiB"),
            "{enomem}"
        );
        assert!(classify("eventfd", &e(libc::EMFILE), None, None).contains("EMFILE"));
        assert!(classify("io_uring_setup", &e(libc::EINVAL), None, None).contains("errno 22"));
    }

    #[test]
    fn probe_is_cached() {
        let first = probe();
        assert_eq!(first, probe());
        match first {
            Ok(desc) => assert!(desc.contains("NODROP"), "{desc}"),
            Err(why) => eprintln!("io_uring unavailable here ({why}); probe result still cached"),
        }
    }

    #[test]
    fn backend_reports_a_driver_fallback() {
        let vfs = UringVfs::new("auto: io_uring available".into());
        assert_eq!(vfs.backend().reason, "auto: io_uring available");
        *vfs.driver_fallback.lock() = Some("io_uring_setup: ENOMEM".into());
        let info = vfs.backend();
        assert_eq!(info.kind, BackendKind::Uring);
        assert_eq!(
            info.reason,
            "auto: io_uring available; log driver fell back to portable: io_uring_setup: ENOMEM"
        );
    }

    #[test]
    fn driver_round_trip_on_a_real_ring() {
        if let Err(why) = probe() {
            eprintln!("skipping: io_uring unavailable ({why})");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = crate::PosixFile::open(
            &dir.path().join("log"),
            OpenOptions {
                write: true,
                create: true,
                direct: false,
            },
        )
        .unwrap();
        let mut d = UringDriver::new().unwrap();
        d.write_durable(&file, 0, b"abc", SyncStrategy::WriteThenSync)
            .unwrap();
        d.write_durable(&file, 3, b"def", SyncStrategy::Dsync)
            .unwrap();
        let mut back = [0u8; 6];
        file.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(&back, b"abcdef");
        assert_eq!(d.stats().commits, 2);
        d.wait(Some(Duration::from_millis(1))).unwrap();
        // The poll stays armed across the timed-out wait; dropping must cancel and reap it.
        assert!(d.wait.poll_armed);
        assert_eq!(d.wait.in_flight, 1);
    }

    // --- pipelined submissions on a real ring -------------------------------------------------

    use std::io::{Read, Write};

    /// Says why and returns false when the kernel offers no usable io_uring.
    fn have_uring() -> bool {
        match probe() {
            Ok(_) => true,
            Err(why) => {
                eprintln!("skipping: io_uring unavailable ({why})");
                false
            }
        }
    }

    /// `len` bytes of a pattern that differs per `seed`, so misplaced writes show.
    fn pattern(seed: u64, len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(0x9e37_79b9)) as u8)
            .collect()
    }

    fn aligned(bytes: &[u8]) -> AlignedBuf {
        let mut buf = AlignedBuf::with_capacity(bytes.len());
        buf.extend_from_slice(bytes);
        buf
    }

    fn open_log(dir: &std::path::Path, name: &str, direct: bool) -> Arc<crate::PosixFile> {
        Arc::new(
            crate::PosixFile::open(
                &dir.join(name),
                OpenOptions {
                    write: true,
                    create: true,
                    direct,
                },
            )
            .unwrap(),
        )
    }

    fn submission(file: Arc<dyn VFile>, offset: u64, bytes: &[u8], token: u64) -> Submission {
        Submission {
            file,
            offset,
            buf: aligned(bytes),
            strategy: SyncStrategy::Dsync,
            token,
        }
    }

    /// `len` bytes of `file` at `offset`, read through an aligned buffer (`O_DIRECT` needs one).
    fn read_back(file: &dyn VFile, offset: u64, len: usize) -> Vec<u8> {
        let mut buf = AlignedBuf::with_capacity(len);
        file.read_exact_at(buf.extend_zeroed(len), offset).unwrap();
        buf.as_slice().to_vec()
    }

    /// Calls `complete` (no timeout) until `n` completions are back.
    fn collect(d: &mut UringDriver, n: usize) -> Vec<Completion> {
        let mut done = Vec::new();
        while done.len() < n {
            d.complete(&mut done, None).unwrap();
        }
        assert_eq!(done.len(), n, "more completions than submissions");
        done
    }

    /// One end of a pipe, as a file. The write end of a full pipe: a write to it stays in flight
    /// (the kernel polls the pipe) for as long as the pipe is full, which lets a test hold a
    /// submission in flight without timing assumptions. The read end of a pipe nobody writes
    /// to ([`PipeFile::silent`]): a read of it on a ring never completes (it stands for a read
    /// stranded in io-wq), while a plain `read_at` returns `read_fill` bytes.
    struct PipeFile {
        end: OwnedFd,
        /// The other end, kept open (a silent pipe's writer: its reads then never see EOF).
        _other: Option<OwnedFd>,
        read_fill: Option<u8>,
    }

    impl PipeFile {
        fn writer(end: io::PipeWriter) -> PipeFile {
            PipeFile {
                end: end.into(),
                _other: None,
                read_fill: None,
            }
        }

        fn silent(fill: u8) -> PipeFile {
            let (reader, writer) = io::pipe().unwrap();
            PipeFile {
                end: reader.into(),
                _other: Some(writer.into()),
                read_fill: Some(fill),
            }
        }
    }

    impl VFile for PipeFile {
        fn read_at(&self, buf: &mut [u8], _: u64) -> io::Result<usize> {
            match self.read_fill {
                Some(fill) => {
                    buf.fill(fill);
                    Ok(buf.len())
                }
                None => Err(io::ErrorKind::Unsupported.into()),
            }
        }
        fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn sync_data(&self) -> io::Result<()> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn sync_all(&self) -> io::Result<()> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn allocate(&self, _: u64) -> io::Result<crate::Allocation> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn size(&self) -> io::Result<u64> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn set_len(&self, _: u64) -> io::Result<()> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn direct_io(&self) -> Option<usize> {
            None
        }
        fn raw_fd(&self) -> Option<RawFd> {
            Some(self.end.as_raw_fd())
        }
    }

    /// A (blocking) pipe filled to capacity: its write end as a file, its read end, and how many
    /// bytes it holds. The next write to it cannot complete before the reader takes some.
    fn full_pipe() -> (Arc<PipeFile>, io::PipeReader, usize) {
        let (reader, mut writer) = io::pipe().unwrap();
        // SAFETY: F_GETPIPE_SZ takes no pointer; the descriptor is open (owned by `writer`).
        let cap = unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_GETPIPE_SZ) };
        let cap = usize::try_from(cap).expect("F_GETPIPE_SZ");
        // An empty pipe takes `cap` bytes in one write without blocking.
        writer.write_all(&vec![0xAA; cap]).unwrap();
        (Arc::new(PipeFile::writer(writer)), reader, cap)
    }

    /// A pipe's write end whose synchronous writes and syncs are recorded, not made.
    struct RecordingPipe {
        pipe: Arc<PipeFile>,
        written: Mutex<Vec<(Vec<u8>, u64)>>,
        syncs: Mutex<usize>,
    }

    impl RecordingPipe {
        fn full() -> (RecordingPipe, io::PipeReader) {
            let (pipe, reader, _) = full_pipe();
            let file = RecordingPipe {
                pipe,
                written: Mutex::new(Vec::new()),
                syncs: Mutex::new(0),
            };
            (file, reader)
        }
    }

    impl VFile for RecordingPipe {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            self.pipe.read_at(buf, offset)
        }
        fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            self.written.lock().push((buf.to_vec(), offset));
            Ok(())
        }
        fn sync_data(&self) -> io::Result<()> {
            *self.syncs.lock() += 1;
            Ok(())
        }
        fn sync_all(&self) -> io::Result<()> {
            self.pipe.sync_all()
        }
        fn allocate(&self, len: u64) -> io::Result<crate::Allocation> {
            self.pipe.allocate(len)
        }
        fn size(&self) -> io::Result<u64> {
            self.pipe.size()
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.pipe.set_len(len)
        }
        fn direct_io(&self) -> Option<usize> {
            None
        }
        fn raw_fd(&self) -> Option<RawFd> {
            self.pipe.raw_fd()
        }
    }

    /// A write the kernel cancelled on its own (io-wq could not start a worker for it: a limit on
    /// threads) never ran: the commit finishes it synchronously instead of failing, which
    /// poisoned the database (found by a review under `RLIMIT_NPROC`).
    #[test]
    fn a_write_the_kernel_cancelled_is_finished_synchronously() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let file = open_log(dir.path(), "log", false);
        let buf: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
        let mut c = Commit::new(buf.len(), SyncStrategy::WriteThenSync);
        assert_eq!(step_write(&mut c), (0, 8192, true));
        // The write, then its linked fsync, cancelled by the kernel.
        c.on_write(-libc::ECANCELED);
        c.on_fsync(-libc::ECANCELED);
        assert!(c.error.is_none(), "{:?}", c.error);
        assert!(c.cancelled);
        assert_eq!(c.in_flight(), 0);
        c.finish_synchronously(&*file, &buf, 0);
        c.into_result().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), buf);
    }

    /// A file writer's write that never completes (a full pipe stands for the io-wq write that
    /// never did) is cancelled after the stall limit and its piece written synchronously:
    /// `finish` returns instead of waiting forever, and the bytes went to the file once.
    #[test]
    fn a_stalled_file_writer_cancels_and_writes_synchronously() {
        if !have_uring() {
            return;
        }
        let (file, _reader) = RecordingPipe::full();
        let mut w = RingWriter::new(file.raw_fd().unwrap(), &file).unwrap();
        w.stall_slices = 2;
        w.write(vec![7u8; 100], 0).unwrap();
        w.write(vec![8u8; 50], 100).unwrap();
        w.finish(false).unwrap();
        let mut written = file.written.lock().clone();
        written.sort_by_key(|(_, off)| *off);
        assert_eq!(written, vec![(vec![7u8; 100], 0), (vec![8u8; 50], 100)]);
        assert_eq!(w.in_flight, 0);
    }

    /// `io_uring_enter` failing for a while with `EBUSY`, `EAGAIN` or `EINTR` (completions to
    /// reap first, no memory for now, a signal) is no error of the file writer's writes or of
    /// its sync: they are submitted by a later enter and land in the file.
    #[test]
    fn a_file_writer_retries_transient_enter_failures() {
        if !have_uring() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = open_log(dir.path(), "f", false);
        let mut w = RingWriter::new(file.raw_fd().unwrap(), &*file).unwrap();
        let mut want = Vec::new();
        for i in 0..(2 * WRITER_DEPTH as u8 + 3) {
            // Every enter of this write's submission and of the waits it needs fails once or
            // twice before the real one.
            w.inject_enter = match i % 4 {
                0 => vec![libc::EBUSY],
                1 => vec![libc::EAGAIN, libc::EBUSY],
                2 => vec![libc::EINTR],
                _ => vec![],
            };
            let piece = vec![i; 1000 + usize::from(i)];
            w.write(piece.clone(), want.len() as u64).unwrap();
            want.extend_from_slice(&piece);
        }
        w.inject_enter = vec![libc::EBUSY, libc::EAGAIN];
        w.finish(true).unwrap();
        assert!(w.inject_enter.is_empty(), "every injected failure was met");
        assert_eq!(w.in_flight, 0);
        drop(w);
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    /// The log driver's commit whose write never completes (a full pipe stands for a request
    /// stranded in io-wq) is cancelled after the stall limit and finished with a synchronous
    /// write and sync: `write_durable` returns instead of waiting forever, with the bytes written
    /// once and synced, and the driver goes on working.
    #[test]
    fn a_stalled_log_commit_cancels_and_finishes_synchronously() {
        if !have_uring() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path(), "log", false);
        for (i, strategy) in [SyncStrategy::WriteThenSync, SyncStrategy::Dsync]
            .into_iter()
            .enumerate()
        {
            let (file, _reader) = RecordingPipe::full();
            let mut d = UringDriver::new().unwrap();
            d.stall_slices = 2;
            let bytes = pattern(i as u64, 4096);
            d.write_durable(&file, 8192, &bytes, strategy).unwrap();
            assert_eq!(
                *file.written.lock(),
                vec![(bytes.clone(), 8192)],
                "{strategy:?}"
            );
            assert_eq!(*file.syncs.lock(), 1, "{strategy:?}");
            let stats = d.stats();
            assert_eq!(stats.stall_cancels, 1, "{strategy:?}");
            assert_eq!(stats.commits, 1, "{strategy:?}");
            // The ring is idle again: the next commit goes through it as usual.
            d.write_durable(&*log, 0, &bytes, strategy).unwrap();
            assert_eq!(read_back(&*log, 0, bytes.len()), bytes);
            assert_eq!(d.stats().stall_cancels, 1, "{strategy:?}");
        }
    }

    #[test]
    fn pipelined_writes_complete_once_each_and_read_back() {
        if !have_uring() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut d = UringDriver::new().unwrap();
        assert_eq!(d.max_in_flight(), UringDriver::MAX_IN_FLIGHT);
        let mut round = 0u64;
        for direct in [false, true] {
            for strategy in [SyncStrategy::WriteThenSync, SyncStrategy::Dsync] {
                round += 1;
                let file = open_log(dir.path(), &format!("log{round}"), direct);
                // Distinct buffers of one to three blocks, back to back.
                let mut expected = Vec::new();
                let mut offset = 0u64;
                for i in 0..MAX_IN_FLIGHT as u64 {
                    let token = round * 100 + i;
                    let bytes = pattern(token, 4096 * (1 + i as usize % 3));
                    let mut s = submission(file.clone(), offset, &bytes, token);
                    s.strategy = strategy;
                    d.submit(s).unwrap();
                    offset += bytes.len() as u64;
                    expected.push((token, bytes));
                }
                // One more than max_in_flight is refused (nothing was handed back yet).
                let extra = submission(file.clone(), offset, &[0; 4096], 1);
                let err = d.submit(extra).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

                let mut done = collect(&mut d, MAX_IN_FLIGHT);
                done.sort_by_key(|c| c.token);
                for (c, (token, bytes)) in done.iter().zip(&expected) {
                    assert_eq!(c.token, *token);
                    c.result.as_ref().unwrap();
                    assert_eq!(c.buf.as_slice(), &bytes[..], "buffer handed back unchanged");
                }
                assert!(d.slots.iter().all(Option::is_none));
                let back = read_back(&*file, 0, offset as usize);
                let whole: Vec<u8> = expected
                    .iter()
                    .flat_map(|(_, b)| b.iter().copied())
                    .collect();
                assert_eq!(back, whole, "direct {direct}, {strategy:?}");

                // Nothing more to hand out: a short timeout returns with nothing.
                let mut none = Vec::new();
                d.complete(&mut none, Some(Duration::from_millis(1)))
                    .unwrap();
                assert!(none.is_empty());

                // write_durable works again once every submission is back.
                let tail = aligned(&pattern(round, 4096));
                d.write_durable(&*file, offset, tail.as_slice(), strategy)
                    .unwrap();
                assert_eq!(read_back(&*file, offset, 4096), tail.as_slice());
            }
        }
        let stats = d.stats();
        assert_eq!(stats.submissions, 4 * MAX_IN_FLIGHT as u64);
        assert_eq!(stats.commits, 4);
    }

    #[test]
    fn complete_with_nothing_in_flight_is_wait() {
        if !have_uring() {
            return;
        }
        let mut d = UringDriver::new().unwrap();
        let mut done = Vec::new();
        // A timeout returns.
        d.complete(&mut done, Some(Duration::from_millis(1)))
            .unwrap();
        assert!(done.is_empty());
        assert_eq!(d.stats().timer_expiries, 1);
        // A wake (before the call: not lost) returns, without a timeout.
        d.waker().wake();
        d.complete(&mut done, None).unwrap();
        assert!(done.is_empty());
        assert_eq!(d.stats().wakeups, 1);
        // The same with a long timeout, which is removed rather than left to fire later.
        d.waker().wake();
        d.complete(&mut done, Some(Duration::from_secs(3600)))
            .unwrap();
        assert_eq!(d.stats().wakeups, 2);
        assert!(!d.wait.timer_armed);
    }

    #[test]
    fn a_wake_or_a_timeout_ends_complete_while_a_write_is_in_flight() {
        if !have_uring() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path(), "log", false);
        let (pipe, mut reader, cap) = full_pipe();
        let mut d = UringDriver::new().unwrap();
        let bytes = pattern(7, 4096);
        d.submit(submission(pipe.clone(), 0, &bytes, 7)).unwrap();
        let mut done = Vec::new();

        // The pipe is full, so the write cannot complete: only the wake ends this call.
        d.waker().wake();
        d.complete(&mut done, None).unwrap();
        assert!(done.is_empty());
        assert_eq!(d.stats().wakeups, 1);
        // And only the timer this one.
        d.complete(&mut done, Some(Duration::from_millis(1)))
            .unwrap();
        assert!(done.is_empty());
        assert_eq!(d.stats().timer_expiries, 1);

        // write_durable refuses to run beside a submission in flight.
        let err = d
            .write_durable(&*log, 0, b"x", SyncStrategy::Dsync)
            .unwrap_err();
        assert!(err.to_string().contains("in flight"), "{err}");

        // Make room in the pipe: the write completes and comes back exactly once.
        let mut prefill = vec![0u8; cap];
        reader.read_exact(&mut prefill).unwrap();
        let done = collect(&mut d, 1);
        assert_eq!(done[0].token, 7);
        done[0].result.as_ref().unwrap();
        let mut back = vec![0u8; bytes.len()];
        reader.read_exact(&mut back).unwrap();
        assert_eq!(back, bytes);

        // With nothing in flight any more, write_durable works again.
        d.write_durable(&*log, 0, b"abc", SyncStrategy::WriteThenSync)
            .unwrap();
        let mut back = [0u8; 3];
        log.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(&back, b"abc");
    }

    /// A submitted write that never completes (a full pipe) is cancelled after the stall limit
    /// and finished with a plain write and sync: `complete` hands it back as done instead of
    /// waiting forever, the bytes written once, and the driver goes on working.
    #[test]
    fn a_stalled_submission_cancels_and_finishes_synchronously() {
        if !have_uring() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path(), "log", false);
        let (file, _reader) = RecordingPipe::full();
        let file = Arc::new(file);
        let mut d = UringDriver::new().unwrap();
        d.stall_slices = 2;
        let bytes = pattern(11, 4096);
        for strategy in [SyncStrategy::WriteThenSync, SyncStrategy::Dsync] {
            let mut s = submission(file.clone(), 4096, &bytes, 11);
            s.strategy = strategy;
            d.submit(s).unwrap();
        }
        let mut done = collect(&mut d, 2);
        done.sort_by_key(|c| c.token);
        for c in &done {
            assert_eq!(c.token, 11);
            c.result.as_ref().unwrap();
        }
        assert_eq!(
            *file.written.lock(),
            vec![(bytes.clone(), 4096), (bytes.clone(), 4096)]
        );
        assert_eq!(*file.syncs.lock(), 2);
        assert_eq!(d.stats().stall_cancels, 2);
        // The driver goes on: a submission to a regular file completes through the ring.
        d.submit(submission(log.clone(), 0, &bytes, 12)).unwrap();
        let done = collect(&mut d, 1);
        assert_eq!(done[0].token, 12);
        done[0].result.as_ref().unwrap();
        assert_eq!(read_back(&*log, 0, bytes.len()), bytes);
        assert_eq!(d.stats().stall_cancels, 2);
    }

    /// Signals arriving more often than a wait slice ends do not hide a stall (each interrupts
    /// the wait before its timeout): the log driver's commit, a read batch and the file writer
    /// still cancel their stranded operation and finish. (With the stall counted in slices that
    /// ran out, the commit and the read batch waited for as long as the signals came.)
    #[test]
    fn a_stall_is_noticed_while_signals_keep_interrupting_the_wait() {
        if !have_uring() {
            return;
        }
        extern "C" fn ignore(_: libc::c_int) {}
        // SAFETY: the handler does nothing (async-signal-safe); nothing else in this test binary
        // uses SIGUSR1, and it is sent only to this test's thread.
        unsafe { libc::signal(libc::SIGUSR1, ignore as *const () as libc::sighandler_t) };
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let signaller = {
            let stop = stop.clone();
            thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    // SAFETY: `me` is alive: the test thread joins this one before it returns.
                    unsafe { libc::pthread_kill(me, libc::SIGUSR1) };
                    thread::sleep(Duration::from_millis(40));
                }
            })
        };

        let (file, _reader) = RecordingPipe::full();
        let mut d = UringDriver::new().unwrap();
        d.stall_slices = 2;
        let bytes = pattern(21, 4096);
        d.write_durable(&file, 0, &bytes, SyncStrategy::WriteThenSync)
            .unwrap();
        assert_eq!(*file.written.lock(), vec![(bytes.clone(), 0)]);
        assert_eq!(d.stats().stall_cancels, 1);

        let silent = PipeFile::silent(1);
        let (mut ring, _) = build_shared_ring(4).unwrap();
        let mut b = vec![0u8; 64];
        let mut reads = vec![BatchRead::new(&silent, 0, &mut b)];
        read_on_ring(&mut ring, &mut reads, &[(0, silent.raw_fd().unwrap())], 2).unwrap();
        assert!(reads[0].result.is_none(), "left to a plain read");

        let (file, _reader) = RecordingPipe::full();
        let mut w = RingWriter::new(file.raw_fd().unwrap(), &file).unwrap();
        w.stall_slices = 2;
        w.write(vec![3u8; 10], 0).unwrap();
        w.finish(false).unwrap();
        assert_eq!(*file.written.lock(), vec![(vec![3u8; 10], 0)]);

        stop.store(true, std::sync::atomic::Ordering::Release);
        signaller.join().unwrap();
    }

    #[test]
    fn dropping_the_driver_reaps_writes_in_flight_then_frees_them() {
        if !have_uring() {
            return;
        }
        // Writes to a regular file, dropped before any `complete`.
        let dir = tempfile::tempdir().unwrap();
        let file = open_log(dir.path(), "log", true);
        let mut d = UringDriver::new().unwrap();
        for i in 0..MAX_IN_FLIGHT as u64 {
            d.submit(submission(file.clone(), i * 4096, &pattern(i, 4096), i))
                .unwrap();
        }
        drop(d);
        assert_eq!(Arc::strong_count(&file), 1, "every slot freed, none leaked");

        // A write that completes only once a reader drains the pipe: the drop waits for it.
        let (pipe, mut reader, cap) = full_pipe();
        let mut d = UringDriver::new().unwrap();
        let bytes = pattern(9, 4096);
        d.submit(submission(pipe.clone(), 0, &bytes, 9)).unwrap();
        d.waker().wake();
        d.complete(&mut Vec::new(), None).unwrap(); // the poll is armed now, too
        let drain = thread::spawn(move || {
            let mut all = vec![0u8; cap + 4096];
            reader.read_exact(&mut all).unwrap();
            all
        });
        drop(d);
        assert_eq!(
            Arc::strong_count(&pipe),
            1,
            "the slot was freed after its completion"
        );
        let all = drain.join().unwrap();
        assert_eq!(&all[cap..], &bytes[..]);
    }

    /// Dropping the driver with a submission that never completes (a full pipe nobody reads)
    /// cancels it after the stall limit and frees its slot, instead of waiting forever.
    #[test]
    fn dropping_the_driver_cancels_a_stalled_submission() {
        if !have_uring() {
            return;
        }
        let (file, _reader) = RecordingPipe::full();
        let file = Arc::new(file);
        let mut d = UringDriver::new().unwrap();
        d.stall_slices = 2;
        d.submit(submission(file.clone(), 0, &pattern(4, 4096), 4))
            .unwrap();
        drop(d);
        assert_eq!(
            Arc::strong_count(&file),
            1,
            "the slot was freed, not leaked"
        );
        assert!(
            file.written.lock().is_empty(),
            "nothing is written for a dropped submission"
        );
    }

    #[test]
    fn dropped_off_its_thread_a_single_issuer_driver_leaks_writes_in_flight() {
        if !have_uring() {
            return;
        }
        let (pipe, reader, _) = full_pipe();
        let mut d = UringDriver::new().unwrap();
        d.submit(submission(pipe.clone(), 0, &pattern(1, 4096), 1))
            .unwrap();
        if d.mode != RingMode::SingleIssuer {
            // Any thread may reap this ring: dropping it would wait for the pipe write.
            eprintln!("skipping: ring is not SINGLE_ISSUER ({})", d.setup_flags());
            drop(reader);
            let done = collect(&mut d, 1);
            assert!(done[0].result.is_err(), "EPIPE once the reader is gone");
            return;
        }
        // The ring cannot be entered from another thread: the in-flight write (which can never
        // complete: nobody reads the pipe) is leaked, not freed under the kernel.
        thread::spawn(move || drop(d)).join().unwrap();
        assert_eq!(
            Arc::strong_count(&pipe),
            2,
            "the slot was leaked, file and buffer"
        );
        drop(reader);
    }

    // --- batched reads ----------------------------------------------------------------------

    fn done(step: ReadStep) -> io::Result<()> {
        match step {
            ReadStep::Done(r) => r,
            ReadStep::Resubmit => panic!("expected the read to finish, got Resubmit"),
            ReadStep::Plain => panic!("expected the read to finish, got Plain"),
        }
    }

    #[test]
    fn a_short_read_resubmits_the_remainder() {
        let mut r = RingRead::new(3);
        assert_eq!(r.start(100), (0, 100));
        assert!(matches!(r.on_read(40, 100), ReadStep::Resubmit));
        assert_eq!(r.start(100), (40, 60));
        assert!(matches!(r.on_read(59, 100), ReadStep::Resubmit));
        assert_eq!(r.start(100), (99, 1));
        done(r.on_read(1, 100)).unwrap();
        assert_eq!(r.done, 100);
        assert!(r.in_flight.is_none());
    }

    #[test]
    fn end_of_file_before_the_buffer_is_full_is_unexpected_eof() {
        let mut r = RingRead::new(3);
        r.start(100);
        assert!(matches!(r.on_read(30, 100), ReadStep::Resubmit));
        assert_eq!(r.start(100), (30, 70));
        let e = done(r.on_read(0, 100)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn eintr_and_eagain_resubmit_the_same_range_and_errors_finish() {
        let mut r = RingRead::new(3);
        r.start(10);
        assert!(matches!(r.on_read(-libc::EINTR, 10), ReadStep::Resubmit));
        assert_eq!(r.start(10), (0, 10));
        assert!(matches!(r.on_read(-libc::EAGAIN, 10), ReadStep::Resubmit));
        assert_eq!(r.start(10), (0, 10));
        let e = done(r.on_read(-libc::EIO, 10)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        // Cancelled by the kernel (no io-wq worker under a thread limit): never ran, so a plain
        // read finishes it; it used to fail the value read with ECANCELED.
        r.start(10);
        assert!(matches!(r.on_read(-libc::ECANCELED, 10), ReadStep::Plain));
    }

    #[test]
    fn endless_eagain_on_a_read_gives_up() {
        let mut r = RingRead::new(3);
        for _ in 0..MAX_STALLED_RETRIES {
            r.start(10);
            assert!(matches!(r.on_read(-libc::EAGAIN, 10), ReadStep::Resubmit));
        }
        r.start(10);
        assert!(done(r.on_read(-libc::EAGAIN, 10)).is_err());
    }

    #[test]
    fn an_overlong_read_result_is_an_error() {
        let mut r = RingRead::new(3);
        r.start(10);
        assert!(done(r.on_read(11, 10)).is_err());
    }

    #[test]
    fn huge_reads_are_chunked() {
        let len = 2 * MAX_CHUNK + 5;
        let mut r = RingRead::new(3);
        assert_eq!(r.start(len), (0, MAX_CHUNK));
        assert!(matches!(
            r.on_read(MAX_CHUNK as i32, len),
            ReadStep::Resubmit
        ));
        assert_eq!(r.start(len), (MAX_CHUNK, MAX_CHUNK));
        assert!(matches!(
            r.on_read(MAX_CHUNK as i32, len),
            ReadStep::Resubmit
        ));
        assert_eq!(r.start(len), (2 * MAX_CHUNK, 5));
        done(r.on_read(5, len)).unwrap();
    }

    /// A file of `len` pattern bytes in `dir`.
    fn pattern_file(dir: &std::path::Path, name: &str, len: usize) -> (crate::PosixFile, Vec<u8>) {
        let bytes = pattern(len as u64, len);
        std::fs::write(dir.join(name), &bytes).unwrap();
        let file = crate::PosixFile::open(&dir.join(name), OpenOptions::default()).unwrap();
        (file, bytes)
    }

    #[test]
    fn a_batch_larger_than_the_ring_is_fed_to_it_as_reads_complete() {
        if !have_uring() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (file, bytes) = pattern_file(dir.path(), "f", 100_000);
        let (mut ring, _) = build_shared_ring(4).unwrap();
        let spans: Vec<(usize, usize)> = (0..50).map(|i| (i * 1999 % 90_000, 1 + i * 97)).collect();
        let mut bufs: Vec<Vec<u8>> = spans.iter().map(|&(_, len)| vec![0; len]).collect();
        let mut reads: Vec<BatchRead<'_>> = spans
            .iter()
            .zip(&mut bufs)
            .map(|(&(at, _), buf)| BatchRead::new(&file, at as u64, buf))
            .collect();
        let on_ring: Vec<(usize, RawFd)> = (0..reads.len())
            .map(|i| (i, file.raw_fd().unwrap()))
            .collect();
        read_on_ring(&mut ring, &mut reads, &on_ring, STALL_SLICES).unwrap();
        assert!(reads.iter().all(|r| matches!(r.result, Some(Ok(())))));
        drop(reads);
        for (&(at, len), buf) in spans.iter().zip(&bufs) {
            assert!(buf[..] == bytes[at..at + len], "read at {at}, {len} bytes");
        }
        // The ring is idle again: nothing queued, nothing to reap.
        assert!(ring.submission().is_empty());
        assert!(ring.completion().is_empty());
    }

    /// A read batch whose ring read never completes cancels it after the stall limit and
    /// returns it without a result (the caller reads it with a plain read); reads of the batch
    /// that completed keep theirs, and the ring is idle afterwards (it goes back to a pool).
    #[test]
    fn a_stalled_read_batch_cancels_and_leaves_the_rest_to_plain_reads() {
        if !have_uring() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (file, bytes) = pattern_file(dir.path(), "f", 10_000);
        let silent = PipeFile::silent(0x5A);
        let (mut ring, _) = build_shared_ring(4).unwrap();
        let (mut a, mut b, mut c) = (vec![0u8; 100], vec![0u8; 64], vec![0u8; 200]);
        let mut reads = vec![
            BatchRead::new(&file, 10, &mut a),
            BatchRead::new(&silent, 0, &mut b),
            BatchRead::new(&file, 5_000, &mut c),
        ];
        let on_ring: Vec<(usize, RawFd)> = reads
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r.file.raw_fd().unwrap()))
            .collect();
        read_on_ring(&mut ring, &mut reads, &on_ring, 2).unwrap();
        assert!(matches!(reads[0].result, Some(Ok(()))));
        assert!(
            reads[1].result.is_none(),
            "the stalled read is left to the caller"
        );
        assert!(matches!(reads[2].result, Some(Ok(()))));
        assert!(ring.submission().is_empty());
        assert!(ring.completion().is_empty());
        drop(reads);
        assert_eq!(a, bytes[10..110]);
        assert_eq!(c, bytes[5_000..5_200]);

        // Through `read_batch` (a 5-s stall) the stalled read ends as a plain read.
        let vfs = UringVfs::new("test".into());
        let mut b = vec![0u8; 64];
        let mut reads = vec![BatchRead::new(&silent, 0, &mut b)];
        vfs.read_batch(&mut reads);
        assert!(matches!(reads[0].result, Some(Ok(()))));
        drop(reads);
        assert_eq!(b, vec![0x5A; 64]);
    }

    #[test]
    fn read_batch_returns_its_ring_to_the_pool() {
        if !have_uring() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (file, bytes) = pattern_file(dir.path(), "f", 10_000);
        let vfs = UringVfs::new("test".into());
        for _ in 0..3 {
            let (mut a, mut b) = (vec![0; 100], vec![0; 5000]);
            let mut reads = [
                BatchRead::new(&file, 0, &mut a),
                BatchRead::new(&file, 4000, &mut b),
            ];
            vfs.read_batch(&mut reads);
            assert!(reads.iter().all(|r| matches!(r.result, Some(Ok(())))));
            assert!(a[..] == bytes[..100] && b[..] == bytes[4000..9000]);
            assert_eq!(vfs.read_rings.lock().len(), 1, "one ring, reused");
        }
    }

    #[test]
    fn the_read_ring_pool_is_capped() {
        if !have_uring() {
            return;
        }
        let vfs = UringVfs::new("test".into());
        let rings: Vec<IoUring> = (0..READ_RING_POOL + 2)
            .map(|_| vfs.take_read_ring().unwrap())
            .collect();
        assert!(vfs.read_rings.lock().is_empty());
        for ring in rings {
            vfs.put_read_ring(ring);
        }
        assert_eq!(vfs.read_rings.lock().len(), READ_RING_POOL);
        let _taken = vfs.take_read_ring().unwrap();
        assert_eq!(vfs.read_rings.lock().len(), READ_RING_POOL - 1);
    }
}
