//! Block codecs: how checkpoint blocks are stored. The identity codec is always available; LZ4
//! (through `lz4_flex`) is behind the `lz4` cargo feature. The codec of a database is recorded in
//! its manifest ([`crate::Manifest::codec`]) and in every block header.

use std::fmt;

/// Transforms a checkpoint block's entry bytes (raw) into the bytes stored in the file, and back.
pub trait Codec: Send + Sync + fmt::Debug {
    /// The codec's id, stored in the manifest and in every block header.
    fn id(&self) -> u32;
    /// A short name for messages.
    fn name(&self) -> &'static str;
    /// Appends the stored form of `raw` to `out`.
    fn encode(&self, raw: &[u8], out: &mut Vec<u8>);
    /// Appends to `out` the `raw_len` bytes `stored` encodes. Never panics on arbitrary input;
    /// never writes more than `raw_len` bytes.
    ///
    /// # Errors
    ///
    /// A description of why `stored` is not the output of [`Codec::encode`] of `raw_len` bytes.
    fn decode(&self, stored: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), String>;
}

/// The identity codec (id 0): blocks are stored as they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Identity;

impl Codec for Identity {
    fn id(&self) -> u32 {
        0
    }
    fn name(&self) -> &'static str {
        "identity"
    }
    fn encode(&self, raw: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(raw);
    }
    fn decode(&self, stored: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), String> {
        if stored.len() != raw_len {
            return Err(format!(
                "an identity block stores {} bytes for {raw_len} entry bytes",
                stored.len()
            ));
        }
        out.extend_from_slice(stored);
        Ok(())
    }
}

/// LZ4 block compression (id 1), through `lz4_flex`'s safe implementation.
#[cfg(feature = "lz4")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lz4;

#[cfg(feature = "lz4")]
impl Codec for Lz4 {
    fn id(&self) -> u32 {
        1
    }
    fn name(&self) -> &'static str {
        "lz4"
    }
    fn encode(&self, raw: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&lz4_flex::block::compress(raw));
    }
    fn decode(&self, stored: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let start = out.len();
        out.resize(start + raw_len, 0);
        match lz4_flex::block::decompress_into(stored, &mut out[start..]) {
            Ok(n) if n == raw_len => Ok(()),
            Ok(n) => {
                out.truncate(start);
                Err(format!("lz4 block decodes to {n} bytes, not {raw_len}"))
            }
            Err(e) => {
                out.truncate(start);
                Err(format!("lz4 block does not decode: {e}"))
            }
        }
    }
}

/// The codec with `id`, if this build has it.
pub fn codec_by_id(id: u32) -> Option<&'static dyn Codec> {
    match id {
        0 => Some(&Identity),
        #[cfg(feature = "lz4")]
        1 => Some(&Lz4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(c: &dyn Codec) {
        let raw: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        let mut stored = Vec::new();
        c.encode(&raw, &mut stored);
        let mut back = vec![1, 2, 3];
        c.decode(&stored, raw.len(), &mut back).unwrap();
        assert_eq!(&back[3..], &raw[..]);
        // A wrong length or damaged bytes are errors, not panics.
        assert!(c.decode(&stored, raw.len() + 1, &mut Vec::new()).is_err());
        for cut in [0, 1, stored.len() / 2] {
            let _ = c.decode(&stored[..cut], raw.len(), &mut Vec::new());
        }
        assert_eq!(codec_by_id(c.id()).map(|c| c.name()), Some(c.name()));
    }

    #[test]
    fn identity_round_trips() {
        round_trip(&Identity);
        assert!(codec_by_id(99).is_none());
    }

    #[cfg(feature = "lz4")]
    #[test]
    fn lz4_round_trips_and_compresses() {
        round_trip(&Lz4);
        let raw = vec![7u8; 65536];
        let mut stored = Vec::new();
        Lz4.encode(&raw, &mut stored);
        assert!(stored.len() < raw.len() / 10);
    }
}
