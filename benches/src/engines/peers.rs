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

#[cfg(feature = "fjall")]
mod fjall_peer {
    use std::path::Path;

    use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

    use crate::args::Workload;
    use crate::engine::{err, EResult, Engine, EngineKind, Mode, OpenOpts};

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
            let mut b = self
                .db
                .batch()
                .durability(self.strict.then_some(PersistMode::SyncData));
            for (k, v) in items {
                b.insert(&self.ks, *k, *v);
            }
            b.commit().map_err(|e| err("fjall batch commit", e))
        }
        fn get(&self, key: &[u8], out: &mut Vec<u8>) -> EResult<bool> {
            match self.ks.get(key).map_err(|e| err("fjall get", e))? {
                Some(v) => {
                    out.clear();
                    out.extend_from_slice(&v);
                    Ok(true)
                }
                None => Ok(false),
            }
        }
        fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> EResult<usize> {
            let mut n = 0;
            for g in self.ks.range(start..end).take(limit) {
                g.into_inner().map_err(|e| err("fjall range", e))?;
                n += 1;
            }
            Ok(n)
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

    use redb::{Database, Durability, ReadableDatabase, TableDefinition};

    use crate::args::Workload;
    use crate::engine::{err, EResult, Engine, EngineKind, Mode, OpenOpts};

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
            match t.get(key).map_err(|e| err("redb get", e))? {
                Some(v) => {
                    out.clear();
                    out.extend_from_slice(v.value());
                    Ok(true)
                }
                None => Ok(false),
            }
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
        fn close(self: Box<Self>) -> EResult<()> {
            // Make everything durable (Buffered commits are not until an Immediate one).
            self.commit(&[], Durability::Immediate)
        }
    }
}

#[cfg(feature = "sled")]
mod sled_peer {
    use std::path::Path;

    use crate::args::Workload;
    use crate::engine::{err, EResult, Engine, EngineKind, Mode, OpenOpts};

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
        fn supports(&self, _: Workload) -> bool {
            true
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
            match self.db.get(key).map_err(|e| err("sled get", e))? {
                Some(v) => {
                    out.clear();
                    out.extend_from_slice(&v);
                    Ok(true)
                }
                None => Ok(false),
            }
        }
        fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> EResult<usize> {
            let mut n = 0;
            for item in self.db.range(start..end).take(limit) {
                item.map_err(|e| err("sled range", e))?;
                n += 1;
            }
            Ok(n)
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

    use parking_lot::Mutex;
    use rusqlite::{params, Connection, OptionalExtension};

    use crate::args::Workload;
    use crate::engine::{err, EResult, Engine, EngineKind, Mode, OpenOpts};

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
            self.with_reader(|c| {
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

    use rocksdb::{Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

    use crate::args::Workload;
    use crate::engine::{err, EResult, Engine, EngineKind, Mode, OpenOpts};

    pub struct RocksKind;
    pub static ROCKSDB: RocksKind = RocksKind;

    /// Which RocksDB: rust-rocksdb 0.20 links the system library when built with
    /// `ROCKSDB_LIB_DIR` (Debian 12's librocksdb-dev is 7.8.3), else compiles its bundled 7.9.2.
    const ROCKSDB_VERSION: &str = if option_env!("ROCKSDB_LIB_DIR").is_some() {
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
            match self.db.get_pinned(key).map_err(|e| err("rocksdb get", e))? {
                Some(v) => {
                    out.clear();
                    out.extend_from_slice(&v);
                    Ok(true)
                }
                None => Ok(false),
            }
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
        fn close(self: Box<Self>) -> EResult<()> {
            self.db
                .flush_wal(true)
                .map_err(|e| err("rocksdb flush_wal", e))
        }
    }
}
