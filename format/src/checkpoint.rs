//! Checkpoint files: a consistent image of the index at one LSN, in key order.
//!
//! ```text
//! offset 0          header (64 bytes)
//!        64         block, block, ...   each: block header (32 bytes), stored payload, zero
//!                                       padding to 8 bytes
//!        data_end   footer (64 bytes), the last bytes of the file
//! ```
//!
//! A block's payload is a run of entries, stored through the file's [`Codec`]. Its checksum
//! covers the database epoch, the checkpoint id and the block's own offset before the header and
//! the stored bytes, so a block of another database, checkpoint or place fails it — as records
//! are bound to their segment. Entries are in list order: key ascending, then LSN descending.
//! `docs/FORMAT.md` section 13 specifies every byte.

use bytemuck::{Pod, Zeroable};

use crate::codec::Codec;
use crate::{align_up, crc_with_seed, DecodeError, FORMAT_VERSION, MAX_ID, MAX_SEGMENT_LEN};

/// Magic at the start of a checkpoint file.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"RLCKPT\0\0";
/// Magic at the start of a checkpoint's footer.
pub const CHECKPOINT_FOOTER_MAGIC: [u8; 8] = *b"RLCKEND\0";
/// Bytes of the checkpoint header.
pub const CHECKPOINT_HEADER_LEN: usize = 64;
/// Bytes of a block header.
pub const BLOCK_HEADER_LEN: usize = 32;
/// Bytes of the checkpoint footer.
pub const CHECKPOINT_FOOTER_LEN: usize = 64;
/// Bytes of an entry header.
pub const ENTRY_HEADER_LEN: usize = 16;
/// Bytes of the smallest encoded entry (a one-byte key and no value, padded to 8).
pub const MIN_ENTRY_LEN: usize = (ENTRY_HEADER_LEN + 1).div_ceil(8) * 8;
/// The flag bits an entry may carry: bit 0, versions of its key older than it were trimmed (a
/// per-key retention policy). A decoder refuses any other bit.
pub const ENTRY_FLAGS: u8 = 0x01;
/// Largest raw or stored payload of one block: one entry is at most a key and a value, and a
/// value is at most what a segment can hold.
pub const MAX_BLOCK_LEN: u64 = MAX_SEGMENT_LEN;
/// `value_len` of a tombstone entry.
pub const ENTRY_TOMBSTONE: u32 = u32::MAX;
/// Entry kind: a user key.
pub const ENTRY_USER: u8 = 0;
/// Entry kind: an entry of the engine's system key space (a retention policy).
pub const ENTRY_SYSTEM: u8 = 1;
/// Entry kind: a user key whose value is not in the checkpoint but in a log segment: the entry's
/// payload after the key is a [`ValueRef`] ([`VALUE_REF_LEN`] bytes), and `value_len` is the
/// value's length. Format version 6.
pub const ENTRY_USER_REF: u8 = 2;
/// Bytes of an encoded [`ValueRef`]: the segment id and the record's offset, `u64` LE each.
pub const VALUE_REF_LEN: usize = 16;

/// The header of a checkpoint file.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct CheckpointHeader {
    /// [`CHECKPOINT_MAGIC`].
    pub magic: [u8; 8],
    /// crc32c of the 64 bytes with this field zero.
    pub crc: u32,
    /// Format version.
    pub version: u32,
    /// The database's epoch.
    pub epoch: u64,
    /// The checkpoint's id (its file name).
    pub id: u64,
    /// The LSN the checkpoint holds the database at.
    pub lsn: u64,
    /// The codec of every block ([`Codec::id`]).
    pub codec: u32,
    /// Reserved, zero.
    pub reserved0: u32,
    /// Creation time, ns since the Unix epoch.
    pub created_ns: u64,
    /// Reserved, zero.
    pub reserved: u64,
}

const _: () = assert!(size_of::<CheckpointHeader>() == CHECKPOINT_HEADER_LEN);

/// The header of one block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockHeader {
    /// crc32c of (epoch, checkpoint id, offset as u64 LE) then this header with `crc` zero, then
    /// the stored payload.
    pub crc: u32,
    /// The codec the payload is stored with.
    pub codec: u32,
    /// Bytes of entries once decoded.
    pub raw_len: u32,
    /// Bytes of the payload as stored (padding excluded).
    pub stored_len: u32,
    /// Entries in the block (at least 1).
    pub entries: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// The block's own offset in the file.
    pub offset: u64,
}

const _: () = assert!(size_of::<BlockHeader>() == BLOCK_HEADER_LEN);

/// The footer of a checkpoint file.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct CheckpointFooter {
    /// [`CHECKPOINT_FOOTER_MAGIC`].
    pub magic: [u8; 8],
    /// crc32c of (epoch, checkpoint id) then the 64 bytes with this field zero.
    pub crc: u32,
    /// Format version.
    pub version: u32,
    /// The checkpoint's LSN (as in the header).
    pub lsn: u64,
    /// The checkpoint's id (as in the header).
    pub id: u64,
    /// Blocks in the file.
    pub blocks: u64,
    /// Entries in all blocks.
    pub entries: u64,
    /// Distinct keys among them.
    pub keys: u64,
    /// The footer's own offset: where the blocks end.
    pub data_end: u64,
}

const _: () = assert!(size_of::<CheckpointFooter>() == CHECKPOINT_FOOTER_LEN);

/// Where a block lies: what its checksum is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockPos {
    /// The database epoch.
    pub epoch: u64,
    /// The checkpoint's id.
    pub id: u64,
    /// The block's offset in the file.
    pub offset: u64,
}

impl BlockPos {
    fn seed(&self) -> [u8; 24] {
        let mut s = [0u8; 24];
        s[..8].copy_from_slice(&self.epoch.to_le_bytes());
        s[8..16].copy_from_slice(&self.id.to_le_bytes());
        s[16..].copy_from_slice(&self.offset.to_le_bytes());
        s
    }
}

/// Where a value lies in the log: the Write record at `offset` of segment `segment` holds it
/// (`len` bytes). The record's checksum, bound to (epoch, segment, offset), is verified on every
/// read, and its key and LSN must be the version's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ValueRef {
    /// The segment's id (1..=[`MAX_ID`]).
    pub segment: u64,
    /// The record's offset in the segment (a multiple of 8, below [`MAX_SEGMENT_LEN`]).
    pub offset: u64,
    /// The value's length in bytes.
    pub len: u32,
}

impl ValueRef {
    /// Whether the fields are within the format's ranges (what the decoder checks).
    pub fn is_valid(&self) -> bool {
        (1..=MAX_ID).contains(&self.segment)
            && self.offset.is_multiple_of(8)
            && self.offset >= crate::SEGMENT_HEADER_LEN as u64
            && self.offset < MAX_SEGMENT_LEN
            && (self.len as usize) < crate::MAX_RECORD_LEN
    }
}

/// The value of a checkpoint entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryValue<'a> {
    /// A tombstone: the key was deleted by this version.
    Tombstone,
    /// The value's bytes, in the checkpoint ([`ENTRY_USER`], [`ENTRY_SYSTEM`]).
    Inline(&'a [u8]),
    /// The value's place in the log ([`ENTRY_USER_REF`]).
    InSegment(ValueRef),
}

impl<'a> EntryValue<'a> {
    /// `Inline(v)` for `Some(v)`, `Tombstone` for `None`.
    pub fn from_option(v: Option<&'a [u8]>) -> EntryValue<'a> {
        v.map_or(EntryValue::Tombstone, EntryValue::Inline)
    }

    /// The inline bytes, if any.
    pub fn inline(&self) -> Option<&'a [u8]> {
        match *self {
            EntryValue::Inline(v) => Some(v),
            _ => None,
        }
    }

    /// Whether this is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        matches!(self, EntryValue::Tombstone)
    }

    /// Payload bytes after the key in an encoded entry.
    fn payload_len(&self) -> usize {
        match self {
            EntryValue::Tombstone => 0,
            EntryValue::Inline(v) => v.len(),
            EntryValue::InSegment(_) => VALUE_REF_LEN,
        }
    }
}

/// One version in a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// [`ENTRY_USER`], [`ENTRY_USER_REF`] (exactly when `value` is [`EntryValue::InSegment`]) or
    /// [`ENTRY_SYSTEM`].
    pub kind: u8,
    /// Flags ([`ENTRY_FLAGS`]).
    pub flags: u8,
    /// The version's LSN (1..=MAX_ID).
    pub lsn: u64,
    /// The key (1..=65535 bytes).
    pub key: &'a [u8],
    /// The value.
    pub value: EntryValue<'a>,
}

impl Entry<'_> {
    /// Bytes of the encoded entry, padding included.
    pub fn encoded_len(&self) -> usize {
        align_up(
            (ENTRY_HEADER_LEN + self.key.len() + self.value.payload_len()) as u64,
            8,
        ) as usize
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Appends `e` to a block's raw payload. Asserts the entry's invariants (what the decoder checks).
pub fn encode_entry(out: &mut Vec<u8>, e: &Entry<'_>) {
    assert!(
        !e.key.is_empty() && e.key.len() <= u16::MAX as usize,
        "checkpoint entry: key of {} bytes",
        e.key.len()
    );
    assert!(
        e.lsn >= 1 && e.lsn <= MAX_ID,
        "checkpoint entry: LSN {}",
        e.lsn
    );
    assert!(
        e.flags & !ENTRY_FLAGS == 0,
        "checkpoint entry: flags {:#x}",
        e.flags
    );
    assert!(
        match e.value {
            EntryValue::InSegment(r) => e.kind == ENTRY_USER_REF && r.is_valid(),
            _ => e.kind == ENTRY_USER || e.kind == ENTRY_SYSTEM,
        },
        "checkpoint entry: kind {} for {:?}",
        e.kind,
        e.value
    );
    let value_len = match e.value {
        EntryValue::Inline(v) => {
            assert!(
                (v.len() as u64) < MAX_BLOCK_LEN,
                "checkpoint entry: value too long"
            );
            v.len() as u32
        }
        EntryValue::InSegment(r) => r.len,
        EntryValue::Tombstone => ENTRY_TOMBSTONE,
    };
    let start = out.len();
    out.extend_from_slice(&e.lsn.to_le_bytes());
    out.extend_from_slice(&value_len.to_le_bytes());
    out.extend_from_slice(&(e.key.len() as u16).to_le_bytes());
    out.push(e.kind);
    out.push(e.flags);
    out.extend_from_slice(e.key);
    match e.value {
        EntryValue::Inline(v) => out.extend_from_slice(v),
        EntryValue::InSegment(r) => {
            out.extend_from_slice(&r.segment.to_le_bytes());
            out.extend_from_slice(&r.offset.to_le_bytes());
        }
        EntryValue::Tombstone => {}
    }
    out.resize(start + e.encoded_len(), 0);
}

/// The entries of a block's raw payload, validated one by one (never panics on any bytes).
/// `offset` is the block's offset in the file, for errors.
pub struct Entries<'a> {
    raw: &'a [u8],
    pos: usize,
    offset: u64,
}

impl<'a> Entries<'a> {
    /// Iterates `raw`, a decoded block payload, of the block at `offset`.
    pub fn new(raw: &'a [u8], offset: u64) -> Entries<'a> {
        Entries {
            raw,
            pos: 0,
            offset,
        }
    }

    fn bad(&self, reason: &'static str) -> DecodeError {
        DecodeError::Malformed {
            offset: self.offset,
            reason,
        }
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.raw.len() {
            return None;
        }
        let rest = &self.raw[self.pos..];
        let fail = |this: &mut Self, e| {
            this.pos = this.raw.len();
            Some(Err(e))
        };
        if rest.len() < ENTRY_HEADER_LEN {
            return fail(self, self.bad("a checkpoint entry header is cut short"));
        }
        let lsn = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
        let value_len = le32(rest, 8);
        let key_len = u16::from_le_bytes([rest[12], rest[13]]) as usize;
        let (kind, flags) = (rest[14], rest[15]);
        if lsn == 0 || lsn > MAX_ID {
            return fail(
                self,
                self.bad("a checkpoint entry's LSN is 0 or above the maximum"),
            );
        }
        if flags & !ENTRY_FLAGS != 0 {
            return fail(self, self.bad("a checkpoint entry has unknown flag bits"));
        }
        if key_len == 0 || !matches!(kind, ENTRY_USER | ENTRY_SYSTEM | ENTRY_USER_REF) {
            return fail(
                self,
                self.bad("a checkpoint entry has an empty key or an unknown kind"),
            );
        }
        let by_ref = kind == ENTRY_USER_REF;
        if by_ref && value_len == ENTRY_TOMBSTONE {
            return fail(
                self,
                self.bad("a checkpoint entry refers to a tombstone's value"),
            );
        }
        let vlen = if by_ref {
            VALUE_REF_LEN
        } else if value_len == ENTRY_TOMBSTONE {
            0
        } else {
            value_len as usize
        };
        let len = align_up((ENTRY_HEADER_LEN + key_len + vlen) as u64, 8) as usize;
        if len > rest.len() {
            return fail(self, self.bad("a checkpoint entry runs past its block"));
        }
        let key = &rest[ENTRY_HEADER_LEN..ENTRY_HEADER_LEN + key_len];
        let payload = &rest[ENTRY_HEADER_LEN + key_len..ENTRY_HEADER_LEN + key_len + vlen];
        let value = if by_ref {
            let r = ValueRef {
                segment: u64::from_le_bytes(payload[..8].try_into().expect("8 bytes")),
                offset: u64::from_le_bytes(payload[8..16].try_into().expect("8 bytes")),
                len: value_len,
            };
            if !r.is_valid() {
                return fail(
                    self,
                    self.bad("a checkpoint entry's value reference is out of range"),
                );
            }
            EntryValue::InSegment(r)
        } else if value_len == ENTRY_TOMBSTONE {
            EntryValue::Tombstone
        } else {
            EntryValue::Inline(payload)
        };
        if rest[ENTRY_HEADER_LEN + key_len + vlen..len]
            .iter()
            .any(|&b| b != 0)
        {
            return fail(self, self.bad("a checkpoint entry's padding is not zero"));
        }
        self.pos += len;
        Some(Ok(Entry {
            kind,
            flags,
            lsn,
            key,
            value,
        }))
    }
}

/// Appends one block to `out`: its header, `raw` stored through `codec`, and padding. `pos` names
/// where the block will lie (its offset is `pos.offset`). Returns the bytes appended.
pub fn encode_block(
    out: &mut Vec<u8>,
    raw: &[u8],
    entries: u32,
    codec: &dyn Codec,
    pos: BlockPos,
) -> usize {
    assert!(entries >= 1, "checkpoint block without entries");
    assert!(
        (raw.len() as u64) <= MAX_BLOCK_LEN,
        "checkpoint block too long"
    );
    debug_assert_eq!(
        Entries::new(raw, pos.offset).count(),
        entries as usize,
        "the block holds the entries it counts"
    );
    let start = out.len();
    out.resize(start + BLOCK_HEADER_LEN, 0);
    codec.encode(raw, out);
    let stored_len = out.len() - start - BLOCK_HEADER_LEN;
    assert!(
        (stored_len as u64) <= MAX_BLOCK_LEN,
        "stored block too long"
    );
    let mut h = BlockHeader {
        crc: 0,
        codec: codec.id(),
        raw_len: raw.len() as u32,
        stored_len: stored_len as u32,
        entries,
        reserved: 0,
        offset: pos.offset,
    };
    out[start..start + BLOCK_HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&h));
    h.crc = crc_with_seed(&pos.seed(), &out[start..]);
    out[start..start + 4].copy_from_slice(&h.crc.to_le_bytes());
    let total = align_up((BLOCK_HEADER_LEN + stored_len) as u64, 8) as usize;
    out.resize(start + total, 0);
    total
}

impl BlockHeader {
    /// Decodes a block header read at `pos.offset`, checking what can be checked before the
    /// payload is read: lengths within `available` bytes of the file after the header and within
    /// [`MAX_BLOCK_LEN`], the offset, the codec. Call [`BlockHeader::verify`] on the payload next.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] naming the block's offset.
    pub fn decode(src: &[u8], pos: BlockPos, available: u64) -> Result<BlockHeader, DecodeError> {
        if src.len() < BLOCK_HEADER_LEN {
            return Err(DecodeError::Truncated {
                offset: pos.offset,
                needed: BLOCK_HEADER_LEN as u64,
                available: src.len() as u64,
            });
        }
        let h: BlockHeader = bytemuck::pod_read_unaligned(&src[..BLOCK_HEADER_LEN]);
        if h == BlockHeader::zeroed() {
            return Err(DecodeError::Zeroed { offset: pos.offset });
        }
        if h.offset != pos.offset {
            return Err(DecodeError::Malformed {
                offset: pos.offset,
                reason: "a checkpoint block names another offset",
            });
        }
        let stored = u64::from(h.stored_len);
        if stored > available || stored > MAX_BLOCK_LEN || u64::from(h.raw_len) > MAX_BLOCK_LEN {
            return Err(DecodeError::BadLength {
                offset: pos.offset,
                len: stored,
            });
        }
        if h.entries == 0 || h.reserved != 0 {
            return Err(DecodeError::Malformed {
                offset: pos.offset,
                reason: "a checkpoint block with no entries or non-zero reserved bytes",
            });
        }
        Ok(h)
    }

    /// Bytes of the block in the file: header, stored payload and padding.
    pub fn total_len(&self) -> u64 {
        align_up(BLOCK_HEADER_LEN as u64 + u64::from(self.stored_len), 8)
    }

    /// Verifies the checksum of the block whose header and stored payload are `block` (at least
    /// `BLOCK_HEADER_LEN + stored_len` bytes; padding is checked to be zero when present).
    ///
    /// # Errors
    ///
    /// [`DecodeError::Checksum`] (or `Truncated` / `Malformed`) at the block's offset.
    pub fn verify(&self, block: &[u8], pos: BlockPos) -> Result<(), DecodeError> {
        let end = BLOCK_HEADER_LEN + self.stored_len as usize;
        if block.len() < end {
            return Err(DecodeError::Truncated {
                offset: pos.offset,
                needed: end as u64,
                available: block.len() as u64,
            });
        }
        let mut zeroed = [0u8; BLOCK_HEADER_LEN];
        zeroed.copy_from_slice(&block[..BLOCK_HEADER_LEN]);
        zeroed[..4].fill(0);
        let computed = crc32c::crc32c_append(
            crc_with_seed(&pos.seed(), &zeroed),
            &block[BLOCK_HEADER_LEN..end],
        );
        if computed != self.crc {
            return Err(DecodeError::Checksum {
                offset: pos.offset,
                stored: self.crc,
                computed,
            });
        }
        let padded = (self.total_len() as usize).min(block.len());
        if block[end..padded].iter().any(|&b| b != 0) {
            return Err(DecodeError::Malformed {
                offset: pos.offset,
                reason: "a checkpoint block's padding is not zero",
            });
        }
        Ok(())
    }
}

impl CheckpointHeader {
    /// A header for checkpoint `id` of the database of `epoch` at `lsn`.
    pub fn new(epoch: u64, id: u64, lsn: u64, codec: u32, created_ns: u64) -> Self {
        CheckpointHeader {
            magic: CHECKPOINT_MAGIC,
            crc: 0,
            version: FORMAT_VERSION,
            epoch,
            id,
            lsn,
            codec,
            reserved0: 0,
            created_ns,
            reserved: 0,
        }
    }

    /// The header's bytes.
    pub fn encode(&self) -> [u8; CHECKPOINT_HEADER_LEN] {
        assert!(self.id >= 1 && self.id <= MAX_ID && self.lsn <= MAX_ID);
        let mut h = *self;
        h.crc = 0;
        h.crc = crc32c::crc32c(bytemuck::bytes_of(&h));
        let mut out = [0u8; CHECKPOINT_HEADER_LEN];
        out.copy_from_slice(bytemuck::bytes_of(&h));
        out
    }

    /// Decodes a checkpoint header and checks that it is checkpoint `id` of `epoch`.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] at offset 0 (or the offending field's).
    pub fn decode(src: &[u8], epoch: u64, id: u64) -> Result<CheckpointHeader, DecodeError> {
        if src.len() < CHECKPOINT_HEADER_LEN {
            return Err(DecodeError::Truncated {
                offset: 0,
                needed: CHECKPOINT_HEADER_LEN as u64,
                available: src.len() as u64,
            });
        }
        let h: CheckpointHeader = bytemuck::pod_read_unaligned(&src[..CHECKPOINT_HEADER_LEN]);
        if h.magic != CHECKPOINT_MAGIC {
            return Err(DecodeError::BadMagic { offset: 0 });
        }
        let mut z = h;
        z.crc = 0;
        let computed = crc32c::crc32c(bytemuck::bytes_of(&z));
        if computed != h.crc {
            return Err(DecodeError::Checksum {
                offset: 0,
                stored: h.crc,
                computed,
            });
        }
        // Checkpoint files appeared in version 3 and are laid out alike in every version since.
        if !(3..=FORMAT_VERSION).contains(&h.version) {
            return Err(DecodeError::UnsupportedVersion {
                offset: 12,
                version: h.version,
            });
        }
        if h.epoch != epoch || h.id != id {
            return Err(DecodeError::Malformed {
                offset: 16,
                reason: "the checkpoint belongs to another database or has another id",
            });
        }
        if h.lsn > MAX_ID || h.reserved0 != 0 || h.reserved != 0 {
            return Err(DecodeError::Malformed {
                offset: 32,
                reason: "checkpoint LSN out of range or reserved bytes not zero",
            });
        }
        Ok(h)
    }
}

impl CheckpointFooter {
    fn seed(epoch: u64, id: u64) -> [u8; 16] {
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&epoch.to_le_bytes());
        s[8..].copy_from_slice(&id.to_le_bytes());
        s
    }

    /// A footer for checkpoint `id` at `lsn` whose blocks end at `data_end`.
    pub fn new(lsn: u64, id: u64, blocks: u64, entries: u64, keys: u64, data_end: u64) -> Self {
        CheckpointFooter {
            magic: CHECKPOINT_FOOTER_MAGIC,
            crc: 0,
            version: FORMAT_VERSION,
            lsn,
            id,
            blocks,
            entries,
            keys,
            data_end,
        }
    }

    /// The footer's bytes, bound to `epoch`.
    pub fn encode(&self, epoch: u64) -> [u8; CHECKPOINT_FOOTER_LEN] {
        assert!(self.keys <= self.entries && self.blocks <= self.entries);
        let mut f = *self;
        f.magic = CHECKPOINT_FOOTER_MAGIC;
        f.version = FORMAT_VERSION;
        f.crc = 0;
        f.crc = crc_with_seed(&Self::seed(epoch, f.id), bytemuck::bytes_of(&f));
        let mut out = [0u8; CHECKPOINT_FOOTER_LEN];
        out.copy_from_slice(bytemuck::bytes_of(&f));
        out
    }

    /// Decodes the footer read at offset `at` (the file's last 64 bytes) of checkpoint `header`.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] at `at`: damaged, or naming another checkpoint, LSN or offset.
    pub fn decode(
        src: &[u8],
        at: u64,
        epoch: u64,
        header: &CheckpointHeader,
    ) -> Result<CheckpointFooter, DecodeError> {
        if src.len() < CHECKPOINT_FOOTER_LEN {
            return Err(DecodeError::Truncated {
                offset: at,
                needed: CHECKPOINT_FOOTER_LEN as u64,
                available: src.len() as u64,
            });
        }
        let f: CheckpointFooter = bytemuck::pod_read_unaligned(&src[..CHECKPOINT_FOOTER_LEN]);
        if f.magic != CHECKPOINT_FOOTER_MAGIC {
            return Err(DecodeError::BadMagic { offset: at });
        }
        let mut z = f;
        z.crc = 0;
        let computed = crc_with_seed(&Self::seed(epoch, header.id), bytemuck::bytes_of(&z));
        if computed != f.crc {
            return Err(DecodeError::Checksum {
                offset: at,
                stored: f.crc,
                computed,
            });
        }
        if f.version != header.version
            || f.id != header.id
            || f.lsn != header.lsn
            || f.data_end != at
            || f.keys > f.entries
            || f.blocks > f.entries
        {
            return Err(DecodeError::Malformed {
                offset: at,
                reason: "the checkpoint footer contradicts its header, its place or itself",
            });
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Identity;

    fn entries() -> Vec<(Vec<u8>, u64, Option<Vec<u8>>)> {
        (0..50u64)
            .map(|i| {
                let v = (i % 7 != 3).then(|| vec![i as u8; (i * 13 % 40) as usize]);
                (format!("key{i:03}").into_bytes(), 100 - i, v)
            })
            .collect()
    }

    /// A whole file: header, two blocks, footer; decoded back entry by entry.
    #[test]
    fn file_round_trip_and_binding() {
        let (epoch, id, lsn) = (7, 3, 100);
        let mut file = CheckpointHeader::new(epoch, id, lsn, 0, 1)
            .encode()
            .to_vec();
        let all = entries();
        for chunk in all.chunks(30) {
            let mut raw = Vec::new();
            for (k, l, v) in chunk {
                encode_entry(
                    &mut raw,
                    &Entry {
                        kind: ENTRY_USER,
                        flags: 0,
                        lsn: *l,
                        key: k,
                        value: EntryValue::from_option(v.as_deref()),
                    },
                );
            }
            let pos = BlockPos {
                epoch,
                id,
                offset: file.len() as u64,
            };
            encode_block(&mut file, &raw, chunk.len() as u32, &Identity, pos);
        }
        let data_end = file.len() as u64;
        let footer = CheckpointFooter {
            lsn,
            id,
            blocks: 2,
            entries: all.len() as u64,
            keys: all.len() as u64,
            data_end,
            ..CheckpointFooter::zeroed()
        };
        file.extend_from_slice(&footer.encode(epoch));

        // Read it back.
        let h = CheckpointHeader::decode(&file, epoch, id).unwrap();
        assert_eq!(h.lsn, lsn);
        let f = CheckpointFooter::decode(&file[data_end as usize..], data_end, epoch, &h).unwrap();
        assert_eq!(f.entries, 50);
        let mut at = CHECKPOINT_HEADER_LEN as u64;
        let mut got = Vec::new();
        while at < data_end {
            let pos = BlockPos {
                epoch,
                id,
                offset: at,
            };
            let b = BlockHeader::decode(&file[at as usize..], pos, data_end - at).unwrap();
            b.verify(&file[at as usize..], pos).unwrap();
            let stored = &file[at as usize + BLOCK_HEADER_LEN..][..b.stored_len as usize];
            let mut raw = Vec::new();
            Identity
                .decode(stored, b.raw_len as usize, &mut raw)
                .unwrap();
            for e in Entries::new(&raw, at) {
                let e = e.unwrap();
                assert!(!matches!(e.value, EntryValue::InSegment(_)));
                got.push((e.key.to_vec(), e.lsn, e.value.inline().map(<[u8]>::to_vec)));
            }
            at += b.total_len();
        }
        assert_eq!(got, all);

        // Bound to epoch, id and offset: the same bytes elsewhere fail.
        let first = CHECKPOINT_HEADER_LEN as u64;
        let b = BlockHeader::decode(
            &file[first as usize..],
            BlockPos {
                epoch,
                id,
                offset: first,
            },
            data_end,
        )
        .unwrap();
        for other in [
            BlockPos {
                epoch: epoch + 1,
                id,
                offset: first,
            },
            BlockPos {
                epoch,
                id: id + 1,
                offset: first,
            },
        ] {
            assert!(matches!(
                b.verify(&file[first as usize..], other),
                Err(DecodeError::Checksum { .. })
            ));
        }
        assert!(CheckpointHeader::decode(&file, epoch, id + 1).is_err());
        assert!(
            CheckpointFooter::decode(&file[data_end as usize..], data_end + 8, epoch, &h).is_err()
        );
        // A flipped payload byte fails the checksum.
        let mut bad = file.clone();
        bad[first as usize + BLOCK_HEADER_LEN + 3] ^= 1;
        let pos = BlockPos {
            epoch,
            id,
            offset: first,
        };
        assert!(matches!(
            b.verify(&bad[first as usize..], pos),
            Err(DecodeError::Checksum { .. })
        ));
    }

    /// Arbitrary bytes never panic the decoders.
    #[test]
    fn arbitrary_bytes_are_errors_not_panics() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let pos = BlockPos {
            epoch: 1,
            id: 1,
            offset: 64,
        };
        for len in 0..300usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 5) as u8 * 60
                })
                .collect();
            let _ = CheckpointHeader::decode(&bytes, 1, 1);
            if let Ok(b) = BlockHeader::decode(&bytes, pos, len as u64) {
                let _ = b.verify(&bytes, pos);
            }
            for e in Entries::new(&bytes, 64) {
                if e.is_err() {
                    break;
                }
            }
            let h = CheckpointHeader::new(1, 1, 1, 0, 0);
            let _ = CheckpointFooter::decode(&bytes, 0, 1, &h);
        }
    }

    /// Flag bits other than [`ENTRY_FLAGS`] are refused: the engine keeps in-memory flags in
    /// other bits (a value held by reference), which a checksummed entry must not be able to set
    /// (a read of its value then panicked; found in review).
    #[test]
    fn unknown_flag_bits_are_refused() {
        let e = Entry {
            kind: ENTRY_USER,
            flags: ENTRY_FLAGS,
            lsn: 5,
            key: b"k",
            value: EntryValue::Inline(b"12345"),
        };
        let mut raw = Vec::new();
        encode_entry(&mut raw, &e);
        let back: Vec<_> = Entries::new(&raw, 64).collect();
        assert_eq!(back, vec![Ok(e)]);
        for bit in 1..8 {
            let mut bad = raw.clone();
            bad[15] |= 1 << bit;
            let got: Vec<_> = Entries::new(&bad, 64).collect();
            assert!(
                matches!(got.as_slice(), [Err(DecodeError::Malformed { .. })]),
                "bit {bit}: {got:?}"
            );
        }
    }

    /// Entries whose values lie in a segment round-trip beside inline ones and tombstones; a
    /// reference out of range, or to a tombstone, is refused with an error, never a panic.
    #[test]
    fn value_references_round_trip_and_are_validated() {
        let r = ValueRef {
            segment: 9,
            offset: 4096,
            len: 1000,
        };
        let list = [
            Entry {
                kind: ENTRY_USER_REF,
                flags: 1,
                lsn: 5,
                key: b"a",
                value: EntryValue::InSegment(r),
            },
            Entry {
                kind: ENTRY_USER,
                flags: 0,
                lsn: 4,
                key: b"a",
                value: EntryValue::Inline(b"small"),
            },
            Entry {
                kind: ENTRY_USER,
                flags: 0,
                lsn: 3,
                key: b"b",
                value: EntryValue::Tombstone,
            },
        ];
        let mut raw = Vec::new();
        for e in &list {
            encode_entry(&mut raw, e);
        }
        assert_eq!(
            list[0].encoded_len(),
            align_up((ENTRY_HEADER_LEN + 1 + VALUE_REF_LEN) as u64, 8) as usize
        );
        let back: Vec<Entry<'_>> = Entries::new(&raw, 64).map(Result::unwrap).collect();
        assert_eq!(back, list);

        // The same bytes with the reference's fields damaged.
        let at_ref = ENTRY_HEADER_LEN + 1;
        for (field_at, bad) in [(0, 0u64), (8, 4097), (8, 2), (8, MAX_SEGMENT_LEN)] {
            let mut b = raw.clone();
            b[at_ref + field_at..at_ref + field_at + 8].copy_from_slice(&bad.to_le_bytes());
            let first = Entries::new(&b, 64).next().unwrap();
            assert!(
                matches!(first, Err(DecodeError::Malformed { offset: 64, .. })),
                "field at {field_at} = {bad}: {first:?}"
            );
        }
        // A reference entry with a tombstone's length.
        let mut b = raw.clone();
        b[8..12].copy_from_slice(&ENTRY_TOMBSTONE.to_le_bytes());
        assert!(Entries::new(&b, 64).next().unwrap().is_err());
        // Kind 3 is unknown.
        let mut b = raw;
        b[14] = 3;
        assert!(Entries::new(&b, 64).next().unwrap().is_err());
    }
}
