//! A truncating recovery's LSN floor survives the open stopping after the cut: the LSNs the cut
//! took away are never handed out again (a review's find: the floor lived only in the segment
//! the open creates after the cut, and an open that stopped before it — a full disk here —
//! left none; the next open took the damage for a torn tail and reused acknowledged LSNs).

mod common;
mod segfiles;

use std::io;
use std::path::Path;
use std::sync::Arc;

use common::{on_each_path, real_vfs, tempdir, Hooked, Hooks};
use ringlog_db::io::{VFile, Vfs};
use ringlog_db::{Db, Durability, Error, IoChoice, Options, RecoveryMode};
use ringlog_format::RecordKind;
use segfiles::{epoch, flip, records, segments};

/// The offset of the last Write record of the segment at `path`.
fn last_write(path: &Path, epoch: u64) -> u64 {
    records(path, epoch)
        .into_iter()
        .rfind(|r| r.1 == RecordKind::Write)
        .expect("a write")
        .0
}

/// A disk on which creating a new segment (`<id>.log.tmp`) fails with ENOSPC.
struct NoNewSegments;

impl Hooks for NoNewSegments {
    fn open(
        &self,
        inner: &dyn Vfs,
        path: &Path,
        opts: ringlog_db::io::OpenOptions,
    ) -> io::Result<Box<dyn VFile>> {
        if opts.create && path.to_string_lossy().ends_with(".log.tmp") {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        inner.open(path, opts)
    }
}

#[test]
fn an_interrupted_truncating_recovery_keeps_its_lsn_floor() {
    on_each_path(|io: IoChoice| {
        let dir = tempdir();
        let o = Options::default()
            .io(io)
            .segment_size(256 << 10)
            .durability(Durability::Strict)
            .lease_span(4)
            .checkpoint_on_close(false)
            .checkpoint_bytes(u64::MAX);
        let db = Db::open(dir.path(), o.clone()).unwrap();
        let mut acked = 0;
        let mut i = 0u32;
        while segments(dir.path()).len() < 3 {
            acked = db.put(format!("k{i:06}").as_bytes(), &[7u8; 300]).unwrap();
            i += 1;
        }
        db.close().unwrap();
        let segs = segments(dir.path());
        let epoch = epoch(dir.path());
        // Damage the last write of segment 1: only segment 2's record of where 1 ends proves
        // it is mid-log corruption, not a torn tail.
        flip(&segs[0], last_write(&segs[0], epoch) + 40);
        match Db::open(dir.path(), o.clone()) {
            Err(Error::Corruption { file, .. }) => assert_eq!(file, segs[0]),
            other => panic!("{io:?}: expected Corruption, got {:?}", other.map(|_| ())),
        }
        // The truncating open sets segments 2.. aside, then cannot create the next segment.
        let full: Arc<dyn Vfs> = Hooked::new(real_vfs(io), NoNewSegments);
        let r = Db::open(
            dir.path(),
            o.clone()
                .recovery(RecoveryMode::TruncateAtCorruption)
                .vfs(full),
        );
        assert!(r.is_err(), "{io:?}: the new segment cannot be created");
        assert_eq!(
            segments(dir.path()),
            vec![segs[0].clone()],
            "2.. were set aside"
        );
        // Space is back: a plain open takes the damage for a torn tail now.
        let db = Db::open(dir.path(), o).expect("opens");
        let next = db.put(b"after", b"x").unwrap();
        assert!(
            next > acked,
            "{io:?}: LSN {next} reused: LSNs up to {acked} were acknowledged before the cut"
        );
        db.close().unwrap();
    });
}
