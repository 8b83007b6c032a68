//! The `ringlog-crash` binary. Exit status: 0 no violation, 1 a violation, 2 bad arguments or
//! the runner could not run.

mod args;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use ringlog_crash::acklog;
use ringlog_crash::corrupt;
use ringlog_crash::fsync;
use ringlog_crash::kill;
use ringlog_crash::power;
use ringlog_crash::report::Summary;

use args::{Cli, Cmd, KillArgs, VerifyArgs, WorkloadCmd};

/// The runner's allocator (set in the binary: a library must not choose its users' allocator).
#[global_allocator]
static ALLOC: ringlog_crash::zalloc::ZeroPageAlloc = ringlog_crash::zalloc::ZeroPageAlloc;

/// A usage error of `mode` found after parsing: clap's format, exit status 2.
fn bad(mode: &str, msg: impl std::fmt::Display) -> ExitCode {
    let mut cmd = Cli::command();
    // Built, the subcommand's usage line names the binary: `ringlog-crash power [OPTIONS]`.
    cmd.build();
    let err = match cmd.find_subcommand_mut(mode) {
        Some(sub) => sub.error(ErrorKind::ValueValidation, msg),
        None => cmd.error(ErrorKind::ValueValidation, msg),
    };
    let _ = err.print();
    ExitCode::from(2)
}

fn finish(sum: &Summary, json: bool) -> ExitCode {
    for f in &sum.failures {
        eprint!("{}", f.render());
    }
    if json {
        println!("{}", sum.to_json());
    } else {
        print!("{}", sum.render());
    }
    if sum.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    // Usage errors exit 2, --help 0 (clap).
    let cli = Cli::parse();
    // Every mode: the known engine issues (crash-tests/src/known.rs) are violations.
    if cli.strict {
        ringlog_crash::known::set_strict(true);
    }
    match cli.mode {
        Cmd::Power(a) => match a.common.power_options(args::run_defaults()) {
            Ok(p) => finish(&power::run(&p), a.common.json),
            Err(e) => bad("power", e),
        },
        Cmd::FsyncError(a) => match a.common.power_options(args::fsync_defaults()) {
            Ok(p) => finish(&fsync::run(&p, a.max_per_seed), a.common.json),
            Err(e) => bad("fsync-error", e),
        },
        Cmd::WriteError(a) => match a.common.power_options(args::fsync_defaults()) {
            Ok(p) => finish(&fsync::run_writes(&p, a.max_per_seed), a.common.json),
            Err(e) => bad("write-error", e),
        },
        Cmd::Corrupt(a) => match a.common.power_options(args::corrupt_defaults()) {
            Ok(p) => finish(&corrupt::run(&p, a.cases), a.common.json),
            Err(e) => bad("corrupt", e),
        },
        Cmd::Raft(a) if !a.common.unused_by_raft().is_empty() => {
            let unused = a.common.unused_by_raft();
            let them = if unused.len() == 1 { "it" } else { "them" };
            bad(
                "raft",
                format!(
                    "raft mode does not take {} (it would ignore {them})",
                    unused.join(", ")
                ),
            )
        }
        Cmd::Raft(a) => match a.common.power_options(args::raft_defaults()) {
            Ok(p) => finish(&ringlog_crash::raft::run(&p), a.common.json),
            Err(e) => bad("raft", e),
        },
        Cmd::Kill(a) => run_kill(&a),
        Cmd::Workload(a) => run_workload(&a),
        Cmd::Verify(a) => run_verify(&a),
    }
}

fn run_kill(a: &KillArgs) -> ExitCode {
    let power = match a.common.power_options(args::kill_defaults()) {
        Ok(p) => p,
        Err(e) => return bad("kill", e),
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return bad("kill", format!("current_exe: {e}")),
    };
    let (ios, opts, tuning) = a.options(&power, exe);
    let mut total: Option<Summary> = None;
    for io in ios {
        let o = kill::KillOptions { io, ..opts.clone() };
        match kill::run_tuned(&o, &tuning) {
            Ok(s) => match &mut total {
                None => total = Some(s),
                Some(t) => {
                    t.model = format!("{}+{}", t.model, s.model);
                    t.merge(s);
                }
            },
            Err(e) => {
                eprintln!("ringlog-crash kill: {e}");
                return ExitCode::from(2);
            }
        }
    }
    finish(&total.expect("at least one I/O path"), a.common.json)
}

fn run_workload(w: &WorkloadCmd) -> ExitCode {
    // Test hook of the kill watchdog: hang before step N (read by acklog::run_workload).
    if let Some(n) = w.stall_at_step {
        std::env::set_var(ringlog_crash::watchdog::STALL_ENV, n.to_string());
    }
    // Test hook of the kill mode's planted-bug tests: the engine bugs to arm in this child.
    if let Some(names) = std::env::var_os(ringlog_crash::kill::PLANTED_ENV) {
        for name in names.to_string_lossy().split(',').filter(|n| !n.is_empty()) {
            if !ringlog_db::failpoints::arm_planted(name) {
                eprintln!(
                    "ringlog-crash workload: cannot arm planted bug {name:?} (unknown, or this \
                     build has no planted bugs: only test builds do)"
                );
                return ExitCode::from(2);
            }
        }
    }
    let a = w.workload_args();
    match acklog::run_workload(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringlog-crash workload: {e}");
            ExitCode::from(3)
        }
    }
}

/// `verify --json`'s document.
#[derive(serde::Serialize)]
struct VerifyJson<'a> {
    violations: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    notes: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invariant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

impl std::fmt::Display for VerifyJson<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&s)
    }
}

fn run_verify(a: &VerifyArgs) -> ExitCode {
    let (dir, ack, io, json) = (&a.dir, &a.ack_log, a.io, a.json);
    match acklog::verify(dir, ack, io) {
        Ok(notes) => {
            if json {
                println!(
                    "{}",
                    VerifyJson {
                        violations: 0,
                        notes: Some(&notes),
                        invariant: None,
                        detail: None
                    }
                );
            } else {
                for n in notes {
                    println!("{n}");
                }
                println!("verify: no violation");
            }
            ExitCode::SUCCESS
        }
        Err(v) if v.invariant == "runner" => {
            eprintln!("ringlog-crash verify: {}", v.detail);
            ExitCode::from(2)
        }
        Err(v) => {
            if json {
                println!(
                    "{}",
                    VerifyJson {
                        violations: 1,
                        notes: None,
                        invariant: Some(v.invariant),
                        detail: Some(&v.detail),
                    }
                );
            }
            eprintln!("VIOLATION [{}] {}", v.invariant, v.detail);
            ExitCode::from(1)
        }
    }
}
