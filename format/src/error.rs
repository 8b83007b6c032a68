use std::fmt;

/// Why bytes could not be decoded as a valid structure. Every variant names the absolute byte
/// offset (within the file) at which the problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes remain than the structure needs.
    Truncated {
        /// Offset of the structure.
        offset: u64,
        /// Bytes the structure needs.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The header is all zero bytes: never-written (or zeroed) space.
    Zeroed {
        /// Offset of the zero header.
        offset: u64,
    },
    /// The length field is impossible (smaller than a header or larger than the format allows).
    BadLength {
        /// Offset of the record.
        offset: u64,
        /// The length found.
        len: u64,
    },
    /// The kind byte names no known record kind.
    UnknownKind {
        /// Offset of the record.
        offset: u64,
        /// The kind byte found.
        kind: u8,
    },
    /// The checksum does not match the bytes (or they belong to another segment, database or
    /// offset).
    Checksum {
        /// Offset of the structure.
        offset: u64,
        /// The checksum stored in the bytes.
        stored: u32,
        /// The checksum computed over them.
        computed: u32,
    },
    /// A magic number does not match.
    BadMagic {
        /// Offset of the structure.
        offset: u64,
    },
    /// The structure was written by another format version.
    UnsupportedVersion {
        /// Offset of the structure.
        offset: u64,
        /// The version found.
        version: u32,
    },
    /// The fields are individually well formed but contradict each other.
    Malformed {
        /// Offset of the structure.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A field holding an id (LSN, transaction, run or segment id) or a size is above what the
    /// format allows ([`crate::MAX_ID`], [`crate::MAX_SEGMENT_LEN`]): the bytes passed their
    /// checksum, so this is not a torn write but a structure no engine wrote.
    OutOfRange {
        /// Offset of the structure.
        offset: u64,
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The largest value allowed.
        max: u64,
    },
}

impl DecodeError {
    /// The absolute byte offset at which the problem was found.
    pub fn offset(&self) -> u64 {
        match *self {
            DecodeError::Truncated { offset, .. }
            | DecodeError::Zeroed { offset }
            | DecodeError::BadLength { offset, .. }
            | DecodeError::UnknownKind { offset, .. }
            | DecodeError::Checksum { offset, .. }
            | DecodeError::BadMagic { offset }
            | DecodeError::UnsupportedVersion { offset, .. }
            | DecodeError::Malformed { offset, .. }
            | DecodeError::OutOfRange { offset, .. } => offset,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { offset, needed, available } => write!(
                f,
                "truncated structure at offset {offset}: needs {needed} bytes, {available} available"
            ),
            DecodeError::Zeroed { offset } => write!(f, "zeroed space at offset {offset}"),
            DecodeError::BadLength { offset, len } => {
                write!(f, "impossible record length {len} at offset {offset}")
            }
            DecodeError::UnknownKind { offset, kind } => {
                write!(f, "unknown record kind {kind} at offset {offset}")
            }
            DecodeError::Checksum { offset, stored, computed } => write!(
                f,
                "checksum mismatch at offset {offset}: stored {stored:#010x}, computed {computed:#010x}"
            ),
            DecodeError::BadMagic { offset } => write!(f, "bad magic number at offset {offset}"),
            DecodeError::UnsupportedVersion { offset, version } => {
                write!(f, "unsupported format version {version} at offset {offset}")
            }
            DecodeError::Malformed { offset, reason } => {
                write!(f, "malformed structure at offset {offset}: {reason}")
            }
            DecodeError::OutOfRange {
                offset,
                field,
                value,
                max,
            } => write!(
                f,
                "{field} {value} at offset {offset} is above the format's maximum {max}"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a record could not be encoded. These are caller errors, caught before any byte is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The destination buffer is smaller than [`crate::encoded_len`].
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The key is empty or longer than [`crate::MAX_KEY_LEN`].
    BadKeyLength(usize),
    /// The record would exceed [`crate::MAX_RECORD_LEN`].
    TooLarge(usize),
    /// The record kind does not take this payload (e.g. a value on a delete).
    BadPayload(&'static str),
    /// The record's offset is not 8-byte aligned.
    BadOffset(u64),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall { needed, available } => {
                write!(f, "buffer too small: needs {needed} bytes, has {available}")
            }
            EncodeError::BadKeyLength(n) => write!(f, "invalid key length {n}"),
            EncodeError::TooLarge(n) => write!(f, "record of {n} bytes exceeds the format limit"),
            EncodeError::BadPayload(why) => write!(f, "invalid payload: {why}"),
            EncodeError::BadOffset(o) => write!(f, "invalid record offset {o}"),
        }
    }
}

impl std::error::Error for EncodeError {}
