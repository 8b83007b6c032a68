//! `Vfs::file_writer`: the io_uring writer (several writes in flight) and the portable one write
//! the same bytes, in any order of pieces, report errors, and never free a buffer the kernel may
//! still read (dropping a writer with writes in flight waits for them).

use std::sync::Arc;

use ringlog_uring::{probe_uring, OpenOptions, PosixVfs, UringVfs, Vfs};

/// The backends to check: the portable one always, io_uring where the kernel offers it.
fn backends() -> Vec<Arc<dyn Vfs>> {
    let mut v: Vec<Arc<dyn Vfs>> = vec![Arc::new(PosixVfs::default())];
    match probe_uring() {
        Ok(_) => v.push(Arc::new(UringVfs::new("test".into()))),
        Err(why) => eprintln!("io_uring unavailable here ({why}): portable writer only"),
    }
    v
}

/// Deterministic bytes for piece `i`.
fn piece(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

fn rw() -> OpenOptions {
    OpenOptions {
        write: true,
        create: true,
        direct: false,
    }
}

#[test]
fn pieces_in_any_order_read_back_the_same() {
    for vfs in backends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = vfs.open(&path, rw()).unwrap();
        // Pieces of uneven sizes, submitted out of order (more than the ring's depth at once).
        let sizes: Vec<usize> = (0..23).map(|i| 1 + (i * 7919) % 300_000).collect();
        let offsets: Vec<u64> = sizes
            .iter()
            .scan(0u64, |at, &n| {
                let o = *at;
                *at += n as u64;
                Some(o)
            })
            .collect();
        let mut order: Vec<usize> = (0..sizes.len()).collect();
        order.reverse();
        order.swap(3, 17);
        let mut w = vfs.file_writer(&*file);
        for &i in &order {
            w.write(piece(i, sizes[i]), offsets[i]).unwrap();
        }
        w.finish(true).unwrap();
        drop(w);
        let bytes = std::fs::read(&path).unwrap();
        let want: Vec<u8> = (0..sizes.len()).flat_map(|i| piece(i, sizes[i])).collect();
        assert_eq!(bytes.len(), want.len(), "{}", vfs.backend().kind);
        assert!(bytes == want, "{}: contents differ", vfs.backend().kind);
    }
}

#[test]
fn dropping_a_writer_waits_for_its_writes() {
    for vfs in backends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = vfs.open(&path, rw()).unwrap();
        {
            let mut w = vfs.file_writer(&*file);
            for i in 0..8 {
                w.write(piece(i, 1 << 20), (i as u64) << 20).unwrap();
            }
            // No finish: the writes in flight complete before the buffers go.
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 8 << 20);
        for i in 0..8 {
            assert!(bytes[i << 20..(i + 1) << 20] == piece(i, 1 << 20)[..]);
        }
    }
}

#[test]
fn errors_are_reported_and_sticky() {
    for vfs in backends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        // Read-only: every write fails (EBADF), whether at `write` or at `finish`.
        let file = vfs.open(&path, OpenOptions::default()).unwrap();
        let mut w = vfs.file_writer(&*file);
        let first = w.write(vec![1; 4096], 0);
        let later = w.finish(true);
        assert!(
            first.is_err() || later.is_err(),
            "{}: a write to a read-only file succeeded",
            vfs.backend().kind
        );
        assert!(
            w.finish(true).is_err(),
            "{}: the failure is sticky",
            vfs.backend().kind
        );
    }
}
