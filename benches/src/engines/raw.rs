//! The raw durable-append loops: the physical floor of a log on this disk.
//!
//! Each commit appends the same record bytes ringlog would write (a ringlog-format Write record
//! per put: 48-byte header, key, value, 8-byte alignment) and makes them durable before the
//! next commit starts. There is no group commit: concurrent callers queue behind one mutex.
//!
//! * `raw-pwrite` — `pwrite` + `fdatasync` appending to a file that grows with every commit
//!   (each fdatasync also records the new file size);
//! * `raw-uring` — one io_uring `Write` SQE linked (`IOSQE_IO_LINK`) to an
//!   `Fsync(DATASYNC)` SQE, submitted together and awaited, on an `O_DIRECT` file preallocated
//!   and zero-filled in 64 MiB steps (ringlog's own configuration);
//! * `raw-odirect` — `O_DIRECT` `pwrite` + `fdatasync` on the same kind of preallocated,
//!   zero-filled file;
//! * `raw-dsync` — `O_DIRECT` `pwritev2(RWF_DSYNC)` on the same kind of file: one system call
//!   per commit, the mechanism ringlog's own durable writes use where the filesystem is trusted
//!   to make such a write durable (`FsInfo::dsync_durable`: ext4, xfs, btrfs; elsewhere ringlog
//!   writes and fdatasyncs, and this loop is not a floor it could reach). On a device with FUA the kernel
//!   may complete it with a FUA write instead of a cache flush, so it can be faster than
//!   `raw-odirect`; the Strict floor is the faster of the two in the same run.
//!
//! `O_DIRECT` commits are padded to the next 4 KiB block, so a block holding a durable commit is
//! never rewritten (as in ringlog). Extending the preallocation happens inside the commit that
//! needs it, and is timed.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use io_uring::{opcode, squeue, types, IoUring};
use parking_lot::Mutex;
use ringlog_format::{
    decode_record, encode_record, encoded_len, AlignedBuf, RecordSpec, SegmentPos,
};

use crate::args::Workload;
use crate::engine::{err, Counters, EResult, Engine, EngineError, EngineKind, Mode, OpenOpts};

/// Which loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// pwrite + fdatasync, growing file.
    Pwrite,
    /// io_uring linked write→fdatasync, O_DIRECT, preallocated zero-filled file.
    Uring,
    /// O_DIRECT pwrite + fdatasync, preallocated zero-filled file.
    ODirect,
    /// O_DIRECT pwritev2(RWF_DSYNC), preallocated zero-filled file.
    Dsync,
}

/// A raw loop as an engine kind.
pub struct RawKind {
    name: &'static str,
    variant: Variant,
}

/// The four loops.
pub static RAW_ENGINES: [RawKind; 4] = [
    RawKind {
        name: "raw-pwrite",
        variant: Variant::Pwrite,
    },
    RawKind {
        name: "raw-uring",
        variant: Variant::Uring,
    },
    RawKind {
        name: "raw-odirect",
        variant: Variant::ODirect,
    },
    RawKind {
        name: "raw-dsync",
        variant: Variant::Dsync,
    },
];

/// Preallocation step of the `O_DIRECT` files (ringlog's default segment size).
const PREALLOC_STEP: u64 = 64 << 20;
const BLOCK: usize = 4096;
const EPOCH: u64 = 0x0bad_5eed_0000_0001;

impl EngineKind for RawKind {
    fn name(&self) -> &'static str {
        self.name
    }

    fn config(&self, mode: Mode) -> Result<String, String> {
        if mode != Mode::Strict {
            return Err("a raw loop is the floor of durable commits: strict mode only".into());
        }
        Ok(match self.variant {
            Variant::Pwrite => "pwrite + fdatasync per commit, growing file, no preallocation",
            Variant::Uring => {
                "io_uring Write linked to Fsync(DATASYNC) per commit, O_DIRECT 4 KiB blocks, \
                 preallocated zero-filled file"
            }
            Variant::ODirect => {
                "O_DIRECT pwrite + fdatasync per commit, 4 KiB blocks, preallocated zero-filled file"
            }
            Variant::Dsync => {
                "O_DIRECT pwritev2(RWF_DSYNC) per commit, 4 KiB blocks, preallocated zero-filled \
                 file"
            }
        }
        .into())
    }

    fn supports(&self, w: Workload) -> bool {
        w.is_write_only()
    }

    fn is_raw(&self) -> bool {
        true
    }

    fn open(&self, dir: &Path, mode: Mode, opts: &OpenOpts) -> EResult<Box<dyn Engine>> {
        self.config(mode).map_err(EngineError)?;
        std::fs::create_dir_all(dir).map_err(|e| err("create raw directory", e))?;
        let path = dir.join("raw.log");
        let direct = self.variant != Variant::Pwrite;
        let plain = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| err("create raw log", e))?;
        let file = if direct {
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(&path)
                .map_err(|e| err("open raw log with O_DIRECT", e))?
        } else {
            plain.try_clone().map_err(|e| err("dup raw log", e))?
        };
        let ring = if self.variant == Variant::Uring {
            Some(IoUring::new(8).map_err(|e| err("io_uring_setup", e))?)
        } else {
            None
        };
        let per_commit = opts.max_batch * encoded_len(opts.key_size, opts.value_size) + BLOCK;
        let raw = Raw {
            variant: self.variant,
            file,
            plain,
            state: Mutex::new(State {
                cursor: 0,
                end: 0,
                buf: AlignedBuf::with_capacity(per_commit.next_multiple_of(BLOCK)),
                index: HashMap::new(),
                lsn: 0,
                counters: Counters {
                    commits: Some(0),
                    syncs: Some(0),
                    bytes_logged: Some(0),
                    ..Counters::default()
                },
                ring,
            }),
        };
        if direct {
            raw.extend(&mut raw.state.lock())?;
        }
        Ok(Box::new(raw))
    }
}

struct State {
    cursor: u64,
    /// End of the preallocated, zero-filled region (0 for the growing file).
    end: u64,
    buf: AlignedBuf,
    /// Where each key's latest record lives: (offset, encoded length).
    index: HashMap<Vec<u8>, (u64, usize)>,
    lsn: u64,
    counters: Counters,
    ring: Option<IoUring>,
}

/// An open raw loop.
pub struct Raw {
    variant: Variant,
    /// The file commits are written through (`O_DIRECT` for the preallocated variants).
    file: File,
    /// The same file opened buffered: zero-filling and read-back verification.
    plain: File,
    state: Mutex<State>,
}

fn add(c: &mut Option<u64>, n: u64) {
    if let Some(v) = c {
        *v += n;
    }
}

impl Raw {
    /// Zero-fills the next `PREALLOC_STEP` bytes and makes them durable.
    fn extend(&self, st: &mut State) -> EResult<()> {
        let start = st.end;
        // SAFETY: fallocate on a valid, open descriptor; no memory is passed.
        let _ = unsafe {
            libc::fallocate(
                self.plain.as_raw_fd(),
                0,
                start as libc::off_t,
                PREALLOC_STEP as libc::off_t,
            )
        };
        let zeros = vec![0u8; 1 << 20];
        let mut off = start;
        while off < start + PREALLOC_STEP {
            self.plain
                .write_all_at(&zeros, off)
                .map_err(|e| err("zero-fill raw log", e))?;
            off += zeros.len() as u64;
        }
        self.plain
            .sync_all()
            .map_err(|e| err("sync zero-filled raw log", e))?;
        st.end = start + PREALLOC_STEP;
        Ok(())
    }

    fn write_durable(&self, st: &mut State, at: u64) -> EResult<()> {
        let len = st.buf.len();
        match self.variant {
            Variant::Pwrite | Variant::ODirect => {
                self.file
                    .write_all_at(st.buf.as_slice(), at)
                    .map_err(|e| err("raw pwrite", e))?;
                self.file.sync_data().map_err(|e| err("raw fdatasync", e))?;
            }
            Variant::Dsync => {
                ringlog_uring::pwrite_dsync(self.file.as_raw_fd(), st.buf.as_slice(), at)
                    .map_err(|e| err("raw pwritev2(RWF_DSYNC)", e))?;
            }
            Variant::Uring => {
                let fd = types::Fd(self.file.as_raw_fd());
                let ring = st
                    .ring
                    .as_mut()
                    .ok_or_else(|| EngineError("raw-uring without a ring".into()))?;
                let write = opcode::Write::new(fd, st.buf.as_slice().as_ptr(), len as u32)
                    .offset(at)
                    .build()
                    .flags(squeue::Flags::IO_LINK)
                    .user_data(1);
                let sync = opcode::Fsync::new(fd)
                    .flags(types::FsyncFlags::DATASYNC)
                    .build()
                    .user_data(2);
                // SAFETY: the buffer (st.buf, borrowed for this whole call through `st`) and
                // the file stay alive and unmoved until both completions are reaped below,
                // before this function returns.
                unsafe {
                    let mut sq = ring.submission();
                    sq.push(&write)
                        .map_err(|_| EngineError("raw-uring: submission queue full".into()))?;
                    sq.push(&sync)
                        .map_err(|_| EngineError("raw-uring: submission queue full".into()))?;
                }
                let mut seen = 0;
                while seen < 2 {
                    ring.submit_and_wait(2 - seen)
                        .map_err(|e| err("io_uring_enter", e))?;
                    for cqe in ring.completion() {
                        seen += 1;
                        let res = cqe.result();
                        if res < 0 {
                            return Err(err(
                                if cqe.user_data() == 1 {
                                    "raw-uring write"
                                } else {
                                    "raw-uring fdatasync"
                                },
                                std::io::Error::from_raw_os_error(-res),
                            ));
                        }
                        if cqe.user_data() == 1 && res as usize != len {
                            return Err(EngineError(format!(
                                "raw-uring: short write {res} of {len}"
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Engine for Raw {
    fn put(&self, key: &[u8], value: &[u8]) -> EResult<()> {
        self.put_batch(&[(key, value)])
    }

    fn put_batch(&self, items: &[(&[u8], &[u8])]) -> EResult<()> {
        let mut st = self.state.lock();
        let st = &mut *st;
        let at = st.cursor;
        st.buf.clear();
        let mut placed = Vec::with_capacity(items.len());
        for (k, v) in items {
            st.lsn += 1;
            let off = at + st.buf.len() as u64;
            let mut spec = RecordSpec::write(k, v, st.lsn, 0);
            if items.len() == 1 {
                spec = spec.autocommit();
            }
            let dst = st.buf.extend_zeroed(encoded_len(k.len(), v.len()));
            let n = encode_record(
                dst,
                &spec,
                SegmentPos {
                    segment_id: 1,
                    epoch: EPOCH,
                    offset: off,
                },
            )
            .map_err(|e| err("encode record", e))?;
            placed.push((off, n));
        }
        let logical = st.buf.len();
        if self.variant != Variant::Pwrite {
            let pad = logical.next_multiple_of(BLOCK) - logical;
            st.buf.extend_zeroed(pad);
            while at + st.buf.len() as u64 > st.end {
                self.extend(st)?;
            }
        }
        self.write_durable(st, at)?;
        st.cursor = at + st.buf.len() as u64;
        for ((k, _), p) in items.iter().zip(placed) {
            st.index.insert(k.to_vec(), p);
        }
        add(&mut st.counters.commits, 1);
        add(&mut st.counters.syncs, 1);
        add(&mut st.counters.bytes_logged, logical as u64);
        Ok(())
    }

    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> EResult<bool> {
        let Some(&(off, len)) = self.state.lock().index.get(key) else {
            return Ok(false);
        };
        let mut buf = vec![0u8; len];
        self.plain
            .read_exact_at(&mut buf, off)
            .map_err(|e| err("raw read-back", e))?;
        let rec = decode_record(
            &buf,
            0,
            SegmentPos {
                segment_id: 1,
                epoch: EPOCH,
                offset: off,
            },
        )
        .map_err(|e| err("raw read-back decode", e))?;
        if rec.key != key {
            return Err(EngineError(format!(
                "raw read-back at offset {off}: found another key"
            )));
        }
        out.clear();
        out.extend_from_slice(rec.value);
        Ok(true)
    }

    fn scan(&self, _: &[u8], _: &[u8], _: usize) -> EResult<usize> {
        Err(EngineError("a raw loop cannot scan".into()))
    }

    fn counters(&self) -> Counters {
        self.state.lock().counters
    }

    fn io_path(&self) -> Option<String> {
        Some(
            match self.variant {
                Variant::Pwrite => "pwrite + fdatasync (buffered)",
                Variant::Uring => "io_uring + O_DIRECT",
                Variant::ODirect => "pwrite + O_DIRECT",
                Variant::Dsync => "pwritev2(RWF_DSYNC) + O_DIRECT",
            }
            .into(),
        )
    }

    fn close(self: Box<Self>) -> EResult<()> {
        Ok(())
    }
}
