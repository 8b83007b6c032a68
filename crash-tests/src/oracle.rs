//! The oracle: given what a generation of the workload did (its acknowledgements) and what a
//! recovered database holds, decide whether the durability contract held.
//!
//! * I1 no value that was never written; I2 every transaction all-or-nothing; I3 the state equals
//!   the model after some prefix of the commit order (no holes);
//! * per mode: the prefix contains every commit acknowledged as durable (a `Strict` commit, a
//!   sync, or anything at or below a durable LSN the database reported) before the crash, and
//!   nothing that had not started before it;
//! * I6: LSNs never go backwards and are never reused: versions are the LSNs acknowledged, above
//!   every LSN acknowledged by an earlier generation (lost or not: LSN leases), the recovered
//!   database's last LSN is the one of the last transaction of the prefix it holds, and its next
//!   LSN is above every LSN acknowledged before the crash (gaps are allowed);
//! * visibility: a read that saw the database at an LSN saw every `Strict` commit up to it, which
//!   must therefore survive the crash like an acknowledged one.
//!
//! I4 (recovery is deterministic and survives a crash of its own) and I5 (the database opens) are
//! checked by the modes, which recover and compare.

use std::fmt;

use crate::workload::{apply, txn_id, Alien, State, Step, Workload};

/// How a step that returned is acknowledged: a sync, a commit (durable when it promised so), or
/// a step that commits nothing.
pub fn ack_kind(wl: &Workload, step: &crate::workload::Step) -> AckKind {
    match step {
        crate::workload::Step::Sync => AckKind::Sync,
        s if Workload::commits(s) => AckKind::Commit {
            durable: wl.promises_durability(s),
        },
        _ => AckKind::Skipped,
    }
}

/// A read that saw the database at an LSN, before a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Where it happened (trace position): a crash at `p >= at` comes after it.
    pub at: u64,
    /// The LSN it read at (every transaction up to it was visible).
    pub lsn: u64,
    /// The step that read.
    pub step: u64,
}

/// What the recovered database says about its LSNs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// `db.last_lsn()`: the newest visible LSN.
    pub visible: u64,
    /// `db.recovery_stats().last_lsn`: the last transaction recovery applied.
    pub last: u64,
    /// `db.next_lsn()`: the LSN the next commit would get (unknown from an ack log).
    pub next: Option<u64>,
}

impl Recovered {
    /// Reads them from a database just opened.
    pub fn of(db: &ringlog_db::Db) -> Recovered {
        Recovered {
            visible: db.last_lsn(),
            last: db.recovery_stats().last_lsn,
            next: Some(db.next_lsn()),
        }
    }

    /// Checks them against each other (I6): the visible LSN is the last recovered one, and the
    /// next LSN is above it.
    pub fn check(&self) -> Result<(), Violation> {
        if self.visible != self.last {
            return Err(Violation::new(
                "I6",
                format!(
                    "after recovery the visible LSN is {}, but the last transaction recovered has LSN {}",
                    self.visible, self.last
                ),
            ));
        }
        if let Some(next) = self.next.filter(|&n| n <= self.last) {
            return Err(Violation::new(
                "I6",
                format!(
                    "the recovered database would number its next commit {next}, not above its last LSN {}: an LSN reused",
                    self.last
                ),
            ));
        }
        Ok(())
    }

    /// Only the last LSN is known (an ack log's start line).
    pub fn at(last: u64) -> Recovered {
        Recovered {
            visible: last,
            last,
            next: None,
        }
    }
}

/// The recovery of a cleanly closed database: a clean close synced everything it wrote, so the
/// open that follows finds nothing to cut — no torn tail, no torn segment to remove, nothing
/// quarantined, no `truncated_at` ("clean-close"); and when no earlier run of the database
/// crashed (`after_a_crash` false), no incomplete transaction and no record outside one either.
/// (A crash leaves its torn transaction's first records in a segment the next run closes without
/// changing — closed segments are never modified — so every later open counts them again; a
/// leftover file may be removed: the close deletes segments its MANIFEST no longer needs without
/// syncing the directory after, so a power loss may bring one back for the open to remove.)
/// Damage a recovery cuts here without losing a step (the log appended in place after a torn
/// tail it had cut, say) is still a broken invariant: the next crash could cost more.
pub fn nothing_cut(
    stats: &ringlog_db::RecoveryStats,
    after_a_crash: bool,
) -> Result<(), Violation> {
    let unfinished = if after_a_crash {
        [0, 0]
    } else {
        [stats.transactions_incomplete, stats.orphaned_records]
    };
    let cut = [
        ("bytes truncated", stats.bytes_truncated),
        ("incomplete transactions", unfinished[0]),
        ("orphaned records", unfinished[1]),
        ("torn segments removed", stats.torn_segments_removed as u64),
        ("segments quarantined", stats.segments_quarantined as u64),
    ];
    let found: Vec<String> = cut
        .iter()
        .filter(|(_, n)| *n != 0)
        .map(|(what, n)| format!("{n} {what}"))
        .collect();
    if found.is_empty() && stats.truncated_at.is_none() {
        return Ok(());
    }
    let at = stats
        .truncated_at
        .as_ref()
        .map(|(f, o)| format!(", cut at {} offset {o}", f.display()))
        .unwrap_or_default();
    Err(Violation::new(
        "clean-close",
        format!(
            "the open after a clean close cut something: {}{at}",
            found.join(", ")
        ),
    ))
}

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
    /// An optimistic transaction was refused with a conflict: it wrote nothing and has no LSN.
    Refused,
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
    /// The highest LSN acknowledged by an earlier generation before its crash (whether the crash
    /// kept it or not): every LSN of this one must be above it.
    pub acked_before: u64,
    /// The trim floor reads observed in earlier generations before their crashes.
    pub floor_before: u64,
    /// Reads that saw the database at an LSN (in the order they happened).
    pub seen: Vec<Seen>,
    /// Trim floors observed: (position, floor) of scans refused below it.
    pub floors: Vec<(u64, u64)>,
    /// Where the generation's clean close returned (its trace position), if it closed cleanly:
    /// a crash at or after it finds what a clean close leaves.
    pub closed_at: Option<u64>,
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
    /// A read before the crash that saw a `Strict` commit and so set `required`: (the read's
    /// step, the LSN it saw, the `Strict` step).
    pub seen: Option<(u64, u64, u64)>,
    /// The highest LSN acknowledged before the crash, in this generation or an earlier one: the
    /// recovered database must hand out LSNs above it. 0: not checked.
    pub acked: u64,
    /// The highest trim floor a read observed before the crash (0: none).
    pub floor: u64,
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
            seen: None,
            acked: self.acked_before,
            floor: self.floor_before,
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
            if let AckKind::Commit { .. } = a.kind {
                b.acked = b.acked.max(a.lsn);
            }
        }
        // A read that saw LSN V saw every Strict commit up to V, which is visible only once
        // durable: each must survive, and everything before it.
        let strict: Vec<&Ack> = self
            .acks
            .iter()
            .filter(|a| a.kind == AckKind::Commit { durable: true })
            .collect();
        for s in self.seen.iter().filter(|s| s.at <= pos) {
            let i = strict.partition_point(|a| a.lsn <= s.lsn);
            if let Some(a) = i.checked_sub(1).map(|j| strict[j]) {
                if a.step > b.required {
                    b.required = a.step;
                    b.because = None;
                    b.seen = Some((s.step, s.lsn, a.step));
                }
            }
            b.allowed = b.allowed.max(s.step);
        }
        for &(at, f) in &self.floors {
            if at <= pos {
                b.floor = b.floor.max(f);
            }
        }
        b
    }

    /// LSNs of the commits that promised durability, with their steps, ascending.
    pub fn strict_lsns(&self) -> Vec<(u64, u64)> {
        self.acks
            .iter()
            .filter(|a| a.kind == AckKind::Commit { durable: true })
            .map(|a| (a.lsn, a.step))
            .collect()
    }

    /// Checks the acknowledgements themselves (I6): LSNs strictly increase and exceed every LSN
    /// of earlier generations, and every LSN an earlier generation acknowledged, even if its crash
    /// lost that commit (gaps are allowed; reuse is not).
    pub fn check_acks(&self) -> Result<(), Violation> {
        let mut prev = self.base_lsn;
        for a in &self.acks {
            if let AckKind::Commit { .. } = a.kind {
                if a.lsn <= self.acked_before {
                    return Err(Violation::new(
                        "I6",
                        format!(
                            "step {}.{} was acknowledged with LSN {}, but an earlier generation had returned LSNs up to {} before its crash (the crash lost those above {}): an LSN names two different transactions",
                            self.gen, a.step, a.lsn, self.acked_before, self.base_lsn
                        ),
                    ));
                }
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

    /// The acknowledgement of `step`, if any.
    pub fn ack_of(&self, step: u64) -> Option<&Ack> {
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
    /// `lsns[n]`: the LSN of the last transaction of steps `1..=n` (the base's last LSN when
    /// none commits), `None` when a step of it that commits has no known LSN (not acknowledged).
    lsns: Vec<Option<u64>>,
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
    /// The prefixes of `steps` steps of generation `h.gen` starting at `h.base`, and the LSNs
    /// they end with (from `h`'s acknowledgements).
    pub fn new(wl: &Workload, h: &History, steps: u64) -> Prefixes {
        let (gen, base) = (h.gen, &h.base);
        let mut lsns = Vec::with_capacity(steps as usize + 1);
        let mut last = Some(h.base_lsn);
        lsns.push(last);
        for i in 1..=steps {
            let step = wl.step(gen, i);
            if Workload::commits(&step) {
                // A refused transaction committed nothing: the prefix ends where it began.
                if h.ack_of(i).is_none_or(|a| a.kind != AckKind::Refused) {
                    last = h
                        .ack_of(i)
                        .filter(|a| matches!(a.kind, AckKind::Commit { .. }))
                        .map(|a| a.lsn);
                }
            } else if step == Step::Checkpoint {
                // A checkpoint may commit transactions of its own (value-log garbage
                // collection's, before it chooses its LSN); it runs alone, so its LSN, once it
                // returned, is the last assigned through it; one that did not return may have
                // made its own durable or not.
                last = match h.ack_of(i).filter(|a| a.kind == AckKind::Skipped) {
                    Some(a) => last.map(|l| l.max(a.lsn)),
                    None => None,
                };
            }
            lsns.push(last);
        }
        let mut st = base.clone();
        for c in st.cells.iter_mut().flatten() {
            c.lsn = 0;
        }
        let mut states = Vec::with_capacity(steps as usize + 1);
        states.push(st.clone());
        for i in 1..=steps {
            if h.ack_of(i).is_none_or(|a| a.kind != AckKind::Refused) {
                apply(wl, &mut st, gen, i);
            }
            states.push(st.clone());
        }
        let hashes = states.iter().map(state_hash).collect();
        Prefixes {
            states,
            hashes,
            lsns,
        }
    }

    /// The LSN of the last transaction of the prefix of `n` steps, if known.
    pub fn lsn(&self, n: u64) -> Option<u64> {
        self.lsns.get(n as usize).copied().flatten()
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
    /// The prefix (number of steps) the recovered state equals and its last LSN names; the
    /// smallest admissible one.
    pub prefix: u64,
}

/// Checks a recovered state `st` (with `aliens` found while reading it and the recovered
/// database's LSNs `rec`) against generation `h` crashed within `bounds`.
pub fn check(
    wl: &Workload,
    h: &History,
    pre: &Prefixes,
    st: &State,
    aliens: &[Alien],
    rec: Recovered,
    bounds: Bounds,
) -> Result<Verdict, Violation> {
    let last_lsn = rec.last;
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
    rec.check()?;
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
    // The recovered log ends with the last transaction of the prefix it holds: its LSN tells
    // apart prefixes of the same state (a step may commit without changing a key).
    let named: Vec<u64> = candidates
        .iter()
        .copied()
        .filter(|&n| pre.lsn(n).is_none_or(|l| l == last_lsn))
        .collect();
    if named.is_empty() {
        return Err(Violation::new(
            "I6",
            format!(
                "the recovered log ends at LSN {last_lsn}, but the state is the prefix of {} step(s) of generation {}, whose last transaction has LSN {}",
                candidates
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
                h.gen,
                candidates
                    .iter()
                    .map(|&n| pre.lsn(n).unwrap_or(0).to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        ));
    }
    let candidates = named;
    let named = candidates
        .iter()
        .copied()
        .find(|&n| n >= bounds.required && n <= bounds.allowed);
    let Some(n) = named else {
        let best = *candidates.last().expect("not empty");
        if best < bounds.required {
            let why = match (bounds.because, bounds.seen) {
                (Some(a), _) => format!(
                    " (step {}.{} acknowledged {:?} with LSN {} and durable LSN {})",
                    h.gen, a.step, a.kind, a.lsn, a.durable_lsn
                ),
                (None, Some((r, lsn, s))) => format!(
                    " (step {g}.{r} read the database at LSN {lsn}, which includes the Strict commit of step {g}.{s}: a Strict commit is visible only once durable)",
                    g = h.gen
                ),
                _ => String::new(),
            };
            let lost = (best + 1..=bounds.required)
                .filter(|&s| Workload::commits(&wl.step(h.gen, s)))
                .map(|s| format!("{}.{s}", h.gen))
                .collect::<Vec<_>>();
            let invariant = if bounds.because.is_none() && bounds.seen.is_some() {
                "visibility"
            } else {
                "durability"
            };
            return Err(Violation::new(
                invariant,
                format!(
                    "{} lost: the state is the prefix of {best} steps but {} must be durable{why}; lost steps: {}",
                    if invariant == "visibility" {
                        "data a reader saw"
                    } else {
                        "acknowledged data"
                    },
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
    // The next LSN is above every LSN acknowledged before the crash, also those of commits the
    // crash lost (checked after the data: a loss of acknowledged data explains it first).
    if let Some(next) = rec.next {
        if bounds.acked != 0 && next <= bounds.acked {
            return Err(Violation::new(
                "I6",
                format!(
                    "the recovered database would number its next commit {next}, but LSNs up to {} were acknowledged before the crash (the last recovered is {last_lsn}): an acknowledged LSN would name other data",
                    bounds.acked
                ),
            ));
        }
    }
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
    matches!(wl.step(gen, step), crate::workload::Step::Txn { ops, .. } | crate::workload::Step::Rmw { ops, .. } if ops.iter().any(|o| o.key as usize == k))
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

    /// After a clean close, any cut is a violation (a leftover file removed is not).
    #[test]
    fn nothing_cut_after_a_clean_close() {
        let mut st = ringlog_db::RecoveryStats::default();
        st.leftovers_removed = 1;
        assert!(nothing_cut(&st, false).is_ok());
        // An earlier crash's torn transaction stays in the segment it closed.
        st.transactions_incomplete = 1;
        st.orphaned_records = 2;
        assert!(nothing_cut(&st, true).is_ok());
        assert!(nothing_cut(&st, false).is_err());
        type Set = fn(&mut ringlog_db::RecoveryStats);
        let cuts: [Set; 7] = [
            |s| s.bytes_truncated = 4096,
            |s| s.transactions_incomplete = 1,
            |s| s.orphaned_records = 1,
            |s| s.torn_segments_removed = 1,
            |s| s.segments_quarantined = 1,
            |s| s.truncated_at = Some(("x.log".into(), 512)),
            |s| {
                s.bytes_truncated = 1;
                s.truncated_at = Some(("x.log".into(), 0));
            },
        ];
        for (i, set) in cuts.iter().enumerate() {
            let mut st = ringlog_db::RecoveryStats::default();
            set(&mut st);
            let v = nothing_cut(&st, i > 2).expect_err(&format!("cut {i} must be a violation"));
            assert_eq!(v.invariant, "clean-close");
        }
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
            let step = w.step(1, s);
            let kind = if step == Step::Sync {
                AckKind::Sync
            } else if Workload::commits(&step) {
                AckKind::Commit { durable: true }
            } else {
                AckKind::Skipped
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

    /// The LSN the recovered log ends with after the prefix of `n` steps.
    fn lsn_of(h: &History, n: u64) -> u64 {
        h.acks
            .iter()
            .filter(|a| a.step <= n && matches!(a.kind, AckKind::Commit { .. }))
            .map(|a| a.lsn)
            .max()
            .unwrap_or(0)
    }

    fn rec(last: u64) -> Recovered {
        Recovered {
            visible: last,
            last,
            next: Some(last + 1),
        }
    }

    #[test]
    fn accepts_every_admissible_prefix_and_rejects_loss() {
        let w = wl();
        let h = history(&w, 40);
        let pre = Prefixes::new(&w, &h, 40);
        for n in 0..=40 {
            let st = with_lsns(pre.state(n), |s| s);
            // A crash right after step n's acknowledgement requires it.
            let b = h.bounds_at(n * 10 + 5);
            let v = check(&w, &h, &pre, &st, &[], rec(lsn_of(&h, n)), b);
            assert!(v.is_ok(), "n={n}: {v:?}");
            // A crash later requires more than n: loss (unless later steps change nothing).
            let later = h.bounds_at(40 * 10 + 5);
            let r = check(&w, &h, &pre, &st, &[], rec(lsn_of(&h, n)), later);
            if pre.matches(&st).contains(&40) && lsn_of(&h, n) == lsn_of(&h, 40) {
                assert!(r.is_ok());
            } else {
                let v = r.unwrap_err();
                assert!(
                    v.invariant == "durability" || v.invariant == "I6",
                    "n={n}: {v}"
                );
            }
        }
    }

    #[test]
    fn catches_aliens_partial_transactions_holes_and_lsn_reuse() {
        let w = wl();
        let h = history(&w, 40);
        let pre = Prefixes::new(&w, &h, 40);
        let all = h.bounds_at(u64::MAX);
        let alien = Alien {
            key: "k0001".into(),
            why: "x".into(),
        };
        let full = with_lsns(pre.state(40), |s| s);
        let end = rec(lsn_of(&h, 40));
        assert!(check(&w, &h, &pre, &full, &[], end, all).is_ok());
        assert_eq!(
            check(&w, &h, &pre, &full, &[alien], end, all)
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
            seen: None,
            acked: 0,
            floor: 0,
        };
        let v = check(&w, &h, &pre, &partial, &[], rec(lsn_of(&h, step)), loose).unwrap_err();
        assert!(v.invariant == "I2" || v.invariant == "I3", "{v}");
        // LSN reuse: the database would count from below a visible version.
        let v = check(&w, &h, &pre, &full, &[], rec(full.max_lsn() - 1), all).unwrap_err();
        assert_eq!(v.invariant, "I6");
        // ... or hand out an LSN acknowledged before the crash again.
        let mut lost = rec(lsn_of(&h, 40));
        lost.next = Some(lsn_of(&h, 40));
        let v = check(&w, &h, &pre, &full, &[], lost, all).unwrap_err();
        assert_eq!(v.invariant, "I6");
        // ... or the visible LSN lags the recovered one.
        let mut lag = rec(lsn_of(&h, 40));
        lag.visible -= 1;
        let v = check(&w, &h, &pre, &full, &[], lag, all).unwrap_err();
        assert_eq!(v.invariant, "I6");
        // ... or the log ends at an LSN that is not the prefix's.
        let v = check(&w, &h, &pre, &full, &[], rec(lsn_of(&h, 40) + 1), all).unwrap_err();
        assert_eq!(v.invariant, "I6");
        // Version mismatch with the acknowledged LSN.
        let shifted = with_lsns(pre.state(40), |s| s + 1);
        let v = check(&w, &h, &pre, &shifted, &[], rec(lsn_of(&h, 40) + 1), all).unwrap_err();
        assert_eq!(v.invariant, "I6");
    }

    #[test]
    fn a_read_that_saw_a_strict_commit_requires_it() {
        let w = wl();
        let mut h = history(&w, 40);
        // A Strict commit's acknowledgement comes late (after position 1000), but a read right
        // after the commit started saw the database at its LSN.
        let s = (1..=30)
            .rev()
            .find(|&s| matches!(w.step(1, s), Step::Txn { .. }))
            .unwrap();
        let a = h.acks.iter_mut().find(|a| a.step == s).unwrap();
        a.at = 1000;
        let seen_lsn = a.lsn;
        h.seen.push(Seen {
            at: s * 10 + 2,
            lsn: seen_lsn,
            step: s + 1,
        });
        let b = h.bounds_at(s * 10 + 2);
        assert_eq!(b.required, s);
        assert_eq!(b.seen, Some((s + 1, seen_lsn, s)));
        assert!(h.bounds_at(s * 10 + 1).required < s, "before the read");
        let pre = Prefixes::new(&w, &h, 40);
        let st = with_lsns(pre.state(s - 1), |x| x);
        if !pre.matches(&st).contains(&s) {
            let v = check(&w, &h, &pre, &st, &[], rec(lsn_of(&h, s - 1)), b).unwrap_err();
            assert_eq!(v.invariant, "visibility", "{v}");
        }
    }
}
