//! A database created at a relative path: the directory holding its new entry — the current
//! directory, for a path of one component — is fsynced, as for any other path (a review found
//! `Path::parent` of `"db"` being empty and the sync left out: a power loss could take the
//! whole database, acknowledged `Strict` commits included). Its own test binary: it changes the
//! process's current directory.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::{real_vfs, Hooked, Hooks};
use ringlog_db::io::Vfs;
use ringlog_db::{Db, Durability, IoChoice, Options};

#[derive(Default)]
struct SyncedDirs(Mutex<Vec<PathBuf>>);

impl Hooks for SyncedDirs {
    fn sync_dir(&self, inner: &dyn Vfs, path: &Path) -> std::io::Result<()> {
        self.0.lock().unwrap().push(path.to_path_buf());
        inner.sync_dir(path)
    }
}

#[test]
fn the_current_directory_is_synced_for_a_relative_path() {
    let cwd = tempfile::tempdir().unwrap();
    std::env::set_current_dir(cwd.path()).unwrap();
    for io in [IoChoice::Uring, IoChoice::Portable] {
        // (path, the directory holding the first entry its open creates)
        for (rel, holder) in [
            (format!("db-{io}"), ".".to_string()),
            (format!("top-{io}/db"), ".".to_string()),
            (format!("top-{io}/db2"), format!("top-{io}")),
        ] {
            let vfs = Hooked::new(real_vfs(io), SyncedDirs::default());
            let opts = Options::default()
                .io(io)
                .durability(Durability::Strict)
                .vfs(vfs.clone() as Arc<dyn Vfs>);
            let db = Db::open(&rel, opts).unwrap();
            db.put(b"k", b"acknowledged").unwrap();
            db.close().unwrap();
            let synced = vfs.hooks.0.lock().unwrap().clone();
            let holder = PathBuf::from(holder);
            assert!(
                synced.contains(&holder),
                "{rel}: {} (holding its new entry) was never fsynced: {synced:?}",
                holder.display()
            );
        }
    }
}
