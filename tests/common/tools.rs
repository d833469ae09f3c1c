//! External programs some tests drive (swaks, python3, curl, bash): a test that cannot
//! find one must not pass as if it had run. In CI (`CI` set to anything but `false` or
//! `0`) a missing program fails the test; on a workstation the test is skipped with a
//! note on the terminal, outside the output `cargo test` captures.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

/// Whether `program` runs here; if not, fails in CI or reports the skip.
pub fn available(program: &str) -> bool {
    available_under(ci().as_deref(), program)
}

/// A test that cannot run here, for `why`: a failure in CI, a visible skip elsewhere.
pub fn skip(why: &str) {
    skip_under(ci().as_deref(), why)
}

/// `available` with `CI` as given, so the rule itself can be tested.
pub fn available_under(ci: Option<&str>, program: &str) -> bool {
    let runs = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs {
        skip_under(ci, &format!("{program} is not installed"));
    }
    runs
}

fn skip_under(ci: Option<&str>, why: &str) {
    let in_ci = ci.is_some_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!in_ci, "{why}: required in CI");
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    // Straight to the terminal: `eprintln!` would be captured and never shown for a
    // test that passes.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

fn ci() -> Option<String> {
    std::env::var("CI").ok()
}
