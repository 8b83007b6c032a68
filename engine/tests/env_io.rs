//! `RINGLOG_IO` decides the I/O path only when the code left the choice on `IoChoice::Auto`; an
//! explicit `Uring` or `Portable` is never overridden, and a value the variable does not
//! understand is an error (for `Auto`), not a silent default. Environment variables are
//! process-global, so this is the only test of its binary.

mod common;

use std::sync::Arc;

use common::*;
use ringlog_db::io::{BackendKind, PosixVfs};
use ringlog_db::{Db, Durability, Error, IoChoice};

#[test]
fn ringlog_io_environment_variable() {
    let saved = std::env::var_os("RINGLOG_IO");

    // A value that is set but not understood: an Auto open fails before touching the disk.
    std::env::set_var("RINGLOG_IO", "fast-please");
    let dir = tempdir();
    let path = dir.path().join("db");
    match Db::open(&path, opts(IoChoice::Auto, Durability::Strict)) {
        Err(e @ Error::Io { .. }) => {
            let Error::Io { source, .. } = &e else {
                unreachable!()
            };
            assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput, "{e}");
            assert!(e.to_string().contains("fast-please"), "{e}");
        }
        other => panic!("RINGLOG_IO=fast-please with Auto: {other:?}"),
    }
    assert!(!path.exists(), "the directory was created");
    for io in paths() {
        // An explicit path ignores the variable, even a bad one.
        let dir = tempdir();
        let db = open(dir.path(), opts(io, Durability::Strict));
        db.put(b"k", b"v").unwrap();
        db.close().unwrap();
        // A custom Vfs is used as given: the variable does not apply.
        let dir = tempdir();
        let o = opts(IoChoice::Auto, Durability::Strict).vfs(Arc::new(PosixVfs::default()));
        let db = Db::open(dir.path(), o).expect("a custom Vfs ignores RINGLOG_IO");
        db.put(b"k", b"v").unwrap();
        db.close().unwrap();
    }

    // A valid value decides for Auto, and only for Auto.
    for (env, want) in [
        ("portable", BackendKind::Portable),
        ("uring", BackendKind::Uring),
    ] {
        std::env::set_var("RINGLOG_IO", env);
        let dir = tempdir();
        let db = Db::open(dir.path(), opts(IoChoice::Auto, Durability::Strict))
            .unwrap_or_else(|e| panic!("RINGLOG_IO={env} with Auto: {e}"));
        let backend = db.stats().backend.unwrap();
        assert_eq!(backend.kind, want, "{backend:?}");
        assert!(backend.reason.contains("RINGLOG_IO"), "{backend:?}");
        db.put(b"k", b"v").unwrap();
        db.close().unwrap();
        for io in paths() {
            let dir = tempdir();
            let db = open(dir.path(), opts(io, Durability::Strict));
            let backend = db.stats().backend.unwrap();
            let asked = match io {
                IoChoice::Uring => BackendKind::Uring,
                _ => BackendKind::Portable,
            };
            assert_eq!(backend.kind, asked, "RINGLOG_IO={env} overrode {io:?}");
            db.close().unwrap();
        }
    }

    match saved {
        Some(v) => std::env::set_var("RINGLOG_IO", v),
        None => std::env::remove_var("RINGLOG_IO"),
    }
}
