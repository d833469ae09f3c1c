//! `mssante jobs run`: the lifecycle jobs once, now or as of a given instant.

use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use tokio_util::sync::CancellationToken;

use super::mailbox::parse_rfc3339;
use super::status;
use mssante::clock::{FixedClock, SharedClock};
use mssante::config::Config;
use mssante::lifecycle::{Lifecycle, LifecycleError, Mode, publisher_from_config};

#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// Run the lifecycle jobs once: directory publication, deletion warnings, deletion.
    Run {
        /// Apply the rules as of this instant instead of now (RFC 3339).
        #[arg(long, value_parser = parse_rfc3339)]
        at: Option<DateTime<Utc>>,
        /// Only print what would be done.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Exits 1 when another run holds the lease or a push or notice failed (the report
/// still lists what was done).
pub async fn run(config: &Config, cmd: JobsCommand) -> ExitCode {
    let JobsCommand::Run { at, dry_run } = cmd;
    let clock: SharedClock = match at {
        Some(at) => Arc::new(FixedClock(at)),
        None => mssante::clock::system(),
    };
    let store = match super::open_store(config, clock.clone()).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let publisher = match publisher_from_config(&config.directory) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(status::FAILURE);
        }
    };
    let jobs = Lifecycle::new(config, store, clock, publisher);
    let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.cancel();
        }
    });
    let result = jobs.run(mode, &cancel).await;
    ctrl_c.abort();
    match result {
        Ok(report) => {
            println!("{report}");
            if report.failures.is_empty() && !report.cancelled {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(status::FAILURE)
            }
        }
        Err(e @ LifecycleError::Busy { .. }) => {
            eprintln!("error: {e}; nothing done");
            ExitCode::from(status::FAILURE)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(status::FAILURE)
        }
    }
}
