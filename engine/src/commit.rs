//! The commit path: validation, LSN assignment and log reservation (the serialised step), the
//! concurrent index insert, durability and publication in LSN order.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ringlog_format::MAX_KEY_LEN;

use crate::conflicts::Check;
use crate::db::Db;
use crate::index::{Lsn, OpRef};
use crate::options::{validate_buffered, Durability};
use crate::wal::{txn_encoded_len, Shared};
use crate::{Error, Result};

impl Db {
    pub(crate) fn validate(&self, ops: &[OpRef<'_>]) -> Result<()> {
        for op in ops {
            let key = op.key();
            if key.is_empty() {
                return Err(Error::EmptyKey);
            }
            if key.len() > MAX_KEY_LEN {
                return Err(Error::KeyTooLarge {
                    len: key.len(),
                    max: MAX_KEY_LEN,
                });
            }
            if let OpRef::Put(_, v) = op {
                if v.len() > self.max_value_len(key.len()) {
                    return Err(Error::ValueTooLarge {
                        len: v.len(),
                        max: self.max_value_len(key.len()),
                    });
                }
            }
        }
        if self.shared.log.is_some() {
            let len = txn_encoded_len(ops);
            if len > self.max_txn_bytes {
                return Err(Error::TransactionTooLarge {
                    len,
                    max: self.max_txn_bytes,
                });
            }
        }
        Ok(())
    }

    pub(crate) fn max_txn_bytes(&self) -> usize {
        self.max_txn_bytes
    }

    /// Commits `ops` as one transaction: the only serialised steps are the LSN assignment and
    /// the log-buffer reservation (under the log mutex); the index inserts run concurrently;
    /// publication makes the transaction visible in LSN order (a `Strict` one once durable).
    /// `system` writes go to the engine's system key space (the log only, never the index).
    pub(crate) fn commit_ops(
        &self,
        ops: &[OpRef<'_>],
        durability: Option<Durability>,
        system: bool,
    ) -> Result<Lsn> {
        self.commit_checked(ops, durability, system, None)
    }

    /// The durability a commit asking for `durability` gets (`None`: the database's), or the
    /// error when the database cannot give it.
    pub(crate) fn resolve_durability(&self, durability: Option<Durability>) -> Result<Durability> {
        Ok(match (self.durability, durability) {
            (_, None) => self.durability,
            (Durability::InMemory, Some(Durability::InMemory)) => Durability::InMemory,
            (Durability::InMemory, Some(_)) => {
                return Err(Error::DurabilityUnavailable(
                    "an in-memory database has no log to make durable",
                ))
            }
            (_, Some(Durability::InMemory)) => {
                return Err(Error::DurabilityUnavailable(
                    "a transaction cannot skip the log of a persistent database",
                ))
            }
            (
                _,
                Some(
                    d @ Durability::Buffered {
                        interval,
                        max_pending,
                    },
                ),
            ) => {
                validate_buffered(interval, max_pending)?;
                d
            }
            (_, Some(Durability::Strict)) => Durability::Strict,
        })
    }

    /// [`Db::commit_ops`] for an optimistic transaction: `check` is validated in the sequencer,
    /// before the transaction gets an LSN ([`crate::conflicts`]).
    pub(crate) fn commit_checked(
        &self,
        ops: &[OpRef<'_>],
        durability: Option<Durability>,
        system: bool,
        check: Option<&Check<'_>>,
    ) -> Result<Lsn> {
        self.check_writable()?;
        let mode = self.resolve_durability(durability)?;
        if !system {
            self.shared.versions.prefetch(ops);
        }
        self.validate(ops)?;
        if !system {
            // (A system entry — a retention policy, a run label — is a few bytes: never paced.
            // `set_retention` commits its entry holding the retention lock, which a checkpoint
            // needs: pacing it could wait for a checkpoint that waits for that lock.)
            self.pace_values();
        }
        let lsn = self
            .shared
            .commit_core(ops, mode, system, None, check, |trim| {
                if trim {
                    self.request_trim();
                }
                if crate::checkpointer::due(&self.shared) {
                    self.request_checkpoint();
                }
            })?;
        if let Some(c) = self.shared.ckpt.get() {
            c.backlog.note(ops);
        }
        Ok(lsn)
    }
}

/// Value-log garbage collection's copies to append before a transaction
/// ([`Shared::commit_core`]): `(key, original LSN, value)` each, and where they went.
pub(crate) struct Relocations<'a> {
    pub(crate) items: &'a [(&'a [u8], Lsn, &'a [u8])],
    pub(crate) placed: Vec<ringlog_format::ValueRef>,
}

impl Shared {
    /// The commit path after validation (see [`Db::commit_ops`]): `relocations`, if any, are
    /// appended just before the transaction's records; `after_publish(trim)` runs once the
    /// transaction is published (`trim`: its garbage asks for a trim). It starts the log thread
    /// if this is the run's first commit: every commit waits for a round the thread writes (or
    /// that its lease sync covers), whichever path commits it.
    pub(crate) fn commit_core(
        self: &Arc<Self>,
        ops: &[OpRef<'_>],
        mode: Durability,
        system: bool,
        relocations: Option<&mut Relocations<'_>>,
        check: Option<&Check<'_>>,
        after_publish: impl FnOnce(bool),
    ) -> Result<Lsn> {
        let shared = self;
        let has_log = shared.log.is_some();
        // (The planted bug: a garbage collection's copies, the commit with relocations, forget.)
        if has_log && !(relocations.is_some() && crate::hooks::gc_starts_no_log_thread()) {
            shared.start_log_thread()?;
        }
        // A Buffered commit's deadline counts from now, read before anything is reserved: a
        // custom disk's clock that panics then fails this commit alone (read after the LSN was
        // assigned, it left an LSN never published, and every later commit waiting for it).
        let buffered_now =
            (has_log && matches!(mode, Durability::Buffered { .. })).then(|| shared.now());
        // Set between taking the LSN and publishing it (a panic there — a custom disk's waker,
        // the index insert — poisons the database rather than leave later commits waiting
        // forever). Declared before the state lock's guard, so that an unwinding commit releases
        // the lock before this poisons the database (which takes it).
        let unpublished;
        // 1. The serialised step: LSN assignment and log-buffer reservation.
        let mut st = shared.state.lock();
        if st.closing {
            return Err(Error::Closed);
        }
        if let Some(e) = &st.poisoned {
            return Err(Error::Poisoned(e.clone()));
        }
        shared.wait_for_space(&mut st);
        if let Some(e) = &st.poisoned {
            return Err(Error::Poisoned(e.clone()));
        }
        if st.closing {
            return Err(Error::Closed);
        }
        // An optimistic transaction is validated here, in LSN order: every commit with a lower
        // LSN has recorded its keys already.
        if let Some(c) = check {
            shared.conflicts.validate(c)?;
        }
        // Before an LSN is assigned: once one is, it must be appended (visibility waits for
        // every LSN below it). Garbage collection leaves such values where they are.
        if let Some((k, _, v)) = relocations.as_ref().and_then(|r| {
            r.items
                .iter()
                .find(|(k, _, v)| !shared.relocation_fits(k.len(), v.len()))
        }) {
            return Err(Error::ValueTooLarge {
                len: v.len(),
                max: shared.relocation_max(k.len()),
            });
        }
        let lsn = st.next_lsn;
        // Ids read from disk are at most MAX_ID (2^63 - 1), so these never overflow; a log whose
        // ids reached the maximum refuses commits instead of wrapping.
        if lsn > ringlog_format::MAX_ID {
            return Err(Error::IdSpaceExhausted("LSN"));
        }
        st.next_lsn += 1;
        unpublished = crate::wal::PoisonOnPanic(
            shared,
            "a commit panicked between taking its LSN and publishing it",
        );
        let late = crate::hooks::conflicts_recorded_late();
        if !system && !late && shared.conflicts.active() {
            shared.conflicts.record(ops, lsn, shared.visible.get());
        }
        // Buffered commits return before they are durable: only LSNs a durable lease covers.
        let mut wait_durable = mode == Durability::Strict;
        let mut led = None;
        if has_log {
            // The transaction's id is its LSN (format version 4): nothing to count.
            let lease = shared.lease_due(&mut st, lsn);
            if let Some(r) = relocations {
                // Before the transaction's records: its durability covers them.
                r.placed = shared.append_relocated(&mut st, r.items, lsn - 1);
            }
            shared.append(&mut st, ops, lsn, system, lease);
            if !shared.lease_covers(&mut st, lsn) {
                wait_durable = true;
            }
            if let (
                Durability::Buffered {
                    interval,
                    max_pending,
                },
                Some(now),
            ) = (mode, buffered_now)
            {
                shared.note_buffered(&mut st, now, interval, max_pending);
            }
            if wait_durable {
                // A lone Strict committer writes its round itself: no hand-off to the log thread
                // and back (wal::leader).
                if mode == Durability::Strict {
                    led = shared.lead_round(&mut st);
                }
                if led.is_none() {
                    shared.request_sync(&mut st, lsn);
                    if !(mode == Durability::Strict
                        && crate::hooks::ack_strict_early(shared, &mut st, lsn))
                    {
                        shared.register_commit_waiter(&mut st, lsn);
                    } else {
                        wait_durable = false;
                    }
                }
            }
        }
        drop(st);
        if let Some(led) = led {
            // Durable (or the database poisoned) when it returns; published as the log thread
            // publishes a round.
            shared.write_led(led);
        }
        // 2. The index inserts, concurrent with other committers'.
        let trim = !system && shared.versions.insert(ops, lsn);
        shared.counters.commits.fetch_add(1, Ordering::Relaxed);
        // 3. Publication, then durability. A Strict commit becomes visible only once the
        // durable LSN covers it: the log thread makes it visible when its round is durable (so
        // a commit that fails to become durable is never visible); the others at once.
        let strict =
            mode == Durability::Strict && wait_durable && !crate::hooks::publish_strict_early();
        shared.visible.publish(lsn, strict, &shared.durable_lsn);
        drop(unpublished);
        after_publish(trim);
        if wait_durable {
            shared.await_durable(lsn).map_err(Error::Poisoned)?;
        }
        if late && !system && shared.conflicts.active() {
            shared.conflicts.record(ops, lsn, shared.visible.get());
        }
        // A writer reads its own writes: wait for the commits before it to be published.
        if !crate::hooks::commit_returns_before_visible() {
            shared.wait_visible_or_err(lsn)?;
        }
        // Under a time-based policy: `lsn` is visible by now (a sample taken earlier could let
        // a trim drop versions readers still saw as current within the window). Not the
        // retention lock: `set_retention` holds it while it waits for its own commit to become
        // visible, which may wait for this one. (`set_retention` samples its own commit.)
        if !system && shared.versions.sample_times.load(Ordering::Relaxed) {
            shared.versions.sample(shared.wall_ns(), lsn);
        }
        Ok(lsn)
    }
}
