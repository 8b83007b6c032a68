//! The portable backend: positional syscalls, `fdatasync`, and a condition variable as timer.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::{
    warn_once, Allocation, BackendInfo, BackendKind, EntryKind, FileLock, LogDriver, OpenOptions,
    SyncStrategy, VFile, Vfs, Waker,
};

static DIRECT_FALLBACK: Once = Once::new();
static FALLOCATE_FALLBACK: Once = Once::new();
static DSYNC_FALLBACK: Once = Once::new();

/// Alignment used for `O_DIRECT` I/O: one 4 KiB block, which satisfies every logical block size up
/// to 4 KiB (the engine never opens `O_DIRECT` where the device needs more).
pub const DIRECT_ALIGN: usize = 4096;

/// Retries `f` while it fails with `EINTR`.
pub(crate) fn retry_eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// A file of the real filesystem.
#[derive(Debug)]
pub struct PosixFile {
    file: File,
    direct: bool,
}

impl PosixFile {
    /// Opens `path` per `opts`, falling back from `O_DIRECT` to buffered I/O when the filesystem
    /// refuses it (logged once per process).
    ///
    /// # Errors
    ///
    /// The operating system's error (or the backend's), unchanged.
    pub fn open(path: &Path, opts: OpenOptions) -> io::Result<PosixFile> {
        let base = || {
            let mut o = std::fs::OpenOptions::new();
            o.read(true)
                .write(opts.write)
                .create(opts.create && opts.write);
            o
        };
        if opts.direct {
            match base().custom_flags(libc::O_DIRECT).open(path) {
                Ok(file) => return Ok(PosixFile { file, direct: true }),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => warn_once(
                    &DIRECT_FALLBACK,
                    format_args!(
                        "O_DIRECT refused on {} (EINVAL); using buffered I/O",
                        path.display()
                    ),
                ),
                Err(e) => return Err(e),
            }
        }
        Ok(PosixFile {
            file: base().open(path)?,
            direct: false,
        })
    }

    /// The underlying `std::fs::File`.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl VFile for PosixFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        retry_eintr(|| self.file.read_at(buf, offset))
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        retry_eintr(|| self.file.sync_data())
    }

    fn sync_all(&self) -> io::Result<()> {
        retry_eintr(|| self.file.sync_all())
    }

    fn allocate(&self, len: u64) -> io::Result<Allocation> {
        let len_off =
            libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        loop {
            // SAFETY: fallocate on a descriptor we own; no memory is passed.
            let r = unsafe { libc::fallocate(self.file.as_raw_fd(), 0, 0, len_off) };
            if r == 0 {
                return Ok(Allocation::Reserved);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EOPNOTSUPP) => {
                    warn_once(&FALLOCATE_FALLBACK, "fallocate unsupported by this filesystem (EOPNOTSUPP); extending files with ftruncate");
                    if self.size()? < len {
                        self.set_len(len)?;
                    }
                    return Ok(Allocation::Unsupported);
                }
                _ => return Err(e),
            }
        }
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        retry_eintr(|| self.file.set_len(len))
    }

    fn direct_io(&self) -> Option<usize> {
        self.direct.then_some(DIRECT_ALIGN)
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }

    fn drop_cached(&self, offset: u64, len: u64) -> io::Result<()> {
        let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len))
        else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        // SAFETY: posix_fadvise on a descriptor we own (open for the borrow of `self`); no
        // memory is passed.
        let r = unsafe {
            libc::posix_fadvise(
                self.file.as_raw_fd(),
                offset,
                len,
                libc::POSIX_FADV_DONTNEED,
            )
        };
        // posix_fadvise returns the error number rather than setting errno.
        match r {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }
}

struct PosixLock {
    _file: File,
}

impl FileLock for PosixLock {}

/// Filesystem operations shared by both real backends.
#[derive(Clone, Debug, Default)]
pub(crate) struct PosixFs;

impl PosixFs {
    pub(crate) fn open(&self, path: &Path, opts: OpenOptions) -> io::Result<Box<dyn VFile>> {
        Ok(Box::new(PosixFile::open(path, opts)?))
    }

    pub(crate) fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    pub(crate) fn kind_of(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => Ok(Some(EntryKind::File)),
            Ok(m) if m.is_dir() => Ok(Some(EntryKind::Dir)),
            Ok(_) => Ok(Some(EntryKind::Other)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            match entry.file_name().into_string() {
                Ok(name) => names.push(name),
                Err(raw) => log::debug!("ignoring non-UTF-8 directory entry {raw:?}"),
            }
        }
        Ok(names)
    }

    pub(crate) fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    pub(crate) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    pub(crate) fn now(&self) -> std::time::Instant {
        std::time::Instant::now()
    }

    pub(crate) fn will_block(&self, _why: crate::BlockReason) {}

    pub(crate) fn filesystem(&self, path: &Path) -> io::Result<crate::FsInfo> {
        crate::FsInfo::of_path(path)
    }

    pub(crate) fn sync_dir(&self, path: &Path) -> io::Result<()> {
        retry_eintr(|| File::open(path)?.sync_all())
    }

    pub(crate) fn lock_held(&self, path: &Path) -> io::Result<bool> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        loop {
            // A shared lock conflicts only with the exclusive one a holder of `lock` has; taken
            // for no longer than this call (closing the file releases it).
            // SAFETY: flock on a descriptor we own; no memory is passed.
            let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
            if r == 0 {
                return Ok(false);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => return Ok(true),
                _ => return Err(e),
            }
        }
    }

    pub(crate) fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is passed.
            let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if r == 0 {
                return Ok(Box::new(PosixLock { _file: file }));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!("{} is locked by another process or handle", path.display()),
                    ))
                }
                _ => return Err(e),
            }
        }
    }
}

/// The portable filesystem backend: `pwrite` + `fdatasync`.
#[derive(Debug)]
pub struct PosixVfs {
    fs: PosixFs,
    reason: String,
}

impl PosixVfs {
    /// A portable backend; `reason` says why it was chosen (reported in stats).
    pub fn new(reason: impl Into<String>) -> PosixVfs {
        PosixVfs {
            fs: PosixFs,
            reason: reason.into(),
        }
    }
}

impl Default for PosixVfs {
    fn default() -> Self {
        PosixVfs::new("portable backend requested")
    }
}

impl Vfs for PosixVfs {
    fn backend(&self) -> BackendInfo {
        BackendInfo {
            kind: BackendKind::Portable,
            reason: self.reason.clone(),
        }
    }
    crate::forward_fs_ops!(fs);
    /// Its driver's write is [`write_durable_now`]: a committer may use it directly.
    fn writes_here(&self) -> bool {
        true
    }

    fn log_driver(&self) -> io::Result<Box<dyn LogDriver>> {
        Ok(Box::new(PosixDriver::new()))
    }
}

/// A wake flag and condition variable: the portable [`Waker`].
#[derive(Default)]
pub struct CondvarWaker {
    woken: Mutex<bool>,
    cond: Condvar,
}

impl CondvarWaker {
    /// Waits until woken or `timeout` passes, consuming the wake.
    pub fn wait(&self, timeout: Option<Duration>) {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut woken = self.woken.lock();
        while !*woken {
            match deadline {
                Some(d) => {
                    if self.cond.wait_until(&mut woken, d).timed_out() {
                        break;
                    }
                }
                None => self.cond.wait(&mut woken),
            }
        }
        *woken = false;
    }
}

impl Waker for CondvarWaker {
    fn wake(&self) {
        *self.woken.lock() = true;
        self.cond.notify_one();
    }
}

/// Writes `buf` at `offset` of `fd` with `pwritev2(RWF_DSYNC)`, looping over short writes and
/// retrying `EINTR`/`EAGAIN`. Returns `Unsupported` if the kernel lacks `pwritev2` or
/// `RWF_DSYNC`. Whether a completed call is durable depends on the filesystem
/// ([`crate::FsInfo::dsync_durable`]); the engine's log uses it only where that holds.
pub fn pwrite_dsync(fd: RawFd, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let iov = libc::iovec {
            iov_base: buf.as_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: iov points at `buf`, which is valid for reads for the whole (synchronous) call.
        let n = unsafe { libc::pwritev2(fd, &iov, 1, offset as libc::off_t, libc::RWF_DSYNC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) | Some(libc::EAGAIN) => continue,
                Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => {
                    return Err(io::Error::new(io::ErrorKind::Unsupported, e))
                }
                _ => return Err(e),
            }
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "pwritev2 wrote zero bytes",
            ));
        }
        buf = &buf[n as usize..];
        offset += n as u64;
    }
    Ok(())
}

/// Set once `pwritev2(RWF_DSYNC)` was refused: every later durable write is a write + sync.
static DSYNC_UNSUPPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes all of `buf` at `offset` of `file` and returns once the bytes are durable, on the
/// calling thread, with plain system calls: `pwritev2(RWF_DSYNC)` for [`SyncStrategy::Dsync`]
/// when the file has a descriptor and the kernel takes the flag, else `pwrite` then `fdatasync`
/// (through the [`VFile`], so a simulated file models both). The portable [`LogDriver`]'s write,
/// and what a committer uses when it performs a round itself (no hand-off to a log thread).
///
/// # Errors
///
/// The operating system's error (or the file's), unchanged.
pub fn write_durable_now(
    file: &dyn VFile,
    offset: u64,
    buf: &[u8],
    strategy: SyncStrategy,
) -> io::Result<()> {
    use std::sync::atomic::Ordering;
    if strategy == SyncStrategy::Dsync && !DSYNC_UNSUPPORTED.load(Ordering::Relaxed) {
        if let Some(fd) = file.raw_fd() {
            match pwrite_dsync(fd, buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                    warn_once(
                        &DSYNC_FALLBACK,
                        "pwritev2(RWF_DSYNC) unsupported; using pwrite + fdatasync",
                    );
                    DSYNC_UNSUPPORTED.store(true, Ordering::Relaxed);
                }
                r => return r,
            }
        }
    }
    file.write_all_at(buf, offset)?;
    file.sync_data()
}

/// The portable commit path: `pwrite` + `fdatasync` (or `pwritev2(RWF_DSYNC)`), waiting on a
/// condition variable.
pub struct PosixDriver {
    waker: Arc<CondvarWaker>,
}

impl PosixDriver {
    /// A new driver.
    pub fn new() -> PosixDriver {
        PosixDriver {
            waker: Arc::new(CondvarWaker::default()),
        }
    }
}

impl Default for PosixDriver {
    fn default() -> Self {
        Self::new()
    }
}

impl LogDriver for PosixDriver {
    fn write_durable(
        &mut self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        write_durable_now(file, offset, buf, strategy)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.waker.wait(timeout);
        Ok(())
    }

    fn waker(&self) -> Arc<dyn Waker> {
        self.waker.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages of `file`'s first `len` bytes in the page cache (`mincore` of a read-only mapping).
    fn resident(file: &File, len: usize) -> usize {
        // SAFETY: a new shared read-only mapping of `len` bytes of a file we hold open; nothing
        // reads or writes through it, and it is unmapped below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let mut vec = vec![0u8; len.div_ceil(4096)];
        // SAFETY: `p` is the mapping just made, of `len` bytes; `vec` holds a byte per page.
        let r = unsafe { libc::mincore(p, len, vec.as_mut_ptr()) };
        // SAFETY: unmapping the mapping made above, used by nothing else.
        unsafe { libc::munmap(p, len) };
        assert_eq!(r, 0);
        vec.iter().filter(|&&b| b & 1 != 0).count()
    }

    #[test]
    fn drop_cached_leaves_the_bytes_and_empties_the_cache_where_there_is_one() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = PosixVfs::default();
        let path = dir.path().join("a");
        let f = vfs
            .open(
                &path,
                OpenOptions {
                    write: true,
                    create: true,
                    direct: false,
                },
            )
            .unwrap();
        let len = 1 << 20;
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        f.write_all_at(&bytes, 0).unwrap();
        f.sync_data().unwrap();
        let mut back = vec![0u8; len];
        f.read_exact_at(&mut back, 0).unwrap();
        f.drop_cached(0, len as u64).unwrap();
        f.read_exact_at(&mut back, 0).unwrap();
        assert!(back == bytes, "the bytes changed");
        // Where the kernel keeps a page cache it can drop (ext4, XFS; not tmpfs), clean pages
        // leave it.
        let plain = File::open(&path).unwrap();
        // SAFETY: statfs of a path we hold, into a zeroed struct.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        let c = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a NUL-terminated path and `st` a valid statfs to fill.
        assert_eq!(unsafe { libc::statfs(c.as_ptr(), &mut st) }, 0);
        if [0xEF53, 0x5846_5342].contains(&(st.f_type as i64)) {
            f.read_exact_at(&mut back, 0).unwrap();
            assert!(resident(&plain, len) > 0, "the read cached nothing");
            f.drop_cached(0, len as u64).unwrap();
            assert_eq!(resident(&plain, len), 0, "pages stayed cached");
        }
        // A range the kernel cannot take is an error, not a wrapped offset.
        assert_eq!(
            f.drop_cached(u64::MAX, 1).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn write_durable_both_strategies_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = PosixVfs::default();
        let f = vfs
            .open(
                &dir.path().join("a"),
                OpenOptions {
                    write: true,
                    create: true,
                    direct: false,
                },
            )
            .unwrap();
        assert_eq!(f.allocate(8192).unwrap(), Allocation::Reserved);
        let mut d = vfs.log_driver().unwrap();
        d.write_durable(&*f, 0, b"hello", SyncStrategy::WriteThenSync)
            .unwrap();
        d.write_durable(&*f, 5, b" world", SyncStrategy::Dsync)
            .unwrap();
        let mut back = [0u8; 11];
        f.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(&back, b"hello world");
        assert_eq!(f.size().unwrap(), 8192);
    }

    #[test]
    fn lock_held_sees_a_holder_without_taking_or_creating() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = PosixVfs::default();
        let p = dir.path().join("LOCK");
        assert!(!vfs.lock_held(&p).unwrap());
        assert!(!p.exists(), "lock_held created the file");
        let l = vfs.lock(&p).unwrap();
        assert!(vfs.lock_held(&p).unwrap());
        // The probe took nothing: the holder keeps it, and it is free once dropped.
        assert!(vfs.lock_held(&p).unwrap());
        drop(l);
        assert!(!vfs.lock_held(&p).unwrap());
        let again = vfs.lock(&p).unwrap();
        drop(again);
    }

    #[test]
    fn lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = PosixVfs::default();
        let p = dir.path().join("LOCK");
        let l = vfs.lock(&p).unwrap();
        assert_eq!(
            vfs.lock(&p).err().unwrap().kind(),
            io::ErrorKind::WouldBlock
        );
        drop(l);
        vfs.lock(&p).unwrap();
    }

    #[test]
    fn wake_before_wait_is_not_lost() {
        let d = PosixDriver::new();
        d.waker().wake();
        let mut d = d;
        d.wait(None).unwrap(); // returns at once; a lost wake would hang here
        d.wait(Some(Duration::from_millis(1))).unwrap();
    }

    #[test]
    fn kind_of_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = PosixVfs::default();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        assert_eq!(
            vfs.kind_of(&dir.path().join("f")).unwrap(),
            Some(EntryKind::File)
        );
        assert_eq!(vfs.kind_of(dir.path()).unwrap(), Some(EntryKind::Dir));
        assert_eq!(vfs.kind_of(&dir.path().join("nope")).unwrap(), None);
        assert_eq!(vfs.list_dir(dir.path()).unwrap(), vec!["f".to_string()]);
    }
}
