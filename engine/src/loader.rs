//! Recovery's loader: builds the first generation of the index from the operations the log
//! replays, in log order.

use std::collections::HashMap;
use std::sync::Arc;

use crate::hugemem::HugeBuf;
use crate::index::retention::Plan;
use crate::index::{Lsn, OpRef, TRIMMED_BELOW};
use crate::skiplist::SkipList;

/// Builds the index from operations replayed in log order. Recovery applies millions of
/// operations; instead of one ordered-map insert each (a pointer-chasing descent per record), the
/// loader works in two regimes:
/// * while there are few live keys (at most [`HASH_LIMIT`]), a hash map holds each key's newest
///   version: a key is allocated once however often it is overwritten, a delete removes it, and
///   the map stays small enough to live in the cache;
/// * beyond that, where hashing into a large table misses the cache on every operation, it
///   copies a chunk of operations into a [`Versions`] (one buffer, no allocation per operation),
///   sorts it keeping each key's latest operation, and folds it into a sorted run of live keys.
///
/// Either way it bulk-builds the ordered map once at the end, and memory stays bounded by the live
/// keys plus one chunk, whatever the length of the history.
pub(crate) struct Loader {
    /// Hash regime: the newest version of each live key. Drained into `pending` (all distinct
    /// keys, so in any order) when it outgrows `hash_limit`, and unused from then on.
    live: HashMap<Arc<[u8]>, HashEntry, foldhash::fast::RandomState>,
    /// Entries of `live` whose value is still [`HashVal::InSegment`].
    deferred: usize,
    hash_limit: usize,
    hashing: bool,
    /// Sorted, distinct live keys: the state after every operation folded so far (when the
    /// folding is done here rather than by `sorter`).
    sorted: Versions,
    /// The thread that sorts and folds full chunks while the replay goes on (started at the
    /// first fold; `None` before, or if it could not be started).
    sorter: Option<Sorter>,
    /// Operations handed to the sorter so far (the next chunk is at least half of this, so
    /// that folds, each linear in the live keys, stay few: amortised linear in all).
    sent: usize,
    /// Chunks are at least this many operations.
    min_chunk: usize,
    /// Operations in log order, not yet folded (a delete is a version without a value).
    pending: Versions,
    /// Versioned mode (a retention policy that keeps history is in force): every operation from
    /// then on, in log order, besides the newest-only state at the switch.
    history: Option<Versions>,
}

/// Versions, compactly: their keys and values copied into large buffers, each described by a
/// fixed-size entry. Built in log order by the loader, then sorted (key ascending, LSN
/// descending) by [`Loader::finish`]. No allocation per version, and sorting moves 48-byte
/// entries whose first field, the key's first 16 bytes, decides almost every comparison without
/// reading the buffer (recovery sorts hundreds of thousands of versions).
///
/// Folding and merging two sets moves their buffers into the result and merges only the entries:
/// the bytes of a version are copied once when it is pushed and not again until the index is
/// built, however many folds it survives. The bytes of versions a fold drops stay in their buffer
/// until they are as many as the live ones; the buffers are then compacted into one (so the
/// copying is amortised over what was pushed, and memory stays within twice the live bytes plus
/// the newest chunk).
#[derive(Default)]
pub(crate) struct Versions {
    bufs: Vec<HugeBuf>,
    entries: Vec<VEntry>,
    /// Key and value bytes of the entries (what a compaction would keep).
    live: usize,
}

/// One version of [`Versions`].
#[derive(Clone, Copy)]
struct VEntry {
    /// [`key_prefix`] of the key.
    prefix: u128,
    lsn: Lsn,
    /// Where the key starts: buffer number (high bits, [`BUF_SHIFT`]) and offset in it. The
    /// value follows the key.
    at: u64,
    /// Among equal (key, LSN), which wins: the lowest.
    rank: u64,
    key_len: u32,
    /// The value's length, or `u32::MAX` for a tombstone.
    value_len: u32,
}

/// Bits of [`VEntry::at`] that hold the offset in the buffer (a buffer is at most 1 TiB).
const BUF_SHIFT: u32 = 40;
const OFFSET_MASK: u64 = (1 << BUF_SHIFT) - 1;

const NO_VALUE: u32 = u32::MAX;

impl VEntry {
    /// Bytes of key and value.
    fn stored_len(&self) -> usize {
        self.key_len as usize
            + if self.value_len == NO_VALUE {
                0
            } else {
                self.value_len as usize
            }
    }
}

impl Versions {
    /// Appends a version (`value: None` for a tombstone); `rank` orders equal (key, LSN) pairs.
    fn push(&mut self, key: &[u8], lsn: Lsn, value: Option<&[u8]>, rank: u64) {
        let need = key.len() + value.map_or(0, <[u8]>::len);
        // Buffers never grow (a reallocation would copy them): a full one is followed by another.
        if self.bufs.last().is_none_or(|b| b.spare() < need) {
            self.bufs.push(new_buffer(need));
        }
        let n = self.bufs.len() - 1;
        let buf = &mut self.bufs[n];
        let at = buf.len() as u64;
        assert!(at <= OFFSET_MASK, "a version buffer stays below 1 TiB");
        buf.extend_from_slice(key);
        let value_len = match value {
            Some(v) => {
                buf.extend_from_slice(v);
                u32::try_from(v.len()).expect("values are shorter than 4 GiB")
            }
            None => NO_VALUE,
        };
        self.live += need;
        self.entries.push(VEntry {
            prefix: key_prefix(key),
            lsn,
            at: (n as u64) << BUF_SHIFT | at,
            rank,
            key_len: u32::try_from(key.len()).expect("keys are shorter than 4 GiB"),
            value_len,
        });
    }

    /// Appends a version; for versions pushed in list order (key ascending, LSN descending), as
    /// a checkpoint holds them.
    pub(crate) fn push_version(&mut self, key: &[u8], lsn: Lsn, value: Option<&[u8]>) {
        self.push(key, lsn, value, u64::MAX);
    }

    /// Merges two sets of versions, each in list order, with no (key, LSN) in both (a
    /// checkpoint's and the log's after it): in list order.
    pub(crate) fn merge(a: Versions, b: Versions) -> Versions {
        Versions::zip(a, b, Zip::Versions).0
    }

    /// Orders version `x` (in buffers `a`) and version `y` (in buffers `b`) by key, reading
    /// their bytes only when the 16-byte prefixes do not decide (the entries are in order, the
    /// buffers are not).
    fn cmp_keys_in(a: &[HugeBuf], x: &VEntry, b: &[HugeBuf], y: &VEntry) -> std::cmp::Ordering {
        x.prefix.cmp(&y.prefix).then_with(|| {
            if x.key_len <= 16 && y.key_len <= 16 {
                x.key_len.cmp(&y.key_len)
            } else {
                key_in(a, x).cmp(key_in(b, y))
            }
        })
    }

    /// Merges `a` and `b` (each in list order) into one set in list order; on equal heads
    /// `b`'s replaces `a`'s (see [`Zip`]). The result takes both sets' buffers (see
    /// [`Versions`]): only entries move. It is built in `a`'s entry vector, merging from the
    /// back into the room made after `a`'s entries: `a`'s entries below `b`'s smallest stay
    /// where they are, and no vector the size of both is allocated (and zeroed by the kernel)
    /// per merge. Under [`Zip::Fold`], `a` holds no tombstone (it is a fold's result). Also
    /// returns `b`'s entry vector, emptied, for reuse (its pages are faulted in already).
    fn zip(a: Versions, b: Versions, how: Zip) -> (Versions, Vec<VEntry>) {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let shift = (a.bufs.len() as u64) << BUF_SHIFT;
        assert!(
            a.bufs.len() + b.bufs.len() < 1 << (64 - BUF_SHIFT),
            "version buffers are compacted long before their number overflows"
        );
        debug_assert!(
            how == Zip::Versions || a.entries.iter().all(|e| e.value_len != NO_VALUE),
            "a fold's older state holds no tombstone"
        );
        let Versions {
            bufs: mut a_bufs,
            entries: mut out,
            live: a_live,
        } = a;
        let (na, nb) = (out.len(), b.entries.len());
        let placeholder = b.entries.first().copied();
        if let Some(p) = placeholder {
            out.resize(na + nb, p);
        }
        let mut live = a_live;
        // Invariant: out[..i] is a's unmerged head, out[w..] the merged tail, w >= i + j.
        let (mut i, mut j, mut w) = (na, nb, na + nb);
        while j > 0 {
            let y = &b.entries[j - 1];
            let ord = if i == 0 {
                Less
            } else {
                let x = &out[i - 1];
                let by_key = Versions::cmp_keys_in(&a_bufs, x, &b.bufs, y);
                match how {
                    Zip::Versions => by_key.then(y.lsn.cmp(&x.lsn)),
                    Zip::Fold => {
                        assert!(
                            by_key.is_ne() || x.lsn <= y.lsn,
                            "replayed versions must not go backwards"
                        );
                        by_key
                    }
                }
            };
            // `ord` compares a's last unmerged entry with b's: the greater goes last.
            let older_wins = ord == Equal && how == Zip::Fold && crate::hooks::fold_keeps_older();
            let e = match ord {
                Greater => out[i - 1],
                Equal if older_wins => out[i - 1],
                Less | Equal => VEntry {
                    at: y.at + shift,
                    ..*y
                },
            };
            match ord {
                Greater => i -= 1,
                Less => j -= 1,
                Equal => {
                    // b's replaces a's (a's is dropped, whether b's is kept or not).
                    if !older_wins {
                        live -= out[i - 1].stored_len();
                    }
                    i -= 1;
                    j -= 1;
                }
            }
            let from_b = ord != Greater && !older_wins;
            let keep = how == Zip::Versions || e.value_len != NO_VALUE;
            if keep {
                w -= 1;
                out[w] = e;
                if from_b {
                    live += e.stored_len();
                }
            } else if !from_b {
                live -= e.stored_len();
            }
        }
        // Close the gap the dropped versions left between a's head and the merged tail.
        if w > i {
            out.copy_within(w.., i);
            out.truncate(out.len() - (w - i));
        }
        a_bufs.extend(b.bufs);
        let mut merged = Versions {
            bufs: a_bufs,
            entries: out,
            live,
        };
        debug_assert_eq!(
            merged.live,
            merged.entries.iter().map(VEntry::stored_len).sum::<usize>()
        );
        merged.compact_if_sparse();
        let mut spare = b.entries;
        spare.clear();
        (merged, spare)
    }

    /// Bytes held by the buffers (live or not).
    fn held(&self) -> usize {
        self.bufs.iter().map(|b| b.len()).sum()
    }

    /// Copies the live bytes into one buffer, in entry order, when the buffers hold more dropped
    /// bytes than live ones (and at least a MiB of them).
    fn compact_if_sparse(&mut self) {
        let held = self.held();
        if held - self.live <= self.live.max(1 << 20) {
            return;
        }
        let mut buf = new_buffer(self.live);
        for e in &mut self.entries {
            buf.extend_from_slice(bytes_in(&self.bufs, e, 0, e.stored_len()));
            e.at = (buf.len() - e.stored_len()) as u64;
        }
        debug_assert_eq!(buf.len(), self.live);
        self.bufs = vec![buf];
    }

    fn key_of(&self, e: &VEntry) -> &[u8] {
        key_in(&self.bufs, e)
    }

    fn get_entry(&self, e: &VEntry) -> (&[u8], Lsn, Option<&[u8]>) {
        let key = self.key_of(e);
        let value = (e.value_len != NO_VALUE)
            .then(|| bytes_in(&self.bufs, e, e.key_len as usize, e.value_len as usize));
        (key, e.lsn, value)
    }

    /// Version `i`: key, LSN, value (`None` for a tombstone).
    pub(crate) fn get(&self, i: usize) -> (&[u8], Lsn, Option<&[u8]>) {
        self.get_entry(&self.entries[i])
    }

    /// Whether versions `i` and `j` have the same key.
    pub(crate) fn same_key_at(&self, i: usize, j: usize) -> bool {
        self.same_key(&self.entries[i], &self.entries[j])
    }

    /// How many versions.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every version in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], Lsn, Option<&[u8]>)> + '_ {
        self.entries.iter().map(|e| self.get_entry(e))
    }

    /// How many distinct keys.
    pub(crate) fn distinct_keys(&self) -> usize {
        let n = self.entries.windows(2);
        n.filter(|w| !self.same_key(&w[0], &w[1])).count() + 1
    }

    /// Whether two entries have the same key; reads the buffers only for long keys whose first
    /// 16 bytes and lengths agree (entries are in key order: the buffers are not).
    fn same_key(&self, a: &VEntry, b: &VEntry) -> bool {
        same_key_in(&self.bufs, a, b)
    }

    /// Hints the CPU to fetch version `i`'s bytes: a walk in entry order reads the buffers at
    /// random (they are in log order), one or two cache misses per version that prefetching a
    /// few versions ahead overlaps. Out of range: nothing.
    pub(crate) fn prefetch(&self, i: usize) {
        let Some(e) = self.entries.get(i) else { return };
        let Some(buf) = self.bufs.get((e.at >> BUF_SHIFT) as usize) else {
            return;
        };
        let start = (e.at & OFFSET_MASK) as usize;
        let end = (start + e.stored_len()).min(buf.len());
        let mut at = start;
        while at < end {
            crate::cpu::prefetch_read(buf[at..].as_ptr());
            at = (at | 63) + 1;
        }
    }

    /// Key and value bytes of all versions.
    pub(crate) fn payload_bytes(&self) -> usize {
        self.live
    }

    /// Sorts by key ascending, LSN descending, then rank; keeps the first of each (key, LSN)
    /// (`per_key`: the first of each key).
    fn sort_and_dedup(&mut self) {
        self.sort_keeping(false);
    }

    /// Keeps only each key's newest operation (highest LSN, then lowest rank), in key order.
    fn keep_newest_per_key(&mut self) {
        self.sort_keeping(true);
    }

    fn sort_keeping(&mut self, per_key: bool) {
        let bufs = &self.bufs;
        self.entries.sort_unstable_by(|a, b| {
            Versions::cmp_keys_in(bufs, a, bufs, b)
                .then(b.lsn.cmp(&a.lsn))
                .then(a.rank.cmp(&b.rank))
        });
        let mut dropped = 0;
        self.entries.dedup_by(|later, kept| {
            let dup = (per_key || later.lsn == kept.lsn) && same_key_in(bufs, later, kept);
            if dup {
                dropped += later.stored_len();
            }
            dup
        });
        self.live -= dropped;
    }

    /// `chunk` (operations in log order, all after `older`'s) sorted, each key's newest kept,
    /// and folded over `older`.
    /// Also returns the chunk's entry vector, emptied, for the next chunk.
    fn fold_chunk(older: Versions, mut chunk: Versions) -> (Versions, Vec<VEntry>) {
        chunk.keep_newest_per_key();
        Versions::fold(older, chunk)
    }

    /// `newer` (each key once, in key order) folded over `older` (the same): a key's entry in
    /// `newer` replaces its entry in `older`; keys whose result is a delete are dropped. Also
    /// returns `newer`'s entry vector, emptied.
    fn fold(older: Versions, newer: Versions) -> (Versions, Vec<VEntry>) {
        Versions::zip(older, newer, Zip::Fold)
    }
}

/// What [`Versions::zip`] combines.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Zip {
    /// Two sets of versions in list order (key ascending, LSN descending), every one kept.
    Versions,
    /// A key's newest version each, the second set newer: its version replaces the first's,
    /// and a key whose result is a tombstone is dropped.
    Fold,
}

/// `len` bytes of `e`'s key and value, from `skip`, in `bufs`.
fn bytes_in<'a>(bufs: &'a [HugeBuf], e: &VEntry, skip: usize, len: usize) -> &'a [u8] {
    let start = (e.at & OFFSET_MASK) as usize + skip;
    &bufs[(e.at >> BUF_SHIFT) as usize][start..start + len]
}

/// The key of `e`, in `bufs`.
fn key_in<'a>(bufs: &'a [HugeBuf], e: &VEntry) -> &'a [u8] {
    bytes_in(bufs, e, 0, e.key_len as usize)
}

/// Whether `a` and `b` (in `bufs`) have the same key; reads the buffers only for long keys whose
/// first 16 bytes and lengths agree (entries are in key order: the buffers are not).
fn same_key_in(bufs: &[HugeBuf], a: &VEntry, b: &VEntry) -> bool {
    a.prefix == b.prefix
        && a.key_len == b.key_len
        && (a.key_len <= 16 || key_in(bufs, a) == key_in(bufs, b))
}

/// Bytes of a [`Versions`] buffer (a larger version gets a buffer of its size).
const VERSION_BUF: usize = 8 << 20;

/// An empty buffer for at least `need` bytes of versions, in a mapping of its own backed by huge
/// pages where the kernel allows: walks in key order read the buffers at random, and with 4 KiB
/// pages nearly every version would also miss the TLB; and freeing it after recovery returns the
/// memory to the kernel (the C heap would keep most of it).
fn new_buffer(need: usize) -> HugeBuf {
    HugeBuf::with_capacity(need.max(VERSION_BUF))
}

/// The loader's sorting thread: it receives chunks of operations in log order, sorts each and
/// folds it over the state of the chunks before it.
struct Sorter {
    chunks: std::sync::mpsc::SyncSender<Versions>,
    /// The entry vectors of folded chunks, emptied, for the loader's next chunks.
    spare: std::sync::mpsc::Receiver<Vec<VEntry>>,
    thread: std::thread::JoinHandle<Versions>,
}

impl Sorter {
    fn start() -> Option<Sorter> {
        // One chunk waits while one is sorted: memory stays bounded.
        let (chunks, rx) = std::sync::mpsc::sync_channel::<Versions>(1);
        let (spare_tx, spare) = std::sync::mpsc::channel::<Vec<VEntry>>();
        let spawned = std::thread::Builder::new()
            .name("ringlog-sort".into())
            .spawn(move || {
                let mut sorted = Versions::default();
                for chunk in rx {
                    let (state, emptied) = Versions::fold_chunk(sorted, chunk);
                    sorted = state;
                    // The loader may be done: then nobody needs it.
                    let _ = spare_tx.send(emptied);
                }
                sorted
            });
        match spawned {
            Ok(thread) => Some(Sorter {
                chunks,
                spare,
                thread,
            }),
            Err(e) => {
                log::debug!("sorting the replayed operations in place: {e}");
                None
            }
        }
    }

    /// The state after every chunk sent; a panic of the thread goes on here.
    fn finish(self) -> Versions {
        drop(self.chunks);
        self.thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// A live key's newest version in the hash regime.
struct HashEntry {
    lsn: Lsn,
    value: HashVal,
}

/// Where a hash-regime value is: copied out, or still only in the segment being replayed (copied
/// out at the segment's end, if no later write replaced it: most overwritten values never are).
enum HashVal {
    Owned(Arc<[u8]>),
    /// (start, length) in the current segment's buffer.
    InSegment(usize, usize),
}

/// Where `part` lies inside `whole`, if it does.
fn offset_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    (p >= w && p + part.len() <= w + whole.len()).then(|| p - w)
}

impl HashVal {
    /// The value's bytes: its own, or in `seg`, the buffer of the segment being replayed.
    fn bytes<'a>(&'a self, seg: &'a [u8]) -> &'a [u8] {
        match self {
            HashVal::Owned(v) => v,
            HashVal::InSegment(start, len) => &seg[*start..*start + *len],
        }
    }
}

/// Operations in the smallest chunk the loader sorts and folds.
const LOADER_CHUNK: usize = 1 << 18;
/// How many versions ahead a walk in key order prefetches ([`Versions::prefetch`]).
pub(crate) const PREFETCH_AHEAD: usize = 12;
/// Live keys up to which the loader stays in its hash regime.
const HASH_LIMIT: usize = 1 << 16;

impl Default for Loader {
    fn default() -> Loader {
        let (hash_limit, min_chunk) = crate::hooks::loader_limits(HASH_LIMIT, LOADER_CHUNK);
        let mut loader = Loader::with_hash_limit(hash_limit);
        loader.min_chunk = min_chunk;
        loader
    }
}

/// The first 16 bytes of a key, zero-padded, as a big-endian integer: comparing these compares
/// keys in byte order except when they tie, without chasing pointers to the keys' bytes.
fn key_prefix(k: &[u8]) -> u128 {
    let mut p = [0u8; 16];
    let n = k.len().min(16);
    p[..n].copy_from_slice(&k[..n]);
    u128::from_be_bytes(p)
}

impl Loader {
    fn with_hash_limit(hash_limit: usize) -> Loader {
        Loader {
            live: HashMap::default(),
            deferred: 0,
            hash_limit,
            hashing: true,
            sorted: Versions::default(),
            sorter: None,
            sent: 0,
            min_chunk: LOADER_CHUNK,
            pending: Versions::default(),
            history: None,
        }
    }

    /// From now on keeps every version (a policy that keeps history was set at this point of the
    /// log); what was loaded so far keeps only each key's newest version.
    pub(crate) fn keep_versions(&mut self) {
        if self.history.is_none() {
            self.history = Some(Versions::default());
        }
    }

    /// Applies `op` at `lsn`. `seg` is the buffer of the segment being replayed: a value inside it
    /// may be copied out only at [`Loader::end_segment`], which must be called with the same
    /// buffer before it changes.
    pub(crate) fn apply(&mut self, op: OpRef<'_>, lsn: Lsn, seg: &[u8]) {
        if let Some(h) = &mut self.history {
            // Later operations rank first: of two writes of a key in one transaction (one LSN),
            // the later is the version. Below `u64::MAX`, which the state at the switch takes.
            let rank = u64::MAX - 1 - h.len() as u64;
            match op {
                OpRef::Put(k, v) => h.push(k, lsn, Some(v), rank),
                OpRef::Delete(k) => h.push(k, lsn, None, rank),
            }
            return;
        }
        if self.hashing {
            match op {
                OpRef::Put(k, v) => {
                    let value = match offset_in(seg, v) {
                        Some(start) => {
                            self.deferred += 1;
                            HashVal::InSegment(start, v.len())
                        }
                        None => HashVal::Owned(Arc::from(v)),
                    };
                    let entry = HashEntry { lsn, value };
                    if let Some(slot) = self.live.get_mut(k) {
                        assert!(slot.lsn <= lsn, "replayed versions must not go backwards");
                        if let HashVal::InSegment(..) = slot.value {
                            self.deferred -= 1;
                        }
                        *slot = entry;
                    } else {
                        self.live.insert(Arc::from(k), entry);
                    }
                }
                OpRef::Delete(k) => {
                    if let Some(HashEntry {
                        value: HashVal::InSegment(..),
                        ..
                    }) = self.live.remove(k)
                    {
                        self.deferred -= 1;
                    }
                }
            }
            if self.live.len() > self.hash_limit {
                self.hashing = false;
                self.deferred = 0;
                let live = std::mem::take(&mut self.live);
                for (k, e) in live {
                    // Distinct keys: their order among themselves does not matter.
                    self.pending
                        .push(&k, e.lsn, Some(e.value.bytes(seg)), u64::MAX);
                }
            }
            return;
        }
        // Later operations rank first: of two writes of a key, the later is its state.
        let rank = u64::MAX - 1 - self.pending.len() as u64;
        match op {
            OpRef::Put(k, v) => self.pending.push(k, lsn, Some(v), rank),
            OpRef::Delete(k) => self.pending.push(k, lsn, None, rank),
        }
        if self.pending.len() >= self.min_chunk.max(self.sent / 2) {
            self.fold();
        }
    }

    /// Copies out the values still in `seg`, the buffer of the segment just replayed.
    pub(crate) fn end_segment(&mut self, seg: &[u8]) {
        if self.deferred == 0 {
            return;
        }
        for e in self.live.values_mut() {
            if let HashVal::InSegment(start, len) = e.value {
                e.value = HashVal::Owned(Arc::from(&seg[start..start + len]));
            }
        }
        self.deferred = 0;
    }

    /// Sorts the pending operations, keeps the last per key, and folds them over the state so
    /// far: on the sorter thread (started here the first time) while the replay goes on, or here
    /// if it cannot be started.
    fn fold(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.sent += pending.len();
        if self.sorter.is_none() {
            self.sorter = Sorter::start();
        }
        let pending = match &self.sorter {
            Some(s) => match s.chunks.send(pending) {
                Ok(()) => {
                    // The next chunk goes into an entry vector the sorter is done with, if one
                    // came back: its pages are in already (a fresh one's are zeroed by the
                    // kernel as it grows, and that costs as much as sorting it here).
                    if let Some(v) = s.spare.try_iter().max_by_key(Vec::capacity) {
                        self.pending.entries = v;
                    }
                    return;
                }
                // The sorter is gone (it panicked): `finish` reports why.
                Err(std::sync::mpsc::SendError(p)) => p,
            },
            None => pending,
        };
        let (state, emptied) = Versions::fold_chunk(std::mem::take(&mut self.sorted), pending);
        self.sorted = state;
        self.pending.entries = emptied;
    }

    /// Every loaded version, key ascending and LSN descending: the newest of each live key as of
    /// the switch to versioned mode (or the end), and every version after the switch.
    pub(crate) fn finish(mut self) -> Versions {
        if self.hashing {
            assert_eq!(self.deferred, 0, "every segment was ended");
            let mut items = Versions::default();
            for (k, e) in std::mem::take(&mut self.live) {
                items.push(&k, e.lsn, Some(e.value.bytes(&[])), u64::MAX);
            }
            // Distinct keys: sorting is all this does.
            items.keep_newest_per_key();
            self.sorted = items;
        } else {
            self.fold();
            if let Some(s) = self.sorter.take() {
                self.sorted = s.finish();
            }
        }
        let base = std::mem::take(&mut self.sorted);
        match self.history {
            // Distinct live keys, sorted already.
            None => base,
            Some(mut h) => {
                // The state at the switch to versioned mode ranks after every later operation.
                for (k, lsn, value) in base.iter() {
                    h.push(k, lsn, value, u64::MAX);
                }
                h.sort_and_dedup();
                h
            }
        }
    }
}

/// Builds a skip list from `versions` (key ascending, LSN descending), keeping what `plan`
/// keeps. Returns it, the garbage it holds (superseded versions and tombstones) and the highest
/// LSN of a version marked [`TRIMMED_BELOW`] (0 if none).
pub(crate) fn build(versions: Versions, plan: Plan) -> (SkipList, usize, Lsn) {
    let mut list = SkipList::new();
    // The key index is built in the background once the database is open.
    list.defer_key_index();
    list.reserve_keys(versions.distinct_keys());
    list.prefault(
        versions.len() as u64,
        (versions.payload_bytes() + 16 * versions.len()) as u64,
    );
    let mut garbage = 0;
    let mut marked = 0;
    let mut shape: Vec<(Lsn, bool)> = Vec::new();
    let mut i = 0;
    while i < versions.len() {
        let mut end = i + 1;
        while end < versions.len() && versions.same_key_at(i, end) {
            end += 1;
        }
        shape.clear();
        shape.extend((i..end).map(|j| {
            let (_, lsn, value) = versions.get(j);
            (lsn, value.is_none())
        }));
        debug_assert!(shape.windows(2).all(|w| w[0].0 > w[1].0), "LSNs descend");
        let (keep, mark) = plan.keep(&shape);
        for j in 0..keep {
            versions.prefetch(i + j + PREFETCH_AHEAD);
            let (k, lsn, value) = versions.get(i + j);
            let flags = if mark && j + 1 == keep {
                TRIMMED_BELOW
            } else {
                0
            };
            if flags != 0 {
                marked = marked.max(lsn);
            }
            list.append_sorted(k, lsn, value, flags);
            if j > 0 || value.is_none() {
                garbage += 1;
            }
        }
        i = end;
    }
    list.end_prefault();
    (list, garbage, marked)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model: each live key's newest version.
    #[derive(Default)]
    struct Index(std::collections::BTreeMap<Vec<u8>, (Lsn, Vec<u8>)>);

    impl Index {
        fn apply(&mut self, op: OpRef<'_>, lsn: Lsn) {
            match op {
                OpRef::Put(k, v) => {
                    self.0.insert(k.to_vec(), (lsn, v.to_vec()));
                }
                OpRef::Delete(k) => {
                    self.0.remove(k);
                }
            }
        }
    }

    fn model(i: &Index) -> Vec<(Vec<u8>, Lsn, Option<Vec<u8>>)> {
        i.0.iter()
            .map(|(k, (l, v))| (k.clone(), *l, Some(v.clone())))
            .collect()
    }

    fn loaded(v: Versions) -> Vec<(Vec<u8>, Lsn, Option<Vec<u8>>)> {
        v.iter()
            .map(|(k, l, v)| (k.to_vec(), l, v.map(<[u8]>::to_vec)))
            .collect()
    }

    /// Applies a put (`value` given) or delete to both; the loader reads the value from `seg`, a
    /// segment buffer ended, scribbled over and emptied every 97 operations, so a value the loader
    /// failed to copy out in time would show.
    fn apply_both(
        ix: &mut Index,
        ld: &mut Loader,
        seg: &mut Vec<u8>,
        key: &[u8],
        value: Option<&[u8]>,
        lsn: Lsn,
    ) {
        match value {
            Some(v) => {
                ix.apply(OpRef::Put(key, v), lsn);
                let start = seg.len();
                seg.extend_from_slice(v);
                ld.apply(OpRef::Put(key, &seg[start..]), lsn, seg);
            }
            None => {
                ix.apply(OpRef::Delete(key), lsn);
                ld.apply(OpRef::Delete(key), lsn, seg);
            }
        }
        if lsn.is_multiple_of(97) {
            ld.end_segment(seg);
            seg.fill(0xEE);
            seg.clear();
        }
    }

    #[test]
    fn loader_matches_index() {
        let mut ix = Index::default();
        let mut ld = Loader::default();
        let ops: Vec<(OpRef<'_>, Lsn)> = vec![
            (OpRef::Put(b"b", b"1"), 1),
            (OpRef::Put(b"a", b"2"), 2),
            (OpRef::Delete(b"b"), 3),
            (OpRef::Put(b"c", b"3"), 4),
            (OpRef::Put(b"a", b"4"), 5),
            (OpRef::Delete(b"zz"), 6),
        ];
        for (op, lsn) in ops {
            ix.apply(op, lsn);
            ld.apply(op, lsn, &[]);
        }
        assert_eq!(loaded(ld.finish()), model(&ix));
    }

    #[test]
    fn folds_share_buffers_and_compact_what_they_drop() {
        // Chunks of 16 keys with 32 KiB values: each chunk overwrites the previous one's keys.
        let chunk = |round: u8| {
            let mut v = Versions::default();
            for k in 0..16u8 {
                v.push(
                    &[k],
                    u64::from(round) * 16 + u64::from(k) + 1,
                    Some(&[round; 32 << 10]),
                    0,
                );
            }
            v
        };
        let mut state = Versions::fold_chunk(Versions::default(), chunk(0)).0;
        assert_eq!(state.bufs.len(), 1);
        // The second fold keeps both buffers (half of them dropped: not yet worth a copy).
        state = Versions::fold_chunk(state, chunk(1)).0;
        assert_eq!(
            state.bufs.len(),
            2,
            "a fold moves buffers, it does not copy them"
        );
        assert_eq!(state.payload_bytes(), 16 * (1 + (32 << 10)));
        for round in 2..6 {
            state = Versions::fold_chunk(state, chunk(round)).0;
            assert!(
                state.held() <= 2 * state.payload_bytes() + (1 << 20),
                "dropped bytes are compacted away: {} held for {} live",
                state.held(),
                state.payload_bytes()
            );
        }
        assert_eq!(state.len(), 16);
        for (i, (k, lsn, v)) in state.iter().enumerate() {
            assert_eq!(k, &[i as u8]);
            assert_eq!(lsn, 5 * 16 + i as u64 + 1);
            assert_eq!(v, Some(&[5u8; 32 << 10][..]));
        }
    }

    #[test]
    fn loader_folds_chunks_like_the_index() {
        // Enough operations for several folds, over a small key space with deletes; the hash
        // regime is left early (after 1000 keys) so that both regimes and the switch are used.
        let mut ix = Index::default();
        let mut ld = Loader::with_hash_limit(1000);
        // Small chunks: many folds on the sorter thread, growing with what was sent.
        ld.min_chunk = 1000;
        let mut seg = Vec::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for lsn in 1..=(2 * LOADER_CHUNK as u64 + 1000) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = (x % 5000).to_be_bytes();
            let put = !x.is_multiple_of(7);
            apply_both(
                &mut ix,
                &mut ld,
                &mut seg,
                &key,
                put.then_some(&key[4..]),
                lsn,
            );
        }
        ld.end_segment(&seg);
        assert!(!ld.hashing, "the loader left its hash regime");
        assert_eq!(loaded(ld.finish()), model(&ix));
    }

    #[test]
    fn hash_regime_matches_the_index() {
        let mut ix = Index::default();
        let mut ld = Loader::default();
        let mut seg = Vec::new();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for lsn in 1..=100_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = (x % 300).to_be_bytes();
            let put = !x.is_multiple_of(5);
            let value = &key[..(x % 8) as usize];
            apply_both(
                &mut ix,
                &mut ld,
                &mut seg,
                &key[5..],
                put.then_some(value),
                lsn,
            );
        }
        ld.end_segment(&seg);
        assert!(ld.hashing, "300 keys stay in the hash regime");
        assert_eq!(loaded(ld.finish()), model(&ix));
    }

    #[test]
    fn key_prefix_orders_like_bytes() {
        let keys: [&[u8]; 9] = [
            b"",
            b"\0",
            b"a",
            b"a\0",
            b"a\0\x01",
            b"ab",
            b"b",
            b"0123456789abcdefX",
            b"0123456789abcdef",
        ];
        for a in keys {
            for b in keys {
                let by_prefix = key_prefix(a).cmp(&key_prefix(b)).then_with(|| a.cmp(b));
                assert_eq!(by_prefix, a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn versioned_mode_keeps_every_later_version() {
        let mut ld = Loader::default();
        ld.apply(OpRef::Put(b"a", b"1"), 1, &[]);
        ld.apply(OpRef::Put(b"a", b"2"), 2, &[]);
        ld.apply(OpRef::Put(b"b", b"3"), 3, &[]);
        ld.keep_versions();
        ld.apply(OpRef::Delete(b"a"), 4, &[]);
        ld.apply(OpRef::Put(b"a", b"5"), 5, &[]);
        // One transaction writing a key twice: the later write is the version.
        ld.apply(OpRef::Put(b"c", b"x"), 6, &[]);
        ld.apply(OpRef::Delete(b"c"), 6, &[]);
        let got = loaded(ld.finish());
        let v = |k: &[u8], l: Lsn, x: Option<&[u8]>| (k.to_vec(), l, x.map(|x| x.to_vec()));
        assert_eq!(
            got,
            vec![
                v(b"a", 5, Some(b"5")),
                v(b"a", 4, None),
                v(b"a", 2, Some(b"2")),
                v(b"b", 3, Some(b"3")),
                v(b"c", 6, None),
            ]
        );
    }
}
