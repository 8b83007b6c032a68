//! How a disk serves concurrent durable writes: N threads each write 4 KiB with `O_DIRECT` at
//! their own offsets of one preallocated, zero-filled file and `fdatasync` after every write, for
//! a fixed time; prints write + fdatasync pairs per second for N = 1, 2, 4, 8.
//!
//! It tells whether keeping several log rounds in flight can pay on this disk (ringlog's
//! `Options::rounds_in_flight`): if 4 threads complete far more pairs per second than one, the
//! device serves concurrent flushes; whether ringlog's commits can use that also depends on the
//! CPU (docs/BENCHMARKS.md, "Session 9").
//!
//! ```sh
//! cargo run --release -p ringlog-bench --example flush_concurrency -- [DIR] [SECONDS]
//! ```
//! `DIR` defaults to the current directory (not a tmpfs: it must reach a device), `SECONDS` to 2.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A 4 KiB block aligned for `O_DIRECT`.
#[repr(align(4096))]
struct Block([u8; 4096]);

const FILE_LEN: u64 = 64 << 20;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| ".".into());
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2);
    let path = std::path::Path::new(&dir).join("flush-concurrency.dat");
    {
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        let zeros = vec![0u8; 1 << 20];
        for i in 0..FILE_LEN / (1 << 20) {
            f.write_all_at(&zeros, i << 20)?;
        }
        f.sync_all()?;
    }
    println!("{}: {secs} s per row", path.display());
    println!("threads  write+fdatasync/s  per thread");
    for threads in [1usize, 2, 4, 8] {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for t in 0..threads as u64 {
            let (stop, done, path) = (stop.clone(), done.clone(), path.clone());
            handles.push(std::thread::spawn(move || -> std::io::Result<()> {
                let f = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(&path)?;
                let block = Box::new(Block([0xA5; 4096]));
                // Each thread cycles through its own 1,024 blocks.
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    f.write_all_at(&block.0, (t * 1024 + i % 1024) * 4096)?;
                    f.sync_data()?;
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                Ok(())
            }));
        }
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().expect("writer thread")?;
        }
        let rate = done.load(Ordering::Relaxed) as f64 / secs as f64;
        println!(
            "{threads:>7}  {rate:>17.0}  {:>10.0}",
            rate / threads as f64
        );
    }
    std::fs::remove_file(&path)
}
