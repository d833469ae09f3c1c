//! The mailbox lifecycle (Référentiel #1) at its boundaries, with a fixed clock, real
//! SQLite files in temporary folders, the real publishers, and the real binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use mssante::clock::FixedClock;
use mssante::config::Config;
use mssante::lifecycle::{
    DirectoryEvent, DirectoryPublisher, EventKind, FilePublisher, HttpPublisher, JobReport,
    Lifecycle, LifecycleError, Mode, PublishError, SharedPublisher, UnpublishReason,
    notify_existing_mailboxes,
};
use mssante::store::{DirectoryFields, Grant, Mailbox, MailboxKind, NewMailbox, Store};
use tokio_util::sync::CancellationToken;

const DOMAIN: &str = "hopital.mssante.fr";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

/// Writes a throwaway self-signed certificate and a configuration using it.
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("server.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), ck.signing_key.serialize_pem()).unwrap();
    let text = format!(
        r#"
[admin]
listen = "127.0.0.1:0"

[server]
hostname = "mail.{DOMAIN}"
domains = ["{DOMAIN}"]
data_dir = "data"

[tls]
certificate = "server.crt"
private_key = "server.key"

[imap]
tls = []
starttls = []

[smtp]
submission_tls = []
submission_starttls = []
inbound = []

[psc]
issuer = "https://auth.example.org/realms/esante"

{extra}
"#
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Publication events as the directory receives them, optionally slow or failing.
#[derive(Debug, Default)]
struct Recorder {
    events: Mutex<Vec<DirectoryEvent>>,
    failing: AtomicBool,
    delay: Option<Duration>,
}

impl Recorder {
    fn events(&self) -> Vec<(EventKind, String)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.event, e.address.clone()))
            .collect()
    }
}

impl DirectoryPublisher for Recorder {
    fn publish<'a>(&'a self, event: &'a DirectoryEvent) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            if let Some(d) = self.delay {
                tokio::time::sleep(d).await;
            }
            if self.failing.load(Ordering::SeqCst) {
                return Err(PublishError::Setup("directory unavailable".into()));
            }
            self.events.lock().unwrap().push(event.clone());
            Ok(())
        })
    }
}

async fn apply(jobs: &Lifecycle) -> JobReport {
    jobs.run(Mode::Apply, &CancellationToken::new())
        .await
        .unwrap()
}

struct Env {
    dir: tempfile::TempDir,
    config: Config,
    store: Store,
    directory: Arc<Recorder>,
}

impl Env {
    async fn new() -> Env {
        Self::with(Recorder::default()).await
    }

    async fn with(recorder: Recorder) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "");
        let config = Config::load(&path).unwrap();
        let store = Store::open(&config.server.data_dir, mssante::clock::system())
            .await
            .unwrap();
        Env {
            dir,
            config,
            store,
            directory: Arc::new(recorder),
        }
    }

    fn jobs_at(&self, at: DateTime<Utc>) -> Lifecycle {
        self.jobs_publishing_to(at, self.directory.clone())
    }

    fn jobs_publishing_to(&self, at: DateTime<Utc>, publisher: SharedPublisher) -> Lifecycle {
        Lifecycle::new(
            &self.config,
            self.store.clone(),
            Arc::new(FixedClock(at)),
            publisher,
        )
    }

    async fn run(&self, at: DateTime<Utc>) -> JobReport {
        apply(&self.jobs_at(at)).await
    }

    async fn create(
        &self,
        local: &str,
        kind: MailboxKind,
        created_at: DateTime<Utc>,
        red_list: bool,
        contact: Option<&str>,
    ) -> Mailbox {
        self.store
            .create_mailbox(NewMailbox {
                address: format!("{local}@{DOMAIN}"),
                kind,
                owner: (kind == MailboxKind::Personal).then(|| format!("8{local}")),
                display_name: None,
                created_at,
                red_list,
                directory: DirectoryFields {
                    description: Some(format!("BAL {local}")),
                    responsible: Some("Dr Responsable".into()),
                    service: Some("Cardiologie".into()),
                    telephone: Some("0102030405".into()),
                    dematerialisation: true,
                    contact_address: contact.map(str::to_owned),
                },
            })
            .await
            .unwrap()
    }

    /// A mailbox created long ago whose holder last authenticated `at`.
    async fn last_seen(&self, local: &str, kind: MailboxKind, at: DateTime<Utc>) -> Mailbox {
        let m = self
            .create(local, kind, t0() - days(800), false, None)
            .await;
        self.store.record_authentication(m.id, at).await.unwrap();
        m
    }

    async fn get(&self, m: &Mailbox) -> Option<Mailbox> {
        self.store.mailbox(&m.address).await.unwrap()
    }

    /// The messages in a mailbox's INBOX: subject, text and raw header section.
    async fn inbox(&self, m: &Mailbox) -> Vec<String> {
        let folder = self.store.folder(m.id, "INBOX").await.unwrap().unwrap();
        let mut out = Vec::new();
        for meta in self.store.messages(folder.id).await.unwrap() {
            let raw = self.store.body(meta.body_id).await.unwrap();
            let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
            let header = self.store.header(meta.body_id).await.unwrap();
            out.push(format!(
                "{}\n{}\n{}",
                parsed.subject().unwrap_or_default(),
                parsed.body_text(0).unwrap_or_default(),
                String::from_utf8_lossy(&header)
            ));
        }
        out
    }

    async fn db(&self) -> sqlx::SqlitePool {
        let path = self.config.database_path();
        sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", path.display()))
            .await
            .unwrap()
    }
}

fn addr(local: &str) -> String {
    format!("{local}@{DOMAIN}")
}

// ---- directory publication ----

#[tokio::test]
async fn unpublished_after_60_days_without_authentication_not_59() {
    let env = Env::new().await;
    let m = env.last_seen("alice", MailboxKind::Personal, t0()).await;

    let r = env.run(t0()).await;
    assert_eq!(r.published, vec![addr("alice")]);
    assert!(env.get(&m).await.unwrap().published);

    let r = env.run(t0() + days(59)).await;
    assert!(r.unpublished.is_empty(), "{r}");
    assert!(env.get(&m).await.unwrap().published);

    let r = env.run(t0() + days(60)).await;
    assert_eq!(r.unpublished.len(), 1, "{r}");
    assert_eq!(r.unpublished[0].reason, UnpublishReason::Inactive);
    let after = env.get(&m).await.unwrap();
    assert!(!after.published);
    assert_eq!(after.unpublished_at, Some(t0() + days(60)));
    assert_eq!(
        env.directory.events(),
        vec![
            (EventKind::Publish, addr("alice")),
            (EventKind::Unpublish, addr("alice"))
        ]
    );
}

#[tokio::test]
async fn mailbox_younger_than_a_year_is_never_unpublished() {
    let env = Env::new().await;
    let created = t0();
    let per = env
        .create("young", MailboxKind::Personal, created, false, None)
        .await;
    let org = env
        .create("service", MailboxKind::Organisational, created, false, None)
        .await;
    env.store
        .record_authentication(per.id, created + days(200))
        .await
        .unwrap();
    env.store
        .record_authentication(org.id, created + days(200))
        .await
        .unwrap();
    env.run(created).await;
    // 164 days without authentication, but only 364 days old.
    let r = env.run(created + days(364)).await;
    assert!(r.unpublished.is_empty(), "{r}");
    assert!(env.get(&per).await.unwrap().published);
    assert!(env.get(&org).await.unwrap().published);
    // A year old: the inactivity rule applies.
    let r = env.run(created + days(365)).await;
    assert_eq!(r.unpublished.len(), 2, "{r}");
    assert!(!env.get(&per).await.unwrap().published);
    assert!(!env.get(&org).await.unwrap().published);
}

#[tokio::test]
async fn republished_at_the_next_run_after_an_authentication() {
    let env = Env::new().await;
    let m = env.last_seen("bob", MailboxKind::Personal, t0()).await;
    env.run(t0()).await;
    env.run(t0() + days(70)).await;
    assert!(!env.get(&m).await.unwrap().published);

    let back = t0() + days(100);
    env.store.record_authentication(m.id, back).await.unwrap();
    let r = env.run(back + TimeDelta::hours(1)).await;
    assert_eq!(r.published, vec![addr("bob")], "{r}");
    let after = env.get(&m).await.unwrap();
    assert!(after.published);
    assert_eq!(after.unpublished_at, None);
    assert_eq!(
        env.directory.events(),
        vec![
            (EventKind::Publish, addr("bob")),
            (EventKind::Unpublish, addr("bob")),
            (EventKind::Publish, addr("bob"))
        ]
    );
    // Nothing more to say on a second run.
    assert!(env.run(back + TimeDelta::hours(2)).await.is_empty());
}

#[tokio::test]
async fn red_listed_mailboxes_are_never_published() {
    let env = Env::new().await;
    for (local, kind) in [
        ("rouge-per", MailboxKind::Personal),
        ("rouge-org", MailboxKind::Organisational),
        ("rouge-app", MailboxKind::Applicative),
    ] {
        let m = env.create(local, kind, t0(), true, None).await;
        env.store.record_authentication(m.id, t0()).await.unwrap();
    }
    let r = env.run(t0()).await;
    assert!(r.published.is_empty(), "{r}");
    env.run(t0() + days(10)).await;
    assert!(env.directory.events().is_empty());
    for m in env.store.mailboxes().await.unwrap() {
        assert!(!m.published, "{}", m.address);
    }
}

#[tokio::test]
async fn a_mailbox_red_listed_after_publication_leaves_the_directory() {
    let env = Env::new().await;
    let m = env
        .create("discret", MailboxKind::Applicative, t0(), false, None)
        .await;
    env.run(t0()).await;
    assert!(env.get(&m).await.unwrap().published);
    // No operator command changes it after creation yet: set it in the database.
    let path = env.config.database_path();
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE mailboxes SET red_list = 1 WHERE id = ?")
        .bind(m.id)
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let r = env.run(t0() + days(1)).await;
    assert_eq!(r.unpublished.len(), 1, "{r}");
    assert_eq!(r.unpublished[0].reason, UnpublishReason::RedListed);
    assert!(env.run(t0() + days(2)).await.is_empty());
    let events: Vec<_> = env.directory.events.lock().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].event, EventKind::Unpublish);
    assert_eq!(events[1].liste_rouge, "O");
}

#[tokio::test]
async fn applicative_mailboxes_stay_published_while_inactive_until_deletion() {
    let env = Env::new().await;
    let app = env.last_seen("labo", MailboxKind::Applicative, t0()).await;
    env.run(t0()).await;
    let r = env.run(t0() + days(300)).await;
    assert!(r.unpublished.is_empty(), "{r}");
    assert!(env.get(&app).await.unwrap().published);

    // Due for deletion: it leaves the directory first, then goes.
    let r = env.run(t0() + days(365)).await;
    assert_eq!(r.unpublished.len(), 1, "{r}");
    assert_eq!(r.unpublished[0].reason, UnpublishReason::Deletion);
    assert_eq!(r.deleted, vec![addr("labo")]);
    assert_eq!(
        env.directory.events(),
        vec![
            (EventKind::Publish, addr("labo")),
            (EventKind::Unpublish, addr("labo"))
        ]
    );
}

#[tokio::test]
async fn published_event_carries_the_directory_fields() {
    let env = Env::new().await;
    let per = env
        .create(
            "dr",
            MailboxKind::Personal,
            t0(),
            false,
            Some("x@example.org"),
        )
        .await;
    let org = env
        .create(
            "secretariat",
            MailboxKind::Organisational,
            t0(),
            false,
            None,
        )
        .await;
    env.run(t0()).await;
    let events = env.directory.events.lock().unwrap().clone();
    let json: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert_eq!(json.len(), 2);
    let by = |a: &str| json.iter().find(|j| j["address"] == a).unwrap().clone();
    let p = by(&per.address);
    assert_eq!(p["event"], "publish");
    assert_eq!(p["type"], "PER");
    assert_eq!(p["at"], "2030-01-01T00:00:00Z");
    assert!(p.get("responsible").is_none());
    assert_eq!(p["description"], "BAL dr");
    assert_eq!(p["service"], "Cardiologie");
    assert_eq!(p["telephone"], "0102030405");
    assert_eq!(p["dematerialisation"], "O");
    assert_eq!(p["listeRouge"], "N");
    let o = by(&org.address);
    assert_eq!(o["type"], "ORG");
    assert_eq!(o["responsible"], "Dr Responsable");
}

#[tokio::test]
async fn a_failed_push_changes_nothing_and_the_next_run_retries() {
    let env = Env::new().await;
    let m = env
        .create("carol", MailboxKind::Applicative, t0(), false, None)
        .await;
    env.directory.failing.store(true, Ordering::SeqCst);
    let r = env.run(t0()).await;
    assert!(r.published.is_empty());
    assert_eq!(r.failures.len(), 1, "{r}");
    assert!(!env.get(&m).await.unwrap().published);

    env.directory.failing.store(false, Ordering::SeqCst);
    let r = env.run(t0() + days(1)).await;
    assert_eq!(r.published, vec![addr("carol")]);
    assert!(env.get(&m).await.unwrap().published);

    // A published mailbox whose unpublication cannot be pushed is not deleted yet.
    env.directory.failing.store(true, Ordering::SeqCst);
    let r = env.run(t0() + days(400)).await;
    assert!(r.deleted.is_empty(), "{r}");
    assert!(env.get(&m).await.unwrap().published);
    env.directory.failing.store(false, Ordering::SeqCst);
    let r = env.run(t0() + days(401)).await;
    assert_eq!(r.deleted, vec![addr("carol")], "{r}");
    assert_eq!(
        env.directory.events(),
        vec![
            (EventKind::Publish, addr("carol")),
            (EventKind::Unpublish, addr("carol"))
        ]
    );
}

#[tokio::test]
async fn concurrent_runs_emit_each_event_once() {
    let env = Env::with(Recorder {
        delay: Some(Duration::from_millis(5)),
        ..Recorder::default()
    })
    .await;
    for i in 0..20 {
        env.create(
            &format!("m{i:02}"),
            MailboxKind::Applicative,
            t0(),
            false,
            None,
        )
        .await;
    }
    // A second handle on the same database, as another process would have.
    let other = Store::open(&env.config.server.data_dir, mssante::clock::system())
        .await
        .unwrap();
    let publisher: SharedPublisher = env.directory.clone();
    let second = Lifecycle::new(&env.config, other, Arc::new(FixedClock(t0())), publisher);
    let first = env.jobs_at(t0());
    let cancel = CancellationToken::new();
    let (a, b) = tokio::join!(
        first.run(Mode::Apply, &cancel),
        second.run(Mode::Apply, &cancel)
    );
    let mut published = 0;
    for r in [a, b] {
        match r {
            Ok(report) => published += report.published.len(),
            Err(LifecycleError::Busy { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(published, 20);
    let mut events = env.directory.events();
    assert_eq!(events.len(), 20);
    events.sort();
    events.dedup();
    assert_eq!(events.len(), 20, "an event was pushed twice");
    // The lease was given back: a later run is not refused.
    assert!(env.run(t0() + days(1)).await.is_empty());
}

#[tokio::test]
async fn a_live_lease_refuses_a_run_and_an_expired_one_is_taken_over() {
    let env = Env::new().await;
    env.create("lease", MailboxKind::Applicative, t0(), false, None)
        .await;
    let wall = mssante::clock::SystemClock::now_utc();
    // A process that crashed ten minutes ago, its lease run out.
    assert!(
        env.store
            .try_acquire_lease("lifecycle", "crashed", wall, wall - TimeDelta::minutes(1))
            .await
            .unwrap()
    );
    assert_eq!(env.run(t0()).await.published, vec![addr("lease")]);
    // Another process working right now.
    assert!(
        env.store
            .try_acquire_lease("lifecycle", "busy", wall, wall + TimeDelta::minutes(10))
            .await
            .unwrap()
    );
    let refused = env
        .jobs_at(t0() + days(1))
        .run(Mode::Apply, &CancellationToken::new())
        .await;
    match refused {
        Err(LifecycleError::Busy { until: Some(until) }) => {
            assert_eq!(
                until.timestamp(),
                (wall + TimeDelta::minutes(10)).timestamp()
            )
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    // A dry run needs no lease.
    env.jobs_at(t0() + days(1))
        .run(Mode::DryRun, &CancellationToken::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let env = Env::new().await;
    let m = env
        .create("dave", MailboxKind::Applicative, t0(), false, None)
        .await;
    let r = env
        .jobs_at(t0() + days(400))
        .run(Mode::DryRun, &CancellationToken::new())
        .await
        .unwrap();
    assert!(r.dry_run);
    assert_eq!(r.deleted, vec![addr("dave")]);
    assert!(r.to_string().contains("would delete dave@"), "{r}");
    let r = env
        .jobs_at(t0())
        .run(Mode::DryRun, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.published, vec![addr("dave")]);
    assert!(env.directory.events().is_empty());
    let after = env.get(&m).await.unwrap();
    assert!(!after.published);
    assert!(env.inbox(&m).await.is_empty());
}

// ---- warnings and deletion ----

#[tokio::test]
async fn warnings_are_sent_once_each_even_when_jobs_run_twice() {
    let env = Env::new().await;
    let colleague = env
        .create("colleague", MailboxKind::Organisational, t0(), false, None)
        .await;
    env.store
        .record_authentication(colleague.id, t0() + days(300))
        .await
        .unwrap();
    let remote = env
        .create(
            "eve",
            MailboxKind::Personal,
            t0() - days(800),
            false,
            Some("eve.private@other-operator.fr"),
        )
        .await;
    let local = env
        .create(
            "frank",
            MailboxKind::Personal,
            t0() - days(800),
            false,
            Some(&colleague.address),
        )
        .await;
    for m in [&remote, &local] {
        env.store.record_authentication(m.id, t0()).await.unwrap();
    }
    let colleague_inbox_before = env.inbox(&colleague).await.len();

    let r = env.run(t0() + days(334)).await;
    assert!(r.warned.is_empty(), "{r}");
    assert!(env.get(&remote).await.unwrap().deletion_warned_at.is_none());

    for _ in 0..2 {
        env.run(t0() + days(335)).await;
    }
    env.run(t0() + days(340)).await;
    let m = env.get(&remote).await.unwrap();
    assert_eq!(m.deletion_warned_at, Some(t0() + days(335)));
    let inbox = env.inbox(&remote).await;
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].contains("Auto-Submitted: auto-generated"));
    assert!(
        inbox[0].contains("01/01/2031"),
        "names the deletion date: {}",
        inbox[0]
    );
    assert_eq!(env.inbox(&local).await.len(), 1);
    assert_eq!(
        env.inbox(&colleague).await.len(),
        colleague_inbox_before + 1,
        "a local contact address gets its copy in its INBOX"
    );

    let r = env.run(t0() + days(358)).await;
    assert_eq!(r.warned.len(), 2, "{r}");
    let r = env.run(t0() + days(358)).await;
    assert!(r.warned.is_empty(), "{r}");
    assert_eq!(env.inbox(&remote).await.len(), 2);
    // The first warning's date stays.
    assert_eq!(
        env.get(&remote).await.unwrap().deletion_warned_at,
        Some(t0() + days(335))
    );
    let kinds: Vec<String> = env
        .store
        .notices(remote.id)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.kind)
        .collect();
    assert_eq!(
        kinds,
        vec!["deletion-warning:2592000", "deletion-warning:604800"]
    );

    // Remote copies wait in the outbound queue, once per warning.
    let db = env.db().await;
    let queued: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT q.sender, r.recipient, r.domain FROM queue q
         JOIN queue_recipients r ON r.queue_id = q.id ORDER BY q.id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(
        queued,
        vec![
            (
                String::new(),
                "eve.private@other-operator.fr".into(),
                "other-operator.fr".into()
            );
            2
        ]
    );
}

#[tokio::test]
async fn deleted_after_365_days_not_364_with_an_audit_record() {
    let env = Env::new().await;
    let m = env.last_seen("gus", MailboxKind::Personal, t0()).await;
    let inbox = env.store.folder(m.id, "INBOX").await.unwrap().unwrap();
    let only_here = env
        .store
        .append(
            inbox.id,
            b"Subject: only here\r\n\r\nbody\r\n",
            Default::default(),
            t0(),
        )
        .await
        .unwrap();
    let body_id = env.store.messages(inbox.id).await.unwrap()[0].body_id;
    assert_eq!(only_here.uid, 1);

    let r = env.run(t0() + days(364)).await;
    assert!(r.deleted.is_empty(), "{r}");
    assert!(env.get(&m).await.is_some());

    let r = env.run(t0() + days(365)).await;
    assert_eq!(r.deleted, vec![addr("gus")], "{r}");
    assert!(env.get(&m).await.is_none());
    assert!(
        env.store.body(body_id).await.is_err(),
        "the body only this mailbox used is gone"
    );
    let audit = env
        .store
        .audit_records(Some(&addr("gus")), 10)
        .await
        .unwrap();
    let last = audit.last().unwrap();
    assert_eq!(last.entry.protocol, "lifecycle");
    assert_eq!(
        last.entry.reason.as_deref(),
        Some("deleted after 365 days without authentication")
    );
    assert_eq!(last.entry.at, t0() + days(365));
    // Running again deletes nothing more and records nothing more.
    assert!(env.run(t0() + days(365)).await.deleted.is_empty());
    assert_eq!(
        env.store
            .audit_records(Some(&addr("gus")), 10)
            .await
            .unwrap()
            .len(),
        audit.len()
    );
}

#[tokio::test]
async fn a_late_run_sends_one_warning_for_thresholds_due_together() {
    let env = Env::new().await;
    let m = env
        .create("hugo", MailboxKind::Applicative, t0(), false, None)
        .await;
    env.store.record_authentication(m.id, t0()).await.unwrap();
    let r = env.run(t0() + days(360)).await;
    assert_eq!(r.warned.len(), 1);
    assert_eq!(r.warned[0].deletion_at, t0() + days(365));
    assert_eq!(env.inbox(&m).await.len(), 1);
    assert_eq!(env.store.notices(m.id).await.unwrap().len(), 2);
    assert!(env.run(t0() + days(361)).await.warned.is_empty());
    assert_eq!(env.inbox(&m).await.len(), 1);
}

#[tokio::test]
async fn held_mailboxes_are_neither_warned_nor_deleted() {
    let env = Env::new().await;
    let m = env
        .create("ines", MailboxKind::Organisational, t0(), false, None)
        .await;
    env.store.record_authentication(m.id, t0()).await.unwrap();
    assert!(env.store.set_hold(&m.address, true).await.unwrap());
    let r = env.run(t0() + days(340)).await;
    assert!(r.warned.is_empty(), "{r}");
    let r = env.run(t0() + days(500)).await;
    assert!(r.deleted.is_empty(), "{r}");
    let kept = env.get(&m).await.unwrap();
    assert!(kept.hold);
    assert!(env.inbox(&m).await.is_empty());

    assert!(env.store.set_hold(&m.address, false).await.unwrap());
    let r = env.run(t0() + days(501)).await;
    assert_eq!(r.deleted, vec![addr("ines")]);
}

#[tokio::test]
async fn an_authentication_starts_a_new_warning_cycle() {
    let env = Env::new().await;
    let m = env.last_seen("jules", MailboxKind::Personal, t0()).await;
    env.run(t0() + days(335)).await;
    assert!(env.get(&m).await.unwrap().deletion_warned_at.is_some());

    let again = t0() + days(340);
    env.store.record_authentication(m.id, again).await.unwrap();
    assert!(env.get(&m).await.unwrap().deletion_warned_at.is_none());
    // A year after the first authentication, but not after the last one.
    assert!(env.run(t0() + days(366)).await.deleted.is_empty());
    let r = env.run(again + days(335)).await;
    assert_eq!(r.warned.len(), 1, "warned again in the new cycle: {r}");
    assert_eq!(env.inbox(&m).await.len(), 2);
    assert_eq!(
        env.run(again + days(365)).await.deleted,
        vec![addr("jules")]
    );
}

// ---- a new holder's other mailboxes ----

#[tokio::test]
async fn a_new_personal_mailbox_is_told_the_holders_other_mailboxes_once() {
    let env = Env::new().await;
    let idnat = "810012345678";
    let first = env
        .store
        .create_mailbox(NewMailbox::new(
            addr("k.first"),
            MailboxKind::Personal,
            Some(idnat.into()),
            t0(),
        ))
        .await
        .unwrap();
    let service = env
        .create("urgences", MailboxKind::Organisational, t0(), false, None)
        .await;
    env.store
        .add_grant(
            &service.address,
            Grant::Idnat {
                idnat: idnat.into(),
            },
        )
        .await
        .unwrap();
    env.create("unrelated", MailboxKind::Personal, t0(), false, None)
        .await;
    let new = env
        .store
        .create_mailbox(NewMailbox::new(
            addr("k.second"),
            MailboxKind::Personal,
            Some(idnat.into()),
            t0(),
        ))
        .await
        .unwrap();
    let clock = FixedClock(t0());
    let others = notify_existing_mailboxes(&env.config, &env.store, &clock, &new)
        .await
        .unwrap();
    let listed: Vec<&str> = others.iter().map(|m| m.address.as_str()).collect();
    assert_eq!(
        listed,
        vec![first.address.as_str(), service.address.as_str()]
    );
    let inbox = env.inbox(&new).await;
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].contains(&first.address) && inbox[0].contains(&service.address));
    assert!(!inbox[0].contains("unrelated@"));
    // Recorded: asking again sends nothing more.
    notify_existing_mailboxes(&env.config, &env.store, &clock, &new)
        .await
        .unwrap();
    assert_eq!(env.inbox(&new).await.len(), 1);
    assert_eq!(
        env.store.notices(new.id).await.unwrap()[0].kind,
        "existing-mailboxes"
    );
    // The first mailbox of a holder gets no notice.
    assert!(env.inbox(&first).await.is_empty());
}

// ---- publishers ----

/// A directory endpoint on loopback that answers with the given statuses in turn (the
/// last one repeated) and keeps what it received.
async fn directory_endpoint(
    statuses: Vec<u16>,
) -> (
    url::Url,
    Arc<Mutex<Vec<serde_json::Value>>>,
    Arc<AtomicUsize>,
) {
    use axum::http::StatusCode;
    let received = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (r, c) = (received.clone(), calls.clone());
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let (r, c, statuses) = (r.clone(), c.clone(), statuses.clone());
            async move {
                let n = c.fetch_add(1, Ordering::SeqCst);
                let status = statuses[n.min(statuses.len() - 1)];
                if (200..300).contains(&status) {
                    r.lock().unwrap().push(v);
                }
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url::Url::parse(&url).unwrap(), received, calls)
}

#[tokio::test]
async fn http_publisher_retries_server_errors_within_a_run() {
    let (url, received, calls) = directory_endpoint(vec![503, 500, 201]).await;
    let env = Env::new().await;
    env.create("lab", MailboxKind::Applicative, t0(), false, None)
        .await;
    let publisher: SharedPublisher = Arc::new(
        HttpPublisher::new(url)
            .unwrap()
            .with_retries(4, Duration::from_millis(10)),
    );
    let r = apply(&env.jobs_publishing_to(t0(), publisher)).await;
    assert_eq!(r.published, vec![addr("lab")], "{r}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["event"], "publish");
    assert_eq!(got[0]["type"], "APP");
    assert_eq!(got[0]["address"], addr("lab"));
}

#[tokio::test]
async fn http_publisher_does_not_retry_a_refusal_and_nothing_is_marked() {
    let (url, received, calls) = directory_endpoint(vec![400]).await;
    let env = Env::new().await;
    let m = env
        .create("lab", MailboxKind::Applicative, t0(), false, None)
        .await;
    let publisher: SharedPublisher = Arc::new(
        HttpPublisher::new(url)
            .unwrap()
            .with_retries(4, Duration::from_millis(10)),
    );
    let r = apply(&env.jobs_publishing_to(t0(), publisher)).await;
    assert!(r.published.is_empty());
    assert!(r.failures[0].contains("400"), "{r}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(received.lock().unwrap().is_empty());
    assert!(!env.get(&m).await.unwrap().published);
}

#[tokio::test]
async fn file_publisher_appends_json_lines() {
    let env = Env::new().await;
    let path = env.dir.path().join("directory.jsonl");
    env.create("a", MailboxKind::Applicative, t0(), false, None)
        .await;
    env.create("b", MailboxKind::Applicative, t0(), false, None)
        .await;
    let publisher: SharedPublisher = Arc::new(FilePublisher::new(path.clone()));
    let jobs = env.jobs_publishing_to(t0(), publisher);
    apply(&jobs).await;
    apply(&jobs).await;
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["address"], addr("a"));
    assert_eq!(lines[1]["address"], addr("b"));
}

// ---- the scheduler in `serve` ----

#[tokio::test]
async fn the_server_scheduler_runs_the_jobs_until_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("directory.jsonl");
    let path = write_config(
        dir.path(),
        "[lifecycle]\ninterval = \"1s\"\n\n[directory]\nkind = \"file\"\npath = \"directory.jsonl\"\n",
    );
    let config = Config::load(&path).unwrap();
    {
        let store = Store::open(&config.server.data_dir, mssante::clock::system())
            .await
            .unwrap();
        store
            .create_mailbox(NewMailbox::new(
                addr("new"),
                MailboxKind::Applicative,
                None,
                mssante::clock::SystemClock::now_utc(),
            ))
            .await
            .unwrap();
    }
    let running = mssante::server::start(config, mssante::clock::system())
        .await
        .unwrap();
    let published = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(text) = std::fs::read_to_string(&jsonl)
                && text.contains(&addr("new"))
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the scheduler published the new mailbox");
    assert_eq!(published.lines().count(), 1);
    let data_dir = running.context.config.server.data_dir.clone();
    running.stop().await;
    // A stopped server has closed its store: what it recorded is read back from disk.
    let store = Store::open(&data_dir, mssante::clock::system())
        .await
        .unwrap();
    assert!(
        store
            .mailbox(&addr("new"))
            .await
            .unwrap()
            .unwrap()
            .published
    );
}

// ---- the operator's view, through the real binary ----

fn mssante(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mssante"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(config: &Path, args: &[&str]) -> String {
    let (success, stdout, stderr) = mssante(config, args);
    assert!(success, "mssante {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn show(config: &Path, address: &str) -> serde_json::Value {
    serde_json::from_str(&ok(config, &["mailbox", "show", address, "--json"])).unwrap()
}

/// The whole cycle through the CLI. Authentications are recorded with the store's own
/// method on the same data folder, as IMAP and SMTP do; a variant that authenticates
/// over IMAP belongs beside it once IMAP exists.
#[tokio::test]
async fn cli_lifecycle_with_authentication_recorded_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[directory]\nkind = \"file\"\npath = \"directory.jsonl\"\n",
    );
    let now = t0();
    let alice = addr("alice");
    let bob = addr("bob");
    let out = ok(
        &config,
        &[
            "mailbox",
            "create",
            &alice,
            "--kind",
            "personal",
            "--owner",
            "810001",
            "--created-at",
            &rfc3339(now - days(365)),
            "--description",
            "Dr Alice",
            "--contact",
            "alice@elsewhere.example",
        ],
    );
    assert!(
        out.contains("no other mailbox in the name of 810001"),
        "{out}"
    );
    ok(
        &config,
        &[
            "mailbox",
            "create",
            &bob,
            "--kind",
            "personal",
            "--owner",
            "810002",
            "--created-at",
            &rfc3339(now - days(10)),
        ],
    );
    // A second personal mailbox of alice's holder: the CLI lists the first one.
    let out = ok(
        &config,
        &[
            "mailbox",
            "create",
            &addr("alice2"),
            "--kind",
            "personal",
            "--owner",
            "810001",
            "--red-list",
            "--created-at",
            &rfc3339(now - days(1)),
        ],
    );
    assert!(out.contains(&format!("  {alice} (personal)")), "{out}");

    {
        let store = Store::open(&dir.path().join("data"), mssante::clock::system())
            .await
            .unwrap();
        let id = store.mailbox(&alice).await.unwrap().unwrap().id;
        store.record_authentication(id, now).await.unwrap();
        store.close().await;
    }
    let shown = show(&config, &alice);
    assert_eq!(shown["published"], false);
    assert_eq!(shown["hold"], false);
    assert_eq!(shown["last_authenticated_at"], rfc3339(now));
    assert!(shown["deletion_warned_at"].is_null());

    let out = ok(
        &config,
        &["jobs", "run", "--dry-run", "--at", &rfc3339(now)],
    );
    assert!(out.contains(&format!("would publish {alice}")), "{out}");
    assert!(!dir.path().join("directory.jsonl").exists());

    let out = ok(&config, &["jobs", "run", "--at", &rfc3339(now)]);
    assert!(out.contains(&format!("published {alice}")), "{out}");
    assert!(out.contains(&format!("published {bob}")), "{out}");
    assert!(!out.contains("alice2"), "red-listed: {out}");
    assert_eq!(show(&config, &alice)["published"], true);

    let out = ok(&config, &["mailbox", "hold", &bob]);
    assert!(out.contains("held"), "{out}");
    assert_eq!(show(&config, &bob)["hold"], true);

    let out = ok(&config, &["jobs", "run", "--at", &rfc3339(now + days(61))]);
    assert!(out.contains(&format!("unpublished {alice}")), "{out}");
    assert_eq!(show(&config, &alice)["published"], false);

    let out = ok(&config, &["jobs", "run", "--at", &rfc3339(now + days(335))]);
    assert!(out.contains(&format!("warned {alice}")), "{out}");
    let shown = show(&config, &alice);
    assert_eq!(shown["deletion_warned_at"], rfc3339(now + days(335)));

    let out = ok(&config, &["jobs", "run", "--at", &rfc3339(now + days(366))]);
    assert!(out.contains(&format!("deleted {alice}")), "{out}");
    assert!(!out.contains(&format!("deleted {bob}")), "held: {out}");
    let (found, _, _) = mssante(&config, &["mailbox", "show", &alice]);
    assert!(!found);
    assert_eq!(show(&config, &bob)["hold"], true);

    let audit = ok(&config, &["audit", "--mailbox", &alice, "--json"]);
    assert!(
        audit.contains("\"reason\":\"deleted after 365 days without authentication\""),
        "{audit}"
    );

    let events: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.path().join("directory.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let summary: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["address"].as_str().unwrap().to_owned(),
                e["at"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("publish".into(), alice.clone(), rfc3339(now)),
            ("publish".into(), bob.clone(), rfc3339(now)),
            ("unpublish".into(), alice.clone(), rfc3339(now + days(61))),
            ("unpublish".into(), bob.clone(), rfc3339(now + days(366))),
        ]
    );
    assert_eq!(events[0]["type"], "PER");
    assert_eq!(events[0]["description"], "Dr Alice");

    let out = ok(&config, &["mailbox", "release", &bob]);
    assert!(out.contains("released"), "{out}");
    let out = ok(&config, &["jobs", "run", "--at", &rfc3339(now + days(367))]);
    assert!(out.contains(&format!("deleted {bob}")), "{out}");
}
