//! Encoding transactions into the pending batches: records, LSN leases, padding.

use std::sync::atomic::Ordering;

use ringlog_format::{
    align_up, encode_padding, encode_record, encoded_len, AlignedBuf, RecordKind, RecordSpec,
    SegmentPos, BATCH_HEAD_LEN, MARKER_PAYLOAD_LEN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};

use super::{Batch, LogConfig, Shared, State};
use crate::index::{Lsn, OpRef};

impl State {
    /// Opens a pending batch at the cursor of the current segment, in a spare buffer if there is
    /// one; `create`: the segment must be created first ((end of the previous one, base LSN)).
    /// The batch starts with room for its head, which [`pad_batch`] fills when it closes the
    /// batch.
    fn open_batch(&mut self, create: Option<(u64, Lsn)>) {
        let buf = self
            .spare
            .pop()
            .unwrap_or_else(|| AlignedBuf::with_capacity(64 << 10));
        let batch = Batch::new(self.seg_id, self.cursor, buf, create);
        self.cursor += BATCH_HEAD_LEN as u64;
        self.batches.push_back(batch);
    }
}

impl Batch {
    /// An empty batch at `start` of segment `seg_id`, in `buf` (cleared), with room for its head,
    /// which [`pad_batch`] fills when it closes the batch.
    pub(super) fn new(
        seg_id: u64,
        start: u64,
        mut buf: AlignedBuf,
        create: Option<(u64, Lsn)>,
    ) -> Batch {
        debug_assert!(buf.is_empty(), "batch buffers start empty");
        buf.extend_zeroed(BATCH_HEAD_LEN);
        Batch {
            seg_id,
            start,
            buf,
            last_lsn: 0,
            create,
        }
    }
}

impl Shared {
    /// The lease record to write before the transaction with `lsn`, if one is due: when `lsn` is
    /// beyond the last lease, or past half of it (renewal ahead of need, so that the new lease is
    /// usually durable before it is needed). Records it as appended.
    pub(crate) fn lease_due(&self, st: &mut State, lsn: Lsn) -> Option<Lsn> {
        let cfg = self.log.as_ref()?;
        let span = cfg.lease_span;
        if !crate::hooks::write_leases()
            || lsn + span / 2 <= st.lease_appended
            || st.lease_appended >= ringlog_format::MAX_ID
        {
            return None;
        }
        // Never past the last LSN the format allows (a lease record naming more does not
        // decode): near the end of the LSN space the lease covers what is left.
        let bound = (st.lease_appended.max(lsn - 1) + span).min(ringlog_format::MAX_ID);
        st.lease_appended = bound;
        st.leased = true;
        st.leases_pending.push_back((bound, lsn));
        Some(bound)
    }

    /// Whether `lsn` may be returned to a caller before its commit is durable: a durable lease
    /// covers it.
    pub(crate) fn lease_covers(&self, st: &mut State, lsn: Lsn) -> bool {
        let durable = self.durable_lsn.load(Ordering::Acquire);
        while let Some(&(bound, first_after)) = st.leases_pending.front() {
            if first_after > durable {
                break;
            }
            st.lease_durable = st.lease_durable.max(bound);
            st.leases_pending.pop_front();
        }
        lsn <= st.lease_durable || !crate::hooks::write_leases()
    }

    /// At close: lowers the lease to the last assigned LSN (every LSN of this run is accounted
    /// for), so that the next run continues from there instead of above the lease. Only when this
    /// run wrote a lease.
    pub(crate) fn append_closing_lease(&self, st: &mut State) {
        if self.log.is_none() || !st.leased {
            return;
        }
        let last = st.next_lsn - 1;
        if st.lease_appended > last {
            st.lease_appended = last;
            let lsn = st.next_lsn;
            self.append(st, &[], lsn, false, Some(last));
        }
    }

    /// Encodes a transaction's records (preceded by a lease record when `lease` is set; only the
    /// lease when `ops` is empty) into the pending batches at the current cursor, opening a new
    /// segment first when they do not fit. `ops` have been validated. `system` marks the writes
    /// as the engine's own ([`ringlog_format::FLAG_SYSTEM`]).
    pub(crate) fn append<'a>(
        &self,
        st: &mut State,
        ops: &[OpRef<'a>],
        lsn: Lsn,
        system: bool,
        lease: Option<Lsn>,
    ) {
        let cfg = self.log.as_ref().expect("append needs a log");
        let lease_len = if lease.is_some() {
            encoded_len(0, MARKER_PAYLOAD_LEN)
        } else {
            0
        };
        let txn_len = if ops.is_empty() {
            0
        } else {
            txn_encoded_len(ops)
        };
        let need = lease_len + txn_len;
        // The worst-case padding of the batch, and the head of a batch opened for it.
        let reserve = cfg.align as usize + RECORD_HEADER_LEN + BATCH_HEAD_LEN;
        assert!(
            need + reserve + SEGMENT_HEADER_LEN <= cfg.seg.size as usize,
            "transaction size was validated"
        );
        let deferred = st.rotate_first.take();
        // A checkpoint asked for the next transaction to start a segment (a lease alone stays).
        let asked = !ops.is_empty() && std::mem::take(&mut st.rotate_next);
        if deferred.is_some()
            || asked
            || st.starts_segment(need, reserve, cfg.seg.size, self.rotation_size())
        {
            // Rotate: close the open batch of this segment; the next segment records its end.
            let synced = st.synced;
            let prev_end = match (deferred, st.batches.back_mut()) {
                (Some(end), _) => end,
                (None, Some(b)) if b.seg_id == st.seg_id => {
                    pad_batch(b, cfg, (self.run_id, self.wall_ns()), synced)
                }
                (None, _) => st.cursor,
            };
            st.seg_id += 1;
            st.cursor = SEGMENT_HEADER_LEN as u64;
            st.open_batch(Some((prev_end, lsn - 1)));
        } else if st.batches.back().is_none_or(|b| b.seg_id != st.seg_id) {
            st.open_batch(None);
        }
        let (seg_id, cursor) = (st.seg_id, st.cursor);
        let batch = st.batches.back_mut().expect("a batch is open");
        debug_assert_eq!(batch.start + batch.buf.len() as u64, cursor);
        let epoch = cfg.seg.epoch;
        let batch_start = batch.start as u32;
        let mut at = cursor;
        let mut put = |buf: &mut AlignedBuf, spec: RecordSpec<'_>| {
            let len = match spec.kind {
                RecordKind::Write | RecordKind::Delete => {
                    encoded_len(spec.key.len(), spec.value.len())
                }
                _ => encoded_len(0, MARKER_PAYLOAD_LEN),
            };
            let dst = buf.extend_zeroed(len);
            let n = encode_record(
                dst,
                &spec,
                SegmentPos {
                    segment_id: seg_id,
                    epoch,
                    offset: at,
                },
            )
            .expect("validated record encodes");
            debug_assert_eq!(n, len);
            at += n as u64;
        };
        fn with_system(spec: RecordSpec<'_>, system: bool) -> RecordSpec<'_> {
            if system {
                spec.system()
            } else {
                spec
            }
        }
        let op_spec = |op: &OpRef<'a>| {
            let spec = match *op {
                OpRef::Put(k, v) => RecordSpec::write(k, v, lsn, batch_start),
                OpRef::Delete(k) => RecordSpec::delete(k, lsn, batch_start),
            };
            with_system(spec, system)
        };
        if let Some(bound) = lease {
            put(&mut batch.buf, RecordSpec::lease(bound, batch_start));
        }
        if ops.is_empty() {
            // A lease alone.
        } else if let [op] = ops {
            put(&mut batch.buf, op_spec(op).autocommit());
        } else {
            let n = ops.len() as u32;
            put(
                &mut batch.buf,
                RecordSpec::marker(RecordKind::BeginTxn, n, lsn, batch_start),
            );
            for op in ops {
                put(&mut batch.buf, op_spec(op));
            }
            put(
                &mut batch.buf,
                RecordSpec::marker(RecordKind::CommitTxn, n, lsn, batch_start),
            );
        }
        assert_eq!(
            at - cursor,
            need as u64,
            "encoded size matches the reservation"
        );
        st.cursor = at;
        st.pending_bytes += need;
        if !ops.is_empty() {
            batch.last_lsn = lsn;
            st.pending_commits += 1;
        }
        self.counters
            .bytes_appended
            .fetch_add(need as u64, Ordering::Relaxed);
    }
}

impl Shared {
    /// Whether a relocated copy of a `value_len`-byte value of a `key_len`-byte key fits in a
    /// segment of this log (with a batch head and the write alignment before it). A value
    /// written under a larger segment size (an option, not recorded on disk) may not: such a
    /// value stays where it is ([`Shared::append_relocated`] is never given one).
    pub(crate) fn relocation_fits(&self, key_len: usize, value_len: usize) -> bool {
        encoded_len(key_len, value_len) <= self.relocation_room()
    }

    /// The largest value [`Shared::relocation_fits`] under a `key_len`-byte key (to within the
    /// record alignment).
    pub(crate) fn relocation_max(&self, key_len: usize) -> usize {
        self.relocation_room()
            .saturating_sub(encoded_len(key_len, 0))
    }

    /// Bytes of a segment a relocated record may take.
    fn relocation_room(&self) -> usize {
        let Some(cfg) = self.log.as_ref() else {
            return 0;
        };
        let reserve = cfg.align as usize + RECORD_HEADER_LEN + BATCH_HEAD_LEN;
        (cfg.seg.size as usize).saturating_sub(reserve + SEGMENT_HEADER_LEN)
    }

    /// Encodes value-log garbage collection's copies — each `(key, LSN, value)` a Write record
    /// flagged [`ringlog_format::FLAG_RELOCATED`] with the version's original LSN, not a
    /// transaction — into the pending batches at the cursor, opening new segments as they fill
    /// (each one [`Shared::relocation_fits`], checked before the LSN was assigned); `base`: the last LSN assigned
    /// before them (a new segment's base LSN). Returns where each went. The caller
    /// holds the log mutex and appends a transaction right after them (its durability then
    /// covers them: the log is durable in prefix order).
    pub(crate) fn append_relocated(
        &self,
        st: &mut State,
        items: &[(&[u8], Lsn, &[u8])],
        base: Lsn,
    ) -> Vec<ringlog_format::ValueRef> {
        let cfg = self.log.as_ref().expect("relocations need a log");
        let reserve = cfg.align as usize + RECORD_HEADER_LEN + BATCH_HEAD_LEN;
        let mut out = Vec::with_capacity(items.len());
        for &(key, lsn, value) in items {
            let need = encoded_len(key.len(), value.len());
            assert!(
                self.relocation_fits(key.len(), value.len()),
                "relocations are checked to fit before their transaction's LSN is assigned"
            );
            let deferred = st.rotate_first.take();
            // A checkpoint asked for a new segment after its LSN: the copies start it (they come
            // before their transaction). Left in the segment holding the checkpoint's LSN, below
            // the first segment it needs, the next checkpoint would not find them (it locates
            // values from that first segment on) and keep referring to the victims.
            let asked = std::mem::take(&mut st.rotate_next);
            if deferred.is_some()
                || asked
                || st.starts_segment(need, reserve, cfg.seg.size, self.rotation_size())
            {
                let synced = st.synced;
                let prev_end = match (deferred, st.batches.back_mut()) {
                    (Some(end), _) => end,
                    (None, Some(b)) if b.seg_id == st.seg_id => {
                        pad_batch(b, cfg, (self.run_id, self.wall_ns()), synced)
                    }
                    (None, _) => st.cursor,
                };
                st.seg_id += 1;
                st.cursor = SEGMENT_HEADER_LEN as u64;
                // The new segment's base LSN: the last LSN assigned before its first record.
                st.open_batch(Some((prev_end, base)));
            } else if st.batches.back().is_none_or(|b| b.seg_id != st.seg_id) {
                st.open_batch(None);
            }
            let (seg_id, at) = (st.seg_id, st.cursor);
            let batch = st.batches.back_mut().expect("a batch is open");
            debug_assert_eq!(batch.start + batch.buf.len() as u64, at);
            let spec = RecordSpec::write(key, value, lsn, batch.start as u32).relocated();
            let dst = batch.buf.extend_zeroed(need);
            let pos = SegmentPos {
                segment_id: seg_id,
                epoch: cfg.seg.epoch,
                offset: at,
            };
            let n = encode_record(dst, &spec, pos).expect("a relocated value encodes");
            debug_assert_eq!(n, need);
            st.cursor = at + need as u64;
            st.pending_bytes += need;
            self.counters
                .bytes_appended
                .fetch_add(need as u64, Ordering::Relaxed);
            out.push(ringlog_format::ValueRef {
                segment: seg_id,
                offset: at,
                len: value.len() as u32,
            });
        }
        out
    }
}

/// Bytes a transaction occupies in the log.
pub(crate) fn txn_encoded_len(ops: &[OpRef<'_>]) -> usize {
    let op_len = |op: &OpRef<'_>| match *op {
        OpRef::Put(k, v) => encoded_len(k.len(), v.len()),
        OpRef::Delete(k) => encoded_len(k.len(), 0),
    };
    match ops {
        [op] => op_len(op),
        _ => 2 * encoded_len(0, MARKER_PAYLOAD_LEN) + ops.iter().map(op_len).sum::<usize>(),
    }
}

/// Closes a batch: fills its head (this run `run_id`, the time `now_ns`, read now: no commit of
/// the batch is later) and
/// pads it with a Padding record up to the next write-alignment boundary; returns its end.
///
/// The head records the batch's durable floor from `synced` (the end of the log known durable,
/// [`State::synced`]): where in this segment the durable log ended when the batch was closed, or
/// 0 when it ended in an earlier segment. Closing happens before the batch is submitted, so the
/// floor never claims more than was durable when the write went out.
pub(super) fn pad_batch(
    b: &mut Batch,
    cfg: &LogConfig,
    (run_id, now_ns): (u64, u64),
    synced: (u64, u64),
) -> u64 {
    let head = SegmentPos {
        segment_id: b.seg_id,
        epoch: cfg.seg.epoch,
        offset: b.start,
    };
    debug_assert!(
        b.buf.as_slice()[..BATCH_HEAD_LEN].iter().all(|&x| x == 0),
        "a batch's head is filled once"
    );
    if !(b.create.is_some() && crate::hooks::rotation_batch_without_head()) {
        let floor = if crate::hooks::floor_claims_all() {
            b.start
        } else if synced.0 == b.seg_id {
            synced.1.min(b.start)
        } else {
            0
        };
        let spec = RecordSpec::batch_head(run_id, now_ns, floor, b.start as u32);
        let n = encode_record(&mut b.buf.as_mut_slice()[..BATCH_HEAD_LEN], &spec, head)
            .expect("a batch head encodes at its batch's start");
        debug_assert_eq!(n, BATCH_HEAD_LEN);
    }
    let end = b.start + b.buf.len() as u64;
    let padded = padded_end(end, cfg.align);
    let gap = padded - end;
    if gap != 0 {
        let pos = SegmentPos {
            segment_id: b.seg_id,
            epoch: cfg.seg.epoch,
            offset: end,
        };
        encode_padding(b.buf.extend_zeroed(gap as usize), b.start as u32, pos)
            .expect("padding is aligned and large enough");
    }
    assert_eq!(padded % cfg.align, 0, "batches end on the write alignment");
    assert!(padded <= cfg.seg.size, "batch stays inside its segment");
    padded
}

/// Where a batch whose records end at `end` ends once padded to `align` (FORMAT.md §6 rule 3: a
/// gap too small for a Padding record takes one more block).
pub(super) fn padded_end(end: u64, align: u64) -> u64 {
    let mut gap = align_up(end, align) - end;
    if gap != 0 && gap < RECORD_HEADER_LEN as u64 {
        gap += align;
    }
    end + gap
}

#[cfg(test)]
mod tests {
    use super::padded_end;

    #[test]
    fn padded_end_matches_the_padding_rule() {
        // FORMAT.md §6 rule 3: a gap below a header's length takes one more block.
        assert_eq!(padded_end(4168, 512), 4608);
        assert_eq!(padded_end(4600, 512), 5120);
        assert_eq!(padded_end(4608, 512), 4608);
        assert_eq!(padded_end(4096 + 40, 4096), 8192);
    }
}
