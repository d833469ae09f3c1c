//! What a run of the lifecycle jobs did, or in a dry run would do: printed by `jobs run`,
//! logged by the scheduler, serialised for `--json`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("another run of the lifecycle jobs is in progress (its lease runs until {})",
        .until.map(|u| u.to_rfc3339()).unwrap_or_else(|| "now".into()))]
    Busy { until: Option<DateTime<Utc>> },
    #[error("the lifecycle lease expired and was taken by another run; stopped")]
    LeaseLost,
}

/// Apply the rules, or only say what applying them would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    DryRun,
}

/// Why a mailbox leaves the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnpublishReason {
    /// Personal or organisational, a year old, no authentication for `unpublish_after`.
    Inactive,
    /// Red-listed after it was published.
    RedListed,
    /// About to be deleted.
    Deletion,
}

impl fmt::Display for UnpublishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnpublishReason::Inactive => "no authentication for too long",
            UnpublishReason::RedListed => "red-listed",
            UnpublishReason::Deletion => "to be deleted",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unpublished {
    pub address: String,
    pub reason: UnpublishReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warned {
    pub address: String,
    pub deletion_at: DateTime<Utc>,
}

/// What one run did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub at: DateTime<Utc>,
    pub dry_run: bool,
    pub published: Vec<String>,
    pub unpublished: Vec<Unpublished>,
    pub warned: Vec<Warned>,
    pub deleted: Vec<String>,
    /// Pushes or notices that failed; they are retried at the next run.
    pub failures: Vec<String>,
    /// The run stopped early because the server is shutting down.
    pub cancelled: bool,
}

impl JobReport {
    pub(super) fn new(at: DateTime<Utc>, mode: Mode) -> Self {
        JobReport {
            at,
            dry_run: mode == Mode::DryRun,
            published: Vec::new(),
            unpublished: Vec::new(),
            warned: Vec::new(),
            deleted: Vec::new(),
            failures: Vec::new(),
            cancelled: false,
        }
    }

    /// True when the run changed nothing and nothing failed.
    pub fn is_empty(&self) -> bool {
        self.published.is_empty()
            && self.unpublished.is_empty()
            && self.warned.is_empty()
            && self.deleted.is_empty()
            && self.failures.is_empty()
    }
}

impl fmt::Display for JobReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let would = if self.dry_run { "would " } else { "" };
        let (unpublish, publish, warn, delete) = if self.dry_run {
            ("unpublish", "publish", "warn", "delete")
        } else {
            ("unpublished", "published", "warned", "deleted")
        };
        for u in &self.unpublished {
            writeln!(f, "{would}{unpublish} {} ({})", u.address, u.reason)?;
        }
        for a in &self.published {
            writeln!(f, "{would}{publish} {a}")?;
        }
        for w in &self.warned {
            writeln!(
                f,
                "{would}{warn} {} (deletion on {})",
                w.address,
                w.deletion_at.to_rfc3339()
            )?;
        }
        for a in &self.deleted {
            writeln!(f, "{would}{delete} {a}")?;
        }
        for e in &self.failures {
            writeln!(f, "failed: {e}")?;
        }
        if self.cancelled {
            writeln!(f, "stopped early: shutting down")?;
        }
        write!(
            f,
            "{} as of {}: {} published, {} unpublished, {} warned, {} deleted, {} failed",
            if self.dry_run { "dry run" } else { "run" },
            self.at.to_rfc3339(),
            self.published.len(),
            self.unpublished.len(),
            self.warned.len(),
            self.deleted.len(),
            self.failures.len()
        )
    }
}
