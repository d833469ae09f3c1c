//! `mssante man DIR`: the manual pages (`mssante.1`, and `mssante-<command>.1` for each
//! command it names), written from the same clap definitions as `--help`, so the two
//! cannot disagree. The Debian package ships them from contrib/man/, kept equal to this
//! output by tests/man.rs: cargo-deb only packages files, and a build script cannot see
//! the command line, which lives in this binary.

use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

use super::{Args, status};

/// Commands of the default build that a production build leaves out
/// (`--no-default-features`, the Debian package): the pages document the server as
/// packaged.
const DEVELOPMENT_ONLY: [&str; 2] = ["dev", "conformance"];

pub fn run(dir: &Path) -> ExitCode {
    let mut command = Args::command();
    for name in DEVELOPMENT_ONLY {
        if command.find_subcommand(name).is_some() {
            command = command.mut_subcommand(name, |c| c.hide(true));
        }
    }
    match clap_mangen::generate_to(command, dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "error: cannot write the manual pages in {}: {e}",
                dir.display()
            );
            ExitCode::from(status::FAILURE)
        }
    }
}
