//! Segment files: naming, creation (header, preallocation, sync, directory sync) and reading.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

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
    file.sync_all()
        .map_err(|e| Error::io("sync new segment", tmp.clone(), e))?;
    failpoint!(SEGMENT_BEFORE_RENAME);
    vfs.rename(&tmp, &path)
        .map_err(|e| Error::io("rename new segment", path.clone(), e))?;
    failpoint!(SEGMENT_BEFORE_DIR_SYNC);
    vfs.sync_dir(&cfg.dir)
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
/// segment's size, nor past `rotate_at` (the length at which the log moves on to the next
/// segment) unless `need` is. Returns the new prepared length.
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
    rotate_at: u64,
) -> Result<u64> {
    assert!(
        need <= cfg.size && len < need,
        "a segment grows only when a round needs more than {len} of its {} bytes (to {need})",
        cfg.size
    );
    let step = len.clamp(initial_len(cfg.size), MAX_GROWTH);
    let target = (len + step)
        .min(rotate_at)
        .max(need)
        .next_multiple_of(PAGE)
        .min(cfg.size);
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
    let (file, len) = match open_for_read(vfs, path, limit)? {
        Err(bytes) => return Ok(bytes),
        Ok(opened) => opened,
    };
    if buf.len() < len {
        buf.resize(len, 0);
    }
    file.read_exact_at(&mut buf[..len], 0)
        .map_err(|e| Error::io("read segment", path.to_path_buf(), e))?;
    Ok(SegmentBytes { shared: None, len })
}

/// The error for segment file `path` of `size` bytes when it is longer than the format allows.
/// No engine writes one: a segment's size is fixed at creation and at most the format's maximum.
/// Never size a buffer by such a file.
pub(crate) fn too_long(path: &Path, size: u64) -> Option<Error> {
    (size > ringlog_format::MAX_SEGMENT_LEN).then(|| Error::Corruption {
        file: path.to_path_buf(),
        offset: ringlog_format::MAX_SEGMENT_LEN,
        reason: format!(
            "segment file is {size} bytes long, more than the format's maximum of {} bytes",
            ringlog_format::MAX_SEGMENT_LEN
        ),
    })
}

/// Opens segment file `path` for reading all of it, or its first `limit` bytes: the file and
/// the length to read, or (`Err`) the bytes themselves when the backend shares them.
#[allow(clippy::type_complexity)]
fn open_for_read(
    vfs: &dyn Vfs,
    path: &Path,
    limit: Option<u64>,
) -> Result<std::result::Result<(Box<dyn VFile>, usize), SegmentBytes>> {
    let opts = OpenOptions {
        write: false,
        create: false,
        direct: false,
    };
    let file = vfs
        .open(path, opts)
        .map_err(|e| Error::io("open segment", path.to_path_buf(), e))?;
    let too_long = |size: u64| too_long(path, size);
    if let Some(shared) = file.shared_contents() {
        let size = (*shared).as_ref().len();
        if let Some(e) = too_long(size as u64) {
            return Err(e);
        }
        let len = limit.map_or(size, |l| (l.min(size as u64)) as usize);
        return Ok(Err(SegmentBytes {
            shared: Some(shared),
            len,
        }));
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
    Ok(Ok((file, len)))
}

/// Bytes a streamed segment is read in: the consumer may decode each piece as soon as it is in.
const READ_PIECE: usize = 4 << 20;

/// Segment files read in order on a helper thread, streamed: the consumer decodes a segment's
/// first pieces while its later ones (and then the next segment) are being read, so decoding
/// overlaps the device's reads instead of following them. Two buffers take turns; a segment's
/// buffer goes back to the reader only when the consumer asks for the next segment, so it is
/// never written while decoded.
pub(crate) struct ReadAhead<'a> {
    vfs: &'a dyn Vfs,
    /// (path, limit) of every segment, in order.
    plan: &'a [(PathBuf, Option<u64>)],
    /// The helper's segments and the channel that hands it free buffers; `None`: reads in place.
    ahead: Option<Ahead>,
}

type AheadRead = (usize, Result<Segment>);

struct Ahead {
    segments: std::sync::mpsc::Receiver<AheadRead>,
    free: std::sync::mpsc::SyncSender<Vec<u8>>,
}

/// One segment's bytes as the consumer sees them: whole (read in place, or shared by the
/// backend) or streamed in by the reader thread.
pub(crate) enum Segment {
    Whole { bytes: SegmentBytes, buf: Vec<u8> },
    Streamed(Arc<Stream>),
}

impl Segment {
    /// At least the first `n` bytes (all of them if the segment is shorter); the prefix read so
    /// far, waiting for the reader if it has not reached `n` yet.
    pub(crate) fn at_least(&self, n: usize) -> Result<&[u8]> {
        match self {
            Segment::Whole { bytes, buf } => Ok(bytes.get(buf)),
            Segment::Streamed(s) => s.at_least(n),
        }
    }

    /// All the bytes (waiting for the rest of a streamed segment).
    pub(crate) fn all(&self) -> Result<&[u8]> {
        self.at_least(usize::MAX)
    }

    /// Time spent waiting in [`Segment::at_least`] for the reader.
    pub(crate) fn waited(&self) -> std::time::Duration {
        match self {
            Segment::Whole { .. } => std::time::Duration::ZERO,
            Segment::Streamed(s) => std::time::Duration::from_nanos(
                s.waited_ns.load(std::sync::atomic::Ordering::Relaxed),
            ),
        }
    }

    /// The buffer, for the next segment to be read into (`None` while the reader still holds it:
    /// it stopped early, after an error).
    fn into_buffer(self) -> Option<Vec<u8>> {
        match self {
            Segment::Whole { buf, .. } => Some(buf),
            Segment::Streamed(s) => Arc::try_unwrap(s).ok().map(Stream::into_buffer),
        }
    }
}

/// A segment the reader thread fills piece by piece: it writes only past `filled`, then publishes
/// the new `filled` (Release); the consumer reads only below what it loaded (Acquire). The
/// buffer is sized before the stream is shared and never reallocated while it is.
pub(crate) struct Stream {
    /// Owns the memory; accessed only through `ptr` while shared.
    buf: std::cell::UnsafeCell<Vec<u8>>,
    ptr: *mut u8,
    /// Bytes of the segment to read.
    len: usize,
    filled: std::sync::atomic::AtomicUsize,
    /// Set (under `progress`) when the reader stops: every byte in (`None`), or the read's error
    /// (kept as its kind and message: each consumer call that reaches it gets its own `Error`).
    progress: parking_lot::Mutex<Option<Option<(std::io::ErrorKind, String)>>>,
    changed: parking_lot::Condvar,
    /// The segment file (for errors).
    path: PathBuf,
    /// Nanoseconds the consumer spent waiting for pieces.
    waited_ns: std::sync::atomic::AtomicU64,
}

// SAFETY: the reader thread writes `[filled, len)` through `ptr` and only then publishes a larger
// `filled` with Release; the consumer reads `[0, filled)` (as loaded with Acquire) and nothing
// else. The two ranges never overlap, so the bytes are never read and written at once, and a
// byte the consumer reads was written before the Release store it synchronised with. The Vec
// itself (its pointer, length, capacity) is not touched while the stream is shared: it is
// sized before and taken back (`into_buffer`) only by the last owner of the Arc.
unsafe impl Send for Stream {}
// SAFETY: as above.
unsafe impl Sync for Stream {}

impl Stream {
    fn new(mut buf: Vec<u8>, len: usize, path: &Path) -> Stream {
        if buf.len() < len {
            buf.resize(len, 0);
        }
        let ptr = buf.as_mut_ptr();
        Stream {
            buf: std::cell::UnsafeCell::new(buf),
            ptr,
            len,
            filled: std::sync::atomic::AtomicUsize::new(0),
            progress: parking_lot::Mutex::new(None),
            changed: parking_lot::Condvar::new(),
            path: path.to_path_buf(),
            waited_ns: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn at_least(&self, n: usize) -> Result<&[u8]> {
        let want = n.min(self.len);
        let mut filled = self.filled.load(std::sync::atomic::Ordering::Acquire);
        if filled < want {
            let started = std::time::Instant::now();
            let mut p = self.progress.lock();
            loop {
                filled = self.filled.load(std::sync::atomic::Ordering::Acquire);
                if filled >= want {
                    break;
                }
                if let Some(end) = &*p {
                    if let Some((kind, msg)) = end {
                        let e = std::io::Error::new(*kind, msg.clone());
                        return Err(Error::io("read segment", self.path.clone(), e));
                    }
                    break;
                }
                self.changed.wait(&mut p);
            }
            let ns = started.elapsed().as_nanos() as u64;
            self.waited_ns
                .fetch_add(ns, std::sync::atomic::Ordering::Relaxed);
        }
        // SAFETY: `[0, filled)` was written before the Release store of `filled` that the
        // Acquire load above saw, and is never written again while the stream is shared (see
        // the Sync impl); the memory lives as long as `self`.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr, filled) })
    }

    /// The reader's side: reads the whole segment from `file` into the buffer, piece by piece.
    fn fill(&self, file: &dyn VFile) {
        let mut at = 0;
        let mut failed = None;
        let size = crate::hooks::read_piece(READ_PIECE);
        while at < self.len {
            let n = size.min(self.len - at);
            // SAFETY: `[at, at + n)` lies inside the buffer (`at + n <= len <= buf.len()`) and
            // past `filled` (== at), which the consumer never reads (see the Sync impl); this
            // thread is the only writer.
            let piece = unsafe { std::slice::from_raw_parts_mut(self.ptr.add(at), n) };
            let skip = at == size && crate::hooks::stream_skips_a_piece();
            let read = if skip {
                Ok(())
            } else {
                file.read_exact_at(piece, at as u64)
            };
            if let Err(e) = read {
                failed = Some((e.kind(), e.to_string()));
                break;
            }
            // The piece is in the buffer now and recovery does not read it from the file again
            // (values written after the checkpoint stay in memory until the next one covers
            // them; that one, locating them, reads the log from disk then): the page cache's
            // copy goes (a hint), so that recovery does not take twice the log's size in fresh
            // memory (BENCHMARKS.md, "Recovery of 1M records").
            if let Err(e) = file.drop_cached(at as u64, n as u64) {
                log::debug!("{}: page cache not dropped ({e})", self.path.display());
            }
            at += n;
            self.filled.store(at, std::sync::atomic::Ordering::Release);
            // Under the lock: a consumer between its check and its wait cannot miss this.
            let _p = self.progress.lock();
            self.changed.notify_all();
        }
        *self.progress.lock() = Some(failed);
        self.changed.notify_all();
    }

    fn into_buffer(self) -> Vec<u8> {
        self.buf.into_inner()
    }
}

impl ReadAhead<'_> {
    /// Runs `f` with a reader of `plan`'s segments; a helper thread streams them in when `ahead`
    /// is set (and it can be started), and is joined before this returns.
    pub(crate) fn with<R>(
        vfs: &dyn Vfs,
        plan: &[(PathBuf, Option<u64>)],
        ahead: bool,
        f: impl FnOnce(&mut ReadAhead<'_>) -> R,
    ) -> R {
        if !ahead || plan.is_empty() {
            return f(&mut ReadAhead {
                vfs,
                plan,
                ahead: None,
            });
        }
        std::thread::scope(|scope| {
            let (segments_tx, segments) = std::sync::mpsc::sync_channel::<AheadRead>(1);
            let (free, free_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
            let reader = move || {
                for (i, (path, limit)) in plan.iter().enumerate() {
                    // The consumer stops asking (or returned): its end of the channel is gone.
                    let Ok(buf) = free_rx.recv() else { return };
                    let (segment, stream) = match open_segment(vfs, path, buf, *limit) {
                        Ok(Opened::Shared(bytes)) => (
                            Ok(Segment::Whole {
                                bytes,
                                buf: Vec::new(),
                            }),
                            None,
                        ),
                        Ok(Opened::File(file, stream)) => {
                            let s = Arc::new(stream);
                            (Ok(Segment::Streamed(s.clone())), Some((file, s)))
                        }
                        Err(e) => (Err(e), None),
                    };
                    let failed = segment.is_err();
                    if segments_tx.send((i, segment)).is_err() || failed {
                        return;
                    }
                    if let Some((file, s)) = stream {
                        s.fill(&*file);
                    }
                }
            };
            let started = std::thread::Builder::new()
                .name("ringlog-read".into())
                .spawn_scoped(scope, reader);
            let ahead = match started {
                Ok(_) => {
                    // Two buffers take turns: one being decoded, one being read into. (The
                    // reader may be done already, with a single segment: nothing to hand it.)
                    let _ = free.send(Vec::new());
                    let _ = free.send(Vec::new());
                    Some(Ahead { segments, free })
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

    /// Segment `i`. Segments are asked for in order; `done`, the previous segment, gives its
    /// buffer back for the one after `i`.
    pub(crate) fn read(&mut self, i: usize, done: Option<Segment>) -> Result<Segment> {
        let recycled = done.and_then(Segment::into_buffer).unwrap_or_default();
        if let Some(a) = &self.ahead {
            if let Ok((at, res)) = a.segments.recv() {
                if at == i {
                    // The reader may have stopped (after the last segment): keep nothing then.
                    if i > 0 {
                        let _ = a.free.send(recycled);
                    }
                    return res;
                }
                debug_assert!(false, "segment {i} asked for while {at} was read ahead");
            }
            // Out of order, or the reader is gone: read in place from now on.
            self.ahead = None;
        }
        let (path, limit) = &self.plan[i];
        let mut buf = recycled;
        let bytes = read_segment(self.vfs, path, &mut buf, *limit)?;
        Ok(Segment::Whole { bytes, buf })
    }
}

/// A segment opened for streaming: its bytes shared by the backend, or its file and the stream
/// to read it into.
enum Opened {
    Shared(SegmentBytes),
    File(Box<dyn VFile>, Stream),
}

/// Opens segment `path` for reading (all of it, or its first `limit` bytes) as
/// [`read_segment`] does, without reading it yet.
fn open_segment(vfs: &dyn Vfs, path: &Path, buf: Vec<u8>, limit: Option<u64>) -> Result<Opened> {
    let (file, len) = match open_for_read(vfs, path, limit)? {
        Err(bytes) => return Ok(Opened::Shared(bytes)),
        Ok(opened) => opened,
    };
    Ok(Opened::File(file, Stream::new(buf, len, path)))
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
    fn a_segment_grows_by_doubling_up_to_the_rotation_size_unless_a_round_needs_more() {
        const MIB: u64 = 1 << 20;
        let dir = tempfile::tempdir().unwrap();
        let vfs = ringlog_uring::PosixVfs::new("test");
        let cfg = SegmentConfig {
            dir: dir.path().to_path_buf(),
            epoch: 7,
            run_id: 1,
            size: 64 * MIB,
            direct: false,
            prealloc: Preallocate::ZeroFill,
        };
        let file = create_segment(&vfs, &cfg, 1, 0, 0).unwrap();
        let len = initial_len(cfg.size);
        assert_eq!(file.size().unwrap(), len);
        // Doubling, with no rotation size below the segment size.
        let len = grow_segment(&*file, &cfg, 1, len, len + 1, u64::MAX).unwrap();
        assert_eq!(len, 2 * MIB);
        // Not past the rotation size...
        let len = grow_segment(&*file, &cfg, 1, len, len + 1, 3 * MIB + 100).unwrap();
        assert_eq!(len, 3 * MIB + 4096, "whole pages");
        // ... unless a round needs more (a transaction larger than what is left below it).
        let len = grow_segment(&*file, &cfg, 1, len, 5 * MIB + 1, 3 * MIB).unwrap();
        assert_eq!(len, 5 * MIB + 4096);
        assert_eq!(file.size().unwrap(), len);
    }

    /// A file of `len` bytes whose byte `i` is `i * 7 mod 251`, in a fresh directory.
    fn patterned(len: usize) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000001.log");
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        (dir, path, bytes)
    }

    #[test]
    fn a_streamed_segment_reads_like_a_whole_one() {
        let (_dir, path, bytes) = patterned(10 * READ_PIECE + 123);
        let vfs = ringlog_uring::PosixVfs::new("test");
        let plan = vec![(path.clone(), None), (path.clone(), Some(5000))];
        ReadAhead::with(&vfs, &plan, true, |reads| {
            let first = reads.read(0, None).unwrap();
            // A prefix as soon as it is in, then everything.
            let head = first.at_least(100).unwrap();
            assert!(head.len() >= 100);
            assert_eq!(head, &bytes[..head.len()]);
            assert_eq!(first.all().unwrap(), &bytes[..]);
            // The next segment (its limit applied) gets a buffer back in turn.
            let second = reads.read(1, Some(first)).unwrap();
            assert_eq!(second.all().unwrap(), &bytes[..5000]);
        });
        // In place (a truncating recovery), the same bytes.
        ReadAhead::with(&vfs, &plan, false, |reads| {
            let first = reads.read(0, None).unwrap();
            assert_eq!(first.all().unwrap(), &bytes[..]);
        });
    }

    #[test]
    fn a_read_error_reaches_the_consumer_past_what_was_read() {
        let (_dir, path, bytes) = patterned(3 * READ_PIECE);
        let vfs = ringlog_uring::PosixVfs::new("test");
        let file = vfs
            .open(
                &path,
                OpenOptions {
                    write: false,
                    create: false,
                    direct: false,
                },
            )
            .unwrap();
        // The stream expects more than the file holds: the read of the last piece fails.
        let stream = Stream::new(Vec::new(), 4 * READ_PIECE, &path);
        std::thread::scope(|s| {
            s.spawn(|| stream.fill(&*file));
            let head = stream.at_least(2 * READ_PIECE).unwrap();
            assert_eq!(head, &bytes[..head.len()]);
            for _ in 0..2 {
                let err = stream.at_least(4 * READ_PIECE).unwrap_err();
                let text = err.to_string();
                assert!(text.contains("read segment"), "{text}");
                assert!(text.contains("00000000000000000001.log"), "{text}");
            }
        });
        assert_eq!(
            stream.filled.load(std::sync::atomic::Ordering::Acquire),
            3 * READ_PIECE
        );
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
