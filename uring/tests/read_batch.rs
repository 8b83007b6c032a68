//! `Vfs::read_batch`: the io_uring backend (every read of a batch in one submission on a pooled
//! ring) and the portable default (one `read_exact_at` after the other) fill the same bytes, report
//! errors per request — `UnexpectedEof` past the end of a file — without failing the rest of the
//! batch, and read files without a descriptor through their own methods.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::thread;

use ringlog_uring::{
    probe_uring, Allocation, BatchRead, OpenOptions, PosixVfs, UringVfs, VFile, Vfs,
};

/// The backends to check: the portable one always, io_uring where the kernel offers it.
fn backends() -> Vec<Arc<dyn Vfs>> {
    let mut v: Vec<Arc<dyn Vfs>> = vec![Arc::new(PosixVfs::default())];
    match probe_uring() {
        Ok(_) => v.push(Arc::new(UringVfs::new("test".into()))),
        Err(why) => eprintln!("io_uring unavailable here ({why}): portable reads only"),
    }
    v
}

/// `len` bytes of a pattern that differs per `seed`, so misplaced reads show.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(0x9e37_79b9)) as u8)
        .collect()
}

/// Writes `len` pattern bytes (per `seed`) to `dir/name` and opens it read-only through `vfs`.
fn pattern_file(
    vfs: &dyn Vfs,
    dir: &Path,
    name: &str,
    seed: u64,
    len: usize,
) -> (Box<dyn VFile>, Vec<u8>) {
    let bytes = pattern(seed, len);
    std::fs::write(dir.join(name), &bytes).unwrap();
    (
        vfs.open(&dir.join(name), OpenOptions::default()).unwrap(),
        bytes,
    )
}

/// Reads `spans` (offset, length) of `file` in one batch: each request's result and bytes.
fn read_spans(
    vfs: &dyn Vfs,
    file: &dyn VFile,
    spans: &[(u64, usize)],
) -> Vec<(io::Result<()>, Vec<u8>)> {
    let mut bufs: Vec<Vec<u8>> = spans.iter().map(|&(_, len)| vec![0; len]).collect();
    let mut reads: Vec<BatchRead<'_>> = spans
        .iter()
        .zip(&mut bufs)
        .map(|(&(at, _), buf)| BatchRead::new(file, at, buf))
        .collect();
    vfs.read_batch(&mut reads);
    let results: Vec<io::Result<()>> = reads
        .into_iter()
        .map(|r| r.result.expect("read_batch sets every result"))
        .collect();
    results.into_iter().zip(bufs).collect()
}

fn assert_eof(r: &io::Result<()>, what: &str) {
    match r {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{what}: {e}"),
        Ok(()) => panic!("{what}: read past the end succeeded"),
    }
}

#[test]
fn many_reads_at_various_offsets_read_back_the_same() {
    for vfs in backends() {
        let kind = vfs.backend().kind;
        let dir = tempfile::tempdir().unwrap();
        let len = 3 << 20;
        let (file, bytes) = pattern_file(&*vfs, dir.path(), "f", 1, len);
        // 200 requests (more than a ring holds), lengths from 1 byte to 1 MiB, overlapping,
        // out of order, and the file's first and last bytes.
        let mut spans: Vec<(u64, usize)> = (0..198)
            .map(|i: usize| {
                let n = match i % 5 {
                    0 => 1,
                    1 => 4096,
                    2 => 1 + i * 37,
                    3 => 65_537,
                    _ => 1 << 20,
                };
                let at = (i * 7_919_013) % (len - n);
                (at as u64, n)
            })
            .collect();
        spans.push((0, 10));
        spans.push(((len - 10) as u64, 10));
        let got = read_spans(&*vfs, &*file, &spans);
        for (&(at, n), (result, buf)) in spans.iter().zip(&got) {
            assert!(result.is_ok(), "{kind}: read at {at}: {result:?}");
            let at = at as usize;
            assert!(
                buf[..] == bytes[at..at + n],
                "{kind}: read at {at}, {n} bytes"
            );
        }
    }
}

#[test]
fn a_read_past_the_end_fails_alone() {
    for vfs in backends() {
        let kind = vfs.backend().kind;
        let dir = tempfile::tempdir().unwrap();
        let (file, bytes) = pattern_file(&*vfs, dir.path(), "f", 2, 10_000);
        let spans = [
            (0, 100),       // inside
            (9_990, 20),    // starts inside, ends past the end
            (5_000, 200),   // inside
            (20_000, 10),   // starts past the end
            (9_000, 1_000), // ends exactly at the end
            (10_000, 1),    // starts exactly at the end
            (10_000, 0),    // empty, at the end
            (1 << 40, 0),   // empty, far past the end
            (1_000, 9_001), // one byte too many
            (u64::MAX, 4),  // an offset no file reaches (pread: EINVAL)
        ];
        let got = read_spans(&*vfs, &*file, &spans);
        for (i, &(at, n)) in spans.iter().enumerate() {
            let (result, buf) = &got[i];
            let what = format!("{kind}: request {i} ({n} bytes at {at})");
            let at = at as usize;
            if n == 0 {
                assert!(result.is_ok(), "{what}: {result:?}");
            } else if at > i64::MAX as usize {
                let e = result.as_ref().expect_err(&what);
                assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{what}: {e}");
            } else if at + n <= bytes.len() {
                assert!(result.is_ok(), "{what}: {result:?}");
                assert!(buf[..] == bytes[at..at + n], "{what}");
            } else {
                assert_eof(result, &what);
            }
        }
    }
}

#[test]
fn reads_on_two_files_in_one_batch() {
    for vfs in backends() {
        let kind = vfs.backend().kind;
        let dir = tempfile::tempdir().unwrap();
        let (a, a_bytes) = pattern_file(&*vfs, dir.path(), "a", 3, 50_000);
        let (b, b_bytes) = pattern_file(&*vfs, dir.path(), "b", 4, 70_000);
        let mut bufs: Vec<Vec<u8>> = (0..100).map(|i| vec![0; 1 + i * 13]).collect();
        let mut reads: Vec<BatchRead<'_>> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, buf)| {
                let file: &dyn VFile = if i % 2 == 0 { &*a } else { &*b };
                BatchRead::new(file, (i * 311) as u64, buf)
            })
            .collect();
        vfs.read_batch(&mut reads);
        for r in &reads {
            assert!(matches!(r.result, Some(Ok(()))), "{kind}: {r:?}");
        }
        drop(reads);
        for (i, buf) in bufs.iter().enumerate() {
            let want = if i % 2 == 0 { &a_bytes } else { &b_bytes };
            let at = i * 311;
            assert!(buf[..] == want[at..at + buf.len()], "{kind}: request {i}");
        }
    }
}

#[test]
fn an_empty_buffer_is_ok() {
    for vfs in backends() {
        let kind = vfs.backend().kind;
        let dir = tempfile::tempdir().unwrap();
        let (file, _) = pattern_file(&*vfs, dir.path(), "f", 5, 100);
        // Alone, with others, and an empty batch.
        let got = read_spans(&*vfs, &*file, &[(7, 0)]);
        assert!(got[0].0.is_ok(), "{kind}: {:?}", got[0].0);
        let got = read_spans(&*vfs, &*file, &[(0, 0), (0, 100), (50, 0)]);
        assert!(got.iter().all(|(r, _)| r.is_ok()), "{kind}: {got:?}");
        vfs.read_batch(&mut []);
    }
}

#[test]
fn a_result_set_before_the_call_is_replaced() {
    for vfs in backends() {
        let kind = vfs.backend().kind;
        let dir = tempfile::tempdir().unwrap();
        let (file, bytes) = pattern_file(&*vfs, dir.path(), "f", 6, 100);
        let (mut good, mut bad) = (vec![0; 10], vec![0; 10]);
        let mut reads = [
            BatchRead::new(&*file, 0, &mut good),
            BatchRead::new(&*file, 95, &mut bad),
        ];
        reads[0].result = Some(Err(io::Error::other("stale")));
        reads[1].result = Some(Ok(()));
        vfs.read_batch(&mut reads);
        assert!(matches!(reads[0].result, Some(Ok(()))), "{kind}");
        assert_eof(reads[1].result.as_ref().unwrap(), &format!("{kind}"));
        drop(reads);
        assert_eq!(good[..], bytes[..10]);
    }
}

/// An in-memory file: no descriptor, so every backend reads it through `read_at`.
struct MemFile(Vec<u8>);

impl VFile for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        // Short reads on purpose: `read_exact_at` must loop.
        let n = buf.len().min(self.0.len() - start).min(7);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
    fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn sync_all(&self) -> io::Result<()> {
        Ok(())
    }
    fn allocate(&self, _: u64) -> io::Result<Allocation> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.len() as u64)
    }
    fn set_len(&self, _: u64) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn direct_io(&self) -> Option<usize> {
        None
    }
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
}

#[test]
fn files_without_a_descriptor_are_read_through_their_own_methods() {
    for vfs in backends() {
        let kind = vfs.backend().kind;
        let dir = tempfile::tempdir().unwrap();
        let (disk, disk_bytes) = pattern_file(&*vfs, dir.path(), "f", 7, 1000);
        let mem = MemFile(pattern(8, 1000));
        let (mut a, mut b, mut c, mut d) = (vec![0; 100], vec![0; 100], vec![0; 50], vec![0; 1]);
        let mut reads = [
            BatchRead::new(&mem, 10, &mut a),
            BatchRead::new(&*disk, 20, &mut b),
            BatchRead::new(&mem, 990, &mut c),
            BatchRead::new(&mem, 999, &mut d),
        ];
        vfs.read_batch(&mut reads);
        assert!(matches!(reads[0].result, Some(Ok(()))), "{kind}: {reads:?}");
        assert!(matches!(reads[1].result, Some(Ok(()))), "{kind}: {reads:?}");
        assert_eof(reads[2].result.as_ref().unwrap(), &format!("{kind}"));
        assert!(matches!(reads[3].result, Some(Ok(()))), "{kind}: {reads:?}");
        drop(reads);
        assert_eq!(a[..], mem.0[10..110]);
        assert_eq!(b[..], disk_bytes[20..120]);
        assert_eq!(d[..], mem.0[999..]);
    }
}

/// A kernel file open for writing only: every read of it fails with `EBADF`.
struct WriteOnly(std::fs::File);

impl VFile for WriteOnly {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn allocate(&self, _: u64) -> io::Result<Allocation> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn direct_io(&self) -> Option<usize> {
        None
    }
    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.0.as_raw_fd())
    }
}

#[test]
fn an_os_error_fails_only_its_request() {
    for vfs in backends() {
        let kind = vfs.backend().kind;
        let dir = tempfile::tempdir().unwrap();
        let (file, bytes) = pattern_file(&*vfs, dir.path(), "f", 9, 1000);
        let wo = WriteOnly(
            std::fs::OpenOptions::new()
                .write(true)
                .open(dir.path().join("f"))
                .unwrap(),
        );
        let (mut a, mut b, mut c) = (vec![0; 10], vec![0; 10], vec![0; 10]);
        let mut reads = [
            BatchRead::new(&*file, 0, &mut a),
            BatchRead::new(&wo, 0, &mut b),
            BatchRead::new(&*file, 990, &mut c),
        ];
        vfs.read_batch(&mut reads);
        assert!(matches!(reads[0].result, Some(Ok(()))), "{kind}: {reads:?}");
        match &reads[1].result {
            Some(Err(e)) => assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{kind}: {e}"),
            other => panic!("{kind}: a read of a write-only file gave {other:?}"),
        }
        assert!(matches!(reads[2].result, Some(Ok(()))), "{kind}: {reads:?}");
        drop(reads);
        assert_eq!(a[..], bytes[..10]);
        assert_eq!(c[..], bytes[990..]);
    }
}

#[test]
fn batches_from_many_threads_at_once() {
    for vfs in backends() {
        let kind = vfs.backend().kind;
        let dir = tempfile::tempdir().unwrap();
        let (file, bytes) = pattern_file(&*vfs, dir.path(), "f", 10, 1 << 20);
        let (file, bytes) = (&*file, &bytes);
        thread::scope(|s| {
            for t in 0..8usize {
                let vfs = &vfs;
                s.spawn(move || {
                    for round in 0..20usize {
                        let spans: Vec<(u64, usize)> = (0..100usize)
                            .map(|i| {
                                let n = 1 + (i * 131 + t * 17 + round) % 8192;
                                (
                                    ((i * 65_537 + t * 4099 + round * 31) % ((1 << 20) - n)) as u64,
                                    n,
                                )
                            })
                            .collect();
                        for (&(at, n), (result, buf)) in
                            spans.iter().zip(read_spans(&**vfs, file, &spans))
                        {
                            assert!(result.is_ok(), "{kind}: {result:?}");
                            let at = at as usize;
                            assert!(buf[..] == bytes[at..at + n], "{kind}: {n} bytes at {at}");
                        }
                    }
                });
            }
        });
    }
}
