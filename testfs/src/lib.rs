//! # ringlog-testfs
//!
//! Real kernel filesystems for ringlog's durability tests, where a simulated `Vfs` cannot see
//! what the kernel does between a system call and the disk:
//!
//! * [`TestFs`] — an in-memory FUSE filesystem with a **power-loss model**. Every regular file
//!   has `current` bytes (what reads see) and `durable` bytes (what survives a power cut).
//!   `FUSE_WRITE` and size changes touch `current` only; a `FUSE_FSYNC` request (fsync or
//!   fdatasync) of a file copies its `current` to its `durable` bytes. The counts of writes,
//!   fsyncs and fdatasyncs each file received are kept ([`MountedFs::stats`]), so a test can
//!   ask whether an acknowledged commit was covered by a sync the filesystem really saw.
//!   [`MountedFs::power_cut`] keeps only the durable state, and [`Image::mount`] mounts it as a
//!   fresh filesystem (a new superblock: the page cache cannot hide the loss).
//! * [`block`] — sparse images on loop devices formatted ext4/xfs/btrfs, and the block layer's
//!   flush counters of the loop device.
//! * [`skip_or_fail`] and friends — a test that cannot run here (no root, no `/dev/fuse`, no
//!   mkfs tool) prints why and returns, except under CI (`CI` set), where it fails.
//!
//! ## The power-loss model, precisely
//!
//! * Data: a file's bytes *and its size* are durable as of its last `FUSE_FSYNC` (with or
//!   without the datasync flag). `setattr(size)` (truncate, `ftruncate` pre-sizing) changes
//!   `current` only and becomes durable with the next fsync of that file — as on a journaling
//!   filesystem, where a size change is metadata that an fdatasync persists only when needed to
//!   read the data, and an fsync always.
//! * Namespace: `create`, `mkdir`, `rename`, `unlink`, `rmdir` are durable at once (a
//!   newly created file is durable with empty contents). This is more forgiving than a real
//!   filesystem, which needs a directory fsync; `FUSE_FSYNCDIR` requests are only counted
//!   ([`MountedFs::dir_syncs`]). The model targets lost *data* syncs, the bug class of issue 8.
//! * After [`MountedFs::power_cut`] the filesystem is a dead disk: requests still succeed,
//!   writes even change what reads see on the old mount, but nothing becomes durable.
//! * No `fallocate` (`ENOSYS`, turned into `EOPNOTSUPP` by the kernel), as on most FUSE
//!   filesystems; opens reply with default flags (no `FOPEN_DIRECT_IO`), no writeback cache,
//!   and `FUSE_ASYNC_DIO` is requested as libfuse 3 does by default ([`MountOptions`]). Locks
//!   (`flock`, POSIX) are handled by the kernel locally: the filesystem asks for neither
//!   `FUSE_FLOCK_LOCKS` nor `FUSE_POSIX_LOCKS`.
//!
//! Mounting uses `mount(2)` directly (root only; no libfuse, no `fusermount3`) and serves the
//! session on a background thread with `fuser`.
//!
//! ```no_run
//! use ringlog_testfs::TestFs;
//!
//! let dir = tempfile::tempdir()?;
//! let fs = TestFs::mount(dir.path())?;
//! std::fs::write(fs.path().join("f"), b"lost")?; // written, never synced
//! let image = fs.power_cut();
//! assert_eq!(image.file("f"), Some(&b""[..])); // created (namespace is durable), data gone
//! let fs = image.mount(dir.path())?;
//! assert_eq!(std::fs::read(fs.path().join("f"))?, b"");
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod block;
mod env;
mod fusefs;
mod model;
mod mount;

pub use env::{find_tool, fuse_or_skip, fuse_unavailable, in_ci, is_root, skip_or_fail};
pub use model::{FileStats, Image};
pub use mount::{MountOptions, MountedFs, TestFs, Unmounted, FUSE_SUPER_MAGIC};

/// A 4096-aligned, 4096-byte block of `byte` inside `storage` (a buffer for `O_DIRECT` writes).
pub fn aligned_block(storage: &mut Vec<u8>, byte: u8) -> &[u8] {
    storage.clear();
    storage.resize(8192, 0);
    let off = storage.as_ptr().align_offset(4096);
    let block = &mut storage[off..off + 4096];
    block.fill(byte);
    block
}
