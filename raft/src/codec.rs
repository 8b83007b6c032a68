//! How the store and the state machine keep values: postcard, decoding checked.

use std::io;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// `v` as postcard bytes.
pub(crate) fn encode<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    postcard::to_stdvec(v).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// The `what` stored under `key` as `b`; `InvalidData` (never a panic) when it does not decode.
pub(crate) fn decode<T: DeserializeOwned>(what: &str, key: &[u8], b: &[u8]) -> io::Result<T> {
    postcard::from_bytes(b).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the stored {what} under key {key:?} does not decode: {e}"),
        )
    })
}
