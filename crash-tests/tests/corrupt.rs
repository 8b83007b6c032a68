//! Smoke pass of the `corrupt` mode: tail damage is cut without losing a step, mid-log damage is
//! refused with the file and offset (or is harmless), TruncateAtCorruption leaves a prefix.

use ringlog_crash::corrupt;
use ringlog_crash::power::PowerOptions;
use ringlog_crash::workload::Mode;

#[test]
fn corrupt_smoke() {
    let opts = PowerOptions {
        seeds: (1..5).collect(),
        modes: vec![Mode::Strict, Mode::Buffered],
        steps: 80,
        stop_on_first: false,
        ..PowerOptions::default()
    };
    let s = corrupt::run(&opts, 12);
    eprintln!("{}", s.render());
    for f in &s.failures {
        eprintln!("{}", f.render());
    }
    assert!(s.failures.is_empty());
    let count = |prefix: &str| -> u64 {
        s.per_fault
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    };
    assert!(count("tail: tail damage cut, every step kept") >= 30);
    assert!(count("mid-log: refused with the file and offset") >= 20);
}

/// Found by the corrupt mode: a flipped bit in the *last* batch of the log had no later record to
/// prove it was synced, so recovery cut it as a torn tail and acknowledged transactions vanished
/// without an error. close() now seals the log with a round of its own after the last round of
/// data; this pins that damage to the last batch of a cleanly closed log never loses a step.
#[test]
fn last_batch_damage_never_loses_acknowledged_data() {
    let opts = PowerOptions {
        seeds: (1..5).collect(),
        modes: vec![Mode::Strict],
        steps: 80,
        stop_on_first: false,
        ..PowerOptions::default()
    };
    let s = corrupt::run(&opts, 12);
    let lost: u64 = s
        .per_fault
        .iter()
        .filter(|(k, _)| k.starts_with("last-batch: cut as a torn tail"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(lost, 0, "{}", s.render());
}

/// Found by `corrupt --seeds 9..21` (session 34): seed 12's `Buffered` database closed with a
/// checkpoint that retired its whole log — a MANIFEST and a checkpoint, no segment. The damage
/// generator took the log's last batch first for every category, so that image yielded no case
/// at all, not even the checkpoint's (and the runner rightly called a seed that checked nothing
/// a violation). The checkpoint and the MANIFEST are damaged now whether a log is left or not.
#[test]
fn a_clean_close_that_retired_the_log_still_gets_its_checkpoint_damaged() {
    let opts = PowerOptions {
        seeds: vec![12],
        modes: vec![Mode::Buffered],
        steps: 150,
        stop_on_first: false,
        ..PowerOptions::default()
    };
    let s = corrupt::run(&opts, 20);
    for f in &s.failures {
        eprintln!("{}", f.render());
    }
    assert!(s.failures.is_empty(), "{}", s.render());
    let checkpoint: u64 = s
        .per_fault
        .iter()
        .filter(|(k, _)| k.starts_with("checkpoint: "))
        .map(|(_, v)| v)
        .sum();
    let log: u64 = s
        .per_fault
        .iter()
        .filter(|(k, _)| !k.starts_with("checkpoint: "))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        (checkpoint, log),
        (20, 0),
        "a retired log (nothing of it to damage), every case the checkpoint's: {}",
        s.render()
    );
}
