//! The segment header: the first [`SEGMENT_HEADER_LEN`] bytes of every segment file.

use bytemuck::{Pod, Zeroable};

use crate::{DecodeError, FORMAT_VERSION, MIN_FORMAT_VERSION};

/// Bytes reserved at the start of a segment for its header; records start here. A full 4 KiB
/// block, so that record batches stay block-aligned for O_DIRECT I/O.
pub const SEGMENT_HEADER_LEN: usize = 4096;
/// Magic number at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"RLOGSEG\0";

/// The header of a segment file. Stored at offset 0; bytes 64..4096 are zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct SegmentHeader {
    /// [`SEGMENT_MAGIC`].
    pub magic: [u8; 8],
    /// crc32c of the 64 header bytes with this field zero.
    pub crc: u32,
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The segment's id; its file is named after it.
    pub segment_id: u64,
    /// The database's epoch (see the manifest).
    pub epoch: u64,
    /// Run id of the engine run that created the segment.
    pub run_id: u64,
    /// Creation time, ns since the Unix epoch.
    pub created_ns: u64,
    /// End of the valid records of segment `segment_id - 1` when this one was created (that
    /// segment was synced first), or 0 for the first segment. Recovery requires the previous
    /// segment to decode cleanly up to exactly this offset.
    pub prev_end: u64,
    /// LSN of the last transaction logged before this segment (0 if none).
    pub base_lsn: u64,
}

const HEADER_STRUCT_LEN: usize = 64;
const _: () = assert!(std::mem::size_of::<SegmentHeader>() == HEADER_STRUCT_LEN);
const _: () = assert!(std::mem::align_of::<SegmentHeader>() == 8);
const _: () = assert!(SEGMENT_HEADER_LEN.is_multiple_of(crate::RECORD_ALIGN));

impl SegmentHeader {
    /// A header for a new segment.
    pub fn new(
        segment_id: u64,
        epoch: u64,
        run_id: u64,
        created_ns: u64,
        prev_end: u64,
        base_lsn: u64,
    ) -> Self {
        SegmentHeader {
            magic: SEGMENT_MAGIC,
            crc: 0,
            version: FORMAT_VERSION,
            segment_id,
            epoch,
            run_id,
            created_ns,
            prev_end,
            base_lsn,
        }
    }

    fn checksum(&self) -> u32 {
        let mut h = *self;
        h.crc = 0;
        crc32c::crc32c(bytemuck::bytes_of(&h))
    }

    /// Writes the header into `dst[..SEGMENT_HEADER_LEN]`, zeroing the reserved bytes.
    pub fn encode(&self, dst: &mut [u8]) {
        assert!(
            dst.len() >= SEGMENT_HEADER_LEN,
            "segment header needs {SEGMENT_HEADER_LEN} bytes"
        );
        assert_eq!(self.magic, SEGMENT_MAGIC);
        assert!(
            self.segment_id <= crate::MAX_ID
                && self.run_id <= crate::MAX_ID
                && self.base_lsn <= crate::MAX_ID
                && self.prev_end <= crate::MAX_SEGMENT_LEN,
            "segment header field out of the format's range: {self:?}"
        );
        let mut h = *self;
        h.crc = self.checksum();
        dst[..HEADER_STRUCT_LEN].copy_from_slice(bytemuck::bytes_of(&h));
        dst[HEADER_STRUCT_LEN..SEGMENT_HEADER_LEN].fill(0);
    }

    /// Decodes and verifies a header from the start of `src`.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`](crate::DecodeError): too short, zeroed, bad magic, bad checksum, unsupported version, an id out of range, or non-zero reserved bytes.
    pub fn decode(src: &[u8]) -> Result<SegmentHeader, DecodeError> {
        if src.len() < SEGMENT_HEADER_LEN {
            return Err(DecodeError::Truncated {
                offset: 0,
                needed: SEGMENT_HEADER_LEN as u64,
                available: src.len() as u64,
            });
        }
        let h: SegmentHeader = bytemuck::pod_read_unaligned(&src[..HEADER_STRUCT_LEN]);
        if h == SegmentHeader::zeroed() {
            return Err(DecodeError::Zeroed { offset: 0 });
        }
        if h.magic != SEGMENT_MAGIC {
            return Err(DecodeError::BadMagic { offset: 0 });
        }
        let computed = h.checksum();
        if computed != h.crc {
            return Err(DecodeError::Checksum {
                offset: 0,
                stored: h.crc,
                computed,
            });
        }
        if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&h.version) {
            return Err(DecodeError::UnsupportedVersion {
                offset: 8 + 4,
                version: h.version,
            });
        }
        for (field, value, max) in [
            ("segment id", h.segment_id, crate::MAX_ID),
            ("run id", h.run_id, crate::MAX_ID),
            ("base LSN", h.base_lsn, crate::MAX_ID),
            ("previous segment end", h.prev_end, crate::MAX_SEGMENT_LEN),
        ] {
            if value > max {
                return Err(DecodeError::OutOfRange {
                    offset: 0,
                    field,
                    value,
                    max,
                });
            }
        }
        let reserved = &src[HEADER_STRUCT_LEN..SEGMENT_HEADER_LEN];
        if let Some(i) = (!crate::all_zero(reserved))
            .then(|| reserved.iter().position(|&b| b != 0))
            .flatten()
        {
            return Err(DecodeError::Malformed {
                offset: (HEADER_STRUCT_LEN + i) as u64,
                reason: "reserved header bytes are not zero",
            });
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_flip_detection() {
        let h = SegmentHeader::new(5, 99, 2, 1234, 8192, 77);
        let mut buf = vec![0xEEu8; SEGMENT_HEADER_LEN];
        h.encode(&mut buf);
        let back = SegmentHeader::decode(&buf).unwrap();
        assert_eq!(back.segment_id, 5);
        assert_eq!(back.prev_end, 8192);
        for bit in 0..SEGMENT_HEADER_LEN * 8 {
            let mut b = buf.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(
                SegmentHeader::decode(&b).is_err(),
                "bit {bit} flip undetected"
            );
        }
        assert!(matches!(
            SegmentHeader::decode(&buf[..100]),
            Err(DecodeError::Truncated { .. })
        ));
        assert_eq!(
            SegmentHeader::decode(&[0u8; SEGMENT_HEADER_LEN]),
            Err(DecodeError::Zeroed { offset: 0 })
        );
    }

    /// Ids the engine could not continue from are refused even with a valid checksum.
    #[test]
    fn ids_above_the_maximum_are_out_of_range() {
        let mut ok = vec![0u8; SEGMENT_HEADER_LEN];
        SegmentHeader::new(crate::MAX_ID, 1, crate::MAX_ID, 0, 0, crate::MAX_ID).encode(&mut ok);
        assert!(SegmentHeader::decode(&ok).is_ok());
        let at = |h: SegmentHeader| {
            // Encode by hand: `encode` refuses the values.
            let mut h = h;
            h.crc = h.checksum();
            let mut b = vec![0u8; SEGMENT_HEADER_LEN];
            b[..HEADER_STRUCT_LEN].copy_from_slice(bytemuck::bytes_of(&h));
            SegmentHeader::decode(&b)
        };
        let base = SegmentHeader::new(1, 1, 1, 0, 0, 1);
        for h in [
            SegmentHeader {
                segment_id: u64::MAX,
                ..base
            },
            SegmentHeader {
                run_id: crate::MAX_ID + 1,
                ..base
            },
            SegmentHeader {
                base_lsn: u64::MAX,
                ..base
            },
            SegmentHeader {
                prev_end: crate::MAX_SEGMENT_LEN + 8,
                ..base
            },
        ] {
            assert!(
                matches!(at(h), Err(DecodeError::OutOfRange { .. })),
                "{h:?}: {:?}",
                at(h)
            );
        }
    }
}
