//! The key-value requests of the examples, the tests and the benchmarks, and their type
//! configuration.

use serde::{Deserialize, Serialize};

/// A write to the key-value state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Sets `key` to `value`.
    Set {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: String,
    },
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Set { key, value } => write!(f, "set {key} ({} bytes)", value.len()),
            Request::Delete { key } => write!(f, "delete {key}"),
        }
    }
}

/// What applying a [`Request`] returns: the key's previous value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The value the key had before the request.
    pub previous: Option<String>,
}

openraft::declare_raft_types!(
    /// The type configuration of the key-value examples: [`Request`] in, [`Response`] out,
    /// openraft's defaults otherwise (u64 node ids, tokio).
    pub TypeConfig:
        D = Request,
        R = Response,
);
