//! The io_uring log driver on a real ring: commits on buffered and `O_DIRECT` files, the waiter,
//! wake-ups across threads, and error propagation. Every test is skipped (with a message) only
//! when io_uring is unavailable on the machine running it.

use std::io;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use ringlog_format::AlignedBuf;
use ringlog_uring::{
    probe_uring, LogDriver, OpenOptions, PosixFile, SyncStrategy, UringDriver, UringVfs, VFile,
    Vfs, Waker,
};

/// Returns from the test (after saying so) when the kernel offers no usable io_uring.
macro_rules! require_uring {
    () => {
        if let Err(why) = probe_uring() {
            eprintln!("SKIPPED: io_uring unavailable here: {why}");
            return;
        }
    };
}

const BOTH: [SyncStrategy; 2] = [SyncStrategy::WriteThenSync, SyncStrategy::Dsync];

fn open(path: &Path, write: bool, direct: bool) -> PosixFile {
    PosixFile::open(
        path,
        OpenOptions {
            write,
            create: write,
            direct,
        },
    )
    .unwrap()
}

/// `len` bytes of a pattern that differs per `seed`, so misplaced writes show.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(0x9e37_79b9)) as u8)
        .collect()
}

fn aligned(bytes: &[u8]) -> AlignedBuf {
    assert_eq!(bytes.len() % AlignedBuf::ALIGN, 0);
    let mut buf = AlignedBuf::with_capacity(bytes.len());
    buf.extend_from_slice(bytes);
    buf
}

#[test]
fn probe_describes_the_ring() {
    require_uring!();
    let desc = probe_uring().unwrap();
    assert!(desc.contains("NODROP"), "{desc}");
    let d = UringDriver::new().unwrap();
    eprintln!("{desc}; driver ring: {}", d.setup_flags());
}

#[test]
fn vfs_hands_out_the_ring_driver() {
    require_uring!();
    let dir = tempfile::tempdir().unwrap();
    let vfs = UringVfs::new("test".into());
    let file = vfs
        .open(
            &dir.path().join("log"),
            OpenOptions {
                write: true,
                create: true,
                direct: false,
            },
        )
        .unwrap();
    let mut d = vfs.log_driver().unwrap();
    d.write_durable(&*file, 0, b"hello", SyncStrategy::WriteThenSync)
        .unwrap();
    let info = vfs.backend();
    assert_eq!(info.kind, ringlog_uring::BackendKind::Uring);
    assert_eq!(
        info.reason, "test",
        "the ring driver must not have fallen back"
    );
    let mut back = [0u8; 5];
    file.read_exact_at(&mut back, 0).unwrap();
    assert_eq!(&back, b"hello");
}

#[test]
fn buffered_file_both_strategies_read_back() {
    require_uring!();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let file = open(&path, true, false);
    let mut d = UringDriver::new().unwrap();
    let a = pattern(1, 170);
    let b = pattern(2, 3000);
    d.write_durable(&file, 0, &a, SyncStrategy::WriteThenSync)
        .unwrap();
    d.write_durable(&file, a.len() as u64, &b, SyncStrategy::Dsync)
        .unwrap();
    let back = std::fs::read(&path).unwrap();
    assert_eq!(back, [a, b].concat());
    assert_eq!(d.stats().commits, 2);
}

#[test]
fn direct_file_both_strategies_read_back() {
    require_uring!();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("log");
    let file = open(&path, true, true);
    if file.direct_io().is_none() {
        eprintln!("SKIPPED: this filesystem refuses O_DIRECT");
        return;
    }
    file.allocate(64 * 1024).unwrap();
    let mut d = UringDriver::new().unwrap();
    let mut expected = vec![0u8; 64 * 1024];
    for (i, strategy) in BOTH.into_iter().enumerate() {
        let block = pattern(10 + i as u64, 8192);
        let buf = aligned(&block);
        let offset = i * 8192;
        d.write_durable(&file, offset as u64, buf.as_slice(), strategy)
            .unwrap();
        expected[offset..offset + 8192].copy_from_slice(&block);
    }
    assert_eq!(std::fs::read(&path).unwrap(), expected);
}

#[test]
fn many_sequential_appends_buffered_and_direct() {
    require_uring!();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();

    // Buffered: 400 appends of 512-byte padded records, alternating strategies.
    let path = dir.path().join("buffered");
    let file = open(&path, true, false);
    let mut d = UringDriver::new().unwrap();
    let mut expected = Vec::new();
    for i in 0..400u64 {
        let rec = pattern(i, 512);
        d.write_durable(&file, expected.len() as u64, &rec, BOTH[i as usize % 2])
            .unwrap();
        expected.extend_from_slice(&rec);
    }
    assert_eq!(std::fs::read(&path).unwrap(), expected);

    // O_DIRECT: 200 appends of one 4 KiB block each on a preallocated file, same driver.
    let path = dir.path().join("direct");
    let file = open(&path, true, true);
    if file.direct_io().is_none() {
        eprintln!("SKIPPED (direct half): this filesystem refuses O_DIRECT");
        return;
    }
    file.allocate(200 * 4096).unwrap();
    let mut expected = Vec::new();
    for i in 0..200u64 {
        let block = pattern(1000 + i, 4096);
        let buf = aligned(&block);
        d.write_durable(
            &file,
            expected.len() as u64,
            buf.as_slice(),
            BOTH[i as usize % 2],
        )
        .unwrap();
        expected.extend_from_slice(&block);
    }
    assert_eq!(std::fs::read(&path).unwrap(), expected);
    let stats = d.stats();
    assert_eq!(stats.commits, 600);
    eprintln!("{stats:?}");
}

#[test]
fn wait_with_a_timeout_returns() {
    require_uring!();
    let mut d = UringDriver::new().unwrap();
    for _ in 0..20 {
        d.wait(Some(Duration::from_millis(1))).unwrap();
    }
    d.wait(Some(Duration::ZERO)).unwrap();
    assert!(d.stats().timer_expiries >= 1);
}

#[test]
fn wake_before_wait_returns_at_once() {
    require_uring!();
    let mut d = UringDriver::new().unwrap();
    let waker = d.waker();
    waker.wake();
    d.wait(None).unwrap(); // a lost wake would hang here
                           // Several wakes before one wait coalesce; the next timed wait still returns.
    waker.wake();
    waker.wake();
    d.wait(None).unwrap();
    d.wait(Some(Duration::from_millis(1))).unwrap();
    // A wake after a timed-out wait (poll still armed) is seen by the next wait.
    waker.wake();
    d.wait(None).unwrap();
    assert!(d.stats().wakeups >= 3);
}

#[test]
fn wake_from_another_thread_unblocks_wait_without_timeout() {
    require_uring!();
    const ROUNDS: usize = 200;
    let (waker_tx, waker_rx) = mpsc::channel::<Arc<dyn Waker>>();
    let (ack_tx, ack_rx) = mpsc::channel::<()>();
    let waiter = thread::spawn(move || {
        let mut d = UringDriver::new().unwrap();
        waker_tx.send(d.waker()).unwrap();
        for _ in 0..ROUNDS {
            d.wait(None).unwrap();
            ack_tx.send(()).unwrap();
        }
        d.stats()
    });
    let waker = waker_rx.recv().unwrap();
    // Each wake is sent after the previous wait returned, so each wait(None) has a wake of its
    // own — whether it lands before the waiter blocks or while it is blocked.
    for _ in 0..ROUNDS {
        waker.wake();
        ack_rx.recv().unwrap();
    }
    let stats = waiter.join().unwrap();
    assert!(stats.wakeups >= 1);
}

#[test]
fn a_wake_during_a_commit_is_not_lost() {
    require_uring!();
    let dir = tempfile::tempdir().unwrap();
    let file = open(&dir.path().join("log"), true, false);
    let mut d = UringDriver::new().unwrap();
    let waker = d.waker();
    d.wait(Some(Duration::from_millis(1))).unwrap(); // leaves the eventfd poll armed
    waker.wake(); // its completion may well be reaped by the commit below
    d.write_durable(&file, 0, b"x", SyncStrategy::WriteThenSync)
        .unwrap();
    d.wait(None).unwrap();
}

#[test]
fn a_failed_commit_reports_the_error_and_the_driver_stays_usable() {
    require_uring!();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    std::fs::write(&path, b"").unwrap();
    let read_only = open(&path, false, false);
    let writable = open(&dir.path().join("other"), true, false);
    let mut d = UringDriver::new().unwrap();
    for strategy in BOTH {
        let err = d
            .write_durable(&read_only, 0, b"nope", strategy)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{strategy:?}: {err}");
        d.write_durable(&writable, 0, b"fine", strategy).unwrap();
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"");
    d.wait(Some(Duration::from_millis(1))).unwrap();
    d.waker().wake();
    d.wait(None).unwrap();
}

#[test]
fn the_first_thread_to_use_the_driver_owns_it() {
    require_uring!();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let file = Arc::new(open(&path, true, false));
    // Created here, used first on another thread: that thread becomes the issuer.
    let d = UringDriver::new().unwrap();
    let single_issuer = d.setup_flags().contains("single_issuer");
    let f = file.clone();
    let mut d = thread::spawn(move || {
        let mut d = d;
        d.write_durable(&*f, 0, b"moved", SyncStrategy::Dsync)
            .unwrap();
        d.wait(Some(Duration::from_millis(1))).unwrap();
        d
    })
    .join()
    .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"moved");
    let here = d.write_durable(&*file, 0, b"again", SyncStrategy::Dsync);
    if single_issuer {
        let err = here.unwrap_err();
        assert!(err.to_string().contains("SINGLE_ISSUER"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"moved");
    } else {
        here.unwrap();
    }
    // Dropped off its thread with a poll armed: closes the ring without entering it.
    drop(d);
}

#[test]
fn the_waker_outlives_the_driver() {
    require_uring!();
    let mut d = UringDriver::new().unwrap();
    let waker = d.waker();
    d.wait(Some(Duration::from_millis(1))).unwrap(); // poll armed at drop
    drop(d);
    waker.wake();
    waker.wake();
}

#[test]
fn drop_reaps_a_pending_timer_removal() {
    require_uring!();
    let mut d = UringDriver::new().unwrap();
    d.waker().wake();
    // Returns through the poll; the 60 s timer is being removed when the driver is dropped.
    d.wait(Some(Duration::from_secs(60))).unwrap();
    drop(d);
}

/// A file the kernel does not know: the driver must fall back to the file's own methods.
struct NoFd(PosixFile);

impl VFile for NoFd {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn allocate(&self, len: u64) -> io::Result<ringlog_uring::Allocation> {
        self.0.allocate(len)
    }
    fn size(&self) -> io::Result<u64> {
        self.0.size()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn direct_io(&self) -> Option<usize> {
        None
    }
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
}

#[test]
fn files_without_a_descriptor_use_their_own_methods() {
    require_uring!();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let file = NoFd(open(&path, true, false));
    let mut d = UringDriver::new().unwrap();
    for (i, strategy) in BOTH.into_iter().enumerate() {
        d.write_durable(&file, i as u64 * 3, b"abc", strategy)
            .unwrap();
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"abcabc");
    assert_eq!(d.stats().commits, 0);
}

/// A submission to a file the kernel does not know (no descriptor) is written with the file's
/// own methods at once and still completes through `complete`, which returns it without waiting.
#[test]
fn a_submission_to_a_file_without_a_descriptor_completes_through_complete() {
    require_uring!();
    let dir = tempfile::tempdir().unwrap();
    let file: Arc<dyn VFile> = Arc::new(NoFd(open(&dir.path().join("log"), true, false)));
    let mut d = UringDriver::new().unwrap();
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut buf = AlignedBuf::with_capacity(4096);
    buf.extend_from_slice(&bytes);
    d.submit(ringlog_uring::Submission {
        file: file.clone(),
        offset: 4096,
        buf,
        strategy: SyncStrategy::WriteThenSync,
        token: 3,
    })
    .unwrap();
    // Already finished: returned at once (no timeout, no wake).
    let mut done = Vec::new();
    d.complete(&mut done, None).unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].token, 3);
    done[0].result.as_ref().unwrap();
    let mut back = vec![0u8; 4096];
    file.read_exact_at(&mut back, 4096).unwrap();
    assert_eq!(back, bytes);
    assert_eq!(d.stats().submissions, 0, "not a ring submission");
}
