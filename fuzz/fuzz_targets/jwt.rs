//! PSC access tokens through local validation with a fixed key set (the stand-in's,
//! fetched once): header, key lookup, signature and claim checks. Only the token the
//! harness minted may ever be accepted (see `Harness::jwt`).
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
    harness.jwt(data).expect("token check");
});
