//! A stored message as FETCH sees it: ENVELOPE, BODY, BODYSTRUCTURE and body sections,
//! encoded as the response a client would read. The first bytes (up to the first
//! newline, at most 8) name the part sections to take (see `mssante::fuzzing::mime_input`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mssante::fuzzing::mime_input(data);
});
