//! See `kith_fuzz::blob_open` (fuzz/src/lib.rs) for what this target feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kith_fuzz::blob_open(data));
