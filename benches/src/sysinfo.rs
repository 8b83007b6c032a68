//! What the machine is and what the block device did: kernel, filesystem and mount options,
//! write-cache mode, `/sys/block/<dev>/stat` counters, CPU time, page-cache eviction.

use std::ffi::CStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The machine line's facts.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    /// `uname -srm`.
    pub kernel: String,
    /// Online CPUs.
    pub cores: usize,
    /// Filesystem type of the benchmark directory.
    pub fs_type: String,
    /// Mount point, source and options (mount and superblock).
    pub mount: String,
    /// The whole block device under the directory (`vda`), if any.
    pub device: Option<String>,
    /// `/sys/block/<dev>/queue/write_cache` (`write back` / `write through`).
    pub write_cache: Option<String>,
    /// `/sys/block/<dev>/queue/fua`: whether the device takes FUA writes (then a durable
    /// write may need no separate flush, and the flush count proves nothing either way).
    pub fua: Option<bool>,
    /// The benchmark directory.
    pub dir: PathBuf,
}

impl Machine {
    /// One line for the table's header.
    pub fn line(&self) -> String {
        format!(
            "{}, {} cores; {} on {} ({}); device {}, write cache: {}, FUA: {}",
            self.kernel,
            self.cores,
            self.dir.display(),
            self.fs_type,
            self.mount,
            self.device.as_deref().unwrap_or("none"),
            self.write_cache.as_deref().unwrap_or("unknown"),
            match self.fua {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown",
            },
        )
    }

    /// What the device's flush count proves about durability.
    pub fn flush_rule(&self) -> FlushRule {
        match (self.write_cache.as_deref(), self.fua) {
            (Some("write through"), _) => FlushRule::NotNeeded,
            (Some("write back"), Some(false)) => FlushRule::Required,
            _ => FlushRule::Unknown,
        }
    }
}

/// Whether a durable commit must show up as a device cache flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushRule {
    /// Write-back cache without FUA: every durable commit needs a flush request.
    Required,
    /// Write-through cache: writes are durable when they complete.
    NotNeeded,
    /// Unknown cache mode, or FUA writes that need no separate flush.
    Unknown,
}

impl Machine {}

fn uname() -> String {
    // SAFETY: utsname is plain old data; uname fills it and returns 0 on success.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown kernel".into();
    }
    let field = |f: &[libc::c_char]| {
        // SAFETY: uname NUL-terminates each field within its array.
        unsafe { CStr::from_ptr(f.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    format!(
        "{} {} {}",
        field(&u.sysname),
        field(&u.release),
        field(&u.machine)
    )
}

/// Unescapes the octal escapes (`\040`) of /proc/self/mountinfo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(n) = u8::from_str_radix(s.get(i + 1..i + 4).unwrap_or(""), 8) {
                out.push(n);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// (mount point, fs type, description) of the mount holding `dir`, from /proc/self/mountinfo
/// (the longest mount point that is a prefix of the canonical path).
fn mount_of(dir: &Path) -> Option<(String, String, String)> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let dir = fs::canonicalize(dir).ok()?;
    let mut best: Option<(usize, (String, String, String))> = None;
    for line in text.lines() {
        let (left, right) = line.split_once(" - ")?;
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 6 || r.len() < 3 {
            continue;
        }
        let mp = unescape(l[4]);
        if !dir.starts_with(&mp) {
            continue;
        }
        let desc = format!("{mp} from {}, {}, {}", r[1], l[5], r[2]);
        if best.as_ref().is_none_or(|(n, _)| mp.len() >= *n) {
            best = Some((mp.len(), (mp, r[0].to_string(), desc)));
        }
    }
    best.map(|(_, m)| m)
}

/// The whole-disk name (`vda`, `nvme0n1`) backing `dir`, found from its `st_dev` through
/// `/sys/dev/block/MAJ:MIN` (a partition's parent is the disk).
pub fn device_of(dir: &Path) -> Option<String> {
    let dev = fs::metadata(dir).ok()?.dev();
    let (maj, min) = (libc::major(dev), libc::minor(dev));
    let sys = fs::canonicalize(format!("/sys/dev/block/{maj}:{min}")).ok()?;
    let disk = if sys.join("partition").exists() {
        sys.parent()?.to_path_buf()
    } else {
        sys
    };
    let name = disk.file_name()?.to_string_lossy().into_owned();
    Path::new("/sys/block")
        .join(&name)
        .join("stat")
        .exists()
        .then_some(name)
}

/// Gathers the machine line for `dir`.
pub fn machine(dir: &Path) -> Machine {
    let (fs_type, mount) = match mount_of(dir) {
        Some((_, t, d)) => (t, d),
        None => ("unknown".into(), "unknown mount".into()),
    };
    let device = device_of(dir);
    let write_cache = device.as_ref().and_then(|d| {
        fs::read_to_string(format!("/sys/block/{d}/queue/write_cache"))
            .ok()
            .map(|s| s.trim().to_string())
    });
    let fua = device.as_ref().and_then(|d| {
        fs::read_to_string(format!("/sys/block/{d}/queue/fua"))
            .ok()
            .map(|s| s.trim() == "1")
    });
    Machine {
        fua,
        kernel: uname(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        fs_type,
        mount,
        device,
        write_cache,
        dir: dir.to_path_buf(),
    }
}

/// True when `dir` is on a tmpfs/ramfs (where fdatasync means nothing).
pub fn is_memory_fs(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain old data.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a writable statfs.
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } != 0 {
        return false;
    }
    const TMPFS: i64 = 0x0102_1994;
    const RAMFS: i64 = 0x8584_58f6;
    matches!(s.f_type as i64, TMPFS | RAMFS)
}

/// Counters of one block device, from `/sys/block/<dev>/stat` (see the kernel's
/// Documentation/block/stat.rst).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStat {
    /// Read requests completed.
    pub reads: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Write requests completed.
    pub writes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Flush requests completed (field 16; 0 on kernels before 5.5).
    pub flushes: u64,
}

impl DiskStat {
    /// Reads the counters of disk `dev` now.
    pub fn read(dev: &str) -> io::Result<DiskStat> {
        let text = fs::read_to_string(format!("/sys/block/{dev}/stat"))?;
        DiskStat::parse(&text)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short stat line"))
    }

    /// Parses a stat line.
    pub fn parse(text: &str) -> Option<DiskStat> {
        let f: Vec<u64> = text
            .split_whitespace()
            .map(|s| s.parse().unwrap_or(0))
            .collect();
        if f.len() < 11 {
            return None;
        }
        Some(DiskStat {
            reads: f[0],
            read_bytes: f[2] * 512,
            writes: f[4],
            write_bytes: f[6] * 512,
            flushes: f.get(15).copied().unwrap_or(0),
        })
    }

    /// The counts between `earlier` and `self`.
    pub fn since(&self, earlier: &DiskStat) -> DiskStat {
        DiskStat {
            reads: self.reads.saturating_sub(earlier.reads),
            read_bytes: self.read_bytes.saturating_sub(earlier.read_bytes),
            writes: self.writes.saturating_sub(earlier.writes),
            write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes),
            flushes: self.flushes.saturating_sub(earlier.flushes),
        }
    }
}

/// User + system CPU time of this process (all threads, io_uring workers included), so far.
pub fn cpu_time() -> Duration {
    // SAFETY: rusage is plain old data.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `r` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(r.ru_utime) + tv(r.ru_stime)
}

/// CPU time of the calling thread so far (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_time() -> Duration {
    // SAFETY: timespec is plain old data.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Resident set size of this process in bytes (`/proc/self/statm`), if readable.
pub fn rss_bytes() -> Option<u64> {
    let text = fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096))
}

/// The peak resident set of this process (`VmHWM` in `/proc/self/status`) since it started or
/// since the last [`reset_peak_rss`], bytes, if readable.
pub fn peak_rss_bytes() -> Option<u64> {
    let text = fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resets the peak resident set [`peak_rss_bytes`] reports to the current one (writing `5` to
/// `/proc/self/clear_refs`, Linux 4.0 and later); false where that is refused.
pub fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Returns the allocator's free memory to the system where it can (glibc's `malloc_trim`), so
/// that a resident-size baseline taken next does not depend on what earlier runs freed.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Syncs every file under `dir` and drops its pages from the page cache
/// (`POSIX_FADV_DONTNEED`), so that the next open reads from the device: a cold cache for this
/// directory only, leaving the rest of the machine's cache alone. Returns the files evicted.
pub fn evict(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            n += evict(&path)?;
            continue;
        }
        let f = fs::File::open(&path)?;
        f.sync_all()?;
        // SAFETY: fadvise on a valid, open descriptor; no memory is passed.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        n += 1;
    }
    Ok(n)
}

/// Total size of the files under `dir` (apparent sizes) and the bytes they occupy up to their
/// last non-zero byte (preallocated, zero-filled tails excluded, read from the end backwards).
pub fn dir_bytes(dir: &Path) -> io::Result<(u64, u64)> {
    let mut size = 0;
    let mut used = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (s, u) = dir_bytes(&path)?;
            size += s;
            used += u;
            continue;
        }
        size += meta.len();
        used += used_extent(&path, meta.len())?;
    }
    Ok((size, used))
}

/// The space the files under a directory take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Space {
    /// Sum of the files' apparent sizes (`st_size`).
    pub apparent: u64,
    /// Sum of the blocks allocated to them (`st_blocks` × 512, what `du` counts).
    pub allocated: u64,
    /// Files counted.
    pub files: u64,
}

/// The space the files under `dir` take now (a file deleted while the directory is walked is
/// skipped). Cheap: metadata only, no reads, so it can be sampled while an engine runs.
pub fn dir_space(dir: &Path) -> io::Result<Space> {
    let mut sp = Space::default();
    for entry in fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            if let Ok(s) = dir_space(&entry.path()) {
                sp.apparent += s.apparent;
                sp.allocated += s.allocated;
                sp.files += s.files;
            }
            continue;
        }
        sp.apparent += meta.len();
        sp.allocated += meta.blocks() * 512;
        sp.files += 1;
    }
    Ok(sp)
}

/// Every file under `dir` with the bytes it holds up to its last non-zero byte (see
/// [`dir_bytes`]), in name order. Reads the files (from their ends): evict afterwards for a
/// cold cache.
pub fn file_extents(dir: &Path) -> io::Result<Vec<(PathBuf, u64)>> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    names.sort();
    let mut out = Vec::new();
    for path in names {
        let meta = fs::metadata(&path)?;
        if meta.is_dir() {
            out.extend(file_extents(&path)?);
        } else {
            let used = used_extent(&path, meta.len())?;
            out.push((path, used));
        }
    }
    Ok(out)
}

/// Reads `files` (path, bytes from offset 0) sequentially, in order, with 1 MiB reads; returns
/// the wall time and the bytes read. With the files evicted first, this is what reading them
/// from the device costs: the floor of an open that must read them.
pub fn read_files(files: &[(PathBuf, u64)]) -> io::Result<(Duration, u64)> {
    use std::io::Read;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    let start = std::time::Instant::now();
    for (path, len) in files {
        let mut f = fs::File::open(path)?;
        let mut left = *len;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            left -= n as u64;
            total += n as u64;
        }
    }
    Ok((start.elapsed(), total))
}

fn used_extent(path: &Path, len: u64) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let f = fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.read_exact_at(chunk, start)?;
        if let Some(last) = chunk.iter().rposition(|&b| b != 0) {
            return Ok(start + last as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines() {
        let line = "  177351  6850 11187738 115693 5956326 29647 77847904 547834 1 352060 891805 \
                    28018 76 37380976 17234 2821900 211043\n";
        let s = DiskStat::parse(line).unwrap();
        assert_eq!(s.writes, 5956326);
        assert_eq!(s.write_bytes, 77847904 * 512);
        assert_eq!(s.flushes, 2821900);
        let old = "1 2 3 4 5 6 7 8 9 10 11";
        assert_eq!(DiskStat::parse(old).unwrap().flushes, 0);
        assert!(DiskStat::parse("1 2 3").is_none());
        let d = s.since(&DiskStat {
            writes: 5956320,
            flushes: 2821899,
            ..s
        });
        assert_eq!((d.writes, d.flushes, d.write_bytes), (6, 1, 0));
    }

    #[test]
    fn rss_is_plausible() {
        trim_heap();
        let rss = rss_bytes().unwrap();
        assert!(rss > 1 << 20 && rss < 1 << 40, "{rss}");
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"\"), r"\");
    }

    #[test]
    fn space_extents_and_reads() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("a"), vec![7u8; 10_000]).unwrap();
        let mut b = vec![0u8; 50_000];
        b[999] = 1;
        fs::write(dir.path().join("sub").join("b"), &b).unwrap();
        let sp = dir_space(dir.path()).unwrap();
        assert_eq!((sp.apparent, sp.files), (60_000, 2));
        let ext = file_extents(dir.path()).unwrap();
        assert_eq!(ext.len(), 2);
        assert_eq!(ext[0].1, 10_000);
        assert_eq!(ext[1].1, 1000);
        let (_, read) = read_files(&ext).unwrap();
        assert_eq!(read, 11_000);
        assert_eq!(evict(dir.path()).unwrap(), 2);
    }

    #[test]
    fn extent_skips_zero_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut data = vec![0u8; 3 << 20];
        data[5] = 1;
        data[(1 << 20) + 7] = 9;
        fs::write(&p, &data).unwrap();
        assert_eq!(dir_bytes(dir.path()).unwrap(), (3 << 20, (1 << 20) + 8));
    }
}
