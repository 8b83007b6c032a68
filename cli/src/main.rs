//! `ringlog`: the operator tool for ringlog database directories. See `ringlog --help` and
//! docs/CLI.md.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use ringlog_cli::args::Cli;
use ringlog_cli::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = ringlog_cli::run(cli, &mut out);
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
