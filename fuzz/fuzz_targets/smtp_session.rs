//! Bytes from an SMTP client through a whole session: command lines, AUTH, the mail
//! transaction, DATA and BDAT, delivery into a real store. The first byte chooses the
//! interface and whether the session is logged in first (see `Harness::smtp`).
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
    harness.smtp(data).expect("session run");
});
