//! openraft's storage conformance suite (`openraft::testing::log::Suite`) on [`LogStore`] and
//! [`StateMachine`], both in one ringlog database, on each of ringlog's I/O paths.

use std::sync::Arc;
use std::time::Instant;

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;
use ringlog_db::{Db, IoChoice, Options};
use ringlog_openraft::{LogStore, StateMachine, TypeConfig};
use tempfile::TempDir;

/// Opens a fresh database in a temporary directory for every case.
struct Builder {
    io: IoChoice,
}

fn read_err(e: &(impl std::error::Error + 'static)) -> StorageError<TypeConfig> {
    StorageError::read(TypeConfig::err_from_error(e))
}

impl StoreBuilder<TypeConfig, LogStore<TypeConfig>, StateMachine, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore<TypeConfig>, StateMachine), StorageError<TypeConfig>> {
        let dir = TempDir::new().map_err(|e| read_err(&e))?;
        let db = Db::open(dir.path(), Options::default().io(self.io)).map_err(|e| read_err(&e))?;
        let db = Arc::new(db);
        let log = LogStore::<TypeConfig>::new(db.clone(), b"log/").map_err(|e| read_err(&e))?;
        let sm = StateMachine::new(db, b"sm/").map_err(|e| read_err(&e))?;
        Ok((dir, log, sm))
    }
}

fn run(io: IoChoice) {
    let t = Instant::now();
    TypeConfig::run(async move {
        if let Err(e) = Suite::test_all(Builder { io }).await {
            panic!("the openraft storage suite failed on {io:?}: {e}");
        }
    });
    eprintln!("openraft storage suite on {io:?}: {:?}", t.elapsed());
}

#[test]
fn openraft_suite_uring() {
    run(IoChoice::Uring);
}

#[test]
fn openraft_suite_portable() {
    run(IoChoice::Portable);
}
