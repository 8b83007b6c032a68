//! `RINGLOG_IO` overrides `Options::io`, and a value it does not understand is an error, not a
//! silent default. Environment variables are process-global, so this is the only test of its
//! binary.

mod common;

use std::sync::Arc;

use common::*;
use ringlog::io::{BackendKind, PosixVfs};
use ringlog::{Db, Durability, Error, IoChoice, Options};

#[test]
fn ringlog_io_environment_variable() {
    let saved = std::env::var_os("RINGLOG_IO");

    // A value that is set but not understood: opening fails before touching the disk.
    std::env::set_var("RINGLOG_IO", "fast-please");
    for io in paths() {
        let dir = tempdir();
        let path = dir.path().join("db");
        match Db::open(&path, opts(io, Durability::Strict)) {
            Err(e @ Error::Io { .. }) => {
                let Error::Io { source, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput, "{e}");
                assert!(e.to_string().contains("fast-please"), "{e}");
            }
            other => panic!("RINGLOG_IO=fast-please with {io:?}: {other:?}"),
        }
        assert!(!path.exists(), "the directory was created");
        // A custom Vfs is used as given: the variable does not apply.
        let o = Options {
            vfs: Some(Arc::new(PosixVfs::default())),
            ..opts(io, Durability::Strict)
        };
        let db = Db::open(&path, o).expect("a custom Vfs ignores RINGLOG_IO");
        db.put(b"k", b"v").unwrap();
        db.close().unwrap();
        // An in-memory database has no I/O path at all.
        let mem = Db::open(
            dir.path().join("mem"),
            Options {
                io,
                ..Options::with_durability(Durability::InMemory)
            },
        )
        .expect("InMemory needs no I/O path");
        mem.put(b"k", b"v").unwrap();
    }

    // A valid value overrides the option.
    std::env::set_var("RINGLOG_IO", "portable");
    for io in paths() {
        let dir = tempdir();
        let db = Db::open(dir.path(), opts(io, Durability::Strict))
            .unwrap_or_else(|e| panic!("RINGLOG_IO=portable with {io:?}: {e}"));
        let backend = db.stats().backend.unwrap();
        assert_eq!(backend.kind, BackendKind::Portable, "{backend:?}");
        assert!(backend.reason.contains("RINGLOG_IO"), "{backend:?}");
        db.put(b"k", b"v").unwrap();
        db.close().unwrap();
    }
    std::env::set_var("RINGLOG_IO", "uring");
    let dir = tempdir();
    let db = Db::open(dir.path(), opts(IoChoice::Portable, Durability::Strict))
        .unwrap_or_else(|e| panic!("RINGLOG_IO=uring overriding Portable: {e}"));
    let backend = db.stats().backend.unwrap();
    assert_eq!(backend.kind, BackendKind::Uring, "{backend:?}");
    drop(db);

    match saved {
        Some(v) => std::env::set_var("RINGLOG_IO", v),
        None => std::env::remove_var("RINGLOG_IO"),
    }
}
