//! The single writer: every write runs on one connection, and the writes that arrive
//! while a commit is being flushed share the next transaction (group commit).
//!
//! SQLite allows one writer at a time anyway; funnelling writes through one task turns
//! that limit into batching, so throughput is not capped at one fsync per message. Each
//! write runs inside its own savepoint, so one failing write never undoes its neighbours,
//! and every caller hears back only after the COMMIT that made its write durable.

use futures::future::BoxFuture;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// Sends the result to the caller once the batch's fate is known.
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A type-erased write: runs on the writer's connection, says whether it succeeded, and
/// hands back how to answer its caller.
pub(super) type Job =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Completion)> + Send>;

/// Most writes grouped in one transaction; bounds the latency of the first in a batch.
const MAX_BATCH: usize = 512;

pub(super) fn job<T, F>(f: F) -> (Job, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
        + Send
        + 'static,
{
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move |conn| {
        Box::pin(async move {
            let result = f(conn).await;
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let _ = tx.send(commit.and(result));
            });
            (ok, completion)
        })
    });
    (job, rx)
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
    // Savepoint bookkeeping rides along with the statements around it, so each write
    // costs one extra round trip to the connection thread rather than two.
    let mut done = Vec::with_capacity(batch.len());
    if let Err(e) = sqlx::raw_sql("BEGIN IMMEDIATE; SAVEPOINT w")
        .execute(&mut *conn)
        .await
    {
        // Nothing ran; dropping the jobs tells each caller the write did not happen.
        batch.clear();
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        return Err((StoreError::from(e), done));
    }
    let last = batch.len().saturating_sub(1);
    for (i, job) in batch.drain(..).enumerate() {
        let (ok, completion) = job(conn).await;
        done.push(completion);
        let next = match (ok, i == last) {
            (true, false) => "RELEASE w; SAVEPOINT w",
            (false, false) => "ROLLBACK TO w; RELEASE w; SAVEPOINT w",
            (true, true) => "RELEASE w; COMMIT",
            (false, true) => "ROLLBACK TO w; RELEASE w; COMMIT",
        };
        if let Err(e) = sqlx::raw_sql(next).execute(&mut *conn).await {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            return Err((StoreError::from(e), done));
        }
    }
    Ok(done)
}
