//! The binary's contract: `workload` + `verify` with an ack log, and exit status 0 (no
//! violation), 1 (violation), 2 (bad arguments).

use std::process::Command;

fn exe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringlog-crash"))
}

#[test]
fn workload_then_verify_and_a_forged_ack_is_caught() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("db");
    let log = t.path().join("acks.log");
    for gen in 0..2 {
        let st = exe()
            .args(["workload", "--durability", "strict", "--seed", "5"])
            .args(["--io", "portable", "--steps", "150"])
            .arg("--dir")
            .arg(&dir)
            .arg("--ack-log")
            .arg(&log)
            .status()
            .unwrap();
        assert!(st.success(), "workload generation {gen}: {st:?}");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().filter(|l| l.starts_with("H ")).count(), 2);
    assert!(text.lines().filter(|l| l.starts_with("A 2 ")).count() >= 150);
    let verify = |log: &std::path::Path| {
        exe()
            .args(["verify", "--io", "portable"])
            .arg("--dir")
            .arg(&dir)
            .arg("--ack-log")
            .arg(log)
            .output()
            .unwrap()
    };
    let ok = verify(&log);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // An acknowledgement the database never saw: verify must report lost data (exit 1).
    let forged = t.path().join("forged.log");
    std::fs::write(&forged, format!("{text}A 2 151 D 100000 100000\n")).unwrap();
    let bad = verify(&forged);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("VIOLATION"));
}

#[test]
fn exit_status_two_for_bad_arguments() {
    for args in [
        vec!["nosuchmode"],
        vec!["power", "--model", "wobbly"],
        vec!["power", "--replay", "x"],
        vec!["verify", "--dir", "/nonexistent"],
        vec![],
    ] {
        let out = exe().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    // A rule checked after parsing fails the same way.
    let out = exe().args(["power", "--steps", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to run"));
}

#[test]
fn help_exits_zero_and_lists_modes_and_options() {
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let out = exe().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        for needle in [
            "power",
            "fsync-error",
            "write-error",
            "kill",
            "corrupt",
            "workload",
            "verify",
        ] {
            assert!(text.contains(needle), "{args:?} lacks {needle}: {text}");
        }
        assert!(text.contains("--replay SEED:GEN.POINT:STATE"), "{text}");
    }
}

#[test]
fn power_exits_zero_and_prints_json() {
    let out = exe()
        .args([
            "power", "--seed", "3", "--steps", "15", "--gens", "2", "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.trim_start().starts_with('{') && s.contains("\"violations\":0"),
        "{s}"
    );
}
