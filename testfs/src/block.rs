//! Loop-mounted block filesystems (ext4, xfs, btrfs) on sparse image files, with guards that
//! unmount and detach on drop, and the block layer's per-device counters
//! (`/sys/block/<dev>/stat`).

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::env::find_tool;
use crate::mount::fs_magic;

/// A block filesystem the tests can create.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockFs {
    /// ext4 with its default journal (`mkfs.ext4 -F -q`).
    Ext4,
    /// xfs (`mkfs.xfs -f -q`).
    Xfs,
    /// btrfs (`mkfs.btrfs -f -q`).
    Btrfs,
}

impl BlockFs {
    /// All of them.
    pub const ALL: [BlockFs; 3] = [BlockFs::Ext4, BlockFs::Xfs, BlockFs::Btrfs];

    /// The filesystem type name given to `mount(2)`.
    pub fn name(self) -> &'static str {
        match self {
            BlockFs::Ext4 => "ext4",
            BlockFs::Xfs => "xfs",
            BlockFs::Btrfs => "btrfs",
        }
    }

    /// The mkfs program.
    pub fn mkfs_tool(self) -> &'static str {
        match self {
            BlockFs::Ext4 => "mkfs.ext4",
            BlockFs::Xfs => "mkfs.xfs",
            BlockFs::Btrfs => "mkfs.btrfs",
        }
    }

    /// The Debian package providing [`BlockFs::mkfs_tool`].
    pub fn package(self) -> &'static str {
        match self {
            BlockFs::Ext4 => "e2fsprogs",
            BlockFs::Xfs => "xfsprogs",
            BlockFs::Btrfs => "btrfs-progs",
        }
    }

    /// `statfs` magic of a mounted filesystem of this kind.
    pub fn magic(self) -> i64 {
        match self {
            BlockFs::Ext4 => 0xEF53,
            BlockFs::Xfs => 0x5846_5342,
            BlockFs::Btrfs => 0x9123_683E,
        }
    }

    /// An image size every mkfs accepts: xfs refuses filesystems under 300 MiB.
    pub const IMAGE_SIZE: u64 = 320 << 20;

    /// Why this filesystem cannot be tested here, or `None`: needs root, the mkfs tool,
    /// `losetup` and kernel support (`/proc/filesystems`).
    pub fn unavailable(self) -> Option<String> {
        if !crate::env::is_root() {
            return Some(format!("{self}: loop mounts need root"));
        }
        if find_tool(&[self.mkfs_tool()]).is_none() {
            return Some(format!(
                "{self}: {} not found (Debian package {}; testfs/install-deps.sh installs it)",
                self.mkfs_tool(),
                self.package()
            ));
        }
        if find_tool(&["losetup"]).is_none() {
            return Some(format!("{self}: losetup not found (Debian package mount)"));
        }
        if !Path::new("/dev/loop-control").exists() {
            return Some(format!(
                "{self}: /dev/loop-control is missing (no loop devices)"
            ));
        }
        let known = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
        if !known
            .lines()
            .any(|l| l.split_whitespace().last() == Some(self.name()))
        {
            // The module may still load on mount; only a hint, the mount itself decides.
            log::debug!("{self} is not in /proc/filesystems yet");
        }
        None
    }
}

impl fmt::Display for BlockFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs `cmd`, turning a failure into an error carrying its stderr.
fn run(cmd: &mut Command) -> io::Result<String> {
    let what = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running {what}: {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A loop device attached to an image file; detached on drop.
#[derive(Debug)]
pub struct LoopDevice {
    dev: PathBuf,
}

impl LoopDevice {
    /// Creates a sparse image file of `size` bytes at `image` and attaches it to a free loop
    /// device (`losetup --find --show`).
    pub fn create(image: &Path, size: u64) -> io::Result<LoopDevice> {
        let f = File::create(image)?;
        f.set_len(size)?;
        drop(f);
        LoopDevice::attach(image)
    }

    /// Attaches an existing image file to a free loop device.
    pub fn attach(image: &Path) -> io::Result<LoopDevice> {
        let out = run(Command::new("losetup")
            .arg("--find")
            .arg("--show")
            .arg(image))?;
        let dev = PathBuf::from(out.trim());
        if !dev.to_string_lossy().starts_with("/dev/loop") {
            return Err(io::Error::other(format!(
                "losetup printed {out:?}, not a loop device"
            )));
        }
        Ok(LoopDevice { dev })
    }

    /// The device node, e.g. `/dev/loop3`.
    pub fn path(&self) -> &Path {
        &self.dev
    }

    /// The kernel name, e.g. `loop3`.
    pub fn name(&self) -> String {
        self.dev
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// A queue attribute of the device (`/sys/block/<name>/queue/<attr>`, trimmed), e.g. `fua`
    /// or `write_cache`.
    pub fn queue_attr(&self, attr: &str) -> io::Result<String> {
        let path = format!("/sys/block/{}/queue/{attr}", self.name());
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(|e| io::Error::new(e.kind(), format!("reading {path}: {e}")))
    }

    /// The device's block-layer counters now.
    pub fn stat(&self) -> io::Result<DiskStat> {
        DiskStat::read(&self.name())
    }

    /// Formats the device as `fs` (quietly, forcing over any old signature).
    pub fn mkfs(&self, fs: BlockFs) -> io::Result<()> {
        let tool = find_tool(&[fs.mkfs_tool()]).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} not found (package {})", fs.mkfs_tool(), fs.package()),
            )
        })?;
        let force = if fs == BlockFs::Ext4 { "-F" } else { "-f" };
        run(Command::new(tool).arg(force).arg("-q").arg(&self.dev)).map(drop)
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new("losetup").arg("-d").arg(&self.dev)) {
            log::warn!("detaching {}: {e}", self.dev.display());
            eprintln!("warning: detaching {}: {e}", self.dev.display());
        }
    }
}

/// A mounted block filesystem; unmounted on drop (lazily if still busy).
#[derive(Debug)]
pub struct BlockMount {
    target: PathBuf,
}

impl BlockMount {
    /// Mounts `dev` as `fs` at `target` (an existing directory) and checks that `target` is then
    /// on `fs`.
    pub fn mount(dev: &Path, fs: BlockFs, target: &Path) -> io::Result<BlockMount> {
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_encoded_bytes())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
        };
        let (src, dst) = (c(dev)?, c(target)?);
        let fstype = CString::new(fs.name()).expect("no NUL");
        // SAFETY: every pointer is a NUL-terminated string alive for the call; no data.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "mounting {} ({fs}) at {}: {e}",
                    dev.display(),
                    target.display()
                ),
            ));
        }
        let m = BlockMount {
            target: target.to_path_buf(),
        };
        let magic = fs_magic(target)?;
        if magic != fs.magic() {
            return Err(io::Error::other(format!(
                "{} has statfs magic {magic:#x} after mounting {fs}, not {:#x}",
                target.display(),
                fs.magic()
            )));
        }
        Ok(m)
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.target
    }
}

impl Drop for BlockMount {
    fn drop(&mut self) {
        let Ok(c) = CString::new(self.target.as_os_str().as_encoded_bytes()) else {
            return;
        };
        // SAFETY: `c` is NUL-terminated and alive for the call.
        if unsafe { libc::umount2(c.as_ptr(), 0) } != 0 {
            let e = io::Error::last_os_error();
            // SAFETY: as above.
            let lazy = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            eprintln!(
                "warning: unmounting {}: {e}; lazy unmount {}",
                self.target.display(),
                if lazy == 0 { "done" } else { "failed too" }
            );
        }
    }
}

/// One reading of `/sys/block/<dev>/stat` (the kernel's Documentation/block/stat.rst).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskStat {
    /// The fields in order, as numbers.
    pub fields: Vec<u64>,
}

impl DiskStat {
    /// Reads `/sys/block/<name>/stat`.
    pub fn read(name: &str) -> io::Result<DiskStat> {
        let path = format!("/sys/block/{name}/stat");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("reading {path}: {e}")))?;
        let fields = text
            .split_whitespace()
            .map(|f| f.parse::<u64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| io::Error::other(format!("parsing {path} ({text:?}): {e}")))?;
        if fields.len() < 16 {
            return Err(io::Error::other(format!(
                "{path} has {} fields; flush counters need 17 (kernel 5.5 or later)",
                fields.len()
            )));
        }
        Ok(DiskStat { fields })
    }

    /// Write requests completed (field 4).
    pub fn writes(&self) -> u64 {
        self.fields[4]
    }

    /// Flush requests completed (field 15, "flush I/Os").
    pub fn flushes(&self) -> u64 {
        self.fields[15]
    }
}
