//! The in-memory index: each key's newest committed value and the LSN that wrote it.

use std::collections::BTreeMap;
use std::ops::{Bound, Deref};
use std::sync::Arc;

/// A log sequence number: the position of a committed transaction in the commit order. LSNs start
/// at 1, increase by one per committed transaction and never repeat, across restarts too.
pub type Lsn = u64;

/// A value read from the database, with the LSN of the transaction that wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    bytes: Arc<[u8]>,
    lsn: Lsn,
}

impl Value {
    pub(crate) fn new(bytes: Arc<[u8]>, lsn: Lsn) -> Value {
        Value { bytes, lsn }
    }

    /// The LSN of the transaction that wrote this value (its version).
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// The value's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Where an index entry's value lives. Today always in memory; the log keeps every record
/// addressable by (segment id, offset), so a later version can store that position here instead
/// of the bytes (the Bitcask/WiscKey model) without a format change.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) lsn: Lsn,
    pub(crate) value: Arc<[u8]>,
}

/// One operation of a transaction, borrowed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum OpRef<'a> {
    Put(&'a [u8], &'a [u8]),
    Delete(&'a [u8]),
}

impl<'a> OpRef<'a> {
    pub(crate) fn key(&self) -> &'a [u8] {
        match *self {
            OpRef::Put(k, _) | OpRef::Delete(k) => k,
        }
    }
}

/// The ordered map of live keys.
#[derive(Default, Debug)]
pub(crate) struct Index {
    map: BTreeMap<Arc<[u8]>, Entry>,
}

impl Index {
    pub(crate) fn apply(&mut self, op: OpRef<'_>, lsn: Lsn) {
        match op {
            OpRef::Put(k, v) => {
                let entry = Entry {
                    lsn,
                    value: Arc::from(v),
                };
                if let Some(slot) = self.map.get_mut(k) {
                    debug_assert!(slot.lsn <= lsn, "index versions must not go backwards");
                    *slot = entry;
                } else {
                    self.map.insert(Arc::from(k), entry);
                }
            }
            OpRef::Delete(k) => {
                self.map.remove(k);
            }
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<Value> {
        self.map
            .get(key)
            .map(|e| Value::new(e.value.clone(), e.lsn))
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn range(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Vec<(Arc<[u8]>, Value)> {
        // BTreeMap::range panics on inverted or equal-excluded bounds; treat those as empty.
        if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
            (lo, hi)
        {
            let empty = a > b
                || (a == b
                    && (matches!(lo, Bound::Excluded(_)) || matches!(hi, Bound::Excluded(_))));
            if empty {
                return Vec::new();
            }
        }
        self.map
            .range::<[u8], _>((lo, hi))
            .map(|(k, e)| (k.clone(), Value::new(e.value.clone(), e.lsn)))
            .collect()
    }
}

/// The exclusive upper bound of the keys starting with `prefix`, if any key is above them all.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_cases() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn inverted_ranges_are_empty() {
        let mut ix = Index::default();
        ix.apply(OpRef::Put(b"b", b"1"), 1);
        assert!(ix
            .range(Bound::Included(b"c"), Bound::Included(b"a"))
            .is_empty());
        assert!(ix
            .range(Bound::Excluded(b"b"), Bound::Excluded(b"b"))
            .is_empty());
        assert_eq!(
            ix.range(Bound::Included(b"b"), Bound::Included(b"b")).len(),
            1
        );
    }
}
