//! `listeblanchemssante.xml` as the ANS might publish it, or not, and the distinguished
//! names it lists (see `mssante::fuzzing::trust_list`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = mssante::fuzzing::trust_list(data) {
        panic!("{e}");
    }
});
