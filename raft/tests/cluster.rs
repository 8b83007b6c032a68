//! The three-node in-process cluster of `examples/cluster.rs`, as a test: initialize, write
//! through the leader, read on every node, kill a node and restart it from its directory (it
//! catches up by log replication, then by a snapshot after the leader purged its log). Every
//! check of the scenario fails the test; waits are on openraft's metrics, with generous bounds.

#[path = "common/cluster.rs"]
mod cluster;

use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_write_kill_restart_catch_up() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let t = Instant::now();
    let s = match cluster::scenario(dir.path()).await {
        Ok(s) => s,
        Err(e) => panic!("the cluster scenario failed: {e}"),
    };
    // 10 alpha + 10 beta + 10 gamma keys (alpha-03 deleted, still checked as absent).
    assert_eq!(s.keys.len(), 30, "{s:?}");
    assert_eq!(s.keys.values().filter(|v| v.is_none()).count(), 1, "{s:?}");
    assert_ne!(s.leader, s.victim, "{s:?}");
    assert!(s.installed_snapshot <= s.last_index, "{s:?}");
    assert!(
        s.installed_snapshot > 20,
        "the snapshot covers the gamma writes: {s:?}"
    );
    eprintln!("cluster scenario: {:?}", t.elapsed());
}
