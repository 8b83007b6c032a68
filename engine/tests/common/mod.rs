//! Shared helpers of the engine's integration tests: both I/O paths, options, scans, a
//! fault-injecting `Vfs`, and a tmpfs mount guard for disk-full tests.
//!
//! Every test runs on both I/O paths ([`paths`]), asked for explicitly: `RINGLOG_IO` decides only
//! for `IoChoice::Auto`, so both paths really run whatever the environment says. A path that is
//! unavailable (io_uring refused by the kernel, or not built yet) makes the test fail loudly: it is
//! never skipped silently.

#![allow(dead_code)]

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringlog_db::io::{
    BackendInfo, BackendKind, Completion, LogDriver, Submission, SyncStrategy, VFile, Vfs, Waker,
};
use ringlog_db::{Db, Durability, Error, IoChoice, Lsn, Options};

/// Segment size of most tests: small enough that tests rotate segments, and quick to zero-fill.
pub const SEG: u64 = 256 << 10;

/// The I/O paths every test runs on.
pub fn paths() -> [IoChoice; 2] {
    [IoChoice::Uring, IoChoice::Portable]
}

/// Short name of a path, for messages and for handing it to a child process.
pub fn io_name(io: IoChoice) -> &'static str {
    io.name()
}

/// Runs `f` once per I/O path. Every path runs even if an earlier one fails; then the test fails
/// naming each failed path (an unavailable path is a failure, not a skip).
pub fn on_each_path(f: impl Fn(IoChoice)) {
    let mut failed = Vec::new();
    for io in paths() {
        eprintln!("--- {} path", io_name(io));
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(io))) {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into());
            failed.push(format!("[{} path] {msg}", io_name(io)));
        }
    }
    assert!(
        failed.is_empty(),
        "failed on {} of {} I/O paths:\n{}",
        failed.len(),
        paths().len(),
        failed.join("\n")
    );
}

/// Options for `io` and `durability` with [`SEG`]-sized segments.
pub fn opts(io: IoChoice, durability: Durability) -> Options {
    Options::default()
        .durability(durability)
        .segment_size(SEG)
        .io(io)
}

/// Buffered with a window so long that only close, an explicit sync or `max_pending` syncs.
pub fn buffered_forever(max_pending: usize) -> Durability {
    Durability::Buffered {
        interval: Duration::from_secs(3600),
        max_pending,
    }
}

/// What a crash would leave of the database in `dir` now (its files as they are, the page
/// cache included), copied to a new temporary directory, without the `LOCK` file. A file that
/// vanishes while it is copied (the log thread renaming a segment it prepared) starts the copy
/// over, so that the copy holds one listing of the directory.
pub fn crash_copy(dir: &Path) -> tempfile::TempDir {
    'again: for _ in 0..100 {
        let crashed = tempdir();
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_name() == "LOCK" {
                continue;
            }
            match std::fs::copy(e.path(), crashed.path().join(e.file_name())) {
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue 'again,
                Err(err) => panic!("copying {}: {err}", e.path().display()),
            }
        }
        return crashed;
    }
    panic!("{} kept changing while it was copied", dir.display())
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ringlog-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// Opens `path`, failing the test loudly (with the path and the reason) if it cannot.
pub fn open(path: &Path, opts: Options) -> Db {
    let what = format!("{:?}", opts);
    let db = Db::open(path, opts.clone())
        .unwrap_or_else(|e| panic!("opening {} with {what} failed: {e}", path.display()));
    check_backend(&db, &opts);
    db
}

/// Asserts that the database really runs on the path its options asked for (unless `RINGLOG_IO`
/// overrides it or a custom `Vfs` is plugged in).
pub fn check_backend(db: &Db, opts: &Options) {
    if opts.vfs.is_some() || opts.durability == Durability::InMemory {
        return;
    }
    // `RINGLOG_IO` only decides for `Auto`: an explicit path is always the one used.
    let want = match opts.io {
        IoChoice::Uring => BackendKind::Uring,
        IoChoice::Portable => BackendKind::Portable,
        _ => return,
    };
    let got = db
        .stats()
        .backend
        .expect("a persistent database has a backend");
    assert_eq!(got.kind, want, "asked for {:?}, got {got:?}", opts.io);
}

/// The real `Vfs` of a path, failing loudly if it is unavailable.
pub fn real_vfs(io: IoChoice) -> Arc<dyn Vfs> {
    ringlog_db::io::select(io)
        .unwrap_or_else(|e| panic!("the {} I/O path is unavailable: {e}", io_name(io)))
}

/// The segment files (`*.log`) of `dir`, sorted by name (= by id).
#[allow(dead_code)] // not every test binary uses it
pub fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    v.sort();
    v
}

/// The bytes of the log segment files in `dir` (their lengths).
pub fn segment_bytes(dir: &Path) -> u64 {
    segment_files(dir)
        .iter()
        .map(|n| std::fs::metadata(dir.join(n)).unwrap().len())
        .sum()
}

/// One entry of a full scan.
pub type Entry = (Vec<u8>, Vec<u8>, Lsn);

/// Every live entry, in key order.
pub fn scan(db: &Db) -> Vec<Entry> {
    db.range::<&[u8], _>(..)
        .expect("range scan")
        .map(|item| item.expect("range scan entry"))
        .map(|(k, v)| (k.to_vec(), v.to_vec(), v.lsn()))
        .collect()
}

/// Asserts `key` holds `value` written at `lsn`.
pub fn assert_entry(db: &Db, key: &[u8], value: &[u8], lsn: Lsn) {
    let got = db
        .get(key)
        .unwrap_or_else(|e| panic!("get {:?}: {e}", String::from_utf8_lossy(key)))
        .unwrap_or_else(|| panic!("key {:?} is missing", String::from_utf8_lossy(key)));
    assert_eq!(&*got, value, "value of {:?}", String::from_utf8_lossy(key));
    assert_eq!(got.lsn(), lsn, "LSN of {:?}", String::from_utf8_lossy(key));
}

/// Polls `cond` until it holds. A liveness check, not a timing assertion: the generous `limit`
/// only turns a hang into a failure.
pub fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "{what}: still not true after {limit:?} (hang?)"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// True if `e`, or any error in its source chain, is "No space left on device" (ENOSPC).
pub fn is_enospc(e: &Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if io.raw_os_error() == Some(libc::ENOSPC) || io.kind() == io::ErrorKind::StorageFull {
                return true;
            }
        }
        if err.to_string().contains("No space left on device") {
            return true;
        }
        cur = err.source();
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Fault injection
// ---------------------------------------------------------------------------------------------

/// What a [`FaultDriver`] does on the failing call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Return EIO without writing anything.
    BeforeWrite,
    /// Perform the write and sync, then report EIO (an fdatasync that failed after the kernel
    /// already accepted the bytes: they may or may not be on disk).
    AfterWrite,
    /// Panic inside the driver (a bug in a custom `Vfs`, or an engine assertion on the log
    /// thread): the engine must poison, not leave committers waiting forever.
    Panic,
}

/// Shared configuration and counters of a fault-injecting disk.
#[derive(Debug)]
pub struct Faults {
    /// `LogDriver::write_durable` calls so far.
    pub calls: AtomicUsize,
    /// The 1-based call that fails (once); 0: never.
    pub fail_at: AtomicUsize,
    /// What the failing call does.
    pub mode: FailMode,
    /// Set once the fault was injected.
    pub fired: AtomicBool,
}

impl Faults {
    /// Fails the `fail_at`-th `write_durable` call (1-based; 0: never).
    pub fn new(fail_at: usize, mode: FailMode) -> Arc<Faults> {
        Arc::new(Faults {
            calls: AtomicUsize::new(0),
            fail_at: AtomicUsize::new(fail_at),
            mode,
            fired: AtomicBool::new(false),
        })
    }
}

/// A `Vfs` that delegates to a real one, and whose durable writes — its log driver's and a
/// committer's own (`write_durable_here`), counted together — fail the `fail_at`-th with EIO.
pub struct FaultVfs {
    inner: Arc<dyn Vfs>,
    faults: Arc<Faults>,
}

impl FaultVfs {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Vfs>, faults: Arc<Faults>) -> Arc<FaultVfs> {
        Arc::new(FaultVfs { inner, faults })
    }
}

impl Vfs for FaultVfs {
    fn backend(&self) -> BackendInfo {
        let inner = self.inner.backend();
        BackendInfo::new(
            BackendKind::Custom,
            format!("fault injection over {} ({})", inner.kind, inner.reason),
        )
    }
    ringlog_db::io::forward_fs_ops!(inner);
    fn log_driver(&self) -> io::Result<Box<dyn LogDriver>> {
        Ok(Box::new(FaultDriver {
            inner: self.inner.log_driver()?,
            faults: self.faults.clone(),
            failed: Vec::new(),
            fail_token: None,
        }))
    }
    fn writes_here(&self) -> bool {
        true
    }
    fn write_durable_here(
        &self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        self.faults.write(file, offset, buf, |f, o, b| {
            self.inner.write_durable_here(f, o, b, strategy)
        })
    }
}

impl Faults {
    /// One durable write through `write`, unless it is the one to fail.
    fn write(
        &self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        mut write: impl FnMut(&dyn VFile, u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n != self.fail_at.load(Ordering::SeqCst) {
            return write(file, offset, buf);
        }
        if self.mode == FailMode::Panic {
            self.fired.store(true, Ordering::SeqCst);
            panic!("injected panic in a durable write (expected by the test)");
        }
        if self.mode == FailMode::AfterWrite {
            // The outcome of the real write does not matter: the caller is told it failed.
            let _ = write(file, offset, buf);
        }
        self.fired.store(true, Ordering::SeqCst);
        Err(io::Error::from_raw_os_error(libc::EIO))
    }
}

/// The log driver of a [`FaultVfs`]. Its writes in flight (`submit`) count as durable writes
/// too: the failing one never reaches the inner driver (`BeforeWrite`), or does and completes
/// with EIO (`AfterWrite`).
pub struct FaultDriver {
    inner: Box<dyn LogDriver>,
    faults: Arc<Faults>,
    /// Completions of submissions failed before they reached the inner driver.
    failed: Vec<Completion>,
    /// The submission that reached the inner driver but must complete with EIO.
    fail_token: Option<u64>,
}

impl LogDriver for FaultDriver {
    fn write_durable(
        &mut self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        let inner = &mut self.inner;
        self.faults.write(file, offset, buf, |f, o, b| {
            inner.write_durable(f, o, b, strategy)
        })
    }
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.wait(timeout)
    }
    fn waker(&self) -> Arc<dyn Waker> {
        self.inner.waker()
    }
    fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight()
    }
    fn submit(&mut self, s: Submission) -> io::Result<()> {
        let n = self.faults.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n != self.faults.fail_at.load(Ordering::SeqCst) {
            return self.inner.submit(s);
        }
        self.faults.fired.store(true, Ordering::SeqCst);
        match self.faults.mode {
            FailMode::Panic => panic!("injected panic in a durable write (expected by the test)"),
            FailMode::AfterWrite => {
                self.fail_token = Some(s.token);
                self.inner.submit(s)
            }
            FailMode::BeforeWrite => {
                self.failed.push(Completion {
                    token: s.token,
                    buf: s.buf,
                    result: Err(io::Error::from_raw_os_error(libc::EIO)),
                });
                Ok(())
            }
        }
    }
    fn complete(
        &mut self,
        done: &mut Vec<Completion>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        if !self.failed.is_empty() {
            done.append(&mut self.failed);
            return Ok(());
        }
        let from = done.len();
        self.inner.complete(done, timeout)?;
        for c in &mut done[from..] {
            if Some(c.token) == self.fail_token {
                // The outcome of the real write does not matter: the caller is told it failed.
                c.result = Err(io::Error::from_raw_os_error(libc::EIO));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// tmpfs for disk-full tests (needs root)
// ---------------------------------------------------------------------------------------------

/// A tmpfs mounted on a fresh temporary directory, unmounted on drop.
pub struct Tmpfs {
    // `Drop` unmounts first; then this field drops and removes the (empty) mount point.
    dir: tempfile::TempDir,
    path: PathBuf,
}

/// Set to `1` to skip (with a loud message) the tests that need root (mount).
pub const SKIP_ROOT_TESTS: &str = "RINGLOG_SKIP_ROOT_TESTS";

fn run(cmd: &mut Command) -> Result<(), String> {
    let desc = format!("{cmd:?}");
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "{desc} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("{desc} could not run: {e}")),
    }
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "2m"). Without the privilege to mount, fails the test unless
    /// `RINGLOG_SKIP_ROOT_TESTS=1`, in which case it prints a loud notice and returns `None`.
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempdir();
        let path = dir.path().to_path_buf();
        let res = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size}"))
            .arg("tmpfs")
            .arg(&path));
        match res {
            Ok(()) => Some(Tmpfs { dir, path }),
            Err(why) if std::env::var(SKIP_ROOT_TESTS).as_deref() == Ok("1") => {
                eprintln!(
                    "\n!!!!!!!! SKIPPED: cannot mount a tmpfs ({why}); {SKIP_ROOT_TESTS}=1 is set !!!!!!!!\n"
                );
                None
            }
            Err(why) => panic!(
                "this test needs root to mount a tmpfs, and mounting failed: {why}. \
                 Run as root, or set {SKIP_ROOT_TESTS}=1 to skip it explicitly."
            ),
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes the size limit, keeping the contents.
    pub fn resize(&self, size: &str) {
        run(Command::new("mount")
            .arg("-o")
            .arg(format!("remount,size={size}"))
            .arg(&self.path))
        .unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new("umount").arg(&self.path)) {
            eprintln!("{e}; unmounting lazily");
            if let Err(e) = run(Command::new("umount").arg("-l").arg(&self.path)) {
                eprintln!("{e}: {} stays mounted", self.path.display());
            }
        }
    }
}

/// The workspace's seeded generator (SplitMix64); each test prints its seeds.
#[allow(unused_imports)] // not every test binary uses it
pub use ringlog_rng::Rng;

// ---------------------------------------------------------------------------------------------
// A real file with some of its calls changed
// ---------------------------------------------------------------------------------------------

/// What a [`HookedFile`] changes of a real file: each method is the [`VFile`] method of the same
/// name, given the real file, and forwards to it unless a test overrides it.
pub trait FileHooks: Send + Sync + 'static {
    fn write_all_at(&self, inner: &dyn VFile, buf: &[u8], offset: u64) -> io::Result<()> {
        inner.write_all_at(buf, offset)
    }
    fn sync_data(&self, inner: &dyn VFile) -> io::Result<()> {
        inner.sync_data()
    }
    fn sync_all(&self, inner: &dyn VFile) -> io::Result<()> {
        inner.sync_all()
    }
}

/// A real file whose calls go through `hooks` (the forwarding is written once, here).
pub struct HookedFile<H> {
    pub inner: Box<dyn VFile>,
    pub hooks: H,
}

impl<H: FileHooks> VFile for HookedFile<H> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.hooks.write_all_at(&*self.inner, buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.hooks.sync_data(&*self.inner)
    }
    fn sync_all(&self) -> io::Result<()> {
        self.hooks.sync_all(&*self.inner)
    }
    fn allocate(&self, len: u64) -> io::Result<ringlog_db::io::Allocation> {
        self.inner.allocate(len)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn direct_io(&self) -> Option<usize> {
        self.inner.direct_io()
    }
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.raw_fd()
    }
}

// ---------------------------------------------------------------------------------------------
// A real disk with some of its calls changed
// ---------------------------------------------------------------------------------------------

/// What a test's [`Hooked`] disk changes of a real one: each method is the [`Vfs`] method of the
/// same name, given the real disk, and forwards to it unless a test overrides it — so a test
/// writes only what it changes (the forwarding is written once, here).
pub trait Hooks: Send + Sync + 'static {
    fn open(
        &self,
        inner: &dyn Vfs,
        path: &Path,
        opts: ringlog_db::io::OpenOptions,
    ) -> io::Result<Box<dyn VFile>> {
        inner.open(path, opts)
    }
    fn create_dir_all(&self, inner: &dyn Vfs, path: &Path) -> io::Result<()> {
        inner.create_dir_all(path)
    }
    fn sync_dir(&self, inner: &dyn Vfs, path: &Path) -> io::Result<()> {
        inner.sync_dir(path)
    }
    fn filesystem(&self, inner: &dyn Vfs, path: &Path) -> io::Result<ringlog_db::io::FsInfo> {
        inner.filesystem(path)
    }
    fn will_block(&self, inner: &dyn Vfs, why: ringlog_db::io::BlockReason) {
        inner.will_block(why)
    }
    fn now(&self, inner: &dyn Vfs) -> Instant {
        inner.now()
    }
    fn log_driver(&self, inner: &dyn Vfs) -> io::Result<Box<dyn LogDriver>> {
        inner.log_driver()
    }
    fn writes_here(&self, inner: &dyn Vfs) -> bool {
        inner.writes_here()
    }
    fn write_durable_here(
        &self,
        inner: &dyn Vfs,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        inner.write_durable_here(file, offset, buf, strategy)
    }
}

/// A `Vfs` that delegates everything to a real one (its ring, file writer and batch reads too),
/// except what its [`Hooks`] change.
pub struct Hooked<H> {
    pub inner: Arc<dyn Vfs>,
    pub hooks: H,
}

impl<H: Hooks> Hooked<H> {
    /// `inner` changed by `hooks`.
    pub fn new(inner: Arc<dyn Vfs>, hooks: H) -> Arc<Hooked<H>> {
        Arc::new(Hooked { inner, hooks })
    }
}

impl<H> std::ops::Deref for Hooked<H> {
    type Target = H;
    fn deref(&self) -> &H {
        &self.hooks
    }
}

impl<H: Hooks> Vfs for Hooked<H> {
    fn backend(&self) -> BackendInfo {
        self.inner.backend()
    }
    fn file_writer<'a>(&self, file: &'a dyn VFile) -> Box<dyn ringlog_db::io::FileWriter + 'a> {
        self.inner.file_writer(file)
    }
    fn read_batch(&self, reads: &mut [ringlog_db::io::BatchRead<'_>]) {
        self.inner.read_batch(reads)
    }
    fn open(&self, path: &Path, opts: ringlog_db::io::OpenOptions) -> io::Result<Box<dyn VFile>> {
        self.hooks.open(&*self.inner, path, opts)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.hooks.create_dir_all(&*self.inner, path)
    }
    fn kind_of(&self, path: &Path) -> io::Result<Option<ringlog_db::io::EntryKind>> {
        self.inner.kind_of(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.hooks.sync_dir(&*self.inner, path)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn ringlog_db::io::FileLock>> {
        self.inner.lock(path)
    }
    fn lock_held(&self, path: &Path) -> io::Result<bool> {
        self.inner.lock_held(path)
    }
    fn filesystem(&self, path: &Path) -> io::Result<ringlog_db::io::FsInfo> {
        self.hooks.filesystem(&*self.inner, path)
    }
    fn log_driver(&self) -> io::Result<Box<dyn LogDriver>> {
        self.hooks.log_driver(&*self.inner)
    }
    fn writes_here(&self) -> bool {
        self.hooks.writes_here(&*self.inner)
    }
    fn write_durable_here(
        &self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        self.hooks
            .write_durable_here(&*self.inner, file, offset, buf, strategy)
    }
    fn now(&self) -> Instant {
        self.hooks.now(&*self.inner)
    }
    fn will_block(&self, why: ringlog_db::io::BlockReason) {
        self.hooks.will_block(&*self.inner, why)
    }
}

// ---------------------------------------------------------------------------------------------
// A MANIFEST that cannot be replaced
// ---------------------------------------------------------------------------------------------

/// [`Hooks`] of a disk on which, while `full` is set, creating the MANIFEST's temporary file
/// (every MANIFEST update starts so) fails with ENOSPC.
pub struct FullForManifests {
    pub full: Arc<AtomicBool>,
    /// MANIFEST updates refused so far.
    pub refused: AtomicUsize,
}

impl FullForManifests {
    /// `inner` with MANIFEST updates failing while `full` is set.
    pub fn new(inner: Arc<dyn Vfs>, full: Arc<AtomicBool>) -> Arc<Hooked<FullForManifests>> {
        Hooked::new(
            inner,
            FullForManifests {
                full,
                refused: AtomicUsize::new(0),
            },
        )
    }
}

impl Hooks for FullForManifests {
    fn open(
        &self,
        inner: &dyn Vfs,
        path: &Path,
        opts: ringlog_db::io::OpenOptions,
    ) -> io::Result<Box<dyn VFile>> {
        if self.full.load(Ordering::SeqCst) && path.file_name().is_some_and(|n| n == "MANIFEST.tmp")
        {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        inner.open(path, opts)
    }
}

// ---------------------------------------------------------------------------------------------
// A durable write held at a gate
// ---------------------------------------------------------------------------------------------

/// What a [`GatedWrites`] disk tells the test and is told by it.
#[derive(Default)]
pub struct WriteGate {
    state: std::sync::Mutex<GateState>,
    cv: std::sync::Condvar,
}

#[derive(Default)]
struct GateState {
    /// The next durable log write waits at the gate.
    armed: bool,
    /// A write is waiting at the gate.
    holding: bool,
    /// The threads of the `Strict` commits that blocked waiting for their sync
    /// (`Vfs::will_block`), in order.
    durable_waits: Vec<std::thread::ThreadId>,
    /// Every thread that blocked for any reason (`Vfs::will_block`), in order.
    blocked: Vec<std::thread::ThreadId>,
}

impl WriteGate {
    /// Holds the next durable log write (a round of the log thread's or a committer's own).
    pub fn arm(&self) {
        self.state.lock().unwrap().armed = true;
    }

    /// Waits until a write is held at the gate.
    pub fn wait_holding(&self) {
        let mut s = self.state.lock().unwrap();
        while !s.holding {
            s = self.cv.wait(s).unwrap();
        }
    }

    /// Waits until a `Strict` commit of thread `thread` has blocked waiting for its sync.
    pub fn wait_durable_wait_of(&self, thread: std::thread::ThreadId) {
        let mut s = self.state.lock().unwrap();
        while !s.durable_waits.contains(&thread) {
            s = self.cv.wait(s).unwrap();
        }
    }

    /// Waits until thread `thread` has blocked for any reason (`Vfs::will_block`: a sync, a
    /// durable LSN, space, or the visibility of earlier commits).
    pub fn wait_blocked(&self, thread: std::thread::ThreadId) {
        let mut s = self.state.lock().unwrap();
        while !s.blocked.contains(&thread) {
            s = self.cv.wait(s).unwrap();
        }
    }

    /// Notes that the calling thread is ending (it returned or panicked): [`WriteGate::wait_blocked`]
    /// for it returns, instead of waiting for ever. Call it from a drop guard.
    pub fn exiting(&self) {
        self.state
            .lock()
            .unwrap()
            .blocked
            .push(std::thread::current().id());
        self.cv.notify_all();
    }

    /// Lets the held write go on (and every later one).
    pub fn release(&self) {
        let mut s = self.state.lock().unwrap();
        s.armed = false;
        s.holding = false;
        self.cv.notify_all();
    }

    fn pass(&self) {
        let mut s = self.state.lock().unwrap();
        if !s.armed {
            return;
        }
        s.armed = false;
        s.holding = true;
        self.cv.notify_all();
        while s.holding {
            s = self.cv.wait(s).unwrap();
        }
    }
}

/// [`Hooks`] of a disk on which, once its gate is armed, the next durable log write — its
/// driver's or a committer's own (`write_durable_here`) — waits until the test releases it; it
/// also counts `Strict` commits that block waiting for their sync. For tests that need one commit
/// held between its LSN and its publication while others go on.
pub struct GatedWrites {
    gate: Arc<WriteGate>,
}

impl GatedWrites {
    /// `inner` behind `gate`.
    pub fn new(inner: Arc<dyn Vfs>, gate: Arc<WriteGate>) -> Arc<Hooked<GatedWrites>> {
        Hooked::new(inner, GatedWrites { gate })
    }
}

impl Hooks for GatedWrites {
    fn will_block(&self, inner: &dyn Vfs, why: ringlog_db::io::BlockReason) {
        let me = std::thread::current().id();
        {
            let mut s = self.gate.state.lock().unwrap();
            if why == ringlog_db::io::BlockReason::CommitDurable {
                s.durable_waits.push(me);
            }
            s.blocked.push(me);
        }
        self.gate.cv.notify_all();
        inner.will_block(why);
    }
    fn log_driver(&self, inner: &dyn Vfs) -> io::Result<Box<dyn LogDriver>> {
        Ok(Box::new(GatedDriver {
            inner: inner.log_driver()?,
            gate: self.gate.clone(),
        }))
    }
    fn write_durable_here(
        &self,
        inner: &dyn Vfs,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        self.gate.pass();
        inner.write_durable_here(file, offset, buf, strategy)
    }
}

/// The log driver of a [`GatedWrites`] disk: rounds one at a time (no `submit`).
struct GatedDriver {
    inner: Box<dyn LogDriver>,
    gate: Arc<WriteGate>,
}

impl LogDriver for GatedDriver {
    fn write_durable(
        &mut self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        self.gate.pass();
        self.inner.write_durable(file, offset, buf, strategy)
    }
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.wait(timeout)
    }
    fn waker(&self) -> Arc<dyn Waker> {
        self.inner.waker()
    }
}

// ---------------------------------------------------------------------------------------------
// A real log driver whose sleeps and wakes a test observes
// ---------------------------------------------------------------------------------------------

/// What a test's [`WatchedDriver`] tells it: called around the log thread's sleeps in the driver
/// and before each wake of it (from any thread). Defaults do nothing.
pub trait DriverHooks: Send + Sync + 'static {
    /// The log thread is about to sleep in the driver (`LogDriver::wait`).
    fn sleeping(&self) {}
    /// The log thread is back from its sleep.
    fn awake(&self) {}
    /// A thread is about to wake the log thread (`Waker::wake`).
    fn waking(&self) {}
}

/// A real log driver (its writes, sleeps and wakes unchanged) reporting to `hooks`.
pub struct WatchedDriver<H> {
    pub inner: Box<dyn LogDriver>,
    pub hooks: Arc<H>,
}

impl<H: DriverHooks> WatchedDriver<H> {
    /// `inner`'s log driver, watched by `hooks`: what [`Hooks::log_driver`] returns.
    pub fn of(inner: &dyn Vfs, hooks: &Arc<H>) -> io::Result<Box<dyn LogDriver>> {
        Ok(Box::new(WatchedDriver {
            inner: inner.log_driver()?,
            hooks: hooks.clone(),
        }))
    }
}

impl<H: DriverHooks> LogDriver for WatchedDriver<H> {
    fn write_durable(
        &mut self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        self.inner.write_durable(file, offset, buf, strategy)
    }
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.hooks.sleeping();
        let r = self.inner.wait(timeout);
        self.hooks.awake();
        r
    }
    fn waker(&self) -> Arc<dyn Waker> {
        Arc::new(WatchedWaker {
            inner: self.inner.waker(),
            hooks: self.hooks.clone(),
        })
    }
}

struct WatchedWaker<H> {
    inner: Arc<dyn Waker>,
    hooks: Arc<H>,
}

impl<H: DriverHooks> Waker for WatchedWaker<H> {
    fn wake(&self) {
        self.hooks.waking();
        self.inner.wake()
    }
}
