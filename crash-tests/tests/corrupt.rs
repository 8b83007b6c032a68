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
