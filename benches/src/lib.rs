//! # ringlog-bench
//!
//! The throughput harness behind the `ringlog-bench` binary: "how fast are durable commits on
//! *my* disk, and how does ringlog compare?". It runs db_bench-style and YCSB workloads over
//! ringlog in its three durability modes, over raw durable-append loops (the physical floor of a
//! log on the disk) and, with cargo features, over peer engines; it measures throughput, latency
//! percentiles, syncs per commit, write amplification, CPU time and what the block device did;
//! and it reads back what every run wrote, failing loudly on a wrong value.
//!
//! ```text
//! cargo run --release -p ringlog-bench                      # the default run: one table, < 1 min
//! cargo run --release -p ringlog-bench -- --help
//! cargo run --release -p ringlog-bench --features peers -- --engines ringlog,raw,peers
//! ```

pub mod args;
pub mod engine;
pub mod engines;
pub mod hist;
pub mod keys;
pub mod raftlog;
pub mod report;
pub mod runner;
pub mod sysinfo;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use args::{Config, Parsed, Workload};
use engine::{EngineKind, Mode};
use report::Floor;
use runner::{Hooks, RunResult};

/// Exit status of a clean run.
pub const EXIT_OK: i32 = 0;
/// Exit status when a run failed: a wrong value read back, or an engine error.
pub const EXIT_FAILED: i32 = 1;
/// Exit status for bad arguments.
pub const EXIT_USAGE: i32 = 2;

/// Parses `args` (without the program name), runs, prints the table to `out` and messages to
/// stderr; returns the exit status.
pub fn main_with<I, S>(args: I, hooks: &Hooks, out: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let cfg = match args::parse(args) {
        Ok(Parsed::Run(c)) => c,
        Ok(Parsed::Help(text)) => {
            let _ = write!(out, "{text}");
            return EXIT_OK;
        }
        Err(e) => {
            // clap's message, the usage line and a pointer to --help, on stderr.
            let _ = e.print();
            return EXIT_USAGE;
        }
    };
    if let Some(d) = &cfg.dir {
        if let Err(e) = std::fs::create_dir_all(d) {
            eprintln!("ringlog-bench: --dir {}: {e}", d.display());
            return EXIT_USAGE;
        }
    }
    match run(&cfg, hooks, out) {
        Ok(true) => EXIT_OK,
        Ok(false) => EXIT_FAILED,
        Err(msg) => {
            eprintln!("ringlog-bench: {msg}");
            EXIT_FAILED
        }
    }
}

/// `--cpu-load`: threads that spin at the lowest priority (nice 19) until dropped, so that the
/// engines run while other work keeps the cores busy.
struct CpuLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CpuLoad {
    fn start(n: usize) -> CpuLoad {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    // SAFETY: setpriority takes no pointers; `who` 0 with PRIO_PROCESS names the
                    // calling thread on Linux (each thread has its own nice value).
                    unsafe {
                        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
                    }
                    let mut x = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..1024 {
                            x = std::hint::black_box(
                                x.wrapping_mul(6364136223846793005).wrapping_add(1),
                            );
                        }
                    }
                })
            })
            .collect();
        CpuLoad { stop, threads }
    }
}

impl Drop for CpuLoad {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Where the databases go: `--dir`, else `$TMPDIR` unless it is a tmpfs, else the current
/// directory.
fn bench_root(cfg: &Config) -> Result<tempfile::TempDir, String> {
    let parent = match &cfg.dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .map_err(|e| format!("cannot create --dir {}: {e}", d.display()))?;
            d.clone()
        }
        None => {
            let tmp = std::env::temp_dir();
            if sysinfo::is_memory_fs(&tmp) {
                std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
            } else {
                tmp
            }
        }
    };
    tempfile::Builder::new()
        .prefix("ringlog-bench-")
        .tempdir_in(&parent)
        .map_err(|e| format!("cannot create a directory in {}: {e}", parent.display()))
}

/// The engines of the configuration, raw loops first (so that ratios can be printed as rows
/// stream out), then ringlog, then peers.
fn engines(cfg: &Config) -> Vec<&'static dyn EngineKind> {
    let all = engine::all_engines();
    let mut v: Vec<&'static dyn EngineKind> = all
        .into_iter()
        .filter(|e| cfg.engines.iter().any(|n| n == e.name()))
        .collect();
    v.sort_by_key(|e| (!e.is_raw(), e.name() != "ringlog"));
    v
}

/// The raw loops whose rows give a workload's Strict floor: `O_DIRECT` `pwrite` + `fdatasync`,
/// and `pwritev2(RWF_DSYNC)` (ringlog's own mechanism where the filesystem is trusted with it,
/// `FsInfo::dsync_durable`; a device with FUA may complete it without a cache flush). The floor
/// is the faster of those that ran — on a filesystem not so trusted, `raw-dsync` is no durable
/// floor: read its row as an upper bound (the project's machine, ext4, trusts it).
const FLOOR_LOOPS: [&str; 2] = ["raw-odirect", "raw-dsync"];

/// Records a floor loop's row for `workload`: its first (the first thread count run).
fn note_floor(
    floors: &mut Vec<(Workload, &'static str, Floor)>,
    workload: Workload,
    name: &'static str,
    floor: Floor,
) {
    if !floors.iter().any(|f| f.0 == workload && f.1 == name) {
        floors.push((workload, name, floor));
    }
}

/// A workload's Strict floor: the fastest floor loop's ([`FLOOR_LOOPS`]).
fn floor_for(floors: &[(Workload, &'static str, Floor)], workload: Workload) -> Option<Floor> {
    floors
        .iter()
        .filter(|f| f.0 == workload)
        .map(|f| f.2)
        .max_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec))
}

/// Runs every combination; returns whether every run verified.
pub fn run(cfg: &Config, hooks: &Hooks, out: &mut dyn Write) -> Result<bool, String> {
    let root = bench_root(cfg)?;
    engines::ringlog::set_checkpoint_bytes(cfg.checkpoint_bytes);
    engines::ringlog::set_retention(cfg.retention);
    let machine = sysinfo::machine(root.path());
    let w = |out: &mut dyn Write, s: &str| {
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    };
    w(out, &format!("ringlog-bench: {}", machine.line()));
    w(
        out,
        &format!(
            "keys {} B, values {} B{}, key space {}, {} per run{}; ringlog I/O path requested: {}",
            cfg.key_size,
            cfg.value_size,
            [Workload::ColdRead, Workload::Raft]
                .into_iter()
                .filter(|w| cfg.workloads.contains(w))
                .filter_map(|w| match cfg.value_size_of(w) {
                    v if v != cfg.value_size => Some(format!(" ({v} B in {w})")),
                    _ => None,
                })
                .collect::<String>(),
            cfg.keys,
            if cfg.ops == u64::MAX {
                "no operation limit".to_string()
            } else {
                format!("at most {} operations", report::thousands(cfg.ops as f64))
            },
            cfg.duration
                .map(|d| format!(" and {:.3} s", d.as_secs_f64()))
                .unwrap_or_default(),
            cfg.io
        ),
    );
    if machine.device.is_none() {
        w(
            out,
            "warning: no block device found under the directory (tmpfs?): no device counters, and fdatasync proves nothing here",
        );
    } else if sysinfo::is_memory_fs(root.path()) {
        w(
            out,
            "warning: the directory is on a tmpfs: fdatasync proves nothing here",
        );
    }
    let _load = (cfg.cpu_load > 0).then(|| CpuLoad::start(cfg.cpu_load));
    if cfg.cpu_load > 0 {
        w(
            out,
            &format!(
                "cpu load: {} spinning threads at nice 19 through the whole run",
                cfg.cpu_load
            ),
        );
    }
    w(out, "");
    w(out, &report::header());

    let kinds = engines(cfg);
    let mut rows: Vec<RunResult> = Vec::new();
    let mut floors: Vec<(Workload, &'static str, Floor)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut configs: Vec<String> = Vec::new();
    let mut io_paths: Vec<String> = Vec::new();
    let mut all_ok = true;
    let mut run_no = 0;
    for &mode in &cfg.modes {
        for &workload in &cfg.workloads {
            if workload.strict_only() && mode != Mode::Strict {
                push_unique(
                    &mut notes,
                    format!(
                        "{workload}: run in strict mode only (every append is acknowledged once \
                         durable, whatever --durability says)"
                    ),
                );
                continue;
            }
            if workload.buffered_by_default() && !cfg.modes_given && mode != Mode::Buffered {
                push_unique(
                    &mut notes,
                    format!("{workload}: run in buffered mode only (--durability to choose)"),
                );
                continue;
            }
            for &kind in &kinds {
                if workload == Workload::CkptWrite && !kind.is_raw() && !kind.can_settle() {
                    push_unique(
                        &mut notes,
                        format!(
                            "{}: cannot run ckptwrite (no checkpoint or compaction step here)",
                            kind.name()
                        ),
                    );
                    continue;
                }
                if workload == Workload::Rmw && !kind.is_raw() && !kind.has_transactions() {
                    push_unique(
                        &mut notes,
                        format!(
                            "{}: cannot run rmw (ringlog only: its optimistic transactions, \
                             Db::transact)",
                            kind.name()
                        ),
                    );
                    continue;
                }
                if workload == Workload::Runs && !kind.is_raw() && !kind.has_runs() {
                    push_unique(
                        &mut notes,
                        format!(
                            "{}: cannot run runs (ringlog only: its log of runs, Db::runs, \
                             run_changes, diff_runs)",
                            kind.name()
                        ),
                    );
                    continue;
                }
                if workload == Workload::ReadOnly && !kind.is_raw() && !kind.has_read_only() {
                    push_unique(
                        &mut notes,
                        format!(
                            "{}: cannot run readonly (ringlog only: Db::open_read_only)",
                            kind.name()
                        ),
                    );
                    continue;
                }
                if workload == Workload::Raft && !kind.is_raw() && !kind.has_raft_log() {
                    push_unique(
                        &mut notes,
                        format!(
                            "{}: cannot run raft (no openraft log store on it here: ringlog, and \
                             rocksdb with its feature)",
                            kind.name()
                        ),
                    );
                    continue;
                }
                if !kind.supports(workload) {
                    let n = if kind.is_raw() {
                        "raw loops run the write workloads only (fillseq, fillrandom, overwrite, \
                         fillbatch), in strict mode, single-stream"
                            .to_string()
                    } else {
                        format!("{}: cannot run {workload}", kind.name())
                    };
                    push_unique(&mut notes, n);
                    continue;
                }
                let config = match kind.config(mode) {
                    Ok(c) => c,
                    Err(why) => {
                        if !kind.is_raw() {
                            push_unique(
                                &mut notes,
                                format!("{} {mode}: skipped: {why}", kind.name()),
                            );
                        }
                        continue;
                    }
                };
                if workload.needs_disk() && mode == Mode::InMemory {
                    push_unique(
                        &mut notes,
                        format!("{workload}: not run in inmemory mode (nothing persists)"),
                    );
                    continue;
                }
                if workload != Workload::Raft {
                    push_unique(&mut configs, format!("{} {mode}: {config}", kind.name()));
                }
                let threads: Vec<usize> = if kind.is_raw() || workload.single_threaded() {
                    vec![1]
                } else {
                    cfg.threads.clone()
                };
                for t in threads {
                    run_no += 1;
                    let dir = root.path().join(format!("run-{run_no}"));
                    // A panic inside an engine fails this row, not the whole harness.
                    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        runner::run_one(
                            kind,
                            workload,
                            mode,
                            t,
                            cfg,
                            &dir,
                            machine.device.as_deref(),
                            machine.flush_rule(),
                            hooks,
                        )
                    }))
                    .unwrap_or_else(|_| Err(engine::EngineError("the engine panicked".into())));
                    let _ = std::fs::remove_dir_all(&dir);
                    let res = match res {
                        Ok(r) => r,
                        Err(e) => {
                            all_ok = false;
                            let msg =
                                format!("{} {mode} {workload} x{t}: FAILED: {e}", kind.name());
                            w(out, &msg);
                            notes.push(msg);
                            continue;
                        }
                    };
                    // One row per measurement (readonly; raft: the ceiling and the store); one
                    // row for every other workload.
                    for res in runner::split_rows(res) {
                        if res.raft.is_some() {
                            // The stores' own configurations (raft), not the engine's.
                            push_unique(
                                &mut configs,
                                format!("{} {mode} raft: {}", res.engine, res.config),
                            );
                        }
                        if FLOOR_LOOPS.contains(&kind.name()) {
                            note_floor(
                                &mut floors,
                                workload,
                                kind.name(),
                                Floor {
                                    ops_per_sec: res.ops_per_sec(),
                                    p50: res.hist.percentile(50.0),
                                },
                            );
                        }
                        let floor = own_floor(&res).or_else(|| {
                            (mode == Mode::Strict)
                                .then(|| floor_for(&floors, workload))
                                .flatten()
                        });
                        w(out, &report::row(&res, floor));
                        if let Err(e) = &res.verified {
                            all_ok = false;
                            notes.push(format!(
                                "{} {mode} {workload} x{t}: READ-BACK CHECK FAILED: {e}",
                                res.engine
                            ));
                        }
                        if res.power_loss_durable == Some(false) {
                            notes.push(format!(
                                "{} {mode} {workload} x{t}: NOT POWER-LOSS DURABLE: {} commits by {} writer(s) but only {} device cache flushes (machine-wide) on a write-back cache",
                                res.engine, res.commits, workload.committers(t), res.device.map_or(0, |d| d.flushes)
                            ));
                        }
                        if let Some(p) = &res.io_path {
                            push_unique(&mut io_paths, format!("{}: {p}", res.engine));
                        }
                        for n in &res.notes {
                            push_unique(
                                &mut notes,
                                format!("{} {mode} {workload} x{t}: {n}", res.engine),
                            );
                        }
                        rows.push(res);
                    }
                }
            }
        }
    }
    w(out, "");
    w(out, report::LEGEND);
    w(out, "");
    w(out, &format!("I/O paths used: {}", io_paths.join("; ")));
    w(out, "configurations:");
    for c in &configs {
        w(out, &format!("  {c}"));
    }
    notes.extend(report::comparisons(&rows));
    if !notes.is_empty() {
        w(out, "notes:");
        for n in &notes {
            w(out, &format!("  {n}"));
        }
    }
    let floor_of = |r: &RunResult| {
        own_floor(r).or_else(|| {
            (r.mode == Mode::Strict)
                .then(|| floor_for(&floors, r.workload))
                .flatten()
        })
    };
    if let Some(path) = &cfg.json {
        let doc = JsonReport {
            tool: "ringlog-bench",
            version: 1,
            command: std::env::args().collect(),
            machine: report::machine_json(&machine),
            rows: rows
                .iter()
                .map(|r| report::row_json(r, floor_of(r)))
                .collect(),
        };
        let text = serde_json::to_string(&doc)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        w(out, &format!("wrote {}", path.display()));
    }
    if let Some(path) = &cfg.plot {
        let title = format!(
            "ringlog-bench — {}, {} cores, {} on {} (write cache: {})",
            machine.kernel,
            machine.cores,
            machine.fs_type,
            machine.device.as_deref().unwrap_or("no device"),
            machine.write_cache.as_deref().unwrap_or("unknown")
        );
        let svg = report::svg(&rows, &title);
        std::fs::write(path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        w(out, &format!("wrote {}", path.display()));
    }
    if !all_ok {
        w(out, "ringlog-bench: FAILED (see the notes above)");
    }
    Ok(all_ok)
}

/// The document `--json` writes: the tool, the command line, the machine and one object per
/// row, in this order.
#[derive(serde::Serialize)]
struct JsonReport {
    /// Always `ringlog-bench`.
    tool: &'static str,
    /// The document's version.
    version: u32,
    /// The command line, program name first.
    command: Vec<String>,
    /// [`report::machine_json`].
    machine: serde_json::Value,
    /// [`report::row_json`] of each row, in table order.
    rows: Vec<serde_json::Value>,
}

/// The floor a row measured in its own run (coldread: its pread loop; runs and readonly: the
/// sequential read of the segment files; raft: the in-memory ceiling), if any.
fn own_floor(r: &RunResult) -> Option<Floor> {
    r.cold_read
        .as_ref()
        .and_then(|c| c.floor())
        .or_else(|| r.runs.as_ref().and_then(|x| x.floor()))
        .or_else(|| r.readonly.as_ref().and_then(|x| x.floor()))
        .or_else(|| r.raft.as_ref().and_then(|x| x.floor()))
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floor(ops_per_sec: f64) -> Floor {
        Floor {
            ops_per_sec,
            p50: 1,
        }
    }

    /// The floor is the faster loop's first row for the workload; a later row of the same loop
    /// (another thread count) does not replace it, and other workloads keep their own.
    #[test]
    fn the_floor_is_the_faster_loop() {
        let mut floors = Vec::new();
        note_floor(
            &mut floors,
            Workload::FillRandom,
            "raw-odirect",
            floor(6_000.0),
        );
        note_floor(
            &mut floors,
            Workload::FillRandom,
            "raw-odirect",
            floor(9_000.0),
        );
        note_floor(
            &mut floors,
            Workload::FillRandom,
            "raw-dsync",
            floor(7_000.0),
        );
        note_floor(
            &mut floors,
            Workload::FillSeq,
            "raw-odirect",
            floor(5_000.0),
        );
        assert_eq!(
            floor_for(&floors, Workload::FillRandom).map(|f| f.ops_per_sec),
            Some(7_000.0)
        );
        assert_eq!(
            floor_for(&floors, Workload::FillSeq).map(|f| f.ops_per_sec),
            Some(5_000.0)
        );
        assert!(floor_for(&floors, Workload::FillBatch).is_none());
    }
}
