//! `Db::open` on a database directory built from the input: a valid MANIFEST, up to three
//! fuzzed segment files and optionally a fuzzed checkpoint (encoding: `OpenInput` in
//! `../targets.rs`), in both recovery modes.

#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    targets::open_dir(data);
});
