//! `ringlog probe [DIR]`: measures the filesystem and disk holding DIR in a few seconds and
//! recommends a durability mode.
//!
//! What it looks at: the filesystem (`statfs`), the I/O backend ringlog would pick, whether
//! `O_DIRECT` and `fallocate` work there, the block device's write cache as sysfs describes it,
//! and — the number that matters — how long a 4 KiB write followed by `fdatasync` takes, with
//! buffered I/O and (where the filesystem allows it) with `O_DIRECT`, as ringlog's log writes.
//!
//! DIR need not hold a database. The probe creates one temporary file in it (named
//! `.ringlog-probe-…`), preallocates 1 MiB by writing zeros (as ringlog prepares a log segment),
//! appends 4 KiB blocks within that region, and removes the file at the end, on error paths too.
//! It writes nothing else.

use std::alloc::{self, Layout};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Size of each timed write, and the `O_DIRECT` alignment used.
const BLOCK: usize = 4096;
/// The preallocated region the timed writes append within (then wrap around).
const REGION: u64 = 1 << 20;
/// Prefix of the temporary file's name.
const TEMP_PREFIX: &str = ".ringlog-probe-";
/// `statfs` magic of ramfs, which [`ringlog_uring::FsInfo`] does not name.
const RAMFS_MAGIC: u64 = 0x8584_58f6;
/// fdatasync p50 up to which Strict is recommended outright.
const FAST_SYNC_US: u64 = 1000;

/// Arguments of `ringlog probe`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// Directory whose filesystem and disk to measure (default: the current directory). A temporary file is created in it and removed.
    pub dir: Option<PathBuf>,
    /// fdatasync calls to time (at most; at least 1).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub syncs: u32,
    /// Stop timing after this many seconds even if fewer syncs were made (more than 0).
    #[arg(long, default_value_t = 3.0, value_parser = positive_seconds)]
    pub max_seconds: f64,
}

/// `--max-seconds`: a finite number of seconds above 0.
fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(_) => Err(format!("{s} is not a number of seconds above 0")),
        Err(e) => Err(format!("{s}: {e}")),
    }
}

/// What `ringlog probe` measured (also its JSON output, field names as serialized).
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// The directory probed (absolute when it could be resolved).
    pub dir: String,
    /// The filesystem holding it.
    pub filesystem: Filesystem,
    /// The I/O backend ringlog would choose (`IoChoice::Auto`).
    pub io_backend: IoBackend,
    /// Whether a file there can be opened with `O_DIRECT` and written with an aligned 4 KiB block.
    pub o_direct: Support,
    /// Whether `fallocate(fd, 0, 0, 1 MiB)` works there.
    pub fallocate: Support,
    /// The block device behind the filesystem, as far as sysfs tells.
    pub device: Device,
    /// Timings of a 4 KiB write followed by `fdatasync`.
    pub fdatasync: Fdatasync,
    /// The recommended durability mode and why.
    pub recommendation: Recommendation,
}

/// The filesystem holding the probed directory.
#[derive(Debug, Clone, Serialize)]
pub struct Filesystem {
    /// Short name (`ext4`, `tmpfs`, `fuse`, ...) or the unknown `statfs` magic.
    pub name: String,
    /// The `statfs` magic (`f_type`).
    pub magic: Option<u64>,
    /// Its class.
    pub kind: FsKind,
    /// Whether ringlog trusts a completed `RWF_DSYNC` write to be durable there (else it follows
    /// each log write with an `fdatasync`).
    pub dsync_durable: bool,
}

/// The class of a filesystem, as far as durability is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FsKind {
    /// tmpfs or ramfs: memory, nothing survives a reboot.
    #[serde(rename = "tmpfs")]
    Tmpfs,
    /// A FUSE filesystem: durability is whatever its daemon provides.
    #[serde(rename = "fuse")]
    Fuse,
    /// NFS, CIFS/SMB, 9p, Ceph or AFS: durability is whatever the server provides.
    #[serde(rename = "network")]
    Network,
    /// overlayfs: writes go to the upper layer's filesystem.
    #[serde(rename = "overlayfs")]
    Overlay,
    /// Anything else: a filesystem on a local block device.
    #[serde(rename = "local")]
    Local,
}

impl FsKind {
    /// The class of the filesystem named `name` (as [`ringlog_uring::FsInfo`] names it) with
    /// `statfs` magic `magic`.
    pub fn classify(name: &str, magic: Option<u64>) -> FsKind {
        match name {
            "tmpfs" => FsKind::Tmpfs,
            "fuse" => FsKind::Fuse,
            "nfs" | "cifs" | "smb2" | "9p" | "ceph" | "afs" => FsKind::Network,
            "overlayfs" => FsKind::Overlay,
            _ if magic == Some(RAMFS_MAGIC) => FsKind::Tmpfs,
            _ => FsKind::Local,
        }
    }
}

impl fmt::Display for FsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsKind::Tmpfs => "memory",
            FsKind::Fuse => "FUSE",
            FsKind::Network => "network",
            FsKind::Overlay => "overlayfs",
            FsKind::Local => "local",
        })
    }
}

/// The I/O backend ringlog would choose.
#[derive(Debug, Clone, Serialize)]
pub struct IoBackend {
    /// `io_uring` or `portable` (or `unavailable` when selection failed, e.g. a bad `RINGLOG_IO`).
    pub kind: String,
    /// Why it was chosen.
    pub reason: String,
}

/// Whether an operation works on this filesystem.
#[derive(Debug, Clone, Serialize)]
pub struct Support {
    /// It worked.
    pub supported: bool,
    /// The error when it did not (`EINVAL: Invalid argument`, `EOPNOTSUPP: ...`).
    pub error: Option<String>,
}

/// The block device behind the probed directory; every field is `None` when unknown.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Device {
    /// Kernel name (`sda1 (partition of sda)`, `dm-0 (vg-root)`, `nvme0n1`).
    pub name: Option<String>,
    /// `major:minor`.
    pub dev: Option<String>,
    /// `queue/write_cache`: `write back` (a volatile cache the kernel flushes) or `write through`.
    pub write_cache: Option<String>,
    /// `queue/fua`: whether the device accepts Force Unit Access writes.
    pub fua: Option<bool>,
    /// `queue/rotational` (virtual disks often claim to be rotational).
    pub rotational: Option<bool>,
    /// Why the device, or part of what is known of it, is unknown.
    pub note: Option<String>,
}

/// Timings of a 4 KiB write followed by `fdatasync`.
#[derive(Debug, Clone, Serialize)]
pub struct Fdatasync {
    /// Syncs asked for (`--syncs`); each loop stops earlier when the time budget is spent.
    pub requested: u32,
    /// Buffered `pwrite` + `fdatasync`.
    pub buffered: Latency,
    /// `O_DIRECT` `pwrite` + `fdatasync`, when `O_DIRECT` works.
    pub direct: Option<Latency>,
}

/// Latency distribution of one timing loop, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Latency {
    /// Samples taken.
    pub count: u32,
    /// Fastest.
    pub min_us: u64,
    /// Median (the sample at index ceil(0.5 n) - 1 of the sorted samples).
    pub p50_us: u64,
    /// 99th percentile (the sample at index ceil(0.99 n) - 1).
    pub p99_us: u64,
    /// Slowest.
    pub max_us: u64,
}

impl Latency {
    /// The distribution of `samples_ns` (nanoseconds), or `None` when there are none.
    fn from_samples(mut samples_ns: Vec<u64>) -> Option<Latency> {
        samples_ns.sort_unstable();
        let us = |ns: u64| ns.saturating_add(500) / 1000;
        Some(Latency {
            count: u32::try_from(samples_ns.len()).unwrap_or(u32::MAX),
            min_us: us(*samples_ns.first()?),
            p50_us: us(percentile(&samples_ns, 50)?),
            p99_us: us(percentile(&samples_ns, 99)?),
            max_us: us(*samples_ns.last()?),
        })
    }
}

/// The durability mode recommended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `Durability::Strict`.
    Strict,
    /// `Durability::Buffered` with the window in [`Recommendation::window_ms`].
    Buffered,
    /// Nothing survives a reboot whatever the mode: as durable as `Durability::InMemory`.
    InMemoryEquivalent,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Strict => "Strict",
            Mode::Buffered => "Buffered",
            Mode::InMemoryEquivalent => "InMemory-equivalent",
        })
    }
}

/// A recommended durability mode, with the reasoning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recommendation {
    /// The mode.
    pub mode: Mode,
    /// For `Buffered`: the suggested `interval`, in milliseconds.
    pub window_ms: Option<u64>,
    /// Why, with the numbers behind it.
    pub reason: String,
    /// Further facts that bear on it (write cache, overlayfs, ...).
    pub notes: Vec<String>,
    /// Which timing loop the numbers come from: `direct` (`O_DIRECT`, as ringlog writes its log
    /// where the filesystem allows) or `buffered`.
    pub based_on: String,
}

/// The disk's write cache, as the recommendation needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteCache {
    /// Not known.
    Unknown,
    /// No volatile cache (the kernel sends no flushes).
    WriteThrough,
    /// A volatile cache; `fua` says whether the device accepts FUA writes.
    WriteBack { fua: Option<bool> },
}

impl WriteCache {
    fn of(device: &Device) -> WriteCache {
        match device.write_cache.as_deref() {
            Some("write back") => WriteCache::WriteBack { fua: device.fua },
            Some("write through") => WriteCache::WriteThrough,
            _ => WriteCache::Unknown,
        }
    }
}

/// The probe's usage errors, as every command's (exit 2): DIR missing or not a directory.
pub fn check_dir(args: &ProbeArgs) -> Result<(), crate::Failure> {
    let dir = args.dir.as_deref().unwrap_or(Path::new("."));
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(crate::Failure::Usage(format!(
            "probe: {} is not a directory",
            dir.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(crate::Failure::Usage(format!(
            "probe: {}: no such directory",
            dir.display()
        ))),
        // Anything else is the probe's to report (exit 1).
        _ => Ok(()),
    }
}

/// Runs the probe. Errors: DIR missing / not a directory / the temp file cannot be created or written (io::Error with context in the message).
pub fn run(args: &ProbeArgs) -> io::Result<ProbeReport> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let meta = fs::metadata(&dir)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot probe {}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("cannot probe {}: not a directory", dir.display()),
        ));
    }
    let shown = fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());

    let info = ringlog_uring::FsInfo::of_path(&dir)
        .map_err(|e| io::Error::new(e.kind(), format!("statfs {}: {e}", dir.display())))?;
    let kind = FsKind::classify(&info.name, info.magic);
    let filesystem = Filesystem {
        name: info.name.clone(),
        magic: info.magic,
        kind,
        dsync_durable: info.dsync_durable,
    };

    let io_backend = match ringlog_uring::select(ringlog_uring::IoChoice::Auto) {
        Ok(vfs) => {
            let b = vfs.backend();
            IoBackend {
                kind: b.kind.to_string(),
                reason: b.reason,
            }
        }
        Err(e) => IoBackend {
            kind: "unavailable".into(),
            reason: e.to_string(),
        },
    };

    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok();
    let device = find_device(
        Path::new("/sys/dev/block"),
        mountinfo.as_deref(),
        meta.dev(),
        &shown,
    );

    let budget =
        Duration::try_from_secs_f64(args.max_seconds).unwrap_or(if args.max_seconds > 0.0 {
            Duration::MAX
        } else {
            Duration::ZERO
        });
    let temp = TempFile::create(&dir)?;
    let measured = measure(&temp.path, args.syncs, budget);
    // The files are closed; remove the temporary file whatever happened.
    let removed = temp.remove();
    let m = measured?;
    removed?;

    let (basis, based_on) = match &m.direct {
        Some(d) => (*d, "direct"),
        None => (m.buffered, "buffered"),
    };
    let mut recommendation = recommend(kind, basis.p50_us, basis.p99_us, WriteCache::of(&device));
    recommendation.based_on = based_on.into();

    Ok(ProbeReport {
        dir: shown.display().to_string(),
        filesystem,
        io_backend,
        o_direct: m.o_direct,
        fallocate: m.fallocate,
        device,
        fdatasync: Fdatasync {
            requested: args.syncs,
            buffered: m.buffered,
            direct: m.direct,
        },
        recommendation,
    })
}

/// The human-readable report (a few aligned lines: what was measured, then the recommendation and why).
pub fn print_text(r: &ProbeReport, out: &mut dyn Write) -> io::Result<()> {
    const W: usize = 18;
    writeln!(out, "ringlog probe of {}", r.dir)?;

    let fs = &r.filesystem;
    let magic = fs
        .magic
        .map(|m| format!(", magic {m:#x}"))
        .unwrap_or_default();
    let dsync = if fs.dsync_durable {
        "RWF_DSYNC trusted"
    } else {
        "RWF_DSYNC not trusted, fdatasync used"
    };
    writeln!(
        out,
        "  {:<W$}{} ({}{magic}); {dsync}",
        "filesystem", fs.name, fs.kind
    )?;

    let d = &r.device;
    let yes_no = |b: Option<bool>| match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    };
    match &d.name {
        Some(name) => {
            let dev = d
                .dev
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            let cache = d
                .write_cache
                .as_deref()
                .map(|c| format!("\"{c}\""))
                .unwrap_or_else(|| "unknown".into());
            writeln!(
                out,
                "  {:<W$}{name}{dev}: write cache {cache}, FUA {}, rotational {}",
                "device",
                yes_no(d.fua),
                yes_no(d.rotational)
            )?;
            if let Some(note) = &d.note {
                writeln!(out, "  {:<W$}{note}", "")?;
            }
        }
        None => writeln!(
            out,
            "  {:<W$}unknown ({})",
            "device",
            d.note.as_deref().unwrap_or("not found")
        )?,
    }

    writeln!(
        out,
        "  {:<W$}{} ({})",
        "I/O backend", r.io_backend.kind, r.io_backend.reason
    )?;
    let support = |s: &Support| match (&s.error, s.supported) {
        (None, true) => "yes".to_string(),
        (Some(e), true) => format!("yes, but {e}"),
        (Some(e), false) => format!("no ({e})"),
        (None, false) => "no".to_string(),
    };
    writeln!(out, "  {:<W$}{}", "O_DIRECT", support(&r.o_direct))?;
    writeln!(out, "  {:<W$}{}", "fallocate", support(&r.fallocate))?;

    let f = &r.fdatasync;
    let line = |l: &Latency| {
        format!(
            "{} of {} syncs: p50 {}, p99 {}, max {}",
            l.count,
            f.requested,
            fmt_us(l.p50_us),
            fmt_us(l.p99_us),
            fmt_us(l.max_us)
        )
    };
    writeln!(
        out,
        "  {:<W$}buffered  {}",
        "4 KiB write+sync",
        line(&f.buffered)
    )?;
    if let Some(direct) = &f.direct {
        writeln!(out, "  {:<W$}O_DIRECT  {}", "", line(direct))?;
    }

    let rec = &r.recommendation;
    let window = rec
        .window_ms
        .map(|w| format!(", window {w} ms"))
        .unwrap_or_default();
    let basis = if rec.based_on == "direct" {
        "O_DIRECT"
    } else {
        "buffered"
    };
    writeln!(
        out,
        "{:<W2$}{}{window} (from the {basis} timings)",
        "recommendation",
        rec.mode,
        W2 = W + 2
    )?;
    writeln!(out, "  {:<W$}{}", "why", rec.reason)?;
    for note in &rec.notes {
        writeln!(out, "  {:<W$}{note}", "note")?;
    }
    Ok(())
}

/// The recommendation for a filesystem of class `fs` where a 4 KiB write + `fdatasync` takes
/// `p50_us` (median) and `p99_us` microseconds, on a disk whose write cache is `cache`. Pure, so
/// that it can be tested; [`Recommendation::based_on`] is left empty for the caller.
fn recommend(fs: FsKind, p50_us: u64, p99_us: u64, cache: WriteCache) -> Recommendation {
    let p50 = fmt_us(p50_us);
    let p99 = fmt_us(p99_us);
    let mut notes = Vec::new();
    if fs != FsKind::Tmpfs {
        match cache {
            WriteCache::WriteBack { fua: Some(false) } => notes.push(
                "write cache \"write back\" without FUA: each fdatasync also issues a cache flush \
                 (included in the latency)"
                    .to_string(),
            ),
            WriteCache::WriteBack { fua: _ } => notes.push(
                "write cache \"write back\": fdatasync issues a cache flush (included in the \
                 latency)"
                    .to_string(),
            ),
            WriteCache::WriteThrough => notes.push(
                "write cache \"write through\": the kernel sends no cache flushes".to_string(),
            ),
            WriteCache::Unknown => {}
        }
    }
    if fs == FsKind::Overlay {
        notes.push(
            "overlayfs: writes and fdatasyncs go to the upper layer's filesystem; that is what \
             was timed"
                .to_string(),
        );
    }
    let (mode, window_ms, reason) = match fs {
        FsKind::Tmpfs => (
            Mode::InMemoryEquivalent,
            None,
            format!(
                "nothing on tmpfs survives a reboot; Strict costs little here (p50 {p50}) but \
                 protects nothing"
            ),
        ),
        FsKind::Fuse | FsKind::Network => {
            let who = if fs == FsKind::Fuse {
                "on FUSE, fdatasync reaches stable storage only if the FUSE daemon makes it so"
            } else {
                "on a network filesystem, fdatasync reaches stable storage only if the server \
                 makes it so"
            };
            (
                Mode::Strict,
                None,
                format!(
                    "{who}; Strict asks for the most that can be had (a commit costs ~{p50}, \
                     p99 {p99})"
                ),
            )
        }
        FsKind::Local | FsKind::Overlay if p50_us <= FAST_SYNC_US => (
            Mode::Strict,
            None,
            format!(
                "a durable commit costs ~{p50} (p99 {p99}); group commit amortises it across \
                 concurrent writers"
            ),
        ),
        FsKind::Local | FsKind::Overlay => {
            let window = buffered_window_ms(p99_us);
            (
                Mode::Buffered,
                Some(window),
                format!(
                    "a write + fdatasync takes {p50} (p50), {p99} (p99): Strict if every \
                     acknowledged commit must survive power loss (each costs ~{p50}, group \
                     commit shares it across writers); else Buffered with a window of \
                     {window} ms (≈ 10 × p99) to bound the loss"
                ),
            )
        }
    };
    Recommendation {
        mode,
        window_ms,
        reason,
        notes,
        based_on: String::new(),
    }
}

/// The Buffered window for an fdatasync p99 of `p99_us`: about 10 × p99, rounded up to two
/// significant digits whose second is 0 or 5 (e.g. 21 → 25, 123 → 150), at least 1 ms.
fn buffered_window_ms(p99_us: u64) -> u64 {
    let ms = p99_us.saturating_mul(10).div_ceil(1000).max(1);
    if ms < 10 {
        return ms;
    }
    // The step: 5 in the second significant digit.
    let mut step = 5u64;
    while ms / step >= 20 {
        step = step.saturating_mul(10);
    }
    ms.div_ceil(step).saturating_mul(step)
}

/// The sample at index ceil(pct/100 × n) - 1 of `sorted` (ascending), or `None` when empty.
fn percentile(sorted: &[u64], pct: u32) -> Option<u64> {
    let n = sorted.len();
    let rank = (n.checked_mul(pct as usize)?).div_ceil(100);
    sorted
        .get(rank.saturating_sub(1).min(n.checked_sub(1)?))
        .copied()
}

/// `us` microseconds for people: `812 µs`, `4.3 ms`, `120 ms`.
fn fmt_us(us: u64) -> String {
    if us < 1000 {
        format!("{us} µs")
    } else if us < 100_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{:.0} ms", us as f64 / 1000.0)
    }
}

/// `e` as `EINVAL: Invalid argument` (errno name first, when known).
fn describe(e: &io::Error) -> String {
    let Some(code) = e.raw_os_error() else {
        return e.to_string();
    };
    let name = match code {
        libc::EINVAL => "EINVAL",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOSYS => "ENOSYS",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::ENOSPC => "ENOSPC",
        libc::EIO => "EIO",
        libc::EROFS => "EROFS",
        libc::ENOTTY => "ENOTTY",
        libc::EFBIG => "EFBIG",
        _ => return e.to_string(),
    };
    let text = e.to_string();
    let text = text
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&text);
    format!("{name}: {text}")
}

/// `e` with `what` in front of its message.
fn context(e: io::Error, what: impl fmt::Display) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// The probe's temporary file, removed when dropped (on error paths) or by [`TempFile::remove`].
struct TempFile {
    path: PathBuf,
    removed: bool,
}

impl TempFile {
    /// Creates a new, empty `.ringlog-probe-*` file in `dir` (never an existing one).
    fn create(dir: &Path) -> io::Result<TempFile> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut attempt = 0u32;
        loop {
            let name = format!("{TEMP_PREFIX}{}-{nanos:08x}-{attempt}", std::process::id());
            let path = dir.join(name);
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(_) => {
                    return Ok(TempFile {
                        path,
                        removed: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(e) => {
                    return Err(context(
                        e,
                        format_args!("cannot create a temporary file in {}", dir.display()),
                    ))
                }
            }
        }
    }

    /// Removes the file, reporting a failure.
    fn remove(mut self) -> io::Result<()> {
        self.removed = true;
        fs::remove_file(&self.path).map_err(|e| {
            context(
                e,
                format_args!("cannot remove the temporary file {}", self.path.display()),
            )
        })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.removed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// What [`measure`] found.
struct Measured {
    o_direct: Support,
    fallocate: Support,
    buffered: Latency,
    direct: Option<Latency>,
}

/// Prepares the temporary file at `path` (fallocate, then zero-fill of [`REGION`]), checks
/// `O_DIRECT`, and times up to `syncs` write + fdatasync rounds per I/O mode within `budget` in
/// all. Every file it opens is closed when it returns.
fn measure(path: &Path, syncs: u32, budget: Duration) -> io::Result<Measured> {
    let in_file = |what: &str| format!("{what} the temporary file {}", path.display());
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| context(e, in_file("opening")))?;

    let fallocate = match fallocate(&file, REGION) {
        Ok(()) => Support {
            supported: true,
            error: None,
        },
        Err(e) => Support {
            supported: false,
            error: Some(describe(&e)),
        },
    };
    // Zero-fill the region, as ringlog prepares a segment, so the timed writes overwrite
    // allocated, written blocks and need no metadata update.
    let zeros = vec![0u8; REGION as usize];
    file.write_all_at(&zeros, 0)
        .and_then(|()| file.sync_all())
        .map_err(|e| context(e, in_file("writing")))?;

    let mut buf = AlignedBlock::zeroed();
    let direct_file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .and_then(|f| f.write_all_at(buf.as_slice(), 0).map(|()| f));
    let (mut o_direct, direct_file) = match direct_file {
        Ok(f) => (
            Support {
                supported: true,
                error: None,
            },
            Some(f),
        ),
        Err(e) => (
            Support {
                supported: false,
                error: Some(describe(&e)),
            },
            None,
        ),
    };

    let start = Instant::now();
    let first_budget = if direct_file.is_some() {
        budget / 2
    } else {
        budget
    };
    let buffered = time_syncs(&file, &mut buf, syncs, first_budget)
        .map_err(|e| context(e, in_file("write + fdatasync on")))?;
    drop(file);

    let mut direct = None;
    if let Some(f) = direct_file {
        match time_syncs(&f, &mut buf, syncs, budget.saturating_sub(start.elapsed())) {
            Ok(l) => direct = Some(l),
            Err(e) => o_direct.error = Some(format!("the timing loop failed: {}", describe(&e))),
        }
    }
    Ok(Measured {
        o_direct,
        fallocate,
        buffered,
        direct,
    })
}

/// Times up to `syncs` (at least one) rounds of a 4 KiB `pwrite` appending within [`REGION`]
/// (wrapping around) followed by `fdatasync`, stopping early once `budget` has passed.
fn time_syncs(
    file: &File,
    buf: &mut AlignedBlock,
    syncs: u32,
    budget: Duration,
) -> io::Result<Latency> {
    let blocks = REGION / BLOCK as u64;
    let start = Instant::now();
    let mut samples = Vec::with_capacity(syncs.clamp(1, 100_000) as usize);
    for i in 0..u64::from(syncs.max(1)) {
        if i > 0 && start.elapsed() >= budget {
            break;
        }
        buf.as_mut_slice()[..8].copy_from_slice(&(i + 1).to_le_bytes());
        let offset = (i % blocks) * BLOCK as u64;
        let t = Instant::now();
        file.write_all_at(buf.as_slice(), offset)?;
        file.sync_data()?;
        samples.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    // At least one round ran (or returned its error), so there is a sample.
    Latency::from_samples(samples).ok_or_else(|| io::Error::other("no fdatasync could be timed"))
}

/// `fallocate(fd, 0, 0, len)`, retried on `EINTR`.
fn fallocate(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length out of range"))?;
    loop {
        // SAFETY: `file` owns an open descriptor that stays open for the call; fallocate takes no
        // pointers, so no memory is involved.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One [`BLOCK`]-sized buffer aligned to [`BLOCK`], as `O_DIRECT` requires.
struct AlignedBlock {
    ptr: NonNull<u8>,
}

/// The layout of an [`AlignedBlock`].
const BLOCK_LAYOUT: Layout = match Layout::from_size_align(BLOCK, BLOCK) {
    Ok(layout) => layout,
    Err(_) => panic!("4096 is a valid size and alignment"),
};

impl AlignedBlock {
    /// A zeroed block.
    fn zeroed() -> AlignedBlock {
        // SAFETY: BLOCK_LAYOUT has a non-zero size.
        let p = unsafe { alloc::alloc_zeroed(BLOCK_LAYOUT) };
        match NonNull::new(p) {
            Some(ptr) => AlignedBlock { ptr },
            None => alloc::handle_alloc_error(BLOCK_LAYOUT),
        }
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points to BLOCK_LAYOUT.size() bytes allocated by `zeroed` (so initialised),
        // live until `self` is dropped, and only mutated through `&mut self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), BLOCK_LAYOUT.size()) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only reference to the bytes.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), BLOCK_LAYOUT.size()) }
    }
}

impl Drop for AlignedBlock {
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by `alloc_zeroed(BLOCK_LAYOUT)` and is freed only here, once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), BLOCK_LAYOUT) }
    }
}

/// Major and minor numbers of a Linux `dev_t`.
fn split_dev(dev: u64) -> (u64, u64) {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x00ff);
    (major, minor)
}

/// The block device of directory `dir` (absolute), whose `st_dev` is `dev`, looked up under `sys_dev_block`
/// (`/sys/dev/block`). An anonymous device (major 0: btrfs, tmpfs, overlayfs, FUSE, NFS) is
/// resolved through `mountinfo` (`/proc/self/mountinfo`) when its mount source is a block
/// device. Never fails: what cannot be found is `None`, with a note saying why.
fn find_device(sys_dev_block: &Path, mountinfo: Option<&str>, dev: u64, dir: &Path) -> Device {
    let (mut major, mut minor) = split_dev(dev);
    if major == 0 {
        let mount = mountinfo.and_then(|m| mount_of(m, &format!("{major}:{minor}"), dir));
        let resolved = mount.as_ref().and_then(|(_, source)| {
            let meta = fs::metadata(source).ok()?;
            meta.file_type()
                .is_block_device()
                .then(|| split_dev(meta.rdev()))
        });
        match (resolved, mount) {
            (Some(real), _) => (major, minor) = real,
            (None, Some((fstype, source))) => {
                return Device {
                    note: Some(format!(
                    "{fstype} mount of \"{source}\" (device {major}:{minor}) is not a block device"
                )),
                    ..Device::default()
                }
            }
            (None, None) => {
                return Device {
                    note: Some(format!(
                        "device {major}:{minor} is not a block device and its mount was not found"
                    )),
                    ..Device::default()
                }
            }
        }
    }
    let dev = format!("{major}:{minor}");
    let link = sys_dev_block.join(&dev);
    let node = match fs::canonicalize(&link) {
        Ok(p) => p,
        Err(e) => {
            return Device {
                dev: Some(dev),
                note: Some(format!("{}: {}", link.display(), describe(&e))),
                ..Device::default()
            }
        }
    };
    let base = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string())
    };
    let mut name = base(&node);
    let disk = if node.join("partition").exists() {
        match node.parent() {
            Some(parent) => {
                name = format!("{name} (partition of {})", base(parent));
                parent.to_path_buf()
            }
            None => node.clone(),
        }
    } else {
        node.clone()
    };
    if let Some(dm) = read_trimmed(&disk.join("dm/name")).filter(|s| !s.is_empty()) {
        name = format!("{name} ({dm})");
    }
    let queue = disk.join("queue");
    let flag = |file: &str| match read_trimmed(&queue.join(file)).as_deref() {
        Some("1") => Some(true),
        Some("0") => Some(false),
        _ => None,
    };
    let write_cache = read_trimmed(&queue.join("write_cache"));
    let fua = flag("fua");
    let rotational = flag("rotational");
    let note = if !queue.is_dir() {
        Some(format!("{} not found", queue.display()))
    } else if write_cache.is_none() {
        Some(format!(
            "{} unreadable",
            queue.join("write_cache").display()
        ))
    } else {
        None
    };
    Device {
        name: Some(name),
        dev: Some(dev),
        write_cache,
        fua,
        rotational,
        note,
    }
}

/// The mount in `mountinfo` that holds `dir`: the first whose device is `maj_min`, else (a
/// btrfs subvolume has a device number of its own) the one with the longest mount point
/// containing `dir` (the last of equals, which hides the others). Returns (filesystem type,
/// source).
fn mount_of(mountinfo: &str, maj_min: &str, dir: &Path) -> Option<(String, String)> {
    // (device, mount point, filesystem type, source) of each well-formed line.
    let mounts: Vec<(&str, String, &str, &str)> = mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut left = left.split(' ');
            let dev = left.nth(2)?;
            let mount_point = unescape_mount(left.nth(1)?);
            let mut right = right.split(' ');
            Some((dev, mount_point, right.next()?, right.next()?))
        })
        .collect();
    let by_dev = mounts.iter().find(|m| m.0 == maj_min);
    let by_path = || {
        mounts
            .iter()
            .filter(|m| dir.starts_with(&m.1))
            .max_by_key(|m| m.1.len())
    };
    let (_, _, fstype, source) = by_dev.or_else(by_path)?;
    Some((unescape_mount(fstype), unescape_mount(source)))
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape_mount(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' {
            if let Some(digits) = bytes.get(i + 1..i + 4) {
                if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                    let v = digits
                        .iter()
                        .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                    if let Ok(v) = u8::try_from(v) {
                        out.push(v);
                        i += 4;
                        continue;
                    }
                }
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The contents of `path`, trimmed, or `None` when it cannot be read.
fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path) -> ProbeArgs {
        ProbeArgs {
            dir: Some(dir.to_path_buf()),
            syncs: 5,
            max_seconds: 1.0,
        }
    }

    fn sane(l: &Latency) {
        assert!((1..=5).contains(&l.count), "{l:?}");
        assert!(l.min_us <= l.p50_us, "{l:?}");
        assert!(l.p50_us <= l.p99_us, "{l:?}");
        assert!(l.p99_us <= l.max_us, "{l:?}");
    }

    #[test]
    fn probe_of_a_temporary_directory() {
        let dir = tempfile::tempdir().unwrap();
        let r = run(&args(dir.path())).unwrap();
        assert!(!r.filesystem.name.is_empty());
        assert_eq!(r.fdatasync.requested, 5);
        sane(&r.fdatasync.buffered);
        if let Some(d) = &r.fdatasync.direct {
            assert!(r.o_direct.supported);
            sane(d);
        }
        if !r.o_direct.supported {
            assert!(r.o_direct.error.is_some() && r.fdatasync.direct.is_none());
        }
        assert_eq!(r.fallocate.supported, r.fallocate.error.is_none());
        assert!(!r.io_backend.kind.is_empty());
        assert!(!r.recommendation.reason.is_empty());
        assert!(r.device.name.is_some() || r.device.note.is_some());
        // The temporary file is gone and nothing else was written.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

        let mut text = Vec::new();
        print_text(&r, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("recommendation"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["fdatasync"]["buffered"]["p50_us"].is_u64(), "{json}");
        assert!(json["recommendation"]["mode"].is_string(), "{json}");
    }

    #[test]
    fn zero_syncs_or_budget_still_time_one() {
        let dir = tempfile::tempdir().unwrap();
        let r = run(&ProbeArgs {
            dir: Some(dir.path().to_path_buf()),
            syncs: 0,
            max_seconds: f64::NAN,
        })
        .unwrap();
        assert_eq!(r.fdatasync.buffered.count, 1);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn missing_dir_or_a_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let e = run(&args(&missing)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("missing"), "{e}");

        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        let e = run(&args(&file)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotADirectory);
        // Only the file the test made is there.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn percentiles_of_known_data() {
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 50), Some(50));
        assert_eq!(percentile(&hundred, 99), Some(99));
        assert_eq!(percentile(&hundred, 100), Some(100));
        assert_eq!(percentile(&hundred, 0), Some(1));
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&ten, 50), Some(5));
        assert_eq!(percentile(&ten, 99), Some(10));
        assert_eq!(percentile(&[7], 50), Some(7));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[1, 2, 3], 50), Some(2));
        assert_eq!(percentile(&[], 50), None);

        let l = Latency::from_samples(vec![3_000, 1_000, 2_000, 1_499, 10_600]).unwrap();
        assert_eq!(
            l,
            Latency {
                count: 5,
                min_us: 1,
                p50_us: 2,
                p99_us: 11,
                max_us: 11
            }
        );
        assert_eq!(Latency::from_samples(Vec::new()), None);
    }

    #[test]
    fn recommendations() {
        let no_cache = WriteCache::Unknown;

        let r = recommend(FsKind::Tmpfs, 3, 10, no_cache);
        assert_eq!(r.mode, Mode::InMemoryEquivalent);
        assert_eq!(r.window_ms, None);
        assert!(r.reason.contains("reboot"), "{}", r.reason);
        // A device write cache says nothing about tmpfs.
        let r = recommend(
            FsKind::Tmpfs,
            3,
            10,
            WriteCache::WriteBack { fua: Some(false) },
        );
        assert!(r.notes.is_empty(), "{:?}", r.notes);

        for fs in [FsKind::Fuse, FsKind::Network] {
            let r = recommend(fs, 200, 900, no_cache);
            assert_eq!(r.mode, Mode::Strict);
            assert!(r.reason.contains("may not") || r.reason.contains("only if"));
            // Even when syncs are slow.
            assert_eq!(recommend(fs, 20_000, 90_000, no_cache).mode, Mode::Strict);
        }

        let r = recommend(FsKind::Local, 800, 2_000, no_cache);
        assert_eq!(r.mode, Mode::Strict);
        assert_eq!(r.window_ms, None);
        assert!(r.reason.contains("800 µs"), "{}", r.reason);
        assert!(r.notes.is_empty());
        assert_eq!(
            recommend(FsKind::Local, 1000, 1000, no_cache).mode,
            Mode::Strict
        );

        let r = recommend(FsKind::Local, 4_000, 8_000, no_cache);
        assert_eq!(r.mode, Mode::Buffered);
        assert_eq!(r.window_ms, Some(80));
        assert!(r.reason.contains("Strict if"), "{}", r.reason);
        assert!(r.reason.contains("80 ms"), "{}", r.reason);

        let r = recommend(
            FsKind::Overlay,
            300,
            500,
            WriteCache::WriteBack { fua: Some(false) },
        );
        assert_eq!(r.mode, Mode::Strict);
        assert!(
            r.notes.iter().any(|n| n.contains("without FUA")),
            "{:?}",
            r.notes
        );
        assert!(
            r.notes.iter().any(|n| n.contains("overlayfs")),
            "{:?}",
            r.notes
        );

        let r = recommend(
            FsKind::Local,
            300,
            500,
            WriteCache::WriteBack { fua: Some(true) },
        );
        assert!(
            r.notes.iter().all(|n| !n.contains("without FUA")),
            "{:?}",
            r.notes
        );
        assert!(
            r.notes.iter().any(|n| n.contains("cache flush")),
            "{:?}",
            r.notes
        );
        let r = recommend(FsKind::Local, 300, 500, WriteCache::WriteThrough);
        assert!(
            r.notes.iter().any(|n| n.contains("write through")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn buffered_windows() {
        assert_eq!(buffered_window_ms(0), 1);
        assert_eq!(buffered_window_ms(50), 1);
        assert_eq!(buffered_window_ms(450), 5);
        assert_eq!(buffered_window_ms(1_000), 10);
        assert_eq!(buffered_window_ms(2_100), 25);
        assert_eq!(buffered_window_ms(3_700), 40);
        assert_eq!(buffered_window_ms(12_300), 150);
        assert_eq!(buffered_window_ms(123_400), 1500);
        assert!(buffered_window_ms(u64::MAX) > 0);
    }

    #[test]
    fn classification() {
        assert_eq!(FsKind::classify("tmpfs", Some(0x0102_1994)), FsKind::Tmpfs);
        assert_eq!(
            FsKind::classify("unknown filesystem (magic 0x858458f6)", Some(RAMFS_MAGIC)),
            FsKind::Tmpfs
        );
        assert_eq!(FsKind::classify("fuse", Some(0x6573_5546)), FsKind::Fuse);
        for n in ["nfs", "cifs", "smb2", "9p", "ceph", "afs"] {
            assert_eq!(FsKind::classify(n, None), FsKind::Network, "{n}");
        }
        assert_eq!(FsKind::classify("overlayfs", None), FsKind::Overlay);
        assert_eq!(FsKind::classify("ext4", Some(0xEF53)), FsKind::Local);
    }

    /// docs/CLI.md names every filesystem kind and every recommendation as the text prints it
    /// and as the JSON does: `memory` (tmpfs, ramfs) and `InMemory-equivalent` were printed but
    /// not documented.
    #[test]
    fn every_kind_and_recommendation_is_documented() {
        let doc = include_str!("../../docs/CLI.md");
        let start = doc
            .find("## `probe`")
            .expect("a section on probe in docs/CLI.md");
        let probe = &doc[start..];
        let probe = &probe[..probe[3..].find("\n## ").map_or(probe.len(), |i| i + 3)];
        let row = |text: String, json: serde_json::Value| {
            let json = json.as_str().unwrap().to_string();
            let head = format!("| `{text}` | `{json}` |");
            probe
                .lines()
                .find(|l| l.starts_with(&head))
                .unwrap_or_else(|| panic!("docs/CLI.md has no row {head} in its probe section"))
                .to_string()
        };
        for kind in [
            FsKind::Local,
            FsKind::Tmpfs,
            FsKind::Fuse,
            FsKind::Network,
            FsKind::Overlay,
        ] {
            let r = row(kind.to_string(), serde_json::to_value(kind).unwrap());
            if kind == FsKind::Tmpfs {
                assert!(r.contains("tmpfs or ramfs") && r.contains("reboot"), "{r}");
            }
        }
        for mode in [Mode::Strict, Mode::Buffered, Mode::InMemoryEquivalent] {
            let r = row(mode.to_string(), serde_json::to_value(mode).unwrap());
            if mode == Mode::InMemoryEquivalent {
                // When it appears: on the `memory` kind only, as `recommend` gives it.
                assert!(r.contains("the `memory` kind"), "{r}");
                for kind in [
                    FsKind::Local,
                    FsKind::Fuse,
                    FsKind::Network,
                    FsKind::Overlay,
                ] {
                    assert_ne!(recommend(kind, 1, 1, WriteCache::Unknown).mode, mode);
                }
                assert_eq!(
                    recommend(FsKind::Tmpfs, 50_000, 90_000, WriteCache::Unknown).mode,
                    mode
                );
            }
        }
    }

    #[test]
    fn devices_from_a_fake_sysfs() {
        let sys = tempfile::tempdir().unwrap();
        let devices = sys.path().join("devices");
        let disk = devices.join("sda");
        let part = disk.join("sda1");
        fs::create_dir_all(disk.join("queue")).unwrap();
        fs::create_dir_all(&part).unwrap();
        fs::write(part.join("partition"), "1\n").unwrap();
        fs::write(disk.join("queue/write_cache"), "write back\n").unwrap();
        fs::write(disk.join("queue/fua"), "0\n").unwrap();
        fs::write(disk.join("queue/rotational"), "1\n").unwrap();
        let block = sys.path().join("block");
        fs::create_dir(&block).unwrap();
        std::os::unix::fs::symlink(&part, block.join("8:1")).unwrap();
        std::os::unix::fs::symlink(&disk, block.join("8:0")).unwrap();
        let mkdev = |major: u64, minor: u64| (major << 8) | minor;

        let d = find_device(&block, None, mkdev(8, 1), Path::new("/srv"));
        assert_eq!(d.name.as_deref(), Some("sda1 (partition of sda)"));
        assert_eq!(d.dev.as_deref(), Some("8:1"));
        assert_eq!(d.write_cache.as_deref(), Some("write back"));
        assert_eq!(d.fua, Some(false));
        assert_eq!(d.rotational, Some(true));
        assert_eq!(d.note, None);
        assert_eq!(
            WriteCache::of(&d),
            WriteCache::WriteBack { fua: Some(false) }
        );

        let d = find_device(&block, None, mkdev(8, 0), Path::new("/srv"));
        assert_eq!(d.name.as_deref(), Some("sda"));
        assert_eq!(d.fua, Some(false));

        // No sysfs entry.
        let d = find_device(&block, None, mkdev(8, 2), Path::new("/srv"));
        assert_eq!(d.name, None);
        assert!(d.note.unwrap().contains("8:2"));

        // An anonymous device: through mountinfo, to a source that is not a block device.
        let mountinfo = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                         30 25 0:27 / /dev/shm rw,relatime - tmpfs tmp\\040fs rw\n";
        let d = find_device(&block, Some(mountinfo), mkdev(0, 27), Path::new("/srv"));
        assert_eq!(d.name, None);
        let note = d.note.unwrap();
        assert!(note.contains("tmpfs") && note.contains("tmp fs"), "{note}");
        let d = find_device(&block, Some(mountinfo), mkdev(0, 99), Path::new("/srv"));
        assert!(d.note.unwrap().contains("0:99"));
        // A device number of its own (a btrfs subvolume): the mount holding the directory.
        let d = find_device(
            &block,
            Some(mountinfo),
            mkdev(0, 99),
            Path::new("/dev/shm/sub"),
        );
        assert!(d.note.unwrap().contains("tmpfs mount"));
        assert_eq!(
            mount_of(mountinfo, "0:99", Path::new("/proc/1")),
            Some(("proc".into(), "proc".into()))
        );
        assert_eq!(mount_of(mountinfo, "0:99", Path::new("/procfs")), None);
        assert_eq!(mount_of("garbage\n\n - x", "0:1", Path::new("/")), None);
        assert_eq!(WriteCache::of(&Device::default()), WriteCache::Unknown);
    }

    #[test]
    fn dev_t_split() {
        assert_eq!(split_dev(254 << 8), (254, 0));
        assert_eq!(split_dev((259 << 8) | 3), (259, 3));
        // glibc's makedev for a large major/minor.
        let (major, minor) = (0x1234u64, 0x56789u64);
        let dev = ((major & 0xffff_f000) << 32)
            | ((major & 0x0fff) << 8)
            | ((minor & 0xffff_ff00) << 12)
            | (minor & 0x00ff);
        assert_eq!(split_dev(dev), (major, minor));
    }
}
