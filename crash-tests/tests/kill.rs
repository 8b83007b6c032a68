//! Smoke pass of the `kill` mode: real child processes on a real directory, SIGKILLed at random
//! moments or at armed crash points, on both I/O paths, recovered and checked by the parent.

use std::path::PathBuf;
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
