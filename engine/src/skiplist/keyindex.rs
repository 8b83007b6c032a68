//! The key index of a [`SkipList`]: each key's newest node, for point reads in one hash probe
//! instead of a search of the list.
//!
//! # Structure
//!
//! One open-addressing hash table with linear probing. A slot is one `AtomicU64`: zero when
//! empty, else a 16-bit tag taken from the key's hash (bits 48..64) over the node's address
//! shifted right by 3 (nodes are 8-aligned; bits 0..48 hold addresses below 2^51). A probe
//! compares tags first, so it touches a node only when the tags match: a lookup costs the slot's
//! cache line and the node's, and a node's key, header and value are adjacent in the arena.
//! The table has any number of slots: a probe starts at a multiply-shift of hash bits that
//! neither the tag nor the shard uses and wraps around at the end. It grows by half (so it is
//! between 1/2 and 3/4 full), and a bulk load sizes it once to its keys (about 3/4 full).
//!
//! # Concurrency
//!
//! Readers take no lock: a load of the table pointer inside a read section ([`crate::rcu`]: no
//! fence, no locked instruction), then Acquire loads of slots. Writers serialise per **shard** (the
//! key's hash picks one of [`SHARDS`] mutexes), so all writes of one key are ordered:
//!
//! - a key's first node claims an empty slot with a CAS (writers of other shards may race for the
//!   same empty slot; the loser probes on). A slot, once claimed, only ever holds nodes of that
//!   key, and only a writer holding that key's shard lock stores to it, replacing its node with
//!   a newer version (Release).
//! - Growing the table takes every shard lock (in index order, so it never deadlocks with another
//!   grower; a writer drops its own lock first), copies the slots into a table half again as large and
//!   publishes it. The table pointer is an [`Rcu`]: a reader probes inside a read section (as it
//!   reads the index generation), and an old table is retired, freed once no section that began
//!   before its replacement is still open.
//!
//! Why a reader never misses what it must see: a commit inserts its nodes into the list, notes
//! them here, and only then becomes visible (publication, a Release store the reader loads with
//! Acquire before it reads). A note into table T happens after T was published (the writer read
//! the table pointer under its shard lock, which the grower held while publishing), and a table
//! replacing T is built under every shard lock, after every note into T. So a reader that loads
//! the visible LSN and then the table pointer finds, for every key, a node at least as new as
//! its newest visible version; it walks down to the version it needs through the list.
//!
//! An address that does not fit 51 bits (never produced by Linux's x86-64 or aarch64 user-space
//! allocators without an explicit hint) disables the index: lookups answer "unknown" and readers
//! search the list, so correctness never depends on it.

use std::hash::BuildHasher;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::cpu::prefetch_read as prefetch;
use crate::rcu::{self, Rcu};

use super::{Node, NodeRef};

/// Writer shards: a key's hash picks one; writes of different shards proceed in parallel.
const SHARDS: usize = 64;
/// Slots of a new, empty table.
const FIRST_SLOTS: usize = 1024;
/// Bits of a slot holding the node's address shifted right by 3.
const ADDR_BITS: u32 = 48;
const ADDR_MASK: u64 = (1 << ADDR_BITS) - 1;

/// A table of slots, any number of them (at least [`FIRST_SLOTS`]): a probe starts at a slot
/// chosen by a multiply-shift of the hash and wraps around at the end, so a table can be sized
/// to what it must hold rather than to a power of two.
struct Table {
    slots: Box<[AtomicU64]>,
}

impl Table {
    fn with_slots(n: usize) -> Table {
        debug_assert!(n >= FIRST_SLOTS);
        // SAFETY: all-zero bytes are a valid `AtomicU64` (zero). A zeroed allocation spares a
        // pass over the table: large ones come from fresh, already zero pages.
        let slots = unsafe { Box::<[AtomicU64]>::new_zeroed_slice(n).assume_init() };
        Table { slots }
    }

    /// The slot after `i`, wrapping around.
    #[inline]
    fn next(&self, i: usize) -> usize {
        let j = i + 1;
        if j == self.slots.len() {
            0
        } else {
            j
        }
    }
}

/// One shard's lock, guarding the number of keys of the shard, on its own cache line.
#[repr(align(64))]
struct Shard(Mutex<usize>);

pub(super) struct KeyIndex {
    /// The current table; replaced only while every shard lock is held.
    table: Rcu<Table>,
    /// The current table's address, for writers: under a shard lock the table cannot be
    /// replaced, so they need no guard. Written only with every shard lock held.
    current: AtomicPtr<Table>,
    shards: Box<[Shard]>,
    hasher: foldhash::fast::RandomState,
    /// Set when a node address did not fit a slot: lookups then always answer "unknown".
    disabled: AtomicBool,
    /// False while the index is being built from a bulk-loaded list ([`KeyIndex::defer`]):
    /// lookups answer "unknown" until [`KeyIndex::build_from`] has noted every key.
    ready: AtomicBool,
}

/// The parts of a key's hash: where its probe starts, its tag and its shard.
#[derive(Clone, Copy)]
struct Hash(u64);

impl Hash {
    fn start(self, slots: usize) -> usize {
        // Multiply-shift of bits 0..40 (rotated to the top), independent of the tag (bits
        // 48..64) and of the shard (bits 40..46): the product's high word is below `slots`.
        ((u128::from(self.0.rotate_left(24)) * slots as u128) >> 64) as usize
    }
    fn tag(self) -> u64 {
        // Never zero, so no occupied slot encodes as 0 (a node address is never 0 either).
        (self.0 >> ADDR_BITS) | 1
    }
    fn shard(self) -> usize {
        // Bits 40..46: independent of the start for tables up to 2^40 slots, and of the tag.
        ((self.0 >> 40) as usize) % SHARDS
    }
}

fn encode(tag: u64, node: NonNull<Node>) -> Option<u64> {
    let addr = node.as_ptr() as u64 >> 3;
    (addr & !ADDR_MASK == 0).then_some((tag << ADDR_BITS) | addr)
}

/// Asks for the two cache lines after a node's first one, where its key's tail and its value
/// lie (a node is a 16-byte header, its tower, the key and the value, 8-byte aligned): fetched
/// beside the first line instead of after it, a point read waits for two cache misses in a row
/// (the slot, the node) instead of three.
#[inline]
fn prefetch_value(node: NonNull<Node>) {
    let base = node.as_ptr().cast::<u8>();
    prefetch(base.wrapping_add(64));
    prefetch(base.wrapping_add(128));
}

/// Asks for a node's first cache line and the next: its header and key, which may cross into
/// the second (nodes are 8-byte aligned; a short key lies in the first 64 bytes after its start).
#[inline]
fn prefetch_key(node: NonNull<Node>) {
    let base = node.as_ptr().cast::<u8>();
    prefetch(base);
    prefetch(base.wrapping_add(63));
}

fn tag_of(slot: u64) -> u64 {
    slot >> ADDR_BITS
}

fn node_of(slot: u64) -> NonNull<Node> {
    // Slots hold only addresses of nodes (8-aligned, non-null), so this is the node's address.
    NonNull::new(((slot & ADDR_MASK) << 3) as *mut Node).expect("an occupied slot")
}

impl KeyIndex {
    pub(super) fn new() -> KeyIndex {
        let table = Arc::new(Table::with_slots(FIRST_SLOTS));
        KeyIndex {
            current: AtomicPtr::new(Arc::as_ptr(&table).cast_mut()),
            table: Rcu::new(table),
            shards: (0..SHARDS).map(|_| Shard(Mutex::new(0))).collect(),
            hasher: foldhash::fast::RandomState::default(),
            disabled: AtomicBool::new(false),
            ready: AtomicBool::new(true),
        }
    }

    fn hash(&self, key: &[u8]) -> Hash {
        Hash(self.hasher.hash_one(key))
    }

    /// Records `node` as its key's newest node unless a newer one is recorded. The node must
    /// belong to the list owning this index and stay there as long as the index lives.
    pub(super) fn note(&self, node: NodeRef<'_>) {
        let key = node.key();
        let h = self.hash(key);
        let Some(encoded) = encode(h.tag(), node.ptr) else {
            log::warn!("key index disabled: a node address does not fit 51 bits");
            self.disabled.store(true, Ordering::Release);
            return;
        };
        let mut keys = self.shards[h.shard()].0.lock();
        // SAFETY: under the shard lock the table cannot be replaced (growing takes every shard
        // lock), so `current` names the table `table` holds an `Arc` of, alive until replaced;
        // the lock orders this load after the store that published it.
        let t = unsafe { &*self.current.load(Ordering::Relaxed) };
        let mut i = h.start(t.slots.len());
        loop {
            let mut slot = t.slots[i].load(Ordering::Acquire);
            if slot == 0 {
                match t.slots[i].compare_exchange(0, encoded, Ordering::Release, Ordering::Acquire)
                {
                    Ok(_) => {
                        *keys += 1;
                        // Each shard stays below 3/4 of its share of the slots, so the table
                        // stays below 3/4 full and every probe meets an empty slot.
                        let slots = t.slots.len();
                        let grow = *keys * SHARDS * 4 > slots * 3;
                        // `t` is not used past the lock: a concurrent grow may free it.
                        drop(keys);
                        if grow {
                            self.grow(slots);
                        }
                        return;
                    }
                    // A writer of another shard claimed it first.
                    Err(now) => slot = now,
                }
            }
            if tag_of(slot) == h.tag() {
                // SAFETY: occupied slots hold nodes of the owning list, alive as long as `&self`.
                let old = unsafe { NodeRef::from_ptr(node_of(slot)) };
                if old.key() == key {
                    if old.lsn() < node.lsn() && !crate::hooks::stale_key_index() {
                        // Only writers of this key's shard store to an occupied slot: no race.
                        t.slots[i].store(encoded, Ordering::Release);
                    }
                    return;
                }
            }
            i = t.next(i);
        }
    }

    /// Stops answering lookups until [`KeyIndex::build_from`] runs: a bulk load then appends
    /// without noting keys, and the index is built afterwards (in the background at open).
    pub(super) fn defer(&mut self) {
        *self.ready.get_mut() = false;
    }

    /// Whether lookups are answered (not deferred).
    pub(super) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Notes the newest node of every key of `first..` (the list's nodes in order) — concurrently
    /// with writers noting newer nodes (`note` keeps the newer of two) — then answers lookups.
    pub(super) fn build_from(&self, first: Option<NodeRef<'_>>, stop: &AtomicBool) -> bool {
        let mut n = first;
        let mut prev: Option<NodeRef<'_>> = None;
        let mut seen = 0u32;
        while let Some(node) = n {
            seen = seen.wrapping_add(1);
            if seen.is_multiple_of(4096) && stop.load(Ordering::Relaxed) {
                // Never ready: lookups go on answering "unknown" (the list is searched).
                return false;
            }
            if prev.is_none_or(|p| p.key() != node.key()) {
                self.note(node);
            }
            prev = Some(node);
            n = node.next();
        }
        // Release: the notes above happen before any lookup that sees `ready`.
        self.ready.store(true, Ordering::Release);
        true
    }

    /// [`KeyIndex::note`] for a node of a key not in the index yet, with exclusive access (a
    /// bulk load): no lock, no probe for an existing entry of the key.
    pub(super) fn note_new_exclusive(&mut self, node: NodeRef<'_>) {
        let h = self.hash(node.key());
        let Some(encoded) = encode(h.tag(), node.ptr) else {
            log::warn!("key index disabled: a node address does not fit 51 bits");
            *self.disabled.get_mut() = true;
            return;
        };
        let keys = self.shards[h.shard()].0.get_mut();
        *keys += 1;
        let grow = *keys * SHARDS * 4;
        let slots = {
            // SAFETY: exclusive access: no grow runs, so `current` is the table `table` holds.
            let t = unsafe { &**self.current.get_mut() };
            let mut i = h.start(t.slots.len());
            while t.slots[i].load(Ordering::Relaxed) != 0 {
                debug_assert!(
                    tag_of(t.slots[i].load(Ordering::Relaxed)) != h.tag()
                        // SAFETY: as in `note`.
                        || unsafe { NodeRef::from_ptr(node_of(t.slots[i].load(Ordering::Relaxed))) }
                            .key()
                            != node.key(),
                    "note_new_exclusive of a key already in the index"
                );
                i = t.next(i);
            }
            // Release for uniformity: readers come after the exclusive access ends anyway.
            t.slots[i].store(encoded, Ordering::Release);
            if grow <= t.slots.len() * 3 {
                return;
            }
            t.slots.len()
        };
        self.grow(slots);
    }

    /// Grows the table by half unless another writer already grew it past `slots`: it is then
    /// between half and three quarters full (8 bytes a slot: 10.7 to 16 bytes per key; doubling
    /// left it between 3/8 and 3/4, up to 21 bytes per key).
    #[cold]
    fn grow(&self, slots: usize) {
        self.resize(slots + 1, slots + slots / 2, true);
    }

    /// Makes room for `keys` keys without growing (a bulk load sizes the table once instead of
    /// growing it, and rehashing every key, a dozen times): 4/3 slots per key, plus room for
    /// the spread of keys over shards — each shard grows the table past 3/4 of its share, and
    /// the fullest of [`SHARDS`] shards holds fewer than six standard deviations (`sqrt` of its
    /// mean) above the mean but with a probability of about 1e-7 — so at 8 M keys the table is
    /// 74 % full (10.8 bytes per key; the power of two before took 16.8).
    pub(super) fn reserve(&self, keys: usize) {
        let per_shard = keys as f64 / SHARDS as f64;
        let fullest = per_shard + 6.0 * per_shard.sqrt();
        let slots = (fullest * SHARDS as f64 * 4.0 / 3.0).ceil() as usize + 1;
        self.resize(slots.max(FIRST_SLOTS), slots.max(FIRST_SLOTS), false);
    }

    /// Replaces the table with one of `to` slots if it has fewer than `at_least` slots, and with
    /// `populate` faults its memory in first. A growing table is filled at once, here; a table
    /// reserved for a bulk load is not: it fills as the key index is built, in the background
    /// after an open, and faulting it in here would put the kernel's zeroing of it on the
    /// open's path.
    fn resize(&self, at_least: usize, to: usize, populate: bool) {
        let guards: Vec<_> = self.shards.iter().map(|s| s.0.lock()).collect();
        // SAFETY: every shard lock is held: no other grower replaces the table, so `current`
        // names the one `table` holds.
        let old = unsafe { &*self.current.load(Ordering::Relaxed) };
        if old.slots.len() >= at_least || to <= old.slots.len() {
            return;
        }
        let mut new = Table::with_slots(to);
        let n = new.slots.len();
        let bytes = std::mem::size_of_val(&*new.slots);
        if populate && bytes >= crate::hugemem::HUGE_PAGE {
            // Its pages are faulted in at once rather than one at a time as the loop below first
            // reads and then writes each slot (a read maps the shared zero page, the write
            // replaces it and flushes the other cores' TLBs: 6 % of a sequential load's time).
            // SAFETY: the slice is the new table's allocation, alive for the call.
            unsafe { crate::hugemem::populate_write(new.slots.as_mut_ptr().cast(), bytes) };
        }
        // Rehashing reads every key's node and writes a random slot of the new table: two cache
        // misses per key, independent from key to key. A pipeline keeps them in flight: the node
        // of the slot NODE_AHEAD places on is prefetched, the key SLOT_AHEAD places on is hashed
        // and its new slot prefetched, and the key at hand is placed.
        const NODE_AHEAD: usize = 32;
        const SLOT_AHEAD: usize = 8;
        let olds = &old.slots[..];
        let len = olds.len();
        let new_base = new.slots.as_ptr();
        let node_at = |j: usize| {
            let slot = olds[j].load(Ordering::Relaxed);
            (slot != 0).then(|| (slot, node_of(slot)))
        };
        // The slot at `j` and where its probe starts in the new table (0: empty).
        let stage = |j: usize| match node_at(j) {
            Some((slot, node)) => {
                // SAFETY: as in `note`.
                let key = unsafe { NodeRef::from_ptr(node) }.key();
                let start = self.hash(key).start(n);
                prefetch(new_base.wrapping_add(start).cast());
                (slot, start)
            }
            None => (0, 0),
        };
        for j in 0..NODE_AHEAD.min(len) {
            if let Some((_, node)) = node_at(j) {
                prefetch_key(node);
            }
        }
        let mut ring = [(0u64, 0usize); SLOT_AHEAD];
        for (j, r) in ring.iter_mut().enumerate().take(len) {
            *r = stage(j);
        }
        for j in 0..len {
            if j + NODE_AHEAD < len {
                if let Some((_, node)) = node_at(j + NODE_AHEAD) {
                    prefetch_key(node);
                }
            }
            let (slot, mut i) = ring[j % SLOT_AHEAD];
            if j + SLOT_AHEAD < len {
                ring[j % SLOT_AHEAD] = stage(j + SLOT_AHEAD);
            }
            if slot == 0 {
                continue;
            }
            // `&mut` access: the new table is not published yet.
            while *new.slots[i].get_mut() != 0 {
                i = new.next(i);
            }
            *new.slots[i].get_mut() = slot;
        }
        // The slots written above are visible to whoever loads the new pointer (`Rcu::store`
        // swaps it with Release, readers load it with Acquire; writers read `current` under a
        // shard lock, released below). The old table is retired, not freed: readers that
        // loaded it may still probe it.
        let new = Arc::new(new);
        self.current
            .store(Arc::as_ptr(&new).cast_mut(), Ordering::Relaxed);
        self.table.store(new);
        drop(guards);
    }

    /// Asks for the cache line of the slot where `key`'s probe starts: a commit asks before its
    /// serialised step, so that noting its key after the insert finds the line in cache (a new
    /// key's slot is a cache miss: the table is large and the hash spreads keys over it).
    pub(super) fn prefetch(&self, key: &[u8]) {
        let h = self.hash(key);
        let section = rcu::enter();
        let t = self.table.load(&section);
        prefetch(t.slots.as_ptr().wrapping_add(h.start(t.slots.len())).cast());
    }

    /// The newest node recorded for `key`: `Some(None)` when the key has none, `None` when the
    /// index cannot tell (disabled; the caller searches the list).
    pub(super) fn newest(&self, key: &[u8]) -> Option<Option<NonNull<Node>>> {
        // Acquire: once ready, every note of the build happened before this lookup.
        if !self.ready.load(Ordering::Acquire) || self.disabled.load(Ordering::Relaxed) {
            return None;
        }
        let h = self.hash(key);
        let section = rcu::enter();
        let t = self.table.load(&section);
        let mut i = h.start(t.slots.len());
        loop {
            let slot = t.slots[i].load(Ordering::Acquire);
            if slot == 0 {
                return Some(None);
            }
            if tag_of(slot) == h.tag() {
                let node = node_of(slot);
                prefetch_value(node);
                // SAFETY: as in `note`.
                if unsafe { NodeRef::from_ptr(node) }.key() == key {
                    return Some(Some(node));
                }
            }
            i = t.next(i);
        }
    }

    /// Bytes of the current table (a replaced one lives only while a reader still probes it).
    pub(super) fn bytes(&self) -> usize {
        let section = rcu::enter();
        self.table.load(&section).slots.len() * size_of::<AtomicU64>()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::super::SkipList;
    use super::FIRST_SLOTS;

    fn key(i: u64) -> [u8; 8] {
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes()
    }

    /// Many keys (the table grows several times), several versions each, inserted out of order:
    /// the index names each key's newest node, and no other key.
    #[test]
    fn newest_after_growth_and_overwrites() {
        let list = SkipList::new();
        let n = 20 * FIRST_SLOTS as u64;
        let mut newest = HashMap::new();
        for round in [2u64, 0, 3, 1] {
            for i in 0..n {
                let lsn = round * n + i + 1;
                list.insert(&key(i), lsn, Some(&lsn.to_le_bytes()), 0);
                let e = newest.entry(i).or_insert(0);
                *e = (*e).max(lsn);
            }
        }
        for (i, lsn) in &newest {
            let node = list.newest(&key(*i)).expect("every inserted key is found");
            assert_eq!(node.key(), key(*i));
            assert_eq!(node.lsn(), *lsn, "key {i}");
        }
        for i in n..n + 1000 {
            assert!(list.newest(&key(i)).is_none(), "absent key {i} found");
        }
        let slots = list.key_index_bytes() / 8;
        assert!(slots >= n as usize * 4 / 3, "{slots} slots for {n} keys");
        // Grown by half at a time from 1,024 slots: never more than twice the keys.
        assert!(slots <= 2 * n as usize, "{slots} slots for {n} keys");
    }

    /// A table sized for a bulk load holds its keys without growing, at about 4/3 slots per key
    /// (not a power of two), and probes that run past the last slot wrap around to the first.
    #[test]
    fn a_reserved_table_holds_its_keys_without_growing() {
        let n = 100_003u64;
        let list = SkipList::new();
        list.reserve_keys(n as usize);
        let reserved = list.key_index_bytes();
        let slots = reserved / 8;
        assert!(
            slots > n as usize * 4 / 3 && slots < n as usize * 8 / 5,
            "{slots} slots for {n} keys"
        );
        for i in 0..n {
            list.insert(&key(i), i + 1, Some(b"v"), 0);
        }
        assert_eq!(list.key_index_bytes(), reserved, "the table did not grow");
        for i in 0..n {
            let node = list.newest(&key(i)).expect("every inserted key is found");
            assert_eq!(node.lsn(), i + 1, "key {i}");
        }
        for i in n..n + 1000 {
            assert!(list.newest(&key(i)).is_none(), "absent key {i} found");
        }
        // Every start is in the table, whatever the hash; the slot after the last is the first.
        let section = crate::rcu::enter();
        let t = list.keys.table.load(&section);
        let len = t.slots.len();
        for h in [
            0,
            1,
            u64::MAX,
            1 << 40,
            0xFFFF_FF00_0000_0000,
            0x0000_00FF_FFFF_FFFF,
        ] {
            assert!(super::Hash(h).start(len) < len, "{h:#x}");
        }
        assert_eq!(super::Hash(0x0000_00FF_FFFF_FFFF).start(len), len - 1);
        assert_eq!(t.next(len - 1), 0);
        assert_eq!(t.next(0), 1);
    }

    /// A deferred index (bulk load without notes) answers through list searches, is built while a
    /// writer inserts newer versions of the same keys, and then names every key's newest node.
    #[test]
    fn deferred_index_built_beside_writers() {
        let mut list = SkipList::new();
        list.defer_key_index();
        let n = 5 * FIRST_SLOTS as u64;
        let mut keys: Vec<[u8; 8]> = (0..n).map(key).collect();
        keys.sort_unstable();
        for (i, k) in keys.iter().enumerate() {
            list.append_sorted(k, 10 + i as u64 % 7, Some(b"old"), 0);
        }
        assert!(list.key_index_deferred());
        // Deferred: still right, through searches.
        assert_eq!(list.newest(&keys[3]).map(|n| n.lsn()), Some(13));
        std::thread::scope(|s| {
            let list = &list;
            let keys = &keys;
            s.spawn(move || {
                for (i, k) in keys.iter().enumerate().step_by(3) {
                    list.insert(k, 1000 + i as u64, Some(b"new"), 0);
                }
            });
            s.spawn(move || list.build_key_index());
        });
        assert!(!list.key_index_deferred());
        for (i, k) in keys.iter().enumerate() {
            let want = if i % 3 == 0 {
                1000 + i as u64
            } else {
                10 + i as u64 % 7
            };
            // Through the index now: `SkipList::newest` asks it first.
            assert!(
                list.keys.newest(k).flatten().is_some(),
                "key {i} in the index"
            );
            assert_eq!(list.newest(k).map(|n| n.lsn()), Some(want), "key {i}");
        }
    }

    /// A build given up (a close stops it) leaves the index deferred and the list readable; a
    /// later build completes it.
    #[test]
    fn a_stopped_build_leaves_the_index_deferred_and_the_list_readable() {
        let mut list = SkipList::new();
        list.defer_key_index();
        let n = 3 * 4096u64;
        let mut keys: Vec<[u8; 8]> = (0..n).map(key).collect();
        keys.sort_unstable();
        for (i, k) in keys.iter().enumerate() {
            list.append_sorted(k, 1 + i as u64, Some(b"v"), 0);
        }
        // Stopped before it starts: given up at its first check, never ready.
        assert!(!list.build_key_index_until(&std::sync::atomic::AtomicBool::new(true)));
        assert!(list.key_index_deferred());
        // Reads search the list meanwhile.
        assert_eq!(list.newest(&keys[4097]).map(|n| n.lsn()), Some(4098));
        // Not stopped: built.
        assert!(list.build_key_index_until(&std::sync::atomic::AtomicBool::new(false)));
        assert!(!list.key_index_deferred());
        assert_eq!(list.newest(&keys[4097]).map(|n| n.lsn()), Some(4098));
    }

    /// Writers insert while the table grows; a reader checks, for every key a writer announced
    /// (after inserting it), that the index finds a node at least as new as announced: the
    /// happens-before argument of the module docs, exercised.
    #[test]
    fn readers_see_every_announced_key_while_the_table_grows() {
        const WRITERS: u64 = 2;
        const PER: u64 = 30_000;
        let list = SkipList::new();
        let done: Vec<AtomicU64> = (0..WRITERS).map(|_| AtomicU64::new(0)).collect();
        std::thread::scope(|s| {
            for w in 0..WRITERS {
                let (list, done) = (&list, &done);
                s.spawn(move || {
                    for j in 0..PER {
                        let i = j * WRITERS + w;
                        // Two versions: the reader must find the second.
                        list.insert(&key(i), 2 * i + 1, Some(b"old"), 0);
                        list.insert(&key(i), 2 * i + 2, Some(b"new"), 0);
                        done[w as usize].store(j + 1, Ordering::Release);
                    }
                });
            }
            let (list, done) = (&list, &done);
            s.spawn(move || {
                let mut checked = 0u64;
                loop {
                    let mut finished = true;
                    for w in 0..WRITERS {
                        let upto = done[w as usize].load(Ordering::Acquire);
                        finished &= upto == PER;
                        // The last few announced keys of this writer, and one older one.
                        for j in upto.saturating_sub(4)..upto {
                            let i = j * WRITERS + w;
                            let node = list.newest(&key(i)).expect("announced key found");
                            assert_eq!(node.lsn(), 2 * i + 2, "key {i}");
                            assert_eq!(node.value(), Some(&b"new"[..]));
                            checked += 1;
                        }
                    }
                    if finished {
                        break;
                    }
                }
                assert!(checked > 0);
            });
        });
        for i in 0..WRITERS * PER {
            assert_eq!(list.newest(&key(i)).map(|n| n.lsn()), Some(2 * i + 2));
        }
    }
}
