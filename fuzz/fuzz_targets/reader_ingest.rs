//! See `kith_fuzz::reader_ingest` (fuzz/src/lib.rs) for what this target feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kith_fuzz::reader_ingest(data));
