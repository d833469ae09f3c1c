//! The mailbox lifecycle (Référentiel #1): directory publication, deletion warnings and
//! deletion after a year without authentication, and the notice listing a new holder's
//! other mailboxes.
//!
//! "Last activity" is `COALESCE(last_authenticated_at, created_at)`. Every rule is
//! evaluated at one instant taken from the injectable clock when a run starts, so
//! `jobs run --at` and tests can play any date.
//!
//! # Runs never overlap, and state follows what the directory was told
//!
//! The scheduler of every `serve` process and any `jobs run` may share one database, so
//! a process-wide mutex would not be enough: a run first takes a lease row in the store
//! (`lifecycle_lease`), renews it while it works and gives it back at the end; a run that
//! finds the lease taken does nothing and says so. The lease is measured on the
//! machine's clock, not the run's (possibly simulated) instant, because it is about
//! real processes.
//!
//! A directory change is pushed first and recorded after, with a conditional UPDATE on
//! the `published` flag only (`… WHERE published = 1`): the flag mirrors what the
//! directory was told, so a failed push leaves the mailbox as it was for the next run,
//! and a mailbox that changed between selection and push still gets the flag the
//! directory has (the next run corrects both). A crash between a successful push and its
//! UPDATE makes the next run push that event again: the directory must treat a repeated
//! publish or unpublish as a no-op.
//!
//! Notices and deletions are single transactions whose conditions are re-checked inside
//! the writer (`lifecycle_notices` has a unique key per notice and activity cycle;
//! deletion re-checks hold, publication and inactivity), so even outside the lease they
//! can neither repeat nor hit a mailbox that was used in the meantime.
//!
//! Republication after an authentication needs no hook in the protocols: the publish job
//! picks up every unpublished mailbox that is active again at its next run.
//!
//! `run` holds the jobs and their lease, `report` what a run did, `existing` the notice
//! of a new holder's other mailboxes (MSS 17), `scheduler` the periodic runs of `serve`,
//! `notice` the texts sent and `directory` the publishers.

pub mod directory;
mod existing;
mod notice;
mod report;
mod run;
mod scheduler;

pub use directory::{
    DirectoryEvent, DirectoryPublisher, EventKind, FilePublisher, HttpPublisher, NoPublisher,
    PublishError, SharedPublisher, publisher_from_config,
};
pub use existing::{mailboxes_in_name_of, notify_existing_mailboxes};
pub use report::{JobReport, LifecycleError, Mode, UnpublishReason, Unpublished, Warned};
pub use run::Lifecycle;
pub use scheduler::spawn_scheduler;
