//! Writes records to a database in a temporary directory (or `--dir PATH`), closes it, reopens
//! it and prints what recovery found: the checkpoint it loaded (a clean close of a run that
//! wrote at least 1 MiB of log takes one, and the open then replays no log at all) and the log
//! it replayed after it.
//!
//! ```text
//! cargo run --release -p ringlog-db --example recover -- [--records N] [--dir PATH]
//! ```

use std::time::Instant;

use ringlog_db::{Db, Durability, Options};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut records: u64 = 200_000;
    let mut dir_arg = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--records" => records = args.next().ok_or("--records needs a number")?.parse()?,
            "--dir" => dir_arg = Some(args.next().ok_or("--dir needs a path")?),
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: recover [--records N] [--dir PATH]"
                )
                .into())
            }
        }
    }
    let tmp = tempfile::tempdir_in(std::env::current_dir()?)?;
    let dir = dir_arg
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("db"));

    let opts = Options::with_durability(Durability::BUFFERED);
    let db = Db::open(&dir, opts.clone())?;
    let backend = db
        .stats()
        .backend
        .map(|b| format!("{} ({})", b.kind, b.reason))
        .unwrap_or_default();
    let started = Instant::now();
    let value = [0x42u8; 100];
    for i in 0..records {
        db.put(format!("key-{i:012}").as_bytes(), &value)?;
    }
    let mut tx = db.begin();
    tx.put(b"txn-a", b"1")?;
    tx.put(b"txn-b", b"2")?;
    let last = tx.commit_with(Durability::Strict)?;
    let wrote = started.elapsed();
    let stats = db.stats();
    db.close()?;

    let started = Instant::now();
    let db = Db::open(&dir, opts)?;
    let first = db.get(b"txn-b")?.ok_or("txn-b missing after recovery")?;
    let reopen = started.elapsed();
    let r = db.recovery_stats();
    assert_eq!(first.lsn(), last, "recovered version differs");

    println!("directory          {}", dir.display());
    println!("I/O backend        {backend}");
    println!(
        "records written    {} puts + 1 transaction in {:.3} s ({:.0} puts/s)",
        records,
        wrote.as_secs_f64(),
        records as f64 / wrote.as_secs_f64()
    );
    println!(
        "syncs              {} (mean {:?}, max {:?})",
        stats.syncs, stats.mean_sync_latency, stats.max_sync_latency
    );
    if r.checkpoint_lsn > 0 {
        println!(
            "checkpoint loaded  at LSN {} with {} keys{}",
            r.checkpoint_lsn,
            r.checkpoint_keys,
            if r.segments == 0 {
                " (no log after it: nothing to replay)"
            } else {
                ""
            }
        );
    } else {
        println!("checkpoint loaded  none (the whole log is replayed)");
    }
    println!("segments replayed  {}", r.segments);
    println!("txns applied       {}", r.transactions_applied);
    println!(
        "txns discarded     {} incomplete, {} aborted, {} orphaned records",
        r.transactions_incomplete, r.transactions_aborted, r.orphaned_records
    );
    println!("bytes truncated    {}", r.bytes_truncated);
    println!("last LSN           {}", r.last_lsn);
    println!("keys               {}", r.keys);
    println!(
        "recovery time      {:.3} s (of it: waiting for log reads {:.3} s, decoding the log {:.3} s, \
         building the index from it {:.3} s; the rest is the checkpoint's load)",
        r.duration.as_secs_f64(),
        r.read_time.as_secs_f64(),
        r.decode_time.as_secs_f64(),
        r.build_time.as_secs_f64()
    );
    println!("reopen to 1st read {:.3} s", reopen.as_secs_f64());
    db.close()?;
    Ok(())
}
