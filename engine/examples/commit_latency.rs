//! Strict single-writer commit latency of every engine I/O configuration against two raw
//! durable-append loops, measured **interleaved**: each round runs every configuration for a
//! burst of commits, so the drift of a shared, noisy machine affects all of them alike and the
//! ratios are fair.
//!
//! ```text
//! cargo run --release -p ringlog-db --example commit_latency -- [--rounds N] [--burst N]
//! ```
//!
//! * `raw (a)` — `pwrite` + `fdatasync` appending 512 bytes to a growing file;
//! * `raw (b)` — `O_DIRECT` write of the next 4 KiB block + `fdatasync` on a preallocated,
//!   zero-filled file;
//! * `engine …` — `Db::put` (16-byte key, 100-byte value) in a `Strict` database, per I/O path,
//!   sync strategy and O_DIRECT setting.
//!
//! Files go to a temporary directory under the current directory (use a real disk, not tmpfs).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use ringlog_db::{Db, Durability, IoChoice, Options, SyncStrategy};
use ringlog_format::AlignedBuf;

trait Committer {
    fn name(&self) -> String;
    fn commit(&mut self, i: u64);
}

/// (a): appends to a growing file.
struct Growing {
    file: File,
    at: u64,
    block: Vec<u8>,
}

impl Committer for Growing {
    fn name(&self) -> String {
        "raw (a) pwrite+fdatasync, growing file".into()
    }
    fn commit(&mut self, _: u64) {
        self.file
            .write_all_at(&self.block, self.at)
            .expect("pwrite");
        self.file.sync_data().expect("fdatasync");
        self.at += self.block.len() as u64;
    }
}

/// (b): O_DIRECT block writes into a preallocated, zero-filled file.
struct Direct {
    file: File,
    at: u64,
    len: u64,
    block: AlignedBuf,
}

impl Committer for Direct {
    fn name(&self) -> String {
        "raw (b) O_DIRECT 4K+fdatasync, prealloc".into()
    }
    fn commit(&mut self, _: u64) {
        self.file
            .write_all_at(self.block.as_slice(), self.at)
            .expect("O_DIRECT pwrite");
        self.file.sync_data().expect("fdatasync");
        self.at = (self.at + 4096) % self.len;
    }
}

struct Engine {
    db: Db,
    label: String,
}

impl Committer for Engine {
    fn name(&self) -> String {
        self.label.clone()
    }
    fn commit(&mut self, i: u64) {
        let mut key = *b"key-------------";
        key[8..].copy_from_slice(&i.to_be_bytes());
        self.db.put(&key, &[0x5a; 100]).expect("commit");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rounds = 20u32;
    let mut burst = 100u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().ok_or("--rounds needs a number")?.parse()?,
            "--burst" => burst = args.next().ok_or("--burst needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let tmp = tempfile::tempdir_in(std::env::current_dir()?)?;
    let dir: &Path = tmp.path();

    let mut block = AlignedBuf::with_capacity(4096);
    block.extend_from_slice(&[0x5a; 168]);
    block.extend_zeroed(4096 - 168);
    let prealloc_len = 64u64 << 20;
    let direct = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .custom_flags(libc::O_DIRECT)
        .open(dir.join("raw-b"))?;
    let mut zeros = AlignedBuf::with_capacity(1 << 20);
    zeros.extend_zeroed(1 << 20);
    for off in (0..prealloc_len).step_by(1 << 20) {
        direct.write_all_at(zeros.as_slice(), off)?;
    }
    direct.sync_all()?;

    let mut runners: Vec<Box<dyn Committer>> = vec![
        Box::new(Growing {
            file: File::create(dir.join("raw-a"))?,
            at: 0,
            block: block.as_slice()[..512].to_vec(),
        }),
        Box::new(Direct {
            file: direct,
            at: 0,
            len: prealloc_len,
            block,
        }),
    ];
    for io in [IoChoice::Uring, IoChoice::Portable] {
        for strategy in [SyncStrategy::WriteThenSync, SyncStrategy::Dsync] {
            for direct_io in [true, false] {
                let opts = Options::default()
                    .durability(Durability::Strict)
                    .io(io)
                    .sync_strategy(strategy)
                    .direct_io(direct_io)
                    .segment_size(256 << 20);
                let label = format!(
                    "engine {io:8} {strategy:?} {}",
                    if direct_io { "direct" } else { "buffered" }
                );
                match Db::open(dir.join(label.replace(' ', "-")), opts) {
                    Ok(db) => runners.push(Box::new(Engine { db, label })),
                    Err(e) => eprintln!("skipping {label}: {e}"),
                }
            }
        }
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); runners.len()];
    let mut i = 0u64;
    for _ in 0..rounds {
        for (r, s) in runners.iter_mut().zip(samples.iter_mut()) {
            for _ in 0..burst {
                i += 1;
                let t = Instant::now();
                r.commit(i);
                s.push(t.elapsed());
            }
        }
    }
    let p50: Vec<Duration> = samples
        .iter_mut()
        .map(|s| {
            s.sort_unstable();
            percentile(s, 0.5)
        })
        .collect();
    println!(
        "{rounds} rounds x {burst} commits per configuration, interleaved; latency per commit"
    );
    println!(
        "{:44} {:>9} {:>9} {:>9} {:>8} {:>8}",
        "configuration", "p50 µs", "p90 µs", "p99 µs", "/(a)", "/(b)"
    );
    for ((r, s), m) in runners.iter().zip(&samples).zip(&p50) {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "{:44} {:9.1} {:9.1} {:9.1} {:8.2} {:8.2}",
            r.name(),
            us(*m),
            us(percentile(s, 0.9)),
            us(percentile(s, 0.99)),
            us(*m) / us(p50[0]),
            us(*m) / us(p50[1])
        );
    }
    Ok(())
}
