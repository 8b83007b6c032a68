//! `ringlog`: the operator tool for ringlog database directories. See `ringlog --help` and the
//! README's "The `ringlog` tool" section.
//!
//! Exit status: 0 success; 1 the command ran and found a problem (damage, a key that is not
//! there, a database that cannot be opened); 2 a usage error (bad arguments, a path that is no
//! ringlog database, `repair` without a cut).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

mod args;
mod bytes;
mod commands;
mod logwalk;
mod probe;
mod repair;
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
    fn code(&self) -> u8 {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = run(cli, &mut out);
    let flushed = out.flush();
    match (result, flushed) {
        (Ok(()), Ok(())) => ExitCode::SUCCESS,
        (Ok(()), Err(e)) => {
            // A closed pipe (`ringlog dump-log | head`) is not a failure of the command.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                ExitCode::SUCCESS
            } else {
                eprintln!("ringlog: writing the output: {e}");
                ExitCode::from(1)
            }
        }
        (Err(f), _) => {
            match &f {
                Failure::Found(msg) | Failure::Usage(msg) if !msg.is_empty() => {
                    eprintln!("ringlog: {msg}")
                }
                _ => {}
            }
            ExitCode::from(f.code())
        }
    }
}

fn run(cli: Cli, out: &mut dyn Write) -> Outcome {
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
        Command::Probe(a) => match probe::run(&a) {
            Ok(r) if json => commands::print_json(out, &r),
            Ok(r) => probe::print_text(&r, out).map_err(Failure::from),
            Err(e) => Err(Failure::Found(format!("probe: {e}"))),
        },
    };
    // A closed pipe ends the output early: not the command's failure.
    match result {
        Err(Failure::Found(msg)) if msg.contains("Broken pipe") => Ok(()),
        other => other,
    }
}
