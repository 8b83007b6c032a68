//! Retention policies: which versions the index keeps, and the trim floor below which reads are
//! refused with [`crate::Error::HistoryTrimmed`].

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::time::Duration;

use super::Lsn;

/// Which old versions a database keeps, set with [`crate::Db::set_retention`].
///
/// Whatever the policy, every version a live [`crate::Snapshot`] can see is kept until the
/// snapshot is dropped, and the newest version of every key is always kept. A policy keeps history
/// from the moment it is set: versions an earlier policy had already let go are not brought back,
/// and what an earlier history-keeping policy kept stays (set after [`Retention::Snapshots`],
/// reads below the new policy's entry fail with [`crate::Error::HistoryTrimmed`]).
/// Policies are themselves versioned entries of the log (in a reserved system key space, never
/// visible as user keys): recovery replays them like any commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retention {
    /// Keep only what live snapshots need (the default): reads at an LSN older than the oldest
    /// live snapshot may fail with [`crate::Error::HistoryTrimmed`].
    #[default]
    Snapshots,
    /// Keep every version from now on.
    All,
    /// Keep the newest `n` versions of each key (a delete counts as a version). When a trim drops
    /// a key's older versions, the trim floor rises to that key's oldest kept version, and reads
    /// at LSNs below the floor fail with [`crate::Error::HistoryTrimmed`] for every key — also
    /// for a key whose versions there were all kept (a scan cannot report one key's trim, so the
    /// floor is one for the whole database). [`crate::Db::history`] lists each key's versions
    /// as reads see them: down to the one visible at the floor, not the kept ones below it.
    LastVersions(NonZeroU32),
    /// Keep every version that was current at some point within this duration of now. The
    /// duration is kept in whole nanoseconds up to `u64::MAX` (about 584 years): a longer one is
    /// that long ([`crate::Db::set_retention`] records it so, and [`crate::Db::retention`]
    /// answers it so, before and after a reopen).
    NewerThan(Duration),
}

impl Retention {
    /// The policy as [`Retention::encode`] records it: a `NewerThan` duration capped at
    /// `u64::MAX` nanoseconds.
    pub(crate) fn normalized(self) -> Retention {
        match self {
            Retention::NewerThan(d) => Retention::NewerThan(d.min(Duration::from_nanos(u64::MAX))),
            p => p,
        }
    }

    /// Encodes the policy and the trim floor in force when it was set (the value of the system
    /// entry): kind (u8), 7 zero bytes, parameter (u64 LE), floor (u64 LE).
    pub(crate) fn encode(&self, floor: Lsn) -> [u8; 24] {
        let (kind, param) = match *self {
            Retention::Snapshots => (0u8, 0u64),
            Retention::All => (1, 0),
            Retention::LastVersions(n) => (2, n.get() as u64),
            Retention::NewerThan(d) => (3, d.as_nanos().min(u64::MAX as u128) as u64),
        };
        let mut out = [0u8; 24];
        out[0] = kind;
        out[8..16].copy_from_slice(&param.to_le_bytes());
        out[16..24].copy_from_slice(&floor.to_le_bytes());
        out
    }

    /// Decodes [`Retention::encode`]'s bytes; `None` for anything else.
    pub(crate) fn decode(b: &[u8]) -> Option<(Retention, Lsn)> {
        if b.len() != 24 || b[1..8].iter().any(|&x| x != 0) {
            return None;
        }
        let param = u64::from_le_bytes(b[8..16].try_into().ok()?);
        let floor = u64::from_le_bytes(b[16..24].try_into().ok()?);
        let policy = match (b[0], param) {
            (0, 0) => Retention::Snapshots,
            (1, 0) => Retention::All,
            (2, n) => Retention::LastVersions(NonZeroU32::new(u32::try_from(n).ok()?)?),
            (3, ns) => Retention::NewerThan(Duration::from_nanos(ns)),
            _ => return None,
        };
        (floor <= ringlog_format::MAX_ID).then_some((policy, floor))
    }

    /// [`Retention::decode`] of the entry at LSN `lsn`: its floor cannot lie above it (a policy
    /// records the floor in force when it was set, below its own LSN; a checkpoint's, at most
    /// the checkpoint's LSN, which its entry carries). `None` for one that does, as for bytes
    /// that do not decode: reads of the newest state would be refused as trimmed.
    pub(crate) fn decode_at(b: &[u8], lsn: Lsn) -> Option<(Retention, Lsn)> {
        Self::decode(b).filter(|&(_, floor)| floor <= lsn)
    }
}

/// The key of the retention policy's system entry.
pub(crate) const RETENTION_KEY: &[u8] = b"retention";

/// The policy in force.
#[derive(Debug, Default)]
pub(crate) struct RetentionState {
    pub(crate) policy: Retention,
    /// The floor a history-keeping policy set after `Snapshots` asked for (the LSN before its
    /// entry), which live snapshots may have held the floor below: trims raise the floor to it
    /// once no snapshot needs less, and a checkpoint takes it as a restart does — replaying the
    /// whole log derives it from the entry — so that opening from the checkpoint gives the
    /// floor the log gives (a review found the checkpoint recording the snapshot-capped one).
    pub(crate) pending: Lsn,
    /// Counts the policies set ([`crate::Db::set_retention`] bumps it, under this lock, as it
    /// installs one). A trim reads it with its plan and swaps its generation in only if it has
    /// not moved by then: a trim planned under the old policy and swapped in after the new one
    /// took effect would break the new one's promise (a `LastVersions` trim raising the floor
    /// after `All` was set, refusing reads that were answered when `set_retention` returned).
    pub(crate) changes: u64,
    /// Trims holding policy changes off until they swap (or stop): after
    /// [`crate::index::trim::MAX_ABANDONED`] attempts abandoned in a row, a trim makes its last
    /// one with `set_retention` waiting (on [`crate::index::Versions::retention_cv`]), so that a
    /// caller setting policies in a loop cannot keep it from ever finishing — and a close or a
    /// checkpoint waiting for it (a review's livelock).
    pub(crate) exclusive: u32,
}

/// (commit time in ns since the Unix epoch, LSN) samples for [`Retention::NewerThan`], oldest
/// first, at most one per millisecond: which LSN was visible at a given time. Each is taken once
/// its LSN is visible (a sample taken earlier — at LSN assignment, before a Strict commit's sync —
/// would let a trim drop versions that were still current, as readers saw them, within the
/// window). Behind a lock of its own, taken by nothing while it is held
/// ([`crate::index::Versions::samples`]): committers record samples without the retention lock,
/// which `Db::set_retention` holds while it waits for its own commit to become visible.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    samples: VecDeque<(u64, Lsn)>,
}

/// Sample spacing for [`Samples`].
pub(crate) const SAMPLE_NS: u64 = 1_000_000;

impl Samples {
    /// Records that `lsn` was visible at `now_ns` (the caller samples only under a time-based
    /// policy). A sample less than [`SAMPLE_NS`] after the last one is not kept, so times only
    /// rise along the samples; their LSNs may not (committers sample as they finish, in any
    /// order), and need not: each is a lower bound of what was visible at its time.
    pub(crate) fn record(&mut self, now_ns: u64, lsn: Lsn) {
        if now_ns >= self.next_due() {
            self.samples.push_back((now_ns, lsn));
        }
    }

    /// The earliest time the next sample is kept at ([`SAMPLE_NS`] after the last one).
    pub(crate) fn next_due(&self) -> u64 {
        self.samples
            .back()
            .map_or(0, |&(t, _)| t.saturating_add(SAMPLE_NS))
    }

    /// An LSN visible at or before `t` according to the samples (the latest sample's at or
    /// before `t`), if any sample is that old. Drops samples no longer needed.
    fn lsn_at(&mut self, t: u64) -> Option<Lsn> {
        let mut found = None;
        while let Some(&(at, lsn)) = self.samples.front() {
            if at > t {
                break;
            }
            found = Some(lsn);
            // Keep the last sample at or before t: later trims may need it again.
            if self.samples.get(1).is_some_and(|&(next, _)| next <= t) {
                self.samples.pop_front();
            } else {
                break;
            }
        }
        found
    }
}

impl RetentionState {
    pub(crate) fn new(policy: Retention) -> RetentionState {
        RetentionState {
            policy,
            pending: 0,
            changes: 0,
            exclusive: 0,
        }
    }

    /// Whether commits should be sampled.
    pub(crate) fn wants_samples(&self) -> bool {
        matches!(self.policy, Retention::NewerThan(_))
    }

    /// The floor a trim may move to now: `cap` is the oldest LSN anything still reads at (live
    /// snapshots, the visible LSN, and the durable LSN when there is a log, so that a crash can
    /// never bring back history a read was refused), `floor` the current floor; `samples` those
    /// of a time-based policy.
    pub(crate) fn trim_floor(
        &self,
        now_ns: u64,
        cap: Lsn,
        floor: Lsn,
        samples: &mut Samples,
    ) -> Lsn {
        let wanted = match self.policy {
            Retention::Snapshots => cap,
            Retention::All | Retention::LastVersions(_) => floor,
            Retention::NewerThan(d) => {
                let t = now_ns.saturating_sub(d.as_nanos().min(u64::MAX as u128) as u64);
                samples.lsn_at(t).unwrap_or(floor).min(cap)
            }
        };
        wanted.max(floor)
    }

    /// What a trim keeps of each key, given the new floor and the cap (see
    /// [`RetentionState::trim_floor`]).
    pub(crate) fn plan(&self, floor: Lsn, cap: Lsn) -> Plan {
        match self.policy {
            Retention::All => Plan {
                boundary: floor,
                keep_below: None,
                mark: false,
            },
            Retention::LastVersions(n) => Plan {
                boundary: cap.max(floor),
                keep_below: Some(n.get() as usize),
                mark: true,
            },
            Retention::Snapshots | Retention::NewerThan(_) => Plan {
                boundary: floor,
                keep_below: Some(1),
                mark: false,
            },
        }
    }
}

/// Which versions of a key a trim keeps: every version above `boundary`, and of those at or
/// below it the newest `keep_below` (`None` = all).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub(crate) boundary: Lsn,
    pub(crate) keep_below: Option<usize>,
    /// Flag the oldest kept version [`super::TRIMMED_BELOW`] when older ones are dropped (a
    /// per-key policy: the global floor does not cover the dropped versions).
    pub(crate) mark: bool,
}

impl Plan {
    /// Given a key's versions newest first as (LSN, is a tombstone), how many of the newest to
    /// keep (0 drops the key) and whether to flag the last kept one.
    pub(crate) fn keep(&self, versions: &[(Lsn, bool)]) -> (usize, bool) {
        let above = versions.iter().take_while(|v| v.0 > self.boundary).count();
        let Some(n) = self.keep_below else {
            return (versions.len(), false);
        };
        if !self.mark && above == 0 && versions.first().is_some_and(|v| v.1) {
            // The key's newest version is a tombstone at or below the floor: reads below the
            // floor are refused, so no version reads the same as the tombstone.
            return (0, false);
        }
        // Versions above the boundary may still be lost by a crash (the boundary is at most the
        // durable LSN): they never count toward the n a per-key policy keeps, so that what a
        // trim drops stays dropped after any restart (recovery keeps the newest n it finds).
        let mut keep = (above + n).min(versions.len());
        if self.mark && versions.get(keep).is_some_and(|v| v.1) {
            // The newest version to drop is a tombstone: keep it. Reads between it and the
            // oldest kept version then answer "no value" as they did, and recovery — which keeps
            // no tombstone from before a policy entry — trims the same keys, so the floor this
            // trim raises is never above the one a restart derives.
            keep += 1;
        }
        (keep, self.mark && keep < versions.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_round_trip() {
        for p in [
            Retention::Snapshots,
            Retention::All,
            Retention::LastVersions(NonZeroU32::new(3).unwrap()),
            Retention::NewerThan(Duration::from_secs(90)),
        ] {
            assert_eq!(Retention::decode(&p.encode(42)), Some((p, 42)));
        }
        assert_eq!(Retention::decode(&[9; 24]), None);
        assert_eq!(Retention::decode(&[0; 23]), None);
        let mut b = Retention::LastVersions(NonZeroU32::new(1).unwrap()).encode(1);
        b[8..16].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(Retention::decode(&b), None, "zero versions");
    }

    /// At most one sample a millisecond is kept, and `next_due` says when the next one is (the
    /// commit path skips the lock before it).
    #[test]
    fn samples_are_kept_a_millisecond_apart() {
        let mut s = Samples::default();
        assert_eq!(s.next_due(), 0);
        s.record(5_000_000, 1);
        assert_eq!(s.next_due(), 6_000_000);
        s.record(5_999_999, 2);
        assert_eq!(s.samples.len(), 1, "within the millisecond: not kept");
        s.record(6_000_000, 3);
        assert_eq!(s.next_due(), 7_000_000);
        assert_eq!(s.lsn_at(6_500_000), Some(3));
    }

    #[test]
    fn time_floor_follows_samples() {
        let r = RetentionState::new(Retention::NewerThan(Duration::from_millis(10)));
        let mut s = Samples::default();
        for i in 0..100u64 {
            s.record(i * 1_000_000, i + 1);
        }
        // 50 ms in, 10 ms window: the LSN current at 40 ms.
        assert_eq!(r.trim_floor(50_000_000, u64::MAX, 0, &mut s), 41);
        // Never above the cap, never below the floor.
        assert_eq!(r.trim_floor(50_000_000, 20, 0, &mut s), 20);
        assert_eq!(r.trim_floor(50_000_000, u64::MAX, 60, &mut s), 60);
    }

    #[test]
    fn plans_keep_what_policies_promise() {
        let v = [(9, false), (7, true), (5, false), (3, false)];
        let snap = RetentionState::new(Retention::Snapshots).plan(6, 6);
        assert_eq!(
            snap.keep(&v),
            (3, false),
            "above 6, and the newest at or below it"
        );
        assert_eq!(
            snap.keep(&[(4, true), (2, false)]),
            (0, false),
            "a deleted key goes"
        );
        assert_eq!(snap.keep(&[(4, false), (2, false)]), (1, false));
        let all = RetentionState::new(Retention::All).plan(6, 6);
        assert_eq!(all.keep(&v), (4, false));
        let last2 = RetentionState::new(Retention::LastVersions(NonZeroU32::new(2).unwrap()));
        assert_eq!(last2.plan(0, 100).keep(&v), (2, true));
        assert_eq!(
            last2.plan(0, 8).keep(&v),
            (3, true),
            "one above the cap (a crash may lose it), two at or below it"
        );
        assert_eq!(
            last2.plan(0, 2).keep(&v),
            (4, false),
            "everything is above the cap"
        );
        assert_eq!(last2.plan(0, 100).keep(&v[..2]), (2, false));
        // The newest dropped version a tombstone: kept, and marked only if older ones go.
        let t = [(25, false), (24, false), (17, true)];
        assert_eq!(last2.plan(0, 100).keep(&t), (3, false));
        let t = [(25, false), (24, false), (17, true), (10, false)];
        assert_eq!(last2.plan(0, 100).keep(&t), (3, true));
    }
}
