//! Helpers of the tests that read and damage segment files directly (recovery.rs, crafted.rs):
//! Strict options on small segments, the segment files of a directory, their ids and the epoch.

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
