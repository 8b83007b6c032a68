//! Decoding arbitrary bytes never panics, and every error names an offset inside the input's
//! address range.

use proptest::prelude::*;
use ringlog_format::{
    decode_record, encode_record, find_next_valid, Manifest, RecordSpec, SegmentHeader, SegmentPos,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn decode_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), at in 0usize..700, seg in any::<u64>(), epoch in any::<u64>(), off in any::<u64>()) {
        let pos = SegmentPos { segment_id: seg, epoch, offset: off };
        if let Err(e) = decode_record(&bytes, at, pos) {
            prop_assert_eq!(e.offset(), off);
        }
        let _ = find_next_valid(&bytes, at.min(bytes.len()), seg, epoch, 0);
        let _ = SegmentHeader::decode(&bytes);
        let _ = Manifest::decode(&bytes);
    }

    #[test]
    fn mutated_valid_records_never_panic(key in proptest::collection::vec(any::<u8>(), 1..40), value in proptest::collection::vec(any::<u8>(), 0..200), idx in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let pos = SegmentPos { segment_id: 1, epoch: 2, offset: 4096 };
        let mut buf = vec![0u8; 512];
        let n = encode_record(&mut buf, &RecordSpec::write(&key, &value, 1, 1, 1, 1, 4096), pos).unwrap();
        let i = idx.index(n);
        let changed = buf[i] != byte;
        buf[i] = byte;
        let res = decode_record(&buf[..n], 0, pos);
        // Any change inside the checksummed bytes is caught; bytes of the 8-byte padding are not
        // checksummed.
        let len = 48 + key.len() + value.len();
        if changed && i < len {
            prop_assert!(res.is_err());
        }
    }
}
