//! A log-linear latency histogram (HdrHistogram-style): exact below 256 ns, then 128 buckets per
//! power of two, so any recorded value is reported within 0.8% of itself. Fixed size, no
//! allocation after creation, mergeable across threads.

/// Values below this are stored exactly.
const EXACT: u64 = 256;
/// Sub-buckets per power of two above `EXACT` (7 bits of mantissa).
const SUB: u64 = 128;
/// Total buckets: the exact ones, then 128 per octave from 2^8 up to 2^64.
const BUCKETS: usize = (EXACT + (64 - 8) * SUB) as usize;

/// Latencies in nanoseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
    min: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.total)
            .field("p50", &self.percentile(50.0))
            .field("max", &self.max)
            .finish()
    }
}

fn index(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as u64; // >= 8
    let sub = (v >> (e - 7)) - SUB; // 0..128
    (EXACT + (e - 8) * SUB + sub) as usize
}

/// The middle of bucket `i`'s value range.
fn value_of(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let e = (i - EXACT) / SUB + 8;
    let sub = (i - EXACT) % SUB;
    let low = (SUB + sub) << (e - 7);
    let width = 1u64 << (e - 7);
    low + width / 2
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
            min: u64::MAX,
            sum: 0,
        }
    }

    /// Records one value (nanoseconds).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.counts[index(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
        self.min = self.min.min(ns);
        self.sum += ns as u128;
    }

    /// Adds every value recorded in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.min = self.min.min(other.min);
        self.sum += other.sum;
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest recorded value (exact), 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean of the recorded values, 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at percentile `p` (0–100): the smallest recorded value such that at least `p`%
    /// of all values are at or below it (to the bucket's precision, clamped to the exact min and
    /// max). 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        // The rank in integers (parts per million of the total): in floating point, 99.9 % of
        // 1,000 is 999.0000000000001, whose ceiling made p99.9 the maximum.
        let ppm = (p.clamp(0.0, 100.0) * 10_000.0).round() as u128;
        let rank = (ppm * u128::from(self.total)).div_ceil(1_000_000).max(1) as u64;
        if rank >= self.total {
            return self.max;
        }
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value_of(i).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_precise() {
        let mut last = 0;
        for v in (0..2_000_000u64).step_by(7).chain([u64::MAX / 3, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS);
            assert!(i >= last);
            last = i;
            let mid = value_of(i) as f64;
            assert!(
                (mid - v as f64).abs() <= v as f64 / 128.0 + 1.0,
                "{v} -> {mid}"
            );
        }
    }

    /// p99.9 of 1,000 values is the 999th, not the largest (a floating-point rank of
    /// 999.0000000000001 rounded up to the 1,000th once).
    #[test]
    fn a_percentile_rank_is_exact() {
        let mut h = Histogram::new();
        for _ in 0..999 {
            h.record(10);
        }
        h.record(1_000_000);
        assert_eq!(h.percentile(99.9), 10);
        assert_eq!(h.percentile(100.0), 1_000_000);
        let mut h = Histogram::new();
        for _ in 0..1_999 {
            h.record(10);
        }
        h.record(1_000_000);
        assert_eq!(h.percentile(99.9), 10, "rank 1,998 of 2,000");
        assert_eq!(h.percentile(99.95), 10, "rank 1,999 of 2,000");
        assert_eq!(h.percentile(99.99), 1_000_000, "rank 2,000 of 2,000");
    }

    #[test]
    fn percentiles() {
        let mut h = Histogram::new();
        assert_eq!(h.percentile(50.0), 0);
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.percentile(50.0) as f64;
        assert!((p50 - 500_000.0).abs() < 500_000.0 * 0.01, "{p50}");
        let p99 = h.percentile(99.0) as f64;
        assert!((p99 - 990_000.0).abs() < 990_000.0 * 0.01, "{p99}");
        assert_eq!(h.percentile(100.0), 1_000_000);
        assert_eq!(h.max(), 1_000_000);
        let mut g = Histogram::new();
        g.record(5_000_000);
        h.merge(&g);
        assert_eq!(h.count(), 1001);
        assert_eq!(h.max(), 5_000_000);
        assert_eq!(h.percentile(100.0), 5_000_000);
    }
}
