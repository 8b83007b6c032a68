//! Crash test of the openraft log store (`ringlog-openraft`) by SIGKILL: a child process runs the
//! `raft` mode's workload (appends, votes, truncations, purges, as a Raft node's storage calls)
//! on a real directory, writing an acknowledgement line as each call is acknowledged (an append
//! when its flush callback fired), and is killed at a random moment. After reopening the
//! database the acknowledgements' model must hold ([`ringlog_crash::raft::Model`]): every
//! acknowledged entry not truncated or purged since is there, the vote and the purged id are at
//! least the acknowledged ones, no hole, nothing above an acknowledged truncation predates it.
//! Six kills per I/O path, each child going on from what the last one left. Seeds are printed;
//! the child is this test binary.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use openraft::entry::RaftEntry;
use openraft::storage::RaftLogStorage;
use openraft::type_config::TypeConfigExt;
use openraft::RaftLogReader;
use ringlog_crash::raft::{workload, Ack, Model, PREFIX};
use ringlog_db::{Db, IoChoice, Options};
use ringlog_openraft::{LogStore, TypeConfig};
use ringlog_rng::Rng;

const CHILD: &str = "RINGLOG_RAFT_KILL_CHILD";

fn io_of(s: &str) -> IoChoice {
    if s == "portable" {
        IoChoice::Portable
    } else {
        IoChoice::Uring
    }
}

/// The child's side: runs until killed (nothing to do unless spawned as the child).
#[test]
fn child_process() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let (dir, acks, seed, io) = (
        parts[0],
        parts[1],
        parts[2].parse::<u64>().unwrap(),
        parts[3],
    );
    let db = Arc::new(Db::open(dir, Options::default().io(io_of(io))).unwrap());
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(acks)
        .unwrap();
    TypeConfig::run(async move {
        let mut s = LogStore::<TypeConfig>::new(db, PREFIX).unwrap();
        workload(&mut s, seed, None, |a| {
            // Written by the process the kill ends: the page cache keeps it.
            out.write_all(format!("{}\n", a.line()).as_bytes()).unwrap();
        })
        .await
        .unwrap();
    });
}

#[test]
fn sigkilled_appends_votes_truncations_and_purges_keep_what_was_acknowledged() {
    for name in ["uring", "portable"] {
        let dir = tempfile::tempdir().unwrap();
        let acks = tempfile::NamedTempFile::new().unwrap();
        let mut model = Model::default();
        for round in 0..6u64 {
            let seed = 0x5A17 + round * 7 + (name.len() as u64);
            let before = std::fs::metadata(acks.path()).map_or(0, |m| m.len());
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "child_process",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env(
                    CHILD,
                    format!(
                        "{}|{}|{seed}|{name}",
                        dir.path().display(),
                        acks.path().display()
                    ),
                )
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // Let it work (at least one new acknowledgement), then kill it mid-flight.
            let wait = Duration::from_millis(100 + Rng::new(seed).below(300));
            let start = std::time::Instant::now();
            loop {
                std::thread::sleep(Duration::from_millis(10));
                let acked = std::fs::metadata(acks.path()).map_or(0, |m| m.len()) > before;
                if let Some(status) = child.try_wait().unwrap() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        std::io::Read::read_to_string(&mut e, &mut err).ok();
                    }
                    panic!("seed {seed}: the child exited ({status}) before the kill:\n{err}");
                }
                if acked && start.elapsed() >= wait {
                    break;
                }
            }
            child.kill().unwrap();
            child.wait().unwrap();
            // This round's acknowledgements, on the model the earlier rounds settled.
            let text = std::fs::read_to_string(acks.path()).unwrap();
            for line in text[before as usize..].lines() {
                // A line the kill cut short parses as nothing.
                if let Some(a) = Ack::parse(line) {
                    model.apply(&a);
                }
            }
            let db = Arc::new(Db::open(dir.path(), Options::default().io(io_of(name))).unwrap());
            let m = &mut model;
            let seen = TypeConfig::run(async move {
                let mut s = LogStore::<TypeConfig>::new(db, PREFIX).unwrap();
                let r = m.check(&mut s).await;
                if r.is_ok() {
                    // What an interrupted truncation or purge left is the next round's start.
                    let present = s
                        .try_get_log_entries(..)
                        .await
                        .unwrap()
                        .iter()
                        .map(|e| e.index())
                        .collect();
                    let purged = s
                        .get_log_state()
                        .await
                        .unwrap()
                        .last_purged_log_id
                        .map_or(0, |l| l.index());
                    m.settle(&present, purged);
                }
                r
            });
            match seen {
                Ok(what) => eprintln!(
                    "[{name}] round {round}, seed {seed}, killed after {:?}: {what}",
                    start.elapsed()
                ),
                Err(e) => panic!("[{name}] round {round}, seed {seed}: {e}"),
            }
        }
    }
}
