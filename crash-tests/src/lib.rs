//! # ringlog-crash
//!
//! The crash-test runner of ringlog: it proves, or disproves, the durability contract by running
//! a seeded workload, crashing it in every way its fault model allows, recovering, and checking an
//! oracle per durability mode. See `docs/CRASH-TESTING.md`.
//!
//! * [`power`]: in-process simulated power loss on the simulated disk ([`sim`], [`crash`]);
//!   with [`power::PowerOptions::fail_sync`] it is the `fsync-error` mode, with
//!   [`power::PowerOptions::fail_write`] the `write-error` mode ([`fsync`]).
//! * [`kill`]: a child process SIGKILLed (or killed at an armed crash point) on a real directory.
//! * [`corrupt`]: damage to a durable image, tail or mid-log.
//! * [`acklog`]: the `workload` / `verify` pair for external fault injectors.
//!
//! [`workload`] generates the steps and values, [`oracle`] decides (with [`model`], the
//! versioned history, [`versions`], the checks of reads at versions, and [`txns`], the checks of
//! optimistic transactions), [`report`] summarises.

pub mod acklog;
pub mod corrupt;
pub mod crash;
pub mod fsync;
pub mod kill;
pub mod known;
pub mod model;
pub mod oracle;
pub mod power;
pub mod raft;
pub mod report;
pub mod rng;
pub mod sched;
pub mod setup;
pub mod sim;
pub mod txns;
pub mod versions;
pub mod watchdog;
pub mod workload;
pub mod zalloc;
