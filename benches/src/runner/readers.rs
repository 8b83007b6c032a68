//! The timed loops of the reading workloads that are more than one call per operation: the full
//! scans (`scan`, `scanrev`) and readers at snapshots (`snapshot`, with its writer).
//!
//! The snapshot workload checks what the engine promises a snapshot is: the database as of one
//! point of the commit order, whole transactions only, fixed while the writer goes on, and never
//! older than a snapshot the same thread took before. The writer commits transactions that each
//! overwrite one *group* of [`GROUP`] adjacent keys, all with the transaction's number as their
//! version (the preload is version 1, the writer's transactions are 2, 3, …). A snapshot that
//! includes exactly the transactions up to `n` reads every group `g` at the last transaction
//! `s ≤ n` that wrote `g`; so every group read gives `s ≤ n < next(s)`, where `next(s)` is the
//! writer's next transaction on the same group (published by the writer once committed; not yet
//! published = unbounded, which only weakens the check). A snapshot is consistent when the
//! intersection of these intervals is not empty; a thread's snapshots are in order when a
//! non-decreasing choice of `n` exists (greedy: the running maximum of the lower bounds stays
//! below each upper bound).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use super::{Ctx, ThreadOut};
use crate::engine::{EResult, Engine, SnapView};
use crate::keys::{Codec, Rng};

/// Keys per group: each writer transaction overwrites one group.
pub const GROUP: u64 = 4;
/// Groups read by gets per snapshot.
pub const GETS_PER_SNAPSHOT: u64 = 4;
/// Groups read by one short scan per snapshot.
pub const SCAN_GROUPS: u64 = 2;
/// Entries per latency sample of the full scans.
const BLOCK: u64 = 1024;

const CHUNK_BITS: u32 = 20;
const CHUNK: usize = 1 << CHUNK_BITS;
const CHUNKS: usize = 1 << (32 - CHUNK_BITS);

/// What the writer of the snapshot workload publishes for the readers' checks.
pub struct SnapShared {
    /// Keys per group (fewer than [`GROUP`] only for a key space that small).
    pub group: u64,
    /// Groups: keys `g * group .. (g + 1) * group` for `g < groups`.
    pub groups: u64,
    /// Per group, the writer's first transaction on it (0: none published yet).
    first: Box<[AtomicU32]>,
    /// Per writer transaction `s`, the writer's next transaction on the same group (0: none
    /// published yet), in lazily allocated chunks.
    next: Box<[OnceLock<Box<[AtomicU32]>>]>,
}

impl SnapShared {
    /// Groups over a key space of `keys` keys.
    pub fn new(keys: u64) -> SnapShared {
        let group = GROUP.min(keys).max(1);
        let groups = keys / group;
        SnapShared {
            group,
            groups,
            first: (0..groups).map(|_| AtomicU32::new(0)).collect(),
            next: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
        }
    }

    fn chunk(&self, s: u32) -> &[AtomicU32] {
        self.next[(s >> CHUNK_BITS) as usize]
            .get_or_init(|| (0..CHUNK).map(|_| AtomicU32::new(0)).collect())
    }

    /// The writer's next transaction on the group that transaction (version) `s` wrote, 0 if
    /// none is published yet.
    fn next_of(&self, g: u64, s: u32) -> u32 {
        if s <= 1 {
            return self.first[g as usize].load(Ordering::Acquire);
        }
        match self.next[(s >> CHUNK_BITS) as usize].get() {
            Some(c) => c[(s as usize) & (CHUNK - 1)].load(Ordering::Acquire),
            None => 0,
        }
    }

    /// Publishes that transaction `s` on group `g` followed `prev` (1: the preload).
    fn publish(&self, g: u64, prev: u32, s: u32) {
        if prev <= 1 {
            self.first[g as usize].store(s, Ordering::Release);
        } else {
            self.chunk(prev)[(prev as usize) & (CHUNK - 1)].store(s, Ordering::Release);
        }
    }

    /// The version every key reads back with after the run, given the writer's last
    /// transaction per group.
    pub fn versions(&self, keys: u64, last: &[u32]) -> Vec<u32> {
        (0..keys)
            .map(|idx| {
                let g = idx / self.group;
                last.get(g as usize).copied().unwrap_or(1)
            })
            .collect()
    }
}

/// What a writer thread did.
pub struct WriterOut {
    /// Version of every key at the end (index = key index).
    pub versions: Vec<u32>,
    /// Puts committed.
    pub puts: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Key + value bytes put.
    pub bytes: u64,
    /// The error that stopped it.
    pub error: Option<crate::engine::EngineError>,
    /// CPU time of the thread.
    pub cpu: std::time::Duration,
}

/// The writer of `snapshot`: transactions of one group each, until `stop`.
pub fn snapshot_writer(
    engine: &dyn Engine,
    codec: &Codec,
    keys: u64,
    shared: &SnapShared,
    stop: &AtomicBool,
) -> WriterOut {
    let mut last = vec![1u32; shared.groups as usize];
    let mut rng = Rng::new(0x5a5a);
    let group = shared.group as usize;
    let mut kbufs: Vec<Vec<u8>> = (0..group).map(|_| codec.key_buf()).collect();
    let mut vbufs: Vec<Vec<u8>> = vec![Vec::new(); group];
    let kv = (codec.key_size() + codec.value_size()) as u64;
    let mut out = WriterOut {
        versions: Vec::new(),
        puts: 0,
        commits: 0,
        bytes: 0,
        error: None,
        cpu: std::time::Duration::ZERO,
    };
    let mut txn: u32 = 1;
    while shared.groups > 0 && !stop.load(Ordering::Relaxed) && txn < u32::MAX {
        let g = rng.below(shared.groups);
        txn += 1;
        for i in 0..group {
            let idx = g * shared.group + i as u64;
            codec.set_key(&mut kbufs[i], idx);
            codec.fill_value(&mut vbufs[i], idx, txn);
        }
        let items: Vec<(&[u8], &[u8])> = kbufs
            .iter()
            .zip(&vbufs)
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        if let Err(e) = engine.put_batch(&items) {
            out.error = Some(e);
            break;
        }
        shared.publish(g, last[g as usize], txn);
        last[g as usize] = txn;
        out.commits += 1;
        out.puts += group as u64;
        out.bytes += kv * group as u64;
    }
    out.versions = shared.versions(keys, &last);
    out
}

/// The snapshot interval check: `n` must satisfy `lo <= n < hi`.
#[derive(Clone, Copy, Debug)]
struct Interval {
    lo: u32,
    hi: u32,
}

impl Interval {
    fn new() -> Interval {
        Interval {
            lo: 0,
            hi: u32::MAX,
        }
    }

    /// Group `g` read at version `s`.
    fn constrain(&mut self, shared: &SnapShared, g: u64, s: u32) {
        self.lo = self.lo.max(s);
        let next = shared.next_of(g, s);
        if next != 0 {
            self.hi = self.hi.min(next);
        }
    }
}

/// Reads the group `g` by gets at `snap`; returns its version, or what was wrong.
fn read_group(
    snap: &dyn SnapView,
    codec: &Codec,
    shared: &SnapShared,
    g: u64,
    key: &mut [u8],
    buf: &mut Vec<u8>,
) -> EResult<Result<u32, String>> {
    let mut version = None;
    for i in 0..shared.group {
        let idx = g * shared.group + i;
        codec.set_key(key, idx);
        if !snap.get(key, buf)? {
            return Ok(Err(format!("key {idx} is missing at a snapshot")));
        }
        let v = match codec.check_header(buf, idx) {
            Ok(v) => v,
            Err(e) => return Ok(Err(format!("key {idx} at a snapshot: {e}"))),
        };
        if let Err(e) = codec.check(buf, idx, v) {
            return Ok(Err(format!("key {idx} at a snapshot: {e}")));
        }
        match version {
            None => version = Some(v),
            Some(w) if w != v => {
                return Ok(Err(format!(
                    "group {g} reads as two transactions at one snapshot: key {} at version {w}, \
                     key {idx} at version {v} (a partial transaction is visible)",
                    g * shared.group
                )))
            }
            Some(_) => {}
        }
    }
    Ok(Ok(version.unwrap_or(1)))
}

/// One snapshot's reads and checks; returns keys read, or what was wrong.
#[allow(clippy::too_many_arguments)]
fn snapshot_session(
    snap: &dyn SnapView,
    codec: &Codec,
    shared: &SnapShared,
    rng: &mut Rng,
    key: &mut [u8],
    key2: &mut [u8],
    buf: &mut Vec<u8>,
    running_lo: &mut u32,
) -> EResult<Result<u64, String>> {
    let mut iv = Interval::new();
    let mut reads = 0;
    let mut first = None;
    for _ in 0..GETS_PER_SNAPSHOT {
        let g = rng.below(shared.groups);
        let s = match read_group(snap, codec, shared, g, key, buf)? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        reads += shared.group;
        iv.constrain(shared, g, s);
        first.get_or_insert((g, s));
    }
    // A short scan of SCAN_GROUPS groups: every key, in order, each group whole.
    let g0 = rng.below(shared.groups);
    let g1 = (g0 + SCAN_GROUPS).min(shared.groups);
    codec.set_key(key, g0 * shared.group);
    codec.set_key(key2, g1 * shared.group);
    let mut expect = g0 * shared.group;
    let mut group_version = 0u32;
    let mut bad: Option<String> = None;
    let mut seen = Vec::with_capacity(SCAN_GROUPS as usize);
    snap.scan_each(key, key2, &mut |k, v| {
        let idx = if k.len() == codec.key_size() {
            Codec::key_index(k)
        } else {
            u64::MAX
        };
        if idx != expect {
            bad = Some(format!(
                "a scan at a snapshot returned key {idx} where key {expect} was due"
            ));
            return false;
        }
        let ver = match codec.check_header(v, idx) {
            Ok(ver) => ver,
            Err(e) => {
                bad = Some(format!("key {idx} scanned at a snapshot: {e}"));
                return false;
            }
        };
        let g = idx / shared.group;
        if idx % shared.group == 0 {
            group_version = ver;
            seen.push((g, ver));
        } else if ver != group_version {
            bad = Some(format!(
                "group {g} scans as two transactions at one snapshot: version {group_version} \
                 then {ver} at key {idx} (a partial transaction is visible)"
            ));
            return false;
        }
        expect += 1;
        true
    })?;
    if let Some(b) = bad {
        return Ok(Err(b));
    }
    if expect != g1 * shared.group {
        return Ok(Err(format!(
            "a scan at a snapshot of keys {}..{} ended at key {expect}",
            g0 * shared.group,
            g1 * shared.group
        )));
    }
    reads += expect - g0 * shared.group;
    for (g, s) in seen {
        iv.constrain(shared, g, s);
    }
    // The first group again: a snapshot does not move while the writer goes on.
    if let Some((g, s)) = first {
        let again = match read_group(snap, codec, shared, g, key, buf)? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        reads += shared.group;
        if again != s {
            return Ok(Err(format!(
                "group {g} read at version {s}, then at version {again}, at the same snapshot"
            )));
        }
    }
    if iv.lo >= iv.hi {
        return Ok(Err(format!(
            "a snapshot is no prefix of the commit order: it holds transaction {} but misses \
             transaction {}, which came before",
            iv.lo, iv.hi
        )));
    }
    *running_lo = (*running_lo).max(iv.lo);
    if *running_lo >= iv.hi {
        return Ok(Err(format!(
            "a snapshot went back in time: an earlier snapshot of the same thread held \
             transaction {}, this one misses transaction {}",
            *running_lo, iv.hi
        )));
    }
    Ok(Ok(reads))
}

/// The readers of `snapshot`.
pub(super) fn snapshot_loop(ctx: &Ctx<'_>, t: usize, out: &mut ThreadOut) -> EResult<()> {
    let shared = ctx
        .snap
        .ok_or_else(|| crate::engine::EngineError("snapshot: no shared state".into()))?;
    let codec = ctx.codec;
    let mut rng = Rng::new(0x2000 + t as u64 * 104_729);
    let mut key = codec.key_buf();
    let mut key2 = codec.key_buf();
    let mut buf = Vec::with_capacity(codec.value_size());
    let mut running_lo = 0u32;
    let mut done = 0u64;
    let mut reported = 0u64;
    if shared.groups == 0 {
        return Ok(());
    }
    while done < ctx.per_thread {
        let start = Instant::now();
        let mut res = Ok(0);
        let cost = ctx.engine.with_snapshot(&mut |snap| {
            res = snapshot_session(
                snap,
                codec,
                shared,
                &mut rng,
                &mut key,
                &mut key2,
                &mut buf,
                &mut running_lo,
            )?;
            Ok(())
        })?;
        let now = Instant::now();
        out.snap_take.record(cost.take_ns);
        out.snap_drop.record(cost.drop_ns);
        match res {
            Ok(reads) => {
                out.hist
                    .record((now - start).as_nanos() as u64 / reads.max(1));
                done += reads;
            }
            Err(e) => {
                out.bad.get_or_insert(e);
                break;
            }
        }
        out.ops = done;
        if done - reported >= 1024 {
            ctx.clock
                .progress
                .fetch_add(done - reported, Ordering::Relaxed);
            reported = done;
        }
        if ctx.clock.done(now) {
            break;
        }
    }
    out.ops = done;
    Ok(())
}

/// The full scans: thread `t` starts at key `t * keys / threads` (forward) or below key
/// `keys - t * keys / threads` (reverse) and wraps around until it has read its share.
pub(super) fn scan_loop(
    ctx: &Ctx<'_>,
    t: usize,
    reverse: bool,
    out: &mut ThreadOut,
) -> EResult<()> {
    let codec = ctx.codec;
    let keys = ctx.keys;
    let offset = (t as u64 * keys) / ctx.threads as u64;
    // Forward: the next index due. Reverse: one above it (0: the pass is complete).
    let mut due = if reverse { keys - offset } else { offset };
    let mut bound = codec.key_buf();
    let mut first_pass = true;
    let mut done = 0u64;
    let mut reported = 0u64;
    while done < ctx.per_thread {
        let bounds = if !first_pass {
            (None, None)
        } else if reverse {
            codec.set_key(&mut bound, due);
            (None, (due < keys).then_some(bound.as_slice()))
        } else {
            codec.set_key(&mut bound, due);
            (Some(bound.as_slice()), None)
        };
        let mut stopped = false;
        let mut bad: Option<String> = None;
        let mut block_start = Instant::now();
        let mut in_block = 0u64;
        let mut first_seen = false;
        let scan_start = block_start;
        ctx.engine.scan_each(bounds, reverse, &mut |k, v| {
            if !first_seen {
                first_seen = true;
                out.first.record(scan_start.elapsed().as_nanos() as u64);
            }
            let idx = if k.len() == codec.key_size() {
                Codec::key_index(k)
            } else {
                u64::MAX
            };
            let want = if reverse { due.wrapping_sub(1) } else { due };
            if idx != want || (reverse && due == 0) || (!reverse && due >= keys) {
                bad = Some(format!(
                    "a {} scan returned key {idx} where {} was due",
                    if reverse { "reverse" } else { "forward" },
                    if (reverse && due == 0) || (!reverse && due >= keys) {
                        "the end".to_string()
                    } else {
                        format!("key {want}")
                    }
                ));
                return false;
            }
            match codec.check_header(v, idx) {
                Ok(1) => {}
                Ok(ver) => {
                    bad = Some(format!("key {idx} scanned: version {ver}, expected 1"));
                    return false;
                }
                Err(e) => {
                    bad = Some(format!("key {idx} scanned: {e}"));
                    return false;
                }
            }
            if reverse {
                due -= 1;
            } else {
                due += 1;
            }
            done += 1;
            in_block += 1;
            if in_block == BLOCK {
                let now = Instant::now();
                out.hist
                    .record((now - block_start).as_nanos() as u64 / BLOCK);
                block_start = now;
                in_block = 0;
                ctx.clock
                    .progress
                    .fetch_add(done - reported, Ordering::Relaxed);
                reported = done;
                if ctx.clock.done(now) {
                    stopped = true;
                    return false;
                }
            }
            if done >= ctx.per_thread {
                stopped = true;
                return false;
            }
            true
        })?;
        if let Some(per) = (block_start.elapsed().as_nanos() as u64).checked_div(in_block) {
            out.hist.record(per);
        }
        out.ops = done;
        if let Some(b) = bad {
            out.bad.get_or_insert(b);
            break;
        }
        let complete = if reverse { due == 0 } else { due == keys };
        if complete {
            out.scans += 1;
        }
        if stopped {
            break;
        }
        // The scan ended by itself: it must have reached the end of the key space.
        if !complete {
            out.bad.get_or_insert(format!(
                "a {} scan ended early: key {} was due",
                if reverse { "reverse" } else { "forward" },
                if reverse { due - 1 } else { due }
            ));
            break;
        }
        due = if reverse { keys } else { 0 };
        first_pass = false;
        if ctx.clock.done(Instant::now()) {
            break;
        }
    }
    out.ops = done;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicU64;

    use parking_lot::Mutex;

    use super::super::Clock;
    use super::*;
    use crate::args::Workload;
    use crate::engine::{EngineError, ScanBounds, SnapCost};

    /// An engine over a BTreeMap whose scans can lose a key, and whose "snapshots" are the map
    /// as it is (the tests set the state they read).
    #[derive(Default)]
    struct Fake {
        map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
        skip: Option<Vec<u8>>,
    }

    impl Fake {
        fn load(codec: &Codec, versions: &[u32]) -> Fake {
            let f = Fake::default();
            for (i, &v) in versions.iter().enumerate() {
                f.map
                    .lock()
                    .insert(codec.key(i as u64), codec.value(i as u64, v));
            }
            f
        }
    }

    impl SnapView for BTreeMap<Vec<u8>, Vec<u8>> {
        fn get(&self, key: &[u8], out: &mut Vec<u8>) -> EResult<bool> {
            Ok(match BTreeMap::get(self, key) {
                Some(v) => {
                    out.clone_from(v);
                    true
                }
                None => false,
            })
        }
        fn scan_each(
            &self,
            lo: &[u8],
            hi: &[u8],
            f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> EResult<u64> {
            let mut n = 0;
            for (k, v) in self.range(lo.to_vec()..hi.to_vec()) {
                n += 1;
                if !f(k, v) {
                    break;
                }
            }
            Ok(n)
        }
    }

    impl Engine for Fake {
        fn put(&self, key: &[u8], value: &[u8]) -> EResult<()> {
            self.map.lock().insert(key.to_vec(), value.to_vec());
            Ok(())
        }
        fn put_batch(&self, items: &[(&[u8], &[u8])]) -> EResult<()> {
            let mut m = self.map.lock();
            for (k, v) in items {
                m.insert(k.to_vec(), v.to_vec());
            }
            Ok(())
        }
        fn get(&self, key: &[u8], out: &mut Vec<u8>) -> EResult<bool> {
            SnapView::get(&*self.map.lock(), key, out)
        }
        fn scan(&self, _: &[u8], _: &[u8], _: usize) -> EResult<usize> {
            Err(EngineError("unused".into()))
        }
        fn scan_each(
            &self,
            (lo, hi): ScanBounds<'_>,
            reverse: bool,
            f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> EResult<u64> {
            let m = self.map.lock();
            let items: Vec<_> = m
                .iter()
                .filter(|(k, _)| lo.is_none_or(|l| k.as_slice() >= l))
                .filter(|(k, _)| hi.is_none_or(|h| k.as_slice() < h))
                .filter(|(k, _)| self.skip.as_ref() != Some(k))
                .collect();
            let mut n = 0;
            let mut each = |(k, v): (&Vec<u8>, &Vec<u8>)| {
                n += 1;
                f(k, v)
            };
            if reverse {
                for e in items.into_iter().rev() {
                    if !each(e) {
                        break;
                    }
                }
            } else {
                for e in items {
                    if !each(e) {
                        break;
                    }
                }
            }
            Ok(n)
        }
        fn with_snapshot(
            &self,
            f: &mut dyn FnMut(&dyn SnapView) -> EResult<()>,
        ) -> EResult<SnapCost> {
            f(&*self.map.lock())?;
            Ok(SnapCost::default())
        }
        fn close(self: Box<Self>) -> EResult<()> {
            Ok(())
        }
    }

    fn run_loop(
        engine: &dyn Engine,
        workload: Workload,
        keys: u64,
        threads: usize,
        per_thread: u64,
        snap: Option<&SnapShared>,
    ) -> Vec<ThreadOut> {
        let codec = Codec::new(16, 100);
        let clock = Clock::new(Instant::now(), None);
        let next_insert = AtomicU64::new(keys);
        (0..threads)
            .map(|t| {
                let ctx = Ctx {
                    engine,
                    codec: &codec,
                    workload,
                    threads,
                    keys,
                    batch: 1,
                    per_thread,
                    clock: &clock,
                    zipf: None,
                    next_insert: &next_insert,
                    snap,
                    latency_every: 1,
                };
                let mut out = ThreadOut::default();
                super::super::worker_loop(&ctx, t, &mut out).unwrap();
                out
            })
            .collect()
    }

    #[test]
    fn full_scans_check_every_key() {
        let codec = Codec::new(16, 100);
        for workload in [Workload::Scan, Workload::ScanRev] {
            let good = Fake::load(&codec, &[1; 50]);
            for out in run_loop(&good, workload, 50, 3, 120, None) {
                assert_eq!(out.bad, None, "{workload}");
                assert_eq!(out.ops, 120);
                assert!(out.scans >= 2, "{workload}: {}", out.scans);
            }
            let mut lossy = Fake::load(&codec, &[1; 50]);
            lossy.skip = Some(codec.key(17));
            let outs = run_loop(&lossy, workload, 50, 1, 100, None);
            let bad = outs[0].bad.as_deref().unwrap_or_default();
            assert!(bad.contains("key 17"), "{workload}: {bad:?}");
            let mut versions = [1; 50];
            versions[30] = 2;
            let stale = Fake::load(&codec, &versions);
            let outs = run_loop(&stale, workload, 50, 1, 100, None);
            let bad = outs[0].bad.as_deref().unwrap_or_default();
            assert!(bad.contains("version 2"), "{workload}: {bad:?}");
        }
    }

    #[test]
    fn snapshot_readers_catch_what_no_snapshot_shows() {
        let codec = Codec::new(16, 100);
        // 2 groups; the writer's transactions: 2 on group 0, 3 on group 1, 4 on group 0.
        let shared = SnapShared::new(8);
        shared.publish(0, 1, 2);
        shared.publish(1, 1, 3);
        shared.publish(0, 2, 4);
        let run = |versions: &[u32]| {
            let engine = Fake::load(&codec, versions);
            let outs = run_loop(&engine, Workload::Snapshot, 8, 1, 200, Some(&shared));
            outs.into_iter().next().unwrap()
        };
        // After transaction 3: consistent.
        let ok = run(&[2, 2, 2, 2, 3, 3, 3, 3]);
        assert_eq!(ok.bad, None);
        assert!(ok.ops >= 200 && ok.snap_take.count() > 0);
        // Half of transaction 4.
        let bad = run(&[4, 4, 2, 2, 3, 3, 3, 3]).bad.unwrap_or_default();
        assert!(bad.contains("partial transaction"), "{bad}");
        // Transaction 3 without transaction 2, which came before it.
        let bad = run(&[1, 1, 1, 1, 3, 3, 3, 3]).bad.unwrap_or_default();
        assert!(bad.contains("no prefix"), "{bad}");
    }

    #[test]
    fn intervals_find_inconsistent_snapshots() {
        let shared = SnapShared::new(16); // 4 groups
        assert_eq!((shared.group, shared.groups), (4, 4));
        // Writer: txn 2 on group 0, txn 3 on group 1, txn 4 on group 0.
        shared.publish(0, 1, 2);
        shared.publish(1, 1, 3);
        shared.publish(0, 2, 4);
        assert_eq!(shared.next_of(0, 1), 2);
        assert_eq!(shared.next_of(0, 2), 4);
        assert_eq!(shared.next_of(0, 4), 0);
        assert_eq!(shared.next_of(2, 1), 0);
        // Consistent: group 0 at 2, group 1 at 3 (n = 3).
        let mut iv = Interval::new();
        iv.constrain(&shared, 0, 2);
        iv.constrain(&shared, 1, 3);
        assert!(iv.lo < iv.hi);
        // Inconsistent: group 0 at 1 (before txn 2) with group 1 at 3 (after txn 2).
        let mut iv = Interval::new();
        iv.constrain(&shared, 0, 1);
        iv.constrain(&shared, 1, 3);
        assert!(iv.lo >= iv.hi, "{iv:?}");
        assert_eq!(shared.versions(17, &[4, 3, 1, 1]), {
            let mut v = vec![4, 4, 4, 4, 3, 3, 3, 3];
            v.extend([1; 9]);
            v
        });
    }

    #[test]
    fn tiny_key_spaces_have_one_group() {
        let s = SnapShared::new(3);
        assert_eq!((s.group, s.groups), (3, 1));
        let s = SnapShared::new(9);
        assert_eq!((s.group, s.groups), (4, 2));
    }
}
