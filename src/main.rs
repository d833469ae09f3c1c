//! The `mssante` command: see `mssante --help`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    mssante::cli::main()
}
