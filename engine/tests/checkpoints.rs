//! Checkpoints, the MANIFEST, bounded recovery and compaction: snapshot–log equivalence on random
//! histories (a database that checkpoints against a twin that replays its whole log), log
//! truncation, leftovers removed at open, damage reported, the trim floor across restarts, disk
//! full during a checkpoint, codecs, and background checkpoints.

mod common;

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ringlog_db::io::{BackendInfo, EntryKind, FileLock, FsInfo, LogDriver, OpenOptions, VFile};
use ringlog_db::{Db, Durability, Error, IoChoice, Options, Retention};

fn key(n: u64) -> Vec<u8> {
    format!("k{n:03}").into_bytes()
}

fn small(io: IoChoice, durability: Durability) -> Options {
    opts(io, durability)
        .segment_size(64 << 10)
        .checkpoint_bytes(u64::MAX)
}

/// Every read the two databases answer, compared: each key's newest value and, at every LSN from
/// the floor up, its value there (the same answer, `HistoryTrimmed` included).
fn assert_same(a: &Db, b: &Db, nkeys: u64, ctx: &str) {
    assert_eq!(a.last_lsn(), b.last_lsn(), "{ctx}: last LSN");
    assert_eq!(scan(a), scan(b), "{ctx}: full scan");
    let last = a.last_lsn();
    let floor = a.stats().history_floor.max(b.stats().history_floor);
    for n in 0..nkeys {
        let k = key(n);
        let got = |db: &Db| db.get(&k).unwrap().map(|v| (v.to_vec(), v.lsn()));
        assert_eq!(got(a), got(b), "{ctx}: key {n}");
        for lsn in floor.max(1)..=last {
            let at = |db: &Db| {
                db.get_at(&k, lsn)
                    .map(|v| v.map(|v| (v.to_vec(), v.lsn())))
                    .map_err(|e| e.to_string())
            };
            assert_eq!(at(a), at(b), "{ctx}: key {n} at LSN {lsn}");
        }
    }
}

/// Random histories: the same transactions go to `a` (which checkpoints at random moments and is
/// reopened) and `b` (which never checkpoints: every open replays its whole log). After every
/// reopen both answer every read the same, for each retention policy; `a`'s log stays short.
fn equivalence(io: IoChoice, seed: u64, policy: Retention) {
    let (da, db_) = (tempdir(), tempdir());
    let o = small(io, Durability::Strict);
    let mut a = open(da.path(), o.clone());
    let mut b = open(db_.path(), o.clone());
    if policy != Retention::Snapshots {
        a.set_retention(policy).unwrap();
        b.set_retention(policy).unwrap();
    }
    let mut rng = Rng::new(seed);
    let nkeys = 12;
    let mut checkpoints = 0;
    for round in 0..6 {
        for _ in 0..60 {
            let n = 1 + rng.below(3);
            let ops: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..n)
                .map(|_| {
                    let k = key(rng.below(nkeys));
                    let v = (rng.below(4) != 0)
                        .then(|| vec![b'a' + rng.below(26) as u8; 1 + rng.below(300) as usize]);
                    (k, v)
                })
                .collect();
            let (ta, tb) = (a.begin(), b.begin());
            let apply = |mut t: ringlog_db::Txn<'_>| {
                for (k, v) in &ops {
                    match v {
                        Some(v) => t.put(k, v),
                        None => t.delete(k),
                    }
                    .unwrap();
                }
                t.commit().unwrap()
            };
            assert_eq!(
                apply(ta),
                apply(tb),
                "seed {seed}: the twins assign the same LSNs"
            );
            if rng.below(40) == 0 {
                a.checkpoint().unwrap();
                checkpoints += 1;
            }
        }
        if rng.below(2) == 0 {
            let info = a.checkpoint().unwrap();
            assert_eq!(info.lsn, a.last_lsn());
            checkpoints += 1;
        }
        let ctx = format!("seed {seed} {policy:?} round {round}");
        assert_same(&a, &b, nkeys, &format!("{ctx} before reopening"));
        a.close().unwrap();
        b.close().unwrap();
        drop((a, b));
        a = open(da.path(), o.clone());
        b = open(db_.path(), o.clone());
        assert_same(&a, &b, nkeys, &format!("{ctx} after reopening"));
    }
    assert!(checkpoints > 0);
    assert!(a.recovery_stats().checkpoint_lsn > 0 || checkpoints == 0);
}

#[test]
fn checkpoint_and_tail_equal_the_whole_log() {
    on_each_path(|io| {
        for seed in 1..=3 {
            equivalence(io, seed, Retention::Snapshots);
            equivalence(io, seed, Retention::All);
            equivalence(
                io,
                seed,
                Retention::LastVersions(NonZeroU32::new(2).unwrap()),
            );
        }
    });
}

/// Every segment wholly below a checkpoint is deleted once the MANIFEST naming it is durable, and
/// the next open replays only what follows it.
#[test]
fn checkpoints_truncate_the_log_and_bound_recovery() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = small(io, Durability::Strict);
        let db = open(dir.path(), o.clone());
        let value = vec![7u8; 1000];
        for i in 0..400u64 {
            db.put(&key(i % 20), &value).unwrap();
        }
        let segments = |p: &Path| {
            std::fs::read_dir(p)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".log")
                })
                .count()
        };
        let before = segments(dir.path());
        assert!(before > 4, "{before} segments");
        let info = db.checkpoint().unwrap();
        assert_eq!((info.keys, info.entries), (20, 20));
        assert!(info.segments_deleted as usize >= before - 2, "{info:?}");
        assert!(segments(dir.path()) <= 2);
        // A second checkpoint at the same LSN writes nothing.
        assert_eq!(db.checkpoint().unwrap().id, 0);
        let tail = db.put(b"after", b"checkpoint").unwrap();
        db.close().unwrap();
        drop(db);
        let db = open(dir.path(), o);
        let r = db.recovery_stats();
        assert_eq!(r.checkpoint_lsn, info.lsn);
        assert_eq!(r.checkpoint_keys, 20);
        assert_eq!(
            r.transactions_applied, 1,
            "only the tail is replayed: {r:?}"
        );
        assert_entry(&db, b"after", b"checkpoint", tail);
        for i in 0..20 {
            assert_eq!(db.get(&key(i)).unwrap().as_deref(), Some(&value[..]));
        }
        assert!(db.put(b"more", b"x").unwrap() > tail);
    });
}

/// Files no MANIFEST names are removed at open when they are provably leftovers: an unfinished
/// checkpoint, a checkpoint renamed but never named, the replaced one; segments below the first
/// needed one.
#[test]
fn leftovers_of_interrupted_checkpoints_are_removed_at_open() {
    let io = IoChoice::Portable;
    let dir = tempdir();
    let o = small(io, Durability::Strict);
    let db = open(dir.path(), o.clone());
    for i in 0..200u64 {
        db.put(&key(i % 10), &[1u8; 1000]).unwrap();
    }
    let info = db.checkpoint().unwrap();
    db.close().unwrap();
    drop(db);
    let p = dir.path();
    let name = |id: u64, ext: &str| p.join(format!("{id:020}.{ext}"));
    std::fs::write(name(info.id + 1, "ckpt.tmp"), b"half written").unwrap();
    std::fs::write(name(info.id + 2, "ckpt"), b"never named").unwrap();
    std::fs::write(name(info.id - 1, "ckpt"), b"replaced").unwrap();
    std::fs::write(name(1, "log"), b"an old segment").unwrap();
    let db = open(p, o);
    assert_eq!(db.recovery_stats().leftovers_removed, 4);
    for f in [
        name(info.id + 1, "ckpt.tmp"),
        name(info.id + 2, "ckpt"),
        name(info.id - 1, "ckpt"),
        name(1, "log"),
    ] {
        assert!(!f.exists(), "{} is still there", f.display());
    }
    assert!(name(info.id, "ckpt").exists());
    assert_eq!(db.get(&key(3)).unwrap().as_deref(), Some(&[1u8; 1000][..]));
}

/// Opens `dir` with checkpoint file `path` holding `original` with byte `at` flipped: the open
/// must fail with `Error::Corruption` naming that file at or before the byte; returns the offset.
fn flipped_byte_is_reported(
    dir: &Path,
    path: &Path,
    original: &[u8],
    at: usize,
    o: &Options,
) -> u64 {
    let mut bad = original.to_vec();
    bad[at] ^= 0x40;
    std::fs::write(path, &bad).unwrap();
    match Db::open(dir, o.clone()) {
        Err(Error::Corruption { file, offset, .. }) => {
            assert_eq!(file, path, "byte {at}");
            assert!(offset <= at as u64, "byte {at}: reported at {offset}");
            offset
        }
        other => panic!("flipped byte {at}: {:?}", other.map(|_| ())),
    }
}

/// A damaged checkpoint is an error naming the file and offset, never skipped for an older state;
/// a missing one too; a damaged MANIFEST names the MANIFEST.
#[test]
fn damaged_checkpoints_are_errors_naming_file_and_offset() {
    let io = IoChoice::Portable;
    let dir = tempdir();
    let o = small(io, Durability::Strict);
    let db = open(dir.path(), o.clone());
    for i in 0..300u64 {
        db.put(&key(i % 50), &[i as u8; 200]).unwrap();
    }
    let info = db.checkpoint().unwrap();
    db.close().unwrap();
    drop(db);
    let path = dir.path().join(format!("{:020}.ckpt", info.id));
    let original = std::fs::read(&path).unwrap();
    for at in [10usize, 64 + 40, original.len() / 2, original.len() - 20] {
        flipped_byte_is_reported(dir.path(), &path, &original, at, &o);
    }
    std::fs::write(&path, &original[..original.len() - 1]).unwrap();
    assert!(matches!(
        Db::open(dir.path(), o.clone()),
        Err(Error::Corruption { .. })
    ));
    std::fs::remove_file(&path).unwrap();
    match Db::open(dir.path(), o.clone()) {
        Err(Error::Corruption { file, reason, .. }) => {
            assert_eq!(file, path);
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("missing checkpoint: {:?}", other.map(|_| ())),
    }
    std::fs::write(&path, &original).unwrap();
    let db = open(dir.path(), o);
    assert_eq!(
        db.get(&key(49)).unwrap().as_deref(),
        Some(&[299u64 as u8; 200][..])
    );
}

/// The load reads a checkpoint a window of several blocks at a time: a checkpoint of several
/// windows, with blocks across window boundaries and one block larger than a window (a 3 MiB
/// value), loads whole on both I/O paths; a flipped byte in a later window, or inside the large
/// block, is reported in the block that holds it.
#[test]
fn checkpoints_of_many_read_windows_load_whole_and_report_damage_where_it_is() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = opts(io, Durability::BUFFERED)
            .segment_size(8 << 20)
            .checkpoint_bytes(u64::MAX)
            .checkpoint_on_close(false);
        let db = open(dir.path(), o.clone());
        let value = |i: u64| -> Vec<u8> {
            let len = if i == 1500 {
                3 << 20
            } else {
                1000 + (i % 7) as usize * 300
            };
            (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
        };
        for chunk in (0..3000u64).collect::<Vec<_>>().chunks(100) {
            let mut tx = db.begin();
            for &i in chunk {
                tx.put(&key(i), &value(i)).unwrap();
            }
            tx.commit().unwrap();
        }
        let info = db.checkpoint().unwrap();
        db.close().unwrap();
        drop(db);
        let path = dir.path().join(format!("{:020}.ckpt", info.id));
        let original = std::fs::read(&path).unwrap();
        assert!(original.len() > 8 << 20, "{} bytes", original.len());
        let db = open(dir.path(), o.clone());
        for i in 0..3000u64 {
            assert_eq!(
                db.get(&key(i)).unwrap().as_deref(),
                Some(&value(i)[..]),
                "key {i}"
            );
        }
        drop(db);
        // Where the 3 MiB value lies in the file.
        let big = &value(1500)[..64];
        let big_at = original
            .windows(big.len())
            .position(|w| w == big)
            .expect("the large value is in the checkpoint");
        for at in [
            (1 << 20) + 100,
            (5 << 20) + 7,
            big_at + (2 << 20),
            original.len() - 200,
        ] {
            let offset = flipped_byte_is_reported(dir.path(), &path, &original, at, &o);
            // In the block that holds the byte: at most a block's length before it.
            let block = if at > big_at && at < big_at + (3 << 20) {
                4 << 20
            } else {
                128 << 10
            };
            assert!(
                at as u64 - offset < block,
                "byte {at}: reported at {offset}"
            );
        }
        std::fs::write(&path, &original).unwrap();
        let db = open(dir.path(), o);
        assert_eq!(
            db.get(&key(2999)).unwrap().as_deref(),
            Some(&value(2999)[..])
        );
    });
}

/// The trim floor lives in the MANIFEST: `HistoryTrimmed` answers the same after a restart, and
/// the floor never moves backwards.
#[test]
fn the_trim_floor_survives_restarts() {
    let io = IoChoice::Portable;
    let dir = tempdir();
    let o = small(io, Durability::Strict);
    let db = open(dir.path(), o.clone());
    db.set_retention(Retention::LastVersions(NonZeroU32::new(1).unwrap()))
        .unwrap();
    let first = db.put(b"k", b"1").unwrap();
    for i in 0..50u32 {
        db.put(b"k", &i.to_le_bytes()).unwrap();
    }
    db.trim_history().unwrap();
    db.checkpoint().unwrap();
    let floor = db.stats().history_floor;
    assert!(floor > first);
    let answer = |db: &Db| {
        format!(
            "{:?}",
            db.get_at(b"k", first).map(|v| v.map(|v| v.to_vec()))
        )
    };
    let before = answer(&db);
    assert!(before.contains("HistoryTrimmed"), "{before}");
    db.close().unwrap();
    drop(db);
    let db = open(dir.path(), o);
    assert!(
        db.stats().history_floor >= floor,
        "the floor moved backwards"
    );
    assert_eq!(answer(&db), before);
}

/// A file system that reports ENOSPC for checkpoint writes while `full` is set.
struct FullForCheckpoints {
    inner: Arc<dyn ringlog_db::Vfs>,
    full: Arc<AtomicBool>,
}

/// Checkpoint writes fail with ENOSPC while `full` is set.
struct FailingWrites(Arc<AtomicBool>);

impl FileHooks for FailingWrites {
    fn write_all_at(&self, inner: &dyn VFile, buf: &[u8], offset: u64) -> std::io::Result<()> {
        if self.0.load(Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        inner.write_all_at(buf, offset)
    }
}

impl ringlog_db::Vfs for FullForCheckpoints {
    fn backend(&self) -> BackendInfo {
        self.inner.backend()
    }
    fn log_driver(&self) -> std::io::Result<Box<dyn LogDriver>> {
        self.inner.log_driver()
    }
    fn open(&self, path: &Path, opts: OpenOptions) -> std::io::Result<Box<dyn VFile>> {
        let f = self.inner.open(path, opts)?;
        if path.to_string_lossy().ends_with(".ckpt.tmp") {
            return Ok(Box::new(HookedFile {
                inner: f,
                hooks: FailingWrites(self.full.clone()),
            }));
        }
        Ok(f)
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn kind_of(&self, path: &Path) -> std::io::Result<Option<EntryKind>> {
        self.inner.kind_of(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn lock(&self, path: &Path) -> std::io::Result<Box<dyn FileLock>> {
        self.inner.lock(path)
    }
    fn filesystem(&self, path: &Path) -> std::io::Result<FsInfo> {
        self.inner.filesystem(path)
    }
}

/// ENOSPC while a checkpoint is written: a clear error, the database keeps serving from the
/// previous checkpoint and the log, nothing acknowledged is lost, and the next attempt succeeds.
#[test]
fn disk_full_during_a_checkpoint_loses_nothing() {
    on_each_path(|io| {
        let dir = tempdir();
        let full = Arc::new(AtomicBool::new(false));
        let o = small(io, Durability::Strict).vfs(Arc::new(FullForCheckpoints {
            inner: real_vfs(io),
            full: full.clone(),
        }));
        let db = open(dir.path(), o.clone());
        let mut acked = Vec::new();
        for i in 0..100u64 {
            acked.push((key(i), db.put(&key(i), &[i as u8; 500]).unwrap()));
        }
        let first = db.checkpoint().unwrap();
        for i in 100..200u64 {
            acked.push((key(i), db.put(&key(i), &[i as u8; 500]).unwrap()));
        }
        full.store(true, Ordering::SeqCst);
        let err = db.checkpoint().unwrap_err();
        assert!(is_enospc(&err), "{err}");
        // Still serving, still committing.
        acked.push((key(200), db.put(&key(200), &[200; 500]).unwrap()));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp") && n.contains("ckpt"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        db.close().unwrap();
        drop(db);
        let db = open(dir.path(), o.clone());
        assert_eq!(db.recovery_stats().checkpoint_lsn, first.lsn);
        for (k, lsn) in &acked {
            assert_eq!(db.get(k).unwrap().map(|v| v.lsn()), Some(*lsn));
        }
        full.store(false, Ordering::SeqCst);
        let next = db.checkpoint().unwrap();
        assert!(next.lsn > first.lsn);
    });
}

/// The codec is recorded in the MANIFEST; opening with another one is a typed error.
#[test]
fn opening_with_another_codec_is_an_error() {
    let dir = tempdir();
    let o = small(IoChoice::Portable, Durability::Strict);
    let db = open(dir.path(), o.clone());
    db.put(b"k", b"v").unwrap();
    db.checkpoint().unwrap();
    db.close().unwrap();
    drop(db);
    #[cfg(feature = "lz4")]
    match Db::open(dir.path(), o.clone().codec(ringlog_db::BlockCodec::Lz4)) {
        Err(Error::CodecMismatch {
            found, requested, ..
        }) => assert_eq!((found, requested), (0, 1)),
        other => panic!("{:?}", other.map(|_| ())),
    }
    // The MANIFEST's codec is checked even when the build lacks the codec asked for: damage the
    // recorded codec instead.
    let path = dir.path().join("MANIFEST");
    let mut m = ringlog_format::Manifest::decode(&std::fs::read(&path).unwrap()).unwrap();
    m.codec = 7;
    std::fs::write(&path, m.encode()).unwrap();
    match Db::open(dir.path(), o.clone()) {
        Err(Error::CodecMismatch {
            found, requested, ..
        }) => assert_eq!((found, requested), (7, 0)),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

/// With the LZ4 codec, checkpoints are smaller and read back the same.
#[cfg(feature = "lz4")]
#[test]
fn lz4_checkpoints_round_trip() {
    let dir = tempdir();
    let o = small(IoChoice::Portable, Durability::Strict).codec(ringlog_db::BlockCodec::Lz4);
    let db = open(dir.path(), o.clone());
    for i in 0..500u64 {
        db.put(&key(i), &[b'x'; 400]).unwrap();
    }
    let info = db.checkpoint().unwrap();
    assert!(info.bytes < 500 * 400 / 4, "{info:?}");
    db.close().unwrap();
    drop(db);
    let db = open(dir.path(), o);
    assert_eq!(
        db.get(&key(499)).unwrap().as_deref(),
        Some(&[b'x'; 400][..])
    );
}

/// Background checkpoints start once `checkpoint_bytes` of log were appended.
#[test]
fn background_checkpoints_follow_the_log() {
    let dir = tempdir();
    let o = opts(IoChoice::Portable, Durability::Strict)
        .segment_size(256 << 10)
        .checkpoint_bytes(1 << 20);
    let db = open(dir.path(), o.clone());
    let value = vec![3u8; 4000];
    for i in 0..600u64 {
        db.put(&key(i % 30), &value).unwrap();
    }
    eventually("a background checkpoint", Duration::from_secs(60), || {
        db.stats().checkpoints > 0
    });
    db.close().unwrap();
    drop(db);
    let db = open(dir.path(), o);
    assert!(db.recovery_stats().checkpoint_lsn > 0);
    assert_eq!(db.get(&key(29)).unwrap().as_deref(), Some(&value[..]));
}

/// A backup of a live database (a writer commits throughout) opens as a normal database holding
/// exactly the source's state at the backup's LSN, every retained version included.
#[test]
fn online_backup_is_a_consistent_copy() {
    on_each_path(|io| {
        let (dir, out) = (tempdir(), tempdir());
        let o = small(
            io,
            Durability::Buffered {
                interval: Duration::from_millis(2),
                max_pending: 64,
            },
        );
        let db = Arc::new(open(dir.path(), o.clone()));
        db.set_retention(Retention::All).unwrap();
        for i in 0..300u64 {
            db.put(&key(i % 40), &i.to_le_bytes()).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 300u64;
                while !stop.load(Ordering::Relaxed) {
                    db.put(&key(i % 40), &i.to_le_bytes()).unwrap();
                    i += 1;
                }
                i
            })
        };
        let dest = out.path().join("copy");
        let info = db.backup_to(&dest).unwrap();
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        assert!(
            matches!(db.backup_to(&dest), Err(Error::InvalidOptions(_))),
            "a non-empty destination is refused"
        );
        let copy = open(&dest, o.clone());
        assert_eq!(copy.last_lsn(), info.lsn);
        let floor = copy.stats().history_floor;
        for n in 0..40 {
            let k = key(n);
            for lsn in floor.max(1)..=info.lsn {
                let want = db.get_at(&k, lsn).unwrap().map(|v| (v.to_vec(), v.lsn()));
                let got = copy.get_at(&k, lsn).unwrap().map(|v| (v.to_vec(), v.lsn()));
                assert_eq!(got, want, "key {n} at LSN {lsn}");
            }
        }
        // The copy goes on as a database of its own, above every LSN the source handed out.
        assert!(copy.put(b"new", b"x").unwrap() > info.lsn);
    });
}

/// Writers, snapshot readers, trims and checkpoints at once: every snapshot read during the run
/// sees exactly its LSN's state, checkpoints never block a writer for good, and after a reopen
/// every acknowledged (Strict) commit is there.
#[test]
fn checkpoints_while_writers_and_readers_run() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = small(io, Durability::Strict).trim_threshold(64);
        let db = Arc::new(open(dir.path(), o.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let (db, stop) = (db.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) || i < 50 {
                        let k = key(w * 100 + i % 30);
                        let v = format!("{w}-{i}").into_bytes();
                        acked.push((k.clone(), v.clone(), db.put(&k, &v).unwrap()));
                        i += 1;
                    }
                    acked
                })
            })
            .collect();
        let reader = {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut checked = 0;
                // At least one pass whatever the scheduling (the checkpoints below may all end
                // before this thread first runs on a loaded machine), then until told to stop.
                while checked == 0 || !stop.load(Ordering::Relaxed) {
                    let snap = db.snapshot();
                    let a: Vec<_> = snap
                        .iter()
                        .unwrap()
                        .map(Result::unwrap)
                        .map(|(k, v)| (k.to_vec(), v.lsn()))
                        .collect();
                    // The same snapshot read again, after whatever ran meanwhile, answers the same.
                    let b: Vec<_> = snap
                        .iter()
                        .unwrap()
                        .map(Result::unwrap)
                        .map(|(k, v)| (k.to_vec(), v.lsn()))
                        .collect();
                    assert_eq!(a, b, "a snapshot changed under a checkpoint");
                    assert!(a.iter().all(|(_, l)| *l <= snap.lsn()));
                    checked += 1;
                }
                checked
            })
        };
        for _ in 0..5 {
            db.checkpoint().unwrap();
            db.trim_history().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        let acked: Vec<_> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        assert!(reader.join().unwrap() > 0);
        let info = db.checkpoint().unwrap();
        assert_eq!(info.lsn, db.last_lsn());
        Arc::try_unwrap(db).ok().unwrap().close().unwrap();
        let db = open(dir.path(), o);
        // The newest acknowledged value of every key is what the reopened database holds.
        let mut newest = std::collections::BTreeMap::new();
        for (k, v, lsn) in acked {
            let e = newest.entry(k).or_insert((Vec::new(), 0));
            if lsn > e.1 {
                *e = (v, lsn);
            }
        }
        for (k, (v, lsn)) in newest {
            assert_entry(&db, &k, &v, lsn);
        }
    });
}

/// A clean close checkpoints first (when enough log was written since the last checkpoint): the
/// next open replays nothing. The checkpoint then holds everything, so the close also retires the
/// log: no segment is left, the next open reads the checkpoint alone and starts a new segment
/// (numbered after the retired ones), and what it writes there is recovered on top. Turned off,
/// the open replays the log after the last checkpoint.
#[test]
fn a_clean_close_checkpoints_first_and_retires_the_log() {
    let segments = common::segment_files;
    for io in [IoChoice::Uring, IoChoice::Portable] {
        for on in [true, false] {
            let dir = tempdir();
            let o = opts(io, Durability::Strict)
                .segment_size(4 << 20)
                .checkpoint_on_close(on);
            let db = open(dir.path(), o.clone());
            let mut tx = db.begin();
            for i in 0..3000u64 {
                tx.put(&key(i), &[9u8; 500]).unwrap();
            }
            let lsn = tx.commit().unwrap();
            let before = segments(dir.path());
            assert!(!before.is_empty());
            db.close().unwrap();
            drop(db);
            let after = segments(dir.path());
            let db = open(dir.path(), o.clone());
            let r = db.recovery_stats().clone();
            if on {
                assert!(after.is_empty(), "{io}: the log is retired: {after:?}");
                assert_eq!(
                    (r.checkpoint_lsn, r.transactions_applied, r.segments),
                    (lsn, 0, 0),
                    "{io}: {r:?}"
                );
                let now = segments(dir.path());
                assert_eq!(now.len(), 1, "{io}: {now:?}");
                assert!(
                    now[0] > *before.last().unwrap(),
                    "{io}: {now:?} after {before:?}"
                );
            } else {
                assert_eq!(after, before, "{io}");
                assert_eq!(
                    (r.checkpoint_lsn, r.transactions_applied),
                    (0, 1),
                    "{io}: {r:?}"
                );
            }
            assert_eq!(db.get(&key(2999)).unwrap().map(|v| v.lsn()), Some(lsn));
            // A small write after it (no checkpoint at this close: too little log), recovered on
            // top of the checkpoint.
            let later = db.put(&key(7), b"later").unwrap();
            assert!(later > lsn, "{io}: LSNs continue after the retired log");
            db.close().unwrap();
            drop(db);
            let db = open(dir.path(), o);
            let r = db.recovery_stats().clone();
            assert_eq!(
                r.transactions_applied,
                if on { 1 } else { 2 },
                "{io}: {r:?}"
            );
            assert_eq!(db.get(&key(7)).unwrap().map(|v| v.lsn()), Some(later));
            assert_eq!(db.get(&key(2999)).unwrap().map(|v| v.lsn()), Some(lsn));
            assert!(db.put(&key(8), b"x").unwrap() > later);
        }
    }
}

/// The MANIFEST's transaction floor covers every transaction a checkpoint holds: since format
/// version 4 a transaction's id is its LSN and nothing counts ids per commit, so the floor is
/// derived (the ids recovered at open, and the visible LSN).
#[test]
fn a_checkpoint_records_a_transaction_floor_at_its_lsn() {
    on_each_path(|io| {
        let dir = tempdir();
        let db = Db::open(dir.path(), opts(io, Durability::Strict)).unwrap();
        let mut last = 0;
        for i in 0..5u32 {
            last = db.put(&i.to_be_bytes(), b"v").unwrap();
        }
        let lsn = db.checkpoint().unwrap().lsn;
        assert_eq!(lsn, last, "{io}");
        let read = || {
            let path = dir.path().join("MANIFEST");
            ringlog_format::Manifest::decode(&std::fs::read(path).unwrap()).unwrap()
        };
        assert!(read().txn_floor >= last, "{io}: {:?}", read());
        db.close().unwrap();
        // A reopened database keeps the floor and raises it with its own commits.
        let db = Db::open(dir.path(), opts(io, Durability::Strict)).unwrap();
        let next = db.put(b"after", b"v").unwrap();
        db.checkpoint().unwrap();
        assert!(read().txn_floor >= next, "{io}: {:?}", read());
    });
}

/// The ids of the segment files in `dir`, ascending.
fn segment_ids(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// The base LSN in segment `id`'s header: the last LSN assigned before its first record.
fn base_lsn(dir: &Path, id: u64) -> u64 {
    let bytes = std::fs::read(dir.join(format!("{id:020}.log"))).unwrap();
    ringlog_format::SegmentHeader::decode(&bytes)
        .expect("a valid segment header")
        .base_lsn
}

/// A checkpoint is taken at the last LSN assigned, and the transaction after it starts a new
/// segment: the log after a checkpoint begins at a segment's start, so the next checkpoint
/// needs none of the segments before it (recovery then reads none of the log below it).
#[test]
fn the_log_after_a_checkpoint_starts_a_new_segment() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = small(io, Durability::Strict).checkpoint_on_close(false);
        let db = open(dir.path(), o.clone());
        for i in 0..50u64 {
            db.put(&key(i), b"v").unwrap();
        }
        let a = db.checkpoint().unwrap();
        assert_eq!(a.lsn, db.last_assigned_lsn(), "at the last LSN assigned");
        let first = segment_ids(dir.path());
        assert_eq!(first.len(), 1, "{first:?}");
        let s = first[0];
        // Nothing new: nothing written.
        assert_eq!(db.checkpoint().unwrap().id, 0);
        assert_eq!(db.put(b"after-a", b"1").unwrap(), a.lsn + 1);
        assert_eq!(
            segment_ids(dir.path()),
            [s, s + 1],
            "the next transaction starts a segment"
        );
        assert_eq!(base_lsn(dir.path(), s + 1), a.lsn);
        for i in 0..5u64 {
            db.put(&key(i), b"w").unwrap();
        }
        let b = db.checkpoint().unwrap();
        assert_eq!(
            b.segments_deleted, 1,
            "segment {s} holds nothing above {}",
            a.lsn
        );
        assert_eq!(segment_ids(dir.path()), [s + 1]);
        let tail = db.put(b"after-b", b"2").unwrap();
        assert_eq!(segment_ids(dir.path()), [s + 1, s + 2]);
        assert_eq!(base_lsn(dir.path(), s + 2), b.lsn);
        db.close().unwrap();
        drop(db);
        let db = open(dir.path(), o);
        let r = db.recovery_stats();
        assert_eq!((r.checkpoint_lsn, r.transactions_applied), (b.lsn, 1));
        assert_entry(&db, b"after-b", b"2", tail);
        assert_eq!(db.get(b"after-a").unwrap().as_deref(), Some(&b"1"[..]));
        for i in 0..50u64 {
            let want: &[u8] = if i < 5 { b"w" } else { b"v" };
            assert_eq!(db.get(&key(i)).unwrap().as_deref(), Some(want), "key {i}");
        }
    });
}

/// A checkpoint with nothing to make durable starts no log thread: the run commits nothing, so
/// its close writes nothing to the log (no seal, no lease) and retires nothing — every file is
/// byte for byte as the open found it (FORMAT.md §6 rule 8). It once started the log thread,
/// whose close wrote a seal.
#[test]
fn a_checkpoint_with_nothing_to_do_writes_nothing() {
    for io in [IoChoice::Uring, IoChoice::Portable] {
        let dir = tempdir();
        let o = small(io, Durability::Strict);
        let db = open(dir.path(), o.clone());
        for i in 0..50u64 {
            db.put(&key(i), b"v").unwrap();
        }
        let first = db.checkpoint().unwrap();
        assert!(first.lsn > 0, "{io}");
        db.close().unwrap();
        drop(db);
        // The close retired the log: the next open creates the segment the log goes on in
        // (FORMAT.md §9.2). The state to keep is the one after that open.
        let db = open(dir.path(), o.clone());
        db.close().unwrap();
        drop(db);
        let before = dir_files(dir.path());
        for _ in 0..2 {
            let db = open(dir.path(), o.clone());
            let again = db.checkpoint().unwrap();
            assert_eq!(again.lsn, first.lsn, "{io}: nothing committed since");
            db.close().unwrap();
            drop(db);
            let after = dir_files(dir.path());
            if after != before {
                let names = |v: &[(std::path::PathBuf, Vec<u8>)]| {
                    v.iter()
                        .map(|(p, b)| format!("{} {}", p.display(), b.len()))
                        .collect::<Vec<_>>()
                };
                let changed: Vec<_> = after
                    .iter()
                    .filter(|f| !before.contains(f))
                    .map(|(p, _)| p.display().to_string())
                    .collect();
                panic!(
                    "{io}: a run that committed nothing changed the directory: {:?} -> {:?}, changed {changed:?}",
                    names(&before),
                    names(&after)
                );
            }
        }
        let db = open(dir.path(), o.clone());
        assert_eq!(db.get(&key(49)).unwrap().unwrap().as_bytes(), b"v", "{io}");
    }
}

/// Every file of a database directory but its lock, with its bytes, in name order.
fn dir_files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "LOCK")
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

/// `Db::checkpoint()` on a poisoned database (DURABILITY.md §3): when every visible commit was
/// durable before the failure (Strict), it runs, and the next open starts from it with every
/// acknowledged commit; when a visible commit is above the durable LSN (an acknowledged
/// Buffered one), it fails with `Poisoned` and changes nothing on disk — a checkpoint holding
/// that commit would make durable what the failure may have lost.
#[test]
fn a_checkpoint_on_a_poisoned_database() {
    on_each_path(|io| {
        // Strict: the third durable write fails.
        let dir = tempdir();
        let faults = Faults::new(3, FailMode::BeforeWrite);
        let o = small(io, Durability::Strict);
        let db = open(
            dir.path(),
            o.clone().vfs(FaultVfs::new(real_vfs(io), faults.clone())),
        );
        let mut acked = Vec::new();
        for i in 0..10u64 {
            match db.put(&key(i), b"strict") {
                Ok(lsn) => acked.push((i, lsn)),
                Err(e) => {
                    assert!(matches!(e, Error::Poisoned(_)), "{io}: {e:?}");
                    break;
                }
            }
        }
        assert!(db.stats().poisoned, "{io}: the fault never fired");
        assert_eq!(acked.len(), 2, "{io}: one durable write per Strict commit");
        let c = db
            .checkpoint()
            .unwrap_or_else(|e| panic!("{io}: a checkpoint of durable commits: {e}"));
        assert_eq!(c.lsn, acked[1].1, "{io}: it holds what was durable");
        assert_eq!(db.stats().checkpoint_lsn, c.lsn, "{io}");
        assert!(matches!(db.close(), Err(Error::Poisoned(_))), "{io}");
        drop(db);
        let db = open(dir.path(), o.clone());
        assert_eq!(
            db.recovery_stats().checkpoint_lsn,
            c.lsn,
            "{io}: opened from it"
        );
        for (i, lsn) in &acked {
            let v = db.get(&key(*i)).unwrap().expect("an acknowledged commit");
            assert_eq!((&*v, v.lsn()), (&b"strict"[..], *lsn), "{io}");
        }
        assert!(db.get(&key(acked.len() as u64)).unwrap().is_none(), "{io}");
        db.close().unwrap();

        // Buffered: the first commit's lease sync succeeds, the next sync fails with an
        // acknowledged commit above the durable LSN.
        let dir = tempdir();
        let faults = Faults::new(2, FailMode::BeforeWrite);
        let o = small(io, buffered_forever(usize::MAX));
        let db = open(
            dir.path(),
            o.clone().vfs(FaultVfs::new(real_vfs(io), faults.clone())),
        );
        let la = db.put(b"a", b"1").unwrap();
        db.sync().unwrap();
        let lb = db.put(b"b", b"2").unwrap();
        assert!(db.durable_lsn() < lb, "{io}: b is not durable yet");
        assert!(matches!(db.sync(), Err(Error::Poisoned(_))), "{io}");
        // Reads still return the acknowledged commit the failure may have lost.
        assert_eq!(&*db.get(b"b").unwrap().unwrap(), b"2", "{io}");
        let before = dir_files(dir.path());
        match db.checkpoint() {
            Err(Error::Poisoned(_)) => {}
            other => panic!("{io}: a checkpoint above the durable LSN: {other:?}"),
        }
        assert_eq!(
            dir_files(dir.path()),
            before,
            "{io}: the failed checkpoint wrote"
        );
        assert_eq!(db.stats().checkpoints, 0, "{io}");
        assert!(matches!(db.close(), Err(Error::Poisoned(_))), "{io}");
        drop(db);
        let db = open(dir.path(), o);
        let v = db.get(b"a").unwrap().expect("the durable commit");
        assert_eq!(v.lsn(), la, "{io}");
        assert!(db.get(b"b").unwrap().is_none(), "{io}: never written");
        db.close().unwrap();
    });
}

/// A history-keeping policy set while a snapshot held the floor below its entry: opening from a
/// checkpoint gives the floor replaying the whole log gives (the checkpoint recorded the floor the
/// snapshot held, lower than the entry's, and reads below the entry were served after one
/// restart and refused after the other — a review's find), and once the snapshot is dropped a
/// trim raises the running database's floor to the entry too.
#[test]
fn a_policy_floor_a_snapshot_held_back_is_the_same_from_a_checkpoint() {
    on_each_path(|io| {
        let run = |checkpoint: bool| {
            let dir = tempdir();
            let o = opts(io, Durability::Strict).checkpoint_on_close(false);
            let db = open(dir.path(), o.clone());
            let l1 = db.put(b"k", b"1").unwrap();
            let snap = db.snapshot();
            db.put(b"k", b"2").unwrap();
            let all = db.set_retention(Retention::All).unwrap();
            db.put(b"k", b"3").unwrap();
            if checkpoint {
                db.checkpoint().unwrap();
            }
            assert_eq!(snap.get(b"k").unwrap().as_deref(), Some(&b"1"[..]));
            drop(snap);
            db.trim_history().unwrap();
            assert_eq!(
                db.stats().history_floor,
                all - 1,
                "{io}: the trim after the snapshot raises the floor to the entry"
            );
            db.close().unwrap();
            drop(db);
            let db = open(dir.path(), o);
            let r = db.get_at(b"k", l1).map(|v| v.map(|v| v.to_vec()));
            let floor = db.stats().history_floor;
            db.close().unwrap();
            (format!("{r:?}"), floor)
        };
        let log_only = run(false);
        let with_checkpoint = run(true);
        assert_eq!(
            with_checkpoint, log_only,
            "{io}: checkpoint + tail vs the whole log"
        );
    });
}

/// A backup into the database's own directory, or below it — by name, through `..`, or through
/// a symbolic link — is refused, and the source goes on unharmed: a review found backups named
/// like the source's files making its next open fail, or poisoning it live.
#[test]
fn a_backup_inside_the_database_directory_is_refused() {
    on_each_path(|io| {
        let dir = tempdir();
        let out = tempdir();
        let db = open(dir.path(), small(io, Durability::Strict));
        for i in 0..50u64 {
            db.put(&key(i), b"v").unwrap();
        }
        let link = out.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        for dest in [
            dir.path().join("00000000000000000099.log"),
            dir.path().join("00000000000000000005.log.tmp"),
            dir.path().join("00000000000000000777.ckpt"),
            dir.path().join("sub"),
            dir.path().join("sub").join("..").join("x"),
            out.path().join("..").join(dir.path()).join("y"),
            link.join("z"),
        ] {
            match db.backup_to(&dest) {
                Err(Error::InvalidOptions(m)) => {
                    assert!(m.contains("inside the database"), "{io}: {m}")
                }
                other => panic!("{io}: a backup to {}: {other:?}", dest.display()),
            }
            assert!(!dest.exists(), "{io}: {} was created", dest.display());
        }
        db.put(b"after", b"the refusals").unwrap();
        db.close().unwrap();
        let db = open(dir.path(), small(io, Durability::Strict));
        assert_eq!(scan(&db).len(), 51, "{io}");
        // Beside it is fine.
        db.backup_to(out.path().join("copy")).unwrap();
        db.close().unwrap();
    });
}
