#![no_main]
//! See `interbank_fuzz::cli_amount` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| interbank_fuzz::cli_amount(data));
