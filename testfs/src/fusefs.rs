//! The FUSE side: [`fuser::Filesystem`] over the shared [`State`].

use std::ffi::OsStr;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileHandle, FileType, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use parking_lot::Mutex;

use crate::model::{Owner, State, BLOCK, MAX_FILE};

/// How long the kernel may cache attributes and entries. Only the kernel changes this
/// filesystem, so caching is always coherent; a remount after a power cut is a new superblock
/// with an empty cache.
const TTL: Duration = Duration::from_secs(1);

/// The filesystem a FUSE session serves.
pub(crate) struct FuseFs {
    pub(crate) state: Arc<Mutex<State>>,
    /// Ask for `FUSE_ASYNC_DIO` at `INIT`, as libfuse 3 does by default.
    pub(crate) async_dio: bool,
}

fn owner_of(req: &Request) -> Owner {
    Owner {
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn perm_of(mode: u32, umask: u32) -> u16 {
    (mode & !umask & 0o7777) as u16
}

fn time_of(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl FuseFs {
    fn entry(&self, r: Result<u64, Errno>, reply: ReplyEntry) {
        let st = self.state.lock();
        match r.and_then(|ino| st.attr(ino)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }
}

fn empty(r: Result<(), Errno>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl fuser::Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        if self.async_dio {
            if let Err(missing) = config.add_capabilities(InitFlags::FUSE_ASYNC_DIO) {
                log::warn!("the kernel does not offer {missing:?}; direct I/O stays synchronous");
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = self.state.lock().lookup(parent.0, name);
        self.entry(r, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.state.lock().attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = self.state.lock();
        let r = (|| {
            if let Some(size) = size {
                st.set_size(ino.0, size)?;
            }
            st.set_meta(
                ino.0,
                mode.map(|m| (m & 0o7777) as u16),
                uid,
                gid,
                atime.map(time_of),
                mtime.map(time_of),
            )?;
            st.attr(ino.0)
        })();
        match r {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let r = self
            .state
            .lock()
            .mkdir(parent.0, name, perm_of(mode, umask), owner_of(req));
        self.entry(r, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.state.lock().remove(parent.0, name, false), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.state.lock().remove(parent.0, name, true), reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !(flags & !RenameFlags::RENAME_NOREPLACE).is_empty() {
            // RENAME_EXCHANGE and RENAME_WHITEOUT are not modelled.
            reply.error(Errno::EINVAL);
            return;
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        empty(
            self.state
                .lock()
                .rename(parent.0, name, newparent.0, newname, noreplace),
            reply,
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut st = self.state.lock();
        match st.attr(ino.0) {
            Ok(a) if a.kind == FileType::Directory => reply.error(Errno::EISDIR),
            // Default flags: no FOPEN_DIRECT_IO, so an O_DIRECT open takes the kernel's own
            // direct-I/O path (fuse_direct_IO) and a buffered one the page cache.
            Ok(_) => reply.opened(FileHandle(st.new_fh()), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.state.lock().read(ino.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.state.lock().write(ino.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) is not a sync: nothing becomes durable.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(self.state.lock().fsync(ino.0, datasync), reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut st = self.state.lock();
        match st.attr(ino.0) {
            Ok(a) if a.kind == FileType::Directory => {
                reply.opened(FileHandle(st.new_fh()), FopenFlags::empty())
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.state.lock().dir_entries(ino.0, offset) {
            Ok(entries) => {
                for (i, (child, kind, name)) in entries.into_iter().enumerate() {
                    // The offset given with an entry is where the next readdir resumes.
                    if reply.add(INodeNo(child), offset + i as u64 + 1, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(self.state.lock().fsyncdir(ino.0), reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let st = self.state.lock();
        let blocks = MAX_FILE * 16 / BLOCK as u64;
        let used = st.used_bytes().div_ceil(BLOCK as u64).min(blocks);
        let files = 1 << 20;
        let ffree = files - st.node_count().min(files);
        reply.statfs(
            blocks,
            blocks - used,
            blocks - used,
            files,
            ffree,
            BLOCK,
            255,
            BLOCK,
        );
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // No permission model: root runs the tests.
        empty(self.state.lock().attr(ino.0).map(|_| ()), reply);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.state.lock();
        let r = st
            .create(
                parent.0,
                name,
                perm_of(mode, umask),
                owner_of(req),
                flags & libc::O_EXCL != 0,
                flags & libc::O_TRUNC != 0,
            )
            .and_then(|ino| st.attr(ino));
        match r {
            Ok(attr) => {
                let fh = FileHandle(st.new_fh());
                reply.created(&TTL, &attr, Generation(0), fh, FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        // Like most FUSE filesystems: ENOSYS, which the kernel remembers and turns into
        // EOPNOTSUPP for fallocate(2); the engine then extends segments with ftruncate.
        reply.error(Errno::ENOSYS);
    }

    // Not implemented, on purpose: getlk/setlk (the kernel then handles POSIX locks and flock
    // locally: neither FUSE_POSIX_LOCKS nor FUSE_FLOCK_LOCKS is requested at INIT), xattrs,
    // links, mknod, lseek (the kernel falls back to its generic lseek).
}
