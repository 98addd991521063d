#![no_main]
//! See `interbank_fuzz::ids` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| interbank_fuzz::ids(data));
