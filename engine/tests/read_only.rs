//! Read-only opens (`Db::open_read_only`): no lock, no write, no file created or removed, beside
//! a live writer; what they see (the state on disk when opened, torn tails left out but not cut,
//! leftovers left in place), and that every write through them fails with `Error::ReadOnly`. On
//! both I/O paths.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use ringlog_db::{Db, Durability, Error, IoChoice, Options, Retention};

/// Every file of `dir` with its bytes.
fn image(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn assert_read_only_error<T: std::fmt::Debug>(r: Result<T, Error>, what: &str) {
    match r {
        Err(Error::ReadOnly(_)) => {}
        other => {
            panic!("{what} through a read-only handle: expected Error::ReadOnly, got {other:?}")
        }
    }
}

#[test]
fn reads_beside_a_live_writer_and_never_writes() {
    on_each_path(|io| {
        let dir = tempdir();
        let writer = open(dir.path(), opts(io, Durability::Strict));
        for i in 0..200u32 {
            writer
                .put(format!("k{i:04}").as_bytes(), &i.to_le_bytes())
                .unwrap();
        }
        writer.delete(b"k0007").unwrap();
        writer.checkpoint().unwrap();
        writer.put(b"after", b"checkpoint").unwrap();
        let before = image(dir.path());
        // The writer holds the lock: a writable open is refused, a read-only one is not.
        assert!(matches!(
            Db::open(dir.path(), opts(io, Durability::Strict)),
            Err(Error::Locked(_))
        ));
        let ro = Db::open_read_only(dir.path(), opts(io, Durability::Strict)).unwrap();
        assert!(ro.is_read_only());
        assert!(!writer.is_read_only());
        // It writes no log, and its stats say so (they said "in-memory database").
        let s = ro.stats();
        assert_eq!(s.sync_strategy, None);
        assert_eq!(s.sync_strategy_reason, "read-only handle: it writes no log");
        assert_eq!(scan(&ro), scan(&writer));
        assert_eq!(ro.last_lsn(), writer.last_lsn());
        assert_eq!(ro.get(b"k0007").unwrap(), None);
        // Every write is refused, nothing changes.
        assert_read_only_error(ro.put(b"x", b"y"), "put");
        assert_read_only_error(ro.delete(b"k0001"), "delete");
        let mut tx = ro.begin();
        tx.put(b"x", b"y").unwrap();
        assert_read_only_error(tx.commit(), "a transaction's commit");
        // Even one whose condition fails: the write could never succeed.
        let mut cond = ro.begin();
        cond.fail_if_key_changed(b"k0001", None).unwrap();
        cond.put(b"k0001", b"y").unwrap();
        assert_read_only_error(cond.commit(), "a conditional transaction's commit");
        assert_read_only_error(ro.checkpoint(), "checkpoint");
        assert_read_only_error(
            ro.set_retention(Retention::LastVersions(std::num::NonZeroU32::MIN)),
            "set_retention",
        );
        assert_read_only_error(ro.label_run("x"), "label_run");
        let backup = tempdir();
        assert_read_only_error(ro.backup_to(backup.path()), "backup_to");
        // A read-only transaction commits (it writes nothing), and sync has nothing to do.
        let mut reads = ro.begin();
        assert!(reads.get(b"k0001").unwrap().is_some());
        reads.commit().unwrap();
        ro.sync().unwrap();
        // The log's history reads as on the writer.
        let runs = ro.runs().unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].last_lsn, writer.last_lsn());
        ro.close().unwrap();
        drop(ro);
        assert_eq!(
            image(dir.path()),
            before,
            "the read-only open changed the directory"
        );
        // The writer goes on; a new read-only open sees the newer state.
        writer.put(b"later", b"1").unwrap();
        let ro = Db::open_read_only(dir.path(), opts(io, Durability::Strict)).unwrap();
        assert_eq!(ro.get(b"later").unwrap().as_deref(), Some(&b"1"[..]));
    });
}

#[test]
fn creates_nothing_where_there_is_no_database() {
    // As `Db::open`: an in-memory durability with a directory is refused (it was accepted, and
    // the handle reported `InMemory` for a database on disk).
    let dir = tempdir();
    drop(open(
        dir.path(),
        opts(IoChoice::Portable, Durability::Strict),
    ));
    assert!(matches!(
        Db::open_read_only(
            dir.path(),
            opts(IoChoice::Portable, Durability::Strict).durability(Durability::InMemory)
        ),
        Err(Error::InvalidOptions(_))
    ));
    let dir = tempdir();
    let missing = dir.path().join("missing");
    assert!(matches!(
        Db::open_read_only(&missing, Options::default()),
        Err(Error::Io { .. })
    ));
    assert!(!missing.exists());
    assert!(matches!(
        Db::open_read_only(dir.path(), Options::default()),
        Err(Error::NotADatabase(_))
    ));
    assert!(image(dir.path()).is_empty(), "a file was created");
    assert!(matches!(
        Db::open_read_only(
            dir.path(),
            Options::default().recovery(ringlog_db::RecoveryMode::TruncateAtCorruption)
        ),
        Err(Error::InvalidOptions(_))
    ));
}

#[test]
fn leaves_a_torn_tail_and_leftovers_in_place() {
    on_each_path(|io| {
        let dir = tempdir();
        {
            let db = open(dir.path(), opts(io, buffered_forever(1 << 20)));
            for i in 0..50u32 {
                db.put(format!("k{i}").as_bytes(), b"v").unwrap();
            }
            db.close().unwrap();
        }
        // A torn write after the last record, and a segment creation a crash interrupted.
        let seg = dir.path().join(segment_files(dir.path()).last().unwrap());
        let expected = {
            let db = Db::open_read_only(dir.path(), opts(io, Durability::Strict)).unwrap();
            scan(&db)
        };
        let bytes = std::fs::read(&seg).unwrap();
        let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
        let at = end.next_multiple_of(512);
        let mut torn = bytes.clone();
        torn[at..at + 100].fill(0xAB);
        std::fs::write(&seg, &torn).unwrap();
        let leftover = dir.path().join("00000000000000000099.log.tmp");
        std::fs::write(&leftover, b"unfinished").unwrap();
        let before = image(dir.path());
        let ro = Db::open_read_only(dir.path(), opts(io, Durability::Strict)).unwrap();
        assert_eq!(scan(&ro), expected);
        let cut = ro.recovery_stats().bytes_truncated;
        assert!(cut >= 100, "the torn bytes were not seen ({cut})");
        assert_eq!(ro.recovery_stats().torn_segments_removed, 0);
        drop(ro);
        assert_eq!(
            image(dir.path()),
            before,
            "the read-only open cut or removed"
        );
        // A writable open then cuts and removes, as ever.
        let db = open(dir.path(), opts(io, Durability::Strict));
        assert_eq!(scan(&db), expected);
        assert_eq!(db.recovery_stats().bytes_truncated, cut);
        assert_eq!(db.recovery_stats().torn_segments_removed, 1);
        assert!(!leftover.exists());
    });
}

#[test]
fn mid_log_damage_is_an_error_naming_the_file() {
    let dir = tempdir();
    {
        let db = open(
            dir.path(),
            opts(ringlog_db::IoChoice::Portable, Durability::Strict),
        );
        for i in 0..100u32 {
            db.put(format!("k{i}").as_bytes(), &[7u8; 300]).unwrap();
        }
    }
    let seg = dir.path().join(&segment_files(dir.path())[0]);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[4096 + 40] ^= 0xFF;
    std::fs::write(&seg, &bytes).unwrap();
    match Db::open_read_only(dir.path(), Options::default()) {
        Err(Error::Corruption { file, .. }) => assert_eq!(file, seg),
        other => panic!("expected a corruption error, got {:?}", other.map(|_| ())),
    }
}

/// A writer commits, rotates segments, checkpoints and compacts without pause while read-only
/// opens follow one another: each succeeds and sees a prefix of the writer's commits (key `i`
/// was written by the `i`-th commit; a read-only open sees keys `0..n` for some `n`, all of
/// them), never less than what was durable before it began.
#[test]
fn every_open_beside_a_busy_writer_sees_a_durable_prefix() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, Durability::Strict).checkpoint_bytes(1 << 20);
        let writer = open(dir.path(), o.clone());
        let first = writer.put(b"n00000000", b"0").unwrap();
        let stop = AtomicBool::new(false);
        let mut seen = 0;
        std::thread::scope(|s| {
            let commits = s.spawn(|| {
                let mut i = 1u32;
                while !stop.load(Ordering::Relaxed) && i < 200_000 {
                    writer
                        .put(format!("n{i:08}").as_bytes(), &[b'v'; 200])
                        .unwrap();
                    i += 1;
                }
            });
            // The writer's first commit is durable before the first open: every open below
            // runs beside a writer that has started, however the threads are scheduled.
            while writer.durable_lsn() <= first && !commits.is_finished() {
                std::thread::yield_now();
            }
            for round in 0..30 {
                let durable = writer.durable_lsn();
                let ro = Db::open_read_only(dir.path(), o.clone())
                    .unwrap_or_else(|e| panic!("read-only open {round}: {e}"));
                let keys: Vec<Vec<u8>> = scan(&ro).into_iter().map(|(k, _, _)| k).collect();
                for (i, k) in keys.iter().enumerate() {
                    assert_eq!(
                        k,
                        format!("n{i:08}").as_bytes(),
                        "open {round}: key {i} of {} is not the {i}-th commit's",
                        keys.len()
                    );
                }
                assert!(
                    ro.last_lsn() >= durable,
                    "open {round}: saw LSN {} but {durable} was durable before it began",
                    ro.last_lsn()
                );
                assert!(keys.len() >= seen, "open {round} saw fewer commits");
                seen = keys.len();
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert!(seen > 1, "the writer committed nothing while the reads ran");
    });
}

/// Counts `sync_data` calls on segment files opened through it.
#[derive(Default)]
struct SegmentSyncs(std::sync::Arc<std::sync::atomic::AtomicUsize>);

/// Counts the syncs of one file.
struct CountSyncs(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl FileHooks for CountSyncs {
    fn sync_data(&self, inner: &dyn ringlog_db::io::VFile) -> std::io::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        inner.sync_data()
    }
    fn sync_all(&self, inner: &dyn ringlog_db::io::VFile) -> std::io::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        inner.sync_all()
    }
}

impl Hooks for SegmentSyncs {
    fn open(
        &self,
        inner: &dyn ringlog_db::io::Vfs,
        path: &Path,
        opts: ringlog_db::io::OpenOptions,
    ) -> std::io::Result<Box<dyn ringlog_db::io::VFile>> {
        let file = inner.open(path, opts)?;
        if path.extension().is_none_or(|e| e != "log") {
            return Ok(file);
        }
        Ok(Box::new(HookedFile {
            inner: file,
            hooks: CountSyncs(self.0.clone()),
        }))
    }
}

/// A read-only handle claims durable only what it knows to be: its checkpoint's LSN at first —
/// the log it read may hold a writer's unsynced commits — and, once `wait_durable` has
/// fdatasynced the log's files (through read-only descriptors, changing no byte), its last LSN.
/// A review found it answering `wait_durable` at once and reporting the writer's lease bound,
/// above every LSN, as its durable LSN.
#[test]
fn a_read_only_handle_claims_durable_only_what_it_synced() {
    on_each_path(|io| {
        let dir = tempdir();
        let writer = open(dir.path(), opts(io, Durability::Strict));
        for i in 0..100u32 {
            writer.put(format!("k{i:04}").as_bytes(), b"v").unwrap();
        }
        let ckpt = writer.checkpoint().unwrap().lsn;
        for i in 0..20u32 {
            writer.put(format!("after{i:02}").as_bytes(), b"v").unwrap();
        }
        let before = image(dir.path());
        let hooks = SegmentSyncs::default();
        let syncs = hooks.0.clone();
        let vfs = Hooked::new(real_vfs(io), hooks);
        let ro = Db::open_read_only(
            dir.path(),
            opts(io, Durability::Strict).vfs(vfs as std::sync::Arc<dyn ringlog_db::io::Vfs>),
        )
        .unwrap();
        let last = ro.last_lsn();
        assert_eq!(last, writer.last_lsn(), "{io}");
        assert_eq!(
            ro.durable_lsn(),
            ckpt,
            "{io}: the checkpoint's LSN, not the lease bound"
        );
        assert_eq!(
            syncs.load(Ordering::SeqCst),
            0,
            "{io}: the open syncs nothing"
        );
        // At or below what it knows: nothing to sync.
        ro.wait_durable(ckpt).unwrap();
        assert_eq!(syncs.load(Ordering::SeqCst), 0, "{io}");
        ro.wait_durable(last).unwrap();
        let synced = syncs.load(Ordering::SeqCst);
        assert!(synced >= 1, "{io}: the log's segments were synced");
        assert_eq!(ro.durable_lsn(), last, "{io}");
        // Once known, not again.
        ro.wait_durable(last).unwrap();
        assert_eq!(syncs.load(Ordering::SeqCst), synced, "{io}");
        assert!(matches!(
            ro.wait_durable(last + 1),
            Err(Error::NotYetVisible { requested, visible }) if requested == last + 1 && visible == last
        ));
        ro.close().unwrap();
        drop(ro);
        assert_eq!(image(dir.path()), before, "{io}: no byte changed");
    });
}
