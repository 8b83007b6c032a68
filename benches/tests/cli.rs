//! The harness's contract: argument errors exit 2 without a panic, `--json` writes one object
//! per row with the documented fields, and a wrong value read back fails the run with exit 1.

use std::path::Path;
use std::process::Command;

use ringlog_bench::runner::Hooks;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringlog-bench"))
}

fn scratch() -> tempfile::TempDir {
    // Under the target directory: a real disk, like the harness wants.
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(root).unwrap();
    tempfile::tempdir_in(root).unwrap()
}

/// Runs `args` twice in `dir`: clean (it must verify: exit 0), then with one read corrupted (the
/// run must catch it: exit 1). Returns both outputs.
fn verifies_then_catches_a_corrupt_read(args: &[&str], dir: &Path) -> (String, String) {
    let (code, ok) = run_lib(args, dir, Hooks::default());
    assert_eq!(code, 0, "{ok}");
    let (code, out) = run_lib(
        args,
        dir,
        Hooks {
            corrupt_one_read: true,
            ..Hooks::default()
        },
    );
    assert_eq!(code, 1, "{out}");
    (ok, out)
}

#[test]
fn bad_arguments_exit_2_without_panicking() {
    for args in [
        &["--threads", "0"][..],
        &["--threads", "many"],
        &["--ops"],
        &["--ops", "-5"],
        &["--workload", "nosuch"],
        &["--durability", "eventually"],
        &["--io", "carrier-pigeon"],
        &["--engines", "oracle"],
        &["--value-size", "1"],
        &["--plot", "x.png"],
        &["--what"],
        &["positional"],
        &["--keys", "2", "--threads", "4"],
        &["--dir", "/proc/self/no-such-dir"],
    ] {
        let out = bin().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        // clap's errors end with "For more information, try '--help'."
        assert!(
            stderr.contains("try '--help'")
                || stderr.contains("--keys")
                || stderr.contains("--dir"),
            "{args:?}: {stderr}"
        );
    }
    let out = bin().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--durability"));
}

#[test]
fn peers_not_built_in_are_refused_clearly() {
    if cfg!(feature = "fjall") {
        return;
    }
    let out = bin().args(["--engines", "fjall"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--features"));
}

fn field<'a>(v: &'a serde_json::Value, path: &[&str]) -> &'a serde_json::Value {
    let mut v = v;
    for p in path {
        v = v
            .get(p)
            .unwrap_or_else(|| panic!("missing {path:?} in {v}"));
    }
    v
}

#[test]
fn json_has_one_object_per_row() {
    let dir = scratch();
    let json = dir.path().join("out.json");
    let svg = dir.path().join("out.svg");
    let out = bin()
        .args([
            "--engines",
            "ringlog,raw-odirect",
            "--durability",
            "inmemory,strict",
            "--workload",
            "fillrandom,readrandom",
            "--threads",
            "1,2",
            "--ops",
            "300",
            "--no-progress",
            "--dir",
        ])
        .arg(dir.path())
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ops/s") && stdout.contains("p99.9"),
        "{stdout}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(field(&doc, &["tool"]), "ringlog-bench");
    assert!(field(&doc, &["machine", "kernel"]).is_string());
    assert!(field(&doc, &["machine", "cores"]).as_u64().unwrap() >= 1);
    let rows = field(&doc, &["rows"]).as_array().unwrap();
    // inmemory: 2 workloads x 2 thread counts; strict: the same, plus raw-odirect fillrandom x1.
    assert_eq!(rows.len(), 9, "{rows:#?}");
    let mut keys = std::collections::HashSet::new();
    for r in rows {
        let id = (
            field(r, &["engine"]).as_str().unwrap().to_string(),
            field(r, &["workload"]).as_str().unwrap().to_string(),
            field(r, &["mode"]).as_str().unwrap().to_string(),
            field(r, &["threads"]).as_u64().unwrap(),
        );
        assert!(keys.insert(id.clone()), "duplicate row {id:?}");
        assert!(field(r, &["ops"]).as_u64().unwrap() > 0);
        assert!(field(r, &["ops_per_sec"]).as_f64().unwrap() > 0.0);
        for p in ["p50", "p90", "p99", "p99.9", "max"] {
            assert!(field(r, &["latency_us", p]).as_f64().unwrap() >= 0.0);
        }
        assert!(field(r, &["cpu_seconds"]).is_number());
        assert_eq!(field(r, &["verified", "ok"]), true);
        assert!(field(r, &["config"]).is_string());
        for k in [
            "syncs_per_commit",
            "write_amplification",
            "files",
            "device",
            "power_loss_durable",
            "vs_floor_throughput",
            "engine_counters",
            "notes",
            "index_memory",
            "rss_bytes_per_key",
            "writer",
            "snapshot_ns",
            "first_entry_us",
            "checkpoint_bytes_written",
            "history",
            "ckptwrite",
            "rmw",
            "runs",
            "readonly",
            "raft",
        ] {
            assert!(r.get(k).is_some(), "row lacks {k}: {r}");
        }
        if id.0 == "ringlog" {
            let v = field(r, &["index_memory", "versions"]).as_u64().unwrap();
            assert!(v >= 1, "{r}");
            assert!(field(r, &["index_memory", "overhead_per_version"]).is_number());
        }
        if id.2 == "strict" && id.1 == "fillrandom" {
            assert_eq!(
                field(r, &["syncs_per_commit"]).as_f64().map(|v| v > 0.0),
                Some(true)
            );
            assert!(field(r, &["vs_floor_throughput"]).is_number());
            assert!(field(r, &["write_amplification"]).as_f64().unwrap() >= 1.0);
        }
    }
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("polyline"));
}

/// Runs the harness with `args` (and `--json`), which must succeed; returns its output and the
/// JSON's first row.
fn run_one_row(args: &[&str]) -> (String, serde_json::Value) {
    let dir = scratch();
    let json = dir.path().join("out.json");
    let mut a = args.to_vec();
    a.extend(["--json", json.to_str().unwrap()]);
    let (code, out) = run_lib(&a, dir.path(), Hooks::default());
    assert_eq!(code, 0, "{out}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let r = field(&doc, &["rows"]).as_array().unwrap()[0].clone();
    (out, r)
}

/// The read-back count is of values compared: a short run over a large key space writes few of
/// its keys, and the sample is drawn from those (it once drew 1,000 keys from the whole space and
/// counted the ~997 absent ones as checked).
#[test]
fn the_read_back_compares_the_values_written() {
    let (_, r) = run_one_row(&[
        "--engines",
        "ringlog",
        "--durability",
        "inmemory",
        "--workload",
        "fillrandom",
        "--threads",
        "1",
        "--keys",
        "100000",
        "--ops",
        "300",
    ]);
    let compared = field(&r, &["verified", "keys"]).as_u64().unwrap();
    // Every one of the ~300 keys written is drawn (draws with replacement: most of them), and
    // of the 250 drawn across the 100,000 keys about 1 was written.
    assert!((200..=300 + 250).contains(&compared), "{compared}: {r}");
}

/// `raw-dsync`, the `pwritev2(RWF_DSYNC)` loop, commits, reads back and counts a sync per commit.
#[test]
fn the_dsync_floor_loop_runs_and_verifies() {
    let (out, r) = run_one_row(&[
        "--engines",
        "raw-dsync",
        "--durability",
        "strict",
        "--workload",
        "fillrandom",
        "--threads",
        "1",
        "--ops",
        "200",
    ]);
    assert!(out.contains("pwritev2(RWF_DSYNC)"), "{out}");
    assert_eq!(field(&r, &["verified", "ok"]), true, "{r}");
    assert!(
        field(&r, &["verified", "keys"]).as_u64().unwrap() > 0,
        "{r}"
    );
    assert_eq!(field(&r, &["syncs_per_commit"]).as_f64(), Some(1.0), "{r}");
}

fn run_lib(args: &[&str], dir: &Path, hooks: Hooks) -> (i32, String) {
    let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    a.extend([
        "--no-progress".into(),
        "--dir".into(),
        dir.display().to_string(),
    ]);
    let mut out = Vec::new();
    let code = ringlog_bench::main_with(a, &hooks, &mut out);
    (code, String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn a_corrupted_read_back_fails_the_run() {
    let dir = scratch();
    let args = [
        "--engines",
        "ringlog",
        "--durability",
        "inmemory",
        "--workload",
        "fillrandom,fillseq",
        "--threads",
        "1",
        "--ops",
        "500",
    ];
    let (_, out) = verifies_then_catches_a_corrupt_read(&args, dir.path());
    assert!(
        out.contains("READ-BACK CHECK FAILED") && out.contains("FAILED"),
        "{out}"
    );
}

#[test]
fn new_workloads_report_json() {
    let dir = scratch();
    let json = dir.path().join("new.json");
    let (code, out) = run_lib(
        &[
            "--engines",
            "ringlog",
            "--durability",
            "buffered",
            "--workload",
            "readseq,readreverse,snapshot",
            "--threads",
            "2",
            "--ops",
            "2000",
            "--keys",
            "1000",
            "--json",
            json.to_str().unwrap(),
        ],
        dir.path(),
        Hooks::default(),
    );
    assert_eq!(code, 0, "{out}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = field(&doc, &["rows"]).as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| field(r, &["workload"]).as_str().unwrap())
        .collect();
    assert_eq!(names, ["scan", "scanrev", "snapshot"]);
    for r in rows {
        assert_eq!(field(r, &["verified", "ok"]), true, "{r}");
        assert!(field(r, &["ops"]).as_u64().unwrap() >= 2000, "{r}");
    }
    assert!(
        field(&rows[0], &["first_entry_us", "scans_completed"])
            .as_u64()
            .unwrap()
            >= 2
    );
    let snap = &rows[2];
    assert!(field(snap, &["snapshot_ns", "count"]).as_u64().unwrap() > 0);
    assert!(field(snap, &["snapshot_ns", "take_p50"]).as_f64().unwrap() > 0.0);
    assert!(field(snap, &["writer", "puts"]).is_number());
}

#[test]
fn a_corrupted_record_fails_recover() {
    let dir = scratch();
    let args = [
        "--engines",
        "ringlog",
        "--durability",
        "buffered",
        "--workload",
        "recover",
        "--keys",
        "2000",
    ];
    let (ok, _) = verifies_then_catches_a_corrupt_read(&args, dir.path());
    assert!(ok.contains("ok 2000"), "{ok}");
    // The creation of the database is reported, and a new database is small on disk (its first
    // segment is prepared to 1 MiB, not to the whole 64 MiB segment size).
    let created = ok
        .split("left ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no database creation note: {ok}"));
    assert!(
        created < 2 << 20,
        "a new database left {created} bytes: {ok}"
    );
}

#[test]
fn every_workload_verifies_in_memory() {
    let dir = scratch();
    let (code, out) = run_lib(
        &[
            "--engines",
            "ringlog",
            "--durability",
            "inmemory",
            "--workload",
            "all",
            "--threads",
            "1,3",
            "--ops",
            "400",
            "--keys",
            "300",
            "--batch",
            "7",
        ],
        dir.path(),
        Hooks::default(),
    );
    assert_eq!(code, 0, "{out}");
    // 16 of the 23 workloads at 2 thread counts: recover, history, ckptwrite, coldread, runs and
    // readonly need a database on disk (not run in memory), raft runs in strict mode only.
    assert_eq!(
        out.lines().filter(|l| l.starts_with("inmemory ")).count(),
        32,
        "{out}"
    );
    for w in ["scan", "scanrev", "snapshot", "readwhilewriting"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("inmemory ") && l.split_whitespace().nth(1) == Some(w)),
            "{w}: {out}"
        );
    }
    assert!(out.contains("snapshots; taking one: p50"), "{out}");
    assert!(out.contains("full scans completed"), "{out}");
}

/// history and ckptwrite with tiny numbers: every key read back after the cold open, the
/// columns and JSON fields present and consistent. No timing is asserted.
#[test]
fn history_and_ckptwrite_report_space_and_cold_open() {
    let dir = scratch();
    let json = dir.path().join("history.json");
    let (code, out) = run_lib(
        &[
            "--engines",
            "ringlog",
            "--workload",
            "history,ckptwrite,fillrandom",
            "--threads",
            "1,2",
            "--ops",
            "20000",
            "--keys",
            "2000",
            "--checkpoint-bytes",
            "1M",
            "--json",
            json.to_str().unwrap(),
        ],
        dir.path(),
        Hooks::default(),
    );
    assert_eq!(code, 0, "{out}");
    for col in ["space", "open ms", "×read", "history:", "ckptwrite:"] {
        assert!(out.contains(col), "{col}: {out}");
    }
    assert!(
        out.contains("a full-log replay would read 20,000 records"),
        "{out}"
    );
    assert!(out.contains("ckptwrite x1: put p99"), "{out}");
    // No --durability: history and ckptwrite run Buffered only; fillrandom in all three modes.
    assert!(out.contains("history: run in buffered mode only"), "{out}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = field(&doc, &["rows"]).as_array().unwrap();
    let of = |w: &str| -> Vec<&serde_json::Value> {
        rows.iter()
            .filter(|r| field(r, &["workload"]) == w)
            .collect()
    };
    let h = of("history");
    assert_eq!(h.len(), 1, "history runs single-threaded: {rows:#?}");
    let h = h[0];
    assert_eq!(field(h, &["mode"]), "buffered");
    assert_eq!(field(h, &["verified", "ok"]), true, "{h}");
    assert_eq!(field(h, &["verified", "keys"]).as_u64(), Some(2000));
    assert_eq!(field(h, &["ops"]).as_u64(), Some(20000));
    let hist = field(h, &["history"]);
    assert_eq!(field(hist, &["live_keys"]).as_u64(), Some(2000));
    assert_eq!(field(hist, &["live_bytes"]).as_u64(), Some(2000 * 116));
    assert_eq!(field(hist, &["records_written"]).as_u64(), Some(20000));
    assert!(field(hist, &["log_bytes_written"]).as_u64().unwrap() >= 20000 * 116);
    assert_eq!(field(hist, &["settled_by"]), "Db::checkpoint");
    for k in ["space_at_close", "space_settled", "space_peak"] {
        assert!(
            field(hist, &[k, "allocated_bytes"]).as_u64().unwrap() > 0,
            "{k}: {hist}"
        );
        assert!(field(hist, &[k, "amplification"]).as_f64().unwrap() > 0.0);
    }
    assert!(field(hist, &["space_amplification"]).as_f64().unwrap() > 0.0);
    let open = field(hist, &["open"]);
    assert!(field(open, &["open_ms"]).as_f64().unwrap() > 0.0);
    assert!(field(open, &["floor_bytes"]).as_u64().unwrap() > 0);
    assert!(field(open, &["open_per_floor"]).is_number());
    // The open and the read-back of 2000 keys took some CPU.
    assert!(field(hist, &["after_open_cpu_s"]).as_f64().unwrap() > 0.0);
    // After the settle step the reopen starts from a checkpoint holding every key.
    let settled = field(hist, &["open_settled", "recovery"]);
    assert_eq!(field(settled, &["checkpoint_keys"]).as_u64(), Some(2000));
    assert!(field(settled, &["checkpoint_lsn"]).as_u64().unwrap() > 0);
    let wamp = field(h, &["write_amplification"]).as_f64().unwrap();
    assert!(wamp >= 1.0, "{h}");
    let ck = of("ckptwrite");
    assert_eq!(ck.len(), 2, "ckptwrite at 1 and 2 threads: {rows:#?}");
    for r in ck {
        assert_eq!(field(r, &["mode"]), "buffered");
        assert_eq!(field(r, &["verified", "ok"]), true, "{r}");
        let c = field(r, &["ckptwrite"]);
        // At least one checkpoint in each of the two phases with the checkpointing thread.
        assert!(field(c, &["checkpoints"]).as_u64().unwrap() >= 2, "{c}");
        assert_eq!(
            field(c, &["puts_with"]).as_u64().unwrap()
                + field(c, &["puts_without"]).as_u64().unwrap(),
            20000
        );
        assert!(field(c, &["p99_ratio"]).is_number());
        assert!(field(r, &["checkpoint_bytes_written"]).as_u64().unwrap() > 0);
    }
    assert_eq!(of("fillrandom").len(), 6);
}

#[test]
fn a_corrupted_read_back_fails_history() {
    let dir = scratch();
    let args = [
        "--engines",
        "ringlog",
        "--workload",
        "history",
        "--ops",
        "3000",
        "--keys",
        "500",
    ];
    let (ok, _) = verifies_then_catches_a_corrupt_read(&args, dir.path());
    assert!(ok.contains("ok 500"), "{ok}");
}

/// coldread on a tiny database (2,000 keys of 1 KiB), on the io_uring path (or what `auto`
/// finds), the portable path, and with the values kept in memory (`--value-threshold off`): every
/// value read is checked, every read of the phases comes from disk (no cache hit), the floors
/// read as much as what they are compared with. Counts only, no timing.
#[test]
fn coldread_reads_values_from_disk_and_verifies() {
    let dir = scratch();
    for (io, threshold) in [("auto", "64"), ("portable", "64"), ("portable", "off")] {
        let json = dir.path().join(format!("coldread-{io}-{threshold}.json"));
        let (code, out) = run_lib(
            &[
                "--engines",
                "ringlog",
                "--workload",
                "coldread",
                "--keys",
                "2000",
                "--ops",
                "500",
                "--io",
                io,
                "--value-threshold",
                threshold,
                "--json",
                json.to_str().unwrap(),
            ],
            dir.path(),
            Hooks::default(),
        );
        assert_eq!(code, 0, "{out}");
        for needle in [
            "cold open: to the first correct read",
            "cold gets: 500 random distinct keys",
            "raw pread floor, one read after each get: 500 buffered preads of 1064 B",
            "get_many of 32 cold keys: 15 calls",
            "coldread: run in buffered mode only",
        ] {
            assert!(out.contains(needle), "{needle}: {out}");
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let rows = field(&doc, &["rows"]).as_array().unwrap();
        assert_eq!(rows.len(), 1, "{rows:#?}");
        let r = &rows[0];
        assert_eq!(field(r, &["workload"]), "coldread");
        assert_eq!(field(r, &["mode"]), "buffered");
        assert_eq!(field(r, &["verified", "ok"]), true, "{r}");
        // The probe, 500 gets, 15 × 32 by get_many and as many sequentially, and the sample of
        // 1,000 written keys plus 250 across the key range (every key was written; the 16 never
        // written are checked, not counted).
        assert_eq!(
            field(r, &["verified", "keys"]).as_u64(),
            Some(1 + 500 + 2 * 480 + 1250)
        );
        assert_eq!(field(r, &["ops"]).as_u64(), Some(500));
        let c = field(r, &["coldread"]);
        assert_eq!(field(c, &["value_size"]).as_u64(), Some(1024));
        assert_eq!(field(c, &["open_floor_is_checkpoint"]), true);
        assert!(field(c, &["open", "floor_bytes"]).as_u64().unwrap() > 0);
        assert!(field(c, &["open", "open_per_floor"]).is_number());
        assert_eq!(
            field(c, &["open", "recovery", "checkpoint_keys"]).as_u64(),
            Some(2000)
        );
        assert!(field(c, &["rss_after_open_bytes"]).as_u64().unwrap() > 0);
        let per_key = field(c, &["index_bytes_per_key"]).as_f64().unwrap();
        assert!(per_key > 16.0, "{c}");
        assert_eq!(field(c, &["gets", "reads"]).as_u64(), Some(500));
        assert_eq!(field(c, &["pread_floor", "reads"]).as_u64(), Some(500));
        assert_eq!(field(c, &["pread_bytes"]).as_u64(), Some(1064));
        assert!(field(c, &["pread_files"]).as_u64().unwrap() >= 1);
        assert!(field(c, &["get_p50_per_pread_p50"]).is_number());
        assert_eq!(field(c, &["get_many", "units"]).as_u64(), Some(15));
        assert_eq!(field(c, &["sequential", "units"]).as_u64(), Some(15));
        assert_eq!(field(c, &["sequential", "reads"]).as_u64(), Some(480));
        assert!(field(c, &["get_many_per_sequential_throughput"]).is_number());
        assert!(field(r, &["vs_floor_p50"]).is_number());
        let open = field(c, &["values_after_open"]);
        let end = field(c, &["values_at_end"]);
        let n = |v: &serde_json::Value, k: &str| field(v, &[k]).as_u64().unwrap();
        assert_eq!(n(open, "keys"), 2000);
        if threshold == "off" {
            // Every value in memory: nothing read from disk, no value segment kept.
            assert_eq!(n(end, "value_reads"), 0, "{c}");
            assert_eq!(n(end, "value_segments"), 0, "{c}");
            assert!(field(c, &["value_threshold"]).is_null());
        } else {
            // The open's probe, then every read of the phases from disk, none from the cache.
            assert_eq!(n(open, "value_reads"), 1, "{c}");
            assert_eq!(
                n(end, "value_reads") - n(open, "value_reads"),
                500 + 2 * 480
            );
            assert_eq!(n(end, "value_cache_hits"), 0, "{c}");
            assert!(n(end, "value_read_bytes") >= 1461 * 1064, "{c}");
            assert!(n(end, "value_cache_bytes") > 0, "{c}");
            assert!(n(end, "value_segments") >= 1, "{c}");
            assert_eq!(field(c, &["value_threshold"]).as_u64(), Some(64));
        }
    }
}

#[test]
fn a_corrupted_read_back_fails_coldread() {
    let dir = scratch();
    let args = [
        "--engines",
        "ringlog",
        "--workload",
        "coldread",
        "--keys",
        "300",
        "--ops",
        "50",
        "--value-size",
        "200",
    ];
    let (ok, _) = verifies_then_catches_a_corrupt_read(&args, dir.path());
    assert!(ok.contains("values 200 B,"), "{ok}");
}

/// rmw with one thread per run (and, at two threads, a hot set too large to collide on): the
/// counters read back, the uncontended phases in the first thread count's run only, in every
/// mode, with the JSON fields. No timing is asserted.
#[test]
fn rmw_reports_transactions_and_checks_the_counters() {
    let dir = scratch();
    let json = dir.path().join("rmw.json");
    let (code, out) = run_lib(
        &[
            "--engines",
            "ringlog,raw-odirect",
            "--durability",
            "inmemory,buffered",
            "--workload",
            "rmw",
            "--threads",
            "1",
            "--ops",
            "1600",
            "--keys",
            "500",
            "--hot-keys",
            "8",
            "--json",
            json.to_str().unwrap(),
        ],
        dir.path(),
        Hooks::default(),
    );
    assert_eq!(code, 0, "{out}");
    for needle in [
        "no lost update: the 8 counters read back sum to 1600",
        "uncontended (1 thread, random keys of 500 others, 4 rounds",
        "inmemory rmw: an uncontended get + put transaction takes",
        "buffered rmw: an uncontended get + put transaction takes",
        "raw loops run the write workloads only",
    ] {
        assert!(out.contains(needle), "{needle}: {out}");
    }
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = field(&doc, &["rows"]).as_array().unwrap();
    assert_eq!(rows.len(), 2, "ringlog only, one row per mode: {rows:#?}");
    for r in rows {
        assert_eq!(field(r, &["workload"]), "rmw");
        assert_eq!(field(r, &["engine"]), "ringlog");
        assert_eq!(field(r, &["verified", "ok"]), true, "{r}");
        // The 8 counters, the 500 other keys, and 16 that must be absent.
        assert_eq!(field(r, &["verified", "keys"]).as_u64(), Some(8 + 500 + 16));
        assert_eq!(field(r, &["ops"]).as_u64(), Some(1600));
        let m = field(r, &["rmw"]);
        assert_eq!(field(m, &["hot_keys"]).as_u64(), Some(8));
        assert_eq!(field(m, &["max_attempts"]).as_u64(), Some(1000));
        assert_eq!(field(m, &["committed"]).as_u64(), Some(1600));
        assert_eq!(field(m, &["counter_sum"]).as_u64(), Some(1600));
        assert_eq!(field(m, &["no_lost_update"]), true);
        // One thread: nothing to conflict with.
        assert_eq!(field(m, &["txn_conflicts"]).as_u64(), Some(0));
        assert_eq!(field(m, &["txn_retries"]).as_u64(), Some(0));
        assert_eq!(field(m, &["attempts_per_commit"]).as_f64(), Some(1.0));
        let u = field(m, &["uncontended"]);
        assert_eq!(field(u, &["keys"]).as_u64(), Some(500));
        assert_eq!(field(u, &["rounds"]).as_u64(), Some(4));
        for v in ["put", "rmw_txn", "write_only_txn", "get_then_put"] {
            // --ops / 16 per phase, 4 phases of each.
            assert_eq!(field(u, &[v, "ops"]).as_u64(), Some(400), "{v}: {u}");
            assert!(field(u, &[v, "ops_per_sec"]).as_f64().unwrap() > 0.0);
        }
        assert!(field(u, &["rmw_txn_time_per_put"]).as_f64().unwrap() > 0.0);
        assert!(field(u, &["target_met"]).is_boolean());
    }
    // Two thread counts: the uncontended phases in the first one's run only. Counters enough
    // that the two threads never meet on one.
    let (code, out) = run_lib(
        &[
            "--engines",
            "ringlog",
            "--durability",
            "inmemory",
            "--workload",
            "rmw",
            "--threads",
            "2,1",
            "--ops",
            "400",
            "--hot-keys",
            "100000",
            "--json",
            json.to_str().unwrap(),
        ],
        dir.path(),
        Hooks::default(),
    );
    assert_eq!(code, 0, "{out}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = field(&doc, &["rows"]).as_array().unwrap();
    let threads: Vec<(u64, bool)> = rows
        .iter()
        .map(|r| {
            (
                field(r, &["threads"]).as_u64().unwrap(),
                field(r, &["rmw", "uncontended"]).is_object(),
            )
        })
        .collect();
    assert_eq!(threads, [(2, true), (1, false)]);
}

/// A lost update planted in the database after the contended phase, and a corrupted counter read
/// back, each fail the run.
#[test]
fn a_lost_update_fails_rmw() {
    let dir = scratch();
    let args = [
        "--engines",
        "ringlog",
        "--durability",
        "buffered",
        "--workload",
        "rmw",
        "--threads",
        "1",
        "--ops",
        "500",
        "--keys",
        "100",
    ];
    verifies_then_catches_a_corrupt_read(&args, dir.path());
    let json = dir.path().join("lost.json");
    let mut lost = args.to_vec();
    lost.extend(["--json", json.to_str().unwrap()]);
    let (code, out) = run_lib(
        &lost,
        dir.path(),
        Hooks {
            lose_one_update: true,
            ..Hooks::default()
        },
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("READ-BACK CHECK FAILED: LOST UPDATE: the 64 counters sum to 499, but 500"),
        "{out}"
    );
    assert!(out.contains("ringlog-bench: FAILED"), "{out}");
    assert!(!out.contains("no lost update"), "{out}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let r = &field(&doc, &["rows"]).as_array().unwrap()[0];
    assert_eq!(field(r, &["verified", "ok"]), false, "{r}");
    assert_eq!(field(r, &["rmw", "committed"]).as_u64(), Some(500));
    assert_eq!(field(r, &["rmw", "counter_sum"]).as_u64(), Some(499));
    assert_eq!(field(r, &["rmw", "no_lost_update"]), false);
}

/// Contended read-modify-write transactions lose no update (the harness's own check, on four
/// hot counters; it caught a pruning race of the engine's conflict table when it was written).
#[test]
fn rmw_contended_counters_lose_no_update() {
    let dir = scratch();
    for threads in ["2", "4", "16"] {
        let (code, out) = run_lib(
            &[
                "--engines",
                "ringlog",
                "--durability",
                "inmemory",
                "--workload",
                "rmw",
                "--threads",
                threads,
                "--ops",
                "20000",
                "--keys",
                "100",
                "--hot-keys",
                "4",
            ],
            dir.path(),
            Hooks::default(),
        );
        assert_eq!(code, 0, "{threads} threads: {out}");
    }
}

/// runs with tiny numbers: four runs built, Db::runs, run_changes of the middle run and
/// diff_runs checked against what was written, cold and warm, in buffered mode only without
/// --durability (and not in memory), ringlog only; the notes and JSON fields present. No timing
/// is asserted.
#[test]
fn runs_lists_replays_and_diffs_the_runs() {
    let dir = scratch();
    let json = dir.path().join("runs.json");
    let (code, out) = run_lib(
        &[
            "--engines",
            "ringlog,raw-odirect",
            "--workload",
            "runs",
            "--ops",
            "2000",
            "--keys",
            "500",
            "--json",
            json.to_str().unwrap(),
        ],
        dir.path(),
        Hooks::default(),
    );
    assert_eq!(code, 0, "{out}");
    for needle in [
        "runs: run in buffered mode only",
        "raw loops run the write workloads only",
        "build: 4 runs, each an open, Db::label_run(\"run-i\"), transactions of 4 puts",
        "2,000 transactions (500 / 500 / 500 / 500 per run)",
        "background checkpoints off and no close-time checkpoint",
        "floor: the 1 segment file read sequentially",
        "Db::runs() (4 runs listed, 2,000 transactions): cold ",
        "runs() ÷ floor: cold ",
        "Db::run_changes(run-2) iterated to its end (500 transactions yielded",
        "Db::diff_runs(run-0, run-3) (",
        "checked: Db::runs() lists the 4 runs in order",
    ] {
        assert!(out.contains(needle), "{needle}: {out}");
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("buffered runs             ringlog")),
        "{out}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = field(&doc, &["rows"]).as_array().unwrap();
    assert_eq!(rows.len(), 1, "ringlog, buffered, one thread: {rows:#?}");
    let r = &rows[0];
    assert_eq!(field(r, &["workload"]), "runs");
    assert_eq!(field(r, &["mode"]), "buffered");
    assert_eq!(field(r, &["threads"]).as_u64(), Some(1));
    assert_eq!(field(r, &["verified", "ok"]), true, "{r}");
    assert_eq!(field(r, &["ops"]).as_u64(), Some(2000));
    assert!(field(r, &["vs_floor_p50"]).is_number(), "{r}");
    let x = field(r, &["runs"]);
    assert_eq!(field(x, &["runs"]).as_u64(), Some(4));
    assert_eq!(field(x, &["puts_per_txn"]).as_u64(), Some(4));
    assert_eq!(field(x, &["log_txns"]).as_u64(), Some(2000));
    assert_eq!(field(x, &["run_changes_yielded"]).as_u64(), Some(500));
    assert!(field(x, &["diff_keys"]).as_u64().unwrap() > 0);
    assert!(field(x, &["log_bytes"]).as_u64().unwrap() >= 2000 * 4 * 116);
    for call in ["floor", "list", "run_changes", "diff_runs"] {
        for t in ["cold", "warm"] {
            assert!(
                field(x, &[call, t, "mb_per_sec"]).as_f64().unwrap() > 0.0,
                "{call} {t}: {x}"
            );
            assert!(field(x, &[call, t, "per_floor"]).is_number());
        }
    }
    let listed = field(x, &["listed"]).as_array().unwrap();
    let labels: Vec<(&str, u64)> = listed
        .iter()
        .map(|r| {
            (
                field(r, &["label"]).as_str().unwrap(),
                field(r, &["commits"]).as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        labels,
        [
            ("run-0", 500),
            ("run-1", 500),
            ("run-2", 500),
            ("run-3", 500)
        ]
    );
    // In memory there is no log: not run, and said so.
    let (code, out) = run_lib(
        &[
            "--engines",
            "ringlog",
            "--durability",
            "inmemory",
            "--workload",
            "runs",
            "--ops",
            "100",
        ],
        dir.path(),
        Hooks::default(),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("runs: not run in inmemory mode"), "{out}");
}

/// A wrong value in the middle run's changes (one byte flipped as it is checked) fails the run.
#[test]
fn a_corrupted_change_fails_runs() {
    let dir = scratch();
    let args = [
        "--engines",
        "ringlog",
        "--workload",
        "runs",
        "--ops",
        "400",
        "--keys",
        "100",
    ];
    let (ok, bad) = verifies_then_catches_a_corrupt_read(&args, dir.path());
    assert!(ok.contains("checked: Db::runs() lists the 4 runs"), "{ok}");
    assert!(
        bad.contains(
            "READ-BACK CHECK FAILED: RUNS MISMATCH: run_changes(run-2): the last write of key"
        ),
        "{bad}"
    );
    assert!(bad.contains("ringlog-bench: FAILED"), "{bad}");
}

/// readonly with tiny numbers: one row per measurement (the floor, Db::open and
/// Db::open_read_only, cold and warm, and Db::open_read_only beside a live writer), each of
/// READONLY_OPENS calls, every check passed; buffered mode only without --durability, ringlog
/// only, not in memory; the notes and JSON fields present and consistent. No timing is asserted
/// beyond "took some time".
#[test]
fn readonly_opens_beside_a_writer_and_reports_a_row_each() {
    let opens = ringlog_bench::runner::READONLY_OPENS as u64;
    let dir = scratch();
    let json = dir.path().join("readonly.json");
    let (code, out) = run_lib(
        &[
            "--engines",
            "ringlog,raw-odirect",
            "--workload",
            "readonly",
            "--keys",
            "3000",
            "--json",
            json.to_str().unwrap(),
        ],
        dir.path(),
        Hooks::default(),
    );
    assert_eq!(code, 0, "{out}");
    let labels = [
        "ro floor cold",
        "ro open cold",
        "ro open_ro cold",
        "ro floor warm",
        "ro open warm",
        "ro open_ro warm",
        "ro open_ro live",
    ];
    let table: Vec<&str> = out.lines().filter(|l| l.starts_with("buffered ")).collect();
    assert_eq!(table.len(), labels.len(), "{out}");
    for (line, label) in table.iter().zip(labels) {
        assert!(
            line.starts_with(&format!("buffered {label:<16} ringlog       1 ")),
            "{label}: {line}"
        );
        assert!(line.contains(" ok "), "{line}");
    }
    for needle in [
        "readonly: run in buffered mode only",
        "raw loops run the write workloads only",
        "build: 3,000 records (16 + 100 B) written in transactions of 1,000",
        "so every open replays the log",
        "ro open_ro cold (Db::open_read_only): median ",
        "ro open_ro live (Db::open_read_only beside a live writer): median ",
        "Db::open_read_only ÷ Db::open (medians): cold ",
        "read-only opens beside it succeeded",
        "checked: every record read back from the first cold read-only handle",
    ] {
        assert!(out.contains(needle), "{needle}: {out}");
    }
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = field(&doc, &["rows"]).as_array().unwrap();
    assert_eq!(rows.len(), labels.len(), "{rows:#?}");
    let names: Vec<&str> = rows
        .iter()
        .map(|r| field(r, &["readonly", "row"]).as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "floor_cold",
            "open_cold",
            "open_read_only_cold",
            "floor_warm",
            "open_warm",
            "open_read_only_warm",
            "open_read_only_live",
        ]
    );
    for r in rows {
        let x = field(r, &["readonly"]);
        assert_eq!(field(r, &["workload"]), "readonly");
        assert_eq!(field(r, &["engine"]), "ringlog");
        assert_eq!(field(r, &["mode"]), "buffered");
        assert_eq!(field(r, &["threads"]).as_u64(), Some(1));
        assert_eq!(field(r, &["verified", "ok"]), true, "{r}");
        assert_eq!(field(r, &["latency_us", "samples"]).as_u64(), Some(opens));
        assert!(field(r, &["vs_floor_p50"]).is_number(), "{r}");
        assert_eq!(field(x, &["calls"]).as_u64(), Some(opens));
        assert_eq!(field(x, &["records"]).as_u64(), Some(3000));
        assert!(field(x, &["log_bytes"]).as_u64().unwrap() >= 3000 * 116);
        let (lo, med, hi) = (
            field(x, &["min_ms"]).as_f64().unwrap(),
            field(x, &["median_ms"]).as_f64().unwrap(),
            field(x, &["max_ms"]).as_f64().unwrap(),
        );
        assert!(0.0 < lo && lo <= med && med <= hi, "{x}");
        assert_eq!(
            field(x, &["times_ms"]).as_array().unwrap().len() as u64,
            opens
        );
        assert!(field(x, &["median_per_floor"]).as_f64().unwrap() > 0.0);
        let per_call = field(x, &["records_per_call"]).as_array().unwrap();
        assert_eq!(per_call.len() as u64, opens);
        let live = field(x, &["live"]);
        if field(x, &["row"]) == "open_read_only_live" {
            // Each open saw the base records and at least every writer key durable before it.
            let each = field(live, &["opens"]).as_array().unwrap();
            assert_eq!(each.len() as u64, opens, "{live}");
            for (o, records) in each.iter().zip(per_call) {
                let n = |k: &str| field(o, &[k]).as_u64().unwrap();
                assert!(n("durable_before") <= n("written_before"), "{o}");
                assert!(n("written_before") <= n("written_after"), "{o}");
                assert!(n("seen") >= n("durable_before"), "{o}");
                assert!(n("seen") <= n("written_after") + 1, "{o}");
                assert!(n("seen_lsn") >= n("durable_lsn"), "{o}");
                assert_eq!(records.as_u64(), Some(3000 + n("seen")), "{o}");
            }
            assert!(field(live, &["writer_puts"]).as_u64().unwrap() > 0);
        } else {
            assert!(live.is_null(), "{x}");
            assert!(per_call.iter().all(|n| n.as_u64() == Some(3000)), "{x}");
        }
    }
    // In memory there is nothing to open: not run, and said so.
    let (code, out) = run_lib(
        &[
            "--engines",
            "ringlog",
            "--durability",
            "inmemory",
            "--workload",
            "readonly",
            "--keys",
            "100",
        ],
        dir.path(),
        Hooks::default(),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("readonly: not run in inmemory mode"), "{out}");
}

/// A wrong value read back from the first read-only handle (one byte flipped as it is checked)
/// fails the run.
#[test]
fn a_corrupted_read_fails_readonly() {
    let dir = scratch();
    let args = [
        "--engines",
        "ringlog",
        "--workload",
        "readonly",
        "--keys",
        "500",
    ];
    let (ok, bad) = verifies_then_catches_a_corrupt_read(&args, dir.path());
    assert!(ok.contains("checked: every record read back"), "{ok}");
    assert!(
        bad.contains("READ-BACK CHECK FAILED: READ-ONLY CHECK FAILED: key 0:"),
        "{bad}"
    );
    assert!(bad.contains("ringlog-bench: FAILED"), "{bad}");
}

/// raft with tiny numbers: for each store (ringlog; RocksDB when its feature is built) and
/// appender count, two rows — the in-memory ceiling, then the store — every entry appended read
/// back through the log readers; strict mode only, not on the raw loops; the notes and JSON
/// fields present and consistent. No timing is asserted.
#[test]
fn raft_appends_are_read_back_and_reported_beside_the_ceiling() {
    let dir = scratch();
    let json = dir.path().join("raft.json");
    let rocks = cfg!(feature = "rocksdb");
    let engines = if rocks {
        "ringlog,rocksdb,raw-odirect"
    } else {
        "ringlog,raw-odirect"
    };
    let (code, out) = run_lib(
        &[
            "--engines",
            engines,
            "--workload",
            "raft",
            "--threads",
            "1,3",
            "--ops",
            "300",
            "--value-size",
            "200",
            "--json",
            json.to_str().unwrap(),
        ],
        dir.path(),
        Hooks::default(),
    );
    assert_eq!(code, 0, "{out}");
    let stores: &[&str] = if rocks {
        &["ringlog", "rocksdb"]
    } else {
        &["ringlog"]
    };
    let mut expected = Vec::new();
    for store in stores {
        for t in [1, 3] {
            expected.push(("mem-ceiling", t));
            expected.push((*store, t));
        }
    }
    let table: Vec<&str> = out.lines().filter(|l| l.starts_with("strict ")).collect();
    assert_eq!(table.len(), expected.len(), "{out}");
    for (line, (engine, t)) in table.iter().zip(&expected) {
        assert!(
            line.starts_with(&format!("strict   raft             {engine:<11} {t:>3} ")),
            "{engine} x{t}: {line}"
        );
        assert!(line.contains(" ok 300"), "{line}");
    }
    for needle in [
        "raft: run in strict mode only",
        "raw loops run the write workloads only",
        "values 200 B, key space 300",
        "ringlog strict raft x3: 3 appenders, each with a store of its own, one entry of 200 \
         value bytes per append",
        "syncs per append",
        "checked: every store's last log id, and its log read back through its reader and \
         compared entry by entry (300 entries of the ceiling, 300 of ringlog)",
        "mem-ceiling strict raft: in memory, as openraft's log-mem example",
        "ringlog strict raft: ringlog-openraft LogStore, one per appender",
        "I/O paths used: ringlog: ",
    ] {
        assert!(out.contains(needle), "{needle}: {out}");
    }
    if rocks {
        assert!(
            out.contains("flush_wal(true) calls: 300 for 300 appends"),
            "{out}"
        );
    }
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = field(&doc, &["rows"]).as_array().unwrap();
    assert_eq!(rows.len(), expected.len(), "{rows:#?}");
    for (r, (engine, t)) in rows.iter().zip(&expected) {
        let x = field(r, &["raft"]);
        let ceiling = *engine == "mem-ceiling";
        assert_eq!(field(r, &["engine"]), *engine, "{r}");
        assert_eq!(field(r, &["workload"]), "raft");
        assert_eq!(field(r, &["mode"]), "strict");
        assert_eq!(field(r, &["threads"]).as_u64(), Some(*t as u64));
        assert_eq!(field(r, &["verified", "ok"]), true, "{r}");
        assert_eq!(field(r, &["verified", "keys"]).as_u64(), Some(300));
        assert_eq!(field(r, &["ops"]).as_u64(), Some(300));
        assert_eq!(field(r, &["latency_us", "samples"]).as_u64(), Some(300));
        assert!(
            field(r, &["vs_floor_throughput"]).as_f64().unwrap() > 0.0,
            "{r}"
        );
        assert_eq!(
            field(x, &["row"]),
            if ceiling { "ceiling" } else { "store" }
        );
        assert_eq!(field(x, &["store"]), *engine);
        assert_eq!(field(x, &["appenders"]).as_u64(), Some(*t as u64));
        assert_eq!(field(x, &["value_size"]).as_u64(), Some(200));
        assert_eq!(field(x, &["appends"]).as_u64(), Some(300));
        assert_eq!(field(x, &["read_back"]).as_u64(), Some(300));
        let per: Vec<u64> = field(x, &["appends_per_store"])
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        assert_eq!(per.len(), *t, "{x}");
        assert_eq!(per.iter().sum::<u64>(), 300, "{x}");
        assert!(field(x, &["entries_per_sec"]).as_f64().unwrap() > 0.0);
        assert!(field(x, &["ceiling_entries_per_sec"]).as_f64().unwrap() > 0.0);
        assert!(
            field(x, &["store_throughput_vs_ceiling"]).is_number(),
            "{x}"
        );
        if ceiling {
            assert_eq!(field(r, &["vs_floor_throughput"]).as_f64(), Some(1.0));
            assert!(field(r, &["power_loss_durable"]).is_null(), "{r}");
            assert!(field(x, &["db_syncs"]).is_null());
        }
        if *engine == "ringlog" {
            let syncs = field(x, &["db_syncs"]).as_u64().unwrap();
            assert!(syncs > 0, "{x}");
            assert!(field(x, &["db_commits"]).as_u64().unwrap() >= 300, "{x}");
            assert!(field(x, &["syncs_per_append"]).as_f64().unwrap() > 0.0);
            assert!(field(r, &["io_path"]).is_string(), "{r}");
            assert_eq!(
                field(r, &["engine_counters", "syncs"]).as_u64(),
                Some(syncs)
            );
        }
        if *engine == "rocksdb" {
            assert_eq!(field(x, &["flush_wal_calls"]).as_u64(), Some(300), "{x}");
        }
    }
    // Not in the other modes, and said so.
    let (code, out) = run_lib(
        &[
            "--engines",
            "ringlog",
            "--durability",
            "inmemory,buffered",
            "--workload",
            "raft",
            "--ops",
            "100",
        ],
        dir.path(),
        Hooks::default(),
    );
    assert_eq!(code, 0, "{out}");
    assert!(!out.lines().any(|l| l.contains(" raft ")), "{out}");
    assert!(out.contains("raft: run in strict mode only"), "{out}");
}

/// An entry read back that is not the one appended (its payload replaced as it is checked)
/// fails the run.
#[test]
fn a_corrupted_entry_fails_raft() {
    let dir = scratch();
    let args = [
        "--engines",
        "ringlog",
        "--workload",
        "raft",
        "--threads",
        "2",
        "--ops",
        "200",
    ];
    let (ok, bad) = verifies_then_catches_a_corrupt_read(&args, dir.path());
    assert!(
        ok.contains("(200 entries of the ceiling, 200 of ringlog)"),
        "{ok}"
    );
    assert!(
        bad.contains(
            "READ-BACK CHECK FAILED: RAFT LOG MISMATCH: store 0: entry 1 read back is not the \
             one appended"
        ),
        "{bad}"
    );
    assert!(bad.contains("ringlog-bench: FAILED"), "{bad}");
}
