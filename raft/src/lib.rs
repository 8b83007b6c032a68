//! ringlog as the storage of [openraft](https://docs.rs/openraft) (0.10, pinned alpha): a
//! [`LogStore`] implementing `RaftLogStorage` and `RaftLogReader` on a ringlog database, durable
//! through its group commit, and a small key-value [`StateMachine`] on ringlog for the examples
//! and the conformance suite. See docs/RAFT.md for the durability contract and how it is tested.

mod codec;
pub mod kv;
pub mod log_store;
pub mod state_machine;

pub use kv::{Request, Response, TypeConfig};
pub use log_store::{LogStore, MAX_PREFIX_LEN};
pub use state_machine::StateMachine;

/// The key namespace of a store or state machine under `prefix`: the prefix framed by its length
/// (2 bytes, big-endian). No two different prefixes give overlapping key spaces, so one that
/// extends another cannot make its keys look like the other's (docs/RAFT.md, "Layout").
fn namespace(prefix: &[u8]) -> std::io::Result<Vec<u8>> {
    let len = u16::try_from(prefix.len()).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "a key prefix of {} bytes: at most {} are allowed",
                prefix.len(),
                u16::MAX
            ),
        )
    })?;
    let mut ns = Vec::with_capacity(2 + prefix.len());
    ns.extend_from_slice(&len.to_be_bytes());
    ns.extend_from_slice(prefix);
    Ok(ns)
}
