//! A concurrent, insert-only, arena-backed skip list of key versions: the in-memory index.
//!
//! # Contents and order
//!
//! Every node is one retained version of one key: `(key, lsn, value or tombstone, flags)`. Nodes
//! are ordered by key ascending (bytewise, as `[u8]`'s `Ord`: a key sorts before every longer key
//! it is a prefix of), then by LSN **descending**, so a key's newest version comes first and a
//! forward scan meets each key's versions newest to oldest. `(key, lsn)` pairs are unique: inserting a
//! version that is already present is a no-op (see [`SkipList::insert`]).
//!
//! # Structure
//!
//! Nodes are never modified or removed after they are published; memory is reclaimed only when the
//! whole list is dropped (the engine trims history by building a fresh list). Each node lives
//! inline in an arena chunk owned by the list:
//!
//! ```text
//! offset 0   lsn: u64
//!        8   value_len: u32   (u32::MAX = tombstone; values are at most 2^31 bytes)
//!       12   key_len: u16     (keys are at most 65535 bytes)
//!       14   height: u8       (1..=MAX_HEIGHT)
//!       15   flags: u8        (opaque to the list)
//!       16   tower: [AtomicPtr<Node>; height]   (successor at each level, null = end)
//!            key bytes, then value bytes, then padding to 8 bytes
//! ```
//!
//! The head (sentinel) node lives in the arena too, so no node pointer points into the
//! `SkipList` value itself: moving the list (into an `Arc`, a struct) leaves every node where it
//! is, and a [`NodeRef`] stays valid for as long as the list is not dropped.
//!
//! The per-node overhead is 16 + 8 × height + padding bytes; with branching p = 1/4 the mean
//! height is 4/3, so about 26.7 bytes plus 0–7 bytes of padding (the tests measure it).
//!
//! The arena hands out memory with a lock-free bump pointer on the current chunk (a CAS loop on
//! the chunk's `used` counter); only installing a new chunk takes a mutex. Chunks start at
//! 64 KiB and double up to [`MAX_CHUNK`] (8 MiB with the chunk's header); a node larger than a
//! quarter of the maximum chunk (about 2 MiB) gets a chunk of its own, so a big value neither wastes the rest of the current chunk nor forces a
//! huge regular chunk.
//!
//! # Concurrency and memory ordering
//!
//! Inserts are lock-free (the scheme of RocksDB's `InlineSkipList::InsertConcurrently`): find the
//! splice (predecessor and successor at every level), link level 0 with a CAS (on failure, re-find
//! the level-0 splice from the old predecessor and retry), then link each upper level the same way.
//! Readers take no locks and only follow Acquire loads. The argument:
//!
//! 1. A node's header, key, value and tower slots are written by its inserting thread before any
//!    pointer to the node is stored anywhere; the arena hands each byte range to exactly one
//!    thread (atomic read-modify-write on the chunk's bump counter), so these writes race with
//!    nothing.
//! 2. A node becomes reachable only through a successful Release CAS of a predecessor's tower slot
//!    (a Release store in the single-threaded [`SkipList::append_sorted`]). Its own slot at a
//!    level is stored before the Release CAS that links it at that level, and its lower levels
//!    were linked (in program order) before that, too.
//! 3. Every traversal loads tower slots with Acquire. A pointer it sees was stored by a Release
//!    operation, so everything the inserter wrote before it (the node's immutable bytes and its
//!    tower slots up to that level) is visible. A slot that was later changed by another
//!    inserter's CAS carries that inserter's Release in the same way.
//! 4. After publication a node's bytes never change and its tower slots change only by CAS.
//!    Nothing is freed before `Drop`, which takes `&mut self`, and every [`NodeRef`] borrows the
//!    list, so no pointer ever dangles. The current-chunk pointer is published with Release and
//!    read with Acquire so a chunk's header is initialized before anyone bumps in it.
//! 5. `max_height` and the counters are Relaxed: a stale `max_height` only makes a search start
//!    lower (the head has a slot at every level, so any start level is correct), and the counters
//!    are exact once the inserts happen-before the read (each is a sum of per-insert deltas that
//!    were decided at the insert's linearization point, the level-0 CAS).

use std::alloc::{self, Layout};
use std::cell::Cell;
use std::cmp::Ordering as CmpOrdering;
use std::collections::VecDeque;
use std::fmt;
use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

mod keyindex;
use keyindex::KeyIndex;

/// A log sequence number: the version of a key.
pub(crate) type Lsn = u64;

/// The maximum tower height. With p = 1/4 this stays balanced up to about 4^20 nodes.
const MAX_HEIGHT: usize = 20;
/// Keys are at most this long (the length is stored in a u16).
const MAX_KEY_LEN: usize = u16::MAX as usize;
/// Values are at most this long (the length is stored in a u32, `u32::MAX` marks a tombstone).
pub(crate) const MAX_VALUE_LEN: usize = 1 << 31;
/// `value_len` of a tombstone.
const TOMBSTONE: u32 = u32::MAX;
/// The size of the first arena chunk's data area.
const FIRST_CHUNK: usize = 64 << 10;
/// Chunks grow geometrically up to this size (of the data area).
const MAX_CHUNK: usize = (8 << 20) - CHUNK_HEADER;
/// Maximum-size chunks kept reserved and faulted in ahead of the writers (see
/// `Arena::keep_ahead`): at most 8 MiB of memory taken before it is needed, and only by an
/// arena that already holds about twice that. Two were measured too: more memory, no faster
/// sequential loads (BENCHMARKS.md, "Session 23").
const RESERVE_AHEAD: usize = 1;
/// Set when `MADV_POPULATE_WRITE` failed (a kernel before 5.14): chunks are then not faulted in
/// ahead any more, as nothing would be.
static NO_POPULATE: AtomicBool = AtomicBool::new(false);
/// Every node starts at a multiple of this.
const NODE_ALIGN: usize = 8;

/// The fixed header of a node. The tower, key and value follow it inline in the arena; see the
/// module docs for the layout. Never accessed through a `&Node` wider than this header: the
/// tower and bytes are reached by pointer arithmetic on the arena pointer, which covers them.
#[repr(C, align(8))]
struct Node {
    lsn: Lsn,
    /// The value's length, or [`TOMBSTONE`].
    value_len: u32,
    key_len: u16,
    /// Number of tower slots, 1..=MAX_HEIGHT.
    height: u8,
    flags: u8,
}

/// Bytes of the fixed node header.
const HEADER: usize = size_of::<Node>();
/// Bytes of one tower slot.
const SLOT: usize = size_of::<AtomicPtr<Node>>();

const _: () = assert!(HEADER == 16 && align_of::<Node>() == NODE_ALIGN);
const _: () = assert!(MAX_HEIGHT <= u8::MAX as usize);
const _: () = assert!(align_of::<AtomicPtr<Node>>() <= NODE_ALIGN && HEADER.is_multiple_of(SLOT));

/// The arena bytes taken by a node (header, tower, key, value, padding).
#[inline]
fn node_size(height: usize, key_len: usize, value_len: usize) -> usize {
    (HEADER + height * SLOT + key_len + value_len + (NODE_ALIGN - 1)) & !(NODE_ALIGN - 1)
}

/// A tower height drawn with P(height > h) = 4^-h, capped at [`MAX_HEIGHT`], from a thread-local
/// xorshift64* generator (no shared state, so concurrent inserters do not contend on it).
fn random_height() -> usize {
    thread_local! {
        static RNG: Cell<u64> = const { Cell::new(0) };
    }
    static SEEDS: AtomicU64 = AtomicU64::new(0);
    let r = RNG
        .try_with(|rng| {
            let mut x = rng.get();
            if x == 0 {
                // Lazily seeded per thread: std's randomly keyed hasher over a process-wide
                // counter. `| 1` keeps the state non-zero (xorshift's fixed point).
                x = std::collections::hash_map::RandomState::new()
                    .hash_one(SEEDS.fetch_add(1, Ordering::Relaxed))
                    | 1;
            }
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            rng.set(x);
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        })
        // The thread-local is gone only during thread teardown: height 1 is always correct.
        .unwrap_or(u64::MAX);
    // The high bits of xorshift64* are the best ones: each pair of leading zeros has probability 1/4.
    1 + ((r.leading_zeros() / 2) as usize).min(MAX_HEIGHT - 1)
}

/// A reference to a node of a [`SkipList`], valid as long as the list is borrowed.
///
/// Invariant: `ptr` points to a fully initialized node (header, all tower slots, key, value) in
/// the arena of a list that outlives `'a`. Node bytes are immutable once initialized; tower slots
/// are atomics.
#[derive(Clone, Copy)]
pub(crate) struct NodeRef<'a> {
    ptr: NonNull<Node>,
    _list: PhantomData<&'a SkipList>,
}

// SAFETY: a NodeRef is a shared reference to arena memory that is immutable (header, key, value)
// or atomic (tower) and lives as long as the list borrow `'a`; `&SkipList` is Send + Sync because
// `SkipList` is Sync, so sending or sharing a NodeRef is as safe as sending or sharing that borrow.
unsafe impl Send for NodeRef<'_> {}
// SAFETY: see the Send impl above.
unsafe impl Sync for NodeRef<'_> {}

impl<'a> NodeRef<'a> {
    /// # Safety
    ///
    /// `ptr` points to a fully initialized node in the arena of a list that outlives `'a` (the
    /// head, a node loaded from a tower slot with Acquire, or a node this thread just initialized).
    #[inline]
    unsafe fn from_ptr(ptr: NonNull<Node>) -> NodeRef<'a> {
        NodeRef {
            ptr,
            _list: PhantomData,
        }
    }

    #[inline]
    fn header(&self) -> &'a Node {
        // SAFETY: by the type invariant the header is initialized, never written again and lives
        // for 'a. The reference covers only the 16 header bytes, which nobody ever writes to.
        unsafe { self.ptr.as_ref() }
    }

    #[inline]
    fn height(&self) -> usize {
        self.header().height as usize
    }

    /// The base of the node's bytes, with the provenance of the whole arena chunk.
    #[inline]
    fn base(&self) -> *mut u8 {
        self.ptr.as_ptr().cast::<u8>()
    }

    /// The node's successor slot at `level` (< height).
    #[inline]
    fn tower(&self, level: usize) -> &'a AtomicPtr<Node> {
        debug_assert!(level < self.height());
        // SAFETY: level < height, so slot `level` lies inside this node's arena range (header,
        // then `height` slots); it is aligned (the node is 8-aligned, HEADER is a multiple of
        // SLOT) and was initialized as an AtomicPtr before the node was published; the arena
        // lives for 'a. Concurrent access to it is only through atomic operations.
        unsafe {
            &*self
                .base()
                .add(HEADER + level * SLOT)
                .cast::<AtomicPtr<Node>>()
        }
    }

    /// The successor at `level` (< height), Acquire.
    #[inline]
    fn next_at(&self, level: usize) -> Option<NodeRef<'a>> {
        let p = self.tower(level).load(Ordering::Acquire);
        // SAFETY: a non-null slot points to a node of this list that was fully initialized before
        // the Release CAS (or Release store) that stored this pointer; our Acquire load
        // synchronizes with it. Nodes live until the list is dropped.
        NonNull::new(p).map(|p| unsafe { NodeRef::from_ptr(p) })
    }

    /// The key.
    #[inline]
    pub(crate) fn key(&self) -> &'a [u8] {
        let h = self.header();
        // SAFETY: the key's `key_len` bytes follow the tower inside this node's arena range; they
        // were written before publication and are never written again; the arena lives for 'a.
        unsafe {
            std::slice::from_raw_parts(
                self.base().add(HEADER + h.height as usize * SLOT),
                h.key_len as usize,
            )
        }
    }

    /// The version's LSN.
    #[inline]
    pub(crate) fn lsn(&self) -> Lsn {
        self.header().lsn
    }

    /// The value, or None for a tombstone.
    #[inline]
    pub(crate) fn value(&self) -> Option<&'a [u8]> {
        let h = self.header();
        if h.value_len == TOMBSTONE {
            return None;
        }
        // SAFETY: the value's `value_len` bytes follow the key inside this node's arena range;
        // written before publication, never written again; the arena lives for 'a.
        Some(unsafe {
            std::slice::from_raw_parts(
                self.base()
                    .add(HEADER + h.height as usize * SLOT + h.key_len as usize),
                h.value_len as usize,
            )
        })
    }

    /// Whether this version is a put (not a tombstone).
    #[inline]
    pub(crate) fn is_put(&self) -> bool {
        self.header().value_len != TOMBSTONE
    }

    /// The opaque byte stored with the node.
    #[inline]
    pub(crate) fn flags(&self) -> u8 {
        self.header().flags
    }

    /// The next node at level 0 (Acquire load).
    #[inline]
    pub(crate) fn next(&self) -> Option<NodeRef<'a>> {
        self.next_at(0)
    }

    /// Whether this node sorts strictly before `(key, lsn)`: a smaller key, or the same key and a
    /// greater (newer) LSN.
    #[inline]
    fn lt(&self, key: &[u8], lsn: Lsn) -> bool {
        match cmp_keys(self.key(), key) {
            CmpOrdering::Less => true,
            CmpOrdering::Greater => false,
            CmpOrdering::Equal => self.lsn() > lsn,
        }
    }
}

impl fmt::Debug for NodeRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.key();
        let shown = &key[..key.len().min(32)];
        let mut d = f.debug_struct("NodeRef");
        d.field("key", &shown);
        if shown.len() < key.len() {
            d.field("key_len", &key.len());
        }
        d.field("lsn", &self.lsn());
        match self.value() {
            Some(v) => d.field("value_len", &v.len()),
            None => d.field("tombstone", &true),
        };
        d.field("flags", &self.flags()).finish()
    }
}

#[inline]
fn ptr_of(n: Option<NodeRef<'_>>) -> *mut Node {
    n.map_or(ptr::null_mut(), |n| n.ptr.as_ptr())
}

/// Byte-wise key order, as `<[u8]>::cmp`, comparing 8-byte big-endian words inline for the
/// first 32 bytes: most comparisons of short keys end there, without a call to `memcmp`.
#[inline]
fn cmp_keys(a: &[u8], b: &[u8]) -> CmpOrdering {
    let (mut a, mut b) = (a, b);
    for _ in 0..4 {
        match (a.split_first_chunk::<8>(), b.split_first_chunk::<8>()) {
            (Some((x, ra)), Some((y, rb))) => {
                match u64::from_be_bytes(*x).cmp(&u64::from_be_bytes(*y)) {
                    CmpOrdering::Equal => (a, b) = (ra, rb),
                    other => return other,
                }
            }
            _ => break,
        }
    }
    a.cmp(b)
}

/// Walks right at `level` from `x` (which sorts before `(key, lsn)`) and returns the last node
/// before `(key, lsn)` and its successor there. `bound`, the successor found one level up, is
/// known not to sort before `(key, lsn)`, so meeting it ends the walk without a comparison.
#[inline]
fn find_splice_at<'a>(
    key: &[u8],
    lsn: Lsn,
    mut x: NodeRef<'a>,
    level: usize,
    bound: *mut Node,
) -> (NodeRef<'a>, Option<NodeRef<'a>>) {
    loop {
        match x.next_at(level) {
            Some(n) if n.ptr.as_ptr() != bound && n.lt(key, lsn) => x = n,
            n => return (x, n),
        }
    }
}

/// The header at the start of every arena chunk; the data area follows it.
#[repr(C, align(64))]
struct ChunkHeader {
    /// Bytes of the data area handed out (always <= cap).
    used: AtomicUsize,
    /// Bytes of the data area.
    cap: usize,
}

const CHUNK_HEADER: usize = size_of::<ChunkHeader>();
const _: () = assert!(CHUNK_HEADER.is_multiple_of(NODE_ALIGN));

/// Chunks of at least this size are aligned to it and backed by transparent huge pages where
/// the kernel allows (`MADV_HUGEPAGE`): random searches of a large list then miss the TLB far
/// less (measured: docs/DURABILITY.md, "Memory per version").
use crate::hugemem::HUGE_PAGE;

fn chunk_layout(cap: usize) -> Layout {
    let size = CHUNK_HEADER + cap;
    let align = if size >= HUGE_PAGE {
        HUGE_PAGE
    } else {
        align_of::<ChunkHeader>()
    };
    Layout::from_size_align(size, align)
        .unwrap_or_else(|_| panic!("skiplist: arena chunk of {cap} bytes is too large"))
}

/// The byte at `offset` of a chunk's data area.
///
/// # Safety
///
/// `chunk` is a live chunk and `offset <= cap`.
#[inline]
unsafe fn chunk_data(chunk: NonNull<ChunkHeader>, offset: usize) -> NonNull<u8> {
    // SAFETY: the data area follows the header in the same allocation and `offset <= cap`, so
    // the pointer stays in bounds (or one past the end) and is non-null.
    unsafe { NonNull::new_unchecked(chunk.as_ptr().cast::<u8>().add(CHUNK_HEADER + offset)) }
}

/// The node arena: chunks owned by the list, freed when it drops.
struct Arena {
    /// The chunk that bump allocations go to. Never null; always a live chunk of `slow.chunks`.
    current: AtomicPtr<ChunkHeader>,
    slow: Mutex<ArenaSlow>,
    /// Chunks grow up to this many data bytes.
    max_chunk: usize,
    /// Nodes larger than this get a chunk of their own.
    large: usize,
}

struct ArenaSlow {
    /// Every chunk ever allocated, current and dedicated ones included.
    chunks: Vec<NonNull<ChunkHeader>>,
    /// The data size of the next regular chunk.
    next_cap: usize,
    /// Bytes allocated for chunks, headers included.
    allocated: usize,
    /// Allocations of `chunk_layout(max_chunk)` made ahead (by [`Arena::prefault`]), not yet
    /// chunks: the next regular chunks, in order. Their pages are faulted in by the prefault
    /// thread; not even their header is written until they are taken.
    reserved: VecDeque<NonNull<u8>>,
    /// Chunks taken from `reserved`.
    taken_reserved: usize,
    /// Set by [`SkipList::release_reserve`]: no chunk is reserved ahead any more.
    no_reserve: bool,
    /// The prefault thread and its stop flag: stopped and joined before any chunk is freed.
    prefault: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

/// Allocates memory for a chunk of `layout` (not yet initialized). Chunks of a huge page or more
/// are mapped directly (aligned to a huge page, backed by transparent huge pages where the kernel
/// allows) rather than taken from the C heap: freeing one is then one `munmap`, not a free that
/// makes the allocator consolidate every small chunk freed before it (measured: dropping a
/// million-version list cost 0.2 s through the heap).
fn alloc_chunk_memory(layout: Layout) -> NonNull<u8> {
    if layout.align() != HUGE_PAGE {
        // SAFETY: the layout's size is non-zero (it includes the header).
        let raw = unsafe { alloc::alloc(layout) };
        return NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout));
    }
    crate::hugemem::map_huge(mapped_len(layout), crate::hugemem::Pages::Huge)
        .unwrap_or_else(|| alloc::handle_alloc_error(layout))
}

/// Bytes mapped for a chunk of `layout` (huge-page aligned ones): its size in whole huge pages,
/// a multiple of the base page size whatever it is (4 KiB, 16 KiB, 64 KiB all divide 2 MiB), so
/// that the trims and the unmap below act on whole pages. Regular chunks (8 MiB) lose nothing;
/// a chunk of its own for one large node rounds up by less than a huge page.
fn mapped_len(layout: Layout) -> usize {
    layout.size().next_multiple_of(HUGE_PAGE)
}

/// Frees chunk memory from [`alloc_chunk_memory`].
///
/// # Safety
///
/// `raw` was returned by `alloc_chunk_memory(layout)` with this `layout`, is not used afterwards
/// and is freed once.
unsafe fn free_chunk_memory(raw: NonNull<u8>, layout: Layout) {
    if layout.align() == HUGE_PAGE {
        // SAFETY: per the contract, `[raw, raw + mapped_len)` is a `map_huge` mapping of ours,
        // unused now and unmapped once.
        unsafe { crate::hugemem::unmap_huge(raw, mapped_len(layout)) };
    } else {
        // SAFETY: per the contract, allocated by the global allocator with `layout`.
        unsafe { alloc::dealloc(raw.as_ptr(), layout) };
    }
}

impl ArenaSlow {
    /// Allocates a chunk with `cap` data bytes of which the first `used` are already taken: one
    /// reserved ahead when `cap` is the maximum and there is one, else a new one.
    fn new_chunk(&mut self, cap: usize, used: usize, max_chunk: usize) -> NonNull<ChunkHeader> {
        debug_assert!(used <= cap);
        let layout = chunk_layout(cap);
        let raw = match self.reserved.pop_front() {
            Some(raw) if cap == max_chunk => {
                self.taken_reserved += 1;
                raw
            }
            other => {
                if let Some(raw) = other {
                    self.reserved.push_front(raw);
                }
                alloc_chunk_memory(layout)
            }
        };
        let chunk = raw.cast::<ChunkHeader>();
        // SAFETY: freshly allocated (or reserved and never handed out), aligned for ChunkHeader
        // and large enough for it.
        unsafe {
            chunk.as_ptr().write(ChunkHeader {
                used: AtomicUsize::new(used),
                cap,
            })
        };
        self.chunks.push(chunk);
        self.allocated += layout.size();
        chunk
    }
}

impl Arena {
    fn new(first_chunk: usize, max_chunk: usize) -> Arena {
        assert!(
            first_chunk >= 256 && first_chunk <= max_chunk && max_chunk.is_multiple_of(NODE_ALIGN)
        );
        let mut slow = ArenaSlow {
            chunks: Vec::new(),
            next_cap: (first_chunk * 2).min(max_chunk),
            allocated: 0,
            reserved: VecDeque::new(),
            taken_reserved: 0,
            no_reserve: false,
            prefault: None,
        };
        let first = slow.new_chunk(first_chunk, 0, max_chunk);
        Arena {
            current: AtomicPtr::new(first.as_ptr()),
            slow: Mutex::new(slow),
            max_chunk,
            large: max_chunk / 4,
        }
    }

    /// Takes `size` bytes (a multiple of [`NODE_ALIGN`]) at the current chunk's bump pointer.
    ///
    /// # Safety
    ///
    /// `chunk` is a live chunk of this arena.
    #[inline]
    unsafe fn try_bump(chunk: NonNull<ChunkHeader>, size: usize) -> Option<NonNull<u8>> {
        // SAFETY: the caller guarantees the chunk is live; the header is initialized and only
        // `used` (an atomic) is ever modified.
        let hdr = unsafe { chunk.as_ref() };
        let mut used = hdr.used.load(Ordering::Relaxed);
        loop {
            if hdr.cap - used < size {
                return None;
            }
            // Relaxed suffices: the counter only partitions the chunk into disjoint ranges (the
            // RMW's atomicity does that); no data is communicated through it.
            match hdr.used.compare_exchange_weak(
                used,
                used + size,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                // SAFETY: live chunk (caller), and used + size <= cap.
                Ok(_) => return Some(unsafe { chunk_data(chunk, used) }),
                Err(u) => used = u,
            }
        }
    }

    /// Returns `size` bytes (a multiple of [`NODE_ALIGN`]), 8-aligned, owned by the caller until
    /// the arena drops.
    #[inline]
    fn alloc(&self, size: usize) -> NonNull<u8> {
        debug_assert!(size.is_multiple_of(NODE_ALIGN));
        if size <= self.large {
            let cur = self.current.load(Ordering::Acquire);
            // SAFETY: `current` is never null and always points to a live chunk of this arena
            // (chunks are freed only in Drop); the Acquire pairs with the Release store that
            // installed it, so its header is initialized.
            if let Some(p) = unsafe { Self::try_bump(NonNull::new_unchecked(cur), size) } {
                return p;
            }
        }
        self.alloc_slow(size)
    }

    /// [`Arena::alloc`] with exclusive access (a bulk load): the bump is a plain add, not a
    /// compare-and-swap.
    #[inline]
    fn alloc_exclusive(&mut self, size: usize) -> NonNull<u8> {
        debug_assert!(size.is_multiple_of(NODE_ALIGN));
        if size <= self.large {
            let cur = *self.current.get_mut();
            // SAFETY: `current` is never null and points to a live chunk of this arena; `&mut
            // self` means no other thread can allocate from it (nor reach the list's nodes), so
            // the header's counter may be written through a unique reference.
            let hdr = unsafe { &mut *cur };
            let used = hdr.used.get_mut();
            if hdr.cap - *used >= size {
                let at = *used;
                *used += size;
                // SAFETY: live chunk, and at + size <= cap.
                return unsafe { chunk_data(NonNull::new_unchecked(cur), at) };
            }
        }
        self.alloc_slow(size)
    }

    #[cold]
    fn alloc_slow(&self, size: usize) -> NonNull<u8> {
        let mut slow = self.slow.lock();
        if size > self.large {
            let chunk = slow.new_chunk(size, size, self.max_chunk);
            // SAFETY: just allocated (live until the arena drops); offset 0 <= cap.
            return unsafe { chunk_data(chunk, 0) };
        }
        // Another thread may have installed a new chunk while we waited for the lock.
        let cur = self.current.load(Ordering::Acquire);
        // SAFETY: as in `alloc`.
        if let Some(p) = unsafe { Self::try_bump(NonNull::new_unchecked(cur), size) } {
            return p;
        }
        // Grow until the node takes at most a quarter of the new chunk (or the cap is reached; a
        // node of at most `large` = max/4 bytes still fits in a maximum chunk).
        while slow.next_cap < size * 4 && slow.next_cap < self.max_chunk {
            slow.next_cap = (slow.next_cap * 2).min(self.max_chunk);
        }
        let cap = slow.next_cap;
        assert!(cap >= size);
        slow.next_cap = (cap * 2).min(self.max_chunk);
        // The first `size` bytes are ours before anyone else can see the chunk.
        let chunk = slow.new_chunk(cap, size, self.max_chunk);
        // Release: publishes the chunk header to the Acquire loads in `alloc`.
        self.current.store(chunk.as_ptr(), Ordering::Release);
        if cap == self.max_chunk {
            self.keep_ahead(&mut slow);
        }
        // SAFETY: just allocated (live until the arena drops); offset 0 <= cap.
        unsafe { chunk_data(chunk, 0) }
    }

    /// Before a bulk load of about `bytes` of nodes: reserves the maximum-size chunks they will
    /// take and has a thread fault their pages in (the kernel zeroes each page at its first
    /// fault) ahead of the load, on another core, while the load fills the first ones. A kernel
    /// without `MADV_POPULATE_WRITE` (before 5.14) just faults them in as they are used.
    fn prefault(&self, bytes: usize) {
        let mut slow = self.slow.lock();
        if slow.prefault.is_some() {
            return;
        }
        self.prefault_chunks(&mut slow, bytes.div_ceil(self.max_chunk));
    }

    /// Keeps [`RESERVE_AHEAD`] maximum-size chunks reserved and faulted in ahead of the writers,
    /// once the arena takes maximum-size chunks: called as one is installed. A first touch of
    /// fresh memory costs this project's VM far more than the memory's use (the kernel zeroes a
    /// 2 MiB page at its first fault, and the hypervisor backs it first): it is done on another
    /// thread instead of in a commit. At most one reservation thread runs at a time; a reserve
    /// found short while it runs is topped up at the next chunk.
    fn keep_ahead(&self, slow: &mut ArenaSlow) {
        // Only mapped chunks (a huge page or more) are faulted in ahead; not on a kernel that
        // refused to populate pages once.
        if slow.reserved.len() >= RESERVE_AHEAD
            || slow.no_reserve
            || chunk_layout(self.max_chunk).align() != HUGE_PAGE
            || NO_POPULATE.load(Ordering::Relaxed)
        {
            return;
        }
        if let Some((_, handle)) = &slow.prefault {
            if !handle.is_finished() {
                return;
            }
            Arena::stop_prefault(slow);
        }
        let short = RESERVE_AHEAD - slow.reserved.len();
        self.prefault_chunks(slow, short);
    }

    /// Reserves `chunks` maximum-size chunks (the next ones taken) and starts a thread that
    /// faults their pages in. No prefault thread may be running.
    fn prefault_chunks(&self, slow: &mut ArenaSlow, chunks: usize) {
        debug_assert!(slow.prefault.is_none());
        let layout = chunk_layout(self.max_chunk);
        let mut ranges = Vec::with_capacity(chunks);
        for _ in 0..chunks {
            let raw = alloc_chunk_memory(layout);
            slow.reserved.push_back(raw);
            ranges.push(raw.as_ptr() as usize);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let size = layout.size();
        let spawned = std::thread::Builder::new()
            .name("ringlog-prefault".into())
            .spawn(move || {
                for start in ranges {
                    let mut off = 0;
                    while off < size {
                        if stopped.load(Ordering::Relaxed) {
                            return;
                        }
                        let len = HUGE_PAGE.min(size - off);
                        // SAFETY: `[start + off, start + off + len)` lies in a reserved chunk,
                        // which is freed only after this thread is joined (`stop_prefault`, in
                        // `Drop`). Populating neither reads nor writes the pages' contents, so
                        // it races with nothing a writer does there. Failure (an old kernel)
                        // only means the pages fault in when first written.
                        let populated = unsafe {
                            crate::hugemem::populate_write((start + off) as *mut u8, len)
                        };
                        if !populated {
                            NO_POPULATE.store(true, Ordering::Relaxed);
                            return;
                        }
                        off += len;
                    }
                }
            });
        match spawned {
            Ok(handle) => slow.prefault = Some((stop, handle)),
            Err(e) => log::debug!("no prefault thread ({e}): pages fault in as they are used"),
        }
    }

    /// Stops the prefault thread, if any, and frees the chunks reserved ahead (never handed out).
    fn free_reserved(slow: &mut ArenaSlow, max_chunk: usize) {
        // The prefault thread touches reserved memory: it stops before any of it is freed.
        Arena::stop_prefault(slow);
        for raw in slow.reserved.drain(..) {
            // SAFETY: reserved memory was allocated by `alloc_chunk_memory` with
            // `chunk_layout(max_chunk)` and never handed out (only `new_chunk` takes it, under
            // the arena's lock, which the caller holds or owns exclusively); its only other
            // user, the prefault thread, was joined above; drained from the queue, it is freed
            // once.
            unsafe { free_chunk_memory(raw, chunk_layout(max_chunk)) };
        }
    }

    /// Stops the prefault thread, if any, and waits for it.
    fn stop_prefault(slow: &mut ArenaSlow) {
        if let Some((stop, handle)) = slow.prefault.take() {
            stop.store(true, Ordering::Relaxed);
            // A panic there (none is possible) would only mean fewer pages prefaulted.
            let _ = handle.join();
        }
    }

    /// (bytes allocated for chunks, bytes of them handed out to nodes).
    fn memory(&self) -> (usize, usize) {
        let slow = self.slow.lock();
        let used = slow
            .chunks
            .iter()
            // SAFETY: every chunk in the list is live until the arena drops.
            .map(|c| unsafe { c.as_ref() }.used.load(Ordering::Relaxed))
            .sum();
        (slow.allocated, used)
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        let max_chunk = self.max_chunk;
        let slow = self.slow.get_mut();
        Arena::free_reserved(slow, max_chunk);
        for &chunk in &slow.chunks {
            // SAFETY: each chunk was allocated by `new_chunk` with `chunk_layout(cap)` and is freed
            // exactly once, here. `&mut self` means no borrow of the list, hence no NodeRef into
            // the chunk, is alive.
            unsafe {
                let cap = (*chunk.as_ptr()).cap;
                free_chunk_memory(chunk.cast::<u8>(), chunk_layout(cap));
            }
        }
    }
}

/// Allocates a node in `arena` and initializes all of it (tower slots null). The node is not
/// linked anywhere yet.
fn init_node(
    arena: &Arena,
    key: &[u8],
    lsn: Lsn,
    value: Option<&[u8]>,
    flags: u8,
    height: usize,
) -> NonNull<Node> {
    init_node_with(|size| arena.alloc(size), key, lsn, value, flags, height)
}

/// [`init_node`] taking its memory from `alloc` (the arena's shared or exclusive bump).
#[inline]
fn init_node_with(
    alloc: impl FnOnce(usize) -> NonNull<u8>,
    key: &[u8],
    lsn: Lsn,
    value: Option<&[u8]>,
    flags: u8,
    height: usize,
) -> NonNull<Node> {
    assert!(
        key.len() <= MAX_KEY_LEN,
        "skiplist: key of {} bytes is longer than {MAX_KEY_LEN}",
        key.len()
    );
    assert!((1..=MAX_HEIGHT).contains(&height));
    let (value_len, value) = match value {
        None => (TOMBSTONE, &[][..]),
        Some(v) => {
            assert!(
                v.len() <= MAX_VALUE_LEN,
                "skiplist: value of {} bytes is longer than {MAX_VALUE_LEN}",
                v.len()
            );
            (v.len() as u32, v)
        }
    };
    let size = node_size(height, key.len(), value.len());
    let p = alloc(size).as_ptr();
    // SAFETY: `p` is 8-aligned (chunk data areas are 64-aligned and every allocation is a
    // multiple of 8 bytes) and points to `size` bytes that only this call may touch (the arena
    // hands every range out once); header + tower + key + value take at most `size` bytes; the
    // source slices are caller memory, disjoint from the arena range.
    unsafe {
        p.cast::<Node>().write(Node {
            lsn,
            value_len,
            key_len: key.len() as u16,
            height: height as u8,
            flags,
        });
        let tower = p.add(HEADER).cast::<AtomicPtr<Node>>();
        for i in 0..height {
            tower.add(i).write(AtomicPtr::new(ptr::null_mut()));
        }
        let kp = p.add(HEADER + height * SLOT);
        ptr::copy_nonoverlapping(key.as_ptr(), kp, key.len());
        ptr::copy_nonoverlapping(value.as_ptr(), kp.add(key.len()), value.len());
        NonNull::new_unchecked(p.cast::<Node>())
    }
}

/// What an insert found beside the new node at the moment it was linked at level 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Inserted {
    /// A newer version of the same key was already present (so this is not the key's newest).
    pub(crate) newer_exists: bool,
    /// The next-older version of the same key, if one was present: Some(true) if it was a put,
    /// Some(false) a tombstone.
    pub(crate) older: Option<bool>,
}

/// Pads (and aligns) a value to its own pair of cache lines, so counters written by every insert
/// do not share a line with the read-mostly fields readers use.
#[repr(align(128))]
struct CachePadded<T>(T);

struct Counters {
    /// Nodes linked.
    len: AtomicUsize,
    /// Keys whose newest node is a put. Transiently negative is possible (two inserts of one key
    /// may add their deltas in the opposite order of their CASes); exact when quiescent.
    live: AtomicIsize,
    /// Key and value bytes of the nodes linked (what [`SkipList::payload_bytes`] reports).
    payload: AtomicUsize,
}

/// A concurrent, insert-only skip list of key versions; see the module docs.
pub(crate) struct SkipList {
    /// The sentinel: a node with MAX_HEIGHT slots and an empty key, never returned or compared.
    head: NonNull<Node>,
    /// The number of levels in use (1..=MAX_HEIGHT); searches start there.
    max_height: AtomicUsize,
    arena: Arena,
    counters: CachePadded<Counters>,
    /// For `append_sorted`: the last node at each level (the head where a level is empty). Valid
    /// while `tails_len == len`; inserts do not maintain it, so it is rebuilt when stale.
    tails: [NonNull<Node>; MAX_HEIGHT],
    tails_len: usize,
    /// A process-unique id: tells a thread's insert hint ([`HINT`]) which list it belongs to.
    id: u64,
    /// Each key's newest node, for point reads.
    keys: KeyIndex,
}

/// Source of [`SkipList::id`].
static NEXT_LIST_ID: AtomicU64 = AtomicU64::new(1);

/// Per thread: the splice of this thread's last insert into list `id` — at each level, the node
/// just before the inserted one (or the inserted node itself where it is linked). Nodes are never
/// removed while their list lives, so each is a valid place to start the next search at its
/// level when it sorts before the new key: inserts in key order (and overwrites of nearby keys)
/// then take a step or two per level instead of a search from the top. Only ever dereferenced
/// while `&SkipList` with that id is borrowed (the id is never reused).
struct Hint {
    id: u64,
    prev: [*mut Node; MAX_HEIGHT],
}

thread_local! {
    static HINT: std::cell::RefCell<Hint> = const {
        std::cell::RefCell::new(Hint {
            id: 0,
            prev: [ptr::null_mut(); MAX_HEIGHT],
        })
    };
}

// SAFETY: the raw pointers point into chunks owned by this list and freed only by its Drop, so
// moving the list to another thread moves their ownership with it.
unsafe impl Send for SkipList {}
// SAFETY: everything reachable through `&SkipList` is immutable after publication (node header,
// key, value), atomic (tower slots, bump counters, `current`, `max_height`, counters) or behind
// the arena mutex; `tails`/`tails_len` are touched only through `&mut self`. Publication follows
// the Release/Acquire protocol described in the module docs.
unsafe impl Sync for SkipList {}

impl Default for SkipList {
    fn default() -> SkipList {
        SkipList::new()
    }
}

impl fmt::Debug for SkipList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (allocated, used) = self.memory();
        f.debug_struct("SkipList")
            .field("len", &self.len())
            .field("live_keys", &self.live_keys())
            .field("allocated", &allocated)
            .field("used", &used)
            .finish()
    }
}

impl SkipList {
    /// An empty list (allocates its first 64 KiB chunk).
    pub(crate) fn new() -> SkipList {
        SkipList::with_chunk_sizes(FIRST_CHUNK, MAX_CHUNK)
    }

    /// An empty list whose arena chunks start at `first_chunk` data bytes and grow to `max_chunk`.
    fn with_chunk_sizes(first_chunk: usize, max_chunk: usize) -> SkipList {
        let arena = Arena::new(first_chunk, max_chunk);
        let head = init_node(&arena, &[], 0, None, 0, MAX_HEIGHT);
        SkipList {
            head,
            max_height: AtomicUsize::new(1),
            arena,
            counters: CachePadded(Counters {
                len: AtomicUsize::new(0),
                live: AtomicIsize::new(0),
                payload: AtomicUsize::new(0),
            }),
            tails: [head; MAX_HEIGHT],
            tails_len: 0,
            id: NEXT_LIST_ID.fetch_add(1, Ordering::Relaxed),
            keys: KeyIndex::new(),
        }
    }

    /// The newest node of `key` (any LSN), found through the key index; `None` when the key has
    /// no node. Falls back to a search when the index cannot tell (see `keyindex`).
    pub(crate) fn newest(&self, key: &[u8]) -> Option<NodeRef<'_>> {
        match self.keys.newest(key) {
            // SAFETY: the index holds only nodes of this list, which live as long as `&self`.
            Some(found) => found.map(|p| unsafe { NodeRef::from_ptr(p) }),
            None => self.seek(key, Lsn::MAX).filter(|n| n.key() == key),
        }
    }

    /// Prefetches the key index's slot for `key` (see `KeyIndex::prefetch`).
    pub(crate) fn prefetch_key(&self, key: &[u8]) {
        self.keys.prefetch(key);
    }

    /// Defers the key index (before a bulk load): appends do not note keys, point reads search
    /// the list, until [`SkipList::build_key_index`] runs.
    pub(crate) fn defer_key_index(&mut self) {
        self.keys.defer();
    }

    /// Builds a deferred key index from the list (concurrently with writers), then answers point
    /// reads through it. A no-op when the index is not deferred.
    pub(crate) fn build_key_index(&self) {
        self.build_key_index_until(&AtomicBool::new(false));
    }

    /// [`SkipList::build_key_index`], given up (the index left deferred: point reads go on
    /// searching the list) once `stop` is set. Returns whether the index is ready.
    pub(crate) fn build_key_index_until(&self, stop: &AtomicBool) -> bool {
        self.keys.is_ready() || self.keys.build_from(self.first(), stop)
    }

    /// Whether the key index is deferred (see [`SkipList::defer_key_index`]).
    pub(crate) fn key_index_deferred(&self) -> bool {
        !self.keys.is_ready()
    }

    /// Sizes the key index for `keys` keys at once (before a bulk load).
    pub(crate) fn reserve_keys(&self, keys: usize) {
        self.keys.reserve(keys);
    }

    /// Before a bulk load of `versions` versions that take `encoded` bytes in a checkpoint:
    /// reserves the arena memory they will take and faults it in on another thread meanwhile
    /// (see `Arena::prefault`). [`SkipList::end_prefault`] stops that thread.
    pub(crate) fn prefault(&self, versions: u64, encoded: u64) {
        // A checkpoint entry is a 16-byte header, key and value, 8-byte aligned; a node is the
        // same plus its tower: 1.33 links of 8 bytes on average.
        let estimate = encoded.saturating_add(versions.saturating_mul(12));
        self.arena
            .prefault(usize::try_from(estimate).unwrap_or(usize::MAX));
    }

    /// Stops the prefault thread of [`SkipList::prefault`] (after the bulk load): reserved chunks
    /// not yet faulted in fault in as they are used.
    pub(crate) fn end_prefault(&self) {
        Arena::stop_prefault(&mut self.arena.slow.lock());
    }

    /// Frees the chunks reserved ahead of the writers and reserves none from now on: for a list
    /// that few inserts will reach any more (an index generation a trim replaced, which lives
    /// on only for the readers that still hold it). Inserts still work; they allocate as needed.
    pub(crate) fn release_reserve(&self) {
        let mut slow = self.arena.slow.lock();
        slow.no_reserve = true;
        Arena::free_reserved(&mut slow, self.arena.max_chunk);
    }

    /// Bytes of the key index (its hash sets' slots and control bytes).
    pub(crate) fn key_index_bytes(&self) -> usize {
        self.keys.bytes()
    }

    #[inline]
    fn head(&self) -> NodeRef<'_> {
        // SAFETY: the head is initialized in `with_chunk_sizes` and lives in the list's arena.
        unsafe { NodeRef::from_ptr(self.head) }
    }

    /// Thread-safe concurrent insert. `value: None` = tombstone. `flags`: an opaque byte stored
    /// with the node.
    ///
    /// Idempotent: if a node with the same `(key, lsn)` is already present (or is linked by a
    /// concurrent insert first), nothing is inserted, `len` and `live_keys` do not change, the
    /// existing node keeps its value and flags, and the result describes the existing node's
    /// neighbours (what its own insert reported, unless versions of the key were inserted around
    /// it since). The index's trim relies on this: writers and the trim's copy both insert the
    /// same versions into the next generation.
    pub(crate) fn insert(&self, key: &[u8], lsn: Lsn, value: Option<&[u8]>, flags: u8) -> Inserted {
        self.insert_node(key, lsn, value, flags).0
    }

    /// [`SkipList::insert`] with exclusive access, as recovery adds the log's versions to a
    /// checkpoint's list: while the key index is deferred it is not told (its build, which
    /// cannot have started without `&self` being shared, notes every key's newest node).
    pub(crate) fn insert_exclusive(
        &mut self,
        key: &[u8],
        lsn: Lsn,
        value: Option<&[u8]>,
        flags: u8,
    ) -> Inserted {
        let note = self.keys.is_ready();
        self.insert_with(key, lsn, value, flags, note).0
    }

    /// [`SkipList::insert`], also returning the node of `(key, lsn)` (the new one, or the one
    /// already present).
    pub(crate) fn insert_node(
        &self,
        key: &[u8],
        lsn: Lsn,
        value: Option<&[u8]>,
        flags: u8,
    ) -> (Inserted, NodeRef<'_>) {
        self.insert_with(key, lsn, value, flags, true)
    }

    /// [`SkipList::insert_node`]; `note`: tell the key index about the new node (only
    /// [`SkipList::insert_exclusive`] may skip that).
    fn insert_with(
        &self,
        key: &[u8],
        lsn: Lsn,
        value: Option<&[u8]>,
        flags: u8,
        note: bool,
    ) -> (Inserted, NodeRef<'_>) {
        debug_assert!(!key.is_empty(), "skiplist: empty key");
        let height = random_height();

        // Raise max_height first so that searches may start at our levels once we link them.
        let mut top = self.max_height.load(Ordering::Relaxed);
        while height > top {
            match self.max_height.compare_exchange_weak(
                top,
                height,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => top = height,
                Err(h) => top = h,
            }
        }

        // The splice at every level below `top`: prev[l] < (key, lsn) <= next[l]. Because nodes
        // are never removed, it stays a valid starting point; only its adjacency can go stale.
        let head = self.head();
        let mut prev = [head; MAX_HEIGHT];
        let mut next: [Option<NodeRef<'_>>; MAX_HEIGHT] = [None; MAX_HEIGHT];
        let mut x = head;
        let mut bound = ptr::null_mut();
        let hint = HINT.with(|h| {
            let h = h.borrow();
            (h.id == self.id).then_some(h.prev)
        });
        let from_hint = hint
            .as_ref()
            .is_some_and(|h| self.splice_from_hint(h, key, lsn, height, &mut prev, &mut next));
        for level in (0..top).rev() {
            if from_hint {
                // The levels below `height` are spliced; the hint keeps the others.
                break;
            }
            if let Some(c) = hint.as_ref().and_then(|h| NonNull::new(h[level])) {
                // SAFETY: the hint names nodes of this list (same id; ids are never reused), and
                // nodes live as long as the list, borrowed here.
                let c = unsafe { NodeRef::from_ptr(c) };
                // Start from the hinted node when it is before the key and after where the
                // search stands (at the head, anything is).
                if c.ptr != self.head
                    && c.ptr != x.ptr
                    && c.lt(key, lsn)
                    && (x.ptr == self.head || x.lt(c.key(), c.lsn()))
                {
                    x = c;
                }
            }
            let (p, n) = find_splice_at(key, lsn, x, level, bound);
            prev[level] = p;
            next[level] = n;
            x = p;
            bound = ptr_of(n);
        }
        if let Some(found) = self.already_present(key, lsn, prev[0], next[0]) {
            return found;
        }

        // SAFETY: `init_node` returns a fully initialized node in this list's arena, which lives
        // as long as `&self`.
        let node =
            unsafe { NodeRef::from_ptr(init_node(&self.arena, key, lsn, value, flags, height)) };
        let node_ptr = node.ptr.as_ptr();

        // Level 0: the linearization point. The CAS succeeds only while prev[0] -> next[0] are
        // adjacent, so they are exactly the neighbours the new node is linked between. Since
        // level 0 is one sorted chain and every CAS is preceded by the duplicate check on the
        // exact successor it expects, at most one node per (key, lsn) is ever linked.
        loop {
            let (p, s) = (prev[0], next[0]);
            let s_ptr = ptr_of(s);
            // Not yet reachable: nobody else reads this slot before the Release CAS below.
            node.tower(0).store(s_ptr, Ordering::Relaxed);
            // Release: publishes the node's bytes and slot to Acquire loads of p's slot. Failure
            // is Relaxed: the splice is re-read with Acquire loads.
            if p.tower(0)
                .compare_exchange(s_ptr, node_ptr, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                break;
            }
            (prev[0], next[0]) = find_splice_at(key, lsn, p, 0, ptr::null_mut());
            if let Some(found) = self.already_present(key, lsn, prev[0], next[0]) {
                // A concurrent insert of the same (key, lsn) won the race. Our node was never
                // published; its arena bytes stay unused until the list drops.
                return found;
            }
        }

        let (p, s) = (prev[0], next[0]);
        let newer_exists = p.ptr != self.head && p.key() == key;
        let older = s.filter(|s| s.key() == key).map(|s| s.is_put());
        let delta = if newer_exists {
            0
        } else {
            isize::from(value.is_some()) - isize::from(older == Some(true))
        };
        self.counters.0.len.fetch_add(1, Ordering::Relaxed);
        self.counters
            .0
            .payload
            .fetch_add(key.len() + value.map_or(0, <[u8]>::len), Ordering::Relaxed);
        if delta != 0 {
            self.counters.0.live.fetch_add(delta, Ordering::Relaxed);
        }

        // Upper levels, bottom up. The node is already in the list; these only speed up searches.
        for level in 1..height {
            loop {
                let (p, s) = (prev[level], next[level]);
                let s_ptr = ptr_of(s);
                // Not linked at this level yet, so nobody else reads or writes this slot.
                node.tower(level).store(s_ptr, Ordering::Relaxed);
                if p.tower(level)
                    .compare_exchange(s_ptr, node_ptr, Ordering::Release, Ordering::Relaxed)
                    .is_ok()
                {
                    break;
                }
                (prev[level], next[level]) = find_splice_at(key, lsn, p, level, ptr::null_mut());
            }
        }

        if note {
            self.keys.note(node);
        }
        HINT.with(|h| {
            let mut h = h.borrow_mut();
            if h.id != self.id {
                h.id = self.id;
                h.prev = [ptr::null_mut(); MAX_HEIGHT];
            }
            // After a splice from the hint, levels >= height were not searched: their hint
            // nodes stay (still before every key this thread inserts after them in order).
            let levels = if from_hint { height } else { top };
            for (level, slot) in h.prev.iter_mut().enumerate().take(levels) {
                *slot = if level < height {
                    node_ptr
                } else {
                    prev[level].ptr.as_ptr()
                };
            }
        });
        (
            Inserted {
                newer_exists,
                older,
            },
            node,
        )
    }

    /// If the level-0 successor `s` found for `(key, lsn)` is that very version, the answer of
    /// the idempotent insert: the existing node's neighbours, as the first insert reported them
    /// (`p` is its predecessor as just seen).
    #[inline]
    fn already_present<'a>(
        &self,
        key: &[u8],
        lsn: Lsn,
        p: NodeRef<'a>,
        s: Option<NodeRef<'a>>,
    ) -> Option<(Inserted, NodeRef<'a>)> {
        let s = s.filter(|s| s.lsn() == lsn && s.key() == key)?;
        Some((
            Inserted {
                newer_exists: p.ptr != self.head && p.key() == key,
                older: s.next().filter(|o| o.key() == key).map(|o| o.is_put()),
            },
            s,
        ))
    }

    /// The splice of `(key, lsn)` at levels `0..height`, found from this thread's last insert
    /// (`hint`) when that is close: at level `height - 1` the hinted node must sort before the
    /// key and reach the splice within a few steps; the levels below then descend from there as
    /// a search does. Returns false (leaving the arrays to a full search) otherwise. Keys
    /// inserted in order (and overwrites of nearby keys) so cost O(height) steps — 4/3 on
    /// average — instead of a descent through every level in use.
    #[inline]
    fn splice_from_hint<'a>(
        &'a self,
        hint: &[*mut Node; MAX_HEIGHT],
        key: &[u8],
        lsn: Lsn,
        height: usize,
        prev: &mut [NodeRef<'a>; MAX_HEIGHT],
        next: &mut [Option<NodeRef<'a>>; MAX_HEIGHT],
    ) -> bool {
        const MAX_STEPS: usize = 4;
        let top = height - 1;
        let Some(c) = NonNull::new(hint[top]) else {
            return false;
        };
        // SAFETY: the hint names nodes of this list (same id; ids are never reused), linked at
        // level `top` (a hint slot holds a node only at levels below its height), and nodes live
        // as long as the list, borrowed here.
        let mut x = unsafe { NodeRef::from_ptr(c) };
        if x.ptr == self.head || !x.lt(key, lsn) {
            return false;
        }
        let mut steps = 0;
        loop {
            match x.next_at(top) {
                Some(n) if n.lt(key, lsn) => {
                    steps += 1;
                    if steps > MAX_STEPS {
                        return false;
                    }
                    x = n;
                }
                n => {
                    prev[top] = x;
                    next[top] = n;
                    break;
                }
            }
        }
        for level in (0..top).rev() {
            let (p, n) = find_splice_at(key, lsn, prev[level + 1], level, ptr_of(next[level + 1]));
            prev[level] = p;
            next[level] = n;
        }
        true
    }

    /// Single-threaded bulk load: appends a node that must sort strictly after every node
    /// already in the list (asserted), in O(1) without searching. Heights are assigned
    /// deterministically (the n-th node gets 1 + trailing_zeros(n)/2), which yields a perfectly
    /// balanced p = 1/4 structure. Returns whether the key already had a (newer) node: the
    /// last node before this one is of the same key.
    pub(crate) fn append_sorted(
        &mut self,
        key: &[u8],
        lsn: Lsn,
        value: Option<&[u8]>,
        flags: u8,
    ) -> bool {
        debug_assert!(!key.is_empty(), "skiplist: empty key");
        let len = *self.counters.0.len.get_mut();
        if self.tails_len != len {
            self.rebuild_tails();
        }
        let mut newer_exists = false;
        if self.tails[0] != self.head {
            // SAFETY: tails point to initialized nodes of this list.
            let last = unsafe { NodeRef::from_ptr(self.tails[0]) };
            // One key comparison for both the order check and the same-key test.
            let keys = last.key().cmp(key);
            let order = keys.then(lsn.cmp(&last.lsn()));
            assert!(
                order == CmpOrdering::Less,
                "skiplist: append_sorted of ({} byte key, lsn {lsn}) does not sort after the last \
                 node ({} byte key, lsn {})",
                key.len(),
                last.key().len(),
                last.lsn()
            );
            newer_exists = keys.is_eq();
        }
        let n = len + 1;
        let height = 1 + ((n.trailing_zeros() / 2) as usize).min(MAX_HEIGHT - 1);
        let arena = &mut self.arena;
        let node = init_node_with(
            |size| arena.alloc_exclusive(size),
            key,
            lsn,
            value,
            flags,
            height,
        );
        let max_height = self.max_height.get_mut();
        *max_height = (*max_height).max(height);
        for (level, tail) in self.tails.iter_mut().enumerate().take(height) {
            // SAFETY: `tail` is an initialized node of this list that is linked at `level` (or the
            // head), so its height exceeds `level`.
            let tail_ref = unsafe { NodeRef::from_ptr(*tail) };
            // Release for uniformity with `insert`; no other thread can look (we hold &mut).
            tail_ref
                .tower(level)
                .store(node.as_ptr(), Ordering::Release);
            *tail = node;
        }
        *self.counters.0.len.get_mut() = n;
        *self.counters.0.payload.get_mut() += key.len() + value.map_or(0, <[u8]>::len);
        self.tails_len = n;
        if !newer_exists && value.is_some() {
            *self.counters.0.live.get_mut() += 1;
        }
        if !newer_exists && self.keys.is_ready() {
            // SAFETY: `node` was just initialized in this list's arena.
            self.keys
                .note_new_exclusive(unsafe { NodeRef::from_ptr(node) });
        }
        newer_exists
    }

    /// Recomputes `tails` by walking to the end of every level from the top (O(log n) expected).
    fn rebuild_tails(&mut self) {
        let mut tails = [self.head; MAX_HEIGHT];
        let mut x = self.head();
        for level in (0..MAX_HEIGHT).rev() {
            while let Some(n) = x.next_at(level) {
                x = n;
            }
            tails[level] = x.ptr;
        }
        self.tails = tails;
        self.tails_len = *self.counters.0.len.get_mut();
    }

    /// The last node before `(key, lsn)` (possibly the head) and its level-0 successor.
    #[inline]
    fn find_less(&self, key: &[u8], lsn: Lsn) -> (NodeRef<'_>, Option<NodeRef<'_>>) {
        let mut x = self.head();
        let mut bound = ptr::null_mut();
        let mut level = self.max_height.load(Ordering::Relaxed);
        loop {
            level -= 1;
            let (p, n) = find_splice_at(key, lsn, x, level, bound);
            if level == 0 {
                return (p, n);
            }
            x = p;
            bound = ptr_of(n);
        }
    }

    /// The first node >= (key, lsn) in list order, i.e. the first node with a greater key, or
    /// the same key and lsn <= the given lsn. `seek(key, u64::MAX)` = the first version of the
    /// first key >= key.
    pub(crate) fn seek(&self, key: &[u8], lsn: Lsn) -> Option<NodeRef<'_>> {
        self.find_less(key, lsn).1
    }

    /// The last node < (key, lsn) in list order. `seek_before(key, u64::MAX)` = the last node
    /// whose key is < key (the OLDEST version of the greatest key below `key`).
    pub(crate) fn seek_before(&self, key: &[u8], lsn: Lsn) -> Option<NodeRef<'_>> {
        let (p, _) = self.find_less(key, lsn);
        (p.ptr != self.head).then_some(p)
    }

    /// The first node in list order.
    pub(crate) fn first(&self) -> Option<NodeRef<'_>> {
        self.head().next_at(0)
    }

    /// The last node in list order.
    pub(crate) fn last(&self) -> Option<NodeRef<'_>> {
        let mut x = self.head();
        for level in (0..self.max_height.load(Ordering::Relaxed)).rev() {
            while let Some(n) = x.next_at(level) {
                x = n;
            }
        }
        (x.ptr != self.head).then_some(x)
    }

    /// Nodes inserted so far.
    pub(crate) fn len(&self) -> usize {
        self.counters.0.len.load(Ordering::Relaxed)
    }

    /// Key and value bytes of the nodes inserted so far (the head excluded). Exact when no insert
    /// is in flight.
    pub(crate) fn payload_bytes(&self) -> usize {
        self.counters.0.payload.load(Ordering::Relaxed)
    }

    /// Keys whose newest node is a put (not a tombstone). Exact when no insert is in flight.
    pub(crate) fn live_keys(&self) -> usize {
        usize::try_from(self.counters.0.live.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Bytes of arena memory allocated (chunks, including their 64-byte headers), and bytes of
    /// it used by nodes (including the head node and each node's padding to 8 bytes).
    pub(crate) fn memory(&self) -> (usize, usize) {
        self.arena.memory()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicBool;

    /// xorshift64*, seeded.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn shuffle<T>(&mut self, v: &mut [T]) {
            for i in (1..v.len()).rev() {
                let j = self.below(i as u64 + 1) as usize;
                v.swap(i, j);
            }
        }
    }

    fn mix(mut x: u64) -> u64 {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }

    /// The model: list order is (key ascending, lsn descending) = (key, Reverse(lsn)).
    type Model = BTreeMap<(Vec<u8>, Reverse<Lsn>), (Option<Vec<u8>>, u8)>;
    type Entry = (Vec<u8>, Lsn, Option<Vec<u8>>, u8);

    fn entry(n: NodeRef<'_>) -> Entry {
        (
            n.key().to_vec(),
            n.lsn(),
            n.value().map(<[u8]>::to_vec),
            n.flags(),
        )
    }

    fn contents(list: &SkipList) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut cur = list.first();
        while let Some(n) = cur {
            out.push(entry(n));
            cur = n.next();
        }
        out
    }

    fn model_contents(m: &Model) -> Vec<Entry> {
        m.iter()
            .map(|((k, Reverse(l)), (v, f))| (k.clone(), *l, v.clone(), *f))
            .collect()
    }

    fn model_live(m: &Model) -> usize {
        let mut live = 0;
        let mut prev: Option<&[u8]> = None;
        for ((k, _), (v, _)) in m {
            if prev != Some(k.as_slice()) {
                live += usize::from(v.is_some());
                prev = Some(k);
            }
        }
        live
    }

    fn model_payload(m: &Model) -> usize {
        m.iter()
            .map(|((k, _), (v, _))| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum()
    }

    fn key_lsn(n: Option<NodeRef<'_>>) -> Option<(Vec<u8>, Lsn)> {
        n.map(|n| (n.key().to_vec(), n.lsn()))
    }

    fn model_seek(m: &Model, key: &[u8], lsn: Lsn) -> Option<(Vec<u8>, Lsn)> {
        m.range((key.to_vec(), Reverse(lsn))..)
            .next()
            .map(|((k, Reverse(l)), _)| (k.clone(), *l))
    }

    fn model_seek_before(m: &Model, key: &[u8], lsn: Lsn) -> Option<(Vec<u8>, Lsn)> {
        m.range(..(key.to_vec(), Reverse(lsn)))
            .next_back()
            .map(|((k, Reverse(l)), _)| (k.clone(), *l))
    }

    fn before(a: NodeRef<'_>, b: NodeRef<'_>) -> bool {
        a.key().cmp(b.key()).then(b.lsn().cmp(&a.lsn())) == CmpOrdering::Less
    }

    /// Checks every level is strictly ordered, every node at level l has height > l, every node
    /// of level l is also at level l-1, levels at or above max_height are empty, and len matches.
    /// Also checks the arena's used bytes are exactly the nodes' sizes (at least, when racing
    /// duplicate inserts may have left unpublished nodes). Quiescent lists only.
    fn check_structure(list: &SkipList) {
        check_structure_inner(list, true);
    }

    fn check_structure_inner(list: &SkipList, exact_memory: bool) {
        let head = list.head();
        let max_h = list.max_height.load(Ordering::Relaxed);
        let mut lower: Vec<*mut Node> = Vec::new();
        for level in 0..MAX_HEIGHT {
            let mut at_level = Vec::new();
            let mut prev: Option<NodeRef<'_>> = None;
            let mut cur = head.next_at(level);
            while let Some(n) = cur {
                assert!(n.height() > level);
                if let Some(p) = prev {
                    assert!(before(p, n), "level {level} out of order: {p:?} then {n:?}");
                }
                at_level.push(n.ptr.as_ptr());
                prev = Some(n);
                cur = n.next_at(level);
            }
            if level >= max_h {
                assert!(
                    at_level.is_empty(),
                    "level {level} >= max_height {max_h} in use"
                );
            }
            if level == 0 {
                assert_eq!(at_level.len(), list.len());
            } else {
                // Sublist check: both are ordered, so a merge-walk suffices.
                let mut it = lower.iter();
                for p in &at_level {
                    assert!(it.any(|q| q == p), "level {level} node missing below");
                }
            }
            lower = at_level;
        }
        let mut bytes = node_size(MAX_HEIGHT, 0, 0);
        let mut cur = list.first();
        while let Some(n) = cur {
            bytes += node_size(n.height(), n.key().len(), n.value().map_or(0, <[u8]>::len));
            cur = n.next();
        }
        let (allocated, used) = list.memory();
        if exact_memory {
            assert_eq!(used, bytes);
        } else {
            assert!(used >= bytes);
        }
        assert!(allocated >= used);
    }

    fn check_seeks(list: &SkipList, m: &Model, probes: &[Vec<u8>], lsns: &[Lsn]) {
        for k in probes {
            for &l in lsns {
                assert_eq!(
                    key_lsn(list.seek(k, l)),
                    model_seek(m, k, l),
                    "seek({k:?}, {l})"
                );
                assert_eq!(
                    key_lsn(list.seek_before(k, l)),
                    model_seek_before(m, k, l),
                    "seek_before({k:?}, {l})"
                );
            }
        }
        assert_eq!(
            key_lsn(list.first()),
            m.keys().next().map(|(k, Reverse(l))| (k.clone(), *l))
        );
        assert_eq!(
            key_lsn(list.last()),
            m.keys().next_back().map(|(k, Reverse(l))| (k.clone(), *l))
        );
    }

    #[test]
    fn empty_list() {
        let list = SkipList::new();
        assert!(list.first().is_none());
        assert!(list.last().is_none());
        assert!(list.seek(b"a", 5).is_none());
        assert!(list.seek(b"a", u64::MAX).is_none());
        assert!(list.seek(&[0], 0).is_none());
        assert!(list.seek_before(b"a", 5).is_none());
        assert!(list.seek_before(&[255; 10], 0).is_none());
        assert_eq!(list.len(), 0);
        assert_eq!(list.live_keys(), 0);
        let (allocated, used) = list.memory();
        assert_eq!(allocated, CHUNK_HEADER + FIRST_CHUNK);
        assert_eq!(used, node_size(MAX_HEIGHT, 0, 0));
        check_structure(&list);
        let _ = format!("{list:?}");
    }

    #[test]
    fn single_node() {
        let list = SkipList::new();
        let r = list.insert(b"k", 7, Some(b"v"), 3);
        assert_eq!(
            r,
            Inserted {
                newer_exists: false,
                older: None
            }
        );
        let n = list.first().expect("node");
        assert_eq!(
            (n.key(), n.lsn(), n.value(), n.flags()),
            (&b"k"[..], 7, Some(&b"v"[..]), 3)
        );
        assert!(n.next().is_none());
        assert_eq!(key_lsn(list.last()), Some((b"k".to_vec(), 7)));
        assert_eq!(key_lsn(list.seek(b"k", u64::MAX)), Some((b"k".to_vec(), 7)));
        assert_eq!(key_lsn(list.seek(b"k", 7)), Some((b"k".to_vec(), 7)));
        assert!(list.seek(b"k", 6).is_none());
        assert!(list.seek(b"k\0", u64::MAX).is_none());
        assert_eq!(key_lsn(list.seek(b"j", 0)), Some((b"k".to_vec(), 7)));
        assert!(list.seek_before(b"k", u64::MAX).is_none());
        assert!(list.seek_before(b"k", 7).is_none());
        assert_eq!(key_lsn(list.seek_before(b"k", 6)), Some((b"k".to_vec(), 7)));
        assert_eq!(
            key_lsn(list.seek_before(b"l", u64::MAX)),
            Some((b"k".to_vec(), 7))
        );
        assert_eq!(list.live_keys(), 1);
        let _ = format!("{n:?}");
    }

    #[test]
    fn ordering_and_seek_edges() {
        let keys: Vec<Vec<u8>> = vec![
            b"a".to_vec(),
            b"ab".to_vec(),
            b"abc".to_vec(),
            b"abd".to_vec(),
            b"b".to_vec(),
            b"ba".to_vec(),
            vec![0],
            vec![0, 0],
            vec![0, 1],
            vec![255],
            vec![255, 255],
            vec![1; 300],
            vec![1; 301],
        ];
        let lsns = [0, 1, 5, 6, 1000, u64::MAX - 2, u64::MAX - 1];
        let mut all = Vec::new();
        for (ki, k) in keys.iter().enumerate() {
            for (li, &l) in lsns.iter().enumerate() {
                if (ki + li) % 3 != 0 {
                    all.push((k.clone(), l));
                }
            }
        }
        let mut rng = Rng::new(42);
        rng.shuffle(&mut all);
        let list = SkipList::new();
        let mut m = Model::new();
        for (i, (k, l)) in all.iter().enumerate() {
            let v = (i % 4 != 0).then(|| format!("v{i}").into_bytes());
            list.insert(k, *l, v.as_deref(), i as u8);
            m.insert((k.clone(), Reverse(*l)), (v, i as u8));
        }
        assert_eq!(contents(&list), model_contents(&m));
        assert_eq!(list.len(), m.len());
        assert_eq!(list.live_keys(), model_live(&m));
        assert_eq!(list.payload_bytes(), model_payload(&m));
        check_structure(&list);

        let mut probes = keys.clone();
        probes.extend([
            b"".to_vec(),
            b"aa".to_vec(),
            b"abcd".to_vec(),
            b"abc\0".to_vec(),
            b"c".to_vec(),
            vec![0, 0, 0],
            vec![255, 255, 255],
            vec![1; 299],
            vec![1; 302],
        ]);
        let probe_lsns = [
            0,
            1,
            2,
            4,
            5,
            6,
            7,
            999,
            1000,
            1001,
            u64::MAX - 2,
            u64::MAX - 1,
            u64::MAX,
        ];
        check_seeks(&list, &m, &probes, &probe_lsns);

        // The documented special cases.
        let s = list.seek(b"ab", u64::MAX).expect("seek");
        assert_eq!(s.key(), b"ab");
        assert_eq!(
            s.lsn(),
            m.range((b"ab".to_vec(), Reverse(u64::MAX))..)
                .next()
                .unwrap()
                .0
                 .1
                 .0
        );
        let sb = list.seek_before(b"b", u64::MAX).expect("seek_before");
        assert_eq!(sb.key(), b"abd");
        // The oldest version of "abd": its successor is the first version of "b".
        assert_eq!(sb.next().expect("next").key(), b"b");
    }

    #[test]
    fn tombstones_empty_values_and_flags() {
        let list = SkipList::new();
        list.insert(b"x", 3, None, 0xAA);
        list.insert(b"x", 2, Some(b""), 0x01);
        list.insert(b"y", 9, Some(b"val"), 0xFF);
        let c = contents(&list);
        assert_eq!(
            c,
            vec![
                (b"x".to_vec(), 3, None, 0xAA),
                (b"x".to_vec(), 2, Some(Vec::new()), 0x01),
                (b"y".to_vec(), 9, Some(b"val".to_vec()), 0xFF),
            ]
        );
        // "x" is deleted (newest is a tombstone), "y" is live.
        assert_eq!(list.live_keys(), 1);
        assert_eq!(
            list.insert(b"x", 4, Some(b"back"), 0),
            Inserted {
                newer_exists: false,
                older: Some(false)
            }
        );
        assert_eq!(list.live_keys(), 2);
        assert_eq!(
            list.insert(b"x", 1, None, 0),
            Inserted {
                newer_exists: true,
                older: None
            }
        );
        assert_eq!(
            list.insert(b"x", 0, None, 0),
            Inserted {
                newer_exists: true,
                older: None
            }
        );
        assert_eq!(
            list.insert(b"y", 8, None, 0),
            Inserted {
                newer_exists: true,
                older: None
            }
        );
        assert_eq!(
            list.insert(b"y", 10, None, 0),
            Inserted {
                newer_exists: false,
                older: Some(true)
            }
        );
        assert_eq!(list.live_keys(), 1);
        check_structure(&list);
    }

    /// Random puts/deletes in random LSN order against a BTreeMap model, checking every
    /// insert's `Inserted` and `live_keys` after each step.
    #[test]
    fn live_keys_and_inserted_match_model() {
        for seed in 1..=12u64 {
            let mut rng = Rng::new(seed);
            let n = 1500u64;
            let nkeys = 1 + rng.below(60);
            let mut lsns: Vec<Lsn> = (0..n).map(|i| i * 3 + rng.below(3)).collect();
            rng.shuffle(&mut lsns);
            let list = SkipList::new();
            let mut m = Model::new();
            for &lsn in &lsns {
                let k = rng.below(nkeys);
                // Keys that are prefixes of one another: "k", "k1", "k12", ...
                let key = format!("k{}", k).into_bytes();
                let value = (rng.below(3) != 0).then(|| vec![k as u8; rng.below(40) as usize]);
                let flags = rng.next() as u8;
                let got = list.insert(&key, lsn, value.as_deref(), flags);
                let newer_exists = m
                    .range(..(key.clone(), Reverse(lsn)))
                    .next_back()
                    .is_some_and(|((k2, _), _)| *k2 == key);
                let older = m
                    .range((key.clone(), Reverse(lsn))..)
                    .next()
                    .filter(|((k2, _), _)| *k2 == key)
                    .map(|(_, (v, _))| v.is_some());
                assert_eq!(
                    got,
                    Inserted {
                        newer_exists,
                        older
                    },
                    "seed {seed} lsn {lsn}"
                );
                m.insert((key, Reverse(lsn)), (value, flags));
                assert_eq!(list.live_keys(), model_live(&m), "seed {seed} lsn {lsn}");
                if rng.below(8) == 0 {
                    // Re-insert a random existing version (with another value and flags): a
                    // no-op whose result describes the existing node's neighbours.
                    let i = rng.below(m.len() as u64) as usize;
                    let ((k, Reverse(l)), _) = m.iter().nth(i).expect("in model");
                    let newer_exists = m
                        .range(..(k.clone(), Reverse(*l)))
                        .next_back()
                        .is_some_and(|((k2, _), _)| k2 == k);
                    let older = m
                        .range((
                            std::ops::Bound::Excluded((k.clone(), Reverse(*l))),
                            std::ops::Bound::Unbounded,
                        ))
                        .next()
                        .filter(|((k2, _), _)| k2 == k)
                        .map(|(_, (v, _))| v.is_some());
                    let got = list.insert(k, *l, Some(b"other"), 0x55);
                    assert_eq!(
                        got,
                        Inserted {
                            newer_exists,
                            older
                        },
                        "seed {seed} re-insert lsn {l}"
                    );
                    assert_eq!(list.len(), m.len(), "seed {seed}");
                    assert_eq!(list.live_keys(), model_live(&m), "seed {seed}");
                }
            }
            assert_eq!(contents(&list), model_contents(&m), "seed {seed}");
            check_structure(&list);
            let mut probes: Vec<Vec<u8>> = (0..nkeys + 2)
                .map(|k| format!("k{k}").into_bytes())
                .collect();
            probes.push(b"k".to_vec());
            probes.push(b"j".to_vec());
            probes.push(b"l".to_vec());
            let probe_lsns: Vec<Lsn> = (0..20)
                .map(|_| rng.below(n * 3 + 2))
                .chain([0, u64::MAX])
                .collect();
            check_seeks(&list, &m, &probes, &probe_lsns);
        }
    }

    #[test]
    fn append_sorted_builds_the_same_list() {
        let mut rng = Rng::new(7);
        let mut m = Model::new();
        for i in 0..3000u64 {
            let key = format!("{:x}", rng.below(400)).into_bytes();
            let value = (rng.below(4) != 0).then(|| i.to_le_bytes().to_vec());
            m.insert((key, Reverse(rng.below(1 << 40))), (value, i as u8));
        }
        let entries = model_contents(&m);

        let mut appended = SkipList::new();
        for (k, l, v, f) in &entries {
            appended.append_sorted(k, *l, v.as_deref(), *f);
        }
        let inserted = SkipList::new();
        let mut shuffled = entries.clone();
        rng.shuffle(&mut shuffled);
        for (k, l, v, f) in &shuffled {
            inserted.insert(k, *l, v.as_deref(), *f);
        }
        assert_eq!(contents(&appended), entries);
        assert_eq!(contents(&inserted), entries);
        assert_eq!(appended.len(), entries.len());
        assert_eq!(appended.live_keys(), model_live(&m));
        assert_eq!(inserted.live_keys(), model_live(&m));
        assert_eq!(appended.payload_bytes(), model_payload(&m));
        assert_eq!(inserted.payload_bytes(), model_payload(&m));
        check_structure(&appended);
        check_structure(&inserted);
        let probes: Vec<Vec<u8>> = (0..420).map(|k| format!("{k:x}").into_bytes()).collect();
        check_seeks(&appended, &m, &probes, &[0, 1 << 39, u64::MAX]);

        // Mixing: inserts after appends (into the middle and at the end), then appends again
        // (the tails must be rebuilt), then inserts again.
        inserted_then_appended(&mut appended, &mut m);
    }

    fn inserted_then_appended(list: &mut SkipList, m: &mut Model) {
        for (i, key) in [b"0".to_vec(), b"5".to_vec(), b"zz".to_vec()]
            .into_iter()
            .enumerate()
        {
            let lsn = (1 << 41) + i as u64;
            list.insert(&key, lsn, Some(b"mid"), 1);
            m.insert((key, Reverse(lsn)), (Some(b"mid".to_vec()), 1));
        }
        // "zz" is the last key now; append its older versions, then new keys.
        for (key, lsn, v) in [
            (b"zz".to_vec(), 5u64, None),
            (b"zz".to_vec(), 4, Some(b"x".to_vec())),
            (b"zzz".to_vec(), 9, None),
            (b"zzzz".to_vec(), 9, Some(b"y".to_vec())),
        ] {
            list.append_sorted(&key, lsn, v.as_deref(), 2);
            m.insert((key, Reverse(lsn)), (v, 2));
            assert_eq!(list.live_keys(), model_live(m));
        }
        list.insert(b"zzzzz", 1, Some(b"end"), 3);
        m.insert((b"zzzzz".to_vec(), Reverse(1)), (Some(b"end".to_vec()), 3));
        list.insert(b"zzzz", 10, None, 3);
        m.insert((b"zzzz".to_vec(), Reverse(10)), (None, 3));
        list.append_sorted(b"zzzzzz", 1, Some(b"after"), 4);
        m.insert(
            (b"zzzzzz".to_vec(), Reverse(1)),
            (Some(b"after".to_vec()), 4),
        );
        assert_eq!(contents(list), model_contents(m));
        assert_eq!(list.live_keys(), model_live(m));
        check_structure(list);
    }

    #[test]
    #[should_panic(expected = "does not sort after")]
    fn append_sorted_rejects_newer_version_after_older() {
        let mut list = SkipList::new();
        list.append_sorted(b"a", 5, Some(b"1"), 0);
        list.append_sorted(b"a", 6, Some(b"2"), 0);
    }

    #[test]
    #[should_panic(expected = "does not sort after")]
    fn append_sorted_rejects_smaller_key() {
        let mut list = SkipList::new();
        list.append_sorted(b"b", 5, Some(b"1"), 0);
        list.append_sorted(b"a", 6, Some(b"2"), 0);
    }

    #[test]
    #[should_panic(expected = "does not sort after")]
    fn append_sorted_rejects_equal() {
        let mut list = SkipList::new();
        list.append_sorted(b"b", 5, Some(b"1"), 0);
        list.append_sorted(b"b", 5, None, 0);
    }

    #[test]
    #[should_panic(expected = "does not sort after")]
    fn append_sorted_rejects_after_insert() {
        let mut list = SkipList::new();
        list.insert(b"m", 5, Some(b"1"), 0);
        list.append_sorted(b"a", 6, Some(b"2"), 0);
    }

    #[test]
    #[should_panic(expected = "longer than")]
    fn rejects_oversized_key() {
        let list = SkipList::new();
        list.insert(&vec![1u8; MAX_KEY_LEN + 1], 1, None, 0);
    }

    #[test]
    fn long_keys_and_large_values() {
        let list = SkipList::new();
        let mut m = Model::new();
        let base = vec![7u8; 60 << 10];
        let mut keys = Vec::new();
        for last in [0u8, 1, 200] {
            let mut k = base.clone();
            k.push(last);
            keys.push(k);
        }
        keys.push(base.clone());
        keys.push(vec![7u8; MAX_KEY_LEN]);
        let (alloc0, _) = list.memory();
        for (i, k) in keys.iter().enumerate() {
            for lsn in [3u64, 1] {
                let v = vec![i as u8; 100];
                list.insert(k, lsn + i as u64 * 10, Some(&v), 0);
                m.insert((k.clone(), Reverse(lsn + i as u64 * 10)), (Some(v), 0));
            }
        }
        // A value of a few MiB gets its own chunk of exactly its size.
        let big = (0..3 << 20)
            .map(|i: u32| (i % 251) as u8)
            .collect::<Vec<u8>>();
        let (alloc1, _) = list.memory();
        list.insert(b"big", 1, Some(&big), 9);
        m.insert((b"big".to_vec(), Reverse(1)), (Some(big.clone()), 9));
        let (alloc2, _) = list.memory();
        let big_node = node_size(list.seek(b"big", 1).expect("big").height(), 3, big.len());
        assert_eq!(alloc2 - alloc1, CHUNK_HEADER + big_node);
        // Small inserts keep going to the regular chunk.
        list.insert(b"small", 1, Some(b"s"), 0);
        m.insert((b"small".to_vec(), Reverse(1)), (Some(b"s".to_vec()), 0));
        assert_eq!(list.memory().0, alloc2);
        assert!(alloc1 > alloc0);

        assert_eq!(
            list.seek(b"big", u64::MAX).expect("big").value(),
            Some(&big[..])
        );
        assert_eq!(contents(&list), model_contents(&m));
        check_structure(&list);
        let mut probes = keys.clone();
        let mut p = base.clone();
        p.push(100);
        probes.push(p);
        probes.push(vec![7u8; 30 << 10]);
        probes.push(vec![8u8; 1]);
        check_seeks(&list, &m, &probes, &[0, 2, 12, 13, u64::MAX]);
        assert_eq!(list.live_keys(), model_live(&m));
        assert_eq!(list.payload_bytes(), model_payload(&m));
    }

    #[test]
    fn small_chunks_and_dedicated_chunks() {
        // 512-byte first chunk growing to 4 KiB; nodes over 1 KiB get their own chunk.
        let list = SkipList::with_chunk_sizes(512, 4096);
        let mut rng = Rng::new(99);
        let mut m = Model::new();
        for lsn in 0..2000u64 {
            let key = format!("key{}", rng.below(300)).into_bytes();
            let value = vec![lsn as u8; rng.below(1500) as usize];
            list.insert(&key, lsn, Some(&value), 0);
            m.insert((key, Reverse(lsn)), (Some(value), 0));
        }
        assert_eq!(contents(&list), model_contents(&m));
        check_structure(&list);
    }

    /// Once the arena takes maximum-size chunks it keeps some reserved (and faulted in) ahead
    /// of the writers: the next chunks come from that reserve, never more than
    /// `RESERVE_AHEAD` wait there, and the nodes in them read back. Dropped while the prefault
    /// thread may still run.
    #[test]
    fn maximum_chunks_come_from_a_reserve_kept_ahead() {
        // Maximum chunks of one huge page (the size from which chunks are mapped).
        let max = HUGE_PAGE - CHUNK_HEADER;
        let list = SkipList::with_chunk_sizes(FIRST_CHUNK, max);
        let value = [7u8; 1000];
        // About 12 maximum chunks of nodes.
        let n = 12 * max / 1050;
        let mut most_reserved = 0;
        for i in 0..n as u64 {
            list.insert(&mix(i).to_be_bytes(), i, Some(&value), 0);
            most_reserved = most_reserved.max(list.arena.slow.lock().reserved.len());
        }
        let slow = list.arena.slow.lock();
        if !NO_POPULATE.load(Ordering::Relaxed) {
            // The first maximum chunk installed reserves one; the next one takes it.
            assert!(slow.taken_reserved >= 1, "no chunk came from the reserve");
        }
        assert!(
            most_reserved <= RESERVE_AHEAD,
            "{most_reserved} chunks reserved"
        );
        drop(slow);
        for i in (0..n as u64).step_by(97) {
            let node = list.newest(&mix(i).to_be_bytes()).expect("inserted");
            assert_eq!(node.value(), Some(&value[..]));
        }
        // Released: nothing stays reserved, later inserts reserve nothing and still work.
        list.release_reserve();
        assert!(list.arena.slow.lock().reserved.is_empty());
        for i in n as u64..2 * n as u64 {
            list.insert(&mix(i).to_be_bytes(), i, Some(&value), 0);
        }
        assert!(list.arena.slow.lock().reserved.is_empty());
        assert_eq!(list.len(), 2 * n);
        for i in (0..2 * n as u64).step_by(97) {
            let node = list.newest(&mix(i).to_be_bytes()).expect("inserted");
            assert_eq!(node.value(), Some(&value[..]));
        }
    }

    #[test]
    fn memory_overhead_per_node() {
        let list = SkipList::new();
        let n = 100_000u64;
        for i in 0..n {
            let key = mix(i).to_be_bytes().repeat(2);
            list.insert(&key, i, Some(&[1u8; 100]), 0);
        }
        let (allocated, used) = list.memory();
        let payload = n as usize * (16 + 100);
        assert_eq!(list.payload_bytes(), payload);
        let per_node = (used - node_size(MAX_HEIGHT, 0, 0) - payload) as f64 / n as f64;
        println!(
            "overhead: {per_node:.2} bytes/node used (incl. padding), {:.2} bytes/node allocated",
            (allocated - payload) as f64 / n as f64
        );
        // 16-byte header + 8 bytes × 4/3 mean height + 4 bytes padding (116 -> 120) ≈ 30.7.
        assert!(per_node < 32.0, "{per_node}");
    }

    /// Deterministic content for the concurrency tests, a function of the LSN only.
    fn conc_key(lsn: Lsn, nkeys: u64) -> Vec<u8> {
        // Keys that are prefixes of others: "c", "c1", "c12", ...
        format!("c{}", mix(lsn) % nkeys).into_bytes()
    }
    fn conc_value(lsn: Lsn, max_len: u64) -> Option<Vec<u8>> {
        let r = mix(lsn ^ 0xABCD);
        (!r.is_multiple_of(4)).then(|| {
            let len = (r >> 8) % max_len;
            (0..len).map(|i| (lsn as u8) ^ (i as u8)).collect()
        })
    }

    /// `writers` threads insert `per_writer` versions each; every LSN is inserted by `copies`
    /// threads (writer t inserts the LSNs ≡ t mod writers/copies), two readers scan meanwhile.
    fn concurrent_run(
        list: &SkipList,
        writers: u64,
        copies: u64,
        per_writer: u64,
        nkeys: u64,
        max_value: u64,
    ) {
        let distinct = writers / copies;
        assert_eq!(distinct * copies, writers);
        let finished = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        std::thread::scope(|s| {
            for t in 0..writers {
                let finished = &finished;
                s.spawn(move || {
                    for i in 0..per_writer {
                        let lsn = i * distinct + t % distinct;
                        let key = conc_key(lsn, nkeys);
                        let value = conc_value(lsn, max_value);
                        list.insert(&key, lsn, value.as_deref(), lsn as u8);
                    }
                    finished.fetch_add(1, Ordering::Release);
                });
            }
            for r in 0..2u64 {
                let (finished, failed) = (&finished, &failed);
                s.spawn(move || {
                    let mut rng = Rng::new(r + 1);
                    let mut seen = 0;
                    loop {
                        let done = finished.load(Ordering::Acquire) == writers as usize;
                        // A full pass: strictly increasing, every node's bytes as written.
                        let mut count = 0;
                        let mut prev: Option<NodeRef<'_>> = None;
                        let mut cur = list.first();
                        while let Some(n) = cur {
                            if let Some(p) = prev {
                                if !before(p, n) {
                                    failed.store(true, Ordering::Relaxed);
                                    panic!("out of order: {p:?} then {n:?}");
                                }
                            }
                            let lsn = n.lsn();
                            assert_eq!(n.key(), conc_key(lsn, nkeys));
                            assert_eq!(n.value(), conc_value(lsn, max_value).as_deref());
                            assert_eq!(n.flags(), lsn as u8);
                            count += 1;
                            prev = Some(n);
                            cur = n.next();
                        }
                        // Insert-only: a later pass never sees fewer nodes.
                        assert!(count >= seen, "pass saw {count} < {seen}");
                        seen = count;
                        // Seeks obey their contracts while the list changes.
                        for _ in 0..50 {
                            let key = format!("c{}", rng.below(nkeys + 1)).into_bytes();
                            let lsn = rng.below(distinct * per_writer + 1);
                            if let Some(n) = list.seek(&key, lsn) {
                                assert!(!n.lt(&key, lsn));
                            }
                            if let Some(n) = list.seek_before(&key, lsn) {
                                assert!(n.lt(&key, lsn));
                                if let Some(nx) = n.next() {
                                    assert!(before(n, nx));
                                }
                            }
                        }
                        if done {
                            assert_eq!(count, list.len());
                            break;
                        }
                    }
                });
            }
        });
        assert!(!failed.load(Ordering::Relaxed));

        let mut m = Model::new();
        for lsn in 0..distinct * per_writer {
            m.insert(
                (conc_key(lsn, nkeys), Reverse(lsn)),
                (conc_value(lsn, max_value), lsn as u8),
            );
        }
        assert_eq!(list.len(), m.len());
        assert_eq!(contents(list), model_contents(&m));
        assert_eq!(list.live_keys(), model_live(&m));
        assert_eq!(list.payload_bytes(), model_payload(&m));
        check_structure_inner(list, copies == 1);
    }

    #[test]
    fn concurrent_inserts_with_readers() {
        let list = SkipList::new();
        concurrent_run(&list, 4, 1, 6000, 500, 100);
    }

    #[test]
    fn concurrent_inserts_few_keys() {
        // Heavy contention on the same splices: 8 writers, 7 keys.
        let list = SkipList::new();
        concurrent_run(&list, 8, 1, 1500, 7, 20);
    }

    #[test]
    fn concurrent_inserts_small_chunks() {
        // Chunk installation races and dedicated chunks (values up to 3000 bytes > 1 KiB).
        let list = SkipList::with_chunk_sizes(512, 4096);
        concurrent_run(&list, 4, 1, 1500, 200, 3000);
    }

    #[test]
    fn key_index_names_each_keys_newest_node() {
        // Versions inserted out of LSN order by several threads, and appended in order: the key
        // index always names the node `seek(key, MAX)` finds, the key's newest.
        let list = SkipList::new();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let list = &list;
                s.spawn(move || {
                    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t;
                    for i in 0..3000u64 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let key = (x % 97).to_be_bytes();
                        list.insert(&key, i * 4 + t + 1, Some(b"v"), 0);
                    }
                });
            }
        });
        for k in 0..97u64 {
            let key = k.to_be_bytes();
            let by_search = list.seek(&key, Lsn::MAX).filter(|n| n.key() == key);
            let by_index = list.newest(&key);
            assert_eq!(
                by_index.map(|n| n.lsn()),
                by_search.map(|n| n.lsn()),
                "key {k}"
            );
        }
        assert!(list.newest(b"absent").is_none());
        let mut built = SkipList::new();
        for k in 0..50u64 {
            for lsn in (1..4u64).rev() {
                built.append_sorted(&k.to_be_bytes(), k * 10 + lsn, Some(b"x"), 0);
            }
        }
        for k in 0..50u64 {
            assert_eq!(
                built.newest(&k.to_be_bytes()).map(|n| n.lsn()),
                Some(k * 10 + 3)
            );
        }
        assert!(built.key_index_bytes() > 0);
    }

    #[test]
    fn concurrent_duplicate_inserts() {
        // Every version is inserted by two threads at about the same time (as the index's trim
        // and its writers do): exactly one node each, exact counts.
        let list = SkipList::new();
        concurrent_run(&list, 4, 2, 4000, 50, 30);
        let list = SkipList::new();
        concurrent_run(&list, 6, 3, 1000, 5, 10);
    }

    #[test]
    fn duplicate_insert_is_a_noop() {
        let list = SkipList::new();
        list.insert(b"a", 9, Some(b"new"), 1);
        let first = list.insert(b"a", 5, Some(b"mid"), 2);
        list.insert(b"a", 2, None, 3);
        list.insert(b"b", 1, Some(b"b"), 4);
        let before = contents(&list);
        let (_, used) = list.memory();
        assert_eq!(
            first,
            Inserted {
                newer_exists: true,
                older: None
            }
        );
        assert_eq!(
            list.insert(b"a", 5, None, 7),
            Inserted {
                newer_exists: true,
                older: Some(false)
            }
        );
        assert_eq!(
            list.insert(b"a", 9, None, 7),
            Inserted {
                newer_exists: false,
                older: Some(true)
            }
        );
        assert_eq!(
            list.insert(b"b", 1, None, 7),
            Inserted {
                newer_exists: false,
                older: None
            }
        );
        assert_eq!(contents(&list), before);
        assert_eq!(list.len(), 4);
        assert_eq!(list.live_keys(), 2);
        // The duplicate check comes before allocation: no arena bytes were used.
        assert_eq!(list.memory().1, used);
        check_structure(&list);
    }

    #[test]
    fn send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SkipList>();
        assert_send_sync::<NodeRef<'static>>();
    }
}
