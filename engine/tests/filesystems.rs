//! The engine opens and stays correct on filesystems that refuse O_DIRECT or fallocate:
//! tmpfs (`/dev/shm`) and a loop-mounted ext2 (no extents, so `fallocate` is EOPNOTSUPP).

use std::path::Path;
use std::process::Command;

use ringlog_db::{Db, Durability, IoChoice, Options, Preallocate};

const PATHS: [IoChoice; 2] = [IoChoice::Uring, IoChoice::Portable];

/// Writes enough to rotate segments, reopens and checks every value and version.
fn exercise(dir: &Path, io: IoChoice, prealloc: Preallocate) {
    let opts = Options::default()
        .io(io)
        .durability(Durability::Strict)
        .segment_size(128 << 10)
        .preallocate(prealloc);
    let db =
        Db::open(dir, opts.clone()).unwrap_or_else(|e| panic!("{io} on {}: {e}", dir.display()));
    let mut lsns = Vec::new();
    for i in 0..400u32 {
        let mut tx = db.begin();
        tx.put(format!("k{i:04}").as_bytes(), &[i as u8; 300])
            .unwrap();
        tx.put(b"last", &i.to_le_bytes()).unwrap();
        lsns.push(tx.commit().unwrap());
    }
    let stats = db.stats();
    assert!(stats.segments_created > 1, "{io}: segments rotated");
    db.close().unwrap();
    let db = Db::open(dir, opts).unwrap();
    assert_eq!(db.recovery_stats().transactions_applied, 400, "{io}");
    for (i, lsn) in lsns.iter().enumerate() {
        let v = db.get(format!("k{i:04}").as_bytes()).unwrap().unwrap();
        assert_eq!((v.as_bytes(), v.lsn()), (&[i as u8; 300][..], *lsn));
    }
    assert_eq!(
        db.get(b"last").unwrap().unwrap().as_bytes(),
        399u32.to_le_bytes()
    );
    db.close().unwrap();
}

#[test]
fn tmpfs_dev_shm() {
    for io in PATHS {
        for prealloc in [Preallocate::ZeroFill, Preallocate::None] {
            let dir = tempfile::tempdir_in("/dev/shm").expect("/dev/shm must exist on Linux");
            exercise(dir.path(), io, prealloc);
        }
    }
}

struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

fn root_or_skip(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("RINGLOG_SKIP_ROOT_TESTS").is_some() {
        eprintln!("skipping {what}: not root and RINGLOG_SKIP_ROOT_TESTS is set");
        return false;
    }
    panic!("{what} needs root (to mount a filesystem); set RINGLOG_SKIP_ROOT_TESTS=1 to skip it");
}

#[test]
fn ext2_without_fallocate() {
    if !root_or_skip("ext2_without_fallocate") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("ext2.img");
    let mnt = work.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    std::fs::File::create(&image)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let mkfs = Command::new("mkfs.ext2")
        .arg("-q")
        .arg("-F")
        .arg(&image)
        .status()
        .expect("mkfs.ext2 (e2fsprogs) is needed");
    assert!(mkfs.success(), "mkfs.ext2 failed");
    let mount = Command::new("mount")
        .args(["-o", "loop"])
        .arg(&image)
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(mount.success(), "mount -o loop failed");
    let _guard = Mounted(&mnt);
    // Prove the premise: this filesystem refuses fallocate.
    let probe = std::fs::File::create(mnt.join("probe")).unwrap();
    // SAFETY: fallocate on a descriptor we own; no memory is passed.
    let r = unsafe { libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(&probe), 0, 0, 4096) };
    assert_eq!(
        (r, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::EOPNOTSUPP)),
        "ext2 should refuse fallocate"
    );
    drop(probe);
    for io in PATHS {
        let dir = mnt.join(format!("db-{io}"));
        exercise(&dir, io, Preallocate::ZeroFill);
    }
}
