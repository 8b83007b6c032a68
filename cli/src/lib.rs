//! The `ringlog` operator tool as a library: the binary (`src/main.rs`) parses the command line
//! and calls [`run`]; the crash-test runner uses [`logwalk`] to check the tool's reading of a
//! damaged log against recovery's. See docs/CLI.md.
//!
//! Exit status: 0 success; 1 the command ran and found a problem (damage, a key that is not
//! there, a database that cannot be opened); 2 a usage error (bad arguments, a path that is no
//! ringlog database, `repair` without a cut). docs/CLI.md ("Exit status") lists every code each
//! command returns; `cli/tests/cli.rs` checks that table against the binary.

use std::io::Write;

pub mod args;
mod bytes;
mod commands;
pub mod logwalk;
mod probe;
pub mod repair;
mod transfer;

use args::{Cli, Command};

/// How a command ended, beyond success: the exit status and what to say on stderr.
#[derive(Debug)]
pub enum Failure {
    /// The command ran and found a problem (exit 1); the report was printed already, or this
    /// says what.
    Found(String),
    /// The arguments, or the path, cannot be used (exit 2).
    Usage(String),
}

impl Failure {
    /// The exit status: 1 for [`Failure::Found`], 2 for [`Failure::Usage`].
    pub fn code(&self) -> u8 {
        match self {
            Failure::Found(_) => 1,
            Failure::Usage(_) => 2,
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Found(e.to_string())
    }
}

/// The outcome of a command.
pub type Outcome = Result<(), Failure>;

/// Runs the command `cli` names, writing its output to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Outcome {
    let json = cli.json;
    let result = match cli.command {
        Command::Inspect(a) => commands::inspect(&a, json, out),
        Command::Verify(a) => commands::verify(&a, json, out),
        Command::DumpLog(a) => commands::dump_log(&a, json, out),
        Command::Get(a) => commands::get(&a, json, out),
        Command::Scan(a) => commands::scan(&a, json, out),
        Command::History(a) => commands::history(&a, json, out),
        Command::Runs(a) => commands::runs(&a, json, out),
        Command::Stats(a) => commands::stats(&a, json, out),
        Command::Repair(a) => repair::repair(&a, json, out),
        Command::Export(a) => transfer::export(&a, json, out),
        Command::Import(a) => transfer::import(&a, json, out),
        Command::Probe(a) => match probe::check_dir(&a)
            .and_then(|()| probe::run(&a).map_err(|e| Failure::Found(format!("probe: {e}"))))
        {
            Ok(r) if json => commands::print_json(out, &r),
            Ok(r) => probe::print_text(&r, out).map_err(Failure::from),
            Err(e) => Err(e),
        },
    };
    // A closed pipe ends the output early: not the command's failure.
    match result {
        Err(Failure::Found(msg)) if msg.contains("Broken pipe") => Ok(()),
        other => other,
    }
}
