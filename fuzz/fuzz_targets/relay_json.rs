//! See `kith_fuzz::relay_json` (fuzz/src/lib.rs) for what this target feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kith_fuzz::relay_json(data));
