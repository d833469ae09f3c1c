//! The rule for tests that need an external program: in CI a missing one fails the test,
//! elsewhere the test is skipped where it can be seen. A green CI run means it ran.

mod common;

use common::tools;

const ABSENT: &str = "mssante-test-no-such-program";

#[test]
fn a_missing_program_fails_the_test_in_ci() {
    for ci in ["true", "1", "yes"] {
        let outcome = std::panic::catch_unwind(|| tools::available_under(Some(ci), ABSENT));
        assert!(outcome.is_err(), "CI={ci} let a missing program pass");
    }
}

#[test]
fn a_missing_program_is_a_skip_outside_ci() {
    for ci in [None, Some(""), Some("false"), Some("0")] {
        assert!(!tools::available_under(ci, ABSENT), "CI={ci:?}");
    }
}

#[test]
fn a_present_program_runs_in_ci_and_out() {
    // cargo is on the PATH of whoever runs cargo test.
    assert!(tools::available_under(Some("true"), "cargo"));
    assert!(tools::available_under(None, "cargo"));
}
