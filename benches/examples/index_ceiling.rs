//! The ceiling an in-memory index can reach on this machine, for the key and value shapes of
//! `ringlog-bench` (16-byte decimal keys, 100-byte values): the standard library's `BTreeMap`
//! (ordered, one thread, no versions, no locks, no log) and `HashMap` (unordered), values stored
//! inline in the map's entries (no allocation per value), the hash map with a cheap hash. Prints operations per second for
//! sequential and random inserts into an ordered map and for random point reads from a hash map
//! and from the ordered map (and from the hash map again with every get timed, as the harness
//! times every operation), the median of `ROUNDS` rounds.
//!
//! It bounds what issue 11's put and read targets ask of ringlog's index (which is also
//! concurrent, versioned, and fed by a log): an engine's rate cannot beat what the bare data
//! structure does with nothing else to do.
//!
//! ```sh
//! cargo run --release -p ringlog-bench --example index_ceiling -- [KEYS] [ROUNDS]
//! ```
//! `KEYS` defaults to 1,000,000, `ROUNDS` to 3.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

/// A multiply-and-rotate hash of 8-byte words (FxHash's scheme) with a strong finaliser: far
/// cheaper than the standard library's SipHash, so the hash map's figure is its memory accesses,
/// not its hashing.
#[derive(Default)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    /// MurmurHash3's finaliser, so that every output bit depends on every input bit (the hash
    /// map takes its control bits from the top).
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

type FastMap = HashMap<Key, Value, BuildHasherDefault<Fx>>;

type Key = [u8; 16];
type Value = [u8; 100];

fn key(i: u64) -> Key {
    let mut k = [0u8; 16];
    k.copy_from_slice(format!("{i:016}").as_bytes());
    k
}

/// A deterministic sequence of indexes below `n` (the workspace's seeded generator).
fn random_indexes(n: u64) -> Vec<u64> {
    let mut r = ringlog_rng::Rng::new(0x9E37_79B9_7F4A_7C15);
    (0..n).map(|_| r.below(n)).collect()
}

fn rate(n: u64, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    n as f64 / t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("rates are finite"));
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let seq: Vec<Key> = (0..n).map(key).collect();
    let rnd: Vec<Key> = random_indexes(n).into_iter().map(key).collect();
    let value: Value = [7u8; 100];
    let (mut fillseq, mut fillrandom, mut hash_get, mut btree_get) =
        (vec![], vec![], vec![], vec![]);
    let mut hash_get_timed = vec![];
    let mut check = 0u64;
    for _ in 0..rounds {
        let mut m: BTreeMap<Key, Value> = BTreeMap::new();
        fillseq.push(rate(n, || {
            seq.iter().for_each(|k| {
                m.insert(*k, value);
            })
        }));
        let mut r: BTreeMap<Key, Value> = BTreeMap::new();
        fillrandom.push(rate(n, || {
            rnd.iter().for_each(|k| {
                r.insert(*k, value);
            })
        }));
        let h: FastMap = seq.iter().map(|k| (*k, value)).collect();
        hash_get.push(rate(n, || {
            rnd.iter()
                .for_each(|k| check += u64::from(h.get(k).map_or(0, |v| v[0])))
        }));
        // As ringlog-bench times every operation (two clock reads around each get): the
        // clock's ordered time-stamp read keeps the processor from overlapping one get's cache
        // misses with the next one's.
        let mut spent = std::time::Duration::ZERO;
        hash_get_timed.push(rate(n, || {
            for k in &rnd {
                let t = Instant::now();
                check += u64::from(h.get(k).map_or(0, |v| v[0]));
                spent += t.elapsed();
            }
        }));
        assert!(spent > std::time::Duration::ZERO);
        btree_get.push(rate(n, || {
            rnd.iter()
                .for_each(|k| check += u64::from(m.get(k).map_or(0, |v| v[0])))
        }));
    }
    assert_eq!(check, 3 * 7 * n * rounds as u64, "every key was found");
    println!("{n} keys of 16 B, values of 100 B inline; median of {rounds} rounds, one thread");
    println!(
        "BTreeMap insert, sequential keys (fillseq ceiling):   {:>12.0} /s",
        median(fillseq)
    );
    println!(
        "BTreeMap insert, random keys (fillrandom ceiling):    {:>12.0} /s",
        median(fillrandom)
    );
    println!(
        "HashMap get, random keys (readrandom ceiling):        {:>12.0} /s",
        median(hash_get)
    );
    println!(
        "HashMap get, random keys, each get timed:             {:>12.0} /s",
        median(hash_get_timed)
    );
    println!(
        "BTreeMap get, random keys:                            {:>12.0} /s",
        median(btree_get)
    );
}
