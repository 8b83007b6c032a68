//! Helpers of the tests that read and damage segment files directly (recovery.rs, crafted.rs):
//! Strict options on small segments, the segment files of a directory, their ids and the epoch,
//! a bit flipped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ringlog_db::{Durability, IoChoice, Options};
use ringlog_format::Manifest;

/// Segment size of these tests.
pub const SEG: u64 = 256 << 10;

/// Both I/O paths.
pub const PATHS: [IoChoice; 2] = [IoChoice::Uring, IoChoice::Portable];

/// Strict options on `io` with [`SEG`]-sized segments.
pub fn opts(io: IoChoice) -> Options {
    Options::default()
        .io(io)
        .segment_size(SEG)
        .durability(Durability::Strict)
}

/// The segment files of `dir`, in id order.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// The database's epoch, from its MANIFEST.
pub fn epoch(dir: &Path) -> u64 {
    Manifest::decode(&std::fs::read(dir.join("MANIFEST")).unwrap())
        .unwrap()
        .epoch
}

/// The id in a segment file's name.
pub fn seg_id(path: &Path) -> u64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// Flips a bit of the byte at `offset` of the file at `path`.
pub fn flip(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x10;
    f.write_all_at(&b, offset).unwrap();
}

/// (offset, kind, batch_start, lsn) of one record.
pub type Rec = (u64, ringlog_format::RecordKind, u64, u64);

/// Every record of a segment file in order (up to the first that does not decode).
pub fn records(path: &Path, epoch: u64) -> Vec<Rec> {
    let buf = std::fs::read(path).unwrap();
    let id = seg_id(path);
    let mut out = Vec::new();
    let mut pos = ringlog_format::SEGMENT_HEADER_LEN;
    while let Ok(r) = ringlog_format::decode_record(
        &buf,
        pos,
        ringlog_format::SegmentPos {
            segment_id: id,
            epoch,
            offset: pos as u64,
        },
    ) {
        out.push((pos as u64, r.kind, r.batch_start as u64, r.lsn));
        pos += r.encoded_len();
    }
    out
}
