//! The cold open of a database left as a crash leaves it: one checkpoint of `KEYS` keys (16-byte
//! keys, 100-byte values, after one overwrite of each on average), then `TAIL` more random
//! overwrites in the log after it, closed without the close-time checkpoint. Prints each open's
//! time (the page cache dropped before each), the recovery's split, and the time to read the
//! same files cold, sequentially (the floor the `history` workload of `ringlog-bench` compares
//! with).
//!
//! Unlike `ringlog-bench --workload history`, whose log after the last background checkpoint
//! is wherever the run happened to stop, the tail here is of a chosen size, so that builds can
//! be compared on the same state (docs/BENCHMARKS.md, issue 12, "Session 10").
//!
//! ```sh
//! cargo run --release -p ringlog-bench --example open_tail -- [DIR] [KEYS] [TAIL] [OPENS]
//! ```
//! `DIR` defaults to a new directory under the current one (it must reach a device: the page
//! cache is dropped with `posix_fadvise`), `KEYS` to 1,000,000, `TAIL` to 150,000, `OPENS` to 3.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ringlog_db::{Db, Durability, Options};

fn options() -> Options {
    Options::default()
        .durability(Durability::BUFFERED)
        .checkpoint_on_close(false)
        .checkpoint_bytes(u64::MAX)
}

/// Writes every file of `dir` back and drops it from the page cache.
fn drop_cache(dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        if path.is_file() {
            let f = std::fs::File::open(&path)?;
            f.sync_all()?;
            // SAFETY: a valid descriptor, whole-file range; advice only.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
    Ok(())
}

/// Reads every file of `dir` sequentially in 1 MiB pieces: (bytes, milliseconds).
fn read_all(dir: &Path) -> std::io::Result<(u64, f64)> {
    use std::io::Read;
    let started = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        if path.is_file() {
            let mut f = std::fs::File::open(&path)?;
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
        }
    }
    Ok((total, started.elapsed().as_secs_f64() * 1e3))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("open_tail.{}", std::process::id())));
    let keys: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let tail: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(150_000);
    let opens: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3);
    let _ = std::fs::remove_dir_all(&dir);
    let value = [7u8; 100];
    let key = |i: u64| format!("{i:016}");
    let db = Db::open(&dir, options())?;
    for i in 0..keys {
        db.put(key(i).as_bytes(), &value)?;
    }
    let mut x = ringlog_rng::Rng::new(88_172_645_463_325_252u64); // the overwritten keys
    for _ in 0..keys {
        db.put(key(x.below(keys)).as_bytes(), &value)?;
    }
    db.checkpoint()?;
    for _ in 0..tail {
        db.put(key(x.below(keys)).as_bytes(), &value)?;
    }
    db.close()?;
    drop(db);
    // Every open reopens a copy of this state (an open may write: a new segment, a seal).
    let state = dir.with_extension("state");
    let _ = std::fs::remove_dir_all(&state);
    std::fs::rename(&dir, &state)?;
    println!("{keys} keys, a checkpoint, then {tail} overwrites in the log; cold opens:");
    for _ in 0..opens {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir)?;
        for e in std::fs::read_dir(&state)? {
            let e = e?;
            std::fs::copy(e.path(), dir.join(e.file_name()))?;
        }
        drop_cache(&dir)?;
        let (bytes, floor) = read_all(&dir)?;
        drop_cache(&dir)?;
        let started = Instant::now();
        let db = Db::open(&dir, options())?;
        let open = started.elapsed().as_secs_f64() * 1e3;
        let r = db.recovery_stats();
        println!(
            "  open {open:.0} ms (reads waited {:.0}, decoding {:.0}, building {:.0}); floor {floor:.0} ms \
             ({:.1} MB); open / floor {:.2}; {} transactions after the checkpoint",
            r.read_time.as_secs_f64() * 1e3,
            r.decode_time.as_secs_f64() * 1e3,
            r.build_time.as_secs_f64() * 1e3,
            bytes as f64 / 1e6,
            open / floor,
            r.transactions_applied,
        );
        drop(db);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&state);
    Ok(())
}
