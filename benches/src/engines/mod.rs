//! The engines the harness runs: ringlog, the raw append loops, and the peers compiled in.

pub mod peers;
pub mod raw;
pub mod ringlog;
