//! The io_uring backend (being written).
use crate::{
    posix::PosixFs, BackendInfo, BackendKind, EntryKind, FileLock, LogDriver, OpenOptions,
    PosixDriver, VFile, Vfs,
};
use std::{io, path::Path};

/// Probes io_uring.
pub fn probe() -> Result<String, String> {
    Err("io_uring backend not built yet".into())
}

/// The io_uring backend.
pub struct UringVfs {
    fs: PosixFs,
    reason: String,
}

impl UringVfs {
    /// New.
    pub fn new(reason: String) -> UringVfs {
        UringVfs {
            fs: PosixFs,
            reason,
        }
    }
}

impl Vfs for UringVfs {
    fn backend(&self) -> BackendInfo {
        BackendInfo {
            kind: BackendKind::Uring,
            reason: self.reason.clone(),
        }
    }
    fn open(&self, path: &Path, opts: OpenOptions) -> io::Result<Box<dyn VFile>> {
        self.fs.open(path, opts)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.fs.create_dir_all(path)
    }
    fn kind_of(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        self.fs.kind_of(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.fs.list_dir(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.fs.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.fs.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.fs.sync_dir(path)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        self.fs.lock(path)
    }
    fn log_driver(&self) -> io::Result<Box<dyn LogDriver>> {
        Ok(Box::new(PosixDriver::new()))
    }
}
