//! Transactions: writes buffered in the handle, committed atomically with one LSN.

use std::sync::Arc;

use crate::db::Db;
use crate::index::{Lsn, OpRef, Value};
use crate::wal::txn_encoded_len;
use crate::{Durability, Error, Result};

enum Op {
    Put(Box<[u8]>, Box<[u8]>),
    Delete(Box<[u8]>),
}

impl Op {
    fn as_ref(&self) -> OpRef<'_> {
        match self {
            Op::Put(k, v) => OpRef::Put(k, v),
            Op::Delete(k) => OpRef::Delete(k),
        }
    }
}

/// A transaction: writes buffered until [`Txn::commit`], then applied atomically with one LSN.
/// Reads through the transaction see its own writes first. Dropping it without committing
/// discards its writes.
#[must_use = "a transaction dropped without commit() discards its writes"]
pub struct Txn<'db> {
    db: &'db Db,
    ops: Vec<Op>,
    bytes: usize,
}

impl std::fmt::Debug for Txn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn")
            .field("ops", &self.ops.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl<'db> Txn<'db> {
    pub(crate) fn new(db: &'db Db) -> Txn<'db> {
        Txn {
            db,
            ops: Vec::new(),
            bytes: 0,
        }
    }

    fn add(&mut self, op: Op) -> Result<()> {
        self.db.validate(&[op.as_ref()])?;
        let len = txn_encoded_len(&[op.as_ref()]);
        // A one-operation transaction is one autocommit record; with more, Begin and Commit
        // markers frame the operations.
        let markers = if self.ops.is_empty() {
            0
        } else {
            2 * ringlog_format::encoded_len(0, ringlog_format::MARKER_PAYLOAD_LEN)
        };
        let total = self.bytes + len + markers;
        if self.db.has_log() && total > self.db.max_txn_bytes() {
            return Err(Error::TransactionTooLarge {
                len: total,
                max: self.db.max_txn_bytes(),
            });
        }
        self.bytes += len;
        self.ops.push(op);
        Ok(())
    }

    /// Buffers `key` = `value`. Invalid input is refused here, leaving the transaction as it was.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyKey`], [`Error::KeyTooLarge`], [`Error::ValueTooLarge`]: checked at once, so
    /// a bad operation never reaches the commit.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.add(Op::Put(key.into(), value.into()))
    }

    /// Buffers the removal of `key`.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyKey`], [`Error::KeyTooLarge`].
    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.add(Op::Delete(key.into()))
    }

    /// Reads `key` as this transaction would leave it: its own latest write, else the database's
    /// committed value (its LSN is the committed one; a pending write has LSN 0).
    ///
    /// # Errors
    ///
    /// As [`Db::get`].
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        for op in self.ops.iter().rev() {
            match op {
                Op::Put(k, v) if &**k == key => return Ok(Some(Value::new(Arc::from(&**v), 0))),
                Op::Delete(k) if &**k == key => return Ok(None),
                _ => {}
            }
        }
        self.db.get(key)
    }

    /// Number of buffered operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Commits with the database's durability and returns the transaction's LSN. An empty
    /// transaction writes nothing and returns the current last LSN.
    ///
    /// # Errors
    ///
    /// [`Error::TransactionTooLarge`] when its records cannot fit in one segment (nothing is
    /// written); [`Error::Poisoned`] when the write or sync failed (a `Strict` commit is then not
    /// durable and the database refuses further writes); [`Error::Closed`] after [`Db::close`];
    /// [`Error::IdSpaceExhausted`] when the log's LSNs reached the format's maximum.
    pub fn commit(self) -> Result<Lsn> {
        self.commit_inner(None)
    }

    /// Commits with `durability` instead of the database's: `Strict` waits for an fdatasync
    /// covering this and every earlier commit; `Buffered` does not wait. Asking an in-memory
    /// database for durability, or a persistent one to skip its log, is an error.
    ///
    /// # Errors
    ///
    /// As [`Txn::commit`], and [`Error::DurabilityUnavailable`] when an in-memory database is asked
    /// for durability or a database with a log for `InMemory`.
    pub fn commit_with(self, durability: Durability) -> Result<Lsn> {
        self.commit_inner(Some(durability))
    }

    fn commit_inner(self, durability: Option<Durability>) -> Result<Lsn> {
        if self.ops.is_empty() {
            self.db.check_open()?;
            return Ok(self.db.last_lsn());
        }
        let refs: Vec<OpRef<'_>> = self.ops.iter().map(Op::as_ref).collect();
        self.db.commit_ops(&refs, durability, false)
    }

    /// Discards the buffered writes (the same as dropping the transaction).
    pub fn abort(self) {}
}
