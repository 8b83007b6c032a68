//! The history trimmer: a background thread that runs trims (crate::index::trim) when enough
//! garbage accumulated, or periodically under a time-based policy.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::db::Db;
use crate::index::retention::Retention;
use crate::index::trim::{trim, TrimHost, TrimReport};
use crate::index::{Lsn, Versions};
use crate::wal::Shared;
use crate::{Error, Result};

impl Db {
    /// Wakes the history trimmer, starting it the first time.
    pub(crate) fn request_trim(&self) {
        if !self.wake_background(false) {
            self.shared.versions.trim_not_done();
        }
    }

    /// Asks the background thread for a checkpoint (see [`crate::Options::checkpoint_bytes`]).
    /// `false` when there is no such thread to ask: it could not be started (a limit on
    /// threads), and will be tried again at the next request.
    pub(crate) fn request_checkpoint(&self) -> bool {
        self.wake_background(true)
    }

    /// Wakes the background thread (trims and checkpoints), starting it the first time; `false`
    /// when it could not be started.
    fn wake_background(&self, checkpoint: bool) -> bool {
        let mut t = self.trimmer.lock();
        if self.shared.closed.load(Ordering::Acquire) {
            return true;
        }
        if t.is_none() {
            let shared = self.shared.clone();
            let spawned = if seam::spawn_fails() {
                Err(std::io::Error::from_raw_os_error(libc::EAGAIN))
            } else {
                std::thread::Builder::new()
                    .name("ringlog-trim".into())
                    .spawn(move || run_trimmer(shared))
            };
            match spawned {
                Ok(h) => *t = Some(h),
                Err(e) => {
                    log::warn!("could not start the background trims and checkpoints thread: {e}");
                    return false;
                }
            }
        }
        self.shared.versions.signal_background(checkpoint);
        true
    }

    /// Runs a history trim now, in the calling thread: drops the versions no retention policy
    /// and no live snapshot needs. The database does this in the background on its own (see
    /// [`crate::Options::trim_threshold`]); call it to bound memory at a moment of your choice.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`Db::close`] (or when it closes during the trim);
    /// [`Error::Io`] when the trim floor could not be recorded in the MANIFEST (under
    /// [`Retention::NewerThan`], before any read is refused with it): the trim then changed
    /// nothing, and a later one retries.
    pub fn trim_history(&self) -> Result<()> {
        self.check_open()?;
        run_trim(&self.shared)?.map(|_| ()).ok_or(Error::Closed)
    }
}

/// Runs one trim in the calling thread. Under [`Retention::NewerThan`] on a database with a log,
/// the MANIFEST's lock is taken first (the lock order a checkpoint's converting trim follows: the
/// MANIFEST, then `trim_running`), so that the trim can record its floor there before it
/// publishes it ([`crate::checkpointer::record_trim_floor`]); under the other policies, which
/// record nothing, trims do not wait for checkpoints. A trim that finds `NewerThan` in force
/// without the lock (the policy changed meanwhile) publishes nothing and runs again with it.
fn run_trim(shared: &Shared) -> Result<Option<TrimReport>> {
    let ckpt = shared.ckpt.get().filter(|_| shared.log.is_some());
    let mut records = ckpt.is_some()
        && matches!(
            shared.versions.retention.lock().policy,
            Retention::NewerThan(_)
        );
    loop {
        let mut manifest = match ckpt {
            Some(c) if records => Some(c.manifest.lock()),
            _ => None,
        };
        if manifest.is_some() && shared.closed.load(Ordering::Acquire) {
            // The close may have written its MANIFEST and released the directory already: a
            // trim that took the lock after it writes nothing.
            return Ok(None);
        }
        let _one = shared.versions.trim_running.lock();
        let mut unlocked = false;
        let r = trim(shared, &mut |floor| match (ckpt, manifest.as_mut()) {
            (Some(c), Some(m)) => crate::checkpointer::record_trim_floor(c, m, floor),
            (Some(_), None) => {
                // (The value is dropped: `unlocked` says why the trim stopped.)
                unlocked = true;
                Err(Error::Closed)
            }
            (None, _) => Ok(()),
        });
        if !unlocked {
            return r;
        }
        records = true;
    }
}

/// The background thread: runs a trim whenever one is requested (enough garbage), and
/// periodically under a time-based policy, and a checkpoint whenever one is due, until the
/// database closes.
fn run_trimmer(shared: Arc<Shared>) {
    let v = &shared.versions;
    loop {
        let mut checkpoint = false;
        {
            let mut sig = v.trim_lock.lock();
            loop {
                if sig.closing {
                    return;
                }
                if sig.checkpoint {
                    sig.checkpoint = false;
                    checkpoint = true;
                    break;
                }
                if sig.requested {
                    sig.requested = false;
                    break;
                }
                // The policy, read without the signal's lock (`set_retention` holds the
                // retention lock while its commit may wake this thread): a signal that came
                // meanwhile is seen before the wait.
                let policy =
                    parking_lot::MutexGuard::unlocked(&mut sig, || v.retention.lock().policy);
                if sig.closing || sig.checkpoint || sig.requested {
                    continue;
                }
                let periodic = match policy {
                    // (Not under a virtual clock: time moves only when the crash runner moves
                    // it, and it trims with `trim_history()` where its seed says.)
                    Retention::NewerThan(d)
                        if crate::hooks::periodic_trims(shared.vfs.as_ref()) =>
                    {
                        Some((d / 4).clamp(
                            std::time::Duration::from_millis(10),
                            std::time::Duration::from_secs(10),
                        ))
                    }
                    _ => None,
                };
                match periodic {
                    Some(p) => {
                        if v.trim_cv.wait_for(&mut sig, p).timed_out() {
                            break;
                        }
                    }
                    None => v.trim_cv.wait(&mut sig),
                }
            }
        }
        if checkpoint {
            if let Some(c) = shared.ckpt.get() {
                // A failure (ENOSPC, say) leaves the previous checkpoint and the log in force:
                // logged, and retried when the next one is due.
                // Its garbage collection's copies start the log thread if no commit of this
                // run did ([`Shared::commit_core`]).
                if let Err(e) =
                    crate::checkpointer::run_checkpoint(&shared, c, |lsn| shared.wait_durable(lsn))
                {
                    log::warn!("background checkpoint failed: {e}");
                }
            }
            continue;
        }
        match run_trim(&shared) {
            Ok(Some(_)) => {}
            Ok(None) => return,
            // The MANIFEST could not record the floor (a full disk, say): nothing changed. A
            // time-based policy, the only one that records floors, retries periodically.
            Err(e) => {
                log::warn!("history trim failed: {e}");
                v.trim_not_done();
            }
        }
    }
}

impl TrimHost for Shared {
    fn versions(&self) -> &Versions {
        &self.versions
    }

    fn visible(&self) -> Lsn {
        self.visible.get()
    }

    fn durable(&self) -> Option<Lsn> {
        self.log
            .as_ref()
            .map(|_| self.durable_lsn.load(Ordering::Acquire))
    }

    fn next_lsn(&self) -> Lsn {
        self.state.lock().next_lsn
    }

    fn wait_visible(&self, lsn: Lsn) -> bool {
        loop {
            // Told to the disk, as every wait of the engine's is: a simulated disk's scheduler
            // then runs the commits waited for (a checkpoint's converting trim waits on a
            // scheduled thread; the background trimmer's threads are not scheduled).
            self.will_block(ringlog_uring::BlockReason::Visibility);
            if self
                .visible
                .wait_for(lsn, std::time::Duration::from_millis(5))
            {
                return true;
            }
            if self.versions.trim_lock.lock().closing || self.state.lock().poisoned.is_some() {
                return false;
            }
        }
    }

    fn now_ns(&self) -> u64 {
        self.wall_ns()
    }
}

/// A test seam: starting the background thread fails on a thread that armed it (as under
/// `RLIMIT_NPROC`). Per thread, so that the crate's other tests, running beside, are unaffected.
pub(crate) mod seam {
    #[cfg(test)]
    thread_local! {
        pub(crate) static SPAWN_FAILS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Whether starting the background thread must fail (only ever in the crate's own tests).
    #[inline(always)]
    pub(crate) fn spawn_fails() -> bool {
        #[cfg(test)]
        return SPAWN_FAILS.with(std::cell::Cell::get);
        #[cfg(not(test))]
        false
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    /// A trim requested while its thread could not start (EAGAIN under `RLIMIT_NPROC`) is asked
    /// for again by a later insert, once the thread can start: a review found the request left
    /// standing, and no insert ever asking again.
    #[test]
    fn a_trim_whose_thread_did_not_start_is_requested_again() {
        let db = crate::Db::in_memory_with_options(crate::Options::default().trim_threshold(64))
            .unwrap();
        super::seam::SPAWN_FAILS.with(|f| f.set(true));
        let mut i = 0u32;
        while db.stats().versions < 200 {
            db.put(b"k", &i.to_be_bytes()).unwrap();
            i += 1;
        }
        assert!(db.trimmer.lock().is_none(), "the thread could not start");
        assert!(
            !db.shared.versions.trim_requested.load(Ordering::Acquire),
            "the failed request does not stand"
        );
        super::seam::SPAWN_FAILS.with(|f| f.set(false));
        for _ in 0..1_000 {
            db.put(b"k", &i.to_be_bytes()).unwrap();
            i += 1;
        }
        assert!(
            db.trimmer.lock().is_some(),
            "a later insert asked for the trim again"
        );
        db.close().unwrap();
    }
}
