//! The log store's durability contract, point by point, on both ringlog I/O paths: appends
//! readable at once and acknowledged (callback) only once durable; `save_vote`, `truncate_after`
//! and `purge` durable when they return, atomic, ordered with the writes around them; no hole;
//! a split purge finished at reopen; an error sticky. "Durable" is checked twice: against the
//! database's durable LSN, and by copying the directory (what a crash would leave, page cache
//! included — so also by a reopen after a clean close).
//!
//! And openraft's contract at its edges (a review's finds, each failing on the code before the
//! fix): an empty append is acknowledged only once everything appended before it is durable
//! (openraft reads a completed IO as a watermark of every earlier one); a hole in the stored log
//! is an error, never a shorter log; a key prefix too long for an entry's key is refused up
//! front instead of failing every append.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::testing::log_id;
use openraft::type_config::TypeConfigExt;
use openraft::RaftLogReader;
use parking_lot::{Condvar, Mutex};
use ringlog_db::io::{BackendInfo, BackendKind, LogDriver, SyncStrategy, VFile, Waker};
use ringlog_db::{Db, IoChoice, Options, Vfs};
use ringlog_openraft::{LogStore, Request, TypeConfig, MAX_PREFIX_LEN};

type Entry = openraft::alias::EntryOf<TypeConfig>;
type Vote = openraft::alias::VoteOf<TypeConfig>;

fn entry(term: u64, index: u64, tag: &str) -> Entry {
    Entry::new_normal(
        log_id::<TypeConfig>(term, 1, index),
        Request::Set {
            key: format!("k{index}"),
            value: format!("{tag}-{index}"),
        },
    )
}

fn open(dir: &Path, io: IoChoice) -> Arc<Db> {
    Arc::new(Db::open(dir, Options::default().io(io)).unwrap())
}

/// A database on the portable path with segments of `size` bytes.
fn open_with_segments(dir: &Path, size: u64) -> Arc<Db> {
    let o = Options::default().io(IoChoice::Portable).segment_size(size);
    Arc::new(Db::open(dir, o).unwrap())
}

/// An entry whose value is `value`.
fn entry_with(term: u64, index: u64, value: &str) -> Entry {
    Entry::new_normal(
        log_id::<TypeConfig>(term, 1, index),
        Request::Set {
            key: format!("k{index}"),
            value: value.to_string(),
        },
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The directory as a crash would leave it now (its files, page cache included), without LOCK.
fn crash_copy(dir: &Path) -> tempfile::TempDir {
    'again: for _ in 0..100 {
        let to = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_name() == "LOCK" {
                continue;
            }
            match std::fs::copy(e.path(), to.path().join(e.file_name())) {
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue 'again,
                Err(err) => panic!("copy: {err}"),
            }
        }
        return to;
    }
    panic!("the directory kept changing")
}

async fn append_acked(store: &mut LogStore<TypeConfig>, entries: Vec<Entry>) -> u64 {
    let (tx, rx) = TypeConfig::oneshot();
    store.append(entries, IOFlushed::signal(tx)).await.unwrap();
    // The append's commit, for the durability check below.
    let lsn = store.db().last_lsn();
    rx.await.unwrap().unwrap();
    lsn
}

async fn all(store: &mut LogStore<TypeConfig>) -> Vec<(u64, u64, String)> {
    store
        .try_get_log_entries(..)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            let tag = match &e.payload {
                openraft::EntryPayload::Normal(Request::Set { value, .. }) => value.clone(),
                other => format!("{other:?}"),
            };
            (e.log_id().leader_id.term, e.index(), tag)
        })
        .collect()
}

fn on_each_path(f: impl Fn(IoChoice)) {
    for io in [IoChoice::Uring, IoChoice::Portable] {
        eprintln!("--- {io:?}");
        f(io);
    }
}

#[test]
fn appends_are_readable_at_once_and_acknowledged_only_once_durable() {
    on_each_path(|io| {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), io);
        rt().block_on(async {
            let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
            for round in 0..20u64 {
                let first = round * 5 + 1;
                let batch: Vec<Entry> = (first..first + 5).map(|i| entry(1, i, "a")).collect();
                let (tx, rx) = TypeConfig::oneshot();
                s.append(batch, IOFlushed::signal(tx)).await.unwrap();
                let lsn = db.last_lsn();
                // Readable when append returns, whether or not the callback fired.
                let got = s.try_get_log_entries(first..first + 5).await.unwrap();
                assert_eq!(got.len(), 5);
                // Fired: by then the database's durable LSN covers the append (the flusher
                // fires it after its wait for that LSN returns; seen here just after).
                rx.await.unwrap().unwrap();
                assert!(
                    db.durable_lsn() >= lsn,
                    "callback fired at durable LSN {} before the append's LSN {lsn}",
                    db.durable_lsn()
                );
                // A crash now keeps it.
                let copy = crash_copy(dir.path());
                let reopened = open(copy.path(), io);
                let mut again = LogStore::<TypeConfig>::new(reopened, b"log/").unwrap();
                assert_eq!(all(&mut again).await.len() as u64, first + 4);
            }
            let state = s.get_log_state().await.unwrap();
            assert_eq!(state.last_log_id, Some(log_id::<TypeConfig>(1, 1, 100)));
            assert_eq!(state.last_purged_log_id, None);
        });
    });
}

#[test]
fn votes_are_durable_when_saved_and_ordered_after_appends() {
    on_each_path(|io| {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), io);
        rt().block_on(async {
            let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
            assert_eq!(s.read_vote().await.unwrap(), None);
            for term in 1..=5u64 {
                // An append whose callback nobody awaits, then a vote: the vote's durability
                // covers the append before it (one log, one order).
                let (tx, _rx) = TypeConfig::oneshot();
                s.append(vec![entry(term, term, "v")], IOFlushed::signal(tx))
                    .await
                    .unwrap();
                let v = Vote::new(term, 2);
                s.save_vote(&v).await.unwrap();
                assert_eq!(
                    db.durable_lsn(),
                    db.last_lsn(),
                    "save_vote returned before durable"
                );
                let copy = crash_copy(dir.path());
                let mut again =
                    LogStore::<TypeConfig>::new(open(copy.path(), io), b"log/").unwrap();
                assert_eq!(again.read_vote().await.unwrap(), Some(v));
                assert_eq!(all(&mut again).await.len() as u64, term);
            }
        });
    });
}

#[test]
fn truncation_and_purge_are_durable_atomic_and_leave_no_hole() {
    on_each_path(|io| {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), io);
        rt().block_on(async {
            let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
            append_acked(&mut s, (1..=10).map(|i| entry(1, i, "old")).collect()).await;
            s.truncate_after(Some(log_id::<TypeConfig>(1, 1, 6)))
                .await
                .unwrap();
            assert_eq!(
                db.durable_lsn(),
                db.last_lsn(),
                "truncate_after returned before durable"
            );
            let copy = crash_copy(dir.path());
            let mut again = LogStore::<TypeConfig>::new(open(copy.path(), io), b"log/").unwrap();
            let idx: Vec<u64> = all(&mut again).await.iter().map(|e| e.1).collect();
            assert_eq!(idx, (1..=6).collect::<Vec<_>>());
            // Re-append from 7 in a new term: contiguous, the new term's entries.
            append_acked(&mut s, (7..=12).map(|i| entry(2, i, "new")).collect()).await;
            let es = all(&mut s).await;
            assert_eq!(
                es.iter().map(|e| e.1).collect::<Vec<_>>(),
                (1..=12).collect::<Vec<_>>()
            );
            assert!(es[6..].iter().all(|e| e.0 == 2 && e.2.starts_with("new")));
            // Purge through 4: gone, the purged id recorded, durable.
            s.purge(log_id::<TypeConfig>(1, 1, 4)).await.unwrap();
            assert_eq!(
                db.durable_lsn(),
                db.last_lsn(),
                "purge returned before durable"
            );
            let st = s.get_log_state().await.unwrap();
            assert_eq!(st.last_purged_log_id, Some(log_id::<TypeConfig>(1, 1, 4)));
            assert_eq!(st.last_log_id, Some(log_id::<TypeConfig>(2, 1, 12)));
            let copy = crash_copy(dir.path());
            let mut again = LogStore::<TypeConfig>::new(open(copy.path(), io), b"log/").unwrap();
            let idx: Vec<u64> = all(&mut again).await.iter().map(|e| e.1).collect();
            assert_eq!(idx, (5..=12).collect::<Vec<_>>());
            // Purging everything: the purged id is the last log id.
            s.purge(log_id::<TypeConfig>(2, 1, 12)).await.unwrap();
            let st = s.get_log_state().await.unwrap();
            assert_eq!(st.last_log_id, Some(log_id::<TypeConfig>(2, 1, 12)));
            assert!(all(&mut s).await.is_empty());
            // Truncating nothing is no error and still orders: an append not yet synced before
            // it is durable when it returns.
            let (tx, _rx) = TypeConfig::oneshot();
            s.append(vec![entry(2, 13, "n")], IOFlushed::signal(tx))
                .await
                .unwrap();
            s.truncate_after(Some(log_id::<TypeConfig>(2, 1, 13)))
                .await
                .unwrap();
            assert_eq!(
                db.durable_lsn(),
                db.last_lsn(),
                "an empty truncation did not order"
            );
        });
    });
}

#[test]
fn a_split_purge_interrupted_by_a_crash_is_finished_at_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let n = ringlog_openraft::log_store::MAX_OPS_PER_TXN as u64 * 2 + 100;
    {
        let db = open(dir.path(), IoChoice::Portable);
        rt().block_on(async {
            let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
            for chunk in (1..=n).collect::<Vec<_>>().chunks(1000) {
                append_acked(&mut s, chunk.iter().map(|&i| entry(1, i, "p")).collect()).await;
            }
            // A purge of more than one transaction's worth: complete when it returns.
            s.purge(log_id::<TypeConfig>(1, 1, n - 50)).await.unwrap();
            let idx: Vec<u64> = all(&mut s).await.iter().map(|e| e.1).collect();
            assert_eq!(idx, (n - 49..=n).collect::<Vec<_>>());
        });
        db.close().unwrap();
    }
    // What a crash after the purge's first transaction leaves: the purged id, and entries at or
    // below it (put back here by hand, in the store's layout).
    {
        let db = open(dir.path(), IoChoice::Portable);
        let mut tx = db.begin();
        let purged = postcard::to_stdvec(&log_id::<TypeConfig>(1, 1, n)).unwrap();
        // (The store's namespace: its prefix framed by its length, docs/RAFT.md.)
        tx.put(b"\x00\x04log/p", &purged).unwrap();
        tx.commit().unwrap();
        db.close().unwrap();
    }
    let db = open(dir.path(), IoChoice::Portable);
    rt().block_on(async {
        let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
        assert!(
            all(&mut s).await.is_empty(),
            "entries at or below the purged id are read"
        );
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, Some(log_id::<TypeConfig>(1, 1, n)));
    });
    // The reopen deleted them.
    assert_eq!(db.prefix(b"\x00\x04log/l").unwrap().count(), 0);
}

#[test]
fn an_error_is_sticky() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), IoChoice::Portable);
    rt().block_on(async {
        let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
        append_acked(&mut s, vec![entry(1, 1, "x")]).await;
        // The database goes away under the store: the next write fails...
        db.close().unwrap();
        let (tx, rx) = TypeConfig::oneshot();
        assert!(s
            .append(vec![entry(1, 2, "x")], IOFlushed::signal(tx))
            .await
            .is_err());
        assert!(
            rx.await.unwrap().is_err(),
            "the callback reports the failure"
        );
        // ... and every later call too, reads included: the store is poisoned.
        let e = s.read_vote().await.unwrap_err();
        assert!(e.to_string().contains("poisoned"), "{e}");
        assert!(s.get_log_state().await.is_err());
        assert!(s.save_vote(&Vote::new(1, 1)).await.is_err());
    });
}

#[test]
fn stores_under_different_prefixes_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), IoChoice::Portable);
    rt().block_on(async {
        let mut a = LogStore::<TypeConfig>::new(db.clone(), b"group-a/").unwrap();
        let mut b = LogStore::<TypeConfig>::new(db.clone(), b"group-b/").unwrap();
        append_acked(&mut a, (1..=3).map(|i| entry(1, i, "a")).collect()).await;
        append_acked(&mut b, (1..=5).map(|i| entry(1, i, "b")).collect()).await;
        b.purge(log_id::<TypeConfig>(1, 1, 2)).await.unwrap();
        assert_eq!(all(&mut a).await.len(), 3);
        assert_eq!(all(&mut b).await.len(), 3);
        assert_eq!(a.get_log_state().await.unwrap().last_purged_log_id, None);
    });
}

/// A prefix that extends another's is another namespace: the store under `raft/` does not read
/// the vote of the store under `raft/leader01` as an entry (before the prefixes were framed,
/// `raft/leader01v` was `raft/` `l` and an 8-byte "index": its log state failed to decode, and its
/// truncation deleted the other store's durable vote — a vote lost lets a node vote twice in a
/// term); nor does a state machine take a store's keys for its data.
#[test]
fn a_prefix_that_extends_another_is_its_own_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), IoChoice::Portable);
    rt().block_on(async {
        let mut a = LogStore::<TypeConfig>::new(db.clone(), b"raft/").unwrap();
        let mut b = LogStore::<TypeConfig>::new(db.clone(), b"raft/leader01").unwrap();
        append_acked(&mut a, (1..=2).map(|i| entry(1, i, "a")).collect()).await;
        let v = Vote::new(7, 3);
        b.save_vote(&v).await.unwrap();
        append_acked(&mut b, (1..=4).map(|i| entry(7, i, "b")).collect()).await;
        let st = a.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, Some(log_id::<TypeConfig>(1, 1, 2)));
        assert_eq!(all(&mut a).await.len(), 2);
        a.truncate_after(Some(log_id::<TypeConfig>(1, 1, 1)))
            .await
            .unwrap();
        a.purge(log_id::<TypeConfig>(1, 1, 1)).await.unwrap();
        assert_eq!(b.read_vote().await.unwrap(), Some(v));
        assert_eq!(all(&mut b).await.len(), 4);
        assert_eq!(a.read_vote().await.unwrap(), None);
        // A state machine under `sm/` and a store under `sm/d`: the store's vote was the state
        // machine's data key `v` (`sm/` `d` `v`).
        let mut c = LogStore::<TypeConfig>::new(db.clone(), b"sm/d").unwrap();
        c.save_vote(&v).await.unwrap();
        let sm = ringlog_openraft::StateMachine::new(db.clone(), b"sm/").unwrap();
        assert_eq!(sm.get("v").unwrap(), None, "a store's vote read as data");
    });
}

/// On an in-memory database the store works, with nothing to make durable: appends are
/// acknowledged at once, votes, truncations and purges succeed (the database has no log; the
/// store used to ask for `Buffered` and `Strict` commits, which it refuses, and poison itself at
/// the first append).
#[test]
fn a_store_on_an_in_memory_database_works() {
    let db = Arc::new(Db::in_memory());
    rt().block_on(async {
        let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
        append_acked(&mut s, (1..=5).map(|i| entry(1, i, "m")).collect()).await;
        let v = Vote::new(2, 1);
        s.save_vote(&v).await.unwrap();
        s.truncate_after(Some(log_id::<TypeConfig>(1, 1, 4)))
            .await
            .unwrap();
        s.purge(log_id::<TypeConfig>(1, 1, 2)).await.unwrap();
        s.save_committed(Some(log_id::<TypeConfig>(1, 1, 3)))
            .await
            .unwrap();
        assert_eq!(s.read_vote().await.unwrap(), Some(v));
        let got: Vec<u64> = all(&mut s).await.iter().map(|e| e.1).collect();
        assert_eq!(got, [3, 4]);
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(log_id::<TypeConfig>(1, 1, 2)));
        assert_eq!(st.last_log_id, Some(log_id::<TypeConfig>(1, 1, 4)));
    });
}

/// Once every handle on a store is dropped, the caller's `Arc<Db>` is the only one left: it
/// unwraps and closes at once (the store's flusher thread, which may still be running, holds the
/// database weakly; it used to hold it strongly until it noticed the store was gone).
#[test]
fn dropping_the_store_leaves_the_database_to_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..20 {
        let db = open(dir.path(), IoChoice::Portable);
        rt().block_on(async {
            let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
            append_acked(&mut s, vec![entry(1, round + 1, "d")]).await;
        });
        let db = Arc::try_unwrap(db)
            .unwrap_or_else(|_| panic!("round {round}: the database is still shared"));
        db.close().unwrap();
    }
}

#[test]
fn purged_entries_are_reclaimed_by_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_with_segments(dir.path(), 1 << 20);
    let bytes = |p: &Path| -> u64 {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    };
    rt().block_on(async {
        let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
        let big = "x".repeat(1000);
        for chunk in (1..=6000u64).collect::<Vec<_>>().chunks(200) {
            let entries = chunk
                .iter()
                .map(|&i| {
                    entry_with(1, i, &big)
                })
                .collect();
            append_acked(&mut s, entries).await;
        }
        let before = bytes(dir.path());
        s.purge(log_id::<TypeConfig>(1, 1, 5990)).await.unwrap();
        // A checkpoint holds the live state (10 entries); compaction deletes the segments
        // below it.
        let info = db.checkpoint().unwrap();
        let after = bytes(dir.path());
        assert!(
            after * 4 < before,
            "purging 5,990 of 6,000 1 KiB entries and checkpointing left {after} of {before} bytes ({info:?})"
        );
        assert_eq!(all(&mut s).await.len(), 10);
    });
}

/// Small segments (64 KiB): a truncation, a purge and an append batch bigger than one
/// transaction fit are split — in index order for the append, from the top for the truncation,
/// from the bottom for the purge — and all succeed; an entry too big for the database is refused
/// with its callback fired, and the store goes on.
#[test]
fn operations_bigger_than_a_transaction_are_split() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_with_segments(dir.path(), 64 << 10);
    rt().block_on(async {
        let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
        // One append of 200 entries of 2 KiB: ~400 KiB, six times what one transaction holds.
        let big = "y".repeat(2048);
        let entries: Vec<Entry> = (1..=200u64).map(|i| entry_with(1, i, &big)).collect();
        let lsn = append_acked(&mut s, entries).await;
        assert!(db.durable_lsn() >= lsn);
        assert_eq!(all(&mut s).await.len(), 200);
        // 3,000 small entries, then a truncation of all but one: thousands of deletes.
        for chunk in (201..=3200u64).collect::<Vec<_>>().chunks(100) {
            append_acked(&mut s, chunk.iter().map(|&i| entry(1, i, "s")).collect()).await;
        }
        s.truncate_after(Some(log_id::<TypeConfig>(1, 1, 1)))
            .await
            .unwrap();
        assert_eq!(
            all(&mut s).await.iter().map(|e| e.1).collect::<Vec<_>>(),
            [1]
        );
        for chunk in (2..=3001u64).collect::<Vec<_>>().chunks(100) {
            append_acked(&mut s, chunk.iter().map(|&i| entry(2, i, "t")).collect()).await;
        }
        s.purge(log_id::<TypeConfig>(2, 1, 2990)).await.unwrap();
        let idx: Vec<u64> = all(&mut s).await.iter().map(|e| e.1).collect();
        assert_eq!(idx, (2991..=3001).collect::<Vec<_>>());
        // An entry that cannot fit: refused, its callback fired with the error, the store fine.
        let huge = entry_with(2, 3002, &"z".repeat(70 << 10));
        let (tx, rx) = TypeConfig::oneshot();
        assert!(s.append(vec![huge], IOFlushed::signal(tx)).await.is_err());
        assert!(rx.await.unwrap().is_err());
        append_acked(&mut s, vec![entry(2, 3002, "after")]).await;
        assert_eq!(all(&mut s).await.len(), 12);
    });
    // All of it is what a reopen finds.
    drop(db);
}

/// Shut: no durable log write passes until it opens.
#[derive(Default)]
struct Gate {
    shut: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn set(&self, shut: bool) {
        *self.shut.lock() = shut;
        self.cv.notify_all();
    }
    fn pass(&self) {
        let mut shut = self.shut.lock();
        while *shut {
            self.cv.wait(&mut shut);
        }
    }
}

/// A disk whose every durable log write goes through its driver, and waits at the gate.
struct GatedVfs {
    inner: Arc<dyn Vfs>,
    gate: Arc<Gate>,
}

impl Vfs for GatedVfs {
    fn backend(&self) -> BackendInfo {
        BackendInfo::new(BackendKind::Custom, "gated (test)".to_string())
    }
    ringlog_db::io::forward_fs_ops!(inner);
    fn log_driver(&self) -> io::Result<Box<dyn LogDriver>> {
        Ok(Box::new(GatedDriver {
            inner: self.inner.log_driver()?,
            gate: self.gate.clone(),
        }))
    }
}

struct GatedDriver {
    inner: Box<dyn LogDriver>,
    gate: Arc<Gate>,
}

impl LogDriver for GatedDriver {
    fn write_durable(
        &mut self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        self.gate.pass();
        self.inner.write_durable(file, offset, buf, strategy)
    }
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.wait(timeout)
    }
    fn waker(&self) -> Arc<dyn Waker> {
        self.inner.waker()
    }
}

fn open_gated(dir: &Path, io: IoChoice) -> (Arc<Db>, Arc<Gate>) {
    let gate = Arc::new(Gate::default());
    let vfs = Arc::new(GatedVfs {
        inner: ringlog_db::io::select(io).unwrap(),
        gate: gate.clone(),
    });
    let db = Db::open(dir, Options::default().io(io).vfs(vfs)).unwrap();
    (Arc::new(db), gate)
}

#[test]
fn an_empty_append_waits_for_the_appends_before_it() {
    on_each_path(|io| {
        let dir = tempfile::tempdir().unwrap();
        let (db, gate) = open_gated(dir.path(), io);
        rt().block_on(async {
            let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
            // The run's first commit waits for its lease's sync: with the gate open.
            append_acked(&mut s, vec![entry(1, 1, "a")]).await;
            gate.set(true);
            let (c1, r1) = TypeConfig::oneshot();
            s.append(vec![entry(1, 2, "b")], IOFlushed::signal(c1))
                .await
                .unwrap();
            let (c2, r2) = TypeConfig::oneshot();
            s.append(Vec::<Entry>::new(), IOFlushed::signal(c2))
                .await
                .unwrap();
            // Nothing can be durable while the gate is shut: neither may be acknowledged
            // (the empty one was, at once, inside `append`).
            let mut r2 = r2;
            assert!(
                (&mut r2).now_or_never().is_none(),
                "{io:?}: an empty append acknowledged before the append before it is durable"
            );
            gate.set(false);
            r1.await.unwrap().unwrap();
            r2.await.unwrap().unwrap();
        });
    });
}

#[test]
fn a_hole_in_the_log_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    rt().block_on(async {
        let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
        append_acked(&mut s, (1..=5).map(|i| entry(1, i, "h")).collect()).await;
        // Entry 3's key (the namespace: the prefix's length, the prefix; a tag; the index),
        // deleted behind the store's back.
        let mut k = b"\x00\x04log/l".to_vec();
        k.extend_from_slice(&3u64.to_be_bytes());
        assert!(db.get(&k).unwrap().is_some(), "entry 3's key");
        db.delete(&k).unwrap();
        match s.try_get_log_entries(1..=5).await {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}"),
            Ok(es) => panic!(
                "a hole returned as a log: {:?}",
                es.iter().map(|e| e.index()).collect::<Vec<_>>()
            ),
        }
        // Either side of the hole reads.
        assert_eq!(s.try_get_log_entries(1..3).await.unwrap().len(), 2);
        assert_eq!(s.try_get_log_entries(4..6).await.unwrap().len(), 2);
    });
}

#[test]
fn a_prefix_too_long_for_an_entry_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    rt().block_on(async {
        let Err(e) = LogStore::<TypeConfig>::new(db.clone(), &vec![b'p'; MAX_PREFIX_LEN + 1])
        else {
            panic!("a prefix of {} bytes was accepted", MAX_PREFIX_LEN + 1);
        };
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        // The longest allowed prefix works.
        let mut s = LogStore::<TypeConfig>::new(db.clone(), &vec![b'p'; MAX_PREFIX_LEN]).unwrap();
        append_acked(&mut s, vec![entry(1, 1, "a")]).await;
        assert_eq!(s.try_get_log_entries(..).await.unwrap().len(), 1);
    });
}

// ------------------------------------------------------------------------------------------
// Edges a mutation audit (session 36) found no other test pinned: a purge never moves the
// purged id back, `save_committed(None)` clears it, a running store skips what an unfinished
// purge left, the last log id when only leftovers remain, snapshots stored under a new
// generation, and the entry size headroom.
// ------------------------------------------------------------------------------------------

/// The indexes of the entries the store reads, in order.
async fn indexes(store: &mut LogStore<TypeConfig>) -> Vec<u64> {
    all(store).await.iter().map(|e| e.1).collect()
}

/// A purge at or below the last purged id changes nothing: the purged id never moves back
/// (get_log_state answers the higher one, before and after a reopen).
#[test]
fn a_purge_below_the_last_purged_id_never_moves_it_back() {
    on_each_path(|io| {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), io);
        rt().block_on(async {
            let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
            append_acked(&mut s, (1..=10).map(|i| entry(1, i, "v")).collect()).await;
            s.purge(log_id::<TypeConfig>(1, 1, 6)).await.unwrap();
            s.purge(log_id::<TypeConfig>(1, 1, 3)).await.unwrap();
            let st = s.get_log_state().await.unwrap();
            assert_eq!(st.last_purged_log_id, Some(log_id::<TypeConfig>(1, 1, 6)));
            assert_eq!(st.last_log_id, Some(log_id::<TypeConfig>(1, 1, 10)));
            assert_eq!(indexes(&mut s).await, (7..=10).collect::<Vec<_>>());
        });
        drop(db);
        let db = open(dir.path(), io);
        rt().block_on(async {
            let mut s = LogStore::<TypeConfig>::new(db, b"log/").unwrap();
            let st = s.get_log_state().await.unwrap();
            assert_eq!(
                st.last_purged_log_id,
                Some(log_id::<TypeConfig>(1, 1, 6)),
                "{io:?}: after a reopen"
            );
        });
    });
}

/// `save_committed(None)` clears the committed id: `read_committed` answers `None` after it,
/// also after a reopen.
#[test]
fn save_committed_none_clears_the_committed_id() {
    on_each_path(|io| {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), io);
        rt().block_on(async {
            let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
            append_acked(&mut s, (1..=3).map(|i| entry(1, i, "v")).collect()).await;
            s.save_committed(Some(log_id::<TypeConfig>(1, 1, 3)))
                .await
                .unwrap();
            assert_eq!(
                s.read_committed().await.unwrap(),
                Some(log_id::<TypeConfig>(1, 1, 3))
            );
            s.save_committed(None).await.unwrap();
            assert_eq!(s.read_committed().await.unwrap(), None, "{io:?}");
            // Made durable by the next ordering write.
            s.save_vote(&openraft::alias::VoteOf::<TypeConfig>::new(1, 1))
                .await
                .unwrap();
        });
        drop(db);
        let db = open(dir.path(), io);
        rt().block_on(async {
            let mut s = LogStore::<TypeConfig>::new(db, b"log/").unwrap();
            assert_eq!(
                s.read_committed().await.unwrap(),
                None,
                "{io:?}: after a reopen"
            );
        });
    });
}

/// What a split purge leaves between its first transaction and its last (or a crash before the
/// reopen finishes it): the purged id, and entries at or below it not deleted yet. Readers skip
/// them — on the running store, not only after a reopen — and `get_log_state` answers the
/// purged id as the last when nothing above it is left, even when the leftover entry at its
/// index has another term (a snapshot's purge over a conflicting log).
#[test]
fn entries_a_purge_has_not_deleted_yet_are_skipped_by_the_running_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), IoChoice::Portable);
    rt().block_on(async {
        let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
        append_acked(&mut s, (1..=10).map(|i| entry(1, i, "v")).collect()).await;
        // The purged id through 6, recorded ahead of the deletions (as a split purge's first
        // transaction records it), behind the running store.
        let p6 = postcard::to_stdvec(&log_id::<TypeConfig>(1, 1, 6)).unwrap();
        db.put(b"\x00\x04log/p", &p6).unwrap();
        assert_eq!(indexes(&mut s).await, (7..=10).collect::<Vec<_>>());
        assert_eq!(
            s.try_get_log_entries(3..=8)
                .await
                .unwrap()
                .iter()
                .map(|e| e.index())
                .collect::<Vec<_>>(),
            [7, 8]
        );
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(log_id::<TypeConfig>(1, 1, 6)));
        assert_eq!(st.last_log_id, Some(log_id::<TypeConfig>(1, 1, 10)));
    });
}

/// `get_log_state` when every entry left lies at or below the purged id (a purge not finished):
/// the purged id is the last log id — also when the leftover entry at the purged index has an
/// older term than the purged id (a purge over a conflicting log, as after a snapshot install).
#[test]
fn the_purged_id_is_the_last_when_only_leftovers_at_or_below_it_remain() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), IoChoice::Portable);
    rt().block_on(async {
        let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
        append_acked(&mut s, (1..=10).map(|i| entry(1, i, "v")).collect()).await;
        let p = log_id::<TypeConfig>(2, 1, 10);
        let k = b"\x00\x04log/p";
        db.put(k, &postcard::to_stdvec(&p).unwrap()).unwrap();
        assert!(indexes(&mut s).await.is_empty(), "leftovers are skipped");
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(p));
        assert_eq!(st.last_log_id, Some(p), "the purged id, not a leftover's");
        // The same with a leftover below the purged index only.
        let p = log_id::<TypeConfig>(2, 1, 12);
        db.put(k, &postcard::to_stdvec(&p).unwrap()).unwrap();
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, Some(p));
    });
}

/// Each stored snapshot's chunks go under a generation no chunk had (the current snapshot's stay
/// untouched until the new header replaces it: a crash between the two leaves the old snapshot
/// whole), and once the new one is current only its chunks are left — none of an older, larger
/// one under the same generation.
#[test]
fn a_new_snapshot_is_stored_under_a_new_generation() {
    use openraft::alias::SnapshotMetaOf;
    use openraft::storage::RaftStateMachine;
    use openraft::RaftSnapshotBuilder;
    use ringlog_openraft::StateMachine;

    // The chunk keys: the namespace of `sm/` (its length, 2 bytes BE, then the prefix), `sc`,
    // the generation (u64 BE) and the chunk (u32 BE).
    let chunk_prefix = b"\x00\x03sm/sc".to_vec();
    let generations = |db: &Db| -> Vec<(u64, u32)> {
        db.prefix(&chunk_prefix)
            .unwrap()
            .map(|r| {
                let k = r.unwrap().0;
                let rest = &k[chunk_prefix.len()..];
                (
                    u64::from_be_bytes(rest[..8].try_into().unwrap()),
                    u32::from_be_bytes(rest[8..].try_into().unwrap()),
                )
            })
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let db = open_with_segments(dir.path(), 64 << 10);
    rt().block_on(async {
        let mut sm = StateMachine::new(db.clone(), b"sm/").unwrap();
        // A snapshot of several chunks (64 KiB segments: chunks below 64 KiB).
        let big = "w".repeat(20_000);
        let mut entries = Vec::new();
        for i in 1..=10u64 {
            entries.push(Entry::new_normal(
                log_id::<TypeConfig>(1, 1, i),
                Request::Set {
                    key: format!("k{i:02}"),
                    value: big.clone(),
                },
            ));
        }
        sm.apply(futures::stream::iter(
            entries.into_iter().map(|e| Ok((e, None))),
        ))
        .await
        .unwrap();
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let first = generations(&db);
        assert!(first.len() > 1, "several chunks: {first:?}");
        let g1 = first[0].0;
        assert!(first.iter().all(|c| c.0 == g1));
        // A smaller snapshot installed over it: one chunk, under a new generation, alone.
        let meta = SnapshotMetaOf::<TypeConfig> {
            last_log_id: Some(log_id::<TypeConfig>(2, 1, 20)),
            last_membership: Default::default(),
        };
        let data = postcard::to_stdvec(&vec![(b"x".to_vec(), b"1".to_vec())]).unwrap();
        sm.install_snapshot(&meta, std::io::Cursor::new(data))
            .await
            .unwrap();
        let second = generations(&db);
        assert_eq!(
            second.len(),
            1,
            "only the current snapshot's chunks: {second:?}"
        );
        assert_ne!(
            second[0].0, g1,
            "stored under the old snapshot's generation"
        );
        assert_eq!(sm.get("x").unwrap().as_deref(), Some("1"));
    });
}

/// An entry that leaves less than `ENTRY_HEADROOM` bytes below the database's largest value is
/// refused (its callback fired with the error): the state machine writes the entry's effects
/// with its own bookkeeping in one transaction. One that leaves the headroom is taken.
#[test]
fn an_entry_within_the_headroom_of_the_largest_value_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_with_segments(dir.path(), 64 << 10);
    rt().block_on(async {
        let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
        // An entry's key: the namespace (2 + 4 bytes), the tag and the index (9).
        let max = db.max_value_len(2 + 4 + 9);
        let headroom = ringlog_openraft::log_store::ENTRY_HEADROOM;
        let sized = |index: u64, len: usize| {
            Entry::new_normal(
                log_id::<TypeConfig>(1, 1, index),
                Request::Set {
                    key: "k".into(),
                    value: "x".repeat(len),
                },
            )
        };
        // Encoded, an entry is its value and a few dozen bytes of framing.
        let near = sized(1, max - headroom / 2);
        let (tx, rx) = TypeConfig::oneshot();
        let e = s
            .append(vec![near], IOFlushed::signal(tx))
            .await
            .expect_err("an entry within the headroom was taken");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(
            rx.await.unwrap().is_err(),
            "its callback fired with the error"
        );
        assert!(indexes(&mut s).await.is_empty());
        append_acked(&mut s, vec![sized(1, max - 2 * headroom)]).await;
        assert_eq!(indexes(&mut s).await, [1]);
    });
}
