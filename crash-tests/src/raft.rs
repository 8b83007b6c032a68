//! `raft` mode: the openraft log store of `ringlog-openraft` on the simulated disk.
//!
//! A Raft node's storage calls, driven by a seeded workload — appends of 1–8 entries (each
//! acknowledged when its flush callback fires), votes, truncations and purges (each acknowledged
//! when it returns) — run against a database on the simulated disk, recording the trace position
//! of every acknowledgement and of every truncation's and purge's start. Then every crash state
//! of the trace (power loss at every point, torn per the tear model) is opened and checked
//! against what was acknowledged before that point ([`Model`], shared with the SIGKILL test in
//! `crash-tests/tests/raft_kill.rs`): every acknowledged entry not truncated or purged since is
//! there with its payload, the vote is at least the last saved, the purged id at least the last
//! acknowledged, there is no hole, and no entry above an acknowledged truncation predates it. A
//! truncation or purge that started but was not acknowledged may or may not have happened.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::testing::log_id;
use openraft::type_config::TypeConfigExt;
use openraft::RaftLogReader;
use ringlog_db::{Db, Options};
use ringlog_openraft::{LogStore, Request, TypeConfig};

use crate::oracle::Violation;
use crate::power::PowerOptions;
use crate::report::{Failure, Progress, Summary};
use crate::rng::Rng;
use crate::setup::Setup;
use crate::sim::{Image, SimVfs};

type Entry = openraft::alias::EntryOf<TypeConfig>;
type Vote = openraft::alias::VoteOf<TypeConfig>;

/// The store's key prefix in the workload's database.
pub const PREFIX: &[u8] = b"raft/";

/// One acknowledgement (or intent) of the workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ack {
    /// Entries `first..=last`, written in `term` by generation `gen`, are durable (callback).
    Appended {
        /// First index.
        first: u64,
        /// Last index.
        last: u64,
        /// Their term.
        term: u64,
        /// The workload's generation (bumped by each truncation) that wrote them.
        gen: u64,
    },
    /// A vote of `term` was saved, committed (a leader's, granted by a quorum) or not.
    Voted(u64, bool),
    /// A truncation after `index` starts (not yet acknowledged).
    Truncating(u64),
    /// The truncation after `index` returned; entries written after it have generation ≥ `gen`.
    Truncated(u64, u64),
    /// A purge through `index` starts.
    Purging(u64),
    /// The purge through `index` returned.
    Purged(u64),
    /// `save_committed` of the log id at `index` starts (not required to be durable: openraft
    /// re-applies what a crash lost).
    Committing(u64),
}

impl Ack {
    /// The ack line the SIGKILL test's child writes.
    pub fn line(&self) -> String {
        match self {
            Ack::Appended {
                first,
                last,
                term,
                gen,
            } => format!("A {first} {last} {term} {gen}"),
            Ack::Voted(t, c) => format!("V {t} {}", u8::from(*c)),
            Ack::Truncating(i) => format!("t {i}"),
            Ack::Truncated(i, g) => format!("T {i} {g}"),
            Ack::Purging(i) => format!("p {i}"),
            Ack::Purged(i) => format!("P {i}"),
            Ack::Committing(i) => format!("c {i}"),
        }
    }

    /// Parses [`Ack::line`]; `None` for a line a kill cut short.
    pub fn parse(line: &str) -> Option<Ack> {
        let w: Vec<&str> = line.split(' ').collect();
        let n = |i: usize| w.get(i)?.parse::<u64>().ok();
        Some(match *w.first()? {
            "A" => Ack::Appended {
                first: n(1)?,
                last: n(2)?,
                term: n(3)?,
                gen: n(4)?,
            },
            // (A line without the committed flag, as written before it was recorded: not.)
            "V" => Ack::Voted(n(1)?, n(2).is_some_and(|c| c == 1)),
            "t" => Ack::Truncating(n(1)?),
            "T" => Ack::Truncated(n(1)?, n(2)?),
            "p" => Ack::Purging(n(1)?),
            "P" => Ack::Purged(n(1)?),
            "c" => Ack::Committing(n(1)?),
            _ => return None,
        })
    }
}

/// The payload of entry `index` written in `term` by generation `gen`.
pub fn payload(gen: u64, term: u64, index: u64) -> String {
    format!("{gen}-{term}-{index}")
}

/// What a sequence of acknowledgements promises about the recovered log.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// Acknowledged entries still required: index → payload.
    pub entries: BTreeMap<u64, String>,
    /// The last saved vote: its term, and whether it was committed (at one term a committed vote
    /// is the later one).
    pub vote: (u64, bool),
    /// The last acknowledged purge.
    pub purged: u64,
    /// The last acknowledged truncation (after index, generation).
    pub truncated: Option<(u64, u64)>,
    /// A truncation (after index) or a purge (through index) in flight.
    pub maybe_after: Option<u64>,
    /// See `maybe_after`.
    pub maybe_through: Option<u64>,
    /// The highest index ever passed to `save_committed` (0: none).
    pub committed_max: u64,
}

impl Model {
    /// Applies one acknowledgement.
    pub fn apply(&mut self, a: &Ack) {
        match *a {
            Ack::Appended {
                first,
                last,
                term,
                gen,
            } => {
                self.entries.retain(|&i, _| i < first);
                for i in first..=last {
                    self.entries.insert(i, payload(gen, term, i));
                }
            }
            Ack::Voted(t, c) => self.vote = self.vote.max((t, c)),
            Ack::Truncating(i) => self.maybe_after = Some(i),
            Ack::Truncated(i, g) => {
                self.maybe_after = None;
                self.entries.retain(|&k, _| k <= i);
                self.truncated = Some((i, g));
            }
            Ack::Purging(i) => self.maybe_through = Some(i),
            Ack::Committing(i) => self.committed_max = self.committed_max.max(i),
            Ack::Purged(i) => {
                self.maybe_through = None;
                self.entries.retain(|&k, _| k > i);
                self.purged = self.purged.max(i);
            }
        }
    }

    /// Checks a recovered store against the model: `Err(what is wrong)`.
    pub async fn check(&self, s: &mut LogStore<TypeConfig>) -> Result<String, String> {
        let e = |x: std::io::Error| format!("the store failed: {x}");
        let vote = s
            .read_vote()
            .await
            .map_err(e)?
            .map_or((0, false), |v| (v.leader_id.term, v.is_committed()));
        if vote < self.vote {
            return Err(format!(
                "vote {:?} < the saved {:?} (term, committed)",
                vote, self.vote
            ));
        }
        let st = s.get_log_state().await.map_err(e)?;
        let purged = st.last_purged_log_id.map_or(0, |l| l.index());
        if purged < self.purged {
            return Err(format!(
                "purged {purged} < the acknowledged {}",
                self.purged
            ));
        }
        // The committed id, if any survived, is one that was saved (never above the highest).
        let committed = s
            .read_committed()
            .await
            .map_err(e)?
            .map_or(0, |l| l.index());
        if committed > self.committed_max {
            return Err(format!(
                "committed {committed}: no save_committed above {} was made",
                self.committed_max
            ));
        }
        // Nor more than was asked (an acknowledged purge, or the one in flight).
        let allowed = self.purged.max(self.maybe_through.unwrap_or(0));
        if purged > allowed {
            return Err(format!(
                "purged {purged}: no purge beyond {allowed} was asked for"
            ));
        }
        let all = s.try_get_log_entries(..).await.map_err(e)?;
        let idx: Vec<u64> = all.iter().map(|e| e.index()).collect();
        if idx.first().is_some_and(|&f| f != purged + 1) {
            return Err(format!(
                "the log starts at {:?}, purged {purged}",
                idx.first()
            ));
        }
        if let Some(w) = idx.windows(2).find(|w| w[1] != w[0] + 1) {
            return Err(format!("a hole between {} and {}", w[0], w[1]));
        }
        let last = st.last_log_id.map_or(0, |l| l.index());
        if idx.last().copied().unwrap_or(purged) != last {
            return Err(format!(
                "the last entry is {:?} (purged {purged}), the log state says {last}",
                idx.last()
            ));
        }
        let by_index: BTreeMap<u64, String> = all
            .iter()
            .map(|e| {
                let p = match &e.payload {
                    openraft::EntryPayload::Normal(Request::Set { value, .. }) => value.clone(),
                    other => format!("{other:?}"),
                };
                (e.index(), p)
            })
            .collect();
        for (i, want) in &self.entries {
            let in_flight = self.maybe_after.is_some_and(|t| *i > t)
                || self.maybe_through.is_some_and(|p| *i <= p);
            if *i <= purged || (in_flight && !by_index.contains_key(i)) {
                continue;
            }
            if by_index.get(i) != Some(want) {
                return Err(format!(
                    "acknowledged entry {i} ({want}) is {:?}",
                    by_index.get(i)
                ));
            }
        }
        if let Some((to, gen)) = self.truncated {
            for (i, p) in by_index.range(to + 1..) {
                let g: u64 = p
                    .split('-')
                    .next()
                    .and_then(|g| g.parse().ok())
                    .unwrap_or(0);
                if g < gen {
                    return Err(format!(
                        "entry {i} ({p}) predates the acknowledged truncation after {to}"
                    ));
                }
            }
        }
        Ok(format!(
            "{} entries ({} acknowledged), vote {vote:?}, purged {purged}",
            all.len(),
            self.entries.len()
        ))
    }

    /// After a checked crash (the SIGKILL test's next round goes on from it): a truncation or
    /// purge that was in flight either happened or not, as the store `present` shows; the model
    /// takes that outcome and forgets the uncertainty.
    pub fn settle(&mut self, present: &std::collections::BTreeSet<u64>, purged: u64) {
        let after = self.maybe_after.take();
        let through = self.maybe_through.take();
        if after.is_some() || through.is_some() {
            self.entries.retain(|i, _| present.contains(i));
        }
        self.purged = self.purged.max(purged);
    }
}

/// Runs the workload on `s` for `steps` steps (or forever with `None`), handing each
/// acknowledgement to `ack` as soon as it is given.
pub async fn workload(
    s: &mut LogStore<TypeConfig>,
    seed: u64,
    steps: Option<u64>,
    mut ack: impl FnMut(Ack),
) -> std::io::Result<()> {
    let mut rng = Rng::new(seed);
    let st = s.get_log_state().await?;
    let mut last = st.last_log_id.map_or(0, |l| l.index());
    let mut purged = st.last_purged_log_id.map_or(0, |l| l.index());
    let voted = s.read_vote().await?;
    let mut term = voted.as_ref().map_or(1, |v| v.leader_id.term);
    let mut committed = voted.is_some_and(|v| v.is_committed());
    let mut gen = seed << 20;
    let mut step = 0;
    while steps.is_none_or(|n| step < n) {
        step += 1;
        // Some steps are big: an append of 400–1,600 entries (one in 16), and half of the
        // truncations and purges once the log holds 1,600 entries (800–1,500 of them) — several
        // transactions each on the campaign's 64 KiB segments (366 deletes, ≈ 28 KB): the store
        // splits them (docs/RAFT.md), and their first transactions may become durable in a round
        // of their own (the `Buffered` pending limit), so a crash between two of them must
        // still leave no hole.
        let big = rng.below(8) == 0;
        let wide = last > purged + 1600 && rng.below(2) == 0;
        match rng.below(10) {
            0 => {
                // Half of the votes commit the current term's (a leader elected: same term,
                // committed), the others start a new term.
                let vote = if !committed && rng.below(2) == 0 {
                    committed = true;
                    Vote::new_committed(term, 1)
                } else {
                    term += 1;
                    committed = false;
                    Vote::new(term, 1)
                };
                s.save_vote(&vote).await?;
                ack(Ack::Voted(term, committed));
            }
            1 if wide || last > purged + 3 => {
                let to = if wide {
                    last - 800 - rng.below(700)
                } else {
                    last - 1 - rng.below(3)
                };
                gen += 1;
                ack(Ack::Truncating(to));
                s.truncate_after(Some(log_id::<TypeConfig>(term, 1, to)))
                    .await?;
                last = to;
                ack(Ack::Truncated(to, gen));
            }
            3 if last > purged => {
                // openraft reports what it committed; it need not be durable.
                ack(Ack::Committing(last));
                s.save_committed(Some(log_id::<TypeConfig>(term, 1, last)))
                    .await?;
            }
            2 if wide || last > purged + 20 => {
                let to = if wide {
                    purged + 800 + rng.below(700)
                } else {
                    purged + 1 + rng.below(10)
                };
                ack(Ack::Purging(to));
                s.purge(log_id::<TypeConfig>(term, 1, to)).await?;
                purged = to;
                ack(Ack::Purged(to));
            }
            _ => {
                let n = if big && rng.below(2) == 0 {
                    400 + rng.below(1200)
                } else {
                    1 + rng.below(8)
                };
                let entries: Vec<Entry> = (last + 1..=last + n)
                    .map(|i| {
                        Entry::new_normal(
                            log_id::<TypeConfig>(term, 1, i),
                            Request::Set {
                                key: format!("k{i}"),
                                value: payload(gen, term, i),
                            },
                        )
                    })
                    .collect();
                let (tx, rx) = TypeConfig::oneshot();
                s.append(entries, IOFlushed::signal(tx)).await?;
                let first = last + 1;
                last += n;
                rx.await
                    .map_err(|_| std::io::Error::other("the flush callback was dropped"))??;
                ack(Ack::Appended {
                    first,
                    last,
                    term,
                    gen,
                });
            }
        }
    }
    Ok(())
}

/// The appends, truncations and purges of 400 entries or more among `acks` (more than one
/// transaction of the campaign's segments carries: the store splits them).
fn big_operations(acks: &[(u64, Ack)]) -> [(&'static str, u64); 3] {
    let (mut appends, mut truncations, mut purges) = (0, 0, 0);
    let (mut last, mut purged) = (0u64, 0u64);
    for (_, a) in acks {
        match *a {
            Ack::Appended { first, last: l, .. } => {
                appends += u64::from(l + 1 - first >= 400);
                last = l;
            }
            Ack::Truncated(to, _) => {
                truncations += u64::from(last.saturating_sub(to) >= 400);
                last = to;
            }
            Ack::Purged(to) => {
                purges += u64::from(to.saturating_sub(purged) >= 400);
                purged = to;
            }
            _ => {}
        }
    }
    [
        ("appends of 400 entries or more (split)", appends),
        ("truncations of 400 entries or more (split)", truncations),
        ("purges of 400 entries or more (split)", purges),
    ]
}

/// Runs the mode: one workload per seed, every crash state of its trace checked.
pub fn run(opts: &PowerOptions) -> Summary {
    let started = Instant::now();
    let mut sum = Summary::new("raft", &opts.model.to_string());
    let mut progress = Progress::new(opts.progress, opts.seeds.len());
    for &seed in &opts.seeds {
        let mut one = Summary::new("raft", &opts.model.to_string());
        run_seed(opts, seed, &mut one);
        progress.seed(&one);
        sum.merge(one);
        if opts.stop_on_first && !sum.failures.is_empty() {
            break;
        }
    }
    progress.finish();
    sum.elapsed = started.elapsed();
    sum
}

fn options(sim: &SimVfs) -> Options {
    Options::default()
        .vfs(Arc::new(sim.clone()))
        .segment_size(64 << 10)
}

fn run_seed(opts: &PowerOptions, seed: u64, sum: &mut Summary) {
    sum.seeds += 1;
    let dir = Setup::sim_dir();
    let empty = Image {
        files: Default::default(),
        dirs: vec![dir.to_path_buf()],
    };
    let sim = SimVfs::from_image(&empty, true, Duration::ZERO);
    // (trace position when given, acknowledgement)
    let mut acks: Vec<(u64, Ack)> = Vec::new();
    let ran = match Db::open(dir, options(&sim)) {
        Ok(db) => {
            let db = Arc::new(db);
            let r = TypeConfig::run(async {
                let mut s = LogStore::<TypeConfig>::new(db.clone(), PREFIX)?;
                workload(&mut s, seed, Some(opts.steps), |a| {
                    acks.push((sim.position(), a))
                })
                .await
            });
            drop(db);
            r.map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = ran {
        sum.notes
            .push(format!("seed {seed}: the workload failed: {e}"));
        return;
    }
    sum.steps += opts.steps;
    let trace = sim.trace();
    let mut failure: Option<(usize, u64, Violation)> = None;
    let mut points = 0u64;
    crate::crash::for_each_state(
        &empty,
        &trace,
        opts.model,
        opts.cap,
        seed,
        |pos, idx, img| {
            if failure.is_some() {
                return;
            }
            if opts
                .replay
                .is_some_and(|t| t.point != pos as u64 || t.state != idx)
            {
                return;
            }
            if idx == 0 {
                points += 1;
            }
            let mut model = Model::default();
            for (at, a) in &acks {
                if *at as usize <= pos {
                    model.apply(a);
                }
            }
            match check_state(&img, &model) {
                Ok(()) => sum.count("crash states: every acknowledged write kept"),
                Err(v) => failure = Some((pos, idx, v)),
            }
        },
    );
    sum.points += points;
    *sum.checks.entry("acknowledgements given").or_default() += acks.len() as u64;
    for (what, n) in big_operations(&acks) {
        *sum.checks.entry(what).or_default() += n;
    }
    if let Some((pos, idx, v)) = failure {
        sum.failures.push(Failure {
            mode: "raft".into(),
            seed,
            model: opts.model.to_string(),
            point: format!("1.{pos}"),
            state: idx,
            violation: v,
            trace: vec![format!(
                "{} acknowledgements before the crash point, {} trace operations",
                acks.iter().filter(|(at, _)| *at as usize <= pos).count(),
                trace.len()
            )],
            image: None,
            replay: format!(
                "ringlog-crash raft --steps {} --replay {seed}:1.{pos}:{idx}",
                opts.steps
            ),
        });
    }
}

fn check_state(img: &Image, model: &Model) -> Result<(), Violation> {
    let sim = SimVfs::from_image(img, false, Duration::ZERO);
    let db = Db::open(Setup::sim_dir(), options(&sim))
        .map_err(|e| Violation::new("I5", format!("recovery failed: {e}")))?;
    let db = Arc::new(db);
    TypeConfig::run(async {
        let mut s = LogStore::<TypeConfig>::new(db.clone(), PREFIX)
            .map_err(|e| Violation::new("raft", format!("the store does not open: {e}")))?;
        model
            .check(&mut s)
            .await
            .map(|_| ())
            .map_err(|e| Violation::new("raft", e))
    })
}
