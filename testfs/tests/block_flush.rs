//! Strict commits reach the device: on loop-mounted ext4 (with its journal), xfs and btrfs, every
//! acknowledged `Strict` put is followed by at least one completed flush request of the loop
//! device (`/sys/block/loopN/stat`, field 15 "flush I/Os"), on both I/O paths, with default
//! options (`O_DIRECT`, `RWF_DSYNC`, zero-filled segments) but for durability and segment size.
//!
//! A commit acknowledged without a device flush sits in the device's volatile write cache: lost
//! on power loss. Other activity on the filesystem (journal commits) can only add flushes, never
//! hide a missing one. The loop device has a volatile write cache and no FUA (checked below), so
//! a FUA write reaches it as a write plus a flush request and is counted too.

use std::path::Path;

use ringlog_db::{Db, Durability, IoChoice, Options};
use ringlog_testfs::block::{BlockFs, BlockMount, LoopDevice};
use ringlog_testfs::skip_or_fail;

const PUTS: usize = 10;
const SEG: u64 = 256 << 10;

fn io_name(io: IoChoice) -> &'static str {
    io.name()
}

fn value(i: usize) -> Vec<u8> {
    (0..4000).map(|j| (i * 17 + j) as u8).collect()
}

/// Runs the puts on one I/O path in `dir` on the filesystem of `lo`; returns the problems found.
fn commits_flush(fs: BlockFs, lo: &LoopDevice, dir: &Path, io: IoChoice) -> Vec<String> {
    let tag = format!("[{fs}, {}]", io_name(io));
    let opts = Options::default()
        .io(io)
        .durability(Durability::Strict)
        .segment_size(SEG);
    let db = match Db::open(dir, opts.clone()) {
        Ok(db) => db,
        Err(e) => return vec![format!("{tag} open failed: {e}")],
    };
    let mut problems = Vec::new();
    let mut flushes = Vec::new();
    let mut writes = Vec::new();
    let mut lsns = Vec::new();
    for i in 0..PUTS {
        let before = match lo.stat() {
            Ok(s) => s,
            Err(e) => return vec![format!("{tag} {e}")],
        };
        match db.put(format!("k{i}").as_bytes(), &value(i)) {
            Ok(lsn) => lsns.push(lsn),
            Err(e) => {
                problems.push(format!("{tag} put {i} failed: {e}"));
                break;
            }
        }
        let after = match lo.stat() {
            Ok(s) => s,
            Err(e) => return vec![format!("{tag} {e}")],
        };
        flushes.push(after.flushes() - before.flushes());
        writes.push(after.writes() - before.writes());
    }
    let stats = db.stats();
    eprintln!(
        "{tag} backend {:?}, direct_io {}: device flushes per Strict put {flushes:?}, \
         device writes per put {writes:?}",
        stats.backend.as_ref().map(|b| b.kind),
        stats.direct_io
    );
    if let Some((i, _)) = flushes.iter().enumerate().find(|(_, &f)| f == 0) {
        problems.push(format!(
            "{tag} put {i} was acknowledged with no device flush (flushes per put: {flushes:?})"
        ));
    }
    if let Err(e) = db.close() {
        problems.push(format!("{tag} close failed: {e}"));
    }
    drop(db);
    // What was acknowledged reads back after a reopen.
    match Db::open(dir, opts) {
        Ok(db) => {
            for (i, lsn) in lsns.iter().enumerate() {
                match db.get(format!("k{i}").as_bytes()) {
                    Ok(Some(v)) if v.as_bytes() == value(i) && v.lsn() == *lsn => {}
                    other => problems.push(format!(
                        "{tag} key {i} after reopen: {:?}",
                        other.map(|o| o.map(|v| v.lsn()))
                    )),
                }
            }
            let _ = db.close();
        }
        Err(e) => problems.push(format!("{tag} reopen failed: {e}")),
    }
    problems
}

fn check(fs: BlockFs) {
    if let Some(reason) = fs.unavailable() {
        skip_or_fail(reason);
        return;
    }
    // On the root disk, not in a tmpfs: the loop device's flushes then reach a real filesystem.
    let work = tempfile::Builder::new()
        .prefix(&format!("ringlog-{fs}-"))
        .tempdir_in("/var/tmp")
        .expect("temporary directory in /var/tmp");
    let lo = match LoopDevice::create(&work.path().join("fs.img"), BlockFs::IMAGE_SIZE) {
        Ok(lo) => lo,
        Err(e) => {
            skip_or_fail(format!("{fs}: no loop device: {e}"));
            return;
        }
    };
    lo.mkfs(fs)
        .unwrap_or_else(|e| panic!("{fs}: mkfs on {}: {e}", lo.path().display()));
    // With FUA, a durable write could complete without any flush request: the count would not
    // measure durability any more.
    let cache = (lo.queue_attr("write_cache"), lo.queue_attr("fua"));
    assert!(
        matches!(&cache, (Ok(wc), Ok(fua)) if wc == "write back" && fua == "0"),
        "{fs}: {} must have a volatile write cache and no FUA for this test, has {cache:?}",
        lo.path().display()
    );
    let mnt = work.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = BlockMount::mount(lo.path(), fs, &mnt).unwrap_or_else(|e| panic!("{fs}: {e}"));
    let mut problems = Vec::new();
    for io in [IoChoice::Uring, IoChoice::Portable] {
        problems.extend(commits_flush(fs, &lo, &mnt.join(io_name(io)), io));
    }
    drop(mounted);
    drop(lo);
    assert!(
        problems.is_empty(),
        "{fs}: Strict commits without a device flush:\n{}",
        problems.join("\n")
    );
}

#[test]
fn ext4_strict_commits_flush_the_device() {
    check(BlockFs::Ext4);
}

#[test]
fn xfs_strict_commits_flush_the_device() {
    check(BlockFs::Xfs);
}

#[test]
fn btrfs_strict_commits_flush_the_device() {
    check(BlockFs::Btrfs);
}
