//! One run of the lifecycle jobs over 1,000,000 mailboxes.
//!
//! The database is filled as a daily run would find it: every mailbox was in the right
//! state as of the previous day (published or not, warnings already sent), activity is
//! spread over the last year, so about 1/366 of the mailboxes cross each threshold
//! today. The figures are the catch-up run over those, then a run with nothing to do
//! (the cost of the selections alone).
//!
//! `cargo bench --bench lifecycle` (release build). `MSSANTE_BENCH_MAILBOXES=N` changes
//! the size.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use mssante::clock::FixedClock;
use mssante::config::Config;
use mssante::lifecycle::{FilePublisher, Lifecycle, Mode, SharedPublisher};
use mssante::store::Store;
use sqlx::{Connection, SqliteConnection};
use tokio_util::sync::CancellationToken;

const DAY: i64 = 86_400;

#[path = "../tests/common/config.rs"]
mod setup;
mod support;

fn config(dir: &std::path::Path) -> Config {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("server.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), ck.signing_key.serialize_pem()).unwrap();
    let mut setup = setup::Setup::new("bench.mssante.fr");
    setup.sections = "[directory]\nkind = \"file\"\npath = \"directory.jsonl\"\n".into();
    setup.load(dir)
}

/// Fills the mailboxes in one transaction, set-based: rows, then their state as of the
/// previous day, then their INBOX and the notices already sent.
async fn fill(conn: &mut SqliteConnection, n: i64, now: i64) {
    let prev = now - DAY;
    let year = 365 * DAY;
    let mut tx = conn.begin().await.unwrap();
    sqlx::query(
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?1),
         gen AS (
           SELECT i,
             CASE WHEN i % 10 < 6 THEN 'personal' WHEN i % 10 < 9 THEN 'organisational'
                  ELSE 'applicative' END AS kind,
             ?2 - CASE WHEN i % 10 = 3 THEN (i * 37) % 365 ELSE 365 + (i * 37) % 900 END * 86400
                - i % 86400 AS created,
             ?2 - (i * 7919) % (366 * 86400) AS active
           FROM seq)
         INSERT INTO mailboxes (address, kind, owner_idnat, created_at, last_authenticated_at,
                                red_list, hold, description, service, dematerialisation)
         SELECT 'bal' || i || '@bench.mssante.fr', kind,
                CASE WHEN kind = 'personal' THEN '8' || printf('%010d', i) END,
                created, CASE WHEN active > created THEN active END,
                i % 97 = 0, i % 1000 = 0, 'BAL ' || i, 'Service ' || (i % 50), i % 2
         FROM gen",
    )
    .bind(n)
    .bind(now)
    .execute(&mut *tx)
    .await
    .unwrap();
    // Published exactly when the rules said so yesterday.
    sqlx::query(
        "UPDATE mailboxes SET published = 1
         WHERE red_list = 0
           AND NOT (kind IN ('personal', 'organisational') AND created_at <= ?1
                    AND COALESCE(last_authenticated_at, created_at) <= ?2)",
    )
    .bind(prev - year)
    .bind(prev - 60 * DAY)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO folders (mailbox_id, name, uidvalidity) SELECT id, 'INBOX', 1 FROM mailboxes",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    for w in [30 * DAY, 7 * DAY] {
        sqlx::query(
            "INSERT INTO lifecycle_notices (mailbox_id, kind, cycle, sent_at)
             SELECT id, ?1, COALESCE(last_authenticated_at, created_at), ?2 FROM mailboxes
             WHERE hold = 0 AND COALESCE(last_authenticated_at, created_at) <= ?3",
        )
        .bind(format!("deletion-warning:{w}"))
        .bind(prev)
        .bind(prev - (year - w))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    sqlx::query(
        "UPDATE mailboxes SET deletion_warned_at = ?1
         WHERE id IN (SELECT mailbox_id FROM lifecycle_notices)",
    )
    .bind(prev)
    .execute(&mut *tx)
    .await
    .unwrap();
    // No ANALYZE: the planner must find the indexes without statistics, as on a
    // database nobody has analysed.
    tx.commit().await.unwrap();
}

fn main() {
    let n = support::size("MSSANTE_BENCH_MAILBOXES", 1_000_000);
    support::run(async move {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let now: DateTime<Utc> = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let store = Store::open(&config.server.data_dir, mssante::clock::system())
            .await
            .unwrap();

        let started = tokio::time::Instant::now();
        let mut conn = support::connect(&config.database_path()).await;
        fill(&mut conn, n, now.timestamp()).await;
        conn.close().await.unwrap();
        println!("filled {n} mailboxes in {:.2?}", started.elapsed());

        let publisher: SharedPublisher =
            Arc::new(FilePublisher::new(dir.path().join("directory.jsonl")));
        let jobs = Lifecycle::new(&config, store.clone(), Arc::new(FixedClock(now)), publisher);
        let cancel = CancellationToken::new();

        let started = tokio::time::Instant::now();
        let report = jobs.run(Mode::Apply, &cancel).await.unwrap();
        let catch_up = started.elapsed();
        println!(
            "daily run: {:.2?} ({} published, {} unpublished, {} warned, {} deleted, {} failed)",
            catch_up,
            report.published.len(),
            report.unpublished.len(),
            report.warned.len(),
            report.deleted.len(),
            report.failures.len()
        );

        let started = tokio::time::Instant::now();
        let again = jobs.run(Mode::Apply, &cancel).await.unwrap();
        println!(
            "run with nothing to do: {:.2?} ({} changes)",
            started.elapsed(),
            again.published.len()
                + again.unpublished.len()
                + again.warned.len()
                + again.deleted.len()
        );
        assert!(
            again.is_empty(),
            "a second run at the same instant changes nothing"
        );
        support::against_target(catch_up);
    });
}
