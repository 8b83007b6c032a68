//! Values on disk ([`crate::Options::value_threshold`]): index nodes that hold a value's place in
//! the log instead of its bytes, and the store that reads such values back.
//!
//! A node flagged [`IN_SEGMENT`] stores, where its value would be, a packed [`ValueRef`]: 8
//! bytes when it fits ([`COMPACT_LEN`]: a `u64` LE of the value length's 19 bits, the record
//! offset's 23 bits in units of 8 bytes and the segment id's 22 bits — values below 512 KiB,
//! offsets below 64 MiB, segments below 2^22), else [`PACKED_LEN`] bytes (segment id, record
//! offset and value length, `u32` LE each); the node's stored length tells which. The
//! referenced record is the version's own Write record in a log segment: its checksum is bound to
//! (epoch, segment, offset), and a read checks it, then that the record is a Write of the node's
//! key at the node's LSN with the expected length. Damage is [`Error::Corruption`] naming the
//! segment file and offset — never other bytes.
//!
//! Reads go through the I/O layer ([`ringlog_uring::Vfs::read_batch`]: one io_uring submission
//! for a whole [`crate::Db::get_many`] on the io_uring path, `pread` on the portable one) and
//! through a bounded cache of verified values (`quick_cache`'s S3-FIFO, weighed in bytes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use ringlog_format::{decode_record, encoded_len, RecordKind, SegmentPos, ValueRef, FLAG_SYSTEM};
use ringlog_uring::{BatchRead, OpenOptions, VFile, Vfs};

use crate::index::Lsn;
use crate::segment::segment_file_name;
use crate::{Error, Result};

/// The system key of value-log garbage collection's transaction (its value: the victim
/// segments' ids, `u64` LE each): committed `Strict` right after the relocated copies, so that
/// its durability covers them.
pub(crate) const VALUE_GC_KEY: &[u8] = b"value-gc";

/// Node flag: the node's stored value bytes are a packed [`ValueRef`], not the value.
pub(crate) const IN_SEGMENT: u8 = 2;
/// Bytes of a packed [`ValueRef`] in a node, in the full form.
pub(crate) const PACKED_LEN: usize = 12;
/// Bytes of the compact form (most references: the index's bytes per key are the issue).
pub(crate) const COMPACT_LEN: usize = 8;

/// Bits of the compact form's fields: value length, record offset ÷ 8, segment id.
const C_LEN_BITS: u32 = 19;
const C_OFF_BITS: u32 = 23;
const C_SEG_BITS: u32 = 64 - C_LEN_BITS - C_OFF_BITS;

/// A packed [`ValueRef`]: its bytes as a node stores them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Packed {
    bytes: [u8; PACKED_LEN],
    len: u8,
}

impl std::ops::Deref for Packed {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Opens a segment file for reading only.
pub(crate) fn open_to_read(vfs: &dyn Vfs, path: &Path) -> std::io::Result<Box<dyn VFile>> {
    vfs.open(
        path,
        OpenOptions {
            write: false,
            create: false,
            direct: false,
        },
    )
}

/// Packs `r` for a node, compact when its fields fit; `None` when a field does not fit even
/// the full form's 32 bits (the value then stays in memory).
pub(crate) fn pack(r: ValueRef) -> Option<Packed> {
    debug_assert!(r.is_valid(), "only a valid reference is packed: {r:?}");
    let mut bytes = [0u8; PACKED_LEN];
    let (len, off8) = (u64::from(r.len), r.offset / 8);
    if r.offset.is_multiple_of(8)
        && len < 1 << C_LEN_BITS
        && off8 < 1 << C_OFF_BITS
        && r.segment < 1 << C_SEG_BITS
    {
        let word = len | off8 << C_LEN_BITS | r.segment << (C_LEN_BITS + C_OFF_BITS);
        bytes[..COMPACT_LEN].copy_from_slice(&word.to_le_bytes());
        return Some(Packed {
            bytes,
            len: COMPACT_LEN as u8,
        });
    }
    let seg = u32::try_from(r.segment).ok()?;
    let off = u32::try_from(r.offset).ok()?;
    bytes[..4].copy_from_slice(&seg.to_le_bytes());
    bytes[4..8].copy_from_slice(&off.to_le_bytes());
    bytes[8..].copy_from_slice(&r.len.to_le_bytes());
    Some(Packed {
        bytes,
        len: PACKED_LEN as u8,
    })
}

/// Unpacks a node's [`pack`]ed bytes (either form).
pub(crate) fn unpack(b: &[u8]) -> ValueRef {
    let r = match b.len() {
        COMPACT_LEN => {
            let word = u64::from_le_bytes(b.try_into().expect("8 bytes"));
            let mask = |bits: u32| (1u64 << bits) - 1;
            ValueRef {
                segment: word >> (C_LEN_BITS + C_OFF_BITS),
                offset: (word >> C_LEN_BITS & mask(C_OFF_BITS)) * 8,
                len: (word & mask(C_LEN_BITS)) as u32,
            }
        }
        n => {
            assert_eq!(n, PACKED_LEN, "a packed value reference");
            let u = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
            ValueRef {
                segment: u64::from(u(0)),
                offset: u64::from(u(4)),
                len: u(8),
            }
        }
    };
    debug_assert!(r.is_valid(), "a packed reference is valid: {r:?}");
    r
}

/// Weighs cached values by their bytes (plus a small constant for the entry).
#[derive(Clone)]
struct ByBytes;

impl quick_cache::Weighter<Tag, Arc<[u8]>> for ByBytes {
    fn weight(&self, _key: &Tag, val: &Arc<[u8]>) -> u64 {
        val.len() as u64 + 40
    }
}

type Cache = quick_cache::sync::Cache<
    Tag,
    Arc<[u8]>,
    ByBytes,
    foldhash::fast::RandomState,
    quick_cache::sync::DefaultLifecycle<Tag, Arc<[u8]>>,
>;

/// What a value read and checked once answers for, in the cache and in a scan's read-ahead:
/// its place (segment, offset) and the version whose record was found there (LSN, and a hash
/// of the key; the value's length is checked on a hit, [`Want::fits`]). A reference that names
/// another version's place — a damaged or forged checkpoint — misses, is read from disk and
/// fails its check (`Corruption`), instead of being answered with the other version's bytes (a
/// review's find: the cache was keyed by place alone).
pub(crate) type Tag = (u64, u64, Lsn, u64);

/// Counters of the store, for [`crate::Stats`].
#[derive(Debug, Default)]
pub(crate) struct StoreCounters {
    /// Values read from disk (cache misses).
    pub(crate) disk_reads: AtomicU64,
    /// Reads served from the cache.
    pub(crate) cache_hits: AtomicU64,
    /// Bytes read from disk.
    pub(crate) disk_bytes: AtomicU64,
}

/// Most value segments a database keeps open for reading at once. A database with values on
/// disk may have thousands of segments (64 MiB each by default, far more with small segments);
/// keeping every one it ever read open ran a process out of file descriptors at the usual limit
/// of 1,024 (reads, then checkpoints and new segments failed with `EMFILE`). Past this, the least
/// recently used are closed; reopening one costs an `open(2)` beside the read.
pub(crate) const MAX_OPEN_FILES: usize = 128;

/// A value segment open for reading, and the tick of its last use.
type OpenFile = (Arc<dyn VFile>, AtomicU64);

/// Reads values the index refers to from the log's segments.
pub(crate) struct ValueStore {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    epoch: u64,
    /// Values of at least this many bytes leave memory at a checkpoint.
    pub(crate) threshold: usize,
    /// Value segments open for reading, by id, with when each was last used (a tick of
    /// `ticks`): at most [`MAX_OPEN_FILES`], the least recently used closed first (a reader
    /// holding one keeps it open until its read is done).
    files: RwLock<HashMap<u64, OpenFile>>,
    ticks: AtomicU64,
    cache: Option<Cache>,
    pub(crate) counters: StoreCounters,
}

impl std::fmt::Debug for ValueStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueStore")
            .field("dir", &self.dir)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

/// One value a batched read asks for: its place, and the node's key and LSN it must match.
pub(crate) struct Want<'a> {
    pub(crate) at: ValueRef,
    pub(crate) key: &'a [u8],
    pub(crate) lsn: Lsn,
}

impl Want<'_> {
    /// The [`Tag`] a value read for this want answers for.
    pub(crate) fn tag(&self) -> Tag {
        use std::hash::BuildHasher;
        let key = foldhash::fast::FixedState::with_seed(0x7a67).hash_one(self.key);
        (self.at.segment, self.at.offset, self.lsn, key)
    }

    /// Whether `v`, found under this want's [`Tag`], has the length it asks for.
    pub(crate) fn fits(&self, v: &[u8]) -> bool {
        v.len() == self.at.len as usize
    }
}

impl ValueStore {
    pub(crate) fn new(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        epoch: u64,
        threshold: usize,
        cache_bytes: u64,
    ) -> ValueStore {
        let cache = (cache_bytes > 0).then(|| {
            // Sized for values of about 1 KiB; the weight bounds it whatever their size.
            let items = (cache_bytes / 1024).clamp(16, 1 << 22) as usize;
            Cache::with(
                items,
                cache_bytes,
                ByBytes,
                foldhash::fast::RandomState::default(),
                Default::default(),
            )
        });
        ValueStore {
            vfs,
            dir: dir.to_path_buf(),
            epoch,
            threshold: threshold.max(1),
            files: RwLock::new(HashMap::new()),
            ticks: AtomicU64::new(0),
            cache,
            counters: StoreCounters::default(),
        }
    }

    /// The path of segment `id`.
    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(segment_file_name(id))
    }

    /// Segment `id`, opened for reading: kept open among the [`MAX_OPEN_FILES`] most recently
    /// used (until [`ValueStore::forget`], or until others push it out).
    fn file(&self, id: u64) -> Result<Arc<dyn VFile>> {
        let now = self.ticks.fetch_add(1, Ordering::Relaxed);
        if let Some((f, used)) = self.files.read().get(&id) {
            used.store(now, Ordering::Relaxed);
            return Ok(f.clone());
        }
        let path = self.path(id);
        let f: Arc<dyn VFile> = open_to_read(&*self.vfs, &path)
            .map_err(|e| Error::io("open segment to read a value", path, e))?
            .into();
        let mut files = self.files.write();
        if !files.contains_key(&id) && files.len() >= MAX_OPEN_FILES {
            // Close the least recently used eighth at once: an open past the bound then costs
            // a scan of the set only once in a while.
            let mut by_use: Vec<(u64, u64)> = files
                .iter()
                .map(|(&k, (_, used))| (used.load(Ordering::Relaxed), k))
                .collect();
            by_use.sort_unstable();
            for &(_, k) in by_use.iter().take(MAX_OPEN_FILES / 8) {
                files.remove(&k);
            }
        }
        let (f, used) = files.entry(id).or_insert((f, AtomicU64::new(0)));
        used.store(now, Ordering::Relaxed);
        Ok(f.clone())
    }

    /// Value segments open for reading now (at most [`MAX_OPEN_FILES`]).
    #[cfg(test)]
    pub(crate) fn open_files(&self) -> usize {
        self.files.read().len()
    }

    /// The length of segment `id`'s file: the space collecting it frees. Opens it only for the
    /// call when it is not open already (garbage collection asks for every value segment).
    pub(crate) fn segment_len(&self, id: u64) -> Result<u64> {
        let open = self.files.read().get(&id).map(|(f, _)| f.clone());
        let f = match open {
            Some(f) => f,
            None => {
                let path = self.path(id);
                open_to_read(&*self.vfs, &path)
                    .map_err(|e| Error::io("open segment to size it", path, e))?
                    .into()
            }
        };
        f.size()
            .map_err(|e| Error::io("size of segment", self.path(id), e))
    }

    /// Closes segment `id` (compaction deleted it, or is about to) and drops its cached values
    /// lazily (they are keyed by place: a deleted segment's places are never referred to again,
    /// since segment ids are never reused).
    pub(crate) fn forget(&self, id: u64) {
        self.files.write().remove(&id);
    }

    /// Bytes and number of values in the cache.
    pub(crate) fn cached(&self) -> (u64, u64) {
        self.cache
            .as_ref()
            .map_or((0, 0), |c| (c.weight(), c.len() as u64))
    }

    /// The value at `want.at`, verified (from the cache, or read from disk and cached).
    pub(crate) fn read(&self, want: &Want<'_>) -> Result<Arc<[u8]>> {
        // A hit allocates nothing (read_many builds its batch's vectors).
        if let Some(v) = self
            .cache
            .as_ref()
            .and_then(|c| c.get(&want.tag()))
            .filter(|v| want.fits(v))
        {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(v);
        }
        let mut out = self.read_many(std::slice::from_ref(want));
        out.pop().expect("one result per value")
    }

    /// The values `wants` ask for, in order: cache hits first, then every miss read in one
    /// [`Vfs::read_batch`] (one io_uring submission on the io_uring path).
    pub(crate) fn read_many(&self, wants: &[Want<'_>]) -> Vec<Result<Arc<[u8]>>> {
        let mut out: Vec<Option<Result<Arc<[u8]>>>> = Vec::with_capacity(wants.len());
        let mut misses = Vec::new();
        for (i, w) in wants.iter().enumerate() {
            match self
                .cache
                .as_ref()
                .and_then(|c| c.get(&w.tag()))
                .filter(|v| w.fits(v))
            {
                Some(v) => {
                    self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                    out.push(Some(Ok(v)));
                }
                None => {
                    out.push(None);
                    misses.push(i);
                }
            }
        }
        if !misses.is_empty() {
            // Open the files first (an error fails only the values in that file).
            let mut slots = Vec::with_capacity(misses.len());
            for &i in &misses {
                let w = &wants[i];
                match self.file(w.at.segment) {
                    Ok(f) => {
                        let buf = vec![0u8; encoded_len(w.key.len(), w.at.len as usize)];
                        slots.push((i, f, buf));
                    }
                    Err(e) => out[i] = Some(Err(e)),
                }
            }
            let mut reads: Vec<BatchRead<'_>> = slots
                .iter_mut()
                .map(|(i, f, buf)| BatchRead::new(&**f, wants[*i].at.offset, buf))
                .collect();
            self.vfs.read_batch(&mut reads);
            let results: Vec<Option<std::io::Result<()>>> =
                reads.into_iter().map(|r| r.result).collect();
            for ((i, _, buf), res) in slots.iter().zip(results) {
                let w = &wants[*i];
                out[*i] = Some(match res {
                    Some(Ok(())) => self.verify(w, buf),
                    Some(Err(e)) => Err(read_error(self.path(w.at.segment), w.at, e)),
                    None => Err(Error::io(
                        "read a value",
                        self.path(w.at.segment),
                        std::io::Error::other("the read was not performed"),
                    )),
                });
            }
        }
        out.into_iter()
            .map(|r| r.expect("every value was looked up"))
            .collect()
    }

    /// Checks the record read for `w` and returns its value (cached).
    fn verify(&self, w: &Want<'_>, buf: &[u8]) -> Result<Arc<[u8]>> {
        let value = match check_record(&self.path(w.at.segment), self.epoch, w, buf) {
            Ok(v) => v,
            Err(e) if crate::hooks::value_read_skips_checks() => {
                // Planted bug: the bytes where the value would be (after header and key).
                let start = ringlog_format::RECORD_HEADER_LEN + w.key.len();
                buf.get(start..start + w.at.len as usize).ok_or(e)?
            }
            Err(e) => return Err(e),
        };
        self.counters.disk_reads.fetch_add(1, Ordering::Relaxed);
        self.counters
            .disk_bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        let v: Arc<[u8]> = Arc::from(value);
        if let Some(c) = &self.cache {
            c.insert(w.tag(), v.clone());
        }
        Ok(v)
    }
}

/// The value in `buf`, the bytes read at `w.at` of the segment at `path` of the database of
/// `epoch`, once the record is checked: its checksum (bound to the place), its kind (a user
/// Write), its key, LSN and value length (`w`'s).
fn check_record<'b>(path: &Path, epoch: u64, w: &Want<'_>, buf: &'b [u8]) -> Result<&'b [u8]> {
    let at = w.at;
    let bad = |reason: String| Error::Corruption {
        file: path.to_path_buf(),
        offset: at.offset,
        reason,
    };
    let pos = SegmentPos {
        segment_id: at.segment,
        epoch,
        offset: at.offset,
    };
    let rec = decode_record(buf, 0, pos)
        .map_err(|e| bad(format!("a value's record does not decode: {e}")))?;
    if rec.kind != RecordKind::Write || rec.flags & FLAG_SYSTEM != 0 {
        return Err(bad(format!(
            "a value's record is a {:?}, not a user Write",
            rec.kind
        )));
    }
    if rec.key != w.key || rec.lsn != w.lsn || rec.value.len() != at.len as usize {
        return Err(bad(format!(
            "a value's record holds another version (LSN {} instead of {}, {} value bytes \
             instead of {}, or another key)",
            rec.lsn,
            w.lsn,
            rec.value.len(),
            at.len
        )));
    }
    Ok(rec.value)
}

/// Reads and checks one value without a store (recovery, which then keeps it in memory).
pub(crate) fn read_direct(vfs: &dyn Vfs, dir: &Path, epoch: u64, w: &Want<'_>) -> Result<Vec<u8>> {
    let path = dir.join(segment_file_name(w.at.segment));
    let file = open_to_read(vfs, &path)
        .map_err(|e| Error::io("open segment to read a value", path.clone(), e))?;
    let mut buf = vec![0u8; encoded_len(w.key.len(), w.at.len as usize)];
    file.read_exact_at(&mut buf, w.at.offset)
        .map_err(|e| read_error(path.clone(), w.at, e))?;
    check_record(&path, epoch, w, &buf).map(<[u8]>::to_vec)
}

/// The error of a failed read of the value at `at` in `path`: a record its reference places past
/// the end of the segment is corruption (the reference names bytes that were never written, as
/// a record that does not check would be); any other failure is an I/O error.
fn read_error(path: PathBuf, at: ValueRef, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        return Error::Corruption {
            file: path,
            offset: at.offset,
            reason: format!(
                "a value's record ({} value bytes) lies past the end of its segment",
                at.len
            ),
        };
    }
    Error::io("read a value", path, e)
}

/// Where the values of the log's Write records lie, for the versions a checkpoint will hold by
/// reference: `(key, LSN) → ValueRef`, sorted in list order (key ascending, LSN descending) so
/// that a walk over the index in list order finds each in one forward pass ([`LocatedCursor`]).
#[derive(Default)]
pub(crate) struct Located {
    keys: Vec<u8>,
    /// (key start in `keys`, key length, LSN, place; `None` for a record whose value stays in
    /// memory: small, or a delete).
    entries: Vec<(usize, u32, Lsn, Option<ValueRef>, u64)>,
}

type LocEntry = (usize, u32, Lsn, Option<ValueRef>, u64);

impl Located {
    fn key(&self, e: &LocEntry) -> &[u8] {
        &self.keys[e.0..e.0 + e.1 as usize]
    }

    /// Records a record of `key` at `lsn` (in log order).
    fn push(&mut self, key: &[u8], lsn: Lsn, at: Option<ValueRef>) {
        let start = self.keys.len();
        self.keys.extend_from_slice(key);
        let order = self.entries.len() as u64;
        self.entries.push((start, key.len() as u32, lsn, at, order));
    }

    /// Sorts in list order; of the records of one (key, LSN) — a transaction that wrote a key
    /// more than once — keeps the last in log order, which holds the version's value; then
    /// drops the versions whose value stays in memory.
    fn finish(&mut self) {
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_by(|a, b| {
            self.key(a)
                .cmp(self.key(b))
                .then(b.2.cmp(&a.2))
                .then(b.4.cmp(&a.4))
        });
        // `dedup_by` passes (next, kept): drop `next` when it is the same version (an earlier
        // record of it: the last record sorts first).
        entries.dedup_by(|next, kept| kept.2 == next.2 && self.key(kept) == self.key(next));
        entries.retain(|e| e.3.is_some());
        self.entries = entries;
    }

    /// Keeps the values located in segments below `segment` only.
    pub(crate) fn retain_below(&mut self, segment: u64) {
        self.entries
            .retain(|e| e.3.is_some_and(|r| r.segment < segment));
    }

    /// Number of values located.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// A cursor for one walk in list order.
    pub(crate) fn cursor(&self) -> LocatedCursor<'_> {
        LocatedCursor { of: self, at: 0 }
    }
}

/// Finds versions of a [`Located`] in list order.
pub(crate) struct LocatedCursor<'a> {
    of: &'a Located,
    at: usize,
}

impl LocatedCursor<'_> {
    /// The place of the value of `(key, lsn)`, a version whose value in memory is `value_len`
    /// bytes, if it was located; calls must come in list order. A located record of another
    /// length is not the version's value (never expected: asserted in debug builds, and the value
    /// then stays in memory).
    pub(crate) fn find(&mut self, key: &[u8], lsn: Lsn, value_len: usize) -> Option<ValueRef> {
        let of = self.of;
        while let Some(e) = of.entries.get(self.at) {
            let order = of.key(e).cmp(key).then(lsn.cmp(&e.2));
            match order {
                std::cmp::Ordering::Less => self.at += 1,
                std::cmp::Ordering::Equal => {
                    let r = e.3.expect("finish keeps located values only");
                    debug_assert_eq!(
                        r.len as usize, value_len,
                        "the located record of a version holds its value"
                    );
                    return (r.len as usize == value_len).then_some(r);
                }
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }
}

/// Reads segments `ids` of `dir` and locates the user Write records of LSN at most `lsn` whose
/// values have at least `threshold` bytes. Reads each segment from its header until the first
/// record that does not decode (the end of what was written): a record missed only keeps its
/// value in memory. Segments of the wide layout (format versions 1–3) are skipped.
pub(crate) fn locate(
    vfs: &dyn Vfs,
    dir: &Path,
    epoch: u64,
    ids: &[u64],
    lsn: Lsn,
    threshold: usize,
) -> Result<Located> {
    let mut found = Located::default();
    let mut txn = TxnRecords::default();
    for &id in ids {
        let path = dir.join(segment_file_name(id));
        let file = match open_to_read(vfs, &path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("open segment to locate values", path, e)),
        };
        let size = file
            .size()
            .map_err(|e| Error::io("size of segment", path.clone(), e))?;
        // Checked at open, but the file may have grown since (found in review).
        if let Some(e) = crate::segment::too_long(&path, size) {
            return Err(e);
        }
        let mut buf = vec![0u8; size as usize];
        file.read_exact_at(&mut buf, 0)
            .map_err(|e| Error::io("read segment to locate values", path.clone(), e))?;
        let Ok(head) = ringlog_format::SegmentHeader::decode(&buf) else {
            continue;
        };
        if ringlog_format::Layout::for_version(head.version) != Some(ringlog_format::Layout::Lean)
            || head.segment_id != id
            || head.epoch != epoch
        {
            continue;
        }
        let mut at = ringlog_format::SEGMENT_HEADER_LEN;
        while at < buf.len() {
            let pos = SegmentPos {
                segment_id: id,
                epoch,
                offset: at as u64,
            };
            let Ok(rec) = decode_record(&buf, at, pos) else {
                break;
            };
            // Every user write and delete of a transaction, whatever its size: a transaction
            // that wrote a key twice holds the version's value in its last record of the key,
            // which may be small (or a delete) while an earlier one is large. A transaction's
            // records are contiguous in the log: its LSN ends when another begins.
            if matches!(rec.kind, RecordKind::Write | RecordKind::Delete)
                && rec.flags & FLAG_SYSTEM == 0
                && rec.lsn <= lsn
            {
                if txn.lsn != rec.lsn {
                    txn.flush(&mut found);
                    txn.lsn = rec.lsn;
                }
                let r = ValueRef {
                    segment: id,
                    offset: at as u64,
                    len: rec.value.len() as u32,
                };
                // A relocated copy is of a value on disk already, whatever its size.
                let keep = rec.kind == RecordKind::Write
                    && (rec.value.len() >= threshold || rec.is_relocated())
                    && pack(r).is_some();
                txn.push(rec.key, keep.then_some(r));
            }
            at += ringlog_format::align_up(u64::from(rec.len), 8) as usize;
        }
    }
    txn.flush(&mut found);
    found.finish();
    Ok(found)
}

/// The user records of one transaction (one LSN) met so far by [`locate`]: only the last of
/// each key holds the version's value.
#[derive(Default)]
struct TxnRecords {
    lsn: Lsn,
    keys: Vec<u8>,
    /// (key start, key length, place if the record's value would go to disk).
    records: Vec<(usize, usize, Option<ValueRef>)>,
}

impl TxnRecords {
    fn push(&mut self, key: &[u8], at: Option<ValueRef>) {
        let start = self.keys.len();
        self.keys.extend_from_slice(key);
        self.records.push((start, key.len(), at));
    }

    /// Hands the transaction's versions whose values go to disk to `found`, and empties.
    fn flush(&mut self, found: &mut Located) {
        let key = |r: &(usize, usize, Option<ValueRef>)| &self.keys[r.0..r.0 + r.1];
        // The last record of each key, walking backwards (a single-record transaction, the
        // common case, has nothing to compare; a large one uses a set).
        let mut seen: Option<std::collections::HashSet<&[u8]>> =
            (self.records.len() > 16).then(std::collections::HashSet::new);
        for (i, r) in self.records.iter().enumerate().rev() {
            let last = match &mut seen {
                Some(set) => set.insert(key(r)),
                None => self.records[i + 1..]
                    .iter()
                    .all(|later| key(later) != key(r)),
            };
            if let (true, Some(at)) = (last, r.2) {
                found.push(key(r), self.lsn, Some(at));
            }
        }
        self.keys.clear();
        self.records.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading values spread over many more value segments than [`MAX_OPEN_FILES`] keeps at
    /// most that many open (it kept every segment it ever read open, and a large database ran
    /// the process out of file descriptors: reads, checkpoints and new segments then failed with
    /// `EMFILE` — found by a review at `RLIMIT_NOFILE` 1,024), and every value reads back right.
    #[test]
    fn value_segments_open_for_reading_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let opts = crate::Options::default()
            .durability(crate::Durability::BUFFERED)
            .segment_size(crate::options::MIN_SEGMENT_SIZE)
            .value_threshold(Some(64))
            .value_cache_bytes(0);
        let value = |i: u32| vec![(i % 251) as u8; 4000];
        let n = 6000u32;
        let db = crate::Db::open(dir.path(), opts.clone()).unwrap();
        for i in 0..n {
            db.put(&i.to_be_bytes(), &value(i)).unwrap();
        }
        db.checkpoint().unwrap();
        db.close().unwrap();
        let segments = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".log")
            })
            .count();
        assert!(
            segments > 2 * MAX_OPEN_FILES,
            "{segments} segments: too few to test the bound"
        );
        let db = crate::Db::open(dir.path(), opts).unwrap();
        let store = db.shared.versions.store.get().unwrap().clone();
        for round in 0..2 {
            for i in 0..n {
                let got = db.get(&i.to_be_bytes()).unwrap();
                assert_eq!(
                    got.as_deref(),
                    Some(&value(i)[..]),
                    "key {i}, round {round}"
                );
                assert!(store.open_files() <= MAX_OPEN_FILES);
            }
        }
        assert!(store.counters.disk_reads.load(Ordering::Relaxed) >= 2 * u64::from(n));
        db.close().unwrap();
    }

    #[test]
    fn packing_round_trips_and_refuses_what_does_not_fit() {
        let r = ValueRef {
            segment: 7,
            offset: 4096,
            len: 1 << 20,
        };
        assert_eq!(pack(r).unwrap().len(), PACKED_LEN, "a value of 1 MiB");
        assert_eq!(unpack(&pack(r).unwrap()), r);
        let big = ValueRef {
            segment: 1 << 33,
            ..r
        };
        assert_eq!(pack(big), None);
    }

    /// Both forms round-trip at and around every field's limit; the compact one is chosen
    /// exactly when all three fit.
    #[test]
    fn the_compact_form_holds_what_fits_and_only_that() {
        let seg_max = (1u64 << C_SEG_BITS) - 1;
        let off_max = ((1u64 << C_OFF_BITS) - 1) * 8;
        let len_max = (1u32 << C_LEN_BITS) - 1;
        let mut n = 0;
        for segment in [1, 2, 1000, seg_max, seg_max + 1, u64::from(u32::MAX)] {
            let first = ringlog_format::SEGMENT_HEADER_LEN as u64;
            for offset in [first, 4096, off_max, off_max + 8, (1 << 30) - 8] {
                for len in [0, 1, 100, len_max, len_max + 1, (1 << 29) + 3] {
                    let r = ValueRef {
                        segment,
                        offset,
                        len,
                    };
                    assert!(r.is_valid(), "{r:?}");
                    let p = pack(r).expect("fits the full form");
                    let fits = segment <= seg_max && offset <= off_max && len <= len_max;
                    let want = if fits { COMPACT_LEN } else { PACKED_LEN };
                    assert_eq!(p.len(), want, "{r:?}");
                    assert_eq!(unpack(&p), r, "{r:?}");
                    n += 1;
                }
            }
        }
        assert_eq!(n, 180);
    }
}
