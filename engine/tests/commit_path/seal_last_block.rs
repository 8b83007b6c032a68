//! Mutation audit of session 36, gap 10 (`wal/thread.rs`, `seal`): the close's seal is written whenever
//! one block fits in the segment, including the segment's very last block. A seal there makes
//! damage to the round before it reported corruption (FORMAT.md §10.5), as everywhere else;
//! changing the room check from `>` to `>=` (no seal in the last block) failed no test.
//!
//! The rounds are laid out exactly: 512-byte blocks (no `O_DIRECT`), a 4096-byte segment header,
//! the lease warm-up round of one block, 31 rounds of 16 blocks and one of 5, all `Strict`, then
//! the close's own round (it lowers the lease to the last LSN) in the last block but one: the
//! seal's block is the segment's last.

use std::path::Path;

use crate::common::{on_each_path, tempdir};
use crate::segfiles::{flip, segments, SEG};
use ringlog_db::{Db, Durability, Error, IoChoice, Options};
use ringlog_format::{encoded_len, BATCH_HEAD_LEN, SEGMENT_HEADER_LEN};

const BLOCK: u64 = 512;

fn options(io: IoChoice) -> Options {
    Options::default()
        .io(io)
        .segment_size(SEG)
        .durability(Durability::Strict)
        // 512-byte write alignment (O_DIRECT would align rounds to 4096).
        .direct_io(false)
        .checkpoint_bytes(u64::MAX)
        .checkpoint_on_close(false)
}

/// A value for `key` whose record, after a batch head, leaves a 64-byte gap before the end of
/// `blocks` blocks (a Padding record fills it: the round is exactly `blocks` blocks).
fn value_for(key: &[u8], blocks: u64) -> Vec<u8> {
    let want = (blocks * BLOCK) as usize - BATCH_HEAD_LEN - 64;
    let len = (0..want)
        .find(|&v| encoded_len(key.len(), v) == want)
        .expect("a value length with that record length");
    vec![0x5A; len]
}

fn last_block(path: &Path) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).unwrap();
    let mut b = vec![0u8; BLOCK as usize];
    f.read_exact_at(&mut b, SEG - BLOCK).unwrap();
    b
}

#[test]
fn a_close_seals_in_the_last_block_of_a_segment() {
    on_each_path(|io| {
        let dir = tempdir();
        let db = Db::open(dir.path(), options(io)).unwrap();
        // One block: the warm-up with the run's lease record.
        db.put(b"w", b"x").unwrap();
        let mut blocks = 1;
        for i in 0..31u32 {
            let key = format!("k{i:02}");
            db.put(key.as_bytes(), &value_for(key.as_bytes(), 16))
                .unwrap();
            blocks += 16;
        }
        db.put(b"last", &value_for(b"last", 5)).unwrap();
        blocks += 5;
        assert_eq!(SEGMENT_HEADER_LEN as u64 + blocks * BLOCK, SEG - 2 * BLOCK);
        db.close().unwrap();
        let segs = segments(dir.path());
        assert_eq!(segs.len(), 1, "{io:?}");
        assert!(
            last_block(&segs[0]).iter().any(|&b| b != 0),
            "{io:?}: the close wrote no seal in the segment's last block"
        );
        // Damage to the close's own round, the last before the seal: acknowledged, synced data,
        // so corruption — not a torn tail cut silently.
        flip(&segs[0], SEG - 2 * BLOCK + BATCH_HEAD_LEN as u64 + 12);
        match Db::open(dir.path(), options(io)) {
            Err(Error::Corruption { .. }) => {}
            Err(e) => panic!("{io:?}: expected Corruption, got {e:?}"),
            Ok(db) => panic!(
                "{io:?}: the damaged round was cut as a torn tail ({} bytes)",
                db.recovery_stats().bytes_truncated
            ),
        }
    });
}
