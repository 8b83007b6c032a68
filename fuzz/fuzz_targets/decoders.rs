//! Every public decoder of ringlog-format on arbitrary bytes (`decoders` in `../targets.rs`).

#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    targets::decoders(data);
});
