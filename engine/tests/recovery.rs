//! Recovery: replay, atomicity, torn tails and mid-log corruption, on both I/O paths.

mod segfiles;

use std::path::{Path, PathBuf};

use ringlog_db::{Db, Durability, Error, IoChoice, Options, RecoveryMode};
use ringlog_format::{
    decode_record, encode_record, RecordKind, RecordSpec, SegmentHeader, SegmentPos,
    SEGMENT_HEADER_LEN,
};
use segfiles::{epoch, flip, opts, records, seg_id, segments, Rec, PATHS};

fn buffered(io: IoChoice) -> Options {
    opts(io).durability(Durability::Buffered {
        interval: std::time::Duration::from_secs(3600),
        max_pending: usize::MAX,
    })
}

fn state(db: &Db) -> Vec<(Vec<u8>, Vec<u8>, u64)> {
    db.range::<&[u8], _>(..)
        .unwrap()
        .map(Result::unwrap)
        .map(|(k, v)| (k.to_vec(), v.to_vec(), v.lsn()))
        .collect()
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
    f.sync_all().unwrap();
}

/// Appends hand-built records to the last segment after its last valid record, in a batch of
/// their own starting on a 4096 boundary, and returns nothing: used to plant incomplete,
/// aborted and orphaned transactions exactly as a crashed writer could leave them.
fn append_raw(dir: &Path, build: impl Fn(u64, u64) -> Vec<RecordSpec<'static>>) {
    let path = segments(dir).pop().unwrap();
    let ep = epoch(dir);
    let recs = records(&path, ep);
    let (last_off, ..) = *recs.last().unwrap();
    let buf = std::fs::read(&path).unwrap();
    let id = seg_id(&path);
    let last_len = decode_record(
        &buf,
        last_off as usize,
        SegmentPos {
            segment_id: id,
            epoch: ep,
            offset: last_off,
        },
    )
    .unwrap()
    .encoded_len() as u64;
    let start = (last_off + last_len).next_multiple_of(4096);
    let last_lsn = recs.iter().map(|r| r.3).max().unwrap();
    let mut bytes = Vec::new();
    let mut at = start;
    let head = RecordSpec::batch_head(9, 0, start, start as u32);
    for mut spec in std::iter::once(head).chain(build(start, last_lsn)) {
        spec.batch_start = start as u32;
        let mut tmp = vec![0u8; 1024];
        let n = encode_record(
            &mut tmp,
            &spec,
            SegmentPos {
                segment_id: id,
                epoch: ep,
                offset: at,
            },
        )
        .unwrap();
        bytes.extend_from_slice(&tmp[..n]);
        at += n as u64;
    }
    // The gap between the last valid record and `start` must decode: pad it like the writer.
    let end = last_off + last_len;
    if start > end {
        let mut pad = vec![0u8; (start - end) as usize];
        if pad.len() >= ringlog_format::RECORD_HEADER_LEN {
            ringlog_format::encode_padding(
                &mut pad,
                recs.last().unwrap().2 as u32,
                SegmentPos {
                    segment_id: id,
                    epoch: ep,
                    offset: end,
                },
            )
            .unwrap();
            patch(&path, end, &pad);
        }
    }
    patch(&path, start, &bytes);
}

#[test]
fn single_and_many_transactions_keep_their_versions() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), opts(io)).unwrap();
        let l1 = db.put(b"one", b"1").unwrap();
        let mut lsns = Vec::new();
        for i in 0..500u32 {
            let mut tx = db.begin();
            tx.put(format!("k{i:04}").as_bytes(), &i.to_le_bytes())
                .unwrap();
            tx.put(format!("j{i:04}").as_bytes(), b"x").unwrap();
            if i % 3 == 0 {
                tx.delete(format!("j{:04}", i / 2).as_bytes()).unwrap();
            }
            lsns.push(
                tx.commit_with(if i % 2 == 0 {
                    Durability::Strict
                } else {
                    Durability::BUFFERED
                })
                .unwrap(),
            );
        }
        let before = state(&db);
        db.close().unwrap();
        let db = Db::open(dir.path(), opts(io)).unwrap();
        let st = db.recovery_stats().clone();
        assert_eq!(st.transactions_applied, 501, "{io}: {st:?}");
        assert_eq!(st.last_lsn, *lsns.last().unwrap());
        assert_eq!(st.bytes_truncated, 0);
        assert!(st.segments > 1, "small segments rotate");
        assert_eq!(db.get(b"one").unwrap().unwrap().lsn(), l1);
        assert_eq!(db.get(b"k0007").unwrap().unwrap().lsn(), lsns[7]);
        assert_eq!(state(&db), before, "{io}: versions preserved exactly");
        // LSNs never go backwards across restarts.
        assert!(db.put(b"after", b"x").unwrap() > *lsns.last().unwrap());
        db.close().unwrap();
        // Reopening twice gives the same state.
        let a = state(&Db::open(dir.path(), opts(io)).unwrap());
        let b = state(&Db::open(dir.path(), opts(io)).unwrap());
        assert_eq!(a, b);
    }
}

#[test]
fn incomplete_aborted_and_orphaned_records_are_discarded() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), opts(io)).unwrap();
        db.put(b"base", b"0").unwrap();
        db.close().unwrap();
        append_raw(dir.path(), |_, l| {
            vec![
                // committed multi-op transaction
                RecordSpec::marker(RecordKind::BeginTxn, 2, l + 1, 0),
                RecordSpec::write(b"c1", b"v", l + 1, 0),
                RecordSpec::delete(b"base", l + 1, 0),
                RecordSpec::marker(RecordKind::CommitTxn, 2, l + 1, 0),
                // aborted
                RecordSpec::marker(RecordKind::BeginTxn, 1, l + 2, 0),
                RecordSpec::write(b"aborted", b"v", l + 2, 0),
                RecordSpec::abort(l + 2, 0),
                // orphans: a write and a commit of no open transaction
                RecordSpec::write(b"orphan", b"v", l + 3, 0),
                RecordSpec::marker(RecordKind::CommitTxn, 1, l + 3, 0),
                // a commit naming the wrong op count: records missing, never applied
                RecordSpec::marker(RecordKind::BeginTxn, 2, l + 4, 0),
                RecordSpec::write(b"short", b"v", l + 4, 0),
                RecordSpec::marker(RecordKind::CommitTxn, 2, l + 4, 0),
                // incomplete, followed by a committed autocommit write
                RecordSpec::marker(RecordKind::BeginTxn, 2, l + 5, 0),
                RecordSpec::write(b"incomplete", b"v", l + 5, 0),
                RecordSpec::write(b"c2", b"v", l + 6, 0).autocommit(),
                // incomplete at the very end
                RecordSpec::marker(RecordKind::BeginTxn, 1, l + 7, 0),
                RecordSpec::write(b"tail", b"v", l + 7, 0),
            ]
        });
        let db = Db::open(dir.path(), opts(io)).unwrap();
        let st = db.recovery_stats().clone();
        let keys: Vec<Vec<u8>> = state(&db).into_iter().map(|(k, ..)| k).collect();
        assert_eq!(keys, vec![b"c1".to_vec(), b"c2".to_vec()], "{io}: {st:?}");
        assert_eq!(st.transactions_applied, 3);
        assert_eq!(st.transactions_aborted, 1);
        assert_eq!(
            st.transactions_incomplete, 3,
            "short commit, interrupted and tail"
        );
        assert_eq!(st.orphaned_records, 2);
        // LSNs continue after the highest LSN seen, even in discarded records.
        let next = db.put(b"new", b"x").unwrap();
        assert!(
            next > st.last_lsn + 1,
            "next {next} must skip LSNs seen in discarded records"
        );
        db.close().unwrap();
        assert_eq!(
            Db::open(dir.path(), opts(io))
                .unwrap()
                .get(b"new")
                .unwrap()
                .unwrap()
                .lsn(),
            next
        );
    }
}

#[test]
fn torn_tail_is_cut_and_counted() {
    for io in PATHS {
        for (name, damage) in [
            ("truncated record", 0usize),
            ("garbage", 1),
            ("zeroed record", 2),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let db = Db::open(dir.path(), opts(io)).unwrap();
            for i in 0..20u32 {
                db.put(format!("k{i:02}").as_bytes(), &[i as u8; 100])
                    .unwrap();
            }
            db.close().unwrap();
            let path = segments(dir.path()).pop().unwrap();
            // A crash, not a close: no seal after the last round.
            let recs = remove_seal(&path, records(&path, epoch(dir.path())));
            let (last_off, ..) = recs
                .iter()
                .rev()
                .find(|r| r.1 == RecordKind::Write)
                .copied()
                .unwrap();
            match damage {
                0 => patch(&path, last_off + 60, &[0u8; 100]),
                1 => patch(&path, last_off + 8, &[0xA5; 40]),
                _ => patch(&path, last_off, &[0u8; 48]),
            }
            // garbage after the end as well
            patch(&path, last_off + 8192, &[0x77; 300]);
            let db = Db::open(dir.path(), opts(io)).unwrap();
            let st = db.recovery_stats().clone();
            assert_eq!(st.transactions_applied, 19, "{io} {name}: {st:?}");
            assert!(st.bytes_truncated > 0, "{io} {name}: truncation counted");
            assert!(db.get(b"k19").unwrap().is_none());
            assert_eq!(db.get(b"k18").unwrap().unwrap().as_bytes(), &[18u8; 100]);
            // The database keeps working after the cut, and the cut is stable.
            let l = db.put(b"k19", b"again").unwrap();
            db.close().unwrap();
            let db = Db::open(dir.path(), opts(io)).unwrap();
            assert_eq!(db.get(b"k19").unwrap().unwrap().lsn(), l);
            assert_eq!(db.recovery_stats().transactions_applied, 20);
        }
    }
}

/// Writes two batches (a sync in between), returns (dir, segment path, records).
fn two_batches(io: IoChoice) -> (tempfile::TempDir, PathBuf, Vec<Rec>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), buffered(io)).unwrap();
    // The run's first commit waits for its LSN lease: a round of its own, left out of the
    // records returned.
    db.put(b"lease", b"w").unwrap();
    for i in 0..20u32 {
        db.put(format!("a{i:02}").as_bytes(), &[1; 100]).unwrap();
    }
    db.sync().unwrap();
    for i in 0..20u32 {
        db.put(format!("b{i:02}").as_bytes(), &[2; 100]).unwrap();
    }
    db.close().unwrap();
    let path = segments(dir.path()).pop().unwrap();
    let recs = records(&path, epoch(dir.path()));
    let batches: std::collections::BTreeSet<u64> = recs.iter().map(|r| r.2).collect();
    assert_eq!(
        batches.len(),
        4,
        "the lease round, two write batches and the seal: {batches:?}"
    );
    let first = *batches.iter().next().unwrap();
    let recs: Vec<Rec> = recs.into_iter().filter(|r| r.2 != first).collect();
    (dir, path, recs)
}

/// Zeroes the seal that `close()` writes after the last round (a batch of its own holding its
/// head and one Padding record) and the closing LSN lease before it when that is a round of its
/// own, leaving the file as a crash after the last sync would, and returns the records without
/// them.
fn remove_seal(path: &Path, mut recs: Vec<Rec>) -> Vec<Rec> {
    let (off, kind, batch_start, _) = recs.pop().expect("records");
    let head = recs.pop().expect("the seal's head");
    assert_eq!(
        (kind, head),
        (
            RecordKind::Padding,
            (batch_start, RecordKind::BatchHead, batch_start, 0)
        ),
        "the seal is a batch of its head and one padding record"
    );
    assert!(recs.last().is_some_and(|r| r.2 < batch_start));
    let mut from = batch_start;
    // The closing lease, in a round of its own (its head, the lease, maybe padding).
    let last = recs.last().map_or(0, |r| r.2);
    let round: Vec<RecordKind> = recs.iter().filter(|r| r.2 == last).map(|r| r.1).collect();
    if round.starts_with(&[RecordKind::BatchHead, RecordKind::Lease])
        && round[2..].iter().all(|&k| k == RecordKind::Padding)
    {
        from = last;
        recs.retain(|r| r.2 != last);
    }
    let len = std::fs::metadata(path).unwrap().len().min(off + 4096) - from;
    patch(path, from, &vec![0u8; len as usize]);
    recs
}

#[test]
fn damage_inside_the_last_batch_is_a_torn_tail() {
    for io in PATHS {
        let (dir, path, recs) = two_batches(io);
        let recs = remove_seal(&path, recs);
        let last_batch = recs.iter().map(|r| r.2).max().unwrap();
        // Zero one 512-byte sector in the middle of the last batch: an unsynced write may lose
        // any subset of its sectors, so later sectors of the same batch surviving is legal.
        let victim = recs
            .iter()
            .filter(|r| r.2 == last_batch && r.1 == RecordKind::Write)
            .nth(8)
            .unwrap()
            .0;
        let sector = victim / 512 * 512;
        patch(&path, sector, &[0u8; 512]);
        let db = Db::open(dir.path(), buffered(io)).unwrap();
        let st = db.recovery_stats().clone();
        assert!(st.bytes_truncated > 0, "{io}: {st:?}");
        for i in 0..20u32 {
            assert!(
                db.get(format!("a{i:02}").as_bytes()).unwrap().is_some(),
                "{io}: synced batch intact"
            );
        }
        let survivors = (0..20u32)
            .filter(|i| db.get(format!("b{i:02}").as_bytes()).unwrap().is_some())
            .count();
        assert!(
            survivors < 20,
            "{io}: records from the damaged sector on are cut"
        );
        // a prefix: no holes
        for i in 0..survivors as u32 {
            assert!(db.get(format!("b{i:02}").as_bytes()).unwrap().is_some());
        }
    }
}

#[test]
fn damage_in_an_earlier_batch_is_corruption_naming_file_and_offset() {
    for io in PATHS {
        let (dir, path, recs) = two_batches(io);
        let first_batch = recs.iter().map(|r| r.2).min().unwrap();
        let victims: Vec<u64> = recs
            .iter()
            .filter(|r| r.2 == first_batch && r.1 == RecordKind::Write)
            .map(|r| r.0)
            .collect();
        // Two corruptions: the first one is reported.
        flip(&path, victims[5] + 50);
        flip(&path, victims[12] + 50);
        match Db::open(dir.path(), buffered(io)) {
            Err(Error::Corruption {
                file,
                offset,
                reason,
            }) => {
                assert_eq!(file, path, "{io}");
                assert_eq!(
                    offset, victims[5],
                    "{io}: the first damaged record: {reason}"
                );
            }
            other => panic!("{io}: expected Corruption, got {other:?}"),
        }
        // The failed open changed nothing: it fails the same way again.
        assert!(matches!(
            Db::open(dir.path(), buffered(io)),
            Err(Error::Corruption { .. })
        ));
        // An explicit truncating recovery cuts there and opens.
        let t = buffered(io).recovery(RecoveryMode::TruncateAtCorruption);
        let db = Db::open(dir.path(), t).unwrap();
        let st = db.recovery_stats().clone();
        assert_eq!(st.truncated_at, Some((path.clone(), victims[5])), "{io}");
        assert_eq!(st.transactions_applied, 6, "the lease warm-up and a00..a04");
        let l = db.put(b"after", b"cut").unwrap();
        let snapshot = state(&db);
        db.close().unwrap();
        // The cut is durable: a strict reopen works and sees the same state.
        let db = Db::open(dir.path(), buffered(io)).unwrap();
        assert_eq!(state(&db), snapshot, "{io}");
        assert_eq!(db.get(b"after").unwrap().unwrap().lsn(), l);
    }
}

#[test]
fn damage_in_an_earlier_segment_is_corruption() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), opts(io)).unwrap();
        for i in 0..3000u32 {
            db.put(format!("k{i:05}").as_bytes(), &[7; 200]).unwrap();
        }
        db.close().unwrap();
        let segs = segments(dir.path());
        assert!(segs.len() >= 3, "{io}: {segs:?}");
        let ep = epoch(dir.path());
        let victim = records(&segs[1], ep)[10].0;
        // A zeroed sector in a closed segment.
        patch(&segs[1], victim / 512 * 512, &[0u8; 512]);
        match Db::open(dir.path(), opts(io)) {
            Err(Error::Corruption { file, offset, .. }) => {
                assert_eq!(file, segs[1]);
                assert!(
                    offset >= victim / 512 * 512 && offset <= victim,
                    "{io}: offset {offset}"
                );
            }
            other => panic!("{io}: expected Corruption, got {other:?}"),
        }
        // Truncating recovery quarantines the later segments instead of deleting them.
        let db = Db::open(
            dir.path(),
            opts(io).recovery(RecoveryMode::TruncateAtCorruption),
        )
        .unwrap();
        assert_eq!(db.recovery_stats().segments_quarantined, segs.len() - 2);
        assert!(std::fs::read_dir(dir.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".corrupt.0")));
        db.close().unwrap();
        let db = Db::open(dir.path(), opts(io)).unwrap();
        assert!(db.get(b"k00000").unwrap().is_some());
    }
}

#[test]
fn torn_segment_creation_is_removed_and_missing_segment_is_corruption() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), opts(io)).unwrap();
        db.put(b"k", b"v").unwrap();
        db.close().unwrap();
        let segs = segments(dir.path());
        let next = dir
            .path()
            .join(format!("{:020}.log.tmp", seg_id(segs.last().unwrap()) + 1));
        // A creation interrupted before the new segment was renamed to its final name.
        std::fs::write(&next, vec![0x5Au8; 8192]).unwrap();
        let db = Db::open(dir.path(), opts(io)).unwrap();
        assert_eq!(db.recovery_stats().torn_segments_removed, 1, "{io}");
        assert!(!next.exists(), "{io}: the unfinished creation is removed");
        assert_eq!(db.get(b"k").unwrap().unwrap().as_bytes(), b"v");
        db.close().unwrap();
        // A gap in the segment sequence is corruption.
        let segs = segments(dir.path());
        let far = dir
            .path()
            .join(format!("{:020}.log", seg_id(segs.last().unwrap()) + 5));
        let mut head = vec![0u8; SEGMENT_HEADER_LEN];
        SegmentHeader::new(seg_id(&far), epoch(dir.path()), 1, 0, 4096, 0).encode(&mut head);
        std::fs::write(&far, head).unwrap();
        assert!(
            matches!(
                Db::open(dir.path(), opts(io)),
                Err(Error::Corruption { .. })
            ),
            "{io}"
        );
    }
}

#[test]
fn segment_of_another_database_is_refused() {
    for io in PATHS {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [&a, &b] {
            let db = Db::open(d.path(), opts(io)).unwrap();
            db.put(b"k", d.path().to_str().unwrap().as_bytes()).unwrap();
            db.close().unwrap();
        }
        let sa = segments(a.path()).pop().unwrap();
        let sb = segments(b.path()).pop().unwrap();
        std::fs::copy(&sa, &sb).unwrap();
        assert!(
            matches!(Db::open(b.path(), opts(io)), Err(Error::Corruption { .. })),
            "{io}"
        );
    }
}

#[test]
fn a_later_batch_ending_in_zeros_still_proves_corruption() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        // 512-byte batches (no O_DIRECT): the second batch is its head and one Write, exactly 512
        // bytes, whose value ends in zeros, so the file holds no non-zero byte after its last
        // record's end.
        let o = opts(io).direct_io(false);
        let db = Db::open(dir.path(), o.clone()).unwrap();
        db.put(b"a", b"first").unwrap();
        let value =
            [0u8; 512 - ringlog_format::BATCH_HEAD_LEN - ringlog_format::RECORD_HEADER_LEN - 1];
        db.put(b"z", &value).unwrap();
        db.close().unwrap();
        let path = segments(dir.path()).pop().unwrap();
        let recs = records(&path, epoch(dir.path()));
        let writes: Vec<_> = recs.iter().filter(|r| r.1 == RecordKind::Write).collect();
        assert_eq!(writes.len(), 2);
        assert!(
            writes[1].2 > writes[0].0,
            "{io}: the second write is a later batch"
        );
        flip(&path, writes[0].0 + 26);
        match Db::open(dir.path(), o) {
            Err(Error::Corruption { offset, .. }) => assert_eq!(offset, writes[0].0, "{io}"),
            other => panic!("{io}: expected Corruption, got {other:?}"),
        }
    }
}

#[test]
fn an_lsn_out_of_order_is_damage_that_truncating_recovery_cuts() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), opts(io)).unwrap();
        db.put(b"k1", b"1").unwrap();
        db.put(b"k2", b"2").unwrap();
        db.close().unwrap();
        // A valid record carrying an old LSN (a misdirected or replayed write) followed by a
        // later batch.
        append_raw(dir.path(), |_, _| {
            vec![RecordSpec::write(b"old", b"x", 1, 0).autocommit()]
        });
        append_raw(dir.path(), |_, l| {
            vec![RecordSpec::write(b"new", b"y", l + 10, 0).autocommit()]
        });
        assert!(
            matches!(
                Db::open(dir.path(), opts(io)),
                Err(Error::Corruption { .. })
            ),
            "{io}"
        );
        let t = opts(io).recovery(RecoveryMode::TruncateAtCorruption);
        let db = Db::open(dir.path(), t).unwrap();
        assert!(
            db.get(b"old").unwrap().is_none() && db.get(b"new").unwrap().is_none(),
            "{io}"
        );
        assert!(db.get(b"k2").unwrap().is_some());
        assert!(db.recovery_stats().truncated_at.is_some());
    }
}

#[test]
fn the_close_seal_turns_damage_in_the_last_round_into_reported_corruption() {
    for io in PATHS {
        let (dir, path, recs) = two_batches(io);
        let seal = recs.last().unwrap().2;
        let last_data = recs.iter().rfind(|r| r.1 == RecordKind::Write).unwrap().0;
        // A flipped bit in the last round of data, which close() followed with its seal: that
        // round was synced, so this is corruption of acknowledged data, never a torn tail.
        flip(&path, last_data + 60);
        match Db::open(dir.path(), buffered(io)) {
            Err(Error::Corruption {
                file,
                offset,
                reason,
            }) => {
                assert_eq!((file, offset), (path.clone(), last_data), "{io}: {reason}");
                assert!(
                    reason.contains(&seal.to_string()),
                    "{io}: names the seal at {seal}: {reason}"
                );
            }
            other => panic!("{io}: expected Corruption, got {other:?}"),
        }
        // Damage to the seal itself loses nothing: it holds no data.
        flip(&path, last_data + 60);
        flip(&path, seal + 100);
        let db = Db::open(dir.path(), buffered(io)).unwrap();
        assert_eq!(
            db.recovery_stats().transactions_applied,
            41,
            "{io}: the lease warm-up and 40"
        );
    }
}

/// After a crash that left a torn tail, an open that only reads writes nothing — no new segment,
/// not a byte of the torn one — and the next recovery cuts the same tail; the first commit then
/// starts the next segment, whose header records where the torn one's valid records end.
#[test]
fn a_torn_tail_gets_its_successor_with_the_first_commit() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), opts(io)).unwrap();
        db.put(b"k1", b"v1").unwrap();
        db.put(b"k2", b"v2").unwrap();
        drop(db);
        let seg = segments(dir.path()).pop().unwrap();
        let ends = records(&seg, epoch(dir.path()));
        let (last_off, ..) = *ends.last().unwrap();
        // Torn garbage a block after the last record: an unsynced round that half reached the disk.
        let torn = (last_off / 4096 + 1) * 4096;
        patch(&seg, torn, &[0xA5; 1000]);
        let before: Vec<(PathBuf, Vec<u8>)> = segments(dir.path())
            .into_iter()
            .map(|p| {
                let b = std::fs::read(&p).unwrap();
                (p, b)
            })
            .collect();
        for _ in 0..2 {
            let db = Db::open(dir.path(), opts(io)).unwrap();
            assert!(
                db.recovery_stats().bytes_truncated > 0,
                "{io}: the torn tail is cut"
            );
            assert_eq!(db.get(b"k2").unwrap().unwrap().as_bytes(), b"v2");
            db.close().unwrap();
            let after: Vec<(PathBuf, Vec<u8>)> = segments(dir.path())
                .into_iter()
                .map(|p| {
                    let b = std::fs::read(&p).unwrap();
                    (p, b)
                })
                .collect();
            assert!(
                after == before,
                "{io}: a read-only open changed the segment files"
            );
        }
        let db = Db::open(dir.path(), opts(io)).unwrap();
        db.put(b"k3", b"v3").unwrap();
        db.close().unwrap();
        let segs = segments(dir.path());
        assert_eq!(
            segs.len(),
            before.len() + 1,
            "{io}: the first commit starts a segment"
        );
        let head = SegmentHeader::decode(&std::fs::read(segs.last().unwrap()).unwrap()).unwrap();
        assert!(
            head.prev_end <= torn,
            "{io}: prev_end {} before the torn bytes",
            head.prev_end
        );
        let db = Db::open(dir.path(), opts(io)).unwrap();
        assert_eq!(
            db.recovery_stats().bytes_truncated,
            0,
            "{io}: nothing left to cut"
        );
        for (k, v) in [(b"k1", b"v1"), (b"k2", b"v2"), (b"k3", b"v3")] {
            assert_eq!(db.get(k).unwrap().unwrap().as_bytes(), v, "{io}");
        }
        db.close().unwrap();
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// A new segment is prepared (zero-filled) to 1 MiB, not to its whole size, and grows as rounds
/// reach the end of what is prepared: doubling, up to the segment size. Creating a database
/// writes 1 MiB; a reopen appends after the last round in a grown segment; whatever a crash
/// leaves past the last round (zeros a growth wrote, or a size it set) is not a torn tail.
#[test]
fn segments_start_small_and_grow_as_rounds_reach_their_end() {
    const MIB: u64 = 1 << 20;
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(io)
            .segment_size(8 * MIB)
            .checkpoint_bytes(u64::MAX)
            .checkpoint_on_close(false);
        let db = Db::open(dir.path(), o.clone()).unwrap();
        let first = segments(dir.path());
        assert_eq!(first.len(), 1, "{io}");
        assert_eq!(
            file_len(&first[0]),
            MIB,
            "{io}: a new database prepares 1 MiB"
        );
        let value = vec![0xA5u8; 1000];
        let mut sizes = vec![MIB];
        // 60 rounds of 100 KB: 6 MB, past 4 MiB.
        for t in 0..60u32 {
            let mut tx = db.begin();
            for i in 0..100u32 {
                tx.put(&(t * 100 + i).to_be_bytes(), &value).unwrap();
            }
            tx.commit().unwrap();
            let now = file_len(&first[0]);
            if sizes.last() != Some(&now) {
                sizes.push(now);
            }
        }
        assert_eq!(segments(dir.path()), first, "{io}: no rotation yet");
        assert_eq!(
            sizes,
            [MIB, 2 * MIB, 4 * MIB, 8 * MIB],
            "{io}: doubling growth"
        );
        let before = state(&db);
        db.close().unwrap();
        // As if a crash came after a growth's size change but before the round it was for.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&first[0])
            .unwrap()
            .set_len(8 * MIB + 3 * MIB)
            .unwrap();
        let db = Db::open(dir.path(), o.clone()).unwrap();
        let st = db.recovery_stats().clone();
        assert_eq!(
            st.bytes_truncated, 0,
            "{io}: zeros past the last round: {st:?}"
        );
        assert_eq!(state(&db), before, "{io}");
        // Appending resumes in the grown segment, then rotates into a new small one.
        for t in 60..90u32 {
            let mut tx = db.begin();
            for i in 0..100u32 {
                tx.put(&(t * 100 + i).to_be_bytes(), &value).unwrap();
            }
            tx.commit().unwrap();
        }
        let segs = segments(dir.path());
        assert_eq!(segs.len(), 2, "{io}: {segs:?}");
        assert_eq!(segs[0], first[0]);
        assert!(
            file_len(&segs[1]) <= 2 * MIB,
            "{io}: a new segment starts small"
        );
        let before = state(&db);
        assert_eq!(before.len(), 9000);
        db.close().unwrap();
        let db = Db::open(dir.path(), o).unwrap();
        assert_eq!(db.recovery_stats().bytes_truncated, 0, "{io}");
        assert_eq!(state(&db), before, "{io}");
    }
}

/// Rewrites the head of the batch at `start` with the durable floor `floor` (as a writer with
/// rounds in flight records it), keeping its run id and time.
fn set_floor(path: &Path, ep: u64, start: u64, floor: u64) {
    let buf = std::fs::read(path).unwrap();
    let pos = SegmentPos {
        segment_id: seg_id(path),
        epoch: ep,
        offset: start,
    };
    let head = decode_record(&buf, start as usize, pos).unwrap();
    assert_eq!(head.kind, RecordKind::BatchHead);
    let spec = RecordSpec::batch_head(head.run_id, head.timestamp, floor, start as u32);
    let mut bytes = vec![0u8; ringlog_format::BATCH_HEAD_LEN];
    encode_record(&mut bytes, &spec, pos).unwrap();
    patch(path, start, &bytes);
}

/// With rounds in flight, a crash can leave a later round durable and an earlier one torn. The
/// later round's head records where the durable log ended when it was written (its durable
/// floor, FORMAT.md §10.5): damage at or above it is a torn write of a round that was in flight
/// — cut, with everything after it — and damage below it is corruption of acknowledged data.
#[test]
fn a_later_round_proves_damage_durable_only_below_its_durable_floor() {
    for io in PATHS {
        for (proves, torn_head) in [(false, false), (true, false), (false, true)] {
            let (dir, path, recs) = two_batches(io);
            let recs = remove_seal(&path, recs);
            let ep = epoch(dir.path());
            let first = recs.iter().map(|r| r.2).min().unwrap();
            let second = recs.iter().map(|r| r.2).max().unwrap();
            let victim = recs
                .iter()
                .filter(|r| r.2 == first && r.1 == RecordKind::Write)
                .nth(5)
                .unwrap()
                .0;
            // The second round was written while the first was in flight: its floor is at the
            // damaged record (nothing from there on known durable), or just past it.
            let floor = if proves { victim + 8 } else { victim };
            set_floor(&path, ep, second, floor);
            if torn_head {
                // Its head lost to a torn sector (garbage, claiming a huge length) while its later
                // records survived: a head that does not decode proves nothing, and costs the
                // search nothing (the campaign found this reported as corruption).
                let garbage: Vec<u8> = (0..48u32).map(|i| (i * 97 + 13) as u8 | 0x80).collect();
                patch(&path, second, &garbage);
            }
            flip(&path, victim + 50);
            let opened = Db::open(dir.path(), buffered(io));
            if proves {
                match opened {
                    Err(Error::Corruption { offset, reason, .. }) => {
                        assert_eq!(offset, victim, "{io}: {reason}");
                        assert!(reason.contains("later write batch"), "{io}: {reason}");
                    }
                    other => panic!("{io}: expected Corruption, got {other:?}"),
                }
                continue;
            }
            let db = opened.unwrap_or_else(|e| panic!("{io}: a torn round must open: {e}"));
            let st = db.recovery_stats().clone();
            assert!(st.bytes_truncated > 0, "{io}: {st:?}");
            assert_eq!(st.truncated_at, None, "{io}: a torn tail, not a cut");
            for i in 0..20u32 {
                let a = db.get(format!("a{i:02}").as_bytes()).unwrap();
                assert_eq!(
                    a.is_some(),
                    i < 5,
                    "{io}: a{i:02}: the prefix before the damage"
                );
                let b = db.get(format!("b{i:02}").as_bytes()).unwrap();
                assert!(b.is_none(), "{io}: the later round goes with the torn one");
            }
            // Appends go to a new segment (the torn bytes are never overwritten) and survive.
            let l = db.put(b"after", b"torn").unwrap();
            db.close().unwrap();
            let db = Db::open(dir.path(), buffered(io)).unwrap();
            assert_eq!(db.get(b"after").unwrap().unwrap().lsn(), l, "{io}");
            assert!(db.get(b"a04").unwrap().is_some(), "{io}");
        }
    }
}

/// Segment 1 deleted while later segments exist, before any compaction (the MANIFEST's
/// `first_segment` is 0: every segment from 1 on is needed): the log's beginning is gone, so a
/// strict open is refused with corruption naming segment 1 — it used to apply the later segments
/// alone and lose the first one's commits silently — and a truncating one cuts the log there:
/// every later segment goes aside and the database opens empty (as it does after a truncating
/// recovery interrupted while moving segments aside).
#[test]
fn a_missing_first_segment_is_corruption_before_any_compaction() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(io)
            .checkpoint_on_close(false)
            .checkpoint_bytes(u64::MAX);
        let db = Db::open(dir.path(), o.clone()).unwrap();
        let value = [7u8; 200];
        let mut i = 0u32;
        while segments(dir.path()).len() < 3 {
            db.put(format!("k{i:06}").as_bytes(), &value).unwrap();
            i += 1;
        }
        db.close().unwrap();
        let segs = segments(dir.path());
        assert_eq!(seg_id(&segs[0]), 1, "{io}: nothing was compacted");
        std::fs::remove_file(&segs[0]).unwrap();
        match Db::open(dir.path(), o.clone()) {
            Err(Error::Corruption { file, reason, .. }) => {
                assert_eq!(file, segs[0], "{io}");
                assert!(reason.contains("segment 1 is missing"), "{io}: {reason}");
            }
            other => panic!("{io}: {:?}", other.map(|_| ())),
        }
        let db = Db::open(
            dir.path(),
            o.clone().recovery(RecoveryMode::TruncateAtCorruption),
        )
        .unwrap();
        let r = db.recovery_stats();
        assert_eq!(r.truncated_at, Some((segs[0].clone(), 0)), "{io}");
        assert_eq!(r.segments_quarantined, segs.len() - 1, "{io}");
        assert_eq!(db.get(format!("k{:06}", i - 1).as_bytes()).unwrap(), None);
        db.put(b"after", b"cut").unwrap();
        db.close().unwrap();
        for s in &segs[1..] {
            let aside = s.with_extension("log.corrupt.0");
            assert!(aside.exists(), "{io}: {} moved aside", s.display());
        }
        let db = Db::open(dir.path(), o).unwrap();
        assert!(db.get(b"after").unwrap().is_some(), "{io}");
        db.close().unwrap();
    }
}

/// A truncating recovery that cuts acknowledged commits never hands their LSNs out again: the
/// leases that let Buffered commits return early are cut with them, so the next run starts past
/// every LSN the cut segments could have used (found in review: with short leases the next put
/// got an LSN a synced commit had been acknowledged with).
#[test]
fn a_truncating_cut_never_reuses_an_acknowledged_lsn() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let o = buffered(io).lease_span(4).checkpoint_on_close(false);
        let db = Db::open(dir.path(), o.clone()).unwrap();
        let mut acked = 0;
        for i in 0..100u32 {
            acked = db.put(format!("k{i:03}").as_bytes(), &[7; 64]).unwrap();
        }
        db.sync().unwrap();
        db.close().unwrap();
        let path = segments(dir.path()).pop().unwrap();
        let writes: Vec<Rec> = records(&path, epoch(dir.path()))
            .into_iter()
            .filter(|r| r.1 == RecordKind::Write)
            .collect();
        // Damage a synced record early in the log: everything after it is cut.
        flip(&path, writes[10].0 + 50);
        let db = Db::open(dir.path(), o.recovery(RecoveryMode::TruncateAtCorruption)).unwrap();
        assert!(db.recovery_stats().truncated_at.is_some(), "{io}");
        assert!(
            db.last_lsn() < acked,
            "{io}: the cut lost acknowledged commits"
        );
        let next = db.put(b"after", b"cut").unwrap();
        assert!(
            next > acked,
            "{io}: LSN {next} was acknowledged before the cut (up to {acked})"
        );
        db.close().unwrap();
        // The floor is durable: a reopen goes on above it.
        let db = Db::open(dir.path(), buffered(io)).unwrap();
        assert!(db.put(b"later", b"x").unwrap() > next, "{io}");
    }
}
