//! openraft's storage contract at its edges (a review's finds, each failing on the code before
//! the fix): an empty append is acknowledged only once everything appended before it is durable
//! (openraft reads a completed IO as a watermark of every earlier one); a hole in the stored log
//! is an error, never a shorter log; a key prefix too long for an entry's key is refused up
//! front instead of failing every append.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::testing::log_id;
use openraft::type_config::TypeConfigExt;
use openraft::RaftLogReader;
use parking_lot::{Condvar, Mutex};
use ringlog_db::io::{BackendInfo, BackendKind, LogDriver, SyncStrategy, VFile, Waker};
use ringlog_db::{Db, IoChoice, Options, Vfs};
use ringlog_openraft::{LogStore, Request, TypeConfig, MAX_PREFIX_LEN};

type Entry = openraft::alias::EntryOf<TypeConfig>;

fn entry(index: u64) -> Entry {
    Entry::new_normal(
        log_id::<TypeConfig>(1, 1, index),
        Request::Set {
            key: format!("k{index}"),
            value: format!("v{index}"),
        },
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn on_each_path(f: impl Fn(IoChoice)) {
    for io in [IoChoice::Portable, IoChoice::Uring] {
        f(io);
    }
}

async fn append_acked(store: &mut LogStore<TypeConfig>, entries: Vec<Entry>) {
    let (tx, rx) = TypeConfig::oneshot();
    store.append(entries, IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
}

/// Shut: no durable log write passes until it opens.
#[derive(Default)]
struct Gate {
    shut: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn set(&self, shut: bool) {
        *self.shut.lock() = shut;
        self.cv.notify_all();
    }
    fn pass(&self) {
        let mut shut = self.shut.lock();
        while *shut {
            self.cv.wait(&mut shut);
        }
    }
}

/// A disk whose every durable log write goes through its driver, and waits at the gate.
struct GatedVfs {
    inner: Arc<dyn Vfs>,
    gate: Arc<Gate>,
}

impl Vfs for GatedVfs {
    fn backend(&self) -> BackendInfo {
        BackendInfo::new(BackendKind::Custom, "gated (test)".to_string())
    }
    ringlog_db::io::forward_fs_ops!(inner);
    fn log_driver(&self) -> io::Result<Box<dyn LogDriver>> {
        Ok(Box::new(GatedDriver {
            inner: self.inner.log_driver()?,
            gate: self.gate.clone(),
        }))
    }
}

struct GatedDriver {
    inner: Box<dyn LogDriver>,
    gate: Arc<Gate>,
}

impl LogDriver for GatedDriver {
    fn write_durable(
        &mut self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        self.gate.pass();
        self.inner.write_durable(file, offset, buf, strategy)
    }
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.wait(timeout)
    }
    fn waker(&self) -> Arc<dyn Waker> {
        self.inner.waker()
    }
}

fn open_gated(dir: &Path, io: IoChoice) -> (Arc<Db>, Arc<Gate>) {
    let gate = Arc::new(Gate::default());
    let vfs = Arc::new(GatedVfs {
        inner: ringlog_db::io::select(io).unwrap(),
        gate: gate.clone(),
    });
    let db = Db::open(dir, Options::default().io(io).vfs(vfs)).unwrap();
    (Arc::new(db), gate)
}

#[test]
fn an_empty_append_waits_for_the_appends_before_it() {
    on_each_path(|io| {
        let dir = tempfile::tempdir().unwrap();
        let (db, gate) = open_gated(dir.path(), io);
        rt().block_on(async {
            let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
            // The run's first commit waits for its lease's sync: with the gate open.
            append_acked(&mut s, vec![entry(1)]).await;
            gate.set(true);
            let (c1, r1) = TypeConfig::oneshot();
            s.append(vec![entry(2)], IOFlushed::signal(c1))
                .await
                .unwrap();
            let (c2, r2) = TypeConfig::oneshot();
            s.append(Vec::<Entry>::new(), IOFlushed::signal(c2))
                .await
                .unwrap();
            // Nothing can be durable while the gate is shut: neither may be acknowledged
            // (the empty one was, at once, inside `append`).
            let mut r2 = r2;
            assert!(
                (&mut r2).now_or_never().is_none(),
                "{io:?}: an empty append acknowledged before the append before it is durable"
            );
            gate.set(false);
            r1.await.unwrap().unwrap();
            r2.await.unwrap().unwrap();
        });
    });
}

#[test]
fn a_hole_in_the_log_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    rt().block_on(async {
        let mut s = LogStore::<TypeConfig>::new(db.clone(), b"log/").unwrap();
        append_acked(&mut s, (1..=5).map(entry).collect()).await;
        // Entry 3's key (the namespace: the prefix's length, the prefix; a tag; the index),
        // deleted behind the store's back.
        let mut k = b"\x00\x04log/l".to_vec();
        k.extend_from_slice(&3u64.to_be_bytes());
        assert!(db.get(&k).unwrap().is_some(), "entry 3's key");
        db.delete(&k).unwrap();
        match s.try_get_log_entries(1..=5).await {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}"),
            Ok(es) => panic!(
                "a hole returned as a log: {:?}",
                es.iter().map(|e| e.index()).collect::<Vec<_>>()
            ),
        }
        // Either side of the hole reads.
        assert_eq!(s.try_get_log_entries(1..3).await.unwrap().len(), 2);
        assert_eq!(s.try_get_log_entries(4..6).await.unwrap().len(), 2);
    });
}

#[test]
fn a_prefix_too_long_for_an_entry_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    rt().block_on(async {
        let Err(e) = LogStore::<TypeConfig>::new(db.clone(), &vec![b'p'; MAX_PREFIX_LEN + 1])
        else {
            panic!("a prefix of {} bytes was accepted", MAX_PREFIX_LEN + 1);
        };
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        // The longest allowed prefix works.
        let mut s = LogStore::<TypeConfig>::new(db.clone(), &vec![b'p'; MAX_PREFIX_LEN]).unwrap();
        append_acked(&mut s, vec![entry(1)]).await;
        assert_eq!(s.try_get_log_entries(..).await.unwrap().len(), 1);
    });
}
