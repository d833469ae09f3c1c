//! One run of the jobs: publish, unpublish, warn, delete, under the store's lease.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::directory::{DirectoryEvent, EventKind, SharedPublisher};
use super::existing::contact_copies;
use super::notice;
use super::report::{JobReport, LifecycleError, Mode, UnpublishReason, Unpublished, Warned};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::{Config, HumanDuration, LifecycleConfig};
use crate::store::{Mailbox, Notice, Store, StoreError};

/// The lease row's name.
const LEASE: &str = "lifecycle";
/// How long a lease lasts without renewal; a running run renews it every third of this.
const LEASE_TTL: Duration = Duration::from_secs(600);
/// Mailboxes per directory batch (one read, one push, one UPDATE).
const BATCH: usize = 500;
/// Mailboxes deleted per transaction, so other writers are not held up for long.
const DELETE_BATCH: u32 = 500;
/// Notices in flight at once: the store's writer commits them together.
const NOTICES_IN_FLIGHT: usize = 64;

/// `now - d`, saturating at the earliest representable instant.
fn before(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn after(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn from_unix(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(s, 0).unwrap_or_default()
}

/// "365 days" rather than "365d" in what people read.
fn human(d: HumanDuration) -> String {
    let s = d.0.as_secs();
    if s.is_multiple_of(86_400) && s > 0 {
        let n = s / 86_400;
        format!("{n} day{}", if n == 1 { "" } else { "s" })
    } else {
        d.to_string()
    }
}

/// The notice kind recorded for the warning sent `w` before deletion.
fn warning_kind(w: Duration) -> String {
    format!("deletion-warning:{}", w.as_secs())
}

/// The cut-off instants of one run.
#[derive(Debug, Clone, Copy)]
struct Cutoffs {
    /// Inactive since then (or earlier): unpublish.
    unpublish_activity: DateTime<Utc>,
    /// Created then (or earlier): old enough to be unpublished.
    unpublish_created: DateTime<Utc>,
    /// Inactive since then (or earlier): delete.
    delete_activity: DateTime<Utc>,
}

/// The lifecycle jobs over one store.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    store: Store,
    rules: LifecycleConfig,
    publisher: SharedPublisher,
    clock: SharedClock,
    hostname: String,
    domains: Vec<String>,
}

impl Lifecycle {
    pub fn new(
        config: &Config,
        store: Store,
        clock: SharedClock,
        publisher: SharedPublisher,
    ) -> Self {
        Lifecycle {
            store,
            rules: config.lifecycle.clone(),
            publisher,
            clock,
            hostname: config.server.hostname.clone(),
            domains: config.server.domains.clone(),
        }
    }

    fn cutoffs(&self, now: DateTime<Utc>) -> Cutoffs {
        Cutoffs {
            unpublish_activity: before(now, self.rules.unpublish_after.0),
            unpublish_created: before(now, self.rules.unpublish_min_age.0),
            delete_activity: before(now, self.rules.delete_after.0),
        }
    }

    /// Runs every job once, as of the clock's instant. In `Apply` mode it takes the
    /// lease first and fails with `Busy` if another run has it; a dry run changes
    /// nothing and takes no lease.
    pub async fn run(
        &self,
        mode: Mode,
        cancel: &CancellationToken,
    ) -> Result<JobReport, LifecycleError> {
        let now = self.clock.now();
        let mut report = JobReport::new(now, mode);
        if mode == Mode::DryRun {
            self.dry_run(now, &mut report).await?;
            return Ok(report);
        }
        let holder = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
        let wall = SystemClock.now();
        if !self
            .store
            .try_acquire_lease(LEASE, &holder, wall, after(wall, LEASE_TTL))
            .await?
        {
            let until = self.store.lease_expiry(LEASE).await?;
            return Err(LifecycleError::Busy { until });
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = tokio::spawn(renew_lease(
            self.store.clone(),
            holder.clone(),
            lost.clone(),
        ));
        let run = Run {
            jobs: self,
            lost: &lost,
            now,
            cut: self.cutoffs(now),
            cancel,
        };
        let outcome = run.all(&mut report).await;
        renewer.abort();
        if let Err(e) = self.store.release_lease(LEASE, &holder).await {
            tracing::warn!(error = %e, "cannot release the lifecycle lease; it will expire");
        }
        outcome.map(|()| report)
    }

    async fn dry_run(
        &self,
        now: DateTime<Utc>,
        report: &mut JobReport,
    ) -> Result<(), LifecycleError> {
        let cut = self.cutoffs(now);
        let unpublish = self.unpublish_candidates(cut).await?;
        let ids: Vec<i64> = unpublish.keys().copied().collect();
        for m in self.read(&ids).await? {
            let reason = unpublish
                .get(&m.id)
                .copied()
                .unwrap_or(UnpublishReason::Inactive);
            report.unpublished.push(Unpublished {
                address: m.address,
                reason,
            });
        }
        let publish = self
            .store
            .publishable(
                cut.unpublish_activity,
                cut.unpublish_created,
                cut.delete_activity,
            )
            .await?;
        report
            .published
            .extend(self.read(&publish).await?.into_iter().map(|m| m.address));
        let warnings = self.warnings_due(cut, now).await?;
        let ids: Vec<i64> = warnings.keys().copied().collect();
        for m in self.read(&ids).await? {
            if let Some((cycle, _)) = warnings.get(&m.id) {
                report.warned.push(Warned {
                    address: m.address,
                    deletion_at: after(from_unix(*cycle), self.rules.delete_after.0),
                });
            }
        }
        let deletable = self.store.deletable(cut.delete_activity).await?;
        report
            .deleted
            .extend(self.read(&deletable).await?.into_iter().map(|m| m.address));
        Ok(())
    }

    /// The mailboxes with these ids, read in batches.
    async fn read(&self, ids: &[i64]) -> Result<Vec<Mailbox>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH) {
            out.extend(self.store.mailboxes_by_ids(chunk).await?);
        }
        Ok(out)
    }

    /// Published mailboxes that must leave the directory, each with one reason.
    async fn unpublish_candidates(
        &self,
        cut: Cutoffs,
    ) -> Result<BTreeMap<i64, UnpublishReason>, StoreError> {
        let mut out = BTreeMap::new();
        for id in self
            .store
            .published_inactive(cut.unpublish_activity, cut.unpublish_created)
            .await?
        {
            out.insert(id, UnpublishReason::Inactive);
        }
        for id in self.store.published_deletable(cut.delete_activity).await? {
            out.insert(id, UnpublishReason::Deletion);
        }
        for id in self.store.red_listed_published().await? {
            out.insert(id, UnpublishReason::RedListed);
        }
        Ok(out)
    }

    /// Mailboxes with deletion warnings due and not sent: id → (cycle, notice kinds).
    /// Thresholds that fell due together (a late run) make one notice.
    async fn warnings_due(
        &self,
        cut: Cutoffs,
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<i64, (i64, Vec<String>)>, StoreError> {
        let mut due: BTreeMap<i64, (i64, Vec<String>)> = BTreeMap::new();
        let delete_after = self.rules.delete_after.0;
        let thresholds: BTreeSet<Duration> = self
            .rules
            .warn_before
            .iter()
            .map(|w| w.0)
            .filter(|w| !w.is_zero() && *w < delete_after)
            .collect();
        for w in thresholds {
            let warn_activity = before(now, delete_after - w);
            let kind = warning_kind(w);
            for (id, cycle) in self
                .store
                .deletion_warnings_due(&kind, warn_activity, cut.delete_activity)
                .await?
            {
                due.entry(id)
                    .or_insert_with(|| (cycle, Vec::new()))
                    .1
                    .push(kind.clone());
            }
        }
        Ok(due)
    }
}

/// Keeps the lease while a run works, however long one push takes (a slow directory
/// endpoint); sets `lost` if another run took it after all (this process stalled past
/// the lease).
async fn renew_lease(store: Store, holder: String, lost: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(LEASE_TTL / 3).await;
        let wall = SystemClock.now();
        match store
            .renew_lease(LEASE, &holder, after(wall, LEASE_TTL))
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew the lifecycle lease"),
        }
    }
}

/// One applying run, holding the lease.
struct Run<'a> {
    jobs: &'a Lifecycle,
    lost: &'a AtomicBool,
    now: DateTime<Utc>,
    cut: Cutoffs,
    cancel: &'a CancellationToken,
}

impl Run<'_> {
    /// False (with `report.cancelled`) when the run must stop for shutdown; an error
    /// when the lease was lost.
    fn keep_going(&self, report: &mut JobReport) -> Result<bool, LifecycleError> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(LifecycleError::LeaseLost);
        }
        if self.cancel.is_cancelled() {
            report.cancelled = true;
            return Ok(false);
        }
        Ok(true)
    }

    async fn all(&self, report: &mut JobReport) -> Result<(), LifecycleError> {
        // Unpublish first: a mailbox about to be deleted leaves the directory before.
        if self.unpublish(report).await? && self.publish(report).await? && self.warn(report).await?
        {
            self.delete(report).await?;
        }
        Ok(())
    }

    /// Pushes `kind` events for these mailboxes in batches and records each batch's
    /// successes; stops at the first failed push (the directory is likely down: the
    /// rest waits for the next run). Returns the mailboxes recorded, and whether to go
    /// on.
    async fn push(
        &self,
        kind: EventKind,
        ids: Vec<i64>,
        report: &mut JobReport,
    ) -> Result<(Vec<Mailbox>, bool), LifecycleError> {
        let store = &self.jobs.store;
        let mut done = Vec::new();
        for chunk in ids.chunks(BATCH) {
            if !self.keep_going(report)? {
                return Ok((done, false));
            }
            let mailboxes = store.mailboxes_by_ids(chunk).await?;
            let events: Vec<DirectoryEvent> = mailboxes
                .iter()
                .map(|m| DirectoryEvent::new(kind, self.now, m))
                .collect();
            let (pushed, error) = self.jobs.publisher.publish_all(&events).await;
            let pushed_ids: Vec<i64> = mailboxes.iter().take(pushed).map(|m| m.id).collect();
            let changed: BTreeSet<i64> = match kind {
                EventKind::Publish => store.mark_published(&pushed_ids).await?,
                EventKind::Unpublish => store.mark_unpublished(&pushed_ids, self.now).await?,
            }
            .into_iter()
            .collect();
            // The mailbox whose event failed, or, when the transport could not say which
            // (its count and error disagree), the batch.
            let failed = mailboxes.get(pushed).map_or_else(
                || format!("(a batch of {} mailboxes)", mailboxes.len()),
                |m| m.address.clone(),
            );
            done.extend(mailboxes.into_iter().filter(|m| changed.contains(&m.id)));
            if let Some(e) = error {
                let address = failed;
                tracing::warn!(error = %e, %address, "directory push failed; retried at the next run");
                let what = match kind {
                    EventKind::Publish => "publish",
                    EventKind::Unpublish => "unpublish",
                };
                report.failures.push(format!("{what} {address}: {e}"));
                break;
            }
        }
        Ok((done, true))
    }

    async fn unpublish(&self, report: &mut JobReport) -> Result<bool, LifecycleError> {
        let candidates = self.jobs.unpublish_candidates(self.cut).await?;
        let ids: Vec<i64> = candidates.keys().copied().collect();
        let (done, go_on) = self.push(EventKind::Unpublish, ids, report).await?;
        for m in done {
            let reason = candidates
                .get(&m.id)
                .copied()
                .unwrap_or(UnpublishReason::Inactive);
            tracing::info!(address = %m.address, %reason, "unpublished from the directory");
            report.unpublished.push(Unpublished {
                address: m.address,
                reason,
            });
        }
        Ok(go_on)
    }

    async fn publish(&self, report: &mut JobReport) -> Result<bool, LifecycleError> {
        let cut = self.cut;
        let ids = self
            .jobs
            .store
            .publishable(
                cut.unpublish_activity,
                cut.unpublish_created,
                cut.delete_activity,
            )
            .await?;
        let (done, go_on) = self.push(EventKind::Publish, ids, report).await?;
        for m in done {
            tracing::info!(address = %m.address, "published in the directory");
            report.published.push(m.address);
        }
        Ok(go_on)
    }

    async fn warn(&self, report: &mut JobReport) -> Result<bool, LifecycleError> {
        let due = self.jobs.warnings_due(self.cut, self.now).await?;
        let ids: Vec<i64> = due.keys().copied().collect();
        for chunk in ids.chunks(BATCH) {
            if !self.keep_going(report)? {
                return Ok(false);
            }
            let mailboxes = self.jobs.store.mailboxes_by_ids(chunk).await?;
            let sends = mailboxes.into_iter().filter_map(|m| {
                let (cycle, kinds) = due.get(&m.id)?.clone();
                Some(self.warn_one(m, cycle, kinds))
            });
            let mut results = futures::stream::iter(sends).buffer_unordered(NOTICES_IN_FLIGHT);
            while let Some(r) = results.next().await {
                match r {
                    Ok(Some(w)) => report.warned.push(w),
                    Ok(None) => {}
                    Err(e) => report.failures.push(e),
                }
            }
        }
        report.warned.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(true)
    }

    async fn warn_one(
        &self,
        m: Mailbox,
        cycle: i64,
        kinds: Vec<String>,
    ) -> Result<Option<Warned>, String> {
        let deletion_at = after(from_unix(cycle), self.jobs.rules.delete_after.0);
        let message =
            notice::deletion_warning(&m, cycle, deletion_at, self.now, &self.jobs.hostname);
        let copies = contact_copies(&self.jobs.store, &self.jobs.domains, &m).await;
        let sent = self
            .jobs
            .store
            .send_notice(Notice {
                mailbox_id: m.id,
                kinds,
                cycle,
                deletion_warning: true,
                message,
                copies,
                at: self.now,
            })
            .await
            .map_err(|e| format!("deletion warning to {}: {e}", m.address))?;
        if !sent {
            return Ok(None);
        }
        tracing::info!(address = %m.address, deletion_at = %deletion_at, "deletion warning sent");
        Ok(Some(Warned {
            address: m.address,
            deletion_at,
        }))
    }

    async fn delete(&self, report: &mut JobReport) -> Result<bool, LifecycleError> {
        let reason = format!(
            "deleted after {} without authentication",
            human(self.jobs.rules.delete_after)
        );
        loop {
            if !self.keep_going(report)? {
                return Ok(false);
            }
            let deleted = self
                .jobs
                .store
                .delete_inactive(self.cut.delete_activity, self.now, &reason, DELETE_BATCH)
                .await?;
            let n = deleted.len();
            for d in deleted {
                tracing::info!(address = %d.address, %reason, "mailbox deleted");
                report.deleted.push(d.address);
            }
            if n < DELETE_BATCH as usize {
                return Ok(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_saturate() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(
            before(now, Duration::from_secs(86_400)).timestamp(),
            -86_400
        );
        assert_eq!(before(now, Duration::MAX), DateTime::<Utc>::MIN_UTC);
        assert_eq!(after(now, Duration::MAX), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn readable_durations() {
        assert_eq!(
            human(HumanDuration(Duration::from_secs(365 * 86_400))),
            "365 days"
        );
        assert_eq!(human(HumanDuration(Duration::from_secs(86_400))), "1 day");
        assert_eq!(human(HumanDuration(Duration::from_secs(90))), "90s");
        assert_eq!(
            warning_kind(Duration::from_secs(7 * 86_400)),
            "deletion-warning:604800"
        );
    }
}
