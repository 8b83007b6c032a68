//! The manifest: a small file naming the directory as a ringlog database of a format version.

use bytemuck::{Pod, Zeroable};

use crate::{DecodeError, FORMAT_VERSION, MIN_FORMAT_VERSION};

/// Magic number at the start of the manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"RINGLOG\0";
/// Size of the manifest file in bytes.
pub const MANIFEST_LEN: usize = 64;

/// The manifest file's contents.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Manifest {
    /// [`MANIFEST_MAGIC`].
    pub magic: [u8; 8],
    /// crc32c of the 64 bytes with this field zero.
    pub crc: u32,
    /// The format version the directory was created with.
    pub version: u32,
    /// Random id chosen at creation; every record's checksum is bound to it.
    pub epoch: u64,
    /// Creation time, ns since the Unix epoch.
    pub created_ns: u64,
    /// Reserved, zero.
    pub reserved: [u64; 4],
}

const _: () = assert!(std::mem::size_of::<Manifest>() == MANIFEST_LEN);

impl Manifest {
    /// A manifest for a new database.
    pub fn new(epoch: u64, created_ns: u64) -> Self {
        Manifest {
            magic: MANIFEST_MAGIC,
            crc: 0,
            version: FORMAT_VERSION,
            epoch,
            created_ns,
            reserved: [0; 4],
        }
    }

    fn checksum(&self) -> u32 {
        let mut m = *self;
        m.crc = 0;
        crc32c::crc32c(bytemuck::bytes_of(&m))
    }

    /// The manifest's bytes.
    pub fn encode(&self) -> [u8; MANIFEST_LEN] {
        let mut m = *self;
        m.crc = self.checksum();
        let mut out = [0u8; MANIFEST_LEN];
        out.copy_from_slice(bytemuck::bytes_of(&m));
        out
    }

    /// Decodes and verifies manifest bytes. A version mismatch is reported as
    /// [`DecodeError::UnsupportedVersion`] only once magic and checksum are valid.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`](crate::DecodeError) naming what is wrong and where: too short, bad magic, bad checksum, unsupported version.
    pub fn decode(src: &[u8]) -> Result<Manifest, DecodeError> {
        if src.len() != MANIFEST_LEN {
            return Err(DecodeError::Truncated {
                offset: 0,
                needed: MANIFEST_LEN as u64,
                available: src.len() as u64,
            });
        }
        let m: Manifest = bytemuck::pod_read_unaligned(src);
        if m.magic != MANIFEST_MAGIC {
            return Err(DecodeError::BadMagic { offset: 0 });
        }
        let computed = m.checksum();
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
        if let Some(i) = m.reserved.iter().position(|&r| r != 0) {
            return Err(DecodeError::Malformed {
                offset: 32 + 8 * i as u64,
                reason: "reserved manifest bytes are not zero",
            });
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_check() {
        let m = Manifest::new(42, 7);
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes).unwrap().epoch, 42);
        let mut other = m;
        other.version = 99;
        assert_eq!(
            Manifest::decode(&other.encode()),
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
        let mut reserved = m;
        reserved.reserved[1] = 5;
        assert_eq!(
            Manifest::decode(&reserved.encode()),
            Err(DecodeError::Malformed {
                offset: 40,
                reason: "reserved manifest bytes are not zero"
            })
        );
    }
}
