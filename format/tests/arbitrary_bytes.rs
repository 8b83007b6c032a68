//! Decoding arbitrary bytes never panics, and every error names an offset inside the input's
//! address range.

use proptest::prelude::*;
use ringlog_format::{
    decode_record, decode_record_in, encode_record, find_next_valid, Layout, Manifest, RecordKind,
    RecordSpec, SearchIn, SegmentHeader, SegmentPos, RECORD_HEADER_LEN,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn decode_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), at in 0usize..700, seg in any::<u64>(), epoch in any::<u64>(), off in any::<u64>()) {
        let pos = SegmentPos { segment_id: seg, epoch, offset: off };
        for layout in [Layout::Lean, Layout::Wide] {
            if let Err(e) = decode_record_in(layout, &bytes, at, pos) {
                prop_assert_eq!(e.offset(), off);
            }
            let search = SearchIn { layout, segment_id: seg, epoch, base: 0 };
            let _ = find_next_valid(&bytes, at.min(bytes.len()), search);
        }
        let _ = SegmentHeader::decode(&bytes);
        let _ = Manifest::decode(&bytes);
    }

    #[test]
    fn mutated_valid_records_never_panic(key in proptest::collection::vec(any::<u8>(), 1..40), value in proptest::collection::vec(any::<u8>(), 0..200), idx in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let pos = SegmentPos { segment_id: 1, epoch: 2, offset: 4096 };
        let mut buf = vec![0u8; 512];
        let n = encode_record(&mut buf, &RecordSpec::write(&key, &value, 1, 4096), pos).unwrap();
        let i = idx.index(n);
        let changed = buf[i] != byte;
        buf[i] = byte;
        let res = decode_record(&buf[..n], 0, pos);
        // Any change inside the checksummed bytes is caught; bytes of the 8-byte padding are not
        // checksummed.
        let len = RECORD_HEADER_LEN + key.len() + value.len();
        if changed && i < len {
            prop_assert!(res.is_err());
        }
    }

    /// The version-4 header round-trips every field a writer can set, at any aligned offset, and
    /// its fixed fields sit where FORMAT.md §5.1 puts them, little-endian.
    #[test]
    fn lean_records_round_trip(key in proptest::collection::vec(any::<u8>(), 1..40), value in proptest::collection::vec(any::<u8>(), 0..100), lsn in 0u64..=ringlog_format::MAX_ID, slot in 1u64..1_000_000, kind in 0u8..4, system in any::<bool>(), auto in any::<bool>()) {
        let offset = slot * 8;
        let batch = (offset / 512 * 512) as u32;
        let pos = SegmentPos { segment_id: 9, epoch: 11, offset };
        let mut spec = match kind {
            0 => RecordSpec::write(&key, &value, lsn, batch),
            1 => RecordSpec::delete(&key, lsn, batch),
            2 => RecordSpec::marker(RecordKind::BeginTxn, value.len() as u32, lsn, batch),
            _ => RecordSpec::batch_head(lsn, lsn ^ 0x55, offset / 16 * 8, offset as u32),
        };
        if kind < 2 {
            if system { spec = spec.system(); }
            if auto { spec = spec.autocommit(); }
        }
        let mut buf = vec![0u8; 256];
        let n = encode_record(&mut buf, &spec, pos).unwrap();
        let rec = decode_record(&buf[..n], 0, pos).unwrap();
        prop_assert_eq!(rec.kind, spec.kind);
        prop_assert_eq!(rec.lsn, spec.lsn);
        prop_assert_eq!(rec.flags, spec.flags);
        prop_assert_eq!(rec.batch_start, spec.batch_start);
        prop_assert_eq!(rec.key, spec.key);
        prop_assert_eq!(rec.value, spec.value);
        prop_assert_eq!(rec.marker, spec.marker);
        prop_assert_eq!((rec.run_id, rec.timestamp), (spec.run_id, spec.timestamp));
        prop_assert_eq!(&buf[4..8], &rec.len.to_le_bytes()[..]);
        prop_assert_eq!(buf[8], spec.kind as u8);
        prop_assert_eq!(&buf[12..16], &spec.batch_start.to_le_bytes()[..]);
        prop_assert_eq!(&buf[16..24], &spec.lsn.to_le_bytes()[..]);
    }
}
