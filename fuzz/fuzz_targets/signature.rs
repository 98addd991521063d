#![no_main]
//! See `interbank_fuzz::signature` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| interbank_fuzz::signature(data));
