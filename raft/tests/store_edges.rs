//! Edges of the log store and the state machine that a mutation audit (session 36) found no
//! other test pinned: a purge never moves the purged id back, `save_committed(None)` clears it,
//! a running store skips what an unfinished purge left, the last log id when only leftovers
//! remain, snapshots stored under a new generation, and the entry size headroom.

use std::io;
use std::path::Path;
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::testing::log_id;
use openraft::type_config::TypeConfigExt;
use openraft::RaftLogReader;
use ringlog_db::{Db, IoChoice, Options};
use ringlog_openraft::{LogStore, Request, TypeConfig};

type Entry = openraft::alias::EntryOf<TypeConfig>;

fn entry(term: u64, index: u64) -> Entry {
    Entry::new_normal(
        log_id::<TypeConfig>(term, 1, index),
        Request::Set {
            key: format!("k{index}"),
            value: format!("v{index}"),
        },
    )
}

fn open(dir: &Path, io: IoChoice) -> Arc<Db> {
    Arc::new(Db::open(dir, Options::default().io(io)).unwrap())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn on_each_path(f: impl Fn(IoChoice)) {
    for io in [IoChoice::Uring, IoChoice::Portable] {
        eprintln!("--- {io:?}");
        f(io);
    }
}

async fn append_acked(store: &mut LogStore<TypeConfig>, entries: Vec<Entry>) {
    let (tx, rx) = TypeConfig::oneshot();
    store.append(entries, IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
}

async fn indexes(store: &mut LogStore<TypeConfig>) -> Vec<u64> {
    store
        .try_get_log_entries(..)
        .await
        .unwrap()
        .iter()
        .map(|e| e.index())
        .collect()
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
            append_acked(&mut s, (1..=10).map(|i| entry(1, i)).collect()).await;
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
            append_acked(&mut s, (1..=3).map(|i| entry(1, i)).collect()).await;
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

/// The store's namespace for prefix `log/` (its length, 2 bytes BE, then the prefix: docs/RAFT.md)
/// followed by `tag`.
fn raw_key(tag: &[u8]) -> Vec<u8> {
    let mut k = b"\x00\x04log/".to_vec();
    k.extend_from_slice(tag);
    k
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
        append_acked(&mut s, (1..=10).map(|i| entry(1, i)).collect()).await;
        // The purged id through 6, recorded ahead of the deletions (as a split purge's first
        // transaction records it), behind the running store.
        let p6 = postcard::to_stdvec(&log_id::<TypeConfig>(1, 1, 6)).unwrap();
        db.put(&raw_key(b"p"), &p6).unwrap();
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
        append_acked(&mut s, (1..=10).map(|i| entry(1, i)).collect()).await;
        let p = log_id::<TypeConfig>(2, 1, 10);
        let mut k = b"\x00\x04log/".to_vec();
        k.push(b'p');
        db.put(&k, &postcard::to_stdvec(&p).unwrap()).unwrap();
        assert!(indexes(&mut s).await.is_empty(), "leftovers are skipped");
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(p));
        assert_eq!(st.last_log_id, Some(p), "the purged id, not a leftover's");
        // The same with a leftover below the purged index only.
        let p = log_id::<TypeConfig>(2, 1, 12);
        db.put(&k, &postcard::to_stdvec(&p).unwrap()).unwrap();
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
    let o = Options::default()
        .io(IoChoice::Portable)
        .segment_size(64 << 10);
    let db = Arc::new(Db::open(dir.path(), o).unwrap());
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
    let o = Options::default()
        .io(IoChoice::Portable)
        .segment_size(64 << 10);
    let db = Arc::new(Db::open(dir.path(), o).unwrap());
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
