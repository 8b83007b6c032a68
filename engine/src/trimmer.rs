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
        self.wake_background(false);
    }

    /// Asks the background thread for a checkpoint (see [`crate::Options::checkpoint_bytes`]).
    pub(crate) fn request_checkpoint(&self) {
        self.wake_background(true);
    }

    /// Wakes the background thread (trims and checkpoints), starting it the first time.
    fn wake_background(&self, checkpoint: bool) {
        let mut t = self.trimmer.lock();
        if self.shared.closed.load(Ordering::Acquire) {
            return;
        }
        if t.is_none() {
            let shared = self.shared.clone();
            match std::thread::Builder::new()
                .name("ringlog-trim".into())
                .spawn(move || run_trimmer(shared))
            {
                Ok(h) => *t = Some(h),
                Err(e) => {
                    log::warn!("could not start the history trimmer: {e}");
                    return;
                }
            }
        }
        self.shared.versions.signal_background(checkpoint);
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

/// Runs one trim in the calling thread. On a database with a log, the MANIFEST's lock is taken
/// first (the lock order a checkpoint's converting trim follows: the MANIFEST, then
/// `trim_running`), so that the trim can record its floor there before it publishes it
/// ([`crate::checkpointer::record_trim_floor`]).
fn run_trim(shared: &Shared) -> Result<Option<TrimReport>> {
    let mut manifest = shared
        .ckpt
        .get()
        .filter(|_| shared.log.is_some())
        .map(|c| (c, c.manifest.lock()));
    let _one = shared.versions.trim_running.lock();
    trim(shared, &mut |floor| match &mut manifest {
        Some((c, m)) => crate::checkpointer::record_trim_floor(c, m, floor),
        None => Ok(()),
    })
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
                let periodic = match v.retention.lock().policy {
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
            Err(e) => log::warn!("history trim failed: {e}"),
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
