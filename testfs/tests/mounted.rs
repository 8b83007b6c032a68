//! The FUSE filesystem itself, mounted: POSIX operations the engine uses, the sync counters and
//! the power-loss model, seen through real system calls.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use ringlog_testfs::{fuse_or_skip, skip_or_fail, MountedFs, TestFs, Unmounted};

fn mount_or_skip(test: &str, dir: &tempfile::TempDir) -> Option<MountedFs> {
    if !fuse_or_skip(test) {
        return None;
    }
    match TestFs::mount(dir.path()) {
        Ok(fs) => Some(fs),
        Err(e) => {
            skip_or_fail(format!("{test}: {e}"));
            None
        }
    }
}

#[test]
fn files_dirs_and_the_power_loss_model() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = mount_or_skip("files_dirs_and_the_power_loss_model", &dir) else {
        return;
    };
    let root = fs.path().to_path_buf();
    fs::create_dir_all(root.join("db/sub")).unwrap();
    let mut f = File::create(root.join("db/synced")).unwrap();
    f.write_all(b"durable").unwrap();
    f.sync_data().unwrap();
    f.write_all(b" and lost").unwrap();
    drop(f);
    let mut g = File::create(root.join("db/unsynced")).unwrap();
    g.write_all(b"gone").unwrap();
    g.sync_all().unwrap();
    g.set_len(1).unwrap(); // size changes wait for the next fsync
    drop(g);
    fs::write(root.join("db/tmp"), b"x").unwrap();
    fs::rename(root.join("db/tmp"), root.join("db/sub/renamed")).unwrap();
    fs::write(root.join("db/victim"), b"y").unwrap();
    fs::remove_file(root.join("db/victim")).unwrap();
    File::open(root.join("db")).unwrap().sync_all().unwrap();

    let mut names: Vec<_> = fs::read_dir(root.join("db"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["sub", "synced", "unsynced"]);
    assert_eq!(
        fs::read(root.join("db/synced")).unwrap(),
        b"durable and lost"
    );

    let s = fs.stats("db/synced").unwrap();
    assert_eq!((s.fdatasyncs, s.fsyncs), (1, 0), "{s:?}");
    assert!(s.writes >= 2 && s.unsynced_changes >= 1, "{s:?}");
    let u = fs.stats("db/unsynced").unwrap();
    assert_eq!((u.fsyncs, u.current_len, u.durable_len), (1, 1, 4), "{u:?}");
    assert!(fs.dir_syncs() >= 1);
    assert_eq!(fs.total_syncs(), 2);
    assert_eq!(
        fs.stats("db/nope").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    let victim = fs.file_stats();
    assert!(
        victim
            .iter()
            .any(|(p, linked, _)| p.ends_with("victim") && !linked),
        "{victim:?}"
    );

    let image = fs.power_cut();
    assert_eq!(image.file("db/synced"), Some(&b"durable"[..]));
    assert_eq!(image.file("db/unsynced"), Some(&b"gone"[..]));
    assert_eq!(image.file("db/sub/renamed"), Some(&b""[..]));
    assert_eq!(image.file("db/victim"), None);

    let fs = image.mount(dir.path()).unwrap();
    assert_eq!(fs::read(root.join("db/synced")).unwrap(), b"durable");
    assert_eq!(fs::read(root.join("db/unsynced")).unwrap(), b"gone");
    assert_eq!(
        fs.stats("db/synced").unwrap().syncs(),
        0,
        "counters start afresh"
    );
    assert_eq!(fs.unmount().unwrap(), Unmounted::Clean);
}

#[test]
fn no_fallocate_but_flock_and_o_direct_work() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = mount_or_skip("no_fallocate_but_flock_and_o_direct_work", &dir) else {
        return;
    };
    let path = fs.path().join("seg");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .expect("O_DIRECT opens go through the kernel's FUSE direct-I/O path");
    // SAFETY: fallocate on a descriptor we own; no memory is passed.
    let r = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, 1 << 16) };
    let e = io::Error::last_os_error();
    assert_eq!(
        (r, e.raw_os_error()),
        (-1, Some(libc::EOPNOTSUPP)),
        "fallocate must be unsupported, as on FUSE filesystems"
    );
    f.set_len(1 << 16).unwrap();
    let mut storage = Vec::new();
    f.write_all_at(ringlog_testfs::aligned_block(&mut storage, 7), 4096)
        .unwrap();
    f.sync_data().unwrap();
    let mut back = vec![0u8; 8192];
    File::open(&path)
        .unwrap()
        .read_exact_at(&mut back, 0)
        .unwrap();
    assert!(back[..4096].iter().all(|&b| b == 0) && back[4096..].iter().all(|&b| b == 7));
    assert_eq!(fs.durable_image().file("seg").unwrap().len(), 1 << 16);

    // The engine's LOCK: flock(LOCK_EX | LOCK_NB) on two open file descriptions conflicts.
    let lock = |p: &std::path::Path| {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(p)
            .unwrap();
        // SAFETY: flock on a descriptor we own; no memory is passed.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        (f, r == 0)
    };
    let (held, ok) = lock(&fs.path().join("LOCK"));
    assert!(ok, "first flock: {}", io::Error::last_os_error());
    let (_, second) = lock(&fs.path().join("LOCK"));
    assert!(!second, "a second exclusive flock must fail");
    drop(held);
    assert!(
        lock(&fs.path().join("LOCK")).1,
        "released with the descriptor"
    );
    drop(f);
    drop(fs);
}

#[test]
fn drop_while_a_file_is_open_unmounts_lazily() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = mount_or_skip("drop_while_a_file_is_open_unmounts_lazily", &dir) else {
        return;
    };
    let mut f = File::create(fs.path().join("open")).unwrap();
    let image = fs.power_cut();
    // The detached, dead filesystem still serves the open descriptor; nothing becomes durable.
    f.write_all(b"after the cut").unwrap();
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(image.file("open"), Some(&b""[..]));
    let again = image.mount(dir.path()).unwrap();
    assert_eq!(fs::read(again.path().join("open")).unwrap(), b"");
    assert_eq!(again.unmount().unwrap(), Unmounted::Clean);
}
