//! The runner's random choices: the workspace's PRNG ([`ringlog_rng`]), re-exported.

pub use ringlog_rng::{mix, Rng};
