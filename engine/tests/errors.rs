//! Bad input gets a clear, typed error and loses nothing: each test asserts the exact variant,
//! then that the database still works and earlier data is intact. Every test runs on both I/O
//! paths.

mod common;

use std::time::Duration;

use common::*;
use ringlog_db::{Db, Durability, Error, IoChoice, Options, MAX_KEY_LEN};

/// A database with a few committed entries, and those entries.
fn seeded(io: IoChoice, o: Options, dir: &std::path::Path) -> (Db, Vec<Entry>) {
    let db = open(dir, o.io(io));
    db.put(b"alpha", b"1").unwrap();
    let mut tx = db.begin();
    tx.put(b"beta", b"2").unwrap();
    tx.put(b"gamma", b"3").unwrap();
    tx.commit().unwrap();
    db.put(b"delta", b"4").unwrap();
    db.delete(b"delta").unwrap();
    let entries = scan(&db);
    assert_eq!(entries.len(), 3);
    (db, entries)
}

/// The database still works and holds `before` plus one new entry; then the same after reopening.
fn still_works(db: Db, before: &[Entry], dir: &std::path::Path, o: Options) {
    assert_eq!(scan(&db), before, "a refused operation changed the data");
    let lsn = db.put(b"zz-after", b"ok").unwrap();
    assert!(lsn > before.iter().map(|e| e.2).max().unwrap_or(0));
    let mut want = before.to_vec();
    want.push((b"zz-after".to_vec(), b"ok".to_vec(), lsn));
    assert_eq!(scan(&db), want);
    db.close().unwrap();
    drop(db);
    let db = open(dir, o);
    assert_eq!(scan(&db), want, "after reopening");
}

fn strict(io: IoChoice) -> Options {
    opts(io, Durability::Strict)
}

#[test]
fn empty_key_is_refused() {
    on_each_path(|io| {
        let dir = tempdir();
        let (db, before) = seeded(io, strict(io), dir.path());
        assert!(matches!(db.put(b"", b"v"), Err(Error::EmptyKey)));
        assert!(matches!(db.delete(b""), Err(Error::EmptyKey)));
        let mut tx = db.begin();
        tx.put(b"ok-key", b"v").unwrap();
        assert!(matches!(tx.put(b"", b"v"), Err(Error::EmptyKey)));
        assert!(matches!(tx.delete(b""), Err(Error::EmptyKey)));
        assert_eq!(
            tx.len(),
            1,
            "the refused ops left the transaction as it was"
        );
        drop(tx); // abandoned: nothing applied
        assert!(db.get(b"ok-key").unwrap().is_none());
        still_works(db, &before, dir.path(), strict(io));
    });
}

#[test]
fn key_length_limit() {
    on_each_path(|io| {
        let dir = tempdir();
        let (db, before) = seeded(io, strict(io), dir.path());
        let too_long = vec![b'k'; MAX_KEY_LEN + 1];
        match db.put(&too_long, b"v") {
            Err(Error::KeyTooLarge { len, max }) => {
                assert_eq!((len, max), (MAX_KEY_LEN + 1, MAX_KEY_LEN))
            }
            other => panic!("put with a {}-byte key: {other:?}", MAX_KEY_LEN + 1),
        }
        assert!(matches!(
            db.delete(&too_long),
            Err(Error::KeyTooLarge { .. })
        ));
        let mut tx = db.begin();
        assert!(matches!(
            tx.put(&too_long, b"v"),
            Err(Error::KeyTooLarge { .. })
        ));
        assert!(tx.is_empty());
        drop(tx);
        assert_eq!(scan(&db), before);

        // Exactly MAX_KEY_LEN works, survives a reopen, and can be deleted.
        let longest = vec![b'x'; MAX_KEY_LEN];
        let lsn = db.put(&longest, b"longest").unwrap();
        assert_entry(&db, &longest, b"longest", lsn);
        db.close().unwrap();
        drop(db);
        let db = open(dir.path(), strict(io));
        assert_entry(&db, &longest, b"longest", lsn);
        db.delete(&longest).unwrap();
        assert!(db.get(&longest).unwrap().is_none());
        still_works(db, &before, dir.path(), strict(io));
    });
}

/// An in-memory database refuses a value larger than an index node holds (2 GiB) with a typed
/// error before the commit takes an LSN: a review found such a put accepted, its insert
/// panicking with an LSN assigned, and every later commit waiting for that LSN for ever.
#[test]
fn an_in_memory_value_above_2_gib_is_refused_and_nothing_waits_for_it() {
    let db = Db::in_memory();
    db.put(b"a", b"1").unwrap();
    let before = db.last_lsn();
    let max = db.max_value_len(3);
    assert!(((2 << 30) - 3..=2 << 30).contains(&max), "max {max}");
    // calloc'd pages, never touched: the check comes before any copy.
    let big = vec![0u8; max + 1];
    match db.put(b"big", &big) {
        Err(Error::ValueTooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("a value of {} bytes: {other:?}", max + 1),
    }
    let mut tx = db.begin();
    assert!(matches!(
        tx.put(b"big", &big),
        Err(Error::ValueTooLarge { .. })
    ));
    drop(tx);
    assert_eq!(db.last_lsn(), before, "no LSN was taken");
    let lsn = db.put(b"b", b"2").unwrap();
    assert_eq!(lsn, before + 1);
    assert_eq!(&*db.get(b"b").unwrap().unwrap(), b"2");
}

#[test]
fn value_length_limit_with_a_64k_segment() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = strict(io).segment_size(64 << 10);
        let (db, before) = seeded(io, o.clone(), dir.path());
        for key in [&b"v"[..], b"a-longer-key-for-the-value-limit"] {
            let max = db.max_value_len(key.len());
            assert_eq!(max, o.max_value_len(key.len()), "Db and Options agree");
            assert!(max > 32 << 10 && max < 64 << 10, "max {max}");
            match db.put(key, &vec![1u8; max + 1]) {
                Err(Error::ValueTooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
                other => panic!("value of max+1 bytes: {other:?}"),
            }
            let mut tx = db.begin();
            assert!(matches!(
                tx.put(key, &vec![1u8; max + 1]),
                Err(Error::ValueTooLarge { .. })
            ));
            assert!(tx.is_empty());
            drop(tx);
            assert!(db.get(key).unwrap().is_none());
            // Exactly the limit works (it needs a segment of its own).
            let value: Vec<u8> = (0..max).map(|i| (i % 251) as u8).collect();
            let lsn = db.put(key, &value).unwrap();
            assert_entry(&db, key, &value, lsn);
            // ...and through a one-operation transaction too (no Begin/Commit markers there).
            let mut tx = db.begin();
            tx.put(key, &value).unwrap();
            let lsn = tx.commit().unwrap();
            assert_entry(&db, key, &value, lsn);
            db.delete(key).unwrap();
        }
        // The max-sized values survived segment rotation and a reopen (as deletes now).
        still_works(db, &before, dir.path(), o);
    });
}

/// `Options::max_value_len` answers 0, never panics or wraps, for a key no segment holds and for
/// segment sizes an open refuses (found by an API probe: it overflowed in debug builds and
/// answered about 1.8e19 in release builds).
#[test]
fn max_value_len_of_impossible_options_or_keys_is_zero() {
    let o = Options::default();
    assert_eq!(o.max_value_len(usize::MAX), 0);
    assert_eq!(o.max_value_len(usize::MAX - 8), 0);
    assert!(o.max_value_len(16) > 0);
    for size in [
        0,
        4096,
        (64 << 10) - 4096,
        u64::MAX,
        ringlog_format::MAX_SEGMENT_LEN + 4096,
    ] {
        let o = Options::default().segment_size(size);
        assert_eq!(o.max_value_len(1), 0, "segment_size {size}");
        let dir = tempdir();
        assert!(
            matches!(Db::open(dir.path(), o), Err(Error::InvalidOptions(_))),
            "segment_size {size}"
        );
    }
    // The largest segment an open accepts still answers a value limit just under it.
    let o = Options::default().segment_size(ringlog_format::MAX_SEGMENT_LEN);
    let max = o.max_value_len(1);
    assert!(
        max > 0 && (max as u64) < ringlog_format::MAX_SEGMENT_LEN,
        "{max}"
    );
}

#[test]
fn oversized_transaction_is_refused_and_stays_usable() {
    on_each_path(|io| {
        let dir = tempdir();
        let o = strict(io).segment_size(64 << 10);
        let (db, before) = seeded(io, o.clone(), dir.path());
        let value = vec![9u8; 10_000];
        let mut tx = db.begin();
        let mut n = 0;
        let err = loop {
            match tx.put(format!("big-{n}").as_bytes(), &value) {
                Ok(()) => n += 1,
                Err(e) => break e,
            }
            assert!(n < 100, "the transaction never became too large");
        };
        match &err {
            Error::TransactionTooLarge { len, max } => assert!(len > max, "{err:?}"),
            other => panic!("expected TransactionTooLarge, got {other:?}"),
        }
        assert!(n >= 2, "{n} puts fit");
        assert_eq!(tx.len(), n, "the refused op was not added");
        // Still usable: reads its own writes, takes a small op, commits atomically.
        assert_eq!(&*tx.get(b"big-0").unwrap().unwrap(), &value[..]);
        tx.delete(b"alpha").unwrap();
        let lsn = tx.commit().unwrap();
        // Expected: the seeded entries without `alpha`, plus the big ones, all at `lsn`.
        let mut want: Vec<Entry> = before.iter().filter(|e| e.0 != b"alpha").cloned().collect();
        want.extend((0..n).map(|i| (format!("big-{i}").into_bytes(), value.clone(), lsn)));
        want.sort();
        assert_eq!(scan(&db), want);
        still_works(db, &want, dir.path(), o);
    });
}

#[test]
fn path_that_is_a_file_is_not_a_directory() {
    on_each_path(|io| {
        let dir = tempdir();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"precious").unwrap();
        match Db::open(&file, strict(io)) {
            Err(Error::NotADirectory(p)) => assert_eq!(p, file),
            other => panic!("open on a file: {other:?}"),
        }
        assert_eq!(std::fs::read(&file).unwrap(), b"precious");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    });
}

#[test]
fn foreign_directory_is_not_a_database() {
    on_each_path(|io| {
        let dir = tempdir();
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        match Db::open(dir.path(), strict(io)) {
            Err(Error::NotADatabase(p)) => assert_eq!(p, dir.path()),
            other => panic!("open on a foreign directory: {other:?}"),
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["notes.txt".to_string()], "nothing was created");
        assert_eq!(
            std::fs::read(dir.path().join("notes.txt")).unwrap(),
            b"mine"
        );
    });
}

#[test]
fn other_format_version_is_unsupported() {
    on_each_path(|io| {
        let dir = tempdir();
        let (db, before) = seeded(io, strict(io), dir.path());
        db.close().unwrap();
        drop(db);
        let path = dir.path().join("MANIFEST");
        let original = std::fs::read(&path).unwrap();
        let mut m = ringlog_format::Manifest::decode(&original).unwrap();
        m.version = 99;
        std::fs::write(&path, m.encode()).unwrap();
        match Db::open(dir.path(), strict(io)) {
            Err(Error::UnsupportedVersion {
                path: p,
                found,
                supported,
            }) => {
                assert_eq!(p, dir.path());
                assert_eq!(found, 99);
                assert_eq!(supported, ringlog_format::FORMAT_VERSION);
            }
            other => panic!("open of a version-99 database: {other:?}"),
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            m.encode(),
            "the manifest was left alone"
        );
        // Nothing was lost: with the right manifest back, everything is there.
        std::fs::write(&path, &original).unwrap();
        let db = open(dir.path(), strict(io));
        still_works(db, &before, dir.path(), strict(io));
    });
}

#[test]
fn locked_directory() {
    on_each_path(|io| {
        let dir = tempdir();
        let (db, before) = seeded(io, strict(io), dir.path());
        match Db::open(dir.path(), strict(io)) {
            Err(Error::Locked(p)) => assert_eq!(p, dir.path()),
            other => panic!("second open: {other:?}"),
        }
        still_works(db, &before, dir.path(), strict(io));
    });
}

/// A scan created before `close()` goes on reading the index it holds (documented on `Scan`;
/// a `Snapshot`'s reads answer `Closed` instead).
#[test]
fn a_scan_created_before_close_goes_on() {
    on_each_path(|io| {
        let dir = tempdir();
        let (db, before) = seeded(io, strict(io), dir.path());
        let mut scan = db.range::<&[u8], _>(..).unwrap();
        let first = scan.next().unwrap().unwrap();
        let snap = db.snapshot();
        db.close().unwrap();
        let mut seen = vec![first];
        seen.extend(scan.map(Result::unwrap));
        let keys: Vec<&[u8]> = seen.iter().map(|(k, _)| &**k).collect();
        let want: Vec<&[u8]> = before.iter().map(|e| e.0.as_slice()).collect();
        assert_eq!(keys, want, "{io:?}");
        assert!(matches!(snap.get(b"alpha"), Err(Error::Closed)), "{io:?}");
    });
}

#[test]
fn operations_after_close_are_refused() {
    on_each_path(|io| {
        let dir = tempdir();
        let (db, before) = seeded(io, strict(io), dir.path());
        db.close().unwrap();
        let closed = |what: &str, r: Result<String, Error>| match r {
            Err(Error::Closed) => {}
            other => panic!("{what} after close: expected Err(Closed), got {other:?}"),
        };
        closed("get", db.get(b"alpha").map(|v| format!("{v:?}")));
        closed("put", db.put(b"new", b"v").map(|l| l.to_string()));
        closed("delete", db.delete(b"alpha").map(|l| l.to_string()));
        closed("empty commit", db.begin().commit().map(|l| l.to_string()));
        let mut tx = db.begin();
        tx.put(b"new", b"v").unwrap();
        closed("commit", tx.commit().map(|l| l.to_string()));
        let mut tx = db.begin();
        tx.put(b"new", b"v").unwrap();
        closed(
            "commit_with(Strict)",
            tx.commit_with(Durability::Strict).map(|l| l.to_string()),
        );
        closed(
            "range",
            db.range::<&[u8], _>(..)
                .map(|s| format!("{} entries", s.map(Result::unwrap).count())),
        );
        closed(
            "prefix",
            db.prefix(b"a")
                .map(|s| format!("{} entries", s.map(Result::unwrap).count())),
        );
        closed("sync", db.sync().map(|()| "Ok(())".into()));
        // An LSN no commit took; one the close made durable is answered (durability tests).
        closed(
            "wait_durable",
            db.wait_durable(db.last_assigned_lsn() + 1)
                .map(|()| "Ok(())".into()),
        );
        // Closing twice is a no-op.
        db.close().unwrap();
        drop(db);
        let db = open(dir.path(), strict(io));
        still_works(db, &before, dir.path(), strict(io));
    });
}

#[test]
fn invalid_options_are_refused_before_touching_the_disk() {
    on_each_path(|io| {
        let dir = tempdir();
        let path = dir.path().join("db");
        let bad = [
            (
                "segment not a multiple of 4096",
                strict(io).segment_size((256 << 10) + 512),
            ),
            ("segment too small", strict(io).segment_size(32 << 10)),
            ("segment too large", strict(io).segment_size(2 << 30)),
            ("no round in flight", strict(io).rounds_in_flight(0)),
            ("too many rounds in flight", strict(io).rounds_in_flight(17)),
            (
                "Buffered interval zero",
                opts(
                    io,
                    Durability::Buffered {
                        interval: Duration::ZERO,
                        max_pending: 1 << 20,
                    },
                ),
            ),
            (
                "Buffered interval longer than a day",
                opts(
                    io,
                    Durability::Buffered {
                        interval: Durability::MAX_BUFFERED_INTERVAL + Duration::from_nanos(1),
                        max_pending: 1 << 20,
                    },
                ),
            ),
            (
                "Buffered interval Duration::MAX",
                opts(
                    io,
                    Durability::Buffered {
                        interval: Duration::MAX,
                        max_pending: 1 << 20,
                    },
                ),
            ),
            (
                "Buffered max_pending zero",
                opts(
                    io,
                    Durability::Buffered {
                        interval: Duration::from_millis(5),
                        max_pending: 0,
                    },
                ),
            ),
        ];
        for (what, o) in bad {
            match Db::open(&path, o) {
                Err(Error::InvalidOptions(_)) => {}
                other => panic!("{what}: expected InvalidOptions, got {other:?}"),
            }
            assert!(!path.exists(), "{what}: the directory was created");
        }
        // A bad per-transaction override is refused too, and changes nothing.
        let (db, before) = seeded(io, strict(io), &path);
        let mut tx = db.begin();
        tx.put(b"refused", b"v").unwrap();
        match tx.commit_with(Durability::Buffered {
            interval: Duration::ZERO,
            max_pending: 1,
        }) {
            Err(Error::InvalidOptions(_)) => {}
            other => panic!("commit_with(Buffered, interval 0): {other:?}"),
        }
        // Duration::MAX used to overflow the deadline after the LSN was assigned: a panic, and
        // every later commit waited for that LSN to become visible (found by a fresh-user pass).
        let mut tx = db.begin();
        tx.put(b"refused", b"v").unwrap();
        match tx.commit_with(Durability::Buffered {
            interval: Duration::MAX,
            max_pending: 1 << 20,
        }) {
            Err(Error::InvalidOptions(_)) => {}
            other => panic!("commit_with(Buffered, interval MAX): {other:?}"),
        }
        still_works(db, &before, &path, strict(io));
    });
}

#[test]
fn in_memory_override_on_a_persistent_database_is_refused() {
    on_each_path(|io| {
        for o in [strict(io), opts(io, buffered_forever(1 << 20))] {
            let dir = tempdir();
            let (db, before) = seeded(io, o.clone(), dir.path());
            let mut tx = db.begin();
            tx.put(b"refused", b"v").unwrap();
            tx.delete(b"alpha").unwrap();
            match tx.commit_with(Durability::InMemory) {
                Err(Error::DurabilityUnavailable(_)) => {}
                other => panic!("commit_with(InMemory) on {o:?}: {other:?}"),
            }
            still_works(db, &before, dir.path(), o);
        }
    });
}
