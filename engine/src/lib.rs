//! # ringlog-db
//!
//! The storage engine of the ringlog project. An embeddable, log-structured key-value storage engine for Linux with honest durability:
//! every committed transaction is appended to a checksummed log of fixed-size segment files,
//! written through io_uring (or a portable pwrite/fdatasync path), and the state is rebuilt by
//! replaying the log when the database is opened.
//!
//! ```
//! # fn main() -> Result<(), ringlog_db::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let db = ringlog_db::Db::open(dir.path(), ringlog_db::Options::default())?; // Buffered by default
//! let lsn = db.put(b"key", b"value")?;                                   // one-op transaction
//! let v = db.get(b"key")?.unwrap();
//! assert_eq!(&*v, b"value");
//! assert_eq!(v.lsn(), lsn);                                              // the version
//!
//! let mut tx = db.begin();
//! tx.put(b"a", b"1")?;
//! tx.delete(b"b")?;
//! tx.commit_with(ringlog_db::Durability::Strict)?;                          // per-transaction override
//! assert!(db.durable_lsn() >= lsn);
//!
//! for item in db.range(b"a".as_slice()..)? {                             // ordered by key
//!     let (key, value) = item?;                                          // items are Results
//!     println!("{:?} = {:?} @ {}", key, &*value, value.lsn());
//! }
//! db.close()?;                                                           // flush, sync, join threads
//!
//! let db = ringlog_db::Db::open(dir.path(), ringlog_db::Options::default())?;
//! assert_eq!(db.recovery_stats().transactions_applied, 2);
//! assert_eq!(db.get(b"a")?.as_deref(), Some(&b"1"[..]));
//! # Ok(()) }
//! ```
//!
//! ## Durability modes
//!
//! | mode | what `commit()` waits for | after a process crash | after a power loss |
//! |---|---|---|---|
//! | [`Durability::InMemory`] | the in-memory apply; no file is ever created | empty | empty |
//! | [`Durability::Buffered`] | the record is in the log buffer (as a rule: the first commit of a run waits for a sync, see [`Durability::Buffered`]); a timer or the pending limit triggers write + fdatasync in the background | a prefix of the commit order containing at least everything covered by the last completed sync | the same |
//! | [`Durability::Strict`] | the record's bytes and an fdatasync covering them | everything acknowledged | everything acknowledged |
//!
//! A transaction may override the mode ([`Txn::commit_with`]). Concurrent `Strict` committers share
//! one write + fdatasync (group commit). A failed write or fdatasync poisons the database: the
//! commit and every waiter get [`Error::Poisoned`], and every later write fails until the database
//! is reopened (and recovered). See `docs/DURABILITY.md` in the repository.
//!
//! ## Limits
//!
//! Keys are 1 to [`MAX_KEY_LEN`] (65,535) bytes. A transaction must fit in one log segment (each
//! operation takes 24 bytes of header plus its key and value, rounded up to a multiple of 8; a
//! transaction of several operations adds 64 bytes of begin and commit markers):
//! [`Options::max_value_len`] tells the largest value.
//!
//! ## Reads, versions and snapshots
//!
//! Every commit gets an LSN, and the LSN is the version of every key it wrote: reads return the
//! value and its LSN. Readers see a prefix of the commit order, whole transactions only; readers
//! never block writers and writers never block readers. A `Strict` commit becomes visible to
//! other threads only once it is durable (so nothing a reader saw can be lost by a crash); a
//! `Buffered` or `InMemory` one at once. [`Db::last_lsn`] is the newest visible LSN.
//!
//! ```
//! # fn main() -> Result<(), ringlog_db::Error> {
//! use ringlog_db::{Db, Retention};
//! let db = Db::in_memory();
//! let v1 = db.put(b"k", b"1")?;
//! let snap = db.snapshot();                     // no copy: an LSN and a pin
//! db.put(b"k", b"2")?;
//! assert_eq!(snap.get(b"k")?.as_deref(), Some(&b"1"[..]));
//! assert_eq!(db.get_at(b"k", v1)?.as_deref(), Some(&b"1"[..])); // the snapshot keeps it
//! for item in snap.range(b"a".as_slice()..)?.rev() {              // lazy, both directions
//!     let (key, value) = item?;
//!     assert_eq!((&*key, value.lsn()), (&b"k"[..], v1));
//! }
//! drop(snap);
//! db.set_retention(Retention::All)?;            // keep every version from now on
//! # Ok(()) }
//! ```
//!
//! Which old versions are kept is the [`Retention`] policy's call (by default: what live
//! snapshots need); a read below what is kept fails with [`Error::HistoryTrimmed`], never with
//! another version. LSNs are never handed out twice, across crashes too (`docs/DURABILITY.md`).
//! A scan's items are `Result`s: reading an entry can fail, and a scan ends with the error rather
//! than early or in a panic (see [`Scan`]).
//!
//! ## Checkpoints, compaction and backup
//!
//! [`Db::checkpoint`] writes a consistent image of every retained version at the last LSN
//! assigned when it starts (once that LSN is durable and visible), then deletes the previous
//! checkpoint and every log segment wholly below it; an open loads the checkpoint and replays
//! only the log after it, so space and restart time follow the live data, not the history. The database checkpoints on its own every
//! [`Options::checkpoint_bytes`] of log. [`Db::backup_to`] writes a consistent copy of the live
//! database into another directory. Reads can borrow instead of copy: [`Db::get_with`],
//! [`Scan::next_with`].
//!
//! ## Cargo features
//!
//! None is needed to use the database. `lz4` adds LZ4 compression of checkpoint blocks
//! ([`Options::codec`]). The other two, prefixed `__` because they are not product features,
//! exist for the project's crash-test runner and are inert until a test arms them at run time:
//!
//! * `__failpoints`: named crash points (`failpoints::arm` kills the process at the n-th hit of
//!   one);
//! * `__planted-bugs`: deliberate durability bugs (`bugs::arm`), which prove the crash-test runner
//!   catches each class of bug. Never enable it in a build you ship.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod hooks;
mod checkpoint;
mod checkpointer;
mod commit;
mod conflicts;
mod cpu;
mod db;
mod dir;
mod error;
mod history;
mod hugemem;
mod index;
mod loader;
mod open;
mod options;
mod publish;
mod rcu;
mod recovery;
mod runs;
mod segment;
mod skiplist;
mod snapshot;
mod stats;
mod trimmer;
mod txn;
mod values;
mod wal;

pub use checkpointer::CheckpointInfo;
pub use db::{Db, DbBuilder};
pub use error::{Conflicting, Error, Result};
pub use history::{History, KeyHistory};
#[cfg(feature = "__planted-bugs")]
#[cfg_attr(docsrs, doc(cfg(feature = "__planted-bugs")))]
pub use hooks::bugs;
#[cfg(feature = "__failpoints")]
#[cfg_attr(docsrs, doc(cfg(feature = "__failpoints")))]
pub use hooks::failpoints;
pub use index::retention::Retention;
pub use index::scan::Scan;
pub use index::{Lsn, Value};
pub use options::{
    BlockCodec, Durability, IoChoice, Options, Preallocate, RecoveryMode, SyncStrategy, Vfs,
    MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE,
};
pub use recovery::RecoveryStats;
pub use ringlog_format::MAX_KEY_LEN;
/// The I/O layer, re-exported for custom [`Vfs`] implementations.
pub use ringlog_uring as io;
pub use runs::{Change, KeyDiff, RunChanges, RunInfo, Write, Written};
pub use snapshot::Snapshot;
pub use stats::Stats;
pub use txn::{RetryPolicy, Txn, TxnScan};
