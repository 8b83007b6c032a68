//! Trimming history: build the next generation of the index without the versions that no
//! retention policy and no live snapshot needs, while writers go on, and swap it in.
//!
//! The protocol (writers never wait for it; readers never notice it):
//! 1. The trim computes the *cap* — the oldest LSN anything may still read at: the oldest live
//!    snapshot, the visible LSN and (with a log) the durable LSN — and from it and the policy the
//!    new floor and the plan of what each key keeps. Every LSN assigned from now on is above the
//!    cap, so the plan keeps every version written from here on. Under
//!    [`crate::Retention::NewerThan`] with a log, the new floor is recorded durably (in the
//!    MANIFEST, by the caller's [`RecordFloor`]) before anything else: recovery cannot always
//!    derive it again (the commit times of the versions a checkpoint holds are gone with the log
//!    below it), and no read may be refused with a floor a crash can take back.
//! 2. It publishes an empty generation as `next`. From then on, every writer that finds `next`
//!    inserts its versions there as well as into the current generation (inserts are idempotent:
//!    a version already present is left alone).
//! 3. It reads the next LSN to be assigned, `L0`, under the log's state lock, and waits until
//!    every LSN below `L0` is visible: every writer that might have missed `next` has then
//!    inserted into the current generation (inserts precede publication), and every later writer
//!    sees `next` (its LSN was assigned after `next` was published).
//! 4. It copies the versions the plan keeps from the current generation into `next`.
//! 5. It swaps: `next` becomes current (with the new floor), then `next` is cleared. Readers and
//!    scans that hold the old generation keep reading it, complete; it is freed with its last
//!    reader. The swap is made under the retention lock, and only if no policy was set since
//!    step 1 ([`crate::Db::set_retention`] installs one under that lock): otherwise `next` is
//!    cleared and dropped, and the trim starts again from step 1 under the new policy. (A plan
//!    of the old policy swapped in after the new one took effect broke the new one's promise: a
//!    `LastVersions` trim that copied while `All` was set raised the floor after
//!    `set_retention(All)` returned.)

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::retention::Plan;
use super::{Gen, Lsn, Versions, TRIMMED_BELOW};
use crate::skiplist::SkipList;
use crate::values::{Located, IN_SEGMENT};

/// State of the trimmer thread's wake-ups.
#[derive(Debug, Default)]
pub(crate) struct TrimSignal {
    pub(crate) closing: bool,
    pub(crate) requested: bool,
    /// A background checkpoint is due (the same thread runs it).
    pub(crate) checkpoint: bool,
}

/// What a trim needs from the database around the index.
pub(crate) trait TrimHost {
    fn versions(&self) -> &Versions;
    /// The visible LSN.
    fn visible(&self) -> Lsn;
    /// The durable LSN, when the database has a log.
    fn durable(&self) -> Option<Lsn>;
    /// The next LSN to be assigned, read under the lock that assigns LSNs.
    fn next_lsn(&self) -> Lsn;
    /// Waits until `lsn` is visible; false when the database closes or is poisoned first.
    fn wait_visible(&self, lsn: Lsn) -> bool;
    /// Now, in ns since the Unix epoch.
    fn now_ns(&self) -> u64;
}

/// Records a new trim floor durably before a trim publishes it (see the module docs): called
/// with the floor under `Retention::NewerThan` on a database with a log; an error stops the trim
/// with nothing published.
pub(crate) type RecordFloor<'a> = &'a mut dyn FnMut(Lsn) -> crate::Result<()>;

/// What one trim did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TrimReport {
    pub(crate) floor: Lsn,
    pub(crate) versions_before: usize,
    pub(crate) versions_after: usize,
}

/// Copies the versions of `from` that `plan` keeps into `into` (which may be shared with
/// writers: inserts are concurrent and idempotent). Returns the number of kept versions that are
/// garbage for the next trim (superseded versions and tombstones), and the highest LSN of a
/// version marked [`TRIMMED_BELOW`] (0 if none): the new floor is at least that.
///
/// With `convert`, a kept version whose value `convert` located in the log is copied as a
/// reference to it ([`IN_SEGMENT`]) instead of with its bytes.
pub(crate) fn copy_kept(
    from: &SkipList,
    into: &SkipList,
    plan: Plan,
    convert: Option<&Located>,
) -> (usize, Lsn, Vec<u64>) {
    let mut located = convert.map(Located::cursor);
    let mut segments = std::collections::BTreeSet::new();
    let mut garbage = 0;
    let mut marked = 0;
    let mut versions: Vec<(Lsn, bool)> = Vec::new();
    let mut nodes: Vec<crate::skiplist::NodeRef<'_>> = Vec::new();
    let mut cur = from.first();
    while let Some(first) = cur {
        let key = first.key();
        versions.clear();
        nodes.clear();
        let mut n = Some(first);
        while let Some(m) = n.filter(|m| m.key() == key) {
            versions.push((m.lsn(), m.value().is_none()));
            nodes.push(m);
            n = m.next();
        }
        let after = n;
        let (keep, mark) = plan.keep(&versions);
        #[cfg(test)]
        tests::AFTER_PLAN.with(|f| {
            if let Some(f) = f.borrow_mut().as_mut() {
                f(key);
            }
        });
        // The nodes the plan was made from: a version a concurrent writer linked in between
        // since (out of LSN order, above the cap) is in `into` already and must not take the
        // place of one the plan keeps.
        for (i, &node) in nodes[..keep].iter().enumerate() {
            let flags = if mark && i + 1 == keep {
                TRIMMED_BELOW
            } else {
                0
            };
            let flags = flags | node.flags();
            if flags & TRIMMED_BELOW != 0 {
                marked = marked.max(node.lsn());
            }
            // A version whose value was located in the log: in memory, or on disk where value-log
            // garbage collection copied it from a segment about to go.
            let packed = match (&mut located, node.value()) {
                (Some(c), Some(v)) => {
                    let len = if flags & IN_SEGMENT == 0 {
                        v.len()
                    } else {
                        crate::values::unpack(v).len as usize
                    };
                    c.find(key, node.lsn(), len).and_then(crate::values::pack)
                }
                _ => None,
            };
            match packed {
                Some(p) => {
                    segments.insert(crate::values::unpack(&p).segment);
                    into.insert(key, node.lsn(), Some(&p), flags | IN_SEGMENT)
                }
                None => {
                    if let Some(v) = node.value().filter(|_| flags & IN_SEGMENT != 0) {
                        segments.insert(crate::values::unpack(v).segment);
                    }
                    into.insert(key, node.lsn(), node.value(), flags)
                }
            };
            if i > 0 || node.value().is_none() {
                garbage += 1;
            }
        }
        cur = after;
        #[cfg(test)]
        tests::AFTER_KEY.with(|f| {
            if let Some(f) = f.borrow_mut().as_mut() {
                f();
            }
        });
    }
    (garbage, marked, segments.into_iter().collect())
}

/// Runs one trim. Returns `Ok(None)` when the database closed (or was poisoned) first, and the
/// error of `record` when the new floor could not be recorded (nothing changed then).
pub(crate) fn trim(
    host: &dyn TrimHost,
    record: RecordFloor<'_>,
) -> crate::Result<Option<TrimReport>> {
    trim_converting(host, None, record)
}

/// [`trim`], and the versions whose values `convert` located in the log (durable: a checkpoint
/// holds them) keep references to them instead of their bytes.
///
/// A trim during which the retention policy changed is not swapped in: it starts again, planned
/// under the new policy (see [`Attempt::PolicyChanged`]).
pub(crate) fn trim_converting(
    host: &dyn TrimHost,
    convert: Option<&Located>,
    record: RecordFloor<'_>,
) -> crate::Result<Option<TrimReport>> {
    let mut abandoned = 0;
    loop {
        let exclusive = abandoned >= MAX_ABANDONED;
        match attempt(host, convert, &mut *record, exclusive)? {
            Attempt::Swapped(report) => return Ok(Some(report)),
            Attempt::Closed => return Ok(None),
            Attempt::PolicyChanged => {
                abandoned += 1;
                log::debug!("history trim abandoned ({abandoned} in a row): the retention policy changed; trimming again")
            }
        }
    }
}

/// Attempts of one trim abandoned in a row ([`Attempt::PolicyChanged`]) after which the next
/// holds policy changes off until it swaps ([`RetentionState::exclusive`]).
pub(crate) const MAX_ABANDONED: u32 = 3;

/// Holds policy changes off while it lives (see [`RetentionState::exclusive`]).
struct HoldPolicies<'a>(&'a Versions);

impl Drop for HoldPolicies<'_> {
    fn drop(&mut self) {
        let mut r = self.0.retention.lock();
        r.exclusive -= 1;
        if r.exclusive == 0 {
            self.0.retention_cv.notify_all();
        }
    }
}

/// How one attempt of [`trim_converting`] ended.
enum Attempt {
    Swapped(TrimReport),
    /// The database closed (or was poisoned) while it waited: nothing published.
    Closed,
    /// [`crate::Db::set_retention`] installed a policy after the plan was made: the next
    /// generation, built to the old policy's plan, was dropped instead of swapped in. Swapped in,
    /// it would apply the old policy after the new one took effect — a `LastVersions` plan
    /// raising the floor after `set_retention(All)` returned, refusing reads that were answered
    /// then. Dropping it loses nothing: every writer inserts into the current generation too.
    /// (A floor `record` wrote for the old plan stays in the MANIFEST: it was at most the cap
    /// when the old policy was in force, below the new policy's entry, and a restart refuses
    /// reads below it as it would had this trim finished just before the change.)
    PolicyChanged,
}

/// One trim: steps 1 to 5 of the module docs.
fn attempt(
    host: &dyn TrimHost,
    convert: Option<&Located>,
    record: RecordFloor<'_>,
    exclusive: bool,
) -> crate::Result<Attempt> {
    let v = host.versions();
    // 1. The cap and the plan, before anything else: every LSN assigned later is above the cap.
    let (floor, plan, newer_than, changes) = {
        let mut r = v.retention.lock();
        if exclusive {
            // No policy is being set (`set_retention` holds this lock across its commit), and
            // none will be until this attempt ends (`_hold`, below).
            r.exclusive += 1;
        }
        let snapshots = v.snapshots.lock();
        let mut cap = host.visible();
        if let Some(&oldest) = snapshots.keys().next() {
            if !crate::hooks::trim_ignores_snapshots() {
                cap = cap.min(oldest);
            }
        }
        if let Some(d) = host.durable() {
            cap = cap.min(d);
        }
        drop(snapshots);
        let old_floor = v.current().floor().max(r.pending.min(cap));
        let floor = r.trim_floor(host.now_ns(), cap, old_floor, &mut v.samples.lock());
        let newer_than = matches!(r.policy, crate::Retention::NewerThan(_));
        (floor, r.plan(floor, cap), newer_than, r.changes)
    };
    let _hold = exclusive.then(|| HoldPolicies(v));
    // The floor a restart cannot always recompute is durable before a read is refused with it
    // (it is at most the durable LSN: everything below it survives any crash). The other
    // policies' floors come back from the log, the policy entry or the checkpoint's marks.
    if newer_than && host.durable().is_some() && !crate::hooks::trim_forgets_newer_than_floor() {
        record(floor)?;
    }
    // 2. Publish the next generation for writers.
    let list = SkipList::new();
    list.reserve_keys(v.live_keys());
    let next = Arc::new(Gen::new(list, floor));
    v.register(&next);
    v.next.store(Some(next.clone()));
    // 3. Every LSN assigned before `next` was published is in the current generation.
    let l0 = host.next_lsn();
    if l0 > 1 && !host.wait_visible(l0 - 1) {
        v.next.store(None);
        return Ok(Attempt::Closed);
    }
    // 4. Copy what the plan keeps.
    let old = v.current();
    let before = old.list.len();
    let (garbage, marked, segments) = copy_kept(&old.list, &next.list, plan, convert);
    next.set_segments(segments);
    // A key's history trimmed below `marked` (LastVersions): reads below it are refused for
    // every key — a scan cannot report one key's trim — and the floor stays there across
    // restarts (recovery trims the same versions, see `Plan::keep`).
    next.floor.fetch_max(marked, Ordering::AcqRel);
    // 5. Swap, under the retention lock so that a concurrent policy change's floor is kept —
    // unless a policy was set since the plan: the plan is the old policy's.
    let due = {
        let r = v.retention.lock();
        if r.changes != changes {
            v.next.store(None);
            drop(r);
            next.list.release_reserve();
            return Ok(Attempt::PolicyChanged);
        }
        next.floor.fetch_max(old.floor(), Ordering::AcqRel);
        v.current.store(next.clone());
        v.next.store(None);
        // The garbage of the new generation: every version but each live key's newest. Not
        // the copy's count alone: writers that overwrote a key after the copy passed it put
        // superseded versions into `next` that the copy never saw. (An insert between the two
        // reads and the store below may go uncounted: one per concurrent writer at most.)
        let total = next.list.len().saturating_sub(next.list.live_keys());
        v.garbage.store(total, Ordering::Relaxed);
        // The threshold follows what the plan kept (see `Versions::next_trim_at`), not the
        // overwrites that raced the copy: those the next trim drops.
        let trim_at = v.next_trim_at(garbage, next.list.len());
        v.trim_at.store(trim_at, Ordering::Relaxed);
        v.trim_requested.store(false, Ordering::Release);
        total >= trim_at
    };
    if due {
        // Writers overwrote as much as a trim waits for while this one copied: another is due
        // now (no insert may come to ask for it).
        v.signal_background(false);
    }
    // The old generation lives on only for readers that still hold it: the memory its arena
    // reserved ahead of writers goes back now, not with its last reader.
    old.list.release_reserve();
    v.trims.fetch_add(1, Ordering::Relaxed);
    let report = TrimReport {
        floor: next.floor(),
        versions_before: before,
        versions_after: next.list.len(),
    };
    log::debug!(
        "trimmed history: floor {}, {} versions -> {}",
        report.floor,
        report.versions_before,
        report.versions_after
    );
    Ok(Attempt::Swapped(report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::retention::RetentionState;
    use crate::index::OpRef;
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::sync::atomic::AtomicU64;

    /// A test's pause point given a key.
    pub(super) type KeyHook = Box<dyn FnMut(&[u8])>;

    thread_local! {
        /// Runs after the copy passed each key (a writer that overwrites behind the copy).
        pub(super) static AFTER_KEY: RefCell<Option<Box<dyn FnMut()>>> = const { RefCell::new(None) };
        /// Test-only pause point: runs after the copy read a key's versions and planned what to
        /// keep, before it copies them (gets the key).
        pub(super) static AFTER_PLAN: RefCell<Option<KeyHook>> = const { RefCell::new(None) };
    }

    /// A database around the index: every assigned LSN is visible at once.
    struct Host {
        v: Arc<Versions>,
        last: Arc<AtomicU64>,
    }

    impl TrimHost for Host {
        fn versions(&self) -> &Versions {
            &self.v
        }
        fn visible(&self) -> Lsn {
            self.last.load(Ordering::SeqCst)
        }
        fn durable(&self) -> Option<Lsn> {
            None
        }
        fn next_lsn(&self) -> Lsn {
            self.last.load(Ordering::SeqCst) + 1
        }
        fn wait_visible(&self, _lsn: Lsn) -> bool {
            true
        }
        fn now_ns(&self) -> u64 {
            0
        }
    }

    fn put(v: &Versions, last: &AtomicU64, key: &[u8]) {
        let lsn = last.fetch_add(1, Ordering::SeqCst) + 1;
        v.insert(&[OpRef::Put(key, b"v")], lsn);
    }

    /// Overwrites that land behind the copy (in both generations, after the copy passed their
    /// key) count as garbage of the new generation, and when they reach the threshold another
    /// trim is asked for at once: with no writes after it, nothing else would ask, and their
    /// versions stayed in memory (a flaky `overwrites_do_not_grow_the_index` under load).
    #[test]
    fn overwrites_behind_the_copy_are_counted_and_trimmed_next() {
        let v = Arc::new(Versions::new(
            Gen::new(SkipList::new(), 0),
            RetentionState::new(crate::Retention::Snapshots),
            10,
        ));
        let last = Arc::new(AtomicU64::new(0));
        for k in 0..4u8 {
            put(&v, &last, &[k]);
        }
        let host = Host {
            v: v.clone(),
            last: last.clone(),
        };
        let (hv, hl) = (v.clone(), last.clone());
        let mut once = true;
        AFTER_KEY.with(|f| {
            *f.borrow_mut() = Some(Box::new(move || {
                if std::mem::take(&mut once) {
                    // The copy has passed key 0: overwrite it 20 times.
                    for _ in 0..20 {
                        put(&hv, &hl, &[0]);
                    }
                }
            }));
        });
        trim(&host, &mut |_| Ok(()))
            .expect("nothing to record")
            .expect("the trim runs");
        AFTER_KEY.with(|f| *f.borrow_mut() = None);
        assert_eq!(
            v.current().list.len(),
            24,
            "the overwrites reached the new generation"
        );
        assert_eq!(
            v.garbage.load(Ordering::Relaxed),
            20,
            "and count as its garbage"
        );
        assert!(
            std::mem::take(&mut v.trim_lock.lock().requested),
            "20 superseded versions, threshold 10: the next trim is asked for"
        );
        trim(&host, &mut |_| Ok(()))
            .expect("nothing to record")
            .expect("the trim runs");
        assert_eq!(
            v.current().list.len(),
            4,
            "only the newest of each key is left"
        );
        assert_eq!(v.garbage.load(Ordering::Relaxed), 0);
        assert!(!v.trim_lock.lock().requested, "nothing more to trim");
    }

    /// Two committers that got LSNs after the trim's L0 (so both also insert into `next`)
    /// insert versions of one key out of LSN order: LSN 5 is linked first (before the copy
    /// reaches the key), LSN 4 after the copy read the key's versions [5, 3] and planned to keep
    /// both (5 is above the floor, 3 is the newest at or below it). The copy then walks the list
    /// again to copy "the first two" and meets 5 and 4: version 3 is never copied into the new
    /// generation, which a snapshot at LSN 3 (live since before the trim) reads after the swap.
    #[test]
    fn out_of_order_inserts_during_the_copy_lose_a_kept_version() {
        let v = Arc::new(Versions::new(
            Gen::new(SkipList::new(), 0),
            RetentionState::new(crate::Retention::Snapshots),
            10,
        ));
        let last = Arc::new(AtomicU64::new(0));
        put(&v, &last, b"a"); // LSN 1
        put(&v, &last, b"b"); // LSN 2
        let lsn = last.fetch_add(1, Ordering::SeqCst) + 1; // LSN 3
        v.insert(&[OpRef::Put(b"k", b"old")], lsn);
        let snap = v.pin(|| last.load(Ordering::SeqCst));
        assert_eq!(snap, 3);
        let host = Host {
            v: v.clone(),
            last: last.clone(),
        };
        // The trim's cap and floor are 3 (the snapshot; the visible LSN) and its L0 is 4. Two
        // commits then take LSNs 4 and 5 (both find `next`): 5 inserts while the copy is at key
        // "a", 4 just after the copy planned key "k".
        let (hv, hl) = (v.clone(), last.clone());
        AFTER_PLAN.with(|f| {
            *f.borrow_mut() = Some(Box::new(move |key: &[u8]| {
                if key == b"a" {
                    hl.store(5, Ordering::SeqCst);
                    hv.insert(&[OpRef::Put(b"k", b"five")], 5);
                }
                if key == b"k" {
                    hv.insert(&[OpRef::Put(b"k", b"four")], 4);
                }
            }));
        });
        trim(&host, &mut |_| Ok(()))
            .expect("nothing to record")
            .expect("the trim runs");
        AFTER_PLAN.with(|f| *f.borrow_mut() = None);
        let versions: Vec<Lsn> = {
            let g = v.current();
            let mut out = Vec::new();
            let mut n = g.list.seek(b"k", Lsn::MAX);
            while let Some(m) = n.filter(|m| m.key() == b"k") {
                out.push(m.lsn());
                n = m.next();
            }
            out
        };
        let got = v
            .read_at(b"k", snap, crate::index::to_value)
            .expect("a snapshot read is never refused");
        assert_eq!(
            got.as_ref().map(|v| (v.as_bytes().to_vec(), v.lsn())),
            Some((b"old".to_vec(), 3)),
            "the snapshot at LSN 3 reads the version it sees; versions of k kept: {versions:?}"
        );
        v.unpin(snap);
    }

    /// The same race under `LastVersions(1)`: the copy marks the second node it meets — the
    /// racing writer's version 5, above the cap — as the oldest kept (`TRIMMED_BELOW`), and the
    /// new floor becomes 5: above the live snapshot at 4, whose reads are then refused.
    #[test]
    fn out_of_order_inserts_during_the_copy_raise_the_floor_past_a_snapshot() {
        let v = Arc::new(Versions::new(
            Gen::new(SkipList::new(), 0),
            RetentionState::new(crate::Retention::LastVersions(
                std::num::NonZeroU32::new(1).unwrap(),
            )),
            10,
        ));
        let last = Arc::new(AtomicU64::new(0));
        put(&v, &last, b"a"); // LSN 1
        put(&v, &last, b"b"); // LSN 2
        put(&v, &last, b"k"); // LSN 3
        let lsn = last.fetch_add(1, Ordering::SeqCst) + 1; // LSN 4
        v.insert(&[OpRef::Put(b"k", b"old")], lsn);
        let snap = v.pin(|| last.load(Ordering::SeqCst));
        assert_eq!(snap, 4);
        let host = Host {
            v: v.clone(),
            last: last.clone(),
        };
        // Cap 4, L0 5; commits 5 and 6 insert out of order around the copy's plan of "k"
        // (versions [6, 4, 3]: keep 6 and 4, mark 4, drop 3).
        let hv = v.clone();
        AFTER_PLAN.with(|f| {
            *f.borrow_mut() = Some(Box::new(move |key: &[u8]| {
                if key == b"a" {
                    hv.insert(&[OpRef::Put(b"k", b"six")], 6);
                }
                if key == b"k" {
                    hv.insert(&[OpRef::Put(b"k", b"five")], 5);
                }
            }));
        });
        let report = trim(&host, &mut |_| Ok(()))
            .expect("nothing to record")
            .expect("the trim runs");
        AFTER_PLAN.with(|f| *f.borrow_mut() = None);
        assert!(
            report.floor <= snap,
            "the floor ({}) never passes a live snapshot ({snap})",
            report.floor
        );
        let got = v.read_at(b"k", snap, crate::index::to_value);
        assert!(
            matches!(&got, Ok(Some(v)) if v.as_bytes() == b"old" && v.lsn() == 4),
            "the snapshot at 4 reads ('old', 4): {got:?}"
        );
        v.unpin(snap);
    }

    /// A caller that changes the policy during every attempt of a trim cannot keep it from
    /// finishing (a review's livelock: `trim_history`, a checkpoint's converting trim and so
    /// `close` never returned while another thread set policies in a loop). After
    /// `MAX_ABANDONED` attempts abandoned in a row, the next one holds policy changes off until it
    /// swaps: a `set_retention` made meanwhile waits and takes effect after it.
    #[test]
    fn policy_changes_during_every_attempt_do_not_keep_a_trim_from_finishing() {
        let db = Arc::new(
            crate::Db::in_memory_with_options(crate::Options::default().trim_threshold(1 << 20))
                .unwrap(),
        );
        let keep = |n| crate::Retention::LastVersions(std::num::NonZeroU32::new(n).unwrap());
        db.set_retention(keep(1)).unwrap();
        for round in 0..3u8 {
            for key in [&b"a"[..], b"b", b"k"] {
                db.put(key, &[round]).unwrap();
            }
        }
        // Before each attempt has copied its first key: a new policy (2, 3, 4, ...). During
        // the attempt that holds changes off: one more, from another thread, which must wait.
        let changed = Rc::new(Cell::new(0u32));
        let waiting: Rc<RefCell<Option<std::thread::JoinHandle<()>>>> = Rc::new(RefCell::new(None));
        let (hdb, hchanged, hwaiting) = (db.clone(), changed.clone(), waiting.clone());
        AFTER_KEY.with(|f| {
            *f.borrow_mut() = Some(Box::new(move || {
                let held = hdb.shared.versions.retention.lock().exclusive > 0;
                if !held {
                    // Each call changes the policy: the attempt in progress is abandoned.
                    hchanged.set(hchanged.get() + 1);
                    hdb.set_retention(keep(1 + hchanged.get())).unwrap();
                } else if hwaiting.borrow().is_none() {
                    let d = hdb.clone();
                    *hwaiting.borrow_mut() = Some(std::thread::spawn(move || {
                        d.set_retention(crate::Retention::All).unwrap();
                    }));
                } else {
                    // Still held: the other thread's policy has not taken effect.
                    assert_ne!(
                        hdb.retention(),
                        crate::Retention::All,
                        "a policy was set during the attempt that holds them off"
                    );
                }
            }));
        });
        let trimmed = db.trim_history();
        AFTER_KEY.with(|f| *f.borrow_mut() = None);
        trimmed.expect("the trim finishes");
        assert_eq!(
            db.shared.versions.trims.load(Ordering::Relaxed),
            1,
            "one attempt swapped in"
        );
        assert!(
            changed.get() >= MAX_ABANDONED,
            "every attempt before the held one was abandoned"
        );
        let t = waiting
            .borrow_mut()
            .take()
            .expect("an attempt held policy changes off");
        t.join().unwrap();
        assert_eq!(
            db.retention(),
            crate::Retention::All,
            "the waiting change took effect after"
        );
        assert_eq!(db.shared.versions.retention.lock().exclusive, 0);
    }

    /// The versions `written` (key, value, LSN) that `db.get_at` does not read back.
    fn unreadable(db: &crate::Db, written: &[(&'static [u8], u8, Lsn)]) -> Vec<String> {
        written
            .iter()
            .filter_map(|&(k, r, lsn)| match db.get_at(k, lsn) {
                Ok(Some(v)) if v.as_bytes() == [r] => None,
                got => Some(format!("{} at {lsn}: {got:?}", k.escape_ascii())),
            })
            .collect()
    }

    /// A policy change that commits while a `LastVersions` trim copies: the trim, planned under
    /// the old policy, must not be swapped in once `set_retention(All)` has returned — it raised
    /// the floor to the oldest version it kept of a key it trimmed, refusing reads that were
    /// answered right after the change (8 in 300 tries in a model test). It starts again with
    /// the new policy, which keeps everything.
    #[test]
    fn a_policy_change_during_the_copy_abandons_the_trim() {
        let db = Arc::new(
            crate::Db::in_memory_with_options(crate::Options::default().trim_threshold(1 << 20))
                .unwrap(),
        );
        let one = std::num::NonZeroU32::new(1).unwrap();
        db.set_retention(crate::Retention::LastVersions(one))
            .unwrap();
        let mut written: Vec<(&'static [u8], u8, Lsn)> = Vec::new();
        for round in 0..3u8 {
            for key in [&b"a"[..], b"b", b"k"] {
                written.push((key, round, db.put(key, &[round]).unwrap()));
            }
        }
        // Once the copy has passed its first key: the policy becomes `All`. What reads right
        // after the call returned: the floor, and every version above.
        let at_change = Rc::new(Cell::new(None));
        let (hdb, seen, hwritten) = (db.clone(), at_change.clone(), written.clone());
        AFTER_KEY.with(|f| {
            *f.borrow_mut() = Some(Box::new(move || {
                if seen.get().is_none() {
                    hdb.set_retention(crate::Retention::All).unwrap();
                    assert_eq!(unreadable(&hdb, &hwritten), Vec::<String>::new());
                    seen.set(Some(hdb.shared.versions.current().floor()));
                }
            }));
        });
        let trimmed = db.trim_history();
        AFTER_KEY.with(|f| *f.borrow_mut() = None);
        trimmed.expect("the trim runs");
        let floor = at_change.get().expect("the policy changed during the copy");
        assert_eq!(
            db.shared.versions.current().floor(),
            floor,
            "the floor rose after `set_retention(All)` returned"
        );
        assert_eq!(
            unreadable(&db, &written),
            Vec::<String>::new(),
            "every version readable after the change is readable after the trim"
        );
        assert_eq!(db.retention(), crate::Retention::All);
        assert_eq!(
            db.shared.versions.trims.load(Ordering::Relaxed),
            1,
            "one trim swapped in (the one planned under `All`)"
        );
    }
}
