//! Issue 8, "keep it found": every committed input of the fuzz targets in `fuzz/` — the seed
//! corpus written by the engine and every crash turned regression — replayed through the same
//! target bodies (`fuzz/targets.rs`) on every `cargo test`, so that what fuzzing found stays
//! found without libFuzzer or a nightly toolchain.
//!
//! * `fuzz/corpus/{open,decoders}/seed-*`: seeds, regenerated with
//!   `RINGLOG_WRITE_FUZZ_SEEDS=1 cargo test -p ringlog-db --test fuzz_regressions -- --ignored write_seed_corpus`
//! * `fuzz/regressions/{open,decoders}/*`: inputs that once made a target panic (see
//!   `fuzz/README.md`); a known, not yet fixed one is listed in `KNOWN_CRASHES` and replayed by
//!   its own `#[ignore]`d test until the fix.

#[path = "../../fuzz/targets.rs"]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use ringlog_format::SEGMENT_HEADER_LEN;
use targets::OpenOutcome;

/// Regression inputs that still crash: (target, file name, why). Each has an `#[ignore]`d test
/// below; once fixed, remove it here and un-ignore the test.
const KNOWN_CRASHES: &[(&str, &str, &str)] = &[];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The input files of a corpus or regression directory (dot files and `*.md` are not inputs).
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.expect("list the directory").path()).collect(),
        Err(e) => panic!("cannot list {}: {e}", dir.display()),
    };
    files.retain(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        p.is_file() && !name.starts_with('.') && !name.ends_with(".md")
    });
    files.sort();
    files
}

/// Runs `body` on every input of `fuzz/<sub>` except the known crashes, and fails naming every
/// input that panicked.
fn replay(sub: &str, target: &str, body: fn(&[u8])) -> usize {
    let dir = fuzz_dir().join(sub);
    let mut failed = Vec::new();
    let mut n = 0;
    for path in inputs(&dir) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if KNOWN_CRASHES
            .iter()
            .any(|&(t, file, _)| t == target && file == name)
        {
            continue;
        }
        let data = std::fs::read(&path).expect("read an input");
        n += 1;
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| body(&data))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {msg}", path.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {n} inputs panicked:\n{}",
        failed.len(),
        failed.join("\n")
    );
    n
}

#[test]
fn open_corpus() {
    let n = replay("corpus/open", "open", targets::open_dir);
    assert!(n >= 5, "the committed open corpus has only {n} inputs");
}

#[test]
fn decoders_corpus() {
    let n = replay("corpus/decoders", "decoders", targets::decoders);
    assert!(n >= 3, "the committed decoders corpus has only {n} inputs");
}

#[test]
fn open_regressions() {
    replay("regressions/open", "open", targets::open_dir);
}

#[test]
fn decoders_regressions() {
    replay("regressions/decoders", "decoders", targets::decoders);
}

/// Found by the `open` target: a log whose highest run id is `MAX_ID - 1` opens (its run takes
/// `MAX_ID`), commits and closes cleanly, and then can never be opened again, not even to read:
/// the next run cannot be numbered (`Error::IdSpaceExhausted("run id")`, FORMAT.md §8). The
/// target accepts exactly this refusal; if the engine comes to open such a log (as it does a log
/// whose LSNs are exhausted: open, but refuse commits), this test says so.
#[test]
fn run_id_exhausted_by_one_run_refuses_the_next_open() {
    let data = std::fs::read(fuzz_dir().join("regressions/open/run-id-max-after-one-run"))
        .expect("read the regression input");
    let o = targets::run_open(&data);
    for (mode, r) in [("Strict", &o.strict), ("Truncate", &o.truncate)] {
        let opened = r.as_ref().unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(opened.closed, "{mode}");
        assert!(
            opened.reopened.is_none(),
            "{mode}: the reopen was not refused"
        );
    }
}

fn keys(o: &OpenOutcome) -> (Option<usize>, Option<usize>) {
    (
        o.strict.as_ref().ok().map(|s| s.state.len()),
        o.truncate.as_ref().ok().map(|t| t.state.len()),
    )
}

/// The seeds the engine writes today still decode and open as intended: each reaches the part
/// of recovery it was made for (a seed that silently stopped decoding would make fuzzing from
/// it vacuous).
#[test]
fn engine_seeds_open_as_intended() {
    let seeds = targets::seed_inputs();
    let mut names = Vec::new();
    for (name, data) in &seeds {
        names.push(name.as_str());
        if let Some(file) = name.strip_prefix("decoders/") {
            let report = targets::run_decoders(data);
            if file.starts_with("seed-segment") {
                assert!(report.header, "{name}: the segment header does not decode");
                assert!(
                    data.len() == SEGMENT_HEADER_LEN || report.records > 0,
                    "{name}"
                );
            } else {
                assert!(report.manifest, "{name}: the manifest does not decode");
            }
            continue;
        }
        let o = targets::run_open(data);
        let strict = o.strict.as_ref();
        let applied = strict.map_or(0, |s| s.stats.transactions_applied);
        let (s, t) = keys(&o);
        match name.strip_prefix("open/").unwrap_or(name) {
            "seed-single-puts" => assert_eq!((s, t, applied), (Some(5), Some(5), 5), "{name}"),
            "seed-txns-deletes" => assert_eq!((s, t, applied), (Some(6), Some(6), 6), "{name}"),
            "seed-rotation" => {
                assert_eq!((s, t), (Some(30), Some(30)), "{name}");
                assert!(strict.is_ok_and(|s| s.stats.segments >= 2), "{name}: {o:?}");
            }
            "seed-runs" => {
                assert_eq!((s, t), (Some(3), Some(3)), "{name}");
                assert!(strict.is_ok_and(|s| s.stats.segments == 3), "{name}: {o:?}");
                // Its three big probes rotated the log.
                let reopened = strict.ok().and_then(|s| s.reopened.as_ref());
                assert!(
                    reopened.is_some_and(|r| r.segments >= 4),
                    "{name}: {reopened:?}"
                );
            }
            "seed-fresh" => assert_eq!((s, t), (Some(0), Some(0)), "{name}"),
            "seed-torn-tail" => {
                assert_eq!((s, t), (Some(4), Some(4)), "{name}");
                assert!(strict.is_ok_and(|s| s.stats.bytes_truncated > 0), "{name}");
            }
            "seed-mid-log-damage" => {
                let err = o
                    .strict
                    .as_ref()
                    .expect_err("Strict must refuse mid-log damage");
                assert!(err.contains("later write batch"), "{name}: {err}");
                assert_eq!(t, Some(2), "{name}");
                // Its three big probes, after the cut.
                let reopened = o.truncate.as_ref().ok().and_then(|t| t.reopened.as_ref());
                assert!(
                    reopened.is_some_and(|r| r.keys == 5),
                    "{name}: {reopened:?}"
                );
            }
            "seed-unfinished-creation" => {
                assert_eq!((s, t), (Some(6), Some(6)), "{name}");
                assert!(
                    strict.is_ok_and(|s| s.stats.torn_segments_removed == 1),
                    "{name}"
                );
            }
            "seed-checkpoint" => {
                // versions, empty, kept, tail (gone was deleted).
                assert_eq!((s, t), (Some(4), Some(4)), "{name}");
                let stats = &strict.expect("opens").stats;
                assert!(
                    stats.checkpoint_lsn > 0 && stats.checkpoint_keys >= 3,
                    "{name}: {stats:?}"
                );
                assert!(stats.transactions_applied >= 2, "{name}: {stats:?}");
            }
            "seed-checkpoint-values" => {
                assert_eq!((s, t), (Some(7), Some(7)), "{name}");
                let stats = &strict.expect("opens").stats;
                assert!(
                    stats.checkpoint_lsn > 0 && stats.checkpoint_keys == 6,
                    "{name}: {stats:?}"
                );
            }
            other => panic!("no expectation for seed {other}"),
        }
        // Every successful open also committed, closed and reopened.
        for opened in [&o.strict, &o.truncate].into_iter().flatten() {
            let puts: Vec<_> = opened.puts.iter().map(|p| &p.result).collect();
            assert!(
                puts.iter().all(|p| p.is_ok()) && opened.closed,
                "{name}: {puts:?}"
            );
        }
    }
    for want in [
        "open/seed-rotation",
        "open/seed-checkpoint",
        "open/seed-checkpoint-values",
        "decoders/seed-manifest",
    ] {
        assert!(names.contains(&want), "no seed {want}: {names:?}");
    }
}

/// Writes the seed corpus (`fuzz/corpus/{open,decoders}/seed-*`), replacing the previous seeds:
/// `RINGLOG_WRITE_FUZZ_SEEDS=1 cargo test -p ringlog-db --test fuzz_regressions -- --ignored write_seed_corpus`
#[test]
#[ignore = "writes the seed corpus into the source tree when RINGLOG_WRITE_FUZZ_SEEDS=1"]
fn write_seed_corpus() {
    if std::env::var_os("RINGLOG_WRITE_FUZZ_SEEDS").is_none() {
        eprintln!("RINGLOG_WRITE_FUZZ_SEEDS is not set: nothing written");
        return;
    }
    let seeds = targets::seed_inputs();
    for target in ["open", "decoders"] {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        for old in inputs(&dir) {
            if old
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"))
            {
                std::fs::remove_file(&old).expect("remove an old seed");
            }
        }
    }
    let mut total = 0;
    for (name, data) in seeds {
        let path = fuzz_dir().join("corpus").join(&name);
        std::fs::write(&path, &data).expect("write a seed");
        total += data.len();
        eprintln!("wrote {} ({} bytes)", path.display(), data.len());
    }
    assert!(total < 1 << 20, "the seed corpus is {total} bytes");
}

/// What the `open` inputs of a directory reach, as counts of outcomes (errors with digits and
/// paths elided): `RINGLOG_FUZZ_CORPUS=<dir> cargo test -p ringlog-db --release --test
/// fuzz_regressions -- --ignored open_outcomes --nocapture`, e.g. on a corpus a fuzzing run grew.
#[test]
#[ignore = "a tool: summarises the outcomes of the open inputs in $RINGLOG_FUZZ_CORPUS"]
fn open_outcomes() {
    let Some(dir) = std::env::var_os("RINGLOG_FUZZ_CORPUS") else {
        eprintln!("RINGLOG_FUZZ_CORPUS is not set");
        return;
    };
    let elide = |r: &Result<targets::Opened, String>| match r {
        Ok(o) if o.stats.truncated_at.is_some() => "ok, truncated".to_string(),
        Ok(o) if o.stats.bytes_truncated > 0 => "ok, torn tail cut".to_string(),
        Ok(_) => "ok".to_string(),
        Err(e) => e
            .split_whitespace()
            .map(|w| match w {
                w if w.contains('/') => "<path>",
                w if w.starts_with("0x") => "0x…",
                w => w,
            })
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect::<String>()
            .replace("##", "#")
            .replace("##", "#"),
    };
    let mut counts = std::collections::BTreeMap::<(String, String), usize>::new();
    for path in inputs(Path::new(&dir)) {
        let o = targets::run_open(&std::fs::read(&path).expect("read an input"));
        *counts
            .entry((elide(&o.strict), elide(&o.truncate)))
            .or_default() += 1;
    }
    for ((s, t), n) in counts {
        println!("{n:6}  Strict: {s} | TruncateAtCorruption: {t}");
    }
}

/// Found by the `open` target: a checkpoint whose entry refers for its value to a segment of the
/// log's range that does not exist opened, and the read of that value then failed with an I/O
/// error (no such file). The open now refuses it as corruption naming the missing segment, in
/// both recovery modes (no cut of the log mends a checkpoint).
#[test]
fn a_checkpoint_referring_to_a_segment_that_does_not_exist_is_refused() {
    let data = std::fs::read(fuzz_dir().join("regressions/open/checkpoint-value-ref-into-the-log"))
        .expect("read the regression input");
    let o = targets::run_open(&data);
    for (mode, r) in [("Strict", &o.strict), ("Truncate", &o.truncate)] {
        let err = r.as_ref().expect_err(mode);
        assert!(
            err.contains("is missing: the checkpoint refers to values in it"),
            "{mode}: {err}"
        );
    }
}
