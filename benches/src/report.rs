//! The table, the JSON rows and the SVG plot.

use std::fmt::Write as _;

use serde_json::Value;

use crate::engine::Mode;
use crate::runner::RunResult;
use crate::sysinfo::Machine;

/// Percentiles reported for every run.
pub const PERCENTILES: [(f64, &str); 4] =
    [(50.0, "p50"), (90.0, "p90"), (99.0, "p99"), (99.9, "p99.9")];

/// `1234567.8` → `1,234,568`.
pub fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Nanoseconds as microseconds with sensible precision.
pub fn us(ns: u64) -> String {
    let u = ns as f64 / 1000.0;
    if u < 10.0 {
        format!("{u:.2}")
    } else if u < 100.0 {
        format!("{u:.1}")
    } else {
        thousands(u)
    }
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.prec$}"))
}

/// The throughput and p50 of the floor run a row is compared with.
#[derive(Clone, Copy, Debug)]
pub struct Floor {
    /// Operations per second of the floor.
    pub ops_per_sec: f64,
    /// Its median latency (ns).
    pub p50: u64,
}

/// The header of the table.
pub fn header() -> String {
    format!(
        "{:<8} {:<16} {:<11} {:>3} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>5} {:>6} {:>6} {:>7} {:>6} {:>6} {:>11} {:>7} {:>6} {:>6} {:>6} {:>5} {:>7} {:>5} {}",
        "mode", "workload", "engine", "thr", "ops/s", "p50 µs", "p90", "p99", "p99.9", "max",
        "sync/c", "wamp", "file", "dev w/c", "dev KiB/c", "flush/c", "cpu s", "ops/cpu-s",
        "×floor", "p50×", "idx B/v", "rss B/k", "space", "open ms", "×read", "check"
    )
}

/// One row of the table.
pub fn row(r: &RunResult, floor: Option<Floor>) -> String {
    let h = &r.hist;
    let dev = r.device_per_commit();
    let (ratio, p50r) = match floor {
        Some(f) if f.ops_per_sec > 0.0 && f.p50 > 0 => (
            Some(r.ops_per_sec() / f.ops_per_sec),
            Some(h.percentile(50.0) as f64 / f.p50 as f64),
        ),
        _ => (None, None),
    };
    let check = match &r.verified {
        Ok(n) => format!("ok {n}"),
        Err(_) => "FAILED".into(),
    };
    let flag = if r.power_loss_durable == Some(false) {
        " NOT-DURABLE"
    } else {
        ""
    };
    format!(
        "{:<8} {:<16} {:<11} {:>3} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>5} {:>6} {:>6} {:>7} {:>6} {:>6.2} {:>11} {:>7} {:>6} {:>7} {:>7} {:>5} {:>7} {:>5} {}{}",
        r.mode.name(),
        workload_label(r),
        r.engine,
        r.threads,
        thousands(r.ops_per_sec()),
        us(h.percentile(50.0)),
        us(h.percentile(90.0)),
        us(h.percentile(99.0)),
        us(h.percentile(99.9)),
        us(h.max()),
        opt(r.syncs_per_commit(), 3),
        opt(r.write_amp(), 2),
        opt(r.file_amp(), 1),
        opt(dev.map(|d| d.0), 2),
        opt(dev.map(|d| d.1 / 1024.0), 1),
        opt(dev.map(|d| d.2), 2),
        r.cpu.as_secs_f64(),
        r.ops_per_worker_cpu_sec()
            .map_or_else(|| "-".to_string(), thousands),
        opt(ratio, 2),
        opt(p50r, 2),
        opt(r.index_overhead(), 1),
        opt(r.rss_per_key(), 0),
        opt(r.space_amp(), 2),
        opt(cold_open(r).map(|o| o.open.as_secs_f64() * 1e3), 0),
        opt(cold_open(r).and_then(|o| o.ratio()), 2),
        check,
        flag,
    )
}

/// The table's workload column: the workload, or for a readonly row its measurement
/// (`ro open_ro cold`, ...).
pub fn workload_label(r: &RunResult) -> &'static str {
    r.readonly
        .as_ref()
        .and_then(|o| o.row)
        .map_or(r.workload.name(), |v| v.label())
}

/// The cold open a row measured (history: the open as written; coldread: the open of the
/// checkpointed database), for the open ms and ×read columns.
fn cold_open(r: &RunResult) -> Option<&crate::runner::ColdOpen> {
    r.history
        .as_ref()
        .map(|h| &h.open)
        .or(r.cold_read.as_ref().map(|c| &c.open))
}

/// Column legend printed under the table.
pub const LEGEND: &str = "\
ops/s: operations per second (puts for fill*/overwrite, gets for read*, YCSB operations, records
  recovered per second of reopen for recover); latency per operation (per transaction for
  fillbatch, the reopen until the first correct read for recover), µs. Closed loop: each thread
  issues its next operation when the last returns, so latencies are service times (a stall is
  one slow sample, not one for every operation it delayed)
sync/c: the engine's fdatasync rounds per commit (below 1 = group commit); wamp: bytes the engine
  wrote per user byte (key + value) in the timed phase: its log bytes (its own count, padding
  excluded) plus, where known, the checkpoint files it wrote (ringlog history: each checkpoint
  file's size as a 10-ms directory watcher saw it; ckptwrite: the sizes Db::checkpoint returned);
  file: bytes of the database's files up to their last non-zero byte per user byte written over
  the database's life (preallocated zero tails excluded)
dev w/c, dev KiB/c, flush/c: write requests, KiB written and cache flushes the block device
  completed during the timed phase, per commit (machine-wide counters: other processes add noise)
cpu s: CPU seconds of this process (all threads) in the timed phase; ops/cpu-s: operations per
  CPU-second of the threads that issued them (the extra writer excluded): throughput as if each
  had a core to itself, the fairer comparison on a shared machine; ×floor, p50×: throughput and
  median latency relative to the floor: the faster of raw-odirect (O_DIRECT pwrite + fdatasync)
  and raw-dsync (O_DIRECT pwritev2(RWF_DSYNC)), each on a preallocated file, on the same
  workload, strict mode (coldread: relative to its raw pread floor, any mode); check:
  values read back (through the open database, after the timed phase) and compared byte for
  byte, sampled among the keys written; keys never written are read too and must be absent
  (not counted)
idx B/v: the engine's index memory per key-version beyond the keys' and values' bytes, from its
  own accounting after the timed phase (ringlog: (Stats::index_bytes - index_payload_bytes) /
  versions); rss B/k: growth of this process's resident set from before the open to the end of
  the timed phase, per distinct key held (preload included; the harness's own bookkeeping of
  0-8 B per key written counts too)
history: ops are puts (--keys keys in order, then random overwrites up to --ops puts), latency
  per put; then close, a cold open. open ms: from the open call to the first correct read (of the
  last key written), the database's files dropped from the page cache (fsync + fadvise
  DONTNEED) first; ×read: open ms ÷ the floor, reading every file of the directory (checkpoint,
  log segments, MANIFEST) sequentially up to its last non-zero byte in 1 MiB reads, cold, in the
  same run; space: disk space of every file in the directory (st_blocks, as du counts) ÷ the live
  data (live keys × (key + value) bytes), measured after the engine's own checkpoint/compaction
  step and a close (ringlog: Db::checkpoint; at close where the engine has none here); the
  figures at close, the peak while writing, the second cold open (after that step), the
  process's CPU time and peak resident set (above the one before) from the open as written to the
  end of the read-back of every key after it, and what a full-log replay would read are in the
  notes
coldread: values on disk. --keys keys loaded (values --value-size, default 1024 B here), the
  engine's checkpoint step (ringlog: Db::checkpoint with Options::value_threshold, default 64 B,
  so the values leave memory; value cache --value-cache, default 256 MiB), close; every phase
  below starts with the database's files dropped from the page cache. ops, latency and ops/s are
  cold gets of random distinct keys, one get each; ×floor and p50× compare them with as many raw
  preads of a record's bytes (24-byte header + key + value, rounded up to 8) at random 8-aligned
  offsets of the log segments (*.log), cold, one after each get (the issue's target:
  p50× ≤ 1.2; the device counters of the gets cover each get and its pread); open ms: the cold open until the first correct read; ×read: ÷ a cold sequential
  read of the checkpoint file (*.ckpt); rss B/k: resident-set growth over that open per key; idx
  B/v: the index's overhead per version after it. In the notes: resident memory and index bytes
  per key after the open, the pread floor, and get_many of 32 keys per call against 32 sequential
  gets timed as one unit (other keys): keys/s of each and their ratio (target ≥ 3× on the
  io_uring path; run again with --io portable for the other path)
rmw (ringlog only): ops/s are read-modify-write transactions committed by --threads threads
  over --hot-keys counters (Db::transact, up to 1,000 attempts each; tx.get, tx.put of the count
  + 1), latency per transact call (retries and backoff included); check: the counters read back,
  their sum equal to the calls that committed (else the run fails: a lost update); conflicts,
  retries and attempts per commit in the notes. In the run of the first --threads count: one
  thread over --keys other keys alternating plain puts, get + put transactions, write-only
  transactions and plain get + put (4 rounds, after an untimed one); their rates and per-operation time ÷ the puts' in
  the notes (issue 15's target: get + put transaction ≤ 1.3× a put)
runs (ringlog only): a log of four runs (each an open, Db::label_run, --ops/4 transactions of 4
  random puts, a close; no checkpoint, so the log keeps them all), reopened; ops/s are the log's
  transactions listed per second by Db::runs() after dropping the files from the page cache,
  latency that call; ×floor and p50× compare it with a sequential read of the segment files in
  1 MiB reads, cold, in the same run (p50×: runs() time ÷ the read's). In the notes, cold and
  warm: the floor, Db::runs(), Db::run_changes of the middle run iterated to its end and
  Db::diff_runs of the first and last runs, each as ms, MB/s and transactions/s of the log, the
  device's reads, and ÷ floor; check: the runs, the middle run's keys and the diff's keys
  compared byte for byte with what was written (a mismatch fails the run), plus a sample read
readonly (ringlog only): --keys records written and closed (no checkpoint: every open replays
  the log); one row per measurement, each of 5 calls: ro floor (a sequential read of the segment
  files in 1 MiB reads), ro open (Db::open, writable) and ro open_ro (Db::open_read_only, same
  options) of the closed database, cold (the files dropped from the page cache before each call)
  and warm, then ro open_ro live (Db::open_read_only while this process holds the database open
  for writing and one thread commits 100,000 puts a second). ops: records each call opened (or
  read), latency per call (p50: the median of 5); ×floor and p50× against the floor of the same
  temperature (warm for live) in the same run. check: records read back (all from the first
  read-only handle, a sample from the others), a read-only open must change no file, refuse a
  put, and beside the writer hold every key durable before it began (else the run fails)
raft (ringlog; rocksdb with its feature): --threads appenders, each with an openraft log store of
  its own, appending one entry at a time (a Request::Set with a 1 KiB value unless --value-size
  says otherwise) and awaiting its flush callback before the next; strict mode only. Each run
  measures two rows: first mem-ceiling (an in-memory store as openraft's log-mem example: the
  callback fired at once; at most 500,000 entries), then the store: ringlog's LogStore (all on
  one Db with default options, a key prefix each: their syncs group) or RocksDB as openraft's
  log-rocks example (WriteBatch, flush_wal(true), callback; one instance, column families per
  store). ops/s: entries appended per second; latency: append + callback; ×floor and p50×
  against the mem-ceiling row of the same run; sync/c (ringlog): Db::stats().syncs per append
  (one commit per append); dev flush/c: device cache flushes per append; check: every store's
  log read back through its reader and compared entry by entry
ckptwrite: four phases of random overwrites of a preloaded key space, alternately without and
  with one more thread calling the engine's checkpoint step in a loop; ops/s and latency are the
  phases with it, the p99 without and the ratio in the notes
scan, scanrev: ops are entries, latency per entry averaged over blocks of 1,024; snapshot: ops
  are keys read at snapshots, latency per key averaged over each snapshot's reads (taking and
  dropping it included); readwhilewriting, snapshot: one writer thread runs beside the readers
  (its rate in the notes)";

/// Same-run ratios the issue's targets are stated in: `readwhilewriting` readers against
/// `readrandom` at the same thread count, and `readrandom` at N threads against one thread, for
/// each engine and mode; wall-clock and per CPU-second of the reading threads.
pub fn comparisons(rows: &[RunResult]) -> Vec<String> {
    use crate::args::Workload;
    let find = |r: &RunResult, w: Workload, threads: usize| {
        rows.iter().find(|x| {
            x.engine == r.engine && x.mode == r.mode && x.workload == w && x.threads == threads
        })
    };
    let ratio = |a: &RunResult, b: &RunResult| {
        let wall = a.ops_per_sec() / b.ops_per_sec().max(1e-9);
        let cpu = a
            .ops_per_worker_cpu_sec()
            .zip(b.ops_per_worker_cpu_sec())
            .map(|(x, y)| x / y.max(1e-9));
        match cpu {
            Some(c) => format!("{wall:.2}× ({c:.2}× per CPU-second)"),
            None => format!("{wall:.2}×"),
        }
    };
    let mut out = Vec::new();
    for r in rows {
        if let Some(u) = r.rmw.as_ref().and_then(|m| m.uncontended.as_ref()) {
            use crate::runner::RmwVariant as V;
            let t = u.time_ratio(V::Txn);
            out.push(format!(
                "{} {} rmw: an uncontended get + put transaction takes {} a plain put's time \
                 ({}/s vs {}/s; write-only transaction {}, plain get + put {}); target ≤ {:.1}×: \
                 {}",
                r.engine,
                r.mode,
                crate::runner::rmw_ratio(t),
                thousands(u.phase(V::Txn).ops_per_sec()),
                thousands(u.phase(V::Put).ops_per_sec()),
                crate::runner::rmw_ratio(u.time_ratio(V::WriteTxn)),
                crate::runner::rmw_ratio(u.time_ratio(V::GetPut)),
                crate::runner::RMW_TARGET,
                crate::runner::rmw_verdict(t),
            ));
        }
        if let Some((without, with, ck)) = &r.ckpt_write {
            let (a, b) = (with.percentile(99.0), without.percentile(99.0));
            out.push(format!(
                "{} {} ckptwrite x{}: put p99 {} µs with a thread checkpointing ({} checkpoints) \
                 vs {} µs without: {}",
                r.engine,
                r.mode,
                r.threads,
                us(a),
                ck.count(),
                us(b),
                if b > 0 {
                    format!("{:.2}×", a as f64 / b as f64)
                } else {
                    "-".into()
                }
            ));
        }
        if r.workload == Workload::ReadWhileWriting {
            if let Some(base) = find(r, Workload::ReadRandom, r.threads) {
                out.push(format!(
                    "{} {} x{}: readwhilewriting reads {} readrandom's",
                    r.engine,
                    r.mode,
                    r.threads,
                    ratio(r, base)
                ));
            }
        }
        if r.workload == Workload::ReadRandom && r.threads > 1 {
            if let Some(one) = find(r, Workload::ReadRandom, 1) {
                // Per CPU-second, scaling is the per-thread efficiency times the threads.
                let wall = r.ops_per_sec() / one.ops_per_sec().max(1e-9);
                let cpu = r
                    .ops_per_worker_cpu_sec()
                    .zip(one.ops_per_worker_cpu_sec())
                    .map(|(x, y)| x / y.max(1e-9) * r.threads as f64);
                out.push(format!(
                    "{} {} readrandom x{} / x1: {wall:.2}×{}",
                    r.engine,
                    r.mode,
                    r.threads,
                    cpu.map(|c| format!(
                        " ({c:.2}× with a core per thread, from the per-CPU-second rates)"
                    ))
                    .unwrap_or_default()
                ));
            }
        }
    }
    out
}

/// A number as the JSON report writes it: an integral value as an integer (`3`, not `3.0`; exact
/// below 2^63, where `as i64` loses nothing), a non-finite one as null.
fn num(v: impl Into<f64>) -> Value {
    let n = v.into();
    if !n.is_finite() {
        Value::Null
    } else if n.fract() == 0.0 && n.abs() < 9.0e18 {
        Value::from(n as i64)
    } else {
        Value::from(n)
    }
}

fn onum(v: Option<f64>) -> Value {
    v.map_or(Value::Null, num)
}

/// An object with its fields in this order (serde_json's `preserve_order`).
fn obj(fields: Vec<(&str, Value)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// The machine as JSON.
pub fn machine_json(m: &Machine) -> Value {
    let s = |v: &str| Value::String(v.to_string());
    obj(vec![
        ("kernel", s(&m.kernel)),
        ("cores", num(m.cores as f64)),
        ("dir", s(&m.dir.display().to_string())),
        ("filesystem", s(&m.fs_type)),
        ("mount", s(&m.mount)),
        ("device", m.device.as_deref().map_or(Value::Null, s)),
        (
            "write_cache",
            m.write_cache.as_deref().map_or(Value::Null, s),
        ),
    ])
}

/// One row as JSON.
pub fn row_json(r: &RunResult, floor: Option<Floor>) -> Value {
    let h = &r.hist;
    let lat = |ns: u64| num(ns as f64 / 1000.0);
    let mut latency: Vec<(&str, Value)> = PERCENTILES
        .iter()
        .map(|&(p, name)| (name, lat(h.percentile(p))))
        .collect();
    latency.push(("max", lat(h.max())));
    latency.push(("mean", num(h.mean() / 1000.0)));
    latency.push(("samples", num(h.count() as f64)));
    let device = match r.device {
        Some(d) => {
            let pc = r.device_per_commit();
            obj(vec![
                (
                    "name",
                    r.device_name.clone().map_or(Value::Null, Value::String),
                ),
                ("write_requests", num(d.writes as f64)),
                ("bytes_written", num(d.write_bytes as f64)),
                ("flushes", num(d.flushes as f64)),
                ("read_requests", num(d.reads as f64)),
                ("bytes_read", num(d.read_bytes as f64)),
                ("write_requests_per_commit", onum(pc.map(|p| p.0))),
                ("bytes_written_per_commit", onum(pc.map(|p| p.1))),
                ("flushes_per_commit", onum(pc.map(|p| p.2))),
            ])
        }
        None => Value::Null,
    };
    let (ratio, p50r) = match floor {
        Some(f) if f.ops_per_sec > 0.0 && f.p50 > 0 => (
            Some(r.ops_per_sec() / f.ops_per_sec),
            Some(h.percentile(50.0) as f64 / f.p50 as f64),
        ),
        _ => (None, None),
    };
    let c = r.engine_delta;
    obj(vec![
        ("engine", Value::String(r.engine.clone())),
        ("config", Value::String(r.config.clone())),
        (
            "io_path",
            r.io_path.clone().map_or(Value::Null, Value::String),
        ),
        ("workload", Value::String(r.workload.name().into())),
        ("mode", Value::String(r.mode.name().into())),
        ("threads", num(r.threads as f64)),
        ("ops", num(r.ops as f64)),
        ("commits", num(r.commits as f64)),
        ("seconds", num(r.elapsed.as_secs_f64())),
        ("ops_per_sec", num(r.ops_per_sec())),
        ("latency_us", obj(latency)),
        ("user_bytes", num(r.user_bytes as f64)),
        (
            "engine_counters",
            obj(vec![
                ("commits", onum(c.commits.map(|v| v as f64))),
                ("syncs", onum(c.syncs.map(|v| v as f64))),
                ("bytes_logged", onum(c.bytes_logged.map(|v| v as f64))),
                ("checkpoints", onum(c.checkpoints.map(|v| v as f64))),
                (
                    "segments_deleted",
                    onum(c.segments_deleted.map(|v| v as f64)),
                ),
                ("trims", onum(c.trims.map(|v| v as f64))),
            ]),
        ),
        ("syncs_per_commit", onum(r.syncs_per_commit())),
        ("write_amplification", onum(r.write_amp())),
        (
            "checkpoint_bytes_written",
            onum(r.checkpoint_bytes.map(|b| b as f64)),
        ),
        (
            "files",
            match r.files {
                Some((size, used)) => obj(vec![
                    ("size", num(size as f64)),
                    ("used", num(used as f64)),
                    ("lifetime_user_bytes", num(r.lifetime_user_bytes as f64)),
                    ("used_per_user_byte", onum(r.file_amp())),
                ]),
                None => Value::Null,
            },
        ),
        ("device", device),
        ("cpu_seconds", num(r.cpu.as_secs_f64())),
        ("worker_cpu_seconds", num(r.worker_cpu.as_secs_f64())),
        ("ops_per_worker_cpu_sec", onum(r.ops_per_worker_cpu_sec())),
        (
            "power_loss_durable",
            r.power_loss_durable.map_or(Value::Null, Value::Bool),
        ),
        ("vs_floor_throughput", onum(ratio)),
        (
            "index_memory",
            match r.index {
                Some(m) => obj(vec![
                    ("versions", num(m.versions as f64)),
                    ("bytes", num(m.bytes as f64)),
                    ("payload_bytes", num(m.payload as f64)),
                    ("overhead_per_version", onum(m.overhead_per_version())),
                ]),
                None => Value::Null,
            },
        ),
        ("rss_delta_bytes", onum(r.rss_delta.map(|d| d as f64))),
        ("live_keys", num(r.live_keys as f64)),
        ("rss_bytes_per_key", onum(r.rss_per_key())),
        (
            "writer",
            match r.writer {
                Some((puts, commits)) => obj(vec![
                    ("puts", num(puts as f64)),
                    ("commits", num(commits as f64)),
                    ("puts_per_sec", onum(r.writer_puts_per_sec())),
                    ("cpu_seconds", onum(r.writer_cpu.map(|c| c.as_secs_f64()))),
                ]),
                None => Value::Null,
            },
        ),
        (
            "snapshot_ns",
            match &r.snapshot_cost {
                Some((take, release)) => obj(vec![
                    ("count", num(take.count() as f64)),
                    ("take_p50", num(take.percentile(50.0) as f64)),
                    ("take_p99", num(take.percentile(99.0) as f64)),
                    ("take_mean", num(take.mean())),
                    ("drop_p50", num(release.percentile(50.0) as f64)),
                    ("drop_mean", num(release.mean())),
                ]),
                None => Value::Null,
            },
        ),
        (
            "first_entry_us",
            match &r.first_entry {
                Some((first, scans)) => obj(vec![
                    ("scans_started", num(first.count() as f64)),
                    ("scans_completed", num(*scans as f64)),
                    ("p50", num(first.percentile(50.0) as f64 / 1000.0)),
                    ("max", num(first.max() as f64 / 1000.0)),
                ]),
                None => Value::Null,
            },
        ),
        ("vs_floor_p50", onum(p50r)),
        (
            "history",
            r.history.as_ref().map_or(Value::Null, history_json),
        ),
        (
            "ckptwrite",
            match &r.ckpt_write {
                Some((without, with, ck)) => {
                    let p = |h: &crate::hist::Histogram, q: f64| lat(h.percentile(q));
                    obj(vec![
                        ("puts_with", num(with.count() as f64)),
                        ("p50_us_with", p(with, 50.0)),
                        ("p99_us_with", p(with, 99.0)),
                        ("p999_us_with", p(with, 99.9)),
                        ("puts_without", num(without.count() as f64)),
                        ("p50_us_without", p(without, 50.0)),
                        ("p99_us_without", p(without, 99.0)),
                        ("p999_us_without", p(without, 99.9)),
                        (
                            "p99_ratio",
                            onum((without.percentile(99.0) > 0).then(|| {
                                with.percentile(99.0) as f64 / without.percentile(99.0) as f64
                            })),
                        ),
                        ("checkpoints", num(ck.count() as f64)),
                        ("checkpoint_ms_p50", num(ck.percentile(50.0) as f64 / 1e6)),
                        ("checkpoint_ms_max", num(ck.max() as f64 / 1e6)),
                    ])
                }
                None => Value::Null,
            },
        ),
        (
            "coldread",
            r.cold_read.as_ref().map_or(Value::Null, cold_read_json),
        ),
        ("rmw", r.rmw.as_ref().map_or(Value::Null, rmw_json)),
        ("runs", r.runs.as_ref().map_or(Value::Null, runs_json)),
        (
            "readonly",
            r.readonly.as_ref().map_or(Value::Null, readonly_json),
        ),
        ("raft", r.raft.as_ref().map_or(Value::Null, raft_json)),
        (
            "verified",
            match &r.verified {
                Ok(n) => obj(vec![("ok", Value::Bool(true)), ("keys", num(*n as f64))]),
                Err(e) => obj(vec![
                    ("ok", Value::Bool(false)),
                    ("error", Value::String(e.clone())),
                ]),
            },
        ),
        (
            "notes",
            Value::Array(r.notes.iter().map(|n| Value::String(n.clone())).collect()),
        ),
    ])
}

fn space_json(sp: &crate::sysinfo::Space, live: u64) -> Value {
    obj(vec![
        ("allocated_bytes", num(sp.allocated as f64)),
        ("apparent_bytes", num(sp.apparent as f64)),
        ("files", num(sp.files as f64)),
        (
            "amplification",
            onum((live > 0).then(|| sp.allocated as f64 / live as f64)),
        ),
    ])
}

fn cold_open_json(o: &crate::runner::ColdOpen) -> Value {
    obj(vec![
        ("open_ms", num(o.open.as_secs_f64() * 1e3)),
        ("floor_ms", num(o.floor.as_secs_f64() * 1e3)),
        ("floor_bytes", num(o.floor_bytes as f64)),
        ("floor_files", num(o.floor_files as f64)),
        ("open_per_floor", onum(o.ratio())),
        ("cold", Value::Bool(o.cold)),
        (
            "device_read_bytes",
            onum(o.device_read_bytes.map(|b| b as f64)),
        ),
        (
            "recovery",
            match o.recovery {
                Some(r) => obj(vec![
                    ("ms", num(r.duration_ns as f64 / 1e6)),
                    ("checkpoint_lsn", num(r.checkpoint_lsn as f64)),
                    ("checkpoint_keys", num(r.checkpoint_keys as f64)),
                    ("segments", num(r.segments as f64)),
                    ("transactions", num(r.transactions as f64)),
                    ("last_lsn", num(r.last_lsn as f64)),
                ]),
                None => Value::Null,
            },
        ),
    ])
}

fn phase_json(p: &crate::runner::ColdReadPhase) -> Value {
    let lat = |ns: u64| num(ns as f64 / 1000.0);
    obj(vec![
        ("units", num(p.hist.count() as f64)),
        ("reads", num(p.reads as f64)),
        ("reads_per_sec", num(p.reads_per_sec())),
        ("units_per_sec", num(p.units_per_sec())),
        ("p50_us", lat(p.hist.percentile(50.0))),
        ("p99_us", lat(p.hist.percentile(99.0))),
        ("max_us", lat(p.hist.max())),
        ("mean_us", num(p.hist.mean() / 1000.0)),
        (
            "device_read_bytes",
            onum(p.device.map(|d| d.read_bytes as f64)),
        ),
        (
            "device_read_requests",
            onum(p.device.map(|d| d.reads as f64)),
        ),
    ])
}

fn cold_read_json(c: &crate::runner::ColdReadOut) -> Value {
    let values = |v: Option<crate::engine::DiskValues>| match v {
        Some(v) => obj(vec![
            ("keys", num(v.keys as f64)),
            ("value_reads", num(v.reads as f64)),
            ("value_read_bytes", num(v.read_bytes as f64)),
            ("value_cache_hits", num(v.cache_hits as f64)),
            ("value_cache_bytes", num(v.cache_bytes as f64)),
            ("value_segments", num(v.segments as f64)),
        ]),
        None => Value::Null,
    };
    obj(vec![
        ("keys", num(c.keys as f64)),
        ("key_size", num(c.key_size as f64)),
        ("value_size", num(c.value_size as f64)),
        ("value_threshold", onum(c.value_threshold.map(|t| t as f64))),
        ("value_cache_bytes", num(c.value_cache as f64)),
        ("load_seconds", num(c.load.as_secs_f64())),
        (
            "settled_by",
            c.settled_by.clone().map_or(Value::Null, Value::String),
        ),
        (
            "space",
            space_json(&c.space, c.keys * (c.key_size + c.value_size) as u64),
        ),
        ("open", cold_open_json(&c.open)),
        (
            "open_floor_is_checkpoint",
            Value::Bool(c.floor_is_checkpoint),
        ),
        (
            "rss_after_open_bytes",
            onum(c.rss_after_open.map(|b| b as f64)),
        ),
        (
            "rss_open_growth_bytes",
            onum(c.rss_open_growth.map(|b| b as f64)),
        ),
        (
            "rss_after_reads_bytes",
            onum(c.rss_after_reads.map(|b| b as f64)),
        ),
        (
            "peak_rss_serving_bytes",
            onum(c.peak_rss_serving.map(|b| b as f64)),
        ),
        (
            "peak_rss_load_bytes",
            onum(c.peak_rss_load.map(|b| b as f64)),
        ),
        ("index_bytes", onum(c.index.map(|m| m.bytes as f64))),
        ("index_bytes_per_key", onum(c.index_per_key())),
        ("index_overhead_per_key", onum(c.index_overhead_per_key())),
        ("values_after_open", values(c.values_open)),
        ("values_at_end", values(c.values_end)),
        ("gets", phase_json(&c.gets)),
        (
            "pread_floor",
            c.pread.as_ref().map_or(Value::Null, phase_json),
        ),
        ("pread_bytes", num(c.pread_size as f64)),
        ("pread_files", num(c.pread_files.files as f64)),
        ("pread_file_bytes", num(c.pread_files.bytes as f64)),
        ("pread_in_segments", Value::Bool(c.pread_files.segments)),
        ("get_p50_per_pread_p50", onum(c.get_p50_ratio())),
        ("batch", num(crate::runner::BATCH as f64)),
        ("get_many", phase_json(&c.many)),
        ("sequential", phase_json(&c.seq)),
        ("get_many_per_sequential_throughput", onum(c.batch_ratio())),
    ])
}

fn rmw_json(m: &crate::runner::RmwOut) -> Value {
    use crate::runner::RmwVariant as V;
    let lat = |ns: u64| num(ns as f64 / 1000.0);
    let phase = |p: &crate::runner::RmwPhase| {
        obj(vec![
            ("ops", num(p.ops as f64)),
            ("seconds", num(p.busy.as_secs_f64())),
            ("ops_per_sec", num(p.ops_per_sec())),
            ("ns_per_op", onum(p.ns_per_op())),
            ("p50_us", lat(p.hist.percentile(50.0))),
            ("p99_us", lat(p.hist.percentile(99.0))),
            ("max_us", lat(p.hist.max())),
            ("cpu_seconds", num(p.cpu.as_secs_f64())),
        ])
    };
    let uncontended = match &m.uncontended {
        Some(u) => {
            let mut f = vec![
                ("threads", num(1.0)),
                ("keys", num(u.keys as f64)),
                ("rounds", num(u.rounds as f64)),
            ];
            for v in V::ALL {
                f.push((v.json_name(), phase(u.phase(v))));
            }
            f.extend([
                ("rmw_txn_time_per_put", onum(u.time_ratio(V::Txn))),
                ("rmw_txn_p50_per_put", onum(u.p50_ratio(V::Txn))),
                (
                    "write_only_txn_time_per_put",
                    onum(u.time_ratio(V::WriteTxn)),
                ),
                ("get_then_put_time_per_put", onum(u.time_ratio(V::GetPut))),
                (
                    "target_rmw_txn_time_per_put",
                    num(crate::runner::RMW_TARGET),
                ),
                (
                    "target_met",
                    u.time_ratio(V::Txn)
                        .map_or(Value::Null, |t| Value::Bool(t <= crate::runner::RMW_TARGET)),
                ),
            ]);
            obj(f)
        }
        None => Value::Null,
    };
    obj(vec![
        ("hot_keys", num(m.hot_keys as f64)),
        ("key_choice", Value::String("uniform".into())),
        ("max_attempts", num(m.max_attempts as f64)),
        ("committed", num(m.committed as f64)),
        ("gave_up", num(m.gave_up as f64)),
        ("attempts", num(m.attempts as f64)),
        ("txn_conflicts", num(m.conflicts as f64)),
        ("txn_retries", num(m.retries as f64)),
        ("conflicts_per_commit", onum(m.per_commit(m.conflicts))),
        ("retries_per_commit", onum(m.per_commit(m.retries))),
        ("attempts_per_commit", onum(m.per_commit(m.attempts))),
        ("counter_sum", onum(m.counter_sum.map(|s| s as f64))),
        (
            "no_lost_update",
            m.counter_sum
                .map_or(Value::Null, |s| Value::Bool(s == m.committed)),
        ),
        ("uncontended", uncontended),
    ])
}

fn runs_json(o: &crate::runner::RunsOut) -> Value {
    use crate::runner::{RunsCall, RunsOut};
    let call = |c: &RunsCall, floor: &RunsCall| {
        obj(vec![
            ("ms", num(c.time.as_secs_f64() * 1e3)),
            ("mb_per_sec", num(o.mb_per_sec(c))),
            ("txns_per_sec", num(o.txns_per_sec(c))),
            ("per_floor", onum(RunsOut::ratio(c, floor))),
            ("cpu_seconds", num(c.cpu.as_secs_f64())),
            (
                "device_read_bytes",
                onum(c.device.map(|d| d.read_bytes as f64)),
            ),
            (
                "device_read_requests",
                onum(c.device.map(|d| d.reads as f64)),
            ),
        ])
    };
    let both = |x: &crate::runner::RunsColdWarm| {
        obj(vec![
            ("cold", call(&x.cold, &o.floor.cold)),
            ("warm", call(&x.warm, &o.floor.warm)),
        ])
    };
    let listed: Vec<Value> = o
        .listed
        .iter()
        .map(|r| {
            obj(vec![
                ("id", num(r.id as f64)),
                ("label", r.label.clone().map_or(Value::Null, Value::String)),
                ("commits", num(r.commits as f64)),
                ("first_lsn", num(r.first_lsn as f64)),
                ("last_lsn", num(r.last_lsn as f64)),
                ("complete", Value::Bool(r.complete)),
            ])
        })
        .collect();
    obj(vec![
        ("runs", num(o.runs as f64)),
        ("puts_per_txn", num(o.puts_per_txn as f64)),
        ("keys", num(o.keys as f64)),
        (
            "txns_per_run",
            Value::Array(o.txns.iter().map(|&t| num(t as f64)).collect()),
        ),
        ("build_seconds", num(o.build.as_secs_f64())),
        ("reopen_ms", num(o.reopen.as_secs_f64() * 1e3)),
        ("segments", num(o.segments as f64)),
        ("log_bytes", num(o.log_bytes as f64)),
        ("log_txns", num(o.log_txns as f64)),
        ("cold", Value::Bool(o.cold)),
        ("floor", both(&o.floor)),
        ("list", both(&o.list)),
        ("run_changes", both(&o.changes)),
        ("run_changes_run", num(o.middle as f64)),
        ("run_changes_yielded", num(o.changes_yielded as f64)),
        ("run_changes_keys", num(o.changes_keys as f64)),
        (
            "run_changes_rss_growth_bytes",
            onum(o.changes_rss.map(|b| b as f64)),
        ),
        ("diff_runs", both(&o.diff)),
        ("diff_keys", num(o.diff_keys as f64)),
        ("listed", Value::Array(listed)),
    ])
}

/// A number field of a derived JSON type, written as [`num`] writes it.
fn ser_num<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&num(*v), s)
}

/// An optional number field, as [`onum`] writes it.
fn ser_onum<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&onum(*v), s)
}

/// A list of numbers, each as [`num`] writes it.
fn ser_nums<S: serde::Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|&x| num(x)))
}

/// A readonly row's measurement as JSON (`row_json`'s `readonly`).
#[derive(serde::Serialize)]
struct ReadOnlyJson {
    /// The measurement (`open_read_only_cold`, ...).
    row: &'static str,
    /// What was timed.
    call: &'static str,
    /// Whether the files were dropped from the page cache before each call.
    cold: bool,
    /// Calls made.
    calls: usize,
    #[serde(serialize_with = "ser_num")]
    median_ms: f64,
    #[serde(serialize_with = "ser_num")]
    min_ms: f64,
    #[serde(serialize_with = "ser_num")]
    max_ms: f64,
    /// Each call's time, in the order made.
    #[serde(serialize_with = "ser_nums")]
    times_ms: Vec<f64>,
    /// Records each call opened (or read).
    records_per_call: Vec<u64>,
    /// The floor it is compared with, and its median.
    floor: &'static str,
    #[serde(serialize_with = "ser_num")]
    floor_median_ms: f64,
    /// Its median ÷ the floor's.
    #[serde(serialize_with = "ser_onum")]
    median_per_floor: Option<f64>,
    /// The closed database.
    records: u64,
    key_size: usize,
    value_size: usize,
    segments: usize,
    log_bytes: u64,
    #[serde(serialize_with = "ser_num")]
    build_seconds: f64,
    /// Db::open_read_only ÷ Db::open, medians.
    #[serde(serialize_with = "ser_onum")]
    read_only_per_open_cold: Option<f64>,
    #[serde(serialize_with = "ser_onum")]
    read_only_per_open_warm: Option<f64>,
    /// What a writable open changed in the directory, if anything.
    open_changed_dir: Option<String>,
    /// The live phase (on the live row only).
    live: Option<ReadOnlyLiveJson>,
}

/// The live phase of the readonly workload as JSON.
#[derive(serde::Serialize)]
struct ReadOnlyLiveJson {
    /// The pace the writer aims at.
    writer_pace_puts_per_sec: u64,
    writer_puts: u64,
    #[serde(serialize_with = "ser_num")]
    writer_seconds: f64,
    #[serde(serialize_with = "ser_num")]
    writer_puts_per_sec: f64,
    #[serde(serialize_with = "ser_num")]
    writer_cpu_seconds: f64,
    /// Each read-only open beside the writer.
    opens: Vec<ReadOnlyLiveOpenJson>,
}

/// One read-only open beside the writer.
#[derive(serde::Serialize)]
struct ReadOnlyLiveOpenJson {
    /// The writer's puts returned before the open began, and of them, those durable then.
    written_before: u64,
    durable_before: u64,
    durable_lsn: u64,
    /// The writer's keys the handle held (a prefix of its puts), and its last LSN.
    seen: u64,
    seen_lsn: u64,
    /// The writer's puts returned when the open returned.
    written_after: u64,
}

/// A raft row's measurement as JSON (`row_json`'s `raft`).
#[derive(serde::Serialize)]
struct RaftJson {
    /// `ceiling` or `store`.
    row: &'static str,
    /// The store: `mem-ceiling`, `ringlog` or `rocksdb`.
    store: String,
    /// Appenders, each with a store (a Raft group) of its own.
    appenders: usize,
    /// Value bytes of each entry's request.
    value_size: usize,
    /// Appends (one entry each), in all and per store.
    appends: u64,
    appends_per_store: Vec<u64>,
    #[serde(serialize_with = "ser_num")]
    seconds: f64,
    #[serde(serialize_with = "ser_num")]
    entries_per_sec: f64,
    /// Append + callback latency.
    #[serde(serialize_with = "ser_num")]
    p50_us: f64,
    #[serde(serialize_with = "ser_num")]
    p99_us: f64,
    /// ringlog: `Db::stats()` over the appends.
    db_syncs: Option<u64>,
    db_commits: Option<u64>,
    #[serde(serialize_with = "ser_onum")]
    syncs_per_append: Option<f64>,
    /// RocksDB: `flush_wal(true)` calls over the appends.
    flush_wal_calls: Option<u64>,
    /// The ceiling stopped at its entry limit.
    capped: bool,
    /// Entries read back and compared.
    read_back: Option<u64>,
    /// The ceiling of the same run, and the store's figures over it.
    #[serde(serialize_with = "ser_num")]
    ceiling_entries_per_sec: f64,
    #[serde(serialize_with = "ser_num")]
    ceiling_p50_us: f64,
    #[serde(serialize_with = "ser_onum")]
    store_throughput_vs_ceiling: Option<f64>,
    #[serde(serialize_with = "ser_onum")]
    store_p50_vs_ceiling: Option<f64>,
}

fn raft_json(o: &crate::runner::RaftOut) -> Value {
    let Some(row) = o.row else {
        return Value::Null;
    };
    let m = o.measure();
    let p = |q: f64| m.hist.percentile(q) as f64 / 1e3;
    let doc = RaftJson {
        row: row.json_name(),
        store: m.store.clone(),
        appenders: o.appenders,
        value_size: o.value_size,
        appends: m.appends,
        appends_per_store: m.per_store.clone(),
        seconds: m.elapsed.as_secs_f64(),
        entries_per_sec: m.entries_per_sec(),
        p50_us: p(50.0),
        p99_us: p(99.0),
        db_syncs: m.db.map(|d| d.syncs),
        db_commits: m.db.map(|d| d.commits),
        syncs_per_append: m.syncs_per_append(),
        flush_wal_calls: m.flush_wal_calls,
        capped: m.capped,
        read_back: m.read_back.as_ref().ok().copied(),
        ceiling_entries_per_sec: o.ceiling.entries_per_sec(),
        ceiling_p50_us: o.ceiling.hist.percentile(50.0) as f64 / 1e3,
        store_throughput_vs_ceiling: o.throughput_vs_ceiling(),
        store_p50_vs_ceiling: o.p50_vs_ceiling(),
    };
    serde_json::to_value(&doc).unwrap_or(Value::Null)
}

fn readonly_json(o: &crate::runner::ReadOnlyOut) -> Value {
    use crate::runner::ReadOnlyVariant as V;
    let Some(v) = o.row else {
        return Value::Null;
    };
    let Some(s) = o.series(v) else {
        return Value::Null;
    };
    let ms = |d: Option<std::time::Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    let live = &o.live;
    let doc = ReadOnlyJson {
        row: v.json_name(),
        call: v.call(),
        cold: v.is_cold() && o.cold,
        calls: s.calls.len(),
        median_ms: ms(s.median()),
        min_ms: ms(s.min()),
        max_ms: ms(s.max()),
        times_ms: s.calls.iter().map(|c| ms(Some(c.time))).collect(),
        records_per_call: s.records.clone(),
        floor: v.floor().json_name(),
        floor_median_ms: ms(o.series(v.floor()).and_then(|f| f.median())),
        median_per_floor: o.ratio(v),
        records: o.records,
        key_size: o.key_size,
        value_size: o.value_size,
        segments: o.segments,
        log_bytes: o.log_bytes,
        build_seconds: o.build.as_secs_f64(),
        read_only_per_open_cold: o.ratio_of(V::ReadOnlyCold, V::OpenCold),
        read_only_per_open_warm: o.ratio_of(V::ReadOnlyWarm, V::OpenWarm),
        open_changed_dir: o.open_changed_dir.clone(),
        live: (v == V::ReadOnlyLive).then(|| ReadOnlyLiveJson {
            writer_pace_puts_per_sec: crate::runner::READONLY_LIVE_RATE,
            writer_puts: live.puts,
            writer_seconds: live.time.as_secs_f64(),
            writer_puts_per_sec: live.puts_per_sec(),
            writer_cpu_seconds: live.cpu.as_secs_f64(),
            opens: live
                .opens
                .iter()
                .map(|x| ReadOnlyLiveOpenJson {
                    written_before: x.written_before,
                    durable_before: x.durable_before,
                    durable_lsn: x.durable_lsn,
                    seen: x.seen,
                    seen_lsn: x.seen_lsn,
                    written_after: x.written_after,
                })
                .collect(),
        }),
    };
    serde_json::to_value(&doc).unwrap_or(Value::Null)
}

fn history_json(h: &crate::runner::HistoryOut) -> Value {
    obj(vec![
        ("live_keys", num(h.live_keys as f64)),
        ("live_bytes", num(h.live_bytes as f64)),
        ("records_written", num(h.records as f64)),
        ("log_bytes_written", onum(h.log_bytes.map(|b| b as f64))),
        ("checkpoints", onum(h.checkpoints.map(|b| b as f64))),
        ("checkpoint_files_seen", num(h.checkpoints_seen as f64)),
        (
            "segments_deleted",
            onum(h.segments_deleted.map(|b| b as f64)),
        ),
        ("space_amplification", onum(h.space_amp())),
        ("space_peak", space_json(&h.peak_space, h.live_bytes)),
        (
            "space_at_close",
            space_json(&h.space_at_close, h.live_bytes),
        ),
        (
            "space_settled",
            h.space_settled
                .as_ref()
                .map_or(Value::Null, |sp| space_json(sp, h.live_bytes)),
        ),
        (
            "settled_by",
            h.settled_by.clone().map_or(Value::Null, Value::String),
        ),
        ("open", cold_open_json(&h.open)),
        (
            "after_open_cpu_s",
            onum(h.after_open.map(|(c, _)| c.as_secs_f64())),
        ),
        (
            "after_open_peak_rss_bytes",
            onum(h.after_open.and_then(|(_, p)| p).map(|p| p as f64)),
        ),
        (
            "open_settled",
            h.open_settled.as_ref().map_or(Value::Null, cold_open_json),
        ),
    ])
}

/// One throughput series: (mode, workload, engine, points of (threads, ops/s)).
type Series = (Mode, String, String, Vec<(usize, f64)>);

/// An SVG with two panels: throughput against threads (one series per engine, per mode and
/// workload with more than one thread count) and the latency percentiles of every row at the
/// largest common thread count, one series per engine.
pub fn svg(rows: &[RunResult], title: &str) -> String {
    let palette = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
        "#7f7f7f", "#bcbd22",
    ];
    let mut engines: Vec<&str> = Vec::new();
    for r in rows {
        if !engines.contains(&r.engine.as_str()) {
            engines.push(&r.engine);
        }
    }
    let color = |engine: &str| {
        let i = engines.iter().position(|e| *e == engine).unwrap_or(0);
        palette[i % palette.len()]
    };
    // Series for the throughput panel: (mode, workload, engine) with ≥ 1 points.
    let mut series: Vec<Series> = Vec::new();
    // readonly's rows are measurements of one run, not thread counts.
    // raft's ceiling is measured again in each store's run: plotted with the stores only.
    for r in rows.iter().filter(|r| {
        r.readonly.is_none()
            && r.raft.as_ref().and_then(|o| o.row) != Some(crate::runner::RaftRow::Ceiling)
    }) {
        let key = (r.mode, r.workload.name().to_string(), r.engine.clone());
        match series
            .iter_mut()
            .find(|s| (s.0, &s.1, &s.2) == (key.0, &key.1, &key.2))
        {
            Some(s) => s.3.push((r.threads, r.ops_per_sec())),
            None => series.push((key.0, key.1, key.2, vec![(r.threads, r.ops_per_sec())])),
        }
    }
    // Prefer the strict write workloads: that is where threads matter.
    let focus: Vec<_> = series
        .iter()
        .filter(|s| s.0 == Mode::Strict && s.3.len() > 1)
        .collect();
    let shown: Vec<_> = if focus.is_empty() {
        series.iter().filter(|s| s.3.len() > 1).collect()
    } else {
        focus
    };
    let (w, h) = (960.0, 420.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}" font-family="sans-serif" font-size="11">"#,
        h * 2.0 + 40.0
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="18" font-size="13">{}</text>"#,
        escape(title)
    );
    // Panel 1.
    let (x0, y0, pw, ph) = (70.0, 50.0, 620.0, 320.0);
    let max_t = shown
        .iter()
        .flat_map(|s| s.3.iter().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    let max_y = shown
        .iter()
        .flat_map(|s| s.3.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    let (ly_min, ly_max) = (max_y.log10().floor() - 3.0, max_y.log10().ceil());
    let xs = |t: f64| x0 + (t.log2() / max_t.log2()) * pw;
    let ys = |v: f64| y0 + ph - ((v.max(1.0).log10() - ly_min) / (ly_max - ly_min)) * ph;
    axes(&mut out, x0, y0, pw, ph, "threads (log₂)", "ops/s (log₁₀)");
    let mut t = 1.0;
    while t <= max_t {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{t}</text>"#,
            xs(t),
            y0 + ph + 14.0
        );
        t *= 2.0;
    }
    for e in (ly_min as i32)..=(ly_max as i32) {
        let v = 10f64.powi(e);
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><line x1="{x0}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#eee"/>"##,
            x0 - 4.0,
            ys(v) + 4.0,
            thousands(v),
            x0 + pw,
            ys(v),
            ys(v)
        );
    }
    let mut workloads: Vec<&str> = Vec::new();
    for s in &shown {
        if !workloads.contains(&s.1.as_str()) {
            workloads.push(&s.1);
        }
    }
    let dashes = ["", "6,3", "2,3", "8,3,2,3"];
    for (i, s) in shown.iter().enumerate() {
        let color = color(&s.2);
        let dash = dashes[workloads.iter().position(|w| *w == s.1).unwrap_or(0) % dashes.len()];
        let mut pts = s.3.clone();
        pts.sort_by_key(|p| p.0);
        let path: Vec<String> = pts
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", xs(t as f64), ys(v)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}" points="{}"/>"#,
            path.join(" ")
        );
        for &(t, v) in &pts {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                xs(t as f64),
                ys(v)
            );
        }
        let ly = y0 + 8.0 + i as f64 * 14.0;
        let _ = writeln!(
            out,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
            x0 + pw + 10.0,
            x0 + pw + 34.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" fill="{color}">{} {} {}</text>"#,
            x0 + pw + 40.0,
            y0 + 12.0 + i as f64 * 14.0,
            escape(&s.2),
            s.0.name(),
            escape(&s.1)
        );
    }
    if shown.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}">(one thread count only: run with --threads 1,4,16,64)</text>"#,
            x0 + 20.0,
            y0 + 20.0
        );
    }
    // Panel 2: latency percentiles of the chosen workload/mode, one series per engine (its
    // single-writer run, where the raw floors run too).
    let y1 = y0 + ph + 60.0;
    let lat_rows: Vec<&RunResult> = {
        let pick = rows
            .iter()
            .find(|r| r.mode == Mode::Strict && r.workload.is_write_only())
            .or(rows.first());
        match pick {
            Some(p) => {
                let mut v: Vec<&RunResult> = Vec::new();
                for r in rows
                    .iter()
                    .filter(|r| r.mode == p.mode && r.workload == p.workload)
                {
                    // One row per engine: its fewest-threads run.
                    match v.iter().position(|x| x.engine == r.engine) {
                        Some(i) if v[i].threads > r.threads => v[i] = r,
                        Some(_) => {}
                        None => v.push(r),
                    }
                }
                v
            }
            None => Vec::new(),
        }
    };
    let pcts = [50.0, 90.0, 99.0, 99.9, 99.99, 100.0];
    let max_lat = lat_rows
        .iter()
        .map(|r| r.hist.max() as f64 / 1000.0)
        .fold(1.0f64, f64::max);
    let min_lat = lat_rows
        .iter()
        .map(|r| (r.hist.percentile(50.0) as f64 / 1000.0).max(0.01))
        .fold(f64::MAX, f64::min)
        .min(max_lat);
    let (lmin, lmax) = (
        min_lat.log10().floor(),
        max_lat.log10().ceil().max(min_lat.log10().floor() + 1.0),
    );
    let xp = |i: usize| x0 + i as f64 / (pcts.len() - 1) as f64 * pw;
    let yl = |v: f64| y1 + ph - ((v.max(1e-3).log10() - lmin) / (lmax - lmin)) * ph;
    axes(&mut out, x0, y1, pw, ph, "percentile", "latency µs (log₁₀)");
    for (i, p) in pcts.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            xp(i),
            y1 + ph + 14.0,
            if *p == 100.0 {
                "max".to_string()
            } else {
                format!("p{p}")
            }
        );
    }
    for e in (lmin as i32)..=(lmax as i32) {
        let v = 10f64.powi(e);
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><line x1="{x0}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#eee"/>"##,
            x0 - 4.0,
            yl(v) + 4.0,
            if v < 1.0 {
                format!("{v}")
            } else {
                thousands(v)
            },
            x0 + pw,
            yl(v),
            yl(v)
        );
    }
    for (i, r) in lat_rows.iter().enumerate() {
        let color = color(&r.engine);
        let pts: Vec<String> = pcts
            .iter()
            .enumerate()
            .map(|(j, &p)| {
                let v = if p == 100.0 {
                    r.hist.max()
                } else {
                    r.hist.percentile(p)
                };
                format!("{:.1},{:.1}", xp(j), yl(v as f64 / 1000.0))
            })
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" fill="{color}">{} {} {} ×{}</text>"#,
            x0 + pw + 15.0,
            y1 + 12.0 + i as f64 * 14.0,
            escape(&r.engine),
            r.mode.name(),
            r.workload.name(),
            r.threads
        );
    }
    out.push_str("</svg>\n");
    out
}

fn axes(out: &mut String, x0: f64, y0: f64, pw: f64, ph: f64, xl: &str, yl: &str) {
    let _ = writeln!(
        out,
        r##"<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#333"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{xl}</text><text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">{yl}</text>"##,
        x0 + pw / 2.0,
        y0 + ph + 30.0,
        y0 + ph / 2.0,
        y0 + ph / 2.0
    );
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(us(1500), "1.50");
        assert_eq!(us(150_000), "150");
        assert_eq!(us(15_000), "15.0");
        assert_eq!(us(1_500_000), "1,500");
        // Numbers keep the report's form: integral ones without a fraction, non-finite ones null.
        let j = obj(vec![
            ("a\"b", num(1.5)),
            ("n", num(f64::NAN)),
            ("i", onum(Some(f64::INFINITY))),
            (
                "l",
                Value::Array(vec![Value::Null, Value::Bool(true), num(3.0)]),
            ),
            ("s", Value::String("x\n\u{1}".into())),
            ("big", num(1e16)),
            ("small", num(2.5e-7)),
        ]);
        assert_eq!(
            j.to_string(),
            r#"{"a\"b":1.5,"n":null,"i":null,"l":[null,true,3],"s":"x\n\u0001","big":10000000000000000,"small":2.5e-7}"#
        );
    }
}
