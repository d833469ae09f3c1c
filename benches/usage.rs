//! `report usage` for one month of an operator with 1,000,000 mailboxes and a year of
//! records: their creation (and, for some, publication, unpublication, deletion) spread
//! over two years, and a year of successful authentications in the audit trail.
//!
//! The figure is the time of `Store::usage` for the last month (target: under 10 s).
//!
//! `cargo bench --bench usage` (release build). `MSSANTE_BENCH_MAILBOXES=N` and
//! `MSSANTE_BENCH_AUDIT_ROWS=N` (default 10,000,000) change the size.

use chrono::{DateTime, Utc};
use mssante::store::Store;
use sqlx::{Connection, SqliteConnection};

mod support;
use support::size;

/// The records, set-based in one transaction.
async fn fill(conn: &mut SqliteConnection, mailboxes: i64, audit: i64, now: i64) {
    // The tables' indexes are dropped for the fill and made again after it, as a bulk
    // load does: ten million rows inserted into four indexes in random order would take
    // the fill hours, and the index made from the full table is the same.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master
          WHERE type = 'index' AND tbl_name IN ('audit', 'mailbox_events') AND sql IS NOT NULL",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    sqlx::query("PRAGMA cache_size = -1000000")
        .execute(&mut *conn)
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    for (name, _) in &indexes {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX {name}")))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    // Created over two years; a tenth published a day later, a fiftieth unpublished and
    // a hundredth deleted during the last year.
    sqlx::query(
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?1),
         gen AS (
           SELECT i, 'bal' || i || '@bench.mssante.fr' AS address,
             CASE WHEN i % 10 < 6 THEN 'personal' WHEN i % 10 < 9 THEN 'organisational'
                  ELSE 'applicative' END AS kind,
             ?2 - (i * 7919) % (730 * 86400) AS created
           FROM seq)
         INSERT INTO mailbox_events (at, address, kind, event)
         SELECT created, address, kind, 'created' FROM gen
         UNION ALL SELECT created + 86400, address, kind, 'published' FROM gen WHERE i % 10 = 0
         UNION ALL SELECT ?2 - (i * 104729) % (365 * 86400), address, kind, 'unpublished'
                   FROM gen WHERE i % 50 = 0
         UNION ALL SELECT ?2 - (i * 104723) % (365 * 86400), address, kind, 'deleted'
                   FROM gen WHERE i % 100 = 0",
    )
    .bind(mailboxes)
    .bind(now)
    .execute(&mut *tx)
    .await
    .unwrap();
    // A year of successful logins over every mailbox, a third of them by certificate,
    // a fifth merged with a repeat.
    sqlx::query(
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?1)
         INSERT INTO audit (at, protocol, mechanism, identity, mailbox, peer, outcome, repeated)
         SELECT ?3 - (i * 31337) % (365 * 86400), 'imap',
                CASE WHEN i % 3 = 0 THEN 'EXTERNAL' ELSE 'XOAUTH2' END, 'bench',
                'bal' || (1 + (i * 7) % ?2) || '@bench.mssante.fr', '192.0.2.1:1000', 'success',
                i % 5 = 0
         FROM seq",
    )
    .bind(audit)
    .bind(mailboxes)
    .bind(now)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "WITH RECURSIVE seq(d) AS (SELECT 0 UNION ALL SELECT d + 1 FROM seq WHERE d < 364)
         INSERT INTO traffic (day, submitted, received, relayed, delivered, bounced)
         SELECT (?1 / 86400 - d) * 86400, 1000, 2000, 900, 2500, 10 FROM seq",
    )
    .bind(now)
    .execute(&mut *tx)
    .await
    .unwrap();
    for (_, sql) in indexes {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

fn main() {
    let mailboxes = size("MSSANTE_BENCH_MAILBOXES", 1_000_000);
    let audit = size("MSSANTE_BENCH_AUDIT_ROWS", 10_000_000);
    support::run(async move {
        let dir = tempfile::tempdir().unwrap();
        let now: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let store = Store::open(dir.path(), mssante::clock::system())
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        let mut conn = support::connect(&dir.path().join("mssante.db")).await;
        fill(&mut conn, mailboxes, audit, now.timestamp()).await;
        conn.close().await.unwrap();
        println!(
            "filled {mailboxes} mailboxes and {audit} audit rows in {:.2?}",
            started.elapsed()
        );

        let from = now - chrono::Duration::days(30);
        let started = tokio::time::Instant::now();
        let usage = store.usage(from, now).await.unwrap();
        let took = started.elapsed();
        let existing =
            usage.personal.existing + usage.organisational.existing + usage.applicative.existing;
        let active = usage.personal.active + usage.organisational.active + usage.applicative.active;
        println!(
            "report usage, one month: {took:.2?} ({existing} mailboxes, {active} active, {} authentications)",
            usage.authentications.psc_token + usage.authentications.client_certificate
        );
        assert_eq!(existing, (mailboxes - mailboxes / 100) as u64);
        support::against_target(took);
        store.close().await;
    });
}
