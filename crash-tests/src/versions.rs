//! Checks of reads at versions: the reads a run made (at older LSNs, through snapshots, of the
//! newest state) against the model of the committed history ([`Timeline`]), and a recovered
//! database's versions, retention policy and trim floor.
//!
//! What a read may answer:
//! * a value (or its absence) is always exactly the model's at the LSN read — the version's LSN
//!   included — never a newer or older one (`versions`);
//! * `HistoryTrimmed { requested, earliest_retained }` names the LSN asked for and an older one
//!   than `earliest_retained`, and is refused (`retention`) for a read through a snapshot, for a
//!   read at or above a snapshot the session holds (a trim never passes a live snapshot), for a
//!   read of the newest state, and under `Retention::All` for a read at or above the LSN the
//!   policy was set at; after a read below the trim floor was refused, no read below it succeeds
//!   (the floor only moves forward);
//! * `NotYetVisible` exactly for LSNs above the visible one;
//! * a read that saw LSN `V` saw every `Strict` commit up to `V`, which must then be durable
//!   (`visibility`): the durable LSN read right after the read is at least its LSN.

use std::collections::BTreeMap;

use ringlog_db::Db;

use crate::model::{Expect, Policy, Timeline};
use crate::oracle::{Seen, Violation};
use crate::workload::{Cell, CheckpointRec, ReadErr, ReadRec, Source, Workload};

/// Counters of the checks made (reported in the summary).
pub type Counts = BTreeMap<&'static str, u64>;

fn bump(c: &mut Counts, k: &'static str) {
    *c.entry(k).or_default() += 1;
}

/// What [`check_reads`] learnt besides violations, for the crash states' checks.
#[derive(Clone, Debug, Default)]
pub struct ReadFacts {
    /// Reads that saw the database at an LSN.
    pub seen: Vec<Seen>,
    /// Trim floors observed (position, floor): scans refused below the floor.
    pub floors: Vec<(u64, u64)>,
    /// What was checked.
    pub counts: Counts,
}

/// The model's entries of keys `lo..hi` at `lsn`: `None` for a key the model does not know.
fn describe(o: Option<Cell>) -> String {
    match o {
        Some(c) => format!(
            "step {}.{}/{} at version {}",
            c.txn >> 32,
            c.txn & 0xFFFF_FFFF,
            c.op,
            c.lsn
        ),
        None => "nothing".into(),
    }
}

fn describe_expect(e: Expect) -> String {
    match e {
        Expect::Known(Some((txn, op)), lsn) => {
            format!(
                "step {}.{}/{op} at version {lsn}",
                txn >> 32,
                txn & 0xFFFF_FFFF
            )
        }
        Expect::Known(None, 0) => "nothing (never written)".into(),
        Expect::Known(None, lsn) => format!("nothing (deleted at version {lsn})"),
        Expect::Unknown => "unknown".into(),
    }
}

/// Whether `got` is what the model expects.
fn matches(got: Option<Cell>, e: Expect) -> bool {
    match e {
        Expect::Unknown => true,
        Expect::Known(None, _) => got.is_none(),
        Expect::Known(Some((txn, op)), lsn) => {
            got.is_some_and(|c| c.txn == txn && c.op == op && c.lsn == lsn)
        }
    }
}

/// The entry for key `k` in a read's output.
fn got(out: &[(u16, Cell)], k: u16) -> Option<Cell> {
    out.iter().find(|(x, _)| *x == k).map(|&(_, c)| c)
}

fn source(r: &ReadRec) -> String {
    match r.src {
        Source::Latest => format!(
            "{} of the newest state (visible LSN {}..{})",
            r.api, r.visible.0, r.visible.1
        ),
        Source::Back(b) => format!(
            "{} at LSN {} ({b} below the visible {})",
            r.api, r.lsn, r.visible.0
        ),
        Source::Ahead(a) => format!(
            "{} at LSN {} ({a} above the visible {})",
            r.api, r.lsn, r.visible.0
        ),
        Source::Slot(s) => format!("{} through the snapshot at LSN {} (slot {s})", r.api, r.lsn),
    }
}

/// Checks every read of generation `gen` (in the order they happened) against `tl`, the model
/// holding (at least) every transaction up to the newest LSN any read saw. `strict`: the LSNs
/// (and steps) of commits that promised durability, ascending. `skip_visibility`: see
/// [`ReadChecker::skip_visibility`].
pub fn check_reads(
    gen: u32,
    tl: &Timeline,
    reads: &[ReadRec],
    strict: &[(u64, u64)],
    skip_visibility: bool,
) -> Result<ReadFacts, Violation> {
    let mut c = ReadChecker {
        skip_visibility,
        ..ReadChecker::default()
    };
    c.check(gen, tl, reads, strict)?;
    Ok(c.facts)
}

/// [`check_reads`] a few reads at a time (a `kill` child checks each read as it happens).
#[derive(Clone, Debug, Default)]
pub struct ReadChecker {
    /// Skip the check that a `Strict` commit a read saw was durable right after the read (only
    /// to prove that the crash states' visibility check catches it alone).
    pub skip_visibility: bool,
    /// What the reads checked so far showed.
    pub facts: ReadFacts,
    /// The highest trim floor a scan was refused below (a scan's refusal is the global floor's),
    /// and the step that saw it.
    floor: Option<(u64, u64)>,
}

impl ReadChecker {
    /// Checks `reads`, which follow the reads checked before.
    pub fn check(
        &mut self,
        gen: u32,
        tl: &Timeline,
        reads: &[ReadRec],
        strict: &[(u64, u64)],
    ) -> Result<(), Violation> {
        for r in reads {
            self.one(gen, tl, r, strict)?;
        }
        Ok(())
    }

    fn one(
        &mut self,
        gen: u32,
        tl: &Timeline,
        r: &ReadRec,
        strict: &[(u64, u64)],
    ) -> Result<(), Violation> {
        let skip_visibility = self.skip_visibility;
        if std::env::var_os("DBG_READS").is_some() {
            eprintln!("DBG gen {gen} step {} {} src {:?} lsn {} vis {:?} dur {} pinned {:?} policy {:?} out {:?}", r.step, r.api, r.src, r.lsn, r.visible, r.durable, r.pinned, tl.policy_at(r.visible.0), r.out.as_ref().map(|o| o.len()));
        }
        let facts = &mut self.facts;
        let floor = &mut self.floor;
        bump(&mut facts.counts, "reads checked");
        bump(
            &mut facts.counts,
            match r.src {
                Source::Latest => "reads of the newest state",
                Source::Back(_) => "reads at older LSNs",
                Source::Ahead(_) => "reads above the visible LSN",
                Source::Slot(_) => "reads through snapshots",
            },
        );
        {
            let what = || format!("step {gen}.{}: {}", r.step, source(r));
            if let Some(a) = r.aliens.first() {
                return Err(Violation::new(
                    "I1",
                    format!(
                        "{} returned key {} holding a value no write produced: {}",
                        what(),
                        a.key,
                        a.why
                    ),
                ));
            }
            let (policy, since) = tl.policy_at(r.visible.0);
            let all_since = tl.all_since(r.visible.0);
            let out = match &r.out {
                Err(ReadErr::Other(e)) => {
                    return Err(Violation::new("I5", format!("{} failed: {e}", what())));
                }
                Err(ReadErr::NotYet { requested, visible }) => {
                    if !matches!(r.src, Source::Ahead(_))
                        || *requested != r.lsn
                        || *visible >= r.lsn
                    {
                        return Err(Violation::new(
                        "versions",
                        format!("{} answered NotYetVisible {{ requested: {requested}, visible: {visible} }}", what()),
                    ));
                    }
                    bump(&mut facts.counts, "reads refused: NotYetVisible");
                    return Ok(());
                }
                Err(ReadErr::Trimmed {
                    requested,
                    earliest,
                }) => {
                    if *requested != r.lsn || *earliest <= r.lsn {
                        return Err(Violation::new(
                        "retention",
                        format!(
                            "{} answered HistoryTrimmed {{ requested: {requested}, earliest_retained: {earliest} }}, which does not name a history below what it retains",
                            what()
                        ),
                    ));
                    }
                    let why = match r.src {
                    Source::Latest => Some("a read of the newest state is never below the trim floor".to_string()),
                    Source::Slot(_) => Some("a snapshot keeps every version it can see until it is dropped".to_string()),
                    Source::Ahead(_) => Some("the LSN is above the visible one".to_string()),
                    Source::Back(_) => match r.pinned {
                        Some(p) if r.lsn >= p => Some(format!(
                            "the session held a snapshot at LSN {p}, at or below the LSN read: a trim passed a live snapshot"
                        )),
                        // (Non-zero only while `All` is in force.)
                        _ if all_since != 0 && r.lsn >= all_since => Some(format!(
                            "Retention::All was set at LSN {all_since} (last set at {since}): every version from there on is kept"
                        )),
                        _ => None,
                    },
                };
                    if let Some(why) = why {
                        return Err(Violation::new(
                        "retention",
                        format!(
                            "{} was refused: HistoryTrimmed {{ requested: {requested}, earliest_retained: {earliest} }}; {why}",
                            what()
                        ),
                    ));
                    }
                    bump(&mut facts.counts, "reads refused: HistoryTrimmed");
                    if !r.point {
                        facts.floors.push((r.at, *earliest));
                        if floor.is_none_or(|(f, _)| *earliest > f) {
                            *floor = Some((*earliest, r.step));
                        }
                    }
                    return Ok(());
                }
                Ok(out) => out,
            };
            if let Some((f, step)) = *floor {
                // Under Last(n) a scan's refusal names the newest per-key trim (a scan cannot
                // report one key's), which a point read of another key may go below.
                let per_key = r.point && matches!(policy, Policy::Last(_));
                if r.lsn < f && !per_key {
                    return Err(Violation::new(
                    "retention",
                    format!(
                        "{} succeeded, but step {gen}.{step} was refused below the trim floor {f} before: the floor moved back",
                        what()
                    ),
                ));
                }
            }
            // Keys in range, in order, each once.
            let (lo, hi) = r.keys;
            let in_order = out.windows(2).all(|w| {
                if r.reverse {
                    w[0].0 > w[1].0
                } else {
                    w[0].0 < w[1].0
                }
            });
            if !in_order || out.iter().any(|&(k, _)| k < lo || k >= hi) {
                let keys: Vec<u16> = out.iter().map(|&(k, _)| k).collect();
                return Err(Violation::new(
                    "versions",
                    format!(
                        "{} over keys {lo}..{hi}{} returned keys {keys:?}",
                        what(),
                        if r.reverse { " (reverse)" } else { "" }
                    ),
                ));
            }
            if r.fresh && !(r.visible.0..=r.visible.1).contains(&r.lsn) {
                return Err(Violation::new(
                "versions",
                format!(
                    "step {gen}.{}: a snapshot taken while the visible LSN was {}..{} reads at LSN {}",
                    r.step, r.visible.0, r.visible.1, r.lsn
                ),
            ));
            }
            // Every key of the range against the model at the LSN read (the newest state: at some
            // LSN the visible one passed during the read).
            let mut left_out_any = false;
            for k in lo..hi.min(tl.keys()) {
                let g = got(out, k);
                let ok = match r.src {
                    Source::Latest => {
                        matches(g, tl.at(k, r.visible.0))
                            || tl
                                .versions_of(k)
                                .iter()
                                .filter(|&&(l, _)| l > r.visible.0 && l <= r.visible.1)
                                .any(|&(l, _)| matches(g, tl.at(k, l)))
                    }
                    _ => matches(g, tl.at(k, r.lsn)),
                };
                if !ok {
                    // A scan leaves out a key whose version there LastVersions let go (while it
                    // was in force: its per-key trims outlive it).
                    let left_out = g.is_none()
                        && !r.point
                        && matches!(r.src, Source::Back(_))
                        && tl.ever_last(r.visible.0)
                        && matches!(tl.at(k, r.lsn), Expect::Known(Some(_), _));
                    if left_out && crate::known::tolerate_fixed() {
                        left_out_any = true;
                        continue;
                    }
                    return Err(Violation::new(
                        "versions",
                        format!(
                            "{} returned for key {k} {}; the model holds {}{}",
                            what(),
                            describe(g),
                            describe_expect(tl.at(k, r.lsn)),
                            if left_out {
                                " (Retention::LastVersions: a point read answers HistoryTrimmed there; the scan leaves the key out as if it had no value)"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
            }
            if left_out_any {
                bump(&mut facts.counts, crate::known::SCAN_LEFT_OUT);
            }
            if matches!(r.src, Source::Ahead(_)) && r.lsn > r.visible.1 {
                return Err(Violation::new(
                    "versions",
                    format!("{} answered although the LSN is not visible", what()),
                ));
            }
            // What the read saw includes every Strict commit up to its LSN: durable by now.
            let i = strict.partition_point(|&(l, _)| l <= r.lsn);
            if let Some(&(l, s)) = i.checked_sub(1).map(|j| &strict[j]) {
                if l > r.durable && !skip_visibility {
                    return Err(Violation::new(
                    "visibility",
                    format!(
                        "{} saw the Strict commit of step {gen}.{s} (LSN {l}), but the durable LSN right after the read was {}: a Strict commit was visible before it was durable",
                        what(),
                        r.durable
                    ),
                ));
                }
            }
            facts.seen.push(Seen {
                at: r.at,
                lsn: r.lsn,
                step: r.step,
            });
        }
        Ok(())
    }
}

/// Checks the checkpoints of generation `gen` (in the order they returned): each holds the
/// database at an LSN at least the one visible when it was asked for, and durable when it returns
/// (a checkpoint must never hold what the log could lose); ids follow each other (0: nothing
/// written, the LSN was the previous checkpoint's). Counts them and the segments compaction
/// deleted.
pub fn check_checkpoints(gen: u32, recs: &[CheckpointRec]) -> Result<Counts, Violation> {
    let mut counts = Counts::new();
    let mut prev: Option<&CheckpointRec> = None;
    for c in recs {
        let what = || format!("step {gen}.{}: checkpoint() returned {:?}", c.step, c.info);
        if c.info.lsn < c.visible {
            return Err(Violation::new(
                "checkpoint",
                format!(
                    "{}, at LSN {}, below the LSN {} visible when it was called",
                    what(),
                    c.info.lsn,
                    c.visible
                ),
            ));
        }
        if c.info.lsn > c.durable {
            return Err(Violation::new(
                "durability",
                format!(
                    "{}, at LSN {}, but the durable LSN right after it returned was {}: a checkpoint holds what the log could still lose",
                    what(),
                    c.info.lsn,
                    c.durable
                ),
            ));
        }
        if let Some(p) = prev {
            let ok = if c.info.id == 0 {
                p.info.lsn == c.info.lsn
            } else {
                // Strictly increasing; not always by one: a failed attempt consumes an id (its
                // MANIFEST may have reached the disk naming it, so it is never reused).
                p.info.id == 0 || c.info.id > p.info.id
            };
            if !ok {
                return Err(Violation::new(
                    "checkpoint",
                    format!(
                        "{} after step {gen}.{} returned {:?}: checkpoint ids increase, and none is written only when the LSN has not moved",
                        what(),
                        p.step,
                        p.info
                    ),
                ));
            }
        }
        if c.info.id == 0 {
            bump(
                &mut counts,
                "checkpoints with nothing new (no file written)",
            );
        } else {
            bump(&mut counts, "checkpoints written");
            *counts.entry("segments deleted by compaction").or_default() += c.info.segments_deleted;
            *counts
                .entry("value segments collected (live values copied forward)")
                .or_default() += c.info.segments_collected;
        }
        if c.info.id != 0 || prev.is_none() {
            prev = Some(c);
        }
    }
    Ok(counts)
}

/// What [`check_recovered`] reads a recovered database with.
#[derive(Clone, Copy, Debug)]
pub struct Reread<'a> {
    /// The LSN the recovered log ends with.
    pub last: u64,
    /// The highest trim floor observed before the crash (0: none): by reads refused below it,
    /// or the engine's own after a trim or a policy.
    pub floor: u64,
    /// Chooses the LSNs and keys read.
    pub pick: u64,
    /// LSNs read where the policy keeps history.
    pub samples: usize,
    /// LSNs reads saw before the crash (at older versions, through snapshots): each is read
    /// again, whole, and must answer as it did — the model's entries where the policy keeps
    /// history, else those or `HistoryTrimmed` — across the checkpoints and compactions between
    /// the read and the recovery.
    pub again: &'a [u64],
    /// The database was closed cleanly before this recovery (the close returned; nothing was
    /// lost), rather than crashed: named in a violation's report. (After a crash, a
    /// `Retention::NewerThan` floor lower than the one observed before was the engine's gap
    /// [`crate::known::NEWER_THAN_FLOOR_AFTER_A_CRASH`], now fixed.)
    pub clean: bool,
}

/// Whether `db` recovered from a checkpoint written under a policy other than
/// `Retention::LastVersions` while the log it replayed after it sets `LastVersions` (the policy in
/// force at `last`): the open known issue [`crate::known::LAST_FLOOR_FROM_A_CHECKPOINT`].
fn last_after_other_checkpoint(db: &Db, tl: &Timeline, last: u64) -> bool {
    let at = db.recovery_stats().checkpoint_lsn;
    at != 0
        && matches!(tl.policy_at(last).0, Policy::Last(_))
        && !matches!(tl.policy_at(at).0, Policy::Last(_))
}

/// The entries of a scan at `lsn` of a recovered database: keys and values of the workload only
/// (I1). An entry the scan fails to read is a failed read after recovery (I5), as a failed
/// `get_at` is.
fn decode_scan(scan: ringlog_db::Scan, keys: u16, lsn: u64) -> Result<Vec<(u16, Cell)>, Violation> {
    let mut out = Vec::new();
    for item in scan {
        let (key, value) = item.map_err(|e| {
            Violation::new(
                "I5",
                format!("after recovery, range_at(.., {lsn}) failed while scanning: {e}"),
            )
        })?;
        let Some(k) = crate::workload::parse_key(&key).filter(|&k| k < keys) else {
            return Err(Violation::new(
                "I1",
                format!(
                    "after recovery, range_at(.., {lsn}) returned key {}, not a key of the workload",
                    String::from_utf8_lossy(&key)
                ),
            ));
        };
        let Some((txn, op)) = crate::workload::decode_value(k, &value) else {
            return Err(Violation::new(
                "I1",
                format!(
                    "after recovery, range_at(.., {lsn}) returned for key {k} a value no write produced"
                ),
            ));
        };
        out.push((
            k,
            Cell {
                txn,
                op,
                lsn: value.lsn(),
            },
        ));
    }
    Ok(out)
}

/// Checks a database just recovered (its log ends at `last`) against `tl`, which holds every
/// transaction up to `last`: its retention policy is the last one the log sets; where that
/// policy keeps history, reads at `samples` LSNs from the policy's entry on (chosen from `pick`)
/// equal the model; a read below the restart's trim floor is the model's or `HistoryTrimmed`; and
/// a read below `floor`, a trim floor observed before the crash, is refused (the floor never moves
/// back across a restart).
pub fn check_recovered(
    db: &Db,
    wl: &Workload,
    tl: &Timeline,
    how: Reread,
    counts: &mut Counts,
) -> Result<(), Violation> {
    let Reread {
        last,
        floor,
        pick,
        samples,
        again,
        clean,
    } = how;
    let (policy, since) = tl.policy_at(last);
    let got_policy = db.retention();
    if got_policy != policy.retention() {
        return Err(Violation::new(
            "retention",
            format!(
                "after recovery the retention policy is {got_policy:?}, but the last policy entry of the recovered log{} sets {:?}",
                if since == 0 { String::new() } else { format!(" (LSN {since})") },
                policy.retention()
            ),
        ));
    }
    // `All` set again keeps what the first of the run of `All` entries kept, across restarts
    // and checkpoints too: the restart's floor is below the first (a mutation audit found the
    // oracle taking the last, which is what the bug fixed in 431098b did).
    let since = match (policy, tl.all_since(last)) {
        (Policy::All, first) if first != 0 => first,
        _ => since,
    };
    let keys = wl.cfg.keys.min(tl.keys());
    let mut rng = crate::rng::Rng::from_words(&[pick, 0x5E75]);
    let history = policy.keeps_history() && since != 0 && since <= last;
    // The restart's trim floor: the LSN before the policy entry, or the last LSN.
    let restart_floor = if history { since - 1 } else { last };
    // Reads made before the crash, read again: below the restart's floor (or with no history
    // kept) the model's entries or HistoryTrimmed, never another answer; from it on, exactly
    // the model's (below, with the samples).
    for &lsn in again
        .iter()
        .filter(|&&l| l <= last && (!history || l < restart_floor))
    {
        bump(
            counts,
            "reads made before the crash read again after recovery",
        );
        match db.range_at::<&[u8], _>(.., lsn) {
            Ok(scan) => {
                let out = decode_scan(scan, keys, lsn)?;
                for k in 0..keys {
                    let (g, e) = (got(&out, k), tl.at(k, lsn));
                    if !matches(g, e) {
                        return Err(Violation::new(
                            "versions",
                            format!(
                                "after recovery, range_at(.., {lsn}) (a read made before the crash read there) returned for key {k} {}; the model holds {} ({policy:?} set at LSN {since}, below the restart's floor {restart_floor})",
                                describe(g),
                                describe_expect(e)
                            ),
                        ));
                    }
                }
            }
            Err(ringlog_db::Error::HistoryTrimmed {
                requested,
                earliest_retained,
            }) if requested == lsn && earliest_retained > lsn => {}
            Err(e) => {
                return Err(Violation::new(
                    "retention",
                    format!(
                        "after recovery, range_at(.., {lsn}) (a read made before the crash read there) failed: {e}"
                    ),
                ))
            }
        }
    }
    if history {
        let mut at: Vec<u64> = Vec::with_capacity(samples + again.len());
        for i in 0..samples {
            let span = last - restart_floor;
            at.push(match i {
                0 if samples > 1 => restart_floor,
                1 if samples > 2 => last,
                _ => restart_floor + rng.below(span + 1),
            });
        }
        // The restart's floor itself, always: a recovery that raised it by one refuses exactly
        // that read (a mutation audit's survivor: one random LSN per crash state rarely met it).
        if !at.contains(&restart_floor) {
            at.push(restart_floor);
        }
        let before = at.len();
        at.extend(
            again
                .iter()
                .filter(|&&l| (restart_floor..=last).contains(&l)),
        );
        for (i, lsn) in at.into_iter().enumerate() {
            if i >= before {
                bump(
                    counts,
                    "reads made before the crash read again after recovery",
                );
            }
            // Under Last(n) a scan below the newest oldest-kept version of a key whose history
            // the restart trimmed is refused as a whole (it cannot report one key's trim): the
            // model's scan floor. Any other refusal is a violation.
            let scan_floor = match policy {
                Policy::Last(n) => (0..keys)
                    .filter_map(|k| {
                        let kept = tl.kept_at_restart(k, policy, since, last)?;
                        let all = tl.kept_at_restart(k, Policy::All, since, last)?;
                        (kept.len() < all.len() && kept.len() >= n.max(1) as usize)
                            .then(|| kept.first().copied())
                            .flatten()
                    })
                    .max()
                    .unwrap_or(0),
                _ => 0,
            };
            let scan = match db.range_at::<&[u8], _>(.., lsn) {
                Ok(scan) => scan,
                Err(ringlog_db::Error::HistoryTrimmed {
                    earliest_retained, ..
                }) if (lsn < scan_floor && earliest_retained <= scan_floor)
                    // The engine's floor under Last(n) is the newest per-key trim it made, which
                    // the model does not always reproduce exactly (it may differ by a version):
                    // any refusal at or below the log's end is accepted here; point reads below
                    // check each key's history exactly.
                    || (matches!(policy, Policy::Last(_)) && earliest_retained <= last) =>
                {
                    bump(counts, "scans refused below a per-key trim");
                    continue;
                }
                Err(e) => {
                    return Err(Violation::new(
                        "retention",
                        format!(
                            "after recovery, range_at(.., {lsn}) failed: {e}; {policy:?} set at LSN {since} keeps every version from LSN {restart_floor} on (scan floor {scan_floor})"
                        ),
                    ))
                }
            };
            let out = decode_scan(scan, keys, lsn)?;
            bump(counts, "recovered versions checked");
            let mut left_out_any = false;
            for k in 0..keys {
                let e = tl.at(k, lsn);
                let g = got(&out, k);
                if matches(g, e) {
                    continue;
                }
                // A version Retention::LastVersions let go (a scan cannot say so per key: it
                // leaves the key out).
                let dropped = match (policy, e) {
                    (Policy::Last(_), Expect::Known(Some(_), v)) => tl
                        .kept_at_restart(k, policy, since, last)
                        .is_some_and(|kept| !kept.contains(&v)),
                    _ => false,
                };
                if dropped && g.is_none() && crate::known::tolerate_fixed() {
                    left_out_any = true;
                    continue;
                }
                return Err(Violation::new(
                    "versions",
                    format!(
                        "after recovery, range_at(.., {lsn}) returned for key {k} {}; the model holds {} ({policy:?} set at LSN {since}, log ending at {last}){}",
                        describe(g),
                        describe_expect(e),
                        if dropped { ": a version the policy let go was left out of the scan, as if the key had no value" } else { "" }
                    ),
                ));
            }
            if left_out_any {
                bump(counts, crate::known::SCAN_LEFT_OUT);
            }
            // A point read of one key at the same LSN: the model's, or HistoryTrimmed only for
            // a version LastVersions let go.
            let k = rng.below(keys.max(1) as u64) as u16;
            let e = tl.at(k, lsn);
            match db.get_at(&crate::workload::key_bytes(k), lsn) {
                Ok(v) => {
                    let g = v.and_then(|v| {
                        crate::workload::decode_value(k, &v).map(|(txn, op)| Cell {
                            txn,
                            op,
                            lsn: v.lsn(),
                        })
                    });
                    if !matches(g, e) {
                        return Err(Violation::new(
                            "versions",
                            format!(
                                "after recovery, get_at(key {k}, {lsn}) returned {}; the model holds {}",
                                describe(g),
                                describe_expect(e)
                            ),
                        ));
                    }
                }
                Err(ringlog_db::Error::HistoryTrimmed {
                    requested,
                    earliest_retained,
                }) => {
                    let let_go = match (policy, e) {
                        (Policy::Last(_), Expect::Known(Some(_), v)) => tl
                            .kept_at_restart(k, policy, since, last)
                            .is_some_and(|kept| !kept.contains(&v)),
                        (Policy::Last(_), Expect::Known(None, _)) => true,
                        _ => false,
                    };
                    let well_formed = requested == lsn && earliest_retained > lsn;
                    // Open finding (known.rs LAST_FLOOR_FROM_A_CHECKPOINT): the per-key floor a
                    // restart's plan sets comes from a background trim after the open, which may
                    // raise it between the scan above and this read (`power --background`).
                    if well_formed
                        && !let_go
                        && matches!(policy, Policy::Last(_))
                        && last_after_other_checkpoint(db, tl, last)
                        && !crate::known::strict()
                    {
                        bump(counts, crate::known::LAST_FLOOR_FROM_A_CHECKPOINT);
                        continue;
                    }
                    if !let_go || !well_formed {
                        return Err(Violation::new(
                            "retention",
                            format!(
                                "after recovery, get_at(key {k}, {lsn}) was refused: HistoryTrimmed {{ requested: {requested}, earliest_retained: {earliest_retained} }}; {policy:?} set at LSN {since} keeps it (the model holds {}){}",
                                describe_expect(e),
                                if last_after_other_checkpoint(db, tl, last) {
                                    format!(" ({}, see crash-tests/src/known.rs)", crate::known::LAST_FLOOR_FROM_A_CHECKPOINT)
                                } else {
                                    String::new()
                                }
                            ),
                        ));
                    }
                }
                Err(e) => {
                    return Err(Violation::new(
                        "I5",
                        format!("after recovery, get_at(key {k}, {lsn}) failed: {e}"),
                    ))
                }
            }
        }
    }
    // Below the restart's floor: the model's value or HistoryTrimmed, never another.
    if restart_floor >= 1 && keys > 0 {
        let lsn = restart_floor - 1;
        let k = rng.below(keys as u64) as u16;
        match db.get_at(&crate::workload::key_bytes(k), lsn) {
            Ok(v) => {
                let g = v.and_then(|v| {
                    crate::workload::decode_value(k, &v).map(|(txn, op)| Cell {
                        txn,
                        op,
                        lsn: v.lsn(),
                    })
                });
                if !matches(g, tl.at(k, lsn)) {
                    return Err(Violation::new(
                        "versions",
                        format!(
                            "after recovery, get_at(key {k}, {lsn}) below the trim floor returned {}; the model holds {}",
                            describe(g),
                            describe_expect(tl.at(k, lsn))
                        ),
                    ));
                }
            }
            Err(ringlog_db::Error::HistoryTrimmed {
                requested,
                earliest_retained,
            }) if requested == lsn && earliest_retained > lsn => {}
            Err(e) => {
                return Err(Violation::new(
                    "retention",
                    format!(
                        "after recovery, get_at(key {k}, {lsn}) below the trim floor failed: {e}"
                    ),
                ))
            }
        }
    }
    // The floor never moves back: what was refused before the crash is refused after it.
    if floor >= 1 && floor - 1 <= last {
        let lsn = floor - 1;
        match db.range_at::<&[u8], _>(.., lsn) {
            Err(ringlog_db::Error::HistoryTrimmed { .. }) => {}
            // Open finding (known.rs LAST_FLOOR_FROM_A_CHECKPOINT): recovered from a checkpoint
            // written under another policy, with LastVersions set in the log after it, the
            // restart's per-key plan is not applied and the floor a trim raised is lower after
            // the crash. Counted unless --strict.
            Ok(_) if last_after_other_checkpoint(db, tl, last) && !crate::known::strict() => {
                bump(counts, crate::known::LAST_FLOOR_FROM_A_CHECKPOINT);
            }
            // Fixed finding (known.rs NEWER_THAN_FLOOR_AFTER_A_CRASH): under NewerThan a trim
            // after the last checkpoint raised the floor over versions the checkpoint holds,
            // whose commit times the log no longer has, and a crash before the next checkpoint
            // brought the floor back lower. The trim records the floor in the MANIFEST first
            // now: a violation again.
            Ok(_)
                if matches!(policy, Policy::NewerThan(_))
                    && !clean
                    && crate::known::tolerate_fixed() =>
            {
                bump(counts, crate::known::NEWER_THAN_FLOOR_AFTER_A_CRASH);
            }
            // Fixed finding (known.rs FLOOR_OF_A_LOST_POLICY): the crash lost a later
            // set_retention entry whose floor had been raised before it was durable. The engine
            // raises it only once the entry is durable (2390ddd): a violation again.
            Ok(_) if tl.history_policy_after(last).is_some() && crate::known::tolerate_fixed() => {
                bump(counts, crate::known::FLOOR_OF_A_LOST_POLICY);
            }
            // Fixed finding (known.rs LAST_FLOOR_ACROSS_A_CRASH): under Last(n) the floor a trim
            // raised for a per-key trim was lower after a crash. A violation again.
            Ok(_)
                if matches!(tl.policy_at(last).0, Policy::Last(_))
                    && crate::known::tolerate_fixed() =>
            {
                bump(counts, crate::known::LAST_FLOOR_ACROSS_A_CRASH);
            }
            other => {
                return Err(Violation::new(
                    "retention",
                    format!(
                        "before the {}, reads below the trim floor {floor} were refused; after recovery range_at(.., {lsn}) {}: the floor moved back across a restart{}",
                        if clean { "clean close" } else { "crash" },
                        match other {
                            Ok(_) => "succeeded".to_string(),
                            Err(e) => format!("failed otherwise: {e}"),
                        },
                        match tl.history_policy_after(last) {
                            Some((p, policy)) => format!(
                                " (the crash lost the entry of set_retention({:?}) at LSN {p}, which had raised the floor before it was durable)",
                                policy.retention()
                            ),
                            None if last_after_other_checkpoint(db, tl, last) => format!(
                                " ({}, see crash-tests/src/known.rs: recovered from the checkpoint at LSN {}, written under {:?}, with LastVersions set after it)",
                                crate::known::LAST_FLOOR_FROM_A_CHECKPOINT,
                                db.recovery_stats().checkpoint_lsn,
                                tl.policy_at(db.recovery_stats().checkpoint_lsn).0.retention()
                            ),
                            None => String::new(),
                        }
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `Db::history` against the engine's own point reads (which the model checks): each listed
/// version is what `get_at` reads at its LSN (at the floor for the oldest, which may predate it), the newest is what `get` reads now, and every key
/// a scan shows is listed (invariant `history`).
pub fn check_history(db: &Db, counts: &mut Counts) -> Result<(), Violation> {
    let fail = |what: String| Violation::new("history", what);
    let h = db
        .history::<&[u8], _>(..)
        .map_err(|e| fail(format!("history(..) failed: {e}")))?;
    // The oldest version listed may predate the floor: it is the one visible at the floor.
    let floor = h.floor();
    let mut listed = std::collections::BTreeSet::new();
    for k in h {
        let k = k.map_err(|e| fail(format!("history(..) item failed: {e}")))?;
        let key = &*k.key;
        let now = db
            .get(key)
            .map_err(|e| fail(format!("get failed: {e}")))?
            .map(|v| v.to_vec());
        let newest = k
            .versions
            .first()
            .and_then(|(_, v)| v.as_ref().map(|v| v.to_vec()));
        if newest != now {
            return Err(fail(format!(
                "key {:?}: history's newest version is {:?}, get reads {:?}",
                String::from_utf8_lossy(key),
                newest.map(|v| v.len()),
                now.map(|v| v.len())
            )));
        }
        for (lsn, v) in &k.versions {
            let read_at = (*lsn).max(floor);
            let at = db.get_at(key, read_at).map_err(|e| {
                fail(format!(
                    "get_at({read_at}) of the version listed at LSN {lsn} failed: {e} (floor {floor})"
                ))
            })?;
            if at.as_deref() != v.as_deref() {
                return Err(fail(format!(
                    "key {:?}: history lists LSN {lsn} as {:?}, get_at reads {:?}",
                    String::from_utf8_lossy(key),
                    v.as_ref().map(|v| v.len()),
                    at.map(|v| v.len())
                )));
            }
        }
        bump(counts, "key histories checked");
        listed.insert(k.key.to_vec());
    }
    let scan = db
        .range::<&[u8], _>(..)
        .map_err(|e| fail(format!("range failed: {e}")))?;
    for item in scan {
        let (key, _) = item.map_err(|e| fail(format!("scan failed: {e}")))?;
        if !listed.contains(&*key) {
            return Err(fail(format!(
                "key {:?} is live but history does not list it",
                String::from_utf8_lossy(&key)
            )));
        }
    }
    Ok(())
}
