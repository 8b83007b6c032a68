//! [`LogStore`]: openraft's `RaftLogStorage` and `RaftLogReader` on a ringlog database.
//!
//! Layout, under the store's namespace `P` — its key prefix framed by the prefix's length (2
//! bytes, big-endian), so that no other store's or state machine's keys fall under it, whatever
//! their prefixes (keys sort in log-index order):
//!
//! | key | value |
//! |---|---|
//! | `P` `l` index (u64 big-endian) | the entry (postcard) |
//! | `P` `v` | the vote (postcard) |
//! | `P` `p` | the last purged log id (postcard) |
//! | `P` `c` | the last committed log id, as openraft reports it (postcard) |
//!
//! Durability and ordering (docs/RAFT.md): every write is a ringlog transaction, so every write
//! — appends, votes, truncations, purges — is ordered by LSN in one log, and what survives a
//! crash is a prefix of that order. `append` commits without waiting (the entries are readable
//! when it returns) and hands the callback to the store's flusher thread, which waits until the
//! database's durable LSN covers the append — one group-committed fdatasync for every append,
//! vote and other commit waiting at that moment — and only then fires it. `save_vote`,
//! `truncate_after` and `purge` commit `Strict`: durable before they return, and with them
//! everything committed before. An I/O error poisons the store: every later call fails. On an
//! in-memory database (no log, nothing to make durable) every write commits in memory and the
//! append's callback fires when `append` returns.

use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use openraft::alias::{LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, RaftTypeConfig};
use parking_lot::Mutex;
use ringlog_db::{Db, Durability, Lsn};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{decode, encode};

/// Most operations one transaction of a truncation or purge carries; bigger ones are split
/// (docs/RAFT.md: a split truncation deletes from the top, a split purge from the bottom, so the
/// log never has a hole).
pub const MAX_OPS_PER_TXN: usize = 4096;

/// The longest key prefix a log store takes: an entry's key — the prefix framed by its length
/// (2 bytes), a tag byte and the index (8 bytes) — stays within [`ringlog_db::MAX_KEY_LEN`].
pub const MAX_PREFIX_LEN: usize = ringlog_db::MAX_KEY_LEN - 11;

/// Bytes an entry leaves below the database's largest value, for the state machine's own
/// writes beside the entry's effects in one transaction.
pub const ENTRY_HEADROOM: usize = 1024;

/// The append commits' durability: visible at once, made durable by the flusher's wait (the
/// interval only bounds how long an append nobody waits for can stay volatile).
const APPEND: Durability = Durability::Buffered {
    interval: std::time::Duration::from_millis(5),
    max_pending: 1 << 16,
};

/// The keys of one store.
#[derive(Clone, Debug)]
struct Keys {
    prefix: Vec<u8>,
}

impl Keys {
    fn with(&self, tag: u8, rest: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + 1 + rest.len());
        k.extend_from_slice(&self.prefix);
        k.push(tag);
        k.extend_from_slice(rest);
        k
    }
    fn entry(&self, index: u64) -> Vec<u8> {
        self.with(b'l', &index.to_be_bytes())
    }
    fn vote(&self) -> Vec<u8> {
        self.with(b'v', &[])
    }
    fn purged(&self) -> Vec<u8> {
        self.with(b'p', &[])
    }
    fn committed(&self) -> Vec<u8> {
        self.with(b'c', &[])
    }
    /// The index of an entry key.
    fn index_of(&self, key: &[u8]) -> Option<u64> {
        let rest = key
            .strip_prefix(self.prefix.as_slice())?
            .strip_prefix(b"l")?;
        Some(u64::from_be_bytes(rest.try_into().ok()?))
    }
    /// Entry keys for the indexes of `range`.
    fn entries<RB: RangeBounds<u64>>(&self, range: &RB) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        let lo = match range.start_bound() {
            Bound::Included(&i) => Bound::Included(self.entry(i)),
            Bound::Excluded(&i) => Bound::Excluded(self.entry(i)),
            Bound::Unbounded => Bound::Included(self.with(b'l', &[])),
        };
        let hi = match range.end_bound() {
            Bound::Included(&i) => Bound::Included(self.entry(i)),
            Bound::Excluded(&i) => Bound::Excluded(self.entry(i)),
            Bound::Unbounded => Bound::Excluded(self.with(b'l' + 1, &[])),
        };
        (lo, hi)
    }
}

/// A callback waiting for an LSN to be durable.
type Waiter = (Lsn, Box<dyn FnOnce(Result<(), io::Error>) + Send>);

struct Shared {
    db: Arc<Db>,
    keys: Keys,
    /// The database has a log: `false` for an in-memory one, whose commits are all in memory.
    logged: bool,
    /// The first I/O error: every later call fails with it.
    poisoned: Mutex<Option<String>>,
    /// To the flusher thread (taken at drop, which ends the thread).
    flusher: Mutex<Option<Sender<Waiter>>>,
    /// Serializes the writes (openraft issues them one at a time; this makes it so).
    writes: Mutex<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.flusher.lock().take();
    }
}

/// openraft's log storage on a ringlog database: see the module documentation. Cloning gives
/// another handle on the same store (its log reader is such a clone).
pub struct LogStore<C> {
    s: Arc<Shared>,
    _c: PhantomData<fn() -> C>,
}

impl<C> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore {
            s: self.s.clone(),
            _c: PhantomData,
        }
    }
}

impl<C> Debug for LogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("prefix", &self.s.keys.prefix)
            .finish_non_exhaustive()
    }
}

fn poison_err(msg: &str) -> io::Error {
    io::Error::other(format!(
        "the ringlog log store failed earlier and is poisoned: {msg}"
    ))
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
{
    /// A log store in `db` under `prefix` (one store per prefix; the database may hold other
    /// stores and state machines beside, under other prefixes — any others: a prefix that
    /// extends another is another namespace — and the application's data, whose keys must not
    /// start with a namespace, see the module documentation). A purge a crash interrupted is
    /// finished here.
    ///
    /// # Errors
    ///
    /// The database's, a stored value that does not decode, or a prefix longer than
    /// [`MAX_PREFIX_LEN`] bytes (`InvalidInput`).
    pub fn new(db: Arc<Db>, prefix: &[u8]) -> io::Result<LogStore<C>> {
        // An entry's key is the namespace (2 + prefix bytes), a tag byte and the index (8):
        // a longer prefix would be accepted here and fail every append.
        if prefix.len() > MAX_PREFIX_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a key prefix of {} bytes: a log store's may have at most {MAX_PREFIX_LEN}",
                    prefix.len()
                ),
            ));
        }
        let (tx, rx) = std::sync::mpsc::channel::<Waiter>();
        let s = Arc::new(Shared {
            db: db.clone(),
            keys: Keys {
                prefix: crate::namespace(prefix)?,
            },
            logged: !matches!(db.durability(), Durability::InMemory),
            poisoned: Mutex::new(None),
            flusher: Mutex::new(Some(tx)),
            writes: Mutex::new(()),
        });
        // The flusher holds the database weakly: once every handle on the store is dropped, the
        // caller's `Arc<Db>` is the last one (it can be unwrapped and closed at once).
        let weak = Arc::downgrade(&db);
        std::thread::Builder::new()
            .name("ringlog-raft-flush".into())
            .spawn(move || flusher(weak, rx))?;
        let store = LogStore { s, _c: PhantomData };
        if let Some(p) = store.purged()? {
            // Entries at or below the purged id a split purge left: finish it.
            store.delete_through(p.index())?;
        }
        Ok(store)
    }

    /// The database the store lives in.
    pub fn db(&self) -> &Arc<Db> {
        &self.s.db
    }

    /// Bytes one of the store's transactions may carry: half what fits one segment of the
    /// database (the rest is headroom for record framing).
    fn txn_budget(&self) -> usize {
        (self.s.db.max_value_len(0) / 2).max(1)
    }

    /// Deletes one transaction of a truncation or purge carries: [`MAX_OPS_PER_TXN`] at most,
    /// fewer when the database's segments are small.
    fn ops_per_txn(&self) -> usize {
        let per = 64 + self.s.keys.prefix.len() + 9;
        (self.txn_budget() / per).clamp(1, MAX_OPS_PER_TXN)
    }

    /// The keys of this store's entries in `range`, the first `n` from the low end (or from the
    /// high end with `from_top`). Keys in the range that are not entry keys (none: the range
    /// lies in this store's namespace) are skipped.
    fn entry_keys<RB: RangeBounds<u64>>(
        &self,
        range: RB,
        n: usize,
        from_top: bool,
    ) -> io::Result<Vec<Vec<u8>>> {
        let keys = &self.s.keys;
        let scan = self
            .s
            .db
            .range(keys.entries(&range))
            .map_err(|e| self.fail(e))?;
        let mine = |r: ringlog_db::Result<(Arc<[u8]>, ringlog_db::Value)>| match r {
            Ok((k, _)) => Ok(keys.index_of(&k).map(|_| k.to_vec())),
            Err(e) => Err(self.fail(e)),
        };
        let out: io::Result<Vec<Option<Vec<u8>>>> = if from_top {
            scan.rev()
                .map(mine)
                .filter(|r| !matches!(r, Ok(None)))
                .take(n)
                .collect()
        } else {
            scan.map(mine)
                .filter(|r| !matches!(r, Ok(None)))
                .take(n)
                .collect()
        };
        Ok(out?.into_iter().flatten().collect())
    }

    /// Commits `tx`: `Strict` when `strict`, else as appends are (visible at once, durable with
    /// the next sync); everything in memory on an in-memory database. An error poisons the
    /// store.
    fn commit(&self, tx: ringlog_db::Txn<'_>, strict: bool) -> io::Result<Lsn> {
        let committed = match (self.s.logged, strict) {
            (false, _) => tx.commit(),
            (true, true) => tx.commit_with(Durability::Strict),
            (true, false) => tx.commit_with(APPEND),
        };
        committed.map_err(|e| self.fail(e))
    }

    /// Makes everything committed so far durable (nothing to do on an in-memory database). An
    /// error poisons the store.
    fn sync(&self) -> io::Result<()> {
        if !self.s.logged {
            return Ok(());
        }
        self.s.db.sync().map_err(|e| self.fail(e))
    }

    fn check(&self) -> io::Result<()> {
        match &*self.s.poisoned.lock() {
            Some(m) => Err(poison_err(m)),
            None => Ok(()),
        }
    }

    /// Records `e` as the store's sticky error and returns it as an `io::Error`.
    fn fail(&self, e: impl std::fmt::Display) -> io::Error {
        let msg = e.to_string();
        let mut p = self.s.poisoned.lock();
        if p.is_none() {
            log::error!("ringlog log store poisoned: {msg}");
            *p = Some(msg.clone());
        }
        io::Error::other(msg)
    }

    fn get<T: DeserializeOwned>(&self, what: &str, key: &[u8]) -> io::Result<Option<T>> {
        match self.s.db.get(key).map_err(|e| self.fail(e))? {
            Some(v) => decode(what, key, &v).map(Some),
            None => Ok(None),
        }
    }

    fn purged(&self) -> io::Result<Option<LogIdOf<C>>> {
        self.get("purged log id", &self.s.keys.purged())
    }

    /// Deletes every entry at or below `index`, from the bottom, in transactions of at most
    /// [`MAX_OPS_PER_TXN`] (the last one `Strict`).
    fn delete_through(&self, index: u64) -> io::Result<()> {
        let limit = self.ops_per_txn();
        let mut deleted = false;
        loop {
            let chunk = self.entry_keys(..=index, limit, false)?;
            if chunk.is_empty() {
                // The last full chunk was committed as an append: durable before returning, as
                // the last one is otherwise.
                return if deleted { self.sync() } else { Ok(()) };
            }
            let last = chunk.len() < limit;
            let mut tx = self.s.db.begin();
            for k in &chunk {
                tx.delete(k).map_err(|e| self.fail(e))?;
            }
            self.commit(tx, last)?;
            if last {
                return Ok(());
            }
            deleted = true;
        }
    }

    fn entries<RB: RangeBounds<u64>>(&self, range: RB) -> io::Result<Vec<C::Entry>> {
        self.check()?;
        let keys = &self.s.keys;
        let floor = self.purged()?.map(|p| p.index());
        let mut out: Vec<C::Entry> = Vec::new();
        for item in self
            .s
            .db
            .range(keys.entries(&range))
            .map_err(|e| self.fail(e))?
        {
            let (k, v) = item.map_err(|e| self.fail(e))?;
            let Some(index) = keys.index_of(&k) else {
                continue;
            };
            if floor.is_some_and(|f| index <= f) {
                // Left by a purge a crash interrupted: purged.
                continue;
            }
            let e: C::Entry = decode("entry", &k, &v)?;
            if e.index() != index {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the entry under index {index} says index {}", e.index()),
                ));
            }
            // openraft's contract: a hole within the range is an error, never a shorter log
            // (the store never makes one; a key deleted by others sharing the database, or
            // damage, could).
            if let Some(prev) = out.last().map(|p| p.index()) {
                if prev.checked_add(1) != Some(index) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a hole in the log: entry {prev} is followed by entry {index}"),
                    ));
                }
            }
            out.push(e);
        }
        Ok(out)
    }
}

/// The flusher: waits until the database's durable LSN covers each append, then fires its
/// callback — in order, one wait for everything queued meanwhile.
fn flusher(db: std::sync::Weak<Db>, rx: Receiver<Waiter>) {
    let mut failed: Option<String> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let upto = batch.iter().map(|w| w.0).max().unwrap_or(0);
        if failed.is_none() {
            // The store that sent these holds the database until its sends are done, so it is
            // there; the strong handle is dropped before the callbacks fire.
            let waited = match db.upgrade() {
                Some(db) => db.wait_durable(upto).map_err(|e| e.to_string()),
                None => Err("the database was dropped before the entries were durable".into()),
            };
            if let Err(e) = waited {
                failed = Some(e);
            }
        }
        for (_, cb) in batch {
            cb(match &failed {
                None => Ok(()),
                Some(m) => Err(io::Error::other(m.clone())),
            });
        }
    }
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        self.entries(range)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        self.check()?;
        self.get("vote", &self.s.keys.vote())
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        self.check()?;
        let purged = self.purged()?;
        let keys = &self.s.keys;
        let mut last = None;
        for item in self
            .s
            .db
            .range(keys.entries(&(..)))
            .map_err(|e| self.fail(e))?
            .rev()
        {
            let (k, v) = item.map_err(|e| self.fail(e))?;
            // Another store's key (a prefix extending this one's): not ours.
            if keys.index_of(&k).is_none() {
                continue;
            }
            let e: C::Entry = decode("entry", &k, &v)?;
            last = Some(e.log_id());
            break;
        }
        // Everything left is purged (or nothing was ever appended): the purged id is the last.
        let last = match (last, &purged) {
            (Some(l), Some(p)) if l.index() <= p.index() => Some(p.clone()),
            (Some(l), _) => Some(l),
            (None, p) => p.clone(),
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        self.check()?;
        let _w = self.s.writes.lock();
        if planted::skips_same_term_vote() {
            let stored: Option<VoteOf<C>> = self.get("vote", &self.s.keys.vote())?;
            use openraft::vote::{RaftLeaderId, RaftVote};
            if stored.is_some_and(|s| s.leader_id().term() == vote.leader_id().term()) {
                return Ok(());
            }
        }
        let v = encode(vote)?;
        let mut tx = self.s.db.begin();
        tx.put(&self.s.keys.vote(), &v).map_err(|e| self.fail(e))?;
        self.commit(tx, true)?;
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        self.check()?;
        let _w = self.s.writes.lock();
        let mut tx = self.s.db.begin();
        match committed {
            Some(c) => tx.put(&self.s.keys.committed(), &encode(&c)?),
            None => tx.delete(&self.s.keys.committed()),
        }
        .map_err(|e| self.fail(e))?;
        // Not required to be durable: it becomes so with the next sync.
        self.commit(tx, false)?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        self.check()?;
        self.get("committed log id", &self.s.keys.committed())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        if let Err(e) = self.check() {
            callback.io_completed(Err(io::Error::other(e.to_string())));
            return Err(e);
        }
        let _w = self.s.writes.lock();
        // Failures before anything is committed fire the callback too.
        let refuse = |e: io::Error, callback: IOFlushed<C>| {
            callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
            Err(e)
        };
        let budget = self.txn_budget();
        let mut groups: Vec<Vec<(u64, Vec<u8>)>> = vec![Vec::new()];
        let mut bytes = 0usize;
        for e in entries {
            let v = match encode(&e) {
                Ok(v) => v,
                Err(err) => return refuse(err, callback),
            };
            // Headroom for the state machine, which writes the entry's effects with its own
            // bookkeeping in one transaction.
            let key_len = self.s.keys.prefix.len() + 9;
            if v.len() + ENTRY_HEADROOM > self.s.db.max_value_len(key_len) {
                let err = io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "entry {} is {} bytes encoded: above the {} an entry may take in this database",
                        e.index(),
                        v.len(),
                        self.s.db.max_value_len(key_len).saturating_sub(ENTRY_HEADROOM)
                    ),
                );
                return refuse(err, callback);
            }
            let size = v.len() + key_len + 64;
            if bytes + size > budget && groups.last().is_some_and(|g| !g.is_empty()) {
                groups.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            if let Some(g) = groups.last_mut() {
                g.push((e.index(), v));
            }
        }
        if groups.iter().all(|g| g.is_empty()) && !self.s.logged {
            callback.io_completed(Ok(()));
            return Ok(());
        }
        // A batch too big for one transaction goes in several, in index order: a crash between
        // them leaves a prefix of the batch, never a hole. The callback waits for the last.
        // With no entries it waits for everything committed before it: openraft takes a
        // completed IO as a watermark of every earlier one (an empty append answered at once
        // while the append before it was not durable, a review found).
        let mut lsn = self.s.db.last_assigned_lsn();
        for g in groups.iter().filter(|g| !g.is_empty()) {
            let mut tx = self.s.db.begin();
            for (index, v) in g {
                if let Err(e) = tx.put(&self.s.keys.entry(*index), v) {
                    let e = self.fail(e);
                    return refuse(e, callback);
                }
            }
            lsn = match self.commit(tx, false) {
                Ok(lsn) => lsn,
                Err(e) => return refuse(e, callback),
            };
        }
        if !self.s.logged || planted::acks_appends_early() {
            // (On an in-memory database there is nothing to wait for.)
            callback.io_completed(Ok(()));
            return Ok(());
        }
        let s = self.s.clone();
        let cb: Box<dyn FnOnce(Result<(), io::Error>) + Send> = Box::new(move |r| {
            if let Err(e) = &r {
                let mut p = s.poisoned.lock();
                if p.is_none() {
                    *p = Some(e.to_string());
                }
            }
            // The store (and with it the database) is let go before openraft hears of the
            // flush: once the caller has it and drops its handles, nothing here holds the `Db`.
            drop(s);
            callback.io_completed(r);
        });
        let sent = match &*self.s.flusher.lock() {
            Some(tx) => tx.send((lsn, cb)).map_err(|e| e.0 .1),
            None => Err(cb),
        };
        if let Err(cb) = sent {
            cb(Err(io::Error::other("the log store's flusher has stopped")));
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        self.check()?;
        let _w = self.s.writes.lock();
        let from = match last_log_id.as_ref() {
            Some(l) => match l.index().checked_add(1) {
                Some(f) => f,
                // Nothing can follow the largest index: nothing to delete, only the order.
                None => {
                    self.sync()?;
                    return Ok(());
                }
            },
            None => 0,
        };
        let limit = self.ops_per_txn();
        // From the top down, so that a crash between two transactions leaves a log without a
        // hole (shorter: a truncation of its own).
        loop {
            let chunk = self.entry_keys(from.., limit, !planted::truncates_bottom_up())?;
            let last = chunk.len() < limit;
            let mut tx = self.s.db.begin();
            for k in &chunk {
                tx.delete(k).map_err(|e| self.fail(e))?;
            }
            if last {
                // Durable before it returns, and with it every write before (a truncation that
                // deletes nothing still orders: it makes the log durable).
                if chunk.is_empty() {
                    self.sync()?;
                } else {
                    self.commit(tx, true)?;
                }
                return Ok(());
            }
            self.commit(tx, false)?;
        }
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        self.check()?;
        let _w = self.s.writes.lock();
        if let Some(p) = self.purged()? {
            if p.index() >= log_id.index() {
                return Ok(());
            }
        }
        // The purged id and the first deletions in one transaction: readers and
        // `get_log_state` skip what a split purge has not deleted yet, and a reopen finishes it.
        let keys = &self.s.keys;
        let limit = self.ops_per_txn();
        let chunk = self.entry_keys(..=log_id.index(), limit - 1, false)?;
        let mut tx = self.s.db.begin();
        tx.put(&keys.purged(), &encode(&log_id)?)
            .map_err(|e| self.fail(e))?;
        for k in &chunk {
            tx.delete(k).map_err(|e| self.fail(e))?;
        }
        self.commit(tx, true)?;
        if chunk.len() == limit - 1 {
            self.delete_through(log_id.index())?;
        }
        Ok(())
    }
}

/// Deliberate bugs that prove the crash-test runner's `raft` mode can fail: armed only in its
/// test builds (cargo feature `__planted-bugs`), inert otherwise.
pub mod planted {
    /// One planted bug: its switch, the function that arms it (only under the feature) and the
    /// one the store asks (always `false` without the feature).
    macro_rules! planted {
        ($(#[$doc:meta])* $flag:ident, $arm:ident, $armed:ident) => {
            #[cfg(feature = "__planted-bugs")]
            static $flag: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

            $(#[$doc])*
            #[cfg(feature = "__planted-bugs")]
            pub fn $arm(on: bool) {
                $flag.store(on, std::sync::atomic::Ordering::SeqCst);
            }

            /// Whether the bug is armed (always false without the feature).
            #[inline(always)]
            pub(crate) fn $armed() -> bool {
                #[cfg(feature = "__planted-bugs")]
                return $flag.load(std::sync::atomic::Ordering::SeqCst);
                #[cfg(not(feature = "__planted-bugs"))]
                false
            }
        };
    }

    planted!(
        /// Arms (or disarms) `AcksAppendsEarly`: `append` fires its callback as soon as the
        /// entries are committed (readable), before any fdatasync covers them.
        ACKS_APPENDS_EARLY,
        arm_acks_appends_early,
        acks_appends_early
    );
    planted!(
        /// Arms (or disarms) `TruncatesBottomUp`: a truncation split into several transactions
        /// deletes from the bottom instead of the top, so a crash between two of them leaves a
        /// hole.
        TRUNCATES_BOTTOM_UP,
        arm_truncates_bottom_up,
        truncates_bottom_up
    );
    planted!(
        /// Arms (or disarms) `SkipsSameTermVote`: `save_vote` of a vote whose term the stored
        /// one already has writes nothing ("nothing new"), so a vote committed at the same term
        /// is lost.
        SKIPS_SAME_TERM_VOTE,
        arm_skips_same_term_vote,
        skips_same_term_vote
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_sort_in_index_order_and_parse_back() {
        let k = Keys {
            prefix: b"raft/1/".to_vec(),
        };
        let mut idx = [0u64, 1, 255, 256, 65_535, 1 << 40, u64::MAX];
        let mut keys: Vec<Vec<u8>> = idx.iter().map(|&i| k.entry(i)).collect();
        keys.sort();
        idx.sort();
        for (key, i) in keys.iter().zip(idx) {
            assert_eq!(k.index_of(key), Some(i));
        }
        assert_eq!(k.index_of(&k.vote()), None);
        let (lo, hi) = k.entries(&(..));
        let inside = |key: &Vec<u8>| {
            (match &lo {
                Bound::Included(l) => key >= l,
                _ => false,
            }) && (match &hi {
                Bound::Excluded(h) => key < h,
                _ => false,
            })
        };
        assert!(keys.iter().all(inside));
        assert!(!inside(&k.vote()) && !inside(&k.purged()) && !inside(&k.committed()));
    }
}
