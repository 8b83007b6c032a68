//! The commit path's decisions that a mutation audit of `engine/src/wal/` (session 36) found no
//! other test or crash campaign checked: when the log thread is woken (a commit reaching
//! `max_pending` exactly, the commit completing a gathered group, a round split across two
//! segments), durable floors and seals that let recovery tell a torn tail from damage, the
//! pipeline's depth, its first failed submission and its expired gathering, a poisoned log
//! releasing commits waiting for visibility, and one commit's `max_pending` override not
//! outliving its round. Each module names its mutation. The log drivers' sleeps and wakes are
//! the tests' own (condition variables); the only time bounds are hang guards.

#[path = "../common/mod.rs"]
mod common;
#[path = "../segfiles/mod.rs"]
mod segfiles;

mod ctl;
mod pipe;

mod durable_floors;
mod group_wake;
mod max_pending_wake;
mod pipeline_depth;
mod pipeline_first_submit_fails;
mod pipeline_gathering_expires;
mod poison_releases_visibility;
mod seal_last_block;
mod split_round_wake;
mod trigger_bytes_reset;

/// Puts `name` (the key, and `v`) on a thread named `name`; its answer arrives on the receiver.
/// The tests tell their committers apart by the names of the threads that block.
fn put_on_thread(
    db: &std::sync::Arc<ringlog_db::Db>,
    name: &str,
) -> std::sync::mpsc::Receiver<ringlog_db::Result<ringlog_db::Lsn>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let db = db.clone();
    let key = name.as_bytes().to_vec();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = tx.send(db.put(&key, b"v"));
        })
        .unwrap();
    rx
}
