//! Checks of optimistic transactions ([`Step::Rmw`]): every one that committed is serializable
//! in LSN order for what it read, and every conflict names a real one.
//!
//! * `serializable`: a transaction that read key `k` (a tracked read, or a tracked scan covering
//!   `k`) at snapshot `S` and committed with LSN `L` must not have been overtaken: no other
//!   acknowledged commit with an LSN in `S+1..L` wrote `k` (that would be a lost update, a write
//!   skew or a phantom).
//! * `conflict`: a transaction refused with `Conflict { by_lsn }` names an LSN above its
//!   snapshot, and when that commit is an acknowledged step of the generation, it wrote a key the
//!   transaction read. (A refusal by an LSN the generation never saw acknowledged is counted, not
//!   judged.)
//!
//! The writes known are those of acknowledged commits; a commit whose acknowledgement was lost
//! cannot be judged either way.

use std::collections::BTreeMap;

use crate::oracle::{AckKind, History, Violation};
use crate::versions::Counts;
use crate::workload::{Step, TxnOutcome, TxnRec, Workload};

fn bump(c: &mut Counts, k: &'static str) {
    *c.entry(k).or_default() += 1;
}

/// Checks the optimistic transactions `recs` of generation `h.gen` against the acknowledged
/// commits of `h`.
pub fn check_txns(wl: &Workload, h: &History, recs: &[TxnRec]) -> Result<Counts, Violation> {
    let gen = h.gen;
    let mut counts = Counts::new();
    // LSN → (step, keys written) of every acknowledged transaction, and the keys it left live
    // (its last write of them a put).
    let mut writes: BTreeMap<u64, (u64, Vec<u16>)> = BTreeMap::new();
    let mut puts: BTreeMap<u64, Vec<u16>> = BTreeMap::new();
    for a in &h.acks {
        if let AckKind::Commit { .. } = a.kind {
            if let Step::Txn { ops, .. } | Step::Rmw { ops, .. } = wl.step(gen, a.step) {
                writes.insert(a.lsn, (a.step, ops.iter().map(|o| o.key).collect()));
                let live = ops
                    .iter()
                    .enumerate()
                    .filter(|&(j, o)| {
                        o.value_len.is_some() && ops[j + 1..].iter().all(|l| l.key != o.key)
                    })
                    .map(|(_, o)| o.key)
                    .collect();
                puts.insert(a.lsn, live);
            }
        }
    }
    // The LSN of the newest write of key `k` at or below `at` this generation acknowledged, and
    // whether it left the key live.
    let newest = |k: u16, at: u64| {
        writes
            .range(..=at)
            .rev()
            .find(|(_, (_, keys))| keys.contains(&k))
            .map(|(&l, _)| (l, puts[&l].contains(&k)))
    };
    for r in recs {
        let Some(s) = r.snapshot else {
            continue;
        };
        let overlap = |keys: &[u16]| keys.iter().copied().find(|&k| r.read(k));
        match r.outcome {
            TxnOutcome::Committed(l) if r.cond.is_some() => {
                // A condition's probe: nothing to commit, serialized at its snapshot.
                bump(&mut counts, "conditions held (probes committed)");
                if l != s {
                    return Err(Violation::new(
                        "serializable",
                        format!(
                            "step {gen}.{}: a transaction that writes nothing committed with LSN {l}, not its snapshot {s}",
                            r.step
                        ),
                    ));
                }
                condition_held(gen, r, s, &newest)?;
            }
            TxnOutcome::Committed(l) => {
                bump(&mut counts, "optimistic transactions committed");
                if l <= s {
                    return Err(Violation::new(
                        "serializable",
                        format!(
                            "step {gen}.{}: committed with LSN {l}, not above its snapshot {s}",
                            r.step
                        ),
                    ));
                }
                for (m, (step, keys)) in writes.range(s + 1..l) {
                    if let Some(k) = overlap(keys) {
                        return Err(Violation::new(
                            "serializable",
                            format!(
                                "step {gen}.{} read k{k:04} at snapshot {s} and committed with LSN {l}, but step {gen}.{step} wrote k{k:04} with LSN {m} in between: a lost update (its commit had to fail with Conflict)",
                                r.step
                            ),
                        ));
                    }
                }
            }
            TxnOutcome::Conflict { by_lsn } => {
                bump(
                    &mut counts,
                    if r.cond.is_some() {
                        "conditions broken (probes refused, checked)"
                    } else {
                        "optimistic transactions refused (conflicts checked)"
                    },
                );
                // A read-modify-write conflicts with a commit after its snapshot; a probe only at
                // its snapshot, with a version of its range above the condition's LSN.
                let refused_rightly = match r.cond {
                    None => by_lsn > s,
                    Some((lo, hi, after)) => {
                        by_lsn > after
                            && by_lsn <= s
                            && puts
                                .get(&by_lsn)
                                .is_none_or(|keys| keys.iter().any(|k| (lo..hi).contains(k)))
                    }
                };
                if !refused_rightly {
                    return Err(Violation::new(
                        "conflict",
                        format!(
                            "step {gen}.{}: refused with a conflict by LSN {by_lsn}, not above its snapshot {s} (or, writing nothing, not a version its condition's range held at the snapshot)",
                            r.step
                        ),
                    ));
                }
                match writes.get(&by_lsn) {
                    Some((step, keys)) if overlap(keys).is_none() => {
                        return Err(Violation::new(
                            "conflict",
                            format!(
                                "step {gen}.{}: refused with a conflict by LSN {by_lsn} (step {gen}.{step}), which wrote none of the keys it read ({:?}, scan {:?})",
                                r.step, r.reads, r.scan
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => bump(&mut counts, "conflicts named an unacknowledged commit"),
                }
            }
            TxnOutcome::Failed(_) => {}
        }
    }
    Ok(counts)
}

/// Checks what a recovered database's log says of its runs (`Db::runs`, `Db::run_changes`)
/// against the model `tl` of the recovered history (its last LSN `last`), named `runs`:
///
/// * every transaction a run lists has an LSN at most `last`, and wrote exactly what the model
///   holds at that LSN (the last write of each key: the workload's value, or a delete) — never a
///   transaction recovery did not keep, never part of one;
/// * every transaction of the model from the oldest LSN the log still holds (LSN 1 when the
///   first run is whole; else the `HistoryTrimmed` its changes start with) up to `last` is listed
///   by some run.
///
/// LSNs where the model does not know the history (a generation that followed a process crash)
/// are not judged.
pub fn check_runs(
    db: &ringlog_db::Db,
    tl: &crate::model::Timeline,
    last: u64,
    counts: &mut Counts,
) -> Result<(), Violation> {
    use crate::workload::{decode_value, parse_key};
    let fail = |what: String| Violation::new("runs", what);
    let runs = match db.runs() {
        Ok(r) => r,
        // No log (an in-memory database): nothing to check.
        Err(ringlog_db::Error::DurabilityUnavailable(_)) => return Ok(()),
        Err(e) => return Err(fail(format!("runs() failed: {e}"))),
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut earliest = if runs.first().is_some_and(|r| r.complete) {
        1
    } else {
        u64::MAX
    };
    for r in &runs {
        let changes = db
            .run_changes(r.id)
            .map_err(|e| fail(format!("run_changes({}) failed: {e}", r.id)))?;
        for c in changes {
            let c = match c {
                Ok(c) => c,
                Err(ringlog_db::Error::HistoryTrimmed {
                    earliest_retained, ..
                }) => {
                    earliest = earliest.min(earliest_retained);
                    continue;
                }
                Err(e) => return Err(fail(format!("run {}: a change failed: {e}", r.id))),
            };
            earliest = earliest.min(c.lsn);
            if c.lsn > last {
                return Err(fail(format!(
                    "run {} lists a transaction with LSN {} above the recovered last LSN {last}",
                    r.id, c.lsn
                )));
            }
            if !seen.insert(c.lsn) {
                return Err(fail(format!("LSN {} is listed twice", c.lsn)));
            }
            // The last write of each key, as the model keeps versions.
            let mut got: BTreeMap<u16, Option<(u64, u16)>> = BTreeMap::new();
            for (k, v) in &c.writes {
                let Some(key) = parse_key(k) else {
                    return Err(fail(format!("LSN {}: key {k:?} is no workload key", c.lsn)));
                };
                let origin = match v {
                    Some(v) => Some(decode_value(key, v).ok_or_else(|| {
                        fail(format!(
                            "LSN {}: the value of k{key:04} is no workload value",
                            c.lsn
                        ))
                    })?),
                    None => None,
                };
                got.insert(key, origin);
            }
            let Some(want) = tl.writes_at(c.lsn) else {
                bump(counts, "run transactions not judged (history unknown)");
                continue;
            };
            let got: Vec<(u16, Option<(u64, u16)>)> = got.into_iter().collect();
            if got != want {
                return Err(fail(format!(
                    "run {} lists at LSN {} the writes {got:?}; the recovered history holds {want:?}",
                    r.id, c.lsn
                )));
            }
            bump(counts, "run transactions checked against the model");
        }
    }
    for lsn in earliest.max(1)..=last {
        if seen.contains(&lsn) {
            continue;
        }
        if let Some(w) = tl.writes_at(lsn) {
            if !w.is_empty() {
                let listed: Vec<String> = runs
                    .iter()
                    .map(|r| {
                        format!(
                            "run {} LSNs {}..={} ({} commits{})",
                            r.id,
                            r.first_lsn,
                            r.last_lsn,
                            r.commits,
                            if r.complete { "" } else { ", trimmed" }
                        )
                    })
                    .collect();
                return Err(fail(format!(
                    "the log's runs do not list LSN {lsn} (the recovered history holds {w:?}), though they hold the log from LSN {earliest}; runs: {}",
                    listed.join("; ")
                )));
            }
        }
    }
    Ok(())
}

/// What a committed probe's condition asks of its snapshot: no key of the range live at
/// snapshot `s` with a version above the condition's LSN (`newest(k, s)`: the LSN of the
/// newest acknowledged write of `k` at or below `s`, and whether it left `k` live).
fn condition_held(
    gen: u32,
    r: &TxnRec,
    s: u64,
    newest: &impl Fn(u16, u64) -> Option<(u64, bool)>,
) -> Result<(), Violation> {
    let Some((lo, hi, after)) = r.cond else {
        return Ok(());
    };
    for k in lo..hi {
        if let Some((m, true)) = newest(k, s).filter(|&(m, _)| m > after) {
            return Err(Violation::new(
                "serializable",
                format!(
                    "step {gen}.{} committed with the condition \"no key of k{lo:04}..k{hi:04} written after LSN {after}\", but k{k:04} held at its snapshot {s} the version of LSN {m}",
                    r.step
                ),
            ));
        }
    }
    Ok(())
}
