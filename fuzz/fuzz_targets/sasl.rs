//! Decoded SASL initial responses: XOAUTH2, OAUTHBEARER and EXTERNAL. Whatever is
//! accepted must be what the grammar allows (see `mssante::fuzzing::sasl`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = mssante::fuzzing::sasl(data) {
        panic!("{e}");
    }
});
