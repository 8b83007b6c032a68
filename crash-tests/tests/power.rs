//! Smoke pass of the `power` mode on the clean engine: every crash point of several seeds and
//! generations, all three durability modes, both tear models. Zero violations expected.

use ringlog_crash::crash::TearModel;
use ringlog_crash::power::{self, PowerOptions};
use ringlog_crash::workload::Mode;

fn smoke(model: TearModel) {
    let opts = PowerOptions {
        seeds: (100..104).collect(),
        modes: vec![Mode::Strict, Mode::Buffered, Mode::InMemory, Mode::Buffered],
        steps: 60,
        gens: 2,
        model,
        cap: 24,
        ..PowerOptions::default()
    };
    let s = power::run(&opts);
    eprintln!("{}", s.render());
    for f in &s.failures {
        eprintln!("{}", f.render());
    }
    assert!(s.failures.is_empty(), "violations under the {model} model");
    assert!(s.states >= 500, "too few states explored: {}", s.states);
    assert!(
        s.per_fault.contains_key("crash during open/recovery"),
        "crashes during recovery are explored"
    );
}

#[test]
fn power_sector_model_smoke() {
    smoke(TearModel::Sector);
}

#[test]
fn power_paranoid_model_smoke() {
    smoke(TearModel::Paranoid);
}
