//! Smoke pass of the `kill` mode: real child processes on a real directory, SIGKILLed at random
//! moments or at armed crash points, on both I/O paths, recovered and checked by the parent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ringlog::IoChoice;
use ringlog_crash::kill::{self, KillOptions};
use ringlog_crash::workload::Mode;

fn smoke(io: IoChoice) {
    let base = tempfile::tempdir().expect("temp dir");
    let opts = KillOptions {
        seeds: vec![11, 12, 13],
        modes: vec![Mode::Strict, Mode::Buffered, Mode::Strict],
        io,
        cycles: 60,
        base_dir: base.path().to_path_buf(),
        exe: PathBuf::from(env!("CARGO_BIN_EXE_ringlog-crash")),
        max_delay: Duration::from_millis(40),
        failpoint_per_mille: 400,
        slack: Duration::from_millis(500),
        keep: None,
        stop_on_first: true,
        progress: false,
        tamper: None,
    };
    let s = kill::run(&opts).unwrap_or_else(|e| panic!("the runner could not run: {e}"));
    eprintln!("{}", s.render());
    for f in &s.failures {
        eprintln!("{}", f.render());
    }
    assert!(s.failures.is_empty(), "violations on the {io:?} path");
    assert_eq!(s.states, 180, "every cycle ran");
    assert!(s.steps > 100, "the children made progress");
    assert!(!s.covered.is_empty(), "some crash points fired");
}

#[test]
fn kill_smoke_uring() {
    smoke(IoChoice::Uring);
}

#[test]
fn kill_smoke_portable() {
    smoke(IoChoice::Portable);
}

/// Zeroes every record of the newest segment (as if its synced data never reached the disk).
fn lose_newest_segment(dir: &Path) {
    let newest = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .max();
    if let Some(p) = newest {
        let len = std::fs::metadata(&p).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(4096).unwrap();
        f.set_len(len).unwrap();
    }
}

#[test]
fn kill_mode_catches_lost_acknowledged_data() {
    let base = tempfile::tempdir().expect("temp dir");
    let opts = KillOptions {
        seeds: vec![11],
        modes: vec![Mode::Strict],
        io: IoChoice::Portable,
        cycles: 10,
        base_dir: base.path().to_path_buf(),
        exe: PathBuf::from(env!("CARGO_BIN_EXE_ringlog-crash")),
        max_delay: Duration::from_millis(40),
        failpoint_per_mille: 0,
        slack: Duration::from_millis(500),
        keep: Some(base.path().join("kept")),
        stop_on_first: true,
        progress: false,
        tamper: Some(lose_newest_segment),
    };
    let s = kill::run(&opts).unwrap_or_else(|e| panic!("the runner could not run: {e}"));
    let f = s.failures.first().expect("the lost data is caught");
    eprintln!("{}", f.render());
    assert!(
        ["durability", "I3", "I4"].contains(&f.violation.invariant),
        "{}",
        f.render()
    );
    // The kept directory and ack log reproduce the failure exactly, with `verify`.
    let kept = f.image.as_ref().expect("the failing directory is kept");
    let args: Vec<&str> = f.replay.split_whitespace().collect();
    assert_eq!(args[..2], ["ringlog-crash", "verify"], "{}", f.replay);
    for _ in 0..2 {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringlog-crash"))
            .args(&args[1..])
            .output()
            .expect("run verify");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "verify of {}: {text}",
            kept.display()
        );
    }
}
