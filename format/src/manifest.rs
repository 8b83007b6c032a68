//! The manifest: the root of truth of a database directory. It names the format version, the
//! database's epoch, and — from version 3 — the current checkpoint, the first segment still
//! needed, the trim floor, the floors of the ids a new run may hand out, and the block codec.
//! It is replaced as a whole (new file, fdatasync, rename, directory fsync): see `docs/FORMAT.md`
//! section 3.

use bytemuck::{Pod, Zeroable};
use std::mem::offset_of;

use crate::{DecodeError, FORMAT_VERSION, MAX_ID, MIN_FORMAT_VERSION};

/// Magic number at the start of the manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"RINGLOG\0";
/// Size of the manifest file in bytes (format version 3 on).
pub const MANIFEST_LEN: usize = 128;
/// Size of a manifest of format versions 1 and 2, which end after `created_ns` and four reserved
/// words (read, never written).
pub const MANIFEST_V2_LEN: usize = 64;

/// The manifest file's contents.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Manifest {
    /// [`MANIFEST_MAGIC`].
    pub magic: [u8; 8],
    /// crc32c of the file's bytes with this field zero.
    pub crc: u32,
    /// The format version of this manifest (of the directory's newest files).
    pub version: u32,
    /// Random id chosen at creation; every record's and checkpoint block's checksum is bound to it.
    pub epoch: u64,
    /// Creation time of the database, ns since the Unix epoch.
    pub created_ns: u64,
    /// Update sequence number: 0 at creation, +1 with every replacement.
    pub seq: u64,
    /// The current checkpoint's id (file `<id>.ckpt`, 20 digits), 0 when there is none.
    pub checkpoint_id: u64,
    /// The LSN the checkpoint holds the database at (0 without one).
    pub checkpoint_lsn: u64,
    /// The checkpoint file's exact length in bytes (0 without one).
    pub checkpoint_len: u64,
    /// The first segment recovery reads; lower ids are no longer needed (0: every segment).
    pub first_segment: u64,
    /// Reads below this LSN are refused (`HistoryTrimmed`-style); it never decreases.
    pub trim_floor: u64,
    /// LSNs up to this one may have been handed out: a new run starts above it.
    pub lsn_floor: u64,
    /// Transaction ids up to this one were used.
    pub txn_floor: u64,
    /// Run ids up to this one were used.
    pub run_floor: u64,
    /// The codec of checkpoint blocks ([`crate::Codec::id`]).
    pub codec: u32,
    /// Reserved, zero.
    pub reserved0: u32,
    /// Reserved, zero.
    pub reserved: [u64; 2],
}

const _: () = assert!(std::mem::size_of::<Manifest>() == MANIFEST_LEN);

impl Manifest {
    /// The lowest segment id the log must still start at: `first_segment`, or 1 (segment ids
    /// start at 1, and only compaction, which sets `first_segment`, deletes segments) when it is
    /// 0. Recovery refuses a log whose first segment present is above it: that segment is
    /// missing.
    pub fn first_needed_segment(&self) -> u64 {
        self.first_segment.max(1)
    }

    /// The manifest that replaces this one: its sequence number one higher, in the current
    /// format version (a version-1 or version-2 manifest, which has no room for the fields a
    /// later update sets, is written in the current layout once anything changes); the caller
    /// changes the fields the update is for.
    #[must_use]
    pub fn successor(&self) -> Manifest {
        Manifest {
            version: FORMAT_VERSION,
            seq: self.seq + 1,
            ..*self
        }
    }

    /// A manifest for a new database: no checkpoint, every floor 0, the identity codec.
    pub fn new(epoch: u64, created_ns: u64) -> Self {
        Manifest {
            magic: MANIFEST_MAGIC,
            version: FORMAT_VERSION,
            epoch,
            created_ns,
            ..Manifest::zeroed()
        }
    }

    fn checksum(&self, len: usize) -> u32 {
        let mut m = *self;
        m.crc = 0;
        crc32c::crc32c(&bytemuck::bytes_of(&m)[..len])
    }

    /// The manifest's bytes (always the current, version-3 layout). Asserts the invariants a
    /// manifest must hold (ids within the format's range, a checkpoint named with its LSN).
    pub fn encode(&self) -> [u8; MANIFEST_LEN] {
        // The 128-byte layout is version 3's (later versions may extend it; tests write them).
        assert!(
            self.version >= 3,
            "manifest: encoding version {}",
            self.version
        );
        if let Err(e) = self.check(0) {
            panic!("manifest: encoding an invalid manifest: {e}");
        }
        let mut m = *self;
        m.crc = self.checksum(MANIFEST_LEN);
        let mut out = [0u8; MANIFEST_LEN];
        out.copy_from_slice(bytemuck::bytes_of(&m));
        out
    }

    /// The field invariants (offsets relative to `base`).
    fn check(&self, base: u64) -> Result<(), DecodeError> {
        let at = |offset: usize| base + offset as u64;
        let fields = [
            (
                offset_of!(Manifest, checkpoint_id),
                "checkpoint id",
                self.checkpoint_id,
            ),
            (
                offset_of!(Manifest, checkpoint_lsn),
                "checkpoint LSN",
                self.checkpoint_lsn,
            ),
            (
                offset_of!(Manifest, first_segment),
                "first segment",
                self.first_segment,
            ),
            (
                offset_of!(Manifest, trim_floor),
                "trim floor",
                self.trim_floor,
            ),
            (offset_of!(Manifest, lsn_floor), "LSN floor", self.lsn_floor),
            (
                offset_of!(Manifest, txn_floor),
                "transaction id floor",
                self.txn_floor,
            ),
            (
                offset_of!(Manifest, run_floor),
                "run id floor",
                self.run_floor,
            ),
        ];
        for (off, field, value) in fields {
            if value > MAX_ID {
                return Err(DecodeError::OutOfRange {
                    offset: at(off),
                    field,
                    value,
                    max: MAX_ID,
                });
            }
        }
        if (self.checkpoint_id == 0) != (self.checkpoint_len == 0)
            || (self.checkpoint_id == 0 && self.checkpoint_lsn != 0)
        {
            return Err(DecodeError::Malformed {
                offset: at(offset_of!(Manifest, checkpoint_id)),
                reason: "a checkpoint must have an id and a length, and none may have an LSN",
            });
        }
        if self.checkpoint_id == 0 && self.first_segment > 1 {
            // Only compaction moves the first needed segment past 1, and it deletes only what a
            // checkpoint holds: recovery would take every segment below it for a leftover.
            return Err(DecodeError::Malformed {
                offset: at(offset_of!(Manifest, first_segment)),
                reason: "a manifest without a checkpoint needs the log from segment 1",
            });
        }
        if self.lsn_floor < self.checkpoint_lsn {
            return Err(DecodeError::Malformed {
                offset: at(offset_of!(Manifest, lsn_floor)),
                reason: "the LSN floor is below the checkpoint's LSN",
            });
        }
        if self.reserved0 != 0 || self.reserved != [0; 2] {
            return Err(DecodeError::Malformed {
                offset: at(offset_of!(Manifest, reserved0)),
                reason: "reserved manifest bytes are not zero",
            });
        }
        Ok(())
    }

    /// Decodes and verifies manifest bytes: [`MANIFEST_LEN`] bytes of version 3, or
    /// [`MANIFEST_V2_LEN`] bytes of versions 1 and 2 (read with every later field zero). A version
    /// mismatch is reported as [`DecodeError::UnsupportedVersion`] only once magic and checksum
    /// are valid.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`](crate::DecodeError) naming what is wrong and where: wrong length, bad
    /// magic, bad checksum, unsupported version, a field out of range or contradicting another.
    pub fn decode(src: &[u8]) -> Result<Manifest, DecodeError> {
        let len = src.len();
        if len != MANIFEST_LEN && len != MANIFEST_V2_LEN {
            return Err(DecodeError::Truncated {
                offset: 0,
                needed: MANIFEST_LEN as u64,
                available: len as u64,
            });
        }
        let mut m = Manifest::zeroed();
        bytemuck::bytes_of_mut(&mut m)[..len].copy_from_slice(src);
        if m.magic != MANIFEST_MAGIC {
            return Err(DecodeError::BadMagic { offset: 0 });
        }
        let computed = m.checksum(len);
        if computed != m.crc {
            return Err(DecodeError::Checksum {
                offset: 0,
                stored: m.crc,
                computed,
            });
        }
        if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&m.version) {
            return Err(DecodeError::UnsupportedVersion {
                offset: 12,
                version: m.version,
            });
        }
        let v3 = m.version >= 3;
        if v3 != (len == MANIFEST_LEN) {
            return Err(DecodeError::Malformed {
                offset: 12,
                reason: "the manifest's length does not match its version",
            });
        }
        if !v3 {
            // Versions 1 and 2: four reserved words after `created_ns`, zero.
            if let Some(i) = src[32..64]
                .chunks(8)
                .position(|w| w.iter().any(|&b| b != 0))
            {
                return Err(DecodeError::Malformed {
                    offset: 32 + 8 * i as u64,
                    reason: "reserved manifest bytes are not zero",
                });
            }
            return Ok(m);
        }
        m.check(0)?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `m`'s bytes with a valid checksum, whatever its fields (the encoder refuses bad ones).
    fn raw(m: &Manifest) -> Vec<u8> {
        let mut bytes = bytemuck::bytes_of(m).to_vec();
        bytes[8..12].fill(0);
        let crc = crc32c::crc32c(&bytes);
        bytes[8..12].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// A field out of range or contradicting another is reported at its own offset (the id and
    /// floor fields' were 8 bytes too high; found in review).
    #[test]
    fn errors_name_the_field_offsets() {
        let m = Manifest::new(42, 7);
        let offset = |e: DecodeError| match e {
            DecodeError::OutOfRange { offset, .. } | DecodeError::Malformed { offset, .. } => {
                offset
            }
            other => panic!("{other:?}"),
        };
        let mut bad = m;
        bad.trim_floor = u64::MAX;
        assert_eq!(offset(Manifest::decode(&raw(&bad)).unwrap_err()), 72);
        let mut bad = m;
        bad.run_floor = u64::MAX;
        assert_eq!(offset(Manifest::decode(&raw(&bad)).unwrap_err()), 96);
        let mut bad = m;
        bad.checkpoint_id = 3;
        assert_eq!(offset(Manifest::decode(&raw(&bad)).unwrap_err()), 40);
        let mut bad = m;
        bad.checkpoint_id = 3;
        bad.checkpoint_len = 100;
        bad.checkpoint_lsn = 9;
        bad.lsn_floor = 8;
        assert_eq!(offset(Manifest::decode(&raw(&bad)).unwrap_err()), 80);
        let mut bad = m;
        bad.reserved0 = 1;
        assert_eq!(offset(Manifest::decode(&raw(&bad)).unwrap_err()), 108);
    }

    #[test]
    fn round_trip_and_version_check() {
        let m = Manifest::new(42, 7);
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes).unwrap().epoch, 42);
        let mut other = m;
        other.version = 99;
        assert_eq!(
            Manifest::decode(&raw(&other)),
            Err(DecodeError::UnsupportedVersion {
                offset: 12,
                version: 99
            })
        );
        let mut flipped = bytes;
        flipped[20] ^= 1;
        assert!(matches!(
            Manifest::decode(&flipped),
            Err(DecodeError::Checksum { .. })
        ));
        assert!(Manifest::decode(&bytes[..10]).is_err());
        let mut reserved = bytes;
        reserved[120] = 5;
        let crc = {
            let mut z = reserved;
            z[8..12].fill(0);
            crc32c::crc32c(&z)
        };
        reserved[8..12].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            Manifest::decode(&reserved),
            Err(DecodeError::Malformed {
                offset: 108,
                reason: "reserved manifest bytes are not zero"
            })
        );
    }

    /// The bytes of a version-2 manifest (64 bytes) of database `epoch`.
    fn version_2(epoch: u64) -> [u8; MANIFEST_V2_LEN] {
        let mut old = [0u8; MANIFEST_V2_LEN];
        old[..8].copy_from_slice(&MANIFEST_MAGIC);
        old[12..16].copy_from_slice(&2u32.to_le_bytes());
        old[16..24].copy_from_slice(&epoch.to_le_bytes());
        let crc = crc32c::crc32c(&old);
        old[8..12].copy_from_slice(&crc.to_le_bytes());
        old
    }

    /// A version-2 manifest (64 bytes) still decodes, with every version-3 field zero.
    #[test]
    fn version_2_manifests_decode() {
        let m = Manifest::decode(&version_2(42)).unwrap();
        assert_eq!((m.version, m.epoch, m.checkpoint_id, m.seq), (2, 42, 0, 0));
        // A 128-byte file claiming version 2, or 64 bytes claiming 3, is refused.
        let mut v3 = Manifest::new(1, 2);
        v3.version = 2;
        assert!(matches!(
            Manifest::decode(&raw(&v3)),
            Err(DecodeError::Malformed { offset: 12, .. })
        ));
    }

    /// The successor of a version-2 manifest is in the current layout, its sequence one higher,
    /// and encodes (a review found updates re-encoding version 2 and panicking).
    #[test]
    fn a_successor_is_in_the_current_version() {
        let m = Manifest::decode(&version_2(42)).unwrap();
        let mut next = m.successor();
        next.lsn_floor = 7;
        assert_eq!(
            (next.version, next.seq, next.epoch),
            (FORMAT_VERSION, 1, 42)
        );
        let back = Manifest::decode(&next.encode()).unwrap();
        assert_eq!(
            (back.version, back.seq, back.lsn_floor),
            (FORMAT_VERSION, 1, 7)
        );
    }

    /// Segments below the first needed one are deleted only by compaction, into a checkpoint:
    /// a manifest needing the log from a later segment without one is malformed.
    #[test]
    fn a_first_segment_past_1_needs_a_checkpoint() {
        let mut m = Manifest::new(1, 2);
        m.first_segment = 1;
        assert!(Manifest::decode(&m.encode()).is_ok());
        m.first_segment = 5;
        assert_eq!(
            Manifest::decode(&raw(&m)),
            Err(DecodeError::Malformed {
                offset: offset_of!(Manifest, first_segment) as u64,
                reason: "a manifest without a checkpoint needs the log from segment 1",
            })
        );
        m.checkpoint_id = 3;
        m.checkpoint_len = 4096;
        m.checkpoint_lsn = 10;
        m.lsn_floor = 10;
        assert!(Manifest::decode(&m.encode()).is_ok());
    }

    #[test]
    fn checkpoint_fields_are_checked() {
        let mut m = Manifest::new(1, 2);
        m.checkpoint_id = 3;
        m.checkpoint_len = 4096;
        m.checkpoint_lsn = 10;
        m.lsn_floor = 10;
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), {
            let mut e = m;
            e.crc = Manifest::decode(&m.encode()).unwrap().crc;
            e
        });
        let mut bad = m;
        bad.lsn_floor = 9;
        assert!(std::panic::catch_unwind(|| bad.encode()).is_err());
    }
}
