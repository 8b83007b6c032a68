//! Every retained version of the keys of a range ([`Db::history`]): what an export that keeps
//! versions, or an operator looking at one key's past, reads.

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use crate::index::{deliver, to_value, Gen, Lsn, Value};
use crate::values::ValueStore;
use crate::{Db, Result};

/// One key and its retained versions, newest first: `(LSN, value)`, the value `None` for a
/// delete. The oldest is the version visible at the retention floor ([`History::floor`]); every
/// other one was written after it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyHistory {
    /// The key.
    pub key: Box<[u8]>,
    /// Its versions, newest first (never empty).
    pub versions: Vec<(Lsn, Option<Value>)>,
}

/// The keys of a range with their retained versions, in key order: see [`Db::history`].
///
/// Like a [`crate::Scan`], it reads one index generation (the one current when it was made) at
/// one LSN, [`History::lsn`], and keeps that generation alive while it lives. Each item is a
/// `Result`: a value read from disk can fail; after an error the iteration ends.
pub struct History {
    gen: Arc<Gen>,
    store: Option<Arc<ValueStore>>,
    lsn: Lsn,
    floor: Lsn,
    /// Where the next key starts.
    from: Bound<Box<[u8]>>,
    hi: Bound<Box<[u8]>>,
    done: bool,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("lsn", &self.lsn)
            .field("floor", &self.floor)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl History {
    /// The LSN it reads at: versions written later are not seen.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// The retention floor when it was made: history below it is trimmed (or may be at any
    /// moment), so each key's oldest version listed is the one visible at the floor.
    pub fn floor(&self) -> Lsn {
        self.floor
    }

    fn next_key(&mut self) -> Result<Option<KeyHistory>> {
        loop {
            let list = &self.gen.list;
            let mut n = match &self.from {
                Bound::Included(k) => list.seek(k, Lsn::MAX),
                Bound::Excluded(k) => {
                    let mut n = list.seek(k, Lsn::MAX);
                    while let Some(m) = n.filter(|m| m.key() == &**k) {
                        n = m.next();
                    }
                    n
                }
                Bound::Unbounded => list.first(),
            };
            let Some(first) = n else {
                return Ok(None);
            };
            let key: Box<[u8]> = Box::from(first.key());
            let inside = match &self.hi {
                Bound::Included(h) => *key <= **h,
                Bound::Excluded(h) => *key < **h,
                Bound::Unbounded => true,
            };
            if !inside {
                return Ok(None);
            }
            let mut versions = Vec::new();
            while let Some(v) = n.filter(|v| v.key() == &*key) {
                n = v.next();
                if v.lsn() > self.lsn {
                    // Committed after the LSN read at (or still in flight).
                    continue;
                }
                if crate::hooks::history_skips_deletes() && v.value().is_none() {
                    continue;
                }
                let value = deliver(v, self.store.as_deref(), to_value)?;
                versions.push((v.lsn(), value));
                if v.lsn() <= self.floor {
                    // The version visible at the floor: older ones are not retained.
                    break;
                }
            }
            self.from = Bound::Excluded(key.clone());
            // A delete at or below the floor is the same as no version.
            if versions
                .last()
                .is_some_and(|(lsn, v)| v.is_none() && *lsn <= self.floor)
            {
                versions.pop();
            }
            debug_assert!(
                versions.windows(2).all(|w| w[0].0 > w[1].0),
                "versions newest first, each LSN once"
            );
            if !versions.is_empty() {
                return Ok(Some(KeyHistory { key, versions }));
            }
        }
    }
}

impl Iterator for History {
    type Item = Result<KeyHistory>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_key() {
            Ok(Some(k)) => Some(Ok(k)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl Db {
    /// The keys of `range` with every version the retention policy keeps (or a live snapshot
    /// holds), as of the newest visible LSN, in key order; each key's versions newest first,
    /// deletes included. A key whose newest version is a delete is listed when an older version
    /// is retained. With the default [`crate::Retention::Snapshots`] and no snapshot alive, most
    /// keys have one version. A checkpoint may drop a key's oldest deletes when no older version
    /// of the key is kept (they change no read: [`Db::get_at`] answers "absent" with them or
    /// without them), so after one those deletes may be missing from the history.
    ///
    /// ```
    /// # fn main() -> Result<(), ringlog_db::Error> {
    /// use ringlog_db::{Db, Retention};
    /// let db = Db::in_memory();
    /// db.set_retention(Retention::LastVersions(std::num::NonZeroU32::new(10).unwrap()))?;
    /// let a = db.put(b"k", b"1")?;
    /// let b = db.delete(b"k")?;
    /// let keys = db.history::<&[u8], _>(..)?.collect::<Result<Vec<_>, _>>()?;
    /// assert_eq!(&*keys[0].key, b"k");
    /// let lsns: Vec<_> = keys[0].versions.iter().map(|(lsn, v)| (*lsn, v.is_some())).collect();
    /// assert_eq!(lsns, [(b, false), (a, true)]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`crate::Error::Closed`] after [`Db::close`]; the items: a value read from disk that
    /// fails ([`crate::Error::Corruption`], [`crate::Error::Io`]).
    pub fn history<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<History> {
        self.check_open()?;
        let shared = self.shared();
        // The visible LSN first, then the generation, as `Db::get` reads: a trim that computed
        // its floor from a newer visible LSN than ours kept only each key's newest version at
        // or below that floor — the version visible at ours may be gone, and the key would be
        // missing from the listing (a review's stress test saw it). Read again then: the floor
        // never passes the visible LSN it was computed from, so once is enough (a few tries,
        // then the floor stands in for the visible LSN, as it did before).
        let mut tries = 0;
        let (lsn, gen) = loop {
            let lsn = shared.visible.get();
            #[cfg(test)]
            tests::between_loads();
            let gen = shared.versions.current();
            tries += 1;
            if gen.floor() <= lsn || tries > 3 {
                break (lsn, gen);
            }
        };
        let floor = gen.floor().min(lsn);
        Ok(History {
            gen,
            store: shared.versions.store.get().cloned(),
            lsn,
            floor,
            from: range.start_bound().map(|k| Box::from(k.as_ref())),
            hi: range.end_bound().map(|k| Box::from(k.as_ref())),
            done: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use crate::{Db, Options};

    thread_local! {
        static BETWEEN: RefCell<Option<Box<dyn FnOnce()>>> = RefCell::new(None);
    }

    /// Runs (once) what a test put between `Db::history`'s load of the visible LSN and its load
    /// of the generation.
    pub(super) fn between_loads() {
        if let Some(f) = BETWEEN.with(|b| b.borrow_mut().take()) {
            f();
        }
    }

    /// A trim that computes its floor from a newer visible LSN, between the listing's two
    /// loads, dropped the version visible at the listing's LSN: the key was missing from it (a
    /// review's stress test saw 24 in 20 M listings). It reads again now.
    #[test]
    fn a_listing_raced_by_a_trim_keeps_the_live_key() {
        let db = std::sync::Arc::new(Db::in_memory_with_options(Options::default()).unwrap());
        let first = db.put(b"k", b"0").unwrap();
        let racer = db.clone();
        BETWEEN.with(|b| {
            *b.borrow_mut() = Some(Box::new(move || {
                racer.put(b"k", b"1").unwrap();
                racer.trim_history().unwrap();
            }))
        });
        let keys: Vec<_> = db
            .history::<&[u8], _>(..)
            .unwrap()
            .collect::<crate::Result<_>>()
            .unwrap();
        assert_eq!(keys.len(), 1, "the live key is listed");
        let newest = keys[0].versions.first().expect("a version");
        assert!(
            newest.0 > first,
            "read at the newer visible LSN: {:?}",
            keys[0].versions
        );
        assert!(
            db.stats().history_floor > first,
            "the trim ran between the loads"
        );
    }
}
