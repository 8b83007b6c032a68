use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Result alias for ringlog operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong. Bad input is reported with a typed variant before anything is
/// written; an I/O failure of the log poisons the database ([`Error::Poisoned`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed.
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory involved, if any.
        path: Option<PathBuf>,
        /// The operating system's error.
        source: io::Error,
    },
    /// Keys must be at least one byte long.
    EmptyKey,
    /// The key is longer than [`crate::MAX_KEY_LEN`].
    KeyTooLarge {
        /// Length given.
        len: usize,
        /// Largest accepted.
        max: usize,
    },
    /// The value cannot fit in one log segment (see [`crate::Options::max_value_len`]), or, in an
    /// in-memory database, is above its 2 GiB limit (see [`crate::Db::max_value_len`]).
    ValueTooLarge {
        /// Length given.
        len: usize,
        /// Largest accepted.
        max: usize,
    },
    /// The transaction's log records cannot fit in one log segment.
    TransactionTooLarge {
        /// Encoded size of the transaction.
        len: usize,
        /// Largest accepted.
        max: usize,
    },
    /// The path exists and is not a directory.
    NotADirectory(PathBuf),
    /// The directory is not a ringlog database: it has no MANIFEST, and other files
    /// ([`crate::Db::open`], which creates a database in an empty directory), or none at all
    /// ([`crate::Db::open_read_only`], which creates nothing).
    NotADatabase(PathBuf),
    /// The database was written by an unsupported format version.
    UnsupportedVersion {
        /// The directory.
        path: PathBuf,
        /// Version found on disk.
        found: u32,
        /// Version this build reads and writes.
        supported: u32,
    },
    /// Another handle or process holds the database open.
    Locked(PathBuf),
    /// A write (or a checkpoint, or a backup) through a handle of
    /// [`crate::Db::open_read_only`], which never writes.
    ReadOnly(PathBuf),
    /// A file of the database is damaged; `file` names it. For the log: damage before its tail
    /// (valid records follow the damage, so cutting there would lose data that may have been
    /// acknowledged; open with [`crate::RecoveryMode::TruncateAtCorruption`] to cut it off
    /// explicitly). Also a damaged MANIFEST, checkpoint or value segment (a value read).
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the first damaged record.
        offset: u64,
        /// What was found.
        reason: String,
    },
    /// An earlier write or fdatasync of the log failed. The kernel may have dropped the unwritten
    /// pages, so the database refuses every further write until it is reopened and recovered.
    /// Also after a panic on the log thread or inside a commit (a custom `Vfs`'s, say), which
    /// would otherwise leave later commits waiting forever.
    Poisoned(Arc<io::Error>),
    /// Durability was requested of a database that has no log (opened `InMemory`), or a
    /// transaction asked to skip the log of a database that has one.
    DurabilityUnavailable(&'static str),
    /// The options are inconsistent.
    InvalidOptions(String),
    /// The database is closed (or closing).
    Closed,
    /// The log's ids (LSN, transaction, run or segment id) reached the format's maximum
    /// (`2^63 - 1`): no commit can be numbered after it. No real log gets there (2^63 commits);
    /// a log that claims it was damaged or crafted.
    IdSpaceExhausted(&'static str),
    /// A read at a version below what the retention policy (and the live snapshots) kept: the
    /// versions it would need were dropped. Never answered with a newer or older version instead.
    HistoryTrimmed {
        /// The LSN the read asked for.
        requested: u64,
        /// The oldest LSN the read could have asked for: the trim floor (one for the whole
        /// database, which [`crate::Retention::LastVersions`]'s trims raise for every key), or,
        /// for a key whose older versions a trim dropped, that key's oldest kept version.
        earliest_retained: u64,
    },
    /// A read at a version that is not visible yet: no transaction with that LSN has committed
    /// (or, for a `Strict` commit, become durable) so far. Also [`crate::Db::wait_durable`]'s
    /// answer, on a read-only handle, for an LSN above its last one.
    NotYetVisible {
        /// The LSN the read asked for.
        requested: u64,
        /// The newest visible LSN.
        visible: u64,
    },
    /// The database's checkpoint blocks are stored with another codec than
    /// [`crate::Options::codec`] asks for (or one this build does not have).
    CodecMismatch {
        /// The database directory.
        path: PathBuf,
        /// The codec id its MANIFEST records.
        found: u32,
        /// The codec id the options ask for.
        requested: u32,
    },
    /// An optimistic transaction's commit was refused: a key it read, a range it scanned, or a
    /// key its condition covers was written after its snapshot (or, for a condition, after the
    /// LSN it names, or exists at all). Nothing was written; running the transaction again on
    /// a fresh snapshot may succeed ([`crate::Db::transact`] does).
    Conflict {
        /// What was written.
        on: Conflicting,
        /// The LSN of a transaction that wrote it.
        by_lsn: u64,
    },
    /// An optimistic transaction's snapshot is older than the history kept to validate it
    /// ([`crate::Options::conflict_history_bytes`]): it cannot be validated, so it is refused.
    /// Nothing was written.
    TransactionTooOld {
        /// The transaction's snapshot LSN.
        snapshot: u64,
        /// The oldest snapshot the kept history can validate.
        oldest: u64,
    },
}

/// What an [`Error::Conflict`] is about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Conflicting {
    /// A key read (or named by a condition).
    Key(Box<[u8]>),
    /// A range scanned (or named by a condition).
    Range {
        /// Where the range starts.
        start: std::ops::Bound<Box<[u8]>>,
        /// Where it ends.
        end: std::ops::Bound<Box<[u8]>>,
    },
}

impl fmt::Display for Conflicting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use std::ops::Bound;
        fn key(f: &mut fmt::Formatter<'_>, k: &[u8]) -> fmt::Result {
            write!(f, "{:?}", String::from_utf8_lossy(k))
        }
        match self {
            Conflicting::Key(k) => {
                f.write_str("key ")?;
                key(f, k)
            }
            Conflicting::Range { start, end } => {
                f.write_str("range ")?;
                match start {
                    Bound::Included(k) => {
                        f.write_str("[")?;
                        key(f, k)?
                    }
                    Bound::Excluded(k) => {
                        f.write_str("(")?;
                        key(f, k)?
                    }
                    Bound::Unbounded => f.write_str("(..")?,
                }
                f.write_str(", ")?;
                match end {
                    Bound::Included(k) => {
                        key(f, k)?;
                        f.write_str("]")
                    }
                    Bound::Excluded(k) => {
                        key(f, k)?;
                        f.write_str(")")
                    }
                    Bound::Unbounded => f.write_str("..)"),
                }
            }
        }
    }
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<Option<PathBuf>>,
        source: io::Error,
    ) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// This error as the `io::Error` a poisoned database carries: the operating system's error
    /// number when there is one (so callers can still tell ENOSPC from EIO), else its kind and
    /// message.
    pub(crate) fn to_poison(&self) -> io::Error {
        match self {
            Error::Io { source, .. } => match source.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(source.kind(), self.to_string()),
            },
            other => io::Error::other(other.to_string()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path: Some(p), source } => write!(f, "{op} {}: {source}", p.display()),
            Error::Io { op, path: None, source } => write!(f, "{op}: {source}"),
            Error::IdSpaceExhausted(what) => write!(
                f,
                "the log's {what} reached the format's maximum {}: nothing can be logged after it",
                ringlog_format::MAX_ID
            ),
            Error::EmptyKey => f.write_str("empty key: keys must be at least one byte"),
            Error::KeyTooLarge { len, max } => write!(f, "key of {len} bytes exceeds the limit of {max} bytes"),
            Error::ValueTooLarge { len, max } => {
                write!(f, "value of {len} bytes exceeds the limit of {max} bytes (one log segment)")
            }
            Error::TransactionTooLarge { len, max } => write!(
                f,
                "transaction of {len} encoded bytes exceeds the limit of {max} bytes (one log segment)"
            ),
            Error::NotADirectory(p) => write!(f, "{} exists and is not a directory", p.display()),
            Error::NotADatabase(p) => write!(f, "{} is not a ringlog database (it has no MANIFEST)", p.display()),
            Error::UnsupportedVersion { path, found, supported } => write!(
                f,
                "{} holds format version {found}; this build supports version {supported}",
                path.display()
            ),
            Error::Locked(p) => write!(f, "{} is already open (its LOCK is held)", p.display()),
            Error::ReadOnly(p) => write!(f, "{} is open read-only: it cannot be written", p.display()),
            Error::Corruption { file, offset, reason } => {
                write!(f, "corruption in {} at offset {offset}: {reason}", file.display())
            }
            Error::Poisoned(e) => write!(
                f,
                "the database is poisoned by an earlier log I/O failure ({e}); reopen it to recover"
            ),
            Error::DurabilityUnavailable(why) => write!(f, "durability unavailable: {why}"),
            Error::InvalidOptions(why) => write!(f, "invalid options: {why}"),
            Error::Closed => f.write_str("the database is closed"),
            Error::HistoryTrimmed { requested, earliest_retained } => write!(
                f,
                "history trimmed: LSN {requested} was asked for, but versions before LSN {earliest_retained} are no longer retained"
            ),
            Error::NotYetVisible { requested, visible } => write!(
                f,
                "LSN {requested} is not visible yet (the newest visible LSN is {visible})"
            ),
            Error::CodecMismatch { path, found, requested } => write!(
                f,
                "{} stores checkpoint blocks with codec {found}; the options ask for codec {requested} (open it with the codec it was created with{})",
                path.display(),
                match (*found, ringlog_format::codec_by_id(*found).is_none()) {
                    (1, true) => "; codec 1 is LZ4, which this build lacks: cargo feature `lz4`",
                    (_, true) => "; this build does not know that codec",
                    _ => "",
                }
            ),
            Error::Conflict { on, by_lsn } => write!(
                f,
                "transaction conflict: {on} was written by the transaction at LSN {by_lsn}; nothing was written"
            ),
            Error::TransactionTooOld { snapshot, oldest } => write!(
                f,
                "transaction too old: its snapshot at LSN {snapshot} is below LSN {oldest}, the oldest the kept conflict history can validate; nothing was written"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Poisoned(e) => Some(&**e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A codec mismatch says when this build lacks the database's codec, and which feature has
    /// it (LZ4 is behind cargo feature `lz4`): "open it with the codec it was created with"
    /// alone is no help in a build that cannot.
    #[test]
    fn a_codec_this_build_lacks_is_named() {
        let mismatch = |found| {
            Error::CodecMismatch {
                path: "/db".into(),
                found,
                requested: 0,
            }
            .to_string()
        };
        assert!(mismatch(7).contains("this build does not know that codec"));
        let lz4 = mismatch(1);
        if ringlog_format::codec_by_id(1).is_none() {
            assert!(lz4.contains("cargo feature `lz4`"), "{lz4}");
        } else {
            assert!(!lz4.contains("lacks"), "{lz4}");
        }
    }
}
