//! Record framing: a 48-byte header followed by the payload, padded to 8 bytes.

use bytemuck::{Pod, Zeroable};

use crate::{all_zero, crc_append_zeros, crc_at, DecodeError, EncodeError};

/// Size of [`RecordHeader`] in bytes.
pub const RECORD_HEADER_LEN: usize = 48;
/// Every record starts at a multiple of this offset; its encoded length is padded to it.
pub const RECORD_ALIGN: usize = 8;
/// Longest key accepted, in bytes (the key length field is 16 bits).
pub const MAX_KEY_LEN: usize = u16::MAX as usize;
/// Longest record (header and payload) the format can express: 1 GiB.
pub const MAX_RECORD_LEN: usize = 1 << 30;
/// Payload length of the BeginTxn, CommitTxn and Checkpoint markers.
pub const MARKER_PAYLOAD_LEN: usize = 8;

/// Flag on a Write or Delete record: the record is a complete transaction by itself (no
/// BeginTxn/CommitTxn around it).
pub const FLAG_AUTOCOMMIT: u8 = 1;
/// Flag of a Write or Delete: the key belongs to the engine's reserved system key space (e.g. a
/// retention policy), not to the user's keys. Format version 2.
pub const FLAG_SYSTEM: u8 = 2;
const KNOWN_FLAGS: u8 = FLAG_AUTOCOMMIT | FLAG_SYSTEM;

/// The fixed header of every record, stored little-endian exactly as laid out here.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct RecordHeader {
    /// crc32c over (segment id, epoch, record offset) followed by bytes `4..len` of the record.
    pub crc: u32,
    /// Length of header plus payload, without the padding to [`RECORD_ALIGN`].
    pub len: u32,
    /// A [`RecordKind`] as a byte.
    pub kind: u8,
    /// Bit set of `FLAG_*`.
    pub flags: u8,
    /// Length of the key at the start of the payload (Write and Delete), else 0.
    pub key_len: u16,
    /// Offset in the segment of the first byte of the write batch this record was written in.
    /// Recovery uses it to tell a torn, unsynced tail from corruption of synced data.
    pub batch_start: u32,
    /// Log sequence number of the transaction the record belongs to (0 for padding).
    pub lsn: u64,
    /// Transaction id (0 for padding and checkpoints).
    pub txn_id: u64,
    /// Id of the engine run (open) that wrote the record.
    pub run_id: u64,
    /// Wall-clock time of the commit, nanoseconds since the Unix epoch.
    pub timestamp: u64,
}

const _: () = assert!(std::mem::size_of::<RecordHeader>() == RECORD_HEADER_LEN);
const _: () = assert!(std::mem::align_of::<RecordHeader>() == RECORD_ALIGN);

/// The kinds of record the log can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    /// Starts a multi-operation transaction; payload: op count (u32) and 4 zero bytes.
    BeginTxn = 1,
    /// Sets a key; payload: key then value.
    Write = 2,
    /// Removes a key; payload: key.
    Delete = 3,
    /// Commits the transaction started by the matching BeginTxn; payload: op count, 4 zero bytes.
    CommitTxn = 4,
    /// Abandons the transaction started by the matching BeginTxn; no payload.
    AbortTxn = 5,
    /// Marks that the state up to an LSN is captured elsewhere; payload: that LSN (u64).
    Checkpoint = 6,
    /// Fills the rest of a write batch up to a block boundary; payload: zeros.
    Padding = 7,
    /// An LSN lease: LSNs up to the payload (u64) may be handed out by the run that wrote it, so
    /// the next run starts above it even when a crash lost the commits that used them. LSN and
    /// transaction id 0. Format version 2.
    Lease = 8,
}

impl RecordKind {
    /// Parses a kind byte.
    pub fn from_u8(b: u8) -> Option<RecordKind> {
        Some(match b {
            1 => RecordKind::BeginTxn,
            2 => RecordKind::Write,
            3 => RecordKind::Delete,
            4 => RecordKind::CommitTxn,
            5 => RecordKind::AbortTxn,
            6 => RecordKind::Checkpoint,
            7 => RecordKind::Padding,
            8 => RecordKind::Lease,
            _ => return None,
        })
    }
}

/// Where a record lives: the checksum binds the record to all three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentPos {
    /// Id of the segment file.
    pub segment_id: u64,
    /// The database's epoch (a random id chosen when the database was created).
    pub epoch: u64,
    /// Byte offset of the record within the segment file.
    pub offset: u64,
}

impl SegmentPos {
    /// crc32c of this position's seed followed by `data`.
    #[inline]
    fn crc(&self, data: &[u8]) -> u32 {
        crc_at(self.segment_id, self.epoch, self.offset, data)
    }
}

/// What to encode. Build one with the constructors, then [`encode_record`].
#[derive(Clone, Copy, Debug)]
pub struct RecordSpec<'a> {
    /// Record kind.
    pub kind: RecordKind,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// LSN of the transaction.
    pub lsn: u64,
    /// Transaction id.
    pub txn_id: u64,
    /// Run id.
    pub run_id: u64,
    /// Commit timestamp (ns since the Unix epoch).
    pub timestamp: u64,
    /// Offset of the record's write batch in its segment.
    pub batch_start: u32,
    /// Key (Write, Delete), else empty.
    pub key: &'a [u8],
    /// Value (Write), else empty.
    pub value: &'a [u8],
    /// The 8-byte payload of BeginTxn, CommitTxn and Checkpoint records.
    pub marker: u64,
}

impl<'a> RecordSpec<'a> {
    fn new(
        kind: RecordKind,
        lsn: u64,
        txn_id: u64,
        run_id: u64,
        timestamp: u64,
        batch_start: u32,
    ) -> Self {
        RecordSpec {
            kind,
            flags: 0,
            lsn,
            txn_id,
            run_id,
            timestamp,
            batch_start,
            key: &[],
            value: &[],
            marker: 0,
        }
    }

    /// A Write of `key` = `value`.
    pub fn write(
        key: &'a [u8],
        value: &'a [u8],
        lsn: u64,
        txn_id: u64,
        run_id: u64,
        timestamp: u64,
        batch_start: u32,
    ) -> Self {
        RecordSpec {
            key,
            value,
            ..Self::new(
                RecordKind::Write,
                lsn,
                txn_id,
                run_id,
                timestamp,
                batch_start,
            )
        }
    }

    /// A Delete of `key`.
    pub fn delete(
        key: &'a [u8],
        lsn: u64,
        txn_id: u64,
        run_id: u64,
        timestamp: u64,
        batch_start: u32,
    ) -> Self {
        RecordSpec {
            key,
            ..Self::new(
                RecordKind::Delete,
                lsn,
                txn_id,
                run_id,
                timestamp,
                batch_start,
            )
        }
    }

    /// A BeginTxn or CommitTxn marker (per `kind`) for a transaction of `ops` operations.
    pub fn marker(
        kind: RecordKind,
        ops: u32,
        lsn: u64,
        txn_id: u64,
        run_id: u64,
        timestamp: u64,
        batch_start: u32,
    ) -> Self {
        RecordSpec {
            marker: ops as u64,
            ..Self::new(kind, lsn, txn_id, run_id, timestamp, batch_start)
        }
    }

    /// An AbortTxn marker.
    pub fn abort(lsn: u64, txn_id: u64, run_id: u64, timestamp: u64, batch_start: u32) -> Self {
        Self::new(
            RecordKind::AbortTxn,
            lsn,
            txn_id,
            run_id,
            timestamp,
            batch_start,
        )
    }

    /// A Checkpoint marker covering the state up to `upto_lsn`.
    pub fn checkpoint(
        upto_lsn: u64,
        lsn: u64,
        run_id: u64,
        timestamp: u64,
        batch_start: u32,
    ) -> Self {
        RecordSpec {
            marker: upto_lsn,
            ..Self::new(
                RecordKind::Checkpoint,
                lsn,
                0,
                run_id,
                timestamp,
                batch_start,
            )
        }
    }

    /// An LSN lease: the writing run may hand out LSNs up to `bound`.
    pub fn lease(bound: u64, run_id: u64, timestamp: u64, batch_start: u32) -> Self {
        RecordSpec {
            marker: bound,
            ..Self::new(RecordKind::Lease, 0, 0, run_id, timestamp, batch_start)
        }
    }

    /// Marks a Write or Delete as belonging to the engine's system key space ([`FLAG_SYSTEM`]).
    pub fn system(mut self) -> Self {
        self.flags |= FLAG_SYSTEM;
        self
    }

    /// Marks a Write or Delete as a complete single-operation transaction.
    pub fn autocommit(mut self) -> Self {
        self.flags |= FLAG_AUTOCOMMIT;
        self
    }

    fn payload_len(&self) -> usize {
        match self.kind {
            RecordKind::Write | RecordKind::Delete => self.key.len() + self.value.len(),
            RecordKind::BeginTxn
            | RecordKind::CommitTxn
            | RecordKind::Checkpoint
            | RecordKind::Lease => MARKER_PAYLOAD_LEN,
            RecordKind::AbortTxn | RecordKind::Padding => 0,
        }
    }
}

/// Bytes a Write record with these key and value lengths occupies, padding included.
#[inline]
pub const fn encoded_len(key_len: usize, value_len: usize) -> usize {
    (RECORD_HEADER_LEN + key_len + value_len).next_multiple_of(RECORD_ALIGN)
}

/// Encodes `spec` at the start of `dst` for the position `pos`, zeroing the alignment padding.
/// Returns the encoded length (a multiple of [`RECORD_ALIGN`]).
///
/// # Errors
///
/// [`EncodeError`](crate::EncodeError) when the record cannot be encoded: a bad key length, a payload its kind does not carry, an unknown flag, an unaligned offset, an id above [`crate::MAX_ID`], more than [`MAX_RECORD_LEN`] bytes, or a buffer too small.
pub fn encode_record(
    dst: &mut [u8],
    spec: &RecordSpec<'_>,
    pos: SegmentPos,
) -> Result<usize, EncodeError> {
    if !pos.offset.is_multiple_of(RECORD_ALIGN as u64) {
        return Err(EncodeError::BadOffset(pos.offset));
    }
    match spec.kind {
        RecordKind::Write | RecordKind::Delete => {
            if spec.key.is_empty() || spec.key.len() > MAX_KEY_LEN {
                return Err(EncodeError::BadKeyLength(spec.key.len()));
            }
            if spec.kind == RecordKind::Delete && !spec.value.is_empty() {
                return Err(EncodeError::BadPayload("a delete carries no value"));
            }
        }
        RecordKind::Padding => {
            return Err(EncodeError::BadPayload("use encode_padding for padding"))
        }
        _ => {
            if !spec.key.is_empty() || !spec.value.is_empty() {
                return Err(EncodeError::BadPayload("a marker carries no key or value"));
            }
            if spec.flags != 0 {
                return Err(EncodeError::BadPayload(
                    "flags apply to writes and deletes only",
                ));
            }
        }
    }
    if spec.flags & !KNOWN_FLAGS != 0 {
        return Err(EncodeError::BadPayload("unknown flag"));
    }
    if spec.lsn > crate::MAX_ID || spec.txn_id > crate::MAX_ID || spec.run_id > crate::MAX_ID {
        return Err(EncodeError::BadPayload(
            "LSN, transaction id or run id above the format's maximum",
        ));
    }
    let len = RECORD_HEADER_LEN + spec.payload_len();
    if len > MAX_RECORD_LEN {
        return Err(EncodeError::TooLarge(len));
    }
    let total = len.next_multiple_of(RECORD_ALIGN);
    if dst.len() < total {
        return Err(EncodeError::BufferTooSmall {
            needed: total,
            available: dst.len(),
        });
    }
    let header = RecordHeader {
        crc: 0,
        len: len as u32,
        kind: spec.kind as u8,
        flags: spec.flags,
        key_len: spec.key.len() as u16,
        batch_start: spec.batch_start,
        lsn: spec.lsn,
        txn_id: spec.txn_id,
        run_id: spec.run_id,
        timestamp: spec.timestamp,
    };
    let out = &mut dst[..total];
    out[..RECORD_HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&header));
    let payload = &mut out[RECORD_HEADER_LEN..len];
    match spec.kind {
        RecordKind::Write | RecordKind::Delete => {
            payload[..spec.key.len()].copy_from_slice(spec.key);
            payload[spec.key.len()..].copy_from_slice(spec.value);
        }
        RecordKind::BeginTxn
        | RecordKind::CommitTxn
        | RecordKind::Checkpoint
        | RecordKind::Lease => {
            payload.copy_from_slice(&spec.marker.to_le_bytes());
        }
        RecordKind::AbortTxn | RecordKind::Padding => {}
    }
    out[len..].fill(0);
    let crc = pos.crc(&out[4..len]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    debug_assert!(
        decode_record(out, 0, pos).is_ok(),
        "encoded record must decode"
    );
    Ok(total)
}

/// Encodes a Padding record filling exactly `dst` (whose length must be a multiple of
/// [`RECORD_ALIGN`] and at least [`RECORD_HEADER_LEN`]).
///
/// # Errors
///
/// [`EncodeError`](crate::EncodeError) for a length that is not an aligned multiple of 8 of at least a header, or an unaligned offset.
pub fn encode_padding(
    dst: &mut [u8],
    run_id: u64,
    batch_start: u32,
    pos: SegmentPos,
) -> Result<usize, EncodeError> {
    let len = dst.len();
    if len < RECORD_HEADER_LEN || !len.is_multiple_of(RECORD_ALIGN) || len > MAX_RECORD_LEN {
        return Err(EncodeError::BadPayload(
            "padding length must be an aligned multiple of 8 of at least a header",
        ));
    }
    if !pos.offset.is_multiple_of(RECORD_ALIGN as u64) {
        return Err(EncodeError::BadOffset(pos.offset));
    }
    let header = RecordHeader {
        crc: 0,
        len: len as u32,
        kind: RecordKind::Padding as u8,
        flags: 0,
        key_len: 0,
        batch_start,
        lsn: 0,
        txn_id: 0,
        run_id,
        timestamp: 0,
    };
    dst[..RECORD_HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&header));
    dst[RECORD_HEADER_LEN..].fill(0);
    let crc = crc_append_zeros(pos.crc(&dst[4..RECORD_HEADER_LEN]), len - RECORD_HEADER_LEN);
    dst[..4].copy_from_slice(&crc.to_le_bytes());
    Ok(len)
}

/// A decoded record: the header by value and the payload borrowed from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The header as stored.
    pub header: RecordHeader,
    /// Its kind.
    pub kind: RecordKind,
    /// Absolute offset of the record in its segment.
    pub offset: u64,
    /// The key (Write, Delete), else empty.
    pub key: &'a [u8],
    /// The value (Write), else empty.
    pub value: &'a [u8],
    /// The 8-byte marker payload (BeginTxn/CommitTxn op count, Checkpoint LSN), else 0.
    pub marker: u64,
}

impl Record<'_> {
    /// Bytes the record occupies, padding included: the next record starts this far on.
    pub fn encoded_len(&self) -> usize {
        (self.header.len as usize).next_multiple_of(RECORD_ALIGN)
    }

    /// True for a Write or Delete carrying [`FLAG_AUTOCOMMIT`].
    pub fn is_autocommit(&self) -> bool {
        self.header.flags & FLAG_AUTOCOMMIT != 0
    }
}

/// Decodes the record starting at `buf[at..]`. `pos` names where `buf[at]` lives on disk
/// (`pos.offset` is the absolute offset of `buf[at]`), which the checksum must match.
///
/// Never panics, whatever the bytes; never allocates.
///
/// # Errors
///
/// A [`DecodeError`](crate::DecodeError) naming the record's offset: zeroed or truncated input, a bad length, a checksum mismatch, an unknown kind, a malformed layout or an id out of range (FORMAT.md §5.6 lists the checks in order).
pub fn decode_record(buf: &[u8], at: usize, pos: SegmentPos) -> Result<Record<'_>, DecodeError> {
    let offset = pos.offset;
    let rest = buf.get(at..).unwrap_or(&[]);
    if rest.len() < RECORD_HEADER_LEN {
        if rest.iter().all(|&b| b == 0) && !rest.is_empty() {
            return Err(DecodeError::Zeroed { offset });
        }
        return Err(DecodeError::Truncated {
            offset,
            needed: RECORD_HEADER_LEN as u64,
            available: rest.len() as u64,
        });
    }
    let header: RecordHeader = bytemuck::pod_read_unaligned(&rest[..RECORD_HEADER_LEN]);
    if header == RecordHeader::zeroed() {
        return Err(DecodeError::Zeroed { offset });
    }
    let len = header.len as usize;
    if !(RECORD_HEADER_LEN..=MAX_RECORD_LEN).contains(&len) {
        return Err(DecodeError::BadLength {
            offset,
            len: len as u64,
        });
    }
    if !offset.is_multiple_of(RECORD_ALIGN as u64) {
        return Err(DecodeError::Malformed {
            offset,
            reason: "record offset not 8-byte aligned",
        });
    }
    if rest.len() < len {
        return Err(DecodeError::Truncated {
            offset,
            needed: len as u64,
            available: rest.len() as u64,
        });
    }
    // Padding is zeros: checking that they are is cheaper than checksumming them, and the crc of
    // a run of zeros follows from its length. The result is the same crc either way.
    let computed =
        if header.kind == RecordKind::Padding as u8 && all_zero(&rest[RECORD_HEADER_LEN..len]) {
            crc_append_zeros(
                pos.crc(&rest[4..RECORD_HEADER_LEN]),
                len - RECORD_HEADER_LEN,
            )
        } else {
            pos.crc(&rest[4..len])
        };
    if computed != header.crc {
        return Err(DecodeError::Checksum {
            offset,
            stored: header.crc,
            computed,
        });
    }
    let kind = RecordKind::from_u8(header.kind).ok_or(DecodeError::UnknownKind {
        offset,
        kind: header.kind,
    })?;
    let payload = &rest[RECORD_HEADER_LEN..len];
    let malformed = |reason| Err(DecodeError::Malformed { offset, reason });
    if header.flags & !KNOWN_FLAGS != 0 {
        return malformed("unknown flag bits");
    }
    let key_len = header.key_len as usize;
    let (key, value, marker) = match kind {
        RecordKind::Write | RecordKind::Delete => {
            if key_len == 0 || key_len > payload.len() {
                return malformed("key length outside the payload");
            }
            if kind == RecordKind::Delete && key_len != payload.len() {
                return malformed("a delete carries a value");
            }
            (&payload[..key_len], &payload[key_len..], 0)
        }
        RecordKind::BeginTxn
        | RecordKind::CommitTxn
        | RecordKind::Checkpoint
        | RecordKind::Lease => {
            if header.flags != 0 || key_len != 0 {
                return malformed("a marker carries no flags and no key");
            }
            if payload.len() != MARKER_PAYLOAD_LEN {
                return malformed("marker payload must be exactly 8 bytes");
            }
            let mut m = [0u8; 8];
            m.copy_from_slice(payload);
            let marker = u64::from_le_bytes(m);
            match kind {
                RecordKind::BeginTxn | RecordKind::CommitTxn if marker > u32::MAX as u64 => {
                    return malformed("transaction op count exceeds 32 bits");
                }
                RecordKind::Lease if marker > crate::MAX_ID => {
                    return Err(DecodeError::OutOfRange {
                        offset,
                        field: "lease bound",
                        value: marker,
                        max: crate::MAX_ID,
                    });
                }
                RecordKind::Lease if header.lsn != 0 || header.txn_id != 0 => {
                    return malformed("a lease has LSN and transaction id 0");
                }
                _ => {}
            }
            (&[][..], &[][..], marker)
        }
        RecordKind::AbortTxn => {
            if !payload.is_empty() || key_len != 0 || header.flags != 0 {
                return malformed("an abort carries no payload");
            }
            (&[][..], &[][..], 0)
        }
        RecordKind::Padding => {
            if key_len != 0 || header.flags != 0 {
                return malformed("padding carries no key or flags");
            }
            (&[][..], &[][..], 0)
        }
    };
    if header.batch_start as u64 > offset {
        return malformed("batch starts after the record");
    }
    for (field, value) in [
        ("LSN", header.lsn),
        ("transaction id", header.txn_id),
        ("run id", header.run_id),
    ] {
        if value > crate::MAX_ID {
            return Err(DecodeError::OutOfRange {
                offset,
                field,
                value,
                max: crate::MAX_ID,
            });
        }
    }
    if kind == RecordKind::Checkpoint && marker > crate::MAX_ID {
        return Err(DecodeError::OutOfRange {
            offset,
            field: "checkpoint LSN",
            value: marker,
            max: crate::MAX_ID,
        });
    }
    Ok(Record {
        header,
        kind,
        offset,
        key,
        value,
        marker,
    })
}

/// Whether `h`, read at absolute offset `offset` with `avail` bytes of input from there, could
/// head a valid record: every check that needs no checksum. A record whose header fails these
/// cannot decode, so searches skip it without paying for a checksum.
fn plausible(h: &RecordHeader, offset: u64, avail: usize) -> bool {
    let len = h.len as usize;
    let Some(kind) = RecordKind::from_u8(h.kind) else {
        return false;
    };
    let payload = len.wrapping_sub(RECORD_HEADER_LEN);
    let shape = match kind {
        RecordKind::Write => h.key_len != 0 && (h.key_len as usize) <= payload,
        RecordKind::Delete => {
            h.key_len != 0 && h.key_len as usize == payload && h.flags & !KNOWN_FLAGS == 0
        }
        RecordKind::BeginTxn | RecordKind::CommitTxn | RecordKind::Checkpoint => {
            h.flags == 0 && h.key_len == 0 && payload == MARKER_PAYLOAD_LEN
        }
        RecordKind::Lease => {
            h.flags == 0
                && h.key_len == 0
                && payload == MARKER_PAYLOAD_LEN
                && h.lsn == 0
                && h.txn_id == 0
        }
        RecordKind::AbortTxn => h.flags == 0 && h.key_len == 0 && payload == 0,
        RecordKind::Padding => h.flags == 0 && h.key_len == 0,
    };
    shape
        && (RECORD_HEADER_LEN..=MAX_RECORD_LEN).contains(&len)
        && len <= avail
        && h.flags & !KNOWN_FLAGS == 0
        && h.batch_start as u64 <= offset
        && h.lsn <= crate::MAX_ID
        && h.txn_id <= crate::MAX_ID
        && h.run_id <= crate::MAX_ID
}

/// Searches `buf` from index `from` (8-aligned relative to `base`, the absolute offset of
/// `buf[0]`) for the first offset holding a record that decodes, and returns it. Headers that
/// fail the checks needing no checksum are skipped without one, but a crafted input can still
/// make this quadratic: recovery uses [`find_later_batch`], which is linear.
pub fn find_next_valid(
    buf: &[u8],
    from: usize,
    segment_id: u64,
    epoch: u64,
    base: u64,
) -> Option<Record<'_>> {
    let mut at = from.next_multiple_of(RECORD_ALIGN);
    while at + RECORD_HEADER_LEN <= buf.len() {
        // Fast skip over zero words: a record header is never all zero in its first 8 bytes
        // (len >= 48).
        if buf[at..at + 8] == [0u8; 8] {
            at += RECORD_ALIGN;
            continue;
        }
        let offset = base + at as u64;
        let h: RecordHeader = bytemuck::pod_read_unaligned(&buf[at..at + RECORD_HEADER_LEN]);
        if plausible(&h, offset, buf.len() - at) {
            let pos = SegmentPos {
                segment_id,
                epoch,
                offset,
            };
            if let Ok(rec) = decode_record(buf, at, pos) {
                return Some(rec);
            }
        }
        at += RECORD_ALIGN;
    }
    None
}

/// Write batches start at multiples of this offset (the smallest block size the engine aligns
/// its writes to), so the batch start recorded in a record header is one.
pub const BATCH_ALIGN: u64 = 512;

/// What a [`find_later_batch`] search cost: recovery's time on a damaged tail is bounded by it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchCost {
    /// Offsets whose header passed the checks that need no checksum.
    pub candidates: u64,
    /// Checksums computed.
    pub checksums: u64,
    /// Bytes those checksums covered.
    pub checksum_bytes: u64,
}

/// The answer of [`find_later_batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaterBatch<'a> {
    /// A valid record of a batch that started after the damage: the damaged bytes were in a batch
    /// synced before that one was written (corruption, not a torn tail).
    Found(Record<'a>),
    /// No valid record of a later batch: the damage is a torn tail.
    None,
    /// The search gave up after checksumming its budget of bytes without an answer: the bytes
    /// after the damage are full of record-like headers, which no crash produces.
    Undecided,
}

/// Looks in `buf` (holding a segment from absolute offset `base`) for a valid record, at or after
/// index `from`, that belongs to a write batch starting after absolute offset `damage`: what tells
/// corruption of synced data (such a record exists) from a torn tail (none does).
///
/// Linear in `buf.len()` whatever the bytes: a header is checksummed only if it passes every
/// cheap check (including a batch start that is [`BATCH_ALIGN`]-aligned, after `damage` and not
/// after the record), and the checksums computed cover at most `budget` bytes in total; past that
/// the answer is [`LaterBatch::Undecided`]. Recovery passes twice the segment length. Never
/// panics.
pub fn find_later_batch(
    buf: &[u8],
    from: usize,
    damage: u64,
    segment_id: u64,
    epoch: u64,
    base: u64,
    budget: u64,
) -> (LaterBatch<'_>, SearchCost) {
    let mut cost = SearchCost::default();
    let mut at = from.next_multiple_of(RECORD_ALIGN);
    while at + RECORD_HEADER_LEN <= buf.len() {
        if buf[at..at + 8] == [0u8; 8] {
            at += RECORD_ALIGN;
            continue;
        }
        let offset = base + at as u64;
        // The header's second word holds kind, flags, key length and batch start: most random
        // words fail on it alone, before the whole header is read.
        let w = u64::from_le_bytes(buf[at + 8..at + 16].try_into().expect("8 bytes"));
        let (kind, flags, batch) = (w as u8, (w >> 8) as u8, w >> 32);
        if kind == 0
            || kind > RecordKind::Lease as u8
            || flags & !KNOWN_FLAGS != 0
            || batch <= damage
            || batch > offset
            || !batch.is_multiple_of(BATCH_ALIGN)
        {
            at += RECORD_ALIGN;
            continue;
        }
        let h: RecordHeader = bytemuck::pod_read_unaligned(&buf[at..at + RECORD_HEADER_LEN]);
        if plausible(&h, offset, buf.len() - at) {
            cost.candidates += 1;
            let len = h.len as u64;
            if cost.checksum_bytes + len > budget {
                return (LaterBatch::Undecided, cost);
            }
            cost.checksums += 1;
            cost.checksum_bytes += len;
            let pos = SegmentPos {
                segment_id,
                epoch,
                offset,
            };
            if let Ok(rec) = decode_record(buf, at, pos) {
                return (LaterBatch::Found(rec), cost);
            }
        }
        at += RECORD_ALIGN;
    }
    (LaterBatch::None, cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POS: SegmentPos = SegmentPos {
        segment_id: 3,
        epoch: 0xfeed,
        offset: 4096,
    };

    fn all_kinds() -> Vec<RecordSpec<'static>> {
        vec![
            RecordSpec::marker(RecordKind::BeginTxn, 3, 10, 5, 1, 77, 4096),
            RecordSpec::write(b"k", b"v", 10, 5, 1, 77, 4096),
            RecordSpec::write(b"key2", b"", 10, 5, 1, 77, 4096),
            RecordSpec::delete(b"gone", 10, 5, 1, 77, 4096),
            RecordSpec::marker(RecordKind::CommitTxn, 3, 10, 5, 1, 77, 4096),
            RecordSpec::abort(11, 6, 1, 78, 4096),
            RecordSpec::checkpoint(9, 12, 1, 79, 4096),
            RecordSpec::write(b"a", &[7; 1000], 13, 7, 2, 80, 4096).autocommit(),
            RecordSpec::delete(b"a", 14, 8, 2, 81, 4096).autocommit(),
        ]
    }

    fn encode(spec: &RecordSpec<'_>, pos: SegmentPos) -> Vec<u8> {
        let mut buf = vec![0xAAu8; 2048];
        let n = encode_record(&mut buf, spec, pos).unwrap();
        assert_eq!(n % RECORD_ALIGN, 0);
        buf.truncate(n);
        buf
    }

    #[test]
    fn round_trip_every_kind() {
        for spec in all_kinds() {
            let bytes = encode(&spec, POS);
            let rec = decode_record(&bytes, 0, POS).unwrap();
            assert_eq!(rec.kind, spec.kind);
            assert_eq!(rec.key, spec.key);
            assert_eq!(rec.value, spec.value);
            assert_eq!(rec.marker, spec.marker);
            assert_eq!(rec.header.lsn, spec.lsn);
            assert_eq!(rec.header.txn_id, spec.txn_id);
            assert_eq!(rec.header.run_id, spec.run_id);
            assert_eq!(rec.header.timestamp, spec.timestamp);
            assert_eq!(rec.header.flags, spec.flags);
            assert_eq!(rec.encoded_len(), bytes.len());
            assert_eq!(rec.offset, POS.offset);
        }
        let mut pad = vec![0xFFu8; 512];
        encode_padding(&mut pad, 1, 4096, POS).unwrap();
        let rec = decode_record(&pad, 0, POS).unwrap();
        assert_eq!(rec.kind, RecordKind::Padding);
        assert_eq!(rec.encoded_len(), 512);
    }

    #[test]
    fn crc_detects_every_flipped_bit() {
        for spec in all_kinds() {
            let bytes = encode(&spec, POS);
            let len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
            for bit in 0..len * 8 {
                let mut b = bytes.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                let err = decode_record(&b, 0, POS).expect_err("a flipped bit must be detected");
                assert_eq!(err.offset(), POS.offset, "error must carry the offset");
            }
        }
    }

    #[test]
    fn bound_to_segment_epoch_and_offset() {
        let bytes = encode(&all_kinds()[1], POS);
        for other in [
            SegmentPos {
                segment_id: 4,
                ..POS
            },
            SegmentPos { epoch: 1, ..POS },
            SegmentPos {
                offset: 4104,
                ..POS
            },
        ] {
            assert!(matches!(
                decode_record(&bytes, 0, other),
                Err(DecodeError::Checksum { .. })
            ));
        }
    }

    #[test]
    fn truncated_records_fail_with_offset() {
        let bytes = encode(&RecordSpec::write(b"key", &[1; 100], 1, 1, 1, 1, 4096), POS);
        for cut in 0..bytes.len() - 4 {
            let err = decode_record(&bytes[..cut], 0, POS).unwrap_err();
            assert_eq!(err.offset(), POS.offset);
        }
    }

    #[test]
    fn impossible_length_fields() {
        let mut bytes = encode(&all_kinds()[1], POS);
        bytes[4..8].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
        assert_eq!(
            decode_record(&bytes, 0, POS),
            Err(DecodeError::BadLength {
                offset: 4096,
                len: 0xFFFF_FFFF
            })
        );
        bytes[4..8].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(
            decode_record(&bytes, 0, POS),
            Err(DecodeError::BadLength {
                offset: 4096,
                len: 7
            })
        );
    }

    #[test]
    fn zeros_and_garbage_after_a_record() {
        let mut bytes = encode(&all_kinds()[1], POS);
        let n = bytes.len();
        bytes.extend_from_slice(&[0u8; 200]);
        let next = SegmentPos {
            offset: POS.offset + n as u64,
            ..POS
        };
        assert!(decode_record(&bytes, 0, POS).is_ok());
        assert_eq!(
            decode_record(&bytes, n, next),
            Err(DecodeError::Zeroed {
                offset: next.offset
            })
        );
        let mut state = 0x1234_5678u32;
        for b in &mut bytes[n..] {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *b = state as u8;
        }
        let err = decode_record(&bytes, n, next).unwrap_err();
        assert_eq!(err.offset(), next.offset);
    }

    #[test]
    fn encode_rejects_bad_input() {
        let mut buf = vec![0u8; 256];
        assert_eq!(
            encode_record(&mut buf, &RecordSpec::write(b"", b"v", 1, 1, 1, 1, 0), POS),
            Err(EncodeError::BadKeyLength(0))
        );
        assert!(matches!(
            encode_record(
                &mut buf[..10],
                &RecordSpec::write(b"k", b"v", 1, 1, 1, 1, 0),
                POS
            ),
            Err(EncodeError::BufferTooSmall { .. })
        ));
        assert!(matches!(
            encode_record(
                &mut buf,
                &RecordSpec::write(b"k", b"v", 1, 1, 1, 1, 0),
                SegmentPos { offset: 3, ..POS }
            ),
            Err(EncodeError::BadOffset(3))
        ));
        let long = vec![1u8; MAX_KEY_LEN + 1];
        assert_eq!(
            encode_record(&mut buf, &RecordSpec::write(&long, b"", 1, 1, 1, 1, 0), POS),
            Err(EncodeError::BadKeyLength(MAX_KEY_LEN + 1))
        );
    }

    #[test]
    fn find_next_valid_skips_garbage() {
        let rec = encode(
            &all_kinds()[1],
            SegmentPos {
                offset: 4096 + 512,
                ..POS
            },
        );
        let mut buf = vec![0u8; 2048];
        buf[8..40].fill(0x5A);
        buf[512..512 + rec.len()].copy_from_slice(&rec);
        let found = find_next_valid(&buf, 0, POS.segment_id, POS.epoch, 4096).unwrap();
        assert_eq!(found.offset, 4096 + 512);
        assert!(find_next_valid(&buf, 520, POS.segment_id, POS.epoch, 4096).is_none());
    }

    /// xorshift64*: deterministic bytes for the search tests.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    const MIB4: usize = 4 << 20;

    /// Issue 8.3: random bytes after damage cost (almost) no checksums: their headers fail the
    /// cheap checks.
    #[test]
    fn later_batch_search_over_random_garbage_computes_almost_no_checksum() {
        for seed in 1..=4 {
            let buf = noise(seed, MIB4);
            let (found, cost) =
                find_later_batch(&buf, 8, 0, POS.segment_id, POS.epoch, 0, 2 * MIB4 as u64);
            assert_eq!(found, LaterBatch::None, "seed {seed}");
            assert!(cost.checksums <= 2, "seed {seed}: {cost:?}");
        }
    }

    /// Issue 8.3: a crafted tail in which every 8-byte offset holds a plausible header claiming
    /// the rest of the file costs at most the budget, not a checksum of the rest per offset.
    #[test]
    fn later_batch_search_on_crafted_headers_stays_within_its_budget() {
        let mut buf = vec![0u8; MIB4];
        let mut at = 8;
        while at + RECORD_HEADER_LEN <= buf.len() {
            let h = RecordHeader {
                crc: 0xDEAD_BEEF,
                len: (buf.len() - at) as u32,
                kind: RecordKind::Padding as u8,
                flags: 0,
                key_len: 0,
                batch_start: 512,
                lsn: 1,
                txn_id: 0,
                run_id: 1,
                timestamp: 0,
            };
            buf[at..at + RECORD_HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&h));
            at += RECORD_HEADER_LEN;
        }
        let budget = 2 * MIB4 as u64;
        let (found, cost) = find_later_batch(&buf, 8, 0, POS.segment_id, POS.epoch, 0, budget);
        assert_eq!(found, LaterBatch::Undecided);
        assert!(cost.checksum_bytes <= budget, "{cost:?}");
        assert!(cost.checksums >= 2, "{cost:?}");
    }

    /// A valid record of a later batch is found behind garbage; one of the damaged batch (batch
    /// start not after the damage) is not.
    #[test]
    fn later_batch_search_finds_only_later_batches() {
        let mut buf = noise(9, 64 << 10);
        let later = 32 << 10;
        let spec = RecordSpec::write(b"k", b"v", 10, 5, 1, 77, later as u32).autocommit();
        let pos = SegmentPos {
            segment_id: POS.segment_id,
            epoch: POS.epoch,
            offset: later as u64,
        };
        let rec = encode(&spec, pos);
        buf[later..later + rec.len()].copy_from_slice(&rec);
        let (found, _) = find_later_batch(&buf, 4096, 4096, POS.segment_id, POS.epoch, 0, 1 << 20);
        match found {
            LaterBatch::Found(r) => assert_eq!(r.offset, later as u64),
            other => panic!("expected the later batch, got {other:?}"),
        }
        // Damage after that batch started: the record is part of the damaged batch.
        let (found, _) = find_later_batch(
            &buf,
            4096,
            later as u64,
            POS.segment_id,
            POS.epoch,
            0,
            1 << 20,
        );
        assert_eq!(found, LaterBatch::None);
    }
}
