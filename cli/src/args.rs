//! The command line (clap derive).

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

/// Operator tool for ringlog database directories. Read-only unless the command says otherwise:
/// it opens a database without its lock, never writes to it, and works while a writer has it
/// open (it then sees the database as it was when it opened it). Only `repair` writes to a
/// database (`import` creates a new one).
///
/// Exit status: 0 success; 1 the command ran and found a problem (damage found by `inspect`,
/// `verify`, `dump-log` or `repair`, a missing key, a database that cannot be opened); 2 a usage
/// error (bad arguments, a path that is no ringlog database, `repair` without a cut). Every
/// command's codes: docs/CLI.md, "Exit status".
#[derive(Debug, Parser)]
#[command(name = "ringlog", version, max_term_width = 100)]
pub struct Cli {
    /// Print the result as JSON (one document; `dump-log` prints one object per line).
    #[arg(long, global = true)]
    pub json: bool,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The database's facts: format version, epoch, MANIFEST, checkpoint, segments (ids, LSN
    /// ranges, sizes, sealed or active), runs, whether a writer has it open, and the I/O path the
    /// engine would pick. Exit 1 when it reports damage.
    Inspect(DirArgs),
    /// Check every record's checksum in every segment, and open the database as recovery does
    /// (which checks the checkpoint's blocks). A torn tail is reported apart from mid-log
    /// corruption, each with segment, offset and the last good LSN. Exit 1 on any damage.
    Verify(VerifyArgs),
    /// One line per log record: LSN, kind, transaction, run, commit time, segment:offset, key,
    /// value length (or value).
    DumpLog(DumpArgs),
    /// Print one key's value (exit 1 when the key has none).
    Get(GetArgs),
    /// Print the entries of a key range, in key order.
    Scan(ScanArgs),
    /// Print every retained version of the keys of a range, newest first, deletes included.
    History(HistoryArgs),
    /// The runs (opens) the log holds commits of, with their labels and LSN ranges.
    Runs(DirArgs),
    /// Live and dead bytes per segment, keys, versions, sizes, and what the engine's statistics
    /// report.
    Stats(DirArgs),
    /// WRITES: cut the log at a place, keeping a copy of every byte removed. Refuses while a
    /// writer has the database open, and without --truncate-at or --truncate-tail. Exit 1 when
    /// damage it cannot cut remains (a checkpoint, a segment kept for values).
    Repair(RepairArgs),
    /// Write every key and value (every retained version with --versions) to a documented,
    /// portable JSON-lines file (docs/CLI.md).
    Export(ExportArgs),
    /// Create a new database from an export file (refuses a directory holding data).
    Import(ImportArgs),
    /// Measure the disk holding DIR (fdatasync latency, O_DIRECT, fallocate, write cache, FUA,
    /// filesystem) and recommend a durability mode, in a few seconds. Creates one temporary file
    /// in DIR and removes it.
    Probe(crate::probe::ProbeArgs),
}

/// A database directory.
#[derive(Debug, Args)]
pub struct DirArgs {
    /// The database directory.
    pub dir: PathBuf,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The database directory.
    pub dir: PathBuf,
    /// Also read every retained version of every key, values on disk included (each read
    /// checks the value's checksum).
    #[arg(long)]
    pub deep: bool,
}

/// How keys and values are given and printed.
#[derive(Debug, Args, Clone, Copy)]
pub struct Encoding {
    /// Keys (given and printed) and values (printed) in hexadecimal; else keys are given as
    /// text and printed with every byte outside printable ASCII escaped (\xNN; a backslash as
    /// \\).
    #[arg(long)]
    pub hex: bool,
}

/// `dump-log`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The database directory.
    pub dir: PathBuf,
    /// Only records of transactions with this LSN or above (either bound leaves out the
    /// records of no transaction: checkpoint, padding, lease, batch-head).
    #[arg(long, value_name = "LSN")]
    pub from_lsn: Option<u64>,
    /// Only records of transactions with this LSN or below (either bound leaves out the
    /// records of no transaction: checkpoint, padding, lease, batch-head).
    #[arg(long, value_name = "LSN")]
    pub to_lsn: Option<u64>,
    /// Only records written by this run.
    #[arg(long, value_name = "RUN")]
    pub run: Option<u64>,
    /// Only records of these kinds (comma-separated): begin, write, delete, commit, abort,
    /// checkpoint, padding, lease, batch-head.
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    pub kind: Vec<String>,
    /// Only writes and deletes of keys starting with this prefix.
    #[arg(long, value_name = "PREFIX")]
    pub key_prefix: Option<String>,
    /// Print values too (else their length).
    #[arg(long)]
    pub values: bool,
    /// How keys and values are given and printed.
    #[command(flatten)]
    pub enc: Encoding,
}

/// `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The database directory.
    pub dir: PathBuf,
    /// The key.
    pub key: String,
    /// Read the key as it was right after the transaction with this LSN.
    #[arg(long, value_name = "LSN")]
    pub at_lsn: Option<u64>,
    /// How keys and values are given and printed.
    #[command(flatten)]
    pub enc: Encoding,
}

/// `scan`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("span").args(["prefix"]).conflicts_with_all(["from", "to"])))]
pub struct ScanArgs {
    /// The database directory.
    pub dir: PathBuf,
    /// First key (inclusive).
    #[arg(long, value_name = "KEY")]
    pub from: Option<String>,
    /// Last key (exclusive).
    #[arg(long, value_name = "KEY")]
    pub to: Option<String>,
    /// Only keys starting with this prefix.
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Stop after this many entries.
    #[arg(long, value_name = "N")]
    pub max: Option<usize>,
    /// Read the database as it was right after the transaction with this LSN.
    #[arg(long, value_name = "LSN")]
    pub at_lsn: Option<u64>,
    /// Print keys only.
    #[arg(long)]
    pub keys_only: bool,
    /// How keys and values are given and printed.
    #[command(flatten)]
    pub enc: Encoding,
}

/// `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The database directory.
    pub dir: PathBuf,
    /// Only keys starting with this prefix (default: every key).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// How keys and values are given and printed.
    #[command(flatten)]
    pub enc: Encoding,
}

/// `repair`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("cut").required(true).args(["truncate_at", "truncate_tail"])))]
pub struct RepairArgs {
    /// The database directory.
    pub dir: PathBuf,
    /// Cut the log at this place: SEGMENT:OFFSET (segment id, byte offset in its file). The
    /// segment keeps its bytes before OFFSET; the bytes from OFFSET on and every later segment
    /// are moved out.
    #[arg(long, value_name = "SEGMENT:OFFSET")]
    pub truncate_at: Option<String>,
    /// Cut the log where `verify` finds the first damage (a torn tail or corruption).
    #[arg(long)]
    pub truncate_tail: bool,
    /// Where the removed bytes go (a new directory; default: <name>.repair-<unix time> beside
    /// DIR, in the parent of DIR's real path, so `repair .` puts it beside the database too).
    #[arg(long, value_name = "DIR")]
    pub side_dir: Option<PathBuf>,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The database directory.
    pub dir: PathBuf,
    /// The file to write ("-": standard output).
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// Every retained version of every key, deletes included (default: the newest value of
    /// each live key).
    #[arg(long)]
    pub versions: bool,
}

/// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The export file ("-": standard input).
    pub file: PathBuf,
    /// The directory of the new database: one that does not exist (it is created) or an empty
    /// one; anything else is refused.
    pub dir: PathBuf,
}
