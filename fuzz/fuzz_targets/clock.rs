#![no_main]
//! See `interbank_fuzz::clock` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| interbank_fuzz::clock(data));
