//! # ringlog-format
//!
//! The on-disk formats of [ringlog](https://docs.rs/ringlog): the manifest, the segment header,
//! the record framing and checkpoint files (with their block codecs). This crate is pure — no I/O, no threads, no allocation on the decode path.
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
//! let spec = RecordSpec::write(b"key", b"value", 1, 4096).autocommit();
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
mod checkpoint;
mod codec;
mod error;
mod manifest;
mod record;
mod segment;

pub use buf::AlignedBuf;
pub use checkpoint::{
    encode_block, encode_entry, BlockHeader, BlockPos, CheckpointFooter, CheckpointHeader, Entries,
    Entry, EntryValue, ValueRef, BLOCK_HEADER_LEN, CHECKPOINT_FOOTER_LEN, CHECKPOINT_FOOTER_MAGIC,
    CHECKPOINT_HEADER_LEN, CHECKPOINT_MAGIC, ENTRY_FLAGS, ENTRY_HEADER_LEN, ENTRY_SYSTEM,
    ENTRY_TOMBSTONE, ENTRY_USER, ENTRY_USER_REF, MAX_BLOCK_LEN, MIN_ENTRY_LEN, VALUE_REF_LEN,
};
#[cfg(feature = "lz4")]
pub use codec::Lz4;
pub use codec::{codec_by_id, Codec, Identity};
pub use error::{DecodeError, EncodeError};
pub use manifest::{Manifest, MANIFEST_LEN, MANIFEST_MAGIC, MANIFEST_V2_LEN};
pub use record::{
    damage_proof, decode_record, decode_record_in, encode_padding, encode_record,
    encode_record_wide, encoded_len, find_later_batch, find_next_valid, LaterBatch, Layout, Record,
    RecordHeader, RecordKind, RecordSpec, SearchCost, SearchIn, SegmentPos, WideIds, BATCH_ALIGN,
    BATCH_HEAD_LEN, BATCH_HEAD_LEN_V4, BATCH_HEAD_PAYLOAD_LEN, BATCH_HEAD_PAYLOAD_LEN_V4,
    FLAG_AUTOCOMMIT, FLAG_RELOCATED, FLAG_SYSTEM, MARKER_PAYLOAD_LEN, MAX_KEY_LEN, MAX_RECORD_LEN,
    RECORD_ALIGN, RECORD_HEADER_LEN, WIDE_RECORD_HEADER_LEN,
};
pub use segment::{SegmentHeader, SEGMENT_HEADER_LEN, SEGMENT_MAGIC};

/// Version of the on-disk format written by this crate. Stored in the manifest and in every
/// segment header; a directory or segment of a version outside
/// [`MIN_FORMAT_VERSION`]`..=FORMAT_VERSION` is refused. Version 2 added the Lease record kind
/// and the system-key flag ([`FLAG_SYSTEM`]); version 1 files, which hold neither, are read as
/// they are. Version 3 added the 128-byte manifest (checkpoint, first segment, floors, codec)
/// and checkpoint files; its segments are laid out as version 2's. Version 4 made records lean
/// ([`Layout::Lean`]: a 24-byte header; run id and commit time once per write batch, in its
/// [`RecordKind::BatchHead`]; transaction id = LSN); the manifest and checkpoint files are laid
/// out as version 3's, and segments of versions 1–3 are still read ([`Layout::Wide`]). Version 5
/// added the durable floor to the batch head (48 bytes instead of 40): the log may then keep several
/// write batches in flight at once, and recovery still tells a torn tail from corruption
/// (FORMAT.md §10.5); everything else is laid out as version 4's. Version 6 lets a checkpoint
/// entry hold a value by reference to its Write record in a log segment
/// ([`ENTRY_USER_REF`], [`ValueRef`]); segments, records and the manifest are laid out as
/// version 5's.
pub const FORMAT_VERSION: u32 = 6;

/// Oldest on-disk format version this crate reads.
pub const MIN_FORMAT_VERSION: u32 = 1;

/// Largest LSN, transaction id, run id or segment id the format allows (2^63 - 1). An id read
/// from disk above it is corruption ([`DecodeError::OutOfRange`]); an engine never assigns one
/// above it, so that the next id after any valid one still fits in a `u64`.
pub const MAX_ID: u64 = i64::MAX as u64;

/// Largest segment file the format allows: 1 GiB. Record offsets and batch starts are 32-bit;
/// a segment file longer than this is corruption, never a reason to allocate its length.
pub const MAX_SEGMENT_LEN: u64 = 1 << 30;

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

/// Below this many bytes, checksumming with the CPU's crc32 instruction inline beats a call into
/// the crc32c crate, whose setup (alignment split, dispatch) costs more than a short record.
const INLINE_CRC_MAX: usize = 256;

/// crc32c of the 24-byte seed `(segment_id, epoch, offset)` followed by `data`: the same value as
/// [`crc_with_seed`] of [`SegmentPos::seed`], computed without building the seed and, for short
/// records on x86-64 with SSE4.2, in one pass of crc32 instructions.
#[inline]
pub(crate) fn crc_at(segment_id: u64, epoch: u64, offset: u64, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU supports SSE4.2, as just checked.
        return unsafe { crc_at_sse42(segment_id, epoch, offset, data) };
    }
    let mut seed = [0u8; 24];
    seed[..8].copy_from_slice(&segment_id.to_le_bytes());
    seed[8..16].copy_from_slice(&epoch.to_le_bytes());
    seed[16..].copy_from_slice(&offset.to_le_bytes());
    crc_with_seed(&seed, data)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn crc_at_sse42(segment_id: u64, epoch: u64, offset: u64, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    // The register starts inverted and is inverted at the end, as crc32c does.
    let mut c = u64::from(u32::MAX);
    c = _mm_crc32_u64(c, segment_id);
    c = _mm_crc32_u64(c, epoch);
    c = _mm_crc32_u64(c, offset);
    if data.len() >= INLINE_CRC_MAX {
        return crc32c::crc32c_append(!(c as u32), data);
    }
    let words = data.chunks_exact(8);
    let tail = words.remainder();
    for w in words {
        c = _mm_crc32_u64(c, u64::from_le_bytes(w.try_into().expect("8-byte chunk")));
    }
    let mut c = c as u32;
    for &b in tail {
        c = _mm_crc32_u8(c, b);
    }
    !c
}

/// The crc32c polynomial, bit-reflected.
const CRC32C_POLY: u32 = 0x82F6_3B78;

/// `a * b mod P` for polynomials over GF(2) in the reflected representation of the crc (bit 31 is
/// `x^0`), as zlib's `multmodp`.
const fn multmodp(a: u32, mut b: u32) -> u32 {
    let mut p = 0u32;
    let mut bit = 0;
    // Branch-free: the multiplier's bits are data, and mispredicted branches would cost more
    // than the arithmetic.
    while bit < 32 {
        p ^= b & 0u32.wrapping_sub((a >> (31 - bit)) & 1);
        b = (b >> 1) ^ (CRC32C_POLY & 0u32.wrapping_sub(b & 1));
        bit += 1;
    }
    p
}

/// Longest run of zeros [`crc_append_zeros`] extends over in constant time.
const ZERO_TABLE_BYTES: usize = 8192;

/// `ZERO_SHIFT[i] = x^(64 i) mod P`: the crc register's multiplier for `8 i` zero bytes.
static ZERO_SHIFT: [u32; ZERO_TABLE_BYTES / 8 + 1] = {
    let mut t = [0u32; ZERO_TABLE_BYTES / 8 + 1];
    // x^64 by squaring x (bit 30) six times.
    let mut x64 = 1u32 << 30;
    let mut k = 0;
    while k < 6 {
        x64 = multmodp(x64, x64);
        k += 1;
    }
    t[0] = 1 << 31; // x^0
    let mut i = 1;
    while i < t.len() {
        t[i] = multmodp(t[i - 1], x64);
        i += 1;
    }
    t
};

/// `crc32c_append(crc, &[0; n])` without reading `n` zero bytes: appending zeros multiplies the
/// crc register by `x^(8n) mod P`, a table lookup and one carry-less multiplication for runs of
/// up to 8 KiB in multiples of 8 (padding records), a plain checksum of zeros otherwise.
pub(crate) fn crc_append_zeros(crc: u32, n: usize) -> u32 {
    if n.is_multiple_of(8) && n <= ZERO_TABLE_BYTES {
        return !multmodp(ZERO_SHIFT[n / 8], !crc);
    }
    const CHUNK: [u8; 4096] = [0; 4096];
    let mut crc = crc;
    let mut left = n;
    while left > 0 {
        let k = left.min(CHUNK.len());
        crc = crc32c::crc32c_append(crc, &CHUNK[..k]);
        left -= k;
    }
    crc
}

/// True when every byte of `b` is zero: an OR-reduction over 8-byte words, which the compiler
/// vectorises. It has no early exit (it reads all of `b`), which suits padding and other buffers
/// of a few KiB to a few hundred KiB.
pub fn all_zero(b: &[u8]) -> bool {
    let words = b.chunks_exact(8);
    let rest = words.remainder();
    let or = words.fold(0u64, |a, w| {
        a | u64::from_ne_bytes(w.try_into().expect("chunks_exact(8) yields 8 bytes"))
    });
    or == 0 && rest.iter().all(|&x| x == 0)
}

#[cfg(test)]
mod zero_crc_tests {
    use super::*;

    #[test]
    fn appending_zeros_matches_checksumming_them() {
        let zeros = vec![0u8; ZERO_TABLE_BYTES + 100];
        let mut crcs = vec![0u32, 1, 0xFFFF_FFFF, 0x1234_5678];
        crcs.push(crc32c::crc32c(b"ringlog"));
        for &c in &crcs {
            for n in (0..=ZERO_TABLE_BYTES + 24).chain([1, 3, 7, 9, 4095, 4097]) {
                assert_eq!(
                    crc_append_zeros(c, n),
                    crc32c::crc32c_append(c, &zeros[..n]),
                    "crc {c:#x}, {n} zeros"
                );
            }
        }
    }

    #[test]
    fn crc_at_matches_the_seeded_checksum() {
        let data: Vec<u8> = (0..700u32).map(|i| (i * 7 + i / 3) as u8).collect();
        for (id, epoch, off) in [
            (0, 0, 0),
            (1, u64::MAX, 4096),
            (77, 0x1234_5678_9ABC, 1 << 40),
        ] {
            let mut seed = [0u8; 24];
            seed[..8].copy_from_slice(&u64::to_le_bytes(id));
            seed[8..16].copy_from_slice(&u64::to_le_bytes(epoch));
            seed[16..].copy_from_slice(&u64::to_le_bytes(off));
            for n in (0..=300).chain([511, 512, 699, 700]) {
                assert_eq!(
                    crc_at(id, epoch, off, &data[..n]),
                    crc_with_seed(&seed, &data[..n]),
                    "{n} bytes"
                );
            }
        }
    }

    #[test]
    fn all_zero_finds_any_set_byte() {
        let mut b = vec![0u8; 300];
        assert!(all_zero(&b));
        assert!(all_zero(&[]));
        for i in [0, 63, 64, 200, 299] {
            b[i] = 0x10;
            assert!(!all_zero(&b), "byte {i}");
            b[i] = 0;
        }
    }
}
