//! # ringlog-format
//!
//! The on-disk formats of [ringlog](https://docs.rs/ringlog): the manifest, the segment header and
//! the record framing. This crate is pure — no I/O, no threads, no allocation on the decode path.
//!
//! * Every structure is a `#[repr(C)]` plain-old-data struct whose size and alignment are asserted
//!   at compile time; integers are little-endian (the crate refuses to build on big-endian targets).
//! * Records start at 8-byte aligned offsets and are protected by a crc32c that also covers the
//!   segment id, the database epoch and the record's own offset, so stale, foreign or misdirected
//!   bytes fail the check.
//! * Encoding writes straight into a caller-supplied buffer ([`AlignedBuf`] for O_DIRECT I/O);
//!   decoding returns borrowed views and never panics on arbitrary input: every
//!   [`DecodeError`] names the byte offset at which it was found.
//!
//! `docs/FORMAT.md` in the repository specifies every byte.
//!
//! ```
//! use ringlog_format::{encode_record, decode_record, RecordKind, RecordSpec, SegmentPos, encoded_len};
//! let pos = SegmentPos { segment_id: 1, epoch: 7, offset: 4096 };
//! let spec = RecordSpec::write(b"key", b"value", 1, 1, 1, 0, 4096).autocommit();
//! let mut buf = vec![0u8; encoded_len(3, 5)];
//! let n = encode_record(&mut buf, &spec, pos).unwrap();
//! let rec = decode_record(&buf[..n], 0, pos).unwrap();
//! assert_eq!(rec.kind, RecordKind::Write);
//! assert_eq!(rec.key, b"key");
//! assert_eq!(rec.value, b"value");
//! ```

#[cfg(not(target_endian = "little"))]
compile_error!(
    "ringlog-format stores integers little-endian and supports little-endian targets only"
);

mod buf;
mod error;
mod manifest;
mod record;
mod segment;

pub use buf::AlignedBuf;
pub use error::{DecodeError, EncodeError};
pub use manifest::{Manifest, MANIFEST_LEN, MANIFEST_MAGIC};
pub use record::{
    decode_record, encode_padding, encode_record, encoded_len, find_next_valid, Record,
    RecordHeader, RecordKind, RecordSpec, SegmentPos, FLAG_AUTOCOMMIT, MARKER_PAYLOAD_LEN,
    MAX_KEY_LEN, MAX_RECORD_LEN, RECORD_ALIGN, RECORD_HEADER_LEN,
};
pub use segment::{SegmentHeader, SEGMENT_HEADER_LEN, SEGMENT_MAGIC};

/// Version of the on-disk format written by this crate. Stored in the manifest and in every
/// segment header; a directory of another version is refused.
pub const FORMAT_VERSION: u32 = 1;

/// Rounds `n` up to a multiple of `align` (a power of two).
#[inline]
pub const fn align_up(n: u64, align: u64) -> u64 {
    (n + align - 1) & !(align - 1)
}

/// crc32c of `seed` followed by `data`, the checksum used by every structure of the format.
#[inline]
pub(crate) fn crc_with_seed(seed: &[u8], data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(seed), data)
}
