//! The openraft log stores the `raft` workload compares (issue 17), and the entries it appends.
//!
//! - ringlog's own [`ringlog_openraft::LogStore`], used as it is (one per Raft group, all on one
//!   `Db` under different key prefixes).
//! - [`MemLog`], the ceiling: written for the benchmark to behave as openraft's `log-mem` example
//!   does — a `BTreeMap` of entries behind a lock, and the flush callback fired inside `append`
//!   (nothing is ever durable). What is left is openraft's API itself: building the entry, the
//!   oneshot callback, the await.
//! - `rocks::RocksLog` (feature `rocksdb`): written to behave as openraft's `log-rocks` example
//!   does — `append` writes the entries as one `WriteBatch` (WAL, `sync=false`), so that they are
//!   readable when it returns, then `flush_wal(true)` (an fsync of the WAL) runs off the append
//!   path, once per append, and only then is the callback fired; entries as JSON under their
//!   big-endian index in a `logs` column family, the vote and the purged id in a `meta` one.
//!   Several stores share one RocksDB instance, each with its own pair of column families. One
//!   difference: the example spawns a thread for every append's `flush_wal`; this store hands
//!   it to a long-lived flusher thread of its own (as ringlog's `LogStore` does), because on
//!   the project's 2-vCPU VM the spawn alone made the example's appends about twice as slow
//!   (docs/BENCHMARKS.md, "Raft log appends").
//!
//!   `RocksLog::with_sync_writes` is the same store written as a RocksDB user after
//!   throughput would: each append's `WriteBatch` with `sync=true` (RocksDB groups concurrent
//!   writers' syncs), the callback fired when the write returns; the `raft` workload measures it
//!   beside the example's (its notes), since the example's `flush_wal` calls do not group.
//!
//! [`Entries`] builds the entries every store is given, so that what is read back can be
//! compared with what was appended.

use std::collections::BTreeMap;
use std::fmt::{Debug, Write as _};
use std::io;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use parking_lot::Mutex;

pub use ringlog_openraft::{Request, TypeConfig};

/// An entry of the workload's logs.
pub type Entry = EntryOf<TypeConfig>;
/// A log id.
pub type LogId = LogIdOf<TypeConfig>;
/// A vote.
pub type Vote = VoteOf<TypeConfig>;

/// The term of every appended entry.
pub const TERM: u64 = 1;
/// The leader node of every appended entry.
pub const LEADER: u64 = 1;
/// The index of each log's first entry.
pub const FIRST_INDEX: u64 = 1;

/// Bytes of filler the values are cut from beyond the value size (a value starts at one of this
/// many offsets).
const POOL_SPAN: usize = 64;

/// The log id of the entry at `index`.
pub fn log_id(index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(TERM, LEADER, index)
}

/// Builds the entries: entry `index` of store `store` is a `Request::Set` of the key
/// `g<store>/<index>` to a value of exactly the value size, ASCII, starting `g<store>i<index>:`
/// and followed by filler cut from a fixed pool at an offset both choose. Deterministic, so
/// that a read-back compares each entry with the one appended.
#[derive(Clone, Debug)]
pub struct Entries {
    value_size: usize,
    pool: String,
}

impl Entries {
    /// Entries with values of `value_size` bytes.
    pub fn new(value_size: usize) -> Entries {
        let mut rng = crate::keys::Rng::new(0x4af7);
        let pool = (0..value_size + POOL_SPAN)
            .map(|_| char::from(b'a' + rng.below(26) as u8))
            .collect();
        Entries { value_size, pool }
    }

    /// The value size in bytes.
    pub fn value_size(&self) -> usize {
        self.value_size
    }

    /// The request of entry `index` of store `store`.
    pub fn request(&self, store: usize, index: u64) -> Request {
        let mut value = String::with_capacity(self.value_size);
        let _ = write!(value, "g{store}i{index}:");
        value.truncate(self.value_size);
        let off = (crate::keys::mix64(((store as u64) << 48) ^ index) % POOL_SPAN as u64) as usize;
        let rest = self.value_size - value.len();
        value.push_str(&self.pool[off..off + rest]);
        Request::Set {
            key: format!("g{store}/{index}"),
            value,
        }
    }

    /// Entry `index` of store `store`.
    pub fn entry(&self, store: usize, index: u64) -> Entry {
        Entry::new_normal(log_id(index), self.request(store, index))
    }

    /// Its key and value bytes (what the harness counts as user bytes).
    pub fn user_bytes(e: &Entry) -> u64 {
        match &e.payload {
            openraft::EntryPayload::Normal(Request::Set { key, value }) => {
                (key.len() + value.len()) as u64
            }
            _ => 0,
        }
    }
}

/// What a [`MemLog`] holds.
#[derive(Default)]
struct MemInner {
    log: BTreeMap<u64, Entry>,
    purged: Option<LogId>,
    committed: Option<LogId>,
    vote: Option<Vote>,
}

/// The ceiling: an in-memory log store that behaves as openraft's `log-mem` example (see the
/// module documentation). Cloning gives another handle on the same log.
#[derive(Clone, Default)]
pub struct MemLog {
    inner: Arc<Mutex<MemInner>>,
}

impl Debug for MemLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemLog")
            .field("entries", &self.inner.lock().log.len())
            .finish_non_exhaustive()
    }
}

impl RaftLogReader<TypeConfig> for MemLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let inner = self.inner.lock();
        Ok(inner.log.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.inner.lock().vote)
    }
}

impl RaftLogStorage<TypeConfig> for MemLog {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let inner = self.inner.lock();
        let last = inner.log.values().next_back().map(|e| e.log_id());
        Ok(LogState {
            last_purged_log_id: inner.purged,
            last_log_id: last.or(inner.purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.inner.lock().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.inner.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.inner.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        {
            let mut inner = self.inner.lock();
            for e in entries {
                inner.log.insert(e.index(), e);
            }
        }
        // Nothing to wait for: "flushed" at once.
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |l| l.index() + 1);
        drop(self.inner.lock().log.split_off(&from));
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let mut inner = self.inner.lock();
        if inner
            .purged
            .as_ref()
            .is_some_and(|p| p.index() >= log_id.index())
        {
            return Ok(());
        }
        let keep = inner.log.split_off(&(log_id.index() + 1));
        inner.log = keep;
        inner.purged = Some(log_id);
        Ok(())
    }
}

/// The RocksDB-backed store (feature `rocksdb`).
#[cfg(feature = "rocksdb")]
pub mod rocks {
    use std::fmt::Debug;
    use std::io;
    use std::ops::{Bound, RangeBounds};
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc::{Receiver, Sender};
    use std::sync::Arc;

    use openraft::entry::RaftEntry;
    use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
    use openraft::{OptionalSend, RaftLogReader};
    use rocksdb::{ColumnFamily, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

    use super::{Entry, LogId, TypeConfig, Vote};

    /// The column families of store `store`: its entries, and its vote and purged id.
    fn cf_names(store: usize) -> (String, String) {
        (format!("logs-{store}"), format!("meta-{store}"))
    }

    /// Opens (creating) a RocksDB instance in `dir` with the column families of `stores` stores
    /// (no compression, as the harness's RocksDB peer).
    pub fn open(dir: &Path, stores: usize) -> io::Result<Arc<DB>> {
        let mut o = Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.set_compression_type(rocksdb::DBCompressionType::None);
        let names: Vec<String> = (0..stores)
            .flat_map(|g| {
                let (l, m) = cf_names(g);
                [l, m]
            })
            .collect();
        DB::open_cf(&o, dir, &names)
            .map(Arc::new)
            .map_err(io::Error::other)
    }

    /// A log store on a shared RocksDB instance that behaves as openraft's `log-rocks` example
    /// (see the module documentation). Cloning gives another handle on the same store; its
    /// flusher thread ends when the last handle is dropped.
    #[derive(Clone)]
    pub struct RocksLog {
        db: Arc<DB>,
        logs: String,
        meta: String,
        /// `flush_wal(true)` calls completed (shared by the stores of one run).
        flushes: Arc<AtomicU64>,
        /// To the store's flusher thread: each append's callback (`None`: the store writes
        /// with `sync=true` instead, [`RocksLog::with_sync_writes`]).
        flusher: Option<Arc<Sender<IOFlushed<TypeConfig>>>>,
    }

    impl Debug for RocksLog {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RocksLog")
                .field("logs", &self.logs)
                .finish_non_exhaustive()
        }
    }

    /// A store's flusher: for each append in the order made, `flush_wal(true)`, then its
    /// callback.
    fn flusher(db: Arc<DB>, flushes: Arc<AtomicU64>, rx: Receiver<IOFlushed<TypeConfig>>) {
        while let Ok(callback) = rx.recv() {
            let r = db.flush_wal(true).map_err(io::Error::other);
            flushes.fetch_add(1, Ordering::Relaxed);
            callback.io_completed(r);
        }
    }

    const VOTE: &[u8] = b"vote";
    const PURGED: &[u8] = b"last_purged_log_id";

    fn bad_data(e: impl std::fmt::Display) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e.to_string())
    }

    impl RocksLog {
        /// Store `store` of `db` (opened by [`open`] with at least `store + 1` stores); its
        /// `flush_wal(true)` calls are counted in `flushes`.
        pub fn new(db: Arc<DB>, store: usize, flushes: Arc<AtomicU64>) -> io::Result<RocksLog> {
            let (logs, meta) = cf_names(store);
            for cf in [&logs, &meta] {
                if db.cf_handle(cf).is_none() {
                    return Err(io::Error::other(format!("no column family {cf}")));
                }
            }
            let (tx, rx) = std::sync::mpsc::channel();
            let (d, f) = (db.clone(), flushes.clone());
            std::thread::Builder::new()
                .name("rocks-flush-wal".into())
                .spawn(move || flusher(d, f, rx))?;
            Ok(RocksLog {
                db,
                logs,
                meta,
                flushes,
                flusher: Some(Arc::new(tx)),
            })
        }

        /// Store `store` of `db` as a RocksDB user after throughput would write it, not as the
        /// example does: `append` writes its `WriteBatch` with `sync=true` — durable when the
        /// write returns, concurrent writers' syncs grouped by RocksDB's write group — and fires
        /// the callback at once. No flusher thread, no `flush_wal` call.
        pub fn with_sync_writes(db: Arc<DB>, store: usize) -> io::Result<RocksLog> {
            let (logs, meta) = cf_names(store);
            for cf in [&logs, &meta] {
                if db.cf_handle(cf).is_none() {
                    return Err(io::Error::other(format!("no column family {cf}")));
                }
            }
            Ok(RocksLog {
                db,
                logs,
                meta,
                flushes: Arc::new(AtomicU64::new(0)),
                flusher: None,
            })
        }

        fn cf(&self, name: &str) -> io::Result<&ColumnFamily> {
            self.db
                .cf_handle(name)
                .ok_or_else(|| io::Error::other(format!("no column family {name}")))
        }

        fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
            match self
                .db
                .get_cf(self.cf(&self.meta)?, key)
                .map_err(io::Error::other)?
            {
                Some(b) => serde_json::from_slice(&b).map(Some).map_err(bad_data),
                None => Ok(None),
            }
        }

        fn put_meta<T: serde::Serialize>(&self, key: &[u8], v: &T) -> io::Result<()> {
            let b = serde_json::to_vec(v).map_err(bad_data)?;
            self.db
                .put_cf(self.cf(&self.meta)?, key, b)
                .map_err(io::Error::other)
        }
    }

    impl RaftLogReader<TypeConfig> for RocksLog {
        async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
            &mut self,
            range: RB,
        ) -> Result<Vec<Entry>, io::Error> {
            let start = match range.start_bound() {
                Bound::Included(&i) => i,
                Bound::Excluded(&i) => i.saturating_add(1),
                Bound::Unbounded => 0,
            }
            .to_be_bytes();
            let mut out = Vec::new();
            let it = self.db.iterator_cf(
                self.cf(&self.logs)?,
                IteratorMode::From(&start, Direction::Forward),
            );
            for item in it {
                let (k, v) = item.map_err(io::Error::other)?;
                let index = u64::from_be_bytes(
                    k.as_ref()
                        .try_into()
                        .map_err(|_| bad_data("an entry key is not 8 bytes"))?,
                );
                if !range.contains(&index) {
                    break;
                }
                let e: Entry = serde_json::from_slice(&v).map_err(bad_data)?;
                if e.index() != index {
                    return Err(bad_data(format!(
                        "entry {} stored under index {index}",
                        e.index()
                    )));
                }
                out.push(e);
            }
            Ok(out)
        }

        async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
            self.get_meta(VOTE)
        }
    }

    impl RaftLogStorage<TypeConfig> for RocksLog {
        type LogReader = Self;

        async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
            let last = match self
                .db
                .iterator_cf(self.cf(&self.logs)?, IteratorMode::End)
                .next()
            {
                Some(item) => {
                    let (_, v) = item.map_err(io::Error::other)?;
                    let e: Entry = serde_json::from_slice(&v).map_err(bad_data)?;
                    Some(e.log_id())
                }
                None => None,
            };
            let purged: Option<LogId> = self.get_meta(PURGED)?;
            Ok(LogState {
                last_log_id: last.or(purged),
                last_purged_log_id: purged,
            })
        }

        async fn get_log_reader(&mut self) -> Self::LogReader {
            self.clone()
        }

        async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
            self.put_meta(VOTE, vote)?;
            // Durable before it returns.
            self.db.flush_wal(true).map_err(io::Error::other)?;
            self.flushes.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }

        async fn append<I>(
            &mut self,
            entries: I,
            callback: IOFlushed<TypeConfig>,
        ) -> Result<(), io::Error>
        where
            I: IntoIterator<Item = Entry> + OptionalSend,
            I::IntoIter: OptionalSend,
        {
            let mut batch = WriteBatch::default();
            {
                let cf = self.cf(&self.logs)?;
                for e in entries {
                    let v = serde_json::to_vec(&e).map_err(bad_data)?;
                    batch.put_cf(cf, e.index().to_be_bytes(), v);
                }
            }
            let Some(flusher) = &self.flusher else {
                // Durable when the write returns (sync=true): the callback at once.
                let mut wo = WriteOptions::default();
                wo.set_sync(true);
                let r = self.db.write_opt(batch, &wo).map_err(io::Error::other);
                let failed = r
                    .as_ref()
                    .err()
                    .map(|e| io::Error::new(e.kind(), e.to_string()));
                callback.io_completed(r);
                return failed.map_or(Ok(()), Err);
            };
            // Readable when append returns (default WriteOptions: WAL, sync=false) ...
            self.db.write(batch).map_err(io::Error::other)?;
            // ... durable once the WAL is synced, by the store's flusher thread; then the
            // callback.
            if let Err(e) = flusher.send(callback) {
                e.0.io_completed(Err(io::Error::other("the store's flusher has stopped")));
            }
            Ok(())
        }

        async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
            let from = last_log_id.map_or(0, |l| l.index() + 1);
            self.db
                .delete_range_cf(
                    self.cf(&self.logs)?,
                    from.to_be_bytes(),
                    u64::MAX.to_be_bytes(),
                )
                .map_err(io::Error::other)
        }

        async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
            // The purged id first: entries at or below it are ignored from then on.
            self.put_meta(PURGED, &log_id)?;
            self.db
                .delete_range_cf(
                    self.cf(&self.logs)?,
                    0u64.to_be_bytes(),
                    (log_id.index() + 1).to_be_bytes(),
                )
                .map_err(io::Error::other)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::type_config::TypeConfigExt;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn entries_are_deterministic_and_of_the_value_size() {
        let a = Entries::new(1024);
        let b = Entries::new(1024);
        for (g, i) in [(0usize, 1u64), (15, 1_000_000), (1023, u64::MAX)] {
            let e = a.entry(g, i);
            assert_eq!(e, b.entry(g, i));
            assert_eq!(e.log_id(), log_id(i));
            let openraft::EntryPayload::Normal(Request::Set { key, value }) = &e.payload else {
                panic!("{e:?}");
            };
            assert_eq!(value.len(), 1024);
            assert!(value.starts_with(&format!("g{g}i{i}:")), "{value}");
            assert_eq!(key, &format!("g{g}/{i}"));
            assert_eq!(Entries::user_bytes(&e), (key.len() + 1024) as u64);
        }
        assert_ne!(a.entry(0, 1), a.entry(1, 1));
        // Smaller than its header: cut to the size.
        let tiny = Entries::new(16);
        let openraft::EntryPayload::Normal(Request::Set { value, .. }) =
            tiny.entry(12, 123_456_789_012).payload
        else {
            panic!()
        };
        assert_eq!(value.len(), 16);
    }

    async fn append<S: RaftLogStorage<TypeConfig>>(s: &mut S, e: Vec<Entry>) {
        let (tx, rx) = TypeConfig::oneshot();
        s.append(e, IOFlushed::signal(tx)).await.unwrap();
        rx.await.unwrap().unwrap();
    }

    /// What both of the benchmark's own stores must do: append, read, truncate, purge, vote.
    async fn keeps_a_log<S: RaftLogStorage<TypeConfig>>(mut s: S) {
        let ents = Entries::new(32);
        let st = s.get_log_state().await.unwrap();
        assert_eq!((st.last_log_id, st.last_purged_log_id), (None, None));
        append(&mut s, (1..=10).map(|i| ents.entry(0, i)).collect()).await;
        let mut r = s.get_log_reader().await;
        let got = r.try_get_log_entries(3..6).await.unwrap();
        assert_eq!(got, (3..6).map(|i| ents.entry(0, i)).collect::<Vec<_>>());
        assert_eq!(
            s.get_log_state().await.unwrap().last_log_id,
            Some(log_id(10))
        );
        s.truncate_after(Some(log_id(7))).await.unwrap();
        assert_eq!(
            s.get_log_state().await.unwrap().last_log_id,
            Some(log_id(7))
        );
        s.purge(log_id(4)).await.unwrap();
        let all = r.try_get_log_entries(..).await.unwrap();
        assert_eq!(all.iter().map(|e| e.index()).collect::<Vec<_>>(), [5, 6, 7]);
        s.purge(log_id(7)).await.unwrap();
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, Some(log_id(7)));
        assert_eq!(st.last_purged_log_id, Some(log_id(7)));
        assert!(r.try_get_log_entries(..).await.unwrap().is_empty());
        let v = Vote::new(3, 1);
        s.save_vote(&v).await.unwrap();
        assert_eq!(r.read_vote().await.unwrap(), Some(v));
    }

    #[test]
    fn the_ceiling_keeps_a_log() {
        block_on(keeps_a_log(MemLog::default()));
        block_on(async {
            let mut s = MemLog::default();
            s.save_committed(Some(log_id(6))).await.unwrap();
            assert_eq!(s.read_committed().await.unwrap(), Some(log_id(6)));
        });
    }

    #[cfg(feature = "rocksdb")]
    #[test]
    fn the_rocksdb_store_keeps_a_log_per_column_family() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let db = rocks::open(dir.path(), 2).unwrap();
        let flushes = Arc::new(AtomicU64::new(0));
        let other = rocks::RocksLog::new(db.clone(), 1, flushes.clone()).unwrap();
        block_on(async {
            let mut o = other.clone();
            append(&mut o, vec![Entries::new(32).entry(1, 1)]).await;
        });
        block_on(keeps_a_log(
            rocks::RocksLog::new(db.clone(), 0, flushes.clone()).unwrap(),
        ));
        // The other store kept its own log; one flush_wal(true) per append and per vote.
        block_on(async {
            let mut o = other.clone();
            let st = o.get_log_state().await.unwrap();
            assert_eq!(st.last_log_id, Some(log_id(1)));
            assert_eq!(st.last_purged_log_id, None);
        });
        assert_eq!(flushes.load(Ordering::Relaxed), 3);
        assert!(rocks::RocksLog::new(db, 2, flushes).is_err());
    }
}
