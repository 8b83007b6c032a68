//! ringlog as the storage of [openraft](https://docs.rs/openraft) (0.10, pinned alpha): a
//! [`LogStore`] implementing `RaftLogStorage` and `RaftLogReader` on a ringlog database, durable
//! through its group commit, and a small key-value [`StateMachine`] on ringlog for the examples
//! and the conformance suite. See docs/RAFT.md for the durability contract and how it is tested.

mod codec;
pub mod kv;
pub mod log_store;
pub mod state_machine;

pub use kv::{Request, Response, TypeConfig};
pub use log_store::LogStore;
pub use state_machine::StateMachine;
