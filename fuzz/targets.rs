//! Bodies of ringlog's fuzz targets, shared by the cargo-fuzz binaries (`fuzz/fuzz_targets/*.rs`)
//! and by the regression tests (`engine/tests/fuzz_regressions.rs`), which run every committed
//! corpus and regression input through exactly the same code on `cargo test`.
//!
//! * [`open_dir`]: builds a database directory from the input — a valid `MANIFEST` of epoch
//!   [`EPOCH`], up to three segment files and optionally a checkpoint it names (see [`OpenInput`]
//!   for the encoding) — and opens it with `Db::open` in both recovery modes, then checks what
//!   must hold whatever the bytes.
//! * [`decoders`]: every public decoder of `ringlog-format` on the input, with cross-checks
//!   between them and a re-encoding round trip of every record that decodes.
//! * [`seed_inputs`]: seed inputs written by the real engine.
//!
//! Plain Rust with no libFuzzer dependency; deterministic (no clock, no randomness in what is
//! checked). A panic here is a finding: either the engine or a decoder panicked, or one of the
//! invariants asserted below was violated.

#![allow(dead_code)] // each includer uses part of the file

use std::fmt::Write as _;
use std::path::Path;

use ringlog_db::{
    Db, Durability, Error, IoChoice, Lsn, Options, Preallocate, RecoveryMode, RecoveryStats,
    MIN_SEGMENT_SIZE,
};
use ringlog_format::{
    codec_by_id, decode_record, encode_padding, encode_record, find_later_batch, find_next_valid,
    BlockHeader, BlockPos, CheckpointFooter, CheckpointHeader, DecodeError, Entries, LaterBatch,
    Layout, Manifest, Record, RecordKind, RecordSpec, SearchIn, SegmentHeader, SegmentPos,
    BATCH_ALIGN, BLOCK_HEADER_LEN, CHECKPOINT_FOOTER_LEN, CHECKPOINT_HEADER_LEN, ENTRY_SYSTEM,
    ENTRY_USER, ENTRY_USER_REF, MANIFEST_LEN, MANIFEST_V2_LEN, MAX_ID, MAX_SEGMENT_LEN,
    RECORD_ALIGN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};

/// Epoch of every database [`open_dir`] builds (written to its `MANIFEST`). Seeds written by the
/// engine under a random epoch are re-checksummed to it ([`OpenInput::from_dir`]).
pub const EPOCH: u64 = 0x5EED_F00D_0000_0008;

/// Largest segment file [`open_dir`] writes, header block and zero extension included.
pub const SEGMENT_CAP: usize = 1 << 20;

/// Most segment files an [`OpenInput`] describes.
pub const MAX_SEGMENTS: usize = 3;

/// [`decoders`] looks at no more than this many bytes of its input (`find_next_valid` and the
/// record scan at every offset are quadratic on crafted input).
pub const DECODE_CAP: usize = 32 << 10;

/// Key of the transactions [`open_dir`] commits after every successful open (followed by a
/// byte numbering them).
pub const PROBE_KEY: &[u8] = b"\xFFfuzz-probe";
/// Value of the transaction committed after every successful open, unless [`OPT_BIG_PROBES`].
pub const PROBE_VALUE: &[u8] = b"written after recovery";
/// Value length of each of the three transactions committed with [`OPT_BIG_PROBES`].
pub const BIG_PROBE_LEN: usize = 24 << 10;

// ---------------------------------------------------------------------------------------------
// The `open` input encoding
// ---------------------------------------------------------------------------------------------

/// `opts` bit: open with `Options::direct_io = true` (write alignment 4096 rather than 512).
pub const OPT_DIRECT_IO: u8 = 1;
/// `opts` bits 1–2: `Options::preallocate` (0 ZeroFill, 1 Fallocate, 2 and 3 None).
pub const OPT_PREALLOC_SHIFT: u8 = 1;
/// `opts` bit: in every segment with [`SEG_VALID_HEADER`], walk the chain of records from offset
/// 4096 (each `len` field giving the next offset) and store the right checksum in each, so that
/// mutated record fields reach the checks after the checksum and the replay state machine.
pub const OPT_FIX_CRCS: u8 = 1 << 3;
/// `opts` bit: after recovery, commit three transactions of [`BIG_PROBE_LEN`]-byte values
/// rather than one small one, so that the log rotates to a new segment from whatever tail
/// recovery left (three do not fit in one 64 KiB segment).
pub const OPT_BIG_PROBES: u8 = 1 << 4;
/// `opts` bit: the directory holds a checkpoint, `{1:020}.ckpt`, that its MANIFEST names, built
/// from a [`CheckpointInput`] (encoded after `first_id`): the header, footer and block checksums
/// are made right for whatever entries the input holds, so that mutated entries reach the
/// checkpoint loader.
pub const OPT_CHECKPOINT: u8 = 1 << 5;
/// `opts` bit: open with `Options::value_threshold(Some(`[`VALUE_THRESHOLD`]`))` (values on disk:
/// a checkpoint's entries may point into the log instead of holding their values).
pub const OPT_VALUES: u8 = 1 << 6;

/// The value threshold of an open with [`OPT_VALUES`].
pub const VALUE_THRESHOLD: usize = 64;
/// Most blocks a [`CheckpointInput`] describes.
pub const MAX_BLOCKS: usize = 8;
/// Longest block payload a [`CheckpointInput`] describes.
pub const BLOCK_CAP: usize = 256 << 10;
/// The id of the checkpoint an [`OPT_CHECKPOINT`] input's directory holds.
pub const CHECKPOINT_ID: u64 = 1;

/// Segment flag: the file starts with a valid 4096-byte header block for (id, [`EPOCH`]) built
/// from [`SegmentInput::header`]; the body follows at offset 4096. Without it the body is the
/// whole file.
pub const SEG_VALID_HEADER: u8 = 1 << 0;
/// Segment flag: skip one id before this segment (a gap in the ids).
pub const SEG_GAP: u8 = 1 << 1;
/// Segment flag (with [`SEG_VALID_HEADER`]): the header names epoch `EPOCH ^ 1`.
pub const SEG_FOREIGN_EPOCH: u8 = 1 << 2;
/// Segment flag (with [`SEG_VALID_HEADER`]): the header names segment id + 1.
pub const SEG_WRONG_ID: u8 = 1 << 3;
/// Segment flag: name the file `{id:020}.log.tmp` (an unfinished segment creation).
pub const SEG_TMP: u8 = 1 << 4;

/// The header fields of a segment with [`SEG_VALID_HEADER`] that come from the input; the others
/// are fixed (segment id and epoch by the layout, `created_ns = 0`). Values out of the format's
/// range are masked into it when the header is encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderFields {
    /// `run_id` (masked to `MAX_ID`).
    pub run_id: u64,
    /// `prev_end` (capped at `MAX_SEGMENT_LEN`).
    pub prev_end: u32,
    /// `base_lsn` (masked to `MAX_ID`).
    pub base_lsn: u64,
}

/// The checkpoint of an [`OpenInput`] with [`OPT_CHECKPOINT`], and the MANIFEST fields that
/// name it. Values out of the format's range are masked into it (`MAX_ID`), and the LSN floor is
/// raised to the checkpoint's LSN, so that the MANIFEST always encodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointInput {
    /// The checkpoint's LSN (header, footer and MANIFEST).
    pub lsn: u64,
    /// The MANIFEST's `first_segment`.
    pub first_segment: u64,
    /// The MANIFEST's `trim_floor`.
    pub trim_floor: u64,
    /// The MANIFEST's `lsn_floor` (at least `lsn`).
    pub lsn_floor: u64,
    /// The MANIFEST's `txn_floor`.
    pub txn_floor: u64,
    /// The MANIFEST's `run_floor`.
    pub run_floor: u64,
    /// The footer's count of distinct keys (capped at its count of entries).
    pub keys: u64,
    /// The blocks, in file order.
    pub blocks: Vec<BlockInput>,
}

/// One block of a [`CheckpointInput`], stored with the identity codec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockInput {
    /// The count of entries its header claims.
    pub entries: u32,
    /// Its entries' bytes (the payload).
    pub raw: Vec<u8>,
}

impl CheckpointInput {
    /// The MANIFEST naming this checkpoint, whose file is `len` bytes long.
    pub fn manifest(&self, len: u64) -> Manifest {
        let lsn = self.lsn & MAX_ID;
        Manifest {
            checkpoint_id: CHECKPOINT_ID,
            checkpoint_lsn: lsn,
            checkpoint_len: len,
            first_segment: self.first_segment & MAX_ID,
            trim_floor: self.trim_floor & MAX_ID,
            lsn_floor: (self.lsn_floor & MAX_ID).max(lsn),
            txn_floor: self.txn_floor & MAX_ID,
            run_floor: self.run_floor & MAX_ID,
            ..Manifest::new(EPOCH, 0)
        }
    }

    /// The checkpoint file's bytes: header, blocks (each header's checksum made right for its
    /// payload, whatever the payload holds), footer (its entry count the blocks' sum, at least
    /// one per block).
    pub fn file(&self) -> Vec<u8> {
        let lsn = self.lsn & MAX_ID;
        let mut out = CheckpointHeader::new(EPOCH, CHECKPOINT_ID, lsn, 0, 0)
            .encode()
            .to_vec();
        let mut entries = 0u64;
        for b in &self.blocks {
            // The block header (FORMAT.md): crc, codec (identity), raw_len, stored_len, entries,
            // reserved, offset — little-endian, the checksum last.
            let offset = out.len() as u64;
            let start = out.len();
            let len = b.raw.len() as u32;
            for field in [0, 0, len, len, b.entries, 0] {
                out.extend_from_slice(&field.to_le_bytes());
            }
            out.extend_from_slice(&offset.to_le_bytes());
            debug_assert_eq!(out.len() - start, BLOCK_HEADER_LEN);
            out.extend_from_slice(&b.raw);
            let mut seed = [0u8; 24];
            seed[..8].copy_from_slice(&EPOCH.to_le_bytes());
            seed[8..16].copy_from_slice(&CHECKPOINT_ID.to_le_bytes());
            seed[16..].copy_from_slice(&offset.to_le_bytes());
            let crc = crc32c::crc32c_append(crc32c::crc32c(&seed), &out[start..]);
            out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
            out.resize(out.len().next_multiple_of(8), 0);
            entries += u64::from(b.entries);
        }
        let blocks = self.blocks.len() as u64;
        let entries = entries.max(blocks);
        let data_end = out.len() as u64;
        let footer = CheckpointFooter::new(
            lsn,
            CHECKPOINT_ID,
            blocks,
            entries,
            self.keys.min(entries),
            data_end,
        );
        out.extend_from_slice(&footer.encode(EPOCH));
        out
    }

    /// The kind of every entry of its blocks that decodes, in order.
    pub fn entry_kinds(&self) -> Vec<u8> {
        let entries = self.blocks.iter().flat_map(|b| Entries::new(&b.raw, 0));
        entries.map_while(Result::ok).map(|e| e.kind).collect()
    }

    fn parse(r: &mut Reader<'_>) -> CheckpointInput {
        let mut c = CheckpointInput {
            lsn: r.u64(),
            first_segment: r.u64(),
            trim_floor: r.u64(),
            lsn_floor: r.u64(),
            txn_floor: r.u64(),
            run_floor: r.u64(),
            keys: r.u64(),
            blocks: Vec::new(),
        };
        let n = usize::from(r.u8()).min(MAX_BLOCKS);
        for _ in 0..n {
            let entries = r.u32();
            let len = r.u32() as usize;
            let raw = r.take(len.min(BLOCK_CAP)).to_vec();
            c.blocks.push(BlockInput { entries, raw });
        }
        c
    }

    fn to_bytes(&self, out: &mut Vec<u8>) {
        for v in [
            self.lsn,
            self.first_segment,
            self.trim_floor,
            self.lsn_floor,
            self.txn_floor,
            self.run_floor,
            self.keys,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.push(self.blocks.len() as u8);
        for b in &self.blocks {
            out.extend_from_slice(&b.entries.to_le_bytes());
            out.extend_from_slice(&(b.raw.len() as u32).to_le_bytes());
            out.extend_from_slice(&b.raw);
        }
    }

    /// The checkpoint `manifest` names in `dir` (written by the engine under epoch `epoch`).
    fn from_dir(dir: &Path, manifest: &Manifest) -> std::io::Result<CheckpointInput> {
        let id = manifest.checkpoint_id;
        let bytes = std::fs::read(dir.join(format!("{id:020}.ckpt")))?;
        let bad = |what: &str, e: DecodeError| std::io::Error::other(format!("{what}: {e}"));
        let header = CheckpointHeader::decode(&bytes, manifest.epoch, id)
            .map_err(|e| bad("checkpoint header", e))?;
        let footer_at = bytes.len().saturating_sub(CHECKPOINT_FOOTER_LEN);
        let footer = CheckpointFooter::decode(
            &bytes[footer_at..],
            footer_at as u64,
            manifest.epoch,
            &header,
        )
        .map_err(|e| bad("checkpoint footer", e))?;
        let mut blocks = Vec::new();
        let mut at = CHECKPOINT_HEADER_LEN;
        while at < footer_at {
            let pos = BlockPos {
                epoch: manifest.epoch,
                id,
                offset: at as u64,
            };
            let h = BlockHeader::decode(&bytes[at..footer_at], pos, (footer_at - at) as u64)
                .map_err(|e| bad("checkpoint block", e))?;
            if h.codec != 0 {
                return Err(std::io::Error::other("a checkpoint block not stored as is"));
            }
            let payload = at + BLOCK_HEADER_LEN;
            let raw = bytes[payload..payload + h.stored_len as usize].to_vec();
            blocks.push(BlockInput {
                entries: h.entries,
                raw,
            });
            at += h.total_len() as usize;
        }
        Ok(CheckpointInput {
            lsn: header.lsn,
            first_segment: manifest.first_segment,
            trim_floor: manifest.trim_floor,
            lsn_floor: manifest.lsn_floor,
            txn_floor: manifest.txn_floor,
            run_floor: manifest.run_floor,
            keys: footer.keys,
            blocks,
        })
    }
}

/// One segment file of an [`OpenInput`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentInput {
    /// `SEG_*` bits.
    pub flags: u8,
    /// Header fields, used with [`SEG_VALID_HEADER`] (encoded only then).
    pub header: HeaderFields,
    /// The file is extended with zeros to this length (a preallocated segment), capped at
    /// [`SEGMENT_CAP`].
    pub file_len: u32,
    /// The bytes after the header block (or the whole file without [`SEG_VALID_HEADER`]).
    pub body: Vec<u8>,
}

/// The decoded input of [`open_dir`]: how to build a database directory.
///
/// Byte encoding (little-endian; a fixed-size field cut short by the end of the input reads as
/// if padded with zeros; parsing stops at the end of the input or after [`MAX_SEGMENTS`]
/// segments; trailing bytes are ignored):
///
/// ```text
/// input    := opts:u8 first_id:u64 [checkpoint] segment*              (checkpoint only if opts & OPT_CHECKPOINT)
/// checkpoint := lsn:u64 first_segment:u64 trim_floor:u64 lsn_floor:u64 txn_floor:u64
///             run_floor:u64 keys:u64 blocks:u8 (entries:u32 raw_len:u32 raw:[u8; raw_len])*
/// segment  := flags:u8 [run_id:u64 prev_end:u32 base_lsn:u64]   (only if flags & SEG_VALID_HEADER)
///             file_len:u32 body_len:u32 body:[u8; body_len]      (body cut short by the input's end)
/// ```
///
/// `opts`: [`OPT_DIRECT_IO`], preallocation at [`OPT_PREALLOC_SHIFT`], [`OPT_FIX_CRCS`],
/// [`OPT_BIG_PROBES`], [`OPT_CHECKPOINT`], [`OPT_VALUES`]. A checkpoint has at most
/// [`MAX_BLOCKS`] blocks (more are not read) of at most [`BLOCK_CAP`] bytes each.
/// Segment ids start at `first_id` and increase by one per segment (two after [`SEG_GAP`]);
/// each file is `{id:020}.log` (or `.log.tmp` with [`SEG_TMP`]) holding
/// `[header block if SEG_VALID_HEADER] ++ body`, cut to [`SEGMENT_CAP`] and zero-extended to
/// `file_len` (also capped). The directory also holds `MANIFEST` = `Manifest::new(EPOCH, 0)`, or
/// with [`OPT_CHECKPOINT`] the one [`CheckpointInput::manifest`] writes, and the checkpoint file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenInput {
    /// `OPT_*` bits.
    pub opts: u8,
    /// Id of the first segment.
    pub first_id: u64,
    /// The checkpoint, with [`OPT_CHECKPOINT`].
    pub checkpoint: Option<CheckpointInput>,
    /// The segment files, in id order.
    pub segments: Vec<SegmentInput>,
}

/// Reads fixed-size little-endian fields, as zeros past the end.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    fn fixed<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        let got = self.take(N);
        b[..got.len()].copy_from_slice(got);
        b
    }

    fn u8(&mut self) -> u8 {
        self.fixed::<1>()[0]
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.fixed())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.fixed())
    }
}

impl OpenInput {
    /// Decodes fuzzer bytes; total: every byte string is some input.
    pub fn parse(data: &[u8]) -> OpenInput {
        let mut r = Reader { data };
        let opts = r.u8();
        let first_id = r.u64();
        let checkpoint = (opts & OPT_CHECKPOINT != 0).then(|| CheckpointInput::parse(&mut r));
        let mut segments = Vec::new();
        while !r.data.is_empty() && segments.len() < MAX_SEGMENTS {
            let flags = r.u8();
            let header = if flags & SEG_VALID_HEADER != 0 {
                HeaderFields {
                    run_id: r.u64(),
                    prev_end: r.u32(),
                    base_lsn: r.u64(),
                }
            } else {
                HeaderFields::default()
            };
            let file_len = r.u32();
            let body_len = r.u32() as usize;
            let body = r.take(body_len.min(SEGMENT_CAP)).to_vec();
            segments.push(SegmentInput {
                flags,
                header,
                file_len,
                body,
            });
        }
        OpenInput {
            opts,
            first_id,
            checkpoint,
            segments,
        }
    }

    /// The byte encoding [`OpenInput::parse`] decodes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.opts];
        out.extend_from_slice(&self.first_id.to_le_bytes());
        if self.opts & OPT_CHECKPOINT != 0 {
            self.checkpoint
                .clone()
                .unwrap_or_default()
                .to_bytes(&mut out);
        }
        for s in &self.segments {
            out.push(s.flags);
            if s.flags & SEG_VALID_HEADER != 0 {
                out.extend_from_slice(&s.header.run_id.to_le_bytes());
                out.extend_from_slice(&s.header.prev_end.to_le_bytes());
                out.extend_from_slice(&s.header.base_lsn.to_le_bytes());
            }
            out.extend_from_slice(&s.file_len.to_le_bytes());
            out.extend_from_slice(&(s.body.len() as u32).to_le_bytes());
            out.extend_from_slice(&s.body);
        }
        out
    }

    /// Options of an open of this input in recovery mode `mode`: portable I/O, `Strict`
    /// durability, the smallest segment size, direct I/O and preallocation from the input.
    pub fn options(&self, mode: RecoveryMode) -> Options {
        let preallocate = match (self.opts >> OPT_PREALLOC_SHIFT) & 3 {
            0 => Preallocate::ZeroFill,
            1 => Preallocate::Fallocate,
            _ => Preallocate::None,
        };
        let values = (self.opts & OPT_VALUES != 0).then_some(VALUE_THRESHOLD);
        Options::default()
            .io(IoChoice::Portable)
            .durability(Durability::Strict)
            .segment_size(MIN_SEGMENT_SIZE)
            .direct_io(self.opts & OPT_DIRECT_IO != 0)
            .preallocate(preallocate)
            .recovery(mode)
            .value_threshold(values)
    }

    /// The transactions [`open_dir`] commits after a successful open: (key, value), one put
    /// each.
    pub fn probes(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        if self.opts & OPT_BIG_PROBES == 0 {
            return vec![([PROBE_KEY, &[0]].concat(), PROBE_VALUE.to_vec())];
        }
        (1..=3u8)
            .map(|i| ([PROBE_KEY, &[i]].concat(), vec![i; BIG_PROBE_LEN]))
            .collect()
    }

    /// The files of the directory: (name, contents, length to zero-extend to).
    pub fn files(&self) -> Vec<(String, Vec<u8>, usize)> {
        let mut files = Vec::new();
        let checkpoint = self
            .checkpoint
            .as_ref()
            .filter(|_| self.opts & OPT_CHECKPOINT != 0);
        let manifest = match checkpoint {
            Some(c) => {
                let file = c.file();
                let manifest = c.manifest(file.len() as u64);
                let len = file.len();
                files.push((format!("{CHECKPOINT_ID:020}.ckpt"), file, len));
                manifest
            }
            None => Manifest::new(EPOCH, 0),
        };
        files.insert(
            0,
            (
                "MANIFEST".to_string(),
                manifest.encode().to_vec(),
                MANIFEST_LEN,
            ),
        );
        let mut id = Some(self.first_id);
        for s in &self.segments {
            if s.flags & SEG_GAP != 0 {
                id = id.and_then(|i| i.checked_add(1));
            }
            let Some(this) = id else { break };
            let mut bytes = Vec::with_capacity(SEGMENT_HEADER_LEN + s.body.len());
            let header_epoch = if s.flags & SEG_FOREIGN_EPOCH != 0 {
                EPOCH ^ 1
            } else {
                EPOCH
            };
            if s.flags & SEG_VALID_HEADER != 0 {
                let named = if s.flags & SEG_WRONG_ID != 0 {
                    this.wrapping_add(1)
                } else {
                    this
                };
                bytes.resize(SEGMENT_HEADER_LEN, 0);
                SegmentHeader::new(
                    named & MAX_ID,
                    header_epoch,
                    s.header.run_id & MAX_ID,
                    0,
                    u64::from(s.header.prev_end).min(MAX_SEGMENT_LEN),
                    s.header.base_lsn & MAX_ID,
                )
                .encode(&mut bytes);
            }
            bytes.extend_from_slice(&s.body);
            bytes.truncate(SEGMENT_CAP);
            if self.opts & OPT_FIX_CRCS != 0 && s.flags & SEG_VALID_HEADER != 0 {
                fix_crcs(&mut bytes, this, header_epoch);
            }
            let len = (s.file_len as usize).min(SEGMENT_CAP);
            let suffix = if s.flags & SEG_TMP != 0 { ".tmp" } else { "" };
            files.push((format!("{this:020}.log{suffix}"), bytes, len));
            id = this.checked_add(1);
        }
        files
    }

    /// Writes the directory's files into `dir` (which should be empty).
    pub fn materialize(&self, dir: &Path) -> std::io::Result<()> {
        for (name, bytes, len) in self.files() {
            let f = std::fs::File::create(dir.join(name))?;
            std::io::Write::write_all(&mut &f, &bytes)?;
            if len > bytes.len() {
                f.set_len(len as u64)?;
            }
        }
        Ok(())
    }

    /// The input describing the database directory `dir` written by the engine: its segment
    /// headers become [`SEG_VALID_HEADER`] fields, every record that decodes is re-checksummed
    /// from the directory's epoch to [`EPOCH`] (other bytes are copied as they are), trailing
    /// zeros become `file_len`. `opts` is stored as it is.
    pub fn from_dir(dir: &Path, opts: u8) -> std::io::Result<OpenInput> {
        let manifest = std::fs::read(dir.join("MANIFEST"))?;
        let manifest = Manifest::decode(&manifest)
            .map_err(|e| std::io::Error::other(format!("MANIFEST: {e}")))?;
        let epoch = manifest.epoch;
        let checkpoint = if manifest.checkpoint_id != 0 {
            Some(CheckpointInput::from_dir(dir, &manifest)?)
        } else {
            None
        };
        let opts = if checkpoint.is_some() {
            opts | OPT_CHECKPOINT
        } else {
            opts & !OPT_CHECKPOINT
        };
        let mut segs: Vec<(u64, bool, std::path::PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let (digits, tmp) = match (name.strip_suffix(".log"), name.strip_suffix(".log.tmp")) {
                (Some(d), _) => (d, false),
                (None, Some(d)) => (d, true),
                _ => continue,
            };
            if digits.len() == 20 {
                if let Ok(id) = digits.parse::<u64>() {
                    segs.push((id, tmp, path));
                }
            }
        }
        segs.sort();
        let mut input = OpenInput {
            opts,
            first_id: segs.first().map_or(1, |s| s.0),
            checkpoint,
            segments: Vec::new(),
        };
        let mut next = input.first_id;
        for (id, tmp, path) in segs {
            let bytes = std::fs::read(&path)?;
            let mut flags = if tmp { SEG_TMP } else { 0 };
            if id == next.wrapping_add(1) {
                flags |= SEG_GAP;
            } else if id != next {
                return Err(std::io::Error::other(
                    "segment ids with a gap of more than one",
                ));
            }
            next = id.wrapping_add(1);
            let (header, body) = match SegmentHeader::decode(&bytes) {
                Ok(h) if h.segment_id == id && h.epoch == epoch => {
                    flags |= SEG_VALID_HEADER;
                    let mut body = bytes[SEGMENT_HEADER_LEN..].to_vec();
                    reseal(&mut body, SEGMENT_HEADER_LEN as u64, id, epoch, EPOCH);
                    let fields = HeaderFields {
                        run_id: h.run_id,
                        prev_end: h.prev_end as u32,
                        base_lsn: h.base_lsn,
                    };
                    (fields, body)
                }
                _ => (HeaderFields::default(), bytes.clone()),
            };
            let mut body = body;
            let used = body.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            body.truncate(used);
            input.segments.push(SegmentInput {
                flags,
                header,
                file_len: bytes.len() as u32,
                body,
            });
        }
        Ok(input)
    }
}

/// Stores in each record of the chain starting at offset 4096 of the segment file `file` (segment
/// `id`, epoch `epoch`) the checksum of its bytes, whatever they hold; the chain follows the
/// `len` fields (rounded up to 8) and stops at a length below 48 or past the end.
pub fn fix_crcs(file: &mut [u8], id: u64, epoch: u64) {
    let mut at = SEGMENT_HEADER_LEN;
    while at + RECORD_HEADER_LEN <= file.len() {
        let len = u32::from_le_bytes(file[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        if len < RECORD_HEADER_LEN || len > file.len() - at {
            break;
        }
        let mut seed = [0u8; 24];
        seed[..8].copy_from_slice(&id.to_le_bytes());
        seed[8..16].copy_from_slice(&epoch.to_le_bytes());
        seed[16..].copy_from_slice(&(at as u64).to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&seed), &file[at + 4..at + len]);
        file[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        at += len.next_multiple_of(RECORD_ALIGN);
    }
}

/// Re-checksums every record of `body` (the bytes of segment `id` from absolute offset `base`)
/// that decodes under `from_epoch` so that it decodes under `to_epoch`; other bytes are left
/// as they are.
pub fn reseal(body: &mut [u8], base: u64, id: u64, from_epoch: u64, to_epoch: u64) {
    let mut at = 0;
    while at + RECORD_HEADER_LEN <= body.len() {
        let pos = |epoch| SegmentPos {
            segment_id: id,
            epoch,
            offset: base + at as u64,
        };
        let re = match decode_record(body, at, pos(from_epoch)) {
            Ok(rec) => reencode(&rec, pos(to_epoch)).map(|b| (b, rec.encoded_len())),
            Err(_) => None,
        };
        match re {
            Some((bytes, n)) => {
                let len = bytes.len().min(body.len() - at);
                body[at..at + len].copy_from_slice(&bytes[..len]);
                at += n;
            }
            None => at += RECORD_ALIGN,
        }
    }
}

/// `rec` encoded afresh at `pos` with `encode_record` (or `encode_padding`), from its decoded
/// fields: its `len` bytes followed by zero alignment bytes. `None` for a Padding record the
/// encoder cannot produce (a length that is not a multiple of 8, a non-zero payload or a
/// non-zero LSN — which the decoder accepts, see FORMAT.md §5.6).
pub fn reencode(rec: &Record<'_>, pos: SegmentPos) -> Option<Vec<u8>> {
    let len = rec.len as usize;
    let mut out = vec![0xA5u8; len.next_multiple_of(RECORD_ALIGN)];
    if rec.kind == RecordKind::Padding {
        if !len.is_multiple_of(RECORD_ALIGN) || rec.lsn != 0 {
            return None;
        }
        let n = encode_padding(&mut out, rec.batch_start, pos).ok()?;
        assert_eq!(n, len, "encode_padding fills its buffer");
        return Some(out);
    }
    let spec = RecordSpec {
        kind: rec.kind,
        flags: rec.flags,
        lsn: rec.lsn,
        run_id: rec.run_id,
        timestamp: rec.timestamp,
        batch_start: rec.batch_start,
        key: rec.key,
        value: rec.value,
        marker: rec.marker,
    };
    match encode_record(&mut out, &spec, pos) {
        Ok(n) => assert_eq!(n, out.len(), "encode_record returns the padded length"),
        Err(e) => panic!("a record that decodes must re-encode: {e:?} for {rec:?}"),
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// The `open` target
// ---------------------------------------------------------------------------------------------

/// A database's contents: (key, value, LSN of the version) in key order.
pub type State = Vec<(Vec<u8>, Vec<u8>, Lsn)>;

/// What one successful open of an [`OpenInput`] found and did.
#[derive(Clone, Debug)]
pub struct Opened {
    /// The contents recovery rebuilt.
    pub state: State,
    /// Its recovery statistics, `duration` zeroed.
    pub stats: RecoveryStats,
    /// The probe transactions committed afterwards, in commit order, up to the first that
    /// failed.
    pub puts: Vec<Probe>,
    /// Whether `close()` succeeded (then the directory was reopened and checked).
    pub closed: bool,
    /// The recovery statistics of that reopen, `duration` zeroed; `None` if it was not made or
    /// was refused because the run or segment ids are exhausted (see [`reopen`]).
    pub reopened: Option<RecoveryStats>,
}

/// A transaction [`open_dir`] committed after recovery: one put.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The commit's LSN, or its error.
    pub result: Result<Lsn, String>,
}

/// The two opens [`open_dir`] makes.
#[derive(Clone, Debug)]
pub struct OpenOutcome {
    /// `RecoveryMode::Strict`: what it found, or the error of `Db::open` (or of the read after
    /// it, see [`scan`]).
    pub strict: Result<Opened, String>,
    /// `RecoveryMode::TruncateAtCorruption`, on a fresh copy of the directory.
    pub truncate: Result<Opened, String>,
}

/// The `open` target: builds the directory `data` describes ([`OpenInput`]) and opens it with
/// `Db::open`, once in each recovery mode on a fresh copy. Panics only if the engine panics or
/// one of these invariants fails:
///
/// * after a successful open the state is ordered, consistent between `range`, `prefix`, `get`,
///   `len` and the recovery statistics, and no version is newer than the last applied LSN;
/// * commits after recovery get increasing LSNs above every recovered one;
/// * after a successful `close()`, the directory reopens in `Strict` mode to the same state plus
///   the committed probes, with nothing cut once a probe committed (recovery is idempotent and a
///   clean close leaves a clean log; a run that committed nothing wrote nothing);
/// * if the `Strict` open succeeds, the `TruncateAtCorruption` open succeeds too, with the same
///   state and statistics.
pub fn open_dir(data: &[u8]) {
    let _ = run_open(data);
}

/// What recovery reported, its timings zeroed (they differ from run to run).
fn timeless(stats: &RecoveryStats) -> RecoveryStats {
    let mut stats = stats.clone();
    stats.duration = Default::default();
    stats.read_time = Default::default();
    stats.decode_time = Default::default();
    stats.build_time = Default::default();
    stats
}

/// [`open_dir`], returning what it found (for tests that check what a seed exercises).
pub fn run_open(data: &[u8]) -> OpenOutcome {
    let input = OpenInput::parse(data);
    let strict = exercise(&input, RecoveryMode::Strict);
    let truncate = exercise(&input, RecoveryMode::TruncateAtCorruption);
    if let Ok(s) = &strict {
        let t = match &truncate {
            Ok(t) => t,
            Err(e) => panic!(
                "the Strict open succeeded but TruncateAtCorruption failed: {e}\ninput: {}",
                describe(&input)
            ),
        };
        if let Some(d) = diff_states(&s.state, &t.state) {
            panic!("Strict and TruncateAtCorruption recover different states: {d}");
        }
        assert_eq!(
            s.stats, t.stats,
            "Strict and TruncateAtCorruption report different recoveries of a log Strict accepts"
        );
    }
    OpenOutcome { strict, truncate }
}

/// A short description of an input, for panic messages.
pub fn describe(input: &OpenInput) -> String {
    let mut s = format!("opts {:#04x}", input.opts);
    for (name, bytes, len) in input.files() {
        let _ = write!(s, "; {name}: {} bytes, extended to {len}", bytes.len());
    }
    s
}

fn is_thread_panic(e: &Error) -> bool {
    e.to_string().contains("the log thread panicked")
}

/// One open of a fresh directory built from `input`, in recovery mode `mode`, with every check
/// that needs only this open.
fn exercise(input: &OpenInput, mode: RecoveryMode) -> Result<Opened, String> {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    input
        .materialize(dir.path())
        .expect("write the input's files");
    let db = Db::open(dir.path(), input.options(mode)).map_err(|e| e.to_string())?;
    let stats = timeless(db.recovery_stats());
    let state = scan(&db)?;
    check_state(&db, &state, &stats);
    let mut puts = Vec::new();
    let mut last = stats.last_lsn;
    for (key, value) in input.probes() {
        let result = db.put(&key, &value).map_err(|e| e.to_string());
        let failed = result.is_err();
        if let Ok(lsn) = result {
            assert!(
                lsn > last,
                "a commit after recovery got LSN {lsn}, not above the previous LSN {last}"
            );
            last = lsn;
        }
        puts.push(Probe { key, value, result });
        if failed {
            break;
        }
    }
    let closed = db.close();
    drop(db);
    if let Err(e) = &closed {
        assert!(!is_thread_panic(e), "close reports a panic: {e}");
    }
    let opened = Opened {
        state,
        stats,
        puts,
        closed: closed.is_ok(),
        reopened: None,
    };
    if closed.is_ok() {
        let reopened = reopen(dir.path(), input, mode, &opened);
        return Ok(Opened { reopened, ..opened });
    }
    Ok(opened)
}

/// After a clean close, the directory must reopen strictly to the same state plus the probes.
///
/// One exception, which FORMAT.md §8 specifies: if the first run took the last run id the format
/// allows (`MAX_ID`, because the log named `MAX_ID - 1`), or ended in segment `MAX_ID` with no
/// room to resume, the next open cannot number its run or its segment and fails with
/// `Error::IdSpaceExhausted` (only crafted logs get there). Then `None`.
fn reopen(
    dir: &Path,
    input: &OpenInput,
    mode: RecoveryMode,
    first: &Opened,
) -> Option<RecoveryStats> {
    let mut expected = first.state.clone();
    for p in &first.puts {
        let Ok(lsn) = p.result else { break };
        let probe = (p.key.clone(), p.value.clone(), lsn);
        match expected.binary_search_by(|e| e.0.cmp(&p.key)) {
            Ok(i) => expected[i] = probe,
            Err(i) => expected.insert(i, probe),
        }
    }
    let db = match Db::open(dir, input.options(RecoveryMode::Strict)) {
        Ok(db) => db,
        Err(Error::IdSpaceExhausted("run id" | "segment id")) => return None,
        Err(e) => panic!(
            "a directory opened ({mode:?}) and closed cleanly does not reopen: {e}\ninput: {}",
            describe(input)
        ),
    };
    let stats = timeless(db.recovery_stats());
    let state = scan(&db).unwrap_or_else(|e| {
        panic!("reading after a clean close and reopen ({mode:?}) failed: {e}")
    });
    check_state(&db, &state, &stats);
    if let Some(d) = diff_states(&expected, &state) {
        panic!(
            "reopening after a clean close ({mode:?}) recovers another state: {d}\ninput: {}",
            describe(input)
        );
    }
    // A run that committed something leaves a clean log: its first commit moved past whatever
    // tail recovery cut. One that committed nothing (every probe refused, e.g. a log whose LSNs
    // are exhausted) wrote nothing, so the reopen meets the same tail and cuts it again — the
    // same state, as checked above.
    let committed = first.puts.iter().any(|p| p.result.is_ok());
    assert!(
        !committed
            || (stats.bytes_truncated == 0
                && stats.truncated_at.is_none()
                && stats.segments_quarantined == 0
                && stats.torn_segments_removed == 0),
        "reopening after a clean close ({mode:?}) cut something: {stats:?}"
    );
    if let Err(e) = db.close() {
        panic!("closing a database that committed nothing failed: {e}");
    }
    Some(stats)
}

/// The whole contents, through `range(..)`. A value kept in the log (a checkpoint's entry may
/// point there) is checked only when it is read, so a crafted checkpoint can open and then fail
/// a read: that read's `Error::Corruption` is the `Err`. Any other error panics.
fn scan(db: &Db) -> Result<State, String> {
    let mut state = State::new();
    for item in db
        .range::<&[u8], _>(..)
        .expect("scanning a database just opened")
    {
        match item {
            Ok((k, v)) => state.push((k.to_vec(), v.to_vec(), v.lsn())),
            Err(e @ Error::Corruption { .. }) => return Err(format!("a read after the open: {e}")),
            Err(e) => panic!("reading an entry of a database just opened: {e:?}"),
        }
    }
    Ok(state)
}

/// What holds of any recovered state.
fn check_state(db: &Db, state: &State, stats: &RecoveryStats) {
    assert!(
        state.windows(2).all(|w| w[0].0 < w[1].0),
        "range(..) is not in strictly increasing key order"
    );
    assert_eq!(state.len(), db.len(), "range(..) and len() disagree");
    assert_eq!(state.len(), stats.keys, "range(..) and RecoveryStats::keys");
    for (k, _, lsn) in state {
        assert!(
            *lsn >= 1 && *lsn <= stats.last_lsn,
            "key {k:?} has version {lsn}, outside 1..={}",
            stats.last_lsn
        );
        assert!(
            !k.is_empty() && k.len() <= ringlog_db::MAX_KEY_LEN,
            "key length {}",
            k.len()
        );
    }
    for (k, v, lsn) in state.iter().take(32) {
        let got = db.get(k).expect("get on an open database");
        let got = got.map(|g| (g.to_vec(), g.lsn()));
        assert_eq!(
            got,
            Some((v.clone(), *lsn)),
            "get({k:?}) disagrees with range(..)"
        );
    }
    let all = db
        .prefix(&[])
        .expect("prefix on an open database")
        .collect::<Result<Vec<_>, _>>()
        .expect("the entries of prefix(\"\")")
        .len();
    assert_eq!(all, state.len(), "prefix(\"\") and range(..) disagree");
    if let Some((k, _, _)) = state.first() {
        let n = db
            .prefix(k)
            .expect("prefix on an open database")
            .collect::<Result<Vec<_>, _>>()
            .expect("the entries of prefix")
            .len();
        let want = state.iter().filter(|e| e.0.starts_with(k)).count();
        assert_eq!(n, want, "prefix({k:?})");
    }
}

/// The first difference between two states, if any.
fn diff_states(a: &State, b: &State) -> Option<String> {
    if a == b {
        return None;
    }
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            return Some(format!(
                "entry {i}: key {:?} = {} bytes @ {} against key {:?} = {} bytes @ {}",
                String::from_utf8_lossy(&x.0),
                x.1.len(),
                x.2,
                String::from_utf8_lossy(&y.0),
                y.1.len(),
                y.2
            ));
        }
    }
    Some(format!("{} entries against {}", a.len(), b.len()))
}

// ---------------------------------------------------------------------------------------------
// The `decoders` target
// ---------------------------------------------------------------------------------------------

/// What [`decoders`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeReport {
    /// `Manifest::decode` of the whole input succeeded.
    pub manifest: bool,
    /// `SegmentHeader::decode` of the input succeeded.
    pub header: bool,
    /// 8-aligned offsets of the first [`DECODE_CAP`] bytes at which a record decodes.
    pub records: usize,
}

/// The `decoders` target: every public decoder of `ringlog-format` on `data`.
///
/// The record position is (segment id = the `u64` at bytes 16..24 of the input, epoch = the
/// `u64` at bytes 24..32, i.e. what a segment header there names, even an invalid one; else 1
/// and [`EPOCH`]) and offsets are input indices, so a segment file image decodes as it would in
/// recovery. Checks, besides the absence of panics: every error names the offset it was asked
/// about (records) or one inside the structure; what decodes re-encodes to the same bytes;
/// `find_next_valid` and `find_later_batch` return exactly the first qualifying offset that
/// `decode_record` accepts (so their cheap pre-checks never reject a valid record), with and
/// without a base offset; `find_later_batch` never checksums more than its budget.
pub fn decoders(data: &[u8]) {
    let _ = run_decoders(data);
}

/// [`decoders`], returning what it found.
pub fn run_decoders(data: &[u8]) -> DecodeReport {
    let mut report = DecodeReport {
        manifest: check_manifest(data),
        header: check_segment_header(data),
        records: 0,
    };
    let buf = &data[..data.len().min(DECODE_CAP)];
    let field = |at: usize| {
        buf.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    let segment_id = field(16).unwrap_or(1);
    let epoch = field(24).unwrap_or(EPOCH);
    let pos = |offset: u64| SegmentPos {
        segment_id,
        epoch,
        offset,
    };
    let search = |base: u64| SearchIn {
        layout: Layout::Lean,
        segment_id,
        epoch,
        base,
    };

    // Every 8-aligned offset, one past the end included.
    let mut valid: Vec<(usize, u32)> = Vec::new();
    let mut shown = 0;
    for at in (0..=buf.len()).step_by(RECORD_ALIGN) {
        match decode_record(buf, at, pos(at as u64)) {
            Ok(rec) => {
                check_record(buf, at, pos(at as u64), &rec);
                valid.push((at, rec.batch_start));
            }
            Err(e) => {
                assert_eq!(e.offset(), at as u64, "{e:?} at offset {at}");
                if shown < 8 {
                    shown += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }
    report.records = valid.len();

    // Positions no record can decode at: unaligned, and past the end.
    for at in [1usize, 4, 7, 4097, (buf.len() / 2) | 1] {
        if let Ok(rec) = decode_record(buf, at, pos(at as u64)) {
            panic!("a record decodes at the unaligned offset {at}: {rec:?}");
        }
    }
    for at in [buf.len() + 8, usize::MAX] {
        assert!(matches!(
            decode_record(buf, at, pos(0)),
            Err(DecodeError::Truncated { available: 0, .. })
        ));
    }

    let first_valid = |from: usize, pred: &dyn Fn(u32) -> bool| {
        valid
            .iter()
            .find(|&&(at, bs)| at >= from && pred(bs))
            .map(|&(at, _)| at)
    };
    // The searches, each linear in the input: from the start, and from just after the first
    // record that decodes (else from just after the segment header).
    let second = valid.first().map_or(SEGMENT_HEADER_LEN, |&(at, _)| at) + RECORD_ALIGN;
    // The budget of the search for damage just before `from`, chosen by the input's length:
    // one short record, what recovery gives (twice the bytes searched; `u64::MAX` stands for it
    // here), nothing.
    let small_budget = [56, u64::MAX, 0][data.len() % 3];
    for (i, from) in [0, second].into_iter().enumerate() {
        if from > buf.len() {
            continue;
        }
        // find_next_valid finds the first offset at which decode_record succeeds.
        let want = first_valid(from, &|_| true);
        let got = find_next_valid(buf, from, search(0)).map(|r| r.offset as usize);
        assert_eq!(got, want, "find_next_valid from {from}");
        if i == 1 {
            let based =
                find_next_valid(&buf[from..], 0, search(from as u64)).map(|r| r.offset as usize);
            assert_eq!(
                based, want,
                "find_next_valid on the bytes from {from}, base {from}"
            );
        }

        // find_later_batch from `from`, for damage just before it (with a budget) and at the
        // first record offset of a segment (unlimited, with and without a base offset).
        let tail = (buf.len() - from) as u64;
        let before = from.saturating_sub(RECORD_ALIGN) as u64;
        let budget = if small_budget == u64::MAX {
            2 * tail
        } else {
            small_budget
        };
        for (damage, budget) in [(before, budget), (SEGMENT_HEADER_LEN as u64, u64::MAX)] {
            let qualifies = |bs: u32| {
                let bs = u64::from(bs);
                bs > damage && bs.is_multiple_of(BATCH_ALIGN)
            };
            let want = first_valid(from, &qualifies);
            let (found, cost) = find_later_batch(buf, from, damage, search(0), budget);
            check_later_batch(found, cost, want, budget, from, damage);
            if budget != u64::MAX || i == 0 {
                continue;
            }
            // The same search over the bytes from `from`, given their base offset.
            let (based, bcost) =
                find_later_batch(&buf[from..], 0, damage, search(from as u64), budget);
            assert_eq!(
                (later_offset(based), bcost),
                (later_offset(found), cost),
                "find_later_batch with base offset {from} differs (damage {damage})"
            );
        }
    }
    report
}

fn later_offset(l: LaterBatch<'_>) -> Option<Option<u64>> {
    match l {
        LaterBatch::Found(r) => Some(Some(r.offset)),
        LaterBatch::None => Some(None),
        LaterBatch::Undecided => None,
    }
}

fn check_later_batch(
    found: LaterBatch<'_>,
    cost: ringlog_format::SearchCost,
    want: Option<usize>,
    budget: u64,
    from: usize,
    damage: u64,
) {
    let at = format!("from {from}, damage {damage}, budget {budget}: {cost:?}");
    assert!(
        cost.checksum_bytes <= budget,
        "find_later_batch overspent, {at}"
    );
    assert!(cost.checksums <= cost.candidates, "{at}");
    match found {
        LaterBatch::Found(rec) => {
            assert_eq!(
                Some(rec.offset as usize),
                want,
                "find_later_batch found, {at}"
            );
        }
        LaterBatch::None => assert_eq!(want, None, "find_later_batch missed a record, {at}"),
        LaterBatch::Undecided => {
            assert!(
                budget != u64::MAX,
                "undecided with an unlimited budget, {at}"
            );
        }
    }
}

/// What must hold of a record that decoded at `buf[at]`, position `pos`.
fn check_record(buf: &[u8], at: usize, pos: SegmentPos, rec: &Record<'_>) {
    let len = rec.len as usize;
    assert_eq!(rec.offset, pos.offset);
    assert!(
        len >= RECORD_HEADER_LEN && len <= buf.len() - at,
        "len {len} at {at}"
    );
    assert!(u64::from(rec.batch_start) <= rec.offset);
    assert_eq!(rec.kind as u8, buf[at + 8]);
    assert!(rec.lsn <= MAX_ID && rec.txn_id <= MAX_ID && rec.run_id <= MAX_ID);
    if rec.kind == RecordKind::BatchHead {
        assert_eq!(
            u64::from(rec.batch_start),
            rec.offset,
            "a head is at its batch start"
        );
    }
    match rec.kind {
        RecordKind::Write | RecordKind::Delete => {
            assert_eq!(
                rec.key.len(),
                u16::from_le_bytes([buf[at + 10], buf[at + 11]]) as usize
            );
            assert!(!rec.key.is_empty());
            assert_eq!(RECORD_HEADER_LEN + rec.key.len() + rec.value.len(), len);
            assert!(rec.kind == RecordKind::Write || rec.value.is_empty());
        }
        _ => {
            assert!(rec.key.is_empty() && rec.value.is_empty() && !rec.is_autocommit());
        }
    }
    // The same record, decoded from a slice starting at it.
    assert_eq!(decode_record(&buf[at..], 0, pos).as_ref(), Ok(rec));
    // Re-encoding the decoded fields gives back the checksummed bytes.
    if rec.kind == RecordKind::Padding
        && !buf[at + RECORD_HEADER_LEN..at + len]
            .iter()
            .all(|&b| b == 0)
    {
        return;
    }
    let Some(out) = reencode(rec, pos) else {
        return;
    };
    assert_eq!(out.len(), rec.encoded_len());
    assert!(
        out[..len] == buf[at..at + len],
        "{:?} at {at} re-encodes to other bytes",
        rec.kind
    );
    assert!(
        out[len..].iter().all(|&b| b == 0),
        "alignment bytes not zero"
    );
    assert_eq!(decode_record(&out, 0, pos).as_ref(), Ok(rec));
}

/// `Manifest::decode` of the input and of its first 64 and 128 bytes; a version-3 manifest
/// re-encodes to the same bytes, a 64-byte one is of version 1 or 2.
fn check_manifest(data: &[u8]) -> bool {
    let mut whole = false;
    for (i, bytes) in [
        data,
        &data[..data.len().min(MANIFEST_V2_LEN)],
        &data[..data.len().min(MANIFEST_LEN)],
    ]
    .into_iter()
    .enumerate()
    {
        match Manifest::decode(bytes) {
            Ok(m) if bytes.len() == MANIFEST_V2_LEN => {
                assert!(
                    m.version <= 2,
                    "a 64-byte manifest of version {}",
                    m.version
                );
                whole |= i == 0;
            }
            Ok(m) => {
                assert_eq!(bytes.len(), MANIFEST_LEN);
                assert_eq!(
                    &m.encode()[..],
                    bytes,
                    "a manifest re-encodes to other bytes"
                );
                whole |= i == 0;
            }
            Err(e) => {
                assert!(e.offset() < MANIFEST_LEN as u64, "{e:?}");
                assert!(!e.to_string().is_empty());
            }
        }
    }
    check_checkpoint(data);
    whole
}

/// The checkpoint decoders on the input read as a checkpoint file: the header, the footer at the
/// end, every block from offset 64 on and the entries of those that verify. Never a panic.
fn check_checkpoint(data: &[u8]) {
    let field = |at: usize| {
        data.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    let (epoch, id) = (field(16).unwrap_or(EPOCH), field(24).unwrap_or(1));
    let header = CheckpointHeader::decode(data, epoch, id);
    if let Ok(h) = &header {
        assert_eq!(&h.encode()[..], &data[..CHECKPOINT_HEADER_LEN]);
    }
    if data.len() >= CHECKPOINT_FOOTER_LEN {
        let at = data.len() - CHECKPOINT_FOOTER_LEN;
        let h =
            header.unwrap_or_else(|_| CheckpointHeader::new(epoch, id.clamp(1, MAX_ID), 0, 0, 0));
        if let Err(e) = CheckpointFooter::decode(&data[at..], at as u64, epoch, &h) {
            assert_eq!(e.offset(), at as u64, "{e:?}");
        }
    }
    let mut at = CHECKPOINT_HEADER_LEN;
    let mut raw = Vec::new();
    while at < data.len().min(DECODE_CAP) {
        let pos = BlockPos {
            epoch,
            id,
            offset: at as u64,
        };
        let rest = &data[at..];
        let Ok(b) = BlockHeader::decode(
            rest,
            pos,
            rest.len().saturating_sub(BLOCK_HEADER_LEN) as u64,
        ) else {
            break;
        };
        if b.verify(rest, pos).is_ok() {
            raw.clear();
            let stored = &rest[BLOCK_HEADER_LEN..BLOCK_HEADER_LEN + b.stored_len as usize];
            if let Some(codec) = codec_by_id(b.codec) {
                if codec.decode(stored, b.raw_len as usize, &mut raw).is_ok() {
                    assert_eq!(raw.len(), b.raw_len as usize);
                    for e in Entries::new(&raw, at as u64) {
                        if e.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        at += b.total_len() as usize;
    }
}

/// `SegmentHeader::decode` of the input; it looks at the first 4096 bytes only, and what decodes
/// re-encodes to the same bytes.
fn check_segment_header(data: &[u8]) -> bool {
    let r = SegmentHeader::decode(data);
    let head = &data[..data.len().min(SEGMENT_HEADER_LEN)];
    assert_eq!(
        SegmentHeader::decode(head),
        r,
        "the header decoder reads past 4096 bytes"
    );
    match r {
        Ok(h) => {
            let mut out = vec![0xEEu8; SEGMENT_HEADER_LEN];
            h.encode(&mut out);
            assert!(
                out == head,
                "a segment header re-encodes to other bytes: {h:?}"
            );
            true
        }
        Err(e) => {
            assert!(e.offset() < SEGMENT_HEADER_LEN as u64, "{e:?}");
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Seeds written by the engine
// ---------------------------------------------------------------------------------------------

fn seed_options(direct_io: bool) -> Options {
    Options::default()
        .io(IoChoice::Portable)
        .durability(Durability::Strict)
        .segment_size(MIN_SEGMENT_SIZE)
        .direct_io(direct_io)
}

fn opts_byte(direct_io: bool) -> u8 {
    if direct_io {
        OPT_DIRECT_IO
    } else {
        0
    }
}

/// Runs `f` on a fresh database directory, then captures it.
fn engine_db(runs: &[bool], f: impl Fn(&Db, usize)) -> (tempfile::TempDir, OpenInput) {
    engine_db_with(seed_options, runs, f)
}

/// [`engine_db`] with the options `options(direct_io)` gives.
fn engine_db_with(
    options: impl Fn(bool) -> Options,
    runs: &[bool],
    f: impl Fn(&Db, usize),
) -> (tempfile::TempDir, OpenInput) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (run, &direct_io) in runs.iter().enumerate() {
        let db = Db::open(dir.path(), options(direct_io)).expect("open a seed database");
        f(&db, run);
        db.close().expect("close a seed database");
    }
    let last_direct = runs.last().copied().unwrap_or(true);
    let opts = opts_byte(last_direct) | OPT_FIX_CRCS;
    let input = OpenInput::from_dir(dir.path(), opts).expect("capture");
    (dir, input)
}

/// The records of a segment body (from offset 4096) of `input`'s segment `i`, under
/// [`EPOCH`]: (index in the body, kind, batch_start, header.len).
pub fn body_records(input: &OpenInput, i: usize) -> Vec<(usize, RecordKind, u32, usize)> {
    let id = input.first_id + i as u64;
    let body = &input.segments[i].body;
    let mut out = Vec::new();
    let mut at = 0;
    while let Ok(rec) = decode_record(
        body,
        at,
        SegmentPos {
            segment_id: id,
            epoch: EPOCH,
            offset: (SEGMENT_HEADER_LEN + at) as u64,
        },
    ) {
        out.push((at, rec.kind, rec.batch_start, rec.len as usize));
        at += rec.encoded_len();
    }
    out
}

/// Seed inputs written by the real engine (portable I/O, `Strict`, 64 KiB segments, in a
/// temporary directory): `("open/<name>", input)` for the `open` target and
/// `("decoders/<name>", bytes)` for the `decoders` target. Names start with `seed-`.
///
/// Every segment file is captured with [`OpenInput::from_dir`]; the variants `torn-tail`,
/// `mid-log-damage` and `unfinished-creation` are edits of captured logs.
pub fn seed_inputs() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    let mut raw_segments: Vec<(String, Vec<u8>)> = Vec::new();
    let mut keep_raw = |name: &str, dir: &Path| {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .expect("list a seed database")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        paths.sort();
        if raw_segments.is_empty() {
            let manifest = std::fs::read(dir.join("MANIFEST")).expect("read MANIFEST");
            raw_segments.push(("seed-manifest".into(), manifest));
        }
        let logs = paths
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "log"));
        for (n, p) in logs.enumerate() {
            // The header and the records, without the preallocated zeros.
            let mut bytes = std::fs::read(p).expect("read a seed segment");
            let used = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            bytes.truncate(used.min(DECODE_CAP));
            raw_segments.push((format!("seed-segment-{name}-{}", n + 1), bytes));
        }
    };

    // Autocommitted puts, each its own batch (512-byte write alignment: small batches).
    let (dir, single) = engine_db(&[false], |db, _| {
        for i in 0..5 {
            let v = format!("value-{i}");
            db.put(format!("key-{i}").as_bytes(), v.as_bytes())
                .expect("put");
        }
    });
    keep_raw("single-puts", dir.path());
    seeds.push(("open/seed-single-puts".into(), single.to_bytes()));

    // Multi-operation transactions, deletes, an empty value, an abandoned transaction.
    let (dir, txns) = engine_db(&[false], |db, _| {
        let mut tx = db.begin();
        tx.put(b"a", b"1").expect("put");
        tx.put(b"b", b"2").expect("put");
        tx.delete(b"c").expect("delete");
        tx.commit().expect("commit");
        let mut tx = db.begin();
        tx.put(b"c", b"3").expect("put");
        tx.delete(b"a").expect("delete");
        tx.commit().expect("commit");
        db.delete(b"never-written").expect("delete");
        db.put(b"empty", b"").expect("put");
        db.put(b"b", b"overwritten").expect("put");
        let mut tx = db.begin();
        tx.put(b"dropped", b"never committed").expect("put");
        tx.abort();
        let mut tx = db.begin();
        for i in 0..4u8 {
            tx.put(&[b'm', i], &[i; 100]).expect("put");
        }
        tx.delete(b"empty").expect("delete");
        tx.commit().expect("commit");
    });
    keep_raw("txns", dir.path());
    seeds.push(("open/seed-txns-deletes".into(), txns.to_bytes()));

    // A rotation: 64 KiB segments filled by 2000-byte values.
    let (dir, rotation) = engine_db(&[false], |db, _| {
        for i in 0..30u32 {
            let v = vec![b'a' + (i % 26) as u8; 2000];
            db.put(format!("rot-{i:02}").as_bytes(), &v).expect("put");
        }
    });
    assert!(
        rotation.segments.len() >= 2,
        "the rotation seed did not rotate"
    );
    keep_raw("rotation", dir.path());
    seeds.push(("open/seed-rotation".into(), rotation.to_bytes()));

    // Runs alternating the write alignment: each 4096-aligned run after a 512-aligned one
    // starts a new segment, so four runs leave three small segments.
    let (_dir, mut runs) = engine_db(&[false, true, false, true], |db, run| {
        db.put(format!("run-{run}").as_bytes(), b"x").expect("put");
        if run == 2 {
            db.delete(b"run-0").expect("delete");
        }
    });
    assert_eq!(runs.segments.len(), 3, "the runs seed has another layout");
    runs.opts |= OPT_BIG_PROBES;
    seeds.push(("open/seed-runs".into(), runs.to_bytes()));

    // A fresh database: one header-only segment.
    let (_dir, fresh) = engine_db(&[true], |_, _| {});
    seeds.push(("open/seed-fresh".into(), fresh.to_bytes()));

    // A torn tail: the seal and the last batch's padding gone, the last put damaged.
    let mut torn = single.clone();
    torn.opts &= !OPT_FIX_CRCS;
    let last = torn.segments.len() - 1;
    let recs = body_records(&torn, last);
    let writes: Vec<_> = recs.iter().filter(|r| r.1 == RecordKind::Write).collect();
    let &&(at, _, bs, len) = writes.last().expect("the single-puts seed has writes");
    let body = &mut torn.segments[last].body;
    body.truncate(at + len);
    body[at + len - 1] ^= 0x40;
    assert!(bs as usize >= SEGMENT_HEADER_LEN);
    seeds.push(("open/seed-torn-tail".into(), torn.to_bytes()));

    // Mid-log damage: the third put's value damaged, later batches intact.
    let mut mid = single.clone();
    mid.opts &= !OPT_FIX_CRCS;
    mid.opts |= OPT_BIG_PROBES;
    let recs = body_records(&mid, last);
    let writes: Vec<_> = recs.iter().filter(|r| r.1 == RecordKind::Write).collect();
    let &&(at, _, _, len) = writes.get(2).expect("the single-puts seed has 5 writes");
    mid.segments[last].body[at + len - 1] ^= 0x01;
    seeds.push(("open/seed-mid-log-damage".into(), mid.to_bytes()));

    // An unfinished segment creation after the log: a `.tmp` file with a valid header.
    let mut unfinished = txns.clone();
    let prev = unfinished.segments.last().expect("a segment");
    let prev_end = SEGMENT_HEADER_LEN + prev.body.len().next_multiple_of(512);
    unfinished.segments.push(SegmentInput {
        flags: SEG_VALID_HEADER | SEG_TMP,
        header: HeaderFields {
            run_id: 2,
            prev_end: prev_end as u32,
            base_lsn: 0,
        },
        file_len: MIN_SEGMENT_SIZE as u32,
        body: Vec::new(),
    });
    seeds.push((
        "open/seed-unfinished-creation".into(),
        unfinished.to_bytes(),
    ));

    // A checkpoint with several versions of a key (a `LastVersions` policy, a system entry),
    // a delete, an empty value, and a log tail after it.
    let (dir, ckpt) = engine_db(&[false], |db, _| {
        db.set_retention(ringlog_db::Retention::LastVersions(
            std::num::NonZeroU32::new(3).expect("3"),
        ))
        .expect("set a retention policy");
        for i in 0..4u8 {
            db.put(b"versions", &[b'v', i]).expect("put");
        }
        db.put(b"gone", b"deleted below").expect("put");
        db.delete(b"gone").expect("delete");
        db.put(b"empty", b"").expect("put");
        db.put(b"kept", b"in the checkpoint").expect("put");
        db.checkpoint().expect("checkpoint");
        db.put(b"tail", b"after the checkpoint").expect("put");
        db.put(b"versions", b"v-tail").expect("put");
    });
    let c = ckpt
        .checkpoint
        .as_ref()
        .expect("the checkpoint seed has a checkpoint");
    assert!(
        !c.blocks.is_empty(),
        "the checkpoint seed's checkpoint has no block"
    );
    keep_raw("checkpoint", dir.path());
    seeds.push(("open/seed-checkpoint".into(), ckpt.to_bytes()));

    // Values on disk: a checkpoint whose entries point into the log for values of at least
    // `VALUE_THRESHOLD` bytes, then a tail with one more.
    let (_dir, values) = engine_db_with(
        |direct_io| seed_options(direct_io).value_threshold(Some(VALUE_THRESHOLD)),
        &[false],
        |db, _| {
            for i in 0..6u8 {
                let len = if i % 2 == 0 { 300 } else { 8 };
                db.put(&[b'k', i], &vec![i; len]).expect("put");
            }
            db.put(&[b'k', 0], &[9; 700]).expect("put");
            db.checkpoint().expect("checkpoint");
            db.put(b"k-tail", &[7; 200]).expect("put");
        },
    );
    let mut values = values;
    values.opts |= OPT_VALUES;
    let kinds = values
        .checkpoint
        .as_ref()
        .expect("the values seed has a checkpoint")
        .entry_kinds();
    assert!(
        kinds.contains(&ENTRY_USER_REF) && kinds.contains(&ENTRY_USER),
        "the values seed's checkpoint has no value in the log, or none inline: {kinds:?}"
    );
    let kinds = ckpt.checkpoint.as_ref().expect("checked").entry_kinds();
    assert!(
        kinds.contains(&ENTRY_SYSTEM),
        "the checkpoint seed's checkpoint has no retention entry: {kinds:?}"
    );
    seeds.push(("open/seed-checkpoint-values".into(), values.to_bytes()));

    for (name, bytes) in raw_segments {
        seeds.push((format!("decoders/{name}"), bytes));
    }
    seeds
}
