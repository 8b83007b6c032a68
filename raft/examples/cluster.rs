//! A three-node openraft cluster in one process, every node on its own ringlog database: writes
//! through the leader, reads on every node, a node killed and restarted from its directory
//! (catching up by log replication, then, after the leader purged its log, by a snapshot).
//!
//! ```text
//! cargo run -p ringlog-openraft --example cluster [DIR]
//! ```
//!
//! The node directories are DIR/node-1, DIR/node-2 and DIR/node-3 (they must not exist), or in
//! a temporary directory removed at the end. Exits with status 1 if a check fails. The cluster
//! harness is shared with `tests/cluster.rs`.

#[path = "../tests/common/cluster.rs"]
mod cluster;

use std::path::PathBuf;
use std::process::ExitCode;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let (root, _tmp) = match std::env::args_os().nth(1) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if let Err(e) = std::fs::create_dir_all(&dir) {
                eprintln!("cannot create {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
            (dir, None)
        }
        None => match tempfile::tempdir() {
            Ok(t) => (t.path().to_path_buf(), Some(t)),
            Err(e) => {
                eprintln!("cannot create a temporary directory: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    match cluster::scenario(&root).await {
        Ok(s) => {
            println!(
                "done: {} keys checked on every node (first leader: node {}; node {} restarted \
                 twice; last index {}; snapshot installed at {})",
                s.keys.len(),
                s.leader,
                s.victim,
                s.last_index,
                s.installed_snapshot
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
