//! `rmw`: read-modify-write transactions (issue 15's targets), ringlog only: its optimistic
//! transactions (`Db::begin`, `Db::transact`) through its public API.
//!
//! 1. **Contended.** `--hot-keys` counters (keys `0..hot`), each a value of the run's value size
//!    whose version field (the harness's self-describing value, [`Codec`]) is the count, all 0
//!    at first. `--threads` threads each pick a counter uniformly and call `Db::transact` with
//!    `RetryPolicy::default().max_attempts(`[`MAX_ATTEMPTS`]`)`: `tx.get`, then `tx.put` of the
//!    count + 1. Timed per transact call (retries and their backoff included); the conflicts and
//!    retries are `Stats::txn_conflicts` and `txn_retries` over the phase. Afterwards every
//!    counter is read back and checked byte for byte: each must hold the increments the threads
//!    say they committed, and their sum the number of transact calls that succeeded — else the
//!    run fails (a lost update).
//! 2. **Uncontended.** Once per engine and mode (in the run of the first `--threads` count), one
//!    thread over `--keys` other keys (`hot..hot + keys`, loaded with count 0), random keys, in
//!    [`ROUNDS`] rounds of the [`Variant`]s alternating (each round starting one later, after one
//!    untimed warm-up round): plain
//!    puts, get + put transactions, write-only transactions, and plain get + put, all committed
//!    with the database's durability (the mode's). The per-operation time of each against the
//!    puts' is the ratio (target: transactions ≤ [`TARGET`]×). Every value read is checked
//!    against the count this thread last wrote, and every key is read back after.

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ringlog_db::{Db, RetryPolicy};

use super::{delta, disk, progress, Clock, Hooks, RunResult};
use crate::args::Config;
use crate::engine::{err, EResult, Engine, EngineError, EngineKind, Mode, OpenOpts};
use crate::hist::Histogram;
use crate::keys::{Codec, Rng};
use crate::report::{thousands, us};
use crate::sysinfo;

/// `RetryPolicy::max_attempts` of the contended transact calls.
pub const MAX_ATTEMPTS: u32 = 1000;
/// Rounds of the alternating uncontended phases.
pub const ROUNDS: usize = 4;
/// Issue 15's target: an uncontended read-modify-write transaction takes at most this many times
/// a plain put's time.
pub const TARGET: f64 = 1.3;

/// One kind of uncontended operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `Db::put` of the next count (no read, no validation): the baseline.
    Put,
    /// `Db::begin`, `Txn::get` (tracked), `Txn::put` of the count + 1, `Txn::commit`.
    Txn,
    /// `Db::begin`, `Txn::put`, `Txn::commit`: a transaction without a read (never validated).
    WriteTxn,
    /// `Db::get`, then `Db::put` of the count + 1: the same read and write without a
    /// transaction.
    GetPut,
}

impl Variant {
    /// Every variant, in the order of the first round.
    pub const ALL: [Variant; 4] = [
        Variant::Put,
        Variant::Txn,
        Variant::WriteTxn,
        Variant::GetPut,
    ];

    /// The name in the notes.
    pub fn label(self) -> &'static str {
        match self {
            Variant::Put => "put",
            Variant::Txn => "get + put transaction",
            Variant::WriteTxn => "write-only transaction",
            Variant::GetPut => "plain get + put",
        }
    }

    /// The name in the JSON report.
    pub fn json_name(self) -> &'static str {
        match self {
            Variant::Put => "put",
            Variant::Txn => "rmw_txn",
            Variant::WriteTxn => "write_only_txn",
            Variant::GetPut => "get_then_put",
        }
    }
}

/// One variant's operations over its rounds.
#[derive(Clone, Debug, Default)]
pub struct Phase {
    /// Latency of each operation.
    pub hist: Histogram,
    /// Operations done.
    pub ops: u64,
    /// Wall time of the phases of this variant.
    pub busy: Duration,
    /// CPU time of the thread during them.
    pub cpu: Duration,
}

impl Phase {
    /// Operations per second of its phases.
    pub fn ops_per_sec(&self) -> f64 {
        super::per_sec(self.ops, self.busy)
    }

    /// Wall time per operation, ns.
    pub fn ns_per_op(&self) -> Option<f64> {
        (self.ops > 0).then(|| self.busy.as_nanos() as f64 / self.ops as f64)
    }
}

/// The uncontended phases.
#[derive(Clone, Debug, Default)]
pub struct Uncontended {
    /// Keys they chose among.
    pub keys: u64,
    /// Rounds run (each runs every variant once).
    pub rounds: usize,
    /// Per [`Variant`] (in [`Variant::ALL`]'s order).
    pub phases: [Phase; 4],
}

impl Uncontended {
    /// The phases of `v`.
    pub fn phase(&self, v: Variant) -> &Phase {
        &self.phases[v as usize]
    }

    /// Per-operation time of `v` ÷ the puts'.
    pub fn time_ratio(&self, v: Variant) -> Option<f64> {
        let put = self.phase(Variant::Put).ns_per_op()?;
        let x = self.phase(v).ns_per_op()?;
        (put > 0.0).then(|| x / put)
    }

    /// p50 latency of `v` ÷ the puts'.
    pub fn p50_ratio(&self, v: Variant) -> Option<f64> {
        let put = self.phase(Variant::Put).hist.percentile(50.0);
        let p = self.phase(v);
        (put > 0 && p.ops > 0).then(|| p.hist.percentile(50.0) as f64 / put as f64)
    }
}

/// What the rmw workload measured beside the table row (which is the contended phase's).
#[derive(Clone, Debug, Default)]
pub struct RmwOut {
    /// Contended counters.
    pub hot_keys: u64,
    /// `RetryPolicy::max_attempts` of the transact calls.
    pub max_attempts: u32,
    /// Transact calls that committed.
    pub committed: u64,
    /// Transact calls that returned `Error::Conflict` after every attempt.
    pub gave_up: u64,
    /// Runs of the transaction's closure: attempts, the retries included.
    pub attempts: u64,
    /// `Stats::txn_conflicts` over the contended phase.
    pub conflicts: u64,
    /// `Stats::txn_retries` over the contended phase.
    pub retries: u64,
    /// The counters' sum, read back after the phase (`None`: not read back).
    pub counter_sum: Option<u64>,
    /// The uncontended phases, in the run that measured them.
    pub uncontended: Option<Uncontended>,
}

impl RmwOut {
    /// `n` per committed transaction.
    pub fn per_commit(&self, n: u64) -> Option<f64> {
        (self.committed > 0).then(|| n as f64 / self.committed as f64)
    }
}

/// Per-thread outcome of the contended phase.
#[derive(Default)]
struct Worker {
    hist: Histogram,
    committed: u64,
    gave_up: u64,
    attempts: u64,
    /// Increments committed per counter.
    per_key: Vec<u64>,
    bad: Option<String>,
    error: Option<EngineError>,
    cpu: Duration,
}

/// The rmw workload; see the module's documentation and the crate's `--help`.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_rmw(
    kind: &dyn EngineKind,
    mode: Mode,
    threads: usize,
    cfg: &Config,
    dir: &Path,
    device: Option<&str>,
    codec: &Codec,
    opts: &OpenOpts,
    hooks: &Hooks,
    res: &mut RunResult,
) -> Result<(), EngineError> {
    let hot = cfg.hot_keys;
    // The uncontended phases run once per engine and mode: in the run of the first thread count.
    let other = if cfg.threads.first() == Some(&threads) {
        cfg.keys
    } else {
        0
    };
    sysinfo::trim_heap();
    let rss0 = sysinfo::rss_bytes();
    let engine = kind.open(dir, mode, opts)?;
    res.io_path = engine.io_path();
    let Some(db) = engine.ringlog_db() else {
        let _ = engine.close();
        return Err(EngineError(format!(
            "{}: rmw needs ringlog's transactions",
            kind.name()
        )));
    };
    let mut out = RmwOut {
        hot_keys: hot,
        max_attempts: MAX_ATTEMPTS,
        ..RmwOut::default()
    };
    let r = run_phases(
        &*engine, db, mode, threads, cfg, device, codec, hooks, hot, other, &mut out, res,
    );
    res.rss_delta = rss0
        .zip(sysinfo::rss_bytes())
        .map(|(a, b)| b as i64 - a as i64);
    if let Err(e) = r {
        let _ = engine.close();
        return Err(e);
    }
    res.index = engine.index_memory();
    engine.close()?;
    res.files = sysinfo::dir_bytes(dir).ok();
    res.live_keys = hot + other;
    res.notes.extend(notes(&out, threads));
    res.rmw = Some(out);
    Ok(())
}

/// Loads `range` with count 0 in transactions of up to 1,000 puts (not timed); returns the bytes.
fn load(engine: &dyn Engine, codec: &Codec, range: Range<u64>) -> EResult<u64> {
    const CHUNK: u64 = 1000;
    let mut start = range.start;
    let mut bytes = 0;
    while start < range.end {
        let end = (start + CHUNK).min(range.end);
        let kv: Vec<(Vec<u8>, Vec<u8>)> = (start..end)
            .map(|idx| (codec.key(idx), codec.value(idx, 0)))
            .collect();
        let items: Vec<(&[u8], &[u8])> = kv
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        engine.put_batch(&items)?;
        bytes += (end - start) * (codec.key_size() + codec.value_size()) as u64;
        start = end;
    }
    Ok(bytes)
}

#[allow(clippy::too_many_arguments)]
fn run_phases(
    engine: &dyn Engine,
    db: &Db,
    mode: Mode,
    threads: usize,
    cfg: &Config,
    device: Option<&str>,
    codec: &Codec,
    hooks: &Hooks,
    hot: u64,
    other: u64,
    out: &mut RmwOut,
    res: &mut RunResult,
) -> EResult<()> {
    res.lifetime_user_bytes += load(engine, codec, 0..hot + other)?;
    let kv = (codec.key_size() + codec.value_size()) as u64;

    // 1. Contended: `threads` threads, transact calls on the hot counters.
    let total = cfg.ops;
    let per = |t: usize| super::ops_share(total, threads, t);
    let s0 = db.stats();
    let c0 = engine.counters();
    let d0 = disk(device);
    let cpu0 = sysinfo::cpu_time();
    let start = Instant::now();
    let clock = Clock::new(start, cfg.duration);
    let label = format!("{mode} rmw ringlog x{threads}");
    let (workers, elapsed): (Vec<Worker>, Duration) = std::thread::scope(|s| {
        let prog = progress(s, cfg, &clock, &label, start);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let clock = &clock;
                let todo = per(t);
                s.spawn(move || contended(db, codec, hot, todo, clock, t))
            })
            .collect();
        let outs = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| Worker {
                    error: Some(EngineError("a transaction thread panicked".into())),
                    ..Worker::default()
                })
            })
            .collect();
        let elapsed = start.elapsed();
        prog.stop(&clock);
        (outs, elapsed)
    });
    res.elapsed = elapsed;
    res.cpu = sysinfo::cpu_time().saturating_sub(cpu0);
    res.device = d0.zip(disk(device)).map(|(a, b)| b.since(&a));
    res.engine_delta = delta(engine.counters(), c0);
    let s1 = db.stats();
    out.conflicts = s1.txn_conflicts.saturating_sub(s0.txn_conflicts);
    out.retries = s1.txn_retries.saturating_sub(s0.txn_retries);
    let mut per_key = vec![0u64; hot as usize];
    let mut bad = None;
    for w in workers {
        if let Some(e) = w.error {
            return Err(e);
        }
        res.hist.merge(&w.hist);
        res.worker_cpu += w.cpu;
        out.committed += w.committed;
        out.gave_up += w.gave_up;
        out.attempts += w.attempts;
        for (sum, n) in per_key.iter_mut().zip(&w.per_key) {
            *sum += n;
        }
        if bad.is_none() {
            bad = w.bad;
        }
    }
    res.ops = out.committed;
    res.commits = out.committed;
    res.user_bytes = out.committed * kv;
    res.lifetime_user_bytes += res.user_bytes;

    // The lost-update check: every counter read back, byte for byte.
    if hooks.lose_one_update {
        // Test hook: a lost update planted in the database (one counter set back by one).
        if let Some(i) = per_key.iter().position(|&n| n > 0) {
            let idx = i as u64;
            db.put(&codec.key(idx), &codec.value(idx, per_key[i] as u32 - 1))
                .map_err(|e| err("ringlog put", e))?;
        }
    }
    let (sum, counters) = check_counters(engine, codec, &per_key, out.committed, hooks);
    out.counter_sum = sum;
    res.verified = match (bad, counters) {
        (Some(b), _) => Err(format!("a transaction read a wrong counter value: {b}")),
        (None, Err(e)) => Err(e),
        (None, Ok(_)) => Ok(hot),
    };

    // 2. Uncontended: one thread, the variants alternating.
    if other > 0 {
        let (u, checked) = uncontended(engine, db, cfg, codec, hot, other)?;
        out.uncontended = Some(u);
        res.verified = match (res.verified.clone(), checked) {
            (Ok(a), Ok(b)) => Ok(a + b),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        };
    }
    Ok(())
}

/// One thread of the contended phase.
fn contended(db: &Db, codec: &Codec, hot: u64, todo: u64, clock: &Clock, t: usize) -> Worker {
    let cpu0 = sysinfo::thread_cpu_time();
    let mut w = Worker {
        per_key: vec![0; hot as usize],
        ..Worker::default()
    };
    let policy = RetryPolicy::default().max_attempts(MAX_ATTEMPTS);
    let mut rng = Rng::new(0x4d57_0000 + t as u64 * 7919);
    let mut key = codec.key_buf();
    let mut val = Vec::with_capacity(codec.value_size());
    let mut done = 0u64;
    let mut last = Instant::now();
    while done < todo {
        let idx = rng.below(hot);
        codec.set_key(&mut key, idx);
        let mut runs = 0u64;
        let r = db.transact(&policy, |tx| {
            runs += 1;
            let Some(v) = tx.get(&key)? else {
                return Ok(Err(format!("counter {idx} is missing")));
            };
            match codec.check_header(&v, idx) {
                Ok(count) => {
                    codec.fill_value(&mut val, idx, count + 1);
                    tx.put(&key, &val)?;
                    Ok(Ok(count))
                }
                // Nothing written: the transaction commits as a read-only one.
                Err(e) => Ok(Err(format!("counter {idx}: {e}"))),
            }
        });
        w.attempts += runs;
        match r {
            Ok((Ok(_), _)) => {
                w.committed += 1;
                w.per_key[idx as usize] += 1;
            }
            Ok((Err(b), _)) => {
                w.bad.get_or_insert(b);
                clock.stop.store(true, Ordering::Relaxed);
            }
            Err(ringlog_db::Error::Conflict { .. }) => w.gave_up += 1,
            Err(e) => {
                w.error = Some(err("ringlog transact", e));
                clock.stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        done += 1;
        if done & 1023 == 0 {
            clock.progress.fetch_add(1024, Ordering::Relaxed);
        }
        let now = Instant::now();
        w.hist.record((now - last).as_nanos() as u64);
        last = now;
        if clock.done(now) {
            break;
        }
    }
    w.cpu = sysinfo::thread_cpu_time().saturating_sub(cpu0);
    w
}

/// Reads every counter back and checks it: each must hold the increments committed on it
/// (`per_key`), every byte right, and their sum must be `committed`. Returns the sum (`None`
/// when a counter could not be read as one) and the verdict.
fn check_counters(
    engine: &dyn Engine,
    codec: &Codec,
    per_key: &[u64],
    committed: u64,
    hooks: &Hooks,
) -> (Option<u64>, Result<(), String>) {
    match sum_counters(engine, codec, per_key, hooks) {
        Err(e) => (None, Err(e)),
        Ok((sum, first_wrong)) => (Some(sum), judge(sum, committed, per_key.len(), first_wrong)),
    }
}

/// The counters' sum, and the first counter whose count differs from `per_key`'s.
fn sum_counters(
    engine: &dyn Engine,
    codec: &Codec,
    per_key: &[u64],
    hooks: &Hooks,
) -> Result<(u64, Option<String>), String> {
    let mut buf = Vec::new();
    let mut key = codec.key_buf();
    let mut corrupt = hooks.corrupt_one_read;
    let mut sum = 0u64;
    let mut first_wrong = None;
    for (i, &expected) in per_key.iter().enumerate() {
        let idx = i as u64;
        codec.set_key(&mut key, idx);
        if !engine
            .get(&key, &mut buf)
            .map_err(|e| format!("read-back of counter {idx}: {e}"))?
        {
            return Err(format!("counter {idx} is missing"));
        }
        if corrupt {
            corrupt = false;
            let last = buf.len() - 1;
            buf[last] ^= 0x40;
        }
        let count = codec
            .check_header(&buf, idx)
            .map_err(|e| format!("counter {idx}: {e}"))?;
        codec
            .check(&buf, idx, count)
            .map_err(|e| format!("counter {idx}: {e}"))?;
        sum += u64::from(count);
        if u64::from(count) != expected && first_wrong.is_none() {
            first_wrong = Some(format!(
                "counter {idx} holds {count}, its {expected} committed increments expected"
            ));
        }
    }
    Ok((sum, first_wrong))
}

/// The lost-update verdict on the counters' sum.
fn judge(
    sum: u64,
    committed: u64,
    counters: usize,
    first_wrong: Option<String>,
) -> Result<(), String> {
    if sum != committed {
        let what = if sum < committed {
            format!("{} update(s) lost", committed - sum)
        } else {
            format!("{} increment(s) no successful call made", sum - committed)
        };
        return Err(format!(
            "LOST UPDATE: the {counters} counters sum to {sum}, but {committed} transact calls \
             succeeded: {what}{}",
            first_wrong.map_or(String::new(), |w| format!(" ({w})"))
        ));
    }
    if let Some(w) = first_wrong {
        return Err(format!("LOST UPDATE: {w}"));
    }
    Ok(())
}

/// The uncontended phases over keys `hot..hot + keys`; then every one of those keys read back.
/// Returns the phases and the keys checked (or what was wrong).
fn uncontended(
    engine: &dyn Engine,
    db: &Db,
    cfg: &Config,
    codec: &Codec,
    hot: u64,
    keys: u64,
) -> EResult<(Uncontended, Result<u64, String>)> {
    // The measured rounds share --ops and --duration (the warm-up round takes as much again as
    // one of them).
    let phases = (Variant::ALL.len() * ROUNDS) as u64;
    let ops = if cfg.ops == u64::MAX {
        u64::MAX
    } else {
        (cfg.ops / phases).max(1)
    };
    let time = cfg.duration.map(|d| d / phases as u32);
    let mut u = Uncontended {
        keys,
        rounds: ROUNDS,
        ..Uncontended::default()
    };
    let mut counts = vec![0u32; keys as usize];
    let mut rng = Rng::new(0x4d57_ffff + keys);
    let mut bad = None;
    // A first round untimed (its phases thrown away): the first measured phase would otherwise
    // pay alone for the caches the contended phase left cold.
    let mut warm = Uncontended::default();
    'rounds: for round in 0..=ROUNDS {
        for i in 0..Variant::ALL.len() {
            let v = Variant::ALL[(i + round) % Variant::ALL.len()];
            let phase = if round == 0 {
                &mut warm.phases[v as usize]
            } else {
                &mut u.phases[v as usize]
            };
            run_variant(
                db,
                codec,
                v,
                hot,
                &mut counts,
                ops,
                time,
                &mut rng,
                phase,
                &mut bad,
            )?;
            if bad.is_some() {
                break 'rounds;
            }
        }
    }
    if let Some(b) = bad {
        return Ok((u, Err(format!("uncontended {b}"))));
    }
    // Every key of the phases read back; keys past them must be absent.
    let mut buf = Vec::new();
    let mut key = codec.key_buf();
    let mut checked = 0;
    for (j, &count) in counts.iter().enumerate() {
        let idx = hot + j as u64;
        codec.set_key(&mut key, idx);
        let found = engine.get(&key, &mut buf)?;
        let wrong = if !found {
            Some("missing".to_string())
        } else {
            codec.check(&buf, idx, count).err().map(|e| e.to_string())
        };
        if let Some(w) = wrong {
            return Ok((u, Err(format!("key {idx} (count {count}): {w}"))));
        }
        checked += 1;
    }
    for i in 0..16 {
        let idx = hot + keys + 1 + i * 7919;
        codec.set_key(&mut key, idx);
        if engine.get(&key, &mut buf)? {
            return Ok((
                u,
                Err(format!("key {idx} was never written but reads back")),
            ));
        }
        checked += 1;
    }
    Ok((u, Ok(checked)))
}

/// One phase of variant `v`: up to `ops` operations on random keys, or until `time` is up.
#[allow(clippy::too_many_arguments)]
fn run_variant(
    db: &Db,
    codec: &Codec,
    v: Variant,
    hot: u64,
    counts: &mut [u32],
    ops: u64,
    time: Option<Duration>,
    rng: &mut Rng,
    phase: &mut Phase,
    bad: &mut Option<String>,
) -> EResult<()> {
    let keys = counts.len() as u64;
    let mut key = codec.key_buf();
    let mut val = Vec::with_capacity(codec.value_size());
    // The value a read found must be the count this thread last wrote.
    let check = |got: Option<&[u8]>, idx: u64, count: u32| -> Option<String> {
        let Some(got) = got else {
            return Some(format!("{}: key {idx} is missing", v.label()));
        };
        match codec.check_header(got, idx) {
            Ok(c) if c == count => None,
            Ok(c) => Some(format!(
                "{}: key {idx} read count {c}, wrote {count}",
                v.label()
            )),
            Err(e) => Some(format!("{}: key {idx}: {e}", v.label())),
        }
    };
    let cpu0 = sysinfo::thread_cpu_time();
    let start = Instant::now();
    let deadline = time.map(|d| start + d);
    let mut last = start;
    let mut n = 0u64;
    while n < ops {
        let j = rng.below(keys);
        let idx = hot + j;
        let count = counts[j as usize];
        codec.set_key(&mut key, idx);
        match v {
            Variant::Put => {
                codec.fill_value(&mut val, idx, count + 1);
                db.put(&key, &val).map_err(|e| err("ringlog put", e))?;
            }
            Variant::Txn => {
                let mut tx = db.begin();
                let got = tx.get(&key).map_err(|e| err("ringlog txn get", e))?;
                if let Some(b) = check(got.as_deref(), idx, count) {
                    *bad = Some(b);
                    break;
                }
                codec.fill_value(&mut val, idx, count + 1);
                tx.put(&key, &val).map_err(|e| err("ringlog txn put", e))?;
                tx.commit().map_err(|e| err("ringlog commit", e))?;
            }
            Variant::WriteTxn => {
                let mut tx = db.begin();
                codec.fill_value(&mut val, idx, count + 1);
                tx.put(&key, &val).map_err(|e| err("ringlog txn put", e))?;
                tx.commit().map_err(|e| err("ringlog commit", e))?;
            }
            Variant::GetPut => {
                let got = db.get(&key).map_err(|e| err("ringlog get", e))?;
                if let Some(b) = check(got.as_deref(), idx, count) {
                    *bad = Some(b);
                    break;
                }
                codec.fill_value(&mut val, idx, count + 1);
                db.put(&key, &val).map_err(|e| err("ringlog put", e))?;
            }
        }
        counts[j as usize] = count + 1;
        n += 1;
        let now = Instant::now();
        phase.hist.record((now - last).as_nanos() as u64);
        last = now;
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
    }
    phase.busy += start.elapsed();
    phase.cpu += sysinfo::thread_cpu_time().saturating_sub(cpu0);
    phase.ops += n;
    Ok(())
}

/// A ratio to the puts', with three decimals (the target is 1.3: 1.30 could be either side).
pub fn ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.3}×"))
}

/// Whether an uncontended transaction met [`TARGET`].
pub fn verdict(r: Option<f64>) -> &'static str {
    match r {
        Some(r) if r <= TARGET => "met",
        Some(_) => "MISSED",
        None => "not measured",
    }
}

fn notes(o: &RmwOut, threads: usize) -> Vec<String> {
    let mut n = Vec::new();
    let pc = |x: u64| o.per_commit(x).map_or("-".into(), |r| format!("{r:.3}"));
    n.push(format!(
        "contended: {threads} thread(s) over {} counters chosen uniformly, Db::transact with \
         RetryPolicy::default().max_attempts({}) (tx.get, tx.put of the count + 1): {} \
         transactions committed; per commit {} conflicts (Stats::txn_conflicts {}), {} retries \
         (Stats::txn_retries {}), {} attempts ({} closure runs){}",
        o.hot_keys,
        o.max_attempts,
        thousands(o.committed as f64),
        pc(o.conflicts),
        o.conflicts,
        pc(o.retries),
        o.retries,
        pc(o.attempts),
        o.attempts,
        if o.gave_up > 0 {
            format!(
                "; {} transact calls gave up after {} attempts (Error::Conflict)",
                o.gave_up, o.max_attempts
            )
        } else {
            "; no call gave up".into()
        }
    ));
    if let Some(sum) = o.counter_sum.filter(|&s| s == o.committed) {
        n.push(format!(
            "no lost update: the {} counters read back sum to {sum}, the {} transact calls that \
             committed, each counter its own count",
            o.hot_keys,
            thousands(o.committed as f64)
        ));
    }
    if let Some(u) = &o.uncontended {
        let each: Vec<String> = Variant::ALL
            .iter()
            .map(|&v| {
                let p = u.phase(v);
                format!(
                    "{} {}/s (p50 {} µs, p99 {} µs, {} ops)",
                    v.label(),
                    thousands(p.ops_per_sec()),
                    us(p.hist.percentile(50.0)),
                    us(p.hist.percentile(99.0)),
                    thousands(p.ops as f64)
                )
            })
            .collect();
        let txn = u.time_ratio(Variant::Txn);
        n.push(format!(
            "uncontended (1 thread, random keys of {} others, {} rounds of the four phases \
             alternating after an untimed one, the database's durability): {}; per-operation \
             time ÷ the puts': get + put transaction {} (p50 {}; issue 15's target ≤ {TARGET:.1}×: {}), write-only \
             transaction {}, plain get + put {}",
            thousands(u.keys as f64),
            u.rounds,
            each.join(", "),
            ratio(txn),
            ratio(u.p50_ratio(Variant::Txn)),
            verdict(txn),
            ratio(u.time_ratio(Variant::WriteTxn)),
            ratio(u.time_ratio(Variant::GetPut)),
        ));
    }
    n
}
