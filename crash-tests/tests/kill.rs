//! Smoke pass of the `kill` mode: real child processes on a real directory, SIGKILLed at random
//! moments (half of them after the Buffered loss window) or at armed crash points, on both I/O
//! paths, recovered and checked by the parent; and proofs that the loss-window check and the
//! watchdog can fire.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ringlog_crash::acklog;
use ringlog_crash::kill::{self, KillOptions, KillTuning, Observed};
use ringlog_crash::oracle::AckKind;
use ringlog_crash::setup::Setup;
use ringlog_crash::workload::{Mode, Step, Workload};
use ringlog_db::IoChoice;

/// The slack the campaign uses (`--slack-ms`).
const SLACK: Duration = Duration::from_millis(50);

fn options(base: &Path, seeds: Vec<u64>, modes: Vec<Mode>, io: IoChoice) -> KillOptions {
    KillOptions {
        seeds,
        modes,
        io,
        cycles: 60,
        base_dir: base.to_path_buf(),
        exe: PathBuf::from(env!("CARGO_BIN_EXE_ringlog-crash")),
        max_delay: Duration::from_millis(40),
        failpoint_per_mille: 400,
        slack: SLACK,
        keep: None,
        stop_on_first: true,
        progress: false,
        tamper: None,
        child_bug: None,
    }
}

/// The `N` of the summary's "kills after the window: N of ..." note.
fn kills_after_window(s: &ringlog_crash::report::Summary) -> u64 {
    let note = s
        .notes
        .iter()
        .find_map(|n| n.split("kills after the window: ").nth(1))
        .expect("the summary counts the kills after the window");
    note.split(' ').next().unwrap().parse().unwrap()
}

fn smoke(io: IoChoice) {
    let base = tempfile::tempdir().expect("temp dir");
    let opts = options(
        base.path(),
        vec![11, 12, 13],
        vec![Mode::Strict, Mode::Buffered, Mode::Strict],
        io,
    );
    let s = kill::run(&opts).unwrap_or_else(|e| panic!("the runner could not run: {e}"));
    eprintln!("{}", s.render());
    for f in &s.failures {
        eprintln!("{}", f.render());
    }
    assert!(s.failures.is_empty(), "violations on the {io:?} path");
    assert_eq!(s.states, 180, "every cycle ran");
    assert!(s.steps > 100, "the children made progress");
    assert!(!s.covered.is_empty(), "some crash points fired");
    // The loss-window check is live: some kills came after acknowledged Buffered commits were
    // older than the window, so losing them would have been reported.
    assert!(kills_after_window(&s) > 0, "{}", s.render());
    // The children checkpoint (every few hundred commits, and in the background): the parent
    // recovers from their checkpoints.
    assert!(
        s.checks
            .get("recoveries from a checkpoint")
            .is_some_and(|&n| n > 0),
        "{}",
        s.render()
    );
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
        cycles: 10,
        failpoint_per_mille: 0,
        keep: Some(base.path().join("kept")),
        tamper: Some(lose_newest_segment),
        child_bug: None,
        ..options(
            base.path(),
            vec![11],
            vec![Mode::Strict],
            IoChoice::Portable,
        )
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

/// A read the child checks itself and finds wrong is reported on a `V` line, which the parent
/// parses into the generation's violation.
#[test]
fn ack_log_violation_lines_name_the_invariant() {
    let text = "H 1 seed=3 durability=buffered gen=1 io=portable backend=portable pid=1\n\
                S 1 0 \n\
                A 1 1 C 1 0\n\
                V 1 2 versions step 1.2: get_at at LSN 1 returned nothing\n";
    let g = &acklog::parse(text, |_, _| 8).unwrap()[0];
    assert_eq!(
        g.violation,
        Some((
            2,
            "versions".to_string(),
            "step 1.2: get_at at LSN 1 returned nothing".to_string()
        ))
    );
}

#[test]
fn ack_log_pause_lines_commit_nothing() {
    let text = "H 1 seed=3 durability=buffered gen=1 io=portable backend=portable pid=1\n\
                S 1 0 \n\
                A 1 1 C 1 0\n\
                A 1 2 P 1 0\n\
                A 1 3 C 2 1\n";
    let g = &acklog::parse(text, |_, _| 8).unwrap()[0];
    let kinds: Vec<AckKind> = g.hist.acks.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [
            AckKind::Commit { durable: false },
            AckKind::Skipped,
            AckKind::Commit { durable: false }
        ]
    );
}

/// Steps of generation 1 in the forged ack logs below.
const FORGED_STEPS: u64 = 100;

/// A Buffered seed whose first [`FORGED_STEPS`] steps of generation 1 promise nothing durable
/// (default commits, pauses and steps that commit nothing, in the quiet stretches of a Buffered
/// run).
fn buffered_seed() -> (u64, Setup) {
    (1..100_000)
        .map(|seed| (seed, Setup::derive(seed, Mode::Buffered, false)))
        .find(|(_, s)| {
            (1..=FORGED_STEPS).all(|i| {
                let st = s.wl.step(1, i);
                !matches!(st, Step::Sync | Step::Skip) && !s.wl.promises_durability(&st)
            })
        })
        .expect("such a seed exists")
}

/// A forged ack log of generation 1 of `seed`: its first `n` steps acknowledged `spacing` apart
/// from `t0`, none ever shown durable (the durable LSN stays 0). Returns the text and the lines
/// with the instants the parent "received" them.
fn forged(
    seed: u64,
    setup: &Setup,
    n: u64,
    t0: Instant,
    spacing: Duration,
) -> (String, Vec<(String, Instant)>) {
    let mut lines = vec![
        format!("H 1 seed={seed} durability=buffered gen=1 io=portable backend=portable pid=1"),
        "S 1 0 ".to_string(),
    ];
    let mut lsn = 0;
    for i in 1..=n {
        let kind = if Workload::commits(&setup.wl.step(1, i)) {
            lsn += 1;
            'C'
        } else {
            'P'
        };
        lines.push(format!("A 1 {i} {kind} {lsn} 0"));
    }
    let text = lines.iter().map(|l| format!("{l}\n")).collect();
    let timed = lines
        .into_iter()
        .enumerate()
        .map(|(k, l)| (l, t0 + spacing * k.saturating_sub(2) as u32))
        .collect();
    (text, timed)
}

/// The loss-window check fires, deterministically: an ack log says that a child acknowledged
/// Buffered commits every 10 ms for a second, the first when nothing older was pending, and
/// the directory holds none of them (the engine never wrote them). The code that runs after a
/// real kill recovers the directory, runs the oracle (which allows the loss: nothing was
/// promised durable) and then the window check, which must report the oldest lost
/// acknowledgement's age against the window. A loss within the window passes.
#[test]
fn kill_window_check_fires_on_an_old_lost_buffered_commit() {
    let (seed, setup) = buffered_seed();
    let keys = setup.wl.cfg.keys;
    let interval = setup.wl.cfg.interval;
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    let t0 = Instant::now();
    let spacing = Duration::from_millis(10);

    // Killed 10 ms after the last line, 1 s after the first acknowledgement: a violation naming
    // the age and the window.
    let (text, lines) = forged(seed, &setup, FORGED_STEPS, t0, spacing);
    let g = acklog::parse(&text, |_, _| keys).unwrap().remove(0);
    let obs = Observed {
        lines,
        killed_at: Some(t0 + spacing * FORGED_STEPS as u32),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // With the model of every acknowledgement, the first violation is I6: a real engine writes a
    // durable LSN lease before it acknowledges a Buffered commit, so that a crash that loses the
    // commit cannot hand its LSN out again; this directory holds no lease.
    let model = kill::Model {
        base: ringlog_crash::model::Timeline::new(keys),
        acked_before: 0,
        floor: 0,
    };
    let v = kill::recover_and_check(
        &setup,
        &g,
        dir.path(),
        IoChoice::Portable,
        &obs,
        SLACK,
        Some(&model),
    )
    .expect_err("acknowledged LSNs that a recovery would hand out again are a violation");
    assert_eq!(v.invariant, "I6", "{v}");
    // The loss-window check alone (no model: the data checks only).
    let v = kill::recover_and_check(
        &setup,
        &g,
        dir.path(),
        IoChoice::Portable,
        &obs,
        SLACK,
        None,
    )
    .expect_err("Buffered commits lost a second after their acknowledgement are a violation");
    eprintln!("{v}");
    assert_eq!(v.invariant, "durability", "{v}");
    assert!(v.detail.contains("the oldest, step 1.1 (LSN 1)"), "{v}");
    assert!(
        v.detail
            .contains("was acknowledged 1000.0 ms before the kill"),
        "{v}"
    );
    assert!(
        v.detail.contains(&format!(
            "the window is {} (interval {} + slack {}",
            ms(interval + SLACK),
            ms(interval),
            ms(SLACK)
        )),
        "{v}"
    );

    // Killed one interval after the first acknowledgement: the loss is allowed.
    let (text, lines) = forged(seed, &setup, 1, t0, spacing);
    let g = acklog::parse(&text, |_, _| keys).unwrap().remove(0);
    let obs = Observed {
        lines,
        killed_at: Some(t0 + interval),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let w = kill::recover_and_check(
        &setup,
        &g,
        dir.path(),
        IoChoice::Portable,
        &obs,
        SLACK,
        None,
    )
    .unwrap_or_else(|v| panic!("a loss within the window is allowed: {v}"))
    .window;
    assert!(w.checked && !w.after, "{w:?}");
    assert_eq!(w.oldest_lost, Some(interval));
}

/// The watchdog reports a hung child as a `liveness` violation with its stacks, not as a kill:
/// the children hang before their first step (the test hook), and every kill is aimed after the
/// loss window, which a child that acknowledges nothing never opens.
#[test]
fn kill_watchdog_reports_a_hung_child_with_its_stacks() {
    let base = tempfile::tempdir().expect("temp dir");
    let opts = KillOptions {
        cycles: 3,
        failpoint_per_mille: 0,
        keep: Some(base.path().join("kept")),
        ..options(
            base.path(),
            vec![11],
            vec![Mode::Strict],
            IoChoice::Portable,
        )
    };
    let tuning = KillTuning {
        // Far above a child's start on a loaded machine, which the watchdog also watches.
        watchdog: Some(Duration::from_secs(2)),
        late_per_mille: Some(1000),
        stall_at_step: Some(1),
    };
    let started = Instant::now();
    let s =
        kill::run_tuned(&opts, &tuning).unwrap_or_else(|e| panic!("the runner could not run: {e}"));
    let took = started.elapsed();
    let f = s.failures.first().expect("the hang is caught");
    let text = f.render();
    eprintln!("{text}");
    assert_eq!(f.violation.invariant, "liveness", "{text}");
    assert_eq!(f.point, "1", "the first generation hangs: {text}");
    assert!(
        f.violation.detail.contains("wrote no ack-log line for"),
        "{text}"
    );
    // The hook hangs the child before its first step, after it wrote its start state.
    assert!(
        f.violation.detail.contains("after its line `S 1 "),
        "{text}"
    );
    // The stacks: gdb's backtraces (the main thread parked) when gdb is installed, and the
    // threads from /proc in any case.
    assert!(text.contains("threads (/proc/"), "{text}");
    if ringlog_crash::watchdog::which("gdb").is_some() && !text.contains("ptrace") {
        assert!(text.contains("Thread ") && text.contains("park"), "{text}");
    }
    let kept = f.image.as_ref().expect("the directory is kept");
    assert!(kept.join("ack.log").is_file() && kept.join("stacks.txt").is_file());
    assert!(
        f.replay.starts_with("ringlog-crash kill "),
        "a hang is reproduced by re-running the seed: {}",
        f.replay
    );
    assert!(took < Duration::from_secs(60), "the watchdog took {took:?}");
}
