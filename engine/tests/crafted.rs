//! Issue 8: logs no crash can produce — crafted or damaged files — get a clear, typed error and
//! lose nothing: ids at the format's limit, damaged tails that used to make recovery cubic, files
//! sized beyond the format, foreign or cut-short segment files, a damaged MANIFEST. Each test
//! failed (panic, wrap, hang, abort or silent deletion) before the fix.

mod segfiles;

use std::path::{Path, PathBuf};

use ringlog_db::{Db, Error, IoChoice, Options, RecoveryMode};
use ringlog_format::{
    encode_record, Manifest, RecordSpec, SegmentHeader, SegmentPos, MANIFEST_V2_LEN, MAX_ID,
    SEGMENT_HEADER_LEN,
};
use segfiles::{epoch, opts, seg_id, segments, PATHS};

fn truncating(io: IoChoice) -> Options {
    opts(io).recovery(RecoveryMode::TruncateAtCorruption)
}

fn next_segment(dir: &Path) -> PathBuf {
    let last = seg_id(segments(dir).last().unwrap());
    dir.join(format!("{:020}.log", last + 1))
}

/// A database with `n` acknowledged Strict keys, closed.
fn with_keys(dir: &Path, io: IoChoice, n: usize) {
    let db = Db::open(dir, opts(io)).unwrap();
    for i in 0..n {
        db.put(format!("k{i:03}").as_bytes(), b"acknowledged")
            .unwrap();
    }
    db.close().unwrap();
}

fn count_keys(db: &Db) -> usize {
    db.range::<&[u8], _>(..)
        .unwrap()
        .map(Result::unwrap)
        .count()
}

/// xorshift64*: reproducible garbage.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

fn expect_corruption(r: ringlog_db::Result<Db>, file: &Path, what: &str) -> String {
    match r {
        Err(Error::Corruption {
            file: f, reason, ..
        }) => {
            assert_eq!(f, file, "{what}: the error names the file");
            reason
        }
        other => panic!(
            "{what}: expected Corruption naming {}, got {other:?}",
            file.display()
        ),
    }
}

/// A segment whose header claims `base_lsn`, appended after the last segment, holding one
/// autocommit write with `lsn`, in a batch whose head names `run_id`.
/// Where the last segment's valid records end: what the next segment records as its
/// predecessor's end.
fn valid_end(dir: &Path, ep: u64) -> u64 {
    let last = segments(dir).pop().unwrap();
    let bytes = std::fs::read(&last).unwrap();
    let mut pos = SEGMENT_HEADER_LEN;
    while let Ok(r) = ringlog_format::decode_record(
        &bytes,
        pos,
        SegmentPos {
            segment_id: seg_id(&last),
            epoch: ep,
            offset: pos as u64,
        },
    ) {
        pos += r.encoded_len();
    }
    pos as u64
}

fn append_segment(dir: &Path, base_lsn: u64, lsn: u64, run_id: u64) -> PathBuf {
    let path = next_segment(dir);
    let id = seg_id(&path);
    let ep = epoch(dir);
    let prev_end = valid_end(dir, ep);
    let mut buf = vec![0u8; SEGMENT_HEADER_LEN + 4096];
    // The encoders refuse out-of-range ids (invariants asserted before encoding): encode valid
    // ones, then patch the fields and recompute the checksums as a crafted file would.
    SegmentHeader::new(id, ep, 1, 0, prev_end, 1).encode(&mut buf);
    buf[56..64].copy_from_slice(&base_lsn.to_le_bytes());
    buf[8..12].fill(0);
    let crc = crc32c::crc32c(&buf[..64]);
    buf[8..12].copy_from_slice(&crc.to_le_bytes());
    // The batch's head (run id at payload bytes 24..32), then the write (LSN at 16..24): patched
    // and re-checksummed as a crafted file would be.
    let head = RecordSpec::batch_head(1, 0, 0, SEGMENT_HEADER_LEN as u32);
    let write = RecordSpec::write(b"crafted", b"v", 1, SEGMENT_HEADER_LEN as u32).autocommit();
    let mut at = SEGMENT_HEADER_LEN;
    for (spec, field, value) in [(head, 24..32, run_id), (write, 16..24, lsn)] {
        let pos = SegmentPos {
            segment_id: id,
            epoch: ep,
            offset: at as u64,
        };
        let rec = &mut buf[at..];
        let n = encode_record(rec, &spec, pos).unwrap();
        let len = u32::from_le_bytes(rec[4..8].try_into().unwrap()) as usize;
        rec[field].copy_from_slice(&value.to_le_bytes());
        let mut seeded = Vec::new();
        for w in [pos.segment_id, pos.epoch, pos.offset] {
            seeded.extend_from_slice(&w.to_le_bytes());
        }
        seeded.extend_from_slice(&rec[4..len]);
        let crc = crc32c::crc32c(&seeded);
        rec[..4].copy_from_slice(&crc.to_le_bytes());
        at += n;
    }
    std::fs::write(&path, &buf).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// 2. ids at the format's limit
// ---------------------------------------------------------------------------------------------

/// A record or header holding u64::MAX as an id is corruption naming file and offset — not a
/// panic on `+ 1`, not an LSN that wraps to 0.
#[test]
fn ids_above_the_format_maximum_are_corruption() {
    for io in PATHS {
        // (A transaction's id is its LSN since format version 4: no field of its own.)
        for (what, base, lsn, run) in [("record LSN", 5, u64::MAX, 1), ("run id", 5, 100, u64::MAX)]
        {
            let dir = tempfile::tempdir().unwrap();
            with_keys(dir.path(), io, 3);
            let seg = append_segment(dir.path(), base, lsn, run);
            let reason = expect_corruption(Db::open(dir.path(), opts(io)), &seg, what);
            assert!(reason.contains("maximum"), "{io} {what}: {reason}");
            // Truncating recovery cuts there and keeps everything before it.
            let db = Db::open(dir.path(), truncating(io)).unwrap();
            assert_eq!(count_keys(&db), 3, "{io} {what}");
            let lsn = db.put(b"after", b"x").unwrap();
            assert!(lsn > 3, "{io} {what}: LSNs continue, no wrap: {lsn}");
            db.close().unwrap();
        }
    }
}

/// A segment header with base LSN u64::MAX is refused the same way (the format checks every id
/// of the header too).
#[test]
fn segment_header_ids_above_the_maximum_are_corruption() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        with_keys(dir.path(), io, 2);
        let seg = append_segment(dir.path(), u64::MAX, 100, 1);
        expect_corruption(Db::open(dir.path(), opts(io)), &seg, "base LSN");
    }
}

/// A segment file named with an id above the maximum (`18446744073709551615.log`) is corruption
/// naming it.
#[test]
fn segment_name_above_the_maximum_is_corruption() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        with_keys(dir.path(), io, 2);
        let name = dir.path().join(format!("{:020}.log", u64::MAX));
        std::fs::write(&name, vec![0u8; 4096]).unwrap();
        expect_corruption(Db::open(dir.path(), opts(io)), &name, "segment name");
    }
}

/// A record whose LSN is exactly the maximum is valid, but nothing can be numbered after it: the
/// next commit is a typed error, never LSN 0, never a panic in the log thread, and what was
/// acknowledged stays.
#[test]
fn a_log_at_the_maximum_lsn_refuses_commits_without_wrapping() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        with_keys(dir.path(), io, 2);
        append_segment(dir.path(), 5, MAX_ID, 1);
        let db = Db::open(dir.path(), opts(io)).unwrap();
        assert_eq!(count_keys(&db), 3, "{io}");
        assert_eq!(db.last_lsn(), MAX_ID, "{io}");
        match db.put(b"next", b"x") {
            Err(Error::IdSpaceExhausted(what)) => assert_eq!(what, "LSN"),
            other => panic!("{io}: expected IdSpaceExhausted, got {other:?}"),
        }
        assert!(
            !db.stats().poisoned,
            "{io}: nothing was written, nothing poisoned"
        );
        db.close().unwrap();
        let db = Db::open(dir.path(), opts(io)).unwrap();
        assert_eq!(count_keys(&db), 3, "{io}: nothing lost");
        db.close().unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// 3. damaged tails cost linear time
// ---------------------------------------------------------------------------------------------

/// A 4 MiB tail of random bytes after the last valid record: recovery cuts it as a torn tail and
/// computes almost no checksum doing so (headers failing cheap checks are never checksummed).
/// Before the fix every 8-byte offset whose length field fit paid a full checksum.
#[test]
fn a_garbage_tail_costs_almost_no_checksums() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(io).segment_size(8 << 20);
        let db = Db::open(dir.path(), o.clone()).unwrap();
        db.put(b"k", b"v").unwrap();
        db.close().unwrap();
        let seg = segments(dir.path()).pop().unwrap();
        let at = 64 << 10;
        let garbage = noise(7, 4 << 20);
        {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
            f.write_all_at(&garbage, at).unwrap();
        }
        let db = Db::open(dir.path(), o).unwrap();
        let st = db.recovery_stats().clone();
        assert_eq!(count_keys(&db), 1, "{io}");
        assert!(st.bytes_truncated >= 4 << 20, "{io}: {st:?}");
        assert!(
            st.damage_search_checksums <= 4,
            "{io}: {} checksums over a 4 MiB garbage tail",
            st.damage_search_checksums
        );
        db.close().unwrap();
    }
}

/// A torn last batch whose surviving bytes are full of record-like headers (a user value can
/// hold anything: here, headers that pass every check but the checksum, each claiming the rest of
/// the file) is a torn tail like any other: a Strict open cuts it and keeps every acknowledged
/// commit. Before, the search for a later batch ran out of its checksum budget on such bytes and
/// recovery refused the log as corruption ("full of record-like headers"): a crash during such a
/// write left a database only a truncating open would open. Version-5 segments need only a
/// batch head at an aligned offset to prove damage (FORMAT.md §10.5), and none is there.
#[test]
fn a_torn_tail_full_of_record_like_headers_is_cut_not_refused() {
    use std::os::unix::fs::FileExt;
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(io).segment_size(8 << 20);
        with_keys(dir.path(), io, 3);
        let seg = segments(dir.path()).pop().unwrap();
        let at = 64 << 10;
        // Past the file's end (it grows as it fills): the bytes a torn write left.
        let n = 512 << 10;
        let mut tail = vec![0u8; n];
        let mut i = 0;
        while i + 24 <= n {
            // crc, len (the rest of the file, as far as a record may reach), kind, flags, key
            // length, batch start (after the damage), LSN.
            let claim = (n - i).min(ringlog_format::MAX_RECORD_LEN) as u32;
            tail[i..i + 4].copy_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
            tail[i + 4..i + 8].copy_from_slice(&claim.to_le_bytes());
            tail[i + 8] = ringlog_format::RecordKind::Padding as u8;
            tail[i + 12..i + 16].copy_from_slice(&((at + 512) as u32).to_le_bytes());
            tail[i + 16..i + 24].copy_from_slice(&1u64.to_le_bytes());
            i += 24;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .write_all_at(&tail, at as u64)
            .unwrap();
        let db =
            Db::open(dir.path(), o).unwrap_or_else(|e| panic!("{io}: a torn tail refused: {e}"));
        assert_eq!(count_keys(&db), 3, "{io}");
        let st = db.recovery_stats().clone();
        assert!(st.bytes_truncated >= tail.len() as u64, "{io}: {st:?}");
        db.close().unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// 4. allocation sized by the file
// ---------------------------------------------------------------------------------------------

/// A valid segment sparse-extended to 40 GiB is corruption naming it, not an attempt to allocate
/// 40 GiB (which aborted the process).
#[test]
fn a_segment_longer_than_the_format_allows_is_corruption() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        with_keys(dir.path(), io, 2);
        let seg = segments(dir.path()).pop().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(40 << 30)
            .unwrap();
        let reason = expect_corruption(Db::open(dir.path(), opts(io)), &seg, "sparse 40 GiB");
        assert!(reason.contains("maximum"), "{io}: {reason}");
    }
}

/// A segment that grew past the format's maximum while the database was open (none does by the
/// engine's hand) fails the checkpoint that would read it to locate values, with corruption
/// naming it, instead of sizing a buffer by it; the database keeps serving (found in review).
#[test]
fn a_segment_grown_past_the_maximum_fails_the_checkpoint_not_the_database() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), opts(io).value_threshold(Some(64))).unwrap();
        for i in 0..50u32 {
            db.put(format!("k{i:03}").as_bytes(), &[i as u8; 512])
                .unwrap();
        }
        let seg = segments(dir.path()).remove(0);
        let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        let len = file.metadata().unwrap().len();
        file.set_len(ringlog_format::MAX_SEGMENT_LEN + 4096)
            .unwrap();
        match db.checkpoint() {
            Err(Error::Corruption {
                file: f, reason, ..
            }) => {
                assert_eq!(f, seg, "{io}");
                assert!(reason.contains("maximum"), "{io}: {reason}");
            }
            other => panic!("{io}: a checkpoint reading a 1 GiB + 4 KiB segment: {other:?}"),
        }
        db.put(b"after", b"the failed checkpoint").unwrap();
        assert_eq!(count_keys(&db), 51, "{io}");
        file.set_len(len).unwrap();
        db.close().unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// 5. files no crash produces are never deleted
// ---------------------------------------------------------------------------------------------

/// 64 KiB of random bytes named like the next segment: corruption naming it (a crash cannot
/// produce it: a segment gets its name only once its header is durable). Truncating recovery moves
/// it aside instead of deleting it.
#[test]
fn a_foreign_file_named_like_the_next_segment_is_corruption_not_deleted() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        with_keys(dir.path(), io, 5);
        let next = next_segment(dir.path());
        let bytes = noise(3, 64 << 10);
        std::fs::write(&next, &bytes).unwrap();
        expect_corruption(Db::open(dir.path(), opts(io)), &next, "random next segment");
        assert_eq!(std::fs::read(&next).unwrap(), bytes, "{io}: left untouched");
        let db = Db::open(dir.path(), truncating(io)).unwrap();
        assert_eq!(count_keys(&db), 5, "{io}");
        assert_eq!(db.recovery_stats().segments_quarantined, 1, "{io}");
        assert_eq!(db.recovery_stats().torn_segments_removed, 0, "{io}");
        db.close().unwrap();
        let moved = PathBuf::from(format!("{}.corrupt.0", next.display()));
        assert_eq!(std::fs::read(&moved).unwrap(), bytes, "{io}: kept aside");
    }
}

/// A last segment cut below its 4 KiB header holds acknowledged data: opening it is corruption
/// (it used to be dropped as a "torn creation", losing the keys silently).
#[test]
fn a_last_segment_cut_below_its_header_is_corruption() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        with_keys(dir.path(), io, 6);
        let seg = segments(dir.path()).pop().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(3000)
            .unwrap();
        expect_corruption(Db::open(dir.path(), opts(io)), &seg, "cut segment");
        let db = Db::open(dir.path(), truncating(io)).unwrap();
        assert_eq!(db.recovery_stats().torn_segments_removed, 0, "{io}");
        assert!(
            seg.with_extension("log.corrupt.0").exists(),
            "{io}: moved aside"
        );
        db.close().unwrap();
    }
}

/// A damaged or cut-short MANIFEST is reported as what it is, naming the file — not as "not a
/// ringlog database".
#[test]
fn a_damaged_manifest_says_what_is_wrong() {
    for io in PATHS {
        for (what, damage) in [
            (
                "magic",
                &(|b: &mut Vec<u8>| b[0] ^= 0xFF) as &dyn Fn(&mut Vec<u8>),
            ),
            ("cut short", &|b: &mut Vec<u8>| b.truncate(20)),
        ] {
            let dir = tempfile::tempdir().unwrap();
            with_keys(dir.path(), io, 1);
            let manifest = dir.path().join("MANIFEST");
            let mut bytes = std::fs::read(&manifest).unwrap();
            damage(&mut bytes);
            std::fs::write(&manifest, &bytes).unwrap();
            let reason = expect_corruption(Db::open(dir.path(), opts(io)), &manifest, what);
            assert!(reason.contains("MANIFEST"), "{io} {what}: {reason}");
        }
    }
}

/// A MANIFEST with a valid checksum that needs the log only from segment 20 on but names no
/// checkpoint is refused (only compaction moves the first needed segment, into a checkpoint):
/// before, recovery removed segments 1–19 as a compaction's leftovers in a `Strict` open and
/// lost acknowledged commits (found in review).
#[test]
fn a_manifest_that_drops_segments_without_a_checkpoint_is_refused() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        with_keys(dir.path(), io, 300);
        let before = segments(dir.path());
        let manifest = dir.path().join("MANIFEST");
        let mut m = Manifest::decode(&std::fs::read(&manifest).unwrap()).unwrap();
        assert_eq!(
            m.checkpoint_id, 0,
            "{io}: the test's database has no checkpoint"
        );
        m.seq += 1;
        // `encode` asserts the invariant this test breaks: patch its bytes and checksum them.
        let mut bytes = m.encode().to_vec();
        let at = std::mem::offset_of!(Manifest, first_segment);
        bytes[at..at + 8].copy_from_slice(&20u64.to_le_bytes());
        bytes[8..12].fill(0);
        let crc = crc32c::crc32c(&bytes);
        bytes[8..12].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&manifest, &bytes).unwrap();
        let reason = expect_corruption(Db::open(dir.path(), opts(io)), &manifest, "first segment");
        assert!(reason.contains("checkpoint"), "{io}: {reason}");
        assert_eq!(segments(dir.path()), before, "{io}: nothing was removed");
    }
}

/// A file named like segment 0 (ids start at 1; the engine never writes one) is left out of
/// the log and left alone: a `Strict` open used to refuse the database for it, and a truncating
/// one to cut the log there and set every real segment aside (found in review).
#[test]
fn a_file_named_segment_zero_is_not_part_of_the_log() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        with_keys(dir.path(), io, 300);
        let stray = dir.path().join(format!("{:020}.log", 0));
        std::fs::write(&stray, vec![0u8; 8192]).unwrap();
        for mode in [RecoveryMode::Strict, RecoveryMode::TruncateAtCorruption] {
            let db = Db::open(dir.path(), opts(io).recovery(mode)).unwrap();
            assert_eq!(count_keys(&db), 300, "{io} {mode:?}");
            assert_eq!(db.recovery_stats().segments_quarantined, 0, "{io} {mode:?}");
            db.close().unwrap();
            assert!(stray.exists(), "{io} {mode:?}: the stray file stays");
        }
    }
}

/// A database whose MANIFEST is of format version 2 (64 bytes, which the decoder accepts) is
/// written in the current layout by the first update that changes it: a truncating recovery's
/// cut used to re-encode it as version 2 and panic in the encoder's assertion (found in review;
/// `record_trim_floor` and the close's update took the same path).
#[test]
fn a_version_2_manifest_is_rewritten_in_the_current_layout_when_the_log_is_cut() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(io).checkpoint_on_close(false);
        let db = Db::open(dir.path(), o.clone()).unwrap();
        for i in 0..2000u32 {
            db.put(format!("k{i:05}").as_bytes(), &[7u8; 100]).unwrap();
        }
        db.close().unwrap();
        let manifest = dir.path().join("MANIFEST");
        let m = Manifest::decode(&std::fs::read(&manifest).unwrap()).unwrap();
        let mut v2 = vec![0u8; MANIFEST_V2_LEN];
        v2[..8].copy_from_slice(&m.magic);
        v2[12..16].copy_from_slice(&2u32.to_le_bytes());
        v2[16..24].copy_from_slice(&m.epoch.to_le_bytes());
        v2[24..32].copy_from_slice(&m.created_ns.to_le_bytes());
        let crc = crc32c::crc32c(&v2);
        v2[8..12].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&manifest, &v2).unwrap();
        assert_eq!(Manifest::decode(&v2).unwrap().version, 2);
        // Damage in the middle of the first (closed) segment: a truncating open cuts there and
        // records its LSN floor in the MANIFEST before it sets segments aside.
        let segs = segments(dir.path());
        assert!(segs.len() > 2, "{io}: several segments");
        let recs = segfiles::records(&segs[0], m.epoch);
        segfiles::flip(&segs[0], recs[recs.len() / 2].0 + 30);
        let db = Db::open(
            dir.path(),
            o.clone().recovery(RecoveryMode::TruncateAtCorruption),
        )
        .unwrap();
        assert!(
            db.recovery_stats().truncated_at.is_some(),
            "{io}: the log was cut"
        );
        let kept = count_keys(&db);
        assert!(kept > 0 && kept < 2000, "{io}: {kept} keys kept");
        db.close().unwrap();
        let now = Manifest::decode(&std::fs::read(&manifest).unwrap()).unwrap();
        assert_eq!(now.version, ringlog_format::FORMAT_VERSION, "{io}");
        assert!(now.seq > 0, "{io}: a successor of the version-2 MANIFEST");
        let db = Db::open(dir.path(), o).unwrap();
        assert_eq!(
            count_keys(&db),
            kept,
            "{io}: the cut database reopens as it was"
        );
        db.close().unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// 7. a transaction with an operation recovery cannot apply
// ---------------------------------------------------------------------------------------------

/// A new segment after the last one holding `specs` (encoded in order, each checksummed in
/// place), with a valid header: what a writer that follows the format byte for byte but not the
/// engine's rules could leave.
/// A copy of the files of `dir` in a new temporary directory.
fn copy_of(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    copy
}

fn append_records(dir: &Path, base_lsn: u64, specs: &[RecordSpec<'_>]) -> PathBuf {
    let path = next_segment(dir);
    let id = seg_id(&path);
    let ep = epoch(dir);
    let prev_end = valid_end(dir, ep);
    let mut buf = vec![0u8; SEGMENT_HEADER_LEN + 4096];
    SegmentHeader::new(id, ep, 1, 0, prev_end, base_lsn).encode(&mut buf);
    let mut at = SEGMENT_HEADER_LEN;
    for spec in specs {
        let pos = SegmentPos {
            segment_id: id,
            epoch: ep,
            offset: at as u64,
        };
        at += encode_record(&mut buf[at..], spec, pos).unwrap();
    }
    std::fs::write(&path, &buf).unwrap();
    path
}

/// A transaction one of whose operations recovery cannot apply (a retention policy entry that
/// does not decode, in records whose checksums hold) is never applied in part: recovery used to
/// apply the operations before it, count the transaction as applied, then stop at the bad one
/// (found in review). Now the transaction is checked whole first: here, the last batch of the
/// log, it is cut as a torn tail and none of it is visible.
#[test]
fn a_transaction_with_an_operation_that_cannot_apply_is_not_applied_in_part() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        with_keys(dir.path(), io, 5);
        let last = Db::open(dir.path(), opts(io)).unwrap().last_lsn();
        let lsn = last + 1;
        let start = SEGMENT_HEADER_LEN as u32;
        append_records(
            dir.path(),
            lsn,
            &[
                RecordSpec::batch_head(1, 0, SEGMENT_HEADER_LEN as u64, start),
                RecordSpec::marker(ringlog_format::RecordKind::BeginTxn, 2, lsn, start),
                RecordSpec::write(b"half", b"applied", lsn, start),
                RecordSpec::write(b"retention", b"not a policy", lsn, start).system(),
                RecordSpec::marker(ringlog_format::RecordKind::CommitTxn, 2, lsn, start),
            ],
        );
        // Each open reads a copy: a recovery cuts the tail it refuses.
        for (mode, o) in [("strict", opts(io)), ("truncating", truncating(io))] {
            let copy = copy_of(dir.path());
            let db = Db::open(copy.path(), o).unwrap();
            assert_eq!(db.get(b"half").unwrap(), None, "{io:?} {mode}: half a txn");
            assert_eq!(db.last_lsn(), last, "{io:?} {mode}");
            assert_eq!(count_keys(&db), 5, "{io:?} {mode}");
        }
    }
}

/// A retention policy entry recording a trim floor above its own LSN (in records whose checksums
/// hold) is refused like one that does not decode: a policy records the floor in force when it
/// was set, below its LSN. Taken as it was, it made every read of the newest state
/// `HistoryTrimmed` (found by fuzzing the checkpoint loader, whose leading policy entry had the
/// same hole). Here, the last batch of the log, it is cut as a torn tail.
#[test]
fn a_retention_policy_with_a_floor_above_its_lsn_is_refused() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        with_keys(dir.path(), io, 5);
        let last = Db::open(dir.path(), opts(io)).unwrap().last_lsn();
        let lsn = last + 1;
        let start = SEGMENT_HEADER_LEN as u32;
        // LastVersions(3) with a floor: bytes as `Retention::encode` lays them out.
        let policy = |floor: u64| {
            let mut p = vec![2u8, 0, 0, 0, 0, 0, 0, 0];
            p.extend_from_slice(&3u64.to_le_bytes());
            p.extend_from_slice(&floor.to_le_bytes());
            p
        };
        let three = ringlog_db::Retention::LastVersions(3.try_into().unwrap());
        for (floor, applied) in [(last, true), (1 << 40, false)] {
            let copy = copy_of(dir.path());
            let value = policy(floor);
            append_records(
                copy.path(),
                lsn,
                &[
                    RecordSpec::batch_head(1, 0, SEGMENT_HEADER_LEN as u64, start),
                    RecordSpec::marker(ringlog_format::RecordKind::BeginTxn, 1, lsn, start),
                    RecordSpec::write(b"retention", &value, lsn, start).system(),
                    RecordSpec::marker(ringlog_format::RecordKind::CommitTxn, 1, lsn, start),
                ],
            );
            let db = Db::open(copy.path(), opts(io)).unwrap();
            if applied {
                // The control: the same records with a floor below the LSN are a policy.
                assert_eq!((db.last_lsn(), db.retention()), (lsn, three), "{io:?}");
            } else {
                let want = (last, ringlog_db::Retention::Snapshots);
                assert_eq!((db.last_lsn(), db.retention()), want, "{io:?}: not applied");
            }
            assert_eq!(count_keys(&db), 5, "{io:?}: the newest state reads");
        }
    }
}

/// A log whose LSNs are nearly exhausted (its last segment starts at LSN `MAX_ID` - 100): the
/// commits left are written with a lease that stops at `MAX_ID` — the engine wrote a lease
/// record naming `MAX_ID` + 65,435, which its own decoder refuses, so the next open found the
/// log damaged where the commit was (found by the `open` fuzz target) — and past the last LSN a
/// commit is `IdSpaceExhausted`.
#[test]
fn the_lease_near_the_end_of_the_lsn_space_stops_at_the_last_lsn() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        with_keys(dir.path(), io, 3);
        let base = ringlog_format::MAX_ID - 100;
        append_records(dir.path(), base, &[]);
        let db = Db::open(dir.path(), opts(io)).unwrap();
        let lsn = db.put(b"near-the-end", b"v").expect("LSNs are left");
        assert!(lsn > base, "{io:?}");
        db.close().unwrap();
        drop(db);
        let db = Db::open(dir.path(), opts(io)).unwrap();
        let got = db.get(b"near-the-end").unwrap().expect("acknowledged");
        assert_eq!((&got[..], got.lsn()), (&b"v"[..], lsn), "{io:?}");
        assert_eq!(count_keys(&db), 4, "{io:?}");
        // The rest of the LSN space, then a typed refusal.
        let mut last = lsn;
        let refused = loop {
            match db.put(b"k", b"v") {
                Ok(l) => {
                    assert!(l > last && l <= ringlog_format::MAX_ID, "{io:?}: {l}");
                    last = l;
                }
                Err(e) => break e,
            }
        };
        assert!(
            matches!(refused, Error::IdSpaceExhausted("LSN")),
            "{io:?}: {refused:?}"
        );
        assert_eq!(last, ringlog_format::MAX_ID, "{io:?}: every LSN used");
    }
}

/// A file named like the next segment whose header decodes but belongs to another database (its
/// epoch) does not bound the segment before it: its `prev_end` used to be taken as where that
/// segment ends, so a truncating recovery cut the segment's valid records there and a strict one
/// blamed the wrong file (found in review).
#[test]
fn a_foreign_next_segment_header_does_not_bound_the_segment_before_it() {
    for io in PATHS {
        let dir = tempfile::tempdir().unwrap();
        with_keys(dir.path(), io, 20);
        let next = next_segment(dir.path());
        let mut bytes = vec![0u8; SEGMENT_HEADER_LEN + 4096];
        // A header for this id and a foreign epoch, ending the previous segment early.
        let foreign = epoch(dir.path()) ^ 0x5555;
        SegmentHeader::new(
            seg_id(&next),
            foreign,
            1,
            0,
            SEGMENT_HEADER_LEN as u64 + 64,
            1,
        )
        .encode(&mut bytes);
        std::fs::write(&next, &bytes).unwrap();
        expect_corruption(
            Db::open(dir.path(), opts(io)),
            &next,
            "foreign next segment",
        );
        let db = Db::open(dir.path(), truncating(io)).unwrap();
        assert_eq!(
            count_keys(&db),
            20,
            "{io:?}: the segment before it is whole"
        );
        assert_eq!(db.recovery_stats().segments_quarantined, 1, "{io:?}");
    }
}
