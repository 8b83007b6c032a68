//! Record framing.
//!
//! Format version 4 (the *lean* layout, [`Layout::Lean`]): a 24-byte header followed by the
//! payload, padded to 8 bytes. The run id and the commit time are stored once per write batch, in
//! the batch's first record ([`RecordKind::BatchHead`]); a transaction's id is its LSN.
//! Versions 1–3 (the *wide* layout, [`Layout::Wide`]) repeat the transaction id, run id and
//! timestamp in a 48-byte header per record; this crate still decodes them.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::{all_zero, crc_append_zeros, crc_at, DecodeError, EncodeError};

/// Size of [`RecordHeader`] in bytes: the header of every record of format version 4.
pub const RECORD_HEADER_LEN: usize = 24;
/// Size of a record header of format versions 1–3 ([`Layout::Wide`]): [`RecordHeader`] followed
/// by the transaction id, run id and timestamp (`u64` each).
pub const WIDE_RECORD_HEADER_LEN: usize = 48;
/// Every record starts at a multiple of this offset; its encoded length is padded to it.
pub const RECORD_ALIGN: usize = 8;
/// Longest key accepted, in bytes (the key length field is 16 bits).
pub const MAX_KEY_LEN: usize = u16::MAX as usize;
/// Longest record (header and payload) the format can express: 1 GiB.
pub const MAX_RECORD_LEN: usize = 1 << 30;
/// Payload length of the BeginTxn, CommitTxn, Checkpoint and Lease markers.
pub const MARKER_PAYLOAD_LEN: usize = 8;
/// Payload length of a [`RecordKind::BatchHead`] (format version 5): run id, timestamp and the
/// durable floor ([`Record::marker`]), `u64` each.
pub const BATCH_HEAD_PAYLOAD_LEN: usize = 24;
/// Payload length of a format-4 [`RecordKind::BatchHead`]: run id and timestamp only.
pub const BATCH_HEAD_PAYLOAD_LEN_V4: usize = 16;
/// Bytes a [`RecordKind::BatchHead`] occupies: every write batch of format versions 4 to 6
/// starts with one (40 bytes in version 4, 48 in versions 5 and 6).
pub const BATCH_HEAD_LEN: usize = RECORD_HEADER_LEN + BATCH_HEAD_PAYLOAD_LEN;
/// Bytes a format-4 [`RecordKind::BatchHead`] occupies.
pub const BATCH_HEAD_LEN_V4: usize = RECORD_HEADER_LEN + BATCH_HEAD_PAYLOAD_LEN_V4;
/// [`RecordSpec::marker`] of a batch head to be encoded as format 4 wrote it (16 bytes of
/// payload, no durable floor): for tools and tests that need a version-4 segment's bytes.
const V4_HEAD: u64 = u64::MAX;

/// Flag on a Write or Delete record: the record is a complete transaction by itself (no
/// BeginTxn/CommitTxn around it).
pub const FLAG_AUTOCOMMIT: u8 = 1;
/// Flag of a Write or Delete: the key belongs to the engine's reserved system key space (e.g. a
/// retention policy), not to the user's keys. Format version 2.
pub const FLAG_SYSTEM: u8 = 2;
/// Flag of a Write: a *relocated* value — a copy of a version's value written by value-log
/// garbage collection, carrying the version's original LSN. Not a transaction: recovery never
/// applies it; a checkpoint may refer to it for the version's value. Never with
/// [`FLAG_AUTOCOMMIT`] or [`FLAG_SYSTEM`]. Format version 6.
pub const FLAG_RELOCATED: u8 = 4;
const KNOWN_FLAGS: u8 = FLAG_AUTOCOMMIT | FLAG_SYSTEM | FLAG_RELOCATED;

/// Which record layout a segment holds, by its format version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Format versions 1–3: 48-byte headers carrying the transaction id, run id and timestamp
    /// in every record; no batch heads.
    Wide,
    /// Format versions 4 to 6: 24-byte headers; run id and timestamp once per write batch, in
    /// its [`RecordKind::BatchHead`]; the transaction id is the LSN. From version 5 the batch
    /// head also records the durable floor ([`Record::marker`]); version 4's head has none.
    Lean,
}

impl Layout {
    /// The layout of a segment of format `version`, or `None` for a version this crate does
    /// not read.
    pub const fn for_version(version: u32) -> Option<Layout> {
        match version {
            1..=3 => Some(Layout::Wide),
            4..=6 => Some(Layout::Lean),
            _ => None,
        }
    }

    /// Bytes of a record header in this layout.
    pub const fn header_len(self) -> usize {
        match self {
            Layout::Wide => WIDE_RECORD_HEADER_LEN,
            Layout::Lean => RECORD_HEADER_LEN,
        }
    }

    /// The highest kind byte this layout defines.
    const fn max_kind(self) -> u8 {
        match self {
            Layout::Wide => RecordKind::Lease as u8,
            Layout::Lean => RecordKind::BatchHead as u8,
        }
    }
}

/// The fixed header of every record (the first 24 bytes of a wide one), little-endian by type:
/// the bytes are the same on every host.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
pub struct RecordHeader {
    /// crc32c over (segment id, epoch, record offset) followed by bytes `4..len` of the record.
    pub crc: U32,
    /// Length of header plus payload, without the padding to [`RECORD_ALIGN`].
    pub len: U32,
    /// A [`RecordKind`] as a byte.
    pub kind: u8,
    /// Bit set of `FLAG_*`.
    pub flags: u8,
    /// Length of the key at the start of the payload (Write and Delete), else 0.
    pub key_len: U16,
    /// Offset in the segment of the first byte of the write batch this record was written in.
    /// Recovery uses it to tell a torn, unsynced tail from corruption of synced data.
    pub batch_start: U32,
    /// Log sequence number of the transaction the record belongs to (0 for padding, leases and
    /// batch heads).
    pub lsn: U64,
}

/// The three fields a wide header (versions 1–3) has after [`RecordHeader`].
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
struct WideTail {
    txn_id: U64,
    run_id: U64,
    timestamp: U64,
}

const _: () = assert!(std::mem::size_of::<RecordHeader>() == RECORD_HEADER_LEN);
const _: () =
    assert!(RECORD_HEADER_LEN + std::mem::size_of::<WideTail>() == WIDE_RECORD_HEADER_LEN);

/// The per-record ids of a wide record (versions 1–3), for [`encode_record_wide`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WideIds {
    /// Transaction id (0 for padding, checkpoints and leases).
    pub txn_id: u64,
    /// Run id.
    pub run_id: u64,
    /// Commit time, ns since the Unix epoch.
    pub timestamp: u64,
}

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
    /// the next run starts above it even when a crash lost the commits that used them. LSN (and
    /// in the wide layout transaction id) 0. Format version 2.
    Lease = 8,
    /// The first record of every write batch (format version 4): the run id of the run that
    /// wrote the batch and the batch's commit time (`u64` each), which hold for every record of
    /// the batch. LSN 0, no flags, no key; it sits at its batch's start.
    BatchHead = 9,
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
            9 => RecordKind::BatchHead,
            _ => return None,
        })
    }

    /// Whether records of this kind belong to a transaction (and so carry its LSN).
    pub fn in_transaction(self) -> bool {
        matches!(
            self,
            RecordKind::BeginTxn
                | RecordKind::Write
                | RecordKind::Delete
                | RecordKind::CommitTxn
                | RecordKind::AbortTxn
        )
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
    /// LSN of the transaction (0 for leases and batch heads).
    pub lsn: u64,
    /// Offset of the record's write batch in its segment.
    pub batch_start: u32,
    /// Key (Write, Delete), else empty.
    pub key: &'a [u8],
    /// Value (Write), else empty.
    pub value: &'a [u8],
    /// The 8-byte payload of BeginTxn, CommitTxn, Checkpoint and Lease records; a batch head's
    /// durable floor ([`RecordSpec::batch_head`]).
    pub marker: u64,
    /// Run id of a [`RecordKind::BatchHead`], else 0.
    pub run_id: u64,
    /// Commit time (ns since the Unix epoch) of a [`RecordKind::BatchHead`], else 0.
    pub timestamp: u64,
}

impl<'a> RecordSpec<'a> {
    fn new(kind: RecordKind, lsn: u64, batch_start: u32) -> Self {
        RecordSpec {
            kind,
            flags: 0,
            lsn,
            batch_start,
            key: &[],
            value: &[],
            marker: 0,
            run_id: 0,
            timestamp: 0,
        }
    }

    /// A Write of `key` = `value`.
    pub fn write(key: &'a [u8], value: &'a [u8], lsn: u64, batch_start: u32) -> Self {
        RecordSpec {
            key,
            value,
            ..Self::new(RecordKind::Write, lsn, batch_start)
        }
    }

    /// A Delete of `key`.
    pub fn delete(key: &'a [u8], lsn: u64, batch_start: u32) -> Self {
        RecordSpec {
            key,
            ..Self::new(RecordKind::Delete, lsn, batch_start)
        }
    }

    /// A BeginTxn or CommitTxn marker (per `kind`) for a transaction of `ops` operations.
    pub fn marker(kind: RecordKind, ops: u32, lsn: u64, batch_start: u32) -> Self {
        RecordSpec {
            marker: ops as u64,
            ..Self::new(kind, lsn, batch_start)
        }
    }

    /// An AbortTxn marker.
    pub fn abort(lsn: u64, batch_start: u32) -> Self {
        Self::new(RecordKind::AbortTxn, lsn, batch_start)
    }

    /// A Checkpoint marker covering the state up to `upto_lsn`.
    pub fn checkpoint(upto_lsn: u64, lsn: u64, batch_start: u32) -> Self {
        RecordSpec {
            marker: upto_lsn,
            ..Self::new(RecordKind::Checkpoint, lsn, batch_start)
        }
    }

    /// An LSN lease: the writing run may hand out LSNs up to `bound`.
    pub fn lease(bound: u64, batch_start: u32) -> Self {
        RecordSpec {
            marker: bound,
            ..Self::new(RecordKind::Lease, 0, batch_start)
        }
    }

    /// The head of the write batch starting at `batch_start` (where it must be encoded): the
    /// batch was written by run `run_id` at `timestamp` (ns since the Unix epoch), when every
    /// byte of its segment below offset `synced_to` was durable (at most `batch_start`, a
    /// multiple of [`RECORD_ALIGN`]; 0 when nothing of the segment was known durable). Recovery
    /// takes a valid later batch as proof that damage before it is not a torn write only when
    /// the damage lies below that batch's `synced_to` (FORMAT.md §10.5).
    pub fn batch_head(run_id: u64, timestamp: u64, synced_to: u64, batch_start: u32) -> Self {
        RecordSpec {
            run_id,
            timestamp,
            marker: synced_to,
            ..Self::new(RecordKind::BatchHead, 0, batch_start)
        }
    }

    /// A batch head as format version 4 wrote it: no durable floor (16 bytes of payload). The
    /// engine never writes one; tools and tests use it for a version-4 segment's bytes.
    pub fn batch_head_v4(run_id: u64, timestamp: u64, batch_start: u32) -> Self {
        RecordSpec {
            run_id,
            timestamp,
            marker: V4_HEAD,
            ..Self::new(RecordKind::BatchHead, 0, batch_start)
        }
    }

    /// Marks a Write as a relocated value ([`FLAG_RELOCATED`]).
    pub fn relocated(mut self) -> Self {
        self.flags |= FLAG_RELOCATED;
        self
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
            RecordKind::BatchHead if self.marker == V4_HEAD => BATCH_HEAD_PAYLOAD_LEN_V4,
            RecordKind::BatchHead => BATCH_HEAD_PAYLOAD_LEN,
            RecordKind::AbortTxn | RecordKind::Padding => 0,
        }
    }
}

/// Bytes a Write record with these key and value lengths occupies, padding included (format
/// version 4).
#[inline]
pub const fn encoded_len(key_len: usize, value_len: usize) -> usize {
    (RECORD_HEADER_LEN + key_len + value_len).next_multiple_of(RECORD_ALIGN)
}

/// Encodes `spec` at the start of `dst` for the position `pos`, in the current layout
/// ([`Layout::Lean`]), zeroing the alignment padding. Returns the encoded length (a multiple of
/// [`RECORD_ALIGN`]).
///
/// # Errors
///
/// [`EncodeError`](crate::EncodeError) when the record cannot be encoded: a bad key length, a payload its kind does not carry, an unknown flag, an unaligned offset, an id above [`crate::MAX_ID`], a batch head away from its batch's start, more than [`MAX_RECORD_LEN`] bytes, or a buffer too small.
pub fn encode_record(
    dst: &mut [u8],
    spec: &RecordSpec<'_>,
    pos: SegmentPos,
) -> Result<usize, EncodeError> {
    encode_in(Layout::Lean, dst, spec, WideIds::default(), pos)
}

/// Encodes `spec` in the wide layout of format versions 1–3, with the per-record ids `ids`
/// (`spec.run_id` and `spec.timestamp` are not used). For tools and tests that need bytes an
/// older version wrote; the engine writes [`encode_record`]'s layout.
///
/// # Errors
///
/// As [`encode_record`]; a [`RecordKind::BatchHead`] (which the wide layout does not have) is
/// refused.
pub fn encode_record_wide(
    dst: &mut [u8],
    spec: &RecordSpec<'_>,
    ids: WideIds,
    pos: SegmentPos,
) -> Result<usize, EncodeError> {
    encode_in(Layout::Wide, dst, spec, ids, pos)
}

fn encode_in(
    layout: Layout,
    dst: &mut [u8],
    spec: &RecordSpec<'_>,
    ids: WideIds,
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
    match spec.kind {
        RecordKind::BatchHead if layout == Layout::Wide => {
            return Err(EncodeError::BadPayload(
                "batch heads exist in format versions 4 to 6 only",
            ));
        }
        RecordKind::BatchHead
            if spec.marker != V4_HEAD
                && (spec.marker > pos.offset
                    || !spec.marker.is_multiple_of(RECORD_ALIGN as u64)) =>
        {
            return Err(EncodeError::BadPayload(
                "a batch head's durable floor is an aligned offset before it",
            ));
        }
        RecordKind::BatchHead if pos.offset != spec.batch_start as u64 || spec.lsn != 0 => {
            return Err(EncodeError::BadPayload(
                "a batch head has LSN 0 and sits at its batch's start",
            ));
        }
        RecordKind::Lease if spec.lsn != 0 => {
            return Err(EncodeError::BadPayload("a lease has LSN 0"));
        }
        _ => {}
    }
    if spec.flags & !KNOWN_FLAGS != 0 {
        return Err(EncodeError::BadPayload("unknown flag"));
    }
    if spec.flags & FLAG_RELOCATED != 0
        && (spec.kind != RecordKind::Write || spec.flags != FLAG_RELOCATED)
    {
        return Err(EncodeError::BadPayload(
            "only a Write is relocated, with no other flag",
        ));
    }
    if spec.lsn > crate::MAX_ID
        || spec.run_id > crate::MAX_ID
        || ids.txn_id > crate::MAX_ID
        || ids.run_id > crate::MAX_ID
    {
        return Err(EncodeError::BadPayload(
            "LSN, transaction id or run id above the format's maximum",
        ));
    }
    let hl = layout.header_len();
    let len = hl + spec.payload_len();
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
        crc: U32::new(0),
        len: U32::new(len as u32),
        kind: spec.kind as u8,
        flags: spec.flags,
        key_len: U16::new(spec.key.len() as u16),
        batch_start: U32::new(spec.batch_start),
        lsn: U64::new(spec.lsn),
    };
    let out = &mut dst[..total];
    out[..RECORD_HEADER_LEN].copy_from_slice(header.as_bytes());
    if layout == Layout::Wide {
        let tail = WideTail {
            txn_id: U64::new(ids.txn_id),
            run_id: U64::new(ids.run_id),
            timestamp: U64::new(ids.timestamp),
        };
        out[RECORD_HEADER_LEN..hl].copy_from_slice(tail.as_bytes());
    }
    let payload = &mut out[hl..len];
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
        RecordKind::BatchHead => {
            payload[..8].copy_from_slice(&spec.run_id.to_le_bytes());
            payload[8..16].copy_from_slice(&spec.timestamp.to_le_bytes());
            if spec.marker != V4_HEAD {
                payload[16..].copy_from_slice(&spec.marker.to_le_bytes());
            }
        }
        RecordKind::AbortTxn | RecordKind::Padding => {}
    }
    out[len..].fill(0);
    let crc = pos.crc(&out[4..len]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    debug_assert!(
        decode_in(layout, out, 0, pos).is_ok(),
        "encoded record must decode"
    );
    Ok(total)
}

/// Encodes a Padding record filling exactly `dst` (whose length must be a multiple of
/// [`RECORD_ALIGN`] and at least [`RECORD_HEADER_LEN`]), in the current layout.
///
/// # Errors
///
/// [`EncodeError`](crate::EncodeError) for a length that is not an aligned multiple of 8 of at least a header, or an unaligned offset.
pub fn encode_padding(
    dst: &mut [u8],
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
        crc: U32::new(0),
        len: U32::new(len as u32),
        kind: RecordKind::Padding as u8,
        flags: 0,
        key_len: U16::new(0),
        batch_start: U32::new(batch_start),
        lsn: U64::new(0),
    };
    dst[..RECORD_HEADER_LEN].copy_from_slice(header.as_bytes());
    dst[RECORD_HEADER_LEN..].fill(0);
    let crc = crc_append_zeros(pos.crc(&dst[4..RECORD_HEADER_LEN]), len - RECORD_HEADER_LEN);
    dst[..4].copy_from_slice(&crc.to_le_bytes());
    Ok(len)
}

/// A decoded record: its fields by value and the payload borrowed from the input.
///
/// The same struct serves both layouts. In the lean layout (version 4) a record stores neither
/// transaction id nor run id nor timestamp: `txn_id` is the LSN for the records of a
/// transaction (0 for the others), and `run_id` / `timestamp` are those of a
/// [`RecordKind::BatchHead`] and 0 in every other record — they hold for every record of the
/// head's batch, which a reader takes from the head it passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The layout the record was decoded in.
    pub layout: Layout,
    /// Its kind.
    pub kind: RecordKind,
    /// Bit set of `FLAG_*`.
    pub flags: u8,
    /// Length of header and payload, without the alignment padding.
    pub len: u32,
    /// Offset in the segment of the first byte of the record's write batch.
    pub batch_start: u32,
    /// LSN of the record's transaction (0 for padding, leases and batch heads).
    pub lsn: u64,
    /// Transaction id (see the type's documentation for the lean layout).
    pub txn_id: u64,
    /// Run id (see the type's documentation for the lean layout).
    pub run_id: u64,
    /// Commit time, ns since the Unix epoch (see the type's documentation for the lean layout).
    pub timestamp: u64,
    /// The stored checksum.
    pub crc: u32,
    /// Absolute offset of the record in its segment.
    pub offset: u64,
    /// The key (Write, Delete), else empty.
    pub key: &'a [u8],
    /// The value (Write), else empty.
    pub value: &'a [u8],
    /// The 8-byte marker payload (BeginTxn/CommitTxn op count, Checkpoint LSN, lease bound),
    /// else 0. For a [`RecordKind::BatchHead`], its *durable floor*: every byte of the segment
    /// below this offset was durable when the batch was written (format 5 stores it; a format-4
    /// head reads as its own offset, since that version wrote a batch only once all before it
    /// were durable).
    pub marker: u64,
}

impl Record<'_> {
    /// Bytes the record occupies, padding included: the next record starts this far on.
    pub fn encoded_len(&self) -> usize {
        (self.len as usize).next_multiple_of(RECORD_ALIGN)
    }

    /// True for a Write or Delete carrying [`FLAG_AUTOCOMMIT`].
    pub fn is_autocommit(&self) -> bool {
        self.flags & FLAG_AUTOCOMMIT != 0
    }

    /// True for a Write or Delete carrying [`FLAG_SYSTEM`].
    pub fn is_system(&self) -> bool {
        self.flags & FLAG_SYSTEM != 0
    }

    /// True for a relocated value ([`FLAG_RELOCATED`]).
    pub fn is_relocated(&self) -> bool {
        self.flags & FLAG_RELOCATED != 0
    }
}

/// Decodes the record starting at `buf[at..]` in the current layout ([`Layout::Lean`]). `pos`
/// names where `buf[at]` lives on disk (`pos.offset` is the absolute offset of `buf[at]`), which
/// the checksum must match.
///
/// Never panics, whatever the bytes; never allocates.
///
/// # Errors
///
/// A [`DecodeError`](crate::DecodeError) naming the record's offset: zeroed or truncated input, a bad length, a checksum mismatch, an unknown kind, a malformed layout or an id out of range (FORMAT.md §5.6 lists the checks in order).
pub fn decode_record(buf: &[u8], at: usize, pos: SegmentPos) -> Result<Record<'_>, DecodeError> {
    decode_in(Layout::Lean, buf, at, pos)
}

/// Decodes the record starting at `buf[at..]` of a segment in `layout` (its format version's,
/// [`Layout::for_version`]); as [`decode_record`] otherwise.
///
/// # Errors
///
/// As [`decode_record`].
pub fn decode_record_in(
    layout: Layout,
    buf: &[u8],
    at: usize,
    pos: SegmentPos,
) -> Result<Record<'_>, DecodeError> {
    decode_in(layout, buf, at, pos)
}

fn read_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[inline]
fn decode_in(
    layout: Layout,
    buf: &[u8],
    at: usize,
    pos: SegmentPos,
) -> Result<Record<'_>, DecodeError> {
    let offset = pos.offset;
    let hl = layout.header_len();
    let rest = buf.get(at..).unwrap_or(&[]);
    if rest.len() < hl {
        if rest.iter().all(|&b| b == 0) && !rest.is_empty() {
            return Err(DecodeError::Zeroed { offset });
        }
        return Err(DecodeError::Truncated {
            offset,
            needed: hl as u64,
            available: rest.len() as u64,
        });
    }
    if all_zero(&rest[..hl]) {
        return Err(DecodeError::Zeroed { offset });
    }
    let Ok((header, _)) = RecordHeader::read_from_prefix(rest) else {
        unreachable!("at least a header's bytes remain");
    };
    let len = header.len.get() as usize;
    if !(hl..=MAX_RECORD_LEN).contains(&len) {
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
    let stored = header.crc.get();
    // Padding is zeros: checking that they are is cheaper than checksumming them, and the crc of
    // a run of zeros follows from its length. The result is the same crc either way.
    let computed = if header.kind == RecordKind::Padding as u8 && all_zero(&rest[hl..len]) {
        crc_append_zeros(pos.crc(&rest[4..hl]), len - hl)
    } else {
        pos.crc(&rest[4..len])
    };
    if computed != stored {
        return Err(DecodeError::Checksum {
            offset,
            stored,
            computed,
        });
    }
    let kind = RecordKind::from_u8(header.kind)
        .filter(|k| *k as u8 <= layout.max_kind())
        .ok_or(DecodeError::UnknownKind {
            offset,
            kind: header.kind,
        })?;
    let lsn = header.lsn.get();
    let batch_start = header.batch_start.get();
    let flags = header.flags;
    let (mut txn_id, mut run_id, mut timestamp) = (0, 0, 0);
    if layout == Layout::Wide {
        txn_id = read_u64(&rest[24..]);
        run_id = read_u64(&rest[32..]);
        timestamp = read_u64(&rest[40..]);
    } else if kind.in_transaction() {
        txn_id = lsn;
    }
    let payload = &rest[hl..len];
    let malformed = |reason| Err(DecodeError::Malformed { offset, reason });
    if flags & !KNOWN_FLAGS != 0 {
        return malformed("unknown flag bits");
    }
    if flags & FLAG_RELOCATED != 0 && (kind != RecordKind::Write || flags != FLAG_RELOCATED) {
        return malformed("only a Write is relocated, with no other flag");
    }
    let key_len = header.key_len.get() as usize;
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
            if flags != 0 || key_len != 0 {
                return malformed("a marker carries no flags and no key");
            }
            if payload.len() != MARKER_PAYLOAD_LEN {
                return malformed("marker payload must be exactly 8 bytes");
            }
            let marker = read_u64(payload);
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
                RecordKind::Lease if lsn != 0 || txn_id != 0 => {
                    return malformed("a lease has LSN and transaction id 0");
                }
                _ => {}
            }
            (&[][..], &[][..], marker)
        }
        RecordKind::BatchHead => {
            if flags != 0
                || key_len != 0
                || !matches!(
                    payload.len(),
                    BATCH_HEAD_PAYLOAD_LEN | BATCH_HEAD_PAYLOAD_LEN_V4
                )
            {
                return malformed("a batch head carries no flags, no key and 24 (or 16) bytes");
            }
            if lsn != 0 || batch_start as u64 != offset {
                return malformed("a batch head has LSN 0 and sits at its batch's start");
            }
            run_id = read_u64(payload);
            timestamp = read_u64(&payload[8..]);
            // A format-4 head has no floor: that version wrote a batch only once every batch
            // before it was durable, so its floor is its own offset.
            let synced_to = if payload.len() == BATCH_HEAD_PAYLOAD_LEN {
                read_u64(&payload[16..])
            } else {
                offset
            };
            if synced_to > offset || !synced_to.is_multiple_of(RECORD_ALIGN as u64) {
                return malformed("a batch head's durable floor is an aligned offset before it");
            }
            (&[][..], &[][..], synced_to)
        }
        RecordKind::AbortTxn => {
            if !payload.is_empty() || key_len != 0 || flags != 0 {
                return malformed("an abort carries no payload");
            }
            (&[][..], &[][..], 0)
        }
        RecordKind::Padding => {
            if key_len != 0 || flags != 0 {
                return malformed("padding carries no key or flags");
            }
            (&[][..], &[][..], 0)
        }
    };
    if batch_start as u64 > offset {
        return malformed("batch starts after the record");
    }
    for (field, value) in [("LSN", lsn), ("transaction id", txn_id), ("run id", run_id)] {
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
        layout,
        kind,
        flags,
        len: len as u32,
        batch_start,
        lsn,
        txn_id,
        run_id,
        timestamp,
        crc: stored,
        offset,
        key,
        value,
        marker,
    })
}

/// Whether the header bytes `h` (at least a header of `layout`), read at absolute offset
/// `offset` with `avail` bytes of input from there, could head a valid record: every check that
/// needs no checksum. A record whose header fails these cannot decode, so searches skip it
/// without paying for a checksum.
fn plausible(layout: Layout, h: &[u8], offset: u64, avail: usize) -> bool {
    let Ok((hd, _)) = RecordHeader::read_from_prefix(h) else {
        return false;
    };
    let hl = layout.header_len();
    let len = hd.len.get() as usize;
    let Some(kind) = RecordKind::from_u8(hd.kind).filter(|k| *k as u8 <= layout.max_kind()) else {
        return false;
    };
    let (flags, key_len, lsn, batch) = (
        hd.flags,
        hd.key_len.get() as usize,
        hd.lsn.get(),
        hd.batch_start.get() as u64,
    );
    let (txn_id, run_id) = match layout {
        Layout::Wide if h.len() >= WIDE_RECORD_HEADER_LEN => {
            (read_u64(&h[24..]), read_u64(&h[32..]))
        }
        Layout::Wide => return false,
        Layout::Lean => (0, 0),
    };
    let payload = len.wrapping_sub(hl);
    let shape = match kind {
        RecordKind::Write => key_len != 0 && key_len <= payload,
        RecordKind::Delete => key_len != 0 && key_len == payload,
        RecordKind::BeginTxn | RecordKind::CommitTxn | RecordKind::Checkpoint => {
            flags == 0 && key_len == 0 && payload == MARKER_PAYLOAD_LEN
        }
        RecordKind::Lease => {
            flags == 0 && key_len == 0 && payload == MARKER_PAYLOAD_LEN && lsn == 0 && txn_id == 0
        }
        RecordKind::BatchHead => {
            flags == 0
                && key_len == 0
                && (payload == BATCH_HEAD_PAYLOAD_LEN || payload == BATCH_HEAD_PAYLOAD_LEN_V4)
                && lsn == 0
                && batch == offset
        }
        RecordKind::AbortTxn => flags == 0 && key_len == 0 && payload == 0,
        RecordKind::Padding => flags == 0 && key_len == 0,
    };
    shape
        && (hl..=MAX_RECORD_LEN).contains(&len)
        && len <= avail
        && flags & !KNOWN_FLAGS == 0
        && batch <= offset
        && lsn <= crate::MAX_ID
        && txn_id <= crate::MAX_ID
        && run_id <= crate::MAX_ID
}

/// The segment a search runs over: what its records are bound to, and where its bytes start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchIn {
    /// The layout of the segment's records ([`Layout::for_version`] of its header's version).
    pub layout: Layout,
    /// Id of the segment.
    pub segment_id: u64,
    /// The database's epoch.
    pub epoch: u64,
    /// Absolute offset in the segment of the buffer's first byte.
    pub base: u64,
}

impl SearchIn {
    /// Where `buf[at]` of the searched buffer lives on disk.
    pub fn pos(&self, at: usize) -> SegmentPos {
        SegmentPos {
            segment_id: self.segment_id,
            epoch: self.epoch,
            offset: self.base + at as u64,
        }
    }
}

/// Searches `buf` (the bytes of the segment `seg` from `seg.base`) from index `from` (8-aligned
/// relative to `seg.base`) for the first offset holding a record that decodes, and returns it.
/// Headers that fail the checks needing no checksum are skipped without one, but a crafted input
/// can still make this quadratic: recovery uses [`find_later_batch`], which is linear.
pub fn find_next_valid(buf: &[u8], from: usize, seg: SearchIn) -> Option<Record<'_>> {
    let hl = seg.layout.header_len();
    // Offsets past the address space (a caller's `from` or `base` near the maximum): nothing
    // to search, and no sum below can overflow.
    seg.base.checked_add(buf.len() as u64)?;
    let mut at = from.checked_next_multiple_of(RECORD_ALIGN)?;
    while at + hl <= buf.len() {
        // Fast skip over zero words: a record header is never all zero in its first 8 bytes
        // (its length is at least a header's).
        if buf[at..at + 8] == [0u8; 8] {
            at += RECORD_ALIGN;
            continue;
        }
        let pos = seg.pos(at);
        if plausible(seg.layout, &buf[at..at + hl], pos.offset, buf.len() - at) {
            if let Ok(rec) = decode_in(seg.layout, buf, at, pos) {
                return Some(rec);
            }
        }
        at += RECORD_ALIGN;
    }
    None
}

/// Whether damage at index `pos` of `buf` (a whole segment: `seg.base` 0) is proven to be
/// corruption of durable bytes rather than a torn tail: a valid record after `pos` belonging to a
/// write batch that started after `pos` and was written once `pos` was durable —
/// [`LaterBatch::Found`] — or [`LaterBatch::None`] (a torn tail), or [`LaterBatch::Undecided`].
///
/// With `floors` (format version 5 and later, whose batch heads record the segment's durable
/// floor), a later batch proves the damage only when its head says the log was durable past
/// `pos` when it was written: a batch written while the damaged one was in flight (a torn write
/// of a pipelined log) proves nothing, nor does one whose head does not decode (a write torn
/// across its own blocks). Every batch of such a segment starts with its head at a
/// [`BATCH_ALIGN`]-aligned offset, so the search looks only there ([`proving_head`]): exhaustive,
/// one head-sized checksum per aligned offset at most, never [`LaterBatch::Undecided`] — bytes
/// after the damage full of record-like headers (user values can hold anything) cannot make it
/// give up. Without floors (versions 1–4, which wrote a batch only once every batch before it was
/// durable) any later batch proves it: a record search ([`find_later_batch`]) whose checksums
/// cover at most twice the bytes after `pos`, [`LaterBatch::Undecided`] past that. Never panics.
/// This is the rule recovery applies (FORMAT.md §10.5).
pub fn damage_proof(
    buf: &[u8],
    pos: usize,
    seg: SearchIn,
    floors: bool,
) -> (LaterBatch<'_>, SearchCost) {
    if pos >= buf.len() {
        return (LaterBatch::None, SearchCost::default());
    }
    if floors {
        return proving_head(buf, pos, seg);
    }
    let budget = 2 * (buf.len() - pos) as u64;
    find_later_batch(buf, pos + 8, pos as u64, seg, budget)
}

/// [`damage_proof`] of a segment with floors (version 5 and later; lean records): the first
/// batch head at a [`BATCH_ALIGN`]-aligned offset after `pos` that decodes and whose durable
/// floor lies above `pos`. An offset is checksummed only where its header claims a batch head's
/// length (48, or 40 as version 4 wrote): the checksums cover at most a tenth of the bytes after
/// `pos`, whatever they are.
fn proving_head(buf: &[u8], pos: usize, seg: SearchIn) -> (LaterBatch<'_>, SearchCost) {
    let mut cost = SearchCost::default();
    let align = BATCH_ALIGN as usize;
    let mut at = (pos / align + 1) * align;
    while at + 8 <= buf.len() {
        let claimed = u32::from_le_bytes([buf[at + 4], buf[at + 5], buf[at + 6], buf[at + 7]]);
        let claimed = claimed as usize;
        if matches!(claimed, crate::BATCH_HEAD_LEN | crate::BATCH_HEAD_LEN_V4)
            && at + claimed <= buf.len()
        {
            cost.candidates += 1;
            cost.checksums += 1;
            cost.checksum_bytes += claimed as u64;
            if let Ok(head) = decode_in(Layout::Lean, buf, at, seg.pos(at)) {
                if head.kind == RecordKind::BatchHead && head.marker > pos as u64 {
                    return (LaterBatch::Found(head), cost);
                }
            }
        }
        at += align;
    }
    (LaterBatch::None, cost)
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

/// Looks in `buf` (the bytes of the segment `seg` from `seg.base`) for a valid record, at or
/// after index `from`, that belongs to a write batch starting after absolute offset `damage`:
/// what tells corruption of synced data (such a record exists) from a torn tail (none does).
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
    seg: SearchIn,
    budget: u64,
) -> (LaterBatch<'_>, SearchCost) {
    let hl = seg.layout.header_len();
    let mut cost = SearchCost::default();
    // As in `find_next_valid`: offsets past the address space hold nothing.
    let (Some(mut at), Some(_)) = (
        from.checked_next_multiple_of(RECORD_ALIGN),
        seg.base.checked_add(buf.len() as u64),
    ) else {
        return (LaterBatch::None, cost);
    };
    while at + hl <= buf.len() {
        if buf[at..at + 8] == [0u8; 8] {
            at += RECORD_ALIGN;
            continue;
        }
        let offset = seg.base + at as u64;
        // The header's second word holds kind, flags, key length and batch start (in both
        // layouts): most random words fail on it alone, before the whole header is read.
        let w = read_u64(&buf[at + 8..]);
        let (kind, flags, batch) = (w as u8, (w >> 8) as u8, w >> 32);
        if kind == 0
            || kind > seg.layout.max_kind()
            || flags & !KNOWN_FLAGS != 0
            || batch <= damage
            || batch > offset
            || !batch.is_multiple_of(BATCH_ALIGN)
        {
            at += RECORD_ALIGN;
            continue;
        }
        if plausible(seg.layout, &buf[at..at + hl], offset, buf.len() - at) {
            cost.candidates += 1;
            let len = read_u64(&buf[at..]) >> 32;
            if cost.checksum_bytes + len > budget {
                return (LaterBatch::Undecided, cost);
            }
            cost.checksums += 1;
            cost.checksum_bytes += len;
            if let Ok(rec) = decode_in(seg.layout, buf, at, seg.pos(at)) {
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

    fn search(layout: Layout, base: u64) -> SearchIn {
        SearchIn {
            layout,
            segment_id: POS.segment_id,
            epoch: POS.epoch,
            base,
        }
    }

    fn all_kinds() -> Vec<RecordSpec<'static>> {
        vec![
            RecordSpec::batch_head(1, 77, 2048, 4096),
            RecordSpec::batch_head_v4(1, 77, 4096),
            RecordSpec::marker(RecordKind::BeginTxn, 3, 10, 4096),
            RecordSpec::write(b"k", b"v", 10, 4096),
            RecordSpec::write(b"key2", b"", 10, 4096),
            RecordSpec::delete(b"gone", 10, 4096),
            RecordSpec::marker(RecordKind::CommitTxn, 3, 10, 4096),
            RecordSpec::abort(11, 4096),
            RecordSpec::checkpoint(9, 12, 4096),
            RecordSpec::lease(1 << 40, 4096),
            RecordSpec::write(b"a", &[7; 1000], 13, 4096).autocommit(),
            RecordSpec::delete(b"a", 14, 4096).autocommit().system(),
        ]
    }

    fn ids(spec: &RecordSpec<'_>) -> WideIds {
        WideIds {
            txn_id: if spec.kind.in_transaction() {
                spec.lsn + 100
            } else {
                0
            },
            run_id: 5,
            timestamp: 1234 + spec.lsn,
        }
    }

    fn encode_as(layout: Layout, spec: &RecordSpec<'_>, pos: SegmentPos) -> Vec<u8> {
        let mut buf = vec![0xAAu8; 2048];
        let n = match layout {
            Layout::Lean => encode_record(&mut buf, spec, pos),
            Layout::Wide => encode_record_wide(&mut buf, spec, ids(spec), pos),
        }
        .unwrap();
        assert_eq!(n % RECORD_ALIGN, 0);
        assert_eq!(
            n,
            (layout.header_len() + spec.payload_len()).next_multiple_of(8)
        );
        buf.truncate(n);
        buf
    }

    fn encode(spec: &RecordSpec<'_>, pos: SegmentPos) -> Vec<u8> {
        encode_as(Layout::Lean, spec, pos)
    }

    fn kinds_of(layout: Layout) -> Vec<RecordSpec<'static>> {
        all_kinds()
            .into_iter()
            .filter(|s| layout == Layout::Lean || s.kind != RecordKind::BatchHead)
            .collect()
    }

    #[test]
    fn round_trip_every_kind_in_both_layouts() {
        for layout in [Layout::Lean, Layout::Wide] {
            for spec in kinds_of(layout) {
                let bytes = encode_as(layout, &spec, POS);
                let rec = decode_record_in(layout, &bytes, 0, POS).unwrap();
                assert_eq!(rec.layout, layout);
                assert_eq!(rec.kind, spec.kind);
                assert_eq!(rec.key, spec.key);
                assert_eq!(rec.value, spec.value);
                // A format-4 head has no floor: it reads as its own offset.
                let marker = match spec.marker {
                    V4_HEAD if spec.kind == RecordKind::BatchHead => POS.offset,
                    m => m,
                };
                assert_eq!(rec.marker, marker);
                assert_eq!(rec.lsn, spec.lsn);
                assert_eq!(rec.flags, spec.flags);
                assert_eq!(rec.batch_start, spec.batch_start);
                assert_eq!(rec.encoded_len(), bytes.len());
                assert_eq!(rec.offset, POS.offset);
                match layout {
                    Layout::Wide => {
                        let ids = ids(&spec);
                        assert_eq!(
                            (rec.txn_id, rec.run_id, rec.timestamp),
                            (ids.txn_id, ids.run_id, ids.timestamp)
                        );
                    }
                    Layout::Lean => {
                        let txn = if spec.kind.in_transaction() {
                            spec.lsn
                        } else {
                            0
                        };
                        assert_eq!(rec.txn_id, txn);
                        assert_eq!((rec.run_id, rec.timestamp), (spec.run_id, spec.timestamp));
                    }
                }
            }
        }
        let mut pad = vec![0xFFu8; 512];
        encode_padding(&mut pad, 4096, POS).unwrap();
        let rec = decode_record(&pad, 0, POS).unwrap();
        assert_eq!(rec.kind, RecordKind::Padding);
        assert_eq!(rec.encoded_len(), 512);
    }

    /// The bytes of a version-4 Write, field by field (FORMAT.md §11.1 shows the same record).
    #[test]
    fn lean_header_bytes_are_little_endian_and_in_order() {
        let spec = RecordSpec::write(b"key", b"value", 0x0102_0304_0506_0708, 4096).autocommit();
        let bytes = encode(&spec, POS);
        assert_eq!(bytes.len(), 32);
        assert_eq!(&bytes[4..8], &32u32.to_le_bytes()[..], "len");
        assert_eq!(bytes[8], RecordKind::Write as u8);
        assert_eq!(bytes[9], FLAG_AUTOCOMMIT);
        assert_eq!(&bytes[10..12], &3u16.to_le_bytes()[..], "key_len");
        assert_eq!(&bytes[12..16], &4096u32.to_le_bytes()[..], "batch_start");
        assert_eq!(&bytes[16..24], &0x0102_0304_0506_0708u64.to_le_bytes()[..]);
        assert_eq!(&bytes[24..32], b"keyvalue");
        let crc = crc_at(POS.segment_id, POS.epoch, POS.offset, &bytes[4..32]);
        assert_eq!(&bytes[..4], &crc.to_le_bytes()[..]);
    }

    /// FORMAT.md §11.1–11.2, byte for byte: the batch head, the Write and the Padding of the
    /// worked example (checksums cross-checked there with an independent bitwise crc32c).
    #[test]
    fn format_md_worked_example() {
        let at = |offset| SegmentPos {
            segment_id: 1,
            epoch: 0x1122_3344_5566_7788,
            offset,
        };
        let mut buf = vec![0u8; 512];
        encode_record(
            &mut buf[..48],
            &RecordSpec::batch_head(1, 0, 4096, 4096),
            at(4096),
        )
        .unwrap();
        let w = RecordSpec::write(b"k", b"v", 1, 4096).autocommit();
        encode_record(&mut buf[48..80], &w, at(4144)).unwrap();
        encode_padding(&mut buf[80..], 4096, at(4176)).unwrap();
        assert_eq!(&buf[..4], &0xAFEC_16E0u32.to_le_bytes()[..], "head crc");
        assert_eq!(&buf[48..52], &0x1081_251Du32.to_le_bytes()[..], "write crc");
        assert_eq!(
            &buf[80..84],
            &0xBFF7_54EAu32.to_le_bytes()[..],
            "padding crc"
        );
        assert_eq!(
            &buf[48..80],
            &[
                0x1d, 0x25, 0x81, 0x10, 0x1a, 0, 0, 0, 2, 1, 1, 0, 0, 0x10, 0, 0, 1, 0, 0, 0, 0, 0,
                0, 0, b'k', b'v', 0, 0, 0, 0, 0, 0
            ][..]
        );
    }

    #[test]
    fn batch_heads_sit_at_their_batch_start_and_exist_only_in_the_lean_layout() {
        let mut buf = vec![0u8; 64];
        let head = RecordSpec::batch_head(1, 2, 0, 4096);
        assert!(matches!(
            encode_record(
                &mut buf,
                &head,
                SegmentPos {
                    offset: 4104,
                    ..POS
                }
            ),
            Err(EncodeError::BadPayload(_))
        ));
        assert!(matches!(
            encode_record_wide(&mut buf, &head, WideIds::default(), POS),
            Err(EncodeError::BadPayload(_))
        ));
        // A head whose batch start is not its own offset, checksummed as if valid: malformed.
        let mut bytes = encode(&head, POS);
        bytes[12..16].copy_from_slice(&512u32.to_le_bytes());
        let crc = crc_at(POS.segment_id, POS.epoch, POS.offset, &bytes[4..]);
        bytes[..4].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            decode_record(&bytes, 0, POS),
            Err(DecodeError::Malformed { offset: 4096, .. })
        ));
        // In a wide segment, kind 9 is unknown.
        let mut wide = encode_as(Layout::Wide, &RecordSpec::abort(3, 4096), POS);
        wide[8] = RecordKind::BatchHead as u8;
        let crc = crc_at(POS.segment_id, POS.epoch, POS.offset, &wide[4..48]);
        wide[..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_record_in(Layout::Wide, &wide, 0, POS),
            Err(DecodeError::UnknownKind {
                offset: 4096,
                kind: 9
            })
        );
    }

    #[test]
    fn crc_detects_every_flipped_bit() {
        for layout in [Layout::Lean, Layout::Wide] {
            for spec in kinds_of(layout) {
                let bytes = encode_as(layout, &spec, POS);
                let len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
                for bit in 0..len * 8 {
                    let mut b = bytes.clone();
                    b[bit / 8] ^= 1 << (bit % 8);
                    let err = decode_record_in(layout, &b, 0, POS)
                        .expect_err("a flipped bit must be detected");
                    assert_eq!(err.offset(), POS.offset, "error must carry the offset");
                }
            }
        }
    }

    #[test]
    fn bound_to_segment_epoch_and_offset() {
        let bytes = encode(&all_kinds()[2], POS);
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
        for layout in [Layout::Lean, Layout::Wide] {
            let bytes = encode_as(layout, &RecordSpec::write(b"key", &[1; 100], 1, 4096), POS);
            for cut in 0..bytes.len() - 4 {
                let err = decode_record_in(layout, &bytes[..cut], 0, POS).unwrap_err();
                assert_eq!(err.offset(), POS.offset);
            }
        }
    }

    #[test]
    fn impossible_length_fields() {
        let mut bytes = encode(&all_kinds()[2], POS);
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
        let mut bytes = encode(&all_kinds()[2], POS);
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
            encode_record(&mut buf, &RecordSpec::write(b"", b"v", 1, 0), POS),
            Err(EncodeError::BadKeyLength(0))
        );
        assert!(matches!(
            encode_record(&mut buf[..10], &RecordSpec::write(b"k", b"v", 1, 0), POS),
            Err(EncodeError::BufferTooSmall { .. })
        ));
        assert!(matches!(
            encode_record(
                &mut buf,
                &RecordSpec::write(b"k", b"v", 1, 0),
                SegmentPos { offset: 3, ..POS }
            ),
            Err(EncodeError::BadOffset(3))
        ));
        let long = vec![1u8; MAX_KEY_LEN + 1];
        assert_eq!(
            encode_record(&mut buf, &RecordSpec::write(&long, b"", 1, 0), POS),
            Err(EncodeError::BadKeyLength(MAX_KEY_LEN + 1))
        );
        let mut lease = RecordSpec::lease(5, 0);
        lease.lsn = 3;
        assert!(matches!(
            encode_record(&mut buf, &lease, POS),
            Err(EncodeError::BadPayload(_))
        ));
    }

    #[test]
    fn find_next_valid_skips_garbage() {
        for layout in [Layout::Lean, Layout::Wide] {
            let rec = encode_as(
                layout,
                &all_kinds()[2],
                SegmentPos {
                    offset: 4096 + 512,
                    ..POS
                },
            );
            let mut buf = vec![0u8; 2048];
            buf[8..40].fill(0x5A);
            buf[512..512 + rec.len()].copy_from_slice(&rec);
            let found = find_next_valid(&buf, 0, search(layout, 4096)).unwrap();
            assert_eq!(found.offset, 4096 + 512);
            assert!(find_next_valid(&buf, 520, search(layout, 4096)).is_none());
        }
    }

    #[test]
    fn searches_at_the_end_of_the_address_space_find_nothing() {
        let buf = vec![0x5Au8; 256];
        for (from, base) in [
            (usize::MAX, 0),
            (usize::MAX - 3, 0),
            (0, u64::MAX),
            (8, u64::MAX - 64),
        ] {
            for layout in [Layout::Lean, Layout::Wide] {
                assert!(find_next_valid(&buf, from, search(layout, base)).is_none());
                let (found, _) = find_later_batch(&buf, from, 0, search(layout, base), u64::MAX);
                assert_eq!(found, LaterBatch::None);
            }
        }
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
        for layout in [Layout::Lean, Layout::Wide] {
            for seed in 1..=4 {
                let buf = noise(seed, MIB4);
                let (found, cost) =
                    find_later_batch(&buf, 8, 0, search(layout, 0), 2 * MIB4 as u64);
                assert_eq!(found, LaterBatch::None, "seed {seed}");
                assert!(cost.checksums <= 2, "seed {seed}: {cost:?}");
            }
        }
    }

    /// Issue 8.3: a crafted tail in which every 8-byte offset holds a plausible header claiming
    /// the rest of the file costs at most the budget, not a checksum of the rest per offset.
    #[test]
    fn later_batch_search_on_crafted_headers_stays_within_its_budget() {
        let mut buf = vec![0u8; MIB4];
        record_like_headers(&mut buf, 8);
        let budget = 2 * MIB4 as u64;
        let (found, cost) = find_later_batch(&buf, 8, 0, search(Layout::Lean, 0), budget);
        assert_eq!(found, LaterBatch::Undecided);
        assert!(cost.checksum_bytes <= budget, "{cost:?}");
        assert!(cost.checksums >= 2, "{cost:?}");
    }

    /// Bytes after `from` of which every 24-byte step holds a plausible record header claiming
    /// the rest of the buffer (what a user value can hold).
    fn record_like_headers(buf: &mut [u8], from: usize) {
        let mut at = from;
        while at + RECORD_HEADER_LEN <= buf.len() {
            let h = RecordHeader {
                crc: U32::new(0xDEAD_BEEF),
                len: U32::new((buf.len() - at) as u32),
                kind: RecordKind::Padding as u8,
                flags: 0,
                key_len: U16::new(0),
                batch_start: U32::new((from as u32).next_multiple_of(512)),
                lsn: U64::new(1),
            };
            buf[at..at + RECORD_HEADER_LEN].copy_from_slice(h.as_bytes());
            at += RECORD_HEADER_LEN;
        }
    }

    /// A segment with floors (version 5 and later): the damage is proven only by a batch head at
    /// an aligned offset after it whose floor lies above it, so bytes full of record-like
    /// headers after the damage (a torn batch of user values that hold anything) are a torn
    /// tail — the record search that older segments use gives up on them ("undecided", which
    /// recovery reported as corruption and a Strict open refused).
    #[test]
    fn damage_proof_with_floors_looks_only_for_proving_heads() {
        let damage = 4096;
        let mut buf = vec![0u8; MIB4];
        record_like_headers(&mut buf, damage + 8);
        let seg = search(Layout::Lean, 0);
        assert_eq!(
            damage_proof(&buf, damage, seg, false).0,
            LaterBatch::Undecided
        );
        let (found, cost) = damage_proof(&buf, damage, seg, true);
        assert_eq!(found, LaterBatch::None);
        assert!(
            cost.checksum_bytes <= ((MIB4 - damage) / 512 * BATCH_HEAD_LEN) as u64,
            "{cost:?}"
        );
        let head = |buf: &mut [u8], at: usize, floor: u64| {
            let spec = RecordSpec::batch_head(1, 0, floor, at as u32);
            encode_record(&mut buf[at..], &spec, seg.pos(at)).unwrap();
        };
        // Heads that prove nothing: in flight with the damaged batch (floor not above it), or
        // not at a batch's alignment (a record search would not meet one there either).
        head(&mut buf, 8192, damage as u64);
        head(&mut buf, 8192 + 520, 8192);
        assert_eq!(damage_proof(&buf, damage, seg, true).0, LaterBatch::None);
        // A head whose floor is above the damage proves it, behind everything else.
        head(&mut buf, 1 << 20, 8192);
        match damage_proof(&buf, damage, seg, true).0 {
            LaterBatch::Found(rec) => {
                assert_eq!(
                    (rec.offset, rec.kind, rec.marker),
                    (1 << 20, RecordKind::BatchHead, 8192)
                );
            }
            other => panic!("expected the head at 1 MiB, got {other:?}"),
        }
        // Damage at or after that head: nothing after it proves it.
        assert_eq!(damage_proof(&buf, 1 << 20, seg, true).0, LaterBatch::None);
    }

    /// A valid record of a later batch is found behind garbage; one of the damaged batch (batch
    /// start not after the damage) is not.
    #[test]
    fn later_batch_search_finds_only_later_batches() {
        for layout in [Layout::Lean, Layout::Wide] {
            let mut buf = noise(9, 64 << 10);
            let later = 32 << 10;
            let spec = RecordSpec::write(b"k", b"v", 10, later as u32).autocommit();
            let pos = SegmentPos {
                segment_id: POS.segment_id,
                epoch: POS.epoch,
                offset: later as u64,
            };
            let rec = encode_as(layout, &spec, pos);
            buf[later..later + rec.len()].copy_from_slice(&rec);
            let (found, _) = find_later_batch(&buf, 4096, 4096, search(layout, 0), 1 << 20);
            match found {
                LaterBatch::Found(r) => assert_eq!(r.offset, later as u64),
                other => panic!("expected the later batch, got {other:?}"),
            }
            // Damage after that batch started: the record is part of the damaged batch.
            let (found, _) = find_later_batch(&buf, 4096, later as u64, search(layout, 0), 1 << 20);
            assert_eq!(found, LaterBatch::None);
        }
    }
}
