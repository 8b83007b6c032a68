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
    // LSN → (step, keys written) of every acknowledged transaction.
    let mut writes: BTreeMap<u64, (u64, Vec<u16>)> = BTreeMap::new();
    for a in &h.acks {
        if let AckKind::Commit { .. } = a.kind {
            if let Step::Txn { ops, .. } | Step::Rmw { ops, .. } = wl.step(gen, a.step) {
                writes.insert(a.lsn, (a.step, ops.iter().map(|o| o.key).collect()));
            }
        }
    }
    for r in recs {
        let Some(s) = r.snapshot else {
            continue;
        };
        let overlap = |keys: &[u16]| keys.iter().copied().find(|&k| r.read(k));
        match r.outcome {
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
                    "optimistic transactions refused (conflicts checked)",
                );
                if by_lsn <= s {
                    return Err(Violation::new(
                        "conflict",
                        format!(
                            "step {gen}.{}: refused with a conflict by LSN {by_lsn}, not above its snapshot {s}",
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
