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
pub mod transfer;

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

/// Output to a reader that may stop reading: once a write fails with a broken pipe, the rest of
/// the output is discarded and the command goes on, so that its exit status is its verdict (a
/// review found `ringlog verify DIR | head -0` exiting 0 on a damaged database: the failed write
/// hid the verdict). For every command but the listings, which stop early instead.
struct ToTheEnd<'a> {
    out: &'a mut dyn Write,
    closed: bool,
}

impl ToTheEnd<'_> {
    fn absorb(&mut self, r: std::io::Result<()>) -> std::io::Result<()> {
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }
}

impl Write for ToTheEnd<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match self.out.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(buf.len())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = self.out.flush();
        self.absorb(r)
    }
}

/// Runs the command `cli` names, writing its output to `out`. A closed pipe ends a listing
/// (`dump-log`, `scan`, `history`, `runs`, `export`) early with success; every other command
/// runs to its end and returns its verdict.
pub fn run(cli: Cli, out: &mut dyn Write) -> Outcome {
    let json = cli.json;
    let listing = matches!(
        cli.command,
        Command::DumpLog(_)
            | Command::Scan(_)
            | Command::History(_)
            | Command::Runs(_)
            | Command::Export(_)
    );
    let mut to_the_end = ToTheEnd { out, closed: false };
    let out: &mut dyn Write = if listing {
        to_the_end.out
    } else {
        &mut to_the_end
    };
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
