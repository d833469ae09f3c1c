//! The single writer: every write runs on one connection, and the writes that arrive
//! while a commit is being flushed share the next transaction (group commit).
//!
//! SQLite allows one writer at a time anyway; funnelling writes through one task turns
//! that limit into batching, so throughput is not capped at one fsync per message. Each
//! write runs inside its own savepoint, so one failing write never undoes its neighbours,
//! and every caller hears back only after the COMMIT that made its write durable.
//!
//! A write made of a single statement needs no savepoint: SQLite backs out a failed
//! statement by itself and keeps the transaction. Every round trip to the connection's
//! thread costs a thread hand-off, which is what bounds throughput here, so the hot
//! writes (appends) are single statements.

use futures::future::BoxFuture;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// Sends the result to the caller once the batch's fate is known.
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

type Run =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Completion)> + Send>;

/// How a write is kept from undoing its neighbours when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Isolation {
    /// Several statements: a savepoint around them.
    Savepoint,
    /// Exactly one statement that writes (reads may follow): SQLite's statement rollback.
    SingleStatement,
}

/// A type-erased write: runs on the writer's connection, says whether it succeeded, and
/// hands back how to answer its caller.
pub(super) struct Job {
    run: Run,
    isolation: Isolation,
}

/// Most writes grouped in one transaction; bounds the latency of the first in a batch.
const MAX_BATCH: usize = 512;

pub(super) fn job<T, F>(
    isolation: Isolation,
    f: F,
) -> (Job, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
        + Send
        + 'static,
{
    let (tx, rx) = oneshot::channel();
    let run: Run = Box::new(move |conn| {
        Box::pin(async move {
            let result = f(conn).await;
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let _ = tx.send(commit.and(result));
            });
            (ok, completion)
        })
    });
    (Job { run, isolation }, rx)
}

pub(super) async fn run(mut conn: SqliteConnection, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let completions = run_batch(&mut conn, &mut batch).await;
        let outcome = match completions {
            Ok(c) => c,
            Err((err, c)) => {
                tracing::error!(error = %err, "commit failed; the batch is rolled back");
                for done in c {
                    done(Err(err.clone()));
                }
                continue;
            }
        };
        for done in outcome {
            done(Ok(()));
        }
    }
    let _ = conn.close().await;
}

type BatchFailure = (StoreError, Vec<Completion>);

async fn run_batch(
    conn: &mut SqliteConnection,
    batch: &mut Vec<Job>,
) -> Result<Vec<Completion>, BatchFailure> {
    // Transaction and savepoint bookkeeping rides along with the statement that comes
    // next, so it costs no round trip of its own.
    let mut done = Vec::with_capacity(batch.len());
    let mut pending = String::from("BEGIN IMMEDIATE");
    for job in batch.drain(..) {
        let savepoint = job.isolation == Isolation::Savepoint;
        if savepoint {
            pending.push_str("; SAVEPOINT w");
        }
        if !pending.is_empty()
            && let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(std::mem::take(&mut pending)))
                .execute(&mut *conn)
                .await
        {
            // The job never ran; dropping it tells its caller the write did not happen.
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            return Err((StoreError::from(e), done));
        }
        let (ok, completion) = (job.run)(conn).await;
        done.push(completion);
        if savepoint {
            pending.push_str(if ok {
                "RELEASE w"
            } else {
                "ROLLBACK TO w; RELEASE w"
            });
        }
    }
    if !pending.is_empty() {
        pending.push_str("; ");
    }
    pending.push_str("COMMIT");
    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(pending))
        .execute(&mut *conn)
        .await
    {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        return Err((StoreError::from(e), done));
    }
    Ok(done)
}
