//! The oracle: given what a generation of the workload did (its acknowledgements) and what a
//! recovered database holds, decide whether the durability contract held.
//!
//! * I1 no value that was never written; I2 every transaction all-or-nothing; I3 the state equals
//!   the model after some prefix of the commit order (no holes);
//! * per mode: the prefix contains every commit acknowledged as durable (a `Strict` commit, a
//!   sync, or anything at or below a durable LSN the database reported) before the crash, and
//!   nothing that had not started before it;
//! * I6: LSNs never go backwards: versions are the LSNs acknowledged, above the LSNs of earlier
//!   generations, and the recovered database counts from at least the highest one visible.
//!
//! I4 (recovery is deterministic and survives a crash of its own) and I5 (the database opens) are
//! checked by the modes, which recover and compare.

use std::fmt;

use crate::workload::{apply, txn_id, Alien, State, Workload};

/// What an acknowledgement says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckKind {
    /// A commit returned. `durable` when it promised durability (a `Strict` commit).
    Commit {
        /// The commit promised durability.
        durable: bool,
    },
    /// `sync()` returned: everything before it is durable.
    Sync,
    /// The step failed: it is indeterminate, and no later step ran.
    Failed,
    /// The step was left out by shrinking: nothing ran.
    Skipped,
}

/// One acknowledgement, recorded outside the crashing code as it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// Workload step (from 1).
    pub step: u64,
    /// What happened.
    pub kind: AckKind,
    /// The commit's LSN (for a sync: the last LSN it covers; 0 when failed).
    pub lsn: u64,
    /// `db.durable_lsn()` right after the step returned.
    pub durable_lsn: u64,
    /// Where in the run it happened (an I/O trace position or a sequence number): a crash at
    /// position `p` comes after every acknowledgement with `at <= p`.
    pub at: u64,
}

/// Everything the oracle needs about one generation of a run.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Generation number (from 1).
    pub gen: u32,
    /// The state the generation started from, verified by the previous check.
    pub base: State,
    /// `db.last_lsn()` when the generation's database was opened.
    pub base_lsn: u64,
    /// Acknowledgements in step order.
    pub acks: Vec<Ack>,
    /// `started[i]` = position at which step `i + 1` started.
    pub started: Vec<u64>,
}

/// What a crash at some position allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// The recovered prefix must contain at least this many steps.
    pub required: u64,
    /// ... and at most this many (steps started before the crash).
    pub allowed: u64,
    /// The acknowledgement that set `required`, if any.
    pub because: Option<Ack>,
}

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Short name: `I1`..`I6`, `durability`, `refused-write`, ...
    pub invariant: &'static str,
    /// What exactly was wrong.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

impl Violation {
    /// A violation of `invariant`.
    pub fn new(invariant: &'static str, detail: impl Into<String>) -> Violation {
        Violation {
            invariant,
            detail: detail.into(),
        }
    }
}

impl History {
    /// Position-independent requirement of each acknowledgement: how many steps it proves durable.
    fn requirement(&self, idx: usize) -> u64 {
        let a = &self.acks[idx];
        let mut req = match a.kind {
            AckKind::Commit { durable: true } => a.step,
            AckKind::Sync => a.step.saturating_sub(1),
            _ => 0,
        };
        // Everything at or below the durable LSN the database reported.
        if a.durable_lsn > self.base_lsn {
            if let Some(b) = self.acks[..=idx]
                .iter()
                .rev()
                .find(|b| matches!(b.kind, AckKind::Commit { .. }) && b.lsn <= a.durable_lsn)
            {
                req = req.max(b.step);
            }
        }
        req
    }

    /// What a crash at position `pos` (after every acknowledgement with `at <= pos`) allows.
    pub fn bounds_at(&self, pos: u64) -> Bounds {
        let mut b = Bounds {
            required: 0,
            allowed: self.started.partition_point(|&s| s < pos) as u64,
            because: None,
        };
        // Acknowledgements are in step order; with concurrent committers their positions are not
        // (a parked Strict step returns after later Buffered ones).
        for (i, a) in self.acks.iter().enumerate() {
            if a.at > pos {
                continue;
            }
            // An acknowledgement before the crash means its step started before it too (a step
            // without I/O starts and ends at the same position).
            b.allowed = b.allowed.max(a.step);
            let r = self.requirement(i);
            if r > b.required {
                b.required = r;
                b.because = Some(*a);
            }
        }
        b
    }

    /// Checks the acknowledgements themselves (I6): LSNs strictly increase and exceed every LSN
    /// of earlier generations.
    pub fn check_acks(&self) -> Result<(), Violation> {
        let mut prev = self.base_lsn;
        for a in &self.acks {
            if let AckKind::Commit { .. } = a.kind {
                if a.lsn <= prev {
                    return Err(Violation::new(
                        "I6",
                        format!(
                            "step {}.{} was acknowledged with LSN {}, not above the previous LSN {prev}",
                            self.gen, a.step, a.lsn
                        ),
                    ));
                }
                prev = a.lsn;
            }
        }
        Ok(())
    }

    fn ack_of(&self, step: u64) -> Option<&Ack> {
        self.acks
            .binary_search_by_key(&step, |a| a.step)
            .ok()
            .map(|i| &self.acks[i])
    }
}

/// The model after every prefix of a generation: `states[n]` = base + steps `1..=n`.
pub struct Prefixes {
    states: Vec<State>,
    hashes: Vec<u64>,
}

fn state_hash(st: &State) -> u64 {
    let mut h = 0u64;
    for (k, c) in st.cells.iter().enumerate() {
        if let Some(c) = c {
            h = h.wrapping_add(crate::rng::mix(&[k as u64, c.txn, c.op as u64]));
        }
    }
    h
}

impl Prefixes {
    /// The prefixes of `steps` steps of generation `gen` starting at `base`.
    pub fn new(wl: &Workload, gen: u32, base: &State, steps: u64) -> Prefixes {
        let mut st = base.clone();
        for c in st.cells.iter_mut().flatten() {
            c.lsn = 0;
        }
        let mut states = Vec::with_capacity(steps as usize + 1);
        states.push(st.clone());
        for i in 1..=steps {
            apply(wl, &mut st, gen, i);
            states.push(st.clone());
        }
        let hashes = states.iter().map(state_hash).collect();
        Prefixes { states, hashes }
    }

    /// Steps covered.
    pub fn len(&self) -> u64 {
        self.states.len() as u64 - 1
    }

    /// Never true: the empty prefix is always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The model after `n` steps.
    pub fn state(&self, n: u64) -> &State {
        &self.states[n as usize]
    }

    /// Every `n` whose model holds the same writes as `st`.
    pub fn matches(&self, st: &State) -> Vec<u64> {
        let h = state_hash(st);
        (0..self.states.len())
            .filter(|&n| self.hashes[n] == h && self.states[n].same_writes(st))
            .map(|n| n as u64)
            .collect()
    }
}

/// The outcome of a successful check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The prefix (number of steps) the recovered state equals; the smallest admissible one.
    pub prefix: u64,
}

/// Checks a recovered state `st` (with `aliens` found while reading it and the recovered
/// database's `last_lsn`) against generation `h` crashed within `bounds`.
pub fn check(
    wl: &Workload,
    h: &History,
    pre: &Prefixes,
    st: &State,
    aliens: &[Alien],
    last_lsn: u64,
    bounds: Bounds,
) -> Result<Verdict, Violation> {
    if let Some(a) = aliens.first() {
        return Err(Violation::new(
            "I1",
            format!(
                "key {} holds a value no write produced: {} ({} such keys)",
                a.key,
                a.why,
                aliens.len()
            ),
        ));
    }
    h.check_acks()?;
    if last_lsn < h.base_lsn {
        return Err(Violation::new(
            "I6",
            format!(
                "the recovered database's last LSN {last_lsn} is below {} of the previous run",
                h.base_lsn
            ),
        ));
    }
    if st.max_lsn() > last_lsn {
        return Err(Violation::new(
            "I6",
            format!(
                "the recovered database's last LSN {last_lsn} is below the version {} of a visible value: its next commit would reuse an LSN",
                st.max_lsn()
            ),
        ));
    }
    let candidates = pre.matches(st);
    if candidates.is_empty() {
        return Err(diagnose(wl, h, pre, st));
    }
    let Some(&n) = candidates
        .iter()
        .find(|&&n| n >= bounds.required && n <= bounds.allowed)
    else {
        let best = *candidates.last().expect("not empty");
        if best < bounds.required {
            let why = bounds
                .because
                .map(|a| {
                    format!(
                        " (step {}.{} acknowledged {:?} with LSN {} and durable LSN {})",
                        h.gen, a.step, a.kind, a.lsn, a.durable_lsn
                    )
                })
                .unwrap_or_default();
            let lost = (best + 1..=bounds.required)
                .filter(|&s| matches!(wl.step(h.gen, s), crate::workload::Step::Txn { .. }))
                .map(|s| format!("{}.{s}", h.gen))
                .collect::<Vec<_>>();
            return Err(Violation::new(
                "durability",
                format!(
                    "acknowledged data lost: the state is the prefix of {best} steps but {} must be durable{why}; lost steps: {}",
                    bounds.required,
                    lost.join(" ")
                ),
            ));
        }
        return Err(Violation::new(
            "I3",
            format!(
                "the state is the prefix of {} steps, but only {} had started before the crash",
                candidates[0], bounds.allowed
            ),
        ));
    };
    // Versions: a visible value carries the LSN its commit was acknowledged with (I6).
    for (k, c) in st.cells.iter().enumerate() {
        let Some(c) = c else { continue };
        let (gen, step) = ((c.txn >> 32) as u32, c.txn & 0xFFFF_FFFF);
        if gen == h.gen {
            if let Some(a) = h.ack_of(step) {
                if matches!(a.kind, AckKind::Commit { .. }) && a.lsn != c.lsn {
                    return Err(Violation::new(
                        "I6",
                        format!(
                            "key {k} holds step {gen}.{step} at version {}, but its commit returned LSN {}",
                            c.lsn, a.lsn
                        ),
                    ));
                }
            } else if c.lsn <= h.base_lsn {
                return Err(Violation::new(
                    "I6",
                    format!(
                        "key {k} holds step {gen}.{step} at version {}, not above the previous run's LSN {}",
                        c.lsn, h.base_lsn
                    ),
                ));
            }
        } else if let Some(b) = h.base.cells[k] {
            if b.txn == c.txn && b.lsn != c.lsn {
                return Err(Violation::new(
                    "I6",
                    format!(
                        "key {k} holds the value of step {gen}.{step} at version {}, which was {} before the crash",
                        c.lsn, b.lsn
                    ),
                ));
            }
        }
    }
    Ok(Verdict { prefix: n })
}

/// Explains why a state matches no prefix: a partial transaction (I2) or a hole (I3).
fn diagnose(wl: &Workload, h: &History, pre: &Prefixes, st: &State) -> Violation {
    let gen = h.gen;
    let in_gen = |c: &crate::workload::Cell| (c.txn >> 32) as u32 == gen;
    // Newest step of this generation visible anywhere.
    let newest = st
        .cells
        .iter()
        .flatten()
        .filter(|c| in_gen(c))
        .map(|c| c.txn & 0xFFFF_FFFF)
        .max()
        .unwrap_or(0);
    // I2: a visible transaction of which some write is missing (and not overwritten later).
    for step in 1..=newest.min(pre.len()) {
        let id = txn_id(gen, step);
        let visible: Vec<usize> = st
            .cells
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_some_and(|c| c.txn == id))
            .map(|(k, _)| k)
            .collect();
        if visible.is_empty() {
            continue;
        }
        let after = pre.state(step);
        for (k, want) in after.cells.iter().enumerate() {
            if want.is_some_and(|w| w.txn == id) || (want.is_none() && touched(wl, gen, step, k)) {
                let got = st.cells[k];
                let newer = got.is_some_and(|g| in_gen(&g) && (g.txn & 0xFFFF_FFFF) > step);
                let same = match (want, got) {
                    (Some(w), Some(g)) => w.txn == g.txn && w.op == g.op,
                    (None, None) => true,
                    _ => false,
                };
                if !same && !newer && !overwritten_later(wl, gen, step, newest, k) {
                    return Violation::new(
                        "I2",
                        format!(
                            "step {gen}.{step} is partially visible: keys {visible:?} show it, key {k} shows {}",
                            got.map(|g| format!("{}.{}/{}", g.txn >> 32, g.txn & 0xFFFF_FFFF, g.op))
                                .unwrap_or_else(|| "nothing".into())
                        ),
                    );
                }
            }
        }
    }
    // I3: the newest visible step's prefix differs elsewhere: an earlier step is missing.
    let model = pre.state(newest.min(pre.len()));
    let diff: Vec<String> = model
        .cells
        .iter()
        .zip(&st.cells)
        .enumerate()
        .filter(|(_, (m, s))| m.map(|c| (c.txn, c.op)) != s.map(|c| (c.txn, c.op)))
        .map(|(k, (m, s))| {
            let f = |c: &Option<crate::workload::Cell>| {
                c.map(|c| format!("{}.{}/{}", c.txn >> 32, c.txn & 0xFFFF_FFFF, c.op))
                    .unwrap_or_else(|| "nothing".into())
            };
            format!("key {k}: model {} vs {}", f(m), f(s))
        })
        .take(4)
        .collect();
    Violation::new(
        "I3",
        format!(
            "the state equals no prefix of the commit order (a hole): newest visible step {gen}.{newest}; {}",
            diff.join("; ")
        ),
    )
}

fn touched(wl: &Workload, gen: u32, step: u64, k: usize) -> bool {
    matches!(wl.step(gen, step), crate::workload::Step::Txn { ops, .. } if ops.iter().any(|o| o.key as usize == k))
}

fn overwritten_later(wl: &Workload, gen: u32, step: u64, upto: u64, k: usize) -> bool {
    (step + 1..=upto).any(|s| touched(wl, gen, s, k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Cell, Mode, Step, WorkloadConfig};
    use std::time::Duration;

    fn wl() -> Workload {
        Workload::new(WorkloadConfig {
            seed: 11,
            mode: Mode::Strict,
            keys: 12,
            interval: Duration::from_millis(5),
            max_pending: 1 << 16,
            real_time: false,
        })
    }

    fn with_lsns(st: &State, lsn_of: impl Fn(u64) -> u64) -> State {
        let mut s = st.clone();
        for c in s.cells.iter_mut().flatten() {
            c.lsn = lsn_of(c.txn & 0xFFFF_FFFF);
        }
        s
    }

    fn history(w: &Workload, steps: u64) -> History {
        let mut h = History {
            gen: 1,
            base: State::empty(w.cfg.keys),
            ..History::default()
        };
        for s in 1..=steps {
            h.started.push(s * 10);
            let kind = if w.step(1, s) == Step::Sync {
                AckKind::Sync
            } else {
                AckKind::Commit { durable: true }
            };
            h.acks.push(Ack {
                step: s,
                kind,
                lsn: s,
                durable_lsn: s,
                at: s * 10 + 5,
            });
        }
        h
    }

    #[test]
    fn accepts_every_admissible_prefix_and_rejects_loss() {
        let w = wl();
        let h = history(&w, 40);
        let pre = Prefixes::new(&w, 1, &h.base, 40);
        for n in 0..=40 {
            let st = with_lsns(pre.state(n), |s| s);
            // A crash right after step n's acknowledgement requires it.
            let b = h.bounds_at(n * 10 + 5);
            let v = check(&w, &h, &pre, &st, &[], 40, b);
            assert!(v.is_ok(), "n={n}: {v:?}");
            // A crash later requires more than n: loss (unless later steps change nothing).
            let later = h.bounds_at(40 * 10 + 5);
            let r = check(&w, &h, &pre, &st, &[], 40, later);
            if pre.matches(&st).contains(&40) {
                assert!(r.is_ok());
            } else {
                assert_eq!(r.unwrap_err().invariant, "durability", "n={n}");
            }
        }
    }

    #[test]
    fn catches_aliens_partial_transactions_holes_and_lsn_reuse() {
        let w = wl();
        let h = history(&w, 40);
        let pre = Prefixes::new(&w, 1, &h.base, 40);
        let all = h.bounds_at(u64::MAX);
        let alien = Alien {
            key: "k0001".into(),
            why: "x".into(),
        };
        let full = with_lsns(pre.state(40), |s| s);
        assert_eq!(
            check(&w, &h, &pre, &full, &[alien], 40, all)
                .unwrap_err()
                .invariant,
            "I1"
        );
        // A multi-key transaction with one of its writes removed.
        let step = (1..=40)
            .find(|&s| {
                matches!(w.step(1, s), Step::Txn { ref ops, .. } if ops.iter().filter(|o| o.value_len.is_some()).map(|o| o.key).collect::<std::collections::HashSet<_>>().len() >= 2)
            })
            .expect("the workload has multi-key transactions");
        let mut partial = with_lsns(pre.state(step), |s| s);
        let k = partial
            .cells
            .iter()
            .position(|c| c.is_some_and(|c| c.txn == txn_id(1, step)))
            .unwrap();
        partial.cells[k] = pre.state(step - 1).cells[k].map(|c| Cell {
            lsn: c.txn & 0xFFFF_FFFF,
            ..c
        });
        let loose = Bounds {
            required: 0,
            allowed: 40,
            because: None,
        };
        let v = check(&w, &h, &pre, &partial, &[], 40, loose).unwrap_err();
        assert!(v.invariant == "I2" || v.invariant == "I3", "{v}");
        // LSN reuse: the database would count from below a visible version.
        let v = check(&w, &h, &pre, &full, &[], full.max_lsn() - 1, all).unwrap_err();
        assert_eq!(v.invariant, "I6");
        // Version mismatch with the acknowledged LSN.
        let shifted = with_lsns(pre.state(40), |s| s + 1);
        let v = check(&w, &h, &pre, &shifted, &[], 41, all).unwrap_err();
        assert_eq!(v.invariant, "I6");
    }
}
