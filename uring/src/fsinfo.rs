//! Which filesystem holds a path, and whether a completed `RWF_DSYNC` write is durable there.
//!
//! A write submitted with `RWF_DSYNC` (or on an `O_DSYNC` file) is meant to be durable when it
//! completes. ext4, xfs and btrfs implement that for buffered and direct, synchronous and
//! asynchronous writes alike: their direct-I/O completion runs the data sync (or issues the write
//! with FUA). Elsewhere it is not a promise ringlog can rely on. On FUSE (kernel 6.18 measured), an
//! asynchronous `O_DIRECT` write that does not extend the file completes with no `FUSE_FSYNC`
//! request at all, so a commit acknowledged on that completion is not durable. The engine
//! therefore trusts `RWF_DSYNC` only on the filesystems listed in [`FsInfo::from_magic`] and uses
//! an explicit `fdatasync` everywhere else (FUSE, overlayfs, NFS, CIFS/SMB, 9p and anything
//! unknown).

use std::fmt;
use std::io;
use std::path::Path;

/// The filesystem holding a path, as far as the commit path needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsInfo {
    /// Short name (`ext4`, `fuse`, ...), or the `statfs` magic in hex when it is not one ringlog
    /// knows.
    pub name: String,
    /// The `statfs` `f_type`, when the path is on a kernel filesystem.
    pub magic: Option<u64>,
    /// Whether a completed `RWF_DSYNC` write is known to be durable on this filesystem, on every
    /// I/O path (buffered or `O_DIRECT`, synchronous or through io_uring).
    pub dsync_durable: bool,
}

/// `statfs` magics ringlog knows: (magic, name, RWF_DSYNC completions are durable).
const KNOWN: &[(u64, &str, bool)] = &[
    (0xEF53, "ext4", true), // also ext2/ext3, served by the ext4 driver
    (0x5846_5342, "xfs", true),
    (0x9123_683E, "btrfs", true),
    // RAM: nothing is durable, and nothing more would be with an fdatasync.
    (0x0102_1994, "tmpfs", true),
    (0x6573_5546, "fuse", false),
    (0x794C_7630, "overlayfs", false),
    (0x6969, "nfs", false),
    (0xFF53_4D42, "cifs", false),
    (0xFE53_4D42, "smb2", false),
    (0x0102_1997, "9p", false),
    (0xF2F5_2010, "f2fs", false),
    (0x2FC1_2FC1, "zfs", false),
    (0x00C3_6400, "ceph", false),
    (0x6165_6673, "afs", false),
];

impl FsInfo {
    /// A filesystem that is not a kernel one (a simulated disk), named `name`, that does or does
    /// not make a completed `RWF_DSYNC` write durable.
    pub fn custom(name: impl Into<String>, dsync_durable: bool) -> FsInfo {
        FsInfo {
            name: name.into(),
            magic: None,
            dsync_durable,
        }
    }

    /// What ringlog knows of the filesystem with `statfs` magic `magic`. Only ext4, xfs, btrfs
    /// and tmpfs are trusted with `RWF_DSYNC`; every other magic, known or not, is not.
    pub fn from_magic(magic: u64) -> FsInfo {
        match KNOWN.iter().find(|(m, _, _)| *m == magic) {
            Some(&(_, name, dsync_durable)) => FsInfo {
                name: name.to_string(),
                magic: Some(magic),
                dsync_durable,
            },
            None => FsInfo {
                name: format!("unknown filesystem (magic {magic:#x})"),
                magic: Some(magic),
                dsync_durable: false,
            },
        }
    }

    /// `statfs(path)`: the kernel filesystem holding `path`.
    ///
    /// # Errors
    ///
    /// `statfs`'s error (the path does not exist, ...), or `InvalidInput` for a path holding a NUL byte.
    pub fn of_path(path: &Path) -> io::Result<FsInfo> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        // SAFETY: an all-zero statfs is a valid value of this plain C struct.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a NUL-terminated string alive for the call; `st` is a valid, writable
        // statfs the kernel fills in.
        let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // f_type is a signed word on some targets; the magic is its bit pattern.
        Ok(FsInfo::from_magic(st.f_type as u64 & 0xFFFF_FFFF))
    }
}

impl fmt::Display for FsInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_block_filesystems_and_tmpfs_are_trusted() {
        for (magic, name) in [(0xEF53, "ext4"), (0x58465342, "xfs"), (0x9123683E, "btrfs")] {
            let fs = FsInfo::from_magic(magic);
            assert_eq!(fs.name, name);
            assert!(fs.dsync_durable, "{name}");
        }
        for magic in [0x65735546, 0x794C7630, 0x6969, 0xFF534D42, 0x12345678] {
            assert!(!FsInfo::from_magic(magic).dsync_durable, "{magic:#x}");
        }
        assert!(FsInfo::from_magic(0x12345678).name.contains("0x12345678"));
    }

    #[test]
    fn statfs_of_a_temporary_directory() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FsInfo::of_path(dir.path()).unwrap();
        assert!(fs.magic.is_some());
        assert!(FsInfo::of_path(&dir.path().join("missing")).is_err());
    }
}
