//! Bytes from an IMAP client, literals included, through a whole session: framing,
//! command parsing, AUTHENTICATE and, once logged in, every mailbox command on a real
//! store. The first byte chooses the starting state (see `Harness::imap`).
#![no_main]

use std::sync::{LazyLock, Mutex};

use libfuzzer_sys::fuzz_target;
use mssante::fuzzing::Harness;

#[path = "../psc.rs"]
mod psc;

static HARNESS: LazyLock<Mutex<Harness>> =
    LazyLock::new(|| Mutex::new(Harness::new(psc::start).expect("fuzz harness")));

fuzz_target!(|data: &[u8]| {
    let mut harness = HARNESS.lock().unwrap_or_else(|p| p.into_inner());
    harness.imap(data).expect("session run");
});
