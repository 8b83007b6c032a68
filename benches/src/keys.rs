//! Keys, values and random choices, all deterministic.
//!
//! A key is `key_size` bytes: the key's index as a big-endian `u64` followed by `k` filler (as
//! RocksDB's db_bench lays out its keys), so keys sort in index order. A value is `value_size` bytes and describes itself: the key's index
//! (8 bytes), the version written (4 bytes), a check word derived from both (4 bytes), then bytes
//! of a fixed random pool chosen by the same hash. Any value read back can therefore be checked
//! against the key it was read under and the version the run last wrote there.

/// Smallest accepted key size (the index takes 8 bytes).
pub const MIN_KEY_SIZE: usize = 8;
/// Smallest accepted value size (the self-describing header takes 16 bytes).
pub const MIN_VALUE_SIZE: usize = 16;
const POOL_SPAN: usize = 256;

/// SplitMix64 step: a good 64-bit mixer (the workspace PRNG's, [`ringlog_rng::splitmix`]).
#[inline]
pub fn mix64(z: u64) -> u64 {
    ringlog_rng::splitmix(z)
}

/// The workspace's seeded generator (SplitMix64, [`ringlog_rng`]). The harness's seeds are
/// fixed, the same for every engine: a run's keys and values are reproduced exactly.
pub use ringlog_rng::Rng;

/// Builds keys and values of the configured sizes.
#[derive(Clone, Debug)]
pub struct Codec {
    key_size: usize,
    value_size: usize,
    pool: Vec<u8>,
}

/// Why a value read back is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadValue {
    /// The value's length differs from the configured value size.
    Length(usize),
    /// The value belongs to another key, or its header is damaged.
    Header,
    /// The value is an older or newer version than the one last written.
    Version {
        /// The version the run last wrote.
        expected: u32,
        /// The version found.
        found: u32,
    },
    /// The header is right but the body differs.
    Body,
}

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadValue::Length(n) => write!(f, "wrong length {n}"),
            BadValue::Header => f.write_str("header names another key or is damaged"),
            BadValue::Version { expected, found } => {
                write!(f, "version {found}, expected {expected}")
            }
            BadValue::Body => f.write_str("body bytes differ"),
        }
    }
}

impl Codec {
    /// A codec for keys of `key_size` and values of `value_size` bytes (at least
    /// [`MIN_KEY_SIZE`] and [`MIN_VALUE_SIZE`]; the caller validates).
    pub fn new(key_size: usize, value_size: usize) -> Codec {
        let mut rng = Rng::new(0x5eed);
        let pool = (0..value_size + POOL_SPAN)
            .map(|_| rng.next_u64() as u8)
            .collect();
        Codec {
            key_size,
            value_size,
            pool,
        }
    }

    /// Key size in bytes.
    pub fn key_size(&self) -> usize {
        self.key_size
    }

    /// Value size in bytes.
    pub fn value_size(&self) -> usize {
        self.value_size
    }

    /// A key buffer whose filler is already written; [`Codec::set_key`] fills in the index.
    pub fn key_buf(&self) -> Vec<u8> {
        vec![b'k'; self.key_size]
    }

    /// Writes index `idx` into a buffer from [`Codec::key_buf`].
    #[inline]
    pub fn set_key(&self, buf: &mut [u8], idx: u64) {
        buf[..8].copy_from_slice(&idx.to_be_bytes());
    }

    /// The key of index `idx`.
    pub fn key(&self, idx: u64) -> Vec<u8> {
        let mut k = self.key_buf();
        self.set_key(&mut k, idx);
        k
    }

    /// The index stored in a key.
    pub fn key_index(key: &[u8]) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&key[..8]);
        u64::from_be_bytes(b)
    }

    fn hash(idx: u64, version: u32) -> u64 {
        mix64(idx ^ ((version as u64) << 40) ^ 0xa5a5)
    }

    /// Writes the value of (`idx`, `version`) into `buf` (resized to the value size).
    #[inline]
    pub fn fill_value(&self, buf: &mut Vec<u8>, idx: u64, version: u32) {
        let h = Codec::hash(idx, version);
        buf.clear();
        buf.extend_from_slice(&idx.to_le_bytes());
        buf.extend_from_slice(&version.to_le_bytes());
        buf.extend_from_slice(&(h as u32).to_le_bytes());
        let off = ((h >> 32) as usize) % POOL_SPAN;
        buf.extend_from_slice(&self.pool[off..off + self.value_size - 16]);
    }

    /// The value of (`idx`, `version`).
    pub fn value(&self, idx: u64, version: u32) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.value_size);
        self.fill_value(&mut v, idx, version);
        v
    }

    /// Checks the 16-byte header of a value read under key `idx` and returns its version.
    /// Cheap enough for the timed loop.
    #[inline]
    pub fn check_header(&self, value: &[u8], idx: u64) -> Result<u32, BadValue> {
        if value.len() != self.value_size {
            return Err(BadValue::Length(value.len()));
        }
        let word = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&value[r]);
            u32::from_le_bytes(b)
        };
        let mut b = [0u8; 8];
        b.copy_from_slice(&value[..8]);
        let version = word(8..12);
        if u64::from_le_bytes(b) != idx || word(12..16) != Codec::hash(idx, version) as u32 {
            return Err(BadValue::Header);
        }
        Ok(version)
    }

    /// Checks a value read under key `idx` against the version the run last wrote, every byte.
    pub fn check(&self, value: &[u8], idx: u64, expected: u32) -> Result<(), BadValue> {
        let found = self.check_header(value, idx)?;
        if found != expected {
            return Err(BadValue::Version { expected, found });
        }
        let h = Codec::hash(idx, found);
        let off = ((h >> 32) as usize) % POOL_SPAN;
        if value[16..] != self.pool[off..off + self.value_size - 16] {
            return Err(BadValue::Body);
        }
        Ok(())
    }
}

/// YCSB's Zipfian generator (theta 0.99) over `0..n`, with the FNV scrambling of
/// `ScrambledZipfianGenerator` so that the popular items are spread over the key space.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    half_pow_theta: f64,
}

/// YCSB's default skew.
pub const ZIPF_THETA: f64 = 0.99;

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Zipf {
    /// A generator over `0..n` (`n` ≥ 1).
    pub fn new(n: u64) -> Zipf {
        let n = n.max(1);
        let theta = ZIPF_THETA;
        let zetan = zeta(n, theta);
        let zeta2 = zeta(2, theta);
        let alpha = 1.0 / (1.0 - theta);
        let eta = (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Zipf {
            n,
            theta,
            alpha,
            zetan,
            eta,
            half_pow_theta: 1.0 + 0.5f64.powf(theta),
        }
    }

    /// The rank drawn (0 is the most popular), not scrambled.
    pub fn rank(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < self.half_pow_theta {
            return 1.min(self.n - 1);
        }
        let v = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        v.min(self.n - 1)
    }

    /// An item drawn with Zipfian popularity, scrambled over `0..n`.
    pub fn scrambled(&self, rng: &mut Rng) -> u64 {
        fnv64(self.rank(rng)) % self.n
    }

    /// The skew parameter.
    pub fn theta(&self) -> f64 {
        self.theta
    }
}

/// FNV-1a over the 8 bytes of `v`, as YCSB's `Utils.fnvhash64`.
pub fn fnv64(v: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.to_le_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_check() {
        let c = Codec::new(16, 100);
        let v = c.value(42, 3);
        assert_eq!(v.len(), 100);
        assert_eq!(c.check(&v, 42, 3), Ok(()));
        assert_eq!(
            c.check(&v, 42, 4),
            Err(BadValue::Version {
                expected: 4,
                found: 3
            })
        );
        assert_eq!(c.check(&v, 41, 3), Err(BadValue::Header));
        let mut bad = v.clone();
        bad[50] ^= 1;
        assert_eq!(c.check(&bad, 42, 3), Err(BadValue::Body));
        assert_eq!(c.check(&v[..99], 42, 3), Err(BadValue::Length(99)));
        let k = c.key(7);
        assert_eq!(k.len(), 16);
        assert_eq!(Codec::key_index(&k), 7);
        assert!(c.key(7) < c.key(8) && c.key(255) < c.key(256));
    }

    #[test]
    fn zipf_is_skewed_and_in_range() {
        let z = Zipf::new(1000);
        let mut rng = Rng::new(1);
        let mut zero = 0;
        for _ in 0..10_000 {
            let r = z.rank(&mut rng);
            assert!(r < 1000);
            if r == 0 {
                zero += 1;
            }
            assert!(z.scrambled(&mut rng) < 1000);
        }
        assert!(zero > 500, "rank 0 drawn {zero} times");
    }
}
