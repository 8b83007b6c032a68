//! [`StateMachine`]: openraft's `RaftStateMachine` and `RaftSnapshotBuilder` for the key-value
//! [`Request`]s, on a ringlog database (modelled on openraft's `examples/sm-rocks`).
//!
//! Layout, under the state machine's namespace `P` (its key prefix framed by the prefix's length,
//! 2 bytes big-endian, as a log store's: docs/RAFT.md):
//!
//! | key | value |
//! |---|---|
//! | `P` `d` key | the key's value (its UTF-8 bytes) |
//! | `P` `a` | the last applied log id (postcard) |
//! | `P` `m` | the last membership, a `StoredMembership` (postcard) |
//! | `P` `s` `h` | the current snapshot's header: its meta, generation and size (postcard) |
//! | `P` `s` `c` generation (u64 BE) chunk (u32 BE) | a chunk of the current snapshot's data |
//! | `P` `i` | present while a snapshot is being installed |
//!
//! A snapshot's data is a postcard-encoded `Vec<(Vec<u8>, Vec<u8>)>`: the (key, value) pairs in
//! key order. It is stored in chunks so that its size is not bounded by ringlog's value size.
//!
//! Consistency: `apply` writes the entries' effects and the last applied log id in one ringlog
//! transaction (a batch too large for one transaction is split at entry boundaries, each part
//! carrying its own last applied id), so a crash leaves the state of some prefix of the applied
//! entries, never a half-applied one. It commits with the database's default durability: openraft
//! re-applies from the log what a crash lost. A built snapshot's header is committed `Strict`
//! (its chunks before it): durable before openraft may purge the log it replaces, whichever
//! database the log lives in. `install_snapshot` stores the
//! snapshot and an "installing" mark first, then replaces the data in transactions of at most
//! [`MAX_OPS_PER_TXN`] operations, then writes the last applied id and the membership and
//! removes the mark, `Strict`; [`StateMachine::new`] finishes an installation a crash
//! interrupted.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::io::Cursor;
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use openraft::alias::{EntryOf, LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{ApplyResponder, EntryResponder, RaftStateMachine};
use openraft::type_config::TypeConfigExt;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use parking_lot::Mutex;
use ringlog_db::{Db, Durability};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::kv::{Request, Response, TypeConfig};

/// Most operations one transaction of a snapshot installation (or of storing a snapshot)
/// carries; bigger ones are split.
pub const MAX_OPS_PER_TXN: usize = 4096;

/// Largest chunk a stored snapshot is cut into (smaller if the database's values must be).
const CHUNK_LEN: usize = 1 << 20;

/// Bytes one operation adds to a transaction beside its key and value (ringlog's record header
/// is smaller; the rest is margin).
const OP_OVERHEAD: usize = 64;

/// Bytes kept free in a transaction for the framing records.
const TXN_RESERVE: usize = 256;

/// The (key, value) pairs of a snapshot, in key order.
type SnapshotEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// The keys of one state machine.
#[derive(Clone, Debug)]
struct Keys {
    prefix: Vec<u8>,
}

impl Keys {
    fn with(&self, tag: &[u8], rest: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + tag.len() + rest.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(tag);
        k.extend_from_slice(rest);
        k
    }
    fn data(&self, key: &[u8]) -> Vec<u8> {
        self.with(b"d", key)
    }
    fn data_prefix(&self) -> Vec<u8> {
        self.with(b"d", &[])
    }
    fn applied(&self) -> Vec<u8> {
        self.with(b"a", &[])
    }
    fn membership(&self) -> Vec<u8> {
        self.with(b"m", &[])
    }
    fn installing(&self) -> Vec<u8> {
        self.with(b"i", &[])
    }
    fn snap_header(&self) -> Vec<u8> {
        self.with(b"sh", &[])
    }
    fn snap_chunk(&self, generation: u64, chunk: u32) -> Vec<u8> {
        let mut rest = [0u8; 12];
        rest[..8].copy_from_slice(&generation.to_be_bytes());
        rest[8..].copy_from_slice(&chunk.to_be_bytes());
        self.with(b"sc", &rest)
    }
    fn snap_chunk_prefix(&self) -> Vec<u8> {
        self.with(b"sc", &[])
    }
    /// The generation of a chunk key.
    fn generation_of(&self, key: &[u8]) -> Option<u64> {
        let rest = key
            .strip_prefix(self.prefix.as_slice())?
            .strip_prefix(b"sc")?;
        if rest.len() != 12 {
            return None;
        }
        Some(u64::from_be_bytes(rest[..8].try_into().ok()?))
    }
}

/// The stored header of the current snapshot.
#[derive(Serialize, Deserialize)]
struct Header {
    meta: SnapshotMetaOf<TypeConfig>,
    /// The generation its chunks are stored under.
    generation: u64,
    /// How many chunks.
    chunks: u32,
    /// The data's length in bytes.
    len: u64,
}

/// One buffered write.
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

impl Op {
    /// What it adds to a transaction, in bytes (an upper bound).
    fn cost(&self) -> usize {
        match self {
            Op::Put(k, v) => OP_OVERHEAD + k.len() + v.len(),
            Op::Delete(k) => OP_OVERHEAD + k.len(),
        }
    }
}

fn db_err(e: ringlog_db::Error) -> io::Error {
    io::Error::other(e)
}

fn utf8(key: &[u8], b: &[u8]) -> io::Result<String> {
    String::from_utf8(b.to_vec()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the value under key {key:?} is not UTF-8: {e}"),
        )
    })
}

/// Commits `ops` in one transaction (`durability`, else the database's). No operation: a
/// `Strict` commit still makes everything before durable.
fn commit(db: &Db, ops: &[Op], durability: Option<Durability>) -> io::Result<()> {
    if ops.is_empty() {
        if matches!(durability, Some(Durability::Strict)) {
            db.sync().map_err(db_err)?;
        }
        return Ok(());
    }
    let mut tx = db.begin();
    for op in ops {
        match op {
            Op::Put(k, v) => tx.put(k, v),
            Op::Delete(k) => tx.delete(k),
        }
        .map_err(db_err)?;
    }
    match durability {
        Some(d) => tx.commit_with(d),
        None => tx.commit(),
    }
    .map_err(db_err)?;
    Ok(())
}

/// `Strict`, or the database's own durability for a database without a log (which has none to
/// offer).
fn strict(db: &Db) -> Option<Durability> {
    match db.durability() {
        Durability::InMemory => None,
        _ => Some(Durability::Strict),
    }
}

/// Writes operations in transactions of at most [`MAX_OPS_PER_TXN`] operations and the
/// database's transaction size.
struct Batched<'a> {
    db: &'a Db,
    budget: usize,
    ops: Vec<Op>,
    bytes: usize,
}

impl<'a> Batched<'a> {
    fn new(db: &'a Db) -> Batched<'a> {
        Batched {
            db,
            budget: txn_budget(db),
            ops: Vec::new(),
            bytes: 0,
        }
    }
    fn push(&mut self, op: Op) -> io::Result<()> {
        let c = op.cost();
        if !self.ops.is_empty()
            && (self.ops.len() >= MAX_OPS_PER_TXN || self.bytes.saturating_add(c) > self.budget)
        {
            self.flush(None)?;
        }
        self.bytes = self.bytes.saturating_add(c);
        self.ops.push(op);
        Ok(())
    }
    fn flush(&mut self, durability: Option<Durability>) -> io::Result<()> {
        commit(self.db, &self.ops, durability)?;
        self.ops.clear();
        self.bytes = 0;
        Ok(())
    }
}

/// The bytes of operations one transaction of `db` can carry.
fn txn_budget(db: &Db) -> usize {
    db.max_value_len(0).saturating_sub(TXN_RESERVE)
}

struct Shared {
    db: Arc<Db>,
    keys: Keys,
    /// Serializes the writers of the current snapshot (a snapshot builder runs beside the
    /// state machine) and installations.
    snapshots: Mutex<()>,
}

/// A key-value state machine on a ringlog database: see the module documentation. Cloning
/// gives another handle on the same state machine (its snapshot builder is such a clone).
#[derive(Clone)]
pub struct StateMachine {
    s: Arc<Shared>,
}

impl fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMachine")
            .field("prefix", &self.s.keys.prefix)
            .finish_non_exhaustive()
    }
}

impl StateMachine {
    /// A state machine in `db` under `prefix` (the database may hold other data beside, e.g. the
    /// log store, under any other prefix: each prefix is its own namespace). A snapshot
    /// installation a crash interrupted is finished here, and the chunks of snapshots that are
    /// not the current one are removed.
    ///
    /// # Errors
    ///
    /// The database's, a stored value that does not decode, or a prefix longer than 65,535
    /// bytes (`InvalidInput`).
    pub fn new(db: Arc<Db>, prefix: &[u8]) -> io::Result<StateMachine> {
        let sm = StateMachine {
            s: Arc::new(Shared {
                db,
                keys: Keys {
                    prefix: crate::namespace(prefix)?,
                },
                snapshots: Mutex::new(()),
            }),
        };
        {
            let _g = sm.s.snapshots.lock();
            let header = sm.header()?;
            sm.remove_stale_chunks(header.as_ref().map(|h| h.generation))?;
            if sm
                .s
                .db
                .get(&sm.s.keys.installing())
                .map_err(db_err)?
                .is_some()
            {
                let Some(h) = header else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "an interrupted snapshot installation has no stored snapshot",
                    ));
                };
                log::info!(
                    "finishing the installation of snapshot {} a crash interrupted",
                    h.meta
                );
                let data = sm.read_chunks(&sm.s.db.snapshot(), &h)?;
                let entries: SnapshotEntries =
                    decode("snapshot data", &sm.s.keys.snap_header(), &data)?;
                sm.replace_data(&h.meta, entries)?;
            }
        }
        Ok(sm)
    }

    /// The database the state machine lives in.
    pub fn db(&self) -> &Arc<Db> {
        &self.s.db
    }

    /// The value of `key`, as applied so far.
    ///
    /// # Errors
    ///
    /// The database's, or a stored value that is not UTF-8.
    pub fn get(&self, key: &str) -> io::Result<Option<String>> {
        let k = self.s.keys.data(key.as_bytes());
        match self.s.db.get(&k).map_err(db_err)? {
            Some(v) => utf8(&k, &v).map(Some),
            None => Ok(None),
        }
    }

    fn get_decoded<T: DeserializeOwned>(
        &self,
        snap: &ringlog_db::Snapshot,
        what: &str,
        key: &[u8],
    ) -> io::Result<Option<T>> {
        match snap.get(key).map_err(db_err)? {
            Some(v) => decode(what, key, &v).map(Some),
            None => Ok(None),
        }
    }

    /// The last applied log id and membership, read at `snap`.
    #[allow(clippy::type_complexity)]
    fn applied_at(
        &self,
        snap: &ringlog_db::Snapshot,
    ) -> io::Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>)> {
        let keys = &self.s.keys;
        let applied = self.get_decoded(snap, "last applied log id", &keys.applied())?;
        let membership = self
            .get_decoded(snap, "last membership", &keys.membership())?
            .unwrap_or_default();
        Ok((applied, membership))
    }

    fn header(&self) -> io::Result<Option<Header>> {
        self.get_decoded(
            &self.s.db.snapshot(),
            "snapshot header",
            &self.s.keys.snap_header(),
        )
    }

    /// The data of the snapshot `h`, read at `snap`.
    fn read_chunks(&self, snap: &ringlog_db::Snapshot, h: &Header) -> io::Result<Vec<u8>> {
        let keys = &self.s.keys;
        // The stored length is only a hint (bytes from disk): never preallocate more than a
        // chunk's worth from it.
        let mut data = Vec::with_capacity(usize::try_from(h.len).unwrap_or(0).min(CHUNK_LEN));
        for i in 0..h.chunks {
            let k = keys.snap_chunk(h.generation, i);
            match snap.get(&k).map_err(db_err)? {
                Some(v) => data.extend_from_slice(&v),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("snapshot chunk {k:?} is missing"),
                    ))
                }
            }
        }
        if data.len() as u64 != h.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the stored snapshot has {} bytes, its header says {}",
                    data.len(),
                    h.len
                ),
            ));
        }
        Ok(data)
    }

    /// Deletes the snapshot chunks not of `keep`.
    fn remove_stale_chunks(&self, keep: Option<u64>) -> io::Result<()> {
        let keys = &self.s.keys;
        let mut stale = Vec::new();
        for item in self
            .s
            .db
            .prefix(&keys.snap_chunk_prefix())
            .map_err(db_err)?
        {
            let (k, _) = item.map_err(db_err)?;
            if keep.is_none() || keys.generation_of(&k) != keep {
                stale.push(k.to_vec());
            }
        }
        let mut w = Batched::new(&self.s.db);
        for k in stale {
            w.push(Op::Delete(k))?;
        }
        w.flush(None)
    }

    /// Stores `data` as the current snapshot, with the header in the last transaction together
    /// with `also` (the installation mark). Called with `snapshots` locked.
    fn store_snapshot(
        &self,
        meta: &SnapshotMetaOf<TypeConfig>,
        data: &[u8],
        also: Vec<Op>,
    ) -> io::Result<()> {
        let keys = &self.s.keys;
        let db = &self.s.db;
        // A generation no chunk has: above the header's and every chunk's (one a failed store
        // may have left).
        let mut generation = self.header()?.map_or(0, |h| h.generation);
        if let Some(item) = db
            .prefix(&keys.snap_chunk_prefix())
            .map_err(db_err)?
            .next_back()
        {
            let (k, _) = item.map_err(db_err)?;
            generation = generation.max(keys.generation_of(&k).unwrap_or(0));
        }
        let generation = generation + 1;
        let chunk_len = CHUNK_LEN
            .min(db.max_value_len(keys.snap_chunk(0, 0).len()))
            .max(1);
        let mut w = Batched::new(db);
        let mut chunks = 0u32;
        for c in data.chunks(chunk_len) {
            w.push(Op::Put(keys.snap_chunk(generation, chunks), c.to_vec()))?;
            chunks = chunks.checked_add(1).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "the snapshot is too large")
            })?;
        }
        w.flush(None)?;
        let header = Header {
            meta: meta.clone(),
            generation,
            chunks,
            len: data.len() as u64,
        };
        let mut last = vec![Op::Put(keys.snap_header(), encode(&header)?)];
        last.extend(also);
        // Durable before openraft may purge the log the snapshot replaces: in the same database
        // the purge's Strict commit would cover it, but the state machine may live in another.
        commit(db, &last, strict(db))?;
        self.remove_stale_chunks(Some(generation))
    }

    /// Replaces every data key with `entries`, then records `meta`'s last applied log id and
    /// membership and removes the installation mark, `Strict`.
    fn replace_data(
        &self,
        meta: &SnapshotMetaOf<TypeConfig>,
        entries: SnapshotEntries,
    ) -> io::Result<()> {
        let keys = &self.s.keys;
        let db = &self.s.db;
        let dp = keys.data_prefix();
        let mut want: HashMap<Vec<u8>, Vec<u8>> = entries.into_iter().collect();
        let mut stale = Vec::new();
        for item in db.prefix(&dp).map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let user_key = &k[dp.len()..];
            match want.get(user_key) {
                // Already so: nothing to write.
                Some(w) if w.as_slice() == &*v => {
                    want.remove(user_key);
                }
                Some(_) => {}
                None => stale.push(k.to_vec()),
            }
        }
        let mut w = Batched::new(db);
        for k in stale {
            w.push(Op::Delete(k))?;
        }
        let mut puts: Vec<(Vec<u8>, Vec<u8>)> = want.into_iter().collect();
        puts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in puts {
            w.push(Op::Put(keys.data(&k), v))?;
        }
        w.flush(None)?;
        let applied = match &meta.last_log_id {
            Some(l) => Op::Put(keys.applied(), encode(l)?),
            None => Op::Delete(keys.applied()),
        };
        let last = [
            applied,
            Op::Put(keys.membership(), encode(&meta.last_membership)?),
            Op::Delete(keys.installing()),
        ];
        commit(db, &last, strict(db))
    }

    /// Builds a snapshot of the state at one LSN and stores it as the current one (unless a
    /// newer one is stored already).
    fn build(&self) -> io::Result<SnapshotOf<TypeConfig, Cursor<Vec<u8>>>> {
        let keys = &self.s.keys;
        let snap = self.s.db.snapshot();
        let (last_log_id, last_membership) = self.applied_at(&snap)?;
        let dp = keys.data_prefix();
        let mut entries: SnapshotEntries = Vec::new();
        for item in snap.prefix(&dp).map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            entries.push((k[dp.len()..].to_vec(), v.to_vec()));
        }
        drop(snap);
        let data = encode(&entries)?;
        let meta = SnapshotMetaOf::<TypeConfig> {
            last_log_id,
            last_membership,
        };
        {
            let _g = self.s.snapshots.lock();
            let newer = self
                .header()?
                .is_some_and(|h| h.meta.last_log_id >= meta.last_log_id);
            if !newer {
                self.store_snapshot(&meta, &data, Vec::new())?;
            }
        }
        Ok(SnapshotOf::<TypeConfig, Cursor<Vec<u8>>> {
            meta,
            snapshot: Cursor::new(data),
        })
    }

    fn install(&self, meta: &SnapshotMetaOf<TypeConfig>, data: &[u8]) -> io::Result<()> {
        // Refuse undecodable data before touching anything.
        let entries: SnapshotEntries = postcard::from_bytes(data).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the snapshot's data does not decode: {e}"),
            )
        })?;
        let _g = self.s.snapshots.lock();
        self.store_snapshot(
            meta,
            data,
            vec![Op::Put(self.s.keys.installing(), Vec::new())],
        )?;
        self.replace_data(meta, entries)
    }

    fn current(&self) -> io::Result<Option<SnapshotOf<TypeConfig, Cursor<Vec<u8>>>>> {
        let snap = self.s.db.snapshot();
        let Some(h) =
            self.get_decoded::<Header>(&snap, "snapshot header", &self.s.keys.snap_header())?
        else {
            return Ok(None);
        };
        let data = self.read_chunks(&snap, &h)?;
        Ok(Some(SnapshotOf::<TypeConfig, Cursor<Vec<u8>>> {
            meta: h.meta,
            snapshot: Cursor::new(data),
        }))
    }
}

/// The entries of one `apply` call not committed yet; `R` answers one.
struct Pending<R> {
    ops: Vec<Op>,
    bytes: usize,
    last_applied: Option<LogIdOf<TypeConfig>>,
    /// The membership to store, if an entry changed it.
    membership: Option<Vec<u8>>,
    responses: Vec<(R, Response)>,
}

impl<R> Pending<R> {
    fn new() -> Pending<R> {
        Pending {
            ops: Vec::new(),
            bytes: 0,
            last_applied: None,
            membership: None,
            responses: Vec::new(),
        }
    }

    /// Bytes the last applied id and the membership add (`membership`: the length of the one
    /// the next entry brings, if any).
    fn meta_cost(&self, keys: &Keys, membership: Option<usize>) -> usize {
        let m = membership
            .or(self.membership.as_ref().map(Vec::len))
            .map_or(0, |l| OP_OVERHEAD + keys.membership().len() + l);
        OP_OVERHEAD + keys.applied().len() + 64 + m
    }

    /// Commits the pending entries with the last applied id (and the membership), then answers
    /// them.
    fn commit(
        &mut self,
        db: &Db,
        keys: &Keys,
        send: &mut impl FnMut(R, Response),
    ) -> io::Result<()> {
        let Some(applied) = &self.last_applied else {
            return Ok(());
        };
        self.ops.push(Op::Put(keys.applied(), encode(applied)?));
        if let Some(m) = self.membership.take() {
            self.ops.push(Op::Put(keys.membership(), m));
        }
        commit(db, &self.ops, None)?;
        self.ops.clear();
        self.bytes = 0;
        self.last_applied = None;
        for (r, response) in self.responses.drain(..) {
            send(r, response);
        }
        Ok(())
    }
}

impl StateMachine {
    /// `apply`, with `send` answering each entry that has an `R` once it is committed.
    async fn apply_entries<S, R>(
        &self,
        mut entries: S,
        mut send: impl FnMut(R, Response),
    ) -> io::Result<()>
    where
        S: Stream<Item = io::Result<(EntryOf<TypeConfig>, Option<R>)>> + Unpin,
    {
        let db = &*self.s.db;
        let keys = &self.s.keys;
        let budget = txn_budget(db);
        let mut p = Pending::new();
        // The values as this call leaves them, for the responses.
        let mut values: HashMap<String, Option<String>> = HashMap::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            let mut membership = None;
            let (op, response) = match entry.payload {
                EntryPayload::Blank => (None, Response::default()),
                EntryPayload::Normal(req) => {
                    let (key, value) = match req {
                        Request::Set { key, value } => (key, Some(value)),
                        Request::Delete { key } => (key, None),
                    };
                    let k = keys.data(key.as_bytes());
                    let previous = match values.get(&key) {
                        Some(v) => v.clone(),
                        None => match db.get(&k).map_err(db_err)? {
                            Some(v) => Some(utf8(&k, &v)?),
                            None => None,
                        },
                    };
                    let op = match &value {
                        Some(v) => Op::Put(k, v.as_bytes().to_vec()),
                        None => Op::Delete(k),
                    };
                    values.insert(key, value);
                    (Some(op), Response { previous })
                }
                EntryPayload::Membership(m) => {
                    let stored = StoredMembershipOf::<TypeConfig>::new(Some(log_id), m);
                    membership = Some(encode(&stored)?);
                    (None, Response::default())
                }
            };
            let cost = op.as_ref().map_or(0, Op::cost);
            let meta = p.meta_cost(keys, membership.as_ref().map(Vec::len));
            if !p.ops.is_empty() && p.bytes.saturating_add(cost).saturating_add(meta) > budget {
                // Too much for one transaction: commit the entries before this one.
                p.commit(db, keys, &mut send)?;
            }
            if let Some(op) = op {
                p.bytes = p.bytes.saturating_add(cost);
                p.ops.push(op);
            }
            if membership.is_some() {
                p.membership = membership;
            }
            p.last_applied = Some(log_id);
            if let Some(r) = responder {
                p.responses.push((r, response));
            }
        }
        p.commit(db, keys, &mut send)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(
        &mut self,
    ) -> Result<SnapshotOf<TypeConfig, Cursor<Vec<u8>>>, io::Error> {
        let this = self.clone();
        TypeConfig::spawn_blocking(move || this.build()).await?
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        self.applied_at(&self.s.db.snapshot())
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        self.apply_entries(entries, |r: ApplyResponder<TypeConfig>, response| {
            r.send(response)
        })
        .await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let this = self.clone();
        let meta = meta.clone();
        let data = snapshot.into_inner();
        TypeConfig::spawn_blocking(move || this.install(&meta, &data)).await?
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, Self::SnapshotData>>, io::Error> {
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use futures::stream;
    use openraft::Membership;
    use ringlog_db::Options;
    use tempfile::TempDir;

    use super::*;

    fn lid(index: u64) -> LogIdOf<TypeConfig> {
        openraft::testing::log_id::<TypeConfig>(1, 1, index)
    }

    fn set(index: u64, key: &str, value: &str) -> EntryOf<TypeConfig> {
        EntryOf::<TypeConfig>::new_normal(
            lid(index),
            Request::Set {
                key: key.into(),
                value: value.into(),
            },
        )
    }

    fn del(index: u64, key: &str) -> EntryOf<TypeConfig> {
        EntryOf::<TypeConfig>::new_normal(lid(index), Request::Delete { key: key.into() })
    }

    fn membership(index: u64, nodes: &[u64]) -> EntryOf<TypeConfig> {
        let set: BTreeSet<u64> = nodes.iter().copied().collect();
        EntryOf::<TypeConfig>::new_membership(
            lid(index),
            Membership::new_with_defaults(vec![set], []),
        )
    }

    /// Applies `entries`, each with a responder, and returns the responses in order.
    async fn apply(sm: &StateMachine, entries: Vec<EntryOf<TypeConfig>>) -> Vec<Response> {
        let items: Vec<io::Result<(EntryOf<TypeConfig>, Option<usize>)>> = entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| Ok((e, Some(i))))
            .collect();
        let mut got = Vec::new();
        sm.apply_entries(stream::iter(items), |i, r| got.push((i, r)))
            .await
            .unwrap();
        assert!(
            got.iter().enumerate().all(|(n, (i, _))| n == *i),
            "in order"
        );
        got.into_iter().map(|(_, r)| r).collect()
    }

    fn open(dir: &TempDir, segment_size: u64) -> Arc<Db> {
        let opts = Options::default().segment_size(segment_size);
        Arc::new(Db::open(dir.path(), opts).unwrap())
    }

    fn prev(v: Option<&str>) -> Response {
        Response {
            previous: v.map(String::from),
        }
    }

    #[test]
    fn apply_answers_with_the_previous_value_within_and_across_batches() {
        TypeConfig::run(async {
            let dir = TempDir::new().unwrap();
            let mut sm = StateMachine::new(open(&dir, 64 << 20), b"sm/").unwrap();
            let got = apply(
                &sm,
                vec![
                    set(1, "a", "1"),
                    set(2, "a", "2"),
                    del(3, "a"),
                    set(4, "b", "x"),
                    membership(5, &[1, 2]),
                ],
            )
            .await;
            assert_eq!(
                got,
                [
                    prev(None),
                    prev(Some("1")),
                    prev(Some("2")),
                    prev(None),
                    prev(None)
                ]
            );
            assert_eq!(sm.get("a").unwrap(), None);
            assert_eq!(sm.get("b").unwrap().as_deref(), Some("x"));
            let got = apply(&sm, vec![set(6, "b", "y"), del(7, "zz")]).await;
            assert_eq!(got, [prev(Some("x")), prev(None)]);
            let (applied, m) = sm.applied_state().await.unwrap();
            assert_eq!(applied, Some(lid(7)));
            assert_eq!(m.log_id(), &Some(lid(5)));
        });
    }

    #[test]
    fn a_batch_too_large_for_one_transaction_is_split_at_entries() {
        TypeConfig::run(async {
            let dir = TempDir::new().unwrap();
            // 64 KiB segments: a transaction carries less than 64 KiB.
            let db = open(&dir, 64 << 10);
            let mut sm = StateMachine::new(db.clone(), b"sm/").unwrap();
            let big = "v".repeat(10_000);
            let entries: Vec<_> = (1..=40).map(|i| set(i, &format!("k{i}"), &big)).collect();
            let lsn0 = db.last_lsn();
            let got = apply(&sm, entries).await;
            assert_eq!(got.len(), 40);
            assert!(db.last_lsn() - lsn0 > 1, "more than one transaction");
            for i in 1..=40 {
                assert_eq!(sm.get(&format!("k{i}")).unwrap().as_deref(), Some(&*big));
            }
            assert_eq!(sm.applied_state().await.unwrap().0, Some(lid(40)));
        });
    }

    #[test]
    fn snapshots_build_store_in_chunks_and_install_elsewhere() {
        TypeConfig::run(async {
            let (d1, d2) = (TempDir::new().unwrap(), TempDir::new().unwrap());
            let mut leader = StateMachine::new(open(&d1, 64 << 10), b"sm/").unwrap();
            let db2 = open(&d2, 64 << 10);
            let mut follower = StateMachine::new(db2.clone(), b"f/").unwrap();
            let big = "w".repeat(20_000);
            let mut entries = vec![membership(1, &[1, 2, 3])];
            entries.extend((2..=31).map(|i| set(i, &format!("k{i:02}"), &big)));
            apply(&leader, entries).await;
            apply(
                &follower,
                vec![
                    set(1, "stale", "1"),
                    set(2, "k02", "old"),
                    set(3, "k03", &big),
                ],
            )
            .await;

            let built = leader
                .get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap();
            assert_eq!(built.meta.last_log_id, Some(lid(31)));
            let current = leader.get_current_snapshot().await.unwrap().unwrap();
            assert_eq!(current.meta, built.meta);
            assert_eq!(current.snapshot.get_ref(), built.snapshot.get_ref());
            assert!(
                leader.header().unwrap().unwrap().chunks > 1,
                "stored in chunks"
            );

            // A second build at the same position keeps the stored one; one chunk generation.
            leader
                .get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap();
            let gens: BTreeSet<u64> = leader
                .s
                .db
                .prefix(&leader.s.keys.snap_chunk_prefix())
                .unwrap()
                .map(|r| leader.s.keys.generation_of(&r.unwrap().0).unwrap())
                .collect();
            assert_eq!(gens.len(), 1);

            follower
                .install_snapshot(&current.meta, current.snapshot)
                .await
                .unwrap();
            assert_eq!(follower.get("stale").unwrap(), None);
            for i in 2..=31 {
                assert_eq!(
                    follower.get(&format!("k{i:02}")).unwrap().as_deref(),
                    Some(&*big)
                );
            }
            assert_eq!(
                follower.applied_state().await.unwrap(),
                (built.meta.last_log_id, built.meta.last_membership.clone())
            );
            let f_cur = follower.get_current_snapshot().await.unwrap().unwrap();
            assert_eq!(f_cur.meta, built.meta);
            assert_eq!(f_cur.snapshot.get_ref(), built.snapshot.get_ref());
            assert!(db2.get(&follower.s.keys.installing()).unwrap().is_none());

            // Reopened: the same state and snapshot.
            drop(follower);
            let mut again = StateMachine::new(db2, b"f/").unwrap();
            assert_eq!(again.applied_state().await.unwrap().0, Some(lid(31)));
            let cur = again.get_current_snapshot().await.unwrap().unwrap();
            assert_eq!(cur.snapshot.get_ref(), built.snapshot.get_ref());
        });
    }

    #[test]
    fn an_interrupted_installation_is_finished_at_open() {
        TypeConfig::run(async {
            let dir = TempDir::new().unwrap();
            let db = open(&dir, 64 << 20);
            let sm = StateMachine::new(db.clone(), b"sm/").unwrap();
            apply(&sm, vec![set(1, "old", "1"), set(2, "keep", "1")]).await;
            let entries: SnapshotEntries = vec![
                (b"keep".to_vec(), b"2".to_vec()),
                (b"new".to_vec(), b"3".to_vec()),
            ];
            let meta = SnapshotMetaOf::<TypeConfig> {
                last_log_id: Some(lid(9)),
                last_membership: Default::default(),
            };
            // As a crash right after the snapshot and the mark were stored would leave it.
            sm.store_snapshot(
                &meta,
                &encode(&entries).unwrap(),
                vec![Op::Put(sm.s.keys.installing(), Vec::new())],
            )
            .unwrap();
            drop(sm);
            let mut sm = StateMachine::new(db.clone(), b"sm/").unwrap();
            assert_eq!(sm.get("old").unwrap(), None);
            assert_eq!(sm.get("keep").unwrap().as_deref(), Some("2"));
            assert_eq!(sm.get("new").unwrap().as_deref(), Some("3"));
            assert_eq!(sm.applied_state().await.unwrap().0, Some(lid(9)));
            assert!(db.get(&sm.s.keys.installing()).unwrap().is_none());
        });
    }

    #[test]
    fn undecodable_snapshot_data_is_refused_untouched() {
        TypeConfig::run(async {
            let mut sm = StateMachine::new(Arc::new(Db::in_memory()), b"sm/").unwrap();
            apply(&sm, vec![set(1, "a", "1")]).await;
            let meta = SnapshotMetaOf::<TypeConfig> {
                last_log_id: Some(lid(5)),
                last_membership: Default::default(),
            };
            let e = sm
                .install_snapshot(&meta, Cursor::new(vec![0xff; 3]))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert_eq!(sm.get("a").unwrap().as_deref(), Some("1"));
            assert!(sm.get_current_snapshot().await.unwrap().is_none());
            // An in-memory database works too (no Strict to ask for).
            let snap = sm
                .get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap();
            let mut other = StateMachine::new(Arc::new(Db::in_memory()), b"x/").unwrap();
            other
                .install_snapshot(&snap.meta, snap.snapshot)
                .await
                .unwrap();
            assert_eq!(other.get("a").unwrap().as_deref(), Some("1"));
        });
    }

    #[test]
    fn stored_garbage_is_an_error_not_a_panic() {
        TypeConfig::run(async {
            let db = Arc::new(Db::in_memory());
            let mut sm = StateMachine::new(db.clone(), b"sm/").unwrap();
            db.put(&sm.s.keys.applied(), &[0xff, 0xff, 0xff]).unwrap();
            let e = sm.applied_state().await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            db.put(&sm.s.keys.data(b"k"), &[0xff]).unwrap();
            assert_eq!(sm.get("k").unwrap_err().kind(), io::ErrorKind::InvalidData);
            db.put(&sm.s.keys.snap_header(), &[1, 2]).unwrap();
            assert!(StateMachine::new(db, b"sm/").is_err());
        });
    }

    #[test]
    fn chunk_keys_parse_back_and_stay_apart() {
        let k = Keys {
            prefix: b"sm/".to_vec(),
        };
        let c = k.snap_chunk(7, 3);
        assert!(c.starts_with(&k.snap_chunk_prefix()));
        assert_eq!(k.generation_of(&c), Some(7));
        assert_eq!(k.generation_of(&k.snap_header()), None);
        assert!(!k.snap_header().starts_with(&k.snap_chunk_prefix()));
        assert!(!k.applied().starts_with(&k.data_prefix()));
        assert!(!k.membership().starts_with(&k.data_prefix()));
        assert!(!k.installing().starts_with(&k.data_prefix()));
        assert!(k.data(b"x").starts_with(&k.data_prefix()));
    }
}
