//! Latency of one durable commit of a ~170-byte record at a time, appended at increasing offsets:
//! raw syscalls against the portable and the io_uring log drivers, buffered and `O_DIRECT`.
//!
//! ```text
//! cargo bench -p ringlog-uring --bench log_sync            # the real run (about a minute)
//! cargo bench -p ringlog-uring --bench log_sync -- --test  # each case once, as a smoke test
//! ```
//!
//! Files live in a temporary directory under `$RINGLOG_BENCH_DIR`, or under the current directory
//! when it is unset — on the disk being measured, never on tmpfs. Each commit is padded to 512
//! bytes (buffered) or 4096 bytes (`O_DIRECT`) and written at the next offset, so no sector that
//! holds an earlier commit is rewritten; the preallocated file wraps around to offset 0 when a run
//! reaches its end.
//!
//! * `raw/pwrite_fdatasync_growing` — `pwrite` + `fdatasync` appending to a file that grows with
//!   every commit (no preallocation: each fdatasync also writes the new size);
//! * `raw/odirect_prealloc_tailblock` — `O_DIRECT` `pwrite` of the next 4 KiB block + `fdatasync`
//!   on a preallocated, zero-filled file;
//! * `{posix,uring}/{write_then_sync,linked,dsync}/{buffered,direct}` — the log drivers'
//!   `write_durable` on the same preallocated, zero-filled file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_main, BenchmarkId, Criterion};
use ringlog_format::AlignedBuf;
use ringlog_uring::{
    probe_uring, LogDriver, OpenOptions, PosixDriver, PosixFile, SyncStrategy, UringDriver, VFile,
};

/// Bytes of the record in each commit.
const RECORD: usize = 170;
/// Size of the preallocated, zero-filled file.
const FILE_LEN: u64 = 256 << 20;

/// Offsets of successive commits: `step` apart, wrapping to 0 at `end`.
struct Cursor {
    next: u64,
    step: u64,
    end: u64,
}

impl Cursor {
    fn new(step: usize, end: u64) -> Cursor {
        Cursor {
            next: 0,
            step: step as u64,
            end,
        }
    }

    fn advance(&mut self) -> u64 {
        let at = self.next;
        self.next += self.step;
        if self.next + self.step > self.end {
            self.next = 0;
        }
        at
    }
}

/// One 4 KiB-aligned block holding a record followed by zero padding.
fn record_block() -> AlignedBuf {
    let mut buf = AlignedBuf::with_capacity(4096);
    let record: Vec<u8> = (0..RECORD).map(|i| (i * 7 + 1) as u8).collect();
    buf.extend_from_slice(&record);
    buf.extend_zeroed(4096 - RECORD);
    buf
}

fn bench_dir() -> tempfile::TempDir {
    let parent = std::env::var_os("RINGLOG_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    tempfile::Builder::new()
        .prefix("ringlog-bench-")
        .tempdir_in(&parent)
        .unwrap_or_else(|e| {
            panic!(
                "cannot create a bench directory in {}: {e}",
                parent.display()
            )
        })
}

/// A `FILE_LEN` file with every block allocated and written with zeros, then fsynced: later
/// fdatasyncs have no allocation or size change to record.
fn zero_filled(path: &Path) {
    let file = PosixFile::open(
        path,
        OpenOptions {
            write: true,
            create: true,
            direct: false,
        },
    )
    .unwrap();
    file.allocate(FILE_LEN).unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < FILE_LEN {
        file.write_all_at(&zeros, off).unwrap();
        off += zeros.len() as u64;
    }
    file.sync_all().unwrap();
}

fn open(path: &Path, direct: bool) -> PosixFile {
    let file = PosixFile::open(
        path,
        OpenOptions {
            write: true,
            create: false,
            direct,
        },
    )
    .unwrap();
    if direct && file.direct_io().is_none() {
        eprintln!(
            "note: O_DIRECT refused on {}; the direct cases run buffered",
            path.display()
        );
    }
    file
}

/// A log driver to measure and the names of its two sync strategies.
struct Backend {
    name: &'static str,
    new_driver: fn() -> Box<dyn LogDriver>,
    cases: [(&'static str, SyncStrategy); 2],
}

fn log_sync(c: &mut Criterion) {
    let dir = bench_dir();
    let block = record_block();
    let prealloc = dir.path().join("prealloc");
    zero_filled(&prealloc);

    // Files, drivers and offsets live across criterion's samples (it calls each routine once
    // per sample), so every case keeps appending rather than restarting at offset 0.
    let mut raw = c.benchmark_group("raw");
    let growing = File::create(dir.path().join("growing")).unwrap();
    let mut at = Cursor::new(512, u64::MAX);
    raw.bench_function("pwrite_fdatasync_growing", |b| {
        b.iter(|| {
            growing
                .write_all_at(&block.as_slice()[..512], at.advance())
                .unwrap();
            growing.sync_data().unwrap();
        });
    });
    let direct = open(&prealloc, true);
    let mut at = Cursor::new(4096, FILE_LEN);
    raw.bench_function("odirect_prealloc_tailblock", |b| {
        b.iter(|| {
            direct
                .file()
                .write_all_at(block.as_slice(), at.advance())
                .unwrap();
            direct.file().sync_data().unwrap();
        });
    });
    raw.finish();

    let mut backends = vec![Backend {
        name: "posix",
        new_driver: || Box::new(PosixDriver::new()),
        cases: [
            ("write_then_sync", SyncStrategy::WriteThenSync),
            ("dsync", SyncStrategy::Dsync),
        ],
    }];
    match probe_uring() {
        Ok(_) => backends.push(Backend {
            name: "uring",
            new_driver: || Box::new(UringDriver::new().unwrap()),
            cases: [
                ("linked", SyncStrategy::WriteThenSync),
                ("dsync", SyncStrategy::Dsync),
            ],
        }),
        Err(why) => eprintln!("skipping the uring cases: io_uring unavailable ({why})"),
    }
    for Backend {
        name: backend,
        new_driver,
        cases,
    } in backends
    {
        let mut group = c.benchmark_group(backend);
        for (name, strategy) in cases {
            for direct in [false, true] {
                let (mode, len) = if direct {
                    ("direct", 4096)
                } else {
                    ("buffered", 512)
                };
                let file = open(&prealloc, direct);
                let mut driver = new_driver();
                let buf = &block.as_slice()[..len];
                let mut at = Cursor::new(len, FILE_LEN);
                group.bench_function(BenchmarkId::new(name, mode), |b| {
                    b.iter(|| {
                        driver
                            .write_durable(&file, at.advance(), buf, strategy)
                            .unwrap()
                    });
                });
            }
        }
        group.finish();
    }
}

/// The whole suite, configured so that one run takes about a minute.
fn benches() {
    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    log_sync(&mut c);
}

criterion_main!(benches);
