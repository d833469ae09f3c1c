//! The lifecycle jobs inside `serve`: once at start-up, then every `lifecycle.interval`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::directory::{PublishError, publisher_from_config};
use super::report::{JobReport, LifecycleError, Mode};
use super::run::Lifecycle;
use crate::context::Context;
use crate::metrics::Metrics;

/// Never run the jobs more often than this, whatever `lifecycle.interval` says.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the scheduler: one run at start-up, then every `lifecycle.interval`, until
/// `shutdown`. A run in progress stops at its next batch when shutdown comes.
pub fn spawn_scheduler(
    context: &Context,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) -> Result<(), PublishError> {
    let publisher = publisher_from_config(&context.config.directory)?;
    let jobs = Lifecycle::new(
        &context.config,
        context.store.clone(),
        context.clock.clone(),
        publisher,
    );
    let interval = context.config.lifecycle.interval.0.max(MIN_INTERVAL);
    let metrics = context.metrics.clone();
    tasks.spawn(async move {
        loop {
            let outcome = jobs.run(Mode::Apply, &shutdown).await;
            count(&metrics, &outcome);
            match outcome {
                Ok(report) if report.is_empty() => tracing::debug!("lifecycle jobs: nothing to do"),
                Ok(report) => tracing::info!(
                    published = report.published.len(),
                    unpublished = report.unpublished.len(),
                    warned = report.warned.len(),
                    deleted = report.deleted.len(),
                    failed = report.failures.len(),
                    "lifecycle jobs ran"
                ),
                Err(e @ LifecycleError::Busy { .. }) => tracing::info!("lifecycle jobs skipped: {e}"),
                Err(e) => tracing::warn!(error = %e, "lifecycle jobs failed; retried at the next interval"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    });
    Ok(())
}

/// A run in `mssante_lifecycle_runs_total` by outcome, what it did in
/// `mssante_lifecycle_mailboxes_total` by action.
fn count(metrics: &Metrics, outcome: &Result<JobReport, LifecycleError>) {
    let run = match outcome {
        Ok(report) => {
            for (action, n) in [
                ("published", report.published.len()),
                ("unpublished", report.unpublished.len()),
                ("warned", report.warned.len()),
                ("deleted", report.deleted.len()),
                ("failed", report.failures.len()),
            ] {
                metrics
                    .lifecycle_mailboxes
                    .get_or_create(&[("action", action)])
                    .inc_by(n as u64);
            }
            "applied"
        }
        Err(LifecycleError::Busy { .. }) => "busy",
        Err(_) => "failed",
    };
    metrics
        .lifecycle_runs
        .get_or_create(&[("outcome", run)])
        .inc();
}
