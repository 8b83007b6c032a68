//! `ringlog export` / `ringlog import`: a portable JSON-lines dump of a database (docs/CLI.md,
//! "Export format").
//!
//! Line 1 is a header, then one line per version — keys in key order, each key's versions
//! oldest first — then an end line with the counts (a file cut short has none, and is refused):
//!
//! ```text
//! {"format":"ringlog-export","version":1,"versions":true,"source_last_lsn":12,"source_floor":0,"source_retention":"All"}
//! {"key":"6b31","lsn":3,"value":"7631"}
//! {"key":"6b31","lsn":9,"deleted":true}
//! {"end":true,"keys":1,"records":2}
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};

use std::sync::Arc;

use ringlog_db::io::{PosixVfs, Vfs};
use ringlog_db::{Db, Durability, Error, Options, Retention};
use serde::{Deserialize, Serialize};

use crate::args::{ExportArgs, ImportArgs};
use crate::bytes::{hex, unhex};
use crate::commands::{failed, open, print_json, reopened};
use crate::{Failure, Outcome};

/// The export format's name, in its header.
const FORMAT: &str = "ringlog-export";
/// The export format's version.
const VERSION: u32 = 1;
/// Most bytes (keys, values, 64 per record) one import transaction carries.
const IMPORT_BATCH_BYTES: usize = 8 << 20;

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    /// Every retained version (true) or each live key's newest value (false).
    versions: bool,
    source_last_lsn: u64,
    source_floor: u64,
    /// The source's retention policy, for the reader (informational).
    source_retention: String,
}

#[derive(Serialize, Deserialize)]
struct Line {
    key: String,
    lsn: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

#[derive(Serialize, Deserialize)]
struct End {
    end: bool,
    keys: u64,
    records: u64,
}

#[derive(Serialize)]
struct Summary {
    file: String,
    dir: String,
    keys: u64,
    records: u64,
    versions: bool,
    /// Import: transactions committed (one per source LSN with --versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    transactions: Option<u64>,
}

fn wr(e: impl std::fmt::Display) -> Failure {
    Failure::Found(format!("writing the export: {e}"))
}

/// `ringlog export`.
pub fn export(a: &ExportArgs, json: bool, out: &mut dyn Write) -> Outcome {
    let to_stdout = a.to.as_os_str() == "-";
    let (keys, records) = if to_stdout {
        let db = open(&a.dir)?;
        let mut sink = BufWriter::new(std::io::stdout());
        let counts = write_export(&db, a.versions, &mut sink).map_err(failed)?;
        sink.flush().map_err(wr)?;
        counts
    } else {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&a.to)
            .map_err(|e| Failure::Found(format!("{}: {e}", a.to.display())))?;
        // A read a writer's compaction cut short starts again on a new open, from the file's
        // start ([`reopened`]); a failure removes the file it created, so that running the
        // command again works (it never overwrites a file).
        let written = reopened(&a.dir, |db| {
            let io = |e: std::io::Error| Error::Io {
                op: "write the export",
                path: Some(a.to.clone()),
                source: e,
            };
            f.set_len(0).map_err(io)?;
            let mut file = &f;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0)).map_err(io)?;
            let mut sink = BufWriter::new(file);
            let counts = write_export(db, a.versions, &mut sink)?;
            sink.flush().map_err(io)?;
            Ok(counts)
        })
        .and_then(|counts| {
            f.sync_all()
                .map_err(|e| Failure::Found(format!("sync {}: {e}", a.to.display())))?;
            Ok(counts)
        });
        if written.is_err() {
            let _ = std::fs::remove_file(&a.to);
        }
        written?
    };
    let s = Summary {
        file: a.to.display().to_string(),
        dir: a.dir.display().to_string(),
        keys,
        records,
        versions: a.versions,
        transactions: None,
    };
    if json {
        if to_stdout {
            return Ok(());
        }
        return print_json(out, &s);
    }
    if !to_stdout {
        writeln!(
            out,
            "exported {} keys ({} records) from {} to {}",
            s.keys, s.records, s.dir, s.file
        )?;
    }
    Ok(())
}

/// Writes the export of `db` (the newest state, or with `versions` every version) to `sink`:
/// header, records, end line. Returns (keys, records). A failed write is `Error::Io`.
pub fn write_export(db: &Db, versions: bool, sink: &mut dyn Write) -> Result<(u64, u64), Error> {
    let line = |sink: &mut dyn Write, v: &dyn erased::Ser| -> Result<(), Error> {
        v.write(sink)
            .and_then(|()| sink.write_all(b"\n"))
            .map_err(|e| Error::Io {
                op: "write the export",
                path: None,
                source: e,
            })
    };
    let (mut keys, mut records) = (0u64, 0u64);
    if versions {
        let h = db.history::<&[u8], _>(..)?;
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            versions: true,
            source_last_lsn: h.lsn(),
            source_floor: h.floor(),
            source_retention: format!("{:?}", db.retention()),
        };
        line(&mut *sink, &header)?;
        for k in h {
            let k = k?;
            keys += 1;
            for (lsn, v) in k.versions.iter().rev() {
                records += 1;
                let l = Line {
                    key: hex(&k.key),
                    lsn: *lsn,
                    value: v.as_ref().map(|v| hex(v)),
                    deleted: v.is_none(),
                };
                line(&mut *sink, &l)?;
            }
        }
    } else {
        let snap = db.snapshot();
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            versions: false,
            source_last_lsn: snap.lsn(),
            source_floor: snap.lsn(),
            source_retention: format!("{:?}", db.retention()),
        };
        line(&mut *sink, &header)?;
        for item in snap.iter()? {
            let (k, v) = item?;
            keys += 1;
            records += 1;
            let l = Line {
                key: hex(&k),
                lsn: v.lsn(),
                value: Some(hex(&v)),
                deleted: false,
            };
            line(&mut *sink, &l)?;
        }
    }
    line(
        &mut *sink,
        &End {
            end: true,
            keys,
            records,
        },
    )?;
    Ok((keys, records))
}

/// Serializing through a `dyn` (the three line types share one writer).
mod erased {
    use super::*;

    pub trait Ser {
        fn write(&self, w: &mut dyn Write) -> std::io::Result<()>;
    }

    impl<T: Serialize> Ser for T {
        fn write(&self, w: &mut dyn Write) -> std::io::Result<()> {
            serde_json::to_writer(w, self).map_err(std::io::Error::other)
        }
    }
}

fn bad(n: usize, what: impl std::fmt::Display) -> Failure {
    Failure::Found(format!("export file line {n}: {what}"))
}

/// The largest encoded transaction a database opened with `opts` commits: one log segment
/// less its header and the batch's framing (`ringlog_db`'s limit, which it exposes through
/// [`Options::max_value_len`]: the largest value of an empty key is that limit less one Write
/// record's header and 8 bytes).
fn max_txn_bytes(opts: &Options) -> usize {
    opts.max_value_len(0) + ringlog_format::RECORD_HEADER_LEN + 8
}

/// Bytes a transaction of `ops` (key, value or none for a delete) occupies in the log, as the
/// engine counts them against [`max_txn_bytes`]: one autocommit record alone, else its records
/// framed by Begin and Commit markers.
fn txn_encoded_len(ops: &[(&[u8], Option<&[u8]>)]) -> usize {
    let records: usize = ops
        .iter()
        .map(|(k, v)| ringlog_format::encoded_len(k.len(), v.map_or(0, <[u8]>::len)))
        .sum();
    let markers = if ops.len() > 1 {
        2 * ringlog_format::encoded_len(0, ringlog_format::MARKER_PAYLOAD_LEN)
    } else {
        0
    };
    records + markers
}

/// A record line of an export file: source LSN, key, value (`None`: a delete), line number.
type Record = (u64, Vec<u8>, Option<Vec<u8>>, usize);

/// `ringlog import`.
pub fn import(a: &ImportArgs, json: bool, out: &mut dyn Write) -> Outcome {
    let mut reader: Box<dyn BufRead> = if a.file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(&a.file)
            .map_err(|e| Failure::Usage(format!("{}: {e}", a.file.display())))?;
        Box::new(std::io::BufReader::new(f))
    };
    let done = import_into(&mut *reader, &a.dir, None)?;
    let s = Summary {
        file: a.file.display().to_string(),
        dir: a.dir.display().to_string(),
        keys: done.keys,
        records: done.records,
        versions: done.versions,
        transactions: Some(done.transactions),
    };
    if json {
        return print_json(out, &s);
    }
    writeln!(
        out,
        "imported {} keys ({} records, {} transactions) from {} into {}{}",
        s.keys,
        s.records,
        done.transactions,
        s.file,
        s.dir,
        if done.versions {
            " (retention: All, which keeps every imported version)"
        } else {
            ""
        }
    )?;
    Ok(())
}

/// What [`import_into`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Imported {
    /// Keys imported.
    pub keys: u64,
    /// Records (versions, deletes included) imported.
    pub records: u64,
    /// Whether the export held every retained version (then the new database keeps them all).
    pub versions: bool,
    /// Transactions committed (one per source LSN with versions).
    pub transactions: u64,
}

/// The work of `ringlog import`: reads an export from `reader` and checks all of it, then writes
/// the new database in a staging directory beside `dir`, closes it (everything durable), renames
/// it to `dir` and syncs the directory holding `dir`. Either `dir` ends up holding the whole
/// import, or it is left as it was (absent or empty); a failure removes the staging directory.
///
/// `vfs`: the I/O layer to write through, `None` for the real filesystem (the database then on
/// the I/O path [`Options`] choose). The crash runner passes its simulated disk.
///
/// # Errors
///
/// [`Failure::Usage`] for a bad argument (`dir` not empty, say), [`Failure::Found`] for a bad
/// export file or a failed write; nothing is imported then.
pub fn import_into(
    reader: &mut dyn BufRead,
    dir: &std::path::Path,
    vfs: Option<Arc<dyn Vfs>>,
) -> Result<Imported, Failure> {
    let mut lines = reader.lines().enumerate();
    let (_, first) = lines
        .next()
        .ok_or_else(|| Failure::Found("the export file is empty".into()))?;
    let first = first.map_err(|e| bad(1, e))?;
    let header: Header = serde_json::from_str(&first).map_err(|e| bad(1, e))?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(bad(
            1,
            format!(
                "format {:?} version {}: this tool reads {FORMAT:?} version {VERSION}",
                header.format, header.version
            ),
        ));
    }
    // Every record, checked, before anything is written: a damaged file creates nothing.
    let mut recs: Vec<Record> = Vec::new();
    let mut end = None;
    let mut keys = 0u64;
    let mut last_key: Option<Vec<u8>> = None;
    for (i, l) in lines {
        let n = i + 1;
        let l = l.map_err(|e| bad(n, e))?;
        if end.is_some() {
            return Err(bad(n, "a line after the end line"));
        }
        if l.starts_with("{\"end\"") {
            end = Some(serde_json::from_str::<End>(&l).map_err(|e| bad(n, e))?);
            continue;
        }
        let line: Line = serde_json::from_str(&l).map_err(|e| bad(n, e))?;
        let key = unhex(&line.key).map_err(|e| bad(n, format!("key: {e}")))?;
        if key.is_empty() {
            return Err(bad(n, "an empty key"));
        }
        let value = match (&line.value, line.deleted) {
            (Some(v), false) => Some(unhex(v).map_err(|e| bad(n, format!("value: {e}")))?),
            (None, true) => None,
            (Some(_), true) => {
                return Err(bad(n, "a record has both a value and \"deleted\": true"))
            }
            (None, false) => {
                return Err(bad(n, "a record has neither a value nor \"deleted\": true"))
            }
        };
        if line.lsn == 0 {
            return Err(bad(n, "LSN 0 (LSNs start at 1)"));
        }
        if line.lsn > header.source_last_lsn {
            // The export read at that LSN: nothing it wrote is newer (found in review).
            return Err(bad(
                n,
                format!(
                    "LSN {} above the header's source_last_lsn {} (the LSN the export read at)",
                    line.lsn, header.source_last_lsn
                ),
            ));
        }
        if value.is_none() && !header.versions {
            // An export of the newest state holds live keys only: a delete there is no key.
            return Err(bad(n, "a deleted record in an export without versions"));
        }
        match &last_key {
            Some(k) if *k == key && !header.versions => {
                return Err(bad(
                    n,
                    "a key repeated in an export without versions (one line per key)",
                ))
            }
            Some(k) if *k == key => {
                // A key's versions, oldest first: each LSN once.
                let prev = recs.last().map_or(0, |r| r.0);
                if line.lsn <= prev {
                    return Err(bad(
                        n,
                        format!("a version at LSN {} after one at LSN {prev} of the same key (versions oldest first, each LSN once)", line.lsn),
                    ));
                }
            }
            Some(k) if *k > key => return Err(bad(n, "keys out of order")),
            _ => {
                keys += 1;
                last_key = Some(key.clone());
            }
        }
        recs.push((line.lsn, key, value, n));
    }
    let Some(end) = end else {
        return Err(Failure::Found(
            "the export file has no end line: it was cut short; nothing imported".into(),
        ));
    };
    if end.records != recs.len() as u64 || end.keys != keys {
        return Err(Failure::Found(format!(
            "the end line counts {} keys and {} records, the file holds {keys} and {}: nothing imported",
            end.keys,
            end.records,
            recs.len()
        )));
    }
    let real = vfs.is_none();
    let fs: Arc<dyn Vfs> = vfs.unwrap_or_else(|| Arc::new(PosixVfs::default()));
    // A new database: an import never merges into data, and never opens (so never recovers
    // into, or cleans up) a directory that holds anything.
    // (On the real filesystem with `read_dir`: a `Vfs` lists only names it can decode, and an
    // entry whose name is not UTF-8 must count too.)
    let empty = if real {
        std::fs::read_dir(dir).map(|mut entries| entries.next().is_none())
    } else {
        fs.list_dir(dir).map(|entries| entries.is_empty())
    };
    match empty {
        Ok(empty) => {
            if !empty {
                return Err(Failure::Usage(format!(
                    "{} is not empty: import creates a new database",
                    dir.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Failure::Usage(format!("{}: {e}", dir.display()))),
    }
    let mut opts = Options::default().durability(Durability::Buffered {
        interval: std::time::Duration::from_millis(100),
        max_pending: 1 << 16,
    });
    if !real {
        opts = opts.vfs(fs.clone());
    }
    // Every value must fit the new database, checked before anything is written.
    let max_value = |key: &[u8]| opts.max_value_len(key.len());
    if let Some((lsn, k, v, n)) = recs
        .iter()
        .find(|(_, k, v, _)| v.as_ref().is_some_and(|v| v.len() > max_value(k)))
    {
        return Err(bad(
            *n,
            format!(
                "the value of key {} (LSN {lsn}) is {} bytes, above the {} a database with the default segment size holds: nothing imported",
                crate::bytes::escape(k),
                v.as_ref().map_or(0, |v| v.len()),
                max_value(k)
            ),
        ));
    }
    // With versions, one transaction per source LSN: each must fit one transaction of the new
    // database (one log segment), checked before anything is written.
    let mut by_lsn: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    if header.versions {
        for (i, r) in recs.iter().enumerate() {
            by_lsn.entry(r.0).or_default().push(i);
        }
        let max = max_txn_bytes(&opts);
        for (lsn, idx) in &by_lsn {
            let ops: Vec<(&[u8], Option<&[u8]>)> = idx
                .iter()
                .map(|&i| (recs[i].1.as_slice(), recs[i].2.as_deref()))
                .collect();
            let len = txn_encoded_len(&ops);
            if len > max {
                return Err(bad(
                    recs[idx[0]].3,
                    format!(
                        "the transaction of LSN {lsn} ({} keys) is {len} encoded bytes, above the {max} one transaction of a database with the default segment size holds (one log segment): nothing imported",
                        idx.len()
                    ),
                ));
            }
        }
    }
    // Written into a new directory beside the target, renamed into place once complete and
    // durable: a failed import (a full disk, say) leaves no partial database under the target's
    // name for `verify` to call sound and an application to open.
    // (A symbolic link to an empty directory: the database goes where it points.)
    let target = if real {
        std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
    } else {
        dir.to_path_buf()
    };
    let staging = staging_dir(&*fs, real, &target)?;
    let txns = match write_import(&staging, opts, &header, &recs, &by_lsn) {
        Ok(txns) => txns,
        Err(e) => return Err(discard(real, &staging, e)),
    };
    if let Err(e) = fs.rename(&staging, &target) {
        let e = Failure::Found(format!(
            "moving the imported database from {} to {}: {e}",
            staging.display(),
            dir.display()
        ));
        return Err(discard(real, &staging, e));
    }
    // The rename is durable once the parent directory is.
    fs.sync_dir(&parent_of(&target)).map_err(|e| {
        Failure::Found(format!(
            "syncing the directory of {} after the import: {e}",
            dir.display()
        ))
    })?;
    Ok(Imported {
        keys,
        records: recs.len() as u64,
        versions: header.versions,
        transactions: txns,
    })
}

/// Creates the database `dir` and writes the checked records into it: one transaction per source
/// LSN with versions, else batches. Returns the transactions committed; the database is closed
/// (every byte durable) when it returns `Ok`.
fn write_import(
    dir: &std::path::Path,
    opts: Options,
    header: &Header,
    recs: &[Record],
    by_lsn: &BTreeMap<u64, Vec<usize>>,
) -> Result<u64, Failure> {
    let db = Db::open(dir, opts).map_err(|e| match e {
        ringlog_db::Error::NotADatabase(_) | ringlog_db::Error::NotADirectory(_) => {
            Failure::Usage(e.to_string())
        }
        e => Failure::Found(format!("opening {}: {e}", dir.display())),
    })?;
    let fail = |e: ringlog_db::Error| Failure::Found(format!("importing: {e}"));
    let mut txns = 0u64;
    if header.versions {
        // Every version stays: the policy that keeps them, set before the first one.
        db.set_retention(Retention::All).map_err(fail)?;
        // One transaction per source LSN, in LSN order: the versions' order, and which of them
        // one transaction wrote, are kept (the LSNs themselves are the new database's).
        for idx in by_lsn.values() {
            let mut tx = db.begin();
            for &i in idx {
                let (_, k, v, _) = &recs[i];
                match v {
                    Some(v) => tx.put(k, v),
                    None => tx.delete(k),
                }
                .map_err(fail)?;
            }
            tx.commit().map_err(fail)?;
            txns += 1;
        }
    } else {
        // Batches of at most 1,024 keys and IMPORT_BATCH_BYTES (a transaction must fit one
        // segment; a value alone always does, checked above).
        let mut i = 0;
        while i < recs.len() {
            let mut tx = db.begin();
            let mut bytes = 0usize;
            while i < recs.len() && tx.len() < 1024 {
                let (_, k, v, _) = &recs[i];
                let size = k.len() + v.as_ref().map_or(0, |v| v.len()) + 64;
                if !tx.is_empty() && bytes + size > IMPORT_BATCH_BYTES {
                    break;
                }
                match v {
                    Some(v) => tx.put(k, v),
                    None => tx.delete(k),
                }
                .map_err(fail)?;
                bytes += size;
                i += 1;
            }
            tx.commit().map_err(fail)?;
            txns += 1;
        }
    }
    db.sync().map_err(fail)?;
    db.close().map_err(fail)?;
    Ok(txns)
}

/// The directory an import into `dir` is written in before it is renamed to `dir`: beside it
/// (the same filesystem), hidden, named after it and this process. One that exists already (a
/// killed import's whose process had the same id) is refused, not reused.
fn staging_dir(
    fs: &dyn Vfs,
    real: bool,
    dir: &std::path::Path,
) -> Result<std::path::PathBuf, Failure> {
    let name = dir.file_name().ok_or_else(|| {
        Failure::Usage(format!(
            "{}: import needs a directory path that ends in a name",
            dir.display()
        ))
    })?;
    let staging = parent_of(dir).join(format!(
        ".{}.import-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    // On a real filesystem a dangling symbolic link counts too.
    let exists = if real {
        staging.symlink_metadata().is_ok()
    } else {
        fs.kind_of(&staging)
            .map_err(|e| Failure::Found(format!("{}: {e}", staging.display())))?
            .is_some()
    };
    if exists {
        return Err(Failure::Usage(format!(
            "{} exists (left by an import that did not finish?): remove it first",
            staging.display()
        )));
    }
    Ok(staging)
}

/// The directory holding `p` (`.` for a relative path of one component).
fn parent_of(p: &std::path::Path) -> std::path::PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    }
}

/// Removes an unfinished import's staging directory (best effort: what is left is hidden and
/// named after the import, never the target) and returns the import's failure, which says so
/// when the removal failed too. On another I/O layer than the real filesystem (`real` false) the
/// staging directory stays.
fn discard(real: bool, staging: &std::path::Path, e: Failure) -> Failure {
    if !real {
        return e;
    }
    match std::fs::remove_dir_all(staging) {
        Ok(()) => e,
        Err(r) if r.kind() == std::io::ErrorKind::NotFound => e,
        Err(r) => {
            let left = format!(
                " (the unfinished import is left in {}: {r})",
                staging.display()
            );
            match e {
                Failure::Found(m) => Failure::Found(m + &left),
                Failure::Usage(m) => Failure::Usage(m + &left),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`max_txn_bytes`] and [`txn_encoded_len`] are the engine's: a transaction of exactly
    /// the limit commits, 8 bytes more is refused (on a database of the smallest segments).
    #[test]
    fn the_transaction_limit_is_the_engines() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options::default().segment_size(ringlog_db::MIN_SEGMENT_SIZE);
        let max = max_txn_bytes(&opts);
        let db = Db::open(dir.path().join("db"), opts).unwrap();
        let fits = |extra: usize| {
            // Two keys: the second's value fills the transaction up to the limit, plus `extra`.
            let base = txn_encoded_len(&[(b"a", Some(&[][..])), (b"b", Some(&[][..]))]);
            let v = vec![7u8; max - base + extra];
            let ops: [(&[u8], Option<&[u8]>); 2] = [(b"a", Some(&[][..])), (b"b", Some(&v))];
            assert_eq!(txn_encoded_len(&ops), max + extra);
            let mut tx = db.begin();
            tx.put(b"a", b"").unwrap();
            let r = tx.put(b"b", &v).and_then(|()| tx.commit().map(|_| ()));
            match r {
                Ok(()) => true,
                Err(ringlog_db::Error::TransactionTooLarge { .. }) => false,
                Err(e) => panic!("{e}"),
            }
        };
        assert!(fits(0));
        assert!(!fits(8));
        assert_eq!(
            txn_encoded_len(&[(b"k", None)]),
            ringlog_format::encoded_len(1, 0)
        );
    }
}
