//! Mounting and unmounting the in-memory filesystem with `mount(2)` (as root; no libfuse, no
//! `fusermount3`), and the power cut.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::{BackgroundSession, Config, Session, SessionACL};
use parking_lot::Mutex;

use crate::fusefs::FuseFs;
use crate::model::{FileStats, Image, State};

/// `statfs` magic of FUSE filesystems.
pub const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
/// Filesystem type given to `mount(2)`: FUSE with a subtype, shown in `/proc/mounts`.
const FSTYPE: &str = "fuse.ringlog-testfs";

/// Settings of a mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MountOptions {
    /// Ask the kernel for asynchronous direct I/O (`FUSE_ASYNC_DIO`) at `INIT`, as libfuse 3
    /// does by default (and so most real FUSE filesystems). Default: true.
    pub async_dio: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions { async_dio: true }
    }
}

/// Mounts the in-memory filesystem with a power-loss model (see the crate documentation).
#[derive(Debug)]
pub struct TestFs;

impl TestFs {
    /// Mounts an empty filesystem at `mountpoint` (an existing directory) with default options,
    /// served by a background thread.
    pub fn mount(mountpoint: impl AsRef<Path>) -> io::Result<MountedFs> {
        TestFs::mount_with(mountpoint, MountOptions::default())
    }

    /// Mounts an empty filesystem at `mountpoint` with `opts`.
    pub fn mount_with(mountpoint: impl AsRef<Path>, opts: MountOptions) -> io::Result<MountedFs> {
        MountedFs::mount(mountpoint.as_ref(), State::new(), opts)
    }
}

impl Image {
    /// Mounts a fresh filesystem whose contents are exactly this durable state (every file's
    /// durable bytes are also what reads see), with default options. A new superblock: the
    /// kernel's page cache of the old mount cannot hide what the power cut lost.
    pub fn mount(&self, mountpoint: impl AsRef<Path>) -> io::Result<MountedFs> {
        self.mount_with(mountpoint, MountOptions::default())
    }

    /// [`Image::mount`] with `opts`.
    pub fn mount_with(
        &self,
        mountpoint: impl AsRef<Path>,
        opts: MountOptions,
    ) -> io::Result<MountedFs> {
        MountedFs::mount(mountpoint.as_ref(), State::from_image(self), opts)
    }
}

/// A mounted in-memory filesystem. Dropping it unmounts (lazily if files are still open).
#[derive(Debug)]
pub struct MountedFs {
    path: PathBuf,
    state: Arc<Mutex<State>>,
    session: Option<BackgroundSession>,
}

/// How an unmount went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmounted {
    /// Unmounted and the serving thread joined.
    Clean,
    /// Files were still open: the mount was detached (`MNT_DETACH`); its thread keeps serving
    /// those descriptors and ends when the last one closes.
    Lazy,
}

fn with_context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `umount2(path, flags)`, retried on `EINTR`.
fn umount2(path: &CString, flags: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        if unsafe { libc::umount2(path.as_ptr(), flags) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// `statfs(path).f_type`.
pub(crate) fn fs_magic(path: &Path) -> io::Result<i64> {
    let c = c_path(path)?;
    // SAFETY: an all-zero statfs is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and alive for the call; `st` is valid and writable.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // f_type is i64 on x86_64 but not on every target
    Ok(st.f_type as i64)
}

impl MountedFs {
    fn mount(mountpoint: &Path, state: State, opts: MountOptions) -> io::Result<MountedFs> {
        let path = mountpoint.canonicalize().map_err(|e| {
            with_context(
                e,
                format!("mountpoint {} is unusable", mountpoint.display()),
            )
        })?;
        if !path.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("mountpoint {} is not a directory", path.display()),
            ));
        }
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .map_err(|e| with_context(e, "opening /dev/fuse".into()))?;
        let target = c_path(&path)?;
        // SAFETY: getuid and getgid have no preconditions and cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let data = CString::new(format!(
            "fd={},rootmode=40000,user_id={uid},group_id={gid}",
            dev.as_raw_fd()
        ))
        .expect("no NUL in mount options");
        let source = CString::new("ringlog-testfs").expect("no NUL");
        let fstype = CString::new(FSTYPE).expect("no NUL");
        // SAFETY: every pointer is a NUL-terminated string alive for the call; `data` is the
        // option string the fuse filesystem type parses.
        let rc = unsafe {
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                data.as_ptr().cast(),
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(with_context(
                e,
                format!(
                    "mount(2) of a FUSE filesystem at {} (needs root or CAP_SYS_ADMIN and the fuse module)",
                    path.display()
                ),
            ));
        }
        let state = Arc::new(Mutex::new(state));
        let fs = FuseFs {
            state: state.clone(),
            async_dio: opts.async_dio,
        };
        // The kernel queued FUSE_INIT at mount; the handshake answers it before any other request.
        let session = Session::from_fd(fs, OwnedFd::from(dev), SessionACL::All, Config::default())
            .and_then(Session::spawn);
        let mut mounted = MountedFs {
            path,
            state,
            session: None,
        };
        match session {
            Ok(s) => mounted.session = Some(s),
            Err(e) => {
                let _ = umount2(&target, libc::MNT_DETACH);
                return Err(with_context(
                    e,
                    format!("starting the FUSE session at {}", mounted.path.display()),
                ));
            }
        }
        // The first request (a getattr of the root) proves the session answers.
        match fs_magic(&mounted.path) {
            Ok(FUSE_SUPER_MAGIC) => Ok(mounted),
            Ok(other) => Err(io::Error::other(format!(
                "{} is not the new FUSE mount after mounting (statfs magic {other:#x})",
                mounted.path.display()
            ))),
            Err(e) => Err(with_context(
                e,
                format!("statfs of the new mount {}", mounted.path.display()),
            )),
        }
    }

    /// The mount point (canonical).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the filesystem saw of the regular file at `rel` (relative to the mount point).
    pub fn stats(&self, rel: impl AsRef<Path>) -> io::Result<FileStats> {
        let rel = rel.as_ref();
        self.state.lock().stats_of(rel).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no regular file {} in the test filesystem", rel.display()),
            )
        })
    }

    /// Every regular file this mount has held, removed ones included: (path relative to the
    /// mount point — for a removed file the path it last had —, still linked, stats).
    pub fn file_stats(&self) -> Vec<(PathBuf, bool, FileStats)> {
        self.state.lock().all_file_stats()
    }

    /// `FUSE_FSYNC` requests (fsync and fdatasync) seen for regular files, removed ones included.
    pub fn total_syncs(&self) -> u64 {
        self.file_stats().iter().map(|(_, _, s)| s.syncs()).sum()
    }

    /// `FUSE_FSYNCDIR` requests seen.
    pub fn dir_syncs(&self) -> u64 {
        self.state.lock().dir_syncs()
    }

    /// The durable state now: what a power cut at this instant would leave.
    pub fn durable_image(&self) -> Image {
        self.state.lock().image()
    }

    /// Cuts the power: takes the durable state, makes the filesystem a dead disk (every later
    /// request still succeeds — writes even change what reads see — but nothing becomes durable
    /// any more), then unmounts, lazily if files are still open (a database that is still open
    /// keeps its descriptors on the dead filesystem and may close against it). Returns the
    /// durable state; mount it with [`Image::mount`].
    pub fn power_cut(mut self) -> Image {
        let image = {
            let mut st = self.state.lock();
            st.cut_power();
            st.image()
        };
        if let Err(e) = self.unmount_inner() {
            log::warn!(
                "unmounting {} after the power cut: {e}",
                self.path.display()
            );
        }
        image
    }

    /// Unmounts now: a clean unmount joining the serving thread, or a lazy one if files are
    /// still open.
    pub fn unmount(mut self) -> io::Result<Unmounted> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> io::Result<Unmounted> {
        let Some(session) = self.session.take() else {
            return Ok(Unmounted::Clean);
        };
        let target = c_path(&self.path)?;
        match umount2(&target, 0) {
            Ok(()) => {
                // The unmount aborted the connection: the session's read of /dev/fuse fails with
                // ENODEV and its thread ends.
                if let Err(e) = session.join() {
                    log::warn!("FUSE session of {} ended with {e}", self.path.display());
                }
                Ok(Unmounted::Clean)
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                umount2(&target, libc::MNT_DETACH).map_err(|e| {
                    with_context(e, format!("lazy unmount of {}", self.path.display()))
                })?;
                // Open descriptors keep the detached filesystem alive; the session thread serves
                // them and ends with the last close. Dropping the handle detaches the thread.
                drop(session);
                Ok(Unmounted::Lazy)
            }
            Err(e) => {
                // Not mounted any more (someone else unmounted it): do not wait for a thread
                // that may still serve open descriptors.
                drop(session);
                Err(with_context(
                    e,
                    format!("unmounting {}", self.path.display()),
                ))
            }
        }
    }
}

impl Drop for MountedFs {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_inner() {
            log::warn!("{e}");
        }
    }
}
