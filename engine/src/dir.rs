//! The database directory: creating and locking it, the MANIFEST, and which sync strategy its
//! filesystem gets.

use std::path::Path;
use std::time::Duration;

use ringlog_format::{Manifest, MANIFEST_LEN, MANIFEST_V2_LEN};
use ringlog_uring::{EntryKind, FileLock, OpenOptions, Vfs};

use crate::segment::now_ns;
use crate::{Error, Result, SyncStrategy};

pub(crate) const MANIFEST: &str = "MANIFEST";
pub(crate) const MANIFEST_TMP: &str = "MANIFEST.tmp";
pub(crate) const LOCK: &str = "LOCK";
/// How long an open retries a held directory lock before failing with [`Error::Locked`].
const LOCK_RETRY: Duration = Duration::from_millis(200);

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most b.len() bytes into the valid, writable buffer b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 8 {
        u64::from_le_bytes(b)
    } else {
        // getrandom unavailable: time and pid are unique enough for an epoch.
        now_ns() ^ ((std::process::id() as u64) << 32)
    }
}

/// The directory holding `path`'s entry: its parent, or the current directory for a relative
/// path of one component (whose `parent()` is empty; a review found such a database's own entry
/// never synced). `None` for a root.
pub(crate) fn parent_dir(path: &Path) -> Option<&Path> {
    path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    })
}

/// Creates `dir` and every missing directory above it, and makes each new entry durable: the
/// parent of every directory created is fsynced, the deepest first (a directory entry survives a
/// power loss only once its directory is synced — syncing only `dir`'s parent left the entries
/// of the directories above it to chance, and with them everything in `dir`).
pub(crate) fn create_dir_durably(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    for a in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        match vfs
            .kind_of(a)
            .map_err(|e| Error::io("stat", a.to_path_buf(), e))?
        {
            None => missing.push(a),
            Some(_) => break,
        }
    }
    vfs.create_dir_all(dir)
        .map_err(|e| Error::io("create directory", dir.to_path_buf(), e))?;
    for created in missing {
        if let Some(parent) = parent_dir(created) {
            vfs.sync_dir(parent)
                .map_err(|e| Error::io("sync directory", parent.to_path_buf(), e))?;
        }
    }
    Ok(())
}

pub(crate) fn prepare_dir(vfs: &dyn Vfs, dir: &Path) -> Result<Box<dyn FileLock>> {
    match vfs
        .kind_of(dir)
        .map_err(|e| Error::io("stat", dir.to_path_buf(), e))?
    {
        None => create_dir_durably(vfs, dir)?,
        Some(EntryKind::Dir) => {}
        Some(_) => return Err(Error::NotADirectory(dir.to_path_buf())),
    }
    let names = vfs
        .list_dir(dir)
        .map_err(|e| Error::io("list directory", dir.to_path_buf(), e))?;
    let ours = |n: &str| n == MANIFEST || n == MANIFEST_TMP || n == LOCK;
    if !names.iter().any(|n| n == MANIFEST) && names.iter().any(|n| !ours(n)) {
        return Err(Error::NotADatabase(dir.to_path_buf()));
    }
    let lock_path = dir.join(LOCK);
    // A lock is held by an open file description, which a fork duplicates: a process another
    // thread is spawning holds our just-released lock until its exec closes the descriptor.
    // Retry briefly before calling the directory locked.
    let mut delay = Duration::from_micros(500);
    let give_up = std::time::Instant::now() + LOCK_RETRY;
    loop {
        match vfs.lock(&lock_path) {
            Ok(lock) => return Ok(lock),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() >= give_up {
                    return Err(Error::Locked(dir.to_path_buf()));
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(Error::io("lock", lock_path.clone(), e)),
        }
    }
}

/// The strategy the log thread uses on `dir`'s filesystem when `requested` was asked for, and why.
/// A completed `RWF_DSYNC` write is trusted only where the filesystem is known to make it durable
/// ([`ringlog_uring::FsInfo`]); elsewhere, or when the filesystem cannot be identified, every
/// batch gets an explicit fdatasync (docs/DURABILITY.md, "Which filesystems get RWF_DSYNC").
pub(crate) fn effective_strategy(
    vfs: &dyn Vfs,
    dir: &Path,
    requested: SyncStrategy,
) -> (SyncStrategy, String) {
    static DOWNGRADED: std::sync::Once = std::sync::Once::new();
    let (strategy, reason) = match (requested, vfs.filesystem(dir)) {
        (SyncStrategy::Dsync, Ok(fs)) if fs.dsync_durable => (
            SyncStrategy::Dsync,
            format!("RWF_DSYNC writes, as requested: their completion is durable on {fs}"),
        ),
        (SyncStrategy::Dsync, found) => {
            let fs = match found {
                Ok(fs) => fs.to_string(),
                Err(e) => format!("a filesystem statfs could not identify ({e})"),
            };
            let reason = format!(
                "write then fdatasync instead of the requested RWF_DSYNC: a completed RWF_DSYNC write is not known to be durable on {fs}"
            );
            let mut first = false;
            DOWNGRADED.call_once(|| first = true);
            if first {
                log::warn!("{}: {reason}", dir.display());
            } else {
                log::info!("{}: {reason}", dir.display());
            }
            (SyncStrategy::WriteThenSync, reason)
        }
        (other, Ok(fs)) => (other, format!("{other:?}, as requested ({fs})")),
        (other, Err(e)) => (
            other,
            format!("{other:?}, as requested (filesystem unknown: statfs: {e})"),
        ),
    };
    log::debug!("{}: sync strategy {strategy:?}: {reason}", dir.display());
    (strategy, reason)
}

/// Reads the MANIFEST of `dir`, or creates the one of a new database.
pub(crate) fn read_or_create_manifest(vfs: &dyn Vfs, dir: &Path, codec: u32) -> Result<Manifest> {
    if let Some(m) = read_manifest(vfs, dir)? {
        return Ok(m);
    }
    // A new database.
    let epoch = random_u64();
    let m = Manifest {
        codec,
        ..Manifest::new(epoch, now_ns())
    };
    write_manifest(vfs, dir, &m)?;
    log::info!("created database {} (epoch {epoch:#018x})", dir.display());
    Ok(m)
}

/// Reads the MANIFEST of `dir`; `None` when there is none.
pub(crate) fn read_manifest(vfs: &dyn Vfs, dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    if vfs
        .kind_of(&path)
        .map_err(|e| Error::io("stat", path.clone(), e))?
        .is_some()
    {
        let file = vfs
            .open(&path, OpenOptions::default())
            .map_err(|e| Error::io("open manifest", path.clone(), e))?;
        let size = file
            .size()
            .map_err(|e| Error::io("stat manifest", path.clone(), e))?;
        if size != MANIFEST_LEN as u64 && size != MANIFEST_V2_LEN as u64 {
            return Err(Error::Corruption {
                file: path,
                offset: size.min(MANIFEST_LEN as u64),
                reason: format!(
                    "the MANIFEST is {size} bytes long; a ringlog MANIFEST is exactly {MANIFEST_LEN} bytes ({MANIFEST_V2_LEN} before format version 3): cut short or overwritten"
                ),
            });
        }
        let mut bytes = vec![0u8; size as usize];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|e| Error::io("read manifest", path.clone(), e))?;
        return match Manifest::decode(&bytes) {
            Ok(m) => Ok(Some(m)),
            Err(ringlog_format::DecodeError::UnsupportedVersion { version, .. }) => {
                Err(Error::UnsupportedVersion {
                    path: dir.to_path_buf(),
                    found: version,
                    supported: ringlog_format::FORMAT_VERSION,
                })
            }
            Err(ringlog_format::DecodeError::BadMagic { offset }) => Err(Error::Corruption {
                file: path,
                offset,
                reason: format!(
                    "the MANIFEST does not start with ringlog's magic {:?}: damaged, or written by another program",
                    String::from_utf8_lossy(&ringlog_format::MANIFEST_MAGIC)
                ),
            }),
            Err(e) => Err(Error::Corruption {
                file: path,
                offset: e.offset(),
                reason: e.to_string(),
            }),
        };
    }
    Ok(None)
}

/// Replaces the MANIFEST of `dir` with `m`: written beside as `MANIFEST.tmp`, synced, renamed
/// over the old one, then the directory synced. A crash at any point leaves the old MANIFEST or
/// the new one in force, never a mix; the `.tmp` leftover is rewritten by the next update.
pub(crate) fn write_manifest(vfs: &dyn Vfs, dir: &Path, m: &Manifest) -> Result<()> {
    let path = dir.join(MANIFEST);
    let tmp = dir.join(MANIFEST_TMP);
    let bytes = m.encode();
    let file = vfs
        .open(
            &tmp,
            OpenOptions {
                write: true,
                create: true,
                direct: false,
            },
        )
        .map_err(|e| Error::io("create manifest", tmp.clone(), e))?;
    file.set_len(0)
        .map_err(|e| Error::io("truncate manifest", tmp.clone(), e))?;
    file.write_all_at(&bytes, 0)
        .map_err(|e| Error::io("write manifest", tmp.clone(), e))?;
    file.sync_all()
        .map_err(|e| Error::io("sync manifest", tmp.clone(), e))?;
    drop(file);
    failpoint!(MANIFEST_BEFORE_RENAME);
    vfs.rename(&tmp, &path)
        .map_err(|e| Error::io("rename manifest", path.clone(), e))?;
    failpoint!(MANIFEST_BEFORE_DIR_SYNC);
    vfs.sync_dir(dir)
        .map_err(|e| Error::io("sync directory", dir.to_path_buf(), e))?;
    Ok(())
}
