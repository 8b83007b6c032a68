//! Peers, each behind its cargo feature (`--features peers` builds them all). Each runs in its
//! strongest honest configuration for the mode, named by [`EngineKind::config`]; a mode a peer
//! has no honest configuration for is skipped with the reason.

use crate::engine::EngineKind;

/// The peers compiled into this binary, in table order.
#[allow(clippy::vec_init_then_push)] // each push is behind its own feature
pub fn peers() -> Vec<&'static dyn EngineKind> {
    #[allow(unused_mut)]
    let mut v: Vec<&'static dyn EngineKind> = Vec::new();
    #[cfg(feature = "fjall")]
    v.push(&fjall_peer::FJALL);
    #[cfg(feature = "redb")]
    v.push(&redb_peer::REDB);
    #[cfg(feature = "sled")]
    v.push(&sled_peer::SLED);
    #[cfg(feature = "sqlite")]
    v.push(&sqlite_peer::SQLITE);
    #[cfg(feature = "rocksdb")]
    v.push(&rocksdb_peer::ROCKSDB);
    v
}

/// The RocksDB the `rocksdb` feature links (the raft workload's configuration line names it).
#[cfg(feature = "rocksdb")]
pub const ROCKSDB_VERSION: &str = rocksdb_peer::ROCKSDB_VERSION;

#[cfg(feature = "fjall")]
mod fjall_peer {
    use std::path::Path;

    use std::ops::Bound;

    use fjall::{Database, Iter, Keyspace, KeyspaceCreateOptions, PersistMode, Readable, Snapshot};

    use crate::args::Workload;
    use crate::engine::{
        err, EResult, Engine, EngineKind, Mode, OpenOpts, ScanBounds, Settled, SnapCost, SnapView,
    };

    /// Feeds a fjall iterator to `f`, forward or reverse, until it returns false.
    fn visit(it: Iter, reverse: bool, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> EResult<u64> {
        crate::engine::feed(it, reverse, |g: fjall::Guard| {
            let (k, v) = g.into_inner().map_err(|e| err("fjall range", e))?;
            Ok(f(&k, &v))
        })
    }

    struct FjallSnap<'a> {
        snap: &'a Snapshot,
        ks: &'a Keyspace,
    }

    impl SnapView for FjallSnap<'_> {
        fn get(&self, key: &[u8], out: &mut Vec<u8>) -> EResult<bool> {
            Ok(crate::engine::copy_value(
                out,
                self.snap
                    .get(self.ks, key)
                    .map_err(|e| err("fjall snapshot get", e))?
                    .as_deref(),
            ))
        }
        fn scan_each(
            &self,
            lo: &[u8],
            hi: &[u8],
            f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> EResult<u64> {
            visit(self.snap.range(self.ks, lo..hi), false, f)
        }
    }

    pub struct FjallKind;
    pub static FJALL: FjallKind = FjallKind;

    impl EngineKind for FjallKind {
        fn name(&self) -> &'static str {
            "fjall"
        }
        fn config(&self, mode: Mode) -> Result<String, String> {
            match mode {
                Mode::InMemory => Err("fjall has no in-memory mode".into()),
                Mode::Buffered => Ok("fjall 3: journal written to the OS per commit \
                    (PersistMode::Buffer, fjall's default); no fsync until close"
                    .into()),
                Mode::Strict => Ok("fjall 3: WriteBatch with durability \
                    Some(PersistMode::SyncData) per commit (fdatasync under the journal lock)"
                    .into()),
            }
        }
        fn supports(&self, _: Workload) -> bool {
            true
        }
        fn can_settle(&self) -> bool {
            true
        }
        fn open(&self, dir: &Path, mode: Mode, _: &OpenOpts) -> EResult<Box<dyn Engine>> {
            let db = Database::builder(dir)
                .open()
                .map_err(|e| err("fjall open", e))?;
            let ks = db
                .keyspace("bench", KeyspaceCreateOptions::default)
                .map_err(|e| err("fjall keyspace", e))?;
            Ok(Box::new(Fjall {
                db,
                ks,
                strict: mode == Mode::Strict,
            }))
        }
    }

    pub struct Fjall {
        db: Database,
        ks: Keyspace,
        strict: bool,
    }

    impl Engine for Fjall {
        fn put(&self, key: &[u8], value: &[u8]) -> EResult<()> {
            if self.strict {
                self.put_batch(&[(key, value)])
            } else {
                self.ks
                    .insert(key, value)
                    .map_err(|e| err("fjall insert", e))
            }
        }
        fn put_batch(&self, items: &[(&[u8], &[u8])]) -> EResult<()> {
            // Buffered: the journal handed to the OS per commit, as `Keyspace::insert` and
            // `Database::batch` do by default (`None` would leave it in fjall's user-space
            // buffer, weaker than the configuration line says).
            let mut b = self.db.batch().durability(Some(if self.strict {
                PersistMode::SyncData
            } else {
                PersistMode::Buffer
            }));
            for (k, v) in items {
                b.insert(&self.ks, *k, *v);
            }
            b.commit().map_err(|e| err("fjall batch commit", e))
        }
        fn get(&self, key: &[u8], out: &mut Vec<u8>) -> EResult<bool> {
            Ok(crate::engine::copy_value(
                out,
                self.ks
                    .get(key)
                    .map_err(|e| err("fjall get", e))?
                    .as_deref(),
            ))
        }
        fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> EResult<usize> {
            let mut n = 0;
            for g in self.ks.range(start..end).take(limit) {
                g.into_inner().map_err(|e| err("fjall range", e))?;
                n += 1;
            }
            Ok(n)
        }
        fn scan_each(
            &self,
            (lo, hi): ScanBounds<'_>,
            reverse: bool,
            f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> EResult<u64> {
            let lo = lo.map_or(Bound::Unbounded, Bound::Included);
            let hi = hi.map_or(Bound::Unbounded, Bound::Excluded);
            visit(self.ks.range::<&[u8], _>((lo, hi)), reverse, f)
        }
        fn with_snapshot(
            &self,
            f: &mut dyn FnMut(&dyn SnapView) -> EResult<()>,
        ) -> EResult<SnapCost> {
            crate::engine::time_snapshot(
                || Ok(self.db.snapshot()),
                |snap| f(&FjallSnap { snap, ks: &self.ks }),
            )
        }
        fn settle(&self) -> EResult<Option<Settled>> {
            self.ks
                .rotate_memtable_and_wait()
                .map_err(|e| err("fjall flush", e))?;
            self.ks
                .major_compact()
                .map_err(|e| err("fjall major_compact", e))?;
            Ok(Some(Settled {
                what: "Keyspace::rotate_memtable_and_wait + major_compact".into(),
                bytes_written: None,
            }))
        }
        fn close(self: Box<Self>) -> EResult<()> {
            self.db
                .persist(PersistMode::SyncAll)
                .map_err(|e| err("fjall persist", e))
        }
    }
}

#[cfg(feature = "redb")]
mod redb_peer {
    use std::path::Path;

    use std::ops::Bound;

    use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, TableDefinition};

    use crate::args::Workload;
    use crate::engine::{
        err, EResult, Engine, EngineKind, Mode, OpenOpts, ScanBounds, SnapCost, SnapView,
    };

    /// Visits a redb range, forward or reverse, until `f` returns false.
    fn visit(
        t: &ReadOnlyTable<&'static [u8], &'static [u8]>,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        reverse: bool,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> EResult<u64> {
        let range = t
            .range::<&[u8]>((lo, hi))
            .map_err(|e| err("redb range", e))?;
        crate::engine::feed(range, reverse, |item: Result<_, redb::StorageError>| {
            let (k, v): (redb::AccessGuard<&[u8]>, redb::AccessGuard<&[u8]>) =
                item.map_err(|e| err("redb range", e))?;
            Ok(f(k.value(), v.value()))
        })
    }

    /// A read transaction: redb's snapshot.
    struct RedbSnap(ReadOnlyTable<&'static [u8], &'static [u8]>);

    impl SnapView for RedbSnap {
        fn get(&self, key: &[u8], out: &mut Vec<u8>) -> EResult<bool> {
            Ok(crate::engine::copy_value(
                out,
                self.0
                    .get(key)
                    .map_err(|e| err("redb get", e))?
                    .as_ref()
                    .map(|v| v.value()),
            ))
        }
        fn scan_each(
            &self,
            lo: &[u8],
            hi: &[u8],
            f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> EResult<u64> {
            visit(&self.0, Bound::Included(lo), Bound::Excluded(hi), false, f)
        }
    }

    const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");

    pub struct RedbKind;
    pub static REDB: RedbKind = RedbKind;

    impl EngineKind for RedbKind {
        fn name(&self) -> &'static str {
            "redb"
        }
        fn config(&self, mode: Mode) -> Result<String, String> {
            Ok(match mode {
                Mode::InMemory => "redb 4: InMemoryBackend, Durability::Immediate".into(),
                Mode::Buffered => "redb 4: Durability::None per commit (not persisted until \
                    a later Immediate commit: one at close)"
                    .into(),
                Mode::Strict => {
                    "redb 4: Durability::Immediate per commit (1PC+C: one fsync)".into()
                }
            })
        }
        fn supports(&self, _: Workload) -> bool {
            true
        }
        fn open(&self, dir: &Path, mode: Mode, _: &OpenOpts) -> EResult<Box<dyn Engine>> {
            let db = if mode == Mode::InMemory {
                Database::builder()
                    .create_with_backend(redb::backends::InMemoryBackend::new())
                    .map_err(|e| err("redb create", e))?
            } else {
                std::fs::create_dir_all(dir).map_err(|e| err("redb mkdir", e))?;
                Database::create(dir.join("bench.redb")).map_err(|e| err("redb create", e))?
            };
            let r = Redb {
                db,
                durability: if mode == Mode::Buffered {
                    Durability::None
                } else {
                    Durability::Immediate
                },
            };
            // Create the table so that reads of an empty database work.
            r.commit(&[], Durability::Immediate)?;
            Ok(Box::new(r))
        }
    }

    pub struct Redb {
        db: Database,
        durability: Durability,
    }

    impl Redb {
        fn commit(&self, items: &[(&[u8], &[u8])], d: Durability) -> EResult<()> {
            let mut tx = self.db.begin_write().map_err(|e| err("redb begin", e))?;
            tx.set_durability(d)
                .map_err(|e| err("redb set_durability", e))?;
            {
                let mut t = tx.open_table(TABLE).map_err(|e| err("redb table", e))?;
                for (k, v) in items {
                    t.insert(*k, *v).map_err(|e| err("redb insert", e))?;
                }
            }
            tx.commit().map_err(|e| err("redb commit", e))
        }
    }

    impl Engine for Redb {
        fn put(&self, key: &[u8], value: &[u8]) -> EResult<()> {
            self.commit(&[(key, value)], self.durability)
        }
        fn put_batch(&self, items: &[(&[u8], &[u8])]) -> EResult<()> {
            self.commit(items, self.durability)
        }
        fn get(&self, key: &[u8], out: &mut Vec<u8>) -> EResult<bool> {
            let tx = self
                .db
                .begin_read()
                .map_err(|e| err("redb begin_read", e))?;
            let t = tx.open_table(TABLE).map_err(|e| err("redb table", e))?;
            Ok(crate::engine::copy_value(
                out,
                t.get(key)
                    .map_err(|e| err("redb get", e))?
                    .as_ref()
                    .map(|v| v.value()),
            ))
        }
        fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> EResult<usize> {
            let tx = self
                .db
                .begin_read()
                .map_err(|e| err("redb begin_read", e))?;
            let t = tx.open_table(TABLE).map_err(|e| err("redb table", e))?;
            let mut n = 0;
            for item in t
                .range(start..end)
                .map_err(|e| err("redb range", e))?
                .take(limit)
            {
                item.map_err(|e| err("redb range", e))?;
                n += 1;
            }
            Ok(n)
        }
        fn scan_each(
            &self,
            (lo, hi): ScanBounds<'_>,
            reverse: bool,
            f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> EResult<u64> {
            let tx = self
                .db
                .begin_read()
                .map_err(|e| err("redb begin_read", e))?;
            let t = tx.open_table(TABLE).map_err(|e| err("redb table", e))?;
            let lo = lo.map_or(Bound::Unbounded, Bound::Included);
            let hi = hi.map_or(Bound::Unbounded, Bound::Excluded);
            visit(&t, lo, hi, reverse, f)
        }
        fn with_snapshot(
            &self,
            f: &mut dyn FnMut(&dyn SnapView) -> EResult<()>,
        ) -> EResult<SnapCost> {
            crate::engine::time_snapshot(
                || {
                    let tx = self
                        .db
                        .begin_read()
                        .map_err(|e| err("redb begin_read", e))?;
                    let table = tx.open_table(TABLE).map_err(|e| err("redb table", e))?;
                    // Dropped in this order: the table, then the transaction.
                    Ok((RedbSnap(table), tx))
                },
                |(snap, _tx)| f(snap),
            )
        }
        fn close(self: Box<Self>) -> EResult<()> {
            // Make everything durable (Buffered commits are not until an Immediate one).
            self.commit(&[], Durability::Immediate)
        }
    }
}

#[cfg(feature = "sled")]
mod sled_peer {
    use std::ops::Bound;
    use std::path::Path;

    use crate::args::Workload;
    use crate::engine::{err, EResult, Engine, EngineKind, Mode, OpenOpts, ScanBounds};

    pub struct SledKind;
    pub static SLED: SledKind = SledKind;

    impl EngineKind for SledKind {
        fn name(&self) -> &'static str {
            "sled"
        }
        fn config(&self, mode: Mode) -> Result<String, String> {
            match mode {
                Mode::InMemory => {
                    Err("sled has no in-memory mode (temporary still writes a file)".into())
                }
                Mode::Buffered => {
                    Ok("sled 0.34.7: flush_every_ms(Some(10)) (background flush)".into())
                }
                Mode::Strict => Ok("sled 0.34.7: insert/apply_batch then flush() per commit \
                    (flush is sync_file_range: no device cache flush)"
                    .into()),
            }
        }
        fn supports(&self, w: Workload) -> bool {
            // sled has no snapshots (its iterators are not consistent across keys).
            w != Workload::Snapshot
        }
        fn open(&self, dir: &Path, mode: Mode, _: &OpenOpts) -> EResult<Box<dyn Engine>> {
            let db = sled::Config::new()
                .path(dir)
                .flush_every_ms((mode == Mode::Buffered).then_some(10))
                .open()
                .map_err(|e| err("sled open", e))?;
            Ok(Box::new(Sled {
                db,
                strict: mode == Mode::Strict,
            }))
        }
    }

    pub struct Sled {
        db: sled::Db,
        strict: bool,
    }

    impl Engine for Sled {
        fn put(&self, key: &[u8], value: &[u8]) -> EResult<()> {
            self.db
                .insert(key, value)
                .map_err(|e| err("sled insert", e))?;
            if self.strict {
                self.db.flush().map_err(|e| err("sled flush", e))?;
            }
            Ok(())
        }
        fn put_batch(&self, items: &[(&[u8], &[u8])]) -> EResult<()> {
            let mut b = sled::Batch::default();
            for (k, v) in items {
                b.insert(*k, *v);
            }
            self.db
                .apply_batch(b)
                .map_err(|e| err("sled apply_batch", e))?;
            if self.strict {
                self.db.flush().map_err(|e| err("sled flush", e))?;
            }
            Ok(())
        }
        fn get(&self, key: &[u8], out: &mut Vec<u8>) -> EResult<bool> {
            Ok(crate::engine::copy_value(
                out,
                self.db.get(key).map_err(|e| err("sled get", e))?.as_deref(),
            ))
        }
        fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> EResult<usize> {
            let mut n = 0;
            for item in self.db.range(start..end).take(limit) {
                item.map_err(|e| err("sled range", e))?;
                n += 1;
            }
            Ok(n)
        }
        fn scan_each(
            &self,
            (lo, hi): ScanBounds<'_>,
            reverse: bool,
            f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> EResult<u64> {
            let lo = lo.map_or(Bound::Unbounded, Bound::Included);
            let hi = hi.map_or(Bound::Unbounded, Bound::Excluded);
            let it = self.db.range::<&[u8], _>((lo, hi));
            crate::engine::feed(
                it,
                reverse,
                |item: sled::Result<(sled::IVec, sled::IVec)>| {
                    let (k, v) = item.map_err(|e| err("sled range", e))?;
                    Ok(f(&k, &v))
                },
            )
        }
        fn close(self: Box<Self>) -> EResult<()> {
            self.db
                .flush()
                .map(|_| ())
                .map_err(|e| err("sled flush", e))
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite_peer {
    use std::path::Path;

    use std::time::Instant;

    use parking_lot::Mutex;
    use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

    use crate::args::Workload;
    use crate::engine::{
        err, EResult, Engine, EngineKind, Mode, OpenOpts, ScanBounds, Settled, SnapCost, SnapView,
    };

    /// Visits the rows with keys in `[lo, hi)` on `c`, in key order (descending when
    /// `reverse`), until `f` returns false.
    fn visit(
        c: &Connection,
        (lo, hi): ScanBounds<'_>,
        reverse: bool,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> EResult<u64> {
        let mut sql = String::from("SELECT k, v FROM kv");
        let mut args: Vec<&[u8]> = Vec::new();
        if let Some(l) = lo {
            args.push(l);
            sql.push_str(" WHERE k >= ?1");
        }
        if let Some(h) = hi {
            args.push(h);
            sql.push_str(if args.len() == 1 {
                " WHERE k < ?1"
            } else {
                " AND k < ?2"
            });
        }
        sql.push_str(if reverse {
            " ORDER BY k DESC"
        } else {
            " ORDER BY k"
        });
        let mut st = c
            .prepare_cached(&sql)
            .map_err(|e| err("sqlite prepare", e))?;
        let mut rows = st
            .query(params_from_iter(args))
            .map_err(|e| err("sqlite scan", e))?;
        let mut n = 0;
        while let Some(r) = rows.next().map_err(|e| err("sqlite scan", e))? {
            let k = r.get_ref(0).and_then(|v| v.as_blob().map_err(Into::into));
            let v = r.get_ref(1).and_then(|v| v.as_blob().map_err(Into::into));
            let (k, v) = k
                .and_then(|k| Ok((k, v?)))
                .map_err(|e| err("sqlite scan", e))?;
            n += 1;
            if !f(k, v) {
                break;
            }
        }
        Ok(n)
    }

    /// A read transaction on one connection: SQLite's snapshot (WAL mode).
    struct SqliteSnap<'a>(&'a Connection);

    impl SnapView for SqliteSnap<'_> {
        fn get(&self, key: &[u8], out: &mut Vec<u8>) -> EResult<bool> {
            get_on(self.0, key, out)
        }
        fn scan_each(
            &self,
            lo: &[u8],
            hi: &[u8],
            f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> EResult<u64> {
            visit(self.0, (Some(lo), Some(hi)), false, f)
        }
    }

    fn get_on(c: &Connection, key: &[u8], out: &mut Vec<u8>) -> EResult<bool> {
        let mut st = c
            .prepare_cached("SELECT v FROM kv WHERE k = ?1")
            .map_err(|e| err("sqlite prepare", e))?;
        let v: Option<Vec<u8>> = st
            .query_row(params![key], |r| r.get(0))
            .optional()
            .map_err(|e| err("sqlite get", e))?;
        Ok(match v {
            Some(v) => {
                *out = v;
                true
            }
            None => false,
        })
    }

    pub struct SqliteKind;
    pub static SQLITE: SqliteKind = SqliteKind;

    /// Reader connections (WAL mode lets them read while the writer writes).
    const READERS: usize = 4;

    impl EngineKind for SqliteKind {
        fn name(&self) -> &'static str {
            "sqlite"
        }
        fn config(&self, mode: Mode) -> Result<String, String> {
            Ok(match mode {
                Mode::InMemory => "SQLite (bundled): :memory:, one connection".into(),
                Mode::Buffered => "SQLite (bundled): WAL, synchronous=NORMAL (WAL synced only at \
                    checkpoints), WITHOUT ROWID table, one writer + 4 reader connections"
                    .into(),
                Mode::Strict => "SQLite (bundled): WAL, synchronous=FULL (WAL synced every \
                    commit), WITHOUT ROWID table, one writer + 4 reader connections"
                    .into(),
            })
        }
        fn supports(&self, _: Workload) -> bool {
            true
        }
        fn can_settle(&self) -> bool {
            true
        }
        fn open(&self, dir: &Path, mode: Mode, _: &OpenOpts) -> EResult<Box<dyn Engine>> {
            let e = |x| err("sqlite open", x);
            let open = |first: bool| -> EResult<Connection> {
                let c = if mode == Mode::InMemory {
                    Connection::open_in_memory().map_err(e)?
                } else {
                    std::fs::create_dir_all(dir).map_err(|x| err("sqlite mkdir", x))?;
                    Connection::open(dir.join("bench.sqlite")).map_err(e)?
                };
                if mode != Mode::InMemory {
                    c.pragma_update(None, "journal_mode", "WAL").map_err(e)?;
                    let sync = if mode == Mode::Strict {
                        "FULL"
                    } else {
                        "NORMAL"
                    };
                    c.pragma_update(None, "synchronous", sync).map_err(e)?;
                    c.busy_timeout(std::time::Duration::from_secs(60))
                        .map_err(e)?;
                }
                if first {
                    c.execute_batch(
                        "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID",
                    )
                    .map_err(e)?;
                }
                Ok(c)
            };
            let writer = open(true)?;
            let readers = if mode == Mode::InMemory {
                Vec::new()
            } else {
                (0..READERS)
                    .map(|_| open(false).map(Mutex::new))
                    .collect::<EResult<Vec<_>>>()?
            };
            Ok(Box::new(Sqlite {
                writer: Mutex::new(writer),
                readers,
            }))
        }
    }

    pub struct Sqlite {
        writer: Mutex<Connection>,
        readers: Vec<Mutex<Connection>>,
    }

    fn reader_slot(n: usize) -> usize {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::thread::current().id().hash(&mut h);
        h.finish() as usize % n
    }

    impl Sqlite {
        fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> EResult<T>) -> EResult<T> {
            if self.readers.is_empty() {
                return f(&self.writer.lock());
            }
            f(&self.readers[reader_slot(self.readers.len())].lock())
        }
    }

    impl Engine for Sqlite {
        fn put(&self, key: &[u8], value: &[u8]) -> EResult<()> {
            let c = self.writer.lock();
            let mut st = c
                .prepare_cached("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")
                .map_err(|e| err("sqlite prepare", e))?;
            st.execute(params![key, value])
                .map(|_| ())
                .map_err(|e| err("sqlite insert", e))
        }
        fn put_batch(&self, items: &[(&[u8], &[u8])]) -> EResult<()> {
            let mut c = self.writer.lock();
            let tx = c.transaction().map_err(|e| err("sqlite begin", e))?;
            {
                let mut st = tx
                    .prepare_cached("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")
                    .map_err(|e| err("sqlite prepare", e))?;
                for (k, v) in items {
                    st.execute(params![k, v])
                        .map_err(|e| err("sqlite insert", e))?;
                }
            }
            tx.commit().map_err(|e| err("sqlite commit", e))
        }
        fn get(&self, key: &[u8], out: &mut Vec<u8>) -> EResult<bool> {
            self.with_reader(|c| get_on(c, key, out))
        }
        fn scan_each(
            &self,
            bounds: ScanBounds<'_>,
            reverse: bool,
            f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> EResult<u64> {
            self.with_reader(|c| visit(c, bounds, reverse, f))
        }
        fn with_snapshot(
            &self,
            f: &mut dyn FnMut(&dyn SnapView) -> EResult<()>,
        ) -> EResult<SnapCost> {
            self.with_reader(|c| {
                // BEGIN DEFERRED takes the WAL read snapshot at the first read; one read here
                // makes "taking" the snapshot include that.
                let t0 = Instant::now();
                c.execute_batch("BEGIN DEFERRED")
                    .map_err(|e| err("sqlite begin", e))?;
                let mut probe = Vec::new();
                let begun = get_on(c, b"", &mut probe);
                let t1 = Instant::now();
                let res = begun.and_then(|_| f(&SqliteSnap(c)));
                let t2 = Instant::now();
                let end = c
                    .execute_batch("COMMIT")
                    .map_err(|e| err("sqlite commit", e));
                let t3 = Instant::now();
                res?;
                end?;
                Ok(SnapCost {
                    take_ns: (t1 - t0).as_nanos() as u64,
                    drop_ns: (t3 - t2).as_nanos() as u64,
                })
            })
        }
        fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> EResult<usize> {
            self.with_reader(|c| {
                let mut st = c
                    .prepare_cached(
                        "SELECT k, v FROM kv WHERE k >= ?1 AND k < ?2 ORDER BY k LIMIT ?3",
                    )
                    .map_err(|e| err("sqlite prepare", e))?;
                let mut rows = st
                    .query(params![start, end, limit as i64])
                    .map_err(|e| err("sqlite scan", e))?;
                let mut n = 0;
                while rows.next().map_err(|e| err("sqlite scan", e))?.is_some() {
                    n += 1;
                }
                Ok(n)
            })
        }
        fn settle(&self) -> EResult<Option<Settled>> {
            self.writer
                .lock()
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .map_err(|e| err("sqlite wal_checkpoint", e))?;
            Ok(Some(Settled {
                what: "PRAGMA wal_checkpoint(TRUNCATE)".into(),
                bytes_written: None,
            }))
        }
        fn close(self: Box<Self>) -> EResult<()> {
            let Sqlite { writer, readers } = *self;
            drop(readers);
            writer
                .into_inner()
                .close()
                .map_err(|(_, e)| err("sqlite close", e))
        }
    }
}

#[cfg(feature = "rocksdb")]
mod rocksdb_peer {
    use std::path::Path;

    use rocksdb::{
        DBIteratorWithThreadMode, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
    };

    use crate::args::Workload;
    use crate::engine::{
        err, EResult, Engine, EngineKind, Mode, OpenOpts, ScanBounds, Settled, SnapCost, SnapView,
    };

    /// Visits the entries in `[lo, hi)` of an iterator positioned at its first candidate
    /// (forward from `lo`, or backward from `hi`), until `f` returns false.
    fn visit(
        it: DBIteratorWithThreadMode<'_, DB>,
        (lo, hi): ScanBounds<'_>,
        reverse: bool,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> EResult<u64> {
        let mut n = 0;
        for item in it {
            let (k, v) = item.map_err(|e| err("rocksdb iterator", e))?;
            if reverse {
                if hi.is_some_and(|h| &*k >= h) {
                    continue; // SeekForPrev lands on `hi` itself when it exists
                }
                if lo.is_some_and(|l| &*k < l) {
                    break;
                }
            } else if hi.is_some_and(|h| &*k >= h) {
                break;
            }
            n += 1;
            if !f(&k, &v) {
                break;
            }
        }
        Ok(n)
    }

    fn mode<'a>((lo, hi): ScanBounds<'a>, reverse: bool) -> IteratorMode<'a> {
        match (reverse, lo, hi) {
            (false, Some(l), _) => IteratorMode::From(l, Direction::Forward),
            (false, None, _) => IteratorMode::Start,
            (true, _, Some(h)) => IteratorMode::From(h, Direction::Reverse),
            (true, _, None) => IteratorMode::End,
        }
    }

    struct RocksSnap<'a>(rocksdb::Snapshot<'a>);

    impl SnapView for RocksSnap<'_> {
        fn get(&self, key: &[u8], out: &mut Vec<u8>) -> EResult<bool> {
            Ok(crate::engine::copy_value(
                out,
                self.0
                    .get_pinned(key)
                    .map_err(|e| err("rocksdb snapshot get", e))?
                    .as_deref(),
            ))
        }
        fn scan_each(
            &self,
            lo: &[u8],
            hi: &[u8],
            f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> EResult<u64> {
            let b = (Some(lo), Some(hi));
            visit(self.0.iterator(mode(b, false)), b, false, f)
        }
    }

    pub struct RocksKind;
    pub static ROCKSDB: RocksKind = RocksKind;

    /// Which RocksDB: rust-rocksdb 0.20 links the system library when built with
    /// `ROCKSDB_LIB_DIR` (Debian 12's librocksdb-dev is 7.8.3), else compiles its bundled 7.9.2.
    pub const ROCKSDB_VERSION: &str = if option_env!("ROCKSDB_LIB_DIR").is_some() {
        "7.8 (system library from ROCKSDB_LIB_DIR, via rust-rocksdb 0.20)"
    } else {
        "7.9.2 (bundled with rust-rocksdb 0.20)"
    };

    impl EngineKind for RocksKind {
        fn name(&self) -> &'static str {
            "rocksdb"
        }
        fn config(&self, mode: Mode) -> Result<String, String> {
            match mode {
                Mode::InMemory => Err("RocksDB has no in-memory mode here (disableWAL still \
                    writes tables)"
                    .into()),
                Mode::Buffered => Ok(format!(
                    "RocksDB {ROCKSDB_VERSION}: WAL, sync=false (written to the OS per commit, \
                     RocksDB's default), group commit, no compression"
                )),
                Mode::Strict => Ok(format!(
                    "RocksDB {ROCKSDB_VERSION}: WAL, sync=true per commit (fdatasync), group \
                     commit, no compression"
                )),
            }
        }
        fn supports(&self, _: Workload) -> bool {
            true
        }
        fn can_settle(&self) -> bool {
            true
        }
        fn has_raft_log(&self) -> bool {
            true
        }
        fn open(&self, dir: &Path, mode: Mode, _: &OpenOpts) -> EResult<Box<dyn Engine>> {
            let mut o = Options::default();
            o.create_if_missing(true);
            o.set_compression_type(rocksdb::DBCompressionType::None);
            let db = DB::open(&o, dir).map_err(|e| err("rocksdb open", e))?;
            let mut wo = WriteOptions::default();
            wo.set_sync(mode == Mode::Strict);
            Ok(Box::new(Rocks { db, wo }))
        }
    }

    pub struct Rocks {
        db: DB,
        wo: WriteOptions,
    }

    impl Engine for Rocks {
        fn put(&self, key: &[u8], value: &[u8]) -> EResult<()> {
            self.db
                .put_opt(key, value, &self.wo)
                .map_err(|e| err("rocksdb put", e))
        }
        fn put_batch(&self, items: &[(&[u8], &[u8])]) -> EResult<()> {
            let mut b = WriteBatch::default();
            for (k, v) in items {
                b.put(k, v);
            }
            self.db
                .write_opt(b, &self.wo)
                .map_err(|e| err("rocksdb write", e))
        }
        fn get(&self, key: &[u8], out: &mut Vec<u8>) -> EResult<bool> {
            Ok(crate::engine::copy_value(
                out,
                self.db
                    .get_pinned(key)
                    .map_err(|e| err("rocksdb get", e))?
                    .as_deref(),
            ))
        }
        fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> EResult<usize> {
            let mut n = 0;
            for item in self
                .db
                .iterator(IteratorMode::From(start, Direction::Forward))
                .take(limit)
            {
                let (k, _) = item.map_err(|e| err("rocksdb iterator", e))?;
                if &*k >= end {
                    break;
                }
                n += 1;
            }
            Ok(n)
        }
        fn scan_each(
            &self,
            bounds: ScanBounds<'_>,
            reverse: bool,
            f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> EResult<u64> {
            visit(self.db.iterator(mode(bounds, reverse)), bounds, reverse, f)
        }
        fn with_snapshot(
            &self,
            f: &mut dyn FnMut(&dyn SnapView) -> EResult<()>,
        ) -> EResult<SnapCost> {
            crate::engine::time_snapshot(|| Ok(RocksSnap(self.db.snapshot())), |s| f(s))
        }
        fn settle(&self) -> EResult<Option<Settled>> {
            self.db.flush().map_err(|e| err("rocksdb flush", e))?;
            self.db.compact_range::<&[u8], &[u8]>(None, None);
            Ok(Some(Settled {
                what: "DB::flush + compact_range(all)".into(),
                bytes_written: None,
            }))
        }
        fn close(self: Box<Self>) -> EResult<()> {
            self.db
                .flush_wal(true)
                .map_err(|e| err("rocksdb flush_wal", e))
        }
    }
}
