//! The committed history as the oracle models it: every version of every key of the workload,
//! with the LSN of the transaction that wrote it, and every retention policy set, so that a read
//! at any LSN — before a crash or after recovery — can be checked against what the database held
//! at that LSN.
//!
//! A timeline is built from acknowledgements (whose LSNs the database returned) in LSN order,
//! which is step order. Across generations it is the previous generation's timeline cut at the
//! LSN its recovered crash state ends with. A timeline made from a recovered state alone (a `kill`
//! child knows only the state it recovered) knows each key's history only back to its newest
//! version there: reads further back are [`Expect::Unknown`].

use std::borrow::Cow;

use crate::oracle::{AckKind, History};
use crate::workload::{txn_id, Step, Workload};

/// Which write a value comes from: (transaction id, operation index).
pub type Origin = (u64, u16);

/// A retention policy as the workload sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// `Retention::Snapshots` (the default): only what live snapshots need.
    Snapshots,
    /// `Retention::All`.
    All,
    /// `Retention::LastVersions(n)`.
    Last(u32),
    /// `Retention::NewerThan` this many milliseconds, on the virtual wall clock the runner moves
    /// step by step ([`crate::workload::Workload::clock_at`]). Which LSN its floor reaches depends
    /// on commit times the model does not keep, so the model promises no history under it (as
    /// under `Snapshots`: a read at an older LSN answers the model's version or
    /// `HistoryTrimmed`); the oracle checks that the floor it raises never moves back.
    NewerThan(u64),
}

impl Policy {
    /// The engine's policy.
    pub fn retention(self) -> ringlog_db::Retention {
        match self {
            Policy::Snapshots => ringlog_db::Retention::Snapshots,
            Policy::All => ringlog_db::Retention::All,
            Policy::Last(n) => ringlog_db::Retention::LastVersions(
                std::num::NonZeroU32::new(n.max(1)).expect("at least one version"),
            ),
            Policy::NewerThan(ms) => {
                ringlog_db::Retention::NewerThan(std::time::Duration::from_millis(ms))
            }
        }
    }

    /// The workload's name of an engine policy (a `NewerThan` window in whole milliseconds, as
    /// the workload sets it).
    pub fn of(r: ringlog_db::Retention) -> Policy {
        match r {
            ringlog_db::Retention::All => Policy::All,
            ringlog_db::Retention::LastVersions(n) => Policy::Last(n.get()),
            ringlog_db::Retention::NewerThan(d) => {
                Policy::NewerThan(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            }
            _ => Policy::Snapshots,
        }
    }

    /// Whether this policy keeps history the model can check (so reads at older versions are
    /// guaranteed): `All` and `LastVersions`, not `Snapshots` nor `NewerThan` (whose floor
    /// follows commit times).
    pub fn keeps_history(self) -> bool {
        matches!(self, Policy::All | Policy::Last(_))
    }
}

/// What the model says a key held at some LSN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The key's version at that LSN: what it holds (`None`: deleted, or never written) and the
    /// version's LSN (0 when it was never written).
    Known(Option<Origin>, u64),
    /// The model does not know (a history older than what a `kill` child recovered).
    Unknown,
}

/// The versions of every key and the retention policies, in LSN order.
#[derive(Clone, Debug)]
pub struct Timeline {
    /// Per key: its versions in ascending LSN order (`None`: a delete).
    versions: Vec<Vec<(u64, Option<Origin>)>>,
    /// Per key: the model does not know the key's history below this LSN.
    unknown_below: Vec<u64>,
    /// Retention policy entries: (LSN, policy), ascending.
    policies: Vec<(u64, Policy)>,
    /// The policy in force before the first entry.
    base_policy: Policy,
    /// Highest LSN of a transaction in the timeline.
    last: u64,
}

impl Timeline {
    /// An empty history over `keys` keys (a new database).
    pub fn new(keys: u16) -> Timeline {
        Timeline {
            versions: vec![Vec::new(); keys as usize],
            unknown_below: vec![0; keys as usize],
            policies: Vec::new(),
            base_policy: Policy::Snapshots,
            last: 0,
        }
    }

    /// What a process that only saw a recovered state knows: each live key's newest version at its
    /// LSN, everything else from `lsn` (the recovered last LSN) on, and the policy in force.
    pub fn from_state(st: &crate::workload::State, lsn: u64, policy: Policy) -> Timeline {
        let mut t = Timeline::new(st.cells.len() as u16);
        for (k, c) in st.cells.iter().enumerate() {
            match c {
                Some(c) => {
                    t.versions[k].push((c.lsn, Some((c.txn, c.op))));
                    t.unknown_below[k] = c.lsn;
                }
                None => t.unknown_below[k] = lsn,
            }
        }
        t.base_policy = policy;
        t.last = lsn;
        t
    }

    /// Number of keys.
    pub fn keys(&self) -> u16 {
        self.versions.len() as u16
    }

    /// Highest LSN of a transaction in the timeline.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The versions the transaction with `lsn` wrote: `(key, origin)` for every key with a
    /// version at exactly `lsn`, in key order; `None` when the model does not know some key's
    /// history there.
    pub fn writes_at(&self, lsn: u64) -> Option<Vec<(u16, Option<Origin>)>> {
        let mut out = Vec::new();
        for (k, v) in self.versions.iter().enumerate() {
            if lsn < self.unknown_below[k] {
                return None;
            }
            if let Ok(i) = v.binary_search_by_key(&lsn, |&(l, _)| l) {
                out.push((k as u16, v[i].1));
            }
        }
        Some(out)
    }

    /// Key `k` at `lsn`: its newest version at or below `lsn`.
    pub fn at(&self, k: u16, lsn: u64) -> Expect {
        let k = k as usize;
        if lsn < self.unknown_below[k] {
            return Expect::Unknown;
        }
        let v = &self.versions[k];
        let i = v.partition_point(|&(l, _)| l <= lsn);
        match i.checked_sub(1) {
            Some(j) => Expect::Known(v[j].1, v[j].0),
            None => Expect::Known(None, 0),
        }
    }

    /// Key `k`'s versions, ascending (those the model knows).
    pub fn versions_of(&self, k: u16) -> &[(u64, Option<Origin>)] {
        &self.versions[k as usize]
    }

    /// The policy in force at `lsn`, and the LSN of the entry that set it (0: the default, or
    /// set before what the model knows).
    pub fn policy_at(&self, lsn: u64) -> (Policy, u64) {
        let i = self.policies.partition_point(|&(l, _)| l <= lsn);
        match i.checked_sub(1) {
            Some(j) => (self.policies[j].1, self.policies[j].0),
            None => (self.base_policy, 0),
        }
    }

    /// The LSN from which `Retention::All` has kept every version, as of `lsn`: the first entry
    /// of the run of `All` entries that ends with the one in force at `lsn` (setting `All` again
    /// keeps what the last one kept). 0 when `All` is not in force at `lsn`, or was set before
    /// what the model knows.
    pub fn all_since(&self, lsn: u64) -> u64 {
        let i = self.policies.partition_point(|&(l, _)| l <= lsn);
        let mut since = 0;
        for &(l, p) in self.policies[..i].iter().rev() {
            if p != Policy::All {
                break;
            }
            since = l;
        }
        since
    }

    /// The first policy entry above `lsn` that keeps history, if any (one a crash that kept the log
    /// up to `lsn` lost).
    pub fn history_policy_after(&self, lsn: u64) -> Option<(u64, Policy)> {
        self.policies
            .iter()
            .copied()
            .find(|&(l, p)| l > lsn && p.keeps_history())
    }

    /// Whether `Retention::LastVersions` was in force at some LSN up to `lsn` (as far as the model
    /// knows): what it trimmed per key stays trimmed after the policy changes.
    pub fn ever_last(&self, lsn: u64) -> bool {
        matches!(self.base_policy, Policy::Last(_))
            || self
                .policies
                .iter()
                .any(|&(l, p)| l <= lsn && matches!(p, Policy::Last(_)))
    }

    /// Appends the effect of step `step` of generation `gen`, committed with `lsn` (a
    /// transaction's writes, or a retention policy); other steps change nothing.
    pub fn push_step(&mut self, wl: &Workload, gen: u32, step: u64, lsn: u64) {
        match wl.step(gen, step) {
            Step::Txn { ops, .. } | Step::Rmw { ops, .. } => {
                let id = txn_id(gen, step);
                for (j, o) in ops.iter().enumerate() {
                    // A transaction writing a key twice leaves its last write: one version.
                    if ops[j + 1..].iter().any(|later| later.key == o.key) {
                        continue;
                    }
                    let w = o.value_len.map(|_| (id, j as u16));
                    self.versions[o.key as usize].push((lsn, w));
                }
                self.last = self.last.max(lsn);
            }
            Step::Retain(p) => {
                self.policies.push((lsn, p));
                self.last = self.last.max(lsn);
            }
            _ => {}
        }
    }

    /// Forgets everything above `lsn` (what a crash lost).
    pub fn truncate(&mut self, lsn: u64) {
        for v in &mut self.versions {
            let i = v.partition_point(|&(l, _)| l <= lsn);
            v.truncate(i);
        }
        let i = self.policies.partition_point(|&(l, _)| l <= lsn);
        self.policies.truncate(i);
        self.last = self.last.min(lsn);
    }

    /// The versions of key `k` a restart keeps under `policy` set at `since` (recovery keeps each
    /// key's newest version before the entry, if it is a value, and every version after it;
    /// `Last(n)` then keeps the newest `n`), when the log ends at `last`. `None` when the model
    /// does not know them all.
    pub fn kept_at_restart(
        &self,
        k: u16,
        policy: Policy,
        since: u64,
        last: u64,
    ) -> Option<Vec<u64>> {
        if since == 0 || self.unknown_below[k as usize] > since.saturating_sub(1) {
            return None;
        }
        let v = &self.versions[k as usize];
        let mut kept: Vec<u64> = Vec::new();
        let before = v.partition_point(|&(l, _)| l < since);
        if let Some(&(l, Some(_))) = before.checked_sub(1).map(|j| &v[j]) {
            kept.push(l);
        }
        kept.extend(
            v[before..]
                .iter()
                .filter(|&&(l, _)| l <= last)
                .map(|&(l, _)| l),
        );
        if let Policy::Last(n) = policy {
            let n = n.max(1) as usize;
            if kept.len() > n {
                kept.drain(..kept.len() - n);
            }
        }
        Some(kept)
    }
}

/// `base` followed by every transaction generation `h` acknowledged (in LSN order; an LSN that
/// does not follow the last one, an I6 violation the oracle reports, is left out).
pub fn with_generation(base: &Timeline, wl: &Workload, h: &History) -> Timeline {
    let mut t = base.clone();
    for a in &h.acks {
        if let AckKind::Commit { .. } = a.kind {
            if a.lsn > t.last {
                t.push_step(wl, h.gen, a.step, a.lsn);
            }
        }
    }
    t
}

/// The model of what a state recovered from generation `h` holds, when it is the prefix of
/// `prefix` steps and its log ends at `last`: `tl` (which holds every acknowledged transaction of
/// the generation) as is, or — when the prefix ends with a step whose LSN was never returned (a
/// failed or interrupted commit that recovery kept) — cut at `last` with that step's writes at
/// `last`.
pub fn recovered_timeline<'a>(
    wl: &Workload,
    h: &History,
    tl: &'a Timeline,
    prefix: u64,
    last: u64,
) -> Cow<'a, Timeline> {
    // Steps without an LSN: failed ones, and those after the last acknowledgement.
    let last_acked = h.acks.iter().map(|a| a.step).max().unwrap_or(0);
    let unacked = (last_acked + 1..=prefix)
        .rev()
        .chain(
            h.acks
                .iter()
                .rev()
                .filter(|a| a.step <= prefix && a.kind == AckKind::Failed)
                .map(|a| a.step),
        )
        .find(|&s| Workload::commits(&wl.step(h.gen, s)));
    match unacked {
        Some(s) if last > 0 => {
            let mut t = tl.clone();
            t.truncate(last - 1);
            t.push_step(wl, h.gen, s, last);
            Cow::Owned(t)
        }
        _ => Cow::Borrowed(tl),
    }
}

/// The base model of the generation after `h`, which starts from a state recovered from it (the
/// prefix of `prefix` steps, its log ending at `last`).
pub fn next_base(wl: &Workload, h: &History, tl: &Timeline, prefix: u64, last: u64) -> Timeline {
    let mut t = recovered_timeline(wl, h, tl, prefix, last).into_owned();
    t.truncate(last);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Cell, State};

    #[test]
    fn versions_at_lsns() {
        let mut st = State::empty(3);
        st.cells[1] = Some(Cell {
            txn: 7,
            op: 0,
            lsn: 5,
        });
        let t = Timeline::from_state(&st, 9, Policy::All);
        assert_eq!(t.at(1, 5), Expect::Known(Some((7, 0)), 5));
        assert_eq!(t.at(1, 9), Expect::Known(Some((7, 0)), 5));
        assert_eq!(t.at(1, 4), Expect::Unknown);
        assert_eq!(t.at(0, 9), Expect::Known(None, 0));
        assert_eq!(t.at(0, 8), Expect::Unknown);
        assert_eq!(t.policy_at(100), (Policy::All, 0));
        let mut t = t;
        t.policies.push((12, Policy::Last(2)));
        t.versions[1].push((13, None));
        t.versions[1].push((15, Some((9, 1))));
        t.last = 15;
        assert_eq!(t.at(1, 14), Expect::Known(None, 13));
        assert_eq!(t.policy_at(12), (Policy::Last(2), 12));
        assert_eq!(
            t.kept_at_restart(1, Policy::Last(2), 12, 15),
            Some(vec![13, 15])
        );
        assert_eq!(
            t.kept_at_restart(1, Policy::All, 12, 15),
            Some(vec![5, 13, 15])
        );
        t.truncate(13);
        assert_eq!(t.at(1, 20), Expect::Known(None, 13));
        assert_eq!(t.policy_at(20), (Policy::Last(2), 12));
        t.truncate(11);
        assert_eq!(t.policy_at(20), (Policy::All, 0));
        // `All` set before what the model knows: no LSN to promise from.
        assert_eq!(t.all_since(20), 0);
        t.policies.push((30, Policy::All));
        t.policies.push((35, Policy::All));
        t.policies.push((40, Policy::Snapshots));
        t.policies.push((44, Policy::All));
        t.policies.push((47, Policy::All));
        t.policies.push((50, Policy::Last(2)));
        assert_eq!(t.all_since(29), 0);
        assert_eq!(t.all_since(30), 30);
        assert_eq!(t.all_since(39), 30, "set again at 35: kept from 30");
        assert_eq!(t.all_since(40), 0);
        assert_eq!(t.all_since(48), 44);
        assert_eq!(t.all_since(50), 0);
    }
}
