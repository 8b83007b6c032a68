//! Engine issues the runner found, all fixed in the engine now: the first three in commit
//! 2390ddd, the last one in the commit that follows this note. Their checks are violations again
//! (the default is strict); the counting-and-stepping-around mode (`set_strict(false)`) remains
//! for a future finding, so that a campaign can go on checking everything else while a fix is
//! pending.
//!
//! * [`LAST_FLOOR_ACROSS_A_CRASH`]: under `Retention::LastVersions`, a trim dropped a key's
//!   versions below a tombstone and raised the floor to the oldest version kept above it, while
//!   recovery (which keeps no tombstone from before the policy entry) trimmed nothing for that
//!   key: the floor was lower after a crash. Reproduction: `ringlog-crash power --model sector
//!   --durability strict --steps 40 --gens 2 --cap 16 --reopen-every 8 --replay 1:1.39:0`.
//!
//! * [`SCAN_LEFT_OUT`]: a scan at an LSN (`range_at`, `prefix_at`) under
//!   `Retention::LastVersions` leaves out a key whose version at that LSN the policy trimmed, as if
//!   the key had no value there, where a point read (`get_at`) of the same key answers
//!   `HistoryTrimmed` — a wrong answer the contract forbids ("never a newer or older version
//!   silently"). Reported as `versions`.
//! * [`TRIM_IN_LEASE_GAP`]: `trim_history()` on a database reopened after a crash, before its
//!   first commit, waits forever: it waits for every LSN below the next one to become visible,
//!   and the LSNs between the last recovered one and the lease bound were never assigned (they
//!   become "visible" only when a commit above them is published). Reported as `liveness`. The
//!   workaround skips the trim in that state (visible LSN below the last assigned one, no commit
//!   running).
//! * [`FLOOR_OF_A_LOST_POLICY`]: `set_retention(All | LastVersions)` raises the trim floor to the
//!   LSN before its entry (capped by the durable LSN) as soon as it returns, also when the entry
//!   itself is not durable yet (a `Buffered` commit). A crash that loses the entry loses the
//!   floor with it: reads refused before the crash succeed after recovery — the floor moved back
//!   across a restart. Reported as `retention`; tolerated only when the crash lost such an
//!   entry.

use std::sync::atomic::{AtomicBool, Ordering};

static STRICT: AtomicBool = AtomicBool::new(true);

/// Whether known engine issues are violations (`--strict`) rather than counted.
pub fn strict() -> bool {
    STRICT.load(Ordering::Relaxed)
}

/// Sets [`strict`] for the whole process.
pub fn set_strict(on: bool) {
    STRICT.store(on, Ordering::Relaxed);
}

/// Counter of the scans that left out a key (or more) `Retention::LastVersions` trimmed.
pub const SCAN_LEFT_OUT: &str = "known issue: scans leaving out keys LastVersions trimmed";

/// Counter of the `trim_history()` steps skipped because they would wait forever.
pub const TRIM_IN_LEASE_GAP: &str = "known issue: trim_history() skipped in a lease gap";

/// Counter of the crash states whose trim floor moved back because the crash lost the policy
/// entry that had raised it.
pub const FLOOR_OF_A_LOST_POLICY: &str = "known issue: floor of a lost set_retention moved back";

/// Counter of the crash states whose floor, raised by a `LastVersions` per-key trim, was lower
/// after recovery (open).
pub const LAST_FLOOR_ACROSS_A_CRASH: &str =
    "known issue: LastVersions floor lower after a crash (open)";

/// Whether the issues fixed in the engine are still stepped around: never (their checks are
/// violations again); kept as one switch for the day a fix has to be bisected.
pub fn tolerate_fixed() -> bool {
    false
}
