//! The lifecycle jobs inside `serve`: once at start-up, then every `lifecycle.interval`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::directory::{PublishError, publisher_from_config};
use super::report::{LifecycleError, Mode};
use super::run::Lifecycle;
use crate::context::Context;

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
    tasks.spawn(async move {
        loop {
            match jobs.run(Mode::Apply, &shutdown).await {
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
