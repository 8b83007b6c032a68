//! Segment files: naming, creation (header, preallocation, sync, directory sync) and reading.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ringlog_format::{AlignedBuf, SegmentHeader, SEGMENT_HEADER_LEN};
use ringlog_uring::{Allocation, OpenOptions, SharedBytes, VFile, Vfs};

use crate::options::Preallocate;
use crate::{Error, Result};

/// Name of the segment file with id `id`.
pub(crate) fn segment_file_name(id: u64) -> String {
    format!("{id:020}.log")
}

/// Suffix of a segment being created: the file gets its final name only once its header and
/// size are durable, so a `*.log` file with a bad header is never a creation cut short by a
/// crash, and a `*.log.tmp` file is never part of the log.
pub(crate) const CREATING_SUFFIX: &str = ".tmp";

/// The id in the name of a segment file being created (`<id>.log.tmp`), if `name` is one.
pub(crate) fn parse_creating_name(name: &str) -> Option<u64> {
    parse_segment_name(name.strip_suffix(CREATING_SUFFIX)?)
}

/// The id in a segment file name, if `name` is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What every new segment of a run shares.
#[derive(Clone, Debug)]
pub(crate) struct SegmentConfig {
    pub(crate) dir: PathBuf,
    pub(crate) epoch: u64,
    pub(crate) run_id: u64,
    pub(crate) size: u64,
    pub(crate) direct: bool,
    pub(crate) prealloc: Preallocate,
}

impl SegmentConfig {
    pub(crate) fn path(&self, id: u64) -> PathBuf {
        self.dir.join(segment_file_name(id))
    }
}

pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Creates segment `id` as `<id>.log.tmp`: header, preallocation, file sync; then renames it to
/// `<id>.log` and syncs the directory — all before any record is written to it. A crash never
/// leaves records in a file whose directory entry or header may vanish, and a `<id>.log` file
/// always had a durable, valid header: recovery can tell a creation cut short (a `.tmp` file,
/// removed) from damage (a `.log` file with a bad header, corruption).
pub(crate) fn create_segment(
    vfs: &dyn Vfs,
    cfg: &SegmentConfig,
    id: u64,
    prev_end: u64,
    base_lsn: u64,
) -> Result<Box<dyn VFile>> {
    if id > ringlog_format::MAX_ID {
        return Err(Error::IdSpaceExhausted("segment id"));
    }
    assert!(
        base_lsn <= ringlog_format::MAX_ID,
        "base LSN {base_lsn} beyond the format's maximum: LSNs are checked when assigned"
    );
    let path = cfg.path(id);
    let tmp = cfg
        .dir
        .join(format!("{}{CREATING_SUFFIX}", segment_file_name(id)));
    if vfs
        .kind_of(&tmp)
        .map_err(|e| Error::io("stat segment", tmp.clone(), e))?
        .is_some()
    {
        // Recovery removes leftover creations before any segment is created.
        return Err(Error::Corruption {
            file: tmp,
            offset: 0,
            reason: "a segment being created already exists".into(),
        });
    }
    if vfs
        .kind_of(&path)
        .map_err(|e| Error::io("stat segment", path.clone(), e))?
        .is_some()
    {
        return Err(Error::Corruption {
            file: path,
            offset: 0,
            reason: "the next segment's file already exists".into(),
        });
    }
    let file = vfs
        .open(
            &tmp,
            OpenOptions {
                write: true,
                create: true,
                direct: cfg.direct,
            },
        )
        .map_err(|e| Error::io("create segment", tmp.clone(), e))?;
    failpoint!(SEGMENT_AFTER_CREATE_FILE);
    let mut head = AlignedBuf::with_capacity(SEGMENT_HEADER_LEN);
    SegmentHeader::new(id, cfg.epoch, cfg.run_id, now_ns(), prev_end, base_lsn)
        .encode(head.extend_zeroed(SEGMENT_HEADER_LEN));
    file.write_all_at(head.as_slice(), 0)
        .map_err(|e| Error::io("write segment header", tmp.clone(), e))?;
    prepare_space(
        &*file,
        cfg,
        &tmp,
        SEGMENT_HEADER_LEN as u64,
        initial_len(cfg.size),
    )?;
    failpoint!(SEGMENT_BEFORE_FILE_SYNC);
    crate::hooks::new_segment_sync(&*file)
        .map_err(|e| Error::io("sync new segment", tmp.clone(), e))?;
    failpoint!(SEGMENT_BEFORE_RENAME);
    vfs.rename(&tmp, &path)
        .map_err(|e| Error::io("rename new segment", path.clone(), e))?;
    failpoint!(SEGMENT_BEFORE_DIR_SYNC);
    crate::hooks::segment_dir_sync(vfs, &cfg.dir)
        .map_err(|e| Error::io("sync directory", cfg.dir.clone(), e))?;
    failpoint!(SEGMENT_AFTER_DIR_SYNC);
    log::debug!(
        "created segment {} (prev_end {prev_end}, base_lsn {base_lsn})",
        path.display()
    );
    Ok(file)
}

/// The source of zero-fill writes: 1 MiB, block aligned for `O_DIRECT`, allocated zeroed once
/// per process and never written (a large zeroed allocation is fresh anonymous memory, whose
/// pages the kernel maps to its shared zero page when they are only read).
fn zeros() -> &'static [u8] {
    static ZEROS: OnceLock<AlignedBuf> = OnceLock::new();
    ZEROS
        .get_or_init(|| {
            let mut b = AlignedBuf::with_capacity(1 << 20);
            b.extend_zeroed(1 << 20);
            b
        })
        .as_slice()
}

/// The length a new segment is prepared to: an eighth of it, at most 1 MiB (in 4 KiB pages). The
/// rest is prepared as rounds reach it ([`grow_segment`]): creating a segment (and so a database)
/// writes 1 MiB of zeros rather than `segment_size` (64 MiB by default), and recovery reads only
/// what was prepared.
pub(crate) fn initial_len(size: u64) -> u64 {
    ((size / 8) & !(PAGE - 1))
        .clamp(PAGE, MAX_FIRST_EXTENT)
        .min(size)
}

/// Preparation happens in whole pages.
const PAGE: u64 = 4096;

/// The most of a new segment prepared at creation.
const MAX_FIRST_EXTENT: u64 = 1 << 20;

/// The largest step a segment grows by (a zero-fill of at most this much delays one round).
const MAX_GROWTH: u64 = 8 << 20;

/// Prepares more of an active segment, whose first `len` bytes are prepared, so that at least
/// `need` bytes are: its prepared length doubles, by at most [`MAX_GROWTH`] and never past the
/// segment's size. Returns the new prepared length.
///
/// The zeros are plain writes; the round that needed them syncs them with its own data (an
/// fdatasync, or an `RWF_DSYNC` write, makes the file's new size durable with it). A crash before
/// that sync leaves zeros or nothing past the last round — exactly what recovery's torn-tail rule
/// accepts after the last record.
pub(crate) fn grow_segment(
    file: &dyn VFile,
    cfg: &SegmentConfig,
    id: u64,
    len: u64,
    need: u64,
) -> Result<u64> {
    assert!(
        need <= cfg.size && len < need,
        "a segment grows only when a round needs more than {len} of its {} bytes (to {need})",
        cfg.size
    );
    let step = len.clamp(initial_len(cfg.size), MAX_GROWTH);
    let target = (len + step).max(need).next_multiple_of(PAGE).min(cfg.size);
    prepare_space(file, cfg, &cfg.path(id), len, target)?;
    log::debug!("segment {id} prepared to {target} bytes (a round needs {need})");
    Ok(target)
}

/// Prepares `[from, to)` of a segment: reserves it and, for `ZeroFill`, writes zeros over it.
fn prepare_space(
    file: &dyn VFile,
    cfg: &SegmentConfig,
    path: &Path,
    from: u64,
    to: u64,
) -> Result<()> {
    if cfg.prealloc == Preallocate::None {
        return Ok(());
    }
    let alloc = file
        .allocate(to)
        .map_err(|e| Error::io("preallocate segment", path.to_path_buf(), e))?;
    if cfg.prealloc == Preallocate::ZeroFill && alloc == Allocation::Reserved {
        let zeros = zeros();
        let mut off = from;
        while off < to {
            let n = ((to - off) as usize).min(zeros.len());
            file.write_all_at(&zeros[..n], off)
                .map_err(|e| Error::io("zero-fill segment", path.to_path_buf(), e))?;
            off += n as u64;
        }
    }
    Ok(())
}

/// A segment's bytes as recovery sees them: read into the caller's buffer, or shared without a
/// copy by a backend that holds the file in memory ([`VFile::shared_contents`]).
pub(crate) struct SegmentBytes {
    shared: Option<SharedBytes>,
    len: usize,
}

impl SegmentBytes {
    /// The bytes; `buf` is the buffer given to [`read_segment`].
    pub(crate) fn get<'a>(&'a self, buf: &'a [u8]) -> &'a [u8] {
        match &self.shared {
            Some(s) => &(**s).as_ref()[..self.len],
            None => &buf[..self.len],
        }
    }
}

/// Reads segment file `path` — all of it, or only its first `limit` bytes. The bytes land in
/// `buf[..n]` unless the backend shares them. `buf` only grows: bytes past `n` are left over from
/// earlier reads, so reusing it for the next segment costs no zeroing pass.
pub(crate) fn read_segment(
    vfs: &dyn Vfs,
    path: &Path,
    buf: &mut Vec<u8>,
    limit: Option<u64>,
) -> Result<SegmentBytes> {
    let opts = OpenOptions {
        write: false,
        create: false,
        direct: false,
    };
    let file = vfs
        .open(path, opts)
        .map_err(|e| Error::io("open segment", path.to_path_buf(), e))?;
    let too_long = |size: u64| {
        // No engine writes one: a segment's size is fixed at creation and at most the format's
        // maximum. Never size a buffer by such a file.
        (size > ringlog_format::MAX_SEGMENT_LEN).then(|| Error::Corruption {
            file: path.to_path_buf(),
            offset: ringlog_format::MAX_SEGMENT_LEN,
            reason: format!(
                "segment file is {size} bytes long, more than the format's maximum of {} bytes",
                ringlog_format::MAX_SEGMENT_LEN
            ),
        })
    };
    if let Some(shared) = file.shared_contents() {
        let size = (*shared).as_ref().len();
        if let Some(e) = too_long(size as u64) {
            return Err(e);
        }
        let len = limit.map_or(size, |l| (l.min(size as u64)) as usize);
        return Ok(SegmentBytes {
            shared: Some(shared),
            len,
        });
    }
    let size = file
        .size()
        .map_err(|e| Error::io("stat segment", path.to_path_buf(), e))?;
    if let Some(e) = too_long(size) {
        return Err(e);
    }
    let len = usize::try_from(limit.map_or(size, |l| l.min(size))).map_err(|_| {
        Error::io(
            "read segment",
            path.to_path_buf(),
            std::io::Error::other("segment larger than the address space"),
        )
    })?;
    if buf.len() < len {
        buf.resize(len, 0);
    }
    file.read_exact_at(&mut buf[..len], 0)
        .map_err(|e| Error::io("read segment", path.to_path_buf(), e))?;
    Ok(SegmentBytes { shared: None, len })
}

/// Segment files read in order, each on a helper thread one segment ahead of its consumer: the
/// next segment's read (the device's and the copy out of the page cache) overlaps the decoding
/// of the current one. Two buffers take turns; a segment's buffer goes back to the reader only
/// when the consumer asks for the next segment, so it is never written while decoded.
pub(crate) struct ReadAhead<'a> {
    vfs: &'a dyn Vfs,
    /// (path, limit) of every segment, in order.
    plan: &'a [(PathBuf, Option<u64>)],
    /// The helper's results and the channel that hands it free buffers; `None`: reads in place.
    ahead: Option<Ahead>,
}

type AheadRead = (usize, Result<SegmentBytes>, Vec<u8>);

struct Ahead {
    filled: std::sync::mpsc::Receiver<AheadRead>,
    free: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl ReadAhead<'_> {
    /// Runs `f` with a reader of `plan`'s segments; a helper thread reads ahead when `ahead` is
    /// set and there is more than one segment (and the thread can be started), and is joined
    /// before this returns.
    pub(crate) fn with<R>(
        vfs: &dyn Vfs,
        plan: &[(PathBuf, Option<u64>)],
        ahead: bool,
        f: impl FnOnce(&mut ReadAhead<'_>) -> R,
    ) -> R {
        if !ahead || plan.len() < 2 {
            return f(&mut ReadAhead {
                vfs,
                plan,
                ahead: None,
            });
        }
        std::thread::scope(|scope| {
            let (filled_tx, filled) = std::sync::mpsc::sync_channel::<AheadRead>(1);
            let (free, free_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
            let reader = move || {
                for (i, (path, limit)) in plan.iter().enumerate() {
                    // The consumer stops asking (or returned): its end of the channel is gone.
                    let Ok(mut buf) = free_rx.recv() else { return };
                    let res = read_segment(vfs, path, &mut buf, *limit);
                    let failed = res.is_err();
                    if filled_tx.send((i, res, buf)).is_err() || failed {
                        return;
                    }
                }
            };
            let started = std::thread::Builder::new()
                .name("ringlog-read".into())
                .spawn_scoped(scope, reader);
            let ahead = match started {
                Ok(_) => {
                    free.send(Vec::new()).expect("the reader holds its end");
                    Some(Ahead { filled, free })
                }
                Err(e) => {
                    log::debug!("reading segments in place: {e}");
                    None
                }
            };
            // Dropped (its channels closed) before the scope joins the reader.
            let mut ra = ReadAhead { vfs, plan, ahead };
            f(&mut ra)
        })
    }

    /// Segment `i`'s bytes, in `buf` unless shared ([`read_segment`]). Segments are asked for in
    /// order; `buf` is handed to the helper for the segment after `i`.
    pub(crate) fn read(&mut self, i: usize, buf: &mut Vec<u8>) -> Result<SegmentBytes> {
        if let Some(a) = &self.ahead {
            if let Ok((at, res, filled)) = a.filled.recv() {
                if at == i {
                    let done = std::mem::replace(buf, filled);
                    // The reader may have stopped (after the last segment): keep nothing then.
                    let _ = a.free.send(done);
                    return res;
                }
                debug_assert!(false, "segment {i} asked for while {at} was read ahead");
            }
            // Out of order, or the reader is gone: read in place from now on.
            self.ahead = None;
        }
        let (path, limit) = &self.plan[i];
        read_segment(self.vfs, path, buf, *limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_start_at_an_eighth_up_to_1_mib_in_whole_pages() {
        assert_eq!(initial_len(64 << 20), 1 << 20);
        assert_eq!(initial_len(8 << 20), 1 << 20);
        assert_eq!(initial_len(128 << 10), 16 << 10);
        assert_eq!(initial_len(64 << 10), 8 << 10);
        // Not a power of two: rounded down to whole pages.
        assert_eq!(initial_len(100 * 4096), 12 * 4096);
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_file_name(7), "00000000000000000007.log");
        assert_eq!(
            parse_segment_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_name("7.log"), None);
        assert_eq!(parse_segment_name("0000000000000000000a.log"), None);
        assert_eq!(parse_segment_name("00000000000000000007.log.corrupt"), None);
    }
}
