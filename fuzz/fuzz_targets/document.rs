#![no_main]
//! See `interbank_fuzz::document` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| interbank_fuzz::document(data));
